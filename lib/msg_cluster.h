/*
 * msg_cluster.h - cluster membership messages (opcodes 0x02xx).
 *
 * ckpt-node registers with ckpt-meta and heartbeats every second; every
 * process fetches the cluster map (nodes, targets, their states and
 * addresses) and refetches it when the epoch it sees in a reply changes.
 *
 *   NODE_REGISTER  node -> meta  identity, address, targets; meta answers
 *                                with (persisted) node and target ids
 *   HEARTBEAT      node -> meta  per-target usage; meta answers the epoch,
 *                                or -ENOENT when it does not know the node
 *                                (the node then registers again)
 *   CLUSTER_MAP    any  -> meta  the whole map (or "unchanged")
 *
 * Codec conventions as in msg_node.h.  Strings are decoded into fixed
 * NUL-terminated arrays; arrays of nodes/targets are allocated by the
 * decoder and released with the _free() function.
 */
#ifndef CKPT_MSG_CLUSTER_H
#define CKPT_MSG_CLUSTER_H

#include <stdint.h>

#include "layout.h"
#include "msg_node.h"
#include "proto.h"

#define CKPT_NODE_UUID_LEN 16
#define CKPT_NAME_MAX 63        /* node names, rack names, cluster name */
#define CKPT_HOST_MAX 255
#define CKPT_TPATH_MAX 1023     /* target path, for display */
#define CKPT_MAP_MAX_NODES 16384
#define CKPT_MAP_MAX_TARGETS 65536

/* Transports a node serves (bit mask). */
#define CKPT_XPORT_TCP 0x1u
#define CKPT_XPORT_RDMA 0x2u
#define CKPT_XPORT_KNOWN (CKPT_XPORT_TCP | CKPT_XPORT_RDMA)

enum ckpt_node_state {
    CKPT_NODE_UP = 0,       /* heartbeating */
    CKPT_NODE_DOWN = 1,     /* silent for down_after: read around it */
    CKPT_NODE_OUT = 2,      /* silent for out_after: its data is rebuilt */
    CKPT_NODE_DRAINING = 3, /* being emptied by an operator */
    CKPT_NODE_NSTATES
};

/** @return "UP", "DOWN", "OUT", "DRAINING" or "?". */
const char *ckpt_node_state_name(uint32_t state);

struct ckpt_reg_target {
    uint32_t id;        /* 0: new, meta assigns one */
    uint64_t capacity;
    uint64_t free;
    char path[CKPT_TPATH_MAX + 1];
};

struct ckpt_msg_node_register {
    uint8_t uuid[CKPT_NODE_UUID_LEN];
    uint32_t node_id;   /* 0: new */
    char name[CKPT_NAME_MAX + 1];
    char rack[CKPT_NAME_MAX + 1];  /* failure domain; "" = the node itself */
    char host[CKPT_HOST_MAX + 1];  /* address clients connect to */
    uint16_t port;
    uint16_t rdma_port;            /* 0: no RDMA */
    uint32_t transports;           /* CKPT_XPORT_* */
    uint32_t n;
    struct ckpt_reg_target t[CKPT_NODE_MAX_TARGETS];
};

struct ckpt_msg_node_register_resp {
    uint32_t node_id;
    uint64_t epoch;
    uint32_t heartbeat_ms;  /* how often meta wants heartbeats */
    uint32_t n;
    uint32_t target_ids[CKPT_NODE_MAX_TARGETS]; /* same order as the request */
};

struct ckpt_msg_heartbeat {
    uint32_t node_id;
    uint8_t uuid[CKPT_NODE_UUID_LEN];
    uint32_t n;
    struct ckpt_target_stat t[CKPT_NODE_MAX_TARGETS];
};

struct ckpt_msg_heartbeat_resp {
    uint64_t epoch;
};

struct ckpt_msg_cluster_map {
    uint64_t known_epoch;   /* 0: always send the map */
};

struct ckpt_map_node {
    uint32_t id;
    uint32_t state;         /* enum ckpt_node_state */
    char name[CKPT_NAME_MAX + 1];
    char rack[CKPT_NAME_MAX + 1];
    char host[CKPT_HOST_MAX + 1];
    uint16_t port;
    uint16_t rdma_port;
    uint32_t transports;
    uint64_t last_seen_ms;  /* ms since its last heartbeat */
};

struct ckpt_map_target {
    uint32_t id;
    uint32_t node_id;
    uint32_t state;         /* enum ckpt_node_state (its node's, or its own) */
    uint64_t capacity;
    uint64_t free;
    uint64_t used;
    uint64_t chunks;
};

struct ckpt_msg_cluster_map_resp {
    uint64_t epoch;
    uint8_t unchanged;      /* 1: known_epoch is current; arrays empty */
    char cluster[CKPT_NAME_MAX + 1];
    struct ckpt_layout layout;  /* cluster default (no targets) */
    uint32_t n_nodes;
    struct ckpt_map_node *nodes;     /* allocated by decode */
    uint32_t n_targets;
    struct ckpt_map_target *targets; /* allocated by decode */
};

int ckpt_msg_node_register_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_register *m);
int ckpt_msg_node_register_decode(const void *body, size_t len,
                                  struct ckpt_msg_node_register *out);
int ckpt_msg_node_register_resp_encode(struct ckpt_wbuf *w,
                                       const struct ckpt_msg_node_register_resp *m);
int ckpt_msg_node_register_resp_decode(const void *body, size_t len,
                                       struct ckpt_msg_node_register_resp *out);
int ckpt_msg_heartbeat_encode(struct ckpt_wbuf *w, const struct ckpt_msg_heartbeat *m);
int ckpt_msg_heartbeat_decode(const void *body, size_t len, struct ckpt_msg_heartbeat *out);
int ckpt_msg_heartbeat_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_heartbeat_resp *m);
int ckpt_msg_heartbeat_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_heartbeat_resp *out);
int ckpt_msg_cluster_map_encode(struct ckpt_wbuf *w, const struct ckpt_msg_cluster_map *m);
int ckpt_msg_cluster_map_decode(const void *body, size_t len, struct ckpt_msg_cluster_map *out);
int ckpt_msg_cluster_map_resp_encode(struct ckpt_wbuf *w,
                                     const struct ckpt_msg_cluster_map_resp *m);
/** On success the arrays are allocated; free with ckpt_msg_cluster_map_resp_free. */
int ckpt_msg_cluster_map_resp_decode(const void *body, size_t len,
                                     struct ckpt_msg_cluster_map_resp *out);
void ckpt_msg_cluster_map_resp_free(struct ckpt_msg_cluster_map_resp *m);

/** Encode/decode a layout (k, m, width, chunk, flags, width target ids);
 *  the decoder enforces ckpt_layout_check(). Shared by msg_meta. */
void ckpt_wr_layout(struct ckpt_wbuf *w, const struct ckpt_layout *l);
void ckpt_rd_layout(struct ckpt_rbuf *r, struct ckpt_layout *out);

#endif

/*
 * node_reg.h - ckpt-node's membership in the cluster: registration with
 * ckpt-meta and the heartbeat.
 *
 * One background thread (node_reg_main) registers the node - its uuid,
 * name, rack, advertised address and targets - with NODE_REGISTER, persists
 * the node id and target ids meta answers into every target (node_target),
 * publishes them to the chunk service (struct node_tgt.id), then sends a
 * HEARTBEAT with per-target capacity and usage every heartbeat_ms (meta
 * chooses the interval in its answer).  It registers again by itself when
 *   - meta answers a heartbeat with -ENOENT (it does not know the node), or
 *   - the connection to meta was re-established (meta restarted, or the
 *     network came back): a registration is idempotent, and it refreshes
 *     the address and targets meta holds.
 * While meta is unreachable it retries with exponential backoff (100 ms
 * doubling to 5 s); chunk I/O never depends on it: targets keep the ids
 * they had.
 *
 * Thread-safety: every function may be called from any thread;
 * node_reg_stop() must be called once, and nothing may use the handle
 * afterwards.
 */
#ifndef NODE_REG_H
#define NODE_REG_H

#include <stdint.h>

#include "msg_cluster.h"
#include "net.h"
#include "node_int.h"

typedef struct node_reg node_reg;

#define NODE_REG_HEARTBEAT_MS_DEFAULT 1000u
#define NODE_REG_BACKOFF_MIN_MS 100u
#define NODE_REG_BACKOFF_MAX_MS 5000u

struct node_reg_opts {
    const char *meta_host;        /* ckpt-meta address (copied) */
    uint16_t meta_port;
    const char *name;             /* node name (copied; 1..CKPT_NAME_MAX) */
    const char *rack;             /* "" or NULL: the node is its own domain */
    const char *host;             /* advertised address (copied) */
    uint16_t port;                /* advertised chunk-service port */
    uint16_t rdma_port;           /* advertised RDMA port; 0: TCP only */
    const uint8_t *uuid;          /* CKPT_NODE_UUID_LEN bytes (copied) */
    uint32_t heartbeat_ms;        /* until meta says otherwise; 0: default */
};

/* A snapshot of the registration state (for logs, tests and metrics). */
struct node_reg_status {
    uint32_t node_id;             /* 0 until the first registration */
    uint64_t epoch;               /* cluster map epoch of meta's last answer */
    uint64_t registrations;       /* successful NODE_REGISTER calls */
    uint64_t heartbeats;          /* heartbeats meta acknowledged */
    int registered;               /* 1 while the current connection is
                                     registered */
    int last_err;                 /* last failure (0 after a success) */
};

/**
 * @brief Start the registration thread.
 * @param[in] o     see struct node_reg_opts; strings are copied
 * @param[in] net   borrowed; must outlive the handle
 * @param[in] tgts  n targets (borrowed; must outlive the handle).  Their
 *                  .id fields are written by this module only.
 * @param[in] n     1..CKPT_NODE_MAX_TARGETS
 * @param[out] out  stopped and freed with node_reg_stop()
 * @return 0, -EINVAL (bad options), -ENOMEM, or -errno from pthread_create.
 */
int node_reg_start(const struct node_reg_opts *o, ckpt_net *net,
                   struct node_tgt *tgts, uint32_t n, node_reg **out);

/**
 * @brief Stop the thread (an RPC in progress is abandoned within its
 * timeout), close the connection to meta and free.  NULL is a no-op.
 */
void node_reg_stop(node_reg *r);

/** @brief Copy the current status into *out.  Never fails. */
void node_reg_status(node_reg *r, struct node_reg_status *out);

/**
 * @brief Wait until at least min_registrations registrations and
 * min_heartbeats heartbeats have succeeded (counted since the start).
 * @return 0, or -ETIMEDOUT after timeout_ms.
 */
int node_reg_wait(node_reg *r, uint64_t min_registrations,
                  uint64_t min_heartbeats, uint32_t timeout_ms);

#endif

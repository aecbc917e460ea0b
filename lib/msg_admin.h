/*
 * msg_admin.h - operator messages of ckpt-meta (opcodes 0x0504.., the
 * CKPT_OPS_ADMIN range shared with the rebuild tasks of msg_task.h), sent
 * by ckpt-admin (tools/ckpt_admin.c) and served by meta/meta_admin.c.
 *
 *   NODE_STATE {node_id, op} -> empty
 *       op OUT: the node is taken out by the operator: it is shown OUT at
 *       once, new files are no longer placed on it, and ckpt-meta's
 *       rebuild planner (meta_rebuild.c) recreates its chunks elsewhere
 *       (the same tasks as after a failure; the node's own chunks are not
 *       read).  The decision is persisted: the node stays OUT across
 *       restarts of ckpt-meta and of the node, heartbeats or not.
 *       op IN: the operator's hold is lifted; the node is UP again at its
 *       next heartbeat.  Files already rebuilt elsewhere stay there.
 *       op DRAIN: the node is emptied while it stays UP and readable: it
 *       is shown DRAINING, placement skips it, and ckpt-meta plans a MOVE
 *       task (msg_task.h) for every file with a chunk on its targets: the
 *       new target's node copies the chunks from it, the layout swaps, the
 *       old chunks go through the deletion queue.  Persisted like OUT.
 *       op ADD: accept the node for placement again: lifts an OUT hold or
 *       a drain (same as IN).  A new node joins by itself when its
 *       ckpt-node starts with --meta; ADD needs no prior REMOVE.
 *       op REMOVE: forget the node and its targets for good.  Refused with
 *       -EBUSY while any file's layout still names one of its targets (it
 *       may hold the only copy of a chunk: drain it, or let an OUT node's
 *       rebuild finish), or while it still heartbeats (UP or DRAINING:
 *       its ckpt-node must be stopped first, else it would register
 *       again).
 *       Errors: -ENOENT (unknown node id), -EBUSY (REMOVE refused).
 *       OUT, IN, DRAIN and ADD are idempotent.
 *
 *   NODE_INFO {node_id} -> node_info_resp
 *       What a node still holds, for `node drain --wait` and `node
 *       remove`: its state, flags (held OUT, draining), how many files'
 *       layouts name its targets and an estimate of their chunk bytes on
 *       them, the pending tasks that move or rebuild them, and the queued
 *       deletions on its targets.  A draining node with files == 0 and
 *       delq == 0 is drained.  O(files on its targets).  -ENOENT.
 *
 *   REBALANCE {threshold_pct, flags, max_rate_bps} -> rebalance_resp
 *       Plan MOVE tasks that bring every target's usage (used/capacity)
 *       within threshold_pct percent of the mean usage of the targets of
 *       UP nodes.  With CKPT_REBALANCE_DRY_RUN nothing is written: the
 *       reply is the plan.  Otherwise the moves are stored in ckpt-meta's
 *       task table (they survive restarts and run until done) and
 *       max_rate_bps (0: none) becomes the cluster-wide cap on MOVE bytes
 *       per second.  When MOVE tasks are pending already, nothing new is
 *       planned and the reply describes them (CKPT_REBALANCE_RESUMED); a
 *       dry run still plans from the current usage.
 *       Errors: -EINVAL (threshold 0 or > 100).
 *
 * Everything else ckpt-admin shows comes from messages that already
 * exist: CLUSTER_MAP (nodes, targets, usage), REBUILD_STATUS (progress),
 * CKPT_LIST (checkpoints), GETXATTR/SETXATTR of user.ckptfs.layout
 * (directory layouts) and OPEN (a file's layout).
 *
 * Codec conventions as in msg_node.h: encoders return the wbuf's sticky
 * error; decoders validate the enum and reject trailing bytes.
 */
#ifndef CKPT_MSG_ADMIN_H
#define CKPT_MSG_ADMIN_H

#include <stdint.h>

#include "msg_cluster.h"
#include "proto.h"

enum ckpt_admin_node_op {
    CKPT_ADMIN_NODE_OUT = 0,   /* hold the node OUT: rebuild its data elsewhere */
    CKPT_ADMIN_NODE_IN = 1,    /* lift the hold (or a drain) */
    CKPT_ADMIN_NODE_DRAIN = 2, /* move its chunks away while it stays readable */
    CKPT_ADMIN_NODE_REMOVE = 3, /* forget an empty node */
    CKPT_ADMIN_NODE_ADD = 4,   /* accept it for placement (as IN) */
    CKPT_ADMIN_NODE_NOPS
};

struct ckpt_msg_node_state {
    uint32_t node_id;          /* != 0 */
    uint32_t op;               /* enum ckpt_admin_node_op */
};

#define CKPT_NODE_F_HELD 0x1u      /* node_info flags: held OUT by the operator */
#define CKPT_NODE_F_DRAINING 0x2u  /* being drained */

struct ckpt_msg_node_info {
    uint32_t node_id;          /* != 0 */
};

struct ckpt_msg_node_info_resp {
    uint32_t node_id;
    uint32_t state;            /* enum ckpt_node_state */
    uint32_t flags;            /* CKPT_NODE_F_* */
    uint64_t files;            /* files whose layout names one of its targets */
    uint64_t bytes;            /* estimated chunk bytes of those on its targets */
    uint64_t tasks;            /* pending tasks moving/rebuilding them */
    uint64_t delq;             /* queued chunk deletions on its targets */
    uint64_t open_files;       /* of files: open now (a move waits for the close) */
};

#define CKPT_REBALANCE_DRY_RUN 0x1u   /* request: plan only */
#define CKPT_REBALANCE_RESUMED 0x2u   /* reply: pending moves, nothing new */
#define CKPT_REBALANCE_MAX_TARGETS 65536u

struct ckpt_msg_rebalance {
    uint32_t threshold_pct;    /* 1..100 */
    uint32_t flags;            /* CKPT_REBALANCE_DRY_RUN */
    uint64_t max_rate_bps;     /* 0: unlimited */
};

struct ckpt_rebalance_target {
    uint32_t tid;
    uint32_t node_id;
    uint64_t capacity;
    uint64_t used;             /* as last heartbeated */
    uint64_t out_bytes, in_bytes;  /* planned moves off / onto it */
    uint32_t out_files, in_files;
};

struct ckpt_msg_rebalance_resp {
    uint32_t flags;            /* CKPT_REBALANCE_RESUMED */
    uint32_t threshold_pct;
    uint64_t mean_ppm;         /* mean usage, parts per million */
    uint64_t max_ppm_before;   /* the fullest target's usage now */
    uint64_t max_ppm_after;    /* ... once the plan ran (estimate) */
    uint64_t files;            /* moves planned (one file slot each) */
    uint64_t bytes;            /* estimated bytes they move */
    uint32_t n;
    struct ckpt_rebalance_target *targets; /* allocated by decode */
};

/** @return "out", "in", "drain", "remove", "add" or "?". */
const char *ckpt_admin_node_op_name(uint32_t op);

/** @return 0, or the wbuf's error (-ENOMEM, -EMSGSIZE). */
int ckpt_msg_node_state_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_state *m);
/**
 * @brief Decode NODE_STATE.
 * @return 0, or CKPT_E_PROTO (truncated, trailing bytes, node id 0, an
 *         unknown op); *out is then unspecified.
 */
int ckpt_msg_node_state_decode(const void *body, size_t len, struct ckpt_msg_node_state *out);
int ckpt_msg_node_info_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_info *m);
/** @return 0, CKPT_E_PROTO (truncated, trailing bytes, node id 0). */
int ckpt_msg_node_info_decode(const void *body, size_t len, struct ckpt_msg_node_info *out);
int ckpt_msg_node_info_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_info_resp *m);
/** @return 0, CKPT_E_PROTO (also: unknown state). */
int ckpt_msg_node_info_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_node_info_resp *out);
int ckpt_msg_rebalance_encode(struct ckpt_wbuf *w, const struct ckpt_msg_rebalance *m);
/** @return 0, CKPT_E_PROTO (also: threshold 0 or > 100, unknown flags). */
int ckpt_msg_rebalance_decode(const void *body, size_t len, struct ckpt_msg_rebalance *out);
/** Encodes m->n targets (at most CKPT_REBALANCE_MAX_TARGETS, else -EINVAL). */
int ckpt_msg_rebalance_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_rebalance_resp *m);
/**
 * @brief Decode a REBALANCE reply.
 * @param[out] out  on success out->targets is allocated (NULL when n == 0):
 *                  free with ckpt_msg_rebalance_resp_free(); on error
 *                  nothing is allocated.
 * @return 0, CKPT_E_PROTO, -ENOMEM.
 */
int ckpt_msg_rebalance_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_rebalance_resp *out);
/** @brief Free the decoded targets.  NULL is a no-op. */
void ckpt_msg_rebalance_resp_free(struct ckpt_msg_rebalance_resp *m);

#endif

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
 *       Errors: -ENOENT (unknown node id).  Both are idempotent.
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

#include "proto.h"

enum ckpt_admin_node_op {
    CKPT_ADMIN_NODE_OUT = 0,   /* hold the node OUT: rebuild its data elsewhere */
    CKPT_ADMIN_NODE_IN = 1,    /* lift the hold */
    CKPT_ADMIN_NODE_NOPS
};

struct ckpt_msg_node_state {
    uint32_t node_id;          /* != 0 */
    uint32_t op;               /* enum ckpt_admin_node_op */
};

/** @return "out", "in" or "?". */
const char *ckpt_admin_node_op_name(uint32_t op);

/** @return 0, or the wbuf's error (-ENOMEM, -EMSGSIZE). */
int ckpt_msg_node_state_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_state *m);
/**
 * @brief Decode NODE_STATE.
 * @return 0, or CKPT_E_PROTO (truncated, trailing bytes, node id 0, an
 *         unknown op); *out is then unspecified.
 */
int ckpt_msg_node_state_decode(const void *body, size_t len, struct ckpt_msg_node_state *out);

#endif

/*
 * proto_ops.h - the opcode lists of each service range (see proto.h).
 * Included by proto.h only.  X(NAME, value, description).
 *
 * Each service owns its range; add a line here when adding a message, and
 * its request/response codecs in the service's msg_*.h.
 */
#ifndef CKPT_PROTO_OPS_H
#define CKPT_PROTO_OPS_H

/* 0x0100-0x01ff: ckpt-meta namespace (msg_meta.h). */
#define CKPT_OPS_META(X)

/* 0x0200-0x02ff: cluster membership and maps (msg_meta.h). */
#define CKPT_OPS_CLUSTER(X)

/* 0x0300-0x03ff: ckpt-node chunk service (msg_node.h). */
#define CKPT_OPS_NODE(X)

/* 0x0400-0x04ff: checkpoints (msg_meta.h). */
#define CKPT_OPS_CKPT(X)

/* 0x0500-0x05ff: administration, rebuild, rebalance. */
#define CKPT_OPS_ADMIN(X)

#endif

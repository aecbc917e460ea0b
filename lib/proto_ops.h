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

/* 0x0200-0x02ff: cluster membership and maps (msg_cluster.h). */
#define CKPT_OPS_CLUSTER(X)                                                   \
    X(NODE_REGISTER, 0x0201, "a storage node announces itself and targets")  \
    X(HEARTBEAT, 0x0202, "a node is alive; per-target usage")                \
    X(CLUSTER_MAP, 0x0203, "nodes, targets, states and the epoch")

/* 0x0300-0x03ff: ckpt-node chunk service (msg_node.h). */
#define CKPT_OPS_NODE(X)                                                      \
    X(CHUNK_WRITE, 0x0301, "store one chunk (bulk: its bytes)")              \
    X(CHUNK_READ, 0x0302, "read a chunk or a range of it (bulk reply)")      \
    X(CHUNK_DELETE, 0x0303, "delete an inode's chunks on a target")          \
    X(CHUNK_SYNC, 0x0304, "make written chunks of inodes durable")           \
    X(TARGET_STATS, 0x0305, "capacity and usage of the node's targets")      \
    X(CHUNK_LIST, 0x0306, "enumerate chunks of a target (scrub, rebuild)")

/* 0x0400-0x04ff: checkpoints (msg_meta.h). */
#define CKPT_OPS_CKPT(X)

/* 0x0500-0x05ff: administration, rebuild, rebalance. */
#define CKPT_OPS_ADMIN(X)

#endif

/*
 * proto_ops.h - the opcode lists of each service range (see proto.h).
 * Included by proto.h only.  X(NAME, value, description).
 *
 * Each service owns its range; add a line here when adding a message, and
 * its request/response codecs in the service's msg_*.h.
 */
#ifndef CKPT_PROTO_OPS_H
#define CKPT_PROTO_OPS_H

/* 0x0100-0x01ff: ckpt-meta namespace (msg_meta.h): request -> reply. */
#define CKPT_OPS_META(X)                                                      \
    X(LOOKUP, 0x0101, "name -> attr_resp")                                   \
    X(GETATTR, 0x0102, "ino -> attr_resp")                                   \
    X(SETATTR, 0x0103, "setattr -> attr_resp")                               \
    X(MKNOD, 0x0104, "mknod -> attr_resp")                                   \
    X(MKDIR, 0x0105, "mknod -> attr_resp")                                   \
    X(UNLINK, 0x0106, "name -> empty")                                       \
    X(RMDIR, 0x0107, "name -> empty")                                        \
    X(RENAME, 0x0108, "rename -> empty")                                     \
    X(LINK, 0x0109, "link -> attr_resp")                                     \
    X(SYMLINK, 0x010a, "symlink -> attr_resp")                               \
    X(READLINK, 0x010b, "ino -> readlink_resp")                              \
    X(READDIR, 0x010c, "readdir -> readdir_resp")                            \
    X(STATFS, 0x010d, "empty -> statfs_resp")                                \
    X(SETXATTR, 0x010e, "setxattr -> empty")                                 \
    X(GETXATTR, 0x010f, "xattr_name -> xattr_value")                         \
    X(LISTXATTR, 0x0110, "ino -> xattr_value")                               \
    X(REMOVEXATTR, 0x0111, "xattr_name -> empty")                            \
    X(SESSION, 0x0112, "session -> session_resp")                            \
    X(OPEN, 0x0113, "open -> open_resp (may wait for other writers)")        \
    X(CREATE, 0x0114, "create -> open_resp")                                 \
    X(FLUSHED, 0x0115, "release -> empty (size/checksum, keeps it open)")    \
    X(RELEASE, 0x0116, "release -> empty (after the flush)")                 \
    X(DEGRADED, 0x0117, "degraded -> empty")                                 \
    X(CLOSING, 0x0118, "release -> empty (close() size/mtime, before the flush)")

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
    X(CHUNK_LIST, 0x0306, "enumerate chunks of a target (scrub, rebuild)")   \
    X(CHUNK_LOCATE, 0x0307, "where a chunk's bytes are (same-host reads)")

/* 0x0400-0x04ff: checkpoints (msg_ckpt.h). */
#define CKPT_OPS_CKPT(X)                                                      \
    X(CKPT_COMMIT, 0x0401, "ckpt_commit -> ckpt_info (long-running)")        \
    X(CKPT_LIST, 0x0402, "ino -> ckpt_list_resp (newest first)")             \
    X(CKPT_INFO, 0x0403, "ino -> ckpt_info")                                 \
    X(CKPT_MANIFEST, 0x0404, "manifest -> manifest_resp")

/* 0x0500-0x05ff: administration, rebuild, rebalance.
 * 0x0501-0x0503: rebuild tasks (msg_task.h, meta/meta_rebuild.c,
 * daemon/node_task.c); 0x0504..: operator (msg_admin.h, meta/meta_admin.c). */
#define CKPT_OPS_ADMIN(X)                                                     \
    X(TASK_FETCH, 0x0501, "rebuild tasks: task_fetch -> task_fetch_resp")    \
    X(TASK_DONE, 0x0502, "rebuild tasks: task_done -> empty")                \
    X(REBUILD_STATUS, 0x0503, "rebuild tasks: empty -> rebuild_status_resp") \
    X(NODE_STATE, 0x0504, "ckpt-admin node out|in|drain|remove|add -> empty") \
    X(NODE_INFO, 0x0505, "node_info -> node_info_resp (what a node holds)")  \
    X(REBALANCE, 0x0506, "rebalance -> rebalance_resp (plan or start)")

#endif

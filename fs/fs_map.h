/*
 * fs_map.h - the FUSE client's view of the cluster: which node serves each
 * target, whether it is usable, and one reconnecting ckpt_peer per node.
 *
 * The map comes from ckpt-meta (CLUSTER_MAP) through a fetch callback (the
 * client passes ckpt_mclient_map; tests pass their own).  A background
 * thread refetches it every refresh_ms, which costs one small "unchanged"
 * reply while the epoch stays the same, and at once when the data path
 * reports trouble (fs_map_kick, fs_map_suspect).
 *
 * A target is usable for I/O when ckpt-meta says its node is UP or
 * DRAINING and this client has not seen it fail recently: a chunk call that
 * fails with a connection error marks the node suspect for a few seconds
 * (fs_map_suspect), so that the stripes that follow skip it at once
 * (degraded write, read from parity) instead of each waiting for the same
 * dead node, during the seconds before ckpt-meta declares it DOWN.
 *
 * Thread-safety: every function may be called from any thread.  Peers
 * handed out stay valid until fs_map_destroy() (a node whose address
 * changes keeps its peer, re-pointed with ckpt_peer_set_addr).
 */
#ifndef FS_MAP_H
#define FS_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "msg_cluster.h"
#include "net.h"

typedef struct fs_map fs_map;

/*
 * Fetch the map from ckpt-meta: like ckpt_mclient_map().  On success *out
 * holds the map (or unchanged = 1) and is released by fs_map with
 * ckpt_msg_cluster_map_resp_free().
 */
typedef int (*fs_map_fetch_fn)(void *ctx, uint64_t known_epoch,
                               struct ckpt_msg_cluster_map_resp *out);

/* Why a target is not usable (fs_map_target). */
enum fs_target_state {
    FS_TARGET_OK = 0,      /* UP or DRAINING, not suspect */
    FS_TARGET_DOWN = 1,    /* ckpt-meta says DOWN or OUT */
    FS_TARGET_SUSPECT = 2, /* failed here recently */
};

struct fs_map_stats {
    uint64_t epoch;
    uint32_t nodes, targets;
    uint64_t fetches;      /* successful fetches, "unchanged" included */
    uint64_t changes;      /* maps applied */
    uint64_t suspects;     /* fs_map_suspect calls that marked a node */
};

/**
 * @brief Create the map and start its refresh thread.  No fetch is made
 * here: call fs_map_refresh() to load the first map synchronously.
 * @param[in] net         borrowed; outlives the map (peers are made on it)
 * @param[in] fetch,ctx   borrowed
 * @param[in] refresh_ms  period of the background refetch (>= 10)
 * @param[out] out        destroyed with fs_map_destroy()
 * @return 0, -EINVAL, -ENOMEM, -errno of pthread_create.
 */
int fs_map_create(ckpt_net *net, fs_map_fetch_fn fetch, void *ctx,
                  uint32_t refresh_ms, fs_map **out);

/** @brief Stop the thread, destroy every peer, free.  NULL is a no-op. */
void fs_map_destroy(fs_map *m);

/**
 * @brief Fetch and apply the map now (on the caller's thread).
 * @return 0, or the fetch error (the old map stays in force).
 */
int fs_map_refresh(fs_map *m);

/**
 * @brief Apply a map (what the refresh thread does with a fetched one).
 * @param[in] resp  borrowed; an "unchanged" reply is a no-op
 * @return 0, -ENOMEM (old map kept), -EINVAL (a peer address is unusable;
 *         that node is left out and logged).
 */
int fs_map_apply(fs_map *m, const struct ckpt_msg_cluster_map_resp *resp);

/** @brief Ask the refresh thread to refetch at once. */
void fs_map_kick(fs_map *m);

/**
 * @brief Where target tid lives.
 * @param[out] out_peer   the node's peer (valid until fs_map_destroy)
 * @param[out] out_state  FS_TARGET_*
 * @return 0, or -ENOENT when the map has no such target (or its node has
 *         no address yet): treat it as unusable.
 */
int fs_map_target(fs_map *m, uint32_t tid, ckpt_peer **out_peer,
                  enum fs_target_state *out_state);

/**
 * @brief A call to target tid failed with rc: when rc is a connection or
 * timeout error, mark its node suspect for a few seconds and kick a
 * refresh.  Other errors (a chunk's -ENOENT, CKPT_E_CRC...) are ignored.
 */
void fs_map_suspect(fs_map *m, uint32_t tid, int rc);

/**
 * @brief Whether chunks of target tid may be read from its node's files
 * (CHUNK_LOCATE, fs_read.c): true unless fs_map_local_off() said otherwise
 * recently (or the target is unknown: false).
 */
bool fs_map_local_try(fs_map *m, uint32_t tid);

/**
 * @brief The chunks/ directory of target tid, for same-host reads of its
 * chunk files without asking the node (fs_read.c), copied into dst with its
 * NUL.
 * @return its length; 0 when not known (never told, the node's address
 *         changed since, short-circuit reads of the node are off, or it
 *         does not fit cap).
 */
size_t fs_map_local_root(fs_map *m, uint32_t tid, char *dst, size_t cap);

/** @brief Whether fs_map_local_root() would give a directory now. */
bool fs_map_local_root_known(fs_map *m, uint32_t tid);

/**
 * @brief Remember that target tid's chunk files are below root (len bytes,
 * no NUL needed), as long as its node's address stays the same.  Out of
 * memory: not remembered (the reads keep asking the node).
 */
void fs_map_set_local_root(fs_map *m, uint32_t tid, const char *root, size_t len);

/** @brief Forget what fs_map_set_local_root() said of tid (the directory
 *  proved wrong: the target moved); the next CHUNK_LOCATE tells again. */
void fs_map_forget_local_root(fs_map *m, uint32_t tid);

/**
 * @brief Stop short-circuit reads of target tid's node for for_ms (0: until
 * its address changes: it is on another host).
 */
void fs_map_local_off(fs_map *m, uint32_t tid, uint32_t for_ms);

/** @brief Clear the suspicion of tid's node (it answered). */
void fs_map_absolve(fs_map *m, uint32_t tid);

/** @return the epoch of the map in force (0 before the first). */
uint64_t fs_map_epoch(fs_map *m);

void fs_map_get_stats(fs_map *m, struct fs_map_stats *out);
/**
 * @brief The mount's view of the nodes as text, one line per node:
 * "node ID NAME? HOST:PORT rdma_port=P state=S transport=T" where T is the
 * transport of the open connection ("tcp", "rdma") or "none".  Shown to
 * users as the xattr user.ckptfs.connections of the mount root.
 * @return the length written (snprintf rules: may exceed cap, then the
 * text is cut), never negative.
 */
size_t fs_map_describe(fs_map *m, char *buf, size_t cap);

/** @return true when rc says the connection or node failed (not the
 *  request): worth a retry elsewhere or later. */
bool fs_map_is_conn_error(int rc);

#endif

/*
 * meta_server_int.h - internals shared by the files of ckpt-meta's server:
 *
 *   meta_server.c   the object, RPC dispatch, group-commit writer, monitor
 *   meta_ops.c      namespace requests (lookup .. xattrs, statfs, degraded)
 *   meta_session.c  sessions, leases, open handles, the visibility rule
 *   meta_cluster.c  node registry, heartbeats, cluster map, placement
 *   meta_delq.c     the chunk deletion queue worker
 *
 * Only these files include it.  Internal symbols carry the meta_ prefix.
 *
 * Write operations ("wops").  Every request that changes state becomes a
 * struct meta_wop that the single writer thread applies inside a nested
 * LMDB transaction of the current batch (meta_server.c explains the group
 * commit).  A wop type supplies:
 *   decode  on the receive thread: parse the request body into w->msg
 *   apply   on the writer thread, in a child transaction: do the work,
 *           return 0 or a negative code (the child is then aborted, so a
 *           failed apply leaves no trace in the database); it may change
 *           the in-memory session table only through meta_sess_* functions
 *           that record an undo entry, so a batch that fails to commit can
 *           be rolled back in memory too
 *   done    on the writer thread after the batch committed (optional):
 *           post-commit effects (cluster registry, wakeups, reply bodies
 *           that depend on them)
 *   lost    optional: the reply of a successful wop could not be sent
 *           (the client went away): undo what the client will never know
 *           it has (an open handle)
 *   fini    optional: free what decode allocated
 */
#ifndef META_SERVER_INT_H
#define META_SERVER_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "meta_server.h"
#include "meta_store.h"
#include "msg_cluster.h"
#include "msg_meta.h"
#include "msg_node.h"
#include "net.h"

#define META_BATCH_MAX 1000u        /* ops per group commit (LMDB child cost) */
#define META_OPEN_TIMEOUT_MS 86400000u /* what mclient waits for a parked OPEN */
#define META_CKSUM_XATTR "ckptfs.crc32c" /* internal: never shown to clients */

struct meta_server;
struct meta_wop;

struct meta_wop_type {
    const char *name;
    size_t msg_size;  /* bytes of w->msg */
    int (*decode)(const void *body, size_t len, void *msg);
    int (*apply)(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w);
    void (*done)(struct meta_server *srv, struct meta_wop *w);
    void (*lost)(struct meta_server *srv, struct meta_wop *w);
    void (*fini)(struct meta_wop *w);
};

struct meta_wop {
    struct meta_wop *next;             /* queue / waiter list link */
    const struct meta_wop_type *type;
    struct ckpt_req *req;              /* NULL for internal wops */
    int status;                        /* apply's result */
    bool park;                         /* apply: must wait for writers */
    bool wake;                         /* apply: a writer went away */
    bool kick_delq;                    /* apply: deletions were queued */
    uint64_t park_ino;                 /* the inode it waits on */
    uint64_t park_session;             /* the session that waits */
    uint64_t result[2];                /* per-type scratch (handle, ids) */
    struct ckpt_wbuf reply;            /* reply body, written by apply/done */
    uint8_t reply_buf[512];
    void *msg;                         /* decoded request, msg_size bytes */
};

/* What a request is: answered from a read transaction on the receive
 * thread, queued to the writer, or handled on the spot by a function that
 * replies itself (heartbeats, lease renewals, the cluster map). */
enum meta_op_kind {
    META_OPK_READ = 1,
    META_OPK_WRITE,
    META_OPK_DIRECT,
};

typedef int (*meta_read_fn)(struct meta_server *srv, MDB_txn *rtxn,
                            const struct ckpt_req *req, struct ckpt_wbuf *reply);
typedef void (*meta_direct_fn)(struct meta_server *srv, struct ckpt_req *req);

struct meta_op_desc {
    uint16_t opcode;
    enum meta_op_kind kind;
    meta_read_fn read;
    const struct meta_wop_type *write;
    meta_direct_fn direct;
};

/* The dispatch table: X(OPCODE, kind-and-handler).  meta_server.c turns it
 * into the lookup used for every request. */
#define META_RD(fn) META_OPK_READ, fn, NULL, NULL
#define META_WR(ty) META_OPK_WRITE, NULL, &ty, NULL
#define META_DI(fn) META_OPK_DIRECT, NULL, NULL, fn
#define META_DISPATCH(X)                                                      \
    X(LOOKUP, META_RD(meta_rd_lookup))                                        \
    X(GETATTR, META_RD(meta_rd_getattr))                                      \
    X(SETATTR, META_WR(meta_wop_setattr))                                     \
    X(MKNOD, META_WR(meta_wop_mknod))                                         \
    X(MKDIR, META_WR(meta_wop_mkdir))                                         \
    X(UNLINK, META_WR(meta_wop_unlink))                                       \
    X(RMDIR, META_WR(meta_wop_rmdir))                                         \
    X(RENAME, META_WR(meta_wop_rename))                                       \
    X(LINK, META_WR(meta_wop_link))                                           \
    X(SYMLINK, META_WR(meta_wop_symlink))                                     \
    X(READLINK, META_RD(meta_rd_readlink))                                    \
    X(READDIR, META_RD(meta_rd_readdir))                                      \
    X(STATFS, META_RD(meta_rd_statfs))                                        \
    X(SETXATTR, META_WR(meta_wop_setxattr))                                   \
    X(GETXATTR, META_RD(meta_rd_getxattr))                                    \
    X(LISTXATTR, META_RD(meta_rd_listxattr))                                  \
    X(REMOVEXATTR, META_WR(meta_wop_removexattr))                             \
    X(SESSION, META_DI(meta_di_session))                                      \
    X(OPEN, META_WR(meta_wop_open))                                           \
    X(CREATE, META_WR(meta_wop_create))                                       \
    X(FLUSHED, META_WR(meta_wop_flushed))                                     \
    X(RELEASE, META_WR(meta_wop_release))                                     \
    X(DEGRADED, META_WR(meta_wop_degraded))                                   \
    X(CLOSING, META_DI(meta_di_closing))                                      \
    /* checkpoints (meta_ckpt.c) */                                           \
    X(CKPT_COMMIT, META_DI(meta_ckpt_di_commit))                              \
    X(CKPT_LIST, META_RD(meta_ckpt_rd_list))                                  \
    X(CKPT_INFO, META_RD(meta_ckpt_rd_info))                                  \
    X(CKPT_MANIFEST, META_RD(meta_ckpt_rd_manifest))                          \
    X(NODE_REGISTER, META_WR(meta_wop_node_register))                         \
    X(HEARTBEAT, META_DI(meta_di_heartbeat))                                  \
    X(CLUSTER_MAP, META_DI(meta_di_cluster_map)) \
    /* rebuild tasks (meta_rebuild.c) */                                      \
    X(TASK_FETCH, META_DI(meta_di_task_fetch))                                \
    X(TASK_DONE, META_WR(meta_wop_task_done))                                 \
    X(REBUILD_STATUS, META_DI(meta_di_rebuild_status))                        \
    /* operator (meta_admin.c) */                                             \
    X(NODE_STATE, META_WR(meta_wop_node_state))                               \
    X(NODE_INFO, META_DI(meta_di_node_info))                                  \
    X(REBALANCE, META_WR(meta_wop_rebalance))

/* Handlers, by file. */
/* meta_ops.c */
int meta_rd_lookup(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_rd_getattr(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_rd_readlink(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_rd_readdir(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_rd_statfs(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_rd_getxattr(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_rd_listxattr(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
extern const struct meta_wop_type meta_wop_setattr, meta_wop_mknod, meta_wop_mkdir,
    meta_wop_unlink, meta_wop_rmdir, meta_wop_rename, meta_wop_link, meta_wop_symlink,
    meta_wop_setxattr, meta_wop_removexattr, meta_wop_degraded, meta_wop_reap;
/* meta_session.c */
void meta_di_session(struct meta_server *, struct ckpt_req *);
void meta_di_closing(struct meta_server *, struct ckpt_req *);
extern const struct meta_wop_type meta_wop_open, meta_wop_create, meta_wop_flushed,
    meta_wop_release, meta_wop_session_new, meta_wop_session_end, meta_wop_drop_handle;
/* meta_cluster.c */
void meta_di_heartbeat(struct meta_server *, struct ckpt_req *);
void meta_di_cluster_map(struct meta_server *, struct ckpt_req *);
extern const struct meta_wop_type meta_wop_node_register;
/* meta_delq.c */
extern const struct meta_wop_type meta_wop_delq_done;

/* ---- the server object ------------------------------------------------- */

struct meta_sessions; /* meta_session.c */
struct meta_cluster;  /* meta_cluster.c */
struct meta_delq;     /* meta_delq.c */
struct meta_ckpt;     /* meta_ckpt.c */
struct meta_rebuild;  /* meta_rebuild.c */
struct meta_admin;    /* meta_admin.c */
struct meta_undo_log; /* meta_session.c */

/*
 * Lock order: sess_lock, then wq_lock.  cl_lock, mon_lock and log_lock are
 * leaves (never held while taking another lock).  The writer thread runs
 * LMDB calls without holding sess_lock: it is the only thread that changes
 * the session table's handles, so what it read stays true until it changes
 * it itself.
 */
struct meta_server {
    struct meta_server_opts opts;   /* read-only after create */
    meta_store *st;
    ckpt_net *net;
    ckpt_server *rpc;
    uint16_t port;

    /* writer queue */
    pthread_mutex_t wq_lock;
    pthread_cond_t wq_cond;
    struct meta_wop *wq_head, *wq_tail; /* protected by wq_lock */
    bool wq_stop;                       /* protected by wq_lock */
    pthread_t writer;
    bool writer_started;

    /* monitor thread (failure detection, lease expiry) */
    pthread_mutex_t mon_lock;
    pthread_cond_t mon_cond;
    bool mon_stop;                      /* protected by mon_lock */
    pthread_t monitor;
    bool monitor_started;

    pthread_mutex_t sess_lock;
    struct meta_sessions *sess;         /* protected by sess_lock */
    pthread_mutex_t cl_lock;
    struct meta_cluster *cl;            /* protected by cl_lock */
    struct meta_delq *dq;               /* meta_delq.c, own lock */
    struct meta_ckpt *ck;               /* meta_ckpt.c, own lock */
    struct meta_rebuild *rb;            /* meta_rebuild.c, own lock */
    struct meta_admin *adm;             /* meta_admin.c, read-only after init */

    MDB_dbi dbi_degraded;               /* ino + data_gen + stripe -> mask */

    /* Reset read transactions kept for re-use: renewing one keeps its
     * LMDB reader slot, so a read does not take LMDB's reader-table lock. */
    pthread_mutex_t rtx_lock;
    MDB_txn *rtx_pool[64];              /* protected by rtx_lock */
    int rtx_n;                          /* protected by rtx_lock */

    /* counters */
    atomic_uint_fast64_t n_batches, n_write_ops, max_batch, n_delq_sent, n_failed_batches;
    pthread_mutex_t log_lock;
    uint64_t last_enospc_log_ns;        /* protected by log_lock */
};

/* ---- meta_server.c ---------------------------------------------------- */

/** Answer CKPT_E_PROTO, log and close the connection. */
void meta_req_malformed(struct ckpt_req *req, int rc);
/** Allocate a wop of a type (msg zeroed), for a request or internal use. */
struct meta_wop *meta_wop_new(const struct meta_wop_type *type, struct ckpt_req *req);
/** Free a wop (fini, reply buffer, an unanswered request). */
void meta_wop_free(struct meta_wop *w);
/** Queue a wop for the writer (at the front: a woken waiter). */
void meta_wop_submit(struct meta_server *srv, struct meta_wop *w, bool front);
/** @return the current time as a timespec (CLOCK_REALTIME). */
struct timespec meta_now(void);
/** Convert store attributes to wire attributes. */
void meta_attr_to_wire(const struct meta_attr *a, struct ckpt_attr *out);
/** Log at most once a second (placement failures). */
bool meta_log_ratelimit(struct meta_server *srv);

/* ---- meta_session.c -------------------------------------------------- */

int meta_sess_init(struct meta_server *srv);
void meta_sess_fini(struct meta_server *srv);
/** True when some session holds ino open (caller: writer thread). */
bool meta_sess_ino_open(struct meta_server *srv, uint64_t ino);
/** Write ino's handles that live in memory only (read handles) to the
 *  database in txn: ino lost its last name while open (caller: writer
 *  thread).  0 or the LMDB error. */
int meta_sess_persist_ino(struct meta_server *srv, MDB_txn *txn, uint64_t ino);
/** True when some session holds ino open for writing (any thread). */
bool meta_sess_ino_writing(struct meta_server *srv, uint64_t ino);
/* Attribute reads: a writer that announced CLOSING shows its flushing
 * size and mtime (msg_meta.h).  _setattr keeps them in step with a SETATTR
 * that changes the size or mtime meanwhile. */
void meta_sess_pending_attr(struct meta_server *srv, struct meta_attr *a);
void meta_sess_pending_setattr(struct meta_server *srv, const struct meta_attr *a, bool size,
                               bool mtime);
/** Monitor: mark expired sessions and queue their release. */
void meta_sess_tick(struct meta_server *srv, uint64_t now_ns);
/** Writer: begin/rollback/forget the in-memory undo log of a batch. */
void meta_sess_undo_mark(struct meta_server *srv, size_t *out_mark);
void meta_sess_undo_rollback(struct meta_server *srv, size_t mark);
void meta_sess_undo_clear(struct meta_server *srv);
/** Writer, after a commit: put woken waiters back in the queue. */
void meta_sess_wake(struct meta_server *srv);
/** Writer, after a commit: a wop whose apply said park waits now. */
void meta_sess_park(struct meta_server *srv, struct meta_wop *w);
/** A connection went away: drop the OPENs it had waiting. */
void meta_sess_conn_closed(struct meta_server *srv, ckpt_conn *conn);
/** Shutdown: free every parked wop. */
void meta_sess_drop_parked(struct meta_server *srv);
void meta_sess_counts(struct meta_server *srv, uint64_t *out_sessions, uint64_t *out_parked);
/** Queue a REAP of every orphan that no handle holds (start-up). */
int meta_sess_reap_orphans(struct meta_server *srv);

/* ---- meta_cluster.c -------------------------------------------------- */

int meta_cluster_init(struct meta_server *srv);
void meta_cluster_fini(struct meta_server *srv);
/** Monitor: UP -> DOWN -> OUT for silent nodes. */
void meta_cluster_tick(struct meta_server *srv, uint64_t now_ns);
/**
 * Choose l->width targets on distinct failure domains (width shrinks to
 * the number of usable domains when larger, never below k+m).
 * @return 0, or -ENOSPC (fewer than k+m usable domains; logged).
 */
int meta_cluster_place(struct meta_server *srv, struct ckpt_layout *l);
/** Sum of capacity/free over targets of nodes that are not OUT. */
void meta_cluster_space(struct meta_server *srv, uint64_t *out_cap, uint64_t *out_free);
uint64_t meta_cluster_epoch(struct meta_server *srv);

struct meta_delq_target {
    uint32_t tid;
    uint32_t node_id;
    char host[CKPT_HOST_MAX + 1];
    uint16_t port;
};
/** Targets whose node is UP: where queued deletions can be sent now.
 *  @return count (<= cap). */
size_t meta_cluster_live_targets(struct meta_server *srv, struct meta_delq_target *out,
                                 size_t cap);
/** Rebuild: ids of the targets of OUT nodes.  @return count (<= cap). */
size_t meta_cluster_out_targets(struct meta_server *srv, uint32_t *out, size_t cap);
/**
 * Rebuild: where target tid lives: its node, the node's state (a node not
 * heard since registering counts as DOWN) and address (host may be NULL).
 * @return 0, -ENOENT (unknown target).
 */
int meta_cluster_target_where(struct meta_server *srv, uint32_t tid, uint32_t *out_node,
                              uint32_t *out_state, char *host, size_t host_cap,
                              uint16_t *out_port);
/**
 * Rebuild: a target of an UP node with room for chunk_size bytes, in a
 * failure domain that none of used[0..nused) is in, weighted by free space.
 * @return 0, -ENOSPC (none), -ENOMEM.
 */
int meta_cluster_pick_replacement(struct meta_server *srv, const uint32_t *used, size_t nused,
                                  uint32_t chunk_size, uint32_t *out_tid);
/** Bump the map epoch (layouts changed: clients refetch). */
void meta_cluster_epoch_bump(struct meta_server *srv);
/**
 * Operator hold (ckpt-admin node out|in, meta_admin.c): hold 1 shows the
 * node OUT and keeps it OUT whatever its heartbeats say; hold 0 lifts
 * that (the node is DOWN until its next heartbeat makes it UP); hold -1
 * only checks that the node exists.  Bumps the epoch on a change.
 * @return 0, -ENOENT (unknown node).
 */
int meta_cluster_node_hold(struct meta_server *srv, uint32_t node_id, int hold);
/**
 * Operator drain (meta_admin.c): drain true shows the node DRAINING while
 * it heartbeats (lifting an OUT hold); placement and rebuild skip it,
 * reads and deletions still go to it; drain false (or hold 0) cancels it.
 * Bumps the epoch on a change.  @return 0, -ENOENT (unknown node).
 */
int meta_cluster_node_drain(struct meta_server *srv, uint32_t node_id, bool drain);
/** Rebuild: targets of draining nodes that are not OUT; *out_nodes (may
 *  be NULL) gets the number of draining nodes.  @return count (<= cap). */
size_t meta_cluster_draining_targets(struct meta_server *srv, uint32_t *out, size_t cap,
                                     uint32_t *out_nodes);
/**
 * A node's targets (current ones, then detached ones; up to
 * 2 * CKPT_NODE_MAX_TARGETS), its state and flags (1 held OUT, 2 draining).
 * @return 0, -ENOENT.
 */
int meta_cluster_node_targets(struct meta_server *srv, uint32_t node_id, uint32_t *tids,
                              uint32_t *out_n, uint32_t *out_state, uint32_t *out_flags);
/** Operator remove, writer thread: delete the node's records and those of
 *  tids[0..ntids) in txn.  @return 0, -ENOENT, store errors. */
int meta_cluster_node_remove_apply(struct meta_server *srv, MDB_txn *txn, uint32_t node_id,
                                   const uint32_t *tids, uint32_t ntids);
/** After the remove committed: forget the node and its targets; epoch bump. */
void meta_cluster_node_forget(struct meta_server *srv, uint32_t node_id);

struct meta_tusage {
    uint32_t tid, node_id;
    char rack[CKPT_NAME_MAX + 1];
    uint64_t capacity, used, free;
};
/** Rebalance: attached targets of UP nodes with their last heartbeated
 *  usage.  @return count (<= cap). */
size_t meta_cluster_usage(struct meta_server *srv, struct meta_tusage *out, size_t cap);
/** Nodes UP (heard, not draining).  @return count. */
uint32_t meta_cluster_count_up(struct meta_server *srv);
/** The failure domain of tid: its node and rack ("" none).  @return 0, -ENOENT. */
int meta_cluster_domain_of(struct meta_server *srv, uint32_t tid, uint32_t *out_node,
                           char *rack, size_t rack_cap);

/* ---- meta_delq.c ----------------------------------------------------- */

int meta_delq_start(struct meta_server *srv);
void meta_delq_stop(struct meta_server *srv);
void meta_delq_kick(struct meta_server *srv);

/* ---- meta_rebuild.c -------------------------------------------------- */

/** Open the task table and the progress state (start-up, before threads). */
int meta_rebuild_init(struct meta_server *srv);
void meta_rebuild_fini(struct meta_server *srv);
/** Monitor: plan tasks for OUT targets and degraded stripes; log progress. */
void meta_rebuild_tick(struct meta_server *srv, uint64_t now_ns);
void meta_di_task_fetch(struct meta_server *, struct ckpt_req *);
void meta_di_rebuild_status(struct meta_server *, struct ckpt_req *);
extern const struct meta_wop_type meta_wop_task_done, meta_wop_rebuild_plan;
/** What target tid still holds: *files += files whose layout names it,
 *  *bytes += their estimated chunk bytes on it, *open += those of them a
 *  session has open now (a move waits for the close), *tasks += pending
 *  tasks off it (NODE_INFO).  @return 0, store errors. */
int meta_rebuild_target_info(struct meta_server *srv, MDB_txn *txn, uint32_t tid,
                             uint64_t *files, uint64_t *bytes, uint64_t *open,
                             uint64_t *tasks);

/* ---- meta_admin.c ---------------------------------------------------- */

/** Open the operator table and re-apply persisted holds (start-up, after
 *  meta_cluster_init, before threads).  @return 0, store errors, -ENOMEM. */
int meta_admin_init(struct meta_server *srv);
/** Free.  NULL srv->adm is a no-op. */
void meta_admin_fini(struct meta_server *srv);
extern const struct meta_wop_type meta_wop_node_state, meta_wop_rebalance;
void meta_di_node_info(struct meta_server *, struct ckpt_req *);

/* ---- meta_ckpt.c ----------------------------------------------------- */

/** Open the checkpoint tables (start-up, before threads). */
int meta_ckpt_init(struct meta_server *srv);
/** Start / stop the commit thread (stop: before the writer stops). */
int meta_ckpt_start(struct meta_server *srv);
void meta_ckpt_stop(struct meta_server *srv);
/** Stop and free (NULL srv->ck is a no-op). */
void meta_ckpt_fini(struct meta_server *srv);
/** True when ino is inside a COMMITTED checkpoint: namespace ops that
 *  would change it answer -EROFS. */
bool meta_ckpt_immutable(struct meta_server *srv, MDB_txn *txn, uint64_t ino);
/* How urgent restoring redundancy of file ino is, for the rebuild order:
 * a file of the newest COMMITTED checkpoint of its job (the one a restart
 * reads) first, files outside committed checkpoints next, files of older,
 * superseded checkpoints last.  io_dir/io_rank (may be NULL) memoize the
 * answer for the last checkpoint directory seen. */
enum { META_CKPT_RANK_NEWEST = 0, META_CKPT_RANK_OTHER = 1, META_CKPT_RANK_SUPERSEDED = 2,
       META_CKPT_RANKS = 3 };
int meta_ckpt_rank(struct meta_server *srv, MDB_txn *txn, uint64_t ino, uint64_t *io_dir,
                   int *io_rank);
void meta_ckpt_di_commit(struct meta_server *, struct ckpt_req *);
int meta_ckpt_rd_list(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_ckpt_rd_info(struct meta_server *, MDB_txn *, const struct ckpt_req *, struct ckpt_wbuf *);
int meta_ckpt_rd_manifest(struct meta_server *, MDB_txn *, const struct ckpt_req *,
                          struct ckpt_wbuf *);
extern const struct meta_wop_type meta_wop_ckpt_commit;

/* ---- shared by meta_ops.c and meta_session.c --------------------------- */

/**
 * The layout a new regular file in dir gets: the cluster default with the
 * nearest directory layout applied, then placed.  @return 0, -ENOSPC,
 * -EINVAL (a directory layout that does not fit: logged), store errors.
 */
int meta_new_file_layout(struct meta_server *srv, MDB_txn *txn, uint64_t dir,
                         struct ckpt_layout *out);
/** Destroy ino now if it has no name left and nobody holds it open. */
int meta_reap_if_unused(struct meta_server *srv, MDB_txn *txn, uint64_t ino,
                        struct meta_wop *w);
/** Encode an attr reply. */
int meta_reply_attr(struct ckpt_wbuf *reply, const struct meta_attr *a);

#endif

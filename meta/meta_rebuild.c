/*
 * meta_rebuild.c - restoring redundancy: rebuild planning after a node is
 * OUT, repair of degraded stripes, the task table the nodes pull from, the
 * layout swap when a file's rebuild is done, and rebuild progress
 * (msg_task.h: TASK_FETCH, TASK_DONE, REBUILD_STATUS).
 *
 * DESIGN
 *
 *   Tasks (LMDB table "rb.task", so a restart of ckpt-meta resumes them):
 *     key   lost_tid (be32) + ino (be64)
 *     value version 1 (u8), kind (u8), new_tid (le32), attempts (le32),
 *           stripe_lo (le64), stripe_hi (le64); version 2 adds
 *           not_before (le64, realtime seconds: a failed task is handed
 *           out again only from then on, backing off 2 s .. 30 s)
 *   One task per (target, file): REBUILD recreates every chunk the file
 *   keeps on lost_tid (a target of an OUT node) onto new_tid, a target of an
 *   UP node in a failure domain the file does not use yet, picked weighted
 *   by free space (meta_cluster_pick_replacement), so the work spreads over
 *   all survivors.  REPAIR (new_tid == lost_tid) rewrites the chunks of the
 *   stripes [stripe_lo, stripe_hi) that a client recorded as degraded
 *   (table dg.stripe, meta_ops.c DEGRADED) once their target is UP again,
 *   which covers "node back before OUT", writes during failures and bit rot.
 *
 *   Life of a task:
 *
 *     (none) --plan_apply: OUT target in tindex--------> REBUILD
 *     (none) --plan_apply: degraded stripe, target UP---> REPAIR
 *     REPAIR --plan_apply: its target went OUT----------> REBUILD
 *     REPAIR --task_done_apply: -ENOSPC on its target----> REBUILD elsewhere
 *     that REBUILD --task_done_apply: -ENOSPC there------> REPAIR (in place)
 *       (both after the failure's back-off)
 *     any    --plan_apply: inode gone / tid not in layout-> (none)
 *     REBUILD --task_done_apply ok: layout swap---------> (none)
 *     REPAIR  --task_done_apply ok: range covered-------> (none)
 *     any     --task_done_apply failed-----------------> same, attempts+1
 *
 *   Pull model.  Every node polls TASK_FETCH about once a second
 *   (daemon/node_task.c); meta answers the tasks whose new_tid is on that
 *   node with the file's current layout, data_gen and size and the address
 *   of every slot's node (UP nodes only).  Meta keeps no lease: the node
 *   remembers what it runs and skips it when fetched again; a node that
 *   dies with a task simply leaves it in the table, and the next fetch of
 *   the replacement node (or, if that node is OUT, a re-plan) picks it up.
 *   Tasks are idempotent (chunks are rewritten with the survivors'
 *   generation), so running one twice wastes work but is never wrong.
 *
 *   Layout swap.  TASK_DONE of a REBUILD whose data_gen and size still match
 *   the file's replaces lost_tid by new_tid in one transaction
 *   (meta_store_layout_replace_target), queues the deletion of the file's
 *   chunks on lost_tid (garbage if that node ever returns), clears the
 *   degraded bits of the rebuilt slot, deletes the task, and after the
 *   commit bumps the map epoch so that clients refetch layouts.  A file
 *   that changed meanwhile keeps its task and is rebuilt again.
 *
 *   Threads.  Planning runs on the writer thread as an internal wop
 *   (meta_wop_rebuild_plan) that the monitor submits at most once a second
 *   while OUT targets or degraded stripes exist (meta_rebuild_tick); each
 *   run plans at most PLAN_BATCH files.  TASK_FETCH and REBUILD_STATUS are
 *   answered on the receive thread from a read transaction; TASK_DONE is a
 *   write wop.  rb->lock (a leaf) protects the counters.
 *
 *   Data movement (CKPT_TASK_MOVE: drain and rebalance).  A MOVE task has
 *   the same key and value as a REBUILD; its lost_tid is a live source.
 *     drain: plan_apply also walks the tindex of every target of a
 *       DRAINING node (meta_cluster_draining_targets) and plans one MOVE
 *       per file onto a target picked as for a rebuild (UP nodes only,
 *       new failure domain, weighted by free space).
 *     rebalance (meta_wop_rebalance, ckpt-admin rebalance): from the
 *       targets' heartbeated usage (used/capacity) it repeatedly takes the
 *       fullest target and moves one file slot of it (the next file of its
 *       tindex) to the least used target that is in a failure domain the
 *       file does not use and ends up below the source, simulating the
 *       usage, until every target is within threshold percent of the mean
 *       or nothing can move (REBAL_MAX_MOVES per request).  A dry run
 *       only returns the plan; a real run stores the moves as tasks, so a
 *       restart of ckpt-meta resumes them by itself (the task table is
 *       the plan), and stores max_rate in rb.conf.
 *     run: TASK_FETCH hands a MOVE out only while no session has the file
 *       open, with every slot's address including the source
 *       and rate_bps = max_rate / the number of nodes pending moves go to
 *       (counted each second by the monitor); the node copies each chunk
 *       from the source (decoding from the others when that fails).
 *     swap: TASK_DONE of a MOVE swaps like a REBUILD, only if the file's
 *       size, data_gen and mtime/ctime (attr_stamp) are still those the
 *       task was fetched with and no session has it open (else the task
 *       stays and runs again once it is closed: a writer or reader that
 *       opens the file after the swap gets the new layout, and no open
 *       handle ever holds a layout whose old chunks are being deleted,
 *       which matters because the FUSE client keeps a file's layout from
 *       OPEN to RELEASE), then queues the file's chunks on the source
 *       for deletion (meta_delq.c sends them after the commit).  Degraded
 *       records are kept (they name chunk indexes, not targets, so a
 *       stale chunk copied from the source is repaired on the new
 *       target).  A file held open for long is moved after it is closed;
 *       a task copied while it was opened is copied again.
 *   A MOVE whose source goes OUT becomes a REBUILD (plan_file); one whose
 *   destination's node is OUT or unknown (removed) is dropped by
 *   plan_prune (a drain plans it again).
 *
 *   Order.  TASK_FETCH hands a node its tasks by urgency
 *   (meta_ckpt_rank): files of the newest COMMITTED checkpoint of each job
 *   (what a restart reads) first, then files outside committed
 *   checkpoints, then files of superseded checkpoints; within a rank in
 *   (target, inode) order.  Nodes run what they fetched in that order.
 *
 *   Known limits.  Planning walks the tindex of each OUT target and the
 *   whole degraded table on every run, and TASK_FETCH walks the task table
 *   (until it has a full answer of the first rank): O(files on lost
 *   targets + tasks) per second; ranking lists the job directory of each
 *   checkpoint met (memoized per run of equal checkpoints).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"
#include "msg_admin.h"
#include "msg_task.h"

#define PLAN_BATCH 512u           /* new tasks per planning run */
#define PLAN_INTERVAL_NS 1000000000ull
#define LOG_INTERVAL_NS 5000000000ull
#define MAX_OUT_TARGETS 1024u
#define DG_SCAN_MAX 4096u         /* degraded records looked at per run */
#define MAX_DRAIN_TARGETS 1024u
#define REBAL_MAX_MOVES 8192u     /* moves one rebalance request plans */
#define REBAL_MAX_TARGETS 4096u
#define SLOT_BYTES_EXACT 4096u    /* stripes counted exactly; more: estimated */

struct meta_rebuild {
    MDB_dbi dbi_task;
    pthread_mutex_t lock;
    /* protected by lock: */
    uint64_t last_plan_ns, last_log_ns;
    uint64_t tasks_done, tasks_failed, chunks_done, bytes_done;
    uint64_t win_bytes, win_start_ns, rate_bps; /* rate over the last window */
    uint64_t busy_since_ns;       /* when the current run was planned */
    uint64_t last_done_ns;        /* the last completion of the run */
    uint64_t run_bytes, run_chunks, run_tasks;
    bool active;                  /* tasks existed at the last tick */
    uint32_t lost_targets;
    /* data movement (MOVE tasks), protected by lock: */
    uint64_t moves_done, move_bytes_done, move_win_bytes, move_rate_bps;
    uint64_t moves_pending;       /* at the last tick */
    uint64_t moves_logged, move_bytes_logged; /* at the last "all moves done" */
    uint64_t max_rate_bps;        /* persisted in rb.conf */
    uint32_t draining_nodes;
    uint32_t move_dst_nodes;      /* nodes pending moves go to (last scan) */
    bool drain_empty_logged;      /* the draining targets were empty at the last plan */
    MDB_dbi dbi_conf;
};

struct task_val {
    uint8_t kind;
    uint32_t new_tid;
    uint32_t attempts;
    uint64_t lo, hi;
    int64_t not_before;           /* realtime s: failed, retried from then on */
};

/* A failed task waits 2, 4, 8, 16, then 30 s before it is handed out again. */
static int64_t retry_delay_s(uint32_t attempts)
{
    return attempts >= 5 ? 30 : (int64_t)1 << attempts;
}

/* ---- encoding ----------------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get_be32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define TASK_KEY_LEN 12
#define TASK_VAL_LEN_V1 26
#define TASK_VAL_LEN 34

static void task_key(uint8_t kb[TASK_KEY_LEN], uint32_t tid, uint64_t ino)
{
    put_be32(kb, tid);
    put_be64(kb + 4, ino);
}

static int task_decode(const MDB_val *v, struct task_val *out)
{
    const uint8_t *p = v->mv_data;
    if (!((v->mv_size == TASK_VAL_LEN_V1 && p[0] == 1) ||
          (v->mv_size == TASK_VAL_LEN && p[0] == 2)) ||
        p[1] >= CKPT_TASK_NKINDS)
        return -EIO;
    out->kind = p[1];
    out->new_tid = (uint32_t)get_le(p + 2, 4);
    out->attempts = (uint32_t)get_le(p + 6, 4);
    out->lo = get_le(p + 10, 8);
    out->hi = get_le(p + 18, 8);
    out->not_before = p[0] == 2 ? (int64_t)get_le(p + 26, 8) : 0;
    return 0;
}

static int task_get(struct meta_server *srv, MDB_txn *txn, uint32_t tid, uint64_t ino,
                    struct task_val *out)
{
    uint8_t kb[TASK_KEY_LEN];
    MDB_val k = {sizeof(kb), kb}, v;
    task_key(kb, tid, ino);
    int rc = meta_store_errno(mdb_get(txn, srv->rb->dbi_task, &k, &v));
    return rc < 0 ? rc : task_decode(&v, out);
}

static int task_put(struct meta_server *srv, MDB_txn *txn, uint32_t tid, uint64_t ino,
                    const struct task_val *t)
{
    uint8_t kb[TASK_KEY_LEN], vb[TASK_VAL_LEN];
    MDB_val k = {sizeof(kb), kb}, v = {sizeof(vb), vb};
    task_key(kb, tid, ino);
    vb[0] = 2;
    vb[1] = t->kind;
    put_le(vb + 2, t->new_tid, 4);
    put_le(vb + 6, t->attempts, 4);
    put_le(vb + 10, t->lo, 8);
    put_le(vb + 18, t->hi, 8);
    put_le(vb + 26, (uint64_t)t->not_before, 8);
    return meta_store_errno(mdb_put(txn, srv->rb->dbi_task, &k, &v, 0));
}

static int task_del(struct meta_server *srv, MDB_txn *txn, uint32_t tid, uint64_t ino)
{
    uint8_t kb[TASK_KEY_LEN];
    MDB_val k = {sizeof(kb), kb};
    task_key(kb, tid, ino);
    int rc = meta_store_errno(mdb_del(txn, srv->rb->dbi_task, &k, NULL));
    return rc == -ENOENT ? 0 : rc;
}

/* A fingerprint of the times a write session changes (TASK_DONE of a MOVE
 * swaps only when it is unchanged since the fetch). */
static uint64_t attr_stamp(const struct meta_attr *a)
{
    uint64_t m = (uint64_t)a->mtime.tv_sec * 1000000000ull + (uint64_t)a->mtime.tv_nsec;
    uint64_t c = (uint64_t)a->ctime.tv_sec * 1000000000ull + (uint64_t)a->ctime.tv_nsec;
    return m * 0x9e3779b97f4a7c15ull ^ c;
}

static int slot_of(const struct ckpt_layout *l, uint32_t tid)
{
    for (int i = 0; i < l->width; i++)
        if (l->targets[i] == tid)
            return i;
    return -1;
}

/*
 * Chunk bytes that slot `slot` of a file of `size` bytes holds: exact for
 * up to SLOT_BYTES_EXACT stripes, else size * (k+m) / k / width.
 */
static uint64_t slot_bytes(const struct ckpt_layout *l, uint64_t size, uint32_t slot)
{
    uint64_t ns = ckpt_layout_nstripes(l, size), total = 0;
    unsigned n = (unsigned)l->k + l->m;
    uint32_t w = l->width ? l->width : n;
    if (ns > SLOT_BYTES_EXACT)
        return size / l->k * n / w;
    for (uint64_t s = 0; s < ns; s++) {
        uint32_t idx = (uint32_t)((slot + w - s % w) % w);
        if (idx >= n)
            continue;
        total += ckpt_layout_chunk_len(l, size, s, idx < l->k ? idx : 0);
    }
    return total;
}

#define DST_NODES_MAX 256u

/* The pending MOVE tasks, (if want_bytes) the bytes they still move, and
 * the number of distinct nodes they move to (at most DST_NODES_MAX). */
static int moves_scan(struct meta_server *srv, MDB_txn *txn, bool want_bytes,
                      uint64_t *out_n, uint64_t *out_bytes, uint32_t *out_dst_nodes)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t n = 0, bytes = 0;
    uint32_t dst[DST_NODES_MAX], ndst = 0;
    int rc = meta_store_errno(mdb_cursor_open(txn, srv->rb->dbi_task, &cur));
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0) {
        struct task_val tv;
        if (k.mv_size == TASK_KEY_LEN && task_decode(&v, &tv) == 0 &&
            tv.kind == CKPT_TASK_MOVE) {
            n++;
            uint32_t node, state;
            uint16_t port;
            if (ndst < DST_NODES_MAX &&
                meta_cluster_target_where(srv, tv.new_tid, &node, &state, NULL, 0, &port) == 0) {
                bool seen = false;
                for (uint32_t i = 0; i < ndst && !seen; i++)
                    seen = dst[i] == node;
                if (!seen)
                    dst[ndst++] = node;
            }
            uint32_t tid = get_be32(k.mv_data);
            uint64_t ino = get_be64((const uint8_t *)k.mv_data + 4);
            struct meta_attr a;
            struct ckpt_layout l;
            int slot;
            if (want_bytes && meta_store_getattr(txn, ino, &a) == 0 &&
                meta_store_layout_get(txn, ino, &l) == 0 && (slot = slot_of(&l, tid)) >= 0)
                bytes += slot_bytes(&l, a.size, (uint32_t)slot);
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    mdb_cursor_close(cur);
    *out_n = n;
    *out_bytes = bytes;
    *out_dst_nodes = ndst;
    return rc == -ENOENT ? 0 : rc;
}

/* ---- degraded stripes ---------------------------------------------------------- */

/*
 * Clear, in dg.stripe, the bits of chunks stored at `slot` of ino's layout
 * for stripes [lo, hi) at data_gen (they were rewritten); drop records whose
 * mask becomes empty.
 */
static int dg_clear_slot(struct meta_server *srv, MDB_txn *txn, uint64_t ino, uint64_t gen,
                         const struct ckpt_layout *l, uint32_t slot, uint64_t lo, uint64_t hi)
{
    MDB_cursor *cur = NULL;
    uint8_t kb[24];
    MDB_val k = {sizeof(kb), kb}, v;
    unsigned n = (unsigned)l->k + l->m;
    int rc;

    put_be64(kb, ino);
    put_be64(kb + 8, gen);
    put_be64(kb + 16, lo);
    rc = meta_store_errno(mdb_cursor_open(txn, srv->dbi_degraded, &cur));
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
    while (rc == 0) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size != 24 || get_be64(kp) != ino || get_be64(kp + 8) != gen)
            break;
        uint64_t s = get_be64(kp + 16);
        if (s >= hi)
            break;
        if (v.mv_size == 5) {
            const uint8_t *p = v.mv_data;
            uint32_t mask = (uint32_t)get_le(p + 1, 4), nm = mask;
            for (unsigned i = 0; i < n; i++)
                if (ckpt_layout_slot(l, s, i) == slot)
                    nm &= ~(1u << i);
            if (nm == 0) {
                rc = meta_store_errno(mdb_cursor_del(cur, 0));
            } else if (nm != mask) {
                uint8_t vb[5];
                vb[0] = 1;
                put_le(vb + 1, nm, 4);
                MDB_val nv = {sizeof(vb), vb};
                rc = meta_store_errno(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
            }
            if (rc < 0)
                break;
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

/* ---- planning (writer thread) -------------------------------------------------- */

struct plan_ctx {
    struct meta_server *srv;
    MDB_txn *txn;
    uint32_t tid;
    const uint32_t *out;
    size_t nout;
    uint32_t planned;
    uint32_t nospace;
    uint64_t visited;   /* files seen on draining targets */
    int err;
};

static bool is_out(const struct plan_ctx *p, uint32_t tid)
{
    for (size_t i = 0; i < p->nout; i++)
        if (p->out[i] == tid)
            return true;
    return false;
}

/* Plan a task of kind for ino off p->tid, onto a target in a failure
 * domain none of used[] is in (none with room: counted in p->nospace). */
static int plan_put(struct plan_ctx *p, uint64_t ino, uint8_t kind, const uint32_t *used,
                    size_t nused, uint32_t chunk_size)
{
    struct task_val t;
    memset(&t, 0, sizeof(t));
    t.kind = kind;
    t.hi = UINT64_MAX;
    int rc = meta_cluster_pick_replacement(p->srv, used, nused, chunk_size, &t.new_tid);
    if (rc == -ENOSPC) {
        p->nospace++;
        return 0;
    }
    if (rc == 0)
        rc = task_put(p->srv, p->txn, p->tid, ino, &t);
    if (rc < 0) {
        p->err = rc;
        return rc;
    }
    p->planned++;
    CKPT_LOG_DEBUG("%s planned: inode %llu target %u -> %u",
                   kind == CKPT_TASK_MOVE ? "drain" : "rebuild", (unsigned long long)ino,
                   p->tid, t.new_tid);
    return 0;
}

/* tindex callback: plan the rebuild of one file's chunks on p->tid. */
static int plan_file(uint64_t ino, void *ctx)
{
    struct plan_ctx *p = ctx;
    struct meta_server *srv = p->srv;
    struct task_val t;
    struct ckpt_layout l;
    uint32_t used[2 * CKPT_LAYOUT_MAX_WIDTH];
    size_t nused = 0;
    int rc;

    if (p->planned >= PLAN_BATCH)
        return 1;
    rc = task_get(srv, p->txn, p->tid, ino, &t);
    if (rc == 0 && t.kind == CKPT_TASK_REBUILD)
        return 0;
    if (rc < 0 && rc != -ENOENT) {
        p->err = rc;
        return rc;
    }
    rc = meta_store_layout_get(p->txn, ino, &l);
    if (rc == -ENOENT || rc == -ENODATA || rc == -EINVAL)
        return 0;
    if (rc < 0) {
        p->err = rc;
        return rc;
    }
    for (int i = 0; i < l.width; i++) {
        used[nused++] = l.targets[i];
        /* Another lost target of this file already has its replacement. */
        struct task_val o;
        if (l.targets[i] != p->tid && is_out(p, l.targets[i]) &&
            task_get(srv, p->txn, l.targets[i], ino, &o) == 0 && o.kind == CKPT_TASK_REBUILD)
            used[nused++] = o.new_tid;
    }
    return plan_put(p, ino, CKPT_TASK_REBUILD, used, nused, l.chunk_size);
}

/* tindex callback: plan the move of one file's chunks off draining p->tid. */
static int plan_move_file(uint64_t ino, void *ctx)
{
    struct plan_ctx *p = ctx;
    struct meta_server *srv = p->srv;
    struct task_val t;
    struct ckpt_layout l;
    uint32_t used[2 * CKPT_LAYOUT_MAX_WIDTH];
    size_t nused = 0;
    int rc;

    p->visited++;
    if (p->planned >= PLAN_BATCH)
        return 1;
    rc = task_get(srv, p->txn, p->tid, ino, &t);
    if (rc == 0)
        return 0; /* a move, rebuild or repair of it is pending */
    if (rc != -ENOENT) {
        p->err = rc;
        return rc;
    }
    rc = meta_store_layout_get(p->txn, ino, &l);
    if (rc == -ENOENT || rc == -ENODATA || rc == -EINVAL)
        return 0;
    if (rc < 0) {
        p->err = rc;
        return rc;
    }
    for (int i = 0; i < l.width; i++) {
        struct task_val o;
        used[nused++] = l.targets[i];
        if (l.targets[i] != p->tid && task_get(srv, p->txn, l.targets[i], ino, &o) == 0 &&
            o.new_tid != l.targets[i])
            used[nused++] = o.new_tid;
    }
    return plan_put(p, ino, CKPT_TASK_MOVE, used, nused, l.chunk_size);
}

/* Drop tasks whose file is gone or whose target left the layout, and moves
 * whose destination is gone or OUT. */
static int plan_prune(struct meta_server *srv, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = meta_store_errno(mdb_cursor_open(txn, srv->rb->dbi_task, &cur));
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0) {
        struct ckpt_layout l;
        bool drop = k.mv_size != TASK_KEY_LEN;
        if (!drop) {
            uint32_t tid = get_be32(k.mv_data);
            uint64_t ino = get_be64((const uint8_t *)k.mv_data + 4);
            int lr = meta_store_layout_get(txn, ino, &l);
            if (lr == -ENOENT || lr == -ENODATA || lr == -EINVAL)
                drop = true;
            else if (lr < 0)
                rc = lr;
            else
                drop = slot_of(&l, tid) < 0;
            struct task_val tv;
            uint32_t node, state;
            uint16_t port;
            if (!drop && rc == 0 && task_decode(&v, &tv) == 0 && tv.kind != CKPT_TASK_REPAIR) {
                int wr = meta_cluster_target_where(srv, tv.new_tid, &node, &state, NULL, 0,
                                                   &port);
                drop = wr == -ENOENT || (tv.kind == CKPT_TASK_MOVE && state == CKPT_NODE_OUT);
            }
        }
        if (rc < 0)
            break;
        if (drop)
            rc = meta_store_errno(mdb_cursor_del(cur, 0));
        if (rc == 0)
            rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

/* Plan REPAIR tasks for recorded degraded stripes whose target is UP. */
static int plan_repairs(struct meta_server *srv, MDB_txn *txn, uint32_t *planned)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned seen = 0;
    int rc = meta_store_errno(mdb_cursor_open(txn, srv->dbi_degraded, &cur));
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0 && seen++ < DG_SCAN_MAX) {
        const uint8_t *kp = k.mv_data;
        struct meta_attr a;
        struct ckpt_layout l;
        bool stale = k.mv_size != 24 || v.mv_size != 5;
        uint64_t ino = 0, gen = 0, s = 0;
        uint32_t mask = 0;
        if (!stale) {
            ino = get_be64(kp);
            gen = get_be64(kp + 8);
            s = get_be64(kp + 16);
            mask = (uint32_t)get_le((const uint8_t *)v.mv_data + 1, 4);
            int ar = meta_store_getattr(txn, ino, &a);
            if (ar == -ENOENT || (ar == 0 && (a.data_gen != gen || !S_ISREG(a.mode))))
                stale = true;
            else if (ar < 0)
                rc = ar;
            if (!stale && rc == 0) {
                int lr = meta_store_layout_get(txn, ino, &l);
                if (lr == -ENODATA || lr == -EINVAL || lr == -ENOENT)
                    stale = true;
                else if (lr < 0)
                    rc = lr;
            }
        }
        if (rc < 0)
            break;
        if (stale) {
            rc = meta_store_errno(mdb_cursor_del(cur, 0));
        } else {
            for (unsigned i = 0; i < (unsigned)l.k + l.m && rc == 0; i++) {
                if (!(mask & (1u << i)))
                    continue;
                uint32_t tid = l.targets[ckpt_layout_slot(&l, s, i)];
                uint32_t node, state;
                uint16_t port;
                struct task_val t;
                if (meta_cluster_target_where(srv, tid, &node, &state, NULL, 0, &port) < 0 ||
                    (state != CKPT_NODE_UP && state != CKPT_NODE_DRAINING))
                    continue;
                int tr = task_get(srv, txn, tid, ino, &t);
                if (tr == -ENOENT) {
                    memset(&t, 0, sizeof(t));
                    t.kind = CKPT_TASK_REPAIR;
                    t.new_tid = tid;
                    t.lo = s;
                    t.hi = s + 1;
                    rc = task_put(srv, txn, tid, ino, &t);
                    (*planned)++;
                } else if (tr < 0) {
                    rc = tr;
                } else if (t.kind == CKPT_TASK_REPAIR && (s < t.lo || s >= t.hi)) {
                    t.lo = s < t.lo ? s : t.lo;
                    t.hi = s + 1 > t.hi ? s + 1 : t.hi;
                    rc = task_put(srv, txn, tid, ino, &t);
                }
            }
        }
        if (rc == 0)
            rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

static int plan_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    uint32_t out[MAX_OUT_TARGETS];
    size_t nout = meta_cluster_out_targets(srv, out, MAX_OUT_TARGETS);
    struct plan_ctx p = {.srv = srv, .txn = txn, .out = out, .nout = nout};
    uint32_t repairs = 0;
    int rc = plan_prune(srv, txn);

    for (size_t i = 0; i < nout && rc == 0; i++) {
        p.tid = out[i];
        rc = meta_store_tindex_iter(txn, out[i], 0, plan_file, &p);
        if (rc == 0 && p.err)
            rc = p.err;
    }
    if (rc == 0)
        rc = plan_repairs(srv, txn, &repairs);
    uint32_t rebuilds = p.planned;
    p.planned = 0;
    uint32_t *dr = rc == 0 ? ckpt_malloc(MAX_DRAIN_TARGETS * sizeof(*dr)) : NULL;
    if (rc == 0 && !dr)
        rc = -ENOMEM;
    size_t ndr = rc == 0 ? meta_cluster_draining_targets(srv, dr, MAX_DRAIN_TARGETS, NULL) : 0;
    for (size_t i = 0; i < ndr && rc == 0; i++) {
        p.tid = dr[i];
        rc = meta_store_tindex_iter(txn, dr[i], 0, plan_move_file, &p);
        if (rc == 0 && p.err)
            rc = p.err;
    }
    ckpt_free(dr);
    if (rc < 0)
        return rc;
    uint32_t moves = p.planned;
    p.planned = rebuilds;
    if (moves)
        CKPT_LOG_INFO("drain: planned %u move task(s) off %zu draining target(s)", moves, ndr);
    pthread_mutex_lock(&srv->rb->lock);
    bool log_empty = ndr && !p.visited && !srv->rb->drain_empty_logged;
    srv->rb->drain_empty_logged = ndr && !p.visited;
    pthread_mutex_unlock(&srv->rb->lock);
    if (log_empty)
        CKPT_LOG_INFO("drain: no file uses the %zu target(s) of the draining node(s) any more; "
                      "once their deletions are sent they can be removed", ndr);
    if (p.nospace && meta_log_ratelimit(srv))
        CKPT_LOG_WARN("rebuild: %u file(s) have no replacement target in a new failure domain "
                      "with room; they stay degraded until one is added", p.nospace);
    if (p.planned || repairs || moves) {
        pthread_mutex_lock(&srv->rb->lock);
        if (!srv->rb->busy_since_ns)
            srv->rb->busy_since_ns = ckpt_now_ns();
        pthread_mutex_unlock(&srv->rb->lock);
    }
    if (p.planned || repairs)
        CKPT_LOG_INFO("rebuild: planned %u rebuild and %u repair task(s) (%zu OUT target(s))",
                      p.planned, repairs, nout);
    (void)w;
    return 0;
}

const struct meta_wop_type meta_wop_rebuild_plan = {
    .name = "REBUILD_PLAN",
    .msg_size = 1,
    .apply = plan_apply,
};

/* ---- TASK_DONE (writer thread) -------------------------------------------------- */

static int done_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_task_done_decode(body, len, msg);
}

static int done_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_task_done *m = w->msg;
    struct task_val t;
    struct meta_attr a;
    struct ckpt_layout l;
    int rc = task_get(srv, txn, m->lost_tid, m->ino, &t);

    w->result[0] = 0; /* 1: swapped, 2: repaired, 3: failed, 4: moved */
    if (rc == -ENOENT || (rc == 0 && (t.new_tid != m->new_tid || t.kind != m->kind)))
        return 0; /* already done, or re-planned: the report is stale */
    if (rc < 0)
        return rc;
    if (m->status < 0) {
        t.attempts++;
        t.not_before = (int64_t)meta_now().tv_sec + retry_delay_s(t.attempts);
        w->result[0] = 3;
        uint32_t lnode, lstate;
        uint16_t lport;
        bool lost_alive = meta_cluster_target_where(srv, m->lost_tid, &lnode, &lstate, NULL, 0,
                                                    &lport) == 0 &&
                          (lstate == CKPT_NODE_UP || lstate == CKPT_NODE_DRAINING);
        if (t.kind == CKPT_TASK_REBUILD && m->status == -ENOSPC && lost_alive) {
            /* A repair moved elsewhere (below) found no room there either:
             * back to repairing in place; whichever target gets room first
             * takes it, the back-off growing meanwhile. */
            t.kind = CKPT_TASK_REPAIR;
            t.new_tid = m->lost_tid;
            t.lo = 0;
            t.hi = UINT64_MAX;
        } else if (t.kind == CKPT_TASK_REPAIR && m->status == -ENOSPC &&
                   meta_store_layout_get(txn, m->ino, &l) == 0 &&
                   slot_of(&l, m->lost_tid) >= 0) {
            /* The target is full: repairing onto it cannot succeed.  Rebuild
             * the slot onto another target instead (decoded from the
             * others); the layout swap then frees the full one. */
            uint32_t used[CKPT_LAYOUT_MAX_WIDTH], nt = 0;
            for (int i = 0; i < l.width; i++)
                used[i] = l.targets[i];
            if (meta_cluster_pick_replacement(srv, used, (size_t)l.width, l.chunk_size,
                                              &nt) == 0) {
                CKPT_LOG_WARN("repair of inode %llu onto target %u: no space there; "
                              "rebuilding that slot onto target %u instead",
                              (unsigned long long)m->ino, m->lost_tid, nt);
                t.kind = CKPT_TASK_REBUILD;
                t.new_tid = nt;
                t.lo = 0;
                t.hi = UINT64_MAX;
            }
        }
        return task_put(srv, txn, m->lost_tid, m->ino, &t);
    }
    rc = meta_store_getattr(txn, m->ino, &a);
    if (rc == 0)
        rc = meta_store_layout_get(txn, m->ino, &l);
    if (rc == -ENOENT || rc == -ENODATA)
        return task_del(srv, txn, m->lost_tid, m->ino);
    if (rc < 0)
        return rc;
    int slot = slot_of(&l, m->lost_tid);
    if (slot < 0)
        return task_del(srv, txn, m->lost_tid, m->ino);
    if (a.data_gen != m->data_gen || (t.kind == CKPT_TASK_REBUILD && a.size != m->size))
        return 0; /* the file changed while it was rebuilt: the task runs again */
    uint64_t nstripes = ckpt_layout_nstripes(&l, a.size);
    if (t.kind == CKPT_TASK_MOVE) {
        if (m->stripe_lo != 0 || m->stripe_hi < nstripes || a.size != m->size ||
            attr_stamp(&a) != m->attr_stamp)
            return 0; /* written meanwhile: copied again */
        if (meta_sess_ino_open(srv, m->ino) || meta_sess_ino_writing(srv, m->ino))
            return 0; /* swapped once nobody has it open: the task runs again */
        rc = meta_store_layout_replace_target(txn, m->ino, m->lost_tid, m->new_tid);
        if (rc == -EEXIST) {
            /* Another move of the file took that target meanwhile: the
             * copy is garbage there only if nothing else uses it, which the
             * layout says it does; drop the task (a drain plans it again). */
            CKPT_LOG_WARN("move of inode %llu target %u -> %u dropped: the file already "
                          "uses target %u", (unsigned long long)m->ino, m->lost_tid,
                          m->new_tid, m->new_tid);
            return task_del(srv, txn, m->lost_tid, m->ino);
        }
        if (rc == 0) {
            struct meta_delq_entry e = {.tid = m->lost_tid, .ino = m->ino,
                                        .data_gen = a.data_gen, .from_stripe = 0};
            rc = meta_store_delq_add(txn, &e);
        }
        if (rc == 0)
            rc = task_del(srv, txn, m->lost_tid, m->ino);
        if (rc == 0)
            w->kick_delq = true;
        w->result[0] = 4;
        return rc;
    }
    if (t.kind == CKPT_TASK_REBUILD) {
        if (m->stripe_lo != 0 || m->stripe_hi < nstripes)
            return 0;
        rc = dg_clear_slot(srv, txn, m->ino, a.data_gen, &l, (uint32_t)slot, 0, UINT64_MAX);
        if (rc == 0)
            rc = meta_store_layout_replace_target(txn, m->ino, m->lost_tid, m->new_tid);
        if (rc == 0) {
            /* Whatever stayed on the lost target is garbage if it returns. */
            struct meta_delq_entry e = {.tid = m->lost_tid, .ino = m->ino,
                                        .data_gen = a.data_gen, .from_stripe = 0};
            rc = meta_store_delq_add(txn, &e);
        }
        if (rc == 0)
            rc = task_del(srv, txn, m->lost_tid, m->ino);
        w->result[0] = 1;
        return rc;
    }
    rc = dg_clear_slot(srv, txn, m->ino, a.data_gen, &l, (uint32_t)slot, m->stripe_lo,
                       m->stripe_hi);
    if (rc == 0 && m->stripe_lo <= t.lo && (m->stripe_hi >= t.hi || m->stripe_hi >= nstripes))
        rc = task_del(srv, txn, m->lost_tid, m->ino);
    w->result[0] = 2;
    return rc;
}

static void done_done(struct meta_server *srv, struct meta_wop *w)
{
    const struct ckpt_msg_task_done *m = w->msg;
    struct meta_rebuild *rb = srv->rb;

    if (w->status < 0 || w->result[0] == 0)
        return;
    pthread_mutex_lock(&rb->lock);
    if (w->result[0] == 3) {
        rb->tasks_failed++;
    } else if (w->result[0] == 4) {
        rb->moves_done++;
        rb->move_bytes_done += m->bytes;
        rb->move_win_bytes += m->bytes;
    } else {
        rb->tasks_done++;
        rb->chunks_done += m->chunks;
        rb->bytes_done += m->bytes;
        rb->win_bytes += m->bytes;
        rb->run_bytes += m->bytes;
        rb->last_done_ns = ckpt_now_ns();
        rb->run_chunks += m->chunks;
        rb->run_tasks++;
    }
    pthread_mutex_unlock(&rb->lock);
    if (w->result[0] == 3) {
        CKPT_LOG_WARN("%s of inode %llu target %u -> %u failed on node %u: " CKPT_RC_FMT
                      "; it will be retried", ckpt_task_kind_name(m->kind),
                      (unsigned long long)m->ino, m->lost_tid, m->new_tid, m->node_id,
                      CKPT_RC_ARGS(m->status));
        return;
    }
    if (w->result[0] == 4) {
        meta_cluster_epoch_bump(srv);
        CKPT_LOG_DEBUG("move of inode %llu done: target %u replaced by %u (%llu bytes)",
                       (unsigned long long)m->ino, m->lost_tid, m->new_tid,
                       (unsigned long long)m->bytes);
    }
    if (w->result[0] == 1) {
        meta_cluster_epoch_bump(srv);
        CKPT_LOG_DEBUG("rebuild of inode %llu done: target %u replaced by %u (%llu bytes)",
                       (unsigned long long)m->ino, m->lost_tid, m->new_tid,
                       (unsigned long long)m->bytes);
    }
}

const struct meta_wop_type meta_wop_task_done = {
    .name = "TASK_DONE",
    .msg_size = sizeof(struct ckpt_msg_task_done),
    .decode = done_decode,
    .apply = done_apply,
    .done = done_done,
};

/* ---- TASK_FETCH, REBUILD_STATUS (receive threads) ------------------------------- */

static int fill_task(struct meta_server *srv, MDB_txn *txn, uint32_t tid, uint64_t ino,
                     const struct task_val *tv, uint64_t move_rate, struct ckpt_task *out)
{
    struct meta_attr a;
    if (tv->not_before && tv->not_before > (int64_t)meta_now().tv_sec)
        return -EAGAIN; /* failed lately: backing off */
    if (tv->kind == CKPT_TASK_MOVE &&
        (meta_sess_ino_open(srv, ino) || meta_sess_ino_writing(srv, ino)))
        return -EAGAIN; /* moved once nobody has it open */
    int rc = meta_store_getattr(txn, ino, &a);
    if (rc == 0)
        rc = meta_store_layout_get(txn, ino, &out->layout);
    if (rc < 0)
        return rc;
    int slot = slot_of(&out->layout, tid);
    if (slot < 0)
        return -ENOENT;
    uint64_t ns = ckpt_layout_nstripes(&out->layout, a.size);
    out->kind = tv->kind;
    out->ino = ino;
    out->data_gen = a.data_gen;
    out->size = a.size;
    out->lost_tid = tid;
    out->new_tid = tv->new_tid;
    out->slot = (uint32_t)slot;
    out->stripe_lo = tv->lo < ns ? tv->lo : ns;
    out->stripe_hi = tv->hi < ns ? tv->hi : ns;
    out->rate_bps = tv->kind == CKPT_TASK_MOVE ? move_rate : 0;
    out->attr_stamp = attr_stamp(&a);
    for (int i = 0; i < out->layout.width; i++) {
        uint32_t node, state;
        uint16_t port = 0;
        out->addr[i].host[0] = '\0';
        out->addr[i].port = 0;
        if (i == slot && tv->kind == CKPT_TASK_REBUILD)
            continue;
        if (meta_cluster_target_where(srv, out->layout.targets[i], &node, &state,
                                      out->addr[i].host, sizeof(out->addr[i].host),
                                      &port) == 0 &&
            (state == CKPT_NODE_UP || state == CKPT_NODE_DRAINING))
            out->addr[i].port = port;
        else
            out->addr[i].host[0] = '\0';
    }
    /* Not runnable now (survivors still registering after a restart of
     * ckpt-meta, or DOWN): keep it for a later fetch rather than let the
     * node fail it. */
    int live = 0;
    for (int i = 0; i < out->layout.width; i++)
        live += i != slot && out->addr[i].port != 0;
    if (live < out->layout.k && !(tv->kind == CKPT_TASK_MOVE && out->addr[slot].port != 0))
        return -EAGAIN;
    return 0;
}

void meta_di_task_fetch(struct meta_server *srv, struct ckpt_req *req)
{
    struct ckpt_msg_task_fetch m;
    struct ckpt_msg_task_fetch_resp r = {0};
    struct ckpt_wbuf wb;
    uint8_t buf[4096];
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = ckpt_msg_task_fetch_decode(req->body, req->body_len, &m);

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    r.tasks = ckpt_calloc(m.max, sizeof(*r.tasks));
    /* Candidates by urgency (meta_ckpt_rank): the newest committed
     * checkpoints' files first, superseded checkpoints' last. */
    struct ckpt_task *rk[META_CKPT_RANKS] = {0};
    uint32_t nrk[META_CKPT_RANKS] = {0};
    for (int i = 1; i < META_CKPT_RANKS; i++)
        rk[i] = ckpt_calloc(m.max, sizeof(*rk[i]));
    rk[0] = r.tasks;
    if (!r.tasks || !rk[1] || !rk[2]) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t memo_dir = 0;
    int memo_rank = 0;
    pthread_mutex_lock(&srv->rb->lock);
    uint64_t move_rate = srv->rb->max_rate_bps;
    uint32_t nodes = srv->rb->move_dst_nodes;
    pthread_mutex_unlock(&srv->rb->lock);
    if (move_rate) {
        /* The cluster-wide cap, shared by the nodes that receive moves
         * (as of the last scan, at most a second old; all UP nodes before
         * the first one). */
        if (!nodes)
            nodes = meta_cluster_count_up(srv);
        move_rate = move_rate / (nodes ? nodes : 1);
        if (move_rate == 0)
            move_rate = 1;
    }
    rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_open(txn, srv->rb->dbi_task, &cur));
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0 && nrk[0] < m.max) {
        struct task_val tv;
        uint32_t node, state;
        uint16_t port;
        if (k.mv_size == TASK_KEY_LEN && task_decode(&v, &tv) == 0 &&
            meta_cluster_target_where(srv, tv.new_tid, &node, &state, NULL, 0, &port) == 0 &&
            node == m.node_id) {
            uint32_t tid = get_be32(k.mv_data);
            uint64_t ino = get_be64((const uint8_t *)k.mv_data + 4);
            int rank = meta_ckpt_rank(srv, txn, ino, &memo_dir, &memo_rank);
            if (nrk[rank] < m.max &&
                fill_task(srv, txn, tid, ino, &tv, move_rate, &rk[rank][nrk[rank]]) == 0)
                nrk[rank]++;
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    if (rc == -ENOENT)
        rc = 0;
    r.n = nrk[0];
    for (int i = 1; i < META_CKPT_RANKS; i++)
        for (uint32_t j = 0; j < nrk[i] && r.n < m.max; j++)
            r.tasks[r.n++] = rk[i][j];
    if (rc == 0)
        rc = ckpt_msg_task_fetch_resp_encode(&wb, &r);
out:
    for (int i = 1; i < META_CKPT_RANKS; i++)
        ckpt_free(rk[i]);
    if (cur)
        mdb_cursor_close(cur);
    meta_store_txn_abort(txn);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
    ckpt_free(r.tasks);
}

static int status_fill(struct meta_server *srv, bool move_bytes,
                       struct ckpt_msg_rebuild_status_resp *out)
{
    struct meta_rebuild *rb = srv->rb;
    MDB_txn *txn = NULL;
    MDB_stat st_t, st_d;
    uint64_t moves = 0, mbytes = 0;
    uint32_t dst_nodes = 0;
    int rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
    if (rc == 0)
        rc = meta_store_errno(mdb_stat(txn, rb->dbi_task, &st_t));
    if (rc == 0)
        rc = meta_store_errno(mdb_stat(txn, srv->dbi_degraded, &st_d));
    if (rc == 0 && st_t.ms_entries)
        rc = moves_scan(srv, txn, move_bytes, &moves, &mbytes, &dst_nodes);
    meta_store_txn_abort(txn);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    out->tasks_pending = st_t.ms_entries - moves;
    out->moves_pending = moves;
    out->move_bytes_left = mbytes;
    out->degraded_stripes = st_d.ms_entries;
    pthread_mutex_lock(&rb->lock);
    out->tasks_done = rb->tasks_done;
    out->tasks_failed = rb->tasks_failed;
    out->chunks_done = rb->chunks_done;
    out->bytes_done = rb->bytes_done;
    out->rate_bps = rb->rate_bps;
    out->lost_targets = rb->lost_targets;
    if (rb->rate_bps && rb->run_tasks && out->tasks_pending)
        out->eta_s = out->tasks_pending * (rb->run_bytes / rb->run_tasks) / rb->rate_bps + 1;
    out->moves_done = rb->moves_done;
    out->move_bytes_done = rb->move_bytes_done;
    out->move_rate_bps = rb->move_rate_bps;
    out->max_rate_bps = rb->max_rate_bps;
    out->draining_nodes = rb->draining_nodes;
    rb->move_dst_nodes = dst_nodes;
    if (rb->move_rate_bps && mbytes)
        out->move_eta_s = mbytes / rb->move_rate_bps + 1;
    pthread_mutex_unlock(&rb->lock);
    return 0;
}

void meta_di_rebuild_status(struct meta_server *srv, struct ckpt_req *req)
{
    struct ckpt_msg_rebuild_status_resp r;
    struct ckpt_wbuf wb;
    uint8_t buf[256];
    int rc = req->body_len == 0 ? 0 : CKPT_E_PROTO;

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    rc = status_fill(srv, true, &r);
    if (rc == 0)
        rc = ckpt_msg_rebuild_status_resp_encode(&wb, &r);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
}

/* ---- monitor: planning and progress ---------------------------------------------- */

void meta_rebuild_tick(struct meta_server *srv, uint64_t now_ns)
{
    struct meta_rebuild *rb = srv->rb;
    struct ckpt_msg_rebuild_status_resp s;
    uint32_t out[8];
    bool plan = false, log_now = false;

    if (!rb)
        return;
    pthread_mutex_lock(&rb->lock);
    if (now_ns - rb->last_plan_ns >= PLAN_INTERVAL_NS) {
        rb->last_plan_ns = now_ns;
        plan = true;
    }
    pthread_mutex_unlock(&rb->lock);
    if (!plan)
        return;
    if (status_fill(srv, false, &s) < 0)
        return;
    size_t nout = meta_cluster_out_targets(srv, out, 8);
    uint32_t ndrain = 0;
    uint32_t dtid[1];
    (void)meta_cluster_draining_targets(srv, dtid, 1, &ndrain);
    if (nout || s.degraded_stripes || s.tasks_pending || s.moves_pending || ndrain) {
        struct meta_wop *w = meta_wop_new(&meta_wop_rebuild_plan, NULL);
        if (w)
            meta_wop_submit(srv, w, false);
    }

    pthread_mutex_lock(&rb->lock);
    rb->lost_targets = (uint32_t)nout;
    if (!rb->win_start_ns)
        rb->win_start_ns = now_ns;
    rb->draining_nodes = ndrain;
    rb->moves_pending = s.moves_pending;
    if (now_ns - rb->win_start_ns >= LOG_INTERVAL_NS) {
        rb->rate_bps = rb->win_bytes * 1000000000ull / (now_ns - rb->win_start_ns);
        rb->move_rate_bps = rb->move_win_bytes * 1000000000ull / (now_ns - rb->win_start_ns);
        rb->win_bytes = 0;
        rb->move_win_bytes = 0;
        rb->win_start_ns = now_ns;
    }
    bool log_moves = s.moves_pending && now_ns - rb->last_log_ns >= LOG_INTERVAL_NS;
    uint64_t moves_done = rb->moves_done, move_bytes = rb->move_bytes_done;
    uint64_t move_rate = rb->move_rate_bps;
    bool moves_complete = !s.moves_pending && rb->moves_done > rb->moves_logged;
    uint64_t run_moves = rb->moves_done - rb->moves_logged;
    uint64_t run_move_bytes = rb->move_bytes_done - rb->move_bytes_logged;
    if (moves_complete) {
        rb->moves_logged = rb->moves_done;
        rb->move_bytes_logged = rb->move_bytes_done;
    }
    rb->active = s.tasks_pending > 0;
    if (log_moves && !rb->active)
        rb->last_log_ns = now_ns;
    uint64_t run_bytes = rb->run_bytes, run_chunks = rb->run_chunks, run_tasks = rb->run_tasks;
    uint64_t busy = rb->busy_since_ns, last_done = rb->last_done_ns;
    if (rb->active && now_ns - rb->last_log_ns >= LOG_INTERVAL_NS) {
        rb->last_log_ns = now_ns;
        log_now = true;
    }
    bool complete = !rb->active && run_tasks > 0;
    if (complete) {
        rb->run_bytes = rb->run_chunks = rb->run_tasks = 0;
        rb->busy_since_ns = 0;
    }
    pthread_mutex_unlock(&rb->lock);

    if (log_now)
        CKPT_LOG_INFO("rebuild: %llu task(s) pending, %llu done (%llu chunks, %llu MiB), "
                      "%.1f MiB/s, ETA %llu s, %llu degraded stripe(s)",
                      (unsigned long long)s.tasks_pending, (unsigned long long)run_tasks,
                      (unsigned long long)run_chunks, (unsigned long long)(run_bytes >> 20),
                      (double)s.rate_bps / 1048576.0, (unsigned long long)s.eta_s,
                      (unsigned long long)s.degraded_stripes);
    if (log_moves)
        CKPT_LOG_INFO("move (drain/rebalance): %llu task(s) pending, %llu done (%llu MiB) "
                      "since start, %.1f MiB/s, %u draining node(s)",
                      (unsigned long long)s.moves_pending, (unsigned long long)moves_done,
                      (unsigned long long)(move_bytes >> 20), (double)move_rate / 1048576.0,
                      ndrain);
    if (moves_complete)
        CKPT_LOG_INFO("move (drain/rebalance): all moves done: %llu task(s), %llu bytes "
                      "(%llu task(s) since ckpt-meta started)", (unsigned long long)run_moves,
                      (unsigned long long)run_move_bytes, (unsigned long long)moves_done);
    if (complete) {
        double secs = busy && last_done > busy ? (double)(last_done - busy) / 1e9 : 0;
        CKPT_LOG_INFO("rebuild complete: %llu task(s), %llu chunks, %llu bytes in %.1f s "
                      "(%.1f MiB/s)", (unsigned long long)run_tasks,
                      (unsigned long long)run_chunks, (unsigned long long)run_bytes, secs,
                      secs > 0 ? (double)run_bytes / 1048576.0 / secs : 0.0);
    }
}

/* ---- REBALANCE (writer thread) ---------------------------------------------------- */

struct rebal_t {
    struct meta_tusage u;
    double frac;                 /* simulated used / capacity */
    uint64_t sim_used;
    uint64_t next_ino;           /* where its tindex walk resumes */
    bool exhausted;              /* no file of it can move */
    struct ckpt_rebalance_target out;
};

struct rebal_move {
    uint64_t ino;
    uint32_t dst;
};

struct rebal_ctx {
    struct meta_server *srv;
    struct rebal_move *plan;     /* moves planned by this request */
    size_t nplan;
    MDB_txn *txn;
    struct rebal_t *t;
    size_t n;
    size_t src;
    double mean;
    bool dry;
    bool moved;
    uint64_t files, bytes;
    int err;
};

static bool dom_eq(const struct rebal_t *a, uint32_t node, const char *rack)
{
    if (a->u.rack[0] || rack[0])
        return strcmp(a->u.rack, rack) == 0;
    return a->u.node_id == node;
}

/* tindex callback over the source's files: move the first one that can. */
static int rebal_file(uint64_t ino, void *ctx)
{
    struct rebal_ctx *c = ctx;
    struct rebal_t *src = &c->t[c->src];
    struct task_val tv;
    struct meta_attr a;
    struct ckpt_layout l;
    /* Failure domains the file keeps or gets: its other slots, and the
     * destinations of moves of it that are pending or planned now. */
    uint32_t dtid[2 * CKPT_LAYOUT_MAX_WIDTH], dnode[2 * CKPT_LAYOUT_MAX_WIDTH];
    char drack[2 * CKPT_LAYOUT_MAX_WIDTH][CKPT_NAME_MAX + 1];
    size_t nd = 0;
    int rc;

    src->next_ino = ino + 1;
    rc = task_get(c->srv, c->txn, src->u.tid, ino, &tv);
    if (rc == 0)
        return 0;
    if (rc != -ENOENT)
        goto fail;
    rc = meta_store_getattr(c->txn, ino, &a);
    if (rc == 0)
        rc = meta_store_layout_get(c->txn, ino, &l);
    if (rc == -ENOENT || rc == -ENODATA || rc == -EINVAL)
        return 0;
    if (rc < 0)
        goto fail;
    int slot = slot_of(&l, src->u.tid);
    if (slot < 0 || !S_ISREG(a.mode) || meta_sess_ino_writing(c->srv, ino))
        return 0;
    uint64_t b = slot_bytes(&l, a.size, (uint32_t)slot);
    if (b == 0)
        return 0;
    for (int i = 0; i < l.width; i++) {
        struct task_val o;
        if (i != slot)
            dtid[nd++] = l.targets[i];
        if (i != slot && task_get(c->srv, c->txn, l.targets[i], ino, &o) == 0 &&
            o.new_tid != l.targets[i])
            dtid[nd++] = o.new_tid;
    }
    for (size_t i = 0; i < c->nplan && nd < 2 * CKPT_LAYOUT_MAX_WIDTH; i++)
        if (c->plan[i].ino == ino)
            dtid[nd++] = c->plan[i].dst;
    for (size_t i = 0; i < nd; i++) {
        dnode[i] = 0;
        drack[i][0] = '\0';
        (void)meta_cluster_domain_of(c->srv, dtid[i], &dnode[i], drack[i], sizeof(drack[i]));
    }
    double src_after = (double)(src->sim_used > b ? src->sim_used - b : 0) /
                       (double)src->u.capacity;
    size_t best = c->n;
    for (size_t j = 0; j < c->n; j++) {
        struct rebal_t *d = &c->t[j];
        if (j == c->src || d->u.free < b + l.chunk_size)
            continue;
        double after = (double)(d->sim_used + b) / (double)d->u.capacity;
        if (after > src_after)
            continue; /* it would not even the pair out */
        bool clash = false;
        for (size_t i = 0; i < nd && !clash; i++)
            clash = dtid[i] == d->u.tid || (dnode[i] && dom_eq(d, dnode[i], drack[i]));
        if (clash)
            continue;
        if (best == c->n || d->frac < c->t[best].frac)
            best = j;
    }
    if (best == c->n)
        return 0;
    struct rebal_t *dst = &c->t[best];
    if (!c->dry) {
        memset(&tv, 0, sizeof(tv));
        tv.kind = CKPT_TASK_MOVE;
        tv.new_tid = dst->u.tid;
        tv.hi = UINT64_MAX;
        rc = task_put(c->srv, c->txn, src->u.tid, ino, &tv);
        if (rc < 0)
            goto fail;
    }
    if (c->nplan < REBAL_MAX_MOVES) {
        c->plan[c->nplan].ino = ino;
        c->plan[c->nplan].dst = dst->u.tid;
        c->nplan++;
    }
    src->sim_used = src->sim_used > b ? src->sim_used - b : 0;
    src->frac = (double)src->sim_used / (double)src->u.capacity;
    dst->sim_used += b;
    dst->frac = (double)dst->sim_used / (double)dst->u.capacity;
    dst->u.free -= b;
    src->out.out_bytes += b;
    src->out.out_files++;
    dst->out.in_bytes += b;
    dst->out.in_files++;
    c->files++;
    c->bytes += b;
    c->moved = true;
    return 1;
fail:
    c->err = rc;
    return rc;
}

/* The pending MOVE tasks as a plan (a rebalance that is running). */
static int rebal_pending(struct rebal_ctx *c, uint64_t *out_n)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = meta_store_errno(mdb_cursor_open(c->txn, c->srv->rb->dbi_task, &cur));
    *out_n = 0;
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0) {
        struct task_val tv;
        if (k.mv_size == TASK_KEY_LEN && task_decode(&v, &tv) == 0 &&
            tv.kind == CKPT_TASK_MOVE) {
            uint32_t tid = get_be32(k.mv_data);
            uint64_t ino = get_be64((const uint8_t *)k.mv_data + 4);
            struct meta_attr a;
            struct ckpt_layout l;
            int slot;
            uint64_t b = 0;
            if (meta_store_getattr(c->txn, ino, &a) == 0 &&
                meta_store_layout_get(c->txn, ino, &l) == 0 && (slot = slot_of(&l, tid)) >= 0)
                b = slot_bytes(&l, a.size, (uint32_t)slot);
            for (size_t j = 0; j < c->n; j++) {
                struct rebal_t *t = &c->t[j];
                if (t->u.tid == tid) {
                    t->out.out_bytes += b;
                    t->out.out_files++;
                    t->sim_used = t->sim_used > b ? t->sim_used - b : 0;
                } else if (t->u.tid == tv.new_tid) {
                    t->out.in_bytes += b;
                    t->out.in_files++;
                    t->sim_used += b;
                }
            }
            c->files++;
            c->bytes += b;
            (*out_n)++;
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

static int rebal_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_rebalance_decode(body, len, msg);
}

static uint64_t ppm(double f)
{
    return f <= 0 ? 0 : (uint64_t)(f * 1e6 + 0.5);
}

static int rebal_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_rebalance *m = w->msg;
    struct rebal_ctx c = {.srv = srv, .txn = txn, .dry = m->flags & CKPT_REBALANCE_DRY_RUN};
    struct meta_tusage *u = ckpt_calloc(REBAL_MAX_TARGETS, sizeof(*u));
    struct ckpt_msg_rebalance_resp r = {.threshold_pct = m->threshold_pct};
    uint64_t cap = 0, used = 0, pending = 0;
    double max_before = 0;
    int rc = 0;

    if (!u)
        return -ENOMEM;
    c.plan = ckpt_calloc(REBAL_MAX_MOVES, sizeof(*c.plan));
    if (!c.plan) {
        ckpt_free(u);
        return -ENOMEM;
    }
    c.n = meta_cluster_usage(srv, u, REBAL_MAX_TARGETS);
    c.t = c.n ? ckpt_calloc(c.n, sizeof(*c.t)) : NULL;
    if (c.n && !c.t) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < c.n; i++) {
        struct rebal_t *t = &c.t[i];
        t->u = u[i];
        t->sim_used = u[i].used;
        t->frac = (double)u[i].used / (double)u[i].capacity;
        t->out.tid = u[i].tid;
        t->out.node_id = u[i].node_id;
        t->out.capacity = u[i].capacity;
        t->out.used = u[i].used;
        cap += u[i].capacity;
        used += u[i].used;
        if (t->frac > max_before)
            max_before = t->frac;
    }
    c.mean = cap ? (double)used / (double)cap : 0;
    if (!c.dry) {
        rc = rebal_pending(&c, &pending);
        if (rc < 0)
            goto out;
    }
    if (pending) {
        r.flags |= CKPT_REBALANCE_RESUMED;
    } else {
        double hi = c.mean * (1.0 + m->threshold_pct / 100.0);
        double lo = c.mean * (1.0 - m->threshold_pct / 100.0);
        for (unsigned moves = 0; moves < REBAL_MAX_MOVES && c.n >= 2 && c.mean > 0; moves++) {
            size_t src = c.n;
            double min = 2.0;
            for (size_t i = 0; i < c.n; i++) {
                if (c.t[i].frac < min)
                    min = c.t[i].frac;
                if (!c.t[i].exhausted && (src == c.n || c.t[i].frac > c.t[src].frac))
                    src = i;
            }
            if (src == c.n || (c.t[src].frac <= hi && min >= lo))
                break;
            c.src = src;
            c.moved = false;
            rc = meta_store_tindex_iter(txn, c.t[src].u.tid, c.t[src].next_ino, rebal_file, &c);
            if (rc == 0 && c.err)
                rc = c.err;
            if (rc < 0)
                goto out;
            if (!c.moved)
                c.t[src].exhausted = true;
        }
    }
    double max_after = 0;
    for (size_t i = 0; i < c.n; i++) {
        double f = (double)c.t[i].sim_used / (double)c.t[i].u.capacity;
        if (f > max_after)
            max_after = f;
    }
    r.mean_ppm = ppm(c.mean);
    r.max_ppm_before = ppm(max_before);
    r.max_ppm_after = ppm(max_after);
    r.files = c.files;
    r.bytes = c.bytes;
    r.n = (uint32_t)c.n;
    r.targets = ckpt_calloc(c.n ? c.n : 1, sizeof(*r.targets));
    if (!r.targets) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < c.n; i++)
        r.targets[i] = c.t[i].out;
    if (!c.dry && !pending) {
        uint8_t vb[8];
        MDB_val k = {8, (void *)"max_rate"}, v = {8, vb};
        put_le(vb, m->max_rate_bps, 8);
        rc = meta_store_errno(mdb_put(txn, srv->rb->dbi_conf, &k, &v, 0));
    }
    w->result[0] = !c.dry && !pending;
    w->result[1] = c.files;
    w->reply.len = 0;
    if (rc == 0)
        rc = ckpt_msg_rebalance_resp_encode(&w->reply, &r);
out:
    ckpt_free(r.targets);
    ckpt_free(c.t);
    ckpt_free(c.plan);
    ckpt_free(u);
    return rc;
}

static void rebal_done(struct meta_server *srv, struct meta_wop *w)
{
    const struct ckpt_msg_rebalance *m = w->msg;
    if (w->status < 0 || !w->result[0])
        return;
    pthread_mutex_lock(&srv->rb->lock);
    srv->rb->max_rate_bps = m->max_rate_bps;
    if (w->result[1] && !srv->rb->busy_since_ns)
        srv->rb->busy_since_ns = ckpt_now_ns();
    pthread_mutex_unlock(&srv->rb->lock);
    CKPT_LOG_INFO("rebalance: %llu move(s) planned (threshold %u%%, max rate %llu B/s)",
                  (unsigned long long)w->result[1], m->threshold_pct,
                  (unsigned long long)m->max_rate_bps);
}

const struct meta_wop_type meta_wop_rebalance = {
    .name = "REBALANCE",
    .msg_size = sizeof(struct ckpt_msg_rebalance),
    .decode = rebal_decode,
    .apply = rebal_apply,
    .done = rebal_done,
};

/* ---- NODE_INFO helper (meta_admin.c) ------------------------------------------------ */

struct tinfo_ctx {
    struct meta_server *srv;
    MDB_txn *txn;
    uint32_t tid;
    uint64_t files, bytes, open;
};

static int tinfo_file(uint64_t ino, void *ctx)
{
    struct tinfo_ctx *c = ctx;
    struct meta_attr a;
    struct ckpt_layout l;
    int slot;
    c->files++;
    if (meta_sess_ino_open(c->srv, ino))
        c->open++;
    if (meta_store_getattr(c->txn, ino, &a) == 0 && meta_store_layout_get(c->txn, ino, &l) == 0 &&
        (slot = slot_of(&l, c->tid)) >= 0)
        c->bytes += slot_bytes(&l, a.size, (uint32_t)slot);
    return 0;
}

int meta_rebuild_target_info(struct meta_server *srv, MDB_txn *txn, uint32_t tid,
                             uint64_t *files, uint64_t *bytes, uint64_t *open, uint64_t *tasks)
{
    struct tinfo_ctx c = {.srv = srv, .txn = txn, .tid = tid};
    MDB_cursor *cur = NULL;
    uint8_t kb[TASK_KEY_LEN];
    MDB_val k = {sizeof(kb), kb}, v;
    int rc = meta_store_tindex_iter(txn, tid, 0, tinfo_file, &c);
    if (rc < 0)
        return rc;
    *files += c.files;
    *bytes += c.bytes;
    *open += c.open;
    task_key(kb, tid, 0);
    rc = meta_store_errno(mdb_cursor_open(txn, srv->rb->dbi_task, &cur));
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
    while (rc == 0 && k.mv_size == TASK_KEY_LEN && get_be32(k.mv_data) == tid) {
        (*tasks)++;
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    mdb_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

/* ---- init / fini ----------------------------------------------------------------- */

/* rb.conf "max_rate" -> le64 bytes per second (rebalance --max-rate). */
static int conf_load(meta_store *st, struct meta_rebuild *rb)
{
    MDB_txn *txn = NULL;
    MDB_val k = {8, (void *)"max_rate"}, v;
    int rc = meta_store_txn_begin(st, NULL, true, &txn);
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_get(txn, rb->dbi_conf, &k, &v));
    if (rc == 0 && v.mv_size == 8)
        rb->max_rate_bps = get_le(v.mv_data, 8);
    meta_store_txn_abort(txn);
    return rc == -ENOENT || rc == 0 ? 0 : rc;
}

int meta_rebuild_init(struct meta_server *srv)
{
    struct meta_rebuild *rb = ckpt_calloc(1, sizeof(*rb));
    if (!rb)
        return -ENOMEM;
    int rc = meta_store_dbi_open(srv->st, "rb.task", 0, &rb->dbi_task);
    if (rc < 0) {
        ckpt_free(rb);
        return rc;
    }
    rc = meta_store_dbi_open(srv->st, "rb.conf", 0, &rb->dbi_conf);
    if (rc == 0)
        rc = conf_load(srv->st, rb);
    if (rc < 0) {
        ckpt_free(rb);
        return rc;
    }
    rc = -pthread_mutex_init(&rb->lock, NULL);
    if (rc < 0) {
        ckpt_free(rb);
        return rc;
    }
    srv->rb = rb;
    return 0;
}

void meta_rebuild_fini(struct meta_server *srv)
{
    if (!srv->rb)
        return;
    pthread_mutex_destroy(&srv->rb->lock);
    CKPT_FREE(srv->rb);
}

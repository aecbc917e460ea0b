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
 *           stripe_lo (le64), stripe_hi (le64)
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
 *   Known limits.  Planning walks the tindex of each OUT target and the
 *   whole degraded table on every run, and TASK_FETCH walks the task table:
 *   O(files on lost targets + tasks) per second.  The checkpoint registry
 *   (issue 7) does not exist yet, so tasks run in (target, inode) order,
 *   not newest-committed-checkpoint first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"
#include "msg_task.h"

#define PLAN_BATCH 512u           /* new tasks per planning run */
#define PLAN_INTERVAL_NS 1000000000ull
#define LOG_INTERVAL_NS 5000000000ull
#define MAX_OUT_TARGETS 1024u
#define DG_SCAN_MAX 4096u         /* degraded records looked at per run */

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
};

struct task_val {
    uint8_t kind;
    uint32_t new_tid;
    uint32_t attempts;
    uint64_t lo, hi;
};

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
#define TASK_VAL_LEN 26

static void task_key(uint8_t kb[TASK_KEY_LEN], uint32_t tid, uint64_t ino)
{
    put_be32(kb, tid);
    put_be64(kb + 4, ino);
}

static int task_decode(const MDB_val *v, struct task_val *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size != TASK_VAL_LEN || p[0] != 1 || p[1] >= CKPT_TASK_NKINDS)
        return -EIO;
    out->kind = p[1];
    out->new_tid = (uint32_t)get_le(p + 2, 4);
    out->attempts = (uint32_t)get_le(p + 6, 4);
    out->lo = get_le(p + 10, 8);
    out->hi = get_le(p + 18, 8);
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
    vb[0] = 1;
    vb[1] = t->kind;
    put_le(vb + 2, t->new_tid, 4);
    put_le(vb + 6, t->attempts, 4);
    put_le(vb + 10, t->lo, 8);
    put_le(vb + 18, t->hi, 8);
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

static int slot_of(const struct ckpt_layout *l, uint32_t tid)
{
    for (int i = 0; i < l->width; i++)
        if (l->targets[i] == tid)
            return i;
    return -1;
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
    int err;
};

static bool is_out(const struct plan_ctx *p, uint32_t tid)
{
    for (size_t i = 0; i < p->nout; i++)
        if (p->out[i] == tid)
            return true;
    return false;
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
    memset(&t, 0, sizeof(t));
    t.kind = CKPT_TASK_REBUILD;
    t.hi = UINT64_MAX;
    rc = meta_cluster_pick_replacement(srv, used, nused, l.chunk_size, &t.new_tid);
    if (rc == -ENOSPC) {
        p->nospace++;
        return 0;
    }
    if (rc == 0)
        rc = task_put(srv, p->txn, p->tid, ino, &t);
    if (rc < 0) {
        p->err = rc;
        return rc;
    }
    p->planned++;
    CKPT_LOG_DEBUG("rebuild planned: inode %llu target %u -> %u", (unsigned long long)ino,
                   p->tid, t.new_tid);
    return 0;
}

/* Drop tasks whose file is gone or whose target left the layout. */
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
                    state != CKPT_NODE_UP)
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
    if (rc < 0)
        return rc;
    if (p.nospace && meta_log_ratelimit(srv))
        CKPT_LOG_WARN("rebuild: %u file(s) have no replacement target in a new failure domain "
                      "with room; they stay degraded until one is added", p.nospace);
    if (p.planned || repairs) {
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

    w->result[0] = 0; /* 1: swapped, 2: repaired, 3: failed */
    if (rc == -ENOENT || (rc == 0 && (t.new_tid != m->new_tid || t.kind != m->kind)))
        return 0; /* already done, or re-planned: the report is stale */
    if (rc < 0)
        return rc;
    if (m->status < 0) {
        t.attempts++;
        w->result[0] = 3;
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
                     const struct task_val *tv, struct ckpt_task *out)
{
    struct meta_attr a;
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
            state == CKPT_NODE_UP)
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
    if (live < out->layout.k)
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
    if (!r.tasks) {
        rc = -ENOMEM;
        goto out;
    }
    rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_open(txn, srv->rb->dbi_task, &cur));
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0 && r.n < m.max) {
        struct task_val tv;
        uint32_t node, state;
        uint16_t port;
        if (k.mv_size == TASK_KEY_LEN && task_decode(&v, &tv) == 0 &&
            meta_cluster_target_where(srv, tv.new_tid, &node, &state, NULL, 0, &port) == 0 &&
            node == m.node_id) {
            uint32_t tid = get_be32(k.mv_data);
            uint64_t ino = get_be64((const uint8_t *)k.mv_data + 4);
            if (fill_task(srv, txn, tid, ino, &tv, &r.tasks[r.n]) == 0)
                r.n++;
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0)
        rc = ckpt_msg_task_fetch_resp_encode(&wb, &r);
out:
    if (cur)
        mdb_cursor_close(cur);
    meta_store_txn_abort(txn);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
    ckpt_free(r.tasks);
}

static int status_fill(struct meta_server *srv, struct ckpt_msg_rebuild_status_resp *out)
{
    struct meta_rebuild *rb = srv->rb;
    MDB_txn *txn = NULL;
    MDB_stat st_t, st_d;
    int rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
    if (rc == 0)
        rc = meta_store_errno(mdb_stat(txn, rb->dbi_task, &st_t));
    if (rc == 0)
        rc = meta_store_errno(mdb_stat(txn, srv->dbi_degraded, &st_d));
    meta_store_txn_abort(txn);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    out->tasks_pending = st_t.ms_entries;
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
    pthread_mutex_unlock(&rb->lock);
    return 0;
}

void meta_di_rebuild_status(struct meta_server *srv, struct ckpt_req *req)
{
    struct ckpt_msg_rebuild_status_resp r;
    struct ckpt_wbuf wb;
    uint8_t buf[128];
    int rc = req->body_len == 0 ? 0 : CKPT_E_PROTO;

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    rc = status_fill(srv, &r);
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
    if (status_fill(srv, &s) < 0)
        return;
    size_t nout = meta_cluster_out_targets(srv, out, 8);
    if (nout || s.degraded_stripes || s.tasks_pending) {
        struct meta_wop *w = meta_wop_new(&meta_wop_rebuild_plan, NULL);
        if (w)
            meta_wop_submit(srv, w, false);
    }

    pthread_mutex_lock(&rb->lock);
    rb->lost_targets = (uint32_t)nout;
    if (!rb->win_start_ns)
        rb->win_start_ns = now_ns;
    if (now_ns - rb->win_start_ns >= LOG_INTERVAL_NS) {
        rb->rate_bps = rb->win_bytes * 1000000000ull / (now_ns - rb->win_start_ns);
        rb->win_bytes = 0;
        rb->win_start_ns = now_ns;
    }
    rb->active = s.tasks_pending > 0;
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
    if (complete) {
        double secs = busy && last_done > busy ? (double)(last_done - busy) / 1e9 : 0;
        CKPT_LOG_INFO("rebuild complete: %llu task(s), %llu chunks, %llu bytes in %.1f s "
                      "(%.1f MiB/s)", (unsigned long long)run_tasks,
                      (unsigned long long)run_chunks, (unsigned long long)run_bytes, secs,
                      secs > 0 ? (double)run_bytes / 1048576.0 / secs : 0.0);
    }
}

/* ---- init / fini ----------------------------------------------------------------- */

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

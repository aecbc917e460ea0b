/*
 * node_task.c - rebuild/repair task execution on ckpt-node (node_task.h).
 *
 * DESIGN
 *
 *   Threads.
 *     fetch_main   every poll_ms, once the node has an id: TASK_FETCH from
 *                  ckpt-meta; tasks not yet known (key lost_tid + ino) go
 *                  into the queue and the "known" set.
 *     worker_main  (opts.workers of them) pops a task, runs it (run_task)
 *                  and reports it with TASK_DONE; the key leaves the known
 *                  set only after meta answered the report, so a fetch that
 *                  still sees the task does not start it twice.
 *                  Before each fetch it also sends the queued bad-chunk
 *                  reports (node_task_bad_chunk, called by the CHUNK_READ
 *                  path on a crc failure) as DEGRADED messages, so bit rot
 *                  found by any read becomes a REPAIR task at ckpt-meta.
 *                  A chunk is reported at most once a minute (ring of the
 *                  last TASK_BAD_RECENT reports): a stripe that cannot be
 *                  repaired, read again and again, does not flood meta.
 *   t->lock protects queue, known set and stop; t->peer_lock (a leaf)
 *   protects the peer cache.  Lock order: lock, then peer_lock (never held
 *   together in practice).
 *
 *   One stripe (run_stripe): chunk index i of stripe s lives at slot
 *   (s + i) % W; the task's slot holds index i = (slot - s) mod W, nothing
 *   when i >= k+m.  Every other index whose slot has an address is read in
 *   parallel (CHUNK_READ, min_gen 0) and its crc checked; the generation
 *   used is the newest one that at least k survivors share (a stripe being
 *   rewritten may mix generations), its chunks are zero-padded to the
 *   longest and decoded.  A stripe that no survivor holds (never written)
 *   is skipped; fewer than k usable chunks is CKPT_E_UNRECOV.  A data
 *   chunk gets the length the file size gives it (clamped to what the
 *   survivors hold), a parity chunk the stripe's chunk length.  Reading all
 *   k+m-1 survivors instead of k costs (k+m-1)/k of the minimum reads and
 *   buys the generation check.
 *
 *   MOVE tasks (drain, rebalance): the source target still serves, so each
 *   chunk is first copied from it (one CHUNK_READ, crc checked, written
 *   with the source's generation and length); only when that read fails
 *   (missing, bad crc, node gone) is the chunk decoded from the others as
 *   above.  A MOVE carries rate_bps, this node's share of the operator's
 *   --max-rate: a token bucket shared by the workers (rl_*, one second of
 *   burst) delays each chunk write so that MOVE bytes stay under it.  The
 *   rate used is the one of the last fetched MOVE (move_rate), so that
 *   queued tasks follow a change of the cap or of the share.
 *
 *   A task ends with node_chunk_sync of the inode on the local target, so
 *   what meta swaps into the layout is on stable storage.
 *
 *   Known limits: tasks run in fetch order (meta's order); no throttling by
 *   foreground load beyond the worker count and the MOVE rate cap (REBUILD
 *   and REPAIR are never capped); the peer cache only grows (one entry per
 *   node address).
 */
#include "node_task.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "crc.h"
#include "ec.h"
#include "err.h"
#include "log.h"
#include "msg_meta.h"
#include "msg_task.h"

#define TASK_QUEUE_MAX 16u
#define TASK_PEERS_MAX 256u
#define TASK_READ_TIMEOUT_MS 15000u
#define TASK_MAX_WORKERS 16u
#define TASK_BAD_MAX 64u
#define TASK_BAD_RECENT 256u
#define TASK_BAD_QUIET_NS (60ull * 1000000000ull) /* one report per chunk a minute */

struct tkey {
    uint32_t tid;
    uint64_t ino;
};

struct tpeer {
    char host[CKPT_HOST_MAX + 1];
    uint16_t port;
    ckpt_peer *p;
};

struct node_task {
    struct node_task_opts o;
    char meta_host[CKPT_HOST_MAX + 1];
    ckpt_net *net;
    struct node_tgt *tgts;
    uint32_t ntgts;
    node_reg *reg;
    ckpt_peer *meta;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;                                 /* protected by lock */
    struct ckpt_task queue[TASK_QUEUE_MAX];    /* protected by lock */
    uint32_t qhead, qlen;                      /* protected by lock */
    struct tkey known[TASK_QUEUE_MAX + TASK_MAX_WORKERS]; /* protected by lock */
    uint32_t nknown;                           /* protected by lock */

    struct {
        uint32_t tid;
        struct node_chunk_key key;
        uint64_t gen;
    } bad[TASK_BAD_MAX];                       /* protected by lock */
    uint32_t nbad;                             /* protected by lock */
    /* Reports sent lately: a chunk read again and again (a stripe that
     * cannot be repaired, a reader retrying) is reported once per
     * TASK_BAD_QUIET_NS, not at every read.  A ring, protected by lock. */
    struct {
        uint32_t tid;
        struct node_chunk_key key;
        uint64_t gen, at_ns;
    } sent[TASK_BAD_RECENT];
    uint32_t nsent_next;

    pthread_mutex_t peer_lock;
    struct tpeer peers[TASK_PEERS_MAX];        /* protected by peer_lock */
    uint32_t npeers;                           /* protected by peer_lock */

    pthread_t fetcher;
    bool fetcher_started;
    pthread_t workers[TASK_MAX_WORKERS];
    uint32_t nworkers;

    _Atomic uint64_t c_done, c_failed, c_chunks_w, c_bytes_w, c_chunks_r, c_bytes_r;

    _Atomic uint64_t move_rate;                /* rate_bps of the last fetched MOVE */
    pthread_mutex_t rl_lock;                   /* MOVE rate limit, a leaf */
    double rl_tokens;                          /* protected by rl_lock */
    uint64_t rl_last_ns;                       /* protected by rl_lock */
};

/* ---- helpers -------------------------------------------------------------------- */

static ckpt_peer *peer_get(struct node_task *t, const char *host, uint16_t port)
{
    ckpt_peer *p = NULL;
    pthread_mutex_lock(&t->peer_lock);
    for (uint32_t i = 0; i < t->npeers; i++)
        if (t->peers[i].port == port && !strcmp(t->peers[i].host, host)) {
            p = t->peers[i].p;
            goto out;
        }
    if (t->npeers < TASK_PEERS_MAX && ckpt_peer_create(t->net, host, port, &p) == 0) {
        struct tpeer *e = &t->peers[t->npeers++];
        snprintf(e->host, sizeof(e->host), "%s", host);
        e->port = port;
        e->p = p;
    }
out:
    pthread_mutex_unlock(&t->peer_lock);
    return p;
}

static node_chunk_store *local_store(struct node_task *t, uint32_t tid)
{
    for (uint32_t i = 0; i < t->ntgts; i++)
        if (atomic_load(&t->tgts[i].id) == tid)
            return t->tgts[i].s;
    return NULL;
}

static uint32_t node_id_now(struct node_task *t)
{
    struct node_reg_status st;
    node_reg_status(t->reg, &st);
    return st.registered ? st.node_id : 0;
}

/* ---- one stripe ------------------------------------------------------------------ */

struct rd {
    struct ckpt_call call;
    uint8_t body[64];
    struct node_task *t;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    uint32_t *pending;
    bool submitted;
};

static void rd_done(struct ckpt_call *call)
{
    struct rd *r = call->ctx;
    pthread_mutex_lock(r->mu);
    if (--*r->pending == 0)
        pthread_cond_broadcast(r->cv);
    pthread_mutex_unlock(r->mu);
}

struct stripe_bufs {
    uint8_t *buf[CKPT_LAYOUT_MAX_K + CKPT_LAYOUT_MAX_M];
    struct rd rd[CKPT_LAYOUT_MAX_K + CKPT_LAYOUT_MAX_M];
};

static bool stopping(struct node_task *t);

/* Wait until `bytes` more MOVE bytes fit under rate_bps (0: no limit). */
static void throttle(struct node_task *t, uint64_t bytes)
{
    uint64_t rate_bps = atomic_load(&t->move_rate);
    if (!rate_bps || !bytes)
        return;
    uint64_t now = ckpt_now_ns();
    pthread_mutex_lock(&t->rl_lock);
    if (t->rl_last_ns == 0)
        t->rl_last_ns = now;
    t->rl_tokens += (double)(now - t->rl_last_ns) * (double)rate_bps / 1e9;
    if (t->rl_tokens > (double)rate_bps)
        t->rl_tokens = (double)rate_bps; /* one second of burst */
    t->rl_last_ns = now;
    t->rl_tokens -= (double)bytes;
    double wait_s = t->rl_tokens < 0 ? -t->rl_tokens / (double)rate_bps : 0;
    pthread_mutex_unlock(&t->rl_lock);
    while (wait_s > 0 && !stopping(t)) {
        double step = wait_s > 0.1 ? 0.1 : wait_s;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * 1e9)};
        nanosleep(&ts, NULL);
        wait_s -= step;
    }
}

/*
 * MOVE: copy chunk `idx` of stripe s from the source (the task's slot).
 * @return 1 copied, 0 nothing to copy there (fall back to decoding),
 *         negative: a local write error.
 */
static int copy_chunk(struct node_task *t, const struct ckpt_task *tk, node_chunk_store *st,
                      uint8_t *buf, uint64_t s, uint32_t idx, uint64_t *out_chunks,
                      uint64_t *out_bytes)
{
    const struct ckpt_layout *l = &tk->layout;
    const struct ckpt_task_addr *a = &tk->addr[tk->slot];
    struct ckpt_msg_chunk_read m = {
        .target = tk->lost_tid,
        .key = {.ino = tk->ino, .stripe = s, .index = (uint16_t)idx},
        .offset = 0,
        .len = l->chunk_size,
        .min_gen = 0,
    };
    struct ckpt_msg_chunk_read_resp resp;
    uint8_t body[64];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    int rc;

    if (!a->port || !a->host[0])
        return 0;
    ckpt_peer *p = peer_get(t, a->host, a->port);
    if (!p)
        return 0;
    ckpt_wbuf_init(&w, body, sizeof(body));
    rc = ckpt_msg_chunk_read_encode(&w, &m);
    memset(&call, 0, sizeof(call));
    if (rc == 0 && !w.heap) {
        call.opcode = CKPT_OP_CHUNK_READ;
        call.body = body;
        call.body_len = (uint32_t)w.len;
        call.bulk_in = buf;
        call.bulk_in_cap = l->chunk_size;
        call.timeout_ms = TASK_READ_TIMEOUT_MS;
        rc = ckpt_peer_call(p, &call);
        if (rc == 0)
            rc = call.status;
    } else if (rc == 0) {
        rc = -EMSGSIZE;
    }
    ckpt_wbuf_free(&w);
    bool ok = rc == 0 &&
              ckpt_msg_chunk_read_resp_decode(call.resp_body, call.resp_body_len, &resp) == 0 &&
              resp.chunk_len == call.bulk_in_len && resp.chunk_len <= l->chunk_size &&
              ckpt_crc32c(0, buf, resp.chunk_len) == resp.crc;
    ckpt_call_release(&call);
    if (!ok) {
        CKPT_LOG_DEBUG("move of inode %llu stripe %llu chunk %u: source read failed (" CKPT_RC_FMT
                       "): decoding it", (unsigned long long)tk->ino, (unsigned long long)s,
                       idx, CKPT_RC_ARGS(rc));
        return 0;
    }
    atomic_fetch_add(&t->c_chunks_r, 1);
    atomic_fetch_add(&t->c_bytes_r, resp.chunk_len);
    throttle(t, resp.chunk_len);
    struct iovec iov = {.iov_base = buf, .iov_len = resp.chunk_len};
    struct node_chunk_key key = {.ino = tk->ino, .stripe = s, .index = (uint16_t)idx};
    rc = node_chunk_write(st, &key, resp.gen, &iov, 1, resp.crc);
    if (rc == CKPT_E_STALE)
        return 1; /* a newer version was written meanwhile */
    if (rc < 0)
        return rc;
    (*out_chunks)++;
    *out_bytes += resp.chunk_len;
    return 1;
}

/* Rebuild chunk index `idx` of stripe s into the local store. */
static int run_stripe(struct node_task *t, const struct ckpt_task *tk, ckpt_ec *ec,
                      node_chunk_store *st, struct stripe_bufs *sb, uint64_t s, uint32_t idx,
                      uint64_t *out_chunks, uint64_t *out_bytes)
{
    const struct ckpt_layout *l = &tk->layout;
    unsigned n = (unsigned)l->k + l->m;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    uint32_t pending = 0;
    uint64_t gen[CKPT_LAYOUT_MAX_K + CKPT_LAYOUT_MAX_M] = {0};
    uint32_t clen[CKPT_LAYOUT_MAX_K + CKPT_LAYOUT_MAX_M] = {0};
    bool ok[CKPT_LAYOUT_MAX_K + CKPT_LAYOUT_MAX_M] = {false};
    int absent = 0, asked = 0;
    int rc = 0;

    for (unsigned j = 0; j < n; j++) {
        struct rd *r = &sb->rd[j];
        uint32_t sl = ckpt_layout_slot(l, s, j);
        r->submitted = false;
        if (j == idx || tk->addr[sl].port == 0 || !tk->addr[sl].host[0])
            continue;
        ckpt_peer *p = peer_get(t, tk->addr[sl].host, tk->addr[sl].port);
        if (!p)
            continue;
        struct ckpt_msg_chunk_read m = {
            .target = l->targets[sl],
            .key = {.ino = tk->ino, .stripe = s, .index = (uint16_t)j},
            .offset = 0,
            .len = l->chunk_size,
            .min_gen = 0,
        };
        struct ckpt_wbuf w;
        ckpt_wbuf_init(&w, r->body, sizeof(r->body));
        if (ckpt_msg_chunk_read_encode(&w, &m) < 0 || w.heap) {
            ckpt_wbuf_free(&w);
            continue;
        }
        memset(&r->call, 0, sizeof(r->call));
        r->call.opcode = CKPT_OP_CHUNK_READ;
        r->call.body = r->body;
        r->call.body_len = (uint32_t)w.len;
        r->call.bulk_in = sb->buf[j];
        r->call.bulk_in_cap = l->chunk_size;
        r->call.timeout_ms = TASK_READ_TIMEOUT_MS;
        r->call.done = rd_done;
        r->call.ctx = r;
        r->mu = &mu;
        r->cv = &cv;
        r->pending = &pending;
        pthread_mutex_lock(&mu);
        pending++;
        pthread_mutex_unlock(&mu);
        if (ckpt_peer_submit(p, &r->call) < 0) {
            pthread_mutex_lock(&mu);
            pending--;
            pthread_mutex_unlock(&mu);
            continue;
        }
        r->submitted = true;
        asked++;
    }
    pthread_mutex_lock(&mu);
    while (pending)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    for (unsigned j = 0; j < n; j++) {
        struct rd *r = &sb->rd[j];
        struct ckpt_msg_chunk_read_resp resp;
        if (!r->submitted)
            continue;
        if (r->call.status == -ENOENT) {
            absent++;
        } else if (r->call.status == 0 &&
                   ckpt_msg_chunk_read_resp_decode(r->call.resp_body, r->call.resp_body_len,
                                                   &resp) == 0 &&
                   resp.chunk_len == r->call.bulk_in_len && resp.chunk_len <= l->chunk_size &&
                   ckpt_crc32c(0, sb->buf[j], resp.chunk_len) == resp.crc) {
            ok[j] = true;
            gen[j] = resp.gen;
            clen[j] = resp.chunk_len;
            atomic_fetch_add(&t->c_chunks_r, 1);
            atomic_fetch_add(&t->c_bytes_r, resp.chunk_len);
        } else {
            CKPT_LOG_DEBUG("inode %llu stripe %llu chunk %u: survivor read failed: " CKPT_RC_FMT,
                           (unsigned long long)tk->ino, (unsigned long long)s, j,
                           CKPT_RC_ARGS(r->call.status));
        }
        ckpt_call_release(&r->call);
    }
    pthread_mutex_destroy(&mu);
    pthread_cond_destroy(&cv);

    /* The newest generation that at least k survivors share. */
    uint64_t best = 0;
    for (unsigned j = 0; j < n; j++) {
        if (!ok[j] || gen[j] <= best)
            continue;
        unsigned c = 0;
        for (unsigned q = 0; q < n; q++)
            c += ok[q] && gen[q] == gen[j];
        if (c >= l->k)
            best = gen[j];
    }
    if (!best) {
        bool any = false;
        for (unsigned j = 0; j < n; j++)
            any |= ok[j];
        if (!any && absent == asked && asked > 0)
            return 0; /* a hole: the stripe was never written */
        return CKPT_E_UNRECOV;
    }
    uint8_t *chunks[CKPT_LAYOUT_MAX_K + CKPT_LAYOUT_MAX_M] = {NULL};
    uint32_t L = 0;
    unsigned used = 0;
    for (unsigned j = 0; j < n && used < l->k; j++)
        if (ok[j] && gen[j] == best && clen[j] > L)
            L = clen[j];
    for (unsigned j = 0; j < n; j++) {
        if (!ok[j] || gen[j] != best || used >= l->k)
            continue;
        if (clen[j] < L)
            memset(sb->buf[j] + clen[j], 0, L - clen[j]);
        chunks[j] = sb->buf[j];
        used++;
    }
    chunks[idx] = sb->buf[idx];
    rc = ckpt_ec_decode(ec, L, chunks, 1u << idx);
    if (rc < 0)
        return rc;
    uint32_t len = L;
    if (idx < l->k) {
        uint32_t want = ckpt_layout_chunk_len(l, tk->size, s, idx);
        if (want < len)
            len = want; /* 0: a data chunk past EOF, stored empty as the client does */
    }
    if (tk->kind == CKPT_TASK_MOVE)
        throttle(t, len);
    struct iovec iov = {.iov_base = sb->buf[idx], .iov_len = len};
    struct node_chunk_key key = {.ino = tk->ino, .stripe = s, .index = (uint16_t)idx};
    rc = node_chunk_write(st, &key, best, &iov, 1, ckpt_crc32c(0, sb->buf[idx], len));
    if (rc == CKPT_E_STALE)
        return 0; /* a newer version was written meanwhile */
    if (rc < 0)
        return rc;
    (*out_chunks)++;
    *out_bytes += len;
    return 0;
}

/* ---- one task ---------------------------------------------------------------------- */

static bool stopping(struct node_task *t)
{
    pthread_mutex_lock(&t->lock);
    bool s = t->stop;
    pthread_mutex_unlock(&t->lock);
    return s;
}

static int run_task(struct node_task *t, const struct ckpt_task *tk, uint64_t *out_chunks,
                    uint64_t *out_bytes)
{
    const struct ckpt_layout *l = &tk->layout;
    unsigned n = (unsigned)l->k + l->m;
    node_chunk_store *st = local_store(t, tk->new_tid);
    struct stripe_bufs *sb = NULL;
    ckpt_ec *ec = NULL;
    int rc;

    if (!st)
        return -ENODEV;
    rc = ckpt_ec_create(l->k, l->m, &ec);
    if (rc < 0)
        return rc;
    sb = ckpt_calloc(1, sizeof(*sb));
    if (!sb) {
        rc = -ENOMEM;
        goto out;
    }
    for (unsigned j = 0; j < n; j++) {
        sb->buf[j] = ckpt_aligned_alloc(4096, l->chunk_size);
        if (!sb->buf[j]) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (uint64_t s = tk->stripe_lo; s < tk->stripe_hi && rc == 0; s++) {
        uint32_t w = l->width;
        uint32_t idx = (uint32_t)((tk->slot + w - s % w) % w);
        if (idx >= n)
            continue;
        if (stopping(t)) {
            rc = -ESHUTDOWN;
            break;
        }
        if (tk->kind == CKPT_TASK_MOVE) {
            rc = copy_chunk(t, tk, st, sb->buf[idx], s, idx, out_chunks, out_bytes);
            if (rc != 0) {
                rc = rc > 0 ? 0 : rc;
                if (rc < 0)
                    CKPT_LOG_WARN("move of inode %llu stripe %llu chunk %u onto target %u: "
                                  CKPT_RC_FMT, (unsigned long long)tk->ino,
                                  (unsigned long long)s, idx, tk->new_tid, CKPT_RC_ARGS(rc));
                continue;
            }
        }
        rc = run_stripe(t, tk, ec, st, sb, s, idx, out_chunks, out_bytes);
        if (rc < 0)
            CKPT_LOG_WARN("%s of inode %llu stripe %llu chunk %u onto target %u: " CKPT_RC_FMT,
                          ckpt_task_kind_name(tk->kind), (unsigned long long)tk->ino,
                          (unsigned long long)s, idx, tk->new_tid, CKPT_RC_ARGS(rc));
    }
    if (rc == 0 && *out_chunks) {
        uint64_t ino = tk->ino;
        rc = node_chunk_sync(st, &ino, 1);
    }
out:
    if (sb) {
        for (unsigned j = 0; j < n; j++)
            ckpt_free(sb->buf[j]);
        ckpt_free(sb);
    }
    ckpt_ec_destroy(ec);
    return rc;
}

static void report(struct node_task *t, const struct ckpt_task *tk, int status,
                   uint64_t chunks, uint64_t bytes)
{
    struct ckpt_msg_task_done m = {
        .node_id = node_id_now(t),
        .kind = tk->kind,
        .ino = tk->ino,
        .lost_tid = tk->lost_tid,
        .new_tid = tk->new_tid,
        .data_gen = tk->data_gen,
        .size = tk->size,
        .attr_stamp = tk->attr_stamp,
        .stripe_lo = tk->stripe_lo,
        .stripe_hi = tk->stripe_hi,
        .status = status,
        .chunks = chunks,
        .bytes = bytes,
    };
    uint8_t buf[128];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = ckpt_msg_task_done_encode(&w, &m);
    if (rc == 0) {
        memset(&call, 0, sizeof(call));
        call.opcode = CKPT_OP_TASK_DONE;
        call.body = w.p;
        call.body_len = (uint32_t)w.len;
        rc = ckpt_peer_call(t->meta, &call);
        ckpt_call_release(&call);
    }
    ckpt_wbuf_free(&w);
    if (rc < 0)
        CKPT_LOG_WARN("cannot report the %s of inode %llu to ckpt-meta: " CKPT_RC_FMT
                      " (it will be fetched and run again)", ckpt_task_kind_name(tk->kind),
                      (unsigned long long)tk->ino, CKPT_RC_ARGS(rc));
}

static void known_drop_locked(struct node_task *t, uint32_t tid, uint64_t ino)
{
    for (uint32_t i = 0; i < t->nknown; i++)
        if (t->known[i].tid == tid && t->known[i].ino == ino) {
            t->known[i] = t->known[--t->nknown];
            return;
        }
}

static void *worker_main(void *arg)
{
    struct node_task *t = arg;
    struct ckpt_task *tk = ckpt_malloc(sizeof(*tk));
    if (!tk) {
        CKPT_LOG_ERR("task worker: out of memory; this worker does not run");
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&t->lock);
        while (!t->stop && t->qlen == 0)
            pthread_cond_wait(&t->cond, &t->lock);
        if (t->stop) {
            pthread_mutex_unlock(&t->lock);
            break;
        }
        *tk = t->queue[t->qhead];
        t->qhead = (t->qhead + 1) % TASK_QUEUE_MAX;
        t->qlen--;
        pthread_mutex_unlock(&t->lock);

        uint64_t chunks = 0, bytes = 0, t0 = ckpt_now_ns();
        int rc = run_task(t, tk, &chunks, &bytes);
        if (rc != -ESHUTDOWN) {
            report(t, tk, rc, chunks, bytes);
            if (rc == 0) {
                atomic_fetch_add(&t->c_done, 1);
                atomic_fetch_add(&t->c_chunks_w, chunks);
                atomic_fetch_add(&t->c_bytes_w, bytes);
                CKPT_LOG_DEBUG("%s of inode %llu onto target %u: %llu chunks, %llu bytes in "
                               "%llu ms", ckpt_task_kind_name(tk->kind),
                               (unsigned long long)tk->ino, tk->new_tid,
                               (unsigned long long)chunks, (unsigned long long)bytes,
                               (unsigned long long)((ckpt_now_ns() - t0) / 1000000ull));
            } else {
                atomic_fetch_add(&t->c_failed, 1);
            }
        }
        pthread_mutex_lock(&t->lock);
        known_drop_locked(t, tk->lost_tid, tk->ino);
        pthread_mutex_unlock(&t->lock);
    }
    ckpt_free(tk);
    return NULL;
}

/* ---- fetching ---------------------------------------------------------------------- */

static void fetch_once(struct node_task *t, uint32_t node_id)
{
    struct ckpt_msg_task_fetch m = {.node_id = node_id, .max = 0};
    struct ckpt_msg_task_fetch_resp r = {0};
    uint8_t buf[32];
    struct ckpt_wbuf w;
    struct ckpt_call call;

    pthread_mutex_lock(&t->lock);
    uint32_t room = TASK_QUEUE_MAX - t->qlen;
    m.max = t->nknown + room;
    pthread_mutex_unlock(&t->lock);
    if (room == 0)
        return;
    if (m.max > CKPT_TASK_FETCH_MAX)
        m.max = CKPT_TASK_FETCH_MAX;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = ckpt_msg_task_fetch_encode(&w, &m);
    memset(&call, 0, sizeof(call));
    if (rc == 0) {
        call.opcode = CKPT_OP_TASK_FETCH;
        call.body = w.p;
        call.body_len = (uint32_t)w.len;
        rc = ckpt_peer_call(t->meta, &call);
    }
    if (rc == 0)
        rc = ckpt_msg_task_fetch_resp_decode(call.resp_body, call.resp_body_len, &r);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    if (rc < 0) {
        CKPT_LOG_DEBUG("TASK_FETCH: " CKPT_RC_FMT, CKPT_RC_ARGS(rc));
        return;
    }
    for (uint32_t i = 0; i < r.n; i++)
        if (r.tasks[i].kind == CKPT_TASK_MOVE)
            atomic_store(&t->move_rate, r.tasks[i].rate_bps);
    pthread_mutex_lock(&t->lock);
    for (uint32_t i = 0; i < r.n && t->qlen < TASK_QUEUE_MAX; i++) {
        const struct ckpt_task *tk = &r.tasks[i];
        bool known = false;
        for (uint32_t q = 0; q < t->nknown && !known; q++)
            known = t->known[q].tid == tk->lost_tid && t->known[q].ino == tk->ino;
        if (known || t->nknown >= TASK_QUEUE_MAX + TASK_MAX_WORKERS)
            continue;
        t->known[t->nknown].tid = tk->lost_tid;
        t->known[t->nknown].ino = tk->ino;
        t->nknown++;
        t->queue[(t->qhead + t->qlen) % TASK_QUEUE_MAX] = *tk;
        t->qlen++;
        pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    ckpt_msg_task_fetch_resp_free(&r);
}

void node_task_bad_chunk(node_task *t, uint32_t tid, const struct node_chunk_key *key,
                         uint64_t gen)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    bool queued = false;
    for (uint32_t i = 0; i < t->nbad && !queued; i++)
        queued = t->bad[i].tid == tid && t->bad[i].key.ino == key->ino &&
                 t->bad[i].key.stripe == key->stripe && t->bad[i].key.index == key->index;
    uint64_t now = ckpt_now_ns();
    for (uint32_t i = 0; i < TASK_BAD_RECENT && !queued; i++)
        queued = t->sent[i].at_ns && now - t->sent[i].at_ns < TASK_BAD_QUIET_NS &&
                 t->sent[i].tid == tid && t->sent[i].gen == gen &&
                 t->sent[i].key.ino == key->ino && t->sent[i].key.stripe == key->stripe &&
                 t->sent[i].key.index == key->index;
    bool room = t->nbad < TASK_BAD_MAX;
    if (!queued && room) {
        t->bad[t->nbad].tid = tid;
        t->bad[t->nbad].key = *key;
        t->bad[t->nbad].gen = gen;
        t->nbad++;
    }
    pthread_mutex_unlock(&t->lock);
    if (!queued && !room)
        CKPT_LOG_WARN("target %u inode %llu stripe %llu chunk %u: bad crc, repair queue full; "
                      "not reported", tid, (unsigned long long)key->ino,
                      (unsigned long long)key->stripe, key->index);
}

/* Send queued bad-chunk reports as DEGRADED (one stripe each). */
static void send_bad(struct node_task *t)
{
    for (;;) {
        pthread_mutex_lock(&t->lock);
        if (t->nbad == 0) {
            pthread_mutex_unlock(&t->lock);
            return;
        }
        uint32_t tid = t->bad[0].tid;
        struct node_chunk_key key = t->bad[0].key;
        uint64_t gen = t->bad[0].gen;
        pthread_mutex_unlock(&t->lock);

        struct ckpt_degraded_stripe ds = {.stripe = key.stripe,
                                          .missing_mask = 1u << key.index};
        struct ckpt_msg_degraded m = {.ino = key.ino, .data_gen = gen, .n = 1,
                                      .stripes = &ds};
        uint8_t buf[64];
        struct ckpt_wbuf w;
        struct ckpt_call call;
        memset(&call, 0, sizeof(call));
        ckpt_wbuf_init(&w, buf, sizeof(buf));
        int rc = key.index < 32 ? ckpt_msg_degraded_encode(&w, &m) : -EINVAL;
        if (rc == 0) {
            call.opcode = CKPT_OP_DEGRADED;
            call.body = w.p;
            call.body_len = (uint32_t)w.len;
            rc = ckpt_peer_call(t->meta, &call);
        }
        ckpt_call_release(&call);
        ckpt_wbuf_free(&w);
        if (rc < 0 && rc != -ENOENT && rc != -EINVAL) {
            CKPT_LOG_DEBUG("bad chunk report: " CKPT_RC_FMT " (retried)", CKPT_RC_ARGS(rc));
            return;
        }
        CKPT_LOG_WARN("target %u inode %llu stripe %llu chunk %u gen %llu: bad crc reported "
                      "to ckpt-meta for repair", tid, (unsigned long long)key.ino,
                      (unsigned long long)key.stripe, key.index, (unsigned long long)gen);
        pthread_mutex_lock(&t->lock);
        uint32_t r = t->nsent_next++ % TASK_BAD_RECENT;
        t->sent[r].tid = tid;
        t->sent[r].key = key;
        t->sent[r].gen = gen;
        t->sent[r].at_ns = ckpt_now_ns();
        for (uint32_t i = 0; i < t->nbad; i++)
            if (t->bad[i].tid == tid && t->bad[i].key.ino == key.ino &&
                t->bad[i].key.stripe == key.stripe && t->bad[i].key.index == key.index) {
                memmove(&t->bad[i], &t->bad[i + 1], (t->nbad - i - 1) * sizeof(t->bad[0]));
                t->nbad--;
                break;
            }
        pthread_mutex_unlock(&t->lock);
    }
}

static void *fetch_main(void *arg)
{
    struct node_task *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)t->o.poll_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->lock);
        uint32_t id = node_id_now(t);
        if (id) {
            send_bad(t);
            fetch_once(t, id);
        }
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* ---- start / stop ---------------------------------------------------------------- */

int node_task_start(const struct node_task_opts *o, ckpt_net *net, struct node_tgt *tgts,
                    uint32_t n, node_reg *reg, node_task **out)
{
    struct node_task *t;
    int rc;

    *out = NULL;
    if (!o || !o->meta_host || !o->meta_host[0] || !net || !tgts || !n || !reg ||
        strlen(o->meta_host) > CKPT_HOST_MAX)
        return -EINVAL;
    t = ckpt_calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->o = *o;
    snprintf(t->meta_host, sizeof(t->meta_host), "%s", o->meta_host);
    t->o.meta_host = t->meta_host;
    if (!t->o.workers)
        t->o.workers = NODE_TASK_WORKERS_DEFAULT;
    if (t->o.workers > TASK_MAX_WORKERS)
        t->o.workers = TASK_MAX_WORKERS;
    if (!t->o.poll_ms)
        t->o.poll_ms = NODE_TASK_POLL_MS_DEFAULT;
    t->net = net;
    t->tgts = tgts;
    t->ntgts = n;
    t->reg = reg;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    pthread_mutex_init(&t->peer_lock, NULL);
    pthread_mutex_init(&t->rl_lock, NULL);
    rc = ckpt_peer_create(net, t->meta_host, o->meta_port, &t->meta);
    if (rc < 0)
        goto fail;
    for (uint32_t i = 0; i < t->o.workers; i++) {
        rc = -pthread_create(&t->workers[i], NULL, worker_main, t);
        if (rc < 0)
            goto fail;
        t->nworkers++;
    }
    rc = -pthread_create(&t->fetcher, NULL, fetch_main, t);
    if (rc < 0)
        goto fail;
    t->fetcher_started = true;
    *out = t;
    return 0;
fail:
    node_task_stop(t);
    return rc;
}

void node_task_stop(node_task *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (t->fetcher_started)
        pthread_join(t->fetcher, NULL);
    for (uint32_t i = 0; i < t->nworkers; i++)
        pthread_join(t->workers[i], NULL);
    for (uint32_t i = 0; i < t->npeers; i++)
        ckpt_peer_destroy(t->peers[i].p);
    ckpt_peer_destroy(t->meta);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->peer_lock);
    pthread_mutex_destroy(&t->rl_lock);
    ckpt_free(t);
}

void node_task_counters(node_task *t, struct node_task_counters *out)
{
    memset(out, 0, sizeof(*out));
    if (!t)
        return;
    out->tasks_done = atomic_load(&t->c_done);
    out->tasks_failed = atomic_load(&t->c_failed);
    out->chunks_written = atomic_load(&t->c_chunks_w);
    out->bytes_written = atomic_load(&t->c_bytes_w);
    out->chunks_read = atomic_load(&t->c_chunks_r);
    out->bytes_read = atomic_load(&t->c_bytes_r);
}

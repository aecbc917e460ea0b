/*
 * fs_write.c - asynchronous write-back of the FUSE client (fs_int.h).
 *
 * DESIGN
 *
 *   write() copies into stripe versions and returns.  A stripe version
 *   (struct fs_sv) holds its k data chunks in one buffer each (sv->cd),
 *   reserved together against the dirty_limit pool (fs_pool) and
 *   allocated with ckpt_net_buf_alloc() so the transport sends straight
 *   from them; its m parity chunks get a buffer only while it is being sent
 *   (from the pool's headroom, so a third more data fits in dirty_limit
 *   with 4+2).  Its life:
 *
 *     sv_get_open()          sv_submit_locked()           sv_run()
 *     (first write) --> OPEN --(full / flush / fsync /  --> QUEUED --> FLIGHT
 *                        |       close / pressure)        ^  (worker:  |
 *                        |                                |  crc, EC   | k+m CHUNK_WRITEs,
 *                        |   older version of the stripe  |  encode)   | cw_done() each
 *                        +--> WAIT ---(it completes)------+            v
 *                                                              sv_complete(): >= k acked
 *                                                              ok/degraded, < k: EIO;
 *                                                              buffer back to the pool
 *
 *   Whole chunks are not copied at all (fs_write_adopt): the FUSE thread
 *   read the WRITE's data into a page-aligned buffer of its own (fs_kio.h),
 *   and a write that is exactly one chunk at a chunk boundary swaps that
 *   buffer with the chunk's, under the inode lock, when nobody is copying
 *   into the version or replying from it (sv->writers, sv->pins); the
 *   thread reads its next request into the chunk's old buffer.  That was
 *   the client's own copy of every byte: 22% of its CPU samples in a 4 x
 *   1 GiB checkpoint (perf), the rest being the kernel's copy out of the
 *   writer's pages, which a FUSE filesystem that stores nothing pays too.
 *   Measured in one bench run, writer blocked for 4 x 1 GiB: 0.71 s
 *   against 0.44 s for that filesystem before, 0.42-0.51 s against
 *   0.49-0.65 s after.
 *
 *   Writers copy outside the inode lock: under the lock a writer claims
 *   [off, off+n) of the stripe (zero-filling any gap above what is already
 *   claimed, so a sparse write never exposes old buffer bytes), counts
 *   itself in sv->writers, and copies unlocked; parallel writers of one
 *   file (FOPEN_PARALLEL_DIRECT_WRITES) therefore only share the lock for a
 *   few instructions.  A version is submitted when its last writer leaves a
 *   full stripe, or when a flush finds it idle.
 *
 *   A stripe already submitted is never modified: a later write to it
 *   starts a new version, initialised from the newest submitted one (a
 *   copy) or, when the stripe's bytes are only on the targets, read back
 *   from them (read-modify-write).  Versions of one stripe are written in
 *   order (WAIT), since the targets keep whichever write of a generation
 *   lands last.
 *
 *   Write-behind: a stripe that a writer has just filled does not start
 *   its encode and sends at once: it is QUEUED but waits on the client's
 *   held list (fs_client_hold_locked) instead of the work queue, until its
 *   writer pauses for FS_HOLD_IDLE_MS, fsyncs, or until three quarters of
 *   dirty_limit are held (the flusher thread, fs_client.c), or its file
 *   is closed.  A close() while other handles of the mount still write
 *   (c->writers_open: handles that wrote and are not released) queues
 *   nothing (fs_flush_close): the file's versions, its last partial stripe
 *   too, wait on the list until the last writer closes, every writer has
 *   paused for FS_HOLD_IDLE_MS, or FS_HOLD_CLOSED_MS after the close.  A
 *   checkpoint is many files written at once, and the first writer to
 *   finish used to start encoding and sending while the others still
 *   wrote, on the same cores; a lone writer's close still queues at once.
 *   On a machine whose cores the application uses, draining while it
 *   writes only slows the writer down (the nodes and the encoder compete
 *   for the same cores: measured 3-7x slower writes); a checkpoint that
 *   fits in dirty_limit is absorbed at memory speed and drained right
 *   after.  Every path that waits for versions (fsync, close, truncate,
 *   O_TRUNC, memory pressure, unmount) first queues the held ones.
 *
 *   Every version writes all k+m chunks with one generation (the file's
 *   data_gen), data chunk lengths forming the prefix [0, valid) of the
 *   stripe and parity as long as chunk 0; so a reader can tell a stripe
 *   from a hole, stale chunks from current ones, and short chunks from
 *   lost ones (fs_read.c).
 *
 *   A chunk write that fails with a connection error is resent once (the
 *   peer reconnects); then its node is suspected (fs_map) so the following
 *   stripes skip it at once.  Chunks whose target is DOWN are not sent.
 *   A version with >= k chunks stored is good; with fewer than k+m it is
 *   reported to ckpt-meta as degraded (DEGRADED, batched per inode); with
 *   fewer than k the inode gets a sticky -EIO that write, fsync and close
 *   return: never silent loss.
 *
 *   Completion order: ino->fl_head..fl_tail lists the unfinished versions
 *   by submission sequence.  "Everything written before point P is
 *   acknowledged" is "no unfinished version has seq <= P".  fsync waits for
 *   that; close() does not wait: its RELEASE (struct fs_rel) waits in
 *   ino->rels and is sent by a worker when its point is reached, which is
 *   what lets openers on other mounts proceed (msg_meta.h).  Messages that
 *   carry a size (RELEASE after a write, FLUSHED, a truncate's SETATTR) go
 *   to ckpt-meta one at a time per inode, in the order they were made
 *   (meta_busy, rq_head): ckpt-meta stores the size it receives.
 *
 * Threads: FUSE threads (write, flush, fsync, release, setattr), workers of
 * c->wq (sv_run, cw_resend, rel_run, deg_run), net receive/timer threads
 * (cw_done -> cw_finish -> sv_complete).
 *
 * Known limits: a stripe rewritten at the same generation (an append after
 * an fsync of a partial stripe) while one of its targets is unreachable
 * leaves that target with the older version of its chunk until rebuild
 * (see the report: the contract has no per-flush generation).  Overwrites
 * and truncates are correct but not fast (a stripe read-back each).
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "crc.h"
#include "err.h"
#include "log.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static void sv_run(struct fs_job *job);
static void cw_resend(struct fs_job *job);
static void rel_run(struct fs_job *job);
static void deg_run(struct fs_job *job);
static void drain_locked(fs_inode *ino, bool discard_open, struct fs_sv **out_discard);

/* ---- stripe version bookkeeping (ino->lock held) ------------------------------ */

static unsigned sv_bucket(uint64_t stripe)
{
    return (unsigned)(stripe % FS_SV_BUCKETS);
}

static struct fs_sv *open_find_locked(fs_inode *ino, uint64_t stripe)
{
    struct fs_sv *sv = ino->open[sv_bucket(stripe)];
    while (sv && sv->stripe != stripe)
        sv = sv->hnext;
    return sv;
}

static void open_insert_locked(fs_inode *ino, struct fs_sv *sv)
{
    unsigned b = sv_bucket(sv->stripe);
    sv->hnext = ino->open[b];
    ino->open[b] = sv;
    ino->nopen++;
}

static void open_remove_locked(fs_inode *ino, struct fs_sv *sv)
{
    struct fs_sv **pp = &ino->open[sv_bucket(sv->stripe)];
    while (*pp && *pp != sv)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = sv->hnext;
        ino->nopen--;
    }
    sv->hnext = NULL;
}

struct fs_sv *fs_sv_newest_locked(fs_inode *ino, uint64_t stripe)
{
    /* Chains are newest first: a version is pushed at submission. */
    for (struct fs_sv *sv = ino->fl_hash[sv_bucket(stripe)]; sv; sv = sv->fhnext)
        if (sv->stripe == stripe)
            return sv;
    return NULL;
}

struct fs_sv *fs_sv_find_locked(fs_inode *ino, uint64_t stripe)
{
    struct fs_sv *sv = open_find_locked(ino, stripe);
    return sv ? sv : fs_sv_newest_locked(ino, stripe);
}

static void flight_append_locked(fs_inode *ino, struct fs_sv *sv)
{
    unsigned b = sv_bucket(sv->stripe);
    sv->fhnext = ino->fl_hash[b];
    ino->fl_hash[b] = sv;
    sv->fnext = NULL;
    sv->fprev = ino->fl_tail;
    if (ino->fl_tail)
        ino->fl_tail->fnext = sv;
    else
        ino->fl_head = sv;
    ino->fl_tail = sv;
}

static void flight_remove_locked(fs_inode *ino, struct fs_sv *sv)
{
    struct fs_sv **pp = &ino->fl_hash[sv_bucket(sv->stripe)];
    while (*pp && *pp != sv)
        pp = &(*pp)->fhnext;
    if (*pp)
        *pp = sv->fhnext;
    sv->fhnext = NULL;
    if (sv->fprev)
        sv->fprev->fnext = sv->fnext;
    else
        ino->fl_head = sv->fnext;
    if (sv->fnext)
        sv->fnext->fprev = sv->fprev;
    else
        ino->fl_tail = sv->fprev;
    sv->fnext = sv->fprev = NULL;
}

/* true when no version with seq <= point is unfinished */
static bool reached_locked(const fs_inode *ino, uint64_t point)
{
    return !ino->fl_head || ino->fl_head->seq > point;
}

/* Releases whose flush point is reached move, oldest first, to the queue
 * of size messages; its head goes to a worker when no size message is out
 * (fs_int.h: why one at a time). */
static void rels_kick_locked(fs_inode *ino)
{
    while (ino->rels && reached_locked(ino, ino->rels->target_seq)) {
        struct fs_rel *r = ino->rels;
        ino->rels = r->next;
        r->next = NULL;
        if (ino->rq_tail)
            ino->rq_tail->next = r;
        else
            ino->rq_head = r;
        ino->rq_tail = r;
    }
    if (!ino->meta_busy && ino->rq_head) {
        struct fs_rel *r = ino->rq_head;
        ino->rq_head = r->next;
        if (!ino->rq_head)
            ino->rq_tail = NULL;
        r->next = NULL;
        ino->meta_busy = true;
        fs_wq_push(ino->c->wq, &r->job);
    }
}

/* Wait until every earlier size message is answered, then hold the turn. */
static void meta_turn_take_locked(fs_inode *ino)
{
    while (ino->meta_busy || ino->rq_head)
        pthread_cond_wait(&ino->cond, &ino->lock);
    ino->meta_busy = true;
}

static void meta_turn_give_locked(fs_inode *ino)
{
    ino->meta_busy = false;
    rels_kick_locked(ino);
    pthread_cond_broadcast(&ino->cond);
}

void fs_meta_quiesce(fs_inode *ino)
{
    struct fs_sv *discard = NULL;

    pthread_mutex_lock(&ino->lock);
    drain_locked(ino, false, &discard);
    while (ino->meta_busy || ino->rq_head)
        pthread_cond_wait(&ino->cond, &ino->lock);
    pthread_mutex_unlock(&ino->lock);
}

/* ---- allocation ------------------------------------------------------------------ */

/* A new, empty version of stripe (holds an inode reference).  Blocks while
 * the pool is full, pushing idle stripes out to make room. */
static int sv_alloc(fs_inode *ino, uint64_t stripe, struct fs_sv **out)
{
    fs_client *c = ino->c;
    uint64_t bytes = (uint64_t)ino->k * ino->chunk;
    struct fs_sv *sv;
    int rc;

    for (;;) {
        rc = fs_pool_reserve(c->pool, bytes, 100);
        if (rc == 0)
            break;
        if (rc != -ETIMEDOUT)
            return rc;
        fs_client_pressure(c);
    }
    sv = ckpt_calloc(1, sizeof(*sv));
    if (!sv)
        goto fail;
    /* Recycled when possible: the kernel zeroing fresh pages for the
     * writer's copy was half of the client's CPU time in a 4 GiB write.
     * One buffer per chunk: a whole-chunk write can then hand its own
     * buffer over instead of being copied (fs_write_adopt). */
    for (uint32_t i = 0; i < ino->k; i++) {
        sv->cd[i] = fs_client_buf_get(c, ino->chunk);
        if (!sv->cd[i])
            goto fail;
    }
    sv->ino = ino;
    sv->stripe = stripe;
    sv->pool_bytes = bytes;
    sv->state = FS_SV_OPEN;
    sv->job.fn = sv_run;
    for (uint32_t i = 0; i < ino->k + ino->m; i++) {
        sv->cw[i].sv = sv;
        sv->cw[i].idx = (uint8_t)i;
        sv->cw[i].job.fn = cw_resend;
    }
    fs_inode_ref(ino);
    *out = sv;
    return 0;
fail:
    if (sv)
        for (uint32_t i = 0; i < ino->k; i++)
            fs_client_buf_put(c, sv->cd[i], ino->chunk);
    ckpt_free(sv);
    fs_pool_release(c->pool, bytes);
    return -ENOMEM;
}

/* Free the buffers and the struct.  The caller drops the inode reference
 * (fs_inode_put) afterwards, without ino->lock held. */
void fs_sv_free(struct fs_sv *sv)
{
    fs_inode *ino;
    fs_client *c;

    if (!sv)
        return;
    ino = sv->ino;
    c = ino->c;
    ckpt_net_buf_free(c->net, sv->parity, (size_t)ino->m * ino->chunk);
    fs_pool_release(c->pool, sv->pool_bytes + sv->parity_bytes);
    for (uint32_t i = 0; i < ino->k; i++)
        fs_client_buf_put(c, sv->cd[i], ino->chunk);
    ckpt_free(sv);
}

void fs_sv_unpin_locked(fs_inode *ino, struct fs_sv *sv, struct fs_sv **out_free)
{
    (void)ino;
    *out_free = NULL;
    if (--sv->pins == 0 && sv->dead)
        *out_free = sv;
}

/* ---- submission ---------------------------------------------------------------- */

/* Detach an idle open version and queue it (or park it behind an older
 * version of its stripe).  hold: a full stripe the writer just finished,
 * which may wait on the write-behind list.  Caller holds ino->lock;
 * sv->writers == 0. */
static void sv_submit_locked(fs_inode *ino, struct fs_sv *sv, bool hold)
{
    struct fs_sv *prev;

    open_remove_locked(ino, sv);
    sv->valid = sv->resv;
    sv->seq = ++ino->submit_seq;
    prev = fs_sv_newest_locked(ino, sv->stripe);
    flight_append_locked(ino, sv);
    uint64_t end = sv->stripe * ino->sbytes + sv->valid;
    if (end > ino->disk_size)
        ino->disk_size = end;
    if (prev) {
        sv->state = FS_SV_WAIT;
        prev->successor = sv;
    } else {
        sv->state = FS_SV_QUEUED;
        if (hold)
            fs_client_hold_locked(ino->c, sv);
        else
            fs_wq_push(ino->c->wq, &sv->job);
    }
}

static uint64_t flush_start_locked(fs_inode *ino, bool closing)
{
    if (!closing)
        fs_client_unhold_inode_locked(ino->c, ino);
    while (ino->nopen) {
        struct fs_sv *sv = NULL;
        for (unsigned b = 0; b < FS_SV_BUCKETS && !sv; b++)
            sv = ino->open[b];
        if (sv->writers) {
            ino->flush_waiters++;
            pthread_cond_wait(&ino->cond, &ino->lock);
            ino->flush_waiters--;
            continue;
        }
        sv_submit_locked(ino, sv, closing);
    }
    return ino->submit_seq;
}

uint64_t fs_flush_start_locked(fs_inode *ino)
{
    return flush_start_locked(ino, false);
}

uint64_t fs_flush_start(fs_inode *ino)
{
    pthread_mutex_lock(&ino->lock);
    uint64_t seq = fs_flush_start_locked(ino);
    pthread_mutex_unlock(&ino->lock);
    return seq;
}

uint64_t fs_flush_close_locked(fs_inode *ino)
{
    atomic_store(&ino->closed_ns, ckpt_now_ns());
    return flush_start_locked(ino, true);
}

uint64_t fs_flush_close(fs_inode *ino)
{
    pthread_mutex_lock(&ino->lock);
    uint64_t seq = fs_flush_close_locked(ino);
    pthread_mutex_unlock(&ino->lock);
    return seq;
}

void fs_flush_idle(fs_inode *ino)
{
    pthread_mutex_lock(&ino->lock);
    for (unsigned b = 0; b < FS_SV_BUCKETS; b++) {
        struct fs_sv *sv = ino->open[b];
        while (sv) {
            struct fs_sv *next = sv->hnext;
            if (!sv->writers)
                sv_submit_locked(ino, sv, false);
            sv = next;
        }
    }
    pthread_mutex_unlock(&ino->lock);
}

int fs_flush_wait(fs_inode *ino)
{
    pthread_mutex_lock(&ino->lock);
    uint64_t seq = fs_flush_start_locked(ino);
    while (!reached_locked(ino, seq))
        pthread_cond_wait(&ino->cond, &ino->lock);
    int err = ino->err;
    pthread_mutex_unlock(&ino->lock);
    return err;
}

/* ---- encode and send -------------------------------------------------------------- */

static uint8_t *chunk_ptr(struct fs_sv *sv, uint32_t i)
{
    fs_inode *ino = sv->ino;
    if (i < ino->k)
        return sv->cd[i];
    return sv->parity + (size_t)(i - ino->k) * ino->chunk;
}

static void sv_complete(struct fs_sv *sv);

static void cw_finish(struct fs_cw *cw, int status, bool may_resend)
{
    struct fs_sv *sv = cw->sv;
    fs_client *c = sv->ino->c;

    if (status == 0) {
        atomic_fetch_or(&sv->ok_mask, 1u << cw->idx);
    } else if (may_resend && fs_map_is_conn_error(status) && cw->tries < FS_CW_RETRIES) {
        cw->tries++;
        atomic_fetch_add(&c->st.chunk_retries, 1);
        fs_wq_push(c->wq, &cw->job);
        return;
    } else {
        fs_map_suspect(c->map, cw->tid, status);
        CKPT_LOG_DEBUG("chunk %llu/%llu/%u on target %u: " CKPT_RC_FMT,
                       (unsigned long long)sv->ino->ino, (unsigned long long)sv->stripe,
                       cw->idx, cw->tid, CKPT_RC_ARGS(status));
    }
    if (atomic_fetch_sub(&sv->pending, 1) == 1)
        sv_complete(sv);
}

static void cw_done(struct ckpt_call *call)
{
    struct fs_cw *cw = call->ctx;
    int st = call->status;

    ckpt_call_release(call);
    cw_finish(cw, st, true);
}

/* Send chunk i of sv.  force: try a suspected node anyway (a resend).
 * sv->try_all: try nodes the map calls DOWN too (too few are UP). */
static void cw_send(struct fs_sv *sv, uint32_t i, bool force)
{
    fs_inode *ino = sv->ino;
    fs_client *c = ino->c;
    struct fs_cw *cw = &sv->cw[i];
    enum fs_target_state st;
    ckpt_peer *peer = NULL;
    struct ckpt_wbuf w;

    cw->tid = fs_chunk_target(ino, sv->stripe, i);
    if (fs_map_target(c->map, cw->tid, &peer, &st) < 0) {
        cw_finish(cw, -ENXIO, false);
        return;
    }
    if (!sv->try_all && (st == FS_TARGET_DOWN || (st == FS_TARGET_SUSPECT && !force))) {
        cw_finish(cw, -EHOSTDOWN, false);
        return;
    }
    struct ckpt_msg_chunk_write m = {
        .target = cw->tid,
        .key = {.ino = ino->ino, .stripe = sv->stripe, .index = (uint16_t)i},
        .gen = sv->gen,
        .len = sv->lens[i],
        .crc = sv->crcs[i],
        .flags = 0,
    };
    ckpt_wbuf_init(&w, cw->body, sizeof(cw->body));
    int rc = ckpt_msg_chunk_write_encode(&w, &m);
    if (rc < 0 || w.heap) {
        ckpt_wbuf_free(&w);
        cw_finish(cw, rc < 0 ? rc : -EMSGSIZE, false);
        return;
    }
    memset(&cw->call, 0, sizeof(cw->call));
    cw->call.opcode = CKPT_OP_CHUNK_WRITE;
    cw->call.body = cw->body;
    cw->call.body_len = (uint32_t)w.len;
    if (m.len) {
        cw->iov.iov_base = chunk_ptr(sv, i);
        cw->iov.iov_len = m.len;
        cw->call.bulk_out = &cw->iov;
        cw->call.bulk_out_cnt = 1;
    }
    cw->call.timeout_ms = c->opts.chunk_timeout_ms;
    cw->call.done = cw_done;
    cw->call.ctx = cw;
    rc = ckpt_peer_submit(peer, &cw->call);
    if (rc < 0)
        cw_finish(cw, rc, true);
}

static void cw_resend(struct fs_job *job)
{
    struct fs_cw *cw = container_of(job, struct fs_cw, job);
    cw_send(cw->sv, cw->idx, true);
}

/* Worker: checksum, encode, send the k+m chunks of a submitted version. */
static void sv_run(struct fs_job *job)
{
    struct fs_sv *sv = container_of(job, struct fs_sv, job);
    fs_inode *ino = sv->ino;
    fs_client *c = ino->c;
    uint32_t k = ino->k, m = ino->m, chunk = ino->chunk;
    uint8_t *dptr[CKPT_EC_MAX_K], *pptr[CKPT_EC_MAX_M];

    if (sv->valid == 0) {
        /* Nothing was written into it (a read-back that found nothing to
         * change): nothing to store. */
        atomic_store(&sv->pending, 1);
        atomic_store(&sv->ok_mask, (1u << (k + m)) - 1);
        if (atomic_fetch_sub(&sv->pending, 1) == 1)
            sv_complete(sv);
        return;
    }
    if (!sv->holds_slot && !fs_client_slot_try(c, sv))
        return; /* parked: pushed again with a slot */
    if (m && !sv->parity) {
        uint64_t pb = (uint64_t)m * chunk;
        while (fs_pool_reserve_headroom(c->pool, pb, 1000) < 0)
            ; /* stripes in flight give theirs back as they complete */
        sv->parity = ckpt_net_buf_alloc(c->net, (size_t)pb);
        if (!sv->parity) {
            fs_pool_release(c->pool, pb);
            CKPT_LOG_ERR("inode %llu stripe %llu: no memory for parity",
                         (unsigned long long)ino->ino, (unsigned long long)sv->stripe);
            atomic_store(&sv->pending, 1);
            if (atomic_fetch_sub(&sv->pending, 1) == 1)
                sv_complete(sv); /* no chunk stored: the file reports EIO */
            return;
        }
        sv->parity_bytes = pb;
    }

    for (uint32_t i = 0; i < k; i++) {
        uint64_t start = (uint64_t)i * chunk;
        sv->lens[i] = sv->valid > start ? (uint32_t)fs_min_u64(chunk, sv->valid - start) : 0;
    }
    uint32_t l0 = sv->lens[0];
    for (uint32_t i = 0; i < k; i++) {
        dptr[i] = sv->cd[i];
        if (sv->lens[i] < l0)
            memset(dptr[i] + sv->lens[i], 0, l0 - sv->lens[i]);
        sv->crcs[i] = ckpt_crc32c(0, dptr[i], sv->lens[i]);
    }
    for (uint32_t j = 0; j < m; j++) {
        pptr[j] = sv->parity + (size_t)j * chunk;
        sv->lens[k + j] = l0;
    }
    if (m) {
        int rc = ckpt_ec_encode(ino->ec, l0, dptr, pptr);
        if (rc < 0) {
            /* Cannot happen with valid pointers; fail the stripe loudly. */
            CKPT_LOG_ERR("inode %llu stripe %llu: encode failed: " CKPT_RC_FMT,
                         (unsigned long long)ino->ino, (unsigned long long)sv->stripe,
                         CKPT_RC_ARGS(rc));
            atomic_store(&sv->pending, 1);
            if (atomic_fetch_sub(&sv->pending, 1) == 1)
                sv_complete(sv);
            return;
        }
        for (uint32_t j = 0; j < m; j++)
            sv->crcs[k + j] = ckpt_crc32c(0, pptr[j], l0);
    }
    pthread_mutex_lock(&ino->lock);
    sv->gen = ino->gen;
    sv->state = FS_SV_FLIGHT;
    pthread_mutex_unlock(&ino->lock);

    /* Chunks to targets the map calls DOWN are skipped (the stripe is
     * written degraded) - unless that would leave fewer than k: the map
     * can be wrong for a while (ckpt-meta just restarted and the nodes have
     * not heartbeaten yet), and trying a dead node costs one refused
     * connection. */
    uint32_t usable = 0;
    for (uint32_t i = 0; i < k + m; i++) {
        enum fs_target_state st;
        ckpt_peer *peer;
        if (fs_map_target(c->map, fs_chunk_target(ino, sv->stripe, i), &peer, &st) == 0 &&
            st == FS_TARGET_OK)
            usable++;
    }
    sv->try_all = usable < k;

    /* One extra count keeps the version alive through the loop below. */
    atomic_store(&sv->pending, (int)(k + m + 1));
    for (uint32_t i = 0; i < k + m; i++)
        cw_send(sv, i, false);
    if (atomic_fetch_sub(&sv->pending, 1) == 1)
        sv_complete(sv);
}

/* ---- completion ---------------------------------------------------------------------- */

static void scrc_record_locked(fs_inode *ino, struct fs_sv *sv)
{
    uint32_t crc = sv->crcs[0];
    for (uint32_t i = 1; i < ino->k && sv->lens[i]; i++)
        crc = ckpt_crc32c_combine(crc, sv->crcs[i], sv->lens[i]);
    if (sv->stripe >= ino->nscrc) {
        if (!ino->seq_ok)
            return; /* only a sequentially written file gets a checksum */
        uint64_t n = fs_max_u64(sv->stripe + 1, ino->nscrc * 2);
        if (n < 16)
            n = 16;
        struct fs_scrc *a = ckpt_realloc(ino->scrc, n * sizeof(*a));
        if (!a) {
            ino->seq_ok = false;
            return;
        }
        memset(a + ino->nscrc, 0, (n - ino->nscrc) * sizeof(*a));
        ino->scrc = a;
        ino->nscrc = n;
    }
    ino->scrc[sv->stripe].crc = crc;
    ino->scrc[sv->stripe].len = sv->valid;
}

bool fs_file_crc_locked(fs_inode *ino, uint64_t size, uint32_t *out_crc)
{
    uint64_t n, S = ino->sbytes;
    uint32_t crc = 0;

    if (!ino->seq_ok || ino->seq_end != size)
        return false;
    n = (size + S - 1) / S;
    if (n > ino->nscrc)
        return false;
    for (uint64_t s = 0; s < n; s++) {
        uint64_t len = fs_min_u64(S, size - s * S);
        if (ino->scrc[s].len != len)
            return false;
        crc = s == 0 ? ino->scrc[0].crc : ckpt_crc32c_combine(crc, ino->scrc[s].crc, len);
    }
    *out_crc = crc;
    return true;
}

static void deg_add_locked(fs_inode *ino, struct fs_sv *sv, uint32_t missing)
{
    if (ino->ndeg && ino->deg_gen != sv->gen && !ino->deg_queued)
        ino->ndeg = 0; /* an older generation's gaps: rewritten since */
    if (ino->ndeg == ino->capdeg) {
        uint32_t cap = ino->capdeg ? ino->capdeg * 2 : 16;
        if (cap > CKPT_DEGRADED_MAX)
            cap = CKPT_DEGRADED_MAX;
        if (ino->ndeg == cap) {
            CKPT_LOG_WARN("inode %llu: too many degraded stripes to report at once; "
                          "stripe %llu left to the rebuild scan",
                          (unsigned long long)ino->ino, (unsigned long long)sv->stripe);
            return;
        }
        struct ckpt_degraded_stripe *d = ckpt_realloc(ino->deg, cap * sizeof(*d));
        if (!d)
            return;
        ino->deg = d;
        ino->capdeg = cap;
    }
    ino->deg[ino->ndeg].stripe = sv->stripe;
    ino->deg[ino->ndeg].missing_mask = missing;
    ino->ndeg++;
    ino->deg_gen = sv->gen;
    if (!ino->deg_queued) {
        ino->deg_queued = true;
        ino->deg_job.fn = deg_run;
        fs_inode_ref(ino);
        fs_wq_push(ino->c->wq, &ino->deg_job);
    }
}

static void sv_complete(struct fs_sv *sv)
{
    fs_inode *ino = sv->ino;
    fs_client *c = ino->c;
    uint32_t n = ino->k + ino->m, all = (1u << n) - 1;
    uint32_t ok = atomic_load(&sv->ok_mask) & all;
    int nok = __builtin_popcount(ok);
    bool free_now;

    if (sv->holds_slot) {
        sv->holds_slot = false;
        fs_client_slot_put(c);
    }
    pthread_mutex_lock(&ino->lock);
    if (sv->valid) {
        if (nok >= (int)ino->k) {
            atomic_fetch_add(&c->st.stripes_written, 1);
            if (nok < (int)n) {
                atomic_fetch_add(&c->st.stripes_degraded, 1);
                CKPT_LOG_WARN("inode %llu stripe %llu gen %llu: written degraded "
                              "(%d of %u chunks)", (unsigned long long)ino->ino,
                              (unsigned long long)sv->stripe, (unsigned long long)sv->gen,
                              nok, n);
                deg_add_locked(ino, sv, all & ~ok);
            }
            scrc_record_locked(ino, sv);
        } else {
            atomic_fetch_add(&c->st.stripes_failed, 1);
            CKPT_LOG_ERR("inode %llu stripe %llu: only %d of %u chunks stored (need %u): "
                         "the file reports EIO", (unsigned long long)ino->ino,
                         (unsigned long long)sv->stripe, nok, n, ino->k);
            if (!ino->err)
                ino->err = -EIO;
        }
    }
    flight_remove_locked(ino, sv);
    ino->done_ring[ino->ndone % FS_DONE_RING].stripe = sv->stripe;
    ino->done_ring[ino->ndone % FS_DONE_RING].seq = sv->seq;
    ino->ndone++;
    if (sv->successor) {
        sv->successor->state = FS_SV_QUEUED;
        fs_wq_push(c->wq, &sv->successor->job);
        sv->successor = NULL;
    }
    rels_kick_locked(ino);
    free_now = sv->pins == 0;
    if (!free_now)
        sv->dead = true;
    else /* before waiters can see it done: unmount waits for us */
        atomic_fetch_add(&c->completing, 1);
    pthread_cond_broadcast(&ino->cond);
    pthread_mutex_unlock(&ino->lock);
    if (free_now) {
        fs_sv_free(sv);
        fs_inode_put(ino);
        atomic_fetch_sub(&c->completing, 1);
    }
}

/* ---- write() ------------------------------------------------------------------------- */

/* Was a version of stripe submitted after point seq0 (ndone0 versions
 * finished then)?  Then a copy taken before is stale. */
static bool stripe_changed_locked(fs_inode *ino, uint64_t stripe, uint64_t seq0,
                                  uint64_t ndone0)
{
    struct fs_sv *nv = fs_sv_newest_locked(ino, stripe);
    if (nv && nv->seq > seq0)
        return true;
    if (ino->ndone - ndone0 > FS_DONE_RING)
        return true;
    for (uint64_t d = ndone0; d < ino->ndone; d++)
        if (ino->done_ring[d % FS_DONE_RING].stripe == stripe &&
            ino->done_ring[d % FS_DONE_RING].seq > seq0)
            return true;
    return false;
}

/*
 * The open version of stripe, created if needed.  Returns with ino->lock
 * held on success.  [so, so+n) is the range about to be written (a write
 * of the whole stripe needs no read-back).  Every unlock below is followed
 * by a fresh look at the table: another writer, a flush or a truncate may
 * have changed it meanwhile.
 */
static int sv_get_open(fs_inode *ino, uint64_t stripe, uint64_t so, uint64_t n,
                       struct fs_sv **out)
{
    fs_client *c = ino->c;
    struct fs_sv *fresh = NULL;
    uint64_t seq0 = 0, ndone0 = 0;
    int rc = 0;

    pthread_mutex_lock(&ino->lock);
    for (;;) {
        while (ino->truncating)
            pthread_cond_wait(&ino->cond, &ino->lock);
        if (ino->err) {
            rc = ino->err;
            break;
        }
        struct fs_sv *sv = open_find_locked(ino, stripe);
        if (sv && !fresh) {
            *out = sv;
            return 0;
        }
        if (sv) {
            /* Another writer created it first: ours goes back. */
            struct fs_sv *f = fresh;
            fresh = NULL;
            pthread_mutex_unlock(&ino->lock);
            fs_sv_free(f);
            fs_inode_put(ino);
            pthread_mutex_lock(&ino->lock);
            continue;
        }
        if (fresh && !stripe_changed_locked(ino, stripe, seq0, ndone0)) {
            struct fs_rc *dropped = NULL;
            open_insert_locked(ino, fresh);
            /* The read cache must not serve the stripe's old bytes. */
            fs_rc_drop_locked(ino, stripe, false, &dropped);
            fs_rc_free_list(c, dropped); /* memory only: fine under ino->lock */
            *out = fresh;
            return 0;
        }
        /* Build a new version outside the lock. */
        seq0 = ino->submit_seq;
        ndone0 = ino->ndone;
        struct fs_sv *src = fs_sv_newest_locked(ino, stripe);
        uint64_t size = ino->size;
        bool whole = so == 0 && n == ino->sbytes;
        bool load = !src && !whole && stripe * ino->sbytes < ino->disk_size &&
                    stripe * ino->sbytes < size;
        if (src)
            src->pins++;
        pthread_mutex_unlock(&ino->lock);

        if (fresh) {
            fs_sv_free(fresh);
            fs_inode_put(ino);
            fresh = NULL;
        }
        rc = sv_alloc(ino, stripe, &fresh);
        if (rc == 0) {
            if (src) {
                for (uint32_t i = 0; i < ino->k && (uint64_t)i * ino->chunk < src->valid; i++)
                    memcpy(fresh->cd[i], src->cd[i],
                           fs_min_u64(ino->chunk, src->valid - (uint64_t)i * ino->chunk));
                fresh->resv = src->valid;
            } else if (load) {
                atomic_fetch_add(&c->st.rmw_loads, 1);
                rc = fs_stripe_load(ino, stripe, size, fresh->cd);
                fresh->resv = (uint32_t)fs_min_u64(ino->sbytes, size - stripe * ino->sbytes);
            }
        }
        struct fs_sv *srcfree = NULL;
        pthread_mutex_lock(&ino->lock);
        if (src)
            fs_sv_unpin_locked(ino, src, &srcfree);
        if (srcfree) {
            pthread_mutex_unlock(&ino->lock);
            fs_sv_free(srcfree);
            fs_inode_put(ino);
            pthread_mutex_lock(&ino->lock);
        }
        if (rc < 0)
            break;
    }
    pthread_mutex_unlock(&ino->lock);
    if (fresh) {
        fs_sv_free(fresh);
        fs_inode_put(ino);
    }
    return rc;
}

/* Zero [from, to) of a version's data. */
static void sv_zero(struct fs_sv *sv, uint64_t from, uint64_t to)
{
    uint32_t chunk = sv->ino->chunk;
    while (from < to) {
        uint64_t in = from % chunk, piece = fs_min_u64(chunk - in, to - from);
        memset(sv->cd[from / chunk] + in, 0, piece);
        from += piece;
    }
}

/* Fill [so, so+n) of a version's data from copy, chunk by chunk. */
static int sv_fill(struct fs_sv *sv, uint64_t so, uint64_t n, fs_copy_fn copy, void *ctx)
{
    uint32_t chunk = sv->ino->chunk;
    for (uint64_t o = so; o < so + n;) {
        uint64_t in = o % chunk, piece = fs_min_u64(chunk - in, so + n - o);
        int rc = copy(ctx, sv->cd[o / chunk] + in, piece);
        if (rc < 0)
            return rc;
        o += piece;
    }
    return 0;
}

/* Where a write's bytes come from: copy(), or a buffer that may be
 * adopted as a chunk (fs_write_adopt). */
struct wsrc {
    fs_copy_fn copy;
    void *ctx;
    uint8_t **adopt;
    size_t cap;
};

static ssize_t write_src(fs_inode *ino, uint64_t off, size_t len, const struct wsrc *src)
{
    fs_client *c = ino->c;
    uint64_t S = ino->sbytes;
    size_t done = 0;
    struct timespec now;

    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return -EFBIG;
    clock_gettime(CLOCK_REALTIME, &now);
    atomic_store(&ino->last_write_ns, ckpt_now_ns());
    atomic_store(&c->last_activity_ns, ckpt_now_ns());
    while (done < len) {
        uint64_t pos = off + done;
        uint64_t stripe = pos / S, so = pos % S;
        uint64_t n = fs_min_u64(len - done, S - so);
        struct fs_sv *sv = NULL;
        int rc = sv_get_open(ino, stripe, so, n, &sv);
        if (rc < 0)
            return done ? (ssize_t)done : rc;
        /* ino->lock held: claim [so, so+n). */
        if (so > sv->resv)
            sv_zero(sv, sv->resv, so);
        if (so + n > sv->resv)
            sv->resv = (uint32_t)(so + n);
        /* A whole chunk in a buffer of chunk size: it becomes the chunk,
         * and the chunk's old buffer goes back to the caller, unless
         * someone is copying into this version or replying from it. */
        bool adopt = src->adopt && *src->adopt && src->cap == ino->chunk && n == len &&
                     n == ino->chunk && so % ino->chunk == 0 && !sv->writers && !sv->pins;
        if (adopt) {
            uint8_t **slot = &sv->cd[so / ino->chunk];
            uint8_t *old = *slot;
            *slot = *src->adopt;
            *src->adopt = old;
            atomic_fetch_add(&c->st.chunks_adopted, 1);
        } else {
            sv->writers++;
        }
        if (so + n == S)
            sv->tail_written = true;
        if (pos + n > ino->size)
            ino->size = pos + n;
        ino->local_size = true;
        if (ino->seq_ok) {
            if (pos == ino->seq_end)
                ino->seq_end += n;
            else
                ino->seq_ok = false;
        }
        ino->mtime_sec = now.tv_sec;
        ino->mtime_nsec = (uint32_t)now.tv_nsec;
        ino->mtime_set = true;
        if (!adopt) {
            pthread_mutex_unlock(&ino->lock);
            rc = sv_fill(sv, so, n, src->copy, src->ctx);
            if (rc < 0)
                sv_zero(sv, so, so + n);
            pthread_mutex_lock(&ino->lock);
            sv->writers--;
            if (!sv->writers && ino->flush_waiters)
                pthread_cond_broadcast(&ino->cond);
        }
        /* Full: a writer reached the end of the stripe (a stripe that is
         * full only because it was read back is not: small overwrites
         * then gather in it until a flush). */
        if (!sv->writers && sv->state == FS_SV_OPEN && sv->resv == S && sv->tail_written)
            sv_submit_locked(ino, sv, true);
        pthread_mutex_unlock(&ino->lock);
        if (rc < 0)
            return done ? (ssize_t)done : rc;
        done += n;
    }
    atomic_fetch_add(&c->st.bytes_written, len);
    return (ssize_t)len;
}

ssize_t fs_write(fs_inode *ino, uint64_t off, size_t len, fs_copy_fn copy, void *ctx)
{
    struct wsrc src = {copy, ctx, NULL, 0};
    return write_src(ino, off, len, &src);
}

struct mem_src {
    const uint8_t *p;
};

static int copy_mem_src(void *ctx, void *dst, size_t n)
{
    struct mem_src *m = ctx;
    memcpy(dst, m->p, n);
    m->p += n;
    return 0;
}

ssize_t fs_write_adopt(fs_inode *ino, uint64_t off, size_t len, uint8_t **buf, size_t cap)
{
    struct mem_src m = {*buf};
    struct wsrc src = {copy_mem_src, &m, buf, cap};
    if (len > cap)
        return -EINVAL;
    return write_src(ino, off, len, &src);
}

/* ---- fsync, release, reports ------------------------------------------------------------ */

static int sync_targets(fs_inode *ino)
{
    fs_client *c = ino->c;
    struct fs_bcall *bc;
    struct fs_batch b;
    uint32_t failed = 0;

    bc = ckpt_calloc(ino->w, sizeof(*bc));
    if (!bc)
        return -ENOMEM;
    fs_batch_init(&b);
    for (uint32_t i = 0; i < ino->w; i++) {
        enum fs_target_state st;
        ckpt_peer *peer;
        struct ckpt_wbuf w;
        struct ckpt_msg_chunk_sync m = {.target = fs_chunk_target(ino, 0, i), .n = 1};

        bc[i].tid = m.target;
        m.inos[0] = ino->ino;
        if (fs_map_target(c->map, m.target, &peer, &st) < 0 || st != FS_TARGET_OK) {
            bc[i].status = -EHOSTDOWN;
            continue;
        }
        ckpt_wbuf_init(&w, bc[i].body, sizeof(bc[i].body));
        if (ckpt_msg_chunk_sync_encode(&w, &m) < 0 || w.heap) {
            ckpt_wbuf_free(&w);
            bc[i].status = -EMSGSIZE;
            continue;
        }
        bc[i].call.opcode = CKPT_OP_CHUNK_SYNC;
        bc[i].call.body = bc[i].body;
        bc[i].call.body_len = (uint32_t)w.len;
        bc[i].call.timeout_ms = c->opts.chunk_timeout_ms * 3;
        fs_batch_submit(&b, peer, &bc[i]);
    }
    fs_batch_wait(&b);
    for (uint32_t i = 0; i < ino->w; i++) {
        ckpt_call_release(&bc[i].call);
        if (bc[i].status < 0) {
            failed++;
            fs_map_suspect(c->map, bc[i].tid, bc[i].status);
            CKPT_LOG_WARN("inode %llu: sync on target %u failed: " CKPT_RC_FMT,
                          (unsigned long long)ino->ino, bc[i].tid,
                          CKPT_RC_ARGS(bc[i].status));
        }
    }
    ckpt_free(bc);
    /* Every stripe has its chunks on k+m distinct targets of the list; if
     * no more than m targets failed to sync, every stripe still has k
     * durable chunks. */
    return failed > ino->m ? -EIO : 0;
}

static void release_msg_locked(fs_inode *ino, uint64_t handle, uint64_t size, bool wrote,
                               struct ckpt_msg_release *m)
{
    memset(m, 0, sizeof(*m));
    m->ino = ino->ino;
    m->handle = handle;
    m->session = ino->c->mc ? ckpt_mclient_session(ino->c->mc) : 0;
    m->wrote = wrote;
    if (wrote) {
        m->lost = ino->err < 0; /* some write-back failed: data incomplete */
        m->size = size;
        m->mtime_sec = ino->mtime_sec;
        m->mtime_nsec = ino->mtime_nsec;
        if (!ino->err && fs_file_crc_locked(ino, size, &m->checksum))
            m->has_checksum = 1;
    }
}

/*
 * Send a size message (RELEASE after a write, FLUSHED) to ckpt-meta.  It
 * must arrive: lost with a ckpt-meta restart, the file kept an older size
 * (seen in test_fail_meta: the restart landed while a RELEASE was on the
 * wire), or fsync() failed with ENOTCONN in the middle of a checkpoint
 * (seen there too, for a FLUSHED).  The connection comes back with the
 * restarted ckpt-meta, whose store still has the handle, and both messages
 * only store what they carry: retry connection errors for up to
 * FS_REL_RETRY_MS.
 */
static int size_msg_send(fs_inode *ino, int (*send)(ckpt_mclient *, const struct ckpt_msg_release *),
                         const char *what, const struct ckpt_msg_release *m)
{
    int rc = send(ino->c->mc, m);
    for (uint32_t waited = 0; rc < 0 && fs_map_is_conn_error(rc) && rc != CKPT_E_PROTO &&
                              rc != CKPT_E_AUTH && waited < FS_REL_RETRY_MS;
         waited += 250) {
        if (waited == 0)
            CKPT_LOG_INFO("inode %llu: %s of handle %llu: " CKPT_RC_FMT ", retrying while "
                          "ckpt-meta comes back", (unsigned long long)ino->ino, what,
                          (unsigned long long)m->handle, CKPT_RC_ARGS(rc));
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
        rc = send(ino->c->mc, m);
    }
    return rc;
}

int fs_fsync(struct fs_fh *fh)
{
    fs_inode *ino = fh->ino;
    struct ckpt_msg_release m;
    uint64_t seq;
    int rc;

    pthread_mutex_lock(&ino->lock);
    seq = fs_flush_start_locked(ino);
    while (!reached_locked(ino, seq))
        pthread_cond_wait(&ino->cond, &ino->lock);
    rc = ino->err;
    if (rc == 0 && ino->incomplete) {
        /* A writer (maybe on another mount, maybe before this open) died
         * or could not store all of its data: what fsync promises does
         * not hold until the file is written again (O_TRUNC). */
        rc = -EIO;
    }
    bool nothing = seq == ino->synced_seq;
    if (rc < 0 || nothing) {
        pthread_mutex_unlock(&ino->lock);
        return rc;
    }
    meta_turn_take_locked(ino);
    release_msg_locked(ino, fh->handle, ino->size, true, &m);
    pthread_mutex_unlock(&ino->lock);
    rc = sync_targets(ino);
    if (rc == 0 && ino->c->mc) {
        rc = size_msg_send(ino, ckpt_mclient_flushed, "FLUSHED", &m);
        if (rc < 0)
            CKPT_LOG_WARN("inode %llu: FLUSHED failed: " CKPT_RC_FMT,
                          (unsigned long long)ino->ino, CKPT_RC_ARGS(rc));
    }
    pthread_mutex_lock(&ino->lock);
    meta_turn_give_locked(ino);
    if (rc == 0 && ino->synced_seq < seq)
        ino->synced_seq = seq;
    pthread_mutex_unlock(&ino->lock);
    return rc;
}

static void rel_run(struct fs_job *job)
{
    struct fs_rel *r = container_of(job, struct fs_rel, job);
    fs_inode *ino = r->ino;
    struct ckpt_msg_release m;

    pthread_mutex_lock(&ino->lock);
    release_msg_locked(ino, r->handle, r->size, r->wrote, &m);
    int err = ino->err;
    pthread_mutex_unlock(&ino->lock);
    if (err < 0)
        CKPT_LOG_ERR("inode %llu: closed after a write-back failure (" CKPT_RC_FMT
                     "): its data is incomplete", (unsigned long long)ino->ino,
                     CKPT_RC_ARGS(err));
    int rc = 0;
    if (ino->c->mc)
        rc = r->wrote ? size_msg_send(ino, ckpt_mclient_release, "RELEASE", &m)
                      : ckpt_mclient_release(ino->c->mc, &m);
    if (rc == -ESTALE && !r->wrote)
        /* A read handle that a restarted ckpt-meta does not know (it kept
         * read handles in memory): nothing was held for us. */
        CKPT_LOG_DEBUG("inode %llu: read handle %llu unknown to ckpt-meta",
                       (unsigned long long)ino->ino, (unsigned long long)r->handle);
    else if (rc < 0)
        CKPT_LOG_WARN("inode %llu: RELEASE of handle %llu failed: " CKPT_RC_FMT,
                      (unsigned long long)ino->ino, (unsigned long long)r->handle,
                      CKPT_RC_ARGS(rc));
    if (r->wrote) {
        pthread_mutex_lock(&ino->lock);
        meta_turn_give_locked(ino);
        pthread_mutex_unlock(&ino->lock);
    }
    ckpt_free(r);
    fs_inode_put(ino);
}

void fs_release_deferred(struct fs_fh *fh)
{
    fs_inode *ino = fh->ino;
    struct fs_rel *r = fh->rel;
    bool wrote = atomic_load(&fh->wrote), last_writer = false;

    fh->rel = NULL;
    r->ino = ino;  /* takes over fh's reference */
    r->handle = fh->handle;
    r->wrote = wrote;
    r->job.fn = rel_run;
    pthread_mutex_lock(&ino->lock);
    r->size = ino->size;
    if (!wrote) {
        /* No size: nothing to order it with. */
        fs_wq_push(ino->c->wq, &r->job);
    } else {
        struct fs_rel **pp = &ino->rels;
        bool others = atomic_fetch_sub(&ino->c->writers_open, 1) > 1;
        r->target_seq = others ? fs_flush_close_locked(ino) : fs_flush_start_locked(ino);
        last_writer = !others;
        r->next = NULL;
        while (*pp)
            pp = &(*pp)->next;
        *pp = r;
        rels_kick_locked(ino);
    }
    pthread_mutex_unlock(&ino->lock);
    if (last_writer)
        fs_client_unhold_closed(ino->c);
}

static void deg_run(struct fs_job *job)
{
    fs_inode *ino = container_of(job, fs_inode, deg_job);
    struct ckpt_msg_degraded m;

    memset(&m, 0, sizeof(m));
    pthread_mutex_lock(&ino->lock);
    m.ino = ino->ino;
    m.data_gen = ino->deg_gen;
    m.n = ino->ndeg;
    m.stripes = ino->deg;
    ino->deg = NULL;
    ino->ndeg = ino->capdeg = 0;
    ino->deg_queued = false;
    pthread_mutex_unlock(&ino->lock);
    if (m.n && ino->c->mc) {
        int rc = ckpt_mclient_degraded(ino->c->mc, &m);
        if (rc < 0)
            CKPT_LOG_WARN("inode %llu: DEGRADED report of %u stripes failed: " CKPT_RC_FMT
                          " (the rebuild scan will find them)",
                          (unsigned long long)ino->ino, m.n, CKPT_RC_ARGS(rc));
    }
    ckpt_free(m.stripes);
    fs_inode_put(ino);
}

/* ---- truncate ------------------------------------------------------------------------------- */

void fs_delete_chunks(fs_client *c, uint64_t ino, const struct ckpt_layout *layout,
                      uint64_t from_stripe, uint64_t below_gen)
{
    struct fs_bcall *bc;
    struct fs_batch b;
    uint32_t w = layout->width;

    bc = ckpt_calloc(w, sizeof(*bc));
    if (!bc)
        return; /* ckpt-meta's deletion queue does it later */
    fs_batch_init(&b);
    for (uint32_t i = 0; i < w; i++) {
        enum fs_target_state st;
        ckpt_peer *peer;
        struct ckpt_wbuf wb;
        struct ckpt_msg_chunk_delete m = {
            .target = layout->targets[i],
            .ino = ino,
            .from_stripe = from_stripe,
            .below_gen = below_gen,
        };
        bc[i].tid = m.target;
        if (fs_map_target(c->map, m.target, &peer, &st) < 0 || st != FS_TARGET_OK) {
            bc[i].status = -EHOSTDOWN;
            continue;
        }
        ckpt_wbuf_init(&wb, bc[i].body, sizeof(bc[i].body));
        if (ckpt_msg_chunk_delete_encode(&wb, &m) < 0 || wb.heap) {
            ckpt_wbuf_free(&wb);
            continue;
        }
        bc[i].call.opcode = CKPT_OP_CHUNK_DELETE;
        bc[i].call.body = bc[i].body;
        bc[i].call.body_len = (uint32_t)wb.len;
        bc[i].call.timeout_ms = c->opts.chunk_timeout_ms;
        fs_batch_submit(&b, peer, &bc[i]);
    }
    fs_batch_wait(&b);
    for (uint32_t i = 0; i < w; i++) {
        ckpt_call_release(&bc[i].call);
        if (bc[i].status < 0)
            CKPT_LOG_DEBUG("inode %llu: delete from stripe %llu on target %u: " CKPT_RC_FMT,
                           (unsigned long long)ino, (unsigned long long)from_stripe,
                           bc[i].tid, CKPT_RC_ARGS(bc[i].status));
    }
    ckpt_free(bc);
}

/* Discard the open versions (their data is cut away) and wait for the
 * submitted ones.  Caller holds ino->lock and has set ino->truncating. */
static void drain_locked(fs_inode *ino, bool discard_open, struct fs_sv **out_discard)
{
    *out_discard = NULL;
    fs_client_unhold_inode_locked(ino->c, ino); /* held versions must finish too */
    if (discard_open) {
        while (ino->nopen) {
            struct fs_sv *sv = NULL;
            for (unsigned b = 0; b < FS_SV_BUCKETS && !sv; b++)
                sv = ino->open[b];
            if (sv->writers) {
                ino->flush_waiters++;
                pthread_cond_wait(&ino->cond, &ino->lock);
                ino->flush_waiters--;
                continue;
            }
            open_remove_locked(ino, sv);
            sv->hnext = *out_discard;
            *out_discard = sv;
        }
    } else {
        (void)fs_flush_start_locked(ino);
    }
    while (ino->fl_head)
        pthread_cond_wait(&ino->cond, &ino->lock);
}

static void free_discarded(fs_inode *ino, struct fs_sv *list)
{
    while (list) {
        struct fs_sv *next = list->hnext;
        fs_sv_free(list);
        fs_inode_put(ino);
        list = next;
    }
}

int fs_truncate(fs_inode *ino, const struct ckpt_msg_setattr *sa, struct ckpt_attr *out)
{
    fs_client *c = ino->c;
    uint64_t S = ino->sbytes, nsz = sa->size, old, disk;
    struct fs_sv *bsv = NULL, *discard = NULL;
    struct fs_rc *dropped = NULL;
    int rc;

    if (!c->mc)
        return -ENOTCONN;
    pthread_mutex_lock(&ino->lock);
    while (ino->truncating)
        pthread_cond_wait(&ino->cond, &ino->lock);
    ino->truncating = true;
    drain_locked(ino, false, &discard);
    meta_turn_take_locked(ino); /* no older RELEASE may land after our SETATTR */
    old = ino->size;
    disk = ino->disk_size;
    rc = ino->err;
    pthread_mutex_unlock(&ino->lock);
    if (rc < 0)
        goto out;

    if (nsz < old && nsz % S) {
        /* The stripe the new end falls into keeps [0, nsz) and must read
         * as zeros after it: it is rewritten with the new generation. */
        uint64_t b = nsz / S;
        rc = sv_alloc(ino, b, &bsv);
        if (rc < 0)
            goto out;
        if (b * S < disk) {
            atomic_fetch_add(&c->st.rmw_loads, 1);
            rc = fs_stripe_load(ino, b, old, bsv->cd);
            if (rc < 0)
                goto out;
        }
        bsv->resv = (uint32_t)(nsz - b * S);
    }
    rc = ckpt_mclient_setattr(c->mc, sa, out);
    if (rc < 0)
        goto out;

    pthread_mutex_lock(&ino->lock);
    if (out->data_gen > ino->gen)
        ino->gen = out->data_gen;
    ino->size = out->size;
    if (ino->size < ino->disk_size)
        ino->disk_size = ino->size;
    if (ino->size == 0) {
        ino->seq_ok = true;
        ino->seq_end = 0;
        ino->nscrc = 0;
    } else if (ino->size != old) {
        ino->seq_ok = false;
    }
    fs_rc_drop_locked(ino, 0, true, &dropped);
    uint64_t gen = ino->gen;
    pthread_mutex_unlock(&ino->lock);
    fs_rc_free_list(c, dropped);

    struct ckpt_layout cur;
    fs_inode_layout(ino, &cur);
    if (nsz < old)
        fs_delete_chunks(c, ino->ino, &cur, (nsz + S - 1) / S, gen);
    else if (nsz > old)
        fs_delete_chunks(c, ino->ino, &cur, (old + S - 1) / S, gen);

    if (bsv) {
        pthread_mutex_lock(&ino->lock);
        open_insert_locked(ino, bsv);
        sv_submit_locked(ino, bsv, false);
        bsv = NULL;
        while (ino->fl_head)
            pthread_cond_wait(&ino->cond, &ino->lock);
        rc = ino->err;
        pthread_mutex_unlock(&ino->lock);
    }
out:
    if (bsv) {
        fs_sv_free(bsv);
        fs_inode_put(ino);
    }
    pthread_mutex_lock(&ino->lock);
    meta_turn_give_locked(ino);
    ino->truncating = false;
    pthread_cond_broadcast(&ino->cond);
    pthread_mutex_unlock(&ino->lock);
    free_discarded(ino, discard);
    return rc;
}

void fs_after_otrunc(fs_client *c, fs_inode *ino, const struct ckpt_attr *attr,
                     const struct ckpt_layout *layout)
{
    struct fs_sv *discard = NULL;
    struct fs_rc *dropped = NULL;

    if (ino) {
        pthread_mutex_lock(&ino->lock);
        while (ino->truncating)
            pthread_cond_wait(&ino->cond, &ino->lock);
        ino->truncating = true;
        drain_locked(ino, true, &discard);
        if (attr->data_gen > ino->gen)
            ino->gen = attr->data_gen;
        ino->size = 0;
        ino->disk_size = 0;
        ino->seq_ok = true;
        ino->seq_end = 0;
        ino->nscrc = 0;
        ino->err = 0;
        ino->incomplete = false;
        fs_rc_drop_locked(ino, 0, true, &dropped);
        pthread_mutex_unlock(&ino->lock);
        fs_rc_free_list(c, dropped);
        free_discarded(ino, discard);
    }
    fs_delete_chunks(c, attr->ino, layout, 0, attr->data_gen);
    if (ino) {
        pthread_mutex_lock(&ino->lock);
        ino->truncating = false;
        pthread_cond_broadcast(&ino->cond);
        pthread_mutex_unlock(&ino->lock);
    }
}

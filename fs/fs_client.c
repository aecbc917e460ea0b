/*
 * fs_client.c - the FUSE client object: options, the table of open inodes,
 * shared erasure coders, sending slots, memory pressure (fs_int.h).
 *
 * DESIGN
 *
 *   One struct fs_client per mount, created by main() and passed to every
 *   FUSE handler as the session's userdata (no globals).  It owns:
 *     net    the transport context (its receive threads run completions)
 *     mc     the ckpt-meta session (lease thread inside mclient)
 *     map    cluster map + one peer per node (refresh thread, fs_map.c)
 *     pool   the dirty_limit budget (fs_pool.c)
 *     wq     `threads` workers: encode + send stripes, resend chunks,
 *            RELEASE/DEGRADED reports (fs_write.c), at nice
 *            FS_WRITEBACK_NICE: see below

 *     rq     `threads` workers: read-ahead stripe loads (fs_read.c)
 *
 *   Inode table: the inodes open on this mount (and those whose write-back
 *   is still running after their last close), hashed by inode number under
 *   c->lock.  A reference is held by each open handle, each stripe version,
 *   each queued job and each read-ahead load; the last fs_inode_put()
 *   unlinks and frees the inode.  Lock order: ino->lock, then c->lock
 *   (references are taken under ino->lock; c->lock never nests the other
 *   way).
 *
 *   Priorities: write-back runs behind the application.  On a machine
 *   whose cores are all busy, the workers that encode and send stripes
 *   get a small share (nice FS_WRITEBACK_NICE) while write() calls and
 *   reads compete, so a checkpoint that fits in dirty_limit is taken at
 *   memory speed and drained afterwards; with idle cores they run at full
 *   speed alongside.  Measured with tests/bench/bench_fs.sh (see the
 *   report).  Read-ahead workers, which the application waits for, keep
 *   normal priority.
 *
 *   Recycled buffers: stripe data buffers that finished go to a small
 *   cache (c->bufs) instead of back to the allocator, as long as buffers
 *   in use plus cached ones fit in dirty_limit, and are freed after
 *   buffer_keep ([client], default 30 min) without writes.  The kernel
 *   zeroing fresh pages as the writer's copy first touched them was half
 *   of the client's CPU time in a 4 GiB write (perf); on this VM, where
 *   the first touch of a page also costs the host, a 4 x 1 GiB checkpoint
 *   into fresh buffers kept the writers 6-9.5 s (12 s of client CPU, 46%
 *   clear_page), into recycled ones 0.55-0.85 s.  Checkpoints come every
 *   few minutes, so the buffers are kept longer than that interval (the
 *   earlier 5 min made every checkpoint of a 5 min cadence a first one);
 *   the memory stays within dirty_limit, which the user gave us anyway.
 *
 *   Sending slots: at most max_flight stripe versions have chunk writes on
 *   the wire at once (2 per worker).  The rest wait in client memory, where
 *   they already are, instead of queueing at the nodes where a long queue
 *   would only turn into call timeouts.  A version that finds no free slot
 *   is parked (c->slot_head) rather than blocking its worker, so chunk
 *   resends and reports queued behind it always find a worker.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "log.h"

void fs_opts_default(struct fs_opts *o)
{
    struct ckpt_config cfg;

    memset(o, 0, sizeof(*o));
    ckpt_config_init(&cfg);
    snprintf(o->meta_host, sizeof(o->meta_host), "%s", cfg.cluster.meta.host);
    o->meta_port = cfg.cluster.meta.port;
    snprintf(o->name, sizeof(o->name), "ckptfs");
    o->transport = CKPT_TRANSPORT_TCP;
    o->dirty_limit_bytes = cfg.client.dirty_limit_bytes;
    o->threads = cfg.client.threads;
    o->readahead_bytes = cfg.client.readahead_bytes;
    o->attr_timeout_ms = (uint32_t)cfg.client.attr_timeout_ms;
    o->entry_timeout_ms = (uint32_t)cfg.client.entry_timeout_ms;
    o->buffer_keep_ms = cfg.client.buffer_keep_ms;
    o->io_mode = FS_IO_DIRECT;
    o->parallel_writes = true;
    o->splice = true;
    o->local_read = true; /* short-circuit reads of same-host nodes (-o nolocal) */
    o->chunk_timeout_ms = 10000;
    ckpt_config_free(&cfg);
}

static int flusher_start(fs_client *c);
static void flusher_stop(fs_client *c);
static void bufs_take_locked(fs_client *c, size_t out_len[4], struct fs_freebuf *out[4],
                             struct fs_slab **out_slabs);
static void bufs_free(fs_client *c, size_t len[4], struct fs_freebuf *lists[4],
                      struct fs_slab *slabs);

static int map_fetch(void *ctx, uint64_t known_epoch, struct ckpt_msg_cluster_map_resp *out)
{
    return ckpt_mclient_map(ctx, known_epoch, out);
}

static void session_lost(void *ctx, uint64_t old_session, uint64_t new_session)
{
    (void)ctx;
    CKPT_LOG_WARN("ckpt-meta lost session %llu (now %llu): files open across the loss "
                  "release as best they can", (unsigned long long)old_session,
                  (unsigned long long)new_session);
}

static int net_for(const struct fs_opts *opts, ckpt_net **out)
{
    struct ckpt_net_opts no;

    memset(&no, 0, sizeof(no));
    memcpy(no.key, opts->key, sizeof(no.key));
    no.name = "ckptfs";
    no.transport = opts->transport;
    no.call_timeout_ms = opts->chunk_timeout_ms ? opts->chunk_timeout_ms : 10000;
    return ckpt_net_create(&no, out);
}

static int mclient_for(const struct fs_opts *opts, ckpt_net *net, void *ctx,
                       ckpt_mclient **out)
{
    struct ckpt_mclient_opts mo;

    memset(&mo, 0, sizeof(mo));
    mo.host = opts->meta_host;
    mo.port = opts->meta_port;
    mo.name = opts->name;
    mo.retry_ms = 5000;
    mo.session_lost = session_lost;
    mo.ctx = ctx;
    return ckpt_mclient_create(net, &mo, out);
}

int fs_client_probe(const struct fs_opts *opts)
{
    struct ckpt_msg_cluster_map_resp map;
    ckpt_mclient *mc = NULL;
    ckpt_net *net = NULL;
    int rc;

    rc = net_for(opts, &net);
    if (rc < 0)
        return rc;
    rc = mclient_for(opts, net, NULL, &mc);
    if (rc == 0) {
        memset(&map, 0, sizeof(map));
        rc = ckpt_mclient_map(mc, 0, &map);
        if (rc == 0)
            ckpt_msg_cluster_map_resp_free(&map);
    }
    ckpt_mclient_destroy(mc);
    ckpt_net_destroy(net);
    return rc;
}

int fs_client_create(const struct fs_opts *opts, fs_client **out)
{
    fs_client *c;
    int rc;

    if (!opts || !out || !opts->threads || opts->threads > 256 || !opts->dirty_limit_bytes)
        return -EINVAL;
    c = ckpt_calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->opts = *opts;
    if (!c->opts.chunk_timeout_ms)
        c->opts.chunk_timeout_ms = 10000;
    c->max_flight = 2 * c->opts.threads;
    if (c->max_flight < 4)
        c->max_flight = 4;
    c->rc_limit = fs_max_u64(4 * c->opts.readahead_bytes, 64ull << 20);
    c->held_limit = opts->dirty_limit_bytes / 4 * 3;
    /* Direct-I/O files can be mmap'ed MAP_SHARED (model loaders do) only
     * with this INIT flag (fs_kio.h). */
    c->kio.want_flags2 = FS_KIO_F2_DIRECT_IO_ALLOW_MMAP;
    if (c->opts.local_read) {
        int hrc = ckpt_host_id(c->host_id);
        c->local_read = hrc == 0;
        if (hrc < 0)
            CKPT_LOG_WARN("cannot read this host's boot_id (" CKPT_RC_FMT "): chunks of "
                          "nodes on this host are read through them", CKPT_RC_ARGS(hrc));
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    rc = fs_pool_create(opts->dirty_limit_bytes, &c->pool);
    if (rc == 0) {
        /* Parity of the stripes being sent: max_flight of the default
         * layout's (other layouts may wait for one another, never for
         * buffered data). */
        fs_pool_set_headroom(c->pool, (uint64_t)c->max_flight * CKPT_LAYOUT_DEFAULT_M *
                                          CKPT_LAYOUT_DEFAULT_CHUNK);
        c->zeros = ckpt_calloc(1, FS_ZERO_LEN);
        if (!c->zeros)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        fs_client_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

int fs_client_start(fs_client *c)
{
    int rc;

    if (c->net)
        return -EINVAL;
    rc = net_for(&c->opts, &c->net);
    if (rc < 0)
        return rc;
    rc = mclient_for(&c->opts, c->net, c, &c->mc);
    if (rc < 0)
        return rc;
    rc = fs_map_create(c->net, map_fetch, c->mc, 1000, &c->map);
    if (rc < 0)
        return rc;
    rc = fs_map_refresh(c->map);
    if (rc < 0)
        return rc;
    rc = fs_wq_create("fs-wr", c->opts.threads, FS_WRITEBACK_NICE, &c->wq);
    if (rc < 0)
        return rc;
    rc = fs_wq_create("fs-ra", c->opts.threads, 0, &c->rq);
    if (rc < 0)
        return rc;
    return flusher_start(c);
}

int fs_client_start_local(fs_client *c, ckpt_net *net, fs_map *map)
{
    int rc;

    if (c->net || !net || !map)
        return -EINVAL;
    c->net = net;
    c->map = map;
    c->borrowed = true;
    rc = fs_wq_create("fs-wr", c->opts.threads, FS_WRITEBACK_NICE, &c->wq);
    if (rc < 0)
        return rc;
    rc = fs_wq_create("fs-ra", c->opts.threads, 0, &c->rq);
    if (rc < 0)
        return rc;
    return flusher_start(c);
}

void fs_client_fh_track(fs_client *c, struct fs_fh *fh)
{
    pthread_mutex_lock(&c->lock);
    fh->tprev = NULL;
    fh->tnext = c->fh_head;
    if (c->fh_head)
        c->fh_head->tprev = fh;
    c->fh_head = fh;
    pthread_mutex_unlock(&c->lock);
}

void fs_client_fh_untrack(fs_client *c, struct fs_fh *fh)
{
    pthread_mutex_lock(&c->lock);
    if (fh->tprev)
        fh->tprev->tnext = fh->tnext;
    else if (c->fh_head == fh)
        c->fh_head = fh->tnext;
    if (fh->tnext)
        fh->tnext->tprev = fh->tprev;
    fh->tprev = fh->tnext = NULL;
    pthread_mutex_unlock(&c->lock);
}

void fs_client_destroy(fs_client *c)
{
    if (!c)
        return;
    if (!c->wq)
        goto stop; /* never started: no inode can exist */
    /* Handles whose RELEASE the kernel still had queued when the session
     * ended (SIGTERM just after a close()) or never sent (lazy unmount):
     * release them as the kernel would have, so their RELEASE, with the
     * size, goes out after the write-back below. */
    for (;;) {
        pthread_mutex_lock(&c->lock);
        struct fs_fh *fh = c->fh_head;
        pthread_mutex_unlock(&c->lock);
        if (!fh)
            break;
        fs_client_fh_untrack(c, fh);
        fs_release_deferred(fh);
        ckpt_free(fh);
    }
    flusher_stop(c); /* queues everything still held */
    /* Finish the write-back of every inode still known (bounded by the
     * chunk call timeouts), so the deferred RELEASEs go out. */
    for (;;) {
        fs_inode *victim = NULL;
        pthread_mutex_lock(&c->lock);
        for (int b = 0; b < FS_ITAB_BUCKETS && !victim; b++)
            for (fs_inode *i = c->itab[b]; i && !victim; i = i->hnext)
                if (i->nopen || i->fl_head) {
                    victim = i;
                    i->refs++;
                }
        pthread_mutex_unlock(&c->lock);
        if (!victim)
            break;
        int rc = fs_flush_wait(victim);
        if (rc < 0)
            CKPT_LOG_ERR("inode %llu: write-back failed at unmount: " CKPT_RC_FMT,
                         (unsigned long long)victim->ino, CKPT_RC_ARGS(rc));
        fs_inode_put(victim);
    }
    CKPT_LOG_INFO("write-back: %llu stripes written (%llu degraded, %llu failed, %llu "
                  "chunk resends, %llu read back to modify, %llu chunks adopted without a "
                  "copy); write-behind released %llu "
                  "idle, %llu full, %llu flushed; reads: %llu stripes loaded (%llu decoded), "
                  "%llu read-ahead hits (%llu waited for it, %llu ms in all), %llu loaded by read(), "
                  "%llu chunks read from same-host files (%llu "
                  "read through the node after all)",
                  (unsigned long long)c->st.stripes_written,
                  (unsigned long long)c->st.stripes_degraded,
                  (unsigned long long)c->st.stripes_failed,
                  (unsigned long long)c->st.chunk_retries, (unsigned long long)c->st.rmw_loads,
                  (unsigned long long)c->st.chunks_adopted,
                  (unsigned long long)c->st.held_idle, (unsigned long long)c->st.held_full,
                  (unsigned long long)c->st.held_flush,
                  (unsigned long long)c->st.stripes_loaded,
                  (unsigned long long)c->st.stripes_decoded, (unsigned long long)c->st.ra_hits,
                  (unsigned long long)c->st.ra_waits,
                  (unsigned long long)(c->st.ra_wait_us / 1000),
                  (unsigned long long)c->st.demand_loads,
                  (unsigned long long)c->st.chunks_local,
                  (unsigned long long)c->st.local_fallbacks);
    fs_wq_destroy(c->wq);   /* runs the queued RELEASE/DEGRADED reports */
    c->wq = NULL;
    fs_wq_destroy(c->rq);
    c->rq = NULL;
    /* A stripe completion that woke fs_flush_wait may still be freeing its
     * buffers and dropping its inode reference on a receive thread. */
    while (atomic_load(&c->completing) > 0) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Inodes still referenced now belong to handles the kernel never
     * released (a lazy unmount): free them. */
    for (int b = 0; b < FS_ITAB_BUCKETS; b++) {
        while (c->itab[b]) {
            fs_inode *i = c->itab[b];
            i->refs = 1;
            fs_inode_put(i);
        }
    }
stop:
    fs_wq_destroy(c->wq);
    fs_wq_destroy(c->rq);
    if (c->net) {
        size_t len[4];
        struct fs_freebuf *lists[4];
        struct fs_slab *slabs;
        pthread_mutex_lock(&c->lock);
        bufs_take_locked(c, len, lists, &slabs);
        pthread_mutex_unlock(&c->lock);
        bufs_free(c, len, lists, slabs);
        for (int b = 0; b < FS_SLAB_BUCKETS; b++)
            if (c->slabs[b])
                CKPT_LOG_ERR("buffer slab %p still in use at unmount", (void *)c->slabs[b]->base);
    }
    if (!c->borrowed) {
        fs_map_destroy(c->map);
        ckpt_mclient_destroy(c->mc);
        ckpt_net_destroy(c->net);
    }
    fs_pool_destroy(c->pool);
    for (int i = 0; i < FS_EC_CACHE; i++)
        ckpt_ec_destroy(c->ecs[i].ec);
    ckpt_free(c->zeros);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    ckpt_free(c);
}

int fs_client_ec(fs_client *c, uint8_t k, uint8_t m, ckpt_ec **out)
{
    int rc = 0, slot = -1;

    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < FS_EC_CACHE; i++) {
        if (c->ecs[i].ec && c->ecs[i].k == k && c->ecs[i].m == m) {
            *out = c->ecs[i].ec;
            pthread_mutex_unlock(&c->lock);
            return 0;
        }
        if (!c->ecs[i].ec && slot < 0)
            slot = i;
    }
    if (slot < 0) {
        rc = -ENOMEM; /* more than FS_EC_CACHE distinct codes in use */
    } else {
        rc = ckpt_ec_create(k, m, &c->ecs[slot].ec);
        if (rc == 0) {
            c->ecs[slot].k = k;
            c->ecs[slot].m = m;
            *out = c->ecs[slot].ec;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static unsigned itab_bucket(uint64_t ino)
{
    return (unsigned)((ino * 0x9E3779B97F4A7C15ull) >> 54) % FS_ITAB_BUCKETS;
}

fs_inode *fs_inode_find(fs_client *c, uint64_t ino)
{
    pthread_mutex_lock(&c->lock);
    fs_inode *i = c->itab[itab_bucket(ino)];
    while (i && i->ino != ino)
        i = i->hnext;
    if (i)
        i->refs++;
    pthread_mutex_unlock(&c->lock);
    return i;
}

/* An open of an inode this mount already has: when ckpt-meta's layout
 * is the same code and geometry but with other targets in some
 * slots (a rebuild, drain or rebalance moved them), use those from now on.
 * Stripes with write-back in flight keep going to the targets they were
 * started on (fs_write.c reads the target per chunk when it sends). */
static void fs_inode_adopt_layout(fs_inode *i, const struct ckpt_layout *l)
{
    if (!i->regular || l->k != i->k || l->m != i->m || l->width != i->w ||
        l->chunk_size != i->chunk)
        return;
    pthread_mutex_lock(&i->lock);
    const uint32_t *cur = atomic_load_explicit(&i->tgt, memory_order_relaxed);
    bool same = true;
    for (uint32_t s = 0; s < i->w; s++)
        same &= cur[s] == l->targets[s] && l->targets[s] != 0;
    if (!same) {
        struct fs_tgts *t = ckpt_malloc(sizeof(*t));
        bool ok = t != NULL;
        for (uint32_t s = 0; s < i->w; s++)
            ok &= l->targets[s] != 0;
        if (ok) {
            memcpy(t->t, l->targets, i->w * sizeof(t->t[0]));
            t->next = i->old_tgts;
            i->old_tgts = t;
            atomic_store_explicit(&i->tgt, t->t, memory_order_release);
            CKPT_LOG_INFO("inode %llu: layout targets changed by ckpt-meta; reading and "
                          "writing the new ones", (unsigned long long)i->ino);
        } else {
            ckpt_free(t);
        }
    }
    pthread_mutex_unlock(&i->lock);
}

int fs_inode_get(fs_client *c, const struct ckpt_attr *attr,
                 const struct ckpt_layout *layout, fs_inode **out)
{
    const char *why = NULL;
    ckpt_ec *ec = NULL;
    fs_inode *i;
    int rc;

    i = fs_inode_find(c, attr->ino);
    if (i) {
        fs_inode_update_attr(i, attr);
        fs_inode_adopt_layout(i, layout);
        *out = i;
        return 0;
    }
    if (!S_ISREG(attr->mode) || ckpt_layout_check(layout, &why) < 0 || !layout->width ||
        layout->k + layout->m > FS_MAX_CHUNKS) {
        CKPT_LOG_ERR("inode %llu: unusable layout from ckpt-meta (%s)",
                     (unsigned long long)attr->ino, why ? why : "not a regular file");
        return -EIO;
    }
    rc = fs_client_ec(c, layout->k, layout->m, &ec);
    if (rc < 0)
        return rc;
    i = ckpt_calloc(1, sizeof(*i));
    if (!i)
        return -ENOMEM;
    i->c = c;
    i->ino = attr->ino;
    i->refs = 1;
    i->layout = *layout;
    atomic_init(&i->tgt, i->layout.targets);
    i->ec = ec;
    i->k = layout->k;
    i->m = layout->m;
    i->w = layout->width;
    i->chunk = layout->chunk_size;
    i->sbytes = (uint64_t)layout->k * layout->chunk_size;
    i->regular = true;
    i->gen = attr->data_gen;
    i->size = attr->size;
    i->disk_size = attr->size;
    i->seq_ok = attr->size == 0;
    i->incomplete = (attr->flags & CKPT_ATTR_F_INCOMPLETE) != 0;
    i->mtime_sec = attr->mtime_sec;
    i->mtime_nsec = attr->mtime_nsec;
    pthread_mutex_init(&i->lock, NULL);
    pthread_cond_init(&i->cond, NULL);

    /* Someone may have inserted it meanwhile: theirs wins. */
    pthread_mutex_lock(&c->lock);
    unsigned b = itab_bucket(attr->ino);
    fs_inode *other = c->itab[b];
    while (other && other->ino != attr->ino)
        other = other->hnext;
    if (other) {
        other->refs++;
        pthread_mutex_unlock(&c->lock);
        pthread_cond_destroy(&i->cond);
        pthread_mutex_destroy(&i->lock);
        ckpt_free(i);
        fs_inode_update_attr(other, attr);
        *out = other;
        return 0;
    }
    i->hnext = c->itab[b];
    c->itab[b] = i;
    c->ninodes++;
    pthread_mutex_unlock(&c->lock);
    *out = i;
    return 0;
}

void fs_inode_ref(fs_inode *ino)
{
    pthread_mutex_lock(&ino->c->lock);
    ino->refs++;
    pthread_mutex_unlock(&ino->c->lock);
}

void fs_inode_put(fs_inode *ino)
{
    fs_client *c;
    struct fs_rc *dropped = NULL;

    if (!ino)
        return;
    c = ino->c;
    pthread_mutex_lock(&c->lock);
    if (--ino->refs > 0) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    fs_inode **pp = &c->itab[itab_bucket(ino->ino)];
    while (*pp && *pp != ino)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = ino->hnext;
    c->ninodes--;
    pthread_mutex_unlock(&c->lock);

    pthread_mutex_lock(&ino->lock);
    if (ino->nopen || ino->fl_head)
        CKPT_LOG_ERR("inode %llu freed with write-back pending",
                     (unsigned long long)ino->ino);
    fs_rc_drop_locked(ino, 0, true, &dropped);
    pthread_mutex_unlock(&ino->lock);
    fs_rc_free_list(c, dropped);
    ckpt_free(ino->scrc);
    ckpt_free(ino->deg);
    while (ino->old_tgts) {
        struct fs_tgts *t = ino->old_tgts;
        ino->old_tgts = t->next;
        ckpt_free(t);
    }
    pthread_cond_destroy(&ino->cond);
    pthread_mutex_destroy(&ino->lock);
    ckpt_free(ino);
}

void fs_inode_update_attr(fs_inode *ino, const struct ckpt_attr *attr)
{
    struct fs_rc *dropped = NULL;

    pthread_mutex_lock(&ino->lock);
    if (attr->data_gen > ino->gen) {
        /* Someone else changed the data (a truncate elsewhere): what we
         * cached is stale, and new writes must carry the new generation. */
        ino->gen = attr->data_gen;
        fs_rc_drop_locked(ino, 0, true, &dropped);
    }
    if (!ino->local_size) {
        if (attr->size != ino->size)
            fs_rc_drop_locked(ino, 0, true, &dropped);
        ino->size = attr->size;
        ino->mtime_sec = attr->mtime_sec;
        ino->mtime_nsec = attr->mtime_nsec;
    }
    if (attr->size > ino->disk_size)
        ino->disk_size = attr->size;
    ino->incomplete = (attr->flags & CKPT_ATTR_F_INCOMPLETE) != 0;
    pthread_mutex_unlock(&ino->lock);
    fs_rc_free_list(ino->c, dropped);
}

bool fs_client_slot_try(fs_client *c, struct fs_sv *sv)
{
    bool got;

    pthread_mutex_lock(&c->lock);
    got = c->nflight < c->max_flight;
    if (got) {
        c->nflight++;
        sv->holds_slot = true;
    } else {
        sv->slot_next = NULL;
        if (c->slot_tail)
            c->slot_tail->slot_next = sv;
        else
            c->slot_head = sv;
        c->slot_tail = sv;
    }
    pthread_mutex_unlock(&c->lock);
    return got;
}

void fs_client_slot_put(fs_client *c)
{
    pthread_mutex_lock(&c->lock);
    struct fs_sv *next = c->slot_head;
    if (next) {
        /* Hand the slot over: nflight stays the same. */
        c->slot_head = next->slot_next;
        if (!c->slot_head)
            c->slot_tail = NULL;
        next->slot_next = NULL;
        next->holds_slot = true;
        fs_wq_push(c->wq, &next->job);
    } else {
        c->nflight--;
    }
    pthread_mutex_unlock(&c->lock);
}

/* ---- recycled data buffers ------------------------------------------------- */

static bool slab_size(size_t len)
{
    return len >= (256u << 10) && len < FS_SLAB_BYTES && FS_SLAB_BYTES % len == 0;
}

static unsigned slab_bucket(const uint8_t *base)
{
    return (unsigned)(((uintptr_t)base / FS_SLAB_BYTES) % FS_SLAB_BUCKETS);
}

static struct fs_slab *slab_find_locked(fs_client *c, const void *piece)
{
    uint8_t *base = (uint8_t *)((uintptr_t)piece & ~(uintptr_t)(FS_SLAB_BYTES - 1));
    struct fs_slab *s = c->slabs[slab_bucket(base)];
    while (s && s->base != base)
        s = s->hnext;
    return s;
}

static void avail_insert_locked(fs_client *c, struct fs_slab *s)
{
    s->aprev = NULL;
    s->anext = c->slab_avail;
    if (c->slab_avail)
        c->slab_avail->aprev = s;
    c->slab_avail = s;
}

static void avail_remove_locked(fs_client *c, struct fs_slab *s)
{
    if (s->aprev)
        s->aprev->anext = s->anext;
    else
        c->slab_avail = s->anext;
    if (s->anext)
        s->anext->aprev = s->aprev;
    s->anext = s->aprev = NULL;
}

/* Unlink a slab (all pieces free) from both lists.  Caller holds c->lock. */
static void slab_unlink_locked(fs_client *c, struct fs_slab *s)
{
    struct fs_slab **pp = &c->slabs[slab_bucket(s->base)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    avail_remove_locked(c, s);
    c->buf_cached -= (uint64_t)s->n * s->piece;
}

static void slab_free(fs_client *c, struct fs_slab *s)
{
    ckpt_net_buf_free(c->net, s->base, FS_SLAB_BYTES);
    ckpt_free(s);
}

/* A piece of a slab: a free one, or the first of a new slab.  NULL: the
 * net's buffers cannot be slabs (c->slab_off), or no memory. */
static void *slab_get(fs_client *c, size_t len, bool *nomem)
{
    pthread_mutex_lock(&c->lock);
    for (struct fs_slab *s = c->slab_avail; s; s = s->anext) {
        if (s->piece != len)
            continue;
        unsigned i = (unsigned)__builtin_ctz(s->freemask);
        s->freemask &= ~(1u << i);
        if (!s->freemask)
            avail_remove_locked(c, s);
        c->buf_cached -= len;
        pthread_mutex_unlock(&c->lock);
        return s->base + (size_t)i * len;
    }
    bool off = c->slab_off;
    pthread_mutex_unlock(&c->lock);
    if (off)
        return NULL;
    uint8_t *p = ckpt_net_buf_alloc(c->net, FS_SLAB_BYTES);
    struct fs_slab *s = p ? ckpt_calloc(1, sizeof(*s)) : NULL;
    if (!s) {
        ckpt_net_buf_free(c->net, p, FS_SLAB_BYTES);
        *nomem = true;
        return NULL;
    }
    if ((uintptr_t)p % FS_SLAB_BYTES) {
        /* (RDMA registers page-aligned buffers): no huge pages to win. */
        ckpt_net_buf_free(c->net, p, FS_SLAB_BYTES);
        ckpt_free(s);
        pthread_mutex_lock(&c->lock);
        c->slab_off = true;
        pthread_mutex_unlock(&c->lock);
        return NULL;
    }
    (void)madvise(p, FS_SLAB_BYTES, MADV_HUGEPAGE); /* advice only */
    s->base = p;
    s->piece = (uint32_t)len;
    s->n = (uint32_t)(FS_SLAB_BYTES / len);
    s->freemask = ((1u << s->n) - 1) & ~1u;
    pthread_mutex_lock(&c->lock);
    unsigned b = slab_bucket(p);
    s->hnext = c->slabs[b];
    c->slabs[b] = s;
    avail_insert_locked(c, s);
    c->buf_cached += (uint64_t)(s->n - 1) * len;
    pthread_mutex_unlock(&c->lock);
    return p;
}

void *fs_client_buf_get(fs_client *c, size_t len)
{
    struct fs_freebuf *b = NULL;

    if (slab_size(len)) {
        bool nomem = false;
        void *p = slab_get(c, len, &nomem);
        if (p || nomem)
            return p;
    }
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < 4; i++) {
        if (c->buf_len[i] == len && c->bufs[i]) {
            b = c->bufs[i];
            c->bufs[i] = b->next;
            c->buf_cached -= len;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (b)
        return b;
    void *p = ckpt_net_buf_alloc(c->net, len);
    if (p)
        (void)madvise(p, len, MADV_HUGEPAGE); /* advice only */
    return p;
}

void fs_client_buf_put(fs_client *c, void *buf, size_t len)
{
    struct fs_pool_stats ps;

    if (!buf)
        return;
    fs_pool_get_stats(c->pool, &ps);
    pthread_mutex_lock(&c->lock);
    struct fs_slab *s = slab_size(len) ? slab_find_locked(c, buf) : NULL;
    if (s) {
        /* Back to its slab; a wholly free slab goes when the cache is
         * over the pool's limit, like a whole buffer. */
        unsigned i = (unsigned)(((uint8_t *)buf - s->base) / s->piece);
        if (!s->freemask)
            avail_insert_locked(c, s);
        s->freemask |= 1u << i;
        c->buf_cached += len;
        bool drop = s->freemask == (1u << s->n) - 1 && ps.in_use + c->buf_cached > ps.limit;
        if (drop)
            slab_unlink_locked(c, s);
        pthread_mutex_unlock(&c->lock);
        if (drop)
            slab_free(c, s);
        return;
    }
    int slot = -1;
    for (int i = 0; i < 4 && slot < 0; i++)
        if (c->buf_len[i] == len || (!c->bufs[i] && !c->buf_len[i]))
            slot = i;
    if (slot >= 0 && ps.in_use + c->buf_cached + len <= ps.limit) {
        struct fs_freebuf *b = buf;
        c->buf_len[slot] = len;
        b->next = c->bufs[slot];
        c->bufs[slot] = b;
        c->buf_cached += len;
        buf = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (buf)
        ckpt_net_buf_free(c->net, buf, len);
}

/* Give every recycled buffer back (idle mount, shutdown): the whole ones,
 * and the slabs of which no piece is in use.  Caller holds c->lock; the
 * memory is returned after it is dropped (bufs_free). */
static void bufs_take_locked(fs_client *c, size_t out_len[4], struct fs_freebuf *out[4],
                             struct fs_slab **out_slabs)
{
    for (int i = 0; i < 4; i++) {
        out[i] = c->bufs[i];
        out_len[i] = c->buf_len[i];
        c->bufs[i] = NULL;
        c->buf_len[i] = 0;
    }
    *out_slabs = NULL;
    struct fs_slab *s = c->slab_avail;
    while (s) {
        struct fs_slab *next = s->anext;
        if (s->freemask == (1u << s->n) - 1) {
            slab_unlink_locked(c, s);
            s->anext = *out_slabs;
            *out_slabs = s;
        }
        s = next;
    }
    /* What is left cached: free pieces of slabs still in use. */
    c->buf_cached = 0;
    for (s = c->slab_avail; s; s = s->anext)
        c->buf_cached += (uint64_t)__builtin_popcount(s->freemask) * s->piece;
}

static void bufs_free(fs_client *c, size_t len[4], struct fs_freebuf *lists[4],
                      struct fs_slab *slabs)
{
    for (int i = 0; i < 4; i++) {
        while (lists[i]) {
            struct fs_freebuf *b = lists[i];
            lists[i] = b->next;
            ckpt_net_buf_free(c->net, b, len[i]);
        }
    }
    while (slabs) {
        struct fs_slab *s = slabs;
        slabs = s->anext;
        slab_free(c, s);
    }
}

/* ---- write-behind ----------------------------------------------------------- */

static void held_unlink_locked(fs_client *c, struct fs_sv *sv)
{
    if (sv->hold_prev)
        sv->hold_prev->hold_next = sv->hold_next;
    else
        c->held_head = sv->hold_next;
    if (sv->hold_next)
        sv->hold_next->hold_prev = sv->hold_prev;
    else
        c->held_tail = sv->hold_prev;
    sv->hold_next = sv->hold_prev = NULL;
    sv->held = false;
    c->held_bytes -= sv->pool_bytes;
}

void fs_client_hold_locked(fs_client *c, struct fs_sv *sv)
{
    pthread_mutex_lock(&c->lock);
    sv->held = true;
    sv->hold_next = NULL;
    sv->hold_prev = c->held_tail;
    if (c->held_tail)
        c->held_tail->hold_next = sv;
    else
        c->held_head = sv;
    c->held_tail = sv;
    c->held_bytes += sv->pool_bytes;
    bool over = c->held_bytes > c->held_limit;
    pthread_mutex_unlock(&c->lock);
    if (over)
        pthread_cond_broadcast(&c->cond); /* the flusher releases the oldest */
}

void fs_client_unhold_inode_locked(fs_client *c, fs_inode *ino)
{
    pthread_mutex_lock(&c->lock);
    struct fs_sv *sv = c->held_head;
    while (sv) {
        struct fs_sv *next = sv->hold_next;
        if (sv->ino == ino) {
            held_unlink_locked(c, sv);
            atomic_fetch_add(&c->st.held_flush, 1);
            fs_wq_push(c->wq, &sv->job);
        }
        sv = next;
    }
    pthread_mutex_unlock(&c->lock);
}

void fs_client_unhold_closed(fs_client *c)
{
    pthread_mutex_lock(&c->lock);
    struct fs_sv *sv = c->held_head;
    while (sv) {
        struct fs_sv *next = sv->hold_next;
        uint64_t closed = atomic_load(&sv->ino->closed_ns);
        if (closed && closed >= atomic_load(&sv->ino->last_write_ns)) {
            held_unlink_locked(c, sv);
            atomic_fetch_add(&c->st.held_flush, 1);
            fs_wq_push(c->wq, &sv->job);
        }
        sv = next;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Release held versions: all when `all`, else those over the limit and
 * those whose writer has paused.  Caller holds c->lock. */
static void held_release_locked(fs_client *c, bool all)
{
    uint64_t now = ckpt_now_ns();
    struct fs_sv *sv = c->held_head;
    while (sv) {
        struct fs_sv *next = sv->hold_next;
        uint64_t last = atomic_load(&sv->ino->last_write_ns);
        uint64_t closed = atomic_load(&sv->ino->closed_ns);
        /* (last may be newer than now: a write raced the clock read) */
        bool full = c->held_bytes > c->held_limit;
        bool idle = last + FS_HOLD_IDLE_MS * 1000000ull <= now;
        if (closed >= last && closed)
            /* Closed since its last write: wait for the mount's other
             * writers to close or pause as well, within a bound
             * (fs_write.c). */
            idle = atomic_load(&c->writers_open) <= 0 ||
                   atomic_load(&c->last_activity_ns) + FS_HOLD_IDLE_MS * 1000000ull <= now ||
                   closed + FS_HOLD_CLOSED_MS * 1000000ull <= now;
        if (all || full || idle) {
            held_unlink_locked(c, sv);
            atomic_fetch_add(all    ? &c->st.held_flush
                             : full ? &c->st.held_full
                                    : &c->st.held_idle,
                             1);
            fs_wq_push(c->wq, &sv->job);
        }
        sv = next;
    }
}

/* Thread: the write-behind flusher (see fs_write.c DESIGN). */
static void *flusher_main(void *arg)
{
    fs_client *c = arg;

    pthread_mutex_lock(&c->lock);
    while (!c->flusher_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
        held_release_locked(c, c->flusher_stop);
        if (c->buf_cached &&
            atomic_load(&c->last_activity_ns) + c->opts.buffer_keep_ms * 1000000ull < ckpt_now_ns()) {
            /* An idle mount does not keep write-back memory around. */
            size_t len[4];
            struct fs_freebuf *lists[4];
            struct fs_slab *slabs;
            bufs_take_locked(c, len, lists, &slabs);
            pthread_mutex_unlock(&c->lock);
            bufs_free(c, len, lists, slabs);
            pthread_mutex_lock(&c->lock);
        }
    }
    held_release_locked(c, true);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static int flusher_start(fs_client *c)
{
    int rc = -pthread_create(&c->flusher, NULL, flusher_main, c);
    if (rc == 0) {
        c->flusher_started = true;
        (void)pthread_setname_np(c->flusher, "fs-flush");
    }
    return rc;
}

static void flusher_stop(fs_client *c)
{
    if (!c->flusher_started)
        return;
    pthread_mutex_lock(&c->lock);
    c->flusher_stop = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->flusher, NULL);
    c->flusher_started = false;
}

void fs_batch_init(struct fs_batch *b)
{
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->pending = 0;
}

static void batch_done(struct ckpt_call *call)
{
    struct fs_bcall *bc = (struct fs_bcall *)call; /* call is the first member */
    struct fs_batch *b = call->ctx;

    bc->status = call->status;
    if (bc->verify)
        bc->verify(bc);
    pthread_mutex_lock(&b->lock);
    if (--b->pending == 0)
        pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

int fs_batch_submit(struct fs_batch *b, ckpt_peer *peer, struct fs_bcall *bc)
{
    bc->call.done = batch_done;
    bc->call.ctx = b;
    bc->status = 0;
    pthread_mutex_lock(&b->lock);
    b->pending++;
    pthread_mutex_unlock(&b->lock);
    int rc = ckpt_peer_submit(peer, &bc->call);
    if (rc < 0) {
        bc->status = rc;
        pthread_mutex_lock(&b->lock);
        b->pending--;
        pthread_mutex_unlock(&b->lock);
    }
    return rc;
}

void fs_batch_wait(struct fs_batch *b)
{
    pthread_mutex_lock(&b->lock);
    while (b->pending > 0)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
}

void fs_client_pressure(fs_client *c)
{
    fs_inode *busy[64];
    int n = 0;

    pthread_mutex_lock(&c->lock);
    held_release_locked(c, true);
    for (int b = 0; b < FS_ITAB_BUCKETS && n < 64; b++)
        for (fs_inode *i = c->itab[b]; i && n < 64; i = i->hnext)
            if (i->nopen) {
                i->refs++;
                busy[n++] = i;
            }
    pthread_mutex_unlock(&c->lock);
    for (int j = 0; j < n; j++) {
        fs_flush_idle(busy[j]);
        fs_inode_put(busy[j]);
    }
}

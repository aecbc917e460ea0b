/*
 * meta_server.c - the ckpt-meta server object: RPC dispatch, the
 * group-commit writer and the monitor (see meta_server.h).
 *
 * DESIGN
 *
 *   Threads.
 *   - receive threads (net.c, one per connection) call srv_handle() for
 *     every request.  Reads (lookup, getattr, readdir, xattrs, statfs...)
 *     run right there in a read-only LMDB transaction, concurrently with
 *     each other and with the writer (LMDB snapshots).  Heartbeats, lease
 *     renewals and cluster-map requests touch memory only and are answered
 *     there too.  Everything that writes is decoded into a struct meta_wop
 *     and queued for the writer.
 *   - writer (writer_main): takes up to META_BATCH_MAX queued wops at a
 *     time and runs them in ONE top-level write transaction, each in its
 *     own nested child transaction (run_batch).  A child whose apply fails
 *     is aborted, never committed (LMDB marks the parent of a failed child
 *     commit broken), so the batch holds exactly the successful ops.  One
 *     commit = one fsync for the whole batch: under load, throughput grows
 *     with the queue instead of being bound by the disk's fsync rate.  Only
 *     after the commit returns are the replies sent, so an answer always
 *     means durable.  If the batch commit (or a child commit) fails, the
 *     batch is aborted, the in-memory session changes of its ops are rolled
 *     back (meta_sess_undo_*), and each op is run again alone so that one
 *     bad op cannot fail its neighbours.  An op that makes the transaction
 *     too big (-ENOBUFS) ends the batch early; it and the ops after it go
 *     back to the front of the queue.
 *   - monitor (monitor_main): every few tens of milliseconds marks silent
 *     nodes DOWN/OUT (meta_cluster_tick) and expires sessions whose lease
 *     ran out (meta_sess_tick, which queues their release to the writer);
 *     once a second it queues rebuild/repair planning to the writer and
 *     logs rebuild progress (meta_rebuild_tick, meta_rebuild.c).
 *   - deletion worker (meta_delq.c): sends CHUNK_DELETE to nodes.
 *
 *   Write ordering.  The writer applies wops in queue order, and an op's
 *   reply is sent only after its batch committed, so a client that got an
 *   answer and then sends a read sees the change (the read transaction
 *   begins after the commit).
 *
 *   Known limits.  Replies are sent by the writer thread; a client whose
 *   socket buffer is full stalls the writer for up to the connection's
 *   io_timeout.  There is no permission checking: the FUSE client mounts
 *   with default_permissions and the kernel checks access.
 */
#include "meta_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"

/* How long a lone RELEASE waits for other ops to share its commit. */
#define META_LINGER_US 200L

/* ---- dispatch table ----------------------------------------------------- */

static const struct meta_op_desc dispatch[] = {
#define META_DISPATCH_ENTRY(name, ...) {CKPT_OP_##name, __VA_ARGS__},
    META_DISPATCH(META_DISPATCH_ENTRY)
#undef META_DISPATCH_ENTRY
};

static const struct meta_op_desc *op_find(uint16_t opcode)
{
    for (size_t i = 0; i < sizeof(dispatch) / sizeof(dispatch[0]); i++)
        if (dispatch[i].opcode == opcode)
            return &dispatch[i];
    return NULL;
}

/* ---- small shared helpers ------------------------------------------------- */

struct timespec meta_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

void meta_attr_to_wire(const struct meta_attr *a, struct ckpt_attr *out)
{
    memset(out, 0, sizeof(*out));
    out->ino = a->ino;
    out->size = a->size;
    out->generation = a->generation;
    out->data_gen = a->data_gen;
    out->mode = a->mode;
    out->uid = a->uid;
    out->gid = a->gid;
    out->nlink = a->nlink;
    out->rdev = (uint32_t)a->rdev;
    out->flags = (a->flags & META_INODE_F_INCOMPLETE) ? CKPT_ATTR_F_INCOMPLETE : 0;
    out->atime_sec = a->atime.tv_sec;
    out->mtime_sec = a->mtime.tv_sec;
    out->ctime_sec = a->ctime.tv_sec;
    out->atime_nsec = (uint32_t)a->atime.tv_nsec;
    out->mtime_nsec = (uint32_t)a->mtime.tv_nsec;
    out->ctime_nsec = (uint32_t)a->ctime.tv_nsec;
}

int meta_reply_attr(struct ckpt_wbuf *reply, const struct meta_attr *a)
{
    struct ckpt_msg_attr_resp r;
    meta_attr_to_wire(a, &r.attr);
    return ckpt_msg_attr_resp_encode(reply, &r);
}

bool meta_log_ratelimit(struct meta_server *srv)
{
    uint64_t now = ckpt_now_ns();
    bool ok = false;
    pthread_mutex_lock(&srv->log_lock);
    if (now - srv->last_enospc_log_ns >= 1000000000ull || srv->last_enospc_log_ns == 0) {
        srv->last_enospc_log_ns = now;
        ok = true;
    }
    pthread_mutex_unlock(&srv->log_lock);
    return ok;
}

void meta_server_opts_from_config(const struct ckpt_config *cfg, struct meta_server_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    snprintf(opts->listen_host, sizeof(opts->listen_host), "%s", cfg->meta.listen.host);
    opts->listen_port = cfg->meta.listen.port;
    snprintf(opts->data_dir, sizeof(opts->data_dir), "%s", cfg->meta.data_dir);
    snprintf(opts->cluster_name, sizeof(opts->cluster_name), "%s", cfg->cluster.name);
    opts->down_after_ms = cfg->meta.down_after_ms;
    opts->out_after_ms = cfg->meta.out_after_ms;
    opts->layout = cfg->layout.def;
    memset(opts->layout.targets, 0, sizeof(opts->layout.targets));
    opts->transport = (enum ckpt_transport_kind)cfg->cluster.transport;
}

/* ---- wops ---------------------------------------------------------------------- */

struct meta_wop *meta_wop_new(const struct meta_wop_type *type, struct ckpt_req *req)
{
    /* The message lives right after the struct, 16-byte aligned. */
    size_t head = (sizeof(struct meta_wop) + 15u) & ~(size_t)15u;
    struct meta_wop *w = ckpt_calloc(1, head + type->msg_size + 1);
    if (!w)
        return NULL;
    w->type = type;
    w->req = req;
    w->msg = (uint8_t *)w + head;
    ckpt_wbuf_init(&w->reply, w->reply_buf, sizeof(w->reply_buf));
    return w;
}

void meta_wop_free(struct meta_wop *w)
{
    if (!w)
        return;
    if (w->type->fini)
        w->type->fini(w);
    ckpt_wbuf_free(&w->reply);
    if (w->req)
        ckpt_req_free(w->req);
    ckpt_free(w);
}

void meta_wop_submit(struct meta_server *srv, struct meta_wop *w, bool front)
{
    pthread_mutex_lock(&srv->wq_lock);
    if (front) {
        w->next = srv->wq_head;
        srv->wq_head = w;
        if (!srv->wq_tail)
            srv->wq_tail = w;
    } else {
        w->next = NULL;
        if (srv->wq_tail)
            srv->wq_tail->next = w;
        else
            srv->wq_head = w;
        srv->wq_tail = w;
    }
    pthread_cond_signal(&srv->wq_cond);
    pthread_mutex_unlock(&srv->wq_lock);
}

/* Reset what an earlier attempt of w left behind (a retried or woken op). */
static void wop_reset(struct meta_wop *w)
{
    w->status = 0;
    w->park = false;
    w->wake = false;
    w->kick_delq = false;
    w->reply.len = 0;
    w->reply.err = 0;
}

/* After the batch of w committed (or failed with w->status): run its
 * post-commit step, then park it or answer it and free it. */
static void wop_finish(struct meta_server *srv, struct meta_wop *w)
{
    if (w->status == 0 && !w->park && w->type->done)
        w->type->done(srv, w);
    if (w->status == 0 && w->kick_delq)
        meta_delq_kick(srv);
    if (w->status == 0 && w->park) {
        meta_sess_park(srv, w);
        return;
    }
    if (w->req) {
        int status = w->status;
        if (status == 0 && w->reply.err)
            status = w->reply.err;
        int rc = ckpt_req_reply(w->req, status, status ? NULL : w->reply.p,
                                status ? 0 : (uint32_t)w->reply.len, NULL, 0);
        w->req = NULL;
        if (rc < 0 && status == 0 && w->type->lost)
            w->type->lost(srv, w);
    }
    meta_wop_free(w);
}

/*
 * Run ops[0..n) in one write transaction (see DESIGN).  Every op ends up
 * answered, parked, or back in the queue.
 */
static void run_batch(struct meta_server *srv, struct meta_wop **ops, size_t n)
{
    MDB_txn *batch = NULL;
    size_t cut = n, mark0;
    int brc = meta_store_txn_begin(srv->st, NULL, false, &batch);
    bool wake = false;

    if (brc < 0) {
        CKPT_LOG_ERR("cannot begin a write transaction: " CKPT_RC_FMT, CKPT_RC_ARGS(brc));
        for (size_t i = 0; i < n; i++) {
            ops[i]->status = brc;
            wop_finish(srv, ops[i]);
        }
        return;
    }
    meta_sess_undo_mark(srv, &mark0);
    for (size_t i = 0; i < n; i++) {
        struct meta_wop *w = ops[i];
        MDB_txn *child = NULL;
        size_t mark;
        int rc = meta_store_txn_begin(srv->st, batch, false, &child);
        if (rc < 0) {
            brc = rc;
            break;
        }
        meta_sess_undo_mark(srv, &mark);
        wop_reset(w);
        rc = w->type->apply(srv, child, w);
        if (rc == -ENOBUFS && i > 0) {
            /* The batch is full: commit what we have, retry w next. */
            meta_store_txn_abort(child);
            meta_sess_undo_rollback(srv, mark);
            cut = i;
            break;
        }
        if (rc < 0 || w->park) {
            meta_store_txn_abort(child);
            meta_sess_undo_rollback(srv, mark);
            w->status = rc;
            if (rc < 0)
                w->park = false;
            continue;
        }
        rc = meta_store_txn_commit(child);
        if (rc < 0) {
            brc = rc; /* the parent is broken now */
            break;
        }
    }
    /* Tests make a commit fail here as an fsync error would. */
    if (brc == 0 && ckpt_fault_hit(CKPT_FAULT_FSYNC))
        brc = -EIO;
    if (brc == 0)
        brc = meta_store_txn_commit(batch);
    else
        meta_store_txn_abort(batch);
    if (brc < 0) {
        atomic_fetch_add(&srv->n_failed_batches, 1);
        meta_sess_undo_rollback(srv, mark0);
        if (n > 1) {
            CKPT_LOG_WARN("a batch of %zu operations failed to commit (" CKPT_RC_FMT
                          "): running them one by one", n, CKPT_RC_ARGS(brc));
            for (size_t i = 0; i < n; i++)
                run_batch(srv, &ops[i], 1);
        } else {
            CKPT_LOG_ERR("%s failed to commit: " CKPT_RC_FMT, ops[0]->type->name,
                         CKPT_RC_ARGS(brc));
            ops[0]->status = brc;
            ops[0]->park = false;
            wop_finish(srv, ops[0]);
        }
        return;
    }
    meta_sess_undo_clear(srv);
    atomic_fetch_add(&srv->n_batches, 1);
    atomic_fetch_add(&srv->n_write_ops, cut);
    if (cut > atomic_load(&srv->max_batch))
        atomic_store(&srv->max_batch, cut);
    /* Requeue the ops that did not fit, in order, before finishing the
     * others (a finish may put woken waiters at the front too). */
    for (size_t i = n; i > cut; i--)
        meta_wop_submit(srv, ops[i - 1], true);
    for (size_t i = 0; i < cut; i++) {
        wake |= ops[i]->status == 0 && ops[i]->wake;
        wop_finish(srv, ops[i]);
    }
    if (wake)
        meta_sess_wake(srv);
}

static void *writer_main(void *arg)
{
    struct meta_server *srv = arg;
    struct meta_wop **ops = ckpt_calloc(META_BATCH_MAX, sizeof(*ops));

    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&srv->wq_lock);
        while (!srv->wq_head && !srv->wq_stop)
            pthread_cond_wait(&srv->wq_cond, &srv->wq_lock);
        if (!srv->wq_head) {
            pthread_mutex_unlock(&srv->wq_lock);
            break;
        }
        /* A lone RELEASE (nobody waits for it: clients send it in the
         * background after close) lingers up to META_LINGER_US for company:
         * the same client's next CREATE usually follows within tens of
         * microseconds, and then both share one LMDB commit. */
        if (srv->wq_head == srv->wq_tail && srv->wq_head->type == &meta_wop_release &&
            !srv->wq_stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += META_LINGER_US * 1000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (srv->wq_head == srv->wq_tail && !srv->wq_stop &&
                   pthread_cond_timedwait(&srv->wq_cond, &srv->wq_lock, &ts) == 0)
                ;
        }
        size_t cap = ops ? META_BATCH_MAX : 1;
        struct meta_wop *one = NULL;
        while (srv->wq_head && n < cap) {
            struct meta_wop *w = srv->wq_head;
            srv->wq_head = w->next;
            if (!srv->wq_head)
                srv->wq_tail = NULL;
            w->next = NULL;
            if (ops)
                ops[n] = w;
            else
                one = w;
            n++;
        }
        pthread_mutex_unlock(&srv->wq_lock);
        /* Without the array (out of memory at start) batches are of one. */
        run_batch(srv, ops ? ops : &one, n);
    }
    ckpt_free(ops);
    return NULL;
}

/* ---- monitor -------------------------------------------------------------------- */

static void *monitor_main(void *arg)
{
    struct meta_server *srv = arg;
    uint64_t tick_ms = srv->opts.down_after_ms < srv->opts.lease_ms ? srv->opts.down_after_ms
                                                                     : srv->opts.lease_ms;
    tick_ms /= 8;
    if (tick_ms < 10)
        tick_ms = 10;
    if (tick_ms > 200)
        tick_ms = 200;

    pthread_mutex_lock(&srv->mon_lock);
    while (!srv->mon_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(tick_ms * 1000000ull);
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->mon_cond, &srv->mon_lock, &ts);
        if (srv->mon_stop)
            break;
        pthread_mutex_unlock(&srv->mon_lock);
        uint64_t now = ckpt_now_ns();
        meta_cluster_tick(srv, now);
        meta_sess_tick(srv, now);
        meta_rebuild_tick(srv, now);
        pthread_mutex_lock(&srv->mon_lock);
    }
    pthread_mutex_unlock(&srv->mon_lock);
    return NULL;
}

/* ---- requests ----------------------------------------------------------------------- */

/* A request that does not decode: answer it, log, and close the
 * connection (DESIGN.md: a malformed message closes that connection). */
void meta_req_malformed(struct ckpt_req *req, int rc)
{
    ckpt_conn *conn = req->conn;
    const char *op = ckpt_op_name(req->hdr.opcode);
    CKPT_LOG_WARN("malformed %s request from %s (%s): " CKPT_RC_FMT ", closing",
                  op ? op : "?", ckpt_conn_peer(conn), ckpt_conn_peer_name(conn),
                  CKPT_RC_ARGS(rc));
    ckpt_conn_get(conn);
    (void)ckpt_req_reply(req, CKPT_E_PROTO, NULL, 0, NULL, 0);
    ckpt_conn_close(conn);
}

/* A read transaction: a pooled one renewed, or a new one. */
static int rtxn_get(struct meta_server *srv, MDB_txn **out)
{
    MDB_txn *txn = NULL;
    pthread_mutex_lock(&srv->rtx_lock);
    if (srv->rtx_n > 0)
        txn = srv->rtx_pool[--srv->rtx_n];
    pthread_mutex_unlock(&srv->rtx_lock);
    if (txn) {
        if (meta_store_txn_renew(txn) == 0) {
            *out = txn;
            return 0;
        }
        meta_store_txn_abort(txn);
    }
    return meta_store_txn_begin(srv->st, NULL, true, out);
}

static void rtxn_put(struct meta_server *srv, MDB_txn *txn)
{
    meta_store_txn_reset(txn);
    pthread_mutex_lock(&srv->rtx_lock);
    if (srv->rtx_n < (int)(sizeof(srv->rtx_pool) / sizeof(srv->rtx_pool[0]))) {
        srv->rtx_pool[srv->rtx_n++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&srv->rtx_lock);
    meta_store_txn_abort(txn);
}

static void serve_read(struct meta_server *srv, const struct meta_op_desc *d,
                       struct ckpt_req *req)
{
    uint8_t storage[1024];
    struct ckpt_wbuf w;
    MDB_txn *txn = NULL;
    int rc = rtxn_get(srv, &txn);

    ckpt_wbuf_init(&w, storage, sizeof(storage));
    if (rc == 0) {
        rc = d->read(srv, txn, req, &w);
        rtxn_put(srv, txn);
    }
    if (rc == 0 && w.err)
        rc = w.err;
    if (rc == CKPT_E_PROTO)
        meta_req_malformed(req, rc);
    else
        (void)ckpt_req_reply(req, rc, rc ? NULL : w.p, rc ? 0 : (uint32_t)w.len, NULL, 0);
    ckpt_wbuf_free(&w);
}

static void srv_handle(void *ctx, struct ckpt_req *req)
{
    struct meta_server *srv = ctx;
    const struct meta_op_desc *d = op_find(req->hdr.opcode);

    if (!d) {
        (void)ckpt_req_reply(req, -EOPNOTSUPP, NULL, 0, NULL, 0);
        return;
    }
    if (req->bulk_len) {
        meta_req_malformed(req, CKPT_E_PROTO);
        return;
    }
    switch (d->kind) {
    case META_OPK_READ:
        serve_read(srv, d, req);
        return;
    case META_OPK_DIRECT:
        d->direct(srv, req);
        return;
    case META_OPK_WRITE:
        break;
    }
    struct meta_wop *w = meta_wop_new(d->write, req);
    if (!w) {
        (void)ckpt_req_reply(req, -ENOMEM, NULL, 0, NULL, 0);
        return;
    }
    int rc = d->write->decode(req->body, req->body_len, w->msg);
    if (rc < 0) {
        w->req = NULL;
        meta_wop_free(w);
        if (rc == -ENOMEM)
            (void)ckpt_req_reply(req, rc, NULL, 0, NULL, 0);
        else
            meta_req_malformed(req, rc);
        return;
    }
    meta_wop_submit(srv, w, false);
}

static void srv_conn_closed(void *ctx, ckpt_conn *conn)
{
    meta_sess_conn_closed(ctx, conn);
}

static const struct ckpt_server_ops server_ops = {
    .handle = srv_handle,
    .conn_closed = srv_conn_closed,
};

/* ---- create / destroy -------------------------------------------------------------- */

static void stop_threads(struct meta_server *srv)
{
    if (srv->monitor_started) {
        pthread_mutex_lock(&srv->mon_lock);
        srv->mon_stop = true;
        pthread_cond_broadcast(&srv->mon_cond);
        pthread_mutex_unlock(&srv->mon_lock);
        pthread_join(srv->monitor, NULL);
        srv->monitor_started = false;
    }
    meta_delq_stop(srv);
    meta_ckpt_stop(srv);
    if (srv->writer_started) {
        pthread_mutex_lock(&srv->wq_lock);
        srv->wq_stop = true;
        pthread_cond_broadcast(&srv->wq_cond);
        pthread_mutex_unlock(&srv->wq_lock);
        pthread_join(srv->writer, NULL);
        srv->writer_started = false;
    }
}

void meta_server_destroy(meta_server *srv)
{
    if (!srv)
        return;
    ckpt_server_stop(srv->rpc);
    srv->rpc = NULL;
    stop_threads(srv);
    /* Anything still queued (the writer was never started) or parked. */
    while (srv->wq_head) {
        struct meta_wop *w = srv->wq_head;
        srv->wq_head = w->next;
        meta_wop_free(w);
    }
    srv->wq_tail = NULL;
    if (srv->sess)
        meta_sess_drop_parked(srv);
    meta_sess_fini(srv);
    meta_ckpt_fini(srv);
    meta_admin_fini(srv);
    meta_rebuild_fini(srv);
    meta_cluster_fini(srv);
    while (srv->rtx_n > 0)
        meta_store_txn_abort(srv->rtx_pool[--srv->rtx_n]);
    ckpt_net_destroy(srv->net);
    meta_store_close(srv->st);
    pthread_mutex_destroy(&srv->wq_lock);
    pthread_cond_destroy(&srv->wq_cond);
    pthread_mutex_destroy(&srv->mon_lock);
    pthread_cond_destroy(&srv->mon_cond);
    pthread_mutex_destroy(&srv->sess_lock);
    pthread_mutex_destroy(&srv->cl_lock);
    pthread_mutex_destroy(&srv->log_lock);
    pthread_mutex_destroy(&srv->rtx_lock);
    ckpt_free(srv);
}

static int opts_check(struct meta_server_opts *o)
{
    const char *why = NULL;
    if (!o->data_dir[0]) {
        CKPT_LOG_ERR("no data directory given");
        return -EINVAL;
    }
    if (!o->down_after_ms)
        o->down_after_ms = 5000;
    if (!o->out_after_ms)
        o->out_after_ms = 60000;
    if (o->out_after_ms < o->down_after_ms)
        o->out_after_ms = o->down_after_ms;
    if (!o->lease_ms)
        o->lease_ms = META_SERVER_DEFAULT_LEASE_MS;
    if (o->lease_ms < 100)
        o->lease_ms = 100;
    if (!o->heartbeat_ms)
        o->heartbeat_ms = META_SERVER_DEFAULT_HEARTBEAT_MS;
    if (o->heartbeat_ms > 60000)
        o->heartbeat_ms = 60000;
    if (o->layout.k == 0)
        ckpt_layout_default(&o->layout);
    if (o->layout.width == 0)
        o->layout.width = (uint16_t)(o->layout.k + o->layout.m);
    if (ckpt_layout_check(&o->layout, &why) < 0) {
        CKPT_LOG_ERR("invalid default layout: %s", why);
        return -EINVAL;
    }
    if (!o->listen_host[0])
        snprintf(o->listen_host, sizeof(o->listen_host), "0.0.0.0");
    return 0;
}

int meta_server_create(const struct meta_server_opts *opts, meta_server **out)
{
    struct meta_server *srv;
    struct meta_store_opts so;
    struct ckpt_net_opts no;
    struct timespec now = meta_now();
    int rc;

    if (!opts || !out)
        return -EINVAL;
    *out = NULL;
    srv = ckpt_calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->opts = *opts;
    pthread_mutex_init(&srv->wq_lock, NULL);
    pthread_cond_init(&srv->wq_cond, NULL);
    pthread_mutex_init(&srv->mon_lock, NULL);
    pthread_cond_init(&srv->mon_cond, NULL);
    pthread_mutex_init(&srv->sess_lock, NULL);
    pthread_mutex_init(&srv->cl_lock, NULL);
    pthread_mutex_init(&srv->log_lock, NULL);
    pthread_mutex_init(&srv->rtx_lock, NULL);
    rc = opts_check(&srv->opts);
    if (rc < 0)
        goto fail;

    memset(&so, 0, sizeof(so));
    so.map_size_bytes = srv->opts.map_size_bytes;
    so.cluster_name = srv->opts.cluster_name;
    so.now = now;
    rc = meta_store_open(srv->opts.data_dir, &so, &srv->st);
    if (rc < 0) {
        CKPT_LOG_ERR("cannot open the metadata store in %s: " CKPT_RC_FMT, srv->opts.data_dir,
                     CKPT_RC_ARGS(rc));
        goto fail;
    }
    rc = meta_store_dbi_open(srv->st, "dg.stripe", 0, &srv->dbi_degraded);
    if (rc == 0)
        rc = meta_cluster_init(srv);
    if (rc == 0)
        rc = meta_sess_init(srv);
    if (rc == 0)
        rc = meta_ckpt_init(srv);
    if (rc == 0)
        rc = meta_rebuild_init(srv);
    if (rc == 0)
        rc = meta_admin_init(srv);
    if (rc < 0) {
        CKPT_LOG_ERR("cannot load the server state from %s: " CKPT_RC_FMT, srv->opts.data_dir,
                     CKPT_RC_ARGS(rc));
        goto fail;
    }

    memset(&no, 0, sizeof(no));
    memcpy(no.key, srv->opts.key, sizeof(no.key));
    no.name = "ckpt-meta";
    no.transport = srv->opts.transport;
    rc = ckpt_net_create(&no, &srv->net);
    if (rc < 0)
        goto fail;

    rc = -pthread_create(&srv->writer, NULL, writer_main, srv);
    if (rc < 0)
        goto fail;
    srv->writer_started = true;
    rc = meta_sess_reap_orphans(srv);
    if (rc == 0)
        rc = meta_delq_start(srv);
    if (rc == 0)
        rc = meta_ckpt_start(srv);
    if (rc < 0)
        goto fail;
    rc = -pthread_create(&srv->monitor, NULL, monitor_main, srv);
    if (rc < 0)
        goto fail;
    srv->monitor_started = true;

    rc = ckpt_server_start(srv->net, srv->opts.listen_host, srv->opts.listen_port, &server_ops,
                           srv, &srv->rpc);
    if (rc < 0) {
        CKPT_LOG_ERR("cannot listen on %s:%u: " CKPT_RC_FMT, srv->opts.listen_host,
                     srv->opts.listen_port, CKPT_RC_ARGS(rc));
        goto fail;
    }
    srv->port = ckpt_server_port(srv->rpc);
    CKPT_LOG_INFO("ckpt-meta listening on %s:%u, data in %s, default layout ec=%u+%u "
                  "width=%u chunk=%u", srv->opts.listen_host, srv->port, srv->opts.data_dir,
                  srv->opts.layout.k, srv->opts.layout.m, srv->opts.layout.width,
                  srv->opts.layout.chunk_size);
    *out = srv;
    return 0;
fail:
    meta_server_destroy(srv);
    return rc;
}

uint16_t meta_server_port(const meta_server *srv)
{
    return srv->port;
}

void meta_server_stats(meta_server *srv, struct meta_server_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->batches = atomic_load(&srv->n_batches);
    out->write_ops = atomic_load(&srv->n_write_ops);
    out->max_batch = atomic_load(&srv->max_batch);
    out->delq_sent = atomic_load(&srv->n_delq_sent);
    out->failed_batches = atomic_load(&srv->n_failed_batches);
    meta_sess_counts(srv, &out->sessions, &out->parked);
    out->epoch = meta_cluster_epoch(srv);
}

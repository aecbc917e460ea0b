/*
 * meta_delq.c - the chunk deletion queue worker of ckpt-meta.
 *
 * DESIGN
 *
 *   Unlink (of the last name, once nobody holds the file), truncate and
 *   O_TRUNC queue deletions in the store's ns.delq table, keyed (target,
 *   ino, data_gen), in the same transaction as the namespace change
 *   (meta_store_delq_add*), so a queued deletion is as durable as the
 *   unlink itself.  This thread empties the queue:
 *
 *     thread delq_main: wakes every second, or at once when the writer
 *     committed new deletions (meta_delq_kick); for each target whose node
 *     is UP, reads up to DQ_BATCH queued entries in a read transaction and
 *     sends one CHUNK_DELETE per entry (stripes >= from_stripe, generations
 *     < data_gen + 1) to the node; the confirmed ones are removed from the
 *     queue by one DELQ_DONE wop through the writer.  A failed or
 *     unanswered request leaves its entry queued: it is sent again at the
 *     next pass, until the node confirms.  CHUNK_DELETE is idempotent, so
 *     sending one twice (a pass that starts before the previous DELQ_DONE
 *     committed) is harmless.
 *
 *   One ckpt_peer per node (reconnecting by itself), owned by this thread.
 *
 *   Gathering: a kick starts the pass DQ_GATHER_MS later, not at once.
 *   Each pass ends with a commit (DELQ_DONE) through the writer, so a pass
 *   per kick made a sequential `rm` of 10,000 empty files pay two commits
 *   per file (its UNLINK, then the pass its kick started); gathered, the
 *   passes carry the deletions of about a hundred unlinks each.  Space
 *   comes back a tenth of a second later.
 *
 *   Known limits: entries of targets whose node never comes back stay in
 *   the queue (a later "node remove" administration command drops them);
 *   requests are sent one at a time per pass.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"

#define DQ_BATCH 128u           /* entries per target per pass */
#define DQ_MAX_TARGETS 16384u
#define DQ_PERIOD_MS 1000u
#define DQ_GATHER_MS 100L        /* a kick waits this long for company */
#define DQ_CALL_TIMEOUT_MS 10000u

struct dq_peer {
    uint32_t node_id;
    char host[CKPT_HOST_MAX + 1];
    uint16_t port;
    ckpt_peer *peer;
};

struct meta_delq {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;                 /* protected by lock */
    bool kick;                 /* protected by lock */
    struct dq_peer *peers;     /* delq thread only */
    size_t npeers, cap;
};

struct done_msg {
    uint32_t n;
    struct meta_delq_entry *e;
};

/* ---- DELQ_DONE --------------------------------------------------------------- */

static int done_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct done_msg *m = w->msg;
    for (uint32_t i = 0; i < m->n; i++) {
        int rc = meta_store_delq_remove(txn, &m->e[i]);
        if (rc == -ENOENT || rc == CKPT_E_STALE)
            continue; /* gone already, or grown since: it stays */
        if (rc < 0)
            return rc;
    }
    atomic_fetch_add(&srv->n_delq_sent, m->n);
    return 0;
}

static void done_fini(struct meta_wop *w)
{
    struct done_msg *m = w->msg;
    CKPT_FREE(m->e);
}

const struct meta_wop_type meta_wop_delq_done = {
    .name = "DELQ_DONE",
    .msg_size = sizeof(struct done_msg),
    .apply = done_apply,
    .fini = done_fini,
};

/* ---- the worker --------------------------------------------------------------- */

static ckpt_peer *peer_for(struct meta_server *srv, const struct meta_delq_target *t)
{
    struct meta_delq *dq = srv->dq;
    struct dq_peer *p = NULL;
    for (size_t i = 0; i < dq->npeers; i++)
        if (dq->peers[i].node_id == t->node_id)
            p = &dq->peers[i];
    if (p && (strcmp(p->host, t->host) != 0 || p->port != t->port)) {
        if (ckpt_peer_set_addr(p->peer, t->host, t->port) < 0)
            return NULL;
        snprintf(p->host, sizeof(p->host), "%s", t->host);
        p->port = t->port;
    }
    if (p)
        return p->peer;
    if (dq->npeers == dq->cap) {
        size_t ncap = dq->cap ? dq->cap * 2 : 16;
        struct dq_peer *np = ckpt_realloc(dq->peers, ncap * sizeof(*np));
        if (!np)
            return NULL;
        dq->peers = np;
        dq->cap = ncap;
    }
    p = &dq->peers[dq->npeers];
    memset(p, 0, sizeof(*p));
    if (ckpt_peer_create(srv->net, t->host, t->port, &p->peer) < 0)
        return NULL;
    p->node_id = t->node_id;
    snprintf(p->host, sizeof(p->host), "%s", t->host);
    p->port = t->port;
    dq->npeers++;
    return p->peer;
}

struct collect {
    struct meta_delq_entry *e;
    uint32_t n;
};

static int collect_cb(const struct meta_delq_entry *e, void *ctx)
{
    struct collect *c = ctx;
    if (c->n == DQ_BATCH)
        return 1;
    c->e[c->n++] = *e;
    return 0;
}

static int send_delete(ckpt_peer *peer, const struct meta_delq_entry *e)
{
    struct ckpt_msg_chunk_delete m = {
        .target = e->tid,
        .ino = e->ino,
        .from_stripe = e->from_stripe,
        .below_gen = e->data_gen + 1,
    };
    uint8_t buf[64];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    int rc;

    ckpt_wbuf_init(&w, buf, sizeof(buf));
    rc = ckpt_msg_chunk_delete_encode(&w, &m);
    if (rc == 0) {
        memset(&call, 0, sizeof(call));
        call.opcode = CKPT_OP_CHUNK_DELETE;
        call.body = w.p;
        call.body_len = (uint32_t)w.len;
        call.timeout_ms = DQ_CALL_TIMEOUT_MS;
        rc = ckpt_peer_call(peer, &call);
        ckpt_call_release(&call);
    }
    ckpt_wbuf_free(&w);
    return rc;
}

/* One target: send its queued deletions, queue the confirmed ones' removal.
 * @return 0, or the transport error that makes its node unreachable now. */
static int drain_target(struct meta_server *srv, const struct meta_delq_target *t,
                        struct meta_delq_entry *buf)
{
    struct collect c = {buf, 0};
    MDB_txn *txn = NULL;
    int rc = meta_store_txn_begin(srv->st, NULL, true, &txn);

    if (rc < 0)
        return 0;
    rc = meta_store_delq_iter(txn, t->tid, 0, collect_cb, &c);
    meta_store_txn_abort(txn);
    if (rc < 0 || c.n == 0)
        return 0;
    ckpt_peer *peer = peer_for(srv, t);
    if (!peer)
        return 0;
    struct meta_delq_entry *ok = ckpt_calloc(c.n, sizeof(*ok));
    uint32_t nok = 0;
    int err = 0;
    if (!ok)
        return 0;
    for (uint32_t i = 0; i < c.n; i++) {
        rc = send_delete(peer, &c.e[i]);
        if (rc == 0) {
            ok[nok++] = c.e[i];
            continue;
        }
        CKPT_LOG_DEBUG("CHUNK_DELETE of inode %llu gen <= %llu on target %u (node %u): "
                       CKPT_RC_FMT ", kept queued", (unsigned long long)c.e[i].ino,
                       (unsigned long long)c.e[i].data_gen, t->tid, t->node_id,
                       CKPT_RC_ARGS(rc));
        if (rc == CKPT_E_CLOSED || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
            rc == -EHOSTUNREACH || rc == CKPT_E_AUTH) {
            err = rc;
            break;
        }
    }
    if (nok == 0) {
        ckpt_free(ok);
        return err;
    }
    struct meta_wop *w = meta_wop_new(&meta_wop_delq_done, NULL);
    if (!w) {
        ckpt_free(ok);
        return err;
    }
    ((struct done_msg *)w->msg)->n = nok;
    ((struct done_msg *)w->msg)->e = ok;
    meta_wop_submit(srv, w, false);
    return err;
}

static void pass(struct meta_server *srv, struct meta_delq_target *targets,
                 struct meta_delq_entry *buf)
{
    size_t n = meta_cluster_live_targets(srv, targets, DQ_MAX_TARGETS);
    uint32_t dead_node = 0;
    for (size_t i = 0; i < n; i++) {
        if (dead_node && targets[i].node_id == dead_node)
            continue;
        pthread_mutex_lock(&srv->dq->lock);
        bool stop = srv->dq->stop;
        pthread_mutex_unlock(&srv->dq->lock);
        if (stop)
            return;
        if (drain_target(srv, &targets[i], buf) < 0)
            dead_node = targets[i].node_id;
    }
}

static void *delq_main(void *arg)
{
    struct meta_server *srv = arg;
    struct meta_delq *dq = srv->dq;
    struct meta_delq_target *targets = ckpt_calloc(DQ_MAX_TARGETS, sizeof(*targets));
    struct meta_delq_entry *buf = ckpt_calloc(DQ_BATCH, sizeof(*buf));

    if (!targets || !buf)
        CKPT_LOG_ERR("out of memory: chunk deletions are not sent");
    pthread_mutex_lock(&dq->lock);
    while (!dq->stop) {
        if (!dq->kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += DQ_PERIOD_MS / 1000;
            pthread_cond_timedwait(&dq->cond, &dq->lock, &ts);
        }
        if (dq->stop)
            break;
        if (dq->kick) {
            /* Let the deletions of the unlinks right behind this one join
             * the pass (rm -r: one DELQ_DONE commit per gather, not one per
             * file; see "Gathering"). */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += DQ_GATHER_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (!dq->stop && pthread_cond_timedwait(&dq->cond, &dq->lock, &ts) == 0)
                ;
            if (dq->stop)
                break;
        }
        dq->kick = false;
        pthread_mutex_unlock(&dq->lock);
        if (targets && buf)
            pass(srv, targets, buf);
        pthread_mutex_lock(&dq->lock);
    }
    pthread_mutex_unlock(&dq->lock);
    ckpt_free(targets);
    ckpt_free(buf);
    return NULL;
}

int meta_delq_start(struct meta_server *srv)
{
    struct meta_delq *dq = ckpt_calloc(1, sizeof(*dq));
    if (!dq)
        return -ENOMEM;
    pthread_mutex_init(&dq->lock, NULL);
    pthread_cond_init(&dq->cond, NULL);
    srv->dq = dq;
    int rc = -pthread_create(&dq->thread, NULL, delq_main, srv);
    if (rc < 0)
        return rc;
    dq->started = true;
    return 0;
}

void meta_delq_kick(struct meta_server *srv)
{
    struct meta_delq *dq = srv->dq;
    if (!dq)
        return;
    pthread_mutex_lock(&dq->lock);
    dq->kick = true;
    pthread_cond_signal(&dq->cond);
    pthread_mutex_unlock(&dq->lock);
}

void meta_delq_stop(struct meta_server *srv)
{
    struct meta_delq *dq = srv->dq;
    if (!dq)
        return;
    if (dq->started) {
        pthread_mutex_lock(&dq->lock);
        dq->stop = true;
        pthread_cond_signal(&dq->cond);
        pthread_mutex_unlock(&dq->lock);
        pthread_join(dq->thread, NULL);
    }
    for (size_t i = 0; i < dq->npeers; i++)
        ckpt_peer_destroy(dq->peers[i].peer);
    ckpt_free(dq->peers);
    pthread_mutex_destroy(&dq->lock);
    pthread_cond_destroy(&dq->cond);
    ckpt_free(dq);
    srv->dq = NULL;
}

/*
 * net.c - RPC connections, servers and peers over a transport (net.h).
 *
 * DESIGN
 *
 * Threads.
 *   - receive thread, one per connection (conn_reader): does the server
 *     side of the handshake, then receives messages forever.  A response is
 *     matched to its pending call and completes it; a request becomes a
 *     struct ckpt_req handed to ops->handle().  It ends when the
 *     connection fails or is shut down.
 *   - timer thread, one per ckpt_net (net_timer): every 20 ms expires
 *     waiting calls whose deadline passed.
 *   - accept thread, one per listener of a server (server_acceptor): a
 *     server listens on TCP, and on a net with RDMA also on RDMA at the
 *     same port number.
 *   Sends run on the caller's thread under conn->send_lock.
 *
 * Transports.  net->tops is the net's own choice (tcp, or rdma for
 * transport=rdma|auto when a local RDMA device exists); each connection
 * carries the transport it was made with (conn->tops), so an auto net
 * talks RDMA to peers that offer it and TCP to the rest.  Bulk buffers come
 * from the RDMA transport whenever the net has RDMA (registered memory,
 * cached here by size class so the data path never registers), else from
 * the TCP transport (plain aligned memory).
 *
 * Expiry on RDMA.  A call whose response bulk the peer may still RDMA
 * WRITE into the caller's registered buffer cannot be revoked one by one
 * (that would take memory windows): when the transport says so
 * (call_expired), the timer fails the connection - which moves the QP to
 * the error state - before it completes the call with -ETIMEDOUT.
 *
 * A call's life, protected by conn->lock.  priv_flags holds three bits:
 * SENDING (its sender is inside send_msg), RECEIVING (the receive thread is
 * moving its response bulk into bulk_in) and RESPONDED (its response has
 * fully arrived while it was still SENDING).
 *
 *   submit -> SENDING --send ok, no response yet--> WAITING
 *               |  \--response arrives--> SENDING|RECEIVING -> SENDING|RESPONDED
 *               |                           (sender completes it after send)
 *               `--send fails / conn failed--> done(error) by the sender
 *   WAITING --response--> RECEIVING --bulk in--> done(status) by the reader
 *   WAITING --deadline--> done(-ETIMEDOUT) by the timer
 *   WAITING --conn fails--> done(CKPT_E_CLOSED) by whoever fails it
 *
 *   Rule: a call is completed only when no thread is using its buffers: the
 *   timer and conn_fail touch only calls with no flag set; a call whose
 *   sender is still in send_msg is completed by that sender.  (The peer
 *   cannot answer before the kernel copied the request, but sanitizers
 *   instrument sendmsg after it returns, and a design that leans on kernel
 *   timing is one refactor away from a real use-after-free.)  The sender
 *   finds its call again by request id, never through a pointer that may
 *   already be completed and freed.

 * Lock order: net->lock, then conn->lock; srv->lock, then conn->lock.
 * conn->send_lock is never held together with conn->lock.
 * Completion callbacks run with no lock held.
 *
 * Lifetime: a conn is reference counted: the creator (until close), the
 * receive thread, every outstanding ckpt_req.  The last put unlinks it from
 * the net and frees it.  net->nreaders counts live receive threads so that
 * ckpt_net_destroy() and ckpt_server_stop() can wait for them.
 */
#include "net.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "net_int.h"

#define PENDING_BUCKETS 256
#define HANDSHAKE_NAME_MAX 31

#define CALL_SENDING 0x1u   /* its sender is inside send_msg */
#define CALL_RECEIVING 0x2u /* the reader is filling bulk_in */
#define CALL_RESPONDED 0x4u /* response complete; the sender completes it */

#define BUF_MIN_SHIFT 12 /* 4 KiB (RDMA nets cache every registered size) */
#define BUF_TCP_MIN_SHIFT 16 /* TCP nets: smaller buffers come from malloc */
#define BUF_MAX_SHIFT 27 /* 128 MiB */
#define BUF_CLASSES (BUF_MAX_SHIFT - BUF_MIN_SHIFT + 1)
#define EXPIRED_FENCE 2u /* priv_deadline_ns of an expired call whose
                            connection must fail first (see DESIGN) */

struct buf_free {
    struct buf_free *next;
};

struct ckpt_net {
    struct ckpt_net_opts opts;
    pthread_mutex_t buf_lock;
    struct buf_free *buf_cache[BUF_CLASSES]; /* protected by buf_lock */
    size_t buf_cached_bytes;                 /* protected by buf_lock */
    char name[HANDSHAKE_NAME_MAX + 1];
    const struct ckpt_transport_ops *tops; /* the net's own choice */
    void *rdma_ctx;            /* per-net RDMA state, or NULL */
    const struct ckpt_transport_ops *btops; /* where bulk buffers come from */
    void *bctx;
    int buf_min_shift;
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* nreaders changes, timer stop */
    struct ckpt_conn *conns;   /* protected by lock */
    int nreaders;              /* protected by lock */
    bool stopping;             /* protected by lock */
    pthread_t timer;
};

struct ckpt_conn {
    ckpt_net *net;
    const struct ckpt_transport_ops *tops;
    struct ckpt_tconn *t;
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_mutex_t send_lock;
    bool open;                                 /* protected by lock */
    uint64_t next_id;                          /* protected by lock */
    struct ckpt_call *pending[PENDING_BUCKETS]; /* protected by lock */
    const struct ckpt_server_ops *ops;
    void *ctx;
    ckpt_server *srv;                          /* server-side conns only */
    void *user;
    char peer_name[HANDSHAKE_NAME_MAX + 1];
    struct ckpt_conn *prev, *next;             /* net->conns, net->lock */
    struct ckpt_conn *sprev, *snext;           /* srv->conns, srv->lock */
};

struct srv_listener {
    ckpt_server *srv;
    const struct ckpt_transport_ops *tops;
    struct ckpt_tlisten *l;
    pthread_t acceptor;
    bool started;
};

struct ckpt_server {
    ckpt_net *net;
    struct srv_listener ls[2]; /* [0] TCP, [1] RDMA (l NULL when not) */
    const struct ckpt_server_ops *ops;
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct ckpt_conn *conns; /* protected by lock */
    int nreaders;            /* protected by lock */
};

struct ckpt_peer {
    ckpt_net *net;
    pthread_mutex_t lock;
    char host[256];        /* protected by lock */
    uint16_t port;         /* protected by lock */
    uint16_t rdma_port;    /* protected by lock */
    ckpt_conn *conn;       /* protected by lock */
    uint32_t backoff_ms;   /* protected by lock */
    uint64_t next_try_ns;  /* protected by lock */
    int last_err;          /* protected by lock */
};

_Static_assert((int)CKPT_CONFIG_TRANSPORT_TCP == (int)CKPT_TRANSPORT_TCP &&
                   (int)CKPT_CONFIG_TRANSPORT_RDMA == (int)CKPT_TRANSPORT_RDMA &&
                   (int)CKPT_CONFIG_TRANSPORT_AUTO == (int)CKPT_TRANSPORT_AUTO,
               "[cluster] transport values must equal enum ckpt_transport_kind");

uint64_t ckpt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *net_timer(void *arg);

const char *ckpt_transport_name(enum ckpt_transport_kind kind)
{
    switch (kind) {
    case CKPT_TRANSPORT_TCP:
        return "tcp";
    case CKPT_TRANSPORT_RDMA:
        return "rdma";
    case CKPT_TRANSPORT_AUTO:
        return "auto";
    }
    return "?";
}

int ckpt_transport_parse(const char *s, enum ckpt_transport_kind *out)
{
    if (!s || !out)
        return -EINVAL;
    if (strcmp(s, "tcp") == 0)
        *out = CKPT_TRANSPORT_TCP;
    else if (strcmp(s, "rdma") == 0)
        *out = CKPT_TRANSPORT_RDMA;
    else if (strcmp(s, "auto") == 0)
        *out = CKPT_TRANSPORT_AUTO;
    else
        return -EINVAL;
    return 0;
}

int ckpt_net_create(const struct ckpt_net_opts *opts, ckpt_net **out)
{
    int rc;
    if (!opts || !out || (unsigned)opts->transport > CKPT_TRANSPORT_AUTO)
        return -EINVAL;
    rc = ckpt_auth_init();
    if (rc < 0)
        return rc;
    ckpt_net *net = ckpt_calloc(1, sizeof(*net));
    if (!net)
        return -ENOMEM;
    net->opts = *opts;
    snprintf(net->name, sizeof(net->name), "%s", opts->name ? opts->name : "ckptfs");
    net->opts.name = net->name;
    if (!net->opts.connect_timeout_ms)
        net->opts.connect_timeout_ms = 5000;
    if (!net->opts.io_timeout_ms)
        net->opts.io_timeout_ms = 30000;
    if (!net->opts.call_timeout_ms)
        net->opts.call_timeout_ms = 30000;
    net->tops = &ckpt_transport_tcp;
    net->btops = &ckpt_transport_tcp;
    net->buf_min_shift = BUF_TCP_MIN_SHIFT;
    if (opts->transport != CKPT_TRANSPORT_TCP) {
        rc = ckpt_transport_rdma.ctx_create(net, &net->rdma_ctx);
        if (rc < 0 && opts->transport == CKPT_TRANSPORT_RDMA) {
            ckpt_free(net);
            return -EPROTONOSUPPORT;
        }
        if (rc == 0) {
            net->tops = &ckpt_transport_rdma;
            net->btops = &ckpt_transport_rdma;
            net->bctx = net->rdma_ctx;
            net->buf_min_shift = BUF_MIN_SHIFT;
        }
    }
    pthread_mutex_init(&net->buf_lock, NULL);
    pthread_mutex_init(&net->lock, NULL);
    pthread_cond_init(&net->cond, NULL);
    rc = pthread_create(&net->timer, NULL, net_timer, net);
    if (rc) {
        if (net->rdma_ctx)
            ckpt_transport_rdma.ctx_destroy(net->rdma_ctx);
        pthread_cond_destroy(&net->cond);
        pthread_mutex_destroy(&net->lock);
        pthread_mutex_destroy(&net->buf_lock);
        ckpt_free(net);
        return -rc;
    }
    *out = net;
    return 0;
}

static void conn_fail(ckpt_conn *conn, int why);

void ckpt_net_destroy(ckpt_net *net)
{
    if (!net)
        return;
    pthread_mutex_lock(&net->lock);
    for (;;) {
        /* Fail one open connection at a time without net->lock held
         * (conn_fail completes calls, whose callbacks may take locks). */
        ckpt_conn *victim = NULL;
        for (ckpt_conn *c = net->conns; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            bool open = c->open;
            pthread_mutex_unlock(&c->lock);
            if (open) {
                victim = c;
                ckpt_conn_get(c);
                break;
            }
        }
        if (!victim)
            break;
        pthread_mutex_unlock(&net->lock);
        conn_fail(victim, CKPT_E_CLOSED);
        ckpt_conn_put(victim);
        pthread_mutex_lock(&net->lock);
    }
    while (net->nreaders > 0)
        pthread_cond_wait(&net->cond, &net->lock);
    net->stopping = true;
    pthread_cond_broadcast(&net->cond);
    pthread_mutex_unlock(&net->lock);
    pthread_join(net->timer, NULL);
    if (net->conns)
        CKPT_LOG_WARN("net: destroyed with connection references still held");
    for (int c = 0; c < BUF_CLASSES; c++) {
        while (net->buf_cache[c]) {
            struct buf_free *b = net->buf_cache[c];
            net->buf_cache[c] = b->next;
            net->btops->buf_free(net->bctx, b, (size_t)1 << (c + BUF_MIN_SHIFT));
        }
    }
    if (net->rdma_ctx)
        ckpt_transport_rdma.ctx_destroy(net->rdma_ctx);
    pthread_cond_destroy(&net->cond);
    pthread_mutex_destroy(&net->lock);
    pthread_mutex_destroy(&net->buf_lock);
    ckpt_free(net);
}

bool ckpt_net_has_rdma(const ckpt_net *net)
{
    return net && net->rdma_ctx != NULL;
}

/* Size class of len, or -1 for buffers too small or too big to cache. */
static int buf_class(const ckpt_net *net, size_t len)
{
    if (len > (1u << BUF_MAX_SHIFT))
        return -1;
    /* TCP: small buffers are plain malloc.  RDMA: every size is cached,
     * since each fresh one costs a registration. */
    if (net->buf_min_shift != BUF_MIN_SHIFT && len <= (1u << net->buf_min_shift) / 2)
        return -1;
    int shift = net->buf_min_shift;
    while (((size_t)1 << shift) < len)
        shift++;
    return shift - BUF_MIN_SHIFT;
}

void *ckpt_net_buf_alloc(ckpt_net *net, size_t len)
{
    int c = buf_class(net, len);
    if (c < 0)
        return net->btops->buf_alloc(net->bctx, len);
    pthread_mutex_lock(&net->buf_lock);
    struct buf_free *b = net->buf_cache[c];
    if (b) {
        net->buf_cache[c] = b->next;
        net->buf_cached_bytes -= (size_t)1 << (c + BUF_MIN_SHIFT);
    }
    pthread_mutex_unlock(&net->buf_lock);
    if (b)
        return b;
    return net->btops->buf_alloc(net->bctx, (size_t)1 << (c + BUF_MIN_SHIFT));
}

void ckpt_net_buf_free(ckpt_net *net, void *buf, size_t len)
{
    if (!buf)
        return;
    int c = buf_class(net, len);
    if (c >= 0) {
        size_t sz = (size_t)1 << (c + BUF_MIN_SHIFT);
        pthread_mutex_lock(&net->buf_lock);
        if (net->buf_cached_bytes + sz <= CKPT_NET_BUF_CACHE_BYTES) {
            struct buf_free *b = buf;
            b->next = net->buf_cache[c];
            net->buf_cache[c] = b;
            net->buf_cached_bytes += sz;
            buf = NULL;
        }
        pthread_mutex_unlock(&net->buf_lock);
    }
    if (buf)
        net->btops->buf_free(net->bctx, buf, len);
}

/* ---- connections ------------------------------------------------------- */

static int conn_new(ckpt_net *net, const struct ckpt_transport_ops *tops, struct ckpt_tconn *t,
                    const struct ckpt_server_ops *ops, void *ctx, ckpt_server *srv,
                    ckpt_conn **out)
{
    ckpt_conn *c = ckpt_calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->net = net;
    c->tops = tops;
    c->t = t;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->send_lock, NULL);
    c->open = true;
    c->next_id = 1;
    c->ops = ops;
    c->ctx = ctx;
    c->srv = srv;
    snprintf(c->peer_name, sizeof(c->peer_name), "?");
    pthread_mutex_lock(&net->lock);
    c->next = net->conns;
    if (net->conns)
        net->conns->prev = c;
    net->conns = c;
    pthread_mutex_unlock(&net->lock);
    *out = c;
    return 0;
}

void ckpt_conn_get(ckpt_conn *conn)
{
    atomic_fetch_add(&conn->refs, 1);
}

void ckpt_conn_put(ckpt_conn *conn)
{
    if (!conn || atomic_fetch_sub(&conn->refs, 1) != 1)
        return;
    ckpt_net *net = conn->net;
    pthread_mutex_lock(&net->lock);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        net->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    pthread_mutex_unlock(&net->lock);
    conn->tops->destroy(conn->t);
    pthread_mutex_destroy(&conn->lock);
    pthread_mutex_destroy(&conn->send_lock);
    ckpt_free(conn);
}

bool ckpt_conn_is_open(ckpt_conn *conn)
{
    pthread_mutex_lock(&conn->lock);
    bool open = conn->open;
    pthread_mutex_unlock(&conn->lock);
    return open;
}

const char *ckpt_conn_peer(const ckpt_conn *conn)
{
    return conn->tops->peer(conn->t);
}

const char *ckpt_conn_transport(const ckpt_conn *conn)
{
    return conn->tops->name;
}

enum ckpt_transport_kind ckpt_conn_transport_kind(const ckpt_conn *conn)
{
    return conn->tops->kind;
}

const char *ckpt_conn_peer_name(const ckpt_conn *conn)
{
    return conn->peer_name;
}

void ckpt_conn_set_user(ckpt_conn *conn, void *user)
{
    conn->user = user;
}

void *ckpt_conn_user(const ckpt_conn *conn)
{
    return conn->user;
}

static void call_complete(struct ckpt_call *call, int status)
{
    call->status = status;
    if (call->done)
        call->done(call);
    else
        sem_post(&call->priv_sem);
}

/* Unlink and return the call with this id, or NULL.  Caller holds conn->lock. */
static struct ckpt_call *pending_take_locked(ckpt_conn *conn, uint64_t id)
{
    struct ckpt_call **pp = &conn->pending[id % PENDING_BUCKETS];
    for (; *pp; pp = &(*pp)->priv_next) {
        if ((*pp)->priv_req_id == id) {
            struct ckpt_call *c = *pp;
            *pp = c->priv_next;
            c->priv_next = NULL;
            return c;
        }
    }
    return NULL;
}

static struct ckpt_call *pending_find_locked(ckpt_conn *conn, uint64_t id)
{
    for (struct ckpt_call *c = conn->pending[id % PENDING_BUCKETS]; c; c = c->priv_next)
        if (c->priv_req_id == id)
            return c;
    return NULL;
}

/* Mark the connection dead, shut the transport down, and fail every WAITING
 * call.  SENDING calls are completed by their senders.  Idempotent. */
static void conn_fail(ckpt_conn *conn, int why)
{
    struct ckpt_call *failed = NULL;
    pthread_mutex_lock(&conn->lock);
    if (!conn->open) {
        pthread_mutex_unlock(&conn->lock);
        return;
    }
    conn->open = false;
    for (int b = 0; b < PENDING_BUCKETS; b++) {
        struct ckpt_call **pp = &conn->pending[b];
        while (*pp) {
            struct ckpt_call *c = *pp;
            if (c->priv_flags) { /* busy: its sender or the reader completes it */
                pp = &c->priv_next;
                continue;
            }
            *pp = c->priv_next;
            c->priv_next = failed;
            failed = c;
        }
    }
    pthread_mutex_unlock(&conn->lock);
    conn->tops->shutdown(conn->t);
    (void)why;
    while (failed) {
        struct ckpt_call *c = failed;
        failed = c->priv_next;
        c->priv_next = NULL;
        call_complete(c, CKPT_E_CLOSED);
    }
}

void ckpt_conn_close(ckpt_conn *conn)
{
    if (!conn)
        return;
    conn_fail(conn, CKPT_E_CLOSED);
    ckpt_conn_put(conn);
}

/* Encode and send one message under the send lock. */
static int conn_send(ckpt_conn *conn, uint16_t op, uint32_t flags, int32_t status,
                     uint64_t req_id, const void *body, uint32_t body_len,
                     const struct iovec *bulk, int nbulk, void *bulk_in,
                     uint32_t bulk_in_cap)
{
    uint8_t raw[CKPT_HDR_SIZE];
    uint64_t bulk_len = 0;
    for (int i = 0; i < nbulk; i++)
        bulk_len += bulk[i].iov_len;
    if (bulk_len > CKPT_PROTO_MAX_BULK || body_len > CKPT_PROTO_MAX_BODY)
        return -EMSGSIZE;
    struct ckpt_hdr h = {
        .opcode = op,
        .flags = flags,
        .status = status,
        .req_id = req_id,
        .body_len = body_len,
        .bulk_len = (uint32_t)bulk_len,
    };
    ckpt_hdr_encode(raw, &h, body, body_len);
    pthread_mutex_lock(&conn->send_lock);
    int rc = conn->tops->send_msg(conn->t, raw, body, body_len, bulk, nbulk, bulk_in,
                                  bulk_in_cap);
    pthread_mutex_unlock(&conn->send_lock);
    return rc;
}

/*
 * The deadline's lowest bit doubles as the SENDING flag: deadlines are in
 * nanoseconds, so one nanosecond of precision is a fair price for keeping
 * the state inside the caller-visible struct small.
 */
int ckpt_conn_submit(ckpt_conn *conn, struct ckpt_call *call)
{
    if (!conn || !call || call->bulk_out_cnt < 0 || call->bulk_out_cnt > 16 ||
        (call->bulk_out_cnt && !call->bulk_out) || call->body_len > CKPT_PROTO_MAX_BODY)
        return -EINVAL;
    call->status = 0;
    call->resp_body = NULL;
    call->resp_body_len = 0;
    call->bulk_in_len = 0;
    call->priv_conn = conn;
    call->priv_next = NULL;
    uint32_t tmo = call->timeout_ms ? call->timeout_ms : conn->net->opts.call_timeout_ms;

    pthread_mutex_lock(&conn->lock);
    if (!conn->open) {
        pthread_mutex_unlock(&conn->lock);
        return CKPT_E_CLOSED;
    }
    uint64_t id = conn->next_id++;
    call->priv_req_id = id;
    call->priv_deadline_ns = ckpt_now_ns() + (uint64_t)tmo * 1000000ull;
    call->priv_flags = CALL_SENDING;
    if (!call->oneway) {
        struct ckpt_call **b = &conn->pending[id % PENDING_BUCKETS];
        call->priv_next = *b;
        *b = call;
    }
    pthread_mutex_unlock(&conn->lock);

    /* From here on `call` may be completed by the receive thread at any
     * moment (for a non-oneway call): use only locals until the lookup. */
    bool oneway = call->oneway;
    int rc = conn_send(conn, call->opcode, oneway ? CKPT_MSG_F_ONEWAY : 0, 0, id,
                       call->body, call->body_len, call->bulk_out, call->bulk_out_cnt,
                       call->bulk_in, call->bulk_in_cap);
    if (oneway) {
        if (rc < 0 && rc != -EMSGSIZE)
            conn_fail(conn, rc);
        call_complete(call, rc);
        return 0;
    }
    pthread_mutex_lock(&conn->lock);
    struct ckpt_call *mine = pending_find_locked(conn, id);
    int fail = 0;
    bool complete = false;
    if (mine) {
        mine->priv_flags &= ~CALL_SENDING;
        if (mine->priv_flags & CALL_RESPONDED) {
            /* The response came while we were sending: ours to complete. */
            pending_take_locked(conn, id);
            mine->priv_flags = 0;
            complete = true;
        } else if (!(mine->priv_flags & CALL_RECEIVING)) {
            if (rc < 0)
                fail = rc == -EMSGSIZE ? rc : CKPT_E_CLOSED;
            else if (!conn->open)
                fail = CKPT_E_CLOSED;
            if (fail)
                pending_take_locked(conn, id);
        }
    }
    pthread_mutex_unlock(&conn->lock);
    if (rc < 0 && rc != -EMSGSIZE)
        conn_fail(conn, rc);
    if (fail)
        call_complete(mine, fail);
    else if (complete)
        call_complete(mine, mine->status);
    return 0;
}

int ckpt_conn_call(ckpt_conn *conn, struct ckpt_call *call)
{
    if (!call || call->done)
        return -EINVAL;
    if (sem_init(&call->priv_sem, 0, 0) < 0)
        return -errno;
    int rc = ckpt_conn_submit(conn, call);
    if (rc < 0) {
        sem_destroy(&call->priv_sem);
        call->status = rc;
        return rc;
    }
    while (sem_wait(&call->priv_sem) < 0 && errno == EINTR)
        ;
    sem_destroy(&call->priv_sem);
    return call->status;
}

void ckpt_call_release(struct ckpt_call *call)
{
    if (call)
        CKPT_FREE(call->resp_body);
}

/* ---- requests ------------------------------------------------------------ */

int ckpt_req_reply(struct ckpt_req *req, int status, const void *body, uint32_t body_len,
                   const struct iovec *bulk, int bulk_cnt)
{
    int rc = 0;
    if (!(req->hdr.flags & CKPT_MSG_F_ONEWAY)) {
        if (status > 0)
            status = CKPT_E_PROTO; /* positive statuses are not part of the protocol */
        if (!ckpt_conn_is_open(req->conn)) {
            rc = CKPT_E_CLOSED;
        } else {
            rc = conn_send(req->conn, req->hdr.opcode, CKPT_MSG_F_RESPONSE, status,
                           req->hdr.req_id, body, body_len, bulk, bulk_cnt, NULL, 0);
            if (rc < 0 && rc != -EMSGSIZE)
                conn_fail(req->conn, rc);
            else if (rc == -EMSGSIZE)
                /* Tell the caller rather than leave it waiting. */
                rc = conn_send(req->conn, req->hdr.opcode, CKPT_MSG_F_RESPONSE, -EMSGSIZE,
                               req->hdr.req_id, NULL, 0, NULL, 0, NULL, 0);
        }
    }
    ckpt_req_free(req);
    return rc;
}

void ckpt_req_free(struct ckpt_req *req)
{
    if (!req)
        return;
    if (req->bulk && !req->bulk_server_owned)
        ckpt_net_buf_free(req->conn->net, req->bulk, req->bulk_len);
    ckpt_free((void *)req->body);
    ckpt_conn_put(req->conn);
    ckpt_free(req);
}

/* ---- handshake ------------------------------------------------------------ */

static int hs_send(ckpt_conn *conn, uint16_t op, uint32_t flags, int32_t status,
                   const struct ckpt_wbuf *w)
{
    if (w && w->err)
        return w->err;
    return conn_send(conn, op, flags, status, 1, w ? w->p : NULL, w ? (uint32_t)w->len : 0,
                     NULL, 0, NULL, 0);
}

/* Receive one handshake message of the given opcode/direction. */
static int hs_recv(ckpt_conn *conn, uint16_t op, bool response, struct ckpt_hdr *h,
                   uint8_t **body)
{
    uint8_t raw[CKPT_HDR_SIZE];
    int rc = conn->tops->recv_msg(conn->t, false, raw, h, body);
    if (rc < 0)
        return rc;
    if (ckpt_hdr_verify(raw, *body, h->body_len) < 0 || h->opcode != op ||
        !!(h->flags & CKPT_MSG_F_RESPONSE) != response || h->bulk_len != 0) {
        CKPT_FREE(*body);
        return CKPT_E_PROTO;
    }
    return 0;
}

static void hs_copy_name(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[n] = '\0';
}

/*
 * Client side:  HELLO{name, cn}  ->  <- HELLO resp{name, sn, server proof}
 *               AUTH{client proof, server_ok}  ->  <- AUTH resp(status)
 * The client always sends its AUTH, even when the server failed its proof,
 * so that both ends can log what happened.
 */
static int handshake_client(ckpt_conn *conn)
{
    uint8_t cn[CKPT_AUTH_NONCE_LEN], proof[CKPT_AUTH_PROOF_LEN], st[128];
    struct ckpt_wbuf w;
    struct ckpt_hdr h;
    struct ckpt_rbuf r;
    uint8_t *body = NULL;
    const uint8_t *key = conn->net->opts.key;
    int rc;

    ckpt_auth_nonce(cn);
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_wr_str(&w, conn->net->name, strlen(conn->net->name));
    ckpt_wr_bytes(&w, cn, sizeof(cn));
    rc = hs_send(conn, CKPT_OP_HELLO, 0, 0, &w);
    ckpt_wbuf_free(&w);
    if (rc < 0)
        return rc;
    rc = hs_recv(conn, CKPT_OP_HELLO, true, &h, &body);
    if (rc < 0)
        return rc;
    if (h.status < 0) {
        ckpt_free(body);
        return h.status == CKPT_E_VERSION ? CKPT_E_VERSION : CKPT_E_PROTO;
    }
    size_t nlen;
    ckpt_rbuf_init(&r, body, h.body_len);
    const char *name = ckpt_rd_str(&r, HANDSHAKE_NAME_MAX, &nlen);
    const uint8_t *sn = ckpt_rd_bytes(&r, CKPT_AUTH_NONCE_LEN);
    const uint8_t *sproof = ckpt_rd_bytes(&r, CKPT_AUTH_PROOF_LEN);
    if (ckpt_rbuf_end(&r) < 0) {
        ckpt_free(body);
        return CKPT_E_PROTO;
    }
    hs_copy_name(conn->peer_name, sizeof(conn->peer_name), name, nlen);
    bool server_ok = ckpt_auth_proof_ok(sproof, key, CKPT_AUTH_SERVER, cn, sn);
    ckpt_auth_proof(proof, key, CKPT_AUTH_CLIENT, cn, sn);
    ckpt_free(body);
    body = NULL;

    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_wr_bytes(&w, proof, sizeof(proof));
    ckpt_wr_u8(&w, server_ok ? 1 : 0);
    rc = hs_send(conn, CKPT_OP_AUTH, 0, 0, &w);
    ckpt_wbuf_free(&w);
    if (rc < 0)
        return server_ok ? rc : CKPT_E_AUTH;
    if (!server_ok)
        return CKPT_E_AUTH;
    rc = hs_recv(conn, CKPT_OP_AUTH, true, &h, &body);
    if (rc < 0)
        return rc == CKPT_E_CLOSED ? CKPT_E_AUTH : rc;
    ckpt_free(body);
    return h.status < 0 ? CKPT_E_AUTH : 0;
}

static int handshake_server(ckpt_conn *conn)
{
    uint8_t sn[CKPT_AUTH_NONCE_LEN], cn[CKPT_AUTH_NONCE_LEN], proof[CKPT_AUTH_PROOF_LEN];
    uint8_t st[128];
    struct ckpt_wbuf w;
    struct ckpt_hdr h;
    struct ckpt_rbuf r;
    uint8_t *body = NULL;
    const uint8_t *key = conn->net->opts.key;
    const char *peer = ckpt_conn_peer(conn);
    int rc;

    rc = hs_recv(conn, CKPT_OP_HELLO, false, &h, &body);
    if (rc < 0) {
        if (rc == CKPT_E_VERSION)
            (void)hs_send(conn, CKPT_OP_HELLO, CKPT_MSG_F_RESPONSE, CKPT_E_VERSION, NULL);
        CKPT_LOG_WARN("net: handshake from %s failed: " CKPT_RC_FMT, peer, CKPT_RC_ARGS(rc));
        return rc;
    }
    size_t nlen;
    ckpt_rbuf_init(&r, body, h.body_len);
    const char *name = ckpt_rd_str(&r, HANDSHAKE_NAME_MAX, &nlen);
    const uint8_t *cnp = ckpt_rd_bytes(&r, CKPT_AUTH_NONCE_LEN);
    if (ckpt_rbuf_end(&r) < 0) {
        ckpt_free(body);
        CKPT_LOG_WARN("net: malformed HELLO from %s", peer);
        return CKPT_E_PROTO;
    }
    hs_copy_name(conn->peer_name, sizeof(conn->peer_name), name, nlen);
    memcpy(cn, cnp, sizeof(cn));
    ckpt_free(body);
    body = NULL;

    ckpt_auth_nonce(sn);
    ckpt_auth_proof(proof, key, CKPT_AUTH_SERVER, cn, sn);
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_wr_str(&w, conn->net->name, strlen(conn->net->name));
    ckpt_wr_bytes(&w, sn, sizeof(sn));
    ckpt_wr_bytes(&w, proof, sizeof(proof));
    rc = hs_send(conn, CKPT_OP_HELLO, CKPT_MSG_F_RESPONSE, 0, &w);
    ckpt_wbuf_free(&w);
    if (rc < 0)
        return rc;

    rc = hs_recv(conn, CKPT_OP_AUTH, false, &h, &body);
    if (rc < 0) {
        CKPT_LOG_WARN("net: handshake from %s (%s) failed: " CKPT_RC_FMT, peer,
                      conn->peer_name, CKPT_RC_ARGS(rc));
        return rc;
    }
    ckpt_rbuf_init(&r, body, h.body_len);
    const uint8_t *cproof = ckpt_rd_bytes(&r, CKPT_AUTH_PROOF_LEN);
    uint8_t server_ok = ckpt_rd_u8(&r);
    if (ckpt_rbuf_end(&r) < 0) {
        ckpt_free(body);
        CKPT_LOG_WARN("net: malformed AUTH from %s", peer);
        return CKPT_E_PROTO;
    }
    bool client_ok = ckpt_auth_proof_ok(cproof, key, CKPT_AUTH_CLIENT, cn, sn);
    ckpt_free(body);
    if (!client_ok || !server_ok) {
        (void)hs_send(conn, CKPT_OP_AUTH, CKPT_MSG_F_RESPONSE, CKPT_E_AUTH, NULL);
        CKPT_LOG_WARN("net: rejected %s (%s): %s", peer, conn->peer_name,
                      !client_ok ? "it does not hold this cluster's key (wrong cluster key)"
                                 : "it says we do not hold its cluster key");
        return CKPT_E_AUTH;
    }
    return hs_send(conn, CKPT_OP_AUTH, CKPT_MSG_F_RESPONSE, 0, NULL);
}

/* ---- receive thread -------------------------------------------------------- */

static void reader_handle_response(ckpt_conn *conn, const struct ckpt_hdr *h,
                                   uint8_t *body, int *fatal)
{
    pthread_mutex_lock(&conn->lock);
    struct ckpt_call *call = pending_find_locked(conn, h->req_id);
    if (call)
        call->priv_flags |= CALL_RECEIVING; /* keeps timer and conn_fail off */
    pthread_mutex_unlock(&conn->lock);
    if (!call) {
        /* Late (timed out) or unknown: drop it, bulk included. */
        ckpt_free(body);
        if (h->bulk_len)
            *fatal = conn->tops->recv_bulk(conn->t, NULL, h->bulk_len);
        return;
    }
    int status = h->status;
    if (status > 0 || h->opcode != call->opcode) {
        status = CKPT_E_PROTO;
        *fatal = CKPT_E_PROTO;
    }
    if (h->bulk_len) {
        int rc;
        if (h->bulk_len > call->bulk_in_cap || !call->bulk_in) {
            rc = conn->tops->recv_bulk(conn->t, NULL, h->bulk_len);
            if (status == 0)
                status = -EMSGSIZE;
        } else {
            rc = conn->tops->recv_bulk(conn->t, call->bulk_in, h->bulk_len);
            call->bulk_in_len = h->bulk_len;
        }
        if (rc < 0) {
            *fatal = rc;
            status = CKPT_E_CLOSED;
        }
    }
    call->resp_body = body;
    call->resp_body_len = h->body_len;
    call->status = status;
    bool mine;
    pthread_mutex_lock(&conn->lock);
    call->priv_flags &= ~CALL_RECEIVING;
    if (call->priv_flags & CALL_SENDING) {
        call->priv_flags |= CALL_RESPONDED; /* its sender completes it */
        mine = false;
    } else {
        pending_take_locked(conn, h->req_id);
        mine = true;
    }
    pthread_mutex_unlock(&conn->lock);
    if (mine)
        call_complete(call, status);
}

static void reader_reply_error(ckpt_conn *conn, const struct ckpt_hdr *h, int status)
{
    if (h->flags & CKPT_MSG_F_ONEWAY)
        return;
    int rc = conn_send(conn, h->opcode, CKPT_MSG_F_RESPONSE, status, h->req_id, NULL, 0,
                       NULL, 0, NULL, 0);
    if (rc < 0)
        conn_fail(conn, rc);
}

static void reader_handle_request(ckpt_conn *conn, const struct ckpt_hdr *h,
                                  uint8_t *body, int *fatal)
{
    if (h->opcode == CKPT_OP_HELLO || h->opcode == CKPT_OP_AUTH) {
        ckpt_free(body);
        CKPT_LOG_WARN("net: %s sent a handshake message after the handshake",
                      ckpt_conn_peer(conn));
        *fatal = CKPT_E_PROTO;
        return;
    }
    const struct ckpt_server_ops *ops = conn->ops;
    int early = 0;
    if (h->opcode == CKPT_OP_PING && h->bulk_len == 0) {
        ckpt_free(body);
        reader_reply_error(conn, h, 0);
        return;
    }
    if (!ops || !ops->handle)
        early = -EOPNOTSUPP;
    struct ckpt_req *req = early ? NULL : ckpt_calloc(1, sizeof(*req));
    if (!early && !req)
        early = -ENOMEM;
    void *bulk = NULL;
    bool server_owned = false;
    if (!early && h->bulk_len) {
        if (ops->bulk_alloc) {
            early = ops->bulk_alloc(conn->ctx, h, &bulk);
            server_owned = early == 0;
            if (early > 0)
                early = -EIO;
        } else {
            bulk = ckpt_net_buf_alloc(conn->net, h->bulk_len);
            if (!bulk)
                early = -ENOMEM;
        }
    }
    int rc = 0;
    if (h->bulk_len)
        rc = conn->tops->recv_bulk(conn->t, early ? NULL : bulk, h->bulk_len);
    if (rc < 0) {
        *fatal = rc;
        early = early ? early : rc;
    }
    if (early) {
        if (bulk && !server_owned)
            ckpt_net_buf_free(conn->net, bulk, h->bulk_len);
        else if (bulk && ops->bulk_free)
            ops->bulk_free(conn->ctx, bulk);
        ckpt_free(req);
        ckpt_free(body);
        if (!*fatal)
            reader_reply_error(conn, h, early);
        return;
    }
    ckpt_conn_get(conn);
    req->conn = conn;
    req->hdr = *h;
    req->body = body;
    req->body_len = h->body_len;
    req->bulk = bulk;
    req->bulk_len = h->bulk_len;
    req->bulk_server_owned = server_owned;
    ops->handle(conn->ctx, req);
}

static void server_conn_gone(ckpt_conn *conn);

static void *conn_reader(void *arg)
{
    ckpt_conn *conn = arg;
    int fatal = 0;

    if (conn->srv) {
        fatal = handshake_server(conn);
        if (fatal == 0 && conn->ops && conn->ops->conn_open)
            conn->ops->conn_open(conn->ctx, conn);
    }
    while (!fatal) {
        uint8_t raw[CKPT_HDR_SIZE];
        struct ckpt_hdr h;
        uint8_t *body = NULL;
        fatal = conn->tops->recv_msg(conn->t, true, raw, &h, &body);
        if (fatal < 0)
            break;
        if (ckpt_hdr_verify(raw, body, h.body_len) < 0) {
            ckpt_free(body);
            fatal = CKPT_E_CRC;
            break;
        }
        if (h.flags & CKPT_MSG_F_RESPONSE)
            reader_handle_response(conn, &h, body, &fatal);
        else
            reader_handle_request(conn, &h, body, &fatal);
    }
    if (fatal != CKPT_E_CLOSED && fatal != CKPT_E_AUTH && ckpt_conn_is_open(conn))
        CKPT_LOG_WARN("net: closing connection with %s (%s): " CKPT_RC_FMT,
                      ckpt_conn_peer(conn), conn->peer_name, CKPT_RC_ARGS(fatal));
    conn_fail(conn, fatal);
    if (conn->srv && conn->ops && conn->ops->conn_closed)
        conn->ops->conn_closed(conn->ctx, conn);
    ckpt_net *net = conn->net;
    if (conn->srv)
        server_conn_gone(conn);
    ckpt_conn_put(conn);
    pthread_mutex_lock(&net->lock);
    net->nreaders--;
    pthread_cond_broadcast(&net->cond);
    pthread_mutex_unlock(&net->lock);
    return NULL;
}

static int start_reader(ckpt_conn *conn)
{
    pthread_attr_t attr;
    pthread_t tid;
    ckpt_net *net = conn->net;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    ckpt_conn_get(conn);
    pthread_mutex_lock(&net->lock);
    net->nreaders++;
    pthread_mutex_unlock(&net->lock);
    int rc = pthread_create(&tid, &attr, conn_reader, conn);
    pthread_attr_destroy(&attr);
    if (rc) {
        pthread_mutex_lock(&net->lock);
        net->nreaders--;
        pthread_cond_broadcast(&net->cond);
        pthread_mutex_unlock(&net->lock);
        ckpt_conn_put(conn);
        return -rc;
    }
    return 0;
}

/* The transport connection: RDMA or TCP as the net's policy says (see
 * ckpt_net_connect_ex). */
static int transport_connect(ckpt_net *net, const char *host, uint16_t port,
                             uint16_t rdma_port, const struct ckpt_transport_ops **out_tops,
                             struct ckpt_tconn **out)
{
    int rc;
    uint32_t ctmo = net->opts.connect_timeout_ms, iotmo = net->opts.io_timeout_ms;
    if (net->opts.transport == CKPT_TRANSPORT_RDMA && !rdma_port)
        return -EPROTONOSUPPORT;
    if (net->rdma_ctx && rdma_port) {
        rc = ckpt_transport_rdma.connect(net->rdma_ctx, host, rdma_port, ctmo, iotmo, out);
        if (rc == 0) {
            *out_tops = &ckpt_transport_rdma;
            return 0;
        }
        if (net->opts.transport == CKPT_TRANSPORT_RDMA || !port)
            return rc;
        CKPT_LOG_DEBUG("net: RDMA to %s:%u failed (" CKPT_RC_FMT "), trying TCP", host,
                       (unsigned)rdma_port, CKPT_RC_ARGS(rc));
    }
    if (!port)
        return -EINVAL;
    rc = ckpt_transport_tcp.connect(NULL, host, port, ctmo, iotmo, out);
    if (rc == 0)
        *out_tops = &ckpt_transport_tcp;
    return rc;
}

int ckpt_net_connect(ckpt_net *net, const char *host, uint16_t port,
                     const struct ckpt_server_ops *ops, void *ctx, ckpt_conn **out)
{
    return ckpt_net_connect_ex(net, host, port, port, ops, ctx, out);
}

int ckpt_net_connect_ex(ckpt_net *net, const char *host, uint16_t port, uint16_t rdma_port,
                        const struct ckpt_server_ops *ops, void *ctx, ckpt_conn **out)
{
    struct ckpt_tconn *t = NULL;
    ckpt_conn *conn = NULL;
    const struct ckpt_transport_ops *tops = NULL;
    if (!net || !host || !out)
        return -EINVAL;
    int rc = transport_connect(net, host, port, rdma_port, &tops, &t);
    if (rc < 0)
        return rc;
    rc = conn_new(net, tops, t, ops, ctx, NULL, &conn);
    if (rc < 0) {
        tops->destroy(t);
        return rc;
    }
    rc = handshake_client(conn);
    if (rc == 0)
        rc = start_reader(conn);
    if (rc < 0) {
        ckpt_conn_close(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/* ---- timer ------------------------------------------------------------------ */

static void *net_timer(void *arg)
{
    ckpt_net *net = arg;
    pthread_mutex_lock(&net->lock);
    while (!net->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&net->cond, &net->lock, &ts);
        if (net->stopping)
            break;
        uint64_t now = ckpt_now_ns();
        struct ckpt_call *expired = NULL;
        for (ckpt_conn *c = net->conns; c; c = c->next) {
            pthread_mutex_lock(&c->lock);
            for (int b = 0; b < PENDING_BUCKETS; b++) {
                struct ckpt_call **pp = &c->pending[b];
                while (*pp) {
                    struct ckpt_call *call = *pp;
                    if (!call->priv_flags && call->priv_deadline_ns <= now) {
                        *pp = call->priv_next;
                        call->priv_next = expired;
                        expired = call;
                        call->priv_deadline_ns = 0;
                        if (c->tops->call_expired &&
                            c->tops->call_expired(c->t, call->priv_req_id)) {
                            /* c is open (it had a waiting call): its
                             * receive thread holds a reference. */
                            ckpt_conn_get(c);
                            call->priv_deadline_ns = EXPIRED_FENCE;
                        }
                    } else {
                        pp = &call->priv_next;
                    }
                }
            }
            pthread_mutex_unlock(&c->lock);
        }
        if (!expired)
            continue;
        pthread_mutex_unlock(&net->lock);
        while (expired) {
            struct ckpt_call *call = expired;
            expired = call->priv_next;
            call->priv_next = NULL;
            if (call->priv_deadline_ns == EXPIRED_FENCE) {
                CKPT_LOG_DEBUG("net: call %" PRIu64 " to %s expired with its buffer lent to "
                               "the peer: closing the connection",
                               call->priv_req_id, ckpt_conn_peer(call->priv_conn));
                conn_fail(call->priv_conn, -ETIMEDOUT);
                ckpt_conn_put(call->priv_conn);
            }
            call_complete(call, -ETIMEDOUT);
        }
        pthread_mutex_lock(&net->lock);
    }
    pthread_mutex_unlock(&net->lock);
    return NULL;
}

/* ---- servers ------------------------------------------------------------------ */

static void server_conn_gone(ckpt_conn *conn)
{
    ckpt_server *srv = conn->srv;
    pthread_mutex_lock(&srv->lock);
    if (conn->sprev)
        conn->sprev->snext = conn->snext;
    else
        srv->conns = conn->snext;
    if (conn->snext)
        conn->snext->sprev = conn->sprev;
    conn->sprev = conn->snext = NULL;
    srv->nreaders--;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

static void *server_acceptor(void *arg)
{
    struct srv_listener *sl = arg;
    ckpt_server *srv = sl->srv;
    ckpt_net *net = srv->net;
    for (;;) {
        struct ckpt_tconn *t = NULL;
        int rc = sl->tops->accept(sl->l, &t);
        if (rc == CKPT_E_CLOSED)
            break;
        if (rc < 0) {
            CKPT_LOG_WARN("net: accept failed: " CKPT_RC_FMT, CKPT_RC_ARGS(rc));
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        ckpt_conn *conn = NULL;
        rc = conn_new(net, sl->tops, t, srv->ops, srv->ctx, srv, &conn);
        if (rc < 0) {
            sl->tops->destroy(t);
            continue;
        }
        pthread_mutex_lock(&srv->lock);
        conn->snext = srv->conns;
        if (srv->conns)
            srv->conns->sprev = conn;
        srv->conns = conn;
        srv->nreaders++;
        pthread_mutex_unlock(&srv->lock);
        rc = start_reader(conn);
        if (rc < 0) {
            CKPT_LOG_WARN("net: cannot start a thread for %s: " CKPT_RC_FMT,
                          ckpt_conn_peer(conn), CKPT_RC_ARGS(rc));
            conn_fail(conn, rc);
            server_conn_gone(conn);
        }
        ckpt_conn_put(conn); /* the reader (and requests) hold their own */
    }
    return NULL;
}

/*
 * TCP on host:port, and on a net with RDMA also RDMA on the same port
 * number (rdma_cm has its own port space), so that a client that knows one
 * port can reach either.  With port 0 the TCP port is picked first and
 * RDMA follows; if RDMA cannot have that number, both try again.  An auto
 * net whose RDMA listener cannot start serves TCP only.
 */
static int server_listen(ckpt_server *srv, const char *host, uint16_t port)
{
    ckpt_net *net = srv->net;
    uint32_t iotmo = net->opts.io_timeout_ms;
    int rc = 0;
    for (int attempt = 0; attempt < 16; attempt++) {
        rc = ckpt_transport_tcp.listen(NULL, host, port, iotmo, &srv->ls[0].l);
        if (rc < 0)
            return rc;
        if (!net->rdma_ctx)
            return 0;
        uint16_t p = ckpt_transport_tcp.listen_port(srv->ls[0].l);
        rc = ckpt_transport_rdma.listen(net->rdma_ctx, host, p, iotmo, &srv->ls[1].l);
        if (rc == 0)
            return 0;
        if (rc == -EADDRINUSE && port == 0) {
            ckpt_transport_tcp.listen_free(srv->ls[0].l);
            srv->ls[0].l = NULL;
            continue;
        }
        break;
    }
    srv->ls[1].l = NULL;
    if (net->opts.transport == CKPT_TRANSPORT_AUTO && srv->ls[0].l) {
        CKPT_LOG_INFO("net: serving %s:%u over TCP only: RDMA listen failed: " CKPT_RC_FMT,
                      host ? host : "*", (unsigned)ckpt_transport_tcp.listen_port(srv->ls[0].l),
                      CKPT_RC_ARGS(rc));
        return 0;
    }
    if (srv->ls[0].l)
        ckpt_transport_tcp.listen_free(srv->ls[0].l);
    srv->ls[0].l = NULL;
    return rc;
}

int ckpt_server_start(ckpt_net *net, const char *host, uint16_t port,
                      const struct ckpt_server_ops *ops, void *ctx, ckpt_server **out)
{
    if (!net || !ops || !ops->handle || !out)
        return -EINVAL;
    ckpt_server *srv = ckpt_calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->net = net;
    srv->ops = ops;
    srv->ctx = ctx;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    srv->ls[0].tops = &ckpt_transport_tcp;
    srv->ls[1].tops = &ckpt_transport_rdma;
    int rc = server_listen(srv, host, port);
    if (rc < 0)
        goto out_free;
    for (int i = 0; i < 2; i++) {
        srv->ls[i].srv = srv;
        if (!srv->ls[i].l)
            continue;
        rc = -pthread_create(&srv->ls[i].acceptor, NULL, server_acceptor, &srv->ls[i]);
        if (rc < 0)
            goto out_listen;
        srv->ls[i].started = true;
    }
    *out = srv;
    return 0;
out_listen:
    for (int i = 0; i < 2; i++) {
        if (srv->ls[i].started) {
            srv->ls[i].tops->listen_shutdown(srv->ls[i].l);
            pthread_join(srv->ls[i].acceptor, NULL);
        }
        if (srv->ls[i].l)
            srv->ls[i].tops->listen_free(srv->ls[i].l);
    }
out_free:
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    ckpt_free(srv);
    return rc;
}

uint16_t ckpt_server_port(const ckpt_server *srv)
{
    return srv->ls[0].tops->listen_port(srv->ls[0].l);
}

uint16_t ckpt_server_rdma_port(const ckpt_server *srv)
{
    return srv->ls[1].l ? srv->ls[1].tops->listen_port(srv->ls[1].l) : 0;
}

void ckpt_server_stop(ckpt_server *srv)
{
    if (!srv)
        return;
    for (int i = 0; i < 2; i++) {
        if (srv->ls[i].started) {
            srv->ls[i].tops->listen_shutdown(srv->ls[i].l);
            pthread_join(srv->ls[i].acceptor, NULL);
        }
    }
    pthread_mutex_lock(&srv->lock);
    for (;;) {
        ckpt_conn *victim = NULL;
        for (ckpt_conn *c = srv->conns; c; c = c->snext) {
            if (ckpt_conn_is_open(c)) {
                victim = c;
                ckpt_conn_get(c);
                break;
            }
        }
        if (!victim)
            break;
        pthread_mutex_unlock(&srv->lock);
        conn_fail(victim, CKPT_E_CLOSED);
        ckpt_conn_put(victim);
        pthread_mutex_lock(&srv->lock);
    }
    while (srv->nreaders > 0)
        pthread_cond_wait(&srv->cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    for (int i = 0; i < 2; i++)
        if (srv->ls[i].l)
            srv->ls[i].tops->listen_free(srv->ls[i].l);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    ckpt_free(srv);
}

/* ---- peers ---------------------------------------------------------------------- */

int ckpt_peer_create(ckpt_net *net, const char *host, uint16_t port, ckpt_peer **out)
{
    return ckpt_peer_create_ex(net, host, port, port, out);
}

int ckpt_peer_create_ex(ckpt_net *net, const char *host, uint16_t port, uint16_t rdma_port,
                        ckpt_peer **out)
{
    if (!net || !host || strlen(host) >= sizeof(((ckpt_peer *)0)->host))
        return -EINVAL;
    ckpt_peer *p = ckpt_calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->net = net;
    pthread_mutex_init(&p->lock, NULL);
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = port;
    p->rdma_port = rdma_port;
    *out = p;
    return 0;
}

void ckpt_peer_destroy(ckpt_peer *peer)
{
    if (!peer)
        return;
    ckpt_conn_close(peer->conn);
    pthread_mutex_destroy(&peer->lock);
    ckpt_free(peer);
}

int ckpt_peer_set_addr(ckpt_peer *peer, const char *host, uint16_t port)
{
    return ckpt_peer_set_addr_ex(peer, host, port, port);
}

int ckpt_peer_set_addr_ex(ckpt_peer *peer, const char *host, uint16_t port, uint16_t rdma_port)
{
    if (!host || strlen(host) >= sizeof(peer->host))
        return -EINVAL;
    pthread_mutex_lock(&peer->lock);
    ckpt_conn *old = peer->conn;
    peer->conn = NULL;
    snprintf(peer->host, sizeof(peer->host), "%s", host);
    peer->port = port;
    peer->rdma_port = rdma_port;
    peer->backoff_ms = 0;
    peer->next_try_ns = 0;
    pthread_mutex_unlock(&peer->lock);
    ckpt_conn_close(old);
    return 0;
}

void ckpt_peer_reset_backoff(ckpt_peer *peer)
{
    pthread_mutex_lock(&peer->lock);
    peer->backoff_ms = 0;
    peer->next_try_ns = 0;
    pthread_mutex_unlock(&peer->lock);
}

const char *ckpt_peer_transport(ckpt_peer *peer)
{
    const char *t = NULL;
    pthread_mutex_lock(&peer->lock);
    if (peer->conn && ckpt_conn_is_open(peer->conn))
        t = ckpt_conn_transport(peer->conn);
    pthread_mutex_unlock(&peer->lock);
    return t;
}

int ckpt_peer_conn(ckpt_peer *peer, ckpt_conn **out)
{
    int rc = 0;
    ckpt_conn *dead = NULL;
    pthread_mutex_lock(&peer->lock);
    if (peer->conn && !ckpt_conn_is_open(peer->conn)) {
        dead = peer->conn;
        peer->conn = NULL;
    }
    if (!peer->conn) {
        uint64_t now = ckpt_now_ns();
        if (now < peer->next_try_ns) {
            rc = peer->last_err ? peer->last_err : CKPT_E_CLOSED;
        } else {
            rc = ckpt_net_connect_ex(peer->net, peer->host, peer->port, peer->rdma_port, NULL,
                                     NULL, &peer->conn);
            if (rc < 0) {
                peer->conn = NULL;
                peer->backoff_ms = peer->backoff_ms ? peer->backoff_ms * 2 : 100;
                if (peer->backoff_ms > 5000)
                    peer->backoff_ms = 5000;
                peer->next_try_ns = ckpt_now_ns() + (uint64_t)peer->backoff_ms * 1000000ull;
                peer->last_err = rc;
            } else {
                peer->backoff_ms = 0;
                peer->next_try_ns = 0;
                peer->last_err = 0;
            }
        }
    }
    if (rc == 0) {
        ckpt_conn_get(peer->conn);
        *out = peer->conn;
    }
    pthread_mutex_unlock(&peer->lock);
    ckpt_conn_put(dead);
    return rc;
}

int ckpt_peer_call(ckpt_peer *peer, struct ckpt_call *call)
{
    ckpt_conn *conn = NULL;
    int rc = ckpt_peer_conn(peer, &conn);
    if (rc < 0) {
        call->status = rc;
        return rc;
    }
    rc = ckpt_conn_call(conn, call);
    ckpt_conn_put(conn);
    return rc;
}

int ckpt_peer_submit(ckpt_peer *peer, struct ckpt_call *call)
{
    ckpt_conn *conn = NULL;
    int rc = ckpt_peer_conn(peer, &conn);
    if (rc < 0)
        return rc;
    rc = ckpt_conn_submit(conn, call);
    ckpt_conn_put(conn);
    return rc;
}

/* ---- same host ----------------------------------------------------------- */

int ckpt_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int ckpt_uuid_parse(const char *s, uint8_t out[16])
{
    uint8_t tmp[16];
    size_t p = 0;
    if (!s || strlen(s) != 36)
        return -EINVAL;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (s[p++] != '-')
                return -EINVAL;
        }
        int hi = ckpt_hexval(s[p]), lo = ckpt_hexval(s[p + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        tmp[i] = (uint8_t)(hi << 4 | lo);
        p += 2;
    }
    memcpy(out, tmp, sizeof(tmp));
    return 0;
}

int ckpt_host_id(uint8_t out[CKPT_NET_HOST_ID_LEN])
{
    char buf[64];
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return -errno;
    char *s = fgets(buf, sizeof(buf), f);
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (!s)
        return err ? err : CKPT_E_PROTO;
    buf[strcspn(buf, "\n")] = '\0';
    return ckpt_uuid_parse(buf, out) == 0 ? 0 : CKPT_E_PROTO;
}

/*
 * node_reg.c - registration with ckpt-meta and heartbeats (node_reg.h).
 *
 * DESIGN
 *
 * Thread.  One, node_reg_main(), serving no queue: it loops over the state
 * machine below, sleeping on r->cond (CLOCK_MONOTONIC) between steps so
 * node_reg_stop() can wake it at once.
 *
 *             +--------------------------------------------------+
 *             |                                                  |
 *             v     NODE_REGISTER ok (ids persisted, published)  |
 *     UNREGISTERED ---------------------------------------> REGISTERED
 *       ^   |  reg_register()                                |   |
 *       |   |  fails: backoff 100 ms..heartbeat_ms, retry    |   | every
 *       |   +-----------------------------------------------'|   | heartbeat_ms:
 *       |                                                    |   | reg_heartbeat()
 *       |   meta answers -ENOENT, or the peer's connection   |   |
 *       +---- is not the one we registered on (reconnected:  <---+
 *             meta restarted or the network came back)
 *
 * "Registered" is tied to a connection: r->reg_conn holds a reference to
 * the connection the last NODE_REGISTER succeeded on, so it cannot be freed
 * and its address reused by a new connection; ckpt_peer hands out a
 * different connection after every reconnect, and the pointer comparison
 * in node_reg_main() then sends a fresh NODE_REGISTER.  Registration is
 * idempotent on meta's side (same uuid -> same ids), so re-registering after
 * a network blip costs one RPC.
 *
 * Ids.  The answer's node id and target ids are written into every target
 * whose identity differs (node_target_set_ids: durable when it returns)
 * before they are published to the chunk service through the atomic
 * struct node_tgt.id.  If persisting fails the registration counts as failed
 * and is retried; the service keeps serving the old ids meanwhile.  If meta
 * answers ids different from those a target already had (meta lost its
 * database, or an operator re-created the node), the new ids win and a
 * warning names both.
 *
 * Locks: r->lock guards the status fields, stopping and cur_conn.  It is
 * never held across an RPC or disk I/O.
 *
 * Known limits: one RPC at a time; a meta that hangs without closing the
 * connection delays the next heartbeat by the call timeout (at most
 * HB_TIMEOUT_MAX_MS).
 */
#include "node_reg.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "proto.h"

#define REG_TIMEOUT_MS 5000u
#define HB_TIMEOUT_MAX_MS 5000u

struct node_reg {
    ckpt_net *net;            /* borrowed; immutable */
    ckpt_peer *peer;          /* used by the thread only */
    struct node_tgt *tgts;    /* borrowed; .id written by the thread only */
    uint32_t n;               /* immutable */
    char meta[CKPT_HOST_MAX + 8];    /* "host:port", for messages */
    char name[CKPT_NAME_MAX + 1];    /* immutable */
    char rack[CKPT_NAME_MAX + 1];    /* immutable */
    char host[CKPT_HOST_MAX + 1];    /* immutable */
    uint16_t port;                   /* immutable */
    uint16_t rdma_port;              /* immutable; 0: TCP only */
    uint8_t uuid[CKPT_NODE_UUID_LEN]; /* immutable */
    ckpt_conn *reg_conn;      /* referenced; thread only (see DESIGN) */
    pthread_t thread;

    pthread_mutex_t lock;
    pthread_cond_t cond;      /* CLOCK_MONOTONIC; stop and status changes */
    bool stopping;            /* protected by lock */
    ckpt_conn *cur_conn;      /* protected by lock: conn of the RPC in
                                 flight (referenced), so stop can close it */
    uint32_t heartbeat_ms;    /* protected by lock */
    struct node_reg_status st; /* protected by lock */
};

/* ---- small helpers -------------------------------------------------- */

static bool is_transport_err(int rc)
{
    return rc == CKPT_E_CLOSED || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
           rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -ECONNRESET ||
           rc == CKPT_E_AUTH || rc == CKPT_E_PROTO || rc == CKPT_E_VERSION;
}

/* Sleep until deadline_ns (monotonic) or stop.  @return true when stopping. */
static bool wait_until(node_reg *r, uint64_t deadline_ns)
{
    pthread_mutex_lock(&r->lock);
    while (!r->stopping && ckpt_now_ns() < deadline_ns) {
        struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
                              .tv_nsec = (long)(deadline_ns % 1000000000ull)};
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    bool stop = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return stop;
}

static void set_err(node_reg *r, int rc)
{
    pthread_mutex_lock(&r->lock);
    r->st.last_err = rc;
    if (rc < 0)
        r->st.registered = 0;
    pthread_mutex_unlock(&r->lock);
}

/* Run one call on conn, registered in cur_conn so node_reg_stop() can cut
 * it short.  @return the call's status (response body left in *call). */
static int reg_call(node_reg *r, ckpt_conn *conn, struct ckpt_call *call)
{
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
        pthread_mutex_unlock(&r->lock);
        return CKPT_E_CLOSED;
    }
    ckpt_conn_get(conn);
    r->cur_conn = conn;
    pthread_mutex_unlock(&r->lock);
    int rc = ckpt_conn_call(conn, call);
    pthread_mutex_lock(&r->lock);
    r->cur_conn = NULL;
    pthread_mutex_unlock(&r->lock);
    ckpt_conn_put(conn);
    return rc;
}

/* The node id the targets agree on (node_svc refused disagreeing ones). */
static uint32_t stored_node_id(node_reg *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        struct node_target_ids ids;
        node_target_get_ids(r->tgts[i].t, &ids);
        if (ids.node_id)
            return ids.node_id;
    }
    return 0;
}

static void fill_stat(struct node_tgt *tg, uint32_t id, struct ckpt_target_stat *out)
{
    struct node_target_stats ts;
    memset(out, 0, sizeof(*out));
    out->id = id;
    if (node_target_stats(tg->t, &ts) == 0) {
        out->capacity = ts.capacity_bytes;
        out->free = ts.usable_bytes;
        out->used = ts.chunk_bytes;
        out->chunks = ts.chunk_count;
    }
}

/* ---- NODE_REGISTER -------------------------------------------------- */

/* Persist and publish the ids of a registration answer. */
static int reg_apply(node_reg *r, const struct ckpt_msg_node_register_resp *resp)
{
    for (uint32_t i = 0; i < r->n; i++) {
        for (uint32_t j = 0; j < i; j++) {
            if (resp->target_ids[i] == resp->target_ids[j]) {
                CKPT_LOG_ERR("ckpt-meta %s gave target id %" PRIu32 " to both %s "
                             "and %s: registration refused", r->meta,
                             resp->target_ids[i], r->tgts[j].path, r->tgts[i].path);
                return CKPT_E_PROTO;
            }
        }
    }
    for (uint32_t i = 0; i < r->n; i++) {
        struct node_tgt *tg = &r->tgts[i];
        struct node_target_ids ids;
        node_target_get_ids(tg->t, &ids);
        if (ids.node_id == resp->node_id && ids.target_id == resp->target_ids[i])
            continue;
        if ((ids.node_id && ids.node_id != resp->node_id) ||
            (ids.target_id && ids.target_id != resp->target_ids[i]))
            CKPT_LOG_WARN("target %s: ckpt-meta %s assigned node id %" PRIu32
                          " target id %" PRIu32 ", replacing node id %" PRIu32
                          " target id %" PRIu32, tg->path, r->meta, resp->node_id,
                          resp->target_ids[i], ids.node_id, ids.target_id);
        int rc = node_target_set_ids(tg->t, resp->node_id, resp->target_ids[i]);
        if (rc < 0)
            return rc; /* logged by node_target; earlier targets are done */
    }
    for (uint32_t i = 0; i < r->n; i++)
        atomic_store(&r->tgts[i].id, resp->target_ids[i]);
    return 0;
}

static int reg_register(node_reg *r, ckpt_conn *conn)
{
    struct ckpt_msg_node_register *m = ckpt_calloc(1, sizeof(*m));
    struct ckpt_msg_node_register_resp resp;
    struct ckpt_call call = {0};
    struct ckpt_wbuf w;
    int rc;

    ckpt_wbuf_init(&w, NULL, 0);
    if (!m)
        return -ENOMEM;
    memcpy(m->uuid, r->uuid, sizeof(m->uuid));
    m->node_id = stored_node_id(r);
    snprintf(m->name, sizeof(m->name), "%s", r->name);
    snprintf(m->rack, sizeof(m->rack), "%s", r->rack);
    snprintf(m->host, sizeof(m->host), "%s", r->host);
    m->port = r->port;
    m->rdma_port = r->rdma_port;
    m->transports = CKPT_XPORT_TCP | (r->rdma_port ? CKPT_XPORT_RDMA : 0u);
    m->n = r->n;
    for (uint32_t i = 0; i < r->n; i++) {
        struct ckpt_target_stat st;
        fill_stat(&r->tgts[i], atomic_load(&r->tgts[i].id), &st);
        m->t[i].id = st.id;
        m->t[i].capacity = st.capacity;
        m->t[i].free = st.free;
        snprintf(m->t[i].path, sizeof(m->t[i].path), "%s", r->tgts[i].path);
    }
    if ((rc = ckpt_msg_node_register_encode(&w, m)) < 0)
        goto out;
    call.opcode = CKPT_OP_NODE_REGISTER;
    call.body = w.p;
    call.body_len = (uint32_t)w.len;
    call.timeout_ms = REG_TIMEOUT_MS;
    if ((rc = reg_call(r, conn, &call)) < 0)
        goto out;
    rc = ckpt_msg_node_register_resp_decode(call.resp_body, call.resp_body_len, &resp);
    if (rc == 0 && resp.n != r->n)
        rc = CKPT_E_PROTO;
    if (rc < 0) {
        CKPT_LOG_ERR("ckpt-meta %s: malformed NODE_REGISTER answer", r->meta);
        goto out;
    }
    if ((rc = reg_apply(r, &resp)) < 0)
        goto out;
    pthread_mutex_lock(&r->lock);
    r->heartbeat_ms = resp.heartbeat_ms;
    r->st.node_id = resp.node_id;
    r->st.epoch = resp.epoch;
    r->st.registrations++;
    r->st.registered = 1;
    r->st.last_err = 0;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    CKPT_LOG_INFO("registered with ckpt-meta %s as node %" PRIu32 " (%s, %s:%u, %" PRIu32
                  " target%s, epoch %" PRIu64 ", heartbeat every %" PRIu32 " ms)",
                  r->meta, resp.node_id, r->name, r->host, (unsigned)r->port, r->n,
                  r->n == 1 ? "" : "s", resp.epoch, resp.heartbeat_ms);
out:
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    ckpt_free(m);
    return rc;
}

/* ---- HEARTBEAT ------------------------------------------------------- */

static int reg_heartbeat(node_reg *r, ckpt_conn *conn, uint32_t timeout_ms)
{
    struct ckpt_msg_heartbeat *m = ckpt_calloc(1, sizeof(*m));
    struct ckpt_msg_heartbeat_resp resp;
    struct ckpt_call call = {0};
    struct ckpt_wbuf w;
    int rc;

    ckpt_wbuf_init(&w, NULL, 0);
    if (!m)
        return -ENOMEM;
    pthread_mutex_lock(&r->lock);
    m->node_id = r->st.node_id;
    pthread_mutex_unlock(&r->lock);
    memcpy(m->uuid, r->uuid, sizeof(m->uuid));
    for (uint32_t i = 0; i < r->n; i++) {
        uint32_t id = atomic_load(&r->tgts[i].id);
        if (id)
            fill_stat(&r->tgts[i], id, &m->t[m->n++]);
    }
    if ((rc = ckpt_msg_heartbeat_encode(&w, m)) < 0)
        goto out;
    call.opcode = CKPT_OP_HEARTBEAT;
    call.body = w.p;
    call.body_len = (uint32_t)w.len;
    call.timeout_ms = timeout_ms;
    if ((rc = reg_call(r, conn, &call)) < 0)
        goto out;
    if ((rc = ckpt_msg_heartbeat_resp_decode(call.resp_body, call.resp_body_len, &resp)) < 0) {
        CKPT_LOG_ERR("ckpt-meta %s: malformed HEARTBEAT answer", r->meta);
        goto out;
    }
    pthread_mutex_lock(&r->lock);
    if (resp.epoch != r->st.epoch)
        CKPT_LOG_DEBUG("cluster map epoch %" PRIu64 " -> %" PRIu64, r->st.epoch, resp.epoch);
    r->st.epoch = resp.epoch;
    r->st.heartbeats++;
    r->st.last_err = 0;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
out:
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    ckpt_free(m);
    return rc;
}

/* ---- the thread -------------------------------------------------------- */

static void *node_reg_main(void *arg)
{
    node_reg *r = arg;
    uint32_t backoff_ms = 0;
    int logged_err = 0;  /* last error logged at WARN, to log changes only */
    uint64_t next_ns = ckpt_now_ns();

    while (!wait_until(r, next_ns)) {
        ckpt_conn *conn = NULL;
        uint64_t start = ckpt_now_ns();
        int rc = ckpt_peer_conn(r->peer, &conn);
        bool registering = rc == 0 && conn != r->reg_conn;
        if (registering) {
            rc = reg_register(r, conn);
            if (rc == 0) {
                ckpt_conn_put(r->reg_conn);
                r->reg_conn = conn;
                conn = NULL;
            }
        } else if (rc == 0) {
            pthread_mutex_lock(&r->lock);
            uint32_t hb = r->heartbeat_ms;
            pthread_mutex_unlock(&r->lock);
            uint32_t tmo = hb * 3 < HB_TIMEOUT_MAX_MS ? hb * 3 : HB_TIMEOUT_MAX_MS;
            rc = reg_heartbeat(r, conn, tmo);
            if (rc == -ENOENT) {
                CKPT_LOG_INFO("ckpt-meta %s does not know this node: registering again",
                              r->meta);
                ckpt_conn_put(r->reg_conn);
                r->reg_conn = NULL;
                set_err(r, rc);
                ckpt_conn_put(conn);
                next_ns = ckpt_now_ns();
                continue;
            }
        }
        ckpt_conn_put(conn);
        if (rc == 0) {
            if (logged_err)
                CKPT_LOG_INFO("ckpt-meta %s reachable again", r->meta);
            logged_err = 0;
            backoff_ms = 0;
            pthread_mutex_lock(&r->lock);
            uint32_t hb = r->heartbeat_ms;
            pthread_mutex_unlock(&r->lock);
            next_ns = start + (uint64_t)hb * 1000000ull;
            continue;
        }
        set_err(r, rc);
        if (rc != logged_err) {
            CKPT_LOG_WARN("ckpt-meta %s: %s failed: " CKPT_RC_FMT "; retrying (chunk I/O "
                          "goes on)", r->meta,
                          registering ? "registration" : conn || !is_transport_err(rc)
                                                           ? "heartbeat" : "connect",
                          CKPT_RC_ARGS(rc));
            logged_err = rc;
        }
        if (is_transport_err(rc) && !registering) {
            /* The connection is suspect: register again on the next one. */
            ckpt_conn_put(r->reg_conn);
            r->reg_conn = NULL;
        }
        /* Back off, but never longer than a heartbeat interval: a
         * restarted ckpt-meta counts restored nodes UP only until they miss
         * heartbeats, so a node must find it again within about one. */
        pthread_mutex_lock(&r->lock);
        uint32_t cap = r->heartbeat_ms;
        pthread_mutex_unlock(&r->lock);
        if (cap < NODE_REG_BACKOFF_MIN_MS || cap > NODE_REG_BACKOFF_MAX_MS)
            cap = NODE_REG_BACKOFF_MAX_MS;
        backoff_ms = backoff_ms ? backoff_ms * 2 : NODE_REG_BACKOFF_MIN_MS;
        if (backoff_ms > cap)
            backoff_ms = cap;
        next_ns = ckpt_now_ns() + (uint64_t)backoff_ms * 1000000ull;
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------ */

int node_reg_start(const struct node_reg_opts *o, ckpt_net *net, struct node_tgt *tgts,
                   uint32_t n, node_reg **out)
{
    pthread_condattr_t ca;
    int rc;
    if (!o || !net || !tgts || !out || n == 0 || n > CKPT_NODE_MAX_TARGETS ||
        !o->meta_host || !o->name || !*o->name || strlen(o->name) > CKPT_NAME_MAX ||
        (o->rack && strlen(o->rack) > CKPT_NAME_MAX) || !o->host || !*o->host ||
        strlen(o->host) > CKPT_HOST_MAX || strlen(o->meta_host) > CKPT_HOST_MAX ||
        !o->port || !o->uuid)
        return -EINVAL;
    node_reg *r = ckpt_calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->net = net;
    r->tgts = tgts;
    r->n = n;
    snprintf(r->meta, sizeof(r->meta), "%s:%u", o->meta_host, (unsigned)o->meta_port);
    snprintf(r->name, sizeof(r->name), "%s", o->name);
    snprintf(r->rack, sizeof(r->rack), "%s", o->rack ? o->rack : "");
    snprintf(r->host, sizeof(r->host), "%s", o->host);
    r->port = o->port;
    r->rdma_port = o->rdma_port;
    memcpy(r->uuid, o->uuid, sizeof(r->uuid));
    r->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : NODE_REG_HEARTBEAT_MS_DEFAULT;
    if ((rc = ckpt_peer_create(net, o->meta_host, o->meta_port, &r->peer)) < 0)
        goto out_free;
    if ((rc = -pthread_condattr_init(&ca)) < 0)
        goto out_peer;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = -pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc < 0)
        goto out_peer;
    pthread_mutex_init(&r->lock, NULL);
    if ((rc = -pthread_create(&r->thread, NULL, node_reg_main, r)) < 0)
        goto out_cond;
    *out = r;
    return 0;
out_cond:
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
out_peer:
    ckpt_peer_destroy(r->peer);
out_free:
    ckpt_free(r);
    return rc;
}

void node_reg_stop(node_reg *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    ckpt_conn *busy = r->cur_conn;
    if (busy)
        ckpt_conn_get(busy);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (busy)
        ckpt_conn_close(busy); /* fails the call in flight; drops our ref */
    pthread_join(r->thread, NULL);
    ckpt_conn_put(r->reg_conn);
    ckpt_peer_destroy(r->peer);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    ckpt_free(r);
}

void node_reg_status(node_reg *r, struct node_reg_status *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->st;
    pthread_mutex_unlock(&r->lock);
}

int node_reg_wait(node_reg *r, uint64_t min_registrations, uint64_t min_heartbeats,
                  uint32_t timeout_ms)
{
    uint64_t deadline = ckpt_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    while (r->st.registrations < min_registrations || r->st.heartbeats < min_heartbeats) {
        if (ckpt_now_ns() >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                              .tv_nsec = (long)(deadline % 1000000000ull)};
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

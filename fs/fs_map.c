/*
 * fs_map.c - the client's cluster map and per-node peers (fs_map.h).
 *
 * DESIGN
 *
 *   Thread: one refresh thread (entry: map_thread) that refetches the map
 *   every refresh_ms, or at once when kicked; fetch + apply are serialised
 *   by fetch_lock so a synchronous fs_map_refresh() never races it.
 *
 *   Data: nodes[] is an array of pointers to struct map_node, which are
 *   never freed before fs_map_destroy(): a peer handed to a caller stays
 *   valid for the client's life.  A node that leaves the map is kept and
 *   marked OUT.  targets[] is rebuilt on every change, sorted by id, and
 *   swapped in under the write lock; lookups binary-search it under the
 *   read lock.  Lock order: fetch_lock, then rw; lock (the thread's
 *   wake-up state) is never held with rw.
 *
 *   Suspicion lives in the node (suspect_until_ns, atomic): a failed call
 *   sets it to now + FS_MAP_SUSPECT_MS; a successful call, or ckpt-meta
 *   seeing the node come back UP after DOWN, clears it.
 *
 *   Cost: lookups O(log targets); apply O(nodes^2) over the (small) node
 *   list, fine up to thousands of nodes.
 */
#include "fs_map.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

#define FS_MAP_SUSPECT_MS 3000u
#define FS_MAP_MISS_REFRESH_MS 200u

struct map_node {
    uint32_t id;
    uint32_t state;                     /* enum ckpt_node_state; rw */
    char host[CKPT_HOST_MAX + 1];       /* rw */
    uint16_t port;                      /* rw */
    uint16_t rdma_port;                 /* rw; 0: the node offers no RDMA */
    ckpt_peer *peer;                    /* set once, then immutable */
    _Atomic uint64_t suspect_until_ns;
    /* Short-circuit reads: not before this time (UINT64_MAX: another
     * host, until the node's address changes). */
    _Atomic uint64_t local_off_until_ns;
    uint32_t addr_gen;                  /* bumped when the address changes; rw */
};

struct map_target {
    uint32_t id;
    uint32_t state;
    struct map_node *node;
    /* The target's chunks/ directory, as its node told a same-host read
     * (fs_read.c); valid while root_gen == node->addr_gen.  Owned. */
    char *local_root;
    uint32_t root_gen;
};

struct fs_map {
    ckpt_net *net;
    fs_map_fetch_fn fetch;
    void *ctx;
    uint32_t refresh_ms;
    pthread_mutex_t fetch_lock;
    pthread_rwlock_t rw;
    struct map_node **nodes;     /* protected by rw */
    uint32_t n_nodes, cap_nodes; /* protected by rw */
    struct map_target *targets;  /* protected by rw; sorted by id */
    uint32_t n_targets;          /* protected by rw */
    uint64_t epoch;              /* protected by rw */
    uint64_t fetches, changes;   /* protected by fetch_lock */
    _Atomic uint64_t suspects;
    _Atomic uint64_t last_miss_ns;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;                   /* protected by lock */
    bool kicked;                 /* protected by lock */
    pthread_t thread;
};

bool fs_map_is_conn_error(int rc)
{
    switch (rc) {
    case CKPT_E_CLOSED:
    case CKPT_E_PROTO:
    case CKPT_E_AUTH:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EHOSTUNREACH:
    case -EHOSTDOWN:
    case -ENETUNREACH:
    case -ENETDOWN:
    case -EPIPE:
    case -ENOTCONN:
        return true;
    default:
        return false;
    }
}

static void *map_thread(void *arg)
{
    fs_map *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        if (!m->kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += m->refresh_ms / 1000;
            ts.tv_nsec += (long)(m->refresh_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&m->cond, &m->lock, &ts);
            if (m->stop)
                break;
        }
        m->kicked = false;
        pthread_mutex_unlock(&m->lock);
        int rc = fs_map_refresh(m);
        if (rc < 0)
            CKPT_LOG_DEBUG("map: refresh failed: " CKPT_RC_FMT, CKPT_RC_ARGS(rc));
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int fs_map_create(ckpt_net *net, fs_map_fetch_fn fetch, void *ctx,
                  uint32_t refresh_ms, fs_map **out)
{
    pthread_condattr_t ca;
    fs_map *m;
    int rc;

    if (!net || !fetch || !out || refresh_ms < 10)
        return -EINVAL;
    m = ckpt_calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->net = net;
    m->fetch = fetch;
    m->ctx = ctx;
    m->refresh_ms = refresh_ms;
    pthread_mutex_init(&m->fetch_lock, NULL);
    pthread_rwlock_init(&m->rw, NULL);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cond, &ca);
    pthread_condattr_destroy(&ca);
    rc = -pthread_create(&m->thread, NULL, map_thread, m);
    if (rc < 0) {
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
        pthread_rwlock_destroy(&m->rw);
        pthread_mutex_destroy(&m->fetch_lock);
        ckpt_free(m);
        return rc;
    }
    (void)pthread_setname_np(m->thread, "fs-map");
    *out = m;
    return 0;
}

void fs_map_destroy(fs_map *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        ckpt_peer_destroy(m->nodes[i]->peer);
        ckpt_free(m->nodes[i]);
    }
    ckpt_free(m->nodes);
    for (uint32_t i = 0; i < m->n_targets; i++)
        ckpt_free(m->targets[i].local_root);
    ckpt_free(m->targets);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    pthread_rwlock_destroy(&m->rw);
    pthread_mutex_destroy(&m->fetch_lock);
    ckpt_free(m);
}

static struct map_node *node_find_locked(fs_map *m, uint32_t id)
{
    for (uint32_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i]->id == id)
            return m->nodes[i];
    return NULL;
}

static int target_cmp(const void *a, const void *b)
{
    const struct map_target *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool state_usable(uint32_t st)
{
    return st == CKPT_NODE_UP || st == CKPT_NODE_DRAINING;
}

int fs_map_apply(fs_map *m, const struct ckpt_msg_cluster_map_resp *resp)
{
    struct map_target *nt = NULL;
    int rc = 0;

    if (resp->unchanged)
        return 0;
    if (resp->n_targets) {
        nt = ckpt_calloc(resp->n_targets, sizeof(*nt));
        if (!nt)
            return -ENOMEM;
    }
    pthread_rwlock_wrlock(&m->rw);
    /* Room for every node of the map, so that no step below can fail half-way. */
    if (m->n_nodes + resp->n_nodes > m->cap_nodes) {
        uint32_t cap = m->n_nodes + resp->n_nodes + 16;
        struct map_node **nn = ckpt_realloc(m->nodes, cap * sizeof(*nn));
        if (!nn) {
            pthread_rwlock_unlock(&m->rw);
            ckpt_free(nt);
            return -ENOMEM;
        }
        m->nodes = nn;
        m->cap_nodes = cap;
    }
    /* Nodes absent from the new map are OUT. */
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        bool present = false;
        for (uint32_t j = 0; j < resp->n_nodes && !present; j++)
            present = resp->nodes[j].id == m->nodes[i]->id;
        if (!present)
            m->nodes[i]->state = CKPT_NODE_OUT;
    }
    for (uint32_t j = 0; j < resp->n_nodes; j++) {
        const struct ckpt_map_node *src = &resp->nodes[j];
        struct map_node *n = node_find_locked(m, src->id);
        if (!n) {
            n = ckpt_calloc(1, sizeof(*n));
            if (!n) {
                rc = -ENOMEM;
                continue;
            }
            n->id = src->id;
            n->state = CKPT_NODE_OUT;
            atomic_init(&n->suspect_until_ns, 0);
            atomic_init(&n->local_off_until_ns, 0);
            m->nodes[m->n_nodes++] = n;
        }
        uint16_t rport = (src->transports & CKPT_XPORT_RDMA) ? src->rdma_port : 0;
        bool addr_changed = strcmp(n->host, src->host) != 0 || n->port != src->port ||
                            n->rdma_port != rport;
        if (src->port && src->host[0] && (addr_changed || !n->peer)) {
            int prc = n->peer
                          ? ckpt_peer_set_addr_ex(n->peer, src->host, src->port, rport)
                          : ckpt_peer_create_ex(m->net, src->host, src->port, rport, &n->peer);
            if (prc < 0) {
                CKPT_LOG_WARN("map: node %u (%s) at %s:%u unusable: " CKPT_RC_FMT,
                              src->id, src->name, src->host, src->port, CKPT_RC_ARGS(prc));
                rc = rc ? rc : prc;
            } else {
                memcpy(n->host, src->host, sizeof(n->host));
                n->port = src->port;
                n->rdma_port = rport;
                atomic_store(&n->local_off_until_ns, 0); /* maybe moved here */
                n->addr_gen++;                           /* its directories too */
            }
        }
        if (!state_usable(n->state) && state_usable(src->state)) {
            /* Back from DOWN: forget our own suspicion and the backoff. */
            atomic_store(&n->suspect_until_ns, 0);
            if (n->peer)
                ckpt_peer_reset_backoff(n->peer);
        }
        if (n->state != src->state)
            CKPT_LOG_INFO("map: node %u (%s %s:%u) is %s", src->id, src->name, src->host,
                          src->port, ckpt_node_state_name(src->state));
        n->state = src->state;
    }
    uint32_t nn = 0;
    for (uint32_t i = 0; i < resp->n_targets; i++) {
        struct map_node *n = node_find_locked(m, resp->targets[i].node_id);
        if (!n)
            continue;
        nt[nn].id = resp->targets[i].id;
        nt[nn].state = resp->targets[i].state;
        nt[nn].node = n;
        nt[nn].local_root = NULL;
        nt[nn].root_gen = 0;
        nn++;
    }
    if (nn > 1)
        qsort(nt, nn, sizeof(*nt), target_cmp);
    /* Keep what same-host reads learnt of targets that stayed put. */
    for (uint32_t i = 0; i < m->n_targets; i++) {
        struct map_target *o = &m->targets[i];
        struct map_target key = {.id = o->id};
        struct map_target *t = o->local_root && nn
                                   ? bsearch(&key, nt, nn, sizeof(*nt), target_cmp)
                                   : NULL;
        if (t && t->node == o->node && o->root_gen == o->node->addr_gen) {
            t->local_root = o->local_root;
            t->root_gen = o->root_gen;
        } else {
            ckpt_free(o->local_root);
        }
    }
    ckpt_free(m->targets);
    m->targets = nt;
    m->n_targets = nn;
    m->epoch = resp->epoch;
    pthread_rwlock_unlock(&m->rw);
    return rc;
}

int fs_map_refresh(fs_map *m)
{
    struct ckpt_msg_cluster_map_resp resp;
    int rc;

    pthread_mutex_lock(&m->fetch_lock);
    pthread_rwlock_rdlock(&m->rw);
    uint64_t known = m->epoch;
    pthread_rwlock_unlock(&m->rw);
    memset(&resp, 0, sizeof(resp));
    rc = m->fetch(m->ctx, known, &resp);
    if (rc == 0) {
        m->fetches++;
        if (!resp.unchanged) {
            m->changes++;
            rc = fs_map_apply(m, &resp);
        }
        ckpt_msg_cluster_map_resp_free(&resp);
    }
    pthread_mutex_unlock(&m->fetch_lock);
    return rc;
}

void fs_map_kick(fs_map *m)
{
    pthread_mutex_lock(&m->lock);
    m->kicked = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static const struct map_target *target_find_locked(fs_map *m, uint32_t tid)
{
    uint32_t lo = 0, hi = m->n_targets;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->targets[mid].id == tid)
            return &m->targets[mid];
        if (m->targets[mid].id < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int fs_map_target(fs_map *m, uint32_t tid, ckpt_peer **out_peer,
                  enum fs_target_state *out_state)
{
    int rc = -ENOENT;

    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t && t->node->peer) {
        uint32_t st = t->node->state;
        if (!state_usable(st) || (t->state != CKPT_NODE_UP && t->state != CKPT_NODE_DRAINING))
            *out_state = FS_TARGET_DOWN;
        else if (atomic_load(&t->node->suspect_until_ns) > ckpt_now_ns())
            *out_state = FS_TARGET_SUSPECT;
        else
            *out_state = FS_TARGET_OK;
        *out_peer = t->node->peer;
        rc = 0;
    }
    pthread_rwlock_unlock(&m->rw);
    if (rc < 0) {
        /* A target we have never heard of: the map may be older than the
         * file's layout.  Refetch soon (rate-limited). */
        uint64_t now = ckpt_now_ns(), last = atomic_load(&m->last_miss_ns);
        if (now - last > FS_MAP_MISS_REFRESH_MS * 1000000ull &&
            atomic_compare_exchange_strong(&m->last_miss_ns, &last, now))
            fs_map_kick(m);
    }
    return rc;
}

bool fs_map_local_try(fs_map *m, uint32_t tid)
{
    bool ok = false;
    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t)
        ok = atomic_load(&t->node->local_off_until_ns) <= ckpt_now_ns();
    pthread_rwlock_unlock(&m->rw);
    return ok;
}

size_t fs_map_local_root(fs_map *m, uint32_t tid, char *dst, size_t cap)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t && t->local_root && t->root_gen == t->node->addr_gen &&
        atomic_load(&t->node->local_off_until_ns) <= ckpt_now_ns()) {
        n = strlen(t->local_root);
        if (n < cap)
            memcpy(dst, t->local_root, n + 1);
        else
            n = 0;
    }
    pthread_rwlock_unlock(&m->rw);
    return n;
}

bool fs_map_local_root_known(fs_map *m, uint32_t tid)
{
    bool ok = false;
    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t && t->local_root && t->root_gen == t->node->addr_gen)
        ok = atomic_load(&t->node->local_off_until_ns) <= ckpt_now_ns();
    pthread_rwlock_unlock(&m->rw);
    return ok;
}

void fs_map_set_local_root(fs_map *m, uint32_t tid, const char *root, size_t len)
{
    char *copy = ckpt_malloc(len + 1);
    if (!copy)
        return; /* then every chunk of it keeps asking its node */
    memcpy(copy, root, len);
    copy[len] = '\0';
    pthread_rwlock_wrlock(&m->rw);
    struct map_target *t = (struct map_target *)target_find_locked(m, tid);
    if (t) {
        ckpt_free(t->local_root);
        t->local_root = copy;
        t->root_gen = t->node->addr_gen;
        copy = NULL;
    }
    pthread_rwlock_unlock(&m->rw);
    ckpt_free(copy);
}

void fs_map_forget_local_root(fs_map *m, uint32_t tid)
{
    char *old = NULL;
    pthread_rwlock_wrlock(&m->rw);
    struct map_target *t = (struct map_target *)target_find_locked(m, tid);
    if (t) {
        old = t->local_root;
        t->local_root = NULL;
    }
    pthread_rwlock_unlock(&m->rw);
    ckpt_free(old);
}

void fs_map_local_off(fs_map *m, uint32_t tid, uint32_t for_ms)
{
    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t) {
        uint64_t until = for_ms ? ckpt_now_ns() + for_ms * 1000000ull : UINT64_MAX;
        atomic_store(&t->node->local_off_until_ns, until);
    }
    pthread_rwlock_unlock(&m->rw);
}

void fs_map_suspect(fs_map *m, uint32_t tid, int rc)
{
    if (!fs_map_is_conn_error(rc))
        return;
    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t) {
        uint64_t until = ckpt_now_ns() + FS_MAP_SUSPECT_MS * 1000000ull;
        uint64_t old = atomic_exchange(&t->node->suspect_until_ns, until);
        if (old < ckpt_now_ns()) {
            atomic_fetch_add(&m->suspects, 1);
            CKPT_LOG_WARN("map: node %u (%s:%u) failed a call (" CKPT_RC_FMT
                          "): skipping it for %u ms", t->node->id, t->node->host,
                          t->node->port, CKPT_RC_ARGS(rc), FS_MAP_SUSPECT_MS);
        }
    }
    pthread_rwlock_unlock(&m->rw);
    fs_map_kick(m);
}

void fs_map_absolve(fs_map *m, uint32_t tid)
{
    pthread_rwlock_rdlock(&m->rw);
    const struct map_target *t = target_find_locked(m, tid);
    if (t && atomic_load(&t->node->suspect_until_ns))
        atomic_store(&t->node->suspect_until_ns, 0);
    pthread_rwlock_unlock(&m->rw);
}

uint64_t fs_map_epoch(fs_map *m)
{
    pthread_rwlock_rdlock(&m->rw);
    uint64_t e = m->epoch;
    pthread_rwlock_unlock(&m->rw);
    return e;
}

void fs_map_get_stats(fs_map *m, struct fs_map_stats *out)
{
    pthread_mutex_lock(&m->fetch_lock);
    out->fetches = m->fetches;
    out->changes = m->changes;
    pthread_mutex_unlock(&m->fetch_lock);
    pthread_rwlock_rdlock(&m->rw);
    out->epoch = m->epoch;
    out->nodes = m->n_nodes;
    out->targets = m->n_targets;
    pthread_rwlock_unlock(&m->rw);
    out->suspects = atomic_load(&m->suspects);
}

size_t fs_map_describe(fs_map *m, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap)
        buf[0] = '\0';
    pthread_rwlock_rdlock(&m->rw);
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        const struct map_node *nd = m->nodes[i];
        const char *t = nd->peer ? ckpt_peer_transport(nd->peer) : NULL;
        int w = snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0,
                         "node %u %s:%u rdma_port=%u state=%s transport=%s\n", nd->id,
                         nd->host, (unsigned)nd->port, (unsigned)nd->rdma_port,
                         ckpt_node_state_name(nd->state), t ? t : "none");
        if (w > 0)
            n += (size_t)w;
    }
    pthread_rwlock_unlock(&m->rw);
    return n;
}

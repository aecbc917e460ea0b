/*
 * meta_cluster.c - the node registry of ckpt-meta: registration,
 * heartbeats, failure detection, the cluster map, placement of new files
 * and the space totals of statfs (msg_cluster.h).
 *
 * DESIGN
 *
 *   Persistent state (LMDB, committed with the registration that changed
 *   it): cl.sb "ids" -> next node id, next target id, boot count;
 *   cl.node id -> uuid, name, rack, address, its target ids; cl.uuid
 *   uuid -> node id; cl.target id -> owning node, capacity, free, path.
 *   A node that registers again (after a restart of either side) keeps its
 *   node id (found by uuid) and the target ids it presents, so ids survive
 *   both ckpt-meta's and the node's restarts.  Heartbeat figures (free
 *   space, chunk counts) are kept in memory only.
 *
 *   Node states (memory; the epoch bumps on every change):
 *
 *     NODE_REGISTER ---> DOWN (registered, not heard yet); an UP node
 *         registering again unchanged (same address and targets) stays UP
 *         DOWN/OUT --first heartbeat (meta_di_heartbeat)--> UP
 *         UP --silent for down_after (meta_cluster_tick)--> DOWN
 *         DOWN --silent for out_after (meta_cluster_tick)--> OUT
 *
 *   DRAINING (ckpt-admin node drain, meta_cluster_node_drain) is UP for
 *   everything but placement and rebuild targets: a heartbeating draining
 *   node shows DRAINING instead of UP, stays readable, receives deletions,
 *   goes DOWN/OUT when silent like an UP node, and is DRAINING again at its
 *   next heartbeat.  The flag is persisted by meta_admin.c (adm.hold).
 *   REMOVE (meta_cluster_node_remove_apply + _forget) deletes a node and
 *   its targets from the tables and from memory.
 *
 *   After a restart of ckpt-meta every known node starts UP as if just
 *   heard, so that placement works at once; a node that stays silent goes
 *   DOWN after down_after as usual.  The epoch is (boot count << 32) +
 *   changes in this run, so it only ever grows, across restarts too.
 *
 *   Placement (meta_cluster_place): candidates are the targets of UP nodes
 *   with room for at least one chunk; their failure domain is the node's
 *   rack, or the node itself when it has none.  W domains are drawn at
 *   random, weighted by the free space of their candidates, without
 *   replacement, then one target in each, weighted by free space: new data
 *   flows to empty disks and two chunks of a stripe never share a domain.
 *   Fewer than k+m usable domains is ENOSPC (logged with the reason); a
 *   width above the number of domains shrinks to it (never below k+m).
 *   O(targets log targets) per file.
 *
 *   Locking: srv->cl_lock protects struct meta_cluster.  Registration's
 *   database part runs in the writer (apply), its memory part after the
 *   commit (done), both under the writer's ordering.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"

struct mnode {
    uint32_t id;
    uint8_t uuid[CKPT_NODE_UUID_LEN];
    char name[CKPT_NAME_MAX + 1];
    char rack[CKPT_NAME_MAX + 1];
    char host[CKPT_HOST_MAX + 1];
    uint16_t port, rdma_port;
    uint32_t transports;
    uint32_t state;        /* enum ckpt_node_state */
    bool heard;            /* a heartbeat since it registered */
    bool held_out;         /* ckpt-admin node out: OUT until node in */
    bool draining;         /* ckpt-admin node drain: DRAINING when alive */
    uint64_t last_seen_ns;
    uint32_t ntargets;
    uint32_t tids[CKPT_NODE_MAX_TARGETS];
};

struct mtarget {
    uint32_t id;
    uint32_t node_id;
    bool attached;         /* in its node's current target list */
    uint64_t capacity, free, used, chunks;
};

struct meta_cluster {
    struct mnode **nodes;     /* indexed by id; NULL = none */
    uint32_t nodes_cap;
    struct mtarget **targets; /* indexed by id */
    uint32_t targets_cap;
    uint64_t epoch;
    uint64_t rng;
    MDB_dbi dbi_sb, dbi_node, dbi_uuid, dbi_target;
};

struct ids {
    uint32_t next_node, next_target, boot;
};

/* The NODE_REGISTER wop: the request, then what apply resolved. */
struct reg_msg {
    struct ckpt_msg_node_register m;
    uint32_t node_id;
    uint32_t tids[CKPT_NODE_MAX_TARGETS];
};

/* ---- little helpers ------------------------------------------------------------ */

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint64_t rng_next(struct meta_cluster *cl)
{
    uint64_t x = cl->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    cl->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static struct mnode *node_get(struct meta_cluster *cl, uint32_t id)
{
    return id < cl->nodes_cap ? cl->nodes[id] : NULL;
}

static struct mtarget *target_get(struct meta_cluster *cl, uint32_t id)
{
    return id < cl->targets_cap ? cl->targets[id] : NULL;
}

/* Make room for index id in a pointer array. */
static int grow(void ***arr, uint32_t *cap, uint32_t id)
{
    if (id < *cap)
        return 0;
    uint32_t ncap = *cap ? *cap : 64;
    while (ncap <= id)
        ncap *= 2;
    void **p = ckpt_realloc(*arr, ncap * sizeof(void *));
    if (!p)
        return -ENOMEM;
    memset(p + *cap, 0, (ncap - *cap) * sizeof(void *));
    *arr = p;
    *cap = ncap;
    return 0;
}

static void epoch_bump_locked(struct meta_cluster *cl)
{
    cl->epoch++;
}

/* The state of a node that heartbeats. */
static uint32_t alive_state(const struct mnode *n)
{
    return n->draining ? CKPT_NODE_DRAINING : CKPT_NODE_UP;
}

static bool is_alive_state(uint32_t st)
{
    return st == CKPT_NODE_UP || st == CKPT_NODE_DRAINING;
}

/* ---- persistence -------------------------------------------------------------------- */

static int ids_get(struct meta_cluster *cl, MDB_txn *txn, struct ids *out)
{
    MDB_val k = {3, (void *)"ids"}, v;
    int rc = meta_store_errno(mdb_get(txn, cl->dbi_sb, &k, &v));
    if (rc == -ENOENT) {
        *out = (struct ids){1, 1, 0};
        return 0;
    }
    if (rc < 0)
        return rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size != 13 || p[0] != 1)
        return -EIO;
    out->next_node = get_le32(p + 1);
    out->next_target = get_le32(p + 5);
    out->boot = get_le32(p + 9);
    return 0;
}

static int ids_put(struct meta_cluster *cl, MDB_txn *txn, const struct ids *ids)
{
    uint8_t vb[13];
    MDB_val k = {3, (void *)"ids"}, v = {sizeof(vb), vb};
    vb[0] = 1;
    le32(vb + 1, ids->next_node);
    le32(vb + 5, ids->next_target);
    le32(vb + 9, ids->boot);
    return meta_store_errno(mdb_put(txn, cl->dbi_sb, &k, &v, 0));
}

/* Node record: ver, uuid[16], port, rdma_port (le16), transports le32,
 * n u8, name (u8 len), rack (u8 len), host (u8 len), tids le32 x n. */
static int node_put(struct meta_cluster *cl, MDB_txn *txn, const struct mnode *n)
{
    uint8_t vb[1 + 16 + 8 + 1 + 3 * 256 + 4 * CKPT_NODE_MAX_TARGETS], kb[4], *p = vb;
    size_t ln = strlen(n->name), lr = strlen(n->rack), lh = strlen(n->host);
    *p++ = 1;
    memcpy(p, n->uuid, 16);
    p += 16;
    p[0] = (uint8_t)n->port;
    p[1] = (uint8_t)(n->port >> 8);
    p[2] = (uint8_t)n->rdma_port;
    p[3] = (uint8_t)(n->rdma_port >> 8);
    le32(p + 4, n->transports);
    p += 8;
    *p++ = (uint8_t)n->ntargets;
    *p++ = (uint8_t)ln;
    memcpy(p, n->name, ln);
    p += ln;
    *p++ = (uint8_t)lr;
    memcpy(p, n->rack, lr);
    p += lr;
    *p++ = (uint8_t)lh;
    memcpy(p, n->host, lh);
    p += lh;
    for (uint32_t i = 0; i < n->ntargets; i++, p += 4)
        le32(p, n->tids[i]);
    be32(kb, n->id);
    MDB_val k = {4, kb}, v = {(size_t)(p - vb), vb};
    return meta_store_errno(mdb_put(txn, cl->dbi_node, &k, &v, 0));
}

static int node_decode(uint32_t id, const MDB_val *v, struct mnode *n)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    memset(n, 0, sizeof(*n));
    n->id = id;
    if (v->mv_size < 1 + 16 + 8 + 4 || p[0] != 1)
        return -EIO;
    p++;
    memcpy(n->uuid, p, 16);
    p += 16;
    n->port = (uint16_t)(p[0] | p[1] << 8);
    n->rdma_port = (uint16_t)(p[2] | p[3] << 8);
    n->transports = get_le32(p + 4);
    p += 8;
    n->ntargets = *p++;
    if (n->ntargets > CKPT_NODE_MAX_TARGETS)
        return -EIO;
    char *strs[3] = {n->name, n->rack, n->host};
    size_t caps[3] = {sizeof(n->name), sizeof(n->rack), sizeof(n->host)};
    for (int i = 0; i < 3; i++) {
        if (p >= end || p[0] >= caps[i] || end - p - 1 < p[0])
            return -EIO;
        memcpy(strs[i], p + 1, p[0]);
        strs[i][p[0]] = '\0';
        p += 1 + p[0];
    }
    if ((size_t)(end - p) != 4u * n->ntargets)
        return -EIO;
    for (uint32_t i = 0; i < n->ntargets; i++)
        n->tids[i] = get_le32(p + 4 * i);
    return 0;
}

/* Target record: ver, node le32, capacity le64, free le64, path (le16 len). */
static int target_put(struct meta_cluster *cl, MDB_txn *txn, uint32_t tid, uint32_t node,
                      const struct ckpt_reg_target *t)
{
    uint8_t vb[1 + 4 + 16 + 2 + CKPT_TPATH_MAX], kb[4];
    size_t lp = strlen(t->path);
    vb[0] = 1;
    le32(vb + 1, node);
    le64(vb + 5, t->capacity);
    le64(vb + 13, t->free);
    vb[21] = (uint8_t)lp;
    vb[22] = (uint8_t)(lp >> 8);
    memcpy(vb + 23, t->path, lp);
    be32(kb, tid);
    MDB_val k = {4, kb}, v = {23 + lp, vb};
    return meta_store_errno(mdb_put(txn, cl->dbi_target, &k, &v, 0));
}

static int target_owner(struct meta_cluster *cl, MDB_txn *txn, uint32_t tid, uint32_t *out)
{
    uint8_t kb[4];
    MDB_val k = {4, kb}, v;
    be32(kb, tid);
    int rc = meta_store_errno(mdb_get(txn, cl->dbi_target, &k, &v));
    if (rc < 0)
        return rc;
    if (v.mv_size < 23 || ((uint8_t *)v.mv_data)[0] != 1)
        return -EIO;
    *out = get_le32((uint8_t *)v.mv_data + 1);
    return 0;
}

/* ---- NODE_REGISTER -------------------------------------------------------------------- */

static int reg_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_node_register_decode(body, len, &((struct reg_msg *)msg)->m);
}

static int reg_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct meta_cluster *cl = srv->cl;
    struct reg_msg *r = w->msg;
    const struct ckpt_msg_node_register *m = &r->m;
    struct ids ids;
    struct mnode n;
    uint8_t kb[4];
    MDB_val uk = {CKPT_NODE_UUID_LEN, (void *)m->uuid}, v;
    uint32_t id = 0;
    int rc = ids_get(cl, txn, &ids);

    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_get(txn, cl->dbi_uuid, &uk, &v));
    if (rc == 0 && v.mv_size == 4) {
        id = get_le32(v.mv_data);
    } else if (rc != -ENOENT && rc != 0) {
        return rc;
    } else if (m->node_id != 0) {
        /* A node we do not know by uuid that has an id (our database was
         * replaced): keep its id if nobody else has it. */
        be32(kb, m->node_id);
        MDB_val k = {4, kb};
        rc = meta_store_errno(mdb_get(txn, cl->dbi_node, &k, &v));
        if (rc == -ENOENT)
            id = m->node_id;
        else if (rc < 0)
            return rc;
    }
    if (id == 0)
        id = ids.next_node++;
    if (id >= ids.next_node)
        ids.next_node = id + 1;
    if (m->node_id != 0 && m->node_id != id)
        CKPT_LOG_WARN("node %s asked for node id %u, which belongs to another node: it is "
                      "node %u now", m->name, m->node_id, id);

    memset(&n, 0, sizeof(n));
    n.id = id;
    memcpy(n.uuid, m->uuid, sizeof(n.uuid));
    snprintf(n.name, sizeof(n.name), "%s", m->name);
    snprintf(n.rack, sizeof(n.rack), "%s", m->rack);
    snprintf(n.host, sizeof(n.host), "%s", m->host);
    n.port = m->port;
    n.rdma_port = m->rdma_port;
    n.transports = m->transports;
    n.ntargets = m->n;
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t tid = m->t[i].id, owner = 0;
        for (uint32_t j = 0; j < i && tid; j++)
            if (n.tids[j] == tid)
                tid = 0; /* listed twice: the second one is a new target */
        if (tid) {
            rc = target_owner(cl, txn, tid, &owner);
            if (rc == 0 && owner != id) {
                CKPT_LOG_WARN("node %u (%s) presents target id %u of node %u: it gets a new id",
                              id, m->name, tid, owner);
                tid = 0;
            } else if (rc < 0 && rc != -ENOENT) {
                return rc;
            }
        }
        if (!tid)
            tid = ids.next_target++;
        if (tid >= ids.next_target)
            ids.next_target = tid + 1;
        n.tids[i] = tid;
        rc = target_put(cl, txn, tid, id, &m->t[i]);
        if (rc < 0)
            return rc;
    }
    rc = node_put(cl, txn, &n);
    if (rc == 0) {
        uint8_t vb[4];
        le32(vb, id);
        v.mv_size = 4;
        v.mv_data = vb;
        rc = meta_store_errno(mdb_put(txn, cl->dbi_uuid, &uk, &v, 0));
    }
    if (rc == 0)
        rc = ids_put(cl, txn, &ids);
    if (rc < 0)
        return rc;
    r->node_id = id;
    memcpy(r->tids, n.tids, sizeof(r->tids));
    return 0;
}

/* After the commit: the registry in memory, then the reply (it carries the
 * new epoch). */
static void reg_done(struct meta_server *srv, struct meta_wop *w)
{
    struct meta_cluster *cl = srv->cl;
    struct reg_msg *r = w->msg;
    const struct ckpt_msg_node_register *m = &r->m;
    struct ckpt_msg_node_register_resp resp;
    int rc;

    pthread_mutex_lock(&srv->cl_lock);
    rc = grow((void ***)&cl->nodes, &cl->nodes_cap, r->node_id);
    for (uint32_t i = 0; rc == 0 && i < m->n; i++)
        rc = grow((void ***)&cl->targets, &cl->targets_cap, r->tids[i]);
    struct mnode *n = rc == 0 ? node_get(cl, r->node_id) : NULL;
    if (rc == 0 && !n) {
        n = ckpt_calloc(1, sizeof(*n));
        if (!n)
            rc = -ENOMEM;
        else
            cl->nodes[r->node_id] = n;
    }
    for (uint32_t i = 0; rc == 0 && i < m->n; i++) {
        if (!target_get(cl, r->tids[i])) {
            struct mtarget *t = ckpt_calloc(1, sizeof(*t));
            if (!t)
                rc = -ENOMEM;
            else
                cl->targets[r->tids[i]] = t;
        }
    }
    if (rc < 0) {
        pthread_mutex_unlock(&srv->cl_lock);
        CKPT_LOG_ERR("node %s: out of memory after registering it; it will register again",
                     m->name);
        w->status = rc;
        return;
    }
    /* A node that is UP (heard, or restored as UP after a ckpt-meta
     * restart) and registers again at the same address with the same
     * targets - it reconnected, or ckpt-meta restarted - stays UP: marking
     * it DOWN until its next heartbeat made clients write around it. */
    bool same = n->id == r->node_id && is_alive_state(n->state) && n->heard &&
                !n->held_out && n->port == m->port && strcmp(n->host, m->host) == 0 &&
                n->ntargets == m->n && memcmp(n->tids, r->tids, sizeof(n->tids)) == 0;
    /* Targets it no longer presents are detached (shown OUT). */
    for (uint32_t i = 0; i < n->ntargets; i++) {
        struct mtarget *t = target_get(cl, n->tids[i]);
        if (t && t->node_id == r->node_id)
            t->attached = false;
    }
    n->id = r->node_id;
    memcpy(n->uuid, m->uuid, sizeof(n->uuid));
    snprintf(n->name, sizeof(n->name), "%s", m->name);
    snprintf(n->rack, sizeof(n->rack), "%s", m->rack);
    snprintf(n->host, sizeof(n->host), "%s", m->host);
    n->port = m->port;
    n->rdma_port = m->rdma_port;
    n->transports = m->transports;
    n->ntargets = m->n;
    memcpy(n->tids, r->tids, sizeof(n->tids));
    if (!same) {
        n->state = n->held_out ? CKPT_NODE_OUT : CKPT_NODE_DOWN;
        n->heard = false;
    }
    n->last_seen_ns = ckpt_now_ns();
    for (uint32_t i = 0; i < m->n; i++) {
        struct mtarget *t = target_get(cl, r->tids[i]);
        t->id = r->tids[i];
        t->node_id = r->node_id;
        t->attached = true;
        t->capacity = m->t[i].capacity;
        t->free = m->t[i].free;
    }
    epoch_bump_locked(cl);
    memset(&resp, 0, sizeof(resp));
    resp.node_id = r->node_id;
    resp.epoch = cl->epoch;
    resp.heartbeat_ms = srv->opts.heartbeat_ms;
    resp.n = m->n;
    memcpy(resp.target_ids, r->tids, sizeof(resp.target_ids));
    pthread_mutex_unlock(&srv->cl_lock);
    CKPT_LOG_INFO("node %u (%s, %s:%u%s%s) registered with %u target(s)%s; epoch %llu",
                  r->node_id, m->name, m->host, m->port, m->rack[0] ? ", rack " : "", m->rack,
                  m->n, same ? " again, unchanged: it is UP" : "",
                  (unsigned long long)resp.epoch);
    w->reply.len = 0;
    (void)ckpt_msg_node_register_resp_encode(&w->reply, &resp);
}

const struct meta_wop_type meta_wop_node_register = {
    .name = "NODE_REGISTER",
    .msg_size = sizeof(struct reg_msg),
    .decode = reg_decode,
    .apply = reg_apply,
    .done = reg_done,
};

/* ---- HEARTBEAT, CLUSTER_MAP ------------------------------------------------------------ */

void meta_di_heartbeat(struct meta_server *srv, struct ckpt_req *req)
{
    struct meta_cluster *cl = srv->cl;
    struct ckpt_msg_heartbeat *m = ckpt_malloc(sizeof(*m));
    struct ckpt_msg_heartbeat_resp resp = {0};
    uint8_t buf[16];
    struct ckpt_wbuf wb;
    int rc;

    if (!m) {
        (void)ckpt_req_reply(req, -ENOMEM, NULL, 0, NULL, 0);
        return;
    }
    rc = ckpt_msg_heartbeat_decode(req->body, req->body_len, m);
    if (rc < 0) {
        ckpt_free(m);
        meta_req_malformed(req, rc);
        return;
    }
    pthread_mutex_lock(&srv->cl_lock);
    struct mnode *n = node_get(cl, m->node_id);
    if (!n || memcmp(n->uuid, m->uuid, CKPT_NODE_UUID_LEN) != 0) {
        rc = -ENOENT;
    } else {
        for (uint32_t i = 0; i < m->n; i++) {
            struct mtarget *t = target_get(cl, m->t[i].id);
            if (!t || t->node_id != n->id || !t->attached)
                continue;
            t->capacity = m->t[i].capacity;
            t->free = m->t[i].free;
            t->used = m->t[i].used;
            t->chunks = m->t[i].chunks;
        }
        n->last_seen_ns = ckpt_now_ns();
        if (n->held_out) {
            n->heard = true; /* alive, but the operator keeps it OUT */
        } else if (n->state != alive_state(n) || !n->heard) {
            CKPT_LOG_INFO("node %u (%s) is %s (was %s)", n->id, n->name,
                          ckpt_node_state_name(alive_state(n)),
                          n->heard ? ckpt_node_state_name(n->state) : "registering");
            n->state = alive_state(n);
            n->heard = true;
            epoch_bump_locked(cl);
        }
        resp.epoch = cl->epoch;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    ckpt_free(m);
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    if (rc == 0)
        rc = ckpt_msg_heartbeat_resp_encode(&wb, &resp);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
}

void meta_di_cluster_map(struct meta_server *srv, struct ckpt_req *req)
{
    struct meta_cluster *cl = srv->cl;
    struct ckpt_msg_cluster_map m;
    struct ckpt_msg_cluster_map_resp r;
    struct ckpt_wbuf wb;
    uint8_t buf[4096];
    uint64_t now = ckpt_now_ns();
    int rc = ckpt_msg_cluster_map_decode(req->body, req->body_len, &m);

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    memset(&r, 0, sizeof(r));
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    pthread_mutex_lock(&srv->cl_lock);
    r.epoch = cl->epoch;
    snprintf(r.cluster, sizeof(r.cluster), "%s", srv->opts.cluster_name);
    r.layout = srv->opts.layout;
    memset(r.layout.targets, 0, sizeof(r.layout.targets));
    if (m.known_epoch != 0 && m.known_epoch == cl->epoch) {
        r.unchanged = 1;
    } else {
        uint32_t nn = 0, nt = 0;
        for (uint32_t i = 0; i < cl->nodes_cap; i++)
            nn += cl->nodes[i] != NULL;
        for (uint32_t i = 0; i < cl->targets_cap; i++)
            nt += cl->targets[i] != NULL;
        r.nodes = nn ? ckpt_calloc(nn, sizeof(*r.nodes)) : NULL;
        r.targets = nt ? ckpt_calloc(nt, sizeof(*r.targets)) : NULL;
        if ((nn && !r.nodes) || (nt && !r.targets))
            rc = -ENOMEM;
        for (uint32_t i = 0; rc == 0 && i < cl->nodes_cap; i++) {
            const struct mnode *n = cl->nodes[i];
            if (!n)
                continue;
            struct ckpt_map_node *o = &r.nodes[r.n_nodes++];
            o->id = n->id;
            o->state = n->state;
            snprintf(o->name, sizeof(o->name), "%s", n->name);
            snprintf(o->rack, sizeof(o->rack), "%s", n->rack);
            snprintf(o->host, sizeof(o->host), "%s", n->host);
            o->port = n->port;
            o->rdma_port = n->rdma_port;
            o->transports = n->transports;
            o->last_seen_ms = (now - n->last_seen_ns) / 1000000ull;
        }
        for (uint32_t i = 0; rc == 0 && i < cl->targets_cap; i++) {
            const struct mtarget *t = cl->targets[i];
            if (!t)
                continue;
            const struct mnode *n = node_get(cl, t->node_id);
            struct ckpt_map_target *o = &r.targets[r.n_targets++];
            o->id = t->id;
            o->node_id = t->node_id;
            o->state = t->attached && n ? n->state : CKPT_NODE_OUT;
            o->capacity = t->capacity;
            o->free = t->free;
            o->used = t->used;
            o->chunks = t->chunks;
        }
    }
    pthread_mutex_unlock(&srv->cl_lock);
    if (rc == 0)
        rc = ckpt_msg_cluster_map_resp_encode(&wb, &r);
    ckpt_free(r.nodes);
    ckpt_free(r.targets);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
}

/* ---- failure detection ---------------------------------------------------------------- */

void meta_cluster_tick(struct meta_server *srv, uint64_t now_ns)
{
    struct meta_cluster *cl = srv->cl;
    uint64_t down = srv->opts.down_after_ms * 1000000ull, out = srv->opts.out_after_ms * 1000000ull;

    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->nodes_cap; i++) {
        struct mnode *n = cl->nodes[i];
        if (!n || now_ns < n->last_seen_ns)
            continue;
        uint64_t silent = now_ns - n->last_seen_ns;
        if (is_alive_state(n->state) && silent > down) {
            n->state = CKPT_NODE_DOWN;
            epoch_bump_locked(cl);
            CKPT_LOG_WARN("node %u (%s, %s:%u) is DOWN: no heartbeat for %llu ms; epoch %llu",
                          n->id, n->name, n->host, n->port,
                          (unsigned long long)(silent / 1000000ull),
                          (unsigned long long)cl->epoch);
        }
        if (n->state == CKPT_NODE_DOWN && silent > out) {
            n->state = CKPT_NODE_OUT;
            epoch_bump_locked(cl);
            CKPT_LOG_WARN("node %u (%s) is OUT: no heartbeat for %llu ms, its data must be "
                          "rebuilt elsewhere; epoch %llu", n->id, n->name,
                          (unsigned long long)(silent / 1000000ull),
                          (unsigned long long)cl->epoch);
        }
    }
    pthread_mutex_unlock(&srv->cl_lock);
}

int meta_cluster_node_hold(struct meta_server *srv, uint32_t node_id, int hold)
{
    struct meta_cluster *cl = srv->cl;
    int rc = 0;

    pthread_mutex_lock(&srv->cl_lock);
    struct mnode *n = node_get(cl, node_id);
    if (!n) {
        rc = -ENOENT;
    } else if (hold > 0 && !n->held_out) {
        n->held_out = true;
        n->draining = false;
        n->state = CKPT_NODE_OUT;
        epoch_bump_locked(cl);
        CKPT_LOG_WARN("node %u (%s) is OUT by the operator: its data is rebuilt elsewhere; "
                      "epoch %llu", n->id, n->name, (unsigned long long)cl->epoch);
    } else if (hold == 0 && n->held_out) {
        n->held_out = false;
        n->state = CKPT_NODE_DOWN; /* UP at its next heartbeat */
        epoch_bump_locked(cl);
        CKPT_LOG_INFO("node %u (%s) is back in by the operator; epoch %llu", n->id, n->name,
                      (unsigned long long)cl->epoch);
    } else if (hold == 0 && n->draining) {
        n->draining = false;
        if (n->state == CKPT_NODE_DRAINING)
            n->state = CKPT_NODE_UP;
        epoch_bump_locked(cl);
        CKPT_LOG_INFO("node %u (%s): drain cancelled by the operator; epoch %llu", n->id,
                      n->name, (unsigned long long)cl->epoch);
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return rc;
}

uint64_t meta_cluster_epoch(struct meta_server *srv)
{
    if (!srv->cl)
        return 0;
    pthread_mutex_lock(&srv->cl_lock);
    uint64_t e = srv->cl->epoch;
    pthread_mutex_unlock(&srv->cl_lock);
    return e;
}

/* ---- placement ------------------------------------------------------------------------ */

struct cand {
    const struct mtarget *t;
    const struct mnode *n;
    uint64_t weight;
};

/* Order by failure domain: racks by name, then rack-less nodes by id. */
static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    bool xr = x->n->rack[0] != '\0', yr = y->n->rack[0] != '\0';
    if (xr != yr)
        return xr ? -1 : 1;
    if (xr) {
        int c = strcmp(x->n->rack, y->n->rack);
        if (c)
            return c;
    } else if (x->n->id != y->n->id) {
        return x->n->id < y->n->id ? -1 : 1;
    }
    return x->t->id < y->t->id ? -1 : x->t->id > y->t->id;
}

static bool same_domain(const struct cand *x, const struct cand *y)
{
    if (x->n->rack[0] || y->n->rack[0])
        return strcmp(x->n->rack, y->n->rack) == 0;
    return x->n->id == y->n->id;
}

struct dom {
    size_t first, n;  /* candidates [first, first+n) */
    uint64_t weight;
};

int meta_cluster_place(struct meta_server *srv, struct ckpt_layout *l)
{
    struct meta_cluster *cl = srv->cl;
    unsigned need = (unsigned)l->k + l->m;
    unsigned width = l->width ? l->width : need;
    struct cand *c = NULL;
    struct dom *d = NULL;
    size_t nc = 0, nd = 0;
    uint32_t nodes = 0, up = 0, full = 0, ntargets = 0;
    int rc = 0;

    pthread_mutex_lock(&srv->cl_lock);
    if (cl->targets_cap) {
        c = ckpt_calloc(cl->targets_cap, sizeof(*c));
        d = ckpt_calloc(cl->targets_cap, sizeof(*d));
        if (!c || !d) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (uint32_t i = 0; i < cl->nodes_cap; i++) {
        if (cl->nodes[i]) {
            nodes++;
            up += cl->nodes[i]->state == CKPT_NODE_UP && cl->nodes[i]->heard;
        }
    }
    for (uint32_t i = 0; i < cl->targets_cap; i++) {
        const struct mtarget *t = cl->targets[i];
        const struct mnode *n = t ? node_get(cl, t->node_id) : NULL;
        if (!t || !t->attached || !n)
            continue;
        ntargets++;
        if (n->state != CKPT_NODE_UP || !n->heard)
            continue;
        if (t->free < l->chunk_size) {
            full++;
            continue;
        }
        c[nc].t = t;
        c[nc].n = n;
        c[nc].weight = (t->free >> 20) + 1;
        nc++;
    }
    if (nc)
        qsort(c, nc, sizeof(*c), cand_cmp);
    for (size_t i = 0; i < nc; i++) {
        if (nd == 0 || !same_domain(&c[d[nd - 1].first], &c[i])) {
            d[nd].first = i;
            d[nd].n = 0;
            d[nd].weight = 0;
            nd++;
        }
        d[nd - 1].n++;
        d[nd - 1].weight += c[i].weight;
    }
    if (nd < need) {
        rc = -ENOSPC;
        if (meta_log_ratelimit(srv))
            CKPT_LOG_ERR("cannot place a new file with ec=%u+%u: it needs %u failure domains "
                         "with a live target that has room, and %zu are usable (%u node(s), %u "
                         "UP; %u target(s), %u full)", l->k, l->m, need, nd, nodes, up,
                         ntargets, full);
        goto out;
    }
    if (width > nd)
        width = (unsigned)nd;
    for (unsigned s = 0; s < width; s++) {
        uint64_t total = 0, r;
        size_t pick = 0;
        for (size_t i = 0; i < nd; i++)
            total += d[i].weight;
        r = rng_next(cl) % total;
        for (pick = 0; pick + 1 < nd && r >= d[pick].weight; pick++)
            r -= d[pick].weight;
        /* One target of that domain, weighted by free space. */
        r = rng_next(cl) % d[pick].weight;
        size_t ti = d[pick].first;
        for (; ti + 1 < d[pick].first + d[pick].n && r >= c[ti].weight; ti++)
            r -= c[ti].weight;
        l->targets[s] = c[ti].t->id;
        d[pick] = d[--nd];
    }
    for (unsigned s = width; s < CKPT_LAYOUT_MAX_WIDTH; s++)
        l->targets[s] = 0;
    l->width = (uint16_t)width;
out:
    pthread_mutex_unlock(&srv->cl_lock);
    ckpt_free(c);
    ckpt_free(d);
    return rc;
}

void meta_cluster_space(struct meta_server *srv, uint64_t *out_cap, uint64_t *out_free)
{
    struct meta_cluster *cl = srv->cl;
    uint64_t cap = 0, fr = 0;
    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->targets_cap; i++) {
        const struct mtarget *t = cl->targets[i];
        const struct mnode *n = t ? node_get(cl, t->node_id) : NULL;
        if (!t || !t->attached || !n || n->state == CKPT_NODE_OUT)
            continue;
        cap += t->capacity;
        fr += t->free < t->capacity ? t->free : t->capacity;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    *out_cap = cap;
    *out_free = fr;
}

size_t meta_cluster_live_targets(struct meta_server *srv, struct meta_delq_target *out,
                                 size_t cap)
{
    struct meta_cluster *cl = srv->cl;
    size_t n = 0;
    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->targets_cap && n < cap; i++) {
        const struct mtarget *t = cl->targets[i];
        const struct mnode *nd = t ? node_get(cl, t->node_id) : NULL;
        if (!t || !t->attached || !nd || !is_alive_state(nd->state) || !nd->heard)
            continue;
        out[n].tid = t->id;
        out[n].node_id = nd->id;
        snprintf(out[n].host, sizeof(out[n].host), "%s", nd->host);
        out[n].port = nd->port;
        n++;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return n;
}

/* ---- hooks of the rebuild planner (meta_rebuild.c) -------------------------------------- */

size_t meta_cluster_out_targets(struct meta_server *srv, uint32_t *out, size_t cap)
{
    struct meta_cluster *cl = srv->cl;
    size_t n = 0;
    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->targets_cap && n < cap; i++) {
        const struct mtarget *t = cl->targets[i];
        const struct mnode *nd = t ? node_get(cl, t->node_id) : NULL;
        if (t && nd && nd->state == CKPT_NODE_OUT)
            out[n++] = t->id;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return n;
}

int meta_cluster_target_where(struct meta_server *srv, uint32_t tid, uint32_t *out_node,
                              uint32_t *out_state, char *host, size_t host_cap,
                              uint16_t *out_port)
{
    struct meta_cluster *cl = srv->cl;
    int rc = -ENOENT;
    pthread_mutex_lock(&srv->cl_lock);
    const struct mtarget *t = target_get(cl, tid);
    const struct mnode *nd = t ? node_get(cl, t->node_id) : NULL;
    if (nd) {
        *out_node = nd->id;
        *out_state = nd->heard ? nd->state : CKPT_NODE_DOWN;
        if (host)
            snprintf(host, host_cap, "%s", nd->host);
        *out_port = nd->port;
        rc = 0;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return rc;
}

/* The failure domain of target tid as a candidate (NULL node: unknown). */
static bool domain_taken(struct meta_cluster *cl, const struct cand *c, const uint32_t *tids,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct mtarget *t = tids[i] ? target_get(cl, tids[i]) : NULL;
        const struct mnode *nd = t ? node_get(cl, t->node_id) : NULL;
        if (!nd)
            continue;
        struct cand o = {.t = t, .n = nd, .weight = 0};
        if (same_domain(&o, c))
            return true;
    }
    return false;
}

int meta_cluster_pick_replacement(struct meta_server *srv, const uint32_t *used, size_t nused,
                                  uint32_t chunk_size, uint32_t *out_tid)
{
    struct meta_cluster *cl = srv->cl;
    struct cand *c = NULL;
    size_t nc = 0;
    uint64_t total = 0;
    int rc = -ENOSPC;

    pthread_mutex_lock(&srv->cl_lock);
    if (cl->targets_cap) {
        c = ckpt_calloc(cl->targets_cap, sizeof(*c));
        if (!c) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (uint32_t i = 0; i < cl->targets_cap; i++) {
        const struct mtarget *t = cl->targets[i];
        const struct mnode *n = t ? node_get(cl, t->node_id) : NULL;
        if (!t || !t->attached || !n || n->state != CKPT_NODE_UP || !n->heard ||
            t->free < chunk_size)
            continue;
        struct cand x = {.t = t, .n = n, .weight = (t->free >> 20) + 1};
        if (domain_taken(cl, &x, used, nused))
            continue;
        c[nc++] = x;
        total += x.weight;
    }
    if (nc) {
        uint64_t r = rng_next(cl) % total;
        size_t pick = 0;
        for (; pick + 1 < nc && r >= c[pick].weight; pick++)
            r -= c[pick].weight;
        *out_tid = c[pick].t->id;
        rc = 0;
    }
out:
    pthread_mutex_unlock(&srv->cl_lock);
    ckpt_free(c);
    return rc;
}

void meta_cluster_epoch_bump(struct meta_server *srv)
{
    pthread_mutex_lock(&srv->cl_lock);
    epoch_bump_locked(srv->cl);
    pthread_mutex_unlock(&srv->cl_lock);
}

/* ---- drain, remove, usage (meta_admin.c, meta_rebuild.c) -------------------------------- */

int meta_cluster_node_drain(struct meta_server *srv, uint32_t node_id, bool drain)
{
    struct meta_cluster *cl = srv->cl;
    int rc = 0;

    pthread_mutex_lock(&srv->cl_lock);
    struct mnode *n = node_get(cl, node_id);
    if (!n) {
        rc = -ENOENT;
    } else if (drain && !n->draining) {
        n->draining = true;
        if (n->held_out) {
            n->held_out = false;
            n->state = CKPT_NODE_DOWN; /* DRAINING at its next heartbeat */
        } else if (n->state == CKPT_NODE_UP) {
            n->state = CKPT_NODE_DRAINING;
        }
        epoch_bump_locked(cl);
        CKPT_LOG_WARN("node %u (%s) is DRAINING by the operator: its chunks are moved to the "
                      "other nodes; epoch %llu", n->id, n->name, (unsigned long long)cl->epoch);
    } else if (!drain && n->draining) {
        n->draining = false;
        if (n->state == CKPT_NODE_DRAINING)
            n->state = CKPT_NODE_UP;
        epoch_bump_locked(cl);
        CKPT_LOG_INFO("node %u (%s): drain cancelled; epoch %llu", n->id, n->name,
                      (unsigned long long)cl->epoch);
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return rc;
}

size_t meta_cluster_draining_targets(struct meta_server *srv, uint32_t *out, size_t cap,
                                     uint32_t *out_nodes)
{
    struct meta_cluster *cl = srv->cl;
    size_t n = 0;
    uint32_t nodes = 0;
    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->nodes_cap; i++) {
        const struct mnode *nd = cl->nodes[i];
        if (!nd || !nd->draining)
            continue;
        nodes++;
        if (nd->state == CKPT_NODE_OUT)
            continue; /* rebuilt from the others instead */
        for (uint32_t j = 0; j < nd->ntargets && n < cap; j++)
            out[n++] = nd->tids[j];
    }
    pthread_mutex_unlock(&srv->cl_lock);
    if (out_nodes)
        *out_nodes = nodes;
    return n;
}

int meta_cluster_node_targets(struct meta_server *srv, uint32_t node_id, uint32_t *tids,
                              uint32_t *out_n, uint32_t *out_state, uint32_t *out_flags)
{
    struct meta_cluster *cl = srv->cl;
    int rc = -ENOENT;
    pthread_mutex_lock(&srv->cl_lock);
    const struct mnode *n = node_get(cl, node_id);
    if (n) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < n->ntargets; i++)
            tids[k++] = n->tids[i];
        /* Targets it no longer presents still belong to it. */
        for (uint32_t i = 0; i < cl->targets_cap && k < CKPT_NODE_MAX_TARGETS * 2; i++) {
            const struct mtarget *t = cl->targets[i];
            bool listed = false;
            if (!t || t->node_id != node_id)
                continue;
            for (uint32_t j = 0; j < k && !listed; j++)
                listed = tids[j] == t->id;
            if (!listed)
                tids[k++] = t->id;
        }
        *out_n = k;
        *out_state = n->heard ? n->state : CKPT_NODE_DOWN;
        *out_flags = (n->held_out ? 1u : 0u) | (n->draining ? 2u : 0u);
        rc = 0;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return rc;
}

int meta_cluster_node_remove_apply(struct meta_server *srv, MDB_txn *txn, uint32_t node_id,
                                   const uint32_t *tids, uint32_t ntids)
{
    struct meta_cluster *cl = srv->cl;
    uint8_t kb[4], uuid[CKPT_NODE_UUID_LEN];
    bool found = false;
    int rc;

    pthread_mutex_lock(&srv->cl_lock);
    const struct mnode *n = node_get(cl, node_id);
    if (n) {
        memcpy(uuid, n->uuid, sizeof(uuid));
        found = true;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    if (!found)
        return -ENOENT;
    be32(kb, node_id);
    MDB_val k = {4, kb}, uk = {CKPT_NODE_UUID_LEN, uuid};
    rc = meta_store_errno(mdb_del(txn, cl->dbi_node, &k, NULL));
    if (rc == 0 || rc == -ENOENT)
        rc = meta_store_errno(mdb_del(txn, cl->dbi_uuid, &uk, NULL));
    for (uint32_t i = 0; i < ntids && (rc == 0 || rc == -ENOENT); i++) {
        be32(kb, tids[i]);
        rc = meta_store_errno(mdb_del(txn, cl->dbi_target, &k, NULL));
    }
    return rc == -ENOENT ? 0 : rc;
}

void meta_cluster_node_forget(struct meta_server *srv, uint32_t node_id)
{
    struct meta_cluster *cl = srv->cl;
    pthread_mutex_lock(&srv->cl_lock);
    struct mnode *n = node_get(cl, node_id);
    if (n) {
        for (uint32_t i = 0; i < cl->targets_cap; i++) {
            struct mtarget *t = cl->targets[i];
            if (t && t->node_id == node_id)
                CKPT_FREE(cl->targets[i]);
        }
        CKPT_LOG_WARN("node %u (%s) removed from the cluster by the operator; epoch %llu",
                      node_id, n->name, (unsigned long long)cl->epoch + 1);
        CKPT_FREE(cl->nodes[node_id]);
        epoch_bump_locked(cl);
    }
    pthread_mutex_unlock(&srv->cl_lock);
}

size_t meta_cluster_usage(struct meta_server *srv, struct meta_tusage *out, size_t cap)
{
    struct meta_cluster *cl = srv->cl;
    size_t n = 0;
    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->targets_cap && n < cap; i++) {
        const struct mtarget *t = cl->targets[i];
        const struct mnode *nd = t ? node_get(cl, t->node_id) : NULL;
        if (!t || !t->attached || !nd || nd->state != CKPT_NODE_UP || !nd->heard ||
            t->capacity == 0)
            continue;
        out[n].tid = t->id;
        out[n].node_id = nd->id;
        snprintf(out[n].rack, sizeof(out[n].rack), "%s", nd->rack);
        out[n].capacity = t->capacity;
        out[n].used = t->used;
        out[n].free = t->free;
        n++;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return n;
}

uint32_t meta_cluster_count_up(struct meta_server *srv)
{
    struct meta_cluster *cl = srv->cl;
    uint32_t n = 0;
    pthread_mutex_lock(&srv->cl_lock);
    for (uint32_t i = 0; i < cl->nodes_cap; i++)
        n += cl->nodes[i] && cl->nodes[i]->state == CKPT_NODE_UP && cl->nodes[i]->heard;
    pthread_mutex_unlock(&srv->cl_lock);
    return n;
}

int meta_cluster_domain_of(struct meta_server *srv, uint32_t tid, uint32_t *out_node,
                           char *rack, size_t rack_cap)
{
    struct meta_cluster *cl = srv->cl;
    int rc = -ENOENT;
    pthread_mutex_lock(&srv->cl_lock);
    const struct mtarget *t = target_get(cl, tid);
    const struct mnode *nd = t ? node_get(cl, t->node_id) : NULL;
    if (nd) {
        *out_node = nd->id;
        snprintf(rack, rack_cap, "%s", nd->rack);
        rc = 0;
    }
    pthread_mutex_unlock(&srv->cl_lock);
    return rc;
}

/* ---- init / fini ------------------------------------------------------------------------ */

static int load(struct meta_server *srv, MDB_txn *txn)
{
    struct meta_cluster *cl = srv->cl;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t now = ckpt_now_ns();
    uint32_t nn = 0, nt = 0;
    int rc = meta_store_errno(mdb_cursor_open(txn, cl->dbi_node, &cur));

    if (rc < 0)
        return rc;
    for (rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST)); rc == 0;
         rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        const uint8_t *kp = k.mv_data;
        uint32_t id = k.mv_size == 4 ? (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 |
                                           (uint32_t)kp[2] << 8 | kp[3] : 0;
        struct mnode *n = ckpt_calloc(1, sizeof(*n));
        if (!n) {
            rc = -ENOMEM;
            break;
        }
        rc = id ? node_decode(id, &v, n) : -EIO;
        if (rc == 0)
            rc = grow((void ***)&cl->nodes, &cl->nodes_cap, id);
        if (rc < 0) {
            ckpt_free(n);
            break;
        }
        n->state = CKPT_NODE_UP;
        n->heard = true;
        n->last_seen_ns = now;
        cl->nodes[id] = n;
        nn++;
    }
    mdb_cursor_close(cur);
    if (rc != -ENOENT)
        return rc;
    rc = meta_store_errno(mdb_cursor_open(txn, cl->dbi_target, &cur));
    if (rc < 0)
        return rc;
    for (rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST)); rc == 0;
         rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        const uint8_t *kp = k.mv_data, *p = v.mv_data;
        if (k.mv_size != 4 || v.mv_size < 23 || p[0] != 1) {
            rc = -EIO;
            break;
        }
        uint32_t id = (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 | (uint32_t)kp[2] << 8 | kp[3];
        struct mtarget *t = ckpt_calloc(1, sizeof(*t));
        if (!t || grow((void ***)&cl->targets, &cl->targets_cap, id) < 0) {
            ckpt_free(t);
            rc = -ENOMEM;
            break;
        }
        t->id = id;
        t->node_id = get_le32(p + 1);
        t->capacity = get_le64(p + 5);
        t->free = get_le64(p + 13);
        const struct mnode *n = node_get(cl, t->node_id);
        for (uint32_t i = 0; n && i < n->ntargets; i++)
            t->attached |= n->tids[i] == id;
        cl->targets[id] = t;
        nt++;
    }
    mdb_cursor_close(cur);
    if (rc != -ENOENT)
        return rc;
    if (nn)
        CKPT_LOG_INFO("cluster: %u node(s) and %u target(s) known; they count as UP until "
                      "they miss heartbeats for %llu ms", nn, nt,
                      (unsigned long long)srv->opts.down_after_ms);
    return 0;
}

int meta_cluster_init(struct meta_server *srv)
{
    struct meta_cluster *cl = ckpt_calloc(1, sizeof(*cl));
    MDB_txn *txn = NULL;
    struct ids ids;
    int rc;

    if (!cl)
        return -ENOMEM;
    srv->cl = cl;
    if (getrandom(&cl->rng, sizeof(cl->rng), 0) != (ssize_t)sizeof(cl->rng) || cl->rng == 0)
        cl->rng = ckpt_now_ns() | 1;
    rc = meta_store_dbi_open(srv->st, "cl.sb", 0, &cl->dbi_sb);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "cl.node", 0, &cl->dbi_node);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "cl.uuid", 0, &cl->dbi_uuid);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "cl.target", 0, &cl->dbi_target);
    if (rc == 0)
        rc = meta_store_txn_begin(srv->st, NULL, false, &txn);
    if (rc < 0)
        return rc;
    rc = ids_get(cl, txn, &ids);
    if (rc == 0) {
        ids.boot++;
        rc = ids_put(cl, txn, &ids);
    }
    if (rc == 0)
        rc = load(srv, txn);
    if (rc == 0)
        rc = meta_store_txn_commit(txn);
    else
        meta_store_txn_abort(txn);
    cl->epoch = ((uint64_t)ids.boot << 32) | 1;
    return rc;
}

void meta_cluster_fini(struct meta_server *srv)
{
    struct meta_cluster *cl = srv->cl;
    if (!cl)
        return;
    for (uint32_t i = 0; i < cl->nodes_cap; i++)
        ckpt_free(cl->nodes[i]);
    for (uint32_t i = 0; i < cl->targets_cap; i++)
        ckpt_free(cl->targets[i]);
    ckpt_free(cl->nodes);
    ckpt_free(cl->targets);
    ckpt_free(cl);
    srv->cl = NULL;
}

/*
 * check_meta_fixture.h - an in-process ckpt-meta for the meta_server and
 * meta_cluster suites: a real meta_server on 127.0.0.1 port 0 with its
 * LMDB store in a temporary directory, real clients (lib/mclient.c) over
 * the real RPC layer, and fake storage nodes that register and heartbeat
 * with the real NODE_REGISTER/HEARTBEAT messages and answer CHUNK_DELETE
 * (recorded for the deletion-queue tests) from a small RPC server of their
 * own.  Included by check_meta_*.c only; every function is static.
 *
 * Each test runs in Check's forked child: the fixture is set up there
 * (checked fixture); the temporary root of a TCase is made and removed by
 * the runner (unchecked fixture), so a failed test leaves nothing behind.
 */
#ifndef CHECK_META_FIXTURE_H
#define CHECK_META_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "mclient.h"
#include "meta_server.h"
#include "meta_store.h"
#include "msg_cluster.h"
#include "msg_node.h"
#include "net.h"

#define MFX_MAX_NODES 16
#define MFX_MAX_DELETES 4096

struct mfx_node {
    uint8_t uuid[CKPT_NODE_UUID_LEN];
    char name[CKPT_NAME_MAX + 1];
    char rack[CKPT_NAME_MAX + 1];
    uint32_t id;
    uint32_t n;
    uint32_t tids[CKPT_NODE_MAX_TARGETS];
    uint64_t capacity, free;
    int alive; /* heartbeated by the fixture's thread */
};

struct mfx {
    char root[64];
    char dir[160];
    struct meta_server_opts opts;
    meta_server *srv;
    uint16_t port;
    ckpt_net *net;          /* clients and fake nodes */
    ckpt_server *nodesrv;   /* the fake nodes' chunk service */
    uint16_t node_port;
    ckpt_conn *nconn;       /* fake nodes -> meta */
    ckpt_mclient *mc;
    struct mfx_node nodes[MFX_MAX_NODES];
    int nnodes;
    pthread_mutex_t lock;
    pthread_t hb;
    int hb_started, hb_stop;
    struct ckpt_msg_chunk_delete deletes[MFX_MAX_DELETES]; /* protected by lock */
    int ndeletes;
};

#define MFX_FN static __attribute__((unused))

static struct mfx F;
static char mfx_root[64];
static int mfx_seq; /* a fresh data directory per test, even with CK_FORK=no */

static const uint8_t mfx_key[CKPT_NET_KEY_LEN] = {7, 7, 7, 1, 2, 3};

MFX_FN int mfx_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

/* Runner side: one temporary root per TCase. */
MFX_FN void mfx_root_setup(void)
{
    strcpy(mfx_root, "/tmp/ckpt-meta-srv-XXXXXX");
    if (!mkdtemp(mfx_root))
        abort();
}

MFX_FN void mfx_root_teardown(void)
{
    nftw(mfx_root, mfx_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

MFX_FN void mfx_nodesrv_handle(void *ctx, struct ckpt_req *req)
{
    struct mfx *f = ctx;
    if (req->hdr.opcode == CKPT_OP_CHUNK_DELETE) {
        struct ckpt_msg_chunk_delete m;
        if (ckpt_msg_chunk_delete_decode(req->body, req->body_len, &m) == 0) {
            pthread_mutex_lock(&f->lock);
            if (f->ndeletes < MFX_MAX_DELETES)
                f->deletes[f->ndeletes++] = m;
            pthread_mutex_unlock(&f->lock);
            uint8_t b[8];
            struct ckpt_wbuf w;
            struct ckpt_msg_chunk_delete_resp r = {1};
            ckpt_wbuf_init(&w, b, sizeof(b));
            ckpt_msg_chunk_delete_resp_encode(&w, &r);
            ckpt_req_reply(req, 0, w.p, (uint32_t)w.len, NULL, 0);
            ckpt_wbuf_free(&w);
            return;
        }
    }
    ckpt_req_reply(req, -EOPNOTSUPP, NULL, 0, NULL, 0);
}

static const struct ckpt_server_ops mfx_nodesrv_ops = {.handle = mfx_nodesrv_handle};

/* Default options for a test server in F.dir. */
MFX_FN void mfx_default_opts(struct meta_server_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->listen_host, sizeof(o->listen_host), "127.0.0.1");
    snprintf(o->data_dir, sizeof(o->data_dir), "%s", F.dir);
    snprintf(o->cluster_name, sizeof(o->cluster_name), "test");
    memcpy(o->key, mfx_key, sizeof(o->key));
    o->map_size_bytes = 1ull << 30;
    ckpt_layout_default(&o->layout);
}

MFX_FN void mfx_server_start(void)
{
    ck_assert_int_eq(meta_server_create(&F.opts, &F.srv), 0);
    F.port = meta_server_port(F.srv);
    ck_assert_int_ne(F.port, 0);
}

MFX_FN void mfx_server_stop(void)
{
    meta_server_destroy(F.srv);
    F.srv = NULL;
}

MFX_FN int mfx_mclient(const char *name, ckpt_mclient **out)
{
    struct ckpt_mclient_opts o;
    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = F.port;
    o.name = name;
    o.retry_ms = 5000;
    return ckpt_mclient_create(F.net, &o, out);
}

/* Setup with options changed by tweak (may be NULL); no nodes yet. */
MFX_FN void mfx_setup_with(void (*tweak)(struct meta_server_opts *))
{
    struct ckpt_net_opts no;
    char dir[sizeof(F.dir)];
    /* Keep a directory a test's own setup prepared (F.dir already set). */
    if (F.dir[0])
        memcpy(dir, F.dir, sizeof(dir));
    else
        snprintf(dir, sizeof(dir), "%s/m%ld-%d", mfx_root, (long)getpid(), ++mfx_seq);
    memset(&F, 0, sizeof(F));
    memcpy(F.dir, dir, sizeof(F.dir));
    pthread_mutex_init(&F.lock, NULL);
    mfx_default_opts(&F.opts);
    if (tweak)
        tweak(&F.opts);
    mfx_server_start();
    memset(&no, 0, sizeof(no));
    memcpy(no.key, mfx_key, sizeof(no.key));
    no.name = "check";
    ck_assert_int_eq(ckpt_net_create(&no, &F.net), 0);
    ck_assert_int_eq(ckpt_server_start(F.net, "127.0.0.1", 0, &mfx_nodesrv_ops, &F, &F.nodesrv), 0);
    F.node_port = ckpt_server_port(F.nodesrv);
    ck_assert_int_eq(mfx_mclient("check", &F.mc), 0);
}

MFX_FN void mfx_hb_stop(void);

MFX_FN void mfx_teardown(void)
{
    mfx_hb_stop();
    ckpt_mclient_destroy(F.mc);
    F.mc = NULL;
    ckpt_conn_close(F.nconn);
    F.nconn = NULL;
    mfx_server_stop();
    ckpt_server_stop(F.nodesrv);
    ckpt_net_destroy(F.net);
    pthread_mutex_destroy(&F.lock);
    F.dir[0] = '\0';
}

/* ---- fake nodes ------------------------------------------------------------ */

MFX_FN ckpt_conn *mfx_nconn(void)
{
    if (!F.nconn || !ckpt_conn_is_open(F.nconn)) {
        ckpt_conn_close(F.nconn);
        F.nconn = NULL;
        ck_assert_int_eq(ckpt_net_connect(F.net, "127.0.0.1", F.port, NULL, NULL, &F.nconn), 0);
    }
    return F.nconn;
}

MFX_FN int mfx_call(uint16_t op, struct ckpt_wbuf *w, struct ckpt_call *call)
{
    memset(call, 0, sizeof(*call));
    call->opcode = op;
    call->body = w->p;
    call->body_len = (uint32_t)w->len;
    return ckpt_conn_call(mfx_nconn(), call);
}

/* NODE_REGISTER node i (its uuid, name, rack, targets); fills ids. */
MFX_FN int mfx_register(int i)
{
    struct mfx_node *n = &F.nodes[i];
    struct ckpt_msg_node_register *m = ckpt_calloc(1, sizeof(*m));
    struct ckpt_msg_node_register_resp r;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[512];
    int rc;

    ck_assert_ptr_nonnull(m);
    memcpy(m->uuid, n->uuid, sizeof(m->uuid));
    m->node_id = n->id;
    snprintf(m->name, sizeof(m->name), "%s", n->name);
    snprintf(m->rack, sizeof(m->rack), "%s", n->rack);
    snprintf(m->host, sizeof(m->host), "127.0.0.1");
    m->port = F.node_port;
    m->transports = CKPT_XPORT_TCP;
    m->n = n->n;
    for (uint32_t t = 0; t < n->n; t++) {
        m->t[t].id = n->tids[t];
        m->t[t].capacity = n->capacity;
        m->t[t].free = n->free;
        snprintf(m->t[t].path, sizeof(m->t[t].path), "/fake/%s/t%u", n->name, t);
    }
    ckpt_wbuf_init(&w, st, sizeof(st));
    ck_assert_int_eq(ckpt_msg_node_register_encode(&w, m), 0);
    ckpt_free(m);
    rc = mfx_call(CKPT_OP_NODE_REGISTER, &w, &call);
    if (rc == 0) {
        ck_assert_int_eq(ckpt_msg_node_register_resp_decode(call.resp_body, call.resp_body_len,
                                                            &r), 0);
        ck_assert_uint_eq(r.n, n->n);
        n->id = r.node_id;
        memcpy(n->tids, r.target_ids, sizeof(n->tids));
    }
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

/* HEARTBEAT of node i; returns the status (-ENOENT: unknown node). */
MFX_FN int mfx_heartbeat(int i, uint64_t *out_epoch)
{
    struct mfx_node *n = &F.nodes[i];
    struct ckpt_msg_heartbeat *m = ckpt_calloc(1, sizeof(*m));
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[512];
    int rc;

    ck_assert_ptr_nonnull(m);
    m->node_id = n->id;
    memcpy(m->uuid, n->uuid, sizeof(m->uuid));
    m->n = n->n;
    for (uint32_t t = 0; t < n->n; t++) {
        m->t[t].id = n->tids[t];
        m->t[t].capacity = n->capacity;
        m->t[t].free = n->free;
        m->t[t].used = n->capacity - n->free;
    }
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_heartbeat_encode(&w, m);
    ckpt_free(m);
    rc = mfx_call(CKPT_OP_HEARTBEAT, &w, &call);
    if (rc == 0 && out_epoch) {
        struct ckpt_msg_heartbeat_resp r;
        ck_assert_int_eq(ckpt_msg_heartbeat_resp_decode(call.resp_body, call.resp_body_len, &r),
                         0);
        *out_epoch = r.epoch;
    }
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

/* Add a node (not registered yet). */
MFX_FN int mfx_node_add(const char *name, const char *rack, uint32_t ntargets, uint64_t capacity,
                        uint64_t free_bytes)
{
    int i = F.nnodes++;
    struct mfx_node *n = &F.nodes[i];
    ck_assert_int_lt(i, MFX_MAX_NODES);
    memset(n, 0, sizeof(*n));
    for (int b = 0; b < CKPT_NODE_UUID_LEN; b++)
        n->uuid[b] = (uint8_t)(i * 31 + b + 1);
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->rack, sizeof(n->rack), "%s", rack ? rack : "");
    n->n = ntargets;
    n->capacity = capacity;
    n->free = free_bytes;
    return i;
}

MFX_FN void *mfx_hb_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&F.lock);
        int stop = F.hb_stop;
        pthread_mutex_unlock(&F.lock);
        if (stop)
            break;
        for (int i = 0; i < F.nnodes; i++) {
            pthread_mutex_lock(&F.lock);
            int alive = F.nodes[i].alive;
            pthread_mutex_unlock(&F.lock);
            if (alive)
                mfx_heartbeat(i, NULL);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Register every node, heartbeat each once (UP), and keep them alive. */
MFX_FN void mfx_nodes_up(void)
{
    for (int i = 0; i < F.nnodes; i++) {
        ck_assert_int_eq(mfx_register(i), 0);
        ck_assert_int_eq(mfx_heartbeat(i, NULL), 0);
        F.nodes[i].alive = 1;
    }
    if (!F.hb_started) {
        ck_assert_int_eq(pthread_create(&F.hb, NULL, mfx_hb_main, NULL), 0);
        F.hb_started = 1;
    }
}

MFX_FN void mfx_set_alive(int i, int alive)
{
    pthread_mutex_lock(&F.lock);
    F.nodes[i].alive = alive;
    pthread_mutex_unlock(&F.lock);
}

MFX_FN void mfx_hb_stop(void)
{
    if (!F.hb_started)
        return;
    pthread_mutex_lock(&F.lock);
    F.hb_stop = 1;
    pthread_mutex_unlock(&F.lock);
    pthread_join(F.hb, NULL);
    F.hb_started = 0;
    F.hb_stop = 0;
}

/* n racks-less nodes with one 1 TiB target each, all UP. */
MFX_FN void mfx_simple_cluster(int n)
{
    char name[16];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        mfx_node_add(name, NULL, 1, 1ull << 40, 1ull << 39);
    }
    mfx_nodes_up();
}

/* The cluster map through the client. */
MFX_FN void mfx_map(struct ckpt_msg_cluster_map_resp *out)
{
    ck_assert_int_eq(ckpt_mclient_map(F.mc, 0, out), 0);
}

MFX_FN uint32_t mfx_node_state(uint32_t node_id)
{
    struct ckpt_msg_cluster_map_resp m;
    uint32_t st = 99;
    mfx_map(&m);
    for (uint32_t i = 0; i < m.n_nodes; i++)
        if (m.nodes[i].id == node_id)
            st = m.nodes[i].state;
    ckpt_msg_cluster_map_resp_free(&m);
    return st;
}

MFX_FN uint64_t mfx_ms(void)
{
    return ckpt_now_ns() / 1000000ull;
}

MFX_FN void mfx_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll cond() every 10 ms until true or timeout_ms passed. */
#define MFX_WAIT_FOR(cond, timeout_ms)                                          \
    do {                                                                        \
        uint64_t mfx_deadline_ = mfx_ms() + (timeout_ms);                       \
        while (!(cond) && mfx_ms() < mfx_deadline_)                             \
            mfx_sleep_ms(10);                                                   \
    } while (0)

#endif

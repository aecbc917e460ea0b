/*
 * check_fs_io.c - unit tests of the FUSE client's data path (fs_write.c,
 * fs_read.c) in one process: write -> stripe buffers -> crc + erasure code
 * -> parallel CHUNK_WRITEs, and CHUNK_READs -> crc check -> generations ->
 * decode from parity, against six tiny in-test chunk servers built on
 * lib/net.h that keep chunks in memory and can be told to fail reads or
 * writes, or to answer slowly.
 *
 * These pin the pipeline's logic (sizes around chunk and stripe edges,
 * degraded writes, reads around lost, failed and stale chunks, holes,
 * read-modify-write, backpressure, read-ahead, parallel writers).  They do
 * not stand in for the cluster tests (tests/integration/test_fs_*.sh),
 * which run the real ckpt-meta and ckpt-node.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "check_meta_fixture.h"
#include "crc.h"
#include "err.h"
#include "fs_int.h"
#include "msg_node.h"
#include "net.h"

Suite *fs_io_suite(void);

#define NN 6
#define CHUNK (64u << 10)
#define K 4
#define M 2
#define SB ((uint64_t)K * CHUNK)

/* ---- in-memory chunk server ---------------------------------------------------- */

struct tchunk {
    struct tchunk *next;
    uint64_t ino, stripe, gen;
    uint16_t idx;
    uint32_t len, crc;
    uint8_t *data;
};

struct tnode {
    ckpt_server *srv;
    uint16_t port;
    uint32_t tid;
    pthread_mutex_t lock;
    struct tchunk *chunks;
    atomic_int fail_writes, fail_reads, delay_ms;
    atomic_int writes, reads;
};

static struct tnode nodes[NN];
static ckpt_net *net;
static fs_map *map;
static fs_client *cl;

/* Parked chunk writes: CHUNK_WRITEs of (park_ino, stripe 0) are held
 * unanswered until unpark(), to finish versions in a chosen order. */
static atomic_ullong park_ino;
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static struct parked {
    struct tnode *n;
    struct ckpt_req *req;
} parked[4 * NN];
static atomic_int nparked;
static void tn_handle(void *ctx, struct ckpt_req *req);

static bool park(struct tnode *n, struct ckpt_req *req, uint64_t ino, uint64_t stripe)
{
    bool held = false;
    pthread_mutex_lock(&park_lock);
    if (ino == atomic_load(&park_ino) && stripe == 0 && atomic_load(&nparked) < 4 * NN) {
        parked[atomic_load(&nparked)] = (struct parked){n, req};
        atomic_fetch_add(&nparked, 1);
        held = true;
    }
    pthread_mutex_unlock(&park_lock);
    return held;
}

static void unpark(void)
{
    struct parked p[4 * NN];
    pthread_mutex_lock(&park_lock);
    int np = atomic_load(&nparked);
    memcpy(p, parked, sizeof(p[0]) * (size_t)np);
    atomic_store(&nparked, 0);
    atomic_store(&park_ino, 0);
    pthread_mutex_unlock(&park_lock);
    for (int i = 0; i < np; i++)
        tn_handle(p[i].n, p[i].req);
}

static struct tchunk *tfind(struct tnode *n, uint64_t ino, uint64_t stripe, uint16_t idx)
{
    for (struct tchunk *c = n->chunks; c; c = c->next)
        if (c->ino == ino && c->stripe == stripe && c->idx == idx)
            return c;
    return NULL;
}

static void tn_handle(void *ctx, struct ckpt_req *req)
{
    struct tnode *n = ctx;
    uint8_t st[64];
    struct ckpt_wbuf w;

    if (atomic_load(&n->delay_ms)) {
        struct timespec ts = {0, atomic_load(&n->delay_ms) * 1000000L};
        nanosleep(&ts, NULL);
    }
    switch (req->hdr.opcode) {
    case CKPT_OP_CHUNK_WRITE: {
        struct ckpt_msg_chunk_write m;
        if (ckpt_msg_chunk_write_decode(req->body, req->body_len, &m) < 0) {
            ckpt_req_reply(req, CKPT_E_PROTO, NULL, 0, NULL, 0);
            return;
        }
        if (park(n, req, m.key.ino, m.key.stripe))
            return;
        atomic_fetch_add(&n->writes, 1);
        if (m.len != req->bulk_len || m.target != n->tid ||
            (m.len && ckpt_crc32c(0, req->bulk, m.len) != m.crc)) {
            ckpt_req_reply(req, m.target != n->tid ? -ENODEV : CKPT_E_CRC, NULL, 0, NULL, 0);
            return;
        }
        if (atomic_load(&n->fail_writes)) {
            ckpt_req_reply(req, -EIO, NULL, 0, NULL, 0);
            return;
        }
        pthread_mutex_lock(&n->lock);
        struct tchunk *c = tfind(n, m.key.ino, m.key.stripe, m.key.index);
        if (c && c->gen > m.gen) {
            pthread_mutex_unlock(&n->lock);
            ckpt_req_reply(req, CKPT_E_STALE, NULL, 0, NULL, 0);
            return;
        }
        if (!c) {
            c = calloc(1, sizeof(*c));
            c->ino = m.key.ino;
            c->stripe = m.key.stripe;
            c->idx = m.key.index;
            c->next = n->chunks;
            n->chunks = c;
        }
        free(c->data);
        c->data = malloc(m.len ? m.len : 1);
        if (m.len)
            memcpy(c->data, req->bulk, m.len);
        c->len = m.len;
        c->crc = m.crc;
        c->gen = m.gen;
        pthread_mutex_unlock(&n->lock);
        ckpt_req_reply(req, 0, NULL, 0, NULL, 0);
        return;
    }
    case CKPT_OP_CHUNK_READ: {
        struct ckpt_msg_chunk_read m;
        if (ckpt_msg_chunk_read_decode(req->body, req->body_len, &m) < 0) {
            ckpt_req_reply(req, CKPT_E_PROTO, NULL, 0, NULL, 0);
            return;
        }
        atomic_fetch_add(&n->reads, 1);
        if (atomic_load(&n->fail_reads)) {
            ckpt_req_reply(req, -EIO, NULL, 0, NULL, 0);
            return;
        }
        pthread_mutex_lock(&n->lock);
        struct tchunk *c = tfind(n, m.key.ino, m.key.stripe, m.key.index);
        if (!c) {
            pthread_mutex_unlock(&n->lock);
            ckpt_req_reply(req, -ENOENT, NULL, 0, NULL, 0);
            return;
        }
        uint32_t off = m.offset < c->len ? m.offset : c->len;
        uint32_t len = m.len ? m.len : c->len - off;
        if (len > c->len - off)
            len = c->len - off;
        struct ckpt_msg_chunk_read_resp r = {c->gen, c->len, ckpt_crc32c(0, c->data + off, len)};
        ckpt_wbuf_init(&w, st, sizeof(st));
        ckpt_msg_chunk_read_resp_encode(&w, &r);
        struct iovec iov = {c->data + off, len};
        ckpt_req_reply(req, 0, w.p, (uint32_t)w.len, &iov, len ? 1 : 0);
        pthread_mutex_unlock(&n->lock);
        return;
    }
    case CKPT_OP_CHUNK_DELETE: {
        struct ckpt_msg_chunk_delete m;
        struct ckpt_msg_chunk_delete_resp r = {0};
        if (ckpt_msg_chunk_delete_decode(req->body, req->body_len, &m) < 0) {
            ckpt_req_reply(req, CKPT_E_PROTO, NULL, 0, NULL, 0);
            return;
        }
        pthread_mutex_lock(&n->lock);
        for (struct tchunk **pp = &n->chunks; *pp;) {
            struct tchunk *c = *pp;
            if (c->ino == m.ino && c->stripe >= m.from_stripe &&
                (!m.below_gen || c->gen < m.below_gen)) {
                *pp = c->next;
                free(c->data);
                free(c);
                r.deleted++;
            } else {
                pp = &c->next;
            }
        }
        pthread_mutex_unlock(&n->lock);
        ckpt_wbuf_init(&w, st, sizeof(st));
        ckpt_msg_chunk_delete_resp_encode(&w, &r);
        ckpt_req_reply(req, 0, w.p, (uint32_t)w.len, NULL, 0);
        return;
    }
    case CKPT_OP_CHUNK_SYNC:
        ckpt_req_reply(req, 0, NULL, 0, NULL, 0);
        return;
    default:
        ckpt_req_reply(req, -EOPNOTSUPP, NULL, 0, NULL, 0);
    }
}

static const struct ckpt_server_ops tn_ops = {.handle = tn_handle};

static int map_fetch(void *ctx, uint64_t known, struct ckpt_msg_cluster_map_resp *out)
{
    (void)ctx;
    memset(out, 0, sizeof(*out));
    out->epoch = 1;
    if (known == 1) {
        out->unchanged = 1;
        return 0;
    }
    out->n_nodes = NN;
    out->n_targets = NN;
    out->nodes = ckpt_calloc(NN, sizeof(*out->nodes));
    out->targets = ckpt_calloc(NN, sizeof(*out->targets));
    for (int i = 0; i < NN; i++) {
        out->nodes[i].id = (uint32_t)i + 1;
        out->nodes[i].state = CKPT_NODE_UP;
        snprintf(out->nodes[i].host, sizeof(out->nodes[i].host), "127.0.0.1");
        out->nodes[i].port = nodes[i].port;
        out->targets[i].id = nodes[i].tid;
        out->targets[i].node_id = (uint32_t)i + 1;
        out->targets[i].state = CKPT_NODE_UP;
    }
    return 0;
}

static void start_all(uint64_t dirty_limit)
{
    struct ckpt_net_opts no;
    struct fs_opts o;

    memset(&no, 0, sizeof(no));
    no.name = "check";
    no.call_timeout_ms = 5000;
    ck_assert_int_eq(ckpt_net_create(&no, &net), 0);
    for (int i = 0; i < NN; i++) {
        memset(&nodes[i], 0, sizeof(nodes[i]));
        pthread_mutex_init(&nodes[i].lock, NULL);
        nodes[i].tid = 101 + (uint32_t)i;
        ck_assert_int_eq(ckpt_server_start(net, "127.0.0.1", 0, &tn_ops, &nodes[i],
                                           &nodes[i].srv), 0);
        nodes[i].port = ckpt_server_port(nodes[i].srv);
    }
    ck_assert_int_eq(fs_map_create(net, map_fetch, NULL, 1000, &map), 0);
    ck_assert_int_eq(fs_map_refresh(map), 0);
    fs_opts_default(&o);
    o.threads = 4;
    o.dirty_limit_bytes = dirty_limit;
    o.readahead_bytes = 4 * SB;
    o.chunk_timeout_ms = 5000;
    ck_assert_int_eq(fs_client_create(&o, &cl), 0);
    ck_assert_int_eq(fs_client_start_local(cl, net, map), 0);
}

static long live0;
static void setup(void)
{
    live0 = ckpt_alloc_live();
    start_all(64ull << 20);
}

static void stop_all(void)
{
    fs_client_destroy(cl);
    cl = NULL;
    fs_map_destroy(map);
    for (int i = 0; i < NN; i++) {
        ckpt_server_stop(nodes[i].srv);
        while (nodes[i].chunks) {
            struct tchunk *c = nodes[i].chunks;
            nodes[i].chunks = c->next;
            free(c->data);
            free(c);
        }
        pthread_mutex_destroy(&nodes[i].lock);
    }
    ckpt_net_destroy(net);
}

static void teardown(void)
{
    stop_all();
    ck_assert_int_eq(ckpt_alloc_live(), live0); /* nothing leaked */
}

/* ---- helpers ---------------------------------------------------------------- */

/* K+M over the test nodes, CHUNK bytes per chunk. */
static void test_layout(struct ckpt_layout *l)
{
    memset(l, 0, sizeof(*l));
    l->k = K;
    l->m = M;
    l->width = NN;
    l->chunk_size = CHUNK;
    for (int i = 0; i < NN; i++)
        l->targets[i] = nodes[i].tid;
}

static fs_inode *new_inode(uint64_t ino_no)
{
    struct ckpt_attr a;
    struct ckpt_layout l;
    fs_inode *ino = NULL;

    memset(&a, 0, sizeof(a));
    a.ino = ino_no;
    a.mode = S_IFREG | 0644;
    a.nlink = 1;
    a.data_gen = 1;
    test_layout(&l);
    ck_assert_int_eq(fs_inode_get(cl, &a, &l, &ino), 0);
    return ino;
}

static int copy_mem(void *ctx, void *dst, size_t n)
{
    const uint8_t **src = ctx;
    memcpy(dst, *src, n);
    *src += n;
    return 0;
}

static void wr(fs_inode *ino, uint64_t off, const uint8_t *p, size_t n)
{
    const uint8_t *src = p;
    ck_assert_int_eq(fs_write(ino, off, n, copy_mem, &src), (ssize_t)n);
}

static void drop_cache(fs_inode *ino)
{
    struct fs_rc *dead = NULL;
    pthread_mutex_lock(&ino->lock);
    fs_rc_drop_locked(ino, 0, true, &dead);
    pthread_mutex_unlock(&ino->lock);
    fs_rc_free_list(cl, dead);
}

/* Read [off, off+n) into out; return the byte count or a negative code. */
static ssize_t rd(fs_inode *ino, uint64_t off, size_t n, uint8_t *out)
{
    struct fs_rres r;
    int rc = fs_read(ino, off, n, &r);
    if (rc < 0)
        return rc;
    size_t pos = 0;
    for (int i = 0; i < r.niov; i++) {
        memcpy(out + pos, r.iov[i].iov_base, r.iov[i].iov_len);
        pos += r.iov[i].iov_len;
    }
    ck_assert_uint_eq(pos, r.total);
    fs_rres_done(ino, &r);
    return (ssize_t)pos;
}

static void check_all(fs_inode *ino, const uint8_t *want, size_t n)
{
    uint8_t *got = malloc(n + 1);
    size_t pos = 0;
    /* In 1 MiB-like pieces that do not line up with stripes. */
    while (pos < n) {
        size_t piece = n - pos < 100000 ? n - pos : 100000;
        ssize_t r = rd(ino, pos, piece, got + pos);
        ck_assert_int_eq(r, (ssize_t)piece);
        pos += piece;
    }
    ck_assert(memcmp(got, want, n) == 0);
    ck_assert_int_eq(rd(ino, n, 10, got), 0); /* EOF */
    free(got);
}

static uint8_t *rnd(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        p[i] = (uint8_t)((s * 0x2545F4914F6CDD1DULL) >> 56);
    }
    return p;
}

static int count_chunks(uint64_t ino, uint64_t stripe, uint64_t *out_gen_min)
{
    int n = 0;
    uint64_t g = UINT64_MAX;
    for (int i = 0; i < NN; i++) {
        pthread_mutex_lock(&nodes[i].lock);
        for (struct tchunk *c = nodes[i].chunks; c; c = c->next)
            if (c->ino == ino && c->stripe == stripe) {
                n++;
                if (c->gen < g)
                    g = c->gen;
            }
        pthread_mutex_unlock(&nodes[i].lock);
    }
    if (out_gen_min)
        *out_gen_min = g;
    return n;
}

static void set_gen(fs_inode *ino, uint64_t gen)
{
    pthread_mutex_lock(&ino->lock);
    ino->gen = gen;
    pthread_mutex_unlock(&ino->lock);
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST(test_roundtrip_sizes)
{
    const size_t sizes[] = {1, CHUNK - 1, CHUNK + 1, SB - 1, SB + 1, 3 * SB + 12345};
    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        size_t n = sizes[t];
        uint8_t *d = rnd(n, (unsigned)t + 1);
        fs_inode *ino = new_inode(1000 + t);
        /* Odd pieces: a first write that ends mid-chunk, then the rest. */
        size_t first = n > 1000 ? 1000 : n;
        wr(ino, 0, d, first);
        if (n > first)
            wr(ino, first, d + first, n - first);
        ck_assert_int_eq(fs_flush_wait(ino), 0);
        uint64_t ns = (n + SB - 1) / SB, g;
        for (uint64_t s = 0; s < ns; s++) {
            ck_assert_int_eq(count_chunks(1000 + t, s, &g), K + M);
            ck_assert_uint_eq(g, 1);
        }
        uint32_t crc;
        pthread_mutex_lock(&ino->lock);
        ck_assert(fs_file_crc_locked(ino, n, &crc));
        pthread_mutex_unlock(&ino->lock);
        ck_assert_uint_eq(crc, ckpt_crc32c(0, d, n));
        check_all(ino, d, n);
        fs_inode_put(ino);
        free(d);
    }
    ck_assert_uint_eq(atomic_load(&cl->st.stripes_degraded), 0);
    ck_assert_uint_eq(atomic_load(&cl->st.stripes_decoded), 0);
}
END_TEST

START_TEST(test_degraded_reads)
{
    size_t n = 5 * SB + 777;
    uint8_t *d = rnd(n, 7);
    fs_inode *ino = new_inode(2000);
    wr(ino, 0, d, n);
    ck_assert_int_eq(fs_flush_wait(ino), 0);

    atomic_store(&nodes[0].fail_reads, 1);
    check_all(ino, d, n);
    ck_assert_uint_gt(atomic_load(&cl->st.stripes_decoded), 0);
    drop_cache(ino);
    atomic_store(&nodes[3].fail_reads, 1);
    check_all(ino, d, n);          /* m = 2 failures: still bit-exact */
    drop_cache(ino);
    atomic_store(&nodes[5].fail_reads, 1);
    uint8_t buf[16];
    ck_assert_int_eq(rd(ino, 0, sizeof(buf), buf), -EIO); /* 3 > m */
    for (int i = 0; i < NN; i++)
        atomic_store(&nodes[i].fail_reads, 0);
    drop_cache(ino);
    check_all(ino, d, n);
    fs_inode_put(ino);
    free(d);
}
END_TEST

START_TEST(test_degraded_write)
{
    size_t n = 4 * SB + 5;
    uint8_t *d = rnd(n, 9);
    fs_inode *ino = new_inode(3000);

    atomic_store(&nodes[2].fail_writes, 1);
    wr(ino, 0, d, n);
    ck_assert_int_eq(fs_flush_wait(ino), 0);   /* >= k chunks: success */
    ck_assert_uint_eq(atomic_load(&cl->st.stripes_degraded), 5);
    ck_assert_uint_eq(atomic_load(&cl->st.stripes_failed), 0);
    for (uint64_t s = 0; s < 5; s++)
        ck_assert_int_eq(count_chunks(3000, s, NULL), K + M - 1);
    atomic_store(&nodes[2].fail_writes, 0);
    check_all(ino, d, n);                      /* absent chunks rebuilt from parity */
    ck_assert_uint_gt(atomic_load(&cl->st.stripes_decoded), 0);
    fs_inode_put(ino);
    free(d);
}
END_TEST

START_TEST(test_write_failure_is_eio)
{
    size_t n = 2 * SB;
    uint8_t *d = rnd(n, 11);
    fs_inode *ino = new_inode(4000);

    atomic_store(&nodes[1].fail_writes, 1);
    atomic_store(&nodes[2].fail_writes, 1);
    atomic_store(&nodes[4].fail_writes, 1);
    wr(ino, 0, d, n);
    ck_assert_int_eq(fs_flush_wait(ino), -EIO);
    ck_assert_uint_gt(atomic_load(&cl->st.stripes_failed), 0);
    const uint8_t *src = d;
    ck_assert_int_eq(fs_write(ino, n, 10, copy_mem, &src), -EIO);
    for (int i = 0; i < NN; i++)
        atomic_store(&nodes[i].fail_writes, 0);
    fs_inode_put(ino);
    free(d);
}
END_TEST

START_TEST(test_overwrite_and_stale)
{
    size_t n = 2 * SB + 100;
    uint8_t *d = rnd(n, 13);
    uint8_t patch[300];
    fs_inode *ino = new_inode(5000);
    uint64_t g;

    wr(ino, 0, d, n);
    ck_assert_int_eq(fs_flush_wait(ino), 0);

    /* A later open for writing brings a new generation; overwrite inside
     * stripe 0 needs its old bytes back (read-modify-write). */
    set_gen(ino, 2);
    memset(patch, 0xab, sizeof(patch));
    memcpy(d + 70000, patch, sizeof(patch));
    wr(ino, 70000, patch, sizeof(patch));
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    ck_assert_uint_ge(atomic_load(&cl->st.rmw_loads), 1);
    ck_assert_int_eq(count_chunks(5000, 0, &g), K + M);
    ck_assert_uint_eq(g, 2);
    ck_assert_int_eq(count_chunks(5000, 1, &g), K + M);
    ck_assert_uint_eq(g, 1);
    drop_cache(ino);
    check_all(ino, d, n);

    /* Generation 3 rewrites chunk 1 of stripe 0 (bytes CHUNK..2*CHUNK)
     * while its target refuses writes: that target keeps the generation-2
     * chunk, which a reader must recognise as stale and rebuild. */
    set_gen(ino, 3);
    memset(patch, 0x5c, sizeof(patch));
    memcpy(d + CHUNK + 10, patch, sizeof(patch));
    atomic_store(&nodes[1].fail_writes, 1); /* stripe 0, chunk 1 -> targets[1] */
    wr(ino, CHUNK + 10, patch, sizeof(patch));
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    atomic_store(&nodes[1].fail_writes, 0);
    uint64_t dec0 = atomic_load(&cl->st.stripes_decoded);
    drop_cache(ino);
    check_all(ino, d, n);
    ck_assert_uint_gt(atomic_load(&cl->st.stripes_decoded), dec0);
    fs_inode_put(ino);
    free(d);
}
END_TEST

START_TEST(test_holes)
{
    size_t n = 3 * SB + 10;
    uint8_t *d = calloc(1, n);
    fs_inode *ino = new_inode(6000);

    memset(d + 3 * SB, 0x77, 10);
    wr(ino, 3 * SB, d + 3 * SB, 10);
    /* A second sparse write inside one stripe leaves a zero gap. */
    memset(d + CHUNK * 2 + 5, 0x66, 3);
    wr(ino, CHUNK * 2 + 5, d + CHUNK * 2 + 5, 3);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    ck_assert_int_eq(count_chunks(6000, 1, NULL), 0); /* never written: a hole */
    ck_assert_int_eq(count_chunks(6000, 2, NULL), 0);
    check_all(ino, d, n);
    uint32_t crc;
    pthread_mutex_lock(&ino->lock);
    ck_assert(!fs_file_crc_locked(ino, n, &crc)); /* not written sequentially */
    pthread_mutex_unlock(&ino->lock);
    fs_inode_put(ino);
    free(d);
}
END_TEST

START_TEST(test_read_own_unflushed)
{
    size_t n = SB + 4000;
    uint8_t *d = rnd(n, 17);
    fs_inode *ino = new_inode(7000);

    for (int i = 0; i < NN; i++)
        atomic_store(&nodes[i].delay_ms, 30);
    wr(ino, 0, d, n);
    /* The tail stripe is still in the buffer (not submitted): served here. */
    check_all(ino, d, n);
    for (int i = 0; i < NN; i++)
        atomic_store(&nodes[i].delay_ms, 0);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    fs_inode_put(ino);
    free(d);
}
END_TEST

/* fs_write_adopt: a whole, aligned chunk in a chunk-sized buffer becomes
 * the chunk (no copy) and the caller gets the displaced buffer back, which
 * it may scribble on (the next request lands there); anything else, or a
 * chunk a reader is replying from, is copied. */
static uint64_t adopted(void)
{
    return atomic_load(&cl->st.chunks_adopted);
}

START_TEST(test_write_adopt)
{
    size_t n = 2 * SB + 3000;
    uint8_t *d = rnd(n, 41);
    fs_inode *ino = new_inode(7100);
    uint8_t *buf = fs_client_buf_get(cl, CHUNK);
    ck_assert_ptr_nonnull(buf);

    uint64_t a0 = adopted();
    for (uint64_t off = 0; off < 2 * SB; off += CHUNK) {
        uint8_t *was = buf;
        memcpy(buf, d + off, CHUNK);
        ck_assert_int_eq(fs_write_adopt(ino, off, CHUNK, &buf, CHUNK), (ssize_t)CHUNK);
        ck_assert_ptr_ne(buf, was);
        memset(buf, 0xa5, CHUNK); /* the next request */
    }
    ck_assert_uint_eq(adopted() - a0, 2 * K);
    /* Not a whole aligned chunk: copied, the buffer stays the caller's. */
    uint8_t *was = buf;
    memcpy(buf, d + 2 * SB, 3000);
    ck_assert_int_eq(fs_write_adopt(ino, 2 * SB, 3000, &buf, CHUNK), 3000);
    ck_assert_ptr_eq(buf, was);
    memset(buf, 0x5a, CHUNK);
    ck_assert_uint_eq(adopted() - a0, 2 * K);
    check_all(ino, d, n);

    /* A reader replying from the open version's chunk: copied instead. */
    size_t n2 = 3 * SB;
    uint8_t *d2 = rnd(CHUNK, 43);
    memset(buf, 0x11, CHUNK);
    ck_assert_int_eq(fs_write_adopt(ino, 2 * SB + CHUNK, CHUNK - 10, &buf, CHUNK), CHUNK - 10);
    struct fs_rres r;
    ck_assert_int_eq(fs_read(ino, 2 * SB + CHUNK, 100, &r), 0);
    ck_assert_uint_eq(r.total, 100);
    ck_assert_int_eq(r.niov, 1);
    ck_assert_uint_eq(((uint8_t *)r.iov[0].iov_base)[0], 0x11);
    memcpy(buf, d2, CHUNK);
    was = buf;
    ck_assert_int_eq(fs_write_adopt(ino, 2 * SB + CHUNK, CHUNK, &buf, CHUNK), (ssize_t)CHUNK);
    ck_assert_ptr_eq(buf, was);
    ck_assert_uint_eq(adopted() - a0, 2 * K);
    /* The pinned reply points at the chunk's own buffer, which the copy
     * filled; the caller's buffer (the next request) is another one. */
    memset(buf, 0x77, CHUNK);
    ck_assert(memcmp(r.iov[0].iov_base, d2, 100) == 0);
    fs_rres_done(ino, &r);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    uint8_t *want = calloc(1, n2);
    ck_assert_ptr_nonnull(want);
    memcpy(want, d, n);
    memcpy(want + 2 * SB + CHUNK, d2, CHUNK);
    drop_cache(ino);
    check_all(ino, want, 2 * SB + 2 * CHUNK);
    free(want);
    free(d2);
    fs_client_buf_put(cl, buf, CHUNK);
    fs_inode_put(ino);
    free(d);
}
END_TEST

START_TEST(test_readahead)
{
    size_t n = 12 * SB;
    uint8_t *d = rnd(n, 19);
    uint8_t *got = malloc(n);
    fs_inode *ino = new_inode(8000);

    wr(ino, 0, d, n);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    for (size_t pos = 0; pos < n; pos += CHUNK)
        ck_assert_int_eq(rd(ino, pos, CHUNK, got + pos), CHUNK);
    ck_assert(memcmp(got, d, n) == 0);
    ck_assert_uint_gt(atomic_load(&cl->st.ra_hits), 0);
    fs_inode_put(ino);
    free(got);
    free(d);
}
END_TEST

struct pw {
    fs_inode *ino;
    const uint8_t *d;
    int id;
};

static void *pw_thread(void *arg)
{
    struct pw *p = arg;
    /* Thread i writes every 4th 50000-byte block. */
    for (uint64_t off = (uint64_t)p->id * 50000; off < 6 * SB; off += 4 * 50000) {
        size_t len = 6 * SB - off < 50000 ? 6 * SB - off : 50000;
        const uint8_t *src = p->d + off;
        if (fs_write(p->ino, off, len, copy_mem, &src) != (ssize_t)len)
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_parallel_writers)
{
    size_t n = 6 * SB;
    uint8_t *d = rnd(n, 23);
    fs_inode *ino = new_inode(9000);
    pthread_t t[4];
    struct pw p[4];

    for (int i = 0; i < 4; i++) {
        p[i] = (struct pw){ino, d, i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, pw_thread, &p[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_ptr_null(r);
    }
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    drop_cache(ino);
    check_all(ino, d, n);
    fs_inode_put(ino);
    free(d);
}
END_TEST

/* A budget of two stripes and slow nodes: writers wait, memory stays bounded. */
START_TEST(test_backpressure)
{
    teardown();
    start_all(2 * (K + M) * (uint64_t)CHUNK);
    size_t n = 16 * SB;
    uint8_t *d = rnd(n, 29);
    fs_inode *ino = new_inode(10000);

    for (int i = 0; i < NN; i++)
        atomic_store(&nodes[i].delay_ms, 5);
    for (size_t pos = 0; pos < n; pos += 100000)
        wr(ino, pos, d + pos, n - pos < 100000 ? n - pos : 100000);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    struct fs_pool_stats ps;
    /* The last buffer goes back just after its version is marked done. */
    uint64_t t0 = ckpt_now_ns();
    do {
        fs_pool_get_stats(cl->pool, &ps);
    } while (ps.in_use && ckpt_now_ns() - t0 < 2000000000ull);
    ck_assert_uint_le(ps.peak, 2 * (K + M) * (uint64_t)CHUNK);
    ck_assert_uint_gt(ps.waits, 0);
    ck_assert_uint_eq(ps.in_use, 0);
    for (int i = 0; i < NN; i++)
        atomic_store(&nodes[i].delay_ms, 0);
    check_all(ino, d, n);
    fs_inode_put(ino);
    free(d);
}
END_TEST

/* A hole: every data chunk answers -ENOENT (the teardown checks that no
 * answer was left allocated: a quick error reply once was). */
START_TEST(test_hole_load)
{
    fs_inode *ino = new_inode(6100);
    uint8_t *buf = malloc(SB), *bufs[FS_MAX_CHUNKS];
    ck_assert_ptr_nonnull(buf);
    fs_chunk_ptrs(buf, ino->k, ino->chunk, bufs);
    for (int rep = 0; rep < 20; rep++) {
        memset(buf, 0xee, SB);
        ck_assert_int_eq(fs_stripe_load(ino, (uint64_t)rep % 3, 3 * SB, bufs), 0);
        for (size_t i = 0; i < SB; i++)
            ck_assert_uint_eq(buf[i], 0);
    }
    free(buf);
    fs_inode_put(ino);
}
END_TEST

/* O_TRUNC from another open while full stripes wait on the write-behind
 * list: they must be finished (not waited for forever), then cut away. */
START_TEST(test_otrunc_with_held)
{
    size_t n = 3 * SB;
    uint8_t *d = rnd(n, 31);
    fs_inode *ino = new_inode(11000);
    struct ckpt_attr a;

    wr(ino, 0, d, n);                 /* three full stripes, held */
    memset(&a, 0, sizeof(a));
    a.ino = 11000;
    a.mode = S_IFREG | 0644;
    a.size = 0;
    a.data_gen = 2;
    fs_after_otrunc(cl, ino, &a, &ino->layout);
    pthread_mutex_lock(&ino->lock);
    ck_assert_uint_eq(ino->size, 0);
    ck_assert_uint_eq(ino->gen, 2);
    ck_assert_ptr_null(ino->fl_head);
    pthread_mutex_unlock(&ino->lock);
    for (uint64_t s = 0; s < 3; s++)
        ck_assert_int_eq(count_chunks(11000, s, NULL), 0); /* older generation deleted */
    uint8_t buf[8];
    ck_assert_int_eq(rd(ino, 0, sizeof(buf), buf), 0);
    /* And the file takes new data at the new generation. */
    wr(ino, 0, d, 1000);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    uint64_t g;
    ck_assert_int_eq(count_chunks(11000, 0, &g), K + M);
    ck_assert_uint_eq(g, 2);
    check_all(ino, d, 1000);
    fs_inode_put(ino);
    free(d);
}
END_TEST

/* close(): the file's versions wait while another file of the mount is
 * still being written, and go once the mount pauses; with writes that
 * never pause, FS_HOLD_CLOSED_MS after the close at the latest. */
static uint64_t written_stripes(void)
{
    return atomic_load(&cl->st.stripes_written);
}

/* Write 1000 bytes to b every 50 ms until pred() or `ms` passed; returns
 * the longest gap between two writes (ns). */
static uint64_t keep_writing(fs_inode *b, const uint8_t *d, uint64_t ms, uint64_t w0, uint64_t want)
{
    uint64_t t0 = ckpt_now_ns(), last = t0, gap = 0;
    for (int i = 0; ckpt_now_ns() - t0 < ms * 1000000ull && written_stripes() - w0 < want; i++) {
        wr(b, (uint64_t)(i % 64) * 1000, d, 1000);
        uint64_t now = ckpt_now_ns();
        if (now - last > gap)
            gap = now - last;
        last = now;
        usleep(50 * 1000);
    }
    return gap;
}

START_TEST(test_close_waits_for_writers)
{
    size_t n = 2 * SB + 1000;
    uint8_t *d = rnd(n, 37);
    fs_inode *a = new_inode(12000), *b = new_inode(12001);

    atomic_store(&cl->writers_open, 1); /* b's handle (a's was released) */
    wr(a, 0, d, n);
    uint64_t w0 = written_stripes();
    uint64_t t0 = ckpt_now_ns();
    (void)fs_flush_close(a);
    /* b writes every 50 ms (under FS_HOLD_IDLE_MS) for 600 ms: nothing of
     * a is sent meanwhile, its partial last stripe included.  (Checked
     * only when the machine kept the writes that regular.) */
    uint64_t gap = keep_writing(b, d, 600, w0, 1);
    uint64_t w1 = written_stripes();
    if (gap < FS_HOLD_IDLE_MS * 1000000ull * 3 / 4 &&
        ckpt_now_ns() - t0 < FS_HOLD_CLOSED_MS * 1000000ull * 9 / 10)
        ck_assert_uint_eq(w1 - w0, 0);
    /* The mount pauses: a goes without anyone asking. */
    uint64_t deadline = ckpt_now_ns() + 10000000000ull;
    while (written_stripes() - w0 < 3 && ckpt_now_ns() < deadline)
        usleep(10 * 1000);
    ck_assert_uint_eq(written_stripes() - w0, 3);
    for (uint64_t s = 0; s < 3; s++)
        ck_assert_int_eq(count_chunks(12000, s, NULL), K + M);

    /* Writes that never pause: a's new version goes FS_HOLD_CLOSED_MS
     * after its close, give or take the flusher's 50 ms tick. */
    wr(a, n, d, 1000);
    w0 = written_stripes();
    t0 = ckpt_now_ns();
    (void)fs_flush_close(a);
    (void)keep_writing(b, d, 10000, w0, 1);
    uint64_t took = ckpt_now_ns() - t0;
    ck_assert_uint_eq(written_stripes() - w0, 1);
    ck_assert_uint_ge(took, FS_HOLD_CLOSED_MS * 1000000ull);
    ck_assert_uint_lt(took, 10000000000ull);

    /* The last writer closes: the closed files' versions go at once. */
    wr(a, n + 1000, d, 1000);
    w0 = written_stripes();
    t0 = ckpt_now_ns();
    (void)fs_flush_close(a);
    (void)keep_writing(b, d, 200, w0, 1);
    atomic_store(&cl->writers_open, 0);
    fs_client_unhold_closed(cl);
    /* (b keeps writing, so neither the pause nor the time rule applies) */
    gap = keep_writing(b, d, 10000, w0, 1);
    took = ckpt_now_ns() - t0;
    ck_assert_uint_eq(written_stripes() - w0, 1);
    if (gap < FS_HOLD_IDLE_MS * 1000000ull * 3 / 4)
        ck_assert_uint_lt(took, FS_HOLD_CLOSED_MS * 1000000ull);
    ck_assert_int_eq(fs_flush_wait(a), 0);
    ck_assert_int_eq(fs_flush_wait(b), 0);
    uint8_t *want = malloc(n + 2000);
    ck_assert_ptr_nonnull(want);
    memcpy(want, d, n);
    memcpy(want + n, d, 1000);
    memcpy(want + n + 1000, d, 1000);
    check_all(a, want, n + 2000);
    free(want);
    fs_inode_put(a);
    fs_inode_put(b);
    free(d);
}
END_TEST

static uint64_t cached_bufs(void)
{
    pthread_mutex_lock(&cl->lock);
    uint64_t b = cl->buf_cached;
    pthread_mutex_unlock(&cl->lock);
    return b;
}

/* The flusher reads the option under cl->lock. */
static void set_keep(uint64_t ms)
{
    pthread_mutex_lock(&cl->lock);
    cl->opts.buffer_keep_ms = ms;
    pthread_mutex_unlock(&cl->lock);
}

/* buffer_keep: written stripe buffers stay for the next checkpoint while
 * the mount is idle for less than it, and are given back after it. */
START_TEST(test_buffer_keep)
{
    uint8_t *d = rnd(4 * SB, 47);
    fs_inode *ino = new_inode(12000);

    set_keep(3600000);
    wr(ino, 0, d, 4 * SB);
    ck_assert_int_eq(fs_flush_wait(ino), 0);
    MFX_WAIT_FOR(cached_bufs() >= 4 * SB, 2000); /* the last goes back just after */
    ck_assert_uint_ge(cached_bufs(), 4 * SB);
    mfx_sleep_ms(300); /* the flusher looks every 50 ms: kept */
    ck_assert_uint_ge(cached_bufs(), 4 * SB);
    set_keep(100);
    MFX_WAIT_FOR(cached_bufs() == 0, 2000);
    ck_assert_uint_eq(cached_bufs(), 0);
    check_all(ino, d, 4 * SB);
    fs_inode_put(ino);
    free(d);
}
END_TEST

/* 1 MiB buffers (chunks, FUSE payloads) are halves of a 2 MiB slab that
 * can be one huge page; the slab is given back once both halves are free
 * and the mount is idle, not while one half is in use. */
START_TEST(test_slab_bufs)
{
    const size_t MB = 1u << 20;
    set_keep(3600000);
    uint8_t *a = fs_client_buf_get(cl, MB), *b = fs_client_buf_get(cl, MB);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq((uintptr_t)a % (2 * MB), 0);
    ck_assert_ptr_eq(b, a + MB);
    memset(a, 1, MB);
    memset(b, 2, MB);
    ck_assert_uint_eq(cached_bufs(), 0);
    fs_client_buf_put(cl, a, MB);
    ck_assert_uint_eq(cached_bufs(), MB);
    set_keep(50);
    mfx_sleep_ms(300); /* idle: but b is in use, so the slab stays */
    ck_assert_uint_eq(cached_bufs(), MB);
    ck_assert_uint_eq(b[MB - 1], 2);
    uint8_t *c = fs_client_buf_get(cl, MB); /* the free half again */
    ck_assert_ptr_eq(c, a);
    fs_client_buf_put(cl, c, MB);
    fs_client_buf_put(cl, b, MB);
    MFX_WAIT_FOR(cached_bufs() == 0, 2000);
    ck_assert_uint_eq(cached_bufs(), 0);
    pthread_mutex_lock(&cl->lock);
    for (int i = 0; i < FS_SLAB_BUCKETS; i++)
        ck_assert_ptr_null(cl->slabs[i]);
    pthread_mutex_unlock(&cl->lock);
}
END_TEST

/* ---- with the real ckpt-meta (in process, check_meta_fixture.h) ---------------- */

static void setup_meta(void)
{
    live0 = ckpt_alloc_live();
    mfx_setup_with(NULL);
    mfx_simple_cluster(NN);
    start_all(64ull << 20);
    cl->mc = F.mc; /* borrowed: the fixture destroys it */
}

static void teardown_meta(void)
{
    stop_all();
    mfx_teardown();
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}

static uint32_t inode_refs(fs_inode *ino)
{
    pthread_mutex_lock(&cl->lock);
    uint32_t r = ino->refs;
    pthread_mutex_unlock(&cl->lock);
    return r;
}

static struct fs_fh *meta_handle(fs_inode *ino, const struct ckpt_msg_open_resp *r)
{
    struct fs_fh *fh = ckpt_calloc(1, sizeof(*fh));
    fh->rel = ckpt_calloc(1, sizeof(*fh->rel));
    ck_assert(fh && fh->rel);
    fs_inode_ref(ino);
    fh->ino = ino;
    fh->handle = r->handle;
    fh->may_write = true;
    atomic_init(&fh->wrote, true);
    return fh;
}

/* Two closes whose flushes finish together: the older handle's stripe is
 * held at the nodes while the newer one (which made the file longer) is
 * written, then both complete at once.  ckpt-meta stores the size each
 * RELEASE carries, so they must arrive in the order they were made, or
 * the file goes back to the older size (CI saw an O_APPEND then write
 * past that size and zeros appear in between). */
START_TEST(test_release_order)
{
    struct ckpt_msg_open_resp r1, r2;
    struct ckpt_attr a;
    uint8_t *d = rnd(SB + 100, 41);

    for (int round = 0; round < 10; round++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", round);
        ck_assert_int_eq(ckpt_mclient_create_file(F.mc, 1, name, S_IFREG | 0644, 0, 0,
                                                  O_CREAT | O_RDWR, &r1), 0);
        ck_assert_int_eq(ckpt_mclient_open(F.mc, r1.attr.ino, O_RDWR, &r2), 0);
        fs_inode *ino = new_inode(r1.attr.ino);
        struct fs_fh *h1 = meta_handle(ino, &r1), *h2 = meta_handle(ino, &r2);

        atomic_store(&park_ino, r1.attr.ino);
        wr(ino, 0, d, 100);               /* handle 1: size 100, stripe 0 held */
        fs_release_deferred(h1);
        ckpt_free(h1);
        wr(ino, SB, d + 100, 100);        /* handle 2: size SB + 100 */
        fs_release_deferred(h2);
        ckpt_free(h2);
        /* Stripe 1 done, stripe 0 still held: neither RELEASE may go. */
        MFX_WAIT_FOR(count_chunks(r1.attr.ino, 1, NULL) == K + M &&
                     atomic_load(&nparked) == K + M, 5000);
        ck_assert_int_eq(atomic_load(&nparked), K + M);
        mfx_sleep_ms(20);
        /* ours, two RELEASEs waiting, the version of stripe 0 */
        ck_assert_uint_eq(inode_refs(ino), 4);
        unpark();
        MFX_WAIT_FOR(inode_refs(ino) == 1, 5000);
        ck_assert_uint_eq(inode_refs(ino), 1);
        ck_assert_int_eq(ckpt_mclient_getattr(F.mc, r1.attr.ino, &a), 0);
        ck_assert_uint_eq(a.size, SB + 100);
        fs_inode_put(ino);
    }
    free(d);
}
END_TEST

static void *unpark_later(void *arg)
{
    (void)arg;
    mfx_sleep_ms(50);
    unpark();
    return NULL;
}

/* A truncate after a close: the close's RELEASE (the longer size) is
 * answered before the truncate's SETATTR goes, never after it. */
START_TEST(test_truncate_after_release)
{
    struct ckpt_msg_open_resp r1;
    struct ckpt_msg_setattr sa;
    struct ckpt_attr a;
    uint8_t *d = rnd(1000, 43);

    ck_assert_int_eq(ckpt_mclient_create_file(F.mc, 1, "t", S_IFREG | 0644, 0, 0,
                                              O_CREAT | O_RDWR, &r1), 0);
    fs_inode *ino = new_inode(r1.attr.ino);
    struct fs_fh *h1 = meta_handle(ino, &r1);
    atomic_store(&park_ino, r1.attr.ino);
    wr(ino, 0, d, 1000);
    fs_release_deferred(h1);
    ckpt_free(h1);
    MFX_WAIT_FOR(atomic_load(&nparked) == K + M, 5000);
    memset(&sa, 0, sizeof(sa));
    sa.ino = r1.attr.ino;
    sa.valid = CKPT_SETATTR_SIZE;
    sa.size = 10;
    /* The truncate drains the write-back, which unparks from another thread. */
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, unpark_later, NULL), 0);
    ck_assert_int_eq(fs_truncate(ino, &sa, &a), 0);
    pthread_join(t, NULL);
    MFX_WAIT_FOR(inode_refs(ino) == 1, 5000);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, r1.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 10);
    fs_inode_put(ino);
    free(d);
}
END_TEST

/* A file ckpt-meta marks incomplete (a writer closed it after a flush that
 * lost data, or died): fsync through a later open says EIO, so `ckpt wait`
 * does not call it safe, until the file is written again with O_TRUNC. */
START_TEST(test_incomplete_fsync)
{
    struct ckpt_msg_open_resp r1, r2, r3;
    struct ckpt_msg_release m;
    struct ckpt_layout l;
    fs_inode *ino = NULL;

    ck_assert_int_eq(ckpt_mclient_create_file(F.mc, 1, "inc", S_IFREG | 0644, 0, 0,
                                              O_CREAT | O_RDWR, &r1), 0);
    memset(&m, 0, sizeof(m));
    m.ino = r1.attr.ino;
    m.handle = r1.handle;
    m.session = ckpt_mclient_session(F.mc);
    m.wrote = 1;
    m.lost = 1;
    m.size = 4096;
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &m), 0);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, r1.attr.ino, O_RDONLY, &r2), 0);
    ck_assert_uint_eq(r2.attr.flags & CKPT_ATTR_F_INCOMPLETE, CKPT_ATTR_F_INCOMPLETE);
    test_layout(&l);
    ck_assert_int_eq(fs_inode_get(cl, &r2.attr, &l, &ino), 0);
    struct fs_fh *fh = meta_handle(ino, &r2);
    atomic_store(&fh->wrote, false);
    ck_assert_int_eq(fs_fsync(fh), -EIO);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, r1.attr.ino, O_WRONLY | O_TRUNC, &r3), 0);
    ck_assert_uint_eq(r3.attr.flags & CKPT_ATTR_F_INCOMPLETE, 0);
    fs_after_otrunc(cl, ino, &r3.attr, &l);
    ck_assert_int_eq(fs_fsync(fh), 0);
    fs_release_deferred(fh);
    ckpt_free(fh);
    struct fs_fh *fh3 = meta_handle(ino, &r3);
    atomic_store(&fh3->wrote, false);
    fs_release_deferred(fh3);
    ckpt_free(fh3);
    fs_inode_put(ino);
}
END_TEST

/* The session ends with a handle the kernel never released (its RELEASE
 * was still queued at SIGTERM, just after the close()): unmount releases
 * it after the write-back, so ckpt-meta has the size and the file is not
 * left open or incomplete. */
START_TEST(test_unreleased_at_unmount)
{
    struct ckpt_msg_open_resp r1;
    struct ckpt_layout l;
    struct ckpt_attr a;
    fs_inode *ino = NULL;
    uint8_t *d = rnd(1000, 53);

    ck_assert_int_eq(ckpt_mclient_create_file(F.mc, 1, "u", S_IFREG | 0644, 0, 0,
                                              O_CREAT | O_RDWR, &r1), 0);
    test_layout(&l);
    ck_assert_int_eq(fs_inode_get(cl, &r1.attr, &l, &ino), 0);
    struct fs_fh *fh = meta_handle(ino, &r1);
    fs_client_fh_track(cl, fh);
    wr(ino, 0, d, 1000);
    fs_inode_put(ino);
    stop_all(); /* the unmount */
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, r1.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 1000);
    ck_assert_uint_eq(a.flags & CKPT_ATTR_F_INCOMPLETE, 0);
    start_all(64ull << 20); /* for the teardown */
    cl->mc = F.mc;
    free(d);
}
END_TEST

Suite *fs_io_suite(void)
{
    Suite *s = suite_create("fs_io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_hole_load);
    tcase_add_test(tc, test_roundtrip_sizes);
    tcase_add_test(tc, test_degraded_reads);
    tcase_add_test(tc, test_degraded_write);
    tcase_add_test(tc, test_write_failure_is_eio);
    tcase_add_test(tc, test_overwrite_and_stale);
    tcase_add_test(tc, test_holes);
    tcase_add_test(tc, test_read_own_unflushed);
    tcase_add_test(tc, test_write_adopt);
    tcase_add_test(tc, test_readahead);
    tcase_add_test(tc, test_parallel_writers);
    tcase_add_test(tc, test_otrunc_with_held);
    tcase_add_test(tc, test_close_waits_for_writers);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_buffer_keep);
    tcase_add_test(tc, test_slab_bufs);
    suite_add_tcase(s, tc);

    tc = tcase_create("meta");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup_meta, teardown_meta);
    tcase_add_test(tc, test_release_order);
    tcase_add_test(tc, test_truncate_after_release);
    tcase_add_test(tc, test_incomplete_fsync);
    tcase_add_test(tc, test_unreleased_at_unmount);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_node_svc.c - tests of the ckpt-node service (daemon/node_svc,
 * daemon/node_reg) against a real node server: real targets in a temp dir,
 * real TCP on loopback, clients authenticated with the cluster key through
 * lib/net, exactly as the FUSE client talks to a node.
 *
 * Cases: chunk RPC semantics (round trip, ranges, -ENODEV, -ENOENT, stale
 * generations, delete, sync, stats, list); 1,000 concurrent writes and
 * reads of random sizes; restart keeps data, uuid and ids; malformed
 * requests (raw bytes, wrong key, bad fields, bulk length mismatches,
 * wrong crc) are refused and the node keeps serving; -ENOSPC at the
 * reserve; a damaged chunk file reads back as CKPT_E_CRC / CKPT_E_TORN;
 * shutdown with requests in flight answers every one of them; target
 * identity conflicts refuse to start.  Registration runs against a fake
 * ckpt-meta (a lib/net server speaking msg_cluster.h): first registration
 * after meta comes up, ids persisted and used on restart, re-registration
 * after -ENOENT and after meta restarts.
 *
 * Chunk contents are generated from (key, generation) by a PRNG, so every
 * read is checked byte for byte.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "crc.h"
#include "err.h"
#include "msg_cluster.h"
#include "msg_node.h"
#include "net.h"
#include "node_reg.h"
#include "node_svc.h"
#include "node_target.h"

Suite *node_svc_suite(void);

#define KiB (1u << 10)
#define MiB (1u << 20)
#define TID0 101u /* target ids preset on test targets: TID0 + i */

/* ---- fixture -------------------------------------------------------------- */

static char base_dir[PATH_MAX];

static void pathf(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt((size_t)n, cap);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void base_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    pathf(base_dir, sizeof(base_dir), "%s/ckpt_nsvc_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void base_teardown(void)
{
    nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void key_fill(uint8_t *key, uint8_t v)
{
    for (int i = 0; i < CKPT_NET_KEY_LEN; i++)
        key[i] = (uint8_t)(v * 31 + i);
}

struct node_env {
    char tdir[4][PATH_MAX];
    uint32_t ntargets;
    struct node_server_opts o;
    node_server *ns;
    uint16_t port;
    ckpt_net *cnet; /* the client side */
    ckpt_conn *conn;
};

/* Create target directories (ids preset to TID0 + i unless preset_ids is
 * false) without starting anything. */
static void env_targets(struct node_env *e, uint32_t n, bool preset_ids, const char *tag)
{
    e->ntargets = n;
    for (uint32_t i = 0; i < n; i++) {
        pathf(e->tdir[i], sizeof(e->tdir[i]), "%s/%s-t%u", base_dir, tag, i);
        if (!preset_ids)
            continue;
        struct node_target_opts to = {.cluster = "test"};
        node_target *t = NULL;
        if (i > 0) { /* same node: reuse target 0's uuid */
            struct node_target_opts po = {.cluster = "test", .flags = NODE_TARGET_F_NOCREATE};
            node_target *t0 = NULL;
            static uint8_t uuid[NODE_TARGET_UUID_LEN];
            struct node_target_ids ids;
            ck_assert_int_eq(node_target_open(e->tdir[0], &po, &t0), 0);
            node_target_get_ids(t0, &ids);
            memcpy(uuid, ids.node_uuid, sizeof(uuid));
            node_target_close(t0);
            to.node_uuid = uuid;
        }
        ck_assert_int_eq(node_target_open(e->tdir[i], &to, &t), 0);
        ck_assert_int_eq(node_target_set_ids(t, 1, TID0 + i), 0);
        node_target_close(t);
    }
}

static void env_opts(struct node_env *e)
{
    memset(&e->o, 0, sizeof(e->o));
    e->o.cluster = "test";
    key_fill(e->o.key, 7);
    e->o.listen_host = "127.0.0.1";
    e->o.name = "n1";
    for (uint32_t i = 0; i < e->ntargets; i++)
        e->o.targets[i] = e->tdir[i];
    e->o.ntargets = e->ntargets;
    e->o.sync = NODE_CHUNK_SYNC_COMMIT;
    e->o.io_threads = 4;
    e->o.io_timeout_ms = 2000; /* drop half-sent messages quickly */
}

static ckpt_net *client_net(uint8_t keyv)
{
    struct ckpt_net_opts o = {0};
    key_fill(o.key, keyv);
    o.name = "test-client";
    o.call_timeout_ms = 20000;
    ckpt_net *net = NULL;
    ck_assert_int_eq(ckpt_net_create(&o, &net), 0);
    return net;
}

static void env_connect(struct node_env *e)
{
    if (!e->cnet)
        e->cnet = client_net(7);
    ck_assert_int_eq(ckpt_net_connect(e->cnet, "127.0.0.1", e->port, NULL, NULL, &e->conn), 0);
}

/* Start the server with e->o (env_opts first) and connect a client. */
static void env_start(struct node_env *e)
{
    ck_assert_int_eq(node_server_create(&e->o, &e->ns), 0);
    e->port = node_server_port(e->ns);
    ck_assert_int_ne(e->port, 0);
    env_connect(e);
}

static void env_stop_server(struct node_env *e)
{
    ckpt_conn_close(e->conn);
    e->conn = NULL;
    if (e->ns) {
        ck_assert_int_eq(node_server_shutdown(e->ns), 0);
        node_server_destroy(e->ns);
        e->ns = NULL;
    }
}

static void env_fini(struct node_env *e)
{
    env_stop_server(e);
    ckpt_net_destroy(e->cnet);
    e->cnet = NULL;
}

/* ---- chunk helpers ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void fill(uint8_t *p, size_t len, const struct ckpt_chunk_key *k, uint64_t gen)
{
    uint64_t s = (k->ino * 1000003u) ^ (k->stripe << 20) ^ ((uint64_t)k->index << 40) ^
                 (gen * 0x9E3779B97F4A7C15ull) ^ 1;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] = (uint8_t)rng_next(&s);
}

static struct ckpt_chunk_key K(uint64_t ino, uint64_t stripe, uint16_t index)
{
    struct ckpt_chunk_key k = {.ino = ino, .stripe = stripe, .index = index};
    return k;
}

/* Send a raw request: body bytes and bulk as given.  Returns the status;
 * *out_body (if non-NULL) gets a copy of the response body (free()). */
static int raw_call(ckpt_conn *c, uint16_t op, const void *body, uint32_t body_len,
                    const void *bulk, uint32_t bulk_len, void *bulk_in, uint32_t bulk_cap,
                    uint32_t *out_bulk_len, uint8_t **out_body, uint32_t *out_body_len)
{
    struct iovec iov = {(void *)bulk, bulk_len};
    struct ckpt_call call = {0};
    call.opcode = op;
    call.body = body;
    call.body_len = body_len;
    call.bulk_out = bulk_len ? &iov : NULL;
    call.bulk_out_cnt = bulk_len ? 1 : 0;
    call.bulk_in = bulk_in;
    call.bulk_in_cap = bulk_cap;
    int rc = ckpt_conn_call(c, &call);
    if (out_bulk_len)
        *out_bulk_len = call.bulk_in_len;
    if (out_body) {
        *out_body = NULL;
        if (call.resp_body_len) {
            *out_body = malloc(call.resp_body_len);
            ck_assert_ptr_nonnull(*out_body);
            memcpy(*out_body, call.resp_body, call.resp_body_len);
        }
        *out_body_len = call.resp_body_len;
    }
    ckpt_call_release(&call);
    return rc;
}

static int cwrite_raw(ckpt_conn *c, uint32_t target, struct ckpt_chunk_key k, uint64_t gen,
                      const void *buf, uint32_t len, uint32_t crc, uint32_t flags)
{
    struct ckpt_msg_chunk_write m = {.target = target, .key = k, .gen = gen, .len = len,
                                     .crc = crc, .flags = flags};
    uint8_t store[128];
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_write_encode(&w, &m), 0);
    int rc = raw_call(c, CKPT_OP_CHUNK_WRITE, w.p, (uint32_t)w.len, buf, len, NULL, 0, NULL,
                      NULL, NULL);
    ckpt_wbuf_free(&w);
    return rc;
}

/* Write the generated content of (k, gen), len bytes. */
static int cwrite(ckpt_conn *c, uint32_t target, struct ckpt_chunk_key k, uint64_t gen,
                  uint32_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(b);
    fill(b, len, &k, gen);
    int rc = cwrite_raw(c, target, k, gen, b, len, ckpt_crc32c(0, b, len), 0);
    free(b);
    return rc;
}

/* Read [off, off+len) into dst (cap bytes).  Returns the status; fills
 * *resp and *got. */
static int cread(ckpt_conn *c, uint32_t target, struct ckpt_chunk_key k, uint32_t off,
                 uint32_t len, uint64_t min_gen, void *dst, uint32_t cap,
                 struct ckpt_msg_chunk_read_resp *resp, uint32_t *got)
{
    struct ckpt_msg_chunk_read m = {.target = target, .key = k, .offset = off, .len = len,
                                    .min_gen = min_gen};
    uint8_t store[64], *body = NULL;
    uint32_t blen = 0;
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_read_encode(&w, &m), 0);
    int rc = raw_call(c, CKPT_OP_CHUNK_READ, w.p, (uint32_t)w.len, NULL, 0, dst, cap, got,
                      &body, &blen);
    ckpt_wbuf_free(&w);
    if (rc == 0) {
        ck_assert_int_eq(ckpt_msg_chunk_read_resp_decode(body, blen, resp), 0);
        ck_assert_uint_eq(resp->crc, ckpt_crc32c(0, dst, *got));
    }
    free(body);
    return rc;
}

/* Read chunk k fully and check it is (gen, len) with the generated bytes. */
static void expect_chunk(ckpt_conn *c, uint32_t target, struct ckpt_chunk_key k, uint64_t gen,
                         uint32_t len)
{
    uint8_t *want = malloc(len ? len : 1), *got = malloc(len + 1);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    fill(want, len, &k, gen);
    struct ckpt_msg_chunk_read_resp r;
    uint32_t n = 0;
    ck_assert_int_eq(cread(c, target, k, 0, 0, 0, got, len + 1, &r, &n), 0);
    ck_assert_uint_eq(n, len);
    ck_assert_uint_eq(r.gen, gen);
    ck_assert_uint_eq(r.chunk_len, len);
    ck_assert_mem_eq(got, want, len);
    free(want);
    free(got);
}

static int csync(ckpt_conn *c, uint32_t target, const uint64_t *inos, uint32_t n)
{
    struct ckpt_msg_chunk_sync *m = calloc(1, sizeof(*m));
    ck_assert_ptr_nonnull(m);
    m->target = target;
    m->n = n;
    for (uint32_t i = 0; i < n; i++)
        m->inos[i] = inos[i];
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, NULL, 0);
    ck_assert_int_eq(ckpt_msg_chunk_sync_encode(&w, m), 0);
    int rc = raw_call(c, CKPT_OP_CHUNK_SYNC, w.p, (uint32_t)w.len, NULL, 0, NULL, 0, NULL,
                      NULL, NULL);
    ckpt_wbuf_free(&w);
    free(m);
    return rc;
}

static int cdelete(ckpt_conn *c, uint32_t target, uint64_t ino, uint64_t from_stripe,
                   uint64_t below_gen, uint32_t *deleted)
{
    struct ckpt_msg_chunk_delete m = {.target = target, .ino = ino, .from_stripe = from_stripe,
                                      .below_gen = below_gen};
    uint8_t store[64], *body = NULL;
    uint32_t blen = 0;
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_delete_encode(&w, &m), 0);
    int rc = raw_call(c, CKPT_OP_CHUNK_DELETE, w.p, (uint32_t)w.len, NULL, 0, NULL, 0, NULL,
                      &body, &blen);
    if (rc == 0) {
        struct ckpt_msg_chunk_delete_resp r;
        ck_assert_int_eq(ckpt_msg_chunk_delete_resp_decode(body, blen, &r), 0);
        *deleted = r.deleted;
    }
    free(body);
    ckpt_wbuf_free(&w);
    return rc;
}

static int cstats(ckpt_conn *c, struct ckpt_msg_target_stats_resp *out)
{
    uint8_t *body = NULL;
    uint32_t blen = 0;
    int rc = raw_call(c, CKPT_OP_TARGET_STATS, NULL, 0, NULL, 0, NULL, 0, NULL, &body, &blen);
    if (rc == 0)
        ck_assert_int_eq(ckpt_msg_target_stats_resp_decode(body, blen, out), 0);
    free(body);
    return rc;
}

static int clist(ckpt_conn *c, uint32_t target, const struct ckpt_chunk_key *after,
                 uint32_t max, struct ckpt_msg_chunk_list_resp *out)
{
    struct ckpt_msg_chunk_list m = {.target = target, .max = max};
    if (after) {
        m.after = *after;
        m.has_after = 1;
    }
    uint8_t store[64], *body = NULL;
    uint32_t blen = 0;
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_list_encode(&w, &m), 0);
    int rc = raw_call(c, CKPT_OP_CHUNK_LIST, w.p, (uint32_t)w.len, NULL, 0, NULL, 0, NULL,
                      &body, &blen);
    if (rc == 0)
        ck_assert_int_eq(ckpt_msg_chunk_list_resp_decode(body, blen, out), 0);
    free(body);
    ckpt_wbuf_free(&w);
    return rc;
}

static void chunk_file(const char *tdir, struct ckpt_chunk_key k, char *dst, size_t cap)
{
    pathf(dst, cap, "%s/chunks/%02x/%016" PRIx64 "/%016" PRIx64 ".%04x", tdir,
          (unsigned)(k.ino & 0xff), k.ino, k.stripe, (unsigned)k.index);
}

/* ---- chunk RPC semantics --------------------------------------------------------- */

START_TEST(test_rpc_roundtrip)
{
    struct node_env e = {0};
    env_targets(&e, 2, true, "rt");
    env_opts(&e);
    env_start(&e);
    ckpt_conn *c = e.conn;

    ck_assert_int_eq(cwrite(c, TID0, K(5, 0, 0), 1, 300 * KiB), 0);
    ck_assert_int_eq(cwrite(c, TID0, K(5, 1, 3), 2, 1), 0);
    ck_assert_int_eq(cwrite(c, TID0 + 1, K(5, 0, 1), 1, 0), 0); /* empty chunk */
    expect_chunk(c, TID0, K(5, 0, 0), 1, 300 * KiB);
    expect_chunk(c, TID0, K(5, 1, 3), 2, 1);
    expect_chunk(c, TID0 + 1, K(5, 0, 1), 1, 0);

    /* Range reads: middle, past the end, len 0 = to the end. */
    uint8_t *want = malloc(300 * KiB), *got = malloc(300 * KiB);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    struct ckpt_chunk_key k50 = K(5, 0, 0);
    fill(want, 300 * KiB, &k50, 1);
    struct ckpt_msg_chunk_read_resp r;
    uint32_t n;
    ck_assert_int_eq(cread(c, TID0, k50, 1000, 5000, 0, got, 300 * KiB, &r, &n), 0);
    ck_assert_uint_eq(n, 5000);
    ck_assert_uint_eq(r.chunk_len, 300 * KiB);
    ck_assert_mem_eq(got, want + 1000, 5000);
    ck_assert_int_eq(cread(c, TID0, k50, 300 * KiB - 10, 100, 0, got, 300 * KiB, &r, &n), 0);
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(got, want + 300 * KiB - 10, 10);
    ck_assert_int_eq(cread(c, TID0, k50, 400 * KiB, 0, 0, got, 300 * KiB, &r, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(cread(c, TID0, k50, 200 * KiB, 0, 0, got, 300 * KiB, &r, &n), 0);
    ck_assert_uint_eq(n, 100 * KiB);
    ck_assert_mem_eq(got, want + 200 * KiB, 100 * KiB);

    /* Errors: no such chunk, target, generation. */
    ck_assert_int_eq(cread(c, TID0, K(6, 0, 0), 0, 0, 0, got, 1024, &r, &n), -ENOENT);
    ck_assert_int_eq(cread(c, TID0 + 1, k50, 0, 0, 0, got, 1024, &r, &n), -ENOENT);
    ck_assert_int_eq(cread(c, 999, k50, 0, 0, 0, got, 1024, &r, &n), -ENODEV);
    ck_assert_int_eq(cread(c, 0, k50, 0, 0, 0, got, 1024, &r, &n), -ENODEV);
    ck_assert_int_eq(cwrite(c, 999, k50, 1, 10), -ENODEV);
    ck_assert_int_eq(cread(c, TID0, k50, 0, 0, 2, got, 300 * KiB, &r, &n), CKPT_E_STALE);
    ck_assert_int_eq(cwrite(c, TID0, K(5, 1, 3), 1, 10), CKPT_E_STALE);
    ck_assert_int_eq(cwrite(c, TID0, K(5, 1, 3), 3, 4 * KiB), 0); /* newer replaces */
    expect_chunk(c, TID0, K(5, 1, 3), 3, 4 * KiB);
    /* A response bulk larger than the caller's buffer is refused, not truncated. */
    ck_assert_int_eq(cread(c, TID0, k50, 0, 0, 0, got, 1024, &r, &n), -EMSGSIZE);

    /* Sync: everything, some inodes, one target, a bad target. */
    uint64_t inos[2] = {5, 77};
    ck_assert_int_eq(csync(c, CKPT_TARGET_ALL, NULL, 0), 0);
    ck_assert_int_eq(cwrite(c, TID0, K(7, 0, 0), 1, 64 * KiB), 0);
    ck_assert_int_eq(csync(c, TID0, inos, 2), 0);
    ck_assert_int_eq(csync(c, 4242, inos, 2), -ENODEV);
    uint8_t sbuf[100];
    struct ckpt_chunk_key k8 = K(8, 0, 0);
    fill(sbuf, sizeof(sbuf), &k8, 1);
    ck_assert_int_eq(cwrite_raw(c, TID0, k8, 1, sbuf, sizeof(sbuf),
                                ckpt_crc32c(0, sbuf, sizeof(sbuf)), CKPT_CHUNK_F_SYNC), 0);

    /* Stats: both targets with their ids and chunk counts. */
    struct ckpt_msg_target_stats_resp st;
    ck_assert_int_eq(cstats(c, &st), 0);
    ck_assert_uint_eq(st.n, 2);
    ck_assert_uint_eq(st.t[0].id, TID0);
    ck_assert_uint_eq(st.t[1].id, TID0 + 1);
    ck_assert_uint_eq(st.t[0].chunks, 4);
    ck_assert_uint_eq(st.t[1].chunks, 1);
    ck_assert_uint_gt(st.t[0].capacity, 0);
    ck_assert_uint_ge(st.t[0].used, 300 * KiB);

    /* List in key order, paged. */
    struct ckpt_msg_chunk_list_resp lr;
    ck_assert_int_eq(clist(c, TID0, NULL, 2, &lr), 0);
    ck_assert_uint_eq(lr.n, 2);
    ck_assert_uint_eq(lr.more, 1);
    ck_assert_uint_eq(lr.entries[0].key.ino, 5);
    ck_assert_uint_eq(lr.entries[0].key.stripe, 0);
    ck_assert_uint_eq(lr.entries[0].len, 300 * KiB);
    ck_assert_uint_eq(lr.entries[1].key.stripe, 1);
    ck_assert_uint_eq(lr.entries[1].gen, 3);
    struct ckpt_chunk_key after = lr.entries[1].key;
    ckpt_msg_chunk_list_resp_free(&lr);
    ck_assert_int_eq(clist(c, TID0, &after, 10, &lr), 0);
    ck_assert_uint_eq(lr.n, 2);
    ck_assert_uint_eq(lr.more, 0);
    ck_assert_uint_eq(lr.entries[0].key.ino, 7);
    ck_assert_uint_eq(lr.entries[1].key.ino, 8);
    ckpt_msg_chunk_list_resp_free(&lr);

    /* Delete: from a stripe on, below a generation, all; idempotent. */
    uint32_t del = 0;
    ck_assert_int_eq(cdelete(c, TID0, 5, 1, 0, &del), 0);
    ck_assert_uint_eq(del, 1);
    expect_chunk(c, TID0, k50, 1, 300 * KiB);
    ck_assert_int_eq(cdelete(c, TID0, 5, 0, 1, &del), 0);
    ck_assert_uint_eq(del, 0); /* gen 1 is not below 1 */
    ck_assert_int_eq(cdelete(c, CKPT_TARGET_ALL, 5, 0, 0, &del), 0);
    ck_assert_uint_eq(del, 2);
    ck_assert_int_eq(cread(c, TID0, k50, 0, 0, 0, got, 1024, &r, &n), -ENOENT);
    ck_assert_int_eq(cdelete(c, TID0, 5, 0, 0, &del), 0);
    ck_assert_uint_eq(del, 0);
    ck_assert_int_eq(cdelete(c, 31337, 5, 0, 0, &del), -ENODEV);

    struct node_server_counters nc;
    node_server_counters(e.ns, &nc);
    ck_assert_uint_ge(nc.writes, 6);
    ck_assert_uint_eq(nc.malformed, 0);
    free(want);
    free(got);
    env_fini(&e);
}
END_TEST

/* ---- 1,000 concurrent writes and reads ------------------------------------------- */

#define NCONC 1000
#define CONNS 4
#define INFLIGHT 48

struct conc_op {
    struct ckpt_call call;
    struct iovec iov;
    uint8_t body[64];
    struct ckpt_wbuf w;
    uint8_t *buf;
    uint32_t len;
    struct ckpt_chunk_key key;
    uint32_t target;
    sem_t *slots;
    atomic_int *failures;
    bool is_read;
};

static void conc_done(struct ckpt_call *call)
{
    struct conc_op *op = call->ctx;
    bool ok = call->status == 0;
    if (ok && op->is_read) {
        struct ckpt_msg_chunk_read_resp r;
        uint8_t *want = malloc(op->len ? op->len : 1);
        ok = want && ckpt_msg_chunk_read_resp_decode(call->resp_body, call->resp_body_len,
                                                     &r) == 0 &&
             call->bulk_in_len == op->len && r.chunk_len == op->len && r.gen == 1 &&
             r.crc == ckpt_crc32c(0, op->buf, op->len);
        if (ok) {
            fill(want, op->len, &op->key, 1);
            ok = memcmp(want, op->buf, op->len) == 0;
        }
        free(want);
    }
    if (!ok) {
        fprintf(stderr, "conc: %s of %" PRIu64 "/%" PRIu64 " failed: %s\n",
                op->is_read ? "read" : "write", op->key.ino, op->key.stripe,
                ckpt_strerror(call->status));
        atomic_fetch_add(op->failures, 1);
    }
    ckpt_call_release(call);
    sem_post(op->slots);
}

START_TEST(test_concurrent_1000)
{
    struct node_env e = {0};
    env_targets(&e, 2, true, "cc");
    env_opts(&e);
    e.o.sync = NODE_CHUNK_SYNC_NEVER; /* 1,000 files: test the service, not fsync */
    env_start(&e);
    ckpt_conn *conns[CONNS];
    conns[0] = e.conn;
    for (int i = 1; i < CONNS; i++)
        ck_assert_int_eq(ckpt_net_connect(e.cnet, "127.0.0.1", e.port, NULL, NULL, &conns[i]),
                         0);
    struct conc_op *ops = calloc(NCONC, sizeof(*ops));
    ck_assert_ptr_nonnull(ops);
    sem_t slots;
    atomic_int failures = 0;
    sem_init(&slots, 0, INFLIGHT);
    uint64_t seed = 0x1234567;
    uint64_t total = 0;
    for (int i = 0; i < NCONC; i++) {
        struct conc_op *op = &ops[i];
        uint64_t r = rng_next(&seed);
        /* Sizes from 0 to 512 KiB, skewed small, some odd. */
        op->len = (uint32_t)(r % 4 == 0 ? r % (512 * KiB + 1) : r % (64 * KiB + 1));
        op->key = K(1000 + (uint64_t)i / 6, (uint64_t)i % 3, (uint16_t)(i % 2));
        op->target = TID0 + (uint32_t)(i % 2);
        op->buf = malloc(op->len ? op->len : 1);
        ck_assert_ptr_nonnull(op->buf);
        fill(op->buf, op->len, &op->key, 1);
        op->slots = &slots;
        op->failures = &failures;
        total += op->len;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < NCONC; i++) {
            struct conc_op *op = &ops[i];
            sem_wait(&slots);
            op->is_read = pass == 1;
            ckpt_wbuf_init(&op->w, op->body, sizeof(op->body));
            memset(&op->call, 0, sizeof(op->call));
            if (!op->is_read) {
                struct ckpt_msg_chunk_write m = {.target = op->target, .key = op->key,
                                                 .gen = 1, .len = op->len,
                                                 .crc = ckpt_crc32c(0, op->buf, op->len)};
                ck_assert_int_eq(ckpt_msg_chunk_write_encode(&op->w, &m), 0);
                op->iov.iov_base = op->buf;
                op->iov.iov_len = op->len;
                op->call.opcode = CKPT_OP_CHUNK_WRITE;
                op->call.bulk_out = op->len ? &op->iov : NULL;
                op->call.bulk_out_cnt = op->len ? 1 : 0;
            } else {
                struct ckpt_msg_chunk_read m = {.target = op->target, .key = op->key};
                ck_assert_int_eq(ckpt_msg_chunk_read_encode(&op->w, &m), 0);
                memset(op->buf, 0xee, op->len);
                op->call.opcode = CKPT_OP_CHUNK_READ;
                op->call.bulk_in = op->buf;
                op->call.bulk_in_cap = op->len;
            }
            op->call.body = op->w.p;
            op->call.body_len = (uint32_t)op->w.len;
            op->call.done = conc_done;
            op->call.ctx = op;
            ck_assert_int_eq(ckpt_conn_submit(conns[i % CONNS], &op->call), 0);
        }
        for (int i = 0; i < INFLIGHT; i++)
            sem_wait(&slots);
        for (int i = 0; i < INFLIGHT; i++)
            sem_post(&slots);
        ck_assert_int_eq(atomic_load(&failures), 0);
    }
    struct node_server_counters nc;
    node_server_counters(e.ns, &nc);
    ck_assert_uint_eq(nc.writes, NCONC);
    ck_assert_uint_eq(nc.reads, NCONC);
    ck_assert_uint_eq(nc.bytes_written, total);
    ck_assert_uint_eq(nc.bytes_read, total);
    ck_assert_uint_eq(nc.errors, 0);
    for (int i = 0; i < NCONC; i++)
        free(ops[i].buf);
    free(ops);
    for (int i = 1; i < CONNS; i++)
        ckpt_conn_close(conns[i]);
    sem_destroy(&slots);
    env_fini(&e);
}
END_TEST

/* ---- restart -------------------------------------------------------------------------- */

static void target_ids(const char *dir, struct node_target_ids *out)
{
    struct node_target_opts o = {.cluster = "test", .flags = NODE_TARGET_F_NOCREATE};
    node_target *t = NULL;
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_get_ids(t, out);
    node_target_close(t);
}

START_TEST(test_restart_keeps_data_and_ids)
{
    struct node_env e = {0};
    env_targets(&e, 2, true, "rs");
    env_opts(&e);
    env_start(&e);
    for (uint16_t i = 0; i < 6; i++)
        ck_assert_int_eq(cwrite(e.conn, TID0 + (i & 1), K(40, i, i), 1, (i + 1) * 10 * KiB), 0);
    /* Acknowledged under sync=commit, no barrier: the clean shutdown syncs. */
    env_stop_server(&e);
    struct node_target_ids a0, a1;
    target_ids(e.tdir[0], &a0);
    target_ids(e.tdir[1], &a1);
    ck_assert_uint_eq(a0.target_id, TID0);
    ck_assert_uint_eq(a1.target_id, TID0 + 1);
    ck_assert_mem_eq(a0.node_uuid, a1.node_uuid, NODE_TARGET_UUID_LEN);

    /* Restart with the targets in the other order: ids follow the disks. */
    env_opts(&e);
    e.o.targets[0] = e.tdir[1];
    e.o.targets[1] = e.tdir[0];
    env_start(&e);
    for (uint16_t i = 0; i < 6; i++)
        expect_chunk(e.conn, TID0 + (i & 1), K(40, i, i), 1, (i + 1) * 10 * KiB);
    struct ckpt_msg_target_stats_resp st;
    ck_assert_int_eq(cstats(e.conn, &st), 0);
    ck_assert_uint_eq(st.n, 2);
    ck_assert_uint_eq(st.t[0].id, TID0 + 1);
    ck_assert_uint_eq(st.t[0].chunks, 3);
    ck_assert_uint_eq(st.t[1].id, TID0);
    env_fini(&e);
    struct node_target_ids b0;
    target_ids(e.tdir[0], &b0);
    ck_assert_mem_eq(a0.node_uuid, b0.node_uuid, NODE_TARGET_UUID_LEN);
}
END_TEST

/* ---- malformed requests --------------------------------------------------------------- */

/* A raw TCP peer that sends bytes; the node must hang up on it. */
static void raw_garbage(uint16_t port, const void *bytes, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
    /* Read whatever the node says until it closes (it must, within 10 s). */
    uint8_t buf[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 10000), 1);
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
    }
    close(fd);
}

START_TEST(test_malformed_rejected)
{
    struct node_env e = {0};
    env_targets(&e, 1, true, "mf");
    env_opts(&e);
    env_start(&e);
    ckpt_conn *c = e.conn;

    /* Raw bytes, never authenticated: text shorter than a header (dropped
     * after io_timeout_ms), a bigger random blob, a header of zeros. */
    const char *http = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_garbage(e.port, http, strlen(http));
    uint8_t junk[4096];
    uint64_t s = 99;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rng_next(&s);
    raw_garbage(e.port, junk, sizeof(junk));
    memset(junk, 0, sizeof(junk));
    raw_garbage(e.port, junk, 40);

    /* Wrong cluster key: refused at the handshake. */
    ckpt_net *bad = client_net(8);
    ckpt_conn *bc = NULL;
    ck_assert_int_eq(ckpt_net_connect(bad, "127.0.0.1", e.port, NULL, NULL, &bc), CKPT_E_AUTH);
    ckpt_net_destroy(bad);

    /* Bad fields from an authenticated peer: CKPT_E_PROTO, connection kept. */
    uint8_t buf[256];
    struct ckpt_chunk_key k = K(9, 0, 0);
    fill(buf, sizeof(buf), &k, 1);
    uint32_t crc = ckpt_crc32c(0, buf, sizeof(buf));
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_WRITE, junk + 1, 17, buf, 10, NULL, 0, NULL,
                              NULL, NULL), CKPT_E_PROTO);           /* garbage body */
    ck_assert_int_eq(cwrite_raw(c, TID0, K(9, 0, CKPT_CHUNK_MAX_INDEX), 1, buf, sizeof(buf),
                                crc, 0), CKPT_E_PROTO);             /* index out of range */
    ck_assert_int_eq(cwrite_raw(c, TID0, k, 1, buf, sizeof(buf), crc, 0x80), CKPT_E_PROTO);
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_READ, junk, 5, NULL, 0, NULL, 0, NULL, NULL,
                              NULL), CKPT_E_PROTO);                 /* truncated body */
    ck_assert_int_eq(raw_call(c, CKPT_OP_TARGET_STATS, junk, 4, NULL, 0, NULL, 0, NULL, NULL,
                              NULL), CKPT_E_PROTO);                 /* body not empty */
    ck_assert_int_eq(raw_call(c, CKPT_OP_LOOKUP, junk, 8, NULL, 0, NULL, 0, NULL, NULL, NULL),
                     -EOPNOTSUPP);                                  /* not our service */

    /* Bulk length mismatches and bulk where none belongs. */
    struct ckpt_msg_chunk_write m = {.target = TID0, .key = k, .gen = 1, .len = 200,
                                     .crc = crc};
    uint8_t store[64];
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_write_encode(&w, &m), 0);
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_WRITE, w.p, (uint32_t)w.len, buf, 100, NULL, 0,
                              NULL, NULL, NULL), CKPT_E_PROTO);     /* less than it says */
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_WRITE, w.p, (uint32_t)w.len, buf, sizeof(buf),
                              NULL, 0, NULL, NULL, NULL), CKPT_E_PROTO); /* more */
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_WRITE, w.p, (uint32_t)w.len, NULL, 0, NULL, 0,
                              NULL, NULL, NULL), CKPT_E_PROTO);     /* none at all */
    ckpt_wbuf_free(&w);
    struct ckpt_msg_chunk_read rm = {.target = TID0, .key = k};
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_read_encode(&w, &rm), 0);
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_READ, w.p, (uint32_t)w.len, buf, 64, NULL, 0,
                              NULL, NULL, NULL), CKPT_E_PROTO);     /* bulk on a read */
    ckpt_wbuf_free(&w);
    /* Data that does not match its crc (damaged in transit). */
    ck_assert_int_eq(cwrite_raw(c, TID0, k, 1, buf, sizeof(buf), crc ^ 1, 0), CKPT_E_CRC);
    uint8_t tmp[8];
    struct ckpt_msg_chunk_read_resp r;
    uint32_t n;
    ck_assert_int_eq(cread(c, TID0, k, 0, 0, 0, tmp, sizeof(tmp), &r, &n), -ENOENT);

    /* Still serving, on the same connection and on a new one. */
    ck_assert(ckpt_conn_is_open(c));
    ck_assert_int_eq(cwrite(c, TID0, k, 1, 4000), 0);
    expect_chunk(c, TID0, k, 1, 4000);
    ckpt_conn *c2 = NULL;
    ck_assert_int_eq(ckpt_net_connect(e.cnet, "127.0.0.1", e.port, NULL, NULL, &c2), 0);
    expect_chunk(c2, TID0, k, 1, 4000);
    ckpt_conn_close(c2);
    struct node_server_counters nc;
    node_server_counters(e.ns, &nc);
    ck_assert_uint_ge(nc.malformed, 8);
    env_fini(&e);
}
END_TEST

/* ---- ENOSPC at the reserve ------------------------------------------------------------- */

START_TEST(test_enospc_at_reserve)
{
    struct node_env e = {0};
    env_targets(&e, 1, true, "sp");
    env_opts(&e);
    struct statvfs sv;
    ck_assert_int_eq(statvfs(base_dir, &sv), 0);
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    ck_assert_uint_gt(avail, 256ull * MiB);
    /* Leave 40 MiB above the reserve; no statvfs refresh during the test. */
    e.o.reserve_bytes = avail - 40ull * MiB;
    e.o.refresh_ms = 600000;
    env_start(&e);
    int ok = 0, rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++) {
        rc = cwrite(e.conn, TID0, K(3, (uint64_t)i, 0), 1, 4 * MiB);
        ok += rc == 0;
    }
    ck_assert_int_eq(rc, -ENOSPC);
    ck_assert_int_ge(ok, 5);
    ck_assert_int_le(ok, 10);
    expect_chunk(e.conn, TID0, K(3, 0, 0), 1, 4 * MiB); /* reads still work */
    uint32_t del = 0;
    ck_assert_int_eq(cdelete(e.conn, TID0, 3, 0, 0, &del), 0);
    ck_assert_uint_eq(del, (uint32_t)ok);
    ck_assert_int_eq(cwrite(e.conn, TID0, K(3, 99, 0), 1, 4 * MiB), 0); /* room again */
    env_fini(&e);
}
END_TEST

/* ---- damaged chunk files --------------------------------------------------------------- */

START_TEST(test_damaged_chunk_detected)
{
    struct node_env e = {0};
    env_targets(&e, 1, true, "dm");
    env_opts(&e);
    env_start(&e);
    ckpt_conn *c = e.conn;
    char p[PATH_MAX + 128];
    uint8_t *b = malloc(MiB);
    ck_assert_ptr_nonnull(b);
    struct ckpt_msg_chunk_read_resp r;
    uint32_t n;

    /* A flipped data byte: CKPT_E_CRC, for whole and range reads. */
    ck_assert_int_eq(cwrite(c, TID0, K(11, 0, 0), 1, 128 * KiB), 0);
    chunk_file(e.tdir[0], K(11, 0, 0), p, sizeof(p));
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t x;
    ck_assert_int_eq(pread(fd, &x, 1, 4096 + 70000), 1);
    x ^= 0x10;
    ck_assert_int_eq(pwrite(fd, &x, 1, 4096 + 70000), 1);
    close(fd);
    ck_assert_int_eq(cread(c, TID0, K(11, 0, 0), 0, 0, 0, b, MiB, &r, &n), CKPT_E_CRC);
    ck_assert_int_eq(cread(c, TID0, K(11, 0, 0), 0, 100, 0, b, MiB, &r, &n), CKPT_E_CRC);

    /* A truncated file (torn write): CKPT_E_TORN. */
    ck_assert_int_eq(cwrite(c, TID0, K(11, 1, 0), 1, 128 * KiB), 0);
    chunk_file(e.tdir[0], K(11, 1, 0), p, sizeof(p));
    ck_assert_int_eq(truncate(p, 4096 + 1000), 0);
    ck_assert_int_eq(cread(c, TID0, K(11, 1, 0), 0, 0, 0, b, MiB, &r, &n), CKPT_E_TORN);

    /* A damaged header: CKPT_E_TORN. */
    ck_assert_int_eq(cwrite(c, TID0, K(11, 2, 0), 1, 10 * KiB), 0);
    chunk_file(e.tdir[0], K(11, 2, 0), p, sizeof(p));
    fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "XXXX", 4, 20), 4);
    close(fd);
    ck_assert_int_eq(cread(c, TID0, K(11, 2, 0), 0, 0, 0, b, MiB, &r, &n), CKPT_E_TORN);

    /* A rewrite heals the chunk; the other chunks are unaffected. */
    ck_assert_int_eq(cwrite(c, TID0, K(11, 0, 0), 2, 1000), 0);
    expect_chunk(c, TID0, K(11, 0, 0), 2, 1000);
    free(b);
    env_fini(&e);
}
END_TEST

/* ---- CHUNK_LOCATE (same-host reads) ------------------------------------------------------ */

static int clocate(ckpt_conn *c, uint32_t target, struct ckpt_chunk_key k, uint64_t min_gen,
                   const uint8_t host[CKPT_HOST_ID_LEN], struct ckpt_msg_chunk_locate_resp *resp)
{
    struct ckpt_msg_chunk_locate m = {.target = target, .key = k, .min_gen = min_gen};
    memcpy(m.host, host, sizeof(m.host));
    uint8_t store[64], *body = NULL;
    uint32_t blen = 0, got = 0;
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    ck_assert_int_eq(ckpt_msg_chunk_locate_encode(&w, &m), 0);
    int rc = raw_call(c, CKPT_OP_CHUNK_LOCATE, w.p, (uint32_t)w.len, NULL, 0, NULL, 0, &got,
                      &body, &blen);
    ckpt_wbuf_free(&w);
    ck_assert_uint_eq(got, 0); /* never a bulk: the bytes stay in the file */
    if (rc == 0)
        ck_assert_int_eq(ckpt_msg_chunk_locate_resp_decode(body, blen, resp), 0);
    free(body);
    return rc;
}

START_TEST(test_chunk_locate)
{
    struct node_env e = {0};
    env_targets(&e, 1, true, "lo");
    env_opts(&e);
    env_start(&e);
    ckpt_conn *c = e.conn;
    uint8_t host[CKPT_HOST_ID_LEN], other[CKPT_HOST_ID_LEN];
    ck_assert_int_eq(ckpt_host_id(host), 0);
    memcpy(other, host, sizeof(other));
    other[0] ^= 1;
    struct ckpt_msg_chunk_locate_resp *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);

    /* The answer names the chunk's file: its bytes at data_off match the
     * crc, and the file is the one the node stores (dev/ino). */
    struct ckpt_chunk_key k = K(21, 3, 2);
    ck_assert_int_eq(cwrite(c, TID0, k, 4, 200 * KiB), 0);
    ck_assert_int_eq(clocate(c, TID0, k, 0, host, r), 0);
    ck_assert_uint_eq(r->gen, 4);
    ck_assert_uint_eq(r->chunk_len, 200 * KiB);
    ck_assert_int_eq(r->path[0], '/');
    int fd = open(r->path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_dev, r->dev);
    ck_assert_uint_eq((uint64_t)st.st_ino, r->ino);
    uint8_t *b = malloc(200 * KiB), *want = malloc(200 * KiB);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(want);
    ck_assert_int_eq(pread(fd, b, 200 * KiB, (off_t)r->data_off), 200 * KiB);
    close(fd);
    fill(want, 200 * KiB, &k, 4);
    ck_assert_mem_eq(b, want, 200 * KiB);
    ck_assert_uint_eq(ckpt_crc32c(0, b, 200 * KiB), r->crc);

    /* Another host is told to read through the node; the usual answers
     * about the chunk itself stand. */
    ck_assert_int_eq(clocate(c, TID0, k, 0, other, r), -EXDEV);
    ck_assert_int_eq(clocate(c, TID0, k, 5, host, r), CKPT_E_STALE);
    ck_assert_int_eq(clocate(c, TID0, K(21, 9, 0), 0, host, r), -ENOENT);
    ck_assert_int_eq(clocate(c, TID0 + 7, k, 0, host, r), -ENODEV);

    /* A damaged header is found here; damaged data is for the reader's crc
     * (CHUNK_READ then reports it: test_damaged_chunk_detected). */
    char p[PATH_MAX + 128];
    chunk_file(e.tdir[0], k, p, sizeof(p));
    fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "XXXX", 4, 20), 4);
    close(fd);
    ck_assert_int_eq(clocate(c, TID0, k, 0, host, r), CKPT_E_TORN);

    /* A body that is not a CHUNK_LOCATE: CKPT_E_PROTO, connection kept. */
    uint8_t junk[5] = {1, 2, 3, 4, 5};
    uint32_t got = 0;
    ck_assert_int_eq(raw_call(c, CKPT_OP_CHUNK_LOCATE, junk, sizeof(junk), NULL, 0, NULL, 0,
                              &got, NULL, NULL),
                     CKPT_E_PROTO);
    ck_assert_int_eq(cwrite(c, TID0, k, 5, 10), 0);
    ck_assert_int_eq(clocate(c, TID0, k, 0, host, r), 0);
    ck_assert_uint_eq(r->gen, 5);
    free(b);
    free(want);
    free(r);
    env_fini(&e);
}
END_TEST

/* ---- identity conflicts ------------------------------------------------------------------ */

START_TEST(test_identity_conflicts)
{
    struct node_env a = {0}, b = {0};
    env_targets(&a, 1, true, "ida");
    env_targets(&b, 1, true, "idb"); /* another node uuid */
    struct node_env e = {0};
    e.ntargets = 2;
    memcpy(e.tdir[0], a.tdir[0], sizeof(e.tdir[0]));
    memcpy(e.tdir[1], b.tdir[0], sizeof(e.tdir[1]));
    env_opts(&e);
    node_server *ns = NULL;
    ck_assert_int_eq(node_server_create(&e.o, &ns), -EINVAL); /* two nodes' targets */
    ck_assert_ptr_null(ns);
    e.o.targets[1] = e.tdir[0];
    ck_assert_int_eq(node_server_create(&e.o, &ns), -EINVAL); /* listed twice */
    e.o.ntargets = 1;
    e.o.cluster = "other";
    ck_assert_int_eq(node_server_create(&e.o, &ns), CKPT_E_CLUSTER);

    /* A new target joins an existing node: it gets that node's uuid. */
    env_targets(&e, 2, false, "idn");
    memcpy(e.tdir[0], a.tdir[0], sizeof(e.tdir[0]));
    env_opts(&e);
    ck_assert_int_eq(node_server_create(&e.o, &ns), 0);
    /* New target: no id yet, so -ENODEV until meta assigns one. */
    e.ns = ns;
    e.port = node_server_port(ns);
    env_connect(&e);
    ck_assert_int_eq(cwrite(e.conn, TID0, K(1, 0, 0), 1, 10), 0);
    ck_assert_int_eq(cwrite(e.conn, 0, K(1, 0, 0), 1, 10), -ENODEV);
    env_fini(&e);
    struct node_target_ids i0, i1;
    target_ids(e.tdir[0], &i0);
    target_ids(e.tdir[1], &i1);
    ck_assert_mem_eq(i0.node_uuid, i1.node_uuid, NODE_TARGET_UUID_LEN);
    ck_assert_uint_eq(i1.target_id, 0);
}
END_TEST

/* ---- shutdown with requests in flight ----------------------------------------------------- */

struct sd_ctx {
    sem_t done;
    atomic_int ok, refused, other;
};

static void sd_done(struct ckpt_call *call)
{
    struct sd_ctx *x = call->ctx;
    if (call->status == 0)
        atomic_fetch_add(&x->ok, 1);
    else if (call->status == -ESHUTDOWN || call->status == CKPT_E_CLOSED)
        atomic_fetch_add(&x->refused, 1);
    else
        atomic_fetch_add(&x->other, 1);
    ckpt_call_release(call);
    sem_post(&x->done);
}

START_TEST(test_shutdown_in_flight)
{
    enum { N = 64, LEN = 256 * KiB };
    struct node_env e = {0};
    env_targets(&e, 1, true, "sd");
    env_opts(&e);
    env_start(&e);
    struct sd_ctx x;
    sem_init(&x.done, 0, 0);
    atomic_init(&x.ok, 0);
    atomic_init(&x.refused, 0);
    atomic_init(&x.other, 0);
    struct ckpt_call *calls = calloc(N, sizeof(*calls));
    uint8_t (*bodies)[64] = calloc(N, 64);
    uint8_t *data = malloc((size_t)N * LEN);
    struct iovec *iov = calloc(N, sizeof(*iov));
    ck_assert(calls && bodies && data && iov);
    for (int i = 0; i < N; i++) {
        struct ckpt_chunk_key k = K(60, (uint64_t)i, 0);
        uint8_t *d = data + (size_t)i * LEN;
        fill(d, LEN, &k, 1);
        struct ckpt_msg_chunk_write m = {.target = TID0, .key = k, .gen = 1, .len = LEN,
                                         .crc = ckpt_crc32c(0, d, LEN)};
        struct ckpt_wbuf w;
        ckpt_wbuf_init(&w, bodies[i], 64);
        ck_assert_int_eq(ckpt_msg_chunk_write_encode(&w, &m), 0);
        iov[i].iov_base = d;
        iov[i].iov_len = LEN;
        calls[i].opcode = CKPT_OP_CHUNK_WRITE;
        calls[i].body = w.p;
        calls[i].body_len = (uint32_t)w.len;
        calls[i].bulk_out = &iov[i];
        calls[i].bulk_out_cnt = 1;
        calls[i].done = sd_done;
        calls[i].ctx = &x;
    }
    /* Submit from this thread while the server shuts down (once the first
     * write has been answered, so at least one is known to go through). */
    for (int i = 0; i < N; i++) {
        if (i == N / 4) {
            sem_wait(&x.done);
            sem_post(&x.done);
            ck_assert_int_eq(node_server_shutdown(e.ns), 0);
        }
        int rc = ckpt_conn_submit(e.conn, &calls[i]);
        if (rc < 0) {
            calls[i].status = rc;
            sd_done(&calls[i]);
        }
    }
    for (int i = 0; i < N; i++)
        sem_wait(&x.done);
    ck_assert_int_eq(atomic_load(&x.other), 0);
    ck_assert_int_ge(atomic_load(&x.ok), 1);
    ck_assert_int_eq(atomic_load(&x.ok) + atomic_load(&x.refused), N);
    int acked = atomic_load(&x.ok);
    env_stop_server(&e);
    /* Every acknowledged write is there after a restart (clean shutdown synced). */
    env_opts(&e);
    env_start(&e);
    int found = 0;
    for (int i = 0; i < N; i++) {
        uint8_t t[4];
        struct ckpt_msg_chunk_read_resp r;
        uint32_t n;
        int rc = cread(e.conn, TID0, K(60, (uint64_t)i, 0), 0, 4, 0, t, 4, &r, &n);
        ck_assert(rc == 0 || rc == -ENOENT);
        found += rc == 0;
    }
    ck_assert_int_ge(found, acked);
    env_fini(&e);
    free(calls);
    free(bodies);
    free(data);
    free(iov);
    sem_destroy(&x.done);
}
END_TEST

/* ---- registration with a fake ckpt-meta ------------------------------------------------- */

struct fake_meta {
    ckpt_net *net;
    ckpt_server *srv;
    uint16_t port;
    pthread_mutex_t lock;
    bool known;            /* protected by lock: the node is registered */
    uint32_t next_tid;     /* protected by lock */
    uint8_t uuid[CKPT_NODE_UUID_LEN];
    uint32_t tids[CKPT_NODE_MAX_TARGETS];
    struct ckpt_msg_node_register last;  /* last request seen */
    int registers, heartbeats;
    uint32_t hb_targets;   /* targets in the last heartbeat */
};

static void fm_handle(void *ctx, struct ckpt_req *req)
{
    struct fake_meta *fm = ctx;
    uint8_t store[512];
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, store, sizeof(store));
    int status = 0;
    pthread_mutex_lock(&fm->lock);
    if (req->hdr.opcode == CKPT_OP_NODE_REGISTER) {
        struct ckpt_msg_node_register *m = calloc(1, sizeof(*m));
        struct ckpt_msg_node_register_resp r = {.node_id = 7, .epoch = 3, .heartbeat_ms = 50};
        if (!m || ckpt_msg_node_register_decode(req->body, req->body_len, m) < 0) {
            status = CKPT_E_PROTO;
        } else {
            fm->last = *m;
            r.n = m->n;
            for (uint32_t i = 0; i < m->n; i++)
                r.target_ids[i] = m->t[i].id ? m->t[i].id : fm->next_tid++;
            memcpy(fm->uuid, m->uuid, sizeof(fm->uuid));
            memcpy(fm->tids, r.target_ids, sizeof(fm->tids));
            fm->known = true;
            fm->registers++;
            ckpt_msg_node_register_resp_encode(&w, &r);
        }
        free(m);
    } else if (req->hdr.opcode == CKPT_OP_HEARTBEAT) {
        struct ckpt_msg_heartbeat *m = calloc(1, sizeof(*m));
        if (!m || ckpt_msg_heartbeat_decode(req->body, req->body_len, m) < 0) {
            status = CKPT_E_PROTO;
        } else if (!fm->known || m->node_id != 7 || memcmp(m->uuid, fm->uuid, 16)) {
            status = -ENOENT;
        } else {
            struct ckpt_msg_heartbeat_resp r = {.epoch = 3};
            fm->heartbeats++;
            fm->hb_targets = m->n;
            ckpt_msg_heartbeat_resp_encode(&w, &r);
        }
        free(m);
    } else {
        status = -EOPNOTSUPP;
    }
    pthread_mutex_unlock(&fm->lock);
    ckpt_req_reply(req, status, status ? NULL : w.p, status ? 0 : (uint32_t)w.len, NULL, 0);
    ckpt_wbuf_free(&w);
}

static const struct ckpt_server_ops fm_ops = {.handle = fm_handle};

static void fm_start(struct fake_meta *fm, uint16_t port)
{
    if (!fm->net) {
        struct ckpt_net_opts o = {0};
        key_fill(o.key, 7);
        o.name = "fake-meta";
        ck_assert_int_eq(ckpt_net_create(&o, &fm->net), 0);
        pthread_mutex_init(&fm->lock, NULL);
        fm->next_tid = 500;
    }
    ck_assert_int_eq(ckpt_server_start(fm->net, "127.0.0.1", port, &fm_ops, fm, &fm->srv), 0);
    fm->port = ckpt_server_port(fm->srv);
}

static void fm_stop(struct fake_meta *fm)
{
    ckpt_server_stop(fm->srv);
    fm->srv = NULL;
}

static int fm_get(struct fake_meta *fm, int *field)
{
    pthread_mutex_lock(&fm->lock);
    int v = *field;
    pthread_mutex_unlock(&fm->lock);
    return v;
}

START_TEST(test_register_heartbeat_reregister)
{
    struct fake_meta fm = {0};
    fm_start(&fm, 0); /* learn a free port, then go away */
    uint16_t mport = fm.port;
    fm_stop(&fm);

    struct node_env e = {0};
    env_targets(&e, 2, false, "rg");
    env_opts(&e);
    e.o.meta_host = "127.0.0.1";
    e.o.meta_port = mport;
    env_start(&e);
    ck_assert_int_eq(node_server_start_reg(e.ns), 0);
    node_reg *r = node_server_reg(e.ns);
    ck_assert_ptr_nonnull(r);
    /* Meta unreachable: chunk I/O is served, new targets have no id yet. */
    struct ckpt_msg_target_stats_resp st;
    ck_assert_int_eq(cstats(e.conn, &st), 0);
    ck_assert_uint_eq(st.t[0].id, 0);
    ck_assert_int_eq(cwrite(e.conn, 500, K(1, 0, 0), 1, 100), -ENODEV);
    ck_assert_int_eq(node_reg_wait(r, 1, 0, 300), -ETIMEDOUT);

    /* Meta comes up: the node registers, gets ids, heartbeats. */
    fm_start(&fm, mport);
    ck_assert_int_eq(node_reg_wait(r, 1, 3, 15000), 0);
    struct node_reg_status rs;
    node_reg_status(r, &rs);
    ck_assert_uint_eq(rs.node_id, 7);
    ck_assert_uint_eq(rs.epoch, 3);
    ck_assert_int_eq(fm_get(&fm, &fm.registers), 1);
    ck_assert_str_eq(fm.last.name, "n1");
    ck_assert_str_eq(fm.last.host, "127.0.0.1");
    ck_assert_uint_eq(fm.last.port, e.port);
    ck_assert_uint_eq(fm.last.n, 2);
    ck_assert_uint_eq(fm.last.node_id, 0);
    ck_assert_str_eq(fm.last.t[1].path, e.tdir[1]);
    ck_assert_uint_gt(fm.last.t[0].capacity, 0);
    pthread_mutex_lock(&fm.lock);
    ck_assert_uint_eq(fm.hb_targets, 2);
    pthread_mutex_unlock(&fm.lock);
    ck_assert_int_eq(cwrite(e.conn, 500, K(1, 0, 0), 1, 100), 0);
    ck_assert_int_eq(cwrite(e.conn, 501, K(1, 0, 1), 1, 100), 0);

    /* Meta forgets the node: heartbeat -ENOENT -> registers again. */
    pthread_mutex_lock(&fm.lock);
    fm.known = false;
    pthread_mutex_unlock(&fm.lock);
    ck_assert_int_eq(node_reg_wait(r, 2, rs.heartbeats + 2, 15000), 0);
    ck_assert_uint_eq(fm.last.node_id, 7); /* now it knows its id */
    ck_assert_uint_eq(fm.last.t[0].id, 500);

    /* Meta restarts (state kept, connection lost): registers again. */
    node_reg_status(r, &rs);
    fm_stop(&fm);
    fm_start(&fm, mport);
    ck_assert_int_eq(node_reg_wait(r, 3, rs.heartbeats + 2, 15000), 0);
    expect_chunk(e.conn, 500, K(1, 0, 0), 1, 100);

    /* Node restart: ids come from the targets, before meta answers. */
    env_stop_server(&e);
    fm_stop(&fm);
    env_opts(&e);
    e.o.meta_host = "127.0.0.1";
    e.o.meta_port = mport;
    env_start(&e);
    expect_chunk(e.conn, 501, K(1, 0, 1), 1, 100);
    fm_start(&fm, mport);
    ck_assert_int_eq(node_server_start_reg(e.ns), 0);
    ck_assert_int_eq(node_reg_wait(node_server_reg(e.ns), 1, 1, 15000), 0);
    ck_assert_uint_eq(fm.last.node_id, 7);
    ck_assert_uint_eq(fm.last.t[1].id, 501);
    env_fini(&e);
    fm_stop(&fm);
    ckpt_net_destroy(fm.net);
    pthread_mutex_destroy(&fm.lock);
}
END_TEST

/* ---- configuration -> options ----------------------------------------------------- */

START_TEST(test_opts_from_config)
{
    char keyf[PATH_MAX + 16], text[PATH_MAX * 2], err[256];
    pathf(keyf, sizeof(keyf), "%s/cluster.key", base_dir);
    ck_assert_int_eq(ckpt_auth_key_generate(keyf), 0);
    pathf(text, sizeof(text),
          "[cluster]\nname = c1\nkey_file = %s\nmeta = 10.0.0.1:7400\n"
          "[node]\nlisten = 127.0.0.1:0\ntarget = /nvme0/ckpt\ntarget = /nvme1/ckpt\n"
          "reserve = 7%%\nsync = always\nio_threads = 3\nrack = r9\nname = box\n",
          keyf);
    struct ckpt_config cfg;
    ckpt_config_init(&cfg);
    ck_assert_int_eq(ckpt_config_load_string(&cfg, text, strlen(text), "t", err, sizeof(err)),
                     0);
    struct node_server_opts o;
    ck_assert_int_eq(node_server_opts_from_config(&cfg, &o), 0);
    uint8_t key[CKPT_AUTH_KEY_LEN];
    ck_assert_int_eq(ckpt_auth_key_load(keyf, key, NULL), 0);
    ck_assert_mem_eq(o.key, key, sizeof(key));
    ck_assert_str_eq(o.cluster, "c1");
    ck_assert_str_eq(o.meta_host, "10.0.0.1");
    ck_assert_uint_eq(o.meta_port, 7400);
    ck_assert_str_eq(o.listen_host, "127.0.0.1");
    ck_assert_uint_eq(o.ntargets, 2);
    ck_assert_str_eq(o.targets[1], "/nvme1/ckpt");
    ck_assert_uint_eq(o.reserve_pct, 7);
    ck_assert_uint_eq(o.reserve_bytes, 0);
    ck_assert_int_eq(o.sync, NODE_CHUNK_SYNC_ALWAYS);
    ck_assert_uint_eq(o.io_threads, 3);
    ck_assert_str_eq(o.rack, "r9");
    ck_assert_str_eq(o.name, "box");
    /* A missing key file is an error, not a zero key. */
    ck_assert_int_eq(ckpt_config_set(&cfg, "cluster", "key_file", "/nonexistent/key", "t", err,
                                     sizeof(err)), 0);
    ck_assert_int_eq(node_server_opts_from_config(&cfg, &o), -ENOENT);
    ckpt_config_free(&cfg);
}
END_TEST

Suite *node_svc_suite(void)
{
    Suite *s = suite_create("node_svc");
    TCase *tc = tcase_create("rpc");
    tcase_add_checked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_rpc_roundtrip);
    tcase_add_test(tc, test_malformed_rejected);
    tcase_add_test(tc, test_damaged_chunk_detected);
    tcase_add_test(tc, test_chunk_locate);
    tcase_add_test(tc, test_identity_conflicts);
    tcase_add_test(tc, test_opts_from_config);
    suite_add_tcase(s, tc);

    TCase *tl = tcase_create("load");
    tcase_add_checked_fixture(tl, base_setup, base_teardown);
    tcase_set_timeout(tl, 30);
    tcase_add_test(tl, test_concurrent_1000);
    tcase_add_test(tl, test_enospc_at_reserve);
    tcase_add_test(tl, test_shutdown_in_flight);
    suite_add_tcase(s, tl);

    TCase *tr = tcase_create("restart");
    tcase_add_checked_fixture(tr, base_setup, base_teardown);
    tcase_set_timeout(tr, 30);
    tcase_add_test(tr, test_restart_keeps_data_and_ids);
    tcase_add_test(tr, test_register_heartbeat_reregister);
    suite_add_tcase(s, tr);
    return s;
}

/*
 * check_net.c - the RPC layer over a real transport: TCP on loopback by
 * default, or the one named by the environment:
 *
 *   CKPT_TEST_NET_TRANSPORT  tcp (default) | rdma | auto
 *   CKPT_TEST_NET_ADDR       address servers bind and clients dial
 *                            (default 127.0.0.1; rdma needs an address on
 *                            an RDMA netdev, e.g. 10.77.0.1 on rxe0)
 *   CKPT_TEST_NET_AUTO_EXPECT  what an auto net must pick here: tcp
 *                            (default: no RDMA device) or rdma
 *
 * tests/rdma/guest.sh runs this same suite over soft-RoCE (rxe0) inside a
 * qemu guest.  A real server (ckpt_server_start) and real clients in this
 * process, or in a forked child when a test kills the peer.  Covers: round
 * trips with 1 MiB bulk both ways (registered buffers: zero-copy READ and
 * WRITE on RDMA), 10,000 requests with 64 in flight (malloc'd buffers:
 * staging on RDMA), bodies larger than an RDMA message slot, wrong cluster
 * key refused on both sides, call timeouts with late replies discarded (and
 * never landing in a registered buffer), a peer killed with requests in
 * flight, hostile bytes sent to a server, bulk that does not fit, oneway
 * messages with and without bulk, peers that reconnect, the auto transport
 * choice, and allocation failures.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "alloc.h"
#include "err.h"
#include "net.h"

#define MIB (1u << 20)

static const char *test_addr(void)
{
    const char *a = getenv("CKPT_TEST_NET_ADDR");
    return a && *a ? a : "127.0.0.1";
}

/* The transport under test; an unknown name fails every test (in mknet). */
static bool test_transport_ok = true;
static enum ckpt_transport_kind test_transport(void)
{
    enum ckpt_transport_kind k = CKPT_TRANSPORT_TCP;
    const char *t = getenv("CKPT_TEST_NET_TRANSPORT");
    if (t && *t && ckpt_transport_parse(t, &k) < 0)
        test_transport_ok = false;
    return k;
}

/* The transport a connection of the suite's nets must end up on. */
static const char *expected_transport(void)
{
    const char *auto_expect = getenv("CKPT_TEST_NET_AUTO_EXPECT");
    switch (test_transport()) {
    case CKPT_TRANSPORT_RDMA:
        return "rdma";
    case CKPT_TRANSPORT_AUTO:
        return auto_expect && *auto_expect ? auto_expect : "tcp";
    default:
        return "tcp";
    }
}

struct tsrv {
    ckpt_net *net;
    ckpt_server *srv;
    uint16_t port;
    pthread_mutex_t lock;
    struct ckpt_req *held[64]; /* requests deliberately left unanswered */
    int nheld;
    atomic_int handled;
    atomic_int oneway_seen;
    atomic_int oneway_bad;     /* oneway bulk not all 0x11 */
    int hold_signal_fd;        /* write a byte per held request, or -1 */
};

/* ECHO: reply with the same body and bulk.  A body starting with "hold"
 * is kept unanswered; "oneway" counts. */
static void tsrv_handle(void *ctx, struct ckpt_req *req)
{
    struct tsrv *t = ctx;
    atomic_fetch_add(&t->handled, 1);
    if (req->body_len >= 4 && memcmp(req->body, "hold", 4) == 0) {
        pthread_mutex_lock(&t->lock);
        if (t->nheld < 64) {
            t->held[t->nheld++] = req;
            req = NULL;
        }
        pthread_mutex_unlock(&t->lock);
        if (t->hold_signal_fd >= 0) {
            char c = 'h';
            ssize_t w = write(t->hold_signal_fd, &c, 1);
            (void)w;
        }
        if (!req)
            return;
    }
    if (req->hdr.flags & CKPT_MSG_F_ONEWAY) {
        for (uint32_t i = 0; i < req->bulk_len; i++) {
            if (((const uint8_t *)req->bulk)[i] != 0x11) {
                atomic_fetch_add(&t->oneway_bad, 1);
                break;
            }
        }
        atomic_fetch_add(&t->oneway_seen, 1);
        ckpt_req_free(req);
        return;
    }
    struct iovec iov = {req->bulk, req->bulk_len};
    ckpt_req_reply(req, 0, req->body, req->body_len, req->bulk_len ? &iov : NULL,
                   req->bulk_len ? 1 : 0);
}

static const struct ckpt_server_ops tsrv_ops = {.handle = tsrv_handle};

static void key_fill(uint8_t *key, uint8_t v)
{
    for (int i = 0; i < CKPT_NET_KEY_LEN; i++)
        key[i] = (uint8_t)(v + i);
}

static ckpt_net *mknet(uint8_t keyv, const char *name)
{
    struct ckpt_net_opts o = {0};
    ckpt_net *net = NULL;
    key_fill(o.key, keyv);
    o.name = name;
    o.io_timeout_ms = 3000;
    o.transport = test_transport();
    ck_assert_msg(test_transport_ok, "CKPT_TEST_NET_TRANSPORT must be tcp, rdma or auto");
    ck_assert_int_eq(ckpt_net_create(&o, &net), 0);
    return net;
}

static void tsrv_start_sig(struct tsrv *t, uint16_t port, int hold_signal_fd)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    t->hold_signal_fd = hold_signal_fd;
    t->net = mknet(7, "test-server");
    ck_assert_int_eq(ckpt_server_start(t->net, test_addr(), port, &tsrv_ops, t, &t->srv), 0);
    t->port = ckpt_server_port(t->srv);
    ck_assert_uint_ne(t->port, 0);
}

static void tsrv_start(struct tsrv *t, uint16_t port)
{
    tsrv_start_sig(t, port, -1);
}

/* Answer the held requests ("late", echoing their bulk). */
static void tsrv_release_held(struct tsrv *t)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->nheld; i++) {
        struct ckpt_req *r = t->held[i];
        struct iovec iov = {r->bulk, r->bulk_len};
        ckpt_req_reply(r, 0, "late", 4, r->bulk_len ? &iov : NULL, r->bulk_len ? 1 : 0);
    }
    t->nheld = 0;
    pthread_mutex_unlock(&t->lock);
}

static void tsrv_stop(struct tsrv *t)
{
    ckpt_server_stop(t->srv);
    tsrv_release_held(t);
    ckpt_net_destroy(t->net);
    pthread_mutex_destroy(&t->lock);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

START_TEST(echo_roundtrip_1mib)
{
    struct tsrv t;
    long live0 = ckpt_alloc_live();
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    ck_assert_str_eq(ckpt_conn_peer_name(c), "test-server");
    ck_assert_str_eq(ckpt_conn_transport(c), expected_transport());

    uint8_t *out = ckpt_net_buf_alloc(cn, MIB), *in = ckpt_net_buf_alloc(cn, MIB);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(in);
    fill(out, MIB, 42);
    struct iovec iov[2] = {{out, MIB / 2}, {out + MIB / 2, MIB / 2}};
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "hello", .body_len = 5,
                             .bulk_out = iov, .bulk_out_cnt = 2, .bulk_in = in,
                             .bulk_in_cap = MIB};
    ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
    ck_assert_uint_eq(call.resp_body_len, 5);
    ck_assert_mem_eq(call.resp_body, "hello", 5);
    ck_assert_uint_eq(call.bulk_in_len, MIB);
    ck_assert_mem_eq(in, out, MIB);
    ckpt_call_release(&call);

    /* PING is answered by the net layer itself. */
    struct ckpt_call ping = {.opcode = CKPT_OP_PING};
    ck_assert_int_eq(ckpt_conn_call(c, &ping), 0);
    ckpt_call_release(&ping);

    ckpt_net_buf_free(cn, out, MIB);
    ckpt_net_buf_free(cn, in, MIB);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

struct flight {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inflight;
    int done;
    int bad;
    uint8_t *src;
};

struct fcall {
    struct ckpt_call call;
    struct flight *f;
    uint32_t idx;
    uint32_t bulk_len;
    struct iovec iov;
    uint8_t *in;
};

static void fcall_done(struct ckpt_call *call)
{
    struct fcall *fc = (struct fcall *)call;
    struct flight *f = fc->f;
    int ok = call->status == 0 && call->resp_body_len == 4 &&
             memcmp(call->resp_body, &fc->idx, 4) == 0 && call->bulk_in_len == fc->bulk_len &&
             (fc->bulk_len == 0 || memcmp(fc->in, f->src + (fc->idx % 97), fc->bulk_len) == 0);
    ckpt_call_release(call);
    free(fc->in);
    pthread_mutex_lock(&f->lock);
    f->inflight--;
    f->done++;
    if (!ok)
        f->bad++;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
    free(fc);
}

START_TEST(ten_thousand_requests_64_in_flight)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    struct flight f = {.src = malloc(MIB + 128)};
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.cond, NULL);
    fill(f.src, MIB + 128, 9);
    int max_seen = 0;
    for (uint32_t i = 0; i < 10000; i++) {
        pthread_mutex_lock(&f.lock);
        while (f.inflight >= 64)
            pthread_cond_wait(&f.cond, &f.lock);
        f.inflight++;
        if (f.inflight > max_seen)
            max_seen = f.inflight;
        pthread_mutex_unlock(&f.lock);
        struct fcall *fc = calloc(1, sizeof(*fc));
        ck_assert_ptr_nonnull(fc);
        fc->f = &f;
        fc->idx = i;
        /* Every 100th carries 1 MiB; the rest small odd sizes. */
        fc->bulk_len = (i % 100 == 0) ? MIB : (i % 7) * 131;
        fc->in = fc->bulk_len ? malloc(fc->bulk_len) : NULL;
        fc->iov = (struct iovec){f.src + (i % 97), fc->bulk_len};
        fc->call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .body = &fc->idx, .body_len = 4,
                                      .bulk_out = &fc->iov, .bulk_out_cnt = fc->bulk_len ? 1 : 0,
                                      .bulk_in = fc->in, .bulk_in_cap = fc->bulk_len,
                                      .done = fcall_done};
        ck_assert_int_eq(ckpt_conn_submit(c, &fc->call), 0);
    }
    pthread_mutex_lock(&f.lock);
    while (f.done < 10000)
        pthread_cond_wait(&f.cond, &f.lock);
    pthread_mutex_unlock(&f.lock);
    ck_assert_int_eq(f.bad, 0);
    ck_assert_int_eq(max_seen, 64);
    ck_assert_int_eq(atomic_load(&t.handled), 10000);
    free(f.src);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(wrong_key_refused)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *bad = mknet(99, "intruder");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(bad, test_addr(), t.port, NULL, NULL, &c), CKPT_E_AUTH);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(atomic_load(&t.handled), 0);
    /* The server still serves clients that hold the key. */
    ckpt_net *good = mknet(7, "test-client");
    ck_assert_int_eq(ckpt_net_connect(good, test_addr(), t.port, NULL, NULL, &c), 0);
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "x", .body_len = 1};
    ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
    ckpt_call_release(&call);
    ckpt_conn_close(c);
    ckpt_net_destroy(good);
    ckpt_net_destroy(bad);
    tsrv_stop(&t);
}
END_TEST

START_TEST(timeout_then_late_reply_discarded)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    uint8_t in[16];
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "hold", .body_len = 4,
                             .bulk_in = in, .bulk_in_cap = sizeof(in), .timeout_ms = 100};
    uint64_t t0 = ckpt_now_ns();
    ck_assert_int_eq(ckpt_conn_call(c, &call), -ETIMEDOUT);
    uint64_t ms = (ckpt_now_ns() - t0) / 1000000;
    ck_assert_uint_ge(ms, 90);
    ck_assert_uint_lt(ms, 2000);
    ckpt_call_release(&call);
    /* Now the server answers the timed-out call; it must be dropped, and
     * the connection must go on working. */
    tsrv_release_held(&t);
    struct ckpt_call next = {.opcode = CKPT_OP_ECHO, .body = "ok", .body_len = 2};
    ck_assert_int_eq(ckpt_conn_call(c, &next), 0);
    ck_assert_mem_eq(next.resp_body, "ok", 2);
    ckpt_call_release(&next);
    ck_assert(ckpt_conn_is_open(c));
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(bulk_too_big_for_caller)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    uint8_t out[4096], in[100];
    memset(out, 0xab, sizeof(out));
    struct iovec iov = {out, sizeof(out)};
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "b", .body_len = 1,
                             .bulk_out = &iov, .bulk_out_cnt = 1, .bulk_in = in,
                             .bulk_in_cap = sizeof(in)};
    ck_assert_int_eq(ckpt_conn_call(c, &call), -EMSGSIZE);
    ckpt_call_release(&call);
    struct ckpt_call next = {.opcode = CKPT_OP_ECHO, .body = "ok", .body_len = 2};
    ck_assert_int_eq(ckpt_conn_call(c, &next), 0);
    ckpt_call_release(&next);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

static sem_t oneway_sem;
static void oneway_done(struct ckpt_call *call)
{
    ck_assert_int_eq(call->status, 0);
    sem_post(&oneway_sem);
}

START_TEST(oneway_messages)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    sem_init(&oneway_sem, 0, 0);
    struct ckpt_call calls[10];
    for (int i = 0; i < 10; i++) {
        calls[i] = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .oneway = true, .body = "o",
                                      .body_len = 1, .done = oneway_done};
        ck_assert_int_eq(ckpt_conn_submit(c, &calls[i]), 0);
    }
    for (int i = 0; i < 10; i++)
        sem_wait(&oneway_sem);
    /* A normal call behind them proves they were all received in order. */
    struct ckpt_call sync = {.opcode = CKPT_OP_ECHO, .body = "s", .body_len = 1};
    ck_assert_int_eq(ckpt_conn_call(c, &sync), 0);
    ckpt_call_release(&sync);
    ck_assert_int_eq(atomic_load(&t.oneway_seen), 10);
    sem_destroy(&oneway_sem);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

struct killcall {
    struct ckpt_call call;
    sem_t *sem;
};

static void killcall_done(struct ckpt_call *call)
{
    struct killcall *k = (struct killcall *)call;
    sem_post(k->sem);
}

START_TEST(peer_killed_fails_every_pending_call)
{
    int pfd[2], sigpipe[2];
    ck_assert_int_eq(pipe(pfd), 0);
    ck_assert_int_eq(pipe(sigpipe), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Child: a server that holds every request until it is killed. */
        struct tsrv t;
        tsrv_start_sig(&t, 0, sigpipe[1]);
        ssize_t w = write(pfd[1], &t.port, sizeof(t.port));
        (void)w;
        for (;;)
            pause();
    }
    uint16_t port = 0;
    ck_assert_int_eq(read(pfd[0], &port, sizeof(port)), (ssize_t)sizeof(port));
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), port, NULL, NULL, &c), 0);
    enum { N = 16 };
    static struct killcall kc[N];
    sem_t sem;
    sem_init(&sem, 0, 0);
    uint8_t *bulk = calloc(1, MIB);
    struct iovec iov = {bulk, MIB};
    for (int i = 0; i < N; i++) {
        kc[i].sem = &sem;
        kc[i].call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .body = "hold", .body_len = 4,
                                        .bulk_out = &iov, .bulk_out_cnt = 1,
                                        .timeout_ms = 60000, .done = killcall_done};
        ck_assert_int_eq(ckpt_conn_submit(c, &kc[i].call), 0);
    }
    for (int i = 0; i < N; i++) { /* the child holds all of them */
        char ch;
        ck_assert_int_eq(read(sigpipe[0], &ch, 1), 1);
    }
    uint64_t t0 = ckpt_now_ns();
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < N; i++)
        sem_wait(&sem);
    ck_assert_uint_lt((ckpt_now_ns() - t0) / 1000000, 2000);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(kc[i].call.status, CKPT_E_CLOSED);
        ckpt_call_release(&kc[i].call);
    }
    ck_assert(!ckpt_conn_is_open(c));
    struct ckpt_call after = {.opcode = CKPT_OP_ECHO};
    ck_assert_int_eq(ckpt_conn_submit(c, &after), CKPT_E_CLOSED);
    free(bulk);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
}
END_TEST

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    ck_assert_int_eq(inet_pton(AF_INET, test_addr(), &a.sin_addr), 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Send bytes and expect the server to close the connection on us. */
static void expect_closed_after(uint16_t port, const void *bytes, size_t len)
{
    int fd = raw_connect(port);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (len)
        ck_assert_int_eq(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[4096];
    ssize_t r;
    /* The server may answer (e.g. a version error) before closing. */
    while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
        ;
    ck_assert_int_le(r, 0);
    ck_assert(r == 0 || errno == ECONNRESET);
    close(fd);
}

START_TEST(hostile_bytes_close_only_that_connection)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    uint8_t garbage[512];
    fill(garbage, sizeof(garbage), 3);
    expect_closed_after(t.port, garbage, sizeof(garbage));

    /* A valid header claiming a huge body. */
    uint8_t raw[CKPT_HDR_SIZE];
    struct ckpt_hdr h = {.opcode = CKPT_OP_HELLO, .req_id = 1, .body_len = 10};
    ckpt_hdr_encode(raw, &h, "0123456789", 10);
    raw[24] = 0xff;
    raw[25] = 0xff;
    raw[26] = 0xff;
    raw[27] = 0x7f;
    expect_closed_after(t.port, raw, sizeof(raw));

    /* A good HELLO header whose body never comes, then the peer closes. */
    ckpt_hdr_encode(raw, &h, "0123456789", 10);
    int fd = raw_connect(t.port);
    ck_assert_int_eq(send(fd, raw, sizeof(raw), MSG_NOSIGNAL), (ssize_t)sizeof(raw));
    close(fd);

    /* A request before any handshake. */
    struct ckpt_hdr e = {.opcode = CKPT_OP_ECHO, .req_id = 5, .body_len = 2};
    ckpt_hdr_encode(raw, &e, "hi", 2);
    uint8_t msg[CKPT_HDR_SIZE + 2];
    memcpy(msg, raw, sizeof(raw));
    memcpy(msg + CKPT_HDR_SIZE, "hi", 2);
    expect_closed_after(t.port, msg, sizeof(msg));

    /* A wrong protocol version. */
    ckpt_hdr_encode(raw, &h, "0123456789", 10);
    raw[4] = 99;
    expect_closed_after(t.port, raw, sizeof(raw));

    /* Connect and say nothing: the handshake times out (io_timeout 3 s). */
    expect_closed_after(t.port, NULL, 0);

    ck_assert_int_eq(atomic_load(&t.handled), 0);
    /* The server is unharmed. */
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "alive", .body_len = 5};
    ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
    ckpt_call_release(&call);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(peer_reconnects_after_server_restart)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    uint16_t port = t.port;
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_peer *p = NULL;
    ck_assert_int_eq(ckpt_peer_create(cn, test_addr(), port, &p), 0);
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "1", .body_len = 1};
    ck_assert_int_eq(ckpt_peer_call(p, &call), 0);
    ckpt_call_release(&call);
    tsrv_stop(&t);
    call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .body = "2", .body_len = 1};
    int rc = ckpt_peer_call(p, &call);
    ck_assert(rc == CKPT_E_CLOSED || rc == -ECONNREFUSED);
    ckpt_call_release(&call);
    /* Connect attempts now fail and back off. */
    call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .body = "3", .body_len = 1};
    ck_assert_int_eq(ckpt_peer_call(p, &call), -ECONNREFUSED);
    ckpt_call_release(&call);
    tsrv_start(&t, port);
    ckpt_peer_reset_backoff(p);
    call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .body = "4", .body_len = 1};
    ck_assert_int_eq(ckpt_peer_call(p, &call), 0);
    ck_assert_mem_eq(call.resp_body, "4", 1);
    ckpt_call_release(&call);
    ckpt_peer_destroy(p);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(connect_errors)
{
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    struct tsrv t;
    tsrv_start(&t, 0);
    uint16_t port = t.port;
    tsrv_stop(&t); /* nothing listens there now */
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), port, NULL, NULL, &c), -ECONNREFUSED);
    ck_assert_int_eq(ckpt_net_connect(cn, "no such host.invalid", 1, NULL, NULL, &c), -EINVAL);
    ckpt_net_destroy(cn);
}
END_TEST

START_TEST(alloc_failures_leave_no_leak)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    long live0 = ckpt_alloc_live();
    /* Walk allocation failures through connect + one call + close. */
    for (long n = 1; n < 200; n++) {
        ckpt_conn *c = NULL;
        ckpt_fault_arm(CKPT_FAULT_ALLOC, n);
        int rc = ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c);
        if (rc == 0) {
            struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "f", .body_len = 1};
            rc = ckpt_conn_call(c, &call);
            ckpt_call_release(&call);
            ckpt_conn_close(c);
        }
        bool fired = ckpt_fault_fired(CKPT_FAULT_ALLOC);
        ckpt_fault_disarm_all();
        /* Let the server's side of the connection wind down. */
        for (int i = 0; i < 200 && ckpt_alloc_live() != live0; i++)
            usleep(5000);
        ck_assert_int_eq(ckpt_alloc_live(), live0);
        if (!fired)
            break;
    }
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(body_larger_than_a_message_slot)
{
    /* Bodies past an RDMA receive slot (8 KiB) travel out of line (READ);
     * on TCP this is just a large body.  Both directions, with bulk. */
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    static const uint32_t sizes[] = {8000, 8192, 100000, 1u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *body = malloc(sizes[i]);
        uint8_t *bulk = ckpt_net_buf_alloc(cn, 3000), *in = ckpt_net_buf_alloc(cn, 3000);
        ck_assert_ptr_nonnull(body);
        fill(body, sizes[i], (uint32_t)i + 100);
        body[0] = 'B'; /* not "hold" */
        fill(bulk, 3000, 5);
        struct iovec iov = {bulk, 3000};
        struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = body, .body_len = sizes[i],
                                 .bulk_out = &iov, .bulk_out_cnt = 1, .bulk_in = in,
                                 .bulk_in_cap = 3000};
        ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
        ck_assert_uint_eq(call.resp_body_len, sizes[i]);
        ck_assert_mem_eq(call.resp_body, body, sizes[i]);
        ck_assert_uint_eq(call.bulk_in_len, 3000);
        ck_assert_mem_eq(in, bulk, 3000);
        ckpt_call_release(&call);
        ckpt_net_buf_free(cn, bulk, 3000);
        ckpt_net_buf_free(cn, in, 3000);
        free(body);
    }
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(late_reply_never_lands_in_registered_buffer)
{
    /* bulk_in from ckpt_net_buf_alloc() is registered memory on RDMA: the
     * peer could RDMA WRITE a late reply into it.  After the call times
     * out the caller owns the buffer again, so the late bulk must not
     * land there.  On RDMA the connection is closed to revoke the peer's
     * access; on TCP it stays up. */
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    uint8_t *out = ckpt_net_buf_alloc(cn, 4096), *in = ckpt_net_buf_alloc(cn, 4096);
    memset(out, 0xa5, 4096);
    memset(in, 0x5a, 4096);
    struct iovec iov = {out, 4096};
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "hold", .body_len = 4,
                             .bulk_out = &iov, .bulk_out_cnt = 1, .bulk_in = in,
                             .bulk_in_cap = 4096, .timeout_ms = 200};
    ck_assert_int_eq(ckpt_conn_call(c, &call), -ETIMEDOUT);
    ckpt_call_release(&call);
    bool rdma = strcmp(ckpt_conn_transport(c), "rdma") == 0;
    if (rdma)
        ck_assert(!ckpt_conn_is_open(c));
    tsrv_release_held(&t); /* the late reply, echoing 4 KiB of 0xa5 */
    if (!rdma) {
        struct ckpt_call next = {.opcode = CKPT_OP_ECHO, .body = "ok", .body_len = 2};
        ck_assert_int_eq(ckpt_conn_call(c, &next), 0); /* the late reply went before */
        ckpt_call_release(&next);
        ck_assert(ckpt_conn_is_open(c));
    } else {
        usleep(100 * 1000);
    }
    for (int i = 0; i < 4096; i++)
        ck_assert_uint_eq(in[i], 0x5a);
    ckpt_net_buf_free(cn, out, 4096);
    ckpt_net_buf_free(cn, in, 4096);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

static void oneway_bulk_done(struct ckpt_call *call)
{
    /* The caller may reuse its bulk now: scribble over it. */
    memset((void *)call->bulk_out[0].iov_base, 0xee, call->bulk_out[0].iov_len);
    ck_assert_int_eq(call->status, 0);
    sem_post(&oneway_sem);
}

START_TEST(oneway_with_bulk_arrives_intact)
{
    /* A oneway message completes when sent; its bulk (registered memory:
     * pulled by the peer on RDMA) must have reached the peer intact by
     * then, although the caller overwrites it in done(). */
    struct tsrv t;
    tsrv_start(&t, 0);
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    sem_init(&oneway_sem, 0, 0);
    enum { N = 8, LEN = 65536 };
    uint8_t *bufs[N];
    struct iovec iov[N];
    struct ckpt_call calls[N];
    for (int i = 0; i < N; i++) {
        bufs[i] = ckpt_net_buf_alloc(cn, LEN);
        ck_assert_ptr_nonnull(bufs[i]);
        memset(bufs[i], 0x11, LEN);
        iov[i] = (struct iovec){bufs[i], LEN};
        calls[i] = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .oneway = true, .body = "o",
                                      .body_len = 1, .bulk_out = &iov[i], .bulk_out_cnt = 1,
                                      .done = oneway_bulk_done};
        ck_assert_int_eq(ckpt_conn_submit(c, &calls[i]), 0);
    }
    for (int i = 0; i < N; i++)
        sem_wait(&oneway_sem);
    /* Then a normal call with bulk proves the order and the data path. */
    uint8_t *in = ckpt_net_buf_alloc(cn, LEN);
    memset(bufs[0], 0x22, LEN);
    struct ckpt_call sync = {.opcode = CKPT_OP_ECHO, .body = "s", .body_len = 1,
                             .bulk_out = &iov[0], .bulk_out_cnt = 1, .bulk_in = in,
                             .bulk_in_cap = LEN};
    ck_assert_int_eq(ckpt_conn_call(c, &sync), 0);
    ck_assert_mem_eq(in, bufs[0], LEN);
    ckpt_call_release(&sync);
    ck_assert_int_eq(atomic_load(&t.oneway_seen), N);
    ck_assert_int_eq(atomic_load(&t.oneway_bad), 0);
    for (int i = 0; i < N; i++)
        ckpt_net_buf_free(cn, bufs[i], LEN);
    ckpt_net_buf_free(cn, in, LEN);
    sem_destroy(&oneway_sem);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

START_TEST(auto_transport_choice)
{
    /* auto picks RDMA where a local device exists and the peer offers it
     * (CKPT_TEST_NET_AUTO_EXPECT says which this machine should get), and
     * TCP when the peer offers no RDMA port. */
    const char *expect = getenv("CKPT_TEST_NET_AUTO_EXPECT");
    expect = expect && *expect ? expect : "tcp";
    struct ckpt_net_opts o = {0};
    ckpt_net *sn = NULL, *cn = NULL;
    ckpt_server *srv = NULL;
    key_fill(o.key, 7);
    o.name = "auto";
    o.io_timeout_ms = 3000;
    o.transport = CKPT_TRANSPORT_AUTO;
    ck_assert_int_eq(ckpt_net_create(&o, &sn), 0);
    ck_assert_int_eq(ckpt_net_create(&o, &cn), 0);
    ck_assert_int_eq(ckpt_net_has_rdma(cn), strcmp(expect, "rdma") == 0);
    struct tsrv ts;
    memset(&ts, 0, sizeof(ts));
    pthread_mutex_init(&ts.lock, NULL);
    ts.hold_signal_fd = -1;
    ck_assert_int_eq(ckpt_server_start(sn, test_addr(), 0, &tsrv_ops, &ts, &srv), 0);
    uint16_t port = ckpt_server_port(srv), rport = ckpt_server_rdma_port(srv);
    if (strcmp(expect, "rdma") == 0)
        ck_assert_uint_eq(rport, port);
    else
        ck_assert_uint_eq(rport, 0);
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), port, NULL, NULL, &c), 0);
    ck_assert_str_eq(ckpt_conn_transport(c), expect);
    ck_assert_int_eq(ckpt_conn_transport_kind(c),
                     strcmp(expect, "rdma") == 0 ? CKPT_TRANSPORT_RDMA : CKPT_TRANSPORT_TCP);
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "a", .body_len = 1};
    ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
    ckpt_call_release(&call);
    ckpt_conn_close(c);
    /* A peer that offers no RDMA (rdma_port 0) is reached over TCP. */
    ck_assert_int_eq(ckpt_net_connect_ex(cn, test_addr(), port, 0, NULL, NULL, &c), 0);
    ck_assert_str_eq(ckpt_conn_transport(c), "tcp");
    call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .body = "b", .body_len = 1};
    ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
    ckpt_call_release(&call);
    ckpt_conn_close(c);
    /* A peer whose RDMA port is wrong: auto falls back to TCP. */
    ck_assert_int_eq(ckpt_net_connect_ex(cn, test_addr(), port, 1, NULL, NULL, &c), 0);
    ck_assert_str_eq(ckpt_conn_transport(c), "tcp");
    ckpt_conn_close(c);
    ckpt_server_stop(srv);
    ckpt_net_destroy(sn);
    ckpt_net_destroy(cn);
    pthread_mutex_destroy(&ts.lock);
    ck_assert_str_eq(ckpt_transport_name(CKPT_TRANSPORT_AUTO), "auto");
    enum ckpt_transport_kind k;
    ck_assert_int_eq(ckpt_transport_parse("rdma", &k), 0);
    ck_assert_int_eq(k, CKPT_TRANSPORT_RDMA);
    ck_assert_int_eq(ckpt_transport_parse("ib", &k), -EINVAL);
}
END_TEST

START_TEST(rdma_without_device_or_port)
{
    /* transport=rdma is refused at create where no device exists, and a
     * peer without an RDMA port cannot be reached by an rdma-only net. */
    const char *expect = getenv("CKPT_TEST_NET_AUTO_EXPECT");
    bool have = expect && strcmp(expect, "rdma") == 0;
    struct ckpt_net_opts o = {0};
    ckpt_net *n = NULL;
    key_fill(o.key, 7);
    o.transport = CKPT_TRANSPORT_RDMA;
    int rc = ckpt_net_create(&o, &n);
    if (!have) {
        ck_assert_int_eq(rc, -EPROTONOSUPPORT);
        return;
    }
    ck_assert_int_eq(rc, 0);
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect_ex(n, test_addr(), 1, 0, NULL, NULL, &c),
                     -EPROTONOSUPPORT);
    ckpt_net_destroy(n);
}
END_TEST

/* ---- hostile RDMA peers (raw rdma_cm + verbs, below net.c) ------------- */

/* Wait for an event of type want on ch for at most ms; -1 on timeout. */
static int raw_cm_wait(struct rdma_event_channel *ch, int ms, enum rdma_cm_event_type *got)
{
    struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0)
        return -1;
    struct rdma_cm_event *ev;
    if (rdma_get_cm_event(ch, &ev))
        return -1;
    *got = ev->event;
    rdma_ack_cm_event(ev);
    return 0;
}

struct raw_rdma {
    struct rdma_event_channel *ch;
    struct rdma_cm_id *id;
    struct ibv_pd *pd;
    struct ibv_cq *cq;
    struct ibv_mr *mr;
    uint8_t buf[64];
};

/* Connect to the server's RDMA port with the given private data (NULL:
 * none).  Returns the event that ended the connect. */
static enum rdma_cm_event_type raw_rdma_connect(struct raw_rdma *r, uint16_t port,
                                                const uint8_t *priv, uint8_t plen)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    enum rdma_cm_event_type ev;
    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(inet_pton(AF_INET, test_addr(), &a.sin_addr), 1);
    r->ch = rdma_create_event_channel();
    ck_assert_ptr_nonnull(r->ch);
    ck_assert_int_eq(rdma_create_id(r->ch, &r->id, NULL, RDMA_PS_TCP), 0);
    ck_assert_int_eq(rdma_resolve_addr(r->id, NULL, (struct sockaddr *)&a, 2000), 0);
    ck_assert_int_eq(raw_cm_wait(r->ch, 5000, &ev), 0);
    ck_assert_int_eq(ev, RDMA_CM_EVENT_ADDR_RESOLVED);
    ck_assert_int_eq(rdma_resolve_route(r->id, 2000), 0);
    ck_assert_int_eq(raw_cm_wait(r->ch, 5000, &ev), 0);
    ck_assert_int_eq(ev, RDMA_CM_EVENT_ROUTE_RESOLVED);
    r->pd = ibv_alloc_pd(r->id->verbs);
    r->cq = ibv_create_cq(r->id->verbs, 16, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r->pd);
    ck_assert_ptr_nonnull(r->cq);
    struct ibv_qp_init_attr qa = {.send_cq = r->cq, .recv_cq = r->cq, .qp_type = IBV_QPT_RC,
                                  .cap = {.max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1,
                                          .max_recv_sge = 1}};
    ck_assert_int_eq(rdma_create_qp(r->id, r->pd, &qa), 0);
    r->mr = ibv_reg_mr(r->pd, r->buf, sizeof(r->buf), IBV_ACCESS_LOCAL_WRITE);
    ck_assert_ptr_nonnull(r->mr);
    struct rdma_conn_param cp = {.private_data = priv, .private_data_len = plen,
                                 .responder_resources = 1, .initiator_depth = 1,
                                 .retry_count = 3, .rnr_retry_count = 3};
    ck_assert_int_eq(rdma_connect(r->id, &cp), 0);
    ck_assert_int_eq(raw_cm_wait(r->ch, 5000, &ev), 0);
    return ev;
}

static void raw_rdma_close(struct raw_rdma *r)
{
    rdma_destroy_qp(r->id);
    ibv_dereg_mr(r->mr);
    ibv_destroy_cq(r->cq);
    ibv_dealloc_pd(r->pd);
    rdma_destroy_id(r->id);
    rdma_destroy_event_channel(r->ch);
}

/* ckptfs's rdma_cm private data (lib/net_rdma.c): magic, version, slot
 * size, credits, CTL slots. */
static void good_priv(uint8_t p[16])
{
    memset(p, 0, 16);
    p[0] = 0x4b; p[1] = 0x52; p[2] = 0x44; p[3] = 0x4d; /* "KRDM" */
    p[4] = 1;
    p[9] = 0x20; /* 8192 */
    p[12] = 64;
    p[13] = 8;
}

/* The server ended a connection it had accepted: normally DISCONNECTED;
 * soft-RoCE's CM sometimes reports the server's teardown of a connection
 * it has just established as REJECTED (seen once in the guest, CI run of
 * 2026-11-23).  Either way the connection is gone, which is the point. */
static void assert_server_ended(enum rdma_cm_event_type ev)
{
    ck_assert_msg(ev == RDMA_CM_EVENT_DISCONNECTED || ev == RDMA_CM_EVENT_REJECTED,
                  "expected DISCONNECTED or REJECTED, got event %d", (int)ev);
}

START_TEST(hostile_rdma_peers_close_only_their_connection)
{
    struct tsrv t;
    tsrv_start(&t, 0);
    uint16_t rport = ckpt_server_rdma_port(t.srv);
    if (strcmp(expected_transport(), "rdma") != 0) {
        /* No RDMA here: the server must not claim an RDMA listener. */
        ck_assert_uint_eq(rport, 0);
        tsrv_stop(&t);
        return;
    }
    ck_assert_uint_eq(rport, t.port);
    struct raw_rdma r;
    enum rdma_cm_event_type ev;
    uint8_t priv[16];

    /* No private data, then a wrong magic: refused at connect. */
    ck_assert_int_eq(raw_rdma_connect(&r, rport, NULL, 0), RDMA_CM_EVENT_REJECTED);
    raw_rdma_close(&r);
    good_priv(priv);
    priv[0] ^= 0xff;
    ck_assert_int_eq(raw_rdma_connect(&r, rport, priv, 16), RDMA_CM_EVENT_REJECTED);
    raw_rdma_close(&r);

    /* A garbage transport header: the server disconnects at once. */
    good_priv(priv);
    ck_assert_int_eq(raw_rdma_connect(&r, rport, priv, 16), RDMA_CM_EVENT_ESTABLISHED);
    memset(r.buf, 0x99, sizeof(r.buf));
    struct ibv_sge sge = {.addr = (uintptr_t)r.buf, .length = sizeof(r.buf), .lkey = r.mr->lkey};
    struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
                             .send_flags = IBV_SEND_SIGNALED}, *bad;
    ck_assert_int_eq(ibv_post_send(r.id->qp, &wr, &bad), 0);
    ck_assert_int_eq(raw_cm_wait(r.ch, 5000, &ev), 0);
    assert_server_ended(ev);
    raw_rdma_close(&r);

    /* A header claiming 64 credits back that were never spent: the same. */
    ck_assert_int_eq(raw_rdma_connect(&r, rport, priv, 16), RDMA_CM_EVENT_ESTABLISHED);
    memset(r.buf, 0, sizeof(r.buf));
    r.buf[0] = 2;  /* CTL */
    r.buf[4] = 64; /* credits */
    sge.length = 16;
    ck_assert_int_eq(ibv_post_send(r.id->qp, &wr, &bad), 0);
    ck_assert_int_eq(raw_cm_wait(r.ch, 5000, &ev), 0);
    assert_server_ended(ev);
    raw_rdma_close(&r);

    /* Connected and silent: the handshake times out (io_timeout 3 s). */
    ck_assert_int_eq(raw_rdma_connect(&r, rport, priv, 16), RDMA_CM_EVENT_ESTABLISHED);
    uint64_t t0 = ckpt_now_ns();
    ck_assert_int_eq(raw_cm_wait(r.ch, 10000, &ev), 0);
    assert_server_ended(ev);
    ck_assert_uint_ge((ckpt_now_ns() - t0) / 1000000, 2500);
    raw_rdma_close(&r);

    ck_assert_int_eq(atomic_load(&t.handled), 0);
    /* The server is unharmed. */
    ckpt_net *cn = mknet(7, "test-client");
    ckpt_conn *c = NULL;
    ck_assert_int_eq(ckpt_net_connect(cn, test_addr(), t.port, NULL, NULL, &c), 0);
    ck_assert_str_eq(ckpt_conn_transport(c), "rdma");
    struct ckpt_call call = {.opcode = CKPT_OP_ECHO, .body = "alive", .body_len = 5};
    ck_assert_int_eq(ckpt_conn_call(c, &call), 0);
    ckpt_call_release(&call);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    tsrv_stop(&t);
}
END_TEST

/* VmFlags of the mapping holding p (from /proc/self/smaps), or "". */
static void vma_flags(const void *p, char *dst, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool inside = false;
    dst[0] = '\0';
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            size_t n = strnlen(line + 8, cap - 1);
            memcpy(dst, line + 8, n);
            dst[n] = '\0';
            break;
        }
    }
    fclose(f);
}

/* TCP: stripe-sized buffers (>= 2 MiB) are 2 MiB aligned and advised to
 * be huge pages (where THP is not disabled), smaller ones page aligned;
 * both survive a trip through the pool unchanged. */
START_TEST(tcp_big_buffers_are_huge_page_aligned)
{
    if (test_transport() != CKPT_TRANSPORT_TCP)
        return;
    long live0 = ckpt_alloc_live();
    ckpt_net *n = mknet(7, "test-bufs");
    uint8_t *big = ckpt_net_buf_alloc(n, 4 * MIB), *small = ckpt_net_buf_alloc(n, MIB);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(small);
    ck_assert_uint_eq((uintptr_t)big % (2 * MIB), 0);
    ck_assert_uint_eq((uintptr_t)small % 4096, 0);
    memset(big, 0xa5, 4 * MIB);
    memset(small, 0x5a, MIB);
    char thp[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(thp, sizeof(thp), f))
            thp[0] = '\0';
        fclose(f);
    }
    if (thp[0] && !strstr(thp, "[never]")) {
        char flags[256];
        vma_flags(big, flags, sizeof(flags));
        ck_assert_msg(strstr(flags, " hg") != NULL, "no MADV_HUGEPAGE on the buffer: %s", flags);
        vma_flags(big + 4 * MIB - 1, flags, sizeof(flags));
        ck_assert_msg(strstr(flags, " hg") != NULL, "advice does not cover the end: %s", flags);
    }
    ckpt_net_buf_free(n, big, 4 * MIB);
    ckpt_net_buf_free(n, small, MIB);
    uint8_t *again = ckpt_net_buf_alloc(n, 3 * MIB); /* the same 4 MiB class */
    ck_assert_ptr_nonnull(again);
    ck_assert_uint_eq((uintptr_t)again % (2 * MIB), 0);
    ckpt_net_buf_free(n, again, 3 * MIB);
    ckpt_net_destroy(n);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create(ckpt_transport_name(test_transport()));
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_roundtrip_1mib);
    tcase_add_test(tc, tcp_big_buffers_are_huge_page_aligned);
    tcase_add_test(tc, ten_thousand_requests_64_in_flight);
    tcase_add_test(tc, wrong_key_refused);
    tcase_add_test(tc, timeout_then_late_reply_discarded);
    tcase_add_test(tc, bulk_too_big_for_caller);
    tcase_add_test(tc, oneway_messages);
    tcase_add_test(tc, peer_killed_fails_every_pending_call);
    tcase_add_test(tc, hostile_bytes_close_only_that_connection);
    tcase_add_test(tc, peer_reconnects_after_server_restart);
    tcase_add_test(tc, connect_errors);
    tcase_add_test(tc, alloc_failures_leave_no_leak);
    tcase_add_test(tc, body_larger_than_a_message_slot);
    tcase_add_test(tc, late_reply_never_lands_in_registered_buffer);
    tcase_add_test(tc, oneway_with_bulk_arrives_intact);
    tcase_add_test(tc, auto_transport_choice);
    tcase_add_test(tc, rdma_without_device_or_port);
    tcase_add_test(tc, hostile_rdma_peers_close_only_their_connection);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_net.c - the RPC layer over the TCP transport, on loopback.
 *
 * A real server (ckpt_server_start) and real clients in this process, or
 * in a forked child when a test kills the peer.  Covers: round trips with
 * 1 MiB bulk both ways, 10,000 requests with 64 in flight, wrong cluster
 * key refused on both sides, call timeouts with late replies discarded,
 * a peer killed with requests in flight, hostile bytes sent to a server,
 * bulk that does not fit, oneway messages, and peers that reconnect.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "net.h"

#define MIB (1u << 20)

struct tsrv {
    ckpt_net *net;
    ckpt_server *srv;
    uint16_t port;
    pthread_mutex_t lock;
    struct ckpt_req *held[64]; /* requests deliberately left unanswered */
    int nheld;
    atomic_int handled;
    atomic_int oneway_seen;
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
    ck_assert_int_eq(ckpt_net_create(&o, &net), 0);
    return net;
}

static void tsrv_start_sig(struct tsrv *t, uint16_t port, int hold_signal_fd)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    t->hold_signal_fd = hold_signal_fd;
    t->net = mknet(7, "test-server");
    ck_assert_int_eq(ckpt_server_start(t->net, "127.0.0.1", port, &tsrv_ops, t, &t->srv), 0);
    t->port = ckpt_server_port(t->srv);
    ck_assert_uint_ne(t->port, 0);
}

static void tsrv_start(struct tsrv *t, uint16_t port)
{
    tsrv_start_sig(t, port, -1);
}

static void tsrv_release_held(struct tsrv *t)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->nheld; i++)
        ckpt_req_reply(t->held[i], 0, "late", 4, NULL, 0);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c), 0);
    ck_assert_str_eq(ckpt_conn_peer_name(c), "test-server");
    ck_assert_str_eq(ckpt_conn_transport(c), "tcp");

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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c), 0);
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
    ck_assert_int_eq(ckpt_net_connect(bad, "127.0.0.1", t.port, NULL, NULL, &c), CKPT_E_AUTH);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(atomic_load(&t.handled), 0);
    /* The server still serves clients that hold the key. */
    ckpt_net *good = mknet(7, "test-client");
    ck_assert_int_eq(ckpt_net_connect(good, "127.0.0.1", t.port, NULL, NULL, &c), 0);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c), 0);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c), 0);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c), 0);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", port, NULL, NULL, &c), 0);
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
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c), 0);
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
    ck_assert_int_eq(ckpt_peer_create(cn, "127.0.0.1", port, &p), 0);
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
    ck_assert_int_eq(ckpt_net_connect(cn, "127.0.0.1", port, NULL, NULL, &c), -ECONNREFUSED);
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
        int rc = ckpt_net_connect(cn, "127.0.0.1", t.port, NULL, NULL, &c);
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

Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("tcp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_roundtrip_1mib);
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
    suite_add_tcase(s, tc);
    return s;
}

/*
 * bench_net.c - throughput of the RPC layer over one transport, next to
 * the machine's limit: a raw TCP stream to the same address in the same run.
 *
 * usage: bench_net [tcp|rdma|auto] [ADDR]     (default: tcp 127.0.0.1)
 * RDMA needs an address on an RDMA netdev (tests/rdma/run.sh bench runs
 * both inside the soft-RoCE guest).
 *
 * Rows: small-message round trips per second (64 in flight, one
 * connection) and one at a time (latency); 1 MiB request bulk as MB/s (8 in
 * flight; the shape of chunk writes: on RDMA the server READs it); 1 MiB
 * response bulk (chunk reads: on RDMA the server WRITEs it into the
 * caller's buffer); and a raw socket stream of 1 MiB writes (the TCP
 * ceiling).  Bulk buffers come from ckpt_net_buf_alloc (registered on
 * RDMA).  Output: a table plus `bench_net <name> <value>` lines.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "net.h"

#define MIB (1u << 20)

/* Body "r": answer with 1 MiB of bulk from ctx (a registered buffer). */
static void handle(void *ctx, struct ckpt_req *req)
{
    struct iovec iov = {ctx, MIB};
    bool rd = req->body_len == 1 && req->body[0] == 'r';
    ckpt_req_reply(req, 0, NULL, 0, rd ? &iov : NULL, rd ? 1 : 0);
}

static const struct ckpt_server_ops ops = {.handle = handle};

static sem_t slots;
static void done(struct ckpt_call *c)
{
    if (c->status != 0) {
        fprintf(stderr, "bench_net: call failed: %s\n", ckpt_strerror(c->status));
        exit(1);
    }
    ckpt_call_release(c);
    sem_post(&slots);
}

static double run_calls(ckpt_conn *c, int inflight, uint32_t bulk_len, double seconds,
                        void *bulk, uint8_t **sinks)
{
    struct ckpt_call *calls = calloc((size_t)inflight, sizeof(*calls));
    struct iovec iov = {bulk, bulk_len};
    if (!calls) {
        fprintf(stderr, "bench_net: out of memory\n");
        exit(1);
    }
    sem_init(&slots, 0, (unsigned)inflight);
    uint64_t t0 = ckpt_now_ns(), n = 0;
    while ((double)(ckpt_now_ns() - t0) / 1e9 < seconds) {
        sem_wait(&slots);
        struct ckpt_call *call = &calls[n % (uint64_t)inflight];
        *call = (struct ckpt_call){.opcode = CKPT_OP_ECHO, .bulk_out = &iov,
                                   .bulk_out_cnt = bulk_len ? 1 : 0, .done = done};
        if (sinks) { /* a read: 1 MiB comes back into this call's buffer */
            call->body = "r";
            call->body_len = 1;
            call->bulk_out_cnt = 0;
            call->bulk_in = sinks[n % (uint64_t)inflight];
            call->bulk_in_cap = MIB;
        }
        if (ckpt_conn_submit(c, call) < 0) {
            fprintf(stderr, "bench_net: submit failed\n");
            exit(1);
        }
        n++;
    }
    for (int i = 0; i < inflight; i++)
        sem_wait(&slots);
    double secs = (double)(ckpt_now_ns() - t0) / 1e9;
    sem_destroy(&slots);
    free(calls);
    return (double)n / secs;
}

struct sink {
    int fd;
};

static void *raw_sink(void *arg)
{
    struct sink *s = arg;
    char *buf = malloc(MIB);
    while (read(s->fd, buf, MIB) > 0)
        ;
    free(buf);
    return NULL;
}

static double raw_tcp_mbs(const char *addr, double seconds)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1)
        return 0;
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0)
        return 0;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 0;
    struct sink s = {.fd = accept(l, NULL, NULL)};
    pthread_t th;
    pthread_create(&th, NULL, raw_sink, &s);
    char *buf = malloc(MIB);
    memset(buf, 1, MIB);
    uint64_t t0 = ckpt_now_ns(), bytes = 0;
    while ((double)(ckpt_now_ns() - t0) / 1e9 < seconds) {
        ssize_t w = write(c, buf, MIB);
        if (w <= 0)
            break;
        bytes += (uint64_t)w;
    }
    double secs = (double)(ckpt_now_ns() - t0) / 1e9;
    close(c);
    pthread_join(th, NULL);
    close(s.fd);
    close(l);
    free(buf);
    return (double)bytes / MIB / secs;
}

int main(int argc, char **argv)
{
    struct ckpt_net_opts o = {0};
    ckpt_net *sn, *cn;
    ckpt_server *srv;
    ckpt_conn *c;
    const char *addr = argc > 2 ? argv[2] : "127.0.0.1";
    int rc;
    ckpt_log_init("bench_net", CKPT_LOG_LVL_WARN);
    if (argc > 1 && ckpt_transport_parse(argv[1], &o.transport) < 0) {
        fprintf(stderr, "usage: bench_net [tcp|rdma|auto] [ADDR]\n");
        return 2;
    }
    memset(o.key, 3, sizeof(o.key));
    o.name = "bench";
    if ((rc = ckpt_net_create(&o, &sn)) < 0 || (rc = ckpt_net_create(&o, &cn)) < 0) {
        fprintf(stderr, "bench_net: %s: %s\n", ckpt_transport_name(o.transport),
                ckpt_strerror(rc));
        return 1;
    }
    void *rbuf = ckpt_net_buf_alloc(sn, MIB);
    if (!rbuf || (rc = ckpt_server_start(sn, addr, 0, &ops, rbuf, &srv)) < 0 ||
        (rc = ckpt_net_connect(cn, addr, ckpt_server_port(srv), NULL, NULL, &c)) < 0) {
        fprintf(stderr, "bench_net: setup on %s failed: %s\n", addr, ckpt_strerror(rc));
        return 1;
    }
    memset(rbuf, 9, MIB);
    void *bulk = ckpt_net_buf_alloc(cn, MIB);
    uint8_t *sinks[8];
    for (int i = 0; i < 8; i++)
        sinks[i] = ckpt_net_buf_alloc(cn, MIB);
    memset(bulk, 7, MIB);
    double small = run_calls(c, 64, 0, 1.0, bulk, NULL);
    double sync1 = run_calls(c, 1, 0, 0.5, bulk, NULL);
    double big = run_calls(c, 8, MIB, 1.5, bulk, NULL);
    double rd = run_calls(c, 8, 0, 1.5, bulk, sinks);
    double raw = raw_tcp_mbs(addr, 1.0);
    char title[96];
    snprintf(title, sizeof(title), "%s to %s, this run", ckpt_conn_transport(c), addr);
    printf("%-44s %12s\n", title, "value");
    printf("%-44s %12.0f\n", "rpc round trips/s, 64 in flight", small);
    printf("%-44s %12.0f\n", "rpc round trips/s, 1 in flight (latency)", sync1);
    printf("%-44s %12.0f\n", "rpc 1 MiB request bulk MB/s, 8 in flight", big);
    printf("%-44s %12.0f\n", "rpc 1 MiB response bulk MB/s, 8 in flight", rd);
    printf("%-44s %12.0f\n", "raw TCP stream MB/s (the TCP ceiling)", raw);
    printf("%-44s %12.2f\n", "rpc request bulk / raw TCP", raw > 0 ? big / raw : 0);
    printf("bench_net transport %s\n", ckpt_conn_transport(c));
    printf("bench_net rpc_small_per_s %.0f\n", small);
    printf("bench_net rpc_latency_us %.1f\n", 1e6 / sync1);
    printf("bench_net rpc_bulk_mbs %.0f\n", big);
    printf("bench_net rpc_read_mbs %.0f\n", rd);
    printf("bench_net raw_tcp_mbs %.0f\n", raw);
    ckpt_net_buf_free(cn, bulk, MIB);
    for (int i = 0; i < 8; i++)
        ckpt_net_buf_free(cn, sinks[i], MIB);
    ckpt_conn_close(c);
    ckpt_net_destroy(cn);
    ckpt_server_stop(srv);
    ckpt_net_buf_free(sn, rbuf, MIB);
    ckpt_net_destroy(sn);
    return 0;
}

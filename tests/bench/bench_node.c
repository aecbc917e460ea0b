/*
 * bench_node.c - chunk write and read throughput of one ckpt-node over
 * loopback, next to plain sequential I/O on the same filesystem, measured
 * in the same run.
 *
 * It starts the real daemon (build/bin/ckpt-node, or $BIN/ckpt-node) on a
 * target in a temp directory, plays a minimal ckpt-meta itself so the
 * target gets an id, and then:
 *   - writes SIZE MiB as 1 MiB chunks, 8 in flight on one connection,
 *     followed by one CHUNK_SYNC barrier (sync = commit, the default: the
 *     barrier is what `ckpt commit` costs), timed together;
 *   - evicts the chunk files from the page cache (posix_fadvise DONTNEED
 *     on each, after the barrier made them clean) and reads every chunk
 *     back, 8 in flight, checking each reply's crc;
 *   - writes the same bytes to one plain file with 1 MiB write(2)s and one
 *     fdatasync(2), evicts it, and reads it back with 1 MiB read(2)s.
 * Ratios node/plain are printed with the table, plus `bench_node NAME
 * VALUE` lines for scripts.  Not a timed test: figures depend on the disk
 * and on whatever else the machine is doing.
 *
 * usage: bench_node [--size MIB] [--inflight N] [--dir DIR]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "crc.h"
#include "err.h"
#include "log.h"
#include "msg_cluster.h"
#include "msg_node.h"
#include "net.h"

#define MIB (1u << 20)
#define TARGET_ID 1u

static pid_t node_pid; /* the daemon we started, stopped by die() too */

static void die(const char *what)
{
    fprintf(stderr, "bench_node: %s\n", what);
    if (node_pid > 0)
        kill(node_pid, SIGTERM);
    exit(1);
}

/* ---- a minimal ckpt-meta: hands out ids, acknowledges heartbeats ------- */

static void meta_handle(void *ctx, struct ckpt_req *req)
{
    (void)ctx;
    uint8_t store[512];
    struct ckpt_wbuf w;
    int status = 0;
    ckpt_wbuf_init(&w, store, sizeof(store));
    if (req->hdr.opcode == CKPT_OP_NODE_REGISTER) {
        struct ckpt_msg_node_register *m = calloc(1, sizeof(*m));
        struct ckpt_msg_node_register_resp r = {.node_id = 1, .epoch = 1,
                                                .heartbeat_ms = 1000};
        if (!m || ckpt_msg_node_register_decode(req->body, req->body_len, m) < 0) {
            status = CKPT_E_PROTO;
        } else {
            r.n = m->n;
            for (uint32_t i = 0; i < m->n; i++)
                r.target_ids[i] = TARGET_ID + i;
            status = ckpt_msg_node_register_resp_encode(&w, &r);
        }
        free(m);
    } else if (req->hdr.opcode == CKPT_OP_HEARTBEAT) {
        struct ckpt_msg_heartbeat_resp r = {.epoch = 1};
        status = ckpt_msg_heartbeat_resp_encode(&w, &r);
    } else {
        status = -EOPNOTSUPP;
    }
    ckpt_req_reply(req, status, status ? NULL : w.p, status ? 0 : (uint32_t)w.len, NULL, 0);
    ckpt_wbuf_free(&w);
}

static const struct ckpt_server_ops meta_ops = {.handle = meta_handle};

/* ---- starting the daemon --------------------------------------------------- */

static pid_t start_node(const char *exe, const char *dir, uint16_t meta_port, uint16_t *port)
{
    char keyf[PATH_MAX + 16], tgt[PATH_MAX + 16], logf[PATH_MAX + 16], keyset[PATH_MAX + 48],
        meta[32];
    snprintf(keyf, sizeof(keyf), "%s/cluster.key", dir);
    snprintf(tgt, sizeof(tgt), "%s/t0", dir);
    snprintf(logf, sizeof(logf), "%s/node.log", dir);
    snprintf(keyset, sizeof(keyset), "cluster.key_file=%s", keyf);
    snprintf(meta, sizeof(meta), "127.0.0.1:%u", (unsigned)meta_port);
    int pfd[2];
    if (pipe(pfd) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(pfd[0]);
        if (dup2(pfd[1], 3) < 0)
            _exit(127);
        char *argv[] = {(char *)exe, "-c", "/dev/null", "--set", keyset, "--listen",
                        "127.0.0.1:0", "--meta", meta, "--target", tgt, "--set",
                        "node.reserve=0%", "--log-file", logf, "--ready-fd", "3", NULL};
        execv(exe, argv);
        _exit(127);
    }
    close(pfd[1]);
    char line[64] = {0};
    size_t got = 0;
    while (got < sizeof(line) - 1) {
        ssize_t n = read(pfd[0], line + got, sizeof(line) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (strchr(line, '\n'))
            break;
    }
    close(pfd[0]);
    unsigned p = 0;
    if (sscanf(line, "ready %u", &p) != 1 || !p || p > 65535) {
        fprintf(stderr, "bench_node: %s did not get ready (see %s)\n", exe, logf);
        exit(1);
    }
    *port = (uint16_t)p;
    return pid;
}

/* ---- chunk traffic ------------------------------------------------------------- */

/* Free call slots: completions come back in any order, so a slot is
 * reused only after its own call completed. */
struct slots {
    sem_t sem;
    pthread_mutex_t lock;
    struct op **free;
    int nfree;
};

struct op {
    struct ckpt_call call;
    uint8_t body[64];
    struct iovec iov;
    void *buf;
    struct slots *slots;
    int *failed;
};

static void op_done(struct ckpt_call *c)
{
    struct op *op = c->ctx;
    if (c->status != 0) {
        fprintf(stderr, "bench_node: %s failed: %s\n", ckpt_op_name(c->opcode),
                ckpt_strerror(c->status));
        *op->failed = 1;
    } else if (c->opcode == CKPT_OP_CHUNK_READ) {
        struct ckpt_msg_chunk_read_resp r;
        if (ckpt_msg_chunk_read_resp_decode(c->resp_body, c->resp_body_len, &r) < 0 ||
            c->bulk_in_len != MIB || r.crc != ckpt_crc32c(0, op->buf, MIB)) {
            fprintf(stderr, "bench_node: bad read reply\n");
            *op->failed = 1;
        }
    }
    ckpt_call_release(c);
    pthread_mutex_lock(&op->slots->lock);
    op->slots->free[op->slots->nfree++] = op;
    pthread_mutex_unlock(&op->slots->lock);
    sem_post(&op->slots->sem);
}

/* Write (read=0) or read all n chunks, inflight at a time.  @return seconds. */
static double run_chunks(ckpt_conn *c, ckpt_net *net, uint32_t n, int inflight, int read)
{
    struct op *ops = calloc((size_t)inflight, sizeof(*ops));
    struct slots slots = {.free = calloc((size_t)inflight, sizeof(struct op *))};
    int failed = 0;
    if (!ops || !slots.free)
        die("out of memory");
    sem_init(&slots.sem, 0, (unsigned)inflight);
    pthread_mutex_init(&slots.lock, NULL);
    for (int i = 0; i < inflight; i++) {
        ops[i].buf = ckpt_net_buf_alloc(net, MIB);
        if (!ops[i].buf)
            die("out of memory");
        memset(ops[i].buf, 0x5a ^ i, MIB);
        ops[i].slots = &slots;
        ops[i].failed = &failed;
        slots.free[slots.nfree++] = &ops[i];
    }
    uint64_t t0 = ckpt_now_ns();
    for (uint32_t s = 0; s < n && !failed; s++) {
        sem_wait(&slots.sem);
        pthread_mutex_lock(&slots.lock);
        struct op *op = slots.free[--slots.nfree];
        pthread_mutex_unlock(&slots.lock);
        struct ckpt_wbuf w;
        struct ckpt_chunk_key key = {.ino = 1000 + s / 64, .stripe = s % 64, .index = 0};
        ckpt_wbuf_init(&w, op->body, sizeof(op->body));
        memset(&op->call, 0, sizeof(op->call));
        if (!read) {
            ((uint32_t *)op->buf)[0] = s; /* distinct chunks */
            struct ckpt_msg_chunk_write m = {.target = TARGET_ID, .key = key, .gen = 1,
                                             .len = MIB, .crc = ckpt_crc32c(0, op->buf, MIB)};
            ckpt_msg_chunk_write_encode(&w, &m);
            op->iov.iov_base = op->buf;
            op->iov.iov_len = MIB;
            op->call.opcode = CKPT_OP_CHUNK_WRITE;
            op->call.bulk_out = &op->iov;
            op->call.bulk_out_cnt = 1;
        } else {
            struct ckpt_msg_chunk_read m = {.target = TARGET_ID, .key = key};
            ckpt_msg_chunk_read_encode(&w, &m);
            op->call.opcode = CKPT_OP_CHUNK_READ;
            op->call.bulk_in = op->buf;
            op->call.bulk_in_cap = MIB;
        }
        op->call.body = w.p;
        op->call.body_len = (uint32_t)w.len;
        op->call.done = op_done;
        op->call.ctx = op;
        if (ckpt_conn_submit(c, &op->call) < 0)
            die("submit failed");
    }
    for (int i = 0; i < inflight; i++)
        sem_wait(&slots.sem);
    if (!read && !failed) {
        struct ckpt_msg_chunk_sync m = {.target = TARGET_ID, .n = 0};
        uint8_t store[64];
        struct ckpt_wbuf w;
        ckpt_wbuf_init(&w, store, sizeof(store));
        ckpt_msg_chunk_sync_encode(&w, &m);
        struct ckpt_call call = {.opcode = CKPT_OP_CHUNK_SYNC, .body = w.p,
                                 .body_len = (uint32_t)w.len, .timeout_ms = 120000};
        if (ckpt_conn_call(c, &call) != 0)
            die("sync barrier failed");
        ckpt_call_release(&call);
    }
    double secs = (double)(ckpt_now_ns() - t0) / 1e9;
    if (failed)
        die("chunk I/O failed");
    for (int i = 0; i < inflight; i++)
        ckpt_net_buf_free(net, ops[i].buf, MIB);
    free(ops);
    free(slots.free);
    sem_destroy(&slots.sem);
    pthread_mutex_destroy(&slots.lock);
    return secs;
}

static int evict_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    if (flag == FTW_F) {
        int fd = open(p, O_RDONLY);
        if (fd >= 0) {
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

/* ---- plain file I/O --------------------------------------------------------------- */

static double plain_write(const char *path, uint32_t n, void *buf)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("cannot create the plain file");
    uint64_t t0 = ckpt_now_ns();
    for (uint32_t i = 0; i < n; i++) {
        ((uint32_t *)buf)[0] = i;
        if (write(fd, buf, MIB) != (ssize_t)MIB)
            die("plain write failed");
    }
    if (fdatasync(fd) != 0)
        die("fdatasync failed");
    double secs = (double)(ckpt_now_ns() - t0) / 1e9;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return secs;
}

static volatile uint32_t crc_sink; /* keeps the crc work from being optimised out */

static double plain_read(const char *path, uint32_t n, void *buf)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("cannot open the plain file");
    uint64_t t0 = ckpt_now_ns();
    uint32_t crc = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (read(fd, buf, MIB) != (ssize_t)MIB)
            die("plain read failed");
        crc = ckpt_crc32c(crc, buf, MIB); /* the node checks crcs too */
    }
    double secs = (double)(ckpt_now_ns() - t0) / 1e9;
    close(fd);
    crc_sink = crc;
    return secs;
}

int main(int argc, char **argv)
{
    uint32_t size_mib = 512;
    int inflight = 8;
    const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size_mib = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--inflight") && i + 1 < argc)
            inflight = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base = argv[++i];
        else {
            fprintf(stderr, "usage: bench_node [--size MIB] [--inflight N] [--dir DIR]\n");
            return 2;
        }
    }
    if (size_mib < 8 || inflight < 1 || inflight > 256)
        die("--size must be >= 8, --inflight 1..256");
    ckpt_log_init("bench_node", CKPT_LOG_LVL_WARN);
    signal(SIGPIPE, SIG_IGN);

    char exe[PATH_MAX + 32], self[PATH_MAX];
    const char *bin = getenv("BIN");
    if (bin && *bin) {
        snprintf(exe, sizeof(exe), "%s/ckpt-node", bin);
    } else {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            die("cannot find myself");
        self[n] = '\0';
        *strrchr(self, '/') = '\0'; /* build/tests */
        snprintf(exe, sizeof(exe), "%s/../bin/ckpt-node", self);
    }
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "bench_node: %s not found (build it, or set BIN)\n", exe);
        return 1;
    }
    char dir[PATH_MAX], keyf[PATH_MAX + 16], plain[PATH_MAX + 16], chunks[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/bench_node.XXXXXX", base);
    if (!mkdtemp(dir))
        die("mkdtemp failed");
    snprintf(keyf, sizeof(keyf), "%s/cluster.key", dir);
    snprintf(plain, sizeof(plain), "%s/plain.dat", dir);
    snprintf(chunks, sizeof(chunks), "%s/t0/chunks", dir);
    if (ckpt_auth_key_generate(keyf) < 0)
        die("cannot write a cluster key");

    struct ckpt_net_opts no = {.name = "bench_node", .call_timeout_ms = 120000};
    bool open_warn;
    if (ckpt_auth_key_load(keyf, no.key, &open_warn) < 0)
        die("cannot read the cluster key");
    ckpt_net *net;
    ckpt_server *meta;
    if (ckpt_net_create(&no, &net) < 0 ||
        ckpt_server_start(net, "127.0.0.1", 0, &meta_ops, NULL, &meta) < 0)
        die("cannot start the fake ckpt-meta");
    uint16_t port = 0;
    pid_t pid = start_node(exe, dir, ckpt_server_port(meta), &port);
    node_pid = pid;
    ckpt_conn *c;
    if (ckpt_net_connect(net, "127.0.0.1", port, NULL, NULL, &c) < 0)
        die("cannot connect to ckpt-node");
    /* Wait (explicitly, on the node's own answer) for the target id. */
    for (int tries = 0;; tries++) {
        struct ckpt_call call = {.opcode = CKPT_OP_TARGET_STATS};
        struct ckpt_msg_target_stats_resp st;
        int ok = ckpt_conn_call(c, &call) == 0 &&
                 ckpt_msg_target_stats_resp_decode(call.resp_body, call.resp_body_len, &st) ==
                     0 &&
                 st.n == 1 && st.t[0].id == TARGET_ID;
        ckpt_call_release(&call);
        if (ok)
            break;
        if (tries > 500)
            die("the node never registered");
        usleep(10000);
    }

    uint32_t n = size_mib;
    double w_node = run_chunks(c, net, n, inflight, 0);
    nftw(chunks, evict_cb, 16, FTW_PHYS);
    double r_node = run_chunks(c, net, n, inflight, 1);
    void *buf = ckpt_net_buf_alloc(net, MIB);
    if (!buf)
        die("out of memory");
    memset(buf, 0x5a, MIB);
    double w_plain = plain_write(plain, n, buf);
    double r_plain = plain_read(plain, n, buf);
    ckpt_net_buf_free(net, buf, MIB);

    ckpt_conn_close(c);
    kill(pid, SIGTERM);
    int wst = 0;
    waitpid(pid, &wst, 0);
    ckpt_server_stop(meta);
    ckpt_net_destroy(net);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);

    double mb = (double)n * MIB / 1e6;
    printf("ckpt-node over loopback TCP vs plain file I/O, same filesystem, same run\n");
    printf("(%u x 1 MiB, %d in flight; reads after evicting the page cache)\n", n, inflight);
    printf("%-46s %10s %8s\n", "", "MB/s", "ratio");
    printf("%-46s %10.0f %8.2f\n", "chunk write + sync barrier (ckpt-node)", mb / w_node,
           w_plain / w_node);
    printf("%-46s %10.0f %8s\n", "plain write(2) 1 MiB + fdatasync", mb / w_plain, "1.00");
    printf("%-46s %10.0f %8.2f\n", "chunk read, crc checked (ckpt-node)", mb / r_node,
           r_plain / r_node);
    printf("%-46s %10.0f %8s\n", "plain read(2) 1 MiB (+crc32c)", mb / r_plain, "1.00");
    printf("bench_node chunk_write_mbs %.0f\n", mb / w_node);
    printf("bench_node plain_write_mbs %.0f\n", mb / w_plain);
    printf("bench_node chunk_read_mbs %.0f\n", mb / r_node);
    printf("bench_node plain_read_mbs %.0f\n", mb / r_plain);
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        fprintf(stderr, "bench_node: ckpt-node did not exit cleanly on SIGTERM\n");
        return 1;
    }
    return 0;
}

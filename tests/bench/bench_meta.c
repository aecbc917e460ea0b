/*
 * bench_meta.c - ckpt-meta operations per second: create, stat and unlink
 * from 1 and 8 concurrent clients against a real ckpt-meta process, next
 * to the limits of this machine measured in the same run.
 *
 * It starts $BIN/ckpt-meta (default build/bin/ckpt-meta) on a fresh data
 * directory under $TMPDIR (default /tmp), registers 6 fake storage nodes
 * so that files can be placed, and runs, per client count, each client in
 * its own thread with its own session and connection (lib/mclient.c) and
 * its own directory:
 *   create  CREATE of a new file (durable: its LMDB commit is fsynced
 *           before the answer; group commit batches concurrent ones)
 *   stat    LOOKUP of each file (a read transaction, no disk write)
 *   unlink  UNLINK of each file (durable; chunk deletions get queued)
 * The handles of the created files are released between create and stat,
 * untimed.  References measured in the same run: fdatasync() calls per
 * second on the data directory's disk (the bound of one unbatched durable
 * operation at a time) and RPC round trips per second (PING, one client).
 *
 * Output: a table, then `bench_meta <name> <value>` lines.  Files:
 * $BENCH_META_FILES (default 1000) for the single client; each of the 8
 * clients gets half as many (4x the total, so that the faster runs still
 * last long enough to time).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "log.h"
#include "mclient.h"
#include "msg_cluster.h"
#include "net.h"

#define NODES 6

static ckpt_net *net;
static uint16_t port;
static char tmpdir[256];

static pid_t meta_pid;

static void remove_tmpdir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (tmpdir[0] && system(cmd) != 0)
        fprintf(stderr, "bench_meta: could not remove %s\n", tmpdir);
}

/* Give up: stop ckpt-meta and remove the temporary directory. */
static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_meta: %s: %s\n", what, rc ? ckpt_strerror(rc) : strerror(errno));
    if (meta_pid > 0) {
        kill(meta_pid, SIGKILL);
        waitpid(meta_pid, NULL, 0);
    }
    remove_tmpdir();
    exit(1);
}

static double now_s(void)
{
    return (double)ckpt_now_ns() / 1e9;
}

/* ---- ckpt-meta process --------------------------------------------------------- */

static pid_t start_meta(const char *bin, const char *conf)
{
    int fds[2];
    char line[64] = {0};
    if (pipe(fds) < 0)
        die("pipe", 0);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", 0);
    if (pid == 0) {
        /* fd 3 = the pipe's write end (dup2 also closes a read end on 3). */
        if (fds[0] != 3)
            close(fds[0]);
        if (fds[1] != 3) {
            dup2(fds[1], 3);
            close(fds[1]);
        }
        execl(bin, "ckpt-meta", "-c", conf, "--ready-fd", "3", "--log-level", "warn",
              (char *)NULL);
        perror("bench_meta: exec ckpt-meta");
        _exit(127);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], line, sizeof(line) - 1);
    close(fds[0]);
    meta_pid = pid;
    if (n <= 0 || sscanf(line, "ready %hu", &port) != 1)
        die("ckpt-meta did not get ready", CKPT_E_CLOSED);
    return pid;
}

/* ---- fake nodes --------------------------------------------------------------------- */

struct fnode {
    struct ckpt_msg_node_register reg;
    uint32_t id, tid;
};
static struct fnode nodes[NODES];
static volatile int stop_hb;

static int call_body(ckpt_conn *c, uint16_t op, struct ckpt_wbuf *w, struct ckpt_call *call)
{
    memset(call, 0, sizeof(*call));
    call->opcode = op;
    call->body = w->p;
    call->body_len = (uint32_t)w->len;
    return ckpt_conn_call(c, call);
}

static void heartbeat(ckpt_conn *c, struct fnode *n)
{
    struct ckpt_msg_heartbeat hb;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[256];
    memset(&hb, 0, sizeof(hb));
    hb.node_id = n->id;
    memcpy(hb.uuid, n->reg.uuid, sizeof(hb.uuid));
    hb.n = 1;
    hb.t[0].id = n->tid;
    hb.t[0].capacity = n->reg.t[0].capacity;
    hb.t[0].free = n->reg.t[0].free;
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_heartbeat_encode(&w, &hb);
    int rc = call_body(c, CKPT_OP_HEARTBEAT, &w, &call);
    if (rc < 0)
        die("heartbeat", rc);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
}

static void *hb_main(void *arg)
{
    ckpt_conn *c = arg;
    while (!stop_hb) {
        for (int i = 0; i < NODES; i++)
            heartbeat(c, &nodes[i]);
        usleep(300000);
    }
    return NULL;
}

static ckpt_conn *register_nodes(void)
{
    ckpt_conn *c = NULL;
    int rc = ckpt_net_connect(net, "127.0.0.1", port, NULL, NULL, &c);
    if (rc < 0)
        die("connect", rc);
    for (int i = 0; i < NODES; i++) {
        struct ckpt_msg_node_register *r = &nodes[i].reg;
        struct ckpt_msg_node_register_resp resp;
        struct ckpt_call call;
        struct ckpt_wbuf w;
        uint8_t st[1024];
        if (getrandom(r->uuid, sizeof(r->uuid), 0) != (ssize_t)sizeof(r->uuid))
            die("getrandom", 0);
        snprintf(r->name, sizeof(r->name), "bench%d", i);
        snprintf(r->host, sizeof(r->host), "127.0.0.1");
        r->port = 9;
        r->transports = CKPT_XPORT_TCP;
        r->n = 1;
        r->t[0].capacity = 1ull << 42;
        r->t[0].free = 1ull << 41;
        ckpt_wbuf_init(&w, st, sizeof(st));
        ckpt_msg_node_register_encode(&w, r);
        rc = call_body(c, CKPT_OP_NODE_REGISTER, &w, &call);
        if (rc == 0)
            rc = ckpt_msg_node_register_resp_decode(call.resp_body, call.resp_body_len, &resp);
        if (rc < 0)
            die("register", rc);
        nodes[i].id = resp.node_id;
        nodes[i].tid = resp.target_ids[0];
        ckpt_call_release(&call);
        ckpt_wbuf_free(&w);
        heartbeat(c, &nodes[i]);
    }
    return c;
}

/* ---- the clients ----------------------------------------------------------------------- */

enum { OP_CREATE, OP_RELEASE, OP_STAT, OP_UNLINK, NOPS };
static const char *const op_names[NOPS] = {"create", "release", "stat", "unlink"};

struct client {
    int idx, nfiles, nclients;
    ckpt_mclient *mc;
    uint64_t dir;
    struct ckpt_msg_open_resp *open;
    pthread_barrier_t *bar;
    double t[NOPS][2];
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    char name[64];
    int rc;
    for (int op = 0; op < NOPS; op++) {
        pthread_barrier_wait(c->bar);
        c->t[op][0] = now_s();
        for (int i = 0; i < c->nfiles; i++) {
            snprintf(name, sizeof(name), "file-%06d", i);
            if (op == OP_CREATE) {
                rc = ckpt_mclient_create_file(c->mc, c->dir, name, 0644, 0, 0,
                                              O_CREAT | O_EXCL | O_WRONLY, &c->open[i]);
            } else if (op == OP_RELEASE) {
                struct ckpt_msg_release r;
                memset(&r, 0, sizeof(r));
                r.ino = c->open[i].attr.ino;
                r.handle = c->open[i].handle;
                r.wrote = 1;
                r.size = 1 << 20;
                rc = ckpt_mclient_release(c->mc, &r);
            } else if (op == OP_STAT) {
                rc = ckpt_mclient_lookup(c->mc, c->dir, name, NULL);
            } else {
                rc = ckpt_mclient_unlink(c->mc, c->dir, name);
            }
            if (rc < 0)
                die(op_names[op], rc);
        }
        c->t[op][1] = now_s();
    }
    return NULL;
}

/* Run every phase with n clients of `per` files each; fill ops/s. */
static void run(int n, int per, double out[NOPS])
{
    static int round;
    struct client *cs = calloc((size_t)n, sizeof(*cs));
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    pthread_barrier_t bar;
    if (!cs || !th)
        die("calloc", 0);
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    round++;
    for (int i = 0; i < n; i++) {
        struct ckpt_mclient_opts o = {.host = "127.0.0.1", .port = port, .name = "bench"};
        struct ckpt_attr d;
        char dname[32];
        cs[i].idx = i;
        cs[i].nfiles = per;
        cs[i].bar = &bar;
        cs[i].open = calloc((size_t)per, sizeof(*cs[i].open));
        int rc = ckpt_mclient_create(net, &o, &cs[i].mc);
        if (rc < 0 || !cs[i].open)
            die("client", rc);
        snprintf(dname, sizeof(dname), "r%d-c%d", round, i);
        rc = ckpt_mclient_mkdir(cs[i].mc, CKPT_ROOT_INO, dname, 0755, 0, 0, &d);
        if (rc < 0)
            die("mkdir", rc);
        cs[i].dir = d.ino;
    }
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (int op = 0; op < NOPS; op++) {
        double t0 = cs[0].t[op][0], t1 = cs[0].t[op][1];
        for (int i = 1; i < n; i++) {
            t0 = cs[i].t[op][0] < t0 ? cs[i].t[op][0] : t0;
            t1 = cs[i].t[op][1] > t1 ? cs[i].t[op][1] : t1;
        }
        out[op] = (double)n * per / (t1 - t0);
    }
    for (int i = 0; i < n; i++) {
        ckpt_mclient_destroy(cs[i].mc);
        free(cs[i].open);
    }
    pthread_barrier_destroy(&bar);
    free(cs);
    free(th);
}

/* ---- references ------------------------------------------------------------------------- */

static double fsync_rate(void)
{
    char path[300];
    char buf[4096] = {1};
    snprintf(path, sizeof(path), "%s/fsync.probe", tmpdir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0)
        die("open probe", 0);
    int n = 0;
    double t0 = now_s();
    while (now_s() - t0 < 1.0) {
        if (pwrite(fd, buf, sizeof(buf), (off_t)(n % 64) * 4096) < 0 || fdatasync(fd) < 0)
            die("fdatasync", 0);
        n++;
    }
    double r = n / (now_s() - t0);
    close(fd);
    unlink(path);
    return r;
}

static double ping_rate(void)
{
    ckpt_conn *c = NULL;
    int rc = ckpt_net_connect(net, "127.0.0.1", port, NULL, NULL, &c);
    if (rc < 0)
        die("connect", rc);
    int n = 0;
    double t0 = now_s();
    while (now_s() - t0 < 1.0) {
        struct ckpt_call call = {.opcode = CKPT_OP_PING};
        rc = ckpt_conn_call(c, &call);
        ckpt_call_release(&call);
        if (rc < 0)
            die("ping", rc);
        n++;
    }
    double r = n / (now_s() - t0);
    ckpt_conn_close(c);
    return r;
}

int main(void)
{
    const char *bindir = getenv("BIN") ? getenv("BIN") : "build/bin";
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *ef = getenv("BENCH_META_FILES");
    int files = ef ? atoi(ef) : 1000;
    char bin[512], path[512];
    struct ckpt_net_opts no;
    struct statfs sfs;

    if (files < 8)
        files = 8;
    ckpt_log_init("bench_meta", CKPT_LOG_LVL_ERR);
    signal(SIGPIPE, SIG_IGN);
    snprintf(bin, sizeof(bin), "%s/ckpt-meta", bindir);
    snprintf(tmpdir, sizeof(tmpdir), "%s/bench_meta.XXXXXX", tmp);
    if (!mkdtemp(tmpdir))
        die("mkdtemp", 0);

    /* Key and configuration. */
    memset(&no, 0, sizeof(no));
    if (getrandom(no.key, sizeof(no.key), 0) != (ssize_t)sizeof(no.key))
        die("getrandom", 0);
    snprintf(path, sizeof(path), "%s/key", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, 0);
    for (size_t i = 0; i < sizeof(no.key); i++)
        fprintf(f, "%02x", no.key[i]);
    fprintf(f, "\n");
    fclose(f);
    chmod(path, 0600);
    snprintf(path, sizeof(path), "%s/c.conf", tmpdir);
    f = fopen(path, "w");
    if (!f)
        die(path, 0);
    fprintf(f, "[cluster]\nkey_file = %s/key\n[meta]\nlisten = 127.0.0.1:0\ndata_dir = %s/meta\n",
            tmpdir, tmpdir);
    fclose(f);

    pid_t pid = start_meta(bin, path);
    no.name = "bench_meta";
    if (ckpt_auth_init() < 0 || ckpt_net_create(&no, &net) < 0)
        die("net", 0);
    ckpt_conn *nc = register_nodes();
    pthread_t hb;
    pthread_create(&hb, NULL, hb_main, nc);

    double fs = fsync_rate(), pr = ping_rate();
    double r1[NOPS], r8[NOPS];
    run(1, files, r1);
    run(8, files / 2, r8);

    const char *fstype = "?";
    if (statfs(tmpdir, &sfs) == 0)
        fstype = sfs.f_type == 0xEF53 ? "ext4" : sfs.f_type == 0x01021994 ? "tmpfs"
                                               : sfs.f_type == 0x58465342 ? "xfs" : "other";
    printf("bench_meta: a real ckpt-meta, LMDB in %s (%s); 1 client x %d files, 8 clients x "
           "%d files; 6 fake nodes\n", tmpdir, fstype, files, files / 2);
    printf("  %-8s %14s %14s %10s  %s\n", "op", "1 client/s", "8 clients/s", "8 vs 1",
           "vs limit");
    for (int op = 0; op < NOPS; op++) {
        double limit = op == OP_STAT ? pr : fs;
        printf("  %-8s %14.0f %14.0f %9.1fx  %.2fx %s (8 clients)\n", op_names[op], r1[op],
               r8[op], r8[op] / r1[op], r8[op] / limit,
               op == OP_STAT ? "RPC round trips/s" : "fdatasync/s");
    }
    printf("  limits measured now: %.0f fdatasync/s on this disk (an LMDB commit costs two), "
           "%.0f RPC round trips/s (PING, 1 client)\n", fs, pr);
    for (int op = 0; op < NOPS; op++) {
        printf("bench_meta %s_1 %.0f\n", op_names[op], r1[op]);
        printf("bench_meta %s_8 %.0f\n", op_names[op], r8[op]);
    }
    printf("bench_meta fdatasync_per_s %.0f\nbench_meta ping_per_s %.0f\n", fs, pr);

    stop_hb = 1;
    pthread_join(hb, NULL);
    ckpt_conn_close(nc);
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    ckpt_net_destroy(net);
    remove_tmpdir();
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

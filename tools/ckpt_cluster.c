/*
 * ckpt-cluster - run a whole ckptfs cluster on one machine.
 *
 * DESIGN
 *
 * ckpt-cluster is a launcher, not a daemon: each command acts on the
 * processes of one cluster directory DIR, records what it did under DIR and
 * exits.  The processes it starts - ckpt-meta, one ckpt-node per node and
 * the ckptfs client (run with -f, so its pid is ours to signal) - get their
 * own session (setsid), stdin from /dev/null and stdout+stderr appended to
 * DIR/logs/NAME.log, so they outlive the command and a Ctrl-C typed at the
 * shell later does not reach them.  Binaries come from $CKPTFS_BIN, else
 * from the directory of this executable (/proc/self/exe).
 *
 * Files (nothing is written outside DIR and the mount point):
 *   DIR/ckptfs.conf    the cluster config (config.h), rewritten once
 *                      ckpt-meta has picked its port
 *   DIR/cluster.key    a fresh key (0600) for every new cluster
 *   DIR/cluster.state  per process: name, pid, start time, port, targets;
 *                      plus the mount point (format in cc_state_save())
 *   DIR/run/NAME.pid   one pid file per running process; DIR/run/lock
 *   DIR/logs/NAME.log  output of each process, appended across restarts
 *   DIR/meta           ckpt-meta's data_dir;  DIR/nodeI/tJ  targets
 *   DIR/mnt            the default mount point
 *
 * Readiness is explicit, never a sleep.  ckpt-meta and ckpt-node write
 * "ready PORT\n" to fd 3 (--ready-fd 3), read here from a pipe with poll().
 * A node counts as UP when ckpt-meta's CLUSTER_MAP lists it UP under its
 * name *and* the port it just announced, so the stale UP entry of a node
 * that was killed a moment ago does not pass for its restart.  The mount is
 * ready when it appears in /proc/self/mountinfo and a probe child's
 * statfs() on it returns FUSE_SUPER_MAGIC (a child, so a hung mount cannot
 * hang us: the probe is killed after CC_PROBE_MS).  Every wait has a
 * deadline (--timeout) and also watches the process it waits for, so a
 * process that dies fails the command at once, with the tail of its log.
 *
 * Process identity.  A recorded pid is trusted only together with the
 * start time (field 22 of /proc/PID/stat) recorded when it was forked: a
 * pid reused by another process is never signalled.  Zombies count as
 * stopped (after the command exits, init is the daemons' parent).
 *
 * Failure atomicity.  Every process is written to cluster.state and its pid
 * file right after fork(), so `down` finds it even if this command is
 * killed.  A failing `up`, `start`, `add` or `restart-meta` stops what it
 * started before it returns (a failing fresh `up` also drops the state, so
 * the next `up` starts afresh; logs stay for diagnosis).  `down` is
 * idempotent and best effort: unmount, let the client exit, SIGTERM all
 * daemons at once, SIGKILL what is left after the grace period, lazy
 * unmount a mount that is still there, and say what could not be stopped.
 *
 * Threads and signals.  One thread, plus the timer and receive threads of
 * the ckpt_net used to fetch the cluster map; children are forked while
 * those run, so between fork() and execv() a child calls only
 * async-signal-safe functions (argv is built before the fork).  SIGINT,
 * SIGTERM and SIGHUP set cc_signal (the only global, STYLE G.24); every
 * wait checks it, cleans up like a failure, and the exit status is
 * 128+signal.  Commands that change the cluster hold flock(DIR/run/lock),
 * opened O_CLOEXEC so that no daemon inherits it.
 *
 * Addresses: everything listens on 127.0.0.1 unless --addrs gives ckpt-meta's
 * address and the nodes' (cycled), kept in cluster.state; RDMA devices
 * (soft-RoCE too) cannot route loopback, so an RDMA cluster needs them.
 *
 * Limits: one machine only, at most CC_MAX_NODES nodes of at most
 * CKPT_NODE_MAX_TARGETS targets.  Starting the same over ssh on a host list
 * (--hosts FILE) is future work: it would add a remote variant of
 * cc_spawn() and of the liveness checks, and keep everything else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "msg_cluster.h"
#include "net.h"
#include "toolfmt.h"
#include "version.h"

#define CC_MAX_NODES 256
#define CC_ADDR_MAX 64
#define CC_NAME_MAX 32
#define CC_FUSE_MAGIC 0x65735546L     /* FUSE_SUPER_MAGIC, linux/magic.h */
#define CC_STATE_FORMAT 1
#define CC_READY_FD 3
#define CC_DEFAULT_TIMEOUT_S 60
#define CC_DEFAULT_GRACE_S 10
#define CC_KILL_WAIT_MS 5000          /* after SIGKILL */
#define CC_POLL_MS 100
#define CC_PROBE_MS 2000              /* one statfs probe of the mount */
#define CC_MAP_CALL_MS 3000
#define CC_LOG_TAIL 25                /* log lines shown with an error */
#define CC_ARGV_MAX (2 * CKPT_NODE_MAX_TARGETS + 32)
#define CC_MAX_SETS 64

/* Exit statuses (man page EXIT STATUS; usage()). */
enum cc_exit {
    CC_EXIT_OK = 0,
    CC_EXIT_FAIL = 1,      /* the operation failed; reason and logs shown */
    CC_EXIT_USAGE = 2,     /* bad command line or option value */
    CC_EXIT_NOCLUSTER = 3, /* DIR holds no cluster, or no such NODE */
    CC_EXIT_STATE = 4,     /* wrong state: already running, not running */
};

static volatile sig_atomic_t cc_signal;

/* One process started by ckpt-cluster (recorded in cluster.state). */
struct cc_proc {
    char name[CC_NAME_MAX];      /* "meta", "node3", "ckptfs" */
    pid_t pid;                   /* 0: not running (as far as recorded) */
    unsigned long long start;    /* /proc/PID/stat starttime; 0 unknown */
    uint16_t port;               /* from its ready line (0: none) */
    uint32_t ntargets;           /* nodes: targets DIR/NAME/t0..t(n-1) */
    /* This invocation only. */
    bool ours;                   /* forked here: waitpid() works */
    bool exited;                 /* ours and reaped; wstatus valid */
    int wstatus;
    int ready_fd;                /* read end of the ready pipe, or -1 */
    char rbuf[32];
    size_t rlen;
    bool ready;
    off_t log_off;               /* log size when started: its lines follow */
};

struct cc_cluster {
    char dir[PATH_MAX];
    char bin[PATH_MAX];
    char conf_path[PATH_MAX];
    char key_path[PATH_MAX];
    char state_path[PATH_MAX];
    char mnt[PATH_MAX];          /* "" = no mount */
    char mount_opts[1024];       /* extra -o options for ckptfs */
    char transport[8];
    /* --addrs: [0] ckpt-meta, [1..] the nodes (cycled); none: 127.0.0.1 */
    char addrs[CC_MAX_NODES + 1][CC_ADDR_MAX];
    uint32_t n_addrs;
    uint32_t targets_per_node;
    struct cc_proc meta;
    struct cc_proc client;
    struct cc_proc nodes[CC_MAX_NODES];
    uint32_t n_nodes;
    struct ckpt_config cfg;
    bool quiet;
    uint32_t timeout_ms;
    uint32_t grace_ms;
    int lock_fd;
    uint64_t meta_ready_ns;      /* when ckpt-meta said ready (this run) */
    ckpt_net *net;
    ckpt_conn *conn;
};

/* The address ckpt-meta listens on, and node i's (0-based). */
static const char *cc_meta_host(const struct cc_cluster *cl)
{
    return cl->n_addrs ? cl->addrs[0] : "127.0.0.1";
}

static const char *cc_node_host(const struct cc_cluster *cl, uint32_t i)
{
    if (cl->n_addrs > 1)
        return cl->addrs[1 + i % (cl->n_addrs - 1)];
    return cc_meta_host(cl);
}

/* Parse "A1,A2,..." into cl->addrs.  @return 0 or -EINVAL. */
static int cc_addrs_parse(struct cc_cluster *cl, const char *list)
{
    char tmp[(CC_MAX_NODES + 1) * CC_ADDR_MAX];
    cl->n_addrs = 0;
    if (!list[0])
        return 0;
    if (strlen(list) >= sizeof(tmp))
        return -EINVAL;
    snprintf(tmp, sizeof(tmp), "%s", list);
    for (char *a = tmp, *next; a; a = next) {
        next = strchr(a, ',');
        if (next)
            *next++ = '\0';
        if (cl->n_addrs == CC_MAX_NODES + 1 || !a[0] || strlen(a) >= CC_ADDR_MAX ||
            strspn(a, "0123456789abcdefABCDEF.:") != strlen(a)) {
            cl->n_addrs = 0;
            return -EINVAL;
        }
        memcpy(cl->addrs[cl->n_addrs++], a, strlen(a) + 1); /* < CC_ADDR_MAX: checked */
    }
    return 0;
}

/* True when "A1,A2,..." is not the list the cluster was made with. */
static bool cc_addrs_differ(const struct cc_cluster *cl, const char *list)
{
    struct cc_cluster *tmp = calloc(1, sizeof(*tmp));
    bool differ = true;
    if (tmp && cc_addrs_parse(tmp, list) == 0 && tmp->n_addrs == cl->n_addrs) {
        differ = false;
        for (uint32_t i = 0; i < cl->n_addrs; i++)
            differ |= strcmp(tmp->addrs[i], cl->addrs[i]) != 0;
    }
    free(tmp);
    return differ;
}

/* ", "connections": [...]" from the mount's user.ckptfs.connections
 * (fs_map_describe: "node ID HOST:PORT rdma_port=P state=S transport=T"):
 * which transport the mount's connection to each node uses. */
static void cc_json_connections(FILE *f, const char *mnt)
{
    char *buf = malloc(64u << 10);
    ssize_t n = buf ? getxattr(mnt, "user.ckptfs.connections", buf, (64u << 10) - 1) : -1;
    if (n < 0) {
        free(buf);
        return;
    }
    buf[n] = '\0';
    fputs(", \"connections\": [", f);
    int k = 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        unsigned id, rport;
        char addr[128], state[32], xport[16];
        if (sscanf(l, "node %u %127s rdma_port=%u state=%31s transport=%15s", &id, addr, &rport,
                   state, xport) != 5)
            continue;
        fprintf(f, "%s{\"node\": %u, \"address\": \"%s\", \"rdma_port\": %u, \"state\": \"%s\", "
                   "\"transport\": \"%s\"}",
                k++ ? ", " : "", id, addr, rport, state, xport);
    }
    fputc(']', f);
    free(buf);
}

/* ---- messages --------------------------------------------------------- */

static void cc_say(const struct cc_cluster *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cc_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cc_say(const struct cc_cluster *cl, const char *fmt, ...)
{
    va_list ap;
    if (cl && cl->quiet)
        return;
    fputs("ckpt-cluster: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void cc_err(const char *fmt, ...)
{
    va_list ap;
    fputs("ckpt-cluster: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static double cc_secs_since(uint64_t t0_ns)
{
    return (double)(ckpt_now_ns() - t0_ns) / 1e9;
}

static void cc_usage(FILE *f)
{
    fprintf(f,
        "usage: ckpt-cluster [-q] COMMAND DIR [OPTIONS]\n"
        "Run a whole ckptfs cluster (ckpt-meta, N ckpt-node, the ckptfs mount) on\n"
        "this machine, with everything it writes under DIR.\n"
        "\n"
        "commands:\n"
        "  up DIR [--nodes N] [--targets-per-node T] [--ec K+M] [--chunk SIZE]\n"
        "         [--mount MNT | --no-mount] [--transport tcp|rdma|auto]\n"
        "         [--addrs META_IP,NODE_IP,...]\n"
        "         [-o|--mount-options OPTS] [--set SECTION.KEY=VALUE]... [--timeout SECS]\n"
        "      write DIR/ckptfs.conf and a new DIR/cluster.key, start ckpt-meta and\n"
        "      N nodes (default 6, 1 target each, layout 4+2 with 1M chunks), mount\n"
        "      ckptfs at MNT (default DIR/mnt); return once every node is UP and the\n"
        "      mount answers.  On a stopped cluster: start it again, data kept.\n"
        "      --addrs: ckpt-meta listens on the first address, node i on address\n"
        "      i+1 (cycled); default 127.0.0.1 (RDMA needs a routable address)\n"
        "  down DIR [--timeout SECS]    unmount and stop every process (idempotent)\n"
        "  status DIR [--json]          ckpt-meta, the nodes with their state in the\n"
        "                               cluster map, the mount\n"
        "  kill DIR NODE                kill -9 NODE: node1..nodeN, meta or ckptfs\n"
        "  stop DIR NODE [--timeout SECS]  stop NODE cleanly (SIGTERM; ckptfs: unmount)\n"
        "  start DIR NODE [--timeout SECS]  start a stopped NODE again (same name,\n"
        "                               targets; meta on its port; ckptfs remounts)\n"
        "  add DIR [N] [--timeout SECS] start N (default 1) more empty nodes\n"
        "  restart-meta DIR [--timeout SECS]  stop ckpt-meta and start it again\n"
        "  logs DIR [NODE] [-n|--lines LINES]  print the logs (of NODE, or all)\n"
        "  env DIR                      print: export CKPTFS_CONF=DIR/ckptfs.conf\n"
        "\n"
        "options:\n"
        "  -q, --quiet     no progress lines on stderr\n"
        "  -h, --help      this text\n"
        "  -V, --version   print the version\n"
        "  --timeout SECS  how long to wait for processes to become ready and UP\n"
        "                  (default %d); for down and stop, the grace between\n"
        "                  SIGTERM and SIGKILL (default %d)\n"
        "\n"
        "environment: CKPTFS_BIN  directory holding ckpt-meta, ckpt-node, ckptfs\n"
        "             (default: the directory of this program)\n"
        "exit status: 0 done; 1 failed (reason and log lines on stderr); 2 usage;\n"
        "             3 DIR holds no cluster or no such NODE; 4 wrong state (already\n"
        "             running, not running, DIR busy); 128+N interrupted by signal N\n",
        CC_DEFAULT_TIMEOUT_S, CC_DEFAULT_GRACE_S);
}

/* ---- small helpers ---------------------------------------------------- */

static int cc_path(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cc_path(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= cap)
        return -ENAMETOOLONG;
    return 0;
}

/* mkdir -p; an existing directory is fine. */
static int cc_mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    int rc = cc_path(tmp, sizeof(tmp), "%s", path);
    if (rc < 0)
        return rc;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0) {
        struct stat st;
        if (errno != EEXIST)
            return -errno;
        if (stat(tmp, &st) < 0)
            return -errno;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
    }
    return 0;
}

static bool cc_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Parse a positive decimal integer within [min, max]. */
static int cc_parse_uint(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static void cc_sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* EINTR: the caller checks cc_signal */
}

/* Write a file atomically: PATH.tmp, fsync, rename. */
static int cc_write_atomic(const char *path, mode_t mode,
                           int (*fill)(FILE *f, const void *ctx), const void *ctx)
{
    char tmp[PATH_MAX];
    int rc = cc_path(tmp, sizeof(tmp), "%s.tmp", path);
    if (rc < 0)
        return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        rc = -errno;
        close(fd);
        goto out_unlink;
    }
    rc = fill(f, ctx);
    if (rc == 0 && fflush(f) != 0)
        rc = -errno;
    if (rc == 0 && fsync(fileno(f)) < 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc == 0)
        return 0;
out_unlink:
    (void)unlink(tmp);
    return rc;
}

/* ---- processes -------------------------------------------------------- */

static void cc_proc_init(struct cc_proc *p, const char *name)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->ready_fd = -1;
}

/* Read field 3 (state) and 22 (starttime) of /proc/PID/stat. */
static int cc_proc_stat(pid_t pid, char *out_state, unsigned long long *out_start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return rc;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces and ')' */
    if (!p || p[1] != ' ')
        return -EINVAL;
    p += 2;
    *out_state = *p;
    /* After ')': field 3 is state; starttime is field 22, 19 fields later. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EINVAL;
        p++;
    }
    char *end;
    errno = 0;
    *out_start = strtoull(p, &end, 10);
    if (errno || end == p)
        return -EINVAL;
    return 0;
}

/*
 * Is p still the process we started?  Reaps it when it is our child.
 * A zombie, a vanished pid or a pid with another start time is "not alive".
 */
static bool cc_proc_alive(struct cc_proc *p)
{
    if (p->pid <= 0 || p->exited)
        return false;
    if (p->ours) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->exited = true;
            p->wstatus = st;
            return false;
        }
    }
    char state;
    unsigned long long start;
    if (cc_proc_stat(p->pid, &state, &start) < 0)
        return false;
    if (p->start && start != p->start)
        return false;
    return state != 'Z' && state != 'X' && state != 'x';
}

/* For a process recorded without a start time (pid-file fallback): is it
 * one of our programs, started for this DIR? */
static bool cc_proc_is_ours_by_cmdline(pid_t pid, const char *dir)
{
    char path[64], exe[PATH_MAX], cmd[8192];
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, exe, sizeof(exe) - 1);
    if (n < 0)
        return false;
    exe[n] = '\0';
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    if (strcmp(base, "ckpt-meta") && strcmp(base, "ckpt-node") && strcmp(base, "ckptfs"))
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    return strstr(cmd, dir) != NULL;
}

/* How messages name a process: "ckpt-meta", "node3", "ckptfs". */
static const char *cc_label(const struct cc_proc *p)
{
    return strcmp(p->name, "meta") ? p->name : "ckpt-meta";
}

static const char *cc_describe_exit(int wstatus, char *buf, size_t cap)
{
    if (WIFEXITED(wstatus))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(wstatus),
                 strsignal(WTERMSIG(wstatus)));
    else
        snprintf(buf, cap, "stopped (wait status 0x%x)", (unsigned)wstatus);
    return buf;
}

/* Why did p stop?  (Gives an exited child up to wait_ms to be reaped.) */
static const char *cc_why_dead(struct cc_proc *p, uint32_t wait_ms, char *buf, size_t cap)
{
    uint64_t end = ckpt_now_ns() + (uint64_t)wait_ms * 1000000u;
    while (cc_proc_alive(p) && ckpt_now_ns() < end && !cc_signal)
        cc_sleep_ms(10);
    if (p->exited)
        return cc_describe_exit(p->wstatus, buf, cap);
    if (cc_proc_alive(p))
        snprintf(buf, cap, "is still running");
    else
        snprintf(buf, cap, "is gone");
    return buf;
}

static int cc_log_path(const struct cc_cluster *cl, const char *name, char *buf, size_t cap)
{
    return cc_path(buf, cap, "%s/logs/%s.log", cl->dir, name);
}

/* Print the last nlines lines of a log from offset `from` to stderr. */
static void cc_show_log(const char *path, off_t from, int nlines)
{
    enum { TAIL_MAX = 64 * 1024 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "    (no log: %s: %s)\n", path, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return;
    }
    off_t start = from;
    if (st.st_size - start > TAIL_MAX)
        start = st.st_size - TAIL_MAX;
    if (start < 0)
        start = 0;
    char *buf = ckpt_malloc(TAIL_MAX + 1);
    if (!buf) {
        close(fd);
        return;
    }
    ssize_t n = pread(fd, buf, TAIL_MAX, start);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "    (%s is empty)\n", path);
        ckpt_free(buf);
        return;
    }
    buf[n] = '\0';
    /* Find the start of the last nlines lines. */
    char *p = buf + n;
    if (p > buf && p[-1] == '\n')
        p--;
    int lines = 0;
    while (p > buf) {
        if (p[-1] == '\n' && ++lines == nlines)
            break;
        p--;
    }
    fprintf(stderr, "  last lines of %s:\n", path);
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(stderr, "    | %.*s\n", (int)len, p);
        p += len + (nl ? 1 : 0);
    }
    ckpt_free(buf);
}

static void cc_show_proc_log(const struct cc_cluster *cl, const struct cc_proc *p)
{
    char path[PATH_MAX];
    if (cc_log_path(cl, p->name, path, sizeof(path)) == 0)
        cc_show_log(path, p->ours ? p->log_off : 0, CC_LOG_TAIL);
}

static int cc_pidfile_path(const struct cc_cluster *cl, const struct cc_proc *p, char *buf,
                           size_t cap)
{
    return cc_path(buf, cap, "%s/run/%s.pid", cl->dir, p->name);
}

static void cc_pidfile_write(const struct cc_cluster *cl, const struct cc_proc *p)
{
    char path[PATH_MAX];
    if (cc_pidfile_path(cl, p, path, sizeof(path)) < 0)
        return;
    FILE *f = fopen(path, "we");
    if (!f) {
        cc_err("cannot write %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)p->pid);
    if (fclose(f) != 0)
        cc_err("cannot write %s: %s", path, strerror(errno));
}

static void cc_pidfile_remove(const struct cc_cluster *cl, const struct cc_proc *p)
{
    char path[PATH_MAX];
    if (cc_pidfile_path(cl, p, path, sizeof(path)) == 0)
        (void)unlink(path);
}

/* argv built before fork() (children may not allocate). */
struct cc_argv {
    char *v[CC_ARGV_MAX + 1];
    int n;
    int err;
};

static void cc_argv_add(struct cc_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cc_argv_add(struct cc_argv *a, const char *fmt, ...)
{
    char buf[PATH_MAX + 64];
    va_list ap;
    if (a->err)
        return;
    if (a->n >= CC_ARGV_MAX) {
        a->err = -E2BIG;
        return;
    }
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(buf)) {
        a->err = -ENAMETOOLONG;
        return;
    }
    a->v[a->n] = ckpt_strdup(buf);
    if (!a->v[a->n]) {
        a->err = -ENOMEM;
        return;
    }
    a->v[++a->n] = NULL;
}

static void cc_argv_free(struct cc_argv *a)
{
    for (int i = 0; i < a->n; i++)
        CKPT_FREE(a->v[i]);
    a->n = 0;
}

/* In the child between fork() and execv(): async-signal-safe calls only. */
static void cc_child_exec(const char *exe, char *const argv[], int logfd, int ready_wfd)
{
    static const char msg[] = "ckpt-cluster: cannot execute ";
    sigset_t none;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    (void)sigaction(SIGPIPE, &dfl, NULL);
    (void)sigaction(SIGINT, &dfl, NULL);
    (void)sigaction(SIGTERM, &dfl, NULL);
    (void)sigaction(SIGHUP, &dfl, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)setsid();
    /* Move our fds above the ones we are about to fill. */
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int lfd = fcntl(logfd, F_DUPFD_CLOEXEC, 10);
    int rfd = ready_wfd >= 0 ? fcntl(ready_wfd, F_DUPFD_CLOEXEC, 10) : -1;
    if (nul < 0 || lfd < 0 || (ready_wfd >= 0 && rfd < 0))
        _exit(127);
    if (dup2(nul, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0)
        _exit(127);
    if (rfd >= 0 && dup2(rfd, CC_READY_FD) < 0)
        _exit(127);
    /* Everything else: closed at exec (close_range marks them CLOEXEC so a
     * failed exec can still write to fd 2). */
    if (close_range(rfd >= 0 ? CC_READY_FD + 1 : CC_READY_FD, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = rfd >= 0 ? CC_READY_FD + 1 : CC_READY_FD; fd < 1024; fd++)
            (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    execv(exe, argv);
    /* "ckpt-cluster: cannot execute EXE (errno N)\n" without stdio. */
    char num[16];
    int e = errno, i = (int)sizeof(num);
    num[--i] = '\n';
    num[--i] = ')';
    do {
        num[--i] = (char)('0' + e % 10);
        e /= 10;
    } while (e && i > 1);
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    w = write(2, exe, strlen(exe));
    w = write(2, " (errno ", 8);
    w = write(2, num + i, sizeof(num) - (size_t)i);
    (void)w;
    _exit(127);
}

static int cc_state_save(const struct cc_cluster *cl);

/*
 * Fork and exec BIN/prog with argv, output appended to DIR/logs/NAME.log.
 * With want_ready, fd 3 of the child is the write end of a pipe whose read
 * end is left in p->ready_fd.  Records p in the pid file and cluster.state.
 * On error nothing was started.
 */
static int cc_spawn(struct cc_cluster *cl, struct cc_proc *p, const char *prog,
                    struct cc_argv *argv, bool want_ready)
{
    char exe[PATH_MAX], logp[PATH_MAX];
    int pfd[2] = {-1, -1};
    int rc;

    if (argv->err)
        return argv->err;
    if ((rc = cc_path(exe, sizeof(exe), "%s/%s", cl->bin, prog)) < 0 ||
        (rc = cc_log_path(cl, p->name, logp, sizeof(logp))) < 0)
        return rc;
    int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        rc = -errno;
        cc_err("cannot open %s: %s", logp, strerror(-rc));
        return rc;
    }
    struct stat st;
    p->log_off = fstat(logfd, &st) == 0 ? st.st_size : 0;
    {
        /* A marker line with the command, so a log spanning restarts reads
         * well and the tail shown with an error names what was run. */
        char line[4096];
        time_t now = time(NULL);
        struct tm tm;
        char ts[32];
        gmtime_r(&now, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        int len = snprintf(line, sizeof(line), "==== ckpt-cluster %s: starting", ts);
        for (int i = 0; i < argv->n && len > 0 && (size_t)len < sizeof(line); i++)
            len += snprintf(line + len, sizeof(line) - (size_t)len, " %s",
                            i == 0 ? exe : argv->v[i]);
        if (len > 0 && (size_t)len < sizeof(line) - 1) {
            line[len++] = '\n';
            ssize_t w = write(logfd, line, (size_t)len);
            (void)w;
        }
    }
    if (want_ready && pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
        close(logfd);
        return rc;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        close(logfd);
        if (pfd[0] >= 0) {
            close(pfd[0]);
            close(pfd[1]);
        }
        cc_err("fork: %s", strerror(-rc));
        return rc;
    }
    if (pid == 0)
        cc_child_exec(exe, argv->v, logfd, pfd[1]);
    close(logfd);
    if (pfd[1] >= 0)
        close(pfd[1]);
    p->pid = pid;
    p->ours = true;
    p->exited = false;
    p->ready = false;
    p->rlen = 0;
    p->ready_fd = pfd[0];
    char state;
    if (cc_proc_stat(pid, &state, &p->start) < 0)
        p->start = 0;
    cc_pidfile_write(cl, p);
    if ((rc = cc_state_save(cl)) < 0)
        cc_err("cannot write %s: %s", cl->state_path, ckpt_strerror(rc));
    return 0;
}

/*
 * Wait until every process in ps[] has written "ready PORT\n" on its ready
 * pipe.  On failure prints what went wrong with the process's log.
 * @return 0; -EINTR (signal), -ETIMEDOUT, -ESRCH (a process died or closed
 *         its fd), -EPROTO (garbage on the fd).
 */
static int cc_wait_ready(struct cc_cluster *cl, struct cc_proc **ps, int n, uint64_t deadline_ns)
{
    struct pollfd pfd[CC_MAX_NODES + 1];
    int idx[CC_MAX_NODES + 1];
    char why[128];

    for (;;) {
        int np = 0;
        for (int i = 0; i < n; i++) {
            if (ps[i]->ready)
                continue;
            pfd[np].fd = ps[i]->ready_fd;
            pfd[np].events = POLLIN;
            pfd[np].revents = 0;
            idx[np++] = i;
        }
        if (np == 0)
            return 0;
        if (cc_signal)
            return -EINTR;
        uint64_t now = ckpt_now_ns();
        if (now >= deadline_ns) {
            for (int j = 0; j < np; j++) {
                struct cc_proc *p = ps[idx[j]];
                cc_err("%s is not ready after %.0f s (no \"ready PORT\" on --ready-fd)",
                       cc_label(p), cl->timeout_ms / 1000.0);
                cc_show_proc_log(cl, p);
            }
            return -ETIMEDOUT;
        }
        uint64_t left_ms = (deadline_ns - now) / 1000000u;
        int r = poll(pfd, (nfds_t)np, (int)(left_ms < 200 ? left_ms + 1 : 200));
        if (r < 0 && errno != EINTR)
            return -errno;
        for (int j = 0; r > 0 && j < np; j++) {
            if (!pfd[j].revents)
                continue;
            struct cc_proc *p = ps[idx[j]];
            ssize_t got = read(p->ready_fd, p->rbuf + p->rlen, sizeof(p->rbuf) - 1 - p->rlen);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                close(p->ready_fd);
                p->ready_fd = -1;
                cc_err("%s %s before it was ready", cc_label(p),
                       cc_why_dead(p, 1000, why, sizeof(why)));
                cc_show_proc_log(cl, p);
                return -ESRCH;
            }
            p->rlen += (size_t)got;
            p->rbuf[p->rlen] = '\0';
            char *nl = strchr(p->rbuf, '\n');
            if (!nl && p->rlen < sizeof(p->rbuf) - 1)
                continue;
            unsigned port = 0;
            char extra;
            if (!nl || sscanf(p->rbuf, "ready %u%c", &port, &extra) != 2 || extra != '\n' ||
                port == 0 || port > 65535) {
                if (nl)
                    *nl = '\0';
                cc_err("%s wrote \"%s\" on its ready fd; expected \"ready PORT\"", cc_label(p),
                       p->rbuf);
                cc_show_proc_log(cl, p);
                return -EPROTO;
            }
            p->port = (uint16_t)port;
            p->ready = true;
            close(p->ready_fd);
            p->ready_fd = -1;
        }
    }
}

/*
 * Stop the processes in ps[]: signal sig (SIGTERM) to those alive, wait up
 * to grace_ms, SIGKILL the rest and wait for them.  Pids are verified by
 * start time before every signal.  Clears their pids and pid files.
 * @return 0, or -EBUSY when some process could not be stopped (named on
 *         stderr; it stays recorded).
 */
static int cc_stop(struct cc_cluster *cl, struct cc_proc **ps, int n, int sig, uint32_t grace_ms)
{
    int rc = 0, alive = 0;
    for (int i = 0; i < n; i++) {
        if (ps[i]->ready_fd >= 0) {
            close(ps[i]->ready_fd);
            ps[i]->ready_fd = -1;
        }
        if (cc_proc_alive(ps[i]) && kill(ps[i]->pid, sig) == 0)
            alive++;
    }
    uint64_t end = ckpt_now_ns() + (uint64_t)grace_ms * 1000000u;
    while (alive && ckpt_now_ns() < end) {
        alive = 0;
        for (int i = 0; i < n; i++)
            alive += cc_proc_alive(ps[i]);
        if (alive)
            cc_sleep_ms(20);
    }
    if (alive) {
        for (int i = 0; i < n; i++) {
            if (!cc_proc_alive(ps[i]))
                continue;
            if (sig != SIGKILL)
                cc_say(cl, "%s (pid %d) did not stop within %.1f s; sending SIGKILL",
                       cc_label(ps[i]), (int)ps[i]->pid, grace_ms / 1000.0);
            (void)kill(ps[i]->pid, SIGKILL);
        }
        end = ckpt_now_ns() + (uint64_t)CC_KILL_WAIT_MS * 1000000u;
        do {
            alive = 0;
            for (int i = 0; i < n; i++)
                alive += cc_proc_alive(ps[i]);
            if (alive)
                cc_sleep_ms(20);
        } while (alive && ckpt_now_ns() < end);
    }
    for (int i = 0; i < n; i++) {
        if (cc_proc_alive(ps[i])) {
            cc_err("%s (pid %d) is still running after SIGKILL", cc_label(ps[i]), (int)ps[i]->pid);
            rc = -EBUSY;
            continue;
        }
        if (ps[i]->pid > 0)
            cc_pidfile_remove(cl, ps[i]);
        ps[i]->pid = 0;
        ps[i]->start = 0;
    }
    return rc;
}

/* ---- cluster state file ------------------------------------------------- */

static int cc_state_fill(FILE *f, const void *ctx)
{
    const struct cc_cluster *cl = ctx;
    fprintf(f, "# ckpt-cluster state of %s; written by ckpt-cluster, do not edit\n", cl->dir);
    fprintf(f, "format=%d\n", CC_STATE_FORMAT);
    fprintf(f, "transport=%s\n", cl->transport);
    fputs("addrs=", f);
    for (uint32_t i = 0; i < cl->n_addrs; i++)
        fprintf(f, "%s%s", i ? "," : "", cl->addrs[i]);
    fputc('\n', f);
    fprintf(f, "targets_per_node=%" PRIu32 "\n", cl->targets_per_node);
    fprintf(f, "mount=%s\n", cl->mnt);
    fprintf(f, "mount_options=%s\n", cl->mount_opts);
    const struct cc_proc *all[CC_MAX_NODES + 2];
    int n = 0;
    all[n++] = &cl->meta;
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        all[n++] = &cl->nodes[i];
    all[n++] = &cl->client;
    for (int i = 0; i < n; i++) {
        const struct cc_proc *p = all[i];
        /* proc=NAME PID STARTTIME PORT NTARGETS */
        fprintf(f, "proc=%s %d %llu %u %" PRIu32 "\n", p->name, (int)p->pid, p->start,
                (unsigned)p->port, p->ntargets);
    }
    return ferror(f) ? -EIO : 0;
}

static int cc_state_save(const struct cc_cluster *cl)
{
    return cc_write_atomic(cl->state_path, 0644, cc_state_fill, cl);
}

static bool cc_valid_node_name(const char *s)
{
    if (strncmp(s, "node", 4) != 0 || !s[4] || s[4] == '0')
        return false;
    for (const char *p = s + 4; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return strlen(s) < 12;
}

/*
 * Load cluster.state into cl.
 * @return 0; -ENOENT (no cluster); CKPT_E_CONFIG (malformed: message printed).
 */
static int cc_state_load(struct cc_cluster *cl)
{
    FILE *f = fopen(cl->state_path, "re");
    if (!f)
        return -errno;
    char line[PATH_MAX + 64];
    int lineno = 0, rc = 0, format = 0;
    bool have_meta = false, have_client = false;
    cl->n_nodes = 0;
    cc_proc_init(&cl->meta, "meta");
    cc_proc_init(&cl->client, "ckptfs");
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = CKPT_E_CONFIG;
            break;
        }
        *eq = '\0';
        const char *key = line, *val = eq + 1;
        long v;
        if (!strcmp(key, "format")) {
            if (cc_parse_uint(val, 1, 1000, &v) < 0) {
                rc = CKPT_E_CONFIG;
                break;
            }
            format = (int)v;
        } else if (!strcmp(key, "transport")) {
            snprintf(cl->transport, sizeof(cl->transport), "%s", val);
        } else if (!strcmp(key, "addrs")) {
            if (cc_addrs_parse(cl, val) < 0) {
                rc = CKPT_E_CONFIG;
                break;
            }
        } else if (!strcmp(key, "targets_per_node")) {
            if (cc_parse_uint(val, 1, CKPT_NODE_MAX_TARGETS, &v) < 0) {
                rc = CKPT_E_CONFIG;
                break;
            }
            cl->targets_per_node = (uint32_t)v;
        } else if (!strcmp(key, "mount")) {
            snprintf(cl->mnt, sizeof(cl->mnt), "%s", val);
        } else if (!strcmp(key, "mount_options")) {
            snprintf(cl->mount_opts, sizeof(cl->mount_opts), "%s", val);
        } else if (!strcmp(key, "proc")) {
            char name[CC_NAME_MAX];
            int pid;
            unsigned long long start;
            unsigned port;
            unsigned nt;
            char extra;
            if (sscanf(val, "%31s %d %llu %u %u %c", name, &pid, &start, &port, &nt, &extra) !=
                    5 ||
                pid < 0 || port > 65535 || nt > CKPT_NODE_MAX_TARGETS) {
                rc = CKPT_E_CONFIG;
                break;
            }
            struct cc_proc *p;
            if (!strcmp(name, "meta")) {
                p = &cl->meta;
                have_meta = true;
            } else if (!strcmp(name, "ckptfs")) {
                p = &cl->client;
                have_client = true;
            } else if (cc_valid_node_name(name) && cl->n_nodes < CC_MAX_NODES) {
                p = &cl->nodes[cl->n_nodes++];
                cc_proc_init(p, name);
            } else {
                rc = CKPT_E_CONFIG;
                break;
            }
            p->pid = pid;
            p->start = start;
            p->port = (uint16_t)port;
            p->ntargets = nt;
        } else {
            rc = CKPT_E_CONFIG;
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc == 0 && (format != CC_STATE_FORMAT || !have_meta || !have_client)) {
        lineno = 0;
        rc = CKPT_E_CONFIG;
    }
    if (rc == CKPT_E_CONFIG) {
        if (lineno)
            cc_err("%s:%d: malformed state line (the file is written by ckpt-cluster)",
                   cl->state_path, lineno);
        else
            cc_err("%s: incomplete or from another version (format %d, expected %d)",
                   cl->state_path, format, CC_STATE_FORMAT);
    }
    return rc;
}

/* ---- the directory, the binaries, the lock ------------------------------ */

static int cc_set_dir(struct cc_cluster *cl, const char *dir, bool create)
{
    int rc;
    char real[PATH_MAX];
    if (create && (rc = cc_mkdir_p(dir, 0755)) < 0) {
        cc_err("cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    if (!realpath(dir, real))
        return -errno;
    if (strchr(real, '\n')) {
        cc_err("%s: a newline in the path is not supported", real);
        return -EINVAL;
    }
    if ((rc = cc_path(cl->dir, sizeof(cl->dir), "%s", real)) < 0 ||
        (rc = cc_path(cl->conf_path, sizeof(cl->conf_path), "%s/ckptfs.conf", real)) < 0 ||
        (rc = cc_path(cl->key_path, sizeof(cl->key_path), "%s/cluster.key", real)) < 0 ||
        (rc = cc_path(cl->state_path, sizeof(cl->state_path), "%s/cluster.state", real)) < 0) {
        cc_err("%s: path too long", real);
        return rc;
    }
    return 0;
}

/* Take DIR/run/lock (creating DIR/run), waiting up to timeout_ms. */
static int cc_lock(struct cc_cluster *cl)
{
    char path[PATH_MAX];
    int rc;
    if ((rc = cc_path(path, sizeof(path), "%s/run", cl->dir)) < 0 ||
        (rc = cc_mkdir_p(path, 0755)) < 0 ||
        (rc = cc_path(path, sizeof(path), "%s/run/lock", cl->dir)) < 0) {
        cc_err("cannot create %s/run: %s", cl->dir, strerror(-rc));
        return rc;
    }
    cl->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (cl->lock_fd < 0) {
        rc = -errno;
        cc_err("cannot open %s: %s", path, strerror(-rc));
        return rc;
    }
    uint64_t end = ckpt_now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
    bool said = false;
    while (flock(cl->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            rc = -errno;
            cc_err("flock %s: %s", path, strerror(-rc));
            return rc;
        }
        if (cc_signal)
            return -EINTR;
        if (ckpt_now_ns() >= end) {
            cc_err("%s is busy: another ckpt-cluster command is working on it", cl->dir);
            return -EBUSY;
        }
        if (!said)
            cc_say(cl, "waiting for another ckpt-cluster command on %s", cl->dir);
        said = true;
        cc_sleep_ms(CC_POLL_MS);
    }
    return 0;
}

static int cc_find_bin(struct cc_cluster *cl, bool need_client)
{
    const char *env = getenv("CKPTFS_BIN");
    int rc;
    if (env && *env) {
        if (!realpath(env, cl->bin)) {
            rc = -errno;
            cc_err("CKPTFS_BIN=%s: %s", env, strerror(-rc));
            return rc;
        }
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
            rc = -errno;
            cc_err("cannot find my own executable (/proc/self/exe): %s; set CKPTFS_BIN",
                   strerror(-rc));
            return rc;
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(cl->bin, sizeof(cl->bin), "%s", self);
    }
    const char *progs[] = {"ckpt-meta", "ckpt-node", "ckptfs"};
    for (int i = 0; i < (need_client ? 3 : 2); i++) {
        char path[PATH_MAX];
        if ((rc = cc_path(path, sizeof(path), "%s/%s", cl->bin, progs[i])) < 0)
            return rc;
        if (access(path, X_OK) < 0) {
            rc = -errno;
            cc_err("%s: %s (set CKPTFS_BIN to the directory holding ckpt-meta, "
                   "ckpt-node and ckptfs)",
                   path, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* ---- the cluster map ---------------------------------------------------- */

static void cc_net_close(struct cc_cluster *cl)
{
    ckpt_conn_close(cl->conn);
    cl->conn = NULL;
    ckpt_net_destroy(cl->net);
    cl->net = NULL;
}

/*
 * Fetch CLUSTER_MAP from ckpt-meta at cc_meta_host():meta.port over an
 * authenticated connection (kept open between calls; reopened after a
 * failure).  @param[out] out  free with ckpt_msg_cluster_map_resp_free().
 */
static int cc_map_fetch(struct cc_cluster *cl, uint32_t timeout_ms,
                        struct ckpt_msg_cluster_map_resp *out)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (!cl->net) {
        struct ckpt_net_opts o;
        memset(&o, 0, sizeof(o));
        if ((rc = ckpt_auth_key_load(cl->key_path, o.key, NULL)) < 0)
            return rc;
        o.name = "ckpt-cluster";
        o.transport = CKPT_TRANSPORT_TCP;
        o.connect_timeout_ms = timeout_ms;
        o.io_timeout_ms = timeout_ms;
        o.call_timeout_ms = timeout_ms;
        rc = ckpt_net_create(&o, &cl->net);
        memset(o.key, 0, sizeof(o.key));
        if (rc < 0)
            return rc;
    }
    if (!cl->conn &&
        (rc = ckpt_net_connect(cl->net, cc_meta_host(cl), cl->meta.port, NULL, NULL,
                               &cl->conn)) < 0) {
        cl->conn = NULL;
        return rc;
    }
    uint8_t stor[64];
    struct ckpt_wbuf w;
    struct ckpt_msg_cluster_map req = {.known_epoch = 0};
    ckpt_wbuf_init(&w, stor, sizeof(stor));
    if ((rc = ckpt_msg_cluster_map_encode(&w, &req)) < 0) {
        ckpt_wbuf_free(&w);
        return rc;
    }
    struct ckpt_call call;
    memset(&call, 0, sizeof(call));
    call.opcode = CKPT_OP_CLUSTER_MAP;
    call.body = w.p;
    call.body_len = (uint32_t)w.len;
    call.timeout_ms = timeout_ms;
    rc = ckpt_conn_call(cl->conn, &call);
    ckpt_wbuf_free(&w);
    if (rc == 0)
        rc = ckpt_msg_cluster_map_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    if (rc < 0 && (!ckpt_conn_is_open(cl->conn) || rc == -ETIMEDOUT)) {
        ckpt_conn_close(cl->conn);
        cl->conn = NULL;
    }
    return rc;
}

static const struct ckpt_map_node *cc_map_find(const struct ckpt_msg_cluster_map_resp *m,
                                               const char *name)
{
    const struct ckpt_map_node *best = NULL;
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        if (strcmp(m->nodes[i].name, name) != 0)
            continue;
        /* Several entries of one name (a node re-registered without its
         * id): prefer the UP one. */
        if (!best || (best->state != CKPT_NODE_UP && m->nodes[i].state == CKPT_NODE_UP))
            best = &m->nodes[i];
    }
    return best;
}

/*
 * Is p UP in the map under its name and current port?  With heard_after_ns
 * (a ckpt_now_ns() time; 0: no condition) its last heartbeat must also be
 * later than that: after a restart ckpt-meta counts every known node UP
 * "as if just heard" until it misses heartbeats, which proves nothing.
 * asked_ns is when the map was requested (the map is younger than that).
 */
static bool cc_node_is_up(const struct ckpt_msg_cluster_map_resp *m, const struct cc_proc *p,
                          uint64_t heard_after_ns, uint64_t asked_ns)
{
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        const struct ckpt_map_node *n = &m->nodes[i];
        /* DRAINING is up too (serving, only avoided by placement). */
        if (strcmp(n->name, p->name) != 0 || n->port != p->port ||
            (n->state != CKPT_NODE_UP && n->state != CKPT_NODE_DRAINING))
            continue;
        if (!heard_after_ns)
            return true;
        /* heard at (map time - last_seen) >= (asked - last_seen) > after */
        if (asked_ns > heard_after_ns && n->last_seen_ms < (asked_ns - heard_after_ns) / 1000000u)
            return true;
    }
    return false;
}

/*
 * Poll CLUSTER_MAP until every node in ps[] is UP with its current port,
 * watching that they and ckpt-meta stay alive.
 * @return 0, -EINTR, -ETIMEDOUT, -ESRCH (a process died): explained on stderr.
 */
static int cc_wait_up(struct cc_cluster *cl, struct cc_proc **ps, int n, uint64_t heard_after_ns,
                      uint64_t deadline_ns)
{
    uint64_t t0 = ckpt_now_ns();
    int last_up = -1, map_rc = 0;
    uint64_t asked = 0;
    char why[128];
    struct ckpt_msg_cluster_map_resp m;
    memset(&m, 0, sizeof(m));
    if (n == 0)
        return 0;
    for (;;) {
        if (cc_signal)
            return -EINTR;
        if (!cc_proc_alive(&cl->meta)) {
            cc_err("ckpt-meta %s while waiting for nodes to come UP",
                   cc_why_dead(&cl->meta, 1000, why, sizeof(why)));
            cc_show_proc_log(cl, &cl->meta);
            return -ESRCH;
        }
        for (int i = 0; i < n; i++) {
            if (!cc_proc_alive(ps[i])) {
                cc_err("%s %s before it was UP in the cluster map", ps[i]->name,
                       cc_why_dead(ps[i], 1000, why, sizeof(why)));
                cc_show_proc_log(cl, ps[i]);
                return -ESRCH;
            }
        }
        uint64_t now = ckpt_now_ns();
        uint64_t left_ms = now < deadline_ns ? (deadline_ns - now) / 1000000u : 0;
        ckpt_msg_cluster_map_resp_free(&m);
        asked = ckpt_now_ns();
        map_rc = cc_map_fetch(cl, left_ms < CC_MAP_CALL_MS ? (uint32_t)left_ms + 1 : CC_MAP_CALL_MS,
                              &m);
        if (map_rc == 0) {
            int up = 0;
            for (int i = 0; i < n; i++)
                up += cc_node_is_up(&m, ps[i], heard_after_ns, asked);
            if (up != last_up)
                cc_say(cl, "%d/%d node%s UP in the cluster map (epoch %" PRIu64 ", %.2f s)", up,
                       n, n == 1 ? "" : "s", m.epoch, cc_secs_since(t0));
            last_up = up;
            if (up == n) {
                ckpt_msg_cluster_map_resp_free(&m);
                return 0;
            }
        }
        if (ckpt_now_ns() >= deadline_ns)
            break;
        cc_sleep_ms(CC_POLL_MS);
    }
    cc_err("timed out after %.0f s waiting for nodes to be UP in ckpt-meta's cluster map",
           cl->timeout_ms / 1000.0);
    if (map_rc < 0) {
        cc_err("the last CLUSTER_MAP request to ckpt-meta at %s:%u failed: " CKPT_RC_FMT,
               cc_meta_host(cl),
               (unsigned)cl->meta.port, CKPT_RC_ARGS(map_rc));
    } else {
        for (int i = 0; i < n; i++) {
            if (cc_node_is_up(&m, ps[i], heard_after_ns, asked))
                continue;
            const struct ckpt_map_node *mn = cc_map_find(&m, ps[i]->name);
            if (!mn)
                cc_err("%s (port %u) has not registered", ps[i]->name, (unsigned)ps[i]->port);
            else if (mn->state == CKPT_NODE_UP && mn->port == ps[i]->port)
                cc_err("%s is UP in the map but sent no heartbeat since ckpt-meta started "
                       "(last one %.1f s ago)",
                       ps[i]->name, (double)mn->last_seen_ms / 1000.0);
            else
                cc_err("%s is %s in the map at %s:%u (its port now: %u)", ps[i]->name,
                       ckpt_node_state_name(mn->state), mn->host, (unsigned)mn->port,
                       (unsigned)ps[i]->port);
            cc_show_proc_log(cl, ps[i]);
        }
    }
    cc_show_proc_log(cl, &cl->meta);
    ckpt_msg_cluster_map_resp_free(&m);
    return -ETIMEDOUT;
}

/* ---- config ------------------------------------------------------------- */

static int cc_config_fill(FILE *f, const void *ctx)
{
    return ckpt_config_write(ctx, f);
}

static int cc_config_save(struct cc_cluster *cl)
{
    int rc = cc_write_atomic(cl->conf_path, 0644, cc_config_fill, &cl->cfg);
    if (rc < 0)
        cc_err("cannot write %s: %s", cl->conf_path, strerror(-rc));
    return rc;
}

static int cc_cfg_set(struct cc_cluster *cl, const char *section, const char *key,
                      const char *value, const char *origin)
{
    char err[512];
    int rc = ckpt_config_set(&cl->cfg, section, key, value, origin, err, sizeof(err));
    if (rc < 0)
        cc_err("%s", err);
    return rc;
}

/* Record meta's port in the config ([cluster] meta and [meta] listen). */
static int cc_config_set_meta_port(struct cc_cluster *cl)
{
    char addr[CC_ADDR_MAX + 8];
    snprintf(addr, sizeof(addr), "%s:%u", cc_meta_host(cl), (unsigned)cl->meta.port);
    int rc;
    if ((rc = cc_cfg_set(cl, "cluster", "meta", addr, "ckpt-cluster")) < 0 ||
        (rc = cc_cfg_set(cl, "meta", "listen", addr, "ckpt-cluster")) < 0)
        return rc;
    return cc_config_save(cl);
}

/* ---- starting things ------------------------------------------------------ */

/* Start ckpt-meta listening on cc_meta_host():port (0: any), wait for ready. */
static int cc_start_meta(struct cc_cluster *cl, uint16_t port, uint64_t deadline_ns)
{
    struct cc_argv a = {.n = 0};
    char data[PATH_MAX];
    uint64_t t0 = ckpt_now_ns();
    int rc = cc_path(data, sizeof(data), "%s/meta", cl->dir);
    if (rc == 0)
        rc = cc_mkdir_p(data, 0755);
    if (rc < 0) {
        cc_err("cannot create %s/meta: %s", cl->dir, strerror(-rc));
        return rc;
    }
    cc_argv_add(&a, "ckpt-meta");
    cc_argv_add(&a, "-c");
    cc_argv_add(&a, "%s", cl->conf_path);
    cc_argv_add(&a, "--listen");
    cc_argv_add(&a, "%s:%u", cc_meta_host(cl), (unsigned)port);
    cc_argv_add(&a, "--data-dir");
    cc_argv_add(&a, "%s", data);
    cc_argv_add(&a, "--ready-fd");
    cc_argv_add(&a, "%d", CC_READY_FD);
    rc = cc_spawn(cl, &cl->meta, "ckpt-meta", &a, true);
    cc_argv_free(&a);
    if (rc < 0)
        return rc;
    struct cc_proc *ps[1] = {&cl->meta};
    if ((rc = cc_wait_ready(cl, ps, 1, deadline_ns)) < 0)
        return rc;
    if (port && cl->meta.port != port) {
        cc_err("ckpt-meta was asked to listen on port %u and announced %u", (unsigned)port,
               (unsigned)cl->meta.port);
        return -EPROTO;
    }
    cl->meta_ready_ns = ckpt_now_ns();
    cc_say(cl, "ckpt-meta ready on %s:%u (pid %d, %.2f s)", cc_meta_host(cl),
           (unsigned)cl->meta.port,
           (int)cl->meta.pid, cc_secs_since(t0));
    return cc_state_save(cl);
}

/* Fork one ckpt-node (does not wait). */
static int cc_spawn_node(struct cc_cluster *cl, struct cc_proc *p)
{
    struct cc_argv a = {.n = 0};
    int rc;
    cc_argv_add(&a, "ckpt-node");
    cc_argv_add(&a, "-c");
    cc_argv_add(&a, "%s", cl->conf_path);
    cc_argv_add(&a, "--listen");
    cc_argv_add(&a, "%s:0", cc_node_host(cl, (uint32_t)(p - cl->nodes)));
    cc_argv_add(&a, "--meta");
    cc_argv_add(&a, "%s:%u", cc_meta_host(cl), (unsigned)cl->meta.port);
    cc_argv_add(&a, "--name");
    cc_argv_add(&a, "%s", p->name);
    for (uint32_t t = 0; t < p->ntargets; t++) {
        char path[PATH_MAX];
        if ((rc = cc_path(path, sizeof(path), "%s/%s/t%" PRIu32, cl->dir, p->name, t)) < 0) {
            cc_argv_free(&a);
            return rc;
        }
        /* A path that exists as something else is left for ckpt-node to
         * refuse, with its own message in its log. */
        (void)cc_mkdir_p(path, 0755);
        cc_argv_add(&a, "--target");
        cc_argv_add(&a, "%s", path);
    }
    cc_argv_add(&a, "--ready-fd");
    cc_argv_add(&a, "%d", CC_READY_FD);
    rc = cc_spawn(cl, p, "ckpt-node", &a, true);
    cc_argv_free(&a);
    if (rc < 0)
        cc_err("cannot start %s: %s", p->name, strerror(-rc));
    return rc;
}

/* Start nodes ps[] in parallel; wait until all are ready and UP. */
static int cc_start_nodes(struct cc_cluster *cl, struct cc_proc **ps, int n, uint64_t deadline_ns)
{
    uint64_t t0 = ckpt_now_ns();
    int rc;
    if (n == 0)
        return 0;
    for (int i = 0; i < n; i++)
        if ((rc = cc_spawn_node(cl, ps[i])) < 0)
            return rc;
    if ((rc = cc_wait_ready(cl, ps, n, deadline_ns)) < 0)
        return rc;
    if ((rc = cc_state_save(cl)) < 0)
        return rc;
    cc_say(cl, "%d node%s listening (%s%s%s; %.2f s); waiting for them to be UP", n,
           n == 1 ? "" : "s", ps[0]->name, n > 1 ? ".." : "", n > 1 ? ps[n - 1]->name : "",
           cc_secs_since(t0));
    if ((rc = cc_wait_up(cl, ps, n, 0, deadline_ns)) < 0)
        return rc;
    return 0;
}

/*
 * Is path a mount point?  Looks it up in /proc/self/mountinfo (no access to
 * the mount itself, so a dead FUSE mount cannot block us).
 * @param[out] fstype  its type ("fuse.ckptfs"), may be NULL
 * @return 1 mounted, 0 not, negative errno when mountinfo is unreadable.
 */
static int cc_mounted(const char *path, char *fstype, size_t cap)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char *line = NULL;
    size_t lcap = 0;
    int found = 0;
    while (!found && getline(&line, &lcap, f) > 0) {
        /* id parent major:minor root MOUNTPOINT options ... - fstype ... */
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 1; tok && i < 5; i++)
            tok = strtok_r(NULL, " ", &save);
        if (!tok)
            continue;
        /* Unescape \ooo (space, tab, newline, backslash). */
        char mp[PATH_MAX];
        size_t o = 0;
        for (const char *s = tok; *s && o < sizeof(mp) - 1; s++) {
            if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
                s[3] >= '0' && s[3] <= '7') {
                mp[o++] = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                s += 3;
            } else {
                mp[o++] = *s;
            }
        }
        mp[o] = '\0';
        if (strcmp(mp, path) != 0)
            continue;
        found = 1;
        if (fstype && cap) {
            fstype[0] = '\0';
            while ((tok = strtok_r(NULL, " ", &save)) && strcmp(tok, "-") != 0)
                ;
            if (tok && (tok = strtok_r(NULL, " ", &save)))
                snprintf(fstype, cap, "%s", tok);
        }
    }
    free(line); /* from getline(), not ckpt_malloc */
    fclose(f);
    return found;
}

/*
 * statfs() the mount from a child process, killed if it hangs.
 * @return 1 when it answers as a FUSE filesystem, 0 when it answers as
 *         something else or fails, -ETIMEDOUT when it hangs.
 */
static int cc_probe_mount(const char *path, uint32_t timeout_ms)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        struct statfs s;
        if (statfs(path, &s) == 0 && (long)s.f_type == CC_FUSE_MAGIC)
            _exit(0);
        _exit(1);
    }
    uint64_t end = ckpt_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (ckpt_now_ns() >= end) {
            (void)kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return -ETIMEDOUT;
        }
        cc_sleep_ms(10);
    }
}

/* Start ckptfs -f on cl->mnt and wait until the mount answers. */
static int cc_mount(struct cc_cluster *cl, uint64_t deadline_ns)
{
    struct cc_argv a = {.n = 0};
    char why[128];
    uint64_t t0 = ckpt_now_ns();
    int rc = cc_mounted(cl->mnt, NULL, 0);
    if (rc > 0) {
        cc_err("%s is already a mount point", cl->mnt);
        return -EBUSY;
    }
    cc_argv_add(&a, "ckptfs");
    cc_argv_add(&a, "-f");
    cc_argv_add(&a, "-o");
    cc_argv_add(&a, "meta=%s:%u,conf=%s,key_file=%s,transport=%s%s%s", cc_meta_host(cl),
                (unsigned)cl->meta.port, cl->conf_path, cl->key_path, cl->transport,
                cl->mount_opts[0] ? "," : "", cl->mount_opts);
    cc_argv_add(&a, "%s", cl->mnt);
    rc = cc_spawn(cl, &cl->client, "ckptfs", &a, false);
    cc_argv_free(&a);
    if (rc < 0)
        return rc;
    for (;;) {
        if (cc_signal)
            return -EINTR;
        if (!cc_proc_alive(&cl->client)) {
            cc_err("ckptfs %s before the mount at %s answered",
                   cc_why_dead(&cl->client, 1000, why, sizeof(why)), cl->mnt);
            cc_show_proc_log(cl, &cl->client);
            return -ESRCH;
        }
        if (cc_mounted(cl->mnt, NULL, 0) > 0 && cc_probe_mount(cl->mnt, CC_PROBE_MS) == 1)
            break;
        if (ckpt_now_ns() >= deadline_ns) {
            cc_err("ckptfs did not mount %s within %.0f s (statfs does not report a FUSE "
                   "filesystem there)",
                   cl->mnt, cl->timeout_ms / 1000.0);
            cc_show_proc_log(cl, &cl->client);
            return -ETIMEDOUT;
        }
        cc_sleep_ms(CC_POLL_MS);
    }
    cc_say(cl, "ckptfs mounted at %s (pid %d, %.2f s)", cl->mnt, (int)cl->client.pid,
           cc_secs_since(t0));
    return cc_state_save(cl);
}

/* Run a helper (fusermount3) and wait for it, at most timeout_ms. */
static int cc_run(char *const argv[], uint32_t timeout_ms)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0)
            (void)dup2(nul, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    uint64_t end = ckpt_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (ckpt_now_ns() >= end) {
            (void)kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return -ETIMEDOUT;
        }
        cc_sleep_ms(10);
    }
}

/*
 * Unmount cl->mnt if it is a FUSE mount: umount2 as root, fusermount3
 * otherwise; lazily (MNT_DETACH / -z) when lazy or when the normal unmount
 * fails (busy).  A mount of another type is left alone.
 * @return 0 (not mounted, or unmounted), or a negative code (explained).
 */
static int cc_unmount(struct cc_cluster *cl, bool lazy)
{
    char fstype[64];
    if (!cl->mnt[0])
        return 0;
    int rc = cc_mounted(cl->mnt, fstype, sizeof(fstype));
    if (rc <= 0)
        return rc;
    if (strncmp(fstype, "fuse", 4) != 0) {
        cc_err("%s is mounted with type %s, not by ckptfs; left alone", cl->mnt, fstype);
        return -EPERM;
    }
    for (int attempt = lazy ? 1 : 0; attempt < 2; attempt++) {
        if (geteuid() == 0) {
            rc = umount2(cl->mnt, attempt ? MNT_DETACH : 0) < 0 ? -errno : 0;
        } else {
            char *argv[] = {"fusermount3", attempt ? "-uz" : "-u", cl->mnt, NULL};
            rc = cc_run(argv, 10000);
            if (rc < 0) {
                char *argv2[] = {"fusermount", attempt ? "-uz" : "-u", cl->mnt, NULL};
                rc = cc_run(argv2, 10000);
            }
        }
        if (cc_mounted(cl->mnt, NULL, 0) == 0) {
            cc_say(cl, "unmounted %s%s", cl->mnt, attempt ? " (lazily)" : "");
            return 0;
        }
        if (!attempt)
            cc_say(cl, "cannot unmount %s (%s); detaching it lazily", cl->mnt,
                   rc < 0 ? strerror(-rc) : "still mounted");
    }
    cc_err("cannot unmount %s: %s", cl->mnt, rc < 0 ? strerror(-rc) : "still mounted");
    return rc < 0 ? rc : -EBUSY;
}

/*
 * Stop everything recorded in cl: unmount, give the client grace_ms to exit,
 * then SIGTERM all daemons at once (SIGKILL after grace_ms).
 * @return 0, or the first error (what failed was printed).
 */
static int cc_teardown(struct cc_cluster *cl, uint32_t grace_ms)
{
    int rc = 0, r;
    struct cc_proc *ps[CC_MAX_NODES + 1];
    int n = 0;
    if ((r = cc_unmount(cl, false)) < 0 && rc == 0)
        rc = r;
    /* After the unmount the client exits by itself, once flushed. */
    struct cc_proc *c[1] = {&cl->client};
    uint64_t end = ckpt_now_ns() + (uint64_t)grace_ms * 1000000u;
    while (cc_proc_alive(&cl->client) && ckpt_now_ns() < end && cc_mounted(cl->mnt, NULL, 0) == 0)
        cc_sleep_ms(20);
    if ((r = cc_stop(cl, c, 1, SIGTERM, grace_ms)) < 0 && rc == 0)
        rc = r;
    /* A client killed while mounted leaves a dead mount behind. */
    if ((r = cc_unmount(cl, true)) < 0 && rc == 0)
        rc = r;
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        ps[n++] = &cl->nodes[i];
    ps[n++] = &cl->meta;
    if ((r = cc_stop(cl, ps, n, SIGTERM, grace_ms)) < 0 && rc == 0)
        rc = r;
    cc_net_close(cl);
    return rc;
}

/* ---- signals -------------------------------------------------------------- */

static void cc_on_signal(int sig)
{
    cc_signal = sig;
}

static void cc_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cc_on_signal; /* no SA_RESTART: poll/nanosleep return */
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
}

/* Exit status for a failed operation: 128+signal when interrupted. */
static int cc_fail_status(void)
{
    if (cc_signal) {
        fprintf(stderr, "ckpt-cluster: interrupted by signal %d (%s)\n", (int)cc_signal,
                strsignal(cc_signal));
        return 128 + cc_signal;
    }
    return CC_EXIT_FAIL;
}

/* ---- commands --------------------------------------------------------------- */

static struct cc_proc *cc_find_proc(struct cc_cluster *cl, const char *name)
{
    if (!strcmp(name, "meta"))
        return &cl->meta;
    if (!strcmp(name, "ckptfs"))
        return &cl->client;
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        if (!strcmp(cl->nodes[i].name, name))
            return &cl->nodes[i];
    return NULL;
}

static bool cc_anything_alive(struct cc_cluster *cl)
{
    bool any = cc_proc_alive(&cl->meta) || cc_proc_alive(&cl->client);
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        any = cc_proc_alive(&cl->nodes[i]) || any;
    return any || (cl->mnt[0] && cc_mounted(cl->mnt, NULL, 0) > 0);
}

/* Open DIR's cluster for a command that needs one: dir, state, lock. */
static int cc_open_cluster(struct cc_cluster *cl, const char *dir, bool lock)
{
    int rc = cc_set_dir(cl, dir, false);
    if (rc == -ENOENT) {
        cc_err("%s does not exist", dir);
        return CC_EXIT_NOCLUSTER;
    }
    if (rc < 0) {
        if (rc != -EINVAL && rc != -ENAMETOOLONG)
            cc_err("%s: %s", dir, strerror(-rc));
        return CC_EXIT_FAIL;
    }
    if (lock && (rc = cc_lock(cl)) < 0)
        return rc == -EBUSY ? CC_EXIT_STATE : cc_fail_status();
    rc = cc_state_load(cl);
    if (rc == -ENOENT) {
        cc_err("no cluster in %s (no cluster.state; start one with 'ckpt-cluster up %s')",
               cl->dir, dir);
        return CC_EXIT_NOCLUSTER;
    }
    if (rc < 0) {
        if (rc != CKPT_E_CONFIG)
            cc_err("cannot read %s: %s", cl->state_path, ckpt_strerror(rc));
        return CC_EXIT_FAIL;
    }
    return CC_EXIT_OK;
}

struct cc_up_opts {
    long nodes;
    bool nodes_set;
    long tpn;
    bool tpn_set;
    const char *ec;
    const char *chunk;
    const char *transport;
    const char *addrs;
    const char *mount;
    const char *mount_opts;
    bool no_mount;
    const char *sets[CC_MAX_SETS];
    int nsets;
};

/* Keys ckpt-cluster owns; --set may not change them. */
static bool cc_managed_key(const char *arg)
{
    static const char *const keys[] = {"cluster.key_file", "cluster.meta", "meta.listen",
                                       "meta.data_dir", "meta.log_file", "node.listen",
                                       "node.target", "node.name", "node.log_file"};
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i]) == len && !strncmp(arg, keys[i], len))
            return true;
    return false;
}

/* Build the config of a new cluster in cl->cfg.  @return an exit status. */
static int cc_config_new(struct cc_cluster *cl, const struct cc_up_opts *o)
{
    char path[PATH_MAX], err[512];
    ckpt_config_init(&cl->cfg);
    if (cc_cfg_set(cl, "cluster", "key_file", cl->key_path, "ckpt-cluster") < 0 ||
        cc_cfg_set(cl, "cluster", "transport", cl->transport, "--transport") < 0 ||
        cc_cfg_set(cl, "meta", "listen", "127.0.0.1:0", "ckpt-cluster") < 0 ||
        cc_path(path, sizeof(path), "%s/meta", cl->dir) < 0 ||
        cc_cfg_set(cl, "meta", "data_dir", path, "ckpt-cluster") < 0 ||
        cc_cfg_set(cl, "node", "listen", "127.0.0.1:0", "ckpt-cluster") < 0)
        return CC_EXIT_USAGE;
    if (o->ec && cc_cfg_set(cl, "layout", "ec", o->ec, "--ec") < 0)
        return CC_EXIT_USAGE;
    if (o->chunk && cc_cfg_set(cl, "layout", "chunk", o->chunk, "--chunk") < 0)
        return CC_EXIT_USAGE;
    for (int i = 0; i < o->nsets; i++) {
        if (ckpt_config_set_arg(&cl->cfg, o->sets[i], err, sizeof(err)) < 0) {
            cc_err("--set %s", err);
            return CC_EXIT_USAGE;
        }
    }
    if (ckpt_config_check(&cl->cfg, err, sizeof(err)) < 0) {
        cc_err("%s", err);
        return CC_EXIT_USAGE;
    }
    const struct ckpt_layout *l = &cl->cfg.layout.def;
    uint64_t targets = (uint64_t)cl->n_nodes * cl->targets_per_node;
    if (targets < l->width) {
        cc_err("a %u+%u layout%s needs at least %u targets; %" PRIu32 " node(s) x %" PRIu32
               " target(s) = %" PRIu64,
               (unsigned)l->k, (unsigned)l->m, l->width > l->k + l->m ? " (width set)" : "",
               (unsigned)l->width, cl->n_nodes, cl->targets_per_node, targets);
        return CC_EXIT_USAGE;
    }
    if (cl->n_nodes < (uint32_t)(l->k + l->m))
        cc_say(cl, "note: %" PRIu32 " nodes for %u+%u: some stripes put two chunks on one node, "
                   "so losing that node costs both",
               cl->n_nodes, (unsigned)l->k, (unsigned)l->m);
    return CC_EXIT_OK;
}

static int cc_up_fail(struct cc_cluster *cl, bool fresh)
{
    int status = cc_fail_status();
    cc_say(cl, "stopping what was started");
    int saved = cc_signal;
    cc_signal = 0; /* let the teardown's waits run */
    (void)cc_teardown(cl, cl->grace_ms);
    cc_signal = saved;
    if (fresh && !cc_anything_alive(cl))
        (void)unlink(cl->state_path);
    else
        (void)cc_state_save(cl);
    return status;
}

static int cmd_up(struct cc_cluster *cl, const char *dir, const struct cc_up_opts *o)
{
    uint64_t t0 = ckpt_now_ns();
    int rc, status;
    char mnt_req[PATH_MAX] = "";

    if (strchr(dir, ',')) {
        cc_err("%s: a ',' in DIR cannot be passed in ckptfs mount options", dir);
        return CC_EXIT_USAGE;
    }
    if (o->mount && (strchr(o->mount, '\n'))) {
        cc_err("--mount: a newline in the path is not supported");
        return CC_EXIT_USAGE;
    }
    if ((rc = cc_set_dir(cl, dir, true)) < 0)
        return CC_EXIT_FAIL;
    if ((rc = cc_lock(cl)) < 0)
        return rc == -EBUSY ? CC_EXIT_STATE : cc_fail_status();

    bool fresh = !cc_file_exists(cl->state_path);
    if (!fresh) {
        if (cc_state_load(cl) < 0)
            return CC_EXIT_FAIL;
        if (cc_anything_alive(cl)) {
            cc_err("a cluster is already running in %s (see 'ckpt-cluster status %s'; stop it "
                   "with 'ckpt-cluster down %s')",
                   cl->dir, dir, dir);
            return CC_EXIT_STATE;
        }
        char err[512];
        ckpt_config_init(&cl->cfg);
        if ((rc = ckpt_config_load(&cl->cfg, cl->conf_path, err, sizeof(err))) < 0) {
            cc_err("%s", err);
            return CC_EXIT_FAIL;
        }
        const struct ckpt_layout *l = &cl->cfg.layout.def;
        char ec[16];
        snprintf(ec, sizeof(ec), "%u+%u", (unsigned)l->k, (unsigned)l->m);
        uint64_t chunk = 0;
        bool conflict =
            (o->nodes_set && (uint32_t)o->nodes != cl->n_nodes) ||
            (o->tpn_set && (uint32_t)o->tpn != cl->targets_per_node) ||
            (o->ec && strcmp(o->ec, ec) != 0) ||
            (o->transport && strcmp(o->transport, cl->transport) != 0) ||
            (o->addrs && cc_addrs_differ(cl, o->addrs)) ||
            (o->chunk && (ckpt_parse_size(o->chunk, &chunk) < 0 || chunk != l->chunk_size));
        if (conflict) {
            cc_err("%s holds a stopped cluster of %" PRIu32 " nodes x %" PRIu32
                   " targets, %s, chunk %" PRIu32 ", transport %s; 'up' starts it again as it "
                   "is. Use another DIR for a different cluster",
                   cl->dir, cl->n_nodes, cl->targets_per_node, ec, l->chunk_size,
                   cl->transport);
            return CC_EXIT_USAGE;
        }
        for (int i = 0; i < o->nsets; i++) {
            if (ckpt_config_set_arg(&cl->cfg, o->sets[i], err, sizeof(err)) < 0) {
                cc_err("--set %s", err);
                return CC_EXIT_USAGE;
            }
        }
        if (ckpt_config_check(&cl->cfg, err, sizeof(err)) < 0) {
            cc_err("%s", err);
            return CC_EXIT_USAGE;
        }
        if (!cc_file_exists(cl->key_path)) {
            cc_err("%s is missing: the cluster's nodes and data cannot be used without it",
                   cl->key_path);
            return CC_EXIT_FAIL;
        }
        if (o->mount_opts)
            snprintf(cl->mount_opts, sizeof(cl->mount_opts), "%s", o->mount_opts);
        cc_say(cl, "starting the stopped cluster in %s again (%" PRIu32 " nodes, %s)", cl->dir,
               cl->n_nodes, ec);
    } else {
        cl->n_nodes = (uint32_t)(o->nodes_set ? o->nodes : 6);
        cl->targets_per_node = (uint32_t)(o->tpn_set ? o->tpn : 1);
        snprintf(cl->transport, sizeof(cl->transport), "%s", o->transport ? o->transport : "tcp");
        if (cc_addrs_parse(cl, o->addrs ? o->addrs : "") < 0) {
            cc_err("--addrs %s: a comma-separated list of up to %d IP addresses (ckpt-meta's, "
                   "then the nodes')", o->addrs, CC_MAX_NODES + 1);
            return CC_EXIT_USAGE;
        }
        snprintf(cl->mount_opts, sizeof(cl->mount_opts), "%s", o->mount_opts ? o->mount_opts : "");
        cc_proc_init(&cl->meta, "meta");
        cc_proc_init(&cl->client, "ckptfs");
        for (uint32_t i = 0; i < cl->n_nodes; i++) {
            char name[CC_NAME_MAX];
            snprintf(name, sizeof(name), "node%" PRIu32, i + 1);
            cc_proc_init(&cl->nodes[i], name);
            cl->nodes[i].ntargets = cl->targets_per_node;
        }
        if ((status = cc_config_new(cl, o)) != CC_EXIT_OK)
            return status;
    }

    /* The mount point. */
    if (o->no_mount) {
        cl->mnt[0] = '\0';
    } else if (o->mount || fresh) {
        if (o->mount)
            rc = cc_path(mnt_req, sizeof(mnt_req), "%s", o->mount);
        else
            rc = cc_path(mnt_req, sizeof(mnt_req), "%s/mnt", cl->dir);
        if (rc < 0) {
            cc_err("mount point path too long");
            return CC_EXIT_USAGE;
        }
        if (cc_mounted(mnt_req, NULL, 0) > 0) {
            cc_err("%s is already a mount point", mnt_req);
            return CC_EXIT_STATE;
        }
        if ((rc = cc_mkdir_p(mnt_req, 0755)) < 0) {
            cc_err("cannot create the mount point %s: %s", mnt_req, strerror(-rc));
            return CC_EXIT_FAIL;
        }
        if (!realpath(mnt_req, cl->mnt)) {
            cc_err("%s: %s", mnt_req, strerror(errno));
            return CC_EXIT_FAIL;
        }
    }
    if (cl->mnt[0] && cc_mounted(cl->mnt, NULL, 0) > 0) {
        cc_err("%s is already a mount point", cl->mnt);
        return CC_EXIT_STATE;
    }
    if (cc_find_bin(cl, cl->mnt[0] != '\0') < 0)
        return CC_EXIT_FAIL;

    /* Logs, key, config: all under DIR. */
    char logs[PATH_MAX];
    if (cc_path(logs, sizeof(logs), "%s/logs", cl->dir) < 0 ||
        (rc = cc_mkdir_p(logs, 0755)) < 0) {
        cc_err("cannot create %s/logs", cl->dir);
        return CC_EXIT_FAIL;
    }
    if (fresh) {
        const struct ckpt_layout *l = &cl->cfg.layout.def;
        char csz[32];
        if (unlink(cl->key_path) < 0 && errno != ENOENT) {
            cc_err("cannot replace %s: %s", cl->key_path, strerror(errno));
            return CC_EXIT_FAIL;
        }
        if ((rc = ckpt_auth_key_generate(cl->key_path)) < 0) {
            cc_err("cannot create the cluster key %s: %s", cl->key_path, ckpt_strerror(rc));
            return CC_EXIT_FAIL;
        }
        if (cc_config_save(cl) < 0)
            return CC_EXIT_FAIL;
        cc_say(cl, "new cluster in %s: %" PRIu32 " nodes x %" PRIu32 " target%s, %u+%u, "
                   "chunk %s, transport %s; wrote ckptfs.conf and a new cluster.key",
               cl->dir, cl->n_nodes, cl->targets_per_node, cl->targets_per_node == 1 ? "" : "s",
               (unsigned)l->k, (unsigned)l->m, ckpt_fmt_bytes(l->chunk_size, csz, sizeof(csz)),
               cl->transport);
    }
    if ((rc = cc_state_save(cl)) < 0) {
        cc_err("cannot write %s: %s", cl->state_path, ckpt_strerror(rc));
        return CC_EXIT_FAIL;
    }

    cc_signals_install();
    uint64_t deadline = ckpt_now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
    /* ckpt-meta on a free port; the config then records it for everyone. */
    if (cc_start_meta(cl, 0, deadline) < 0 || cc_config_set_meta_port(cl) < 0)
        return cc_up_fail(cl, fresh);
    struct cc_proc *ps[CC_MAX_NODES];
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        ps[i] = &cl->nodes[i];
    if (cc_start_nodes(cl, ps, (int)cl->n_nodes, deadline) < 0)
        return cc_up_fail(cl, fresh);
    if (cl->mnt[0] && cc_mount(cl, deadline) < 0)
        return cc_up_fail(cl, fresh);
    if (cc_state_save(cl) < 0)
        return cc_up_fail(cl, fresh);
    cc_net_close(cl);
    cc_say(cl, "cluster up in %.1f s: ckpt-meta %s:%u, %" PRIu32 " nodes UP%s%s",
           cc_secs_since(t0), cc_meta_host(cl), (unsigned)cl->meta.port, cl->n_nodes,
           cl->mnt[0] ? ", mounted at " : "", cl->mnt);
    cc_say(cl, "use it with: export CKPTFS_CONF=%s; stop it with: ckpt-cluster down %s",
           cl->conf_path, cl->dir);
    return CC_EXIT_OK;
}

/* down without cluster.state: stray processes from the pid files in run/, DIR/mnt. */
static int cc_down_fallback(struct cc_cluster *cl)
{
    char run[PATH_MAX];
    int rc = 0;
    cc_proc_init(&cl->meta, "meta");
    cc_proc_init(&cl->client, "ckptfs");
    cl->n_nodes = 0;
    if (cc_path(run, sizeof(run), "%s/run", cl->dir) == 0) {
        DIR *d = opendir(run);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 5 || len >= CC_NAME_MAX || strcmp(e->d_name + len - 4, ".pid"))
                continue;
            char name[CC_NAME_MAX], path[PATH_MAX];
            snprintf(name, sizeof(name), "%.*s", (int)(len - 4), e->d_name);
            struct cc_proc *p = NULL;
            if (!strcmp(name, "meta"))
                p = &cl->meta;
            else if (!strcmp(name, "ckptfs"))
                p = &cl->client;
            else if (cc_valid_node_name(name) && cl->n_nodes < CC_MAX_NODES) {
                p = &cl->nodes[cl->n_nodes++];
                cc_proc_init(p, name);
            }
            if (!p || cc_path(path, sizeof(path), "%s/%s", run, e->d_name) < 0)
                continue;
            FILE *f = fopen(path, "re");
            int pid = 0;
            if (f) {
                if (fscanf(f, "%d", &pid) != 1)
                    pid = 0;
                fclose(f);
            }
            if (pid > 0 && cc_proc_is_ours_by_cmdline(pid, cl->dir))
                p->pid = pid;
            else
                (void)unlink(path);
        }
        if (d)
            closedir(d);
    }
    char fstype[64];
    if (cc_path(cl->mnt, sizeof(cl->mnt), "%s/mnt", cl->dir) < 0 ||
        cc_mounted(cl->mnt, fstype, sizeof(fstype)) <= 0 || strncmp(fstype, "fuse", 4) != 0)
        cl->mnt[0] = '\0';
    if (!cc_anything_alive(cl)) {
        cc_say(cl, "no cluster in %s; nothing to stop", cl->dir);
        return CC_EXIT_OK;
    }
    rc = cc_teardown(cl, cl->grace_ms);
    return rc < 0 ? CC_EXIT_FAIL : CC_EXIT_OK;
}

static int cmd_down(struct cc_cluster *cl, const char *dir)
{
    uint64_t t0 = ckpt_now_ns();
    int rc = cc_set_dir(cl, dir, false);
    if (rc == -ENOENT) {
        cc_say(cl, "%s does not exist; nothing to stop", dir);
        return CC_EXIT_OK;
    }
    if (rc < 0)
        return CC_EXIT_FAIL;
    if ((rc = cc_lock(cl)) < 0)
        return rc == -EBUSY ? CC_EXIT_STATE : cc_fail_status();
    cc_signals_install();
    rc = cc_state_load(cl);
    if (rc == -ENOENT)
        return cc_down_fallback(cl);
    if (rc < 0) {
        cc_say(cl, "falling back to the pid files in %s/run", cl->dir);
        return cc_down_fallback(cl);
    }
    bool any = cc_anything_alive(cl);
    rc = cc_teardown(cl, cl->grace_ms);
    int r = cc_state_save(cl);
    if (r < 0)
        cc_err("cannot write %s: %s", cl->state_path, ckpt_strerror(r));
    if (rc < 0) {
        cc_err("%s is not completely stopped (see above); run 'ckpt-cluster down %s' again",
               cl->dir, dir);
        return CC_EXIT_FAIL;
    }
    if (any)
        cc_say(cl, "cluster in %s stopped (%.1f s)", cl->dir, cc_secs_since(t0));
    else
        cc_say(cl, "nothing was running in %s", cl->dir);
    return CC_EXIT_OK;
}

struct cc_node_usage {
    uint32_t ntargets;
    uint64_t capacity, used, free, chunks;
};

static struct cc_node_usage cc_usage_of(const struct ckpt_msg_cluster_map_resp *m, uint32_t id)
{
    struct cc_node_usage u = {0};
    for (uint32_t i = 0; m && i < m->n_targets; i++) {
        const struct ckpt_map_target *t = &m->targets[i];
        if (t->node_id != id)
            continue;
        u.ntargets++;
        u.capacity += t->capacity;
        u.used += t->used;
        u.free += t->free;
        u.chunks += t->chunks;
    }
    return u;
}

static int cmd_status(struct cc_cluster *cl, const char *dir, bool json)
{
    int status = cc_open_cluster(cl, dir, false);
    if (status != CC_EXIT_OK)
        return status;
    struct ckpt_msg_cluster_map_resp m;
    memset(&m, 0, sizeof(m));
    bool meta_alive = cc_proc_alive(&cl->meta);
    int map_rc = -ESRCH;
    if (meta_alive && cl->meta.port)
        map_rc = cc_map_fetch(cl, CC_MAP_CALL_MS, &m);
    const struct ckpt_msg_cluster_map_resp *mp = map_rc == 0 ? &m : NULL;
    bool client_alive = cc_proc_alive(&cl->client);
    int mounted = cl->mnt[0] ? cc_mounted(cl->mnt, NULL, 0) : 0;
    int answers = mounted > 0 ? cc_probe_mount(cl->mnt, CC_PROBE_MS) : 0;
    bool healthy = meta_alive && mp && (!cl->mnt[0] || (client_alive && answers == 1));
    for (uint32_t i = 0; i < cl->n_nodes; i++) {
        struct cc_proc *p = &cl->nodes[i];
        if (!cc_proc_alive(p) || !mp || !cc_node_is_up(mp, p, 0, 0))
            healthy = false;
    }
    char meta_err[128] = "";
    if (!meta_alive)
        snprintf(meta_err, sizeof(meta_err), "not running");
    else if (map_rc < 0)
        snprintf(meta_err, sizeof(meta_err), "CLUSTER_MAP failed: %s", ckpt_strerror(map_rc));

    if (json) {
        FILE *f = stdout;
        fprintf(f, "{\n  \"dir\": ");
        ckpt_json_str(f, cl->dir);
        fprintf(f, ",\n  \"config\": ");
        ckpt_json_str(f, cl->conf_path);
        fprintf(f, ",\n  \"healthy\": %s,\n  \"cluster\": ", healthy ? "true" : "false");
        if (mp)
            ckpt_json_str(f, mp->cluster);
        else
            fputs("null", f);
        fprintf(f, ",\n  \"epoch\": ");
        if (mp)
            fprintf(f, "%" PRIu64, mp->epoch);
        else
            fputs("null", f);
        fprintf(f, ",\n  \"layout\": ");
        if (mp)
            fprintf(f, "{\"k\": %u, \"m\": %u, \"width\": %u, \"chunk_size\": %" PRIu32 "}",
                    (unsigned)mp->layout.k, (unsigned)mp->layout.m, (unsigned)mp->layout.width,
                    mp->layout.chunk_size);
        else
            fputs("null", f);
        fprintf(f, ",\n  \"meta\": {\"pid\": %d, \"running\": %s, \"address\": \"%s:%u\", "
                   "\"reachable\": %s, \"error\": ",
                (int)cl->meta.pid, meta_alive ? "true" : "false", cc_meta_host(cl),
                (unsigned)cl->meta.port,
                mp ? "true" : "false");
        if (meta_err[0])
            ckpt_json_str(f, meta_err);
        else
            fputs("null", f);
        fprintf(f, "},\n  \"nodes\": [");
        for (uint32_t i = 0; i < cl->n_nodes; i++) {
            struct cc_proc *p = &cl->nodes[i];
            const struct ckpt_map_node *mn = mp ? cc_map_find(mp, p->name) : NULL;
            struct cc_node_usage u = cc_usage_of(mp, mn ? mn->id : 0);
            fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
            ckpt_json_str(f, p->name);
            fprintf(f, ", \"pid\": %d, \"running\": %s, \"address\": \"%s:%u\", "
                       "\"targets\": %" PRIu32 ", \"state\": ",
                    (int)p->pid, cc_proc_alive(p) ? "true" : "false", cc_node_host(cl, i),
                    (unsigned)p->port,
                    p->ntargets);
            if (mn)
                ckpt_json_str(f, ckpt_node_state_name(mn->state));
            else
                fputs("null", f);
            if (mn)
                fprintf(f, ", \"id\": %" PRIu32 ", \"last_seen_ms\": %" PRIu64
                           ", \"capacity\": %" PRIu64 ", \"used\": %" PRIu64
                           ", \"free\": %" PRIu64 ", \"chunks\": %" PRIu64 "}",
                        mn->id, mn->last_seen_ms, u.capacity, u.used, u.free, u.chunks);
            else
                fputs(", \"id\": null}", f);
        }
        /* Nodes in the map that ckpt-cluster did not start here. */
        fprintf(f, "\n  ],\n  \"other_map_nodes\": [");
        int k = 0;
        for (uint32_t i = 0; mp && i < mp->n_nodes; i++) {
            if (cc_find_proc(cl, mp->nodes[i].name))
                continue;
            fprintf(f, "%s\n    {\"name\": ", k++ ? "," : "");
            ckpt_json_str(f, mp->nodes[i].name);
            fprintf(f, ", \"id\": %" PRIu32 ", \"state\": \"%s\", \"address\": ", mp->nodes[i].id,
                    ckpt_node_state_name(mp->nodes[i].state));
            char addr[CKPT_HOST_MAX + 16];
            snprintf(addr, sizeof(addr), "%s:%u", mp->nodes[i].host, (unsigned)mp->nodes[i].port);
            ckpt_json_str(f, addr);
            fputc('}', f);
        }
        fprintf(f, "%s],\n  \"mount\": ", k ? "\n  " : "");
        if (cl->mnt[0]) {
            fprintf(f, "{\"path\": ");
            ckpt_json_str(f, cl->mnt);
            fprintf(f, ", \"pid\": %d, \"running\": %s, \"mounted\": %s, \"answers\": %s",
                    (int)cl->client.pid, client_alive ? "true" : "false",
                    mounted > 0 ? "true" : "false", answers == 1 ? "true" : "false");
            if (answers == 1)
                cc_json_connections(f, cl->mnt);
            fputc('}', f);
        } else {
            fputs("null", f);
        }
        fprintf(f, "\n}\n");
    } else {
        char a[32], b[32];
        printf("cluster %s in %s: %s\n", mp ? mp->cluster : "?", cl->dir,
               healthy ? "healthy" : "NOT healthy");
        if (mp)
            printf("  epoch %" PRIu64 ", layout %u+%u, chunk %s\n", mp->epoch,
                   (unsigned)mp->layout.k, (unsigned)mp->layout.m,
                   ckpt_fmt_bytes(mp->layout.chunk_size, a, sizeof(a)));
        printf("  %-8s %-8s %-16s %s\n", "NAME", "PID", "ADDRESS", "STATE");
        char pid[16], addr[CC_ADDR_MAX + 8];
        snprintf(pid, sizeof(pid), "%d", (int)cl->meta.pid);
        snprintf(addr, sizeof(addr), "%s:%u", cc_meta_host(cl), (unsigned)cl->meta.port);
        printf("  %-8s %-8s %-16s %s\n", "meta", meta_alive ? pid : "-", addr,
               meta_err[0] ? meta_err : "running");
        for (uint32_t i = 0; i < cl->n_nodes; i++) {
            struct cc_proc *p = &cl->nodes[i];
            bool alive = cc_proc_alive(p);
            const struct ckpt_map_node *mn = mp ? cc_map_find(mp, p->name) : NULL;
            char st[96];
            snprintf(pid, sizeof(pid), "%d", (int)p->pid);
            snprintf(addr, sizeof(addr), "%s:%u", cc_node_host(cl, i), (unsigned)p->port);
            if (!mp)
                snprintf(st, sizeof(st), "?");
            else if (!mn)
                snprintf(st, sizeof(st), "not registered");
            else if (mn->state == CKPT_NODE_UP)
                snprintf(st, sizeof(st), "UP");
            else
                snprintf(st, sizeof(st), "%s (last heartbeat %.1f s ago)",
                         ckpt_node_state_name(mn->state), (double)mn->last_seen_ms / 1000.0);
            printf("  %-8s %-8s %-16s %s%s", p->name, alive ? pid : "-", addr, st,
                   alive ? "" : ", process not running");
            struct cc_node_usage u = cc_usage_of(mp, mn ? mn->id : 0);
            if (mn && u.ntargets) {
                printf(", %" PRIu32 " target%s, %s used of %s, %" PRIu64 " chunks", u.ntargets,
                       u.ntargets == 1 ? "" : "s", ckpt_fmt_bytes(u.used, a, sizeof(a)),
                       ckpt_fmt_bytes(u.capacity, b, sizeof(b)), u.chunks);
            }
            putchar('\n');
        }
        for (uint32_t i = 0; mp && i < mp->n_nodes; i++)
            if (!cc_find_proc(cl, mp->nodes[i].name))
                printf("  %-8s %-8s %s:%-6u %s (in the map; not started by ckpt-cluster here)\n",
                       mp->nodes[i].name, "?", mp->nodes[i].host, (unsigned)mp->nodes[i].port,
                       ckpt_node_state_name(mp->nodes[i].state));
        if (cl->mnt[0]) {
            snprintf(pid, sizeof(pid), "%d", (int)cl->client.pid);
            printf("  %-8s %-8s %s: %s\n", "ckptfs", client_alive ? pid : "-", cl->mnt,
                   mounted <= 0        ? "not mounted"
                   : answers == 1      ? "mounted"
                   : answers == -ETIMEDOUT ? "mounted, NOT answering"
                                       : "mounted, NOT working (transport endpoint gone?)");
        } else {
            printf("  (no mount)\n");
        }
    }
    ckpt_msg_cluster_map_resp_free(&m);
    cc_net_close(cl);
    return CC_EXIT_OK;
}

static int cmd_kill(struct cc_cluster *cl, const char *dir, const char *name)
{
    int status = cc_open_cluster(cl, dir, true);
    if (status != CC_EXIT_OK)
        return status;
    struct cc_proc *p = cc_find_proc(cl, name);
    if (!p) {
        cc_err("%s has no process %s (nodes are node1..node%" PRIu32 ", plus meta and ckptfs)",
               cl->dir, name, cl->n_nodes);
        return CC_EXIT_NOCLUSTER;
    }
    if (!cc_proc_alive(p)) {
        cc_err("%s is not running", name);
        return CC_EXIT_STATE;
    }
    pid_t pid = p->pid;
    struct cc_proc *ps[1] = {p};
    if (cc_stop(cl, ps, 1, SIGKILL, CC_KILL_WAIT_MS) < 0)
        return CC_EXIT_FAIL;
    cc_say(cl, "killed %s (pid %d) with SIGKILL", cc_label(p), (int)pid);
    if (cc_state_save(cl) < 0)
        return CC_EXIT_FAIL;
    return CC_EXIT_OK;
}

static int cmd_stop(struct cc_cluster *cl, const char *dir, const char *name)
{
    int status = cc_open_cluster(cl, dir, true);
    if (status != CC_EXIT_OK)
        return status;
    struct cc_proc *p = cc_find_proc(cl, name);
    if (!p) {
        cc_err("%s has no process %s (nodes are node1..node%" PRIu32 ", plus meta and ckptfs)",
               cl->dir, name, cl->n_nodes);
        return CC_EXIT_NOCLUSTER;
    }
    bool mounted = p == &cl->client && cl->mnt[0] && cc_mounted(cl->mnt, NULL, 0) > 0;
    if (!cc_proc_alive(p) && !mounted) {
        cc_err("%s is not running", name);
        return CC_EXIT_STATE;
    }
    cc_signals_install();
    uint64_t t0 = ckpt_now_ns();
    pid_t pid = p->pid;
    int rc = 0;
    struct cc_proc *ps[1] = {p};
    if (p == &cl->client) {
        /* Unmount first: the client then flushes and exits by itself. */
        rc = cc_unmount(cl, false);
        uint64_t end = ckpt_now_ns() + (uint64_t)cl->grace_ms * 1000000u;
        while (rc == 0 && cc_proc_alive(p) && ckpt_now_ns() < end)
            cc_sleep_ms(20);
    }
    if (cc_stop(cl, ps, 1, SIGTERM, cl->grace_ms) < 0)
        rc = -EBUSY;
    if (p == &cl->client && cc_unmount(cl, true) < 0)
        rc = -EBUSY;
    if (cc_state_save(cl) < 0)
        rc = rc ? rc : -EIO;
    if (rc < 0)
        return CC_EXIT_FAIL;
    cc_say(cl, "stopped %s (pid %d, %.2f s)", cc_label(p), (int)pid, cc_secs_since(t0));
    return CC_EXIT_OK;
}

/* Wait until every running node is UP (after ckpt-meta started again). */
static int cc_wait_running_up(struct cc_cluster *cl, uint64_t deadline_ns)
{
    struct cc_proc *ps[CC_MAX_NODES];
    int n = 0;
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        if (cc_proc_alive(&cl->nodes[i]))
            ps[n++] = &cl->nodes[i];
    if (n)
        cc_say(cl, "waiting for the %d running node%s to heartbeat to the new ckpt-meta", n,
               n == 1 ? "" : "s");
    return cc_wait_up(cl, ps, n, cl->meta_ready_ns, deadline_ns);
}

static int cmd_start(struct cc_cluster *cl, const char *dir, const char *name)
{
    int status = cc_open_cluster(cl, dir, true);
    if (status != CC_EXIT_OK)
        return status;
    struct cc_proc *p = cc_find_proc(cl, name);
    if (!p) {
        cc_err("%s has no process %s (nodes are node1..node%" PRIu32 ", plus meta and ckptfs)",
               cl->dir, name, cl->n_nodes);
        return CC_EXIT_NOCLUSTER;
    }
    if (p == &cl->client && !cl->mnt[0]) {
        cc_err("this cluster was started with --no-mount");
        return CC_EXIT_STATE;
    }
    if (cc_proc_alive(p)) {
        cc_err("%s is already running (pid %d)", name, (int)p->pid);
        return CC_EXIT_STATE;
    }
    if (p != &cl->meta && !cc_proc_alive(&cl->meta)) {
        cc_err("ckpt-meta is not running; start it first: ckpt-cluster start %s meta", dir);
        return CC_EXIT_STATE;
    }
    if (cc_find_bin(cl, p == &cl->client) < 0)
        return CC_EXIT_FAIL;
    cc_signals_install();
    uint64_t deadline = ckpt_now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
    int rc;
    if (p == &cl->meta) {
        rc = cc_start_meta(cl, cl->meta.port, deadline);
        if (rc == 0)
            rc = cc_wait_running_up(cl, deadline);
    } else if (p == &cl->client) {
        rc = cc_unmount(cl, true); /* the dead mount of a killed client */
        if (rc == 0)
            rc = cc_mount(cl, deadline);
    } else {
        struct cc_proc *ps[1] = {p};
        rc = cc_start_nodes(cl, ps, 1, deadline);
    }
    if (rc < 0) {
        status = cc_fail_status();
        struct cc_proc *ps[1] = {p};
        cc_say(cl, "stopping %s", name);
        cc_signal = 0;
        (void)cc_stop(cl, ps, 1, SIGTERM, cl->grace_ms);
        if (p == &cl->client)
            (void)cc_unmount(cl, true);
        (void)cc_state_save(cl);
        cc_net_close(cl);
        return status;
    }
    cc_net_close(cl);
    cc_say(cl, "%s started (pid %d)", cc_label(p), (int)p->pid);
    return cc_state_save(cl) < 0 ? CC_EXIT_FAIL : CC_EXIT_OK;
}

static int cmd_add(struct cc_cluster *cl, const char *dir, long count)
{
    int status = cc_open_cluster(cl, dir, true);
    if (status != CC_EXIT_OK)
        return status;
    if (!cc_proc_alive(&cl->meta)) {
        cc_err("ckpt-meta is not running; start the cluster first: ckpt-cluster up %s", dir);
        return CC_EXIT_STATE;
    }
    if (cl->n_nodes + (uint64_t)count > CC_MAX_NODES) {
        cc_err("at most %d nodes", CC_MAX_NODES);
        return CC_EXIT_USAGE;
    }
    if (cc_find_bin(cl, false) < 0)
        return CC_EXIT_FAIL;
    uint32_t next = 0;
    for (uint32_t i = 0; i < cl->n_nodes; i++) {
        uint32_t v = (uint32_t)strtoul(cl->nodes[i].name + 4, NULL, 10);
        next = v > next ? v : next;
    }
    struct cc_proc *ps[CC_MAX_NODES];
    for (long i = 0; i < count; i++) {
        struct cc_proc *p = &cl->nodes[cl->n_nodes++];
        char name[CC_NAME_MAX];
        snprintf(name, sizeof(name), "node%" PRIu32, next + 1 + (uint32_t)i);
        cc_proc_init(p, name);
        p->ntargets = cl->targets_per_node;
        ps[i] = p;
    }
    cc_signals_install();
    uint64_t deadline = ckpt_now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
    if (cc_start_nodes(cl, ps, (int)count, deadline) < 0) {
        status = cc_fail_status();
        cc_say(cl, "stopping the new nodes (they stay recorded: 'ckpt-cluster start %s NODE' "
                   "retries one)", dir);
        cc_signal = 0;
        (void)cc_stop(cl, ps, (int)count, SIGTERM, cl->grace_ms);
        (void)cc_state_save(cl);
        cc_net_close(cl);
        return status;
    }
    cc_net_close(cl);
    cc_say(cl, "added %s%s%s; the cluster has %" PRIu32 " nodes", ps[0]->name,
           count > 1 ? ".." : "", count > 1 ? ps[count - 1]->name : "", cl->n_nodes);
    return cc_state_save(cl) < 0 ? CC_EXIT_FAIL : CC_EXIT_OK;
}

static int cmd_restart_meta(struct cc_cluster *cl, const char *dir)
{
    int status = cc_open_cluster(cl, dir, true);
    if (status != CC_EXIT_OK)
        return status;
    if (!cl->meta.port) {
        cc_err("no port recorded for ckpt-meta in %s", cl->state_path);
        return CC_EXIT_FAIL;
    }
    if (cc_find_bin(cl, false) < 0)
        return CC_EXIT_FAIL;
    cc_signals_install();
    uint64_t t0 = ckpt_now_ns();
    struct cc_proc *ps[1] = {&cl->meta};
    if (cc_proc_alive(&cl->meta)) {
        if (cc_stop(cl, ps, 1, SIGTERM, cl->grace_ms) < 0)
            return CC_EXIT_FAIL;
        cc_say(cl, "ckpt-meta stopped (%.2f s)", cc_secs_since(t0));
    }
    uint64_t deadline = ckpt_now_ns() + (uint64_t)cl->timeout_ms * 1000000u;
    int rc = cc_start_meta(cl, cl->meta.port, deadline);
    if (rc == 0)
        rc = cc_wait_running_up(cl, deadline);
    cc_net_close(cl);
    if (rc < 0) {
        status = cc_fail_status();
        cc_signal = 0;
        (void)cc_stop(cl, ps, 1, SIGTERM, cl->grace_ms);
        (void)cc_state_save(cl);
        return status;
    }
    cc_say(cl, "ckpt-meta restarted in %.2f s", cc_secs_since(t0));
    return cc_state_save(cl) < 0 ? CC_EXIT_FAIL : CC_EXIT_OK;
}

/* Print a file (its last `lines` lines when lines > 0) to stdout. */
static int cc_cat(const char *path, long lines)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    long total = 0;
    int c, prev = '\n';
    if (lines > 0) {
        while ((c = getc(f)) != EOF) {
            if (c == '\n')
                total++;
            prev = c;
        }
        if (prev != '\n')
            total++;
        rewind(f);
    }
    long skip = lines > 0 && total > lines ? total - lines : 0;
    char buf[65536];
    size_t n;
    while (skip > 0 && (c = getc(f)) != EOF)
        if (c == '\n')
            skip--;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (fwrite(buf, 1, n, stdout) != n)
            break;
    int rc = ferror(f) ? -EIO : 0;
    fclose(f);
    return rc;
}

static int cc_log_order(const struct dirent **a, const struct dirent **b)
{
    /* meta first, nodes in numeric order, ckptfs last. */
    const char *x = (*a)->d_name, *y = (*b)->d_name;
    int rx = !strncmp(x, "meta.", 5) ? 0 : !strncmp(x, "ckptfs.", 7) ? 2 : 1;
    int ry = !strncmp(y, "meta.", 5) ? 0 : !strncmp(y, "ckptfs.", 7) ? 2 : 1;
    if (rx != ry)
        return rx - ry;
    return versionsort(a, b);
}

static int cc_log_filter(const struct dirent *e)
{
    size_t len = strlen(e->d_name);
    return len > 4 && !strcmp(e->d_name + len - 4, ".log");
}

static int cmd_logs(struct cc_cluster *cl, const char *dir, const char *name, long lines)
{
    int rc = cc_set_dir(cl, dir, false);
    if (rc == -ENOENT) {
        cc_err("%s does not exist", dir);
        return CC_EXIT_NOCLUSTER;
    }
    if (rc < 0)
        return CC_EXIT_FAIL;
    char path[PATH_MAX];
    if (name) {
        if (strcmp(name, "meta") && strcmp(name, "ckptfs") && !cc_valid_node_name(name)) {
            cc_err("%s: not a process name (meta, node1..nodeN, ckptfs)", name);
            return CC_EXIT_NOCLUSTER;
        }
        if (cc_log_path(cl, name, path, sizeof(path)) < 0)
            return CC_EXIT_FAIL;
        rc = cc_cat(path, lines);
        if (rc == -ENOENT) {
            cc_err("no log for %s in %s/logs", name, cl->dir);
            return CC_EXIT_NOCLUSTER;
        }
        if (rc < 0) {
            cc_err("%s: %s", path, strerror(-rc));
            return CC_EXIT_FAIL;
        }
        return CC_EXIT_OK;
    }
    struct dirent **ents = NULL;
    if (cc_path(path, sizeof(path), "%s/logs", cl->dir) < 0)
        return CC_EXIT_FAIL;
    int n = scandir(path, &ents, cc_log_filter, cc_log_order);
    if (n < 0) {
        cc_err("no logs in %s: %s", path, strerror(errno));
        return CC_EXIT_NOCLUSTER;
    }
    int status = CC_EXIT_OK;
    for (int i = 0; i < n; i++) {
        char file[PATH_MAX];
        if (cc_path(file, sizeof(file), "%s/%s", path, ents[i]->d_name) == 0) {
            printf("%s==> %s <==\n", i ? "\n" : "", file);
            fflush(stdout);
            if (cc_cat(file, lines) < 0)
                status = CC_EXIT_FAIL;
        }
        free(ents[i]); /* from scandir() */
    }
    free(ents);
    return status;
}

static int cmd_env(struct cc_cluster *cl, const char *dir)
{
    int rc = cc_set_dir(cl, dir, false);
    if (rc == -ENOENT) {
        cc_err("%s does not exist", dir);
        return CC_EXIT_NOCLUSTER;
    }
    if (rc < 0)
        return CC_EXIT_FAIL;
    if (!cc_file_exists(cl->conf_path)) {
        cc_err("no cluster in %s (no ckptfs.conf)", cl->dir);
        return CC_EXIT_NOCLUSTER;
    }
    /* Quoted for the shell only when needed (' becomes '\''). */
    bool plain = true;
    for (const char *p = cl->conf_path; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%", *p))
            plain = false;
    if (plain) {
        printf("export CKPTFS_CONF=%s\n", cl->conf_path);
        return CC_EXIT_OK;
    }
    fputs("export CKPTFS_CONF='", stdout);
    for (const char *p = cl->conf_path; *p; p++) {
        if (*p == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*p);
    }
    fputs("'\n", stdout);
    return CC_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------ */

enum {
    OPT_NODES = 1000,
    OPT_TPN,
    OPT_EC,
    OPT_CHUNK,
    OPT_MOUNT,
    OPT_NO_MOUNT,
    OPT_TRANSPORT,
    OPT_ADDRS,
    OPT_SET,
    OPT_TIMEOUT,
    OPT_JSON,
};

static int cc_main(struct cc_cluster *cl, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"quiet", no_argument, NULL, 'q'},
        {"nodes", required_argument, NULL, OPT_NODES},
        {"targets-per-node", required_argument, NULL, OPT_TPN},
        {"ec", required_argument, NULL, OPT_EC},
        {"chunk", required_argument, NULL, OPT_CHUNK},
        {"mount", required_argument, NULL, OPT_MOUNT},
        {"no-mount", no_argument, NULL, OPT_NO_MOUNT},
        {"transport", required_argument, NULL, OPT_TRANSPORT},
        {"addrs", required_argument, NULL, OPT_ADDRS},
        {"mount-options", required_argument, NULL, 'o'},
        {"set", required_argument, NULL, OPT_SET},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"lines", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    struct cc_up_opts up;
    memset(&up, 0, sizeof(up));
    bool json = false, timeout_set = false;
    long lines = 0, timeout_s = 0;
    int c;
    /* Which options each command takes (checked after parsing). */
    unsigned seen = 0;
    enum { S_UP = 1u, S_JSON = 2u, S_LINES = 4u, S_TIMEOUT = 8u };

    opterr = 0;
    /* GNU getopt permutes: options may follow COMMAND DIR. */
    while ((c = getopt_long(argc, argv, ":hVqo:n:", lopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cc_usage(stdout);
            return CC_EXIT_OK;
        case 'V':
            printf("ckpt-cluster %s\n", CKPT_VERSION_STRING);
            return CC_EXIT_OK;
        case 'q':
            cl->quiet = true;
            break;
        case OPT_NODES:
            if (cc_parse_uint(optarg, 1, CC_MAX_NODES, &up.nodes) < 0) {
                cc_err("--nodes %s: an integer from 1 to %d", optarg, CC_MAX_NODES);
                return CC_EXIT_USAGE;
            }
            up.nodes_set = true;
            seen |= S_UP;
            break;
        case OPT_TPN:
            if (cc_parse_uint(optarg, 1, CKPT_NODE_MAX_TARGETS, &up.tpn) < 0) {
                cc_err("--targets-per-node %s: an integer from 1 to %d", optarg,
                       CKPT_NODE_MAX_TARGETS);
                return CC_EXIT_USAGE;
            }
            up.tpn_set = true;
            seen |= S_UP;
            break;
        case OPT_EC:
            up.ec = optarg;
            seen |= S_UP;
            break;
        case OPT_CHUNK:
            up.chunk = optarg;
            seen |= S_UP;
            break;
        case OPT_MOUNT:
            up.mount = optarg;
            seen |= S_UP;
            break;
        case OPT_NO_MOUNT:
            up.no_mount = true;
            seen |= S_UP;
            break;
        case OPT_TRANSPORT:
            if (strcmp(optarg, "tcp") && strcmp(optarg, "rdma") && strcmp(optarg, "auto")) {
                cc_err("--transport %s: tcp, rdma or auto", optarg);
                return CC_EXIT_USAGE;
            }
            up.transport = optarg;
            seen |= S_UP;
            break;
        case OPT_ADDRS:
            up.addrs = optarg;
            seen |= S_UP;
            break;
        case 'o':
            up.mount_opts = optarg;
            seen |= S_UP;
            break;
        case OPT_SET:
            if (up.nsets >= CC_MAX_SETS) {
                cc_err("at most %d --set options", CC_MAX_SETS);
                return CC_EXIT_USAGE;
            }
            if (cc_managed_key(optarg)) {
                cc_err("--set %s: ckpt-cluster sets this key itself", optarg);
                return CC_EXIT_USAGE;
            }
            up.sets[up.nsets++] = optarg;
            seen |= S_UP;
            break;
        case OPT_TIMEOUT:
            if (cc_parse_uint(optarg, 1, 3600, &timeout_s) < 0) {
                cc_err("--timeout %s: seconds, from 1 to 3600", optarg);
                return CC_EXIT_USAGE;
            }
            timeout_set = true;
            seen |= S_TIMEOUT;
            break;
        case OPT_JSON:
            json = true;
            seen |= S_JSON;
            break;
        case 'n':
            if (cc_parse_uint(optarg, 1, LONG_MAX, &lines) < 0) {
                cc_err("-n %s: a positive number of lines", optarg);
                return CC_EXIT_USAGE;
            }
            seen |= S_LINES;
            break;
        case ':':
            cc_err("option %s needs a value", argv[optind - 1]);
            return CC_EXIT_USAGE;
        default:
            if (optopt)
                cc_err("unknown option -%c (see ckpt-cluster --help)", optopt);
            else
                cc_err("unknown option %s (see ckpt-cluster --help)", argv[optind - 1]);
            return CC_EXIT_USAGE;
        }
    }
    char **pos = argv + optind;
    int npos = argc - optind;
    if (npos < 1) {
        cc_usage(stderr);
        return CC_EXIT_USAGE;
    }
    const char *cmd = pos[0];
    if (npos < 2) {
        if (!strcmp(cmd, "help")) {
            cc_usage(stdout);
            return CC_EXIT_OK;
        }
        cc_err("%s: missing DIR (see ckpt-cluster --help)", cmd);
        return CC_EXIT_USAGE;
    }
    const char *dir = pos[1];
    cl->timeout_ms = (uint32_t)(timeout_set ? timeout_s : CC_DEFAULT_TIMEOUT_S) * 1000u;
    cl->grace_ms = CC_DEFAULT_GRACE_S * 1000u;

    unsigned allowed;
    int want_pos;
    if (!strcmp(cmd, "up")) {
        allowed = S_UP | S_TIMEOUT;
        want_pos = 2;
    } else if (!strcmp(cmd, "down")) {
        allowed = S_TIMEOUT;
        want_pos = 2;
        if (timeout_set)
            cl->grace_ms = (uint32_t)timeout_s * 1000u;
    } else if (!strcmp(cmd, "status")) {
        allowed = S_JSON;
        want_pos = 2;
    } else if (!strcmp(cmd, "kill")) {
        allowed = 0;
        want_pos = 3;
    } else if (!strcmp(cmd, "stop")) {
        allowed = S_TIMEOUT;
        want_pos = 3;
        if (timeout_set)
            cl->grace_ms = (uint32_t)timeout_s * 1000u;
    } else if (!strcmp(cmd, "start")) {
        allowed = S_TIMEOUT;
        want_pos = 3;
    } else if (!strcmp(cmd, "add")) {
        allowed = S_TIMEOUT;
        want_pos = npos == 3 ? 3 : 2;
    } else if (!strcmp(cmd, "restart-meta")) {
        allowed = S_TIMEOUT;
        want_pos = 2;
    } else if (!strcmp(cmd, "logs")) {
        allowed = S_LINES;
        want_pos = npos == 3 ? 3 : 2;
    } else if (!strcmp(cmd, "env")) {
        allowed = 0;
        want_pos = 2;
    } else {
        cc_err("unknown command '%s' (see ckpt-cluster --help)", cmd);
        return CC_EXIT_USAGE;
    }
    if (seen & ~allowed) {
        cc_err("%s: option not accepted by this command (see ckpt-cluster --help)", cmd);
        return CC_EXIT_USAGE;
    }
    if (npos != want_pos) {
        cc_err("%s: %s (see ckpt-cluster --help)", cmd,
               npos < want_pos ? "missing NODE" : "too many arguments");
        return CC_EXIT_USAGE;
    }
    if (up.no_mount && (up.mount || up.mount_opts)) {
        cc_err("--no-mount conflicts with --mount and --mount-options");
        return CC_EXIT_USAGE;
    }

    if (!strcmp(cmd, "up"))
        return cmd_up(cl, dir, &up);
    if (!strcmp(cmd, "down"))
        return cmd_down(cl, dir);
    if (!strcmp(cmd, "status"))
        return cmd_status(cl, dir, json);
    if (!strcmp(cmd, "kill"))
        return cmd_kill(cl, dir, pos[2]);
    if (!strcmp(cmd, "stop"))
        return cmd_stop(cl, dir, pos[2]);
    if (!strcmp(cmd, "start"))
        return cmd_start(cl, dir, pos[2]);
    if (!strcmp(cmd, "add")) {
        long count = 1;
        if (npos == 3 && cc_parse_uint(pos[2], 1, CC_MAX_NODES, &count) < 0) {
            cc_err("add: N must be an integer from 1 to %d", CC_MAX_NODES);
            return CC_EXIT_USAGE;
        }
        return cmd_add(cl, dir, count);
    }
    if (!strcmp(cmd, "restart-meta"))
        return cmd_restart_meta(cl, dir);
    if (!strcmp(cmd, "logs"))
        return cmd_logs(cl, dir, npos == 3 ? pos[2] : NULL, lines);
    return cmd_env(cl, dir);
}

int main(int argc, char **argv)
{
    /* lib/ code (net) logs through CKPT_LOG: warnings and errors only. */
    ckpt_log_init("ckpt-cluster", CKPT_LOG_LVL_WARN);
    struct cc_cluster *cl = ckpt_calloc(1, sizeof(*cl));
    if (!cl) {
        fprintf(stderr, "ckpt-cluster: out of memory\n");
        return CC_EXIT_FAIL;
    }
    cl->lock_fd = -1;
    cc_proc_init(&cl->meta, "meta");
    cc_proc_init(&cl->client, "ckptfs");
    ckpt_config_init(&cl->cfg);
    int status = cc_main(cl, argc, argv);
    cc_net_close(cl);
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i].ready_fd >= 0)
            close(cl->nodes[i].ready_fd);
    if (cl->lock_fd >= 0)
        close(cl->lock_fd);
    ckpt_config_free(&cl->cfg);
    ckpt_free(cl);
    fflush(stdout);
    return status;
}

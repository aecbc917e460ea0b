/*
 * ckpt - checkpoint commit, list, restore and verify for training jobs.
 *
 * DESIGN
 *   One file, thin: it finds the cluster (-c FILE, $CKPTFS_CONF, then
 *   /etc/ckptfs/ckptfs.conf), connects to ckpt-meta (lib/mclient.h for
 *   LOOKUP, lib/cclient.h for the checkpoint messages), and resolves a
 *   PATH: when it is inside a FUSE mount (/proc/self/mountinfo, longest
 *   matching mount point of type fuse*), its components below the mount
 *   root are looked up from the root inode; any other absolute path is
 *   taken as a path inside the ckptfs namespace.  Data is always read and
 *   written through the mount (restore, verify, prune, wait), so the FUSE
 *   client's degraded reads and parity repair apply.
 *
 *   restore/verify run --jobs worker threads over the manifest: each file
 *   is read in 4 MiB blocks, its crc32c and size compared with the
 *   manifest, and (--to) written below LOCALDIR.  Progress: a rewritten
 *   line with rate and ETA on a terminal, one line per file otherwise.
 *
 *   Exit codes: 0 ok; 1 error; 2 usage; 3 no checkpoint (latest/restore);
 *   4 timeout (commit); 5 not protected (commit of a DEGRADED or LOST
 *   checkpoint); 6 verification failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "cclient.h"
#include "config.h"
#include "crc.h"
#include "err.h"
#include "log.h"
#include "mclient.h"
#include "msg_ckpt.h"
#include "version.h"

#define EX_OK 0
#define EX_ERR 1
#define EX_USAGE 2
#define EX_NONE 3
#define EX_TIMEOUT 4
#define EX_UNPROT 5
#define EX_VERIFY 6

#define IO_BLOCK (4u << 20)

struct ctx {
    const char *conf;
    const char *sets[64];
    int nsets;
    struct ckpt_config cfg;
    ckpt_net *net;
    ckpt_mclient *mc;
    ckpt_cclient *cc;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ckpt [GLOBAL OPTIONS] COMMAND [ARGS]\n"
        "  ckpt commit PATH [--timeout S] [--allow-degraded]\n"
        "  ckpt list JOB [--json]\n"
        "  ckpt latest JOB\n"
        "  ckpt status PATH [--json]\n"
        "  ckpt restore JOB|PATH [--latest] [--verify] [--to LOCALDIR] [--jobs N]\n"
        "  ckpt verify PATH [--jobs N]\n"
        "  ckpt wait PATH\n"
        "  ckpt prune JOB --keep N [--min-age S] [--dry-run]\n"
        "  ckpt plan --size BYTES --nodes N [--mtbf-hours H] [--write-gbps G]\n"
        "global options: -c FILE, --set SECTION.KEY=VALUE, --log-level L, --log-file F,\n"
        "                -h/--help, -V/--version\n"
        "exit codes: 0 ok, 1 error, 2 usage, 3 no checkpoint, 4 timeout,\n"
        "            5 not protected, 6 verification failed\n");
}

/* ---- connection -------------------------------------------------------------------------- */

static int ctx_connect(struct ctx *c)
{
    char err[512];
    int rc;
    ckpt_config_init(&c->cfg);
    const char *conf = c->conf ? c->conf : getenv("CKPTFS_CONF");
    bool explicit_conf = conf && *conf;
    if (!explicit_conf)
        conf = CKPT_CONFIG_DEFAULT_PATH;
    rc = ckpt_config_load(&c->cfg, conf, err, sizeof(err));
    if (rc == -ENOENT && !explicit_conf) {
        rc = 0; /* built-in defaults */
    } else if (rc < 0) {
        fprintf(stderr, "ckpt: %s\n", err[0] ? err : ckpt_strerror(rc));
        return rc;
    }
    for (int i = 0; i < c->nsets; i++)
        if (ckpt_config_set_arg(&c->cfg, c->sets[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "ckpt: %s\n", err);
            return CKPT_E_CONFIG;
        }
    if (ckpt_config_check(&c->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "ckpt: %s\n", err);
        return CKPT_E_CONFIG;
    }
    if (!c->cfg.cluster.meta.host[0]) {
        fprintf(stderr, "ckpt: no ckpt-meta address: set [cluster] meta in %s or use -c\n",
                conf);
        return -EINVAL;
    }
    struct ckpt_net_opts no;
    memset(&no, 0, sizeof(no));
    bool too_open = false;
    rc = ckpt_auth_key_load(c->cfg.cluster.key_file, no.key, &too_open);
    if (rc < 0) {
        fprintf(stderr, "ckpt: cannot load the cluster key %s: %s\n", c->cfg.cluster.key_file,
                ckpt_strerror(rc));
        return rc;
    }
    if (too_open)
        fprintf(stderr, "ckpt: warning: %s is readable by group or others\n",
                c->cfg.cluster.key_file);
    no.name = "ckpt";
    no.transport = CKPT_TRANSPORT_TCP;
    rc = ckpt_net_create(&no, &c->net);
    if (rc == 0)
        rc = ckpt_cclient_create(c->net, c->cfg.cluster.meta.host, c->cfg.cluster.meta.port,
                                 &c->cc);
    if (rc == 0) {
        struct ckpt_mclient_opts mo;
        char name[CKPT_CLIENT_NAME_MAX + 1];
        char host[64] = "?";
        gethostname(host, sizeof(host) - 1);
        snprintf(name, sizeof(name), "ckpt@%.40s:%d", host, (int)getpid());
        memset(&mo, 0, sizeof(mo));
        mo.host = c->cfg.cluster.meta.host;
        mo.port = c->cfg.cluster.meta.port;
        mo.name = name;
        mo.retry_ms = 10000;
        rc = ckpt_mclient_create(c->net, &mo, &c->mc);
    }
    if (rc < 0)
        fprintf(stderr, "ckpt: cannot reach ckpt-meta at %s:%u: %s\n", c->cfg.cluster.meta.host,
                c->cfg.cluster.meta.port, ckpt_strerror(rc));
    return rc;
}

static void ctx_close(struct ctx *c)
{
    ckpt_mclient_destroy(c->mc);
    ckpt_cclient_destroy(c->cc);
    ckpt_net_destroy(c->net);
    ckpt_config_free(&c->cfg);
}

/* ---- paths ---------------------------------------------------------------------------------- */

/* Undo the octal escapes of /proc/self/mountinfo in place. */
static void unescape(char *s)
{
    char *d = s;
    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
            *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *d++ = *s++;
        }
    }
    *d = '\0';
}

/* The FUSE mount point holding abs (longest prefix), or "" when none. */
static void find_mount(const char *abs, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    size_t best = 0;
    out[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char mp[PATH_MAX], fstype[128];
        const char *sep = strstr(line, " - ");
        if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
            sscanf(sep + 3, "%127s", fstype) != 1)
            continue;
        if (strncmp(fstype, "fuse", 4) != 0)
            continue;
        unescape(mp);
        size_t n = strlen(mp);
        bool under = !strcmp(mp, "/") ||
                     (!strncmp(abs, mp, n) && (abs[n] == '\0' || abs[n] == '/'));
        if (under && n > best && n < cap) {
            best = n;
            snprintf(out, cap, "%s", mp);
        }
    }
    fclose(f);
}

struct rpath {
    char local[PATH_MAX];  /* path through the mount ("" when not mounted) */
    char ns[PATH_MAX];     /* path in the ckptfs namespace, "/" based */
    uint64_t ino;
    char name[CKPT_PROTO_MAX_NAME + 1];
};

static int resolve(struct ctx *c, const char *path, struct rpath *out)
{
    char abs[PATH_MAX], mnt[PATH_MAX];
    memset(out, 0, sizeof(*out));
    if (realpath(path, abs)) {
        find_mount(abs, mnt, sizeof(mnt));
        if (mnt[0]) {
            snprintf(out->local, sizeof(out->local), "%s", abs);
            const char *rest = abs + strlen(mnt);
            snprintf(out->ns, sizeof(out->ns), "%s", *rest ? rest : "/");
            if (!strcmp(mnt, "/"))
                snprintf(out->ns, sizeof(out->ns), "%s", abs);
        }
    }
    if (!out->ns[0]) {
        if (path[0] != '/') {
            fprintf(stderr, "ckpt: %s: not inside a ckptfs mount (give a mounted path, or an "
                            "absolute path in the ckptfs namespace)\n", path);
            return -ENOENT;
        }
        snprintf(out->ns, sizeof(out->ns), "%s", path);
    }
    uint64_t ino = CKPT_ROOT_INO;
    char tmp[PATH_MAX], *save = NULL;
    snprintf(tmp, sizeof(tmp), "%s", out->ns);
    snprintf(out->name, sizeof(out->name), "/");
    for (char *tok = strtok_r(tmp, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        struct ckpt_attr a;
        if (!strcmp(tok, "."))
            continue;
        int rc = ckpt_mclient_lookup(c->mc, ino, tok, &a);
        if (rc < 0) {
            fprintf(stderr, "ckpt: %s: %s\n", path, ckpt_strerror(rc));
            return rc;
        }
        ino = a.ino;
        snprintf(out->name, sizeof(out->name), "%s", tok);
    }
    out->ino = ino;
    return 0;
}

/* ---- output helpers ------------------------------------------------------------------------- */

static void fmt_time(int64_t t, char *out, size_t cap)
{
    if (t <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_bytes(uint64_t b, char *out, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void info_json(const struct ckpt_ckpt_info *i)
{
    printf("{\"name\":");
    json_str(i->name);
    printf(",\"ino\":%llu,\"state\":\"%s\",\"health\":\"%s\",\"files\":%llu,\"bytes\":%llu,"
           "\"written_at\":%lld,\"committed_at\":%lld,\"degraded_stripes\":%u,"
           "\"lost_stripes\":%u}",
           (unsigned long long)i->ino, ckpt_ckpt_state_name(i->state),
           ckpt_ckpt_health_name(i->health), (unsigned long long)i->files,
           (unsigned long long)i->bytes, (long long)i->written_at, (long long)i->committed_at,
           i->degraded_stripes, i->lost_stripes);
}

/* ---- subcommands ------------------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

static int cmd_commit(struct ctx *c, const char *path, uint64_t timeout_s, bool allow_degraded)
{
    struct rpath rp;
    struct ckpt_ckpt_info info;
    if (resolve(c, path, &rp) < 0)
        return EX_ERR;
    uint64_t ms = timeout_s * 1000;
    int rc = ckpt_cclient_commit(c->cc, rp.ino, ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms,
                                 allow_degraded ? CKPT_COMMIT_F_ALLOW_DEGRADED : 0, &info);
    if (rc == 0) {
        char b[32];
        fmt_bytes(info.bytes, b, sizeof(b));
        printf("committed %s: %llu files, %s, %s\n", path, (unsigned long long)info.files, b,
               ckpt_ckpt_health_name(info.health));
        return EX_OK;
    }
    switch (rc) {
    case -ETIMEDOUT:
        fprintf(stderr, "ckpt: commit %s: timed out: files are still open for writing\n", path);
        return EX_TIMEOUT;
    case CKPT_E_CLUSTER:
        fprintf(stderr, "ckpt: commit %s: not fully protected (stripes miss chunks on nodes "
                        "that are down) and not rebuilt before the timeout; use "
                        "--allow-degraded to commit anyway\n", path);
        return EX_UNPROT;
    case CKPT_E_UNRECOV:
        fprintf(stderr, "ckpt: commit %s: LOST: some stripe misses more chunks than parity "
                        "can rebuild\n", path);
        return EX_UNPROT;
    case -EAGAIN:
        fprintf(stderr, "ckpt: commit %s: files changed while committing; run it again\n", path);
        return EX_ERR;
    case -EBUSY:
        fprintf(stderr, "ckpt: commit %s: another commit of it is running\n", path);
        return EX_ERR;
    case -EIO:
        fprintf(stderr, "ckpt: commit %s: a storage node failed to sync its data\n", path);
        return EX_ERR;
    default:
        fprintf(stderr, "ckpt: commit %s: %s\n", path, ckpt_strerror(rc));
        return EX_ERR;
    }
}

static int cmd_list(struct ctx *c, const char *job, bool json)
{
    struct rpath rp;
    struct ckpt_msg_ckpt_list_resp l;
    if (resolve(c, job, &rp) < 0)
        return EX_ERR;
    int rc = ckpt_cclient_list(c->cc, rp.ino, &l);
    if (rc < 0) {
        fprintf(stderr, "ckpt: list %s: %s\n", job, ckpt_strerror(rc));
        return EX_ERR;
    }
    if (json) {
        printf("[");
        for (uint32_t i = 0; i < l.n; i++) {
            if (i)
                printf(",");
            info_json(&l.v[i]);
        }
        printf("]\n");
    } else {
        printf("%-24s %-9s %-9s %8s %10s  %-19s  %-19s\n", "NAME", "STATE", "HEALTH", "FILES",
               "BYTES", "WRITTEN", "COMMITTED");
        for (uint32_t i = 0; i < l.n; i++) {
            char b[32], w[32], t[32];
            fmt_bytes(l.v[i].bytes, b, sizeof(b));
            fmt_time(l.v[i].written_at, w, sizeof(w));
            fmt_time(l.v[i].committed_at, t, sizeof(t));
            printf("%-24s %-9s %-9s %8llu %10s  %-19s  %-19s\n", l.v[i].name,
                   ckpt_ckpt_state_name(l.v[i].state), ckpt_ckpt_health_name(l.v[i].health),
                   (unsigned long long)l.v[i].files, b, w, t);
        }
    }
    ckpt_msg_ckpt_list_resp_free(&l);
    return EX_OK;
}

/* The newest COMMITTED, readable checkpoint of job.  @return 0, 1 none, <0. */
static int pick_latest(struct ctx *c, const struct rpath *job, struct ckpt_ckpt_info *out)
{
    struct ckpt_msg_ckpt_list_resp l;
    int rc = ckpt_cclient_list(c->cc, job->ino, &l);
    if (rc < 0)
        return rc;
    rc = 1;
    for (uint32_t i = 0; i < l.n; i++)
        if (l.v[i].state == CKPT_CKPT_COMMITTED && l.v[i].health != CKPT_HEALTH_LOST) {
            *out = l.v[i];
            rc = 0;
            break;
        }
    ckpt_msg_ckpt_list_resp_free(&l);
    return rc;
}

static void join_path(char *out, size_t cap, const char *a, const char *b)
{
    size_t n = strlen(a);
    snprintf(out, cap, "%s%s%s", a, n && a[n - 1] == '/' ? "" : "/", b);
}

static int cmd_latest(struct ctx *c, const char *job)
{
    struct rpath rp;
    struct ckpt_ckpt_info info;
    if (resolve(c, job, &rp) < 0)
        return EX_ERR;
    int rc = pick_latest(c, &rp, &info);
    if (rc < 0) {
        fprintf(stderr, "ckpt: latest %s: %s\n", job, ckpt_strerror(rc));
        return EX_ERR;
    }
    if (rc > 0) {
        fprintf(stderr, "ckpt: %s: no committed, readable checkpoint\n", job);
        return EX_NONE;
    }
    char out[PATH_MAX * 2];
    join_path(out, sizeof(out), rp.local[0] ? rp.local : rp.ns, info.name);
    printf("%s\n", out);
    return EX_OK;
}

static int cmd_status(struct ctx *c, const char *path, bool json)
{
    struct rpath rp;
    struct ckpt_ckpt_info i;
    if (resolve(c, path, &rp) < 0)
        return EX_ERR;
    int rc = ckpt_cclient_info(c->cc, rp.ino, &i);
    if (rc < 0) {
        fprintf(stderr, "ckpt: status %s: %s\n", path, ckpt_strerror(rc));
        return EX_ERR;
    }
    if (json) {
        info_json(&i);
        printf("\n");
        return EX_OK;
    }
    char b[32], w[32], t[32];
    fmt_bytes(i.bytes, b, sizeof(b));
    fmt_time(i.written_at, w, sizeof(w));
    fmt_time(i.committed_at, t, sizeof(t));
    printf("checkpoint: %s\nstate:      %s\nhealth:     %s\nfiles:      %llu\nbytes:      %s\n"
           "written:    %s\ncommitted:  %s\n", path, ckpt_ckpt_state_name(i.state),
           ckpt_ckpt_health_name(i.health), (unsigned long long)i.files, b, w, t);
    if (i.degraded_stripes || i.lost_stripes)
        printf("stripes:    %u degraded, %u lost\n", i.degraded_stripes, i.lost_stripes);
    return EX_OK;
}

/* ---- restore / verify ------------------------------------------------------------------------ */

struct rjob {
    struct ckpt_manifest_ent *v;
    size_t n;
    const char *src;          /* checkpoint path through the mount */
    const char *to;           /* NULL: verify only */
    bool verify;
    atomic_size_t next;
    atomic_uint_fast64_t done_bytes;
    atomic_size_t done_files, bad;
    uint64_t total_bytes;
    bool tty;
    pthread_mutex_t out_lock;
};

static int mkdirs_for(const char *file)
{
    char tmp[PATH_MAX * 2];
    snprintf(tmp, sizeof(tmp), "%s", file);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

static int copy_one(struct rjob *j, const struct ckpt_manifest_ent *e, uint8_t *buf,
                    char *why, size_t why_cap)
{
    char src[PATH_MAX * 2], dst[PATH_MAX * 2];
    int in = -1, out = -1, rc = 0;
    uint32_t crc = 0;
    uint64_t total = 0;

    join_path(src, sizeof(src), j->src, e->path);
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = -errno;
        snprintf(why, why_cap, "open: %s", strerror(-rc));
        goto out;
    }
    if (j->to) {
        join_path(dst, sizeof(dst), j->to, e->path);
        rc = mkdirs_for(dst);
        if (rc == 0 && (out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
            rc = -errno;
        if (rc < 0) {
            snprintf(why, why_cap, "create: %s", strerror(-rc));
            goto out;
        }
    }
    for (;;) {
        ssize_t r = read(in, buf, IO_BLOCK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            snprintf(why, why_cap, "read at %llu: %s", (unsigned long long)total, strerror(-rc));
            goto out;
        }
        if (r == 0)
            break;
        crc = ckpt_crc32c(crc, buf, (size_t)r);
        total += (uint64_t)r;
        atomic_fetch_add(&j->done_bytes, (uint64_t)r);
        for (ssize_t off = 0; out >= 0 && off < r;) {
            ssize_t wr = write(out, buf + off, (size_t)(r - off));
            if (wr < 0 && errno == EINTR)
                continue;
            if (wr < 0) {
                rc = -errno;
                snprintf(why, why_cap, "write: %s", strerror(-rc));
                goto out;
            }
            off += wr;
        }
    }
    if (total != e->size) {
        rc = -EIO;
        snprintf(why, why_cap, "size %llu, manifest says %llu", (unsigned long long)total,
                 (unsigned long long)e->size);
    } else if (j->verify && e->has_checksum && crc != e->checksum) {
        rc = CKPT_E_CRC;
        snprintf(why, why_cap, "crc32c %08x, manifest says %08x", crc, e->checksum);
    }
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) < 0 && rc == 0) {
        rc = -errno;
        snprintf(why, why_cap, "close: %s", strerror(-rc));
    }
    return rc;
}

static void *rjob_main(void *arg)
{
    struct rjob *j = arg;
    uint8_t *buf = ckpt_malloc(IO_BLOCK);
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n)
            break;
        char why[PATH_MAX + 128] = "";
        int rc = buf ? copy_one(j, &j->v[i], buf, why, sizeof(why)) : -ENOMEM;
        if (!buf)
            snprintf(why, sizeof(why), "out of memory");
        atomic_fetch_add(&j->done_files, 1);
        pthread_mutex_lock(&j->out_lock);
        if (rc < 0) {
            atomic_fetch_add(&j->bad, 1);
            fprintf(stderr, "%sFAIL %s: %s\n", j->tty ? "\r\033[K" : "", j->v[i].path, why);
        } else if (!j->tty) {
            printf("ok %s %llu bytes%s\n", j->v[i].path, (unsigned long long)j->v[i].size,
                   j->verify && j->v[i].has_checksum ? " crc32c ok" : "");
        }
        pthread_mutex_unlock(&j->out_lock);
    }
    ckpt_free(buf);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read (and copy) every manifest file of checkpoint ino at local path src. */
static int run_restore(struct ctx *c, uint64_t ino, const char *src, const char *to,
                       bool verify, unsigned jobs)
{
    struct rjob j;
    uint64_t cookie = 0;
    int rc, ex = EX_OK;

    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.out_lock, NULL);
    for (;;) {
        struct ckpt_msg_manifest_resp r;
        rc = ckpt_cclient_manifest(c->cc, ino, cookie, CKPT_MANIFEST_MAX, &r);
        if (rc < 0) {
            fprintf(stderr, "ckpt: %s: manifest: %s\n", src,
                    rc == -ENOENT ? "not a committed checkpoint" : ckpt_strerror(rc));
            ex = rc == -ENOENT ? EX_NONE : EX_ERR;
            goto out;
        }
        struct ckpt_manifest_ent *nv = ckpt_realloc(j.v, (j.n + r.n + 1) * sizeof(*nv));
        if (!nv) {
            ckpt_msg_manifest_resp_free(&r);
            fprintf(stderr, "ckpt: out of memory\n");
            ex = EX_ERR;
            goto out;
        }
        j.v = nv;
        for (uint32_t i = 0; i < r.n; i++) {
            j.v[j.n++] = r.v[i];
            j.total_bytes += r.v[i].size;
            cookie = r.v[i].seq;
        }
        bool eof = r.eof || r.n == 0;
        ckpt_msg_manifest_resp_free(&r);
        if (eof)
            break;
    }
    j.src = src;
    j.to = to;
    j.verify = verify;
    j.tty = isatty(STDERR_FILENO);
    if (to && mkdir(to, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "ckpt: %s: %s\n", to, strerror(errno));
        ex = EX_ERR;
        goto out;
    }
    if (jobs < 1)
        jobs = 1;
    if (jobs > 64)
        jobs = 64;
    pthread_t th[64];
    unsigned started = 0;
    double t0 = now_s();
    for (unsigned i = 0; i < jobs; i++) {
        if (pthread_create(&th[i], NULL, rjob_main, &j) != 0)
            break;
        started++;
    }
    if (!started)
        rjob_main(&j);
    while (j.tty && atomic_load(&j.done_files) < j.n) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        double el = now_s() - t0;
        uint64_t done = atomic_load(&j.done_bytes);
        double rate = el > 0 ? (double)done / el : 0;
        double eta = rate > 0 ? (double)(j.total_bytes - (done < j.total_bytes ? done :
                                                          j.total_bytes)) / rate : 0;
        pthread_mutex_lock(&j.out_lock);
        fprintf(stderr, "\r\033[K%zu/%zu files  %.1f%%  %.1f MiB/s  ETA %.0f s",
                atomic_load(&j.done_files), j.n,
                j.total_bytes ? 100.0 * (double)done / (double)j.total_bytes : 100.0,
                rate / 1048576.0, eta);
        pthread_mutex_unlock(&j.out_lock);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double el = now_s() - t0;
    if (j.tty)
        fprintf(stderr, "\r\033[K");
    char b[32];
    fmt_bytes(j.total_bytes, b, sizeof(b));
    size_t bad = atomic_load(&j.bad);
    printf("%s %s: %zu files, %s in %.1f s (%.1f MiB/s)%s: %s\n",
           to ? "restored" : "verified", src, j.n, b, el,
           el > 0 ? (double)j.total_bytes / el / 1048576.0 : 0.0, to ? (verify ? ", verified" : "")
                                                                       : "",
           bad ? "FAILED" : "ok");
    if (bad) {
        fprintf(stderr, "ckpt: %zu file(s) failed verification\n", bad);
        ex = EX_VERIFY;
    }
out:
    ckpt_free(j.v);
    pthread_mutex_destroy(&j.out_lock);
    return ex;
}

static int cmd_restore(struct ctx *c, const char *path, bool latest, bool verify, const char *to,
                       unsigned jobs)
{
    struct rpath rp;
    struct ckpt_ckpt_info info;
    char src[PATH_MAX * 2];
    uint64_t ino;
    int rc;

    if (resolve(c, path, &rp) < 0)
        return EX_ERR;
    if (!rp.local[0]) {
        fprintf(stderr, "ckpt: %s: restore and verify read through a ckptfs mount; give a "
                        "path inside one\n", path);
        return EX_ERR;
    }
    rc = ckpt_cclient_info(c->cc, rp.ino, &info);
    if (rc == 0 && info.state == CKPT_CKPT_COMMITTED && !latest) {
        ino = rp.ino;
        snprintf(src, sizeof(src), "%s", rp.local);
        if (info.health == CKPT_HEALTH_LOST) {
            fprintf(stderr, "ckpt: %s is LOST (not readable)\n", path);
            return EX_NONE;
        }
    } else {
        rc = pick_latest(c, &rp, &info);
        if (rc < 0) {
            fprintf(stderr, "ckpt: %s: %s\n", path, ckpt_strerror(rc));
            return EX_ERR;
        }
        if (rc > 0) {
            fprintf(stderr, "ckpt: %s: no committed, readable checkpoint\n", path);
            return EX_NONE;
        }
        ino = info.ino;
        join_path(src, sizeof(src), rp.local, info.name);
    }
    if (!to && !verify)
        verify = true; /* restoring nowhere: at least read it all */
    fprintf(stderr, "ckpt: %s %s (%s)\n", to ? "restoring" : "verifying", src,
            ckpt_ckpt_health_name(info.health));
    return run_restore(c, ino, src, to, verify, jobs);
}

/* ---- wait / prune ---------------------------------------------------------------------------- */

static int wait_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(sb->st_mode))
        return 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* gone meanwhile */
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "ckpt: wait: %s: %s\n", p, strerror(e));
        return 1;
    }
    return 0;
}

static int cmd_wait(struct ctx *c, const char *path)
{
    struct rpath rp;
    if (resolve(c, path, &rp) < 0)
        return EX_ERR;
    if (!rp.local[0]) {
        fprintf(stderr, "ckpt: %s: wait needs a path inside a ckptfs mount\n", path);
        return EX_ERR;
    }
    if (nftw(rp.local, wait_cb, 32, FTW_PHYS) != 0)
        return EX_ERR;
    printf("flushed %s\n", path);
    return EX_OK;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(p) : unlink(p);
    if (rc < 0 && errno != ENOENT) {
        fprintf(stderr, "ckpt: prune: %s: %s\n", p, strerror(errno));
        return 1;
    }
    return 0;
}

static int cmd_prune(struct ctx *c, const char *job, uint64_t keep, uint64_t min_age, bool dry)
{
    struct rpath rp;
    struct ckpt_msg_ckpt_list_resp l;
    int ex = EX_OK;
    if (resolve(c, job, &rp) < 0)
        return EX_ERR;
    if (!rp.local[0] && !dry) {
        fprintf(stderr, "ckpt: %s: prune removes through a ckptfs mount; give a path inside "
                        "one\n", job);
        return EX_ERR;
    }
    int rc = ckpt_cclient_list(c->cc, rp.ino, &l);
    if (rc < 0) {
        fprintf(stderr, "ckpt: prune %s: %s\n", job, ckpt_strerror(rc));
        return EX_ERR;
    }
    if (keep < 1)
        keep = 1; /* never the newest COMMITTED one */
    uint64_t kept = 0;
    bool newest_committed_seen = false;
    time_t now = time(NULL);
    for (uint32_t i = 0; i < l.n; i++) {
        const struct ckpt_ckpt_info *x = &l.v[i];
        bool del;
        if (x->state == CKPT_CKPT_COMMITTED) {
            del = newest_committed_seen && kept >= keep;
            newest_committed_seen = true;
            if (!del)
                kept++;
        } else {
            /* WRITING: abandoned once older than min_age and older than a
             * committed checkpoint (one being written now is newer). */
            del = newest_committed_seen && now - x->written_at >= (time_t)min_age;
        }
        if (!del) {
            printf("keep   %s (%s)\n", x->name, ckpt_ckpt_state_name(x->state));
            continue;
        }
        printf("%s %s (%s)\n", dry ? "would remove" : "remove", x->name,
               ckpt_ckpt_state_name(x->state));
        if (dry)
            continue;
        char p[PATH_MAX * 2];
        join_path(p, sizeof(p), rp.local, x->name);
        if (nftw(p, rm_cb, 32, FTW_DEPTH | FTW_PHYS) != 0)
            ex = EX_ERR;
    }
    ckpt_msg_ckpt_list_resp_free(&l);
    return ex;
}

/* ---- plan -------------------------------------------------------------------------------------- */

static int cmd_plan(double size, double nodes, double mtbf_h, double gbps)
{
    if (size <= 0 || nodes < 1 || mtbf_h <= 0 || gbps <= 0) {
        fprintf(stderr, "ckpt: plan: --size and --nodes are required and positive\n");
        return EX_USAGE;
    }
    double bw = gbps * 1e9 * nodes;                 /* bytes/s, aggregate */
    double C = size / bw;                           /* checkpoint cost, s */
    double M = mtbf_h * 3600.0 / nodes;             /* system MTBF, s */
    double tau = C < 2 * M ? sqrt(2 * C * M) * (1 + sqrt(C / (2 * M)) / 3 + C / (9 * 2 * M)) - C
                           : M;                     /* Daly (2006) */
    double young = sqrt(2 * C * M);
    double overhead = C / (tau + C) + (tau + C) / (2 * M); /* first-order waste */
    printf("checkpoint size:     %.3g bytes\n", size);
    printf("write time C:        %.2f s (%.0f nodes x %.2f GB/s)\n", C, nodes, gbps);
    printf("system MTBF M:       %.0f s (%.2f h; %.0f h per node)\n", M, M / 3600, mtbf_h);
    printf("Young interval:      %.0f s (sqrt(2*C*M))\n", young);
    printf("Daly interval:       %.0f s (%.1f min)\n", tau, tau / 60);
    printf("expected overhead:   %.2f%% of run time (C/(tau+C) + (tau+C)/(2M))\n",
           100 * (overhead < 1 ? overhead : 1));
    return EX_OK;
}

/* ---- main ---------------------------------------------------------------------------------------- */

static int sub_help(const char *cmd)
{
    printf("see `ckpt --help` and ckpt(1) for `ckpt %s`\n", cmd);
    usage(stdout);
    return EX_OK;
}

int main(int argc, char **argv)
{
    struct ctx c;
    int i = 1;
    memset(&c, 0, sizeof(c));
    ckpt_log_init("ckpt", CKPT_LOG_LVL_WARN);
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return EX_OK;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("ckpt %s\n", CKPT_VERSION_STRING);
            return EX_OK;
        } else if (!strcmp(a, "-c") && i + 1 < argc) {
            c.conf = argv[++i];
        } else if (!strcmp(a, "--set") && i + 1 < argc && c.nsets < 64) {
            c.sets[c.nsets++] = argv[++i];
        } else if (!strcmp(a, "--log-level") && i + 1 < argc) {
            int lv = ckpt_log_level_parse(argv[++i]);
            if (lv < 0) {
                fprintf(stderr, "ckpt: bad log level %s\n", argv[i]);
                return EX_USAGE;
            }
            ckpt_log_init(NULL, lv);
        } else if (!strcmp(a, "--log-file") && i + 1 < argc) {
            if (ckpt_log_set_file(argv[++i]) < 0) {
                fprintf(stderr, "ckpt: cannot open log file %s\n", argv[i]);
                return EX_ERR;
            }
        } else {
            fprintf(stderr, "ckpt: unknown option %s\n", a);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[i++];
    const char *pos = NULL;
    uint64_t timeout_s = 600, keep = 0, min_age = 3600, jobs = 8;
    bool allow_degraded = false, json = false, latest = false, verify = false, dry = false;
    bool have_keep = false;
    const char *to = NULL;
    double size = 0, nodes = 0, mtbf = 26280, gbps = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return sub_help(cmd);
        if (!strcmp(a, "--allow-degraded")) {
            allow_degraded = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--latest")) {
            latest = true;
        } else if (!strcmp(a, "--verify")) {
            verify = true;
        } else if (!strcmp(a, "--dry-run")) {
            dry = true;
        } else if (!strcmp(a, "--to") && v) {
            to = v;
            i++;
        } else if ((!strcmp(a, "--timeout") || !strcmp(a, "--keep") || !strcmp(a, "--jobs") ||
                    !strcmp(a, "--min-age")) && v) {
            if (parse_u64(v, &u) < 0) {
                fprintf(stderr, "ckpt: %s: not a number: %s\n", a, v);
                return EX_USAGE;
            }
            if (!strcmp(a, "--timeout"))
                timeout_s = u;
            else if (!strcmp(a, "--keep"))
                keep = u, have_keep = true;
            else if (!strcmp(a, "--jobs"))
                jobs = u;
            else
                min_age = u;
            i++;
        } else if ((!strcmp(a, "--size") || !strcmp(a, "--nodes") ||
                    !strcmp(a, "--mtbf-hours") || !strcmp(a, "--write-gbps")) && v) {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || d <= 0) {
                fprintf(stderr, "ckpt: %s: not a positive number: %s\n", a, v);
                return EX_USAGE;
            }
            if (!strcmp(a, "--size"))
                size = d;
            else if (!strcmp(a, "--nodes"))
                nodes = d;
            else if (!strcmp(a, "--mtbf-hours"))
                mtbf = d;
            else
                gbps = d;
            i++;
        } else if (a[0] == '-' || pos) {
            fprintf(stderr, "ckpt %s: unexpected argument %s\n", cmd, a);
            return EX_USAGE;
        } else {
            pos = a;
        }
    }
    if (!strcmp(cmd, "plan"))
        return cmd_plan(size, nodes, mtbf, gbps);
    static const char *const cmds[] = {"commit", "list", "latest", "status", "restore",
                                       "verify", "wait", "prune"};
    bool known = false;
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
        known |= !strcmp(cmd, cmds[k]);
    if (!known) {
        fprintf(stderr, "ckpt: unknown command %s\n", cmd);
        usage(stderr);
        return EX_USAGE;
    }
    if (!pos) {
        fprintf(stderr, "ckpt %s: a path is required\n", cmd);
        return EX_USAGE;
    }
    if (!strcmp(cmd, "prune") && !have_keep) {
        fprintf(stderr, "ckpt prune: --keep N is required\n");
        return EX_USAGE;
    }
    if (ctx_connect(&c) < 0) {
        ctx_close(&c);
        return EX_ERR;
    }
    int ex;
    if (!strcmp(cmd, "commit"))
        ex = cmd_commit(&c, pos, timeout_s, allow_degraded);
    else if (!strcmp(cmd, "list"))
        ex = cmd_list(&c, pos, json);
    else if (!strcmp(cmd, "latest"))
        ex = cmd_latest(&c, pos);
    else if (!strcmp(cmd, "status"))
        ex = cmd_status(&c, pos, json);
    else if (!strcmp(cmd, "restore"))
        ex = cmd_restore(&c, pos, latest, verify, to, (unsigned)jobs);
    else if (!strcmp(cmd, "verify"))
        ex = cmd_restore(&c, pos, false, true, NULL, (unsigned)jobs);
    else if (!strcmp(cmd, "wait"))
        ex = cmd_wait(&c, pos);
    else
        ex = cmd_prune(&c, pos, keep, min_age, dry);
    ctx_close(&c);
    return ex;
}

/*
 * ckpt - checkpoint commit, list, restore and verify for training jobs.
 *
 * DESIGN
 *   One file, thin: it finds the cluster (lib/tooldisc.h: -c FILE,
 *   $CKPTFS_CONF, the config file recorded in the source of the ckptfs
 *   mount holding PATH, then /etc/ckptfs/ckptfs.conf), connects to
 *   ckpt-meta (lib/mclient.h for LOOKUP, lib/cclient.h for the checkpoint
 *   messages), and resolves a PATH: when it is inside a FUSE mount
 *   (/proc/self/mountinfo, longest matching mount point of type fuse*),
 *   its components below the mount root are looked up from the root
 *   inode; any other absolute path is taken as a path inside the ckptfs
 *   namespace.  Data is always read and written through the mount
 *   (restore, verify, prune, wait), so the FUSE client's degraded reads
 *   and parity repair apply.
 *
 *   Repaired chunks: restore/verify read the mount's counters (xattr
 *   user.ckptfs.reads on the mount root, answered by ckptfs itself) before
 *   and after reading, and report the stripes the mount decoded from
 *   parity meanwhile (a chunk failed its crc, or its node is down); with
 *   --jobs 1 also per file.  The counters are per mount, so another reader
 *   of the same mount adds to them: the report says "decoded while we
 *   read", which is exact on a mount used by one restore.  The bad chunk
 *   itself is reported to ckpt-meta by the node that found the bad crc,
 *   and rewritten by a REPAIR task (meta/meta_rebuild.c).
 *
 *   Help: subcmds[] holds each subcommand's synopsis, options and exit
 *   codes, printed by `ckpt help CMD` and `ckpt CMD --help`.
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
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cclient.h"
#include "config.h"
#include "crc.h"
#include "err.h"
#include "log.h"
#include "mclient.h"
#include "msg_ckpt.h"
#include "tooldisc.h"
#include "toolfmt.h"
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
    struct ckpt_tooldisc_conn conn;
    ckpt_mclient *mc;       /* conn.mc */
    ckpt_cclient *cc;       /* conn.cc */
};

/* One subcommand's help: `ckpt help CMD`, `ckpt CMD --help`. */
struct subcmd {
    const char *name;
    const char *synopsis;   /* after "ckpt " */
    const char *summary;    /* one line, for `ckpt --help` */
    const char *text;       /* what it does and its options */
    const char *exits;      /* its exit codes */
};

static const struct subcmd subcmds[] = {
    {"commit", "commit PATH [--timeout S] [--allow-degraded]",
     "make checkpoint directory PATH COMMITTED (a barrier)",
     "Wait until every file under PATH is closed by its writers and flushed, have\n"
     "every target involved sync it, record the manifest (every file, size,\n"
     "crc32c) and mark PATH COMMITTED: from then on it is immutable (EROFS).\n"
     "  --timeout S        give up after S seconds (default 600)\n"
     "  --allow-degraded   commit even if some stripe misses chunks (nodes down);\n"
     "                     without it commit waits for rebuild until --timeout\n",
     "0 committed; 1 error; 2 usage; 4 timed out (files still open);\n"
     "5 not protected (DEGRADED and not rebuilt in time, or LOST)\n"},
    {"list", "list JOB [--json]", "checkpoints of a job directory, newest first",
     "Print every checkpoint directory of JOB: name, state (WRITING, COMMITTED),\n"
     "health (PROTECTED, DEGRADED, LOST), files, bytes, written-at, commit time.\n"
     "  --json   one JSON array\n",
     "0 ok; 1 error; 2 usage\n"},
    {"latest", "latest JOB", "path of the newest COMMITTED, readable checkpoint",
     "Print the path of the newest COMMITTED checkpoint of JOB that is not LOST,\n"
     "for job scripts: RESUME=$(ckpt latest /ckpt/job) || start fresh.\n",
     "0 printed; 1 error; 2 usage; 3 no committed, readable checkpoint\n"},
    {"status", "status PATH [--json]", "state and health of one checkpoint",
     "Print state, health, files, bytes and times of checkpoint directory PATH,\n"
     "and its degraded or lost stripe counts.\n"
     "  --json   one JSON object\n",
     "0 ok; 1 error; 2 usage\n"},
    {"restore", "restore JOB|PATH [--latest] [--verify] [--to LOCALDIR] [--jobs N]",
     "read (and copy out) the newest intact checkpoint",
     "Resolve PATH if it is a COMMITTED checkpoint, else the newest COMMITTED,\n"
     "readable checkpoint of job JOB, and read every file of its manifest\n"
     "through the mount (degraded stripes are decoded from parity).\n"
     "  --latest        always pick the newest checkpoint of JOB\n"
     "  --verify        check every file's size and crc32c against the manifest\n"
     "  --to LOCALDIR   copy the files below LOCALDIR (created if needed)\n"
     "  --jobs N        files read in parallel (default 8)\n"
     "Without --to, --verify is implied.  Progress with rate and ETA on a terminal.\n",
     "0 ok; 1 error; 2 usage; 3 no committed, readable checkpoint;\n"
     "6 verification failed\n"},
    {"verify", "verify PATH [--jobs N]", "read a checkpoint and check it against its manifest",
     "Read every file of COMMITTED checkpoint PATH through the mount and check\n"
     "its size and crc32c against the manifest.  Also reports how many stripes\n"
     "the mount had to decode from parity while reading (a chunk that failed its\n"
     "crc, or sat on a node that is down): the data is still correct, and\n"
     "ckpt-meta has the bad chunks rewritten (REPAIR tasks).  The count comes\n"
     "from the mount's counters (xattr user.ckptfs.reads on the mount root), so\n"
     "other readers of the same mount add to it; with --jobs 1 it is also\n"
     "given per file.\n"
     "  --jobs N   files read in parallel (default 8)\n",
     "0 verified; 1 error; 2 usage; 3 not a committed checkpoint or LOST;\n"
     "6 verification failed\n"},
    {"wait", "wait PATH", "flush everything written so far under PATH",
     "fsync every regular file under PATH (a file or a directory) through the\n"
     "mount: returns once every byte written so far, by any process of this\n"
     "mount, is acknowledged by its targets.  Fails when a flush failed, or when\n"
     "a file is marked incomplete at ckpt-meta (its writer died, or closed it\n"
     "after a flush that could not store all of its data): fsync says EIO for\n"
     "such a file until it is written again from the start (O_TRUNC).\n",
     "0 flushed; 1 error (a flush failed: EIO); 2 usage\n"},
    {"prune", "prune JOB --keep N [--min-age S] [--dry-run]",
     "delete old checkpoints, keeping the newest N COMMITTED",
     "Delete (through the mount) every COMMITTED checkpoint of JOB but the\n"
     "newest N, and every WRITING checkpoint (writer died before commit) that is\n"
     "older than the newest COMMITTED one and was last written more than S\n"
     "seconds ago.  The newest COMMITTED checkpoint is never deleted (N < 1\n"
     "counts as 1); WRITING checkpoints newer than it are never deleted.\n"
     "  --keep N      COMMITTED checkpoints to keep (required)\n"
     "  --min-age S   age of an abandoned WRITING checkpoint (default 3600)\n"
     "  --dry-run     print what would be removed, remove nothing\n",
     "0 ok; 1 error (some removal failed); 2 usage\n"},
    {"plan", "plan --size BYTES --nodes N [--mtbf-hours H] [--write-gbps G]",
     "checkpoint interval that minimises lost work (Young/Daly)",
     "Compute, for a checkpoint of BYTES written by N nodes at G GB/s each\n"
     "(default 2), with a per-node MTBF of H hours (default 26280, 3 years):\n"
     "  write time     C = BYTES / (N * G * 1e9)\n"
     "  system MTBF    M = H * 3600 / N\n"
     "  Young          sqrt(2 C M)\n"
     "  Daly           sqrt(2 C M) * (1 + sqrt(C/2M)/3 + (C/2M)/9) - C  (C < 2M; else M)\n"
     "  overhead       C/(tau+C) + (tau+C)/(2M), first order\n"
     "Needs no cluster.\n",
     "0 ok; 2 usage (missing or non-positive numbers)\n"},
};

#define NSUBCMDS (sizeof(subcmds) / sizeof(subcmds[0]))

static const struct subcmd *find_subcmd(const char *name)
{
    for (size_t k = 0; k < NSUBCMDS; k++)
        if (!strcmp(name, subcmds[k].name))
            return &subcmds[k];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ckpt [GLOBAL OPTIONS] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t k = 0; k < NSUBCMDS; k++)
        fprintf(f, "  %-8s %s\n", subcmds[k].name, subcmds[k].summary);
    fprintf(f, "  %-8s %s\n", "help", "help COMMAND: that command's usage, options, exit codes");
    fprintf(f, "\n");
    for (size_t k = 0; k < NSUBCMDS; k++)
        fprintf(f, "  ckpt %s\n", subcmds[k].synopsis);
    fprintf(f,
        "\nglobal options: -c FILE, --set SECTION.KEY=VALUE, --log-level L, --log-file F,\n"
        "                -h/--help, -V/--version\n"
        "the cluster: -c FILE, else $CKPTFS_CONF, else the config file of the ckptfs\n"
        "mount holding PATH, else /etc/ckptfs/ckptfs.conf\n"
        "exit codes: 0 ok, 1 error, 2 usage, 3 no checkpoint, 4 timeout,\n"
        "            5 not protected, 6 verification failed\n"
        "`ckpt help COMMAND` or `ckpt COMMAND --help` for one command; see ckpt(1).\n");
}

/* `ckpt help CMD` and `ckpt CMD --help`. */
static int sub_help(const char *cmd)
{
    const struct subcmd *sc = find_subcmd(cmd);
    if (!sc) {
        fprintf(stderr, "ckpt: unknown command %s\n", cmd);
        usage(stderr);
        return EX_USAGE;
    }
    printf("usage: ckpt [GLOBAL OPTIONS] %s\n  %s\n\n%s\nexit codes:\n%s", sc->synopsis,
           sc->summary, sc->text, sc->exits);
    return EX_OK;
}

/* ---- connection ---------------------------------------------------------------------------- */

/* Find the cluster (lib/tooldisc.h: -c, $CKPTFS_CONF, the mount holding
 * path, /etc/ckptfs/ckptfs.conf) and connect to ckpt-meta. */
static int ctx_connect(struct ctx *c, const char *path)
{
    char err[512], used[PATH_MAX];
    struct ckpt_tooldisc_opts o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.conf = c->conf;
    o.sets = c->sets;
    o.nsets = c->nsets;
    o.path = path;
    rc = ckpt_tooldisc_config(&o, &c->cfg, used, sizeof(used), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ckpt: %s\n", err[0] ? err : ckpt_strerror(rc));
        return rc;
    }
    rc = ckpt_tooldisc_connect(&c->cfg, "ckpt", false, &c->conn, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ckpt: %s (configuration: %s)\n", err,
                used[0] ? used : "built-in defaults");
        return rc;
    }
    if (c->conn.key_too_open)
        fprintf(stderr, "ckpt: warning: %s is readable by group or others\n",
                c->cfg.cluster.key_file);
    c->mc = c->conn.mc;
    c->cc = c->conn.cc;
    return 0;
}

static void ctx_close(struct ctx *c)
{
    ckpt_tooldisc_disconnect(&c->conn);
    c->mc = NULL;
    c->cc = NULL;
    ckpt_config_free(&c->cfg);
}

/* ---- paths ---------------------------------------------------------------------------------- */

struct rpath {
    char mnt[PATH_MAX];    /* the mount point ("" when not mounted) */
    char local[PATH_MAX];  /* path through the mount ("" when not mounted) */
    char ns[PATH_MAX];     /* path in the ckptfs namespace, "/" based */
    uint64_t ino;
    char name[CKPT_PROTO_MAX_NAME + 1];
};

static int resolve(struct ctx *c, const char *path, struct rpath *out)
{
    char abs[PATH_MAX];
    struct ckpt_tooldisc_mount *m = ckpt_malloc(sizeof(*m));
    memset(out, 0, sizeof(*out));
    if (!m) {
        fprintf(stderr, "ckpt: out of memory\n");
        return -ENOMEM;
    }
    if (realpath(path, abs) && ckpt_tooldisc_find_mount(NULL, abs, m) == 0) {
        const char *mnt = m->point;
        snprintf(out->mnt, sizeof(out->mnt), "%s", mnt);
        snprintf(out->local, sizeof(out->local), "%s", abs);
        const char *rest = abs + strlen(mnt);
        snprintf(out->ns, sizeof(out->ns), "%s", *rest ? rest : "/");
        if (!strcmp(mnt, "/"))
            snprintf(out->ns, sizeof(out->ns), "%s", abs);
    }
    ckpt_free(m);
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


static void info_json(const struct ckpt_ckpt_info *i)
{
    printf("{\"name\":");
    ckpt_json_str(stdout, i->name);
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
        ckpt_fmt_bytes(info.bytes, b, sizeof(b));
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
    case CKPT_E_TORN:
        fprintf(stderr, "ckpt: commit %s: a file in it is incomplete (its writer died, or "
                        "could not store all of its data); ckpt-meta's log names it. Write "
                        "that file again, or the checkpoint stays WRITING\n", path);
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
            ckpt_fmt_bytes(l.v[i].bytes, b, sizeof(b));
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
    ckpt_fmt_bytes(i.bytes, b, sizeof(b));
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

/* The mount's count of stripes decoded from parity (ckptfs answers the
 * xattr user.ckptfs.reads on its root itself: fs/fs_ops.c).  @return the
 * count, or -1 when the mount does not say (an older ckptfs). */
static int64_t mount_decoded(const char *mnt)
{
    char buf[512];
    if (!mnt || !mnt[0])
        return -1;
    ssize_t n = getxattr(mnt, "user.ckptfs.reads", buf, sizeof(buf) - 1);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "stripes_decoded ");
    unsigned long long v;
    if (!p || sscanf(p + strlen("stripes_decoded "), "%llu", &v) != 1)
        return -1;
    return (int64_t)v;
}

struct rjob {
    struct ckpt_manifest_ent *v;
    size_t n;
    const char *mnt;          /* mount point, for mount_decoded() */
    bool per_file_decoded;    /* one worker: attribute decodes to files */
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
        int64_t d0 = j->per_file_decoded ? mount_decoded(j->mnt) : -1;
        int rc = buf ? copy_one(j, &j->v[i], buf, why, sizeof(why)) : -ENOMEM;
        int64_t d1 = d0 >= 0 ? mount_decoded(j->mnt) : -1;
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
        if (d0 >= 0 && d1 > d0)
            fprintf(stderr, "%s%s: %lld stripe(s) decoded from parity (a chunk failed its crc "
                    "or its node is down); ckpt-meta repairs bad chunks\n",
                    j->tty ? "\r\033[K" : "", j->v[i].path, (long long)(d1 - d0));
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
static int run_restore(struct ctx *c, uint64_t ino, const char *mnt, const char *src,
                       const char *to, bool verify, unsigned jobs)
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
    j.mnt = mnt;
    j.per_file_decoded = jobs == 1;
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
    int64_t dec0 = mount_decoded(mnt);
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
    ckpt_fmt_bytes(j.total_bytes, b, sizeof(b));
    size_t bad = atomic_load(&j.bad);
    printf("%s %s: %zu files, %s in %.1f s (%.1f MiB/s)%s: %s\n",
           to ? "restored" : "verified", src, j.n, b, el,
           el > 0 ? (double)j.total_bytes / el / 1048576.0 : 0.0, to ? (verify ? ", verified" : "")
                                                                       : "",
           bad ? "FAILED" : "ok");
    int64_t dec1 = dec0 >= 0 ? mount_decoded(mnt) : -1;
    if (dec1 >= 0)
        printf("decoded from parity: %lld stripe(s)%s\n", (long long)(dec1 - dec0),
               dec1 > dec0 ? " (chunks that failed their crc or sit on nodes that are "
                             "down; the data read is correct, ckpt-meta repairs bad chunks)"
                           : "");
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
    return run_restore(c, ino, rp.mnt, src, to, verify, jobs);
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
    if (rc < 0 && e == EIO)
        fprintf(stderr, "ckpt: wait: %s: not safe: its writer died or could not store all of "
                        "its data (EIO); write the file again\n", p);
    else if (rc < 0)
        fprintf(stderr, "ckpt: wait: %s: %s\n", p, strerror(e));
    if (rc < 0)
        return 1;
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
    if (!strcmp(cmd, "help")) {
        if (i >= argc) {
            usage(stdout);
            return EX_OK;
        }
        return sub_help(argv[i]);
    }
    if (!find_subcmd(cmd)) {
        fprintf(stderr, "ckpt: unknown command %s\n", cmd);
        usage(stderr);
        return EX_USAGE;
    }
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
    if (!pos) {
        fprintf(stderr, "ckpt %s: a path is required\n", cmd);
        return EX_USAGE;
    }
    if (!strcmp(cmd, "prune") && !have_keep) {
        fprintf(stderr, "ckpt prune: --keep N is required\n");
        return EX_USAGE;
    }
    if (ctx_connect(&c, pos) < 0) {
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

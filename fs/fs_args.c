/*
 * fs_args.c - the command line and configuration of ckptfs (fs_args.h).
 *
 * DESIGN
 *
 *   One pass of fuse_opt_parse() with a spec for ckptfs's own -o keys and
 *   command-line flags; the processing function collects positional
 *   arguments and the repeatable --set overrides, and keeps every unknown
 *   -o option in the argument list handed to libfuse.  Values are then
 *   validated in a fixed order - config file, --set, -o - each through
 *   lib/config.h so a bad value gets the same message as in the file.
 *   When a config file was read, the mount's fsname (its source in
 *   /proc/self/mountinfo) becomes "ckptfs:" + its absolute path, unless
 *   -o fsname= is given: the tools find the cluster of a mounted path
 *   from it (lib/tooldisc.h).  No global state; nothing here starts
 *   threads or touches the network.
 */
#define FUSE_USE_VERSION 314
#include "fs_args.h"

#include <errno.h>
#include <fuse_opt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "tooldisc.h"

struct mopts {
    char *meta, *conf, *key_file, *transport, *dirty_limit, *threads, *readahead;
    char *attr_timeout, *entry_timeout, *log_file, *log_level, *io, *buffer_keep;
    int writeback_cache, nosplice, noparallel, nolocal, local;
};

enum {
    KEY_HELP, KEY_VERSION, KEY_FG, KEY_DEBUG, KEY_SINGLE,
    KEY_CONF, KEY_SET, KEY_LOGLEVEL, KEY_LOGFILE,
};

struct pstate {
    struct mopts mo;            /* first: fuse_opt stores -o values here */
    struct fs_args *a;
    char *pos[3];
    int npos;
    char *conf;                 /* -c */
    char *sets[FS_ARGS_MAX_SETS];
    int nsets;
    char *log_level, *log_file; /* --log-level/--log-file */
    char err[256];
};

#define MOPT(t, f) {t, offsetof(struct pstate, mo.f), 1}
static const struct fuse_opt spec[] = {
    MOPT("meta=%s", meta),
    MOPT("conf=%s", conf),
    MOPT("key_file=%s", key_file),
    MOPT("transport=%s", transport),
    MOPT("dirty_limit=%s", dirty_limit),
    MOPT("threads=%s", threads),
    MOPT("readahead=%s", readahead),
    MOPT("attr_timeout=%s", attr_timeout),
    MOPT("buffer_keep=%s", buffer_keep),
    MOPT("entry_timeout=%s", entry_timeout),
    MOPT("log_file=%s", log_file),
    MOPT("log_level=%s", log_level),
    MOPT("io=%s", io),
    MOPT("writeback_cache", writeback_cache),
    MOPT("nosplice", nosplice),
    MOPT("nolocal", nolocal),
    MOPT("local", local),
    MOPT("noparallel_writes", noparallel),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FG),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("-s", KEY_SINGLE),
    FUSE_OPT_KEY("-c ", KEY_CONF),
    FUSE_OPT_KEY("--set ", KEY_SET),
    FUSE_OPT_KEY("--log-level ", KEY_LOGLEVEL),
    FUSE_OPT_KEY("--log-file ", KEY_LOGFILE),
    FUSE_OPT_END,
};



static void perr(struct pstate *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct pstate *p, const char *fmt, ...)
{
    va_list ap;
    if (p->err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
}

/* Replace *slot with a copy of s (after the prefix of length skip). */
static int take(struct pstate *p, char **slot, const char *s, size_t skip)
{
    ckpt_free(*slot);
    *slot = ckpt_strdup(s + skip);
    if (!*slot) {
        perr(p, "out of memory");
        return -1;
    }
    return 0;
}

static int proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct pstate *p = data;
    (void)outargs;

    switch (key) {
    case FUSE_OPT_KEY_NONOPT:
        if (p->npos >= 2) {
            perr(p, "too many arguments: '%s'", arg);
            return -1;
        }
        return take(p, &p->pos[p->npos++], arg, 0) ? -1 : 0;
    case KEY_HELP:
        p->a->help = true;
        return 0;
    case KEY_VERSION:
        p->a->version = true;
        return 0;
    case KEY_FG:
        p->a->foreground = true;
        return 0;
    case KEY_DEBUG:
        p->a->debug = true;
        p->a->foreground = true;
        return 1; /* libfuse prints the requests too */
    case KEY_SINGLE:
        p->a->single_thread = true;
        return 0;
    case KEY_CONF:
        return take(p, &p->conf, arg, 2) ? -1 : 0;
    case KEY_SET:
        if (p->nsets >= FS_ARGS_MAX_SETS) {
            perr(p, "too many --set options (at most %d)", FS_ARGS_MAX_SETS);
            return -1;
        }
        return take(p, &p->sets[p->nsets++], arg, 5) ? -1 : 0;
    case KEY_LOGLEVEL:
        return take(p, &p->log_level, arg, 11) ? -1 : 0;
    case KEY_LOGFILE:
        return take(p, &p->log_file, arg, 10) ? -1 : 0;
    default:
        if (arg[0] == '-' && arg[1] != 'o') {
            perr(p, "unknown option '%s'", arg);
            return -1;
        }
        return 1; /* an -o option for libfuse */
    }
}

void fs_args_usage(FILE *f)
{
    fprintf(f,
            "usage: ckptfs [-o OPTIONS] [-f] [-d] [-s] [-c FILE] [--set SECTION.KEY=VALUE]...\n"
            "              [--log-level LEVEL] [--log-file FILE] [SOURCE] MOUNTPOINT\n"
            "       mount.ckptfs SOURCE MOUNTPOINT -o OPTIONS\n"
            "       ckptfs -h | --help | -V | --version\n"
            "\n"
            "Mount a ckptfs cluster at MOUNTPOINT through FUSE.  Without -f, ckptfs\n"
            "returns once the mount is live and serves it in the background.\n"
            "\n"
            "  -f                   stay in the foreground\n"
            "  -d                   debug: foreground, log every FUSE request\n"
            "  -s                   single-threaded FUSE loop\n"
            "  -c FILE              configuration file (default $CKPTFS_CONF, then\n"
            "                       /etc/ckptfs/ckptfs.conf)\n"
            "  --set S.K=V          override one configuration key (repeatable)\n"
            "  --log-level L        err, warn, info or debug\n"
            "  --log-file F         append log records to F\n"
            "\n"
            "ckptfs -o options (the rest go to FUSE: allow_other, default_permissions, ro...):\n"
            "  meta=HOST:PORT       ckpt-meta address ([cluster] meta)\n"
            "  conf=FILE            configuration file, as -c\n"
            "  key_file=FILE        cluster key ([cluster] key_file)\n"
            "  transport=T          tcp, rdma or auto ([cluster] transport)\n"
            "  dirty_limit=SIZE     write-back memory ([client] dirty_limit)\n"
            "  threads=N            worker threads ([client] threads)\n"
            "  readahead=SIZE       sequential read-ahead ([client] readahead)\n"
            "  attr_timeout=DUR     attribute cache time ([client] attr_timeout)\n"
            "  entry_timeout=DUR    name cache time ([client] entry_timeout)\n"
            "  buffer_keep=DUR      keep idle write-back buffers ([client] buffer_keep)\n"
            "  log_file=FILE        as --log-file\n"
            "  log_level=LEVEL      as --log-level ([client] log_level)\n"
            "  io=MODE              direct (default), cached or mixed\n"
            "  writeback_cache      kernel write-back cache for cached opens\n"
            "  nosplice             receive write data by read(2), not splice(2)\n"
            "  noparallel_writes    no FOPEN_PARALLEL_DIRECT_WRITES on direct opens\n"
            "  local                read chunks of nodes on this host from their files\n"
            "                       (short-circuit reads, the default)\n"
            "  nolocal              read every chunk through its node\n");
}

static int set_key(struct pstate *p, struct ckpt_config *cfg, const char *sec, const char *key,
                   const char *val)
{
    char e[256];
    if (!val)
        return 0;
    if (ckpt_config_set(cfg, sec, key, val, "-o", e, sizeof(e)) < 0) {
        perr(p, "%s", e);
        return -1;
    }
    return 0;
}

static int build(struct pstate *p, struct mopts *mo, struct fuse_args *fa)
{
    struct fs_args *a = p->a;
    struct ckpt_config cfg;
    char e[512];
    int rc = FS_ARGS_ERROR;

    ckpt_config_init(&cfg);
    const char *conf = mo->conf ? mo->conf : p->conf;
    const char *loaded = NULL;  /* the config file read, for the fsname */
    bool explicit_conf = conf != NULL;
    if (!conf)
        conf = getenv("CKPTFS_CONF");
    if (conf && *conf) {
        int lrc = ckpt_config_load(&cfg, conf, e, sizeof(e));
        if (lrc == -ENOENT && !explicit_conf && !getenv("CKPTFS_CONF"))
            lrc = 0;
        else if (lrc == 0)
            loaded = conf;
        if (lrc < 0) {
            perr(p, "%s", e);
            goto out;
        }
    } else {
        int lrc = ckpt_config_load(&cfg, CKPT_CONFIG_DEFAULT_PATH, e, sizeof(e));
        if (lrc < 0 && lrc != -ENOENT) {
            perr(p, "%s", e);
            goto out;
        }
        if (lrc == 0)
            loaded = CKPT_CONFIG_DEFAULT_PATH;
    }
    for (int i = 0; i < p->nsets; i++) {
        if (ckpt_config_set_arg(&cfg, p->sets[i], e, sizeof(e)) < 0) {
            perr(p, "%s", e);
            goto out;
        }
    }
    if (set_key(p, &cfg, "cluster", "meta", mo->meta) ||
        set_key(p, &cfg, "cluster", "key_file", mo->key_file) ||
        set_key(p, &cfg, "cluster", "transport", mo->transport) ||
        set_key(p, &cfg, "client", "dirty_limit", mo->dirty_limit) ||
        set_key(p, &cfg, "client", "threads", mo->threads) ||
        set_key(p, &cfg, "client", "readahead", mo->readahead) ||
        set_key(p, &cfg, "client", "attr_timeout", mo->attr_timeout) ||
        set_key(p, &cfg, "client", "buffer_keep", mo->buffer_keep) ||
        set_key(p, &cfg, "client", "entry_timeout", mo->entry_timeout) ||
        set_key(p, &cfg, "client", "log_level", mo->log_level) ||
        set_key(p, &cfg, "client", "log_level", p->log_level))
        goto out;
    if (ckpt_config_check(&cfg, e, sizeof(e)) < 0) {
        perr(p, "%s", e);
        goto out;
    }

    struct fs_opts *o = &a->opts;
    fs_opts_default(o);
    snprintf(o->meta_host, sizeof(o->meta_host), "%s", cfg.cluster.meta.host);
    o->meta_port = cfg.cluster.meta.port;
    o->transport = cfg.cluster.transport == CKPT_CONFIG_TRANSPORT_RDMA  ? CKPT_TRANSPORT_RDMA
                   : cfg.cluster.transport == CKPT_CONFIG_TRANSPORT_TCP ? CKPT_TRANSPORT_TCP
                                                                        : CKPT_TRANSPORT_AUTO;
    o->dirty_limit_bytes = cfg.client.dirty_limit_bytes;
    o->threads = cfg.client.threads;
    o->readahead_bytes = cfg.client.readahead_bytes;
    o->attr_timeout_ms = (uint32_t)cfg.client.attr_timeout_ms;
    o->buffer_keep_ms = cfg.client.buffer_keep_ms;
    o->entry_timeout_ms = (uint32_t)cfg.client.entry_timeout_ms;
    a->log_level = cfg.client.log_level;
    if (mo->io) {
        if (!strcmp(mo->io, "direct"))
            o->io_mode = FS_IO_DIRECT;
        else if (!strcmp(mo->io, "cached"))
            o->io_mode = FS_IO_CACHED;
        else if (!strcmp(mo->io, "mixed"))
            o->io_mode = FS_IO_MIXED;
        else {
            perr(p, "-o io=%s: direct, cached or mixed", mo->io);
            goto out;
        }
    }
    o->writeback_cache = mo->writeback_cache != 0;
    o->splice = !mo->nosplice;
    o->parallel_writes = !mo->noparallel;
    if (mo->local && mo->nolocal) {
        perr(p, "-o local and -o nolocal contradict each other");
        goto out;
    }
    o->local_read = !mo->nolocal;
    const char *lf = mo->log_file ? mo->log_file : p->log_file;
    if (lf)
        snprintf(a->log_file, sizeof(a->log_file), "%s", lf);
    snprintf(a->key_file, sizeof(a->key_file), "%s", cfg.cluster.key_file);

    if (a->help || a->version) {
        rc = 0;
        goto out;
    }
    if (p->npos == 0) {
        perr(p, "no mountpoint given");
        rc = FS_ARGS_USAGE;
        goto out;
    }
    if (!realpath(p->pos[p->npos - 1], a->mountpoint))
        snprintf(a->mountpoint, sizeof(a->mountpoint), "%s", p->pos[p->npos - 1]);
    struct stat st;
    if (stat(a->mountpoint, &st) < 0) {
        perr(p, "mountpoint %s: %s", a->mountpoint, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        perr(p, "mountpoint %s: not a directory", a->mountpoint);
        goto out;
    }
    char host[64] = "";
    (void)gethostname(host, sizeof(host) - 1);
    snprintf(o->name, sizeof(o->name), "ckptfs@%.20s:%.30s", host, a->mountpoint);

    int krc = ckpt_auth_key_load(cfg.cluster.key_file, o->key, &a->key_too_open);
    if (krc < 0) {
        perr(p, "cluster key %s: %s", cfg.cluster.key_file,
             krc == CKPT_E_CONFIG ? "not 64 hex digits" : ckpt_strerror(krc));
        goto out;
    }
    /* The mount's source names its config file ("ckptfs:/path"), so that
     * `ckpt` and `ckpt-admin` given a path inside the mount find the
     * cluster (lib/tooldisc.h).  An fsname given with -o wins. */
    bool have_fsname = false;
    for (int i = 0; i < fa->argc; i++)
        have_fsname |= strstr(fa->argv[i], "fsname=") != NULL;
    char conf_abs[PATH_MAX], fsname[PATH_MAX + 16];
    if (loaded && !have_fsname && realpath(loaded, conf_abs) &&
        ckpt_tooldisc_fsname(conf_abs, fsname, sizeof(fsname)) == 0) {
        char opt[PATH_MAX + 32];
        snprintf(opt, sizeof(opt), "-ofsname=%s", fsname);
        if (fuse_opt_add_arg(fa, opt) < 0) {
            perr(p, "out of memory");
            goto out;
        }
    }
    a->fuse_argc = fa->argc;
    a->fuse_argv = fa->argv;
    fa->argc = 0;
    fa->argv = NULL;
    fa->allocated = 0;
    rc = 0;
out:
    ckpt_config_free(&cfg);
    return rc;
}

int fs_args_parse(int argc, char **argv, struct fs_args *out, char *err, size_t err_cap)
{
    struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);
    struct pstate p;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&p, 0, sizeof(p));
    struct mopts *mo = &p.mo;
    p.a = out;
    out->log_level = CKPT_LOG_LVL_INFO;
    /* fuse_opt_parse may rewrite the vector: give it a copy. */
    for (int i = 0; i < argc; i++) {
        if (fuse_opt_add_arg(&fa, argv[i]) < 0) {
            snprintf(err, err_cap, "out of memory");
            fuse_opt_free_args(&fa);
            return FS_ARGS_ERROR;
        }
    }
    if (fuse_opt_parse(&fa, &p, spec, proc) < 0) {
        snprintf(err, err_cap, "%s", p.err[0] ? p.err : "bad option");
        rc = FS_ARGS_USAGE;
    } else {
        rc = build(&p, mo, &fa);
        if (rc)
            snprintf(err, err_cap, "%s", p.err);
    }
    fuse_opt_free_args(&fa);
    char **strs[] = {&mo->meta, &mo->conf, &mo->key_file, &mo->transport, &mo->dirty_limit,
                     &mo->threads, &mo->readahead, &mo->attr_timeout, &mo->entry_timeout, &mo->buffer_keep,
                     &mo->log_file, &mo->log_level, &mo->io};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]); /* allocated by fuse_opt with strdup */
    for (int i = 0; i < p.npos; i++)
        ckpt_free(p.pos[i]);
    for (int i = 0; i < p.nsets; i++)
        ckpt_free(p.sets[i]);
    ckpt_free(p.conf);
    ckpt_free(p.log_level);
    ckpt_free(p.log_file);
    if (rc)
        fs_args_free(out);
    return rc;
}

void fs_args_free(struct fs_args *a)
{
    struct fuse_args fa = FUSE_ARGS_INIT(a->fuse_argc, a->fuse_argv);
    fa.allocated = a->fuse_argv != NULL;
    fuse_opt_free_args(&fa);
    a->fuse_argc = 0;
    a->fuse_argv = NULL;
}

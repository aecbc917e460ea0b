/*
 * ckpt-meta - the ckptfs metadata server.  Parses the command line and the
 * configuration, loads the cluster key, runs a meta_server until SIGTERM or
 * SIGINT (SIGHUP reopens the log file).  See ckpt-meta(8).
 * Exit status: 0 clean shutdown, 1 start-up or runtime failure, 2 usage or
 * configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "meta_metrics.h"
#include "meta_server.h"
#include "version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ckpt-meta [-c FILE] [--set SECTION.KEY=VALUE]... [--listen HOST:PORT]\n"
               "                 [--data-dir DIR] [--pid-file FILE] [--ready-fd N]\n"
               "                 [--log-level LEVEL] [--log-file FILE] [-h] [-V]\n"
               "the ckptfs metadata server (see ckpt-meta(8)).\n");
}

static int fail(int status, const char *what, const char *detail)
{
    fprintf(stderr, "ckpt-meta: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return status;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"help", 0, 0, 'h'},      {"version", 0, 0, 'V'},   {"set", 1, 0, 's'},
        {"log-level", 1, 0, 'L'}, {"log-file", 1, 0, 'F'},  {"listen", 1, 0, 'l'},
        {"data-dir", 1, 0, 'd'},  {"pid-file", 1, 0, 'p'},  {"ready-fd", 1, 0, 'r'},
        {0, 0, 0, 0}};
    static struct ckpt_config cfg;
    struct meta_server_opts o;
    char err[512], *end;
    const char *conf = NULL, *pidf = NULL, *lvl = NULL, *logf = NULL;
    const char *sets[256][3];
    int nsets = 0, ready_fd = -1, c, sig, rc;
    bool too_open = false;
    sigset_t ss;
    meta_server *srv = NULL;

    while ((c = getopt_long(argc, argv, "hVc:", lo, NULL)) != -1) {
        const char *kv[3] = {NULL, NULL, optarg};
        if (c == 'h' || c == 'V') {
            if (c == 'h')
                usage(stdout);
            else
                printf("ckpt-meta %s\n", CKPT_VERSION_STRING);
            return 0;
        } else if (c == 'c') {
            conf = optarg;
        } else if (c == 'L') {
            lvl = optarg;
        } else if (c == 'F') {
            logf = optarg;
        } else if (c == 'p') {
            pidf = optarg;
        } else if (c == 'r') {
            ready_fd = (int)strtol(optarg, &end, 10);
            if (*end || ready_fd < 0)
                return fail(2, "--ready-fd wants a file descriptor number", optarg);
        } else if ((c == 's' || c == 'l' || c == 'd') && nsets < 256) {
            kv[0] = c == 's' ? NULL : "meta";
            kv[1] = c == 'l' ? "listen" : "data_dir";
            memcpy(sets[nsets++], kv, sizeof(kv));
        } else {
            return fail(2, "bad usage (see ckpt-meta -h)", NULL);
        }
    }
    if (optind != argc)
        return fail(2, "unexpected argument", argv[optind]);
    ckpt_config_init(&cfg);
    const char *path = conf ? conf : getenv("CKPTFS_CONF");
    rc = ckpt_config_load(&cfg, path ? path : CKPT_CONFIG_DEFAULT_PATH, err, sizeof(err));
    if (rc < 0 && !(rc == -ENOENT && !path))
        return fail(2, err, NULL);
    for (int i = 0; i < nsets; i++) {
        rc = sets[i][0] ? ckpt_config_set(&cfg, sets[i][0], sets[i][1], sets[i][2],
                                          sets[i][1][0] == 'l' ? "--listen" : "--data-dir",
                                          err, sizeof(err))
                        : ckpt_config_set_arg(&cfg, sets[i][2], err, sizeof(err));
        if (rc < 0)
            return fail(2, err, NULL);
    }
    if (ckpt_config_check(&cfg, err, sizeof(err)) < 0)
        return fail(2, err, NULL);
    int level = lvl ? ckpt_log_level_parse(lvl) : cfg.meta.log_level;
    if (level < 0)
        return fail(2, "unknown --log-level (err, warn, info, debug)", lvl);
    ckpt_log_init("ckpt-meta", level);
    if (!logf && cfg.meta.log_file[0])
        logf = cfg.meta.log_file;
    if (logf && (rc = ckpt_log_set_file(logf)) < 0)
        return fail(1, "cannot open the log file", ckpt_strerror(rc));

    meta_server_opts_from_config(&cfg, &o);
    if (ckpt_auth_init() < 0)
        return fail(1, "cannot initialise libsodium", NULL);
    rc = ckpt_auth_key_load(cfg.cluster.key_file, o.key, &too_open);
    if (rc < 0) {
        CKPT_LOG_ERR("cannot read the cluster key %s: " CKPT_RC_FMT, cfg.cluster.key_file,
                     CKPT_RC_ARGS(rc));
        return 1;
    }
    if (too_open)
        CKPT_LOG_WARN("cluster key %s is readable by group or others: chmod 600 it",
                      cfg.cluster.key_file);

    /* Signals go to sigwait() below; the server's threads inherit the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);

    rc = meta_server_create(&o, &srv);
    if (rc < 0)
        return fail(1, "cannot start", ckpt_strerror(rc));
    ckpt_metrics *metrics = NULL;
    const struct ckpt_config_addr *ma = &cfg.meta.metrics_listen;
    if (ma->host[0] && (rc = meta_metrics_start(srv, ma->host, ma->port, &metrics)) < 0) {
        meta_server_destroy(srv);
        return fail(1, "cannot serve [meta] metrics_listen", ckpt_strerror(rc));
    }
    FILE *pf = pidf ? fopen(pidf, "w") : NULL;
    if (pidf && (!pf || ((fprintf(pf, "%ld\n", (long)getpid()) < 0) | (fclose(pf) != 0))))
        CKPT_LOG_WARN("cannot write the pid file %s: %s", pidf, strerror(errno));
    if (ready_fd >= 0) {
        if (dprintf(ready_fd, "ready %u\n", meta_server_port(srv)) < 0)
            CKPT_LOG_WARN("cannot write to --ready-fd %d: %s", ready_fd, strerror(errno));
        close(ready_fd);
    }
    while (sigwait(&ss, &sig) == 0 && sig == SIGHUP)
        if (ckpt_log_reopen() < 0)
            CKPT_LOG_WARN("cannot reopen the log file");
    CKPT_LOG_INFO("shutting down");
    ckpt_metrics_destroy(metrics);
    meta_server_destroy(srv);
    if (pidf)
        unlink(pidf);
    return 0;
}

/*
 * ckpt-node - the ckptfs storage daemon (see ckpt-node(8), node_svc.h).
 *
 * Parses the command line and configuration, sets up logging, creates the
 * node server, announces readiness, and waits for signals: SIGTERM/SIGINT
 * shut down cleanly, SIGHUP reopens the log file.  The signals are blocked
 * in every thread and taken here with sigwait(), so no handler and no
 * global flag is needed.  Exit status: 0 clean shutdown, 1 error, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "node_metrics.h"
#include "node_svc.h"
#include "version.h"

#define USAGE                                                                          \
    "usage: ckpt-node [-c FILE] [--set SECTION.KEY=VALUE]... [--listen HOST:PORT]\n"   \
    "                 [--meta HOST:PORT] [--target PATH]... [--name NAME] [--rack RACK]\n" \
    "                 [--pid-file FILE] [--ready-fd N] [--log-level LEVEL]\n"          \
    "                 [--log-file FILE] | -h | -V\n"                                   \
    "the ckptfs storage daemon: serves this server's targets as chunk stores.\n"

struct ovr { const char *sec, *key, *val; }; /* an override, in argv order */
#define MAX_OVERRIDES 256

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'},
        {"set", required_argument, 0, 's'}, {"listen", required_argument, 0, 'l'},
        {"meta", required_argument, 0, 'm'}, {"target", required_argument, 0, 't'},
        {"name", required_argument, 0, 'n'}, {"rack", required_argument, 0, 'r'},
        {"pid-file", required_argument, 0, 'p'}, {"ready-fd", required_argument, 0, 'f'},
        {"log-level", required_argument, 0, 'L'}, {"log-file", required_argument, 0, 'F'},
        {0, 0, 0, 0}};
    struct ovr ov[MAX_OVERRIDES];
    const char *conf = getenv("CKPTFS_CONF"), *pid_file = NULL;
    int nov = 0, ready_fd = -1, c, rc, explicit_conf = 0;
    while ((c = getopt_long(argc, argv, "hVc:", lo, NULL)) != -1) {
        struct ovr o = {"node", NULL, optarg};
        switch (c) {
        case 'h': printf(USAGE); return 0;
        case 'V': printf("ckpt-node %s\n", CKPT_VERSION_STRING); return 0;
        case 'c': conf = optarg; explicit_conf = 1; continue;
        case 's': o.sec = NULL; break;
        case 'l': o.key = "listen"; break;
        case 'm': o.sec = "cluster"; o.key = "meta"; break;
        case 't': o.key = "target"; break;
        case 'n': o.key = "name"; break;
        case 'r': o.key = "rack"; break;
        case 'L': o.key = "log_level"; break;
        case 'F': o.key = "log_file"; break;
        case 'p': pid_file = optarg; continue;
        case 'f': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || v < 0 || v > 65535) {
                fprintf(stderr, "ckpt-node: --ready-fd %s: a file descriptor number\n", optarg);
                return 2;
            }
            ready_fd = (int)v;
            continue;
        }
        default: fprintf(stderr, USAGE); return 2;
        }
        if (nov == MAX_OVERRIDES) {
            fprintf(stderr, "ckpt-node: more than %d overrides\n", MAX_OVERRIDES);
            return 2;
        }
        ov[nov++] = o;
    }
    if (optind < argc) {
        fprintf(stderr, "ckpt-node: unexpected argument '%s'\n%s", argv[optind], USAGE);
        return 2;
    }
    explicit_conf |= conf != NULL;
    if (!conf)
        conf = CKPT_CONFIG_DEFAULT_PATH;

    struct ckpt_config cfg;
    char err[512];
    ckpt_config_init(&cfg);
    rc = ckpt_config_load(&cfg, conf, err, sizeof(err));
    if (rc == -ENOENT && !explicit_conf)
        rc = 0; /* no default file: built-in defaults */
    for (int i = 0; rc == 0 && i < nov; i++)
        rc = ov[i].sec ? ckpt_config_set(&cfg, ov[i].sec, ov[i].key, ov[i].val,
                                         "command line", err, sizeof(err))
                       : ckpt_config_set_arg(&cfg, ov[i].val, err, sizeof(err));
    if (rc == 0)
        rc = ckpt_config_check(&cfg, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ckpt-node: %s\n", err);
        return 1;
    }
    if (cfg.node.ntargets == 0) {
        fprintf(stderr, "ckpt-node: no target: give --target PATH or [node] target\n");
        return 1;
    }
    ckpt_log_init("ckpt-node", cfg.node.log_level);
    if (cfg.node.log_file[0] && (rc = ckpt_log_set_file(cfg.node.log_file)) < 0) {
        fprintf(stderr, "ckpt-node: cannot open log file %s: %s\n", cfg.node.log_file,
                ckpt_strerror(rc));
        return 1;
    }

    /* Block the signals before any thread starts, so every thread inherits it. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct node_server_opts so;
    node_server *ns = NULL;
    if (node_server_opts_from_config(&cfg, &so) < 0 || node_server_create(&so, &ns) < 0)
        return 1; /* logged */
    ckpt_metrics *metrics = NULL;
    const struct ckpt_config_addr *ma = &cfg.node.metrics_listen;
    if (ma->host[0] && (rc = node_metrics_start(ns, ma->host, ma->port, &metrics)) < 0) {
        CKPT_LOG_ERR("cannot serve metrics on %s:%u: " CKPT_RC_FMT, ma->host, ma->port,
                     CKPT_RC_ARGS(rc));
        node_server_destroy(ns);
        return 1;
    }
    node_server_announce(ns, pid_file, ready_fd);
    node_server_start_reg(ns); /* failure logged; chunk I/O goes on */

    for (int sig = 0; sig != SIGTERM && sig != SIGINT;) {
        if (sigwait(&sigs, &sig) != 0)
            break;
        if (sig == SIGHUP && ckpt_log_reopen() < 0)
            CKPT_LOG_WARN("SIGHUP: cannot reopen the log file");
    }
    CKPT_LOG_INFO("shutting down");
    ckpt_metrics_destroy(metrics);
    rc = node_server_shutdown(ns);
    node_server_destroy(ns);
    if (pid_file)
        unlink(pid_file);
    CKPT_LOG_INFO("stopped%s", rc < 0 ? " (final sync failed)" : "");
    return rc < 0 ? 1 : 0;
}

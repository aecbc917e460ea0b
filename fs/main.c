/*
 * ckptfs / mount.ckptfs - mount a ckptfs cluster through FUSE.
 *
 * Thin: parse the command line and config (fs_args.c), check that
 * ckpt-meta answers (so a bad address fails here with a message, and no
 * directory is left half-mounted), mount, go to the background
 * (fuse_daemonize) unless -f, then start the client (fs_client.c) and run
 * libfuse's multi-threaded loop until unmount or SIGINT/SIGTERM.  SIGHUP
 * reopens the log file.  Exit status: 0 unmounted cleanly, 1 error, 2 usage.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "fs.h"
#include "fs_args.h"
#include "fs_kio.h"
#include "log.h"
#include "version.h"

/* SIGHUP: reopen the log file (a thread, so the handler does nothing unsafe). */
static void *hup_thread(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) == 0 && sig == SIGHUP)
            (void)ckpt_log_reopen();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static sigset_t hup;
    struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);
    struct fs_args a;
    struct fuse_session *se = NULL;
    fs_client *c = NULL;
    char err[512];
    int rc = 1;

    int prc = fs_args_parse(argc, argv, &a, err, sizeof(err));
    if (prc) {
        fprintf(stderr, "ckptfs: %s\n", err);
        if (prc == FS_ARGS_USAGE)
            fs_args_usage(stderr);
        return prc;
    }
    if (a.help || a.version) {
        if (a.help)
            fs_args_usage(stdout);
        else
            printf("ckptfs %s (libfuse %s)\n", CKPT_VERSION_STRING, fuse_pkgversion());
        fs_args_free(&a);
        return 0;
    }
    ckpt_log_init("ckptfs", a.log_level);
    if (a.log_file[0] && ckpt_log_set_file(a.log_file) < 0) {
        fprintf(stderr, "ckptfs: cannot open log file %s\n", a.log_file);
        goto out;
    }
    if (a.key_too_open)
        CKPT_LOG_WARN("cluster key %s is readable by group or others", a.key_file);
    int probe = fs_client_probe(&a.opts);
    if (probe < 0) {
        fprintf(stderr, "ckptfs: ckpt-meta at %s:%u: %s\n", a.opts.meta_host,
                a.opts.meta_port, ckpt_strerror(probe));
        goto out;
    }
    if (fs_client_create(&a.opts, &c) < 0) {
        fprintf(stderr, "ckptfs: out of memory\n");
        goto out;
    }
    /* fa owns the vector from here: libfuse may replace it while parsing. */
    fa = (struct fuse_args)FUSE_ARGS_INIT(a.fuse_argc, a.fuse_argv);
    fa.allocated = 1;
    a.fuse_argc = 0;
    a.fuse_argv = NULL;
    se = fuse_session_new(&fa, fs_ops(), fs_ops_size(), c);
    if (!se)
        goto out; /* libfuse said why (unknown option...) */
    if (fuse_set_signal_handlers(se) < 0)
        goto out;
    if (fuse_session_mount(se, a.mountpoint) < 0)
        goto out_handlers;
    int krc = fs_kio_install(se, c);
    if (krc < 0)
        CKPT_LOG_WARN("cannot hook /dev/fuse I/O (" CKPT_RC_FMT "): MAP_SHARED mmap of "
                      "files will fail with ENODEV", CKPT_RC_ARGS(krc));
    if (fuse_daemonize(a.foreground) < 0)
        goto out_unmount;
    if (!a.foreground && !a.log_file[0])
        ckpt_log_set_syslog();
    /* Threads start only now, after the fork of fuse_daemonize(), and
     * with the shutdown signals blocked: libfuse's handler ends the loop
     * only when the main thread (waiting in the loop) takes the signal,
     * so no other thread may.  SIGHUP goes to hup_thread. */
    sigset_t blk, term;
    sigemptyset(&blk);
    sigaddset(&blk, SIGTERM);
    sigaddset(&blk, SIGINT);
    sigaddset(&blk, SIGQUIT);
    term = blk;
    sigaddset(&blk, SIGHUP);
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &blk, NULL);
    pthread_t ht;
    if (pthread_create(&ht, NULL, hup_thread, &hup) == 0)
        pthread_detach(ht);
    int src = fs_client_start(c);
    if (src < 0) {
        CKPT_LOG_ERR("cannot start: " CKPT_RC_FMT, CKPT_RC_ARGS(src));
        goto out_unmount;
    }
    pthread_sigmask(SIG_UNBLOCK, &term, NULL);
    CKPT_LOG_INFO("serving %s (ckpt-meta %s:%u)", a.mountpoint, a.opts.meta_host,
                  a.opts.meta_port);
    /* The loops return 0, -errno, or the number of the signal that ended
     * them (SIGTERM/SIGINT: a clean shutdown). */
    if (a.single_thread) {
        rc = fuse_session_loop(se) < 0 ? 1 : 0;
        fs_kio_thread_done();
    } else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        if (!lc)
            goto out_unmount;
        unsigned n = a.opts.threads * 2 < 16 ? 16 : a.opts.threads * 2;
        fuse_loop_cfg_set_max_threads(lc, n);
        fuse_loop_cfg_set_idle_threads(lc, n / 2);
        rc = fuse_session_loop_mt(se, lc) < 0 ? 1 : 0;
        fuse_loop_cfg_destroy(lc);
    }
out_unmount:
    fuse_session_unmount(se);
out_handlers:
    fuse_remove_signal_handlers(se);
out:
    if (se)
        fuse_session_destroy(se);
    fs_client_destroy(c);
    fuse_opt_free_args(&fa);
    fs_args_free(&a);
    return rc;
}

/*
 * fs_args.h - the command line of ckptfs / mount.ckptfs, and its config.
 *
 *   ckptfs [-o OPTIONS] [-f] [-d] [-s] [-c FILE] [--set S.K=V]...
 *          [--log-level L] [--log-file F] [SOURCE] MOUNTPOINT
 *
 * SOURCE (as mount(8) and mount.fuse3 pass it, "ckptfs" by convention) is
 * ignored.  ckptfs options in -o (meta=, conf=, key_file=, transport=,
 * dirty_limit=, threads=, readahead=, attr_timeout=, entry_timeout=,
 * log_file=, log_level=, io=, writeback_cache, nosplice,
 * noparallel_writes) are consumed here and validated like the config
 * file; every other -o option (allow_other, default_permissions, ro...) is
 * kept for libfuse, which rejects the ones it does not know.
 *
 * Configuration: -c FILE or -o conf=FILE (missing: an error), else
 * $CKPTFS_CONF, else /etc/ckptfs/ckptfs.conf if it exists, else built-in
 * defaults; then --set overrides; then the -o options above.  The cluster
 * key is loaded from [cluster] key_file.
 */
#ifndef FS_ARGS_H
#define FS_ARGS_H

#include <stdbool.h>
#include <stdio.h>

#include "fs.h"

#define FS_ARGS_MAX_SETS 64

struct fs_args {
    struct fs_opts opts;
    int fuse_argc;              /* arguments for fuse_session_new() */
    char **fuse_argv;           /* owned; fs_args_free() */
    char mountpoint[4096];
    bool foreground;
    bool debug;
    bool single_thread;
    bool help;
    bool version;
    int log_level;              /* enum ckpt_log_level */
    char log_file[4096];        /* "" = stderr (foreground) or syslog */
    bool key_too_open;          /* warn: the key file is group/world readable */
    char key_file[256];
};

/* fs_args_parse() results besides 0. */
#define FS_ARGS_USAGE 2         /* bad command line: exit status 2 */
#define FS_ARGS_ERROR 1         /* bad config, key, option value: exit 1 */

/**
 * @brief Parse argv (not modified) into out.
 * @param[out] err  a one-line message on failure
 * @return 0, FS_ARGS_USAGE or FS_ARGS_ERROR.  -h/-V set out->help/version
 *         and return 0 without needing a mountpoint.  On failure out holds
 *         nothing to free.
 */
int fs_args_parse(int argc, char **argv, struct fs_args *out, char *err, size_t err_cap);

/** @brief Free what fs_args_parse() allocated.  Safe on a zeroed struct. */
void fs_args_free(struct fs_args *a);

/** @brief Print the usage text (matches man/man8/mount.ckptfs.8). */
void fs_args_usage(FILE *f);

#endif

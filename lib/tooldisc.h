/*
 * tooldisc.h - how the command-line tools (`ckpt`, `ckpt-admin`) find their
 * cluster and connect to it.
 *
 * A tool is given PATHs: either paths through a ckptfs mount or absolute
 * paths in the ckptfs namespace.  The configuration (ckpt-meta's address,
 * the cluster key file) is taken from, first match wins:
 *   1. -c FILE                         (missing file: an error)
 *   2. $CKPTFS_CONF                    (missing file: an error)
 *   3. the mount holding PATH (or the current directory when the command
 *      names no path): ckptfs records the absolute path of the config file
 *      it was mounted with in the mount's source ("fsname"), as
 *      "ckptfs:/path/to/ckptfs.conf", which /proc/self/mountinfo shows;
 *   4. /etc/ckptfs/ckptfs.conf         (missing: built-in defaults)
 * then --set SECTION.KEY=VALUE overrides.  A mount made with built-in
 * defaults only, or with -o meta=/--set overrides that its config file does
 * not hold, cannot be found this way: give -c.
 *
 * mountinfo (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] -
 * FSTYPE SOURCE SUPEROPTS"; the kernel escapes space, tab, newline and
 * backslash in MOUNTPOINT and SOURCE as \ooo (octal).
 *
 * Every function is reentrant; none keeps state between calls.
 */
#ifndef CKPT_TOOLDISC_H
#define CKPT_TOOLDISC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "cclient.h"
#include "config.h"
#include "mclient.h"
#include "net.h"

/** The prefix of the fsname ckptfs mounts with when it has a config file. */
#define CKPT_TOOLDISC_FSNAME_PREFIX "ckptfs:"
/** The mountinfo file read by default. */
#define CKPT_TOOLDISC_MOUNTINFO "/proc/self/mountinfo"

/** One line of mountinfo, unescaped. */
struct ckpt_tooldisc_mount {
    char point[PATH_MAX];   /* mount point */
    char fstype[128];       /* "fuse.ckptfs", "fuse", "ext4", ... */
    char source[PATH_MAX];  /* mount source: "ckptfs:/etc/ckptfs/ckptfs.conf", ... */
};

/**
 * @brief Undo mountinfo's \ooo octal escapes in place.  Backslashes not
 * followed by three octal digits are kept as they are.
 * @param[in,out] s  a NUL-terminated string
 */
void ckpt_tooldisc_unescape(char *s);

/**
 * @brief Parse one mountinfo line.
 * @param[in]  line  one line, with or without its trailing newline
 * @param[out] out   the unescaped mount point, fstype and source
 * @return 0; -EINVAL when the line is malformed (fewer than 5 fields, no
 *         " - " separator, no fstype) or a field does not fit in out.
 *         out is undefined after an error.
 */
int ckpt_tooldisc_parse_line(const char *line, struct ckpt_tooldisc_mount *out);

/**
 * @brief Find the FUSE mount (fstype "fuse" or "fuse.*") holding abs: the
 * one with the longest mount point that is abs or a parent of it.  Lines
 * that do not parse are skipped.
 * @param[in]  mountinfo  file to read; NULL means /proc/self/mountinfo
 * @param[in]  abs        an absolute path without symlinks (realpath(3))
 * @param[out] out        the mount found; undefined unless 0 is returned
 * @return 0; -ENOENT when no FUSE mount holds abs; -errno from fopen.
 */
int ckpt_tooldisc_find_mount(const char *mountinfo, const char *abs,
                             struct ckpt_tooldisc_mount *out);

/**
 * @brief The config file a ckptfs mount recorded in its source.
 * @param[in]  source  a mount source, e.g. "ckptfs:/etc/ckptfs/ckptfs.conf"
 * @param[out] out     the path after the prefix (absolute)
 * @return 0; -ENOENT when source has no prefix or no absolute path after
 *         it; -ENAMETOOLONG when it does not fit in out_cap.
 */
int ckpt_tooldisc_conf_of_source(const char *source, char *out, size_t out_cap);

/**
 * @brief The fsname ckptfs passes to libfuse (-o fsname=...) for config
 * file conf: CKPT_TOOLDISC_FSNAME_PREFIX + conf, with ',' and '\' escaped
 * by a backslash as libfuse's option parser wants.
 * @param[in]  conf  an absolute path
 * @return 0; -EINVAL when conf is not absolute; -ENAMETOOLONG when the
 *         result does not fit in out_cap.
 */
int ckpt_tooldisc_fsname(const char *conf, char *out, size_t out_cap);

/** What ckpt_tooldisc_config() needs. */
struct ckpt_tooldisc_opts {
    const char *conf;               /* -c FILE, or NULL */
    const char *const *sets;        /* --set SECTION.KEY=VALUE, nsets of them */
    int nsets;
    const char *path;               /* a PATH the command names, or NULL: "." */
    const char *mountinfo;          /* NULL: /proc/self/mountinfo */
};

/**
 * @brief Load the configuration as described at the top of this file and
 * check it (ckpt_config_check(); ckpt-meta's address must be set).
 * @param[out] cfg        initialised here; pair with ckpt_config_free()
 *                        whatever the result
 * @param[out] used       the file loaded, or "" for built-in defaults
 * @param[out] err        a one-line reason on failure (file, line, key)
 * @return 0; CKPT_E_CONFIG (bad file, bad --set, no meta address);
 *         -ENOENT (an explicit -c or $CKPTFS_CONF file, or the file a
 *         mount recorded, is missing); -ENOMEM.
 */
int ckpt_tooldisc_config(const struct ckpt_tooldisc_opts *o, struct ckpt_config *cfg,
                         char *used, size_t used_cap, char *err, size_t err_cap);

/** The connections of a tool to ckpt-meta. */
struct ckpt_tooldisc_conn {
    ckpt_net *net;
    ckpt_mclient *mc;       /* namespace (LOOKUP, GETATTR, ...), a session */
    ckpt_cclient *cc;       /* checkpoint messages */
    ckpt_peer *meta;        /* raw calls (admin messages); NULL unless asked */
    bool key_too_open;      /* the key file is group/world readable: warn */
};

/**
 * @brief Load the cluster key and connect to ckpt-meta over TCP.
 * @param[in]  cfg        from ckpt_tooldisc_config()
 * @param[in]  prog       the tool's name, for ckpt-meta's logs ("ckpt")
 * @param[in]  want_peer  also create out->meta
 * @param[out] out        zeroed first; on failure everything created is
 *                        already freed
 * @param[out] err        a one-line reason on failure
 * @return 0; the key file's error (-ENOENT, -EACCES, CKPT_E_CONFIG); the
 *         first SESSION call's error (-ECONNREFUSED, CKPT_E_AUTH, ...);
 *         -ENOMEM.
 */
int ckpt_tooldisc_connect(const struct ckpt_config *cfg, const char *prog, bool want_peer,
                          struct ckpt_tooldisc_conn *out, char *err, size_t err_cap);

/** @brief Close and free what ckpt_tooldisc_connect() made.  A zeroed
 *  struct is a no-op; conn is zeroed afterwards. */
void ckpt_tooldisc_disconnect(struct ckpt_tooldisc_conn *conn);

#endif

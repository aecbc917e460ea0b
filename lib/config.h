/*
 * config.h - the ckptfs configuration file, typed.
 *
 * Every ckptfs program reads one INI file (default /etc/ckptfs/ckptfs.conf,
 * see ckptfs.conf(5)) with the sections [cluster] [meta] [node] [client]
 * [layout], then applies command-line overrides ("--set section.key=value").
 * This module turns both into a struct ckpt_config: one nested struct per
 * section, one typed field per key (sizes in bytes, durations in
 * milliseconds, enums as enums, addresses split into host and port).  There
 * is no key/value bag: a program reads cfg->node.io_threads, not a string.
 *
 * Validation is complete at load time: an unknown section or key, a value of
 * the wrong type or out of range, a key given twice, or a conflict between
 * keys is rejected with a message naming the file, line, section, key, value
 * and what is allowed, e.g.
 *   /etc/ckptfs/ckptfs.conf:12: [node] io_threads = 0: an integer from 1 to 256
 *
 * struct ckpt_config holds no pointers and no heap memory: strings are
 * bounded arrays (an INI line is at most 198 bytes with Debian's libinih, so
 * no value can be longer than CKPT_CONFIG_VALUE_MAX anyway).  It may be
 * copied by value.  The functions are reentrant: each works only on the
 * struct it is given (libinih's global options are never changed).
 *
 * KEYS (type, default, allowed values; ckptfs.conf(5) says the same)
 *
 *  [cluster]
 *   name          name      "ckptfs"   1-63 chars of A-Z a-z 0-9 . _ -
 *   key_file      path      /etc/ckptfs/cluster.key   absolute path
 *   meta          host:port 127.0.0.1:7400   port 1-65535
 *   transport     enum      auto       tcp | rdma | auto
 *  [meta]
 *   listen        host:port 0.0.0.0:7400   port 0-65535 (0: any free port)
 *   data_dir      path      /var/lib/ckptfs/meta
 *   down_after    duration  5s         1s..1h
 *   out_after     duration  60s        1s..7d (168h), and >= down_after
 *   metrics_listen host:port or empty  empty (no metrics endpoint)
 *   log_file      path or empty        empty (stderr)
 *   log_level     enum      info       err | warn | info | debug
 *  [node]
 *   listen        host:port 0.0.0.0:7401
 *   target        path, repeatable, up to 64   none
 *   reserve       size or percent      5%   a size, or 0%..90% of capacity
 *   sync          enum      commit     commit | always | never
 *   io_threads    integer   8          1..256
 *   rack          name or empty        empty (the node is its own domain)
 *   name          name      host name (up to its first '.')
 *   metrics_listen, log_file, log_level   as in [meta]
 *  [client]
 *   dirty_limit   size      2G         64M..1T
 *   threads       integer   8          1..256
 *   readahead     size      32M        0..1G (0: no read-ahead)
 *   attr_timeout  duration  1s         0..1h
 *   entry_timeout duration  1s         0..1h
 *   buffer_keep   duration  30m        0..24h (0: free write-back buffers at once)
 *   log_level     enum      info
 *  [layout]
 *   ec            K+M       4+2        1 <= K <= 16, 0 <= M <= 4
 *   chunk         size      1M         multiple of 4K within 4K..64M
 *   width         integer   0          0 (= k+m) or k+m..64
 *
 * VALUE SYNTAX
 *   size      decimal digits with an optional K, M, G or T suffix (either
 *             case, optionally followed by "iB"), powers of 1024: 4096, 64K,
 *             1M, 2G, 1T, 1MiB.  No sign, no fraction, no blanks.
 *   percent   decimal digits followed by '%' (only where stated).
 *   duration  decimal digits followed by ms, s, m or h (500ms, 5s, 2m, 1h);
 *             a bare 0 is also accepted.
 *   boolean   true/false, yes/no, on/off, 1/0 (no key uses one yet; see
 *             ckpt_parse_bool()).
 *   host:port IPv4 address, host name or [IPv6 address], a colon, a port.
 *   path      absolute; values never start or end with blanks, contain
 *             control characters, or contain a blank followed by ';' or '#'
 *             (which would start a comment).
 */
#ifndef CKPT_CONFIG_H
#define CKPT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "layout.h"

#define CKPT_CONFIG_DEFAULT_PATH "/etc/ckptfs/ckptfs.conf"

#define CKPT_CONFIG_VALUE_MAX 180   /* longest value of any key, bytes */
#define CKPT_CONFIG_NAME_MAX 63     /* cluster, node and rack names */
#define CKPT_CONFIG_HOST_MAX 253    /* host part of host:port (DNS limit) */
#define CKPT_CONFIG_MAX_TARGETS 64  /* [node] target lines */
#define CKPT_CONFIG_FILE_MAX (1u << 20) /* larger files are rejected */

/* [cluster] transport */
/* The values equal enum ckpt_transport_kind of net.h (checked there), so a
 * configured transport can be handed to ckpt_net_create() as it is. */
enum ckpt_config_transport {
    CKPT_CONFIG_TRANSPORT_TCP = 0,
    CKPT_CONFIG_TRANSPORT_RDMA = 1,
    CKPT_CONFIG_TRANSPORT_AUTO = 2, /* rdma where a device is present */
};

/* [node] sync: when a chunk write reaches stable storage. */
enum ckpt_config_sync {
    CKPT_CONFIG_SYNC_COMMIT = 0, /* fsync before acknowledging fsync/commit */
    CKPT_CONFIG_SYNC_ALWAYS = 1, /* fsync every chunk before acknowledging */
    CKPT_CONFIG_SYNC_NEVER = 2,  /* never fsync (tests, throw-away data) */
};

/* A parsed host:port.  host is "" (and port 0) for an empty, optional key.
 * IPv6 addresses are stored without their brackets. */
struct ckpt_config_addr {
    char host[CKPT_CONFIG_HOST_MAX + 1];
    uint16_t port;
};

struct ckpt_config_cluster {
    char name[CKPT_CONFIG_NAME_MAX + 1];
    char key_file[CKPT_CONFIG_VALUE_MAX + 1];
    struct ckpt_config_addr meta;      /* where ckpt-meta listens */
    enum ckpt_config_transport transport;
};

struct ckpt_config_meta {
    struct ckpt_config_addr listen;
    char data_dir[CKPT_CONFIG_VALUE_MAX + 1];
    uint64_t down_after_ms;            /* missed heartbeats -> DOWN */
    uint64_t out_after_ms;             /* missed heartbeats -> OUT, rebuild */
    struct ckpt_config_addr metrics_listen; /* host "" = no /metrics */
    char log_file[CKPT_CONFIG_VALUE_MAX + 1]; /* "" = stderr */
    int log_level;                     /* enum ckpt_log_level */
};

struct ckpt_config_node {
    struct ckpt_config_addr listen;
    char targets[CKPT_CONFIG_MAX_TARGETS][CKPT_CONFIG_VALUE_MAX + 1];
    uint32_t ntargets;                 /* valid entries of targets[] */
    /* reserve: free space kept back on every target.  reserve_is_pct says
     * which of the two fields is meant; the other is 0. */
    bool reserve_is_pct;
    uint32_t reserve_pct;              /* 0..90 */
    uint64_t reserve_bytes;
    enum ckpt_config_sync sync;
    uint32_t io_threads;
    char rack[CKPT_CONFIG_NAME_MAX + 1]; /* "" = the node is its own domain */
    char name[CKPT_CONFIG_NAME_MAX + 1];
    struct ckpt_config_addr metrics_listen;
    char log_file[CKPT_CONFIG_VALUE_MAX + 1];
    int log_level;
    /* Internal: who last filled targets[] (0 none, 1 a file, 2 overrides);
     * the first target of a new source replaces the list. */
    uint8_t targets_source;
};

struct ckpt_config_client {
    uint64_t dirty_limit_bytes;
    uint32_t threads;
    uint64_t readahead_bytes;
    uint64_t attr_timeout_ms;
    uint64_t entry_timeout_ms;
    uint64_t buffer_keep_ms;
    int log_level;
};

struct ckpt_config_layout {
    /* The cluster's default file layout, resolved: def.width is the
     * configured width, or k+m when that is 0.  targets[] and flags are 0. */
    struct ckpt_layout def;
    uint16_t width;                    /* [layout] width as written: 0 = k+m */
};

struct ckpt_config {
    struct ckpt_config_cluster cluster;
    struct ckpt_config_meta meta;
    struct ckpt_config_node node;
    struct ckpt_config_client client;
    struct ckpt_config_layout layout;
};

/**
 * @brief Fill cfg with the defaults of every key (the table above).
 * node.name becomes the host name up to its first '.', or "localhost" when
 * that is not a valid name.  Cannot fail.  Thread-safe.
 * @param[out] cfg  overwritten entirely
 */
void ckpt_config_init(struct ckpt_config *cfg);

/**
 * @brief Release what cfg holds and reset it to the defaults.
 * The struct owns no heap memory today; pair every ckpt_config_init() with
 * this call anyway so that a future pointer field needs no caller change.
 * @param[in,out] cfg  NULL is a no-op
 */
void ckpt_config_free(struct ckpt_config *cfg);

/**
 * @brief Read the INI file at path and apply every key in it to cfg.
 *
 * Keys absent from the file keep the values cfg already has (normally the
 * defaults from ckpt_config_init()).  The first [node] target line of the
 * file replaces any target list cfg had.  After the whole file is applied,
 * the cross-key rules of ckpt_config_check() are verified.
 *
 * Comments: lines whose first non-blank character is ';' or '#', and the
 * rest of a line from a ';' preceded by a blank.  Leading blanks are ignored
 * (there are no continuation lines).
 *
 * @param[in,out] cfg   a config from ckpt_config_init(); unchanged on error
 * @param[in] path      file to read (at most CKPT_CONFIG_FILE_MAX bytes)
 * @param[out] err      on error, a NUL-terminated message such as
 *                      "PATH:LINE: [section] key = value: what is allowed";
 *                      may be NULL when err_cap is 0
 * @param[in] err_cap   size of err; longer messages are truncated
 * @return 0 on success;
 *         CKPT_E_CONFIG for any content error (syntax, unknown section or
 *                   key, bad value, key repeated, conflict between keys,
 *                   line too long, NUL byte, file too large);
 *         -ENOENT   the file does not exist ("PATH: cannot read: ...");
 *         -EACCES, -EISDIR, -EIO, ...  other errors opening or reading it;
 *         -ENOMEM   out of memory.
 */
int ckpt_config_load(struct ckpt_config *cfg, const char *path, char *err,
                     size_t err_cap);

/**
 * @brief Like ckpt_config_load(), for a config held in memory.
 * @param[in] text  len bytes, need not be NUL-terminated; a NUL byte inside
 *                  is an error
 * @param[in] name  what to call the text in messages (e.g. "<string>")
 * @return 0, CKPT_E_CONFIG or -ENOMEM, as ckpt_config_load().
 */
int ckpt_config_load_string(struct ckpt_config *cfg, const char *text,
                            size_t len, const char *name, char *err,
                            size_t err_cap);

/**
 * @brief Set one key, with the same validation as the file (a command-line
 * override).  For [node] target, the first override replaces the list from
 * the file and later ones append to it.
 *
 * Only the key itself is validated; rules between keys (out_after >=
 * down_after, width >= k+m) are checked by ckpt_config_check(), which the
 * caller runs after the last override.
 *
 * @param[in] origin  names the source in messages, e.g. "--set"
 * @param[out] err    "ORIGIN: [section] key = value: what is allowed"
 * @return 0, or CKPT_E_CONFIG with cfg unchanged.
 */
int ckpt_config_set(struct ckpt_config *cfg, const char *section,
                    const char *key, const char *value, const char *origin,
                    char *err, size_t err_cap);

/**
 * @brief ckpt_config_set() for an argument "section.key=value" (the value
 * may itself contain '=' and '.'); messages name the origin "command line".
 * @return 0, or CKPT_E_CONFIG with cfg unchanged.
 */
int ckpt_config_set_arg(struct ckpt_config *cfg, const char *arg, char *err,
                        size_t err_cap);

/**
 * @brief Check the rules between keys: [meta] out_after >= down_after, and
 * [layout] width 0 or >= k+m (ckpt_layout_check()).  ckpt_config_load()
 * runs it; programs run it again after their last override.  A config that
 * fails it must not be used.
 * @return 0, or CKPT_E_CONFIG with a message naming both keys.
 */
int ckpt_config_check(const struct ckpt_config *cfg, char *err,
                      size_t err_cap);

/**
 * @brief Write cfg as a complete INI file: every section and key, defaults
 * included, one target line per target.  For a cfg that passes
 * ckpt_config_check(), loading the output into a fresh ckpt_config_init()
 * config gives back the same value for every key.
 * @param[in] f  open for writing; flushed, not closed
 * @return 0, or a negative errno when writing or flushing fails.
 */
int ckpt_config_write(const struct ckpt_config *cfg, FILE *f);

/**
 * @brief Parse a size (see VALUE SYNTAX): "4096", "64K", "1M", "2G", "1T".
 * @return 0, or -EINVAL (syntax, sign, trailing junk, overflow of 2^64).
 */
int ckpt_parse_size(const char *s, uint64_t *out);

/**
 * @brief Parse a duration into milliseconds: "500ms", "5s", "2m", "1h", "0".
 * @return 0, or -EINVAL (no unit, unknown unit, trailing junk, overflow).
 */
int ckpt_parse_duration_ms(const char *s, uint64_t *out);

/**
 * @brief Parse a boolean: true/false, yes/no, on/off, 1/0 (any case).
 * @return 0, or -EINVAL.
 */
int ckpt_parse_bool(const char *s, bool *out);

/**
 * @brief Parse "host:port": an IPv4 address, a host name (labels of letters,
 * digits, '-' and '_', at most 253 bytes) or an IPv6 address in brackets,
 * then ':' and a decimal port 0..65535 (callers decide whether 0 is allowed).
 * @param[out] host  the host, IPv6 without brackets; host_cap bytes
 * @return 0, or -EINVAL (syntax, bad address, port out of range, host does
 *         not fit in host_cap).  *host and *port are untouched on error.
 */
int ckpt_parse_hostport(const char *s, char *host, size_t host_cap,
                        uint16_t *port);

#endif

/*
 * log.h - one logging macro family for every ckptfs program.
 *
 * Records look like
 *   2026-11-23T01:20:53.123Z ckpt-node[4242] WARN chunk 17/3/1: crc mismatch
 * and debug records also carry func:line.  The level check happens in the
 * macro, before any argument is evaluated, so a disabled CKPT_LOG_DEBUG with
 * an expensive argument costs one load and one compare.
 *
 * The sink is stderr by default; daemons may switch to a file (appended,
 * reopened on ckpt_log_reopen() for logrotate) or to syslog.  The level and
 * sink are the only process-wide state (STYLE G.24).  Thread-safe: each record
 * is formatted into a local buffer and written with one write(2).
 */
#ifndef CKPT_LOG_H
#define CKPT_LOG_H

enum ckpt_log_level {
    CKPT_LOG_LVL_ERR = 3,   /* syslog LOG_ERR */
    CKPT_LOG_LVL_WARN = 4,  /* LOG_WARNING */
    CKPT_LOG_LVL_INFO = 6,  /* LOG_INFO */
    CKPT_LOG_LVL_DEBUG = 7, /* LOG_DEBUG */
};

/* Current level; records above it are dropped.  Read by the macros only. */
extern int ckpt_log_level_cur;

/**
 * @brief Set the component name (e.g. "ckpt-meta") and level.
 * @param[in] component  copied (truncated to 31 bytes); NULL keeps the old one
 * @param[in] level      one of enum ckpt_log_level
 * Call before starting threads.
 */
void ckpt_log_init(const char *component, int level);

/**
 * @brief Parse a level name ("err", "error", "warn", "info", "debug").
 * @return the level, or -EINVAL for an unknown name.
 */
int ckpt_log_level_parse(const char *name);

/**
 * @brief Send records to a file (appended) instead of stderr.
 * @param[in] path  file to open O_APPEND|O_CREAT; NULL returns to stderr
 * @return 0, or negative errno if the file cannot be opened (sink unchanged).
 */
int ckpt_log_set_file(const char *path);

/** @brief Send records to syslog(3) under the component name. */
void ckpt_log_set_syslog(void);

/** @brief Reopen the log file (after rotation).  @return 0 or negative errno. */
int ckpt_log_reopen(void);

/** Internal: format and write one record.  Use the macros. */
void ckpt_log_write(int level, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CKPT_LOG_AT(lvl, ...)                                                 \
    do {                                                                      \
        if (ckpt_log_level_cur >= (lvl))                                      \
            ckpt_log_write((lvl), __func__, __LINE__, __VA_ARGS__);           \
    } while (0)
#define CKPT_LOG_ERR(...) CKPT_LOG_AT(CKPT_LOG_LVL_ERR, __VA_ARGS__)
#define CKPT_LOG_WARN(...) CKPT_LOG_AT(CKPT_LOG_LVL_WARN, __VA_ARGS__)
#define CKPT_LOG_INFO(...) CKPT_LOG_AT(CKPT_LOG_LVL_INFO, __VA_ARGS__)
#define CKPT_LOG_DEBUG(...) CKPT_LOG_AT(CKPT_LOG_LVL_DEBUG, __VA_ARGS__)

#endif

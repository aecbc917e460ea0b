/*
 * log.c - see log.h.
 *
 * DESIGN: the sink is an fd (stderr, or a file opened O_APPEND) or syslog.
 * A record is formatted into a 2 KiB stack buffer and emitted by one write(2),
 * which keeps lines from different threads whole.  Longer records are cut and
 * end in "...".  sink_lock protects the fd and path against reopen; a write
 * failure is ignored (there is nowhere left to report it).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int ckpt_log_level_cur = CKPT_LOG_LVL_INFO;

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_component[32] = "ckptfs"; /* protected by sink_lock */
static int log_fd = 2;                      /* protected by sink_lock */
static int log_syslog;                      /* protected by sink_lock */
static char log_path[4096];                 /* protected by sink_lock */

void ckpt_log_init(const char *component, int level)
{
    pthread_mutex_lock(&sink_lock);
    if (component)
        snprintf(log_component, sizeof(log_component), "%s", component);
    ckpt_log_level_cur = level;
    pthread_mutex_unlock(&sink_lock);
}

int ckpt_log_level_parse(const char *name)
{
    static const struct { const char *n; int l; } tab[] = {
        {"err", CKPT_LOG_LVL_ERR},   {"error", CKPT_LOG_LVL_ERR},
        {"warn", CKPT_LOG_LVL_WARN}, {"warning", CKPT_LOG_LVL_WARN},
        {"info", CKPT_LOG_LVL_INFO}, {"debug", CKPT_LOG_LVL_DEBUG},
    };
    for (size_t i = 0; name && i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcasecmp(name, tab[i].n) == 0)
            return tab[i].l;
    return -EINVAL;
}

static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int ckpt_log_set_file(const char *path)
{
    int fd = 2;
    if (path) {
        fd = open_log_file(path);
        if (fd < 0)
            return fd;
    }
    pthread_mutex_lock(&sink_lock);
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    log_syslog = 0;
    snprintf(log_path, sizeof(log_path), "%s", path ? path : "");
    pthread_mutex_unlock(&sink_lock);
    return 0;
}

void ckpt_log_set_syslog(void)
{
    pthread_mutex_lock(&sink_lock);
    openlog(log_component, LOG_PID, LOG_DAEMON);
    log_syslog = 1;
    pthread_mutex_unlock(&sink_lock);
}

int ckpt_log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&sink_lock);
    if (log_path[0]) {
        int fd = open_log_file(log_path);
        if (fd < 0) {
            rc = fd;
        } else {
            if (log_fd > 2)
                close(log_fd);
            log_fd = fd;
        }
    }
    pthread_mutex_unlock(&sink_lock);
    return rc;
}

static const char *level_name(int level)
{
    switch (level) {
    case CKPT_LOG_LVL_ERR: return "ERROR";
    case CKPT_LOG_LVL_WARN: return "WARN";
    case CKPT_LOG_LVL_INFO: return "INFO";
    default: return "DEBUG";
    }
}

void ckpt_log_write(int level, const char *func, int line, const char *fmt, ...)
{
    char buf[2048];
    size_t n = 0;
    int saved_errno = errno;
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&sink_lock);
    int use_syslog = log_syslog;
    if (!use_syslog) {
        n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s[%d] %s ",
                              ts.tv_nsec / 1000000L, log_component, (int)getpid(),
                              level_name(level));
    }
    pthread_mutex_unlock(&sink_lock);
    if (level >= CKPT_LOG_LVL_DEBUG && n < sizeof(buf))
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s:%d: ", func, line);
    if (n < sizeof(buf)) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (n >= sizeof(buf) - 1) {
        n = sizeof(buf) - 1;
        memcpy(buf + n - 4, "...", 3);
        n -= 1;
    }
    if (use_syslog) {
        syslog(level, "%s", buf);
    } else {
        buf[n++] = '\n';
        pthread_mutex_lock(&sink_lock);
        ssize_t wr = write(log_fd, buf, n);
        pthread_mutex_unlock(&sink_lock);
        (void)wr; /* nowhere to report a failing log sink */
    }
    errno = saved_errno;
}

/*
 * metrics.c - see metrics.h.
 *
 * DESIGN: metrics are kept in registration order in a linked list guarded
 * by m->lock, which is taken only to register and to render (never on the
 * hot path: updates are relaxed atomics on the metric itself).  Metrics of
 * one name are rendered together under one HELP/TYPE header, as the
 * exposition format requires, even when registered apart (per-target
 * labels).  The endpoint is one thread doing blocking accept, then one
 * request per connection with a 5 s receive timeout, answered with
 * "Connection: close".
 */
#include "metrics.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"

struct metric_entry {
    struct metric_entry *next;
    char *name;
    char *help;
    char *labels;
    enum ckpt_metric_type type;
    ckpt_metric val;
    ckpt_metric_fn fn;
    void *ctx;
};

struct ckpt_metrics {
    pthread_mutex_t lock;
    struct metric_entry *head, *tail; /* protected by lock */
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    bool serving;
    atomic_int stopping;
};

int ckpt_metrics_create(ckpt_metrics **out)
{
    ckpt_metrics *m = ckpt_calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    m->listen_fd = -1;
    *out = m;
    return 0;
}

void ckpt_metrics_destroy(ckpt_metrics *m)
{
    if (!m)
        return;
    if (m->serving) {
        atomic_store(&m->stopping, 1);
        (void)shutdown(m->listen_fd, SHUT_RDWR);
        pthread_join(m->thread, NULL);
    }
    if (m->listen_fd >= 0)
        close(m->listen_fd);
    while (m->head) {
        struct metric_entry *e = m->head;
        m->head = e->next;
        ckpt_free(e->name);
        ckpt_free(e->help);
        ckpt_free(e->labels);
        ckpt_free(e);
    }
    pthread_mutex_destroy(&m->lock);
    ckpt_free(m);
}

static bool valid_name(const char *n)
{
    if (!n || !*n)
        return false;
    for (const char *p = n; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                     *p == ':';
        if (!alpha && !(p != n && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}

/* Labels are written verbatim inside {}: refuse what would break a line. */
static bool valid_labels(const char *l)
{
    return !l || (!strchr(l, '\n') && !strchr(l, '}') && !strchr(l, '{'));
}

static int add_entry(ckpt_metrics *m, const char *name, const char *help, const char *labels,
                     enum ckpt_metric_type type, ckpt_metric_fn fn, void *ctx,
                     struct metric_entry **out)
{
    if (!m || !valid_name(name) || !valid_labels(labels) || (help && strchr(help, '\n')))
        return -EINVAL;
    struct metric_entry *e = ckpt_calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->name = ckpt_strdup(name);
    e->help = ckpt_strdup(help ? help : "");
    e->labels = labels && *labels ? ckpt_strdup(labels) : NULL;
    if (!e->name || !e->help || (labels && *labels && !e->labels)) {
        ckpt_free(e->name);
        ckpt_free(e->help);
        ckpt_free(e->labels);
        ckpt_free(e);
        return -ENOMEM;
    }
    e->type = type;
    e->fn = fn;
    e->ctx = ctx;
    atomic_init(&e->val.value, 0);
    pthread_mutex_lock(&m->lock);
    if (m->tail)
        m->tail->next = e;
    else
        m->head = e;
    m->tail = e;
    pthread_mutex_unlock(&m->lock);
    *out = e;
    return 0;
}

int ckpt_metrics_add(ckpt_metrics *m, const char *name, const char *help,
                     enum ckpt_metric_type type, const char *labels, ckpt_metric **out)
{
    struct metric_entry *e;
    int rc = add_entry(m, name, help, labels, type, NULL, NULL, &e);
    if (rc == 0)
        *out = &e->val;
    return rc;
}

int ckpt_metrics_add_fn(ckpt_metrics *m, const char *name, const char *help,
                        enum ckpt_metric_type type, const char *labels, ckpt_metric_fn fn,
                        void *ctx)
{
    struct metric_entry *e;
    if (!fn)
        return -EINVAL;
    return add_entry(m, name, help, labels, type, fn, ctx, &e);
}

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + (size_t)n + 1)
            ncap *= 2;
        char *np = ckpt_realloc(b->p, ncap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

long ckpt_metrics_render(ckpt_metrics *m, char **out)
{
    struct sbuf b = {0};
    pthread_mutex_lock(&m->lock);
    for (struct metric_entry *e = m->head; e; e = e->next) {
        /* Print each name once, with all its series, at its first entry. */
        bool seen = false;
        for (struct metric_entry *p = m->head; p != e; p = p->next)
            if (strcmp(p->name, e->name) == 0) {
                seen = true;
                break;
            }
        if (seen)
            continue;
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", e->name, e->help, e->name,
                  e->type == CKPT_METRIC_COUNTER ? "counter" : "gauge");
        for (struct metric_entry *s = e; s; s = s->next) {
            if (strcmp(s->name, e->name) != 0)
                continue;
            const char *lo = s->labels ? "{" : "", *lc = s->labels ? "}" : "";
            if (s->fn)
                sb_printf(&b, "%s%s%s%s %.17g\n", s->name, lo, s->labels ? s->labels : "", lc,
                          s->fn(s->ctx));
            else
                sb_printf(&b, "%s%s%s%s %llu\n", s->name, lo, s->labels ? s->labels : "", lc,
                          (unsigned long long)atomic_load_explicit(&s->val.value,
                                                                   memory_order_relaxed));
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (!b.p)
        sb_printf(&b, "%s", "");
    if (b.oom) {
        ckpt_free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    return (long)b.len;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

static void reply(int fd, const char *status, const char *ctype, const char *body, size_t len)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, ctype, len);
    send_all(fd, hdr, (size_t)n);
    send_all(fd, body, len);
}

static void serve_one(ckpt_metrics *m, int fd)
{
    char req[2048];
    size_t got = 0;
    struct timeval tv = {5, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* Read until the end of the request head (or the buffer is full). */
    while (got < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = '\0';
    static const char nf[] = "not found: try /metrics\n";
    static const char bad[] = "bad request\n";
    if (strncmp(req, "GET ", 4) != 0 || !strchr(req + 4, ' ')) {
        reply(fd, "400 Bad Request", "text/plain", bad, sizeof(bad) - 1);
        return;
    }
    const char *path = req + 4;
    size_t plen = (size_t)(strchr(path, ' ') - path);
    if (!((plen == 8 && strncmp(path, "/metrics", 8) == 0) ||
          (plen > 8 && strncmp(path, "/metrics?", 9) == 0))) {
        reply(fd, "404 Not Found", "text/plain", nf, sizeof(nf) - 1);
        return;
    }
    char *text = NULL;
    long n = ckpt_metrics_render(m, &text);
    if (n < 0) {
        static const char oom[] = "out of memory\n";
        reply(fd, "500 Internal Server Error", "text/plain", oom, sizeof(oom) - 1);
        return;
    }
    reply(fd, "200 OK", "text/plain; version=0.0.4", text, (size_t)n);
    ckpt_free(text);
}

static void *metrics_thread(void *arg)
{
    ckpt_metrics *m = arg;
    while (!atomic_load(&m->stopping)) {
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (atomic_load(&m->stopping) || errno == EINVAL)
                break;
            usleep(100000); /* out of fds: do not spin */
            continue;
        }
        serve_one(m, fd);
        close(fd);
    }
    return NULL;
}

int ckpt_metrics_serve(ckpt_metrics *m, const char *host, uint16_t port)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[8];
    if (m->serving)
        return -EALREADY;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (host && (!*host || strcmp(host, "*") == 0))
        host = NULL;
    if (getaddrinfo(host, portstr, &hints, &ai) != 0)
        return -EINVAL;
    int rc = -EADDRNOTAVAIL, fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int one = 1;
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof(ss);
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
                m->port = ntohs(ss.ss_family == AF_INET6
                                    ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);
                rc = 0;
                break;
            }
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (rc < 0)
        return rc;
    m->listen_fd = fd;
    rc = -pthread_create(&m->thread, NULL, metrics_thread, m);
    if (rc < 0) {
        close(fd);
        m->listen_fd = -1;
        return rc;
    }
    m->serving = true;
    return 0;
}

uint16_t ckpt_metrics_port(const ckpt_metrics *m)
{
    return m->serving ? m->port : 0;
}

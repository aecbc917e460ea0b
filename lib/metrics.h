/*
 * metrics.h - Prometheus metrics over HTTP for the ckptfs daemons.
 *
 * A daemon creates one registry, registers counters and gauges (each a
 * 64-bit atomic it updates on its hot paths with ckpt_metric_add/set: one
 * relaxed atomic operation, no lock), or gauges computed on demand by a
 * callback, and starts the HTTP endpoint on [meta]/[node] metrics_listen.
 * GET /metrics answers the Prometheus text exposition format (version
 * 0.0.4); anything else gets 404, a malformed request 400.  The endpoint
 * has its own thread and serves one scrape at a time (scrapes are rare and
 * small); a client that stalls is dropped after 5 s.
 *
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels are a fixed string
 * such as `target="3"` given at registration.
 */
#ifndef CKPT_METRICS_H
#define CKPT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ckpt_metrics ckpt_metrics;

enum ckpt_metric_type {
    CKPT_METRIC_COUNTER,
    CKPT_METRIC_GAUGE,
};

/* A metric's value; registered metrics live until the registry is freed. */
typedef struct ckpt_metric {
    atomic_uint_fast64_t value;
} ckpt_metric;

/* Computes a gauge when scraped (called on the endpoint's thread). */
typedef double (*ckpt_metric_fn)(void *ctx);

/** @brief Create an empty registry.  @return 0 or -ENOMEM. */
int ckpt_metrics_create(ckpt_metrics **out);
/** @brief Stop the endpoint (if started) and free everything.  NULL ok. */
void ckpt_metrics_destroy(ckpt_metrics *m);

/**
 * @brief Register a counter or gauge.
 * @param[in] name    e.g. "ckptfs_node_chunk_writes_total" (copied)
 * @param[in] help    one line (copied)
 * @param[in] labels  e.g. "target=\"3\"" or NULL (copied)
 * @param[out] out    the value to update; owned by the registry
 * @return 0, -EINVAL (bad name or labels), -ENOMEM.  Thread-safe.
 */
int ckpt_metrics_add(ckpt_metrics *m, const char *name, const char *help,
                     enum ckpt_metric_type type, const char *labels, ckpt_metric **out);

/** @brief Register a counter or gauge computed by fn(ctx) at scrape time
 *  (for values the daemon already keeps, such as its own counters). */
int ckpt_metrics_add_fn(ckpt_metrics *m, const char *name, const char *help,
                        enum ckpt_metric_type type, const char *labels, ckpt_metric_fn fn,
                        void *ctx);

static inline void ckpt_metric_add(ckpt_metric *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

static inline void ckpt_metric_set(ckpt_metric *g, uint64_t v)
{
    if (g)
        atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

/**
 * @brief Render the exposition text into a malloc'd NUL-terminated buffer.
 * @param[out] out  free with ckpt_free()
 * @return its length, or -ENOMEM.
 */
long ckpt_metrics_render(ckpt_metrics *m, char **out);

/**
 * @brief Serve GET /metrics on host:port (port 0 picks one).
 * @return 0, -EADDRINUSE, -EINVAL (bad host), -errno.  At most one endpoint
 *         per registry (-EALREADY).
 */
int ckpt_metrics_serve(ckpt_metrics *m, const char *host, uint16_t port);
/** @return the port the endpoint listens on, 0 if none. */
uint16_t ckpt_metrics_port(const ckpt_metrics *m);

#endif

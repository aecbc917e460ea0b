/*
 * node_metrics.c - see node_metrics.h.
 *
 * DESIGN: every metric is a callback that takes one snapshot of the
 * server's relaxed-atomic counters; a scrape costs a few dozen atomic
 * loads and never touches the I/O lanes.
 */
#include "node_metrics.h"

#include <stddef.h>

#include "node_reg.h"

struct counter_def {
    const char *name;
    const char *help;
    size_t off; /* offset in struct node_server_counters */
};

static const struct counter_def counters[] = {
    {"ckptfs_node_requests_total", "Chunk-service requests handed to the I/O lanes.",
     offsetof(struct node_server_counters, requests)},
    {"ckptfs_node_chunk_writes_total", "Chunks written.",
     offsetof(struct node_server_counters, writes)},
    {"ckptfs_node_chunk_reads_total", "Chunks (or ranges) read.",
     offsetof(struct node_server_counters, reads)},
    {"ckptfs_node_written_bytes_total", "Chunk bytes written.",
     offsetof(struct node_server_counters, bytes_written)},
    {"ckptfs_node_read_bytes_total", "Chunk bytes read.",
     offsetof(struct node_server_counters, bytes_read)},
    {"ckptfs_node_errors_total", "Requests answered with an error.",
     offsetof(struct node_server_counters, errors)},
    {"ckptfs_node_malformed_total", "Malformed requests (bad body or bulk).",
     offsetof(struct node_server_counters, malformed)},
    {"ckptfs_node_sync_failures_total", "Failed sync barriers (their chunks are lost).",
     offsetof(struct node_server_counters, sync_failures)},
};

struct counter_ctx {
    node_server *ns;
    size_t off;
};

static double read_counter(void *arg)
{
    const struct counter_ctx *c = arg;
    struct node_server_counters snap;
    node_server_counters(c->ns, &snap);
    return (double)*(const uint64_t *)((const char *)&snap + c->off);
}

static double read_registered(void *arg)
{
    node_reg *r = node_server_reg(arg);
    struct node_reg_status st;
    if (!r)
        return 0;
    node_reg_status(r, &st);
    return st.registered ? 1 : 0;
}

int node_metrics_start(node_server *ns, const char *host, uint16_t port, ckpt_metrics **out)
{
    static struct counter_ctx ctx[sizeof(counters) / sizeof(counters[0])];
    ckpt_metrics *m = NULL;
    int rc = ckpt_metrics_create(&m);
    for (size_t i = 0; rc == 0 && i < sizeof(counters) / sizeof(counters[0]); i++) {
        ctx[i] = (struct counter_ctx){ns, counters[i].off};
        rc = ckpt_metrics_add_fn(m, counters[i].name, counters[i].help, CKPT_METRIC_COUNTER,
                                 NULL, read_counter, &ctx[i]);
    }
    if (rc == 0)
        rc = ckpt_metrics_add_fn(m, "ckptfs_node_registered",
                                 "1 while registered with ckpt-meta.", CKPT_METRIC_GAUGE, NULL,
                                 read_registered, ns);
    if (rc == 0)
        rc = ckpt_metrics_serve(m, host, port);
    if (rc < 0) {
        ckpt_metrics_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

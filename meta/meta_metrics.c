/*
 * meta_metrics.c - see meta_metrics.h.
 *
 * DESIGN: each metric is a callback over one meta_server_stats() snapshot,
 * so scrapes add nothing to the request path.
 */
#include "meta_metrics.h"

#include <stddef.h>

struct stat_def {
    const char *name;
    const char *help;
    enum ckpt_metric_type type;
    size_t off; /* offset in struct meta_server_stats */
};

static const struct stat_def defs[] = {
    {"ckptfs_meta_commit_batches_total", "Committed write transactions (group commits).",
     CKPT_METRIC_COUNTER, offsetof(struct meta_server_stats, batches)},
    {"ckptfs_meta_write_ops_total", "Write operations committed.", CKPT_METRIC_COUNTER,
     offsetof(struct meta_server_stats, write_ops)},
    {"ckptfs_meta_max_batch_ops", "Largest group-commit batch so far.", CKPT_METRIC_GAUGE,
     offsetof(struct meta_server_stats, max_batch)},
    {"ckptfs_meta_failed_batches_total", "Batches whose commit failed (ops then rerun alone).",
     CKPT_METRIC_COUNTER, offsetof(struct meta_server_stats, failed_batches)},
    {"ckptfs_meta_parked_opens", "Opens waiting for another session's writer.",
     CKPT_METRIC_GAUGE, offsetof(struct meta_server_stats, parked)},
    {"ckptfs_meta_sessions", "Live client sessions.", CKPT_METRIC_GAUGE,
     offsetof(struct meta_server_stats, sessions)},
    {"ckptfs_meta_chunk_deletes_total", "Chunk deletions confirmed by storage nodes.",
     CKPT_METRIC_COUNTER, offsetof(struct meta_server_stats, delq_sent)},
    {"ckptfs_meta_map_epoch", "Current cluster map epoch.", CKPT_METRIC_GAUGE,
     offsetof(struct meta_server_stats, epoch)},
};

struct stat_ctx {
    meta_server *srv;
    size_t off;
};

static double read_stat(void *arg)
{
    const struct stat_ctx *c = arg;
    struct meta_server_stats st;
    meta_server_stats(c->srv, &st);
    return (double)*(const uint64_t *)((const char *)&st + c->off);
}

int meta_metrics_start(meta_server *srv, const char *host, uint16_t port, ckpt_metrics **out)
{
    static struct stat_ctx ctx[sizeof(defs) / sizeof(defs[0])];
    ckpt_metrics *m = NULL;
    int rc = ckpt_metrics_create(&m);
    for (size_t i = 0; rc == 0 && i < sizeof(defs) / sizeof(defs[0]); i++) {
        ctx[i] = (struct stat_ctx){srv, defs[i].off};
        rc = ckpt_metrics_add_fn(m, defs[i].name, defs[i].help, defs[i].type, NULL, read_stat,
                                 &ctx[i]);
    }
    if (rc == 0)
        rc = ckpt_metrics_serve(m, host, port);
    if (rc < 0) {
        ckpt_metrics_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

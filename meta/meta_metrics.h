/*
 * meta_metrics.h - ckpt-meta's Prometheus endpoint ([meta] metrics_listen).
 *
 * Exposes the server's counters (group-commit batches and their ops, failed
 * batches, parked opens, live sessions, confirmed chunk deletions, the
 * cluster map epoch), computed at scrape time from meta_server_stats().
 */
#ifndef META_METRICS_H
#define META_METRICS_H

#include <stdint.h>

#include "meta_server.h"
#include "metrics.h"

/**
 * @brief Register ckpt-meta's metrics and serve them on host:port.
 * @param[in] srv  borrowed; must outlive the returned registry
 * @param[out] out destroy with ckpt_metrics_destroy() before srv
 * @return 0, -ENOMEM, or the error of ckpt_metrics_serve().
 */
int meta_metrics_start(meta_server *srv, const char *host, uint16_t port, ckpt_metrics **out);

#endif

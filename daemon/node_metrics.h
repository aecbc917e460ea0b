/*
 * node_metrics.h - ckpt-node's Prometheus endpoint ([node] metrics_listen).
 *
 * Exposes the node server's counters (requests, chunk reads/writes and
 * bytes, errors, malformed requests, failed sync barriers) and its
 * registration state with ckpt-meta, computed at scrape time from
 * node_server_counters() and node_reg_status(): nothing is added to the
 * data path.
 */
#ifndef NODE_METRICS_H
#define NODE_METRICS_H

#include <stdint.h>

#include "metrics.h"
#include "node_svc.h"

/**
 * @brief Register the node's metrics and serve them on host:port.
 * @param[in] ns  borrowed; must outlive the returned registry
 * @param[out] out  destroy with ckpt_metrics_destroy() before ns
 * @return 0, or the error of ckpt_metrics_serve() (-EADDRINUSE, ...) or
 *         -ENOMEM.
 */
int node_metrics_start(node_server *ns, const char *host, uint16_t port, ckpt_metrics **out);

#endif

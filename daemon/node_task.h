/*
 * node_task.h - rebuild and repair tasks executed by ckpt-node.
 *
 * The node pulls tasks from ckpt-meta (TASK_FETCH, msg_task.h) about twice
 * a second once it is registered, runs them on a small pool of workers (the
 * bounded per-node concurrency that keeps foreground I/O going), and reports
 * each one (TASK_DONE).  A task names a file, its layout and the slot whose
 * chunks must be recreated on one of this node's targets: for every stripe
 * the worker reads the surviving chunks from their nodes (CHUNK_READ),
 * decodes the missing one with ckpt_ec_decode(), writes it into the local
 * chunk store with the survivors' generation and makes it durable before
 * reporting.
 *
 * Thread-safety: start and stop from one controlling thread; the counters
 * may be read from any thread.
 */
#ifndef NODE_TASK_H
#define NODE_TASK_H

#include <stdint.h>

#include "net.h"
#include "node_int.h"
#include "node_reg.h"

typedef struct node_task node_task;

#define NODE_TASK_WORKERS_DEFAULT 2u
#define NODE_TASK_POLL_MS_DEFAULT 500u

struct node_task_opts {
    const char *meta_host;   /* copied */
    uint16_t meta_port;
    uint32_t workers;        /* tasks run at once; 0: default */
    uint32_t poll_ms;        /* TASK_FETCH interval; 0: default */
};

struct node_task_counters {
    uint64_t tasks_done, tasks_failed;
    uint64_t chunks_written, bytes_written;
    uint64_t chunks_read, bytes_read;
};

/**
 * @brief Start fetching and running tasks.
 * @param[in] net   borrowed; must outlive the handle
 * @param[in] tgts  n served targets (borrowed; must outlive the handle)
 * @param[in] reg   the registration (borrowed; gives the node id); must
 *                  outlive the handle
 * @param[out] out  stopped and freed with node_task_stop()
 * @return 0, -EINVAL, -ENOMEM, or -errno of pthread_create.
 */
int node_task_start(const struct node_task_opts *o, ckpt_net *net, struct node_tgt *tgts,
                    uint32_t n, node_reg *reg, node_task **out);

/**
 * @brief Stop fetching, let running tasks end (a task in progress is
 * abandoned between stripes and not reported: meta keeps it), free.
 * NULL is a no-op.
 */
void node_task_stop(node_task *t);

/**
 * @brief Report a chunk that failed its crc (bit rot) so that ckpt-meta
 * records its stripe as degraded and plans a REPAIR task that rewrites it
 * from the other chunks.  Never blocks: the report is queued and sent by
 * the fetch thread (dropped with a warning when the queue is full; a scrub
 * finds the chunk again).  t may be NULL (not registering): no-op.
 * Thread-safe.
 */
void node_task_bad_chunk(node_task *t, uint32_t tid, const struct node_chunk_key *key,
                         uint64_t gen);

/** @brief Copy the counters into *out. */
void node_task_counters(node_task *t, struct node_task_counters *out);

#endif

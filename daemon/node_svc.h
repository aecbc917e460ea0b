/*
 * node_svc.h - the ckpt-node service: a node's targets served as chunk
 * stores over the RPC layer (net.h), plus its membership in the cluster
 * (node_reg.h).
 *
 * main() fills a struct node_server_opts (node_server_opts_from_config()),
 * creates the server - which opens every target and its chunk store, starts
 * the I/O threads and listens - announces readiness, starts registration,
 * waits for a signal, and calls node_server_shutdown() and
 * node_server_destroy().
 *
 * Requests served (msg_node.h): CHUNK_WRITE, CHUNK_READ, CHUNK_DELETE,
 * CHUNK_SYNC, TARGET_STATS, CHUNK_LIST.  A request naming a target id this
 * node does not serve (or has not been assigned yet) is answered -ENODEV; a
 * malformed one CKPT_E_PROTO; every other status comes from the chunk store
 * (node_chunk.h).  During shutdown new requests are answered -ESHUTDOWN.
 *
 * Thread-safety: node_server_port(), node_server_reg() and
 * node_server_counters() may be called from any thread; create, start_reg,
 * shutdown and destroy from one controlling thread.
 */
#ifndef NODE_SVC_H
#define NODE_SVC_H

#include <stdint.h>

#include "config.h"
#include "msg_node.h"
#include "net.h"
#include "node_chunk.h"
#include "node_reg.h"

typedef struct node_server node_server;

#define NODE_SVC_IO_THREADS_DEFAULT 8u
#define NODE_SVC_INFLIGHT_DEFAULT (256u << 20) /* received, unwritten bytes */
#define NODE_SVC_QUEUE_DEFAULT 4096u           /* queued requests per lane */

struct node_server_opts {
    const char *cluster;            /* required: cluster name */
    uint8_t key[CKPT_NET_KEY_LEN];  /* the cluster key */
    const char *listen_host;        /* required; "0.0.0.0" = every address */
    uint16_t listen_port;           /* 0: any free port */
    const char *meta_host;          /* NULL or "": never register (tests) */
    uint16_t meta_port;
    const char *name;               /* node name, for meta and logs */
    const char *rack;               /* NULL or "": own failure domain */
    const char *targets[CKPT_NODE_MAX_TARGETS];
    uint32_t ntargets;              /* 1..CKPT_NODE_MAX_TARGETS */
    uint64_t reserve_bytes;         /* per target; the larger of the two */
    uint32_t reserve_pct;           /* 0..100 */
    enum node_chunk_sync sync;
    uint32_t io_threads;            /* chunk I/O threads; 0: default */
    uint32_t bg_threads;            /* delete/list threads; 0: io/4, >= 1 */
    uint32_t heartbeat_ms;          /* until meta says otherwise; 0: 1 s */
    uint32_t refresh_ms;            /* statvfs interval; 0: node_target's */
    uint64_t inflight_bytes;        /* 0: NODE_SVC_INFLIGHT_DEFAULT */
    uint32_t queue_len;             /* 0: NODE_SVC_QUEUE_DEFAULT */
    enum ckpt_transport_kind transport; /* [cluster] transport; tcp when 0 */
    uint32_t io_timeout_ms;         /* a peer stalled mid-message (or mid-
                                       handshake) this long is dropped;
                                       0: lib/net's default (30 s) */
};

/* Counters since creation (relaxed atomics; for tests, logs, metrics). */
struct node_server_counters {
    uint64_t requests;       /* requests handed to a lane */
    uint64_t writes, reads;  /* successful chunk writes / reads */
    uint64_t bytes_written, bytes_read;
    uint64_t errors;         /* requests answered with a non-zero status */
    uint64_t malformed;      /* of which CKPT_E_PROTO (bad body or bulk) */
    uint64_t sync_failures;  /* failed barriers (their chunks are lost) */
};

/**
 * @brief Fill *out from a checked configuration and load the cluster key
 * ([cluster] key_file; a warning is logged when group or others may read
 * it).  Strings point into cfg, which must outlive *out.
 * @return 0, or the error of ckpt_auth_key_load() (logged).
 */
int node_server_opts_from_config(const struct ckpt_config *cfg,
                                 struct node_server_opts *out);

/**
 * @brief Open every target and its chunk store, start the I/O threads and
 * listen.
 *
 * Targets are first opened without creating anything
 * (NODE_TARGET_F_NOCREATE); the node uuid is taken from the existing ones,
 * which must all agree (uuid and node id), and then passed to create the
 * new ones; with no existing target a fresh uuid is generated.  Any target
 * that cannot be opened fails the whole start, with a log line naming it.
 *
 * @param[out] out  destroyed with node_server_destroy()
 * @return 0, or
 *   -EINVAL         bad options, a target listed twice, or targets that
 *                   belong to different nodes (uuid or node id mismatch)
 *   CKPT_E_CLUSTER  a target of another cluster
 *   -EBUSY          a target held by another process
 *   -EADDRINUSE ... from ckpt_server_start()
 *   and the errors of node_target_open() / node_chunk_store_open().
 * On error everything opened is closed again.
 */
int node_server_create(const struct node_server_opts *o, node_server **out);

/**
 * @brief Tell the world the node is ready: write the pid to pid_file (if
 * non-NULL) and "ready PORT\n" to ready_fd (if >= 0, then closed).
 * Failures are logged and otherwise ignored (the node serves anyway).
 */
void node_server_announce(node_server *ns, const char *pid_file, int ready_fd);

/** @return the port the chunk service listens on. */
uint16_t node_server_port(const node_server *ns);

/**
 * @brief Start registering with ckpt-meta in the background (no-op when
 * opts.meta_host was empty).  The advertised address is the listen host,
 * or 127.0.0.1 for a wildcard listen address.
 * @return 0, or an error of node_reg_start().
 */
int node_server_start_reg(node_server *ns);

/** @return the registration handle, or NULL when not registering. */
node_reg *node_server_reg(node_server *ns);

/** @brief Copy the counters into *out. */
void node_server_counters(node_server *ns, struct node_server_counters *out);

/**
 * @brief Clean shutdown: stop registering, answer new requests -ESHUTDOWN,
 * let every queued and running request finish and reply, close every
 * connection, stop the threads, then make every chunk written so far
 * durable (node_chunk_sync of each store).  Idempotent.
 * @return 0, or the first sync error (-EIO: some acknowledged chunks may
 *         not be on stable storage - logged with the target).
 */
int node_server_shutdown(node_server *ns);

/** @brief Shut down if not done yet, close targets, free.  NULL is a no-op. */
void node_server_destroy(node_server *ns);

#endif

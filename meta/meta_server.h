/*
 * meta_server.h - ckpt-meta, the metadata server, as an object.
 *
 * One struct meta_server holds everything the daemon knows (no globals):
 * the LMDB store (meta_store.h), the RPC server on one port for clients
 * (namespace and session messages, msg_meta.h) and storage nodes
 * (registration, heartbeats and the cluster map, msg_cluster.h), the
 * group-commit writer, the session and open-file table, the node registry
 * with failure detection and placement, and the chunk deletion queue
 * worker.  main.c creates one; the unit tests create them in-process on
 * port 0.
 *
 * Durability: a request that changes anything is answered only after the
 * LMDB transaction holding it has committed (fsync).  Killing the process
 * at any moment loses nothing that was answered.
 */
#ifndef META_SERVER_H
#define META_SERVER_H

#include <stdint.h>

#include "config.h"
#include "layout.h"
#include "net.h"

typedef struct meta_server meta_server;

#define META_SERVER_DEFAULT_LEASE_MS 10000u
#define META_SERVER_DEFAULT_HEARTBEAT_MS 1000u

/** Options for meta_server_create(); meta_server_opts_from_config() fills
 *  them from the configuration file. */
struct meta_server_opts {
    char listen_host[CKPT_CONFIG_HOST_MAX + 1]; /* "" = 0.0.0.0 */
    uint16_t listen_port;                       /* 0: any free port */
    char data_dir[CKPT_CONFIG_VALUE_MAX + 1];   /* LMDB environment */
    char cluster_name[CKPT_CONFIG_NAME_MAX + 1];
    uint8_t key[CKPT_NET_KEY_LEN];              /* the cluster key */
    uint64_t down_after_ms;   /* silent node -> DOWN; 0: 5000 */
    uint64_t out_after_ms;    /* silent node -> OUT; 0: 60000 */
    uint32_t lease_ms;        /* client session lease; 0: 10000 */
    uint32_t heartbeat_ms;    /* asked of nodes; 0: 1000 */
    uint64_t map_size_bytes;  /* LMDB map; 0: 64 GiB (sparse) */
    struct ckpt_layout layout; /* cluster default layout (no targets) */
    enum ckpt_transport_kind transport; /* [cluster] transport; tcp when 0 */
};

/**
 * @brief Fill opts from a checked configuration ([cluster] name, [meta]
 * listen/data_dir/down_after/out_after, [layout]).  The key is zeroed: the
 * caller loads it (ckpt_auth_key_load) into opts->key.
 */
void meta_server_opts_from_config(const struct ckpt_config *cfg,
                                  struct meta_server_opts *opts);

/**
 * @brief Open the store in opts->data_dir, load the node registry and the
 * sessions, queue the destruction of orphans nobody holds, start the
 * writer, monitor and deletion threads and listen.
 * @param[in] opts  copied
 * @param[out] out  the running server; stop it with meta_server_destroy()
 * @return 0; -EADDRINUSE, -EADDRNOTAVAIL, -EINVAL (bad host or options);
 *         store errors (-EACCES, -EIO, CKPT_E_VERSION...); -ENOMEM.
 *         On error nothing is left running.
 */
int meta_server_create(const struct meta_server_opts *opts, meta_server **out);

/** @return the port the server listens on. */
uint16_t meta_server_port(const meta_server *srv);

/**
 * @brief Stop listening, close every connection, finish the queued writes
 * (their answers are lost with the connections; what committed stays),
 * stop every thread, close the store and free.  NULL is a no-op.
 */
void meta_server_destroy(meta_server *srv);

/** Counters for tests and logs. */
struct meta_server_stats {
    uint64_t batches;       /* committed write transactions */
    uint64_t write_ops;     /* operations in them */
    uint64_t max_batch;     /* largest batch so far */
    uint64_t failed_batches; /* batches whose commit failed (their ops were
                                then run one by one) */
    uint64_t parked;        /* OPENs currently waiting for a writer */
    uint64_t sessions;      /* live sessions */
    uint64_t delq_sent;     /* CHUNK_DELETE requests confirmed */
    uint64_t epoch;         /* current cluster map epoch */
};

/** @brief Snapshot of the counters.  Thread-safe. */
void meta_server_stats(meta_server *srv, struct meta_server_stats *out);

#endif

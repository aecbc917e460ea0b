/*
 * fs.h - the ckptfs FUSE client: what main.c needs to mount it.
 *
 * A fs_client is one mount: a session with ckpt-meta, the cluster map and
 * one connection per storage node, the write-back buffer pool and its
 * workers, and the read-ahead cache.  fs_ops() is the libfuse low-level
 * operation table that serves the mount from it (the fs_client is the
 * session's userdata).
 *
 * Lifetime: create the client before fuse_session_new() (it is the
 * session's userdata), start it after fuse_daemonize(), destroy it after
 * the session loop ended and fuse_session_destroy() ran.
 */
#ifndef FS_H
#define FS_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"

/* How regular files are opened towards the kernel (see fs_ops.c DESIGN). */
enum fs_io_mode {
    FS_IO_DIRECT = 0,  /* direct_io for every open: no page cache */
    FS_IO_CACHED = 1,  /* the kernel page cache for every open */
    FS_IO_MIXED = 2,   /* direct_io when opened for writing, cached for reading */
};

struct fs_opts {
    char meta_host[256];
    uint16_t meta_port;
    char name[64];                 /* session name, e.g. "ckptfs@host:/ckpt" */
    uint8_t key[CKPT_NET_KEY_LEN];
    enum ckpt_transport_kind transport;
    uint64_t dirty_limit_bytes;    /* write-back budget */
    uint32_t threads;              /* worker threads (and FUSE idle threads) */
    uint64_t readahead_bytes;      /* per sequential stream; 0: none */
    uint32_t attr_timeout_ms;
    uint32_t entry_timeout_ms;
    uint64_t buffer_keep_ms;       /* recycled write-back buffers kept while idle */
    enum fs_io_mode io_mode;
    bool writeback_cache;          /* FUSE_CAP_WRITEBACK_CACHE (cached opens) */
    bool parallel_writes;          /* FOPEN_PARALLEL_DIRECT_WRITES on direct opens */
    bool splice;                   /* receive write data with splice */
    bool local_read;               /* short-circuit reads from same-host nodes */
    uint32_t chunk_timeout_ms;     /* per chunk call; 0: 10000 */
};

/** @brief Fill opts with the built-in defaults (config.h [client] defaults,
 *  meta 127.0.0.1:7400, FS_IO_DIRECT, parallel writes and splice on). */
void fs_opts_default(struct fs_opts *opts);

typedef struct fs_client fs_client;

/**
 * @brief Check that ckpt-meta answers with these options: connect, open a
 * session, fetch the cluster map, and tear everything down again (no
 * thread is left).  main() calls it before mounting, and before
 * fuse_daemonize() forks.
 * @return 0, or the error (-ECONNREFUSED, -ETIMEDOUT, CKPT_E_AUTH ...).
 */
int fs_client_probe(const struct fs_opts *opts);

/**
 * @brief Allocate a client (no thread, no connection yet).
 * @param[in] opts  copied
 * @param[out] out  destroyed with fs_client_destroy()
 * @return 0, -EINVAL (threads 0 or > 256, dirty_limit 0), -ENOMEM.
 */
int fs_client_create(const struct fs_opts *opts, fs_client **out);

/**
 * @brief Connect to ckpt-meta, open a session, load the cluster map, start
 * the workers.  Call once, after any fork.
 * @return 0; the ckpt-meta error; -ENOMEM.  On error the client must
 *         still be destroyed with fs_client_destroy().
 */
int fs_client_start(fs_client *c);

/**
 * @brief Wait for every buffered stripe to be written (bounded by the chunk
 * call timeouts), send the pending releases, stop the threads and free.
 * NULL is a no-op.
 */
void fs_client_destroy(fs_client *c);

struct fuse_lowlevel_ops;
/** @return the low-level operation table; userdata must be the fs_client. */
const struct fuse_lowlevel_ops *fs_ops(void);
/** @return sizeof the table, for fuse_session_new(). */
unsigned long fs_ops_size(void);

#endif

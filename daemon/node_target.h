/*
 * node_target.h - one storage target of ckpt-node: a directory on a local
 * filesystem (an NVMe SSD in production) with an identity, a lock and a
 * free-space reserve.
 *
 * On disk a target directory holds
 *
 *     ckptfs-target          identity (text, crc32c-protected, replaced
 *                            atomically: tmp + fsync + rename + fsync dir)
 *     ckptfs-target.lock     flock(2)ed by the one process serving the target;
 *                            holds that process's pid for error messages
 *     chunks/                the chunk store (node_chunk.h owns what is inside)
 *
 * The identity names the format version, the cluster the target belongs to,
 * the node uuid (a random 128-bit id the node generates once and writes into
 * every one of its targets) and the node id and target id that ckpt-meta
 * assigns at registration (0 = not assigned yet).  A target of another
 * cluster is refused (CKPT_E_CLUSTER); a corrupt identity is an error and is
 * never silently reinitialised.
 *
 * Free space: node_target_reserve_check() is called before every chunk write.
 * It works on an estimate of the free bytes that statvfs(2) refreshes at most
 * every refresh_ms (1 s by default) and that writes and deletes adjust in
 * between, so it costs a mutex and a clock read per call.  A successful check
 * claims the bytes in the estimate; node_target_space_release() gives bytes
 * back (failed write, delete, replaced chunk).
 *
 * This module knows nothing about the layout of chunks/: node_chunk tells it
 * how many chunks and bytes it holds through node_target_chunks_account(), so
 * node_target_stats() has everything a heartbeat reports.
 *
 * Thread-safety: after node_target_open() returns, every function may be
 * called from any number of threads, except node_target_close().
 */
#ifndef NODE_TARGET_H
#define NODE_TARGET_H

#include <stdint.h>

typedef struct node_target node_target;

/* File names inside a target directory. */
#define NODE_TARGET_IDENTITY "ckptfs-target"
#define NODE_TARGET_LOCKFILE "ckptfs-target.lock"
#define NODE_TARGET_CHUNKDIR "chunks"

/* Identity file format version written by this code. */
#define NODE_TARGET_FORMAT 1

/* Longest cluster name; names use [A-Za-z0-9._-] only. */
#define NODE_TARGET_CLUSTER_MAX 63

#define NODE_TARGET_UUID_LEN 16
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" plus NUL */
#define NODE_TARGET_UUID_STRLEN 37

/* Default interval between statvfs refreshes of the free-space estimate. */
#define NODE_TARGET_REFRESH_MS_DEFAULT 1000u

/* node_target_opts.flags */
#define NODE_TARGET_F_NOCREATE 0x1u /* open an existing target only */

struct node_target_opts {
    const char *cluster;       /* required; this node's cluster name */
    const uint8_t *node_uuid;  /* NODE_TARGET_UUID_LEN bytes written into a
                                  new identity; NULL = generate a random one.
                                  Ignored for an existing identity: a node
                                  with several targets opens them all with
                                  NODE_TARGET_F_NOCREATE first, takes the
                                  uuid of any existing one, and passes it
                                  here for the new ones; targets whose uuids
                                  disagree came from different nodes, and
                                  what to do is the caller's policy. */
    uint64_t reserve_bytes;    /* keep at least this many bytes free */
    uint32_t reserve_pct;      /* ... and this percentage of capacity (0-100);
                                  the larger of the two applies */
    uint32_t refresh_ms;       /* statvfs refresh interval; 0 = default */
    uint32_t flags;            /* NODE_TARGET_F_* */
};

/* Identity of an open target (a copy; small transparent value type). */
struct node_target_ids {
    uint32_t format;                        /* identity format version */
    uint32_t node_id;                       /* 0 = not assigned */
    uint32_t target_id;                     /* 0 = not assigned */
    uint8_t node_uuid[NODE_TARGET_UUID_LEN];
    char cluster[NODE_TARGET_CLUSTER_MAX + 1];
};

/* What a heartbeat reports about a target. */
struct node_target_stats {
    uint64_t capacity_bytes; /* size of the filesystem (f_blocks * f_frsize) */
    uint64_t free_bytes;     /* available to us now (f_bavail * f_frsize) */
    uint64_t reserve_bytes;  /* effective reserve (max of bytes and pct) */
    uint64_t usable_bytes;   /* free_bytes - reserve_bytes, or 0 */
    uint64_t chunk_bytes;    /* space used by chunk files (4 KiB blocks) */
    uint64_t chunk_count;    /* number of chunk files */
};

/**
 * @brief Open the target at path, creating it when the directory is new or
 * empty.
 *
 * Creation: a missing directory is created (its parent must exist); an
 * existing directory is initialised only if it holds nothing but
 * "lost+found", an empty "chunks" directory and files of this module (what an
 * interrupted creation leaves).  Anything else without an identity is refused
 * with -ENOTEMPTY, so a typo in a config file cannot adopt /home.
 *
 * Every refusal is logged at ERR level with the path and the reason, e.g.
 * which cluster the target belongs to, or which pid holds it - except
 * -ENOENT under NODE_TARGET_F_NOCREATE (missing directory or identity),
 * which is what a caller probing for existing targets expects, and is
 * logged at DEBUG.
 *
 * @param[in] path  target directory; copied
 * @param[in] opts  opts->cluster is required; see struct node_target_opts
 * @param[out] out  the open target, closed with node_target_close()
 * @return 0, or
 *   -EINVAL          bad cluster name, reserve_pct > 100, NULL argument
 *   -EBUSY           another process (or another open handle) holds the target
 *   -ENOENT          NODE_TARGET_F_NOCREATE and there is no identity; or the
 *                    parent directory does not exist
 *   -ENOTEMPTY       directory has foreign contents and no identity
 *   CKPT_E_CLUSTER   the identity names another cluster
 *   CKPT_E_CRC       the identity file fails its checksum
 *   CKPT_E_TORN      the identity file is malformed (truncated, garbage)
 *   CKPT_E_VERSION   the identity has an unknown format version
 *   -ENOMEM, -EIO, other negative errno from the filesystem.
 * On error nothing is held and an existing identity is left untouched (a
 * creation interrupted by an error may leave the lock file and an empty
 * chunks/ directory, which a later open accepts).
 */
int node_target_open(const char *path, const struct node_target_opts *opts,
                     node_target **out);

/**
 * @brief Release the lock and free the handle.  NULL is a no-op.
 * Nothing may use t concurrently or afterwards (close the chunk store first).
 */
void node_target_close(node_target *t);

/**
 * @brief Persist the ids assigned by ckpt-meta (atomic replace of the
 * identity file, durable when this returns).
 * @return 0, or negative errno (-EIO ...).  On error the identity on disk and
 *         in memory keeps the old ids (the rename is the commit point; an
 *         error after it - the directory fsync - leaves the new ids on disk
 *         but not yet durable, and returns the error with the old ids in
 *         memory, so the caller retries).
 */
int node_target_set_ids(node_target *t, uint32_t node_id, uint32_t target_id);

/** @brief Copy the identity into *out.  Never fails. */
void node_target_get_ids(node_target *t, struct node_target_ids *out);

/** @return the target directory (valid until node_target_close()). */
const char *node_target_path(const node_target *t);

/**
 * @brief Change the reserve (e.g. on config reload).  Does not refresh the
 * free-space estimate.
 * @return 0, or -EINVAL if pct > 100.
 */
int node_target_set_reserve(node_target *t, uint64_t reserve_bytes,
                            uint32_t reserve_pct);

/**
 * @brief Check that writing bytes_to_write more bytes keeps the free space
 * above the reserve, and if so count them as used in the estimate.
 *
 * Cost: a mutex and a coarse clock read; statvfs(2) at most every refresh_ms.
 * The estimate can be off by the bytes in flight when it is refreshed and by
 * whatever other programs write on the same filesystem, so the filesystem may
 * still return ENOSPC itself; callers handle both the same way.
 * @param[in] bytes_to_write  on-disk bytes the write will add
 * @return 0 (bytes claimed; give them back with node_target_space_release()
 *         if the write fails), -ENOSPC (nothing claimed), or a negative errno
 *         from statvfs.
 */
int node_target_reserve_check(node_target *t, uint64_t bytes_to_write);

/**
 * @brief Return bytes to the free-space estimate: a claimed write that
 * failed, a deleted chunk, the old version of a replaced chunk.
 */
void node_target_space_release(node_target *t, uint64_t bytes);

/**
 * @brief Record chunks added (positive) or removed (negative) and their
 * on-disk bytes, for node_target_stats().  Called by the chunk store only; it
 * does not touch the free-space estimate.
 */
void node_target_chunks_account(node_target *t, int64_t delta_count,
                                int64_t delta_bytes);

/**
 * @brief Fill *out for a heartbeat.  Calls statvfs(2) (and resets the
 * free-space estimate to its answer).
 * @return 0, or a negative errno from statvfs (*out untouched).
 */
int node_target_stats(node_target *t, struct node_target_stats *out);

/**
 * @brief Generate a random (RFC 4122 version 4) node uuid with getrandom(2).
 * @return 0 or a negative errno.
 */
int node_target_uuid_generate(uint8_t out[NODE_TARGET_UUID_LEN]);

/** @brief Format uuid as 36 lowercase hex-and-dash characters plus NUL. */
void node_target_uuid_format(const uint8_t uuid[NODE_TARGET_UUID_LEN],
                             char out[NODE_TARGET_UUID_STRLEN]);

/**
 * @brief Parse the format written by node_target_uuid_format().
 * @return 0, or -EINVAL (out untouched).
 */
int node_target_uuid_parse(const char *s, uint8_t out[NODE_TARGET_UUID_LEN]);

/**
 * @brief Claim the target for the one chunk store that may use it.
 * @return 0, or -EBUSY if it is already claimed.
 */
int node_target_claim_store(node_target *t);

/** @brief Undo node_target_claim_store(); also zeroes the chunk counters
 *  (the next store recounts them when it opens). */
void node_target_release_store(node_target *t);

#endif

/*
 * node_chunk.h - the checksummed chunk store of one target.
 *
 * A chunk is one erasure-coded piece of one stripe of one file, keyed by
 * (ino, stripe, index).  It carries a generation (bumped by every
 * overwrite/truncate of the stripe; an older generation never replaces a
 * newer one), a logical length (at most CKPT_LAYOUT_MAX_CHUNK) and the
 * crc32c of its bytes, verified on every read.
 *
 * Each chunk is its own file under <target>/chunks/:
 *
 *     chunks/<ino & 0xff, 2 hex>/<ino, 16 hex>/<stripe, 16 hex>.<index, 4 hex>
 *
 * The file starts with a NODE_CHUNK_HDR_LEN-byte header (magic, format
 * version, encoding, flags, key, generation, logical and stored lengths,
 * crc32c of the logical bytes, crc32c of the stored bytes, crc32c of the
 * header), zero-padded to NODE_CHUNK_DATA_OFF; the data follows.  The
 * encoding field (0 = raw; 1 reserved for zstd) lets compression arrive
 * without a format change.
 *
 * Short chunks: the store keeps exactly the bytes it was given.  A read at or
 * past the logical length returns 0 bytes; the client zero-pads short chunks
 * logically (DESIGN.md, Data model), the store never does.
 *
 * Durability follows the sync policy given at open:
 *   NODE_CHUNK_SYNC_COMMIT  writes land in the page cache; node_chunk_sync()
 *                           is the barrier that makes them durable (the
 *                           client's fsync()/`ckpt commit`).
 *   NODE_CHUNK_SYNC_ALWAYS  every write and delete is durable when it returns.
 *   NODE_CHUNK_SYNC_NEVER   nothing is ever forced (tests, scratch data).
 * Under every policy a write replaces a chunk atomically: after a crash a
 * chunk reads back as a complete version (old or new) or fails its checks
 * (CKPT_E_TORN / CKPT_E_CRC); it never reads back valid but wrong.
 *
 * Thread-safety: after node_chunk_store_open() returns, node_chunk_write,
 * _read, _stat, _delete, _delete_inode, _foreach, _foreach_inode, _sync,
 * _path and _store_stats may be called concurrently from any number of
 * threads.  Writes, deletes and generation checks of one chunk are
 * serialised; readers never block and see one complete version.
 * node_chunk_store_close() must not race with anything.
 */
#ifndef NODE_CHUNK_H
#define NODE_CHUNK_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "chunkfile.h"
#include "node_target.h"

typedef struct node_chunk_store node_chunk_store;

/* The file format is lib/chunkfile.h's (same-host clients read it too). */
#define NODE_CHUNK_HDR_LEN CKPT_CHUNKFILE_HDR_LEN   /* encoded header bytes */
#define NODE_CHUNK_DATA_OFF CKPT_CHUNKFILE_DATA_OFF /* data starts here (O_DIRECT-able) */
#define NODE_CHUNK_MAX_LEN CKPT_CHUNKFILE_MAX_LEN   /* == CKPT_LAYOUT_MAX_CHUNK */

/* Header encoding field. */
enum node_chunk_encoding {
    NODE_CHUNK_ENC_RAW = CKPT_CHUNKFILE_ENC_RAW,   /* stored bytes == logical bytes */
    NODE_CHUNK_ENC_ZSTD = CKPT_CHUNKFILE_ENC_ZSTD, /* reserved; reads answer -EOPNOTSUPP today */
};

enum node_chunk_sync {
    NODE_CHUNK_SYNC_COMMIT = 0,
    NODE_CHUNK_SYNC_ALWAYS = 1,
    NODE_CHUNK_SYNC_NEVER = 2,
};

/* Barriers with at least this many dirty files use syncfs(2); see the DESIGN
 * block of node_chunk.c for the measurement behind it. */
#define NODE_CHUNK_SYNCFS_MIN_DEFAULT 16u

struct node_chunk_opts {
    enum node_chunk_sync sync;
    uint32_t syncfs_min_files; /* 0 = NODE_CHUNK_SYNCFS_MIN_DEFAULT;
                                  UINT32_MAX = always per-file fdatasync */
    bool buffered;             /* never write chunks with O_DIRECT */
};

/* Chunk key: a small transparent value type. */
struct node_chunk_key {
    uint64_t ino;
    uint64_t stripe;
    uint16_t index;
};

/* What a chunk's header says. */
struct node_chunk_info {
    uint64_t gen;
    uint32_t len;        /* logical length in bytes */
    uint32_t crc;        /* crc32c of the logical bytes */
    uint32_t stored_len; /* bytes after the header (== len when raw) */
    uint16_t encoding;   /* enum node_chunk_encoding */
};

struct node_chunk_store_stats {
    uint64_t dirty_files;  /* chunk files written since their last barrier */
    uint64_t dirty_inodes; /* inodes with dirty files or directory changes */
    uint64_t tmp_removed;  /* leftover temp files removed at open */
    uint64_t chunks_found; /* chunk files found at open */
    uint64_t direct_writes; /* chunks written with O_DIRECT (see "Direct writes") */
    uint64_t direct_reads;  /* whole chunks read with O_DIRECT */
    bool direct;           /* the store writes large chunks with O_DIRECT */
};

/**
 * @brief Open the chunk store of target t (one store per target).
 *
 * Creates chunks/<00..ff>/ if needed, then walks the whole tree once: leftover
 * temp files of writes interrupted by a crash are removed, and the chunks
 * found are counted into the target's stats (node_target_chunks_account()).
 * Cost O(number of chunk files): one readdir entry and one fstatat each.
 * Unknown files are left alone with a warning.
 *
 * @param[in] t     an open target; must outlive the store
 * @param[in] opts  NULL for the defaults (sync = commit)
 * @param[out] out  closed with node_chunk_store_close()
 * @return 0, -EINVAL (bad opts), -EBUSY (t already has a store), -ENOMEM, or
 *         a negative errno from the filesystem.  On error nothing is held.
 */
int node_chunk_store_open(node_target *t, const struct node_chunk_opts *opts,
                          node_chunk_store **out);

/**
 * @brief Free the store.  Does NOT sync: call node_chunk_sync(s, NULL, 0)
 * first if dirty chunks must be durable.  NULL is a no-op.
 */
void node_chunk_store_close(node_chunk_store *s);

/**
 * @brief Parse "commit", "always" or "never".
 * @return 0, or -EINVAL (out untouched).
 */
int node_chunk_sync_parse(const char *name, enum node_chunk_sync *out);

/** @return "commit", "always" or "never" ("?" for anything else). */
const char *node_chunk_sync_name(enum node_chunk_sync sync);

/**
 * @brief Store a chunk, replacing any older generation atomically.
 *
 * Steps: the data is checked against crc_from_client; the generation against
 * the stored one (an equal generation is accepted, so a retried write is
 * idempotent); the free-space reserve is checked; header and data are written
 * with one pwritev(2) into a temp file next to the chunk; the temp file is
 * renamed over the chunk name while the chunk's lock is held and the stored
 * generation is rechecked.  Under sync = always the temp file is
 * fdatasync()ed before the rename and the directory fsync()ed after it; under
 * sync = commit the chunk joins the dirty set of node_chunk_sync().
 *
 * @param[in] key              chunk key
 * @param[in] gen              generation of this version
 * @param[in] iov, iovcnt      the logical bytes, 0..NODE_CHUNK_MAX_LEN in
 *                             total; 0 <= iovcnt < IOV_MAX.  Borrowed for
 *                             the call.
 * @param[in] crc_from_client  ckpt_crc32c(0, bytes, len) as the client
 *                             computed it
 * @return 0, or
 *   -EINVAL          bad arguments (length, iovcnt)
 *   CKPT_E_CRC       the data does not match crc_from_client
 *   CKPT_E_STALE     a newer generation is stored
 *   CKPT_E_VERSION   the stored chunk has a format this code does not know
 *   -ENOSPC          the write would cross the reserve (or the disk is full)
 *   -EIO, -ENOMEM, other negative errno.
 * After an error the chunk holds its previous version (or is still absent),
 * with one exception: an error from the directory fsync after the rename
 * (sync = always only) leaves the new version in place, complete but maybe
 * not durable; the caller treats it as failed and may write again with the
 * same generation.
 */
int node_chunk_write(node_chunk_store *s, const struct node_chunk_key *key,
                     uint64_t gen, const struct iovec *iov, int iovcnt,
                     uint32_t crc_from_client);

/**
 * @brief Read bytes [offset, offset + len) of a chunk into dst, after
 * verifying the whole chunk: header magic, version, key and crc, file length,
 * and the crc32c of all its bytes.
 *
 * The requested range goes straight from the file into dst; the rest of the
 * chunk is read through a small scratch buffer only to be checksummed.  A
 * read of the whole chunk (offset 0, len >= its length) is one pread of the
 * data into dst.
 *
 * @param[in] offset   byte offset in the chunk; at or past the chunk's
 *                     length the read returns 0 (after verifying)
 * @param[out] dst     at least len bytes; undefined contents on error
 * @param[in] len      bytes wanted
 * @param[out] out_gen, out_len  generation and logical length (may be NULL)
 * @return bytes copied (min(len, length - offset), or 0), or
 *   -ENOENT          no such chunk
 *   CKPT_E_TORN      truncated file, bad header, or key mismatch
 *   CKPT_E_CRC       data fails its crc32c (also logged at WARN with the
 *                    chunk and the file path)
 *   CKPT_E_VERSION   unknown format version or header flags
 *   -EOPNOTSUPP      an encoding this build cannot decode
 *   -EIO, -ENOMEM, other negative errno.
 */
ssize_t node_chunk_read(node_chunk_store *s, const struct node_chunk_key *key,
                        uint32_t offset, void *dst, uint32_t len,
                        uint64_t *out_gen, uint32_t *out_len);

/* A chunk opened for reading (node_chunk_open_read).  A small value type
 * so it can live on the caller's stack; fd and key are the store's. */
struct node_chunk_reader {
    struct node_chunk_info info; /* its verified header: read-only */
    int fd;                      /* private */
    struct node_chunk_key key;   /* private */
};

/**
 * @brief Open a chunk and verify its header, key and file size, so that a
 * caller can size its buffer from r->info.len and then read the same
 * version with node_chunk_read_from(): one open, where a stat followed by
 * a read needs two and may see two versions.  The open file keeps the
 * version it opened even if a newer one is renamed over it meanwhile.
 *
 * @param[out] out  on success an open reader (close it with
 *                  node_chunk_close_read()); on error closed (closing it
 *                  again is a no-op)
 * @return 0, or -EINVAL, -ENOENT, CKPT_E_TORN, CKPT_E_VERSION, -EOPNOTSUPP
 *         (the last three logged at WARN), -EIO and other errno.
 *         Thread-safe like node_chunk_read(); one reader is used by one
 *         thread at a time.
 */
int node_chunk_open_read(node_chunk_store *s, const struct node_chunk_key *key,
                         struct node_chunk_reader *out);

/**
 * @brief node_chunk_read() on an open reader: bytes [offset, offset + len)
 * into dst after verifying the crc32c of the whole chunk.
 * @param[in] dst_cap  bytes dst can take (>= len; 0 means len): a
 *                      whole-chunk read into a 4 KiB-aligned dst with room
 *                      for len rounded up to 4 KiB may use O_DIRECT (the
 *                      bytes past len are then overwritten)
 * @param[out] out_crc  (may be NULL) the crc32c of the returned bytes: for
 *                      the whole chunk the header's crc just verified (no
 *                      second pass), for a range a pass over dst
 * @return bytes copied, or -EINVAL, CKPT_E_TORN, CKPT_E_CRC (logged), -EIO,
 *         -ENOMEM and other errno; the reader stays open either way.
 */
ssize_t node_chunk_read_from(node_chunk_store *s, struct node_chunk_reader *r,
                             uint32_t offset, void *dst, uint32_t len, uint32_t dst_cap,
                             uint32_t *out_crc);

/** @brief Close a reader from node_chunk_open_read(); NULL or an already
 * closed reader is a no-op. */
void node_chunk_close_read(struct node_chunk_reader *r);

/**
 * @brief Read and verify a chunk's header (not its data).
 * @return 0 with *out filled, or -ENOENT, CKPT_E_TORN, CKPT_E_VERSION, -EIO.
 */
int node_chunk_stat(node_chunk_store *s, const struct node_chunk_key *key,
                    struct node_chunk_info *out);

/**
 * @brief Delete one chunk.
 * @param[in] below_gen  0 = whatever its generation; otherwise delete only if
 *                       the stored generation is < below_gen.  A torn chunk
 *                       (CKPT_E_TORN) counts as older and is deleted; one of
 *                       an unknown format, or whose header cannot be read
 *                       (-EIO), is kept and that error returned.
 * @return 0 deleted, -ENOENT absent, CKPT_E_STALE kept because it is newer,
 *         CKPT_E_VERSION, or a negative errno.  Durable at once under sync = always, at the
 *         next node_chunk_sync() covering key->ino under sync = commit.
 */
int node_chunk_delete(node_chunk_store *s, const struct node_chunk_key *key,
                      uint64_t below_gen);

/**
 * @brief Delete the chunks of inode ino whose stripe is >= from_stripe
 * (0 = all: unlink) and, if below_gen != 0, whose generation is < below_gen
 * (so a delete queued for an old version never removes newer data).
 * Removes the inode's directory when it ends up empty.
 * @param[out] out_deleted  chunks deleted (may be NULL); counts progress
 *                          even when an error stops the walk
 * @return 0 (also when the inode has no chunks), or a negative errno.
 *         O(chunks of the inode).  Chunks written concurrently may or may
 *         not be seen.
 */
int node_chunk_delete_inode(node_chunk_store *s, uint64_t ino,
                            uint64_t from_stripe, uint64_t below_gen,
                            uint64_t *out_deleted);

/**
 * @brief Called for each chunk by node_chunk_foreach*().
 * @param[in] arg   the caller's pointer
 * @param[in] key   the chunk (parsed from its file name)
 * @param[in] info  its header; all zero when rc < 0
 * @param[in] rc    0, or why the header could not be read (CKPT_E_TORN,
 *                  CKPT_E_VERSION, -EIO ...): scrub reports such chunks
 * @return 0 to continue; anything else stops the walk and is returned.
 * The callback runs without store locks held and may call any store
 * function, including deleting the chunk it was given.
 */
typedef int (*node_chunk_visit_fn)(void *arg, const struct node_chunk_key *key,
                                   const struct node_chunk_info *info, int rc);

/**
 * @brief Visit every chunk of the target, inode by inode (order unspecified).
 * O(chunks): one readdir entry and one header read each.  Chunks written or
 * deleted during the walk may or may not be visited.
 * @return 0, the callback's non-zero value, or a negative errno.
 */
int node_chunk_foreach(node_chunk_store *s, node_chunk_visit_fn fn, void *arg);

/** @brief Like node_chunk_foreach() for the chunks of one inode. */
int node_chunk_foreach_inode(node_chunk_store *s, uint64_t ino,
                             node_chunk_visit_fn fn, void *arg);

/* One chunk listed by node_chunk_list(). */
struct node_chunk_entry {
    struct node_chunk_key key;
    uint64_t gen;       /* 0 when the header cannot be read (see rc) */
    uint32_t len;       /* logical length; 0 when rc < 0 */
    int rc;             /* 0, or CKPT_E_TORN / CKPT_E_VERSION / -EIO ... */
};

/**
 * @brief List chunks in key order (ino, then stripe, then index), the
 * pages of CHUNK_LIST: up to max chunks whose key is greater than *after.
 *
 * Cost per call: one readdir of every fan-out directory (O(inodes) names,
 * no stat) plus a sort, then one readdir per listed inode and a header
 * read per listed chunk.  A walk over a whole target in pages of P chunks
 * is therefore O(inodes * chunks / P); fine for scrub pages of thousands,
 * not meant for tiny pages.  Chunks written or deleted meanwhile may or
 * may not be listed; torn chunks are listed with their error in .rc.
 *
 * @param[in] after     NULL: from the first chunk
 * @param[out] out      room for max entries (max >= 1)
 * @param[out] out_n    entries filled
 * @param[out] out_more 1 when chunks follow the last one listed, else 0
 * @return 0, -EINVAL, -ENOMEM, or a negative errno from readdir (*out_n
 *         entries are valid even then, *out_more is 1).
 */
int node_chunk_list(node_chunk_store *s, const struct node_chunk_key *after,
                    struct node_chunk_entry *out, uint32_t max,
                    uint32_t *out_n, int *out_more);

/**
 * @brief Barrier: make every write and delete done for the given inodes
 * since their last barrier durable (n == 0: for every inode).
 *
 * Under sync = commit it fdatasync()s the chunk files written since then and
 * fsync()s their directories, or calls syncfs(2) once when at least
 * syncfs_min_files files are dirty (syncfs covers every inode, so then the
 * whole dirty set is cleared).  Under always and never it returns 0 at once.
 * Barriers are serialised with each other; writes proceed meanwhile (a write
 * that has not returned when the barrier starts is not covered).
 *
 * @param[in] inos  n inode numbers (borrowed); may be NULL when n == 0
 * @return 0, -ENOMEM (nothing was synced or cleared; retry), or -EIO (or
 *         another errno): some data may not be on stable storage.  The files
 *         of this barrier have left the dirty set anyway - Linux reports a
 *         writeback error once, so a retried fsync would lie - and the caller
 *         must treat their chunks as lost (rewrite them or rebuild).
 */
int node_chunk_sync(node_chunk_store *s, const uint64_t *inos, size_t n);

/**
 * @brief Write the chunk's path (target path included) into dst.
 * @return its length, or -ENAMETOOLONG if cap is too small.
 */
int node_chunk_path(const node_chunk_store *s, const struct node_chunk_key *key,
                    char *dst, size_t cap);

/** @brief Fill *out (dirty-set sizes and open-time scan results). */
void node_chunk_store_stats(node_chunk_store *s,
                            struct node_chunk_store_stats *out);

#endif

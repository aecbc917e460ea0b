/*
 * node_chunk.c - chunk files of one target; see node_chunk.h for the API.
 *
 * DESIGN
 *
 * Tree.  chunks/<xx>/<ino:016x>/<stripe:016x>.<index:04x>, xx = ino & 0xff.
 * One directory per inode makes "delete every chunk of an inode" and
 * per-inode enumeration one readdir; the 256 fan-out directories (created at
 * open) keep the top level small when a target holds millions of inodes.
 * Paths are resolved relative to one O_DIRECTORY fd of chunks/, so the store
 * holds a single fd however many inodes there are.
 *
 * File format: lib/chunkfile.h (a 4096-byte block holding a 64-byte header
 * with key, generation, lengths and crcs, then the data).  A file is valid
 * iff the header decodes with a good crc and matching key and the file is
 * exactly 4096 + stored length bytes; the data is then checked against its
 * crc on every read.
 *
 * Chunk states and who moves them:
 *
 *                  node_chunk_write (tmp + pwritev [+ fdatasync])
 *       absent ------------------------------------------> tmp file
 *         ^  ^                                             |   |
 *         |  | unlink on any error before the rename       |   | rename
 *         |  +---------------------------------------------+   | under the
 *         |           (or at the next open after a crash)      | key lock
 *         |                                                    v
 *         +------- node_chunk_delete/_delete_inode -------- stored (dirty)
 *                                                              |
 *                                    node_chunk_sync (commit)  |
 *                                    or the write itself       v
 *                                    (always)               stored (durable)
 *
 * Writes.  The data is checksummed and compared with the client's crc before
 * anything touches the disk.  A temp file "<name>.tmp.<seq:016x>" in the
 * chunk's own directory receives header + data in one pwritev (looping only
 * if the kernel writes short), then is renamed over the chunk name.  The
 * rename is the commit point: until then the old version is untouched; after
 * it readers see the new one.  The generation is checked twice: without the
 * lock before any I/O (cheap early refusal) and again under the key's lock
 * right before the rename, so two writers of one chunk can never let the
 * older generation win.  Key locks are a striped table of NODE_LOCKS mutexes
 * indexed by a hash of the key; the lock is held only for a header read and a
 * rename (or an unlink), never across data I/O.  Readers take no lock: a
 * rename swaps inodes, so an open reader keeps reading the version it opened.
 *
 * Crash safety.  After a crash a chunk file is either the old version, the
 * new version, or (under sync = commit/never, when the rename reached the
 * disk before the data) a file whose data does not match its crc or whose
 * size is wrong: CKPT_E_CRC or CKPT_E_TORN, never valid-but-wrong.  Under
 * sync = always the data is fdatasync()ed before the rename, and the
 * directory after it, so the new version is complete and durable when the
 * write returns.  Leftover temp files are removed by node_chunk_store_open().
 *
 * Dirty set (sync = commit).  A hash table keyed by ino (dirty_lock); each
 * entry lists the (stripe, index) pairs renamed into place since the inode's
 * last barrier and flags that its directory changed (renames, unlinks) or
 * was created (then the fan-out directory must be fsync()ed too).  A writer
 * reserves its slot before any I/O (dirty_reserve), so recording the chunk
 * after the rename cannot fail with ENOMEM; an entry is freed only when it
 * is clean and unreserved.  Memory: 16 bytes per chunk written between
 * barriers (a chunk written twice is listed twice).
 *
 * Barrier (node_chunk_sync).  Barriers are serialised by sync_lock (lock
 * order: sync_lock, then dirty_lock; key locks are never held with either).
 * Without that, a barrier finding an inode clean could return while another
 * barrier is still fsyncing that inode's files.  The barrier takes the
 * selected entries out of the dirty set under dirty_lock, then syncs with no
 * lock but sync_lock held, so writes go on meanwhile.  A write that returned
 * before the barrier started is in the set; one that had not may or may not
 * be covered.
 *
 * syncfs(2) or per-file fdatasync?  Measured on the development machine
 * (ext4 mounted with "discard" on a virtio disk, 2 cores shared with other
 * builds, so figures vary run to run; each cell is the range over 3 runs).
 * Through this store: N chunks of 1 MiB written with sync = commit over 8
 * inodes, then one barrier:
 *
 *     dirty 1 MiB chunks        1          16          64         500
 *     per-file fdatasync    1.0-1.2 ms   15-21 ms   59-173 ms   437-1823 ms
 *     syncfs once           0.8-1.0 ms    9-18 ms   38-41 ms    257-297 ms
 *
 * (Plain files in one directory, no store: 500 x 1 MiB took 383 ms with
 * fdatasync each, 308 ms with 4 threads doing it, 278 ms with syncfs; 500 x
 * 64 KiB 112 vs 27 ms.)  syncfs is 1.4-6x faster for 500 dirty 1 MiB chunks:
 * one journal commit and one device cache flush, where per-file needs a
 * flush per file and per directory.  But syncfs also flushes every other
 * dirty page of the filesystem - other jobs' uncommitted chunks on the same
 * SSD, or anything else on a shared filesystem - so a small commit would wait
 * for everybody.  The store therefore uses syncfs when a barrier has at least
 * syncfs_min_files (default 16) dirty files, where it wins clearly, and
 * per-file fdatasync plus one fsync per inode directory below that, where
 * the difference is a few milliseconds and isolation is worth more.  A
 * syncfs barrier clears the whole dirty set, since everything is durable.
 *
 * Space accounting.  A chunk occupies round_up(file size, 4096) bytes as far
 * as the target's counters and reserve are concerned: the header block plus
 * the data blocks.  A write claims that much through
 * node_target_reserve_check(); the replaced version's bytes are given back
 * after the rename.
 *
 * Threads: none of its own; see node_chunk.h for which calls may run
 * concurrently.
 *
 * Reads.  node_chunk_open_read() opens the file once and verifies header,
 * key and size; node_chunk_read_from() reads the range straight into the
 * caller's buffer (one pread for a whole chunk) and checks the crc32c of
 * the whole chunk, handing back the header's crc for a whole-chunk read so
 * that the service need not checksum the bytes a second time for its
 * reply.  node_chunk_read() is the two together.  Measured 2026-11-23 on
 * the development machine (2 vCPUs shared with other builds, load 10-14,
 * ext4 on virtio, 400 real 1 MiB chunk files, caches dropped, one thread):
 * pread + crc 0.95-1.5 GB/s; mmap + MADV_POPULATE_READ + crc + munmap
 * 0.7-0.8 GB/s (with POSIX_FADV_WILLNEED 0.7-1.1, MAP_POPULATE 0.8-1.05);
 * with warm caches pread + crc 8.6 GB/s against mmap 6.2 GB/s.  The crc
 * over a fresh 4 KiB-page mapping costs more than the copy it saves (in a
 * cluster profile the crc became 33% of the node's CPU), and a media error
 * on a mapped page is SIGBUS, so chunks are read with pread.
 *
 * Direct writes.  A chunk of at least NODE_CHUNK_DIRECT_MIN bytes in one
 * page-aligned buffer (what the service receives a CHUNK_WRITE into) is
 * written with O_DIRECT: the header block and the 4 KiB-aligned part of the
 * data in one pwritev, the unaligned tail (short last chunks only) buffered
 * through the same file after clearing O_DIRECT.  The 4096-byte data offset
 * of the format is what makes this possible.  A store probes at open
 * whether its filesystem takes O_DIRECT (tmpfs may not) and writes
 * everything buffered when it does not.  Why: a checkpoint is written once
 * and read rarely, so caching it only takes memory from the training job,
 * and the copy into the page cache was the largest cost of the write path:
 * perf over the flush and fsync of 4 x 1 GiB (6 GiB of chunks, 6 nodes on
 * one 2-core VM) had copy_folio_from_iter_atomic at 42% of all samples.
 * With O_DIRECT the cluster's CPU for that flush went from 1177-1469 to
 * 587-831 ticks and the flush became disk-bound (half the CPU idle).
 *
 * Direct reads.  node_chunk_read_from() of a whole chunk of that size into
 * a 4 KiB-aligned buffer with room for the last block (CHUNK_READ's pooled
 * buffers) switches the open file to O_DIRECT after the header read and
 * reads the data blocks straight into the buffer; the crc is then one pass
 * over it.  Same-host clients read chunk files the same way (fs_read.c).
 * Measured through the short-circuit path (4 readers of 4 x 1 GiB, caches
 * dropped): 2.6-3.2 GB/s at 340-500 ms of cluster CPU per GiB, against
 * 2.0-2.7 GB/s at 530-660 ms buffered; on this VM a page-cache page that
 * was not used recently costs the host a fault, so buffered reads after
 * direct writes fell to 1.2-1.3 GB/s.  The price: a chunk read twice is
 * read from the disk twice (checkpoints are restored once).
 *
 * Known limits.  The open-time scan is O(chunk files): a readdir entry and
 * an fstatat each, 3-10 us per chunk with a warm cache here (2048 chunks in
 * 6-21 ms); a cold cache adds an inode read per chunk.
 * Range reads checksum the whole chunk, so reading 4 KiB of a 64 MiB chunk
 * reads 64 MiB.  The encoding field is checked but only raw is implemented.
 */
#include "node_chunk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "chunkfile.h"
#include "crc.h"
#include "err.h"
#include "log.h"

#define NODE_LOCKS 256        /* striped key locks; a power of two */
#define FANOUT 256            /* chunks/00 .. chunks/ff */
#define SCRATCH_LEN (64u << 10) /* range reads checksum the rest through this */
#define NODE_CHUNK_DIRECT_MIN (64u << 10) /* smaller chunks: buffered */
#define IOV_STACK 64          /* iovecs on the stack before we allocate */
#define DIRTY_BUCKETS0 256u   /* initial dirty hash size; a power of two */

/* A chunk file name is "<stripe:016x>.<index:04x>"; the longest relative
 * path is a temp file's, "xx/<16>/<16>.<4>.tmp.<16>" (62 bytes + NUL). */
#define NAME_LEN 21
#define TMP_SUFFIX ".tmp."
#define REL_MAX CKPT_CHUNKFILE_REL_MAX

struct dirty_ent {
    uint64_t stripe;
    uint16_t index;
};

struct dirty_ino {
    uint64_t ino;
    struct dirty_ino *next;  /* hash chain */
    struct dirty_ent *ents;  /* chunks renamed in since the last barrier */
    uint32_t n, cap;
    uint32_t reserved;       /* writers between dirty_reserve and commit */
    bool dir_dirty;          /* directory changed since the last barrier */
    bool dir_new;            /* directory created since the last barrier */
};

struct node_chunk_store {
    node_target *t;          /* borrowed; immutable */
    int chunkfd;             /* <target>/chunks; immutable */
    char *root;              /* "<target>/chunks", for messages; immutable */
    enum node_chunk_sync sync;  /* immutable */
    uint32_t syncfs_min;     /* immutable */
    bool direct;             /* the filesystem takes O_DIRECT writes; immutable */
    atomic_uint_fast64_t direct_writes, direct_reads;
    uint64_t tmp_removed;    /* set by the open-time scan; immutable after */
    uint64_t chunks_found;   /* idem */
    atomic_uint_fast64_t tmp_seq;

    pthread_mutex_t locks[NODE_LOCKS];

    /* Lock order: sync_lock -> dirty_lock.  Key locks are never held with
     * either. */
    pthread_mutex_t sync_lock;   /* serialises barriers */
    pthread_mutex_t dirty_lock;
    struct dirty_ino **buckets;  /* protected by dirty_lock */
    uint32_t nbuckets;           /* protected by dirty_lock */
    uint64_t nentries;           /* protected by dirty_lock */
    uint64_t ndirty_files;       /* protected by dirty_lock */
    uint64_t ndirty_inos;        /* protected by dirty_lock */
};

/* ------------------------------------------------------------------ */
/* header (lib/chunkfile.h)                                             */

static void hdr_encode(uint8_t *h, const struct node_chunk_key *k,
                       const struct node_chunk_info *in)
{
    struct ckpt_chunkfile_info ci = {.gen = in->gen, .len = in->len, .crc = in->crc,
                                     .stored_len = in->stored_len, .encoding = in->encoding};
    ckpt_chunkfile_hdr_encode(h, k->ino, k->stripe, k->index, &ci);
}

/* Decode and check a header against key.  *why says what failed. */
static int hdr_decode(const uint8_t *h, const struct node_chunk_key *k,
                      struct node_chunk_info *out, const char **why)
{
    struct ckpt_chunkfile_info ci;
    int rc = ckpt_chunkfile_hdr_decode(h, k->ino, k->stripe, k->index, &ci, why);
    if (rc < 0)
        return rc;
    *out = (struct node_chunk_info){.gen = ci.gen, .len = ci.len, .crc = ci.crc,
                                    .stored_len = ci.stored_len, .encoding = ci.encoding};
    return 0;
}

/* ------------------------------------------------------------------ */
/* names and paths                                                      */

static uint64_t disk_bytes(uint64_t file_size)
{
    return (file_size + 4095u) & ~(uint64_t)4095u;
}

static void rel_dir(char dst[REL_MAX], uint64_t ino)
{
    (void)ckpt_chunkfile_rel_dir(dst, ino);
}

static void rel_chunk(char dst[REL_MAX], const struct node_chunk_key *k)
{
    (void)ckpt_chunkfile_rel(dst, k->ino, k->stripe, k->index);
}

/* Parse exactly n lowercase hex digits. */
static bool parse_hex(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

enum name_kind { NAME_OTHER, NAME_CHUNK, NAME_TMP };

/* Classify an entry of an inode directory; fill stripe/index for chunks. */
static enum name_kind parse_chunk_name(const char *name, uint64_t *stripe,
                                       uint16_t *index)
{
    uint64_t st, ix;
    size_t len = strlen(name);
    if (len < NAME_LEN || name[16] != '.' || !parse_hex(name, 16, &st) ||
        !parse_hex(name + 17, 4, &ix))
        return NAME_OTHER;
    if (len == NAME_LEN) {
        *stripe = st;
        *index = (uint16_t)ix;
        return NAME_CHUNK;
    }
    if (strncmp(name + NAME_LEN, TMP_SUFFIX, sizeof(TMP_SUFFIX) - 1) == 0)
        return NAME_TMP;
    return NAME_OTHER;
}

int node_chunk_path(const node_chunk_store *s, const struct node_chunk_key *key,
                    char *dst, size_t cap)
{
    char rel[REL_MAX];
    rel_chunk(rel, key);
    int n = snprintf(dst, cap, "%s/%s", s->root, rel);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return n;
}

/* ------------------------------------------------------------------ */
/* syscall wrappers with fault injection                                */

static int sync_fd(int fd, bool data_only)
{
    if (ckpt_fault_hit(CKPT_FAULT_FSYNC))
        return -EIO;
    if ((data_only ? fdatasync(fd) : fsync(fd)) != 0)
        return -errno;
    return 0;
}

/* fsync the directory rel (relative to chunks/). */
static int sync_dir(node_chunk_store *s, const char *rel)
{
    int fd = openat(s->chunkfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = sync_fd(fd, false);
    close(fd);
    return rc;
}

/* Read len bytes at off into buf, looping over short reads; fewer only at
 * the end of the file.  On an O_DIRECT file pass want = len rounded up to
 * the block (buf has room for it): whole blocks are read, and a short read
 * that is not block-aligned can only be the end of the file. */
static ssize_t pread_full(int fd, void *buf, size_t len, size_t want, off_t off)
{
    size_t got = 0;
    if (ckpt_fault_hit(CKPT_FAULT_READ))
        return -EIO;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, want - got, off + (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (want > len && got < len && ((size_t)n & (NODE_CHUNK_DATA_OFF - 1)))
            break;
    }
    return (ssize_t)(got < len ? got : len);
}

/* Write every byte of iov (modified) at off. */
static int pwritev_full(int fd, struct iovec *iov, int cnt, off_t off)
{
    if (ckpt_fault_hit(CKPT_FAULT_WRITE))
        return -EIO;
    while (cnt > 0) {
        ssize_t n = pwritev(fd, iov, cnt, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        off += n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* opening and verifying one chunk file                                 */

/*
 * Open the chunk at rel and verify header, key and file size.
 * *out_size is set (>= 0) whenever the file could be opened and fstat()ed,
 * even if it is torn, else -1.  On success the fd is handed back in *out_fd
 * when out_fd is non-NULL (caller closes), else closed.  *why (if non-NULL)
 * names the problem for CKPT_E_TORN / CKPT_E_VERSION.
 */
static int chunk_open(node_chunk_store *s, const char *rel,
                      const struct node_chunk_key *key,
                      struct node_chunk_info *out, off_t *out_size,
                      int *out_fd, const char **why)
{
    uint8_t h[NODE_CHUNK_HDR_LEN];
    struct stat st;
    const char *w = NULL;
    int rc;

    *out_size = -1;
    int fd = openat(s->chunkfd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out_close;
    }
    *out_size = st.st_size;
    ssize_t n = pread_full(fd, h, sizeof(h), sizeof(h), 0);
    if (n < 0) {
        rc = (int)n;
        goto out_close;
    }
    if ((size_t)n < sizeof(h)) {
        w = "file shorter than a header";
        rc = CKPT_E_TORN;
        goto out_close;
    }
    if ((rc = hdr_decode(h, key, out, &w)) < 0)
        goto out_close;
    if ((uint64_t)st.st_size != NODE_CHUNK_DATA_OFF + (uint64_t)out->stored_len) {
        w = "file size does not match the header (truncated?)";
        rc = CKPT_E_TORN;
        goto out_close;
    }
    if (out_fd) {
        *out_fd = fd;
        return 0;
    }
out_close:
    close(fd);
    if (why)
        *why = w;
    return rc;
}

/* ------------------------------------------------------------------ */
/* key locks                                                            */

static pthread_mutex_t *key_lock(node_chunk_store *s,
                                 const struct node_chunk_key *k)
{
    uint64_t h = k->ino * 0x9E3779B97F4A7C15ull ^
                 k->stripe * 0xC2B2AE3D27D4EB4Full ^
                 ((uint64_t)k->index + 1) * 0x165667B19E3779F9ull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return &s->locks[h & (NODE_LOCKS - 1)];
}

/* ------------------------------------------------------------------ */
/* dirty set                                                            */

static uint32_t ino_bucket(uint64_t ino, uint32_t nbuckets)
{
    uint64_t h = ino * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & (nbuckets - 1);
}

static struct dirty_ino *dirty_find_locked(node_chunk_store *s, uint64_t ino)
{
    struct dirty_ino *e = s->buckets[ino_bucket(ino, s->nbuckets)];
    while (e && e->ino != ino)
        e = e->next;
    return e;
}

/* Double the table when it gets crowded; failure just keeps chains long. */
static void dirty_grow_locked(node_chunk_store *s)
{
    if (s->nentries <= 2u * (uint64_t)s->nbuckets || s->nbuckets >= (1u << 24))
        return;
    uint32_t nb = s->nbuckets * 2;
    struct dirty_ino **b = ckpt_calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct dirty_ino *e = s->buckets[i];
        while (e) {
            struct dirty_ino *next = e->next;
            uint32_t j = ino_bucket(e->ino, nb);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    ckpt_free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static void dirty_unlink_free_locked(node_chunk_store *s, struct dirty_ino *e)
{
    struct dirty_ino **pp = &s->buckets[ino_bucket(e->ino, s->nbuckets)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    s->nentries--;
    ckpt_free(e->ents);
    ckpt_free(e);
}

/*
 * Reserve room to record one change of inode ino (a chunk when want_slot).
 * Under sync != commit there is nothing to track: *out = NULL, 0.
 * @return 0 or -ENOMEM (nothing reserved).
 */
static int dirty_reserve(node_chunk_store *s, uint64_t ino, bool want_slot,
                         struct dirty_ino **out)
{
    int rc = 0;
    *out = NULL;
    if (s->sync != NODE_CHUNK_SYNC_COMMIT)
        return 0;
    pthread_mutex_lock(&s->dirty_lock);
    struct dirty_ino *e = dirty_find_locked(s, ino);
    if (!e) {
        e = ckpt_calloc(1, sizeof(*e));
        if (!e) {
            rc = -ENOMEM;
            goto out_unlock;
        }
        e->ino = ino;
        uint32_t b = ino_bucket(ino, s->nbuckets);
        e->next = s->buckets[b];
        s->buckets[b] = e;
        s->nentries++;
        dirty_grow_locked(s);
    }
    if (want_slot && e->n + e->reserved + 1 > e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 8;
        if (cap < e->cap) { /* 2^32 pending writes: refuse rather than wrap */
            rc = -ENOMEM;
            goto out_maybe_free;
        }
        struct dirty_ent *ne = ckpt_realloc(e->ents, (size_t)cap * sizeof(*ne));
        if (!ne) {
            rc = -ENOMEM;
            goto out_maybe_free;
        }
        e->ents = ne;
        e->cap = cap;
    }
    e->reserved++;
    *out = e;
    goto out_unlock;

out_maybe_free:
    if (!e->dir_dirty && e->reserved == 0)
        dirty_unlink_free_locked(s, e);
out_unlock:
    pthread_mutex_unlock(&s->dirty_lock);
    return rc;
}

/* Record the change reserved in e: chunk key (NULL for a directory-only
 * change such as an unlink), and whether the inode directory was created. */
static void dirty_commit(node_chunk_store *s, struct dirty_ino *e,
                         const struct node_chunk_key *key, bool dir_new)
{
    if (!e)
        return;
    pthread_mutex_lock(&s->dirty_lock);
    if (key) {
        e->ents[e->n].stripe = key->stripe;
        e->ents[e->n].index = key->index;
        e->n++;
        s->ndirty_files++;
    }
    if (!e->dir_dirty)
        s->ndirty_inos++;
    e->dir_dirty = true;
    e->dir_new |= dir_new;
    e->reserved--;
    pthread_mutex_unlock(&s->dirty_lock);
}

/* Give back a reservation without recording anything (the write failed);
 * dir_new still records a directory created on the way. */
static void dirty_cancel(node_chunk_store *s, struct dirty_ino *e, bool dir_new)
{
    if (!e)
        return;
    if (dir_new) {
        dirty_commit(s, e, NULL, true);
        return;
    }
    pthread_mutex_lock(&s->dirty_lock);
    e->reserved--;
    if (!e->dir_dirty && e->reserved == 0)
        dirty_unlink_free_locked(s, e);
    pthread_mutex_unlock(&s->dirty_lock);
}

/* Mark e clean (its files are being synced); free it if unreserved. */
static void dirty_clear_locked(node_chunk_store *s, struct dirty_ino *e)
{
    s->ndirty_files -= e->n;
    if (e->dir_dirty)
        s->ndirty_inos--;
    e->n = 0;
    e->dir_dirty = false;
    e->dir_new = false;
    if (e->reserved == 0)
        dirty_unlink_free_locked(s, e);
}

static void dirty_free_all(node_chunk_store *s)
{
    if (!s->buckets)
        return;
    for (uint32_t i = 0; i < s->nbuckets; i++) {
        struct dirty_ino *e = s->buckets[i];
        while (e) {
            struct dirty_ino *next = e->next;
            ckpt_free(e->ents);
            ckpt_free(e);
            e = next;
        }
    }
    CKPT_FREE(s->buckets);
}

/* ------------------------------------------------------------------ */
/* open-time scan                                                       */

struct scan_totals {
    uint64_t chunks, bytes, tmp;
};

/* Scan one inode directory (fd owned by this function). */
static int scan_inode_dir(node_chunk_store *s, int fanfd, const char *iname,
                          struct scan_totals *tot)
{
    int fd = openat(fanfd, iname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int dfd = dup(fd); /* fdopendir takes one; keep fd for *at() calls */
    if (dfd < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        close(fd);
        return rc;
    }
    int rc = 0;
    uint64_t kept = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = -errno;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        uint64_t stripe;
        uint16_t index;
        struct stat st;
        switch (parse_chunk_name(de->d_name, &stripe, &index)) {
        case NAME_CHUNK:
            if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT)
                    continue;
                rc = -errno;
                goto out;
            }
            tot->chunks++;
            tot->bytes += disk_bytes((uint64_t)st.st_size);
            kept++;
            break;
        case NAME_TMP:
            if (unlinkat(fd, de->d_name, 0) != 0 && errno != ENOENT) {
                rc = -errno;
                goto out;
            }
            tot->tmp++;
            CKPT_LOG_DEBUG("chunk store %s: removed leftover temp file %s/%s",
                           s->root, iname, de->d_name);
            break;
        default:
            CKPT_LOG_WARN("chunk store %s: unknown file %s/%s left alone",
                          s->root, iname, de->d_name);
            kept++;
            break;
        }
    }
out:
    closedir(d);
    close(fd);
    /* An empty inode directory is what an interrupted delete leaves. */
    if (rc == 0 && kept == 0 &&
        unlinkat(fanfd, iname, AT_REMOVEDIR) != 0 && errno != ENOTEMPTY &&
        errno != EEXIST && errno != ENOENT)
        CKPT_LOG_DEBUG("cannot remove empty %s: %s", iname, strerror(errno));
    return rc;
}

/* Call fn(s, fanfd, name, arg) for every inode directory of fan-out dir fan
 * whose name is a valid inode number belonging there. */
typedef int (*inode_dir_fn)(node_chunk_store *s, int fanfd, const char *name,
                            uint64_t ino, void *arg);

static int walk_fanout(node_chunk_store *s, unsigned fan, inode_dir_fn fn,
                       void *arg, bool warn_unknown)
{
    char fname[4];
    snprintf(fname, sizeof(fname), "%02x", fan);
    int fd = openat(s->chunkfd, fname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int dfd = dup(fd);
    if (dfd < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        close(fd);
        return rc;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = -errno;
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        uint64_t ino;
        if (strlen(de->d_name) != 16 || !parse_hex(de->d_name, 16, &ino) ||
            (ino & 0xff) != fan) {
            if (warn_unknown)
                CKPT_LOG_WARN("chunk store %s: unknown entry %s/%s left alone",
                              s->root, fname, de->d_name);
            continue;
        }
        if ((rc = fn(s, fd, de->d_name, ino, arg)) != 0)
            break;
    }
    closedir(d);
    close(fd);
    return rc;
}

static int scan_one(node_chunk_store *s, int fanfd, const char *name,
                    uint64_t ino, void *arg)
{
    (void)ino;
    return scan_inode_dir(s, fanfd, name, arg);
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */

int node_chunk_sync_parse(const char *name, enum node_chunk_sync *out)
{
    if (!name)
        return -EINVAL;
    if (!strcmp(name, "commit"))
        *out = NODE_CHUNK_SYNC_COMMIT;
    else if (!strcmp(name, "always"))
        *out = NODE_CHUNK_SYNC_ALWAYS;
    else if (!strcmp(name, "never"))
        *out = NODE_CHUNK_SYNC_NEVER;
    else
        return -EINVAL;
    return 0;
}

const char *node_chunk_sync_name(enum node_chunk_sync sync)
{
    switch (sync) {
    case NODE_CHUNK_SYNC_COMMIT: return "commit";
    case NODE_CHUNK_SYNC_ALWAYS: return "always";
    case NODE_CHUNK_SYNC_NEVER: return "never";
    }
    return "?";
}

void node_chunk_store_close(node_chunk_store *s)
{
    if (!s)
        return;
    dirty_free_all(s);
    for (int i = 0; i < NODE_LOCKS; i++)
        pthread_mutex_destroy(&s->locks[i]);
    pthread_mutex_destroy(&s->dirty_lock);
    pthread_mutex_destroy(&s->sync_lock);
    if (s->chunkfd >= 0)
        close(s->chunkfd);
    ckpt_free(s->root);
    /* Forgets the chunk counters this store reported. */
    node_target_release_store(s->t);
    ckpt_free(s);
}

/* Does the store's filesystem take O_DIRECT writes (tmpfs and some
 * network filesystems refuse the flag)?  A probe file in chunks/. */
static bool probe_direct(node_chunk_store *s)
{
    static const char name[] = ".direct-probe";
    int fd = openat(s->chunkfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
    if (fd < 0)
        return false;
    _Alignas(4096) uint8_t block[4096];
    memset(block, 0, sizeof(block));
    bool ok = pwrite(fd, block, sizeof(block), 0) == (ssize_t)sizeof(block);
    close(fd);
    (void)unlinkat(s->chunkfd, name, 0);
    return ok;
}

int node_chunk_store_open(node_target *t, const struct node_chunk_opts *opts,
                          node_chunk_store **out)
{
    struct node_chunk_opts o = {.sync = NODE_CHUNK_SYNC_COMMIT};
    node_chunk_store *s = NULL;
    int rc;

    if (!t || !out)
        return -EINVAL;
    if (opts)
        o = *opts;
    if (o.sync != NODE_CHUNK_SYNC_COMMIT && o.sync != NODE_CHUNK_SYNC_ALWAYS &&
        o.sync != NODE_CHUNK_SYNC_NEVER)
        return -EINVAL;
    if ((rc = node_target_claim_store(t)) < 0) {
        CKPT_LOG_ERR("target %s already has an open chunk store",
                     node_target_path(t));
        return rc;
    }
    s = ckpt_calloc(1, sizeof(*s));
    if (!s) {
        node_target_release_store(t);
        return -ENOMEM;
    }
    s->t = t;
    s->chunkfd = -1;
    s->sync = o.sync;
    s->syncfs_min = o.syncfs_min_files ? o.syncfs_min_files
                                       : NODE_CHUNK_SYNCFS_MIN_DEFAULT;
    /* Default-attribute mutexes cannot fail to initialise on Linux; the
     * checks keep the contract honest if that ever changes. */
    int nl = 0;
    for (; nl < NODE_LOCKS; nl++)
        if ((rc = -pthread_mutex_init(&s->locks[nl], NULL)) < 0)
            goto out_destroy_locks;
    if ((rc = -pthread_mutex_init(&s->dirty_lock, NULL)) < 0)
        goto out_destroy_locks;
    if ((rc = -pthread_mutex_init(&s->sync_lock, NULL)) < 0) {
        pthread_mutex_destroy(&s->dirty_lock);
        goto out_destroy_locks;
    }
    /* From here on node_chunk_store_close() undoes everything. */
    s->nbuckets = DIRTY_BUCKETS0;
    s->buckets = ckpt_calloc(s->nbuckets, sizeof(*s->buckets));
    /* Absolute: CHUNK_LOCATE hands chunk paths to same-host clients, whose
     * working directory is not ours. */
    char *abs = realpath(node_target_path(t), NULL);
    const char *tp = abs ? abs : node_target_path(t);
    size_t rlen = strlen(tp) + sizeof("/" NODE_TARGET_CHUNKDIR);
    s->root = ckpt_malloc(rlen);
    if (s->root)
        snprintf(s->root, rlen, "%s/%s", tp, NODE_TARGET_CHUNKDIR);
    free(abs);
    if (!s->buckets || !s->root) {
        rc = -ENOMEM;
        goto out_close;
    }
    s->chunkfd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->chunkfd < 0) {
        rc = -errno;
        CKPT_LOG_ERR("chunk store %s: cannot open: " CKPT_RC_FMT, s->root,
                     CKPT_RC_ARGS(rc));
        goto out_close;
    }

    bool created = false;
    for (unsigned i = 0; i < FANOUT; i++) {
        char fname[4];
        snprintf(fname, sizeof(fname), "%02x", i);
        if (mkdirat(s->chunkfd, fname, 0755) == 0)
            created = true;
        else if (errno != EEXIST) {
            rc = -errno;
            CKPT_LOG_ERR("chunk store %s: mkdir %s: " CKPT_RC_FMT, s->root,
                         fname, CKPT_RC_ARGS(rc));
            goto out_close;
        }
    }
    if (created && (rc = sync_fd(s->chunkfd, false)) < 0)
        goto out_close;
    s->direct = !o.buffered && probe_direct(s);

    struct scan_totals tot = {0, 0, 0};
    for (unsigned i = 0; i < FANOUT; i++) {
        if ((rc = walk_fanout(s, i, scan_one, &tot, true)) < 0) {
            CKPT_LOG_ERR("chunk store %s: scan failed: " CKPT_RC_FMT, s->root,
                         CKPT_RC_ARGS(rc));
            goto out_close;
        }
    }
    s->tmp_removed = tot.tmp;
    s->chunks_found = tot.chunks;
    node_target_chunks_account(t, (int64_t)tot.chunks, (int64_t)tot.bytes);
    CKPT_LOG_INFO("chunk store %s: %" PRIu64 " chunks (%" PRIu64
                  " MiB), %" PRIu64 " leftover temp files removed, sync=%s",
                  s->root, tot.chunks, tot.bytes >> 20, tot.tmp,
                  node_chunk_sync_name(s->sync));
    *out = s;
    return 0;

out_close:
    node_chunk_store_close(s);
    return rc;

out_destroy_locks:
    while (nl-- > 0)
        pthread_mutex_destroy(&s->locks[nl]);
    ckpt_free(s);
    node_target_release_store(t);
    return rc;
}

void node_chunk_store_stats(node_chunk_store *s,
                            struct node_chunk_store_stats *out)
{
    pthread_mutex_lock(&s->dirty_lock);
    out->dirty_files = s->ndirty_files;
    out->dirty_inodes = s->ndirty_inos;
    pthread_mutex_unlock(&s->dirty_lock);
    out->tmp_removed = s->tmp_removed;
    out->chunks_found = s->chunks_found;
    out->direct_writes = atomic_load(&s->direct_writes);
    out->direct_reads = atomic_load(&s->direct_reads);
    out->direct = s->direct;
}

/* ------------------------------------------------------------------ */
/* write                                                                */

/* Generation check against the chunk at rel.  Sets *old_size (-1 if none).
 * 0 = go ahead, CKPT_E_STALE, or an error that forbids replacing. */
static int gen_check(node_chunk_store *s, const char *rel,
                     const struct node_chunk_key *key, uint64_t gen,
                     off_t *old_size)
{
    struct node_chunk_info cur;
    int rc = chunk_open(s, rel, key, &cur, old_size, NULL, NULL);
    if (rc == -ENOENT)
        return 0;
    if (rc == CKPT_E_TORN)
        return 0; /* damaged: no valid generation to protect */
    if (rc < 0)
        return rc; /* -EIO, CKPT_E_VERSION: we cannot tell; refuse */
    if (cur.gen > gen)
        return CKPT_E_STALE;
    return 0;
}

int node_chunk_write(node_chunk_store *s, const struct node_chunk_key *key,
                     uint64_t gen, const struct iovec *iov, int iovcnt,
                     uint32_t crc_from_client)
{
    struct iovec stack_iov[IOV_STACK];
    struct iovec *wiov = stack_iov;
    _Alignas(4096) uint8_t hdr[NODE_CHUNK_DATA_OFF];
    char dir[REL_MAX], rel[REL_MAX], tmp[REL_MAX];
    struct dirty_ino *de = NULL;
    bool dir_new = false, tmp_made = false, claimed = false;
    off_t old_size = -1;
    uint64_t len = 0;
    int fd = -1, rc;

    if (!s || !key || iovcnt < 0 || iovcnt >= IOV_MAX || (iovcnt && !iov))
        return -EINVAL;
    uint32_t crc = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > NODE_CHUNK_MAX_LEN - len)
            return -EINVAL;
        len += iov[i].iov_len;
        crc = ckpt_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    }
    if (crc != crc_from_client) {
        CKPT_LOG_DEBUG("chunk %" PRIu64 "/%" PRIu64 "/%u gen %" PRIu64
                       ": data crc32c %08" PRIx32 " != client's %08" PRIx32,
                       key->ino, key->stripe, (unsigned)key->index, gen, crc,
                       crc_from_client);
        return CKPT_E_CRC;
    }

    rel_dir(dir, key->ino);
    rel_chunk(rel, key);
    if ((rc = gen_check(s, rel, key, gen, &old_size)) < 0)
        return rc;
    /* Direct I/O for the block-aligned part of a large chunk in one
     * page-aligned buffer (see "Direct writes"); the rest buffered. */
    uint64_t dlen = len & ~(uint64_t)(NODE_CHUNK_DATA_OFF - 1);
    bool direct = s->direct && iovcnt == 1 && dlen >= NODE_CHUNK_DIRECT_MIN &&
                  ((uintptr_t)iov[0].iov_base & (NODE_CHUNK_DATA_OFF - 1)) == 0;

    uint64_t need = disk_bytes(NODE_CHUNK_DATA_OFF + len);
    if ((rc = node_target_reserve_check(s->t, need)) < 0)
        return rc;
    claimed = true;
    if ((rc = dirty_reserve(s, key->ino, true, &de)) < 0)
        goto out_fail;

    /* The inode directory may not exist yet, or may be removed by a
     * concurrent node_chunk_delete_inode() between mkdir and create: retry. */
    for (int attempt = 0;; attempt++) {
        if (mkdirat(s->chunkfd, dir, 0755) == 0)
            dir_new = true;
        else if (errno != EEXIST) {
            rc = -errno;
            goto out_fail;
        }
        snprintf(tmp, sizeof(tmp), "%02x/%016" PRIx64 "/%016" PRIx64
                 ".%04x" TMP_SUFFIX "%016" PRIx64, (unsigned)(key->ino & 0xff),
                 key->ino, key->stripe, (unsigned)key->index,
                 (uint64_t)atomic_fetch_add(&s->tmp_seq, 1));
        fd = openat(s->chunkfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
        if (fd >= 0)
            break;
        rc = -errno;
        if ((rc != -ENOENT && rc != -EEXIST) || attempt >= 4)
            goto out_fail;
    }
    tmp_made = true;

    struct node_chunk_info info = {
        .gen = gen,
        .len = (uint32_t)len,
        .crc = crc,
        .stored_len = (uint32_t)len,
        .encoding = NODE_CHUNK_ENC_RAW,
    };
    hdr_encode(hdr, key, &info);
    memset(hdr + NODE_CHUNK_HDR_LEN, 0, sizeof(hdr) - NODE_CHUNK_HDR_LEN);
    if (iovcnt + 1 > IOV_STACK) {
        wiov = ckpt_malloc((size_t)(iovcnt + 1) * sizeof(*wiov));
        if (!wiov) {
            wiov = stack_iov;
            rc = -ENOMEM;
            goto out_fail;
        }
    }
    wiov[0].iov_base = hdr;
    wiov[0].iov_len = sizeof(hdr);
    for (int i = 0; i < iovcnt; i++)
        wiov[i + 1] = iov[i];
    if (direct) {
        wiov[1].iov_len = dlen;
        rc = pwritev_full(fd, wiov, 2, 0);
        if (rc == -EINVAL) {
            /* The filesystem took O_DIRECT at the probe but not this write
             * (a block size we did not expect): write it buffered. */
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0) {
                CKPT_LOG_DEBUG("chunk %" PRIu64 "/%" PRIu64 "/%u: O_DIRECT write refused, "
                               "written buffered", key->ino, key->stripe, (unsigned)key->index);
                wiov[0].iov_base = hdr; /* pwritev_full advanced them */
                wiov[0].iov_len = sizeof(hdr);
                wiov[1] = iov[0];
                rc = pwritev_full(fd, wiov, 2, 0);
                dlen = len;
            }
        } else if (rc == 0) {
            atomic_fetch_add(&s->direct_writes, 1);
        }
        if (rc == 0 && dlen < len) {
            /* The unaligned tail: buffered, through the same file. */
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
                rc = -errno;
            struct iovec tail = {(uint8_t *)iov[0].iov_base + dlen, len - dlen};
            if (rc == 0)
                rc = pwritev_full(fd, &tail, 1, (off_t)(NODE_CHUNK_DATA_OFF + dlen));
        }
    } else {
        rc = pwritev_full(fd, wiov, iovcnt + 1, 0);
    }
    if (rc < 0)
        goto out_fail;
    if (s->sync == NODE_CHUNK_SYNC_ALWAYS && (rc = sync_fd(fd, true)) < 0)
        goto out_fail;
    rc = close(fd) != 0 ? -errno : 0;
    fd = -1;
    if (rc < 0)
        goto out_fail;

    /* Commit point: recheck the generation and rename, atomically with
     * respect to other writers and deleters of this chunk. */
    pthread_mutex_t *lk = key_lock(s, key);
    pthread_mutex_lock(lk);
    rc = gen_check(s, rel, key, gen, &old_size);
    if (rc == 0 && renameat(s->chunkfd, tmp, s->chunkfd, rel) != 0)
        rc = -errno;
    pthread_mutex_unlock(lk);
    if (rc < 0)
        goto out_fail;

    /* The new version is in place: account for it whatever happens next. */
    node_target_chunks_account(s->t, 1, (int64_t)need);
    if (old_size >= 0) {
        uint64_t old = disk_bytes((uint64_t)old_size);
        node_target_chunks_account(s->t, -1, -(int64_t)old);
        node_target_space_release(s->t, old);
    }
    if (s->sync == NODE_CHUNK_SYNC_ALWAYS) {
        rc = sync_dir(s, dir);
        if (rc == 0 && dir_new) {
            char fan[4];
            snprintf(fan, sizeof(fan), "%02x", (unsigned)(key->ino & 0xff));
            rc = sync_dir(s, fan);
        }
        if (rc < 0)
            CKPT_LOG_ERR("chunk %" PRIu64 "/%" PRIu64 "/%u gen %" PRIu64
                         ": written but the directory fsync failed: "
                         CKPT_RC_FMT, key->ino, key->stripe,
                         (unsigned)key->index, gen, CKPT_RC_ARGS(rc));
    }
    dirty_commit(s, de, key, dir_new);
    if (wiov != stack_iov)
        ckpt_free(wiov);
    return rc;

out_fail:
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        (void)unlinkat(s->chunkfd, tmp, 0);
    if (claimed)
        node_target_space_release(s->t, need);
    dirty_cancel(s, de, dir_new);
    if (wiov != stack_iov)
        ckpt_free(wiov);
    if (rc == CKPT_E_STALE)
        CKPT_LOG_DEBUG("chunk %" PRIu64 "/%" PRIu64 "/%u: gen %" PRIu64
                       " refused, a newer one is stored", key->ino,
                       key->stripe, (unsigned)key->index, gen);
    return rc;
}

/* ------------------------------------------------------------------ */
/* read / stat                                                          */

static void log_bad_chunk(node_chunk_store *s, const struct node_chunk_key *k,
                          int rc, const char *why)
{
    char path[PATH_MAX];
    if (node_chunk_path(s, k, path, sizeof(path)) < 0)
        snprintf(path, sizeof(path), "%s/...", s->root);
    CKPT_LOG_WARN("chunk %" PRIu64 "/%" PRIu64 "/%u: " CKPT_RC_FMT " (%s) in %s",
                  k->ino, k->stripe, (unsigned)k->index, CKPT_RC_ARGS(rc),
                  why ? why : "?", path);
}

/* crc32c of [from, to) of the data, read through scratch. */
static int crc_through(int fd, uint8_t *scratch, uint32_t from, uint32_t to,
                       uint32_t *crc)
{
    while (from < to) {
        uint32_t n = to - from < SCRATCH_LEN ? to - from : SCRATCH_LEN;
        ssize_t got = pread_full(fd, scratch, n, n, NODE_CHUNK_DATA_OFF + (off_t)from);
        if (got < 0)
            return (int)got;
        if ((uint32_t)got != n)
            return CKPT_E_TORN;
        *crc = ckpt_crc32c(*crc, scratch, n);
        from += n;
    }
    return 0;
}

int node_chunk_open_read(node_chunk_store *s, const struct node_chunk_key *key,
                         struct node_chunk_reader *out)
{
    char rel[REL_MAX];
    const char *why = NULL;
    off_t size;
    int rc;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (!s || !key)
        return -EINVAL;
    rel_chunk(rel, key);
    rc = chunk_open(s, rel, key, &out->info, &size, &out->fd, &why);
    if (rc == 0 && out->info.encoding != NODE_CHUNK_ENC_RAW) {
        why = "encoding not supported by this build";
        rc = -EOPNOTSUPP;
    }
    if (rc < 0) {
        node_chunk_close_read(out);
        if (rc == CKPT_E_TORN || rc == CKPT_E_VERSION || rc == -EOPNOTSUPP)
            log_bad_chunk(s, key, rc, why);
        return rc;
    }
    out->key = *key;
    return 0;
}

void node_chunk_close_read(struct node_chunk_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

ssize_t node_chunk_read_from(node_chunk_store *s, struct node_chunk_reader *r,
                             uint32_t offset, void *dst, uint32_t len, uint32_t dst_cap,
                             uint32_t *out_crc)
{
    const struct node_chunk_info *info;
    const struct node_chunk_key *key;
    uint8_t *scratch = NULL;
    const char *why = NULL;
    ssize_t rc;

    if (!s || !r || r->fd < 0 || (len && !dst))
        return -EINVAL;
    info = &r->info;
    key = &r->key;
    uint32_t start = offset < info->len ? offset : info->len;
    uint32_t end = start + (len < info->len - start ? len : info->len - start);
    uint32_t crc = 0;
    if (start > 0 || end < info->len) {
        uint32_t rest = start > info->len - end ? start : info->len - end;
        scratch = ckpt_malloc(rest < SCRATCH_LEN ? rest : SCRATCH_LEN);
        if (!scratch) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if ((rc = crc_through(r->fd, scratch, 0, start, &crc)) < 0)
        goto out_torn;
    uint32_t dlen = (info->len + NODE_CHUNK_DATA_OFF - 1) & ~(NODE_CHUNK_DATA_OFF - 1);
    if (s->direct && start == 0 && end == info->len && info->len >= NODE_CHUNK_DIRECT_MIN &&
        dst_cap >= dlen && ((uintptr_t)dst & (NODE_CHUNK_DATA_OFF - 1)) == 0) {
        /* See "Direct reads": the disk's bytes land in dst. */
        int fl = fcntl(r->fd, F_GETFL);
        if (fl >= 0 && !(fl & O_DIRECT) && fcntl(r->fd, F_SETFL, fl | O_DIRECT) == 0) {
            ssize_t got = pread_full(r->fd, dst, info->len, dlen, NODE_CHUNK_DATA_OFF);
            if (got == -EINVAL) {
                /* Refused after all (see the write side): read buffered. */
                if (fcntl(r->fd, F_SETFL, fl) != 0) {
                    rc = -errno;
                    goto out;
                }
            } else if (got < 0) {
                rc = got;
                goto out;
            } else if ((uint32_t)got < info->len) {
                rc = CKPT_E_TORN;
                goto out_torn;
            } else {
                atomic_fetch_add(&s->direct_reads, 1);
                crc = ckpt_crc32c(0, dst, info->len);
                goto check;
            }
        }
    }
    if (end > start) {
        ssize_t got = pread_full(r->fd, dst, end - start, end - start,
                                 NODE_CHUNK_DATA_OFF + (off_t)start);
        if (got < 0) {
            rc = got;
            goto out;
        }
        if ((uint32_t)got != end - start) {
            rc = CKPT_E_TORN;
            goto out_torn;
        }
        crc = ckpt_crc32c(crc, dst, end - start);
    }
    if ((rc = crc_through(r->fd, scratch, end, info->len, &crc)) < 0)
        goto out_torn;
check:
    if (crc != info->crc) {
        char path[PATH_MAX];
        if (node_chunk_path(s, key, path, sizeof(path)) < 0)
            snprintf(path, sizeof(path), "%s/...", s->root);
        CKPT_LOG_WARN("chunk %" PRIu64 "/%" PRIu64 "/%u gen %" PRIu64
                      ": data crc32c mismatch (header %08" PRIx32
                      ", data %08" PRIx32 ") in %s",
                      key->ino, key->stripe, (unsigned)key->index, info->gen,
                      info->crc, crc, path);
        rc = CKPT_E_CRC;
        goto out;
    }
    if (out_crc) /* the whole chunk's crc, just verified, needs no pass */
        *out_crc = start == 0 && end == info->len ? info->crc
                                                  : ckpt_crc32c(0, dst, end - start);
    rc = end - start;
    goto out;

out_torn:
    if (rc == CKPT_E_TORN)
        why = "file shorter than its header says";
out:
    ckpt_free(scratch);
    if (rc == CKPT_E_TORN)
        log_bad_chunk(s, key, (int)rc, why);
    return rc;
}

ssize_t node_chunk_read(node_chunk_store *s, const struct node_chunk_key *key,
                        uint32_t offset, void *dst, uint32_t len,
                        uint64_t *out_gen, uint32_t *out_len)
{
    struct node_chunk_reader r;
    ssize_t rc;

    if (!s || !key || (len && !dst))
        return -EINVAL;
    if ((rc = node_chunk_open_read(s, key, &r)) < 0)
        return rc;
    rc = node_chunk_read_from(s, &r, offset, dst, len, 0, NULL);
    if (rc >= 0) {
        if (out_gen)
            *out_gen = r.info.gen;
        if (out_len)
            *out_len = r.info.len;
    }
    node_chunk_close_read(&r);
    return rc;
}

int node_chunk_stat(node_chunk_store *s, const struct node_chunk_key *key,
                    struct node_chunk_info *out)
{
    char rel[REL_MAX];
    const char *why = NULL;
    off_t size;
    if (!s || !key || !out)
        return -EINVAL;
    rel_chunk(rel, key);
    int rc = chunk_open(s, rel, key, out, &size, NULL, &why);
    if (rc == CKPT_E_TORN || rc == CKPT_E_VERSION)
        log_bad_chunk(s, key, rc, why);
    return rc;
}

/* ------------------------------------------------------------------ */
/* delete                                                               */

/* Delete one chunk (see node_chunk_delete). */
static int delete_one(node_chunk_store *s, const struct node_chunk_key *key,
                      uint64_t below_gen)
{
    char rel[REL_MAX], dir[REL_MAX];
    struct dirty_ino *de = NULL;
    struct node_chunk_info info;
    off_t size = -1;
    int rc;

    rel_chunk(rel, key);
    rel_dir(dir, key->ino);
    if ((rc = dirty_reserve(s, key->ino, false, &de)) < 0)
        return rc;

    pthread_mutex_t *lk = key_lock(s, key);
    pthread_mutex_lock(lk);
    if (below_gen) {
        rc = chunk_open(s, rel, key, &info, &size, NULL, NULL);
        if (rc == 0 && info.gen >= below_gen)
            rc = CKPT_E_STALE;
        else if (rc == CKPT_E_TORN)
            rc = 0; /* unreadable header: counts as older */
    } else {
        struct stat st;
        if (fstatat(s->chunkfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
            rc = -errno;
        else
            size = st.st_size;
    }
    if (rc == 0 && unlinkat(s->chunkfd, rel, 0) != 0)
        rc = -errno;
    pthread_mutex_unlock(lk);
    if (rc < 0) {
        dirty_cancel(s, de, false);
        return rc;
    }

    uint64_t bytes = disk_bytes(size >= 0 ? (uint64_t)size : 0);
    node_target_chunks_account(s->t, -1, -(int64_t)bytes);
    node_target_space_release(s->t, bytes);
    dirty_commit(s, de, NULL, false);
    if (s->sync == NODE_CHUNK_SYNC_ALWAYS)
        rc = sync_dir(s, dir);
    return rc;
}

int node_chunk_delete(node_chunk_store *s, const struct node_chunk_key *key,
                      uint64_t below_gen)
{
    if (!s || !key)
        return -EINVAL;
    return delete_one(s, key, below_gen);
}

int node_chunk_delete_inode(node_chunk_store *s, uint64_t ino,
                            uint64_t from_stripe, uint64_t below_gen,
                            uint64_t *out_deleted)
{
    char dir[REL_MAX];
    uint64_t deleted = 0;
    int rc = 0;

    if (out_deleted)
        *out_deleted = 0;
    if (!s)
        return -EINVAL;
    rel_dir(dir, ino);
    int fd = openat(s->chunkfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                rc = -errno;
            break;
        }
        struct node_chunk_key key = {.ino = ino};
        if (parse_chunk_name(e->d_name, &key.stripe, &key.index) != NAME_CHUNK ||
            key.stripe < from_stripe)
            continue;
        int r = delete_one(s, &key, below_gen);
        if (r == 0)
            deleted++;
        else if (r != -ENOENT && r != CKPT_E_STALE) {
            rc = r;
            break;
        }
    }
    closedir(d);

    /* Remove the directory if that emptied it (fails harmlessly with
     * ENOTEMPTY when chunks or a writer's temp file remain). */
    if (rc == 0) {
        if (unlinkat(s->chunkfd, dir, AT_REMOVEDIR) == 0) {
            char fan[4];
            snprintf(fan, sizeof(fan), "%02x", (unsigned)(ino & 0xff));
            if (s->sync == NODE_CHUNK_SYNC_ALWAYS)
                rc = sync_dir(s, fan);
        } else if (errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT) {
            rc = -errno;
        }
    }
    if (out_deleted)
        *out_deleted = deleted;
    return rc;
}

/* ------------------------------------------------------------------ */
/* enumeration                                                          */

struct visit_ctx {
    node_chunk_visit_fn fn;
    void *arg;
};

static int visit_inode(node_chunk_store *s, int fanfd, const char *name,
                       uint64_t ino, void *arg)
{
    struct visit_ctx *v = arg;
    char rel[REL_MAX];
    int rc = 0;

    int fd = openat(fanfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                rc = -errno;
            break;
        }
        struct node_chunk_key key = {.ino = ino};
        if (parse_chunk_name(e->d_name, &key.stripe, &key.index) != NAME_CHUNK)
            continue;
        struct node_chunk_info info;
        off_t size;
        rel_chunk(rel, &key);
        int hrc = chunk_open(s, rel, &key, &info, &size, NULL, NULL);
        if (hrc == -ENOENT)
            continue; /* deleted since readdir */
        if (hrc < 0)
            memset(&info, 0, sizeof(info));
        if ((rc = v->fn(v->arg, &key, &info, hrc)) != 0)
            break;
    }
    closedir(d);
    return rc;
}

int node_chunk_foreach_inode(node_chunk_store *s, uint64_t ino,
                             node_chunk_visit_fn fn, void *arg)
{
    struct visit_ctx v = {fn, arg};
    char fan[4], name[17];
    if (!s || !fn)
        return -EINVAL;
    snprintf(fan, sizeof(fan), "%02x", (unsigned)(ino & 0xff));
    snprintf(name, sizeof(name), "%016" PRIx64, ino);
    int fanfd = openat(s->chunkfd, fan, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fanfd < 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = visit_inode(s, fanfd, name, ino, &v);
    close(fanfd);
    return rc;
}

int node_chunk_foreach(node_chunk_store *s, node_chunk_visit_fn fn, void *arg)
{
    struct visit_ctx v = {fn, arg};
    if (!s || !fn)
        return -EINVAL;
    for (unsigned i = 0; i < FANOUT; i++) {
        int rc = walk_fanout(s, i, visit_inode, &v, false);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* ordered listing (CHUNK_LIST)                                         */

struct ino_vec {
    uint64_t *v;
    size_t n, cap;
    uint64_t min;       /* collect inodes >= min */
};

static int ino_vec_push(struct ino_vec *iv, uint64_t ino)
{
    if (iv->n == iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 256;
        uint64_t *nv = iv->v ? ckpt_realloc(iv->v, cap * sizeof(*nv))
                             : ckpt_malloc(cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        iv->v = nv;
        iv->cap = cap;
    }
    iv->v[iv->n++] = ino;
    return 0;
}

static int collect_ino(node_chunk_store *s, int fanfd, const char *name,
                       uint64_t ino, void *arg)
{
    (void)s;
    (void)fanfd;
    (void)name;
    struct ino_vec *iv = arg;
    return ino >= iv->min ? ino_vec_push(iv, ino) : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct stripe_ix {
    uint64_t stripe;
    uint16_t index;
};

static int cmp_stripe_ix(const void *a, const void *b)
{
    const struct stripe_ix *x = a, *y = b;
    if (x->stripe != y->stripe)
        return x->stripe < y->stripe ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The chunks of one inode directory with key > *after, sorted, into *out
 * (allocated; caller frees).  A missing directory yields none. */
static int list_inode(node_chunk_store *s, uint64_t ino,
                      const struct node_chunk_key *after,
                      struct stripe_ix **out, size_t *out_n)
{
    char dir[REL_MAX];
    struct stripe_ix *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    *out = NULL;
    *out_n = 0;
    rel_dir(dir, ino);
    int fd = openat(s->chunkfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                rc = -errno;
            break;
        }
        struct stripe_ix si;
        if (parse_chunk_name(e->d_name, &si.stripe, &si.index) != NAME_CHUNK)
            continue;
        if (after && ino == after->ino &&
            (si.stripe < after->stripe ||
             (si.stripe == after->stripe && si.index <= after->index)))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct stripe_ix *nv = v ? ckpt_realloc(v, ncap * sizeof(*nv))
                                     : ckpt_malloc(ncap * sizeof(*nv));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n++] = si;
    }
    closedir(d);
    if (rc < 0) {
        ckpt_free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_stripe_ix);
    *out = v;
    *out_n = n;
    return 0;
}

int node_chunk_list(node_chunk_store *s, const struct node_chunk_key *after,
                    struct node_chunk_entry *out, uint32_t max,
                    uint32_t *out_n, int *out_more)
{
    struct ino_vec iv = {.v = NULL, .n = 0, .cap = 0, .min = after ? after->ino : 0};
    struct stripe_ix *cv = NULL;
    uint32_t n = 0;
    int more = 0, rc = 0;

    if (!s || !out || !max || !out_n || !out_more)
        return -EINVAL;
    for (unsigned f = 0; f < FANOUT && rc == 0; f++)
        rc = walk_fanout(s, f, collect_ino, &iv, false);
    if (rc < 0)
        goto out;
    if (iv.n > 1)
        qsort(iv.v, iv.n, sizeof(*iv.v), cmp_u64);
    for (size_t i = 0; i < iv.n && !more; i++) {
        size_t cn;
        if ((rc = list_inode(s, iv.v[i], after, &cv, &cn)) < 0)
            goto out;
        for (size_t j = 0; j < cn; j++) {
            struct node_chunk_key key = {iv.v[i], cv[j].stripe, cv[j].index};
            struct node_chunk_info info;
            char rel[REL_MAX];
            off_t size;
            rel_chunk(rel, &key);
            int hrc = chunk_open(s, rel, &key, &info, &size, NULL, NULL);
            if (hrc == -ENOENT)
                continue; /* deleted since readdir */
            if (n == max) {
                more = 1;
                break;
            }
            out[n].key = key;
            out[n].gen = hrc == 0 ? info.gen : 0;
            out[n].len = hrc == 0 ? info.len : 0;
            out[n].rc = hrc;
            n++;
        }
        CKPT_FREE(cv);
    }
out:
    ckpt_free(cv);
    ckpt_free(iv.v);
    *out_n = n;
    *out_more = rc < 0 ? 1 : more;
    return rc;
}

/* ------------------------------------------------------------------ */
/* barrier                                                              */

struct sync_file {
    uint64_t ino, stripe;
    uint16_t index;
};
struct sync_dir {
    uint64_t ino;
    bool dir_new;
};

/* Move a dirty entry's files and directory into the barrier's arrays. */
static void take_locked(node_chunk_store *s, struct dirty_ino *e,
                        struct sync_file *files, size_t *nf,
                        struct sync_dir *dirs, size_t *nd)
{
    if (!e->dir_dirty)
        return;
    for (uint32_t j = 0; j < e->n; j++)
        files[(*nf)++] = (struct sync_file){e->ino, e->ents[j].stripe,
                                            e->ents[j].index};
    dirs[(*nd)++] = (struct sync_dir){e->ino, e->dir_new};
    dirty_clear_locked(s, e);
}

/* Per-file barrier: fdatasync each file, fsync each directory. */
static int sync_files(node_chunk_store *s, const struct sync_file *f,
                      size_t nf, const struct sync_dir *dirs, size_t nd)
{
    char rel[REL_MAX];
    int first = 0;
    for (size_t i = 0; i < nf; i++) {
        struct node_chunk_key k = {f[i].ino, f[i].stripe, f[i].index};
        rel_chunk(rel, &k);
        int fd = openat(s->chunkfd, rel, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT && !first)
                first = -errno;
            continue; /* deleted since: its directory fsync covers it */
        }
        int rc = sync_fd(fd, true);
        close(fd);
        if (rc < 0 && !first) {
            first = rc;
            CKPT_LOG_ERR("barrier: fdatasync %s/%s: " CKPT_RC_FMT, s->root,
                         rel, CKPT_RC_ARGS(rc));
        }
    }
    for (size_t i = 0; i < nd; i++) {
        char fan[4];
        snprintf(fan, sizeof(fan), "%02x", (unsigned)(dirs[i].ino & 0xff));
        rel_dir(rel, dirs[i].ino);
        int rc = sync_dir(s, rel);
        if (rc == -ENOENT || (rc == 0 && dirs[i].dir_new))
            rc = sync_dir(s, fan); /* removed or created: parent changed */
        if (rc < 0 && !first) {
            first = rc;
            CKPT_LOG_ERR("barrier: fsync directory %s/%s: " CKPT_RC_FMT,
                         s->root, rel, CKPT_RC_ARGS(rc));
        }
    }
    return first;
}

int node_chunk_sync(node_chunk_store *s, const uint64_t *inos, size_t n)
{
    struct sync_file *files = NULL;
    struct sync_dir *dirs = NULL;
    size_t nf = 0, nd = 0;
    int rc = 0;

    if (!s || (n && !inos))
        return -EINVAL;
    if (s->sync != NODE_CHUNK_SYNC_COMMIT)
        return 0;

    pthread_mutex_lock(&s->sync_lock);
    pthread_mutex_lock(&s->dirty_lock);
    uint64_t want_files = 0, want_dirs = 0;
    if (n == 0) {
        want_files = s->ndirty_files;
        want_dirs = s->ndirty_inos;
    } else {
        for (size_t i = 0; i < n; i++) {
            struct dirty_ino *e = dirty_find_locked(s, inos[i]);
            if (e && e->dir_dirty) {
                want_files += e->n;
                want_dirs++;
            }
        }
    }
    if (want_dirs == 0) {
        pthread_mutex_unlock(&s->dirty_lock);
        goto out_unlock;
    }

    if (want_files >= s->syncfs_min) {
        /* syncfs makes everything durable: clear the whole set first, so
         * that anything recorded after this point stays dirty. */
        for (uint32_t b = 0; b < s->nbuckets; b++) {
            struct dirty_ino *e = s->buckets[b];
            while (e) {
                struct dirty_ino *next = e->next;
                if (e->dir_dirty)
                    dirty_clear_locked(s, e);
                e = next;
            }
        }
        pthread_mutex_unlock(&s->dirty_lock);
        if (ckpt_fault_hit(CKPT_FAULT_FSYNC))
            rc = -EIO;
        else if (syncfs(s->chunkfd) != 0)
            rc = -errno;
        if (rc < 0)
            CKPT_LOG_ERR("barrier: syncfs %s: " CKPT_RC_FMT, s->root,
                         CKPT_RC_ARGS(rc));
        goto out_unlock;
    }

    files = ckpt_malloc((size_t)(want_files ? want_files : 1) * sizeof(*files));
    dirs = ckpt_malloc((size_t)want_dirs * sizeof(*dirs));
    if (!files || !dirs) {
        pthread_mutex_unlock(&s->dirty_lock);
        rc = -ENOMEM;
        goto out_unlock;
    }
    if (n == 0) {
        for (uint32_t b = 0; b < s->nbuckets; b++) {
            struct dirty_ino *e = s->buckets[b], *next;
            for (; e; e = next) {
                next = e->next; /* e may be freed */
                take_locked(s, e, files, &nf, dirs, &nd);
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            struct dirty_ino *e = dirty_find_locked(s, inos[i]);
            if (e)
                take_locked(s, e, files, &nf, dirs, &nd);
        }
    }
    pthread_mutex_unlock(&s->dirty_lock);
    rc = sync_files(s, files, nf, dirs, nd);

out_unlock:
    pthread_mutex_unlock(&s->sync_lock);
    ckpt_free(files);
    ckpt_free(dirs);
    return rc;
}

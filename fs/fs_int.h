/*
 * fs_int.h - internals shared by the files of the FUSE client (fs/).
 * Only the .c files of fs/ include it.
 *
 *   fs_client.c  the client object, inode table, options, statistics
 *   fs_write.c   write-back: stripe versions, encode, chunk writes, fsync,
 *                deferred release, truncate
 *   fs_read.c    stripe loading (parallel chunk reads, crc, generations,
 *                decode from parity), read cache and read-ahead
 *   fs_ops.c     the libfuse low-level operations
 *   fs_map.c     cluster map and peers;  fs_pool.c  dirty_limit budget;
 *   fs_wq.c      worker threads;  fs_kio.c  our reads/writes of /dev/fuse
 *
 * Lock order (outer first): ino->lock -> c->lock (inode table, slots) ->
 * the pool/wq/map/net locks, which never call back out.  Nothing takes
 * ino->lock while holding c->lock.  fs_inode_put() must not be called with
 * ino->lock held (the last put takes it to free the inode).  No lock is
 * held across a network call or while blocking on the pool:
 * ckpt_*_submit() may complete a call on the caller's thread, and
 * completions take ino->lock.
 */
#ifndef FS_INT_H
#define FS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ec.h"
#include "fs.h"
#include "fs_kio.h"
#include "fs_map.h"
#include "fs_pool.h"
#include "fs_wq.h"
#include "layout.h"
#include "mclient.h"
#include "msg_meta.h"
#include "msg_node.h"
#include "net.h"

#define FS_ITAB_BUCKETS 1024
#define FS_SV_BUCKETS 256
#define FS_MAX_CHUNKS CKPT_CHUNK_MAX_INDEX  /* k + m <= 20 */
#define FS_EC_CACHE 16
#define FS_CW_RETRIES 1           /* resends of a chunk write after a dropped connection */
#define FS_CALL_BODY_MAX 64       /* encoded chunk request bodies fit */
#define FS_ZERO_LEN (1u << 20)    /* a read reply's zero-fill source */
#define FS_DONE_RING 64           /* recently finished versions remembered */
#define FS_WRITEBACK_NICE 10      /* write-back workers yield to the application */
#define FS_HOLD_IDLE_MS 200       /* held full stripes go once the writer pauses this long */
#define FS_HOLD_CLOSED_MS 1000    /* ... a closed file's at the latest this long after close */
#define FS_REL_RETRY_MS 20000    /* a size-carrying RELEASE retried while ckpt-meta is away */
#define FS_LOCAL_RETRY_MS 60000  /* short-circuit reads of a node retried after an open failed */

typedef struct fs_inode fs_inode;
struct fs_sv;
struct fs_rc;

/* ---- client --------------------------------------------------------------- */

struct fs_stats {
    _Atomic uint64_t bytes_written;     /* by write() */
    _Atomic uint64_t bytes_read;        /* by read() */
    _Atomic uint64_t stripes_written;   /* stripe versions acknowledged */
    _Atomic uint64_t stripes_degraded;  /* ... with fewer than k+m chunks */
    _Atomic uint64_t stripes_failed;    /* ... with fewer than k chunks */
    _Atomic uint64_t chunk_retries;
    _Atomic uint64_t stripes_loaded;    /* read from the targets */
    _Atomic uint64_t stripes_decoded;   /* ... that needed parity */
    _Atomic uint64_t rmw_loads;         /* stripes read back to modify them */
    _Atomic uint64_t chunks_adopted;    /* whole-chunk writes taken without a copy */
    _Atomic uint64_t ra_hits;           /* reads served by the read-ahead cache */
    _Atomic uint64_t ra_waits;          /* ... that waited for the stripe's load */
    _Atomic uint64_t ra_wait_us;        /* ... for this long in all */
    _Atomic uint64_t demand_loads;      /* stripes a read() loaded itself */
    _Atomic uint64_t chunks_local;      /* chunks read from a same-host node's file */
    _Atomic uint64_t local_fallbacks;   /* ... that had to be read through the node */
    _Atomic uint64_t chunks_located;    /* CHUNK_LOCATE asked (the rest: file_read) */
    _Atomic uint64_t held_idle;         /* held versions released: writer paused */
    _Atomic uint64_t held_full;         /* ... over the held limit */
    _Atomic uint64_t held_flush;        /* ... by a flush, fsync, close or pressure */
};

#define FS_SLAB_BUCKETS 256
struct fs_slab;

struct fs_client {
    struct fs_opts opts;
    /* Stripe completions past the point where waiters can see them done
     * but not yet finished freeing (sv_complete); unmount waits for 0
     * before it frees inodes that are still referenced. */
    atomic_int completing;
    ckpt_net *net;
    ckpt_mclient *mc;
    fs_map *map;
    fs_pool *pool;                 /* write-back budget */
    fs_wq *wq;                     /* encode/send, retries, reports */
    fs_wq *rq;                     /* read-ahead loads */
    uint8_t *zeros;                /* FS_ZERO_LEN zero bytes (read replies) */
    /* Short-circuit reads (fs_read.c): this host's id, when known and
     * opts.local_read is on; else every chunk is read through its node. */
    uint8_t host_id[CKPT_NET_HOST_ID_LEN];
    bool local_read;
    uint32_t max_flight;           /* stripes sending at once */

    pthread_mutex_t lock;
    pthread_cond_t cond;           /* wakes the write-behind flusher */
    fs_inode *itab[FS_ITAB_BUCKETS]; /* protected by lock */
    uint64_t ninodes;              /* protected by lock */
    uint32_t nflight;              /* protected by lock: stripes sending */
    struct fs_sv *slot_head, *slot_tail; /* protected by lock: waiting for a slot */
    struct fs_sv *held_head, *held_tail; /* protected by lock: write-behind, oldest first */
    uint64_t held_bytes;           /* protected by lock */
    uint64_t held_limit;           /* held_bytes above this are released */
    struct fs_freebuf *bufs[4];    /* protected by lock: recycled data buffers */
    size_t buf_len[4];             /* protected by lock: their sizes */
    uint64_t buf_cached;           /* protected by lock: bytes in bufs and free slab pieces */
    struct fs_slab *slabs[FS_SLAB_BUCKETS]; /* protected by lock: by base address */
    struct fs_slab *slab_avail;    /* protected by lock: slabs with a free piece */
    bool slab_off;                 /* the net's buffers are not 2 MiB aligned */
    _Atomic uint64_t last_activity_ns; /* any write; trims the buffer cache */
    _Atomic int64_t writers_open;      /* handles that wrote and are not released */
    bool flusher_stop;             /* protected by lock */
    pthread_t flusher;
    bool flusher_started;
    struct { uint8_t k, m; ckpt_ec *ec; } ecs[FS_EC_CACHE]; /* protected by lock */
    uint64_t rc_bytes;             /* protected by lock: read cache memory */
    uint64_t rc_limit;
    bool borrowed;                 /* net and map belong to a unit test */
    struct fs_kio kio;             /* /dev/fuse hooks (fs_kio.c) */
    struct fs_fh *fh_head;         /* protected by lock: handles the kernel holds */
    struct fs_stats st;
};

/* ---- inodes ----------------------------------------------------------------- */

/* A recycled buffer (the header lives in the buffer itself). */
struct fs_freebuf {
    struct fs_freebuf *next;
};

/* Buffers of 256 KiB, 512 KiB and 1 MiB (chunk buffers, FUSE payloads)
 * are pieces of a 2 MiB net buffer that can be one huge page: a fresh 4
 * KiB page costs a fault that the kernel takes inside its copy from
 * /dev/fuse (get_user_pages), and on this VM first touches of memory were
 * most of a first checkpoint's time (fs_client.c, recycled buffers). */
#define FS_SLAB_BYTES (2u << 20)
struct fs_slab {
    struct fs_slab *hnext;         /* c->slabs chain */
    struct fs_slab *anext, *aprev; /* c->slab_avail list */
    uint8_t *base;
    uint32_t piece, n;             /* piece size, pieces */
    uint32_t freemask;             /* bit i: piece i is free */
};

/* Per-stripe checksum record (write side), for the file checksum. */
struct fs_scrc {
    uint32_t crc;  /* crc32c of the stripe's first len data bytes */
    uint32_t len;  /* 0: unknown */
};

/*
 * An inode that is open on this mount (or has write-back still in
 * progress).  Created by the first open, freed when the last reference
 * (handles, stripe versions, queued jobs) is dropped.
 */
struct fs_inode {
    fs_client *c;
    uint64_t ino;
    fs_inode *hnext;               /* c->itab chain; c->lock */
    uint32_t refs;                 /* c->lock */

    /* immutable after creation (but see tgt) */
    struct ckpt_layout layout;
    /* The targets chunks are read from and written to: layout.targets at
     * first; a later open adopts ckpt-meta's newer list (rebuild, drain or
     * rebalance swapped a slot: same data, other target) by publishing a
     * new array here.  Old arrays stay on old_tgts until the inode is
     * freed, so a reader that loaded the pointer keeps a valid array. */
    _Atomic(const uint32_t *) tgt;
    struct fs_tgts *old_tgts;      /* lock */
    ckpt_ec *ec;                   /* borrowed from c->ecs */
    uint32_t k, m, w, chunk;
    uint64_t sbytes;               /* stripe data bytes, k * chunk */
    bool regular;

    pthread_mutex_t lock;
    pthread_cond_t cond;           /* versions completed, writers left, loads done */
    /* all below protected by lock */
    uint64_t gen;                  /* chunk generation for new writes */
    uint64_t size;                 /* file size as this mount knows it */
    bool local_size;               /* size includes this mount's writes */
    uint64_t disk_size;            /* bytes that may be stored on targets */
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    bool mtime_set;
    struct fs_sv *open[FS_SV_BUCKETS]; /* stripes accepting writes */
    uint32_t nopen;
    struct fs_sv *fl_head, *fl_tail;   /* submitted versions, by seq */
    struct fs_sv *fl_hash[FS_SV_BUCKETS]; /* the same, by stripe, newest first */
    uint64_t submit_seq;
    struct { uint64_t stripe, seq; } done_ring[FS_DONE_RING];
    uint64_t ndone;                /* versions finished (done_ring index) */
    uint64_t synced_seq;           /* submit_seq at the last good fsync */
    uint32_t flush_waiters;        /* threads waiting for writers to leave */
    int err;                       /* sticky write error (-EIO) */
    bool incomplete;               /* ckpt-meta: CKPT_ATTR_F_INCOMPLETE (fsync says EIO) */
    bool seq_ok;                   /* written strictly sequentially from 0 */
    uint64_t seq_end;
    struct fs_scrc *scrc;
    uint64_t nscrc;
    struct ckpt_degraded_stripe *deg; /* to report */
    uint32_t ndeg, capdeg;
    uint64_t deg_gen;
    bool deg_queued;
    struct fs_job deg_job;
    /* Size messages to ckpt-meta (RELEASE and FLUSHED of handles that
     * wrote, SETATTR of a truncate) carry the size this mount knew when it
     * made them; ckpt-meta stores what it receives.  So they go one at a
     * time, in the order they were made: otherwise an older RELEASE sent
     * by one worker could land after a newer one sent by another and set
     * the file back to an earlier size (seen: an O_APPEND after two quick
     * closes wrote past a size that had gone back, and the bytes between
     * read as zeros). */
    struct fs_rel *rels;           /* waiting for their flush point, oldest first */
    struct fs_rel *rq_head, *rq_tail; /* point reached: sent in this order */
    bool meta_busy;                /* a size message is out (one at a time) */
    bool truncating;               /* a truncate holds the write path */
    /* read side */
    struct fs_rc *rc_head;         /* read cache, most recently used first */
    uint32_t nrc;
    uint64_t ra_next;              /* offset a sequential reader reads next */
    uint32_t ra_streak;
    _Atomic uint64_t last_write_ns; /* write-behind: when write() last came */
    _Atomic uint64_t closed_ns;     /* ... and when a handle that wrote closed */
};

/* A deferred RELEASE (or the release of a read-only open). */
struct fs_rel {
    struct fs_rel *next;           /* ino->rels, ino->rq_head */
    struct fs_job job;
    fs_inode *ino;
    uint64_t handle;
    uint64_t target_seq;           /* sent once every version <= it is done */
    uint64_t size;
    bool wrote;                    /* carries a size: sent in order (meta_busy) */
};

/* An open file handle (fuse_file_info.fh). */
struct fs_fh {
    fs_inode *ino;
    uint64_t handle;               /* ckpt-meta's open handle */
    uint32_t flags;                /* open(2) flags */
    bool may_write;
    _Atomic bool wrote;
    struct fs_rel *rel;            /* preallocated for release */
    struct fs_fh *tprev, *tnext;   /* c->fh_head (fs_client_fh_track); c->lock */
};

/* ---- write side ---------------------------------------------------------------- */

enum fs_sv_state {
    FS_SV_OPEN = 0,     /* in ino->open, accepting writes */
    FS_SV_WAIT = 1,     /* submitted; waits for an older version of its stripe */
    FS_SV_QUEUED = 2,   /* submitted; queued for a worker */
    FS_SV_FLIGHT = 3,   /* chunks being written */
};

/* One chunk write of a stripe version. */
struct fs_cw {
    struct ckpt_call call;
    struct fs_sv *sv;
    struct fs_job job;             /* resend */
    struct iovec iov;
    uint8_t body[FS_CALL_BODY_MAX];
    uint32_t tid;
    uint8_t idx;
    uint8_t tries;
};

/*
 * A stripe version: the buffer of one stripe's data (k chunks, contiguous)
 * and parity (m chunks), from the time the first byte is written into it
 * until every chunk write is answered.
 */
struct fs_sv {
    fs_inode *ino;
    uint64_t stripe;
    uint64_t seq;                  /* submission order within the inode */
    uint64_t gen;
    enum fs_sv_state state;        /* ino->lock */
    uint8_t *cd[FS_MAX_CHUNKS];    /* the k data chunks, chunk bytes each */
    uint8_t *parity;               /* m * chunk bytes while being sent, else NULL */
    uint64_t pool_bytes;           /* data reservation */
    uint64_t parity_bytes;         /* parity reservation (headroom), while sent */
    uint32_t valid;                /* data bytes from the stripe start (at submit) */
    uint32_t resv;                 /* ino->lock: extent claimed by writers */
    uint32_t writers;              /* ino->lock: threads copying into data */
    uint32_t pins;                 /* ino->lock: readers replying from data */
    bool tail_written;             /* ino->lock: a write ended at the stripe end */
    bool dead;                     /* ino->lock: done, free at the last unpin */
    uint32_t lens[FS_MAX_CHUNKS];
    uint32_t crcs[FS_MAX_CHUNKS];
    atomic_int pending;
    _Atomic uint32_t ok_mask;
    struct fs_sv *hnext;           /* ino->open chain */
    struct fs_sv *fnext, *fprev;   /* flight list */
    struct fs_sv *fhnext;          /* ino->fl_hash chain */
    struct fs_sv *successor;       /* newer version of this stripe waiting */
    bool holds_slot;               /* counted in c->nflight */
    bool try_all;                  /* send even to targets the map calls DOWN */
    struct fs_sv *slot_next;       /* c->slot_head queue */
    bool held;                     /* c->lock: on the write-behind list */
    struct fs_sv *hold_next, *hold_prev; /* c->held_head list */
    struct fs_job job;
    struct fs_cw cw[FS_MAX_CHUNKS];
};

/* The source of a write: copy n bytes into dst; 0 or a negative code. */
typedef int (*fs_copy_fn)(void *ctx, void *dst, size_t n);

/* ---- read side ------------------------------------------------------------------ */

enum fs_rc_state { FS_RC_LOADING = 0, FS_RC_READY = 1, FS_RC_FAILED = 2 };

/* A cached stripe (read cache / read-ahead). */
struct fs_rc {
    struct fs_rc *next, *prev;     /* ino->rc_head list */
    fs_inode *ino;
    uint64_t stripe;
    uint8_t *data;                 /* k * chunk bytes */
    enum fs_rc_state state;        /* ino->lock */
    int err;
    uint32_t pins;                 /* ino->lock */
    bool dead;                     /* ino->lock: unlinked; free at last unpin */
    uint64_t size;                 /* the file size it was loaded for */
    struct fs_job job;
};

/* What fs_read() hands back: pieces to send and the pins to drop after. */
struct fs_rres {
    struct iovec *iov;
    int niov, capiov;
    struct fs_sv **svs;
    int nsvs;
    struct fs_rc **rcs;
    int nrcs;
    size_t total;
};

/* ---- fs_client.c ----------------------------------------------------------------- */

/**
 * @brief Unit tests: start the client on a net and map of the test's own,
 * without ckpt-meta (c->mc stays NULL: RELEASE, FLUSHED and DEGRADED are
 * not sent, truncate answers -ENOTCONN).  net and map are borrowed.
 * @return 0, -EINVAL (already started), or the worker start error.
 */
int fs_client_start_local(fs_client *c, ckpt_net *net, fs_map *map);

/** ckpt_ec for (k, m), shared, created on first use.  0, -ENOMEM, -EINVAL. */
int fs_client_ec(fs_client *c, uint8_t k, uint8_t m, ckpt_ec **out);

/**
 * @brief The inode object of ino, created from the open reply's attr and
 * layout if it is not in the table.  Takes a reference.
 * @return 0, -ENOMEM, -EINVAL (bad layout).
 */
int fs_inode_get(fs_client *c, const struct ckpt_attr *attr,
                 const struct ckpt_layout *layout, fs_inode **out);
/** @brief The inode if it is in the table (referenced), else NULL. */
fs_inode *fs_inode_find(fs_client *c, uint64_t ino);
void fs_inode_ref(fs_inode *ino);
/** @brief Drop a reference; the last one frees (write-back must be done). */
void fs_inode_put(fs_inode *ino);
/** @brief Fold a fresh attr from ckpt-meta into the inode (size, gen). */
void fs_inode_update_attr(fs_inode *ino, const struct ckpt_attr *attr);

/**
 * @brief Track a handle the kernel holds (from open/create until RELEASE):
 * a handle whose RELEASE never came (the session ended first, e.g. on
 * SIGTERM right after a close(), or a lazy unmount) is released by
 * fs_client_destroy() after its write-back, so ckpt-meta gets its size
 * instead of marking the file incomplete.  Untrack before releasing.
 */
void fs_client_fh_track(fs_client *c, struct fs_fh *fh);
void fs_client_fh_untrack(fs_client *c, struct fs_fh *fh);

/**
 * @brief Take a sending slot for sv (c->max_flight).  When none is free, sv
 * is parked and its job pushed again, holding a slot, when one frees.
 * @return true when sv holds a slot now; false when it was parked.
 */
bool fs_client_slot_try(fs_client *c, struct fs_sv *sv);
/** @brief Give a slot back (or hand it to a parked version). */
void fs_client_slot_put(fs_client *c);

/**
 * @brief A stripe data buffer of len bytes: a recycled one (already
 * faulted in) when there is one, else ckpt_net_buf_alloc() with huge pages
 * advised.  NULL when out of memory.  The pool reservation is the
 * caller's business.
 */
void *fs_client_buf_get(fs_client *c, size_t len);
/** @brief Give a buffer from fs_client_buf_get() back: kept for reuse
 *  while buffers in use plus kept ones fit in dirty_limit, else freed. */
void fs_client_buf_put(fs_client *c, void *buf, size_t len);

/**
 * @brief Write-behind: keep a full, submitted version on the held list
 * instead of queueing it (the flusher thread queues it later).  Caller
 * holds ino->lock.
 */
void fs_client_hold_locked(fs_client *c, struct fs_sv *sv);
/** @brief Queue every held version of ino now.  Caller holds ino->lock. */
void fs_client_unhold_inode_locked(fs_client *c, fs_inode *ino);
/** @brief Queue the held versions of every closed file now (the mount's
 *  last writer closed).  Caller holds no inode lock. */
void fs_client_unhold_closed(fs_client *c);

/* Parallel calls waited for together. */
struct fs_batch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending;
};
struct fs_bcall {
    struct ckpt_call call;         /* call.ctx = the batch */
    uint32_t tid;
    int status;
    /* Optional: runs on the completing thread right after the answer
     * arrived (while its bulk is still in the CPU cache), before the batch
     * is told; may change status. */
    void (*verify)(struct fs_bcall *bc);
    uint64_t gen;                  /* CHUNK_READ answers (set by verify) */
    uint32_t len;
    /* Same-host reads (fs_read.c): the bytes go to dst (cap bytes) by
     * pread; a CHUNK_LOCATE answer also teaches map where chunk (ino,
     * stripe, index)'s target keeps its files. */
    uint8_t *dst;
    uint32_t cap;
    int8_t local;                  /* 0 not local, 1 read locally, 2 to be read
                                    * from its file, -1 ask the node, -2 ask the
                                    * node; this node is not local */
    fs_map *map;
    uint64_t ino, stripe;
    uint16_t index;
    uint8_t body[FS_CALL_BODY_MAX];
};
void fs_batch_init(struct fs_batch *b);
/**
 * @brief Submit bc->call (set up by the caller, done/ctx filled here)
 * through peer.  bc->status is the call's outcome once fs_batch_wait()
 * returned (it may be set before this returns: the answer can be quick).
 * @return 0 when submitted; the submit error (also in bc->status) when
 *         nothing was sent.
 */
int fs_batch_submit(struct fs_batch *b, ckpt_peer *peer, struct fs_bcall *bc);
/** @brief Wait for every submitted call, then destroy the batch. */
void fs_batch_wait(struct fs_batch *b);

/**
 * @brief Write-back memory is short: submit the idle open stripes of every
 * inode (their buffers are then freed as they are acknowledged).
 */
void fs_client_pressure(fs_client *c);

/* ---- fs_write.c ------------------------------------------------------------------ */

/**
 * @brief Buffer len bytes at off (copied from copy/ctx into stripe
 * buffers).  Blocks only for buffer space.
 * @return bytes written (len), or a negative code: the sticky write error
 *         of the inode (-EIO), -EFBIG, -ENOMEM, or the copy's error.
 */
ssize_t fs_write(fs_inode *ino, uint64_t off, size_t len, fs_copy_fn copy, void *ctx);
/**
 * @brief fs_write() of len bytes held in *buf, a buffer of cap bytes from
 * fs_client_buf_get(): when [off, off+len) is one whole chunk of cap bytes
 * and nobody else touches that chunk's buffer, the buffer becomes the
 * chunk's and *buf gets the one it replaced (same size, from the same
 * cache); else the bytes are copied and *buf stays.
 */
ssize_t fs_write_adopt(fs_inode *ino, uint64_t off, size_t len, uint8_t **buf, size_t cap);

/**
 * @brief Submit every open stripe of the inode (partial ones included),
 * waiting only for writers in the middle of a copy.
 * @return the submission sequence number covering everything written so far.
 */
uint64_t fs_flush_start(fs_inode *ino);
/** @brief Caller holds ino->lock: the same. */
uint64_t fs_flush_start_locked(fs_inode *ino);
/**
 * @brief close() of a handle that wrote while other handles of the mount
 * still write: fs_flush_start(), except that the versions wait on the
 * write-behind list until the mount's writers pause, the last of them
 * closes, or FS_HOLD_CLOSED_MS passed; see fs_write.c, Write-behind.
 */
uint64_t fs_flush_close(fs_inode *ino);
/** @brief Caller holds ino->lock: the same. */
uint64_t fs_flush_close_locked(fs_inode *ino);
/** @brief Submit the open stripes nobody is copying into (memory pressure). */
void fs_flush_idle(fs_inode *ino);

/**
 * @brief fs_flush_start(), then wait until every version up to it is done.
 * @return the sticky write error of the inode, or 0.
 */
int fs_flush_wait(fs_inode *ino);

/**
 * @brief fsync: flush and wait, CHUNK_SYNC every target of the layout,
 * then FLUSHED to ckpt-meta (size, mtime, checksum) through fh's handle.
 * @return 0, -EIO (a stripe lost more than m chunks, or the sync failed on
 *         more than m targets), or the ckpt-meta error.
 */
int fs_fsync(struct fs_fh *fh);

/**
 * @brief Hand fh's RELEASE to the write-back: it is sent once every stripe
 * written so far is acknowledged.  Consumes fh->rel and fh's inode
 * reference; never blocks on the network.
 */
void fs_release_deferred(struct fs_fh *fh);

/**
 * @brief Change the size of an open regular file: flushes, reads back the
 * stripe the new end falls into (shrink), asks ckpt-meta, deletes chunks
 * past the end, rewrites the boundary stripe.
 * @param[in,out] sa   SETATTR with CKPT_SETATTR_SIZE (other bits go along)
 * @param[out] out     the new attr (size as set)
 * @return 0 or a negative code.
 */
int fs_truncate(fs_inode *ino, const struct ckpt_msg_setattr *sa, struct ckpt_attr *out);

/**
 * @brief Before an OPEN with O_TRUNC of an inode open here: write back what
 * is buffered and wait until its RELEASEs are answered, so that none of
 * them sets an older size after ckpt-meta has truncated the file.
 */
void fs_meta_quiesce(fs_inode *ino);

/**
 * @brief After an OPEN with O_TRUNC: drop what is buffered for the inode
 * and delete its chunks of older generations on every target.
 */
void fs_after_otrunc(fs_client *c, fs_inode *ino, const struct ckpt_attr *attr,
                     const struct ckpt_layout *layout);

/** @brief Delete chunks of ino in stripes >= from_stripe with generation <
 *  below_gen on every usable target of layout (parallel; errors logged). */
void fs_delete_chunks(fs_client *c, uint64_t ino, const struct ckpt_layout *layout,
                      uint64_t from_stripe, uint64_t below_gen);

/** @brief Caller holds ino->lock: the newest unfinished version of stripe. */
struct fs_sv *fs_sv_newest_locked(fs_inode *ino, uint64_t stripe);
/** @brief Caller holds ino->lock: the version holding stripe's newest
 *  bytes on this mount (open, else newest unfinished), or NULL. */
struct fs_sv *fs_sv_find_locked(fs_inode *ino, uint64_t stripe);
/** @brief Caller holds ino->lock: drop a read pin (frees a dead version). */
void fs_sv_unpin_locked(fs_inode *ino, struct fs_sv *sv, struct fs_sv **out_free);
/** @brief Free a version's buffers (after fs_sv_unpin_locked said so). */
void fs_sv_free(struct fs_sv *sv);
/** @brief Compute the crc32c of the first size bytes from the stripe
 *  records, if the file was written sequentially.  Caller holds ino->lock. */
bool fs_file_crc_locked(fs_inode *ino, uint64_t size, uint32_t *out_crc);

/* ---- fs_read.c ------------------------------------------------------------------- */

/**
 * @brief Read the data of stripe of a file of the given size from its
 * targets into bufs[0..k) (chunk bytes each, page-aligned for direct
 * reads; everything past the data is zeroed).  Data chunks are read in
 * parallel; one that fails, is stale, or fails its crc is rebuilt from
 * parity.
 * @return 0, -EIO (CKPT_E_UNRECOV: fewer than k usable chunks), -ENOMEM.
 */
int fs_stripe_load(fs_inode *ino, uint64_t stripe, uint64_t size, uint8_t *const *bufs);
/** @brief bufs[i] = base + i * chunk for i < k: a contiguous stripe. */
void fs_chunk_ptrs(uint8_t *base, uint32_t k, uint32_t chunk, uint8_t **bufs);

/**
 * @brief Gather the bytes [off, off+len) for a read reply: pieces of
 * write-back buffers, cached stripes and zeros, pinned in res.
 * Release with fs_rres_done() after replying.
 * @return 0 (res->total may be short at EOF), -EIO, -ENOMEM.
 */
int fs_read(fs_inode *ino, uint64_t off, size_t len, struct fs_rres *res);
void fs_rres_done(fs_inode *ino, struct fs_rres *res);

/**
 * @brief Caller holds ino->lock: forget the cached copy of stripe (every
 * cached stripe when all).  Entries nobody pins are unlinked onto
 * *out_free (a list through ->next, possibly NULL); pinned ones are freed
 * by their last unpin.
 */
void fs_rc_drop_locked(fs_inode *ino, uint64_t stripe, bool all, struct fs_rc **out_free);
/** @brief Free what fs_rc_drop_locked / unpin handed back (no lock held). */
void fs_rc_free_list(fs_client *c, struct fs_rc *list);

/* ---- helpers ----------------------------------------------------------------------- */

static inline uint64_t fs_min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t fs_max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/** @return target id of chunk index of stripe in the inode's layout. */
struct fs_tgts {
    struct fs_tgts *next;
    uint32_t t[CKPT_LAYOUT_MAX_WIDTH];
};

static inline uint32_t fs_chunk_target(fs_inode *ino, uint64_t stripe, uint32_t index)
{
    const uint32_t *t = atomic_load_explicit(&ino->tgt, memory_order_acquire);
    return t[(stripe + index) % ino->w];
}

/* ino's layout with the targets in use now (fs_chunk_target). */
static inline void fs_inode_layout(fs_inode *ino, struct ckpt_layout *out)
{
    const uint32_t *t = atomic_load_explicit(&ino->tgt, memory_order_acquire);
    *out = ino->layout;
    for (uint32_t i = 0; i < ino->w; i++)
        out->targets[i] = t[i];
}

#endif

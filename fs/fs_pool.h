/*
 * fs_pool.h - the write-back memory budget of the FUSE client (dirty_limit).
 *
 * Every stripe buffer that holds written data not yet acknowledged by its
 * targets is reserved here first.  A reservation blocks while the budget is
 * used up, so write() slows down to the speed at which stripes drain to the
 * targets instead of growing memory without bound (backpressure).  The pool
 * only does the accounting; the buffers themselves come from
 * ckpt_net_buf_alloc() so that they can be registered transport memory.
 *
 * One reservation larger than the whole budget (a layout whose stripe
 * exceeds dirty_limit) is granted when nothing else is reserved, so such a
 * file still makes progress, one stripe at a time.
 *
 * Headroom: buffered data must leave `headroom` bytes of the budget free
 * (fs_pool_reserve); only fs_pool_reserve_headroom() may use them.  The
 * client reserves parity buffers that way, for the few stripes being sent
 * at a time, so that encoding a stripe never waits for buffered data that
 * itself waits for stripes to be sent.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef FS_POOL_H
#define FS_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct fs_pool fs_pool;

struct fs_pool_stats {
    uint64_t limit;    /* bytes */
    uint64_t headroom; /* bytes only fs_pool_reserve_headroom() may use */
    uint64_t in_use;   /* bytes reserved now */
    uint64_t peak;     /* highest in_use seen */
    uint64_t waits;    /* reservations that had to wait */
    uint64_t wait_ns;  /* total time spent waiting */
};

/**
 * @brief Create a budget of limit_bytes.
 * @param[in] limit_bytes  > 0
 * @param[out] out  destroyed with fs_pool_destroy()
 * @return 0, -EINVAL (limit 0 or out NULL), -ENOMEM.
 */
int fs_pool_create(uint64_t limit_bytes, fs_pool **out);

/** @brief Free the pool.  Nothing may be reserved or waiting.  NULL is a no-op. */
void fs_pool_destroy(fs_pool *p);

/**
 * @brief Reserve bytes, waiting up to timeout_ms while the budget is full.
 * @param[in] bytes       > 0
 * @param[in] timeout_ms  0: do not wait
 * @return 0 (reserved: give it back with fs_pool_release()), -ETIMEDOUT
 *         (nothing reserved), -EINVAL (bytes 0).
 */
int fs_pool_reserve(fs_pool *p, uint64_t bytes, uint32_t timeout_ms);

/**
 * @brief Like fs_pool_reserve(), but may use the headroom (up to the whole
 * limit).
 */
int fs_pool_reserve_headroom(fs_pool *p, uint64_t bytes, uint32_t timeout_ms);

/** @brief Set the headroom (at most half the limit; larger values are
 *  clamped).  Call before the pool is used. */
void fs_pool_set_headroom(fs_pool *p, uint64_t bytes);

/** @brief Give back a reservation (wakes waiters). */
void fs_pool_release(fs_pool *p, uint64_t bytes);

/** @brief Read the counters (a consistent snapshot). */
void fs_pool_get_stats(fs_pool *p, struct fs_pool_stats *out);

#endif

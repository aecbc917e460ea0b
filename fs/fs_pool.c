/*
 * fs_pool.c - the write-back memory budget (fs_pool.h).
 *
 * DESIGN
 *
 *   One mutex and one condition variable.  in_use only grows through
 *   fs_pool_reserve() and shrinks through fs_pool_release(), which
 *   broadcasts: every waiter re-checks whether its reservation now fits.
 *   Waiters are not queued in order: reservations of the data path are all
 *   about one stripe in size, so no waiter can be overtaken forever by
 *   larger ones, and a broadcast keeps the code obviously correct.
 *
 *   Invariant: in_use <= limit, except while a single reservation larger
 *   than limit is held alone (see fs_pool.h); reservations without the
 *   headroom right leave headroom bytes free.
 *
 * Threads: none of its own.
 */
#include "fs_pool.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "alloc.h"
#include "net.h"

struct fs_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* in_use went down */
    uint64_t limit;
    uint64_t headroom;        /* set before use */
    uint64_t in_use;          /* protected by lock */
    uint64_t peak;            /* protected by lock */
    uint64_t waits;           /* protected by lock */
    uint64_t wait_ns;         /* protected by lock */
};

int fs_pool_create(uint64_t limit_bytes, fs_pool **out)
{
    pthread_condattr_t ca;
    fs_pool *p;

    if (!limit_bytes || !out)
        return -EINVAL;
    p = ckpt_calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->limit = limit_bytes;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = p;
    return 0;
}

void fs_pool_destroy(fs_pool *p)
{
    if (!p)
        return;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    ckpt_free(p);
}

static bool fits_locked(const fs_pool *p, uint64_t bytes, bool headroom)
{
    uint64_t lim = headroom ? p->limit : p->limit - p->headroom;
    if (p->in_use == 0)
        return true; /* also grants one oversized reservation */
    return bytes <= lim && p->in_use <= lim - bytes;
}

void fs_pool_set_headroom(fs_pool *p, uint64_t bytes)
{
    pthread_mutex_lock(&p->lock);
    p->headroom = bytes > p->limit / 2 ? p->limit / 2 : bytes;
    pthread_mutex_unlock(&p->lock);
}

static int reserve(fs_pool *p, uint64_t bytes, uint32_t timeout_ms, bool headroom)
{
    struct timespec dl;
    uint64_t t0 = 0;
    int rc = 0;

    if (!bytes)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    if (!fits_locked(p, bytes, headroom)) {
        if (!timeout_ms) {
            pthread_mutex_unlock(&p->lock);
            return -ETIMEDOUT;
        }
        t0 = ckpt_now_ns();
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        p->waits++;
        while (!fits_locked(p, bytes, headroom)) {
            int w = pthread_cond_timedwait(&p->cond, &p->lock, &dl);
            if (w == ETIMEDOUT && !fits_locked(p, bytes, headroom)) {
                rc = -ETIMEDOUT;
                break;
            }
        }
        p->wait_ns += ckpt_now_ns() - t0;
    }
    if (rc == 0) {
        p->in_use += bytes;
        if (p->in_use > p->peak)
            p->peak = p->in_use;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int fs_pool_reserve(fs_pool *p, uint64_t bytes, uint32_t timeout_ms)
{
    return reserve(p, bytes, timeout_ms, false);
}

int fs_pool_reserve_headroom(fs_pool *p, uint64_t bytes, uint32_t timeout_ms)
{
    return reserve(p, bytes, timeout_ms, true);
}

void fs_pool_release(fs_pool *p, uint64_t bytes)
{
    pthread_mutex_lock(&p->lock);
    p->in_use = bytes > p->in_use ? 0 : p->in_use - bytes;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void fs_pool_get_stats(fs_pool *p, struct fs_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->limit = p->limit;
    out->headroom = p->headroom;
    out->in_use = p->in_use;
    out->peak = p->peak;
    out->waits = p->waits;
    out->wait_ns = p->wait_ns;
    pthread_mutex_unlock(&p->lock);
}

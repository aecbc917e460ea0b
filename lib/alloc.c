/*
 * alloc.c - see alloc.h.
 *
 * DESIGN: counters are C11 atomics so the wrapper is thread-safe without a
 * lock.  A fault site holds the countdown of calls until the one that fails;
 * armed_any short-cuts the common case of nothing armed.
 */
#include "alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live_allocs;
static atomic_int armed_any;
static atomic_long countdown[CKPT_FAULT_NSITES];
static atomic_bool fired[CKPT_FAULT_NSITES];

bool ckpt_fault_hit(enum ckpt_fault_site site)
{
    if (!atomic_load_explicit(&armed_any, memory_order_relaxed))
        return false;
    long left = atomic_load(&countdown[site]);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&countdown[site], &left, left - 1)) {
            if (left == 1) {
                atomic_store(&fired[site], true);
                return true;
            }
            return false;
        }
    }
    return false;
}

void ckpt_fault_arm(enum ckpt_fault_site site, long nth)
{
    atomic_store(&fired[site], false);
    atomic_store(&countdown[site], nth > 0 ? nth : 0);
    atomic_store(&armed_any, 1);
}

void ckpt_fault_disarm_all(void)
{
    for (int i = 0; i < CKPT_FAULT_NSITES; i++)
        atomic_store(&countdown[i], 0);
    atomic_store(&armed_any, 0);
}

bool ckpt_fault_fired(enum ckpt_fault_site site)
{
    return atomic_load(&fired[site]);
}

void *ckpt_malloc(size_t n)
{
    if (ckpt_fault_hit(CKPT_FAULT_ALLOC))
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *ckpt_calloc(size_t nmemb, size_t size)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    if (ckpt_fault_hit(CKPT_FAULT_ALLOC))
        return NULL;
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p)
        atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *ckpt_realloc(void *p, size_t n)
{
    if (!p)
        return ckpt_malloc(n);
    if (ckpt_fault_hit(CKPT_FAULT_ALLOC))
        return NULL;
    return realloc(p, n ? n : 1);
}

void *ckpt_aligned_alloc(size_t align, size_t n)
{
    void *p = NULL;
    if (ckpt_fault_hit(CKPT_FAULT_ALLOC))
        return NULL;
    if (posix_memalign(&p, align, n ? n : 1) != 0)
        return NULL;
    atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

char *ckpt_strdup(const char *s)
{
    return ckpt_strndup(s, strlen(s));
}

char *ckpt_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = ckpt_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

void ckpt_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&live_allocs, 1, memory_order_relaxed);
    free(p);
}

long ckpt_alloc_live(void)
{
    return atomic_load(&live_allocs);
}

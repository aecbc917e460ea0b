/*
 * alloc.h - the single allocation choke point, and fault injection.
 *
 * Every heap allocation in ckptfs goes through ckpt_malloc()/ckpt_calloc()/
 * ckpt_realloc()/ckpt_aligned_alloc() and is released with ckpt_free() (or
 * CKPT_FREE(), which also NULLs the pointer).  The wrapper counts live
 * allocations, so tests can prove a failed operation leaked nothing, and it
 * consults the fault-injection table, so tests can make the Nth allocation
 * (or read, write, fsync, send) fail and walk N = 1, 2, ... (SQLite's
 * test_malloc.c technique).  Library code never aborts on OOM: it returns
 * -ENOMEM.
 *
 * Fault injection is compiled in always: when nothing is armed it costs one
 * relaxed atomic load per call.  Arming is process-wide and meant for tests.
 */
#ifndef CKPT_ALLOC_H
#define CKPT_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/** @return n bytes, or NULL on failure (real or injected). */
void *ckpt_malloc(size_t n);
/** @return zeroed nmemb*size bytes (overflow checked), or NULL. */
void *ckpt_calloc(size_t nmemb, size_t size);
/** @return resized block or NULL (old block untouched on failure).
 *  n must not be 0. */
void *ckpt_realloc(void *p, size_t n);
/** @return n bytes aligned to align (a power of two >= sizeof(void*)),
 *  or NULL.  Free with ckpt_free(). */
void *ckpt_aligned_alloc(size_t align, size_t n);
/** @return a copy of s, or NULL. */
char *ckpt_strdup(const char *s);
/** @return a copy of the first n bytes of s, NUL-terminated, or NULL. */
char *ckpt_strndup(const char *s, size_t n);
/** Free p (NULL is fine). */
void ckpt_free(void *p);

#define CKPT_FREE(p)                                                          \
    do {                                                                      \
        ckpt_free(p);                                                         \
        (p) = NULL;                                                           \
    } while (0)

/** @return the number of live allocations made through this wrapper. */
long ckpt_alloc_live(void);

enum ckpt_fault_site {
    CKPT_FAULT_ALLOC,
    CKPT_FAULT_READ,
    CKPT_FAULT_WRITE,
    CKPT_FAULT_FSYNC,
    CKPT_FAULT_SEND,
    CKPT_FAULT_NSITES,
};

/**
 * @brief Make the nth call (1-based, counted from now) at site fail.
 * @param[in] nth  0 disarms the site.
 * Only the one call fails; later calls succeed again.
 */
void ckpt_fault_arm(enum ckpt_fault_site site, long nth);
/** @brief Disarm every site. */
void ckpt_fault_disarm_all(void);
/** @return true if a fault injected at site has fired since it was armed. */
bool ckpt_fault_fired(enum ckpt_fault_site site);
/**
 * @brief Called by code at an injection point.
 * @return true when this call must fail (the caller returns -EIO, -ENOMEM...).
 */
bool ckpt_fault_hit(enum ckpt_fault_site site);

#endif

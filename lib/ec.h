/*
 * ec.h - Reed-Solomon erasure coding (k data + m parity chunks) over ISA-L.
 *
 * A stripe of a file is k data chunks of equal length; this module computes
 * its m parity chunks (ckpt_ec_encode) and rebuilds any m lost chunks, data
 * or parity, from the surviving ones (ckpt_ec_decode).  The code is
 * systematic (data chunks are stored as they are) and MDS: any k of the k+m
 * chunks determine the others.  The generator is ISA-L's Cauchy matrix
 * (gf_gen_cauchy1_matrix: identity on top, row i >= k, column j holds
 * 1/(i xor j) in GF(2^8) with polynomial 0x11d), whose square submatrices
 * are all invertible; ISA-L's Vandermonde matrix is not MDS for every k+m.
 * The matrix is part of the on-disk format: changing it makes every stored
 * parity chunk wrong.
 *
 * A ckpt_ec handle holds the encode tables of one (k, m) and a bounded
 * cache of decode tables keyed by erasure pattern, so a degraded read that
 * keeps hitting the same dead target pays for a matrix inversion once.
 *
 * Buffers: encode and decode read from and write into the caller's buffers
 * directly (no staging copies), so chunk buffers that a transport registered
 * for RDMA can be coded in place.  Any alignment and any length work; ISA-L's
 * SIMD kernels are fastest when every buffer is 64-byte aligned and len is a
 * multiple of 64 (allocate with ckpt_aligned_alloc(64, ...)).  Output buffers
 * must not overlap any input or each other.
 *
 * Thread safety: after ckpt_ec_create() returns, one handle may be used by
 * any number of threads at once for encode, decode and the accessors.  The
 * decode cache is guarded by a mutex held only for a table lookup/copy; the
 * coding itself runs outside it.  ckpt_ec_destroy() must not race with any
 * other call on the handle.
 */
#ifndef CKPT_EC_H
#define CKPT_EC_H

#include <stddef.h>
#include <stdint.h>

/* Limits of k and m; equal to CKPT_LAYOUT_MAX_K/M of layout.h. */
#define CKPT_EC_MAX_K 16
#define CKPT_EC_MAX_M 4

typedef struct ckpt_ec ckpt_ec;

/* Decode-table cache counters (a transparent value type). */
struct ckpt_ec_stats {
    uint64_t hits;      /* decodes served from the cache */
    uint64_t misses;    /* decodes that inverted a matrix */
    uint64_t evictions; /* entries dropped to make room (LRU) */
};

/**
 * @brief Create a coder for k data and m parity chunks per stripe.
 * @param[in]  k    data chunks, 1..CKPT_EC_MAX_K
 * @param[in]  m    parity chunks, 0..CKPT_EC_MAX_M (0: no redundancy;
 *                  encode does nothing, decode can rebuild nothing)
 * @param[out] out  the new handle; caller frees with ckpt_ec_destroy().
 *                  Untouched on error.
 * @return 0, or
 *   - -EINVAL  k or m out of range, or out is NULL
 *   - -ENOMEM  allocation failed (nothing leaked)
 *   - other negative errno from pthread_mutex_init
 */
int ckpt_ec_create(int k, int m, ckpt_ec **out);

/**
 * @brief Free a coder.  NULL is a no-op.  No other call on ec may be running
 * or follow.
 */
void ckpt_ec_destroy(ckpt_ec *ec);

/** @return k of the handle (ec must not be NULL). */
int ckpt_ec_k(const ckpt_ec *ec);

/** @return m of the handle (ec must not be NULL). */
int ckpt_ec_m(const ckpt_ec *ec);

/**
 * @brief Compute the m parity chunks of a stripe.
 * @param[in]  ec      the coder
 * @param[in]  len     bytes in every chunk (0 is a no-op).  Short data
 *                     chunks must be zero-padded by the caller to len.
 * @param[in]  data    k pointers to len readable bytes each, chunk 0 first
 * @param[out] parity  m pointers to len writable bytes each (may be NULL
 *                     when m is 0); overwritten, not accumulated into
 * @return 0, or -EINVAL if ec, data, a data[i], parity or a parity[i] is
 *         NULL.  On error no buffer has been written.  Never allocates.
 */
int ckpt_ec_encode(ckpt_ec *ec, size_t len, uint8_t *const *data,
                   uint8_t *const *parity);

/**
 * @brief Rebuild erased chunks of a stripe from the surviving ones.
 *
 * chunks[] has k+m entries: 0..k-1 data, k..k+m-1 parity.  Bit i of
 * erased_mask marks chunk i as an output to rebuild; chunks[i] must then
 * point to len writable bytes, whose contents are ignored.  Every other
 * non-NULL chunks[i] is an available input holding that chunk's bytes.  A
 * NULL entry whose bit is clear is simply absent (not read, not rebuilt):
 * callers that fetched only the k chunks they need pass the rest as NULL.
 * The first k available inputs in index order are used (data before
 * parity, which is cheapest).
 *
 * @param[in]     ec           the coder
 * @param[in]     len          bytes in every chunk (0: only the arguments
 *                             are checked)
 * @param[in,out] chunks       k+m pointers as described above
 * @param[in]     erased_mask  chunks to rebuild; 0 is a no-op
 * @return 0 when every erased chunk has been rebuilt, or
 *   - CKPT_E_UNRECOV  more than m chunks erased, or fewer than k inputs
 *   - -EINVAL         ec or chunks NULL, a bit set at or above k+m, or an
 *                     erased chunk whose pointer is NULL
 *   - -EIO            the decode matrix was singular (cannot happen with a
 *                     Cauchy generator; reported rather than asserted)
 * On error no buffer has been written.  Never allocates: the decode cache
 * is sized in ckpt_ec_create(), so a degraded read cannot fail for memory.
 */
int ckpt_ec_decode(ckpt_ec *ec, size_t len, uint8_t *const *chunks,
                   uint32_t erased_mask);

/**
 * @brief Read the decode-cache counters.
 * @param[in]  ec   the coder
 * @param[out] out  filled with a consistent snapshot
 */
void ckpt_ec_get_stats(ckpt_ec *ec, struct ckpt_ec_stats *out);

#endif

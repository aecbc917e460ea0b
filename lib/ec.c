/*
 * ec.c - Reed-Solomon k+m over ISA-L; see ec.h.
 *
 * DESIGN
 *
 * Matrices.  gf_gen_cauchy1_matrix() gives the (k+m) x k generator A: rows
 * 0..k-1 the identity, row i >= k column j the GF(2^8) inverse of (i ^ j).
 * Chunk i of a stripe is A[i] . d, where d is the column of k data bytes at
 * one offset.  The m parity rows are expanded once by ec_init_tables() into
 * enc_tbls (32*k*m bytes) and ec_encode_data() applies them.
 *
 * Decoding.  Pick k available chunks src[0..k-1] (first k in index order:
 * data rows are identity rows, so with few data losses the inversion is
 * nearly trivial).  Their rows form a k x k matrix B with y = B d; Cauchy
 * makes every such B invertible, so d = B^-1 y.  An erased data chunk o is
 * row o of B^-1; an erased parity chunk o is A[o] . B^-1.  Those rows, one
 * per erased chunk in index order, go through ec_init_tables() and one
 * ec_encode_data() call rebuilds every erased chunk from the k inputs.
 *
 * Cache.  Building decode tables costs a k x k inversion plus the table
 * expansion; a degraded stripe read repeats the same pattern for every
 * stripe of every file that had a chunk on the dead target.  Tables are
 * cached in EC_CACHE_SLOTS slots keyed by (input mask << 32 | erased mask),
 * which determines the tables completely, and evicted least-recently-used
 * (a linear scan of 64 keys is cheaper than hashing would gain).  The table
 * storage for every slot is allocated in ckpt_ec_create(), so decode never
 * allocates and a degraded read cannot fail for lack of memory.
 *
 * Threads.  The handle is shared by all worker threads of a process; this
 * module starts none.  enc_tbls and the matrix are immutable after create.
 * ec->lock guards the slots, their tables and the counters.  A decode holds
 * it only to look up and copy one slot's tables (at most 32*16*4 = 2 KiB)
 * onto its stack, or to insert tables it built outside the lock; the
 * ec_encode_data() calls that touch chunk data never run under it.  Two
 * threads missing on the same pattern both build the tables; the second
 * insert finds the first and keeps it.  Lock order: ec->lock is a leaf.
 * pthread_mutex_lock/unlock results are not checked: on a default mutex
 * they can only fail for programming errors (uninitialised or not owned),
 * which ckpt_ec_create() and the lock/unlock pairing here rule out.
 *
 * Lengths.  ISA-L takes an int length; longer chunks are coded in pieces of
 * EC_PIECE bytes (a multiple of 64, so alignment is kept for every piece).
 */
#include "ec.h"

#include <errno.h>
#include <isa-l/erasure_code.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

#define EC_MAX_N (CKPT_EC_MAX_K + CKPT_EC_MAX_M)
#define EC_MAX_TBL_BYTES (32 * CKPT_EC_MAX_K * CKPT_EC_MAX_M)
#define EC_CACHE_SLOTS 64
#define EC_PIECE ((size_t)1 << 30)

_Static_assert(EC_MAX_N <= 32, "erasure masks are 32-bit");
_Static_assert(EC_PIECE <= 0x7fffffff, "ISA-L lengths are int");
_Static_assert(EC_PIECE % 64 == 0, "pieces keep 64-byte alignment");

struct ec_slot {
    uint64_t key;      /* input_mask << 32 | erased_mask; 0 = empty */
    uint64_t last_use; /* ec->clock at the last hit or insert */
};

struct ckpt_ec {
    int k;
    int m;
    size_t tbl_bytes; /* 32 * k * m */
    /* (k+m) x k generator, row-major; immutable after create. */
    uint8_t matrix[EC_MAX_N * CKPT_EC_MAX_K];
    uint8_t *enc_tbls; /* tbl_bytes, parity rows expanded; immutable */

    pthread_mutex_t lock; /* leaf lock; guards everything below */
    struct ec_slot slots[EC_CACHE_SLOTS]; /* protected by lock */
    uint8_t *cache_tbls; /* EC_CACHE_SLOTS * tbl_bytes, slot i at
                            i * tbl_bytes; protected by lock */
    uint64_t clock;      /* LRU time; protected by lock */
    struct ckpt_ec_stats stats; /* protected by lock */
};

int ckpt_ec_create(int k, int m, ckpt_ec **out)
{
    ckpt_ec *ec = NULL;
    int rc;

    if (!out || k < 1 || k > CKPT_EC_MAX_K || m < 0 || m > CKPT_EC_MAX_M)
        return -EINVAL;

    ec = ckpt_calloc(1, sizeof(*ec));
    if (!ec)
        return -ENOMEM;
    ec->k = k;
    ec->m = m;
    ec->tbl_bytes = (size_t)32 * (size_t)k * (size_t)m;
    gf_gen_cauchy1_matrix(ec->matrix, k + m, k);

    if (m > 0) {
        ec->enc_tbls = ckpt_aligned_alloc(64, ec->tbl_bytes);
        if (!ec->enc_tbls) {
            rc = -ENOMEM;
            goto out_free_ec;
        }
        ec_init_tables(k, m, &ec->matrix[k * k], ec->enc_tbls);
        ec->cache_tbls = ckpt_aligned_alloc(64, EC_CACHE_SLOTS * ec->tbl_bytes);
        if (!ec->cache_tbls) {
            rc = -ENOMEM;
            goto out_free_enc;
        }
    }
    rc = pthread_mutex_init(&ec->lock, NULL);
    if (rc != 0) {
        rc = -rc;
        goto out_free_cache;
    }
    *out = ec;
    return 0;

out_free_cache:
    ckpt_free(ec->cache_tbls);
out_free_enc:
    ckpt_free(ec->enc_tbls);
out_free_ec:
    ckpt_free(ec);
    return rc;
}

void ckpt_ec_destroy(ckpt_ec *ec)
{
    if (!ec)
        return;
    pthread_mutex_destroy(&ec->lock);
    ckpt_free(ec->cache_tbls);
    ckpt_free(ec->enc_tbls);
    ckpt_free(ec);
}

int ckpt_ec_k(const ckpt_ec *ec)
{
    return ec->k;
}

int ckpt_ec_m(const ckpt_ec *ec)
{
    return ec->m;
}

void ckpt_ec_get_stats(ckpt_ec *ec, struct ckpt_ec_stats *out)
{
    pthread_mutex_lock(&ec->lock);
    *out = ec->stats;
    pthread_mutex_unlock(&ec->lock);
}

/*
 * Apply `rows` rows of expanded tables to nsrc source buffers, writing rows
 * destination buffers, in int-sized pieces.
 */
static void ec_apply(int nsrc, int rows, uint8_t *tbls, size_t len,
                     uint8_t *const *src, uint8_t *const *dst)
{
    uint8_t *s[CKPT_EC_MAX_K];
    uint8_t *d[CKPT_EC_MAX_M];

    for (size_t off = 0; off < len; off += EC_PIECE) {
        size_t piece = len - off < EC_PIECE ? len - off : EC_PIECE;
        for (int i = 0; i < nsrc; i++)
            s[i] = src[i] + off;
        for (int i = 0; i < rows; i++)
            d[i] = dst[i] + off;
        ec_encode_data((int)piece, nsrc, rows, tbls, s, d);
    }
}

int ckpt_ec_encode(ckpt_ec *ec, size_t len, uint8_t *const *data,
                   uint8_t *const *parity)
{
    if (!ec || !data)
        return -EINVAL;
    for (int i = 0; i < ec->k; i++)
        if (!data[i])
            return -EINVAL;
    if (ec->m > 0) {
        if (!parity)
            return -EINVAL;
        for (int i = 0; i < ec->m; i++)
            if (!parity[i])
                return -EINVAL;
    }
    if (ec->m == 0 || len == 0)
        return 0;
    ec_apply(ec->k, ec->m, ec->enc_tbls, len, data, parity);
    return 0;
}

/*
 * Build the decode tables for inputs src[0..k-1] and outputs
 * outs[0..nout-1] (chunk indexes) into tbls (32*k*nout bytes).
 * Runs without the lock: reads only immutable fields.
 * @return 0, or -EIO if the chosen rows are singular.
 */
static int ec_build_decode(const ckpt_ec *ec, const int *src, const int *outs,
                           int nout, uint8_t *tbls)
{
    const int k = ec->k;
    uint8_t b[CKPT_EC_MAX_K * CKPT_EC_MAX_K];
    uint8_t inv[CKPT_EC_MAX_K * CKPT_EC_MAX_K];
    uint8_t rows[CKPT_EC_MAX_M * CKPT_EC_MAX_K];

    for (int r = 0; r < k; r++)
        memcpy(&b[r * k], &ec->matrix[src[r] * k], (size_t)k);
    if (gf_invert_matrix(b, inv, k) != 0) {
        CKPT_LOG_ERR("ec %d+%d: singular decode matrix", k, ec->m);
        return -EIO;
    }
    for (int e = 0; e < nout; e++) {
        const int o = outs[e];
        uint8_t *row = &rows[e * k];
        if (o < k) {
            memcpy(row, &inv[o * k], (size_t)k);
            continue;
        }
        const uint8_t *a = &ec->matrix[o * k];
        for (int j = 0; j < k; j++) {
            uint8_t acc = 0;
            for (int t = 0; t < k; t++)
                acc ^= gf_mul(a[t], inv[t * k + j]);
            row[j] = acc;
        }
    }
    ec_init_tables(k, nout, rows, tbls);
    return 0;
}

/* Find key in the cache; on a hit copy its tables to tbls.  Caller holds
 * ec->lock.  @return 1 on a hit, 0 on a miss. */
static int ec_cache_get_locked(ckpt_ec *ec, uint64_t key, uint8_t *tbls,
                               size_t nbytes)
{
    for (int i = 0; i < EC_CACHE_SLOTS; i++) {
        if (ec->slots[i].key == key) {
            ec->slots[i].last_use = ++ec->clock;
            memcpy(tbls, ec->cache_tbls + (size_t)i * ec->tbl_bytes, nbytes);
            return 1;
        }
    }
    return 0;
}

/* Insert tables for key unless already present, evicting the LRU slot.
 * Caller holds ec->lock. */
static void ec_cache_put_locked(ckpt_ec *ec, uint64_t key,
                                const uint8_t *tbls, size_t nbytes)
{
    int victim = 0;

    for (int i = 0; i < EC_CACHE_SLOTS; i++) {
        if (ec->slots[i].key == key) {
            ec->slots[i].last_use = ++ec->clock;
            return;
        }
        if (ec->slots[i].last_use < ec->slots[victim].last_use)
            victim = i;
    }
    /* Empty slots have last_use 0 and win over any used one. */
    if (ec->slots[victim].key != 0)
        ec->stats.evictions++;
    ec->slots[victim].key = key;
    ec->slots[victim].last_use = ++ec->clock;
    memcpy(ec->cache_tbls + (size_t)victim * ec->tbl_bytes, tbls, nbytes);
}

int ckpt_ec_decode(ckpt_ec *ec, size_t len, uint8_t *const *chunks,
                   uint32_t erased_mask)
{
    _Alignas(64) uint8_t tbls[EC_MAX_TBL_BYTES];
    uint8_t *in[CKPT_EC_MAX_K];
    uint8_t *outp[CKPT_EC_MAX_M];
    int src[CKPT_EC_MAX_K];
    int outs[CKPT_EC_MAX_M];
    int nin = 0, nout = 0;
    uint32_t in_mask = 0;
    int hit, rc;

    if (!ec || !chunks)
        return -EINVAL;
    const int k = ec->k, n = ec->k + ec->m;
    if ((erased_mask >> n) != 0)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if ((erased_mask & (1u << i)) && !chunks[i])
            return -EINVAL;
    if (erased_mask == 0)
        return 0;
    if (__builtin_popcount(erased_mask) > ec->m)
        return CKPT_E_UNRECOV;

    for (int i = 0; i < n; i++) {
        if (erased_mask & (1u << i)) {
            outs[nout] = i;
            outp[nout++] = chunks[i];
        } else if (chunks[i] && nin < k) {
            src[nin] = i;
            in[nin++] = chunks[i];
            in_mask |= 1u << i;
        }
    }
    if (nin < k)
        return CKPT_E_UNRECOV;
    if (len == 0)
        return 0;

    const uint64_t key = (uint64_t)in_mask << 32 | erased_mask;
    const size_t nbytes = (size_t)32 * (size_t)k * (size_t)nout;

    pthread_mutex_lock(&ec->lock);
    hit = ec_cache_get_locked(ec, key, tbls, nbytes);
    if (hit)
        ec->stats.hits++;
    else
        ec->stats.misses++;
    pthread_mutex_unlock(&ec->lock);

    if (!hit) {
        rc = ec_build_decode(ec, src, outs, nout, tbls);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&ec->lock);
        ec_cache_put_locked(ec, key, tbls, nbytes);
        pthread_mutex_unlock(&ec->lock);
    }
    ec_apply(k, nout, tbls, len, in, outp);
    return 0;
}

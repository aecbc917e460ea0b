/*
 * check_ec.c - unit tests for lib/ec (Reed-Solomon over ISA-L).
 *
 * Encode is compared with a slow reference written here from first
 * principles: a shift-and-add GF(2^8) multiply with polynomial 0x11d, a
 * brute-force inverse, and the Cauchy generator built the way ISA-L's
 * gf_gen_cauchy1_matrix() builds it (row i >= k, column j = 1/(i ^ j)), over
 * random k, m, odd lengths and misaligned buffers.  Decode is checked
 * against the original bytes for every erasure pattern of up to m chunks
 * (data and parity) in 2+1, 4+2, 8+2, 8+3 and 12+4; more than m erasures,
 * too few inputs and bad arguments must fail without writing anything.
 * Allocation failures in create are walked with the fault injector, decode
 * is shown not to allocate, and four threads decode different patterns
 * through one shared handle.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ec.h"
#include "err.h"
#include "layout.h"

Suite *ec_suite(void);

_Static_assert(CKPT_EC_MAX_K == CKPT_LAYOUT_MAX_K, "ec and layout limits");
_Static_assert(CKPT_EC_MAX_M == CKPT_LAYOUT_MAX_M, "ec and layout limits");

#define MAX_N (CKPT_EC_MAX_K + CKPT_EC_MAX_M)

/* ---- reference GF(2^8) and Cauchy encoder -------------------------------- */

static uint8_t ref_mul(uint8_t a, uint8_t b)
{
    uint8_t p = 0;
    while (b) {
        if (b & 1u)
            p ^= a;
        a = (uint8_t)((a & 0x80u) ? (unsigned)(a << 1) ^ 0x1du
                                   : (unsigned)(a << 1));
        b >>= 1;
    }
    return p;
}

static uint8_t ref_inv(uint8_t a)
{
    for (int b = 1; b < 256; b++)
        if (ref_mul(a, (uint8_t)b) == 1)
            return (uint8_t)b;
    return 0;
}

/* Coefficient of data chunk j in parity chunk k+p. */
static uint8_t ref_coef(int k, int p, int j)
{
    return ref_inv((uint8_t)((k + p) ^ j));
}

static void ref_encode(int k, int m, size_t len, uint8_t *const *data,
                       uint8_t *const *parity)
{
    uint8_t coef[CKPT_EC_MAX_M][CKPT_EC_MAX_K];
    for (int p = 0; p < m; p++)
        for (int j = 0; j < k; j++)
            coef[p][j] = ref_coef(k, p, j);
    for (int p = 0; p < m; p++) {
        for (size_t x = 0; x < len; x++) {
            uint8_t acc = 0;
            for (int j = 0; j < k; j++)
                acc ^= ref_mul(coef[p][j], data[j][x]);
            parity[p][x] = acc;
        }
    }
}

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void fill_random(uint8_t *p, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next(s) >> 56);
}

/* One stripe: working buffers (possibly misaligned) and expected bytes. */
struct stripe {
    int k, m, n;
    size_t len;
    uint8_t *mem[MAX_N];
    uint8_t *chunk[MAX_N]; /* mem[i] + random offset */
    uint8_t *orig[MAX_N];  /* data random, parity from ref_encode */
};

static void stripe_init(struct stripe *st, int k, int m, size_t len,
                        uint64_t *rng, int misalign)
{
    memset(st, 0, sizeof(*st));
    st->k = k;
    st->m = m;
    st->n = k + m;
    st->len = len;
    for (int i = 0; i < st->n; i++) {
        size_t off = misalign ? (size_t)(rng_next(rng) % 64) : 0;
        st->mem[i] = malloc(len + 64);
        st->orig[i] = malloc(len + 1);
        ck_assert_ptr_nonnull(st->mem[i]);
        ck_assert_ptr_nonnull(st->orig[i]);
        st->chunk[i] = st->mem[i] + off;
    }
    for (int i = 0; i < k; i++)
        fill_random(st->orig[i], len, rng);
    ref_encode(k, m, len, st->orig, st->orig + k);
    for (int i = 0; i < st->n; i++)
        memcpy(st->chunk[i], st->orig[i], len);
}

static void stripe_free(struct stripe *st)
{
    for (int i = 0; i < st->n; i++) {
        free(st->mem[i]);
        free(st->orig[i]);
    }
}

/* Restore every chunk, then scribble over the erased ones. */
static void stripe_erase(struct stripe *st, uint32_t mask, uint8_t junk)
{
    for (int i = 0; i < st->n; i++) {
        if (mask & (1u << i))
            memset(st->chunk[i], junk ^ i, st->len);
        else
            memcpy(st->chunk[i], st->orig[i], st->len);
    }
}

/* @return index of the first chunk that differs from orig, or -1. */
static int stripe_diff(const struct stripe *st)
{
    for (int i = 0; i < st->n; i++)
        if (memcmp(st->chunk[i], st->orig[i], st->len) != 0)
            return i;
    return -1;
}

/* ---- create / destroy ---------------------------------------------------- */

START_TEST(test_create_bad_args)
{
    ckpt_ec *ec = (ckpt_ec *)&ec; /* sentinel: must stay untouched */
    ckpt_ec *const sentinel = ec;
    long live = ckpt_alloc_live();

    ck_assert_int_eq(ckpt_ec_create(0, 2, &ec), -EINVAL);
    ck_assert_int_eq(ckpt_ec_create(-1, 2, &ec), -EINVAL);
    ck_assert_int_eq(ckpt_ec_create(CKPT_EC_MAX_K + 1, 2, &ec), -EINVAL);
    ck_assert_int_eq(ckpt_ec_create(4, -1, &ec), -EINVAL);
    ck_assert_int_eq(ckpt_ec_create(4, CKPT_EC_MAX_M + 1, &ec), -EINVAL);
    ck_assert_int_eq(ckpt_ec_create(4, 2, NULL), -EINVAL);
    ck_assert_ptr_eq(ec, sentinel);
    ck_assert_int_eq(ckpt_alloc_live(), live);
    ckpt_ec_destroy(NULL);
}
END_TEST

START_TEST(test_create_all_sizes)
{
    long live = ckpt_alloc_live();
    for (int k = 1; k <= CKPT_EC_MAX_K; k++) {
        for (int m = 0; m <= CKPT_EC_MAX_M; m++) {
            ckpt_ec *ec = NULL;
            ck_assert_int_eq(ckpt_ec_create(k, m, &ec), 0);
            ck_assert_ptr_nonnull(ec);
            ck_assert_int_eq(ckpt_ec_k(ec), k);
            ck_assert_int_eq(ckpt_ec_m(ec), m);
            ckpt_ec_destroy(ec);
        }
    }
    ck_assert_int_eq(ckpt_alloc_live(), live);
}
END_TEST

START_TEST(test_reference_matrix_sanity)
{
    /* The reference itself: multiply is a field (every non-zero element
     * has an inverse) and 4+2's first parity row is what ISA-L documents
     * for a Cauchy matrix: 1/(4^j) for j=0..3. */
    for (int a = 1; a < 256; a++) {
        uint8_t inv = ref_inv((uint8_t)a);
        ck_assert_uint_ne(inv, 0);
        ck_assert_uint_eq(ref_mul((uint8_t)a, inv), 1);
    }
    ck_assert_uint_eq(ref_mul(0x80, 2), 0x1d);
    ck_assert_uint_eq(ref_mul(3, 7), 9);
    ck_assert_uint_eq(ref_coef(4, 0, 0), ref_inv(4));
    ck_assert_uint_eq(ref_coef(4, 1, 3), ref_inv(5 ^ 3));
}
END_TEST

/* ---- encode -------------------------------------------------------------- */

START_TEST(test_encode_vs_reference)
{
    uint64_t rng = 0xC0FFEE;
    static const size_t fixed_lens[] = {1, 2, 15, 16, 17, 31, 33, 63, 64,
                                        65, 127, 129, 255, 257, 4095, 4097};
    for (int it = 0; it < 160; it++) {
        int k = 1 + (int)(rng_next(&rng) % CKPT_EC_MAX_K);
        int m = (int)(rng_next(&rng) % (CKPT_EC_MAX_M + 1));
        size_t len;
        if (it < (int)(sizeof(fixed_lens) / sizeof(fixed_lens[0])))
            len = fixed_lens[it];
        else
            len = 1 + 2 * (size_t)(rng_next(&rng) % 3000); /* odd */
        struct stripe st;
        stripe_init(&st, k, m, len, &rng, 1);
        for (int p = 0; p < m; p++) /* stale parity must be overwritten */
            memset(st.chunk[k + p], 0x5a, len);

        ckpt_ec *ec = NULL;
        ck_assert_int_eq(ckpt_ec_create(k, m, &ec), 0);
        ck_assert_int_eq(ckpt_ec_encode(ec, len, st.chunk, st.chunk + k), 0);
        int bad = stripe_diff(&st);
        ck_assert_msg(bad < 0, "k=%d m=%d len=%zu: chunk %d differs", k, m,
                      len, bad);
        ckpt_ec_destroy(ec);
        stripe_free(&st);
    }
}
END_TEST

START_TEST(test_encode_large_chunk)
{
    /* One 1 MiB + 3 stripe in 8+3, the default chunk size with an odd
     * tail: exercises ISA-L's SIMD main loop and its tail together. */
    uint64_t rng = 77;
    struct stripe st;
    stripe_init(&st, 8, 3, (1u << 20) + 3, &rng, 1);
    for (int p = 0; p < 3; p++)
        memset(st.chunk[8 + p], 0, st.len);
    ckpt_ec *ec = NULL;
    ck_assert_int_eq(ckpt_ec_create(8, 3, &ec), 0);
    ck_assert_int_eq(ckpt_ec_encode(ec, st.len, st.chunk, st.chunk + 8), 0);
    ck_assert_int_eq(stripe_diff(&st), -1);
    ckpt_ec_destroy(ec);
    stripe_free(&st);
}
END_TEST

START_TEST(test_encode_bad_args)
{
    uint64_t rng = 3;
    struct stripe st;
    stripe_init(&st, 4, 2, 100, &rng, 0);
    uint8_t *data[4], *parity[2];
    memcpy(data, st.chunk, sizeof(data));
    memcpy(parity, st.chunk + 4, sizeof(parity));
    memset(parity[0], 0x11, 100);
    memset(parity[1], 0x22, 100);

    ckpt_ec *ec = NULL;
    ck_assert_int_eq(ckpt_ec_create(4, 2, &ec), 0);
    ck_assert_int_eq(ckpt_ec_encode(NULL, 100, data, parity), -EINVAL);
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, NULL, parity), -EINVAL);
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, data, NULL), -EINVAL);
    data[3] = NULL;
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, data, parity), -EINVAL);
    data[3] = st.chunk[3];
    parity[1] = NULL;
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, data, parity), -EINVAL);
    parity[1] = st.chunk[5];
    /* Nothing was written by the failed calls. */
    for (int i = 0; i < 100; i++) {
        ck_assert_uint_eq(parity[0][i], 0x11);
        ck_assert_uint_eq(parity[1][i], 0x22);
    }
    /* len 0 is a no-op. */
    ck_assert_int_eq(ckpt_ec_encode(ec, 0, data, parity), 0);
    ck_assert_uint_eq(parity[0][0], 0x11);
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, data, parity), 0);
    ck_assert_int_eq(stripe_diff(&st), -1);
    ckpt_ec_destroy(ec);

    /* m = 0: parity may be NULL; data still checked. */
    ck_assert_int_eq(ckpt_ec_create(4, 0, &ec), 0);
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, data, NULL), 0);
    data[0] = NULL;
    ck_assert_int_eq(ckpt_ec_encode(ec, 100, data, NULL), -EINVAL);
    ckpt_ec_destroy(ec);
    stripe_free(&st);
}
END_TEST

/* ---- decode -------------------------------------------------------------- */

/* Every erasure pattern of 1..m chunks decodes back to the original; every
 * pattern of m+1 fails with CKPT_E_UNRECOV and writes nothing. */
static void check_every_pattern(int k, int m, size_t len, uint64_t seed)
{
    uint64_t rng = seed;
    struct stripe st;
    stripe_init(&st, k, m, len, &rng, 1);
    ckpt_ec *ec = NULL;
    ck_assert_int_eq(ckpt_ec_create(k, m, &ec), 0);

    /* Our encode agrees with the reference before anything is erased. */
    for (int p = 0; p < m; p++)
        memset(st.chunk[k + p], 0, len);
    ck_assert_int_eq(ckpt_ec_encode(ec, len, st.chunk, st.chunk + k), 0);
    ck_assert_int_eq(stripe_diff(&st), -1);

    const int n = k + m;
    long ok = 0, refused = 0;
    for (uint32_t mask = 1; mask < (1u << n); mask++) {
        int pc = __builtin_popcount(mask);
        if (pc > m + 1)
            continue;
        stripe_erase(&st, mask, (uint8_t)(mask * 37u));
        int rc = ckpt_ec_decode(ec, len, st.chunk, mask);
        if (pc <= m) {
            ck_assert_msg(rc == 0, "%d+%d mask %#x: rc %d", k, m, mask, rc);
            int bad = stripe_diff(&st);
            ck_assert_msg(bad < 0, "%d+%d len %zu mask %#x: chunk %d wrong",
                          k, m, len, mask, bad);
            ok++;
        } else {
            ck_assert_int_eq(rc, CKPT_E_UNRECOV);
            for (int i = 0; i < n; i++)
                if (mask & (1u << i))
                    ck_assert_uint_eq(st.chunk[i][len - 1],
                                      (uint8_t)((uint8_t)(mask * 37u) ^ i));
            refused++;
        }
    }
    ck_assert_int_gt(ok, 0);
    ck_assert_int_gt(refused, 0);
    ckpt_ec_destroy(ec);
    stripe_free(&st);
}

START_TEST(test_decode_every_pattern_2_1)
{
    check_every_pattern(2, 1, 1, 1);
    check_every_pattern(2, 1, 333, 2);
    check_every_pattern(2, 1, 4097, 3);
}
END_TEST

START_TEST(test_decode_every_pattern_4_2)
{
    check_every_pattern(4, 2, 1, 4);
    check_every_pattern(4, 2, 63, 5);
    check_every_pattern(4, 2, 1025, 6);
}
END_TEST

START_TEST(test_decode_every_pattern_8_2)
{
    check_every_pattern(8, 2, 31, 7);
    check_every_pattern(8, 2, 2049, 8);
}
END_TEST

START_TEST(test_decode_every_pattern_8_3)
{
    check_every_pattern(8, 3, 17, 9);
    check_every_pattern(8, 3, 1001, 10);
}
END_TEST

START_TEST(test_decode_every_pattern_12_4)
{
    check_every_pattern(12, 4, 777, 11);
}
END_TEST

START_TEST(test_decode_absent_inputs)
{
    uint64_t rng = 21;
    struct stripe st;
    stripe_init(&st, 4, 2, 501, &rng, 1);
    ckpt_ec *ec = NULL;
    ck_assert_int_eq(ckpt_ec_create(4, 2, &ec), 0);
    uint8_t *ch[6];

    /* Lost d0; p1 never fetched: rebuilt from d1 d2 d3 p0. */
    stripe_erase(&st, 1u << 0, 0x33);
    memcpy(ch, st.chunk, sizeof(ch));
    ch[5] = NULL;
    ck_assert_int_eq(ckpt_ec_decode(ec, st.len, ch, 1u << 0), 0);
    ck_assert_int_eq(stripe_diff(&st), -1);

    /* Lost d1; d0 absent: needs both parities. */
    stripe_erase(&st, 1u << 1, 0x44);
    memcpy(ch, st.chunk, sizeof(ch));
    ch[0] = NULL;
    ck_assert_int_eq(ckpt_ec_decode(ec, st.len, ch, 1u << 1), 0);
    ck_assert_int_eq(memcmp(st.chunk[1], st.orig[1], st.len), 0);

    /* Lost d0; d1 and p0 absent: 3 inputs < k. */
    stripe_erase(&st, 1u << 0, 0x55);
    memcpy(ch, st.chunk, sizeof(ch));
    ch[1] = NULL;
    ch[4] = NULL;
    ck_assert_int_eq(ckpt_ec_decode(ec, st.len, ch, 1u << 0), CKPT_E_UNRECOV);
    ck_assert_uint_eq(st.chunk[0][0], 0x55);
    ckpt_ec_destroy(ec);
    stripe_free(&st);

    /* Random mixes in 8+3: success exactly when erased + absent <= m.
     * Few erasure masks (one or two chunks among the first five) meet many
     * absent sets, so one erased mask is decoded from different inputs in
     * turn: the cached tables must be keyed by the inputs too. */
    stripe_init(&st, 8, 3, 257, &rng, 1);
    ck_assert_int_eq(ckpt_ec_create(8, 3, &ec), 0);
    uint8_t *ch11[11];
    int done_ok = 0, done_refused = 0;
    for (int it = 0; it < 600; it++) {
        uint32_t erased = 1u << (rng_next(&rng) % 5);
        if (rng_next(&rng) & 1)
            erased |= 1u << (rng_next(&rng) % 5);
        uint32_t absent = 0;
        int nabsent = (int)(rng_next(&rng) % 4); /* 0..3 */
        while (__builtin_popcount(absent) < nabsent) {
            uint32_t bit = 1u << (rng_next(&rng) % 11);
            if (!(bit & erased))
                absent |= bit;
        }
        stripe_erase(&st, erased, (uint8_t)it);
        for (int i = 0; i < 11; i++)
            ch11[i] = (absent & (1u << i)) ? NULL : st.chunk[i];
        int rc = ckpt_ec_decode(ec, st.len, ch11, erased);
        if (__builtin_popcount(erased | absent) <= 3) {
            ck_assert_msg(rc == 0, "erased %#x absent %#x: rc %d", erased,
                          absent, rc);
            for (int i = 0; i < 11; i++)
                if (erased & (1u << i))
                    ck_assert_msg(memcmp(st.chunk[i], st.orig[i],
                                         st.len) == 0,
                                  "erased %#x absent %#x: chunk %d wrong",
                                  erased, absent, i);
            done_ok++;
        } else {
            ck_assert_int_eq(rc, CKPT_E_UNRECOV);
            done_refused++;
        }
    }
    ck_assert_int_gt(done_ok, 100);
    ck_assert_int_gt(done_refused, 100);
    ckpt_ec_destroy(ec);
    stripe_free(&st);
}
END_TEST

START_TEST(test_decode_bad_args)
{
    uint64_t rng = 8;
    struct stripe st;
    stripe_init(&st, 4, 2, 64, &rng, 0);
    ckpt_ec *ec = NULL;
    ck_assert_int_eq(ckpt_ec_create(4, 2, &ec), 0);

    stripe_erase(&st, 0x3, 0x66);
    ck_assert_int_eq(ckpt_ec_decode(NULL, 64, st.chunk, 0x1), -EINVAL);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, NULL, 0x1), -EINVAL);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 1u << 6), -EINVAL);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0x80000001u), -EINVAL);
    uint8_t *ch[6];
    memcpy(ch, st.chunk, sizeof(ch));
    ch[1] = NULL;
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, ch, 0x3), -EINVAL);
    /* Three erasures in 4+2, and all six. */
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0x7), CKPT_E_UNRECOV);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0x3f), CKPT_E_UNRECOV);
    /* Nothing written by any of those. */
    ck_assert_uint_eq(st.chunk[0][0], 0x66);
    ck_assert_uint_eq(st.chunk[1][63], 0x67);
    /* Empty mask and zero length are no-ops. */
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0), 0);
    ck_assert_int_eq(ckpt_ec_decode(ec, 0, st.chunk, 0x3), 0);
    ck_assert_uint_eq(st.chunk[0][0], 0x66);
    /* The real thing still works afterwards. */
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0x3), 0);
    ck_assert_int_eq(stripe_diff(&st), -1);
    ckpt_ec_destroy(ec);

    /* m = 0 can rebuild nothing. */
    ck_assert_int_eq(ckpt_ec_create(4, 0, &ec), 0);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0x1), CKPT_E_UNRECOV);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0x10), -EINVAL);
    ck_assert_int_eq(ckpt_ec_decode(ec, 64, st.chunk, 0), 0);
    ckpt_ec_destroy(ec);
    stripe_free(&st);
}
END_TEST

START_TEST(test_decode_cache)
{
    uint64_t rng = 13;
    struct stripe st;
    struct ckpt_ec_stats s;
    stripe_init(&st, 8, 3, 129, &rng, 1);
    ckpt_ec *ec = NULL;
    ck_assert_int_eq(ckpt_ec_create(8, 3, &ec), 0);

    ckpt_ec_get_stats(ec, &s);
    ck_assert_uint_eq(s.hits + s.misses + s.evictions, 0);
    for (int rep = 0; rep < 3; rep++) {
        stripe_erase(&st, 0x5, 0x77);
        ck_assert_int_eq(ckpt_ec_decode(ec, st.len, st.chunk, 0x5), 0);
        ck_assert_int_eq(stripe_diff(&st), -1);
    }
    ckpt_ec_get_stats(ec, &s);
    ck_assert_uint_eq(s.misses, 1);
    ck_assert_uint_eq(s.hits, 2);
    ck_assert_uint_eq(s.evictions, 0);

    /* Walk all 231 patterns of <= 3 erasures (11 + 55 + 165) twice: more
     * than the cache holds, so entries are evicted and rebuilt, and results
     * stay right. */
    uint64_t npat = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t mask = 1; mask < (1u << 11); mask++) {
            if (__builtin_popcount(mask) > 3)
                continue;
            stripe_erase(&st, mask, (uint8_t)pass);
            ck_assert_int_eq(ckpt_ec_decode(ec, st.len, st.chunk, mask), 0);
            ck_assert_int_eq(stripe_diff(&st), -1);
            npat++;
        }
    }
    ck_assert_uint_eq(npat, 2 * 231);
    ckpt_ec_get_stats(ec, &s);
    ck_assert_uint_gt(s.evictions, 0);
    ck_assert_uint_eq(s.hits + s.misses, 3 + npat);
    ck_assert_uint_ge(s.misses, 231);
    ckpt_ec_destroy(ec);
    stripe_free(&st);
}
END_TEST

/* ---- allocation failures ------------------------------------------------- */

static void walk_create_oom(int k, int m)
{
    long live = ckpt_alloc_live();
    int rc = -ENOMEM;
    long n;
    ckpt_ec *ec = NULL;

    for (n = 1; n < 100; n++) {
        ckpt_fault_arm(CKPT_FAULT_ALLOC, n);
        rc = ckpt_ec_create(k, m, &ec);
        int fired = ckpt_fault_fired(CKPT_FAULT_ALLOC);
        ckpt_fault_disarm_all();
        if (rc == 0) {
            ck_assert(!fired);
            break;
        }
        ck_assert_int_eq(rc, -ENOMEM);
        ck_assert(fired);
        ck_assert_ptr_null(ec);
        ck_assert_int_eq(ckpt_alloc_live(), live);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_gt(n, 1); /* at least one failure path was walked */
    ck_assert_int_gt(ckpt_alloc_live(), live);

    /* Encode and decode never allocate: with the very next allocation
     * armed to fail, both still work. */
    uint64_t rng = (uint64_t)(k * 100 + m + 1);
    struct stripe st;
    stripe_init(&st, k, m, 300, &rng, 1);
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_int_eq(ckpt_ec_encode(ec, st.len, st.chunk, st.chunk + k), 0);
    if (m > 0) {
        uint32_t mask = (1u << m) - 1; /* first m data chunks */
        stripe_erase(&st, mask, 0x99);
        ck_assert_int_eq(ckpt_ec_decode(ec, st.len, st.chunk, mask), 0);
    }
    ck_assert(!ckpt_fault_fired(CKPT_FAULT_ALLOC));
    ckpt_fault_disarm_all();
    ck_assert_int_eq(stripe_diff(&st), -1);
    stripe_free(&st);
    ckpt_ec_destroy(ec);
    ck_assert_int_eq(ckpt_alloc_live(), live);
}

START_TEST(test_create_oom)
{
    walk_create_oom(4, 2);
    walk_create_oom(16, 4);
    walk_create_oom(1, 1);
    walk_create_oom(6, 0);
}
END_TEST

/* ---- threads ------------------------------------------------------------- */

struct worker {
    ckpt_ec *ec;
    int k, m;
    int max_erased; /* patterns of 1..max_erased chunks */
    int id;         /* 0..3: takes the patterns whose rank is id mod 4 */
    int iters;
    uint64_t seed;
    long decodes;
    long failures; /* decode errors or wrong bytes */
};

static void *decode_worker(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = w->seed;
    struct stripe st;
    const int n = w->k + w->m;

    /* Each thread has its own stripe and its own share of the patterns, so
     * the threads decode different patterns through one handle at once. */
    stripe_init(&st, w->k, w->m, 4096 + 7 + (size_t)w->id, &rng, 1);
    for (int it = 0; it < w->iters; it++) {
        int rank = 0;
        for (uint32_t mask = 1; mask < (1u << n); mask++) {
            if (__builtin_popcount(mask) > w->max_erased)
                continue;
            if (rank++ % 4 != w->id)
                continue;
            stripe_erase(&st, mask, (uint8_t)(it + w->id));
            int rc = ckpt_ec_decode(w->ec, st.len, st.chunk, mask);
            w->decodes++;
            if (rc != 0 || stripe_diff(&st) >= 0)
                w->failures++;
        }
    }
    stripe_free(&st);
    return NULL;
}

/* Run 4 workers on one new k+m handle; check every result and the cache
 * counters' sum.  @return total decodes, stats in *out. */
static long run_workers(int k, int m, int max_erased, int iters,
                        struct ckpt_ec_stats *out)
{
    ckpt_ec *ec = NULL;
    struct worker w[4];
    pthread_t th[4];
    long total = 0;

    ck_assert_int_eq(ckpt_ec_create(k, m, &ec), 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.ec = ec, .k = k, .m = m,
                               .max_erased = max_erased, .id = i,
                               .iters = iters, .seed = 1000 + (uint64_t)i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, decode_worker, &w[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(w[i].failures, 0);
        ck_assert_int_gt(w[i].decodes, 0);
        total += w[i].decodes;
    }
    ckpt_ec_get_stats(ec, out);
    ck_assert_uint_eq(out->hits + out->misses, (uint64_t)total);
    ckpt_ec_destroy(ec);
    return total;
}

START_TEST(test_concurrent_decode_evicting)
{
    /* 8+3, all 231 patterns of <= 3 erasures: more than the cache holds,
     * so inserts and evictions race with lookups. */
    struct ckpt_ec_stats s;
    run_workers(8, 3, 3, 20, &s);
    ck_assert_uint_gt(s.evictions, 0);
    ck_assert_uint_ge(s.misses, 231);
}
END_TEST

START_TEST(test_concurrent_decode_hits)
{
    /* 4+2, the 21 patterns of <= 2 erasures fit the cache: each pattern is
     * owned by one thread, so it misses exactly once and hits after. */
    struct ckpt_ec_stats s;
    long total = run_workers(4, 2, 2, 50, &s);
    ck_assert_uint_eq(s.misses, 21);
    ck_assert_uint_eq(s.evictions, 0);
    ck_assert_uint_eq(s.hits, (uint64_t)total - 21);
}
END_TEST

Suite *ec_suite(void)
{
    Suite *s = suite_create("ec");

    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_create_bad_args);
    tcase_add_test(tc, test_create_all_sizes);
    tcase_add_test(tc, test_reference_matrix_sanity);
    tcase_add_test(tc, test_encode_bad_args);
    tcase_add_test(tc, test_decode_bad_args);
    tcase_add_test(tc, test_create_oom);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_encode_vs_reference);
    tcase_add_test(tc, test_encode_large_chunk);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_decode_every_pattern_2_1);
    tcase_add_test(tc, test_decode_every_pattern_4_2);
    tcase_add_test(tc, test_decode_every_pattern_8_2);
    tcase_add_test(tc, test_decode_every_pattern_8_3);
    tcase_add_test(tc, test_decode_every_pattern_12_4);
    tcase_add_test(tc, test_decode_absent_inputs);
    tcase_add_test(tc, test_decode_cache);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_concurrent_decode_evicting);
    tcase_add_test(tc, test_concurrent_decode_hits);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_crc.c - unit tests for lib/crc (CRC-32C over ISA-L).
 *
 * Every result is checked against a naive bitwise CRC-32C written here from
 * the definition (reflected polynomial 0x82F63B78, init and xorout
 * 0xFFFFFFFF), against published check values (the CRC catalogue's
 * "123456789" and RFC 3720 B.4), and against itself: streaming in random
 * pieces and combining independently computed pieces must give the one-shot
 * value.  The large-length test maps > 4 GiB of zero pages (no memory is
 * used) to cover the pieces fed to ISA-L's int length and combine lengths
 * beyond 32 bits.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"
#include "crc.h"

Suite *crc_suite(void);

/* ---- reference and helpers ---------------------------------------------- */

static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

/* xorshift64*: deterministic, so a failure reproduces. */
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

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_known_vectors)
{
    uint8_t buf[32];

    ck_assert_uint_eq(ckpt_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(ref_crc32c(0, (const uint8_t *)"123456789", 9),
                      0xE3069283u);
    ck_assert_uint_eq(ckpt_crc32c(0, "", 0), 0u);
    ck_assert_uint_eq(ckpt_crc32c(0, NULL, 0), 0u);
    ck_assert_uint_eq(ckpt_crc32c(0x12345678u, NULL, 0), 0x12345678u);
    ck_assert_uint_eq(ckpt_crc32c(0, "a", 1), 0xC1D04330u);

    /* RFC 3720 appendix B.4. */
    memset(buf, 0, sizeof(buf));
    ck_assert_uint_eq(ckpt_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    ck_assert_uint_eq(ckpt_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    ck_assert_uint_eq(ckpt_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    ck_assert_uint_eq(ckpt_crc32c(0, buf, 32), 0x113FDB5Cu);
}
END_TEST

START_TEST(test_matches_reference)
{
    enum { MAX = 9000 };
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    uint8_t *buf = malloc(MAX + 64);
    ck_assert_ptr_nonnull(buf);
    fill_random(buf, MAX + 64, &s);

    /* Every length up to 300 at every alignment mod 8, then random ones:
     * covers ISA-L's short-tail and 8-byte/3-way-parallel paths. */
    for (size_t len = 0; len <= 300; len++)
        for (size_t off = 0; off < 8; off++)
            ck_assert_uint_eq(ckpt_crc32c(0, buf + off, len),
                              ref_crc32c(0, buf + off, len));
    for (int it = 0; it < 300; it++) {
        size_t len = (size_t)(rng_next(&s) % MAX);
        size_t off = (size_t)(rng_next(&s) % 64);
        uint32_t seed = (uint32_t)rng_next(&s);
        ck_assert_uint_eq(ckpt_crc32c(seed, buf + off, len),
                          ref_crc32c(seed, buf + off, len));
    }
    free(buf);
}
END_TEST

START_TEST(test_streaming_equals_oneshot)
{
    enum { MAX = 70000 };
    uint64_t s = 42;
    uint8_t *buf = malloc(MAX);
    ck_assert_ptr_nonnull(buf);
    fill_random(buf, MAX, &s);

    for (int it = 0; it < 200; it++) {
        size_t len = (size_t)(rng_next(&s) % MAX);
        uint32_t whole = ckpt_crc32c(0, buf, len);
        /* Two-way split, the split point anywhere including 0 and len. */
        size_t cut = len ? (size_t)(rng_next(&s) % (len + 1)) : 0;
        uint32_t c = ckpt_crc32c(ckpt_crc32c(0, buf, cut), buf + cut,
                                 len - cut);
        ck_assert_uint_eq(c, whole);
        /* Many random pieces. */
        c = 0;
        for (size_t pos = 0; pos < len;) {
            size_t piece = (size_t)(rng_next(&s) % 5000);
            if (piece > len - pos)
                piece = len - pos;
            c = ckpt_crc32c(c, buf + pos, piece);
            pos += piece;
        }
        ck_assert_uint_eq(c, whole);
    }
    ck_assert_uint_eq(ckpt_crc32c(0, buf, 5000), ref_crc32c(0, buf, 5000));
    free(buf);
}
END_TEST

START_TEST(test_combine_random)
{
    enum { MAX = 200000 };
    uint64_t s = 7;
    uint8_t *buf = malloc(MAX);
    ck_assert_ptr_nonnull(buf);
    fill_random(buf, MAX, &s);

    /* Both lengths 0 and small ones are included explicitly. */
    static const size_t fixed[][2] = {{0, 0}, {0, 1}, {1, 0}, {5, 0},
                                      {0, 7}, {1, 1}, {3, 4}, {64, 64}};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        size_t la = fixed[i][0], lb = fixed[i][1];
        uint32_t ca = ckpt_crc32c(0, buf, la);
        uint32_t cb = ckpt_crc32c(0, buf + la, lb);
        ck_assert_uint_eq(ckpt_crc32c_combine(ca, cb, lb),
                          ckpt_crc32c(0, buf, la + lb));
    }
    for (int it = 0; it < 500; it++) {
        size_t la = (size_t)(rng_next(&s) % (MAX / 2));
        /* Favour short B lengths half of the time. */
        size_t lb = (size_t)(rng_next(&s) % ((it & 1) ? 100 : MAX / 2));
        uint32_t ca = ckpt_crc32c(0, buf, la);
        uint32_t cb = ckpt_crc32c(0, buf + la, lb);
        uint32_t want = ref_crc32c(0, buf, la + lb);
        ck_assert_uint_eq(ckpt_crc32c_combine(ca, cb, lb), want);
    }
    free(buf);
}
END_TEST

START_TEST(test_combine_many_chunks)
{
    /* The use the module exists for: per-chunk crcs (computed in any order)
     * folded into the whole-file crc. */
    enum { CHUNK = 4096 + 17, NCHUNK = 37 };
    uint64_t s = 99;
    uint8_t *buf = malloc((size_t)CHUNK * NCHUNK);
    uint32_t per[NCHUNK];
    ck_assert_ptr_nonnull(buf);
    fill_random(buf, (size_t)CHUNK * NCHUNK, &s);
    for (int i = NCHUNK - 1; i >= 0; i--)
        per[i] = ckpt_crc32c(0, buf + (size_t)i * CHUNK, CHUNK);
    uint32_t c = 0;
    for (int i = 0; i < NCHUNK; i++)
        c = ckpt_crc32c_combine(c, per[i], CHUNK);
    ck_assert_uint_eq(c, ref_crc32c(0, buf, (size_t)CHUNK * NCHUNK));
    /* Tree-shaped combining gives the same. */
    uint32_t left = 0, right = 0;
    for (int i = 0; i < NCHUNK / 2; i++)
        left = ckpt_crc32c_combine(left, per[i], CHUNK);
    for (int i = NCHUNK / 2; i < NCHUNK; i++)
        right = ckpt_crc32c_combine(right, per[i], CHUNK);
    ck_assert_uint_eq(ckpt_crc32c_combine(left, right,
                                          (size_t)CHUNK * (NCHUNK - NCHUNK / 2)),
                      c);
    free(buf);
}
END_TEST

START_TEST(test_large_lengths)
{
    /* 4 GiB + 3 bytes of zero pages: one-shot crosses ISA-L's int length
     * several times and the combine length has bit 32 set. */
    const size_t big = ((size_t)4 << 30) + 3;
    const size_t head = 12345;
    uint8_t *z = mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
                      MAP_NORESERVE, -1, 0);
    ck_assert_ptr_ne(z, MAP_FAILED);
    enum { ZBUF = 1 << 20 };
    uint8_t *zb = calloc(1, ZBUF);
    ck_assert_ptr_nonnull(zb);

    uint32_t oneshot = ckpt_crc32c(0, z, big);
    uint32_t streamed = 0;
    for (size_t pos = 0; pos < big;) {
        size_t piece = big - pos < ZBUF ? big - pos : ZBUF;
        streamed = ckpt_crc32c(streamed, zb, piece);
        pos += piece;
    }
    ck_assert_uint_eq(oneshot, streamed);
    uint32_t ca = ckpt_crc32c(0, z, head);
    uint32_t cb = ckpt_crc32c(0, z + head, big - head);
    ck_assert_uint_eq(ckpt_crc32c_combine(ca, cb, big - head), oneshot);
    munmap(z, big);

    /* Non-zero A in front of the big zero run. */
    uint8_t a[100];
    uint64_t s = 5;
    fill_random(a, sizeof(a), &s);
    uint32_t c = ckpt_crc32c(0, a, sizeof(a));
    for (size_t pos = 0; pos < big;) {
        size_t piece = big - pos < ZBUF ? big - pos : ZBUF;
        c = ckpt_crc32c(c, zb, piece);
        pos += piece;
    }
    ck_assert_uint_eq(ckpt_crc32c_combine(ckpt_crc32c(0, a, sizeof(a)),
                                          oneshot, big), c);
    free(zb);
}
END_TEST

START_TEST(test_combine_associative_huge)
{
    /* Lengths far past anything we can checksum for real: combining must
     * still be associative, (A.B).C == A.(B.C), which fails if any bit of
     * the length is mishandled. */
    uint64_t s = 1234;
    for (int it = 0; it < 200; it++) {
        uint32_t ca = (uint32_t)rng_next(&s);
        uint32_t cb = (uint32_t)rng_next(&s);
        uint32_t cc = (uint32_t)rng_next(&s);
        size_t lb = (size_t)(rng_next(&s) >> (it % 40));
        size_t lc = (size_t)(rng_next(&s) >> (it % 40));
        lb >>= 2; /* keep lb + lc from overflowing */
        lc >>= 2;
        uint32_t l = ckpt_crc32c_combine(ckpt_crc32c_combine(ca, cb, lb),
                                         cc, lc);
        uint32_t r = ckpt_crc32c_combine(ca, ckpt_crc32c_combine(cb, cc, lc),
                                         lb + lc);
        ck_assert_uint_eq(l, r);
    }
    /* And combine is not the identity for big lengths (a sanity check that
     * the associativity above is not trivially true). */
    ck_assert_uint_ne(ckpt_crc32c_combine(1, 0, (size_t)1 << 40), 1u);
}
END_TEST

START_TEST(test_no_allocation)
{
    long live = ckpt_alloc_live();
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_uint_eq(ckpt_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(ckpt_crc32c_combine(ckpt_crc32c(0, "1234", 4),
                                          ckpt_crc32c(0, "56789", 5), 5),
                      0xE3069283u);
    ck_assert(!ckpt_fault_fired(CKPT_FAULT_ALLOC));
    ckpt_fault_disarm_all();
    ck_assert_int_eq(ckpt_alloc_live(), live);
}
END_TEST

Suite *crc_suite(void)
{
    Suite *s = suite_create("crc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_known_vectors);
    tcase_add_test(tc, test_matches_reference);
    tcase_add_test(tc, test_streaming_equals_oneshot);
    tcase_add_test(tc, test_combine_random);
    tcase_add_test(tc, test_combine_many_chunks);
    tcase_add_test(tc, test_combine_associative_huge);
    tcase_add_test(tc, test_no_allocation);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("large");
    tcase_set_timeout(big, 30);
    tcase_add_test(big, test_large_lengths);
    suite_add_tcase(s, big);
    return s;
}

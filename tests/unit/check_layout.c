/*
 * check_layout.c - unit tests for lib/layout.c: the byte -> (stripe, chunk,
 * target slot) map, the rotation over W targets, short last stripes, and the
 * "ec=4+2 chunk=1M width=12" spec parser and formatter.
 *
 * The round-trip tests draw random layouts from a fixed-seed xorshift
 * generator so a failure reproduces; the exhaustive tests walk every byte of
 * a few small layouts.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

Suite *layout_suite(void);

/* Check's ck_assert_* writes a mark point to a pipe on every call; the
 * loops below make millions of checks, so they use this instead. */
#define REQUIRE(cond)                                                         \
    do {                                                                      \
        if (!(cond))                                                          \
            ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #cond);     \
    } while (0)

#define REQ_eq(a, b) REQUIRE((a) == (b))
#define REQ_lt(a, b) REQUIRE((a) < (b))
#define REQ_le(a, b) REQUIRE((a) <= (b))

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static struct ckpt_layout mk(unsigned k, unsigned m, unsigned w, uint32_t chunk)
{
    struct ckpt_layout l;
    memset(&l, 0, sizeof(l));
    l.k = (uint8_t)k;
    l.m = (uint8_t)m;
    l.width = (uint16_t)w;
    l.chunk_size = chunk;
    return l;
}

/* A random layout that passes ckpt_layout_check(). */
static struct ckpt_layout random_layout(void)
{
    unsigned k = 1 + (unsigned)(rng() % CKPT_LAYOUT_MAX_K);
    unsigned m = (unsigned)(rng() % (CKPT_LAYOUT_MAX_M + 1));
    unsigned w = k + m + (unsigned)(rng() % (CKPT_LAYOUT_MAX_WIDTH - k - m + 1));
    uint32_t chunk = CKPT_LAYOUT_MIN_CHUNK *
                     (1 + (uint32_t)(rng() % (CKPT_LAYOUT_MAX_CHUNK / CKPT_LAYOUT_MIN_CHUNK)));
    if (rng() % 4 == 0)
        w = 0; /* "k+m" */
    return mk(k, m, w, chunk);
}

START_TEST(test_default)
{
    struct ckpt_layout l;
    const char *why = "unset";

    memset(&l, 0xa5, sizeof(l));
    ckpt_layout_default(&l);
    ck_assert_uint_eq(l.k, 4);
    ck_assert_uint_eq(l.m, 2);
    ck_assert_uint_eq(l.width, 6);
    ck_assert_uint_eq(l.chunk_size, 1u << 20);
    ck_assert_uint_eq(l.flags, 0);
    for (int i = 0; i < CKPT_LAYOUT_MAX_WIDTH; i++)
        ck_assert_uint_eq(l.targets[i], 0);
    ck_assert_int_eq(ckpt_layout_check(&l, &why), 0);
    ck_assert_ptr_null(why);
    ck_assert_uint_eq(ckpt_layout_stripe_bytes(&l), 4u << 20);
}
END_TEST

START_TEST(test_check_bounds)
{
    static const struct {
        unsigned k, m, w;
        uint32_t chunk;
        int ok;
    } cases[] = {
        {1, 0, 0, 4096, 1},          {1, 0, 1, 4096, 1},
        {0, 2, 0, 4096, 0},          {16, 4, 20, 4096, 1},
        {17, 0, 0, 4096, 0},         {16, 4, 64, 4096, 1},
        {4, 4, 8, 4096, 1},          {4, 5, 0, 4096, 0},
        {4, 2, 5, 1 << 20, 0},       {4, 2, 6, 1 << 20, 1},
        {4, 2, 64, 1 << 20, 1},      {4, 2, 65, 1 << 20, 0},
        {4, 2, 0, 0, 0},             {4, 2, 0, 4095, 0},
        {4, 2, 0, 4097, 0},          {4, 2, 0, 8192 + 512, 0},
        {4, 2, 0, 64u << 20, 1},     {4, 2, 0, (64u << 20) + 4096, 0},
        {4, 2, 0, 12288, 1},         {4, 2, 0, UINT32_MAX, 0},
        {255, 255, 65535, 4096, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ckpt_layout l = mk(cases[i].k, cases[i].m, cases[i].w, cases[i].chunk);
        const char *why = "unset";
        int rc = ckpt_layout_check(&l, &why);
        if (cases[i].ok) {
            ck_assert_msg(rc == 0, "case %zu: %s", i, why ? why : "");
            ck_assert_ptr_null(why);
        } else {
            ck_assert_msg(rc == -EINVAL, "case %zu accepted", i);
            ck_assert_ptr_nonnull(why);
            ck_assert_int_gt((int)strlen(why), 5);
        }
        /* out_why is optional */
        ck_assert_int_eq(ckpt_layout_check(&l, NULL), rc);
    }
}
END_TEST

START_TEST(test_nstripes)
{
    struct ckpt_layout l = mk(4, 2, 6, 4096);
    uint64_t sb = 4 * 4096;

    ck_assert_uint_eq(ckpt_layout_nstripes(&l, 0), 0);
    ck_assert_uint_eq(ckpt_layout_nstripes(&l, 1), 1);
    ck_assert_uint_eq(ckpt_layout_nstripes(&l, sb - 1), 1);
    ck_assert_uint_eq(ckpt_layout_nstripes(&l, sb), 1);
    ck_assert_uint_eq(ckpt_layout_nstripes(&l, sb + 1), 2);
    ck_assert_uint_eq(ckpt_layout_nstripes(&l, 10 * sb), 10);
    /* No wrap-around for sizes near 2^64. */
    ck_assert_uint_eq(ckpt_layout_nstripes(&l, UINT64_MAX), UINT64_MAX / sb + 1);
    /* An invalid layout does not divide by zero. */
    struct ckpt_layout z = mk(0, 0, 0, 0);
    ck_assert_uint_eq(ckpt_layout_nstripes(&z, 12345), 0);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&z, 12345, 0, 0), 0);
    ck_assert_uint_eq(ckpt_layout_slot(&z, 7, 1), 0);
    struct ckpt_loc loc;
    ckpt_layout_locate(&z, 999, &loc);
    ck_assert_uint_eq(loc.stripe, 0);
    ck_assert_uint_eq(loc.index, 0);
}
END_TEST

START_TEST(test_rotation)
{
    /* DESIGN.md: chunk i of stripe s lives on targets[(s + i) % W]. */
    for (unsigned w = 6; w <= 12; w++) {
        struct ckpt_layout l = mk(4, 2, w, 4096);
        unsigned count[12][6];
        memset(count, 0, sizeof(count));
        for (uint64_t s = 0; s < 3 * w; s++) {
            unsigned used[12] = {0};
            for (uint32_t i = 0; i < 6; i++) {
                uint32_t slot = ckpt_layout_slot(&l, s, i);
                ck_assert_uint_eq(slot, (s + i) % w);
                ck_assert_uint_lt(slot, w);
                /* the k+m chunks of one stripe sit on distinct targets */
                ck_assert_uint_eq(used[slot]++, 0);
                count[slot][i]++;
            }
            /* the next stripe starts one target further */
            ck_assert_uint_eq(ckpt_layout_slot(&l, s + 1, 0), (ckpt_layout_slot(&l, s, 0) + 1) % w);
        }
        /* over 3*W stripes every target holds every chunk index 3 times */
        for (unsigned t = 0; t < w; t++)
            for (unsigned i = 0; i < 6; i++)
                ck_assert_uint_eq(count[t][i], 3);
    }
    /* width 0 means k+m */
    struct ckpt_layout l0 = mk(3, 1, 0, 4096);
    for (uint64_t s = 0; s < 20; s++)
        for (uint32_t i = 0; i < 4; i++)
            ck_assert_uint_eq(ckpt_layout_slot(&l0, s, i), (s + i) % 4);
    /* huge stripe numbers: the sum must not wrap */
    struct ckpt_layout l7 = mk(4, 2, 7, 4096);
    for (uint64_t s = UINT64_MAX - 20; s != 0; s++)
        for (uint32_t i = 0; i < 6; i++)
            ck_assert_uint_eq(ckpt_layout_slot(&l7, s, i),
                              (uint32_t)(((unsigned __int128)s + i) % 7));
}
END_TEST

START_TEST(test_locate_offset_roundtrip)
{
    for (int iter = 0; iter < 20000; iter++) {
        struct ckpt_layout l = random_layout();
        uint32_t w = l.width ? l.width : (uint32_t)l.k + l.m;
        uint64_t sb = ckpt_layout_stripe_bytes(&l);
        uint64_t off;
        struct ckpt_loc loc;

        REQUIRE(ckpt_layout_check(&l, NULL) == 0);
        switch (iter % 4) {
        case 0: off = rng() % (sb * 1000); break;
        case 1: off = rng() >> (rng() % 64); break;
        case 2: off = (rng() % 100000) * sb + (rng() % 2 ? 0 : sb - 1); break;
        default: off = UINT64_MAX - rng() % sb; break;
        }
        ckpt_layout_locate(&l, off, &loc);
        REQ_eq(loc.stripe, off / sb);
        REQ_lt(loc.index, l.k);
        REQ_lt(loc.chunk_off, l.chunk_size);
        REQ_lt(loc.slot, w);
        REQ_eq(loc.slot, ckpt_layout_slot(&l, loc.stripe, loc.index));
        REQ_eq(loc.stripe_off, (uint64_t)loc.index * l.chunk_size + loc.chunk_off);
        REQ_eq(ckpt_layout_offset(&l, loc.stripe, loc.index, loc.chunk_off), off);
        /* and the other way: a random (stripe, index, off) */
        uint64_t s = rng() % (UINT64_MAX / sb);
        uint32_t i = (uint32_t)(rng() % l.k);
        uint32_t co = (uint32_t)(rng() % l.chunk_size);
        ckpt_layout_locate(&l, ckpt_layout_offset(&l, s, i, co), &loc);
        REQ_eq(loc.stripe, s);
        REQ_eq(loc.index, i);
        REQ_eq(loc.chunk_off, co);
    }
}
END_TEST

/* Walk every byte of a file under layout l: each maps to a distinct
 * (stripe, index, chunk_off) inside the valid length of its chunk, and the
 * data chunk lengths add up to the file size. */
static void walk_every_byte(const struct ckpt_layout *l, uint64_t size)
{
    uint64_t nstripes = ckpt_layout_nstripes(l, size);
    uint64_t cells = nstripes * l->k * l->chunk_size;
    uint8_t *seen = calloc(cells ? cells : 1, 1);
    uint64_t total = 0;

    ck_assert_ptr_nonnull(seen);
    for (uint64_t off = 0; off < size; off++) {
        struct ckpt_loc loc;
        ckpt_layout_locate(l, off, &loc);
        REQ_lt(loc.stripe, nstripes);
        REQ_lt(loc.chunk_off,
                          ckpt_layout_chunk_len(l, size, loc.stripe, loc.index));
        uint64_t cell = (loc.stripe * l->k + loc.index) * l->chunk_size + loc.chunk_off;
        REQ_lt(cell, cells);
        REQ_eq(seen[cell], 0);
        seen[cell] = 1;
    }
    for (uint64_t s = 0; s < nstripes + 2; s++) {
        uint32_t len0 = ckpt_layout_chunk_len(l, size, s, 0);
        for (uint32_t i = 0; i < (uint32_t)l->k + l->m; i++) {
            uint32_t len = ckpt_layout_chunk_len(l, size, s, i);
            REQ_le(len, l->chunk_size);
            if (i >= l->k)
                REQ_eq(len, len0); /* parity as long as chunk 0 */
            else
                total += len;
            /* every counted byte was visited */
            for (uint32_t b = 0; i < l->k && b < len; b++)
                REQ_eq(seen[(s * l->k + i) * l->chunk_size + b], 1);
        }
        if (s >= nstripes)
            REQ_eq(len0, 0);
    }
    REQ_eq(total, size);
    free(seen);
}

START_TEST(test_every_byte_small_layouts)
{
    static const struct {
        unsigned k, m, w;
    } shapes[] = {{1, 0, 0}, {2, 1, 3}, {3, 2, 7}, {4, 2, 0}, {5, 4, 12}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        struct ckpt_layout l = mk(shapes[i].k, shapes[i].m, shapes[i].w, 4096);
        uint64_t sb = ckpt_layout_stripe_bytes(&l);
        uint64_t sizes[] = {0, 1, 4095, 4096, 4097, sb - 1, sb, sb + 1, 2 * sb + 4096 + 17,
                            3 * sb};
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++)
            walk_every_byte(&l, sizes[j]);
    }
}
END_TEST

START_TEST(test_chunk_len)
{
    struct ckpt_layout l = mk(4, 2, 6, 1 << 20);
    const uint32_t C = 1u << 20;
    uint64_t size = 5ull * C + 123; /* stripe 0 full, stripe 1: 1 chunk + 123 */

    for (uint32_t i = 0; i < 4; i++)
        ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 0, i), C);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 0, 4), C);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 0, 5), C);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 1, 0), C);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 1, 1), 123);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 1, 2), 0);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 1, 3), 0);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 1, 4), C); /* parity = chunk 0 */
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, 2, 0), 0);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, size, UINT64_MAX, 0), 0);
    /* a short first chunk makes short parity */
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, 100, 0, 0), 100);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, 100, 0, 1), 0);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, 100, 0, 5), 100);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, 0, 0, 0), 0);
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, 0, 0, 4), 0);
    /* the last possible stripe of a 2^64-1 byte file */
    uint64_t last = ckpt_layout_nstripes(&l, UINT64_MAX) - 1;
    uint64_t start = last * 4ull * C;
    uint64_t rem = UINT64_MAX - start;
    ck_assert_uint_eq(ckpt_layout_chunk_len(&l, UINT64_MAX, last, 0), rem < C ? rem : C);
}
END_TEST

START_TEST(test_parse_valid)
{
    struct ckpt_layout l;
    const char *why = "unset";

    ckpt_layout_default(&l);
    l.flags = CKPT_LAYOUT_F_ZSTD;
    l.targets[3] = 77;
    ck_assert_int_eq(ckpt_layout_parse("ec=4+2 chunk=1M width=12", &l, &why), 0);
    ck_assert_ptr_null(why);
    ck_assert_uint_eq(l.k, 4);
    ck_assert_uint_eq(l.m, 2);
    ck_assert_uint_eq(l.chunk_size, 1u << 20);
    ck_assert_uint_eq(l.width, 12);
    ck_assert_uint_eq(l.flags, CKPT_LAYOUT_F_ZSTD); /* untouched */
    ck_assert_uint_eq(l.targets[3], 77);

    /* any order, commas, tabs, extra blanks */
    ck_assert_int_eq(ckpt_layout_parse("  width=16,chunk=64K\tec=8+2 , ", &l, &why), 0);
    ck_assert_uint_eq(l.k, 8);
    ck_assert_uint_eq(l.m, 2);
    ck_assert_uint_eq(l.chunk_size, 64u << 10);
    ck_assert_uint_eq(l.width, 16);

    /* missing keys keep their values */
    ck_assert_int_eq(ckpt_layout_parse("chunk=4M", &l, &why), 0);
    ck_assert_uint_eq(l.k, 8);
    ck_assert_uint_eq(l.width, 16);
    ck_assert_uint_eq(l.chunk_size, 4u << 20);
    ck_assert_int_eq(ckpt_layout_parse("width=20", &l, &why), 0);
    ck_assert_uint_eq(l.width, 20);
    ck_assert_uint_eq(l.chunk_size, 4u << 20);

    /* ec= without width= means width k+m; width=0 means k+m */
    ck_assert_int_eq(ckpt_layout_parse("ec=16+4", &l, &why), 0);
    ck_assert_uint_eq(l.width, 20);
    ck_assert_int_eq(ckpt_layout_parse("ec=2+1", &l, &why), 0);
    ck_assert_uint_eq(l.width, 3);
    ck_assert_int_eq(ckpt_layout_parse("width=0", &l, &why), 0);
    ck_assert_uint_eq(l.width, 3);
    ck_assert_int_eq(ckpt_layout_parse("ec=1+0 width=0", &l, &why), 0);
    ck_assert_uint_eq(l.width, 1);
    ck_assert_int_eq(ckpt_layout_parse("ec=4+4 width=64", &l, &why), 0);
    ck_assert_uint_eq(l.width, 64);

    /* size suffixes */
    static const struct {
        const char *spec;
        uint32_t chunk;
    } sizes[] = {{"chunk=4096", 4096},   {"chunk=4K", 4096},        {"chunk=4k", 4096},
                 {"chunk=4KiB", 4096},   {"chunk=1m", 1u << 20},     {"chunk=64M", 64u << 20},
                 {"chunk=64MiB", 64u << 20}, {"chunk=12288", 12288}, {"chunk=0004K", 4096}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        ck_assert_msg(ckpt_layout_parse(sizes[i].spec, &l, &why) == 0, "%s: %s", sizes[i].spec,
                      why ? why : "");
        ck_assert_uint_eq(l.chunk_size, sizes[i].chunk);
    }
    /* out_why optional */
    ck_assert_int_eq(ckpt_layout_parse("ec=4+2", &l, NULL), 0);
}
END_TEST

START_TEST(test_parse_invalid)
{
    static const char *const bad[] = {
        "", "   ", " , ,", "ec", "ec=", "ec=4", "ec=4+", "ec=+2", "ec=4-2", "ec=4+2x",
        "ec=0+2", "ec=17+0", "ec=4+5", "ec=-4+2", "ec=4+2+1", "ec=99999999999999999999+1",
        "chunk=", "chunk=3K", "chunk=5000", "chunk=0", "chunk=128M", "chunk=1G", "chunk=1.5M",
        "chunk=-1M", "chunk=1 M", "chunk=1MB", "chunk=1Mi", "chunk=99999999999T",
        "chunk=18446744073709551616", "chunk=1M1",
        "width=5", "width=65", "width=-1", "width=abc", "width=6x", "width=", "width=1e3",
        "ec=16+4 width=19", "ec=4+2 width=4", "foo=1", "EC=4+2", "ec=4+2 ec=4+2",
        "chunk=1M chunk=2M", "width=8 width=8", "ec=4+2;chunk=1M", "=", "ec==4+2",
        "ec=4+2 junk",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ckpt_layout l, before;
        const char *why = NULL;
        ckpt_layout_default(&l);
        l.targets[0] = 5;
        before = l;
        ck_assert_msg(ckpt_layout_parse(bad[i], &l, &why) == -EINVAL, "accepted \"%s\"", bad[i]);
        ck_assert_msg(why != NULL && strlen(why) > 5, "no reason for \"%s\"", bad[i]);
        ck_assert_msg(memcmp(&l, &before, sizeof(l)) == 0, "\"%s\" changed *inout", bad[i]);
    }
    struct ckpt_layout l;
    const char *why = NULL;
    ckpt_layout_default(&l);
    ck_assert_int_eq(ckpt_layout_parse(NULL, &l, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    /* the reason names the rule */
    ck_assert_int_eq(ckpt_layout_parse("ec=4+2 width=4", &l, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "width"));
    ck_assert_int_eq(ckpt_layout_parse("chunk=6K", &l, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "multiple of 4K"));
    ck_assert_int_eq(ckpt_layout_parse("ec=20+1", &l, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "1..16"));
}
END_TEST

START_TEST(test_format)
{
    struct ckpt_layout l;
    char buf[64];

    ckpt_layout_default(&l);
    ck_assert_int_eq(ckpt_layout_format(buf, sizeof(buf), &l), 23);
    ck_assert_str_eq(buf, "ec=4+2 chunk=1M width=6");
    l = mk(8, 2, 0, 12288);
    ck_assert_int_gt(ckpt_layout_format(buf, sizeof(buf), &l), 0);
    ck_assert_str_eq(buf, "ec=8+2 chunk=12K width=10");
    l = mk(16, 4, 64, 64u << 20);
    ck_assert_int_gt(ckpt_layout_format(buf, sizeof(buf), &l), 0);
    ck_assert_str_eq(buf, "ec=16+4 chunk=64M width=64");
    /* exactly fitting and one byte short */
    ckpt_layout_default(&l);
    ck_assert_int_eq(ckpt_layout_format(buf, 24, &l), 23);
    ck_assert_int_eq(ckpt_layout_format(buf, 23, &l), -ENOSPC);
    ck_assert_int_eq(ckpt_layout_format(buf, 1, &l), -ENOSPC);
    ck_assert_int_eq(ckpt_layout_format(NULL, 0, &l), -ENOSPC);

    /* format -> parse gives back the same k, m, chunk and width */
    for (int i = 0; i < 5000; i++) {
        struct ckpt_layout a = random_layout(), b;
        const char *why = NULL;
        ck_assert_int_gt(ckpt_layout_format(buf, sizeof(buf), &a), 0);
        memset(&b, 0, sizeof(b));
        b.k = 1;
        b.chunk_size = 4096;
        ck_assert_msg(ckpt_layout_parse(buf, &b, &why) == 0, "%s: %s", buf, why ? why : "");
        REQ_eq(b.k, a.k);
        REQ_eq(b.m, a.m);
        REQ_eq(b.chunk_size, a.chunk_size);
        REQ_eq(b.width, a.width ? a.width : (uint32_t)a.k + a.m);
    }
}
END_TEST

Suite *layout_suite(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("math");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_default);
    tcase_add_test(tc, test_check_bounds);
    tcase_add_test(tc, test_nstripes);
    tcase_add_test(tc, test_rotation);
    tcase_add_test(tc, test_locate_offset_roundtrip);
    tcase_add_test(tc, test_every_byte_small_layouts);
    tcase_add_test(tc, test_chunk_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("spec");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_parse_valid);
    tcase_add_test(tc, test_parse_invalid);
    tcase_add_test(tc, test_format);
    suite_add_tcase(s, tc);
    return s;
}

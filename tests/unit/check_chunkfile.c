/*
 * check_chunkfile.c - unit tests for lib/chunkfile (the chunk file header
 * and names both ckpt-node and same-host clients use).
 *
 * The header bytes are checked against the layout written out in
 * chunkfile.h field by field (a change of the format must fail here, not
 * silently make old chunk files unreadable), every field a reader checks is
 * damaged once, and the names are compared with literal paths.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "chunkfile.h"
#include "crc.h"
#include "err.h"

Suite *chunkfile_suite(void);

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static const struct ckpt_chunkfile_info INFO = {
    .gen = 0x1122334455667788ull, .len = 1048576, .crc = 0xCAFEF00Du,
    .stored_len = 1048576, .encoding = CKPT_CHUNKFILE_ENC_RAW,
};
#define INO 0x0102030405060708ull
#define STRIPE 0x99ull
#define INDEX 5

START_TEST(test_layout)
{
    uint8_t h[CKPT_CHUNKFILE_HDR_LEN];
    ckpt_chunkfile_hdr_encode(h, INO, STRIPE, INDEX, &INFO);
    ck_assert_int_eq(memcmp(h, "CKPTCHNK", 8), 0);
    ck_assert_uint_eq(le(h + 8, 2), 1);
    ck_assert_uint_eq(le(h + 10, 2), 0);
    ck_assert_uint_eq(le(h + 12, 4), 0);
    ck_assert_uint_eq(le(h + 16, 8), INO);
    ck_assert_uint_eq(le(h + 24, 8), STRIPE);
    ck_assert_uint_eq(le(h + 32, 8), INFO.gen);
    ck_assert_uint_eq(le(h + 40, 2), INDEX);
    ck_assert_uint_eq(le(h + 42, 2), 0);
    ck_assert_uint_eq(le(h + 44, 4), INFO.len);
    ck_assert_uint_eq(le(h + 48, 4), INFO.stored_len);
    ck_assert_uint_eq(le(h + 52, 4), INFO.crc);
    ck_assert_uint_eq(le(h + 56, 4), INFO.crc);
    ck_assert_uint_eq(le(h + 60, 4), ckpt_crc32c(0, h, 60));
}
END_TEST

START_TEST(test_roundtrip)
{
    uint8_t h[CKPT_CHUNKFILE_HDR_LEN];
    struct ckpt_chunkfile_info out;
    const char *why = "untouched";
    ckpt_chunkfile_hdr_encode(h, INO, STRIPE, INDEX, &INFO);
    ck_assert_int_eq(ckpt_chunkfile_hdr_decode(h, INO, STRIPE, INDEX, &out, &why), 0);
    ck_assert_str_eq(why, "untouched");
    ck_assert_uint_eq(out.gen, INFO.gen);
    ck_assert_uint_eq(out.len, INFO.len);
    ck_assert_uint_eq(out.crc, INFO.crc);
    ck_assert_uint_eq(out.stored_len, INFO.stored_len);
    ck_assert_uint_eq(out.encoding, INFO.encoding);
    /* Another chunk's name for the same header. */
    ck_assert_int_eq(ckpt_chunkfile_hdr_decode(h, INO + 1, STRIPE, INDEX, &out, &why), CKPT_E_TORN);
    ck_assert_str_eq(why, "header names another chunk");
    ck_assert_int_eq(ckpt_chunkfile_hdr_decode(h, INO, STRIPE + 1, INDEX, &out, NULL), CKPT_E_TORN);
    ck_assert_int_eq(ckpt_chunkfile_hdr_decode(h, INO, STRIPE, INDEX + 1, &out, NULL), CKPT_E_TORN);
}
END_TEST

/* Damage one field (re-sealing the header crc when asked): the decoder
 * must refuse with want, and leave out alone. */
static void damaged(size_t off, uint32_t val, int width, bool reseal, int want)
{
    uint8_t h[CKPT_CHUNKFILE_HDR_LEN];
    struct ckpt_chunkfile_info out = {.gen = 42};
    const char *why = NULL;
    ckpt_chunkfile_hdr_encode(h, INO, STRIPE, INDEX, &INFO);
    for (int i = 0; i < width; i++)
        h[off + (size_t)i] = (uint8_t)(val >> (8 * i));
    if (reseal) {
        uint32_t c = ckpt_crc32c(0, h, 60);
        for (int i = 0; i < 4; i++)
            h[60 + i] = (uint8_t)(c >> (8 * i));
    }
    ck_assert_int_eq(ckpt_chunkfile_hdr_decode(h, INO, STRIPE, INDEX, &out, &why), want);
    ck_assert_ptr_nonnull(why);
    ck_assert_uint_eq(out.gen, 42);
}

START_TEST(test_damage)
{
    damaged(0, 'X', 1, true, CKPT_E_TORN);                        /* magic */
    damaged(33, 0x5a, 1, false, CKPT_E_TORN);                     /* any bit, crc not resealed */
    damaged(8, 2, 2, true, CKPT_E_VERSION);                       /* format version */
    damaged(10, 7, 2, true, CKPT_E_VERSION);                      /* unknown encoding */
    damaged(12, 1, 4, true, CKPT_E_VERSION);                      /* flags */
    damaged(42, 1, 2, true, CKPT_E_VERSION);                      /* reserved */
    damaged(44, CKPT_CHUNKFILE_MAX_LEN + 1, 4, true, CKPT_E_TORN); /* length */
    damaged(48, 4096, 4, true, CKPT_E_TORN);                      /* raw: stored != logical */
    damaged(56, 1, 4, true, CKPT_E_TORN);                         /* raw: stored crc differs */
}
END_TEST

START_TEST(test_names)
{
    char rel[CKPT_CHUNKFILE_REL_MAX];
    ck_assert_int_eq(ckpt_chunkfile_rel(rel, 0x1ab, 2, 3), 41);
    ck_assert_str_eq(rel, "ab/00000000000001ab/0000000000000002.0003");
    ck_assert_int_eq(ckpt_chunkfile_rel_dir(rel, UINT64_MAX), 19);
    ck_assert_str_eq(rel, "ff/ffffffffffffffff");
    ck_assert_int_lt(ckpt_chunkfile_rel(rel, UINT64_MAX, UINT64_MAX, UINT16_MAX),
                     CKPT_CHUNKFILE_REL_MAX);
    ck_assert_str_eq(rel, "ff/ffffffffffffffff/ffffffffffffffff.ffff");
}
END_TEST

Suite *chunkfile_suite(void)
{
    Suite *s = suite_create("chunkfile");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_damage);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

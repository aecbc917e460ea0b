/*
 * check_fs_kio.c - unit tests for fs/fs_kio (the /dev/fuse hooks that add
 * flags2 bits libfuse 3.14 cannot ask for): the INIT reply gets
 * FUSE_DIRECT_IO_ALLOW_MMAP at the kernel's offset (flags2 is at byte 32 of
 * fuse_init_out; a wrong offset is accepted by the kernel and silently
 * ignored, which is how the first version of this code failed) together
 * with FUSE_INIT_EXT, only when the kernel offered it, only for the INIT
 * reply and only once; other messages pass untouched.  The end-to-end
 * proof, a MAP_SHARED mmap of a file on a mount, is in test_fs_posix.sh.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "fs_kio.h"

Suite *fs_kio_suite(void);

#define INIT_EXT (1u << 30)

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* An INIT request: fuse_in_header (40 bytes) + fuse_init_in (64 bytes). */
static void init_request(uint8_t *buf, uint64_t unique, uint32_t flags, uint32_t flags2)
{
    memset(buf, 0, 104);
    put32(buf, 104);
    put32(buf + 4, 26); /* FUSE_INIT */
    put64(buf + 8, unique);
    put32(buf + 40, 7);       /* major */
    put32(buf + 44, 45);      /* minor */
    put32(buf + 52, flags);
    put32(buf + 56, flags2);
}

/* A reply: fuse_out_header (16 bytes) in hdr, fuse_init_out (64) in out. */
static void init_reply(uint8_t *hdr, uint8_t *out, uint64_t unique, int32_t error,
                       struct iovec *iov)
{
    memset(hdr, 0, 16);
    memset(out, 0, 64);
    put32(hdr, 80);
    memcpy(hdr + 4, &error, 4);
    put64(hdr + 8, unique);
    put32(out, 7);
    put32(out + 4, 31);
    put32(out + 12, 0x0040f029); /* what libfuse 3.14 answered here */
    put32(out + 20, 1u << 20);   /* max_write: must stay */
    iov[0] = (struct iovec){hdr, 16};
    iov[1] = (struct iovec){out, 64};
}

START_TEST(test_init_gets_allow_mmap)
{
    struct fs_kio k = {.want_flags2 = FS_KIO_F2_DIRECT_IO_ALLOW_MMAP};
    uint8_t req[104], hdr[16], out[64];
    struct iovec iov[2];

    init_request(req, 2, 0x73fffffb, 0x1ff);
    fs_kio_note_request(&k, req, sizeof(req));
    init_reply(hdr, out, 2, 0, iov);
    ck_assert(fs_kio_amend_reply(&k, iov, 2));
    ck_assert_uint_eq(get32(out + 32), FS_KIO_F2_DIRECT_IO_ALLOW_MMAP);
    ck_assert_uint_eq(get32(out + 12), 0x0040f029u | INIT_EXT);
    ck_assert_uint_eq(get32(out + 20), 1u << 20);
    ck_assert_uint_eq(get32(out + 36), 0);
    ck_assert_uint_eq(atomic_load(&k.granted_flags2), FS_KIO_F2_DIRECT_IO_ALLOW_MMAP);
    ck_assert(atomic_load(&k.answered));
    /* Once: a later reply with the same id is not INIT's. */
    init_reply(hdr, out, 2, 0, iov);
    ck_assert(!fs_kio_amend_reply(&k, iov, 2));
    ck_assert_uint_eq(get32(out + 32), 0);
}
END_TEST

START_TEST(test_not_offered_not_added)
{
    struct fs_kio k = {.want_flags2 = FS_KIO_F2_DIRECT_IO_ALLOW_MMAP};
    uint8_t req[104], hdr[16], out[64];
    struct iovec iov[2];

    /* A kernel before 6.6: flags2 without the bit. */
    init_request(req, 9, 0x73fffffb, 0x0f);
    fs_kio_note_request(&k, req, sizeof(req));
    init_reply(hdr, out, 9, 0, iov);
    ck_assert(fs_kio_amend_reply(&k, iov, 2));
    ck_assert_uint_eq(get32(out + 32), 0);
    ck_assert_uint_eq(get32(out + 12), 0x0040f029u);
    ck_assert_uint_eq(atomic_load(&k.granted_flags2), 0);

    /* Without FUSE_INIT_EXT the kernel's flags2 is not valid at all. */
    struct fs_kio k2 = {.want_flags2 = FS_KIO_F2_DIRECT_IO_ALLOW_MMAP};
    init_request(req, 3, 0x33fffffb, 0x1ff);
    fs_kio_note_request(&k2, req, sizeof(req));
    init_reply(hdr, out, 3, 0, iov);
    ck_assert(fs_kio_amend_reply(&k2, iov, 2));
    ck_assert_uint_eq(get32(out + 32), 0);
}
END_TEST

START_TEST(test_other_messages_untouched)
{
    struct fs_kio k = {.want_flags2 = FS_KIO_F2_DIRECT_IO_ALLOW_MMAP};
    uint8_t req[104], hdr[16], out[64], before[64];
    struct iovec iov[2];

    /* No INIT seen yet: nothing is amended. */
    init_reply(hdr, out, 2, 0, iov);
    ck_assert(!fs_kio_amend_reply(&k, iov, 2));
    /* A LOOKUP request is not INIT; a truncated INIT is ignored. */
    init_request(req, 4, 0x73fffffb, 0x1ff);
    put32(req + 4, 1);
    fs_kio_note_request(&k, req, sizeof(req));
    init_request(req, 5, 0x73fffffb, 0x1ff);
    fs_kio_note_request(&k, req, 50);
    ck_assert_uint_eq(atomic_load(&k.init_unique), 0);
    /* After INIT: replies to other requests pass as they are. */
    init_request(req, 6, 0x73fffffb, 0x1ff);
    fs_kio_note_request(&k, req, sizeof(req));
    init_reply(hdr, out, 8, 0, iov);
    memcpy(before, out, sizeof(out));
    ck_assert(!fs_kio_amend_reply(&k, iov, 2));
    ck_assert_mem_eq(out, before, sizeof(out));
    ck_assert(!fs_kio_amend_reply(&k, iov, 1));
    /* An INIT refused with an error is not amended. */
    init_reply(hdr, out, 6, -71, iov);
    ck_assert(fs_kio_amend_reply(&k, iov, 2));
    ck_assert_mem_eq(out, before, sizeof(out));
    ck_assert_uint_eq(atomic_load(&k.granted_flags2), 0);
}
END_TEST

Suite *fs_kio_suite(void)
{
    Suite *s = suite_create("fs_kio");
    TCase *tc = tcase_create("init");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_init_gets_allow_mmap);
    tcase_add_test(tc, test_not_offered_not_added);
    tcase_add_test(tc, test_other_messages_untouched);
    suite_add_tcase(s, tc);
    return s;
}

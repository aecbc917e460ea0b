/*
 * check_meta_ckpt.c - the checkpoint registry of ckpt-meta (meta_ckpt.c)
 * and its messages (msg_ckpt.c), through the real server, lib/cclient.c
 * and lib/mclient.c (check_meta_fixture.h): commit waits for writers,
 * records the manifest with the client-reported checksums, makes the tree
 * immutable (EROFS), list/info report state and health as nodes go down,
 * and the codecs reject hostile bodies.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "cclient.h"
#include "check_meta_fixture.h"
#include "msg_ckpt.h"

Suite *meta_ckpt_suite(void);

static ckpt_cclient *CC;

static void fast_down(struct meta_server_opts *o)
{
    o->down_after_ms = 300;
    o->out_after_ms = 60000;
}

static void setup(void)
{
    mfx_setup_with(fast_down);
    mfx_simple_cluster(6);
    ck_assert_int_eq(ckpt_cclient_create(F.net, "127.0.0.1", F.port, &CC), 0);
}

static void teardown(void)
{
    ckpt_cclient_destroy(CC);
    CC = NULL;
    mfx_teardown();
}

static uint64_t mkdir_ok(uint64_t parent, const char *name)
{
    struct ckpt_attr a;
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, parent, name, 0755, 0, 0, &a), 0);
    return a.ino;
}

static int create(uint64_t parent, const char *name, struct ckpt_msg_open_resp *o)
{
    return ckpt_mclient_create_file(F.mc, parent, name, 0644, 0, 0, O_CREAT | O_WRONLY, o);
}

static int release(const struct ckpt_msg_open_resp *o, uint64_t size, int has_crc, uint32_t crc)
{
    struct ckpt_msg_release r;
    memset(&r, 0, sizeof(r));
    r.ino = o->attr.ino;
    r.handle = o->handle;
    r.session = ckpt_mclient_session(F.mc);
    r.wrote = 1;
    r.size = size;
    r.has_checksum = (uint8_t)has_crc;
    r.checksum = crc;
    r.mtime_sec = 1700000000;
    return ckpt_mclient_release(F.mc, &r);
}

START_TEST(test_commit_manifest_erofs)
{
    uint64_t job = mkdir_ok(CKPT_ROOT_INO, "job");
    uint64_t s1 = mkdir_ok(job, "step-1");
    uint64_t sub = mkdir_ok(s1, "sub");
    struct ckpt_msg_open_resp a, b, x;
    struct ckpt_ckpt_info info;

    ck_assert_int_eq(create(s1, "a", &a), 0);
    ck_assert_int_eq(create(sub, "b", &b), 0);
    ck_assert_int_eq(release(&b, 0, 1, 0), 0);

    /* A writer still has "a" open: commit times out, state stays WRITING. */
    uint64_t t0 = mfx_ms();
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 300, 0, &info), -ETIMEDOUT);
    ck_assert_uint_ge(mfx_ms() - t0, 250);
    ck_assert_int_eq(ckpt_cclient_info(CC, s1, &info), 0);
    ck_assert_uint_eq(info.state, CKPT_CKPT_WRITING);
    ck_assert_str_eq(info.name, "step-1");
    ck_assert_uint_eq(info.files, 2);

    /* The writer closes it: commit goes through, with the manifest. */
    ck_assert_int_eq(release(&a, 0, 1, 0), 0);
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 5000, 0, &info), 0);
    ck_assert_uint_eq(info.state, CKPT_CKPT_COMMITTED);
    ck_assert_uint_eq(info.health, CKPT_HEALTH_PROTECTED);
    ck_assert_uint_eq(info.files, 2);
    ck_assert_int_gt(info.committed_at, 0);
    /* Again: harmless, answers the same. */
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 5000, 0, &info), 0);
    ck_assert_uint_eq(info.state, CKPT_CKPT_COMMITTED);

    struct ckpt_msg_manifest_resp m;
    ck_assert_int_eq(ckpt_cclient_manifest(CC, s1, 0, 1, &m), 0);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_uint_eq(m.eof, 0);
    ck_assert_str_eq(m.v[0].path, "sub/b"); /* depth first, in creation order */
    ck_assert_uint_eq(m.v[0].ino, b.attr.ino);
    ck_assert_uint_eq(m.v[0].has_checksum, 1);
    uint64_t cookie = m.v[0].seq;
    ckpt_msg_manifest_resp_free(&m);
    ck_assert_int_eq(ckpt_cclient_manifest(CC, s1, cookie, 10, &m), 0);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_uint_eq(m.eof, 1);
    ck_assert_str_eq(m.v[0].path, "a");
    ck_assert_uint_eq(m.v[0].ino, a.attr.ino);
    ckpt_msg_manifest_resp_free(&m);

    /* Immutable through every namespace op that would change it. */
    struct ckpt_attr at;
    ck_assert_int_eq(create(s1, "new", &x), -EROFS);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, sub, "d", 0755, 0, 0, &at), -EROFS);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, a.attr.ino, O_WRONLY, &x), -EROFS);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, a.attr.ino, O_RDONLY | O_TRUNC, &x), -EROFS);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, s1, "a", job, "a", 0), -EROFS);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, job, "step-1", sub, "x", 0), -EROFS);
    ck_assert_int_eq(ckpt_mclient_symlink(F.mc, s1, "l", "a", 0, 0, &at), -EROFS);
    ck_assert_int_eq(ckpt_mclient_link(F.mc, a.attr.ino, sub, "a2", &at), -EROFS);
    struct ckpt_msg_setattr sa;
    memset(&sa, 0, sizeof(sa));
    sa.ino = a.attr.ino;
    sa.valid = CKPT_SETATTR_SIZE;
    sa.size = 10;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, &at), -EROFS);
    /* Reading is fine. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, a.attr.ino, O_RDONLY, &x), 0);
    struct ckpt_msg_release r;
    memset(&r, 0, sizeof(r));
    r.ino = x.attr.ino;
    r.handle = x.handle;
    r.session = ckpt_mclient_session(F.mc);
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);

    /* A WRITING checkpoint has no manifest; the list is newest first. */
    uint64_t s2 = mkdir_ok(job, "step-2");
    ck_assert_int_eq(ckpt_cclient_manifest(CC, s2, 0, 10, &m), -ENOENT);
    struct ckpt_msg_ckpt_list_resp l;
    ck_assert_int_eq(ckpt_cclient_list(CC, job, &l), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.v[0].name, "step-2");
    ck_assert_uint_eq(l.v[0].state, CKPT_CKPT_WRITING);
    ck_assert_str_eq(l.v[1].name, "step-1");
    ck_assert_uint_eq(l.v[1].state, CKPT_CKPT_COMMITTED);
    ckpt_msg_ckpt_list_resp_free(&l);

    /* Deleting it as a whole stays allowed. */
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, sub, "b"), 0);
    ck_assert_int_eq(ckpt_mclient_rmdir(F.mc, s1, "sub"), 0);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, s1, "a"), 0);
    ck_assert_int_eq(ckpt_mclient_rmdir(F.mc, job, "step-1"), 0);
    ck_assert_int_eq(ckpt_cclient_commit(CC, CKPT_ROOT_INO + 1000000, 100, 0, &info), -ENOENT);
}
END_TEST

static uint32_t wait_health(uint64_t ino, uint32_t want)
{
    struct ckpt_ckpt_info info;
    uint64_t end = mfx_ms() + 10000;
    do {
        ck_assert_int_eq(ckpt_cclient_info(CC, ino, &info), 0);
        if (info.health == want)
            break;
        mfx_sleep_ms(50);
    } while (mfx_ms() < end);
    return info.health;
}

START_TEST(test_health_and_sync)
{
    uint64_t job = mkdir_ok(CKPT_ROOT_INO, "job");
    uint64_t s1 = mkdir_ok(job, "s1");
    struct ckpt_msg_open_resp a;
    struct ckpt_ckpt_info info;

    /* 3 stripes of data on 4+2 over the 6 nodes. */
    ck_assert_int_eq(create(s1, "a", &a), 0);
    ck_assert_uint_eq(a.layout.k + a.layout.m, 6);
    uint64_t size = 3ull * a.layout.k * a.layout.chunk_size;
    ck_assert_int_eq(release(&a, size, 0, 0), 0);
    ck_assert_int_eq(ckpt_cclient_info(CC, s1, &info), 0);
    ck_assert_uint_eq(info.health, CKPT_HEALTH_PROTECTED);
    ck_assert_uint_eq(info.bytes, size);

    /* The fake nodes do not answer CHUNK_SYNC: the barrier fails. */
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 2000, 0, &info), -EIO);

    /* Two nodes down: every stripe misses 2 chunks: DEGRADED; a third: LOST. */
    mfx_set_alive(0, 0);
    mfx_set_alive(1, 0);
    ck_assert_uint_eq(wait_health(s1, CKPT_HEALTH_DEGRADED), CKPT_HEALTH_DEGRADED);
    ck_assert_int_eq(ckpt_cclient_info(CC, s1, &info), 0);
    ck_assert_uint_eq(info.degraded_stripes, 3);
    ck_assert_uint_eq(info.lost_stripes, 0);
    mfx_set_alive(2, 0);
    ck_assert_uint_eq(wait_health(s1, CKPT_HEALTH_LOST), CKPT_HEALTH_LOST);
    ck_assert_int_eq(ckpt_cclient_info(CC, s1, &info), 0);
    ck_assert_uint_eq(info.lost_stripes, 3);
    /* A LOST tree is never committed. */
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 2000, CKPT_COMMIT_F_ALLOW_DEGRADED, &info),
                     CKPT_E_UNRECOV);
    /* Back up: PROTECTED again. */
    mfx_set_alive(0, 1);
    mfx_set_alive(1, 1);
    mfx_set_alive(2, 1);
    ck_assert_uint_eq(wait_health(s1, CKPT_HEALTH_PROTECTED), CKPT_HEALTH_PROTECTED);
}
END_TEST

/* A writer that could not store all its bytes says so in RELEASE (lost):
 * the file is marked incomplete and its checkpoint cannot be committed
 * until the file is written again. */
START_TEST(test_lost_data_blocks_commit)
{
    uint64_t job = mkdir_ok(CKPT_ROOT_INO, "job");
    uint64_t s1 = mkdir_ok(job, "step-1");
    struct ckpt_msg_open_resp a, b, a2;
    struct ckpt_ckpt_info info;
    struct ckpt_msg_release r;
    struct ckpt_attr at;

    ck_assert_int_eq(create(s1, "a", &a), 0);
    ck_assert_int_eq(create(s1, "b", &b), 0);
    ck_assert_int_eq(release(&b, 0, 1, 0), 0);
    memset(&r, 0, sizeof(r));
    r.ino = a.attr.ino;
    r.handle = a.handle;
    r.session = ckpt_mclient_session(F.mc);
    r.wrote = 1;
    r.lost = 1;
    r.size = 4096;
    r.mtime_sec = 1700000000;
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, a.attr.ino, &at), 0);
    ck_assert_uint_eq(at.flags & CKPT_ATTR_F_INCOMPLETE, CKPT_ATTR_F_INCOMPLETE);
    ck_assert_uint_eq(at.size, 4096);
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 2000, 0, &info), CKPT_E_TORN);
    ck_assert_int_eq(ckpt_cclient_info(CC, s1, &info), 0);
    ck_assert_uint_eq(info.state, CKPT_CKPT_WRITING);
    /* Written again (O_TRUNC clears the mark): the commit goes through. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, a.attr.ino, O_WRONLY | O_TRUNC, &a2), 0);
    ck_assert_int_eq(release(&a2, 0, 1, 0), 0); /* no nodes to sync here: empty */
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, a.attr.ino, &at), 0);
    ck_assert_uint_eq(at.flags & CKPT_ATTR_F_INCOMPLETE, 0);
    ck_assert_int_eq(ckpt_cclient_commit(CC, s1, 5000, 0, &info), 0);
    ck_assert_uint_eq(info.state, CKPT_CKPT_COMMITTED);
    /* The wire: lost rides in the wrote byte; "lost" without "wrote" and
     * unknown bits are malformed. */
    uint8_t buf[128];
    struct ckpt_wbuf w;
    struct ckpt_msg_release d;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_release_encode(&w, &r), 0);
    ck_assert_int_eq(ckpt_msg_release_decode(w.p, w.len, &d), 0);
    ck_assert_uint_eq(d.wrote, 1);
    ck_assert_uint_eq(d.lost, 1);
    for (uint8_t v = 2; v < 8; v += 4) {
        ((uint8_t *)w.p)[24] = v;
        ck_assert_int_eq(ckpt_msg_release_decode(w.p, w.len, &d), CKPT_E_PROTO);
    }
    ckpt_wbuf_free(&w);
}
END_TEST

START_TEST(test_codecs)
{
    uint8_t buf[256];
    struct ckpt_wbuf w;
    struct ckpt_ckpt_info in = {.ino = 5, .state = 1, .health = 2, .files = 3, .bytes = 4,
                                .written_at = 6, .committed_at = 7, .degraded_stripes = 8,
                                .lost_stripes = 9};
    struct ckpt_ckpt_info out;
    memset(&out, 0, sizeof(out));
    snprintf(in.name, sizeof(in.name), "step-9");
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_ckpt_info_encode(&w, &in), 0);
    ck_assert_int_eq(ckpt_msg_ckpt_info_decode(w.p, w.len, &out), 0);
    ck_assert_str_eq(out.name, in.name);
    ck_assert(out.ino == 5 && out.state == 1 && out.health == 2 && out.files == 3 &&
              out.bytes == 4 && out.written_at == 6 && out.committed_at == 7 &&
              out.degraded_stripes == 8 && out.lost_stripes == 9);
    /* Every truncation is rejected. */
    for (size_t i = 0; i < w.len; i++)
        ck_assert_int_eq(ckpt_msg_ckpt_info_decode(w.p, i, &out), CKPT_E_PROTO);
    /* A bad health value is rejected. */
    in.health = CKPT_HEALTH_COUNT;
    ckpt_wbuf_free(&w);
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_ckpt_info_encode(&w, &in), 0);
    ck_assert_int_eq(ckpt_msg_ckpt_info_decode(w.p, w.len, &out), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    /* Manifest paths must stay relative and inside. */
    const char *bad[] = {"/etc/passwd", "../x", "a/../../x", "a//b", ".", "a/", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ckpt_manifest_ent e = {.seq = 1, .ino = 2, .size = 3};
        struct ckpt_msg_manifest_resp r = {1, 1, &e}, d;
        snprintf(e.path, sizeof(e.path), "%s", bad[i]);
        ckpt_wbuf_init(&w, buf, sizeof(buf));
        ck_assert_int_eq(ckpt_msg_manifest_resp_encode(&w, &r), 0);
        ck_assert_int_eq(ckpt_msg_manifest_resp_decode(w.p, w.len, &d), CKPT_E_PROTO);
        ckpt_wbuf_free(&w);
    }
    struct ckpt_manifest_ent e = {.seq = 1, .ino = 2, .size = 3, .checksum = 4,
                                  .has_checksum = 1};
    snprintf(e.path, sizeof(e.path), "rank-0/model.pt");
    struct ckpt_msg_manifest_resp r = {1, 1, &e}, d;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_manifest_resp_encode(&w, &r), 0);
    ck_assert_int_eq(ckpt_msg_manifest_resp_decode(w.p, w.len, &d), 0);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_str_eq(d.v[0].path, "rank-0/model.pt");
    ck_assert_uint_eq(d.v[0].checksum, 4);
    ckpt_msg_manifest_resp_free(&d);
    ckpt_msg_manifest_resp_free(NULL);
    ckpt_wbuf_free(&w);

    /* A hostile count cannot make the decoder allocate. */
    uint8_t hostile[8] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
    struct ckpt_msg_ckpt_list_resp l;
    ck_assert_int_eq(ckpt_msg_ckpt_list_resp_decode(hostile, sizeof(hostile), &l), CKPT_E_PROTO);
    struct ckpt_msg_ckpt_commit c = {7, 0, 0x80};
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_ckpt_commit_encode(&w, &c), 0);
    ck_assert_int_eq(ckpt_msg_ckpt_commit_decode(w.p, w.len, &c), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
}
END_TEST

Suite *meta_ckpt_suite(void)
{
    Suite *s = suite_create("meta_ckpt");
    TCase *tc = tcase_create("registry");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_commit_manifest_erofs);
    tcase_add_test(tc, test_health_and_sync);
    tcase_add_test(tc, test_lost_data_blocks_commit);
    suite_add_tcase(s, tc);
    TCase *tcc = tcase_create("codecs");
    tcase_set_timeout(tcc, 10);
    tcase_add_test(tcc, test_codecs);
    suite_add_tcase(s, tcc);
    return s;
}

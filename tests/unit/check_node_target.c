/*
 * check_node_target.c - unit tests for daemon/node_target (target identity,
 * locking, free-space reserve).
 *
 * Every test works in its own directory under a per-TCase temp dir that the
 * (unchecked, parent-side) fixture removes, so a crashing test leaves nothing
 * behind.  Identity files are damaged by hand to prove that a damaged
 * identity is refused and left as it was; the second-process lock test forks
 * a real child process.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "crc.h"
#include "err.h"
#include "node_target.h"

Suite *node_target_suite(void);

/* ---- fixture and helpers ------------------------------------------------- */

static char base_dir[PATH_MAX];

/* snprintf that fails the test instead of truncating. */
static void pathf(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt((size_t)n, cap);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void base_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    pathf(base_dir, sizeof(base_dir), "%s/ckpt_ntgt_XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void base_teardown(void)
{
    nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh (not yet existing) path under the base dir, unique per test
 * (tests of one TCase share the base dir; in fork mode each has its own
 * pid, without fork the counter separates them). */
static void fresh_path(char *dst, size_t cap, const char *name)
{
    static unsigned seq;
    pathf(dst, cap, "%s/%ld.%u.%s", base_dir, (long)getpid(), seq++, name);
}

static struct node_target_opts opts_for(const char *cluster)
{
    struct node_target_opts o;
    memset(&o, 0, sizeof(o));
    o.cluster = cluster;
    return o;
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

static void write_file(const char *path, const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void ident_path(char *dst, size_t cap, const char *dir)
{
    pathf(dst, cap, "%s/%s", dir, NODE_TARGET_IDENTITY);
}

/* Build a well-formed identity text with a correct crc. */
static size_t make_identity(char *buf, size_t cap, unsigned format,
                            const char *cluster)
{
    int n = snprintf(buf, cap,
                     "ckptfs-target\nformat %u\ncluster %s\n"
                     "node_uuid 01234567-89ab-4cde-8f01-23456789abcd\n"
                     "node_id 3\ntarget_id 9\n",
                     format, cluster);
    uint32_t crc = ckpt_crc32c(0, buf, (size_t)n);
    n += snprintf(buf + n, cap - (size_t)n, "crc32c %08" PRIx32 "\n", crc);
    return (size_t)n;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_create_and_reopen)
{
    char dir[PATH_MAX], ip[PATH_MAX], text[1024];
    struct node_target_opts o = opts_for("alpha");
    struct node_target_ids ids, ids2;
    node_target *t = NULL;
    long live0 = ckpt_alloc_live();

    fresh_path(dir, sizeof(dir), "t0");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_get_ids(t, &ids);
    ck_assert_uint_eq(ids.format, NODE_TARGET_FORMAT);
    ck_assert_str_eq(ids.cluster, "alpha");
    ck_assert_uint_eq(ids.node_id, 0);
    ck_assert_uint_eq(ids.target_id, 0);
    static const uint8_t zero[NODE_TARGET_UUID_LEN];
    ck_assert_mem_ne(ids.node_uuid, zero, NODE_TARGET_UUID_LEN);
    ck_assert_uint_eq(ids.node_uuid[6] >> 4, 4); /* version 4 uuid */
    ck_assert_str_eq(node_target_path(t), dir);

    /* The layout exists and the identity is readable text. */
    char sub[PATH_MAX + 16];
    struct stat st;
    pathf(sub, sizeof(sub), "%s/%s", dir, NODE_TARGET_CHUNKDIR);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ident_path(ip, sizeof(ip), dir);
    read_file(ip, text, sizeof(text));
    ck_assert_ptr_nonnull(strstr(text, "cluster alpha\n"));
    ck_assert_ptr_nonnull(strstr(text, "node_id 0\n"));

    ck_assert_int_eq(node_target_set_ids(t, 7, 42), 0);
    node_target_get_ids(t, &ids2);
    ck_assert_uint_eq(ids2.node_id, 7);
    ck_assert_uint_eq(ids2.target_id, 42);
    node_target_close(t);
    t = NULL;

    /* Reopen (also with NOCREATE): ids and uuid are kept; a uuid passed in
     * opts is ignored for an existing identity. */
    uint8_t other[NODE_TARGET_UUID_LEN];
    memset(other, 0xab, sizeof(other));
    o.node_uuid = other;
    o.flags = NODE_TARGET_F_NOCREATE;
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_get_ids(t, &ids2);
    ck_assert_uint_eq(ids2.node_id, 7);
    ck_assert_uint_eq(ids2.target_id, 42);
    ck_assert_mem_eq(ids2.node_uuid, ids.node_uuid, NODE_TARGET_UUID_LEN);
    node_target_close(t);
    node_target_close(NULL);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

START_TEST(test_given_uuid_and_empty_dirs)
{
    char dir[PATH_MAX], sub[PATH_MAX + 16];
    struct node_target_opts o = opts_for("alpha");
    struct node_target_ids ids;
    uint8_t uuid[NODE_TARGET_UUID_LEN];
    node_target *t = NULL;

    /* An existing empty directory with lost+found (a fresh mkfs) is fine,
     * and the uuid given for a new identity is the one written. */
    fresh_path(dir, sizeof(dir), "t1");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    pathf(sub, sizeof(sub), "%s/lost+found", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(node_target_uuid_generate(uuid), 0);
    o.node_uuid = uuid;
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_get_ids(t, &ids);
    ck_assert_mem_eq(ids.node_uuid, uuid, NODE_TARGET_UUID_LEN);
    node_target_close(t);

    /* What an interrupted creation leaves (lock file, empty chunks/, identity
     * tmp) is accepted too. */
    fresh_path(dir, sizeof(dir), "t2");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    pathf(sub, sizeof(sub), "%s/%s", dir, NODE_TARGET_CHUNKDIR);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    pathf(sub, sizeof(sub), "%s/%s", dir, NODE_TARGET_LOCKFILE);
    write_file(sub, "123\n", 4);
    pathf(sub, sizeof(sub), "%s/%s.tmp", dir, NODE_TARGET_IDENTITY);
    write_file(sub, "half", 4);
    o.node_uuid = NULL;
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    ck_assert_int_eq(access(sub, F_OK), -1); /* identity tmp removed */
    node_target_close(t);
}
END_TEST

START_TEST(test_foreign_dirs_refused)
{
    char dir[PATH_MAX], sub[PATH_MAX + 32];
    struct node_target_opts o = opts_for("alpha");
    node_target *t = NULL;
    long live0 = ckpt_alloc_live();

    /* A directory with someone's files is not adopted. */
    fresh_path(dir, sizeof(dir), "home");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    pathf(sub, sizeof(sub), "%s/notes.txt", dir);
    write_file(sub, "hello", 5);
    ck_assert_int_eq(node_target_open(dir, &o, &t), -ENOTEMPTY);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(access(sub, F_OK), 0);

    /* Chunks without an identity: refused, never reinitialised. */
    fresh_path(dir, sizeof(dir), "lost_ident");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    pathf(sub, sizeof(sub), "%s/%s", dir, NODE_TARGET_CHUNKDIR);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    pathf(sub, sizeof(sub), "%s/%s/00", dir, NODE_TARGET_CHUNKDIR);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(node_target_open(dir, &o, &t), -ENOTEMPTY);
    char ip[PATH_MAX];
    ident_path(ip, sizeof(ip), dir);
    ck_assert_int_eq(access(ip, F_OK), -1);

    /* NOCREATE: a missing or empty directory is not a target. */
    fresh_path(dir, sizeof(dir), "nothing");
    o.flags = NODE_TARGET_F_NOCREATE;
    ck_assert_int_eq(node_target_open(dir, &o, &t), -ENOENT);
    ck_assert_int_eq(access(dir, F_OK), -1);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(node_target_open(dir, &o, &t), -ENOENT);

    /* A missing parent directory. */
    o.flags = 0;
    fresh_path(dir, sizeof(dir), "no/such/parent");
    ck_assert_int_eq(node_target_open(dir, &o, &t), -ENOENT);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

START_TEST(test_bad_args)
{
    char dir[PATH_MAX];
    struct node_target_opts o = opts_for("alpha");
    node_target *t = NULL;
    static const char *bad[] = {"", "has space", "slash/name", "new\nline",
                                "x1234567890123456789012345678901234567890"
                                "12345678901234567890123"};
    fresh_path(dir, sizeof(dir), "args");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.cluster = bad[i];
        ck_assert_int_eq(node_target_open(dir, &o, &t), -EINVAL);
    }
    o.cluster = NULL;
    ck_assert_int_eq(node_target_open(dir, &o, &t), -EINVAL);
    o.cluster = "ok_name-1.2";
    o.reserve_pct = 101;
    ck_assert_int_eq(node_target_open(dir, &o, &t), -EINVAL);
    ck_assert_int_eq(node_target_open(NULL, &o, &t), -EINVAL);
    ck_assert_int_eq(node_target_open(dir, NULL, &t), -EINVAL);
    o.reserve_pct = 0;
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    ck_assert_int_eq(node_target_set_reserve(t, 0, 101), -EINVAL);
    node_target_close(t);
}
END_TEST

START_TEST(test_other_cluster_refused)
{
    char dir[PATH_MAX], ip[PATH_MAX], before[1024], after[1024];
    struct node_target_opts o = opts_for("alpha");
    node_target *t = NULL;

    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    ck_assert_int_eq(node_target_set_ids(t, 1, 2), 0);
    node_target_close(t);
    t = NULL;
    ident_path(ip, sizeof(ip), dir);
    size_t n1 = read_file(ip, before, sizeof(before));

    o.cluster = "beta";
    ck_assert_int_eq(node_target_open(dir, &o, &t), CKPT_E_CLUSTER);
    ck_assert_ptr_null(t);
    size_t n2 = read_file(ip, after, sizeof(after));
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(before, after, n1);

    /* The refusal does not leave the target locked. */
    o.cluster = "alpha";
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_close(t);
}
END_TEST

/* Replace the identity with text, open, expect rc, and check the file was
 * left exactly as it was. */
static void expect_refused(const char *dir, const char *text, size_t len,
                           int want)
{
    char ip[PATH_MAX], after[16384];
    struct node_target_opts o = opts_for("alpha");
    node_target *t = NULL;
    long live0 = ckpt_alloc_live();

    ident_path(ip, sizeof(ip), dir);
    write_file(ip, text, len);
    ck_assert_int_eq(node_target_open(dir, &o, &t), want);
    ck_assert_ptr_null(t);
    size_t n = read_file(ip, after, sizeof(after));
    ck_assert_uint_eq(n, len);
    ck_assert_mem_eq(after, text, len);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}

START_TEST(test_corrupt_identity_refused)
{
    char dir[PATH_MAX], ip[PATH_MAX], good[1024], text[8192];
    struct node_target_opts o = opts_for("alpha");
    node_target *t = NULL;

    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_close(t);
    ident_path(ip, sizeof(ip), dir);
    size_t n = read_file(ip, good, sizeof(good));

    /* One flipped bit in the cluster name: crc mismatch. */
    memcpy(text, good, n);
    char *c = strstr(text, "cluster alpha");
    ck_assert_ptr_nonnull(c);
    c[8] ^= 0x01;
    expect_refused(dir, text, n, CKPT_E_CRC);

    /* A flipped crc digit. */
    memcpy(text, good, n);
    text[n - 2] = text[n - 2] == '0' ? '1' : '0';
    expect_refused(dir, text, n, CKPT_E_CRC);

    /* Truncated halfway, empty, garbage, NUL bytes, oversized. */
    expect_refused(dir, good, n / 2, CKPT_E_TORN);
    expect_refused(dir, "", 0, CKPT_E_TORN);
    expect_refused(dir, "\x7f" "ELF\x02\x01\x01 garbage", 16, CKPT_E_TORN);
    memcpy(text, good, n);
    text[3] = '\0';
    expect_refused(dir, text, n, CKPT_E_TORN);
    memset(text, 'x', sizeof(text));
    expect_refused(dir, text, sizeof(text), CKPT_E_TORN);

    /* Well-formed with a good crc but a format from the future. */
    size_t m = make_identity(text, sizeof(text), 2, "alpha");
    expect_refused(dir, text, m, CKPT_E_VERSION);

    /* Good crc over a bad cluster line (strict parse). */
    m = make_identity(text, sizeof(text), 1, "al pha");
    expect_refused(dir, text, m, CKPT_E_TORN);

    /* Our reference builder matches the real parser: version 1 opens. */
    m = make_identity(text, sizeof(text), 1, "alpha");
    write_file(ip, text, m);
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    struct node_target_ids ids;
    node_target_get_ids(t, &ids);
    ck_assert_uint_eq(ids.node_id, 3);
    ck_assert_uint_eq(ids.target_id, 9);
    char u[NODE_TARGET_UUID_STRLEN];
    node_target_uuid_format(ids.node_uuid, u);
    ck_assert_str_eq(u, "01234567-89ab-4cde-8f01-23456789abcd");
    node_target_close(t);
}
END_TEST

START_TEST(test_second_open_busy)
{
    char dir[PATH_MAX];
    struct node_target_opts o = opts_for("alpha");
    node_target *t = NULL, *t2 = NULL;

    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    /* Same process, second handle. */
    ck_assert_int_eq(node_target_open(dir, &o, &t2), -EBUSY);
    ck_assert_ptr_null(t2);

    /* Another process (a second ckpt-node). */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        node_target *c = NULL;
        int rc = node_target_open(dir, &o, &c);
        _exit(rc == -EBUSY ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);

    /* The lock file names the holder. */
    char lp[PATH_MAX + 32], buf[64];
    pathf(lp, sizeof(lp), "%s/%s", dir, NODE_TARGET_LOCKFILE);
    read_file(lp, buf, sizeof(buf));
    ck_assert_int_eq(atol(buf), (long)getpid());

    node_target_close(t);
    ck_assert_int_eq(node_target_open(dir, &o, &t2), 0);
    node_target_close(t2);
}
END_TEST

START_TEST(test_set_ids_faults)
{
    char dir[PATH_MAX];
    struct node_target_opts o = opts_for("alpha");
    struct node_target_ids ids;
    node_target *t = NULL;
    static const enum ckpt_fault_site sites[] = {CKPT_FAULT_WRITE,
                                                 CKPT_FAULT_FSYNC};
    uint32_t cur = 1; /* node id on disk */

    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    ck_assert_int_eq(node_target_set_ids(t, cur, 100), 0);
    for (size_t si = 0; si < 2; si++) {
        for (long nth = 1;; nth++) {
            long live0 = ckpt_alloc_live();
            uint32_t want = cur + 1;
            ckpt_fault_arm(sites[si], nth);
            int rc = node_target_set_ids(t, want, 100);
            bool fired = ckpt_fault_fired(sites[si]);
            ckpt_fault_disarm_all();
            ck_assert_int_eq(ckpt_alloc_live(), live0);
            if (!fired) {
                ck_assert_int_eq(rc, 0);
                cur = want;
                break;
            }
            ck_assert_int_eq(rc, -EIO);
            /* Memory keeps the old ids; disk has old, or new when the
             * failure was the directory fsync after the rename. */
            node_target_get_ids(t, &ids);
            ck_assert_uint_eq(ids.node_id, cur);
            node_target_close(t);
            ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
            node_target_get_ids(t, &ids);
            bool after_rename = sites[si] == CKPT_FAULT_FSYNC && nth == 2;
            ck_assert_uint_eq(ids.node_id, after_rename ? want : cur);
            cur = ids.node_id;
            ck_assert_int_lt(nth, 10);
        }
    }
    node_target_get_ids(t, &ids);
    ck_assert_uint_eq(ids.node_id, cur);
    ck_assert_uint_eq(cur, 4); /* write walk: +1; fsync walk: +1 +1 */
    node_target_close(t);

    /* An injected read fault on the identity is a clean error. */
    ckpt_fault_arm(CKPT_FAULT_READ, 1);
    t = NULL;
    ck_assert_int_eq(node_target_open(dir, &o, &t), -EIO);
    ckpt_fault_disarm_all();
    ck_assert_ptr_null(t);
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    node_target_close(t);
}
END_TEST

START_TEST(test_reserve)
{
    char dir[PATH_MAX];
    struct node_target_opts o = opts_for("alpha");
    struct node_target_stats st;
    node_target *t = NULL;
    const uint64_t MiB = 1u << 20;

    /* No automatic refresh: every change of the estimate below is ours. */
    o.refresh_ms = UINT32_MAX;
    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    ck_assert_int_eq(node_target_stats(t, &st), 0);
    ck_assert_uint_gt(st.capacity_bytes, 0);
    ck_assert_uint_le(st.free_bytes, st.capacity_bytes);
    ck_assert_uint_gt(st.free_bytes, 8 * MiB);
    ck_assert_uint_eq(st.reserve_bytes, 0);
    ck_assert_uint_eq(st.usable_bytes, st.free_bytes);

    /* Room for exactly 3 MiB above the reserve. */
    ck_assert_int_eq(node_target_set_reserve(t, st.free_bytes - 3 * MiB, 0),
                     0);
    ck_assert_int_eq(node_target_reserve_check(t, MiB), 0);
    ck_assert_int_eq(node_target_reserve_check(t, MiB), 0);
    ck_assert_int_eq(node_target_reserve_check(t, MiB + 1), -ENOSPC);
    ck_assert_int_eq(node_target_reserve_check(t, MiB), 0);
    ck_assert_int_eq(node_target_reserve_check(t, 1), -ENOSPC);
    node_target_space_release(t, 2 * MiB); /* e.g. two chunks deleted */
    ck_assert_int_eq(node_target_reserve_check(t, 2 * MiB + 1), -ENOSPC);
    ck_assert_int_eq(node_target_reserve_check(t, 2 * MiB), 0);
    ck_assert_int_eq(node_target_reserve_check(t, UINT64_MAX), -ENOSPC);

    /* Percent of capacity; the larger of bytes and percent applies. */
    ck_assert_int_eq(node_target_set_reserve(t, 0, 100), 0);
    node_target_space_release(t, 16 * MiB);
    ck_assert_int_eq(node_target_reserve_check(t, 1), -ENOSPC);
    ck_assert_int_eq(node_target_set_reserve(t, 0, 0), 0);
    ck_assert_int_eq(node_target_reserve_check(t, 1), 0);
    ck_assert_int_eq(node_target_stats(t, &st), 0);
    uint64_t pct_reserve = st.capacity_bytes / 100 * 3;
    ck_assert_int_eq(node_target_set_reserve(t, 1, 3), 0);
    ck_assert_int_eq(node_target_stats(t, &st), 0);
    ck_assert_uint_ge(st.reserve_bytes, pct_reserve);
    ck_assert_uint_le(st.reserve_bytes, pct_reserve + 100);
    ck_assert_int_eq(node_target_set_reserve(t, st.capacity_bytes, 3), 0);
    ck_assert_int_eq(node_target_stats(t, &st), 0);
    ck_assert_uint_eq(st.reserve_bytes, st.capacity_bytes);
    ck_assert_uint_eq(st.usable_bytes, 0);
    node_target_close(t);
}
END_TEST

START_TEST(test_reserve_refresh)
{
    char dir[PATH_MAX], big[PATH_MAX + 16];
    struct node_target_opts o = opts_for("alpha");
    struct node_target_stats st;
    node_target *t = NULL;
    const uint64_t MiB = 1u << 20;

    /* With a 1 ms refresh interval, space taken behind the target's back
     * (64 MiB written directly) is seen by the next check.  The reserve is
     * set 32 MiB below the free space, but other programs on this
     * filesystem move free space too (a journal commit of earlier deletes
     * can free hundreds of MiB at once), so an attempt where the check
     * still passes is repeated with fresh figures; a target that never
     * refreshes never sees -ENOSPC and fails all of them. */
    o.refresh_ms = 1;
    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    pathf(big, sizeof(big), "%s/filler", dir);
    int seen_enospc = 0;
    for (int attempt = 0; attempt < 5 && !seen_enospc; attempt++) {
        ck_assert_int_eq(node_target_stats(t, &st), 0);
        ck_assert_uint_gt(st.free_bytes, 256 * MiB);
        ck_assert_int_eq(node_target_set_reserve(t, st.free_bytes - 32 * MiB, 0), 0);
        if (node_target_reserve_check(t, 4096) != 0)
            continue; /* someone else took the 32 MiB meanwhile: again */
        int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(posix_fallocate(fd, 0, (off_t)(64 * MiB)), 0);
        ck_assert_int_eq(fsync(fd), 0);
        close(fd);
        /* The contract under test is time-based: let the interval pass. */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        seen_enospc = node_target_reserve_check(t, 4096) == -ENOSPC;
        ck_assert_int_eq(unlink(big), 0);
    }
    ck_assert_msg(seen_enospc, "64 MiB written behind the target's back never crossed the reserve");
    node_target_close(t);
}
END_TEST

START_TEST(test_stats_and_store_claim)
{
    char dir[PATH_MAX];
    struct node_target_opts o = opts_for("alpha");
    struct node_target_stats st;
    node_target *t = NULL;

    fresh_path(dir, sizeof(dir), "t");
    ck_assert_int_eq(node_target_open(dir, &o, &t), 0);
    ck_assert_int_eq(node_target_claim_store(t), 0);
    ck_assert_int_eq(node_target_claim_store(t), -EBUSY);
    node_target_chunks_account(t, 3, 3 * 8192);
    node_target_chunks_account(t, -1, -8192);
    ck_assert_int_eq(node_target_stats(t, &st), 0);
    ck_assert_uint_eq(st.chunk_count, 2);
    ck_assert_uint_eq(st.chunk_bytes, 2 * 8192);
    node_target_release_store(t);
    ck_assert_int_eq(node_target_stats(t, &st), 0);
    ck_assert_uint_eq(st.chunk_count, 0);
    ck_assert_uint_eq(st.chunk_bytes, 0);
    ck_assert_int_eq(node_target_claim_store(t), 0);
    node_target_release_store(t);
    node_target_close(t);
}
END_TEST

START_TEST(test_uuid_text)
{
    uint8_t u[NODE_TARGET_UUID_LEN], v[NODE_TARGET_UUID_LEN];
    char s[NODE_TARGET_UUID_STRLEN];
    for (int i = 0; i < 32; i++) {
        ck_assert_int_eq(node_target_uuid_generate(u), 0);
        node_target_uuid_format(u, s);
        ck_assert_uint_eq(strlen(s), 36);
        ck_assert_int_eq(s[14], '4');
        ck_assert_int_eq(node_target_uuid_parse(s, v), 0);
        ck_assert_mem_eq(u, v, sizeof(u));
    }
    ck_assert_int_eq(node_target_uuid_generate(v), 0);
    ck_assert_mem_ne(u, v, sizeof(u));
    ck_assert_int_eq(node_target_uuid_parse("01234567-89ab-4cde-8f01-23456789abc",
                                            v), -EINVAL);
    ck_assert_int_eq(node_target_uuid_parse("01234567x89ab-4cde-8f01-23456789abcd",
                                            v), -EINVAL);
    ck_assert_int_eq(node_target_uuid_parse("0123456g-89ab-4cde-8f01-23456789abcd",
                                            v), -EINVAL);
    ck_assert_int_eq(node_target_uuid_parse(NULL, v), -EINVAL);
}
END_TEST

Suite *node_target_suite(void)
{
    Suite *s = suite_create("node_target");
    TCase *tc = tcase_create("target");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_create_and_reopen);
    tcase_add_test(tc, test_given_uuid_and_empty_dirs);
    tcase_add_test(tc, test_foreign_dirs_refused);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_other_cluster_refused);
    tcase_add_test(tc, test_corrupt_identity_refused);
    tcase_add_test(tc, test_second_open_busy);
    tcase_add_test(tc, test_set_ids_faults);
    tcase_add_test(tc, test_reserve);
    tcase_add_test(tc, test_reserve_refresh);
    tcase_add_test(tc, test_stats_and_store_claim);
    tcase_add_test(tc, test_uuid_text);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_node_chunk.c - unit tests for daemon/node_chunk (the chunk store).
 *
 * Data is generated from (key, generation) by a seeded PRNG, so any chunk
 * read back can be checked byte for byte against what its generation must
 * contain.  Damage is done by hand to real chunk files (truncate, flip a
 * byte of header or data, garbage, another chunk's file) and must be
 * reported as CKPT_E_TORN / CKPT_E_CRC, never returned as data.  Disk errors
 * come from the fault-injection table (ckpt_fault_arm), walked N = 1, 2, ...
 * until the operation succeeds; after each failure the previous version
 * must still read back and no allocation may leak.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "crc.h"
#include "err.h"
#include "log.h"
#include "node_chunk.h"
#include "node_target.h"

Suite *node_chunk_suite(void);

#define MiB (1u << 20)

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
    pathf(base_dir, sizeof(base_dir), "%s/ckpt_nchk_XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void base_teardown(void)
{
    nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct env {
    char dir[PATH_MAX];
    node_target *t;
    node_chunk_store *s;
};

static void env_open_store(struct env *e, enum node_chunk_sync sync,
                           uint32_t syncfs_min)
{
    struct node_chunk_opts co = {.sync = sync, .syncfs_min_files = syncfs_min};
    ck_assert_int_eq(node_chunk_store_open(e->t, &co, &e->s), 0);
}

static void env_open(struct env *e, enum node_chunk_sync sync)
{
    static unsigned seq;
    struct node_target_opts o;
    memset(&o, 0, sizeof(o));
    o.cluster = "test";
    pathf(e->dir, sizeof(e->dir), "%s/%ld.%u", base_dir, (long)getpid(),
             seq++);
    ck_assert_int_eq(node_target_open(e->dir, &o, &e->t), 0);
    env_open_store(e, sync, 0);
}

static void env_close(struct env *e)
{
    node_chunk_store_close(e->s);
    node_target_close(e->t);
    e->s = NULL;
    e->t = NULL;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* The content of chunk key at generation gen, len bytes. */
static void fill(uint8_t *p, size_t len, const struct node_chunk_key *k,
                 uint64_t gen)
{
    uint64_t s = (k->ino * 1000003u) ^ (k->stripe << 20) ^
                 ((uint64_t)k->index << 40) ^ (gen * 0x9E3779B97F4A7C15ull) ^ 1;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] = (uint8_t)rng_next(&s);
}

static int put(node_chunk_store *s, const struct node_chunk_key *k,
               uint64_t gen, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return node_chunk_write(s, k, gen, &iov, 1, ckpt_crc32c(0, buf, len));
}

/* Write chunk k at gen with its generated content of len bytes. */
static int put_gen(node_chunk_store *s, const struct node_chunk_key *k,
                   uint64_t gen, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(b);
    fill(b, len, k, gen);
    int rc = put(s, k, gen, b, len);
    free(b);
    return rc;
}

/* Read chunk k fully and check it is generation gen with len bytes. */
static void expect_chunk(node_chunk_store *s, const struct node_chunk_key *k,
                         uint64_t gen, size_t len)
{
    uint8_t *want = malloc(len ? len : 1), *got = malloc(len + 1);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    fill(want, len, k, gen);
    uint64_t g = 0;
    uint32_t l = 0;
    ssize_t n = node_chunk_read(s, k, 0, got, (uint32_t)len + 1, &g, &l);
    ck_assert_int_eq(n, (ssize_t)len);
    ck_assert_uint_eq(g, gen);
    ck_assert_uint_eq(l, len);
    ck_assert_mem_eq(got, want, len);
    free(want);
    free(got);
}

static void chunk_file(struct env *e, const struct node_chunk_key *k,
                       char *dst, size_t cap)
{
    ck_assert_int_gt(node_chunk_path(e->s, k, dst, cap), 0);
}

/* Count entries of the inode directory of ino whose name contains sub. */
static int count_in_inode_dir(struct env *e, uint64_t ino, const char *sub)
{
    char p[PATH_MAX + 64];
    pathf(p, sizeof(p), "%s/chunks/%02x/%016" PRIx64, e->dir,
             (unsigned)(ino & 0xff), ino);
    char cmd[PATH_MAX + 128];
    pathf(cmd, sizeof(cmd), "ls -a '%s' 2>/dev/null | grep -c -F -- '%s'",
             p, sub);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    int n = -1;
    ck_assert_int_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static struct node_target_stats tstats(struct env *e)
{
    struct node_target_stats st;
    ck_assert_int_eq(node_target_stats(e->t, &st), 0);
    return st;
}

static struct node_chunk_store_stats sstats(struct env *e)
{
    struct node_chunk_store_stats st;
    node_chunk_store_stats(e->s, &st);
    return st;
}

/* ---- round trip ---------------------------------------------------------- */

START_TEST(test_roundtrip)
{
    struct env e;
    uint64_t seed = 12345;
    enum { N = 24 };
    static const uint32_t fixed[] = {1, 4095, 4096, 4097, 4 * MiB, 65536};
    uint32_t lens[N];
    uint64_t gens[N];
    struct node_chunk_key keys[N];
    long live0 = ckpt_alloc_live();

    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    uint8_t *buf = malloc(4 * MiB + 1), *out = malloc(4 * MiB + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(out);
    uint64_t disk = 0;
    for (int i = 0; i < N; i++) {
        keys[i] = (struct node_chunk_key){.ino = 1000 + (uint64_t)i % 5,
                                          .stripe = rng_next(&seed) >> 20,
                                          .index = (uint16_t)(i % 6)};
        lens[i] = i < 6 ? fixed[i] : 1 + (uint32_t)(rng_next(&seed) % (4 * MiB));
        gens[i] = rng_next(&seed) >> 1;
        fill(buf, lens[i], &keys[i], gens[i]);
        if (i % 3 == 0) {
            /* several iovecs, one of them empty */
            uint32_t a = lens[i] / 3, b = lens[i] / 2;
            struct iovec iov[4] = {{buf, a}, {buf + a, 0}, {buf + a, b - a},
                                   {buf + b, lens[i] - b}};
            ck_assert_int_eq(node_chunk_write(e.s, &keys[i], gens[i], iov, 4,
                                              ckpt_crc32c(0, buf, lens[i])),
                             0);
        } else {
            ck_assert_int_eq(put(e.s, &keys[i], gens[i], buf, lens[i]), 0);
        }
        disk += 4096 + ((lens[i] + 4095u) & ~4095u);
    }
    for (int i = 0; i < N; i++) {
        expect_chunk(e.s, &keys[i], gens[i], lens[i]);
        struct node_chunk_info info;
        ck_assert_int_eq(node_chunk_stat(e.s, &keys[i], &info), 0);
        ck_assert_uint_eq(info.gen, gens[i]);
        ck_assert_uint_eq(info.len, lens[i]);
        ck_assert_uint_eq(info.stored_len, lens[i]);
        ck_assert_uint_eq(info.encoding, NODE_CHUNK_ENC_RAW);
        fill(buf, lens[i], &keys[i], gens[i]);
        ck_assert_uint_eq(info.crc, ckpt_crc32c(0, buf, lens[i]));

        /* Range reads, including ones running past the end. */
        for (int r = 0; r < 4; r++) {
            uint32_t off = (uint32_t)(rng_next(&seed) % (lens[i] + 1));
            uint32_t len = (uint32_t)(rng_next(&seed) % (lens[i] + 10));
            uint32_t want = off >= lens[i] ? 0
                            : (len < lens[i] - off ? len : lens[i] - off);
            uint64_t g = 0;
            uint32_t l = 0;
            ssize_t n = node_chunk_read(e.s, &keys[i], off, out, len, &g, &l);
            ck_assert_int_eq(n, (ssize_t)want);
            ck_assert_uint_eq(g, gens[i]);
            ck_assert_uint_eq(l, lens[i]);
            ck_assert_mem_eq(out, buf + off, want);
        }
        /* Past the end: 0 bytes (the client zero-pads, not the store). */
        ck_assert_int_eq(node_chunk_read(e.s, &keys[i], lens[i], out, 100,
                                         NULL, NULL), 0);
        ck_assert_int_eq(node_chunk_read(e.s, &keys[i], UINT32_MAX, out, 100,
                                         NULL, NULL), 0);
    }

    /* A zero-length chunk. */
    struct node_chunk_key z = {.ino = 7, .stripe = 0, .index = 0};
    ck_assert_int_eq(node_chunk_write(e.s, &z, 1, NULL, 0, 0), 0);
    ck_assert_int_eq(node_chunk_read(e.s, &z, 0, out, 10, NULL, NULL), 0);
    expect_chunk(e.s, &z, 1, 0);
    disk += 4096;

    /* Overwrite: same generation (idempotent retry), then newer, shorter. */
    ck_assert_int_eq(put_gen(e.s, &keys[6], gens[6], lens[6]), 0);
    expect_chunk(e.s, &keys[6], gens[6], lens[6]);
    ck_assert_int_eq(put_gen(e.s, &keys[6], gens[6] + 1, 100), 0);
    expect_chunk(e.s, &keys[6], gens[6] + 1, 100);
    disk -= (lens[6] + 4095u) & ~4095u;
    disk += 4096;

    struct node_target_stats st = tstats(&e);
    ck_assert_uint_eq(st.chunk_count, N + 1);
    ck_assert_uint_eq(st.chunk_bytes, disk);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0);

    /* Reopen the store: everything is still there and counted the same. */
    node_chunk_store_close(e.s);
    env_open_store(&e, NODE_CHUNK_SYNC_COMMIT, 0);
    st = tstats(&e);
    ck_assert_uint_eq(st.chunk_count, N + 1);
    ck_assert_uint_eq(st.chunk_bytes, disk);
    ck_assert_uint_eq(sstats(&e).chunks_found, N + 1);
    expect_chunk(e.s, &keys[0], gens[0], lens[0]);
    expect_chunk(e.s, &keys[N - 1], gens[N - 1], lens[N - 1]);
    env_close(&e);
    free(buf);
    free(out);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

/* Large chunks in page-aligned buffers (how the service receives them)
 * are written with O_DIRECT where the filesystem allows it, the unaligned
 * tail buffered: every size reads back exact, the files have their exact
 * size, and a reopened store accepts them. */
START_TEST(test_direct_writes)
{
    struct env e;
    static const size_t sizes[] = {1u << 20, (1u << 20) - 1000, 64u << 10, (64u << 10) + 1,
                                   200u << 10, (64u << 10) - 1, 4096};
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);
    uint8_t *buf = NULL;

    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    bool direct = sstats(&e).direct;
    ck_assert_int_eq(posix_memalign((void **)&buf, 4096, (1u << 20) + 4096), 0);
    for (int pass = 1; pass <= 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            struct node_chunk_key k = {.ino = 77, .stripe = i, .index = 1};
            fill(buf, sizes[i], &k, (uint64_t)pass);
            ck_assert_int_eq(put(e.s, &k, (uint64_t)pass, buf, sizes[i]), 0);
            char path[PATH_MAX];
            struct stat st;
            chunk_file(&e, &k, path, sizeof(path));
            ck_assert_int_eq(stat(path, &st), 0);
            ck_assert_int_eq(st.st_size, (off_t)(NODE_CHUNK_DATA_OFF + sizes[i]));
            expect_chunk(e.s, &k, (uint64_t)pass, sizes[i]);
        }
    }
    /* Large ones direct (twice each: both passes), the small ones not. */
    ck_assert_uint_eq(sstats(&e).direct_writes, direct ? 2u * 5u : 0u);
    /* Whole-chunk reads into an aligned buffer with room for the last
     * block read directly; a buffer without that room, or unaligned, or a
     * range, is read through the page cache.  All bytes equal. */
    uint8_t *want = malloc(1u << 20);
    ck_assert_ptr_nonnull(want);
    uint64_t direct_reads = 0;
    for (size_t i = 0; i < n; i++) {
        struct node_chunk_key k = {.ino = 77, .stripe = i, .index = 1};
        uint32_t room = (uint32_t)((sizes[i] + 4095) & ~(size_t)4095);
        fill(want, sizes[i], &k, 2);
        struct node_chunk_reader rd;
        uint32_t crc = 0;
        ck_assert_int_eq(node_chunk_open_read(e.s, &k, &rd), 0);
        memset(buf, 0xee, 1u << 20);
        ck_assert_int_eq(node_chunk_read_from(e.s, &rd, 0, buf, (uint32_t)sizes[i], room, &crc),
                         (ssize_t)sizes[i]);
        ck_assert_mem_eq(buf, want, sizes[i]);
        ck_assert_uint_eq(crc, ckpt_crc32c(0, want, sizes[i]));
        direct_reads += sizes[i] >= (64u << 10);
        node_chunk_close_read(&rd);
        ck_assert_int_eq(node_chunk_open_read(e.s, &k, &rd), 0);
        memset(buf, 0xee, 1u << 20);
        ck_assert_int_eq(node_chunk_read_from(e.s, &rd, 0, buf + 512, (uint32_t)sizes[i], room, NULL),
                         (ssize_t)sizes[i]);
        ck_assert_mem_eq(buf + 512, want, sizes[i]);
        ck_assert_int_eq(node_chunk_read_from(e.s, &rd, 100, buf, 1000, 4096, NULL), 1000);
        ck_assert_mem_eq(buf, want + 100, 1000);
        node_chunk_close_read(&rd);
    }
    ck_assert_uint_eq(sstats(&e).direct_reads, direct ? direct_reads : 0u);
    free(want);
    if (!direct)
        fprintf(stderr, "test_direct_writes: %s takes no O_DIRECT: buffered path only\n",
                e.dir);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0);
    node_chunk_store_close(e.s);
    env_open_store(&e, NODE_CHUNK_SYNC_COMMIT, 0);
    ck_assert_uint_eq(sstats(&e).chunks_found, n);
    for (size_t i = 0; i < n; i++) {
        struct node_chunk_key k = {.ino = 77, .stripe = i, .index = 1};
        expect_chunk(e.s, &k, 2, sizes[i]);
    }
    free(buf);
    env_close(&e);
}
END_TEST

START_TEST(test_bad_args)
{
    struct env e;
    uint8_t b[16] = {0};
    struct node_chunk_key k = {.ino = 1, .stripe = 2, .index = 3};
    enum node_chunk_sync sy;

    env_open(&e, NODE_CHUNK_SYNC_NEVER);
    struct iovec big[2] = {{b, 1}, {b, NODE_CHUNK_MAX_LEN}};
    ck_assert_int_eq(node_chunk_write(e.s, &k, 1, big, 2, 0), -EINVAL);
    ck_assert_int_eq(node_chunk_write(e.s, &k, 1, big, -1, 0), -EINVAL);
    ck_assert_int_eq(node_chunk_write(e.s, &k, 1, NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(node_chunk_write(e.s, NULL, 1, big, 1, 0), -EINVAL);
    ck_assert_int_eq(node_chunk_read(e.s, &k, 0, NULL, 1, NULL, NULL), -EINVAL);
    ck_assert_int_eq(node_chunk_read(e.s, &k, 0, b, 1, NULL, NULL), -ENOENT);
    struct node_chunk_info info;
    ck_assert_int_eq(node_chunk_stat(e.s, &k, &info), -ENOENT);
    ck_assert_int_eq(node_chunk_delete(e.s, &k, 0), -ENOENT);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 3), -EINVAL);

    /* A maximum-length chunk is accepted. */
    uint8_t *m = malloc(NODE_CHUNK_MAX_LEN);
    ck_assert_ptr_nonnull(m);
    memset(m, 0x5a, NODE_CHUNK_MAX_LEN);
    ck_assert_int_eq(put(e.s, &k, 1, m, NODE_CHUNK_MAX_LEN), 0);
    ck_assert_int_eq(node_chunk_read(e.s, &k, NODE_CHUNK_MAX_LEN - 4, b, 16,
                                     NULL, NULL), 4);
    ck_assert_mem_eq(b, m, 4);
    free(m);

    /* One store per target. */
    node_chunk_store *s2 = NULL;
    ck_assert_int_eq(node_chunk_store_open(e.t, NULL, &s2), -EBUSY);
    struct node_chunk_opts bad = {.sync = (enum node_chunk_sync)7};
    node_chunk_store_close(e.s);
    ck_assert_int_eq(node_chunk_store_open(e.t, &bad, &s2), -EINVAL);
    e.s = NULL;
    node_chunk_store_close(NULL);
    env_close(&e);

    ck_assert_int_eq(node_chunk_sync_parse("commit", &sy), 0);
    ck_assert_int_eq(sy, NODE_CHUNK_SYNC_COMMIT);
    ck_assert_int_eq(node_chunk_sync_parse("always", &sy), 0);
    ck_assert_int_eq(sy, NODE_CHUNK_SYNC_ALWAYS);
    ck_assert_int_eq(node_chunk_sync_parse("never", &sy), 0);
    ck_assert_int_eq(sy, NODE_CHUNK_SYNC_NEVER);
    ck_assert_int_eq(node_chunk_sync_parse("sometimes", &sy), -EINVAL);
    ck_assert_str_eq(node_chunk_sync_name(NODE_CHUNK_SYNC_ALWAYS), "always");
}
END_TEST

/* ---- damage -------------------------------------------------------------- */

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t c;
    ck_assert_int_eq(pread(fd, &c, 1, off), 1);
    c ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void expect_bad(node_chunk_store *s, const struct node_chunk_key *k,
                       int want_read, int want_stat)
{
    uint8_t *b = malloc(MiB);
    ck_assert_ptr_nonnull(b);
    struct node_chunk_info info;
    ck_assert_int_eq(node_chunk_read(s, k, 0, b, MiB, NULL, NULL), want_read);
    ck_assert_int_eq(node_chunk_read(s, k, 10, b, 10, NULL, NULL), want_read);
    ck_assert_int_eq(node_chunk_stat(s, k, &info), want_stat);
    free(b);
}

START_TEST(test_torn_chunks)
{
    struct env e;
    char p[PATH_MAX], q[PATH_MAX], logp[PATH_MAX + 16];
    const uint32_t L = 100000;
    struct node_chunk_key k[8];
    long live0 = ckpt_alloc_live();

    env_open(&e, NODE_CHUNK_SYNC_NEVER);
    for (int i = 0; i < 8; i++) {
        k[i] = (struct node_chunk_key){.ino = 42, .stripe = (uint64_t)i,
                                       .index = 1};
        ck_assert_int_eq(put_gen(e.s, &k[i], 5, L), 0);
    }

    /* Truncated in the data, and inside the header. */
    chunk_file(&e, &k[0], p, sizeof(p));
    ck_assert_int_eq(truncate(p, NODE_CHUNK_DATA_OFF + L / 2), 0);
    expect_bad(e.s, &k[0], CKPT_E_TORN, CKPT_E_TORN);
    ck_assert_int_eq(truncate(p, 10), 0);
    expect_bad(e.s, &k[0], CKPT_E_TORN, CKPT_E_TORN);

    /* One byte of data flipped: crc mismatch, logged with the path. Also
     * when the damage lies outside the range asked for. */
    pathf(logp, sizeof(logp), "%s/warn.log", e.dir);
    ck_assert_int_eq(ckpt_log_set_file(logp), 0);
    int old_level = ckpt_log_level_cur;
    ckpt_log_init(NULL, CKPT_LOG_LVL_WARN);
    chunk_file(&e, &k[1], p, sizeof(p));
    flip_byte(p, NODE_CHUNK_DATA_OFF + L - 1);
    expect_bad(e.s, &k[1], CKPT_E_CRC, 0);
    ckpt_log_init(NULL, old_level);
    ck_assert_int_eq(ckpt_log_set_file(NULL), 0);
    char logbuf[8192];
    FILE *f = fopen(logp, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(logbuf, 1, sizeof(logbuf) - 1, f);
    fclose(f);
    logbuf[n] = '\0';
    ck_assert_ptr_nonnull(strstr(logbuf, "WARN"));
    ck_assert_ptr_nonnull(strstr(logbuf, p));
    ck_assert_ptr_nonnull(strstr(logbuf, "chunk 42/1/1"));

    /* One byte of the header flipped (generation; then the magic). */
    chunk_file(&e, &k[2], p, sizeof(p));
    flip_byte(p, 33);
    expect_bad(e.s, &k[2], CKPT_E_TORN, CKPT_E_TORN);
    chunk_file(&e, &k[3], p, sizeof(p));
    flip_byte(p, 0);
    expect_bad(e.s, &k[3], CKPT_E_TORN, CKPT_E_TORN);

    /* Removed. */
    chunk_file(&e, &k[4], p, sizeof(p));
    ck_assert_int_eq(unlink(p), 0);
    expect_bad(e.s, &k[4], -ENOENT, -ENOENT);

    /* Garbage at a chunk's path. */
    chunk_file(&e, &k[5], p, sizeof(p));
    uint8_t *g = malloc(NODE_CHUNK_DATA_OFF + L);
    ck_assert_ptr_nonnull(g);
    struct node_chunk_key gk = {99, 99, 99};
    fill(g, NODE_CHUNK_DATA_OFF + L, &gk, 1);
    f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(g, 1, NODE_CHUNK_DATA_OFF + L, f),
                      NODE_CHUNK_DATA_OFF + L);
    fclose(f);
    free(g);
    expect_bad(e.s, &k[5], CKPT_E_TORN, CKPT_E_TORN);

    /* A valid chunk file of another key at this key's path. */
    chunk_file(&e, &k[6], p, sizeof(p));
    chunk_file(&e, &k[7], q, sizeof(q));
    ck_assert_int_eq(rename(q, p), 0);
    expect_bad(e.s, &k[6], CKPT_E_TORN, CKPT_E_TORN);

    /* A future format version (with a correct header crc) is not guessed
     * at: rewrite byte 8 and fix the header crc. */
    ck_assert_int_eq(put_gen(e.s, &k[7], 5, L), 0);
    chunk_file(&e, &k[7], p, sizeof(p));
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t h[NODE_CHUNK_HDR_LEN];
    ck_assert_int_eq(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    h[8] = 2;
    uint32_t hc = ckpt_crc32c(0, h, 60);
    for (int i = 0; i < 4; i++)
        h[60 + i] = (uint8_t)(hc >> (8 * i));
    ck_assert_int_eq(pwrite(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
    expect_bad(e.s, &k[7], CKPT_E_VERSION, CKPT_E_VERSION);
    /* ... and a write cannot tell its generation, so it is refused. */
    ck_assert_int_eq(put_gen(e.s, &k[7], 6, L), CKPT_E_VERSION);

    /* A damaged chunk can be rewritten (rebuild repairs it), even with an
     * older generation, since no valid generation is stored. */
    ck_assert_int_eq(put_gen(e.s, &k[0], 3, L), 0);
    expect_chunk(e.s, &k[0], 3, L);
    ck_assert_int_eq(put_gen(e.s, &k[5], 5, 10), 0);
    expect_chunk(e.s, &k[5], 5, 10);
    /* Undamaged neighbours are untouched. */
    ck_assert_int_eq(put_gen(e.s, &k[4], 5, L), 0);
    expect_chunk(e.s, &k[4], 5, L);
    env_close(&e);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

/* ---- generations and client crc ----------------------------------------- */

/* ---- one-open reader (node_chunk_open_read / _read_from) ------------------ */

START_TEST(test_reader)
{
    struct env e;
    struct node_chunk_reader r, r2;
    struct node_chunk_key k = {.ino = 77, .stripe = 3, .index = 2};
    struct node_chunk_key absent = {.ino = 77, .stripe = 4, .index = 2};
    const uint32_t L = 300000;
    char p[PATH_MAX];
    uint32_t crc = 0;
    long live0 = ckpt_alloc_live();

    env_open(&e, NODE_CHUNK_SYNC_NEVER);
    uint8_t *want = malloc(L), *got = malloc(L);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    fill(want, L, &k, 5);
    ck_assert_int_eq(put(e.s, &k, 5, want, L), 0);

    /* Bad arguments and an absent chunk leave a closed reader. */
    ck_assert_int_eq(node_chunk_open_read(NULL, &k, &r), -EINVAL);
    ck_assert_int_eq(node_chunk_open_read(e.s, NULL, &r), -EINVAL);
    ck_assert_int_eq(node_chunk_open_read(e.s, &k, NULL), -EINVAL);
    ck_assert_int_eq(node_chunk_open_read(e.s, &absent, &r), -ENOENT);
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, 0, got, L, 0, &crc), -EINVAL);
    node_chunk_close_read(&r);
    node_chunk_close_read(NULL);

    /* Whole chunk: the header's crc, equal to the bytes' crc. */
    ck_assert_int_eq(node_chunk_open_read(e.s, &k, &r), 0);
    ck_assert_uint_eq(r.info.gen, 5);
    ck_assert_uint_eq(r.info.len, L);
    ck_assert_uint_eq(r.info.crc, ckpt_crc32c(0, want, L));
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, 0, got, L + 7, 0, &crc), (ssize_t)L);
    ck_assert_mem_eq(got, want, L);
    ck_assert_uint_eq(crc, ckpt_crc32c(0, want, L));
    /* A range: the crc of the range (computed, not the header's). */
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, 1000, got, 5000, 0, &crc), 5000);
    ck_assert_mem_eq(got, want + 1000, 5000);
    ck_assert_uint_eq(crc, ckpt_crc32c(0, want + 1000, 5000));
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, L, got, 10, 0, &crc), 0);

    /* A newer version renamed over it: the open reader keeps the version
     * it opened, whole and verified; a new open sees the new one. */
    ck_assert_int_eq(put_gen(e.s, &k, 6, L / 2), 0);
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, 0, got, L, 0, &crc), (ssize_t)L);
    ck_assert_mem_eq(got, want, L);
    ck_assert_uint_eq(crc, ckpt_crc32c(0, want, L));
    node_chunk_close_read(&r);
    node_chunk_close_read(&r); /* closing twice is a no-op */
    ck_assert_int_eq(node_chunk_open_read(e.s, &k, &r2), 0);
    ck_assert_uint_eq(r2.info.gen, 6);
    ck_assert_uint_eq(r2.info.len, L / 2);
    node_chunk_close_read(&r2);

    /* Bit rot after the open: the header is fine, the read says CKPT_E_CRC
     * (whole chunk and range alike) and never hands out a crc for it. */
    ck_assert_int_eq(put(e.s, &k, 7, want, L), 0);
    ck_assert_int_eq(node_chunk_open_read(e.s, &k, &r), 0);
    chunk_file(&e, &k, p, sizeof(p));
    flip_byte(p, NODE_CHUNK_DATA_OFF + L / 3);
    int old_level = ckpt_log_level_cur;
    ckpt_log_init(NULL, CKPT_LOG_LVL_ERR); /* the expected WARN lines */
    crc = 0x5a5a5a5a;
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, 0, got, L, 0, &crc), CKPT_E_CRC);
    ck_assert_int_eq(node_chunk_read_from(e.s, &r, 0, got, 10, 0, &crc), CKPT_E_CRC);
    ck_assert_uint_eq(crc, 0x5a5a5a5a);
    node_chunk_close_read(&r);

    /* Truncated: refused at the open. */
    ck_assert_int_eq(truncate(p, NODE_CHUNK_DATA_OFF + 10), 0);
    ck_assert_int_eq(node_chunk_open_read(e.s, &k, &r), CKPT_E_TORN);
    node_chunk_close_read(&r);
    ckpt_log_init(NULL, old_level);

    env_close(&e);
    free(want);
    free(got);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

START_TEST(test_stale_and_client_crc)
{
    struct env e;
    struct node_chunk_key k = {.ino = 5, .stripe = 1, .index = 0};
    struct node_chunk_key k2 = {.ino = 6, .stripe = 1, .index = 0};
    uint8_t buf[5000];

    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    ck_assert_int_eq(put_gen(e.s, &k, 5, 3000), 0);
    ck_assert_int_eq(put_gen(e.s, &k, 4, 3000), CKPT_E_STALE);
    ck_assert_int_eq(put_gen(e.s, &k, 0, 10), CKPT_E_STALE);
    expect_chunk(e.s, &k, 5, 3000);
    ck_assert_int_eq(put_gen(e.s, &k, 5, 3000), 0);
    ck_assert_int_eq(put_gen(e.s, &k, 6, 4000), 0);
    expect_chunk(e.s, &k, 6, 4000);
    ck_assert_int_eq(count_in_inode_dir(&e, 5, ".tmp."), 0);

    /* Client crc mismatch: refused, nothing stored, nothing left behind. */
    fill(buf, sizeof(buf), &k2, 1);
    struct iovec iov = {buf, sizeof(buf)};
    uint32_t crc = ckpt_crc32c(0, buf, sizeof(buf));
    ck_assert_int_eq(node_chunk_write(e.s, &k2, 1, &iov, 1, crc ^ 1),
                     CKPT_E_CRC);
    struct node_chunk_info info;
    ck_assert_int_eq(node_chunk_stat(e.s, &k2, &info), -ENOENT);
    ck_assert_int_eq(count_in_inode_dir(&e, 6, "0"), 0);
    /* ... and over an existing chunk the old version stays. */
    fill(buf, sizeof(buf), &k, 7);
    ck_assert_int_eq(node_chunk_write(e.s, &k, 7, &iov, 1, crc), CKPT_E_CRC);
    expect_chunk(e.s, &k, 6, 4000);
    struct node_target_stats st = tstats(&e);
    ck_assert_uint_eq(st.chunk_count, 1);
    ck_assert_uint_eq(sstats(&e).dirty_files, 3);
    env_close(&e);
}
END_TEST

/* ---- space --------------------------------------------------------------- */

START_TEST(test_enospc_at_reserve)
{
    struct env e;
    struct node_target_opts o;
    struct node_chunk_key a = {.ino = 11, .stripe = 0, .index = 0};
    struct node_chunk_key b = {.ino = 11, .stripe = 1, .index = 0};
    const uint64_t need = MiB + NODE_CHUNK_DATA_OFF; /* disk use of 1 MiB */
    static unsigned seq;

    /* No automatic statvfs refresh: after the one below, only this store's
     * writes and deletes move the estimate, so the test is exact. */
    memset(&o, 0, sizeof(o));
    o.cluster = "test";
    o.refresh_ms = UINT32_MAX;
    pathf(e.dir, sizeof(e.dir), "%s/%ld.enospc%u", base_dir,
             (long)getpid(), seq++);
    ck_assert_int_eq(node_target_open(e.dir, &o, &e.t), 0);
    env_open_store(&e, NODE_CHUNK_SYNC_COMMIT, 0);
    ck_assert_int_eq(put_gen(e.s, &a, 1, MiB), 0);

    /* Reserve from the real statvfs: room for one more 1 MiB chunk and a
     * half. */
    struct node_target_stats st = tstats(&e);
    ck_assert_uint_gt(st.free_bytes, 64 * MiB);
    ck_assert_int_eq(node_target_set_reserve(e.t, st.free_bytes - need - need / 2,
                                             0), 0);
    ck_assert_int_eq(put_gen(e.s, &b, 1, MiB), 0);
    ck_assert_int_eq(put_gen(e.s, &a, 2, MiB), -ENOSPC);
    ck_assert_int_eq(put_gen(e.s, &b, 2, MiB), -ENOSPC);
    /* Nothing damaged, nothing left behind, counters unchanged. */
    expect_chunk(e.s, &a, 1, MiB);
    expect_chunk(e.s, &b, 1, MiB);
    ck_assert_int_eq(count_in_inode_dir(&e, 11, ".tmp."), 0);
    ck_assert_int_eq(count_in_inode_dir(&e, 11, "0000"), 2);
    /* A small write still fits in the half chunk left. */
    struct node_chunk_key c = {.ino = 11, .stripe = 2, .index = 0};
    ck_assert_int_eq(put_gen(e.s, &c, 1, 4096), 0);
    ck_assert_int_eq(node_chunk_delete(e.s, &c, 0), 0);

    /* Deleting gives the space back to the estimate. */
    ck_assert_int_eq(node_chunk_delete(e.s, &b, 0), 0);
    ck_assert_int_eq(put_gen(e.s, &a, 2, MiB), 0);
    expect_chunk(e.s, &a, 2, MiB);
    /* Replacing a chunk in place needs its size free while both exist. */
    ck_assert_int_eq(put_gen(e.s, &a, 3, MiB), 0);
    ck_assert_int_eq(put_gen(e.s, &a, 4, MiB), 0);
    expect_chunk(e.s, &a, 4, MiB);
    env_close(&e);
}
END_TEST

/* ---- delete -------------------------------------------------------------- */

static int count_cb(void *arg, const struct node_chunk_key *k,
                    const struct node_chunk_info *info, int rc)
{
    (void)k;
    (void)info;
    ck_assert_int_eq(rc, 0);
    (*(int *)arg)++;
    return 0;
}

static int count_inode(node_chunk_store *s, uint64_t ino)
{
    int n = 0;
    ck_assert_int_eq(node_chunk_foreach_inode(s, ino, count_cb, &n), 0);
    return n;
}

START_TEST(test_delete)
{
    struct env e;
    const uint64_t ino = 0x1234, other = 0x1334; /* same fan-out dir */
    long live0 = ckpt_alloc_live();

    env_open(&e, NODE_CHUNK_SYNC_ALWAYS);
    /* stripes 0..9, indexes 0..2, generation = stripe + 1 */
    for (uint64_t s = 0; s < 10; s++)
        for (uint16_t i = 0; i < 3; i++) {
            struct node_chunk_key k = {ino, s, i};
            ck_assert_int_eq(put_gen(e.s, &k, s + 1, 1000 + s), 0);
        }
    struct node_chunk_key ko = {other, 0, 0};
    ck_assert_int_eq(put_gen(e.s, &ko, 1, 10), 0);
    ck_assert_int_eq(count_inode(e.s, ino), 30);
    ck_assert_uint_eq(tstats(&e).chunk_count, 31);

    /* One chunk; then a generation-guarded one. */
    struct node_chunk_key k90 = {ino, 9, 0}, k91 = {ino, 9, 1};
    ck_assert_int_eq(node_chunk_delete(e.s, &k90, 0), 0);
    ck_assert_int_eq(node_chunk_delete(e.s, &k90, 0), -ENOENT);
    ck_assert_int_eq(node_chunk_delete(e.s, &k91, 10), CKPT_E_STALE);
    ck_assert_int_eq(node_chunk_delete(e.s, &k91, 9), CKPT_E_STALE);
    expect_chunk(e.s, &k91, 10, 1009);
    ck_assert_int_eq(node_chunk_delete(e.s, &k91, 11), 0);
    ck_assert_int_eq(count_inode(e.s, ino), 28);

    /* Truncate: stripes >= 5 (13 chunks left there). */
    uint64_t n = 0;
    ck_assert_int_eq(node_chunk_delete_inode(e.s, ino, 5, 0, &n), 0);
    ck_assert_uint_eq(n, 13);
    ck_assert_int_eq(count_inode(e.s, ino), 15);

    /* A delete queued for an old version: only generations < 3 (stripes 0
     * and 1) go, newer data stays. */
    ck_assert_int_eq(node_chunk_delete_inode(e.s, ino, 0, 3, &n), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(count_inode(e.s, ino), 9);
    struct node_chunk_key k20 = {ino, 2, 0};
    expect_chunk(e.s, &k20, 3, 1002);

    /* Everything; the inode directory goes too, the neighbour stays. */
    ck_assert_int_eq(node_chunk_delete_inode(e.s, ino, 0, 0, &n), 0);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(count_inode(e.s, ino), 0);
    char p[PATH_MAX + 64];
    pathf(p, sizeof(p), "%s/chunks/34/%016" PRIx64, e.dir, ino);
    ck_assert_int_eq(access(p, F_OK), -1);
    expect_chunk(e.s, &ko, 1, 10);
    ck_assert_int_eq(node_chunk_delete_inode(e.s, 777, 0, 0, &n), 0);
    ck_assert_uint_eq(n, 0);

    struct node_target_stats st = tstats(&e);
    ck_assert_uint_eq(st.chunk_count, 1);
    ck_assert_uint_eq(st.chunk_bytes, 8192);
    /* The inode can be written again after its directory went away. */
    struct node_chunk_key k00 = {ino, 0, 0};
    ck_assert_int_eq(put_gen(e.s, &k00, 20, 5), 0);
    expect_chunk(e.s, &k00, 20, 5);
    env_close(&e);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

/* ---- enumerate ----------------------------------------------------------- */

struct seen {
    struct node_chunk_key k;
    uint64_t gen;
    uint32_t len;
    int rc;
};
struct seen_list {
    struct seen *v;
    size_t n, cap;
    size_t stop_after; /* 0 = never */
};

static int collect_cb(void *arg, const struct node_chunk_key *k,
                      const struct node_chunk_info *info, int rc)
{
    struct seen_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        ck_assert_ptr_nonnull(l->v);
    }
    l->v[l->n++] = (struct seen){*k, info->gen, info->len, rc};
    if (l->stop_after && l->n == l->stop_after)
        return 77;
    return 0;
}

static int seen_cmp(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    if (x->k.ino != y->k.ino)
        return x->k.ino < y->k.ino ? -1 : 1;
    if (x->k.stripe != y->k.stripe)
        return x->k.stripe < y->k.stripe ? -1 : 1;
    return (int)x->k.index - (int)y->k.index;
}

START_TEST(test_enumerate)
{
    struct env e;
    enum { N = 300 };
    struct seen want[N];
    uint64_t seed = 777;

    env_open(&e, NODE_CHUNK_SYNC_NEVER);
    /* Inodes sharing fan-out dirs (0x100, 0x200 ...) and spread ones. */
    for (int i = 0; i < N; i++) {
        uint64_t ino = (i % 3 == 0) ? (uint64_t)(i % 7 + 1) << 8
                                    : rng_next(&seed) % 50 + 1;
        want[i].k = (struct node_chunk_key){ino, (uint64_t)i,
                                            (uint16_t)(i % 9)};
        want[i].gen = rng_next(&seed) % 1000;
        want[i].len = (uint32_t)(rng_next(&seed) % 3000);
        want[i].rc = 0;
        ck_assert_int_eq(put_gen(e.s, &want[i].k, want[i].gen, want[i].len),
                         0);
    }
    /* Things that are not chunks must not be reported. */
    char p[PATH_MAX + 64];
    pathf(p, sizeof(p), "%s/chunks/00/%016x/%016x.0001.tmp.0000000000000009",
             e.dir, 0x100, 5);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    pathf(p, sizeof(p), "%s/chunks/00/%016x/README", e.dir, 0x100);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);

    struct seen_list got = {0};
    ck_assert_int_eq(node_chunk_foreach(e.s, collect_cb, &got), 0);
    ck_assert_uint_eq(got.n, N);
    qsort(want, N, sizeof(want[0]), seen_cmp);
    qsort(got.v, got.n, sizeof(got.v[0]), seen_cmp);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(got.v[i].k.ino, want[i].k.ino);
        ck_assert_uint_eq(got.v[i].k.stripe, want[i].k.stripe);
        ck_assert_uint_eq(got.v[i].k.index, want[i].k.index);
        ck_assert_uint_eq(got.v[i].gen, want[i].gen);
        ck_assert_uint_eq(got.v[i].len, want[i].len);
        ck_assert_int_eq(got.v[i].rc, 0);
    }

    /* One inode: exactly its chunks. */
    uint64_t ino = 0x100;
    size_t expect = 0;
    for (int i = 0; i < N; i++)
        expect += want[i].k.ino == ino;
    got.n = 0;
    ck_assert_int_eq(node_chunk_foreach_inode(e.s, ino, collect_cb, &got), 0);
    ck_assert_uint_eq(got.n, expect);
    for (size_t i = 0; i < got.n; i++)
        ck_assert_uint_eq(got.v[i].k.ino, ino);
    got.n = 0;
    ck_assert_int_eq(node_chunk_foreach_inode(e.s, 999999, collect_cb, &got),
                     0);
    ck_assert_uint_eq(got.n, 0);

    /* A torn chunk is reported with its error (scrub needs it). */
    char cp[PATH_MAX];
    chunk_file(&e, &want[0].k, cp, sizeof(cp));
    ck_assert_int_eq(truncate(cp, 100), 0);
    got.n = 0;
    ck_assert_int_eq(node_chunk_foreach_inode(e.s, want[0].k.ino, collect_cb,
                                              &got), 0);
    int torn = 0;
    for (size_t i = 0; i < got.n; i++)
        if (got.v[i].k.stripe == want[0].k.stripe) {
            ck_assert_int_eq(got.v[i].rc, CKPT_E_TORN);
            ck_assert_uint_eq(got.v[i].gen, 0);
            torn++;
        }
    ck_assert_int_eq(torn, 1);

    /* The callback's non-zero value stops the walk and is returned. */
    got.n = 0;
    got.stop_after = 5;
    ck_assert_int_eq(node_chunk_foreach(e.s, collect_cb, &got), 77);
    ck_assert_uint_eq(got.n, 5);
    free(got.v);
    env_close(&e);
}
END_TEST

/* ---- concurrency --------------------------------------------------------- */

enum { CT_THREADS = 8, CT_CHUNKS = 1000, CT_HOT = 4, CT_HOT_WRITES = 40 };

struct ct_arg {
    node_chunk_store *s;
    int id;
    atomic_int *errors;
};

static uint32_t ct_len(int i)
{
    return 1 + (uint32_t)((i * 7919u) % 65536u);
}

static struct node_chunk_key ct_key(int i)
{
    return (struct node_chunk_key){.ino = 100 + (uint64_t)(i % 37),
                                   .stripe = (uint64_t)i,
                                   .index = (uint16_t)(i % 6)};
}

static bool ct_check(node_chunk_store *s, const struct node_chunk_key *k,
                     uint64_t gen, uint32_t len, uint8_t *want, uint8_t *got)
{
    uint64_t g = 0;
    uint32_t l = 0;
    fill(want, len, k, gen);
    ssize_t n = node_chunk_read(s, k, 0, got, 65536, &g, &l);
    return n == (ssize_t)len && g == gen && l == len && !memcmp(want, got, len);
}

/* Phase 1: each thread writes its share and reads it back. */
static void *ct_writer(void *p)
{
    struct ct_arg *a = p;
    uint8_t *want = malloc(65536), *got = malloc(65536);
    if (!want || !got) {
        atomic_fetch_add(a->errors, 1);
        goto out;
    }
    for (int i = a->id; i < CT_CHUNKS; i += CT_THREADS) {
        struct node_chunk_key k = ct_key(i);
        fill(want, ct_len(i), &k, (uint64_t)i);
        if (put(a->s, &k, (uint64_t)i, want, ct_len(i)) != 0)
            atomic_fetch_add(a->errors, 1);
    }
    for (int i = a->id; i < CT_CHUNKS; i += CT_THREADS) {
        struct node_chunk_key k = ct_key(i);
        if (!ct_check(a->s, &k, (uint64_t)i, ct_len(i), want, got))
            atomic_fetch_add(a->errors, 1);
    }
out:
    free(want);
    free(got);
    return NULL;
}

/* Phase 2: everyone reads everything, while all threads also race writes
 * of a few hot chunks with interleaved generations. */
static void *ct_mixed(void *p)
{
    struct ct_arg *a = p;
    uint8_t *want = malloc(65536), *got = malloc(65536);
    if (!want || !got) {
        atomic_fetch_add(a->errors, 1);
        goto out;
    }
    for (int j = 0; j < CT_CHUNKS; j++) {
        int i = (j + a->id * 125) % CT_CHUNKS;
        struct node_chunk_key k = ct_key(i);
        if (!ct_check(a->s, &k, (uint64_t)i, ct_len(i), want, got))
            atomic_fetch_add(a->errors, 1);
        if (j % 25 == 0) {
            int w = j / 25; /* 0..39 */
            struct node_chunk_key hk = {.ino = 5000, .stripe = (uint64_t)(w % CT_HOT)};
            uint64_t gen = (uint64_t)w * CT_THREADS + (uint64_t)a->id + 1;
            uint32_t len = 1000 + (uint32_t)(gen % 5000);
            fill(want, len, &hk, gen);
            int rc = put(a->s, &hk, gen, want, len);
            if (rc != 0 && rc != CKPT_E_STALE)
                atomic_fetch_add(a->errors, 1);
            /* A concurrent read sees one whole version, never a mix. */
            uint64_t g = 0;
            uint32_t l = 0;
            ssize_t n = node_chunk_read(a->s, &hk, 0, got, 65536, &g, &l);
            if (n < 0 || (uint32_t)n != l || l != 1000 + g % 5000)
                atomic_fetch_add(a->errors, 1);
            else {
                fill(want, l, &hk, g);
                if (memcmp(want, got, l))
                    atomic_fetch_add(a->errors, 1);
            }
        }
    }
out:
    free(want);
    free(got);
    return NULL;
}

START_TEST(test_concurrent)
{
    struct env e;
    pthread_t th[CT_THREADS];
    struct ct_arg args[CT_THREADS];
    atomic_int errors = 0;
    long live0 = ckpt_alloc_live();

    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    for (int i = 0; i < CT_THREADS; i++) {
        args[i] = (struct ct_arg){e.s, i, &errors};
        ck_assert_int_eq(pthread_create(&th[i], NULL, ct_writer, &args[i]), 0);
    }
    for (int i = 0; i < CT_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&errors), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, CT_CHUNKS);

    for (int i = 0; i < CT_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, ct_mixed, &args[i]), 0);
    for (int i = 0; i < CT_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&errors), 0);

    /* Each hot chunk holds the highest generation written to it. */
    uint8_t *want = malloc(65536), *got = malloc(65536);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    for (int h = 0; h < CT_HOT; h++) {
        uint64_t maxgen = 0;
        for (int w = h; w < CT_HOT_WRITES; w += CT_HOT)
            maxgen = (uint64_t)w * CT_THREADS + CT_THREADS;
        struct node_chunk_key hk = {.ino = 5000, .stripe = (uint64_t)h};
        ck_assert(ct_check(e.s, &hk, maxgen, 1000 + (uint32_t)(maxgen % 5000),
                           want, got));
    }
    free(want);
    free(got);
    ck_assert_int_eq(count_in_inode_dir(&e, 5000, ".tmp."), 0);
    ck_assert_uint_eq(tstats(&e).chunk_count, CT_CHUNKS + CT_HOT);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    env_close(&e);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
}
END_TEST

/* ---- injected faults ----------------------------------------------------- */

/* Walk faults at site over writes of k: each failed write must leave the
 * previous version readable (or, for a fault after the rename, the new one
 * complete), leak nothing and leave no temp file. */
static void walk_write_faults(struct env *e, enum ckpt_fault_site site,
                              const struct node_chunk_key *k, uint64_t *gen,
                              uint32_t len, int after_rename_nth)
{
    for (long nth = 1;; nth++) {
        ck_assert_int_lt(nth, 20);
        long live0 = ckpt_alloc_live();
        uint64_t next = *gen + 1;
        ckpt_fault_arm(site, nth);
        int rc = put_gen(e->s, k, next, len);
        bool fired = ckpt_fault_fired(site);
        ckpt_fault_disarm_all();
        ck_assert_int_eq(count_in_inode_dir(e, k->ino, ".tmp."), 0);
        if (!fired) {
            ck_assert_int_eq(rc, 0);
            *gen = next;
            expect_chunk(e->s, k, *gen, len);
            return;
        }
        ck_assert_int_eq(rc, site == CKPT_FAULT_ALLOC ? -ENOMEM : -EIO);
        /* A success may add a dirty-set entry; a failure adds nothing. */
        ck_assert_int_eq(ckpt_alloc_live(), live0);
        if (nth == after_rename_nth) {
            *gen = next; /* the new version is in place, complete */
        }
        expect_chunk(e->s, k, *gen, len);
    }
}

START_TEST(test_write_faults)
{
    struct env e;
    struct node_chunk_key k = {.ino = 77, .stripe = 3, .index = 2};
    uint64_t gen = 1;

    env_open(&e, NODE_CHUNK_SYNC_ALWAYS);
    ck_assert_int_eq(put_gen(e.s, &k, gen, 50000), 0);
    long live0 = ckpt_alloc_live();
    /* pwritev fails */
    walk_write_faults(&e, CKPT_FAULT_WRITE, &k, &gen, 50000, 0);
    /* fdatasync of the temp file (1), fsync of the directory after the
     * rename (2): the second leaves the new version in place. */
    walk_write_faults(&e, CKPT_FAULT_FSYNC, &k, &gen, 50000, 2);
    /* the generation checks read the stored header (before I/O, at the
     * rename) */
    walk_write_faults(&e, CKPT_FAULT_READ, &k, &gen, 50000, 0);
    ck_assert_uint_eq(gen, 5);
    ck_assert_uint_eq(tstats(&e).chunk_count, 1);

    /* Reads: header, then data. */
    uint8_t *b = malloc(50000);
    ck_assert_ptr_nonnull(b);
    for (long nth = 1;; nth++) {
        ckpt_fault_arm(CKPT_FAULT_READ, nth);
        ssize_t n = node_chunk_read(e.s, &k, 0, b, 50000, NULL, NULL);
        bool fired = ckpt_fault_fired(CKPT_FAULT_READ);
        ckpt_fault_disarm_all();
        if (!fired) {
            ck_assert_int_eq(n, 50000);
            ck_assert_int_eq(nth, 3);
            break;
        }
        ck_assert_int_eq(n, -EIO);
    }
    /* Range read: scratch allocation fails cleanly. */
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_int_eq(node_chunk_read(e.s, &k, 100, b, 100, NULL, NULL),
                     -ENOMEM);
    ckpt_fault_disarm_all();
    free(b);
    ck_assert_int_eq(ckpt_alloc_live(), live0);

    /* A first chunk in a new inode directory under sync = always: the
     * fan-out directory is fsync()ed as well (third fsync). */
    struct node_chunk_key nk = {.ino = 0x4242, .stripe = 0, .index = 0};
    ckpt_fault_arm(CKPT_FAULT_FSYNC, 3);
    ck_assert_int_eq(put_gen(e.s, &nk, 1, 10), -EIO);
    ck_assert(ckpt_fault_fired(CKPT_FAULT_FSYNC));
    ckpt_fault_disarm_all();
    expect_chunk(e.s, &nk, 1, 10);
    env_close(&e);

    /* Under sync = commit, the dirty-set allocations fail cleanly. */
    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    gen = 1;
    struct node_chunk_key ck = {.ino = 78, .stripe = 0, .index = 0};
    ck_assert_int_eq(put_gen(e.s, &ck, gen, 1000), 0);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0); /* frees the entry */
    live0 = ckpt_alloc_live();
    walk_write_faults(&e, CKPT_FAULT_ALLOC, &ck, &gen, 1000, 0);
    ck_assert_uint_eq(gen, 2);
    ck_assert_uint_eq(sstats(&e).dirty_files, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
    env_close(&e);
}
END_TEST

START_TEST(test_barrier)
{
    struct env e;
    uint64_t one = 1, two = 2;

    /* Per-file barrier. */
    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    node_chunk_store_close(e.s);
    env_open_store(&e, NODE_CHUNK_SYNC_COMMIT, UINT32_MAX);
    for (uint64_t s = 0; s < 5; s++) {
        struct node_chunk_key k = {1, s, 0};
        ck_assert_int_eq(put_gen(e.s, &k, 1, 5000), 0);
    }
    for (uint64_t s = 0; s < 3; s++) {
        struct node_chunk_key k = {2, s, 0};
        ck_assert_int_eq(put_gen(e.s, &k, 1, 5000), 0);
    }
    ck_assert_uint_eq(sstats(&e).dirty_files, 8);
    ck_assert_uint_eq(sstats(&e).dirty_inodes, 2);
    ck_assert_int_eq(node_chunk_sync(e.s, &one, 1), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 3);
    ck_assert_uint_eq(sstats(&e).dirty_inodes, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, &one, 1), 0); /* nothing to do */
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    ck_assert_uint_eq(sstats(&e).dirty_inodes, 0);

    /* A delete makes the inode's directory dirty. */
    struct node_chunk_key k10 = {1, 0, 0};
    ck_assert_int_eq(node_chunk_delete(e.s, &k10, 0), 0);
    ck_assert_uint_eq(sstats(&e).dirty_inodes, 1);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    ck_assert_int_eq(node_chunk_sync(e.s, &one, 1), 0);
    ck_assert_uint_eq(sstats(&e).dirty_inodes, 0);

    /* An fdatasync error is reported; the set is cleared (a retry would
     * falsely succeed) and the data is still readable. */
    struct node_chunk_key k21 = {2, 1, 0};
    long live0 = ckpt_alloc_live(); /* the dirty set is empty */
    ck_assert_int_eq(put_gen(e.s, &k21, 2, 700), 0);
    ckpt_fault_arm(CKPT_FAULT_FSYNC, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, &two, 1), -EIO);
    ckpt_fault_disarm_all();
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    expect_chunk(e.s, &k21, 2, 700);
    /* Allocation failure: nothing synced, nothing cleared. */
    ck_assert_int_eq(put_gen(e.s, &k21, 3, 700), 0);
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, &two, 1), -ENOMEM);
    ckpt_fault_disarm_all();
    ck_assert_uint_eq(sstats(&e).dirty_files, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, &two, 1), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    ck_assert_int_eq(ckpt_alloc_live(), live0);

    /* syncfs barrier from 2 dirty files on: below it per-file, at it the
     * whole set is cleared. */
    node_chunk_store_close(e.s);
    env_open_store(&e, NODE_CHUNK_SYNC_COMMIT, 2);
    for (uint64_t s = 0; s < 3; s++) {
        struct node_chunk_key k = {1, s, 1};
        ck_assert_int_eq(put_gen(e.s, &k, 1, 5000), 0);
    }
    struct node_chunk_key k22 = {2, 2, 1};
    ck_assert_int_eq(put_gen(e.s, &k22, 1, 5000), 0);
    ck_assert_int_eq(node_chunk_sync(e.s, &two, 1), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 3);
    ck_assert_int_eq(put_gen(e.s, &k22, 2, 5000), 0);
    ck_assert_int_eq(node_chunk_sync(e.s, &one, 1), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    ck_assert_uint_eq(sstats(&e).dirty_inodes, 0);
    for (uint64_t s = 0; s < 3; s++) {
        struct node_chunk_key k = {1, s, 1};
        ck_assert_int_eq(put_gen(e.s, &k, 2, 5000), 0);
    }
    ckpt_fault_arm(CKPT_FAULT_FSYNC, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), -EIO);
    ckpt_fault_disarm_all();
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);

    /* never / always: nothing is tracked, the barrier returns at once. */
    node_chunk_store_close(e.s);
    env_open_store(&e, NODE_CHUNK_SYNC_NEVER, 0);
    ck_assert_int_eq(put_gen(e.s, &k22, 3, 5000), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    ckpt_fault_arm(CKPT_FAULT_FSYNC, 1);
    ck_assert_int_eq(node_chunk_sync(e.s, NULL, 0), 0);
    ck_assert(!ckpt_fault_fired(CKPT_FAULT_FSYNC));
    ckpt_fault_disarm_all();
    node_chunk_store_close(e.s);
    env_open_store(&e, NODE_CHUNK_SYNC_ALWAYS, 0);
    ck_assert_int_eq(put_gen(e.s, &k22, 4, 5000), 0);
    ck_assert_uint_eq(sstats(&e).dirty_files, 0);
    ck_assert_int_eq(node_chunk_sync(e.s, &two, 1), 0);
    expect_chunk(e.s, &k22, 4, 5000);
    env_close(&e);
}
END_TEST

/* ---- startup recovery ---------------------------------------------------- */

static void touch(const char *p, size_t len)
{
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < len; i++)
        fputc('x', f);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_tmp_cleanup_on_open)
{
    struct env e;
    struct node_chunk_key k = {.ino = 0x55, .stripe = 4, .index = 1};
    char p[PATH_MAX + 128];

    env_open(&e, NODE_CHUNK_SYNC_COMMIT);
    ck_assert_int_eq(put_gen(e.s, &k, 3, 9000), 0);
    node_chunk_store_close(e.s);
    e.s = NULL;

    /* What a crash mid-write leaves: temp files next to a chunk and in an
     * inode directory of their own; plus a foreign file to keep. */
    pathf(p, sizeof(p), "%s/chunks/55/%016x/%016x.0001.tmp.00000000000000aa",
             e.dir, 0x55, 4);
    touch(p, 5000);
    pathf(p, sizeof(p), "%s/chunks/55/%016x/%016x.0000.tmp.00000000000000ab",
             e.dir, 0x55, 9);
    touch(p, 10);
    pathf(p, sizeof(p), "%s/chunks/55/%016x", e.dir, 0x155);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    pathf(p, sizeof(p), "%s/chunks/55/%016x/%016x.0000.tmp.0000000000000001",
             e.dir, 0x155, 0);
    touch(p, 4096);
    pathf(p, sizeof(p), "%s/chunks/55/%016x/notes", e.dir, 0x55);
    touch(p, 3);

    env_open_store(&e, NODE_CHUNK_SYNC_COMMIT, 0);
    struct node_chunk_store_stats ss = sstats(&e);
    ck_assert_uint_eq(ss.tmp_removed, 3);
    ck_assert_uint_eq(ss.chunks_found, 1);
    ck_assert_int_eq(count_in_inode_dir(&e, 0x55, ".tmp."), 0);
    ck_assert_int_eq(count_in_inode_dir(&e, 0x55, "notes"), 1);
    pathf(p, sizeof(p), "%s/chunks/55/%016x", e.dir, 0x155);
    ck_assert_int_eq(access(p, F_OK), -1); /* emptied dir removed */
    expect_chunk(e.s, &k, 3, 9000);
    struct node_target_stats st = tstats(&e);
    ck_assert_uint_eq(st.chunk_count, 1);
    ck_assert_uint_eq(st.chunk_bytes, 4096 + 12288);
    env_close(&e);
}
END_TEST

Suite *node_chunk_suite(void)
{
    Suite *s = suite_create("node_chunk");
    TCase *tc = tcase_create("store");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_direct_writes);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_reader);
    tcase_add_test(tc, test_torn_chunks);
    tcase_add_test(tc, test_stale_and_client_crc);
    tcase_add_test(tc, test_enospc_at_reserve);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_enumerate);
    tcase_add_test(tc, test_barrier);
    tcase_add_test(tc, test_tmp_cleanup_on_open);
    suite_add_tcase(s, tc);

    TCase *tf = tcase_create("faults");
    tcase_add_unchecked_fixture(tf, base_setup, base_teardown);
    tcase_set_timeout(tf, 30);
    tcase_add_test(tf, test_write_faults);
    suite_add_tcase(s, tf);

    TCase *tt = tcase_create("threads");
    tcase_add_unchecked_fixture(tt, base_setup, base_teardown);
    tcase_set_timeout(tt, 30);
    tcase_add_test(tt, test_concurrent);
    suite_add_tcase(s, tt);
    return s;
}

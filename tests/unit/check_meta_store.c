/*
 * check_meta_store.c - unit tests for meta/meta_store (the namespace store
 * of ckpt-meta on LMDB).
 *
 * Every test opens a fresh store in its own mkdtemp directory under /tmp and
 * removes it afterwards.  Besides the errno of every operation, the tests
 * lean on two whole-store checks of the module: meta_store_fsck() (every
 * cross-table invariant: names <-> cookies, nlink counts, parent pointers,
 * tindex vs layouts, orphans) runs after each scenario, and
 * meta_store_digest() proves that an operation failed half-way inside a
 * nested transaction leaves the parent byte-for-byte as it was: the
 * fault-walk test fails the 1st, 2nd, ... write of each mutating operation
 * (CKPT_FAULT_WRITE) until it succeeds.  The big-directory test lists
 * 100,000 entries by cookie pages while deleting and adding entries between
 * pages.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "layout.h"
#include "meta_store.h"

Suite *meta_store_suite(void);

/* ---- fixture and helpers ------------------------------------------------------ */

static char g_root[64];  /* per TCase, made in the runner process */
static char g_dir[128];  /* per test, inside g_root */
static char g_dir2[128]; /* a second store of the tests that need one */
static meta_store *g_st;

static const struct timespec T0 = {1700000000, 0};
static const struct timespec T1 = {1700000100, 111};
static const struct timespec T2 = {1700000200, 222};
static const struct timespec T3 = {1700000300, 333};

static void rm_store_dir(const char *dir)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static meta_store *open_store(const char *dir, uint64_t map_bytes)
{
    struct meta_store_opts o;
    meta_store *st = NULL;
    static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                                     9, 10, 11, 12, 13, 14, 15, 16};

    memset(&o, 0, sizeof(o));
    o.map_size_bytes = map_bytes;
    o.cluster_uuid = uuid;
    o.cluster_name = "testcluster";
    o.now = T0;
    ck_assert_int_eq(meta_store_open(dir, &o, &st), 0);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* A failed assertion _exit()s the forked test without its checked
 * teardown, so every test's directory lives in one per-TCase directory
 * that the unchecked (runner-side) teardown always removes. */
static void root_setup(void)
{
    strcpy(g_root, "/tmp/ckpt-meta-test-XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        g_root[0] = '\0';
    }
}

static void root_teardown(void)
{
    DIR *d = g_root[0] ? opendir(g_root) : NULL;
    struct dirent *e;
    char p[400];

    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", g_root, e->d_name);
        rm_store_dir(p);
    }
    if (d)
        closedir(d);
    if (g_root[0])
        rmdir(g_root);
}

/* A fresh directory for one store, inside g_root. */
static void make_dir(char dst[128], const char *what)
{
    ck_assert_msg(g_root[0] != '\0', "no test root directory");
    snprintf(dst, 128, "%s/%s-XXXXXX", g_root, what);
    ck_assert_ptr_nonnull(mkdtemp(dst));
}

static void setup(void)
{
    make_dir(g_dir, "store");
    g_dir2[0] = '\0';
    g_st = open_store(g_dir, 1ull << 30);
}

static void teardown(void)
{
    meta_store_close(g_st);
    g_st = NULL;
    ckpt_fault_disarm_all();
    rm_store_dir(g_dir);
    g_dir[0] = '\0';
    if (g_dir2[0])
        rm_store_dir(g_dir2);
    g_dir2[0] = '\0';
}

static MDB_txn *wbegin(void)
{
    MDB_txn *t = NULL;
    ck_assert_int_eq(meta_store_txn_begin(g_st, NULL, false, &t), 0);
    return t;
}

static MDB_txn *rbegin(void)
{
    MDB_txn *t = NULL;
    ck_assert_int_eq(meta_store_txn_begin(g_st, NULL, true, &t), 0);
    return t;
}

static MDB_txn *child(MDB_txn *parent)
{
    MDB_txn *t = NULL;
    ck_assert_int_eq(meta_store_txn_begin(g_st, parent, false, &t), 0);
    return t;
}

static void commit(MDB_txn *t)
{
    ck_assert_int_eq(meta_store_txn_commit(t), 0);
}

static void assert_fsck(MDB_txn *t)
{
    struct meta_fsck_report r;
    ck_assert_int_eq(meta_store_fsck(t, &r), 0);
    ck_assert_msg(r.problems == 0, "fsck: %llu problem(s), first: %s",
                  (unsigned long long)r.problems, r.first);
}

static uint64_t digest(MDB_txn *t)
{
    uint64_t d = 0;
    ck_assert_int_eq(meta_store_digest(t, &d), 0);
    return d;
}

static void make_layout(struct ckpt_layout *l, unsigned k, unsigned m,
                        uint32_t first_tid)
{
    ckpt_layout_default(l);
    l->k = (uint8_t)k;
    l->m = (uint8_t)m;
    l->width = (uint16_t)(k + m);
    for (unsigned i = 0; i < k + m; i++)
        l->targets[i] = first_tid + i;
}

static uint64_t mkfile(MDB_txn *t, uint64_t parent, const char *name,
                       const struct ckpt_layout *l)
{
    struct meta_attr a;
    ck_assert_int_eq(
        meta_store_mknod(t, parent, name, S_IFREG | 0644, 1000, 100, 0, l,
                         &T1, &a),
        0);
    return a.ino;
}

static uint64_t mkdir_(MDB_txn *t, uint64_t parent, const char *name)
{
    struct meta_attr a;
    ck_assert_int_eq(meta_store_mkdir(t, parent, name, 0755, 1000, 100, &T1,
                                      &a),
                     0);
    return a.ino;
}

static struct meta_attr getattr_(MDB_txn *t, uint64_t ino)
{
    struct meta_attr a;
    ck_assert_int_eq(meta_store_getattr(t, ino, &a), 0);
    return a;
}

static uint64_t lookup_ino(MDB_txn *t, uint64_t parent, const char *name)
{
    struct meta_attr a;
    int rc = meta_store_lookup(t, parent, name, &a);
    return rc == 0 ? a.ino : 0;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* readdir into arrays. */
#define LS_MAX 64
struct ls {
    int n, max;
    char names[LS_MAX][META_NAME_MAX + 1];
    uint64_t inos[LS_MAX];
    uint32_t types[LS_MAX];
    uint64_t next[LS_MAX];
};

static int ls_cb(const char *name, uint64_t ino, uint32_t type,
                 uint64_t next_cookie, void *ctx)
{
    struct ls *l = ctx;
    if (l->n >= l->max || l->n >= LS_MAX)
        return 1;
    strcpy(l->names[l->n], name);
    l->inos[l->n] = ino;
    l->types[l->n] = type;
    l->next[l->n] = next_cookie;
    l->n++;
    return 0;
}

static struct ls *ls_dir(MDB_txn *t, uint64_t dir, uint64_t cookie, int max)
{
    static struct ls l;
    memset(&l, 0, sizeof(l));
    l.max = max;
    ck_assert_int_eq(meta_store_readdir(t, dir, cookie, ls_cb, &l), 0);
    return &l;
}

/* Index of name in a listing, or -1. */
static int ls_find(const struct ls *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return i;
    return -1;
}

static void name_of_len(char *buf, size_t len, char c)
{
    memset(buf, c, len);
    buf[len] = '\0';
}

/* ---- open, superblock, root ---------------------------------------------------- */

START_TEST(test_open_root)
{
    MDB_txn *t = rbegin();
    struct meta_attr a;
    struct meta_store_info info;
    struct meta_statfs sf;

    a = getattr_(t, META_ROOT_INO);
    ck_assert_uint_eq(a.mode, S_IFDIR | 0755);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert_uint_eq(a.uid, 0);
    ck_assert_uint_eq(a.gid, 0);
    ck_assert_uint_eq(a.parent, META_ROOT_INO);
    ck_assert(ts_eq(a.mtime, T0));
    ck_assert_int_eq(meta_store_lookup(t, META_ROOT_INO, ".", &a), 0);
    ck_assert_uint_eq(a.ino, META_ROOT_INO);
    ck_assert_int_eq(meta_store_lookup(t, META_ROOT_INO, "..", &a), 0);
    ck_assert_uint_eq(a.ino, META_ROOT_INO);
    ck_assert_int_eq(meta_store_getattr(t, 2, &a), -ENOENT);
    ck_assert_int_eq(meta_store_getattr(t, 0, &a), -ENOENT);

    ck_assert_int_eq(meta_store_info(t, &info), 0);
    ck_assert_uint_eq(info.format_version, META_STORE_FORMAT_VERSION);
    ck_assert_str_eq(info.cluster_name, "testcluster");
    ck_assert_uint_eq(info.cluster_uuid[15], 16);
    ck_assert(info.root_created);
    ck_assert_uint_eq(info.next_ino, 2);
    ck_assert_int_eq(meta_store_statfs(t, &sf), 0);
    ck_assert_uint_eq(sf.inodes, 1);
    ck_assert_uint_eq(sf.dentries, 0);
    ck_assert_uint_eq(sf.map_bytes, 1ull << 30);
    ck_assert_uint_gt(sf.used_bytes, 0);
    assert_fsck(t);
    meta_store_txn_abort(t);

    /* A store of another cluster is refused; the right uuid reopens. */
    meta_store_close(g_st);
    {
        struct meta_store_opts o;
        meta_store *st = NULL;
        uint8_t other[16] = {9};
        memset(&o, 0, sizeof(o));
        o.cluster_uuid = other;
        ck_assert_int_eq(meta_store_open(g_dir, &o, &st), CKPT_E_CLUSTER);
        ck_assert_ptr_null(st);
        ck_assert_int_eq(meta_store_open(g_dir, NULL, &st), 0);
        meta_store_close(st);
    }
    g_st = open_store(g_dir, 1ull << 30);
    meta_store_close(NULL);
}
END_TEST

START_TEST(test_dbi_open_and_txn_args)
{
    MDB_dbi dbi;
    MDB_txn *t;
    MDB_val k = {3, "key"}, v = {5, "value"};

    ck_assert_int_eq(meta_store_dbi_open(g_st, "ns.mine", 0, &dbi), -EINVAL);
    ck_assert_int_eq(meta_store_dbi_open(g_st, "cluster.nodes", 0, &dbi), 0);
    t = wbegin();
    ck_assert_int_eq(mdb_put(t, dbi, &k, &v, 0), 0);
    mkdir_(t, META_ROOT_INO, "d"); /* one txn over both modules' tables */
    commit(t);
    t = rbegin();
    ck_assert_int_eq(mdb_get(t, dbi, &k, &v), 0);
    ck_assert_uint_eq(v.mv_size, 5);
    ck_assert(lookup_ino(t, META_ROOT_INO, "d") != 0);
    ck_assert_ptr_eq(meta_store_env(g_st), mdb_txn_env(t));
    /* Read txns can be reset and renewed. */
    meta_store_txn_reset(t);
    ck_assert_int_eq(meta_store_txn_renew(t), 0);
    ck_assert(lookup_ino(t, META_ROOT_INO, "d") != 0);
    /* Read-only children do not exist. */
    ck_assert_int_eq(meta_store_txn_begin(g_st, t, true, &t), -EINVAL);
    meta_store_txn_abort(t);
    meta_store_txn_abort(NULL);
    ck_assert_int_eq(meta_store_errno(MDB_MAP_FULL), -ENOSPC);
    ck_assert_int_eq(meta_store_errno(MDB_TXN_FULL), -ENOBUFS);
    ck_assert_int_eq(meta_store_errno(MDB_CORRUPTED), -EIO);
    ck_assert_int_eq(meta_store_errno(EACCES), -EACCES);
}
END_TEST

/* ---- lookup, names ------------------------------------------------------------- */

START_TEST(test_lookup_errors_and_name_limits)
{
    MDB_txn *t = wbegin();
    char n255[256], n256[257];
    struct meta_attr a;
    struct meta_rename_result rr;
    uint64_t d, f, ino;
    bool last;
    struct ls *l;

    d = mkdir_(t, META_ROOT_INO, "d");
    f = mkfile(t, d, "f", NULL);
    ck_assert_int_eq(meta_store_lookup(t, d, "nope", &a), -ENOENT);
    ck_assert_int_eq(meta_store_lookup(t, f, "x", &a), -ENOTDIR);
    ck_assert_int_eq(meta_store_lookup(t, 999, "x", &a), -ENOENT);
    ck_assert_int_eq(meta_store_lookup(t, d, "", &a), -EINVAL);
    ck_assert_int_eq(meta_store_lookup(t, d, "a/b", &a), -EINVAL);
    ck_assert_int_eq(meta_store_lookup(t, d, "..", &a), 0);
    ck_assert_uint_eq(a.ino, META_ROOT_INO);
    ck_assert_int_eq(meta_store_lookup(t, d, ".", &a), 0);
    ck_assert_uint_eq(a.ino, d);

    name_of_len(n255, 255, 'x');
    name_of_len(n256, 256, 'y');
    ck_assert_int_eq(meta_store_lookup(t, d, n256, &a), -ENAMETOOLONG);
    ino = mkfile(t, d, n255, NULL);
    ck_assert_uint_eq(lookup_ino(t, d, n255), ino);
    l = ls_dir(t, d, META_COOKIE_START, 10);
    ck_assert_int_ge(ls_find(l, n255), 0);
    ck_assert_int_eq(meta_store_mknod(t, d, n256, S_IFREG, 0, 0, 0, NULL, &T1,
                                      &a),
                     -ENAMETOOLONG);
    ck_assert_int_eq(meta_store_mkdir(t, d, n256, 0755, 0, 0, &T1, &a),
                     -ENAMETOOLONG);
    ck_assert_int_eq(meta_store_symlink(t, d, n256, "x", 0, 0, &T1, &a),
                     -ENAMETOOLONG);
    ck_assert_int_eq(meta_store_link(t, f, d, n256, &T1, &a), -ENAMETOOLONG);
    ck_assert_int_eq(meta_store_rename(t, d, "f", d, n256, 0, &T1, &rr),
                     -ENAMETOOLONG);
    ck_assert_int_eq(meta_store_unlink(t, d, n256, &T1, &ino, &last),
                     -ENAMETOOLONG);
    ck_assert_int_eq(meta_store_rename(t, d, n255, d, "short", 0, &T1, &rr),
                     0);
    ck_assert_int_eq(meta_store_rename(t, d, "short", d, n255, 0, &T1, &rr),
                     0);
    ck_assert_int_eq(meta_store_unlink(t, d, n255, &T1, &ino, &last), 0);
    ck_assert(last);

    /* "." and ".." are never names to create or remove. */
    ck_assert_int_eq(meta_store_mknod(t, d, ".", S_IFREG, 0, 0, 0, NULL, &T1,
                                      &a),
                     -EINVAL);
    ck_assert_int_eq(meta_store_mkdir(t, d, "..", 0755, 0, 0, &T1, &a),
                     -EINVAL);
    ck_assert_int_eq(meta_store_unlink(t, d, ".", &T1, &ino, &last), -EINVAL);
    ck_assert_int_eq(meta_store_rmdir(t, d, "..", &T1, &ino), -EINVAL);
    ck_assert_int_eq(meta_store_rmdir(t, META_ROOT_INO, ".", &T1, &ino),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, d, "f", d, "..", 0, &T1, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_mknod(t, d, "a/b", S_IFREG, 0, 0, 0, NULL,
                                      &T1, &a),
                     -EINVAL);
    ck_assert_int_eq(meta_store_mknod(t, d, "", S_IFREG, 0, 0, 0, NULL, &T1,
                                      &a),
                     -EINVAL);
    assert_fsck(t);
    commit(t);
}
END_TEST

/* ---- create ---------------------------------------------------------------------- */

START_TEST(test_mknod_types_and_errors)
{
    MDB_txn *t = wbegin();
    struct meta_attr a, p0, p1, b;
    struct ckpt_layout l, bad;
    uint64_t d, f;

    d = mkdir_(t, META_ROOT_INO, "d");
    p0 = getattr_(t, d);
    make_layout(&l, 4, 2, 100);
    ck_assert_int_eq(meta_store_mknod(t, d, "reg", S_IFREG | 0640, 7, 8, 0,
                                      &l, &T2, &a),
                     0);
    ck_assert_uint_eq(a.mode, S_IFREG | 0640);
    ck_assert_uint_eq(a.uid, 7);
    ck_assert_uint_eq(a.gid, 8);
    ck_assert_uint_eq(a.nlink, 1);
    ck_assert_uint_eq(a.size, 0);
    ck_assert_uint_eq(a.data_gen, 1);
    ck_assert(a.has_layout);
    ck_assert(ts_eq(a.atime, T2) && ts_eq(a.mtime, T2) && ts_eq(a.ctime, T2));
    p1 = getattr_(t, d);
    ck_assert(ts_eq(p1.mtime, T2) && ts_eq(p1.ctime, T2));
    ck_assert(!ts_eq(p0.mtime, T2));
    ck_assert_uint_eq(p1.nlink, 2);
    f = a.ino;

    ck_assert_int_eq(meta_store_mknod(t, d, "fifo", S_IFIFO | 0600, 0, 0, 77,
                                      NULL, &T1, &a),
                     0);
    ck_assert_uint_eq(a.mode, S_IFIFO | 0600);
    ck_assert_uint_eq(a.rdev, 0);
    ck_assert_int_eq(meta_store_mknod(t, d, "sock", S_IFSOCK | 0600, 0, 0, 0,
                                      NULL, &T1, &a),
                     0);
    ck_assert_uint_eq(a.mode & S_IFMT, S_IFSOCK);
    ck_assert_int_eq(meta_store_mknod(t, d, "chr", S_IFCHR | 0600, 0, 0,
                                      0x0501, NULL, &T1, &a),
                     0);
    ck_assert_uint_eq(a.rdev, 0x0501);
    ck_assert_int_eq(meta_store_mknod(t, d, "blk", S_IFBLK | 0600, 0, 0,
                                      0x0802, NULL, &T1, &b),
                     0);
    ck_assert_uint_eq(b.rdev, 0x0802);
    ck_assert_uint_gt(b.ino, a.ino);
    ck_assert_uint_gt(b.generation, a.generation);
    ck_assert_int_eq(meta_store_mknod(t, d, "plain", 0644, 0, 0, 0, NULL, &T1,
                                      &a),
                     0);
    ck_assert_uint_eq(a.mode, S_IFREG | 0644);
    ck_assert(!a.has_layout);

    ck_assert_int_eq(meta_store_mknod(t, d, "reg", S_IFREG | 0644, 0, 0, 0,
                                      NULL, &T1, &a),
                     -EEXIST);
    mkdir_(t, d, "sub");
    ck_assert_int_eq(meta_store_mknod(t, d, "sub", S_IFREG, 0, 0, 0, NULL,
                                      &T1, &a),
                     -EEXIST);
    ck_assert_int_eq(meta_store_mkdir(t, d, "reg", 0755, 0, 0, &T1, &a),
                     -EEXIST);
    ck_assert_int_eq(meta_store_mknod(t, d, "x", S_IFDIR | 0755, 0, 0, 0,
                                      NULL, &T1, &a),
                     -EINVAL);
    ck_assert_int_eq(meta_store_mknod(t, d, "x", S_IFLNK | 0777, 0, 0, 0,
                                      NULL, &T1, &a),
                     -EINVAL);
    ck_assert_int_eq(meta_store_mknod(t, d, "x", S_IFIFO, 0, 0, 0, &l, &T1,
                                      &a),
                     -EINVAL);
    bad = l;
    bad.chunk_size = 1000;
    ck_assert_int_eq(meta_store_mknod(t, d, "x", S_IFREG, 0, 0, 0, &bad, &T1,
                                      &a),
                     -EINVAL);
    ck_assert_int_eq(meta_store_mknod(t, 4242, "x", S_IFREG, 0, 0, 0, NULL,
                                      &T1, &a),
                     -ENOENT);
    ck_assert_int_eq(meta_store_mknod(t, f, "x", S_IFREG, 0, 0, 0, NULL, &T1,
                                      &a),
                     -ENOTDIR);
    ck_assert_int_eq(meta_store_mkdir(t, f, "x", 0755, 0, 0, &T1, &a),
                     -ENOTDIR);
    ck_assert_int_eq(meta_store_lookup(t, d, "x", &a), -ENOENT);
    assert_fsck(t);
    commit(t);
}
END_TEST

START_TEST(test_setgid_directory)
{
    MDB_txn *t = wbegin();
    struct meta_attr a;
    struct meta_setattr sa = {0};
    uint64_t d;

    d = mkdir_(t, META_ROOT_INO, "shared");
    sa.mask = META_SETATTR_MODE | META_SETATTR_GID;
    sa.mode = 02775;
    sa.gid = 555;
    ck_assert_int_eq(meta_store_setattr(t, d, &sa, &T1, &a, NULL), 0);
    ck_assert_uint_eq(a.mode, S_IFDIR | 02775);
    ck_assert_int_eq(meta_store_mknod(t, d, "f", S_IFREG | 0644, 1, 2, 0,
                                      NULL, &T1, &a),
                     0);
    ck_assert_uint_eq(a.gid, 555);
    ck_assert_uint_eq(a.mode, S_IFREG | 0644);
    ck_assert_int_eq(meta_store_mkdir(t, d, "sub", 0755, 1, 2, &T1, &a), 0);
    ck_assert_uint_eq(a.gid, 555);
    ck_assert_uint_eq(a.mode, S_IFDIR | 02755);
    commit(t);
}
END_TEST

START_TEST(test_mkdir_rmdir)
{
    MDB_txn *t = wbegin();
    struct meta_attr a;
    uint64_t d, s, f, ino = 0;
    int seen = 0;

    d = mkdir_(t, META_ROOT_INO, "d");
    ck_assert_uint_eq(getattr_(t, META_ROOT_INO).nlink, 3);
    a = getattr_(t, d);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert_uint_eq(a.parent, META_ROOT_INO);
    s = mkdir_(t, d, "s");
    ck_assert_uint_eq(getattr_(t, d).nlink, 3);
    ck_assert_uint_eq(getattr_(t, s).parent, d);
    ck_assert_int_eq(meta_store_lookup(t, s, "..", &a), 0);
    ck_assert_uint_eq(a.ino, d);
    f = mkfile(t, s, "f", NULL);

    ck_assert_int_eq(meta_store_rmdir(t, d, "s", &T2, &ino), -ENOTEMPTY);
    ck_assert_int_eq(meta_store_rmdir(t, s, "f", &T2, &ino), -ENOTDIR);
    ck_assert_int_eq(meta_store_rmdir(t, d, "zz", &T2, &ino), -ENOENT);
    ck_assert_int_eq(meta_store_rmdir(t, f, "zz", &T2, &ino), -ENOTDIR);
    ck_assert_int_eq(meta_store_unlink(t, d, "s", &T2, &ino, NULL), -EISDIR);
    ck_assert_int_eq(meta_store_unlink(t, s, "f", &T2, &ino, NULL), 0);
    ck_assert_int_eq(meta_store_destroy(t, f), 0);
    ck_assert_int_eq(meta_store_rmdir(t, d, "s", &T2, &ino), 0);
    ck_assert_uint_eq(ino, s);
    a = getattr_(t, d);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert(ts_eq(a.mtime, T2) && ts_eq(a.ctime, T2));
    a = getattr_(t, s);
    ck_assert_uint_eq(a.nlink, 0);
    /* A removed directory that is still open: empty, no creation in it. */
    ck_assert_int_eq(meta_store_mknod(t, s, "new", S_IFREG, 0, 0, 0, NULL,
                                      &T2, &a),
                     -ENOENT);
    ck_assert_int_eq(meta_store_mkdir(t, s, "new", 0755, 0, 0, &T2, &a),
                     -ENOENT);
    ck_assert_int_eq(ls_dir(t, s, 0, 10)->n, 2);
    ck_assert_int_eq(meta_store_orphan_iter(t, 0, (meta_ino_cb)NULL, NULL),
                     -EINVAL);
    {
        struct meta_statfs sf;
        ck_assert_int_eq(meta_store_statfs(t, &sf), 0);
        ck_assert_uint_eq(sf.orphans, 1);
        seen = (int)sf.orphans;
    }
    ck_assert_int_eq(seen, 1);
    assert_fsck(t);
    ck_assert_int_eq(meta_store_destroy(t, d), -EBUSY);
    ck_assert_int_eq(meta_store_destroy(t, META_ROOT_INO), -EBUSY);
    ck_assert_int_eq(meta_store_destroy(t, s), 0);
    ck_assert_int_eq(meta_store_destroy(t, s), -ENOENT);
    ck_assert_int_eq(meta_store_getattr(t, s, &a), -ENOENT);

    /* ".." of a removed directory whose old parent is gone as well */
    d = mkdir_(t, META_ROOT_INO, "p");
    s = mkdir_(t, d, "q");
    ck_assert_int_eq(meta_store_rmdir(t, d, "q", &T3, &ino), 0);
    ck_assert_int_eq(meta_store_lookup(t, s, "..", &a), 0);
    ck_assert_uint_eq(a.ino, d);
    ck_assert_int_eq(meta_store_rmdir(t, META_ROOT_INO, "p", &T3, &ino), 0);
    ck_assert_int_eq(meta_store_destroy(t, d), 0);
    ck_assert_int_eq(meta_store_lookup(t, s, "..", &a), -ENOENT);
    ck_assert_int_eq(meta_store_lookup(t, s, "x", &a), -ENOENT);
    ck_assert_int_eq(meta_store_destroy(t, s), 0);
    assert_fsck(t);
    commit(t);
}
END_TEST

static int orphan_collect(uint64_t ino, void *ctx)
{
    uint64_t *v = ctx;
    v[++v[0]] = ino;
    return v[0] >= 8 ? 1 : 0;
}

START_TEST(test_symlink_link_unlink_orphans)
{
    MDB_txn *t = wbegin();
    struct meta_attr a;
    char buf[META_SYMLINK_MAX + 2], big[META_SYMLINK_MAX + 2];
    size_t len = 0;
    uint64_t d, f, sl, ino = 0, orphans[10] = {0};
    bool last = true;

    d = mkdir_(t, META_ROOT_INO, "d");
    f = mkfile(t, d, "f", NULL);
    ck_assert_int_eq(meta_store_symlink(t, d, "sl", "../some/target", 5, 6,
                                        &T1, &a),
                     0);
    sl = a.ino;
    ck_assert_uint_eq(a.mode, S_IFLNK | 0777);
    ck_assert_uint_eq(a.size, strlen("../some/target"));
    ck_assert_int_eq(meta_store_readlink(t, sl, buf, sizeof(buf), &len), 0);
    ck_assert_str_eq(buf, "../some/target");
    ck_assert_uint_eq(len, 14);
    ck_assert_int_eq(meta_store_readlink(t, sl, buf, 14, &len), -ERANGE);
    ck_assert_int_eq(meta_store_readlink(t, sl, buf, 15, &len), 0);
    ck_assert_int_eq(meta_store_readlink(t, f, buf, sizeof(buf), &len),
                     -EINVAL);
    ck_assert_int_eq(meta_store_readlink(t, d, buf, sizeof(buf), &len),
                     -EINVAL);
    ck_assert_int_eq(meta_store_readlink(t, 9999, buf, sizeof(buf), &len),
                     -ENOENT);
    ck_assert_int_eq(meta_store_symlink(t, d, "e", "", 0, 0, &T1, &a),
                     -ENOENT);
    name_of_len(big, META_SYMLINK_MAX + 1, 'p');
    ck_assert_int_eq(meta_store_symlink(t, d, "long", big, 0, 0, &T1, &a),
                     -ENAMETOOLONG);
    big[META_SYMLINK_MAX] = '\0';
    ck_assert_int_eq(meta_store_symlink(t, d, "long", big, 0, 0, &T1, &a), 0);
    ck_assert_int_eq(meta_store_readlink(t, a.ino, buf, sizeof(buf), &len),
                     0);
    ck_assert_uint_eq(len, META_SYMLINK_MAX);
    ck_assert_int_eq(memcmp(buf, big, len), 0);
    ck_assert_int_eq(meta_store_symlink(t, d, "sl", "x", 0, 0, &T1, &a),
                     -EEXIST);

    /* link */
    ck_assert_int_eq(meta_store_link(t, f, META_ROOT_INO, "f2", &T2, &a), 0);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert(ts_eq(a.ctime, T2));
    ck_assert(ts_eq(getattr_(t, META_ROOT_INO).mtime, T2));
    ck_assert_uint_eq(lookup_ino(t, META_ROOT_INO, "f2"), f);
    ck_assert_int_eq(meta_store_link(t, d, META_ROOT_INO, "d2", &T2, &a),
                     -EPERM);
    ck_assert_int_eq(meta_store_link(t, f, d, "sl", &T2, &a), -EEXIST);
    ck_assert_int_eq(meta_store_link(t, f, f, "x", &T2, &a), -ENOTDIR);
    ck_assert_int_eq(meta_store_link(t, 9999, d, "x", &T2, &a), -ENOENT);
    ck_assert_int_eq(meta_store_link(t, f, 9999, "x", &T2, &a), -ENOENT);
    ck_assert_int_eq(meta_store_link(t, sl, d, "sl2", &T2, &a), 0);

    /* unlink: last only when no name is left */
    ck_assert_int_eq(meta_store_unlink(t, d, "f", &T3, &ino, &last), 0);
    ck_assert_uint_eq(ino, f);
    ck_assert(!last);
    a = getattr_(t, f);
    ck_assert_uint_eq(a.nlink, 1);
    ck_assert(ts_eq(a.ctime, T3));
    ck_assert(ts_eq(getattr_(t, d).mtime, T3));
    ck_assert_int_eq(meta_store_unlink(t, d, "f", &T3, &ino, &last), -ENOENT);
    ck_assert_int_eq(meta_store_unlink(t, f, "f", &T3, &ino, &last),
                     -ENOTDIR);
    ck_assert_int_eq(meta_store_unlink(t, META_ROOT_INO, "f2", &T3, &ino,
                                       &last),
                     0);
    ck_assert(last);
    ck_assert_uint_eq(getattr_(t, f).nlink, 0);
    /* An orphan can not get a name back. */
    ck_assert_int_eq(meta_store_link(t, f, d, "back", &T3, &a), -ENOENT);
    ck_assert_int_eq(meta_store_unlink(t, d, "sl", &T3, &ino, &last), 0);
    ck_assert(!last);
    ck_assert_int_eq(meta_store_unlink(t, d, "sl2", &T3, &ino, &last), 0);
    ck_assert(last);
    ck_assert_int_eq(meta_store_orphan_iter(t, 0, orphan_collect, orphans), 0);
    ck_assert_uint_eq(orphans[0], 2);
    ck_assert_uint_eq(orphans[1], f);
    ck_assert_uint_eq(orphans[2], sl);
    orphans[0] = 0;
    ck_assert_int_eq(meta_store_orphan_iter(t, f + 1, orphan_collect,
                                            orphans),
                     0);
    ck_assert_uint_eq(orphans[0], 1);
    ck_assert_uint_eq(orphans[1], sl);
    assert_fsck(t);
    ck_assert_int_eq(meta_store_destroy(t, sl), 0);
    ck_assert_int_eq(meta_store_destroy(t, f), 0);
    ck_assert_int_eq(meta_store_readlink(t, sl, buf, sizeof(buf), &len),
                     -ENOENT);
    assert_fsck(t);
    commit(t);
}
END_TEST

/* ---- setattr ---------------------------------------------------------------------- */

START_TEST(test_setattr)
{
    MDB_txn *t = wbegin();
    struct meta_attr a, b;
    struct meta_setattr sa;
    uint64_t d, f, fifo, old = 0;

    d = mkdir_(t, META_ROOT_INO, "d");
    f = mkfile(t, d, "f", NULL);
    ck_assert_int_eq(meta_store_mknod(t, d, "p", S_IFIFO | 0600, 0, 0, 0,
                                      NULL, &T1, &a),
                     0);
    fifo = a.ino;

    memset(&sa, 0, sizeof(sa));
    sa.mask = META_SETATTR_MODE | META_SETATTR_UID | META_SETATTR_GID;
    sa.mode = S_IFDIR | 04711; /* type bits are ignored */
    sa.uid = 42;
    sa.gid = 43;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T2, &a, &old), 0);
    ck_assert_uint_eq(a.mode, S_IFREG | 04711);
    ck_assert_uint_eq(a.uid, 42);
    ck_assert_uint_eq(a.gid, 43);
    ck_assert(ts_eq(a.ctime, T2));
    ck_assert(ts_eq(a.mtime, T1));
    ck_assert_uint_eq(old, 0);

    sa.mask = META_SETATTR_SIZE;
    sa.size = 1 << 20;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &a, &old), 0);
    ck_assert_uint_eq(a.size, 1 << 20);
    ck_assert_uint_eq(a.data_gen, 2);
    ck_assert(ts_eq(a.mtime, T3) && ts_eq(a.ctime, T3));
    ck_assert_uint_eq(old, 0);
    sa.size = 4096;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &a, &old), 0);
    ck_assert_uint_eq(old, 1 << 20);
    ck_assert_uint_eq(a.data_gen, 3);
    /* Same size: no new data generation. */
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &a, &old), 0);
    ck_assert_uint_eq(a.data_gen, 3);
    ck_assert_uint_eq(old, 4096);
    ck_assert_int_eq(meta_store_setattr(t, d, &sa, &T3, &a, &old), -EISDIR);
    ck_assert_int_eq(meta_store_setattr(t, fifo, &sa, &T3, &a, &old),
                     -EINVAL);
    sa.size = (uint64_t)INT64_MAX + 1;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &a, &old), -EFBIG);

    sa.mask = META_SETATTR_ATIME | META_SETATTR_MTIME;
    sa.atime = T0;
    sa.mtime = T1;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &a, NULL), 0);
    ck_assert(ts_eq(a.atime, T0) && ts_eq(a.mtime, T1) && ts_eq(a.ctime, T3));
    sa.mask = META_SETATTR_ATIME | META_SETATTR_ATIME_NOW |
              META_SETATTR_MTIME_NOW | META_SETATTR_CTIME;
    sa.ctime = T1;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T2, &a, NULL), 0);
    ck_assert(ts_eq(a.atime, T2) && ts_eq(a.mtime, T2) && ts_eq(a.ctime, T1));

    /* mask 0 changes nothing, not even ctime */
    sa.mask = 0;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &b, NULL), 0);
    ck_assert(ts_eq(b.ctime, T1));
    sa.mask = 0x8000;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &b, NULL), -EINVAL);
    sa.mask = META_SETATTR_ATIME;
    sa.atime.tv_nsec = 1000000000;
    ck_assert_int_eq(meta_store_setattr(t, f, &sa, &T3, &b, NULL), -EINVAL);
    ck_assert_int_eq(meta_store_setattr(t, 9999, &sa, &T3, &b, NULL),
                     -EINVAL);
    sa.atime.tv_nsec = 0;
    ck_assert_int_eq(meta_store_setattr(t, 9999, &sa, &T3, &b, NULL),
                     -ENOENT);

    /* flags and data generations */
    ck_assert_int_eq(meta_store_flags_update(t, f, META_INODE_F_INCOMPLETE, 0),
                     0);
    ck_assert_uint_eq(getattr_(t, f).flags, META_INODE_F_INCOMPLETE);
    ck_assert_int_eq(meta_store_flags_update(t, f, 0, META_INODE_F_INCOMPLETE),
                     0);
    ck_assert_uint_eq(getattr_(t, f).flags, 0);
    ck_assert_int_eq(meta_store_flags_update(t, f, 0x100, 0), -EINVAL);
    ck_assert_int_eq(meta_store_data_gen_bump(t, f, &old), 0);
    ck_assert_uint_eq(old, 4);
    ck_assert_uint_eq(getattr_(t, f).data_gen, 4);
    ck_assert_int_eq(meta_store_data_gen_bump(t, d, &old), -EINVAL);
    assert_fsck(t);
    commit(t);
}
END_TEST

/* ---- rename ------------------------------------------------------------------------- */

START_TEST(test_rename_files)
{
    MDB_txn *t = wbegin();
    struct meta_rename_result rr;
    struct meta_attr a;
    uint64_t d1, d2, f, g, h;

    d1 = mkdir_(t, META_ROOT_INO, "d1");
    d2 = mkdir_(t, META_ROOT_INO, "d2");
    f = mkfile(t, d1, "f", NULL);
    g = mkfile(t, d2, "g", NULL);
    h = mkfile(t, d2, "h", NULL);
    ck_assert_int_eq(meta_store_link(t, h, d1, "hlink", &T1, &a), 0);

    /* file over file in another directory: g loses its last name */
    ck_assert_int_eq(meta_store_rename(t, d1, "f", d2, "g", 0, &T2, &rr), 0);
    ck_assert_uint_eq(rr.moved_ino, f);
    ck_assert_uint_eq(rr.replaced_ino, g);
    ck_assert(rr.replaced_last);
    ck_assert_uint_eq(lookup_ino(t, d2, "g"), f);
    ck_assert_uint_eq(lookup_ino(t, d1, "f"), 0);
    a = getattr_(t, g);
    ck_assert_uint_eq(a.nlink, 0);
    ck_assert(ts_eq(a.ctime, T2));
    ck_assert(ts_eq(getattr_(t, f).ctime, T2));
    ck_assert(ts_eq(getattr_(t, d1).mtime, T2));
    ck_assert(ts_eq(getattr_(t, d2).mtime, T2));
    ck_assert_uint_eq(getattr_(t, d1).nlink, 2);

    /* over a file that has another name: not the last */
    ck_assert_int_eq(meta_store_rename(t, d2, "g", d2, "h", 0, &T3, &rr), 0);
    ck_assert_uint_eq(rr.replaced_ino, h);
    ck_assert(!rr.replaced_last);
    ck_assert_uint_eq(getattr_(t, h).nlink, 1);

    /* hard links of one inode: POSIX no-op, both names stay */
    ck_assert_int_eq(meta_store_link(t, f, d1, "f-again", &T1, &a), 0);
    ck_assert_int_eq(meta_store_rename(t, d2, "h", d1, "f-again", 0, &T3,
                                       &rr),
                     0);
    ck_assert_uint_eq(lookup_ino(t, d2, "h"), f);
    ck_assert_uint_eq(lookup_ino(t, d1, "f-again"), f);
    ck_assert_uint_eq(rr.replaced_ino, 0);
    /* same name: no-op; with NOREPLACE: EEXIST */
    ck_assert_int_eq(meta_store_rename(t, d2, "h", d2, "h", 0, &T3, &rr), 0);
    ck_assert_uint_eq(lookup_ino(t, d2, "h"), f);
    ck_assert_int_eq(meta_store_rename(t, d2, "h", d2, "h",
                                       META_RENAME_NOREPLACE, &T3, &rr),
                     -EEXIST);

    /* NOREPLACE */
    ck_assert_int_eq(meta_store_rename(t, d2, "h", d1, "hlink",
                                       META_RENAME_NOREPLACE, &T3, &rr),
                     -EEXIST);
    ck_assert_int_eq(meta_store_rename(t, d2, "h", d1, "fresh",
                                       META_RENAME_NOREPLACE, &T3, &rr),
                     0);
    ck_assert_uint_eq(lookup_ino(t, d1, "fresh"), f);

    /* errors */
    ck_assert_int_eq(meta_store_rename(t, d1, "nope", d1, "x", 0, &T3, &rr),
                     -ENOENT);
    ck_assert_int_eq(meta_store_rename(t, d1, "fresh", 9999, "x", 0, &T3,
                                       &rr),
                     -ENOENT);
    ck_assert_int_eq(meta_store_rename(t, d1, "fresh", f, "x", 0, &T3, &rr),
                     -ENOTDIR);
    ck_assert_int_eq(meta_store_rename(t, d1, "fresh", d1, "x",
                                       META_RENAME_NOREPLACE |
                                           META_RENAME_EXCHANGE,
                                       &T3, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, d1, "fresh", d1, "x", 4, &T3, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, d1, "fresh", d1, "x",
                                       META_RENAME_EXCHANGE, &T3, &rr),
                     -ENOENT);
    assert_fsck(t);
    commit(t);
}
END_TEST

START_TEST(test_rename_dirs)
{
    MDB_txn *t = wbegin();
    struct meta_rename_result rr;
    struct meta_attr a;
    uint64_t A, B, s, e, ne, deep, f;

    A = mkdir_(t, META_ROOT_INO, "A");
    B = mkdir_(t, META_ROOT_INO, "B");
    s = mkdir_(t, A, "s");
    deep = mkdir_(t, s, "deep");
    e = mkdir_(t, B, "empty");
    ne = mkdir_(t, B, "nonempty");
    mkfile(t, ne, "x", NULL);
    f = mkfile(t, B, "file", NULL);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert_uint_eq(getattr_(t, B).nlink, 4);

    ck_assert_int_eq(meta_store_rename(t, A, "s", B, "nonempty", 0, &T2, &rr),
                     -ENOTEMPTY);
    ck_assert_int_eq(meta_store_rename(t, A, "s", B, "file", 0, &T2, &rr),
                     -ENOTDIR);
    ck_assert_int_eq(meta_store_rename(t, B, "file", B, "empty", 0, &T2, &rr),
                     -EISDIR);
    ck_assert_int_eq(meta_store_rename(t, A, "s", deep, "x", 0, &T2, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, A, "s", s, "x", 0, &T2, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, META_ROOT_INO, "A", deep, "A2", 0,
                                       &T2, &rr),
                     -EINVAL);
    /* target is an ancestor of the source: not empty */
    ck_assert_int_eq(meta_store_rename(t, s, "deep", META_ROOT_INO, "A", 0,
                                       &T2, &rr),
                     -ENOTEMPTY);

    /* dir over an empty dir in another parent */
    ck_assert_int_eq(meta_store_rename(t, A, "s", B, "empty", 0, &T2, &rr),
                     0);
    ck_assert_uint_eq(rr.moved_ino, s);
    ck_assert_uint_eq(rr.replaced_ino, e);
    ck_assert(rr.replaced_last);
    ck_assert_uint_eq(getattr_(t, e).nlink, 0);
    ck_assert_uint_eq(getattr_(t, A).nlink, 2);
    ck_assert_uint_eq(getattr_(t, B).nlink, 4); /* -empty +s */
    a = getattr_(t, s);
    ck_assert_uint_eq(a.parent, B);
    ck_assert_uint_eq(a.nlink, 3);
    ck_assert(ts_eq(a.ctime, T2));
    ck_assert_int_eq(meta_store_lookup(t, s, "..", &a), 0);
    ck_assert_uint_eq(a.ino, B);
    ck_assert_uint_eq(lookup_ino(t, B, "empty"), s);
    ck_assert_uint_eq(lookup_ino(t, s, "deep"), deep);
    assert_fsck(t);
    ck_assert_int_eq(meta_store_destroy(t, e), 0);

    /* plain move of a directory to a new name in another parent */
    ck_assert_int_eq(meta_store_rename(t, B, "empty", A, "back", 0, &T3, &rr),
                     0);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert_uint_eq(getattr_(t, B).nlink, 3);
    ck_assert_uint_eq(getattr_(t, s).parent, A);
    /* rename within a directory keeps the counts */
    ck_assert_int_eq(meta_store_rename(t, A, "back", A, "again", 0, &T3, &rr),
                     0);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert_uint_eq(getattr_(t, s).parent, A);
    /* dir over an empty dir in the same parent */
    mkdir_(t, A, "e2");
    ck_assert_uint_eq(getattr_(t, A).nlink, 4);
    ck_assert_int_eq(meta_store_rename(t, A, "again", A, "e2", 0, &T3, &rr),
                     0);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert(rr.replaced_last);
    ck_assert_int_eq(meta_store_destroy(t, rr.replaced_ino), 0);
    (void)f;
    assert_fsck(t);
    commit(t);
}
END_TEST

START_TEST(test_rename_exchange)
{
    MDB_txn *t = wbegin();
    struct meta_rename_result rr;
    struct meta_attr a;
    struct ls *l;
    uint64_t A, B, dir, f, sub;

    A = mkdir_(t, META_ROOT_INO, "A");
    B = mkdir_(t, META_ROOT_INO, "B");
    f = mkfile(t, A, "f", NULL);
    dir = mkdir_(t, B, "dir");
    sub = mkdir_(t, dir, "sub");
    ck_assert_uint_eq(getattr_(t, A).nlink, 2);
    ck_assert_uint_eq(getattr_(t, B).nlink, 3);

    /* file <-> dir across parents */
    ck_assert_int_eq(meta_store_rename(t, A, "f", B, "dir",
                                       META_RENAME_EXCHANGE, &T2, &rr),
                     0);
    ck_assert_uint_eq(rr.moved_ino, f);
    ck_assert_uint_eq(rr.exchanged_ino, dir);
    ck_assert_uint_eq(rr.replaced_ino, 0);
    ck_assert_uint_eq(lookup_ino(t, A, "f"), dir);
    ck_assert_uint_eq(lookup_ino(t, B, "dir"), f);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert_uint_eq(getattr_(t, B).nlink, 2);
    a = getattr_(t, dir);
    ck_assert_uint_eq(a.parent, A);
    ck_assert_uint_eq(a.nlink, 3);
    ck_assert(ts_eq(a.ctime, T2));
    a = getattr_(t, f);
    ck_assert_uint_eq(a.nlink, 1);
    ck_assert(ts_eq(a.ctime, T2));
    l = ls_dir(t, A, 0, 10);
    ck_assert_int_eq(l->n, 3);
    ck_assert_str_eq(l->names[2], "f");
    ck_assert_uint_eq(l->types[2], S_IFDIR);
    ck_assert_uint_eq(l->inos[2], dir);
    l = ls_dir(t, B, 0, 10);
    ck_assert_int_eq(l->n, 3);
    ck_assert_uint_eq(l->types[2], S_IFREG);
    assert_fsck(t);

    /* a directory exchanged with something inside itself */
    mkfile(t, sub, "inner", NULL);
    ck_assert_int_eq(meta_store_rename(t, A, "f", sub, "inner",
                                       META_RENAME_EXCHANGE, &T3, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, dir, "sub", META_ROOT_INO, "A",
                                       META_RENAME_EXCHANGE, &T3, &rr),
                     -EINVAL);
    ck_assert_int_eq(meta_store_rename(t, A, "f", B, "none",
                                       META_RENAME_EXCHANGE, &T3, &rr),
                     -ENOENT);
    /* same parent exchange: no count changes */
    mkfile(t, A, "g", NULL);
    ck_assert_int_eq(meta_store_rename(t, A, "f", A, "g",
                                       META_RENAME_EXCHANGE, &T3, &rr),
                     0);
    ck_assert_uint_eq(lookup_ino(t, A, "g"), dir);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert_uint_eq(getattr_(t, dir).parent, A);
    /* dir <-> dir across parents */
    mkdir_(t, B, "bd");
    ck_assert_int_eq(meta_store_rename(t, A, "g", B, "bd",
                                       META_RENAME_EXCHANGE, &T3, &rr),
                     0);
    ck_assert_uint_eq(getattr_(t, dir).parent, B);
    ck_assert_uint_eq(getattr_(t, lookup_ino(t, A, "g")).parent, A);
    ck_assert_uint_eq(getattr_(t, A).nlink, 3);
    ck_assert_uint_eq(getattr_(t, B).nlink, 3);
    assert_fsck(t);
    commit(t);
}
END_TEST

/* ---- readdir ----------------------------------------------------------------------- */

static int stop_neg(const char *name, uint64_t ino, uint32_t type,
                    uint64_t next_cookie, void *ctx)
{
    (void)name, (void)ino, (void)type, (void)next_cookie, (void)ctx;
    return -ECANCELED;
}

START_TEST(test_readdir_basic)
{
    MDB_txn *t = wbegin();
    struct ls *l;
    uint64_t d, f, s;
    uint64_t resume;

    d = mkdir_(t, META_ROOT_INO, "d");
    f = mkfile(t, d, "b-file", NULL);
    s = mkdir_(t, d, "a-dir");
    mkfile(t, d, "c", NULL);
    l = ls_dir(t, d, META_COOKIE_START, 10);
    ck_assert_int_eq(l->n, 5);
    ck_assert_str_eq(l->names[0], ".");
    ck_assert_uint_eq(l->inos[0], d);
    ck_assert_uint_eq(l->next[0], META_COOKIE_DOT);
    ck_assert_str_eq(l->names[1], "..");
    ck_assert_uint_eq(l->inos[1], META_ROOT_INO);
    ck_assert_uint_eq(l->types[1], S_IFDIR);
    ck_assert_uint_eq(l->next[1], META_COOKIE_DOTDOT);
    ck_assert_str_eq(l->names[2], "b-file"); /* creation order */
    ck_assert_uint_eq(l->inos[2], f);
    ck_assert_uint_eq(l->types[2], S_IFREG);
    ck_assert_uint_eq(l->next[2], META_COOKIE_FIRST);
    ck_assert_str_eq(l->names[3], "a-dir");
    ck_assert_uint_eq(l->inos[3], s);
    ck_assert_uint_eq(l->types[3], S_IFDIR);

    /* A callback that stops with > 0 did not take the entry. */
    l = ls_dir(t, d, META_COOKIE_START, 3);
    ck_assert_int_eq(l->n, 3);
    resume = l->next[2];
    l = ls_dir(t, d, resume, 10);
    ck_assert_int_eq(l->n, 2);
    ck_assert_str_eq(l->names[0], "a-dir");
    ck_assert_str_eq(l->names[1], "c");
    l = ls_dir(t, d, META_COOKIE_DOT, 1);
    ck_assert_str_eq(l->names[0], "..");
    l = ls_dir(t, d, l->next[0], 1);
    ck_assert_str_eq(l->names[0], "b-file");
    ck_assert_int_eq(ls_dir(t, d, UINT64_MAX, 10)->n, 0);
    ck_assert_int_eq(ls_dir(t, s, META_COOKIE_DOTDOT, 10)->n, 0);

    /* Entries of other directories never leak in; errors. */
    ck_assert_int_eq(ls_dir(t, META_ROOT_INO, META_COOKIE_DOTDOT, 10)->n, 1);
    ck_assert_int_eq(meta_store_readdir(t, d, 0, stop_neg, NULL),
                     -ECANCELED);
    ck_assert_int_eq(meta_store_readdir(t, f, 0, ls_cb, l), -ENOTDIR);
    ck_assert_int_eq(meta_store_readdir(t, 9999, 0, ls_cb, l), -ENOENT);
    commit(t);
}
END_TEST

#define NBIG 100000
#define PAGE 1000
enum { B_PRESENT, B_SEEN, B_GONE_UNSEEN, B_GONE_SEEN };

struct big_ctx {
    uint8_t *state;    /* per original entry */
    uint8_t *extra;    /* per entry added during the listing */
    int taken, max;
    uint64_t next;
    bool fail;
    char why[128];
};

static int big_cb(const char *name, uint64_t ino, uint32_t type,
                  uint64_t next_cookie, void *ctx)
{
    struct big_ctx *c = ctx;
    int idx;

    (void)ino;
    if (c->taken >= c->max)
        return 1;
    c->taken++;
    c->next = next_cookie;
    if (name[0] == '.')
        return 0;
    idx = atoi(name + 1);
    if (type != S_IFREG) {
        c->fail = true;
        snprintf(c->why, sizeof(c->why), "%s has type %o", name, type);
    } else if (name[0] == 'f') {
        if (c->state[idx] != B_PRESENT) {
            c->fail = true;
            snprintf(c->why, sizeof(c->why), "%s listed in state %d", name,
                     c->state[idx]);
        }
        c->state[idx] = B_SEEN;
    } else if (name[0] == 'n') {
        if (c->extra[idx]++) {
            c->fail = true;
            snprintf(c->why, sizeof(c->why), "%s listed twice", name);
        }
    }
    return 0;
}

START_TEST(test_readdir_100k_paged_with_deletes)
{
    struct big_ctx c;
    MDB_txn *t;
    char name[32];
    uint64_t big, ino;
    struct timespec a, b;
    int pages = 0, extra_n = 0;
    double t_create, t_list = 0;

    memset(&c, 0, sizeof(c));
    c.state = calloc(NBIG, 1);
    c.extra = calloc(200 * 50, 1);
    ck_assert_ptr_nonnull(c.state);
    ck_assert_ptr_nonnull(c.extra);

    t = wbegin();
    big = mkdir_(t, META_ROOT_INO, "big");
    commit(t);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int batch = 0; batch < 4; batch++) {
        t = wbegin();
        for (int i = batch * (NBIG / 4); i < (batch + 1) * (NBIG / 4); i++) {
            snprintf(name, sizeof(name), "f%06d", i);
            /* No child txn per create here: each costs LMDB ~3 MB of
             * malloc, which makes this test crawl under ASan; children
             * are covered by the transaction tests. */
            ck_assert_int_eq(meta_store_mknod(t, big, name, S_IFREG | 0644,
                                              0, 0, 0, NULL, &T1, NULL),
                             0);
        }
        commit(t);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    t_create = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;

    c.next = META_COOKIE_START;
    for (;;) {
        struct timespec p0, p1;

        t = rbegin();
        c.taken = 0;
        c.max = PAGE;
        clock_gettime(CLOCK_MONOTONIC, &p0);
        ck_assert_int_eq(meta_store_readdir(t, big, c.next, big_cb, &c), 0);
        clock_gettime(CLOCK_MONOTONIC, &p1);
        t_list += (double)(p1.tv_sec - p0.tv_sec) +
                  (p1.tv_nsec - p0.tv_nsec) / 1e9;
        meta_store_txn_abort(t);
        ck_assert_msg(!c.fail, "%s", c.why);
        if (c.taken < PAGE)
            break;
        pages++;
        /* Between pages: delete entries ahead of and behind the cursor,
         * and add a few. */
        t = wbegin();
        for (int j = 0; j < 150; j++) {
            int idx = (int)(((uint64_t)pages * 7919u + (uint64_t)j * 104729u) %
                            NBIG);
            bool last = false;
            if (c.state[idx] >= B_GONE_UNSEEN)
                continue;
            snprintf(name, sizeof(name), "f%06d", idx);
            ck_assert_int_eq(meta_store_unlink(t, big, name, &T2, &ino,
                                               &last),
                             0);
            ck_assert(last);
            ck_assert_int_eq(meta_store_destroy(t, ino), 0);
            c.state[idx] = c.state[idx] == B_SEEN ? B_GONE_SEEN
                                                  : B_GONE_UNSEEN;
        }
        for (int j = 0; j < 5 && extra_n < 200 * 50; j++) {
            snprintf(name, sizeof(name), "n%06d", extra_n++);
            mkfile(t, big, name, NULL);
        }
        commit(t);
    }
    ck_assert_int_ge(pages, 80);
    for (int i = 0; i < NBIG; i++)
        ck_assert_msg(c.state[i] != B_PRESENT,
                      "f%06d was there all along but never listed", i);
    t = rbegin();
    assert_fsck(t);
    meta_store_txn_abort(t);
    if (getenv("CKPT_TEST_LOG"))
        fprintf(stderr,
                "meta_store: %d creates (4 txns) in %.2f s; %d "
                "pages of %d listed in %.3f s\n",
                NBIG, t_create, pages + 1, PAGE, t_list);
    free(c.state);
    free(c.extra);
}
END_TEST

/* ---- xattrs and directory layouts --------------------------------------------------- */

START_TEST(test_xattrs)
{
    MDB_txn *t = wbegin();
    char n255[256], n256[257], list[1024], buf[16];
    static uint8_t big[META_XATTR_SIZE_MAX + 1], back[META_XATTR_SIZE_MAX];
    size_t len = 0;
    uint64_t f;

    f = mkfile(t, META_ROOT_INO, "f", NULL);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + 7);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.a", "1", 1, 0, &T2,
                                          NULL),
                     0);
    ck_assert(ts_eq(getattr_(t, f).ctime, T2));
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.a", "22", 2,
                                          META_XATTR_CREATE, &T2, NULL),
                     -EEXIST);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.b", "x", 1,
                                          META_XATTR_REPLACE, &T2, NULL),
                     -ENODATA);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.a", "22", 2,
                                          META_XATTR_REPLACE, &T2, NULL),
                     0);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.a", "22", 2,
                                          META_XATTR_CREATE |
                                              META_XATTR_REPLACE,
                                          &T2, NULL),
                     -EINVAL);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.a", buf, sizeof(buf),
                                          &len),
                     0);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(memcmp(buf, "22", 2), 0);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.a", NULL, 0, &len), 0);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.a", buf, 1, &len),
                     -ERANGE);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.none", buf, 16, &len),
                     -ENODATA);
    ck_assert_int_eq(meta_store_xattr_get(t, 9999, "user.a", buf, 16, &len),
                     -ENOENT);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.empty", NULL, 0, 0,
                                          &T2, NULL),
                     0);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.empty", buf, 16, &len),
                     0);
    ck_assert_uint_eq(len, 0);

    /* limits: 64 KiB values, 255-byte names */
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.big", big,
                                          META_XATTR_SIZE_MAX, 0, &T2, NULL),
                     0);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.big", back,
                                          sizeof(back), &len),
                     0);
    ck_assert_uint_eq(len, META_XATTR_SIZE_MAX);
    ck_assert_int_eq(memcmp(back, big, len), 0);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.big2", big,
                                          META_XATTR_SIZE_MAX + 1, 0, &T2,
                                          NULL),
                     -E2BIG);
    name_of_len(n255, 255, 'n');
    memcpy(n255, "user.", 5);
    name_of_len(n256, 256, 'n');
    memcpy(n256, "user.", 5);
    ck_assert_int_eq(meta_store_xattr_set(t, f, n255, "v", 1, 0, &T2, NULL),
                     0);
    ck_assert_int_eq(meta_store_xattr_set(t, f, n256, "v", 1, 0, &T2, NULL),
                     -ERANGE);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "", "v", 1, 0, &T2, NULL),
                     -ERANGE);
    ck_assert_int_eq(meta_store_xattr_get(t, f, n256, buf, 16, &len),
                     -ERANGE);

    /* list: names in byte order, NUL-terminated */
    ck_assert_int_eq(meta_store_xattr_list(t, f, NULL, 0, &len), 0);
    ck_assert_uint_eq(len, 7 + 9 + 11 + 256);
    ck_assert_int_eq(meta_store_xattr_list(t, f, list, sizeof(list), &len),
                     0);
    ck_assert_str_eq(list, "user.a");
    ck_assert_str_eq(list + 7, "user.big");
    ck_assert_str_eq(list + 16, "user.empty");
    ck_assert_str_eq(list + 27, n255);
    ck_assert_int_eq(meta_store_xattr_list(t, f, list, 20, &len), -ERANGE);
    ck_assert_int_eq(meta_store_xattr_list(t, META_ROOT_INO, list,
                                           sizeof(list), &len),
                     0);
    ck_assert_uint_eq(len, 0);

    ck_assert_int_eq(meta_store_xattr_remove(t, f, "user.a", &T3), 0);
    ck_assert(ts_eq(getattr_(t, f).ctime, T3));
    ck_assert_int_eq(meta_store_xattr_remove(t, f, "user.a", &T3), -ENODATA);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.a", buf, 16, &len),
                     -ENODATA);
    ck_assert_int_eq(meta_store_xattr_remove(t, 9999, "user.a", &T3),
                     -ENOENT);

    /* destroy takes the xattrs along (fsck would see leftovers) */
    ck_assert_int_eq(meta_store_unlink(t, META_ROOT_INO, "f", &T3, NULL, NULL),
                     0);
    ck_assert_int_eq(meta_store_destroy(t, f), 0);
    assert_fsck(t);
    commit(t);
}
END_TEST

START_TEST(test_dir_layout_inheritance)
{
    MDB_txn *t = wbegin();
    struct ckpt_layout l, base;
    const char *why = NULL;
    uint64_t gp, p, c, f;

    gp = mkdir_(t, META_ROOT_INO, "gp");
    p = mkdir_(t, gp, "p");
    c = mkdir_(t, p, "c");
    f = mkfile(t, c, "f", NULL);
    ckpt_layout_default(&base);
    l = base;
    ck_assert_int_eq(meta_store_dir_layout(t, c, &l), -ENODATA);
    ck_assert_int_eq(memcmp(&l, &base, sizeof(l)), 0);

    ck_assert_int_eq(meta_store_xattr_set(t, gp, META_LAYOUT_XATTR,
                                          "ec=8+2 chunk=4M", 15, 0, &T1, &why),
                     0);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(meta_store_dir_layout(t, c, &l), 0);
    ck_assert_uint_eq(l.k, 8);
    ck_assert_uint_eq(l.m, 2);
    ck_assert_uint_eq(l.width, 10);
    ck_assert_uint_eq(l.chunk_size, 4u << 20);
    ck_assert_int_eq(meta_store_dir_layout(t, META_ROOT_INO, &base), -ENODATA);

    /* the nearest one wins; a trailing NUL from tools is accepted */
    ck_assert_int_eq(meta_store_xattr_set(t, p, META_LAYOUT_XATTR,
                                          "chunk=256K", 11, 0, &T1, &why),
                     0);
    ckpt_layout_default(&l);
    ck_assert_int_eq(meta_store_dir_layout(t, c, &l), 0);
    ck_assert_uint_eq(l.k, 4);
    ck_assert_uint_eq(l.chunk_size, 256u << 10);
    ckpt_layout_default(&l);
    ck_assert_int_eq(meta_store_dir_layout(t, gp, &l), 0);
    ck_assert_uint_eq(l.k, 8);

    /* invalid specs, and only on directories */
    ck_assert_int_eq(meta_store_xattr_set(t, c, META_LAYOUT_XATTR, "ec=40+2",
                                          7, 0, &T1, &why),
                     -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(meta_store_xattr_set(t, c, META_LAYOUT_XATTR, "bogus", 5,
                                          0, &T1, &why),
                     -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(meta_store_xattr_set(t, c, META_LAYOUT_XATTR, "ec=4\0+2",
                                          8, 0, &T1, &why),
                     -EINVAL);
    ck_assert_int_eq(meta_store_xattr_set(t, f, META_LAYOUT_XATTR, "ec=4+2",
                                          6, 0, &T1, &why),
                     -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(meta_store_dir_layout(t, f, &l), -ENOTDIR);
    ck_assert_int_eq(meta_store_dir_layout(t, 9999, &l), -ENOENT);

    /* removing the nearer one falls back to the grandparent */
    ck_assert_int_eq(meta_store_xattr_remove(t, p, META_LAYOUT_XATTR, &T2), 0);
    ckpt_layout_default(&l);
    ck_assert_int_eq(meta_store_dir_layout(t, c, &l), 0);
    ck_assert_uint_eq(l.k, 8);
    commit(t);
}
END_TEST

/* ---- layouts, tindex, delq ----------------------------------------------------------- */

#define COLLECT_MAX 64
struct collect {
    int n;
    uint64_t v[COLLECT_MAX];
};

static int collect_ino(uint64_t ino, void *ctx)
{
    struct collect *c = ctx;
    if (c->n >= COLLECT_MAX)
        return -E2BIG;
    c->v[c->n++] = ino;
    return 0;
}

static struct collect tindex(MDB_txn *t, uint32_t tid, uint64_t start)
{
    struct collect c = {0};
    ck_assert_int_eq(meta_store_tindex_iter(t, tid, start, collect_ino, &c),
                     0);
    return c;
}

struct dcollect {
    int n;
    struct meta_delq_entry e[COLLECT_MAX];
};

static int collect_delq(const struct meta_delq_entry *e, void *ctx)
{
    struct dcollect *c = ctx;
    if (c->n >= COLLECT_MAX)
        return -E2BIG;
    c->e[c->n++] = *e;
    return 0;
}

static struct dcollect delq(MDB_txn *t, uint32_t tid, uint64_t start)
{
    struct dcollect c = {0};
    ck_assert_int_eq(meta_store_delq_iter(t, tid, start, collect_delq, &c), 0);
    return c;
}

START_TEST(test_layout_tindex_delq)
{
    MDB_txn *t = wbegin();
    struct ckpt_layout l, got, dup;
    struct collect c;
    struct dcollect q;
    struct meta_setattr sa = {0};
    struct meta_attr a;
    struct meta_delq_entry e;
    uint64_t f1, f2, f3, d;

    make_layout(&l, 4, 2, 10); /* targets 10..15 */
    f1 = mkfile(t, META_ROOT_INO, "f1", &l);
    f2 = mkfile(t, META_ROOT_INO, "f2", NULL);
    d = mkdir_(t, META_ROOT_INO, "d");
    ck_assert_int_eq(meta_store_layout_get(t, f1, &got), 0);
    ck_assert_int_eq(memcmp(&got, &l, sizeof(l)), 0);
    ck_assert_int_eq(meta_store_layout_get(t, f2, &got), -ENODATA);
    ck_assert_int_eq(meta_store_layout_get(t, d, &got), -EINVAL);
    ck_assert_int_eq(meta_store_layout_get(t, 9999, &got), -ENOENT);
    for (uint32_t tid = 10; tid < 16; tid++) {
        c = tindex(t, tid, 0);
        ck_assert_int_eq(c.n, 1);
        ck_assert_uint_eq(c.v[0], f1);
    }
    ck_assert_int_eq(tindex(t, 9, 0).n, 0);
    ck_assert_int_eq(tindex(t, 16, 0).n, 0);

    /* a later layout_set (a target listed twice is indexed once) */
    dup = l;
    dup.targets[5] = 10;
    dup.targets[4] = 20;
    ck_assert_int_eq(meta_store_layout_set(t, f2, &dup), 0);
    ck_assert_int_eq(meta_store_layout_set(t, f2, &l), -EEXIST);
    ck_assert_int_eq(meta_store_layout_set(t, d, &l), -EINVAL);
    c = tindex(t, 10, 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_uint_eq(c.v[0], f1);
    ck_assert_uint_eq(c.v[1], f2);
    c = tindex(t, 10, f1 + 1); /* resumable */
    ck_assert_int_eq(c.n, 1);
    ck_assert_uint_eq(c.v[0], f2);
    ck_assert_int_eq(tindex(t, 20, 0).n, 1);
    assert_fsck(t);

    /* replace a target */
    ck_assert_int_eq(meta_store_layout_replace_target(t, f1, 12, 30), 0);
    ck_assert_int_eq(meta_store_layout_get(t, f1, &got), 0);
    ck_assert_uint_eq(got.targets[2], 30);
    c = tindex(t, 12, 0); /* only f2 (its own slot 2) is left there */
    ck_assert_int_eq(c.n, 1);
    ck_assert_uint_eq(c.v[0], f2);
    c = tindex(t, 30, 0);
    ck_assert_int_eq(c.n, 1);
    ck_assert_uint_eq(c.v[0], f1);
    ck_assert_int_eq(meta_store_layout_replace_target(t, f1, 12, 31), -ENXIO);
    ck_assert_int_eq(meta_store_layout_replace_target(t, f1, 13, 30),
                     -EEXIST);
    ck_assert_int_eq(meta_store_layout_replace_target(t, f1, 13, 13),
                     -EINVAL);
    ck_assert_int_eq(meta_store_layout_replace_target(t, d, 13, 40),
                     -ENODATA);
    ck_assert_int_eq(meta_store_layout_replace_target(t, 9999, 13, 40),
                     -ENOENT);
    /* replacing a target listed twice moves both slots */
    ck_assert_int_eq(meta_store_layout_replace_target(t, f2, 10, 41), 0);
    ck_assert_int_eq(meta_store_layout_get(t, f2, &got), 0);
    ck_assert_uint_eq(got.targets[0], 41);
    ck_assert_uint_eq(got.targets[5], 41);
    assert_fsck(t);

    /* truncation: the caller queues stripes past the end at the old gen */
    sa.mask = META_SETATTR_SIZE;
    sa.size = 100 << 20;
    ck_assert_int_eq(meta_store_setattr(t, f1, &sa, &T2, &a, NULL), 0);
    sa.size = 5 << 20;
    ck_assert_int_eq(meta_store_setattr(t, f1, &sa, &T2, &a, NULL), 0);
    ck_assert_uint_eq(a.data_gen, 3);
    ck_assert_int_eq(meta_store_delq_add_file(t, f1, a.data_gen - 1, 2), 0);
    ck_assert_int_eq(meta_store_delq_add_file(t, 9999, 1, 0), -ENOENT);
    q = delq(t, 30, 0);
    ck_assert_int_eq(q.n, 1);
    ck_assert_uint_eq(q.e[0].ino, f1);
    ck_assert_uint_eq(q.e[0].data_gen, 2);
    ck_assert_uint_eq(q.e[0].from_stripe, 2);
    ck_assert_uint_eq(q.e[0].tid, 30);

    /* destroy: tindex gone, one deletion from stripe 0 per target */
    f3 = f1;
    ck_assert_int_eq(meta_store_unlink(t, META_ROOT_INO, "f1", &T3, NULL,
                                       NULL),
                     0);
    ck_assert_int_eq(meta_store_destroy(t, f3), 0);
    for (uint32_t tid = 10; tid < 16; tid++) {
        if (tid == 12)
            continue;
        c = tindex(t, tid, 0);
        for (int i = 0; i < c.n; i++)
            ck_assert_uint_ne(c.v[i], f3);
        q = delq(t, tid, 0);
        ck_assert_int_ge(q.n, 1);
        ck_assert_uint_eq(q.e[q.n - 1].ino, f3);
        ck_assert_uint_eq(q.e[q.n - 1].data_gen, 3);
        ck_assert_uint_eq(q.e[q.n - 1].from_stripe, 0);
    }
    ck_assert_int_eq(tindex(t, 30, 0).n, 0);
    q = delq(t, 30, 0); /* (f1, gen 2, from 2) and (f1, gen 3, from 0) */
    ck_assert_int_eq(q.n, 2);
    ck_assert_int_eq(delq(t, 12, 0).n, 0); /* replaced before: not queued */
    assert_fsck(t);

    /* merge and confirm */
    e = (struct meta_delq_entry){30, f3, 2, 5};
    ck_assert_int_eq(meta_store_delq_add(t, &e), 0); /* 2 already covers 5 */
    q = delq(t, 30, 0);
    ck_assert_uint_eq(q.e[0].from_stripe, 2);
    e.from_stripe = 1;
    ck_assert_int_eq(meta_store_delq_add(t, &e), 0);
    q = delq(t, 30, 0);
    ck_assert_uint_eq(q.e[0].from_stripe, 1);
    e.from_stripe = 2; /* the node confirms the older, narrower request */
    ck_assert_int_eq(meta_store_delq_remove(t, &e), CKPT_E_STALE);
    e.from_stripe = 1;
    ck_assert_int_eq(meta_store_delq_remove(t, &e), 0);
    ck_assert_int_eq(meta_store_delq_remove(t, &e), -ENOENT);
    q = delq(t, 30, 0);
    ck_assert_int_eq(q.n, 1);
    ck_assert_uint_eq(q.e[0].data_gen, 3);
    ck_assert_int_eq(delq(t, 30, f3 + 1).n, 0);
    {
        struct meta_statfs sf;
        ck_assert_int_eq(meta_store_statfs(t, &sf), 0);
        /* 6 targets x (truncation at gen 2, destroy at gen 3) - 1 done */
        ck_assert_uint_eq(sf.delq, 11);
        ck_assert_uint_eq(sf.inodes, 3); /* root, f2, d */
    }
    commit(t);
}
END_TEST

/* ---- transactions: nesting, persistence, failure ---------------------------------------- */

START_TEST(test_nested_child_abort)
{
    MDB_txn *t = wbegin(), *op;
    struct meta_attr a;
    uint64_t before, ino_a;

    op = child(t);
    ino_a = mkfile(op, META_ROOT_INO, "a", NULL);
    commit(op);
    before = digest(t);
    /* One request that does two things and then fails: all of it goes. */
    op = child(t);
    mkdir_(op, META_ROOT_INO, "b");
    ck_assert_int_eq(meta_store_xattr_set(op, META_ROOT_INO, "user.x", "1", 1,
                                          0, &T2, NULL),
                     0);
    ck_assert_int_eq(meta_store_mkdir(op, META_ROOT_INO, "b", 0755, 0, 0, &T2,
                                      &a),
                     -EEXIST);
    meta_store_txn_abort(op);
    ck_assert_uint_eq(digest(t), before);
    ck_assert_int_eq(meta_store_lookup(t, META_ROOT_INO, "b", &a), -ENOENT);
    op = child(t);
    mkfile(op, META_ROOT_INO, "c", NULL);
    commit(op);
    commit(t);

    t = rbegin();
    ck_assert_uint_eq(lookup_ino(t, META_ROOT_INO, "a"), ino_a);
    ck_assert_uint_eq(lookup_ino(t, META_ROOT_INO, "b"), 0);
    ck_assert(lookup_ino(t, META_ROOT_INO, "c") > ino_a);
    ck_assert_uint_eq(getattr_(t, META_ROOT_INO).nlink, 2);
    assert_fsck(t);
    meta_store_txn_abort(t);
}
END_TEST

START_TEST(test_persistence)
{
    MDB_txn *t = wbegin();
    struct ckpt_layout l, got;
    struct meta_attr a;
    char buf[64];
    size_t len;
    uint64_t d, f, before, orphan;
    struct ls *ls;

    make_layout(&l, 2, 1, 7);
    d = mkdir_(t, META_ROOT_INO, "dir");
    f = mkfile(t, d, "file", &l);
    ck_assert_int_eq(meta_store_link(t, f, META_ROOT_INO, "hard", &T1, &a), 0);
    ck_assert_int_eq(meta_store_symlink(t, d, "sym", "file", 0, 0, &T1, &a),
                     0);
    ck_assert_int_eq(meta_store_xattr_set(t, f, "user.k", "value", 5, 0, &T1,
                                          NULL),
                     0);
    ck_assert_int_eq(meta_store_xattr_set(t, d, META_LAYOUT_XATTR, "ec=2+1",
                                          6, 0, &T1, NULL),
                     0);
    orphan = mkfile(t, d, "orphan", NULL);
    ck_assert_int_eq(meta_store_unlink(t, d, "orphan", &T1, NULL, NULL), 0);
    commit(t);
    t = rbegin();
    before = digest(t);
    meta_store_txn_abort(t);

    meta_store_close(g_st);
    g_st = open_store(g_dir, 1ull << 30);
    t = rbegin();
    ck_assert_uint_eq(digest(t), before);
    assert_fsck(t);
    ck_assert_uint_eq(lookup_ino(t, META_ROOT_INO, "dir"), d);
    ck_assert_uint_eq(lookup_ino(t, META_ROOT_INO, "hard"), f);
    ck_assert_int_eq(meta_store_layout_get(t, f, &got), 0);
    ck_assert_int_eq(memcmp(&got, &l, sizeof(l)), 0);
    ck_assert_int_eq(meta_store_xattr_get(t, f, "user.k", buf, sizeof(buf),
                                          &len),
                     0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(meta_store_readlink(t, lookup_ino(t, d, "sym"), buf,
                                         sizeof(buf), &len),
                     0);
    ck_assert_str_eq(buf, "file");
    ck_assert_uint_eq(getattr_(t, orphan).nlink, 0);
    ls = ls_dir(t, d, 0, 10);
    ck_assert_int_eq(ls->n, 4);
    ck_assert_str_eq(ls->names[2], "file");
    ck_assert_str_eq(ls->names[3], "sym");
    ck_assert_uint_eq(tindex(t, 8, 0).n, 1);
    meta_store_txn_abort(t);

    /* Numbers are never reused after a restart. */
    t = wbegin();
    ck_assert_uint_gt(mkfile(t, d, "new", NULL), orphan);
    commit(t);
}
END_TEST

/* Fault walk: fail the Nth write of each operation inside a child txn. */
struct fw_state {
    uint64_t A, B, f, g, sub, empty, nolayout, orphan;
};

static void fw_prep(MDB_txn *t, struct fw_state *s)
{
    struct ckpt_layout l;

    make_layout(&l, 4, 2, 50);
    s->A = mkdir_(t, META_ROOT_INO, "A");
    s->B = mkdir_(t, META_ROOT_INO, "B");
    s->f = mkfile(t, s->A, "f", &l);
    s->g = mkfile(t, s->B, "g", &l);
    s->sub = mkdir_(t, s->A, "sub");
    s->empty = mkdir_(t, s->B, "empty");
    s->nolayout = mkfile(t, s->A, "nolayout", NULL);
    s->orphan = mkfile(t, s->A, "orphan", &l);
    ck_assert_int_eq(meta_store_xattr_set(t, s->orphan, "user.a", "1", 1, 0,
                                          &T1, NULL),
                     0);
    ck_assert_int_eq(meta_store_xattr_set(t, s->orphan, "user.b", "2", 1, 0,
                                          &T1, NULL),
                     0);
    ck_assert_int_eq(meta_store_unlink(t, s->A, "orphan", &T1, NULL, NULL), 0);
}

#define FW_OPS 16
static int fw_op(int which, MDB_txn *t, const struct fw_state *s)
{
    struct ckpt_layout l;
    struct meta_setattr sa = {0};
    struct meta_rename_result rr;

    make_layout(&l, 4, 2, 60);
    switch (which) {
    case 0: return meta_store_mknod(t, s->A, "new", S_IFREG | 0644, 0, 0, 0,
                                    &l, &T2, NULL);
    case 1: return meta_store_mkdir(t, s->B, "nd", 0755, 0, 0, &T2, NULL);
    case 2: return meta_store_symlink(t, s->A, "sl", "some/where", 0, 0, &T2,
                                      NULL);
    case 3: return meta_store_link(t, s->f, s->B, "f2", &T2, NULL);
    case 4: return meta_store_unlink(t, s->B, "g", &T2, NULL, NULL);
    case 5: return meta_store_rmdir(t, s->B, "empty", &T2, NULL);
    case 6: return meta_store_rename(t, s->A, "f", s->B, "g", 0, &T2, &rr);
    case 7: return meta_store_rename(t, s->A, "sub", s->B, "empty", 0, &T2,
                                     &rr);
    case 8: return meta_store_rename(t, s->A, "f", s->B, "empty",
                                     META_RENAME_EXCHANGE, &T2, &rr);
    case 9: return meta_store_xattr_set(t, s->f, "user.new", "v", 1, 0, &T2,
                                        NULL);
    case 10: return meta_store_destroy(t, s->orphan);
    case 11: return meta_store_layout_replace_target(t, s->f, 51, 99);
    case 12:
        sa.mask = META_SETATTR_SIZE;
        sa.size = 777;
        return meta_store_setattr(t, s->f, &sa, &T2, NULL, NULL);
    case 13: return meta_store_layout_set(t, s->nolayout, &l);
    case 14: return meta_store_delq_add_file(t, s->f, 1, 3);
    case 15: return meta_store_xattr_remove(t, s->orphan, "user.a", &T2);
    default: return -EINVAL;
    }
}

START_TEST(test_fault_walk_child_abort)
{
    struct fw_state s;
    MDB_txn *t = wbegin();
    int n;

    fw_prep(t, &s);
    commit(t);
    for (n = 1; n < 100; n++) {
        MDB_txn *op;
        uint64_t before;
        int rc;

        t = wbegin();
        before = digest(t);
        op = child(t);
        ckpt_fault_arm(CKPT_FAULT_WRITE, n);
        rc = fw_op(_i, op, &s);
        ckpt_fault_disarm_all();
        if (rc == 0) {
            commit(op);
            ck_assert_uint_ne(digest(t), before);
            assert_fsck(t);
            meta_store_txn_abort(t);
            break;
        }
        ck_assert_msg(rc == -EIO, "op %d, write %d: rc %d", _i, n, rc);
        meta_store_txn_abort(op);
        ck_assert_msg(digest(t) == before,
                      "op %d failed at write %d left changes behind", _i, n);
        assert_fsck(t);
        meta_store_txn_abort(t);
    }
    ck_assert_msg(n > 1 && n < 100, "op %d: %d writes", _i, n - 1);
}
END_TEST

START_TEST(test_map_full_child_abort)
{
    char *dir = g_dir2;
    meta_store *st;
    MDB_txn *t, *op;
    static uint8_t val[60000];
    char name[32];
    int i, rc = 0;
    struct meta_attr a;

    make_dir(g_dir2, "full");
    st = open_store(dir, 1u << 20);
    ck_assert_int_eq(meta_store_txn_begin(st, NULL, false, &t), 0);
    for (i = 0; i < 1000; i++) {
        ck_assert_int_eq(meta_store_txn_begin(st, t, false, &op), 0);
        snprintf(name, sizeof(name), "d%d", i);
        rc = meta_store_mkdir(op, META_ROOT_INO, name, 0755, 0, 0, &T1, &a);
        if (rc == 0)
            rc = meta_store_xattr_set(op, a.ino, "user.v", val, sizeof(val),
                                      0, &T1, NULL);
        if (rc < 0) {
            meta_store_txn_abort(op);
            break;
        }
        ck_assert_int_eq(meta_store_txn_commit(op), 0);
    }
    ck_assert_int_eq(rc, -ENOSPC);
    ck_assert_int_gt(i, 0);
    /* The parent still reads, and the failed request left nothing. */
    ck_assert_int_eq(meta_store_lookup(t, META_ROOT_INO, name, &a), -ENOENT);
    snprintf(name, sizeof(name), "d%d", i - 1);
    ck_assert_int_eq(meta_store_lookup(t, META_ROOT_INO, name, &a), 0);
    {
        struct meta_fsck_report r;
        ck_assert_int_eq(meta_store_fsck(t, &r), 0);
        ck_assert_msg(r.problems == 0, "%s", r.first);
    }
    rc = meta_store_txn_commit(t);
    ck_assert(rc == 0 || rc == -ENOSPC);
    meta_store_close(st);
    st = open_store(dir, 1u << 20);
    ck_assert_int_eq(meta_store_txn_begin(st, NULL, true, &t), 0);
    {
        struct meta_fsck_report r;
        ck_assert_int_eq(meta_store_fsck(t, &r), 0);
        ck_assert_msg(r.problems == 0, "%s", r.first);
    }
    meta_store_txn_abort(t);
    meta_store_close(st);
}
END_TEST

START_TEST(test_args_from_foreign_txn)
{
    struct meta_attr a;
    MDB_env *env;
    MDB_txn *t;
    char *dir = g_dir2;

    ck_assert_int_eq(meta_store_getattr(NULL, 1, &a), -EINVAL);
    /* A txn of an environment that is not a store is refused. */
    make_dir(g_dir2, "raw");
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
    ck_assert_int_eq(meta_store_getattr(t, 1, &a), -EINVAL);
    mdb_txn_abort(t);
    mdb_env_close(env);
}
END_TEST

/* The store allocates only its handle (open) and fsck's table. */
START_TEST(test_alloc_failures)
{
    struct meta_store_opts o;
    struct meta_fsck_report r;
    meta_store *st = (meta_store *)&o;
    MDB_txn *t;
    long base;

    meta_store_close(g_st);
    g_st = NULL;
    base = ckpt_alloc_live();
    memset(&o, 0, sizeof(o));
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_int_eq(meta_store_open(g_dir, &o, &st), -ENOMEM);
    ckpt_fault_disarm_all();
    ck_assert_ptr_null(st);
    ck_assert_int_eq(ckpt_alloc_live(), base);
    g_st = open_store(g_dir, 1ull << 30);
    ck_assert_int_eq(ckpt_alloc_live(), base + 1);

    t = wbegin();
    for (int i = 0; i < 3000; i++) { /* enough inodes to grow the table */
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        mkfile(t, META_ROOT_INO, name, NULL);
    }
    for (int n = 1; n <= 3; n++) {
        ckpt_fault_arm(CKPT_FAULT_ALLOC, n);
        ck_assert_int_eq(meta_store_fsck(t, &r), -ENOMEM);
        ckpt_fault_disarm_all();
        ck_assert_int_eq(ckpt_alloc_live(), base + 1);
    }
    assert_fsck(t);
    ck_assert_uint_eq(r.inodes, 0); /* the failed runs reported nothing */
    ck_assert_int_eq(meta_store_fsck(t, &r), 0);
    ck_assert_uint_eq(r.inodes, 3001);
    ck_assert_int_eq(ckpt_alloc_live(), base + 1);
    commit(t);
}
END_TEST

Suite *meta_store_suite(void)
{
    Suite *s = suite_create("meta_store");
    TCase *tc;

    tc = tcase_create("namespace");
    tcase_add_unchecked_fixture(tc, root_setup, root_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_open_root);
    tcase_add_test(tc, test_dbi_open_and_txn_args);
    tcase_add_test(tc, test_lookup_errors_and_name_limits);
    tcase_add_test(tc, test_mknod_types_and_errors);
    tcase_add_test(tc, test_setgid_directory);
    tcase_add_test(tc, test_mkdir_rmdir);
    tcase_add_test(tc, test_symlink_link_unlink_orphans);
    tcase_add_test(tc, test_setattr);
    tcase_add_test(tc, test_readdir_basic);
    tcase_add_test(tc, test_args_from_foreign_txn);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);

    tc = tcase_create("rename");
    tcase_add_unchecked_fixture(tc, root_setup, root_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_rename_files);
    tcase_add_test(tc, test_rename_dirs);
    tcase_add_test(tc, test_rename_exchange);
    suite_add_tcase(s, tc);

    tc = tcase_create("xattr_layout");
    tcase_add_unchecked_fixture(tc, root_setup, root_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_xattrs);
    tcase_add_test(tc, test_dir_layout_inheritance);
    tcase_add_test(tc, test_layout_tindex_delq);
    suite_add_tcase(s, tc);

    tc = tcase_create("transactions");
    tcase_add_unchecked_fixture(tc, root_setup, root_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nested_child_abort);
    tcase_add_test(tc, test_persistence);
    tcase_add_loop_test(tc, test_fault_walk_child_abort, 0, FW_OPS);
    tcase_add_test(tc, test_map_full_child_abort);
    suite_add_tcase(s, tc);

    tc = tcase_create("big_directory");
    tcase_add_unchecked_fixture(tc, root_setup, root_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_readdir_100k_paged_with_deletes);
    suite_add_tcase(s, tc);
    return s;
}

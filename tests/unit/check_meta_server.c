/*
 * check_meta_server.c - ckpt-meta's namespace and session service, end to
 * end: a real meta_server in this process (port 0, LMDB in a temporary
 * directory), driven through lib/mclient.c over the real RPC layer, with
 * fake storage nodes registered through NODE_REGISTER/HEARTBEAT (see
 * check_meta_fixture.h).
 *
 * Covers every namespace operation and its errno cases; layout inheritance
 * from user.ckptfs.layout; readdir of 100,000 entries in pages; 16
 * connections creating at once (and group commit batching them); the
 * visibility rule (another session's open waits for the writer's release;
 * a writer whose lease runs out leaves the file INCOMPLETE); data
 * generations and the chunk deletions of truncate/O_TRUNC/unlink; orphans
 * held open; a restart keeping files, sessions and held orphans; session
 * loss and recovery in the client; a malformed request closing its
 * connection.
 */
#include <fcntl.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "check_meta_fixture.h"

Suite *meta_server_suite(void);

static void setup(void)
{
    mfx_setup_with(NULL);
}

static void short_lease(struct meta_server_opts *o)
{
    o->lease_ms = 600;
}

static void setup_short_lease(void)
{
    mfx_setup_with(short_lease);
}

static int create(ckpt_mclient *mc, uint64_t parent, const char *name, uint32_t flags,
                  struct ckpt_msg_open_resp *o)
{
    return ckpt_mclient_create_file(mc, parent, name, 0644, 1000, 1000, O_CREAT | flags, o);
}

static int release(ckpt_mclient *mc, const struct ckpt_msg_open_resp *o, int wrote,
                   uint64_t size)
{
    struct ckpt_msg_release r;
    memset(&r, 0, sizeof(r));
    r.ino = o->attr.ino;
    r.handle = o->handle;
    r.session = ckpt_mclient_session(mc);
    r.wrote = (uint8_t)wrote;
    r.size = size;
    r.mtime_sec = 1700000000;
    return ckpt_mclient_release(mc, &r);
}

static void assert_distinct_targets(const struct ckpt_layout *l)
{
    ck_assert_uint_ge(l->width, (unsigned)l->k + l->m);
    for (unsigned i = 0; i < l->width; i++) {
        ck_assert_uint_ne(l->targets[i], 0);
        for (unsigned j = 0; j < i; j++)
            ck_assert_uint_ne(l->targets[i], l->targets[j]);
    }
}

/* ---- every operation --------------------------------------------------------- */

START_TEST(test_files_and_dirs)
{
    struct ckpt_attr d, a, b;
    struct ckpt_msg_open_resp o, o2;
    char buf[64];

    mfx_simple_cluster(6);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "dir", 0755, 1000, 100, &d), 0);
    ck_assert(S_ISDIR(d.mode));
    ck_assert_uint_eq(d.mode & 07777, 0755);
    ck_assert_uint_eq(d.nlink, 2);
    ck_assert_uint_eq(d.uid, 1000);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "dir", 0755, 0, 0, NULL), -EEXIST);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, CKPT_ROOT_INO, &a), 0);
    ck_assert_uint_eq(a.nlink, 3);

    /* CREATE: a placed layout and a handle. */
    ck_assert_int_eq(create(F.mc, d.ino, "f", O_WRONLY, &o), 0);
    ck_assert(S_ISREG(o.attr.mode));
    ck_assert_uint_eq(o.attr.size, 0);
    ck_assert_uint_eq(o.attr.data_gen, 1);
    ck_assert_uint_ne(o.handle, 0);
    ck_assert_uint_eq(o.layout.k, 4);
    ck_assert_uint_eq(o.layout.m, 2);
    ck_assert_uint_eq(o.layout.width, 6);
    assert_distinct_targets(&o.layout);
    ck_assert_int_eq(create(F.mc, d.ino, "f", O_WRONLY | O_EXCL, &o2), -EEXIST);
    ck_assert_int_eq(release(F.mc, &o, 1, 12345), 0);
    ck_assert_int_eq(release(F.mc, &o, 1, 12345), -ESTALE); /* released already */
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d.ino, "f", &a), 0);
    ck_assert_uint_eq(a.ino, o.attr.ino);
    ck_assert_uint_eq(a.size, 12345);
    ck_assert_int_eq(a.mtime_sec, 1700000000);

    /* Non-regular nodes, symlinks, links. */
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, d.ino, "fifo", S_IFIFO | 0600, 0, 0, 0, &a), 0);
    ck_assert(S_ISFIFO(a.mode));
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, d.ino, "sub", S_IFDIR | 0755, 0, 0, 0, NULL),
                     -EINVAL);
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, d.ino, "reg", S_IFREG | 0600, 0, 0, 0, &a), 0);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, a.ino, O_RDONLY, &o2), 0);
    assert_distinct_targets(&o2.layout); /* MKNOD placed it too */
    ck_assert_int_eq(release(F.mc, &o2, 0, 0), 0);
    ck_assert_int_eq(ckpt_mclient_symlink(F.mc, d.ino, "ln", "../some/where", 5, 6, &a), 0);
    ck_assert(S_ISLNK(a.mode));
    ck_assert_uint_eq(a.size, 13);
    ck_assert_int_eq(ckpt_mclient_readlink(F.mc, a.ino, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "../some/where");
    ck_assert_int_eq(ckpt_mclient_readlink(F.mc, a.ino, buf, 5), -ENAMETOOLONG);
    ck_assert_int_eq(ckpt_mclient_readlink(F.mc, d.ino, buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(ckpt_mclient_symlink(F.mc, d.ino, "empty", "", 0, 0, NULL), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_link(F.mc, o.attr.ino, CKPT_ROOT_INO, "f2", &b), 0);
    ck_assert_uint_eq(b.nlink, 2);
    ck_assert_int_eq(ckpt_mclient_link(F.mc, d.ino, CKPT_ROOT_INO, "dlink", NULL), -EPERM);
    ck_assert_int_eq(ckpt_mclient_link(F.mc, o.attr.ino, CKPT_ROOT_INO, "f2", NULL), -EEXIST);

    /* unlink / rmdir errno cases. */
    ck_assert_int_eq(ckpt_mclient_rmdir(F.mc, CKPT_ROOT_INO, "dir"), -ENOTEMPTY);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "dir"), -EISDIR);
    ck_assert_int_eq(ckpt_mclient_rmdir(F.mc, CKPT_ROOT_INO, "f2"), -ENOTDIR);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "nope"), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "f2"), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, o.attr.ino, &a), 0);
    ck_assert_uint_eq(a.nlink, 1);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, "f2", NULL), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, o.attr.ino, "x", NULL), -ENOTDIR);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, 999999, NULL), -ENOENT);

    /* Names: 255 bytes fit, 256 do not; '/' is never part of a name. */
    char n255[256], n256[257];
    memset(n255, 'a', 255);
    n255[255] = '\0';
    memset(n256, 'b', 256);
    n256[256] = '\0';
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, d.ino, n255, 0700, 0, 0, NULL), 0);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d.ino, n255, NULL), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, d.ino, n256, 0700, 0, 0, NULL), -ENAMETOOLONG);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d.ino, n256, NULL), -ENAMETOOLONG);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, d.ino, "a/b", 0700, 0, 0, NULL), -EINVAL);
    ck_assert_int_eq(ckpt_mclient_rmdir(F.mc, d.ino, n255), 0);
}
END_TEST

START_TEST(test_rename)
{
    struct ckpt_attr d1, d2, sub, a, b;

    mfx_simple_cluster(6);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "d1", 0755, 0, 0, &d1), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "d2", 0755, 0, 0, &d2), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, d1.ino, "sub", 0755, 0, 0, &sub), 0);
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, d1.ino, "a", S_IFREG | 0644, 0, 0, 0, &a), 0);
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, d2.ino, "b", S_IFREG | 0644, 0, 0, 0, &b), 0);

    /* Across directories, then over an existing file (which goes away). */
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d1.ino, "a", d2.ino, "a2", 0), 0);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d1.ino, "a", NULL), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d2.ino, "a2", d2.ino, "b", 0), 0);
    struct ckpt_attr x;
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d2.ino, "b", &x), 0);
    ck_assert_uint_eq(x.ino, a.ino);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, b.ino, NULL), -ENOENT); /* destroyed */

    /* NOREPLACE / EXCHANGE. */
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, d2.ino, "c", S_IFREG | 0644, 0, 0, 0, &b), 0);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d2.ino, "b", d2.ino, "c", CKPT_RENAME_NOREPLACE),
                     -EEXIST);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d2.ino, "b", d2.ino, "c", CKPT_RENAME_EXCHANGE),
                     0);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d2.ino, "c", &x), 0);
    ck_assert_uint_eq(x.ino, a.ino);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d2.ino, "b", d2.ino, "zz", CKPT_RENAME_EXCHANGE),
                     -ENOENT);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d2.ino, "b", d2.ino, "c",
                                         CKPT_RENAME_EXCHANGE | CKPT_RENAME_NOREPLACE),
                     -EINVAL);

    /* Directories: over an empty one works, over a full one does not, and
     * never into their own subtree. */
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, d2.ino, "empty", 0755, 0, 0, NULL), 0);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d1.ino, "sub", d2.ino, "empty", 0), 0);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d2.ino, "empty", &x), 0);
    ck_assert_uint_eq(x.ino, sub.ino);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, CKPT_ROOT_INO, "d2", sub.ino, "loop", 0), -EINVAL);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, CKPT_ROOT_INO, "d1", CKPT_ROOT_INO, "d2", 0),
                     -ENOTEMPTY);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, d2.ino, "c", CKPT_ROOT_INO, "d1", 0), -EISDIR);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, CKPT_ROOT_INO, "d1", d2.ino, "c", 0), -ENOTDIR);
    ck_assert_int_eq(ckpt_mclient_rename(F.mc, CKPT_ROOT_INO, "nope", d2.ino, "c", 0), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, d1.ino, &x), 0);
    ck_assert_uint_eq(x.nlink, 2); /* sub moved out */
}
END_TEST

START_TEST(test_setattr_statfs)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_msg_setattr sa;
    struct ckpt_attr a;
    struct ckpt_msg_statfs_resp sf;

    mfx_simple_cluster(6);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "f", O_WRONLY, &o), 0);
    ck_assert_int_eq(release(F.mc, &o, 1, 10 << 20), 0);
    memset(&sa, 0, sizeof(sa));
    sa.ino = o.attr.ino;
    sa.valid = CKPT_SETATTR_MODE | CKPT_SETATTR_UID | CKPT_SETATTR_GID | CKPT_SETATTR_ATIME |
               CKPT_SETATTR_MTIME;
    sa.mode = 0600;
    sa.uid = 7;
    sa.gid = 8;
    sa.atime_sec = 1000;
    sa.atime_nsec = 5;
    sa.mtime_sec = 2000;
    sa.mtime_nsec = 6;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, &a), 0);
    ck_assert_uint_eq(a.mode, S_IFREG | 0600);
    ck_assert_uint_eq(a.uid, 7);
    ck_assert_uint_eq(a.gid, 8);
    ck_assert_int_eq(a.atime_sec, 1000);
    ck_assert_uint_eq(a.atime_nsec, 5);
    ck_assert_int_eq(a.mtime_sec, 2000);
    ck_assert_uint_eq(a.data_gen, 1);
    /* Truncate: new size, new data generation. */
    sa.valid = CKPT_SETATTR_SIZE;
    sa.size = 1 << 20;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, &a), 0);
    ck_assert_uint_eq(a.size, 1 << 20);
    ck_assert_uint_eq(a.data_gen, 2);
    sa.ino = CKPT_ROOT_INO;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, NULL), -EISDIR);
    sa.ino = 424242;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, NULL), -ENOENT);
    sa.valid = 0x1000;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, NULL), -EINVAL);

    /* statfs: 6 targets of 1 TiB, half free. */
    ck_assert_int_eq(ckpt_mclient_statfs(F.mc, &sf), 0);
    ck_assert_uint_eq(sf.bsize, 4096);
    ck_assert_uint_eq(sf.blocks, 6 * ((1ull << 40) / 4096));
    ck_assert_uint_eq(sf.bfree, 6 * ((1ull << 39) / 4096));
    ck_assert_uint_eq(sf.namemax, 255);
    ck_assert_uint_gt(sf.files, sf.ffree);
}
END_TEST

START_TEST(test_xattrs_and_layouts)
{
    struct ckpt_attr d, sub;
    struct ckpt_msg_open_resp o;
    char buf[128];

    mfx_simple_cluster(6);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "d", 0755, 0, 0, &d), 0);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "user.a", "v1", 2, 0), 0);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "user.a", "v2", 2, CKPT_XATTR_CREATE),
                     -EEXIST);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "user.b", "x", 1, CKPT_XATTR_REPLACE),
                     -ENODATA);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "user.b", "bbb", 3, 0), 0);
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, d.ino, "user.a", NULL, 0), 2);
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, d.ino, "user.a", buf, 1), -ERANGE);
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, d.ino, "user.a", buf, sizeof(buf)), 2);
    ck_assert_int_eq(memcmp(buf, "v1", 2), 0);
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, d.ino, "user.zz", buf, sizeof(buf)), -ENODATA);
    ck_assert_int_eq(ckpt_mclient_listxattr(F.mc, d.ino, NULL, 0), 14);
    ck_assert_int_eq(ckpt_mclient_listxattr(F.mc, d.ino, buf, 3), -ERANGE);
    ck_assert_int_eq(ckpt_mclient_listxattr(F.mc, d.ino, buf, sizeof(buf)), 14);
    ck_assert_int_eq(memcmp(buf, "user.a\0user.b\0", 14), 0);
    ck_assert_int_eq(ckpt_mclient_removexattr(F.mc, d.ino, "user.a"), 0);
    ck_assert_int_eq(ckpt_mclient_removexattr(F.mc, d.ino, "user.a"), -ENODATA);
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, 77777, "user.a", NULL, 0), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "", "x", 1, 0), -ERANGE);
    char big[300];
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, big, "x", 1, 0), -ERANGE);
    static char huge[CKPT_XATTR_VALUE_MAX + 1];
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "user.h", huge, sizeof(huge), 0), -E2BIG);
    /* The server's own names are out of reach. */
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "ckptfs.crc32c", "x", 1, 0), -EPERM);

    /* Directory layouts: validated, inherited, and refused on files. */
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, "ec=9+9", 6, 0),
                     -EINVAL);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, "bogus", 5, 0),
                     -EINVAL);
    const char *spec = "ec=2+1 chunk=64K";
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, spec, strlen(spec),
                                           0), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, d.ino, "sub", 0755, 0, 0, &sub), 0);
    ck_assert_int_eq(create(F.mc, sub.ino, "f", O_WRONLY, &o), 0);
    ck_assert_uint_eq(o.layout.k, 2);
    ck_assert_uint_eq(o.layout.m, 1);
    ck_assert_uint_eq(o.layout.width, 3);
    ck_assert_uint_eq(o.layout.chunk_size, 64 << 10);
    assert_distinct_targets(&o.layout);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, o.attr.ino, META_LAYOUT_XATTR, spec,
                                           strlen(spec), 0), -EINVAL);
    ck_assert_int_eq(release(F.mc, &o, 1, 100), 0);
    /* Elsewhere: the cluster default. */
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "g", O_WRONLY, &o), 0);
    ck_assert_uint_eq(o.layout.k, 4);
    ck_assert_uint_eq(o.layout.chunk_size, 1 << 20);
    /* The RELEASE checksum is kept but never listed. */
    struct ckpt_msg_release r;
    memset(&r, 0, sizeof(r));
    r.ino = o.attr.ino;
    r.handle = o.handle;
    r.wrote = 1;
    r.has_checksum = 1;
    r.checksum = 0xdeadbeef;
    r.size = 5;
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);
    ck_assert_int_eq(ckpt_mclient_listxattr(F.mc, o.attr.ino, NULL, 0), 0);
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, o.attr.ino, "ckptfs.crc32c", NULL, 0),
                     -ENODATA);
}
END_TEST

/* ---- readdir of 100,000 entries ------------------------------------------------- */

#define BIG_N 100000u

/* Fill directory "big" through the store before the server opens it (the
 * test is about listing over the protocol, not about creating). */
static void setup_big(void)
{
    meta_store *st = NULL;
    MDB_txn *txn = NULL;
    struct meta_attr dir;
    struct timespec now = {1700000000, 0};
    char name[32];

    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "%s/m%ld-%d", mfx_root, (long)getpid(), ++mfx_seq);
    ck_assert_int_eq(meta_store_open(F.dir, NULL, &st), 0);
    ck_assert_int_eq(meta_store_txn_begin(st, NULL, false, &txn), 0);
    ck_assert_int_eq(meta_store_mkdir(txn, META_ROOT_INO, "big", 0755, 0, 0, &now, &dir), 0);
    for (uint32_t i = 0; i < BIG_N; i++) {
        if (i && i % 20000 == 0) {
            ck_assert_int_eq(meta_store_txn_commit(txn), 0);
            ck_assert_int_eq(meta_store_txn_begin(st, NULL, false, &txn), 0);
        }
        snprintf(name, sizeof(name), "entry-%06u", i);
        ck_assert_int_eq(meta_store_mknod(txn, dir.ino, name, S_IFREG | 0644, 0, 0, 0, NULL,
                                          &now, NULL), 0);
    }
    ck_assert_int_eq(meta_store_txn_commit(txn), 0);
    meta_store_close(st);
    mfx_setup_with(NULL);
}

START_TEST(test_readdir_100k)
{
    struct ckpt_attr dir;
    struct ckpt_msg_readdir_resp r;
    uint64_t cookie = 0, ino_sum = 0, prev_ino = 0;
    uint32_t total = 0, pages = 0;
    int eof = 0;
    static uint8_t seen[BIG_N];

    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, "big", &dir), 0);
    while (!eof) {
        int plus = pages % 2; /* every other page with attributes */
        ck_assert_int_eq(ckpt_mclient_readdir(F.mc, dir.ino, cookie, CKPT_READDIR_MAX, plus, &r), 0);
        ck_assert_uint_le(r.n, CKPT_READDIR_MAX);
        for (uint32_t i = 0; i < r.n; i++) {
            unsigned idx;
            ck_assert_int_eq(sscanf(r.ents[i].name, "entry-%06u", &idx), 1);
            ck_assert_uint_lt(idx, BIG_N);
            ck_assert_uint_eq(seen[idx], 0);
            seen[idx] = 1;
            ck_assert_uint_eq(r.ents[i].type, S_IFREG >> 12);
            ck_assert_uint_gt(r.ents[i].ino, prev_ino); /* creation order */
            prev_ino = r.ents[i].ino;
            ino_sum += r.ents[i].ino;
            if (plus) {
                ck_assert_uint_eq(r.ents[i].attr.ino, r.ents[i].ino);
                ck_assert_uint_eq(r.ents[i].attr.mode, S_IFREG | 0644);
            }
            cookie = r.ents[i].next_cookie;
        }
        total += r.n;
        eof = r.eof;
        pages++;
        ck_assert(eof || r.n == CKPT_READDIR_MAX);
        ckpt_msg_readdir_resp_free(&r);
        ck_assert_uint_le(pages, BIG_N / CKPT_READDIR_MAX + 2);
    }
    ck_assert_uint_eq(total, BIG_N);
    ck_assert_uint_gt(ino_sum, 0);
    /* Past the end: an empty, final page. */
    ck_assert_int_eq(ckpt_mclient_readdir(F.mc, dir.ino, cookie, 10, 0, &r), 0);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_uint_eq(r.eof, 1);
    ckpt_msg_readdir_resp_free(&r);
    ck_assert_int_eq(ckpt_mclient_readdir(F.mc, 987654, 0, 10, 0, &r), -ENOENT);
}
END_TEST

/* ---- 16 connections at once ---------------------------------------------------- */

#define CONC_CLIENTS 16
#define CONC_FILES 60

struct conc_arg {
    int idx;
    uint64_t dir;
    int failures;
    uint64_t inos[CONC_FILES];
};

static void *conc_main(void *p)
{
    struct conc_arg *a = p;
    ckpt_mclient *mc = NULL;
    char name[32], cname[32];
    snprintf(cname, sizeof(cname), "conc%d", a->idx);
    if (mfx_mclient(cname, &mc) < 0) {
        a->failures = CONC_FILES;
        return NULL;
    }
    for (int i = 0; i < CONC_FILES; i++) {
        struct ckpt_msg_open_resp o;
        snprintf(name, sizeof(name), "c%02d-%03d", a->idx, i);
        if (create(mc, a->dir, name, O_WRONLY | O_EXCL, &o) < 0 || release(mc, &o, 1, 4096) < 0)
            a->failures++;
        else
            a->inos[i] = o.attr.ino;
    }
    ckpt_mclient_destroy(mc);
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

START_TEST(test_concurrent_creates)
{
    static struct conc_arg args[CONC_CLIENTS];
    static uint64_t all[CONC_CLIENTS * CONC_FILES];
    pthread_t th[CONC_CLIENTS];
    struct ckpt_attr d;
    struct ckpt_msg_readdir_resp r;
    struct meta_server_stats s0, s1;

    mfx_simple_cluster(6);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "conc", 0755, 0, 0, &d), 0);
    meta_server_stats(F.srv, &s0);
    for (int i = 0; i < CONC_CLIENTS; i++) {
        args[i].idx = i;
        args[i].dir = d.ino;
        ck_assert_int_eq(pthread_create(&th[i], NULL, conc_main, &args[i]), 0);
    }
    for (int i = 0; i < CONC_CLIENTS; i++)
        pthread_join(th[i], NULL);
    meta_server_stats(F.srv, &s1);
    size_t n = 0;
    for (int i = 0; i < CONC_CLIENTS; i++) {
        ck_assert_int_eq(args[i].failures, 0);
        for (int j = 0; j < CONC_FILES; j++)
            all[n++] = args[i].inos[j];
    }
    qsort(all, n, sizeof(all[0]), cmp_u64);
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_ne(all[i], all[i - 1]);
    ck_assert_int_eq(ckpt_mclient_readdir(F.mc, d.ino, 0, CKPT_READDIR_MAX, 0, &r), 0);
    ck_assert_uint_eq(r.n, CONC_CLIENTS * CONC_FILES);
    ck_assert_uint_eq(r.eof, 1);
    ckpt_msg_readdir_resp_free(&r);
    /* Group commit: fewer transactions than operations. */
    uint64_t ops = s1.write_ops - s0.write_ops, batches = s1.batches - s0.batches;
    ck_assert_uint_ge(ops, 2 * CONC_CLIENTS * CONC_FILES);
    ck_assert_uint_lt(batches, ops);
    ck_assert_uint_gt(s1.max_batch, 1);
}
END_TEST

/* ---- visibility --------------------------------------------------------------------- */

struct opener {
    ckpt_mclient *mc;
    uint64_t ino;
    int rc;
    atomic_int done;
    struct ckpt_msg_open_resp o;
};

static void *opener_main(void *p)
{
    struct opener *op = p;
    op->rc = ckpt_mclient_open(op->mc, op->ino, O_RDONLY, &op->o);
    atomic_store(&op->done, 1);
    return NULL;
}

START_TEST(test_open_waits_for_writer)
{
    ckpt_mclient *b = NULL;
    struct ckpt_msg_open_resp w, own;
    struct opener op;
    pthread_t th;
    struct meta_server_stats s;

    mfx_simple_cluster(6);
    ck_assert_int_eq(mfx_mclient("reader", &b), 0);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "ckpt.bin", O_WRONLY, &w), 0);
    memset(&op, 0, sizeof(op));
    op.mc = b;
    op.ino = w.attr.ino;
    ck_assert_int_eq(pthread_create(&th, NULL, opener_main, &op), 0);
    mfx_sleep_ms(300);
    ck_assert_int_eq(atomic_load(&op.done), 0); /* held by ckpt-meta */
    meta_server_stats(F.srv, &s);
    ck_assert_uint_eq(s.parked, 1);
    /* The writer's own session does not wait. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, w.attr.ino, O_RDONLY, &own), 0);
    ck_assert_int_eq(release(F.mc, &own, 0, 0), 0);
    mfx_sleep_ms(100);
    ck_assert_int_eq(atomic_load(&op.done), 0);
    /* The flush finished: RELEASE lets the reader in, with the final size. */
    ck_assert_int_eq(release(F.mc, &w, 1, 777), 0);
    MFX_WAIT_FOR(atomic_load(&op.done), 5000);
    ck_assert_int_eq(atomic_load(&op.done), 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(op.rc, 0);
    ck_assert_uint_eq(op.o.attr.size, 777);
    ck_assert_uint_eq(op.o.attr.flags & CKPT_ATTR_F_INCOMPLETE, 0);
    ck_assert_int_eq(release(b, &op.o, 0, 0), 0);
    /* A second writer waits for the first too (both directions). */
    ck_assert_int_eq(ckpt_mclient_open(b, w.attr.ino, O_WRONLY, &own), 0);
    ck_assert_uint_eq(own.attr.data_gen, w.attr.data_gen + 1);
    memset(&op, 0, sizeof(op));
    op.mc = F.mc;
    op.ino = w.attr.ino;
    ck_assert_int_eq(pthread_create(&th, NULL, opener_main, &op), 0);
    mfx_sleep_ms(200);
    ck_assert_int_eq(atomic_load(&op.done), 0);
    ck_assert_int_eq(release(b, &own, 1, 900), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(op.rc, 0);
    ck_assert_uint_eq(op.o.attr.size, 900);
    ckpt_mclient_destroy(b);
}
END_TEST

/* A raw session without a lease thread: it expires. */
static uint64_t raw_session(const char *name)
{
    struct ckpt_msg_session m = {0};
    struct ckpt_msg_session_resp r;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[128];
    snprintf(m.name, sizeof(m.name), "%s", name);
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_session_encode(&w, &m);
    ck_assert_int_eq(mfx_call(CKPT_OP_SESSION, &w, &call), 0);
    ck_assert_int_eq(ckpt_msg_session_resp_decode(call.resp_body, call.resp_body_len, &r), 0);
    ckpt_call_release(&call);
    return r.session;
}

static int raw_session_end(uint64_t sid)
{
    struct ckpt_msg_session m = {sid, ""};
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[128];
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_session_encode(&w, &m);
    int rc = mfx_call(CKPT_OP_SESSION, &w, &call);
    ckpt_call_release(&call);
    return rc;
}

static int raw_create(uint64_t sid, uint64_t parent, const char *name, uint32_t flags,
                      struct ckpt_msg_open_resp *o)
{
    struct ckpt_msg_create m;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[512];
    memset(&m, 0, sizeof(m));
    m.parent = parent;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.mode = 0644;
    m.flags = O_CREAT | flags;
    m.session = sid;
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_create_encode(&w, &m);
    int rc = mfx_call(CKPT_OP_CREATE, &w, &call);
    if (rc == 0)
        ck_assert_int_eq(ckpt_msg_open_resp_decode(call.resp_body, call.resp_body_len, o), 0);
    ckpt_call_release(&call);
    return rc;
}

/* CLOSING: between a writer's close() and its RELEASE, other sessions'
 * attribute reads show the size it is flushing; RELEASE then stores that
 * size with the same ctime, so stat() does not see the file change. */
START_TEST(test_closing_shows_size)
{
    ckpt_mclient *b = NULL;
    struct ckpt_msg_open_resp w;
    struct ckpt_msg_release r;
    struct ckpt_attr a, a2;
    struct ckpt_msg_readdir_resp rd;

    mfx_simple_cluster(6);
    ck_assert_int_eq(mfx_mclient("reader", &b), 0);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "tarred", O_WRONLY, &w), 0);
    memset(&r, 0, sizeof(r));
    r.ino = w.attr.ino;
    r.handle = w.handle;
    r.session = ckpt_mclient_session(F.mc);
    r.wrote = 1;
    r.size = 1048575;
    r.mtime_sec = 1700000000;
    r.mtime_nsec = 5;
    /* Another session's handle, a read-only "close", bad values: refused. */
    r.session = ckpt_mclient_session(b);
    ck_assert_int_eq(ckpt_mclient_closing(b, &r), -ESTALE);
    r.session = ckpt_mclient_session(F.mc);
    r.wrote = 0;
    ck_assert_int_eq(ckpt_mclient_closing(F.mc, &r), -EINVAL);
    r.wrote = 1;
    ck_assert_int_eq(ckpt_mclient_getattr(b, w.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 0);
    ck_assert_int_eq(ckpt_mclient_closing(F.mc, &r), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(b, w.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 1048575);
    ck_assert_int_eq(a.mtime_sec, 1700000000);
    ck_assert_uint_eq(a.mtime_nsec, 5);
    ck_assert_int_eq(ckpt_mclient_lookup(b, CKPT_ROOT_INO, "tarred", &a), 0);
    ck_assert_uint_eq(a.size, 1048575);
    memset(&rd, 0, sizeof(rd));
    ck_assert_int_eq(ckpt_mclient_readdir(b, CKPT_ROOT_INO, 0, 16, 1, &rd), 0);
    bool seen = false;
    for (uint32_t i = 0; i < rd.n; i++) {
        if (strcmp(rd.ents[i].name, "tarred") == 0) {
            seen = true;
            ck_assert_uint_eq(rd.ents[i].attr.size, 1048575);
        }
    }
    ckpt_msg_readdir_resp_free(&rd);
    ck_assert(seen);
    /* A touch meanwhile keeps the size and moves the mtime. */
    struct ckpt_msg_setattr sa;
    struct ckpt_attr out;
    memset(&sa, 0, sizeof(sa));
    sa.ino = w.attr.ino;
    sa.valid = CKPT_SETATTR_MTIME;
    sa.mtime_sec = 1700000100;
    ck_assert_int_eq(ckpt_mclient_setattr(b, &sa, &out), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(b, w.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 1048575);
    ck_assert_int_eq(a.mtime_sec, 1700000100);
    /* The flush is done: the stored attributes are the ones shown. */
    r.mtime_sec = 1700000100;
    r.mtime_nsec = 0;
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(b, w.attr.ino, &a2), 0);
    ck_assert_uint_eq(a2.size, 1048575);
    ck_assert_int_eq(a2.ctime_sec, a.ctime_sec);
    ck_assert_uint_eq(a2.ctime_nsec, a.ctime_nsec);
    ck_assert_int_eq(ckpt_mclient_closing(F.mc, &r), -ESTALE); /* released */
    ckpt_mclient_destroy(b);
}
END_TEST

/* One session's quick appends (`echo >>f` twice, then a third open): two
 * handles are closing at once.  Readers see the size of the newest
 * CLOSING, and so does the session's own next OPEN, whose reply a client
 * that already dropped its inode object builds a fresh one from (the
 * O_APPEND zero-fill of test_fs_posix). */
START_TEST(test_closing_newest_wins)
{
    ckpt_mclient *b = NULL;
    struct ckpt_msg_open_resp h1, h2, h3;
    struct ckpt_msg_release r1, r2;
    struct ckpt_attr a;

    mfx_simple_cluster(6);
    ck_assert_int_eq(mfx_mclient("reader", &b), 0);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "app", O_WRONLY, &h1), 0);
    memset(&r1, 0, sizeof(r1));
    r1.ino = h1.attr.ino;
    r1.handle = h1.handle;
    r1.session = ckpt_mclient_session(F.mc);
    r1.wrote = 1;
    r1.size = 3009;
    ck_assert_int_eq(ckpt_mclient_closing(F.mc, &r1), 0);
    /* The next append opens before the first RELEASE: its reply has the
     * size being flushed, not the stored 0. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, h1.attr.ino, O_WRONLY | O_APPEND, &h2), 0);
    ck_assert_uint_eq(h2.attr.size, 3009);
    r2 = r1;
    r2.handle = h2.handle;
    r2.size = 6018;
    ck_assert_int_eq(ckpt_mclient_closing(F.mc, &r2), 0);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, h1.attr.ino, O_WRONLY | O_APPEND, &h3), 0);
    ck_assert_uint_eq(h3.attr.size, 6018);
    ck_assert_int_eq(ckpt_mclient_getattr(b, h1.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 6018);
    /* The first RELEASE stores its (older) size; the newer one still
     * flushing is what everyone sees, then what is stored. */
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r1), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(b, h1.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 6018);
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r2), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(b, h1.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 6018);
    ck_assert_int_eq(release(F.mc, &h3, 0, 0), 0);
    ckpt_mclient_destroy(b);
}
END_TEST

START_TEST(test_dead_writer_incomplete)
{
    struct ckpt_msg_open_resp w;
    struct opener op;
    pthread_t th;
    uint64_t t0;

    mfx_simple_cluster(6);
    uint64_t sid = raw_session("dies");
    ck_assert_int_eq(raw_create(sid, CKPT_ROOT_INO, "half", O_WRONLY, &w), 0);
    memset(&op, 0, sizeof(op));
    op.mc = F.mc;
    op.ino = w.attr.ino;
    t0 = mfx_ms();
    ck_assert_int_eq(pthread_create(&th, NULL, opener_main, &op), 0);
    /* Nobody renews "dies": after its lease (600 ms) it is declared dead. */
    pthread_join(th, NULL);
    ck_assert_int_eq(op.rc, 0);
    ck_assert_uint_ge(mfx_ms() - t0, 400);
    ck_assert_uint_eq(op.o.attr.flags & CKPT_ATTR_F_INCOMPLETE, CKPT_ATTR_F_INCOMPLETE);
    ck_assert_int_eq(release(F.mc, &op.o, 0, 0), 0);
    /* Its session is gone; O_TRUNC by a new writer clears the mark. */
    ck_assert_int_eq(raw_create(sid, CKPT_ROOT_INO, "other", O_WRONLY, &w), -ESTALE);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, op.o.attr.ino, O_WRONLY | O_TRUNC, &w), 0);
    ck_assert_uint_eq(w.attr.flags & CKPT_ATTR_F_INCOMPLETE, 0);
    ck_assert_int_eq(release(F.mc, &w, 1, 1), 0);
}
END_TEST

/* ---- generations, deletions, orphans ----------------------------------------------- */

static int deletes_for(uint64_t ino, uint64_t below_gen, uint64_t from)
{
    int n = 0;
    pthread_mutex_lock(&F.lock);
    for (int i = 0; i < F.ndeletes; i++)
        n += F.deletes[i].ino == ino && F.deletes[i].below_gen == below_gen &&
             F.deletes[i].from_stripe == from;
    pthread_mutex_unlock(&F.lock);
    return n;
}

START_TEST(test_generations_and_deletions)
{
    struct ckpt_msg_open_resp o, o2;
    struct ckpt_msg_setattr sa;
    struct ckpt_attr a;
    uint64_t stripe = 4ull << 20; /* 4+2, 1 MiB chunks */

    mfx_simple_cluster(6);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "f", O_WRONLY, &o), 0);
    ck_assert_uint_eq(o.attr.data_gen, 1);
    ck_assert_int_eq(release(F.mc, &o, 1, 10 * stripe), 0);
    /* Every open for writing starts a generation; reads do not. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDONLY, &o2), 0);
    ck_assert_uint_eq(o2.attr.data_gen, 1);
    ck_assert_int_eq(release(F.mc, &o2, 0, 0), 0);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDWR, &o2), 0);
    ck_assert_uint_eq(o2.attr.data_gen, 2);
    ck_assert_uint_eq(o2.attr.size, 10 * stripe);
    ck_assert_int_eq(release(F.mc, &o2, 1, 10 * stripe), 0);
    /* Shrinking: stripes past the new end, generations before the new one. */
    memset(&sa, 0, sizeof(sa));
    sa.ino = o.attr.ino;
    sa.valid = CKPT_SETATTR_SIZE;
    sa.size = stripe + 1;
    ck_assert_int_eq(ckpt_mclient_setattr(F.mc, &sa, &a), 0);
    ck_assert_uint_eq(a.data_gen, 3);
    MFX_WAIT_FOR(deletes_for(o.attr.ino, 3, 2) >= 6, 5000);
    ck_assert_int_ge(deletes_for(o.attr.ino, 3, 2), 6);
    /* O_TRUNC: size 0, one new generation, everything older goes. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_WRONLY | O_TRUNC, &o2), 0);
    ck_assert_uint_eq(o2.attr.size, 0);
    ck_assert_uint_eq(o2.attr.data_gen, 4);
    MFX_WAIT_FOR(deletes_for(o.attr.ino, 4, 0) >= 6, 5000);
    ck_assert_int_ge(deletes_for(o.attr.ino, 4, 0), 6);
    ck_assert_int_eq(release(F.mc, &o2, 1, 100), 0);
    /* Unlink of the last name: destroyed, all its chunks deleted. */
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "f"), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, o.attr.ino, NULL), -ENOENT);
    MFX_WAIT_FOR(deletes_for(o.attr.ino, 5, 0) >= 6, 5000);
    ck_assert_int_ge(deletes_for(o.attr.ino, 5, 0), 6);
    /* Every deletion was sent to the targets of the file's layout. */
    pthread_mutex_lock(&F.lock);
    for (int i = 0; i < F.ndeletes; i++) {
        int found = 0;
        for (unsigned t = 0; t < o.layout.width; t++)
            found |= F.deletes[i].target == o.layout.targets[t];
        ck_assert(found);
    }
    pthread_mutex_unlock(&F.lock);
    struct meta_server_stats s;
    MFX_WAIT_FOR((meta_server_stats(F.srv, &s), s.delq_sent >= 18), 5000);
    ck_assert_uint_ge(s.delq_sent, 18);
}
END_TEST

START_TEST(test_orphan_held_open)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_attr a;

    mfx_simple_cluster(6);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "tmp", O_RDWR, &o), 0);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "tmp"), 0);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, "tmp", NULL), -ENOENT);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, o.attr.ino, &a), 0);
    ck_assert_uint_eq(a.nlink, 0);
    mfx_sleep_ms(100);
    ck_assert_int_eq(deletes_for(o.attr.ino, 2, 0), 0); /* still in use */
    ck_assert_int_eq(release(F.mc, &o, 1, 50), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, o.attr.ino, NULL), -ENOENT);
    MFX_WAIT_FOR(deletes_for(o.attr.ino, 2, 0) >= 6, 5000);
    ck_assert_int_ge(deletes_for(o.attr.ino, 2, 0), 6);
}
END_TEST

/* ---- restart ------------------------------------------------------------------------- */

struct late_lookup {
    uint64_t dir;
    int rc;
    struct ckpt_attr a;
};

static void *late_lookup_main(void *p)
{
    struct late_lookup *l = p;
    l->rc = ckpt_mclient_lookup(F.mc, l->dir, "f07", &l->a);
    return NULL;
}

START_TEST(test_restart_keeps_state)
{
    struct ckpt_msg_open_resp o, held;
    struct ckpt_attr d, a;
    char name[32];

    mfx_simple_cluster(6);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "keep", 0750, 1, 2, &d), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "f%02d", i);
        ck_assert_int_eq(create(F.mc, d.ino, name, O_WRONLY, &o), 0);
        ck_assert_int_eq(release(F.mc, &o, 1, (uint64_t)i * 1000), 0);
    }
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, "user.k", "v", 1, 0), 0);
    ck_assert_int_eq(create(F.mc, d.ino, "held", O_WRONLY, &held), 0);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, d.ino, "held"), 0);
    uint64_t sid = ckpt_mclient_session(F.mc);

    mfx_hb_stop();
    mfx_server_stop();
    /* A read issued while ckpt-meta is down is retried until it is back. */
    struct late_lookup late = {d.ino, -1, {0}};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_lookup_main, &late), 0);
    mfx_sleep_ms(300);
    F.opts.listen_port = F.port; /* the clients know this address */
    mfx_server_start();
    pthread_join(th, NULL);
    ck_assert_int_eq(late.rc, 0);
    ck_assert_uint_eq(late.a.size, 7000);

    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "f%02d", i);
        ck_assert_int_eq(ckpt_mclient_lookup(F.mc, d.ino, name, &a), 0);
        ck_assert_uint_eq(a.size, (uint64_t)i * 1000);
    }
    ck_assert_int_eq(ckpt_mclient_getxattr(F.mc, d.ino, "user.k", NULL, 0), 1);
    /* The session and its handle survived: the orphan is still there, and
     * the writer's release still works and destroys it. */
    ck_assert_uint_eq(ckpt_mclient_session(F.mc), sid);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, held.attr.ino, &a), 0);
    ck_assert_uint_eq(a.nlink, 0);
    ck_assert_int_eq(release(F.mc, &held, 1, 10), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, held.attr.ino, NULL), -ENOENT);
    /* Nodes known before count as UP: creating works at once. */
    ck_assert_int_eq(create(F.mc, d.ino, "after", O_WRONLY, &o), 0);
    ck_assert_int_eq(release(F.mc, &o, 0, 0), 0);
}
END_TEST

/* Read handles live in memory until their file loses its last name
 * (meta_session.c "Read handles"): a read-only open writes no record, so
 * after a restart its RELEASE finds nothing; one whose file is unlinked
 * while open is written then and keeps the orphan across the restart; and
 * the restarted server never hands out a memory-only handle's id again. */
START_TEST(test_read_handles_memory_only)
{
    struct ckpt_msg_open_resp w, r1, r2, r3;
    struct ckpt_attr a;

    mfx_simple_cluster(6);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "plain", O_WRONLY, &w), 0);
    ck_assert_int_eq(release(F.mc, &w, 1, 4096), 0);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "gone", O_WRONLY, &w), 0);
    ck_assert_int_eq(release(F.mc, &w, 1, 100), 0);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, w.attr.ino, O_RDONLY, &r2), 0);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, "plain", &a), 0);
    ck_assert_int_eq(ckpt_mclient_open(F.mc, a.ino, O_RDONLY, &r1), 0); /* the newest id */
    ck_assert_uint_eq(r1.attr.size, 4096);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "gone"), 0);

    mfx_hb_stop();
    mfx_server_stop();
    F.opts.listen_port = F.port;
    mfx_server_start();

    /* The orphan's reader was written at the unlink: it is still there. */
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, r2.attr.ino, &a), 0);
    ck_assert_uint_eq(a.nlink, 0);
    /* A new handle never takes the id of one the clients may still hold. */
    ck_assert_int_eq(ckpt_mclient_open(F.mc, r1.attr.ino, O_RDONLY, &r3), 0);
    ck_assert_uint_ne(r3.handle, r1.handle);
    ck_assert_uint_ne(r3.handle, r2.handle);
    /* fsync() through that reader (`sync FILE` opens read-only) still
     * stores this session's size: its handle is from before the restart.
     * An unknown handle of this run is refused as before. */
    struct ckpt_msg_release fl;
    memset(&fl, 0, sizeof(fl));
    fl.ino = r1.attr.ino;
    fl.handle = r1.handle;
    fl.session = ckpt_mclient_session(F.mc);
    fl.wrote = 1;
    fl.size = 5000;
    ck_assert_int_eq(ckpt_mclient_flushed(F.mc, &fl), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, r1.attr.ino, &a), 0);
    ck_assert_uint_eq(a.size, 5000);
    fl.handle = r3.handle + 1000;
    ck_assert_int_eq(ckpt_mclient_flushed(F.mc, &fl), -ESTALE);
    /* The plain file's reader was never written down. */
    ck_assert_int_eq(release(F.mc, &r1, 0, 0), -ESTALE);
    ck_assert_int_eq(release(F.mc, &r3, 0, 0), 0);
    ck_assert_int_eq(release(F.mc, &r2, 0, 0), 0);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, r2.attr.ino, NULL), -ENOENT);
}
END_TEST

/* ---- sessions -------------------------------------------------------------------------- */

static atomic_int lost_calls;
static atomic_uint_fast64_t lost_old, lost_new;

static void on_lost(void *ctx, uint64_t old_session, uint64_t new_session)
{
    (void)ctx;
    atomic_store(&lost_old, old_session);
    atomic_store(&lost_new, new_session);
    atomic_fetch_add(&lost_calls, 1);
}

START_TEST(test_session_lost_and_recovered)
{
    struct ckpt_mclient_opts mo;
    ckpt_mclient *mc = NULL;
    struct ckpt_msg_open_resp o;

    mfx_simple_cluster(6);
    memset(&mo, 0, sizeof(mo));
    mo.host = "127.0.0.1";
    mo.port = F.port;
    mo.name = "lossy";
    mo.session_lost = on_lost;
    ck_assert_int_eq(ckpt_mclient_create(F.net, &mo, &mc), 0);
    uint64_t s1 = ckpt_mclient_session(mc);
    ck_assert_uint_ne(s1, 0);
    /* Someone ends it behind its back (as an expiry would). */
    ck_assert_int_eq(raw_session_end(s1), 0);
    ck_assert_int_eq(raw_session_end(s1), -ESTALE);
    /* The next OPEN/CREATE or renewal notices and opens a new session. */
    ck_assert_int_eq(create(mc, CKPT_ROOT_INO, "x", O_WRONLY, &o), 0);
    uint64_t s2 = ckpt_mclient_session(mc);
    ck_assert_uint_ne(s2, s1);
    ck_assert_int_eq(atomic_load(&lost_calls), 1);
    ck_assert_uint_eq(atomic_load(&lost_old), s1);
    ck_assert_uint_eq(atomic_load(&lost_new), s2);
    ck_assert_int_eq(release(mc, &o, 1, 1), 0);
    /* Leases are renewed: well past a lease, the session is alive. */
    mfx_sleep_ms(1500);
    ck_assert_uint_eq(ckpt_mclient_session(mc), s2);
    ck_assert_int_eq(atomic_load(&lost_calls), 1);
    ckpt_mclient_destroy(mc);
    /* Destroy ended the session. */
    ck_assert_int_eq(raw_session_end(s2), -ESTALE);
}
END_TEST

/* ---- a batch that fails to commit ----------------------------------------------------- */

static sem_t batch_sem;
static void batch_done(struct ckpt_call *c)
{
    (void)c;
    sem_post(&batch_sem);
}

START_TEST(test_failed_commit_rolls_back)
{
    struct ckpt_msg_open_resp a;
    struct ckpt_attr at;
    struct meta_server_stats st;
    int rc;

    mfx_simple_cluster(6);
    ck_assert_int_eq(create(F.mc, CKPT_ROOT_INO, "a", O_WRONLY, &a), 0);
    /* A RELEASE whose batch fails: nothing of it stays, in the database or
     * in memory (its handle is still open, so the next RELEASE works). */
    ckpt_fault_arm(CKPT_FAULT_FSYNC, 1);
    rc = release(F.mc, &a, 1, 10);
    ck_assert(ckpt_fault_fired(CKPT_FAULT_FSYNC));
    meta_server_stats(F.srv, &st);
    ck_assert_uint_eq(st.failed_batches, 1);
    if (rc == -EIO) { /* it was alone in its batch */
        ck_assert_int_eq(ckpt_mclient_getattr(F.mc, a.attr.ino, &at), 0);
        ck_assert_uint_eq(at.size, 0);
        ck_assert_int_eq(release(F.mc, &a, 1, 10), 0);
    } else {
        ck_assert_int_eq(rc, 0); /* retried alone after its batch failed */
    }
    ck_assert_int_eq(release(F.mc, &a, 1, 10), -ESTALE);
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, a.attr.ino, &at), 0);
    ck_assert_uint_eq(at.size, 10);

    /* Nine CREATEs sent at once, and the first batch fails: if it held
     * several ops, each is run again alone and succeeds; if it held one,
     * that one fails.  Repeat until a several-op batch failed. */
    enum { NB = 9 };
    static struct ckpt_call calls[NB];
    static uint8_t bodies[NB][512];
    struct ckpt_wbuf w[NB];
    uint64_t sid = raw_session("batch");
    ckpt_conn *c = mfx_nconn();
    int retried_ok = 0;
    sem_init(&batch_sem, 0, 0);
    for (int round = 0; round < 10 && !retried_ok; round++) {
        ckpt_fault_arm(CKPT_FAULT_FSYNC, 1);
        for (int i = 0; i < NB; i++) {
            struct ckpt_msg_create m;
            memset(&m, 0, sizeof(m));
            m.parent = CKPT_ROOT_INO;
            snprintf(m.name, sizeof(m.name), "b%d-%d", round, i);
            m.mode = 0644;
            m.flags = O_CREAT | O_EXCL | O_WRONLY;
            m.session = sid;
            ckpt_wbuf_init(&w[i], bodies[i], sizeof(bodies[i]));
            ck_assert_int_eq(ckpt_msg_create_encode(&w[i], &m), 0);
            memset(&calls[i], 0, sizeof(calls[i]));
            calls[i].opcode = CKPT_OP_CREATE;
            calls[i].body = w[i].p;
            calls[i].body_len = (uint32_t)w[i].len;
            calls[i].done = batch_done;
            ck_assert_int_eq(ckpt_conn_submit(c, &calls[i]), 0);
        }
        for (int i = 0; i < NB; i++)
            sem_wait(&batch_sem);
        ck_assert(ckpt_fault_fired(CKPT_FAULT_FSYNC));
        int ok = 0;
        for (int i = 0; i < NB; i++) {
            char name[32];
            snprintf(name, sizeof(name), "b%d-%d", round, i);
            if (calls[i].status == 0) {
                struct ckpt_msg_open_resp o;
                ck_assert_int_eq(ckpt_msg_open_resp_decode(calls[i].resp_body,
                                                           calls[i].resp_body_len, &o), 0);
                ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, name, &at), 0);
                ck_assert_uint_eq(at.ino, o.attr.ino);
                ok++;
            } else {
                ck_assert_int_eq(calls[i].status, -EIO);
                ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, name, NULL),
                                 -ENOENT);
            }
            ckpt_call_release(&calls[i]);
        }
        ck_assert_int_ge(ok, NB - 1);
        retried_ok = ok == NB;
    }
    ck_assert(retried_ok);
    meta_server_stats(F.srv, &st);
    ck_assert_uint_ge(st.failed_batches, 2);
    ck_assert_int_eq(raw_session_end(sid), 0);
}
END_TEST

START_TEST(test_client_errors)
{
    struct ckpt_mclient_opts mo;
    ckpt_mclient *mc = NULL;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t junk[5] = {1, 2, 3, 4, 5};

    /* Nobody listening: the first SESSION call's error. */
    memset(&mo, 0, sizeof(mo));
    mo.host = "127.0.0.1";
    mo.port = F.node_port + 0; /* a server that does not speak SESSION */
    ck_assert_int_eq(ckpt_mclient_create(F.net, &mo, &mc), -EOPNOTSUPP);
    ck_assert_ptr_null(mc);
    /* A malformed request: answered CKPT_E_PROTO and its connection closed. */
    ckpt_wbuf_init(&w, junk, sizeof(junk));
    w.len = sizeof(junk);
    ck_assert_int_eq(mfx_call(CKPT_OP_LOOKUP, &w, &call), CKPT_E_PROTO);
    ckpt_call_release(&call);
    MFX_WAIT_FOR(!ckpt_conn_is_open(F.nconn), 2000);
    ck_assert(!ckpt_conn_is_open(F.nconn));
    /* ... while the server carries on. */
    ck_assert_int_eq(ckpt_mclient_getattr(F.mc, CKPT_ROOT_INO, NULL), 0);
    /* No node: no placement. */
    ck_assert_int_eq(ckpt_mclient_mknod(F.mc, CKPT_ROOT_INO, "f", S_IFREG | 0644, 0, 0, 0, NULL),
                     -ENOSPC);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "d", 0755, 0, 0, NULL), 0);
}
END_TEST

Suite *meta_server_suite(void)
{
    Suite *s = suite_create("meta_server");
    TCase *tc = tcase_create("namespace");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup, mfx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_files_and_dirs);
    tcase_add_test(tc, test_rename);
    tcase_add_test(tc, test_setattr_statfs);
    tcase_add_test(tc, test_xattrs_and_layouts);
    tcase_add_test(tc, test_concurrent_creates);
    tcase_add_test(tc, test_open_waits_for_writer);
    tcase_add_test(tc, test_closing_shows_size);
    tcase_add_test(tc, test_closing_newest_wins);
    tcase_add_test(tc, test_generations_and_deletions);
    tcase_add_test(tc, test_orphan_held_open);
    tcase_add_test(tc, test_restart_keeps_state);
    tcase_add_test(tc, test_read_handles_memory_only);
    tcase_add_test(tc, test_client_errors);
    tcase_add_test(tc, test_failed_commit_rolls_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("readdir");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup_big, mfx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_readdir_100k);
    suite_add_tcase(s, tc);

    tc = tcase_create("leases");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup_short_lease, mfx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_dead_writer_incomplete);
    tcase_add_test(tc, test_session_lost_and_recovered);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * meta_ns.c - the namespace operations of the store (see meta_store.h):
 * lookup, getattr, setattr, mknod, mkdir, symlink, readlink, link, unlink,
 * rmdir, rename, readdir, extended attributes (with the directory default
 * layout they carry), destroy.
 *
 * DESIGN
 *
 *   No threads or state of its own: each function works in the caller's
 *   transaction (meta_store.h explains the group-commit pattern).
 *
 *   Every mutating function first reads and checks everything it needs and
 *   returns the POSIX error before its first write; only an LMDB failure
 *   (-ENOSPC, -EIO, -ENOBUFS) can stop it half-way, which is why callers
 *   run each operation in a child transaction and abort it on failure.
 *   Inode records are decoded into struct meta_inode, changed in memory and
 *   written back whole with meta_st_inode_put() (no pointer into an LMDB
 *   page survives a write).
 *
 *   A directory entry is two records: ns.dentry (parent, name) -> child,
 *   type, cookie, which lookups use, and ns.dcookie (parent, cookie) ->
 *   child, type, name, which readdir walks.  A cookie comes from the
 *   directory's next_cookie counter (starting at META_COOKIE_FIRST) and is
 *   never reused in that directory, so a listing resumed from any cookie
 *   neither repeats nor skips entries that were there all along, whatever
 *   was added or removed meanwhile.  dentry_insert/dentry_remove/
 *   dentry_rewrite keep the pair in step.
 *
 *   Link counts: a directory has 2 + one per subdirectory; the root has no
 *   name and its ".." is itself.  Removing the last name of anything
 *   (unlink, rmdir, rename over it) leaves the inode with nlink 0 on the
 *   orphan list until meta_store_destroy().  The directory tree is kept
 *   acyclic by rename, which walks parent pointers from the destination up
 *   to the root and refuses (EINVAL) to put a directory under itself.
 */
#include "meta_store.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "err.h"
#include "log.h"
#include "meta_store_int.h"

/* The kernel's flags pass straight through (meta_store.h). */
#ifdef RENAME_NOREPLACE
_Static_assert(META_RENAME_NOREPLACE == RENAME_NOREPLACE, "rename flag");
_Static_assert(META_RENAME_EXCHANGE == RENAME_EXCHANGE, "rename flag");
#endif
_Static_assert(META_XATTR_CREATE == XATTR_CREATE, "xattr flag");
_Static_assert(META_XATTR_REPLACE == XATTR_REPLACE, "xattr flag");
_Static_assert(DT_DIR == S_IFDIR >> 12 && DT_REG == S_IFREG >> 12,
               "dentry type nibble is the DT_* value");

#define DENTRY_VAL_LEN 18u /* ver, type, child le64, cookie le64 */
#define DCOOKIE_VAL_FIXED 10u /* ver, type, child le64; name follows */

struct dent {
    uint64_t ino;
    uint64_t cookie;
    uint8_t type; /* S_IFMT >> 12 */
};

static uint8_t mode_type(uint32_t mode)
{
    return (uint8_t)((mode & S_IFMT) >> 12);
}

static void dentry_key(uint8_t kb[8 + META_NAME_MAX], uint64_t parent,
                       const char *name, size_t len, MDB_val *k)
{
    meta_st_put_be64(kb, parent);
    memcpy(kb + 8, name, len);
    k->mv_size = 8 + len;
    k->mv_data = kb;
}

static void dcookie_key(uint8_t kb[16], uint64_t parent, uint64_t cookie,
                        MDB_val *k)
{
    meta_st_put_be64(kb, parent);
    meta_st_put_be64(kb + 8, cookie);
    k->mv_size = 16;
    k->mv_data = kb;
}

/* 0 with *out, -ENOENT, -EIO (bad record), CKPT_E_VERSION. */
static int dentry_get(meta_store *st, MDB_txn *txn, uint64_t parent,
                      const char *name, size_t len, struct dent *out)
{
    uint8_t kb[8 + META_NAME_MAX];
    MDB_val k, v;
    const uint8_t *p;
    int rc;

    dentry_key(kb, parent, name, len, &k);
    rc = meta_st_get(txn, st->dbi[META_T_DENTRY], &k, &v);
    if (rc < 0)
        return rc;
    p = v.mv_data;
    if (v.mv_size < 1 || p[0] == 0)
        return -EIO;
    if (p[0] > META_REC_VERSION)
        return CKPT_E_VERSION;
    if (v.mv_size != DENTRY_VAL_LEN)
        return -EIO;
    out->type = p[1];
    out->ino = meta_st_get_le64(p + 2);
    out->cookie = meta_st_get_le64(p + 10);
    return 0;
}

/* Write both records of an entry (new, or rewritten in place). */
static int dentry_rewrite(meta_store *st, MDB_txn *txn, uint64_t parent,
                          const char *name, size_t len, const struct dent *d)
{
    uint8_t kb[8 + META_NAME_MAX], ckb[16];
    uint8_t vb[DENTRY_VAL_LEN], cvb[DCOOKIE_VAL_FIXED + META_NAME_MAX];
    MDB_val k, v = {sizeof(vb), vb}, ck, cv;
    int rc;

    dentry_key(kb, parent, name, len, &k);
    vb[0] = META_REC_VERSION;
    vb[1] = d->type;
    meta_st_put_le64(vb + 2, d->ino);
    meta_st_put_le64(vb + 10, d->cookie);
    rc = meta_st_put(txn, st->dbi[META_T_DENTRY], &k, &v, 0);
    if (rc < 0)
        return rc;
    dcookie_key(ckb, parent, d->cookie, &ck);
    memcpy(cvb, vb, DCOOKIE_VAL_FIXED);
    memcpy(cvb + DCOOKIE_VAL_FIXED, name, len);
    cv.mv_size = DCOOKIE_VAL_FIXED + len;
    cv.mv_data = cvb;
    return meta_st_put(txn, st->dbi[META_T_DCOOKIE], &ck, &cv, 0);
}

/* A new entry in dir with the next cookie; the caller writes dir back. */
static int dentry_insert(meta_store *st, MDB_txn *txn, struct meta_inode *dir,
                         const char *name, size_t len, uint64_t ino,
                         uint32_t mode)
{
    struct dent d = {ino, dir->next_cookie, mode_type(mode)};

    if (dir->next_cookie == UINT64_MAX)
        return -ENOSPC;
    dir->next_cookie++;
    return dentry_rewrite(st, txn, dir->ino, name, len, &d);
}

static int dentry_remove(meta_store *st, MDB_txn *txn, uint64_t parent,
                         const char *name, size_t len, uint64_t cookie)
{
    uint8_t kb[8 + META_NAME_MAX], ckb[16];
    MDB_val k, ck;
    int rc;

    dentry_key(kb, parent, name, len, &k);
    rc = meta_st_del(txn, st->dbi[META_T_DENTRY], &k);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;
    dcookie_key(ckb, parent, cookie, &ck);
    rc = meta_st_del(txn, st->dbi[META_T_DCOOKIE], &ck);
    return rc == -ENOENT ? -EIO : rc;
}

/* -ENOENT, -ENOTDIR, or 0 with *out a directory. */
static int dir_get(meta_store *st, MDB_txn *txn, uint64_t ino,
                   struct meta_inode *out)
{
    int rc = meta_st_inode_get(st, txn, ino, out);

    if (rc < 0)
        return rc;
    return S_ISDIR(out->mode) ? 0 : -ENOTDIR;
}

/* The inode a dentry points to; a dangling entry is corruption. */
static int child_get(meta_store *st, MDB_txn *txn, const struct dent *d,
                     struct meta_inode *out)
{
    int rc = meta_st_inode_get(st, txn, d->ino, out);

    return rc == -ENOENT ? -EIO : rc;
}

static int dir_is_empty(meta_store *st, MDB_txn *txn, uint64_t dir,
                        bool *out)
{
    MDB_cursor *cur = NULL;
    uint8_t kb[16];
    MDB_val k, v;
    int rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[META_T_DCOOKIE],
                                              &cur));

    if (rc < 0)
        return rc;
    dcookie_key(kb, dir, 0, &k);
    rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
    if (rc == 0)
        *out = k.mv_size < 8 || meta_st_get_be64(k.mv_data) != dir;
    else if (rc == -ENOENT) {
        *out = true;
        rc = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}

/* *out = true when anc is ino itself or one of its ancestors. */
static int is_ancestor(meta_store *st, MDB_txn *txn, uint64_t anc,
                       uint64_t ino, bool *out)
{
    uint64_t cur = ino;

    for (unsigned depth = 0; depth < META_DIR_DEPTH_MAX; depth++) {
        struct meta_inode in;
        int rc;

        if (cur == anc) {
            *out = true;
            return 0;
        }
        if (cur == META_ROOT_INO) {
            *out = false;
            return 0;
        }
        rc = meta_st_inode_get(st, txn, cur, &in);
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
        cur = in.parent;
    }
    return -EIO; /* a loop in parent pointers */
}

static void touch_dir(struct meta_inode *dir, const struct timespec *now)
{
    dir->mtime = *now;
    dir->ctime = *now;
}

/* ---- lookup and attributes --------------------------------------------------- */

int meta_store_lookup(MDB_txn *txn, uint64_t parent, const char *name,
                      struct meta_attr *out)
{
    meta_store *st;
    struct meta_inode dir, child;
    struct dent d;
    size_t len;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    rc = meta_st_name_check(name, true, &len);
    if (rc < 0)
        return rc;
    rc = dir_get(st, txn, parent, &dir);
    if (rc < 0)
        return rc;
    if (len == 1 && name[0] == '.') {
        meta_st_inode_to_attr(&dir, out);
        return 0;
    }
    if (len == 2 && name[0] == '.' && name[1] == '.') {
        rc = meta_st_inode_get(st, txn, dir.parent, &child);
        if (rc == -ENOENT && dir.nlink == 0)
            return -ENOENT; /* removed dir whose old parent is gone too */
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
        meta_st_inode_to_attr(&child, out);
        return 0;
    }
    rc = dentry_get(st, txn, parent, name, len, &d);
    if (rc < 0)
        return rc;
    rc = child_get(st, txn, &d, &child);
    if (rc < 0)
        return rc;
    meta_st_inode_to_attr(&child, out);
    return 0;
}

int meta_store_getattr(MDB_txn *txn, uint64_t ino, struct meta_attr *out)
{
    meta_store *st;
    struct meta_inode in;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    meta_st_inode_to_attr(&in, out);
    return 0;
}

int meta_store_setattr(MDB_txn *txn, uint64_t ino, const struct meta_setattr *sa,
                       const struct timespec *now, struct meta_attr *out_attr,
                       uint64_t *out_old_size)
{
    meta_store *st;
    struct meta_inode in;
    bool size_changed = false;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!sa || !meta_st_ts_valid(now) || (sa->mask & ~META_SETATTR_ALL))
        return -EINVAL;
    if (((sa->mask & META_SETATTR_ATIME) && !meta_st_ts_valid(&sa->atime)) ||
        ((sa->mask & META_SETATTR_MTIME) && !meta_st_ts_valid(&sa->mtime)) ||
        ((sa->mask & META_SETATTR_CTIME) && !meta_st_ts_valid(&sa->ctime)))
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (out_old_size)
        *out_old_size = in.size;
    if (sa->mask & META_SETATTR_SIZE) {
        if (S_ISDIR(in.mode))
            return -EISDIR;
        if (!S_ISREG(in.mode))
            return -EINVAL;
        if (sa->size > (uint64_t)INT64_MAX)
            return -EFBIG;
    }
    if (sa->mask == 0)
        goto out;

    if (sa->mask & META_SETATTR_MODE)
        in.mode = (in.mode & S_IFMT) | (sa->mode & 07777);
    if (sa->mask & META_SETATTR_UID)
        in.uid = sa->uid;
    if (sa->mask & META_SETATTR_GID)
        in.gid = sa->gid;
    if ((sa->mask & META_SETATTR_SIZE) && sa->size != in.size) {
        in.size = sa->size;
        in.data_gen++;
        size_changed = true;
    }
    if (sa->mask & META_SETATTR_ATIME_NOW)
        in.atime = *now;
    else if (sa->mask & META_SETATTR_ATIME)
        in.atime = sa->atime;
    if (sa->mask & META_SETATTR_MTIME_NOW)
        in.mtime = *now;
    else if (sa->mask & META_SETATTR_MTIME)
        in.mtime = sa->mtime;
    else if (size_changed)
        in.mtime = *now;
    in.ctime = (sa->mask & META_SETATTR_CTIME) ? sa->ctime : *now;
    rc = meta_st_inode_put(st, txn, &in);
    if (rc < 0)
        return rc;
out:
    if (out_attr)
        meta_st_inode_to_attr(&in, out_attr);
    return 0;
}

int meta_store_flags_update(MDB_txn *txn, uint64_t ino, uint32_t set_bits,
                            uint32_t clear_bits)
{
    meta_store *st;
    struct meta_inode in;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if ((set_bits | clear_bits) & ~META_INODE_F_ALL)
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    in.flags = (in.flags & ~clear_bits) | set_bits;
    return meta_st_inode_put(st, txn, &in);
}

int meta_store_size_update(MDB_txn *txn, uint64_t ino, uint64_t size,
                           const struct timespec *mtime,
                           const struct timespec *now,
                           struct meta_attr *out_attr)
{
    meta_store *st;
    struct meta_inode in;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now) || (mtime && !meta_st_ts_valid(mtime)))
        return -EINVAL;
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (!S_ISREG(in.mode))
        return -EINVAL;
    in.size = size;
    in.mtime = mtime ? *mtime : *now;
    in.ctime = *now;
    rc = meta_st_inode_put(st, txn, &in);
    if (rc == 0 && out_attr)
        meta_st_inode_to_attr(&in, out_attr);
    return rc;
}

int meta_store_data_gen_bump(MDB_txn *txn, uint64_t ino, uint64_t *out_gen)
{
    meta_store *st;
    struct meta_inode in;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (!S_ISREG(in.mode))
        return -EINVAL;
    in.data_gen++;
    rc = meta_st_inode_put(st, txn, &in);
    if (rc == 0 && out_gen)
        *out_gen = in.data_gen;
    return rc;
}

/* ---- creation ------------------------------------------------------------------ */

struct new_inode {
    uint32_t mode; /* complete: type | permissions */
    uint32_t uid, gid;
    uint64_t rdev;
    const struct ckpt_layout *layout; /* validated, or NULL */
    const char *target;               /* symlinks */
    size_t target_len;
};

/* Checks common to every creation; then allocates, links and writes. */
static int create_common(MDB_txn *txn, uint64_t parent, const char *name,
                         const struct new_inode *ni, const struct timespec *now,
                         struct meta_attr *out)
{
    meta_store *st;
    struct meta_inode dir, child;
    struct dent d;
    size_t len;
    bool is_dir = S_ISDIR(ni->mode);
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_name_check(name, false, &len);
    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now))
        return -EINVAL;
    rc = dir_get(st, txn, parent, &dir);
    if (rc < 0)
        return rc;
    if (dir.nlink == 0)
        return -ENOENT; /* removed, still open somewhere */
    rc = dentry_get(st, txn, parent, name, len, &d);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    if (is_dir && dir.nlink >= META_LINK_MAX)
        return -EMLINK;

    memset(&child, 0, sizeof(child));
    rc = meta_st_alloc_ino(st, txn, &child.ino, &child.generation);
    if (rc < 0)
        return rc;
    child.mode = ni->mode;
    child.uid = ni->uid;
    child.gid = ni->gid;
    if (dir.mode & S_ISGID) { /* BSD group semantics, as ext4 does */
        child.gid = dir.gid;
        if (is_dir)
            child.mode |= S_ISGID;
    }
    child.nlink = is_dir ? 2 : 1;
    child.size = ni->target_len;
    child.rdev = (S_ISCHR(ni->mode) || S_ISBLK(ni->mode)) ? ni->rdev : 0;
    child.atime = child.mtime = child.ctime = *now;
    child.parent = is_dir ? parent : 0;
    child.data_gen = 1;
    child.next_cookie = is_dir ? META_COOKIE_FIRST : 0;
    if (ni->layout) {
        child.has_layout = true;
        meta_st_layout_copy(&child.layout, ni->layout);
    }
    rc = meta_st_inode_put(st, txn, &child);
    if (rc < 0)
        return rc;
    if (S_ISLNK(ni->mode)) {
        uint8_t kb[8], vb[1 + META_SYMLINK_MAX];
        MDB_val k = {sizeof(kb), kb}, v = {1 + ni->target_len, vb};

        meta_st_put_be64(kb, child.ino);
        vb[0] = META_REC_VERSION;
        memcpy(vb + 1, ni->target, ni->target_len);
        rc = meta_st_put(txn, st->dbi[META_T_SYMLINK], &k, &v, 0);
        if (rc < 0)
            return rc;
    }
    if (child.has_layout) {
        uint32_t tids[CKPT_LAYOUT_MAX_WIDTH];
        unsigned n = meta_st_layout_targets(&child.layout, tids);

        for (unsigned i = 0; i < n; i++) {
            rc = meta_st_tindex_put(st, txn, tids[i], child.ino);
            if (rc < 0)
                return rc;
        }
    }
    rc = dentry_insert(st, txn, &dir, name, len, child.ino, child.mode);
    if (rc < 0)
        return rc;
    if (is_dir)
        dir.nlink++;
    touch_dir(&dir, now);
    rc = meta_st_inode_put(st, txn, &dir);
    if (rc < 0)
        return rc;
    if (out)
        meta_st_inode_to_attr(&child, out);
    return 0;
}

int meta_store_mknod(MDB_txn *txn, uint64_t parent, const char *name,
                     uint32_t mode, uint32_t uid, uint32_t gid, uint64_t rdev,
                     const struct ckpt_layout *layout,
                     const struct timespec *now, struct meta_attr *out)
{
    struct new_inode ni = {0};
    uint32_t type = mode & S_IFMT;
    int rc;

    if (type == 0)
        type = S_IFREG;
    if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK &&
        type != S_IFCHR && type != S_IFBLK)
        return -EINVAL;
    if (layout) {
        if (type != S_IFREG)
            return -EINVAL;
        rc = meta_st_layout_valid(layout, NULL);
        if (rc < 0)
            return rc;
    }
    ni.mode = type | (mode & 07777);
    ni.uid = uid;
    ni.gid = gid;
    ni.rdev = rdev;
    ni.layout = layout;
    return create_common(txn, parent, name, &ni, now, out);
}

int meta_store_mkdir(MDB_txn *txn, uint64_t parent, const char *name,
                     uint32_t mode, uint32_t uid, uint32_t gid,
                     const struct timespec *now, struct meta_attr *out)
{
    struct new_inode ni = {0};

    ni.mode = S_IFDIR | (mode & 07777);
    ni.uid = uid;
    ni.gid = gid;
    return create_common(txn, parent, name, &ni, now, out);
}

int meta_store_symlink(MDB_txn *txn, uint64_t parent, const char *name,
                       const char *target, uint32_t uid, uint32_t gid,
                       const struct timespec *now, struct meta_attr *out)
{
    struct new_inode ni = {0};

    if (!target || target[0] == '\0')
        return -ENOENT;
    ni.target_len = strnlen(target, META_SYMLINK_MAX + 1);
    if (ni.target_len > META_SYMLINK_MAX)
        return -ENAMETOOLONG;
    ni.mode = S_IFLNK | 0777;
    ni.uid = uid;
    ni.gid = gid;
    ni.target = target;
    return create_common(txn, parent, name, &ni, now, out);
}

int meta_store_readlink(MDB_txn *txn, uint64_t ino, char *dst, size_t dst_cap,
                        size_t *out_len)
{
    meta_store *st;
    struct meta_inode in;
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!dst || !out_len)
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (!S_ISLNK(in.mode))
        return -EINVAL;
    meta_st_put_be64(kb, ino);
    rc = meta_st_get(txn, st->dbi[META_T_SYMLINK], &k, &v);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;
    if (v.mv_size < 2 || ((const uint8_t *)v.mv_data)[0] == 0)
        return -EIO;
    if (((const uint8_t *)v.mv_data)[0] > META_REC_VERSION)
        return CKPT_E_VERSION;
    if (dst_cap < v.mv_size) /* target + NUL */
        return -ERANGE;
    memcpy(dst, (const uint8_t *)v.mv_data + 1, v.mv_size - 1);
    dst[v.mv_size - 1] = '\0';
    *out_len = v.mv_size - 1;
    return 0;
}

/* ---- names ---------------------------------------------------------------------- */

int meta_store_link(MDB_txn *txn, uint64_t ino, uint64_t newparent,
                    const char *newname, const struct timespec *now,
                    struct meta_attr *out)
{
    meta_store *st;
    struct meta_inode in, dir;
    struct dent d;
    size_t len;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_name_check(newname, false, &len);
    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now))
        return -EINVAL;
    /* Linux order: old path, new path, then vfs_link's checks. */
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    rc = dir_get(st, txn, newparent, &dir);
    if (rc < 0)
        return rc;
    if (dir.nlink == 0)
        return -ENOENT;
    rc = dentry_get(st, txn, newparent, newname, len, &d);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    if (S_ISDIR(in.mode))
        return -EPERM;
    if (in.nlink == 0)
        return -ENOENT;
    if (in.nlink >= META_LINK_MAX)
        return -EMLINK;

    in.nlink++;
    in.ctime = *now;
    rc = meta_st_inode_put(st, txn, &in);
    if (rc < 0)
        return rc;
    rc = dentry_insert(st, txn, &dir, newname, len, ino, in.mode);
    if (rc < 0)
        return rc;
    touch_dir(&dir, now);
    rc = meta_st_inode_put(st, txn, &dir);
    if (rc == 0 && out)
        meta_st_inode_to_attr(&in, out);
    return rc;
}

int meta_store_unlink(MDB_txn *txn, uint64_t parent, const char *name,
                      const struct timespec *now, uint64_t *out_ino,
                      bool *out_last)
{
    meta_store *st;
    struct meta_inode dir, child;
    struct dent d;
    size_t len;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_name_check(name, false, &len);
    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now))
        return -EINVAL;
    rc = dir_get(st, txn, parent, &dir);
    if (rc < 0)
        return rc;
    rc = dentry_get(st, txn, parent, name, len, &d);
    if (rc < 0)
        return rc;
    rc = child_get(st, txn, &d, &child);
    if (rc < 0)
        return rc;
    if (S_ISDIR(child.mode))
        return -EISDIR;
    if (child.nlink == 0)
        return -EIO; /* a name on an inode that counts none */

    rc = dentry_remove(st, txn, parent, name, len, d.cookie);
    if (rc < 0)
        return rc;
    child.nlink--;
    child.ctime = *now;
    if (child.nlink == 0) {
        rc = meta_st_orphan_add(st, txn, child.ino);
        if (rc < 0)
            return rc;
    }
    rc = meta_st_inode_put(st, txn, &child);
    if (rc < 0)
        return rc;
    touch_dir(&dir, now);
    rc = meta_st_inode_put(st, txn, &dir);
    if (rc < 0)
        return rc;
    if (out_ino)
        *out_ino = child.ino;
    if (out_last)
        *out_last = child.nlink == 0;
    return 0;
}

int meta_store_rmdir(MDB_txn *txn, uint64_t parent, const char *name,
                     const struct timespec *now, uint64_t *out_ino)
{
    meta_store *st;
    struct meta_inode dir, child;
    struct dent d;
    size_t len;
    bool empty;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_name_check(name, false, &len);
    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now))
        return -EINVAL;
    rc = dir_get(st, txn, parent, &dir);
    if (rc < 0)
        return rc;
    rc = dentry_get(st, txn, parent, name, len, &d);
    if (rc < 0)
        return rc;
    rc = child_get(st, txn, &d, &child);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(child.mode))
        return -ENOTDIR;
    if (child.ino == META_ROOT_INO)
        return -EBUSY;
    rc = dir_is_empty(st, txn, child.ino, &empty);
    if (rc < 0)
        return rc;
    if (!empty)
        return -ENOTEMPTY;
    if (dir.nlink <= 2)
        return -EIO; /* it has a subdirectory, so it counts >= 3 */

    rc = dentry_remove(st, txn, parent, name, len, d.cookie);
    if (rc < 0)
        return rc;
    child.nlink = 0;
    child.ctime = *now;
    rc = meta_st_orphan_add(st, txn, child.ino);
    if (rc < 0)
        return rc;
    rc = meta_st_inode_put(st, txn, &child);
    if (rc < 0)
        return rc;
    dir.nlink--;
    touch_dir(&dir, now);
    rc = meta_st_inode_put(st, txn, &dir);
    if (rc == 0 && out_ino)
        *out_ino = child.ino;
    return rc;
}

/* ---- rename -------------------------------------------------------------------------- */

/* The state of one rename once both names are resolved. */
struct rename_ctx {
    meta_store *st;
    MDB_txn *txn;
    const struct timespec *now;
    const char *oname, *nname;
    size_t olen, nlen;
    struct meta_inode p1, p2buf;
    struct meta_inode *p2; /* &p1 when both parents are the same */
    struct dent sd, td;    /* source and (if exists) target entries */
    struct meta_inode s, t;
    bool exists;
};

static int put_parents(struct rename_ctx *c)
{
    int rc;

    touch_dir(&c->p1, c->now);
    rc = meta_st_inode_put(c->st, c->txn, &c->p1);
    if (rc < 0 || c->p2 == &c->p1)
        return rc;
    touch_dir(c->p2, c->now);
    return meta_st_inode_put(c->st, c->txn, c->p2);
}

static int rename_exchange(struct rename_ctx *c, struct meta_rename_result *out)
{
    bool s_dir = S_ISDIR(c->s.mode), t_dir = S_ISDIR(c->t.mode);
    bool moves = c->p2 != &c->p1, loop;
    struct dent a, b;
    int rc;

    if (moves && s_dir) { /* s goes under p2: p2 must not be inside s */
        rc = is_ancestor(c->st, c->txn, c->s.ino, c->p2->ino, &loop);
        if (rc < 0)
            return rc;
        if (loop)
            return -EINVAL;
    }
    if (moves && t_dir) {
        rc = is_ancestor(c->st, c->txn, c->t.ino, c->p1.ino, &loop);
        if (rc < 0)
            return rc;
        if (loop)
            return -EINVAL;
    }
    if (moves && s_dir != t_dir) {
        struct meta_inode *gain = s_dir ? c->p2 : &c->p1;
        struct meta_inode *lose = s_dir ? &c->p1 : c->p2;
        if (gain->nlink >= META_LINK_MAX)
            return -EMLINK;
        gain->nlink++;
        lose->nlink--;
    }
    if (moves && s_dir)
        c->s.parent = c->p2->ino;
    if (moves && t_dir)
        c->t.parent = c->p1.ino;

    /* Both names keep their cookies; only what they point to swaps. */
    a = (struct dent){c->t.ino, c->sd.cookie, mode_type(c->t.mode)};
    b = (struct dent){c->s.ino, c->td.cookie, mode_type(c->s.mode)};
    rc = dentry_rewrite(c->st, c->txn, c->p1.ino, c->oname, c->olen, &a);
    if (rc == 0)
        rc = dentry_rewrite(c->st, c->txn, c->p2->ino, c->nname, c->nlen, &b);
    c->s.ctime = *c->now;
    c->t.ctime = *c->now;
    if (rc == 0)
        rc = meta_st_inode_put(c->st, c->txn, &c->s);
    if (rc == 0)
        rc = meta_st_inode_put(c->st, c->txn, &c->t);
    if (rc == 0)
        rc = put_parents(c);
    if (rc == 0 && out)
        out->exchanged_ino = c->t.ino;
    return rc;
}

static int rename_replace(struct rename_ctx *c, struct meta_rename_result *out)
{
    bool s_dir = S_ISDIR(c->s.mode), t_dir = c->exists && S_ISDIR(c->t.mode);
    bool moves = c->p2 != &c->p1, last = false;
    int rc;

    if (c->exists) {
        if (s_dir && !t_dir)
            return -ENOTDIR;
        if (!s_dir && t_dir)
            return -EISDIR;
        if (t_dir) {
            bool empty;
            if (c->t.ino == META_ROOT_INO)
                return -EBUSY;
            rc = dir_is_empty(c->st, c->txn, c->t.ino, &empty);
            if (rc < 0)
                return rc;
            if (!empty)
                return -ENOTEMPTY;
        }
    }
    if (moves && s_dir) {
        bool loop;
        rc = is_ancestor(c->st, c->txn, c->s.ino, c->p2->ino, &loop);
        if (rc < 0)
            return rc;
        if (loop)
            return -EINVAL;
        if (!t_dir && c->p2->nlink >= META_LINK_MAX)
            return -EMLINK;
    }

    rc = dentry_remove(c->st, c->txn, c->p1.ino, c->oname, c->olen,
                       c->sd.cookie);
    if (rc < 0)
        return rc;
    if (c->exists) {
        rc = dentry_remove(c->st, c->txn, c->p2->ino, c->nname, c->nlen,
                           c->td.cookie);
        if (rc < 0)
            return rc;
        if (t_dir) {
            c->t.nlink = 0;
            c->p2->nlink--; /* its ".." is gone */
        } else {
            c->t.nlink--;
        }
        last = c->t.nlink == 0;
        c->t.ctime = *c->now;
        if (last) {
            rc = meta_st_orphan_add(c->st, c->txn, c->t.ino);
            if (rc < 0)
                return rc;
        }
        rc = meta_st_inode_put(c->st, c->txn, &c->t);
        if (rc < 0)
            return rc;
    }
    rc = dentry_insert(c->st, c->txn, c->p2, c->nname, c->nlen, c->s.ino,
                       c->s.mode);
    if (rc < 0)
        return rc;
    if (moves && s_dir) {
        c->p1.nlink--;
        c->p2->nlink++;
        c->s.parent = c->p2->ino;
    }
    c->s.ctime = *c->now;
    rc = meta_st_inode_put(c->st, c->txn, &c->s);
    if (rc == 0)
        rc = put_parents(c);
    if (rc == 0 && out && c->exists) {
        out->replaced_ino = c->t.ino;
        out->replaced_last = last;
    }
    return rc;
}

int meta_store_rename(MDB_txn *txn, uint64_t oldparent, const char *oldname,
                      uint64_t newparent, const char *newname, unsigned flags,
                      const struct timespec *now,
                      struct meta_rename_result *out)
{
    struct rename_ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    if (out)
        memset(out, 0, sizeof(*out));
    rc = meta_st_from_txn(txn, &c.st);
    if (rc < 0)
        return rc;
    if ((flags & ~(META_RENAME_NOREPLACE | META_RENAME_EXCHANGE)) ||
        flags == (META_RENAME_NOREPLACE | META_RENAME_EXCHANGE))
        return -EINVAL;
    rc = meta_st_name_check(oldname, false, &c.olen);
    if (rc == 0)
        rc = meta_st_name_check(newname, false, &c.nlen);
    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now))
        return -EINVAL;
    c.txn = txn;
    c.now = now;
    c.oname = oldname;
    c.nname = newname;

    rc = dir_get(c.st, txn, oldparent, &c.p1);
    if (rc < 0)
        return rc;
    if (newparent == oldparent) {
        c.p2 = &c.p1;
    } else {
        rc = dir_get(c.st, txn, newparent, &c.p2buf);
        if (rc < 0)
            return rc;
        c.p2 = &c.p2buf;
    }
    rc = dentry_get(c.st, txn, oldparent, oldname, c.olen, &c.sd);
    if (rc < 0)
        return rc;
    rc = dentry_get(c.st, txn, newparent, newname, c.nlen, &c.td);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    c.exists = rc == 0;
    if ((flags & META_RENAME_NOREPLACE) && c.exists)
        return -EEXIST;
    if ((flags & META_RENAME_EXCHANGE) && !c.exists)
        return -ENOENT;
    if (c.p2->nlink == 0)
        return -ENOENT; /* the new parent was removed */
    rc = child_get(c.st, txn, &c.sd, &c.s);
    if (rc < 0)
        return rc;
    if (out)
        out->moved_ino = c.s.ino;
    if (c.exists && c.td.ino == c.sd.ino)
        return 0; /* the same file (or the same name): POSIX no-op */
    if (c.exists) {
        rc = child_get(c.st, txn, &c.td, &c.t);
        if (rc < 0)
            return rc;
    }
    if (flags & META_RENAME_EXCHANGE)
        return rename_exchange(&c, out);
    return rename_replace(&c, out);
}

/* ---- readdir -------------------------------------------------------------------------- */

int meta_store_readdir(MDB_txn *txn, uint64_t dir, uint64_t cookie,
                       meta_readdir_cb cb, void *ctx)
{
    meta_store *st;
    struct meta_inode in;
    MDB_cursor *cur = NULL;
    uint8_t kb[16];
    MDB_val k, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    char name[META_NAME_MAX + 1];
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!cb)
        return -EINVAL;
    rc = dir_get(st, txn, dir, &in);
    if (rc < 0)
        return rc;
    if (cookie < META_COOKIE_DOT) {
        rc = cb(".", dir, S_IFDIR, META_COOKIE_DOT, ctx);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    if (cookie < META_COOKIE_DOTDOT) {
        rc = cb("..", in.parent, S_IFDIR, META_COOKIE_DOTDOT, ctx);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    if (cookie == UINT64_MAX)
        return 0;
    rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[META_T_DCOOKIE], &cur));
    if (rc < 0)
        return rc;
    dcookie_key(kb, dir, cookie + 1 > META_COOKIE_FIRST ? cookie + 1
                                                        : META_COOKIE_FIRST,
                &k);
    for (;;) {
        const uint8_t *p;
        size_t nlen;

        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op));
        op = MDB_NEXT;
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (k.mv_size != 16 || meta_st_get_be64(k.mv_data) != dir)
            break;
        p = v.mv_data;
        if (v.mv_size <= DCOOKIE_VAL_FIXED ||
            v.mv_size > DCOOKIE_VAL_FIXED + META_NAME_MAX || p[0] == 0) {
            rc = -EIO;
            break;
        }
        if (p[0] > META_REC_VERSION) {
            rc = CKPT_E_VERSION;
            break;
        }
        nlen = v.mv_size - DCOOKIE_VAL_FIXED;
        memcpy(name, p + DCOOKIE_VAL_FIXED, nlen);
        name[nlen] = '\0';
        rc = cb(name, meta_st_get_le64(p + 2), (uint32_t)p[1] << 12,
                meta_st_get_be64((const uint8_t *)k.mv_data + 8), ctx);
        if (rc != 0) {
            rc = rc < 0 ? rc : 0;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

/* ---- extended attributes --------------------------------------------------------- */

/* Key ino + name; name length in 1..255 or -ERANGE (as setxattr(2)). */
static int xattr_key(uint8_t kb[8 + META_XATTR_NAME_MAX], uint64_t ino,
                     const char *name, MDB_val *out)
{
    size_t len;

    if (!name)
        return -ERANGE;
    len = strnlen(name, META_XATTR_NAME_MAX + 1);
    if (len == 0 || len > META_XATTR_NAME_MAX)
        return -ERANGE;
    meta_st_put_be64(kb, ino);
    memcpy(kb + 8, name, len);
    out->mv_size = 8 + len;
    out->mv_data = kb;
    return 0;
}

/* Validate a META_LAYOUT_XATTR value. */
static int layout_xattr_check(const struct meta_inode *in, const void *value,
                              size_t len, const char **out_why)
{
    char spec[META_LAYOUT_SPEC_MAX + 1];
    struct ckpt_layout l;

    if (!S_ISDIR(in->mode)) {
        *out_why = "a default layout can only be set on a directory";
        return -EINVAL;
    }
    /* Tools may send the terminating NUL along: drop trailing ones. */
    while (len > 0 && ((const char *)value)[len - 1] == '\0')
        len--;
    if (len > META_LAYOUT_SPEC_MAX) {
        *out_why = "layout spec longer than 255 bytes";
        return -EINVAL;
    }
    if (len > 0 && memchr(value, '\0', len)) {
        *out_why = "layout spec contains a NUL byte";
        return -EINVAL;
    }
    if (len > 0)
        memcpy(spec, value, len);
    spec[len] = '\0';
    ckpt_layout_default(&l);
    return ckpt_layout_parse(spec, &l, out_why);
}

int meta_store_xattr_set(MDB_txn *txn, uint64_t ino, const char *name,
                         const void *value, size_t len, int flags,
                         const struct timespec *now, const char **out_why)
{
    meta_store *st;
    struct meta_inode in;
    uint8_t kb[8 + META_XATTR_NAME_MAX];
    MDB_val k, v;
    const char *why = NULL;
    int rc = meta_st_from_txn(txn, &st);

    if (out_why)
        *out_why = NULL;
    if (rc < 0)
        return rc;
    rc = xattr_key(kb, ino, name, &k);
    if (rc < 0)
        return rc;
    if (len > META_XATTR_SIZE_MAX)
        return -E2BIG;
    if ((len > 0 && !value) || !meta_st_ts_valid(now) ||
        (flags & ~(META_XATTR_CREATE | META_XATTR_REPLACE)) != 0 ||
        flags == (META_XATTR_CREATE | META_XATTR_REPLACE))
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (strcmp(name, META_LAYOUT_XATTR) == 0) {
        rc = layout_xattr_check(&in, value, len, &why);
        if (rc < 0) {
            if (out_why)
                *out_why = why;
            return rc;
        }
    }
    rc = meta_st_get(txn, st->dbi[META_T_XATTR], &k, &v);
    if (rc == 0 && (flags & META_XATTR_CREATE))
        return -EEXIST;
    if (rc == -ENOENT && (flags & META_XATTR_REPLACE))
        return -ENODATA;
    if (rc < 0 && rc != -ENOENT)
        return rc;

    /* MDB_RESERVE: LMDB makes room and we fill it, no 64 KiB bounce buffer. */
    v.mv_size = len + 1;
    v.mv_data = NULL;
    rc = meta_st_put(txn, st->dbi[META_T_XATTR], &k, &v, MDB_RESERVE);
    if (rc < 0)
        return rc;
    ((uint8_t *)v.mv_data)[0] = META_REC_VERSION;
    if (len > 0)
        memcpy((uint8_t *)v.mv_data + 1, value, len);
    in.ctime = *now;
    return meta_st_inode_put(st, txn, &in);
}

int meta_store_xattr_get(MDB_txn *txn, uint64_t ino, const char *name,
                         void *dst, size_t dst_cap, size_t *out_len)
{
    meta_store *st;
    struct meta_inode in;
    uint8_t kb[8 + META_XATTR_NAME_MAX];
    MDB_val k, v;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = xattr_key(kb, ino, name, &k);
    if (rc < 0)
        return rc;
    if (!out_len || (dst_cap > 0 && !dst))
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    rc = meta_st_get(txn, st->dbi[META_T_XATTR], &k, &v);
    if (rc == -ENOENT)
        return -ENODATA;
    if (rc < 0)
        return rc;
    rc = meta_st_rec_version_check(&v);
    if (rc < 0)
        return rc;
    *out_len = v.mv_size - 1;
    if (dst_cap == 0)
        return 0;
    if (dst_cap < v.mv_size - 1)
        return -ERANGE;
    memcpy(dst, (const uint8_t *)v.mv_data + 1, v.mv_size - 1);
    return 0;
}

int meta_store_xattr_list(MDB_txn *txn, uint64_t ino, char *dst,
                          size_t dst_cap, size_t *out_len)
{
    meta_store *st;
    struct meta_inode in;
    MDB_cursor *cur = NULL;
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    size_t total = 0;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!out_len || (dst_cap > 0 && !dst))
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[META_T_XATTR], &cur));
    if (rc < 0)
        return rc;
    meta_st_put_be64(kb, ino);
    for (;;) {
        size_t nlen;
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op));
        op = MDB_NEXT;
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (k.mv_size <= 8 || meta_st_get_be64(k.mv_data) != ino)
            break;
        nlen = k.mv_size - 8;
        if (dst_cap > 0) {
            if (total + nlen + 1 > dst_cap) {
                rc = -ERANGE;
                break;
            }
            memcpy(dst + total, (const uint8_t *)k.mv_data + 8, nlen);
            dst[total + nlen] = '\0';
        }
        total += nlen + 1;
    }
    mdb_cursor_close(cur);
    if (rc == 0)
        *out_len = total;
    return rc;
}

int meta_store_xattr_remove(MDB_txn *txn, uint64_t ino, const char *name,
                            const struct timespec *now)
{
    meta_store *st;
    struct meta_inode in;
    uint8_t kb[8 + META_XATTR_NAME_MAX];
    MDB_val k, v;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = xattr_key(kb, ino, name, &k);
    if (rc < 0)
        return rc;
    if (!meta_st_ts_valid(now))
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    rc = meta_st_get(txn, st->dbi[META_T_XATTR], &k, &v);
    if (rc == -ENOENT)
        return -ENODATA;
    if (rc < 0)
        return rc;
    rc = meta_st_del(txn, st->dbi[META_T_XATTR], &k);
    if (rc < 0)
        return rc;
    in.ctime = *now;
    return meta_st_inode_put(st, txn, &in);
}

int meta_store_dir_layout(MDB_txn *txn, uint64_t dir, struct ckpt_layout *inout)
{
    meta_store *st;
    struct meta_inode in;
    uint8_t kb[8 + META_XATTR_NAME_MAX];
    MDB_val k, v;
    uint64_t cur = dir;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!inout)
        return -EINVAL;
    for (unsigned depth = 0; depth < META_DIR_DEPTH_MAX; depth++) {
        rc = meta_st_inode_get(st, txn, cur, &in);
        if (rc < 0)
            return depth == 0 ? rc : (rc == -ENOENT ? -EIO : rc);
        if (!S_ISDIR(in.mode))
            return depth == 0 ? -ENOTDIR : -EIO;
        rc = xattr_key(kb, cur, META_LAYOUT_XATTR, &k);
        if (rc < 0)
            return rc;
        rc = meta_st_get(txn, st->dbi[META_T_XATTR], &k, &v);
        if (rc == 0) {
            char spec[META_LAYOUT_SPEC_MAX + 1];
            struct ckpt_layout l = *inout;
            const char *why = NULL;
            size_t len;

            rc = meta_st_rec_version_check(&v);
            if (rc < 0)
                return rc;
            len = v.mv_size - 1;
            while (len > 0 && ((const char *)v.mv_data)[len] == '\0')
                len--;
            if (len > META_LAYOUT_SPEC_MAX)
                return -EIO;
            memcpy(spec, (const char *)v.mv_data + 1, len);
            spec[len] = '\0';
            rc = ckpt_layout_parse(spec, &l, &why);
            if (rc < 0) {
                CKPT_LOG_DEBUG("layout of dir %llu (\"%s\") on this base: %s",
                               (unsigned long long)cur, spec, why);
                return rc;
            }
            *inout = l;
            return 0;
        }
        if (rc != -ENOENT)
            return rc;
        if (cur == META_ROOT_INO || in.nlink == 0)
            return -ENODATA;
        cur = in.parent;
    }
    return -EIO; /* a parent loop: corruption */
}

/* ---- destroy --------------------------------------------------------------------------- */

int meta_store_destroy(MDB_txn *txn, uint64_t ino)
{
    meta_store *st;
    struct meta_inode in;
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb};
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (ino == META_ROOT_INO || in.nlink > 0)
        return -EBUSY;
    if (in.has_layout) {
        uint32_t tids[CKPT_LAYOUT_MAX_WIDTH];
        unsigned n = meta_st_layout_targets(&in.layout, tids);

        for (unsigned i = 0; i < n; i++) {
            struct meta_delq_entry e = {tids[i], ino, in.data_gen, 0};
            rc = meta_st_tindex_del(st, txn, tids[i], ino);
            if (rc == 0)
                rc = meta_store_delq_add(txn, &e);
            if (rc < 0)
                return rc;
        }
    }
    meta_st_put_be64(kb, ino);
    rc = meta_st_del_prefix(st, txn, META_T_XATTR, kb, sizeof(kb));
    if (rc < 0)
        return rc;
    if (S_ISLNK(in.mode)) {
        rc = meta_st_del(txn, st->dbi[META_T_SYMLINK], &k);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    rc = meta_st_orphan_del(st, txn, ino);
    if (rc < 0)
        return rc;
    return meta_st_del(txn, st->dbi[META_T_INODE], &k);
}

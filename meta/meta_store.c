/*
 * meta_store.c - see meta_store.h.  The namespace operations (and xattrs)
 * live in meta_ns.c; this file holds the environment, the record codecs and
 * the tables that are not directory structure: superblock, layouts and the
 * target index, the deletion queue, orphans, statfs, fsck and digest.
 *
 * DESIGN
 *
 *   Threads.  None of its own.  Any thread may run read-only operations in
 *   its own read transaction; write operations run in the caller's write
 *   transaction (ckpt-meta's single writer thread, one nested child per
 *   request).  The store struct is written only by meta_store_open() and is
 *   read-only afterwards, so it needs no lock; LMDB serialises writers and
 *   gives readers snapshots.
 *
 *   Tables (named DBs "ns.<name>", keys big-endian so that LMDB's memcmp
 *   order is numeric order; values little-endian, field by field, each
 *   starting with a record version byte, META_REC_VERSION = 1):
 *
 *     ns.super    "sb" -> ver u8, root_created u8, 0 u16, format u32,
 *                 next_ino u64, next_gen u64, uuid[16], name_len u8, name
 *     ns.inode    ino -> ver u8, has_layout u8, 0 u16, flags u32, mode u32,
 *                 uid u32, gid u32, nlink u32, size u64, rdev u64,
 *                 {a,m,c}time (sec i64, nsec u32), generation u64,
 *                 parent u64, data_gen u64, next_cookie u64
 *                 [+ layout: k u8, m u8, width u16, chunk u32, flags u32,
 *                 targets u32 x width]                      (108 + 12 + 4W)
 *     ns.dentry   parent + name -> ver u8, type u8, child u64, cookie u64
 *     ns.dcookie  parent + cookie -> ver u8, type u8, child u64, name
 *     ns.xattr    ino + name -> ver u8, value
 *     ns.symlink  ino -> ver u8, target
 *     ns.tindex   tid u32 + ino -> ver u8
 *     ns.delq     tid u32 + ino + data_gen -> ver u8, from_stripe u64
 *     ns.orphan   ino -> ver u8
 *
 *   `type` in directory entries is the S_IFMT nibble (mode >> 12).  A reader
 *   meeting a record version above META_REC_VERSION returns CKPT_E_VERSION;
 *   a record that is too short or inconsistent returns -EIO.  A later
 *   format adds fields after the current ones and bumps the version.
 *
 *   Invariants (meta_store_fsck checks all of them): every dentry has one
 *   dcookie entry with the same child, type and name, and vice versa; a
 *   directory has exactly one name (none when removed or the root), nlink
 *   = 2 + its subdirectories, and parent = the directory holding its name;
 *   other inodes have nlink = their number of names; nlink == 0 <=> the
 *   inode is on the orphan list; tindex holds exactly (t, ino) for each
 *   distinct target t of each stored layout; cookies < the directory's
 *   next_cookie and inode numbers < the superblock's next_ino.
 *
 *   Writes go through meta_st_put()/meta_st_del(), which consult the
 *   CKPT_FAULT_WRITE injection site so tests can fail the Nth write of any
 *   operation and check that aborting its child transaction leaves the
 *   parent untouched.
 */
#include "meta_store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_store_int.h"

#define META_MAX_DBS 32
#define META_INODE_FIXED 108u
#define META_LAYOUT_FIXED 12u
#define META_INODE_REC_MAX                                                    \
    (META_INODE_FIXED + META_LAYOUT_FIXED + 4u * CKPT_LAYOUT_MAX_WIDTH)
#define META_SB_FIXED 41u

static const char *const table_names[META_T_COUNT] = {
    [META_T_SUPER] = "ns.super",     [META_T_INODE] = "ns.inode",
    [META_T_DENTRY] = "ns.dentry",   [META_T_DCOOKIE] = "ns.dcookie",
    [META_T_XATTR] = "ns.xattr",     [META_T_SYMLINK] = "ns.symlink",
    [META_T_TINDEX] = "ns.tindex",   [META_T_DELQ] = "ns.delq",
    [META_T_ORPHAN] = "ns.orphan",
};

static const uint8_t sb_key[2] = {'s', 'b'};

/* ---- errors and small wrappers --------------------------------------------- */

int meta_store_errno(int mdb_rc)
{
    switch (mdb_rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return -ENOENT;
    case MDB_KEYEXIST: return -EEXIST;
    case MDB_MAP_FULL: return -ENOSPC;
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL: return -ENOBUFS;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
    case MDB_TLS_FULL: return -EAGAIN;
    case MDB_DBS_FULL: return -EMFILE;
    case MDB_PAGE_NOTFOUND:
    case MDB_CORRUPTED:
    case MDB_PANIC: return -EIO;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE: return CKPT_E_VERSION;
    case MDB_BAD_RSLOT:
    case MDB_BAD_TXN:
    case MDB_BAD_VALSIZE:
    case MDB_BAD_DBI: return -EINVAL;
    default: break;
    }
    if (mdb_rc > 0)
        return -mdb_rc;
    return -EIO;
}

int meta_st_from_txn(MDB_txn *txn, meta_store **out)
{
    MDB_env *env;
    meta_store *st;

    if (!txn)
        return -EINVAL;
    env = mdb_txn_env(txn);
    if (!env)
        return -EINVAL;
    st = mdb_env_get_userctx(env);
    if (!st || st->magic != META_STORE_MAGIC)
        return -EINVAL;
    *out = st;
    return 0;
}

int meta_st_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val,
                unsigned flags)
{
    if (ckpt_fault_hit(CKPT_FAULT_WRITE))
        return -EIO;
    return meta_store_errno(mdb_put(txn, dbi, key, val, flags));
}

int meta_st_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key)
{
    if (ckpt_fault_hit(CKPT_FAULT_WRITE))
        return -EIO;
    return meta_store_errno(mdb_del(txn, dbi, key, NULL));
}

int meta_st_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    return meta_store_errno(mdb_get(txn, dbi, key, val));
}

bool meta_st_ts_valid(const struct timespec *ts)
{
    return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

int meta_st_name_check(const char *name, bool allow_dots, size_t *out_len)
{
    size_t len;

    if (!name)
        return -EINVAL;
    len = strnlen(name, META_NAME_MAX + 1);
    if (len == 0)
        return -EINVAL;
    if (len > META_NAME_MAX)
        return -ENAMETOOLONG;
    if (memchr(name, '/', len))
        return -EINVAL;
    if (!allow_dots && name[0] == '.' &&
        (len == 1 || (len == 2 && name[1] == '.')))
        return -EINVAL;
    *out_len = len;
    return 0;
}

/* ---- record codecs ----------------------------------------------------------- */

int meta_st_rec_version_check(const MDB_val *v)
{
    const uint8_t *p = v->mv_data;

    if (v->mv_size < 1 || p[0] == 0)
        return -EIO;
    if (p[0] > META_REC_VERSION)
        return CKPT_E_VERSION;
    return 0;
}

static uint8_t *put_ts(uint8_t *p, const struct timespec *ts)
{
    meta_st_put_le64(p, (uint64_t)(int64_t)ts->tv_sec);
    meta_st_put_le32(p + 8, (uint32_t)ts->tv_nsec);
    return p + 12;
}

static const uint8_t *get_ts(const uint8_t *p, struct timespec *ts)
{
    ts->tv_sec = (time_t)(int64_t)meta_st_get_le64(p);
    ts->tv_nsec = (long)meta_st_get_le32(p + 8);
    return p + 12;
}

static size_t inode_encode(const struct meta_inode *in,
                           uint8_t buf[META_INODE_REC_MAX])
{
    uint8_t *p = buf;

    *p++ = META_REC_VERSION;
    *p++ = in->has_layout ? 1 : 0;
    meta_st_put_le16(p, 0);
    p += 2;
    meta_st_put_le32(p, in->flags);
    meta_st_put_le32(p + 4, in->mode);
    meta_st_put_le32(p + 8, in->uid);
    meta_st_put_le32(p + 12, in->gid);
    meta_st_put_le32(p + 16, in->nlink);
    p += 20;
    meta_st_put_le64(p, in->size);
    meta_st_put_le64(p + 8, in->rdev);
    p += 16;
    p = put_ts(p, &in->atime);
    p = put_ts(p, &in->mtime);
    p = put_ts(p, &in->ctime);
    meta_st_put_le64(p, in->generation);
    meta_st_put_le64(p + 8, in->parent);
    meta_st_put_le64(p + 16, in->data_gen);
    meta_st_put_le64(p + 24, in->next_cookie);
    p += 32;
    if (in->has_layout) {
        const struct ckpt_layout *l = &in->layout;
        *p++ = l->k;
        *p++ = l->m;
        meta_st_put_le16(p, l->width);
        meta_st_put_le32(p + 2, l->chunk_size);
        meta_st_put_le32(p + 6, l->flags);
        p += 10;
        for (unsigned i = 0; i < l->width && i < CKPT_LAYOUT_MAX_WIDTH; i++) {
            meta_st_put_le32(p, l->targets[i]);
            p += 4;
        }
    }
    return (size_t)(p - buf);
}

static int inode_decode(uint64_t ino, const MDB_val *v, struct meta_inode *out)
{
    const uint8_t *p = v->mv_data;
    int rc = meta_st_rec_version_check(v);

    if (rc < 0)
        return rc;
    if (v->mv_size < META_INODE_FIXED || p[1] > 1)
        return -EIO;
    memset(out, 0, sizeof(*out));
    out->ino = ino;
    out->has_layout = p[1] == 1;
    p += 4;
    out->flags = meta_st_get_le32(p);
    out->mode = meta_st_get_le32(p + 4);
    out->uid = meta_st_get_le32(p + 8);
    out->gid = meta_st_get_le32(p + 12);
    out->nlink = meta_st_get_le32(p + 16);
    p += 20;
    out->size = meta_st_get_le64(p);
    out->rdev = meta_st_get_le64(p + 8);
    p += 16;
    p = get_ts(p, &out->atime);
    p = get_ts(p, &out->mtime);
    p = get_ts(p, &out->ctime);
    out->generation = meta_st_get_le64(p);
    out->parent = meta_st_get_le64(p + 8);
    out->data_gen = meta_st_get_le64(p + 16);
    out->next_cookie = meta_st_get_le64(p + 24);
    p += 32;
    if (!out->has_layout)
        return v->mv_size == META_INODE_FIXED ? 0 : -EIO;
    if (v->mv_size < META_INODE_FIXED + META_LAYOUT_FIXED)
        return -EIO;
    out->layout.k = p[0];
    out->layout.m = p[1];
    out->layout.width = meta_st_get_le16(p + 2);
    out->layout.chunk_size = meta_st_get_le32(p + 4);
    out->layout.flags = meta_st_get_le32(p + 8);
    p += META_LAYOUT_FIXED;
    if (out->layout.width > CKPT_LAYOUT_MAX_WIDTH ||
        v->mv_size != META_INODE_FIXED + META_LAYOUT_FIXED +
                          4u * out->layout.width)
        return -EIO;
    for (unsigned i = 0; i < out->layout.width; i++)
        out->layout.targets[i] = meta_st_get_le32(p + 4 * i);
    return 0;
}

int meta_st_inode_get(meta_store *st, MDB_txn *txn, uint64_t ino,
                      struct meta_inode *out)
{
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    int rc;

    if (ino == 0)
        return -ENOENT;
    meta_st_put_be64(kb, ino);
    rc = meta_st_get(txn, st->dbi[META_T_INODE], &k, &v);
    if (rc < 0)
        return rc;
    return inode_decode(ino, &v, out);
}

int meta_st_inode_put(meta_store *st, MDB_txn *txn, const struct meta_inode *in)
{
    uint8_t kb[8], vb[META_INODE_REC_MAX];
    MDB_val k = {sizeof(kb), kb}, v;

    meta_st_put_be64(kb, in->ino);
    v.mv_data = vb;
    v.mv_size = inode_encode(in, vb);
    return meta_st_put(txn, st->dbi[META_T_INODE], &k, &v, 0);
}

void meta_st_inode_to_attr(const struct meta_inode *in, struct meta_attr *out)
{
    memset(out, 0, sizeof(*out));
    out->ino = in->ino;
    out->mode = in->mode;
    out->uid = in->uid;
    out->gid = in->gid;
    out->nlink = in->nlink;
    out->size = in->size;
    out->rdev = in->rdev;
    out->atime = in->atime;
    out->mtime = in->mtime;
    out->ctime = in->ctime;
    out->generation = in->generation;
    out->flags = in->flags;
    out->data_gen = in->data_gen;
    out->parent = S_ISDIR(in->mode) ? in->parent : 0;
    out->has_layout = in->has_layout;
}

/* ---- superblock --------------------------------------------------------------- */

int meta_st_sb_get(meta_store *st, MDB_txn *txn, struct meta_sb *out)
{
    MDB_val k = {sizeof(sb_key), (void *)sb_key}, v;
    const uint8_t *p;
    int rc = meta_st_get(txn, st->dbi[META_T_SUPER], &k, &v);

    if (rc < 0)
        return rc;
    rc = meta_st_rec_version_check(&v);
    if (rc < 0)
        return rc;
    p = v.mv_data;
    if (v.mv_size < META_SB_FIXED || p[1] > 1)
        return -EIO;
    memset(out, 0, sizeof(*out));
    out->root_created = p[1] == 1;
    out->format_version = meta_st_get_le32(p + 4);
    out->next_ino = meta_st_get_le64(p + 8);
    out->next_gen = meta_st_get_le64(p + 16);
    memcpy(out->uuid, p + 24, 16);
    if (p[40] > META_CLUSTER_NAME_MAX || v.mv_size != META_SB_FIXED + p[40])
        return -EIO;
    memcpy(out->name, p + META_SB_FIXED, p[40]);
    out->name[p[40]] = '\0';
    return 0;
}

int meta_st_sb_put(meta_store *st, MDB_txn *txn, const struct meta_sb *sb)
{
    uint8_t vb[META_SB_FIXED + META_CLUSTER_NAME_MAX];
    MDB_val k = {sizeof(sb_key), (void *)sb_key}, v;
    size_t nlen = strnlen(sb->name, META_CLUSTER_NAME_MAX);

    vb[0] = META_REC_VERSION;
    vb[1] = sb->root_created ? 1 : 0;
    meta_st_put_le16(vb + 2, 0);
    meta_st_put_le32(vb + 4, sb->format_version);
    meta_st_put_le64(vb + 8, sb->next_ino);
    meta_st_put_le64(vb + 16, sb->next_gen);
    memcpy(vb + 24, sb->uuid, 16);
    vb[40] = (uint8_t)nlen;
    memcpy(vb + META_SB_FIXED, sb->name, nlen);
    v.mv_data = vb;
    v.mv_size = META_SB_FIXED + nlen;
    return meta_st_put(txn, st->dbi[META_T_SUPER], &k, &v, 0);
}

int meta_st_alloc_ino(meta_store *st, MDB_txn *txn, uint64_t *out_ino,
                      uint64_t *out_gen)
{
    struct meta_sb sb;
    int rc = meta_st_sb_get(st, txn, &sb);

    if (rc == -ENOENT)
        return -EIO;
    if (rc < 0)
        return rc;
    if (sb.next_ino == UINT64_MAX)
        return -ENOSPC;
    *out_ino = sb.next_ino++;
    *out_gen = sb.next_gen++;
    return meta_st_sb_put(st, txn, &sb);
}

int meta_store_info(MDB_txn *txn, struct meta_store_info *out)
{
    meta_store *st;
    struct meta_sb sb;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_sb_get(st, txn, &sb);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;
    memset(out, 0, sizeof(*out));
    out->format_version = sb.format_version;
    memcpy(out->cluster_uuid, sb.uuid, 16);
    memcpy(out->cluster_name, sb.name, sizeof(out->cluster_name));
    out->next_ino = sb.next_ino;
    out->next_generation = sb.next_gen;
    out->root_created = sb.root_created;
    return 0;
}

/* ---- environment ------------------------------------------------------------- */

/* First open: superblock and root directory.  Reopen: check them. */
static int store_init_tables(meta_store *st, MDB_txn *txn,
                             const struct meta_store_opts *opts)
{
    struct meta_sb sb;
    struct meta_inode root;
    int rc = meta_st_sb_get(st, txn, &sb);

    if (rc == 0) {
        /* No log line: the caller reports the code where it handles it. */
        if (sb.format_version > META_STORE_FORMAT_VERSION)
            return CKPT_E_VERSION;
        if (opts && opts->cluster_uuid &&
            memcmp(opts->cluster_uuid, sb.uuid, 16) != 0)
            return CKPT_E_CLUSTER;
        if (sb.root_created)
            return 0;
    } else if (rc == -ENOENT) {
        const char *name = opts && opts->cluster_name ? opts->cluster_name : "";
        memset(&sb, 0, sizeof(sb));
        if (strlen(name) > META_CLUSTER_NAME_MAX)
            return -EINVAL;
        strcpy(sb.name, name);
        sb.format_version = META_STORE_FORMAT_VERSION;
        sb.next_ino = META_ROOT_INO + 1;
        sb.next_gen = 2;
        if (opts && opts->cluster_uuid) {
            memcpy(sb.uuid, opts->cluster_uuid, 16);
        } else if (getrandom(sb.uuid, sizeof(sb.uuid), 0) !=
                   (ssize_t)sizeof(sb.uuid)) {
            return -errno;
        }
    } else {
        return rc;
    }

    memset(&root, 0, sizeof(root));
    root.ino = META_ROOT_INO;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    if (opts && meta_st_ts_valid(&opts->now)) {
        root.atime = root.mtime = root.ctime = opts->now;
    }
    root.generation = 1;
    root.parent = META_ROOT_INO;
    root.data_gen = 1;
    root.next_cookie = META_COOKIE_FIRST;
    rc = meta_st_inode_put(st, txn, &root);
    if (rc < 0)
        return rc;
    sb.root_created = true;
    return meta_st_sb_put(st, txn, &sb);
}

int meta_store_open(const char *dir, const struct meta_store_opts *opts,
                    meta_store **out)
{
    meta_store *st = NULL;
    MDB_txn *txn = NULL;
    uint64_t map = META_STORE_DEFAULT_MAP_SIZE;
    unsigned readers = META_STORE_DEFAULT_READERS;
    int rc, dead = 0;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!dir || !*dir)
        return -EINVAL;
    if (opts && opts->map_size_bytes)
        map = opts->map_size_bytes;
    if (opts && opts->max_readers)
        readers = opts->max_readers;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;

    st = ckpt_calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->magic = META_STORE_MAGIC;
    rc = meta_store_errno(mdb_env_create(&st->env));
    if (rc < 0)
        goto out_free;
    rc = meta_store_errno(mdb_env_set_maxdbs(st->env, META_MAX_DBS));
    if (rc == 0)
        rc = meta_store_errno(mdb_env_set_mapsize(st->env, (size_t)map));
    if (rc == 0)
        rc = meta_store_errno(mdb_env_set_maxreaders(st->env, readers));
    if (rc == 0)
        rc = meta_store_errno(mdb_env_open(st->env, dir, MDB_NOTLS, 0600));
    if (rc == 0)
        rc = meta_store_errno(mdb_env_set_userctx(st->env, st));
    if (rc < 0)
        goto out_env;
    rc = meta_store_errno(mdb_reader_check(st->env, &dead));
    if (rc < 0)
        goto out_env;
    if (dead > 0)
        CKPT_LOG_INFO("%s: cleared %d stale reader slot(s)", dir, dead);

    rc = meta_store_errno(mdb_txn_begin(st->env, NULL, 0, &txn));
    if (rc < 0)
        goto out_env;
    for (int t = 0; t < META_T_COUNT; t++) {
        rc = meta_store_errno(
            mdb_dbi_open(txn, table_names[t], MDB_CREATE, &st->dbi[t]));
        if (rc < 0)
            goto out_txn;
    }
    rc = store_init_tables(st, txn, opts);
    if (rc < 0)
        goto out_txn;
    rc = meta_store_errno(mdb_txn_commit(txn));
    txn = NULL;
    if (rc < 0)
        goto out_env;
    *out = st;
    return 0;

out_txn:
    mdb_txn_abort(txn);
out_env:
    mdb_env_close(st->env);
out_free:
    ckpt_free(st);
    return rc;
}

void meta_store_close(meta_store *st)
{
    if (!st)
        return;
    mdb_env_close(st->env);
    st->magic = 0;
    ckpt_free(st);
}

MDB_env *meta_store_env(meta_store *st)
{
    return st ? st->env : NULL;
}

int meta_store_dbi_open(meta_store *st, const char *name, unsigned flags,
                        MDB_dbi *out)
{
    MDB_txn *txn = NULL;
    int rc;

    if (!st || !name || !out || strncmp(name, "ns.", 3) == 0)
        return -EINVAL;
    rc = meta_store_errno(mdb_txn_begin(st->env, NULL, 0, &txn));
    if (rc < 0)
        return rc;
    rc = meta_store_errno(mdb_dbi_open(txn, name, flags | MDB_CREATE, out));
    if (rc < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return meta_store_errno(mdb_txn_commit(txn));
}

int meta_store_txn_begin(meta_store *st, MDB_txn *parent, bool rdonly,
                         MDB_txn **out)
{
    if (!st || !out || (rdonly && parent))
        return -EINVAL;
    *out = NULL;
    return meta_store_errno(
        mdb_txn_begin(st->env, parent, rdonly ? MDB_RDONLY : 0, out));
}

int meta_store_txn_commit(MDB_txn *txn)
{
    if (!txn)
        return -EINVAL;
    return meta_store_errno(mdb_txn_commit(txn));
}

void meta_store_txn_abort(MDB_txn *txn)
{
    if (txn)
        mdb_txn_abort(txn);
}

void meta_store_txn_reset(MDB_txn *txn)
{
    if (txn)
        mdb_txn_reset(txn);
}

int meta_store_txn_renew(MDB_txn *txn)
{
    if (!txn)
        return -EINVAL;
    return meta_store_errno(mdb_txn_renew(txn));
}

/* ---- generic table helpers ------------------------------------------------------ */

int meta_st_del_prefix(meta_store *st, MDB_txn *txn, enum meta_st_table t,
                       const uint8_t *prefix, size_t prefix_len)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[t], &cur));

    if (rc < 0)
        return rc;
    for (;;) {
        /* Re-seek after every delete: simple, and O(log n) each. */
        k.mv_size = prefix_len;
        k.mv_data = (void *)prefix;
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len))
            break;
        if (ckpt_fault_hit(CKPT_FAULT_WRITE)) {
            rc = -EIO;
            break;
        }
        rc = meta_store_errno(mdb_cursor_del(cur, 0));
        if (rc < 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc;
}

/* A one-byte value: the record version. */
static MDB_val ver_val(void)
{
    static const uint8_t ver = META_REC_VERSION;
    MDB_val v = {1, (void *)&ver};
    return v;
}

int meta_st_orphan_add(meta_store *st, MDB_txn *txn, uint64_t ino)
{
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v = ver_val();

    meta_st_put_be64(kb, ino);
    return meta_st_put(txn, st->dbi[META_T_ORPHAN], &k, &v, 0);
}

int meta_st_orphan_del(meta_store *st, MDB_txn *txn, uint64_t ino)
{
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb};
    int rc;

    meta_st_put_be64(kb, ino);
    rc = meta_st_del(txn, st->dbi[META_T_ORPHAN], &k);
    return rc == -ENOENT ? 0 : rc;
}

int meta_store_orphan_iter(MDB_txn *txn, uint64_t start_ino, meta_ino_cb cb,
                           void *ctx)
{
    meta_store *st;
    MDB_cursor *cur = NULL;
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!cb)
        return -EINVAL;
    rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[META_T_ORPHAN], &cur));
    if (rc < 0)
        return rc;
    meta_st_put_be64(kb, start_ino);
    for (;;) {
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op));
        op = MDB_NEXT;
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (k.mv_size != 8) {
            rc = -EIO;
            break;
        }
        rc = cb(meta_st_get_be64(k.mv_data), ctx);
        if (rc != 0) {
            rc = rc < 0 ? rc : 0;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

/* ---- layouts and the target index ------------------------------------------------- */

int meta_st_layout_valid(const struct ckpt_layout *l, const char **out_why)
{
    if (!l) {
        if (out_why)
            *out_why = "no layout";
        return -EINVAL;
    }
    return ckpt_layout_check(l, out_why);
}

void meta_st_layout_copy(struct ckpt_layout *dst, const struct ckpt_layout *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->k = src->k;
    dst->m = src->m;
    dst->width = src->width ? src->width : (uint16_t)(src->k + src->m);
    dst->chunk_size = src->chunk_size;
    dst->flags = src->flags;
    if (dst->width > CKPT_LAYOUT_MAX_WIDTH) /* ckpt_layout_check refused */
        dst->width = CKPT_LAYOUT_MAX_WIDTH;
    memcpy(dst->targets, src->targets, sizeof(uint32_t) * dst->width);
}

unsigned meta_st_layout_targets(const struct ckpt_layout *l,
                                uint32_t out[CKPT_LAYOUT_MAX_WIDTH])
{
    unsigned n = 0, w = l->width ? l->width : (unsigned)l->k + l->m;

    if (w > CKPT_LAYOUT_MAX_WIDTH)
        w = CKPT_LAYOUT_MAX_WIDTH;
    for (unsigned i = 0; i < w; i++) {
        bool seen = false;
        for (unsigned j = 0; j < n && !seen; j++)
            seen = out[j] == l->targets[i];
        if (!seen)
            out[n++] = l->targets[i];
    }
    return n;
}

static void tindex_key(uint8_t kb[12], uint32_t tid, uint64_t ino)
{
    meta_st_put_be32(kb, tid);
    meta_st_put_be64(kb + 4, ino);
}

int meta_st_tindex_put(meta_store *st, MDB_txn *txn, uint32_t tid,
                       uint64_t ino)
{
    uint8_t kb[12];
    MDB_val k = {sizeof(kb), kb}, v = ver_val();

    tindex_key(kb, tid, ino);
    return meta_st_put(txn, st->dbi[META_T_TINDEX], &k, &v, 0);
}

int meta_st_tindex_del(meta_store *st, MDB_txn *txn, uint32_t tid,
                       uint64_t ino)
{
    uint8_t kb[12];
    MDB_val k = {sizeof(kb), kb};

    tindex_key(kb, tid, ino);
    return meta_st_del(txn, st->dbi[META_T_TINDEX], &k);
}

int meta_store_layout_get(MDB_txn *txn, uint64_t ino, struct ckpt_layout *out)
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
    if (!S_ISREG(in.mode))
        return -EINVAL;
    if (!in.has_layout)
        return -ENODATA;
    *out = in.layout;
    return 0;
}

int meta_store_layout_set(MDB_txn *txn, uint64_t ino,
                          const struct ckpt_layout *l)
{
    meta_store *st;
    struct meta_inode in;
    uint32_t tids[CKPT_LAYOUT_MAX_WIDTH];
    unsigned n;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_layout_valid(l, NULL);
    if (rc < 0)
        return rc;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (!S_ISREG(in.mode))
        return -EINVAL;
    if (in.has_layout)
        return -EEXIST;
    in.has_layout = true;
    meta_st_layout_copy(&in.layout, l);
    rc = meta_st_inode_put(st, txn, &in);
    if (rc < 0)
        return rc;
    n = meta_st_layout_targets(&in.layout, tids);
    for (unsigned i = 0; i < n; i++) {
        rc = meta_st_tindex_put(st, txn, tids[i], ino);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int meta_store_layout_replace_target(MDB_txn *txn, uint64_t ino,
                                     uint32_t old_tid, uint32_t new_tid)
{
    meta_store *st;
    struct meta_inode in;
    bool found = false;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (old_tid == new_tid)
        return -EINVAL;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (!S_ISREG(in.mode) || !in.has_layout)
        return -ENODATA;
    for (unsigned i = 0; i < in.layout.width; i++) {
        if (in.layout.targets[i] == new_tid)
            return -EEXIST;
        found |= in.layout.targets[i] == old_tid;
    }
    if (!found)
        return -ENXIO;
    for (unsigned i = 0; i < in.layout.width; i++)
        if (in.layout.targets[i] == old_tid)
            in.layout.targets[i] = new_tid;
    rc = meta_st_inode_put(st, txn, &in);
    if (rc == 0)
        rc = meta_st_tindex_del(st, txn, old_tid, ino);
    if (rc == 0)
        rc = meta_st_tindex_put(st, txn, new_tid, ino);
    return rc;
}

int meta_store_tindex_iter(MDB_txn *txn, uint32_t tid, uint64_t start_ino,
                           meta_ino_cb cb, void *ctx)
{
    meta_store *st;
    MDB_cursor *cur = NULL;
    uint8_t kb[12];
    MDB_val k = {sizeof(kb), kb}, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!cb)
        return -EINVAL;
    rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[META_T_TINDEX], &cur));
    if (rc < 0)
        return rc;
    tindex_key(kb, tid, start_ino);
    for (;;) {
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op));
        op = MDB_NEXT;
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (k.mv_size != 12) {
            rc = -EIO;
            break;
        }
        if (meta_st_get_be32(k.mv_data) != tid)
            break;
        rc = cb(meta_st_get_be64((const uint8_t *)k.mv_data + 4), ctx);
        if (rc != 0) {
            rc = rc < 0 ? rc : 0;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

/* ---- deletion queue --------------------------------------------------------------- */

static void delq_key(uint8_t kb[20], const struct meta_delq_entry *e)
{
    meta_st_put_be32(kb, e->tid);
    meta_st_put_be64(kb + 4, e->ino);
    meta_st_put_be64(kb + 12, e->data_gen);
}

static int delq_from(const MDB_val *v, uint64_t *out)
{
    int rc = meta_st_rec_version_check(v);

    if (rc < 0)
        return rc;
    if (v->mv_size != 9)
        return -EIO;
    *out = meta_st_get_le64((const uint8_t *)v->mv_data + 1);
    return 0;
}

static int delq_add_st(meta_store *st, MDB_txn *txn,
                       const struct meta_delq_entry *e)
{
    uint8_t kb[20], vb[9];
    MDB_val k = {sizeof(kb), kb}, v;
    uint64_t from;
    int rc;

    delq_key(kb, e);
    rc = meta_st_get(txn, st->dbi[META_T_DELQ], &k, &v);
    if (rc == 0) {
        rc = delq_from(&v, &from);
        if (rc < 0)
            return rc;
        if (from <= e->from_stripe)
            return 0; /* already covers it */
    } else if (rc != -ENOENT) {
        return rc;
    }
    vb[0] = META_REC_VERSION;
    meta_st_put_le64(vb + 1, e->from_stripe);
    v.mv_size = sizeof(vb);
    v.mv_data = vb;
    return meta_st_put(txn, st->dbi[META_T_DELQ], &k, &v, 0);
}

int meta_store_delq_add(MDB_txn *txn, const struct meta_delq_entry *e)
{
    meta_store *st;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!e)
        return -EINVAL;
    return delq_add_st(st, txn, e);
}

/* Shared with destroy (meta_ns.c) through meta_store_delq_add_file. */
int meta_store_delq_add_file(MDB_txn *txn, uint64_t ino, uint64_t data_gen,
                             uint64_t from_stripe)
{
    meta_store *st;
    struct meta_inode in;
    uint32_t tids[CKPT_LAYOUT_MAX_WIDTH];
    unsigned n;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    rc = meta_st_inode_get(st, txn, ino, &in);
    if (rc < 0)
        return rc;
    if (!in.has_layout)
        return 0;
    n = meta_st_layout_targets(&in.layout, tids);
    for (unsigned i = 0; i < n; i++) {
        struct meta_delq_entry e = {tids[i], ino, data_gen, from_stripe};
        rc = delq_add_st(st, txn, &e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int meta_store_delq_iter(MDB_txn *txn, uint32_t tid, uint64_t start_ino,
                         meta_delq_cb cb, void *ctx)
{
    meta_store *st;
    MDB_cursor *cur = NULL;
    uint8_t kb[20];
    MDB_val k = {sizeof(kb), kb}, v;
    MDB_cursor_op op = MDB_SET_RANGE;
    struct meta_delq_entry e = {tid, start_ino, 0, 0};
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!cb)
        return -EINVAL;
    rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[META_T_DELQ], &cur));
    if (rc < 0)
        return rc;
    delq_key(kb, &e);
    for (;;) {
        const uint8_t *kp;
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op));
        op = MDB_NEXT;
        if (rc == -ENOENT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (k.mv_size != 20) {
            rc = -EIO;
            break;
        }
        kp = k.mv_data;
        if (meta_st_get_be32(kp) != tid)
            break;
        e.ino = meta_st_get_be64(kp + 4);
        e.data_gen = meta_st_get_be64(kp + 12);
        rc = delq_from(&v, &e.from_stripe);
        if (rc < 0)
            break;
        rc = cb(&e, ctx);
        if (rc != 0) {
            rc = rc < 0 ? rc : 0;
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

int meta_store_delq_remove(MDB_txn *txn, const struct meta_delq_entry *e)
{
    meta_store *st;
    uint8_t kb[20];
    MDB_val k = {sizeof(kb), kb}, v;
    uint64_t from;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!e)
        return -EINVAL;
    delq_key(kb, e);
    rc = meta_st_get(txn, st->dbi[META_T_DELQ], &k, &v);
    if (rc < 0)
        return rc;
    rc = delq_from(&v, &from);
    if (rc < 0)
        return rc;
    if (from < e->from_stripe)
        return CKPT_E_STALE;
    return meta_st_del(txn, st->dbi[META_T_DELQ], &k);
}

/* ---- statfs, digest ---------------------------------------------------------------- */

static int table_entries(meta_store *st, MDB_txn *txn, enum meta_st_table t,
                         uint64_t *out)
{
    MDB_stat ms;
    int rc = meta_store_errno(mdb_stat(txn, st->dbi[t], &ms));

    if (rc == 0)
        *out = ms.ms_entries;
    return rc;
}

int meta_store_statfs(MDB_txn *txn, struct meta_statfs *out)
{
    meta_store *st;
    MDB_envinfo info;
    MDB_stat es;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = table_entries(st, txn, META_T_INODE, &out->inodes);
    if (rc == 0)
        rc = table_entries(st, txn, META_T_ORPHAN, &out->orphans);
    if (rc == 0)
        rc = table_entries(st, txn, META_T_DENTRY, &out->dentries);
    if (rc == 0)
        rc = table_entries(st, txn, META_T_DELQ, &out->delq);
    if (rc == 0)
        rc = meta_store_errno(mdb_env_info(st->env, &info));
    if (rc == 0)
        rc = meta_store_errno(mdb_env_stat(st->env, &es));
    if (rc < 0)
        return rc;
    out->map_bytes = info.me_mapsize;
    out->used_bytes = ((uint64_t)info.me_last_pgno + 1) * es.ms_psize;
    return 0;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int meta_store_digest(MDB_txn *txn, uint64_t *out)
{
    meta_store *st;
    uint64_t h = 0xcbf29ce484222325ull;
    int rc = meta_st_from_txn(txn, &st);

    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    for (int t = 0; t < META_T_COUNT && rc == 0; t++) {
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        MDB_cursor_op op = MDB_FIRST;
        uint8_t hdr[8];

        rc = meta_store_errno(mdb_cursor_open(txn, st->dbi[t], &cur));
        if (rc < 0)
            break;
        h = fnv1a(h, table_names[t], strlen(table_names[t]));
        while ((rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op))) == 0) {
            op = MDB_NEXT;
            meta_st_put_le32(hdr, (uint32_t)k.mv_size);
            meta_st_put_le32(hdr + 4, (uint32_t)v.mv_size);
            h = fnv1a(h, hdr, sizeof(hdr));
            h = fnv1a(h, k.mv_data, k.mv_size);
            h = fnv1a(h, v.mv_data, v.mv_size);
        }
        if (rc == -ENOENT)
            rc = 0;
        mdb_cursor_close(cur);
    }
    if (rc == 0)
        *out = h;
    return rc;
}

/* ---- fsck ---------------------------------------------------------------------------- */

struct fsck_ino {
    uint64_t ino;
    uint64_t parent;
    uint64_t next_cookie;
    uint64_t size;
    uint32_t mode;
    uint32_t nlink;
    uint32_t names;   /* dentries naming it */
    uint32_t subdirs; /* directories: child directories */
    uint32_t ntargets;
    bool has_symlink;
};

struct fsck_ctx {
    meta_store *st;
    MDB_txn *txn;
    struct meta_fsck_report *rep;
    struct fsck_ino *inos; /* sorted by ino (the inode table's order) */
    size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void
fsck_problem(struct fsck_ctx *c, const char *fmt, ...)
{
    if (c->rep->problems++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->rep->first, sizeof(c->rep->first), fmt, ap);
        va_end(ap);
    }
}

static struct fsck_ino *fsck_find(struct fsck_ctx *c, uint64_t ino)
{
    size_t lo = 0, hi = c->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->inos[mid].ino == ino)
            return &c->inos[mid];
        if (c->inos[mid].ino < ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Pass 1: load every inode; check tindex and orphan entries per inode. */
static int fsck_inodes(struct fsck_ctx *c, uint64_t next_ino)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_cursor_op op = MDB_FIRST;
    int rc = meta_store_errno(
        mdb_cursor_open(c->txn, c->st->dbi[META_T_INODE], &cur));

    if (rc < 0)
        return rc;
    while ((rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op))) == 0) {
        struct meta_inode in;
        struct fsck_ino *fi;
        uint64_t ino;
        uint32_t tids[CKPT_LAYOUT_MAX_WIDTH];
        uint8_t kb[12];
        MDB_val k2 = {0, kb}, v2;

        op = MDB_NEXT;
        if (k.mv_size != 8) {
            fsck_problem(c, "inode key of %zu bytes", k.mv_size);
            continue;
        }
        ino = meta_st_get_be64(k.mv_data);
        if (inode_decode(ino, &v, &in) < 0) {
            fsck_problem(c, "inode %llu does not decode",
                         (unsigned long long)ino);
            continue;
        }
        if (ino >= next_ino)
            fsck_problem(c, "inode %llu >= next_ino %llu",
                         (unsigned long long)ino,
                         (unsigned long long)next_ino);
        if (c->n == c->cap) {
            size_t ncap = c->cap ? c->cap * 2 : 1024;
            struct fsck_ino *p = ckpt_realloc(c->inos, ncap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            c->inos = p;
            c->cap = ncap;
        }
        fi = &c->inos[c->n++];
        memset(fi, 0, sizeof(*fi));
        fi->ino = ino;
        fi->parent = in.parent;
        fi->next_cookie = in.next_cookie;
        fi->size = in.size;
        fi->mode = in.mode;
        fi->nlink = in.nlink;
        if (in.has_layout && !S_ISREG(in.mode))
            fsck_problem(c, "inode %llu: layout on a non-regular file",
                         (unsigned long long)ino);
        if (in.has_layout) {
            fi->ntargets = meta_st_layout_targets(&in.layout, tids);
            for (unsigned i = 0; i < fi->ntargets; i++) {
                tindex_key(kb, tids[i], ino);
                k2.mv_size = 12;
                if (meta_st_get(c->txn, c->st->dbi[META_T_TINDEX], &k2, &v2))
                    fsck_problem(c, "inode %llu: no tindex entry for target "
                                 "%u", (unsigned long long)ino, tids[i]);
            }
        }
        meta_st_put_be64(kb, ino);
        k2.mv_size = 8;
        rc = meta_st_get(c->txn, c->st->dbi[META_T_ORPHAN], &k2, &v2);
        if (rc < 0 && rc != -ENOENT)
            break;
        if ((rc == 0) != (in.nlink == 0))
            fsck_problem(c, "inode %llu: nlink %u but %son the orphan list",
                         (unsigned long long)ino, in.nlink,
                         rc == 0 ? "" : "not ");
        rc = 0;
    }
    if (rc == -ENOENT)
        rc = 0;
    mdb_cursor_close(cur);
    return rc;
}

/* Pass 2: every dentry against inodes and the cookie index. */
static int fsck_dentries(struct fsck_ctx *c)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_cursor_op op = MDB_FIRST;
    int rc = meta_store_errno(
        mdb_cursor_open(c->txn, c->st->dbi[META_T_DENTRY], &cur));

    if (rc < 0)
        return rc;
    while ((rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op))) == 0) {
        const uint8_t *kp = k.mv_data, *vp = v.mv_data;
        uint64_t parent, child, cookie;
        struct fsck_ino *pi, *ci;
        uint8_t type, ckb[16];
        MDB_val ck = {sizeof(ckb), ckb}, cv;
        size_t nlen;

        op = MDB_NEXT;
        c->rep->dentries++;
        if (k.mv_size <= 8 || k.mv_size > 8 + META_NAME_MAX ||
            meta_st_rec_version_check(&v) < 0 || v.mv_size != 18) {
            fsck_problem(c, "malformed dentry record");
            continue;
        }
        parent = meta_st_get_be64(kp);
        nlen = k.mv_size - 8;
        type = vp[1];
        child = meta_st_get_le64(vp + 2);
        cookie = meta_st_get_le64(vp + 10);
        pi = fsck_find(c, parent);
        ci = fsck_find(c, child);
        if (!pi || !S_ISDIR(pi->mode)) {
            fsck_problem(c, "dentry %llu/%.*s: parent is not a directory",
                         (unsigned long long)parent, (int)nlen, kp + 8);
            continue;
        }
        if (!ci) {
            fsck_problem(c, "dentry %llu/%.*s: inode %llu missing",
                         (unsigned long long)parent, (int)nlen, kp + 8,
                         (unsigned long long)child);
            continue;
        }
        ci->names++;
        if ((uint32_t)type << 12 != (ci->mode & S_IFMT))
            fsck_problem(c, "dentry %llu/%.*s: type differs from inode",
                         (unsigned long long)parent, (int)nlen, kp + 8);
        if (S_ISDIR(ci->mode)) {
            pi->subdirs++;
            if (ci->parent != parent)
                fsck_problem(c, "dir %llu: parent %llu but named in %llu",
                             (unsigned long long)child,
                             (unsigned long long)ci->parent,
                             (unsigned long long)parent);
        }
        if (cookie < META_COOKIE_FIRST || cookie >= pi->next_cookie)
            fsck_problem(c, "dentry %llu/%.*s: cookie %llu out of range",
                         (unsigned long long)parent, (int)nlen, kp + 8,
                         (unsigned long long)cookie);
        meta_st_put_be64(ckb, parent);
        meta_st_put_be64(ckb + 8, cookie);
        rc = meta_st_get(c->txn, c->st->dbi[META_T_DCOOKIE], &ck, &cv);
        if (rc == -ENOENT) {
            rc = 0;
            fsck_problem(c, "dentry %llu/%.*s: no cookie entry",
                         (unsigned long long)parent, (int)nlen, kp + 8);
            continue;
        }
        if (rc < 0)
            break;
        if (cv.mv_size < 10 || cv.mv_size - 10 != nlen ||
            ((const uint8_t *)cv.mv_data)[1] != type ||
            meta_st_get_le64((const uint8_t *)cv.mv_data + 2) != child ||
            memcmp((const uint8_t *)cv.mv_data + 10, kp + 8, nlen) != 0) {
            fsck_problem(c, "dentry %llu/%.*s: cookie entry differs",
                         (unsigned long long)parent, (int)nlen, kp + 8);
        }
    }
    if (rc == -ENOENT)
        rc = 0;
    mdb_cursor_close(cur);
    return rc;
}

/* Pass 3: keys of ino-prefixed tables must name live inodes. */
static int fsck_owned(struct fsck_ctx *c, enum meta_st_table t, size_t min_key)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_cursor_op op = MDB_FIRST;
    int rc = meta_store_errno(mdb_cursor_open(c->txn, c->st->dbi[t], &cur));

    if (rc < 0)
        return rc;
    while ((rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, op))) == 0) {
        struct fsck_ino *fi;
        uint64_t ino;

        op = MDB_NEXT;
        if (k.mv_size < min_key || meta_st_rec_version_check(&v) < 0) {
            fsck_problem(c, "malformed record in %s", table_names[t]);
            continue;
        }
        ino = t == META_T_TINDEX ? meta_st_get_be64((uint8_t *)k.mv_data + 4)
                                 : meta_st_get_be64(k.mv_data);
        fi = fsck_find(c, ino);
        if (!fi) {
            fsck_problem(c, "%s entry for missing inode %llu",
                         table_names[t], (unsigned long long)ino);
            continue;
        }
        if (t == META_T_SYMLINK) {
            fi->has_symlink = true;
            if (!S_ISLNK(fi->mode) || fi->size != v.mv_size - 1)
                fsck_problem(c, "symlink target of %llu does not fit its "
                             "inode", (unsigned long long)ino);
        }
    }
    if (rc == -ENOENT)
        rc = 0;
    mdb_cursor_close(cur);
    return rc;
}

int meta_store_fsck(MDB_txn *txn, struct meta_fsck_report *out)
{
    struct fsck_ctx c;
    struct meta_sb sb;
    uint64_t n_cookie = 0, n_tindex = 0, n_orphan = 0, want_tindex = 0,
             want_orphan = 0;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = meta_st_from_txn(txn, &c.st);
    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    c.txn = txn;
    c.rep = out;
    rc = meta_st_sb_get(c.st, txn, &sb);
    if (rc < 0)
        return rc == -ENOENT ? -EIO : rc;

    rc = fsck_inodes(&c, sb.next_ino);
    if (rc == 0)
        rc = fsck_dentries(&c);
    if (rc == 0)
        rc = fsck_owned(&c, META_T_XATTR, 9);
    if (rc == 0)
        rc = fsck_owned(&c, META_T_SYMLINK, 8);
    if (rc == 0)
        rc = fsck_owned(&c, META_T_TINDEX, 12);
    if (rc == 0)
        rc = table_entries(c.st, txn, META_T_DCOOKIE, &n_cookie);
    if (rc == 0)
        rc = table_entries(c.st, txn, META_T_TINDEX, &n_tindex);
    if (rc == 0)
        rc = table_entries(c.st, txn, META_T_ORPHAN, &n_orphan);
    if (rc < 0)
        goto out;
    out->inodes = c.n;

    if (!sb.root_created || !fsck_find(&c, META_ROOT_INO) ||
        !S_ISDIR(fsck_find(&c, META_ROOT_INO)->mode))
        fsck_problem(&c, "no root directory");
    for (size_t i = 0; i < c.n; i++) {
        struct fsck_ino *fi = &c.inos[i];
        unsigned long long ino = (unsigned long long)fi->ino;

        want_tindex += fi->ntargets;
        want_orphan += fi->nlink == 0;
        if (S_ISDIR(fi->mode)) {
            uint32_t want_names = fi->ino == META_ROOT_INO || fi->nlink == 0
                                      ? 0 : 1;
            if (fi->names != want_names)
                fsck_problem(&c, "dir %llu has %u names", ino, fi->names);
            if (fi->nlink != 0 && fi->nlink != 2 + fi->subdirs)
                fsck_problem(&c, "dir %llu: nlink %u, %u subdirectories",
                             ino, fi->nlink, fi->subdirs);
            if (fi->nlink == 0 && fi->subdirs != 0)
                fsck_problem(&c, "removed dir %llu has entries", ino);
            if (fi->ino == META_ROOT_INO && fi->parent != META_ROOT_INO)
                fsck_problem(&c, "root's parent is %llu",
                             (unsigned long long)fi->parent);
        } else if (fi->nlink != fi->names) {
            fsck_problem(&c, "inode %llu: nlink %u but %u names", ino,
                         fi->nlink, fi->names);
        }
        if (S_ISLNK(fi->mode) && !fi->has_symlink)
            fsck_problem(&c, "symlink %llu has no target", ino);
    }
    if (n_cookie != out->dentries)
        fsck_problem(&c, "%llu cookie entries for %llu dentries",
                     (unsigned long long)n_cookie,
                     (unsigned long long)out->dentries);
    if (n_tindex != want_tindex)
        fsck_problem(&c, "%llu tindex entries, layouts need %llu",
                     (unsigned long long)n_tindex,
                     (unsigned long long)want_tindex);
    if (n_orphan != want_orphan)
        fsck_problem(&c, "%llu orphan entries, %llu inodes with nlink 0",
                     (unsigned long long)n_orphan,
                     (unsigned long long)want_orphan);
out:
    ckpt_free(c.inos);
    return rc;
}

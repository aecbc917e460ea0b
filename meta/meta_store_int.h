/*
 * meta_store_int.h - internals shared by meta_store.c and meta_ns.c only.
 *
 * meta_store.c: environment, transactions, record codecs, superblock,
 * layouts, tindex, delq, orphans, statfs, fsck, digest.
 * meta_ns.c: the namespace operations (lookup .. rename, readdir, xattrs,
 * directory default layouts, destroy).
 * Internal functions carry the meta_st_ prefix.
 */
#ifndef META_STORE_INT_H
#define META_STORE_INT_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "layout.h"
#include "meta_store.h"

#define META_STORE_MAGIC 0x6d657461u /* "meta" */
#define META_REC_VERSION 1u           /* version byte of every record */
#define META_DIR_DEPTH_MAX 100000u    /* parent walks: corruption guard */

/* The namespace tables ("ns." + name in the environment). */
enum meta_st_table {
    META_T_SUPER,   /* "sb" -> superblock */
    META_T_INODE,   /* ino be64 -> inode record */
    META_T_DENTRY,  /* parent be64 + name -> ver, type, child ino, cookie */
    META_T_DCOOKIE, /* parent be64 + cookie be64 -> ver, type, child, name */
    META_T_XATTR,   /* ino be64 + name -> ver, value */
    META_T_SYMLINK, /* ino be64 -> ver, target */
    META_T_TINDEX,  /* tid be32 + ino be64 -> ver */
    META_T_DELQ,    /* tid be32 + ino be64 + data_gen be64 -> ver, from le64 */
    META_T_ORPHAN,  /* ino be64 -> ver */
    META_T_COUNT,
};

struct meta_store {
    uint32_t magic; /* META_STORE_MAGIC: checks the env's user context */
    MDB_env *env;
    MDB_dbi dbi[META_T_COUNT]; /* opened once at open; read-only after */
};

/* The decoded inode record. */
struct meta_inode {
    uint64_t ino;
    uint32_t flags;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;
    uint64_t size;
    uint64_t rdev;
    struct timespec atime, mtime, ctime;
    uint64_t generation;
    uint64_t parent;      /* directories only */
    uint64_t data_gen;
    uint64_t next_cookie; /* directories only */
    bool has_layout;
    struct ckpt_layout layout; /* when has_layout */
};

/* The decoded superblock. */
struct meta_sb {
    uint32_t format_version;
    bool root_created;
    uint64_t next_ino;
    uint64_t next_gen;
    uint8_t uuid[16];
    char name[META_CLUSTER_NAME_MAX + 1];
};

/* ---- byte order ---- */
static inline void meta_st_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void meta_st_put_be64(uint8_t *p, uint64_t v)
{
    meta_st_put_be32(p, (uint32_t)(v >> 32));
    meta_st_put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t meta_st_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}
static inline uint64_t meta_st_get_be64(const uint8_t *p)
{
    return (uint64_t)meta_st_get_be32(p) << 32 | meta_st_get_be32(p + 4);
}
static inline void meta_st_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void meta_st_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void meta_st_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t meta_st_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t meta_st_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static inline uint64_t meta_st_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- shared helpers (meta_store.c) ---- */

/* The store of txn's environment, or -EINVAL if txn is not one of ours. */
int meta_st_from_txn(MDB_txn *txn, meta_store **out);

/* mdb_put/mdb_del wrappers: map errors, and fail with -EIO where the
 * CKPT_FAULT_WRITE injection site says so (tests walk every write). */
int meta_st_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val,
                unsigned flags);
int meta_st_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key);
/* mdb_get: 0, -ENOENT, or another error. */
int meta_st_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val);

/* 0 if v starts with a known record version; -EIO for an empty or
 * version-0 record, CKPT_E_VERSION for a newer one. */
int meta_st_rec_version_check(const MDB_val *v);

/* Inode records: get returns -ENOENT for a missing one, -EIO/CKPT_E_VERSION
 * for one that does not decode. */
int meta_st_inode_get(meta_store *st, MDB_txn *txn, uint64_t ino,
                      struct meta_inode *out);
int meta_st_inode_put(meta_store *st, MDB_txn *txn, const struct meta_inode *in);
void meta_st_inode_to_attr(const struct meta_inode *in, struct meta_attr *out);

/* Superblock: read, write; allocate an inode number and a generation. */
int meta_st_sb_get(meta_store *st, MDB_txn *txn, struct meta_sb *out);
int meta_st_sb_put(meta_store *st, MDB_txn *txn, const struct meta_sb *sb);
int meta_st_alloc_ino(meta_store *st, MDB_txn *txn, uint64_t *out_ino,
                      uint64_t *out_gen);

/* Layout helpers. */
int meta_st_layout_valid(const struct ckpt_layout *l, const char **out_why);
/* Copy a validated layout in stored form: width 0 becomes k+m, targets
 * past width are zeroed (so equal layouts encode equally). */
void meta_st_layout_copy(struct ckpt_layout *dst, const struct ckpt_layout *src);
/* The distinct targets of l (first `width`), in slot order; returns count. */
unsigned meta_st_layout_targets(const struct ckpt_layout *l,
                                uint32_t out[CKPT_LAYOUT_MAX_WIDTH]);
int meta_st_tindex_put(meta_store *st, MDB_txn *txn, uint32_t tid,
                       uint64_t ino);
int meta_st_tindex_del(meta_store *st, MDB_txn *txn, uint32_t tid,
                       uint64_t ino);

/* Orphan list. */
int meta_st_orphan_add(meta_store *st, MDB_txn *txn, uint64_t ino);
int meta_st_orphan_del(meta_store *st, MDB_txn *txn, uint64_t ino);

/* Delete every key of table t that starts with the prefix. */
int meta_st_del_prefix(meta_store *st, MDB_txn *txn, enum meta_st_table t,
                       const uint8_t *prefix, size_t prefix_len);

/* Name checks: 0, -EINVAL ("", "/" inside, and "."/".." when !allow_dots),
 * -ENAMETOOLONG.  *out_len gets strlen(name). */
int meta_st_name_check(const char *name, bool allow_dots, size_t *out_len);

/* Timespec helpers. */
bool meta_st_ts_valid(const struct timespec *ts);

#endif

/*
 * meta_store.h - the durable namespace store of ckpt-meta, on LMDB.
 *
 * This module owns the namespace tables of the metadata server's LMDB
 * environment: inodes (with the layouts of regular files), directory
 * entries, a per-directory cookie index for resumable readdir, symlink
 * targets, extended attributes, the target -> file index used by rebuild,
 * the chunk deletion queue, and the orphan list.  It does no networking and
 * starts no threads: ckpt-meta's request code calls it.
 *
 * Transactions.  Every operation takes an MDB_txn * that the caller began
 * with meta_store_txn_begin() and never begins, commits or aborts it.  Reads
 * (lookup, getattr, readdir, ...) work in read-only transactions, which run
 * concurrently with each other and with the writer.  Writes are meant to be
 * group-committed by one writer thread:
 *
 *     meta_store_txn_begin(st, NULL, false, &batch);
 *     for each queued request:
 *         meta_store_txn_begin(st, batch, false, &op);    nested child
 *         rc = meta_store_mknod(op, ...);
 *         rc == 0 ? meta_store_txn_commit(op) : meta_store_txn_abort(op);
 *     rc = meta_store_txn_commit(batch);                  one fsync
 *     reply to every request (with rc if the batch commit failed)
 *
 * A failed operation may have written part of its changes into the
 * transaction it was given (only when LMDB itself fails: ENOSPC, EIO,
 * ENOMEM; errno-class rejections such as EEXIST are detected before any
 * write), so run each operation in its own child transaction and abort the
 * child when the operation fails: the parent is then exactly as before.
 * The environment keeps LMDB's default durability (fsync at every top-level
 * commit; no MDB_NOSYNC, no MDB_WRITEMAP, which nested transactions forbid).
 *
 * Every operation finds the store through the transaction (the store is the
 * environment's user context), so operations take a txn and no store
 * handle.  Functions on the same transaction must not run concurrently; a
 * read-only transaction may be used by one thread at a time (the
 * environment is opened with MDB_NOTLS, so read transactions are not tied to
 * the thread that began them).
 *
 * Semantics.  The store implements POSIX namespace rules and reports them
 * as negative errno values; it does no permission checking (ckpt-meta
 * checks access with the caller's credentials against the attributes first)
 * and applies values as given (clearing set-id bits on chown or write is the
 * server's policy).  It does set the group and S_ISGID of new entries in an
 * S_ISGID directory, as Linux filesystems do.  Names are NUL-terminated byte
 * strings of 1..META_NAME_MAX bytes without '/'; "." and ".." are resolved
 * by meta_store_lookup() and rejected with -EINVAL by every operation that
 * creates or removes a name (the kernel never sends them to a FUSE
 * filesystem).  Inode numbers are never reused; each inode also carries a
 * generation from a counter.  Times come from the caller (`now`), so tests
 * and replicas control them.
 *
 * Errors.  0 or a negative errno; LMDB failures are mapped by
 * meta_store_errno() (MDB_MAP_FULL -> -ENOSPC, MDB_TXN_FULL -> -ENOBUFS,
 * corruption -> -EIO, format mismatch -> CKPT_E_VERSION).  A record this
 * build cannot decode gives -EIO (or CKPT_E_VERSION for a newer record
 * version).
 *
 * Orphans.  When the last name of an inode goes away (unlink, rmdir, rename
 * over it) its record stays, with nlink 0, on the orphan list, because a
 * client may still have it open.  The caller destroys it with
 * meta_store_destroy() at once or at last close; after a restart it walks
 * meta_store_orphan_iter() and destroys what nobody holds any more.
 */
#ifndef META_STORE_H
#define META_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "layout.h"

typedef struct meta_store meta_store;

#define META_ROOT_INO 1u              /* the root directory */
#define META_NAME_MAX 255u            /* bytes in one name */
#define META_SYMLINK_MAX 4095u        /* bytes in a symlink target */
#define META_XATTR_NAME_MAX 255u      /* bytes in an xattr name */
#define META_XATTR_SIZE_MAX 65536u    /* bytes in an xattr value */
#define META_LINK_MAX 65000u          /* largest nlink (EMLINK beyond) */
#define META_CLUSTER_NAME_MAX 63u     /* bytes in the cluster name */
#define META_STORE_FORMAT_VERSION 1u  /* on-disk format of this build */
#define META_STORE_DEFAULT_MAP_SIZE (64ull << 30)
#define META_STORE_DEFAULT_READERS 512u

/* Directory default layout: a spec string for ckpt_layout_parse(). */
#define META_LAYOUT_XATTR "user.ckptfs.layout"
#define META_LAYOUT_SPEC_MAX 255u

/* readdir cookies: 0 starts a listing, 1 and 2 are "." and "..", entries
 * get 3, 4, ... from a per-directory counter and keep theirs for life. */
#define META_COOKIE_START 0u
#define META_COOKIE_DOT 1u
#define META_COOKIE_DOTDOT 2u
#define META_COOKIE_FIRST 3u

/* Inode flags (struct meta_attr.flags). */
#define META_INODE_F_INCOMPLETE 0x1u /* writer died before its flush ended */
#define META_INODE_F_ALL 0x1u

/* rename flags: the values of RENAME_NOREPLACE / RENAME_EXCHANGE of
 * <stdio.h> and <linux/fs.h>, so the kernel's flags pass straight through. */
#define META_RENAME_NOREPLACE 0x1u
#define META_RENAME_EXCHANGE 0x2u

/* meta_store_xattr_set flags: XATTR_CREATE / XATTR_REPLACE of <sys/xattr.h>. */
#define META_XATTR_CREATE 0x1
#define META_XATTR_REPLACE 0x2

/** Inode attributes as the store keeps them (a transparent value type). */
struct meta_attr {
    uint64_t ino;
    uint32_t mode;   /* S_IFMT type bits | 07777 permission bits */
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;  /* 0: orphan (no name left, not destroyed yet) */
    uint64_t size;   /* bytes; a symlink's target length */
    uint64_t rdev;   /* device number of S_IFCHR/S_IFBLK, else 0 */
    struct timespec atime;
    struct timespec mtime;
    struct timespec ctime;
    uint64_t generation; /* from a store-wide counter, never repeats */
    uint32_t flags;      /* META_INODE_F_* */
    uint64_t data_gen;   /* bumped when the size changes and by
                            meta_store_data_gen_bump(); starts at 1 */
    uint64_t parent;     /* directories: containing directory (root: 1);
                            other types: 0 */
    bool has_layout;     /* regular files: a layout is set */
};

/** Options for meta_store_open(); zero-initialise and set what you need. */
struct meta_store_opts {
    uint64_t map_size_bytes;      /* LMDB map size; 0 = default (64 GiB,
                                     sparse).  MDB_MAP_FULL -> -ENOSPC */
    unsigned max_readers;         /* concurrent read txns; 0 = 512 */
    const uint8_t *cluster_uuid;  /* 16 bytes.  On creation: stored (NULL:
                                     random).  On reopen: if non-NULL must
                                     match, else CKPT_E_CLUSTER */
    const char *cluster_name;     /* stored on creation (NULL: ""), at most
                                     META_CLUSTER_NAME_MAX bytes */
    struct timespec now;          /* root directory times on creation */
};

/** The superblock (meta_store_info). */
struct meta_store_info {
    uint32_t format_version;
    uint8_t cluster_uuid[16];
    char cluster_name[META_CLUSTER_NAME_MAX + 1];
    uint64_t next_ino;        /* the next inode number to be allocated */
    uint64_t next_generation; /* the next inode generation */
    bool root_created;
};

/* ---- environment and transactions ---------------------------------------- */

/**
 * @brief Open (creating if needed) the store in directory dir.
 *
 * Creates dir (mode 0700) when missing, opens the LMDB environment
 * (data.mdb + lock.mdb) with MDB_NOTLS and default durability, clears reader
 * slots left by dead processes, opens the namespace tables and, on first
 * open, writes the superblock and the root directory (inode 1, S_IFDIR|0755,
 * uid/gid 0, nlink 2) in one committed transaction.
 * @param[in] dir   environment directory; must stay on a local filesystem
 * @param[in] opts  may be NULL for all defaults
 * @param[out] out  the store; close with meta_store_close()
 * @return 0, or negative errno: -ENOMEM, -EIO, -EACCES...; CKPT_E_VERSION
 *         for a store written by a newer format; CKPT_E_CLUSTER when
 *         opts->cluster_uuid does not match the stored one; -EINVAL for a
 *         cluster name too long.  On error *out is NULL and nothing is open.
 * Not thread-safe with respect to other calls on the same directory in this
 * process (LMDB allows one environment per file per process).
 */
int meta_store_open(const char *dir, const struct meta_store_opts *opts,
                    meta_store **out);

/**
 * @brief Close the store.  Every transaction on it must have ended.
 * @param[in] st  NULL is a no-op
 */
void meta_store_close(meta_store *st);

/**
 * @return the LMDB environment, for other ckpt-meta modules that keep their
 * own tables (cluster map, checkpoints) in the same environment so that one
 * transaction covers both.  Do not change the environment's user context:
 * it points to st.  Borrowed; valid until meta_store_close().
 */
MDB_env *meta_store_env(meta_store *st);

/**
 * @brief Open (creating) a named table for another ckpt-meta module.
 *
 * Runs and commits its own write transaction, so call it at start-up from
 * the thread that will not hold a write transaction at that moment.  Names
 * starting with "ns." belong to this module and are refused.  The
 * environment has room for 32 tables; this module uses 9.
 * @param[in] name   table name
 * @param[in] flags  mdb_dbi_open flags (MDB_CREATE is added)
 * @param[out] out   handle, valid for every later transaction
 * @return 0, -EINVAL for an "ns." name, -EMFILE when no table slot is left,
 *         or another negative errno from LMDB.
 */
int meta_store_dbi_open(meta_store *st, const char *name, unsigned flags,
                        MDB_dbi *out);

/**
 * @brief Begin a transaction.
 * @param[in] parent  NULL for a top-level transaction; else a write
 *                    transaction of st, which must not be used until the
 *                    child ends (LMDB allows one child at a time)
 * @param[in] rdonly  true for a read-only transaction (parent must be NULL)
 * @param[out] out    the transaction
 * @return 0, -EINVAL (read-only child), -EAGAIN (reader table full), or
 *         another negative errno.  A top-level write transaction waits until
 *         the environment's previous writer has ended: only the writer
 *         thread should begin them.
 */
int meta_store_txn_begin(meta_store *st, MDB_txn *parent, bool rdonly,
                         MDB_txn **out);

/**
 * @brief Commit txn (durable when top-level).  txn is freed either way.
 *
 * Never commit a child whose operation failed: abort it.  LMDB marks the
 * parent of a child that is committed in an error state as broken.
 * @return 0, or negative errno (-ENOSPC map full, -EIO, -ENOMEM).  On
 *         failure nothing of txn was applied.  A failed child commit may
 *         have broken its parent (LMDB then fails the parent's commit with
 *         -EINVAL): the writer aborts the batch and fails or retries every
 *         request in it.
 */
int meta_store_txn_commit(MDB_txn *txn);

/** @brief Abort txn and free it.  NULL is a no-op. */
void meta_store_txn_abort(MDB_txn *txn);

/**
 * @brief Release a read-only transaction's snapshot but keep the handle
 * (cheap re-use by a network thread).  Renew before the next use.
 */
void meta_store_txn_reset(MDB_txn *txn);

/** @brief Renew a reset read-only transaction.  @return 0 or negative errno. */
int meta_store_txn_renew(MDB_txn *txn);

/**
 * @brief Map an LMDB return code to the ckptfs error domain.
 * @return 0 for MDB_SUCCESS; -ENOENT (MDB_NOTFOUND), -EEXIST (KEYEXIST),
 *         -ENOSPC (MAP_FULL), -ENOBUFS (TXN_FULL, CURSOR_FULL, PAGE_FULL:
 *         the transaction is too big, commit the batch and retry), -EAGAIN
 *         (READERS_FULL, MAP_RESIZED), -EMFILE (DBS_FULL), -EIO (corruption,
 *         panic), CKPT_E_VERSION (VERSION_MISMATCH, INVALID, INCOMPATIBLE),
 *         -EINVAL (BAD_*), -errno for a positive system errno.
 */
int meta_store_errno(int mdb_rc);

/**
 * @brief Read the superblock.
 * @return 0, or -EIO if it is missing or damaged.
 */
int meta_store_info(MDB_txn *txn, struct meta_store_info *out);

/* ---- attributes ------------------------------------------------------------ */

/**
 * @brief Look a name up in a directory.
 * @param[in] name  "." gives parent itself, ".." its parent (the root's ".."
 *                  is the root)
 * @return 0 with *out filled, or -ENOENT (no such name or parent),
 *         -ENOTDIR (parent is not a directory), -ENAMETOOLONG (> 255 bytes),
 *         -EINVAL ("" or a name containing '/').
 */
int meta_store_lookup(MDB_txn *txn, uint64_t parent, const char *name,
                      struct meta_attr *out);

/** @brief Attributes of ino (orphans included).  @return 0 or -ENOENT. */
int meta_store_getattr(MDB_txn *txn, uint64_t ino, struct meta_attr *out);

/* meta_setattr.mask bits (the same meaning as FUSE_SET_ATTR_*). */
#define META_SETATTR_MODE 0x001u      /* permission bits 07777 of mode */
#define META_SETATTR_UID 0x002u
#define META_SETATTR_GID 0x004u
#define META_SETATTR_SIZE 0x008u      /* regular files only */
#define META_SETATTR_ATIME 0x010u     /* atime = sa->atime */
#define META_SETATTR_MTIME 0x020u     /* mtime = sa->mtime */
#define META_SETATTR_ATIME_NOW 0x080u /* atime = now (wins over ATIME) */
#define META_SETATTR_MTIME_NOW 0x100u /* mtime = now (wins over MTIME) */
#define META_SETATTR_CTIME 0x400u     /* ctime = sa->ctime (else now) */
#define META_SETATTR_ALL 0x5bfu

/** What meta_store_setattr() changes. */
struct meta_setattr {
    uint32_t mask; /* META_SETATTR_* */
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    struct timespec atime;
    struct timespec mtime;
    struct timespec ctime;
};

/**
 * @brief Change attributes of ino.
 *
 * A non-empty mask sets ctime to now (or to sa->ctime with
 * META_SETATTR_CTIME).  A SIZE that differs from the current size also sets
 * mtime to now (unless MTIME/MTIME_NOW is given) and bumps data_gen, so
 * chunks written before the truncate can be told from later ones; when the
 * file shrank the caller queues deletions of the stripes past the new end
 * (meta_store_delq_add_file() with the old data_gen = out_attr->data_gen-1).
 * @param[in] now           the time of the operation
 * @param[out] out_attr     attributes after the change (may be NULL)
 * @param[out] out_old_size the size before the change (may be NULL)
 * @return 0, -ENOENT, -EISDIR (SIZE on a directory), -EINVAL (SIZE on a
 *         non-regular file, unknown mask bits, tv_nsec out of range),
 *         -EFBIG (size > INT64_MAX).
 */
int meta_store_setattr(MDB_txn *txn, uint64_t ino, const struct meta_setattr *sa,
                       const struct timespec *now, struct meta_attr *out_attr,
                       uint64_t *out_old_size);

/**
 * @brief Set and clear META_INODE_F_* flags (no time changes).
 * @return 0, -ENOENT, -EINVAL (unknown bits).
 */
int meta_store_flags_update(MDB_txn *txn, uint64_t ino, uint32_t set_bits,
                            uint32_t clear_bits);

/**
 * @brief Record the size a writer reached (its data is on the targets):
 * size, mtime (when given) and ctime = now, WITHOUT a new data_gen (the
 * chunks just written carry the current one).  Regular files only.
 * @param[in] mtime     may be NULL (mtime = now)
 * @param[out] out_attr attributes after the change (may be NULL)
 * @return 0, -ENOENT, -EINVAL (not a regular file, bad times), -EFBIG.
 */
int meta_store_size_update(MDB_txn *txn, uint64_t ino, uint64_t size,
                           const struct timespec *mtime,
                           const struct timespec *now,
                           struct meta_attr *out_attr);

/**
 * @brief Start a new data generation of a regular file (an overwrite begins).
 * @param[out] out_gen  the new data_gen (may be NULL)
 * @return 0, -ENOENT, -EINVAL (not a regular file).
 */
int meta_store_data_gen_bump(MDB_txn *txn, uint64_t ino, uint64_t *out_gen);

/* ---- creating and removing names -------------------------------------------- */

/**
 * @brief Create a regular file, FIFO, socket or device node.
 * @param[in] mode    type (S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK; 0
 *                    means S_IFREG) | permission bits (umask already applied)
 * @param[in] rdev    device number for S_IFCHR/S_IFBLK, ignored otherwise
 * @param[in] layout  regular files: the placed layout (validated with
 *                    ckpt_layout_check; its first `width` targets are indexed)
 *                    or NULL to set it later; must be NULL for other types
 * @param[out] out    the new inode's attributes (may be NULL)
 * @return 0, -EEXIST (name exists, of any type), -ENOENT (no parent, or the
 *         parent was removed), -ENOTDIR, -ENAMETOOLONG, -EINVAL (bad name,
 *         S_IFDIR/S_IFLNK/unknown type, invalid layout, layout on a
 *         non-regular file); LMDB errors (meta_store_errno).
 */
int meta_store_mknod(MDB_txn *txn, uint64_t parent, const char *name,
                     uint32_t mode, uint32_t uid, uint32_t gid, uint64_t rdev,
                     const struct ckpt_layout *layout,
                     const struct timespec *now, struct meta_attr *out);

/**
 * @brief Create a directory (nlink 2; the parent's nlink grows by one).
 * @param[in] mode  permission bits (the type bits are ignored)
 * @return as meta_store_mknod(), plus -EMLINK when the parent already has
 *         META_LINK_MAX links.
 */
int meta_store_mkdir(MDB_txn *txn, uint64_t parent, const char *name,
                     uint32_t mode, uint32_t uid, uint32_t gid,
                     const struct timespec *now, struct meta_attr *out);

/**
 * @brief Create a symbolic link (mode S_IFLNK|0777, size = strlen(target)).
 * @return as meta_store_mknod(), plus -ENOENT for an empty target and
 *         -ENAMETOOLONG for a target longer than META_SYMLINK_MAX.
 */
int meta_store_symlink(MDB_txn *txn, uint64_t parent, const char *name,
                       const char *target, uint32_t uid, uint32_t gid,
                       const struct timespec *now, struct meta_attr *out);

/**
 * @brief Read a symlink's target into dst, NUL-terminated.
 * @param[out] out_len  target length without the NUL
 * @return 0, -ENOENT, -EINVAL (not a symlink), -ERANGE (dst_cap <= length).
 */
int meta_store_readlink(MDB_txn *txn, uint64_t ino, char *dst, size_t dst_cap,
                        size_t *out_len);

/**
 * @brief Add the name newparent/newname for inode ino (nlink+1, ctime).
 * @return 0, -EPERM (ino is a directory), -EEXIST, -ENOENT (no such inode,
 *         inode already has no names, or newparent missing/removed),
 *         -ENOTDIR, -EMLINK, -EINVAL/-ENAMETOOLONG (bad name).
 */
int meta_store_link(MDB_txn *txn, uint64_t ino, uint64_t newparent,
                    const char *newname, const struct timespec *now,
                    struct meta_attr *out);

/**
 * @brief Remove a non-directory name (nlink-1, ctime; parent mtime/ctime).
 * @param[out] out_ino   the inode the name referred to (may be NULL)
 * @param[out] out_last  true when its nlink reached 0: the inode is now an
 *                       orphan; destroy it now or at last close (may be NULL)
 * @return 0, -ENOENT, -ENOTDIR (parent), -EISDIR (name is a directory),
 *         -EINVAL/-ENAMETOOLONG (bad name).
 */
int meta_store_unlink(MDB_txn *txn, uint64_t parent, const char *name,
                      const struct timespec *now, uint64_t *out_ino,
                      bool *out_last);

/**
 * @brief Remove an empty directory.  Its nlink becomes 0 and it joins the
 * orphan list (destroy it when no client has it open); the parent loses one
 * link.
 * @param[out] out_ino  the removed directory (may be NULL)
 * @return 0, -ENOENT, -ENOTDIR (parent, or name is not a directory),
 *         -ENOTEMPTY, -EBUSY (the root), -EINVAL ("." or "..", bad name),
 *         -ENAMETOOLONG.
 */
int meta_store_rmdir(MDB_txn *txn, uint64_t parent, const char *name,
                     const struct timespec *now, uint64_t *out_ino);

/** What meta_store_rename() did. */
struct meta_rename_result {
    uint64_t moved_ino;    /* the inode that was at oldparent/oldname */
    uint64_t replaced_ino; /* the inode that was at newparent/newname and
                              lost that name (0 if none or EXCHANGE) */
    bool replaced_last;    /* replaced_ino's nlink reached 0: an orphan */
    uint64_t exchanged_ino;/* EXCHANGE: the inode now at oldparent/oldname */
};

/**
 * @brief rename(2)/renameat2(2).
 *
 * Over an existing non-directory: that name is dropped (nlink-1).  Over an
 * empty directory: it is removed as by rmdir.  A directory that moves to
 * another parent moves one link from the old parent to the new one and gets
 * a new parent.  When both names refer to the same inode nothing changes
 * and 0 is returned.  ctime of every inode involved and mtime/ctime of both
 * parents become now.  A moved entry gets a new readdir cookie.
 * @param[in] flags  0, META_RENAME_NOREPLACE or META_RENAME_EXCHANGE
 * @param[out] out   may be NULL
 * @return 0, -ENOENT (old name missing; EXCHANGE with no new name; a parent
 *         missing or removed), -EEXIST (NOREPLACE and the new name exists),
 *         -ENOTDIR (a parent is not a directory; directory over
 *         non-directory), -EISDIR (non-directory over directory),
 *         -ENOTEMPTY (over a non-empty directory), -EINVAL (a directory
 *         into its own subtree, bad flags, bad name), -EBUSY (the root),
 *         -EMLINK, -ENAMETOOLONG.
 */
int meta_store_rename(MDB_txn *txn, uint64_t oldparent, const char *oldname,
                      uint64_t newparent, const char *newname, unsigned flags,
                      const struct timespec *now,
                      struct meta_rename_result *out);

/**
 * @brief readdir callback.
 * @param[in] name         NUL-terminated; valid during the call only
 * @param[in] type         S_IFMT bits of the entry (S_IFDIR, S_IFREG, ...)
 * @param[in] next_cookie  pass this to meta_store_readdir() to continue
 *                         after this entry
 * @return 0 to take the entry and go on; > 0 to stop WITHOUT taking this
 *         entry (e.g. the reply buffer is full); < 0 to stop with that error.
 */
typedef int (*meta_readdir_cb)(const char *name, uint64_t ino, uint32_t type,
                               uint64_t next_cookie, void *ctx);

/**
 * @brief List directory dir from a cookie, in cookie order: ".", "..",
 * then the entries in creation order.
 *
 * cb must not write to txn while the listing runs.
 * Cookies are stable: entries added or removed between calls do not make
 * any other entry appear twice or go missing, and each call costs
 * O(log n + entries returned).
 * @param[in] cookie  META_COOKIE_START, or a next_cookie from an earlier call
 * @return 0 at the end or when cb stopped with > 0; cb's negative value;
 *         -ENOENT, -ENOTDIR.
 */
int meta_store_readdir(MDB_txn *txn, uint64_t dir, uint64_t cookie,
                       meta_readdir_cb cb, void *ctx);

/**
 * @brief Delete an orphan for good: its inode, xattrs, symlink target,
 * target-index entries, and queue one chunk deletion (from stripe 0, at its
 * data_gen) on each distinct target of its layout.
 * @return 0, -ENOENT, -EBUSY (it still has names, or it is the root).
 */
int meta_store_destroy(MDB_txn *txn, uint64_t ino);

/** Callback over inode numbers: 0 goes on, nonzero stops (and is returned
 *  when negative). */
typedef int (*meta_ino_cb)(uint64_t ino, void *ctx);

/** @brief Call cb for each orphan with ino >= start_ino, in order.
 *  @return 0, or cb's negative value. */
int meta_store_orphan_iter(MDB_txn *txn, uint64_t start_ino, meta_ino_cb cb,
                           void *ctx);

/* ---- extended attributes ------------------------------------------------------ */

/**
 * @brief Set an xattr (ctime = now).
 *
 * META_LAYOUT_XATTR is the default layout of a directory's new files: its
 * value must be a spec accepted by ckpt_layout_parse() (e.g. "ec=8+2
 * chunk=4M") of at most META_LAYOUT_SPEC_MAX bytes, and only directories
 * take it.
 * @param[in] flags    0, META_XATTR_CREATE or META_XATTR_REPLACE
 * @param[out] out_why on -EINVAL for the layout xattr, a static reason (may
 *                     be NULL)
 * @return 0, -ENOENT, -EEXIST (CREATE and it exists), -ENODATA (REPLACE and
 *         it does not), -ERANGE (name empty or > 255 bytes), -E2BIG (value >
 *         64 KiB), -EINVAL (both flags; bad layout spec).
 */
int meta_store_xattr_set(MDB_txn *txn, uint64_t ino, const char *name,
                         const void *value, size_t len, int flags,
                         const struct timespec *now, const char **out_why);

/**
 * @brief Get an xattr value, getxattr(2)-style.
 * @param[in] dst_cap  0 to learn the size only (dst may then be NULL)
 * @param[out] out_len the value's size
 * @return 0, -ENOENT, -ENODATA, -ERANGE (dst_cap too small, or bad name).
 */
int meta_store_xattr_get(MDB_txn *txn, uint64_t ino, const char *name,
                         void *dst, size_t dst_cap, size_t *out_len);

/**
 * @brief List xattr names, listxattr(2)-style: each name NUL-terminated,
 * back to back, in byte order.
 * @param[in] dst_cap  0 to learn the size only (dst may then be NULL)
 * @param[out] out_len bytes needed/written
 * @return 0, -ENOENT, -ERANGE (dst_cap too small).
 */
int meta_store_xattr_list(MDB_txn *txn, uint64_t ino, char *dst,
                          size_t dst_cap, size_t *out_len);

/** @brief Remove an xattr (ctime = now).
 *  @return 0, -ENOENT, -ENODATA, -ERANGE (bad name). */
int meta_store_xattr_remove(MDB_txn *txn, uint64_t ino, const char *name,
                            const struct timespec *now);

/**
 * @brief The default layout for new files in dir: the META_LAYOUT_XATTR of
 * dir or of its nearest ancestor that has one, applied with
 * ckpt_layout_parse() on top of *inout.
 * @param[in,out] inout  on entry the base (the cluster default); on success
 *                       with the spec applied (targets untouched)
 * @return 0; -ENODATA when no directory up to the root has one (*inout
 *         unchanged: use the cluster default); -EINVAL when the spec applied
 *         on this base is not a valid layout (*inout unchanged); -ENOENT,
 *         -ENOTDIR.
 */
int meta_store_dir_layout(MDB_txn *txn, uint64_t dir, struct ckpt_layout *inout);

/* ---- layouts, target index, deletion queue ------------------------------------ */

/**
 * @brief A regular file's layout.
 * @return 0, -ENOENT, -EINVAL (not a regular file), -ENODATA (none yet).
 */
int meta_store_layout_get(MDB_txn *txn, uint64_t ino, struct ckpt_layout *out);

/**
 * @brief Give a regular file that has none its layout, and index its
 * targets (tindex).
 * @return 0, -ENOENT, -EINVAL (not a regular file; invalid layout),
 *         -EEXIST (it already has one: use meta_store_layout_replace_target).
 */
int meta_store_layout_set(MDB_txn *txn, uint64_t ino,
                          const struct ckpt_layout *l);

/**
 * @brief Replace target old_tid by new_tid in ino's layout and move the
 * tindex entry, atomically (rebuild, rebalance, drain).  The chunks on
 * old_tid are not queued for deletion: a caller that moves data off a live
 * target adds that with meta_store_delq_add().
 * @return 0, -ENOENT (no such inode), -ENODATA (no layout), -ENXIO (old_tid
 *         not in the layout), -EEXIST (new_tid already in it), -EINVAL.
 */
int meta_store_layout_replace_target(MDB_txn *txn, uint64_t ino,
                                     uint32_t old_tid, uint32_t new_tid);

/**
 * @brief Call cb for every file with chunks on target tid whose ino >=
 * start_ino, in ino order (resume with the last ino + 1).
 * @return 0, or cb's negative value.
 */
int meta_store_tindex_iter(MDB_txn *txn, uint32_t tid, uint64_t start_ino,
                           meta_ino_cb cb, void *ctx);

/**
 * One queued chunk deletion: on target tid, delete the chunks of ino whose
 * stripe >= from_stripe and whose generation <= data_gen.  Keyed by
 * (tid, ino, data_gen); adding an existing key keeps the smaller
 * from_stripe.
 */
struct meta_delq_entry {
    uint32_t tid;
    uint64_t ino;
    uint64_t data_gen;
    uint64_t from_stripe;
};

/** @brief Queue a deletion.  @return 0 or an LMDB error. */
int meta_store_delq_add(MDB_txn *txn, const struct meta_delq_entry *e);

/**
 * @brief Queue the deletion of stripes >= from_stripe of ino's chunks of
 * generation <= data_gen on every distinct target of its layout.
 * @return 0 (also when it has no layout: nothing to delete), -ENOENT.
 */
int meta_store_delq_add_file(MDB_txn *txn, uint64_t ino, uint64_t data_gen,
                             uint64_t from_stripe);

typedef int (*meta_delq_cb)(const struct meta_delq_entry *e, void *ctx);

/**
 * @brief Call cb for each queued deletion on target tid with ino >=
 * start_ino, in (ino, data_gen) order.
 * @return 0, or cb's negative value (a positive value just stops).
 */
int meta_store_delq_iter(MDB_txn *txn, uint32_t tid, uint64_t start_ino,
                         meta_delq_cb cb, void *ctx);

/**
 * @brief The node confirmed deletion e: drop it from the queue.
 * @return 0; -ENOENT if not queued; CKPT_E_STALE if the queued entry has
 *         grown since (a smaller from_stripe was merged in): it stays and
 *         must be sent again.
 */
int meta_store_delq_remove(MDB_txn *txn, const struct meta_delq_entry *e);

/* ---- whole-store ---------------------------------------------------------------- */

struct meta_statfs {
    uint64_t inodes;     /* inodes in use, orphans included */
    uint64_t orphans;    /* inodes with no name left */
    uint64_t dentries;   /* names */
    uint64_t delq;       /* queued chunk deletions */
    uint64_t map_bytes;  /* LMDB map size */
    uint64_t used_bytes; /* pages in use in the map */
};

/** @brief Counters for statfs and metrics.  @return 0 or negative errno. */
int meta_store_statfs(MDB_txn *txn, struct meta_statfs *out);

struct meta_fsck_report {
    uint64_t inodes;
    uint64_t dentries;
    uint64_t problems;   /* 0 when every invariant holds */
    char first[200];     /* description of the first problem */
};

/**
 * @brief Check every cross-table invariant: each name points to a live
 * inode of the recorded type and has exactly one cookie entry (and back);
 * nlink equals the number of names (directories: 2 + subdirectories, one
 * name, parent field = the directory holding it); next_cookie and next_ino
 * exceed every one in use; tindex equals the layouts' distinct targets;
 * orphans are exactly the inodes with nlink 0; no xattr or symlink target
 * without its inode.  O(records); allocates O(inodes).
 * @return 0 with *out filled (check out->problems), -ENOMEM, -EIO.
 */
int meta_store_fsck(MDB_txn *txn, struct meta_fsck_report *out);

/**
 * @brief A 64-bit FNV-1a hash over every record of the namespace tables,
 * for comparing two stores or two moments of one store (tests, backups).
 * @return 0 or negative errno.
 */
int meta_store_digest(MDB_txn *txn, uint64_t *out);

#endif

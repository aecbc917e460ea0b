/*
 * msg_meta.h - namespace and session messages of ckpt-meta (opcodes 0x01xx).
 *
 * The FUSE client and the tools send these to ckpt-meta.  Every name is
 * one path component of 1..CKPT_PROTO_MAX_NAME bytes without '/' or NUL;
 * decoders enforce it.  Replies carry the status as a negative errno with
 * POSIX meaning (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG,
 * EINVAL, EPERM, EACCES, ENOSPC, ENODATA, ERANGE, EXDEV, EROFS, ESTALE).
 *
 * Sessions: a client (one mount, or one tool run) opens a session and
 * renews it within its lease; opens are tied to a session, so when a client
 * dies its opens are released after the lease expires.
 *
 * Visibility (DESIGN.md): an OPEN or CREATE for writing registers the
 * session as a writer of the inode.  Another session's OPEN of that inode
 * is held by ckpt-meta until every writer of other sessions has sent
 * RELEASE (which the client sends only after the file's data is flushed)
 * or has been declared dead (then the inode is marked
 * CKPT_ATTR_F_INCOMPLETE and the open proceeds).  Opens by the writer's
 * own session never wait.  Between the writer's close() and its RELEASE,
 * LOOKUP, GETATTR and READDIR (plus) answer with the size and mtime the
 * writer announced with CLOSING, so a stat() on another mount after close()
 * already sees the final size (tar and rsync read st_size bytes).
 *
 * Codec conventions as in msg_node.h: encoders return w->err; decoders
 * return 0 or CKPT_E_PROTO (or -ENOMEM where they allocate); strings are
 * decoded into fixed NUL-terminated arrays unless marked "borrowed"
 * (pointing into the body, valid while it is).
 */
#ifndef CKPT_MSG_META_H
#define CKPT_MSG_META_H

#include <stdint.h>

#include "layout.h"
#include "proto.h"

#define CKPT_ROOT_INO 1
#define CKPT_XATTR_NAME_MAX 255
#define CKPT_XATTR_VALUE_MAX (64u << 10)
#define CKPT_READDIR_MAX 4096      /* entries per READDIR reply */
#define CKPT_DEGRADED_MAX 4096     /* stripes per DEGRADED report */
#define CKPT_CLIENT_NAME_MAX 63

/* struct ckpt_attr flags */
#define CKPT_ATTR_F_INCOMPLETE 0x1u /* its writer died before flushing */
#define CKPT_ATTR_F_IMMUTABLE 0x2u  /* inside a committed checkpoint */

struct ckpt_attr {
    uint64_t ino;
    uint64_t size;
    uint64_t generation;  /* inode generation (ino reuse) */
    uint64_t data_gen;    /* data version: chunk generations of this file */
    uint32_t mode;        /* S_IFMT | permissions */
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;
    uint32_t rdev;
    uint32_t flags;       /* CKPT_ATTR_F_* */
    int64_t atime_sec, mtime_sec, ctime_sec;
    uint32_t atime_nsec, mtime_nsec, ctime_nsec;
};

/* LOOKUP {parent, name} -> attr.  Also: RMDIR, UNLINK (empty reply). */
struct ckpt_msg_name {
    uint64_t parent;
    char name[CKPT_PROTO_MAX_NAME + 1];
};

/* GETATTR / READLINK / LISTXATTR {ino}. */
struct ckpt_msg_ino {
    uint64_t ino;
};

/* Reply of LOOKUP, GETATTR, SETATTR, MKNOD, MKDIR, LINK, SYMLINK. */
struct ckpt_msg_attr_resp {
    struct ckpt_attr attr;
};

/* SETATTR valid bits */
#define CKPT_SETATTR_MODE 0x01u
#define CKPT_SETATTR_UID 0x02u
#define CKPT_SETATTR_GID 0x04u
#define CKPT_SETATTR_SIZE 0x08u
#define CKPT_SETATTR_ATIME 0x10u
#define CKPT_SETATTR_MTIME 0x20u
#define CKPT_SETATTR_ATIME_NOW 0x40u
#define CKPT_SETATTR_MTIME_NOW 0x80u
#define CKPT_SETATTR_KNOWN 0xffu

/* SETATTR.  A size change on a regular file bumps data_gen when it
 * shrinks and queues deletion of the chunks past the new end. */
struct ckpt_msg_setattr {
    uint64_t ino;
    uint32_t valid;       /* CKPT_SETATTR_* */
    uint32_t mode, uid, gid;
    uint64_t size;
    int64_t atime_sec, mtime_sec;
    uint32_t atime_nsec, mtime_nsec;
};

/* MKNOD (any S_IFMT but directories and symlinks) and MKDIR.
 * For regular files the reply carries the layout chosen (placement). */
struct ckpt_msg_mknod {
    uint64_t parent;
    char name[CKPT_PROTO_MAX_NAME + 1];
    uint32_t mode;
    uint32_t uid, gid;
    uint32_t rdev;
};

/* LINK {ino, newparent, newname} -> attr. */
struct ckpt_msg_link {
    uint64_t ino;
    uint64_t newparent;
    char newname[CKPT_PROTO_MAX_NAME + 1];
};

/* SYMLINK {parent, name, target, uid, gid} -> attr. */
struct ckpt_msg_symlink {
    uint64_t parent;
    char name[CKPT_PROTO_MAX_NAME + 1];
    char target[CKPT_PROTO_MAX_PATH + 1];
    uint32_t uid, gid;
};

/* READLINK reply. */
struct ckpt_msg_readlink_resp {
    char target[CKPT_PROTO_MAX_PATH + 1];
};

/* RENAME flags: RENAME_NOREPLACE (1) and RENAME_EXCHANGE (2) of Linux. */
#define CKPT_RENAME_NOREPLACE 0x1u
#define CKPT_RENAME_EXCHANGE 0x2u
struct ckpt_msg_rename {
    uint64_t oldparent;
    char oldname[CKPT_PROTO_MAX_NAME + 1];
    uint64_t newparent;
    char newname[CKPT_PROTO_MAX_NAME + 1];
    uint32_t flags;
};

/* READDIR {ino, cookie, max, plus}: entries after cookie (0: from the
 * start; "." and ".." are not sent, the client makes them). */
struct ckpt_msg_readdir {
    uint64_t ino;
    uint64_t cookie;
    uint32_t max;         /* 1..CKPT_READDIR_MAX */
    uint8_t plus;         /* 1: include each entry's attr */
};
struct ckpt_dirent {
    uint64_t ino;
    uint64_t next_cookie; /* resume after this entry */
    uint32_t type;        /* mode >> 12 (DT_* values) */
    char name[CKPT_PROTO_MAX_NAME + 1];
    struct ckpt_attr attr; /* valid when plus */
};
struct ckpt_msg_readdir_resp {
    uint8_t eof;
    uint8_t plus;
    uint32_t n;
    struct ckpt_dirent *ents; /* decode allocates; ckpt_msg_readdir_resp_free */
};

/* STATFS {} -> totals over all targets that are not OUT. */
struct ckpt_msg_statfs_resp {
    uint32_t bsize;
    uint64_t blocks, bfree, bavail; /* in bsize units */
    uint64_t files, ffree;
    uint32_t namemax;
};

/* SETXATTR flags: XATTR_CREATE (1), XATTR_REPLACE (2). */
#define CKPT_XATTR_CREATE 0x1u
#define CKPT_XATTR_REPLACE 0x2u
struct ckpt_msg_setxattr {
    uint64_t ino;
    char name[CKPT_XATTR_NAME_MAX + 1];
    uint32_t flags;
    uint32_t value_len;
    const uint8_t *value;  /* borrowed */
};
/* GETXATTR / REMOVEXATTR {ino, name}. */
struct ckpt_msg_xattr_name {
    uint64_t ino;
    char name[CKPT_XATTR_NAME_MAX + 1];
};
/* GETXATTR reply: the value; LISTXATTR reply: the names, each
 * NUL-terminated, concatenated (the Linux listxattr format). */
struct ckpt_msg_xattr_value {
    uint32_t len;
    const uint8_t *data;   /* borrowed */
};

/* SESSION {session (0: new), name} -> {session, lease_ms}.  Renewing is
 * the same call with the session id; an expired or unknown session gets
 * -ESTALE (the client opens a new one and reopens its files).  Ending a
 * session is the same call with the session id and an empty name: its
 * opens are released at once, as if its lease had expired. */
struct ckpt_msg_session {
    uint64_t session;
    char name[CKPT_CLIENT_NAME_MAX + 1];  /* e.g. "ckptfs@host:/ckpt" */
};
struct ckpt_msg_session_resp {
    uint64_t session;
    uint32_t lease_ms;
};

/* OPEN {ino, flags, session} and CREATE {parent, name, mode, uid, gid,
 * flags, session}: flags are the open(2) flags that matter to ckpt-meta:
 * O_ACCMODE, O_TRUNC, O_EXCL (CREATE), O_APPEND.  Reply: attr, layout
 * (regular files), and an open handle for RELEASE. */
struct ckpt_msg_open {
    uint64_t ino;
    uint32_t flags;
    uint64_t session;
};
struct ckpt_msg_create {
    uint64_t parent;
    char name[CKPT_PROTO_MAX_NAME + 1];
    uint32_t mode;
    uint32_t uid, gid;
    uint32_t flags;
    uint64_t session;
};
struct ckpt_msg_open_resp {
    struct ckpt_attr attr;
    struct ckpt_layout layout;  /* width 0 / no targets for non-regular */
    uint64_t handle;
};

/* FLUSHED: the client has every byte of ino up to size acknowledged by the
 * targets (fsync, or a flush while still open).  Updates size and mtime,
 * and records the file's crc32c over its first `size` bytes when
 * has_checksum.  RELEASE: the same, then the open handle is closed; the
 * client sends it only once the flush after close() completed, which is
 * what releases waiting openers.  wrote == 0: a read-only open.  lost: the
 * flush failed for some of the bytes (more targets failed than parity
 * covers): ckpt-meta marks the inode CKPT_ATTR_F_INCOMPLETE, like after a
 * writer's death, and a checkpoint holding it cannot be committed.
 * CLOSING (same body, wrote == 1): close() was called on a handle that
 * wrote; size and mtime are what the file will have once the flush is
 * done.  ckpt-meta keeps them in memory (not durable) until the next
 * FLUSHED/RELEASE of the handle or a size change, and shows them to
 * attribute reads. */
struct ckpt_msg_release {
    uint64_t ino;
    uint64_t handle;
    uint64_t session;
    uint8_t wrote;
    uint8_t has_checksum;
    uint8_t lost;       /* wire: bit 1 of the wrote byte */
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t checksum;
};

/* DEGRADED: stripes of ino (at data_gen) written with chunks missing;
 * mask bit i = chunk index i is missing.  ckpt-meta records them for
 * repair. */
struct ckpt_degraded_stripe {
    uint64_t stripe;
    uint32_t missing_mask;
};
struct ckpt_msg_degraded {
    uint64_t ino;
    uint64_t data_gen;
    uint32_t n;
    struct ckpt_degraded_stripe *stripes; /* decode allocates; _free() */
};

/* Attr and layout on the wire, shared by the messages above. */
void ckpt_wr_attr(struct ckpt_wbuf *w, const struct ckpt_attr *a);
void ckpt_rd_attr(struct ckpt_rbuf *r, struct ckpt_attr *out);

int ckpt_msg_name_encode(struct ckpt_wbuf *w, const struct ckpt_msg_name *m);
int ckpt_msg_name_decode(const void *body, size_t len, struct ckpt_msg_name *out);
int ckpt_msg_ino_encode(struct ckpt_wbuf *w, const struct ckpt_msg_ino *m);
int ckpt_msg_ino_decode(const void *body, size_t len, struct ckpt_msg_ino *out);
int ckpt_msg_attr_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_attr_resp *m);
int ckpt_msg_attr_resp_decode(const void *body, size_t len, struct ckpt_msg_attr_resp *out);
int ckpt_msg_setattr_encode(struct ckpt_wbuf *w, const struct ckpt_msg_setattr *m);
int ckpt_msg_setattr_decode(const void *body, size_t len, struct ckpt_msg_setattr *out);
int ckpt_msg_mknod_encode(struct ckpt_wbuf *w, const struct ckpt_msg_mknod *m);
int ckpt_msg_mknod_decode(const void *body, size_t len, struct ckpt_msg_mknod *out);
int ckpt_msg_link_encode(struct ckpt_wbuf *w, const struct ckpt_msg_link *m);
int ckpt_msg_link_decode(const void *body, size_t len, struct ckpt_msg_link *out);
int ckpt_msg_symlink_encode(struct ckpt_wbuf *w, const struct ckpt_msg_symlink *m);
int ckpt_msg_symlink_decode(const void *body, size_t len, struct ckpt_msg_symlink *out);
int ckpt_msg_readlink_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_readlink_resp *m);
int ckpt_msg_readlink_resp_decode(const void *body, size_t len,
                                  struct ckpt_msg_readlink_resp *out);
int ckpt_msg_rename_encode(struct ckpt_wbuf *w, const struct ckpt_msg_rename *m);
int ckpt_msg_rename_decode(const void *body, size_t len, struct ckpt_msg_rename *out);
int ckpt_msg_readdir_encode(struct ckpt_wbuf *w, const struct ckpt_msg_readdir *m);
int ckpt_msg_readdir_decode(const void *body, size_t len, struct ckpt_msg_readdir *out);
int ckpt_msg_readdir_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_readdir_resp *m);
int ckpt_msg_readdir_resp_decode(const void *body, size_t len, struct ckpt_msg_readdir_resp *out);
void ckpt_msg_readdir_resp_free(struct ckpt_msg_readdir_resp *m);
int ckpt_msg_statfs_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_statfs_resp *m);
int ckpt_msg_statfs_resp_decode(const void *body, size_t len, struct ckpt_msg_statfs_resp *out);
int ckpt_msg_setxattr_encode(struct ckpt_wbuf *w, const struct ckpt_msg_setxattr *m);
int ckpt_msg_setxattr_decode(const void *body, size_t len, struct ckpt_msg_setxattr *out);
int ckpt_msg_xattr_name_encode(struct ckpt_wbuf *w, const struct ckpt_msg_xattr_name *m);
int ckpt_msg_xattr_name_decode(const void *body, size_t len, struct ckpt_msg_xattr_name *out);
int ckpt_msg_xattr_value_encode(struct ckpt_wbuf *w, const struct ckpt_msg_xattr_value *m);
int ckpt_msg_xattr_value_decode(const void *body, size_t len, struct ckpt_msg_xattr_value *out);
int ckpt_msg_session_encode(struct ckpt_wbuf *w, const struct ckpt_msg_session *m);
int ckpt_msg_session_decode(const void *body, size_t len, struct ckpt_msg_session *out);
int ckpt_msg_session_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_session_resp *m);
int ckpt_msg_session_resp_decode(const void *body, size_t len, struct ckpt_msg_session_resp *out);
int ckpt_msg_open_encode(struct ckpt_wbuf *w, const struct ckpt_msg_open *m);
int ckpt_msg_open_decode(const void *body, size_t len, struct ckpt_msg_open *out);
int ckpt_msg_create_encode(struct ckpt_wbuf *w, const struct ckpt_msg_create *m);
int ckpt_msg_create_decode(const void *body, size_t len, struct ckpt_msg_create *out);
int ckpt_msg_open_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_open_resp *m);
int ckpt_msg_open_resp_decode(const void *body, size_t len, struct ckpt_msg_open_resp *out);
int ckpt_msg_release_encode(struct ckpt_wbuf *w, const struct ckpt_msg_release *m);
int ckpt_msg_release_decode(const void *body, size_t len, struct ckpt_msg_release *out);
int ckpt_msg_degraded_encode(struct ckpt_wbuf *w, const struct ckpt_msg_degraded *m);
int ckpt_msg_degraded_decode(const void *body, size_t len, struct ckpt_msg_degraded *out);
void ckpt_msg_degraded_free(struct ckpt_msg_degraded *m);

#endif

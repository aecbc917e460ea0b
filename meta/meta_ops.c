/*
 * meta_ops.c - the namespace requests of ckpt-meta: decode, call the store,
 * encode the reply (msg_meta.h).
 *
 * DESIGN
 *
 *   Reads (meta_rd_*) run on a receive thread in a read-only transaction
 *   that meta_server.c opened; writes (meta_wop_*) are applied by the
 *   writer thread in a child transaction of the current batch.  Neither
 *   keeps state of its own.
 *
 *   Policies applied here, on top of the store's POSIX rules:
 *   - a new regular file gets its layout at creation: the cluster default
 *     with the nearest directory's user.ckptfs.layout applied
 *     (meta_store_dir_layout), then placed on live targets
 *     (meta_cluster_place); no usable placement is ENOSPC;
 *   - the last name of an inode going away destroys it at once unless a
 *     session holds it open (then the release that closes it last does);
 *     destroying queues the deletion of its chunks;
 *   - a truncate that shrinks a file queues deletion of the stripes past
 *     the new end, of the generations before the new data_gen;
 *   - names starting with "ckptfs." are the server's own xattrs (the file
 *     checksum recorded at RELEASE): clients cannot see or change them.
 *
 *   Error contract: a write op returns before its first database write for
 *   every POSIX error; after a partial write only LMDB errors remain, and
 *   the writer aborts the child transaction in every failure case.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"

#define INTERNAL_XATTR_PREFIX "ckptfs."

static bool xattr_internal(const char *name)
{
    return strncmp(name, INTERNAL_XATTR_PREFIX, sizeof(INTERNAL_XATTR_PREFIX) - 1) == 0;
}

/* ---- shared helpers ------------------------------------------------------------ */

int meta_new_file_layout(struct meta_server *srv, MDB_txn *txn, uint64_t dir,
                         struct ckpt_layout *out)
{
    struct ckpt_layout l = srv->opts.layout;
    int rc = meta_store_dir_layout(txn, dir, &l);

    if (rc == -ENODATA) {
        l = srv->opts.layout;
    } else if (rc == -EINVAL) {
        CKPT_LOG_WARN("directory %llu (or an ancestor) has a layout that is not valid on "
                      "the cluster default ec=%u+%u chunk=%u: new files there are refused",
                      (unsigned long long)dir, srv->opts.layout.k, srv->opts.layout.m,
                      srv->opts.layout.chunk_size);
        return rc;
    } else if (rc < 0) {
        return rc;
    }
    memset(l.targets, 0, sizeof(l.targets));
    rc = meta_cluster_place(srv, &l);
    if (rc < 0)
        return rc;
    *out = l;
    return 0;
}

int meta_reap_if_unused(struct meta_server *srv, MDB_txn *txn, uint64_t ino,
                        struct meta_wop *w)
{
    struct meta_attr a;
    int rc = meta_store_getattr(txn, ino, &a);

    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    if (a.nlink > 0 || ino == META_ROOT_INO)
        return 0;
    if (meta_sess_ino_open(srv, ino))
        return meta_sess_persist_ino(srv, txn, ino); /* an orphan: its handles keep it */
    rc = meta_store_destroy(txn, ino);
    if (rc == 0 && a.has_layout && w)
        w->kick_delq = true;
    return rc;
}

/* ---- reads ------------------------------------------------------------------------ */

int meta_rd_lookup(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                   struct ckpt_wbuf *reply)
{
    struct ckpt_msg_name m;
    struct meta_attr a;
    int rc = ckpt_msg_name_decode(req->body, req->body_len, &m);

    if (rc < 0)
        return rc;
    rc = meta_store_lookup(txn, m.parent, m.name, &a);
    if (rc < 0)
        return rc;
    meta_sess_pending_attr(srv, &a);
    return meta_reply_attr(reply, &a);
}

int meta_rd_getattr(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                    struct ckpt_wbuf *reply)
{
    struct ckpt_msg_ino m;
    struct meta_attr a;
    int rc = ckpt_msg_ino_decode(req->body, req->body_len, &m);

    if (rc < 0)
        return rc;
    rc = meta_store_getattr(txn, m.ino, &a);
    if (rc < 0)
        return rc;
    meta_sess_pending_attr(srv, &a);
    return meta_reply_attr(reply, &a);
}

int meta_rd_readlink(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                     struct ckpt_wbuf *reply)
{
    struct ckpt_msg_ino m;
    struct ckpt_msg_readlink_resp *r;
    size_t len = 0;
    int rc = ckpt_msg_ino_decode(req->body, req->body_len, &m);

    (void)srv;
    if (rc < 0)
        return rc;
    r = ckpt_malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    rc = meta_store_readlink(txn, m.ino, r->target, sizeof(r->target), &len);
    if (rc == 0)
        rc = ckpt_msg_readlink_resp_encode(reply, r);
    ckpt_free(r);
    return rc;
}

struct rd_ctx {
    struct meta_server *srv;
    MDB_txn *txn;
    struct ckpt_msg_readdir_resp *resp;
    uint32_t max;
    bool full;
    int err;
};

static int readdir_cb(const char *name, uint64_t ino, uint32_t type, uint64_t next_cookie,
                      void *ctx)
{
    struct rd_ctx *c = ctx;
    if (c->resp->n == c->max) {
        c->full = true;
        return 1; /* there is more: not eof */
    }
    struct ckpt_dirent *e = &c->resp->ents[c->resp->n];
    memset(e, 0, sizeof(*e));
    e->ino = ino;
    e->next_cookie = next_cookie;
    e->type = type >> 12;
    snprintf(e->name, sizeof(e->name), "%s", name);
    if (c->resp->plus) {
        struct meta_attr a;
        int rc = meta_store_getattr(c->txn, ino, &a);
        if (rc < 0)
            return rc == -ENOENT ? -EIO : rc;
        meta_sess_pending_attr(c->srv, &a);
        meta_attr_to_wire(&a, &e->attr);
    }
    c->resp->n++;
    return 0;
}

int meta_rd_readdir(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                    struct ckpt_wbuf *reply)
{
    struct ckpt_msg_readdir m;
    struct ckpt_msg_readdir_resp resp;
    struct rd_ctx c;
    int rc = ckpt_msg_readdir_decode(req->body, req->body_len, &m);

    if (rc < 0)
        return rc;
    memset(&resp, 0, sizeof(resp));
    resp.plus = m.plus;
    resp.ents = ckpt_calloc(m.max, sizeof(*resp.ents));
    if (!resp.ents)
        return -ENOMEM;
    memset(&c, 0, sizeof(c));
    c.srv = srv;
    c.txn = txn;
    c.resp = &resp;
    c.max = m.max;
    /* "." and ".." are the client's to make: start after them. */
    rc = meta_store_readdir(txn, m.ino, m.cookie < META_COOKIE_DOTDOT ? META_COOKIE_DOTDOT
                                                                        : m.cookie,
                            readdir_cb, &c);
    if (rc == 0) {
        resp.eof = c.full ? 0 : 1;
        rc = ckpt_msg_readdir_resp_encode(reply, &resp);
    }
    ckpt_msg_readdir_resp_free(&resp);
    return rc;
}

int meta_rd_statfs(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                   struct ckpt_wbuf *reply)
{
    struct meta_statfs sf;
    struct ckpt_msg_statfs_resp r;
    uint64_t cap = 0, free_bytes = 0;
    int rc;

    if (req->body_len != 0)
        return CKPT_E_PROTO;
    rc = meta_store_statfs(txn, &sf);
    if (rc < 0)
        return rc;
    meta_cluster_space(srv, &cap, &free_bytes);
    if (free_bytes > cap)
        free_bytes = cap;
    memset(&r, 0, sizeof(r));
    r.bsize = 4096;
    r.blocks = cap / r.bsize;
    r.bfree = free_bytes / r.bsize;
    r.bavail = r.bfree;
    /* Inodes: what is used, plus what the rest of the LMDB map could hold
     * at about 1 KiB per file (inode, name, cookie, index records). */
    r.ffree = sf.map_bytes > sf.used_bytes ? (sf.map_bytes - sf.used_bytes) / 1024 : 0;
    r.files = sf.inodes + r.ffree;
    r.namemax = META_NAME_MAX;
    return ckpt_msg_statfs_resp_encode(reply, &r);
}

int meta_rd_getxattr(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                     struct ckpt_wbuf *reply)
{
    struct ckpt_msg_xattr_name m;
    struct ckpt_msg_xattr_value v;
    size_t len = 0;
    uint8_t *buf = NULL;
    int rc = ckpt_msg_xattr_name_decode(req->body, req->body_len, &m);

    (void)srv;
    if (rc < 0)
        return rc;
    if (xattr_internal(m.name)) {
        struct meta_attr a;
        rc = meta_store_getattr(txn, m.ino, &a);
        return rc < 0 ? rc : -ENODATA;
    }
    rc = meta_store_xattr_get(txn, m.ino, m.name, NULL, 0, &len);
    if (rc < 0)
        return rc;
    if (len) {
        buf = ckpt_malloc(len);
        if (!buf)
            return -ENOMEM;
        rc = meta_store_xattr_get(txn, m.ino, m.name, buf, len, &len);
    }
    if (rc == 0) {
        v.len = (uint32_t)len;
        v.data = buf;
        rc = ckpt_msg_xattr_value_encode(reply, &v);
    }
    ckpt_free(buf);
    return rc;
}

int meta_rd_listxattr(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                      struct ckpt_wbuf *reply)
{
    struct ckpt_msg_ino m;
    struct ckpt_msg_xattr_value v;
    size_t len = 0, out = 0;
    char *buf = NULL;
    int rc = ckpt_msg_ino_decode(req->body, req->body_len, &m);

    (void)srv;
    if (rc < 0)
        return rc;
    rc = meta_store_xattr_list(txn, m.ino, NULL, 0, &len);
    if (rc < 0)
        return rc;
    if (len) {
        buf = ckpt_malloc(len);
        if (!buf)
            return -ENOMEM;
        rc = meta_store_xattr_list(txn, m.ino, buf, len, &len);
        /* Drop the server's own names, in place. */
        for (size_t off = 0; rc == 0 && off < len;) {
            size_t n = strnlen(buf + off, len - off) + 1;
            if (!xattr_internal(buf + off)) {
                memmove(buf + out, buf + off, n);
                out += n;
            }
            off += n;
        }
    }
    if (rc == 0) {
        v.len = (uint32_t)out;
        v.data = (const uint8_t *)buf;
        rc = ckpt_msg_xattr_value_encode(reply, &v);
    }
    ckpt_free(buf);
    return rc;
}

/* ---- writes ----------------------------------------------------------------------- */

static int setattr_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_setattr_decode(body, len, msg);
}

static int setattr_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_setattr *m = w->msg;
    struct meta_setattr sa;
    struct meta_attr a;
    struct timespec now = meta_now();
    uint64_t old_size = 0;
    int rc;

    if ((m->valid & CKPT_SETATTR_SIZE) && meta_ckpt_immutable(srv, txn, m->ino))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    memset(&sa, 0, sizeof(sa));
    if (m->valid & CKPT_SETATTR_MODE)
        sa.mask |= META_SETATTR_MODE;
    if (m->valid & CKPT_SETATTR_UID)
        sa.mask |= META_SETATTR_UID;
    if (m->valid & CKPT_SETATTR_GID)
        sa.mask |= META_SETATTR_GID;
    if (m->valid & CKPT_SETATTR_SIZE)
        sa.mask |= META_SETATTR_SIZE;
    if (m->valid & CKPT_SETATTR_ATIME)
        sa.mask |= META_SETATTR_ATIME;
    if (m->valid & CKPT_SETATTR_MTIME)
        sa.mask |= META_SETATTR_MTIME;
    if (m->valid & CKPT_SETATTR_ATIME_NOW)
        sa.mask |= META_SETATTR_ATIME_NOW;
    if (m->valid & CKPT_SETATTR_MTIME_NOW)
        sa.mask |= META_SETATTR_MTIME_NOW;
    sa.mode = m->mode;
    sa.uid = m->uid;
    sa.gid = m->gid;
    sa.size = m->size;
    sa.atime.tv_sec = (time_t)m->atime_sec;
    sa.atime.tv_nsec = (long)m->atime_nsec;
    sa.mtime.tv_sec = (time_t)m->mtime_sec;
    sa.mtime.tv_nsec = (long)m->mtime_nsec;
    rc = meta_store_setattr(txn, m->ino, &sa, &now, &a, &old_size);
    if (rc < 0)
        return rc;
    if ((sa.mask & META_SETATTR_SIZE) && a.size < old_size && a.has_layout) {
        struct ckpt_layout l;
        rc = meta_store_layout_get(txn, m->ino, &l);
        if (rc == 0)
            rc = meta_store_delq_add_file(txn, m->ino, a.data_gen - 1,
                                          ckpt_layout_nstripes(&l, a.size));
        if (rc < 0)
            return rc;
        w->kick_delq = true;
    }
    if (sa.mask & (META_SETATTR_SIZE | META_SETATTR_MTIME | META_SETATTR_MTIME_NOW))
        meta_sess_pending_setattr(srv, &a, sa.mask & META_SETATTR_SIZE,
                                  sa.mask & (META_SETATTR_MTIME | META_SETATTR_MTIME_NOW));
    return meta_reply_attr(&w->reply, &a);
}

const struct meta_wop_type meta_wop_setattr = {
    .name = "SETATTR",
    .msg_size = sizeof(struct ckpt_msg_setattr),
    .decode = setattr_decode,
    .apply = setattr_apply,
};

static int mknod_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_mknod_decode(body, len, msg);
}

static int mknod_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_mknod *m = w->msg;
    struct timespec now = meta_now();
    struct meta_attr a;
    struct ckpt_layout l;
    uint32_t type = m->mode & S_IFMT;
    int rc;

    if (meta_ckpt_immutable(srv, txn, m->parent))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    if (type == 0)
        type = S_IFREG;
    if (type == S_IFDIR || type == S_IFLNK)
        return -EINVAL; /* MKDIR and SYMLINK make those */
    if (type == S_IFREG) {
        /* Fail on the name first: placement is the expensive part. */
        rc = meta_store_lookup(txn, m->parent, m->name, &a);
        if (rc == 0)
            return -EEXIST;
        if (rc != -ENOENT)
            return rc;
        rc = meta_new_file_layout(srv, txn, m->parent, &l);
        if (rc < 0)
            return rc;
    }
    rc = meta_store_mknod(txn, m->parent, m->name, type | (m->mode & 07777), m->uid, m->gid,
                          m->rdev, type == S_IFREG ? &l : NULL, &now, &a);
    if (rc < 0)
        return rc;
    return meta_reply_attr(&w->reply, &a);
}

const struct meta_wop_type meta_wop_mknod = {
    .name = "MKNOD",
    .msg_size = sizeof(struct ckpt_msg_mknod),
    .decode = mknod_decode,
    .apply = mknod_apply,
};

static int mkdir_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_mknod *m = w->msg;
    struct timespec now = meta_now();
    struct meta_attr a;
    int rc;

    if (meta_ckpt_immutable(srv, txn, m->parent))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    rc = meta_store_mkdir(txn, m->parent, m->name, m->mode & 07777, m->uid, m->gid, &now, &a);
    if (rc < 0)
        return rc;
    return meta_reply_attr(&w->reply, &a);
}

const struct meta_wop_type meta_wop_mkdir = {
    .name = "MKDIR",
    .msg_size = sizeof(struct ckpt_msg_mknod),
    .decode = mknod_decode,
    .apply = mkdir_apply,
};

static int name_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_name_decode(body, len, msg);
}

static int unlink_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_name *m = w->msg;
    struct timespec now = meta_now();
    uint64_t ino = 0;
    bool last = false;
    int rc = meta_store_unlink(txn, m->parent, m->name, &now, &ino, &last);

    if (rc == 0 && last)
        rc = meta_reap_if_unused(srv, txn, ino, w);
    return rc;
}

const struct meta_wop_type meta_wop_unlink = {
    .name = "UNLINK",
    .msg_size = sizeof(struct ckpt_msg_name),
    .decode = name_decode,
    .apply = unlink_apply,
};

static int rmdir_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_name *m = w->msg;
    struct timespec now = meta_now();
    uint64_t ino = 0;
    int rc = meta_store_rmdir(txn, m->parent, m->name, &now, &ino);

    if (rc == 0)
        rc = meta_reap_if_unused(srv, txn, ino, w);
    return rc;
}

const struct meta_wop_type meta_wop_rmdir = {
    .name = "RMDIR",
    .msg_size = sizeof(struct ckpt_msg_name),
    .decode = name_decode,
    .apply = rmdir_apply,
};

static int rename_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_rename_decode(body, len, msg);
}

static int rename_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_rename *m = w->msg;
    struct timespec now = meta_now();
    struct meta_rename_result res;
    if (meta_ckpt_immutable(srv, txn, m->oldparent) ||
        meta_ckpt_immutable(srv, txn, m->newparent))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    int rc = meta_store_rename(txn, m->oldparent, m->oldname, m->newparent, m->newname,
                               m->flags, &now, &res);

    if (rc == 0 && res.replaced_ino && res.replaced_last)
        rc = meta_reap_if_unused(srv, txn, res.replaced_ino, w);
    return rc;
}

const struct meta_wop_type meta_wop_rename = {
    .name = "RENAME",
    .msg_size = sizeof(struct ckpt_msg_rename),
    .decode = rename_decode,
    .apply = rename_apply,
};

static int link_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_link_decode(body, len, msg);
}

static int link_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_link *m = w->msg;
    struct timespec now = meta_now();
    struct meta_attr a;
    int rc;

    if (meta_ckpt_immutable(srv, txn, m->newparent))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    rc = meta_store_link(txn, m->ino, m->newparent, m->newname, &now, &a);
    if (rc < 0)
        return rc;
    return meta_reply_attr(&w->reply, &a);
}

const struct meta_wop_type meta_wop_link = {
    .name = "LINK",
    .msg_size = sizeof(struct ckpt_msg_link),
    .decode = link_decode,
    .apply = link_apply,
};

static int symlink_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_symlink_decode(body, len, msg);
}

static int symlink_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_symlink *m = w->msg;
    struct timespec now = meta_now();
    struct meta_attr a;
    int rc;

    if (meta_ckpt_immutable(srv, txn, m->parent))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    (void)srv;
    rc = meta_store_symlink(txn, m->parent, m->name, m->target, m->uid, m->gid, &now, &a);
    if (rc < 0)
        return rc;
    return meta_reply_attr(&w->reply, &a);
}

const struct meta_wop_type meta_wop_symlink = {
    .name = "SYMLINK",
    .msg_size = sizeof(struct ckpt_msg_symlink),
    .decode = symlink_decode,
    .apply = symlink_apply,
};

static int setxattr_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_setxattr_decode(body, len, msg);
}

static int setxattr_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_setxattr *m = w->msg;
    struct timespec now = meta_now();
    const char *why = NULL;
    int rc;

    (void)srv;
    if (xattr_internal(m->name))
        return -EPERM;
    rc = meta_store_xattr_set(txn, m->ino, m->name, m->value, m->value_len, (int)m->flags,
                              &now, &why);
    if (rc == -EINVAL && why)
        CKPT_LOG_WARN("inode %llu: refused %s: %s", (unsigned long long)m->ino, m->name, why);
    return rc;
}

const struct meta_wop_type meta_wop_setxattr = {
    .name = "SETXATTR",
    .msg_size = sizeof(struct ckpt_msg_setxattr),
    .decode = setxattr_decode,
    .apply = setxattr_apply,
};

static int xattr_name_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_xattr_name_decode(body, len, msg);
}

static int removexattr_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_xattr_name *m = w->msg;
    struct timespec now = meta_now();

    (void)srv;
    if (xattr_internal(m->name))
        return -EPERM;
    return meta_store_xattr_remove(txn, m->ino, m->name, &now);
}

const struct meta_wop_type meta_wop_removexattr = {
    .name = "REMOVEXATTR",
    .msg_size = sizeof(struct ckpt_msg_xattr_name),
    .decode = xattr_name_decode,
    .apply = removexattr_apply,
};

/* DEGRADED: dg.stripe, key ino + data_gen + stripe (big-endian), value
 * version byte + missing mask (le32, OR-ed over reports). */
static int degraded_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_degraded_decode(body, len, msg);
}

static void degraded_fini(struct meta_wop *w)
{
    ckpt_msg_degraded_free(w->msg);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static int degraded_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_degraded *m = w->msg;
    struct meta_attr a;
    int rc = meta_store_getattr(txn, m->ino, &a);

    if (rc < 0)
        return rc;
    if (!S_ISREG(a.mode))
        return -EINVAL;
    for (uint32_t i = 0; i < m->n; i++) {
        uint8_t kb[24], vb[5];
        MDB_val k = {sizeof(kb), kb}, v;
        uint32_t mask = m->stripes[i].missing_mask;
        put_be64(kb, m->ino);
        put_be64(kb + 8, m->data_gen);
        put_be64(kb + 16, m->stripes[i].stripe);
        rc = meta_store_errno(mdb_get(txn, srv->dbi_degraded, &k, &v));
        if (rc == 0 && v.mv_size == 5) {
            const uint8_t *p = v.mv_data;
            mask |= (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 |
                    (uint32_t)p[4] << 24;
        } else if (rc < 0 && rc != -ENOENT) {
            return rc;
        }
        vb[0] = 1;
        for (int b = 0; b < 4; b++)
            vb[1 + b] = (uint8_t)(mask >> (8 * b));
        v.mv_size = sizeof(vb);
        v.mv_data = vb;
        rc = meta_store_errno(mdb_put(txn, srv->dbi_degraded, &k, &v, 0));
        if (rc < 0)
            return rc;
    }
    if (m->n)
        CKPT_LOG_INFO("inode %llu gen %llu: %u degraded stripe(s) recorded for repair",
                      (unsigned long long)m->ino, (unsigned long long)m->data_gen, m->n);
    return 0;
}

const struct meta_wop_type meta_wop_degraded = {
    .name = "DEGRADED",
    .msg_size = sizeof(struct ckpt_msg_degraded),
    .decode = degraded_decode,
    .apply = degraded_apply,
    .fini = degraded_fini,
};

/* REAP (internal): destroy an orphan found at start-up if nobody holds it. */
static int reap_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    return meta_reap_if_unused(srv, txn, *(const uint64_t *)w->msg, w);
}

const struct meta_wop_type meta_wop_reap = {
    .name = "REAP",
    .msg_size = sizeof(uint64_t),
    .apply = reap_apply,
};

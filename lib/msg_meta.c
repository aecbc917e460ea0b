/*
 * msg_meta.c - codecs of the namespace and session messages (msg_meta.h).
 *
 * DESIGN: as msg_node.c.  Names are checked here (1..255 bytes, no '/'),
 * so no server handler ever sees a name the filesystem could not hold;
 * symlink targets may hold '/' but not be empty.
 */
#include "msg_meta.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "msg_cluster.h"

#define ATTR_WIRE 96

void ckpt_wr_attr(struct ckpt_wbuf *w, const struct ckpt_attr *a)
{
    ckpt_wr_u64(w, a->ino);
    ckpt_wr_u64(w, a->size);
    ckpt_wr_u64(w, a->generation);
    ckpt_wr_u64(w, a->data_gen);
    ckpt_wr_u32(w, a->mode);
    ckpt_wr_u32(w, a->uid);
    ckpt_wr_u32(w, a->gid);
    ckpt_wr_u32(w, a->nlink);
    ckpt_wr_u32(w, a->rdev);
    ckpt_wr_u32(w, a->flags);
    ckpt_wr_i64(w, a->atime_sec);
    ckpt_wr_i64(w, a->mtime_sec);
    ckpt_wr_i64(w, a->ctime_sec);
    ckpt_wr_u32(w, a->atime_nsec);
    ckpt_wr_u32(w, a->mtime_nsec);
    ckpt_wr_u32(w, a->ctime_nsec);
}

void ckpt_rd_attr(struct ckpt_rbuf *r, struct ckpt_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = ckpt_rd_u64(r);
    a->size = ckpt_rd_u64(r);
    a->generation = ckpt_rd_u64(r);
    a->data_gen = ckpt_rd_u64(r);
    a->mode = ckpt_rd_u32(r);
    a->uid = ckpt_rd_u32(r);
    a->gid = ckpt_rd_u32(r);
    a->nlink = ckpt_rd_u32(r);
    a->rdev = ckpt_rd_u32(r);
    a->flags = ckpt_rd_u32(r);
    a->atime_sec = ckpt_rd_i64(r);
    a->mtime_sec = ckpt_rd_i64(r);
    a->ctime_sec = ckpt_rd_i64(r);
    a->atime_nsec = ckpt_rd_u32(r);
    a->mtime_nsec = ckpt_rd_u32(r);
    a->ctime_nsec = ckpt_rd_u32(r);
    if (a->atime_nsec >= 1000000000u || a->mtime_nsec >= 1000000000u ||
        a->ctime_nsec >= 1000000000u || a->ino == 0)
        ckpt_rbuf_fail(r);
}

static void wr_name(struct ckpt_wbuf *w, const char *name)
{
    ckpt_wr_str(w, name, strlen(name));
}

/* A path component: 1..255 bytes, no '/', no NUL (ckpt_rd_str checks NUL). */
static void rd_name(struct ckpt_rbuf *r, char *dst, size_t cap)
{
    ckpt_rd_cstr(r, dst, cap);
    if (!r->err && (dst[0] == '\0' || strchr(dst, '/')))
        ckpt_rbuf_fail(r);
}

static int fail_inval(struct ckpt_wbuf *w)
{
    if (!w->err)
        w->err = -EINVAL;
    return w->err;
}

int ckpt_msg_name_encode(struct ckpt_wbuf *w, const struct ckpt_msg_name *m)
{
    ckpt_wr_u64(w, m->parent);
    wr_name(w, m->name);
    return w->err;
}

int ckpt_msg_name_decode(const void *body, size_t len, struct ckpt_msg_name *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->parent = ckpt_rd_u64(&r);
    rd_name(&r, out->name, sizeof(out->name));
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_ino_encode(struct ckpt_wbuf *w, const struct ckpt_msg_ino *m)
{
    ckpt_wr_u64(w, m->ino);
    return w->err;
}

int ckpt_msg_ino_decode(const void *body, size_t len, struct ckpt_msg_ino *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_attr_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_attr_resp *m)
{
    ckpt_wr_attr(w, &m->attr);
    return w->err;
}

int ckpt_msg_attr_resp_decode(const void *body, size_t len, struct ckpt_msg_attr_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    ckpt_rd_attr(&r, &out->attr);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_setattr_encode(struct ckpt_wbuf *w, const struct ckpt_msg_setattr *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u32(w, m->valid);
    ckpt_wr_u32(w, m->mode);
    ckpt_wr_u32(w, m->uid);
    ckpt_wr_u32(w, m->gid);
    ckpt_wr_u64(w, m->size);
    ckpt_wr_i64(w, m->atime_sec);
    ckpt_wr_i64(w, m->mtime_sec);
    ckpt_wr_u32(w, m->atime_nsec);
    ckpt_wr_u32(w, m->mtime_nsec);
    return w->err;
}

int ckpt_msg_setattr_decode(const void *body, size_t len, struct ckpt_msg_setattr *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->valid = ckpt_rd_u32(&r);
    out->mode = ckpt_rd_u32(&r);
    out->uid = ckpt_rd_u32(&r);
    out->gid = ckpt_rd_u32(&r);
    out->size = ckpt_rd_u64(&r);
    out->atime_sec = ckpt_rd_i64(&r);
    out->mtime_sec = ckpt_rd_i64(&r);
    out->atime_nsec = ckpt_rd_u32(&r);
    out->mtime_nsec = ckpt_rd_u32(&r);
    if ((out->valid & ~CKPT_SETATTR_KNOWN) || out->atime_nsec >= 1000000000u ||
        out->mtime_nsec >= 1000000000u || out->size > (uint64_t)INT64_MAX)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_mknod_encode(struct ckpt_wbuf *w, const struct ckpt_msg_mknod *m)
{
    ckpt_wr_u64(w, m->parent);
    wr_name(w, m->name);
    ckpt_wr_u32(w, m->mode);
    ckpt_wr_u32(w, m->uid);
    ckpt_wr_u32(w, m->gid);
    ckpt_wr_u32(w, m->rdev);
    return w->err;
}

int ckpt_msg_mknod_decode(const void *body, size_t len, struct ckpt_msg_mknod *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->parent = ckpt_rd_u64(&r);
    rd_name(&r, out->name, sizeof(out->name));
    out->mode = ckpt_rd_u32(&r);
    out->uid = ckpt_rd_u32(&r);
    out->gid = ckpt_rd_u32(&r);
    out->rdev = ckpt_rd_u32(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_link_encode(struct ckpt_wbuf *w, const struct ckpt_msg_link *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u64(w, m->newparent);
    wr_name(w, m->newname);
    return w->err;
}

int ckpt_msg_link_decode(const void *body, size_t len, struct ckpt_msg_link *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->newparent = ckpt_rd_u64(&r);
    rd_name(&r, out->newname, sizeof(out->newname));
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_symlink_encode(struct ckpt_wbuf *w, const struct ckpt_msg_symlink *m)
{
    ckpt_wr_u64(w, m->parent);
    wr_name(w, m->name);
    ckpt_wr_str(w, m->target, strlen(m->target));
    ckpt_wr_u32(w, m->uid);
    ckpt_wr_u32(w, m->gid);
    return w->err;
}

int ckpt_msg_symlink_decode(const void *body, size_t len, struct ckpt_msg_symlink *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->parent = ckpt_rd_u64(&r);
    rd_name(&r, out->name, sizeof(out->name));
    ckpt_rd_cstr(&r, out->target, sizeof(out->target));
    out->uid = ckpt_rd_u32(&r);
    out->gid = ckpt_rd_u32(&r);
    if (!r.err && out->target[0] == '\0')
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_readlink_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_readlink_resp *m)
{
    ckpt_wr_str(w, m->target, strlen(m->target));
    return w->err;
}

int ckpt_msg_readlink_resp_decode(const void *body, size_t len,
                                  struct ckpt_msg_readlink_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    ckpt_rd_cstr(&r, out->target, sizeof(out->target));
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_rename_encode(struct ckpt_wbuf *w, const struct ckpt_msg_rename *m)
{
    ckpt_wr_u64(w, m->oldparent);
    wr_name(w, m->oldname);
    ckpt_wr_u64(w, m->newparent);
    wr_name(w, m->newname);
    ckpt_wr_u32(w, m->flags);
    return w->err;
}

int ckpt_msg_rename_decode(const void *body, size_t len, struct ckpt_msg_rename *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->oldparent = ckpt_rd_u64(&r);
    rd_name(&r, out->oldname, sizeof(out->oldname));
    out->newparent = ckpt_rd_u64(&r);
    rd_name(&r, out->newname, sizeof(out->newname));
    out->flags = ckpt_rd_u32(&r);
    if (out->flags & ~(CKPT_RENAME_NOREPLACE | CKPT_RENAME_EXCHANGE) ||
        out->flags == (CKPT_RENAME_NOREPLACE | CKPT_RENAME_EXCHANGE))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_readdir_encode(struct ckpt_wbuf *w, const struct ckpt_msg_readdir *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u64(w, m->cookie);
    ckpt_wr_u32(w, m->max);
    ckpt_wr_u8(w, m->plus ? 1 : 0);
    return w->err;
}

int ckpt_msg_readdir_decode(const void *body, size_t len, struct ckpt_msg_readdir *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->cookie = ckpt_rd_u64(&r);
    out->max = ckpt_rd_u32(&r);
    out->plus = ckpt_rd_u8(&r);
    if (out->max == 0 || out->max > CKPT_READDIR_MAX || out->plus > 1)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_readdir_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_readdir_resp *m)
{
    if (m->n > CKPT_READDIR_MAX)
        return fail_inval(w);
    ckpt_wr_u8(w, m->eof ? 1 : 0);
    ckpt_wr_u8(w, m->plus ? 1 : 0);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        const struct ckpt_dirent *e = &m->ents[i];
        ckpt_wr_u64(w, e->ino);
        ckpt_wr_u64(w, e->next_cookie);
        ckpt_wr_u32(w, e->type);
        wr_name(w, e->name);
        if (m->plus)
            ckpt_wr_attr(w, &e->attr);
    }
    return w->err;
}

int ckpt_msg_readdir_resp_decode(const void *body, size_t len, struct ckpt_msg_readdir_resp *out)
{
    struct ckpt_rbuf r;
    memset(out, 0, sizeof(*out));
    ckpt_rbuf_init(&r, body, len);
    out->eof = ckpt_rd_u8(&r);
    out->plus = ckpt_rd_u8(&r);
    uint32_t n = ckpt_rd_count(&r, CKPT_READDIR_MAX, 23);
    if (out->eof > 1 || out->plus > 1)
        ckpt_rbuf_fail(&r);
    if (r.err)
        return r.err;
    if (n && !(out->ents = ckpt_calloc(n, sizeof(*out->ents))))
        return -ENOMEM;
    out->n = n;
    for (uint32_t i = 0; i < n && !r.err; i++) {
        struct ckpt_dirent *e = &out->ents[i];
        e->ino = ckpt_rd_u64(&r);
        e->next_cookie = ckpt_rd_u64(&r);
        e->type = ckpt_rd_u32(&r);
        rd_name(&r, e->name, sizeof(e->name));
        if (out->plus)
            ckpt_rd_attr(&r, &e->attr);
        if (e->type > 15 || e->ino == 0)
            ckpt_rbuf_fail(&r);
    }
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0)
        ckpt_msg_readdir_resp_free(out);
    return rc;
}

void ckpt_msg_readdir_resp_free(struct ckpt_msg_readdir_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->ents);
    m->n = 0;
}

int ckpt_msg_statfs_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_statfs_resp *m)
{
    ckpt_wr_u32(w, m->bsize);
    ckpt_wr_u64(w, m->blocks);
    ckpt_wr_u64(w, m->bfree);
    ckpt_wr_u64(w, m->bavail);
    ckpt_wr_u64(w, m->files);
    ckpt_wr_u64(w, m->ffree);
    ckpt_wr_u32(w, m->namemax);
    return w->err;
}

int ckpt_msg_statfs_resp_decode(const void *body, size_t len, struct ckpt_msg_statfs_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->bsize = ckpt_rd_u32(&r);
    out->blocks = ckpt_rd_u64(&r);
    out->bfree = ckpt_rd_u64(&r);
    out->bavail = ckpt_rd_u64(&r);
    out->files = ckpt_rd_u64(&r);
    out->ffree = ckpt_rd_u64(&r);
    out->namemax = ckpt_rd_u32(&r);
    if (out->bsize == 0 || out->bfree > out->blocks || out->bavail > out->blocks)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

static void rd_xattr_name(struct ckpt_rbuf *r, char *dst, size_t cap)
{
    ckpt_rd_cstr(r, dst, cap);
    if (!r->err && dst[0] == '\0')
        ckpt_rbuf_fail(r);
}

int ckpt_msg_setxattr_encode(struct ckpt_wbuf *w, const struct ckpt_msg_setxattr *m)
{
    if (m->value_len > CKPT_XATTR_VALUE_MAX)
        return fail_inval(w);
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_str(w, m->name, strlen(m->name));
    ckpt_wr_u32(w, m->flags);
    ckpt_wr_blob(w, m->value, m->value_len);
    return w->err;
}

int ckpt_msg_setxattr_decode(const void *body, size_t len, struct ckpt_msg_setxattr *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    rd_xattr_name(&r, out->name, sizeof(out->name));
    out->flags = ckpt_rd_u32(&r);
    out->value = ckpt_rd_blob(&r, CKPT_XATTR_VALUE_MAX, &out->value_len);
    if (out->flags & ~(CKPT_XATTR_CREATE | CKPT_XATTR_REPLACE) ||
        out->flags == (CKPT_XATTR_CREATE | CKPT_XATTR_REPLACE))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_xattr_name_encode(struct ckpt_wbuf *w, const struct ckpt_msg_xattr_name *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_str(w, m->name, strlen(m->name));
    return w->err;
}

int ckpt_msg_xattr_name_decode(const void *body, size_t len, struct ckpt_msg_xattr_name *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    rd_xattr_name(&r, out->name, sizeof(out->name));
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_xattr_value_encode(struct ckpt_wbuf *w, const struct ckpt_msg_xattr_value *m)
{
    if (m->len > CKPT_XATTR_VALUE_MAX * 4)
        return fail_inval(w);
    ckpt_wr_blob(w, m->data, m->len);
    return w->err;
}

int ckpt_msg_xattr_value_decode(const void *body, size_t len, struct ckpt_msg_xattr_value *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->data = ckpt_rd_blob(&r, CKPT_XATTR_VALUE_MAX * 4, &out->len);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_session_encode(struct ckpt_wbuf *w, const struct ckpt_msg_session *m)
{
    ckpt_wr_u64(w, m->session);
    ckpt_wr_str(w, m->name, strlen(m->name));
    return w->err;
}

int ckpt_msg_session_decode(const void *body, size_t len, struct ckpt_msg_session *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->session = ckpt_rd_u64(&r);
    ckpt_rd_cstr(&r, out->name, sizeof(out->name));
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_session_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_session_resp *m)
{
    ckpt_wr_u64(w, m->session);
    ckpt_wr_u32(w, m->lease_ms);
    return w->err;
}

int ckpt_msg_session_resp_decode(const void *body, size_t len, struct ckpt_msg_session_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->session = ckpt_rd_u64(&r);
    out->lease_ms = ckpt_rd_u32(&r);
    if (out->session == 0 || out->lease_ms < 100 || out->lease_ms > 3600000)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_open_encode(struct ckpt_wbuf *w, const struct ckpt_msg_open *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u32(w, m->flags);
    ckpt_wr_u64(w, m->session);
    return w->err;
}

int ckpt_msg_open_decode(const void *body, size_t len, struct ckpt_msg_open *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->flags = ckpt_rd_u32(&r);
    out->session = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_create_encode(struct ckpt_wbuf *w, const struct ckpt_msg_create *m)
{
    ckpt_wr_u64(w, m->parent);
    wr_name(w, m->name);
    ckpt_wr_u32(w, m->mode);
    ckpt_wr_u32(w, m->uid);
    ckpt_wr_u32(w, m->gid);
    ckpt_wr_u32(w, m->flags);
    ckpt_wr_u64(w, m->session);
    return w->err;
}

int ckpt_msg_create_decode(const void *body, size_t len, struct ckpt_msg_create *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->parent = ckpt_rd_u64(&r);
    rd_name(&r, out->name, sizeof(out->name));
    out->mode = ckpt_rd_u32(&r);
    out->uid = ckpt_rd_u32(&r);
    out->gid = ckpt_rd_u32(&r);
    out->flags = ckpt_rd_u32(&r);
    out->session = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_open_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_open_resp *m)
{
    ckpt_wr_attr(w, &m->attr);
    ckpt_wr_u8(w, m->layout.k ? 1 : 0);
    if (m->layout.k)
        ckpt_wr_layout(w, &m->layout);
    ckpt_wr_u64(w, m->handle);
    return w->err;
}

int ckpt_msg_open_resp_decode(const void *body, size_t len, struct ckpt_msg_open_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    ckpt_rd_attr(&r, &out->attr);
    uint8_t has_layout = ckpt_rd_u8(&r);
    memset(&out->layout, 0, sizeof(out->layout));
    if (has_layout > 1)
        ckpt_rbuf_fail(&r);
    else if (has_layout)
        ckpt_rd_layout(&r, &out->layout);
    out->handle = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_release_encode(struct ckpt_wbuf *w, const struct ckpt_msg_release *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u64(w, m->handle);
    ckpt_wr_u64(w, m->session);
    ckpt_wr_u8(w, (uint8_t)((m->wrote ? 1 : 0) | (m->wrote && m->lost ? 2 : 0)));
    ckpt_wr_u8(w, m->has_checksum ? 1 : 0);
    ckpt_wr_u64(w, m->size);
    ckpt_wr_i64(w, m->mtime_sec);
    ckpt_wr_u32(w, m->mtime_nsec);
    ckpt_wr_u32(w, m->checksum);
    return w->err;
}

int ckpt_msg_release_decode(const void *body, size_t len, struct ckpt_msg_release *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->handle = ckpt_rd_u64(&r);
    out->session = ckpt_rd_u64(&r);
    uint8_t wrote = ckpt_rd_u8(&r);
    out->wrote = wrote & 1;
    out->lost = (wrote >> 1) & 1;
    out->has_checksum = ckpt_rd_u8(&r);
    out->size = ckpt_rd_u64(&r);
    out->mtime_sec = ckpt_rd_i64(&r);
    out->mtime_nsec = ckpt_rd_u32(&r);
    out->checksum = ckpt_rd_u32(&r);
    if (wrote > 3 || wrote == 2 || out->has_checksum > 1 || out->mtime_nsec >= 1000000000u ||
        out->size > (uint64_t)INT64_MAX)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_degraded_encode(struct ckpt_wbuf *w, const struct ckpt_msg_degraded *m)
{
    if (m->n > CKPT_DEGRADED_MAX)
        return fail_inval(w);
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u64(w, m->data_gen);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        ckpt_wr_u64(w, m->stripes[i].stripe);
        ckpt_wr_u32(w, m->stripes[i].missing_mask);
    }
    return w->err;
}

int ckpt_msg_degraded_decode(const void *body, size_t len, struct ckpt_msg_degraded *out)
{
    struct ckpt_rbuf r;
    memset(out, 0, sizeof(*out));
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->data_gen = ckpt_rd_u64(&r);
    uint32_t n = ckpt_rd_count(&r, CKPT_DEGRADED_MAX, 12);
    if (r.err)
        return r.err;
    if (n && !(out->stripes = ckpt_calloc(n, sizeof(*out->stripes))))
        return -ENOMEM;
    out->n = n;
    for (uint32_t i = 0; i < n && !r.err; i++) {
        out->stripes[i].stripe = ckpt_rd_u64(&r);
        out->stripes[i].missing_mask = ckpt_rd_u32(&r);
        if (out->stripes[i].missing_mask == 0 ||
            out->stripes[i].missing_mask >= (1u << CKPT_CHUNK_MAX_INDEX))
            ckpt_rbuf_fail(&r);
    }
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0)
        ckpt_msg_degraded_free(out);
    return rc;
}

void ckpt_msg_degraded_free(struct ckpt_msg_degraded *m)
{
    if (!m)
        return;
    CKPT_FREE(m->stripes);
    m->n = 0;
}

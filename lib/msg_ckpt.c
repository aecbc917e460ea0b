/*
 * msg_ckpt.c - codecs of the checkpoint messages (msg_ckpt.h).
 *
 * DESIGN
 *   Hand-written field-by-field codecs over proto.h's wbuf/rbuf (sticky
 *   errors: one check at the end).  Every count is bounded by the message
 *   limit and by the bytes left (ckpt_rd_count), every enum by its range,
 *   names by CKPT_PROTO_MAX_NAME (one component, no '/'), manifest paths by
 *   CKPT_PROTO_MAX_PATH (relative: never absolute, never a ".." or empty
 *   component), so a hostile reply cannot make the tool write outside the
 *   directory it restores into.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "msg_ckpt.h"

const char *ckpt_ckpt_state_name(uint32_t s)
{
    switch (s) {
    case CKPT_CKPT_WRITING:
        return "WRITING";
    case CKPT_CKPT_COMMITTED:
        return "COMMITTED";
    default:
        return "?";
    }
}

const char *ckpt_ckpt_health_name(uint32_t h)
{
    switch (h) {
    case CKPT_HEALTH_PROTECTED:
        return "PROTECTED";
    case CKPT_HEALTH_DEGRADED:
        return "DEGRADED";
    case CKPT_HEALTH_LOST:
        return "LOST";
    default:
        return "?";
    }
}

/* A relative path of components that are neither empty, "." nor "..". */
static bool path_ok(const char *p)
{
    if (!*p || *p == '/')
        return false;
    for (const char *s = p;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || n > CKPT_PROTO_MAX_NAME || (n == 1 && s[0] == '.') ||
            (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        if (!e)
            return true;
        s = e + 1;
    }
}

void ckpt_wr_ckpt_info(struct ckpt_wbuf *w, const struct ckpt_ckpt_info *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_str(w, m->name, strlen(m->name));
    ckpt_wr_u32(w, m->state);
    ckpt_wr_u32(w, m->health);
    ckpt_wr_u64(w, m->files);
    ckpt_wr_u64(w, m->bytes);
    ckpt_wr_i64(w, m->written_at);
    ckpt_wr_i64(w, m->committed_at);
    ckpt_wr_u32(w, m->degraded_stripes);
    ckpt_wr_u32(w, m->lost_stripes);
}

void ckpt_rd_ckpt_info(struct ckpt_rbuf *r, struct ckpt_ckpt_info *out)
{
    out->ino = ckpt_rd_u64(r);
    ckpt_rd_cstr(r, out->name, sizeof(out->name));
    out->state = ckpt_rd_enum(r, CKPT_CKPT_STATE_COUNT);
    out->health = ckpt_rd_enum(r, CKPT_HEALTH_COUNT);
    out->files = ckpt_rd_u64(r);
    out->bytes = ckpt_rd_u64(r);
    out->written_at = ckpt_rd_i64(r);
    out->committed_at = ckpt_rd_i64(r);
    out->degraded_stripes = ckpt_rd_u32(r);
    out->lost_stripes = ckpt_rd_u32(r);
    if (!r->err && (out->ino == 0 || strchr(out->name, '/')))
        ckpt_rbuf_fail(r);
}

int ckpt_msg_ckpt_commit_encode(struct ckpt_wbuf *w, const struct ckpt_msg_ckpt_commit *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u32(w, m->timeout_ms);
    ckpt_wr_u32(w, m->flags);
    return w->err;
}

int ckpt_msg_ckpt_commit_decode(const void *body, size_t len, struct ckpt_msg_ckpt_commit *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->timeout_ms = ckpt_rd_u32(&r);
    out->flags = ckpt_rd_u32(&r);
    if (!r.err && (out->ino == 0 || (out->flags & ~CKPT_COMMIT_F_KNOWN)))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_ckpt_info_encode(struct ckpt_wbuf *w, const struct ckpt_ckpt_info *m)
{
    ckpt_wr_ckpt_info(w, m);
    return w->err;
}

int ckpt_msg_ckpt_info_decode(const void *body, size_t len, struct ckpt_ckpt_info *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    ckpt_rd_ckpt_info(&r, out);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_ckpt_list_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_ckpt_list_resp *m)
{
    if (m->n > CKPT_CKPT_LIST_MAX)
        return -EINVAL;
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++)
        ckpt_wr_ckpt_info(w, &m->v[i]);
    return w->err;
}

int ckpt_msg_ckpt_list_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_ckpt_list_resp *out)
{
    struct ckpt_rbuf r;
    memset(out, 0, sizeof(*out));
    ckpt_rbuf_init(&r, body, len);
    uint32_t n = ckpt_rd_count(&r, CKPT_CKPT_LIST_MAX, 58);
    if (r.err)
        return r.err;
    if (n && !(out->v = ckpt_calloc(n, sizeof(*out->v))))
        return -ENOMEM;
    out->n = n;
    for (uint32_t i = 0; i < n && !r.err; i++)
        ckpt_rd_ckpt_info(&r, &out->v[i]);
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0)
        ckpt_msg_ckpt_list_resp_free(out);
    return rc;
}

void ckpt_msg_ckpt_list_resp_free(struct ckpt_msg_ckpt_list_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->v);
    m->n = 0;
}

int ckpt_msg_manifest_encode(struct ckpt_wbuf *w, const struct ckpt_msg_manifest *m)
{
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u64(w, m->cookie);
    ckpt_wr_u32(w, m->max);
    return w->err;
}

int ckpt_msg_manifest_decode(const void *body, size_t len, struct ckpt_msg_manifest *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->ino = ckpt_rd_u64(&r);
    out->cookie = ckpt_rd_u64(&r);
    out->max = ckpt_rd_u32(&r);
    if (!r.err && (out->ino == 0 || out->max == 0 || out->max > CKPT_MANIFEST_MAX))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

void ckpt_wr_manifest_ent(struct ckpt_wbuf *w, const struct ckpt_manifest_ent *e)
{
    ckpt_wr_u64(w, e->seq);
    ckpt_wr_u64(w, e->ino);
    ckpt_wr_u64(w, e->size);
    ckpt_wr_u32(w, e->checksum);
    ckpt_wr_u8(w, e->has_checksum);
    ckpt_wr_str(w, e->path, strlen(e->path));
}

int ckpt_msg_manifest_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_manifest_resp *m)
{
    if (m->n > CKPT_MANIFEST_MAX)
        return -EINVAL;
    ckpt_wr_u8(w, m->eof);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++)
        ckpt_wr_manifest_ent(w, &m->v[i]);
    return w->err;
}

int ckpt_msg_manifest_resp_decode(const void *body, size_t len,
                                  struct ckpt_msg_manifest_resp *out)
{
    struct ckpt_rbuf r;
    memset(out, 0, sizeof(*out));
    ckpt_rbuf_init(&r, body, len);
    out->eof = ckpt_rd_u8(&r);
    uint32_t n = ckpt_rd_count(&r, CKPT_MANIFEST_MAX, 32);
    if (out->eof > 1)
        ckpt_rbuf_fail(&r);
    if (r.err)
        return r.err;
    if (n && !(out->v = ckpt_calloc(n, sizeof(*out->v))))
        return -ENOMEM;
    out->n = n;
    for (uint32_t i = 0; i < n && !r.err; i++) {
        struct ckpt_manifest_ent *e = &out->v[i];
        e->seq = ckpt_rd_u64(&r);
        e->ino = ckpt_rd_u64(&r);
        e->size = ckpt_rd_u64(&r);
        e->checksum = ckpt_rd_u32(&r);
        e->has_checksum = ckpt_rd_u8(&r);
        ckpt_rd_cstr(&r, e->path, sizeof(e->path));
        if (!r.err && (e->has_checksum > 1 || e->ino == 0 || !path_ok(e->path)))
            ckpt_rbuf_fail(&r);
    }
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0)
        ckpt_msg_manifest_resp_free(out);
    return rc;
}

void ckpt_msg_manifest_resp_free(struct ckpt_msg_manifest_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->v);
    m->n = 0;
    m->eof = 0;
}

/*
 * msg_node.c - codecs of the chunk service messages (msg_node.h).
 *
 * DESIGN: one encoder and one decoder per message, straight lists of field
 * calls on the sticky-error buffers of proto.h.  Every decoder ends with
 * ckpt_rbuf_end() (no trailing bytes) after checking each field's bounds.
 */
#include "msg_node.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

static void wr_key(struct ckpt_wbuf *w, const struct ckpt_chunk_key *k)
{
    ckpt_wr_u64(w, k->ino);
    ckpt_wr_u64(w, k->stripe);
    ckpt_wr_u16(w, k->index);
}

static void rd_key(struct ckpt_rbuf *r, struct ckpt_chunk_key *k)
{
    k->ino = ckpt_rd_u64(r);
    k->stripe = ckpt_rd_u64(r);
    k->index = ckpt_rd_u16(r);
    if (k->index >= CKPT_CHUNK_MAX_INDEX)
        ckpt_rbuf_fail(r);
}

int ckpt_msg_chunk_write_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_write *m)
{
    ckpt_wr_u32(w, m->target);
    wr_key(w, &m->key);
    ckpt_wr_u64(w, m->gen);
    ckpt_wr_u32(w, m->len);
    ckpt_wr_u32(w, m->crc);
    ckpt_wr_u32(w, m->flags);
    return w->err;
}

int ckpt_msg_chunk_write_decode(const void *body, size_t len, struct ckpt_msg_chunk_write *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->target = ckpt_rd_u32(&r);
    rd_key(&r, &out->key);
    out->gen = ckpt_rd_u64(&r);
    out->len = ckpt_rd_u32(&r);
    out->crc = ckpt_rd_u32(&r);
    out->flags = ckpt_rd_u32(&r);
    if (out->len > CKPT_CHUNK_MAX_LEN || (out->flags & ~CKPT_CHUNK_F_KNOWN))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_read_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_read *m)
{
    ckpt_wr_u32(w, m->target);
    wr_key(w, &m->key);
    ckpt_wr_u32(w, m->offset);
    ckpt_wr_u32(w, m->len);
    ckpt_wr_u64(w, m->min_gen);
    return w->err;
}

int ckpt_msg_chunk_read_decode(const void *body, size_t len, struct ckpt_msg_chunk_read *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->target = ckpt_rd_u32(&r);
    rd_key(&r, &out->key);
    out->offset = ckpt_rd_u32(&r);
    out->len = ckpt_rd_u32(&r);
    out->min_gen = ckpt_rd_u64(&r);
    if (out->offset > CKPT_CHUNK_MAX_LEN || out->len > CKPT_CHUNK_MAX_LEN)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_read_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_read_resp *m)
{
    ckpt_wr_u64(w, m->gen);
    ckpt_wr_u32(w, m->chunk_len);
    ckpt_wr_u32(w, m->crc);
    return w->err;
}

int ckpt_msg_chunk_read_resp_decode(const void *body, size_t len,
                                    struct ckpt_msg_chunk_read_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->gen = ckpt_rd_u64(&r);
    out->chunk_len = ckpt_rd_u32(&r);
    out->crc = ckpt_rd_u32(&r);
    if (out->chunk_len > CKPT_CHUNK_MAX_LEN)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_locate_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_locate *m)
{
    ckpt_wr_u32(w, m->target);
    wr_key(w, &m->key);
    ckpt_wr_u64(w, m->min_gen);
    ckpt_wr_bytes(w, m->host, sizeof(m->host));
    return w->err;
}

int ckpt_msg_chunk_locate_decode(const void *body, size_t len, struct ckpt_msg_chunk_locate *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->target = ckpt_rd_u32(&r);
    rd_key(&r, &out->key);
    out->min_gen = ckpt_rd_u64(&r);
    const uint8_t *h = ckpt_rd_bytes(&r, sizeof(out->host));
    if (h)
        memcpy(out->host, h, sizeof(out->host));
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_locate_resp_encode(struct ckpt_wbuf *w,
                                      const struct ckpt_msg_chunk_locate_resp *m)
{
    size_t n = strnlen(m->path, sizeof(m->path));
    if (n == 0 || n >= sizeof(m->path) || m->path[0] != '/')
        return w->err ? w->err : -EINVAL;
    ckpt_wr_u64(w, m->gen);
    ckpt_wr_u32(w, m->chunk_len);
    ckpt_wr_u32(w, m->crc);
    ckpt_wr_u64(w, m->data_off);
    ckpt_wr_u64(w, m->dev);
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_str(w, m->path, n);
    return w->err;
}

int ckpt_msg_chunk_locate_resp_decode(const void *body, size_t len,
                                      struct ckpt_msg_chunk_locate_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->gen = ckpt_rd_u64(&r);
    out->chunk_len = ckpt_rd_u32(&r);
    out->crc = ckpt_rd_u32(&r);
    out->data_off = ckpt_rd_u64(&r);
    out->dev = ckpt_rd_u64(&r);
    out->ino = ckpt_rd_u64(&r);
    ckpt_rd_cstr(&r, out->path, sizeof(out->path));
    if (out->chunk_len > CKPT_CHUNK_MAX_LEN || out->data_off > (1ull << 40) ||
        (r.err == 0 && out->path[0] != '/'))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_delete_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_delete *m)
{
    ckpt_wr_u32(w, m->target);
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u64(w, m->from_stripe);
    ckpt_wr_u64(w, m->below_gen);
    return w->err;
}

int ckpt_msg_chunk_delete_decode(const void *body, size_t len, struct ckpt_msg_chunk_delete *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->target = ckpt_rd_u32(&r);
    out->ino = ckpt_rd_u64(&r);
    out->from_stripe = ckpt_rd_u64(&r);
    out->below_gen = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_delete_resp_encode(struct ckpt_wbuf *w,
                                      const struct ckpt_msg_chunk_delete_resp *m)
{
    ckpt_wr_u32(w, m->deleted);
    return w->err;
}

int ckpt_msg_chunk_delete_resp_decode(const void *body, size_t len,
                                      struct ckpt_msg_chunk_delete_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->deleted = ckpt_rd_u32(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_sync_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_sync *m)
{
    if (m->n > CKPT_SYNC_MAX_INOS) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->target);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++)
        ckpt_wr_u64(w, m->inos[i]);
    return w->err;
}

int ckpt_msg_chunk_sync_decode(const void *body, size_t len, struct ckpt_msg_chunk_sync *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->target = ckpt_rd_u32(&r);
    out->n = ckpt_rd_count(&r, CKPT_SYNC_MAX_INOS, 8);
    for (uint32_t i = 0; i < out->n && !r.err; i++)
        out->inos[i] = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_target_stats_resp_encode(struct ckpt_wbuf *w,
                                      const struct ckpt_msg_target_stats_resp *m)
{
    if (m->n > CKPT_NODE_MAX_TARGETS) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        ckpt_wr_u32(w, m->t[i].id);
        ckpt_wr_u32(w, m->t[i].flags);
        ckpt_wr_u64(w, m->t[i].capacity);
        ckpt_wr_u64(w, m->t[i].free);
        ckpt_wr_u64(w, m->t[i].used);
        ckpt_wr_u64(w, m->t[i].chunks);
    }
    return w->err;
}

int ckpt_msg_target_stats_resp_decode(const void *body, size_t len,
                                      struct ckpt_msg_target_stats_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->n = ckpt_rd_count(&r, CKPT_NODE_MAX_TARGETS, 40);
    for (uint32_t i = 0; i < out->n && !r.err; i++) {
        out->t[i].id = ckpt_rd_u32(&r);
        out->t[i].flags = ckpt_rd_u32(&r);
        out->t[i].capacity = ckpt_rd_u64(&r);
        out->t[i].free = ckpt_rd_u64(&r);
        out->t[i].used = ckpt_rd_u64(&r);
        out->t[i].chunks = ckpt_rd_u64(&r);
    }
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_chunk_list_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_list *m)
{
    ckpt_wr_u32(w, m->target);
    wr_key(w, &m->after);
    ckpt_wr_u8(w, m->has_after ? 1 : 0);
    ckpt_wr_u32(w, m->max);
    return w->err;
}

int ckpt_msg_chunk_list_decode(const void *body, size_t len, struct ckpt_msg_chunk_list *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->target = ckpt_rd_u32(&r);
    rd_key(&r, &out->after);
    out->has_after = ckpt_rd_u8(&r);
    out->max = ckpt_rd_u32(&r);
    if (out->has_after > 1 || out->max == 0 || out->max > CKPT_CHUNK_LIST_MAX)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

#define CHUNK_ENTRY_WIRE 30 /* key 18 + gen 8 + len 4 */

int ckpt_msg_chunk_list_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_list_resp *m)
{
    if (m->n > CKPT_CHUNK_LIST_MAX) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->n);
    ckpt_wr_u8(w, m->more ? 1 : 0);
    for (uint32_t i = 0; i < m->n; i++) {
        wr_key(w, &m->entries[i].key);
        ckpt_wr_u64(w, m->entries[i].gen);
        ckpt_wr_u32(w, m->entries[i].len);
    }
    return w->err;
}

int ckpt_msg_chunk_list_resp_decode(const void *body, size_t len,
                                    struct ckpt_msg_chunk_list_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    memset(out, 0, sizeof(*out));
    uint32_t n = ckpt_rd_count(&r, CKPT_CHUNK_LIST_MAX, CHUNK_ENTRY_WIRE);
    out->more = ckpt_rd_u8(&r);
    if (out->more > 1)
        ckpt_rbuf_fail(&r);
    if (r.err)
        return r.err;
    if (n) {
        out->entries = ckpt_calloc(n, sizeof(*out->entries));
        if (!out->entries)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < n && !r.err; i++) {
        rd_key(&r, &out->entries[i].key);
        out->entries[i].gen = ckpt_rd_u64(&r);
        out->entries[i].len = ckpt_rd_u32(&r);
        if (out->entries[i].len > CKPT_CHUNK_MAX_LEN)
            ckpt_rbuf_fail(&r);
    }
    out->n = n;
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0)
        ckpt_msg_chunk_list_resp_free(out);
    return rc;
}

void ckpt_msg_chunk_list_resp_free(struct ckpt_msg_chunk_list_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->entries);
    m->n = 0;
}

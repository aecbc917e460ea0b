/*
 * proto.c - see proto.h.
 *
 * DESIGN: all multi-byte fields are written and read with explicit shifts
 * (little endian on the wire whatever the host), never by memcpy of a
 * struct, so padding and host order can never leak onto the wire.  The
 * codec buffers have sticky errors: a decoder is a list of reads followed by
 * one ckpt_rbuf_end(), and every read past the end returns 0 and leaves the
 * buffer failed.  Nothing here allocates except ckpt_wbuf growth.
 */
#include "proto.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "crc.h"
#include "err.h"

_Static_assert(CKPT_HDR_SIZE == 40, "header layout is part of the protocol");

static const struct {
    uint16_t op;
    const char *name;
} op_names[] = {
#define CKPT_OP_NAME(name, val, desc) {(val), #name},
    CKPT_OPS(CKPT_OP_NAME)
#undef CKPT_OP_NAME
};

const char *ckpt_op_name(uint16_t op)
{
    for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
        if (op_names[i].op == op)
            return op_names[i].name;
    return NULL;
}

bool ckpt_op_known(uint16_t op)
{
    return ckpt_op_name(op) != NULL;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static uint32_t hdr_crc(const uint8_t *h, const void *body, uint32_t body_len)
{
    uint32_t crc = ckpt_crc32c(0, h, 36);
    if (body_len)
        crc = ckpt_crc32c(crc, body, body_len);
    return crc;
}

void ckpt_hdr_encode(uint8_t dst[CKPT_HDR_SIZE], const struct ckpt_hdr *hdr,
                     const void *body, uint32_t body_len)
{
    put32(dst + 0, CKPT_PROTO_MAGIC);
    put16(dst + 4, CKPT_PROTO_VERSION);
    put16(dst + 6, hdr->opcode);
    put32(dst + 8, hdr->flags);
    put32(dst + 12, (uint32_t)hdr->status);
    put64(dst + 16, hdr->req_id);
    put32(dst + 24, body_len);
    put32(dst + 28, hdr->bulk_len);
    put32(dst + 32, 0);
    put32(dst + 36, hdr_crc(dst, body, body_len));
}

int ckpt_hdr_decode(const uint8_t src[CKPT_HDR_SIZE], struct ckpt_hdr *out)
{
    if (get32(src) != CKPT_PROTO_MAGIC)
        return CKPT_E_PROTO;
    out->version = get16(src + 4);
    if (out->version != CKPT_PROTO_VERSION)
        return CKPT_E_VERSION;
    out->opcode = get16(src + 6);
    out->flags = get32(src + 8);
    out->status = (int32_t)get32(src + 12);
    out->req_id = get64(src + 16);
    out->body_len = get32(src + 24);
    out->bulk_len = get32(src + 28);
    if (out->flags & ~CKPT_MSG_F_KNOWN)
        return CKPT_E_PROTO;
    if (get32(src + 32) != 0)
        return CKPT_E_PROTO;
    if (out->body_len > CKPT_PROTO_MAX_BODY || out->bulk_len > CKPT_PROTO_MAX_BULK)
        return CKPT_E_PROTO;
    if (!ckpt_op_known(out->opcode))
        return CKPT_E_PROTO;
    if (!(out->flags & CKPT_MSG_F_RESPONSE) && out->status != 0)
        return CKPT_E_PROTO;
    return 0;
}

int ckpt_hdr_verify(const uint8_t src[CKPT_HDR_SIZE], const void *body,
                    uint32_t body_len)
{
    return hdr_crc(src, body, body_len) == get32(src + 36) ? 0 : CKPT_E_CRC;
}

/* ---- encoder ---------------------------------------------------------- */

void ckpt_wbuf_init(struct ckpt_wbuf *w, void *storage, size_t cap)
{
    w->p = storage;
    w->len = 0;
    w->cap = storage ? cap : 0;
    w->err = 0;
    w->heap = false;
}

void ckpt_wbuf_free(struct ckpt_wbuf *w)
{
    if (w->heap)
        ckpt_free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
    w->heap = false;
}

uint8_t *ckpt_wr_reserve(struct ckpt_wbuf *w, size_t len)
{
    if (w->err)
        return NULL;
    if (len > CKPT_PROTO_MAX_BODY || w->len + len > CKPT_PROTO_MAX_BODY) {
        w->err = -EMSGSIZE;
        return NULL;
    }
    if (w->len + len > w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 256;
        while (ncap < w->len + len)
            ncap *= 2;
        uint8_t *np;
        if (w->heap) {
            np = ckpt_realloc(w->p, ncap);
        } else {
            np = ckpt_malloc(ncap);
            if (np && w->len)
                memcpy(np, w->p, w->len);
        }
        if (!np) {
            w->err = -ENOMEM;
            return NULL;
        }
        w->p = np;
        w->cap = ncap;
        w->heap = true;
    }
    uint8_t *at = w->p + w->len;
    w->len += len;
    return at;
}

void ckpt_wr_u8(struct ckpt_wbuf *w, uint8_t v)
{
    uint8_t *p = ckpt_wr_reserve(w, 1);
    if (p)
        p[0] = v;
}

void ckpt_wr_u16(struct ckpt_wbuf *w, uint16_t v)
{
    uint8_t *p = ckpt_wr_reserve(w, 2);
    if (p)
        put16(p, v);
}

void ckpt_wr_u32(struct ckpt_wbuf *w, uint32_t v)
{
    uint8_t *p = ckpt_wr_reserve(w, 4);
    if (p)
        put32(p, v);
}

void ckpt_wr_u64(struct ckpt_wbuf *w, uint64_t v)
{
    uint8_t *p = ckpt_wr_reserve(w, 8);
    if (p)
        put64(p, v);
}

void ckpt_wr_i32(struct ckpt_wbuf *w, int32_t v)
{
    ckpt_wr_u32(w, (uint32_t)v);
}

void ckpt_wr_i64(struct ckpt_wbuf *w, int64_t v)
{
    ckpt_wr_u64(w, (uint64_t)v);
}

void ckpt_wr_bytes(struct ckpt_wbuf *w, const void *src, size_t len)
{
    uint8_t *p = ckpt_wr_reserve(w, len);
    if (p && len)
        memcpy(p, src, len);
}

void ckpt_wr_str(struct ckpt_wbuf *w, const char *s, size_t len)
{
    if (len > UINT16_MAX) {
        if (!w->err)
            w->err = -EMSGSIZE;
        return;
    }
    ckpt_wr_u16(w, (uint16_t)len);
    ckpt_wr_bytes(w, s, len);
}

void ckpt_wr_blob(struct ckpt_wbuf *w, const void *src, uint32_t len)
{
    ckpt_wr_u32(w, len);
    ckpt_wr_bytes(w, src, len);
}

/* ---- decoder ---------------------------------------------------------- */

void ckpt_rbuf_init(struct ckpt_rbuf *r, const void *src, size_t len)
{
    r->p = src;
    r->len = src ? len : 0;
    r->off = 0;
    r->err = 0;
}

void ckpt_rbuf_fail(struct ckpt_rbuf *r)
{
    r->err = CKPT_E_PROTO;
}

const uint8_t *ckpt_rd_bytes(struct ckpt_rbuf *r, size_t len)
{
    if (r->err)
        return NULL;
    if (len > r->len - r->off) {
        r->err = CKPT_E_PROTO;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += len;
    return p;
}

uint8_t ckpt_rd_u8(struct ckpt_rbuf *r)
{
    const uint8_t *p = ckpt_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t ckpt_rd_u16(struct ckpt_rbuf *r)
{
    const uint8_t *p = ckpt_rd_bytes(r, 2);
    return p ? get16(p) : 0;
}

uint32_t ckpt_rd_u32(struct ckpt_rbuf *r)
{
    const uint8_t *p = ckpt_rd_bytes(r, 4);
    return p ? get32(p) : 0;
}

uint64_t ckpt_rd_u64(struct ckpt_rbuf *r)
{
    const uint8_t *p = ckpt_rd_bytes(r, 8);
    return p ? get64(p) : 0;
}

int32_t ckpt_rd_i32(struct ckpt_rbuf *r)
{
    return (int32_t)ckpt_rd_u32(r);
}

int64_t ckpt_rd_i64(struct ckpt_rbuf *r)
{
    return (int64_t)ckpt_rd_u64(r);
}

const char *ckpt_rd_str(struct ckpt_rbuf *r, size_t max_len, size_t *out_len)
{
    uint16_t len = ckpt_rd_u16(r);
    *out_len = 0;
    if (r->err)
        return NULL;
    if (len > max_len) {
        r->err = CKPT_E_PROTO;
        return NULL;
    }
    const uint8_t *p = ckpt_rd_bytes(r, len);
    if (!p)
        return NULL;
    if (len && memchr(p, '\0', len)) {
        r->err = CKPT_E_PROTO;
        return NULL;
    }
    *out_len = len;
    return (const char *)p;
}

void ckpt_rd_cstr(struct ckpt_rbuf *r, char *dst, size_t cap)
{
    size_t len;
    const char *s = ckpt_rd_str(r, cap ? cap - 1 : 0, &len);
    if (cap == 0)
        return;
    if (!s) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}

const uint8_t *ckpt_rd_blob(struct ckpt_rbuf *r, size_t max_len, uint32_t *out_len)
{
    uint32_t len = ckpt_rd_u32(r);
    *out_len = 0;
    if (r->err)
        return NULL;
    if (len > max_len) {
        r->err = CKPT_E_PROTO;
        return NULL;
    }
    const uint8_t *p = ckpt_rd_bytes(r, len);
    if (p)
        *out_len = len;
    return p;
}

uint32_t ckpt_rd_count(struct ckpt_rbuf *r, uint32_t max, size_t min_elem_bytes)
{
    uint32_t n = ckpt_rd_u32(r);
    if (r->err)
        return 0;
    size_t left = r->len - r->off;
    if (n > max || (min_elem_bytes && (size_t)n > left / min_elem_bytes)) {
        r->err = CKPT_E_PROTO;
        return 0;
    }
    return n;
}

uint32_t ckpt_rd_enum(struct ckpt_rbuf *r, uint32_t limit)
{
    uint32_t v = ckpt_rd_u32(r);
    if (!r->err && v >= limit) {
        r->err = CKPT_E_PROTO;
        return 0;
    }
    return v;
}

int ckpt_rbuf_end(struct ckpt_rbuf *r)
{
    if (r->err)
        return r->err;
    if (r->off != r->len) {
        r->err = CKPT_E_PROTO;
        return CKPT_E_PROTO;
    }
    return 0;
}

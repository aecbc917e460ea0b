/*
 * chunkfile.c - chunk file header codec and names (chunkfile.h).
 *
 * DESIGN
 *
 *   Moved here from daemon/node_chunk.c when same-host clients began to
 *   read chunk files themselves: one decoder, so a client can never accept
 *   a header the node would refuse.  No state, no threads.
 */
#include "chunkfile.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crc.h"
#include "err.h"

/* Header field offsets (see chunkfile.h). */
enum {
    HO_MAGIC = 0,
    HO_VERSION = 8,
    HO_ENCODING = 10,
    HO_FLAGS = 12,
    HO_INO = 16,
    HO_STRIPE = 24,
    HO_GEN = 32,
    HO_INDEX = 40,
    HO_RESERVED = 42,
    HO_LEN = 44,
    HO_STORED_LEN = 48,
    HO_DATA_CRC = 52,
    HO_STORED_CRC = 56,
    HO_HDR_CRC = 60,
    HO_END = 64,
};
_Static_assert(HO_END == CKPT_CHUNKFILE_HDR_LEN, "chunk header is 64 bytes");
_Static_assert(sizeof(CKPT_CHUNKFILE_MAGIC) - 1 == HO_VERSION - HO_MAGIC, "magic is 8 bytes");
_Static_assert(CKPT_CHUNKFILE_HDR_LEN <= CKPT_CHUNKFILE_DATA_OFF, "header fits before the data");
_Static_assert(CKPT_CHUNKFILE_DATA_OFF % 4096 == 0, "data offset O_DIRECT-able");
_Static_assert(CKPT_CHUNKFILE_MAX_LEN <= UINT32_MAX - CKPT_CHUNKFILE_DATA_OFF,
               "file size fits 32 bits");

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
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void ckpt_chunkfile_hdr_encode(uint8_t *h, uint64_t ino, uint64_t stripe, uint16_t index,
                               const struct ckpt_chunkfile_info *in)
{
    memset(h, 0, CKPT_CHUNKFILE_HDR_LEN);
    memcpy(h + HO_MAGIC, CKPT_CHUNKFILE_MAGIC, 8);
    put16(h + HO_VERSION, CKPT_CHUNKFILE_FORMAT);
    put16(h + HO_ENCODING, in->encoding);
    put32(h + HO_FLAGS, 0);
    put64(h + HO_INO, ino);
    put64(h + HO_STRIPE, stripe);
    put64(h + HO_GEN, in->gen);
    put16(h + HO_INDEX, index);
    put16(h + HO_RESERVED, 0);
    put32(h + HO_LEN, in->len);
    put32(h + HO_STORED_LEN, in->stored_len);
    put32(h + HO_DATA_CRC, in->crc);
    put32(h + HO_STORED_CRC, in->crc); /* raw: stored bytes == logical */
    put32(h + HO_HDR_CRC, ckpt_crc32c(0, h, HO_HDR_CRC));
}

int ckpt_chunkfile_hdr_decode(const uint8_t *h, uint64_t ino, uint64_t stripe, uint16_t index,
                              struct ckpt_chunkfile_info *out, const char **why)
{
    const char *w;
    int rc = CKPT_E_TORN;

    if (memcmp(h + HO_MAGIC, CKPT_CHUNKFILE_MAGIC, 8) != 0) {
        w = "bad magic";
        goto fail;
    }
    if (get32(h + HO_HDR_CRC) != ckpt_crc32c(0, h, HO_HDR_CRC)) {
        w = "header crc32c mismatch";
        goto fail;
    }
    if (get16(h + HO_VERSION) != CKPT_CHUNKFILE_FORMAT || get32(h + HO_FLAGS) ||
        get16(h + HO_RESERVED) || get16(h + HO_ENCODING) > CKPT_CHUNKFILE_ENC_ZSTD) {
        w = "unknown format version, flags or encoding";
        rc = CKPT_E_VERSION;
        goto fail;
    }
    if (get64(h + HO_INO) != ino || get64(h + HO_STRIPE) != stripe || get16(h + HO_INDEX) != index) {
        w = "header names another chunk";
        goto fail;
    }
    struct ckpt_chunkfile_info in = {
        .gen = get64(h + HO_GEN),
        .len = get32(h + HO_LEN),
        .crc = get32(h + HO_DATA_CRC),
        .stored_len = get32(h + HO_STORED_LEN),
        .encoding = get16(h + HO_ENCODING),
    };
    if (in.len > CKPT_CHUNKFILE_MAX_LEN || in.stored_len > CKPT_CHUNKFILE_MAX_LEN) {
        w = "length out of range";
        goto fail;
    }
    if (in.encoding == CKPT_CHUNKFILE_ENC_RAW &&
        (in.stored_len != in.len || get32(h + HO_STORED_CRC) != in.crc)) {
        w = "raw chunk with inconsistent lengths or crcs";
        goto fail;
    }
    *out = in;
    return 0;
fail:
    if (why)
        *why = w;
    return rc;
}

int ckpt_chunkfile_rel(char *dst, uint64_t ino, uint64_t stripe, uint16_t index)
{
    return snprintf(dst, CKPT_CHUNKFILE_REL_MAX, "%02x/%016" PRIx64 "/%016" PRIx64 ".%04x",
                    (unsigned)(ino & 0xff), ino, stripe, (unsigned)index);
}

int ckpt_chunkfile_rel_dir(char *dst, uint64_t ino)
{
    return snprintf(dst, CKPT_CHUNKFILE_REL_MAX, "%02x/%016" PRIx64, (unsigned)(ino & 0xff), ino);
}

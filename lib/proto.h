/*
 * proto.h - the ckptfs wire format: message header, opcode list and the
 * field-by-field little-endian codec every message body is built with.
 *
 * A message is a fixed 40-byte header, then body_len bytes of body, then
 * bulk_len bytes of bulk data (chunk bytes) carried beside the body so that
 * transports can move it without copying (TCP: one writev; RDMA: one-sided
 * READ/WRITE between registered buffers).
 *
 *   off size field
 *     0  4   magic      CKPT_PROTO_MAGIC
 *     4  2   version    CKPT_PROTO_VERSION
 *     6  2   opcode     enum ckpt_op
 *     8  4   flags      CKPT_MSG_F_*
 *    12  4   status     responses: 0 or a negative error code (err.h)
 *    16  8   req_id     matches a response to its request
 *    24  4   body_len   <= CKPT_PROTO_MAX_BODY
 *    28  4   bulk_len   <= CKPT_PROTO_MAX_BULK
 *    32  4   reserved   must be 0
 *    36  4   crc        crc32c over bytes 0..35 and the body
 *
 * Bulk data is not covered by the header crc: every bulk payload is chunk
 * data whose own crc32c travels in the body and is checked end to end.
 *
 * Bodies are encoded with struct ckpt_wbuf and decoded with struct ckpt_rbuf.
 * Both carry a sticky error: after the first failure every further call is
 * a no-op, so an encoder or decoder is a straight list of field calls and one
 * error check at the end (ckpt_rbuf_end() also rejects trailing bytes).
 * Every decoder validates every length, count and enum against explicit
 * bounds before use; a malformed message is an error value, never a crash or
 * an over-read.
 *
 * Opcodes live in one X-macro list, CKPT_OPS, grouped in ranges by service.
 */
#ifndef CKPT_PROTO_H
#define CKPT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_PROTO_MAGIC 0x54504b43u /* "CKPT" as little-endian bytes */
#define CKPT_PROTO_VERSION 1
#define CKPT_HDR_SIZE 40
#define CKPT_PROTO_MAX_BODY (16u << 20)
#define CKPT_PROTO_MAX_BULK ((64u << 20) + 4096u)
#define CKPT_PROTO_MAX_NAME 255   /* one path component */
#define CKPT_PROTO_MAX_PATH 4096

#define CKPT_MSG_F_RESPONSE 0x1u /* this is a response */
#define CKPT_MSG_F_ONEWAY 0x2u   /* request expects no response */
#define CKPT_MSG_F_KNOWN (CKPT_MSG_F_RESPONSE | CKPT_MSG_F_ONEWAY)

/*
 * The opcode list: X(NAME, value, description).  Ranges:
 *   0x0001-0x00ff  connection (handshake, ping)
 *   0x0100-0x01ff  ckpt-meta namespace
 *   0x0200-0x02ff  ckpt-meta cluster membership and maps
 *   0x0300-0x03ff  ckpt-node chunk service
 *   0x0400-0x04ff  checkpoints
 *   0x0500-0x05ff  administration, rebuild, rebalance
 * Each message's request/response structs and codecs live in the header of
 * the service that owns the range (msg_*.h); proto knows only the numbers.
 */
#define CKPT_OPS(X)                                                           \
    X(HELLO, 0x0001, "handshake: client nonce")                               \
    X(AUTH, 0x0002, "handshake: proof of the cluster key")                    \
    X(PING, 0x0003, "liveness and latency probe")                             \
    X(ECHO, 0x0004, "echo body and bulk (transport tests, benchmarks)")       \
    CKPT_OPS_META(X) CKPT_OPS_CLUSTER(X) CKPT_OPS_NODE(X) CKPT_OPS_CKPT(X)    \
    CKPT_OPS_ADMIN(X)

/* Service ranges; each service's owner fills its list in msg_<svc>_ops.h. */
#include "proto_ops.h"

enum ckpt_op {
#define CKPT_OP_ENUM(name, val, desc) CKPT_OP_##name = (val),
    CKPT_OPS(CKPT_OP_ENUM)
#undef CKPT_OP_ENUM
};

/** @return the opcode's name ("HELLO"), or NULL for an unknown opcode. */
const char *ckpt_op_name(uint16_t op);
/** @return true when op is a known opcode. */
bool ckpt_op_known(uint16_t op);

/* A decoded message header. */
struct ckpt_hdr {
    uint16_t version;
    uint16_t opcode;
    uint32_t flags;
    int32_t status;
    uint64_t req_id;
    uint32_t body_len;
    uint32_t bulk_len;
};

/**
 * @brief Encode hdr into dst[CKPT_HDR_SIZE] and seal it with the crc over the
 * header and body.  magic/version are set here; hdr->version is ignored.
 */
void ckpt_hdr_encode(uint8_t dst[CKPT_HDR_SIZE], const struct ckpt_hdr *hdr,
                     const void *body, uint32_t body_len);

/**
 * @brief Decode and bounds-check a header (not its crc, which needs the body).
 * @return 0; CKPT_E_PROTO for a bad magic, unknown flags, non-zero reserved
 * field, body or bulk length over the limits, or an unknown opcode;
 * CKPT_E_VERSION for another protocol version.
 */
int ckpt_hdr_decode(const uint8_t src[CKPT_HDR_SIZE], struct ckpt_hdr *out);

/**
 * @brief Check the crc of a header and its body.
 * @return 0, or CKPT_E_CRC.
 */
int ckpt_hdr_verify(const uint8_t src[CKPT_HDR_SIZE], const void *body,
                    uint32_t body_len);

/* ---- body encoder ---------------------------------------------------- */

/*
 * A growable output buffer.  Start it on caller storage (often the stack)
 * with ckpt_wbuf_init(); it moves to the heap if it outgrows it.  Always
 * finish with ckpt_wbuf_free() (frees only heap storage).
 */
struct ckpt_wbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    int err;        /* sticky: 0, -ENOMEM or -EMSGSIZE */
    bool heap;      /* p was allocated by the wbuf */
};

void ckpt_wbuf_init(struct ckpt_wbuf *w, void *storage, size_t cap);
void ckpt_wbuf_free(struct ckpt_wbuf *w);
void ckpt_wr_u8(struct ckpt_wbuf *w, uint8_t v);
void ckpt_wr_u16(struct ckpt_wbuf *w, uint16_t v);
void ckpt_wr_u32(struct ckpt_wbuf *w, uint32_t v);
void ckpt_wr_u64(struct ckpt_wbuf *w, uint64_t v);
void ckpt_wr_i32(struct ckpt_wbuf *w, int32_t v);
void ckpt_wr_i64(struct ckpt_wbuf *w, int64_t v);
void ckpt_wr_bytes(struct ckpt_wbuf *w, const void *src, size_t len);
/** A string: u16 length then bytes (no NUL). len must be <= 65535. */
void ckpt_wr_str(struct ckpt_wbuf *w, const char *s, size_t len);
/** A blob: u32 length then bytes. */
void ckpt_wr_blob(struct ckpt_wbuf *w, const void *src, uint32_t len);
/** Reserve len bytes and return a pointer to fill in, or NULL on error. */
uint8_t *ckpt_wr_reserve(struct ckpt_wbuf *w, size_t len);

/* ---- body decoder ---------------------------------------------------- */

struct ckpt_rbuf {
    const uint8_t *p;
    size_t len;
    size_t off;
    int err;        /* sticky: 0 or CKPT_E_PROTO */
};

void ckpt_rbuf_init(struct ckpt_rbuf *r, const void *src, size_t len);
uint8_t ckpt_rd_u8(struct ckpt_rbuf *r);
uint16_t ckpt_rd_u16(struct ckpt_rbuf *r);
uint32_t ckpt_rd_u32(struct ckpt_rbuf *r);
uint64_t ckpt_rd_u64(struct ckpt_rbuf *r);
int32_t ckpt_rd_i32(struct ckpt_rbuf *r);
int64_t ckpt_rd_i64(struct ckpt_rbuf *r);
/** @return a pointer to len bytes inside the buffer (borrowed), or NULL. */
const uint8_t *ckpt_rd_bytes(struct ckpt_rbuf *r, size_t len);
/**
 * @brief Read a u16-length string of at most max_len bytes.
 * @param[out] out_len  its length.
 * @return a borrowed pointer (not NUL-terminated), or NULL on error (sticky
 * CKPT_E_PROTO when too long, truncated, or containing a NUL byte).
 */
const char *ckpt_rd_str(struct ckpt_rbuf *r, size_t max_len, size_t *out_len);
/** Copy a string into dst[cap] NUL-terminated; too long (>= cap) is an error. */
void ckpt_rd_cstr(struct ckpt_rbuf *r, char *dst, size_t cap);
/** A u32-length blob of at most max_len bytes; borrowed pointer or NULL. */
const uint8_t *ckpt_rd_blob(struct ckpt_rbuf *r, size_t max_len, uint32_t *out_len);
/**
 * @brief Read a u32 element count, bounded by max and by the bytes left
 * (each element needs at least min_elem_bytes), so a hostile count cannot
 * make the caller allocate more than the message could describe.
 */
uint32_t ckpt_rd_count(struct ckpt_rbuf *r, uint32_t max, size_t min_elem_bytes);
/** Read a u32 and fail unless it is < limit (for enums). */
uint32_t ckpt_rd_enum(struct ckpt_rbuf *r, uint32_t limit);
/** Mark the buffer failed (a decoder found a semantic error). */
void ckpt_rbuf_fail(struct ckpt_rbuf *r);
/** @return 0 when everything decoded and no bytes are left; CKPT_E_PROTO. */
int ckpt_rbuf_end(struct ckpt_rbuf *r);

#endif

/*
 * chunkfile.h - the on-disk format of one chunk file: its header and its
 * name below a target's chunks/ directory.
 *
 * ckpt-node's chunk store (daemon/node_chunk.c) writes and serves these
 * files; a client on the same host reads them itself (fs/fs_read.c,
 * short-circuit reads) once the node has told it where the target's chunks/
 * directory is.  Both sides decode the header with the same code, so the
 * checks a same-host read makes are exactly the node's:
 *
 *     off size field
 *       0   8  magic "CKPTCHNK"
 *       8   2  format version (1)
 *      10   2  encoding (0 raw, 1 zstd - reserved)
 *      12   4  flags (must be 0 in version 1; non-zero = CKPT_E_VERSION)
 *      16   8  ino
 *      24   8  stripe
 *      32   8  generation
 *      40   2  index
 *      42   2  reserved (0)
 *      44   4  logical length
 *      48   4  stored length (bytes after the header)
 *      52   4  crc32c of the logical bytes
 *      56   4  crc32c of the stored bytes (== the above when raw)
 *      60   4  crc32c of bytes 0..59
 *      64 ...  zeros up to 4096, then the stored bytes
 *
 * Little-endian, encoded field by field.  A file is valid iff its header
 * decodes with a good crc and the expected key and the file is exactly
 * CKPT_CHUNKFILE_DATA_OFF + stored length bytes; the data is then checked
 * against its crc by whoever reads it.
 *
 * Name: chunks/<ino & 0xff, 2 hex>/<ino, 16 hex>/<stripe, 16 hex>.<index, 4 hex>
 *
 * Pure functions: thread-safe, no allocation.
 */
#ifndef CKPT_CHUNKFILE_H
#define CKPT_CHUNKFILE_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_CHUNKFILE_MAGIC "CKPTCHNK"    /* first 8 bytes of every chunk file */
#define CKPT_CHUNKFILE_FORMAT 1            /* header format version written */
#define CKPT_CHUNKFILE_HDR_LEN 64          /* encoded header bytes */
#define CKPT_CHUNKFILE_DATA_OFF 4096       /* data starts here (O_DIRECT-able) */
#define CKPT_CHUNKFILE_MAX_LEN (64u << 20) /* == CKPT_LAYOUT_MAX_CHUNK */
/* The longest relative name, a node's temp file "xx/<16>/<16>.<4>.tmp.<16>",
 * is 62 bytes + NUL. */
#define CKPT_CHUNKFILE_REL_MAX 64

/* Header encoding field. */
enum ckpt_chunkfile_encoding {
    CKPT_CHUNKFILE_ENC_RAW = 0,  /* stored bytes == logical bytes */
    CKPT_CHUNKFILE_ENC_ZSTD = 1, /* reserved; readers answer -EOPNOTSUPP today */
};

/* What a chunk's header says. */
struct ckpt_chunkfile_info {
    uint64_t gen;
    uint32_t len;        /* logical length in bytes */
    uint32_t crc;        /* crc32c of the logical bytes */
    uint32_t stored_len; /* bytes after the header (== len when raw) */
    uint16_t encoding;   /* enum ckpt_chunkfile_encoding */
};

/**
 * @brief Encode the header of chunk (ino, stripe, index) into h.
 * @param[out] h  CKPT_CHUNKFILE_HDR_LEN bytes
 * The stored crc is written equal to in->crc (raw encoding).
 */
void ckpt_chunkfile_hdr_encode(uint8_t *h, uint64_t ino, uint64_t stripe, uint16_t index,
                               const struct ckpt_chunkfile_info *in);

/**
 * @brief Decode h and check it names chunk (ino, stripe, index).
 * @param[in]  h    CKPT_CHUNKFILE_HDR_LEN bytes read from offset 0
 * @param[out] out  set on success only
 * @param[out] why  if non-NULL, set on failure to a short description
 * @return 0; CKPT_E_TORN (bad magic or header crc, another chunk's header,
 *         lengths out of range or inconsistent); CKPT_E_VERSION (unknown
 *         format version, flags or encoding).
 */
int ckpt_chunkfile_hdr_decode(const uint8_t *h, uint64_t ino, uint64_t stripe, uint16_t index,
                              struct ckpt_chunkfile_info *out, const char **why);

/**
 * @brief Write the chunk's name relative to chunks/ into dst.
 * @return the length (< CKPT_CHUNKFILE_REL_MAX); dst must hold
 *         CKPT_CHUNKFILE_REL_MAX bytes.
 */
int ckpt_chunkfile_rel(char *dst, uint64_t ino, uint64_t stripe, uint16_t index);

/**
 * @brief Write the name of the inode's directory relative to chunks/
 * ("xx/<ino, 16 hex>") into dst (CKPT_CHUNKFILE_REL_MAX bytes).
 * @return its length.
 */
int ckpt_chunkfile_rel_dir(char *dst, uint64_t ino);

#endif

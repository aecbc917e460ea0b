/*
 * crc.h - CRC-32C (Castagnoli) checksums for chunks, messages and files.
 *
 * Every chunk a target stores carries a crc32c over its bytes, every wire
 * message a crc32c over header+body, and every file of a committed
 * checkpoint a whole-file crc32c in the manifest.  This module computes the
 * standard CRC-32C (iSCSI, RFC 3720: reflected polynomial 0x82F63B78, initial
 * value and final xor 0xFFFFFFFF) with ISA-L's crc32_iscsi(), which uses the
 * SSE4.2 crc32 instruction and carry-less multiply where the CPU has them.
 *
 * The value is conditioned (pre- and post-inverted) inside the function, so
 * callers never see ISA-L's raw register convention: start with crc = 0 and
 * feed the previous result back in to continue a stream:
 *
 *     crc = ckpt_crc32c(0, a, la);
 *     crc = ckpt_crc32c(crc, b, lb);    == ckpt_crc32c(0, a||b, la+lb)
 *
 * ckpt_crc32c_combine() joins checksums of pieces that were computed
 * independently (for instance per chunk, in parallel, by different workers)
 * into the checksum of their concatenation without touching the data.
 *
 * Both functions are pure: thread-safe, no allocation, no global state.
 */
#ifndef CKPT_CRC_H
#define CKPT_CRC_H

#include <stddef.h>
#include <stdint.h>

/**
 * @brief Compute or continue a CRC-32C.
 * @param[in] crc  0 to start; otherwise the value returned for the bytes
 *                 that precede buf in the stream
 * @param[in] buf  bytes to checksum; may be NULL only when len is 0.  Any
 *                 alignment; any length (lengths past INT_MAX are fed to
 *                 ISA-L in pieces)
 * @param[in] len  number of bytes at buf
 * @return the CRC-32C of everything fed so far (crc itself when len is 0).
 *         "123456789" gives 0xE3069283.  Never fails.
 */
uint32_t ckpt_crc32c(uint32_t crc, const void *buf, size_t len);

/**
 * @brief CRC-32C of a concatenation A||B from the checksums of its parts.
 *
 * Runs in O(log len2) time (x^(8*len2) mod P by repeated squaring in GF(2)
 * polynomials), independent of the data.
 * @param[in] crc1  ckpt_crc32c(0, A, len(A))
 * @param[in] crc2  ckpt_crc32c(0, B, len(B))
 * @param[in] len2  len(B) in bytes; any size_t, 0 included (returns crc1)
 * @return ckpt_crc32c(0, A||B, len(A)+len(B)).  Never fails.
 */
uint32_t ckpt_crc32c_combine(uint32_t crc1, uint32_t crc2, size_t len2);

#endif

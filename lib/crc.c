/*
 * crc.c - CRC-32C over ISA-L; see crc.h.
 *
 * DESIGN
 *
 * Conventions.  ISA-L's crc32_iscsi(buf, len, init) runs the bare reflected
 * CRC register: it neither inverts the initial value nor the result (its
 * baseline is `crc = init; for each byte: crc = (crc >> 8) ^ T[(crc ^ b) &
 * 0xff]; return crc`).  The standard CRC-32C is that register started at
 * 0xFFFFFFFF and inverted at the end, so
 *
 *     ckpt_crc32c(crc, buf, len) = ~crc32_iscsi(buf, len, ~crc)
 *
 * and feeding a finished value back in undoes the final inversion, which is
 * what makes streaming work.  ISA-L takes an int length, so longer buffers
 * are fed in pieces of CRC_PIECE bytes.
 *
 * Combining.  In the reflected representation bit 31 holds the coefficient
 * of x^0 and bit 0 that of x^31.  Appending n bytes of B to A multiplies the
 * register of A by x^(8n) mod P and then adds the contribution of B; with
 * the pre/post conditioning the terms that come from the 0xFFFFFFFF initial
 * values cancel, leaving
 *
 *     crc(A||B) = (crc(A) * x^(8*len(B)) mod P) xor crc(B)
 *
 * (the same identity zlib's crc32_combine uses for CRC-32).  x^(8n) is built
 * from the binary expansion of n: x^8, x^16, x^32, ... are obtained by
 * squaring, and the ones whose bit is set in n are multiplied in.  That is
 * at most 2*64 products of 32 shift/xor steps each, with no table and no
 * global state, so the module stays free of initialisation order.
 *
 * Threads: none; every function is pure.
 */
#include "crc.h"

#include <isa-l/crc.h>
#include <limits.h>

/* Largest piece handed to crc32_iscsi (an int length); a multiple of 64 so
 * every piece but the last keeps the caller's alignment. */
#define CRC_PIECE ((size_t)1 << 30)

/* Reflected Castagnoli polynomial. */
#define CRC32C_POLY_REFL 0x82F63B78u

/* x^0 in the reflected representation. */
#define CRC_X0 0x80000000u

_Static_assert(CRC_PIECE <= (size_t)INT_MAX, "piece must fit an int");

uint32_t ckpt_crc32c(uint32_t crc, const void *buf, size_t len)
{
    /* ISA-L's prototype takes a non-const pointer but only reads it. */
    unsigned char *p = (unsigned char *)buf;
    uint32_t reg = ~crc;

    while (len > 0) {
        size_t piece = len < CRC_PIECE ? len : CRC_PIECE;
        reg = crc32_iscsi(p, (int)piece, reg);
        p += piece;
        len -= piece;
    }
    return ~reg;
}

/* a * b mod P, both in the reflected representation. */
static uint32_t crc_mulmod(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;

    /* Walk a's coefficients from x^0 (bit 31) upwards while b runs through
     * b * x^i mod P. */
    for (uint32_t bit = CRC_X0; bit != 0; bit >>= 1) {
        if (a & bit)
            prod ^= b;
        b = (b & 1u) ? (b >> 1) ^ CRC32C_POLY_REFL : b >> 1;
    }
    return prod;
}

/* x^(8*n) mod P. */
static uint32_t crc_x8n(size_t n)
{
    uint32_t result = CRC_X0;
    uint32_t sq = CRC_X0 >> 8; /* x^8: one byte */

    while (n != 0) {
        if (n & 1u)
            result = crc_mulmod(sq, result);
        n >>= 1;
        if (n != 0)
            sq = crc_mulmod(sq, sq);
    }
    return result;
}

uint32_t ckpt_crc32c_combine(uint32_t crc1, uint32_t crc2, size_t len2)
{
    if (len2 == 0)
        return crc1;
    return crc_mulmod(crc_x8n(len2), crc1) ^ crc2;
}

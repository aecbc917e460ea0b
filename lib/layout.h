/*
 * layout.h - how a file's bytes map onto erasure-coded chunks and targets.
 *
 * A regular file has a layout: k data + m parity chunks per stripe, a chunk
 * size, and an ordered list of W >= k+m target ids on distinct failure
 * domains.  Stripe s covers file bytes [s*k*chunk, (s+1)*k*chunk).  Chunk i
 * of stripe s (0..k-1 data, k..k+m-1 parity) lives on targets[(s+i) % W]
 * (DESIGN.md, Data model): the rotation spreads consecutive stripes over all
 * W targets so one big file uses every SSD of its list.
 *
 * struct ckpt_layout is a small transparent value type (STYLE C.8): copy it
 * freely.  All functions here are pure and thread-safe.
 */
#ifndef CKPT_LAYOUT_H
#define CKPT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_LAYOUT_MAX_K 16
#define CKPT_LAYOUT_MAX_M 4
#define CKPT_LAYOUT_MAX_WIDTH 64
#define CKPT_LAYOUT_MIN_CHUNK (4u << 10)  /* 4 KiB */
#define CKPT_LAYOUT_MAX_CHUNK (64u << 20) /* 64 MiB */
#define CKPT_LAYOUT_DEFAULT_K 4
#define CKPT_LAYOUT_DEFAULT_M 2
#define CKPT_LAYOUT_DEFAULT_CHUNK (1u << 20)

/* Layout flags (reserved for per-layout features such as compression). */
#define CKPT_LAYOUT_F_ZSTD 0x1u

struct ckpt_layout {
    uint8_t k;           /* data chunks per stripe, 1..CKPT_LAYOUT_MAX_K */
    uint8_t m;           /* parity chunks per stripe, 0..CKPT_LAYOUT_MAX_M */
    uint16_t width;      /* W: number of targets, k+m..CKPT_LAYOUT_MAX_WIDTH;
                            0 in a spec means "k+m" */
    uint32_t chunk_size; /* bytes; a multiple of 4 KiB within MIN..MAX */
    uint32_t flags;      /* CKPT_LAYOUT_F_* */
    uint32_t targets[CKPT_LAYOUT_MAX_WIDTH]; /* global target ids; first
                                                `width` valid once placed */
};

/* Where one file byte lives. */
struct ckpt_loc {
    uint64_t stripe;       /* stripe number */
    uint32_t index;        /* chunk index within the stripe, 0..k-1 */
    uint32_t slot;         /* position in targets[], (stripe+index) % W */
    uint32_t chunk_off;    /* byte offset inside the chunk */
    uint64_t stripe_off;   /* byte offset inside the stripe's data */
};

/**
 * @brief Validate k, m, width and chunk_size (targets are not looked at).
 * Rules: 1 <= k <= 16, 0 <= m <= 4, width 0 or k+m <= width <= 64, chunk_size
 * a multiple of 4 KiB within 4 KiB..64 MiB.  width 0 passes and means k+m:
 * every function below treats it so.
 * @return 0, or -EINVAL with *out_why (if non-NULL) set to a static string
 *         naming the rule broken (NULL on success).
 */
int ckpt_layout_check(const struct ckpt_layout *l, const char **out_why);

/** @return bytes of file data in one stripe: k * chunk_size. */
uint64_t ckpt_layout_stripe_bytes(const struct ckpt_layout *l);

/** @return number of stripes needed for a file of size bytes (0 for 0). */
uint64_t ckpt_layout_nstripes(const struct ckpt_layout *l, uint64_t size);

/** @return targets[] position of chunk index (0..k+m-1) of stripe. */
uint32_t ckpt_layout_slot(const struct ckpt_layout *l, uint64_t stripe,
                          uint32_t index);

/** @brief Map a file offset to its stripe, chunk, slot and chunk offset. */
void ckpt_layout_locate(const struct ckpt_layout *l, uint64_t off,
                        struct ckpt_loc *out);

/** @return the file offset of byte chunk_off of data chunk index of stripe
 *  (the inverse of ckpt_layout_locate; index must be < k). */
uint64_t ckpt_layout_offset(const struct ckpt_layout *l, uint64_t stripe,
                            uint32_t index, uint32_t chunk_off);

/**
 * @brief Length of the valid data in data chunk index of stripe for a file
 * of size bytes (0 when the chunk lies wholly past EOF; chunk_size for a full
 * one).  Parity chunks of a stripe are as long as its chunk 0.
 */
uint32_t ckpt_layout_chunk_len(const struct ckpt_layout *l, uint64_t size,
                               uint64_t stripe, uint32_t index);

/**
 * @brief Parse a layout spec such as "ec=4+2 chunk=1M width=12" (keys in any
 * order, each at most once, separated by spaces or commas; missing keys keep
 * *inout's values, except that ec= without width= sets width to the new k+m,
 * and width=0 means k+m: the result never has width 0).
 * Sizes take K/M/G/T suffixes (either case, optionally followed by "iB"),
 * powers of 1024.  The result must pass ckpt_layout_check(); an empty spec is
 * an error.  flags and targets[] are left as they were.
 * @return 0, or -EINVAL with *out_why set (static string).  On error *inout
 *         is unchanged.
 */
int ckpt_layout_parse(const char *spec, struct ckpt_layout *inout,
                      const char **out_why);

/**
 * @brief Format the spec part of l as "ec=K+M chunk=SIZE width=W" (SIZE with
 * the largest exact K/M/G suffix; W is k+m when l->width is 0).  The output
 * parses back with ckpt_layout_parse() to the same k, m, chunk_size and width.
 * @return the length written (excluding NUL), or -ENOSPC if cap is too small.
 */
int ckpt_layout_format(char *dst, size_t cap, const struct ckpt_layout *l);

/** @brief Fill l with the cluster defaults (4+2, 1 MiB, width 6, no targets). */
void ckpt_layout_default(struct ckpt_layout *l);

#endif

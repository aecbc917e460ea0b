/*
 * layout.c - see layout.h.
 *
 * DESIGN
 *   Pure arithmetic on a small value type; no state, no allocation, no locks,
 *   so every function is thread-safe.  The map is:
 *
 *     stripe bytes  S   = k * chunk
 *     file offset   off -> stripe s = off / S, stripe_off = off % S,
 *                          index i = stripe_off / chunk, chunk_off = off % chunk
 *     placement         chunk i of stripe s -> targets[(s + i) % W]
 *
 *   W is `width`, or k+m when width is 0 ("0 in a spec means k+m"); every
 *   function here goes through layout_width() so a zero never divides.
 *   Sums that could wrap for absurd stripe numbers are reduced modulo W first
 *   ((s % W + i) % W) so the slot is right for every uint64_t stripe.
 *
 *   The functions other than ckpt_layout_check() expect a layout that passes
 *   ckpt_layout_check().  They do not assert that (layouts come off the wire
 *   and from disk): given k == 0 or chunk_size == 0 they return 0 / a zeroed
 *   location instead of dividing by zero.
 *
 *   Spec syntax (ckpt_layout_parse): tokens "ec=K+M", "chunk=SIZE",
 *   "width=W" separated by blanks or commas.  SIZE is the same grammar as
 *   lib/config's ckpt_parse_size(): decimal digits with an optional K, M, G
 *   or T suffix (either case, optionally followed by "iB"), powers of 1024.
 *   The parser is duplicated here (a dozen lines) rather than shared, so that
 *   this module depends on nothing; tests/unit/check_config.c checks that
 *   the two agree.
 */
#include "layout.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static uint32_t layout_width(const struct ckpt_layout *l)
{
    return l->width ? l->width : (uint32_t)l->k + l->m;
}

int ckpt_layout_check(const struct ckpt_layout *l, const char **out_why)
{
    const char *why = NULL;

    if (l->k < 1 || l->k > CKPT_LAYOUT_MAX_K)
        why = "k (data chunks per stripe) must be 1..16";
    else if (l->m > CKPT_LAYOUT_MAX_M)
        why = "m (parity chunks per stripe) must be 0..4";
    else if (l->width != 0 && l->width < (uint32_t)l->k + l->m)
        why = "width must be 0 (meaning k+m) or at least k+m";
    else if (l->width > CKPT_LAYOUT_MAX_WIDTH)
        why = "width must be at most 64";
    else if (l->chunk_size < CKPT_LAYOUT_MIN_CHUNK ||
             l->chunk_size > CKPT_LAYOUT_MAX_CHUNK)
        why = "chunk size must be within 4K..64M";
    else if (l->chunk_size % CKPT_LAYOUT_MIN_CHUNK != 0)
        why = "chunk size must be a multiple of 4K";
    if (out_why)
        *out_why = why;
    return why ? -EINVAL : 0;
}

uint64_t ckpt_layout_stripe_bytes(const struct ckpt_layout *l)
{
    return (uint64_t)l->k * l->chunk_size;
}

uint64_t ckpt_layout_nstripes(const struct ckpt_layout *l, uint64_t size)
{
    uint64_t sb = ckpt_layout_stripe_bytes(l);

    if (sb == 0)
        return 0;
    /* Not (size + sb - 1) / sb: that wraps for sizes near 2^64. */
    return size / sb + (size % sb != 0);
}

uint32_t ckpt_layout_slot(const struct ckpt_layout *l, uint64_t stripe,
                          uint32_t index)
{
    uint32_t w = layout_width(l);

    if (w == 0)
        return 0;
    return (uint32_t)((stripe % w + index % w) % w);
}

void ckpt_layout_locate(const struct ckpt_layout *l, uint64_t off,
                        struct ckpt_loc *out)
{
    uint64_t sb = ckpt_layout_stripe_bytes(l);

    memset(out, 0, sizeof(*out));
    if (sb == 0)
        return;
    out->stripe = off / sb;
    out->stripe_off = off % sb;
    out->index = (uint32_t)(out->stripe_off / l->chunk_size);
    out->chunk_off = (uint32_t)(out->stripe_off % l->chunk_size);
    out->slot = ckpt_layout_slot(l, out->stripe, out->index);
}

uint64_t ckpt_layout_offset(const struct ckpt_layout *l, uint64_t stripe,
                            uint32_t index, uint32_t chunk_off)
{
    return stripe * ckpt_layout_stripe_bytes(l) +
           (uint64_t)index * l->chunk_size + chunk_off;
}

uint32_t ckpt_layout_chunk_len(const struct ckpt_layout *l, uint64_t size,
                               uint64_t stripe, uint32_t index)
{
    uint64_t start;

    if (stripe >= ckpt_layout_nstripes(l, size)) /* also covers k == 0 */
        return 0;
    if (index >= l->k) /* parity: as long as the stripe's chunk 0 */
        index = 0;
    /* stripe < nstripes, so stripe * stripe_bytes < size: no overflow. */
    start = ckpt_layout_offset(l, stripe, index, 0);
    if (start >= size)
        return 0;
    return size - start >= l->chunk_size ? l->chunk_size
                                         : (uint32_t)(size - start);
}

/* Decimal digits, no sign, no blanks; false on overflow or no digit. */
static bool parse_u64(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *sp = s;
    *out = v;
    return true;
}

/* SIZE (see DESIGN) in [s, end). */
static bool parse_size(const char *s, const char *end, uint64_t *out)
{
    char buf[32];
    const char *p = buf;
    uint64_t v;
    unsigned shift = 0;

    if ((size_t)(end - s) >= sizeof(buf))
        return false;
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = '\0';
    if (!parse_u64(&p, &v))
        return false;
    switch (*p) {
    case '\0': break;
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return false;
    }
    if (shift) {
        p++;
        if (strcmp(p, "iB") == 0)
            p += 2;
        if (*p != '\0')
            return false;
        if (v > (UINT64_MAX >> shift))
            return false;
        v <<= shift;
    }
    *out = v;
    return true;
}

/* "K+M" in [s, end). */
static bool parse_ec(const char *s, const char *end, uint64_t *k, uint64_t *m)
{
    char buf[32];
    const char *p = buf;

    if ((size_t)(end - s) >= sizeof(buf))
        return false;
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = '\0';
    if (!parse_u64(&p, k) || *p++ != '+' || !parse_u64(&p, m))
        return false;
    return *p == '\0';
}

static bool is_sep(char c)
{
    return c == ' ' || c == '\t' || c == ',';
}

int ckpt_layout_parse(const char *spec, struct ckpt_layout *inout,
                      const char **out_why)
{
    struct ckpt_layout l = *inout;
    bool have_ec = false, have_chunk = false, have_width = false;
    const char *why = NULL;
    const char *p = spec;
    int ntok = 0;

    if (!spec) {
        why = "no layout spec";
        goto out;
    }
    for (;;) {
        const char *tok, *eq, *end;
        uint64_t a, b;

        while (is_sep(*p))
            p++;
        if (*p == '\0')
            break;
        tok = p;
        while (*p != '\0' && !is_sep(*p))
            p++;
        end = p;
        eq = memchr(tok, '=', (size_t)(end - tok));
        ntok++;
        if (!eq) {
            why = "expected key=value (keys: ec, chunk, width)";
            goto out;
        }
        if (eq - tok == 2 && memcmp(tok, "ec", 2) == 0) {
            if (have_ec) {
                why = "ec given twice";
                goto out;
            }
            have_ec = true;
            if (!parse_ec(eq + 1, end, &a, &b)) {
                why = "ec must be K+M, e.g. ec=4+2";
                goto out;
            }
            if (a < 1 || a > CKPT_LAYOUT_MAX_K) {
                why = "k (data chunks per stripe) must be 1..16";
                goto out;
            }
            if (b > CKPT_LAYOUT_MAX_M) {
                why = "m (parity chunks per stripe) must be 0..4";
                goto out;
            }
            l.k = (uint8_t)a;
            l.m = (uint8_t)b;
        } else if (eq - tok == 5 && memcmp(tok, "chunk", 5) == 0) {
            if (have_chunk) {
                why = "chunk given twice";
                goto out;
            }
            have_chunk = true;
            if (!parse_size(eq + 1, end, &a)) {
                why = "chunk must be a size such as 1M (suffixes K M G, "
                      "powers of 1024)";
                goto out;
            }
            if (a < CKPT_LAYOUT_MIN_CHUNK || a > CKPT_LAYOUT_MAX_CHUNK) {
                why = "chunk size must be within 4K..64M";
                goto out;
            }
            l.chunk_size = (uint32_t)a;
        } else if (eq - tok == 5 && memcmp(tok, "width", 5) == 0) {
            const char *q = eq + 1;
            if (have_width) {
                why = "width given twice";
                goto out;
            }
            have_width = true;
            if (!parse_u64(&q, &a) || q != end) {
                why = "width must be an integer (0 means k+m)";
                goto out;
            }
            if (a > CKPT_LAYOUT_MAX_WIDTH) {
                why = "width must be at most 64";
                goto out;
            }
            l.width = (uint16_t)a;
        } else {
            why = "unknown key (keys: ec, chunk, width)";
            goto out;
        }
    }
    if (ntok == 0) {
        why = "empty layout spec";
        goto out;
    }
    /* ec= without width= and width=0 both mean "as wide as k+m". */
    if (l.width == 0 || (have_ec && !have_width))
        l.width = (uint16_t)(l.k + l.m);
    if (ckpt_layout_check(&l, &why) != 0)
        goto out;
    *inout = l;
out:
    if (out_why)
        *out_why = why;
    return why ? -EINVAL : 0;
}

/* Largest of T, G, M, K that divides v exactly. */
static int format_size(char *dst, size_t cap, uint64_t v)
{
    static const char units[] = "TGMK";
    for (int i = 0; i < 4 && v != 0; i++) {
        unsigned shift = (unsigned)(40 - 10 * i);
        if (v % (1ull << shift) == 0)
            return snprintf(dst, cap, "%llu%c",
                            (unsigned long long)(v >> shift), units[i]);
    }
    return snprintf(dst, cap, "%llu", (unsigned long long)v);
}

int ckpt_layout_format(char *dst, size_t cap, const struct ckpt_layout *l)
{
    char chunk[32];
    int n;

    format_size(chunk, sizeof(chunk), l->chunk_size);
    n = snprintf(dst, cap, "ec=%u+%u chunk=%s width=%u", (unsigned)l->k,
                 (unsigned)l->m, chunk, (unsigned)layout_width(l));
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= cap)
        return -ENOSPC;
    return n;
}

void ckpt_layout_default(struct ckpt_layout *l)
{
    memset(l, 0, sizeof(*l));
    l->k = CKPT_LAYOUT_DEFAULT_K;
    l->m = CKPT_LAYOUT_DEFAULT_M;
    l->width = CKPT_LAYOUT_DEFAULT_K + CKPT_LAYOUT_DEFAULT_M;
    l->chunk_size = CKPT_LAYOUT_DEFAULT_CHUNK;
}

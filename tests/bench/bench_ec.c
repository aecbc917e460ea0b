/*
 * bench_ec.c - single-thread throughput of lib/ec and lib/crc.
 *
 * Purpose: show what one core can encode, decode and checksum with 1 MiB
 * chunks (the default chunk size), and that the ckpt_ec wrapper costs
 * nothing next to calling ISA-L directly on the same buffers.  Rows:
 *
 *   encode K+M ckpt_ec      ckpt_ec_encode()
 *   encode K+M isa-l raw    ec_encode_data() with tables from
 *                           gf_gen_cauchy1_matrix + ec_init_tables, built
 *                           once outside the timed loop (as ckpt_ec does)
 *   decode K+M lost 1/2     ckpt_ec_decode() rebuilding 1 or 2 data chunks
 *                           from the survivors (tables cached after the
 *                           first call, as on a degraded read)
 *   crc32c                  ckpt_crc32c() over a 1 MiB buffer
 *
 * MB/s is 10^6 bytes of stripe data (k chunks) per second for EC rows, and
 * bytes checksummed per second for crc32c.  Buffers are 64-byte aligned and
 * stay the same across iterations (cache-warm, like a chunk that was just
 * written).  Each row runs for SECONDS (default 0.7, or argv[1]) after one
 * warm-up call.  Every decode is verified against the original once.
 *
 * Output: an aligned table, then one machine-readable line per row:
 *   bench_ec <name> <MB/s>
 * Exit status: 0, or 1 if a call failed or a decode gave wrong bytes.
 */
#include <errno.h>
#include <isa-l/erasure_code.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "crc.h"
#include "ec.h"
#include "err.h"

#define CHUNK ((size_t)1 << 20)
#define MAX_N (CKPT_EC_MAX_K + CKPT_EC_MAX_M)
#define MAX_ROWS 16

struct row {
    char label[48];
    char name[32];
    double mbps;
};

/* Everything the run shares, passed down (no globals, STYLE G.24). */
struct bench {
    double run_seconds;
    struct row rows[MAX_ROWS];
    int nrows;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void add_row(struct bench *b, const char *label, const char *name,
                    double mbps)
{
    if (b->nrows == MAX_ROWS)
        return;
    struct row *r = &b->rows[b->nrows++];
    snprintf(r->label, sizeof(r->label), "%s", label);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->mbps = mbps;
}

/* One benchmarked operation: returns 0 or a negative code. */
typedef int (*bench_fn)(void *arg);

/*
 * Call fn once to warm up, then repeatedly until run_seconds have passed.
 * @return MB/s for bytes_per_call, or a negative value if fn failed.
 */
static double bench_run(const struct bench *b, bench_fn fn, void *arg,
                        size_t bytes_per_call)
{
    int rc = fn(arg);
    if (rc < 0) {
        fprintf(stderr, "bench_ec: warm-up failed: " CKPT_RC_FMT "\n",
                CKPT_RC_ARGS(rc));
        return -1.0;
    }
    long calls = 0, batch = 1;
    double t0 = now_s(), t;
    do {
        for (long i = 0; i < batch; i++) {
            rc = fn(arg);
            if (rc < 0) {
                fprintf(stderr, "bench_ec: call failed: " CKPT_RC_FMT "\n",
                        CKPT_RC_ARGS(rc));
                return -1.0;
            }
        }
        calls += batch;
        if (batch < 64)
            batch *= 2;
        t = now_s();
    } while (t - t0 < b->run_seconds);
    return (double)calls * (double)bytes_per_call / (t - t0) / 1e6;
}

struct ec_ctx {
    int k, m;
    ckpt_ec *ec;
    uint8_t *chunk[MAX_N];
    uint8_t *orig[MAX_N];   /* copies of the encoded stripe */
    uint8_t *raw_tbls;      /* 32*k*m, for the raw ISA-L row */
    uint32_t erased;        /* for decode rows */
};

static int do_encode(void *arg)
{
    struct ec_ctx *c = arg;
    return ckpt_ec_encode(c->ec, CHUNK, c->chunk, c->chunk + c->k);
}

static int do_raw_encode(void *arg)
{
    struct ec_ctx *c = arg;
    ec_encode_data((int)CHUNK, c->k, c->m, c->raw_tbls, c->chunk,
                   c->chunk + c->k);
    return 0;
}

static int do_decode(void *arg)
{
    struct ec_ctx *c = arg;
    return ckpt_ec_decode(c->ec, CHUNK, c->chunk, c->erased);
}

static int bench_config(struct bench *b, int k, int m)
{
    struct ec_ctx c = {.k = k, .m = m};
    char label[48], name[32];
    uint8_t matrix[MAX_N * CKPT_EC_MAX_K];
    uint64_t x = 0x243F6A8885A308D3ULL;
    double enc, raw, dec;
    int rc = ckpt_ec_create(k, m, &c.ec);
    int status = 1;

    if (rc < 0) {
        fprintf(stderr, "bench_ec: ckpt_ec_create(%d,%d): " CKPT_RC_FMT "\n",
                k, m, CKPT_RC_ARGS(rc));
        return 1;
    }
    c.raw_tbls = ckpt_aligned_alloc(64, (size_t)32 * k * m);
    if (!c.raw_tbls)
        goto out;
    for (int i = 0; i < k + m; i++) {
        c.chunk[i] = ckpt_aligned_alloc(64, CHUNK);
        c.orig[i] = ckpt_malloc(CHUNK);
        if (!c.chunk[i] || !c.orig[i])
            goto out;
    }
    for (int i = 0; i < k; i++) {
        for (size_t off = 0; off < CHUNK; off += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(c.chunk[i] + off, &x, 8);
        }
    }
    gf_gen_cauchy1_matrix(matrix, k + m, k);
    ec_init_tables(k, m, &matrix[k * k], c.raw_tbls);

    enc = bench_run(b, do_encode, &c, (size_t)k * CHUNK);
    for (int i = 0; i < k + m; i++)
        memcpy(c.orig[i], c.chunk[i], CHUNK);
    raw = bench_run(b, do_raw_encode, &c, (size_t)k * CHUNK);
    for (int i = k; i < k + m; i++) {
        if (memcmp(c.orig[i], c.chunk[i], CHUNK) != 0) {
            fprintf(stderr, "bench_ec: %d+%d raw ISA-L parity %d differs\n",
                    k, m, i - k);
            goto out;
        }
    }
    if (enc < 0 || raw < 0)
        goto out;
    snprintf(label, sizeof(label), "encode %d+%d ckpt_ec", k, m);
    snprintf(name, sizeof(name), "encode_%d+%d", k, m);
    add_row(b, label, name, enc);
    snprintf(label, sizeof(label), "encode %d+%d isa-l raw", k, m);
    snprintf(name, sizeof(name), "isal_encode_%d+%d", k, m);
    add_row(b, label, name, raw);

    for (int lost = 1; lost <= 2 && lost <= m; lost++) {
        c.erased = lost == 1 ? 0x1u : 0x3u; /* chunks 0 (and 1) */
        for (int i = 0; i < lost; i++)
            memset(c.chunk[i], 0, CHUNK);
        dec = bench_run(b, do_decode, &c, (size_t)k * CHUNK);
        if (dec < 0)
            goto out;
        for (int i = 0; i < lost; i++) {
            if (memcmp(c.orig[i], c.chunk[i], CHUNK) != 0) {
                fprintf(stderr, "bench_ec: %d+%d decode lost %d: chunk %d "
                        "wrong\n", k, m, lost, i);
                goto out;
            }
        }
        snprintf(label, sizeof(label), "decode %d+%d lost %d data", k, m,
                 lost);
        snprintf(name, sizeof(name), "decode%d_%d+%d", lost, k, m);
        add_row(b, label, name, dec);
    }
    status = 0;
out:
    if (status)
        fprintf(stderr, "bench_ec: %d+%d failed\n", k, m);
    for (int i = 0; i < k + m; i++) {
        ckpt_free(c.chunk[i]);
        ckpt_free(c.orig[i]);
    }
    ckpt_free(c.raw_tbls);
    ckpt_ec_destroy(c.ec);
    return status;
}

struct crc_ctx {
    uint8_t *buf;
    uint32_t sink;
};

static int do_crc(void *arg)
{
    struct crc_ctx *c = arg;
    c->sink ^= ckpt_crc32c(0, c->buf, CHUNK);
    return 0;
}

static int bench_crc(struct bench *b)
{
    struct crc_ctx c = {0};
    c.buf = ckpt_aligned_alloc(64, CHUNK);
    if (!c.buf)
        return 1;
    for (size_t i = 0; i < CHUNK; i++)
        c.buf[i] = (uint8_t)(i * 131u + 7u);
    double mbps = bench_run(b, do_crc, &c, CHUNK);
    ckpt_free(c.buf);
    if (mbps < 0)
        return 1;
    add_row(b, "crc32c 1 MiB", "crc32c", mbps);
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench b = {.run_seconds = 0.7};
    int status = 0;

    if (argc > 1) {
        char *end;
        errno = 0;
        b.run_seconds = strtod(argv[1], &end);
        if (errno || *end || !(b.run_seconds > 0 && b.run_seconds <= 60)) {
            fprintf(stderr, "usage: %s [seconds-per-row (0..60]]\n", argv[0]);
            return 2;
        }
    }
    status |= bench_config(&b, 4, 2);
    status |= bench_config(&b, 8, 2);
    status |= bench_crc(&b);

    printf("bench_ec: 1 MiB chunks, one thread, %.1f s per row; "
           "MB/s = 10^6 data bytes/s\n", b.run_seconds);
    printf("  %-26s %10s\n", "operation", "MB/s");
    for (int i = 0; i < b.nrows; i++) {
        const struct row *r = &b.rows[i];
        if (strcmp(r->name, "crc32c") == 0)
            printf("  %-26s %10.0f  (%.2f GB/s)\n", r->label, r->mbps,
                   r->mbps / 1e3);
        else
            printf("  %-26s %10.0f\n", r->label, r->mbps);
    }
    for (int i = 0; i < b.nrows; i++)
        printf("bench_ec %s %.0f\n", b.rows[i].name, b.rows[i].mbps);
    return status ? 1 : 0;
}

/*
 * fuzz_config.c - fuzz target for the configuration parser (lib/config.c).
 *
 * The input is fed twice: once whole, as the text of a ckptfs.conf file
 * (ckpt_config_load_string, which drives libinih through config.c's line
 * reader), and once line by line as command-line overrides
 * ("section.key=value", ckpt_config_set_arg).  Besides "no crash, no
 * sanitizer report", it checks the parser's promises: a result is 0,
 * CKPT_E_CONFIG or -ENOMEM; every error comes with a message; a failed load
 * leaves the config untouched; a config that loaded (or passes
 * ckpt_config_check after overrides) is valid, and ckpt_config_write()
 * output loads back to the same value for every key; nothing leaks through
 * the ckpt_alloc wrapper.  A broken promise aborts, which the driver reports
 * as a crash.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond, const char *what, const char *detail)
{
    if (!cond) {
        fprintf(stderr, "fuzz_config: %s (%s)\n", what, detail ? detail : "");
        abort();
    }
}

/* Every error code must come with a NUL-terminated message. */
static void check_result(int rc, const char *err, size_t cap)
{
    require(rc == 0 || rc == CKPT_E_CONFIG || rc == -ENOMEM, "unexpected result code", err);
    require(memchr(err, '\0', cap) != NULL, "error message not terminated", NULL);
    require(rc == 0 || err[0] != '\0', "error without a message", NULL);
}

/* A valid config writes out and loads back to the same keys. */
static void check_round_trip(const struct ckpt_config *cfg)
{
    struct ckpt_config back;
    char err[512];
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    int rc;

    require(ckpt_layout_check(&cfg->layout.def, NULL) == 0, "invalid default layout", NULL);
    f = open_memstream(&text, &len);
    if (!f)
        return; /* out of memory in the harness itself */
    rc = ckpt_config_write(cfg, f);
    fclose(f);
    if (rc != 0 || !text) {
        free(text);
        return;
    }
    ckpt_config_init(&back);
    rc = ckpt_config_load_string(&back, text, len, "written", err, sizeof(err));
    require(rc == 0, "written config does not load", err);
    back.node.targets_source = cfg->node.targets_source; /* bookkeeping, not a key */
    require(memcmp(&back, cfg, sizeof(back)) == 0, "written config loads differently", text);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ckpt_config cfg, before;
    char err[512];
    long live = ckpt_alloc_live();
    int rc;

    /* 1. the whole input as a file */
    ckpt_config_init(&cfg);
    before = cfg;
    memset(err, 'x', sizeof(err));
    rc = ckpt_config_load_string(&cfg, (const char *)data, size, "fuzz.conf", err, sizeof(err));
    check_result(rc, err, sizeof(err));
    if (rc == 0) {
        require(ckpt_config_check(&cfg, err, sizeof(err)) == 0, "loaded config fails check",
                err);
        check_round_trip(&cfg);
    } else {
        require(memcmp(&cfg, &before, sizeof(cfg)) == 0, "failed load changed the config",
                err);
    }
    ckpt_config_free(&cfg);

    /* 2. each line as a command-line override */
    ckpt_config_init(&cfg);
    for (size_t pos = 0; pos < size;) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
        char arg[512];
        if (n < sizeof(arg)) {
            memcpy(arg, data + pos, n);
            arg[n] = '\0';
            before = cfg;
            memset(err, 'x', sizeof(err));
            rc = ckpt_config_set_arg(&cfg, arg, err, sizeof(err));
            check_result(rc, err, sizeof(err));
            if (rc != 0)
                require(memcmp(&cfg, &before, sizeof(cfg)) == 0,
                        "failed override changed the config", err);
        }
        pos += n + 1;
    }
    if (ckpt_config_check(&cfg, err, sizeof(err)) == 0)
        check_round_trip(&cfg);
    ckpt_config_free(&cfg);

    require(ckpt_alloc_live() == live, "allocation leaked", NULL);
    return 0;
}

#include "fuzz_main.inc"

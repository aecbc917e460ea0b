/*
 * check_config.c - unit tests for lib/config.c: defaults of every key, valid
 * and invalid values of every key (boundaries, overflow, signs, trailing
 * junk, empty) through both the file and the override path, FILE:LINE in
 * messages, unknown sections and keys, repeated keys and targets, override
 * precedence, rules between keys, write -> load round trips, missing and
 * oversized files, the value parsers, and allocation/read failures.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "layout.h"
#include "log.h"

Suite *config_suite(void);

#define ERRCAP 512

static int load_text(struct ckpt_config *c, const char *text, char *err)
{
    return ckpt_config_load_string(c, text, strlen(text), "test.conf", err, ERRCAP);
}

/* Write text to a new temporary file; path goes to out (cap 64). */
static void temp_file(char *out, const void *text, size_t len)
{
    snprintf(out, 64, "/tmp/check_config.XXXXXX");
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

/* The value of one key of c as a string, for comparing with expectations. */
static void field_str(const struct ckpt_config *c, const char *sec, const char *key, char *out,
                      size_t cap)
{
#define IS(s, k) (strcmp(sec, s) == 0 && strcmp(key, k) == 0)
#define U(v) snprintf(out, cap, "%llu", (unsigned long long)(v))
#define A(a) snprintf(out, cap, "%s|%u", (a).host, (unsigned)(a).port)
    out[0] = '\0';
    if (IS("cluster", "name")) snprintf(out, cap, "%s", c->cluster.name);
    else if (IS("cluster", "key_file")) snprintf(out, cap, "%s", c->cluster.key_file);
    else if (IS("cluster", "meta")) A(c->cluster.meta);
    else if (IS("cluster", "transport")) U(c->cluster.transport);
    else if (IS("meta", "listen")) A(c->meta.listen);
    else if (IS("meta", "data_dir")) snprintf(out, cap, "%s", c->meta.data_dir);
    else if (IS("meta", "down_after")) U(c->meta.down_after_ms);
    else if (IS("meta", "out_after")) U(c->meta.out_after_ms);
    else if (IS("meta", "metrics_listen")) A(c->meta.metrics_listen);
    else if (IS("meta", "log_file")) snprintf(out, cap, "%s", c->meta.log_file);
    else if (IS("meta", "log_level")) U(c->meta.log_level);
    else if (IS("node", "listen")) A(c->node.listen);
    else if (IS("node", "target"))
        snprintf(out, cap, "%u:%s", c->node.ntargets,
                 c->node.ntargets ? c->node.targets[c->node.ntargets - 1] : "");
    else if (IS("node", "reserve"))
        snprintf(out, cap, "%s%llu", c->node.reserve_is_pct ? "pct:" : "bytes:",
                 c->node.reserve_is_pct ? (unsigned long long)c->node.reserve_pct
                                        : (unsigned long long)c->node.reserve_bytes);
    else if (IS("node", "sync")) U(c->node.sync);
    else if (IS("node", "io_threads")) U(c->node.io_threads);
    else if (IS("node", "rack")) snprintf(out, cap, "%s", c->node.rack);
    else if (IS("node", "name")) snprintf(out, cap, "%s", c->node.name);
    else if (IS("node", "metrics_listen")) A(c->node.metrics_listen);
    else if (IS("node", "log_file")) snprintf(out, cap, "%s", c->node.log_file);
    else if (IS("node", "log_level")) U(c->node.log_level);
    else if (IS("client", "dirty_limit")) U(c->client.dirty_limit_bytes);
    else if (IS("client", "threads")) U(c->client.threads);
    else if (IS("client", "readahead")) U(c->client.readahead_bytes);
    else if (IS("client", "attr_timeout")) U(c->client.attr_timeout_ms);
    else if (IS("client", "entry_timeout")) U(c->client.entry_timeout_ms);
    else if (IS("client", "buffer_keep")) U(c->client.buffer_keep_ms);
    else if (IS("client", "log_level")) U(c->client.log_level);
    else if (IS("layout", "ec")) snprintf(out, cap, "%u+%u", c->layout.def.k, c->layout.def.m);
    else if (IS("layout", "chunk")) U(c->layout.def.chunk_size);
    else if (IS("layout", "width"))
        snprintf(out, cap, "%u/%u", c->layout.width, c->layout.def.width);
    else ck_abort_msg("test knows no key [%s] %s", sec, key);
#undef IS
#undef U
#undef A
}

/* ------------------------------------------------------------------------ */

START_TEST(test_defaults)
{
    struct ckpt_config c;
    char host[256] = "", *dot;

    memset(&c, 0x5a, sizeof(c));
    ckpt_config_init(&c);
    ck_assert_str_eq(c.cluster.name, "ckptfs");
    ck_assert_str_eq(c.cluster.key_file, "/etc/ckptfs/cluster.key");
    ck_assert_str_eq(c.cluster.meta.host, "127.0.0.1");
    ck_assert_uint_eq(c.cluster.meta.port, 7400);
    ck_assert_int_eq(c.cluster.transport, CKPT_CONFIG_TRANSPORT_AUTO);

    ck_assert_str_eq(c.meta.listen.host, "0.0.0.0");
    ck_assert_uint_eq(c.meta.listen.port, 7400);
    ck_assert_str_eq(c.meta.data_dir, "/var/lib/ckptfs/meta");
    ck_assert_uint_eq(c.meta.down_after_ms, 5000);
    ck_assert_uint_eq(c.meta.out_after_ms, 60000);
    ck_assert_str_eq(c.meta.metrics_listen.host, "");
    ck_assert_uint_eq(c.meta.metrics_listen.port, 0);
    ck_assert_str_eq(c.meta.log_file, "");
    ck_assert_int_eq(c.meta.log_level, CKPT_LOG_LVL_INFO);

    ck_assert_str_eq(c.node.listen.host, "0.0.0.0");
    ck_assert_uint_eq(c.node.listen.port, 7401);
    ck_assert_uint_eq(c.node.ntargets, 0);
    ck_assert(c.node.reserve_is_pct);
    ck_assert_uint_eq(c.node.reserve_pct, 5);
    ck_assert_uint_eq(c.node.reserve_bytes, 0);
    ck_assert_int_eq(c.node.sync, CKPT_CONFIG_SYNC_COMMIT);
    ck_assert_uint_eq(c.node.io_threads, 8);
    ck_assert_str_eq(c.node.rack, "");
    ck_assert_int_eq(gethostname(host, sizeof(host) - 1), 0);
    if ((dot = strchr(host, '.')))
        *dot = '\0';
    ck_assert_str_eq(c.node.name, host);
    ck_assert_str_eq(c.node.metrics_listen.host, "");
    ck_assert_str_eq(c.node.log_file, "");
    ck_assert_int_eq(c.node.log_level, CKPT_LOG_LVL_INFO);

    ck_assert_uint_eq(c.client.dirty_limit_bytes, 2ull << 30);
    ck_assert_uint_eq(c.client.threads, 8);
    ck_assert_uint_eq(c.client.readahead_bytes, 32ull << 20);
    ck_assert_uint_eq(c.client.attr_timeout_ms, 1000);
    ck_assert_uint_eq(c.client.entry_timeout_ms, 1000);
    ck_assert_uint_eq(c.client.buffer_keep_ms, 30 * 60 * 1000);
    ck_assert_int_eq(c.client.log_level, CKPT_LOG_LVL_INFO);

    ck_assert_uint_eq(c.layout.def.k, 4);
    ck_assert_uint_eq(c.layout.def.m, 2);
    ck_assert_uint_eq(c.layout.def.chunk_size, 1u << 20);
    ck_assert_uint_eq(c.layout.def.width, 6);
    ck_assert_uint_eq(c.layout.width, 0);

    char err[ERRCAP];
    ck_assert_int_eq(ckpt_config_check(&c, err, sizeof(err)), 0);
    /* an empty file and a comments-only file change nothing */
    struct ckpt_config d;
    ckpt_config_init(&d);
    ck_assert_int_eq(load_text(&d, "", err), 0);
    ck_assert_int_eq(load_text(&d, "; nothing\n# here\n\n", err), 0);
    ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
    /* free resets to the defaults; NULL is fine */
    ck_assert_int_eq(ckpt_config_set(&d, "node", "io_threads", "9", "t", err, sizeof(err)), 0);
    ckpt_config_free(&d);
    ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
    ckpt_config_free(NULL);
    ckpt_config_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */

struct vcase {
    const char *sec, *key, *val;
    const char *want; /* field_str() after success; NULL = must be rejected */
};

#define LONGNAME "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk" /* 63 */
#define P10 "/123456789"
#define PATH180 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10
#define LBL "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 63 */

static const struct vcase vcases[] = {
    {"cluster", "name", "a", "a"},
    {"cluster", "name", LONGNAME, LONGNAME},
    {"cluster", "name", "my-cluster_1.x", "my-cluster_1.x"},
    {"cluster", "name", LONGNAME "x", NULL},
    {"cluster", "name", "", NULL},
    {"cluster", "name", "has space", NULL},
    {"cluster", "name", "slash/no", NULL},
    {"cluster", "name", "caf\xc3\xa9", NULL},
    {"cluster", "key_file", "/k", "/k"},
    {"cluster", "key_file", PATH180, PATH180},
    {"cluster", "key_file", PATH180 "x", NULL},
    {"cluster", "key_file", "relative/key", NULL},
    {"cluster", "key_file", "", NULL},
    {"cluster", "key_file", "/a\tb", NULL},
    {"cluster", "meta", "10.0.0.1:7400", "10.0.0.1|7400"},
    {"cluster", "meta", "meta-1.example.com:1", "meta-1.example.com|1"},
    {"cluster", "meta", "localhost:65535", "localhost|65535"},
    {"cluster", "meta", "[::1]:7400", "::1|7400"},
    {"cluster", "meta", "[fe80::1:2]:80", "fe80::1:2|80"},
    {"cluster", "meta", LBL "." LBL ":1", LBL "." LBL "|1"},
    {"cluster", "meta", "10.0.0.1:0", NULL},
    {"cluster", "meta", "10.0.0.1", NULL},
    {"cluster", "meta", "10.0.0.1:65536", NULL},
    {"cluster", "meta", "10.0.0.1:99999999999999999999", NULL},
    {"cluster", "meta", ":7400", NULL},
    {"cluster", "meta", "::1:7400", NULL},
    {"cluster", "meta", "[::1]7400", NULL},
    {"cluster", "meta", "[::1]:", NULL},
    {"cluster", "meta", "[]:1", NULL},
    {"cluster", "meta", "[zz::]:1", NULL},
    {"cluster", "meta", "[10.0.0.1]:1", NULL},
    {"cluster", "meta", "256.1.1.1:1", NULL},
    {"cluster", "meta", "1.2.3:1", NULL},
    {"cluster", "meta", "-bad:1", NULL},
    {"cluster", "meta", "bad-:1", NULL},
    {"cluster", "meta", "a..b:1", NULL},
    {"cluster", "meta", "a.:1", NULL},
    {"cluster", "meta", LBL "a.b:1", NULL},
    {"cluster", "meta", "host:port", NULL},
    {"cluster", "meta", "host:+1", NULL},
    {"cluster", "meta", "host:-1", NULL},
    {"cluster", "meta", "host:1x", NULL},
    {"cluster", "meta", "host: 1", NULL},
    {"cluster", "meta", "ho st:1", NULL},
    {"cluster", "meta", "", NULL},
    {"cluster", "transport", "tcp", "0"},
    {"cluster", "transport", "rdma", "1"},
    {"cluster", "transport", "auto", "2"},
    {"cluster", "transport", "TCP", "0"},
    {"cluster", "transport", "ib", NULL},
    {"cluster", "transport", "", NULL},
    {"cluster", "transport", "tcp,rdma", NULL},
    {"meta", "listen", "0.0.0.0:0", "0.0.0.0|0"},
    {"meta", "listen", "[::]:7400", "::|7400"},
    {"meta", "listen", "", NULL},
    {"meta", "data_dir", "/srv/meta", "/srv/meta"},
    {"meta", "data_dir", "srv/meta", NULL},
    {"meta", "down_after", "1s", "1000"},
    {"meta", "down_after", "1000ms", "1000"},
    {"meta", "down_after", "1h", "3600000"},
    {"meta", "down_after", "60m", "3600000"},
    {"meta", "down_after", "999ms", NULL},
    {"meta", "down_after", "61m", NULL},
    {"meta", "down_after", "0", NULL},
    {"meta", "down_after", "5", NULL},
    {"meta", "down_after", "5sx", NULL},
    {"meta", "down_after", "-5s", NULL},
    {"meta", "down_after", "5 s", NULL},
    {"meta", "down_after", "1.5s", NULL},
    {"meta", "down_after", "1d", NULL},
    {"meta", "down_after", "s", NULL},
    {"meta", "down_after", "99999999999999999999h", NULL},
    {"meta", "down_after", "9999999999999999h", NULL},
    {"meta", "down_after", "", NULL},
    {"meta", "out_after", "168h", "604800000"},
    {"meta", "out_after", "169h", NULL},
    {"meta", "out_after", "7d", NULL},
    {"meta", "metrics_listen", "", "|0"},
    {"meta", "metrics_listen", "127.0.0.1:9100", "127.0.0.1|9100"},
    {"meta", "metrics_listen", "0.0.0.0:0", "0.0.0.0|0"},
    {"meta", "metrics_listen", "9100", NULL},
    {"meta", "log_file", "", ""},
    {"meta", "log_file", "/var/log/ckpt-meta.log", "/var/log/ckpt-meta.log"},
    {"meta", "log_file", "meta.log", NULL},
    {"meta", "log_level", "err", "3"},
    {"meta", "log_level", "warn", "4"},
    {"meta", "log_level", "info", "6"},
    {"meta", "log_level", "debug", "7"},
    {"meta", "log_level", "ERROR", "3"},
    {"meta", "log_level", "warning", "4"},
    {"meta", "log_level", "trace", NULL},
    {"meta", "log_level", "3", NULL},
    {"meta", "log_level", "", NULL},
    {"node", "listen", "0.0.0.0:7401", "0.0.0.0|7401"},
    {"node", "listen", "node-1:0", "node-1|0"},
    {"node", "target", "/data/ssd0", "1:/data/ssd0"},
    {"node", "target", "/data/ssd0//", "1:/data/ssd0"},
    {"node", "target", "/", "1:/"},
    {"node", "target", PATH180, "1:" PATH180},
    {"node", "target", PATH180 "1", NULL},
    {"node", "target", "data/ssd0", NULL},
    {"node", "target", "/data/a /", NULL}, /* would end in a blank once "/" is cut */
    {"node", "target", "", NULL},
    {"node", "reserve", "5%", "pct:5"},
    {"node", "reserve", "0%", "pct:0"},
    {"node", "reserve", "90%", "pct:90"},
    {"node", "reserve", "10G", "bytes:10737418240"},
    {"node", "reserve", "0", "bytes:0"},
    {"node", "reserve", "4096", "bytes:4096"},
    {"node", "reserve", "91%", NULL},
    {"node", "reserve", "100%", NULL},
    {"node", "reserve", "%", NULL},
    {"node", "reserve", "5.5%", NULL},
    {"node", "reserve", "-5%", NULL},
    {"node", "reserve", "5%%", NULL},
    {"node", "reserve", "99999999999999999999%", NULL},
    {"node", "reserve", "99999999999T", NULL},
    {"node", "reserve", "-1G", NULL},
    {"node", "reserve", "", NULL},
    {"node", "sync", "commit", "0"},
    {"node", "sync", "always", "1"},
    {"node", "sync", "never", "2"},
    {"node", "sync", "sometimes", NULL},
    {"node", "io_threads", "1", "1"},
    {"node", "io_threads", "256", "256"},
    {"node", "io_threads", "0", NULL},
    {"node", "io_threads", "257", NULL},
    {"node", "io_threads", "-1", NULL},
    {"node", "io_threads", "+8", NULL},
    {"node", "io_threads", "8x", NULL},
    {"node", "io_threads", "0x10", NULL},
    {"node", "io_threads", "4294967304", NULL}, /* 2^32 + 8 must not wrap to 8 */
    {"node", "io_threads", "", NULL},
    {"node", "rack", "", ""},
    {"node", "rack", "rack-07", "rack-07"},
    {"node", "rack", "rack 7", NULL},
    {"node", "name", "n1", "n1"},
    {"node", "name", "", NULL},
    {"node", "name", "n1:7401", NULL},
    {"node", "metrics_listen", "", "|0"},
    {"node", "metrics_listen", "[::1]:9101", "::1|9101"},
    {"node", "log_file", "/var/log/ckpt-node.log", "/var/log/ckpt-node.log"},
    {"node", "log_level", "debug", "7"},
    {"node", "log_level", "loud", NULL},
    {"client", "dirty_limit", "64M", "67108864"},
    {"client", "dirty_limit", "67108864", "67108864"},
    {"client", "dirty_limit", "1T", "1099511627776"},
    {"client", "dirty_limit", "1024G", "1099511627776"},
    {"client", "dirty_limit", "2g", "2147483648"},
    {"client", "dirty_limit", "2GiB", "2147483648"},
    {"client", "dirty_limit", "63M", NULL},
    {"client", "dirty_limit", "67108863", NULL},
    {"client", "dirty_limit", "1025G", NULL},
    {"client", "dirty_limit", "2GB", NULL},
    {"client", "dirty_limit", "2 G", NULL},
    {"client", "dirty_limit", "1.5G", NULL},
    {"client", "dirty_limit", "99999999999T", NULL},
    {"client", "dirty_limit", "16777216T", NULL}, /* 2^64: overflows */
    {"client", "dirty_limit", "-1G", NULL},
    {"client", "dirty_limit", "G", NULL},
    {"client", "dirty_limit", "", NULL},
    {"client", "threads", "1", "1"},
    {"client", "threads", "256", "256"},
    {"client", "threads", "0", NULL},
    {"client", "threads", "300", NULL},
    {"client", "readahead", "0", "0"},
    {"client", "readahead", "1G", "1073741824"},
    {"client", "readahead", "1025M", NULL},
    {"client", "attr_timeout", "0", "0"},
    {"client", "attr_timeout", "0s", "0"},
    {"client", "attr_timeout", "500ms", "500"},
    {"client", "attr_timeout", "1h", "3600000"},
    {"client", "attr_timeout", "3600001ms", NULL},
    {"client", "attr_timeout", "2h", NULL},
    {"client", "buffer_keep", "0", "0"},
    {"client", "buffer_keep", "24h", "86400000"},
    {"client", "buffer_keep", "25h", NULL},
    {"client", "entry_timeout", "2m", "120000"},
    {"client", "entry_timeout", "5sx", NULL},
    {"client", "log_level", "warn", "4"},
    {"client", "log_level", "", NULL},
    {"layout", "ec", "8+2", "8+2"},
    {"layout", "ec", "16+4", "16+4"},
    {"layout", "ec", "1+0", "1+0"},
    {"layout", "ec", "17+1", NULL},
    {"layout", "ec", "0+1", NULL},
    {"layout", "ec", "4+5", NULL},
    {"layout", "ec", "4-2", NULL},
    {"layout", "ec", "4+2 chunk=1M", NULL},
    {"layout", "ec", "4+2,chunk=1M", NULL},
    {"layout", "ec", "4", NULL},
    {"layout", "ec", "", NULL},
    {"layout", "chunk", "4K", "4096"},
    {"layout", "chunk", "64M", "67108864"},
    {"layout", "chunk", "12288", "12288"},
    {"layout", "chunk", "6K", NULL},
    {"layout", "chunk", "2K", NULL},
    {"layout", "chunk", "128M", NULL},
    {"layout", "chunk", "1M,ec=1+0", NULL},
    {"layout", "chunk", "99999999999T", NULL},
    {"layout", "chunk", "", NULL},
    {"layout", "width", "0", "0/6"},
    {"layout", "width", "6", "6/6"},
    {"layout", "width", "64", "64/64"},
    {"layout", "width", "65", NULL},
    {"layout", "width", "-1", NULL},
    {"layout", "width", "six", NULL},
    {"layout", "width", "", NULL},
};

/* Values that rely on inih stripping blanks are tested only as overrides. */
START_TEST(test_values_file_and_override)
{
    for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
        const struct vcase *v = &vcases[i];
        struct ckpt_config c, before;
        char text[1024], err[ERRCAP], got[512], prefix[512];
        const char *extra = "";
        int rc;

        /* keep the rules between keys satisfied for the duration keys */
        if (strcmp(v->key, "down_after") == 0)
            extra = "out_after = 168h\n";
        else if (strcmp(v->key, "out_after") == 0)
            extra = "down_after = 1s\n";

        /* through a file: the key is on line 3 */
        ckpt_config_init(&c);
        before = c;
        snprintf(text, sizeof(text), "# case %zu\n[%s]\n%s = %s\n%s", i, v->sec, v->key, v->val,
                 extra);
        rc = load_text(&c, text, err);
        if (v->want) {
            ck_assert_msg(rc == 0, "file: [%s] %s = %s rejected: %s", v->sec, v->key, v->val,
                          err);
            field_str(&c, v->sec, v->key, got, sizeof(got));
            ck_assert_msg(strcmp(got, v->want) == 0, "file: [%s] %s = %s gave %s, not %s",
                          v->sec, v->key, v->val, got, v->want);
        } else {
            ck_assert_msg(rc == CKPT_E_CONFIG, "file: [%s] %s = %s accepted (rc %d)", v->sec,
                          v->key, v->val, rc);
            /* "FILE:LINE: [section] key = value: what is allowed" */
            /* values past 64 bytes are cut in messages */
            snprintf(prefix, sizeof(prefix), "test.conf:3: [%s] %s = %.64s%s", v->sec, v->key,
                     v->val, strlen(v->val) > 64 ? "...: " : ": ");
            if (!strchr(v->val, '\t'))
                ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0 &&
                                  strlen(err) > strlen(prefix) + 10,
                              "message \"%s\" does not start with \"%s\"", err, prefix);
            ck_assert_msg(memcmp(&c, &before, sizeof(c)) == 0, "failed load changed cfg");
        }

        /* as an override */
        ckpt_config_init(&c);
        before = c;
        rc = ckpt_config_set(&c, v->sec, v->key, v->val, "--set", err, sizeof(err));
        if (v->want) {
            ck_assert_msg(rc == 0, "set: [%s] %s = %s rejected: %s", v->sec, v->key, v->val,
                          err);
            field_str(&c, v->sec, v->key, got, sizeof(got));
            ck_assert_msg(strcmp(got, v->want) == 0, "set: [%s] %s = %s gave %s, not %s",
                          v->sec, v->key, v->val, got, v->want);
        } else {
            ck_assert_msg(rc == CKPT_E_CONFIG, "set: [%s] %s = %s accepted", v->sec, v->key,
                          v->val);
            snprintf(prefix, sizeof(prefix), "--set: [%s] %s = ", v->sec, v->key);
            ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "message \"%s\"", err);
            ck_assert_msg(memcmp(&c, &before, sizeof(c)) == 0, "failed set changed cfg");
        }
    }
}
END_TEST

START_TEST(test_value_rules)
{
    struct ckpt_config c;
    char err[ERRCAP];
    /* Values a file cannot carry are refused as overrides too, so that
     * ckpt_config_write() output always reads back. */
    static const char *const bad[] = {" /a", "/a ", "/a\n", "/a ;b", "/a #b", "/a\x7f"};

    ckpt_config_init(&c);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(ckpt_config_set(&c, "meta", "data_dir", bad[i], "--set", err,
                                         sizeof(err)), CKPT_E_CONFIG);
        ck_assert_ptr_nonnull(strstr(err, "--set: [meta] data_dir = "));
    }
    /* control characters are shown escaped */
    ck_assert_int_eq(ckpt_config_set(&c, "meta", "data_dir", "/a\nb", "--set", err,
                                     sizeof(err)), CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "/a\\x0ab"));
    /* '#' and ';' inside a value are fine without a blank before them */
    ck_assert_int_eq(ckpt_config_set(&c, "meta", "data_dir", "/srv/a#1;b", "--set", err,
                                     sizeof(err)), 0);
    ck_assert_str_eq(c.meta.data_dir, "/srv/a#1;b");
    /* in a file, " #" after a value is refused with a hint */
    ck_assert_int_eq(load_text(&c, "[node]\ntarget = /data/a # first ssd\n", err),
                     CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "test.conf:2: [node] target = /data/a # first ssd"));
    ck_assert_ptr_nonnull(strstr(err, "comment"));
    /* a very long value is cut in the message */
    ck_assert_int_eq(ckpt_config_set(&c, "node", "name", PATH180, "x", err, sizeof(err)),
                     CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "..."));
    ck_assert_int_lt((int)strlen(err), 300);
    /* NULL arguments */
    ck_assert_int_eq(ckpt_config_set(&c, NULL, "k", "v", "x", err, sizeof(err)), CKPT_E_CONFIG);
    ck_assert_int_eq(ckpt_config_set(&c, "node", "name", NULL, NULL, err, sizeof(err)),
                     CKPT_E_CONFIG);
    ck_assert_int_eq(ckpt_config_set_arg(&c, NULL, err, sizeof(err)), CKPT_E_CONFIG);
}
END_TEST

START_TEST(test_unknown_section_and_key)
{
    struct ckpt_config c, before;
    char err[ERRCAP];

    ckpt_config_init(&c);
    before = c;
    ck_assert_int_eq(load_text(&c, "[node]\nio_threads = 4\ntagret = /x\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:3: [node] tagret = /x: unknown key", 44) == 0, "%s",
                  err);
    ck_assert_ptr_nonnull(strstr(err, "target")); /* the keys of [node] are listed */
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);

    ck_assert_int_eq(load_text(&c, "; x\n\n[nodes]\nlisten = 1.2.3.4:5\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:3: [nodes]: unknown section", 37) == 0, "%s", err);
    /* an unknown section with no keys is still an error */
    ck_assert_int_eq(load_text(&c, "[node]\n[bogus]\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: [bogus]: unknown section", 37) == 0, "%s", err);
    /* section names are case-sensitive, as are keys */
    ck_assert_int_eq(load_text(&c, "[Node]\n", err), CKPT_E_CONFIG);
    ck_assert_int_eq(load_text(&c, "[node]\nIO_THREADS = 4\n", err), CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown key"));
    /* a key before any section */
    ck_assert_int_eq(load_text(&c, "io_threads = 4\n[node]\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:1: ", 13) == 0 && strstr(err, "before any [section]"),
                  "%s", err);
    /* a key valid elsewhere is unknown in the wrong section */
    ck_assert_int_eq(load_text(&c, "[client]\ntarget = /x\n", err), CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "test.conf:2: [client] target = /x: unknown key"));
    /* text after a section header */
    ck_assert_int_eq(load_text(&c, "[node] x\n", err), CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "test.conf:1: "));
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);

    /* overrides */
    ck_assert_int_eq(ckpt_config_set(&c, "node", "bogus", "1", "--set", err, sizeof(err)),
                     CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "--set: [node] bogus = 1: unknown key", 36) == 0, "%s", err);
    ck_assert_int_eq(ckpt_config_set(&c, "bogus", "x", "1", "--set", err, sizeof(err)),
                     CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "unknown section"));
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
}
END_TEST

START_TEST(test_syntax_and_lines)
{
    struct ckpt_config c;
    char err[ERRCAP];

    ckpt_config_init(&c);
    /* line numbers count comments, blanks and CRLF lines */
    ck_assert_int_eq(load_text(&c, "# a\r\n; b\r\n\r\n[node]\r\n  \r\nio_threads = 4\r\nsync = x\r\n",
                               err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:7: [node] sync = x: one of commit, always, never",
                          58) == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[node]\nlisten 0.0.0.0:1\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: expected", 21) == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[node]\nsync: never\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: expected key = value", 33) == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[node]\nlisten\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: expected", 21) == 0, "%s", err);
    /* ':' after the '=' is part of the value */
    ck_assert_int_eq(load_text(&c, "[node]\nlisten = [::1]:7\n", err), 0);
    ck_assert_str_eq(c.node.listen.host, "::1");
    ck_assert_int_eq(load_text(&c, "[node\nio_threads = 4\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:1: ", 13) == 0, "%s", err);
    /* the first error wins, whichever kind */
    ck_assert_int_eq(load_text(&c, "[node]\ngarbage\nbogus = 1\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: expected", 21) == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[node]\nbogus = 1\ngarbage\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: [node] bogus", 25) == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[node]\ngarbage\n[nope]\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:2: expected", 21) == 0, "%s", err);

    /* comments, inline " ;" comments, indentation, BOM, no final newline */
    ckpt_config_init(&c);
    ck_assert_int_eq(load_text(&c,
                               "\xef\xbb\xbf; comment\n"
                               "# comment\n"
                               "  [node] ; the storage daemon\n"
                               "    io_threads = 4 ; inline comment\n"
                               "\ttarget = /data/a\n"
                               "    target = /data/b\n"
                               "sync=never\n"
                               "[client]\n"
                               "threads=3",
                               err), 0);
    ck_assert_uint_eq(c.node.io_threads, 4);
    ck_assert_uint_eq(c.node.ntargets, 2);
    ck_assert_str_eq(c.node.targets[0], "/data/a");
    ck_assert_str_eq(c.node.targets[1], "/data/b");
    ck_assert_int_eq(c.node.sync, CKPT_CONFIG_SYNC_NEVER);
    ck_assert_uint_eq(c.client.threads, 3);

    /* a line of 198 bytes fits inih's buffer; 199 does not */
    char text[1024];
    memset(text, 0, sizeof(text));
    strcpy(text, "[node]\n#");
    memset(text + 8, 'x', 197);
    strcat(text, "\nio_threads = 5\n");
    ck_assert_msg(load_text(&c, text, err) == 0, "%s", err);
    ck_assert_uint_eq(c.node.io_threads, 5);
    memset(text, 0, sizeof(text));
    strcpy(text, "[node]\n#");
    memset(text + 8, 'x', 198);
    strcat(text, "\nio_threads = 6\n");
    ck_assert_int_eq(load_text(&c, text, err), CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "test.conf:2: line longer than 198 bytes") == 0, "%s", err);
    ck_assert_uint_eq(c.node.io_threads, 5);
    /* leading blanks do not count against the limit */
    memset(text, 0, sizeof(text));
    strcpy(text, "[node]\n        #");
    memset(text + 16, 'x', 197);
    ck_assert_int_eq(load_text(&c, text, err), 0);

    /* a NUL byte */
    static const char nul[] = "[node]\nio_threads = 4\0\n";
    ck_assert_int_eq(ckpt_config_load_string(&c, nul, sizeof(nul) - 1, "nul.conf", err, ERRCAP),
                     CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "nul.conf:2: NUL byte in the line") == 0, "%s", err);
    /* the text need not be NUL-terminated: only len bytes are read */
    static const char part[] = "[node]\nio_threads = 7\nio_threads = oops";
    ck_assert_int_eq(ckpt_config_load_string(&c, part, 22, NULL, err, ERRCAP), 0);
    ck_assert_uint_eq(c.node.io_threads, 7);
}
END_TEST

START_TEST(test_repeated_keys_and_targets)
{
    struct ckpt_config c;
    char err[ERRCAP], text[20000];
    size_t n;

    ckpt_config_init(&c);
    ck_assert_int_eq(load_text(&c, "[node]\nio_threads = 4\n\n[node]\nio_threads = 5\n", err),
                     CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "test.conf:5: [node] io_threads = 5: already set at line 2 "
                              "(only target may be repeated)") == 0, "%s", err);

    ck_assert_int_eq(load_text(&c, "[node]\ntarget = /a\ntarget = /b\n[client]\n[node]\n"
                                   "target = /c\n", err), 0);
    ck_assert_uint_eq(c.node.ntargets, 3);
    ck_assert_str_eq(c.node.targets[0], "/a");
    ck_assert_str_eq(c.node.targets[1], "/b");
    ck_assert_str_eq(c.node.targets[2], "/c");

    ck_assert_int_eq(load_text(&c, "[node]\ntarget = /a\ntarget = /b\ntarget = /a/\n", err),
                     CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "test.conf:4: [node] target = /a/: this target is already "
                              "listed at line 2") == 0, "%s", err);
    ck_assert_uint_eq(c.node.ntargets, 3); /* unchanged */

    /* 64 targets fit, 65 do not */
    n = (size_t)snprintf(text, sizeof(text), "[node]\n");
    for (int i = 0; i < CKPT_CONFIG_MAX_TARGETS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "target = /data/t%02d\n", i);
    ck_assert_int_eq(load_text(&c, text, err), 0);
    ck_assert_uint_eq(c.node.ntargets, 64);
    ck_assert_str_eq(c.node.targets[63], "/data/t63");
    snprintf(text + n, sizeof(text) - n, "target = /data/one-more\n");
    ck_assert_int_eq(load_text(&c, text, err), CKPT_E_CONFIG);
    ck_assert_msg(strstr(err, "test.conf:66: [node] target = /data/one-more: at most 64") != NULL,
                  "%s", err);
}
END_TEST

START_TEST(test_override_precedence)
{
    struct ckpt_config c;
    char err[ERRCAP];

    ckpt_config_init(&c);
    ck_assert_int_eq(load_text(&c,
                               "[node]\nio_threads = 4\ntarget = /a\ntarget = /b\n"
                               "[client]\nthreads = 2\n",
                               err), 0);
    /* the command line wins over the file */
    ck_assert_int_eq(ckpt_config_set_arg(&c, "node.io_threads=16", err, sizeof(err)), 0);
    ck_assert_uint_eq(c.node.io_threads, 16);
    ck_assert_uint_eq(c.client.threads, 2); /* untouched keys keep the file's value */
    /* the first override of target replaces the file's list, later ones add */
    ck_assert_int_eq(ckpt_config_set_arg(&c, "node.target=/c", err, sizeof(err)), 0);
    ck_assert_uint_eq(c.node.ntargets, 1);
    ck_assert_str_eq(c.node.targets[0], "/c");
    ck_assert_int_eq(ckpt_config_set_arg(&c, "node.target=/d", err, sizeof(err)), 0);
    ck_assert_uint_eq(c.node.ntargets, 2);
    ck_assert_str_eq(c.node.targets[1], "/d");
    ck_assert_int_eq(ckpt_config_set_arg(&c, "node.target=/c/", err, sizeof(err)),
                     CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "command line: [node] target = /c/: this target is already "
                              "listed") == 0, "%s", err);
    ck_assert_uint_eq(c.node.ntargets, 2);
    /* a later file with targets replaces them; one without keeps them */
    ck_assert_int_eq(load_text(&c, "[node]\nrack = r1\n", err), 0);
    ck_assert_uint_eq(c.node.ntargets, 2);
    ck_assert_int_eq(load_text(&c, "[node]\ntarget = /e\n", err), 0);
    ck_assert_uint_eq(c.node.ntargets, 1);
    ck_assert_str_eq(c.node.targets[0], "/e");
    /* and after a file, the first override replaces again */
    ck_assert_int_eq(ckpt_config_set(&c, "node", "target", "/f", "--target", err, sizeof(err)),
                     0);
    ck_assert_uint_eq(c.node.ntargets, 1);
    ck_assert_str_eq(c.node.targets[0], "/f");

    /* set_arg syntax: the value may hold '=' and '.' */
    ck_assert_int_eq(ckpt_config_set_arg(&c, "cluster.key_file=/etc/a=b.key", err, sizeof(err)),
                     0);
    ck_assert_str_eq(c.cluster.key_file, "/etc/a=b.key");
    ck_assert_int_eq(ckpt_config_set_arg(&c, "layout.ec=8+2", err, sizeof(err)), 0);
    ck_assert_uint_eq(c.layout.def.k, 8);
    ck_assert_uint_eq(c.layout.def.width, 10);
    static const char *const bad[] = {"node.io_threads", "nodeio_threads=4", ".io_threads=4",
                                      "node.=4", "=4", "", "node.io_threads=0",
                                      "averyveryverylongsectionnamethatdoesnotfit.k=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ckpt_config before = c;
        ck_assert_msg(ckpt_config_set_arg(&c, bad[i], err, sizeof(err)) == CKPT_E_CONFIG, "%s",
                      bad[i]);
        ck_assert_msg(strncmp(err, "command line: ", 14) == 0, "%s", err);
        ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    }
}
END_TEST

START_TEST(test_cross_key_rules)
{
    struct ckpt_config c;
    char err[ERRCAP];

    ckpt_config_init(&c);
    ck_assert_int_eq(load_text(&c, "[meta]\ndown_after = 2m\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "test.conf:2: [meta] down_after = 2m: must not be longer than "
                              "[meta] out_after (1m)") == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[meta]\nout_after = 10s\ndown_after = 20s\n", err),
                     CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "test.conf:3: [meta] down_after = 20s"));
    ck_assert_int_eq(load_text(&c, "[meta]\ndown_after = 20s\nout_after = 10s\n", err),
                     CKPT_E_CONFIG);
    ck_assert_msg(strcmp(err, "test.conf:3: [meta] out_after = 10s: must be at least [meta] "
                              "down_after (20s)") == 0, "%s", err);
    ck_assert_int_eq(load_text(&c, "[meta]\ndown_after = 20s\nout_after = 20s\n", err), 0);
    ck_assert_uint_eq(c.meta.out_after_ms, 20000);

    /* layout: order of ec and width does not matter */
    ckpt_config_init(&c);
    ck_assert_int_eq(load_text(&c, "[layout]\nwidth = 10\nec = 8+2\nchunk = 4M\n", err), 0);
    ck_assert_uint_eq(c.layout.def.k, 8);
    ck_assert_uint_eq(c.layout.def.m, 2);
    ck_assert_uint_eq(c.layout.def.width, 10);
    ck_assert_uint_eq(c.layout.width, 10);
    ck_assert_uint_eq(c.layout.def.chunk_size, 4u << 20);
    ck_assert_int_eq(ckpt_layout_check(&c.layout.def, NULL), 0);
    ckpt_config_init(&c);
    ck_assert_int_eq(load_text(&c, "[layout]\nec = 8+2\n", err), 0);
    ck_assert_uint_eq(c.layout.def.width, 10);
    ck_assert_uint_eq(c.layout.width, 0);
    ck_assert_int_eq(load_text(&c, "[layout]\nec = 8+2\nwidth = 6\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:3: [layout] width = 6: width must be", 46) == 0, "%s",
                  err);
    ck_assert_int_eq(load_text(&c, "[layout]\nwidth = 6\nec = 8+2\n", err), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "test.conf:3: [layout] ec = 8+2: ", 32) == 0, "%s", err);

    /* overrides check each key; ckpt_config_check() the rules between them */
    ckpt_config_init(&c);
    ck_assert_int_eq(ckpt_config_set_arg(&c, "layout.width=6", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_set_arg(&c, "layout.ec=8+2", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_check(&c, err, sizeof(err)), CKPT_E_CONFIG);
    ck_assert_msg(strncmp(err, "configuration: [layout] width = 6: ", 35) == 0, "%s", err);
    ck_assert_int_eq(ckpt_config_set_arg(&c, "layout.width=0", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_check(&c, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.layout.def.width, 10);
    ck_assert_int_eq(ckpt_config_set_arg(&c, "meta.down_after=5m", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_check(&c, err, sizeof(err)), CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "out_after"));
    ck_assert_int_eq(ckpt_config_set_arg(&c, "meta.out_after=5m", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_check(&c, err, sizeof(err)), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */

static char *write_to_string(const struct ckpt_config *c, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ckpt_config_write(c, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

static void assert_round_trip(const struct ckpt_config *c)
{
    struct ckpt_config d;
    char err[ERRCAP], path[64];
    size_t len, len2;
    char *text = write_to_string(c, &len), *text2;

    /* through a real file */
    temp_file(path, text, len);
    ckpt_config_init(&d);
    ck_assert_msg(ckpt_config_load(&d, path, err, sizeof(err)) == 0, "%s\n%s", err, text);
    unlink(path);
    /* targets_source is bookkeeping (who filled the list), not a key */
    ck_assert_uint_eq(d.node.targets_source, c->node.ntargets ? 1 : 0);
    d.node.targets_source = c->node.targets_source;
    ck_assert_msg(memcmp(c, &d, sizeof(d)) == 0, "loaded config differs:\n%s", text);
    text2 = write_to_string(&d, &len2);
    ck_assert_str_eq(text, text2);
    free(text);
    free(text2);
}

START_TEST(test_write_round_trip)
{
    struct ckpt_config c;
    char err[ERRCAP];
    size_t len;
    char *text;

    ckpt_config_init(&c);
    assert_round_trip(&c);
    text = write_to_string(&c, &len);
    /* every section and key is written */
    static const char *const want[] = {
        "\n[cluster]\n", "\nname = ckptfs\n", "\nkey_file = /etc/ckptfs/cluster.key\n",
        "\nmeta = 127.0.0.1:7400\n", "\ntransport = auto\n", "\n[meta]\n",
        "\nlisten = 0.0.0.0:7400\n", "\ndata_dir = /var/lib/ckptfs/meta\n",
        "\ndown_after = 5s\n", "\nout_after = 1m\n", "\nmetrics_listen =\n", "\nlog_file =\n",
        "\nlog_level = info\n", "\n[node]\n", "\nlisten = 0.0.0.0:7401\n", "\nreserve = 5%\n",
        "\nsync = commit\n", "\nio_threads = 8\n", "\nrack =\n", "\n[client]\n",
        "\ndirty_limit = 2G\n", "\nthreads = 8\n", "\nreadahead = 32M\n",
        "\nattr_timeout = 1s\n", "\nentry_timeout = 1s\n", "\n[layout]\n", "\nec = 4+2\n",
        "\nchunk = 1M\n", "\nwidth = 0\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "missing %s in\n%s", want[i], text);
    free(text);

    /* every key away from its default */
    static const char *const sets[] = {
        "cluster.name=prod-1", "cluster.key_file=/k/a b.key", "cluster.meta=[fe80::1]:9",
        "cluster.transport=rdma", "meta.listen=[::]:0", "meta.data_dir=/m",
        "meta.down_after=1500ms", "meta.out_after=90s", "meta.metrics_listen=0.0.0.0:9100",
        "meta.log_file=/l/meta.log", "meta.log_level=debug", "node.listen=node-7.lan:7411",
        "node.target=/t/0", "node.target=/t/1", "node.target=/t/2#x", "node.reserve=12345",
        "node.sync=never", "node.io_threads=3", "node.rack=r-2", "node.name=n7",
        "node.metrics_listen=[::1]:9101", "node.log_file=/l/node.log", "node.log_level=err",
        "client.dirty_limit=100000001", "client.threads=256", "client.readahead=0",
        "client.attr_timeout=0", "client.entry_timeout=59m", "client.log_level=warn",
        "layout.ec=16+4", "layout.chunk=12K", "layout.width=33",
    };
    ckpt_config_init(&c);
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        ck_assert_msg(ckpt_config_set_arg(&c, sets[i], err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ckpt_config_check(&c, err, sizeof(err)), 0);
    assert_round_trip(&c);

    /* the longest values still fit on a line */
    ckpt_config_init(&c);
    for (int i = 0; i < CKPT_CONFIG_MAX_TARGETS; i++) {
        char v[CKPT_CONFIG_VALUE_MAX + 1];
        memset(v, 'p', sizeof(v));
        v[0] = '/';
        snprintf(v + CKPT_CONFIG_VALUE_MAX - 3, 4, "%03u", (unsigned)i % 1000u);
        ck_assert_msg(ckpt_config_set(&c, "node", "target", v, "t", err, sizeof(err)) == 0, "%s",
                      err);
    }
    ck_assert_int_eq(ckpt_config_set(&c, "meta", "metrics_listen",
                                     LBL "." LBL "." "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqr"
                                     ":65535",
                                     "t", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_set(&c, "cluster", "key_file", PATH180, "t", err, sizeof(err)),
                     0);
    assert_round_trip(&c);
}
END_TEST

START_TEST(test_write_error)
{
    struct ckpt_config c;
    FILE *f = fopen("/dev/full", "w");

    if (!f)
        return; /* no /dev/full in this sandbox: nothing to test */
    ckpt_config_init(&c);
    ck_assert_int_lt(ckpt_config_write(&c, f), 0);
    fclose(f);
}
END_TEST

START_TEST(test_files)
{
    struct ckpt_config c, before;
    char err[ERRCAP], path[64];
    int fd;

    ckpt_config_init(&c);
    before = c;
    ck_assert_int_eq(ckpt_config_load(&c, "/nonexistent/ckptfs.conf", err, sizeof(err)),
                     -ENOENT);
    ck_assert_str_eq(err, "/nonexistent/ckptfs.conf: cannot read: No such file or directory");
    ck_assert_int_eq(ckpt_config_load(&c, "/tmp", err, sizeof(err)), -EISDIR);
    ck_assert_ptr_nonnull(strstr(err, "/tmp: cannot read"));
    ck_assert_int_eq(ckpt_config_load(&c, NULL, err, sizeof(err)), CKPT_E_CONFIG);

    /* a valid file; errors name it */
    temp_file(path, "[node]\nio_threads = 12\n", 23);
    ck_assert_int_eq(ckpt_config_load(&c, path, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.node.io_threads, 12);
    unlink(path);
    temp_file(path, "[node]\nio_threads = 12\n\nsync = maybe\n", 37);
    ck_assert_int_eq(ckpt_config_load(&c, path, err, sizeof(err)), CKPT_E_CONFIG);
    char want[128];
    snprintf(want, sizeof(want), "%s:4: [node] sync = maybe: one of commit, always, never", path);
    ck_assert_str_eq(err, want);
    ck_assert_uint_eq(c.node.io_threads, 12); /* the failed load applied nothing */
    unlink(path);

    /* too large: a sparse file one byte over the limit */
    snprintf(path, sizeof(path), "/tmp/check_config.XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, CKPT_CONFIG_FILE_MAX + 1), 0);
    close(fd);
    ckpt_config_init(&c);
    ck_assert_int_eq(ckpt_config_load(&c, path, err, sizeof(err)), CKPT_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(err, "larger than"));
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    unlink(path);

    /* a file exactly at the limit is read (here: all comment lines) */
    {
        char *big = malloc(CKPT_CONFIG_FILE_MAX);
        ck_assert_ptr_nonnull(big);
        for (size_t i = 0; i < CKPT_CONFIG_FILE_MAX; i += 64) {
            memset(big + i, '#', 63);
            big[i + 63] = '\n';
        }
        memcpy(big, "[node]\nio_threads=9\n#", 21);
        temp_file(path, big, CKPT_CONFIG_FILE_MAX);
        free(big);
        ck_assert_msg(ckpt_config_load(&c, path, err, sizeof(err)) == 0, "%s", err);
        ck_assert_uint_eq(c.node.io_threads, 9);
        unlink(path);
    }

    /* error buffers: none, or too small (truncated, still terminated) */
    ck_assert_int_eq(ckpt_config_load(&c, "/nonexistent", NULL, 0), -ENOENT);
    ck_assert_int_eq(load_text(&c, "[x]\n", err), CKPT_E_CONFIG);
    ck_assert_int_eq(ckpt_config_load_string(&c, "[x]\n", 4, "t", NULL, 0), CKPT_E_CONFIG);
    memset(err, 'Z', sizeof(err));
    ck_assert_int_eq(ckpt_config_load_string(&c, "[x]\n", 4, "t", err, 8), CKPT_E_CONFIG);
    ck_assert_str_eq(err, "t:1: [x");
    memset(err, 'Z', sizeof(err));
    ck_assert_int_eq(ckpt_config_set(&c, "node", "io_threads", "0", "o", err, 1), CKPT_E_CONFIG);
    ck_assert_int_eq(err[0], '\0');
}
END_TEST

START_TEST(test_fault_injection)
{
    struct ckpt_config c, want, before;
    char err[ERRCAP], path[64];
    static const char text[] = "[node]\nio_threads = 3\ntarget = /a\n[layout]\nec = 8+2\n";
    long live0 = ckpt_alloc_live();
    int n, rc;

    temp_file(path, text, sizeof(text) - 1);
    ckpt_config_init(&want);
    ck_assert_int_eq(ckpt_config_load(&want, path, err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_alloc_live(), live0);

    /* fail the 1st, 2nd, ... allocation until the load needs no more */
    for (n = 1; n < 100; n++) {
        ckpt_config_init(&c);
        before = c;
        ckpt_fault_arm(CKPT_FAULT_ALLOC, n);
        rc = ckpt_config_load(&c, path, err, sizeof(err));
        bool fired = ckpt_fault_fired(CKPT_FAULT_ALLOC);
        ckpt_fault_disarm_all();
        ck_assert_int_eq(ckpt_alloc_live(), live0);
        if (!fired) {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq(memcmp(&c, &want, sizeof(c)), 0);
            break;
        }
        ck_assert_int_eq(rc, -ENOMEM);
        ck_assert_ptr_nonnull(strstr(err, "out of memory"));
        ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    }
    ck_assert_int_gt(n, 2); /* the path did allocate */
    ck_assert_int_lt(n, 100);

    /* a read error */
    ckpt_config_init(&c);
    ckpt_fault_arm(CKPT_FAULT_READ, 1);
    rc = ckpt_config_load(&c, path, err, sizeof(err));
    ck_assert(ckpt_fault_fired(CKPT_FAULT_READ));
    ckpt_fault_disarm_all();
    ck_assert_int_eq(rc, -EIO);
    ck_assert_ptr_nonnull(strstr(err, "cannot read"));
    ck_assert_int_eq(memcmp(&c, &before, sizeof(c)), 0);
    ck_assert_int_eq(ckpt_alloc_live(), live0);
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------ */

START_TEST(test_parse_size)
{
    static const struct {
        const char *s;
        int ok;
        uint64_t v;
    } cases[] = {
        {"0", 1, 0},
        {"4096", 1, 4096},
        {"64K", 1, 64ull << 10},
        {"64k", 1, 64ull << 10},
        {"1M", 1, 1ull << 20},
        {"2G", 1, 2ull << 30},
        {"1T", 1, 1ull << 40},
        {"1MiB", 1, 1ull << 20},
        {"3tib", 0, 0},
        {"007", 1, 7},
        {"18446744073709551615", 1, UINT64_MAX},
        {"16777215T", 1, 16777215ull << 40},
        {"18446744073709551616", 0, 0},
        {"16777216T", 0, 0},
        {"99999999999T", 0, 0},
        {"17179869184G", 0, 0},
        {"", 0, 0},
        {"K", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"1KB", 0, 0},
        {"1P", 0, 0},
        {"1.5M", 0, 0},
        {"0x10", 0, 0},
        {"1Mi", 0, 0},
        {"1MiBx", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = ckpt_parse_size(cases[i].s, &v);
        ck_assert_msg(rc == (cases[i].ok ? 0 : -EINVAL), "\"%s\": rc %d", cases[i].s, rc);
        ck_assert_uint_eq(v, cases[i].ok ? cases[i].v : 12345);
    }
    uint64_t v;
    ck_assert_int_eq(ckpt_parse_size(NULL, &v), -EINVAL);
}
END_TEST

/* lib/layout.c parses chunk sizes with its own copy of the grammar. */
START_TEST(test_size_grammar_matches_layout)
{
    static const char *const s[] = {"4096", "4K", "4k", "4KiB", "4kiB", "8K", "1M", "1m",
                                    "1MiB", "64M", "64MiB", "0004K", "12288", "1G", "4KB",
                                    "4 K", "-4K", "+4K", "4.0K", "K", "", "4Ki", "4KiBs",
                                    "99999999999T", "18446744073709551616", "0", "1T"};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        uint64_t v = 0;
        int crc = ckpt_parse_size(s[i], &v);
        struct ckpt_layout l;
        char spec[64];
        ckpt_layout_default(&l);
        snprintf(spec, sizeof(spec), "chunk=%s", s[i]);
        int lrc = ckpt_layout_parse(spec, &l, NULL);
        bool in_range = crc == 0 && v >= CKPT_LAYOUT_MIN_CHUNK && v <= CKPT_LAYOUT_MAX_CHUNK &&
                        v % CKPT_LAYOUT_MIN_CHUNK == 0;
        /* "4 K" splits into two tokens for the layout parser: also an error */
        ck_assert_msg((lrc == 0) == in_range, "\"%s\": config %d (%llu), layout %d", s[i], crc,
                      (unsigned long long)v, lrc);
        if (lrc == 0)
            ck_assert_uint_eq(l.chunk_size, v);
    }
}
END_TEST

START_TEST(test_parse_duration)
{
    static const struct {
        const char *s;
        int ok;
        uint64_t v;
    } cases[] = {
        {"0", 1, 0},          {"0ms", 1, 0},        {"500ms", 1, 500},     {"5s", 1, 5000},
        {"2m", 1, 120000},    {"1h", 1, 3600000},   {"90s", 1, 90000},     {"00", 1, 0},
        {"18446744073709551615ms", 1, UINT64_MAX},  {"5124095576030h", 1, 5124095576030ull * 3600000},
        {"5124095576031h", 0, 0},                   {"18446744073709552s", 0, 0},
        {"5", 0, 0},          {"5sx", 0, 0},        {"5 s", 0, 0},         {"-5s", 0, 0},
        {"+5s", 0, 0},        {"1.5s", 0, 0},       {"1d", 0, 0},          {"1S", 0, 0},
        {"1us", 0, 0},        {"s", 0, 0},          {"", 0, 0},            {"1hm", 0, 0},
        {"1m30s", 0, 0},      {" 1s", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 777;
        int rc = ckpt_parse_duration_ms(cases[i].s, &v);
        ck_assert_msg(rc == (cases[i].ok ? 0 : -EINVAL), "\"%s\": rc %d", cases[i].s, rc);
        ck_assert_uint_eq(v, cases[i].ok ? cases[i].v : 777);
    }
}
END_TEST

START_TEST(test_parse_bool)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "1"};
    static const char *const no[] = {"false", "False", "no", "NO", "off", "0"};
    static const char *const bad[] = {"", "2", "y", "n", "truex", " true", "-1", "enable"};
    bool b;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        ck_assert_int_eq(ckpt_parse_bool(yes[i], &b), 0);
        ck_assert(b);
        b = true;
        ck_assert_int_eq(ckpt_parse_bool(no[i], &b), 0);
        ck_assert(!b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ckpt_parse_bool(bad[i], &b) == -EINVAL, "\"%s\"", bad[i]);
    ck_assert_int_eq(ckpt_parse_bool(NULL, &b), -EINVAL);
}
END_TEST

START_TEST(test_parse_hostport)
{
    char host[64];
    uint16_t port;

    ck_assert_int_eq(ckpt_parse_hostport("10.1.2.3:7400", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "10.1.2.3");
    ck_assert_uint_eq(port, 7400);
    ck_assert_int_eq(ckpt_parse_hostport("[2001:db8::7]:0", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "2001:db8::7");
    ck_assert_uint_eq(port, 0);
    ck_assert_int_eq(ckpt_parse_hostport("Node_3.rack-a:65535", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "Node_3.rack-a");
    ck_assert_uint_eq(port, 65535);
    ck_assert_int_eq(ckpt_parse_hostport("[::ffff:10.0.0.1]:5", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "::ffff:10.0.0.1");
    ck_assert_int_eq(ckpt_parse_hostport("1host:5", host, sizeof(host), &port), 0);

    /* host_cap: exactly enough, and one short (outputs untouched) */
    ck_assert_int_eq(ckpt_parse_hostport("abcd:1", host, 5, &port), 0);
    strcpy(host, "keep");
    port = 42;
    ck_assert_int_eq(ckpt_parse_hostport("abcde:1", host, 5, &port), -EINVAL);
    ck_assert_str_eq(host, "keep");
    ck_assert_uint_eq(port, 42);

    static const char *const bad[] = {
        "", ":", "host", "host:", ":1", "host:65536", "host:123456", "host:00000001",
        "host:0x1", "host:-0", "1.2.3.4.5:1", "01.2.3.4:1", "1.2.3.4 :1", "::1:1", "[::1:1",
        "[::1]", "[::1]:", "[::1]:x", "[1.2.3.4]:1", "[host]:1", "[::1%eth0]:1", "h*st:1",
        "h/st:1", ".host:1", "host.:1", "a..b:1", "-a:1", "a-:1", "a.-b:1", "a-.b:1",
        "1.2.3.256:1", "123:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ckpt_parse_hostport(bad[i], host, sizeof(host), &port) == -EINVAL,
                      "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(ckpt_parse_hostport(NULL, host, sizeof(host), &port), -EINVAL);
}
END_TEST

/* ckptfs.conf.example at the top of the tree sets every key to its
 * default: loading it must give exactly ckpt_config_init()'s config.
 * The path is found from __FILE__ (the Makefile compiles from the top). */
START_TEST(test_example_file_is_the_defaults)
{
    struct ckpt_config c, d;
    char err[ERRCAP], path[512];
    const char *me = __FILE__;
    const char *tail = strstr(me, "tests/unit/check_config.c");

    ck_assert_ptr_nonnull(tail);
    snprintf(path, sizeof(path), "%.*sckptfs.conf.example", (int)(tail - me), me);
    ckpt_config_init(&c);
    ckpt_config_init(&d);
    ck_assert_msg(ckpt_config_load(&c, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("keys");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values_file_and_override);
    tcase_add_test(tc, test_value_rules);
    tcase_add_test(tc, test_unknown_section_and_key);
    tcase_add_test(tc, test_syntax_and_lines);
    tcase_add_test(tc, test_repeated_keys_and_targets);
    tcase_add_test(tc, test_override_precedence);
    tcase_add_test(tc, test_cross_key_rules);
    suite_add_tcase(s, tc);

    tc = tcase_create("io");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_write_round_trip);
    tcase_add_test(tc, test_write_error);
    tcase_add_test(tc, test_files);
    tcase_add_test(tc, test_fault_injection);
    tcase_add_test(tc, test_example_file_is_the_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsers");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_size_grammar_matches_layout);
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_parse_bool);
    tcase_add_test(tc, test_parse_hostport);
    suite_add_tcase(s, tc);
    return s;
}

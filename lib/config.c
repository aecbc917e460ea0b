/*
 * config.c - see config.h.
 *
 * DESIGN
 *   One table, keys[], describes every key: section, name, type, flags,
 *   where its field lives in struct ckpt_config, and its range.  Loading,
 *   overriding, describing what is allowed, and writing all walk that table,
 *   so a key added to it is parsed, validated, documented in errors and
 *   written back without further code.  Each type has one case in apply()
 *   that validates the value completely before it stores anything.
 *
 *   Loading: the file is read whole into memory (at most CKPT_CONFIG_FILE_MAX
 *   bytes) and handed to libinih's ini_parse_stream() through our own line
 *   reader, cfg_reader().  The reader is where three things happen that
 *   Debian's libinih (built with INI_HANDLER_LINENO 0, a 200-byte stack line
 *   buffer and multi-line values on) would otherwise get wrong:
 *     - it counts lines, so every message carries FILE:LINE;
 *     - it strips leading blanks, so an indented "key = value" line is a key
 *       and never a continuation of the previous value;
 *     - it rejects lines that do not fit inih's buffer (inih would cut
 *       them and read on from the middle of the line) and NUL bytes.
 *   It also checks [section] headers itself, because inih calls the handler
 *   only for keys, so an empty unknown section would pass unnoticed, and it
 *   refuses inih's "name: value" form (a host:port value after a missing
 *   '=' would otherwise become a strange key).
 *   libinih's process-wide option variables are never written.
 *
 *   The file is applied to a scratch copy of the config; the caller's config
 *   changes only when the whole file is valid, including the rules between
 *   keys (check_cross()).  The handler records the line of every key it
 *   applies so that a repeated key and a cross-key conflict can name lines.
 *   After the first error the reader returns EOF, so parsing stops there;
 *   a syntax error inih found on an earlier line wins (inih reports the
 *   first bad line as its return value).
 *
 *   Overrides (ckpt_config_set) go through the same per-type parse into the
 *   caller's config directly; since a parse stores only after validating,
 *   a rejected override leaves the config unchanged.
 *
 *   No globals, no locks: every function works on the config it is given.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

#define MS_PER_S 1000ull
#define MS_PER_M (60ull * MS_PER_S)
#define MS_PER_H (60ull * MS_PER_M)
#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

#define STR_(x) #x
#define STR(x) STR_(x)

#define SOURCE_FILE 1 /* node.targets_source values */
#define SOURCE_SET 2

enum key_type {
    KT_NAME,      /* char[]: A-Z a-z 0-9 . _ - */
    KT_PATH,      /* char[]: absolute path */
    KT_TARGET,    /* node.targets[][], repeatable */
    KT_ADDR,      /* struct ckpt_config_addr */
    KT_TRANSPORT, /* enum ckpt_config_transport */
    KT_SYNC,      /* enum ckpt_config_sync */
    KT_LOGLEVEL,  /* int, enum ckpt_log_level */
    KT_SIZE,      /* uint64_t bytes */
    KT_RESERVE,   /* node.reserve_* */
    KT_DURATION,  /* uint64_t ms */
    KT_UINT,      /* uint32_t */
    KT_EC,        /* layout.def.k, .m */
    KT_CHUNK,     /* layout.def.chunk_size */
    KT_WIDTH,     /* layout.width */
};

#define KF_EMPTY 0x1u /* an empty value is allowed */
#define KF_PORT0 0x2u /* port 0 ("any free port") is allowed */

struct key_desc {
    const char *section;
    const char *key;
    enum key_type type;
    unsigned flags;
    size_t off;        /* offsetof(struct ckpt_config, field) */
    size_t size;       /* sizeof(field) */
    uint64_t min, max; /* KT_SIZE, KT_DURATION, KT_UINT, KT_WIDTH; KT_NAME:
                          length; KT_RESERVE: max percent */
    const char *note;  /* what an empty value means, for messages */
};

#define FIELD(f) offsetof(struct ckpt_config, f), sizeof(((struct ckpt_config *)0)->f)

static const struct key_desc keys[] = {
    {"cluster", "name", KT_NAME, 0, FIELD(cluster.name), 1, CKPT_CONFIG_NAME_MAX, NULL},
    {"cluster", "key_file", KT_PATH, 0, FIELD(cluster.key_file), 0, 0, NULL},
    {"cluster", "meta", KT_ADDR, 0, FIELD(cluster.meta), 0, 0, NULL},
    {"cluster", "transport", KT_TRANSPORT, 0, FIELD(cluster.transport), 0, 0, NULL},
    {"meta", "listen", KT_ADDR, KF_PORT0, FIELD(meta.listen), 0, 0, NULL},
    {"meta", "data_dir", KT_PATH, 0, FIELD(meta.data_dir), 0, 0, NULL},
    {"meta", "down_after", KT_DURATION, 0, FIELD(meta.down_after_ms), MS_PER_S, MS_PER_H, NULL},
    {"meta", "out_after", KT_DURATION, 0, FIELD(meta.out_after_ms), MS_PER_S, 168 * MS_PER_H, NULL},
    {"meta", "metrics_listen", KT_ADDR, KF_EMPTY | KF_PORT0, FIELD(meta.metrics_listen), 0, 0,
     "no metrics endpoint"},
    {"meta", "log_file", KT_PATH, KF_EMPTY, FIELD(meta.log_file), 0, 0, "log to stderr"},
    {"meta", "log_level", KT_LOGLEVEL, 0, FIELD(meta.log_level), 0, 0, NULL},
    {"node", "listen", KT_ADDR, KF_PORT0, FIELD(node.listen), 0, 0, NULL},
    {"node", "target", KT_TARGET, 0, FIELD(node.targets), 0, 0, NULL},
    {"node", "reserve", KT_RESERVE, 0, FIELD(node.reserve_bytes), 0, 90, NULL},
    {"node", "sync", KT_SYNC, 0, FIELD(node.sync), 0, 0, NULL},
    {"node", "io_threads", KT_UINT, 0, FIELD(node.io_threads), 1, 256, NULL},
    {"node", "rack", KT_NAME, KF_EMPTY, FIELD(node.rack), 0, CKPT_CONFIG_NAME_MAX,
     "the node is its own failure domain"},
    {"node", "name", KT_NAME, 0, FIELD(node.name), 1, CKPT_CONFIG_NAME_MAX, NULL},
    {"node", "metrics_listen", KT_ADDR, KF_EMPTY | KF_PORT0, FIELD(node.metrics_listen), 0, 0,
     "no metrics endpoint"},
    {"node", "log_file", KT_PATH, KF_EMPTY, FIELD(node.log_file), 0, 0, "log to stderr"},
    {"node", "log_level", KT_LOGLEVEL, 0, FIELD(node.log_level), 0, 0, NULL},
    {"client", "dirty_limit", KT_SIZE, 0, FIELD(client.dirty_limit_bytes), 64 * MIB, TIB, NULL},
    {"client", "threads", KT_UINT, 0, FIELD(client.threads), 1, 256, NULL},
    {"client", "readahead", KT_SIZE, 0, FIELD(client.readahead_bytes), 0, GIB, NULL},
    {"client", "attr_timeout", KT_DURATION, 0, FIELD(client.attr_timeout_ms), 0, MS_PER_H, NULL},
    {"client", "entry_timeout", KT_DURATION, 0, FIELD(client.entry_timeout_ms), 0, MS_PER_H, NULL},
    {"client", "buffer_keep", KT_DURATION, 0, FIELD(client.buffer_keep_ms), 0, 24 * MS_PER_H,
     NULL},
    {"client", "log_level", KT_LOGLEVEL, 0, FIELD(client.log_level), 0, 0, NULL},
    {"layout", "ec", KT_EC, 0, FIELD(layout.def), 0, 0, NULL},
    {"layout", "chunk", KT_CHUNK, 0, FIELD(layout.def), 0, 0, NULL},
    {"layout", "width", KT_WIDTH, 0, FIELD(layout.width), 0, CKPT_LAYOUT_MAX_WIDTH, NULL},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {"cluster", "meta", "node", "client", "layout"};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

struct enum_name {
    const char *name;
    int value;
};
static const struct enum_name transport_names[] = {
    {"tcp", CKPT_CONFIG_TRANSPORT_TCP},
    {"rdma", CKPT_CONFIG_TRANSPORT_RDMA},
    {"auto", CKPT_CONFIG_TRANSPORT_AUTO},
};
static const struct enum_name sync_names[] = {
    {"commit", CKPT_CONFIG_SYNC_COMMIT},
    {"always", CKPT_CONFIG_SYNC_ALWAYS},
    {"never", CKPT_CONFIG_SYNC_NEVER},
};
static const struct enum_name loglevel_names[] = {
    {"err", CKPT_LOG_LVL_ERR},
    {"warn", CKPT_LOG_LVL_WARN},
    {"info", CKPT_LOG_LVL_INFO},
    {"debug", CKPT_LOG_LVL_DEBUG},
};
#define NENUM(t) (sizeof(t) / sizeof((t)[0]))

/* Where a value came from: "FILE:LINE" (line > 0) or an origin name. */
struct where {
    const char *name;
    unsigned line;
};

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* Copy v into dst for a message: non-printable bytes as \xNN, cut at 64. */
static void show_value(char *dst, size_t cap, const char *v)
{
    size_t n = 0;

    for (; *v && n + 5 < cap; v++) {
        unsigned char c = (unsigned char)*v;
        if (n >= 64) {
            memcpy(dst + n, "...", 3);
            n += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(dst + n, cap - n, "\\x%02x", c);
        else
            dst[n++] = (char)c;
    }
    dst[n] = '\0';
}

/* Append to dst (cap bytes, *n used).  Output past cap is cut. */
static void appendv(char *dst, size_t cap, size_t *n, const char *fmt, va_list ap)
{
    int r;

    if (*n + 1 >= cap)
        return;
    r = vsnprintf(dst + *n, cap - *n, fmt, ap);
    if (r < 0)
        return;
    *n = (size_t)r >= cap - *n ? cap - 1 : *n + (size_t)r;
}

static void appendf(char *dst, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *dst, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    appendv(dst, cap, n, fmt, ap);
    va_end(ap);
}

/* Format "W: [section] key = value: " + fmt into err (when it has room;
 * section and key may be NULL).  Returns CKPT_E_CONFIG. */
static int fail(char *err, size_t cap, const struct where *w, const char *section,
                const char *key, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int fail(char *err, size_t cap, const struct where *w, const char *section,
                const char *key, const char *value, const char *fmt, ...)
{
    char shown[96];
    size_t n = 0;
    va_list ap;

    if (!err || cap == 0)
        return CKPT_E_CONFIG;
    err[0] = '\0';
    if (w->line)
        appendf(err, cap, &n, "%s:%u: ", w->name, w->line);
    else
        appendf(err, cap, &n, "%s: ", w->name);
    if (section && key) {
        show_value(shown, sizeof(shown), value ? value : "");
        appendf(err, cap, &n, "[%s] %s = %s: ", section, key, shown);
    } else if (section) {
        appendf(err, cap, &n, "[%s]: ", section);
    }
    va_start(ap, fmt);
    appendv(err, cap, &n, fmt, ap);
    va_end(ap);
    return CKPT_E_CONFIG;
}

static int format_size(char *dst, size_t cap, uint64_t v)
{
    static const char units[] = "TGMK";
    for (int i = 0; i < 4 && v != 0; i++) {
        unsigned shift = (unsigned)(40 - 10 * i);
        if (v % (1ull << shift) == 0)
            return snprintf(dst, cap, "%llu%c", (unsigned long long)(v >> shift), units[i]);
    }
    return snprintf(dst, cap, "%llu", (unsigned long long)v);
}

static int format_duration(char *dst, size_t cap, uint64_t ms)
{
    if (ms == 0)
        return snprintf(dst, cap, "0s");
    if (ms % MS_PER_H == 0)
        return snprintf(dst, cap, "%lluh", (unsigned long long)(ms / MS_PER_H));
    if (ms % MS_PER_M == 0)
        return snprintf(dst, cap, "%llum", (unsigned long long)(ms / MS_PER_M));
    if (ms % MS_PER_S == 0)
        return snprintf(dst, cap, "%llus", (unsigned long long)(ms / MS_PER_S));
    return snprintf(dst, cap, "%llums", (unsigned long long)ms);
}

static void enum_list(char *dst, size_t cap, const struct enum_name *t, size_t n)
{
    size_t len = 0;

    dst[0] = '\0';
    for (size_t i = 0; i < n; i++)
        appendf(dst, cap, &len, "%s%s", i ? ", " : "", t[i].name);
}

/* What key d accepts, for messages. */
static void describe(const struct key_desc *d, char *dst, size_t cap)
{
    char a[32], b[32], list[64];
    const char *empty = (d->flags & KF_EMPTY) ? ", or empty: " : "";
    const char *note = (d->flags & KF_EMPTY) && d->note ? d->note : "";

    switch (d->type) {
    case KT_NAME:
        snprintf(dst, cap, "a name of %llu to %llu characters from A-Z a-z 0-9 . _ -%s%s",
                 (unsigned long long)(d->min ? d->min : 1), (unsigned long long)d->max, empty, note);
        break;
    case KT_PATH:
        snprintf(dst, cap, "an absolute path of at most %d bytes%s%s", CKPT_CONFIG_VALUE_MAX,
                 empty, note);
        break;
    case KT_TARGET:
        snprintf(dst, cap, "an absolute path of at most %d bytes (one per target line, up to %d)",
                 CKPT_CONFIG_VALUE_MAX, CKPT_CONFIG_MAX_TARGETS);
        break;
    case KT_ADDR:
        snprintf(dst, cap,
                 "host:port with an IPv4 address, a host name or an [IPv6] address, and a "
                 "port from %d to 65535%s%s%s",
                 (d->flags & KF_PORT0) ? 0 : 1, (d->flags & KF_PORT0) ? " (0: any free port)" : "",
                 empty, note);
        break;
    case KT_TRANSPORT:
        enum_list(list, sizeof(list), transport_names, NENUM(transport_names));
        snprintf(dst, cap, "one of %s", list);
        break;
    case KT_SYNC:
        enum_list(list, sizeof(list), sync_names, NENUM(sync_names));
        snprintf(dst, cap, "one of %s", list);
        break;
    case KT_LOGLEVEL:
        enum_list(list, sizeof(list), loglevel_names, NENUM(loglevel_names));
        snprintf(dst, cap, "one of %s", list);
        break;
    case KT_SIZE:
        format_size(a, sizeof(a), d->min);
        format_size(b, sizeof(b), d->max);
        snprintf(dst, cap,
                 "a size from %s to %s (digits with an optional K, M, G or T suffix, "
                 "powers of 1024)",
                 a, b);
        break;
    case KT_RESERVE:
        snprintf(dst, cap,
                 "a size (digits with an optional K, M, G or T suffix) or a percentage "
                 "from 0%% to %llu%%",
                 (unsigned long long)d->max);
        break;
    case KT_DURATION:
        format_duration(a, sizeof(a), d->min);
        format_duration(b, sizeof(b), d->max);
        snprintf(dst, cap, "a duration from %s to %s (digits with a unit: ms, s, m or h)", a, b);
        break;
    case KT_UINT:
        snprintf(dst, cap, "an integer from %llu to %llu", (unsigned long long)d->min,
                 (unsigned long long)d->max);
        break;
    case KT_EC:
        snprintf(dst, cap, "K+M with 1 <= K <= %d data and 0 <= M <= %d parity chunks, e.g. 4+2",
                 CKPT_LAYOUT_MAX_K, CKPT_LAYOUT_MAX_M);
        break;
    case KT_CHUNK:
        snprintf(dst, cap, "a size that is a multiple of 4K, from 4K to 64M");
        break;
    case KT_WIDTH:
        snprintf(dst, cap, "0 (meaning k+m) or an integer from k+m to %d", CKPT_LAYOUT_MAX_WIDTH);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Value parsers                                                             */

/* Decimal digits only; advances *sp.  false on no digit or overflow. */
static bool parse_digits(const char **sp, uint64_t *out)
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

int ckpt_parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    unsigned shift = 0;

    if (!s || !parse_digits(&s, &v))
        return -EINVAL;
    switch (*s) {
    case '\0': break;
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return -EINVAL;
    }
    if (shift) {
        s++;
        if (strcmp(s, "iB") == 0)
            s += 2;
        if (*s != '\0' || v > (UINT64_MAX >> shift))
            return -EINVAL;
        v <<= shift;
    }
    *out = v;
    return 0;
}

int ckpt_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        {"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H},
    };
    uint64_t v;

    if (!s || !parse_digits(&s, &v))
        return -EINVAL;
    if (*s == '\0') { /* a bare number: only 0 is unambiguous */
        if (v != 0)
            return -EINVAL;
        *out = 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].ms)
                return -EINVAL;
            *out = v * units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}

int ckpt_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; s && i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* RFC 1123 host name (plus '_', common in internal names). */
static bool host_name_ok(const char *h, size_t n)
{
    size_t label = 0;
    bool numeric = true;

    if (n == 0 || n > CKPT_CONFIG_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (c < '0' || c > '9')
            numeric = false;
        if (++label > 63)
            return false;
    }
    if (label == 0 || h[n - 1] == '-')
        return false;
    /* "300.1.2.3" is neither a valid IPv4 address nor a sensible name. */
    return !numeric;
}

int ckpt_parse_hostport(const char *s, char *host, size_t host_cap, uint16_t *port)
{
    char buf[CKPT_CONFIG_HOST_MAX + 1];
    const char *hs, *colon;
    size_t hn;
    uint64_t p;

    if (!s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        unsigned char a6[16];
        if (!close)
            return -EINVAL;
        hs = s + 1;
        hn = (size_t)(close - hs);
        if (hn == 0 || hn >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, hs, hn);
        buf[hn] = '\0';
        if (inet_pton(AF_INET6, buf, a6) != 1)
            return -EINVAL;
        colon = close + 1;
        if (*colon != ':')
            return -EINVAL;
    } else {
        unsigned char a4[4];
        bool dotted = true;
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hs = s;
        hn = (size_t)(colon - s);
        if (memchr(s, ':', hn)) /* an IPv6 address needs its brackets */
            return -EINVAL;
        if (hn == 0 || hn >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, hs, hn);
        buf[hn] = '\0';
        for (size_t i = 0; i < hn; i++)
            if (buf[i] != '.' && (buf[i] < '0' || buf[i] > '9'))
                dotted = false;
        if (dotted ? inet_pton(AF_INET, buf, a4) != 1 : !host_name_ok(buf, hn))
            return -EINVAL;
    }
    s = colon + 1;
    if (strlen(s) > 5 || !parse_digits(&s, &p) || *s != '\0' || p > 65535)
        return -EINVAL;
    if (hn + 1 > host_cap)
        return -EINVAL;
    memcpy(host, buf, hn + 1);
    *port = (uint16_t)p;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Applying one key                                                          */

/* Rules for every value, so that ckpt_config_write() output reads back. */
static const char *value_problem(const char *v)
{
    size_t n = strlen(v);

    if (n > CKPT_CONFIG_VALUE_MAX)
        return "longer than " STR(CKPT_CONFIG_VALUE_MAX) " bytes";
    if (n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        return "starts or ends with a blank";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return "contains a control character";
        if ((c == ' ' || c == '\t') && (v[i + 1] == ';' || v[i + 1] == '#'))
            return "contains a blank followed by ';' or '#', which would start a "
                   "comment (comments go on their own line)";
    }
    return NULL;
}

static bool name_ok(const char *v, const struct key_desc *d)
{
    size_t n = strlen(v);

    if (n < d->min || n > d->max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool enum_parse(const char *v, const struct enum_name *t, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(v, t[i].name) == 0) {
            *out = t[i].value;
            return true;
        }
    }
    return false;
}

static const char *enum_str(int v, const struct enum_name *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].value == v)
            return t[i].name;
    return "?";
}

static void set_str(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);

    /* Zero the tail too, so equal configs compare equal byte for byte. */
    memset(dst, 0, cap);
    memcpy(dst, v, n < cap ? n : cap - 1);
}

/* Per-load state (NULL for overrides). */
struct load_ctx {
    struct ckpt_config *cfg;       /* the scratch copy being filled */
    const char *name;              /* file name for messages */
    const char *p, *end;           /* unread text */
    unsigned line;                 /* number of the line last returned */
    int rc;                        /* first error, 0 while none */
    char *err;
    size_t err_cap;
    unsigned key_line[NKEYS];      /* line each key was set at, 0 = not */
    unsigned target_line[CKPT_CONFIG_MAX_TARGETS];
    bool seen_target;              /* a target line was applied */
};

struct apply_env {
    const struct where *w;
    int source;               /* SOURCE_FILE or SOURCE_SET */
    struct load_ctx *lc;      /* for target line numbers; NULL for set */
    char *err;
    size_t err_cap;
};

/* The "not an allowed value" error for key d. */
static int bad_value(const struct key_desc *d, const char *value, const struct apply_env *env)
{
    char allowed[320];

    describe(d, allowed, sizeof(allowed));
    return fail(env->err, env->err_cap, env->w, d->section, d->key, value, "%s", allowed);
}
#define BAD() bad_value(d, value, env)

/* Parse value for key d and store it in cfg.  Validates completely before
 * storing, so cfg is unchanged on error. */
static int apply(struct ckpt_config *cfg, const struct key_desc *d, const char *value,
                 const struct apply_env *env)
{
    void *field = (char *)cfg + d->off;
    const char *problem = value_problem(value);
    uint64_t v;
    int e;

    if (problem)
        return fail(env->err, env->err_cap, env->w, d->section, d->key, value, "value %s",
                    problem);
    if (value[0] == '\0' && !(d->flags & KF_EMPTY) && d->type != KT_NAME)
        return BAD();

    switch (d->type) {
    case KT_NAME:
        if (!name_ok(value, d))
            return BAD();
        set_str(field, d->size, value);
        return 0;
    case KT_PATH:
        if (value[0] != '\0' && value[0] != '/')
            return BAD();
        set_str(field, d->size, value);
        return 0;
    case KT_TARGET: {
        struct ckpt_config_node *node = &cfg->node;
        char path[CKPT_CONFIG_VALUE_MAX + 1];
        size_t n = strlen(value);
        if (value[0] != '/')
            return BAD();
        /* "/data/a/" and "/data/a" are the same directory. */
        while (n > 1 && value[n - 1] == '/')
            n--;
        memcpy(path, value, n);
        path[n] = '\0';
        problem = value_problem(path); /* "/a /" must not become "/a " */
        if (problem)
            return fail(env->err, env->err_cap, env->w, d->section, d->key, value, "value %s",
                        problem);
        /* The first target of a file, or the first override, replaces the
         * list (nothing below can fail right after this). */
        if (env->lc ? !env->lc->seen_target : node->targets_source != SOURCE_SET) {
            memset(node->targets, 0, sizeof(node->targets));
            node->ntargets = 0;
            node->targets_source = (uint8_t)env->source;
            if (env->lc)
                env->lc->seen_target = true;
        }
        for (uint32_t i = 0; i < node->ntargets; i++) {
            if (strcmp(node->targets[i], path) != 0)
                continue;
            if (env->lc && env->lc->target_line[i])
                return fail(env->err, env->err_cap, env->w, d->section, d->key, value,
                            "this target is already listed at line %u",
                            env->lc->target_line[i]);
            return fail(env->err, env->err_cap, env->w, d->section, d->key, value,
                        "this target is already listed");
        }
        if (node->ntargets >= CKPT_CONFIG_MAX_TARGETS)
            return fail(env->err, env->err_cap, env->w, d->section, d->key, value,
                        "at most %d targets per node", CKPT_CONFIG_MAX_TARGETS);
        if (env->lc)
            env->lc->target_line[node->ntargets] = env->w->line;
        set_str(node->targets[node->ntargets++], sizeof(node->targets[0]), path);
        return 0;
    }
    case KT_ADDR: {
        struct ckpt_config_addr a;
        memset(&a, 0, sizeof(a));
        if (value[0] != '\0') {
            if (ckpt_parse_hostport(value, a.host, sizeof(a.host), &a.port) != 0)
                return BAD();
            if (a.port == 0 && !(d->flags & KF_PORT0))
                return BAD();
        }
        memcpy(field, &a, sizeof(a));
        return 0;
    }
    case KT_TRANSPORT: {
        int x;
        if (!enum_parse(value, transport_names, NENUM(transport_names), &x))
            return BAD();
        *(enum ckpt_config_transport *)field = (enum ckpt_config_transport)x;
        return 0;
    }
    case KT_SYNC: {
        int x;
        if (!enum_parse(value, sync_names, NENUM(sync_names), &x))
            return BAD();
        *(enum ckpt_config_sync *)field = (enum ckpt_config_sync)x;
        return 0;
    }
    case KT_LOGLEVEL:
        e = ckpt_log_level_parse(value);
        if (e < 0)
            return BAD();
        *(int *)field = e;
        return 0;
    case KT_SIZE:
        if (ckpt_parse_size(value, &v) != 0 || v < d->min || v > d->max)
            return BAD();
        *(uint64_t *)field = v;
        return 0;
    case KT_RESERVE: {
        size_t n = strlen(value);
        if (n > 0 && value[n - 1] == '%') {
            const char *s = value;
            if (!parse_digits(&s, &v) || s != value + n - 1 || v > d->max)
                return BAD();
            cfg->node.reserve_is_pct = true;
            cfg->node.reserve_pct = (uint32_t)v;
            cfg->node.reserve_bytes = 0;
        } else {
            if (ckpt_parse_size(value, &v) != 0)
                return BAD();
            cfg->node.reserve_is_pct = false;
            cfg->node.reserve_pct = 0;
            cfg->node.reserve_bytes = v;
        }
        return 0;
    }
    case KT_DURATION:
        if (ckpt_parse_duration_ms(value, &v) != 0 || v < d->min || v > d->max)
            return BAD();
        *(uint64_t *)field = v;
        return 0;
    case KT_UINT: {
        const char *s = value;
        if (!parse_digits(&s, &v) || *s != '\0' || v < d->min || v > d->max)
            return BAD();
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    }
    case KT_EC:
    case KT_CHUNK: {
        /* Same rules as ckpt_layout_parse(), by calling it on one key of a
         * default layout (the config's own may be mid-edit and invalid). */
        char spec[16 + CKPT_CONFIG_VALUE_MAX];
        struct ckpt_layout l;
        const char *why = NULL;
        if (strpbrk(value, " \t,="))
            return BAD();
        snprintf(spec, sizeof(spec), "%s=%s", d->key, value);
        ckpt_layout_default(&l);
        if (ckpt_layout_parse(spec, &l, &why) != 0)
            return BAD();
        if (d->type == KT_EC) {
            cfg->layout.def.k = l.k;
            cfg->layout.def.m = l.m;
        } else {
            cfg->layout.def.chunk_size = l.chunk_size;
        }
        cfg->layout.def.width =
            cfg->layout.width ? cfg->layout.width : (uint16_t)(cfg->layout.def.k + cfg->layout.def.m);
        return 0;
    }
    case KT_WIDTH: {
        const char *s = value;
        if (!parse_digits(&s, &v) || *s != '\0' || v > d->max)
            return BAD();
        cfg->layout.width = (uint16_t)v;
        cfg->layout.def.width = v ? (uint16_t)v : (uint16_t)(cfg->layout.def.k + cfg->layout.def.m);
        return 0;
    }
    }
#undef BAD
    return fail(env->err, env->err_cap, env->w, d->section, d->key, value, "internal: bad type");
}

static const struct key_desc *find_key(const char *section, const char *key, size_t *out_idx)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0) {
            if (out_idx)
                *out_idx = i;
            return &keys[i];
        }
    }
    return NULL;
}

static bool section_known(const char *s, size_t n)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (strlen(sections[i]) == n && memcmp(sections[i], s, n) == 0)
            return true;
    return false;
}

/* Message for a key not in keys[]: list the keys of its section. */
static int unknown_key(char *err, size_t cap, const struct where *w, const char *section,
                       const char *key, const char *value)
{
    char list[400];
    size_t n = 0;
    bool known = section_known(section, strlen(section));

    if (!known)
        return fail(err, cap, w, section, key, value,
                    "unknown section (sections: [cluster] [meta] [node] [client] [layout])");
    list[0] = '\0';
    for (size_t i = 0; i < NKEYS && n < sizeof(list); i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        int r = snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "", keys[i].key);
        if (r < 0)
            break;
        n += (size_t)r;
    }
    return fail(err, cap, w, section, key, value, "unknown key (keys of [%s]: %s)", section, list);
}

/* ------------------------------------------------------------------------ */
/* Rules between keys                                                        */

static int check_cross(const struct ckpt_config *cfg, const struct where *base,
                       const unsigned *key_line, char *err, size_t cap)
{
    char a[32], b[32];
    struct where w = *base;
    size_t i_down = 0, i_out = 0, i_ec = 0, i_width = 0;
    struct ckpt_layout l;
    const char *why = NULL;

    find_key("meta", "down_after", &i_down);
    find_key("meta", "out_after", &i_out);
    find_key("layout", "ec", &i_ec);
    find_key("layout", "width", &i_width);

    if (cfg->meta.out_after_ms < cfg->meta.down_after_ms) {
        format_duration(a, sizeof(a), cfg->meta.out_after_ms);
        format_duration(b, sizeof(b), cfg->meta.down_after_ms);
        /* Blame whichever of the two keys came last. */
        if (key_line && key_line[i_down] > key_line[i_out]) {
            w.line = key_line[i_down];
            return fail(err, cap, &w, "meta", "down_after", b,
                        "must not be longer than [meta] out_after (%s)", a);
        }
        w.line = key_line ? key_line[i_out] : 0;
        return fail(err, cap, &w, "meta", "out_after", a,
                    "must be at least [meta] down_after (%s)", b);
    }

    l = cfg->layout.def;
    l.width = cfg->layout.width;
    if (ckpt_layout_check(&l, &why) != 0) {
        snprintf(a, sizeof(a), "%u", (unsigned)cfg->layout.width);
        if (key_line && key_line[i_ec] > key_line[i_width]) {
            snprintf(b, sizeof(b), "%u+%u", (unsigned)l.k, (unsigned)l.m);
            w.line = key_line[i_ec];
            return fail(err, cap, &w, "layout", "ec", b, "%s ([layout] width = %s)", why, a);
        }
        w.line = key_line ? key_line[i_width] : 0;
        return fail(err, cap, &w, "layout", "width", a, "%s (k+m = %u)", why,
                    (unsigned)(l.k + l.m));
    }
    return 0;
}

int ckpt_config_check(const struct ckpt_config *cfg, char *err, size_t err_cap)
{
    struct where w = {"configuration", 0};
    return check_cross(cfg, &w, NULL, err, err_cap);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */

void ckpt_config_init(struct ckpt_config *cfg)
{
    static const struct key_desc node_name = {"node", "name", KT_NAME, 0, 0, 0, 1,
                                              CKPT_CONFIG_NAME_MAX, NULL};
    char host[256];

    memset(cfg, 0, sizeof(*cfg));

    set_str(cfg->cluster.name, sizeof(cfg->cluster.name), "ckptfs");
    set_str(cfg->cluster.key_file, sizeof(cfg->cluster.key_file), "/etc/ckptfs/cluster.key");
    set_str(cfg->cluster.meta.host, sizeof(cfg->cluster.meta.host), "127.0.0.1");
    cfg->cluster.meta.port = 7400;
    cfg->cluster.transport = CKPT_CONFIG_TRANSPORT_AUTO;

    set_str(cfg->meta.listen.host, sizeof(cfg->meta.listen.host), "0.0.0.0");
    cfg->meta.listen.port = 7400;
    set_str(cfg->meta.data_dir, sizeof(cfg->meta.data_dir), "/var/lib/ckptfs/meta");
    cfg->meta.down_after_ms = 5 * MS_PER_S;
    cfg->meta.out_after_ms = 60 * MS_PER_S;
    cfg->meta.log_level = CKPT_LOG_LVL_INFO;

    set_str(cfg->node.listen.host, sizeof(cfg->node.listen.host), "0.0.0.0");
    cfg->node.listen.port = 7401;
    cfg->node.reserve_is_pct = true;
    cfg->node.reserve_pct = 5;
    cfg->node.sync = CKPT_CONFIG_SYNC_COMMIT;
    cfg->node.io_threads = 8;
    cfg->node.log_level = CKPT_LOG_LVL_INFO;
    /* The host name up to its first dot; "localhost" if it is unusable. */
    memset(host, 0, sizeof(host));
    if (gethostname(host, sizeof(host) - 1) == 0) {
        char *dot = strchr(host, '.');
        if (dot)
            *dot = '\0';
    } else {
        host[0] = '\0';
    }
    set_str(cfg->node.name, sizeof(cfg->node.name),
            name_ok(host, &node_name) ? host : "localhost");

    cfg->client.dirty_limit_bytes = 2 * GIB;
    cfg->client.threads = 8;
    cfg->client.readahead_bytes = 32 * MIB;
    cfg->client.buffer_keep_ms = 30 * 60 * MS_PER_S;
    cfg->client.attr_timeout_ms = MS_PER_S;
    cfg->client.entry_timeout_ms = MS_PER_S;
    cfg->client.log_level = CKPT_LOG_LVL_INFO;

    ckpt_layout_default(&cfg->layout.def);
    cfg->layout.width = 0;
}

void ckpt_config_free(struct ckpt_config *cfg)
{
    if (!cfg)
        return;
    ckpt_config_init(cfg);
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

/* Fail the load at the current line (reader-level problems). */
static void ctx_fail_line(struct load_ctx *lc, const char *fmt, const char *arg)
{
    struct where w = {lc->name, lc->line};
    lc->rc = fail(lc->err, lc->err_cap, &w, NULL, NULL, NULL, fmt, arg);
}

/* ini_reader: one line per call, leading blanks removed, '\n'-terminated.
 * Returns NULL at the end of the text and after any error. */
static char *cfg_reader(char *str, int num, void *stream)
{
    struct load_ctx *lc = stream;
    const char *eol, *s;
    size_t n;

    if (lc->rc != 0 || lc->p >= lc->end)
        return NULL;
    lc->line++;
    eol = memchr(lc->p, '\n', (size_t)(lc->end - lc->p));
    n = eol ? (size_t)(eol - lc->p) : (size_t)(lc->end - lc->p);
    s = lc->p;
    lc->p = eol ? eol + 1 : lc->end;
    if (memchr(s, '\0', n)) {
        ctx_fail_line(lc, "%s", "NUL byte in the line");
        return NULL;
    }
    if (lc->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 BOM */
        s += 3;
        n -= 3;
    }
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (num < 3 || n > (size_t)num - 2) {
        char lim[16];
        snprintf(lim, sizeof(lim), "%d", num > 2 ? num - 2 : 0);
        ctx_fail_line(lc, "line longer than %s bytes", lim);
        return NULL;
    }
    if (n > 0 && s[0] == '[') {
        /* Check the header here: inih calls the handler only for keys. */
        const char *close = memchr(s, ']', n);
        if (close) {
            char name[96];
            size_t len = (size_t)(close - s - 1);
            const char *t = close + 1;
            const char *tend = s + n;
            while (t < tend && (*t == ' ' || *t == '\t' || *t == '\r'))
                t++;
            if (t < tend && *t != ';' && *t != '#') {
                ctx_fail_line(lc, "%s", "unexpected text after the [section] header");
                return NULL;
            }
            if (!section_known(s + 1, len)) {
                char raw[CKPT_CONFIG_NAME_MAX + 1];
                struct where w = {lc->name, lc->line};
                if (len >= sizeof(raw))
                    len = sizeof(raw) - 1;
                memcpy(raw, s + 1, len);
                raw[len] = '\0';
                show_value(name, sizeof(name), raw);
                lc->rc = fail(lc->err, lc->err_cap, &w, name, NULL, NULL,
                              "unknown section (sections: [cluster] [meta] [node] "
                              "[client] [layout])");
                return NULL;
            }
        } /* else: no ']', inih reports the line as a syntax error */
    } else if (n > 0 && s[0] != ';' && s[0] != '#') {
        /* inih also takes "name: value"; we do not, so that a line like
         * "listen 0.0.0.0:7400" is a syntax error and not key "listen
         * 0.0.0.0".  A line with neither is left to inih to report. */
        const char *sep = s;
        while (sep < s + n && *sep != '=' && *sep != ':')
            sep++;
        if (sep < s + n && *sep == ':') {
            ctx_fail_line(lc, "%s", "expected key = value (':' is not a separator)");
            return NULL;
        }
    }
    memcpy(str, s, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

#if INI_HANDLER_LINENO
static int cfg_handler(void *user, const char *section, const char *name, const char *value,
                       int lineno)
#else
static int cfg_handler(void *user, const char *section, const char *name, const char *value)
#endif
{
    struct load_ctx *lc = user;
    struct where w = {lc->name, lc->line};
    struct apply_env env = {&w, SOURCE_FILE, lc, lc->err, lc->err_cap};
    const struct key_desc *d;
    size_t idx = 0;

#if INI_HANDLER_LINENO
    (void)lineno; /* cfg_reader() counts lines itself */
#endif
    if (lc->rc != 0)
        return 0;
    if (!name || !value) { /* only with ini_allow_no_value set elsewhere */
        lc->rc = fail(lc->err, lc->err_cap, &w, NULL, NULL, NULL, "expected key = value");
        return 0;
    }
    if (section[0] == '\0') {
        char shown[96];
        show_value(shown, sizeof(shown), name);
        lc->rc = fail(lc->err, lc->err_cap, &w, NULL, NULL, NULL,
                      "key \"%s\" comes before any [section] header", shown);
        return 0;
    }
    d = find_key(section, name, &idx);
    if (!d) {
        lc->rc = unknown_key(lc->err, lc->err_cap, &w, section, name, value);
        return 0;
    }
    if (d->type != KT_TARGET && lc->key_line[idx] != 0) {
        lc->rc = fail(lc->err, lc->err_cap, &w, section, name, value,
                      "already set at line %u (only target may be repeated)",
                      lc->key_line[idx]);
        return 0;
    }
    lc->rc = apply(lc->cfg, d, value, &env);
    if (lc->rc != 0)
        return 0;
    lc->key_line[idx] = lc->line;
    return 1;
}

int ckpt_config_load_string(struct ckpt_config *cfg, const char *text, size_t len,
                            const char *name, char *err, size_t err_cap)
{
    struct load_ctx *lc;
    int rc, irc;

    if (err && err_cap)
        err[0] = '\0';
    if (!name)
        name = "<string>";
    lc = ckpt_calloc(1, sizeof(*lc));
    if (!lc) {
        struct where w = {name, 0};
        fail(err, err_cap, &w, NULL, NULL, NULL, "out of memory");
        return -ENOMEM;
    }
    lc->cfg = ckpt_malloc(sizeof(*lc->cfg));
    if (!lc->cfg) {
        struct where w = {name, 0};
        fail(err, err_cap, &w, NULL, NULL, NULL, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    *lc->cfg = *cfg;
    lc->name = name;
    lc->p = text;
    lc->end = text + len;
    lc->err = err;
    lc->err_cap = err_cap;

    irc = ini_parse_stream(cfg_reader, lc, cfg_handler, lc);
    if (irc > 0 && (lc->rc == 0 || (unsigned)irc < lc->line)) {
        /* inih found a syntax error before any error of ours. */
        struct where w = {name, (unsigned)irc};
        rc = fail(err, err_cap, &w, NULL, NULL, NULL,
                  "expected [section], key = value, or a comment");
        goto out;
    }
    if (lc->rc != 0) {
        rc = lc->rc;
        goto out;
    }
    if (irc < 0) { /* -2: inih could not allocate its line buffer */
        struct where w = {name, 0};
        fail(err, err_cap, &w, NULL, NULL, NULL, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    {
        struct where w = {name, 0};
        rc = check_cross(lc->cfg, &w, lc->key_line, err, err_cap);
        if (rc != 0)
            goto out;
    }
    *cfg = *lc->cfg;
    rc = 0;
out:
    if (lc)
        CKPT_FREE(lc->cfg);
    CKPT_FREE(lc);
    return rc;
}

/* Read a whole file of at most CKPT_CONFIG_FILE_MAX bytes. */
static int read_file(const char *path, char **out_buf, size_t *out_len, char *err, size_t cap)
{
    struct where w = {path, 0};
    struct stat st;
    char *buf = NULL;
    size_t len = 0, bufcap;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        fail(err, cap, &w, NULL, NULL, NULL, "cannot read: %s", strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        fail(err, cap, &w, NULL, NULL, NULL, "cannot read: %s", strerror(-rc));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        fail(err, cap, &w, NULL, NULL, NULL, "cannot read: %s", strerror(EISDIR));
        goto out;
    }
    /* st_size is a hint only (pipes, /proc); the loop enforces the cap. */
    bufcap = S_ISREG(st.st_mode) && st.st_size >= 0 &&
                     (uint64_t)st.st_size < CKPT_CONFIG_FILE_MAX
                 ? (size_t)st.st_size + 1
                 : 4096;
    buf = ckpt_malloc(bufcap);
    if (!buf) {
        rc = -ENOMEM;
        fail(err, cap, &w, NULL, NULL, NULL, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r;
        if (len == bufcap) {
            char *nb;
            if (bufcap > CKPT_CONFIG_FILE_MAX) {
                rc = fail(err, cap, &w, NULL, NULL, NULL,
                          "larger than %u bytes; is this a configuration file?",
                          CKPT_CONFIG_FILE_MAX);
                goto out;
            }
            bufcap = bufcap * 2 > CKPT_CONFIG_FILE_MAX + 1 ? CKPT_CONFIG_FILE_MAX + 1 : bufcap * 2;
            nb = ckpt_realloc(buf, bufcap);
            if (!nb) {
                rc = -ENOMEM;
                fail(err, cap, &w, NULL, NULL, NULL, "out of memory");
                goto out;
            }
            buf = nb;
        }
        if (ckpt_fault_hit(CKPT_FAULT_READ)) {
            r = -1;
            errno = EIO;
        } else {
            r = read(fd, buf + len, bufcap - len);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            fail(err, cap, &w, NULL, NULL, NULL, "cannot read: %s", strerror(-rc));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > CKPT_CONFIG_FILE_MAX) {
        rc = fail(err, cap, &w, NULL, NULL, NULL,
                  "larger than %u bytes; is this a configuration file?", CKPT_CONFIG_FILE_MAX);
        goto out;
    }
    *out_buf = buf;
    *out_len = len;
    buf = NULL;
    rc = 0;
out:
    CKPT_FREE(buf);
    close(fd);
    return rc;
}

int ckpt_config_load(struct ckpt_config *cfg, const char *path, char *err, size_t err_cap)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (err && err_cap)
        err[0] = '\0';
    if (!path) {
        struct where w = {"(null)", 0};
        return fail(err, err_cap, &w, NULL, NULL, NULL, "no configuration file given");
    }
    rc = read_file(path, &text, &len, err, err_cap);
    if (rc != 0)
        return rc;
    rc = ckpt_config_load_string(cfg, text, len, path, err, err_cap);
    CKPT_FREE(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Overrides                                                                 */

int ckpt_config_set(struct ckpt_config *cfg, const char *section, const char *key,
                    const char *value, const char *origin, char *err, size_t err_cap)
{
    struct where w = {origin ? origin : "override", 0};
    struct apply_env env = {&w, SOURCE_SET, NULL, err, err_cap};
    const struct key_desc *d;

    if (err && err_cap)
        err[0] = '\0';
    if (!section || !key || !value)
        return fail(err, err_cap, &w, NULL, NULL, NULL, "section, key and value are required");
    d = find_key(section, key, NULL);
    if (!d)
        return unknown_key(err, err_cap, &w, section, key, value);
    return apply(cfg, d, value, &env);
}

int ckpt_config_set_arg(struct ckpt_config *cfg, const char *arg, char *err, size_t err_cap)
{
    struct where w = {"command line", 0};
    char section[32], key[32];
    const char *dot, *eq;

    if (err && err_cap)
        err[0] = '\0';
    if (!arg)
        return fail(err, err_cap, &w, NULL, NULL, NULL, "no argument");
    eq = strchr(arg, '=');
    dot = eq ? memchr(arg, '.', (size_t)(eq - arg)) : NULL;
    if (!eq || !dot || dot == arg || eq == dot + 1 || (size_t)(dot - arg) >= sizeof(section) ||
        (size_t)(eq - dot - 1) >= sizeof(key)) {
        char shown[96];
        show_value(shown, sizeof(shown), arg);
        return fail(err, err_cap, &w, NULL, NULL, NULL,
                    "\"%s\": expected section.key=value, e.g. node.io_threads=16", shown);
    }
    memcpy(section, arg, (size_t)(dot - arg));
    section[dot - arg] = '\0';
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = '\0';
    return ckpt_config_set(cfg, section, key, eq + 1, "command line", err, err_cap);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static void format_addr(char *dst, size_t cap, const struct ckpt_config_addr *a)
{
    if (a->host[0] == '\0')
        dst[0] = '\0';
    else if (strchr(a->host, ':'))
        snprintf(dst, cap, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(dst, cap, "%s:%u", a->host, (unsigned)a->port);
}

/* The value of key d as it would be written in a file. */
static void format_value(const struct ckpt_config *cfg, const struct key_desc *d, char *dst,
                         size_t cap)
{
    const void *field = (const char *)cfg + d->off;

    dst[0] = '\0';
    switch (d->type) {
    case KT_NAME:
    case KT_PATH:
        snprintf(dst, cap, "%s", (const char *)field);
        break;
    case KT_TARGET: /* written line by line by the caller */
        break;
    case KT_ADDR:
        format_addr(dst, cap, field);
        break;
    case KT_TRANSPORT:
        snprintf(dst, cap, "%s",
                 enum_str((int)*(const enum ckpt_config_transport *)field, transport_names,
                          NENUM(transport_names)));
        break;
    case KT_SYNC:
        snprintf(dst, cap, "%s",
                 enum_str((int)*(const enum ckpt_config_sync *)field, sync_names,
                          NENUM(sync_names)));
        break;
    case KT_LOGLEVEL:
        snprintf(dst, cap, "%s",
                 enum_str(*(const int *)field, loglevel_names, NENUM(loglevel_names)));
        break;
    case KT_SIZE:
        format_size(dst, cap, *(const uint64_t *)field);
        break;
    case KT_RESERVE:
        if (cfg->node.reserve_is_pct)
            snprintf(dst, cap, "%u%%", (unsigned)cfg->node.reserve_pct);
        else
            format_size(dst, cap, cfg->node.reserve_bytes);
        break;
    case KT_DURATION:
        format_duration(dst, cap, *(const uint64_t *)field);
        break;
    case KT_UINT:
        snprintf(dst, cap, "%u", (unsigned)*(const uint32_t *)field);
        break;
    case KT_EC:
        snprintf(dst, cap, "%u+%u", (unsigned)cfg->layout.def.k, (unsigned)cfg->layout.def.m);
        break;
    case KT_CHUNK:
        format_size(dst, cap, cfg->layout.def.chunk_size);
        break;
    case KT_WIDTH:
        snprintf(dst, cap, "%u", (unsigned)cfg->layout.width);
        break;
    }
}

int ckpt_config_write(const struct ckpt_config *cfg, FILE *f)
{
    char val[CKPT_CONFIG_HOST_MAX + 16];
    const char *cur = NULL;

    if (fprintf(f, "# ckptfs configuration; see ckptfs.conf(5)\n") < 0)
        return -EIO;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_desc *d = &keys[i];
        if (!cur || strcmp(cur, d->section) != 0) {
            if (fprintf(f, "\n[%s]\n", d->section) < 0)
                return -EIO;
            cur = d->section;
        }
        if (d->type == KT_TARGET) {
            for (uint32_t t = 0; t < cfg->node.ntargets && t < CKPT_CONFIG_MAX_TARGETS; t++)
                if (fprintf(f, "target = %s\n", cfg->node.targets[t]) < 0)
                    return -EIO;
            continue;
        }
        format_value(cfg, d, val, sizeof(val));
        if ((val[0] ? fprintf(f, "%s = %s\n", d->key, val) : fprintf(f, "%s =\n", d->key)) < 0)
            return -EIO;
    }
    errno = 0;
    if (fflush(f) != 0)
        return errno ? -errno : -EIO;
    if (ferror(f))
        return -EIO;
    return 0;
}

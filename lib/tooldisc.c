/*
 * tooldisc.c - cluster discovery and connection for the command-line tools
 * (tooldisc.h).
 *
 * DESIGN
 *   No threads, no state: every call reads what it needs (mountinfo, the
 *   config file, the key file) and returns.  The only contract shared with
 *   another program is the mount source ckptfs sets (fs/fs_args.c calls
 *   ckpt_tooldisc_fsname()): "ckptfs:" followed by the absolute path of
 *   the config file it was mounted with.  libfuse splits -o on ',' and
 *   takes '\' as an escape, so ckpt_tooldisc_fsname() escapes both; the
 *   kernel then shows the source in mountinfo with its own octal escapes
 *   (space, tab, newline, backslash), which ckpt_tooldisc_parse_line()
 *   undoes.
 *
 *   Precedence (tooldisc.h): -c, $CKPTFS_CONF, the mount's config file,
 *   /etc/ckptfs/ckptfs.conf, built-in defaults.  A config file named by
 *   the mount that does not exist any more is an error (the mount says
 *   which cluster PATH belongs to: falling back to another one would
 *   commit or prune in the wrong cluster).
 *
 *   Limits: mountinfo lines longer than 3 * PATH_MAX are skipped; a path
 *   is matched against mount points textually (the caller passes a
 *   realpath(3)), so bind mounts of a sub-directory resolve relative to
 *   their own mount point.  O(lines of mountinfo) per lookup.
 */
#include "tooldisc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "err.h"
#include "log.h"

#define LINE_MAX_BYTES (3 * PATH_MAX)

static bool is_octal(char ch)
{
    return ch >= '0' && ch <= '7';
}

void ckpt_tooldisc_unescape(char *s)
{
    char *d = s;
    while (*s) {
        if (s[0] == '\\' && is_octal(s[1]) && is_octal(s[2]) && is_octal(s[3])) {
            *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *d++ = *s++;
        }
    }
    *d = '\0';
}

/* Copy the next space-separated field of *pp into out (cap bytes), advance
 * *pp past it.  @return 0, -EINVAL (no field), -ENAMETOOLONG. */
static int next_field(const char **pp, char *out, size_t cap)
{
    const char *p = *pp;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, " \n");
    if (n == 0)
        return -EINVAL;
    if (n >= cap)
        return -ENAMETOOLONG;
    memcpy(out, p, n);
    out[n] = '\0';
    *pp = p + n;
    return 0;
}

int ckpt_tooldisc_parse_line(const char *line, struct ckpt_tooldisc_mount *out)
{
    char skip[PATH_MAX];
    const char *p = line;

    /* ID PARENT MAJ:MIN ROOT, then MOUNTPOINT */
    for (int i = 0; i < 4; i++)
        if (next_field(&p, skip, sizeof(skip)) < 0)
            return -EINVAL;
    if (next_field(&p, out->point, sizeof(out->point)) < 0)
        return -EINVAL;
    /* OPTS [TAGS...] then " - ": the escaped fields hold no spaces. */
    const char *sep = strstr(p, " - ");
    if (!sep)
        return -EINVAL;
    p = sep + 3;
    if (next_field(&p, out->fstype, sizeof(out->fstype)) < 0)
        return -EINVAL;
    /* SOURCE may be empty on some kernels' pseudo mounts: "none" then. */
    if (next_field(&p, out->source, sizeof(out->source)) < 0)
        snprintf(out->source, sizeof(out->source), "none");
    ckpt_tooldisc_unescape(out->point);
    ckpt_tooldisc_unescape(out->source);
    return 0;
}

int ckpt_tooldisc_find_mount(const char *mountinfo, const char *abs,
                             struct ckpt_tooldisc_mount *out)
{
    struct ckpt_tooldisc_mount *m = NULL;
    char *line = NULL;
    size_t best = 0;
    bool found = false;
    int rc = 0;

    FILE *f = fopen(mountinfo ? mountinfo : CKPT_TOOLDISC_MOUNTINFO, "re");
    if (!f)
        return -errno;
    m = ckpt_malloc(sizeof(*m));
    line = ckpt_malloc(LINE_MAX_BYTES);
    if (!m || !line) {
        rc = -ENOMEM;
        goto out;
    }
    while (fgets(line, LINE_MAX_BYTES, f)) {
        size_t len = strlen(line);
        if (len && line[len - 1] != '\n' && !feof(f)) {
            /* Too long: skip the rest of it. */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        if (ckpt_tooldisc_parse_line(line, m) < 0)
            continue;
        if (strcmp(m->fstype, "fuse") != 0 && strncmp(m->fstype, "fuse.", 5) != 0)
            continue;
        size_t n = strlen(m->point);
        bool under = !strcmp(m->point, "/") ||
                     (!strncmp(abs, m->point, n) && (abs[n] == '\0' || abs[n] == '/'));
        /* ">=": of two mounts on one point the later one (listed last) is
         * the one visible. */
        if (under && (n >= best || !found)) {
            best = n;
            found = true;
            *out = *m;
        }
    }
    if (!found)
        rc = -ENOENT;
out:
    fclose(f);
    ckpt_free(m);
    ckpt_free(line);
    return rc;
}

int ckpt_tooldisc_conf_of_source(const char *source, char *out, size_t out_cap)
{
    size_t pl = strlen(CKPT_TOOLDISC_FSNAME_PREFIX);
    if (strncmp(source, CKPT_TOOLDISC_FSNAME_PREFIX, pl) != 0 || source[pl] != '/')
        return -ENOENT;
    if (strlen(source + pl) >= out_cap)
        return -ENAMETOOLONG;
    snprintf(out, out_cap, "%s", source + pl);
    return 0;
}

int ckpt_tooldisc_fsname(const char *conf, char *out, size_t out_cap)
{
    size_t o = 0;
    if (!conf || conf[0] != '/')
        return -EINVAL;
    for (const char *s = CKPT_TOOLDISC_FSNAME_PREFIX; *s; s++) {
        if (o + 1 >= out_cap)
            return -ENAMETOOLONG;
        out[o++] = *s;
    }
    for (const char *s = conf; *s; s++) {
        bool esc = *s == ',' || *s == '\\';
        if (o + 1 + (esc ? 1 : 0) >= out_cap)
            return -ENAMETOOLONG;
        if (esc)
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = '\0';
    return 0;
}

/* The config file recorded by the ckptfs mount holding path (or "."), into
 * out.  @return 0, -ENOENT (not in a ckptfs mount that recorded one). */
static int mount_conf(const struct ckpt_tooldisc_opts *o, char *out, size_t cap)
{
    char abs[PATH_MAX];
    struct ckpt_tooldisc_mount *m;
    int rc;

    if (!realpath(o->path ? o->path : ".", abs))
        return -ENOENT;
    m = ckpt_malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    rc = ckpt_tooldisc_find_mount(o->mountinfo, abs, m);
    if (rc == 0)
        rc = ckpt_tooldisc_conf_of_source(m->source, out, cap);
    else
        rc = -ENOENT;
    ckpt_free(m);
    return rc;
}

int ckpt_tooldisc_config(const struct ckpt_tooldisc_opts *o, struct ckpt_config *cfg,
                         char *used, size_t used_cap, char *err, size_t err_cap)
{
    char mconf[PATH_MAX];
    const char *conf = NULL, *from = NULL;
    int rc;

    ckpt_config_init(cfg);
    err[0] = '\0';
    used[0] = '\0';
    if (o->conf) {
        conf = o->conf;
        from = "-c";
    } else if (getenv("CKPTFS_CONF") && *getenv("CKPTFS_CONF")) {
        conf = getenv("CKPTFS_CONF");
        from = "$CKPTFS_CONF";
    } else {
        rc = mount_conf(o, mconf, sizeof(mconf));
        if (rc == -ENOMEM) {
            snprintf(err, err_cap, "out of memory");
            return rc;
        }
        if (rc == 0) {
            conf = mconf;
            from = "the ckptfs mount";
        }
    }
    if (conf) {
        rc = ckpt_config_load(cfg, conf, err, err_cap);
        if (rc < 0) {
            if (rc == -ENOENT)
                snprintf(err, err_cap, "%s: no such config file (from %s)", conf, from);
            else if (!err[0])
                snprintf(err, err_cap, "%s: %s", conf, ckpt_strerror(rc));
            return rc;
        }
        snprintf(used, used_cap, "%s", conf);
    } else {
        rc = ckpt_config_load(cfg, CKPT_CONFIG_DEFAULT_PATH, err, err_cap);
        if (rc < 0 && rc != -ENOENT) {
            if (!err[0])
                snprintf(err, err_cap, "%s: %s", CKPT_CONFIG_DEFAULT_PATH, ckpt_strerror(rc));
            return rc;
        }
        if (rc == 0)
            snprintf(used, used_cap, "%s", CKPT_CONFIG_DEFAULT_PATH);
        err[0] = '\0';
    }
    for (int i = 0; i < o->nsets; i++) {
        rc = ckpt_config_set_arg(cfg, o->sets[i], err, err_cap);
        if (rc < 0)
            return rc == -ENOMEM ? rc : CKPT_E_CONFIG;
    }
    rc = ckpt_config_check(cfg, err, err_cap);
    if (rc < 0)
        return rc == -ENOMEM ? rc : CKPT_E_CONFIG;
    if (!cfg->cluster.meta.host[0]) {
        snprintf(err, err_cap, "no ckpt-meta address: set [cluster] meta in %s, give -c FILE, "
                 "set CKPTFS_CONF, or name a path inside a ckptfs mount",
                 used[0] ? used : CKPT_CONFIG_DEFAULT_PATH " (absent)");
        return CKPT_E_CONFIG;
    }
    return 0;
}

int ckpt_tooldisc_connect(const struct ckpt_config *cfg, const char *prog, bool want_peer,
                          struct ckpt_tooldisc_conn *out, char *err, size_t err_cap)
{
    struct ckpt_net_opts no;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&no, 0, sizeof(no));
    err[0] = '\0';
    rc = ckpt_auth_key_load(cfg->cluster.key_file, no.key, &out->key_too_open);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot load the cluster key %s: %s", cfg->cluster.key_file,
                 rc == CKPT_E_CONFIG ? "not 64 hex digits" : ckpt_strerror(rc));
        return rc;
    }
    no.name = prog;
    no.transport = CKPT_TRANSPORT_TCP;
    rc = ckpt_net_create(&no, &out->net);
    memset(no.key, 0, sizeof(no.key));
    if (rc == 0)
        rc = ckpt_cclient_create(out->net, cfg->cluster.meta.host, cfg->cluster.meta.port,
                                 &out->cc);
    if (rc == 0 && want_peer)
        rc = ckpt_peer_create(out->net, cfg->cluster.meta.host, cfg->cluster.meta.port,
                              &out->meta);
    if (rc == 0) {
        struct ckpt_mclient_opts mo;
        char name[CKPT_CLIENT_NAME_MAX + 1];
        char host[64];
        if (gethostname(host, sizeof(host) - 1) < 0)
            snprintf(host, sizeof(host), "?");
        host[sizeof(host) - 1] = '\0';
        snprintf(name, sizeof(name), "%.20s@%.40s:%d", prog, host, (int)getpid());
        memset(&mo, 0, sizeof(mo));
        mo.host = cfg->cluster.meta.host;
        mo.port = cfg->cluster.meta.port;
        mo.name = name;
        mo.retry_ms = 10000;
        rc = ckpt_mclient_create(out->net, &mo, &out->mc);
    }
    if (rc < 0) {
        snprintf(err, err_cap, "cannot reach ckpt-meta at %s:%u: %s", cfg->cluster.meta.host,
                 cfg->cluster.meta.port, ckpt_strerror(rc));
        ckpt_tooldisc_disconnect(out);
    }
    return rc;
}

void ckpt_tooldisc_disconnect(struct ckpt_tooldisc_conn *conn)
{
    ckpt_mclient_destroy(conn->mc);
    ckpt_cclient_destroy(conn->cc);
    ckpt_peer_destroy(conn->meta);
    ckpt_net_destroy(conn->net);
    memset(conn, 0, sizeof(*conn));
}

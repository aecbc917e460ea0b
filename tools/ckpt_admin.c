/*
 * ckpt-admin - the ckptfs operator tool: cluster status, capacity, nodes,
 * checkpoints, directory layouts, and taking nodes out of service.
 *
 * DESIGN
 *   One file, thin.  It finds the cluster like `ckpt` (lib/tooldisc.h: -c
 *   FILE, $CKPTFS_CONF, the ckptfs mount holding PATH or the current
 *   directory, then /etc/ckptfs/ckptfs.conf), connects to ckpt-meta and
 *   asks:
 *     CLUSTER_MAP      nodes, targets, states, usage (status, nodes, df)
 *     REBUILD_STATUS   rebuild progress, rate and ETA (status)
 *     READDIR + CKPT_LIST  checkpoints of every job directory, i.e. of every
 *                      directory directly below the root (checkpoints, status)
 *     GETXATTR/SETXATTR user.ckptfs.layout  directory layouts (layout)
 *     OPEN + RELEASE   a regular file's layout, read-only (layout get)
 *     NODE_STATE       node out|in|drain|remove|add (msg_admin.h,
 *                      meta/meta_admin.c)
 *     NODE_INFO        what a node still holds (drain --wait, remove)
 *     REBALANCE        plan / start moves (meta/meta_rebuild.c)
 *   A PATH is resolved as by `ckpt`: inside a FUSE mount its components
 *   below the mount point are looked up from the root inode; any other
 *   absolute path is a path in the ckptfs namespace.
 *
 *   Output: aligned columns for people (a usage bar per target when stdout
 *   is a terminal), one JSON document with --json for scripts.
 *
 *   scrub walks PATH (default: everything) and reads every chunk of every
 *   regular file, data and parity, from the node that holds it (CHUNK_READ:
 *   the node checks the chunk's crc32c, the tool checks the transfer's).
 *   A chunk that fails its crc, is torn or is missing is reported to
 *   ckpt-meta as DEGRADED (the node also reports bad crcs by itself), which
 *   plans a REPAIR task: the bit-rot repair path of issue 8 rewrites the
 *   chunk from the others.  Unless --no-wait, scrub then waits for the
 *   repair tasks to drain and reads every reported chunk again.  Reads run
 *   one at a time, paced by --rate.  O(chunks) requests; a file being
 *   written is scrubbed once its writer closes it (OPEN waits for it).
 *
 *   Exit codes: 0 ok; 1 error (ckpt-meta unreachable, refused request);
 *   2 usage; 3 not found (unknown node or path); 4 (scrub) damage found
 *   and not repaired, or chunks that could not be read; 5 (node remove)
 *   refused because the node still holds chunks.
 *
 *   drain --wait and rebalance (unless --no-wait) poll NODE_INFO /
 *   REBUILD_STATUS twice a second and print progress (bytes, rate, ETA)
 *   on stderr every 2 s until the node is empty / no move is pending, or
 *   --timeout (default 120 s) passes (exit 1; the work goes on).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "cclient.h"
#include "config.h"
#include "crc.h"
#include "err.h"
#include "layout.h"
#include "log.h"
#include "mclient.h"
#include "msg_admin.h"
#include "msg_ckpt.h"
#include "msg_cluster.h"
#include "msg_node.h"
#include "msg_task.h"
#include "tooldisc.h"
#include "toolfmt.h"
#include "version.h"

#define EX_OK 0
#define EX_ERR 1
#define EX_USAGE 2
#define EX_NOTFOUND 3
#define EX_DAMAGE 4
#define EX_BUSY 5

#define MAX_SETS 64
#define MAX_DEPTH 256   /* path components */
#define CALL_TIMEOUT_MS 30000u

struct ctx {
    const char *conf;
    const char *sets[MAX_SETS];
    int nsets;
    bool json;
    struct ckpt_config cfg;
    ckpt_net *net;
    ckpt_mclient *mc;
    ckpt_cclient *cc;
    ckpt_peer *meta;     /* for REBUILD_STATUS and NODE_STATE */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ckpt-admin [GLOBAL OPTIONS] COMMAND [ARGS]\n"
        "  ckpt-admin status [--json]\n"
        "  ckpt-admin nodes [--json]\n"
        "  ckpt-admin df [--by node|target] [--json]\n"
        "  ckpt-admin checkpoints [--json]\n"
        "  ckpt-admin layout get PATH [--json]\n"
        "  ckpt-admin layout set PATH [ec=K+M] [chunk=SIZE] [width=W]\n"
        "  ckpt-admin node out|in|add NODE\n"
        "  ckpt-admin node drain NODE [--wait] [--timeout S] [--json]\n"
        "  ckpt-admin node remove NODE\n"
        "  ckpt-admin rebalance [--threshold PCT] [--dry-run] [--max-rate MB/s] [--no-wait]\n"
        "                       [--timeout S] [--json]\n"
        "  ckpt-admin scrub [PATH] [--rate MB/s] [--no-wait] [--timeout S] [--json]\n"
        "global options: -c FILE, --set SECTION.KEY=VALUE, --log-level L, --log-file F,\n"
        "                -h/--help, -V/--version\n"
        "exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 damage left (scrub),\n"
        "            5 refused: the node still holds data (node remove)\n");
}

/* ---- connection ----------------------------------------------------------------------- */

static int ctx_connect(struct ctx *c, const char *path)
{
    /* The cluster: -c, $CKPTFS_CONF, the ckptfs mount holding path (or the
     * current directory), /etc/ckptfs/ckptfs.conf (lib/tooldisc.h). */
    char err[512], used[PATH_MAX];
    struct ckpt_tooldisc_opts o;
    struct ckpt_tooldisc_conn conn;
    int rc;

    memset(&o, 0, sizeof(o));
    o.conf = c->conf;
    o.sets = c->sets;
    o.nsets = c->nsets;
    o.path = path;
    rc = ckpt_tooldisc_config(&o, &c->cfg, used, sizeof(used), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: %s\n", err[0] ? err : ckpt_strerror(rc));
        return rc;
    }
    rc = ckpt_tooldisc_connect(&c->cfg, "ckpt-admin", true, &conn, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: %s (configuration: %s)\n", err,
                used[0] ? used : "built-in defaults");
        return rc;
    }
    if (conn.key_too_open)
        fprintf(stderr, "ckpt-admin: warning: %s is readable by group or others\n",
                c->cfg.cluster.key_file);
    c->net = conn.net;
    c->mc = conn.mc;
    c->cc = conn.cc;
    c->meta = conn.meta;
    return 0;
}

static void ctx_close(struct ctx *c)
{
    ckpt_mclient_destroy(c->mc);
    ckpt_cclient_destroy(c->cc);
    ckpt_peer_destroy(c->meta);
    ckpt_net_destroy(c->net);
    ckpt_config_free(&c->cfg);
}

/* One request to ckpt-meta on c->meta; on success the caller releases call. */
static int meta_call(struct ctx *c, uint16_t op, const struct ckpt_wbuf *w,
                     struct ckpt_call *call)
{
    memset(call, 0, sizeof(*call));
    call->opcode = op;
    call->body = w ? w->p : NULL;
    call->body_len = w ? (uint32_t)w->len : 0;
    call->timeout_ms = CALL_TIMEOUT_MS;
    int rc = ckpt_peer_call(c->meta, call);
    if (rc == 0)
        rc = call->status;
    return rc;
}

static int rebuild_status(struct ctx *c, struct ckpt_msg_rebuild_status_resp *out)
{
    struct ckpt_call call;
    int rc = meta_call(c, CKPT_OP_REBUILD_STATUS, NULL, &call);
    if (rc == 0)
        rc = ckpt_msg_rebuild_status_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    return rc;
}

/* ---- paths (as in `ckpt`) --------------------------------------------------------------- */

/* The FUSE mount point holding abs (longest prefix), or "" when none. */
static void find_mount(const char *abs, char *out, size_t cap)
{
    struct ckpt_tooldisc_mount *m = ckpt_malloc(sizeof(*m));
    out[0] = '\0';
    if (m && ckpt_tooldisc_find_mount(NULL, abs, m) == 0 && strlen(m->point) < cap)
        snprintf(out, cap, "%s", m->point);
    ckpt_free(m);
}

/* A resolved path: the inode of every component, root first. */
struct rpath {
    char ns[PATH_MAX];
    uint64_t inos[MAX_DEPTH + 1];
    int depth;                    /* inos[depth] is the path's own inode */
    struct ckpt_attr attr;        /* of inos[depth] */
};

static int resolve(struct ctx *c, const char *path, struct rpath *out)
{
    char abs[PATH_MAX], mnt[PATH_MAX], tmp[PATH_MAX], *save = NULL;
    memset(out, 0, sizeof(*out));
    if (realpath(path, abs)) {
        find_mount(abs, mnt, sizeof(mnt));
        if (mnt[0]) {
            const char *rest = strcmp(mnt, "/") ? abs + strlen(mnt) : abs;
            snprintf(out->ns, sizeof(out->ns), "%s", *rest ? rest : "/");
        }
    }
    if (!out->ns[0]) {
        if (path[0] != '/') {
            fprintf(stderr, "ckpt-admin: %s: not inside a ckptfs mount (give a mounted path, "
                            "or an absolute path in the ckptfs namespace)\n", path);
            return -ENOENT;
        }
        snprintf(out->ns, sizeof(out->ns), "%s", path);
    }
    out->inos[0] = CKPT_ROOT_INO;
    snprintf(tmp, sizeof(tmp), "%s", out->ns);
    for (char *tok = strtok_r(tmp, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, "."))
            continue;
        if (out->depth >= MAX_DEPTH) {
            fprintf(stderr, "ckpt-admin: %s: too deep\n", path);
            return -ENAMETOOLONG;
        }
        int rc = ckpt_mclient_lookup(c->mc, out->inos[out->depth], tok, &out->attr);
        if (rc < 0) {
            fprintf(stderr, "ckpt-admin: %s: %s\n", path, ckpt_strerror(rc));
            return rc;
        }
        out->inos[++out->depth] = out->attr.ino;
    }
    if (out->depth == 0) {
        int rc = ckpt_mclient_getattr(c->mc, CKPT_ROOT_INO, &out->attr);
        if (rc < 0) {
            fprintf(stderr, "ckpt-admin: %s: %s\n", path, ckpt_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* ---- output helpers --------------------------------------------------------------------- */


static double pct(uint64_t used, uint64_t cap)
{
    return cap ? 100.0 * (double)used / (double)cap : 0.0;
}

/* "[#####.....]" for a terminal. */
static void bar(double p, char *out, size_t width)
{
    size_t fill = (size_t)(p / 100.0 * (double)width + 0.5);
    if (fill > width)
        fill = width;
    out[0] = '[';
    for (size_t i = 0; i < width; i++)
        out[1 + i] = i < fill ? '#' : '.';
    out[1 + width] = ']';
    out[2 + width] = '\0';
}

static const char *xport_name(uint32_t t)
{
    if ((t & CKPT_XPORT_KNOWN) == CKPT_XPORT_KNOWN)
        return "tcp+rdma";
    if (t & CKPT_XPORT_RDMA)
        return "rdma";
    return "tcp";
}

static const struct ckpt_map_node *map_node(const struct ckpt_msg_cluster_map_resp *m,
                                            uint32_t id)
{
    for (uint32_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].id == id)
            return &m->nodes[i];
    return NULL;
}

/* Sums over a node's targets. */
static void node_sums(const struct ckpt_msg_cluster_map_resp *m, uint32_t id, uint64_t *cap,
                      uint64_t *used, uint64_t *chunks, uint32_t *ntargets)
{
    *cap = *used = *chunks = 0;
    *ntargets = 0;
    for (uint32_t i = 0; i < m->n_targets; i++)
        if (m->targets[i].node_id == id) {
            *cap += m->targets[i].capacity;
            *used += m->targets[i].used;
            *chunks += m->targets[i].chunks;
            (*ntargets)++;
        }
}

static int get_map(struct ctx *c, struct ckpt_msg_cluster_map_resp *out)
{
    int rc = ckpt_mclient_map(c->mc, 0, out);
    if (rc < 0)
        fprintf(stderr, "ckpt-admin: cluster map: %s\n", ckpt_strerror(rc));
    return rc;
}

/* ---- checkpoints of every job --------------------------------------------------------------- */

struct ckpt_row {
    char job[CKPT_PROTO_MAX_NAME + 1];
    struct ckpt_ckpt_info info;
};

struct ckpt_rows {
    struct ckpt_row *v;
    size_t n, cap;
};

static int rows_add(struct ckpt_rows *r, const char *job, const struct ckpt_ckpt_info *i)
{
    if (r->n == r->cap) {
        size_t ncap = r->cap ? 2 * r->cap : 64;
        struct ckpt_row *nv = ckpt_realloc(r->v, ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        r->v = nv;
        r->cap = ncap;
    }
    snprintf(r->v[r->n].job, sizeof(r->v[r->n].job), "%s", job);
    r->v[r->n++].info = *i;
    return 0;
}

/* Every directory below the root is a job; its subdirectories are its
 * checkpoints (CKPT_LIST). */
static int collect_ckpts(struct ctx *c, struct ckpt_rows *out)
{
    uint64_t cookie = 0;
    int rc = 0;
    for (;;) {
        struct ckpt_msg_readdir_resp d;
        memset(&d, 0, sizeof(d));
        rc = ckpt_mclient_readdir(c->mc, CKPT_ROOT_INO, cookie, 256, 0, &d);
        if (rc < 0)
            break;
        for (uint32_t i = 0; i < d.n && rc == 0; i++) {
            const struct ckpt_dirent *e = &d.ents[i];
            cookie = e->next_cookie;
            if (e->type != (S_IFDIR >> 12) || !strcmp(e->name, ".") || !strcmp(e->name, ".."))
                continue;
            struct ckpt_msg_ckpt_list_resp l;
            memset(&l, 0, sizeof(l));
            int lr = ckpt_cclient_list(c->cc, e->ino, &l);
            if (lr == -ENOENT || lr == -ENOTDIR)
                continue; /* went away meanwhile */
            rc = lr;
            for (uint32_t j = 0; j < l.n && rc == 0; j++)
                rc = rows_add(out, e->name, &l.v[j]);
            ckpt_msg_ckpt_list_resp_free(&l);
        }
        bool eof = d.eof || d.n == 0;
        ckpt_msg_readdir_resp_free(&d);
        if (rc < 0 || eof)
            break;
    }
    if (rc < 0)
        fprintf(stderr, "ckpt-admin: listing checkpoints: %s\n", ckpt_strerror(rc));
    return rc;
}

static void ckpt_row_json(const struct ckpt_row *r)
{
    const struct ckpt_ckpt_info *i = &r->info;
    printf("{\"job\":");
    ckpt_json_str(stdout, r->job);
    printf(",\"name\":");
    ckpt_json_str(stdout, i->name);
    printf(",\"ino\":%llu,\"state\":\"%s\",\"health\":\"%s\",\"files\":%llu,\"bytes\":%llu,"
           "\"written_at\":%lld,\"committed_at\":%lld,\"degraded_stripes\":%u,"
           "\"lost_stripes\":%u}",
           (unsigned long long)i->ino, ckpt_ckpt_state_name(i->state),
           ckpt_ckpt_health_name(i->health), (unsigned long long)i->files,
           (unsigned long long)i->bytes, (long long)i->written_at, (long long)i->committed_at,
           i->degraded_stripes, i->lost_stripes);
}

static int cmd_checkpoints(struct ctx *c)
{
    struct ckpt_rows r = {0};
    if (collect_ckpts(c, &r) < 0) {
        ckpt_free(r.v);
        return EX_ERR;
    }
    if (c->json) {
        printf("[");
        for (size_t i = 0; i < r.n; i++) {
            printf(i ? ",\n " : "");
            ckpt_row_json(&r.v[i]);
        }
        printf("]\n");
    } else {
        printf("%-40s %-9s %-9s %6s %10s\n", "CHECKPOINT", "STATE", "HEALTH", "FILES", "SIZE");
        for (size_t i = 0; i < r.n; i++) {
            const struct ckpt_ckpt_info *ci = &r.v[i].info;
            char path[2 * CKPT_PROTO_MAX_NAME + 4], sz[32];
            snprintf(path, sizeof(path), "/%s/%s", r.v[i].job, ci->name);
            ckpt_fmt_bytes(ci->bytes, sz, sizeof(sz));
            printf("%-40s %-9s %-9s %6llu %10s\n", path, ckpt_ckpt_state_name(ci->state),
                   ci->state == CKPT_CKPT_COMMITTED ? ckpt_ckpt_health_name(ci->health) : "-",
                   (unsigned long long)ci->files, sz);
        }
    }
    ckpt_free(r.v);
    return EX_OK;
}

/* ---- nodes, df, status ------------------------------------------------------------------ */

static void node_json(const struct ckpt_msg_cluster_map_resp *m, const struct ckpt_map_node *n)
{
    uint64_t cap, used, chunks;
    uint32_t nt;
    node_sums(m, n->id, &cap, &used, &chunks, &nt);
    printf("{\"id\":%u,\"name\":", n->id);
    ckpt_json_str(stdout, n->name);
    printf(",\"state\":\"%s\",\"rack\":", ckpt_node_state_name(n->state));
    ckpt_json_str(stdout, n->rack);
    printf(",\"host\":");
    ckpt_json_str(stdout, n->host);
    printf(",\"port\":%u,\"rdma_port\":%u,\"transport\":\"%s\",\"last_seen_ms\":%llu,"
           "\"targets\":%u,\"capacity\":%llu,\"used\":%llu,\"chunks\":%llu}",
           n->port, n->rdma_port, xport_name(n->transports),
           (unsigned long long)n->last_seen_ms, nt, (unsigned long long)cap,
           (unsigned long long)used, (unsigned long long)chunks);
}

static void target_json(const struct ckpt_msg_cluster_map_resp *m,
                        const struct ckpt_map_target *t)
{
    const struct ckpt_map_node *n = map_node(m, t->node_id);
    printf("{\"id\":%u,\"node_id\":%u,\"node\":", t->id, t->node_id);
    ckpt_json_str(stdout, n ? n->name : "");
    printf(",\"state\":\"%s\",\"capacity\":%llu,\"free\":%llu,\"used\":%llu,\"chunks\":%llu}",
           ckpt_node_state_name(t->state), (unsigned long long)t->capacity,
           (unsigned long long)t->free, (unsigned long long)t->used,
           (unsigned long long)t->chunks);
}

static void print_nodes_table(const struct ckpt_msg_cluster_map_resp *m)
{
    printf("%-5s %-16s %-9s %-9s %-22s %-8s %7s %10s %10s\n", "ID", "NAME", "STATE",
           "TRANSPORT", "ADDRESS", "RACK", "TARGETS", "USED", "CAPACITY");
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        const struct ckpt_map_node *n = &m->nodes[i];
        uint64_t cap, used, chunks;
        uint32_t nt;
        char addr[CKPT_HOST_MAX + 8], u[32], cp[32];
        node_sums(m, n->id, &cap, &used, &chunks, &nt);
        snprintf(addr, sizeof(addr), "%s:%u", n->host, n->port);
        ckpt_fmt_bytes(used, u, sizeof(u));
        ckpt_fmt_bytes(cap, cp, sizeof(cp));
        printf("%-5u %-16s %-9s %-9s %-22s %-8s %7u %10s %10s\n", n->id, n->name,
               ckpt_node_state_name(n->state), xport_name(n->transports), addr,
               n->rack[0] ? n->rack : "-", nt, u, cp);
    }
}

static int cmd_nodes(struct ctx *c)
{
    struct ckpt_msg_cluster_map_resp m;
    memset(&m, 0, sizeof(m));
    if (get_map(c, &m) < 0)
        return EX_ERR;
    if (c->json) {
        printf("[");
        for (uint32_t i = 0; i < m.n_nodes; i++) {
            printf(i ? ",\n " : "");
            node_json(&m, &m.nodes[i]);
        }
        printf("]\n");
    } else {
        print_nodes_table(&m);
    }
    ckpt_msg_cluster_map_resp_free(&m);
    return EX_OK;
}

/* Totals over the targets of nodes that are not OUT (what statfs counts). */
static void totals(const struct ckpt_msg_cluster_map_resp *m, uint64_t *cap, uint64_t *used,
                   uint64_t *freeb)
{
    *cap = *used = *freeb = 0;
    for (uint32_t i = 0; i < m->n_targets; i++) {
        if (m->targets[i].state == CKPT_NODE_OUT)
            continue;
        *cap += m->targets[i].capacity;
        *used += m->targets[i].used;
        *freeb += m->targets[i].free;
    }
}

static void print_targets_table(const struct ckpt_msg_cluster_map_resp *m, bool bars)
{
    printf("%-6s %-16s %-9s %10s %10s %10s %9s %6s%s\n", "TARGET", "NODE", "STATE", "USED",
           "FREE", "CAPACITY", "CHUNKS", "USE%", bars ? "" : "");
    for (uint32_t i = 0; i < m->n_targets; i++) {
        const struct ckpt_map_target *t = &m->targets[i];
        const struct ckpt_map_node *n = map_node(m, t->node_id);
        char u[32], f[32], cp[32], b[64] = "";
        ckpt_fmt_bytes(t->used, u, sizeof(u));
        ckpt_fmt_bytes(t->free, f, sizeof(f));
        ckpt_fmt_bytes(t->capacity, cp, sizeof(cp));
        double p = pct(t->capacity - t->free, t->capacity);
        if (bars)
            bar(p, b, 20);
        printf("%-6u %-16s %-9s %10s %10s %10s %9llu %5.1f%% %s\n", t->id, n ? n->name : "?",
               ckpt_node_state_name(t->state), u, f, cp, (unsigned long long)t->chunks, p, b);
    }
}

static int cmd_df(struct ctx *c, const char *by)
{
    struct ckpt_msg_cluster_map_resp m;
    uint64_t cap, used, freeb;
    memset(&m, 0, sizeof(m));
    if (get_map(c, &m) < 0)
        return EX_ERR;
    totals(&m, &cap, &used, &freeb);
    bool per_node = by && !strcmp(by, "node"), per_target = by && !strcmp(by, "target");
    if (c->json) {
        printf("{\"capacity\":%llu,\"used\":%llu,\"free\":%llu", (unsigned long long)cap,
               (unsigned long long)used, (unsigned long long)freeb);
        if (per_node) {
            printf(",\"nodes\":[");
            for (uint32_t i = 0; i < m.n_nodes; i++) {
                printf(i ? "," : "");
                node_json(&m, &m.nodes[i]);
            }
            printf("]");
        }
        if (per_target) {
            printf(",\"targets\":[");
            for (uint32_t i = 0; i < m.n_targets; i++) {
                printf(i ? "," : "");
                target_json(&m, &m.targets[i]);
            }
            printf("]");
        }
        printf("}\n");
    } else {
        char u[32], f[32], cp[32];
        ckpt_fmt_bytes(used, u, sizeof(u));
        ckpt_fmt_bytes(freeb, f, sizeof(f));
        ckpt_fmt_bytes(cap, cp, sizeof(cp));
        printf("%-10s %10s %10s %10s %6s\n", "", "CAPACITY", "USED", "FREE", "USE%");
        printf("%-10s %10s %10s %10s %5.1f%%\n", "cluster", cp, u, f,
               pct(cap - freeb, cap));
        if (per_node) {
            printf("\n");
            print_nodes_table(&m);
        }
        if (per_target) {
            printf("\n");
            print_targets_table(&m, isatty(STDOUT_FILENO));
        }
    }
    ckpt_msg_cluster_map_resp_free(&m);
    return EX_OK;
}

/* ---- this machine's mounts ------------------------------------------------------------ */

/* One ckptfs mount on this machine whose connections (its root's
 * user.ckptfs.connections, fs_map_describe) name nodes of this cluster. */
struct local_mount {
    char point[PATH_MAX];
    uint32_t n, rdma, tcp, none;
    struct {
        uint32_t node;
        char transport[8];
    } c[256];
};

/* The ckptfs mounts of this cluster here (fstype fuse*, and every node
 * line's id and address as in the map).  @return how many, at most max. */
static size_t local_mounts(const struct ckpt_msg_cluster_map_resp *m, struct local_mount *out,
                           size_t max)
{
    FILE *f = fopen(CKPT_TOOLDISC_MOUNTINFO, "r");
    char line[2 * PATH_MAX + 512];
    size_t n = 0;
    char *buf = ckpt_malloc(64u << 10);
    if (!f || !buf) {
        if (f)
            fclose(f);
        ckpt_free(buf);
        return 0;
    }
    while (n < max && fgets(line, sizeof(line), f)) {
        struct ckpt_tooldisc_mount mt;
        if (ckpt_tooldisc_parse_line(line, &mt) < 0 || strncmp(mt.fstype, "fuse", 4) != 0)
            continue;
        ssize_t len = getxattr(mt.point, "user.ckptfs.connections", buf, (64u << 10) - 1);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        struct local_mount *lm = &out[n];
        memset(lm, 0, sizeof(*lm));
        snprintf(lm->point, sizeof(lm->point), "%s", mt.point);
        bool ours = true;
        for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l && ours;
             l = strtok_r(NULL, "\n", &save)) {
            unsigned id, rport, port;
            char host[256], state[32], xp[8];
            if (sscanf(l, "node %u %255[^:]:%u rdma_port=%u state=%31s transport=%7s", &id,
                       host, &port, &rport, state, xp) != 6)
                continue;
            const struct ckpt_map_node *mn = NULL;
            for (uint32_t i = 0; i < m->n_nodes && !mn; i++)
                if (m->nodes[i].id == id)
                    mn = &m->nodes[i];
            ours = mn && mn->port == port && strcmp(mn->host, host) == 0;
            if (ours && lm->n < sizeof(lm->c) / sizeof(lm->c[0])) {
                lm->c[lm->n].node = id;
                snprintf(lm->c[lm->n].transport, sizeof(lm->c[0].transport), "%s", xp);
                lm->n++;
                lm->rdma += strcmp(xp, "rdma") == 0;
                lm->tcp += strcmp(xp, "tcp") == 0;
                lm->none += strcmp(xp, "none") == 0;
            }
        }
        if (ours && lm->n)
            n++;
    }
    fclose(f);
    ckpt_free(buf);
    return n;
}

static int cmd_status(struct ctx *c)
{
    struct ckpt_msg_cluster_map_resp m;
    struct ckpt_msg_rebuild_status_resp rb;
    struct ckpt_rows r = {0};
    uint32_t by_state[CKPT_NODE_NSTATES] = {0};
    uint64_t by_health[CKPT_HEALTH_COUNT] = {0}, writing = 0;
    uint64_t cap, used, freeb;
    memset(&m, 0, sizeof(m));
    if (get_map(c, &m) < 0)
        return EX_ERR;
    int rc = rebuild_status(c, &rb);
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: rebuild status: %s\n", ckpt_strerror(rc));
        ckpt_msg_cluster_map_resp_free(&m);
        return EX_ERR;
    }
    if (collect_ckpts(c, &r) < 0) {
        ckpt_msg_cluster_map_resp_free(&m);
        ckpt_free(r.v);
        return EX_ERR;
    }
    for (uint32_t i = 0; i < m.n_nodes; i++)
        if (m.nodes[i].state < CKPT_NODE_NSTATES)
            by_state[m.nodes[i].state]++;
    for (size_t i = 0; i < r.n; i++) {
        if (r.v[i].info.state != CKPT_CKPT_COMMITTED)
            writing++;
        else if (r.v[i].info.health < CKPT_HEALTH_COUNT)
            by_health[r.v[i].info.health]++;
    }
    totals(&m, &cap, &used, &freeb);
    struct local_mount *lms = ckpt_calloc(8, sizeof(*lms));
    size_t nlm = lms ? local_mounts(&m, lms, 8) : 0;
    const char *rb_state = rb.tasks_pending ? "running" : "idle";
    if (c->json) {
        printf("{\"cluster\":");
        ckpt_json_str(stdout, m.cluster);
        printf(",\"epoch\":%llu,\"capacity\":%llu,\"used\":%llu,\"free\":%llu,\"nodes\":[",
               (unsigned long long)m.epoch, (unsigned long long)cap, (unsigned long long)used,
               (unsigned long long)freeb);
        for (uint32_t i = 0; i < m.n_nodes; i++) {
            printf(i ? "," : "");
            node_json(&m, &m.nodes[i]);
        }
        printf("],\"targets\":[");
        for (uint32_t i = 0; i < m.n_targets; i++) {
            printf(i ? "," : "");
            target_json(&m, &m.targets[i]);
        }
        printf("],\"node_states\":{");
        for (uint32_t s = 0; s < CKPT_NODE_NSTATES; s++)
            printf("%s\"%s\":%u", s ? "," : "", ckpt_node_state_name(s), by_state[s]);
        printf("},\"checkpoints\":{\"total\":%zu,\"WRITING\":%llu", r.n,
               (unsigned long long)writing);
        for (uint32_t h = 0; h < CKPT_HEALTH_COUNT; h++)
            printf(",\"%s\":%llu", ckpt_ckpt_health_name(h), (unsigned long long)by_health[h]);
        printf("},\"rebuild\":{\"state\":\"%s\",\"tasks_pending\":%llu,\"tasks_done\":%llu,"
               "\"tasks_failed\":%llu,\"chunks_done\":%llu,\"bytes_done\":%llu,"
               "\"rate_bps\":%llu,\"eta_s\":%llu,\"lost_targets\":%u,"
               "\"degraded_stripes\":%llu},",
               rb_state, (unsigned long long)rb.tasks_pending,
               (unsigned long long)rb.tasks_done, (unsigned long long)rb.tasks_failed,
               (unsigned long long)rb.chunks_done, (unsigned long long)rb.bytes_done,
               (unsigned long long)rb.rate_bps, (unsigned long long)rb.eta_s, rb.lost_targets,
               (unsigned long long)rb.degraded_stripes);
        printf("\"move\":{\"state\":\"%s\",\"moves_pending\":%llu,\"bytes_left\":%llu,"
               "\"moves_done\":%llu,\"bytes_done\":%llu,\"rate_bps\":%llu,\"eta_s\":%llu,"
               "\"max_rate_bps\":%llu,\"draining_nodes\":%u}",
               rb.moves_pending ? "running" : "idle", (unsigned long long)rb.moves_pending,
               (unsigned long long)rb.move_bytes_left, (unsigned long long)rb.moves_done,
               (unsigned long long)rb.move_bytes_done, (unsigned long long)rb.move_rate_bps,
               (unsigned long long)rb.move_eta_s, (unsigned long long)rb.max_rate_bps,
               rb.draining_nodes);
        /* This machine's mounts of the cluster and the transport of each
         * of their node connections. */
        printf(",\"mounts\":[");
        for (size_t i = 0; i < nlm; i++) {
            printf("%s{\"path\":", i ? "," : "");
            ckpt_json_str(stdout, lms[i].point);
            printf(",\"connections\":[");
            for (uint32_t j = 0; j < lms[i].n; j++)
                printf("%s{\"node\":%u,\"transport\":\"%s\"}", j ? "," : "",
                       lms[i].c[j].node, lms[i].c[j].transport);
            printf("]}");
        }
        printf("]}\n");
    } else {
        char u[32], cp[32];
        ckpt_fmt_bytes(cap - freeb, u, sizeof(u));
        ckpt_fmt_bytes(cap, cp, sizeof(cp));
        printf("cluster %s, epoch %llu\n", m.cluster[0] ? m.cluster : "-",
               (unsigned long long)m.epoch);
        printf("nodes: %u (%u UP, %u DOWN, %u OUT, %u DRAINING)\n", m.n_nodes,
               by_state[CKPT_NODE_UP], by_state[CKPT_NODE_DOWN], by_state[CKPT_NODE_OUT],
               by_state[CKPT_NODE_DRAINING]);
        printf("space: %s used of %s (%.1f%%)\n\n", u, cp, pct(cap - freeb, cap));
        print_nodes_table(&m);
        printf("\n");
        print_targets_table(&m, isatty(STDOUT_FILENO));
        printf("\ncheckpoints: %zu (%llu PROTECTED, %llu DEGRADED, %llu LOST, %llu WRITING)\n",
               r.n, (unsigned long long)by_health[CKPT_HEALTH_PROTECTED],
               (unsigned long long)by_health[CKPT_HEALTH_DEGRADED],
               (unsigned long long)by_health[CKPT_HEALTH_LOST], (unsigned long long)writing);
        if (rb.tasks_pending) {
            char done[32];
            ckpt_fmt_bytes(rb.bytes_done, done, sizeof(done));
            printf("rebuild: running, %llu task(s) pending, %llu done (%s), %.1f MiB/s, "
                   "ETA %s%llu s, %u lost target(s), %llu degraded stripe(s)\n",
                   (unsigned long long)rb.tasks_pending, (unsigned long long)rb.tasks_done,
                   done, (double)rb.rate_bps / 1048576.0, rb.eta_s ? "" : "~",
                   (unsigned long long)rb.eta_s, rb.lost_targets,
                   (unsigned long long)rb.degraded_stripes);
        } else {
            printf("rebuild: idle, %llu task(s) done since ckpt-meta started, %llu degraded "
                   "stripe(s)\n", (unsigned long long)rb.tasks_done,
                   (unsigned long long)rb.degraded_stripes);
        }
        char mleft[32], mdone[32];
        ckpt_fmt_bytes(rb.move_bytes_left, mleft, sizeof(mleft));
        ckpt_fmt_bytes(rb.move_bytes_done, mdone, sizeof(mdone));
        if (rb.moves_pending || rb.draining_nodes)
            printf("moves (drain/rebalance): running, %llu pending (%s left), %llu done (%s), "
                   "%.1f MiB/s%s, ETA %s%llu s, %u draining node(s)\n",
                   (unsigned long long)rb.moves_pending, mleft,
                   (unsigned long long)rb.moves_done, mdone,
                   (double)rb.move_rate_bps / 1048576.0,
                   rb.max_rate_bps ? " (capped)" : "", rb.move_eta_s ? "" : "~",
                   (unsigned long long)rb.move_eta_s, rb.draining_nodes);
        else
            printf("moves (drain/rebalance): idle, %llu done (%s) since ckpt-meta started\n",
                   (unsigned long long)rb.moves_done, mdone);
        for (size_t i = 0; i < nlm; i++)
            printf("mount %s: %u node connection(s): %u rdma, %u tcp, %u not connected\n",
                   lms[i].point, lms[i].n, lms[i].rdma, lms[i].tcp, lms[i].none);
    }
    ckpt_free(lms);
    ckpt_msg_cluster_map_resp_free(&m);
    ckpt_free(r.v);
    return EX_OK;
}

/* ---- layout ----------------------------------------------------------------------------- */

/* The spec stored on directory ino, "" when none.  @return 0 or an error. */
static int dir_spec(struct ctx *c, uint64_t ino, char *spec, size_t cap)
{
    int n = ckpt_mclient_getxattr(c->mc, ino, "user.ckptfs.layout", spec, cap - 1);
    if (n == -ENODATA) {
        spec[0] = '\0';
        return 0;
    }
    if (n < 0)
        return n;
    spec[n] = '\0';
    return 0;
}

static int cmd_layout_get(struct ctx *c, const char *path)
{
    struct rpath rp;
    struct ckpt_layout l;
    char spec[256] = "", own[256] = "", from[PATH_MAX] = "cluster default";
    int rc = resolve(c, path, &rp);
    if (rc < 0)
        return rc == -ENOENT ? EX_NOTFOUND : EX_ERR;
    bool is_file = S_ISREG(rp.attr.mode);
    if (is_file) {
        struct ckpt_msg_open_resp o;
        rc = ckpt_mclient_open(c->mc, rp.attr.ino, 0 /* O_RDONLY */, &o);
        if (rc == 0) {
            struct ckpt_msg_release rel;
            memset(&rel, 0, sizeof(rel));
            rel.ino = rp.attr.ino;
            rel.handle = o.handle;
            rel.session = ckpt_mclient_session(c->mc);
            l = o.layout;
            int rr = ckpt_mclient_release(c->mc, &rel);
            if (rr < 0)
                fprintf(stderr, "ckpt-admin: warning: release of %s: %s\n", path,
                        ckpt_strerror(rr));
            snprintf(from, sizeof(from), "file");
        }
    } else if (S_ISDIR(rp.attr.mode)) {
        struct ckpt_msg_cluster_map_resp m;
        memset(&m, 0, sizeof(m));
        rc = ckpt_mclient_map(c->mc, 0, &m);
        if (rc == 0) {
            l = m.layout;
            ckpt_msg_cluster_map_resp_free(&m);
        }
        /* The nearest directory with a layout, this one first. */
        for (int d = rp.depth; rc == 0 && d >= 0; d--) {
            rc = dir_spec(c, rp.inos[d], spec, sizeof(spec));
            if (rc == 0 && d == rp.depth)
                snprintf(own, sizeof(own), "%s", spec);
            if (rc == 0 && spec[0]) {
                const char *why = NULL;
                if (ckpt_layout_parse(spec, &l, &why) < 0) {
                    fprintf(stderr, "ckpt-admin: %s: stored layout \"%s\" is invalid: %s\n",
                            path, spec, why ? why : "?");
                    return EX_ERR;
                }
                snprintf(from, sizeof(from), "%s", d == rp.depth ? "this directory"
                                                                 : "a parent directory");
                break;
            }
        }
    } else {
        fprintf(stderr, "ckpt-admin: %s: neither a regular file nor a directory\n", path);
        return EX_ERR;
    }
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: %s: %s\n", path, ckpt_strerror(rc));
        return EX_ERR;
    }
    char txt[128];
    if (ckpt_layout_format(txt, sizeof(txt), &l) < 0)
        snprintf(txt, sizeof(txt), "?");
    unsigned w = l.width ? l.width : (unsigned)l.k + l.m;
    if (c->json) {
        printf("{\"path\":");
        ckpt_json_str(stdout, rp.ns);
        printf(",\"type\":\"%s\",\"k\":%u,\"m\":%u,\"chunk_size\":%u,\"width\":%u,\"spec\":",
               is_file ? "file" : "directory", l.k, l.m, l.chunk_size, w);
        ckpt_json_str(stdout, txt);
        printf(",\"from\":");
        ckpt_json_str(stdout, from);
        if (!is_file) {
            printf(",\"own\":");
            ckpt_json_str(stdout, own);
        }
        if (is_file) {
            printf(",\"targets\":[");
            for (unsigned i = 0; i < w; i++)
                printf("%s%u", i ? "," : "", l.targets[i]);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("%s: %s (%s)\n", rp.ns, txt, from);
        if (is_file) {
            printf("targets:");
            for (unsigned i = 0; i < w; i++)
                printf(" %u", l.targets[i]);
            printf("\n");
        }
    }
    return EX_OK;
}

static int cmd_layout_set(struct ctx *c, const char *path, const char *const *kv, int nkv)
{
    struct rpath rp;
    char spec[256] = "";
    size_t len = 0;
    for (int i = 0; i < nkv; i++) {
        int n = snprintf(spec + len, sizeof(spec) - len, "%s%s", i ? " " : "", kv[i]);
        if (n < 0 || (size_t)n >= sizeof(spec) - len) {
            fprintf(stderr, "ckpt-admin: layout spec too long\n");
            return EX_USAGE;
        }
        len += (size_t)n;
    }
    /* Check the syntax here for a clear message; ckpt-meta checks again. */
    struct ckpt_layout l;
    const char *why = NULL;
    ckpt_layout_default(&l);
    if (ckpt_layout_parse(spec, &l, &why) < 0) {
        fprintf(stderr, "ckpt-admin: bad layout \"%s\": %s\n", spec, why ? why : "invalid");
        return EX_USAGE;
    }
    int rc = resolve(c, path, &rp);
    if (rc < 0)
        return rc == -ENOENT ? EX_NOTFOUND : EX_ERR;
    if (!S_ISDIR(rp.attr.mode)) {
        fprintf(stderr, "ckpt-admin: %s: a layout can only be set on a directory (files keep "
                        "the layout they were created with)\n", path);
        return EX_ERR;
    }
    rc = ckpt_mclient_setxattr(c->mc, rp.attr.ino, "user.ckptfs.layout", spec, len, 0);
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: %s: cannot set layout \"%s\": %s\n", path, spec,
                ckpt_strerror(rc));
        return EX_ERR;
    }
    char txt[128];
    if (ckpt_layout_format(txt, sizeof(txt), &l) < 0)
        snprintf(txt, sizeof(txt), "%.127s", spec);
    if (!c->json)
        printf("%s: new files get %s\n", rp.ns, txt);
    return EX_OK;
}

/* ---- scrub ------------------------------------------------------------------------------ */

struct bad_chunk {
    uint64_t ino;
    uint64_t data_gen;
    uint32_t target;
    struct ckpt_chunk_key key;
    int why;                       /* CKPT_E_CRC, CKPT_E_TORN, -ENOENT */
    bool lost;                     /* its stripe lost more than m chunks */
};

struct scrub {
    struct ctx *c;
    struct ckpt_msg_cluster_map_resp map;
    ckpt_peer **peers;             /* per map.nodes index, lazily */
    uint8_t *buf;
    uint32_t buf_cap;
    double rate_bps;               /* 0: unpaced */
    double t0;
    uint64_t files, chunks, bytes, unreadable, reported_stripes;
    struct bad_chunk *bad;
    size_t nbad, bad_cap;
    bool json;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The peer of the node serving target tid, when that node is UP. */
static ckpt_peer *scrub_peer(struct scrub *sc, uint32_t tid)
{
    const struct ckpt_msg_cluster_map_resp *m = &sc->map;
    for (uint32_t i = 0; i < m->n_targets; i++) {
        if (m->targets[i].id != tid)
            continue;
        for (uint32_t j = 0; j < m->n_nodes; j++) {
            const struct ckpt_map_node *n = &m->nodes[j];
            if (n->id != m->targets[i].node_id)
                continue;
            if (n->state != CKPT_NODE_UP)
                return NULL;
            if (!sc->peers[j] && ckpt_peer_create(sc->c->net, n->host, n->port,
                                                  &sc->peers[j]) < 0)
                return NULL;
            return sc->peers[j];
        }
    }
    return NULL;
}

/* Read one chunk.  @return 0 (good), CKPT_E_CRC, CKPT_E_TORN, -ENOENT
 * (damage), or another negative code (could not be read). */
static int scrub_read(struct scrub *sc, uint32_t tid, const struct ckpt_chunk_key *key,
                      uint32_t chunk_size)
{
    ckpt_peer *p = scrub_peer(sc, tid);
    struct ckpt_msg_chunk_read m = {.target = tid, .key = *key, .offset = 0, .len = 0,
                                    .min_gen = 0};
    struct ckpt_msg_chunk_read_resp r;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t body[64];
    int rc;

    if (!p)
        return -EHOSTDOWN;
    if (chunk_size > sc->buf_cap) {
        uint8_t *nb = ckpt_realloc(sc->buf, chunk_size);
        if (!nb)
            return -ENOMEM;
        sc->buf = nb;
        sc->buf_cap = chunk_size;
    }
    memset(&call, 0, sizeof(call));
    ckpt_wbuf_init(&w, body, sizeof(body));
    rc = ckpt_msg_chunk_read_encode(&w, &m);
    if (rc == 0) {
        call.opcode = CKPT_OP_CHUNK_READ;
        call.body = w.p;
        call.body_len = (uint32_t)w.len;
        call.bulk_in = sc->buf;
        call.bulk_in_cap = sc->buf_cap;
        call.timeout_ms = CALL_TIMEOUT_MS;
        rc = ckpt_peer_call(p, &call);
        if (rc == 0)
            rc = call.status;
    }
    if (rc == 0)
        rc = ckpt_msg_chunk_read_resp_decode(call.resp_body, call.resp_body_len, &r);
    if (rc == 0) {
        sc->bytes += call.bulk_in_len;
        if (ckpt_crc32c(0, sc->buf, call.bulk_in_len) != r.crc)
            rc = -EIO; /* damaged in flight, not on disk: not reported */
    }
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    if (sc->rate_bps > 0) {
        double due = sc->t0 + (double)sc->bytes / sc->rate_bps, now = now_s();
        if (due > now) {
            struct timespec ts = {(time_t)(due - now),
                                  (long)((due - now - (double)(time_t)(due - now)) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    return rc;
}

static const char *why_name(int why)
{
    return why == -ENOENT ? "missing" : why == CKPT_E_TORN ? "torn" : "bad crc";
}

static int bad_add(struct scrub *sc, const struct bad_chunk *b)
{
    if (sc->nbad == sc->bad_cap) {
        size_t ncap = sc->bad_cap ? 2 * sc->bad_cap : 64;
        struct bad_chunk *nv = ckpt_realloc(sc->bad, ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        sc->bad = nv;
        sc->bad_cap = ncap;
    }
    sc->bad[sc->nbad++] = *b;
    return 0;
}

/* Report the damaged chunks of one file (bad[from..nbad)) as DEGRADED. */
static int scrub_report(struct scrub *sc, uint64_t ino, uint64_t gen, size_t from)
{
    struct ckpt_degraded_stripe ds[256];
    size_t i = from;
    while (i < sc->nbad) {
        uint32_t n = 0;
        for (; i < sc->nbad && n < 256; i++) {
            if (n && ds[n - 1].stripe == sc->bad[i].key.stripe)
                ds[n - 1].missing_mask |= 1u << sc->bad[i].key.index;
            else
                ds[n++] = (struct ckpt_degraded_stripe){
                    .stripe = sc->bad[i].key.stripe,
                    .missing_mask = 1u << sc->bad[i].key.index};
        }
        struct ckpt_msg_degraded m = {.ino = ino, .data_gen = gen, .n = n, .stripes = ds};
        int rc = ckpt_mclient_degraded(sc->c->mc, &m);
        if (rc < 0)
            return rc;
        sc->reported_stripes += n;
    }
    return 0;
}

static int scrub_file(struct scrub *sc, uint64_t ino, const char *path)
{
    struct ckpt_msg_open_resp o;
    int rc = ckpt_mclient_open(sc->c->mc, ino, 0 /* O_RDONLY */, &o);
    if (rc == -ENOENT)
        return 0; /* removed meanwhile */
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: scrub: %s: %s\n", path, ckpt_strerror(rc));
        return rc;
    }
    struct ckpt_msg_release rel;
    memset(&rel, 0, sizeof(rel));
    rel.ino = ino;
    rel.handle = o.handle;
    rel.session = ckpt_mclient_session(sc->c->mc);
    rc = ckpt_mclient_release(sc->c->mc, &rel);
    if (rc < 0)
        fprintf(stderr, "ckpt-admin: warning: release of %s: %s\n", path, ckpt_strerror(rc));
    const struct ckpt_layout *l = &o.layout;
    uint64_t ns = ckpt_layout_nstripes(l, o.attr.size);
    size_t first_bad = sc->nbad;
    sc->files++;
    rc = 0;
    for (uint64_t s = 0; s < ns && rc >= 0; s++) {
        if (ckpt_layout_chunk_len(l, o.attr.size, s, 0) == 0)
            continue;
        for (uint32_t i = 0; i < (uint32_t)l->k + l->m; i++) {
            if (i < l->k && ckpt_layout_chunk_len(l, o.attr.size, s, i) == 0)
                continue; /* past EOF: never written */
            struct bad_chunk b = {.ino = ino, .data_gen = o.attr.data_gen,
                                  .target = l->targets[ckpt_layout_slot(l, s, i)],
                                  .key = {.ino = ino, .stripe = s, .index = (uint16_t)i}};
            int r = scrub_read(sc, b.target, &b.key, l->chunk_size);
            sc->chunks++;
            if (r == 0)
                continue;
            if (r == CKPT_E_CRC || r == CKPT_E_TORN || r == -ENOENT) {
                b.why = r;
                if (!sc->json)
                    printf("%s: %s chunk: stripe %llu index %u on target %u\n", path,
                           why_name(r), (unsigned long long)s, i, b.target);
                rc = bad_add(sc, &b);
                if (rc < 0)
                    break;
            } else if (r == -ENOMEM) {
                rc = r;
            } else {
                sc->unreadable++;
                if (!sc->json)
                    printf("%s: stripe %llu index %u on target %u unreadable: %s\n", path,
                           (unsigned long long)s, i, b.target, ckpt_strerror(r));
            }
        }
    }
    /* A stripe with more than m damaged chunks cannot be repaired. */
    for (size_t i = first_bad; i < sc->nbad; i++) {
        unsigned same = 0;
        for (size_t j = first_bad; j < sc->nbad; j++)
            same += sc->bad[j].key.stripe == sc->bad[i].key.stripe;
        sc->bad[i].lost = same > l->m;
        if (sc->bad[i].lost && !sc->json && (i == first_bad ||
                                             sc->bad[i - 1].key.stripe != sc->bad[i].key.stripe))
            printf("%s: stripe %llu has %u damaged chunks, more than the %u parity: LOST\n",
                   path, (unsigned long long)sc->bad[i].key.stripe, same, l->m);
    }
    if (rc >= 0 && sc->nbad > first_bad) {
        rc = scrub_report(sc, ino, o.attr.data_gen, first_bad);
        if (rc < 0)
            fprintf(stderr, "ckpt-admin: scrub: %s: cannot report damage: %s\n", path,
                    ckpt_strerror(rc));
    }
    return rc < 0 ? rc : 0;
}

static int scrub_tree(struct scrub *sc, uint64_t dir, const char *path, int depth)
{
    uint64_t cookie = 0;
    int rc = 0;
    if (depth > MAX_DEPTH)
        return 0;
    for (;;) {
        struct ckpt_msg_readdir_resp d;
        memset(&d, 0, sizeof(d));
        rc = ckpt_mclient_readdir(sc->c->mc, dir, cookie, 256, 0, &d);
        if (rc == -ENOENT)
            return 0;
        if (rc < 0)
            break;
        for (uint32_t i = 0; i < d.n && rc == 0; i++) {
            const struct ckpt_dirent *e = &d.ents[i];
            char sub[PATH_MAX];
            cookie = e->next_cookie;
            if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
                continue;
            snprintf(sub, sizeof(sub), "%s/%s", strcmp(path, "/") ? path : "", e->name);
            if (e->type == (S_IFDIR >> 12))
                rc = scrub_tree(sc, e->ino, sub, depth + 1);
            else if (e->type == (S_IFREG >> 12))
                rc = scrub_file(sc, e->ino, sub);
        }
        bool eof = d.eof || d.n == 0;
        ckpt_msg_readdir_resp_free(&d);
        if (rc < 0 || eof)
            break;
    }
    return rc;
}

static int cmd_scrub(struct ctx *c, const char *path, double rate_mbs, bool wait,
                     uint64_t timeout_s)
{
    struct scrub sc;
    struct rpath rp;
    int ex = EX_OK;
    memset(&sc, 0, sizeof(sc));
    sc.c = c;
    sc.json = c->json;
    sc.rate_bps = rate_mbs * 1048576.0;
    if (resolve(c, path ? path : "/", &rp) < 0)
        return EX_NOTFOUND;
    if (get_map(c, &sc.map) < 0)
        return EX_ERR;
    sc.peers = ckpt_calloc(sc.map.n_nodes ? sc.map.n_nodes : 1, sizeof(*sc.peers));
    if (!sc.peers) {
        ckpt_msg_cluster_map_resp_free(&sc.map);
        return EX_ERR;
    }
    sc.t0 = now_s();
    int rc = S_ISDIR(rp.attr.mode) ? scrub_tree(&sc, rp.attr.ino, rp.ns, 0)
                                   : S_ISREG(rp.attr.mode) ? scrub_file(&sc, rp.attr.ino, rp.ns)
                                                           : 0;
    double secs = now_s() - sc.t0;
    uint64_t scanned = sc.bytes, repaired = 0, left = sc.nbad, lost = 0;
    bool waited = false;
    for (size_t i = 0; i < sc.nbad; i++)
        lost += sc.bad[i].lost;
    if (rc == 0 && sc.nbad > lost && wait) {
        /* The repair tasks: wait until ckpt-meta has none left and no
         * degraded stripe is recorded, then read every bad chunk again. */
        double end = now_s() + (double)timeout_s;
        struct ckpt_msg_rebuild_status_resp st;
        struct timespec ts = {0, 250 * 1000000L};
        bool settled = false;
        while (!settled && now_s() < end) {
            nanosleep(&ts, NULL);
            settled = rebuild_status(c, &st) == 0 && st.tasks_pending == 0 &&
                      st.degraded_stripes == 0;
            left = lost;
            for (size_t i = 0; settled && i < sc.nbad; i++)
                if (!sc.bad[i].lost)
                    left += scrub_read(&sc, sc.bad[i].target, &sc.bad[i].key,
                                       sc.buf_cap) != 0;
            settled = settled && left == lost;
        }
        if (!settled) {
            left = lost;
            for (size_t i = 0; i < sc.nbad; i++)
                if (!sc.bad[i].lost)
                    left += scrub_read(&sc, sc.bad[i].target, &sc.bad[i].key,
                                       sc.buf_cap) != 0;
        }
        repaired = sc.nbad - left;
        waited = true;
    }
    if (rc < 0)
        ex = rc == -ENOENT ? EX_NOTFOUND : EX_ERR;
    else if (left || sc.unreadable)
        ex = EX_DAMAGE;
    uint64_t crc = 0, torn = 0, missing = 0;
    for (size_t i = 0; i < sc.nbad; i++) {
        crc += sc.bad[i].why == CKPT_E_CRC;
        torn += sc.bad[i].why == CKPT_E_TORN;
        missing += sc.bad[i].why == -ENOENT;
    }
    if (c->json) {
        printf("{\"path\":");
        ckpt_json_str(stdout, rp.ns);
        printf(",\"files\":%llu,\"chunks\":%llu,\"bytes\":%llu,\"seconds\":%.3f,"
               "\"bad_crc\":%llu,\"torn\":%llu,\"missing\":%llu,\"unreadable\":%llu,"
               "\"reported_stripes\":%llu,\"waited\":%s,\"repaired\":%llu,\"left\":%llu,"
               "\"lost\":%llu,\"bad\":[",
               (unsigned long long)sc.files, (unsigned long long)sc.chunks,
               (unsigned long long)scanned, secs, (unsigned long long)crc,
               (unsigned long long)torn, (unsigned long long)missing,
               (unsigned long long)sc.unreadable, (unsigned long long)sc.reported_stripes,
               waited ? "true" : "false", (unsigned long long)repaired,
               (unsigned long long)left, (unsigned long long)lost);
        for (size_t i = 0; i < sc.nbad; i++)
            printf("%s{\"ino\":%llu,\"stripe\":%llu,\"index\":%u,\"target\":%u,"
                   "\"what\":\"%s\",\"lost\":%s}",
                   i ? "," : "", (unsigned long long)sc.bad[i].ino,
                   (unsigned long long)sc.bad[i].key.stripe, sc.bad[i].key.index,
                   sc.bad[i].target, why_name(sc.bad[i].why),
                   sc.bad[i].lost ? "true" : "false");
        printf("]}\n");
    } else if (rc == 0) {
        char b[32];
        ckpt_fmt_bytes(scanned, b, sizeof(b));
        printf("scrub %s: %llu file(s), %llu chunk(s), %s in %.1f s (%.1f MiB/s)\n", rp.ns,
               (unsigned long long)sc.files, (unsigned long long)sc.chunks, b, secs,
               secs > 0 ? (double)scanned / 1048576.0 / secs : 0.0);
        printf("found: %llu bad crc, %llu torn, %llu missing, %llu unreadable\n",
               (unsigned long long)crc, (unsigned long long)torn, (unsigned long long)missing,
               (unsigned long long)sc.unreadable);
        if (lost)
            printf("lost: %llu chunk(s) in stripes damaged beyond their parity\n",
                   (unsigned long long)lost);
        if (sc.nbad && waited)
            printf("repaired: %llu of %zu damaged chunk(s)%s\n", (unsigned long long)repaired,
                   sc.nbad - lost, left > lost ? " (the rest is still queued for repair)" : "");
        else if (sc.nbad)
            printf("reported %llu stripe(s) to ckpt-meta for repair\n",
                   (unsigned long long)sc.reported_stripes);
    }
    for (uint32_t i = 0; i < sc.map.n_nodes; i++)
        ckpt_peer_destroy(sc.peers[i]);
    ckpt_free(sc.peers);
    ckpt_free(sc.buf);
    ckpt_free(sc.bad);
    ckpt_msg_cluster_map_resp_free(&sc.map);
    return ex;
}

/* ---- node out|in|drain|remove|add ---------------------------------------------------------- */

/* A node by id or name.  @return its id, or 0 (reported) when unknown. */
static uint32_t find_node(const struct ckpt_msg_cluster_map_resp *m, const char *arg)
{
    char *end;
    unsigned long id = strtoul(arg, &end, 10);
    for (uint32_t i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].name, arg) || (*end == '\0' && end != arg && m->nodes[i].id == id))
            return m->nodes[i].id;
    fprintf(stderr, "ckpt-admin: no node %s (see `ckpt-admin nodes`)\n", arg);
    return 0;
}

static int node_info(struct ctx *c, uint32_t id, struct ckpt_msg_node_info_resp *out)
{
    struct ckpt_msg_node_info m = {.node_id = id};
    struct ckpt_wbuf w;
    struct ckpt_call call;
    uint8_t buf[16];
    memset(&call, 0, sizeof(call));
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = ckpt_msg_node_info_encode(&w, &m);
    if (rc == 0)
        rc = meta_call(c, CKPT_OP_NODE_INFO, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_node_info_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static void node_info_json(const char *name, const struct ckpt_msg_node_info_resp *ni)
{
    printf("{\"node\":");
    ckpt_json_str(stdout, name);
    printf(",\"id\":%u,\"state\":\"%s\",\"held_out\":%s,\"draining\":%s,\"files\":%llu,"
           "\"bytes\":%llu,\"tasks\":%llu,\"delq\":%llu,\"open_files\":%llu,\"drained\":%s}\n",
           ni->node_id,
           ckpt_node_state_name(ni->state), ni->flags & CKPT_NODE_F_HELD ? "true" : "false",
           ni->flags & CKPT_NODE_F_DRAINING ? "true" : "false", (unsigned long long)ni->files,
           (unsigned long long)ni->bytes, (unsigned long long)ni->tasks,
           (unsigned long long)ni->delq, (unsigned long long)ni->open_files,
           ni->files == 0 && ni->delq == 0 ? "true" : "false");
}

/* drain --wait: poll until nothing is left on the node. */
static int drain_wait(struct ctx *c, const char *arg, uint32_t id, uint64_t timeout_s)
{
    struct ckpt_msg_node_info_resp ni;
    struct ckpt_msg_rebuild_status_resp st;
    struct timespec ts = {0, 500 * 1000000L};
    double t0 = now_s(), end = t0 + (double)timeout_s, last = 0;
    uint64_t first_bytes = 0;
    bool have_first = false;
    for (;;) {
        int rc = node_info(c, id, &ni);
        if (rc < 0) {
            fprintf(stderr, "ckpt-admin: node %s: %s\n", arg, ckpt_strerror(rc));
            return rc == -ENOENT ? EX_NOTFOUND : EX_ERR;
        }
        if (!have_first) {
            first_bytes = ni.bytes;
            have_first = true;
        }
        if (!(ni.flags & CKPT_NODE_F_DRAINING)) {
            fprintf(stderr, "ckpt-admin: node %s is no longer draining (drain cancelled)\n",
                    arg);
            return EX_ERR;
        }
        if (ni.files == 0 && ni.delq == 0) {
            double secs = now_s() - t0;
            if (c->json) {
                node_info_json(arg, &ni);
            } else {
                char b[32];
                ckpt_fmt_bytes(first_bytes, b, sizeof(b));
                printf("node %s (id %u) drained: %s moved off it in %.1f s; "
                       "`ckpt-admin node remove %s` forgets it\n", arg, id, b, secs, arg);
            }
            return EX_OK;
        }
        double now = now_s();
        if (now >= end) {
            fprintf(stderr, "ckpt-admin: node %s: not drained after %llu s: %llu file(s), "
                    "%llu queued deletion(s) left (see ckpt-meta's log)", arg,
                    (unsigned long long)timeout_s, (unsigned long long)ni.files,
                    (unsigned long long)ni.delq);
            if (ni.open_files)
                fprintf(stderr, "; %llu of the files are open, and a file moves only once "
                        "nobody has it open", (unsigned long long)ni.open_files);
            fputc('\n', stderr);
            return EX_ERR;
        }
        if (!c->json && now - last >= 2.0 && rebuild_status(c, &st) == 0) {
            char left[32], done[32];
            ckpt_fmt_bytes(ni.bytes, left, sizeof(left));
            ckpt_fmt_bytes(first_bytes > ni.bytes ? first_bytes - ni.bytes : 0, done, sizeof(done));
            double rate = now > t0 ? (double)(first_bytes > ni.bytes ? first_bytes - ni.bytes
                                                                     : 0) / (now - t0) : 0;
            char open_note[64] = "";
            if (ni.open_files)
                snprintf(open_note, sizeof(open_note), " (%llu open: moved once closed)",
                         (unsigned long long)ni.open_files);
            fprintf(stderr, "draining %s: %llu file(s)%s, %s left; %s moved, %.1f MiB/s, "
                    "ETA %s%.0f s; %llu deletion(s) queued\n", arg,
                    (unsigned long long)ni.files, open_note, left, done, rate / 1048576.0,
                    rate > 0 ? "" : "~",
                    rate > 0 ? (double)ni.bytes / rate : (double)st.move_eta_s,
                    (unsigned long long)ni.delq);
            last = now;
        }
        nanosleep(&ts, NULL);
    }
}

static int cmd_node(struct ctx *c, const char *verb, const char *arg, bool wait,
                    uint64_t timeout_s)
{
    struct ckpt_msg_cluster_map_resp m;
    struct ckpt_msg_node_state ns;
    struct ckpt_wbuf w;
    struct ckpt_call call;
    uint8_t buf[32];
    memset(&m, 0, sizeof(m));
    memset(&call, 0, sizeof(call));
    if (get_map(c, &m) < 0)
        return EX_ERR;
    ns.node_id = find_node(&m, arg);
    ckpt_msg_cluster_map_resp_free(&m);
    if (!ns.node_id)
        return EX_NOTFOUND;
    if (!strcmp(verb, "out"))
        ns.op = CKPT_ADMIN_NODE_OUT;
    else if (!strcmp(verb, "in"))
        ns.op = CKPT_ADMIN_NODE_IN;
    else if (!strcmp(verb, "drain"))
        ns.op = CKPT_ADMIN_NODE_DRAIN;
    else if (!strcmp(verb, "remove"))
        ns.op = CKPT_ADMIN_NODE_REMOVE;
    else
        ns.op = CKPT_ADMIN_NODE_ADD;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = ckpt_msg_node_state_encode(&w, &ns);
    if (rc == 0)
        rc = meta_call(c, CKPT_OP_NODE_STATE, &w, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    if (rc == -EBUSY && ns.op == CKPT_ADMIN_NODE_REMOVE) {
        struct ckpt_msg_node_info_resp ni;
        if (node_info(c, ns.node_id, &ni) == 0 && ni.files) {
            char b[32];
            ckpt_fmt_bytes(ni.bytes, b, sizeof(b));
            fprintf(stderr, "ckpt-admin: node %s not removed: it still holds chunks of %llu "
                    "file(s) (%s) that may exist nowhere else in full redundancy; drain it "
                    "first (`ckpt-admin node drain %s --wait`)%s\n", arg,
                    (unsigned long long)ni.files, b, arg,
                    ni.state == CKPT_NODE_OUT ? ", or wait for its rebuild to finish" : "");
        } else if (node_info(c, ns.node_id, &ni) == 0 &&
                   (ni.flags & CKPT_NODE_F_DRAINING)) {
            fprintf(stderr, "ckpt-admin: node %s not removed: it is drained but still running; "
                    "stop its ckpt-node first (it is removable once it is DOWN)\n", arg);
        } else {
            fprintf(stderr, "ckpt-admin: node %s not removed: it is UP and not drained; drain "
                    "it first (`ckpt-admin node drain %s --wait`), then stop it\n", arg, arg);
        }
        return EX_BUSY;
    }
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: node %s %s: %s\n", verb, arg, ckpt_strerror(rc));
        return rc == -ENOENT ? EX_NOTFOUND : EX_ERR;
    }
    switch (ns.op) {
    case CKPT_ADMIN_NODE_OUT:
        printf("node %s (id %u) is OUT: its data is being rebuilt on the other nodes "
               "(see `ckpt-admin status`)\n", arg, ns.node_id);
        break;
    case CKPT_ADMIN_NODE_DRAIN:
        if (wait)
            return drain_wait(c, arg, ns.node_id, timeout_s);
        printf("node %s (id %u) is DRAINING: its chunks are being moved to the other nodes "
               "(`ckpt-admin node drain %s --wait` follows it)\n", arg, ns.node_id, arg);
        break;
    case CKPT_ADMIN_NODE_REMOVE:
        printf("node %s (id %u) removed from the cluster\n", arg, ns.node_id);
        break;
    default:
        printf("node %s (id %u) is in: placement uses it again (UP at its next heartbeat)\n",
               arg, ns.node_id);
        break;
    }
    return EX_OK;
}

/* ---- rebalance ------------------------------------------------------------------------------ */

static int cmd_rebalance(struct ctx *c, uint32_t pct, bool dry, double max_rate_mbs, bool wait,
                         uint64_t timeout_s)
{
    struct ckpt_msg_rebalance m = {.threshold_pct = pct,
                                   .flags = dry ? CKPT_REBALANCE_DRY_RUN : 0,
                                   .max_rate_bps = (uint64_t)(max_rate_mbs * 1048576.0)};
    struct ckpt_msg_rebalance_resp r;
    struct ckpt_wbuf w;
    struct ckpt_call call;
    uint8_t buf[32];
    struct ckpt_msg_rebuild_status_resp st;
    memset(&call, 0, sizeof(call));
    memset(&r, 0, sizeof(r));
    /* Bytes moved so far, before the moves start (the rate below). */
    double t0 = now_s();
    int rc = rebuild_status(c, &st);
    uint64_t done0 = rc == 0 ? st.move_bytes_done : 0;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    if (rc == 0)
        rc = ckpt_msg_rebalance_encode(&w, &m);
    if (rc == 0)
        rc = meta_call(c, CKPT_OP_REBALANCE, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_rebalance_resp_decode(call.resp_body, call.resp_body_len, &r);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    if (rc < 0) {
        fprintf(stderr, "ckpt-admin: rebalance: %s\n", ckpt_strerror(rc));
        return EX_ERR;
    }
    bool resumed = r.flags & CKPT_REBALANCE_RESUMED;
    if (c->json) {
        printf("{\"dry_run\":%s,\"resumed\":%s,\"threshold_pct\":%u,\"mean_usage\":%.6f,"
               "\"max_usage_before\":%.6f,\"max_usage_after\":%.6f,\"files\":%llu,"
               "\"bytes\":%llu,\"targets\":[", dry ? "true" : "false",
               resumed ? "true" : "false", r.threshold_pct, (double)r.mean_ppm / 1e6,
               (double)r.max_ppm_before / 1e6, (double)r.max_ppm_after / 1e6,
               (unsigned long long)r.files, (unsigned long long)r.bytes);
        for (uint32_t i = 0; i < r.n; i++) {
            const struct ckpt_rebalance_target *t = &r.targets[i];
            printf("%s{\"id\":%u,\"node\":%u,\"capacity\":%llu,\"used\":%llu,\"out_bytes\":%llu,"
                   "\"in_bytes\":%llu,\"out_files\":%u,\"in_files\":%u}", i ? "," : "", t->tid,
                   t->node_id, (unsigned long long)t->capacity, (unsigned long long)t->used,
                   (unsigned long long)t->out_bytes, (unsigned long long)t->in_bytes,
                   t->out_files, t->in_files);
        }
        printf("]}\n");
    } else {
        char b[32];
        ckpt_fmt_bytes(r.bytes, b, sizeof(b));
        printf("rebalance%s: %s%llu file move(s), %s; usage mean %.4f%%, max %.4f%% now, "
               "%.4f%% after (threshold %u%%)\n", dry ? " (dry run)" : "",
               resumed ? "resuming " : "", (unsigned long long)r.files, b,
               (double)r.mean_ppm / 1e4, (double)r.max_ppm_before / 1e4,
               (double)r.max_ppm_after / 1e4, r.threshold_pct);
        printf("%-8s %-6s %12s %12s %6s %12s %6s\n", "TARGET", "NODE", "USED", "OUT", "FILES",
               "IN", "FILES");
        for (uint32_t i = 0; i < r.n; i++) {
            const struct ckpt_rebalance_target *t = &r.targets[i];
            char u[32], o[32], in[32];
            ckpt_fmt_bytes(t->used, u, sizeof(u));
            ckpt_fmt_bytes(t->out_bytes, o, sizeof(o));
            ckpt_fmt_bytes(t->in_bytes, in, sizeof(in));
            printf("%-8u %-6u %12s %12s %6u %12s %6u\n", t->tid, t->node_id, u, o,
                   t->out_files, in, t->in_files);
        }
    }
    uint64_t files = r.files;
    ckpt_msg_rebalance_resp_free(&r);
    if (dry || !wait || files == 0)
        return EX_OK;
    /* Follow the moves until none is pending (polled every 100 ms, so
     * that the rate printed at the end is the moves' own). */
    struct timespec ts = {0, 100 * 1000000L};
    double end = t0 + (double)timeout_s, last = now_s();
    for (;;) {
        rc = rebuild_status(c, &st);
        if (rc < 0) {
            fprintf(stderr, "ckpt-admin: rebalance: status: %s\n", ckpt_strerror(rc));
            return EX_ERR;
        }
        double now = now_s();
        if (st.moves_pending == 0) {
            uint64_t moved = st.move_bytes_done - done0;
            if (!c->json)
                printf("rebalance done: %llu bytes moved in %.2f s (%.1f MiB/s)\n",
                       (unsigned long long)moved, now - t0,
                       now > t0 ? (double)moved / 1048576.0 / (now - t0) : 0.0);
            return EX_OK;
        }
        if (now >= end) {
            fprintf(stderr, "ckpt-admin: rebalance: %llu move(s) still pending after %llu s; "
                    "they go on in the background (`ckpt-admin status`)\n",
                    (unsigned long long)st.moves_pending, (unsigned long long)timeout_s);
            return EX_ERR;
        }
        if (!c->json && now - last >= 2.0) {
            char left[32];
            ckpt_fmt_bytes(st.move_bytes_left, left, sizeof(left));
            fprintf(stderr, "rebalance: %llu move(s), %s left, %.1f MiB/s, ETA %s%llu s\n",
                    (unsigned long long)st.moves_pending, left,
                    (double)st.move_rate_bps / 1048576.0, st.move_eta_s ? "" : "~",
                    (unsigned long long)st.move_eta_s);
            last = now;
        }
        nanosleep(&ts, NULL);
    }
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct ctx c;
    int i = 1;
    memset(&c, 0, sizeof(c));
    ckpt_log_init("ckpt-admin", CKPT_LOG_LVL_WARN);
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return EX_OK;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("ckpt-admin %s\n", CKPT_VERSION_STRING);
            return EX_OK;
        } else if (!strcmp(a, "-c") && i + 1 < argc) {
            c.conf = argv[++i];
        } else if (!strcmp(a, "--set") && i + 1 < argc && c.nsets < MAX_SETS) {
            c.sets[c.nsets++] = argv[++i];
        } else if (!strcmp(a, "--log-level") && i + 1 < argc) {
            int lv = ckpt_log_level_parse(argv[++i]);
            if (lv < 0) {
                fprintf(stderr, "ckpt-admin: bad log level %s\n", argv[i]);
                return EX_USAGE;
            }
            ckpt_log_init(NULL, lv);
        } else if (!strcmp(a, "--log-file") && i + 1 < argc) {
            if (ckpt_log_set_file(argv[++i]) < 0) {
                fprintf(stderr, "ckpt-admin: cannot open log file %s\n", argv[i]);
                return EX_ERR;
            }
        } else if (!strcmp(a, "--json")) {
            c.json = true;
        } else {
            fprintf(stderr, "ckpt-admin: unknown option %s\n", a);
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[i++];
    const char *pos[8];
    int npos = 0;
    const char *by = NULL;
    double rate = 0;
    uint64_t timeout_s = 120;
    bool wait = true, wait_flag = false, dry = false;
    double max_rate = 0;
    uint32_t threshold = 10;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return EX_OK;
        } else if (!strcmp(a, "--json")) {
            c.json = true;
        } else if (!strcmp(a, "--by") && i + 1 < argc) {
            by = argv[++i];
            if (strcmp(by, "node") && strcmp(by, "target")) {
                fprintf(stderr, "ckpt-admin df: --by takes node or target, not %s\n", by);
                return EX_USAGE;
            }
        } else if (!strcmp(a, "--no-wait")) {
            wait = false;
        } else if (!strcmp(a, "--wait")) {
            wait_flag = true;
        } else if (!strcmp(a, "--dry-run")) {
            dry = true;
        } else if (!strcmp(a, "--threshold") && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (end == argv[i] || *end || argv[i][0] == '-' || v == 0 || v > 100) {
                fprintf(stderr, "ckpt-admin: --threshold: not a percentage 1..100: %s\n",
                        argv[i]);
                return EX_USAGE;
            }
            threshold = (uint32_t)v;
        } else if (!strcmp(a, "--max-rate") && i + 1 < argc) {
            char *end;
            max_rate = strtod(argv[++i], &end);
            if (end == argv[i] || *end || max_rate <= 0) {
                fprintf(stderr, "ckpt-admin: --max-rate: not a positive number of MB/s: %s\n",
                        argv[i]);
                return EX_USAGE;
            }
        } else if (!strcmp(a, "--rate") && i + 1 < argc) {
            char *end;
            rate = strtod(argv[++i], &end);
            if (end == argv[i] || *end || rate <= 0) {
                fprintf(stderr, "ckpt-admin: --rate: not a positive number of MB/s: %s\n",
                        argv[i]);
                return EX_USAGE;
            }
        } else if (!strcmp(a, "--timeout") && i + 1 < argc) {
            char *end;
            unsigned long long t = strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end || argv[i][0] == '-') {
                fprintf(stderr, "ckpt-admin: --timeout: not a number of seconds: %s\n",
                        argv[i]);
                return EX_USAGE;
            }
            timeout_s = t;
        } else if (a[0] == '-' || npos == 8) {
            fprintf(stderr, "ckpt-admin %s: unexpected argument %s\n", cmd, a);
            return EX_USAGE;
        } else {
            pos[npos++] = a;
        }
    }
    bool ok;
    if (!strcmp(cmd, "status") || !strcmp(cmd, "nodes") || !strcmp(cmd, "checkpoints"))
        ok = npos == 0 && !by;
    else if (!strcmp(cmd, "df"))
        ok = npos == 0;
    else if (!strcmp(cmd, "layout"))
        ok = !by && ((npos == 2 && !strcmp(pos[0], "get")) ||
                     (npos >= 3 && !strcmp(pos[0], "set")));
    else if (!strcmp(cmd, "node"))
        ok = !by && npos == 2 &&
             (!strcmp(pos[0], "out") || !strcmp(pos[0], "in") || !strcmp(pos[0], "drain") ||
              !strcmp(pos[0], "remove") || !strcmp(pos[0], "add")) &&
             (!wait_flag || !strcmp(pos[0], "drain"));
    else if (!strcmp(cmd, "rebalance"))
        ok = !by && npos == 0;
    else if (!strcmp(cmd, "scrub"))
        ok = !by && npos <= 1;
    else {
        fprintf(stderr, "ckpt-admin: unknown command %s\n", cmd);
        usage(stderr);
        return EX_USAGE;
    }
    if (!ok) {
        fprintf(stderr, "ckpt-admin %s: bad arguments\n", cmd);
        usage(stderr);
        return EX_USAGE;
    }
    if (ctx_connect(&c, !strcmp(cmd, "layout") ? pos[1]
                        : !strcmp(cmd, "scrub") && npos ? pos[0] : NULL) < 0) {
        ctx_close(&c);
        return EX_ERR;
    }
    int ex;
    if (!strcmp(cmd, "status"))
        ex = cmd_status(&c);
    else if (!strcmp(cmd, "nodes"))
        ex = cmd_nodes(&c);
    else if (!strcmp(cmd, "checkpoints"))
        ex = cmd_checkpoints(&c);
    else if (!strcmp(cmd, "df"))
        ex = cmd_df(&c, by);
    else if (!strcmp(cmd, "layout") && !strcmp(pos[0], "get"))
        ex = cmd_layout_get(&c, pos[1]);
    else if (!strcmp(cmd, "layout"))
        ex = cmd_layout_set(&c, pos[1], pos + 2, npos - 2);
    else if (!strcmp(cmd, "scrub"))
        ex = cmd_scrub(&c, npos ? pos[0] : NULL, rate, wait, timeout_s);
    else if (!strcmp(cmd, "rebalance"))
        ex = cmd_rebalance(&c, threshold, dry, max_rate, wait, timeout_s);
    else
        ex = cmd_node(&c, pos[0], pos[1], wait_flag, timeout_s);
    ctx_close(&c);
    return ex;
}

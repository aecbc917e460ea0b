/*
 * meta_ckpt.c - the checkpoint registry of ckpt-meta: COMMIT, LIST, INFO,
 * MANIFEST (msg_ckpt.h), health, and the immutability of committed
 * checkpoints.
 *
 * DESIGN
 *
 *   Tables (own LMDB tables, meta_store_dbi_open):
 *     ck.reg   be64 dir ino -> {u8 state, i64 committed_at, u64 files,
 *                               u64 bytes}          (only COMMITTED ones)
 *     ck.man   be64 dir ino + be64 seq -> {u64 ino, u64 size, u32 crc32c,
 *                               u8 has_crc, path}   (the manifest)
 *     ck.imm   be64 ino -> be64 dir ino             (immutable inodes)
 *   A directory with no ck.reg record is WRITING: LIST shows every
 *   subdirectory of a job directory, so a checkpoint whose writer died
 *   stays WRITING for ever (restore never picks it; prune removes it).
 *   Inode numbers are never reused (meta_store), so records of a deleted
 *   checkpoint are inert; they are not cleaned up (known limit).
 *
 *   State machine of one checkpoint directory:
 *
 *       (mkdir) --> WRITING --commit_apply()--> COMMITTED
 *                      |                           |
 *                      +--- rm -r / prune ---------+--> gone
 *
 *   COMMIT is long-running, so it never runs on a receive thread or on the
 *   group-commit writer.  meta_ckpt_di_commit() (receive thread) queues the
 *   request to one thread:
 *
 *     thread ckpt_main: per queued commit, until its deadline:
 *       1. walk the tree under the directory in a read transaction
 *          (files, sizes, layouts, checksums) - walk();
 *       2. wait while some session has one of those files open for
 *          writing (meta_sess_ino_writing), polling every 50 ms;
 *       3. CHUNK_SYNC the files on every UP target of their layouts,
 *          grouped per target (one ckpt_peer per node, owned here);
 *       4. a file marked incomplete (its writer died before its flush
 *          ended, or reported bytes it could not store) fails at once
 *          (CKPT_E_TORN);
 *          health (below): LOST fails at once (CKPT_E_UNRECOV); DEGRADED
 *          fails with CKPT_E_CLUSTER at the deadline unless the request
 *          allows it, and is re-checked every 500 ms meanwhile (rebuild);
 *       5. hand a COMMIT wop, which owns the request, to the writer.
 *     commit_apply() (writer) walks the tree again inside the write
 *     transaction, refuses with -EAGAIN if anything changed since step 1
 *     (a digest over inode, size and data_gen) or a writer reappeared, and
 *     writes the manifest, the immutable set and the registry record in
 *     that one transaction: the commit is atomic and the reply is sent
 *     after it is durable.
 *
 *   Health of a checkpoint, computed when asked (LIST/INFO) from each
 *   file's layout, the targets that are UP in the cluster map now
 *   (meta_cluster_live_targets: DOWN and OUT count as missing) and the
 *   degraded-stripe records (meta_ops.c DEGRADED): a stripe s of a file
 *   misses chunk i when targets[(s+i) % W] is not UP or a record of
 *   (ino, data_gen, s) has bit i.  PROTECTED: no stripe misses a chunk;
 *   DEGRADED: some miss 1..m; LOST: some misses more than m.  Since the
 *   target pattern repeats every W stripes, a file costs O(W + records),
 *   not O(stripes).
 *
 *   Immutability: meta_ckpt_immutable() is asked by the namespace ops that
 *   must refuse (open for write, create/mknod/mkdir/symlink/link inside,
 *   rename into or out of, truncate): they answer -EROFS.  Unlink and
 *   rmdir stay allowed, so a checkpoint can be deleted as a whole.
 *
 *   Known limits: commits run one at a time; LIST walks every checkpoint
 *   tree (O(files under the job)); a commit needs the directory tree to
 *   fit in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"
#include "msg_ckpt.h"

#define CK_MAX_TARGETS 4096u
#define CK_DEFAULT_TIMEOUT_MS 60000u
#define CK_POLL_MS 50u
#define CK_HEALTH_POLL_MS 500u
#define CK_SYNC_TIMEOUT_MS 60000u
#define CK_MAX_DEPTH 64

struct ck_peer {
    uint32_t node_id;
    char host[CKPT_HOST_MAX + 1];
    uint16_t port;
    ckpt_peer *peer;
};

struct ck_job {
    struct ck_job *next;
    struct ckpt_req *req;
    struct ckpt_msg_ckpt_commit msg;
    uint64_t deadline_ns;
};

struct meta_ckpt {
    MDB_dbi dbi_reg, dbi_man, dbi_imm;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;                        /* protected by lock */
    struct ck_job *head, *tail;       /* protected by lock */
    uint64_t running;                 /* protected by lock: dir being committed */
    struct ck_peer *peers;            /* ckpt thread only */
    size_t npeers, cap;
};

/* One file under a checkpoint. */
struct ck_file {
    uint64_t ino;
    uint64_t size;
    uint64_t data_gen;
    uint32_t crc;
    bool has_crc;
    bool has_layout;
    bool incomplete;                  /* META_INODE_F_INCOMPLETE */
    struct ckpt_layout l;
    char *path;                       /* relative; owned */
};

struct ck_tree {
    struct ck_file *f;
    size_t n, cap;
    uint64_t *dirs;                   /* directories, the root included */
    size_t ndirs, dcap;
    int64_t newest;                   /* mtime */
    uint64_t bytes;
    uint64_t digest;
};

/* ---- small helpers ----------------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void tree_free(struct ck_tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        CKPT_FREE(t->f[i].path);
    CKPT_FREE(t->f);
    CKPT_FREE(t->dirs);
    memset(t, 0, sizeof(*t));
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* ---- tree walk ----------------------------------------------------------------- */

struct ck_ent {
    uint64_t ino;
    uint32_t type;
    char name[META_NAME_MAX + 1];
};

struct ck_ents {
    struct ck_ent *v;
    size_t n, cap;
    int err;
};

static int ents_cb(const char *name, uint64_t ino, uint32_t type, uint64_t next_cookie,
                   void *ctx)
{
    struct ck_ents *e = ctx;
    (void)next_cookie;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (e->n == e->cap) {
        size_t nc = e->cap ? 2 * e->cap : 32;
        struct ck_ent *nv = ckpt_realloc(e->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        e->v = nv;
        e->cap = nc;
    }
    e->v[e->n].ino = ino;
    e->v[e->n].type = type;
    snprintf(e->v[e->n].name, sizeof(e->v[e->n].name), "%s", name);
    e->n++;
    return 0;
}

/* The entries of dir (without "." and ".."); caller frees out->v. */
static int list_dir(MDB_txn *txn, uint64_t dir, struct ck_ents *out)
{
    memset(out, 0, sizeof(*out));
    int rc = meta_store_readdir(txn, dir, META_COOKIE_START, ents_cb, out);
    if (rc < 0)
        CKPT_FREE(out->v);
    return rc;
}

static int tree_add_dir(struct ck_tree *t, uint64_t ino)
{
    if (t->ndirs == t->dcap) {
        size_t nc = t->dcap ? 2 * t->dcap : 16;
        uint64_t *nv = ckpt_realloc(t->dirs, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        t->dirs = nv;
        t->dcap = nc;
    }
    t->dirs[t->ndirs++] = ino;
    t->digest = mix(t->digest, ino);
    return 0;
}

static int tree_add_file(struct ck_tree *t, MDB_txn *txn, const struct meta_attr *a,
                         const char *path, bool details)
{
    struct ck_file *f;
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 64;
        struct ck_file *nv = ckpt_realloc(t->f, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        t->f = nv;
        t->cap = nc;
    }
    f = &t->f[t->n];
    memset(f, 0, sizeof(*f));
    f->ino = a->ino;
    f->size = a->size;
    f->data_gen = a->data_gen;
    f->incomplete = (a->flags & META_INODE_F_INCOMPLETE) != 0;
    f->path = ckpt_strdup(path);
    if (!f->path)
        return -ENOMEM;
    t->n++;
    t->bytes += a->size;
    t->digest = mix(mix(mix(t->digest, a->ino), a->size), a->data_gen);
    if (!details)
        return 0;
    int rc = meta_store_layout_get(txn, a->ino, &f->l);
    if (rc == 0)
        f->has_layout = true;
    else if (rc != -ENODATA)
        return rc;
    uint8_t v[20];
    size_t vlen = 0;
    rc = meta_store_xattr_get(txn, a->ino, META_CKSUM_XATTR, v, sizeof(v), &vlen);
    if (rc == 0 && vlen == sizeof(v) && get_le(v + 4, 8) == a->size &&
        get_le(v + 12, 8) == a->data_gen) {
        f->crc = (uint32_t)get_le(v, 4);
        f->has_crc = true;
    } else if (rc < 0 && rc != -ENODATA && rc != -ERANGE) {
        return rc;
    }
    return 0;
}

static int walk_rec(MDB_txn *txn, uint64_t dir, const char *prefix, int depth,
                    struct ck_tree *t, bool details)
{
    struct ck_ents e;
    int rc;

    if (depth > CK_MAX_DEPTH)
        return -ELOOP;
    rc = list_dir(txn, dir, &e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < e.n && rc == 0; i++) {
        struct meta_attr a;
        char path[CKPT_PROTO_MAX_PATH + 1];
        int n = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "/" : "",
                         e.v[i].name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            rc = -ENAMETOOLONG;
            break;
        }
        rc = meta_store_getattr(txn, e.v[i].ino, &a);
        if (rc < 0)
            break;
        if (a.mtime.tv_sec > t->newest)
            t->newest = a.mtime.tv_sec;
        if (S_ISDIR(a.mode)) {
            rc = tree_add_dir(t, a.ino);
            if (rc == 0)
                rc = walk_rec(txn, a.ino, path, depth + 1, t, details);
        } else if (S_ISREG(a.mode)) {
            rc = tree_add_file(t, txn, &a, path, details);
        } else {
            t->digest = mix(t->digest, a.ino);
        }
    }
    CKPT_FREE(e.v);
    return rc;
}

/* Walk the checkpoint directory dir.  On error *t is freed. */
static int walk(MDB_txn *txn, uint64_t dir, struct ck_tree *t, bool details)
{
    struct meta_attr a;
    int rc;

    memset(t, 0, sizeof(*t));
    rc = meta_store_getattr(txn, dir, &a);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(a.mode))
        return -ENOTDIR;
    t->newest = a.mtime.tv_sec;
    rc = tree_add_dir(t, dir);
    if (rc == 0)
        rc = walk_rec(txn, dir, "", 0, t, details);
    if (rc < 0)
        tree_free(t);
    return rc;
}

/* ---- health ---------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted ids of the targets whose node is UP; caller frees. */
static int live_tids(struct meta_server *srv, uint32_t **out, size_t *out_n)
{
    struct meta_delq_target *t = ckpt_calloc(CK_MAX_TARGETS, sizeof(*t));
    uint32_t *ids;
    size_t n;

    *out = NULL;
    *out_n = 0;
    if (!t)
        return -ENOMEM;
    n = meta_cluster_live_targets(srv, t, CK_MAX_TARGETS);
    ids = ckpt_calloc(n ? n : 1, sizeof(*ids));
    if (!ids) {
        ckpt_free(t);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = t[i].tid;
    ckpt_free(t);
    qsort(ids, n, sizeof(*ids), cmp_u32);
    *out = ids;
    *out_n = n;
    return 0;
}

static bool tid_live(const uint32_t *ids, size_t n, uint32_t tid)
{
    return bsearch(&tid, ids, n, sizeof(*ids), cmp_u32) != NULL;
}

static int popcount32(uint32_t v)
{
    return __builtin_popcount(v);
}

/* Missing-chunk mask of stripe s of f from the target states alone. */
static uint32_t stripe_mask(const struct ck_file *f, uint64_t s, const uint32_t *ids, size_t n)
{
    uint32_t mask = 0;
    uint32_t km = (uint32_t)f->l.k + f->l.m;
    for (uint32_t i = 0; i < km; i++)
        if (!tid_live(ids, n, f->l.targets[(s + i) % f->l.width]))
            mask |= 1u << i;
    return mask;
}

struct ck_health {
    uint32_t health;
    uint32_t degraded, lost;
};

static void health_count(struct ck_health *h, const struct ck_file *f, uint32_t mask,
                         uint64_t count)
{
    int miss = popcount32(mask);
    if (miss == 0 || count == 0)
        return;
    if (miss > f->l.m) {
        h->lost += (uint32_t)(count > UINT32_MAX - h->lost ? UINT32_MAX - h->lost : count);
        h->health = CKPT_HEALTH_LOST;
    } else {
        h->degraded += (uint32_t)(count > UINT32_MAX - h->degraded ? UINT32_MAX - h->degraded
                                                                    : count);
        if (h->health == CKPT_HEALTH_PROTECTED)
            h->health = CKPT_HEALTH_DEGRADED;
    }
}

static int file_health(struct meta_server *srv, MDB_txn *txn, const struct ck_file *f,
                       const uint32_t *ids, size_t n, struct ck_health *h)
{
    if (!f->has_layout || f->size == 0 || f->l.k == 0 || f->l.width == 0)
        return 0;
    uint64_t sbytes = (uint64_t)f->l.k * f->l.chunk_size;
    uint64_t stripes = (f->size + sbytes - 1) / sbytes;
    uint64_t w = f->l.width;
    uint64_t nrec = 0;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[24];
    int rc;

    /* Records first: the stripes they name are counted with their own
     * mask and taken out of the pattern counts below. */
    uint64_t *rec_per_res = ckpt_calloc(w, sizeof(*rec_per_res));
    if (!rec_per_res)
        return -ENOMEM;
    put_be64(kb, f->ino);
    put_be64(kb + 8, f->data_gen);
    put_be64(kb + 16, 0);
    k.mv_size = sizeof(kb);
    k.mv_data = kb;
    rc = meta_store_errno(mdb_cursor_open(txn, srv->dbi_degraded, &cur));
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
    while (rc == 0) {
        if (k.mv_size != 24 || memcmp(k.mv_data, kb, 16) != 0)
            break;
        uint64_t s = get_be64((const uint8_t *)k.mv_data + 16);
        if (s < stripes && v.mv_size == 5 && ((const uint8_t *)v.mv_data)[0]) {
            uint32_t rmask = (uint32_t)get_le((const uint8_t *)v.mv_data + 1, 4);
            uint32_t km_bits = ((uint32_t)f->l.k + f->l.m) >= 32
                                   ? UINT32_MAX
                                   : (1u << ((uint32_t)f->l.k + f->l.m)) - 1;
            health_count(h, f, (rmask & km_bits) | stripe_mask(f, s, ids, n), 1);
            rec_per_res[s % w]++;
            nrec++;
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    if (rc == -ENOENT)
        rc = 0;
    mdb_cursor_close(cur);
    for (uint64_t r = 0; rc == 0 && r < w && r < stripes; r++) {
        uint64_t count = (stripes - r + w - 1) / w;
        count -= rec_per_res[r] < count ? rec_per_res[r] : count;
        health_count(h, f, stripe_mask(f, r, ids, n), count);
    }
    ckpt_free(rec_per_res);
    (void)nrec;
    return rc;
}

static int tree_health(struct meta_server *srv, MDB_txn *txn, const struct ck_tree *t,
                       struct ck_health *out)
{
    uint32_t *ids = NULL;
    size_t n = 0;
    int rc = live_tids(srv, &ids, &n);

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; rc == 0 && i < t->n; i++)
        rc = file_health(srv, txn, &t->f[i], ids, n, out);
    ckpt_free(ids);
    return rc;
}

/* ---- registry ------------------------------------------------------------------------ */

struct ck_reg {
    uint32_t state;
    int64_t committed_at;
    uint64_t files, bytes;
};

#define CK_REG_SIZE 25

static int reg_get(struct meta_server *srv, MDB_txn *txn, uint64_t ino, struct ck_reg *out)
{
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    put_be64(kb, ino);
    memset(out, 0, sizeof(*out));
    int rc = meta_store_errno(mdb_get(txn, srv->ck->dbi_reg, &k, &v));
    if (rc == -ENOENT) {
        out->state = CKPT_CKPT_WRITING;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (v.mv_size != CK_REG_SIZE)
        return -EIO;
    const uint8_t *p = v.mv_data;
    out->state = p[0] == CKPT_CKPT_COMMITTED ? CKPT_CKPT_COMMITTED : CKPT_CKPT_WRITING;
    out->committed_at = (int64_t)get_le(p + 1, 8);
    out->files = get_le(p + 9, 8);
    out->bytes = get_le(p + 17, 8);
    return 0;
}

/* Fill info for checkpoint directory ino named name. */
static int info_fill(struct meta_server *srv, MDB_txn *txn, uint64_t ino, const char *name,
                     struct ckpt_ckpt_info *out)
{
    struct ck_tree t;
    struct ck_reg reg;
    struct ck_health h;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = walk(txn, ino, &t, true);
    if (rc < 0)
        return rc;
    rc = reg_get(srv, txn, ino, &reg);
    if (rc == 0)
        rc = tree_health(srv, txn, &t, &h);
    if (rc == 0) {
        out->ino = ino;
        snprintf(out->name, sizeof(out->name), "%s", name);
        out->state = reg.state;
        out->health = h.health;
        out->degraded_stripes = h.degraded;
        out->lost_stripes = h.lost;
        out->files = reg.state == CKPT_CKPT_COMMITTED ? reg.files : t.n;
        out->bytes = reg.state == CKPT_CKPT_COMMITTED ? reg.bytes : t.bytes;
        out->written_at = t.newest;
        out->committed_at = reg.committed_at;
    }
    tree_free(&t);
    return rc;
}

bool meta_ckpt_immutable(struct meta_server *srv, MDB_txn *txn, uint64_t ino)
{
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    if (!srv->ck)
        return false;
    put_be64(kb, ino);
    return mdb_get(txn, srv->ck->dbi_imm, &k, &v) == 0;
}

int meta_ckpt_rank(struct meta_server *srv, MDB_txn *txn, uint64_t ino, uint64_t *io_dir,
                   int *io_rank)
{
    uint8_t kb[8];
    MDB_val k = {sizeof(kb), kb}, v;
    if (!srv->ck)
        return META_CKPT_RANK_OTHER;
    put_be64(kb, ino);
    if (mdb_get(txn, srv->ck->dbi_imm, &k, &v) != 0 || v.mv_size != 8)
        return META_CKPT_RANK_OTHER;
    uint64_t dir = get_be64(v.mv_data);
    if (io_dir && *io_dir == dir)
        return *io_rank; /* the caller's memo: same checkpoint as last time */
    int rank = META_CKPT_RANK_OTHER;
    struct ck_reg reg, sib;
    struct meta_attr a, ca;
    struct ck_ents e;
    if (reg_get(srv, txn, dir, &reg) == 0 && reg.state == CKPT_CKPT_COMMITTED &&
        meta_store_getattr(txn, dir, &a) == 0 && list_dir(txn, a.parent, &e) == 0) {
        rank = META_CKPT_RANK_NEWEST;
        for (size_t i = 0; i < e.n && rank == META_CKPT_RANK_NEWEST; i++) {
            if (e.v[i].ino == dir || meta_store_getattr(txn, e.v[i].ino, &ca) < 0 ||
                !S_ISDIR(ca.mode) || reg_get(srv, txn, e.v[i].ino, &sib) < 0)
                continue;
            if (sib.state == CKPT_CKPT_COMMITTED &&
                (sib.committed_at > reg.committed_at ||
                 (sib.committed_at == reg.committed_at && e.v[i].ino > dir)))
                rank = META_CKPT_RANK_SUPERSEDED;
        }
        ckpt_free(e.v);
    }
    if (io_dir) {
        *io_dir = dir;
        *io_rank = rank;
    }
    return rank;
}

/* ---- read requests ------------------------------------------------------------------------ */

/* The name of dir in its parent (directories know their parent). */
static int dir_name(MDB_txn *txn, uint64_t dir, char *out, size_t cap)
{
    struct meta_attr a;
    struct ck_ents e;
    int rc = meta_store_getattr(txn, dir, &a);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(a.mode))
        return -ENOTDIR;
    snprintf(out, cap, "/");
    if (dir == META_ROOT_INO)
        return 0;
    rc = list_dir(txn, a.parent, &e);
    if (rc < 0)
        return rc;
    rc = -ENOENT;
    for (size_t i = 0; i < e.n; i++)
        if (e.v[i].ino == dir) {
            snprintf(out, cap, "%s", e.v[i].name);
            rc = 0;
            break;
        }
    ckpt_free(e.v);
    return rc;
}

int meta_ckpt_rd_info(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                      struct ckpt_wbuf *reply)
{
    struct ckpt_msg_ino m;
    struct ckpt_ckpt_info info;
    char name[META_NAME_MAX + 1];
    int rc = ckpt_msg_ino_decode(req->body, req->body_len, &m);
    if (rc < 0)
        return rc;
    rc = dir_name(txn, m.ino, name, sizeof(name));
    if (rc == 0)
        rc = info_fill(srv, txn, m.ino, name, &info);
    if (rc == 0)
        rc = ckpt_msg_ckpt_info_encode(reply, &info);
    return rc;
}

static int cmp_info_newest(const void *a, const void *b)
{
    const struct ckpt_ckpt_info *x = a, *y = b;
    /* Inode numbers grow with creation time and are never reused: the
     * directory made last is the newest checkpoint, whatever the clock. */
    return x->ino > y->ino ? -1 : x->ino < y->ino;
}

int meta_ckpt_rd_list(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                      struct ckpt_wbuf *reply)
{
    struct ckpt_msg_ino m;
    struct ckpt_msg_ckpt_list_resp r = {0, NULL};
    struct ck_ents e;
    struct meta_attr a;
    int rc = ckpt_msg_ino_decode(req->body, req->body_len, &m);
    if (rc < 0)
        return rc;
    rc = meta_store_getattr(txn, m.ino, &a);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(a.mode))
        return -ENOTDIR;
    rc = list_dir(txn, m.ino, &e);
    if (rc < 0)
        return rc;
    r.v = ckpt_calloc(e.n ? e.n : 1, sizeof(*r.v));
    if (!r.v) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < e.n && r.n < CKPT_CKPT_LIST_MAX; i++) {
        if (e.v[i].type != S_IFDIR)
            continue;
        rc = info_fill(srv, txn, e.v[i].ino, e.v[i].name, &r.v[r.n]);
        if (rc == -ENOENT)
            continue; /* removed while listing */
        if (rc < 0)
            goto out;
        r.n++;
    }
    qsort(r.v, r.n, sizeof(*r.v), cmp_info_newest);
    rc = ckpt_msg_ckpt_list_resp_encode(reply, &r);
out:
    ckpt_free(r.v);
    ckpt_free(e.v);
    return rc;
}

int meta_ckpt_rd_manifest(struct meta_server *srv, MDB_txn *txn, const struct ckpt_req *req,
                          struct ckpt_wbuf *reply)
{
    struct ckpt_msg_manifest m;
    struct ckpt_msg_manifest_resp r;
    struct ck_reg reg;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t kb[16];
    size_t bytes = 0;
    int rc = ckpt_msg_manifest_decode(req->body, req->body_len, &m);
    if (rc < 0)
        return rc;
    rc = reg_get(srv, txn, m.ino, &reg);
    if (rc < 0)
        return rc;
    if (reg.state != CKPT_CKPT_COMMITTED)
        return -ENOENT;
    memset(&r, 0, sizeof(r));
    r.v = ckpt_calloc(m.max, sizeof(*r.v));
    if (!r.v)
        return -ENOMEM;
    put_be64(kb, m.ino);
    put_be64(kb + 8, m.cookie + 1);
    k.mv_size = sizeof(kb);
    k.mv_data = kb;
    rc = meta_store_errno(mdb_cursor_open(txn, srv->ck->dbi_man, &cur));
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE));
    r.eof = 1;
    while (rc == 0) {
        const uint8_t *kp = k.mv_data, *vp = v.mv_data;
        if (k.mv_size != 16 || get_be64(kp) != m.ino)
            break;
        if (v.mv_size < 29 || v.mv_size > 29 + CKPT_PROTO_MAX_PATH) {
            rc = -EIO;
            break;
        }
        /* Keep the reply well under the body limit. */
        if (r.n == m.max || bytes + v.mv_size + 16 > (4u << 20)) {
            r.eof = 0;
            break;
        }
        struct ckpt_manifest_ent *e = &r.v[r.n++];
        e->seq = get_be64(kp + 8);
        e->ino = get_le(vp, 8);
        e->size = get_le(vp + 8, 8);
        e->checksum = (uint32_t)get_le(vp + 16, 4);
        e->has_checksum = vp[20] ? 1 : 0;
        size_t plen = v.mv_size - 29;
        memcpy(e->path, vp + 29, plen);
        e->path[plen] = '\0';
        bytes += v.mv_size + 16;
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    if (rc == -ENOENT)
        rc = 0;
    mdb_cursor_close(cur);
    if (rc == 0)
        rc = ckpt_msg_manifest_resp_encode(reply, &r);
    ckpt_free(r.v);
    return rc;
}

/* ---- COMMIT: the writer part ---------------------------------------------------------------- */

struct ck_commit_msg {
    struct ckpt_msg_ckpt_commit c;
    uint64_t digest;                  /* of the tree the ckpt thread synced */
};

static int commit_decode(const void *body, size_t len, void *msg)
{
    (void)body;
    (void)len;
    (void)msg;
    return -EINVAL; /* internal only: built by the ckpt thread */
}

static int commit_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct ck_commit_msg *m = w->msg;
    struct meta_ckpt *ck = srv->ck;
    struct ck_tree t;
    struct ck_reg reg;
    struct ckpt_ckpt_info info;
    char name[META_NAME_MAX + 1];
    struct timespec now = meta_now();
    int rc = reg_get(srv, txn, m->c.ino, &reg);
    if (rc < 0)
        return rc;
    if (reg.state == CKPT_CKPT_COMMITTED)
        goto reply; /* committed meanwhile: answer its info */
    rc = walk(txn, m->c.ino, &t, true);
    if (rc < 0)
        return rc;
    if (t.digest != m->digest) {
        rc = -EAGAIN; /* changed since it was synced */
        goto out;
    }
    for (size_t i = 0; i < t.n; i++)
        if (meta_sess_ino_writing(srv, t.f[i].ino)) {
            rc = -EAGAIN;
            goto out;
        }
    for (size_t i = 0; i < t.n && rc == 0; i++) {
        const struct ck_file *f = &t.f[i];
        size_t plen = strlen(f->path);
        uint8_t kb[16], vb[29 + CKPT_PROTO_MAX_PATH];
        MDB_val k = {sizeof(kb), kb}, v = {29 + plen, vb};
        put_be64(kb, m->c.ino);
        put_be64(kb + 8, i + 1);
        put_le(vb, f->ino, 8);
        put_le(vb + 8, f->size, 8);
        put_le(vb + 16, f->crc, 4);
        vb[20] = f->has_crc;
        put_le(vb + 21, f->data_gen, 8);
        memcpy(vb + 29, f->path, plen);
        rc = meta_store_errno(mdb_put(txn, ck->dbi_man, &k, &v, 0));
        if (rc == 0) {
            uint8_t ib[8], db[8];
            MDB_val ik = {8, ib}, iv = {8, db};
            put_be64(ib, f->ino);
            put_be64(db, m->c.ino);
            rc = meta_store_errno(mdb_put(txn, ck->dbi_imm, &ik, &iv, 0));
        }
    }
    for (size_t i = 0; i < t.ndirs && rc == 0; i++) {
        uint8_t ib[8], db[8];
        MDB_val ik = {8, ib}, iv = {8, db};
        put_be64(ib, t.dirs[i]);
        put_be64(db, m->c.ino);
        rc = meta_store_errno(mdb_put(txn, ck->dbi_imm, &ik, &iv, 0));
    }
    if (rc == 0) {
        uint8_t kb[8], vb[CK_REG_SIZE];
        MDB_val k = {sizeof(kb), kb}, v = {sizeof(vb), vb};
        put_be64(kb, m->c.ino);
        vb[0] = CKPT_CKPT_COMMITTED;
        put_le(vb + 1, (uint64_t)now.tv_sec, 8);
        put_le(vb + 9, t.n, 8);
        put_le(vb + 17, t.bytes, 8);
        rc = meta_store_errno(mdb_put(txn, ck->dbi_reg, &k, &v, 0));
    }
out:
    tree_free(&t);
    if (rc < 0)
        return rc;
reply:
    rc = dir_name(txn, m->c.ino, name, sizeof(name));
    if (rc == 0)
        rc = info_fill(srv, txn, m->c.ino, name, &info);
    if (rc == 0)
        rc = ckpt_msg_ckpt_info_encode(&w->reply, &info);
    return rc;
}

static void commit_done(struct meta_server *srv, struct meta_wop *w)
{
    struct ck_commit_msg *m = w->msg;
    (void)srv;
    CKPT_LOG_INFO("checkpoint directory %llu committed", (unsigned long long)m->c.ino);
}

const struct meta_wop_type meta_wop_ckpt_commit = {
    .name = "CKPT_COMMIT",
    .msg_size = sizeof(struct ck_commit_msg),
    .decode = commit_decode,
    .apply = commit_apply,
    .done = commit_done,
};

/* ---- COMMIT: the ckpt thread ------------------------------------------------------------------ */

static ckpt_peer *peer_for(struct meta_server *srv, const struct meta_delq_target *t)
{
    struct meta_ckpt *ck = srv->ck;
    for (size_t i = 0; i < ck->npeers; i++) {
        struct ck_peer *p = &ck->peers[i];
        if (p->node_id != t->node_id)
            continue;
        if ((strcmp(p->host, t->host) || p->port != t->port) &&
            ckpt_peer_set_addr(p->peer, t->host, t->port) == 0) {
            snprintf(p->host, sizeof(p->host), "%s", t->host);
            p->port = t->port;
        }
        return p->peer;
    }
    if (ck->npeers == ck->cap) {
        size_t nc = ck->cap ? 2 * ck->cap : 16;
        struct ck_peer *nv = ckpt_realloc(ck->peers, nc * sizeof(*nv));
        if (!nv)
            return NULL;
        ck->peers = nv;
        ck->cap = nc;
    }
    struct ck_peer *p = &ck->peers[ck->npeers];
    memset(p, 0, sizeof(*p));
    if (ckpt_peer_create(srv->net, t->host, t->port, &p->peer) < 0)
        return NULL;
    p->node_id = t->node_id;
    snprintf(p->host, sizeof(p->host), "%s", t->host);
    p->port = t->port;
    ck->npeers++;
    return p->peer;
}

static int send_sync(ckpt_peer *peer, const struct ckpt_msg_chunk_sync *m)
{
    struct ckpt_wbuf w;
    struct ckpt_call call;
    int rc;

    ckpt_wbuf_init(&w, NULL, 0);
    rc = ckpt_msg_chunk_sync_encode(&w, m);
    if (rc == 0) {
        memset(&call, 0, sizeof(call));
        call.opcode = CKPT_OP_CHUNK_SYNC;
        call.body = w.p;
        call.body_len = (uint32_t)w.len;
        call.timeout_ms = CK_SYNC_TIMEOUT_MS;
        rc = ckpt_peer_call(peer, &call);
        ckpt_call_release(&call);
    }
    ckpt_wbuf_free(&w);
    return rc;
}

static bool file_on(const struct ck_file *f, uint32_t tid)
{
    if (!f->has_layout || f->size == 0)
        return false;
    for (uint32_t i = 0; i < f->l.width; i++)
        if (f->l.targets[i] == tid)
            return true;
    return false;
}

/* Barrier: every UP target holding data of t makes it durable. */
static int sync_tree(struct meta_server *srv, const struct ck_tree *t)
{
    struct meta_delq_target *tg = ckpt_calloc(CK_MAX_TARGETS, sizeof(*tg));
    struct ckpt_msg_chunk_sync *m = ckpt_calloc(1, sizeof(*m));
    int rc = 0;

    if (!tg || !m) {
        rc = -ENOMEM;
        goto out;
    }
    size_t n = meta_cluster_live_targets(srv, tg, CK_MAX_TARGETS);
    for (size_t i = 0; i < n && rc == 0; i++) {
        ckpt_peer *peer = NULL;
        m->target = tg[i].tid;
        m->n = 0;
        for (size_t j = 0; j <= t->n && rc == 0; j++) {
            bool last = j == t->n;
            if (!last && !file_on(&t->f[j], tg[i].tid))
                continue;
            if (!last)
                m->inos[m->n++] = t->f[j].ino;
            if (m->n == 0 || (!last && m->n < CKPT_SYNC_MAX_INOS))
                continue;
            if (!peer && !(peer = peer_for(srv, &tg[i]))) {
                rc = -ENOMEM;
                break;
            }
            rc = send_sync(peer, m);
            if (rc < 0)
                CKPT_LOG_WARN("checkpoint sync: target %u on node %u (%s:%u) failed: "
                              CKPT_RC_FMT, tg[i].tid, tg[i].node_id, tg[i].host, tg[i].port,
                              CKPT_RC_ARGS(rc));
            m->n = 0;
        }
    }
    if (rc < 0)
        rc = -EIO;
out:
    ckpt_free(tg);
    ckpt_free(m);
    return rc;
}

/* Sleep up to ms, or less when stopping.  @return true when stopping. */
static bool ck_sleep(struct meta_ckpt *ck, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ck->lock);
    if (!ck->stop)
        pthread_cond_timedwait(&ck->cond, &ck->lock, &ts);
    bool stop = ck->stop;
    pthread_mutex_unlock(&ck->lock);
    return stop;
}

/* Steps 1-4 of a commit.  @return 0 with *out_digest when the writer may
 * commit, 1 when already COMMITTED, or the error to answer. */
static int commit_prepare(struct meta_server *srv, struct ck_job *j, uint64_t *out_digest)
{
    struct meta_ckpt *ck = srv->ck;
    bool synced = false;
    uint64_t synced_digest = 0;

    for (;;) {
        struct ck_tree t;
        struct ck_reg reg;
        struct ck_health h;
        MDB_txn *txn = NULL;
        bool writing = false;
        int rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
        if (rc < 0)
            return rc;
        rc = reg_get(srv, txn, j->msg.ino, &reg);
        if (rc == 0 && reg.state == CKPT_CKPT_COMMITTED) {
            meta_store_txn_abort(txn);
            return 1;
        }
        if (rc == 0)
            rc = walk(txn, j->msg.ino, &t, true);
        if (rc < 0) {
            meta_store_txn_abort(txn);
            return rc;
        }
        for (size_t i = 0; i < t.n && !writing; i++)
            writing = meta_sess_ino_writing(srv, t.f[i].ino);
        if (!writing) {
            /* The snapshot was taken before the writer check: a RELEASE
             * that committed in between (its size update included) is not
             * in it.  Walk again in a snapshot taken after the check and go
             * round once more unless both agree. */
            struct ck_tree t2;
            meta_store_txn_abort(txn);
            txn = NULL;
            rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
            if (rc == 0)
                rc = walk(txn, j->msg.ino, &t2, true);
            if (rc < 0) {
                if (txn)
                    meta_store_txn_abort(txn);
                tree_free(&t);
                return rc;
            }
            bool same = t2.digest == t.digest;
            tree_free(&t);
            t = t2;
            writing = !same; /* not settled yet: poll again */
        }
        for (size_t i = 0; i < t.n && !writing && rc == 0; i++) {
            if (t.f[i].incomplete) {
                CKPT_LOG_WARN("commit of checkpoint directory %llu refused: %s is incomplete "
                              "(its writer died or could not store all of it); write it "
                              "again", (unsigned long long)j->msg.ino, t.f[i].path);
                rc = CKPT_E_TORN;
            }
        }
        if (!writing && rc == 0) {
            rc = tree_health(srv, txn, &t, &h);
            if (rc == 0 && h.health != CKPT_HEALTH_LOST &&
                (!synced || synced_digest != t.digest)) {
                rc = sync_tree(srv, &t);
                synced = rc == 0;
                synced_digest = t.digest;
            }
        }
        meta_store_txn_abort(txn);
        uint64_t digest = t.digest;
        tree_free(&t);
        if (rc < 0)
            return rc;
        bool late = ckpt_now_ns() >= j->deadline_ns;
        if (!writing) {
            if (h.health == CKPT_HEALTH_LOST)
                return CKPT_E_UNRECOV;
            if (h.health == CKPT_HEALTH_PROTECTED ||
                (j->msg.flags & CKPT_COMMIT_F_ALLOW_DEGRADED)) {
                *out_digest = digest;
                return 0;
            }
            if (late) {
                CKPT_LOG_WARN("commit of checkpoint directory %llu: %u stripe(s) degraded "
                              "and not rebuilt in time", (unsigned long long)j->msg.ino,
                              h.degraded);
                return CKPT_E_CLUSTER;
            }
        } else if (late) {
            return -ETIMEDOUT;
        }
        if (ck_sleep(ck, writing ? CK_POLL_MS : CK_HEALTH_POLL_MS))
            return -ESHUTDOWN;
    }
}

static void commit_run(struct meta_server *srv, struct ck_job *j)
{
    uint64_t digest = 0;
    int rc = commit_prepare(srv, j, &digest);
    if (rc < 0) {
        CKPT_LOG_INFO("commit of checkpoint directory %llu refused: " CKPT_RC_FMT,
                      (unsigned long long)j->msg.ino, CKPT_RC_ARGS(rc));
        (void)ckpt_req_reply(j->req, rc, NULL, 0, NULL, 0);
        j->req = NULL;
        return;
    }
    struct meta_wop *w = meta_wop_new(&meta_wop_ckpt_commit, j->req);
    if (!w) {
        (void)ckpt_req_reply(j->req, -ENOMEM, NULL, 0, NULL, 0);
        j->req = NULL;
        return;
    }
    j->req = NULL; /* the wop owns it now */
    struct ck_commit_msg *m = w->msg;
    m->c = j->msg;
    m->digest = digest;
    meta_wop_submit(srv, w, false);
}

static void *ckpt_main(void *arg)
{
    struct meta_server *srv = arg;
    struct meta_ckpt *ck = srv->ck;

    pthread_mutex_lock(&ck->lock);
    for (;;) {
        while (!ck->stop && !ck->head)
            pthread_cond_wait(&ck->cond, &ck->lock);
        if (ck->stop)
            break;
        struct ck_job *j = ck->head;
        ck->head = j->next;
        if (!ck->head)
            ck->tail = NULL;
        ck->running = j->msg.ino;
        pthread_mutex_unlock(&ck->lock);
        commit_run(srv, j);
        ckpt_free(j);
        pthread_mutex_lock(&ck->lock);
        ck->running = 0;
    }
    pthread_mutex_unlock(&ck->lock);
    return NULL;
}

void meta_ckpt_di_commit(struct meta_server *srv, struct ckpt_req *req)
{
    struct meta_ckpt *ck = srv->ck;
    struct ck_job *j;
    int rc;

    j = ckpt_calloc(1, sizeof(*j));
    if (!j) {
        (void)ckpt_req_reply(req, -ENOMEM, NULL, 0, NULL, 0);
        return;
    }
    rc = ckpt_msg_ckpt_commit_decode(req->body, req->body_len, &j->msg);
    if (rc < 0) {
        ckpt_free(j);
        meta_req_malformed(req, rc);
        return;
    }
    uint32_t tmo = j->msg.timeout_ms ? j->msg.timeout_ms : CK_DEFAULT_TIMEOUT_MS;
    j->deadline_ns = ckpt_now_ns() + (uint64_t)tmo * 1000000ull;
    j->req = req;
    pthread_mutex_lock(&ck->lock);
    bool busy = ck->running == j->msg.ino;
    for (struct ck_job *q = ck->head; q && !busy; q = q->next)
        busy = q->msg.ino == j->msg.ino;
    if (!busy && !ck->stop) {
        if (ck->tail)
            ck->tail->next = j;
        else
            ck->head = j;
        ck->tail = j;
        pthread_cond_broadcast(&ck->cond);
    }
    bool stop = ck->stop;
    pthread_mutex_unlock(&ck->lock);
    if (busy || stop) {
        (void)ckpt_req_reply(req, busy ? -EBUSY : -ESHUTDOWN, NULL, 0, NULL, 0);
        ckpt_free(j);
    }
}

/* ---- init / fini ----------------------------------------------------------------------------- */

int meta_ckpt_init(struct meta_server *srv)
{
    struct meta_ckpt *ck = ckpt_calloc(1, sizeof(*ck));
    int rc;

    if (!ck)
        return -ENOMEM;
    rc = meta_store_dbi_open(srv->st, "ck.reg", 0, &ck->dbi_reg);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "ck.man", 0, &ck->dbi_man);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "ck.imm", 0, &ck->dbi_imm);
    if (rc < 0) {
        ckpt_free(ck);
        return rc;
    }
    pthread_mutex_init(&ck->lock, NULL);
    pthread_cond_init(&ck->cond, NULL);
    srv->ck = ck;
    return 0;
}

int meta_ckpt_start(struct meta_server *srv)
{
    struct meta_ckpt *ck = srv->ck;
    int rc = -pthread_create(&ck->thread, NULL, ckpt_main, srv);
    if (rc == 0)
        ck->started = true;
    return rc;
}

void meta_ckpt_stop(struct meta_server *srv)
{
    struct meta_ckpt *ck = srv->ck;
    if (!ck || !ck->started)
        return;
    pthread_mutex_lock(&ck->lock);
    ck->stop = true;
    pthread_cond_broadcast(&ck->cond);
    pthread_mutex_unlock(&ck->lock);
    pthread_join(ck->thread, NULL);
    ck->started = false;
}

void meta_ckpt_fini(struct meta_server *srv)
{
    struct meta_ckpt *ck = srv->ck;
    if (!ck)
        return;
    meta_ckpt_stop(srv);
    while (ck->head) {
        struct ck_job *j = ck->head;
        ck->head = j->next;
        ckpt_req_free(j->req); /* the server is stopped: no answer */
        ckpt_free(j);
    }
    for (size_t i = 0; i < ck->npeers; i++)
        ckpt_peer_destroy(ck->peers[i].peer);
    ckpt_free(ck->peers);
    pthread_mutex_destroy(&ck->lock);
    pthread_cond_destroy(&ck->cond);
    ckpt_free(ck);
    srv->ck = NULL;
}

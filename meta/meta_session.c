/*
 * meta_session.c - client sessions, leases, open handles and the
 * visibility rule of msg_meta.h (SESSION, OPEN, CREATE, FLUSHED, RELEASE).
 *
 * DESIGN
 *
 *   A session is one client (a mount, a tool run).  It opens with SESSION
 *   {0, name} and renews within its lease (SESSION {id, name}, answered on
 *   the receive thread: memory only).  SESSION {id, ""} ends it.  The
 *   monitor thread marks a session whose lease ran out "dying" (renewals
 *   then get -ESTALE) and queues its end to the writer.
 *
 *   Sessions and their open write handles are persisted (tables
 *   se.session: id -> name, se.handle: session + handle -> ino, write flag)
 *   in the same transaction as the operation that made them, so a
 *   restarted ckpt-meta still knows who writes what: the visibility rule
 *   survives a crash, and orphans (unlinked while open) are destroyed only
 *   when nobody holds them.  On load every session gets a fresh lease.
 *
 *   Read handles.  A read-only handle matters across a restart only if its
 *   file loses its last name while it is open: the handle then keeps the
 *   orphan alive.  So a read handle lives in memory only until that
 *   happens: meta_reap_if_unused(), which every last-name removal (unlink,
 *   rename over, a release) goes through, writes the memory-only handles
 *   of an inode it finds still open (meta_sess_persist_ino), in the same
 *   transaction.  A read-only OPEN and its RELEASE therefore change
 *   nothing in the database and cost no commit (measured: a read-only
 *   open of a small file took about 1 ms, one fdatasync, before).  After
 *   a restart a client's RELEASE of a memory-only handle finds nothing
 *   (-ESTALE), which it ignores; handle ids carry the boot count so that
 *   such a stale id never names a newer handle.
 *
 *   Session state machine (who moves it):
 *
 *       SESSION{0}            lease runs out (meta_sess_tick)
 *     ------------> LIVE ---------------------------------> DYING
 *                    |  ^ SESSION{id} renews                  |
 *                    |  '-------------'                       | session_end
 *                    '--- SESSION{id,""} (session_end) ------>+--> gone
 *
 *   Ending a session drops its handles; a write handle still there means
 *   the writer never sent RELEASE (never finished its flush), so the inode
 *   is marked CKPT_ATTR_F_INCOMPLETE.  Orphans it held are destroyed.
 *
 *   Visibility.  OPEN/CREATE of an inode that has a write handle of another
 *   session "parks": the apply step sets w->park, the wop is kept on the
 *   inode's waiter list (meta_sess_park) and requeued to the writer when a
 *   writer goes away (meta_sess_wake: after RELEASE, handle drop or session
 *   end), where it is applied again.  No thread blocks while it waits.
 *   Opens of the writer's own session never wait.  Every open for writing
 *   of a regular file starts a new data_gen (O_TRUNC also cuts the size to
 *   0 and queues deletion of the old chunks).
 *
 *   Memory and the writer.  Handles and sessions are added and removed by
 *   the writer thread during apply, before the batch commits, so that the
 *   later ops of the same batch see them.  Every such change is recorded in
 *   an undo log; if the batch does not commit, meta_sess_undo_rollback()
 *   puts memory back.  Removed structures stay allocated until the batch
 *   committed (undo_clear), so a rollback never allocates.  Records of
 *   inodes ("oino") that became empty are freed only at the end of a batch
 *   (sweep), for the same reason.
 *
 *   Locking: srv->sess_lock protects everything here.  The writer is the
 *   only thread that adds or removes handles and sessions; receive threads
 *   renew leases and drop the parked opens of a closed connection; the
 *   monitor marks sessions dying.
 *
 *   Known limits: OPEN waits without a time limit (the mclient waits up to
 *   a day); parked opens are kept in memory only (lost, with their
 *   connections, if ckpt-meta restarts).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"

/* ---- a small u64-keyed chained hash ---------------------------------------- */

struct hent {
    uint64_t key;
    struct hent *next;
};

struct hmap {
    struct hent **b;
    size_t nb; /* power of two */
    size_t n;
};

static size_t hslot(const struct hmap *m, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (m->nb - 1);
}

static int hmap_init(struct hmap *m)
{
    m->nb = 256;
    m->n = 0;
    m->b = ckpt_calloc(m->nb, sizeof(*m->b));
    return m->b ? 0 : -ENOMEM;
}

static struct hent *hmap_find(const struct hmap *m, uint64_t key)
{
    for (struct hent *e = m->b[hslot(m, key)]; e; e = e->next)
        if (e->key == key)
            return e;
    return NULL;
}

/* Never fails: growing is an optimisation that is skipped without memory. */
static void hmap_insert(struct hmap *m, struct hent *e)
{
    if (m->n >= m->nb * 2) {
        struct hent **nb = ckpt_calloc(m->nb * 2, sizeof(*nb));
        if (nb) {
            struct hmap nm = {nb, m->nb * 2, 0};
            for (size_t i = 0; i < m->nb; i++) {
                while (m->b[i]) {
                    struct hent *x = m->b[i];
                    m->b[i] = x->next;
                    size_t s = hslot(&nm, x->key);
                    x->next = nb[s];
                    nb[s] = x;
                }
            }
            ckpt_free(m->b);
            m->b = nb;
            m->nb = nm.nb;
        }
    }
    size_t s = hslot(m, e->key);
    e->next = m->b[s];
    m->b[s] = e;
    m->n++;
}

static void hmap_remove(struct hmap *m, struct hent *e)
{
    for (struct hent **pp = &m->b[hslot(m, e->key)]; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            m->n--;
            return;
        }
    }
}

/* ---- structures ------------------------------------------------------------------- */

struct handle;

struct sess {
    struct hent h;         /* key: session id */
    char name[CKPT_CLIENT_NAME_MAX + 1];
    uint64_t expires_ns;
    bool dying;            /* its end is queued: renewals fail */
    struct handle *handles; /* doubly linked through sprev/snext */
    uint32_t nhandles;
};

struct oino;

struct handle {
    struct hent h;         /* key: handle id */
    uint64_t session;
    uint64_t ino;
    bool write;
    bool persisted;        /* in se.handle (write handles; read handles of orphans) */
    bool closing;          /* CLOSING seen: pend_* are the flushing size/mtime */
    uint64_t closing_seq;  /* order of CLOSINGs (ss->closing_seq): newest wins */
    uint64_t pend_size;
    struct timespec pend_mtime, pend_ctime;
    struct handle *sprev, *snext; /* in its session */
    struct handle *iprev, *inext; /* in its inode */
};

struct oino {
    struct hent h;         /* key: ino */
    struct handle *handles;
    struct meta_wop *waiters, *waiters_tail;
    struct oino *wnext, *wprev; /* in the list of inodes with waiters */
    bool on_wlist;
    bool on_sweep;
    struct oino *sweep_next;
};

enum undo_kind { U_HANDLE_ADD, U_HANDLE_DEL, U_SESS_ADD, U_SESS_DEL };

struct undo {
    enum undo_kind kind;
    void *obj; /* handle or sess; detached (DEL) or live (ADD) */
};

struct meta_sessions {
    struct hmap sessions, handles, inos;
    uint64_t next_handle;
    uint64_t handle_floor;     /* first handle id of this boot */
    uint64_t closing_seq;      /* CLOSINGs seen (handle->closing_seq) */
    struct oino *waiting;      /* inodes with parked opens */
    uint64_t nparked;
    struct oino *sweep;        /* inodes that may have become empty */
    struct undo *undo;
    size_t nundo, capundo;
    MDB_dbi dbi_sess, dbi_handle;
};

/* ---- table manipulation (caller holds sess_lock) ------------------------------ */

static struct sess *sess_find(struct meta_sessions *ss, uint64_t id)
{
    return (struct sess *)hmap_find(&ss->sessions, id);
}

static struct handle *handle_find(struct meta_sessions *ss, uint64_t id)
{
    return (struct handle *)hmap_find(&ss->handles, id);
}

static struct oino *oino_find(struct meta_sessions *ss, uint64_t ino)
{
    return (struct oino *)hmap_find(&ss->inos, ino);
}

static void sweep_add(struct meta_sessions *ss, struct oino *o)
{
    if (!o->on_sweep) {
        o->on_sweep = true;
        o->sweep_next = ss->sweep;
        ss->sweep = o;
    }
}

static void sweep_run(struct meta_sessions *ss)
{
    while (ss->sweep) {
        struct oino *o = ss->sweep;
        ss->sweep = o->sweep_next;
        o->on_sweep = false;
        if (!o->handles && !o->waiters) {
            hmap_remove(&ss->inos, &o->h);
            ckpt_free(o);
        }
    }
}

static void wlist_del(struct meta_sessions *ss, struct oino *o)
{
    if (!o->on_wlist)
        return;
    if (o->wprev)
        o->wprev->wnext = o->wnext;
    else
        ss->waiting = o->wnext;
    if (o->wnext)
        o->wnext->wprev = o->wprev;
    o->wnext = o->wprev = NULL;
    o->on_wlist = false;
}

/* Link a handle into its session and inode (both exist). */
static void handle_link(struct meta_sessions *ss, struct sess *s, struct oino *o,
                        struct handle *h)
{
    h->sprev = NULL;
    h->snext = s->handles;
    if (s->handles)
        s->handles->sprev = h;
    s->handles = h;
    s->nhandles++;
    h->iprev = NULL;
    h->inext = o->handles;
    if (o->handles)
        o->handles->iprev = h;
    o->handles = h;
    hmap_insert(&ss->handles, &h->h);
}

static void handle_unlink(struct meta_sessions *ss, struct handle *h)
{
    struct sess *s = sess_find(ss, h->session);
    struct oino *o = oino_find(ss, h->ino);
    if (s) {
        if (h->sprev)
            h->sprev->snext = h->snext;
        else
            s->handles = h->snext;
        if (h->snext)
            h->snext->sprev = h->sprev;
        s->nhandles--;
    }
    if (o) {
        if (h->iprev)
            h->iprev->inext = h->inext;
        else
            o->handles = h->inext;
        if (h->inext)
            h->inext->iprev = h->iprev;
        if (!o->handles)
            sweep_add(ss, o);
    }
    h->sprev = h->snext = h->iprev = h->inext = NULL;
    hmap_remove(&ss->handles, &h->h);
}

/* True when ino has a write handle of a session other than `session`. */
static bool ino_blocked(struct meta_sessions *ss, uint64_t ino, uint64_t session)
{
    struct oino *o = oino_find(ss, ino);
    for (struct handle *h = o ? o->handles : NULL; h; h = h->inext)
        if (h->write && h->session != session)
            return true;
    return false;
}

static int undo_push(struct meta_sessions *ss, enum undo_kind kind, void *obj)
{
    if (ss->nundo == ss->capundo) {
        size_t ncap = ss->capundo ? ss->capundo * 2 : 64;
        struct undo *u = ckpt_realloc(ss->undo, ncap * sizeof(*u));
        if (!u)
            return -ENOMEM;
        ss->undo = u;
        ss->capundo = ncap;
    }
    ss->undo[ss->nundo].kind = kind;
    ss->undo[ss->nundo].obj = obj;
    ss->nundo++;
    return 0;
}

/* ---- persistence -------------------------------------------------------------------- */

static void be64(uint8_t *p, uint64_t v)
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

static int db_sess_put(struct meta_sessions *ss, MDB_txn *txn, uint64_t id, const char *name)
{
    uint8_t kb[8], vb[1 + CKPT_CLIENT_NAME_MAX];
    size_t nlen = strnlen(name, CKPT_CLIENT_NAME_MAX);
    MDB_val k = {8, kb}, v = {1 + nlen, vb};
    be64(kb, id);
    vb[0] = 1;
    memcpy(vb + 1, name, nlen);
    return meta_store_errno(mdb_put(txn, ss->dbi_sess, &k, &v, 0));
}

static int db_sess_del(struct meta_sessions *ss, MDB_txn *txn, uint64_t id)
{
    uint8_t kb[8];
    MDB_val k = {8, kb};
    be64(kb, id);
    int rc = meta_store_errno(mdb_del(txn, ss->dbi_sess, &k, NULL));
    return rc == -ENOENT ? 0 : rc;
}

static int db_handle_put(struct meta_sessions *ss, MDB_txn *txn, const struct handle *h)
{
    uint8_t kb[16], vb[10];
    MDB_val k = {16, kb}, v = {10, vb};
    be64(kb, h->session);
    be64(kb + 8, h->h.key);
    vb[0] = 1;
    vb[1] = h->write ? 1 : 0;
    for (int i = 0; i < 8; i++)
        vb[2 + i] = (uint8_t)(h->ino >> (8 * i));
    return meta_store_errno(mdb_put(txn, ss->dbi_handle, &k, &v, 0));
}

static int db_handle_del(struct meta_sessions *ss, MDB_txn *txn, uint64_t session,
                         uint64_t handle)
{
    uint8_t kb[16];
    MDB_val k = {16, kb};
    be64(kb, session);
    be64(kb + 8, handle);
    int rc = meta_store_errno(mdb_del(txn, ss->dbi_handle, &k, NULL));
    return rc == -ENOENT ? 0 : rc;
}

/* ---- operations used by the wops (writer thread) --------------------------------- */

/* Add a handle of session on ino: memory (with undo) and, when persist, the
 * database (see "Read handles" in the DESIGN block). */
static int handle_add(struct meta_server *srv, MDB_txn *txn, uint64_t session, uint64_t ino,
                      bool write, bool persist, uint64_t *out_id)
{
    struct meta_sessions *ss = srv->sess;
    struct handle *h = ckpt_calloc(1, sizeof(*h));
    struct oino *o = NULL;
    int rc;

    if (!h)
        return -ENOMEM;
    pthread_mutex_lock(&srv->sess_lock);
    struct sess *s = sess_find(ss, session);
    if (!s || s->dying) {
        rc = -ESTALE;
        goto out_unlock;
    }
    o = oino_find(ss, ino);
    if (!o) {
        o = ckpt_calloc(1, sizeof(*o));
        if (!o) {
            rc = -ENOMEM;
            goto out_unlock;
        }
        o->h.key = ino;
        hmap_insert(&ss->inos, &o->h);
        sweep_add(ss, o); /* freed at the end of the batch if unused */
    }
    h->h.key = ss->next_handle++;
    h->session = session;
    h->ino = ino;
    h->write = write;
    h->persisted = persist;
    rc = undo_push(ss, U_HANDLE_ADD, h);
    if (rc < 0)
        goto out_unlock;
    if (persist) {
        pthread_mutex_unlock(&srv->sess_lock);
        rc = db_handle_put(ss, txn, h);
        pthread_mutex_lock(&srv->sess_lock);
    }
    if (rc < 0) {
        ss->nundo--; /* nothing linked yet */
        goto out_unlock;
    }
    handle_link(ss, s, o, h);
    *out_id = h->h.key;
    pthread_mutex_unlock(&srv->sess_lock);
    return 0;
out_unlock:
    pthread_mutex_unlock(&srv->sess_lock);
    ckpt_free(h);
    return rc;
}

/* Remove handle id: database (when it is there), memory. */
static int handle_del(struct meta_server *srv, MDB_txn *txn, uint64_t session, uint64_t id)
{
    struct meta_sessions *ss = srv->sess;
    pthread_mutex_lock(&srv->sess_lock);
    struct handle *hp = handle_find(ss, id);
    bool persisted = hp && hp->persisted;
    pthread_mutex_unlock(&srv->sess_lock);
    int rc = persisted ? db_handle_del(ss, txn, session, id) : 0;
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&srv->sess_lock);
    struct handle *h = handle_find(ss, id);
    if (h) {
        rc = undo_push(ss, U_HANDLE_DEL, h);
        if (rc == 0)
            handle_unlink(ss, h);
    }
    pthread_mutex_unlock(&srv->sess_lock);
    return rc;
}

bool meta_sess_ino_open(struct meta_server *srv, uint64_t ino)
{
    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = oino_find(srv->sess, ino);
    bool open = o && o->handles;
    pthread_mutex_unlock(&srv->sess_lock);
    return open;
}

int meta_sess_persist_ino(struct meta_server *srv, MDB_txn *txn, uint64_t ino)
{
    struct meta_sessions *ss = srv->sess;
    int rc = 0;
    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = oino_find(ss, ino);
    for (struct handle *h = o ? o->handles : NULL; h && rc == 0; h = h->inext) {
        if (h->persisted)
            continue;
        /* The writer thread is the only one that adds or removes handles,
         * and it is here: h stays while the lock is dropped.  If the batch
         * does not commit, the flag stays set for a record that is not
         * there; deleting a missing record is not an error. */
        pthread_mutex_unlock(&srv->sess_lock);
        rc = db_handle_put(ss, txn, h);
        pthread_mutex_lock(&srv->sess_lock);
        if (rc == 0)
            h->persisted = true;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    return rc;
}

static void pending_apply(const struct handle *h, struct meta_attr *a)
{
    a->size = h->pend_size;
    a->mtime = h->pend_mtime;
    a->ctime = h->pend_ctime;
}

/* Of several closing write handles of one inode (one session's quick
 * close-open-close: `echo >>f` twice) the one whose CLOSING came last
 * carries the newest size: the writer's sizes only grow between its size
 * messages, and a truncate in between rewrites every pend_size
 * (meta_sess_pending_setattr).  Handles whose RELEASE the batch being
 * written applied (undo log) count too: they are closing until it commits. */
void meta_sess_pending_attr(struct meta_server *srv, struct meta_attr *a)
{
    struct meta_sessions *ss = srv->sess;
    const struct handle *best = NULL;
    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = oino_find(ss, a->ino);
    for (struct handle *h = o ? o->handles : NULL; h; h = h->inext)
        if (h->write && h->closing && (!best || h->closing_seq > best->closing_seq))
            best = h;
    for (size_t i = 0; i < ss->nundo; i++) {
        const struct handle *h = ss->undo[i].obj;
        if (ss->undo[i].kind == U_HANDLE_DEL && h->ino == a->ino && h->write && h->closing &&
            (!best || h->closing_seq > best->closing_seq))
            best = h;
    }
    if (best)
        pending_apply(best, a);
    pthread_mutex_unlock(&srv->sess_lock);
}

void meta_sess_pending_setattr(struct meta_server *srv, const struct meta_attr *a,
                               bool size, bool mtime)
{
    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = oino_find(srv->sess, a->ino);
    for (struct handle *h = o ? o->handles : NULL; h; h = h->inext) {
        if (h->write && h->closing) {
            if (size)
                h->pend_size = a->size;
            if (mtime)
                h->pend_mtime = a->mtime;
        }
    }
    pthread_mutex_unlock(&srv->sess_lock);
}

bool meta_sess_ino_writing(struct meta_server *srv, uint64_t ino)
{
    bool writing = false;
    pthread_mutex_lock(&srv->sess_lock);
    struct meta_sessions *ss = srv->sess;
    struct oino *o = oino_find(ss, ino);
    for (struct handle *h = o ? o->handles : NULL; h && !writing; h = h->inext)
        writing = h->write;
    /* A write handle released by the batch now being applied still counts
     * until that batch commits: its RELEASE also updates the size, and a
     * checkpoint commit that snapshots the tree in between would see the
     * old size (and then refuse, the tree having "changed"). */
    for (size_t i = 0; i < ss->nundo && !writing; i++) {
        const struct handle *h = ss->undo[i].obj;
        writing = ss->undo[i].kind == U_HANDLE_DEL && h->ino == ino && h->write;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    return writing;
}

void meta_sess_undo_mark(struct meta_server *srv, size_t *out_mark)
{
    pthread_mutex_lock(&srv->sess_lock);
    *out_mark = srv->sess->nundo;
    pthread_mutex_unlock(&srv->sess_lock);
}

void meta_sess_undo_rollback(struct meta_server *srv, size_t mark)
{
    struct meta_sessions *ss = srv->sess;
    pthread_mutex_lock(&srv->sess_lock);
    while (ss->nundo > mark) {
        struct undo *u = &ss->undo[--ss->nundo];
        switch (u->kind) {
        case U_HANDLE_ADD: {
            struct handle *h = u->obj;
            handle_unlink(ss, h);
            ckpt_free(h);
            break;
        }
        case U_HANDLE_DEL: {
            struct handle *h = u->obj;
            struct sess *s = sess_find(ss, h->session);
            struct oino *o = oino_find(ss, h->ino);
            /* Both still exist: sessions are detached only after their
             * handles (so re-added before them here), oinos are freed
             * only after a batch ended. */
            if (s && o)
                handle_link(ss, s, o, h);
            else
                ckpt_free(h);
            break;
        }
        case U_SESS_ADD: {
            struct sess *s = u->obj;
            hmap_remove(&ss->sessions, &s->h);
            ckpt_free(s);
            break;
        }
        case U_SESS_DEL: {
            struct sess *s = u->obj;
            s->dying = false;
            s->expires_ns = ckpt_now_ns(); /* expire it again soon */
            hmap_insert(&ss->sessions, &s->h);
            break;
        }
        }
    }
    pthread_mutex_unlock(&srv->sess_lock);
}

void meta_sess_undo_clear(struct meta_server *srv)
{
    struct meta_sessions *ss = srv->sess;
    pthread_mutex_lock(&srv->sess_lock);
    for (size_t i = 0; i < ss->nundo; i++)
        if (ss->undo[i].kind == U_HANDLE_DEL || ss->undo[i].kind == U_SESS_DEL)
            ckpt_free(ss->undo[i].obj);
    ss->nundo = 0;
    sweep_run(ss);
    pthread_mutex_unlock(&srv->sess_lock);
}

/* ---- parking and waking ------------------------------------------------------------ */

void meta_sess_park(struct meta_server *srv, struct meta_wop *w)
{
    struct meta_sessions *ss = srv->sess;
    bool parked = false;
    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = oino_find(ss, w->park_ino);
    if (o && ino_blocked(ss, w->park_ino, w->park_session)) {
        w->next = NULL;
        if (o->waiters_tail)
            o->waiters_tail->next = w;
        else
            o->waiters = w;
        o->waiters_tail = w;
        if (!o->on_wlist) {
            o->on_wlist = true;
            o->wprev = NULL;
            o->wnext = ss->waiting;
            if (ss->waiting)
                ss->waiting->wprev = o;
            ss->waiting = o;
        }
        ss->nparked++;
        parked = true;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    if (parked) {
        CKPT_LOG_DEBUG("open of inode %llu waits for its writer",
                       (unsigned long long)w->park_ino);
    } else {
        w->park = false;
        meta_wop_submit(srv, w, true);
    }
}

void meta_sess_wake(struct meta_server *srv)
{
    struct meta_sessions *ss = srv->sess;
    struct meta_wop *go = NULL, **tail = &go;

    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = ss->waiting;
    while (o) {
        struct oino *onext = o->wnext;
        struct meta_wop **pp = &o->waiters;
        o->waiters_tail = NULL;
        while (*pp) {
            struct meta_wop *w = *pp;
            if (!ino_blocked(ss, w->park_ino, w->park_session)) {
                *pp = w->next;
                w->next = NULL;
                *tail = w;
                tail = &w->next;
                ss->nparked--;
            } else {
                o->waiters_tail = w;
                pp = &w->next;
            }
        }
        if (!o->waiters) {
            wlist_del(ss, o);
            sweep_add(ss, o);
        }
        o = onext;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    /* Back to the front of the queue in their original order. */
    struct meta_wop *rev = NULL;
    while (go) {
        struct meta_wop *w = go;
        go = w->next;
        w->next = rev;
        rev = w;
    }
    while (rev) {
        struct meta_wop *w = rev;
        rev = w->next;
        w->park = false;
        meta_wop_submit(srv, w, true);
    }
}

/* Remove the waiters matching conn (NULL: all) and return them. */
static struct meta_wop *take_waiters(struct meta_server *srv, ckpt_conn *conn)
{
    struct meta_sessions *ss = srv->sess;
    struct meta_wop *out = NULL;
    pthread_mutex_lock(&srv->sess_lock);
    struct oino *o = ss->waiting;
    while (o) {
        struct oino *onext = o->wnext;
        struct meta_wop **pp = &o->waiters;
        o->waiters_tail = NULL;
        while (*pp) {
            struct meta_wop *w = *pp;
            if (!conn || (w->req && w->req->conn == conn)) {
                *pp = w->next;
                w->next = out;
                out = w;
                ss->nparked--;
            } else {
                o->waiters_tail = w;
                pp = &w->next;
            }
        }
        if (!o->waiters) {
            wlist_del(ss, o);
            sweep_add(ss, o);
        }
        o = onext;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    return out;
}

void meta_sess_conn_closed(struct meta_server *srv, ckpt_conn *conn)
{
    if (!srv->sess)
        return;
    struct meta_wop *w = take_waiters(srv, conn);
    while (w) {
        struct meta_wop *next = w->next;
        meta_wop_free(w);
        w = next;
    }
}

void meta_sess_drop_parked(struct meta_server *srv)
{
    meta_sess_conn_closed(srv, NULL);
}

void meta_sess_counts(struct meta_server *srv, uint64_t *out_sessions, uint64_t *out_parked)
{
    *out_sessions = *out_parked = 0;
    if (!srv->sess)
        return;
    pthread_mutex_lock(&srv->sess_lock);
    *out_sessions = srv->sess->sessions.n;
    *out_parked = srv->sess->nparked;
    pthread_mutex_unlock(&srv->sess_lock);
}

/* ---- expiry ---------------------------------------------------------------------------- */

struct end_msg {
    uint64_t session;
    bool explicit_end; /* asked by the client, not a lease expiry */
};

void meta_sess_tick(struct meta_server *srv, uint64_t now_ns)
{
    struct meta_sessions *ss = srv->sess;
    uint64_t ids[64];
    size_t n = 0;

    pthread_mutex_lock(&srv->sess_lock);
    for (size_t b = 0; b < ss->sessions.nb && n < 64; b++) {
        for (struct hent *e = ss->sessions.b[b]; e && n < 64; e = e->next) {
            struct sess *s = (struct sess *)e;
            if (!s->dying && now_ns > s->expires_ns) {
                s->dying = true;
                ids[n++] = s->h.key;
                CKPT_LOG_WARN("session %llx (%s) expired: its lease of %u ms ran out with "
                              "%u open file(s)", (unsigned long long)s->h.key, s->name,
                              srv->opts.lease_ms, s->nhandles);
            }
        }
    }
    pthread_mutex_unlock(&srv->sess_lock);
    for (size_t i = 0; i < n; i++) {
        struct meta_wop *w = meta_wop_new(&meta_wop_session_end, NULL);
        if (!w) {
            /* Try again at the next tick. */
            pthread_mutex_lock(&srv->sess_lock);
            struct sess *s = sess_find(ss, ids[i]);
            if (s)
                s->dying = false;
            pthread_mutex_unlock(&srv->sess_lock);
            continue;
        }
        ((struct end_msg *)w->msg)->session = ids[i];
        meta_wop_submit(srv, w, false);
    }
}

/* ---- init, load, fini ------------------------------------------------------------------ */

static int load(struct meta_server *srv, MDB_txn *txn)
{
    struct meta_sessions *ss = srv->sess;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t expires = ckpt_now_ns() + (uint64_t)srv->opts.lease_ms * 1000000ull;
    size_t nsess = 0, nhandles = 0, nstale = 0;
    int rc = meta_store_errno(mdb_cursor_open(txn, ss->dbi_sess, &cur));

    if (rc < 0)
        return rc;
    for (rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST)); rc == 0;
         rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        const uint8_t *p = v.mv_data;
        if (k.mv_size != 8 || v.mv_size < 1 || v.mv_size > 1 + CKPT_CLIENT_NAME_MAX || p[0] != 1) {
            rc = -EIO;
            break;
        }
        struct sess *s = ckpt_calloc(1, sizeof(*s));
        if (!s) {
            rc = -ENOMEM;
            break;
        }
        s->h.key = get_be64(k.mv_data);
        memcpy(s->name, p + 1, v.mv_size - 1);
        s->expires_ns = expires;
        hmap_insert(&ss->sessions, &s->h);
        nsess++;
    }
    mdb_cursor_close(cur);
    if (rc != -ENOENT)
        return rc;

    rc = meta_store_errno(mdb_cursor_open(txn, ss->dbi_handle, &cur));
    if (rc < 0)
        return rc;
    for (rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST)); rc == 0;
         rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        const uint8_t *p = v.mv_data;
        if (k.mv_size != 16 || v.mv_size != 10 || p[0] != 1) {
            rc = -EIO;
            break;
        }
        uint64_t sid = get_be64(k.mv_data), hid = get_be64((uint8_t *)k.mv_data + 8), ino = 0;
        for (int i = 7; i >= 0; i--)
            ino = ino << 8 | p[2 + i];
        if (hid >= ss->next_handle)
            ss->next_handle = hid + 1;
        struct sess *s = sess_find(ss, sid);
        if (!s) {
            /* Its session is gone: the record is garbage. */
            rc = meta_store_errno(mdb_cursor_del(cur, 0));
            if (rc < 0)
                break;
            nstale++;
            continue;
        }
        struct oino *o = oino_find(ss, ino);
        if (!o) {
            o = ckpt_calloc(1, sizeof(*o));
            if (!o) {
                rc = -ENOMEM;
                break;
            }
            o->h.key = ino;
            hmap_insert(&ss->inos, &o->h);
        }
        struct handle *h = ckpt_calloc(1, sizeof(*h));
        if (!h) {
            rc = -ENOMEM;
            break;
        }
        h->h.key = hid;
        h->session = sid;
        h->ino = ino;
        h->write = p[1] & 1;
        h->persisted = true;
        handle_link(ss, s, o, h);
        nhandles++;
    }
    mdb_cursor_close(cur);
    if (rc != -ENOENT)
        return rc;
    if (nsess || nstale)
        CKPT_LOG_INFO("sessions: %zu restored with %zu open handle(s) (fresh leases of %u ms)%s",
                      nsess, nhandles, srv->opts.lease_ms,
                      nstale ? "; dropped stale handle records" : "");
    return 0;
}

int meta_sess_init(struct meta_server *srv)
{
    struct meta_sessions *ss = ckpt_calloc(1, sizeof(*ss));
    MDB_txn *txn = NULL;
    int rc;

    if (!ss)
        return -ENOMEM;
    srv->sess = ss;
    /* Handle ids never repeat across restarts: read handles are not in the
     * database, and a client may still hold one from before (its RELEASE
     * then finds nothing, instead of someone else's handle).  The boot
     * count (the cluster epoch's high half, counted up by
     * meta_cluster_init) takes the top bits. */
    ss->next_handle = ((meta_cluster_epoch(srv) >> 32) << 40) | 1;
    ss->handle_floor = ss->next_handle;
    rc = hmap_init(&ss->sessions);
    if (rc == 0)
        rc = hmap_init(&ss->handles);
    if (rc == 0)
        rc = hmap_init(&ss->inos);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "se.session", 0, &ss->dbi_sess);
    if (rc == 0)
        rc = meta_store_dbi_open(srv->st, "se.handle", 0, &ss->dbi_handle);
    if (rc == 0)
        rc = meta_store_txn_begin(srv->st, NULL, false, &txn);
    if (rc < 0)
        return rc;
    rc = load(srv, txn);
    if (rc == 0)
        rc = meta_store_txn_commit(txn);
    else
        meta_store_txn_abort(txn);
    return rc;
}

void meta_sess_fini(struct meta_server *srv)
{
    struct meta_sessions *ss = srv->sess;
    if (!ss)
        return;
    meta_sess_drop_parked(srv);
    for (size_t i = 0; i < ss->nundo; i++)
        if (ss->undo[i].kind == U_HANDLE_DEL || ss->undo[i].kind == U_SESS_DEL)
            ckpt_free(ss->undo[i].obj);
    struct hmap *maps[3] = {&ss->handles, &ss->sessions, &ss->inos};
    for (int m = 0; m < 3; m++) {
        for (size_t b = 0; maps[m]->b && b < maps[m]->nb; b++) {
            while (maps[m]->b[b]) {
                struct hent *e = maps[m]->b[b];
                maps[m]->b[b] = e->next;
                ckpt_free(e);
            }
        }
        ckpt_free(maps[m]->b);
    }
    ckpt_free(ss->undo);
    ckpt_free(ss);
    srv->sess = NULL;
}

struct reap_list {
    uint64_t *inos;
    size_t n, cap;
};

static int collect_orphan(uint64_t ino, void *ctx)
{
    struct reap_list *l = ctx;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        uint64_t *p = ckpt_realloc(l->inos, ncap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        l->inos = p;
        l->cap = ncap;
    }
    l->inos[l->n++] = ino;
    return 0;
}

int meta_sess_reap_orphans(struct meta_server *srv)
{
    struct reap_list l = {NULL, 0, 0};
    MDB_txn *txn = NULL;
    size_t queued = 0;
    int rc = meta_store_txn_begin(srv->st, NULL, true, &txn);

    if (rc < 0)
        return rc;
    rc = meta_store_orphan_iter(txn, 0, collect_orphan, &l);
    meta_store_txn_abort(txn);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (meta_sess_ino_open(srv, l.inos[i]))
            continue;
        struct meta_wop *w = meta_wop_new(&meta_wop_reap, NULL);
        if (!w) {
            rc = -ENOMEM;
            break;
        }
        *(uint64_t *)w->msg = l.inos[i];
        meta_wop_submit(srv, w, false);
        queued++;
    }
    if (l.n)
        CKPT_LOG_INFO("orphans: %zu found at start-up, %zu no longer held are being destroyed",
                      l.n, queued);
    ckpt_free(l.inos);
    return rc;
}

/* ---- SESSION ------------------------------------------------------------------------------ */

static int session_new_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct ckpt_msg_session *m = w->msg;
    struct meta_sessions *ss = srv->sess;
    struct sess *s = ckpt_calloc(1, sizeof(*s));
    uint64_t id = 0;
    int rc;

    if (!s)
        return -ENOMEM;
    pthread_mutex_lock(&srv->sess_lock);
    do {
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
            id = ckpt_now_ns() ^ (uint64_t)(uintptr_t)s;
    } while (id == 0 || sess_find(ss, id));
    pthread_mutex_unlock(&srv->sess_lock);
    rc = db_sess_put(ss, txn, id, m->name);
    if (rc < 0)
        goto fail;
    s->h.key = id;
    snprintf(s->name, sizeof(s->name), "%s", m->name);
    s->expires_ns = ckpt_now_ns() + (uint64_t)srv->opts.lease_ms * 1000000ull;
    pthread_mutex_lock(&srv->sess_lock);
    rc = undo_push(ss, U_SESS_ADD, s);
    if (rc == 0)
        hmap_insert(&ss->sessions, &s->h);
    pthread_mutex_unlock(&srv->sess_lock);
    if (rc < 0)
        goto fail;
    struct ckpt_msg_session_resp r = {id, srv->opts.lease_ms};
    CKPT_LOG_DEBUG("session %llx opened by %s", (unsigned long long)id, m->name);
    return ckpt_msg_session_resp_encode(&w->reply, &r);
fail:
    ckpt_free(s);
    return rc;
}

struct held {
    uint64_t id, ino;
    bool write;
};

static int session_end_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct meta_sessions *ss = srv->sess;
    uint64_t sid;
    struct held *hs = NULL;
    uint32_t n = 0, nincomplete = 0;
    char name[CKPT_CLIENT_NAME_MAX + 1];
    int rc = 0;

    if (w->req)
        sid = ((struct ckpt_msg_session *)w->msg)->session;
    else
        sid = ((struct end_msg *)w->msg)->session;
    pthread_mutex_lock(&srv->sess_lock);
    struct sess *s = sess_find(ss, sid);
    if (!s) {
        pthread_mutex_unlock(&srv->sess_lock);
        return w->req ? -ESTALE : 0;
    }
    snprintf(name, sizeof(name), "%s", s->name);
    if (s->nhandles) {
        hs = ckpt_calloc(s->nhandles, sizeof(*hs));
        if (!hs) {
            pthread_mutex_unlock(&srv->sess_lock);
            return -ENOMEM;
        }
        for (struct handle *h = s->handles; h; h = h->snext)
            hs[n++] = (struct held){h->h.key, h->ino, h->write};
    }
    pthread_mutex_unlock(&srv->sess_lock);

    for (uint32_t i = 0; i < n && rc == 0; i++) {
        rc = handle_del(srv, txn, sid, hs[i].id);
        if (rc == 0 && hs[i].write) {
            rc = meta_store_flags_update(txn, hs[i].ino, META_INODE_F_INCOMPLETE, 0);
            if (rc == -ENOENT)
                rc = 0;
            else if (rc == 0)
                nincomplete++;
            w->wake = true;
        }
    }
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = meta_reap_if_unused(srv, txn, hs[i].ino, w);
    if (rc == 0)
        rc = db_sess_del(ss, txn, sid);
    if (rc == 0) {
        pthread_mutex_lock(&srv->sess_lock);
        s = sess_find(ss, sid);
        if (s) {
            rc = undo_push(ss, U_SESS_DEL, s);
            if (rc == 0)
                hmap_remove(&ss->sessions, &s->h);
        }
        pthread_mutex_unlock(&srv->sess_lock);
    }
    ckpt_free(hs);
    if (rc == 0 && (n || !w->req))
        CKPT_LOG_INFO("session %llx (%s) ended: %u open file(s) released, %u marked incomplete",
                      (unsigned long long)sid, name, n, nincomplete);
    return rc;
}

static int session_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_session_decode(body, len, msg);
}

const struct meta_wop_type meta_wop_session_new = {
    .name = "SESSION(new)",
    .msg_size = sizeof(struct ckpt_msg_session),
    .decode = session_decode,
    .apply = session_new_apply,
};

const struct meta_wop_type meta_wop_session_end = {
    .name = "SESSION(end)",
    .msg_size = sizeof(struct ckpt_msg_session) > sizeof(struct end_msg)
                    ? sizeof(struct ckpt_msg_session) : sizeof(struct end_msg),
    .decode = session_decode,
    .apply = session_end_apply,
};

void meta_di_session(struct meta_server *srv, struct ckpt_req *req)
{
    struct ckpt_msg_session m;
    int rc = ckpt_msg_session_decode(req->body, req->body_len, &m);

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    if (m.session == 0 || m.name[0] == '\0') {
        struct meta_wop *w = meta_wop_new(m.session == 0 ? &meta_wop_session_new
                                                         : &meta_wop_session_end, req);
        if (!w) {
            (void)ckpt_req_reply(req, -ENOMEM, NULL, 0, NULL, 0);
            return;
        }
        memcpy(w->msg, &m, sizeof(m));
        meta_wop_submit(srv, w, false);
        return;
    }
    /* Renewal: memory only. */
    pthread_mutex_lock(&srv->sess_lock);
    struct sess *s = sess_find(srv->sess, m.session);
    if (!s || s->dying)
        rc = -ESTALE;
    else
        s->expires_ns = ckpt_now_ns() + (uint64_t)srv->opts.lease_ms * 1000000ull;
    pthread_mutex_unlock(&srv->sess_lock);
    uint8_t buf[32];
    struct ckpt_wbuf wb;
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    struct ckpt_msg_session_resp r = {m.session, srv->opts.lease_ms};
    if (rc == 0)
        rc = ckpt_msg_session_resp_encode(&wb, &r);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
}

/* ---- OPEN / CREATE ------------------------------------------------------------------------- */

static bool session_live(struct meta_server *srv, uint64_t session)
{
    pthread_mutex_lock(&srv->sess_lock);
    struct sess *s = sess_find(srv->sess, session);
    bool live = s && !s->dying;
    pthread_mutex_unlock(&srv->sess_lock);
    return live;
}

static int reply_open(struct meta_wop *w, const struct meta_attr *a,
                      const struct ckpt_layout *l, uint64_t handle)
{
    struct ckpt_msg_open_resp r;
    memset(&r, 0, sizeof(r));
    meta_attr_to_wire(a, &r.attr);
    if (l)
        r.layout = *l;
    r.handle = handle;
    return ckpt_msg_open_resp_encode(&w->reply, &r);
}

/* Open an existing inode for session (OPEN, and CREATE of a name that
 * exists). */
static int open_ino(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w, uint64_t ino,
                    uint32_t flags, uint64_t session)
{
    struct meta_attr a;
    struct ckpt_layout l;
    bool wr = (flags & O_ACCMODE) != O_RDONLY, has_layout = false;
    uint64_t handle = 0;
    bool blocked;
    int rc = meta_store_getattr(txn, ino, &a);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&srv->sess_lock);
    struct sess *s = sess_find(srv->sess, session);
    rc = !s || s->dying ? -ESTALE : 0;
    blocked = ino_blocked(srv->sess, ino, session);
    pthread_mutex_unlock(&srv->sess_lock);
    if (rc < 0)
        return rc;
    if (S_ISDIR(a.mode) && wr)
        return -EISDIR;
    if (S_ISLNK(a.mode))
        return -ELOOP;
    if ((wr || (flags & O_TRUNC)) && meta_ckpt_immutable(srv, txn, ino))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    if (blocked) {
        w->park = true;
        w->park_ino = ino;
        w->park_session = session;
        return 0;
    }
    if (wr && S_ISREG(a.mode)) {
        struct timespec now = meta_now();
        if ((flags & O_TRUNC) && a.size > 0) {
            struct meta_setattr sa = {.mask = META_SETATTR_SIZE, .size = 0};
            rc = meta_store_setattr(txn, ino, &sa, &now, &a, NULL);
            if (rc == 0)
                rc = meta_store_delq_add_file(txn, ino, a.data_gen - 1, 0);
            w->kick_delq = true;
        } else {
            rc = meta_store_data_gen_bump(txn, ino, NULL);
        }
        if (rc == 0 && (flags & O_TRUNC) && (a.flags & META_INODE_F_INCOMPLETE))
            rc = meta_store_flags_update(txn, ino, 0, META_INODE_F_INCOMPLETE);
        if (rc == 0 && !a.has_layout) {
            /* Created without one (e.g. by an older tool): place it now
             * with the cluster default. */
            l = srv->opts.layout;
            rc = meta_cluster_place(srv, &l);
            if (rc == 0)
                rc = meta_store_layout_set(txn, ino, &l);
        }
        if (rc == 0)
            rc = meta_store_getattr(txn, ino, &a);
        if (rc < 0)
            return rc;
    }
    if (S_ISREG(a.mode)) {
        rc = meta_store_layout_get(txn, ino, &l);
        if (rc == 0)
            has_layout = true;
        else if (rc != -ENODATA)
            return rc;
    }
    /* A read handle of a file that has a name needs no record: see "Read
     * handles".  One of an orphan (opened through a descriptor it still
     * has) protects the orphan across a restart like any other. */
    rc = handle_add(srv, txn, session, ino, wr, wr || a.nlink == 0, &handle);
    if (rc < 0)
        return rc;
    w->result[0] = handle;
    w->result[1] = session;
    /* An open that did not wait (the opener's own session, or no writer):
     * the size the opener's earlier handles are still flushing counts, as
     * it does for GETATTR.  A client that already dropped its inode object
     * (its last RELEASE answered while this OPEN was on its way) builds a
     * new one from this reply: with the stored size alone, an O_APPEND
     * right after `echo >>f` saw the file one write short, and the client
     * zero-filled the gap the kernel's append offset left (test_fs_posix,
     * one line of zeros in 50 appends). */
    if (!(flags & O_TRUNC))
        meta_sess_pending_attr(srv, &a);
    return reply_open(w, &a, has_layout ? &l : NULL, handle);
}

static int open_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_open_decode(body, len, msg);
}

static int open_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct ckpt_msg_open *m = w->msg;
    return open_ino(srv, txn, w, m->ino, m->flags, m->session);
}

struct drop_msg {
    uint64_t session, handle;
};

/* The client never learnt its handle: release it. */
static void open_lost(struct meta_server *srv, struct meta_wop *w)
{
    struct meta_wop *d = meta_wop_new(&meta_wop_drop_handle, NULL);
    if (!d) {
        CKPT_LOG_ERR("out of memory: handle %llu stays open until its session ends",
                     (unsigned long long)w->result[0]);
        return;
    }
    ((struct drop_msg *)d->msg)->handle = w->result[0];
    ((struct drop_msg *)d->msg)->session = w->result[1];
    meta_wop_submit(srv, d, false);
}

const struct meta_wop_type meta_wop_open = {
    .name = "OPEN",
    .msg_size = sizeof(struct ckpt_msg_open),
    .decode = open_decode,
    .apply = open_apply,
    .lost = open_lost,
};

static int create_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_create_decode(body, len, msg);
}

static int create_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct ckpt_msg_create *m = w->msg;
    struct meta_attr a;
    struct ckpt_layout l;
    struct timespec now = meta_now();
    uint64_t handle = 0;
    uint32_t type = m->mode & S_IFMT;
    int rc;

    if (type != 0 && type != S_IFREG)
        return -EINVAL;
    if (!session_live(srv, m->session))
        return -ESTALE;
    if (meta_ckpt_immutable(srv, txn, m->parent))
        return -EROFS; /* inside a committed checkpoint (meta_ckpt.c) */
    rc = meta_store_lookup(txn, m->parent, m->name, &a);
    if (rc == 0) {
        if (m->flags & O_EXCL)
            return -EEXIST;
        if (S_ISDIR(a.mode))
            return -EISDIR;
        return open_ino(srv, txn, w, a.ino, m->flags, m->session);
    }
    if (rc != -ENOENT)
        return rc;
    rc = meta_new_file_layout(srv, txn, m->parent, &l);
    if (rc < 0)
        return rc;
    rc = meta_store_mknod(txn, m->parent, m->name, S_IFREG | (m->mode & 07777), m->uid, m->gid,
                          0, &l, &now, &a);
    if (rc < 0)
        return rc;
    bool wr = (m->flags & O_ACCMODE) != O_RDONLY;
    rc = handle_add(srv, txn, m->session, a.ino, wr, wr, &handle);
    if (rc < 0)
        return rc;
    w->result[0] = handle;
    w->result[1] = m->session;
    rc = meta_store_layout_get(txn, a.ino, &l);
    if (rc < 0)
        return rc;
    return reply_open(w, &a, &l, handle);
}

const struct meta_wop_type meta_wop_create = {
    .name = "CREATE",
    .msg_size = sizeof(struct ckpt_msg_create),
    .decode = create_decode,
    .apply = create_apply,
    .lost = open_lost,
};

/* ---- FLUSHED / RELEASE / handle drop ---------------------------------------------------- */

static int release_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_release_decode(body, len, msg);
}

static int flushed_common(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w,
                          bool flushed, bool *out_write)
{
    struct ckpt_msg_release *m = w->msg;
    struct timespec now = meta_now();
    int rc = 0;

    pthread_mutex_lock(&srv->sess_lock);
    struct handle *h = handle_find(srv->sess, m->handle);
    bool ok = h && h->session == m->session && h->ino == m->ino;
    if (!ok && !h && flushed && m->wrote && m->handle < srv->sess->handle_floor) {
        /* fsync() through a read handle opened before this ckpt-meta
         * started (`sync FILE` opens read-only): read handles were kept in
         * memory, so it is gone, but the session is the one whose writes
         * the size is; take it as from that session.  (A write handle
         * would be in the store and found.) */
        struct sess *s = sess_find(srv->sess, m->session);
        ok = s && !s->dying;
        *out_write = false;
    }
    if (ok && h) {
        *out_write = h->write;
        /* The store takes the size now, with the ctime stat() has been
         * showing since CLOSING (tar compares it).  h->closing stays: the
         * readers' snapshots show the new size only once this commits. */
        if (m->wrote && h->closing)
            now = h->pend_ctime;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    if (!ok)
        return -ESTALE;
    if (m->wrote) {
        struct timespec mt = {(time_t)m->mtime_sec, (long)m->mtime_nsec};
        struct meta_attr a;
        rc = meta_store_size_update(txn, m->ino, m->size, &mt, &now, &a);
        if (rc == 0 && m->has_checksum) {
            uint8_t v[20];
            for (int i = 0; i < 4; i++)
                v[i] = (uint8_t)(m->checksum >> (8 * i));
            for (int i = 0; i < 8; i++) {
                v[4 + i] = (uint8_t)(m->size >> (8 * i));
                v[12 + i] = (uint8_t)(a.data_gen >> (8 * i));
            }
            rc = meta_store_xattr_set(txn, m->ino, META_CKSUM_XATTR, v, sizeof(v), 0, &now,
                                      NULL);
        }
        if (rc == 0 && m->lost) {
            CKPT_LOG_WARN("inode %llu: its writer reports data it could not store: marked "
                          "incomplete", (unsigned long long)m->ino);
            rc = meta_store_flags_update(txn, m->ino, META_INODE_F_INCOMPLETE, 0);
        }
    }
    return rc;
}

/* CLOSING: memory only, answered on the receive thread.  It must be in
 * place before the writer's close() returns (the client waits for this
 * reply), so that a stat() anywhere afterwards sees the flushing size. */
void meta_di_closing(struct meta_server *srv, struct ckpt_req *req)
{
    struct ckpt_msg_release m;
    int rc = ckpt_msg_release_decode(req->body, req->body_len, &m);

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    if (m.mtime_nsec >= 1000000000u || m.size > (uint64_t)INT64_MAX || !m.wrote) {
        (void)ckpt_req_reply(req, -EINVAL, NULL, 0, NULL, 0);
        return;
    }
    pthread_mutex_lock(&srv->sess_lock);
    struct handle *h = handle_find(srv->sess, m.handle);
    if (!h || h->session != m.session || h->ino != m.ino || !h->write) {
        rc = -ESTALE;
    } else {
        h->closing = true;
        h->closing_seq = ++srv->sess->closing_seq;
        h->pend_size = m.size;
        h->pend_mtime.tv_sec = (time_t)m.mtime_sec;
        h->pend_mtime.tv_nsec = (long)m.mtime_nsec;
        h->pend_ctime = meta_now();
    }
    pthread_mutex_unlock(&srv->sess_lock);
    (void)ckpt_req_reply(req, rc, NULL, 0, NULL, 0);
}

static int flushed_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    bool write = false;
    return flushed_common(srv, txn, w, true, &write);
}

static int release_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct ckpt_msg_release *m = w->msg;
    bool write = false;
    int rc = flushed_common(srv, txn, w, false, &write);
    if (rc == 0)
        rc = handle_del(srv, txn, m->session, m->handle);
    if (rc == 0) {
        w->wake = write;
        rc = meta_reap_if_unused(srv, txn, m->ino, w);
    }
    return rc;
}

const struct meta_wop_type meta_wop_flushed = {
    .name = "FLUSHED",
    .msg_size = sizeof(struct ckpt_msg_release),
    .decode = release_decode,
    .apply = flushed_apply,
};

const struct meta_wop_type meta_wop_release = {
    .name = "RELEASE",
    .msg_size = sizeof(struct ckpt_msg_release),
    .decode = release_decode,
    .apply = release_apply,
};

static int drop_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    struct drop_msg *m = w->msg;
    uint64_t ino = 0;
    bool write = false;

    pthread_mutex_lock(&srv->sess_lock);
    struct handle *h = handle_find(srv->sess, m->handle);
    if (h && h->session == m->session) {
        ino = h->ino;
        write = h->write;
    }
    pthread_mutex_unlock(&srv->sess_lock);
    if (!ino)
        return 0;
    int rc = handle_del(srv, txn, m->session, m->handle);
    if (rc == 0) {
        w->wake = write;
        rc = meta_reap_if_unused(srv, txn, ino, w);
    }
    CKPT_LOG_INFO("dropped handle %llu of inode %llu: its client went away before the answer",
                  (unsigned long long)m->handle, (unsigned long long)ino);
    return rc;
}

const struct meta_wop_type meta_wop_drop_handle = {
    .name = "DROP_HANDLE",
    .msg_size = sizeof(struct drop_msg),
    .apply = drop_apply,
};

/*
 * mclient.c - the typed client of ckpt-meta (mclient.h).
 *
 * DESIGN
 *
 *   One ckpt_peer (reconnecting by itself) carries every call; calls from
 *   many threads run concurrently over it (the net layer matches responses
 *   by request id).  Each call is encoded on the caller's stack, submitted
 *   with a completion that posts a semaphore, and decoded on the caller's
 *   thread.
 *
 *   Retries (mc_call).  A call that could not be sent at all (no
 *   connection: ckpt-meta restarting, the peer in its reconnect backoff) is
 *   retried, whatever it is, until retry_ms has passed: nothing reached
 *   ckpt-meta.  A call that was sent and then lost its connection or timed
 *   out is retried only when it is idempotent (lookup, getattr, readdir,
 *   readlink, statfs, getxattr, listxattr, cluster map); the others return
 *   the transport error, because ckpt-meta may have applied them.
 *
 *   Threads.  lease_main renews the session every lease/3.  When ckpt-meta
 *   answers -ESTALE (the session expired, or was lost), a new session is
 *   opened (session_recover, serialised by recover_lock so that the lease
 *   thread and callers that met -ESTALE at the same time open only one)
 *   and session_lost() is called on the thread that opened it.  OPEN and
 *   CREATE that meet -ESTALE recover the session and are sent once more
 *   (they had no effect).  FLUSHED/RELEASE carry the session of their
 *   handle, and simply report -ESTALE.
 *
 *   Lock order: recover_lock, then lock.  No lock is held during a call
 *   except recover_lock around the SESSION call that replaces a session.
 *
 *   Known limits: OPEN and CREATE wait up to MC_OPEN_TIMEOUT_MS for other
 *   sessions' writers (msg_meta.h visibility rule).
 */
#include "mclient.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

#define MC_IDEM 0x1u /* safe to send again after a lost answer */
#define MC_ONCE 0x2u /* no retry at all */
#define MC_CLOSING_TIMEOUT_MS 1000u
#define MC_OPEN_TIMEOUT_MS 86400000u
#define MC_DEFAULT_RETRY_MS 30000u

struct ckpt_mclient {
    ckpt_net *net;
    ckpt_peer *peer;
    char name[CKPT_CLIENT_NAME_MAX + 1];
    uint32_t retry_ms;
    void (*session_lost)(void *ctx, uint64_t old_session, uint64_t new_session);
    void *ctx;
    pthread_mutex_t recover_lock; /* one session replacement at a time */
    pthread_mutex_t lock;
    pthread_cond_t cond;          /* wakes the lease thread */
    uint64_t session;             /* protected by lock */
    uint32_t lease_ms;            /* protected by lock */
    bool stop;                    /* protected by lock */
    pthread_t lease;
    bool lease_started;
};

/* ---- calls ------------------------------------------------------------------ */

static bool transport_error(int rc)
{
    return rc == CKPT_E_CLOSED || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
           rc == -ECONNRESET || rc == -ECONNABORTED || rc == -EHOSTUNREACH ||
           rc == -ENETUNREACH || rc == -EPIPE || rc == CKPT_E_PROTO;
}

static bool stopping(struct ckpt_mclient *mc)
{
    pthread_mutex_lock(&mc->lock);
    bool s = mc->stop;
    pthread_mutex_unlock(&mc->lock);
    return s;
}

static void nap_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void call_done(struct ckpt_call *c)
{
    sem_post(c->ctx);
}

/*
 * Send the request in w and wait for its answer (see DESIGN for retries).
 * @return the status; on 0 call->resp_body holds the reply.  The caller
 * always ends with ckpt_call_release(call).
 */
static int mc_call(struct ckpt_mclient *mc, uint16_t opcode, const struct ckpt_wbuf *w,
                   unsigned flags, uint32_t timeout_ms, struct ckpt_call *call)
{
    uint64_t deadline = ckpt_now_ns() + (uint64_t)mc->retry_ms * 1000000ull;
    uint32_t wait_ms = 10;

    memset(call, 0, sizeof(*call));
    if (w->err)
        return w->err;
    for (;;) {
        ckpt_conn *conn = NULL;
        bool sent = false;
        int rc = ckpt_peer_conn(mc->peer, &conn);
        if (rc == 0) {
            sem_t sem;
            if (sem_init(&sem, 0, 0) < 0) {
                rc = -errno;
                ckpt_conn_put(conn);
                return rc;
            }
            memset(call, 0, sizeof(*call));
            call->opcode = opcode;
            call->body = w->p;
            call->body_len = (uint32_t)w->len;
            call->timeout_ms = timeout_ms;
            call->done = call_done;
            call->ctx = &sem;
            rc = ckpt_conn_submit(conn, call);
            if (rc == 0) {
                while (sem_wait(&sem) < 0 && errno == EINTR)
                    ;
                rc = call->status;
                sent = true;
            }
            sem_destroy(&sem);
            ckpt_conn_put(conn);
        }
        if (!transport_error(rc) || (flags & MC_ONCE))
            return rc;
        if (sent && !(flags & MC_IDEM))
            return rc;
        if (ckpt_now_ns() >= deadline || stopping(mc))
            return rc;
        ckpt_call_release(call);
        nap_ms(wait_ms);
        wait_ms = wait_ms * 2 > 250 ? 250 : wait_ms * 2;
    }
}

static int name_check(const char *name)
{
    if (!name)
        return -EINVAL;
    size_t len = strnlen(name, CKPT_PROTO_MAX_NAME + 1);
    if (len == 0 || memchr(name, '/', len))
        return -EINVAL;
    return len > CKPT_PROTO_MAX_NAME ? -ENAMETOOLONG : 0;
}

static int xname_check(const char *name)
{
    if (!name)
        return -ERANGE;
    size_t len = strnlen(name, CKPT_XATTR_NAME_MAX + 1);
    return len == 0 || len > CKPT_XATTR_NAME_MAX ? -ERANGE : 0;
}

/* Decode an attr reply into out (may be NULL). */
static int attr_reply(struct ckpt_call *call, int rc, struct ckpt_attr *out)
{
    struct ckpt_msg_attr_resp r;
    if (rc == 0)
        rc = ckpt_msg_attr_resp_decode(call->resp_body, call->resp_body_len, &r);
    if (rc == 0 && out)
        *out = r.attr;
    ckpt_call_release(call);
    return rc;
}

/* ---- sessions ---------------------------------------------------------------- */

static int session_call(struct ckpt_mclient *mc, uint64_t session, const char *name,
                        unsigned flags, uint32_t timeout_ms, struct ckpt_msg_session_resp *out)
{
    struct ckpt_msg_session m;
    struct ckpt_call call;
    uint8_t st[128];
    struct ckpt_wbuf w;
    int rc;

    memset(&m, 0, sizeof(m));
    m.session = session;
    snprintf(m.name, sizeof(m.name), "%s", name);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_session_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_SESSION, &w, flags, timeout_ms, &call);
    if (rc == 0 && out)
        rc = ckpt_msg_session_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

/* Replace session `old` by a new one (unless someone already did). */
static int session_recover(struct ckpt_mclient *mc, uint64_t old)
{
    struct ckpt_msg_session_resp r;
    int rc = 0;

    pthread_mutex_lock(&mc->recover_lock);
    pthread_mutex_lock(&mc->lock);
    bool replaced = mc->session != old;
    pthread_mutex_unlock(&mc->lock);
    if (!replaced) {
        rc = session_call(mc, 0, mc->name, MC_IDEM, 0, &r);
        if (rc == 0) {
            pthread_mutex_lock(&mc->lock);
            mc->session = r.session;
            mc->lease_ms = r.lease_ms;
            pthread_cond_broadcast(&mc->cond);
            pthread_mutex_unlock(&mc->lock);
            CKPT_LOG_WARN("ckpt-meta lost session %llx of %s: continuing with session %llx; "
                          "files open in the old one are gone", (unsigned long long)old,
                          mc->name, (unsigned long long)r.session);
            if (mc->session_lost)
                mc->session_lost(mc->ctx, old, r.session);
        }
    }
    pthread_mutex_unlock(&mc->recover_lock);
    return rc;
}

static void *lease_main(void *arg)
{
    struct ckpt_mclient *mc = arg;
    uint32_t wait_ms;

    pthread_mutex_lock(&mc->lock);
    wait_ms = mc->lease_ms / 3;
    while (!mc->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&mc->cond, &mc->lock, &ts);
        if (mc->stop)
            break;
        uint64_t sid = mc->session;
        uint32_t lease = mc->lease_ms;
        pthread_mutex_unlock(&mc->lock);

        struct ckpt_msg_session_resp r;
        int rc = session_call(mc, sid, mc->name, MC_ONCE, lease / 2 ? lease / 2 : 1, &r);
        if (rc == -ESTALE)
            rc = session_recover(mc, sid);
        if (rc < 0)
            CKPT_LOG_DEBUG("renewing session %llx: " CKPT_RC_FMT, (unsigned long long)sid,
                           CKPT_RC_ARGS(rc));
        pthread_mutex_lock(&mc->lock);
        /* After a failure try again soon: the lease is still running. */
        wait_ms = rc < 0 ? (mc->lease_ms / 10 ? mc->lease_ms / 10 : 1) : mc->lease_ms / 3;
    }
    pthread_mutex_unlock(&mc->lock);
    return NULL;
}

int ckpt_mclient_create(ckpt_net *net, const struct ckpt_mclient_opts *opts, ckpt_mclient **out)
{
    struct ckpt_mclient *mc;
    struct ckpt_msg_session_resp r;
    int rc;

    if (!net || !opts || !opts->host || !out)
        return -EINVAL;
    *out = NULL;
    mc = ckpt_calloc(1, sizeof(*mc));
    if (!mc)
        return -ENOMEM;
    mc->net = net;
    snprintf(mc->name, sizeof(mc->name), "%s", opts->name && opts->name[0] ? opts->name
                                                                            : "mclient");
    mc->retry_ms = opts->retry_ms ? opts->retry_ms : MC_DEFAULT_RETRY_MS;
    mc->session_lost = opts->session_lost;
    mc->ctx = opts->ctx;
    pthread_mutex_init(&mc->recover_lock, NULL);
    pthread_mutex_init(&mc->lock, NULL);
    pthread_cond_init(&mc->cond, NULL);
    rc = ckpt_peer_create(net, opts->host, opts->port, &mc->peer);
    if (rc < 0)
        goto fail;
    rc = session_call(mc, 0, mc->name, MC_ONCE, 0, &r);
    if (rc < 0)
        goto fail;
    mc->session = r.session;
    mc->lease_ms = r.lease_ms;
    rc = -pthread_create(&mc->lease, NULL, lease_main, mc);
    if (rc < 0)
        goto fail;
    mc->lease_started = true;
    *out = mc;
    return 0;
fail:
    ckpt_peer_destroy(mc->peer);
    pthread_cond_destroy(&mc->cond);
    pthread_mutex_destroy(&mc->lock);
    pthread_mutex_destroy(&mc->recover_lock);
    ckpt_free(mc);
    return rc;
}

void ckpt_mclient_destroy(ckpt_mclient *mc)
{
    if (!mc)
        return;
    pthread_mutex_lock(&mc->lock);
    mc->stop = true;
    pthread_cond_broadcast(&mc->cond);
    uint64_t sid = mc->session;
    pthread_mutex_unlock(&mc->lock);
    if (mc->lease_started)
        pthread_join(mc->lease, NULL);
    /* End the session: SESSION {id, ""} (an empty name; ckpt-meta drops
     * its opens as on expiry, see meta/meta_session.c).  Best effort. */
    (void)session_call(mc, sid, "", MC_ONCE, 2000, NULL);
    ckpt_peer_destroy(mc->peer);
    pthread_cond_destroy(&mc->cond);
    pthread_mutex_destroy(&mc->lock);
    pthread_mutex_destroy(&mc->recover_lock);
    ckpt_free(mc);
}

uint64_t ckpt_mclient_session(ckpt_mclient *mc)
{
    pthread_mutex_lock(&mc->lock);
    uint64_t s = mc->session;
    pthread_mutex_unlock(&mc->lock);
    return s;
}

/* ---- namespace ------------------------------------------------------------------ */

int ckpt_mclient_lookup(ckpt_mclient *mc, uint64_t parent, const char *name,
                        struct ckpt_attr *out)
{
    struct ckpt_msg_name m;
    struct ckpt_call call;
    uint8_t st[320];
    struct ckpt_wbuf w;
    int rc = name_check(name);

    if (rc < 0)
        return rc;
    m.parent = parent;
    snprintf(m.name, sizeof(m.name), "%s", name);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_name_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_LOOKUP, &w, MC_IDEM, 0, &call);
    ckpt_wbuf_free(&w);
    return attr_reply(&call, rc, out);
}

int ckpt_mclient_getattr(ckpt_mclient *mc, uint64_t ino, struct ckpt_attr *out)
{
    struct ckpt_msg_ino m = {ino};
    struct ckpt_call call;
    uint8_t st[16];
    struct ckpt_wbuf w;

    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_ino_encode(&w, &m);
    int rc = mc_call(mc, CKPT_OP_GETATTR, &w, MC_IDEM, 0, &call);
    ckpt_wbuf_free(&w);
    return attr_reply(&call, rc, out);
}

int ckpt_mclient_setattr(ckpt_mclient *mc, const struct ckpt_msg_setattr *sa,
                         struct ckpt_attr *out)
{
    struct ckpt_call call;
    uint8_t st[96];
    struct ckpt_wbuf w;

    if (!sa || (sa->valid & ~CKPT_SETATTR_KNOWN) || sa->atime_nsec >= 1000000000u ||
        sa->mtime_nsec >= 1000000000u)
        return -EINVAL;
    if (sa->size > (uint64_t)INT64_MAX)
        return -EFBIG;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_setattr_encode(&w, sa);
    int rc = mc_call(mc, CKPT_OP_SETATTR, &w, 0, 0, &call);
    ckpt_wbuf_free(&w);
    return attr_reply(&call, rc, out);
}

static int mknod_common(ckpt_mclient *mc, uint16_t op, uint64_t parent, const char *name,
                        uint32_t mode, uint32_t uid, uint32_t gid, uint32_t rdev,
                        struct ckpt_attr *out)
{
    struct ckpt_msg_mknod m;
    struct ckpt_call call;
    uint8_t st[320];
    struct ckpt_wbuf w;
    int rc = name_check(name);

    if (rc < 0)
        return rc;
    memset(&m, 0, sizeof(m));
    m.parent = parent;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.mode = mode;
    m.uid = uid;
    m.gid = gid;
    m.rdev = rdev;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_mknod_encode(&w, &m);
    rc = mc_call(mc, op, &w, 0, 0, &call);
    ckpt_wbuf_free(&w);
    return attr_reply(&call, rc, out);
}

int ckpt_mclient_mknod(ckpt_mclient *mc, uint64_t parent, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid, uint32_t rdev, struct ckpt_attr *out)
{
    return mknod_common(mc, CKPT_OP_MKNOD, parent, name, mode, uid, gid, rdev, out);
}

int ckpt_mclient_mkdir(ckpt_mclient *mc, uint64_t parent, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid, struct ckpt_attr *out)
{
    return mknod_common(mc, CKPT_OP_MKDIR, parent, name, mode, uid, gid, 0, out);
}

static int name_op(ckpt_mclient *mc, uint16_t op, uint64_t parent, const char *name)
{
    struct ckpt_msg_name m;
    struct ckpt_call call;
    uint8_t st[320];
    struct ckpt_wbuf w;
    int rc = name_check(name);

    if (rc < 0)
        return rc;
    m.parent = parent;
    snprintf(m.name, sizeof(m.name), "%s", name);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_name_encode(&w, &m);
    rc = mc_call(mc, op, &w, 0, 0, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_unlink(ckpt_mclient *mc, uint64_t parent, const char *name)
{
    return name_op(mc, CKPT_OP_UNLINK, parent, name);
}

int ckpt_mclient_rmdir(ckpt_mclient *mc, uint64_t parent, const char *name)
{
    return name_op(mc, CKPT_OP_RMDIR, parent, name);
}

int ckpt_mclient_rename(ckpt_mclient *mc, uint64_t oldparent, const char *oldname,
                        uint64_t newparent, const char *newname, uint32_t flags)
{
    struct ckpt_msg_rename m;
    struct ckpt_call call;
    uint8_t st[600];
    struct ckpt_wbuf w;
    int rc = name_check(oldname);

    if (rc == 0)
        rc = name_check(newname);
    if (rc < 0)
        return rc;
    if ((flags & ~(CKPT_RENAME_NOREPLACE | CKPT_RENAME_EXCHANGE)) ||
        flags == (CKPT_RENAME_NOREPLACE | CKPT_RENAME_EXCHANGE))
        return -EINVAL;
    m.oldparent = oldparent;
    snprintf(m.oldname, sizeof(m.oldname), "%s", oldname);
    m.newparent = newparent;
    snprintf(m.newname, sizeof(m.newname), "%s", newname);
    m.flags = flags;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_rename_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_RENAME, &w, 0, 0, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_link(ckpt_mclient *mc, uint64_t ino, uint64_t newparent, const char *newname,
                      struct ckpt_attr *out)
{
    struct ckpt_msg_link m;
    struct ckpt_call call;
    uint8_t st[320];
    struct ckpt_wbuf w;
    int rc = name_check(newname);

    if (rc < 0)
        return rc;
    m.ino = ino;
    m.newparent = newparent;
    snprintf(m.newname, sizeof(m.newname), "%s", newname);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_link_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_LINK, &w, 0, 0, &call);
    ckpt_wbuf_free(&w);
    return attr_reply(&call, rc, out);
}

int ckpt_mclient_symlink(ckpt_mclient *mc, uint64_t parent, const char *name,
                         const char *target, uint32_t uid, uint32_t gid, struct ckpt_attr *out)
{
    struct ckpt_msg_symlink *m;
    struct ckpt_call call;
    uint8_t st[512];
    struct ckpt_wbuf w;
    int rc = name_check(name);

    if (rc < 0)
        return rc;
    if (!target || !target[0])
        return -ENOENT;
    if (strnlen(target, CKPT_PROTO_MAX_PATH + 1) > CKPT_PROTO_MAX_PATH)
        return -ENAMETOOLONG;
    m = ckpt_malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->parent = parent;
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->target, sizeof(m->target), "%s", target);
    m->uid = uid;
    m->gid = gid;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_symlink_encode(&w, m);
    ckpt_free(m);
    rc = mc_call(mc, CKPT_OP_SYMLINK, &w, 0, 0, &call);
    ckpt_wbuf_free(&w);
    return attr_reply(&call, rc, out);
}

int ckpt_mclient_readlink(ckpt_mclient *mc, uint64_t ino, char *buf, size_t cap)
{
    struct ckpt_msg_ino m = {ino};
    struct ckpt_msg_readlink_resp *r;
    struct ckpt_call call;
    uint8_t st[16];
    struct ckpt_wbuf w;

    if (!buf || cap == 0)
        return -EINVAL;
    r = ckpt_malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_ino_encode(&w, &m);
    int rc = mc_call(mc, CKPT_OP_READLINK, &w, MC_IDEM, 0, &call);
    if (rc == 0)
        rc = ckpt_msg_readlink_resp_decode(call.resp_body, call.resp_body_len, r);
    if (rc == 0) {
        size_t len = strlen(r->target);
        if (len >= cap)
            rc = -ENAMETOOLONG;
        else
            memcpy(buf, r->target, len + 1);
    }
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    ckpt_free(r);
    return rc;
}

int ckpt_mclient_readdir(ckpt_mclient *mc, uint64_t ino, uint64_t cookie, uint32_t max,
                         int plus, struct ckpt_msg_readdir_resp *out)
{
    struct ckpt_msg_readdir m = {ino, cookie, max, plus ? 1 : 0};
    struct ckpt_call call;
    uint8_t st[32];
    struct ckpt_wbuf w;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (m.max == 0)
        m.max = 1;
    if (m.max > CKPT_READDIR_MAX)
        m.max = CKPT_READDIR_MAX;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_readdir_encode(&w, &m);
    int rc = mc_call(mc, CKPT_OP_READDIR, &w, MC_IDEM, 0, &call);
    if (rc == 0)
        rc = ckpt_msg_readdir_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_statfs(ckpt_mclient *mc, struct ckpt_msg_statfs_resp *out)
{
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[1];

    if (!out)
        return -EINVAL;
    ckpt_wbuf_init(&w, st, sizeof(st));
    int rc = mc_call(mc, CKPT_OP_STATFS, &w, MC_IDEM, 0, &call);
    if (rc == 0)
        rc = ckpt_msg_statfs_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

/* ---- xattrs ----------------------------------------------------------------------- */

int ckpt_mclient_setxattr(ckpt_mclient *mc, uint64_t ino, const char *name, const void *value,
                          size_t len, uint32_t flags)
{
    struct ckpt_msg_setxattr m;
    struct ckpt_call call;
    uint8_t st[512];
    struct ckpt_wbuf w;
    int rc = xname_check(name);

    if (rc < 0)
        return rc;
    if (len > CKPT_XATTR_VALUE_MAX)
        return -E2BIG;
    if ((len && !value) || (flags & ~(CKPT_XATTR_CREATE | CKPT_XATTR_REPLACE)) ||
        flags == (CKPT_XATTR_CREATE | CKPT_XATTR_REPLACE))
        return -EINVAL;
    memset(&m, 0, sizeof(m));
    m.ino = ino;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.flags = flags;
    m.value_len = (uint32_t)len;
    m.value = value;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_setxattr_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_SETXATTR, &w, 0, 0, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

/* Copy a value reply getxattr(2)-style.  @return its length or -ERANGE. */
static int value_reply(struct ckpt_call *call, void *buf, size_t cap)
{
    struct ckpt_msg_xattr_value v;
    int rc = ckpt_msg_xattr_value_decode(call->resp_body, call->resp_body_len, &v);
    if (rc < 0)
        return rc;
    if (buf && cap) {
        if (cap < v.len)
            return -ERANGE;
        if (v.len)
            memcpy(buf, v.data, v.len);
    }
    return (int)v.len;
}

int ckpt_mclient_getxattr(ckpt_mclient *mc, uint64_t ino, const char *name, void *buf,
                          size_t cap)
{
    struct ckpt_msg_xattr_name m;
    struct ckpt_call call;
    uint8_t st[320];
    struct ckpt_wbuf w;
    int rc = xname_check(name);

    if (rc < 0)
        return rc;
    m.ino = ino;
    snprintf(m.name, sizeof(m.name), "%s", name);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_xattr_name_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_GETXATTR, &w, MC_IDEM, 0, &call);
    if (rc == 0)
        rc = value_reply(&call, buf, cap);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_listxattr(ckpt_mclient *mc, uint64_t ino, char *buf, size_t cap)
{
    struct ckpt_msg_ino m = {ino};
    struct ckpt_call call;
    uint8_t st[16];
    struct ckpt_wbuf w;

    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_ino_encode(&w, &m);
    int rc = mc_call(mc, CKPT_OP_LISTXATTR, &w, MC_IDEM, 0, &call);
    if (rc == 0)
        rc = value_reply(&call, buf, cap);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_removexattr(ckpt_mclient *mc, uint64_t ino, const char *name)
{
    struct ckpt_msg_xattr_name m;
    struct ckpt_call call;
    uint8_t st[320];
    struct ckpt_wbuf w;
    int rc = xname_check(name);

    if (rc < 0)
        return rc;
    m.ino = ino;
    snprintf(m.name, sizeof(m.name), "%s", name);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_xattr_name_encode(&w, &m);
    rc = mc_call(mc, CKPT_OP_REMOVEXATTR, &w, 0, 0, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

/* ---- opens ---------------------------------------------------------------------------- */

static int open_reply(struct ckpt_call *call, int rc, struct ckpt_msg_open_resp *out)
{
    struct ckpt_msg_open_resp r;
    if (rc == 0)
        rc = ckpt_msg_open_resp_decode(call->resp_body, call->resp_body_len, &r);
    if (rc == 0 && out)
        *out = r;
    ckpt_call_release(call);
    return rc;
}

int ckpt_mclient_open(ckpt_mclient *mc, uint64_t ino, uint32_t flags,
                      struct ckpt_msg_open_resp *out)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct ckpt_msg_open m = {ino, flags, ckpt_mclient_session(mc)};
        struct ckpt_call call;
        uint8_t st[32];
        struct ckpt_wbuf w;
        ckpt_wbuf_init(&w, st, sizeof(st));
        (void)ckpt_msg_open_encode(&w, &m);
        rc = mc_call(mc, CKPT_OP_OPEN, &w, 0, MC_OPEN_TIMEOUT_MS, &call);
        ckpt_wbuf_free(&w);
        rc = open_reply(&call, rc, out);
        if (rc != -ESTALE || attempt == 1)
            break;
        int rrc = session_recover(mc, m.session);
        if (rrc < 0)
            return rrc;
    }
    return rc;
}

int ckpt_mclient_create_file(ckpt_mclient *mc, uint64_t parent, const char *name,
                             uint32_t mode, uint32_t uid, uint32_t gid, uint32_t flags,
                             struct ckpt_msg_open_resp *out)
{
    int rc = name_check(name);
    if (rc < 0)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct ckpt_msg_create m;
        struct ckpt_call call;
        uint8_t st[320];
        struct ckpt_wbuf w;
        memset(&m, 0, sizeof(m));
        m.parent = parent;
        snprintf(m.name, sizeof(m.name), "%s", name);
        m.mode = mode;
        m.uid = uid;
        m.gid = gid;
        m.flags = flags;
        m.session = ckpt_mclient_session(mc);
        ckpt_wbuf_init(&w, st, sizeof(st));
        (void)ckpt_msg_create_encode(&w, &m);
        rc = mc_call(mc, CKPT_OP_CREATE, &w, 0, MC_OPEN_TIMEOUT_MS, &call);
        ckpt_wbuf_free(&w);
        rc = open_reply(&call, rc, out);
        if (rc != -ESTALE || attempt == 1)
            break;
        int rrc = session_recover(mc, m.session);
        if (rrc < 0)
            return rrc;
    }
    return rc;
}

static int release_op(ckpt_mclient *mc, uint16_t op, const struct ckpt_msg_release *m,
                      unsigned flags, uint32_t timeout_ms)
{
    struct ckpt_msg_release r;
    struct ckpt_call call;
    uint8_t st[64];
    struct ckpt_wbuf w;

    if (!m || m->mtime_nsec >= 1000000000u || m->size > (uint64_t)INT64_MAX)
        return -EINVAL;
    r = *m;
    if (!r.session)
        r.session = ckpt_mclient_session(mc);
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_release_encode(&w, &r);
    int rc = mc_call(mc, op, &w, flags, timeout_ms, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_flushed(ckpt_mclient *mc, const struct ckpt_msg_release *m)
{
    return release_op(mc, CKPT_OP_FLUSHED, m, 0, 0);
}

int ckpt_mclient_release(ckpt_mclient *mc, const struct ckpt_msg_release *m)
{
    return release_op(mc, CKPT_OP_RELEASE, m, 0, 0);
}

int ckpt_mclient_closing(ckpt_mclient *mc, const struct ckpt_msg_release *m)
{
    /* Inside close(): one attempt, briefly.  Without ckpt-meta the only
     * loss is that other mounts see the new size a little later. */
    return release_op(mc, CKPT_OP_CLOSING, m, MC_ONCE, MC_CLOSING_TIMEOUT_MS);
}

int ckpt_mclient_degraded(ckpt_mclient *mc, const struct ckpt_msg_degraded *m)
{
    struct ckpt_call call;
    uint8_t st[256];
    struct ckpt_wbuf w;

    if (!m || m->n > CKPT_DEGRADED_MAX || (m->n && !m->stripes))
        return -EINVAL;
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_degraded_encode(&w, m);
    int rc = mc_call(mc, CKPT_OP_DEGRADED, &w, 0, 0, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_mclient_map(ckpt_mclient *mc, uint64_t known_epoch,
                     struct ckpt_msg_cluster_map_resp *out)
{
    struct ckpt_msg_cluster_map m = {known_epoch};
    struct ckpt_call call;
    uint8_t st[16];
    struct ckpt_wbuf w;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    ckpt_wbuf_init(&w, st, sizeof(st));
    (void)ckpt_msg_cluster_map_encode(&w, &m);
    int rc = mc_call(mc, CKPT_OP_CLUSTER_MAP, &w, MC_IDEM, 0, &call);
    if (rc == 0)
        rc = ckpt_msg_cluster_map_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

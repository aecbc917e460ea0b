/*
 * cclient.c - typed client of the checkpoint messages (cclient.h).
 *
 * DESIGN
 *   A thin layer over one ckpt_peer: encode, call, decode.  Idempotent
 *   calls are retried while the peer is unreachable (a restarting
 *   ckpt-meta) for up to CC_RETRY_MS with a short pause.  COMMIT carries
 *   the commit's own timeout (the call's is that plus slack); it is sent
 *   again after a transient failure (ckpt-meta restarted under it, or the
 *   tree changed while it committed) with what is left of that timeout:
 *   commit is idempotent at ckpt-meta.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "cclient.h"
#include "err.h"
#include "msg_meta.h"

#define CC_RETRY_MS 10000u
#define CC_CALL_TIMEOUT_MS 30000u
#define CC_COMMIT_SLACK_MS 30000u

struct ckpt_cclient {
    ckpt_peer *peer;
};

int ckpt_cclient_create(ckpt_net *net, const char *host, uint16_t port, ckpt_cclient **out)
{
    if (!net || !host || !out)
        return -EINVAL;
    *out = NULL;
    ckpt_cclient *cc = ckpt_calloc(1, sizeof(*cc));
    if (!cc)
        return -ENOMEM;
    int rc = ckpt_peer_create(net, host, port, &cc->peer);
    if (rc < 0) {
        ckpt_free(cc);
        return rc;
    }
    *out = cc;
    return 0;
}

void ckpt_cclient_destroy(ckpt_cclient *cc)
{
    if (!cc)
        return;
    ckpt_peer_destroy(cc->peer);
    ckpt_free(cc);
}

static bool transient(int rc)
{
    return rc == -ECONNREFUSED || rc == CKPT_E_CLOSED || rc == -ECONNRESET ||
           rc == -EHOSTUNREACH || rc == -EAGAIN;
}

/* Call op with body w; on success the caller owns call->resp_body. */
static int cc_call(ckpt_cclient *cc, uint16_t op, const struct ckpt_wbuf *w, uint32_t timeout_ms,
                   bool retry, struct ckpt_call *call)
{
    uint64_t end = ckpt_now_ns() + (uint64_t)CC_RETRY_MS * 1000000ull;
    for (;;) {
        memset(call, 0, sizeof(*call));
        call->opcode = op;
        call->body = w->p;
        call->body_len = (uint32_t)w->len;
        call->timeout_ms = timeout_ms;
        int rc = ckpt_peer_call(cc->peer, call);
        if (rc == 0)
            rc = call->status;
        if (rc == 0 || !retry || !transient(rc) || ckpt_now_ns() >= end)
            return rc;
        ckpt_call_release(call);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int ckpt_cclient_commit(ckpt_cclient *cc, uint64_t ino, uint32_t timeout_ms, uint32_t flags,
                        struct ckpt_ckpt_info *out)
{
    struct ckpt_msg_ckpt_commit m = {ino, timeout_ms, flags};
    struct ckpt_wbuf w;
    struct ckpt_call call;
    uint8_t buf[32];
    uint32_t total = timeout_ms ? timeout_ms : 60000u;
    uint64_t end = ckpt_now_ns() + (uint64_t)total * 1000000ull;
    int rc;
    for (;;) {
        ckpt_wbuf_init(&w, buf, sizeof(buf));
        rc = ckpt_msg_ckpt_commit_encode(&w, &m);
        if (rc == 0) {
            rc = cc_call(cc, CKPT_OP_CKPT_COMMIT, &w, m.timeout_ms + CC_COMMIT_SLACK_MS, false,
                         &call);
            if (rc == 0)
                rc = ckpt_msg_ckpt_info_decode(call.resp_body, call.resp_body_len, out);
            ckpt_call_release(&call);
        }
        ckpt_wbuf_free(&w);
        uint64_t now = ckpt_now_ns();
        if (rc == 0 || !transient(rc) || now + 500000000ull >= end)
            return rc;
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
        uint64_t left_ms = (end - ckpt_now_ns()) / 1000000ull;
        m.timeout_ms = left_ms ? (uint32_t)left_ms : 1;
    }
}

static int ino_call(ckpt_cclient *cc, uint16_t op, uint64_t ino, struct ckpt_call *call)
{
    struct ckpt_msg_ino m = {ino};
    struct ckpt_wbuf w;
    uint8_t buf[16];
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = ckpt_msg_ino_encode(&w, &m);
    if (rc == 0)
        rc = cc_call(cc, op, &w, CC_CALL_TIMEOUT_MS, true, call);
    else
        memset(call, 0, sizeof(*call));
    ckpt_wbuf_free(&w);
    return rc;
}

int ckpt_cclient_list(ckpt_cclient *cc, uint64_t ino, struct ckpt_msg_ckpt_list_resp *out)
{
    struct ckpt_call call;
    memset(out, 0, sizeof(*out));
    int rc = ino_call(cc, CKPT_OP_CKPT_LIST, ino, &call);
    if (rc == 0)
        rc = ckpt_msg_ckpt_list_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    return rc;
}

int ckpt_cclient_info(ckpt_cclient *cc, uint64_t ino, struct ckpt_ckpt_info *out)
{
    struct ckpt_call call;
    int rc = ino_call(cc, CKPT_OP_CKPT_INFO, ino, &call);
    if (rc == 0)
        rc = ckpt_msg_ckpt_info_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    return rc;
}

int ckpt_cclient_manifest(ckpt_cclient *cc, uint64_t ino, uint64_t cookie, uint32_t max,
                          struct ckpt_msg_manifest_resp *out)
{
    struct ckpt_msg_manifest m = {ino, cookie, max};
    struct ckpt_wbuf w;
    struct ckpt_call call;
    uint8_t buf[32];
    memset(out, 0, sizeof(*out));
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = ckpt_msg_manifest_encode(&w, &m);
    if (rc == 0) {
        rc = cc_call(cc, CKPT_OP_CKPT_MANIFEST, &w, CC_CALL_TIMEOUT_MS, true, &call);
        if (rc == 0)
            rc = ckpt_msg_manifest_resp_decode(call.resp_body, call.resp_body_len, out);
        ckpt_call_release(&call);
    }
    ckpt_wbuf_free(&w);
    return rc;
}

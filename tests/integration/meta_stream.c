/*
 * meta_stream.c - test helper for tests/integration/test_meta*.sh: a
 * client of a real ckpt-meta (builds to build/tests/meta_stream).
 *
 *   meta_stream KEYFILE PORT nodes N
 *       register N fake storage nodes (one 1 TiB target each, no rack)
 *       through NODE_REGISTER and heartbeat them every 200 ms until killed;
 *       prints "up" once they are all UP.
 *   meta_stream KEYFILE PORT create DIR PREFIX COUNT
 *       create DIR under the root (if missing), then files PREFIX-000000,
 *       ... one after the other (CREATE then RELEASE), printing
 *       "try NAME" before each and "ok NAME" once ckpt-meta acknowledged
 *       it; stops at the first error ("err NAME CODE", exit status 3).
 *       COUNT 0: until an error.
 *   meta_stream KEYFILE PORT list DIR
 *       print every name in DIR, one a line (paged READDIR).
 *
 * The kill -9 test compares what "list" shows after a restart with what
 * "create" saw acknowledged: every "ok" name must be there, and nothing
 * else but the one name that was in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "log.h"
#include "mclient.h"
#include "msg_cluster.h"
#include "net.h"

struct fake_node {
    struct ckpt_msg_node_register reg;
    uint32_t id, tid;
};

static int call_body(ckpt_conn *c, uint16_t op, struct ckpt_wbuf *w, struct ckpt_call *call)
{
    memset(call, 0, sizeof(*call));
    call->opcode = op;
    call->body = w->p;
    call->body_len = (uint32_t)w->len;
    return w->err ? w->err : ckpt_conn_call(c, call);
}

static int node_register(ckpt_conn *c, struct fake_node *n)
{
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[1024];
    struct ckpt_msg_node_register_resp r;
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_node_register_encode(&w, &n->reg);
    int rc = call_body(c, CKPT_OP_NODE_REGISTER, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_node_register_resp_decode(call.resp_body, call.resp_body_len, &r);
    if (rc == 0) {
        n->id = n->reg.node_id = r.node_id;
        n->tid = n->reg.t[0].id = r.target_ids[0];
    }
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static int node_heartbeat(ckpt_conn *c, struct fake_node *n)
{
    struct ckpt_msg_heartbeat hb;
    struct ckpt_call call;
    struct ckpt_wbuf w;
    uint8_t st[256];
    memset(&hb, 0, sizeof(hb));
    hb.node_id = n->id;
    memcpy(hb.uuid, n->reg.uuid, sizeof(hb.uuid));
    hb.n = 1;
    hb.t[0].id = n->tid;
    hb.t[0].capacity = n->reg.t[0].capacity;
    hb.t[0].free = n->reg.t[0].free;
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_msg_heartbeat_encode(&w, &hb);
    int rc = call_body(c, CKPT_OP_HEARTBEAT, &w, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static int run_nodes(ckpt_net *net, uint16_t port, int count)
{
    static struct fake_node nodes[64];
    ckpt_conn *c = NULL;
    bool said_up = false;
    if (count < 1 || count > 64)
        return 2;
    for (int i = 0; i < count; i++) {
        struct ckpt_msg_node_register *r = &nodes[i].reg;
        if (getrandom(r->uuid, sizeof(r->uuid), 0) != (ssize_t)sizeof(r->uuid))
            return 1;
        snprintf(r->name, sizeof(r->name), "fake%d", i);
        snprintf(r->host, sizeof(r->host), "127.0.0.1");
        r->port = 9; /* nothing serves chunks: deletions stay queued */
        r->transports = CKPT_XPORT_TCP;
        r->n = 1;
        r->t[0].capacity = 1ull << 40;
        r->t[0].free = 1ull << 39;
        snprintf(r->t[0].path, sizeof(r->t[0].path), "/fake/%d", i);
    }
    for (;;) {
        if (!c || !ckpt_conn_is_open(c)) {
            ckpt_conn_close(c);
            c = NULL;
            if (ckpt_net_connect(net, "127.0.0.1", port, NULL, NULL, &c) < 0) {
                c = NULL;
                usleep(100000);
                continue;
            }
        }
        int ok = 0;
        for (int i = 0; i < count; i++) {
            int rc = nodes[i].id ? node_heartbeat(c, &nodes[i]) : -ENOENT;
            if (rc == -ENOENT)
                rc = node_register(c, &nodes[i]) == 0 ? node_heartbeat(c, &nodes[i]) : -EIO;
            ok += rc == 0;
        }
        if (ok == count && !said_up) {
            printf("up\n");
            fflush(stdout);
            said_up = true;
        }
        usleep(200000);
    }
}

static int run_create(ckpt_mclient *mc, const char *dir, const char *prefix, long count)
{
    struct ckpt_attr d;
    char name[128];
    int rc = ckpt_mclient_mkdir(mc, CKPT_ROOT_INO, dir, 0755, 0, 0, &d);
    if (rc == -EEXIST)
        rc = ckpt_mclient_lookup(mc, CKPT_ROOT_INO, dir, &d);
    if (rc < 0) {
        printf("err %s %d\n", dir, rc);
        return 3;
    }
    for (long i = 0; count == 0 || i < count; i++) {
        struct ckpt_msg_open_resp o;
        struct ckpt_msg_release r;
        snprintf(name, sizeof(name), "%s-%06ld", prefix, i);
        printf("try %s\n", name);
        fflush(stdout);
        rc = ckpt_mclient_create_file(mc, d.ino, name, 0644, 0, 0, O_CREAT | O_EXCL | O_WRONLY,
                                      &o);
        if (rc == 0) {
            memset(&r, 0, sizeof(r));
            r.ino = o.attr.ino;
            r.handle = o.handle;
            r.wrote = 1;
            r.size = (uint64_t)i;
            rc = ckpt_mclient_release(mc, &r);
        }
        if (rc < 0) {
            printf("err %s %d\n", name, rc);
            fflush(stdout);
            return 3;
        }
        printf("ok %s\n", name);
        fflush(stdout);
    }
    return 0;
}

static int run_list(ckpt_mclient *mc, const char *dir)
{
    struct ckpt_attr d;
    struct ckpt_msg_readdir_resp r;
    uint64_t cookie = 0;
    int rc = ckpt_mclient_lookup(mc, CKPT_ROOT_INO, dir, &d);
    if (rc < 0) {
        fprintf(stderr, "meta_stream: %s: %s\n", dir, ckpt_strerror(rc));
        return 3;
    }
    for (;;) {
        rc = ckpt_mclient_readdir(mc, d.ino, cookie, CKPT_READDIR_MAX, 0, &r);
        if (rc < 0) {
            fprintf(stderr, "meta_stream: readdir: %s\n", ckpt_strerror(rc));
            return 3;
        }
        for (uint32_t i = 0; i < r.n; i++) {
            printf("%s\n", r.ents[i].name);
            cookie = r.ents[i].next_cookie;
        }
        int eof = r.eof;
        ckpt_msg_readdir_resp_free(&r);
        if (eof)
            return 0;
    }
}

int main(int argc, char **argv)
{
    struct ckpt_net_opts no;
    ckpt_net *net = NULL;
    ckpt_mclient *mc = NULL;
    int rc;

    if (argc < 4) {
        fprintf(stderr, "usage: meta_stream KEYFILE PORT nodes N | create DIR PREFIX COUNT | "
                        "list DIR\n");
        return 2;
    }
    ckpt_log_init("meta_stream", CKPT_LOG_LVL_ERR);
    memset(&no, 0, sizeof(no));
    no.name = "meta_stream";
    if (ckpt_auth_init() < 0 || ckpt_auth_key_load(argv[1], no.key, NULL) < 0) {
        fprintf(stderr, "meta_stream: cannot load the key %s\n", argv[1]);
        return 2;
    }
    uint16_t port = (uint16_t)atoi(argv[2]);
    if (ckpt_net_create(&no, &net) < 0)
        return 1;
    if (!strcmp(argv[3], "nodes") && argc == 5)
        return run_nodes(net, port, atoi(argv[4]));
    struct ckpt_mclient_opts mo = {.host = "127.0.0.1", .port = port, .name = "meta_stream",
                                   .retry_ms = 2000};
    rc = ckpt_mclient_create(net, &mo, &mc);
    if (rc < 0) {
        fprintf(stderr, "meta_stream: cannot reach ckpt-meta: %s\n", ckpt_strerror(rc));
        printf("err session %d\n", rc);
        return 3;
    }
    if (!strcmp(argv[3], "create") && argc == 7)
        rc = run_create(mc, argv[4], argv[5], atol(argv[6]));
    else if (!strcmp(argv[3], "list") && argc == 5)
        rc = run_list(mc, argv[4]);
    else
        rc = 2;
    ckpt_mclient_destroy(mc);
    ckpt_net_destroy(net);
    return rc;
}

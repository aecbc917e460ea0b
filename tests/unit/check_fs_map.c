/*
 * check_fs_map.c - unit tests for fs/fs_map (the FUSE client's cluster map):
 * targets resolve to their node's peer and state; DOWN/OUT and unknown
 * targets are unusable; a connection error makes a node suspect (and only a
 * connection error); a node that changes address keeps its peer object; a
 * node leaving the map becomes unusable; "unchanged" replies change nothing.
 * The map is fed by a fake fetch function (no ckpt-meta involved).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "err.h"
#include "fs_map.h"
#include "net.h"

Suite *fs_map_suite(void);

struct fake {
    int fetches;
    int fail;            /* return this instead of a map */
    int unchanged;
    uint64_t epoch;
    uint32_t n_nodes;
    struct ckpt_map_node nodes[4];
    uint32_t n_targets;
    struct ckpt_map_target targets[8];
};

static int fake_fetch(void *ctx, uint64_t known, struct ckpt_msg_cluster_map_resp *out)
{
    struct fake *f = ctx;
    f->fetches++;
    if (f->fail)
        return f->fail;
    memset(out, 0, sizeof(*out));
    out->epoch = f->epoch;
    if (f->unchanged || known == f->epoch) {
        out->unchanged = 1;
        return 0;
    }
    out->n_nodes = f->n_nodes;
    out->nodes = ckpt_calloc(f->n_nodes, sizeof(*out->nodes));
    out->n_targets = f->n_targets;
    out->targets = ckpt_calloc(f->n_targets, sizeof(*out->targets));
    ck_assert_ptr_nonnull(out->nodes);
    ck_assert_ptr_nonnull(out->targets);
    memcpy(out->nodes, f->nodes, f->n_nodes * sizeof(*out->nodes));
    memcpy(out->targets, f->targets, f->n_targets * sizeof(*out->targets));
    return 0;
}

static void add_node(struct fake *f, uint32_t id, uint32_t state, uint16_t port)
{
    struct ckpt_map_node *n = &f->nodes[f->n_nodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->state = state;
    snprintf(n->name, sizeof(n->name), "n%u", id);
    snprintf(n->host, sizeof(n->host), "127.0.0.1");
    n->port = port;
    n->transports = CKPT_XPORT_TCP;
}

static void add_target(struct fake *f, uint32_t id, uint32_t node, uint32_t state)
{
    struct ckpt_map_target *t = &f->targets[f->n_targets++];
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->node_id = node;
    t->state = state;
}

static ckpt_net *new_net(void)
{
    struct ckpt_net_opts o;
    ckpt_net *net = NULL;
    memset(&o, 0, sizeof(o));
    o.name = "check";
    ck_assert_int_eq(ckpt_net_create(&o, &net), 0);
    return net;
}

START_TEST(test_resolve_and_states)
{
    struct fake f = {.epoch = 5};
    ckpt_net *net = new_net();
    fs_map *m = NULL;
    ckpt_peer *p1 = NULL, *p2 = NULL, *px = NULL;
    enum fs_target_state st;

    add_node(&f, 1, CKPT_NODE_UP, 7001);
    add_node(&f, 2, CKPT_NODE_DOWN, 7002);
    add_node(&f, 3, CKPT_NODE_DRAINING, 7003);
    add_target(&f, 10, 1, CKPT_NODE_UP);
    add_target(&f, 11, 1, CKPT_NODE_UP);
    add_target(&f, 20, 2, CKPT_NODE_DOWN);
    add_target(&f, 30, 3, CKPT_NODE_DRAINING);
    ck_assert_int_eq(fs_map_create(net, fake_fetch, &f, 5, &m), -EINVAL);
    ck_assert_int_eq(fs_map_create(net, fake_fetch, &f, 60000, &m), 0);
    ck_assert_uint_eq(fs_map_epoch(m), 0);
    ck_assert_int_eq(fs_map_target(m, 10, &p1, &st), -ENOENT);
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert_uint_eq(fs_map_epoch(m), 5);

    ck_assert_int_eq(fs_map_target(m, 10, &p1, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_OK);
    ck_assert_int_eq(fs_map_target(m, 11, &px, &st), 0);
    ck_assert_ptr_eq(px, p1); /* one peer per node */
    ck_assert_int_eq(fs_map_target(m, 20, &p2, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_DOWN);
    ck_assert_ptr_ne(p2, p1);
    ck_assert_int_eq(fs_map_target(m, 30, &px, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_OK); /* draining still serves */
    ck_assert_int_eq(fs_map_target(m, 99, &px, &st), -ENOENT);

    /* Only connection-level errors make a node suspect. */
    fs_map_suspect(m, 10, -ENOENT);
    fs_map_suspect(m, 10, CKPT_E_CRC);
    ck_assert_int_eq(fs_map_target(m, 10, &px, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_OK);
    fs_map_suspect(m, 10, -ECONNREFUSED);
    ck_assert_int_eq(fs_map_target(m, 11, &px, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_SUSPECT); /* the whole node */
    fs_map_absolve(m, 11);
    ck_assert_int_eq(fs_map_target(m, 10, &px, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_OK);

    struct fs_map_stats ms;
    fs_map_get_stats(m, &ms);
    ck_assert_uint_eq(ms.nodes, 3);
    ck_assert_uint_eq(ms.targets, 4);
    ck_assert_uint_eq(ms.suspects, 1);

    fs_map_destroy(m);
    ckpt_net_destroy(net);
}
END_TEST

START_TEST(test_changes)
{
    struct fake f = {.epoch = 1};
    ckpt_net *net = new_net();
    fs_map *m = NULL;
    ckpt_peer *p1 = NULL, *px = NULL;
    enum fs_target_state st;

    add_node(&f, 1, CKPT_NODE_UP, 7001);
    add_node(&f, 2, CKPT_NODE_DOWN, 7002);
    add_target(&f, 10, 1, CKPT_NODE_UP);
    add_target(&f, 20, 2, CKPT_NODE_DOWN);
    ck_assert_int_eq(fs_map_create(net, fake_fetch, &f, 60000, &m), 0);
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert_int_eq(fs_map_target(m, 10, &p1, &st), 0);
    fs_map_suspect(m, 20, CKPT_E_CLOSED);

    /* Same epoch: unchanged, nothing applied. */
    ck_assert_int_eq(fs_map_refresh(m), 0);
    struct fs_map_stats ms;
    fs_map_get_stats(m, &ms);
    ck_assert_uint_eq(ms.changes, 1);
    ck_assert_uint_ge(ms.fetches, 2); /* the suspect() kick may add one */

    /* Epoch 2: node 1 moved, node 2 came back, target 30 appeared. */
    f.epoch = 2;
    f.nodes[0].port = 7101;
    f.nodes[1].state = CKPT_NODE_UP;
    f.targets[1].state = CKPT_NODE_UP;
    add_target(&f, 30, 2, CKPT_NODE_UP);
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert_int_eq(fs_map_target(m, 10, &px, &st), 0);
    ck_assert_ptr_eq(px, p1);
    ck_assert_int_eq(st, FS_TARGET_OK);
    ck_assert_int_eq(fs_map_target(m, 20, &px, &st), 0);
    ck_assert_int_eq(st, FS_TARGET_OK); /* back UP clears our suspicion */
    ck_assert_int_eq(fs_map_target(m, 30, &px, &st), 0);

    /* Epoch 3: node 2 left the map. */
    f.epoch = 3;
    f.n_nodes = 1;
    f.n_targets = 1;
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert_int_eq(fs_map_target(m, 20, &px, &st), -ENOENT);
    ck_assert_int_eq(fs_map_target(m, 10, &px, &st), 0);

    /* A failing fetch keeps the map in force. */
    f.fail = -ECONNREFUSED;
    ck_assert_int_eq(fs_map_refresh(m), -ECONNREFUSED);
    ck_assert_uint_eq(fs_map_epoch(m), 3);
    ck_assert_int_eq(fs_map_target(m, 10, &px, &st), 0);

    fs_map_destroy(m);
    fs_map_destroy(NULL);
    ckpt_net_destroy(net);
}
END_TEST

/* Where same-host reads find a target's chunk files: remembered per
 * target, kept across map changes that leave the target on its node at
 * its address, dropped when the node moves, when told to forget, and
 * hidden while short-circuit reads of the node are off. */
START_TEST(test_local_root)
{
    struct fake f = {.epoch = 1};
    ckpt_net *net = new_net();
    fs_map *m = NULL;
    char buf[64];

    add_node(&f, 1, CKPT_NODE_UP, 7001);
    add_node(&f, 2, CKPT_NODE_UP, 7002);
    add_target(&f, 10, 1, CKPT_NODE_UP);
    add_target(&f, 20, 2, CKPT_NODE_UP);
    ck_assert_int_eq(fs_map_create(net, fake_fetch, &f, 60000, &m), 0);
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert(!fs_map_local_root_known(m, 10));
    ck_assert_uint_eq(fs_map_local_root(m, 10, buf, sizeof(buf)), 0);

    fs_map_set_local_root(m, 10, "/srv/t10/chunksXYZ", 15); /* len, not NUL */
    fs_map_set_local_root(m, 20, "/srv/t20/chunks", 15);
    fs_map_set_local_root(m, 99, "/nowhere", 8);             /* unknown target */
    ck_assert(fs_map_local_root_known(m, 10));
    ck_assert_uint_eq(fs_map_local_root(m, 10, buf, sizeof(buf)), 15);
    ck_assert_str_eq(buf, "/srv/t10/chunks");
    ck_assert_uint_eq(fs_map_local_root(m, 10, buf, 15), 0); /* no room for the NUL */
    ck_assert(!fs_map_local_root_known(m, 99));

    /* Epoch 2: another target appears; 10 and 20 stay put. */
    f.epoch = 2;
    add_target(&f, 30, 2, CKPT_NODE_UP);
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert_uint_eq(fs_map_local_root(m, 10, buf, sizeof(buf)), 15);
    ck_assert_uint_eq(fs_map_local_root(m, 20, buf, sizeof(buf)), 15);
    ck_assert_str_eq(buf, "/srv/t20/chunks");

    /* Epoch 3: node 1 moves: its target's directory is forgotten. */
    f.epoch = 3;
    f.nodes[0].port = 7101;
    ck_assert_int_eq(fs_map_refresh(m), 0);
    ck_assert(!fs_map_local_root_known(m, 10));
    ck_assert(fs_map_local_root_known(m, 20));

    /* Short-circuit reads of node 2 off for a while: hidden, not lost. */
    fs_map_local_off(m, 20, 200);
    ck_assert(!fs_map_local_root_known(m, 20));
    ck_assert_uint_eq(fs_map_local_root(m, 20, buf, sizeof(buf)), 0);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};
    nanosleep(&ts, NULL);
    ck_assert(fs_map_local_root_known(m, 20));

    fs_map_forget_local_root(m, 20);
    ck_assert(!fs_map_local_root_known(m, 20));
    fs_map_forget_local_root(m, 99);

    fs_map_destroy(m);
    ckpt_net_destroy(net);
}
END_TEST

START_TEST(test_background_refresh)
{
    struct fake f = {.epoch = 1};
    ckpt_net *net = new_net();
    fs_map *m = NULL;
    ckpt_peer *px;
    enum fs_target_state st;

    add_node(&f, 1, CKPT_NODE_UP, 7001);
    add_target(&f, 10, 1, CKPT_NODE_UP);
    ck_assert_int_eq(fs_map_create(net, fake_fetch, &f, 20, &m), 0);
    /* No synchronous refresh: the thread must load it by itself. */
    uint64_t t0 = ckpt_now_ns();
    while (fs_map_target(m, 10, &px, &st) < 0 && ckpt_now_ns() - t0 < 5000000000ull) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    ck_assert_int_eq(fs_map_target(m, 10, &px, &st), 0);
    fs_map_destroy(m);
    ckpt_net_destroy(net);
}
END_TEST

START_TEST(test_conn_errors)
{
    ck_assert(fs_map_is_conn_error(CKPT_E_CLOSED));
    ck_assert(fs_map_is_conn_error(-ETIMEDOUT));
    ck_assert(fs_map_is_conn_error(-ECONNREFUSED));
    ck_assert(!fs_map_is_conn_error(0));
    ck_assert(!fs_map_is_conn_error(-ENOENT));
    ck_assert(!fs_map_is_conn_error(CKPT_E_CRC));
    ck_assert(!fs_map_is_conn_error(-ENOSPC));
}
END_TEST

Suite *fs_map_suite(void)
{
    Suite *s = suite_create("fs_map");
    TCase *tc = tcase_create("map");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_resolve_and_states);
    tcase_add_test(tc, test_changes);
    tcase_add_test(tc, test_local_root);
    tcase_add_test(tc, test_background_refresh);
    tcase_add_test(tc, test_conn_errors);
    suite_add_tcase(s, tc);
    return s;
}

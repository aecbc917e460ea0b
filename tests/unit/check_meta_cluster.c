/*
 * check_meta_cluster.c - ckpt-meta's node registry, failure detection,
 * placement and deletion queue, against a real meta_server in this process
 * (check_meta_fixture.h) with fake nodes speaking the real NODE_REGISTER
 * and HEARTBEAT messages.
 *
 * Covers: node and target ids assigned, persisted and kept on
 * re-registration (also across a ckpt-meta restart); a node is UP only
 * after registration + first heartbeat; a heartbeat from an unknown node
 * gets -ENOENT; heartbeat silence moves a node UP -> DOWN -> OUT with the
 * timeouts of the configuration ([meta] down_after/out_after through
 * ckpt_config) and a heartbeat brings it back; the epoch grows on every
 * change; placement puts a file's targets on distinct racks (or nodes),
 * uses every target, prefers free space, never picks full or DOWN targets,
 * and fails with ENOSPC when there are fewer than k+m domains; statfs
 * leaves OUT nodes out; queued chunk deletions are retried until the node
 * answers.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "check_meta_fixture.h"
#include "config.h"

Suite *meta_cluster_suite(void);

static void setup(void)
{
    mfx_setup_with(NULL);
}

static void fast_detect(struct meta_server_opts *o)
{
    o->down_after_ms = 300;
    o->out_after_ms = 700;
}

static void setup_fast(void)
{
    mfx_setup_with(fast_detect);
}

/* [meta] down_after = 1s, out_after = 2s, through the config module. */
static void from_config(struct meta_server_opts *o)
{
    static struct ckpt_config cfg;
    char err[256];
    struct meta_server_opts keep = *o;
    ckpt_config_init(&cfg);
    ck_assert_int_eq(ckpt_config_set(&cfg, "meta", "down_after", "1s", "test", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_set(&cfg, "meta", "out_after", "2s", "test", err, sizeof(err)), 0);
    ck_assert_int_eq(ckpt_config_check(&cfg, err, sizeof(err)), 0);
    meta_server_opts_from_config(&cfg, o);
    ck_assert_uint_eq(o->down_after_ms, 1000);
    ck_assert_uint_eq(o->out_after_ms, 2000);
    /* Address, directory and key of the test. */
    memcpy(o->listen_host, keep.listen_host, sizeof(o->listen_host));
    o->listen_port = 0;
    memcpy(o->data_dir, keep.data_dir, sizeof(o->data_dir));
    memcpy(o->key, keep.key, sizeof(o->key));
    o->map_size_bytes = keep.map_size_bytes;
}

static void setup_config(void)
{
    mfx_setup_with(from_config);
}

static uint64_t epoch(void)
{
    struct ckpt_msg_cluster_map_resp m;
    mfx_map(&m);
    uint64_t e = m.epoch;
    ckpt_msg_cluster_map_resp_free(&m);
    return e;
}

static int create(uint64_t parent, const char *name, struct ckpt_msg_open_resp *o)
{
    return ckpt_mclient_create_file(F.mc, parent, name, 0644, 0, 0, O_CREAT | O_WRONLY, o);
}

static void release(const struct ckpt_msg_open_resp *o)
{
    struct ckpt_msg_release r;
    memset(&r, 0, sizeof(r));
    r.ino = o->attr.ino;
    r.handle = o->handle;
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);
}

/* Index of the fixture node that owns target tid, or -1. */
static int owner(uint32_t tid)
{
    for (int i = 0; i < F.nnodes; i++)
        for (uint32_t t = 0; t < F.nodes[i].n; t++)
            if (F.nodes[i].tids[t] == tid)
                return i;
    return -1;
}

/* ---- registration ----------------------------------------------------------- */

START_TEST(test_register_and_ids)
{
    struct ckpt_msg_cluster_map_resp m;
    uint64_t e0, e1, e2;

    int a = mfx_node_add("alpha", "r1", 2, 1000ull << 30, 900ull << 30);
    int b = mfx_node_add("beta", NULL, 3, 500ull << 30, 100ull << 30);
    e0 = epoch();
    ck_assert_int_eq(mfx_register(a), 0);
    ck_assert_int_eq(mfx_register(b), 0);
    ck_assert_uint_eq(F.nodes[a].id, 1);
    ck_assert_uint_eq(F.nodes[b].id, 2);
    ck_assert_uint_eq(F.nodes[a].tids[0], 1);
    ck_assert_uint_eq(F.nodes[a].tids[1], 2);
    ck_assert_uint_eq(F.nodes[b].tids[2], 5);
    e1 = epoch();
    ck_assert_uint_gt(e1, e0);
    /* Registered but not heard yet: not UP. */
    ck_assert_uint_eq(mfx_node_state(F.nodes[a].id), CKPT_NODE_DOWN);
    ck_assert_int_eq(mfx_heartbeat(a, &e2), 0);
    ck_assert_uint_gt(e2, e1);
    ck_assert_uint_eq(mfx_node_state(F.nodes[a].id), CKPT_NODE_UP);
    ck_assert_uint_eq(mfx_node_state(F.nodes[b].id), CKPT_NODE_DOWN);

    mfx_map(&m);
    ck_assert_uint_eq(m.n_nodes, 2);
    ck_assert_uint_eq(m.n_targets, 5);
    ck_assert_str_eq(m.cluster, "test");
    ck_assert_uint_eq(m.layout.k, 4);
    ck_assert_uint_eq(m.layout.m, 2);
    for (uint32_t i = 0; i < m.n_nodes; i++) {
        if (m.nodes[i].id == F.nodes[a].id) {
            ck_assert_str_eq(m.nodes[i].name, "alpha");
            ck_assert_str_eq(m.nodes[i].rack, "r1");
            ck_assert_uint_eq(m.nodes[i].port, F.node_port);
        }
    }
    for (uint32_t i = 0; i < m.n_targets; i++)
        if (m.targets[i].node_id == F.nodes[a].id)
            ck_assert_uint_eq(m.targets[i].free, 900ull << 30);
    /* Known epoch: "unchanged". */
    struct ckpt_msg_cluster_map_resp u;
    ck_assert_int_eq(ckpt_mclient_map(F.mc, m.epoch, &u), 0);
    ck_assert_uint_eq(u.unchanged, 1);
    ck_assert_uint_eq(u.n_nodes, 0);
    ckpt_msg_cluster_map_resp_free(&u);
    ckpt_msg_cluster_map_resp_free(&m);

    /* Registering again keeps the ids: by uuid even without the node id,
     * and the target ids it presents. */
    uint32_t aid = F.nodes[a].id, t0 = F.nodes[a].tids[0], t1 = F.nodes[a].tids[1];
    F.nodes[a].id = 0;
    ck_assert_int_eq(mfx_register(a), 0);
    ck_assert_uint_eq(F.nodes[a].id, aid);
    ck_assert_uint_eq(F.nodes[a].tids[0], t0);
    ck_assert_uint_eq(F.nodes[a].tids[1], t1);
    /* A target id owned by another node is not taken over. */
    F.nodes[b].tids[0] = t0;
    ck_assert_int_eq(mfx_register(b), 0);
    ck_assert_uint_ne(F.nodes[b].tids[0], t0);
    ck_assert_uint_eq(F.nodes[b].tids[0], 6);

    /* An unknown node is told to register. */
    struct mfx_node save = F.nodes[b];
    F.nodes[b].uuid[0] ^= 0xff;
    ck_assert_int_eq(mfx_heartbeat(b, NULL), -ENOENT);
    F.nodes[b].id = 77;
    ck_assert_int_eq(mfx_heartbeat(b, NULL), -ENOENT);
    F.nodes[b] = save;
    ck_assert_int_eq(mfx_heartbeat(b, NULL), 0);

    /* After a restart of ckpt-meta: same ids, known nodes UP at once. */
    mfx_server_stop();
    ckpt_conn_close(F.nconn);
    F.nconn = NULL;
    F.opts.listen_port = F.port;
    mfx_server_start();
    ck_assert_uint_eq(mfx_node_state(aid), CKPT_NODE_UP);
    ck_assert_uint_gt(epoch(), e2); /* epochs only grow */
    F.nodes[a].id = 0;
    memset(F.nodes[a].tids, 0, sizeof(F.nodes[a].tids));
    ck_assert_int_eq(mfx_register(a), 0);
    ck_assert_uint_eq(F.nodes[a].id, aid);
    /* Targets presented without ids get new ones. */
    ck_assert_uint_gt(F.nodes[a].tids[0], 6);
}
END_TEST

/* ---- failure detection ---------------------------------------------------------- */

START_TEST(test_heartbeat_timeout_down_out)
{
    uint64_t e0, t0, t_down, t_out;

    int a = mfx_node_add("a", NULL, 1, 1ull << 40, 1ull << 40);
    mfx_node_add("b", NULL, 1, 1ull << 40, 1ull << 40);
    mfx_nodes_up();
    uint32_t id = F.nodes[a].id;
    ck_assert_uint_eq(mfx_node_state(id), CKPT_NODE_UP);
    e0 = epoch();
    /* a goes silent; b keeps heartbeating. */
    mfx_set_alive(a, 0);
    t0 = mfx_ms();
    MFX_WAIT_FOR(mfx_node_state(id) == CKPT_NODE_DOWN, 3000);
    t_down = mfx_ms() - t0;
    ck_assert_uint_eq(mfx_node_state(id), CKPT_NODE_DOWN);
    ck_assert_uint_ge(t_down, 800);
    uint64_t e1 = epoch();
    ck_assert_uint_gt(e1, e0);
    MFX_WAIT_FOR(mfx_node_state(id) == CKPT_NODE_OUT, 3000);
    t_out = mfx_ms() - t0;
    ck_assert_uint_eq(mfx_node_state(id), CKPT_NODE_OUT);
    ck_assert_uint_ge(t_out, 1800);
    ck_assert_uint_gt(epoch(), e1);
    ck_assert_uint_eq(mfx_node_state(F.nodes[1].id), CKPT_NODE_UP);
    /* The map shows its target OUT too, and its last heartbeat's age. */
    struct ckpt_msg_cluster_map_resp m;
    mfx_map(&m);
    for (uint32_t i = 0; i < m.n_targets; i++)
        if (m.targets[i].node_id == id)
            ck_assert_uint_eq(m.targets[i].state, CKPT_NODE_OUT);
    for (uint32_t i = 0; i < m.n_nodes; i++)
        if (m.nodes[i].id == id)
            ck_assert_uint_ge(m.nodes[i].last_seen_ms, 1800);
    ckpt_msg_cluster_map_resp_free(&m);
    /* Back to UP with a heartbeat. */
    uint64_t e2 = epoch(), e3 = 0;
    ck_assert_int_eq(mfx_heartbeat(a, &e3), 0);
    ck_assert_uint_gt(e3, e2);
    ck_assert_uint_eq(mfx_node_state(id), CKPT_NODE_UP);
}
END_TEST

/* ---- placement ------------------------------------------------------------------ */

START_TEST(test_placement_racks)
{
    struct ckpt_attr d;
    struct ckpt_msg_open_resp o;
    char rack[16], name[16];
    int used[64] = {0};

    /* 4 racks x 2 nodes x 2 targets. */
    for (int i = 0; i < 8; i++) {
        snprintf(rack, sizeof(rack), "r%d", i / 2);
        snprintf(name, sizeof(name), "n%d", i);
        mfx_node_add(name, rack, 2, 1ull << 40, 1ull << 39);
    }
    mfx_nodes_up();
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "d", 0755, 0, 0, &d), 0);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, "ec=2+2", 6, 0), 0);
    for (int f = 0; f < 100; f++) {
        snprintf(name, sizeof(name), "f%d", f);
        ck_assert_int_eq(create(d.ino, name, &o), 0);
        ck_assert_uint_eq(o.layout.width, 4);
        for (unsigned i = 0; i < 4; i++) {
            int oi = owner(o.layout.targets[i]);
            ck_assert_int_ge(oi, 0);
            used[o.layout.targets[i]]++;
            for (unsigned j = 0; j < i; j++)
                ck_assert_str_ne(F.nodes[oi].rack, F.nodes[owner(o.layout.targets[j])].rack);
        }
        release(&o);
    }
    for (int i = 0; i < F.nnodes; i++)
        for (uint32_t t = 0; t < F.nodes[i].n; t++)
            ck_assert_int_gt(used[F.nodes[i].tids[t]], 0);
    /* 4 racks cannot hold 4+1 on distinct domains. */
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, "ec=4+1", 6, 0), 0);
    ck_assert_int_eq(create(d.ino, "wide", &o), -ENOSPC);
    /* A width above the domains shrinks to them, never below k+m. */
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, "ec=2+1 width=8", 14,
                                           0), 0);
    ck_assert_int_eq(create(d.ino, "w8", &o), 0);
    ck_assert_uint_eq(o.layout.width, 4);
    release(&o);
}
END_TEST

START_TEST(test_placement_avoids_full_and_down)
{
    struct ckpt_msg_open_resp o;
    char name[16];

    /* 8 nodes: n6 is full, n7 will go DOWN. */
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        mfx_node_add(name, NULL, 1, 1ull << 40, i == 6 ? 0 : 1ull << 39);
    }
    mfx_nodes_up();
    uint32_t full_tid = F.nodes[6].tids[0], down_tid = F.nodes[7].tids[0];
    int used_down = 0;
    for (int f = 0; f < 60; f++) {
        snprintf(name, sizeof(name), "a%d", f);
        ck_assert_int_eq(create(CKPT_ROOT_INO, name, &o), 0);
        for (unsigned i = 0; i < o.layout.width; i++) {
            ck_assert_uint_ne(o.layout.targets[i], full_tid);
            used_down += o.layout.targets[i] == down_tid;
        }
        release(&o);
    }
    ck_assert_int_gt(used_down, 0);
    mfx_set_alive(7, 0);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[7].id) == CKPT_NODE_DOWN, 3000);
    ck_assert_uint_eq(mfx_node_state(F.nodes[7].id), CKPT_NODE_DOWN);
    for (int f = 0; f < 60; f++) {
        snprintf(name, sizeof(name), "b%d", f);
        ck_assert_int_eq(create(CKPT_ROOT_INO, name, &o), 0);
        ck_assert_uint_eq(o.layout.width, 6);
        for (unsigned i = 0; i < o.layout.width; i++) {
            ck_assert_uint_ne(o.layout.targets[i], full_tid);
            ck_assert_uint_ne(o.layout.targets[i], down_tid);
        }
        release(&o);
    }
    /* One more node down: 5 usable domains for 4+2. */
    mfx_set_alive(5, 0);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[5].id) == CKPT_NODE_DOWN, 3000);
    ck_assert_int_eq(create(CKPT_ROOT_INO, "nospace", &o), -ENOSPC);
    ck_assert_int_eq(ckpt_mclient_lookup(F.mc, CKPT_ROOT_INO, "nospace", NULL), -ENOENT);
    /* Back: placement works again. */
    mfx_set_alive(5, 1);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[5].id) == CKPT_NODE_UP, 3000);
    ck_assert_int_eq(create(CKPT_ROOT_INO, "nospace", &o), 0);
    release(&o);
}
END_TEST

START_TEST(test_placement_weighted_by_free_space)
{
    struct ckpt_attr d;
    struct ckpt_msg_open_resp o;
    char name[16];
    int hits[3] = {0};

    mfx_node_add("big", NULL, 1, 8ull << 40, 6ull << 40);
    mfx_node_add("s1", NULL, 1, 8ull << 40, 1ull << 40);
    mfx_node_add("s2", NULL, 1, 8ull << 40, 1ull << 40);
    mfx_nodes_up();
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, CKPT_ROOT_INO, "d", 0755, 0, 0, &d), 0);
    ck_assert_int_eq(ckpt_mclient_setxattr(F.mc, d.ino, META_LAYOUT_XATTR, "ec=1+0", 6, 0), 0);
    for (int f = 0; f < 400; f++) {
        snprintf(name, sizeof(name), "f%d", f);
        ck_assert_int_eq(create(d.ino, name, &o), 0);
        ck_assert_uint_eq(o.layout.width, 1);
        hits[owner(o.layout.targets[0])]++;
        release(&o);
    }
    /* Expected 300 / 50 / 50 (each bound is 6 standard deviations away). */
    ck_assert_int_gt(hits[0], 240);
    ck_assert_int_gt(hits[1], 15);
    ck_assert_int_gt(hits[2], 15);
}
END_TEST

/* ---- statfs and the deletion queue ------------------------------------------------ */

START_TEST(test_statfs_skips_out)
{
    struct ckpt_msg_statfs_resp sf;

    mfx_node_add("a", NULL, 2, 1ull << 40, 1ull << 30);
    mfx_node_add("b", NULL, 1, 1ull << 40, 1ull << 30);
    mfx_nodes_up();
    ck_assert_int_eq(ckpt_mclient_statfs(F.mc, &sf), 0);
    ck_assert_uint_eq(sf.blocks, 3 * ((1ull << 40) / 4096));
    ck_assert_uint_eq(sf.bfree, 3 * ((1ull << 30) / 4096));
    mfx_set_alive(1, 0);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[1].id) == CKPT_NODE_DOWN, 3000);
    ck_assert_int_eq(ckpt_mclient_statfs(F.mc, &sf), 0);
    ck_assert_uint_eq(sf.blocks, 3 * ((1ull << 40) / 4096)); /* DOWN still counts */
    MFX_WAIT_FOR(mfx_node_state(F.nodes[1].id) == CKPT_NODE_OUT, 3000);
    ck_assert_int_eq(ckpt_mclient_statfs(F.mc, &sf), 0);
    ck_assert_uint_eq(sf.blocks, 2 * ((1ull << 40) / 4096));
    ck_assert_uint_eq(sf.bfree, 2 * ((1ull << 30) / 4096));
}
END_TEST

static int deletes_total(uint64_t ino)
{
    int n = 0;
    pthread_mutex_lock(&F.lock);
    for (int i = 0; i < F.ndeletes; i++)
        n += F.deletes[i].ino == ino;
    pthread_mutex_unlock(&F.lock);
    return n;
}

START_TEST(test_deletions_retried_until_confirmed)
{
    struct ckpt_msg_open_resp o;
    struct meta_server_stats s;

    mfx_simple_cluster(6);
    /* Node 0 moves to an address where nobody listens. */
    uint16_t good = F.node_port;
    F.node_port = 1; /* nothing listens on port 1 */
    ck_assert_int_eq(mfx_register(0), 0);
    ck_assert_int_eq(mfx_heartbeat(0, NULL), 0);
    F.node_port = good;
    ck_assert_int_eq(create(CKPT_ROOT_INO, "victim", &o), 0);
    release(&o);
    ck_assert_int_eq(ckpt_mclient_unlink(F.mc, CKPT_ROOT_INO, "victim"), 0);
    /* The 5 reachable targets confirm; node 0's stays queued. */
    MFX_WAIT_FOR(deletes_total(o.attr.ino) >= 5, 5000);
    mfx_sleep_ms(1200); /* at least one more pass */
    ck_assert_int_eq(deletes_total(o.attr.ino), 5);
    meta_server_stats(F.srv, &s);
    ck_assert_uint_eq(s.delq_sent, 5);
    /* It comes back at the right address: the deletion goes through. */
    ck_assert_int_eq(mfx_register(0), 0);
    ck_assert_int_eq(mfx_heartbeat(0, NULL), 0);
    MFX_WAIT_FOR((meta_server_stats(F.srv, &s), s.delq_sent >= 6), 5000);
    ck_assert_uint_eq(s.delq_sent, 6);
    ck_assert_int_ge(deletes_total(o.attr.ino), 6);
    pthread_mutex_lock(&F.lock);
    int found = 0;
    for (int i = 0; i < F.ndeletes; i++)
        found |= F.deletes[i].ino == o.attr.ino && F.deletes[i].target == F.nodes[0].tids[0] &&
                 F.deletes[i].below_gen == o.attr.data_gen + 1 && F.deletes[i].from_stripe == 0;
    pthread_mutex_unlock(&F.lock);
    ck_assert(found);
}
END_TEST

Suite *meta_cluster_suite(void)
{
    Suite *s = suite_create("meta_cluster");
    TCase *tc = tcase_create("registry");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup, mfx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_register_and_ids);
    tcase_add_test(tc, test_placement_racks);
    tcase_add_test(tc, test_placement_weighted_by_free_space);
    tcase_add_test(tc, test_deletions_retried_until_confirmed);
    suite_add_tcase(s, tc);

    tc = tcase_create("config_timeouts");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup_config, mfx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_heartbeat_timeout_down_out);
    suite_add_tcase(s, tc);

    tc = tcase_create("fast_detection");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup_fast, mfx_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_placement_avoids_full_and_down);
    tcase_add_test(tc, test_statfs_skips_out);
    suite_add_tcase(s, tc);
    return s;
}

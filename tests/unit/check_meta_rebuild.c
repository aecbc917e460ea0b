/*
 * check_meta_rebuild.c - meta/meta_rebuild.c against an in-process
 * ckpt-meta with fake nodes (check_meta_fixture.h): a node goes OUT, the
 * planner makes one REBUILD task per file on its target with a replacement
 * in a failure domain the file does not use; TASK_FETCH hands it to the
 * replacement's node only, with the current layout and the addresses of the
 * live slots; a failed report keeps the task, a stale report is ignored, a
 * good one swaps the layout, bumps the epoch and empties the table; the
 * task table survives a restart of ckpt-meta; degraded stripes on an UP
 * target become REPAIR tasks; REBUILD_STATUS counts all of it.
 * Drain: a DRAINING node stays readable, gets MOVE tasks (source address
 * given) onto new failure domains, `remove` is refused while a layout
 * names it and accepted once the swap queued its chunks for deletion (the
 * fake node receives the CHUNK_DELETE); the drain survives a restart and
 * `add` cancels it.  Rebalance: a dry run plans moves onto the emptiest
 * targets and writes nothing; a real run stores them as MOVE tasks and a
 * second request reports them as resumed.
 */
#include <fcntl.h>

#include "cclient.h"
#include "check_meta_fixture.h"
#include "msg_admin.h"
#include "msg_task.h"

Suite *meta_rebuild_suite(void);

static void fast_detect(struct meta_server_opts *o)
{
    o->down_after_ms = 200;
    o->out_after_ms = 400;
}

static void setup_fast(void)
{
    mfx_setup_with(fast_detect);
}

/* Drain and rebalance need nodes to stay UP for seconds even on a loaded
 * machine (heartbeats late), and DOWN only when a test stops one. */
static void moderate_detect(struct meta_server_opts *o)
{
    o->down_after_ms = 1500;
    o->out_after_ms = 60000;
}

static void setup_moderate(void)
{
    mfx_setup_with(moderate_detect);
}

static int fetch(uint32_t node_id, struct ckpt_msg_task_fetch_resp *out)
{
    struct ckpt_msg_task_fetch m = {.node_id = node_id, .max = 16};
    uint8_t buf[32];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_fetch_encode(&w, &m), 0);
    int rc = mfx_call(CKPT_OP_TASK_FETCH, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_task_fetch_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static int done(const struct ckpt_task *t, uint32_t new_tid, int status)
{
    struct ckpt_msg_task_done m = {.node_id = 1, .kind = t->kind, .ino = t->ino,
                                   .lost_tid = t->lost_tid, .new_tid = new_tid,
                                   .data_gen = t->data_gen, .size = t->size,
                                   .attr_stamp = t->attr_stamp,
                                   .stripe_lo = t->stripe_lo, .stripe_hi = t->stripe_hi,
                                   .status = status, .chunks = 3, .bytes = 3 << 20};
    uint8_t buf[128];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_done_encode(&w, &m), 0);
    int rc = mfx_call(CKPT_OP_TASK_DONE, &w, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static int status(struct ckpt_msg_rebuild_status_resp *out)
{
    struct ckpt_wbuf w;
    struct ckpt_call call;
    uint8_t buf[8];
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    int rc = mfx_call(CKPT_OP_REBUILD_STATUS, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_rebuild_status_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    return rc;
}

/* A file of size bytes; returns its open reply (layout). */
static void make_file(const char *name, uint64_t size, struct ckpt_msg_open_resp *o)
{
    struct ckpt_msg_release r;
    /* With the 200 ms failure detection of these tests, a heartbeat that
     * a loaded machine (a sanitizer build beside other work) delays puts a
     * node DOWN for a moment, and a create then finds too few failure
     * domains: ENOSPC, seen once.  The nodes come back with their next
     * heartbeat (100 ms), so retry that for a while. */
    int rc;
    uint64_t t0 = mfx_ms();
    while ((rc = ckpt_mclient_create_file(F.mc, META_ROOT_INO, name, 0644, 1000, 1000,
                                          O_CREAT | O_WRONLY, o)) == -ENOSPC &&
           mfx_ms() - t0 < 5000)
        mfx_sleep_ms(50);
    ck_assert_int_eq(rc, 0);
    memset(&r, 0, sizeof(r));
    r.ino = o->attr.ino;
    r.handle = o->handle;
    r.session = ckpt_mclient_session(F.mc);
    r.wrote = 1;
    r.size = size;
    r.mtime_sec = 1700000000;
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);
}

static int node_of_tid(uint32_t tid)
{
    for (int i = 0; i < F.nnodes; i++)
        for (uint32_t j = 0; j < F.nodes[i].n; j++)
            if (F.nodes[i].tids[j] == tid)
                return i;
    return -1;
}

/* Fetch from every node; the one that gets tasks (exactly one may). */
static int fetch_any(struct ckpt_msg_task_fetch_resp *out)
{
    int who = -1;
    for (int i = 0; i < F.nnodes; i++) {
        struct ckpt_msg_task_fetch_resp r;
        ck_assert_int_eq(fetch(F.nodes[i].id, &r), 0);
        if (r.n) {
            ck_assert_int_eq(who, -1);
            who = i;
            *out = r;
        } else {
            ckpt_msg_task_fetch_resp_free(&r);
        }
    }
    return who;
}

static int node_op(uint32_t node_id, uint32_t op)
{
    struct ckpt_msg_node_state m = {.node_id = node_id, .op = op};
    uint8_t buf[16];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_state_encode(&w, &m), 0);
    int rc = mfx_call(CKPT_OP_NODE_STATE, &w, &call);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static int node_info(uint32_t node_id, struct ckpt_msg_node_info_resp *out)
{
    struct ckpt_msg_node_info m = {.node_id = node_id};
    uint8_t buf[16];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_encode(&w, &m), 0);
    int rc = mfx_call(CKPT_OP_NODE_INFO, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_node_info_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static int rebalance(uint32_t pct, uint32_t flags, struct ckpt_msg_rebalance_resp *out)
{
    struct ckpt_msg_rebalance m = {.threshold_pct = pct, .flags = flags};
    uint8_t buf[32];
    struct ckpt_wbuf w;
    struct ckpt_call call;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_rebalance_encode(&w, &m), 0);
    int rc = mfx_call(CKPT_OP_REBALANCE, &w, &call);
    if (rc == 0)
        rc = ckpt_msg_rebalance_resp_decode(call.resp_body, call.resp_body_len, out);
    ckpt_call_release(&call);
    ckpt_wbuf_free(&w);
    return rc;
}

static bool deleted_on(uint32_t tid, uint64_t ino)
{
    bool found = false;
    pthread_mutex_lock(&F.lock);
    for (int i = 0; i < F.ndeletes && !found; i++)
        found = F.deletes[i].target == tid && F.deletes[i].ino == ino;
    pthread_mutex_unlock(&F.lock);
    return found;
}

/* Rebuild order: a node fetches the tasks of files of the newest
 * committed checkpoint of a job first, files outside checkpoints next,
 * files of the older (superseded) checkpoint last. */
START_TEST(test_rebuild_order_newest_checkpoint_first)
{
    ckpt_cclient *cc = NULL;
    struct ckpt_ckpt_info info;
    struct ckpt_attr job, s1, s2;
    enum { PER = 12 };
    uint64_t inos[3 * PER];
    int ranks[3 * PER];

    mfx_simple_cluster(7);
    ck_assert_int_eq(ckpt_cclient_create(F.net, "127.0.0.1", F.port, &cc), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, META_ROOT_INO, "job", 0755, 0, 0, &job), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, job.ino, "step-1", 0755, 0, 0, &s1), 0);
    ck_assert_int_eq(ckpt_mclient_mkdir(F.mc, job.ino, "step-2", 0755, 0, 0, &s2), 0);
    /* Empty files: chunks need no nodes here, tasks are planned all the same. */
    for (int i = 0; i < 3 * PER; i++) {
        struct ckpt_msg_open_resp o;
        struct ckpt_msg_release r;
        char name[16];
        uint64_t dir = i < PER ? s1.ino : i < 2 * PER ? s2.ino : META_ROOT_INO;
        snprintf(name, sizeof(name), "f%d", i);
        ck_assert_int_eq(ckpt_mclient_create_file(F.mc, dir, name, 0644, 0, 0,
                                                  O_CREAT | O_WRONLY, &o), 0);
        memset(&r, 0, sizeof(r));
        r.ino = o.attr.ino;
        r.handle = o.handle;
        r.session = ckpt_mclient_session(F.mc);
        r.wrote = 1;
        r.mtime_sec = 1700000000;
        ck_assert_int_eq(ckpt_mclient_release(F.mc, &r), 0);
        inos[i] = o.attr.ino;
        ranks[i] = i < PER ? 2 : i < 2 * PER ? 0 : 1;
    }
    ck_assert_int_eq(ckpt_cclient_commit(cc, s1.ino, 5000, 0, &info), 0);
    mfx_sleep_ms(1100); /* committed_at has a 1 s resolution */
    ck_assert_int_eq(ckpt_cclient_commit(cc, s2.ino, 5000, 0, &info), 0);

    mfx_set_alive(0, 0);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[0].id) == CKPT_NODE_OUT, 3000);
    ck_assert_uint_eq(mfx_node_state(F.nodes[0].id), CKPT_NODE_OUT);
    /* Every node's answer is in rank order; some node mixes ranks. */
    bool mixed = false;
    uint32_t seen = 0;
    uint64_t t0 = mfx_ms();
    while (mfx_ms() - t0 < 5000 && !mixed) {
        seen = 0;
        for (int n = 1; n < F.nnodes; n++) {
            struct ckpt_msg_task_fetch_resp r;
            struct ckpt_msg_task_fetch m = {.node_id = F.nodes[n].id, .max = 64};
            uint8_t buf[32];
            struct ckpt_wbuf w;
            struct ckpt_call call;
            ckpt_wbuf_init(&w, buf, sizeof(buf));
            ck_assert_int_eq(ckpt_msg_task_fetch_encode(&w, &m), 0);
            ck_assert_int_eq(mfx_call(CKPT_OP_TASK_FETCH, &w, &call), 0);
            ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(call.resp_body,
                                                             call.resp_body_len, &r), 0);
            ckpt_call_release(&call);
            ckpt_wbuf_free(&w);
            int last = 0, first = -1;
            for (uint32_t j = 0; j < r.n; j++) {
                int rk = -1;
                for (int i = 0; i < 3 * PER; i++)
                    if (inos[i] == r.tasks[j].ino)
                        rk = ranks[i];
                ck_assert_int_ge(rk, 0);
                ck_assert_msg(rk >= last, "node %d: task %u of rank %d after rank %d", n, j,
                              rk, last);
                last = rk;
                if (first < 0)
                    first = rk;
                mixed |= rk != first;
            }
            seen += r.n;
            ckpt_msg_task_fetch_resp_free(&r);
        }
        if (!mixed)
            mfx_sleep_ms(100);
    }
    ck_assert_uint_gt(seen, 0);
    ck_assert_msg(mixed, "no node had tasks of two ranks (%u tasks)", seen);
    ckpt_cclient_destroy(cc);
}
END_TEST

START_TEST(test_rebuild_plan_fetch_swap)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_msg_task_fetch_resp r = {0};
    struct ckpt_msg_rebuild_status_resp st;

    mfx_simple_cluster(8);
    make_file("a", 5u << 20, &o);
    const struct ckpt_layout l0 = o.layout;
    ck_assert_uint_eq(l0.width, 6);
    uint32_t lost = l0.targets[2];
    int victim = node_of_tid(lost);
    ck_assert_int_ge(victim, 0);

    mfx_set_alive(victim, 0);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[victim].id) == CKPT_NODE_OUT, 3000);
    ck_assert_uint_eq(mfx_node_state(F.nodes[victim].id), CKPT_NODE_OUT);
    int who = -1;
    uint64_t t0 = mfx_ms();
    while (who < 0 && mfx_ms() - t0 < 5000) {
        who = fetch_any(&r);
        if (who < 0)
            mfx_sleep_ms(50);
    }
    ck_assert_int_ge(who, 0);
    ck_assert_uint_eq(r.n, 1);
    struct ckpt_task t = r.tasks[0];
    ckpt_msg_task_fetch_resp_free(&r);
    ck_assert_uint_eq(t.kind, CKPT_TASK_REBUILD);
    ck_assert_uint_eq(t.ino, o.attr.ino);
    ck_assert_uint_eq(t.lost_tid, lost);
    ck_assert_uint_eq(t.slot, 2);
    ck_assert_uint_eq(t.size, 5u << 20);
    ck_assert_uint_eq(t.stripe_lo, 0);
    ck_assert_uint_eq(t.stripe_hi, ckpt_layout_nstripes(&l0, 5u << 20));
    ck_assert_int_eq(node_of_tid(t.new_tid), who);
    /* a new failure domain: no slot of the file is on that node */
    for (int i = 0; i < l0.width; i++)
        ck_assert_int_ne(node_of_tid(l0.targets[i]), who);
    /* addresses: the lost slot has none, the others their node's */
    ck_assert_uint_eq(t.addr[2].port, 0);
    for (int i = 0; i < l0.width; i++)
        if (i != 2)
            ck_assert_uint_eq(t.addr[i].port, F.node_port);

    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.tasks_pending, 1);
    ck_assert_uint_eq(st.lost_targets, 1);

    /* A failed attempt keeps it; a report for another target is stale. */
    ck_assert_int_eq(done(&t, t.new_tid, CKPT_E_UNRECOV), 0);
    ck_assert_int_eq(done(&t, lost, 0), 0);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.tasks_pending, 1);
    ck_assert_uint_eq(st.tasks_failed, 1);
    ck_assert_uint_eq(st.tasks_done, 0);

    /* Done: the layout names the new target in the same slot. */
    struct ckpt_msg_cluster_map_resp m0;
    mfx_map(&m0);
    ck_assert_int_eq(done(&t, t.new_tid, 0), 0);
    struct ckpt_msg_open_resp o2;
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDONLY, &o2), 0);
    ck_assert_uint_eq(o2.layout.targets[2], t.new_tid);
    for (int i = 0; i < l0.width; i++)
        if (i != 2)
            ck_assert_uint_eq(o2.layout.targets[i], l0.targets[i]);
    struct ckpt_msg_cluster_map_resp m1;
    mfx_map(&m1);
    ck_assert_uint_gt(m1.epoch, m0.epoch);
    ckpt_msg_cluster_map_resp_free(&m0);
    ckpt_msg_cluster_map_resp_free(&m1);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.tasks_pending, 0);
    ck_assert_uint_eq(st.tasks_done, 1);
    ck_assert_uint_eq(st.bytes_done, 3 << 20);
    /* Nothing is planned again: the file no longer uses the lost target. */
    mfx_sleep_ms(1300);
    ck_assert_int_eq(fetch_any(&r), -1);
}
END_TEST

START_TEST(test_tasks_survive_restart)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_msg_task_fetch_resp r = {0};

    mfx_simple_cluster(8);
    make_file("b", 3u << 20, &o);
    int victim = node_of_tid(o.layout.targets[0]);
    mfx_set_alive(victim, 0);
    MFX_WAIT_FOR(mfx_node_state(F.nodes[victim].id) == CKPT_NODE_OUT, 3000);
    int who = -1;
    uint64_t t0 = mfx_ms();
    while (who < 0 && mfx_ms() - t0 < 5000) {
        who = fetch_any(&r);
        if (who < 0)
            mfx_sleep_ms(50);
    }
    ck_assert_int_ge(who, 0);
    uint32_t new_tid = r.tasks[0].new_tid;
    ckpt_msg_task_fetch_resp_free(&r);

    /* Restart: the task is read back from LMDB, same replacement. */
    mfx_hb_stop();
    ckpt_mclient_destroy(F.mc);
    F.mc = NULL;
    mfx_server_stop();
    mfx_server_start();
    ck_assert_int_eq(mfx_mclient("t", &F.mc), 0);
    for (int i = 0; i < F.nnodes; i++)
        if (i != victim)
            ck_assert_int_eq(mfx_heartbeat(i, NULL), 0);
    ck_assert_int_eq(fetch(F.nodes[who].id, &r), 0);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_uint_eq(r.tasks[0].new_tid, new_tid);
    ck_assert_uint_eq(r.tasks[0].lost_tid, o.layout.targets[0]);
    ckpt_msg_task_fetch_resp_free(&r);
}
END_TEST

START_TEST(test_degraded_becomes_repair)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_msg_task_fetch_resp r = {0};

    mfx_simple_cluster(6);
    make_file("c", 4u << 20, &o);
    /* stripe 0 chunk 1 and stripe 0 chunk 4 missing */
    struct ckpt_degraded_stripe ds = {.stripe = 0, .missing_mask = (1u << 1) | (1u << 4)};
    struct ckpt_msg_degraded d = {.ino = o.attr.ino, .data_gen = o.attr.data_gen, .n = 1,
                                  .stripes = &ds};
    ck_assert_int_eq(ckpt_mclient_degraded(F.mc, &d), 0);
    uint32_t t1 = o.layout.targets[ckpt_layout_slot(&o.layout, 0, 1)];
    uint32_t t4 = o.layout.targets[ckpt_layout_slot(&o.layout, 0, 4)];
    int n1 = node_of_tid(t1), n4 = node_of_tid(t4);
    struct ckpt_task got[2];
    int ngot = 0;
    uint64_t t0 = mfx_ms();
    while (ngot < 2 && mfx_ms() - t0 < 5000) {
        ngot = 0;
        for (int k = 0; k < 2; k++) {
            int n = k ? n4 : n1;
            ck_assert_int_eq(fetch(F.nodes[n].id, &r), 0);
            if (r.n == 1)
                got[ngot++] = r.tasks[0];
            ckpt_msg_task_fetch_resp_free(&r);
        }
        if (ngot < 2)
            mfx_sleep_ms(50);
    }
    ck_assert_int_eq(ngot, 2);
    for (int k = 0; k < 2; k++) {
        ck_assert_uint_eq(got[k].kind, CKPT_TASK_REPAIR);
        ck_assert_uint_eq(got[k].new_tid, got[k].lost_tid);
        ck_assert_uint_eq(got[k].stripe_lo, 0);
        ck_assert_uint_eq(got[k].stripe_hi, 1);
    }
    ck_assert_uint_eq(got[0].lost_tid, t1);
    ck_assert_uint_eq(got[1].lost_tid, t4);
    struct ckpt_msg_rebuild_status_resp st;
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.degraded_stripes, 1);
    /* Repair one: the record keeps the other chunk's bit. */
    ck_assert_int_eq(done(&got[0], got[0].new_tid, 0), 0);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.degraded_stripes, 1);
    ck_assert_uint_eq(st.tasks_pending, 1);
    ck_assert_int_eq(done(&got[1], got[1].new_tid, 0), 0);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.degraded_stripes, 0);
    ck_assert_uint_eq(st.tasks_pending, 0);
    /* The layout is untouched by repairs. */
    struct ckpt_msg_open_resp o2;
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDONLY, &o2), 0);
    ck_assert_mem_eq(o2.layout.targets, o.layout.targets, sizeof(o.layout.targets));
}
END_TEST

/* A repair whose target is full (the node answers -ENOSPC) becomes a
 * rebuild of that slot onto a target in an unused failure domain, handed
 * out only after a back-off; once done, the layout no longer names the
 * full target. */
START_TEST(test_repair_on_full_target_moves)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_msg_task_fetch_resp r = {0};

    mfx_simple_cluster(8);
    make_file("full", 4u << 20, &o);
    struct ckpt_degraded_stripe ds = {.stripe = 0, .missing_mask = 1u << 2};
    struct ckpt_msg_degraded d = {.ino = o.attr.ino, .data_gen = o.attr.data_gen, .n = 1,
                                  .stripes = &ds};
    ck_assert_int_eq(ckpt_mclient_degraded(F.mc, &d), 0);
    uint32_t tfull = o.layout.targets[ckpt_layout_slot(&o.layout, 0, 2)];
    int nfull = node_of_tid(tfull);
    struct ckpt_task t;
    bool got = false;
    uint64_t t0 = mfx_ms();
    while (!got && mfx_ms() - t0 < 5000) {
        ck_assert_int_eq(fetch(F.nodes[nfull].id, &r), 0);
        if (r.n == 1) {
            t = r.tasks[0];
            got = true;
        }
        ckpt_msg_task_fetch_resp_free(&r);
        if (!got)
            mfx_sleep_ms(50);
    }
    ck_assert(got);
    ck_assert_uint_eq(t.kind, CKPT_TASK_REPAIR);
    ck_assert_int_eq(done(&t, t.new_tid, -ENOSPC), 0);
    /* Now a rebuild onto another node, handed out after the back-off. */
    ck_assert_int_eq(fetch_any(&r), -1);
    int who = -1;
    t0 = mfx_ms();
    while (who < 0 && mfx_ms() - t0 < 6000) {
        mfx_sleep_ms(200);
        who = fetch_any(&r);
    }
    ck_assert_int_ge(who, 0);
    ck_assert_uint_eq(r.n, 1);
    struct ckpt_task rb = r.tasks[0];
    ckpt_msg_task_fetch_resp_free(&r);
    /* No room there either: back to repairing in place, after a longer
     * back-off (4 s). */
    ck_assert_int_eq(done(&rb, rb.new_tid, -ENOSPC), 0);
    ck_assert_int_eq(fetch_any(&r), -1);
    t0 = mfx_ms();
    int again = -1;
    while (again < 0 && mfx_ms() - t0 < 8000) {
        mfx_sleep_ms(200);
        again = fetch_any(&r);
    }
    ck_assert_int_eq(again, nfull);
    ck_assert_uint_ge(mfx_ms() - t0, 2500);
    ck_assert_uint_eq(r.tasks[0].kind, CKPT_TASK_REPAIR);
    ck_assert_uint_eq(r.tasks[0].new_tid, tfull);
    ckpt_msg_task_fetch_resp_free(&r);
    /* ... and the other way again: rebuilt elsewhere, done, swapped. */
    ck_assert_int_eq(done(&t, t.new_tid, -ENOSPC), 0);
    who = -1;
    t0 = mfx_ms();
    while (who < 0 && mfx_ms() - t0 < 12000) {
        mfx_sleep_ms(200);
        who = fetch_any(&r);
    }
    ck_assert_int_ge(who, 0);
    rb = r.tasks[0];
    ckpt_msg_task_fetch_resp_free(&r);
    ck_assert_uint_eq(rb.kind, CKPT_TASK_REBUILD);
    ck_assert_uint_eq(rb.kind, CKPT_TASK_REBUILD);
    ck_assert_uint_eq(rb.lost_tid, tfull);
    ck_assert_uint_ne(rb.new_tid, tfull);
    for (int i = 0; i < o.layout.width; i++)
        ck_assert_int_ne(node_of_tid(o.layout.targets[i]), who);
    ck_assert_int_eq(done(&rb, rb.new_tid, 0), 0);
    struct ckpt_msg_open_resp o2;
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDONLY, &o2), 0);
    bool names_full = false, names_new = false;
    for (int i = 0; i < o2.layout.width; i++) {
        names_full |= o2.layout.targets[i] == tfull;
        names_new |= o2.layout.targets[i] == rb.new_tid;
    }
    ck_assert(!names_full);
    ck_assert(names_new);
}
END_TEST

START_TEST(test_drain_move_remove)
{
    struct ckpt_msg_open_resp o;
    struct ckpt_msg_task_fetch_resp r = {0};
    struct ckpt_msg_node_info_resp ni;
    struct ckpt_msg_rebuild_status_resp st;

    mfx_simple_cluster(8);
    make_file("d", 5u << 20, &o);
    const struct ckpt_layout l0 = o.layout;
    uint32_t src = l0.targets[1];
    int victim = node_of_tid(src);
    ck_assert_int_ge(victim, 0);
    uint32_t vid = F.nodes[victim].id;

    /* An UP node that holds data cannot be removed. */
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_REMOVE), -EBUSY);
    ck_assert_int_eq(node_op(9999, CKPT_ADMIN_NODE_DRAIN), -ENOENT);
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_DRAIN), 0);
    ck_assert_uint_eq(mfx_node_state(vid), CKPT_NODE_DRAINING);
    ck_assert_int_eq(node_info(vid, &ni), 0);
    ck_assert_uint_eq(ni.state, CKPT_NODE_DRAINING);
    ck_assert_uint_eq(ni.flags, CKPT_NODE_F_DRAINING);
    ck_assert_uint_eq(ni.files, 1);
    ck_assert_uint_gt(ni.bytes, 0);
    ck_assert_uint_eq(ni.open_files, 0);
    /* A file open somewhere is counted (its move waits for the close). */
    struct ckpt_msg_open_resp ro;
    struct ckpt_msg_release rr = {0};
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDONLY, &ro), 0);
    ck_assert_int_eq(node_info(vid, &ni), 0);
    ck_assert_uint_eq(ni.open_files, 1);
    rr.ino = o.attr.ino;
    rr.handle = ro.handle;
    rr.session = ckpt_mclient_session(F.mc);
    ck_assert_int_eq(ckpt_mclient_release(F.mc, &rr), 0);
    ck_assert_int_eq(node_info(vid, &ni), 0);
    ck_assert_uint_eq(ni.open_files, 0);
    /* Heartbeats keep it DRAINING, not UP. */
    ck_assert_int_eq(mfx_heartbeat(victim, NULL), 0);
    ck_assert_uint_eq(mfx_node_state(vid), CKPT_NODE_DRAINING);

    int who = -1;
    uint64_t t0 = mfx_ms();
    while (who < 0 && mfx_ms() - t0 < 5000) {
        who = fetch_any(&r);
        if (who < 0)
            mfx_sleep_ms(50);
    }
    ck_assert_int_ge(who, 0);
    ck_assert_int_ne(who, victim);
    ck_assert_uint_eq(r.n, 1);
    struct ckpt_task t = r.tasks[0];
    ckpt_msg_task_fetch_resp_free(&r);
    ck_assert_uint_eq(t.kind, CKPT_TASK_MOVE);
    ck_assert_uint_eq(t.lost_tid, src);
    ck_assert_uint_eq(t.slot, 1);
    /* The source stays readable: its address is given. */
    ck_assert_uint_eq(t.addr[1].port, F.node_port);
    for (int i = 0; i < l0.width; i++)
        ck_assert_int_ne(node_of_tid(l0.targets[i]), who);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.moves_pending, 1);
    ck_assert_uint_eq(st.tasks_pending, 0);
    ck_assert_uint_gt(st.move_bytes_left, 0);
    ck_assert_int_eq(node_info(vid, &ni), 0);
    ck_assert_uint_eq(ni.tasks, 1);
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_REMOVE), -EBUSY);

    ck_assert_int_eq(done(&t, t.new_tid, 0), 0);
    struct ckpt_msg_open_resp o2;
    ck_assert_int_eq(ckpt_mclient_open(F.mc, o.attr.ino, O_RDONLY, &o2), 0);
    ck_assert_uint_eq(o2.layout.targets[1], t.new_tid);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.moves_pending, 0);
    ck_assert_uint_eq(st.moves_done, 1);
    ck_assert_uint_eq(st.move_bytes_done, 3 << 20);
    /* The old chunks are deleted on the (still UP-like) draining node. */
    MFX_WAIT_FOR(deleted_on(src, o.attr.ino), 3000);
    ck_assert(deleted_on(src, o.attr.ino));
    MFX_WAIT_FOR(node_info(vid, &ni) == 0 && ni.delq == 0, 3000);
    ck_assert_uint_eq(ni.files, 0);
    ck_assert_uint_eq(ni.delq, 0);

    /* Drained but still heartbeating: refused; stopped (DOWN): removed. */
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_REMOVE), -EBUSY);
    mfx_set_alive(victim, 0);
    MFX_WAIT_FOR(mfx_node_state(vid) != CKPT_NODE_DRAINING, 8000);
    uint32_t vst = mfx_node_state(vid);
    ck_assert(vst == CKPT_NODE_DOWN || vst == CKPT_NODE_OUT);
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_REMOVE), 0);
    ck_assert_int_eq(node_info(vid, &ni), -ENOENT);
    struct ckpt_msg_cluster_map_resp m;
    mfx_map(&m);
    for (uint32_t i = 0; i < m.n_nodes; i++)
        ck_assert_uint_ne(m.nodes[i].id, vid);
    for (uint32_t i = 0; i < m.n_targets; i++)
        ck_assert_uint_ne(m.targets[i].id, src);
    ckpt_msg_cluster_map_resp_free(&m);
}
END_TEST

START_TEST(test_drain_cancel_and_persist)
{
    mfx_simple_cluster(7);
    uint32_t vid = F.nodes[3].id;
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_DRAIN), 0);
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_DRAIN), 0); /* idempotent */
    ck_assert_uint_eq(mfx_node_state(vid), CKPT_NODE_DRAINING);
    /* Placement avoids it: 6 UP nodes, width 6. */
    struct ckpt_msg_open_resp o;
    make_file("e", 1u << 20, &o);
    for (int i = 0; i < o.layout.width; i++)
        ck_assert_int_ne(node_of_tid(o.layout.targets[i]), 3);
    /* Persisted across a restart. */
    mfx_hb_stop();
    ckpt_mclient_destroy(F.mc);
    F.mc = NULL;
    mfx_server_stop();
    mfx_server_start();
    ck_assert_int_eq(mfx_mclient("t", &F.mc), 0);
    for (int i = 0; i < F.nnodes; i++)
        ck_assert_int_eq(mfx_heartbeat(i, NULL), 0);
    ck_assert_uint_eq(mfx_node_state(vid), CKPT_NODE_DRAINING);
    /* add (= in) cancels it. */
    ck_assert_int_eq(node_op(vid, CKPT_ADMIN_NODE_ADD), 0);
    ck_assert_uint_eq(mfx_node_state(vid), CKPT_NODE_UP);
}
END_TEST

START_TEST(test_rebalance_plan)
{
    struct ckpt_msg_open_resp o[40];
    struct ckpt_msg_rebalance_resp r;
    struct ckpt_msg_rebuild_status_resp st;
    char name[16];

    mfx_simple_cluster(8);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        make_file(name, 4u << 20, &o[i]);
    }
    /* Nodes 6 and 7 report empty targets, the others 30 MiB used (what
     * 40 files of 6 chunks of 1 MiB on 8 nodes give on average). */
    pthread_mutex_lock(&F.lock);
    for (int i = 0; i < 8; i++) {
        F.nodes[i].capacity = 100u << 20;
        F.nodes[i].free = F.nodes[i].capacity - (i >= 6 ? 0 : 30u << 20);
    }
    pthread_mutex_unlock(&F.lock);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(mfx_heartbeat(i, NULL), 0);

    ck_assert_int_eq(rebalance(10, CKPT_REBALANCE_DRY_RUN, &r), 0);
    ck_assert_uint_eq(r.flags, 0);
    ck_assert_uint_gt(r.files, 0);
    ck_assert_uint_gt(r.bytes, 0);
    ck_assert_uint_lt(r.max_ppm_after, r.max_ppm_before);
    ck_assert_uint_eq(r.n, 8);
    uint64_t in = 0, out = 0, files = r.files;
    for (uint32_t i = 0; i < r.n; i++) {
        int n = node_of_tid(r.targets[i].tid);
        in += r.targets[i].in_bytes;
        out += r.targets[i].out_bytes;
        if (n >= 6) {
            ck_assert_uint_eq(r.targets[i].out_bytes, 0);
            ck_assert_uint_gt(r.targets[i].in_files, 0);
        } else {
            ck_assert_uint_eq(r.targets[i].in_bytes, 0);
        }
    }
    ck_assert_uint_eq(in, r.bytes);
    ck_assert_uint_eq(out, r.bytes);
    ckpt_msg_rebalance_resp_free(&r);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.moves_pending, 0);

    /* The real run stores the same moves; asking again resumes them. */
    ck_assert_int_eq(rebalance(10, 0, &r), 0);
    ck_assert_uint_eq(r.files, files);
    ckpt_msg_rebalance_resp_free(&r);
    ck_assert_int_eq(status(&st), 0);
    ck_assert_uint_eq(st.moves_pending, files);
    ck_assert_int_eq(rebalance(10, 0, &r), 0);
    ck_assert_uint_eq(r.flags, CKPT_REBALANCE_RESUMED);
    ck_assert_uint_eq(r.files, files);
    ckpt_msg_rebalance_resp_free(&r);
    /* Each move goes to a node the file does not use yet. */
    struct ckpt_msg_task_fetch_resp fr;
    for (int n = 6; n < 8; n++) {
        ck_assert_int_eq(fetch(F.nodes[n].id, &fr), 0);
        for (uint32_t i = 0; i < fr.n; i++) {
            ck_assert_uint_eq(fr.tasks[i].kind, CKPT_TASK_MOVE);
            ck_assert_int_eq(node_of_tid(fr.tasks[i].new_tid), n);
            for (int s = 0; s < fr.tasks[i].layout.width; s++)
                ck_assert_int_ne(node_of_tid(fr.tasks[i].layout.targets[s]), n);
        }
        ckpt_msg_task_fetch_resp_free(&fr);
    }
}
END_TEST

Suite *meta_rebuild_suite(void)
{
    Suite *s = suite_create("meta_rebuild");
    TCase *tc = tcase_create("rebuild");
    tcase_add_unchecked_fixture(tc, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(tc, setup_fast, mfx_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rebuild_plan_fetch_swap);
    tcase_add_test(tc, test_tasks_survive_restart);
    tcase_add_test(tc, test_degraded_becomes_repair);
    tcase_add_test(tc, test_rebuild_order_newest_checkpoint_first);
    tcase_add_test(tc, test_repair_on_full_target_moves);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("drain");
    tcase_add_unchecked_fixture(td, mfx_root_setup, mfx_root_teardown);
    tcase_add_checked_fixture(td, setup_moderate, mfx_teardown);
    tcase_set_timeout(td, 30);
    tcase_add_test(td, test_drain_move_remove);
    tcase_add_test(td, test_drain_cancel_and_persist);
    tcase_add_test(td, test_rebalance_plan);
    suite_add_tcase(s, td);
    return s;
}

/*
 * check_msg_admin.c - the operator message codecs (lib/msg_admin.h):
 * NODE_STATE round trip, every truncation and trailing bytes rejected,
 * node id 0 and unknown ops rejected, op names; NODE_INFO and its reply
 * (unknown state and flags rejected); REBALANCE (threshold 0 / > 100 and
 * unknown flags rejected) and its reply (target array round trip, every
 * truncation fails without leaking, a hostile count, allocation failure).
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "msg_admin.h"

START_TEST(test_node_state_roundtrip)
{
    for (uint32_t op = 0; op < CKPT_ADMIN_NODE_NOPS; op++) {
        struct ckpt_msg_node_state m = {.node_id = 4242 + op, .op = op}, d;
        struct ckpt_wbuf w;
        uint8_t buf[64];
        ckpt_wbuf_init(&w, buf, sizeof(buf));
        ck_assert_int_eq(ckpt_msg_node_state_encode(&w, &m), 0);
        ck_assert_uint_eq(w.len, 8);
        memset(&d, 0xa5, sizeof(d));
        ck_assert_int_eq(ckpt_msg_node_state_decode(w.p, w.len, &d), 0);
        ck_assert_uint_eq(d.node_id, m.node_id);
        ck_assert_uint_eq(d.op, op);
        for (size_t cut = 0; cut < w.len; cut++)
            ck_assert_int_eq(ckpt_msg_node_state_decode(w.p, cut, &d), CKPT_E_PROTO);
        uint8_t longer[9];
        memcpy(longer, w.p, 8);
        longer[8] = 0;
        ck_assert_int_eq(ckpt_msg_node_state_decode(longer, sizeof(longer), &d), CKPT_E_PROTO);
        ckpt_wbuf_free(&w);
    }
}
END_TEST

START_TEST(test_node_state_invalid)
{
    struct ckpt_msg_node_state d;
    struct ckpt_wbuf w;
    uint8_t buf[64];
    /* node id 0 */
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ckpt_wr_u32(&w, 0);
    ckpt_wr_u32(&w, CKPT_ADMIN_NODE_OUT);
    ck_assert_int_eq(ckpt_msg_node_state_decode(w.p, w.len, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    /* unknown op */
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ckpt_wr_u32(&w, 7);
    ckpt_wr_u32(&w, CKPT_ADMIN_NODE_NOPS);
    ck_assert_int_eq(ckpt_msg_node_state_decode(w.p, w.len, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    ck_assert_str_eq(ckpt_admin_node_op_name(CKPT_ADMIN_NODE_OUT), "out");
    ck_assert_str_eq(ckpt_admin_node_op_name(CKPT_ADMIN_NODE_IN), "in");
    ck_assert_str_eq(ckpt_admin_node_op_name(CKPT_ADMIN_NODE_DRAIN), "drain");
    ck_assert_str_eq(ckpt_admin_node_op_name(CKPT_ADMIN_NODE_REMOVE), "remove");
    ck_assert_str_eq(ckpt_admin_node_op_name(CKPT_ADMIN_NODE_ADD), "add");
    ck_assert_str_eq(ckpt_admin_node_op_name(99), "?");
}
END_TEST

START_TEST(test_node_info)
{
    struct ckpt_msg_node_info m = {.node_id = 9}, d;
    struct ckpt_msg_node_info_resp r = {.node_id = 9, .state = CKPT_NODE_DRAINING,
                                        .flags = CKPT_NODE_F_DRAINING, .files = 3,
                                        .bytes = 1u << 20, .tasks = 2, .delq = 1,
                                        .open_files = 2}, r2;
    struct ckpt_wbuf w;
    uint8_t buf[128];
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_encode(&w, &m), 0);
    ck_assert_int_eq(ckpt_msg_node_info_decode(w.p, w.len, &d), 0);
    ck_assert_uint_eq(d.node_id, 9);
    ck_assert_int_eq(ckpt_msg_node_info_decode(w.p, w.len - 1, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    m.node_id = 0;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_encode(&w, &m), 0);
    ck_assert_int_eq(ckpt_msg_node_info_decode(w.p, w.len, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_resp_encode(&w, &r), 0);
    ck_assert_int_eq(ckpt_msg_node_info_resp_decode(w.p, w.len, &r2), 0);
    ck_assert_uint_eq(r2.node_id, 9);
    ck_assert_uint_eq(r2.state, CKPT_NODE_DRAINING);
    ck_assert_uint_eq(r2.flags, CKPT_NODE_F_DRAINING);
    ck_assert_uint_eq(r2.files, 3);
    ck_assert_uint_eq(r2.bytes, 1u << 20);
    ck_assert_uint_eq(r2.tasks, 2);
    ck_assert_uint_eq(r2.delq, 1);
    ck_assert_uint_eq(r2.open_files, 2);
    for (size_t cut = 0; cut < w.len; cut++)
        ck_assert_int_eq(ckpt_msg_node_info_resp_decode(w.p, cut, &r2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    r.state = CKPT_NODE_NSTATES;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_resp_encode(&w, &r), 0);
    ck_assert_int_eq(ckpt_msg_node_info_resp_decode(w.p, w.len, &r2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    r.state = CKPT_NODE_UP;
    r.open_files = 4; /* more open files than files */
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_resp_encode(&w, &r), 0);
    ck_assert_int_eq(ckpt_msg_node_info_resp_decode(w.p, w.len, &r2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    r.open_files = 0;
    r.flags = 0x4;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_node_info_resp_encode(&w, &r), 0);
    ck_assert_int_eq(ckpt_msg_node_info_resp_decode(w.p, w.len, &r2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
}
END_TEST

START_TEST(test_rebalance)
{
    struct ckpt_msg_rebalance m = {.threshold_pct = 10, .flags = CKPT_REBALANCE_DRY_RUN,
                                   .max_rate_bps = 123}, d;
    struct ckpt_wbuf w;
    uint8_t buf[64];
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_rebalance_encode(&w, &m), 0);
    ck_assert_int_eq(ckpt_msg_rebalance_decode(w.p, w.len, &d), 0);
    ck_assert_uint_eq(d.threshold_pct, 10);
    ck_assert_uint_eq(d.flags, CKPT_REBALANCE_DRY_RUN);
    ck_assert_uint_eq(d.max_rate_bps, 123);
    ck_assert_int_eq(ckpt_msg_rebalance_decode(w.p, w.len - 1, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    const uint32_t bad_pct[] = {0, 101};
    for (int i = 0; i < 3; i++) {
        struct ckpt_msg_rebalance b = m;
        if (i < 2)
            b.threshold_pct = bad_pct[i];
        else
            b.flags = 0x8;
        ckpt_wbuf_init(&w, buf, sizeof(buf));
        ck_assert_int_eq(ckpt_msg_rebalance_encode(&w, &b), 0);
        ck_assert_int_eq(ckpt_msg_rebalance_decode(w.p, w.len, &d), CKPT_E_PROTO);
        ckpt_wbuf_free(&w);
    }
}
END_TEST

START_TEST(test_rebalance_resp)
{
    struct ckpt_rebalance_target t[3];
    for (uint32_t i = 0; i < 3; i++)
        t[i] = (struct ckpt_rebalance_target){.tid = i + 1, .node_id = 10 + i,
                                              .capacity = 1u << 30, .used = i << 20,
                                              .out_bytes = i, .in_bytes = 2 * i,
                                              .out_files = i + 5, .in_files = i + 6};
    struct ckpt_msg_rebalance_resp m = {.flags = CKPT_REBALANCE_RESUMED, .threshold_pct = 7,
                                        .mean_ppm = 1000, .max_ppm_before = 2000,
                                        .max_ppm_after = 1100, .files = 4, .bytes = 99,
                                        .n = 3, .targets = t}, d;
    struct ckpt_wbuf w;
    uint8_t buf[32];
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_rebalance_resp_encode(&w, &m), 0);
    ck_assert_int_eq(ckpt_msg_rebalance_resp_decode(w.p, w.len, &d), 0);
    ck_assert_uint_eq(d.flags, CKPT_REBALANCE_RESUMED);
    ck_assert_uint_eq(d.threshold_pct, 7);
    ck_assert_uint_eq(d.mean_ppm, 1000);
    ck_assert_uint_eq(d.max_ppm_before, 2000);
    ck_assert_uint_eq(d.max_ppm_after, 1100);
    ck_assert_uint_eq(d.files, 4);
    ck_assert_uint_eq(d.bytes, 99);
    ck_assert_uint_eq(d.n, 3);
    ck_assert_mem_eq(d.targets, t, sizeof(t));
    ckpt_msg_rebalance_resp_free(&d);
    ckpt_msg_rebalance_resp_free(NULL);
    long live = ckpt_alloc_live();
    for (size_t cut = 0; cut < w.len; cut++) {
        ck_assert_int_eq(ckpt_msg_rebalance_resp_decode(w.p, cut, &d), CKPT_E_PROTO);
        ck_assert_ptr_null(d.targets);
    }
    uint8_t longer[512];
    ck_assert_uint_lt(w.len, sizeof(longer));
    memcpy(longer, w.p, w.len);
    longer[w.len] = 0;
    ck_assert_int_eq(ckpt_msg_rebalance_resp_decode(longer, w.len + 1, &d), CKPT_E_PROTO);
    ck_assert_int_eq(ckpt_alloc_live(), live);
    /* A count larger than the bytes left is refused before allocating. */
    memcpy(longer, w.p, w.len);
    longer[48] = 0xff;
    longer[49] = 0xff;
    ck_assert_int_eq(ckpt_msg_rebalance_resp_decode(longer, w.len, &d), CKPT_E_PROTO);
    ck_assert_int_eq(ckpt_alloc_live(), live);
    /* Allocation failure. */
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_int_eq(ckpt_msg_rebalance_resp_decode(w.p, w.len, &d), -ENOMEM);
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 0);
    ck_assert_int_eq(ckpt_alloc_live(), live);
    ckpt_wbuf_free(&w);
    /* Encoder: too many targets, or targets missing. */
    struct ckpt_msg_rebalance_resp bad = {.threshold_pct = 7, .n = 2, .targets = NULL};
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_rebalance_resp_encode(&w, &bad), -EINVAL);
    ckpt_wbuf_free(&w);
}
END_TEST

Suite *msg_admin_suite(void)
{
    Suite *s = suite_create("msg_admin");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_node_state_roundtrip);
    tcase_add_test(tc, test_node_state_invalid);
    tcase_add_test(tc, test_node_info);
    tcase_add_test(tc, test_rebalance);
    tcase_add_test(tc, test_rebalance_resp);
    suite_add_tcase(s, tc);
    return s;
}

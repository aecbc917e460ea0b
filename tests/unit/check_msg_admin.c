/*
 * check_msg_admin.c - the operator message codecs (lib/msg_admin.h):
 * NODE_STATE round trip, every truncation and trailing bytes rejected,
 * node id 0 and unknown ops rejected, op names.
 */
#include <check.h>
#include <string.h>

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
    ck_assert_str_eq(ckpt_admin_node_op_name(99), "?");
}
END_TEST

Suite *msg_admin_suite(void)
{
    Suite *s = suite_create("msg_admin");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_node_state_roundtrip);
    tcase_add_test(tc, test_node_state_invalid);
    suite_add_tcase(s, tc);
    return s;
}

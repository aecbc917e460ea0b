/*
 * check_msg_task.c - the rebuild task codecs (lib/msg_task.h): round trips,
 * every truncation of a valid message rejected, hostile counts, bad kinds,
 * layouts whose slot does not name the lost target, and OOM in the decoder.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "msg_task.h"

static void sample_task(struct ckpt_task *t, uint32_t i)
{
    memset(t, 0, sizeof(*t));
    t->kind = i % 3 == 1 ? CKPT_TASK_REPAIR : i % 3 == 2 ? CKPT_TASK_MOVE : CKPT_TASK_REBUILD;
    t->ino = 1000 + i;
    t->data_gen = 7;
    t->size = 123456789;
    t->layout.k = 4;
    t->layout.m = 2;
    t->layout.width = 7;
    t->layout.chunk_size = 1u << 20;
    for (int s = 0; s < 7; s++) {
        t->layout.targets[s] = 10 + (uint32_t)s;
        snprintf(t->addr[s].host, sizeof(t->addr[s].host), "10.0.0.%d", s);
        t->addr[s].port = (uint16_t)(7000 + s);
    }
    t->slot = 3;
    t->lost_tid = 13;
    t->new_tid = t->kind == CKPT_TASK_REPAIR ? 13 : 99;
    t->stripe_lo = i;
    t->stripe_hi = 100 + i;
    if (t->kind != CKPT_TASK_MOVE) { /* a MOVE's source stays readable */
        t->addr[3].host[0] = '\0';
        t->addr[3].port = 0;
    } else {
        t->rate_bps = 5u << 20;
    }
}

START_TEST(test_fetch_roundtrip)
{
    struct ckpt_task tasks[3];
    for (uint32_t i = 0; i < 3; i++)
        sample_task(&tasks[i], i);
    struct ckpt_msg_task_fetch_resp m = {.n = 3, .tasks = tasks}, out;
    struct ckpt_wbuf w;
    uint8_t buf[64];
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_encode(&w, &m), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), 0);
    ck_assert_uint_eq(out.n, 3);
    ck_assert_uint_eq(out.tasks[2].kind, CKPT_TASK_MOVE);
    ck_assert_uint_eq(out.tasks[2].rate_bps, 5u << 20);
    ck_assert_uint_eq(out.tasks[2].addr[3].port, 7003);
    for (uint32_t i = 0; i < 3; i++) {
        const struct ckpt_task *a = &tasks[i], *b = &out.tasks[i];
        ck_assert_uint_eq(a->kind, b->kind);
        ck_assert_uint_eq(a->ino, b->ino);
        ck_assert_uint_eq(a->size, b->size);
        ck_assert_uint_eq(a->lost_tid, b->lost_tid);
        ck_assert_uint_eq(a->new_tid, b->new_tid);
        ck_assert_uint_eq(a->slot, b->slot);
        ck_assert_uint_eq(a->stripe_lo, b->stripe_lo);
        ck_assert_uint_eq(a->stripe_hi, b->stripe_hi);
        ck_assert_uint_eq(a->rate_bps, b->rate_bps);
        ck_assert_uint_eq(b->layout.width, 7);
        ck_assert_mem_eq(a->layout.targets, b->layout.targets, sizeof(a->layout.targets));
        for (int s = 0; s < 7; s++) {
            ck_assert_str_eq(a->addr[s].host, b->addr[s].host);
            ck_assert_uint_eq(a->addr[s].port, b->addr[s].port);
        }
    }
    /* Every truncation fails without leaking. */
    long live = ckpt_alloc_live();
    for (size_t len = 0; len < w.len; len++) {
        struct ckpt_msg_task_fetch_resp t;
        ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, len, &t), CKPT_E_PROTO);
        ck_assert_ptr_null(t.tasks);
    }
    ck_assert_int_eq(ckpt_alloc_live(), live);
    ckpt_msg_task_fetch_resp_free(&out);
    ckpt_msg_task_fetch_resp_free(NULL);
    ckpt_wbuf_free(&w);
}
END_TEST

static int encode_one(const struct ckpt_task *t, struct ckpt_wbuf *w)
{
    struct ckpt_msg_task_fetch_resp m = {.n = 1, .tasks = (struct ckpt_task *)t};
    return ckpt_msg_task_fetch_resp_encode(w, &m);
}

START_TEST(test_fetch_rejects)
{
    struct ckpt_task t;
    struct ckpt_msg_task_fetch_resp out;
    struct ckpt_wbuf w;
    uint8_t buf[2048];

    /* slot does not name lost_tid */
    sample_task(&t, 0);
    t.lost_tid = 14;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(encode_one(&t, &w), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    /* slot past the width */
    sample_task(&t, 0);
    t.slot = 7;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(encode_one(&t, &w), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    /* inverted stripe range */
    sample_task(&t, 0);
    t.stripe_lo = 5;
    t.stripe_hi = 4;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(encode_one(&t, &w), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    /* unknown kind */
    sample_task(&t, 0);
    t.kind = CKPT_TASK_NKINDS;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(encode_one(&t, &w), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    /* a hostile count */
    uint8_t hostile[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(hostile, sizeof(hostile), &out),
                     CKPT_E_PROTO);
    /* too many tasks to encode */
    struct ckpt_msg_task_fetch_resp big = {.n = CKPT_TASK_FETCH_MAX + 1, .tasks = &t};
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_encode(&w, &big), -EINVAL);
    ckpt_wbuf_free(&w);
    /* trailing bytes */
    sample_task(&t, 0);
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(encode_one(&t, &w), 0);
    ckpt_wr_u8(&w, 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
}
END_TEST

START_TEST(test_fetch_oom)
{
#ifdef CKPT_FAULT_INJECT
    struct ckpt_task t;
    struct ckpt_msg_task_fetch_resp out;
    struct ckpt_wbuf w;
    uint8_t buf[2048];
    sample_task(&t, 1);
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(encode_one(&t, &w), 0);
    long live = ckpt_alloc_live();
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), -ENOMEM);
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 0);
    ck_assert_int_eq(ckpt_alloc_live(), live);
    ck_assert_int_eq(ckpt_msg_task_fetch_resp_decode(w.p, w.len, &out), 0);
    ckpt_msg_task_fetch_resp_free(&out);
    ckpt_wbuf_free(&w);
#endif
}
END_TEST

START_TEST(test_small_messages)
{
    struct ckpt_wbuf w;
    uint8_t buf[256];
    struct ckpt_msg_task_fetch f = {.node_id = 4, .max = 8}, f2;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_fetch_encode(&w, &f), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_decode(w.p, w.len, &f2), 0);
    ck_assert_uint_eq(f2.node_id, 4);
    ck_assert_uint_eq(f2.max, 8);
    ckpt_wbuf_free(&w);
    f.max = 0;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_fetch_encode(&w, &f), 0);
    ck_assert_int_eq(ckpt_msg_task_fetch_decode(w.p, w.len, &f2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    struct ckpt_msg_task_done d = {.node_id = 2, .kind = CKPT_TASK_REBUILD, .ino = 9,
                                   .lost_tid = 3, .new_tid = 5, .data_gen = 2, .size = 77,
                                   .stripe_lo = 0, .stripe_hi = 1, .status = CKPT_E_UNRECOV,
                                   .chunks = 1, .bytes = 77}, d2;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_done_encode(&w, &d), 0);
    ck_assert_int_eq(ckpt_msg_task_done_decode(w.p, w.len, &d2), 0);
    ck_assert_int_eq(d2.status, CKPT_E_UNRECOV);
    ck_assert_uint_eq(d2.new_tid, 5);
    ck_assert_uint_eq(d2.bytes, 77);
    for (size_t len = 0; len < w.len; len++)
        ck_assert_int_eq(ckpt_msg_task_done_decode(w.p, len, &d2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    d.status = 5; /* positive statuses are not a thing */
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_task_done_encode(&w, &d), 0);
    ck_assert_int_eq(ckpt_msg_task_done_decode(w.p, w.len, &d2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    struct ckpt_msg_rebuild_status_resp s, s2;
    memset(&s, 0, sizeof(s));
    memset(&s2, 0, sizeof(s2));
    s.tasks_pending = 3;
    s.tasks_done = 4;
    s.bytes_done = 1u << 30;
    s.rate_bps = 5;
    s.eta_s = 6;
    s.lost_targets = 1;
    s.degraded_stripes = 12;
    s.moves_pending = 13;
    s.move_bytes_left = 14;
    s.moves_done = 15;
    s.move_bytes_done = 16;
    s.move_rate_bps = 17;
    s.move_eta_s = 18;
    s.max_rate_bps = 19;
    s.draining_nodes = 2;
    ckpt_wbuf_init(&w, buf, sizeof(buf));
    ck_assert_int_eq(ckpt_msg_rebuild_status_resp_encode(&w, &s), 0);
    ck_assert_int_eq(ckpt_msg_rebuild_status_resp_decode(w.p, w.len, &s2), 0);
    /* field by field: the compiler may write padding */
    ck_assert_uint_eq(s2.tasks_pending, 3);
    ck_assert_uint_eq(s2.tasks_done, 4);
    ck_assert_uint_eq(s2.bytes_done, 1u << 30);
    ck_assert_uint_eq(s2.rate_bps, 5);
    ck_assert_uint_eq(s2.eta_s, 6);
    ck_assert_uint_eq(s2.lost_targets, 1);
    ck_assert_uint_eq(s2.degraded_stripes, 12);
    ck_assert_uint_eq(s2.moves_pending, 13);
    ck_assert_uint_eq(s2.move_bytes_left, 14);
    ck_assert_uint_eq(s2.moves_done, 15);
    ck_assert_uint_eq(s2.move_bytes_done, 16);
    ck_assert_uint_eq(s2.move_rate_bps, 17);
    ck_assert_uint_eq(s2.move_eta_s, 18);
    ck_assert_uint_eq(s2.max_rate_bps, 19);
    ck_assert_uint_eq(s2.draining_nodes, 2);
    ck_assert_int_eq(ckpt_msg_rebuild_status_resp_decode(w.p, w.len - 1, &s2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
    ck_assert_str_eq(ckpt_task_kind_name(CKPT_TASK_REPAIR), "repair");
    ck_assert_str_eq(ckpt_task_kind_name(CKPT_TASK_MOVE), "move");
    ck_assert_str_eq(ckpt_task_kind_name(99), "?");
    ck_assert_str_eq(ckpt_op_name(CKPT_OP_TASK_FETCH), "TASK_FETCH");
}
END_TEST

Suite *msg_task_suite(void)
{
    Suite *s = suite_create("msg_task");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_fetch_roundtrip);
    tcase_add_test(tc, test_fetch_rejects);
    tcase_add_test(tc, test_fetch_oom);
    tcase_add_test(tc, test_small_messages);
    suite_add_tcase(s, tc);
    return s;
}

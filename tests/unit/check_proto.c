/*
 * check_proto.c - the wire format: header, codecs, and every message of
 * msg_node.h and msg_cluster.h (round trips and malformed inputs).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "msg_cluster.h"
#include "msg_meta.h"
#include "msg_node.h"
#include "proto.h"

static void mkhdr(uint8_t raw[CKPT_HDR_SIZE], uint16_t op, uint32_t flags, int32_t status,
                  uint32_t body_len, uint32_t bulk_len, const void *body)
{
    struct ckpt_hdr h = {.opcode = op, .flags = flags, .status = status, .req_id = 77,
                         .body_len = body_len, .bulk_len = bulk_len};
    ckpt_hdr_encode(raw, &h, body, body_len);
}

START_TEST(header_round_trip)
{
    uint8_t raw[CKPT_HDR_SIZE];
    const char body[] = "some body";
    struct ckpt_hdr h = {.opcode = CKPT_OP_CHUNK_WRITE, .flags = CKPT_MSG_F_RESPONSE,
                         .status = -ENOSPC, .req_id = 0x0102030405060708ull,
                         .body_len = sizeof(body), .bulk_len = 1u << 20};
    ckpt_hdr_encode(raw, &h, body, sizeof(body));
    /* Little endian on the wire, whatever the host. */
    ck_assert_uint_eq(raw[0], 'C');
    ck_assert_uint_eq(raw[3], 'T');
    ck_assert_uint_eq(raw[16], 0x08);
    struct ckpt_hdr d;
    ck_assert_int_eq(ckpt_hdr_decode(raw, &d), 0);
    ck_assert_int_eq(ckpt_hdr_verify(raw, body, sizeof(body)), 0);
    ck_assert_uint_eq(d.opcode, h.opcode);
    ck_assert_uint_eq(d.flags, h.flags);
    ck_assert_int_eq(d.status, h.status);
    ck_assert_uint_eq(d.req_id, h.req_id);
    ck_assert_uint_eq(d.body_len, h.body_len);
    ck_assert_uint_eq(d.bulk_len, h.bulk_len);
    ck_assert_uint_eq(d.version, CKPT_PROTO_VERSION);
    ck_assert_str_eq(ckpt_op_name(CKPT_OP_CHUNK_WRITE), "CHUNK_WRITE");
    ck_assert_ptr_null(ckpt_op_name(0x7777));
}
END_TEST

/* Each row corrupts a good header one way; all must be rejected. */
START_TEST(malformed_headers_rejected)
{
    uint8_t good[CKPT_HDR_SIZE], raw[CKPT_HDR_SIZE];
    struct ckpt_hdr d;
    mkhdr(good, CKPT_OP_PING, 0, 0, 4, 0, "abcd");
    static const struct {
        int off;
        uint32_t val;
        int width;
        int want;
        const char *what;
    } rows[] = {
        {0, 0x12345678, 4, CKPT_E_PROTO, "wrong magic"},
        {4, 2, 2, CKPT_E_VERSION, "future version"},
        {4, 0, 2, CKPT_E_VERSION, "version 0"},
        {6, 0x7777, 2, CKPT_E_PROTO, "unknown opcode"},
        {6, 0, 2, CKPT_E_PROTO, "opcode 0"},
        {8, 0x80, 4, CKPT_E_PROTO, "unknown flag"},
        {12, (uint32_t)-5, 4, CKPT_E_PROTO, "status on a request"},
        {24, CKPT_PROTO_MAX_BODY + 1, 4, CKPT_E_PROTO, "body over the limit"},
        {24, 0xffffffffu, 4, CKPT_E_PROTO, "body length overflows"},
        {28, CKPT_PROTO_MAX_BULK + 1, 4, CKPT_E_PROTO, "bulk over the limit"},
        {32, 1, 4, CKPT_E_PROTO, "reserved field set"},
    };
    ck_assert_int_eq(ckpt_hdr_decode(good, &d), 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memcpy(raw, good, sizeof(raw));
        for (int b = 0; b < rows[i].width; b++)
            raw[rows[i].off + b] = (uint8_t)(rows[i].val >> (8 * b));
        ck_assert_msg(ckpt_hdr_decode(raw, &d) == rows[i].want, "row %zu (%s)", i, rows[i].what);
    }
    /* crc: a flipped bit anywhere in header or body is caught. */
    for (int bit = 0; bit < 36 * 8; bit++) {
        memcpy(raw, good, sizeof(raw));
        raw[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ck_assert_int_eq(ckpt_hdr_verify(raw, "abcd", 4), CKPT_E_CRC);
    }
    ck_assert_int_eq(ckpt_hdr_verify(good, "abce", 4), CKPT_E_CRC);
    ck_assert_int_eq(ckpt_hdr_verify(good, "abcd", 4), 0);
}
END_TEST

START_TEST(codec_bounds_are_sticky)
{
    uint8_t st[8];
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_wr_u64(&w, 1);
    ckpt_wr_u32(&w, 2); /* outgrows the stack storage: moves to the heap */
    ckpt_wr_str(&w, "name", 4);
    ck_assert_int_eq(w.err, 0);
    ck_assert(w.heap);
    ck_assert_uint_eq(w.len, 8 + 4 + 2 + 4);

    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, w.p, w.len);
    ck_assert_uint_eq(ckpt_rd_u64(&r), 1);
    ck_assert_uint_eq(ckpt_rd_u32(&r), 2);
    size_t len;
    const char *s = ckpt_rd_str(&r, 3, &len); /* longer than allowed */
    ck_assert_ptr_null(s);
    ck_assert_int_eq(r.err, CKPT_E_PROTO);
    ck_assert_uint_eq(ckpt_rd_u32(&r), 0); /* sticky */
    ck_assert_int_eq(ckpt_rbuf_end(&r), CKPT_E_PROTO);

    ckpt_rbuf_init(&r, w.p, w.len);
    ckpt_rd_u64(&r);
    ck_assert_int_eq(ckpt_rbuf_end(&r), CKPT_E_PROTO); /* trailing bytes */

    /* A count that the remaining bytes could not hold. */
    uint8_t cnt[8] = {0xff, 0xff, 0, 0, 1, 2, 3, 4};
    ckpt_rbuf_init(&r, cnt, sizeof(cnt));
    ck_assert_uint_eq(ckpt_rd_count(&r, 1000000, 4), 0);
    ck_assert_int_eq(r.err, CKPT_E_PROTO);
    /* Strings with an embedded NUL are refused. */
    uint8_t nul[] = {3, 0, 'a', 0, 'b'};
    ckpt_rbuf_init(&r, nul, sizeof(nul));
    ck_assert_ptr_null(ckpt_rd_str(&r, 10, &len));
    /* Enums out of range. */
    uint8_t en[] = {4, 0, 0, 0};
    ckpt_rbuf_init(&r, en, sizeof(en));
    ckpt_rd_enum(&r, 4);
    ck_assert_int_eq(r.err, CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    /* The encoder refuses to grow past the body limit. */
    ckpt_wbuf_init(&w, NULL, 0);
    ck_assert_ptr_null(ckpt_wr_reserve(&w, CKPT_PROTO_MAX_BODY + 1));
    ck_assert_int_eq(w.err, -EMSGSIZE);
    ckpt_wbuf_free(&w);

    /* OOM while growing is an error, not a crash, and leaks nothing. */
    long live = ckpt_alloc_live();
    ckpt_wbuf_init(&w, st, sizeof(st));
    ckpt_fault_arm(CKPT_FAULT_ALLOC, 1);
    ckpt_wr_bytes(&w, "0123456789abcdef", 16);
    ckpt_fault_disarm_all();
    ck_assert_int_eq(w.err, -ENOMEM);
    ckpt_wbuf_free(&w);
    ck_assert_int_eq(ckpt_alloc_live(), live);
}
END_TEST

/* Encode m with enc, check that every strict prefix fails to decode and
 * that the whole decodes; returns the decoded copy through dec. */
#define ROUND_TRIP(type, m, out)                                                   \
    do {                                                                           \
        struct ckpt_wbuf w_;                                                       \
        ckpt_wbuf_init(&w_, NULL, 0);                                              \
        ck_assert_int_eq(ckpt_msg_##type##_encode(&w_, &(m)), 0);                 \
        for (size_t cut_ = 0; cut_ < w_.len; cut_++) {                             \
            memset(&(out), 0, sizeof(out));                                        \
            ck_assert_int_ne(ckpt_msg_##type##_decode(w_.p, cut_, &(out)), 0);    \
        }                                                                          \
        memset(&(out), 0, sizeof(out)); /* zero padding too, for memcmp */        \
        ck_assert_int_eq(ckpt_msg_##type##_decode(w_.p, w_.len, &(out)), 0);      \
        ckpt_wbuf_free(&w_);                                                       \
    } while (0)

START_TEST(node_messages_round_trip)
{
    /* Structs with padding are zeroed first so memcmp compares fields. */
    struct ckpt_msg_chunk_write cw, cw2;
    memset(&cw, 0, sizeof(cw));
    cw.target = 3;
    cw.key.ino = 1ull << 40;
    cw.key.stripe = 9;
    cw.key.index = 5;
    cw.gen = 12;
    cw.len = 1 << 20;
    cw.crc = 0xdeadbeef;
    cw.flags = CKPT_CHUNK_F_SYNC;
    ROUND_TRIP(chunk_write, cw, cw2);
    ck_assert_mem_eq(&cw, &cw2, sizeof(cw));

    struct ckpt_msg_chunk_read cr, cr2;
    memset(&cr, 0, sizeof(cr));
    cr.target = 1;
    cr.key.ino = 7;
    cr.key.stripe = 8;
    cr.key.index = 19;
    cr.offset = 4096;
    cr.len = 100;
    cr.min_gen = 3;
    ROUND_TRIP(chunk_read, cr, cr2);
    ck_assert_mem_eq(&cr, &cr2, sizeof(cr));

    struct ckpt_msg_chunk_read_resp rr, rr2;
    memset(&rr, 0, sizeof(rr));
    rr.gen = 5;
    rr.chunk_len = 77;
    rr.crc = 1;
    ROUND_TRIP(chunk_read_resp, rr, rr2);
    ck_assert_mem_eq(&rr, &rr2, sizeof(rr));

    struct ckpt_msg_chunk_locate loc, loc2;
    memset(&loc, 0, sizeof(loc));
    loc.target = 4;
    loc.key.ino = 77;
    loc.key.stripe = 1ull << 33;
    loc.key.index = 3;
    loc.min_gen = 6;
    for (int i = 0; i < CKPT_HOST_ID_LEN; i++)
        loc.host[i] = (uint8_t)(0xa0 + i);
    ROUND_TRIP(chunk_locate, loc, loc2);
    ck_assert_mem_eq(&loc, &loc2, sizeof(loc));

    struct ckpt_msg_chunk_locate_resp *lres = calloc(1, sizeof(*lres)),
                                      *lres2 = calloc(1, sizeof(*lres2));
    ck_assert_ptr_nonnull(lres);
    ck_assert_ptr_nonnull(lres2);
    lres->gen = 9;
    lres->chunk_len = 1 << 20;
    lres->crc = 0x12345678;
    lres->data_off = 4096;
    lres->dev = 0x803;
    lres->ino = 1ull << 50;
    snprintf(lres->path, sizeof(lres->path), "/srv/t1/chunks/05/0000000000000005/x.0001");
    ROUND_TRIP(chunk_locate_resp, *lres, *lres2);
    ck_assert_mem_eq(lres, lres2, sizeof(*lres));
    /* A relative or empty path is neither sent nor accepted. */
    {
        struct ckpt_wbuf w;
        ckpt_wbuf_init(&w, NULL, 0);
        snprintf(lres->path, sizeof(lres->path), "chunks/x");
        ck_assert_int_lt(ckpt_msg_chunk_locate_resp_encode(&w, lres), 0);
        lres->path[0] = '\0';
        ck_assert_int_lt(ckpt_msg_chunk_locate_resp_encode(&w, lres), 0);
        ckpt_wbuf_free(&w);
        /* hand-made: a valid reply with path "rel" */
        ckpt_wbuf_init(&w, NULL, 0);
        ckpt_wr_u64(&w, 1);
        ckpt_wr_u32(&w, 10);
        ckpt_wr_u32(&w, 0);
        ckpt_wr_u64(&w, 4096);
        ckpt_wr_u64(&w, 1);
        ckpt_wr_u64(&w, 2);
        ckpt_wr_str(&w, "rel", 3);
        ck_assert_int_eq(ckpt_msg_chunk_locate_resp_decode(w.p, w.len, lres2), CKPT_E_PROTO);
        ckpt_wbuf_free(&w);
    }
    free(lres);
    free(lres2);

    struct ckpt_msg_chunk_delete cd, cd2;
    memset(&cd, 0, sizeof(cd));
    cd.target = 2;
    cd.ino = 5;
    cd.from_stripe = 10;
    cd.below_gen = 4;
    ROUND_TRIP(chunk_delete, cd, cd2);
    ck_assert_mem_eq(&cd, &cd2, sizeof(cd));

    struct ckpt_msg_chunk_delete_resp dr = {.deleted = 12}, dr2;
    ROUND_TRIP(chunk_delete_resp, dr, dr2);
    ck_assert_uint_eq(dr2.deleted, 12);

    static struct ckpt_msg_chunk_sync cs, cs2;
    cs.target = CKPT_TARGET_ALL;
    cs.n = CKPT_SYNC_MAX_INOS;
    for (uint32_t i = 0; i < cs.n; i++)
        cs.inos[i] = i * 1000003ull;
    ROUND_TRIP(chunk_sync, cs, cs2);
    ck_assert_mem_eq(&cs, &cs2, sizeof(cs));

    static struct ckpt_msg_target_stats_resp ts, ts2;
    ts.n = 3;
    for (uint32_t i = 0; i < 3; i++)
        ts.t[i] = (struct ckpt_target_stat){.id = i + 1, .capacity = 1ull << 40, .free = i,
                                            .used = 7, .chunks = 99};
    ROUND_TRIP(target_stats_resp, ts, ts2);
    ck_assert_mem_eq(&ts, &ts2, sizeof(ts));

    struct ckpt_msg_chunk_list cl, cl2;
    memset(&cl, 0, sizeof(cl));
    cl.target = 4;
    cl.after.ino = 1;
    cl.after.stripe = 2;
    cl.after.index = 3;
    cl.has_after = 1;
    cl.max = 100;
    ROUND_TRIP(chunk_list, cl, cl2);
    ck_assert_mem_eq(&cl, &cl2, sizeof(cl));

    static struct ckpt_chunk_entry ents[3] = {{{1, 0, 0}, 1, 10}, {{1, 0, 1}, 1, 10}, {{2, 5, 3}, 9, 4096}};
    struct ckpt_msg_chunk_list_resp lr = {.n = 3, .more = 1, .entries = ents}, lr2;
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, NULL, 0);
    ck_assert_int_eq(ckpt_msg_chunk_list_resp_encode(&w, &lr), 0);
    long live = ckpt_alloc_live();
    for (size_t cut = 0; cut < w.len; cut++) {
        ck_assert_int_ne(ckpt_msg_chunk_list_resp_decode(w.p, cut, &lr2), 0);
        ck_assert_int_eq(ckpt_alloc_live(), live);
    }
    ck_assert_int_eq(ckpt_msg_chunk_list_resp_decode(w.p, w.len, &lr2), 0);
    ck_assert_uint_eq(lr2.n, 3);
    ck_assert_uint_eq(lr2.more, 1);
    ck_assert_mem_eq(lr2.entries, ents, sizeof(ents));
    ckpt_msg_chunk_list_resp_free(&lr2);
    ckpt_wbuf_free(&w);
}
END_TEST

START_TEST(node_messages_bounds)
{
    struct ckpt_wbuf w;
    struct ckpt_msg_chunk_write cw = {.key = {.index = CKPT_CHUNK_MAX_INDEX}}, d;
    ckpt_wbuf_init(&w, NULL, 0);
    ckpt_msg_chunk_write_encode(&w, &cw);
    ck_assert_int_eq(ckpt_msg_chunk_write_decode(w.p, w.len, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    cw.key.index = 0;
    cw.len = CKPT_CHUNK_MAX_LEN + 1;
    ckpt_wbuf_init(&w, NULL, 0);
    ckpt_msg_chunk_write_encode(&w, &cw);
    ck_assert_int_eq(ckpt_msg_chunk_write_decode(w.p, w.len, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    cw.len = 1;
    cw.flags = 0x100;
    ckpt_wbuf_init(&w, NULL, 0);
    ckpt_msg_chunk_write_encode(&w, &cw);
    ck_assert_int_eq(ckpt_msg_chunk_write_decode(w.p, w.len, &d), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    struct ckpt_msg_chunk_list cl = {.max = 0}, cl2;
    ckpt_wbuf_init(&w, NULL, 0);
    ckpt_msg_chunk_list_encode(&w, &cl);
    ck_assert_int_eq(ckpt_msg_chunk_list_decode(w.p, w.len, &cl2), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);

    /* A sync count beyond the limit. */
    uint8_t sb[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    static struct ckpt_msg_chunk_sync cs;
    ck_assert_int_eq(ckpt_msg_chunk_sync_decode(sb, sizeof(sb), &cs), CKPT_E_PROTO);
}
END_TEST

START_TEST(cluster_messages_round_trip)
{
    static struct ckpt_msg_node_register nr, nr2;
    memset(nr.uuid, 0xab, sizeof(nr.uuid));
    nr.node_id = 4;
    strcpy(nr.name, "node4");
    strcpy(nr.rack, "rack-b");
    strcpy(nr.host, "10.0.0.4");
    nr.port = 7401;
    nr.transports = CKPT_XPORT_TCP;
    nr.n = 2;
    nr.t[0] = (struct ckpt_reg_target){.id = 0, .capacity = 100, .free = 50};
    strcpy(nr.t[0].path, "/nvme0/ckptfs");
    nr.t[1] = (struct ckpt_reg_target){.id = 9, .capacity = 200, .free = 10};
    strcpy(nr.t[1].path, "/nvme1/ckptfs");
    ROUND_TRIP(node_register, nr, nr2);
    ck_assert_mem_eq(&nr, &nr2, sizeof(nr));

    static struct ckpt_msg_node_register_resp rr, rr2;
    rr.node_id = 4;
    rr.epoch = 77;
    rr.heartbeat_ms = 1000;
    rr.n = 2;
    rr.target_ids[0] = 10;
    rr.target_ids[1] = 9;
    ROUND_TRIP(node_register_resp, rr, rr2);
    ck_assert_mem_eq(&rr, &rr2, sizeof(rr));

    static struct ckpt_msg_heartbeat hb, hb2;
    hb.node_id = 4;
    hb.n = 1;
    hb.t[0] = (struct ckpt_target_stat){.id = 10, .capacity = 5, .free = 4, .used = 1, .chunks = 2};
    ROUND_TRIP(heartbeat, hb, hb2);
    ck_assert_mem_eq(&hb, &hb2, sizeof(hb));

    struct ckpt_msg_cluster_map cm = {.known_epoch = 5}, cm2;
    ROUND_TRIP(cluster_map, cm, cm2);
    ck_assert_uint_eq(cm2.known_epoch, 5);

    static struct ckpt_map_node nodes[2] = {
        {.id = 1, .state = CKPT_NODE_UP, .name = "node1", .host = "127.0.0.1", .port = 7401,
         .transports = CKPT_XPORT_TCP, .last_seen_ms = 3},
        {.id = 2, .state = CKPT_NODE_DOWN, .name = "node2", .rack = "r2", .host = "::1",
         .port = 7402, .transports = CKPT_XPORT_TCP | CKPT_XPORT_RDMA, .rdma_port = 7500}};
    static struct ckpt_map_target targets[3] = {
        {.id = 1, .node_id = 1, .state = CKPT_NODE_UP, .capacity = 1000, .free = 600},
        {.id = 2, .node_id = 2, .state = CKPT_NODE_DOWN, .capacity = 1000, .free = 500},
        {.id = 3, .node_id = 2, .state = CKPT_NODE_DOWN, .capacity = 2000, .free = 0, .chunks = 9}};
    struct ckpt_msg_cluster_map_resp mr = {.epoch = 42, .cluster = "test", .n_nodes = 2,
                                           .nodes = nodes, .n_targets = 3, .targets = targets},
                                     mr2;
    ckpt_layout_default(&mr.layout);
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, NULL, 0);
    ck_assert_int_eq(ckpt_msg_cluster_map_resp_encode(&w, &mr), 0);
    long live = ckpt_alloc_live();
    for (size_t cut = 0; cut < w.len; cut++) {
        ck_assert_int_ne(ckpt_msg_cluster_map_resp_decode(w.p, cut, &mr2), 0);
        ck_assert_int_eq(ckpt_alloc_live(), live);
    }
    ck_assert_int_eq(ckpt_msg_cluster_map_resp_decode(w.p, w.len, &mr2), 0);
    ck_assert_uint_eq(mr2.epoch, 42);
    ck_assert_str_eq(mr2.cluster, "test");
    ck_assert_uint_eq(mr2.layout.k, 4);
    ck_assert_uint_eq(mr2.layout.m, 2);
    ck_assert_uint_eq(mr2.n_nodes, 2);
    ck_assert_mem_eq(mr2.nodes, nodes, sizeof(nodes));
    ck_assert_uint_eq(mr2.n_targets, 3);
    ck_assert_mem_eq(mr2.targets, targets, sizeof(targets));
    ckpt_msg_cluster_map_resp_free(&mr2);
    ckpt_wbuf_free(&w);
    ck_assert_str_eq(ckpt_node_state_name(CKPT_NODE_OUT), "OUT");
    ck_assert_str_eq(ckpt_node_state_name(99), "?");
}
END_TEST

START_TEST(layout_on_the_wire)
{
    struct ckpt_layout l, l2;
    ckpt_layout_default(&l);
    l.width = 8;
    for (int i = 0; i < 8; i++)
        l.targets[i] = 100 + (uint32_t)i;
    struct ckpt_wbuf w;
    struct ckpt_rbuf r;
    ckpt_wbuf_init(&w, NULL, 0);
    ckpt_wr_layout(&w, &l);
    ckpt_rbuf_init(&r, w.p, w.len);
    ckpt_rd_layout(&r, &l2);
    ck_assert_int_eq(ckpt_rbuf_end(&r), 0);
    ck_assert_mem_eq(&l, &l2, sizeof(l));
    /* k = 0 is impossible and must not decode. */
    w.p[0] = 0;
    ckpt_rbuf_init(&r, w.p, w.len);
    ckpt_rd_layout(&r, &l2);
    ck_assert_int_eq(ckpt_rbuf_end(&r), CKPT_E_PROTO);
    /* width below k+m. */
    w.p[0] = 4;
    w.p[2] = 5;
    ckpt_rbuf_init(&r, w.p, w.len);
    ckpt_rd_layout(&r, &l2);
    ck_assert_int_eq(ckpt_rbuf_end(&r), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
}
END_TEST


static void fill_attr(struct ckpt_attr *a, uint64_t ino)
{
    memset(a, 0, sizeof(*a));
    a->ino = ino;
    a->size = 12345;
    a->generation = 2;
    a->data_gen = 3;
    a->mode = 0100644;
    a->uid = 1000;
    a->gid = 100;
    a->nlink = 1;
    a->flags = CKPT_ATTR_F_INCOMPLETE;
    a->atime_sec = -5;
    a->mtime_sec = 1700000000;
    a->ctime_sec = 1700000001;
    a->atime_nsec = 999999999;
}

START_TEST(meta_messages_round_trip)
{
    static struct ckpt_msg_name nm, nm2;
    nm.parent = 1;
    memset(nm.name, 'n', CKPT_PROTO_MAX_NAME); /* the longest name allowed */
    ROUND_TRIP(name, nm, nm2);
    ck_assert_mem_eq(&nm, &nm2, sizeof(nm));

    static struct ckpt_msg_attr_resp ar, ar2;
    fill_attr(&ar.attr, 77);
    ROUND_TRIP(attr_resp, ar, ar2);
    ck_assert_mem_eq(&ar, &ar2, sizeof(ar));

    static struct ckpt_msg_setattr sa, sa2;
    sa.ino = 9;
    sa.valid = CKPT_SETATTR_SIZE | CKPT_SETATTR_MTIME;
    sa.size = 1ull << 40;
    sa.mtime_sec = 5;
    ROUND_TRIP(setattr, sa, sa2);
    ck_assert_mem_eq(&sa, &sa2, sizeof(sa));

    static struct ckpt_msg_mknod mk, mk2;
    mk.parent = 1;
    strcpy(mk.name, "dev");
    mk.mode = 020644;
    mk.rdev = 0x0801;
    ROUND_TRIP(mknod, mk, mk2);
    ck_assert_mem_eq(&mk, &mk2, sizeof(mk));

    static struct ckpt_msg_symlink sl, sl2;
    sl.parent = 1;
    strcpy(sl.name, "ln");
    strcpy(sl.target, "../a/b");
    ROUND_TRIP(symlink, sl, sl2);
    ck_assert_mem_eq(&sl, &sl2, sizeof(sl));

    static struct ckpt_msg_rename rn, rn2;
    rn.oldparent = 1;
    strcpy(rn.oldname, "a");
    rn.newparent = 2;
    strcpy(rn.newname, "b");
    rn.flags = CKPT_RENAME_EXCHANGE;
    ROUND_TRIP(rename, rn, rn2);
    ck_assert_mem_eq(&rn, &rn2, sizeof(rn));

    static struct ckpt_dirent ents[2];
    ents[0].ino = 5;
    ents[0].next_cookie = 3;
    ents[0].type = 8;
    strcpy(ents[0].name, "file");
    fill_attr(&ents[0].attr, 5);
    ents[1].ino = 6;
    ents[1].next_cookie = 4;
    ents[1].type = 4;
    strcpy(ents[1].name, "dir");
    fill_attr(&ents[1].attr, 6);
    struct ckpt_msg_readdir_resp rd = {.eof = 1, .plus = 1, .n = 2, .ents = ents}, rd2;
    struct ckpt_wbuf w;
    ckpt_wbuf_init(&w, NULL, 0);
    ck_assert_int_eq(ckpt_msg_readdir_resp_encode(&w, &rd), 0);
    long live = ckpt_alloc_live();
    for (size_t cut = 0; cut < w.len; cut++) {
        ck_assert_int_ne(ckpt_msg_readdir_resp_decode(w.p, cut, &rd2), 0);
        ck_assert_int_eq(ckpt_alloc_live(), live);
    }
    ck_assert_int_eq(ckpt_msg_readdir_resp_decode(w.p, w.len, &rd2), 0);
    ck_assert_uint_eq(rd2.n, 2);
    ck_assert_mem_eq(rd2.ents, ents, sizeof(ents));
    ckpt_msg_readdir_resp_free(&rd2);
    ckpt_wbuf_free(&w);

    static struct ckpt_msg_open_resp op, op2;
    fill_attr(&op.attr, 9);
    ckpt_layout_default(&op.layout);
    for (int i = 0; i < 6; i++)
        op.layout.targets[i] = 10 + (uint32_t)i;
    op.handle = 0xabcdef;
    ROUND_TRIP(open_resp, op, op2);
    ck_assert_mem_eq(&op, &op2, sizeof(op));

    static struct ckpt_msg_release rl, rl2;
    rl.ino = 9;
    rl.handle = 3;
    rl.session = 4;
    rl.wrote = 1;
    rl.has_checksum = 1;
    rl.size = 1 << 30;
    rl.checksum = 0x12345678;
    ROUND_TRIP(release, rl, rl2);
    ck_assert_mem_eq(&rl, &rl2, sizeof(rl));

    static struct ckpt_msg_session_resp sr, sr2;
    sr.session = 8;
    sr.lease_ms = 10000;
    ROUND_TRIP(session_resp, sr, sr2);
    ck_assert_mem_eq(&sr, &sr2, sizeof(sr));

    struct ckpt_msg_setxattr sx = {.ino = 4, .flags = CKPT_XATTR_CREATE, .value_len = 3,
                                   .value = (const uint8_t *)"abc"}, sx2;
    strcpy(sx.name, "user.x");
    ROUND_TRIP(setxattr, sx, sx2);
    ck_assert_str_eq(sx2.name, "user.x");
    ck_assert_uint_eq(sx2.value_len, 3);
}
END_TEST

START_TEST(meta_messages_reject_bad_names)
{
    static const char *bad[] = {"", "a/b", "/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t buf[64];
        struct ckpt_wbuf w;
        struct ckpt_msg_name m;
        ckpt_wbuf_init(&w, buf, sizeof(buf));
        ckpt_wr_u64(&w, 1);
        ckpt_wr_str(&w, bad[i], strlen(bad[i]));
        ck_assert_int_eq(ckpt_msg_name_decode(w.p, w.len, &m), CKPT_E_PROTO);
        ckpt_wbuf_free(&w);
    }
    /* 256 bytes is one too many. */
    char longname[300];
    memset(longname, 'x', 256);
    struct ckpt_wbuf w;
    struct ckpt_msg_name m;
    ckpt_wbuf_init(&w, NULL, 0);
    ckpt_wr_u64(&w, 1);
    ckpt_wr_str(&w, longname, 256);
    ck_assert_int_eq(ckpt_msg_name_decode(w.p, w.len, &m), CKPT_E_PROTO);
    ckpt_wbuf_free(&w);
}
END_TEST

Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("wire");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, header_round_trip);
    tcase_add_test(tc, malformed_headers_rejected);
    tcase_add_test(tc, codec_bounds_are_sticky);
    tcase_add_test(tc, node_messages_round_trip);
    tcase_add_test(tc, node_messages_bounds);
    tcase_add_test(tc, cluster_messages_round_trip);
    tcase_add_test(tc, layout_on_the_wire);
    tcase_add_test(tc, meta_messages_round_trip);
    tcase_add_test(tc, meta_messages_reject_bad_names);
    suite_add_tcase(s, tc);
    return s;
}

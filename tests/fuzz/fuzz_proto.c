/*
 * fuzz_proto.c - every wire decoder against arbitrary bytes.
 *
 * The first input byte picks a decoder (header, or one of the message
 * bodies of msg_node.h and msg_cluster.h; some selectors try two decoders
 * on the same bytes); the rest is its input.  A
 * decoder must return an error or a value, never read out of bounds, crash
 * or leak: decoded arrays are freed, and the live-allocation count must
 * come back to where it started.  Anything that decodes is re-encoded and
 * must decode again to the same bytes (canonical encoding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msg_cluster.h"
#include "msg_meta.h"
#include "msg_node.h"
#include "fuzz_reencode.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    static struct ckpt_msg_chunk_sync cs;
    static struct ckpt_msg_node_register nr;
    static struct ckpt_msg_node_register_resp nrr;
    static struct ckpt_msg_heartbeat hb;
    static struct ckpt_msg_target_stats_resp ts;
    if (size < 1)
        return 0;
    long live = ckpt_alloc_live();
    const uint8_t *data = in + 1;
    size_t len = size - 1;
    static struct ckpt_msg_symlink sl;
    static struct ckpt_msg_readlink_resp rl;
    switch (in[0] % 32) {
    case 0: {
        struct ckpt_hdr h;
        if (len >= CKPT_HDR_SIZE && ckpt_hdr_decode(data, &h) == 0)
            (void)ckpt_hdr_verify(data, data + CKPT_HDR_SIZE,
                                  h.body_len <= len - CKPT_HDR_SIZE ? h.body_len : 0);
        break;
    }
    case 1: {
        struct ckpt_msg_chunk_write m;
        if (ckpt_msg_chunk_write_decode(data, len, &m) == 0)
            REENCODE(chunk_write, &m);
        break;
    }
    case 2: {
        struct ckpt_msg_chunk_read m;
        struct ckpt_msg_chunk_locate lm;
        if (ckpt_msg_chunk_read_decode(data, len, &m) == 0)
            REENCODE(chunk_read, &m);
        if (ckpt_msg_chunk_locate_decode(data, len, &lm) == 0)
            REENCODE(chunk_locate, &lm);
        break;
    }
    case 3: {
        struct ckpt_msg_chunk_read_resp m;
        static struct ckpt_msg_chunk_locate_resp lr;
        if (ckpt_msg_chunk_read_resp_decode(data, len, &m) == 0)
            REENCODE(chunk_read_resp, &m);
        if (ckpt_msg_chunk_locate_resp_decode(data, len, &lr) == 0)
            REENCODE(chunk_locate_resp, &lr);
        break;
    }
    case 4: {
        struct ckpt_msg_chunk_delete m;
        if (ckpt_msg_chunk_delete_decode(data, len, &m) == 0)
            REENCODE(chunk_delete, &m);
        break;
    }
    case 5:
        if (ckpt_msg_chunk_sync_decode(data, len, &cs) == 0)
            REENCODE(chunk_sync, &cs);
        break;
    case 6:
        if (ckpt_msg_target_stats_resp_decode(data, len, &ts) == 0)
            REENCODE(target_stats_resp, &ts);
        break;
    case 7: {
        struct ckpt_msg_chunk_list m;
        if (ckpt_msg_chunk_list_decode(data, len, &m) == 0)
            REENCODE(chunk_list, &m);
        break;
    }
    case 8: {
        struct ckpt_msg_chunk_list_resp m;
        if (ckpt_msg_chunk_list_resp_decode(data, len, &m) == 0) {
            REENCODE(chunk_list_resp, &m);
            ckpt_msg_chunk_list_resp_free(&m);
        }
        break;
    }
    case 9:
        if (ckpt_msg_node_register_decode(data, len, &nr) == 0)
            REENCODE(node_register, &nr);
        break;
    case 10:
        if (ckpt_msg_node_register_resp_decode(data, len, &nrr) == 0)
            REENCODE(node_register_resp, &nrr);
        break;
    case 11:
        if (ckpt_msg_heartbeat_decode(data, len, &hb) == 0)
            REENCODE(heartbeat, &hb);
        break;
    case 12: {
        struct ckpt_msg_cluster_map_resp m;
        if (ckpt_msg_cluster_map_resp_decode(data, len, &m) == 0) {
            REENCODE(cluster_map_resp, &m);
            ckpt_msg_cluster_map_resp_free(&m);
        }
        break;
    }
    case 13: {
        struct ckpt_rbuf r;
        struct ckpt_layout l;
        ckpt_rbuf_init(&r, data, len);
        ckpt_rd_layout(&r, &l);
        (void)ckpt_rbuf_end(&r);
        break;
    }
    case 14: {
        struct ckpt_msg_name m;
        if (ckpt_msg_name_decode(data, len, &m) == 0)
            REENCODE(name, &m);
        break;
    }
    case 15: {
        struct ckpt_msg_attr_resp m;
        if (ckpt_msg_attr_resp_decode(data, len, &m) == 0)
            REENCODE(attr_resp, &m);
        break;
    }
    case 16: {
        struct ckpt_msg_setattr m;
        if (ckpt_msg_setattr_decode(data, len, &m) == 0)
            REENCODE(setattr, &m);
        break;
    }
    case 17: {
        struct ckpt_msg_mknod m;
        if (ckpt_msg_mknod_decode(data, len, &m) == 0)
            REENCODE(mknod, &m);
        break;
    }
    case 18: {
        struct ckpt_msg_link m;
        if (ckpt_msg_link_decode(data, len, &m) == 0)
            REENCODE(link, &m);
        break;
    }
    case 19:
        if (ckpt_msg_symlink_decode(data, len, &sl) == 0)
            REENCODE(symlink, &sl);
        break;
    case 20:
        if (ckpt_msg_readlink_resp_decode(data, len, &rl) == 0)
            REENCODE(readlink_resp, &rl);
        break;
    case 21: {
        struct ckpt_msg_rename m;
        if (ckpt_msg_rename_decode(data, len, &m) == 0)
            REENCODE(rename, &m);
        break;
    }
    case 22: {
        struct ckpt_msg_readdir m;
        if (ckpt_msg_readdir_decode(data, len, &m) == 0)
            REENCODE(readdir, &m);
        break;
    }
    case 23: {
        struct ckpt_msg_readdir_resp m;
        if (ckpt_msg_readdir_resp_decode(data, len, &m) == 0) {
            REENCODE(readdir_resp, &m);
            ckpt_msg_readdir_resp_free(&m);
        }
        break;
    }
    case 24: {
        struct ckpt_msg_statfs_resp m;
        if (ckpt_msg_statfs_resp_decode(data, len, &m) == 0)
            REENCODE(statfs_resp, &m);
        break;
    }
    case 25: {
        struct ckpt_msg_setxattr m;
        if (ckpt_msg_setxattr_decode(data, len, &m) == 0)
            REENCODE(setxattr, &m);
        break;
    }
    case 26: {
        struct ckpt_msg_xattr_name m;
        if (ckpt_msg_xattr_name_decode(data, len, &m) == 0)
            REENCODE(xattr_name, &m);
        break;
    }
    case 27: {
        struct ckpt_msg_session m;
        struct ckpt_msg_session_resp mr;
        if (ckpt_msg_session_decode(data, len, &m) == 0)
            REENCODE(session, &m);
        if (ckpt_msg_session_resp_decode(data, len, &mr) == 0)
            REENCODE(session_resp, &mr);
        break;
    }
    case 28: {
        struct ckpt_msg_open m;
        if (ckpt_msg_open_decode(data, len, &m) == 0)
            REENCODE(open, &m);
        break;
    }
    case 29: {
        struct ckpt_msg_create m;
        if (ckpt_msg_create_decode(data, len, &m) == 0)
            REENCODE(create, &m);
        break;
    }
    case 30: {
        struct ckpt_msg_open_resp m;
        struct ckpt_msg_release mr;
        if (ckpt_msg_open_resp_decode(data, len, &m) == 0)
            REENCODE(open_resp, &m);
        if (ckpt_msg_release_decode(data, len, &mr) == 0)
            REENCODE(release, &mr);
        break;
    }
    case 31: {
        struct ckpt_msg_degraded m;
        struct ckpt_msg_xattr_value v;
        if (ckpt_msg_degraded_decode(data, len, &m) == 0) {
            REENCODE(degraded, &m);
            ckpt_msg_degraded_free(&m);
        }
        if (ckpt_msg_xattr_value_decode(data, len, &v) == 0)
            REENCODE(xattr_value, &v);
        break;
    }
    }
    if (ckpt_alloc_live() != live)
        abort();
    return 0;
}

#include "fuzz_main.inc"

/*
 * fuzz_msg_admin.c - the operator message decoders (lib/msg_admin.h)
 * against arbitrary bytes.
 *
 * The first input byte picks a decoder (NODE_STATE, NODE_INFO, its reply,
 * REBALANCE, its reply); the rest is its input.  A decoder must return an
 * error or a value, never read out of bounds, crash or leak (the decoded
 * target array of a REBALANCE reply is freed and the live-allocation count
 * must come back to where it started).  Anything that decodes obeys the
 * documented ranges and is re-encoded to the same bytes (canonical
 * encoding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msg_admin.h"
#include "fuzz_reencode.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 1)
        return 0;
    long live = ckpt_alloc_live();
    const uint8_t *data = in + 1;
    size_t len = size - 1;
    switch (in[0] % 5) {
    case 0: {
        struct ckpt_msg_node_state m;
        if (ckpt_msg_node_state_decode(data, len, &m) == 0) {
            if (m.node_id == 0 || m.op >= CKPT_ADMIN_NODE_NOPS)
                abort();
            REENCODE(node_state, &m);
        }
        break;
    }
    case 1: {
        struct ckpt_msg_node_info m;
        if (ckpt_msg_node_info_decode(data, len, &m) == 0) {
            if (m.node_id == 0)
                abort();
            REENCODE(node_info, &m);
        }
        break;
    }
    case 2: {
        struct ckpt_msg_node_info_resp m;
        if (ckpt_msg_node_info_resp_decode(data, len, &m) == 0)
            REENCODE(node_info_resp, &m);
        break;
    }
    case 3: {
        struct ckpt_msg_rebalance m;
        if (ckpt_msg_rebalance_decode(data, len, &m) == 0) {
            if (m.threshold_pct == 0 || m.threshold_pct > 100 ||
                (m.flags & ~CKPT_REBALANCE_DRY_RUN))
                abort();
            REENCODE(rebalance, &m);
        }
        break;
    }
    default: {
        struct ckpt_msg_rebalance_resp m;
        if (ckpt_msg_rebalance_resp_decode(data, len, &m) == 0) {
            if (m.n > CKPT_REBALANCE_MAX_TARGETS || (m.n && !m.targets))
                abort();
            REENCODE(rebalance_resp, &m);
            ckpt_msg_rebalance_resp_free(&m);
        }
        break;
    }
    }
    if (ckpt_alloc_live() != live)
        abort();
    return 0;
}

#include "fuzz_main.inc"

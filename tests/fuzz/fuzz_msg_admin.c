/*
 * fuzz_msg_admin.c - the operator message decoder (lib/msg_admin.h,
 * NODE_STATE) against arbitrary bytes.
 *
 * The decoder must return an error or a value, never read out of bounds,
 * crash or allocate; anything that decodes is re-encoded and must give the
 * same bytes again (canonical encoding), with a non-zero node id and a
 * known op.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msg_admin.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    long live = ckpt_alloc_live();
    struct ckpt_msg_node_state m;
    if (ckpt_msg_node_state_decode(data, len, &m) == 0) {
        struct ckpt_wbuf w;
        if (m.node_id == 0 || m.op >= CKPT_ADMIN_NODE_NOPS)
            abort();
        ckpt_wbuf_init(&w, NULL, 0);
        if (ckpt_msg_node_state_encode(&w, &m) == 0 &&
            (w.len != len || memcmp(w.p, data, len) != 0))
            abort();
        ckpt_wbuf_free(&w);
    }
    if (ckpt_alloc_live() != live)
        abort();
    return 0;
}

#include "fuzz_main.inc"

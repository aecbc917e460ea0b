/*
 * fuzz_msg_task.c - the rebuild task decoders (lib/msg_task.h) against
 * arbitrary bytes.
 *
 * The first input byte picks a decoder (TASK_FETCH, its reply, TASK_DONE,
 * REBUILD_STATUS reply); the rest is its input.  A decoder must return an
 * error or a value, never read out of bounds, crash or leak (the decoded
 * task array is freed and the live-allocation count must come back to where
 * it started).  Anything that decodes is re-encoded and must give the same
 * bytes again (canonical encoding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msg_task.h"
#include "fuzz_reencode.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 1)
        return 0;
    long live = ckpt_alloc_live();
    const uint8_t *data = in + 1;
    size_t len = size - 1;
    switch (in[0] % 4) {
    case 0: {
        struct ckpt_msg_task_fetch m;
        if (ckpt_msg_task_fetch_decode(data, len, &m) == 0)
            REENCODE(task_fetch, &m);
        break;
    }
    case 1: {
        struct ckpt_msg_task_fetch_resp m;
        if (ckpt_msg_task_fetch_resp_decode(data, len, &m) == 0) {
            REENCODE(task_fetch_resp, &m);
            ckpt_msg_task_fetch_resp_free(&m);
        }
        break;
    }
    case 2: {
        struct ckpt_msg_task_done m;
        if (ckpt_msg_task_done_decode(data, len, &m) == 0)
            REENCODE(task_done, &m);
        break;
    }
    default: {
        struct ckpt_msg_rebuild_status_resp m;
        if (ckpt_msg_rebuild_status_resp_decode(data, len, &m) == 0)
            REENCODE(rebuild_status_resp, &m);
        break;
    }
    }
    if (ckpt_alloc_live() != live)
        abort();
    return 0;
}

#include "fuzz_main.inc"

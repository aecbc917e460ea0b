/*
 * fuzz_reencode.h - REENCODE(type, msgp), shared by the message fuzz
 * targets: a message that decoded from (data, len) must encode with
 * ckpt_msg_<type>_encode() to exactly those bytes again (canonical
 * encoding), or the target aborts.  Needs <stdlib.h>, <string.h> and
 * proto.h, and locals named data and len.
 */
#ifndef FUZZ_REENCODE_H
#define FUZZ_REENCODE_H

#define REENCODE(type, msgp)                                                  \
    do {                                                                      \
        struct ckpt_wbuf w_;                                                  \
        ckpt_wbuf_init(&w_, NULL, 0);                                         \
        if (ckpt_msg_##type##_encode(&w_, (msgp)) == 0 &&                     \
            (w_.len != len || memcmp(w_.p, data, len) != 0))                  \
            abort();                                                          \
        ckpt_wbuf_free(&w_);                                                  \
    } while (0)

#endif

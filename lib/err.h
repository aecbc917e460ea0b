/*
 * err.h - the one error domain of ckptfs.
 *
 * Fallible functions return int: 0 on success, a negative errno on failure
 * (-EIO, -ENOMEM, ...).  Failures errno cannot express live in one reserved
 * range far below errno, starting at CKPT_E_BASE, in the style of LMDB's
 * -30799 range.  ckpt_strerror() names both kinds; there are no converters
 * between domains.  The FUSE layer maps a code to an errno once, with
 * ckpt_err_to_errno(), at fuse_reply_err().
 */
#ifndef CKPT_ERR_H
#define CKPT_ERR_H

#include "log.h"

#define CKPT_E_BASE (-4000)
enum ckpt_err {
    CKPT_E_CRC = CKPT_E_BASE - 1,       /* data failed its crc32c */
    CKPT_E_PROTO = CKPT_E_BASE - 2,     /* malformed or unexpected message */
    CKPT_E_AUTH = CKPT_E_BASE - 3,      /* peer failed cluster-key auth */
    CKPT_E_STALE = CKPT_E_BASE - 4,     /* stale epoch or generation */
    CKPT_E_UNRECOV = CKPT_E_BASE - 5,   /* more erasures than parity */
    CKPT_E_VERSION = CKPT_E_BASE - 6,   /* protocol/format version mismatch */
    CKPT_E_CONFIG = CKPT_E_BASE - 7,    /* invalid configuration */
    CKPT_E_CLOSED = CKPT_E_BASE - 8,    /* connection closed or shut down */
    CKPT_E_TORN = CKPT_E_BASE - 9,      /* chunk incomplete (torn write) */
    CKPT_E_CLUSTER = CKPT_E_BASE - 10,  /* object belongs to another cluster */
    CKPT_E_LAST = CKPT_E_BASE - 11,
};

/**
 * @brief Describe an error code.
 * @param[in] rc  0, a negative errno, or a CKPT_E_* code
 * @return a static string; never NULL.  Thread-safe.
 */
const char *ckpt_strerror(int rc);

/**
 * @brief Map a code to the positive errno an application should see.
 * CKPT_E_* codes that mean "data unavailable" map to EIO; CKPT_E_AUTH to
 * EACCES; CKPT_E_CLOSED to ENOTCONN; CKPT_E_STALE to ESTALE.
 * @return a positive errno (EIO for anything unknown); 0 for rc >= 0.
 */
int ckpt_err_to_errno(int rc);

#define CKPT_RC_FMT "%s(%d)"
#define CKPT_RC_ARGS(rc) ckpt_strerror(rc), (rc)

/* Evaluate expr once; on a negative result log it at debug level with
 * file:line and return it from the enclosing function (zstd FORWARD_IF_ERROR). */
#define CKPT_TRY(expr)                                                        \
    do {                                                                      \
        int ckpt_try_rc_ = (expr);                                            \
        if (ckpt_try_rc_ < 0) {                                               \
            CKPT_LOG_DEBUG("%s -> " CKPT_RC_FMT, #expr,                       \
                           CKPT_RC_ARGS(ckpt_try_rc_));                       \
            return ckpt_try_rc_;                                              \
        }                                                                     \
    } while (0)

#endif

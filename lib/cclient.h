/*
 * cclient.h - typed client of ckpt-meta's checkpoint messages (msg_ckpt.h),
 * used by the `ckpt` tool.
 *
 * One ckpt_cclient is one ckpt_peer to ckpt-meta (it reconnects by itself
 * when ckpt-meta restarts).  No session is needed: these messages do not
 * open files.  Calls are synchronous and thread-safe.  They return 0 or a
 * negative code: what ckpt-meta answered (see msg_ckpt.h) or a transport
 * error (-ETIMEDOUT, -ECONNREFUSED, CKPT_E_CLOSED, CKPT_E_AUTH...).  LIST,
 * INFO and MANIFEST are retried across a reconnect for up to 10 s; COMMIT
 * (idempotent: committing twice answers the same) is sent again after a
 * lost connection or a -EAGAIN ("changed while committing") until its own
 * timeout is used up.
 */
#ifndef CKPT_CCLIENT_H
#define CKPT_CCLIENT_H

#include <stdint.h>

#include "msg_ckpt.h"
#include "net.h"

typedef struct ckpt_cclient ckpt_cclient;

/**
 * @brief Create a client of ckpt-meta at host:port (connects lazily).
 * @param[in] net  borrowed; must outlive the client
 * @return 0, -EINVAL, -ENOMEM.
 */
int ckpt_cclient_create(ckpt_net *net, const char *host, uint16_t port, ckpt_cclient **out);
/** @brief Free.  NULL is a no-op. */
void ckpt_cclient_destroy(ckpt_cclient *cc);

/**
 * @brief Commit the checkpoint directory ino (waits up to timeout_ms on
 * ckpt-meta, plus transport slack here).
 * @param[out] out  the committed checkpoint's info
 */
int ckpt_cclient_commit(ckpt_cclient *cc, uint64_t ino, uint32_t timeout_ms, uint32_t flags,
                        struct ckpt_ckpt_info *out);
/** @brief Checkpoints of job directory ino, newest first; free with
 *  ckpt_msg_ckpt_list_resp_free(). */
int ckpt_cclient_list(ckpt_cclient *cc, uint64_t ino, struct ckpt_msg_ckpt_list_resp *out);
/** @brief One checkpoint directory's info. */
int ckpt_cclient_info(ckpt_cclient *cc, uint64_t ino, struct ckpt_ckpt_info *out);
/** @brief Manifest entries after cookie; free with ckpt_msg_manifest_resp_free().
 *  -ENOENT when the checkpoint is not COMMITTED. */
int ckpt_cclient_manifest(ckpt_cclient *cc, uint64_t ino, uint64_t cookie, uint32_t max,
                          struct ckpt_msg_manifest_resp *out);

#endif

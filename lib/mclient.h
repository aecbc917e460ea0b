/*
 * mclient.h - typed client of ckpt-meta, used by the FUSE client and the
 * tools (ckpt, ckpt-admin).
 *
 * One ckpt_mclient is one session with ckpt-meta over a ckpt_peer (so it
 * reconnects by itself when ckpt-meta restarts).  A background thread
 * renews the session lease; when ckpt-meta has lost the session (-ESTALE)
 * a new one is opened and ckpt_mclient_session() changes (callers that hold
 * open handles are told through the session_lost callback).
 *
 * Every call is synchronous and thread-safe (many FUSE worker threads call
 * concurrently over one connection).  Calls return 0 or a negative code:
 * the errno ckpt-meta answered (POSIX meaning, see msg_meta.h), or a
 * transport error (-ETIMEDOUT, CKPT_E_CLOSED, CKPT_E_AUTH...).  Idempotent
 * calls (lookup, getattr, readdir, readlink, statfs, getxattr, listxattr,
 * map) are retried across a reconnect for up to retry_ms; the others are
 * not retried when the request may have reached ckpt-meta (the caller sees
 * the transport error).
 */
#ifndef CKPT_MCLIENT_H
#define CKPT_MCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "msg_cluster.h"
#include "msg_meta.h"
#include "net.h"

typedef struct ckpt_mclient ckpt_mclient;

struct ckpt_mclient_opts {
    const char *host;            /* ckpt-meta address */
    uint16_t port;
    const char *name;            /* session name, e.g. "ckptfs@node7:/ckpt" */
    uint32_t retry_ms;           /* retry window for idempotent calls; 0: 30000 */
    /* Optional: the session was lost and replaced (its handles are gone). */
    void (*session_lost)(void *ctx, uint64_t old_session, uint64_t new_session);
    void *ctx;
};

/**
 * @brief Connect, open a session, start the lease thread.
 * @param[in] net   borrowed; must outlive the client
 * @return 0, or the error of the first SESSION call (connection refused,
 *         CKPT_E_AUTH, ...).
 */
int ckpt_mclient_create(ckpt_net *net, const struct ckpt_mclient_opts *opts,
                        ckpt_mclient **out);
/** @brief End the session (best effort) and free.  NULL is a no-op. */
void ckpt_mclient_destroy(ckpt_mclient *mc);
/** @return the current session id. */
uint64_t ckpt_mclient_session(ckpt_mclient *mc);

int ckpt_mclient_lookup(ckpt_mclient *mc, uint64_t parent, const char *name,
                        struct ckpt_attr *out);
int ckpt_mclient_getattr(ckpt_mclient *mc, uint64_t ino, struct ckpt_attr *out);
int ckpt_mclient_setattr(ckpt_mclient *mc, const struct ckpt_msg_setattr *sa,
                         struct ckpt_attr *out);
int ckpt_mclient_mknod(ckpt_mclient *mc, uint64_t parent, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid, uint32_t rdev, struct ckpt_attr *out);
int ckpt_mclient_mkdir(ckpt_mclient *mc, uint64_t parent, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid, struct ckpt_attr *out);
int ckpt_mclient_unlink(ckpt_mclient *mc, uint64_t parent, const char *name);
int ckpt_mclient_rmdir(ckpt_mclient *mc, uint64_t parent, const char *name);
int ckpt_mclient_rename(ckpt_mclient *mc, uint64_t oldparent, const char *oldname,
                        uint64_t newparent, const char *newname, uint32_t flags);
int ckpt_mclient_link(ckpt_mclient *mc, uint64_t ino, uint64_t newparent, const char *newname,
                      struct ckpt_attr *out);
int ckpt_mclient_symlink(ckpt_mclient *mc, uint64_t parent, const char *name,
                         const char *target, uint32_t uid, uint32_t gid, struct ckpt_attr *out);
/** @param[out] buf  NUL-terminated target; -ENAMETOOLONG if cap is too small. */
int ckpt_mclient_readlink(ckpt_mclient *mc, uint64_t ino, char *buf, size_t cap);
/** @param[out] out  free with ckpt_msg_readdir_resp_free(). */
int ckpt_mclient_readdir(ckpt_mclient *mc, uint64_t ino, uint64_t cookie, uint32_t max,
                         int plus, struct ckpt_msg_readdir_resp *out);
int ckpt_mclient_statfs(ckpt_mclient *mc, struct ckpt_msg_statfs_resp *out);
int ckpt_mclient_setxattr(ckpt_mclient *mc, uint64_t ino, const char *name, const void *value,
                          size_t len, uint32_t flags);
/**
 * @brief Get an xattr value.
 * @param[out] buf  may be NULL with cap 0 to ask for the size
 * @return the value's length (>= 0), -ERANGE when cap is too small (and
 *         buf non-NULL), -ENODATA, or another negative code.
 */
int ckpt_mclient_getxattr(ckpt_mclient *mc, uint64_t ino, const char *name, void *buf,
                          size_t cap);
/** @return the list's length, as getxattr. */
int ckpt_mclient_listxattr(ckpt_mclient *mc, uint64_t ino, char *buf, size_t cap);
int ckpt_mclient_removexattr(ckpt_mclient *mc, uint64_t ino, const char *name);
/** @brief OPEN (may wait for another session's writer, see msg_meta.h). */
int ckpt_mclient_open(ckpt_mclient *mc, uint64_t ino, uint32_t flags,
                      struct ckpt_msg_open_resp *out);
int ckpt_mclient_create_file(ckpt_mclient *mc, uint64_t parent, const char *name,
                             uint32_t mode, uint32_t uid, uint32_t gid, uint32_t flags,
                             struct ckpt_msg_open_resp *out);
/** @brief FLUSHED (keep open) or RELEASE (close), see msg_meta.h. */
int ckpt_mclient_flushed(ckpt_mclient *mc, const struct ckpt_msg_release *m);
int ckpt_mclient_release(ckpt_mclient *mc, const struct ckpt_msg_release *m);
/** @brief CLOSING: announce the size/mtime a closed handle is flushing.
 *  Called inside close(): one attempt with a 1 s timeout, no retry. */
int ckpt_mclient_closing(ckpt_mclient *mc, const struct ckpt_msg_release *m);
int ckpt_mclient_degraded(ckpt_mclient *mc, const struct ckpt_msg_degraded *m);
/** @brief The cluster map; free with ckpt_msg_cluster_map_resp_free(). */
int ckpt_mclient_map(ckpt_mclient *mc, uint64_t known_epoch,
                     struct ckpt_msg_cluster_map_resp *out);

#endif

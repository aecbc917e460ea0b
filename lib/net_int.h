/*
 * net_int.h - the transport interface behind net.c (private to lib/net*.c).
 *
 * A transport moves whole messages: header bytes, body, and bulk data.  It
 * knows nothing of requests, handshakes or timeouts of calls; net.c builds
 * those on top, the same for every transport (SQLite VFS / BeeGFS SocketOps
 * style ops table, selected per connection).
 *
 * Bulk: send_msg() gets the bulk to send and, for a request, the buffer
 * where the response's bulk will land (bulk_in): TCP ignores it (the
 * receiver copies from the socket), RDMA advertises it so the peer can RDMA
 * WRITE into it.  recv_bulk() moves the bulk of the message just received
 * into dst (RDMA: an RDMA READ from the sender's advertised buffer).
 *
 * Per-net state: a transport may keep state for one ckpt_net (RDMA: its
 * devices, protection domains and the index of registered memory), made by
 * ctx_create() and passed to connect/listen/buf_alloc/buf_free.
 *
 * Threading: recv_msg/recv_bulk are called only by the connection's receive
 * thread; send_msg is serialised by net.c's send lock; shutdown and
 * call_expired may be called from any thread at any time, and shutdown must
 * make blocked calls return.
 */
#ifndef CKPT_NET_INT_H
#define CKPT_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net.h"
#include "proto.h"

struct ckpt_tconn;   /* a transport connection */
struct ckpt_tlisten; /* a transport listener */

struct ckpt_transport_ops {
    const char *name;
    enum ckpt_transport_kind kind;
    /* Optional (NULL: the transport keeps no per-net state and gets a NULL
     * ctx).  Create the per-net state; 0, -ENODEV (no device), -ENOMEM... */
    int (*ctx_create)(ckpt_net *net, void **out);
    void (*ctx_destroy)(void *ctx);
    /* Connect within timeout_ms.  0 or negative code (see ckpt_net_connect). */
    int (*connect)(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms,
                   uint32_t io_timeout_ms, struct ckpt_tconn **out);
    int (*listen)(void *ctx, const char *host, uint16_t port, uint32_t io_timeout_ms,
                  struct ckpt_tlisten **out);
    uint16_t (*listen_port)(const struct ckpt_tlisten *l);
    /* Block for the next connection; CKPT_E_CLOSED after listen_shutdown. */
    int (*accept)(struct ckpt_tlisten *l, struct ckpt_tconn **out);
    void (*listen_shutdown)(struct ckpt_tlisten *l);
    void (*listen_free)(struct ckpt_tlisten *l);
    /* Send one message.  hdr is the encoded header; bulk is
     * hdr.bulk_len bytes in nbulk pieces.  On return the caller may reuse
     * hdr, body, and (for a response) the bulk; a request's bulk and its
     * bulk_in stay borrowed until its response arrives or the connection
     * is shut down. */
    int (*send_msg)(struct ckpt_tconn *c, const uint8_t hdr[CKPT_HDR_SIZE],
                    const void *body, uint32_t body_len, const struct iovec *bulk,
                    int nbulk, void *bulk_in, uint32_t bulk_in_cap);
    /* Receive the next header (raw and decoded) and its body (allocated
     * with ckpt_malloc; caller frees).  With idle_ok, waits indefinitely for
     * a message to start; without (handshakes), at most io_timeout; once a
     * message has started, at most io_timeout.  Returns 0, CKPT_E_CLOSED
     * (orderly close or shutdown), CKPT_E_PROTO/CKPT_E_VERSION (bad header),
     * -ETIMEDOUT (stall mid-message), -ENOMEM, -errno. */
    int (*recv_msg)(struct ckpt_tconn *c, bool idle_ok, uint8_t raw[CKPT_HDR_SIZE],
                    struct ckpt_hdr *hdr, uint8_t **out_body);
    /* Move the received message's bulk (len bytes) into dst; dst NULL
     * discards it. */
    int (*recv_bulk)(struct ckpt_tconn *c, void *dst, uint32_t len);
    /* Optional.  The call with this request id expired and is about to be
     * completed.  Return true when the peer may still write into the
     * caller's memory for it: net.c then fails the connection (shutdown
     * revokes the peer's access) before completing the call. */
    bool (*call_expired)(struct ckpt_tconn *c, uint64_t req_id);
    void (*shutdown)(struct ckpt_tconn *c);
    void (*destroy)(struct ckpt_tconn *c);
    /* "host:port" of the peer. */
    const char *(*peer)(const struct ckpt_tconn *c);
    /* Bulk buffers (page aligned; RDMA: registered with every device). */
    void *(*buf_alloc)(void *ctx, size_t len);
    void (*buf_free)(void *ctx, void *buf, size_t len);
};

extern const struct ckpt_transport_ops ckpt_transport_tcp;
extern const struct ckpt_transport_ops ckpt_transport_rdma;

#endif

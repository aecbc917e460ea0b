/*
 * net.h - authenticated RPC connections over a pluggable transport.
 *
 * Every ckptfs process talks to the others through this module.  A
 * connection carries many requests in flight, matched to responses by
 * request id; either side may send requests (a connection opened with
 * server ops answers them).  Each message is a header + body (proto.h) plus
 * optional bulk data that moves between caller-provided buffers without an
 * intermediate copy: on TCP the bulk is written with the header in one
 * writev and read straight into the destination buffer; on RDMA it moves by
 * one-sided READ/WRITE between buffers from ckpt_net_buf_alloc(), which are
 * the registered pools (the receiver of a request READs its bulk; the
 * responder WRITEs response bulk into the caller's bulk_in).  Bulk buffers
 * should therefore come from ckpt_net_buf_alloc(): any buffer works, but on
 * RDMA other memory costs one copy through a registered staging buffer.
 *
 * Transports (ckpt_net_opts.transport): tcp; rdma (-EPROTONOSUPPORT at
 * create when no RDMA device exists); auto (RDMA with peers that offer it
 * when a local device exists, else TCP).  A server on a net with RDMA
 * listens on TCP and on RDMA at the same port number.  ckpt_net_connect()
 * tries RDMA at the given port on such a net (auto falls back to TCP);
 * ckpt_net_connect_ex() takes the peer's RDMA port separately (from the
 * cluster map; 0 = the peer offers no RDMA).
 *
 * Both ends prove they hold the cluster key before anything else is
 * exchanged (auth.h); a peer without it is disconnected, with a log line on
 * both sides.
 *
 * Failure model: a call completes exactly once, with the peer's status
 * (0 or a negative code), or with -ETIMEDOUT (its deadline passed; a late
 * response is discarded, and its bulk never lands in the caller's buffer),
 * CKPT_E_CLOSED (the connection died or was closed: every pending call on
 * it fails this way), -EMSGSIZE (the response bulk did not fit bulk_in_cap)
 * or CKPT_E_PROTO (the peer sent a malformed response; the connection is
 * closed).  A malformed or hostile message never crashes the process: the
 * connection is closed and the reason logged.  On RDMA, a call that expires
 * while the peer still holds the key to its registered bulk_in also closes
 * the connection (other pending calls fail with CKPT_E_CLOSED): that is the
 * only way to revoke the peer's access before the caller reuses the buffer.
 * A QP or device error fails pending calls like a dead peer.
 *
 * Threads: each connection has one receive thread; sends run on the
 * caller's thread under a per-connection send lock; one timer thread per
 * ckpt_net expires calls.  Completion callbacks run on the receive or timer
 * thread (or on the caller's thread when submission fails late) and must
 * not block for long; they may submit new calls.
 */
#ifndef CKPT_NET_H
#define CKPT_NET_H

#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto.h"

typedef struct ckpt_net ckpt_net;
typedef struct ckpt_conn ckpt_conn;
typedef struct ckpt_server ckpt_server;
typedef struct ckpt_peer ckpt_peer;

enum ckpt_transport_kind {
    CKPT_TRANSPORT_TCP = 0,
    CKPT_TRANSPORT_RDMA = 1,
    CKPT_TRANSPORT_AUTO = 2,
};

/** @return "tcp", "rdma", "auto" (or "?" for a value out of range). */
const char *ckpt_transport_name(enum ckpt_transport_kind kind);
/** @brief Parse "tcp" | "rdma" | "auto".  @return 0, or -EINVAL. */
int ckpt_transport_parse(const char *s, enum ckpt_transport_kind *out);

#define CKPT_NET_KEY_LEN 32

struct ckpt_net_opts {
    uint8_t key[CKPT_NET_KEY_LEN]; /* the cluster key (auth.h) */
    const char *name;              /* who we are, for peers' logs */
    enum ckpt_transport_kind transport; /* tcp (0), rdma or auto */
    uint32_t connect_timeout_ms;   /* 0: 5000 */
    uint32_t io_timeout_ms;        /* a peer stalled mid-message this long is
                                      dead; 0: 30000 */
    uint32_t call_timeout_ms;      /* default per-call deadline; 0: 30000 */
};

/**
 * @brief Create a network context (starts its timer thread).
 * @param[in] opts  copied.  transport auto looks for RDMA devices (through
 *            librdmacm) and uses them when there are any.
 * @param[out] out
 * @return 0, -EINVAL (bad options), -ENOMEM, or -errno from pthread_create.
 *         -EPROTONOSUPPORT when RDMA is asked for and no device exists.
 */
int ckpt_net_create(const struct ckpt_net_opts *opts, ckpt_net **out);

/** @return true when the net uses RDMA: transport rdma, or auto and a local
 *  RDMA device was found at ckpt_net_create(). */
bool ckpt_net_has_rdma(const ckpt_net *net);

/**
 * @brief Close every connection still open, stop the timer thread, free.
 * Servers must be stopped first.  NULL is a no-op.  Waits until every
 * connection's receive thread has ended.
 */
void ckpt_net_destroy(ckpt_net *net);

/**
 * @brief Allocate a bulk-data buffer (page aligned; registered with every
 * RDMA device when the net has RDMA).  Buffers come from a cache of
 * power-of-two size classes (at most CKPT_NET_BUF_CACHE_BYTES held idle):
 * on TCP from 64 KiB up, so the data path does not fault in fresh pages
 * for every chunk; on RDMA every size, so it never registers per request.
 * Thread-safe.
 * @return the buffer (at least len bytes), or NULL when out of memory.
 */
void *ckpt_net_buf_alloc(ckpt_net *net, size_t len);
/** @brief Return a buffer from ckpt_net_buf_alloc(); len must be the length
 *  it was allocated with.  NULL is a no-op. */
void ckpt_net_buf_free(ckpt_net *net, void *buf, size_t len);

#define CKPT_NET_BUF_CACHE_BYTES (256u << 20)

/* ---- calls (client side) ------------------------------------------- */

struct ckpt_call;
typedef void (*ckpt_call_done_fn)(struct ckpt_call *call);

/*
 * One request and, when it completes, its response.  Owned by the caller,
 * which must keep it (and the buffers it points to) alive until completion.
 * Zero it, fill in the "in" fields, and submit it.
 */
struct ckpt_call {
    /* in */
    uint16_t opcode;
    bool oneway;                  /* no response expected; completes when sent */
    const void *body;             /* encoded request body (borrowed) */
    uint32_t body_len;
    const struct iovec *bulk_out; /* request bulk, borrowed until completion */
    int bulk_out_cnt;             /* <= 16 */
    void *bulk_in;                /* where response bulk lands (borrowed) */
    uint32_t bulk_in_cap;
    uint32_t timeout_ms;          /* 0: the net's call_timeout_ms */
    ckpt_call_done_fn done;       /* NULL for ckpt_conn_call() */
    void *ctx;                    /* for the caller */
    /* out: valid once completed */
    int status;                   /* see the failure model above */
    uint8_t *resp_body;           /* owned by the call; ckpt_call_release() */
    uint32_t resp_body_len;
    uint32_t bulk_in_len;         /* response bulk bytes received */
    /* private to net.c */
    uint64_t priv_req_id;
    uint64_t priv_deadline_ns;
    uint32_t priv_flags;
    struct ckpt_call *priv_next;
    ckpt_conn *priv_conn;
    sem_t priv_sem;
};

/**
 * @brief Send a request and wait for its completion.
 * call->done must be NULL.  @return call->status.
 * Free the response body with ckpt_call_release() even on error.
 */
int ckpt_conn_call(ckpt_conn *conn, struct ckpt_call *call);

/**
 * @brief Send a request; call->done(call) runs exactly once on completion.
 * @return 0 when submitted (then done() reports the outcome, possibly before
 * this returns), or a negative code when nothing was sent (done() is not
 * called): CKPT_E_CLOSED, -EINVAL, -EMSGSIZE.
 */
int ckpt_conn_submit(ckpt_conn *conn, struct ckpt_call *call);

/** @brief Free the response body of a completed call (idempotent). */
void ckpt_call_release(struct ckpt_call *call);

/* ---- server side ------------------------------------------------------ */

/*
 * A received request, owned by the handler from handle() until it calls
 * ckpt_req_reply() or ckpt_req_free() (exactly one of them, on any thread).
 */
struct ckpt_req {
    ckpt_conn *conn;         /* the connection it came on (referenced) */
    struct ckpt_hdr hdr;
    const uint8_t *body;     /* owned by the req */
    uint32_t body_len;
    void *bulk;              /* request bulk (hdr.bulk_len bytes) */
    uint32_t bulk_len;
    bool bulk_server_owned;  /* bulk came from ops->bulk_alloc: the server
                                frees it, net never does */
};

struct ckpt_server_ops {
    /*
     * Optional.  Provide a buffer for a request's bulk data of
     * hdr->bulk_len bytes.  Runs on the receive thread before the bulk is
     * read, so a storage node can hand out a pooled, registered buffer and
     * receive chunk data straight into it.  Return 0 and *out_buf (owned
     * by the server, freed by it after the request is done), or a negative
     * code: the request is answered with it and its bulk discarded.
     * When NULL, net allocates the buffer and frees it with the request.
     */
    int (*bulk_alloc)(void *ctx, const struct ckpt_hdr *hdr, void **out_buf);
    /* Optional.  Give back a bulk_alloc buffer of a request that could not
     * be delivered (its bulk failed to arrive). */
    void (*bulk_free)(void *ctx, void *buf);
    /* Required.  Takes ownership of req.  Runs on the receive thread: hand
     * slow work to another thread to keep the connection flowing. */
    void (*handle)(void *ctx, struct ckpt_req *req);
    /* Optional.  A connection completed its handshake / went away. */
    void (*conn_open)(void *ctx, ckpt_conn *conn);
    void (*conn_closed)(void *ctx, ckpt_conn *conn);
};

/**
 * @brief Answer a request and free it (and its net-owned bulk).
 * @param[in] status  0 or a negative code, delivered to the caller
 * @param[in] body,body_len  response body (borrowed; copied to the wire
 *            before return)
 * @param[in] bulk,bulk_cnt  response bulk (borrowed; sent before return)
 * @return 0, or CKPT_E_CLOSED when the connection is gone (req freed anyway).
 * A oneway request is just freed.
 */
int ckpt_req_reply(struct ckpt_req *req, int status, const void *body,
                   uint32_t body_len, const struct iovec *bulk, int bulk_cnt);

/** @brief Free a request without answering (oneway, or shutting down). */
void ckpt_req_free(struct ckpt_req *req);

/**
 * @brief Listen on host:port (port 0 picks a free port) and serve.
 * @param[in] ops,ctx  borrowed until ckpt_server_stop() returns
 * @return 0, -EADDRINUSE, -EADDRNOTAVAIL, -EINVAL (bad host), -errno.
 */
int ckpt_server_start(ckpt_net *net, const char *host, uint16_t port,
                      const struct ckpt_server_ops *ops, void *ctx,
                      ckpt_server **out);
/** @return the port actually bound (TCP). */
uint16_t ckpt_server_port(const ckpt_server *srv);
/** @return the RDMA port the server listens on - the same number as its TCP
 *  port - or 0 when it serves TCP only (a net without RDMA, or an auto net
 *  whose RDMA listener could not start, e.g. bound to 127.0.0.1). */
uint16_t ckpt_server_rdma_port(const ckpt_server *srv);
/**
 * @brief Stop accepting, close every connection of this server and wait
 * for their receive threads.  Requests still held by handlers stay valid;
 * replying to them fails with CKPT_E_CLOSED.  NULL is a no-op.
 */
void ckpt_server_stop(ckpt_server *srv);

/* ---- connections ------------------------------------------------------ */

/**
 * @brief Connect to host:port and authenticate.
 * @param[in] ops,ctx  optional: serve requests the peer sends on this
 *            connection (NULL: they are answered -EOPNOTSUPP)
 * @return 0; -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EINVAL (bad host),
 *         CKPT_E_AUTH (either side failed the key proof), CKPT_E_VERSION,
 *         CKPT_E_PROTO, -ENOMEM.
 */
int ckpt_net_connect(ckpt_net *net, const char *host, uint16_t port,
                     const struct ckpt_server_ops *ops, void *ctx,
                     ckpt_conn **out);

/**
 * @brief Connect to a peer that may offer TCP and RDMA, and authenticate.
 * ckpt_net_connect(net, host, port, ...) is this with rdma_port = port.
 * @param[in] port       the peer's TCP port (0: none)
 * @param[in] rdma_port  the peer's RDMA port (0: it offers no RDMA)
 * The transport follows the net's: tcp - TCP to port; rdma - RDMA to
 * rdma_port (-EPROTONOSUPPORT when rdma_port is 0); auto - RDMA to
 * rdma_port when the net has RDMA and rdma_port is set, falling back to TCP
 * to port when the RDMA connection cannot be made; else TCP.
 * ckpt_conn_transport() tells which one was used.
 * @return as ckpt_net_connect(); -EINVAL when no usable port is given.
 */
int ckpt_net_connect_ex(ckpt_net *net, const char *host, uint16_t port, uint16_t rdma_port,
                        const struct ckpt_server_ops *ops, void *ctx, ckpt_conn **out);

/** @brief Take a reference. */
void ckpt_conn_get(ckpt_conn *conn);
/** @brief Drop a reference; the last one frees.  NULL is a no-op. */
void ckpt_conn_put(ckpt_conn *conn);
/**
 * @brief Shut the connection down (pending calls fail with CKPT_E_CLOSED)
 * and drop the caller's reference.  NULL is a no-op.
 */
void ckpt_conn_close(ckpt_conn *conn);
/** @return true until the connection has failed or been closed. */
bool ckpt_conn_is_open(ckpt_conn *conn);
/** @return "host:port" of the peer (valid for the connection's life). */
const char *ckpt_conn_peer(const ckpt_conn *conn);
/** @return the transport name, "tcp" or "rdma". */
const char *ckpt_conn_transport(const ckpt_conn *conn);
/** @return CKPT_TRANSPORT_TCP or CKPT_TRANSPORT_RDMA. */
enum ckpt_transport_kind ckpt_conn_transport_kind(const ckpt_conn *conn);
/** @return the peer's name from its handshake (e.g. "ckpt-node"). */
const char *ckpt_conn_peer_name(const ckpt_conn *conn);
/** @brief Attach/read an opaque pointer for the server (e.g. session). */
void ckpt_conn_set_user(ckpt_conn *conn, void *user);
void *ckpt_conn_user(const ckpt_conn *conn);

/* ---- peers: a connection that re-establishes itself ------------------- */

/**
 * @brief A named remote endpoint.  Calls through it connect on first use
 * and reconnect after failures, with exponential backoff (100 ms doubling
 * to 5 s) during which calls fail at once with the last connect error.
 * @return 0, -ENOMEM, -EINVAL.
 */
int ckpt_peer_create(ckpt_net *net, const char *host, uint16_t port,
                     ckpt_peer **out);
/** @brief ckpt_peer_create() for a peer whose RDMA port differs (or is 0:
 *  no RDMA); connections use ckpt_net_connect_ex(). */
int ckpt_peer_create_ex(ckpt_net *net, const char *host, uint16_t port, uint16_t rdma_port,
                        ckpt_peer **out);
/** @brief Close the connection (pending calls fail) and free. */
void ckpt_peer_destroy(ckpt_peer *peer);
/** @brief Change the address (closes the current connection). */
int ckpt_peer_set_addr(ckpt_peer *peer, const char *host, uint16_t port);
/** @brief ckpt_peer_set_addr() with a separate RDMA port (0: none). */
int ckpt_peer_set_addr_ex(ckpt_peer *peer, const char *host, uint16_t port, uint16_t rdma_port);
/**
 * @brief Get the current connection, connecting if needed.
 * @param[out] out  referenced; release with ckpt_conn_put()
 */
int ckpt_peer_conn(ckpt_peer *peer, ckpt_conn **out);
/** @brief ckpt_conn_call() through the peer's connection. */
int ckpt_peer_call(ckpt_peer *peer, struct ckpt_call *call);
/** @brief ckpt_conn_submit() through the peer's connection. */
int ckpt_peer_submit(ckpt_peer *peer, struct ckpt_call *call);
/** @brief Forget the backoff so the next call tries at once. */
void ckpt_peer_reset_backoff(ckpt_peer *peer);
/** @return "tcp" or "rdma": the transport of the peer's open connection,
 *  or NULL when it has none (never connected, or closed). */
const char *ckpt_peer_transport(ckpt_peer *peer);

/** @return monotonic time in nanoseconds. */
uint64_t ckpt_now_ns(void);

/* ---- same host ----------------------------------------------------- */

#define CKPT_NET_HOST_ID_LEN 16

/**
 * @brief This host's id: the running kernel's boot_id
 * (/proc/sys/kernel/random/boot_id), equal for every process on one
 * machine (containers included) and different on every other one or after
 * a reboot.  Two peers with the same id can reach each other's files,
 * unless mount namespaces or permissions say otherwise.
 * @return 0, or -errno / CKPT_E_PROTO when it cannot be read.
 */
int ckpt_host_id(uint8_t out[CKPT_NET_HOST_ID_LEN]);

/**
 * @brief Parse a UUID in its canonical form, 36 characters
 * ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", either case).
 * @return 0 with out filled, or -EINVAL (out untouched).
 */
int ckpt_uuid_parse(const char *s, uint8_t out[16]);

/** @return the value of hex digit ch (either case), or -1. */
int ckpt_hexval(int ch);

#endif

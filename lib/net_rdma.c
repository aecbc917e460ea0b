/*
 * net_rdma.c - the RDMA transport (see net_int.h): librdmacm connection
 * management, libibverbs RC queue pairs.
 *
 * DESIGN
 *
 * Per net (struct rm_ctx, net_rdma_mem.c): the RDMA devices, one
 * protection domain each, and the index of registered buffers; net.c keeps
 * freed buffers in its size-class cache, so the data path reuses
 * registered memory and never registers per request.  send_msg() and
 * recv_bulk() look a bulk pointer up in the index (O(log n)) to find its
 * keys; memory that is not registered (a caller's malloc) still works,
 * through a registered staging buffer and one copy.
 *
 * Per connection (struct ckpt_tconn): an rdma_cm id on its own event
 * channel, a completion channel, one CQ for send and receive, an RC QP,
 * a receive ring of RM_RECV slots of RM_SLOT bytes and a send ring of
 * RM_SEND_SLOTS slots, both registered once at connect/accept.
 *
 * Messages.  Every SEND carries a 16-byte transport header, then optional
 * 16-byte descriptors {addr, rkey, len}, then (type MSG) the 40-byte ckpt
 * header and the body:
 *
 *   off size
 *     0  1  type   MSG (carries a ckpt message) or CTL (credits/acks only)
 *     1  1  flags  BODY_READ: body out of line, a descriptor follows
 *                  SINK: a request's response-bulk buffer (descriptor)
 *                  BULK_READ: the bulk is nseg descriptors to RDMA READ
 *                  BULK_WRITTEN: a response's bulk was RDMA-written into the
 *                                requester's sink before this SEND
 *                  BULK_DROPPED: a response's bulk did not fit the sink
 *                  ACK: the sender waits for this message's pull: ack it
 *     2  1  nseg
 *     3  1  reserved (0)
 *     4  4  credits    receive slots reposted since the last grant
 *     8  4  ctl_seen   CTL messages received from the peer (cumulative)
 *    12  4  pull_done  peer messages whose READs are done (cumulative)
 *
 * Data movement is server-driven: the receiver of a request pulls its bulk
 * with RDMA READ straight into the buffer net.c hands it (a storage node's
 * pooled chunk buffer), and the responder pushes response bulk with RDMA
 * WRITE into the requester's advertised sink, then SENDs the response
 * (RC ordering places the data before the SEND completes at the peer).
 * So a node controls its own incast: it reads write-data when it is ready.
 * Bodies larger than a slot go out of line the same way (READ).
 *
 * Flow control.  The peer may have at most RM_CREDITS MSGs and RM_CTL CTLs
 * unconsumed in our receive ring.  A MSG costs one credit; credits come
 * back piggybacked on every SEND (`credits`) as the receive thread frees
 * slots.  CTLs use their own slots, accounted by `ctl_seen`; a CTL is sent
 * when half the credits wait to be returned, when the peer waits for a pull
 * ack, when half the peer's CTL slots are unacknowledged (this one may use
 * the last slot, so two sides that exhausted their CTL slots at once can
 * always free each other), and as a keepalive after RM_KEEPALIVE_MS idle.
 * Staging buffers advertised for READ are released when the peer's
 * cumulative pull_done passes them (messages are consumed in order).
 *
 * Threads.  progress thread, one per connection (rm_progress): sleeps in
 * poll() on the completion channel, the cm event channel and an eventfd -
 * no busy polling - and drains the CQ in batches of 32: receive
 * completions are validated, their piggybacked counters applied at once
 * (so credits flow even while net.c's receive thread is busy in a
 * handler), CTLs reposted, MSGs queued for recv_msg; send-queue
 * completions advance sq_done.  Sends are signalled every RM_SIG_EVERY
 * work requests (and when someone waits on one), so completions come in
 * batches.  A cm DISCONNECTED/DEVICE_REMOVAL event or any error completion
 * marks the connection dead and wakes every waiter: pending calls then
 * fail like a dead peer's.
 *
 * Lock: c->lock protects the counters, rings, tables and `dead`; it is a
 * leaf except for ibv_post_* calls made under it.  Buffers are returned to
 * net.c's cache only with c->lock released.
 *
 * Timeouts.  A call that expires while the peer holds the key to a
 * caller's registered sink cannot be revoked without memory windows, so
 * call_expired() asks net.c to fail the connection: shutdown moves the QP
 * to the error state synchronously, after which nothing lands.  Sinks in
 * unregistered memory are bounce buffers we own, so their late writes are
 * harmless and the connection stays up.
 *
 * Known limits: every buffer is its own MR on each device (one big
 * pre-registered arena with huge pages would spare the HCA's translation
 * cache); registered pools are reachable by any QP of the same PD that
 * learns an rkey (type-2 memory windows bound per request would close
 * that); a thread per connection; no SRQ (receive rings are per
 * connection: RM_RECV * RM_SLOT = 576 KiB each).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "net_int.h"
#include "net_rdma_int.h"

#define RM_SLOT 8192u
#define RM_CREDITS 64u
#define RM_CTL 8u
#define RM_RECV (RM_CREDITS + RM_CTL)
#define RM_SEND_SLOTS 64u
#define RM_SQ_DEPTH 256u
#define RM_SIG_EVERY 16u
#define RM_MAX_SEGS 16
#define RM_HDR 16u
#define RM_DESC 16u
#define RM_KEEPALIVE_MS 5000
#define RM_BUCKETS 64
#define RM_PRIV_MAGIC 0x4d44524bu /* "KRDM" */
#define RM_PRIV_VERSION 1
#define RECV_TAG (1ull << 63)

enum { RM_T_MSG = 1, RM_T_CTL = 2 };
#define RM_F_BODY_READ 0x01u
#define RM_F_BULK_READ 0x02u
#define RM_F_BULK_WRITTEN 0x04u
#define RM_F_BULK_DROPPED 0x08u
#define RM_F_SINK 0x10u
#define RM_F_ACK 0x20u
#define RM_F_KNOWN 0x3fu
#define RM_F_BULK_ANY (RM_F_BULK_READ | RM_F_BULK_WRITTEN | RM_F_BULK_DROPPED)

_Static_assert(RM_HDR + RM_DESC * (2 + RM_MAX_SEGS) + CKPT_HDR_SIZE < RM_SLOT,
               "a message with every descriptor must fit one slot");
_Static_assert(RM_SIG_EVERY < RM_SEND_SLOTS && RM_SIG_EVERY < RM_SQ_DEPTH,
               "unsignalled sends must never hold every slot");

/* ---- little-endian helpers --------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

struct rm_desc {
    uint64_t addr;
    uint32_t rkey;
    uint32_t len;
};

static void desc_put(uint8_t *p, const struct rm_desc *d)
{
    put64(p, d->addr);
    put32(p + 8, d->rkey);
    put32(p + 12, d->len);
}

static void desc_get(const uint8_t *p, struct rm_desc *d)
{
    d->addr = get64(p);
    d->rkey = get32(p + 8);
    d->len = get32(p + 12);
}

/* Is a (cumulative, wrapping) counter at or past target? */
static bool seq_reached(uint32_t counter, uint32_t target)
{
    return (int32_t)(counter - target) >= 0;
}

/* ---- connections ---------------------------------------------------------- */

struct rm_sinkrec { /* a response sink we advertised with one of our requests */
    struct rm_sinkrec *next;
    uint64_t req_id;
    uint8_t *addr;   /* where the peer writes: the caller's buffer, or bounce */
    uint8_t *bounce; /* our staging buffer, or NULL */
    size_t bounce_len;
    uint32_t cap;
};

struct rm_peersink { /* a sink the peer advertised with a request to us */
    struct rm_peersink *next;
    uint64_t req_id;
    struct rm_desc d;
};

struct rm_pull { /* staging kept until the peer has pulled one of our messages */
    struct rm_pull *next;
    uint32_t seq;
    void *buf[2];
    size_t len[2];
};

struct rm_cur { /* the message recv_msg returned whose bulk is not consumed */
    bool active;
    uint8_t flags;
    uint32_t bulk_len;
    int nseg;
    struct rm_desc seg[RM_MAX_SEGS];
    struct rm_sinkrec *rec; /* BULK_WRITTEN: the sink it landed in */
};

struct ckpt_tconn {
    struct rm_ctx *ctx;
    int dev;
    struct rdma_event_channel *ech;
    struct rdma_cm_id *id;
    struct ibv_comp_channel *cch;
    struct ibv_cq *cq;
    bool qp_made;
    uint8_t *rbuf, *sbuf;
    struct ibv_mr *rmr, *smr;
    uint32_t peer_slot;      /* largest SEND the peer can receive */
    uint32_t peer_ctl;       /* CTL slots the peer keeps */
    uint32_t io_timeout_ms;
    int wake_fd;
    pthread_t thr;
    bool thr_started;
    char peer[64];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* everything below is protected by lock, except cur */
    int dead;                /* 0, or why (CKPT_E_CLOSED, CKPT_E_PROTO...) */
    bool shut;               /* shutdown() was called here */
    bool fenced;             /* QP moved to the error state */
    bool stop;               /* progress thread: exit */
    uint64_t sq_posted;      /* work requests posted (next wr_id) */
    uint64_t sq_done;        /* every wr_id below this has completed */
    uint64_t sends_posted;   /* SENDs posted (send slot = n % RM_SEND_SLOTS) */
    uint64_t sends_freed;    /* SENDs whose slot is free again */
    uint64_t slot_wr[RM_SEND_SLOTS];
    uint32_t credits;        /* MSGs we may still send */
    uint32_t ctl_sent;       /* CTLs we sent (cumulative) */
    uint32_t peer_ctl_seen;  /* of those, consumed by the peer */
    uint32_t returnable;     /* slots reposted, not yet granted to the peer */
    uint32_t ctl_recvd;      /* CTLs received from the peer (cumulative) */
    uint32_t ctl_recvd_sent; /* ctl_recvd as last told to the peer */
    uint32_t pull_done;      /* peer messages whose pulls are done */
    bool ack_due;            /* the peer waits for our pull_done */
    uint32_t pull_seq;       /* our messages with pulls (cumulative) */
    uint32_t peer_pull_done; /* of those, pulled by the peer */
    struct rm_pull *pulls, *pulls_tail;
    uint16_t ready[RM_RECV]; /* received MSG slots, in arrival order */
    uint32_t ready_head, ready_cnt;
    uint32_t rlen[RM_RECV];  /* byte length of each received slot */
    uint64_t last_send_ns;
    struct rm_sinkrec *sinks[RM_BUCKETS];
    struct rm_peersink *psinks[RM_BUCKETS];
    struct rm_cur cur;       /* receive thread only */
};

struct ckpt_tlisten {
    struct rm_ctx *ctx;
    struct rdma_event_channel *ech;
    struct rdma_cm_id *id;
    uint16_t port;
    uint32_t io_timeout_ms;
    int wake_fd;
    atomic_int stopping;
};

struct rm_priv { /* rdma_cm private data, both directions */
    uint8_t b[16];
};

static void priv_put(struct rm_priv *p)
{
    memset(p, 0, sizeof(*p));
    put32(p->b, RM_PRIV_MAGIC);
    p->b[4] = RM_PRIV_VERSION;
    put32(p->b + 8, RM_SLOT);
    p->b[12] = (uint8_t)RM_CREDITS;
    p->b[13] = (uint8_t)RM_CTL;
}

/* Validate the peer's private data; sets its slot size and CTL slots. */
static int priv_get(struct ckpt_tconn *c, const void *data, uint8_t len)
{
    const uint8_t *b = data;
    if (!b || len < 16 || get32(b) != RM_PRIV_MAGIC)
        return CKPT_E_PROTO;
    if (b[4] != RM_PRIV_VERSION)
        return CKPT_E_VERSION;
    uint32_t slot = get32(b + 8);
    if (slot < 1024 || b[12] < 2 || b[13] < 2)
        return CKPT_E_PROTO;
    c->peer_slot = slot < RM_SLOT ? slot : RM_SLOT;
    c->credits = b[12];
    c->peer_ctl = b[13];
    return 0;
}

static uint64_t now_ns(void)
{
    return ckpt_now_ns();
}

static int cond_wait_until(struct ckpt_tconn *c, uint64_t deadline_ns)
{
    if (!deadline_ns) {
        pthread_cond_wait(&c->cond, &c->lock);
        return 0;
    }
    if (now_ns() >= deadline_ns)
        return -ETIMEDOUT;
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
                          .tv_nsec = (long)(deadline_ns % 1000000000ull)};
    int r = pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    return r == ETIMEDOUT ? -ETIMEDOUT : 0;
}

static void mark_dead_locked(struct ckpt_tconn *c, int why)
{
    if (!c->dead)
        c->dead = why;
    pthread_cond_broadcast(&c->cond);
}

static void wake_progress(struct ckpt_tconn *c)
{
    uint64_t one = 1;
    ssize_t w = write(c->wake_fd, &one, sizeof(one));
    (void)w;
}

/* Move the QP to the error state: from here on the HCA accepts no RDMA
 * access through it and flushes what is queued.  Synchronous. */
static void fence_locked(struct ckpt_tconn *c)
{
    if (c->fenced || !c->qp_made)
        return;
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
    (void)ibv_modify_qp(c->id->qp, &a, IBV_QP_STATE);
    c->fenced = true;
}

static int slots_free_locked(struct ckpt_tconn *c)
{
    while (c->sends_freed < c->sends_posted &&
           c->slot_wr[c->sends_freed % RM_SEND_SLOTS] < c->sq_done)
        c->sends_freed++;
    return (int)(RM_SEND_SLOTS - (c->sends_posted - c->sends_freed));
}

static bool sq_room_locked(struct ckpt_tconn *c, uint32_t nwr)
{
    return c->sq_posted - c->sq_done + nwr <= RM_SQ_DEPTH;
}

/* Post a chain of work requests, numbering them from sq_posted; the last
 * one is signalled when `signal` or when the numbering says so. */
static int post_chain_locked(struct ckpt_tconn *c, struct ibv_send_wr *first, int n,
                             bool signal, uint64_t *out_last)
{
    struct ibv_send_wr *w = first, *bad = NULL;
    uint64_t seq = c->sq_posted;
    for (int i = 0; i < n; i++, w = w->next) {
        w->wr_id = seq;
        bool sig = (i == n - 1 && signal) || seq % RM_SIG_EVERY == RM_SIG_EVERY - 1;
        w->send_flags |= sig ? IBV_SEND_SIGNALED : 0;
        seq++;
    }
    int rc = ibv_post_send(c->id->qp, first, &bad);
    if (rc) {
        /* Some may have been posted: the accounting is lost, so is the QP. */
        mark_dead_locked(c, CKPT_E_CLOSED);
        return CKPT_E_CLOSED;
    }
    c->sq_posted = seq;
    c->last_send_ns = now_ns();
    if (out_last)
        *out_last = seq - 1;
    return 0;
}

/* Fill the transport header of a SEND in slot p; grants credits and acks. */
static void put_hdr_locked(struct ckpt_tconn *c, uint8_t *p, uint8_t type, uint8_t flags,
                           uint8_t nseg)
{
    p[0] = type;
    p[1] = flags;
    p[2] = nseg;
    p[3] = 0;
    put32(p + 4, c->returnable);
    put32(p + 8, c->ctl_recvd);
    put32(p + 12, c->pull_done);
    c->returnable = 0;
    c->ctl_recvd_sent = c->ctl_recvd;
    c->ack_due = false;
}

static uint8_t *send_slot_locked(struct ckpt_tconn *c)
{
    return c->sbuf + (c->sends_posted % RM_SEND_SLOTS) * RM_SLOT;
}

/* Post one SEND of len bytes from the current send slot (already filled). */
static int post_send_slot_locked(struct ckpt_tconn *c, uint32_t len, struct ibv_send_wr *before,
                                 int nbefore, bool signal, uint64_t *out_last)
{
    struct ibv_sge sge = {.addr = (uintptr_t)send_slot_locked(c), .length = len,
                          .lkey = c->smr->lkey};
    struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND};
    struct ibv_send_wr *first = &wr;
    if (nbefore) {
        before[nbefore - 1].next = &wr;
        first = before;
    }
    uint64_t last = 0;
    int rc = post_chain_locked(c, first, nbefore + 1, signal, &last);
    if (rc < 0)
        return rc;
    c->slot_wr[c->sends_posted % RM_SEND_SLOTS] = last;
    c->sends_posted++;
    if (out_last)
        *out_last = last;
    return 0;
}

/* Send a CTL when one is due and allowed (see DESIGN: Flow control). */
static void ctl_maybe_locked(struct ckpt_tconn *c, bool keepalive)
{
    if (c->dead || !c->qp_made)
        return;
    bool credit_due = c->returnable >= RM_CREDITS / 2;
    bool ctl_ack_due = c->ctl_recvd - c->ctl_recvd_sent >= RM_CTL / 2;
    if (!credit_due && !ctl_ack_due && !c->ack_due && !keepalive)
        return;
    uint32_t avail = c->peer_ctl - (c->ctl_sent - c->peer_ctl_seen);
    if (avail == 0 || (avail < 2 && !ctl_ack_due))
        return; /* retried when the peer's ctl_seen comes in */
    if (slots_free_locked(c) < 1 || !sq_room_locked(c, 1))
        return; /* retried after the next send completions */
    put_hdr_locked(c, send_slot_locked(c), RM_T_CTL, 0, 0);
    if (post_send_slot_locked(c, RM_HDR, NULL, 0, false, NULL) == 0)
        c->ctl_sent++;
}

static int post_recv_locked(struct ckpt_tconn *c, uint32_t idx)
{
    struct ibv_sge sge = {.addr = (uintptr_t)(c->rbuf + (size_t)idx * RM_SLOT),
                          .length = RM_SLOT, .lkey = c->rmr->lkey};
    struct ibv_recv_wr wr = {.wr_id = RECV_TAG | idx, .sg_list = &sge, .num_sge = 1}, *bad;
    if (ibv_post_recv(c->id->qp, &wr, &bad)) {
        mark_dead_locked(c, CKPT_E_CLOSED);
        return CKPT_E_CLOSED;
    }
    return 0;
}

/* Parse and check a transport header.  Returns the offset of what follows
 * the descriptors, or CKPT_E_PROTO. */
static int parse_hdr(const uint8_t *p, uint32_t len, uint8_t *type, uint8_t *flags,
                     uint8_t *nseg)
{
    if (len < RM_HDR)
        return CKPT_E_PROTO;
    *type = p[0];
    *flags = p[1];
    *nseg = p[2];
    if (p[3] != 0 || (*flags & ~RM_F_KNOWN) || *nseg > RM_MAX_SEGS)
        return CKPT_E_PROTO;
    if (*type == RM_T_CTL)
        return (*flags == 0 && *nseg == 0 && len == RM_HDR) ? (int)RM_HDR : CKPT_E_PROTO;
    if (*type != RM_T_MSG)
        return CKPT_E_PROTO;
    int nbulk = !!(*flags & RM_F_BULK_READ) + !!(*flags & RM_F_BULK_WRITTEN) +
                !!(*flags & RM_F_BULK_DROPPED);
    if (nbulk > 1 || ((*flags & RM_F_BULK_READ) != 0) != (*nseg > 0))
        return CKPT_E_PROTO;
    uint32_t off = RM_HDR + RM_DESC * ((*flags & RM_F_BODY_READ ? 1u : 0u) +
                                       (*flags & RM_F_SINK ? 1u : 0u) + *nseg);
    if (len < off + CKPT_HDR_SIZE)
        return CKPT_E_PROTO;
    return (int)off;
}

/* ---- progress thread ------------------------------------------------------ */

static void take_released_locked(struct ckpt_tconn *c, struct rm_pull **out)
{
    while (c->pulls && seq_reached(c->peer_pull_done, c->pulls->seq + 1)) {
        struct rm_pull *p = c->pulls;
        c->pulls = p->next;
        if (!c->pulls)
            c->pulls_tail = NULL;
        p->next = *out;
        *out = p;
    }
}

static void free_pulls(struct ckpt_tconn *c, struct rm_pull *p)
{
    while (p) {
        struct rm_pull *n = p->next;
        for (int i = 0; i < 2; i++)
            if (p->buf[i])
                ckpt_net_buf_free(c->ctx->net, p->buf[i], p->len[i]);
        ckpt_free(p);
        p = n;
    }
}

static void handle_wc_locked(struct ckpt_tconn *c, const struct ibv_wc *wc)
{
    if (wc->wr_id & RECV_TAG) {
        uint32_t idx = (uint32_t)(wc->wr_id & 0xffff);
        if (wc->status != IBV_WC_SUCCESS || idx >= RM_RECV) {
            if (!c->dead && wc->status != IBV_WC_WR_FLUSH_ERR)
                CKPT_LOG_DEBUG("rdma: %s: receive failed: %s", c->peer,
                               ibv_wc_status_str(wc->status));
            mark_dead_locked(c, CKPT_E_CLOSED);
            return;
        }
        const uint8_t *p = c->rbuf + (size_t)idx * RM_SLOT;
        uint8_t type, flags, nseg;
        if (parse_hdr(p, wc->byte_len, &type, &flags, &nseg) < 0) {
            CKPT_LOG_DEBUG("rdma: %s: malformed transport header", c->peer);
            mark_dead_locked(c, CKPT_E_PROTO);
            return;
        }
        uint32_t credits = get32(p + 4), ctl_seen = get32(p + 8), pull_done = get32(p + 12);
        /* A hostile peer must not grant itself slots we never posted. */
        if (credits > RM_CREDITS || c->credits + credits > RM_CREDITS ||
            (uint32_t)(ctl_seen - c->peer_ctl_seen) > c->ctl_sent - c->peer_ctl_seen ||
            (uint32_t)(pull_done - c->peer_pull_done) > c->pull_seq - c->peer_pull_done) {
            CKPT_LOG_DEBUG("rdma: %s: bad flow-control counters", c->peer);
            mark_dead_locked(c, CKPT_E_PROTO);
            return;
        }
        c->credits += credits;
        c->peer_ctl_seen = ctl_seen;
        c->peer_pull_done = pull_done;
        if (type == RM_T_CTL) {
            c->ctl_recvd++;
            (void)post_recv_locked(c, idx);
        } else {
            if (c->ready_cnt >= RM_RECV) {
                mark_dead_locked(c, CKPT_E_PROTO);
                return;
            }
            c->rlen[idx] = wc->byte_len;
            c->ready[(c->ready_head + c->ready_cnt) % RM_RECV] = (uint16_t)idx;
            c->ready_cnt++;
        }
        pthread_cond_broadcast(&c->cond);
        return;
    }
    if (wc->status != IBV_WC_SUCCESS) {
        if (!c->dead && wc->status != IBV_WC_WR_FLUSH_ERR)
            CKPT_LOG_DEBUG("rdma: %s: work request failed: %s", c->peer,
                           ibv_wc_status_str(wc->status));
        mark_dead_locked(c, CKPT_E_CLOSED);
        return;
    }
    if (wc->wr_id + 1 > c->sq_done)
        c->sq_done = wc->wr_id + 1;
    pthread_cond_broadcast(&c->cond);
}

/* Poll the CQ once (up to 32 completions) and handle them.  Called by the
 * progress thread, and by any waiter just before it would sleep: when the
 * completion it waits for is already there, it goes on at once instead of
 * waiting for the progress thread to be scheduled.  @return how many. */
static int poll_once_locked(struct ckpt_tconn *c)
{
    struct ibv_wc wc[32];
    int n = ibv_poll_cq(c->cq, 32, wc);
    if (n < 0) {
        mark_dead_locked(c, CKPT_E_CLOSED);
        return 0;
    }
    for (int i = 0; i < n; i++)
        handle_wc_locked(c, &wc[i]);
    if (n > 0)
        ctl_maybe_locked(c, false);
    return n;
}

static void drain_cq(struct ckpt_tconn *c)
{
    struct rm_pull *released = NULL;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        int n = poll_once_locked(c);
        take_released_locked(c, &released);
        pthread_mutex_unlock(&c->lock);
        if (n < 32)
            break;
    }
    free_pulls(c, released);
}

static void handle_cm_events(struct ckpt_tconn *c)
{
    struct rdma_cm_event *ev;
    while (rdma_get_cm_event(c->ech, &ev) == 0) {
        enum rdma_cm_event_type t = ev->event;
        rdma_ack_cm_event(ev);
        switch (t) {
        case RDMA_CM_EVENT_DISCONNECTED:
        case RDMA_CM_EVENT_DEVICE_REMOVAL:
        case RDMA_CM_EVENT_CONNECT_ERROR:
        case RDMA_CM_EVENT_UNREACHABLE:
        case RDMA_CM_EVENT_REJECTED:
            pthread_mutex_lock(&c->lock);
            if (!c->dead)
                CKPT_LOG_DEBUG("rdma: %s: %s", c->peer, rdma_event_str(t));
            mark_dead_locked(c, CKPT_E_CLOSED);
            pthread_mutex_unlock(&c->lock);
            break;
        default:
            break;
        }
    }
}

static void *rm_progress(void *arg)
{
    struct ckpt_tconn *c = arg;
    struct pollfd pf[3] = {{.fd = c->cch->fd, .events = POLLIN},
                           {.fd = c->ech->fd, .events = POLLIN},
                           {.fd = c->wake_fd, .events = POLLIN}};
    drain_cq(c);
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool stop = c->stop;
        uint64_t idle_ms = (now_ns() - c->last_send_ns) / 1000000ull;
        if (!c->dead && idle_ms >= RM_KEEPALIVE_MS) {
            ctl_maybe_locked(c, true);
            idle_ms = 0;
        }
        pthread_mutex_unlock(&c->lock);
        if (stop)
            break;
        int tmo = (int)(RM_KEEPALIVE_MS - (idle_ms < RM_KEEPALIVE_MS ? idle_ms : 0)) + 10;
        int n = poll(pf, 3, tmo);
        if (n < 0 && errno != EINTR) {
            pthread_mutex_lock(&c->lock);
            mark_dead_locked(c, -errno);
            pthread_mutex_unlock(&c->lock);
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (n <= 0)
            continue;
        if (pf[2].revents) {
            uint64_t v;
            ssize_t r = read(c->wake_fd, &v, sizeof(v));
            (void)r;
        }
        if (pf[0].revents & POLLIN) {
            struct ibv_cq *cq;
            void *cctx;
            while (ibv_get_cq_event(c->cch, &cq, &cctx) == 0)
                ibv_ack_cq_events(cq, 1);
            if (ibv_req_notify_cq(c->cq, 0)) {
                pthread_mutex_lock(&c->lock);
                mark_dead_locked(c, CKPT_E_CLOSED);
                pthread_mutex_unlock(&c->lock);
            }
            drain_cq(c);
        }
        if (pf[1].revents & POLLIN)
            handle_cm_events(c);
    }
    return NULL;
}

/* ---- setup and teardown ---------------------------------------------------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static void format_addr(const struct sockaddr *sa, char *dst, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(dst, cap, "%s:%u", host, ntohs(a->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(dst, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        snprintf(dst, cap, "?");
    }
}

static void sinks_free(struct ckpt_tconn *c)
{
    for (int b = 0; b < RM_BUCKETS; b++) {
        while (c->sinks[b]) {
            struct rm_sinkrec *r = c->sinks[b];
            c->sinks[b] = r->next;
            if (r->bounce)
                ckpt_net_buf_free(c->ctx->net, r->bounce, r->bounce_len);
            ckpt_free(r);
        }
        while (c->psinks[b]) {
            struct rm_peersink *s = c->psinks[b];
            c->psinks[b] = s->next;
            ckpt_free(s);
        }
    }
}

/* Free everything of a connection; NULL-safe for each resource, so it
 * undoes a partial setup too.  The progress thread must not run. */
static void tconn_free(struct ckpt_tconn *c)
{
    if (c->id && c->qp_made)
        rdma_destroy_qp(c->id);
    if (c->cq)
        ibv_destroy_cq(c->cq);
    if (c->cch)
        ibv_destroy_comp_channel(c->cch);
    if (c->rmr)
        ibv_dereg_mr(c->rmr);
    if (c->smr)
        ibv_dereg_mr(c->smr);
    ckpt_free(c->rbuf);
    ckpt_free(c->sbuf);
    if (c->id)
        rdma_destroy_id(c->id);
    if (c->ech)
        rdma_destroy_event_channel(c->ech);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    if (c->cur.rec) {
        if (c->cur.rec->bounce)
            ckpt_net_buf_free(c->ctx->net, c->cur.rec->bounce, c->cur.rec->bounce_len);
        ckpt_free(c->cur.rec);
    }
    free_pulls(c, c->pulls);
    sinks_free(c);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    ckpt_free(c);
}

static int tconn_new(struct rm_ctx *x, uint32_t io_timeout_ms, struct ckpt_tconn **out)
{
    struct ckpt_tconn *c = ckpt_calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->ctx = x;
    c->wake_fd = -1;
    c->io_timeout_ms = io_timeout_ms;
    snprintf(c->peer, sizeof(c->peer), "?");
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wake_fd < 0) {
        int rc = -errno;
        tconn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Make CQ, QP and rings for c->id (address resolved or connect request
 * received) and post every receive. */
static int tconn_setup_qp(struct ckpt_tconn *c)
{
    struct rm_ctx *x = c->ctx;
    c->dev = -1;
    for (int d = 0; d < x->ndev; d++)
        if (x->devlist[d] == c->id->verbs)
            c->dev = d;
    if (c->dev < 0)
        return -ENODEV;
    c->cch = ibv_create_comp_channel(c->id->verbs);
    if (!c->cch)
        return errno ? -errno : -ENOMEM;
    int rc = set_nonblock(c->cch->fd);
    if (rc < 0)
        return rc;
    c->cq = ibv_create_cq(c->id->verbs, (int)(RM_SQ_DEPTH + RM_RECV), c, c->cch, 0);
    if (!c->cq)
        return errno ? -errno : -ENOMEM;
    if (ibv_req_notify_cq(c->cq, 0))
        return -EIO;
    struct ibv_qp_init_attr qa = {
        .send_cq = c->cq,
        .recv_cq = c->cq,
        .qp_type = IBV_QPT_RC,
        .sq_sig_all = 0,
        .cap = {.max_send_wr = RM_SQ_DEPTH, .max_recv_wr = RM_RECV, .max_send_sge = 1,
                .max_recv_sge = 1},
    };
    if (rdma_create_qp(c->id, x->pd[c->dev], &qa))
        return errno ? -errno : -ENOMEM;
    c->qp_made = true;
    c->rbuf = ckpt_aligned_alloc(4096, (size_t)RM_RECV * RM_SLOT);
    c->sbuf = ckpt_aligned_alloc(4096, (size_t)RM_SEND_SLOTS * RM_SLOT);
    if (!c->rbuf || !c->sbuf)
        return -ENOMEM;
    c->rmr = ibv_reg_mr(x->pd[c->dev], c->rbuf, (size_t)RM_RECV * RM_SLOT,
                        IBV_ACCESS_LOCAL_WRITE);
    c->smr = ibv_reg_mr(x->pd[c->dev], c->sbuf, (size_t)RM_SEND_SLOTS * RM_SLOT, 0);
    if (!c->rmr || !c->smr)
        return errno ? -errno : -ENOMEM;
    for (uint32_t i = 0; i < RM_RECV; i++) {
        struct ibv_sge sge = {.addr = (uintptr_t)(c->rbuf + (size_t)i * RM_SLOT),
                              .length = RM_SLOT, .lkey = c->rmr->lkey};
        struct ibv_recv_wr wr = {.wr_id = RECV_TAG | i, .sg_list = &sge, .num_sge = 1}, *bad;
        if (ibv_post_recv(c->id->qp, &wr, &bad))
            return -EIO;
    }
    c->last_send_ns = now_ns();
    return 0;
}

static int tconn_start(struct ckpt_tconn *c)
{
    int rc = set_nonblock(c->ech->fd);
    if (rc < 0)
        return rc;
    format_addr(rdma_get_peer_addr(c->id), c->peer, sizeof(c->peer));
    rc = pthread_create(&c->thr, NULL, rm_progress, c);
    if (rc)
        return -rc;
    c->thr_started = true;
    return 0;
}

static int resolve(const char *host, uint16_t port, bool passive, struct addrinfo **out)
{
    struct addrinfo hints = {0};
    char portstr[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (host && (!*host || strcmp(host, "*") == 0))
        host = NULL;
    if (passive && !host)
        hints.ai_family = AF_INET;
    int g = getaddrinfo(host, portstr, &hints, out);
    if (g == EAI_MEMORY)
        return -ENOMEM;
    if (g == EAI_SYSTEM)
        return -errno;
    return g ? -EINVAL : 0;
}

static int cm_event_error(const struct rdma_cm_event *ev)
{
    switch (ev->event) {
    case RDMA_CM_EVENT_REJECTED:
        return -ECONNREFUSED;
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
        return -EHOSTUNREACH;
    case RDMA_CM_EVENT_UNREACHABLE:
        return -ETIMEDOUT;
    case RDMA_CM_EVENT_DEVICE_REMOVAL:
        return -ENODEV;
    default:
        return -ECONNREFUSED;
    }
}

/* Wait for the next event on ch; 0 with *out (ack it), or a negative code. */
static int cm_wait(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
                   uint64_t deadline_ns, struct rdma_cm_event **out)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline_ns)
            return -ETIMEDOUT;
        struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
        int n = poll(&pf, 1, (int)((deadline_ns - now) / 1000000ull) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            continue;
        struct rdma_cm_event *ev;
        if (rdma_get_cm_event(ch, &ev))
            return errno ? -errno : -EIO;
        if (ev->event == want) {
            *out = ev;
            return 0;
        }
        int rc = cm_event_error(ev);
        rdma_ack_cm_event(ev);
        return rc;
    }
}

static int rm_connect(void *arg, const char *host, uint16_t port, uint32_t timeout_ms,
                      uint32_t io_timeout_ms, struct ckpt_tconn **out)
{
    struct rm_ctx *x = arg;
    struct addrinfo *ai = NULL;
    struct ckpt_tconn *c = NULL;
    struct rdma_cm_event *ev = NULL;
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int rc = resolve(host, port, false, &ai);
    if (rc < 0)
        return rc;
    rc = tconn_new(x, io_timeout_ms, &c);
    if (rc < 0)
        goto out;
    c->ech = rdma_create_event_channel();
    if (!c->ech) {
        rc = errno ? -errno : -ENODEV;
        goto out;
    }
    if (rdma_create_id(c->ech, &c->id, c, RDMA_PS_TCP)) {
        rc = errno ? -errno : -ENOMEM;
        c->id = NULL;
        goto out;
    }
    rc = -EHOSTUNREACH;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if (rdma_resolve_addr(c->id, NULL, a->ai_addr, (int)timeout_ms)) {
            rc = errno ? -errno : -EHOSTUNREACH;
            continue;
        }
        rc = cm_wait(c->ech, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, &ev);
        if (rc == 0)
            break;
    }
    if (rc < 0)
        goto out;
    rdma_ack_cm_event(ev);
    ev = NULL;
    if (rdma_resolve_route(c->id, (int)timeout_ms)) {
        rc = errno ? -errno : -EHOSTUNREACH;
        goto out;
    }
    rc = cm_wait(c->ech, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, &ev);
    if (rc < 0)
        goto out;
    rdma_ack_cm_event(ev);
    ev = NULL;
    rc = tconn_setup_qp(c);
    if (rc < 0)
        goto out;
    struct rm_priv pd;
    priv_put(&pd);
    struct rdma_conn_param cp = {
        .private_data = pd.b,
        .private_data_len = sizeof(pd.b),
        .responder_resources = x->rd_atom[c->dev],
        .initiator_depth = x->rd_atom[c->dev],
        .retry_count = 7,
        .rnr_retry_count = 3,
    };
    if (rdma_connect(c->id, &cp)) {
        rc = errno ? -errno : -ECONNREFUSED;
        goto out;
    }
    rc = cm_wait(c->ech, RDMA_CM_EVENT_ESTABLISHED, deadline, &ev);
    if (rc < 0)
        goto out;
    rc = priv_get(c, ev->param.conn.private_data, ev->param.conn.private_data_len);
    rdma_ack_cm_event(ev);
    ev = NULL;
    if (rc < 0)
        goto out;
    rc = tconn_start(c);
out:
    if (ai)
        freeaddrinfo(ai);
    if (rc < 0 && c) {
        if (c->id && c->qp_made)
            rdma_disconnect(c->id);
        tconn_free(c);
        c = NULL;
    }
    if (rc == 0)
        *out = c;
    return rc;
}

static void listen_free_res(struct ckpt_tlisten *l)
{
    if (l->id)
        rdma_destroy_id(l->id);
    if (l->ech)
        rdma_destroy_event_channel(l->ech);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    ckpt_free(l);
}

static int rm_listen(void *arg, const char *host, uint16_t port, uint32_t io_timeout_ms,
                     struct ckpt_tlisten **out)
{
    struct rm_ctx *x = arg;
    struct addrinfo *ai = NULL;
    int rc = resolve(host, port, true, &ai);
    if (rc < 0)
        return rc;
    struct ckpt_tlisten *l = ckpt_calloc(1, sizeof(*l));
    if (!l) {
        freeaddrinfo(ai);
        return -ENOMEM;
    }
    l->ctx = x;
    l->io_timeout_ms = io_timeout_ms;
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->ech = rdma_create_event_channel();
    if (l->wake_fd < 0 || !l->ech) {
        rc = errno ? -errno : -ENODEV;
        goto fail;
    }
    rc = set_nonblock(l->ech->fd);
    if (rc < 0)
        goto fail;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if (rdma_create_id(l->ech, &l->id, l, RDMA_PS_TCP)) {
            rc = errno ? -errno : -ENOMEM;
            l->id = NULL;
            break;
        }
        if (rdma_bind_addr(l->id, a->ai_addr) == 0 && rdma_listen(l->id, 1024) == 0) {
            rc = 0;
            break;
        }
        rc = errno ? -errno : -EADDRNOTAVAIL;
        rdma_destroy_id(l->id);
        l->id = NULL;
    }
    if (rc < 0)
        goto fail;
    l->port = ntohs(rdma_get_src_port(l->id));
    freeaddrinfo(ai);
    *out = l;
    return 0;
fail:
    freeaddrinfo(ai);
    listen_free_res(l);
    return rc;
}

static uint16_t rm_listen_port(const struct ckpt_tlisten *l)
{
    return l->port;
}

/* Take over a connect request: own channel, QP, accept. */
static int accept_one(struct ckpt_tlisten *l, struct rdma_cm_id *id, const uint8_t *pdata,
                      uint8_t plen, struct ckpt_tconn **out)
{
    struct ckpt_tconn *c = NULL;
    bool accepted = false;
    int rc = tconn_new(l->ctx, l->io_timeout_ms, &c);
    if (rc < 0) {
        (void)rdma_reject(id, NULL, 0);
        rdma_destroy_id(id);
        return rc;
    }
    rc = priv_get(c, pdata, plen);
    if (rc < 0)
        goto fail;
    c->ech = rdma_create_event_channel();
    if (!c->ech) {
        rc = errno ? -errno : -ENOMEM;
        goto fail;
    }
    if (rdma_migrate_id(id, c->ech)) {
        rc = errno ? -errno : -EIO;
        goto fail;
    }
    c->id = id;
    id->context = c;
    rc = tconn_setup_qp(c);
    if (rc < 0)
        goto fail;
    struct rm_priv pd;
    priv_put(&pd);
    struct rdma_conn_param cp = {
        .private_data = pd.b,
        .private_data_len = sizeof(pd.b),
        .responder_resources = l->ctx->rd_atom[c->dev],
        .initiator_depth = l->ctx->rd_atom[c->dev],
        .retry_count = 7,
        .rnr_retry_count = 3,
    };
    if (rdma_accept(id, &cp)) {
        rc = errno ? -errno : -ECONNABORTED;
        goto fail;
    }
    accepted = true;
    rc = tconn_start(c);
    if (rc < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    if (accepted)
        (void)rdma_disconnect(id);
    else
        (void)rdma_reject(id, NULL, 0);
    if (!c->id)
        rdma_destroy_id(id); /* not migrated: tconn_free does not own it */
    tconn_free(c);
    return rc;
}

static int rm_accept(struct ckpt_tlisten *l, struct ckpt_tconn **out)
{
    struct pollfd pf[2] = {{.fd = l->ech->fd, .events = POLLIN},
                           {.fd = l->wake_fd, .events = POLLIN}};
    for (;;) {
        if (atomic_load(&l->stopping))
            return CKPT_E_CLOSED;
        int n = poll(pf, 2, -1);
        if (atomic_load(&l->stopping))
            return CKPT_E_CLOSED;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        struct rdma_cm_event *ev;
        if (rdma_get_cm_event(l->ech, &ev)) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return errno ? -errno : -EIO;
        }
        if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
            enum rdma_cm_event_type t = ev->event;
            rdma_ack_cm_event(ev);
            if (t == RDMA_CM_EVENT_DEVICE_REMOVAL)
                return -ENODEV;
            continue;
        }
        struct rdma_cm_id *id = ev->id;
        uint8_t pdata[16] = {0};
        uint8_t plen = ev->param.conn.private_data_len;
        if (ev->param.conn.private_data && plen)
            memcpy(pdata, ev->param.conn.private_data, plen < 16 ? plen : 16);
        plen = plen < 16 ? plen : 16;
        rdma_ack_cm_event(ev);
        int rc = accept_one(l, id, pdata, plen, out);
        if (rc == CKPT_E_PROTO || rc == CKPT_E_VERSION) {
            CKPT_LOG_WARN("rdma: refused a connect request without ckptfs's parameters");
            continue;
        }
        return rc;
    }
}

static void rm_listen_shutdown(struct ckpt_tlisten *l)
{
    uint64_t one = 1;
    atomic_store(&l->stopping, 1);
    ssize_t w = write(l->wake_fd, &one, sizeof(one));
    (void)w;
}

static void rm_listen_free(struct ckpt_tlisten *l)
{
    if (l)
        listen_free_res(l);
}

/* ---- sending ------------------------------------------------------------ */

static uint32_t bucket(uint64_t id)
{
    return (uint32_t)(id % RM_BUCKETS);
}

static struct rm_sinkrec *sink_take_locked(struct ckpt_tconn *c, uint64_t id)
{
    for (struct rm_sinkrec **pp = &c->sinks[bucket(id)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->req_id == id) {
            struct rm_sinkrec *r = *pp;
            *pp = r->next;
            r->next = NULL;
            return r;
        }
    }
    return NULL;
}

static bool psink_take_locked(struct ckpt_tconn *c, uint64_t id, struct rm_desc *out)
{
    for (struct rm_peersink **pp = &c->psinks[bucket(id)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->req_id == id) {
            struct rm_peersink *s = *pp;
            *pp = s->next;
            *out = s->d;
            ckpt_free(s);
            return true;
        }
    }
    return false;
}

static void sinkrec_free(struct ckpt_tconn *c, struct rm_sinkrec *r)
{
    if (!r)
        return;
    if (r->bounce)
        ckpt_net_buf_free(c->ctx->net, r->bounce, r->bounce_len);
    ckpt_free(r);
}

/* Wait (c->lock held) until pred holds, the connection dies or deadline.
 * (A macro because pred is an expression over c's fields.) */
#define RM_WAIT_UNTIL(c, pred, deadline, rc)                                  \
    do {                                                                      \
        (rc) = 0;                                                             \
        while (!(pred)) {                                                     \
            if ((c)->dead) {                                                  \
                (rc) = CKPT_E_CLOSED;                                         \
                break;                                                        \
            }                                                                 \
            if (poll_once_locked(c) > 0)                                      \
                continue;                                                     \
            if (cond_wait_until((c), (deadline)) < 0 && !(pred)) {            \
                (rc) = (c)->dead ? CKPT_E_CLOSED : -ETIMEDOUT;                \
                break;                                                        \
            }                                                                 \
        }                                                                     \
    } while (0)

struct send_plan {
    uint8_t flags;
    int nseg;
    struct rm_desc seg[RM_MAX_SEGS];
    struct rm_desc body_desc, sink_desc;
    void *stage;          /* staging for unregistered bulk pieces */
    size_t stage_len;
    void *body_stage;     /* out-of-line body */
    size_t body_stage_len;
    struct rm_sinkrec *rec; /* our sink for the response (request) */
    bool write;           /* response bulk goes by RDMA WRITE */
    int nwr;
    struct ibv_sge wsge[RM_MAX_SEGS];
    struct ibv_send_wr wr[RM_MAX_SEGS + 1];
    bool caller_mem;      /* a READ descriptor points into the caller's memory */
};

static void plan_release(struct ckpt_tconn *c, struct send_plan *p)
{
    if (p->stage)
        ckpt_net_buf_free(c->ctx->net, p->stage, p->stage_len);
    if (p->body_stage)
        ckpt_net_buf_free(c->ctx->net, p->body_stage, p->body_stage_len);
    p->stage = p->body_stage = NULL;
}

/* Keys of each registered piece; reg[i] false (and the byte count in
 * *out_unreg) for pieces outside registered memory. */
static void plan_pieces(struct ckpt_tconn *c, const struct iovec *bulk, int nbulk,
                        uint32_t lkey[], uint32_t rkey[], bool reg[], size_t *out_unreg)
{
    size_t unreg = 0;
    for (int i = 0; i < nbulk; i++) {
        reg[i] = bulk[i].iov_len == 0 ||
                 ckpt_rdma_reg_lookup(c->ctx, c->dev, bulk[i].iov_base, bulk[i].iov_len, &lkey[i], &rkey[i]);
        if (!reg[i])
            unreg += bulk[i].iov_len;
    }
    *out_unreg = unreg;
}

static int rm_send_msg(struct ckpt_tconn *c, const uint8_t hdr[CKPT_HDR_SIZE], const void *body,
                       uint32_t body_len, const struct iovec *bulk, int nbulk, void *bulk_in,
                       uint32_t bulk_in_cap)
{
    struct ckpt_hdr h;
    struct send_plan p;
    uint32_t lkey[RM_MAX_SEGS], rkey[RM_MAX_SEGS];
    bool reg[RM_MAX_SEGS];
    uint64_t total = 0;
    int rc;

    if (nbulk < 0 || nbulk > RM_MAX_SEGS || ckpt_hdr_decode(hdr, &h) < 0)
        return -EINVAL;
    if (ckpt_fault_hit(CKPT_FAULT_SEND))
        return -EIO;
    memset(&p, 0, sizeof(p));
    for (int i = 0; i < nbulk; i++)
        total += bulk[i].iov_len;
    bool response = h.flags & CKPT_MSG_F_RESPONSE;
    bool oneway = h.flags & CKPT_MSG_F_ONEWAY;

    /* 1. Bulk: WRITE into the requester's sink (responses) or advertise for
     *    READ (requests); unregistered pieces go through one staging buffer. */
    if (total) {
        size_t unreg = 0;
        plan_pieces(c, bulk, nbulk, lkey, rkey, reg, &unreg);
        struct rm_desc sink = {0};
        bool have_sink = false;
        if (response) {
            pthread_mutex_lock(&c->lock);
            have_sink = psink_take_locked(c, h.req_id, &sink);
            pthread_mutex_unlock(&c->lock);
            if (!have_sink || total > sink.len)
                p.flags |= RM_F_BULK_DROPPED;
            else
                p.write = true;
        } else {
            p.flags |= RM_F_BULK_READ;
        }
        if (unreg && !(p.flags & RM_F_BULK_DROPPED)) {
            p.stage_len = unreg;
            p.stage = ckpt_net_buf_alloc(c->ctx->net, unreg);
            if (!p.stage)
                return -ENOMEM;
            uint32_t sl, sr;
            if (!ckpt_rdma_reg_lookup(c->ctx, c->dev, p.stage, unreg, &sl, &sr)) {
                plan_release(c, &p);
                return -EFAULT;
            }
            size_t off = 0;
            for (int i = 0; i < nbulk; i++) {
                if (reg[i])
                    continue;
                memcpy((uint8_t *)p.stage + off, bulk[i].iov_base, bulk[i].iov_len);
                off += bulk[i].iov_len;
            }
            /* The unregistered pieces now go from the staging copy. */
            for (int i = 0; i < nbulk; i++) {
                if (!reg[i]) {
                    lkey[i] = sl;
                    rkey[i] = sr;
                }
            }
        }
        if (p.write) {
            uint64_t roff = 0;
            size_t soff = 0;
            for (int i = 0; i < nbulk; i++) {
                if (!bulk[i].iov_len)
                    continue;
                uintptr_t src = (uintptr_t)bulk[i].iov_base;
                if (!reg[i]) {
                    src = (uintptr_t)p.stage + soff;
                    soff += bulk[i].iov_len;
                }
                p.wsge[p.nwr] = (struct ibv_sge){.addr = src, .length = (uint32_t)bulk[i].iov_len,
                                                 .lkey = lkey[i]};
                p.wr[p.nwr] = (struct ibv_send_wr){.sg_list = &p.wsge[p.nwr], .num_sge = 1,
                                                   .opcode = IBV_WR_RDMA_WRITE};
                p.wr[p.nwr].wr.rdma.remote_addr = sink.addr + roff;
                p.wr[p.nwr].wr.rdma.rkey = sink.rkey;
                if (p.nwr > 0)
                    p.wr[p.nwr - 1].next = &p.wr[p.nwr];
                p.nwr++;
                roff += bulk[i].iov_len;
            }
            p.flags |= RM_F_BULK_WRITTEN;
        } else if (p.flags & RM_F_BULK_READ) {
            size_t soff = 0;
            for (int i = 0; i < nbulk; i++) {
                if (!bulk[i].iov_len)
                    continue;
                uintptr_t a = (uintptr_t)bulk[i].iov_base;
                if (!reg[i]) {
                    a = (uintptr_t)p.stage + soff;
                    soff += bulk[i].iov_len;
                } else {
                    p.caller_mem = true;
                }
                p.seg[p.nseg++] = (struct rm_desc){.addr = a, .rkey = rkey[i],
                                                   .len = (uint32_t)bulk[i].iov_len};
            }
        }
    }

    /* 2. Where the response bulk should land (requests expecting one). */
    if (!response && !oneway && bulk_in && bulk_in_cap) {
        p.rec = ckpt_calloc(1, sizeof(*p.rec));
        if (!p.rec) {
            plan_release(c, &p);
            return -ENOMEM;
        }
        p.rec->req_id = h.req_id;
        p.rec->cap = bulk_in_cap;
        uint32_t lk, rk;
        if (ckpt_rdma_reg_lookup(c->ctx, c->dev, bulk_in, bulk_in_cap, &lk, &rk)) {
            p.rec->addr = bulk_in;
        } else {
            p.rec->bounce_len = bulk_in_cap;
            p.rec->bounce = ckpt_net_buf_alloc(c->ctx->net, bulk_in_cap);
            if (!p.rec->bounce ||
                !ckpt_rdma_reg_lookup(c->ctx, c->dev, p.rec->bounce, bulk_in_cap, &lk, &rk)) {
                sinkrec_free(c, p.rec);
                plan_release(c, &p);
                return -ENOMEM;
            }
            p.rec->addr = p.rec->bounce;
        }
        p.sink_desc = (struct rm_desc){.addr = (uintptr_t)p.rec->addr, .rkey = rk,
                                       .len = bulk_in_cap};
        p.flags |= RM_F_SINK;
    }

    /* 3. The body: inline when it fits a slot, else out of line (READ). */
    uint32_t off = RM_HDR + RM_DESC * ((p.flags & RM_F_SINK ? 1u : 0u) + (uint32_t)p.nseg);
    if (off + CKPT_HDR_SIZE + (uint64_t)body_len > c->peer_slot) {
        p.body_stage_len = body_len;
        p.body_stage = ckpt_net_buf_alloc(c->ctx->net, body_len);
        uint32_t lk, rk;
        if (!p.body_stage || !ckpt_rdma_reg_lookup(c->ctx, c->dev, p.body_stage, body_len, &lk, &rk)) {
            sinkrec_free(c, p.rec);
            plan_release(c, &p);
            return -ENOMEM;
        }
        memcpy(p.body_stage, body, body_len);
        p.body_desc = (struct rm_desc){.addr = (uintptr_t)p.body_stage, .rkey = rk,
                                       .len = body_len};
        p.flags |= RM_F_BODY_READ;
        off += RM_DESC;
    }
    bool pull = p.flags & (RM_F_BODY_READ | RM_F_BULK_READ);
    /* A oneway message's caller reuses its bulk when we return: wait for
     * the peer's pull of it. */
    bool wait_pull = pull && oneway && p.caller_mem;
    if (wait_pull)
        p.flags |= RM_F_ACK;
    struct rm_pull *pr = NULL;
    if (pull) {
        pr = ckpt_calloc(1, sizeof(*pr));
        if (!pr) {
            sinkrec_free(c, p.rec);
            plan_release(c, &p);
            return -ENOMEM;
        }
    }

    /* 4. Post under the lock once a credit, a slot and queue room exist. */
    uint64_t deadline = now_ns() + (uint64_t)c->io_timeout_ms * 1000000ull;
    uint64_t last = 0;
    pthread_mutex_lock(&c->lock);
    RM_WAIT_UNTIL(c, c->credits > 0 && slots_free_locked(c) > 0 &&
                         sq_room_locked(c, (uint32_t)p.nwr + 1), deadline, rc);
    if (rc == 0 && p.rec) {
        struct rm_sinkrec **b = &c->sinks[bucket(h.req_id)];
        p.rec->next = *b;
        *b = p.rec;
    }
    if (rc == 0) {
        uint8_t *s = send_slot_locked(c);
        put_hdr_locked(c, s, RM_T_MSG, p.flags, (uint8_t)p.nseg);
        uint8_t *q = s + RM_HDR;
        if (p.flags & RM_F_BODY_READ) {
            desc_put(q, &p.body_desc);
            q += RM_DESC;
        }
        if (p.flags & RM_F_SINK) {
            desc_put(q, &p.sink_desc);
            q += RM_DESC;
        }
        for (int i = 0; i < p.nseg; i++, q += RM_DESC)
            desc_put(q, &p.seg[i]);
        memcpy(q, hdr, CKPT_HDR_SIZE);
        q += CKPT_HDR_SIZE;
        if (!(p.flags & RM_F_BODY_READ) && body_len) {
            memcpy(q, body, body_len);
            q += body_len;
        }
        rc = post_send_slot_locked(c, (uint32_t)(q - s), p.nwr ? p.wr : NULL, p.nwr,
                                   p.write, &last);
        if (rc == 0) {
            c->credits--;
            if (pull) {
                pr->seq = c->pull_seq++;
                pr->buf[0] = p.stage;
                pr->len[0] = p.stage_len;
                pr->buf[1] = p.body_stage;
                pr->len[1] = p.body_stage_len;
                if (c->pulls_tail)
                    c->pulls_tail->next = pr;
                else
                    c->pulls = pr;
                c->pulls_tail = pr;
                p.stage = p.body_stage = NULL; /* owned by the pull record now */
            }
        } else if (p.rec) {
            (void)sink_take_locked(c, h.req_id);
        }
    }
    uint32_t my_pull = pr && rc == 0 ? pr->seq : 0;
    bool posted = rc == 0;
    /* Responses written from the caller's memory: done only when the WRITE
     * and SEND have completed (the caller reuses the bulk on return). */
    if (rc == 0 && p.write)
        RM_WAIT_UNTIL(c, c->sq_done > last, 0, rc);
    if (rc == 0 && wait_pull)
        RM_WAIT_UNTIL(c, seq_reached(c->peer_pull_done, my_pull + 1), deadline, rc);
    pthread_mutex_unlock(&c->lock);
    if (!posted) {
        sinkrec_free(c, p.rec);
        ckpt_free(pr);
    }
    plan_release(c, &p);
    return rc;
}

/* ---- receiving ------------------------------------------------------------ */

/* Post nseg READs of the descriptors into dst (registered: lkey), the last
 * signalled, and wait for them. */
static int read_into(struct ckpt_tconn *c, uint8_t *dst, uint32_t lkey, const struct rm_desc *seg,
                     int nseg)
{
    struct ibv_sge sge[RM_MAX_SEGS];
    struct ibv_send_wr wr[RM_MAX_SEGS];
    size_t off = 0;
    int rc;
    memset(wr, 0, sizeof(wr));
    for (int i = 0; i < nseg; i++) {
        sge[i] = (struct ibv_sge){.addr = (uintptr_t)(dst + off), .length = seg[i].len,
                                  .lkey = lkey};
        wr[i].sg_list = &sge[i];
        wr[i].num_sge = 1;
        wr[i].opcode = IBV_WR_RDMA_READ;
        wr[i].wr.rdma.remote_addr = seg[i].addr;
        wr[i].wr.rdma.rkey = seg[i].rkey;
        wr[i].next = i + 1 < nseg ? &wr[i + 1] : NULL;
        off += seg[i].len;
    }
    uint64_t deadline = now_ns() + (uint64_t)c->io_timeout_ms * 1000000ull, last = 0;
    pthread_mutex_lock(&c->lock);
    RM_WAIT_UNTIL(c, sq_room_locked(c, (uint32_t)nseg), deadline, rc);
    if (rc == 0)
        rc = post_chain_locked(c, wr, nseg, true, &last);
    if (rc == 0)
        RM_WAIT_UNTIL(c, c->sq_done > last, deadline, rc);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* READ descriptors into dst, through staging when dst is not registered. */
static int read_segs(struct ckpt_tconn *c, void *dst, uint32_t len, const struct rm_desc *seg,
                     int nseg)
{
    uint32_t lk, rk;
    if (ckpt_rdma_reg_lookup(c->ctx, c->dev, dst, len, &lk, &rk))
        return read_into(c, dst, lk, seg, nseg);
    void *st = ckpt_net_buf_alloc(c->ctx->net, len);
    if (!st)
        return -ENOMEM;
    int rc = -EFAULT;
    if (ckpt_rdma_reg_lookup(c->ctx, c->dev, st, len, &lk, &rk))
        rc = read_into(c, st, lk, seg, nseg);
    if (rc == 0)
        memcpy(dst, st, len);
    ckpt_net_buf_free(c->ctx->net, st, len);
    return rc;
}

static void pull_done_inc(struct ckpt_tconn *c, bool ack)
{
    pthread_mutex_lock(&c->lock);
    c->pull_done++;
    if (ack)
        c->ack_due = true;
    ctl_maybe_locked(c, false);
    pthread_mutex_unlock(&c->lock);
}

static int rm_recv_bulk(struct ckpt_tconn *c, void *dst, uint32_t len)
{
    struct rm_cur *k = &c->cur;
    if (!k->active || len != k->bulk_len)
        return -EINVAL;
    k->active = false;
    if (k->flags & RM_F_BULK_WRITTEN) {
        struct rm_sinkrec *r = k->rec;
        k->rec = NULL;
        if (dst && dst != r->addr)
            memcpy(dst, r->addr, len);
        sinkrec_free(c, r);
        return 0;
    }
    if (k->flags & RM_F_BULK_DROPPED)
        return dst ? CKPT_E_PROTO : 0;
    int rc = 0;
    if (dst)
        rc = read_segs(c, dst, len, k->seg, k->nseg);
    if (rc == 0)
        pull_done_inc(c, k->flags & RM_F_ACK);
    return rc;
}

static int rm_recv_msg(struct ckpt_tconn *c, bool idle_ok, uint8_t raw[CKPT_HDR_SIZE],
                       struct ckpt_hdr *hdr, uint8_t **out_body)
{
    struct rm_cur *k = &c->cur;
    int rc;
    if (k->active) { /* the previous message's bulk was never asked for */
        rc = rm_recv_bulk(c, NULL, k->bulk_len);
        if (rc < 0)
            return rc;
    }
    uint64_t deadline = idle_ok ? 0 : now_ns() + (uint64_t)c->io_timeout_ms * 1000000ull;
    pthread_mutex_lock(&c->lock);
    rc = 0;
    /* Messages that arrived before the peer went away are still delivered;
     * after a local shutdown nothing is. */
    while (c->ready_cnt == 0 || c->shut) {
        if (c->dead || c->shut) {
            rc = c->dead && c->dead != CKPT_E_CLOSED && !c->shut ? c->dead : CKPT_E_CLOSED;
            break;
        }
        if (poll_once_locked(c) > 0)
            continue;
        if (cond_wait_until(c, deadline) < 0 && c->ready_cnt == 0) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (rc < 0) {
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    uint32_t idx = c->ready[c->ready_head];
    c->ready_head = (c->ready_head + 1) % RM_RECV;
    c->ready_cnt--;
    uint32_t len = c->rlen[idx];
    pthread_mutex_unlock(&c->lock);

    const uint8_t *p = c->rbuf + (size_t)idx * RM_SLOT;
    uint8_t type, flags, nseg;
    int off = parse_hdr(p, len, &type, &flags, &nseg);
    struct rm_desc body_desc = {0}, sink_desc = {0};
    const uint8_t *q = p + RM_HDR;
    if (flags & RM_F_BODY_READ) {
        desc_get(q, &body_desc);
        q += RM_DESC;
    }
    if (flags & RM_F_SINK) {
        desc_get(q, &sink_desc);
        q += RM_DESC;
    }
    memset(k, 0, sizeof(*k));
    uint64_t segsum = 0;
    for (int i = 0; i < nseg; i++, q += RM_DESC) {
        desc_get(q, &k->seg[i]);
        segsum += k->seg[i].len;
    }
    k->nseg = nseg;
    k->flags = flags;
    memcpy(raw, p + off, CKPT_HDR_SIZE);
    uint8_t *body = NULL;
    rc = ckpt_hdr_decode(raw, hdr);
    if (rc == 0 && ckpt_fault_hit(CKPT_FAULT_READ))
        rc = -EIO;
    bool response = rc == 0 && (hdr->flags & CKPT_MSG_F_RESPONSE);
    bool oneway = rc == 0 && (hdr->flags & CKPT_MSG_F_ONEWAY);
    if (rc == 0) {
        /* Every descriptor must agree with the header. */
        bool ok = (flags & RM_F_BODY_READ) ? (body_desc.len == hdr->body_len &&
                                              len == (uint32_t)off + CKPT_HDR_SIZE)
                                           : len == (uint32_t)off + CKPT_HDR_SIZE + hdr->body_len;
        if (hdr->bulk_len == 0)
            ok = ok && !(flags & RM_F_BULK_ANY);
        else if (flags & RM_F_BULK_READ)
            ok = ok && segsum == hdr->bulk_len;
        else
            ok = ok && response && (flags & (RM_F_BULK_WRITTEN | RM_F_BULK_DROPPED));
        if (flags & RM_F_SINK)
            ok = ok && !response && !oneway;
        if (!ok)
            rc = CKPT_E_PROTO;
    }
    if (rc == 0) {
        body = ckpt_malloc((size_t)hdr->body_len + 1u);
        if (!body)
            rc = -ENOMEM;
        else if (!(flags & RM_F_BODY_READ))
            memcpy(body, p + off + CKPT_HDR_SIZE, hdr->body_len);
    }
    /* The slot is consumed: give it back to the peer. */
    pthread_mutex_lock(&c->lock);
    if (post_recv_locked(c, idx) == 0) {
        c->returnable++;
        ctl_maybe_locked(c, false);
    }
    struct rm_sinkrec *rec = NULL;
    if (rc == 0 && response)
        rec = sink_take_locked(c, hdr->req_id);
    if (rc == 0 && (flags & RM_F_SINK)) {
        struct rm_peersink *s = ckpt_calloc(1, sizeof(*s));
        if (!s) {
            rc = -ENOMEM;
        } else {
            s->req_id = hdr->req_id;
            s->d = sink_desc;
            struct rm_peersink **b = &c->psinks[bucket(hdr->req_id)];
            s->next = *b;
            *b = s;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (rc == 0 && (flags & RM_F_BULK_WRITTEN) && (!rec || hdr->bulk_len > rec->cap))
        rc = CKPT_E_PROTO;
    if (rc == 0 && (flags & RM_F_BODY_READ) && hdr->body_len)
        rc = read_segs(c, body, hdr->body_len, &body_desc, 1);
    if (rc < 0) {
        sinkrec_free(c, rec);
        ckpt_free(body);
        return rc;
    }
    body[hdr->body_len] = 0;
    if (flags & RM_F_BULK_WRITTEN) {
        k->rec = rec;
        rec = NULL;
    }
    sinkrec_free(c, rec);
    k->bulk_len = hdr->bulk_len;
    k->active = hdr->bulk_len > 0;
    if ((flags & RM_F_BODY_READ) && !(flags & RM_F_BULK_READ))
        pull_done_inc(c, flags & RM_F_ACK);
    *out_body = body;
    return 0;
}

/* ---- the rest of the ops ---------------------------------------------------- */

static bool rm_call_expired(struct ckpt_tconn *c, uint64_t req_id)
{
    bool fence = false;
    pthread_mutex_lock(&c->lock);
    struct rm_sinkrec **pp = &c->sinks[bucket(req_id)];
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->req_id == req_id)
            break;
    }
    if (*pp && !(*pp)->bounce) {
        /* The peer holds a key to the caller's buffer: only the QP's death
         * takes it back.  (A bounce sink stays until the late response.) */
        struct rm_sinkrec *r = *pp;
        *pp = r->next;
        ckpt_free(r);
        fence = true;
    }
    pthread_mutex_unlock(&c->lock);
    return fence;
}

static void rm_shutdown(struct ckpt_tconn *c)
{
    pthread_mutex_lock(&c->lock);
    bool first = !c->shut;
    c->shut = true;
    mark_dead_locked(c, CKPT_E_CLOSED);
    fence_locked(c);
    pthread_mutex_unlock(&c->lock);
    if (first && c->id)
        (void)rdma_disconnect(c->id);
    wake_progress(c);
}

static void rm_destroy(struct ckpt_tconn *c)
{
    if (!c)
        return;
    rm_shutdown(c);
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_mutex_unlock(&c->lock);
    wake_progress(c);
    if (c->thr_started)
        pthread_join(c->thr, NULL);
    tconn_free(c);
}

static const char *rm_peer(const struct ckpt_tconn *c)
{
    return c->peer;
}

const struct ckpt_transport_ops ckpt_transport_rdma = {
    .name = "rdma",
    .kind = CKPT_TRANSPORT_RDMA,
    .ctx_create = ckpt_rdma_ctx_create,
    .ctx_destroy = ckpt_rdma_ctx_destroy,
    .connect = rm_connect,
    .listen = rm_listen,
    .listen_port = rm_listen_port,
    .accept = rm_accept,
    .listen_shutdown = rm_listen_shutdown,
    .listen_free = rm_listen_free,
    .send_msg = rm_send_msg,
    .recv_msg = rm_recv_msg,
    .recv_bulk = rm_recv_bulk,
    .call_expired = rm_call_expired,
    .shutdown = rm_shutdown,
    .destroy = rm_destroy,
    .peer = rm_peer,
    .buf_alloc = ckpt_rdma_buf_alloc,
    .buf_free = ckpt_rdma_buf_free,
};

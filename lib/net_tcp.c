/*
 * net_tcp.c - the TCP transport (see net_int.h).
 *
 * DESIGN: blocking sockets, one receive thread per connection (net.c).  A
 * message goes out as one writev of header + body + bulk pieces, so a 1 MiB
 * chunk crosses into the kernel once and never through an intermediate
 * buffer; the receiver reads the bulk straight into the destination buffer
 * that net.c obtained from the waiting call or the server.  TCP_NODELAY
 * keeps small RPCs fast; large socket buffers keep 1 MiB messages
 * streaming; keepalive (idle 5 s, 3 probes 2 s apart) finds peers that died
 * without a FIN.  SO_RCVTIMEO = io_timeout lets recv_msg tell an idle
 * connection (keep waiting) from a stall mid-message (fail); SO_SNDTIMEO
 * bounds a send to a peer that stopped reading.
 *
 * Buffers: ckpt_net_buf_alloc() sizes of 2 MiB and up (a client's stripe
 * buffers) are 2 MiB aligned and MADV_HUGEPAGE (see tcp_buf_alloc): a
 * restore read passes each byte through such a buffer three times (recv,
 * crc, the FUSE reply, which pins its source pages one by one); measured
 * 2026-11-23 (2 vCPUs, loaded), the client's CPU per GiB read fell by about
 * a fifth.  Smaller ones are page aligned.
 *
 * Known limits: a thread per connection is fine for the hundreds of
 * connections of a node or client; an epoll loop would be the next step for
 * tens of thousands.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "net_int.h"

struct ckpt_tconn {
    int fd;
    char peer[64];
};

struct ckpt_tlisten {
    int fd;
    uint16_t port;
    uint32_t io_timeout_ms;
    atomic_int stopping; /* set by listen_shutdown, read by accept */
};

static void set_timeouts(int fd, uint32_t io_timeout_ms)
{
    struct timeval tv = {.tv_sec = io_timeout_ms / 1000,
                         .tv_usec = (io_timeout_ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Options that only tune: a failure leaves a slower but correct socket. */
static void tune_socket(int fd, uint32_t io_timeout_ms)
{
    int one = 1, idle = 5, intvl = 2, cnt = 3, buf = 4 << 20;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    set_timeouts(fd, io_timeout_ms);
}

static void format_peer(const struct sockaddr_storage *ss, char *dst, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(dst, cap, "%s:%u", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(dst, cap, "[%s]:%u", host, port);
    } else {
        snprintf(dst, cap, "?");
    }
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
    int g = getaddrinfo(host, portstr, &hints, out);
    if (g == EAI_MEMORY)
        return -ENOMEM;
    if (g == EAI_SYSTEM)
        return -errno;
    return g ? -EINVAL : 0;
}

static int set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len,
                           uint32_t timeout_ms)
{
    int rc = set_nonblock(fd, 1);
    if (rc < 0)
        return rc;
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS)
        return -errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    do {
        n = poll(&p, 1, (int)timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    if (err)
        return -err;
    return set_nonblock(fd, 0);
}

static int tcp_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms,
                       uint32_t io_timeout_ms, struct ckpt_tconn **out)
{
    (void)ctx;
    struct addrinfo *ai = NULL;
    int rc = resolve(host, port, false, &ai);
    if (rc < 0)
        return rc;
    struct ckpt_tconn *c = ckpt_calloc(1, sizeof(*c));
    if (!c) {
        freeaddrinfo(ai);
        return -ENOMEM;
    }
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect_timeout(fd, a->ai_addr, a->ai_addrlen, timeout_ms);
        if (rc == 0) {
            struct sockaddr_storage ss = {0};
            memcpy(&ss, a->ai_addr, a->ai_addrlen);
            format_peer(&ss, c->peer, sizeof(c->peer));
            tune_socket(fd, io_timeout_ms);
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    if (rc < 0) {
        ckpt_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int tcp_listen(void *ctx, const char *host, uint16_t port, uint32_t io_timeout_ms,
                      struct ckpt_tlisten **out)
{
    (void)ctx;
    struct addrinfo *ai = NULL;
    int rc = resolve(host, port, true, &ai);
    if (rc < 0)
        return rc;
    struct ckpt_tlisten *l = ckpt_calloc(1, sizeof(*l));
    if (!l) {
        freeaddrinfo(ai);
        return -ENOMEM;
    }
    l->fd = -1;
    l->io_timeout_ms = io_timeout_ms;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int one = 1;
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
            rc = -errno;
            close(fd);
            continue;
        }
        l->port = ntohs(ss.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&ss)->sin6_port
                            : ((struct sockaddr_in *)&ss)->sin_port);
        l->fd = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(ai);
    if (rc < 0) {
        ckpt_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

static uint16_t tcp_listen_port(const struct ckpt_tlisten *l)
{
    return l->port;
}

static int tcp_accept(struct ckpt_tlisten *l, struct ckpt_tconn **out)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (atomic_load(&l->stopping)) {
            if (fd >= 0)
                close(fd);
            return CKPT_E_CLOSED;
        }
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                /* Out of descriptors or memory: back off instead of spinning. */
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
            return e == EINVAL ? CKPT_E_CLOSED : -e;
        }
        struct ckpt_tconn *c = ckpt_calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            return -ENOMEM;
        }
        c->fd = fd;
        format_peer(&ss, c->peer, sizeof(c->peer));
        tune_socket(fd, l->io_timeout_ms);
        *out = c;
        return 0;
    }
}

static void tcp_listen_shutdown(struct ckpt_tlisten *l)
{
    atomic_store(&l->stopping, 1);
    /* shutdown() on a listening socket wakes a blocked accept() with EINVAL. */
    (void)shutdown(l->fd, SHUT_RDWR);
}

static void tcp_listen_free(struct ckpt_tlisten *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    ckpt_free(l);
}

static int tcp_send_msg(struct ckpt_tconn *c, const uint8_t hdr[CKPT_HDR_SIZE],
                        const void *body, uint32_t body_len, const struct iovec *bulk,
                        int nbulk, void *bulk_in, uint32_t bulk_in_cap)
{
    struct iovec iov[2 + 16];
    int n = 0;
    (void)bulk_in;
    (void)bulk_in_cap;
    if (nbulk < 0 || nbulk > 16)
        return -EINVAL;
    if (ckpt_fault_hit(CKPT_FAULT_SEND))
        return -EIO;
    iov[n++] = (struct iovec){(void *)hdr, CKPT_HDR_SIZE};
    if (body_len)
        iov[n++] = (struct iovec){(void *)body, body_len};
    for (int i = 0; i < nbulk; i++)
        if (bulk[i].iov_len)
            iov[n++] = bulk[i];
    struct iovec *v = iov;
    while (n > 0) {
        struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -ETIMEDOUT;
            return errno == EPIPE || errno == ECONNRESET ? CKPT_E_CLOSED : -errno;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (uint8_t *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return 0;
}

/* Read exactly len bytes.  idle_ok: a receive timeout before the first
 * byte is not an error (the connection is merely idle). */
static int read_full(struct ckpt_tconn *c, void *dst, size_t len, bool idle_ok)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = recv(c->fd, (uint8_t *)dst + got, len - got, 0);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            return CKPT_E_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (idle_ok && got == 0)
                continue;
            return -ETIMEDOUT;
        }
        return errno == ECONNRESET ? CKPT_E_CLOSED : -errno;
    }
    return 0;
}

static int tcp_recv_msg(struct ckpt_tconn *c, bool idle_ok, uint8_t raw[CKPT_HDR_SIZE],
                        struct ckpt_hdr *hdr, uint8_t **out_body)
{
    int rc = read_full(c, raw, CKPT_HDR_SIZE, idle_ok);
    if (rc < 0)
        return rc;
    if (ckpt_fault_hit(CKPT_FAULT_READ))
        return -EIO;
    rc = ckpt_hdr_decode(raw, hdr);
    if (rc < 0)
        return rc;
    uint8_t *body = ckpt_malloc(hdr->body_len + 1u);
    if (!body)
        return -ENOMEM;
    rc = read_full(c, body, hdr->body_len, false);
    if (rc < 0) {
        ckpt_free(body);
        return rc;
    }
    body[hdr->body_len] = 0;
    *out_body = body;
    return 0;
}

static int tcp_recv_bulk(struct ckpt_tconn *c, void *dst, uint32_t len)
{
    if (dst)
        return read_full(c, dst, len, false);
    uint8_t scratch[16384];
    while (len > 0) {
        uint32_t n = len < sizeof(scratch) ? len : (uint32_t)sizeof(scratch);
        int rc = read_full(c, scratch, n, false);
        if (rc < 0)
            return rc;
        len -= n;
    }
    return 0;
}

static void tcp_shutdown(struct ckpt_tconn *c)
{
    (void)shutdown(c->fd, SHUT_RDWR);
}

static void tcp_destroy(struct ckpt_tconn *c)
{
    if (!c)
        return;
    close(c->fd);
    ckpt_free(c);
}

static const char *tcp_peer(const struct ckpt_tconn *c)
{
    return c->peer;
}

/*
 * Buffers of at least TCP_HUGE_LEN (a client's stripe buffers: k x 1 MiB
 * chunks) are aligned to it and asked to be backed by transparent huge
 * pages.  Every byte of a read crosses such a buffer three times (recv,
 * crc, the FUSE reply's writev), and the writev pins its source pages one
 * by one (get_user_pages): with 4 KiB pages that pinning alone was 6.5% of
 * the samples in a profile of one node and the client during a cold
 * restore read.  A kernel without THP (or with
 * THP "never") just ignores the advice.  Pooled buffers are reused
 * (net.c), so the one-time cost of building a huge page is amortised.
 */
#define TCP_HUGE_LEN ((size_t)2 << 20)

static void *tcp_buf_alloc(void *ctx, size_t len)
{
    (void)ctx;
    if (len < TCP_HUGE_LEN)
        return ckpt_aligned_alloc(4096, len);
    void *p = ckpt_aligned_alloc(TCP_HUGE_LEN, len);
    if (p)
        (void)madvise(p, len & ~(TCP_HUGE_LEN - 1), MADV_HUGEPAGE); /* advice only */
    return p;
}

static void tcp_buf_free(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    (void)len;
    ckpt_free(buf);
}

const struct ckpt_transport_ops ckpt_transport_tcp = {
    .name = "tcp",
    .kind = CKPT_TRANSPORT_TCP,
    .connect = tcp_connect,
    .listen = tcp_listen,
    .listen_port = tcp_listen_port,
    .accept = tcp_accept,
    .listen_shutdown = tcp_listen_shutdown,
    .listen_free = tcp_listen_free,
    .send_msg = tcp_send_msg,
    .recv_msg = tcp_recv_msg,
    .recv_bulk = tcp_recv_bulk,
    .shutdown = tcp_shutdown,
    .destroy = tcp_destroy,
    .peer = tcp_peer,
    .buf_alloc = tcp_buf_alloc,
    .buf_free = tcp_buf_free,
};

/*
 * fs_kio.c - ckptfs's own reads and writes of /dev/fuse (fs_kio.h).
 *
 * DESIGN
 *
 *   libfuse calls kio_read() for every request and kio_writev() for every
 *   reply (from its worker threads) once fs_kio_install() handed it the
 *   hooks with fuse_session_custom_io().  Both do exactly the system call
 *   libfuse would have made; kio_read() then shows the request to
 *   fs_kio_note_request(), kio_writev() first shows the reply to
 *   fs_kio_amend_reply().  Splice, when libfuse can use it, bypasses
 *   kio_read(): INIT is never spliced (libfuse splices only after INIT).
 *
 *   The kernel's wire structs are mirrored here by offset (as fs_ops.c
 *   does): <linux/fuse.h> next to libfuse's headers redefines macros, and
 *   Debian 12's copy predates the flags2 bits used.
 *
 *     fuse_in_header   len u32 @0, opcode u32 @4, unique u64 @8 (40 bytes)
 *     fuse_init_in     major @0, minor @4, max_readahead @8, flags @12,
 *                      flags2 @16 (valid when flags has FUSE_INIT_EXT)
 *     fuse_out_header  len u32 @0, error s32 @4, unique u64 @8 (16 bytes)
 *     fuse_init_out    flags @12, max_background u16 @16, congestion u16 @18,
 *                      max_write @20, time_gran @24, max_pages u16 @28,
 *                      map_alignment u16 @30, flags2 @32 (64 bytes since 7.23)
 *
 *   Known limits: only flags2 bits are added, and only ones the kernel
 *   offered; libfuse's own view of the connection (conn->capable/want)
 *   does not know about them.
 */
#include "fs_int.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "alloc.h"
#include "log.h"

#define KIO_IN_HDR 40u
#define KIO_OUT_HDR 16u
#define KIO_OP_INIT 26u
#define KIO_INIT_EXT (1u << 30)
#define KIO_INIT_IN_MIN 20u   /* through flags2 */
#define KIO_INIT_OUT_MIN 36u  /* through flags2 */

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v)); /* /dev/fuse speaks host byte order */
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

void fs_kio_note_request(struct fs_kio *k, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < KIO_IN_HDR + KIO_INIT_IN_MIN || rd32(p + 4) != KIO_OP_INIT)
        return;
    uint64_t unique = rd64(p + 8);
    uint32_t flags = rd32(p + KIO_IN_HDR + 12);
    uint32_t flags2 = (flags & KIO_INIT_EXT) ? rd32(p + KIO_IN_HDR + 16) : 0;
    atomic_store(&k->offered_flags2, flags2);
    atomic_store(&k->init_unique, unique);
}

bool fs_kio_amend_reply(struct fs_kio *k, struct iovec *iov, int count)
{
    uint64_t want = atomic_load(&k->init_unique);
    if (!want || count < 2 || iov[0].iov_len < KIO_OUT_HDR)
        return false;
    const uint8_t *h = iov[0].iov_base;
    int32_t error;
    memcpy(&error, h + 4, sizeof(error));
    if (rd64(h + 8) != want)
        return false;
    /* Once: INIT is answered once per session. */
    atomic_store(&k->init_unique, 0);
    uint32_t add = k->want_flags2 & atomic_load(&k->offered_flags2);
    if (error == 0 && iov[1].iov_len >= KIO_INIT_OUT_MIN && add) {
        uint8_t *o = iov[1].iov_base;
        uint32_t flags = rd32(o + 12) | KIO_INIT_EXT;
        uint32_t flags2 = rd32(o + 32) | add;
        memcpy(o + 12, &flags, sizeof(flags));
        memcpy(o + 32, &flags2, sizeof(flags2));
        atomic_store(&k->granted_flags2, add);
    }
    atomic_store(&k->answered, true);
    return true;
}

#define KIO_WRITE_HDR 80u /* fuse_in_header + fuse_write_in */
#define KIO_OP_WRITE 16u

/* The reading thread's payload buffer; freed when the thread ends. */
struct kio_thread {
    fs_client *c;
    uint8_t *payload;           /* FS_KIO_PAYLOAD bytes, or NULL */
    const uint8_t *write_hdr;   /* libfuse's buffer of the WRITE just read */
};

static _Thread_local struct kio_thread *kt;
static pthread_key_t kt_key;
static pthread_once_t kt_once = PTHREAD_ONCE_INIT;
static bool kt_key_ok;

static void kt_free(void *p)
{
    struct kio_thread *t = p;
    if (!t)
        return;
    fs_client_buf_put(t->c, t->payload, FS_KIO_PAYLOAD);
    ckpt_free(t);
}

static void kt_key_init(void)
{
    kt_key_ok = pthread_key_create(&kt_key, kt_free) == 0;
}

static struct kio_thread *kt_get(fs_client *c)
{
    if (kt)
        return kt;
    if (pthread_once(&kt_once, kt_key_init) != 0 || !kt_key_ok)
        return NULL;
    struct kio_thread *t = ckpt_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->c = c;
    if (pthread_setspecific(kt_key, t) != 0) {
        ckpt_free(t);
        return NULL;
    }
    kt = t;
    return t;
}

void fs_kio_thread_done(void)
{
    if (!kt)
        return;
    (void)pthread_setspecific(kt_key, NULL);
    kt_free(kt);
    kt = NULL;
}

bool fs_kio_write_payload(const void *mem, unsigned char ***buf, size_t *cap)
{
    struct kio_thread *t = kt;
    if (!t || !t->write_hdr || !t->payload || mem != t->write_hdr + KIO_WRITE_HDR)
        return false;
    t->write_hdr = NULL;
    *buf = &t->payload;
    *cap = FS_KIO_PAYLOAD;
    return true;
}

static ssize_t kio_read(int fd, void *buf, size_t len, void *userdata)
{
    fs_client *c = userdata;
    struct kio_thread *t = c->kio.payload ? kt_get(c) : NULL;
    ssize_t n;

    if (t) {
        t->write_hdr = NULL;
        if (!t->payload)
            t->payload = fs_client_buf_get(c, FS_KIO_PAYLOAD);
    }
    if (t && t->payload && len >= KIO_WRITE_HDR + FS_KIO_PAYLOAD) {
        uint8_t *b = buf;
        struct iovec iov[3] = {
            {b, KIO_WRITE_HDR},
            {t->payload, FS_KIO_PAYLOAD},
            {b + KIO_WRITE_HDR + FS_KIO_PAYLOAD, len - KIO_WRITE_HDR - FS_KIO_PAYLOAD},
        };
        n = readv(fd, iov, iov[2].iov_len ? 3 : 2);
        if (n >= (ssize_t)KIO_WRITE_HDR && rd32(b + 4) == KIO_OP_WRITE) {
            t->write_hdr = b;
        } else if (n > (ssize_t)KIO_WRITE_HDR) {
            size_t rest = (size_t)n - KIO_WRITE_HDR;
            memcpy(b + KIO_WRITE_HDR, t->payload, rest < FS_KIO_PAYLOAD ? rest : FS_KIO_PAYLOAD);
        }
    } else {
        n = read(fd, buf, len);
    }
    if (n > 0 && !atomic_load_explicit(&c->kio.answered, memory_order_relaxed))
        fs_kio_note_request(&c->kio, buf, (size_t)n);
    return n;
}

static ssize_t kio_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    fs_client *c = userdata;
    if (!atomic_load_explicit(&c->kio.answered, memory_order_relaxed) &&
        fs_kio_amend_reply(&c->kio, iov, count)) {
        bool mm = atomic_load(&c->kio.granted_flags2) & FS_KIO_F2_DIRECT_IO_ALLOW_MMAP;
        if (mm)
            CKPT_LOG_INFO("shared mmap of direct-I/O files: on");
        else if (c->kio.want_flags2 & FS_KIO_F2_DIRECT_IO_ALLOW_MMAP)
            CKPT_LOG_WARN("this kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP (Linux "
                          "6.6 and later do): MAP_SHARED mmap of a file opened with direct "
                          "I/O fails with ENODEV; mount with -o io=mixed for mmap readers");
    }
    return writev(fd, iov, count);
}

int fs_kio_install(struct fuse_session *se, fs_client *c)
{
    static const struct fuse_custom_io io = {
        .read = kio_read,
        .writev = kio_writev,
    };
    int rc = fuse_session_custom_io(se, &io, fuse_session_fd(se));
    if (rc > 0)
        rc = -rc;
    c->kio.payload = rc == 0;
    return rc;
}

/*
 * fs_kio.h - ckptfs's own reads and writes of /dev/fuse.
 *
 * libfuse 3.14 (Debian 12) negotiates the FUSE protocol from 32-bit
 * capability masks and cannot ask for the INIT flags of the second word
 * (flags2) that later kernels offer.  One of them matters to every user:
 * FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6).  Files are opened with direct
 * I/O (fs_ops.c), and without that flag the kernel refuses a MAP_SHARED
 * mmap of such a file with ENODEV - which is how safetensors, numpy's
 * mmap_mode='r' and many model loaders read a checkpoint.
 *
 * So the session does its I/O on /dev/fuse through
 * fuse_session_custom_io(): the read side notes the kernel's INIT request
 * (its unique id and offered flags2), the write side adds the flags2 bits
 * we want to the INIT reply when the kernel offered them.  Every reply
 * passes through untouched, one writev(2) as libfuse would have made it.
 *
 * Requests are read with readv(2) into two places: the first 80 bytes
 * (fuse_in_header + fuse_write_in: a WRITE's whole header) into libfuse's
 * buffer, the next FS_KIO_PAYLOAD bytes into a page-aligned buffer of the
 * reading thread, from the client's write-back buffer cache.  A WRITE's
 * data therefore lands aligned in a buffer that fs_write_adopt() can take
 * over as a chunk of a stripe (when it is one whole chunk) instead of
 * copying it, handing the thread the chunk's old buffer for the next
 * request: the write path's only copy is then the kernel's, as on a FUSE
 * filesystem that stores nothing.  Any other request's remainder is moved
 * back behind its header in libfuse's buffer (they are small), so libfuse
 * sees what read(2) would have given it.
 *
 * Thread-safety: libfuse's worker threads call the hooks concurrently;
 * INIT is the first request of a session and is answered before any other
 * is read, and the state is atomic.
 */
#ifndef FS_KIO_H
#define FS_KIO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* flags2 bits of the kernel's fuse_init_in / fuse_init_out
 * (include/uapi/linux/fuse.h: FUSE_DIRECT_IO_ALLOW_MMAP is 1ULL << 36) */
#define FS_KIO_F2_DIRECT_IO_ALLOW_MMAP (1u << 4)

struct fs_kio {
    uint32_t want_flags2;            /* set before the session starts */
    _Atomic uint64_t init_unique;    /* the INIT request's id (0: none seen) */
    _Atomic uint32_t offered_flags2; /* what the kernel offered in INIT */
    _Atomic uint32_t granted_flags2; /* what the INIT reply asked for */
    atomic_bool answered;            /* the INIT reply went out */
    bool payload;                    /* requests are read as described above */
};

/* Size of a reading thread's payload buffer: the largest write (max_write). */
#define FS_KIO_PAYLOAD (1u << 20)

/**
 * @brief Look at a request read from /dev/fuse: remember INIT's unique id
 * and the flags2 the kernel offers.  Anything else (or a truncated INIT)
 * is ignored.
 * @param[in] buf,len  the whole request as read
 */
void fs_kio_note_request(struct fs_kio *k, const void *buf, size_t len);

/**
 * @brief Amend a reply about to be written to /dev/fuse: the reply to INIT
 * (status 0, with its fuse_init_out in iov[1]) gets the wanted flags2 bits
 * the kernel offered.  Other replies are left alone.
 * @return true when iov was the INIT reply.
 */
bool fs_kio_amend_reply(struct fs_kio *k, struct iovec *iov, int count);

struct fuse_session;
struct fs_client;
/**
 * @brief Route the session's /dev/fuse I/O through these hooks.  Call after
 * fuse_session_mount() and before the session loop; the session's userdata
 * must be c (its kio is used, with want_flags2 from its options).
 * @return 0, or the negative error of fuse_session_custom_io() (the
 *         session then keeps libfuse's own I/O).
 */
int fs_kio_install(struct fuse_session *se, struct fs_client *c);

/**
 * @brief For op_write_buf: was the WRITE whose data libfuse shows at mem
 * read by this thread into its payload buffer?  Then *buf is that buffer's
 * slot (for fs_write_adopt(): it may be swapped) and *cap its size.
 * Once per request.
 */
bool fs_kio_write_payload(const void *mem, unsigned char ***buf, size_t *cap);

/** @brief Free the calling thread's payload buffer (threads that end free
 *  theirs themselves; for the thread that ran a single-threaded loop). */
void fs_kio_thread_done(void);

#endif

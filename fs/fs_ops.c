/*
 * fs_ops.c - the libfuse low-level operations of ckptfs (fs.h fs_ops()).
 *
 * DESIGN
 *
 *   FUSE node ids are ckpt-meta inode numbers (the root is 1 in both), so
 *   no lookup-count table is needed: forget is a no-op, and every handler
 *   maps its node id straight onto lib/mclient.h.  Each handler replies
 *   exactly once on every path; the "Valid replies" list from
 *   fuse_lowlevel.h sits beside it.  Codes become errno in one place,
 *   reply_err(), with ckpt_err_to_errno().
 *
 *   Caching: entries and attributes are cached by the kernel for
 *   entry_timeout / attr_timeout ([client] in ckptfs.conf); lookups that
 *   fail are not cached, so a file created on another mount is visible as
 *   soon as that mount's create returns.  Opens go to ckpt-meta every time
 *   (it holds an open until other mounts' writers have flushed: close-to-
 *   open consistency), and the page cache is dropped at every open.
 *   close() of a handle that wrote sends CLOSING (size and mtime) before
 *   it returns, so another mount's stat() after it sees the final size
 *   while the flush still runs (tar and rsync read st_size bytes).
 *
 *   Regular files are opened with direct_io by default (FS_IO_DIRECT),
 *   chosen by measurement (tests/bench/bench_fs.sh, 2 cores, 4+2, second
 *   checkpoint after the mount, same machine and hour):
 *
 *                                      io=direct     io=cached
 *     writer blocked, 1 x 4 GiB        1.2-1.4 s     3.6 s
 *     writer blocked, 4 x 1 GiB        1.2-1.8 s     3.3 s
 *     restore read, 1 reader           0.7-1.4 GB/s  0.76 GB/s
 *
 *   Through the page cache every byte written is copied once more (into
 *   the cache) and sent in page-cache-sized pieces; reads gain nothing
 *   from the kernel's read-ahead that this client's stripe read-ahead
 *   does not already do.  Direct opens also carry
 *   FOPEN_PARALLEL_DIRECT_WRITES (kernel uapi <linux/fuse.h>: 1 << 6), so
 *   threads writing disjoint ranges of one file below its end are not
 *   serialised by the inode lock; libfuse 3.14's fuse_reply_open()/
 *   fuse_reply_create() cannot express that bit, so reply_open()/
 *   reply_create() build the kernel's reply structs themselves and send
 *   them with fuse_reply_iov().  io=cached and io=mixed keep the page cache
 *   (needed for shared writable mmap).
 *
 *   Write data arrives through write_buf.  The session reads /dev/fuse
 *   itself (fs_kio.h), a WRITE's data landing page-aligned in a buffer of
 *   the reading thread that fs_write_adopt() takes over as a chunk when
 *   the write is one whole chunk (fs_write.c), and copies otherwise.
 *   Splice (FUSE_CAP_SPLICE_READ: the kernel hands the writer's pages to a
 *   pipe, fs_write() reads them into the stripe, one copy) is asked for
 *   only when those hooks could not be installed, and libfuse uses it only
 *   when a pipe can grow to 1 MiB + 4 KiB (fs.pipe-max-size >= 2 MiB or
 *   CAP_SYS_RESOURCE; op_init says which).  Measured before adoption: the
 *   kernel's copy into libfuse's buffer 16% of the client's CPU and ours
 *   into the stripe 21%; splice and read(2) within noise of each other.
 *
 * Threads: libfuse's worker threads run every handler; handlers block only
 * on ckpt-meta calls, write-back memory, fsync, and stripe loads.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

#define FS_READDIR_BATCH 512u
#define FS_BLKSIZE (1u << 20)  /* st_blksize of regular files: cp's buffer */

/* The kernel's reply structs (include/uapi/linux/fuse.h, protocol 7.9+),
 * mirrored so that FOPEN_PARALLEL_DIRECT_WRITES can be sent; including
 * <linux/fuse.h> next to libfuse's headers redefines macros. */
#define FS_FOPEN_DIRECT_IO (1u << 0)
#define FS_FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
struct fs_kattr {
    uint64_t ino, size, blocks, atime, mtime, ctime;
    uint32_t atimensec, mtimensec, ctimensec;
    uint32_t mode, nlink, uid, gid, rdev, blksize, flags;
};
struct fs_kentry_out {
    uint64_t nodeid, generation, entry_valid, attr_valid;
    uint32_t entry_valid_nsec, attr_valid_nsec;
    struct fs_kattr attr;
};
struct fs_kopen_out {
    uint64_t fh;
    uint32_t open_flags;
    uint32_t padding;
};
_Static_assert(sizeof(struct fs_kattr) == 88, "struct fuse_attr is 88 bytes");
_Static_assert(sizeof(struct fs_kentry_out) == 128, "struct fuse_entry_out is 128 bytes");
_Static_assert(sizeof(struct fs_kopen_out) == 16, "struct fuse_open_out is 16 bytes");

struct fs_dirh {
    pthread_mutex_t lock;
    struct ckpt_msg_readdir_resp resp; /* the last batch from ckpt-meta */
    bool have;
    uint64_t after;                     /* the cookie the batch starts after */
};

static fs_client *req_client(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static void reply_err(fuse_req_t req, int rc)
{
    fuse_reply_err(req, rc < 0 ? ckpt_err_to_errno(rc) : 0);
}

static double ms_to_s(uint32_t ms)
{
    return ms / 1000.0;
}

/* Attributes as the kernel should see them: ckpt-meta's, with this
 * mount's own size and mtime while it has unflushed writes. */
static void attr_to_stat(fs_client *c, const struct ckpt_attr *a, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = a->ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_rdev = a->rdev;
    st->st_size = (off_t)a->size;
    st->st_atim.tv_sec = a->atime_sec;
    st->st_atim.tv_nsec = a->atime_nsec;
    st->st_mtim.tv_sec = a->mtime_sec;
    st->st_mtim.tv_nsec = a->mtime_nsec;
    st->st_ctim.tv_sec = a->ctime_sec;
    st->st_ctim.tv_nsec = a->ctime_nsec;
    st->st_blksize = S_ISREG(a->mode) ? FS_BLKSIZE : 4096;
    if (S_ISREG(a->mode) && c) {
        fs_inode *ino = fs_inode_find(c, a->ino);
        if (ino) {
            pthread_mutex_lock(&ino->lock);
            if (ino->local_size) {
                st->st_size = (off_t)ino->size;
                st->st_mtim.tv_sec = ino->mtime_sec;
                st->st_mtim.tv_nsec = ino->mtime_nsec;
            }
            pthread_mutex_unlock(&ino->lock);
            fs_inode_put(ino);
        }
    }
    st->st_blocks = (st->st_size + 511) / 512;
}

static void fill_entry(fs_client *c, const struct ckpt_attr *a, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = a->ino;
    e->generation = a->generation;
    attr_to_stat(c, a, &e->attr);
    e->attr_timeout = ms_to_s(c->opts.attr_timeout_ms);
    e->entry_timeout = ms_to_s(c->opts.entry_timeout_ms);
}

static void reply_entry(fuse_req_t req, const struct ckpt_attr *a)
{
    struct fuse_entry_param e;
    fill_entry(req_client(req), a, &e);
    fuse_reply_entry(req, &e);
}

static uint32_t ctx_uid(fuse_req_t req)
{
    return fuse_req_ctx(req)->uid;
}

static uint32_t ctx_gid(fuse_req_t req)
{
    return fuse_req_ctx(req)->gid;
}

/* ---- raw open/create replies ----------------------------------------------------- */

static void kattr_from_stat(const struct stat *st, struct fs_kattr *k)
{
    memset(k, 0, sizeof(*k));
    k->ino = st->st_ino;
    k->size = (uint64_t)st->st_size;
    k->blocks = (uint64_t)st->st_blocks;
    k->atime = (uint64_t)st->st_atim.tv_sec;
    k->mtime = (uint64_t)st->st_mtim.tv_sec;
    k->ctime = (uint64_t)st->st_ctim.tv_sec;
    k->atimensec = (uint32_t)st->st_atim.tv_nsec;
    k->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
    k->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
    k->mode = st->st_mode;
    k->nlink = (uint32_t)st->st_nlink;
    k->uid = st->st_uid;
    k->gid = st->st_gid;
    k->rdev = (uint32_t)st->st_rdev;
    k->blksize = (uint32_t)st->st_blksize;
}

static void ktimeout(uint32_t ms, uint64_t *sec, uint32_t *nsec)
{
    *sec = ms / 1000;
    *nsec = (ms % 1000) * 1000000u;
}

static bool raw_open_wanted(const struct fuse_file_info *fi, fs_client *c)
{
    return fi->direct_io && c->opts.parallel_writes;
}

static void fill_kopen(const struct fuse_file_info *fi, struct fs_kopen_out *o)
{
    memset(o, 0, sizeof(*o));
    o->fh = fi->fh;
    o->open_flags = FS_FOPEN_DIRECT_IO | FS_FOPEN_PARALLEL_DIRECT_WRITES;
}

/* @return 0 or -errno when the reply could not be delivered. */
static int reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
    if (!raw_open_wanted(fi, req_client(req)))
        return fuse_reply_open(req, fi);
    struct fs_kopen_out o;
    fill_kopen(fi, &o);
    struct iovec iov = {&o, sizeof(o)};
    return fuse_reply_iov(req, &iov, 1);
}

static int reply_create(fuse_req_t req, const struct fuse_entry_param *e,
                        const struct fuse_file_info *fi)
{
    fs_client *c = req_client(req);
    if (!raw_open_wanted(fi, c))
        return fuse_reply_create(req, e, fi);
    struct fs_kentry_out eo;
    struct fs_kopen_out o;
    memset(&eo, 0, sizeof(eo));
    eo.nodeid = e->ino;
    eo.generation = e->generation;
    ktimeout(c->opts.entry_timeout_ms, &eo.entry_valid, &eo.entry_valid_nsec);
    ktimeout(c->opts.attr_timeout_ms, &eo.attr_valid, &eo.attr_valid_nsec);
    kattr_from_stat(&e->attr, &eo.attr);
    fill_kopen(fi, &o);
    struct iovec iov[2] = {{&eo, sizeof(eo)}, {&o, sizeof(o)}};
    return fuse_reply_iov(req, iov, 2);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

/* libfuse 3.14 splices a request only into a pipe that holds its largest
 * one, 256 pages + a header page, and otherwise reads it quietly.  A pipe
 * grows past fs.pipe-max-size (1 MiB by default) only with
 * CAP_SYS_RESOURCE, which containers often drop.  Say which it is. */
static const char *splice_blocker(void)
{
    static char why[160];
    int p[2];
    long want = 256L * 4096 + 4096;

    if (pipe2(p, O_CLOEXEC) < 0)
        return "no pipe";
    int rc = fcntl(p[0], F_SETPIPE_SZ, (int)want);
    close(p[0]);
    close(p[1]);
    if (rc >= want)
        return NULL;
    long max = -1;
    FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = -1;
        fclose(f);
    }
    snprintf(why, sizeof(why),
             "a pipe cannot grow to %ld bytes (fs.pipe-max-size %ld, no CAP_SYS_RESOURCE): "
             "write data is copied twice; raise fs.pipe-max-size to 2097152",
             want, max);
    return why;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    fs_client *c = userdata;
    const char *nosplice = NULL;

    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Our own reads land write data where it can become a chunk without a
     * copy (fs_kio.h); splice, which bypasses them, still costs one. */
    bool splice = c->opts.splice && !c->kio.payload;
    if (splice && (conn->capable & FUSE_CAP_SPLICE_READ))
        nosplice = splice_blocker();
    if (splice && (conn->capable & FUSE_CAP_SPLICE_READ) && !nosplice)
        conn->want |= FUSE_CAP_SPLICE_READ;
    else
        conn->want &= ~FUSE_CAP_SPLICE_READ;
    if (nosplice)
        CKPT_LOG_WARN("splice off: %s", nosplice);
    conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    if (conn->capable & FUSE_CAP_ASYNC_DIO)
        conn->want |= FUSE_CAP_ASYNC_DIO;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    if (c->opts.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
        conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    else
        conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    conn->max_write = 1u << 20;
    conn->max_readahead = 8u << 20;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    conn->time_gran = 1;
    CKPT_LOG_INFO("mounted: FUSE protocol %u.%u, max_write %u, write data %s, io %s%s",
                  conn->proto_major, conn->proto_minor, conn->max_write,
                  (conn->want & FUSE_CAP_SPLICE_READ) ? "spliced"
                  : c->kio.payload                    ? "adopted when a whole chunk"
                                                      : "copied",
                  c->opts.io_mode == FS_IO_DIRECT   ? "direct"
                  : c->opts.io_mode == FS_IO_CACHED ? "cached"
                                                    : "mixed",
                  (conn->want & FUSE_CAP_WRITEBACK_CACHE) ? " + writeback cache" : "");
}

/* ---- names ------------------------------------------------------------------------------ */

/* Valid replies: fuse_reply_entry, fuse_reply_err */
static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct ckpt_attr a;
    int rc = ckpt_mclient_lookup(req_client(req)->mc, parent, name, &a);
    if (rc < 0)
        reply_err(req, rc);
    else
        reply_entry(req, &a);
}

/* Valid replies: fuse_reply_attr, fuse_reply_err */
static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_client *c = req_client(req);
    struct ckpt_attr a;
    struct stat st;
    (void)fi;
    int rc = ckpt_mclient_getattr(c->mc, ino, &a);
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    attr_to_stat(c, &a, &st);
    fuse_reply_attr(req, &st, ms_to_s(c->opts.attr_timeout_ms));
}

/* A regular file's inode object for a size change without an open handle:
 * OPEN it for writing for the duration (ckpt-meta hands out the layout). */
static int temp_open(fs_client *c, uint64_t ino, uint64_t *out_handle, fs_inode **out)
{
    struct ckpt_msg_open_resp r;
    int rc = ckpt_mclient_open(c->mc, ino, O_WRONLY, &r);
    if (rc < 0)
        return rc;
    rc = fs_inode_get(c, &r.attr, &r.layout, out);
    if (rc < 0) {
        struct ckpt_msg_release m = {.ino = ino, .handle = r.handle,
                                     .session = ckpt_mclient_session(c->mc)};
        (void)ckpt_mclient_release(c->mc, &m);
        return rc;
    }
    *out_handle = r.handle;
    return 0;
}

/* Valid replies: fuse_reply_attr, fuse_reply_err */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    fs_client *c = req_client(req);
    struct ckpt_msg_setattr sa;
    struct ckpt_attr out;
    struct stat st;
    int rc;

    memset(&sa, 0, sizeof(sa));
    sa.ino = ino;
    if (to_set & FUSE_SET_ATTR_MODE) {
        sa.valid |= CKPT_SETATTR_MODE;
        sa.mode = attr->st_mode;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        sa.valid |= CKPT_SETATTR_UID;
        sa.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        sa.valid |= CKPT_SETATTR_GID;
        sa.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        sa.valid |= CKPT_SETATTR_ATIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        sa.valid |= CKPT_SETATTR_ATIME;
        sa.atime_sec = attr->st_atim.tv_sec;
        sa.atime_nsec = (uint32_t)attr->st_atim.tv_nsec;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        sa.valid |= CKPT_SETATTR_MTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        sa.valid |= CKPT_SETATTR_MTIME;
        sa.mtime_sec = attr->st_mtim.tv_sec;
        sa.mtime_nsec = (uint32_t)attr->st_mtim.tv_nsec;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (attr->st_size < 0) {
            reply_err(req, -EINVAL);
            return;
        }
        sa.valid |= CKPT_SETATTR_SIZE;
        sa.size = (uint64_t)attr->st_size;
    }

    if (sa.valid & CKPT_SETATTR_SIZE) {
        struct ckpt_attr cur;
        fs_inode *inode = fi ? ((struct fs_fh *)(uintptr_t)fi->fh)->ino : NULL;
        uint64_t handle = 0;
        bool temp = false;
        if (inode) {
            fs_inode_ref(inode);
        } else {
            inode = fs_inode_find(c, ino);
        }
        if (!inode) {
            rc = ckpt_mclient_getattr(c->mc, ino, &cur);
            if (rc == 0 && !S_ISREG(cur.mode))
                rc = S_ISDIR(cur.mode) ? -EISDIR : -EINVAL;
            if (rc == 0)
                rc = temp_open(c, ino, &handle, &inode);
            if (rc < 0) {
                reply_err(req, rc);
                return;
            }
            temp = true;
        }
        rc = fs_truncate(inode, &sa, &out);
        if (temp) {
            struct ckpt_msg_release m;
            memset(&m, 0, sizeof(m));
            m.ino = ino;
            m.handle = handle;
            m.session = ckpt_mclient_session(c->mc);
            m.wrote = rc == 0;
            pthread_mutex_lock(&inode->lock);
            m.size = inode->size;
            m.mtime_sec = out.mtime_sec;
            m.mtime_nsec = out.mtime_nsec;
            if (rc == 0 && fs_file_crc_locked(inode, inode->size, &m.checksum))
                m.has_checksum = 1;
            pthread_mutex_unlock(&inode->lock);
            int rrc = ckpt_mclient_release(c->mc, &m);
            if (rrc < 0)
                CKPT_LOG_WARN("inode %llu: RELEASE after truncate failed: " CKPT_RC_FMT,
                              (unsigned long long)ino, CKPT_RC_ARGS(rrc));
        }
        fs_inode_put(inode);
    } else {
        rc = ckpt_mclient_setattr(c->mc, &sa, &out);
        if (rc == 0) {
            fs_inode *inode = fs_inode_find(c, ino);
            if (inode) {
                fs_inode_update_attr(inode, &out);
                fs_inode_put(inode);
            }
        }
    }
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    attr_to_stat(c, &out, &st);
    fuse_reply_attr(req, &st, ms_to_s(c->opts.attr_timeout_ms));
}

/* Valid replies: fuse_reply_readlink, fuse_reply_err */
static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char *buf = ckpt_malloc(CKPT_PROTO_MAX_PATH + 1);
    if (!buf) {
        reply_err(req, -ENOMEM);
        return;
    }
    int rc = ckpt_mclient_readlink(req_client(req)->mc, ino, buf, CKPT_PROTO_MAX_PATH + 1);
    if (rc < 0)
        reply_err(req, rc);
    else
        fuse_reply_readlink(req, buf);
    ckpt_free(buf);
}

/* Valid replies: fuse_reply_entry, fuse_reply_err */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
    struct ckpt_attr a;
    int rc = ckpt_mclient_mknod(req_client(req)->mc, parent, name, mode, ctx_uid(req),
                                ctx_gid(req), (uint32_t)rdev, &a);
    if (rc < 0)
        reply_err(req, rc);
    else
        reply_entry(req, &a);
}

/* Valid replies: fuse_reply_entry, fuse_reply_err */
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct ckpt_attr a;
    int rc = ckpt_mclient_mkdir(req_client(req)->mc, parent, name, S_IFDIR | (mode & 07777),
                                ctx_uid(req), ctx_gid(req), &a);
    if (rc < 0)
        reply_err(req, rc);
    else
        reply_entry(req, &a);
}

/* Valid replies: fuse_reply_err */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    reply_err(req, ckpt_mclient_unlink(req_client(req)->mc, parent, name));
}

/* Valid replies: fuse_reply_err */
static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    reply_err(req, ckpt_mclient_rmdir(req_client(req)->mc, parent, name));
}

/* Valid replies: fuse_reply_entry, fuse_reply_err */
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    struct ckpt_attr a;
    int rc = ckpt_mclient_symlink(req_client(req)->mc, parent, name, link, ctx_uid(req),
                                  ctx_gid(req), &a);
    if (rc < 0)
        reply_err(req, rc);
    else
        reply_entry(req, &a);
}

/* Valid replies: fuse_reply_err */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    if (flags & ~(CKPT_RENAME_NOREPLACE | CKPT_RENAME_EXCHANGE)) {
        reply_err(req, -EINVAL);
        return;
    }
    reply_err(req, ckpt_mclient_rename(req_client(req)->mc, parent, name, newparent,
                                       newname, flags));
}

/* Valid replies: fuse_reply_entry, fuse_reply_err */
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct ckpt_attr a;
    int rc = ckpt_mclient_link(req_client(req)->mc, ino, newparent, newname, &a);
    if (rc < 0)
        reply_err(req, rc);
    else
        reply_entry(req, &a);
}

/* ---- files ------------------------------------------------------------------------------- */

static uint32_t meta_open_flags(int flags)
{
    return (uint32_t)(flags & (O_ACCMODE | O_TRUNC | O_EXCL | O_APPEND));
}

/* Set up the handle of a successful OPEN/CREATE.  On error the open is
 * released at ckpt-meta. */
static int fh_setup(fs_client *c, struct fuse_file_info *fi,
                    const struct ckpt_msg_open_resp *r, struct fs_fh **out)
{
    struct fs_fh *fh = NULL;
    fs_inode *ino = NULL;
    int rc;

    if (!S_ISREG(r->attr.mode)) {
        rc = -EINVAL;
        goto fail;
    }
    rc = fs_inode_get(c, &r->attr, &r->layout, &ino);
    if (rc < 0)
        goto fail;
    fh = ckpt_calloc(1, sizeof(*fh));
    if (fh)
        fh->rel = ckpt_calloc(1, sizeof(*fh->rel));
    if (!fh || !fh->rel) {
        rc = -ENOMEM;
        goto fail;
    }
    fh->ino = ino;
    fh->handle = r->handle;
    fh->flags = (uint32_t)fi->flags;
    fh->may_write = (fi->flags & O_ACCMODE) != O_RDONLY;
    atomic_init(&fh->wrote, false);
    if (fi->flags & O_TRUNC)
        fs_after_otrunc(c, ino, &r->attr, &r->layout);
    fi->fh = (uint64_t)(uintptr_t)fh;
    switch (c->opts.io_mode) {
    case FS_IO_DIRECT:
        fi->direct_io = 1;
        break;
    case FS_IO_MIXED:
        fi->direct_io = fh->may_write;
        break;
    case FS_IO_CACHED:
        fi->direct_io = 0;
        break;
    }
    fi->keep_cache = 0;
    fs_client_fh_track(c, fh);
    *out = fh;
    return 0;
fail:
    if (fh)
        ckpt_free(fh->rel);
    ckpt_free(fh);
    fs_inode_put(ino);
    struct ckpt_msg_release m = {.ino = r->attr.ino, .handle = r->handle,
                                 .session = ckpt_mclient_session(c->mc)};
    (void)ckpt_mclient_release(c->mc, &m);
    return rc;
}

/* The kernel did not take the open (interrupted): undo it. */
static void fh_abandon(fs_client *c, struct fs_fh *fh)
{
    fs_client_fh_untrack(c, fh);
    fs_release_deferred(fh);
    ckpt_free(fh);
}

/* Valid replies: fuse_reply_open, fuse_reply_err */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_client *c = req_client(req);
    struct ckpt_msg_open_resp r;
    struct fs_fh *fh;

    if (fi->flags & O_TRUNC) {
        fs_inode *inode = fs_inode_find(c, ino);
        if (inode) {
            fs_meta_quiesce(inode);
            fs_inode_put(inode);
        }
    }
    int rc = ckpt_mclient_open(c->mc, ino, meta_open_flags(fi->flags), &r);
    if (rc == 0)
        rc = fh_setup(c, fi, &r, &fh);
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    if (reply_open(req, fi) < 0)
        fh_abandon(c, fh);
}

/* Valid replies: fuse_reply_create, fuse_reply_err */
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fs_client *c = req_client(req);
    struct ckpt_msg_open_resp r;
    struct fuse_entry_param e;
    struct fs_fh *fh;

    int rc = ckpt_mclient_create_file(c->mc, parent, name, S_IFREG | (mode & 07777),
                                      ctx_uid(req), ctx_gid(req),
                                      meta_open_flags(fi->flags), &r);
    if (rc == 0)
        rc = fh_setup(c, fi, &r, &fh);
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    fill_entry(c, &r.attr, &e);
    if (reply_create(req, &e, fi) < 0)
        fh_abandon(c, fh);
}

/* Valid replies: fuse_reply_buf, fuse_reply_iov, fuse_reply_data, fuse_reply_err */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
    struct fs_rres res;
    (void)ino;

    if (off < 0) {
        reply_err(req, -EINVAL);
        return;
    }
    /* Once the reply is sent the file may be released at once (and fh
     * freed), while the pieces stay pinned until fs_rres_done(): hold the
     * inode ourselves. */
    fs_inode *inode = fh->ino;
    fs_inode_ref(inode);
    int rc = fs_read(inode, (uint64_t)off, size, &res);
    if (rc < 0) {
        reply_err(req, rc);
    } else {
        if (res.niov)
            fuse_reply_iov(req, res.iov, res.niov);
        else
            fuse_reply_buf(req, NULL, 0);
        fs_rres_done(inode, &res);
    }
    fs_inode_put(inode);
}

struct bufv_src {
    struct fuse_bufvec *src;
};

static int copy_from_bufv(void *ctx, void *dst, size_t n)
{
    struct bufv_src *s = ctx;
    struct fuse_bufvec d = FUSE_BUFVEC_INIT(n);
    d.buf[0].mem = dst;
    ssize_t got = fuse_buf_copy(&d, s->src, 0);
    if (got < 0)
        return (int)got;
    return (size_t)got == n ? 0 : -EIO;
}

/* Valid replies: fuse_reply_write, fuse_reply_err */
static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
                         struct fuse_file_info *fi)
{
    struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
    struct bufv_src src = {bufv};
    size_t len = fuse_buf_size(bufv);
    (void)ino;

    if (off < 0) {
        reply_err(req, -EINVAL);
        return;
    }
    if (!atomic_load(&fh->wrote) && !atomic_exchange(&fh->wrote, true))
        atomic_fetch_add(&req_client(req)->writers_open, 1);
    unsigned char **pl;
    size_t cap;
    ssize_t n;
    if (bufv->count == 1 && !(bufv->buf[0].flags & FUSE_BUF_IS_FD) &&
        fs_kio_write_payload(bufv->buf[0].mem, &pl, &cap) && len <= cap)
        n = fs_write_adopt(fh->ino, (uint64_t)off, len, pl, cap); /* fs_kio.h */
    else
        n = fs_write(fh->ino, (uint64_t)off, len, copy_from_bufv, &src);
    if (n < 0)
        reply_err(req, (int)n);
    else
        fuse_reply_write(req, (size_t)n);
}

/* Valid replies: fuse_reply_err */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
    int rc = 0;
    (void)ino;

    /* close(): start writing what is buffered, do not wait for it, but
     * tell ckpt-meta the size the file is flushing to, so that a stat() on
     * another mount after this close() returns sees it (msg_meta.h). */
    if (atomic_load(&fh->wrote)) {
        fs_client *c = req_client(req);
        struct ckpt_msg_release m;
        /* Other handles of the mount still writing (a checkpoint's other
         * ranks): hold this file's stripes until they pause or close. */
        if (atomic_load(&c->writers_open) > 1) {
            fs_flush_close(fh->ino);
        } else {
            fs_flush_start(fh->ino);
            fs_client_unhold_closed(c);
        }
        memset(&m, 0, sizeof(m));
        pthread_mutex_lock(&fh->ino->lock);
        rc = fh->ino->err;
        m.ino = fh->ino->ino;
        m.handle = fh->handle;
        m.wrote = 1;
        m.size = fh->ino->size;
        m.mtime_sec = fh->ino->mtime_sec;
        m.mtime_nsec = fh->ino->mtime_nsec;
        pthread_mutex_unlock(&fh->ino->lock);
        if (rc == 0 && c->mc) {
            int crc = ckpt_mclient_closing(c->mc, &m);
            if (crc < 0)
                CKPT_LOG_DEBUG("inode %llu: CLOSING: " CKPT_RC_FMT " (other mounts see the "
                               "new size once the flush is done)",
                               (unsigned long long)m.ino, CKPT_RC_ARGS(crc));
        }
    }
    reply_err(req, rc);
}

/* Valid replies: fuse_reply_err */
static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
    (void)ino;

    fs_client_fh_untrack(req_client(req), fh);
    fs_release_deferred(fh);
    ckpt_free(fh);
    reply_err(req, 0);
}

/* Valid replies: fuse_reply_err */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct fs_fh *fh = (struct fs_fh *)(uintptr_t)fi->fh;
    (void)ino;
    (void)datasync;
    reply_err(req, fs_fsync(fh));
}

/* ---- directories ------------------------------------------------------------------------ */

/* Valid replies: fuse_reply_open, fuse_reply_err */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_dirh *dh = ckpt_calloc(1, sizeof(*dh));
    (void)ino;
    if (!dh) {
        reply_err(req, -ENOMEM);
        return;
    }
    pthread_mutex_init(&dh->lock, NULL);
    fi->fh = (uint64_t)(uintptr_t)dh;
    if (fuse_reply_open(req, fi) < 0) {
        pthread_mutex_destroy(&dh->lock);
        ckpt_free(dh);
    }
}

/* Add one entry to buf; false when it does not fit. */
static bool dir_add(fuse_req_t req, fs_client *c, char *buf, size_t size, size_t *used,
                    bool plus, const char *name, const struct ckpt_attr *a, uint64_t ino,
                    uint32_t type, uint64_t next)
{
    size_t n;
    if (plus) {
        struct fuse_entry_param e;
        if (a) {
            fill_entry(c, a, &e);
        } else {
            memset(&e, 0, sizeof(e));
            e.attr.st_ino = ino;
            e.attr.st_mode = type << 12;
        }
        n = fuse_add_direntry_plus(req, buf + *used, size - *used, name, &e, (off_t)next);
    } else {
        struct stat st;
        memset(&st, 0, sizeof(st));
        st.st_ino = ino;
        st.st_mode = type << 12;
        n = fuse_add_direntry(req, buf + *used, size - *used, name, &st, (off_t)next);
    }
    if (n > size - *used)
        return false;
    *used += n;
    return true;
}

/* Cookies: 1 and 2 are "." and ".."; ckpt-meta's start at 3. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, bool plus)
{
    fs_client *c = req_client(req);
    struct fs_dirh *dh = (struct fs_dirh *)(uintptr_t)fi->fh;
    size_t used = 0;
    char *buf;
    int rc = 0;

    if (off < 0) {
        reply_err(req, -EINVAL);
        return;
    }
    buf = ckpt_malloc(size ? size : 1);
    if (!buf) {
        reply_err(req, -ENOMEM);
        return;
    }
    pthread_mutex_lock(&dh->lock);
    if (off < 1 && !dir_add(req, c, buf, size, &used, plus, ".", NULL, ino, S_IFDIR >> 12, 1))
        goto out;
    if (off < 2 && !dir_add(req, c, buf, size, &used, plus, "..", NULL, ino, S_IFDIR >> 12, 2))
        goto out;
    uint64_t cookie = off <= 2 ? 0 : (uint64_t)off;
    for (;;) {
        /* Where does `cookie` fall in the batch we hold? */
        uint32_t pos = UINT32_MAX;
        if (dh->have) {
            if (cookie == dh->after)
                pos = 0;
            for (uint32_t j = 0; j < dh->resp.n && pos == UINT32_MAX; j++)
                if (dh->resp.ents[j].next_cookie == cookie)
                    pos = j + 1;
        }
        if (pos != UINT32_MAX && pos >= dh->resp.n && dh->resp.eof)
            break;
        if (pos == UINT32_MAX || pos >= dh->resp.n) {
            if (dh->have)
                ckpt_msg_readdir_resp_free(&dh->resp);
            dh->have = false;
            rc = ckpt_mclient_readdir(c->mc, ino, cookie, FS_READDIR_BATCH, plus, &dh->resp);
            if (rc < 0)
                break;
            dh->have = true;
            dh->after = cookie;
            pos = 0;
            if (dh->resp.n == 0)
                break;
        }
        bool full = false;
        for (; pos < dh->resp.n; pos++) {
            const struct ckpt_dirent *d = &dh->resp.ents[pos];
            if (!dir_add(req, c, buf, size, &used, plus && dh->resp.plus, d->name,
                         dh->resp.plus ? &d->attr : NULL, d->ino, d->type, d->next_cookie)) {
                full = true;
                break;
            }
            cookie = d->next_cookie;
        }
        if (full)
            break;
    }
out:
    pthread_mutex_unlock(&dh->lock);
    if (rc < 0 && used == 0)
        reply_err(req, rc);
    else
        fuse_reply_buf(req, buf, used);
    ckpt_free(buf);
}

/* Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_err */
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, fi, false);
}

/* Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_err */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, fi, true);
}

/* Valid replies: fuse_reply_err */
static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_dirh *dh = (struct fs_dirh *)(uintptr_t)fi->fh;
    (void)ino;
    if (dh->have)
        ckpt_msg_readdir_resp_free(&dh->resp);
    pthread_mutex_destroy(&dh->lock);
    ckpt_free(dh);
    reply_err(req, 0);
}

/* Valid replies: fuse_reply_err */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    reply_err(req, 0); /* ckpt-meta commits every change before replying */
}

/* ---- filesystem ----------------------------------------------------------------------- */

/* Valid replies: fuse_reply_statfs, fuse_reply_err */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct ckpt_msg_statfs_resp r;
    struct statvfs sv;
    (void)ino;
    int rc = ckpt_mclient_statfs(req_client(req)->mc, &r);
    if (rc < 0) {
        reply_err(req, rc);
        return;
    }
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = r.bsize;
    sv.f_frsize = r.bsize;
    sv.f_blocks = r.blocks;
    sv.f_bfree = r.bfree;
    sv.f_bavail = r.bavail;
    sv.f_files = r.files;
    sv.f_ffree = r.ffree;
    sv.f_favail = r.ffree;
    sv.f_namemax = r.namemax;
    fuse_reply_statfs(req, &sv);
}

#define FS_XATTR_CONNS "user.ckptfs.connections"
#define FS_XATTR_READS "user.ckptfs.reads"
#define FS_XATTR_WRITES "user.ckptfs.writes"

/* Valid replies: fuse_reply_err */
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    if (ino == FUSE_ROOT_ID &&
        (strcmp(name, FS_XATTR_CONNS) == 0 || strcmp(name, FS_XATTR_READS) == 0 ||
         strcmp(name, FS_XATTR_WRITES) == 0)) {
        reply_err(req, -EPERM); /* read-only, made by this mount */
        return;
    }
    reply_err(req, ckpt_mclient_setxattr(req_client(req)->mc, ino, name, value, size,
                                         (uint32_t)flags));
}

/* user.ckptfs.connections on the mount root: this mount's connections to
 * the nodes (fs_map_describe); user.ckptfs.reads: this mount's read
 * counters (`ckpt verify` reports the stripes decoded from parity while it
 * read); user.ckptfs.writes: its write counters.  All answered here, not
 * by ckpt-meta. */

static bool local_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    fs_client *c = req_client(req);
    bool conns = strcmp(name, FS_XATTR_CONNS) == 0;
    bool writes = strcmp(name, FS_XATTR_WRITES) == 0;
    if (ino != FUSE_ROOT_ID || (!conns && !writes && strcmp(name, FS_XATTR_READS) != 0))
        return false;
    char *buf = ckpt_malloc(64u << 10);
    if (!buf) {
        reply_err(req, -ENOMEM);
        return true;
    }
    size_t n;
    if (conns) {
        n = c->map ? fs_map_describe(c->map, buf, 64u << 10) : 0;
    } else if (writes) {
        int w = snprintf(buf, 64u << 10,
                         "bytes_written %llu\nchunks_adopted %llu\nstripes_written %llu\n"
                         "stripes_degraded %llu\nstripes_failed %llu\nchunk_resends %llu\n"
                         "rmw_loads %llu\n",
                         (unsigned long long)atomic_load(&c->st.bytes_written),
                         (unsigned long long)atomic_load(&c->st.chunks_adopted),
                         (unsigned long long)atomic_load(&c->st.stripes_written),
                         (unsigned long long)atomic_load(&c->st.stripes_degraded),
                         (unsigned long long)atomic_load(&c->st.stripes_failed),
                         (unsigned long long)atomic_load(&c->st.chunk_retries),
                         (unsigned long long)atomic_load(&c->st.rmw_loads));
        n = w > 0 ? (size_t)w : 0;
    } else {
        int w = snprintf(buf, 64u << 10,
                         "bytes_read %llu\nstripes_loaded %llu\nstripes_decoded %llu\n"
                         "chunks_local %llu\nlocal_fallbacks %llu\nchunks_located %llu\n"
                         "readahead_hits %llu\nreadahead_waits %llu\nreadahead_wait_ms %llu\n"
                         "read_loads %llu\n",
                         (unsigned long long)atomic_load(&c->st.bytes_read),
                         (unsigned long long)atomic_load(&c->st.stripes_loaded),
                         (unsigned long long)atomic_load(&c->st.stripes_decoded),
                         (unsigned long long)atomic_load(&c->st.chunks_local),
                         (unsigned long long)atomic_load(&c->st.local_fallbacks),
                         (unsigned long long)atomic_load(&c->st.chunks_located),
                         (unsigned long long)atomic_load(&c->st.ra_hits),
                         (unsigned long long)atomic_load(&c->st.ra_waits),
                         (unsigned long long)atomic_load(&c->st.ra_wait_us) / 1000,
                         (unsigned long long)atomic_load(&c->st.demand_loads));
        n = w > 0 ? (size_t)w : 0;
    }
    if (n >= (64u << 10))
        n = (64u << 10) - 1;
    if (size == 0)
        fuse_reply_xattr(req, n);
    else if (size < n)
        reply_err(req, -ERANGE);
    else
        fuse_reply_buf(req, buf, n);
    ckpt_free(buf);
    return true;
}

/* Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_xattr, fuse_reply_err */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    fs_client *c = req_client(req);
    if (local_xattr(req, ino, name, size))
        return;
    if (size == 0) {
        int n = ckpt_mclient_getxattr(c->mc, ino, name, NULL, 0);
        if (n < 0)
            reply_err(req, n);
        else
            fuse_reply_xattr(req, (size_t)n);
        return;
    }
    char *buf = ckpt_malloc(size);
    if (!buf) {
        reply_err(req, -ENOMEM);
        return;
    }
    int n = ckpt_mclient_getxattr(c->mc, ino, name, buf, size);
    if (n < 0)
        reply_err(req, n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    ckpt_free(buf);
}

/* Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_xattr, fuse_reply_err */
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    fs_client *c = req_client(req);
    if (size == 0) {
        int n = ckpt_mclient_listxattr(c->mc, ino, NULL, 0);
        if (n < 0)
            reply_err(req, n);
        else
            fuse_reply_xattr(req, (size_t)n);
        return;
    }
    char *buf = ckpt_malloc(size);
    if (!buf) {
        reply_err(req, -ENOMEM);
        return;
    }
    int n = ckpt_mclient_listxattr(c->mc, ino, buf, size);
    if (n < 0)
        reply_err(req, n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    ckpt_free(buf);
}

/* Valid replies: fuse_reply_err */
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    reply_err(req, ckpt_mclient_removexattr(req_client(req)->mc, ino, name));
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write_buf = op_write_buf,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
    return &ops;
}

unsigned long fs_ops_size(void)
{
    return sizeof(ops);
}

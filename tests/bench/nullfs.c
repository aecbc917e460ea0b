/*
 * nullfs - a FUSE filesystem that stores nothing: the FUSE ceiling the
 * ckptfs benchmarks compare against (tests/bench/bench_fs.sh).
 *
 * Files have names and sizes and nothing else: writes are accepted and
 * discarded, reads return zeros up to the size.  It talks to the kernel
 * exactly like ckptfs does (fs/fs_ops.c): libfuse 3 low-level API,
 * multi-threaded loop, 1 MiB requests, write data received with splice
 * into a buffer (the one copy any real filesystem must make), and by
 * default direct_io opens with FOPEN_PARALLEL_DIRECT_WRITES.  So the
 * difference between the two is what ckptfs itself costs.
 *
 *   nullfs [-f] [-o io=direct|cached] [-o nosplice] [FUSE options] MOUNTPOINT
 *
 * One flat directory of at most NULLFS_MAX files.  Not a test; no
 * persistence; not for anything but measuring.
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define NULLFS_MAX 4096
#define ZERO_LEN (1u << 20)

struct nfile {
    char name[256];
    uint64_t size;
    uint32_t mode;
    int used;
};

struct nullfs {
    pthread_mutex_t lock;
    struct nfile f[NULLFS_MAX]; /* ino = index + 2; 1 is the root */
    int direct;
    int splice;
    char *zeros;
};

struct nopts {
    char *io;
    int nosplice;
};

static const struct fuse_opt nspec[] = {
    {"io=%s", offsetof(struct nopts, io), 0},
    {"nosplice", offsetof(struct nopts, nosplice), 1},
    FUSE_OPT_END,
};

static struct nullfs *NFS(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static void fill_stat(struct nullfs *n, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    if (ino == 1) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        return;
    }
    struct nfile *f = &n->f[ino - 2];
    st->st_mode = f->mode;
    st->st_nlink = 1;
    st->st_size = (off_t)f->size;
    st->st_blksize = 1 << 20;
    st->st_blocks = (st->st_size + 511) / 512;
}

static int find(struct nullfs *n, const char *name)
{
    for (int i = 0; i < NULLFS_MAX; i++)
        if (n->f[i].used && strcmp(n->f[i].name, name) == 0)
            return i;
    return -1;
}

static void reply_entry_for(fuse_req_t req, int i)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = (fuse_ino_t)i + 2;
    e.attr_timeout = 1.0;
    e.entry_timeout = 1.0;
    fill_stat(NFS(req), e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void n_init(void *userdata, struct fuse_conn_info *conn)
{
    struct nullfs *n = userdata;
    if (n->splice && (conn->capable & FUSE_CAP_SPLICE_READ))
        conn->want |= FUSE_CAP_SPLICE_READ;
    else
        conn->want &= ~FUSE_CAP_SPLICE_READ;
    conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    conn->max_write = 1u << 20;
    conn->max_readahead = 8u << 20;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
}

static void n_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct nullfs *n = NFS(req);
    pthread_mutex_lock(&n->lock);
    int i = parent == 1 ? find(n, name) : -1;
    pthread_mutex_unlock(&n->lock);
    if (i < 0)
        fuse_reply_err(req, ENOENT);
    else
        reply_entry_for(req, i);
}

static void n_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    pthread_mutex_lock(&NFS(req)->lock);
    fill_stat(NFS(req), ino, &st);
    pthread_mutex_unlock(&NFS(req)->lock);
    fuse_reply_attr(req, &st, 1.0);
}

static void n_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                      struct fuse_file_info *fi)
{
    struct nullfs *n = NFS(req);
    struct stat st;
    (void)fi;
    pthread_mutex_lock(&n->lock);
    if (ino >= 2 && (to_set & FUSE_SET_ATTR_SIZE))
        n->f[ino - 2].size = (uint64_t)attr->st_size;
    if (ino >= 2 && (to_set & FUSE_SET_ATTR_MODE))
        n->f[ino - 2].mode = S_IFREG | (attr->st_mode & 07777);
    fill_stat(n, ino, &st);
    pthread_mutex_unlock(&n->lock);
    fuse_reply_attr(req, &st, 1.0);
}

/* The reply of open/create with FOPEN_PARALLEL_DIRECT_WRITES (1 << 6 in
 * <linux/fuse.h>), which libfuse 3.14 cannot set: as in fs/fs_ops.c. */
struct kopen {
    uint64_t fh;
    uint32_t open_flags;
    uint32_t padding;
};

static void n_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct nullfs *n = NFS(req);
    if (fi->flags & O_TRUNC) {
        pthread_mutex_lock(&n->lock);
        n->f[ino - 2].size = 0;
        pthread_mutex_unlock(&n->lock);
    }
    if (!n->direct) {
        fuse_reply_open(req, fi);
        return;
    }
    struct kopen o = {0, (1u << 0) | (1u << 6), 0};
    struct iovec iov = {&o, sizeof(o)};
    fuse_reply_iov(req, &iov, 1);
}

static void n_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     struct fuse_file_info *fi)
{
    struct nullfs *n = NFS(req);
    int i;
    (void)parent;
    pthread_mutex_lock(&n->lock);
    i = find(n, name);
    if (i < 0)
        for (i = 0; i < NULLFS_MAX && n->f[i].used; i++)
            ;
    if (i < NULLFS_MAX) {
        n->f[i].used = 1;
        snprintf(n->f[i].name, sizeof(n->f[i].name), "%s", name);
        n->f[i].mode = S_IFREG | (mode & 07777);
        n->f[i].size = 0;
    }
    pthread_mutex_unlock(&n->lock);
    if (i >= NULLFS_MAX) {
        fuse_reply_err(req, ENOSPC);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = (fuse_ino_t)i + 2;
    e.attr_timeout = e.entry_timeout = 1.0;
    fill_stat(n, e.ino, &e.attr);
    fi->direct_io = n->direct;
    fuse_reply_create(req, &e, fi);
}

static void n_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    struct nullfs *n = NFS(req);
    (void)fi;
    pthread_mutex_lock(&n->lock);
    uint64_t fsz = n->f[ino - 2].size;
    pthread_mutex_unlock(&n->lock);
    size_t len = (uint64_t)off >= fsz ? 0 : (size_t)(fsz - (uint64_t)off < size ? fsz - (uint64_t)off : size);
    if (len > ZERO_LEN)
        len = ZERO_LEN;
    fuse_reply_buf(req, n->zeros, len);
}

static __thread char *scratch;

static void n_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
                        struct fuse_file_info *fi)
{
    struct nullfs *n = NFS(req);
    size_t len = fuse_buf_size(bufv);
    (void)fi;
    if (!scratch)
        scratch = malloc(ZERO_LEN + 4096);
    /* Take the data out of the request (from the pipe, when spliced):
     * the copy a filesystem that keeps the bytes cannot avoid. */
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(len);
    dst.buf[0].mem = scratch;
    ssize_t got = len <= ZERO_LEN + 4096 ? fuse_buf_copy(&dst, bufv, 0) : -EINVAL;
    if (got < 0) {
        fuse_reply_err(req, (int)-got);
        return;
    }
    pthread_mutex_lock(&n->lock);
    if ((uint64_t)off + (uint64_t)got > n->f[ino - 2].size)
        n->f[ino - 2].size = (uint64_t)off + (uint64_t)got;
    pthread_mutex_unlock(&n->lock);
    fuse_reply_write(req, (size_t)got);
}

static void n_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void n_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    n_ok(req, ino, fi);
}

static void n_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct nullfs *n = NFS(req);
    (void)parent;
    pthread_mutex_lock(&n->lock);
    int i = find(n, name);
    if (i >= 0)
        n->f[i].used = 0;
    pthread_mutex_unlock(&n->lock);
    fuse_reply_err(req, i < 0 ? ENOENT : 0);
}

static void n_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    struct nullfs *n = NFS(req);
    char *buf = calloc(1, size);
    size_t used = 0;
    (void)fi;
    (void)ino;
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_lock(&n->lock);
    for (int i = (int)off; i < NULLFS_MAX + 2; i++) {
        struct stat st;
        const char *name = i == 0 ? "." : i == 1 ? ".." : NULL;
        if (!name) {
            if (!n->f[i - 2].used)
                continue;
            name = n->f[i - 2].name;
        }
        fill_stat(n, i < 2 ? 1 : (fuse_ino_t)i, &st);
        size_t e = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
        if (e > size - used)
            break;
        used += e;
    }
    pthread_mutex_unlock(&n->lock);
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void n_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    (void)ino;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_blocks = sv.f_bfree = sv.f_bavail = 1ull << 32;
    sv.f_files = sv.f_ffree = NULLFS_MAX;
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops nops = {
    .init = n_init,
    .lookup = n_lookup,
    .getattr = n_getattr,
    .setattr = n_setattr,
    .open = n_open,
    .create = n_create,
    .read = n_read,
    .write_buf = n_write_buf,
    .flush = n_ok,
    .release = n_ok,
    .fsync = n_fsync,
    .unlink = n_unlink,
    .readdir = n_readdir,
    .statfs = n_statfs,
};

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts co;
    struct nopts no = {0};
    static struct nullfs n;
    struct fuse_session *se;
    int rc = 1;

    if (fuse_opt_parse(&args, &no, nspec, NULL) < 0 || fuse_parse_cmdline(&args, &co) != 0)
        return 2;
    if (co.show_help || !co.mountpoint) {
        printf("usage: nullfs [-f] [-o io=direct|cached] [-o nosplice] MOUNTPOINT\n");
        return co.show_help ? 0 : 2;
    }
    pthread_mutex_init(&n.lock, NULL);
    n.direct = !no.io || strcmp(no.io, "cached") != 0;
    n.splice = !no.nosplice;
    n.zeros = calloc(1, ZERO_LEN);
    se = fuse_session_new(&args, &nops, sizeof(nops), &n);
    if (!se || !n.zeros)
        goto out;
    if (fuse_set_signal_handlers(se) < 0 || fuse_session_mount(se, co.mountpoint) < 0)
        goto out;
    fuse_daemonize(co.foreground);
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(lc, 16);
    fuse_loop_cfg_set_idle_threads(lc, 8);
    rc = fuse_session_loop_mt(se, lc) < 0;
    fuse_loop_cfg_destroy(lc);
    fuse_session_unmount(se);
out:
    if (se) {
        fuse_remove_signal_handlers(se);
        fuse_session_destroy(se);
    }
    free(co.mountpoint);
    free(no.io);
    fuse_opt_free_args(&args);
    free(n.zeros);
    return rc;
}

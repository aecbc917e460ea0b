/*
 * node_target.c - target directories: identity, lock, free-space reserve.
 * See node_target.h for the API.
 *
 * DESIGN
 *
 * Identity file.  Text, so an operator can `cat` it, protected by a crc32c
 * over every byte before the last line:
 *
 *     ckptfs-target
 *     format 1
 *     cluster prod-a
 *     node_uuid 3f0c6d9e-51a2-4c7b-9a55-0e4b8f2d7c11
 *     node_id 7
 *     target_id 42
 *     crc32c 1a2b3c4d
 *
 * Parsing is strict (exact lines, exact order, nothing else, at most
 * IDENT_MAX bytes).  A crc mismatch is CKPT_E_CRC, any other damage
 * CKPT_E_TORN, a format other than 1 (with a good crc) CKPT_E_VERSION.  The
 * file is replaced atomically by identity_write(): write "ckptfs-target.tmp",
 * fsync, rename over "ckptfs-target", fsync the directory.  A crash leaves
 * either the old or the new file, plus perhaps the tmp file, which
 * node_target_open() removes.  A damaged identity is never rewritten by this
 * code: the operator decides (restore it, or empty the directory).
 *
 * Locking.  "ckptfs-target.lock" is flock(LOCK_EX|LOCK_NB)ed for the life of
 * the handle.  flock belongs to the open file description, so a second open
 * in the same process is refused too (-EBUSY), like a second ckpt-node.  The
 * lock holder writes its pid into the file so the refusal can name it.  The
 * identity is read only after the lock is held, so two processes racing to
 * create the same target cannot both initialise it.
 *
 * Open/create sequence (node_target_open):
 *
 *     mkdir path (EEXIST fine) -> open dir -> lock -> remove identity tmp
 *       -> read identity --found--> check cluster -> ensure chunks/ exists
 *                        --ENOENT--> NOCREATE? -ENOENT
 *                                    foreign files? -ENOTEMPTY
 *                                    mkdir chunks/, write identity
 *       -> first statvfs
 *
 * The identity is written last, so an interrupted creation leaves only
 * files that the emptiness check accepts and the next open completes it.
 *
 * Free-space estimate.  free_est starts from statvfs f_bavail * f_frsize and
 * is refreshed by statvfs when it is older than refresh_ms at the next
 * reserve check (or at every node_target_stats()).  Between refreshes,
 * node_target_reserve_check() subtracts what it admits and
 * node_target_space_release() adds back what was freed, so a check is a
 * mutex, a CLOCK_MONOTONIC_COARSE read and two compares.  Bytes claimed by
 * writes in flight at a refresh are forgotten (the estimate is optimistic by
 * at most one chunk per I/O thread for one interval); the filesystem's own
 * ENOSPC is the backstop.
 *
 * Chunk counters (count, bytes) are atomics fed by node_chunk; they start at
 * 0 and the chunk store adds what it finds when it opens.
 *
 * Threads: none of its own.  Locks: id_lock guards the ids (and serialises
 * identity rewrites); space_lock guards the estimate and reserve.  They are
 * never held together.
 *
 * Known limits: the lock is advisory (flock), so it protects against other
 * ckpt-node processes, not against `rm -rf`.  flock on NFS is emulated with
 * POSIX locks by Linux; targets are meant to be local filesystems.
 */
#include "node_target.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "crc.h"
#include "err.h"
#include "log.h"
#include "net.h"

#define IDENT_TMP NODE_TARGET_IDENTITY ".tmp"
#define IDENT_MAGIC "ckptfs-target"
#define IDENT_MAX 4096 /* an identity is ~200 bytes; anything longer is junk */

struct node_target {
    char *path;   /* immutable after open */
    int dirfd;    /* the target directory; immutable after open */
    int lockfd;   /* flock()ed; immutable after open */
    uint32_t refresh_ms; /* immutable after open */

    pthread_mutex_t id_lock;
    struct node_target_ids ids; /* protected by id_lock */

    pthread_mutex_t space_lock;
    uint64_t capacity;        /* protected by space_lock */
    uint64_t free_est;        /* protected by space_lock */
    uint64_t refreshed_ms;    /* protected by space_lock; coarse monotonic */
    uint64_t reserve_bytes;   /* protected by space_lock */
    uint32_t reserve_pct;     /* protected by space_lock */

    atomic_int_fast64_t chunk_count;
    atomic_int_fast64_t chunk_bytes;
    atomic_bool store_claimed;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static uint64_t now_ms(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC_COARSE cannot fail on Linux; if it ever did, a zero
     * time only makes the next check refresh early. */
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool cluster_name_ok(const char *s)
{
    size_t n = 0;
    if (!s)
        return false;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
            return false;
        if (n >= NODE_TARGET_CLUSTER_MAX)
            return false;
    }
    return n > 0;
}

static int fsync_fd(int fd)
{
    if (ckpt_fault_hit(CKPT_FAULT_FSYNC))
        return -EIO;
    if (fsync(fd) != 0)
        return -errno;
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    if (ckpt_fault_hit(CKPT_FAULT_WRITE))
        return -EIO;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int node_target_uuid_generate(uint8_t out[NODE_TARGET_UUID_LEN])
{
    size_t got = 0;
    while (got < NODE_TARGET_UUID_LEN) {
        ssize_t n = getrandom(out + got, NODE_TARGET_UUID_LEN - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    return 0;
}

void node_target_uuid_format(const uint8_t uuid[NODE_TARGET_UUID_LEN],
                             char out[NODE_TARGET_UUID_STRLEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < NODE_TARGET_UUID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[uuid[i] >> 4];
        out[o++] = hex[uuid[i] & 0xf];
    }
    out[o] = '\0';
}

int node_target_uuid_parse(const char *s, uint8_t out[NODE_TARGET_UUID_LEN])
{
    _Static_assert(NODE_TARGET_UUID_LEN == 16 && NODE_TARGET_UUID_STRLEN == 37, "uuid sizes");
    return ckpt_uuid_parse(s, out);
}

/* ------------------------------------------------------------------ */
/* identity file                                                        */

/* Format ids into buf; returns the length or -ENAMETOOLONG (cannot happen
 * with a validated cluster name; checked anyway). */
static int identity_format(char *buf, size_t cap,
                           const struct node_target_ids *ids)
{
    char uuid[NODE_TARGET_UUID_STRLEN];
    node_target_uuid_format(ids->node_uuid, uuid);
    int n = snprintf(buf, cap,
                     IDENT_MAGIC "\nformat %" PRIu32 "\ncluster %s\n"
                     "node_uuid %s\nnode_id %" PRIu32 "\ntarget_id %" PRIu32
                     "\n",
                     ids->format, ids->cluster, uuid, ids->node_id,
                     ids->target_id);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    uint32_t crc = ckpt_crc32c(0, buf, (size_t)n);
    int m = snprintf(buf + n, cap - (size_t)n, "crc32c %08" PRIx32 "\n", crc);
    if (m < 0 || (size_t)m >= cap - (size_t)n)
        return -ENAMETOOLONG;
    return n + m;
}

/* Atomically replace the identity file of dirfd with ids. */
static int identity_write(int dirfd, const struct node_target_ids *ids)
{
    char buf[512];
    int rc;
    int len = identity_format(buf, sizeof(buf), ids);
    if (len < 0)
        return len;

    int fd = openat(dirfd, IDENT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0644);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, buf, (size_t)len);
    if (rc == 0)
        rc = fsync_fd(fd);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        goto out_unlink_tmp;
    if (renameat(dirfd, IDENT_TMP, dirfd, NODE_TARGET_IDENTITY) != 0) {
        rc = -errno;
        goto out_unlink_tmp;
    }
    /* The rename is the commit point; the directory fsync makes it durable.
     * An error here leaves the new identity in place but possibly not on
     * stable storage; the caller reports it and may retry. */
    return fsync_fd(dirfd);

out_unlink_tmp:
    (void)unlinkat(dirfd, IDENT_TMP, 0);
    return rc;
}

/* Consume "<key> " at *p and return a pointer to the value, NUL-terminated
 * at the end of its line; advance *p past the line.  NULL if the line does
 * not start with key or has no newline. */
static char *take_line(char **p, const char *key)
{
    char *s = *p;
    size_t klen = strlen(key);
    if (strncmp(s, key, klen) != 0)
        return NULL;
    s += klen;
    char *nl = strchr(s, '\n');
    if (!nl)
        return NULL;
    *nl = '\0';
    *p = nl + 1;
    return s;
}

/* Strict decimal u32 (no sign, no spaces, no leading junk). */
static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Parse an identity file's bytes (buf is modified; len < cap).  On error
 * *out_why names the problem for the log. */
static int identity_parse(char *buf, size_t len, struct node_target_ids *out,
                          const char **out_why)
{
    static const char crc_key[] = "\ncrc32c ";
    struct node_target_ids ids;
    char *p, *v;

    memset(&ids, 0, sizeof(ids));
    buf[len] = '\0';
    if (strlen(buf) != len) {
        *out_why = "contains NUL bytes";
        return CKPT_E_TORN;
    }
    char *c = memmem(buf, len, crc_key, sizeof(crc_key) - 1);
    if (!c) {
        *out_why = "no crc32c line (truncated?)";
        return CKPT_E_TORN;
    }
    size_t body_len = (size_t)(c - buf) + 1;
    /* The crc line is exactly "crc32c XXXXXXXX\n" and ends the file. */
    if (len - body_len != 16 || buf[len - 1] != '\n') {
        *out_why = "malformed crc32c line";
        return CKPT_E_TORN;
    }
    uint32_t want = 0;
    for (size_t i = body_len + 7; i < body_len + 15; i++) {
        int h = ckpt_hexval(buf[i]);
        if (h < 0) {
            *out_why = "malformed crc32c value";
            return CKPT_E_TORN;
        }
        want = want << 4 | (uint32_t)h;
    }
    if (ckpt_crc32c(0, buf, body_len) != want) {
        *out_why = "crc32c mismatch";
        return CKPT_E_CRC;
    }
    buf[body_len] = '\0';

    p = buf;
    if (!(v = take_line(&p, IDENT_MAGIC)) || *v) {
        *out_why = "bad first line";
        return CKPT_E_TORN;
    }
    if (!(v = take_line(&p, "format ")) || parse_u32(v, &ids.format) < 0) {
        *out_why = "bad format line";
        return CKPT_E_TORN;
    }
    if (ids.format != NODE_TARGET_FORMAT) {
        *out_why = "unknown format version";
        return CKPT_E_VERSION;
    }
    if (!(v = take_line(&p, "cluster ")) || !cluster_name_ok(v)) {
        *out_why = "bad cluster line";
        return CKPT_E_TORN;
    }
    memcpy(ids.cluster, v, strlen(v) + 1);
    if (!(v = take_line(&p, "node_uuid ")) ||
        node_target_uuid_parse(v, ids.node_uuid) < 0) {
        *out_why = "bad node_uuid line";
        return CKPT_E_TORN;
    }
    if (!(v = take_line(&p, "node_id ")) || parse_u32(v, &ids.node_id) < 0) {
        *out_why = "bad node_id line";
        return CKPT_E_TORN;
    }
    if (!(v = take_line(&p, "target_id ")) ||
        parse_u32(v, &ids.target_id) < 0) {
        *out_why = "bad target_id line";
        return CKPT_E_TORN;
    }
    if (*p) {
        *out_why = "unexpected extra lines";
        return CKPT_E_TORN;
    }
    *out = ids;
    return 0;
}

/* Read and parse the identity of dirfd.  -ENOENT if there is none. */
static int identity_read(int dirfd, const char *path,
                         struct node_target_ids *out)
{
    char buf[IDENT_MAX + 1];
    size_t len = 0;
    const char *why = NULL;
    int rc;

    int fd = openat(dirfd, NODE_TARGET_IDENTITY, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (;;) {
        if (ckpt_fault_hit(CKPT_FAULT_READ)) {
            rc = -EIO;
            goto out_close;
        }
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out_close;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf) - 1) {
            why = "larger than 4 KiB";
            rc = CKPT_E_TORN;
            goto out_close;
        }
    }
    rc = identity_parse(buf, len, out, &why);

out_close:
    close(fd);
    if (rc == CKPT_E_VERSION)
        CKPT_LOG_ERR("target %s: identity file %s/%s has a format this "
                     "ckpt-node does not know (written by a newer version?): "
                     "refusing the target", path, path, NODE_TARGET_IDENTITY);
    else if (why)
        CKPT_LOG_ERR("target %s: identity file %s/%s is corrupt (%s): "
                     "refusing the target; restore the file or empty the "
                     "directory to reinitialise it", path, path,
                     NODE_TARGET_IDENTITY, why);
    else if (rc < 0)
        CKPT_LOG_ERR("target %s: cannot read %s: " CKPT_RC_FMT, path,
                     NODE_TARGET_IDENTITY, CKPT_RC_ARGS(rc));
    return rc;
}

/* ------------------------------------------------------------------ */
/* open / create                                                        */

/* Is dir `name` (relative to dirfd) empty? 1 yes, 0 no, <0 error. */
static int subdir_empty(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = 1;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = -errno;
            break;
        }
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            rc = 0;
            break;
        }
    }
    closedir(d);
    return rc;
}

/* May a directory without identity be initialised?  0 yes, -ENOTEMPTY with
 * a log line naming the first foreign entry, or another negative errno. */
static int check_fresh(int dirfd, const char *path)
{
    /* A new open file description: readdir must not move dirfd's offset. */
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = -errno;
            break;
        }
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "lost+found") ||
            !strcmp(n, NODE_TARGET_LOCKFILE) || !strcmp(n, IDENT_TMP))
            continue;
        if (!strcmp(n, NODE_TARGET_CHUNKDIR)) {
            int e = subdir_empty(dirfd, n);
            if (e == 1)
                continue;
            if (e < 0) {
                rc = e;
                break;
            }
            CKPT_LOG_ERR("target %s: has a non-empty %s/ directory but no "
                         "identity file %s: refusing to reinitialise it "
                         "(restore the identity, or empty the directory)",
                         path, NODE_TARGET_CHUNKDIR, NODE_TARGET_IDENTITY);
            rc = -ENOTEMPTY;
            break;
        }
        CKPT_LOG_ERR("target %s: directory is not empty (found \"%s\") and "
                     "is not a ckptfs target: refusing to initialise it",
                     path, n);
        rc = -ENOTEMPTY;
        break;
    }
    closedir(d);
    return rc;
}

/* mkdir path; on creation fsync the parent so the new entry is durable. */
static int make_target_dir(const char *path)
{
    if (mkdir(path, 0755) != 0) {
        if (errno == EEXIST)
            return 0;
        int rc = -errno;
        CKPT_LOG_ERR("target %s: cannot create the directory: " CKPT_RC_FMT,
                     path, CKPT_RC_ARGS(rc));
        return rc;
    }
    char *parent = ckpt_strdup(path);
    if (!parent)
        return -ENOMEM;
    char *slash = strrchr(parent, '/');
    if (!slash)
        strcpy(parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    int rc = 0;
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        rc = -errno;
    else {
        rc = fsync_fd(fd);
        close(fd);
    }
    ckpt_free(parent);
    return rc;
}

/* Take the flock; on contention name the holder's pid. */
static int take_lock(node_target *t)
{
    t->lockfd = openat(t->dirfd, NODE_TARGET_LOCKFILE,
                       O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (t->lockfd < 0) {
        int rc = -errno;
        CKPT_LOG_ERR("target %s: cannot open %s: " CKPT_RC_FMT, t->path,
                     NODE_TARGET_LOCKFILE, CKPT_RC_ARGS(rc));
        return rc;
    }
    if (flock(t->lockfd, LOCK_EX | LOCK_NB) != 0) {
        int rc = -errno;
        if (rc == -EWOULDBLOCK) {
            char pid[32];
            ssize_t n = pread(t->lockfd, pid, sizeof(pid) - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            CKPT_LOG_ERR("target %s is in use by another ckpt-node "
                         "(pid %s holds %s/%s): one process per target",
                         t->path, pid[0] ? pid : "?", t->path,
                         NODE_TARGET_LOCKFILE);
            return -EBUSY;
        }
        CKPT_LOG_ERR("target %s: flock: " CKPT_RC_FMT, t->path,
                     CKPT_RC_ARGS(rc));
        return rc;
    }
    /* The pid is only for the message above: failing to record it is not
     * worth refusing the target. */
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(t->lockfd, 0) != 0 ||
        pwrite(t->lockfd, pid, (size_t)n, 0) != n)
        CKPT_LOG_DEBUG("target %s: cannot record pid in lock file: %s",
                       t->path, strerror(errno));
    return 0;
}

static int space_refresh_locked(node_target *t)
{
    struct statvfs sv;
    if (statvfs(t->path, &sv) != 0)
        return -errno;
    t->capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
    t->free_est = (uint64_t)sv.f_bavail * sv.f_frsize;
    t->refreshed_ms = now_ms();
    return 0;
}

static int create_identity(node_target *t, const struct node_target_opts *o)
{
    struct node_target_ids ids;
    int rc;

    memset(&ids, 0, sizeof(ids));
    ids.format = NODE_TARGET_FORMAT;
    memcpy(ids.cluster, o->cluster, strlen(o->cluster) + 1);
    if (o->node_uuid)
        memcpy(ids.node_uuid, o->node_uuid, NODE_TARGET_UUID_LEN);
    else if ((rc = node_target_uuid_generate(ids.node_uuid)) < 0)
        return rc;
    if (mkdirat(t->dirfd, NODE_TARGET_CHUNKDIR, 0755) != 0 && errno != EEXIST)
        return -errno;
    rc = identity_write(t->dirfd, &ids);
    if (rc < 0) {
        CKPT_LOG_ERR("target %s: cannot write identity: " CKPT_RC_FMT,
                     t->path, CKPT_RC_ARGS(rc));
        return rc;
    }
    char uuid[NODE_TARGET_UUID_STRLEN];
    node_target_uuid_format(ids.node_uuid, uuid);
    CKPT_LOG_INFO("target %s: initialised for cluster %s (node uuid %s)",
                  t->path, ids.cluster, uuid);
    t->ids = ids;
    return 0;
}

int node_target_open(const char *path, const struct node_target_opts *opts,
                     node_target **out)
{
    node_target *t = NULL;
    int rc;

    if (!path || !*path || !opts || !out)
        return -EINVAL;
    if (!cluster_name_ok(opts->cluster)) {
        CKPT_LOG_ERR("target %s: invalid cluster name \"%s\" (1-%d of "
                     "[A-Za-z0-9._-])", path,
                     opts->cluster ? opts->cluster : "(null)",
                     NODE_TARGET_CLUSTER_MAX);
        return -EINVAL;
    }
    if (opts->reserve_pct > 100)
        return -EINVAL;

    t = ckpt_calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->dirfd = -1;
    t->lockfd = -1;
    t->refresh_ms = opts->refresh_ms ? opts->refresh_ms
                                     : NODE_TARGET_REFRESH_MS_DEFAULT;
    t->reserve_bytes = opts->reserve_bytes;
    t->reserve_pct = opts->reserve_pct;
    /* pthread_mutex_init with default attributes cannot fail on Linux, but
     * check it anyway: both are destroyed in node_target_close(). */
    if ((rc = -pthread_mutex_init(&t->id_lock, NULL)) < 0)
        goto out_free;
    if ((rc = -pthread_mutex_init(&t->space_lock, NULL)) < 0) {
        pthread_mutex_destroy(&t->id_lock);
        goto out_free;
    }
    t->path = ckpt_strdup(path);
    if (!t->path) {
        rc = -ENOMEM;
        goto out_close;
    }

    if (!(opts->flags & NODE_TARGET_F_NOCREATE) &&
        (rc = make_target_dir(path)) < 0)
        goto out_close;
    t->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->dirfd < 0) {
        rc = -errno;
        /* Probing with NOCREATE for a target still to be created is
         * expected (ckpt-node's first pass): not an error worth a log. */
        if (rc == -ENOENT && (opts->flags & NODE_TARGET_F_NOCREATE))
            CKPT_LOG_DEBUG("target %s: does not exist", path);
        else
            CKPT_LOG_ERR("target %s: cannot open: " CKPT_RC_FMT, path,
                         CKPT_RC_ARGS(rc));
        goto out_close;
    }
    if ((rc = take_lock(t)) < 0)
        goto out_close;
    if (unlinkat(t->dirfd, IDENT_TMP, 0) != 0 && errno != ENOENT) {
        rc = -errno;
        goto out_close;
    }

    rc = identity_read(t->dirfd, path, &t->ids);
    if (rc == -ENOENT) {
        if (opts->flags & NODE_TARGET_F_NOCREATE) {
            CKPT_LOG_DEBUG("target %s: no identity file (not a ckptfs target "
                         "yet)", path);
            goto out_close;
        }
        if ((rc = check_fresh(t->dirfd, path)) < 0)
            goto out_close;
        if ((rc = create_identity(t, opts)) < 0)
            goto out_close;
    } else if (rc < 0) {
        goto out_close;
    } else {
        if (strcmp(t->ids.cluster, opts->cluster) != 0) {
            CKPT_LOG_ERR("target %s belongs to cluster \"%s\", not \"%s\": "
                         "refusing it", path, t->ids.cluster, opts->cluster);
            rc = CKPT_E_CLUSTER;
            goto out_close;
        }
        if (mkdirat(t->dirfd, NODE_TARGET_CHUNKDIR, 0755) == 0) {
            CKPT_LOG_WARN("target %s: %s/ was missing and has been "
                          "recreated empty", path, NODE_TARGET_CHUNKDIR);
            if ((rc = fsync_fd(t->dirfd)) < 0)
                goto out_close;
        } else if (errno != EEXIST) {
            rc = -errno;
            goto out_close;
        }
    }

    if ((rc = space_refresh_locked(t)) < 0) {
        CKPT_LOG_ERR("target %s: statvfs: " CKPT_RC_FMT, path,
                     CKPT_RC_ARGS(rc));
        goto out_close;
    }
    *out = t;
    return 0;

out_close:
    node_target_close(t);
    return rc;

out_free:
    ckpt_free(t);
    return rc;
}

void node_target_close(node_target *t)
{
    if (!t)
        return;
    if (t->lockfd >= 0)
        close(t->lockfd); /* releases the flock */
    if (t->dirfd >= 0)
        close(t->dirfd);
    pthread_mutex_destroy(&t->space_lock);
    pthread_mutex_destroy(&t->id_lock);
    ckpt_free(t->path);
    ckpt_free(t);
}

/* ------------------------------------------------------------------ */
/* ids                                                                  */

int node_target_set_ids(node_target *t, uint32_t node_id, uint32_t target_id)
{
    pthread_mutex_lock(&t->id_lock);
    struct node_target_ids ids = t->ids;
    ids.node_id = node_id;
    ids.target_id = target_id;
    int rc = identity_write(t->dirfd, &ids);
    if (rc == 0)
        t->ids = ids;
    pthread_mutex_unlock(&t->id_lock);
    if (rc < 0)
        CKPT_LOG_ERR("target %s: cannot persist node id %" PRIu32
                     " target id %" PRIu32 ": " CKPT_RC_FMT,
                     t->path, node_id, target_id, CKPT_RC_ARGS(rc));
    return rc;
}

void node_target_get_ids(node_target *t, struct node_target_ids *out)
{
    pthread_mutex_lock(&t->id_lock);
    *out = t->ids;
    pthread_mutex_unlock(&t->id_lock);
}

const char *node_target_path(const node_target *t)
{
    return t->path;
}

/* ------------------------------------------------------------------ */
/* space                                                                */

static uint64_t reserve_locked(const node_target *t)
{
    uint64_t pct = t->capacity / 100u * t->reserve_pct +
                   t->capacity % 100u * t->reserve_pct / 100u;
    return pct > t->reserve_bytes ? pct : t->reserve_bytes;
}

int node_target_set_reserve(node_target *t, uint64_t reserve_bytes,
                            uint32_t reserve_pct)
{
    if (reserve_pct > 100)
        return -EINVAL;
    pthread_mutex_lock(&t->space_lock);
    t->reserve_bytes = reserve_bytes;
    t->reserve_pct = reserve_pct;
    pthread_mutex_unlock(&t->space_lock);
    return 0;
}

int node_target_reserve_check(node_target *t, uint64_t bytes_to_write)
{
    int rc = 0;
    pthread_mutex_lock(&t->space_lock);
    if (now_ms() - t->refreshed_ms >= t->refresh_ms &&
        (rc = space_refresh_locked(t)) < 0)
        goto out_unlock;
    uint64_t reserve = reserve_locked(t);
    if (t->free_est < bytes_to_write ||
        t->free_est - bytes_to_write < reserve) {
        rc = -ENOSPC;
        goto out_unlock;
    }
    t->free_est -= bytes_to_write;
out_unlock:
    pthread_mutex_unlock(&t->space_lock);
    return rc;
}

void node_target_space_release(node_target *t, uint64_t bytes)
{
    pthread_mutex_lock(&t->space_lock);
    t->free_est = t->free_est + bytes > t->capacity ? t->capacity
                                                    : t->free_est + bytes;
    pthread_mutex_unlock(&t->space_lock);
}

void node_target_chunks_account(node_target *t, int64_t delta_count,
                                int64_t delta_bytes)
{
    atomic_fetch_add(&t->chunk_count, delta_count);
    atomic_fetch_add(&t->chunk_bytes, delta_bytes);
}

int node_target_stats(node_target *t, struct node_target_stats *out)
{
    struct node_target_stats st;
    pthread_mutex_lock(&t->space_lock);
    int rc = space_refresh_locked(t);
    if (rc == 0) {
        st.capacity_bytes = t->capacity;
        st.free_bytes = t->free_est;
        st.reserve_bytes = reserve_locked(t);
    }
    pthread_mutex_unlock(&t->space_lock);
    if (rc < 0)
        return rc;
    st.usable_bytes = st.free_bytes > st.reserve_bytes
                          ? st.free_bytes - st.reserve_bytes
                          : 0;
    int64_t c = atomic_load(&t->chunk_count), b = atomic_load(&t->chunk_bytes);
    st.chunk_count = c > 0 ? (uint64_t)c : 0;
    st.chunk_bytes = b > 0 ? (uint64_t)b : 0;
    *out = st;
    return 0;
}

int node_target_claim_store(node_target *t)
{
    bool expect = false;
    return atomic_compare_exchange_strong(&t->store_claimed, &expect, true)
               ? 0
               : -EBUSY;
}

void node_target_release_store(node_target *t)
{
    /* The counters are what the store reported; a new store rescans. */
    atomic_store(&t->chunk_count, 0);
    atomic_store(&t->chunk_bytes, 0);
    atomic_store(&t->store_claimed, false);
}

/*
 * fs_read.c - the read path of the FUSE client (fs_int.h): stripe loads
 * from the targets, degraded decode, read cache and read-ahead.
 *
 * DESIGN
 *
 *   Unit of reading: a whole stripe.  fs_stripe_load() reads the k data
 *   chunks of a stripe in parallel (CHUNK_READ, the bulk landing straight
 *   in the stripe buffer), checks every chunk's crc32c end to end, and
 *   classifies each chunk:
 *
 *     OK      read, crc good: generation g, length len
 *     ABSENT  the target has no such chunk (-ENOENT)
 *     ERR     error, timeout, crc mismatch, or target DOWN / suspect
 *
 *   The stripe's generation is the newest g among OK chunks; chunks of an
 *   older generation are stale (a torn or degraded overwrite) and count as
 *   lost, as does a chunk shorter than chunk_size followed by a non-empty
 *   one (a stale chunk of the same generation, see fs_write.c: versions
 *   write lengths forming a prefix).  Lost data chunks are rebuilt from
 *   parity with ckpt_ec_decode().  When targets of data chunks are known
 *   to be down, round 1 also reads as many parity chunks as data chunks
 *   are missing (not all m: a stripe with one node dead then moves k
 *   chunks like a healthy one; measured, the cluster's CPU per GiB of a
 *   degraded read fell by about a quarter); whatever is still missing
 *   (a parity read that failed too, a chunk found bad) is read in round 2.
 *   A stripe of which no chunk exists and at least m+1 chunks are
 *   ABSENT was never written (a hole) and reads as zeros: had it been
 *   written, at most m of its chunks could be gone.  Fewer than k usable
 *   chunks of one generation is -EIO, never wrong bytes.  Data chunks
 *   wholly past the end of the file are zeros by construction and are
 *   neither read nor needed.
 *
 *   Why whole stripes: the generation check needs every data chunk of the
 *   stripe (a range read of one chunk cannot tell a stale chunk from a
 *   current one), and a node verifies a chunk's crc over the whole chunk
 *   on every read anyway.  Random small reads therefore cost a stripe
 *   each; checkpoints are read sequentially.
 *
 *   Read cache: per inode, a short list of whole stripes (struct fs_rc),
 *   most recently used first, at most readahead/stripe + 2 entries, all
 *   inodes together within c->rc_limit (prefetches stop there; demand
 *   loads always proceed).  A sequential reader (each read starting where
 *   the previous ended) triggers read-ahead: the next readahead bytes of
 *   stripes are loaded by the c->rq workers (entry: rc_load_job) while the
 *   reader consumes the current one.  The cache lives while the inode is
 *   open on this mount; a new version of a stripe written here drops its
 *   cached copy, and a changed size or generation from ckpt-meta drops all.
 *
 *   Short-circuit reads.  A chunk whose node runs on this machine (same
 *   kernel boot_id) is read from the node's own file.  The first chunks of
 *   a target go through CHUNK_LOCATE: the node checks the chunk's header
 *   and generation and answers with the file's path, dev/ino, data offset,
 *   length and crc; the net receive thread that gets the answer
 *   (locate_verify) opens the file, checks dev/ino, preads the bytes
 *   straight into the stripe buffer, checks the crc, and remembers the
 *   target's chunks/ directory (fs_map_set_local_root: the path minus the
 *   chunk's own name, lib/chunkfile.h).  From then on (file_read) the
 *   loading thread opens <chunks>/<name> itself and reads header and data
 *   in one preadv, checking them with the node's own decoder (key, format,
 *   lengths, file size, crc): no socket, no node thread, and no second disk
 *   read for the header, while the node's CHUNK_READs and LOCATEs of the
 *   same round travel.  Measured with 6 nodes on one machine, 4 cold
 *   readers of 4 x 1 GiB, same runs: asking the node for every chunk 2.1-
 *   3.0 GB/s and 460-520 ms of cluster CPU per GiB, reading the files
 *   directly 3.1-3.6 GB/s and 250-290 ms (ckpt-node had been 18% of all
 *   samples, waiting on its header reads and waking threads).  A file read
 *   is tried only while this mount's connection to the node is open: a
 *   killed node's socket closes at once, and a dead node's chunks are the
 *   cluster's to rebuild, not ours to read around it (its next chunk then
 *   goes to CHUNK_LOCATE, which fails or reconnects).  The bytes cross no
 *   socket and no node buffer: per byte one copy out of the disk instead of
 *   four (node pread, send, receive, and the node's and the client's crc
 *   passes become one).  In production a compute server also runs a
 *   ckpt-node, so 1 in N chunks is local; the rest is the network path.
 *   (HDFS's short-circuit local reads are the same idea, its client
 *   reading the block's checksum file itself.)  Anything that is not a
 *   clean local read falls back to CHUNK_READ for that chunk, which is
 *   what keeps the node in charge of damage: another host or an old node
 *   (-EXDEV, -EOPNOTSUPP: that node is never asked again until its address
 *   changes), a file we cannot open (another mount namespace, permissions:
 *   not again for FS_LOCAL_RETRY_MS), no file (absent, or moved: the node
 *   says which), a file replaced since the node looked, a header that does
 *   not check, a short read, or a crc mismatch (the node then verifies,
 *   reports the bit rot to ckpt-meta and answers CKPT_E_CRC, and the
 *   stripe is decoded).  Answers about the chunk itself (absent, stale,
 *   torn, a dead node) count as they would from CHUNK_READ.
 *
 *   On by default (-o nolocal turns it off).  It was off for a while: a
 *   stress loop of test_fs_posix's modify section (appends by 50 reopens,
 *   truncates down and up) on a mount with short-circuit reads produced a
 *   wrongly stored stripe twice in about 185 iterations, and 0 in 40
 *   through the nodes.  The cause was not here: ckpt-meta answered an
 *   OPEN with the stored size while the opener's own earlier handle was
 *   still flushing a larger one (meta_session.c open_ino), and a client
 *   that had just dropped its inode object zero-filled the gap; faster
 *   loads only made the window more likely.  With that fixed the same loop
 *   ran 200 iterations with short-circuit reads without a failure.

 *   Direct reads: the chunk file is opened with O_DIRECT (when its slot in
 *   the stripe buffer is page-aligned, as stripe buffers are, and the
 *   filesystem takes the flag), so the disk's bytes land in the stripe
 *   buffer without a page-cache copy: the pread copy was 40% of all samples
 *   of a cold restore (perf), and the page-cache pages it needed were the
 *   slowest memory of the VM to touch.  With it, 4 readers of 4 x 1 GiB:
 *   2.6-3.2 GB/s and 340-500 ms of cluster CPU per GiB, against 2.0-2.7
 *   GB/s and 530-660 ms (ckpt-node's node_chunk.c does the same for
 *   CHUNK_READ).

 *   Replies are gathered, not copied: fs_read() returns iovecs pointing
 *   into write-back buffers (this mount's unflushed data), cached stripes
 *   and a shared zero buffer, each pinned until the reply is sent.
 *
 * Threads: FUSE threads (fs_read, demand loads), c->rq workers
 * (rc_load_job), net receive threads (chunk read completions).
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "chunkfile.h"
#include "crc.h"
#include "err.h"
#include "log.h"

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#define FS_DIO_ALIGN 4096u /* O_DIRECT alignment of buffers, offsets and lengths */

enum cr_state { CR_NONE = 0, CR_OK, CR_ABSENT, CR_ERR };

struct load {
    fs_inode *ino;
    uint64_t stripe;
    uint8_t *const *bufs;                /* k data chunks, chunk bytes each */
    uint8_t *pbuf;                       /* m * chunk, allocated when needed */
    uint32_t exp[FS_MAX_CHUNKS];         /* expected data lengths from the size */
    bool requested[FS_MAX_CHUNKS];
    enum cr_state st[FS_MAX_CHUNKS];
    bool skipped[FS_MAX_CHUNKS];         /* not tried: the map says unusable */
    bool remote[FS_MAX_CHUNKS];          /* read through the node, not its file */
    bool no_file[FS_MAX_CHUNKS];         /* file_read found no file there */
    uint64_t gen[FS_MAX_CHUNKS];
    uint32_t len[FS_MAX_CHUNKS];
    struct fs_bcall bc[FS_MAX_CHUNKS];
};

static uint8_t *load_ptr(struct load *l, uint32_t i)
{
    fs_inode *ino = l->ino;
    if (i < ino->k)
        return l->bufs[i];
    return l->pbuf + (size_t)(i - ino->k) * ino->chunk;
}

/* Completion of a chunk read (net receive thread): check the answer and
 * the crc of the bytes while they are still in the cache. */
static void load_verify(struct fs_bcall *bc)
{
    struct ckpt_msg_chunk_read_resp r;
    int rc;

    if (bc->status < 0)
        return;
    rc = ckpt_msg_chunk_read_resp_decode(bc->call.resp_body, bc->call.resp_body_len, &r);
    if (rc == 0 && (r.chunk_len != bc->call.bulk_in_len || r.chunk_len > bc->call.bulk_in_cap))
        rc = CKPT_E_PROTO;
    if (rc == 0 && ckpt_crc32c(0, bc->call.bulk_in, r.chunk_len) != r.crc)
        rc = CKPT_E_CRC;
    if (rc == 0) {
        bc->gen = r.gen;
        bc->len = r.chunk_len;
    }
    bc->status = rc;
}

/* Read len bytes at off into dst, looping over short reads; fewer only at
 * the end of the file.  direct: the file is O_DIRECT, so whole 4 KiB
 * blocks are read (dst has room for len rounded up: chunk sizes are
 * multiples of 4 KiB) and a short read that is not block-aligned can only
 * be the end of the file (the crc check decides what it means). */
static ssize_t pread_all(int fd, uint8_t *dst, size_t len, off_t off, bool direct)
{
    size_t want = direct ? (len + FS_DIO_ALIGN - 1) & ~(size_t)(FS_DIO_ALIGN - 1) : len;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, dst + done, want - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
        if (direct && done < len && ((size_t)n & (FS_DIO_ALIGN - 1)))
            break;
    }
    return (ssize_t)(done < len ? done : len);
}

/* Completion of a CHUNK_LOCATE (net receive thread): read the chunk from
 * the node's file into its slot and check it against the crc the node's
 * header gave.  Answers about the chunk itself (-ENOENT, stale, torn, a
 * dead connection) stand as they are; anything that only says "not from
 * here" (another host, an old node, a file we cannot open, a file that
 * changed, bytes that fail the crc) sends the chunk to the node's
 * CHUNK_READ (local < 0), which verifies and reports bit rot itself. */
static void locate_verify(struct fs_bcall *bc)
{
    struct ckpt_msg_chunk_locate_resp r;
    struct stat st;
    int rc, fd;

    if (bc->status == -EXDEV || bc->status == -EOPNOTSUPP) {
        bc->local = -2;
        return;
    }
    if (bc->status < 0)
        return;
    rc = ckpt_msg_chunk_locate_resp_decode(bc->call.resp_body, bc->call.resp_body_len, &r);
    if (rc < 0 || r.chunk_len > bc->cap) {
        bc->status = CKPT_E_PROTO;
        return;
    }
    /* O_DIRECT when the slot is page-aligned (stripe buffers are): the
     * disk's bytes land in the stripe buffer without passing through the
     * page cache (see "Direct reads").  Refused (tmpfs): buffered. */
    bool direct = ((uintptr_t)bc->dst & (FS_DIO_ALIGN - 1)) == 0;
    fd = direct ? open(r.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT) : -1;
    if (fd < 0 && direct && errno == EINVAL)
        direct = false;
    if (!direct)
        fd = open(r.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        /* Another mount namespace, or not allowed: the node's business. */
        bc->status = -errno;
        bc->local = -2;
        return;
    }
    ssize_t got = 0;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if ((uint64_t)st.st_dev != r.dev || (uint64_t)st.st_ino != r.ino)
        rc = -ESTALE; /* replaced since the node looked: ask it */
    else if ((got = pread_all(fd, bc->dst, r.chunk_len, (off_t)r.data_off, direct)) < 0)
        rc = (int)got;
    else if ((uint32_t)got != r.chunk_len)
        rc = CKPT_E_TORN;
    else if (ckpt_crc32c(0, bc->dst, r.chunk_len) != r.crc)
        rc = CKPT_E_CRC;
    close(fd);
    if (rc < 0) {
        bc->status = rc;
        bc->local = -1;
        return;
    }
    bc->gen = r.gen;
    bc->len = r.chunk_len;
    bc->local = 1;
    /* The node's files are ours to read: remember where the target keeps
     * them, so its next chunks are read without asking (file_read). */
    char rel[CKPT_CHUNKFILE_REL_MAX];
    size_t rl = (size_t)ckpt_chunkfile_rel(rel, bc->ino, bc->stripe, bc->index);
    size_t pl = strnlen(r.path, sizeof(r.path));
    if (r.data_off == CKPT_CHUNKFILE_DATA_OFF && pl > rl + 1 &&
        memcmp(r.path + pl - rl, rel, rl) == 0 && r.path[pl - rl - 1] == '/')
        fs_map_set_local_root(bc->map, bc->tid, r.path, pl - rl - 1);
}

/* Read chunk i of the stripe from its file below the target's chunks/
 * directory (learnt by locate_verify), header and data in one preadv, and
 * check them as the node would (lib/chunkfile.h: key, lengths, file size,
 * crc).  No socket, no node thread, no second disk read for the header.
 * Runs on the loading thread while the round's node calls travel.  Same
 * outcomes as locate_verify: anything doubtful goes to the node. */
static void file_read(struct load *l, uint32_t i)
{
    fs_inode *ino = l->ino;
    struct fs_bcall *bc = &l->bc[i];
    char path[CKPT_LOCATE_MAX_PATH + CKPT_CHUNKFILE_REL_MAX];
    _Alignas(FS_DIO_ALIGN) uint8_t hdr[CKPT_CHUNKFILE_DATA_OFF];
    struct ckpt_chunkfile_info info;
    struct stat st;
    int rc = 0;

    bc->local = -1;
    size_t rl = fs_map_local_root(ino->c->map, bc->tid, path, CKPT_LOCATE_MAX_PATH);
    if (!rl) {
        bc->status = -ESTALE; /* forgotten meanwhile: ask the node */
        return;
    }
    path[rl] = '/';
    (void)ckpt_chunkfile_rel(path + rl + 1, ino->ino, l->stripe, (uint16_t)i);
    bool direct = ((uintptr_t)bc->dst & (FS_DIO_ALIGN - 1)) == 0 &&
                  (bc->cap & (FS_DIO_ALIGN - 1)) == 0;
    int fd = direct ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT) : -1;
    if (fd < 0 && direct && errno == EINVAL)
        direct = false;
    if (!direct)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        /* -ENOENT: absent, or moved; the node knows.  Anything else (rights,
         * another mount namespace): not from here for a while. */
        bc->status = -errno;
        if (bc->status != -ENOENT)
            bc->local = -2;
        return;
    }
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {bc->dst, bc->cap}};
    ssize_t got;
    do
        got = preadv(fd, iov, 2, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        rc = -errno;
    else if (fstat(fd, &st) != 0)
        rc = -errno;
    close(fd);
    if (rc < 0) {
        bc->status = rc;
        return;
    }
    /* A short read is the end of the file (the kernel reads regular files
     * whole otherwise); the size check below decides whether it is torn. */
    if ((size_t)got < CKPT_CHUNKFILE_HDR_LEN ||
        ckpt_chunkfile_hdr_decode(hdr, ino->ino, l->stripe, (uint16_t)i, &info, NULL) < 0 ||
        info.encoding != CKPT_CHUNKFILE_ENC_RAW ||
        (uint64_t)st.st_size != CKPT_CHUNKFILE_DATA_OFF + (uint64_t)info.stored_len ||
        info.len > bc->cap || (uint64_t)got < CKPT_CHUNKFILE_DATA_OFF + (uint64_t)info.len)
        rc = CKPT_E_TORN; /* the node looks, logs and answers */
    else if (ckpt_crc32c(0, bc->dst, info.len) != info.crc)
        rc = CKPT_E_CRC; /* the node verifies and reports the bit rot */
    if (rc < 0) {
        bc->status = rc;
        return;
    }
    bc->status = 0;
    bc->gen = info.gen;
    bc->len = info.len;
    bc->local = 1;
}

/* Submit the read of chunk i into its slot; a target that is unusable
 * (unless force) makes the chunk ERR at once.  A chunk whose node is on
 * this host is read from the node's file (CHUNK_LOCATE) unless it already
 * failed that way (l->remote). */
static void load_issue(struct load *l, struct fs_batch *b, uint32_t i, bool force)
{
    fs_inode *ino = l->ino;
    fs_client *c = ino->c;
    struct fs_bcall *bc = &l->bc[i];
    enum fs_target_state st;
    ckpt_peer *peer;
    struct ckpt_wbuf w;

    l->requested[i] = true;
    memset(bc, 0, sizeof(*bc));
    bc->tid = fs_chunk_target(ino, l->stripe, i);
    if (fs_map_target(c->map, bc->tid, &peer, &st) < 0) {
        bc->status = -EHOSTDOWN;
        l->st[i] = CR_ERR;
        return;
    }
    if (st != FS_TARGET_OK && !force) {
        bc->status = -EHOSTDOWN;
        l->st[i] = CR_ERR;
        l->skipped[i] = true;
        return;
    }
    struct ckpt_msg_chunk_read m = {
        .target = bc->tid,
        .key = {.ino = ino->ino, .stripe = l->stripe, .index = (uint16_t)i},
        .offset = 0,
        .len = 0,
        .min_gen = 0,
    };
    ckpt_wbuf_init(&w, bc->body, sizeof(bc->body));
    bc->map = c->map;
    bc->ino = ino->ino;
    bc->stripe = l->stripe;
    bc->index = (uint16_t)i;
    /* Read the file ourselves only while the node is alive as far as we
     * can tell (this mount's connection to it is open: a killed node's
     * socket closes at once): a dead node's targets are the cluster's to
     * rebuild, not ours to read around it. */
    if (c->local_read && !l->remote[i] && fs_map_local_root_known(c->map, bc->tid) &&
        ckpt_peer_transport(peer)) {
        bc->dst = load_ptr(l, i);
        bc->cap = ino->chunk;
        bc->local = 2; /* file_read() from load_round() */
        return;
    }
    if (c->local_read && !l->remote[i] && fs_map_local_try(c->map, bc->tid)) {
        struct ckpt_msg_chunk_locate lm = {.target = m.target, .key = m.key, .min_gen = 0};
        memcpy(lm.host, c->host_id, sizeof(lm.host));
        if (ckpt_msg_chunk_locate_encode(&w, &lm) < 0 || w.heap) {
            ckpt_wbuf_free(&w);
            bc->status = -EMSGSIZE;
            l->st[i] = CR_ERR;
            return;
        }
        bc->call.opcode = CKPT_OP_CHUNK_LOCATE;
        bc->call.body = bc->body;
        bc->call.body_len = (uint32_t)w.len;
        bc->call.timeout_ms = c->opts.chunk_timeout_ms;
        bc->dst = load_ptr(l, i);
        bc->cap = ino->chunk;
        bc->verify = locate_verify;
        atomic_fetch_add(&c->st.chunks_located, 1);
        if (fs_batch_submit(b, peer, bc) < 0)
            l->st[i] = CR_ERR;
        return;
    }
    if (ckpt_msg_chunk_read_encode(&w, &m) < 0 || w.heap) {
        ckpt_wbuf_free(&w);
        bc->status = -EMSGSIZE;
        l->st[i] = CR_ERR;
        return;
    }
    bc->call.opcode = CKPT_OP_CHUNK_READ;
    bc->call.body = bc->body;
    bc->call.body_len = (uint32_t)w.len;
    bc->call.bulk_in = load_ptr(l, i);
    bc->call.bulk_in_cap = ino->chunk;
    bc->call.timeout_ms = c->opts.chunk_timeout_ms;
    bc->verify = load_verify;
    if (fs_batch_submit(b, peer, bc) < 0)
        l->st[i] = CR_ERR;
}

/* Classify the answered reads of this round; returns how many chunks a
 * short-circuit read sent back to their node (still CR_NONE). */
static uint32_t load_collect(struct load *l)
{
    fs_inode *ino = l->ino;
    fs_client *c = ino->c;
    uint32_t again = 0;

    for (uint32_t i = 0; i < ino->k + ino->m; i++) {
        struct fs_bcall *bc = &l->bc[i];
        if (!l->requested[i] || l->st[i] != CR_NONE)
            continue;
        int rc = bc->status; /* verified by load_verify() / locate_verify() */
        if (bc->local == 1)
            atomic_fetch_add(&c->st.chunks_local, 1);
        if (bc->local < 0) {
            atomic_fetch_add(&c->st.local_fallbacks, 1);
            if (bc->local == -2) {
                /* Another host (-EXDEV), a node without CHUNK_LOCATE, or
                 * files we cannot open (other mount namespace, rights):
                 * not again for a while; another host not at all. */
                bool host = rc == -EXDEV || rc == -EOPNOTSUPP;
                fs_map_local_off(c->map, bc->tid, host ? 0 : FS_LOCAL_RETRY_MS);
                CKPT_LOG_INFO("target %u: chunks read through the node%s (" CKPT_RC_FMT ")",
                              bc->tid, host ? "" : " for a while", CKPT_RC_ARGS(rc));
            } else if (rc == -ENOENT) {
                /* No file: absent (a hole) or moved; the node answers. */
                l->no_file[i] = true;
                CKPT_LOG_DEBUG("chunk %llu/%llu/%u on target %u: no file: asking the node",
                               (unsigned long long)ino->ino, (unsigned long long)l->stripe, i,
                               bc->tid);
            } else {
                CKPT_LOG_INFO("chunk %llu/%llu/%u on target %u: same-host read failed ("
                              CKPT_RC_FMT "): asking the node", (unsigned long long)ino->ino,
                              (unsigned long long)l->stripe, i, bc->tid, CKPT_RC_ARGS(rc));
            }
            ckpt_call_release(&bc->call);
            l->remote[i] = true;
            again |= 1u << i;
            continue;
        }
        if (rc == 0) {
            l->st[i] = CR_OK;
            l->gen[i] = bc->gen;
            l->len[i] = bc->len;
        }
        if (rc == -ENOENT) {
            l->st[i] = CR_ABSENT;
        } else if (rc < 0) {
            l->st[i] = CR_ERR;
            fs_map_suspect(c->map, bc->tid, rc);
            CKPT_LOG_INFO("chunk %llu/%llu/%u on target %u: " CKPT_RC_FMT
                          ": reading around it", (unsigned long long)ino->ino,
                          (unsigned long long)l->stripe, i, bc->tid, CKPT_RC_ARGS(rc));
        }
        ckpt_call_release(&bc->call);
    }
    return again;
}

/* Wait for a round, classify it, and read the chunks that a short-circuit
 * read gave back through their nodes. */
static void load_round(struct load *l, struct fs_batch *b)
{
    for (uint32_t i = 0; i < l->ino->k + l->ino->m; i++)
        if (l->requested[i] && l->st[i] == CR_NONE && l->bc[i].local == 2)
            file_read(l, i);
    fs_batch_wait(b);
    uint32_t again = load_collect(l);
    if (!again)
        return;
    fs_batch_init(b);
    for (uint32_t i = 0; i < l->ino->k + l->ino->m; i++)
        if ((again >> i) & 1)
            load_issue(l, b, i, true);
    fs_batch_wait(b);
    (void)load_collect(l);
    /* The node had a chunk where we found no file: the target's files are
     * elsewhere now (moved while its node kept its address).  Ask anew. */
    for (uint32_t i = 0; i < l->ino->k + l->ino->m; i++)
        if (l->no_file[i] && l->st[i] == CR_OK) {
            CKPT_LOG_INFO("target %u: its chunk files are no longer where its node said: "
                          "asking it again", l->bc[i].tid);
            fs_map_forget_local_root(l->ino->c->map, l->bc[i].tid);
            l->no_file[i] = false;
        }
}

enum verdict { V_DONE, V_HOLE, V_DECODE, V_MORE, V_FAIL };

/* Decide from what has been read.  *out_lost: data chunks to rebuild;
 * *out_inputs: chunks to decode from. */
static enum verdict load_judge(struct load *l, uint32_t *out_lost, uint32_t *out_inputs)
{
    fs_inode *ino = l->ino;
    uint32_t k = ino->k, m = ino->m, n = k + m;
    uint64_t gmax = 0;
    bool any_ok = false, all_requested = true;
    uint32_t absent = 0, good = 0, lost = 0, inputs = 0;

    for (uint32_t i = 0; i < n; i++) {
        if (l->st[i] == CR_OK) {
            any_ok = true;
            if (l->gen[i] > gmax)
                gmax = l->gen[i];
        }
        if (l->st[i] == CR_ABSENT)
            absent++;
        if (i >= k || l->exp[i])
            all_requested = all_requested && l->requested[i];
    }
    if (!any_ok) {
        if (absent >= m + 1)
            return V_HOLE;
        return all_requested ? V_FAIL : V_MORE;
    }
    for (uint32_t i = 0; i < n; i++) {
        bool ok = l->st[i] == CR_OK && l->gen[i] == gmax;
        if (ok && i < k && l->len[i] < ino->chunk) {
            /* A short data chunk followed by a non-empty one is stale. */
            for (uint32_t j = i + 1; j < k; j++)
                if (l->st[j] == CR_OK && l->gen[j] == gmax && l->len[j] > 0)
                    ok = false;
        }
        if (i < k && !l->exp[i])
            ok = true; /* past the end of the file: zeros */
        if (ok) {
            good |= 1u << i;
            inputs |= 1u << i;
        } else if (i < k) {
            lost |= 1u << i;
        }
    }
    *out_lost = lost;
    *out_inputs = inputs;
    if (!lost)
        return V_DONE;
    if ((uint32_t)__builtin_popcount(good) >= k && (good >> k))
        return V_DECODE;
    return all_requested ? V_FAIL : V_MORE;
}

void fs_chunk_ptrs(uint8_t *base, uint32_t k, uint32_t chunk, uint8_t **bufs)
{
    for (uint32_t i = 0; i < k; i++)
        bufs[i] = base + (size_t)i * chunk;
}

int fs_stripe_load(fs_inode *ino, uint64_t stripe, uint64_t size, uint8_t *const *bufs)
{
    fs_client *c = ino->c;
    uint32_t k = ino->k, m = ino->m, n = k + m, chunk = ino->chunk;
    struct load *l;
    struct fs_batch b;
    uint32_t lost = 0, inputs = 0, down = 0;
    enum verdict v;
    int rc = 0;

    l = ckpt_calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->ino = ino;
    l->stripe = stripe;
    l->bufs = bufs;
    for (uint32_t i = 0; i < k; i++)
        l->exp[i] = ckpt_layout_chunk_len(&ino->layout, size, stripe, i);

    /* Round 1: the data chunks; parity too when some target is known down. */
    fs_batch_init(&b);
    for (uint32_t i = 0; i < k; i++) {
        if (!l->exp[i])
            continue;
        load_issue(l, &b, i, false);
        if (l->st[i] == CR_ERR)
            down++;
    }
    if (down && m) {
        /* As many parity chunks as data chunks are missing, not all m: a
         * degraded stripe then moves k chunks, like a healthy one.  One
         * that fails as well sends us to round 2 for the rest. */
        l->pbuf = ckpt_net_buf_alloc(c->net, (size_t)m * chunk);
        uint32_t want = down, issued = 0;
        if (l->pbuf)
            for (uint32_t i = k; i < n && issued < want; i++) {
                load_issue(l, &b, i, false);
                if (l->st[i] != CR_ERR)
                    issued++;
            }
    }
    load_round(l, &b);
    v = load_judge(l, &lost, &inputs);

    if (v == V_MORE) {
        /* Round 2: everything not read yet. */
        if (!l->pbuf && m)
            l->pbuf = ckpt_net_buf_alloc(c->net, (size_t)m * chunk);
        if (!l->pbuf && m) {
            rc = -ENOMEM;
            goto out;
        }
        fs_batch_init(&b);
        for (uint32_t i = 0; i < n; i++)
            if (!l->requested[i] && (i >= k || l->exp[i]))
                load_issue(l, &b, i, false);
        load_round(l, &b);
        v = load_judge(l, &lost, &inputs);
        if (v == V_MORE)
            v = V_FAIL;
    }
    if (v == V_FAIL) {
        /* Round 3: the map may be wrong for a while (ckpt-meta restarted,
         * nodes not heartbeating yet): try the targets it made us skip. */
        bool any = false;
        fs_batch_init(&b);
        for (uint32_t i = 0; i < n; i++) {
            if (!l->skipped[i])
                continue;
            if (i >= k && !l->pbuf)
                continue;
            l->skipped[i] = false;
            l->requested[i] = false;
            l->st[i] = CR_NONE;
            load_issue(l, &b, i, true);
            any = true;
        }
        if (any) {
            load_round(l, &b);
            v = load_judge(l, &lost, &inputs);
            if (v == V_MORE)
                v = V_FAIL;
        } else {
            fs_batch_wait(&b);
        }
    }

    switch (v) {
    case V_HOLE:
        for (uint32_t i = 0; i < k; i++)
            memset(bufs[i], 0, chunk);
        break;
    case V_DONE:
        for (uint32_t i = 0; i < k; i++) {
            uint32_t have = l->st[i] == CR_OK ? l->len[i] : 0;
            memset(bufs[i] + have, 0, chunk - have);
        }
        break;
    case V_DECODE: {
        uint8_t *ptrs[FS_MAX_CHUNKS];
        uint32_t L = 0;
        for (uint32_t i = k; i < n; i++)
            if ((inputs >> i) & 1 && l->len[i] > L)
                L = l->len[i];
        for (uint32_t i = 0; i < n; i++) {
            ptrs[i] = NULL;
            if ((inputs >> i) & 1) {
                uint32_t have = l->st[i] == CR_OK ? l->len[i] : 0;
                if (i < k && !l->exp[i])
                    have = 0;
                if (have < L)
                    memset(load_ptr(l, i) + have, 0, L - have);
                ptrs[i] = load_ptr(l, i);
            } else if ((lost >> i) & 1) {
                ptrs[i] = load_ptr(l, i);
            }
        }
        rc = ckpt_ec_decode(ino->ec, L, ptrs, lost);
        if (rc < 0)
            break;
        atomic_fetch_add(&c->st.stripes_decoded, 1);
        for (uint32_t i = 0; i < k; i++) {
            uint32_t have = L;
            if (l->st[i] == CR_OK && l->exp[i] && ((inputs >> i) & 1) && l->len[i] > L)
                have = l->len[i];
            memset(bufs[i] + have, 0, chunk - have);
        }
        break;
    }
    default:
        rc = CKPT_E_UNRECOV;
        break;
    }
out:
    if (rc < 0) {
        char why[160];
        int o = 0;
        for (uint32_t i = 0; i < n && o < (int)sizeof(why) - 12; i++)
            o += snprintf(why + o, sizeof(why) - o, "%s%c", i ? " " : "",
                          "-OAE"[l->st[i]]);
        CKPT_LOG_ERR("inode %llu stripe %llu: unreadable (" CKPT_RC_FMT "), chunks [%s] "
                     "(O ok, A absent, E error, - not read)", (unsigned long long)ino->ino,
                     (unsigned long long)stripe, CKPT_RC_ARGS(rc), why);
    } else {
        atomic_fetch_add(&c->st.stripes_loaded, 1);
    }
    ckpt_net_buf_free(c->net, l->pbuf, (size_t)m * chunk);
    ckpt_free(l);
    return rc < 0 ? -EIO : 0;
}

/* ---- read cache ---------------------------------------------------------------- */

static void rc_unlink_locked(fs_inode *ino, struct fs_rc *rc)
{
    if (rc->prev)
        rc->prev->next = rc->next;
    else
        ino->rc_head = rc->next;
    if (rc->next)
        rc->next->prev = rc->prev;
    rc->next = rc->prev = NULL;
    ino->nrc--;
}

static void rc_link_head_locked(fs_inode *ino, struct fs_rc *rc)
{
    rc->prev = NULL;
    rc->next = ino->rc_head;
    if (ino->rc_head)
        ino->rc_head->prev = rc;
    ino->rc_head = rc;
    ino->nrc++;
}

/* Unlink; free now (onto *out_free) or at the last unpin. */
static void rc_kill_locked(fs_inode *ino, struct fs_rc *rc, struct fs_rc **out_free)
{
    rc_unlink_locked(ino, rc);
    if (rc->pins == 0) {
        rc->next = *out_free;
        *out_free = rc;
    } else {
        rc->dead = true;
    }
}

void fs_rc_drop_locked(fs_inode *ino, uint64_t stripe, bool all, struct fs_rc **out_free)
{
    struct fs_rc *rc = ino->rc_head;
    while (rc) {
        struct fs_rc *next = rc->next;
        if (all || rc->stripe == stripe)
            rc_kill_locked(ino, rc, out_free);
        rc = next;
    }
}

void fs_rc_free_list(fs_client *c, struct fs_rc *list)
{
    while (list) {
        struct fs_rc *next = list->next;
        size_t bytes = (size_t)list->ino->k * list->ino->chunk;
        fs_client_buf_put(c, list->data, bytes);
        pthread_mutex_lock(&c->lock);
        c->rc_bytes -= bytes;
        pthread_mutex_unlock(&c->lock);
        ckpt_free(list);
        list = next;
    }
}

static void rc_unpin_locked(fs_inode *ino, struct fs_rc *rc, struct fs_rc **out_free)
{
    (void)ino;
    if (--rc->pins == 0 && rc->dead) {
        rc->next = *out_free;
        *out_free = rc;
    }
}

static uint32_t ra_stripes(const fs_inode *ino)
{
    uint64_t ra = ino->c->opts.readahead_bytes;
    if (!ra)
        return 0;
    uint64_t n = (ra + ino->sbytes - 1) / ino->sbytes;
    return (uint32_t)fs_min_u64(n, 256);
}

static struct fs_rc *rc_find_locked(fs_inode *ino, uint64_t stripe)
{
    for (struct fs_rc *rc = ino->rc_head; rc; rc = rc->next)
        if (rc->stripe == stripe)
            return rc;
    return NULL;
}

/*
 * A new LOADING entry for stripe, pinned once for its loader, linked at
 * the head.  prefetch: only within the memory budget and if an old entry
 * can make room.  NULL when not possible (or out of memory).
 */
static struct fs_rc *rc_new_locked(fs_inode *ino, uint64_t stripe, uint64_t size,
                                   bool prefetch, struct fs_rc **out_free)
{
    fs_client *c = ino->c;
    size_t bytes = (size_t)ino->k * ino->chunk;
    uint32_t cap = ra_stripes(ino) + 2;

    /* Make room: evict what nobody uses and a sequential reader will not
     * want: stripes behind its position, or far ahead of its window.
     * Prefetched stripes it has yet to reach stay (evicting those, as a
     * plain LRU would, makes read-ahead fetch everything twice).  A
     * prefetch also drops the stripes the reader has left behind (all but
     * the one before its position) even below cap: they count against
     * c->rc_limit, shared by every reader of the mount, and four readers
     * keeping a full window of stale stripes each had read-ahead refused
     * for 88% of a cold restore's stripes (every read() then loaded its
     * stripe itself, chunk after chunk). */
    uint64_t pos = ino->ra_next / ino->sbytes;
    if (ino->nrc >= cap || prefetch) {
        struct fs_rc *t = ino->rc_head;
        while (t && t->next)
            t = t->next;
        while (t) {
            struct fs_rc *prev = t->prev;
            bool wanted = t->stripe >= pos && t->stripe <= pos + cap;
            bool behind = t->stripe + 1 < pos;
            if (!t->pins && t->state != FS_RC_LOADING &&
                ((ino->nrc >= cap && !wanted) || (prefetch && behind)))
                rc_kill_locked(ino, t, out_free);
            t = prev;
        }
        if (prefetch && ino->nrc >= cap)
            return NULL;
    }
    pthread_mutex_lock(&c->lock);
    bool ok = !prefetch || c->rc_bytes + bytes <= c->rc_limit;
    if (ok)
        c->rc_bytes += bytes;
    pthread_mutex_unlock(&c->lock);
    if (!ok)
        return NULL;
    struct fs_rc *rc = ckpt_calloc(1, sizeof(*rc));
    /* From the recycled stripe buffers: right after a checkpoint (a
     * verify, a restart on the same node) they are already faulted in;
     * zeroing fresh pages was 9% of a cold read's samples. */
    if (rc)
        rc->data = fs_client_buf_get(c, bytes);
    if (!rc || !rc->data) {
        ckpt_free(rc);
        pthread_mutex_lock(&c->lock);
        c->rc_bytes -= bytes;
        pthread_mutex_unlock(&c->lock);
        return NULL;
    }
    rc->ino = ino;
    rc->stripe = stripe;
    rc->state = FS_RC_LOADING;
    rc->pins = 1;
    rc->size = size;
    rc_link_head_locked(ino, rc);
    return rc;
}

static void rc_load_job(struct fs_job *job)
{
    struct fs_rc *rc = container_of(job, struct fs_rc, job);
    fs_inode *ino = rc->ino;
    struct fs_rc *dead = NULL;

    uint8_t *bufs[FS_MAX_CHUNKS];
    fs_chunk_ptrs(rc->data, ino->k, ino->chunk, bufs);
    int err = fs_stripe_load(ino, rc->stripe, rc->size, bufs);
    pthread_mutex_lock(&ino->lock);
    rc->err = err;
    rc->state = err ? FS_RC_FAILED : FS_RC_READY;
    pthread_cond_broadcast(&ino->cond);
    if (err && !rc->dead)
        rc_kill_locked(ino, rc, &dead); /* failed prefetch: a reader retries */
    rc_unpin_locked(ino, rc, &dead);
    pthread_mutex_unlock(&ino->lock);
    fs_rc_free_list(ino->c, dead);
    fs_inode_put(ino);
}

/* Queue loads of the stripes after `last` a sequential reader will want. */
static void ra_kick_locked(fs_inode *ino, uint64_t last, uint64_t size,
                           struct fs_rc **out_free)
{
    uint32_t r = ra_stripes(ino);
    uint64_t nstripes = (size + ino->sbytes - 1) / ino->sbytes;

    for (uint64_t s = last + 1; s <= last + r && s < nstripes; s++) {
        if (rc_find_locked(ino, s) || fs_sv_find_locked(ino, s))
            continue;
        struct fs_rc *rc = rc_new_locked(ino, s, size, true, out_free);
        if (!rc)
            break;
        rc->job.fn = rc_load_job;
        fs_inode_ref(ino);
        fs_wq_push(ino->c->rq, &rc->job);
    }
}

/* ---- read() ---------------------------------------------------------------------- */

static int res_add(struct fs_rres *res, void *p, size_t n)
{
    if (res->niov == res->capiov) {
        int cap = res->capiov ? res->capiov * 2 : 8;
        struct iovec *v = ckpt_realloc(res->iov, (size_t)cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        res->iov = v;
        res->capiov = cap;
    }
    res->iov[res->niov].iov_base = p;
    res->iov[res->niov].iov_len = n;
    res->niov++;
    res->total += n;
    return 0;
}

static int res_zeros(fs_client *c, struct fs_rres *res, size_t n)
{
    while (n) {
        size_t z = n < FS_ZERO_LEN ? n : FS_ZERO_LEN;
        int rc = res_add(res, c->zeros, z);
        if (rc < 0)
            return rc;
        n -= z;
    }
    return 0;
}

static int res_pin_sv(struct fs_rres *res, struct fs_sv *sv, int cap)
{
    if (!res->svs) {
        res->svs = ckpt_calloc((size_t)cap, sizeof(*res->svs));
        if (!res->svs)
            return -ENOMEM;
    }
    res->svs[res->nsvs++] = sv;
    sv->pins++;
    return 0;
}

static int res_pin_rc(struct fs_rres *res, struct fs_rc *rc, int cap)
{
    if (!res->rcs) {
        res->rcs = ckpt_calloc((size_t)cap, sizeof(*res->rcs));
        if (!res->rcs)
            return -ENOMEM;
    }
    res->rcs[res->nrcs++] = rc;
    return 0;
}

int fs_read(fs_inode *ino, uint64_t off, size_t len, struct fs_rres *res)
{
    fs_client *c = ino->c;
    uint64_t S = ino->sbytes, size, pos, end, last = 0;
    struct fs_rc *dead = NULL;
    bool seq;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&ino->lock);
    size = ino->size;
    if (off >= size || !len) {
        pthread_mutex_unlock(&ino->lock);
        return 0;
    }
    end = off + fs_min_u64(len, size - off);
    /* Sequential, give or take a stripe: the kernel's parallel read-ahead
     * requests may arrive out of order. */
    seq = off == 0 || (off + 2 * S >= ino->ra_next && off <= ino->ra_next + 2 * S);
    ino->ra_streak = seq ? ino->ra_streak + 1 : 0;
    ino->ra_next = seq ? fs_max_u64(ino->ra_next, end) : end;
    int cap = (int)((end - off) / S + 2);

    for (pos = off; pos < end;) {
        uint64_t stripe = pos / S, so = pos % S;
        uint64_t n = fs_min_u64(end - pos, S - so);
        last = stripe;
        struct fs_sv *sv = fs_sv_find_locked(ino, stripe);
        if (sv) {
            /* This mount's own unflushed (or in flight) bytes. */
            uint64_t ext = sv->state == FS_SV_OPEN ? sv->resv : sv->valid;
            rc = res_pin_sv(res, sv, cap);
            if (rc < 0)
                break;
            uint64_t have = so < ext ? fs_min_u64(n, ext - so) : 0;
            for (uint64_t o = so; rc == 0 && o < so + have;) {
                uint64_t in = o % ino->chunk;
                uint64_t piece = fs_min_u64(ino->chunk - in, so + have - o);
                rc = res_add(res, sv->cd[o / ino->chunk] + in, piece);
                o += piece;
            }
            if (rc == 0 && n > have)
                rc = res_zeros(c, res, n - have);
            if (rc < 0)
                break;
            pos += n;
            continue;
        }
        struct fs_rc *e = rc_find_locked(ino, stripe);
        if (e && e->state == FS_RC_FAILED) {
            rc_kill_locked(ino, e, &dead);
            e = NULL;
        }
        if (!e) {
            e = rc_new_locked(ino, stripe, size, false, &dead);
            if (!e) {
                rc = -ENOMEM;
                break;
            }
            pthread_mutex_unlock(&ino->lock);
            atomic_fetch_add(&c->st.demand_loads, 1);
            uint8_t *bufs[FS_MAX_CHUNKS];
            fs_chunk_ptrs(e->data, ino->k, ino->chunk, bufs);
            int err = fs_stripe_load(ino, stripe, size, bufs);
            pthread_mutex_lock(&ino->lock);
            e->err = err;
            e->state = err ? FS_RC_FAILED : FS_RC_READY;
            pthread_cond_broadcast(&ino->cond);
        } else {
            if (e->state == FS_RC_READY)
                atomic_fetch_add(&c->st.ra_hits, 1);
            e->pins++;
            if (e->state == FS_RC_LOADING) {
                uint64_t t0 = ckpt_now_ns();
                while (e->state == FS_RC_LOADING)
                    pthread_cond_wait(&ino->cond, &ino->lock);
                atomic_fetch_add(&c->st.ra_waits, 1);
                atomic_fetch_add(&c->st.ra_wait_us, (ckpt_now_ns() - t0) / 1000);
            }
        }
        if (e->state == FS_RC_FAILED) {
            rc = e->err ? e->err : -EIO;
            if (!e->dead)
                rc_kill_locked(ino, e, &dead);
            rc_unpin_locked(ino, e, &dead);
            break;
        }
        if (e != ino->rc_head && !e->dead) {
            rc_unlink_locked(ino, e);
            rc_link_head_locked(ino, e);
        }
        rc = res_pin_rc(res, e, cap);
        if (rc < 0) {
            rc_unpin_locked(ino, e, &dead);
            break;
        }
        rc = res_add(res, e->data + so, n);
        if (rc < 0)
            break;
        pos += n;
    }
    if (rc == 0 && seq && ino->ra_streak >= 2)
        ra_kick_locked(ino, last, size, &dead);
    pthread_mutex_unlock(&ino->lock);
    fs_rc_free_list(c, dead);
    if (rc < 0) {
        fs_rres_done(ino, res);
        return rc;
    }
    atomic_fetch_add(&c->st.bytes_read, res->total);
    return 0;
}

void fs_rres_done(fs_inode *ino, struct fs_rres *res)
{
    struct fs_rc *dead = NULL;
    struct fs_sv *svfree[64];
    int nfree = 0;

    pthread_mutex_lock(&ino->lock);
    for (int i = 0; i < res->nrcs; i++)
        rc_unpin_locked(ino, res->rcs[i], &dead);
    for (int i = 0; i < res->nsvs; i++) {
        struct fs_sv *f = NULL;
        fs_sv_unpin_locked(ino, res->svs[i], &f);
        if (f) {
            if (nfree < 64) {
                svfree[nfree++] = f;
            } else {
                /* Not expected (a read spans few stripes); stay correct. */
                pthread_mutex_unlock(&ino->lock);
                fs_sv_free(f);
                fs_inode_put(ino);
                pthread_mutex_lock(&ino->lock);
            }
        }
    }
    pthread_mutex_unlock(&ino->lock);
    for (int i = 0; i < nfree; i++) {
        fs_sv_free(svfree[i]);
        fs_inode_put(ino);
    }
    fs_rc_free_list(ino->c, dead);
    ckpt_free(res->iov);
    ckpt_free(res->svs);
    ckpt_free(res->rcs);
    memset(res, 0, sizeof(*res));
}

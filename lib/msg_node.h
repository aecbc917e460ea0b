/*
 * msg_node.h - messages of the ckpt-node chunk service (opcodes 0x03xx).
 *
 * Clients (the FUSE mount, rebuild workers) send these to the node that
 * serves a target.  Chunk bytes always travel as bulk data beside the body
 * (proto.h), never inside it.  Each request/response pair has a struct and
 * a hand-written encode/decode; decoders check every field against the
 * bounds below and return CKPT_E_PROTO for anything else.
 *
 * Statuses a node answers with: 0; -ENOENT (no such chunk); CKPT_E_CRC
 * (stored bytes fail their crc: decode from parity); CKPT_E_TORN
 * (incomplete chunk); CKPT_E_STALE (a write older than the stored chunk, or
 * a read asking for a newer generation than stored); -ENOSPC (target
 * reserve reached); -ENODEV (no such target on this node); -EIO.
 *
 * Encoders return w->err (0 or -ENOMEM/-EMSGSIZE); decoders return 0 or
 * CKPT_E_PROTO and fill *out.  Decoded structs hold no pointers into the
 * body unless a field says "borrowed", and need no freeing unless a
 * _free() function exists for them.
 */
#ifndef CKPT_MSG_NODE_H
#define CKPT_MSG_NODE_H

#include <stdint.h>

#include "proto.h"

#define CKPT_TARGET_ALL 0xffffffffu     /* every target of the node */
#define CKPT_NODE_MAX_TARGETS 64
#define CKPT_CHUNK_MAX_INDEX 20         /* k+m <= 16+4 */
#define CKPT_CHUNK_MAX_LEN (64u << 20)
#define CKPT_SYNC_MAX_INOS 256
#define CKPT_CHUNK_LIST_MAX 4096

/* CHUNK_WRITE flags */
#define CKPT_CHUNK_F_SYNC 0x1u          /* durable before the reply */
#define CKPT_CHUNK_F_KNOWN CKPT_CHUNK_F_SYNC

struct ckpt_chunk_key {
    uint64_t ino;
    uint64_t stripe;
    uint16_t index;   /* 0..k-1 data, k..k+m-1 parity; < CKPT_CHUNK_MAX_INDEX */
};

/* CHUNK_WRITE: store len bytes (the bulk) as chunk key, generation gen.
 * Response: empty body. */
struct ckpt_msg_chunk_write {
    uint32_t target;
    struct ckpt_chunk_key key;
    uint64_t gen;
    uint32_t len;     /* must equal the bulk length, <= CKPT_CHUNK_MAX_LEN */
    uint32_t crc;     /* crc32c of the bulk; the node verifies it */
    uint32_t flags;   /* CKPT_CHUNK_F_* */
};

/* CHUNK_READ: read [offset, offset+len) of a chunk (len 0: to its end).
 * The node verifies the whole chunk's crc before answering. */
struct ckpt_msg_chunk_read {
    uint32_t target;
    struct ckpt_chunk_key key;
    uint32_t offset;
    uint32_t len;
    uint64_t min_gen; /* CKPT_E_STALE if the stored generation is older */
};

/* CHUNK_READ response; the bulk holds the bytes read (possibly fewer than
 * asked when the chunk is shorter: chunks are logically zero-padded by the
 * reader). */
struct ckpt_msg_chunk_read_resp {
    uint64_t gen;
    uint32_t chunk_len; /* the chunk's whole logical length */
    uint32_t crc;       /* crc32c of the returned bulk */
};

/*
 * CHUNK_LOCATE: where a chunk's bytes are in the node's filesystem, for a
 * client on the same host to read them itself (a short-circuit read: no
 * copy through the node and the sockets).  The node answers only a client
 * whose host id (the kernel's boot_id) equals its own, else -EXDEV; the
 * client then uses CHUNK_READ.  The node has checked the chunk's header,
 * not its data: the client checks the bytes against crc and, on any doubt
 * (open fails, the file is not dev/ino, short read, crc mismatch), asks
 * CHUNK_READ, where the node verifies and reports bit rot itself.  The
 * path ends in the chunk's name (lib/chunkfile.h), so the client also
 * learns the target's chunks/ directory and reads further chunks of it
 * without asking, checking their headers itself.
 */
#define CKPT_HOST_ID_LEN 16 /* == CKPT_NET_HOST_ID_LEN (net.h) */
#define CKPT_LOCATE_MAX_PATH 1024
struct ckpt_msg_chunk_locate {
    uint32_t target;
    struct ckpt_chunk_key key;
    uint64_t min_gen;                  /* CKPT_E_STALE if stored is older */
    uint8_t host[CKPT_HOST_ID_LEN];    /* the client's host id */
};
struct ckpt_msg_chunk_locate_resp {
    uint64_t gen;
    uint32_t chunk_len;                /* logical length == bytes at data_off */
    uint32_t crc;                      /* crc32c of those bytes (header's) */
    uint64_t data_off;                 /* where they start in the file */
    uint64_t dev, ino;                 /* st_dev/st_ino of the file */
    char path[CKPT_LOCATE_MAX_PATH];   /* absolute, NUL-terminated */
};

/* CHUNK_DELETE: delete chunks of ino on target with stripe >= from_stripe
 * and (when below_gen != 0) generation < below_gen.  Idempotent. */
struct ckpt_msg_chunk_delete {
    uint32_t target;
    uint64_t ino;
    uint64_t from_stripe;
    uint64_t below_gen;
};
struct ckpt_msg_chunk_delete_resp {
    uint32_t deleted;  /* chunks removed */
};

/* CHUNK_SYNC: make every chunk of these inodes written so far durable on
 * target (CKPT_TARGET_ALL: every target).  n == 0: everything written. */
struct ckpt_msg_chunk_sync {
    uint32_t target;
    uint32_t n;
    uint64_t inos[CKPT_SYNC_MAX_INOS];
};

/* TARGET_STATS: request has an empty body. */
struct ckpt_target_stat {
    uint32_t id;
    uint32_t flags;     /* reserved, 0 */
    uint64_t capacity;  /* bytes */
    uint64_t free;      /* bytes available above the reserve */
    uint64_t used;      /* bytes held by chunks */
    uint64_t chunks;
};
struct ckpt_msg_target_stats_resp {
    uint32_t n;
    struct ckpt_target_stat t[CKPT_NODE_MAX_TARGETS];
};

/* CHUNK_LIST: up to max chunks of target after the given key, in key
 * order (all zero: from the start). */
struct ckpt_msg_chunk_list {
    uint32_t target;
    struct ckpt_chunk_key after;
    uint8_t has_after;  /* 0: start from the first chunk */
    uint32_t max;       /* 1..CKPT_CHUNK_LIST_MAX */
};
struct ckpt_chunk_entry {
    struct ckpt_chunk_key key;
    uint64_t gen;
    uint32_t len;
};
struct ckpt_msg_chunk_list_resp {
    uint32_t n;
    uint8_t more;                     /* 1: call again after the last key */
    struct ckpt_chunk_entry *entries; /* n entries; decode allocates, free
                                         with ckpt_msg_chunk_list_resp_free */
};

int ckpt_msg_chunk_write_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_write *m);
int ckpt_msg_chunk_write_decode(const void *body, size_t len, struct ckpt_msg_chunk_write *out);
int ckpt_msg_chunk_read_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_read *m);
int ckpt_msg_chunk_read_decode(const void *body, size_t len, struct ckpt_msg_chunk_read *out);
int ckpt_msg_chunk_read_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_read_resp *m);
int ckpt_msg_chunk_read_resp_decode(const void *body, size_t len,
                                    struct ckpt_msg_chunk_read_resp *out);
int ckpt_msg_chunk_locate_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_locate *m);
int ckpt_msg_chunk_locate_decode(const void *body, size_t len, struct ckpt_msg_chunk_locate *out);
int ckpt_msg_chunk_locate_resp_encode(struct ckpt_wbuf *w,
                                      const struct ckpt_msg_chunk_locate_resp *m);
int ckpt_msg_chunk_locate_resp_decode(const void *body, size_t len,
                                      struct ckpt_msg_chunk_locate_resp *out);
int ckpt_msg_chunk_delete_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_delete *m);
int ckpt_msg_chunk_delete_decode(const void *body, size_t len, struct ckpt_msg_chunk_delete *out);
int ckpt_msg_chunk_delete_resp_encode(struct ckpt_wbuf *w,
                                      const struct ckpt_msg_chunk_delete_resp *m);
int ckpt_msg_chunk_delete_resp_decode(const void *body, size_t len,
                                      struct ckpt_msg_chunk_delete_resp *out);
int ckpt_msg_chunk_sync_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_sync *m);
int ckpt_msg_chunk_sync_decode(const void *body, size_t len, struct ckpt_msg_chunk_sync *out);
int ckpt_msg_target_stats_resp_encode(struct ckpt_wbuf *w,
                                      const struct ckpt_msg_target_stats_resp *m);
int ckpt_msg_target_stats_resp_decode(const void *body, size_t len,
                                      struct ckpt_msg_target_stats_resp *out);
int ckpt_msg_chunk_list_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_list *m);
int ckpt_msg_chunk_list_decode(const void *body, size_t len, struct ckpt_msg_chunk_list *out);
int ckpt_msg_chunk_list_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_chunk_list_resp *m);
/** On success out->entries is allocated (NULL when n == 0). */
int ckpt_msg_chunk_list_resp_decode(const void *body, size_t len,
                                    struct ckpt_msg_chunk_list_resp *out);
void ckpt_msg_chunk_list_resp_free(struct ckpt_msg_chunk_list_resp *m);

#endif

/*
 * msg_ckpt.h - checkpoint messages of ckpt-meta (opcodes 0x04xx).
 *
 * A checkpoint is a directory (e.g. /ckpt/<job>/step-001000) registered
 * with ckpt-meta.  The `ckpt` tool and the FUSE client send these:
 *
 *   CKPT_COMMIT {ino, timeout_ms, flags} -> ckpt_info
 *       Long-running: ckpt-meta waits (bounded by timeout_ms) until no
 *       session has a file under ino open for writing, has every node
 *       holding those files sync them (CHUNK_SYNC), records the manifest,
 *       checks health and marks the checkpoint COMMITTED and every inode
 *       under it immutable, in one transaction.  Errors: -ENOTDIR,
 *       -ENOENT, -ETIMEDOUT (writers still open), -EIO (a node did not
 *       sync), CKPT_E_CLUSTER (not fully protected and not
 *       CKPT_COMMIT_F_ALLOW_DEGRADED: see the health fields of a later
 *       CKPT_INFO), CKPT_E_UNRECOV (LOST), -EBUSY (a commit of it is already
 *       running).  Committing a COMMITTED checkpoint again answers its info.
 *   CKPT_LIST {ino of a job directory} -> list of ckpt_info, one per
 *       subdirectory (WRITING when never committed), newest first.
 *   CKPT_INFO {ino} -> ckpt_info of one checkpoint directory.
 *   CKPT_MANIFEST {ino, cookie, max} -> manifest entries after cookie
 *       (-ENOENT for a checkpoint that is not COMMITTED).
 *
 * Codec conventions as in msg_meta.h: encoders return w->err; decoders
 * return 0, CKPT_E_PROTO or -ENOMEM (where they allocate).
 */
#ifndef CKPT_MSG_CKPT_H
#define CKPT_MSG_CKPT_H

#include <stdint.h>

#include "proto.h"

#define CKPT_CKPT_LIST_MAX 4096      /* checkpoints per LIST reply */
#define CKPT_MANIFEST_MAX 1024       /* entries per MANIFEST reply */
#define CKPT_COMMIT_F_ALLOW_DEGRADED 0x1u
#define CKPT_COMMIT_F_KNOWN 0x1u

enum ckpt_ckpt_state {
    CKPT_CKPT_WRITING = 0,
    CKPT_CKPT_COMMITTED = 1,
    CKPT_CKPT_STATE_COUNT
};

enum ckpt_ckpt_health {
    CKPT_HEALTH_PROTECTED = 0,   /* every stripe has k+m chunks */
    CKPT_HEALTH_DEGRADED = 1,    /* some stripe misses 1..m chunks */
    CKPT_HEALTH_LOST = 2,        /* some stripe misses more than m */
    CKPT_HEALTH_COUNT
};

/** @return "WRITING"/"COMMITTED", or "?" */
const char *ckpt_ckpt_state_name(uint32_t s);
/** @return "PROTECTED"/"DEGRADED"/"LOST", or "?" */
const char *ckpt_ckpt_health_name(uint32_t h);

struct ckpt_ckpt_info {
    uint64_t ino;
    char name[CKPT_PROTO_MAX_NAME + 1];
    uint32_t state;          /* enum ckpt_ckpt_state */
    uint32_t health;         /* enum ckpt_ckpt_health */
    uint64_t files;          /* regular files under it */
    uint64_t bytes;          /* their total size */
    int64_t written_at;      /* newest mtime under it (seconds) */
    int64_t committed_at;    /* 0 while WRITING */
    uint32_t degraded_stripes; /* stripes missing 1..m chunks */
    uint32_t lost_stripes;     /* stripes missing more than m */
};

/* CKPT_COMMIT request. */
struct ckpt_msg_ckpt_commit {
    uint64_t ino;
    uint32_t timeout_ms;     /* 0: 60000 */
    uint32_t flags;          /* CKPT_COMMIT_F_* */
};

/* CKPT_LIST reply. */
struct ckpt_msg_ckpt_list_resp {
    uint32_t n;
    struct ckpt_ckpt_info *v;  /* decode allocates; _free() */
};

/* CKPT_MANIFEST request and reply. */
struct ckpt_msg_manifest {
    uint64_t ino;
    uint64_t cookie;         /* 0: from the start */
    uint32_t max;            /* 1..CKPT_MANIFEST_MAX */
};
struct ckpt_manifest_ent {
    uint64_t seq;            /* its cookie: resume after it */
    uint64_t ino;
    uint64_t size;
    uint32_t checksum;       /* crc32c of the whole file */
    uint8_t has_checksum;
    char path[CKPT_PROTO_MAX_PATH + 1]; /* relative to the checkpoint */
};
struct ckpt_msg_manifest_resp {
    uint8_t eof;
    uint32_t n;
    struct ckpt_manifest_ent *v; /* decode allocates; _free() */
};

void ckpt_wr_ckpt_info(struct ckpt_wbuf *w, const struct ckpt_ckpt_info *m);
void ckpt_rd_ckpt_info(struct ckpt_rbuf *r, struct ckpt_ckpt_info *out);
void ckpt_wr_manifest_ent(struct ckpt_wbuf *w, const struct ckpt_manifest_ent *e);

int ckpt_msg_ckpt_commit_encode(struct ckpt_wbuf *w, const struct ckpt_msg_ckpt_commit *m);
int ckpt_msg_ckpt_commit_decode(const void *body, size_t len, struct ckpt_msg_ckpt_commit *out);
int ckpt_msg_ckpt_info_encode(struct ckpt_wbuf *w, const struct ckpt_ckpt_info *m);
int ckpt_msg_ckpt_info_decode(const void *body, size_t len, struct ckpt_ckpt_info *out);
int ckpt_msg_ckpt_list_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_ckpt_list_resp *m);
int ckpt_msg_ckpt_list_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_ckpt_list_resp *out);
/** NULL-safe; frees v and zeroes *m. */
void ckpt_msg_ckpt_list_resp_free(struct ckpt_msg_ckpt_list_resp *m);
int ckpt_msg_manifest_encode(struct ckpt_wbuf *w, const struct ckpt_msg_manifest *m);
int ckpt_msg_manifest_decode(const void *body, size_t len, struct ckpt_msg_manifest *out);
int ckpt_msg_manifest_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_manifest_resp *m);
int ckpt_msg_manifest_resp_decode(const void *body, size_t len,
                                  struct ckpt_msg_manifest_resp *out);
/** NULL-safe; frees v and zeroes *m. */
void ckpt_msg_manifest_resp_free(struct ckpt_msg_manifest_resp *m);

#endif

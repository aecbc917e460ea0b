/*
 * msg_task.h - rebuild/repair task messages (opcodes 0x05xx, CKPT_OPS_ADMIN).
 *
 * ckpt-meta plans work that restores redundancy (meta/meta_rebuild.c) and
 * keeps it in LMDB; the storage nodes pull it (pull model: a node asks,
 * meta never pushes), execute it (daemon/node_task.c) and report:
 *
 *   TASK_FETCH      node -> meta  "give me up to max tasks for my targets";
 *                                 meta answers each task with the file's
 *                                 current layout, data generation and size
 *                                 plus the address of every slot's node
 *                                 (empty host: not readable now)
 *   TASK_DONE       node -> meta  a task finished (status 0) or failed;
 *                                 on success meta swaps the layout
 *   REBUILD_STATUS  any  -> meta  progress counters (ckpt-admin status)
 *
 * A task rebuilds, for stripes [stripe_lo, stripe_hi) of one file, the
 * chunks that slot `slot` of its layout (target lost_tid) should hold, onto
 * new_tid.  For CKPT_TASK_REBUILD new_tid is a replacement target and meta
 * swaps lost_tid -> new_tid in the layout when the task is done; for
 * CKPT_TASK_REPAIR new_tid == lost_tid (the target came back or held a bad
 * chunk) and nothing is swapped.  CKPT_TASK_MOVE (drain, rebalance) is a
 * REBUILD whose lost_tid is still readable: the node copies each chunk
 * from lost_tid's node (addr[slot] is filled) and decodes it from the
 * others only when that copy fails; meta swaps lost_tid -> new_tid when it
 * is done and queues the old chunks for deletion.  rate_bps caps the bytes
 * per second the fetching node spends on MOVE tasks (0: unlimited).  Tasks
 * are idempotent: the chunks are written with the generation the survivors
 * (or the source) carry.
 *
 * Codec conventions as in msg_node.h: encoders return the wbuf's sticky
 * error, decoders validate every count, enum and layout (ckpt_rd_layout)
 * and reject trailing bytes.
 */
#ifndef CKPT_MSG_TASK_H
#define CKPT_MSG_TASK_H

#include <stdint.h>

#include "layout.h"
#include "msg_cluster.h"
#include "proto.h"

#define CKPT_TASK_FETCH_MAX 64u  /* tasks in one TASK_FETCH reply */

enum ckpt_task_kind {
    CKPT_TASK_REBUILD = 0,  /* recreate a lost target's chunks elsewhere */
    CKPT_TASK_REPAIR = 1,   /* rewrite missing/bad chunks in place */
    CKPT_TASK_MOVE = 2,     /* copy a readable target's chunks elsewhere */
    CKPT_TASK_NKINDS
};

/** Where the node serving a layout slot listens ("" / 0: unreachable). */
struct ckpt_task_addr {
    char host[CKPT_HOST_MAX + 1];
    uint16_t port;
};

struct ckpt_task {
    uint32_t kind;          /* enum ckpt_task_kind */
    uint64_t ino;
    uint64_t data_gen;      /* the file's data generation when fetched */
    uint64_t size;          /* the file's size when fetched */
    uint32_t lost_tid;      /* the target whose chunks are recreated */
    uint32_t new_tid;       /* where they go (a target of the fetching node) */
    uint32_t slot;          /* position of lost_tid in layout.targets */
    uint64_t stripe_lo;     /* first stripe */
    uint64_t stripe_hi;     /* one past the last stripe (<= nstripes) */
    uint64_t rate_bps;      /* MOVE: this node's byte rate cap (0: none) */
    uint64_t attr_stamp;    /* fingerprint of the file's mtime/ctime when
                               fetched (echoed in TASK_DONE: a MOVE swaps
                               only if the file was not rewritten since) */
    struct ckpt_layout layout;  /* placed: width target ids */
    struct ckpt_task_addr addr[CKPT_LAYOUT_MAX_WIDTH]; /* per slot */
};

struct ckpt_msg_task_fetch {
    uint32_t node_id;
    uint32_t max;           /* 1..CKPT_TASK_FETCH_MAX */
};

struct ckpt_msg_task_fetch_resp {
    uint32_t n;
    struct ckpt_task *tasks; /* allocated by decode; ckpt_msg_task_fetch_resp_free */
};

struct ckpt_msg_task_done {
    uint32_t node_id;
    uint32_t kind;          /* enum ckpt_task_kind */
    uint64_t ino;
    uint32_t lost_tid;
    uint32_t new_tid;
    uint64_t data_gen;      /* as fetched */
    uint64_t size;          /* as fetched */
    uint64_t attr_stamp;    /* as fetched */
    uint64_t stripe_lo, stripe_hi;
    int32_t status;         /* 0 done; else why it failed */
    uint64_t chunks;        /* chunks written */
    uint64_t bytes;         /* chunk bytes written */
};

struct ckpt_msg_rebuild_status_resp {
    uint64_t tasks_pending;   /* planned, not done */
    uint64_t tasks_done;      /* since ckpt-meta started */
    uint64_t tasks_failed;    /* failed attempts (retried) */
    uint64_t chunks_done;
    uint64_t bytes_done;
    uint64_t rate_bps;        /* bytes per second over the last window */
    uint64_t eta_s;           /* 0 when unknown or idle */
    uint32_t lost_targets;    /* targets of OUT nodes still referenced */
    uint64_t degraded_stripes; /* recorded degraded stripes */
    /* data movement (drain, rebalance: CKPT_TASK_MOVE) */
    uint64_t moves_pending;   /* MOVE tasks planned, not done */
    uint64_t move_bytes_left; /* estimated chunk bytes they still move */
    uint64_t moves_done;      /* since ckpt-meta started */
    uint64_t move_bytes_done;
    uint64_t move_rate_bps;   /* over the last window */
    uint64_t move_eta_s;      /* 0 when unknown or idle */
    uint64_t max_rate_bps;    /* rebalance --max-rate in force (0: none) */
    uint32_t draining_nodes;
};

/** @return "rebuild", "repair", "move" or "?". */
const char *ckpt_task_kind_name(uint32_t kind);

int ckpt_msg_task_fetch_encode(struct ckpt_wbuf *w, const struct ckpt_msg_task_fetch *m);
int ckpt_msg_task_fetch_decode(const void *body, size_t len, struct ckpt_msg_task_fetch *out);
/** Encodes m->n tasks (at most CKPT_TASK_FETCH_MAX, else -EINVAL). */
int ckpt_msg_task_fetch_resp_encode(struct ckpt_wbuf *w,
                                    const struct ckpt_msg_task_fetch_resp *m);
/**
 * @brief Decode a TASK_FETCH reply.  Every task is checked: known kind,
 * valid placed layout, slot < width and layout.targets[slot] == lost_tid,
 * stripe_lo <= stripe_hi, ports and hosts within bounds.
 * @param[out] out  on success out->tasks is allocated (NULL when n == 0):
 *                  free with ckpt_msg_task_fetch_resp_free(); on error
 *                  nothing is allocated.
 * @return 0, CKPT_E_PROTO, -ENOMEM.
 */
int ckpt_msg_task_fetch_resp_decode(const void *body, size_t len,
                                    struct ckpt_msg_task_fetch_resp *out);
/** @brief Free the decoded tasks.  NULL is a no-op. */
void ckpt_msg_task_fetch_resp_free(struct ckpt_msg_task_fetch_resp *m);
int ckpt_msg_task_done_encode(struct ckpt_wbuf *w, const struct ckpt_msg_task_done *m);
int ckpt_msg_task_done_decode(const void *body, size_t len, struct ckpt_msg_task_done *out);
int ckpt_msg_rebuild_status_resp_encode(struct ckpt_wbuf *w,
                                        const struct ckpt_msg_rebuild_status_resp *m);
int ckpt_msg_rebuild_status_resp_decode(const void *body, size_t len,
                                        struct ckpt_msg_rebuild_status_resp *out);

#endif

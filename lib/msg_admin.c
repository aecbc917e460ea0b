/*
 * msg_admin.c - codecs of the operator messages (msg_admin.h).
 *
 * DESIGN
 *   Field by field, little endian, through proto.h's wbuf/rbuf: no state,
 *   thread-safe.  Only the REBALANCE reply decoder allocates (its target
 *   array, bounded by CKPT_REBALANCE_MAX_TARGETS and by the bytes left).
 */
#include "msg_admin.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

const char *ckpt_admin_node_op_name(uint32_t op)
{
    switch (op) {
    case CKPT_ADMIN_NODE_OUT:
        return "out";
    case CKPT_ADMIN_NODE_IN:
        return "in";
    case CKPT_ADMIN_NODE_DRAIN:
        return "drain";
    case CKPT_ADMIN_NODE_REMOVE:
        return "remove";
    case CKPT_ADMIN_NODE_ADD:
        return "add";
    default:
        return "?";
    }
}

int ckpt_msg_node_state_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_state *m)
{
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_u32(w, m->op);
    return w->err;
}

int ckpt_msg_node_state_decode(const void *body, size_t len, struct ckpt_msg_node_state *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    out->op = ckpt_rd_enum(&r, CKPT_ADMIN_NODE_NOPS);
    if (r.err == 0 && out->node_id == 0)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_node_info_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_info *m)
{
    ckpt_wr_u32(w, m->node_id);
    return w->err;
}

int ckpt_msg_node_info_decode(const void *body, size_t len, struct ckpt_msg_node_info *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    if (r.err == 0 && out->node_id == 0)
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_node_info_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_info_resp *m)
{
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_u32(w, m->state);
    ckpt_wr_u32(w, m->flags);
    ckpt_wr_u64(w, m->files);
    ckpt_wr_u64(w, m->bytes);
    ckpt_wr_u64(w, m->tasks);
    ckpt_wr_u64(w, m->delq);
    ckpt_wr_u64(w, m->open_files);
    return w->err;
}

int ckpt_msg_node_info_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_node_info_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    out->state = ckpt_rd_enum(&r, CKPT_NODE_NSTATES);
    out->flags = ckpt_rd_u32(&r);
    out->files = ckpt_rd_u64(&r);
    out->bytes = ckpt_rd_u64(&r);
    out->tasks = ckpt_rd_u64(&r);
    out->delq = ckpt_rd_u64(&r);
    out->open_files = ckpt_rd_u64(&r);
    if (r.err == 0 && out->open_files > out->files)
        ckpt_rbuf_fail(&r);
    if (r.err == 0 && (out->flags & ~(CKPT_NODE_F_HELD | CKPT_NODE_F_DRAINING)))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_rebalance_encode(struct ckpt_wbuf *w, const struct ckpt_msg_rebalance *m)
{
    ckpt_wr_u32(w, m->threshold_pct);
    ckpt_wr_u32(w, m->flags);
    ckpt_wr_u64(w, m->max_rate_bps);
    return w->err;
}

int ckpt_msg_rebalance_decode(const void *body, size_t len, struct ckpt_msg_rebalance *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->threshold_pct = ckpt_rd_u32(&r);
    out->flags = ckpt_rd_u32(&r);
    out->max_rate_bps = ckpt_rd_u64(&r);
    if (r.err == 0 && (out->threshold_pct == 0 || out->threshold_pct > 100 ||
                       (out->flags & ~CKPT_REBALANCE_DRY_RUN)))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

/* Bytes of one target entry on the wire. */
#define REBAL_TARGET_WIRE 48u

int ckpt_msg_rebalance_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_rebalance_resp *m)
{
    if (m->n > CKPT_REBALANCE_MAX_TARGETS || (m->n && !m->targets)) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->flags);
    ckpt_wr_u32(w, m->threshold_pct);
    ckpt_wr_u64(w, m->mean_ppm);
    ckpt_wr_u64(w, m->max_ppm_before);
    ckpt_wr_u64(w, m->max_ppm_after);
    ckpt_wr_u64(w, m->files);
    ckpt_wr_u64(w, m->bytes);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        const struct ckpt_rebalance_target *t = &m->targets[i];
        ckpt_wr_u32(w, t->tid);
        ckpt_wr_u32(w, t->node_id);
        ckpt_wr_u64(w, t->capacity);
        ckpt_wr_u64(w, t->used);
        ckpt_wr_u64(w, t->out_bytes);
        ckpt_wr_u64(w, t->in_bytes);
        ckpt_wr_u32(w, t->out_files);
        ckpt_wr_u32(w, t->in_files);
    }
    return w->err;
}

int ckpt_msg_rebalance_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_rebalance_resp *out)
{
    struct ckpt_rbuf r;
    struct ckpt_rebalance_target *t = NULL;
    ckpt_rbuf_init(&r, body, len);
    memset(out, 0, sizeof(*out));
    uint32_t flags = ckpt_rd_u32(&r);
    uint32_t pct = ckpt_rd_u32(&r);
    uint64_t mean = ckpt_rd_u64(&r), before = ckpt_rd_u64(&r), after = ckpt_rd_u64(&r);
    uint64_t files = ckpt_rd_u64(&r), bytes = ckpt_rd_u64(&r);
    uint32_t n = ckpt_rd_count(&r, CKPT_REBALANCE_MAX_TARGETS, REBAL_TARGET_WIRE);
    if (r.err == 0 && ((flags & ~CKPT_REBALANCE_RESUMED) || pct == 0 || pct > 100))
        ckpt_rbuf_fail(&r);
    if (r.err)
        return r.err;
    if (n) {
        t = ckpt_calloc(n, sizeof(*t));
        if (!t)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        t[i].tid = ckpt_rd_u32(&r);
        t[i].node_id = ckpt_rd_u32(&r);
        t[i].capacity = ckpt_rd_u64(&r);
        t[i].used = ckpt_rd_u64(&r);
        t[i].out_bytes = ckpt_rd_u64(&r);
        t[i].in_bytes = ckpt_rd_u64(&r);
        t[i].out_files = ckpt_rd_u32(&r);
        t[i].in_files = ckpt_rd_u32(&r);
    }
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0) {
        ckpt_free(t);
        return rc;
    }
    out->flags = flags;
    out->threshold_pct = pct;
    out->mean_ppm = mean;
    out->max_ppm_before = before;
    out->max_ppm_after = after;
    out->files = files;
    out->bytes = bytes;
    out->n = n;
    out->targets = t;
    return 0;
}

void ckpt_msg_rebalance_resp_free(struct ckpt_msg_rebalance_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->targets);
    m->n = 0;
}

/*
 * msg_task.c - codecs of the rebuild/repair task messages (msg_task.h).
 *
 * DESIGN: as msg_node.c.  A task's layout travels with ckpt_wr_layout (the
 * decoder runs ckpt_layout_check through ckpt_rd_layout); the per-slot
 * addresses follow as `width` (host string, port) pairs.  The task count is
 * bounded by CKPT_TASK_FETCH_MAX and by the bytes left (ckpt_rd_count), so a
 * hostile count cannot make the decoder allocate more than the message can
 * describe.
 */
#include "msg_task.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

/* Bytes a task needs on the wire at the least (fixed fields, empty layout). */
#define TASK_MIN_WIRE 86u

const char *ckpt_task_kind_name(uint32_t kind)
{
    static const char *const names[] = {"rebuild", "repair", "move"};
    return kind < CKPT_TASK_NKINDS ? names[kind] : "?";
}

int ckpt_msg_task_fetch_encode(struct ckpt_wbuf *w, const struct ckpt_msg_task_fetch *m)
{
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_u32(w, m->max);
    return w->err;
}

int ckpt_msg_task_fetch_decode(const void *body, size_t len, struct ckpt_msg_task_fetch *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    out->max = ckpt_rd_u32(&r);
    if (!r.err && (out->max == 0 || out->max > CKPT_TASK_FETCH_MAX))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

static void wr_task(struct ckpt_wbuf *w, const struct ckpt_task *t)
{
    uint16_t width = t->layout.width ? t->layout.width : (uint16_t)(t->layout.k + t->layout.m);
    ckpt_wr_u32(w, t->kind);
    ckpt_wr_u64(w, t->ino);
    ckpt_wr_u64(w, t->data_gen);
    ckpt_wr_u64(w, t->size);
    ckpt_wr_u32(w, t->lost_tid);
    ckpt_wr_u32(w, t->new_tid);
    ckpt_wr_u32(w, t->slot);
    ckpt_wr_u64(w, t->stripe_lo);
    ckpt_wr_u64(w, t->stripe_hi);
    ckpt_wr_u64(w, t->rate_bps);
    ckpt_wr_u64(w, t->attr_stamp);
    ckpt_wr_layout(w, &t->layout);
    for (uint16_t i = 0; i < width && i < CKPT_LAYOUT_MAX_WIDTH; i++) {
        ckpt_wr_str(w, t->addr[i].host, strnlen(t->addr[i].host, CKPT_HOST_MAX));
        ckpt_wr_u16(w, t->addr[i].port);
    }
}

static void rd_task(struct ckpt_rbuf *r, struct ckpt_task *t)
{
    memset(t, 0, sizeof(*t));
    t->kind = ckpt_rd_enum(r, CKPT_TASK_NKINDS);
    t->ino = ckpt_rd_u64(r);
    t->data_gen = ckpt_rd_u64(r);
    t->size = ckpt_rd_u64(r);
    t->lost_tid = ckpt_rd_u32(r);
    t->new_tid = ckpt_rd_u32(r);
    t->slot = ckpt_rd_u32(r);
    t->stripe_lo = ckpt_rd_u64(r);
    t->stripe_hi = ckpt_rd_u64(r);
    t->rate_bps = ckpt_rd_u64(r);
    t->attr_stamp = ckpt_rd_u64(r);
    ckpt_rd_layout(r, &t->layout);
    if (r->err)
        return;
    /* A task needs a placed layout whose slot names the lost target. */
    if (t->layout.targets[0] == 0 || t->slot >= t->layout.width ||
        t->layout.targets[t->slot] != t->lost_tid || t->new_tid == 0 ||
        t->stripe_lo > t->stripe_hi) {
        ckpt_rbuf_fail(r);
        return;
    }
    for (uint16_t i = 0; i < t->layout.width; i++) {
        ckpt_rd_cstr(r, t->addr[i].host, sizeof(t->addr[i].host));
        t->addr[i].port = ckpt_rd_u16(r);
    }
}

int ckpt_msg_task_fetch_resp_encode(struct ckpt_wbuf *w,
                                    const struct ckpt_msg_task_fetch_resp *m)
{
    if (m->n > CKPT_TASK_FETCH_MAX || (m->n && !m->tasks)) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++)
        wr_task(w, &m->tasks[i]);
    return w->err;
}

int ckpt_msg_task_fetch_resp_decode(const void *body, size_t len,
                                    struct ckpt_msg_task_fetch_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->n = 0;
    out->tasks = NULL;
    uint32_t n = ckpt_rd_count(&r, CKPT_TASK_FETCH_MAX, TASK_MIN_WIRE);
    if (r.err)
        return r.err;
    struct ckpt_task *tasks = NULL;
    if (n) {
        tasks = ckpt_calloc(n, sizeof(*tasks));
        if (!tasks)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < n && !r.err; i++)
        rd_task(&r, &tasks[i]);
    int rc = ckpt_rbuf_end(&r);
    if (rc < 0) {
        ckpt_free(tasks);
        return rc;
    }
    out->n = n;
    out->tasks = tasks;
    return 0;
}

void ckpt_msg_task_fetch_resp_free(struct ckpt_msg_task_fetch_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->tasks);
    m->n = 0;
}

int ckpt_msg_task_done_encode(struct ckpt_wbuf *w, const struct ckpt_msg_task_done *m)
{
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_u32(w, m->kind);
    ckpt_wr_u64(w, m->ino);
    ckpt_wr_u32(w, m->lost_tid);
    ckpt_wr_u32(w, m->new_tid);
    ckpt_wr_u64(w, m->data_gen);
    ckpt_wr_u64(w, m->size);
    ckpt_wr_u64(w, m->attr_stamp);
    ckpt_wr_u64(w, m->stripe_lo);
    ckpt_wr_u64(w, m->stripe_hi);
    ckpt_wr_i32(w, m->status);
    ckpt_wr_u64(w, m->chunks);
    ckpt_wr_u64(w, m->bytes);
    return w->err;
}

int ckpt_msg_task_done_decode(const void *body, size_t len, struct ckpt_msg_task_done *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    out->kind = ckpt_rd_enum(&r, CKPT_TASK_NKINDS);
    out->ino = ckpt_rd_u64(&r);
    out->lost_tid = ckpt_rd_u32(&r);
    out->new_tid = ckpt_rd_u32(&r);
    out->data_gen = ckpt_rd_u64(&r);
    out->size = ckpt_rd_u64(&r);
    out->attr_stamp = ckpt_rd_u64(&r);
    out->stripe_lo = ckpt_rd_u64(&r);
    out->stripe_hi = ckpt_rd_u64(&r);
    out->status = ckpt_rd_i32(&r);
    out->chunks = ckpt_rd_u64(&r);
    out->bytes = ckpt_rd_u64(&r);
    if (!r.err && (out->status > 0 || out->lost_tid == 0 || out->new_tid == 0 ||
                   out->stripe_lo > out->stripe_hi))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_rebuild_status_resp_encode(struct ckpt_wbuf *w,
                                        const struct ckpt_msg_rebuild_status_resp *m)
{
    ckpt_wr_u64(w, m->tasks_pending);
    ckpt_wr_u64(w, m->tasks_done);
    ckpt_wr_u64(w, m->tasks_failed);
    ckpt_wr_u64(w, m->chunks_done);
    ckpt_wr_u64(w, m->bytes_done);
    ckpt_wr_u64(w, m->rate_bps);
    ckpt_wr_u64(w, m->eta_s);
    ckpt_wr_u32(w, m->lost_targets);
    ckpt_wr_u64(w, m->degraded_stripes);
    ckpt_wr_u64(w, m->moves_pending);
    ckpt_wr_u64(w, m->move_bytes_left);
    ckpt_wr_u64(w, m->moves_done);
    ckpt_wr_u64(w, m->move_bytes_done);
    ckpt_wr_u64(w, m->move_rate_bps);
    ckpt_wr_u64(w, m->move_eta_s);
    ckpt_wr_u64(w, m->max_rate_bps);
    ckpt_wr_u32(w, m->draining_nodes);
    return w->err;
}

int ckpt_msg_rebuild_status_resp_decode(const void *body, size_t len,
                                        struct ckpt_msg_rebuild_status_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->tasks_pending = ckpt_rd_u64(&r);
    out->tasks_done = ckpt_rd_u64(&r);
    out->tasks_failed = ckpt_rd_u64(&r);
    out->chunks_done = ckpt_rd_u64(&r);
    out->bytes_done = ckpt_rd_u64(&r);
    out->rate_bps = ckpt_rd_u64(&r);
    out->eta_s = ckpt_rd_u64(&r);
    out->lost_targets = ckpt_rd_u32(&r);
    out->degraded_stripes = ckpt_rd_u64(&r);
    out->moves_pending = ckpt_rd_u64(&r);
    out->move_bytes_left = ckpt_rd_u64(&r);
    out->moves_done = ckpt_rd_u64(&r);
    out->move_bytes_done = ckpt_rd_u64(&r);
    out->move_rate_bps = ckpt_rd_u64(&r);
    out->move_eta_s = ckpt_rd_u64(&r);
    out->max_rate_bps = ckpt_rd_u64(&r);
    out->draining_nodes = ckpt_rd_u32(&r);
    return ckpt_rbuf_end(&r);
}

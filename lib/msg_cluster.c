/*
 * msg_cluster.c - codecs of the cluster membership messages (msg_cluster.h).
 *
 * DESIGN: as msg_node.c.  Layouts travel as k, m, width, chunk size, flags,
 * then either 0 or `width` target ids; the decoder runs ckpt_layout_check()
 * so no caller ever sees an impossible layout from the wire.
 */
#include "msg_cluster.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

const char *ckpt_node_state_name(uint32_t state)
{
    static const char *const names[] = {"UP", "DOWN", "OUT", "DRAINING"};
    return state < CKPT_NODE_NSTATES ? names[state] : "?";
}

void ckpt_wr_layout(struct ckpt_wbuf *w, const struct ckpt_layout *l)
{
    uint16_t width = l->width ? l->width : (uint16_t)(l->k + l->m);
    int placed = width <= CKPT_LAYOUT_MAX_WIDTH && l->targets[0] != 0;
    ckpt_wr_u8(w, l->k);
    ckpt_wr_u8(w, l->m);
    ckpt_wr_u16(w, width);
    ckpt_wr_u32(w, l->chunk_size);
    ckpt_wr_u32(w, l->flags);
    ckpt_wr_u16(w, placed ? width : 0);
    for (int i = 0; placed && i < width; i++)
        ckpt_wr_u32(w, l->targets[i]);
}

void ckpt_rd_layout(struct ckpt_rbuf *r, struct ckpt_layout *out)
{
    memset(out, 0, sizeof(*out));
    out->k = ckpt_rd_u8(r);
    out->m = ckpt_rd_u8(r);
    out->width = ckpt_rd_u16(r);
    out->chunk_size = ckpt_rd_u32(r);
    out->flags = ckpt_rd_u32(r);
    uint16_t n = ckpt_rd_u16(r);
    if (r->err)
        return;
    if (ckpt_layout_check(out, NULL) < 0 || out->width == 0 || (n != 0 && n != out->width)) {
        ckpt_rbuf_fail(r);
        return;
    }
    for (uint16_t i = 0; i < n; i++) {
        out->targets[i] = ckpt_rd_u32(r);
        if (out->targets[i] == 0) /* target ids start at 1 */
            ckpt_rbuf_fail(r);
    }
}

int ckpt_msg_node_register_encode(struct ckpt_wbuf *w, const struct ckpt_msg_node_register *m)
{
    if (m->n > CKPT_NODE_MAX_TARGETS) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_bytes(w, m->uuid, CKPT_NODE_UUID_LEN);
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_str(w, m->name, strlen(m->name));
    ckpt_wr_str(w, m->rack, strlen(m->rack));
    ckpt_wr_str(w, m->host, strlen(m->host));
    ckpt_wr_u16(w, m->port);
    ckpt_wr_u16(w, m->rdma_port);
    ckpt_wr_u32(w, m->transports);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        ckpt_wr_u32(w, m->t[i].id);
        ckpt_wr_u64(w, m->t[i].capacity);
        ckpt_wr_u64(w, m->t[i].free);
        ckpt_wr_str(w, m->t[i].path, strlen(m->t[i].path));
    }
    return w->err;
}

int ckpt_msg_node_register_decode(const void *body, size_t len,
                                  struct ckpt_msg_node_register *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    const uint8_t *u = ckpt_rd_bytes(&r, CKPT_NODE_UUID_LEN);
    if (u)
        memcpy(out->uuid, u, CKPT_NODE_UUID_LEN);
    out->node_id = ckpt_rd_u32(&r);
    ckpt_rd_cstr(&r, out->name, sizeof(out->name));
    ckpt_rd_cstr(&r, out->rack, sizeof(out->rack));
    ckpt_rd_cstr(&r, out->host, sizeof(out->host));
    out->port = ckpt_rd_u16(&r);
    out->rdma_port = ckpt_rd_u16(&r);
    out->transports = ckpt_rd_u32(&r);
    out->n = ckpt_rd_count(&r, CKPT_NODE_MAX_TARGETS, 22);
    for (uint32_t i = 0; i < out->n && !r.err; i++) {
        out->t[i].id = ckpt_rd_u32(&r);
        out->t[i].capacity = ckpt_rd_u64(&r);
        out->t[i].free = ckpt_rd_u64(&r);
        ckpt_rd_cstr(&r, out->t[i].path, sizeof(out->t[i].path));
    }
    if (!r.err && (out->name[0] == '\0' || out->host[0] == '\0' || out->port == 0 ||
                   (out->transports & ~CKPT_XPORT_KNOWN) || !(out->transports & CKPT_XPORT_TCP)))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_node_register_resp_encode(struct ckpt_wbuf *w,
                                       const struct ckpt_msg_node_register_resp *m)
{
    if (m->n > CKPT_NODE_MAX_TARGETS) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_u64(w, m->epoch);
    ckpt_wr_u32(w, m->heartbeat_ms);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++)
        ckpt_wr_u32(w, m->target_ids[i]);
    return w->err;
}

int ckpt_msg_node_register_resp_decode(const void *body, size_t len,
                                       struct ckpt_msg_node_register_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    out->epoch = ckpt_rd_u64(&r);
    out->heartbeat_ms = ckpt_rd_u32(&r);
    out->n = ckpt_rd_count(&r, CKPT_NODE_MAX_TARGETS, 4);
    for (uint32_t i = 0; i < out->n && !r.err; i++) {
        out->target_ids[i] = ckpt_rd_u32(&r);
        if (out->target_ids[i] == 0)
            ckpt_rbuf_fail(&r);
    }
    if (!r.err && (out->node_id == 0 || out->heartbeat_ms == 0 || out->heartbeat_ms > 60000))
        ckpt_rbuf_fail(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_heartbeat_encode(struct ckpt_wbuf *w, const struct ckpt_msg_heartbeat *m)
{
    if (m->n > CKPT_NODE_MAX_TARGETS) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u32(w, m->node_id);
    ckpt_wr_bytes(w, m->uuid, CKPT_NODE_UUID_LEN);
    ckpt_wr_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        ckpt_wr_u32(w, m->t[i].id);
        ckpt_wr_u32(w, m->t[i].flags);
        ckpt_wr_u64(w, m->t[i].capacity);
        ckpt_wr_u64(w, m->t[i].free);
        ckpt_wr_u64(w, m->t[i].used);
        ckpt_wr_u64(w, m->t[i].chunks);
    }
    return w->err;
}

int ckpt_msg_heartbeat_decode(const void *body, size_t len, struct ckpt_msg_heartbeat *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->node_id = ckpt_rd_u32(&r);
    const uint8_t *u = ckpt_rd_bytes(&r, CKPT_NODE_UUID_LEN);
    if (u)
        memcpy(out->uuid, u, CKPT_NODE_UUID_LEN);
    out->n = ckpt_rd_count(&r, CKPT_NODE_MAX_TARGETS, 40);
    for (uint32_t i = 0; i < out->n && !r.err; i++) {
        out->t[i].id = ckpt_rd_u32(&r);
        out->t[i].flags = ckpt_rd_u32(&r);
        out->t[i].capacity = ckpt_rd_u64(&r);
        out->t[i].free = ckpt_rd_u64(&r);
        out->t[i].used = ckpt_rd_u64(&r);
        out->t[i].chunks = ckpt_rd_u64(&r);
    }
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_heartbeat_resp_encode(struct ckpt_wbuf *w, const struct ckpt_msg_heartbeat_resp *m)
{
    ckpt_wr_u64(w, m->epoch);
    return w->err;
}

int ckpt_msg_heartbeat_resp_decode(const void *body, size_t len,
                                   struct ckpt_msg_heartbeat_resp *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->epoch = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_cluster_map_encode(struct ckpt_wbuf *w, const struct ckpt_msg_cluster_map *m)
{
    ckpt_wr_u64(w, m->known_epoch);
    return w->err;
}

int ckpt_msg_cluster_map_decode(const void *body, size_t len, struct ckpt_msg_cluster_map *out)
{
    struct ckpt_rbuf r;
    ckpt_rbuf_init(&r, body, len);
    out->known_epoch = ckpt_rd_u64(&r);
    return ckpt_rbuf_end(&r);
}

int ckpt_msg_cluster_map_resp_encode(struct ckpt_wbuf *w,
                                     const struct ckpt_msg_cluster_map_resp *m)
{
    if (m->n_nodes > CKPT_MAP_MAX_NODES || m->n_targets > CKPT_MAP_MAX_TARGETS) {
        w->err = w->err ? w->err : -EINVAL;
        return w->err;
    }
    ckpt_wr_u64(w, m->epoch);
    ckpt_wr_u8(w, m->unchanged ? 1 : 0);
    ckpt_wr_str(w, m->cluster, strlen(m->cluster));
    ckpt_wr_layout(w, &m->layout);
    ckpt_wr_u32(w, m->n_nodes);
    for (uint32_t i = 0; i < m->n_nodes; i++) {
        const struct ckpt_map_node *n = &m->nodes[i];
        ckpt_wr_u32(w, n->id);
        ckpt_wr_u32(w, n->state);
        ckpt_wr_str(w, n->name, strlen(n->name));
        ckpt_wr_str(w, n->rack, strlen(n->rack));
        ckpt_wr_str(w, n->host, strlen(n->host));
        ckpt_wr_u16(w, n->port);
        ckpt_wr_u16(w, n->rdma_port);
        ckpt_wr_u32(w, n->transports);
        ckpt_wr_u64(w, n->last_seen_ms);
    }
    ckpt_wr_u32(w, m->n_targets);
    for (uint32_t i = 0; i < m->n_targets; i++) {
        const struct ckpt_map_target *t = &m->targets[i];
        ckpt_wr_u32(w, t->id);
        ckpt_wr_u32(w, t->node_id);
        ckpt_wr_u32(w, t->state);
        ckpt_wr_u64(w, t->capacity);
        ckpt_wr_u64(w, t->free);
        ckpt_wr_u64(w, t->used);
        ckpt_wr_u64(w, t->chunks);
    }
    return w->err;
}

int ckpt_msg_cluster_map_resp_decode(const void *body, size_t len,
                                     struct ckpt_msg_cluster_map_resp *out)
{
    struct ckpt_rbuf r;
    int rc;
    memset(out, 0, sizeof(*out));
    ckpt_rbuf_init(&r, body, len);
    out->epoch = ckpt_rd_u64(&r);
    out->unchanged = ckpt_rd_u8(&r);
    ckpt_rd_cstr(&r, out->cluster, sizeof(out->cluster));
    ckpt_rd_layout(&r, &out->layout);
    uint32_t nn = ckpt_rd_count(&r, CKPT_MAP_MAX_NODES, 30);
    if (out->unchanged > 1)
        ckpt_rbuf_fail(&r);
    if (r.err)
        return r.err;
    if (nn && !(out->nodes = ckpt_calloc(nn, sizeof(*out->nodes))))
        return -ENOMEM;
    out->n_nodes = nn;
    for (uint32_t i = 0; i < nn && !r.err; i++) {
        struct ckpt_map_node *n = &out->nodes[i];
        n->id = ckpt_rd_u32(&r);
        n->state = ckpt_rd_enum(&r, CKPT_NODE_NSTATES);
        ckpt_rd_cstr(&r, n->name, sizeof(n->name));
        ckpt_rd_cstr(&r, n->rack, sizeof(n->rack));
        ckpt_rd_cstr(&r, n->host, sizeof(n->host));
        n->port = ckpt_rd_u16(&r);
        n->rdma_port = ckpt_rd_u16(&r);
        n->transports = ckpt_rd_u32(&r);
        n->last_seen_ms = ckpt_rd_u64(&r);
        if (n->transports & ~CKPT_XPORT_KNOWN)
            ckpt_rbuf_fail(&r);
    }
    uint32_t nt = ckpt_rd_count(&r, CKPT_MAP_MAX_TARGETS, 44);
    if (r.err) {
        rc = r.err;
        goto out_free;
    }
    if (nt && !(out->targets = ckpt_calloc(nt, sizeof(*out->targets)))) {
        rc = -ENOMEM;
        goto out_free;
    }
    out->n_targets = nt;
    for (uint32_t i = 0; i < nt && !r.err; i++) {
        struct ckpt_map_target *t = &out->targets[i];
        t->id = ckpt_rd_u32(&r);
        t->node_id = ckpt_rd_u32(&r);
        t->state = ckpt_rd_enum(&r, CKPT_NODE_NSTATES);
        t->capacity = ckpt_rd_u64(&r);
        t->free = ckpt_rd_u64(&r);
        t->used = ckpt_rd_u64(&r);
        t->chunks = ckpt_rd_u64(&r);
    }
    rc = ckpt_rbuf_end(&r);
    if (rc == 0)
        return 0;
out_free:
    ckpt_msg_cluster_map_resp_free(out);
    return rc;
}

void ckpt_msg_cluster_map_resp_free(struct ckpt_msg_cluster_map_resp *m)
{
    if (!m)
        return;
    CKPT_FREE(m->nodes);
    CKPT_FREE(m->targets);
    m->n_nodes = m->n_targets = 0;
}

/*
 * msg_admin.c - codecs of the operator messages (msg_admin.h).
 *
 * DESIGN
 *   Field by field, little endian, through proto.h's wbuf/rbuf: no state,
 *   no allocation, thread-safe.
 */
#include "msg_admin.h"

#include "err.h"

const char *ckpt_admin_node_op_name(uint32_t op)
{
    switch (op) {
    case CKPT_ADMIN_NODE_OUT:
        return "out";
    case CKPT_ADMIN_NODE_IN:
        return "in";
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

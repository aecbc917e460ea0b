/*
 * meta_admin.c - operator requests of ckpt-meta (msg_admin.h): NODE_STATE
 * (ckpt-admin node out|in).
 *
 * DESIGN
 *
 *   Persistent state (LMDB table "adm.hold"): key node id (be32), value
 *   version 1 (u8).  A node listed there was taken out by the operator and
 *   stays OUT (meta_cluster_node_hold) until `node in` removes the record,
 *   across restarts of ckpt-meta (meta_admin_init re-applies every record
 *   after the registry is loaded) and of the node (reg_done keeps a held
 *   node OUT).
 *
 *   Node states as the operator sees them:
 *
 *     UP/DOWN --NODE_STATE out (node_state_done)--> OUT (held)
 *     OUT (held) --NODE_STATE in (node_state_done)--> DOWN --heartbeat--> UP
 *
 *   A held node is OUT for everything else in ckpt-meta: placement skips
 *   it, clients read around it, and meta_rebuild.c plans REBUILD tasks for
 *   each of its files onto targets in new failure domains, which the
 *   surviving nodes run (decode from the other chunks) and which swap the
 *   layouts when done.  `node in` before that finishes leaves the files
 *   already moved where they are; the remaining tasks still run (moving a
 *   file off a live node is harmless).
 *
 *   Threads.  NODE_STATE is a write wop: apply (writer thread, child
 *   transaction) checks that the node exists and writes or deletes the
 *   record; done (after the commit) changes the in-memory state, so a
 *   batch that fails to commit changes nothing.
 *
 *   Known limits.  Drain (copy instead of decode while the node stays
 *   readable), remove and rebalance are not implemented here yet.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"
#include "msg_admin.h"

#define HOLD_VERSION 1u

struct meta_admin {
    MDB_dbi dbi_hold;
};

static void hold_key(uint8_t kb[4], uint32_t id)
{
    kb[0] = (uint8_t)(id >> 24);
    kb[1] = (uint8_t)(id >> 16);
    kb[2] = (uint8_t)(id >> 8);
    kb[3] = (uint8_t)id;
}

/* ---- NODE_STATE (writer thread) --------------------------------------------------- */

static int node_state_decode(const void *body, size_t len, void *msg)
{
    return ckpt_msg_node_state_decode(body, len, msg);
}

static int node_state_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_node_state *m = w->msg;
    uint8_t kb[4], ver = HOLD_VERSION;
    MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb};
    MDB_val v = {.mv_size = 1, .mv_data = &ver};
    int rc = meta_cluster_node_hold(srv, m->node_id, -1);

    if (rc < 0)
        return rc;
    hold_key(kb, m->node_id);
    if (m->op == CKPT_ADMIN_NODE_OUT)
        return meta_store_errno(mdb_put(txn, srv->adm->dbi_hold, &k, &v, 0));
    rc = meta_store_errno(mdb_del(txn, srv->adm->dbi_hold, &k, NULL));
    return rc == -ENOENT ? 0 : rc;
}

static void node_state_done(struct meta_server *srv, struct meta_wop *w)
{
    const struct ckpt_msg_node_state *m = w->msg;

    if (w->status < 0)
        return;
    /* The node was there in apply and nodes are never forgotten. */
    int rc = meta_cluster_node_hold(srv, m->node_id, m->op == CKPT_ADMIN_NODE_OUT);
    if (rc < 0)
        CKPT_LOG_ERR("node %u: cannot apply the operator's %s: " CKPT_RC_FMT, m->node_id,
                     ckpt_admin_node_op_name(m->op), CKPT_RC_ARGS(rc));
}

const struct meta_wop_type meta_wop_node_state = {
    .name = "NODE_STATE",
    .msg_size = sizeof(struct ckpt_msg_node_state),
    .decode = node_state_decode,
    .apply = node_state_apply,
    .done = node_state_done,
};

/* ---- init / fini ------------------------------------------------------------------ */

int meta_admin_init(struct meta_server *srv)
{
    struct meta_admin *adm = ckpt_calloc(1, sizeof(*adm));
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc;

    if (!adm)
        return -ENOMEM;
    rc = meta_store_dbi_open(srv->st, "adm.hold", 0, &adm->dbi_hold);
    if (rc < 0)
        goto out;
    srv->adm = adm;
    rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_open(txn, adm->dbi_hold, &cur));
    if (rc == 0)
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_FIRST));
    while (rc == 0) {
        const uint8_t *kp = k.mv_data;
        if (k.mv_size == 4) {
            uint32_t id = (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 |
                          (uint32_t)kp[2] << 8 | kp[3];
            if (meta_cluster_node_hold(srv, id, 1) < 0)
                CKPT_LOG_WARN("operator hold of unknown node %u ignored", id);
        }
        rc = meta_store_errno(mdb_cursor_get(cur, &k, &v, MDB_NEXT));
    }
    if (rc == -ENOENT)
        rc = 0;
    if (cur)
        mdb_cursor_close(cur);
    meta_store_txn_abort(txn);
out:
    if (rc < 0) {
        srv->adm = NULL;
        ckpt_free(adm);
    }
    return rc;
}

void meta_admin_fini(struct meta_server *srv)
{
    if (!srv->adm)
        return;
    CKPT_FREE(srv->adm);
}

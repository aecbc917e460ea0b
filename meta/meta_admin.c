/*
 * meta_admin.c - operator requests of ckpt-meta (msg_admin.h): NODE_STATE
 * (ckpt-admin node out|in|drain|add|remove) and NODE_INFO.  REBALANCE is
 * planned in meta_rebuild.c, next to the task table it fills.
 *
 * DESIGN
 *
 *   Persistent state (LMDB table "adm.hold"): key node id (be32), value one
 *   byte: 1 = held OUT, 2 = draining.  A node held OUT was taken out by the
 *   operator and stays OUT (meta_cluster_node_hold) until `node in` removes
 *   the record; a draining node is DRAINING (meta_cluster_node_drain) until
 *   `node in`/`node add` or `node remove`; both survive restarts
 *   across restarts of ckpt-meta (meta_admin_init re-applies every record
 *   after the registry is loaded) and of the node (reg_done keeps a held
 *   node OUT).
 *
 *   Node states as the operator sees them:
 *
 *     UP/DOWN --NODE_STATE out (node_state_done)--> OUT (held)
 *     OUT (held) --NODE_STATE in (node_state_done)--> DOWN --heartbeat--> UP
 *     UP/DOWN/OUT(held) --drain--> DRAINING (DOWN until it heartbeats)
 *     DRAINING --in / add--> UP
 *     DOWN/OUT --remove, when no layout names its targets--> (forgotten:
 *            records, targets, queued deletions of its targets)
 *
 *   Draining: meta_rebuild.c plans a MOVE task per file on the node's
 *   targets; the node is drained when NODE_INFO shows no file and no
 *   queued deletion left.  `remove` is the safety gate: a layout that still
 *   names a target of the node may rely on its chunks, so it answers
 *   -EBUSY.  An OUT node whose rebuild finished is removable the same way.
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
 *   NODE_INFO is answered on the receive thread from a read transaction:
 *   O(files on the node's targets + its queued deletions).
 *
 *   A node that still heartbeats (UP, DRAINING) is not removed: it would
 *   register again at once.  Its ckpt-node is stopped first; it is then
 *   DOWN after down_after.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "meta_server_int.h"
#include "msg_admin.h"

#define HOLD_OUT 1u
#define HOLD_DRAIN 2u
#define REMOVE_DELQ_MAX 4096u  /* queued deletions dropped per remove */
#define NODE_TIDS_MAX (2 * CKPT_NODE_MAX_TARGETS)

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

static int count_file(uint64_t ino, void *ctx)
{
    (void)ino;
    (*(uint64_t *)ctx)++;
    return 1; /* one is enough */
}

struct delq_list {
    struct meta_delq_entry *e;
    size_t n;
};

static int delq_collect(const struct meta_delq_entry *e, void *ctx)
{
    struct delq_list *l = ctx;
    if (l->n >= REMOVE_DELQ_MAX)
        return 1;
    l->e[l->n++] = *e;
    return 0;
}

/* REMOVE: refuse a node that may hold the only copy of a chunk. */
static int remove_apply(struct meta_server *srv, MDB_txn *txn, uint32_t node_id)
{
    uint32_t tids[NODE_TIDS_MAX], ntids = 0, state = 0, flags = 0;
    struct delq_list dl = {0};
    int rc = meta_cluster_node_targets(srv, node_id, tids, &ntids, &state, &flags);

    if (rc < 0)
        return rc;
    if (state == CKPT_NODE_UP && !(flags & CKPT_NODE_F_DRAINING)) {
        CKPT_LOG_WARN("node %u: remove refused: it is UP and not drained (drain it first)",
                      node_id);
        return -EBUSY;
    }
    if (state == CKPT_NODE_UP || state == CKPT_NODE_DRAINING) {
        CKPT_LOG_WARN("node %u: remove refused: it still heartbeats (stop its ckpt-node "
                      "first, or it would register again)", node_id);
        return -EBUSY;
    }
    for (uint32_t i = 0; i < ntids; i++) {
        uint64_t files = 0;
        rc = meta_store_tindex_iter(txn, tids[i], 0, count_file, &files);
        if (rc < 0)
            return rc;
        if (files) {
            CKPT_LOG_WARN("node %u: remove refused: files still have chunks on its target %u",
                          node_id, tids[i]);
            return -EBUSY;
        }
    }
    rc = meta_cluster_node_remove_apply(srv, txn, node_id, tids, ntids);
    dl.e = rc == 0 ? ckpt_calloc(REMOVE_DELQ_MAX, sizeof(*dl.e)) : NULL;
    if (rc == 0 && !dl.e)
        rc = -ENOMEM;
    for (uint32_t i = 0; i < ntids && rc == 0; i++) {
        dl.n = 0;
        rc = meta_store_delq_iter(txn, tids[i], 0, delq_collect, &dl);
        for (size_t j = 0; j < dl.n && rc == 0; j++) {
            rc = meta_store_delq_remove(txn, &dl.e[j]);
            if (rc == -ENOENT || rc == CKPT_E_STALE)
                rc = 0;
        }
    }
    ckpt_free(dl.e);
    return rc;
}

static int node_state_apply(struct meta_server *srv, MDB_txn *txn, struct meta_wop *w)
{
    const struct ckpt_msg_node_state *m = w->msg;
    uint8_t kb[4], val = m->op == CKPT_ADMIN_NODE_DRAIN ? HOLD_DRAIN : HOLD_OUT;
    MDB_val k = {.mv_size = sizeof(kb), .mv_data = kb};
    MDB_val v = {.mv_size = 1, .mv_data = &val};
    int rc = meta_cluster_node_hold(srv, m->node_id, -1);

    if (rc < 0)
        return rc;
    hold_key(kb, m->node_id);
    if (m->op == CKPT_ADMIN_NODE_OUT || m->op == CKPT_ADMIN_NODE_DRAIN)
        return meta_store_errno(mdb_put(txn, srv->adm->dbi_hold, &k, &v, 0));
    if (m->op == CKPT_ADMIN_NODE_REMOVE) {
        rc = remove_apply(srv, txn, m->node_id);
        if (rc < 0)
            return rc;
    }
    rc = meta_store_errno(mdb_del(txn, srv->adm->dbi_hold, &k, NULL));
    return rc == -ENOENT ? 0 : rc;
}

static void node_state_done(struct meta_server *srv, struct meta_wop *w)
{
    const struct ckpt_msg_node_state *m = w->msg;

    if (w->status < 0)
        return;
    int rc;
    switch (m->op) {
    case CKPT_ADMIN_NODE_REMOVE:
        meta_cluster_node_forget(srv, m->node_id);
        return;
    case CKPT_ADMIN_NODE_DRAIN:
        rc = meta_cluster_node_drain(srv, m->node_id, true);
        break;
    default:
        /* The node was there in apply, and only REMOVE forgets a node. */
        rc = meta_cluster_node_hold(srv, m->node_id, m->op == CKPT_ADMIN_NODE_OUT);
        break;
    }
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

/* ---- NODE_INFO (receive thread) ------------------------------------------------------- */

static int delq_count(const struct meta_delq_entry *e, void *ctx)
{
    (void)e;
    (*(uint64_t *)ctx)++;
    return 0;
}

void meta_di_node_info(struct meta_server *srv, struct ckpt_req *req)
{
    struct ckpt_msg_node_info m;
    struct ckpt_msg_node_info_resp r;
    uint32_t tids[NODE_TIDS_MAX], ntids = 0;
    struct ckpt_wbuf wb;
    uint8_t buf[64];
    MDB_txn *txn = NULL;
    int rc = ckpt_msg_node_info_decode(req->body, req->body_len, &m);

    if (rc < 0) {
        meta_req_malformed(req, rc);
        return;
    }
    memset(&r, 0, sizeof(r));
    r.node_id = m.node_id;
    ckpt_wbuf_init(&wb, buf, sizeof(buf));
    rc = meta_cluster_node_targets(srv, m.node_id, tids, &ntids, &r.state, &r.flags);
    if (rc == 0)
        rc = meta_store_txn_begin(srv->st, NULL, true, &txn);
    for (uint32_t i = 0; i < ntids && rc == 0; i++) {
        rc = meta_rebuild_target_info(srv, txn, tids[i], &r.files, &r.bytes, &r.open_files,
                                      &r.tasks);
        if (rc == 0)
            rc = meta_store_delq_iter(txn, tids[i], 0, delq_count, &r.delq);
    }
    meta_store_txn_abort(txn);
    if (rc == 0)
        rc = ckpt_msg_node_info_resp_encode(&wb, &r);
    (void)ckpt_req_reply(req, rc, rc ? NULL : wb.p, rc ? 0 : (uint32_t)wb.len, NULL, 0);
    ckpt_wbuf_free(&wb);
}

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
        if (k.mv_size == 4 && v.mv_size == 1) {
            uint32_t id = (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 |
                          (uint32_t)kp[2] << 8 | kp[3];
            uint8_t what = *(const uint8_t *)v.mv_data;
            int hr = what == HOLD_DRAIN ? meta_cluster_node_drain(srv, id, true)
                                        : meta_cluster_node_hold(srv, id, 1);
            if (hr < 0)
                CKPT_LOG_WARN("operator %s of unknown node %u ignored",
                              what == HOLD_DRAIN ? "drain" : "hold", id);
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

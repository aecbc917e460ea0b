/*
 * node_int.h - internals shared by the files of ckpt-node (node_svc.c,
 * node_reg.c).  Nothing outside daemon/ includes it.
 *
 * struct node_tgt is one served target: its directory handle, its chunk
 * store and the global target id requests name it by.  The id is a copy of
 * the one persisted in the target's identity (node_target_get_ids), kept in
 * an atomic so the chunk path can look a target up without a lock:
 *
 *     0 (unassigned) --node_reg: ids persisted--> id --re-registration--> id'
 *
 * A request naming a target id that no entry holds (unassigned included) is
 * answered -ENODEV.  Only node_reg writes the id, and only after
 * node_target_set_ids() made the new value durable, so a restart can never
 * serve a target under an id that meta has not handed out.
 */
#ifndef NODE_INT_H
#define NODE_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "node_chunk.h"
#include "node_target.h"

struct node_tgt {
    node_target *t;          /* immutable while the server lives */
    node_chunk_store *s;     /* immutable while the server lives */
    _Atomic uint32_t id;     /* global target id; 0 = not assigned yet */
    char path[1024];         /* for messages and registration; immutable */
};

#endif

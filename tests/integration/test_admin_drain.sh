#!/bin/bash
# test_admin_drain.sh - ckpt-admin node drain / remove / add (issue 10).
#
# A 7-node cluster (4+2, width 6: one spare failure domain) with data on
# it.  `node remove` of a loaded UP node is refused (exit 5).  The node
# holding the most chunks is drained with --wait while a writer keeps
# creating files: it shows DRAINING (readable, UP-like), new files avoid
# it, every file on it moves (copy from it, layout swap, old chunks
# deleted) until it holds no chunk file; everything reads back bit-exact,
# the writer's files too.  `node remove` of the drained node is refused
# while it still runs (exit 5); it is stopped; the drain state survives a
# restart of ckpt-meta; once it is DOWN it is removed (gone from the map),
# and all data still reads back; `node remove` of an unknown node is 3.
set -u
cd "$(dirname "$0")/../.." || exit 1
T=$(mktemp -d /tmp/ckptfs-test-drain.XXXXXX) || exit 1
C=$T/c
. tests/integration/fail_lib.sh
fl_setup
A="$BIN/ckpt-admin"
J() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

STEP=setup
"$CC" -q up "$C" --nodes 7 --chunk 256K >/dev/null || die "cluster up"
export CKPTFS_CONF=$C/ckptfs.conf
make_files 1000000 2000000 3000000 700000 1500000 2500000 400000 1200000 || die "make_files"
check_files || die "data before the drain"

STEP=refuse
victim=$(node_of_most_chunks node1 node2 node3 node4 node5 node6 node7)
[ -n "$victim" ] || die "no node holds chunks"
before=$(chunk_keys "$victim" | wc -l)
[ "$before" -gt 0 ] || die "$victim holds no chunk"
$A node remove "$victim" 2>"$T/err"; rc=$?
[ $rc = 5 ] || fail "remove of a loaded UP node: exit $rc, want 5"
grep -q "drain it first" "$T/err" || fail "remove refusal message: $(cat "$T/err")"
$A node remove nosuchnode 2>/dev/null; [ $? = 3 ] || fail "remove of an unknown node"

STEP=writer
# A writer that keeps creating files during the drain (bounded: 40 files).
mkdir -p "$T/w"
(
    for i in $(seq 1 40); do
        head -c $((300000 + i * 7000)) /dev/urandom >"$T/w/w$i" || exit 1
        cp "$T/w/w$i" "$C/mnt/w$i" || exit 1
        [ -f "$T/stop" ] && break
    done
    exit 0
) &
WPID=$!
wait_for 30 sh -c "[ -f '$C/mnt/w3' ]" || fail "the writer does not write"

STEP=drain
say "draining $victim ($before chunk files)"
t0=$SECONDS
$A node drain "$victim" --wait --timeout 90 >"$T/drain.out" 2>"$T/drain.err"; rc=$?
[ $rc = 0 ] || fail "drain --wait: exit $rc: $(tail -3 "$T/drain.err")"
grep -q "drained" "$T/drain.out" || fail "drain did not report drained: $(cat "$T/drain.out")"
grep -q "draining $victim:" "$T/drain.err" || echo "note: drain finished before a progress line"
say "drained in $((SECONDS - t0)) s: $(cat "$T/drain.out")"
$A nodes --json | J "s={n['name']:n['state'] for n in d}; assert s['$victim']=='DRAINING', s" \
    || fail "$victim is not shown DRAINING"
$A status --json | J 'assert d["node_states"]["DRAINING"]==1 and d["move"]["draining_nodes"]==1, d["move"]' \
    || fail "status: draining node not counted"
$A status | grep -q "moves (drain/rebalance)" || fail "status: no move line"
grep -Eq "is DRAINING by the operator" "$C/logs/meta.log" || fail "meta log: no DRAINING line"
grep -Eq "drain: planned [0-9]+ move task" "$C/logs/meta.log" || fail "meta log: no drain planning"
wait_for 5 log_has "$C/logs/meta.log" "drain: no file uses the 1 target" || fail "meta log: drain end not logged"

STEP=writer-done
touch "$T/stop"
wait "$WPID" || fail "the writer failed"
# Files written during the drain: none may be placed on the draining node
# after the drain finished; write one more and check its layout.
head -c 900000 /dev/urandom >"$T/w/late" && cp "$T/w/late" "$C/mnt/late" || fail "late write"
vid=$($A nodes --json | J "print([n['id'] for n in d if n['name']=='$victim'][0])")
$A layout get "$C/mnt/late" --json >"$T/late.json" || fail "layout get late"
$A df --by target --json | J "
import json
tg=[t['id'] for t in d['targets'] if t['node_id']==$vid]
assert tg, 'no target of the victim'
l=json.load(open('$T/late.json'))
assert not set(l['targets']) & set(tg), (l['targets'], tg)" || fail "a new file was placed on the draining node"

STEP=empty
# Every chunk file of the node is deleted through the deletion queue.
wait_for 30 sh -c "[ \$(cd '$C/$victim' && find . -path '*/chunks/*' -type f ! -name '*.tmp*' | wc -l) = 0 ]" \
    || fail "$victim still holds $(chunk_keys "$victim" | wc -l) chunk files"
check_files || fail "data after the drain"
for f in "$T"/w/*; do cmp -s "$f" "$C/mnt/$(basename "$f")" || fail "writer file $(basename "$f") differs"; done

STEP=remove-running
$A node remove "$victim" 2>"$T/err"; rc=$?
[ $rc = 5 ] || fail "remove of a drained but running node: exit $rc, want 5"
grep -q "stop its ckpt-node first" "$T/err" || fail "remove refusal message: $(cat "$T/err")"

STEP=restart-meta
# The drain is persisted.  (The victim is stopped first: ckpt-cluster's
# restart-meta waits for every running node to be UP, not DRAINING.)
"$CC" -q stop "$C" "$victim" >/dev/null || fail "stop $victim"
"$CC" -q restart-meta "$C" >/dev/null || die "restart-meta"
wait_for 20 sh -c "'$A' status --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"move\"][\"draining_nodes\"]==1' 2>/dev/null" \
    || fail "drain state lost across a restart of ckpt-meta"

STEP=remove
# A stopped node is removable once ckpt-meta sees it DOWN (after a restart
# it counts every known node as heard until down_after passes).
wait_for 30 sh -c "'$A' nodes --json | python3 -c \"import json,sys; d=json.load(sys.stdin); assert {n['name']:n['state'] for n in d}['$victim'] in ('DOWN','OUT')\" 2>/dev/null" \
    || fail "$victim never DOWN after it stopped"
$A node remove "$victim" >"$T/rm.out" 2>&1 || fail "remove of the drained node: $(cat "$T/rm.out")"
$A nodes --json | J "assert '$victim' not in [n['name'] for n in d] and len(d)==6, [n['name'] for n in d]" \
    || fail "$victim still in the map"
check_files || fail "data after the remove"
for f in "$T"/w/*; do cmp -s "$f" "$C/mnt/$(basename "$f")" || fail "writer file $(basename "$f") differs after remove"; done
other=node1; [ "$victim" = node1 ] && other=node2
$A node add "$other" >/dev/null || fail "node add of a member"
$A nodes --json | J 'assert all(n["state"]=="UP" for n in d), d' || fail "nodes not all UP after remove"

if [ $FAILS = 0 ]; then echo "test_admin_drain: 1 passed, 0 failed"; exit 0; fi
echo "test_admin_drain: 0 passed, 1 failed ($FAILS check(s))"
exit 1

#!/bin/bash
# test_ckpt_health.sh - checkpoint health as nodes die (issue 7), made
# deterministic by placement: the cluster starts with 3 nodes and layout
# 2+1, and step-1 is written and committed there (all its chunks on
# node1..node3).  Three more nodes are added and step-2 gets a 4+2 layout
# (ckpt-admin layout set): width 6 on 6 nodes, every stripe on every node.
# Then node4 and node5 are killed: step-2 DEGRADED (2 chunks of each
# stripe gone), restore --verify of it passes and reports stripes decoded
# from parity; step-1 PROTECTED.  node6 killed too: step-2 LOST (3 > m
# chunks gone), step-1 still PROTECTED, and `ckpt latest` falls back to it;
# restoring it gives back the bytes written.  Last, `ckpt wait` on a 4+2
# file written (and still open) with only 3 nodes left fails: a flush that
# cannot reach k targets is an error, not a silent success.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-ckpt-health.XXXXXX) || exit 1
C="$T/c"
fl_setup
CK="$BIN/ckpt"
ADM="$BIN/ckpt-admin"

STEP=up
"$CC" -q up "$C" --nodes 3 --ec 2+1 --timeout 60 >/dev/null || die "cluster did not start"
export CKPTFS_CONF=$C/ckptfs.conf
M=$C/mnt
status_has() { "$CK" status "$M/job/$1" | grep -q "health: *$2"; }

STEP=step-1
mkdir -p "$M/job/step-1"
for i in 0 1 2 3; do head -c 1500000 /dev/urandom >"$M/job/step-1/rank-$i.bin" || die "write"; done
"$CK" commit "$M/job/step-1" --timeout 30 >/dev/null || die "commit step-1"
status_has step-1 PROTECTED || fail "step-1 not PROTECTED: $("$CK" status "$M/job/step-1")"
cp -r "$M/job/step-1" "$T/step-1.ref" || die "copy step-1"

STEP=add
"$CC" -q add "$C" 3 --timeout 60 >/dev/null || die "adding 3 nodes"
for n in node4 node5 node6; do
    [ -z "$(chunk_keys "$n")" ] || fail "$n holds chunks before step-2"
done
# The mount must see the new nodes UP before step-2 is written (its map
# follows ckpt-meta's within a second): the last map line of each says UP.
mount_sees_up() {
    local n
    for n in node4 node5 node6; do
        grep "map: node [0-9]* ($n " "$C/logs/ckptfs.log" | tail -1 | grep -q "is UP" || return 1
    done
}
wait_for 20 mount_sees_up || fail "the mount does not see node4..6 UP"

STEP=step-2
mkdir -p "$M/job/step-2" "$M/job/step-3"
"$ADM" layout set "$M/job/step-2" ec=4+2 >/dev/null || die "layout set step-2"
"$ADM" layout set "$M/job/step-3" ec=4+2 >/dev/null || die "layout set step-3"
for i in 0 1 2 3; do head -c 3000000 /dev/urandom >"$M/job/step-2/rank-$i.bin" || die "write"; done
: >"$M/job/step-3/late.bin" || die "create step-3/late.bin"
"$CK" commit "$M/job/step-2" --timeout 30 >/dev/null || die "commit step-2"
status_has step-2 PROTECTED || fail "step-2 not PROTECTED"
# Placement as planned: step-2's stripes hold a chunk on each of the 6 nodes.
ino=$(stat -c %i "$M/job/step-2/rank-0.bin")
for n in node1 node2 node3 node4 node5 node6; do
    chunk_keys "$n" | grep -q "^$(printf %016x "$ino")/" || fail "$n holds no chunk of step-2"
done
[ "$("$CK" latest "$M/job")" = "$M/job/step-2" ] || fail "latest is not step-2"

STEP=two-down
"$CC" -q kill "$C" node4 && "$CC" -q kill "$C" node5 || die "kill node4, node5"
wait_for 30 status_has step-2 DEGRADED || fail "step-2 never DEGRADED: $("$CK" status "$M/job/step-2")"
status_has step-1 PROTECTED || fail "step-1 not PROTECTED with node4, node5 down"
[ "$("$CK" latest "$M/job")" = "$M/job/step-2" ] || fail "latest is not the DEGRADED step-2"
out=$("$CK" restore "$M/job/step-2" --verify --jobs 2 2>&1) || fail "restore --verify DEGRADED step-2: $out"
grep -q '^decoded from parity: [1-9][0-9]* stripe' <<<"$out" || fail "no stripes decoded reading DEGRADED step-2: $out"

STEP=three-down
"$CC" -q kill "$C" node6 || die "kill node6"
wait_for 30 status_has step-2 LOST || fail "step-2 never LOST: $("$CK" status "$M/job/step-2")"
status_has step-1 PROTECTED || fail "step-1 not PROTECTED with node4..6 down"
latest=$("$CK" latest "$M/job"); rc=$?
[ $rc -eq 0 ] && [ "$latest" = "$M/job/step-1" ] || fail "latest: exit $rc, '$latest', want step-1"
"$CK" restore "$M/job" --latest --verify --to "$T/out" >/dev/null 2>&1 || fail "restore --latest"
diff -r "$T/step-1.ref" "$T/out" >/dev/null || fail "restored step-1 differs from what was written"
"$CK" restore "$M/job/step-2" --verify >/dev/null 2>&1; rc=$?
[ $rc -eq 3 ] || fail "restore of LOST step-2: exit $rc, want 3"

STEP=wait-fails
# The writer keeps the file open (as a training process does until it
# closes its shard): the mount still holds the write-back error when
# `ckpt wait` asks.
exec 5>>"$M/job/step-3/late.bin"
head -c 1000000 /dev/urandom >&5
timeout 120 "$CK" wait "$M/job/step-3" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "ckpt wait with 3 of 6 nodes for a 4+2 file: exit $rc, want 1"
exec 5>&-

STEP=done
[ $FAILS = 0 ] && say "PASS test_ckpt_health" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

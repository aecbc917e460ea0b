#!/bin/bash
# test_fail_during_write.sh - issue 8: a node is killed while a checkpoint
# file is being written.  The write completes (stripes that could not reach
# the dead node are written degraded with >= k chunks and reported), the
# file reads back bit-exact, the node goes OUT, its chunks and the missing
# ones are rebuilt, every stripe ends with k+m chunks, and the file still
# reads bit-exact with two more nodes dead.
# 8 nodes, ec 4+2, 64 KiB chunks, down_after 1 s, out_after 3 s.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-during-write.XXXXXX) || exit 1
C="$T/c"
fl_setup
NODES="node1 node2 node3 node4 node5 node6 node7 node8"

STEP=up
"$CC" -q up "$C" --nodes 8 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=3s --timeout 60 || die "cluster did not start"

STEP=write
mkdir -p "$T/src"
head -c $((48 << 20)) /dev/urandom >"$T/src/ckpt" || die "source"
( dd if="$T/src/ckpt" of="$C/mnt/ckpt" bs=256K status=none && sync "$C/mnt/ckpt" ) &
writer=$!
wait_for 20 test -s "$C/mnt/ckpt" || fail "the writer did not get going"
# Kill a node that holds chunks of the file being written: with 8 nodes
# and width 6, a fixed name may hold none (nothing to rebuild then).
wait_for 20 test -n "$(chunk_keys $NODES | head -1)" || fail "no chunk stored yet"
VICTIM=$(node_of_most_chunks $NODES)
"$CC" -q kill "$C" "$VICTIM" || die "kill $VICTIM failed"
wait "$writer" || fail "the write failed when $VICTIM died"
check_files || fail "the file differs after a node died during its write"

STEP=rebuild
SURV=$(for n in $NODES; do [ "$n" = "$VICTIM" ] || printf '%s ' "$n"; done)
wait_for 120 stripes_full 6 $SURV || die "stripes without 6 chunks: $(per_stripe $SURV | awk '$1 != 6' | head -5)"
wait_for 60 rebuild_settled || fail "no 'rebuild complete' in ckpt-meta's log"
check_files || fail "the file differs after the rebuild"
set -- $SURV
"$CC" -q kill "$C" "$1" || die "kill $1 failed"
"$CC" -q kill "$C" "$2" || die "kill $2 failed"
check_files || fail "the file differs with two more nodes dead after the rebuild"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_during_write" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

#!/bin/bash
# test_fail_return_out.sh - issue 8: a node comes back after OUT.  Its data
# was rebuilt elsewhere and the layouts no longer name its target, so every
# chunk it still holds is garbage: the layout swap queued their deletion
# (by inode and generation) and the deletion queue sends it once the node
# is UP.  Checks: after the rebuild and the node's return its target holds
# no chunk of the old files, files read bit-exact, and the node is usable
# (new files placed on it, read back bit-exact).
# 7 nodes, ec 4+2, 64 KiB chunks, down_after 1 s, out_after 3 s.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-return-out.XXXXXX) || exit 1
C="$T/c"
fl_setup

STEP=up
"$CC" -q up "$C" --nodes 7 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=3s --timeout 60 || die "cluster did not start"
STEP=write
make_files 2000000 500000 || die "writing failed"
victim=$(node_of_most_chunks node1 node2 node3 node4 node5 node6 node7)
[ "$(chunk_keys "$victim" | wc -l)" -gt 0 ] || die "no chunks on $victim"

STEP=out
"$CC" -q kill "$C" "$victim" || die "kill $victim failed"
wait_for 60 rebuild_settled || die "no rebuild"

STEP=return
"$CC" -q start "$C" "$victim" --timeout 60 || die "start $victim failed"
empty() { [ "$(chunk_keys "$victim" | wc -l)" = 0 ]; }
wait_for 60 empty || fail "$victim still holds $(chunk_keys "$victim" | wc -l) stale chunk(s)"
check_files || fail "files differ after $victim returned"

STEP=usable
before=$(chunk_keys "$victim" | wc -l)
make_files 3000000 3000000 3000000 || fail "writing after the return failed"
[ "$(chunk_keys "$victim" | wc -l)" -gt "$before" ] || fail "no new chunk placed on $victim"
check_files || fail "files differ"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_return_out" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

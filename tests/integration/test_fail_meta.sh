#!/bin/bash
# test_fail_meta.sh - issue 8: ckpt-meta killed with -9
#   (a) while a writer is copying files: the writer's calls retry across the
#       restart, every file written reads back bit-exact afterwards;
#   (b) in the middle of a rebuild: the tasks are in LMDB, so the restarted
#       ckpt-meta resumes them (nodes reconnect and fetch again); the
#       rebuild ends with every stripe at k+m chunks and reads bit-exact.
# 8 nodes, ec 4+2, 64 KiB chunks, down_after 1 s, out_after 3 s.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-meta.XXXXXX) || exit 1
C="$T/c"
fl_setup
NODES="node1 node2 node3 node4 node5 node6 node7 node8"

STEP=up
"$CC" -q up "$C" --nodes 8 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=3s --timeout 60 || die "cluster did not start"

STEP=meta-during-writes
mkdir -p "$T/src"
for i in 1 2 3 4 5 6; do head -c $((700000 * i)) /dev/urandom >"$T/src/w$i"; done
( for i in 1 2 3 4 5 6; do cp "$T/src/w$i" "$C/mnt/w$i" && sync "$C/mnt/w$i" || exit 1; done ) &
writer=$!
wait_for 20 test -e "$C/mnt/w2" || fail "the writer did not get going"
"$CC" -q kill "$C" meta || die "kill meta failed"
off=$(log_lines "$C/logs/meta.log")
"$CC" -q start "$C" meta --timeout 60 || die "restarting ckpt-meta failed"
wait "$writer" || fail "the writer failed across the ckpt-meta restart"
# Nodes re-register with the new ckpt-meta; reads need them UP again.
wait_for 30 ups_since "$C/logs/meta.log" "$off" 8 || fail "nodes not UP again after the restart"
check_files || fail "files written across the ckpt-meta restart differ"

STEP=meta-during-rebuild
total=$(chunk_keys $NODES | wc -l)
chunk_keys node4 | sort >"$T/lost"
off0=$(log_lines "$C/logs/meta.log")
"$CC" -q kill "$C" node4 || die "kill node4 failed"
wait_for 30 log_has "$C/logs/meta.log" "rebuild: planned" || die "no rebuild planned"
"$CC" -q kill "$C" meta || die "kill meta failed"
off=$(log_lines "$C/logs/meta.log")
"$CC" -q start "$C" meta --timeout 60 || die "restarting ckpt-meta failed"
SURV="node1 node2 node3 node5 node6 node7 node8"
# The layouts swap only when a ckpt-meta accepts the reports: the killed
# one may have finished before it died (small runs), else the new one must.
if ! head -n "$off" "$C/logs/meta.log" | tail -n +"$((off0 + 1))" | grep -q "rebuild complete"; then
    wait_for 90 log_since "$C/logs/meta.log" "$off" "rebuild complete" ||
        fail "no 'rebuild complete' from the restarted ckpt-meta"
else
    say "(the rebuild finished before ckpt-meta was killed)"
fi
wait_for 90 stripes_full 6 $SURV || die "stripes without 6 chunks: $(per_stripe $SURV | awk '$1 != 6' | head -5)"
chunk_keys $SURV | sort -u >"$T/now"
missing=$(comm -23 "$T/lost" "$T/now" | wc -l)
[ "$missing" = 0 ] || fail "$missing lost chunk(s) not recreated"
[ "$(chunk_keys $SURV | wc -l)" = "$total" ] || fail "chunk count $(chunk_keys $SURV | wc -l) != $total"
check_files || fail "files differ after the rebuild across a ckpt-meta restart"
"$CC" -q kill "$C" node1 || die "kill node1 failed"
"$CC" -q kill "$C" node2 || die "kill node2 failed"
check_files || fail "files differ with two more nodes dead after the rebuild"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_meta" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

#!/bin/bash
# test_fail_two.sh - issue 8: kill two nodes at once (= m).  Everything
# stays readable (degraded: stripes that lost two chunks decode from the
# remaining k); both go OUT and every file that used either gets one task
# per lost target, the second replacement chosen away from the first, so
# each stripe ends with k+m chunks in k+m distinct failure domains.  Checks:
# reads bit-exact while degraded, every lost chunk recreated, every stripe
# with 6 chunks on the 6 survivors, reads bit-exact after the rebuild and
# again with two more nodes dead.
# 8 nodes, ec 4+2, 64 KiB chunks, down_after 1 s, out_after 3 s.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-two.XXXXXX) || exit 1
C="$T/c"
fl_setup
NODES="node1 node2 node3 node4 node5 node6 node7 node8"

STEP=up
"$CC" -q up "$C" --nodes 8 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=3s --timeout 60 || die "cluster did not start"
STEP=write
make_files 2500000 900000 65536 3333333 || die "writing failed"
total=$(chunk_keys $NODES | wc -l)

STEP=kill
chunk_keys node2 node6 | sort >"$T/lost"
"$CC" -q kill "$C" node2 || die "kill node2 failed"
"$CC" -q kill "$C" node6 || die "kill node6 failed"
SURV="node1 node3 node4 node5 node7 node8"
check_files || fail "files differ with two nodes dead (before the rebuild)"

STEP=rebuild
wait_for 90 stripes_full 6 $SURV || die "stripes without 6 chunks: $(per_stripe $SURV | awk '$1 != 6' | head -5)"
wait_for 30 rebuild_settled || fail "no 'rebuild complete' in ckpt-meta's log"
chunk_keys $SURV | sort -u >"$T/now"
missing=$(comm -23 "$T/lost" "$T/now" | wc -l)
[ "$missing" = 0 ] || fail "$missing lost chunk(s) not recreated"
[ "$(chunk_keys $SURV | wc -l)" = "$total" ] || fail "chunk count $(chunk_keys $SURV | wc -l) != $total"
check_files || fail "files differ after the rebuild"

STEP=redundancy
"$CC" -q kill "$C" node3 || die "kill node3 failed"
"$CC" -q kill "$C" node8 || die "kill node8 failed"
check_files || fail "files differ with four nodes dead after the rebuild"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_two" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

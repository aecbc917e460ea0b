#!/bin/bash
# test_fail_return.sh - issue 8: a node comes back before OUT.  A file
# whose layout includes the victim is open for writing when the victim is
# killed; its later stripes are written degraded while the victim is DOWN
# and the client records them with ckpt-meta (DEGRADED).  When the node is
# UP again, ckpt-meta plans a REPAIR task and the node rebuilds the chunks
# it missed from the survivors.  Checks: degraded stripes existed, every
# stripe has k+m chunks again, "rebuild complete" in ckpt-meta's log, files
# read back bit-exact, also with two other nodes dead.
# 8 nodes, ec 4+2 with 64 KiB chunks, down_after 1 s, out_after 10 min.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-return.XXXXXX) || exit 1
C="$T/c"
fl_setup
NODES="node1 node2 node3 node4 node5 node6 node7 node8"

STEP=up
"$CC" -q up "$C" --nodes 8 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=600s --timeout 60 || die "cluster did not start"

STEP=write-before
make_files 1000000 || die "writing failed"
# A file open for writing whose layout includes the victim: its later
# stripes are written while the victim is DOWN.
mkdir -p "$T/src"
exec 3>"$C/mnt/g" || die "cannot create g"
head -c 600000 /dev/urandom >"$T/src/g" && cat "$T/src/g" >&3 && sync "$C/mnt/g" ||
    die "writing the first part of g failed"
ino=$(printf '%016x' "$(stat -c %i "$C/mnt/g")")
victim=""
for n in $NODES; do
    ls -d "$C/$n"/t0/chunks/*/"$ino" >/dev/null 2>&1 && { victim=$n; break; }
done
[ -n "$victim" ] || die "no node holds chunks of g (inode $ino)"
others=$(echo $NODES | tr ' ' '\n' | grep -vx "$victim" | head -2 | tr '\n' ' ')

STEP=down
"$CC" -q kill "$C" "$victim" || die "kill $victim failed"
wait_for 30 log_has "$C/logs/meta.log" "\($victim, [^)]*\) is DOWN" || die "$victim never DOWN"

STEP=write-degraded
head -c 2000000 /dev/urandom >"$T/part2" && cat "$T/part2" >>"$T/src/g" && cat "$T/part2" >&3 ||
    die "writing g while $victim is DOWN failed"
exec 3>&-
sync "$C/mnt/g" || fail "sync of g failed"
check_files || fail "files differ while $victim is DOWN"
wait_for 30 log_has "$C/logs/meta.log" "degraded stripe\(s\) recorded" ||
    fail "the client recorded no degraded stripe"
if stripes_full 6 $NODES; then fail "no stripe is degraded: the scenario did not happen"; fi

STEP=return
"$CC" -q start "$C" "$victim" --timeout 60 || die "start $victim failed"
wait_for 60 stripes_full 6 $NODES || die "stripes still degraded 60 s after $victim returned: $(per_stripe $NODES | awk '$1 != 6' | head -5)"
wait_for 30 rebuild_settled || fail "no 'rebuild complete' in ckpt-meta's log"
grep -h "rebuild complete" "$C/logs/meta.log" | tail -1 | sed 's/^.*INFO /  ckpt-meta: /'
check_files || fail "files differ after the repair"

STEP=redundancy
read -r a b <<<"$others"
"$CC" -q kill "$C" "$a" || die "kill $a failed"
"$CC" -q kill "$C" "$b" || die "kill $b failed"
check_files || fail "files differ with $a and $b dead (repair incomplete?)"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_return" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

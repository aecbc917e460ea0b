#!/bin/bash
# test_fail_three.sh - issue 8: more than m failures.  With three of nine
# nodes dead (ec 4+2, m = 2) a file whose layout uses all three cannot be
# decoded: its reads fail with EIO, never with wrong bytes; every other
# file reads bit-exact and new files can still be written (six domains
# left).  When the nodes come back, every file reads bit-exact again.
# out_after is long: this is about reading through the outage, not rebuild.
# 9 nodes, ec 4+2, 64 KiB chunks, down_after 1 s, out_after 10 min.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-three.XXXXXX) || exit 1
C="$T/c"
fl_setup

STEP=up
"$CC" -q up "$C" --nodes 9 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=600s --timeout 60 || die "cluster did not start"
STEP=write
sizes=()
for i in $(seq 20); do sizes+=($((100000 + i * 7919))); done
make_files "${sizes[@]}" || die "writing failed"

STEP=kill3
off=$(log_lines "$C/logs/meta.log")
for n in node2 node5 node8; do "$CC" -q kill "$C" "$n" || die "kill $n failed"; done
wait_for 30 log_since "$C/logs/meta.log" "$off" "\(node8, [^)]*\) is DOWN" || fail "node8 never DOWN"
eio=0 good=0
for f in "$T"/src/*; do
    b=$(basename "$f")
    if timeout 60 cat "$C/mnt/$b" >"$T/out" 2>/dev/null; then
        cmp -s "$f" "$T/out" && good=$((good + 1)) || fail "$b: wrong bytes with 3 nodes dead"
    else
        eio=$((eio + 1))
    fi
done
say "with 3 of 9 nodes dead: $good file(s) readable, $eio unreadable (EIO)"
[ $good -gt 0 ] || fail "no file readable with 3 nodes dead"
ls "$C/mnt" >/dev/null || fail "readdir failed"
head -c 500000 /dev/urandom >"$T/src/new" && cp "$T/src/new" "$C/mnt/new" && sync "$C/mnt/new" ||
    fail "writing a new file failed with 3 nodes dead"

STEP=return
for n in node2 node5 node8; do "$CC" -q start "$C" "$n" --timeout 60 || die "start $n failed"; done
wait_for 30 ups_since "$C/logs/meta.log" "$off" 3 || fail "nodes not UP again"
check_files || fail "files differ after the nodes came back"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_three" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

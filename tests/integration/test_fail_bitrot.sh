#!/bin/bash
# test_fail_bitrot.sh - issue 8: bytes flipped inside data chunk files on
# three nodes.  A read never returns the bad bytes: the node's crc check
# fails the chunk, the client decodes the stripe from the others; the node
# reports the bad chunk to ckpt-meta (DEGRADED), which plans a REPAIR task,
# and the node rewrites the chunk from the survivors.  Checks: reads
# bit-exact (through a fresh mount, so nothing comes from the page cache),
# every corrupted chunk file rewritten, a second read through another fresh
# mount finds no bad crc any more.  Only data chunks are corrupted: parity
# is read only for degraded stripes (bad parity is found by a scrub, issue
# 10, which reuses the same report and REPAIR task).
# 6 nodes, ec 4+2, 64 KiB chunks.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-bitrot.XXXXXX) || exit 1
C="$T/c"
fl_setup
NODES="node1 node2 node3 node4 node5 node6"

STEP=up
# -o local: the mount reads same-host chunks from the nodes' files, so the
# client's own crc check and its fallback to CHUNK_READ are exercised too.
"$CC" -q up "$C" --nodes 6 --ec 4+2 --chunk 64K -o local --timeout 60 || die "cluster did not start"
STEP=write
make_files 1500000 400000 || die "writing failed"

STEP=corrupt
: >"$T/bad"
for n in node1 node3 node5; do
    f=$(find "$C/$n" -path '*/chunks/*' -type f -name '*.000[0-3]' -size +8k | head -1)
    [ -n "$f" ] || die "no chunk file with data on $n"
    printf '\xde\xad\xbe\xef' | dd of="$f" bs=1 seek=4200 conv=notrunc status=none || die "dd"
    echo "$f $(sha256sum <"$f" | cut -c1-64)" >>"$T/bad"
done

STEP=read
"$CC" -q stop "$C" ckptfs || die "unmount failed"
"$CC" -q start "$C" ckptfs || die "remount failed"
check_files || fail "a read returned wrong bytes with corrupted chunks"
# The mount reads same-host chunks from the nodes' files and checks their
# crc itself: the corrupted ones failed it and were read through their
# nodes, which found them bad and reported them (checked below).
reads() { getfattr -n user.ckptfs.reads --only-values "$C/mnt" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
[ "$(reads chunks_local)" -gt 0 ] && [ "$(reads local_fallbacks)" -ge 3 ] ||
    fail "same-host reads: chunks_local $(reads chunks_local), local_fallbacks $(reads local_fallbacks) (want > 0, >= 3)"
# Only the first chunks of each target are located by asking the node;
# after that the mount knows the target's chunks/ directory and reads the
# files itself, checking the header as the node would.
[ "$(reads chunks_located)" -lt $(($(reads chunks_local) / 2)) ] ||
    fail "same-host reads asked the node for most chunks: chunks_located $(reads chunks_located), chunks_local $(reads chunks_local)"

STEP=repair
rewritten() {
    local f h
    while read -r f h; do
        [ -f "$f" ] && [ "$(sha256sum <"$f" | cut -c1-64)" != "$h" ] || return 1
    done <"$T/bad"
}
wait_for 60 rewritten || fail "corrupted chunks were not rewritten: $(cat "$T/bad")"
wait_for 30 rebuild_settled || fail "no 'rebuild complete' in ckpt-meta's log"
grep -h "bad crc reported" "$C"/logs/node*.log | sed 's/^.*WARN /  /' | head -3
before=$(cat "$C"/logs/node*.log | grep -c "bad crc reported")

STEP=reread
"$CC" -q stop "$C" ckptfs || die "unmount failed"
"$CC" -q start "$C" ckptfs || die "remount failed"
check_files || fail "files differ after the repair"
stripes_full 6 $NODES || fail "stripes without 6 chunks after the repair"
after=$(cat "$C"/logs/node*.log | grep -c "bad crc reported")
[ "$before" = "$after" ] || fail "bad crc reported again after the repair ($before -> $after)"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_bitrot" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

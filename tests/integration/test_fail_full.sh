#!/bin/bash
# test_fail_full.sh - issue 8: full targets.  7 nodes, ec 4+2 (width 6),
# 1 MiB chunks; node1's target is a 20 MiB tmpfs, node2's a 56 MiB one,
# the others sit on the test's disk.
#   fill      4 MiB files are written until both small targets are full:
#             every write succeeds (a chunk refused for space before
#             ckpt-meta knew is written degraded and recorded for repair),
#             and once ckpt-meta knows the first one is full, new files are
#             placed on the six others;
#   nospace   with two of seven targets full no file of width 6 can be
#             placed: creating one fails with ENOSPC (a clear error, no
#             crash; the layout is chosen at create, so even an empty file
#             is refused), and only then;
#   intact    every file that was written (closed without error) reads
#             back bit-exact, and the daemons are still running;
#   reclaim   deleting files frees space on node1/node2 (deletion queue),
#             new files can be written again, and the stripes written
#             degraded are repaired (every stripe back at 6 chunks).  (A
#             repair whose target stays full is rebuilt elsewhere when the
#             file has a free failure domain: check_meta_rebuild.)
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
[ "$(id -u)" = 0 ] || { echo "skip: needs root to mount tmpfs targets"; exit 77; }
T=$(mktemp -d /tmp/ckptfs-test-fail-full.XXXXXX) || exit 1
C="$T/c"
SMALL=""
full_cleanup() {
    [ -n "${C:-}" ] && [ -f "$C/cluster.state" ] && "$CC" -q down "$C" --timeout 5 >/dev/null 2>&1
    local d
    for d in $SMALL; do umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null; done
}
fl_setup
trap 'rc=$?; full_cleanup; (exit $rc); fl_cleanup' EXIT

STEP=up
# Targets are DIR/NODE/t0; ckpt-cluster up keeps a directory that exists.
for n in node1:20m node2:56m; do
    d="$C/${n%%:*}/t0"
    mkdir -p "$d" || die "mkdir $d"
    mount -t tmpfs -o "size=${n#*:}" ckptfs-test "$d" || die "cannot mount a tmpfs at $d"
    SMALL="$SMALL $d"
done
"$CC" -q up "$C" --nodes 7 --ec 4+2 --chunk 1M --set node.reserve=0 --timeout 60 ||
    die "cluster did not start"
pids() { awk '/^(meta|node[0-9]+) / { print $0 }' "$C/cluster.state" 2>/dev/null; }
ino_of() { stat -c %i "$C/mnt/$1"; }
# on_node NODE FILE: FILE has a chunk on NODE.
on_node() { chunk_keys "$1" | awk -F/ -v i="$(printf '%x' "$(ino_of "$2")")" -v d="$(ino_of "$2")" '$1 == i || $1 == d { f = 1 } END { exit !f }'; }
mkdir -p "$T/src"

STEP=fill
n=0
wrote() { # FILE: write 4 MiB through the mount, keep the source
    head -c $((4 << 20)) /dev/urandom >"$T/src/$1" || return 1
    dd if="$T/src/$1" of="$C/mnt/$1" bs=1M conv=fsync status=none 2>"$T/dd.err"
}
avail() { df -B1 --output=avail "$C/$1/t0" | tail -1; }
full() { [ "$(avail "$1")" -lt $((1 << 20)) ]; }
# Every file of width 6 on 7 nodes lands on node1 or node2 (or both), so
# both fill as 4 MiB files go in; which one first depends on placement's
# weighting by free space.  Once one is full, files created a heartbeat
# later (ckpt-meta learns usage from heartbeats) must avoid it; once both
# are, creating a file fails with ENOSPC.
# meta_knows_full NODE: ckpt-meta's map (heartbeats) says NODE's target is full.
meta_knows_full() {
    "$BIN/ckpt-admin" -c "$C/ckptfs.conf" status --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(t["node"] == sys.argv[1] and t["free"] < (1 << 20) for t in d["targets"]) else 1)' "$1"
}
first="" avoided=0 nospace=0
while [ $n -lt 300 ]; do
    n=$((n + 1))
    if [ -z "$first" ]; then
        if full node1; then first=node1; elif full node2; then first=node2; fi
        if [ -n "$first" ]; then
            say "$first full after $((n - 1)) files"
            wait_for 10 meta_knows_full "$first" || fail "ckpt-meta does not know $first is full"
        fi
    fi
    if ! wrote "f$n"; then
        rm -f "$T/src/f$n" "$C/mnt/f$n"
        if grep -q "No space left on device" "$T/dd.err"; then
            nospace=1
            break
        fi
        fail "write of f$n failed, but not with ENOSPC: $(cat "$T/dd.err")"
        continue
    fi
    if [ -n "$first" ]; then
        if on_node "$first" "f$n"; then
            fail "f$n was placed on $first, known to ckpt-meta as full"
        else
            avoided=$((avoided + 1))
        fi
    fi
done
[ -n "$first" ] || fail "neither small target filled up in $n files"
[ "$avoided" -ge 1 ] || fail "no file was written between the first and the second full target"

STEP=nospace
[ $nospace = 1 ] || fail "no ENOSPC after $n files"
say "f$n: $(head -1 "$T/dd.err" | sed 's/^dd: //'); $avoided file(s) checked to avoid the full $first"
# ENOSPC is right only when no 6 failure domains have room for a chunk.
for nd in node1 node2; do
    [ "$(avail "$nd")" -lt $((2 << 20)) ] || fail "ENOSPC while $nd still has $(avail "$nd") bytes"
done
n=$((n - 1))

STEP=intact
while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) is not running"
done < <(pids | awk '{ print $1, $2 }')
check_files || fail "files differ after the targets filled"

STEP=reclaim
for i in $(seq 1 40); do rm -f "$C/mnt/f$i" "$T/src/f$i"; done
has_room() { [ "$(df -B1 --output=avail "$C/node2/t0" | tail -1)" -gt $((8 << 20)) ]; }
wait_for 30 has_room || fail "deleting 40 files freed no space on node2"
again() { wrote "again" && cmp -s "$T/src/again" "$C/mnt/again"; }
wait_for 20 again || fail "writing after the deletion failed: $(cat "$T/dd.err")"
check_files || fail "files differ at the end"
# Stripes written degraded while a target filled up are repaired once it
# has room again (failed repairs back off, 2 s .. 30 s).
NODES7="node1 node2 node3 node4 node5 node6 node7"
wait_for 90 stripes_full 6 $NODES7 ||
    fail "stripes without 6 chunks: $(per_stripe $NODES7 | awk '$1 != 6' | head -5 | tr '\n' ' ')"

[ "$FAILS" = 0 ] && echo "test_fail_full: ok" || { echo "test_fail_full: $FAILS failure(s)"; exit 1; }

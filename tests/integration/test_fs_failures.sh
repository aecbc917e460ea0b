#!/bin/bash
# test_fs_failures.sh - ckptfs reads and writes around dead storage nodes
# (issue 5), against the real ckpt-meta and six ckpt-node on loopback
# (ckpt-cluster, layout 4+2, 1 MiB chunks) and a second mount.
#
#   kill1     kill -9 one node: every file reads back bit-exact at once
#             (before ckpt-meta has even declared the node DOWN)
#   kill2     kill -9 a second node: still bit-exact
#   kill3     kill -9 a third: files whose stripes span every target fail
#             with EIO, quickly; no read returns wrong bytes; nothing hangs
#   restart   the three nodes come back; everything reads bit-exact again
#   writing   a node is killed in the middle of a 120 MiB write (and fsync):
#             the write succeeds and reads back bit-exact on the other
#             mount; a new file written while the node is dead too
#   meta      ckpt-meta is killed -9 and restarted: both mounts read and
#             write at once (before the nodes heartbeat to the new ckpt-meta)
#
# Every wait polls a condition with a deadline (no bare sleeps); every read
# that may hang runs under timeout(1).  The EXIT trap unmounts the second
# mount, stops the cluster, and removes the temp dir only when nothing is
# left mounted under it.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
T=$(mktemp -d /tmp/ckptfs-test-fs-failures.XXXXXX) || exit 1
C=$T/cluster
M=$C/mnt
M2=$T/mnt2
M2PID=
FAILS=0
STEP=""

say() { STEP=$1; shift; printf '== %s: %s\n' "$STEP" "$*"; }
fail() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; FAILS=$((FAILS + 1)); }
die() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; exit 1; }
mounted() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
}
gone() { ! kill -0 "$1" 2>/dev/null; }

cleanup() {
    set +e
    if mounted "$M2"; then fusermount3 -u "$M2" 2>/dev/null || umount -l "$M2"; fi
    if [ -n "$M2PID" ]; then
        wait_for 10 gone "$M2PID" || kill -9 "$M2PID" 2>/dev/null
        wait "$M2PID" 2>/dev/null
    fi
    [ -d "$C" ] && "$CC" -q down "$C" >/dev/null 2>&1
    if ! mounted "$M" && ! mounted "$M2"; then rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sha() { sha256sum <"$1" | cut -d' ' -f1; }
# node_state NAME: its state in the cluster map (UP, DOWN, ...).
# (ckpt-cluster status --json prints one node per line.)
node_state() { "$CC" status "$C" --json 2>/dev/null | grep "\"name\": \"$1\"" |
    sed -n 's/.*"state": "\([A-Z]*\)".*/\1/p'; }
ndown() { [ "$("$CC" status "$C" --json 2>/dev/null | grep -c '"state": "DOWN"')" -ge "$1" ]; }
is_up() { [ "$(node_state "$1")" = UP ]; }

# check_all WHERE: every file reads back bit-exact on mount WHERE.
check_all() {
    local f got
    for f in $FILES; do
        got=$(timeout 60 sha256sum <"$1/$f" 2>/dev/null | cut -d' ' -f1)
        [ "$got" = "$(cat "$T/sum.$f")" ] || fail "$f does not read back on $1 (${got:-error})"
    done
}

say setup "cluster of 6 nodes and two mounts; files of 1 B to 64 MiB"
"$CC" -q up "$C" --timeout 60 || die "ckpt-cluster up failed"
mkdir -p "$M2"
"$BIN/ckptfs" -f -o "conf=$C/ckptfs.conf,log_file=$T/mnt2.log" "$M2" &
M2PID=$!
wait_for 20 mounted "$M2" || die "second mount did not appear"
wait_for 20 stat "$M2/." >/dev/null || die "second mount does not answer"
FILES=""
for s in 1 $(((1 << 20) + 1)) $(((4 << 20) + 1)) $((20 << 20)) $((64 << 20)); do
    head -c "$s" /dev/urandom >"$T/src"
    sha "$T/src" >"$T/sum.f$s"
    cp "$T/src" "$M/f$s" || fail "write f$s"
    FILES="$FILES f$s"
done
rm -f "$T/src"
check_all "$M2"

say kill1 "one node killed"
"$CC" -q kill "$C" node1 || die "kill node1"
t0=$SECONDS
check_all "$M2"
check_all "$M"
[ $((SECONDS - t0)) -lt 60 ] || fail "degraded reads took $((SECONDS - t0)) s"

say kill2 "two nodes killed"
"$CC" -q kill "$C" node2 || die "kill node2"
check_all "$M2"
wait_for 30 ndown 2 || fail "ckpt-meta did not mark the killed nodes DOWN"
check_all "$M"

say kill3 "three nodes killed: EIO, quickly"
"$CC" -q kill "$C" node3 || die "kill node3"
for f in f$((20 << 20)) f$((64 << 20)); do
    t0=$SECONDS
    out=$(timeout 60 cat "$M2/$f" 2>&1 >/dev/null)
    rc=$?
    [ $rc = 124 ] && fail "reading $f hung"
    [ $rc = 0 ] && fail "reading $f succeeded with 3 of 6 nodes dead"
    case "$out" in *"Input/output error"*) ;; *) fail "reading $f: '$out' (want EIO)" ;; esac
    [ $((SECONDS - t0)) -lt 30 ] || fail "EIO for $f took $((SECONDS - t0)) s"
done
# Whatever still reads must read right (small files may avoid the dead nodes).
for f in $FILES; do
    got=$(timeout 60 sha256sum <"$M/$f" 2>/dev/null | cut -d' ' -f1)
    [ -z "$got" ] || [ "$got" = "$(cat "$T/sum.$f")" ] || fail "$f read WRONG bytes"
done

say restart "the three nodes come back"
for n in node1 node2 node3; do "$CC" -q start "$C" "$n" || fail "start $n"; done
for n in node1 node2 node3; do wait_for 30 is_up "$n" || fail "$n not UP again"; done
check_all "$M2"

say writing "a node killed in the middle of a write"
head -c $((120 << 20)) /dev/urandom >"$T/w"
sha "$T/w" >"$T/sum.w"
(dd if="$T/w" of="$M/w" bs=1M conv=fsync status=none; echo $? >"$T/w.rc") &
WPID=$!
size_over() { [ "$(stat -c %s "$M/w" 2>/dev/null || echo 0)" -ge $((30 << 20)) ]; }
wait_for 60 size_over || fail "the writer did not get going"
"$CC" -q kill "$C" node4 || die "kill node4"
wait_for 120 gone "$WPID" || fail "the writer hangs"
wait "$WPID" 2>/dev/null
[ "$(cat "$T/w.rc" 2>/dev/null)" = 0 ] || fail "the write failed (dd status $(cat "$T/w.rc" 2>/dev/null))"
FILES="w"
check_all "$M2"
head -c $((9 << 20 | 123)) /dev/urandom >"$T/w2"
sha "$T/w2" >"$T/sum.w2"
cp "$T/w2" "$M/w2" || fail "write with a node dead"
FILES="w w2"
check_all "$M2"
check_all "$M"
grep -q "written degraded" "$C/logs/ckptfs.log" || fail "no degraded stripe was logged"

say meta "ckpt-meta killed -9 and restarted"
"$CC" -q kill "$C" meta || die "kill meta"
"$CC" -q start "$C" meta || die "start meta"
check_all "$M"
check_all "$M2"
head -c $((6 << 20 | 77)) /dev/urandom >"$T/w3"
sha "$T/w3" >"$T/sum.w3"
cp "$T/w3" "$M/w3" || fail "write after the restart"
FILES="w w2 w3"
check_all "$M2"

if [ "$FAILS" -gt 0 ]; then
    echo "--- ckptfs logs"; grep -v ' INFO ' "$C/logs/ckptfs.log" "$T/mnt2.log" 2>/dev/null | tail -30
    echo "$FAILS failure(s)"
    exit 1
fi
echo "all passed"

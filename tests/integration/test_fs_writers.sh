#!/bin/bash
# test_fs_writers.sh - many writers and close-to-open visibility between two
# mounts of one cluster (issue 5; DESIGN.md "Visibility"), against the real
# ckpt-meta and six ckpt-node on loopback (ckpt-cluster, 4+2, 1 MiB chunks).
#
#   eight     8 processes write 8 files at once; a reader on the second
#             mount opens each file while it is still being written and
#             must get the whole file (ckpt-meta holds its open until the
#             writer's close has flushed everything)
#   held      deterministic version: a writer stops half-way with the file
#             open; the second mount's open is seen blocked in openat(2);
#             the writer finishes and closes; the reader gets every byte
#   parallel  4 threads of one process write disjoint ranges of one file
#             (parallel direct writes) - the file reads back bit-exact
#   fsync     a file is written and fsync()ed, then the writing mount is
#             killed -9 before it could close: once ckpt-meta expires that
#             session, the other mount reads every fsync()ed byte
#
# Every wait polls a condition with a deadline (no bare sleeps).  The EXIT
# trap unmounts, stops the cluster, and removes the temp dir only when
# nothing is left mounted under it.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
T=$(mktemp -d /tmp/ckptfs-test-fs-writers.XXXXXX) || exit 1
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
    exec 3>&- 2>/dev/null
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
exists() { [ -e "$1" ]; }
# in_open PID: PID is blocked in openat(2) (x86_64 syscall 257).
in_open() { [ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = 257 ]; }

# The second mount reads every chunk through its node (-o nolocal; the
# first one reads this host's chunks from the files), as a mount on another
# machine would.
say setup "cluster of 6 nodes and two mounts"
"$CC" -q up "$C" --timeout 60 || die "ckpt-cluster up failed"
mkdir -p "$M2"
"$BIN/ckptfs" -f -o "conf=$C/ckptfs.conf,log_file=$T/mnt2.log,nolocal" "$M2" &
M2PID=$!
wait_for 20 mounted "$M2" || die "second mount did not appear"
wait_for 20 stat "$M2/." >/dev/null || die "second mount does not answer"

# ---- eight writers ---------------------------------------------------------------
say eight "8 writers, readers on the other mount open each file mid-write"
W=()
for i in 1 2 3 4 5 6 7 8; do
    head -c $((20 << 20 | i * 12345)) /dev/urandom >"$T/src$i"
    sha "$T/src$i" >"$T/sum$i"
done
for i in 1 2 3 4 5 6 7 8; do
    dd if="$T/src$i" of="$M/w$i" bs=256K status=none &
    W[i]=$!
done
R=()
for i in 1 2 3 4 5 6 7 8; do
    wait_for 30 exists "$M2/w$i" || fail "w$i never appeared on the second mount"
    (sha256sum <"$M2/w$i" | cut -d' ' -f1 >"$T/got$i") &
    R[i]=$!
done
for i in 1 2 3 4 5 6 7 8; do wait "${W[i]}" || fail "writer $i failed"; done
for i in 1 2 3 4 5 6 7 8; do
    wait_for 60 gone "${R[i]}" || { fail "reader $i hangs"; kill -9 "${R[i]}"; }
    [ "$(cat "$T/got$i" 2>/dev/null)" = "$(cat "$T/sum$i")" ] ||
        fail "the second mount saw w$i incomplete or wrong"
    # And a fresh open after close, on both mounts.
    [ "$(sha "$M2/w$i")" = "$(cat "$T/sum$i")" ] && [ "$(sha "$M/w$i")" = "$(cat "$T/sum$i")" ] ||
        fail "w$i does not read back"
done
rm -f "$T"/src? "$T"/got?

# ---- an open held by a writer ----------------------------------------------------------
say held "the other mount's open waits for the writer's close"
head -c $((24 << 20)) /dev/urandom >"$T/hsrc"
head -c $((10 << 20)) "$T/hsrc" >"$T/h1"
tail -c +$(((10 << 20) + 1)) "$T/hsrc" >"$T/h2"
exec 3>"$M/held" || die "open for writing"
cat "$T/h1" >&3 || fail "first half"
sha256sum "$M2/held" >"$T/hgot" 3>&- & # (must not inherit the writer's fd)
RP=$!
wait_for 20 in_open "$RP" || fail "the reader's open was not held (file visible before close)"
cat "$T/h2" >&3 || fail "second half"
exec 3>&-
wait_for 60 gone "$RP" || { fail "the reader stays blocked after the close"; kill -9 "$RP"; }
wait "$RP" || fail "the reader failed"
[ "$(cut -d' ' -f1 "$T/hgot")" = "$(sha "$T/hsrc")" ] || fail "the reader did not get the whole file"

# ---- parallel writes to one file ---------------------------------------------------------
say parallel "4 threads writing one file"
head -c $((32 << 20)) /dev/urandom >"$T/psrc"
truncate -s $((32 << 20)) "$M/par" || fail "truncate"
for t in 0 1 2 3; do
    # Thread t writes every 4th MiB, starting at MiB t.
    (for b in $(seq "$t" 4 31); do
        dd if="$T/psrc" of="$M/par" bs=1M skip="$b" seek="$b" count=1 conv=notrunc status=none || exit 1
    done) &
    W[t]=$!
done
for t in 0 1 2 3; do wait "${W[t]}" || fail "parallel writer $t failed"; done
[ "$(sha "$M/par")" = "$(sha "$T/psrc")" ] || fail "parallel writes on the writing mount"
[ "$(sha "$M2/par")" = "$(sha "$T/psrc")" ] || fail "parallel writes on the other mount"

# ---- fsync survives the death of the writer's mount -------------------------------------
say fsync "fsync()ed data outlives the writing mount"
head -c $((50 << 20 | 777)) /dev/urandom >"$T/fsrc"
exec 3>"$M/synced" || die "open"
dd if="$T/fsrc" bs=1M status=none >&3 || fail "write"
perl -e 'use IO::Handle; my $h = IO::Handle->new_from_fd(3, "w") or exit 1; $h->sync or exit 1;' ||
    fail "fsync"
"$CC" -q kill "$C" ckptfs || die "kill the writing mount"
exec 3>&- 2>/dev/null
wait_for 60 exists "$M2/synced" || fail "file missing on the other mount"
got=$(timeout 90 sha256sum <"$M2/synced" | cut -d' ' -f1)
[ "$got" = "$(sha "$T/fsrc")" ] || fail "fsync()ed data lost with the writing mount (${got:-error})"

# reads STAT: the value of STAT in a mount's read counters.
reads() { getfattr -n user.ckptfs.reads --only-values "$1" 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'; }
[ "$(reads "$M2" chunks_local)" = 0 ] && [ "$(reads "$M2" stripes_loaded)" -gt 0 ] ||
    fail "the nolocal mount: chunks_local $(reads "$M2" chunks_local), stripes_loaded $(reads "$M2" stripes_loaded)"

if [ "$FAILS" -gt 0 ]; then
    echo "--- ckptfs logs"; grep -v ' INFO ' "$C/logs/ckptfs.log" "$T/mnt2.log" 2>/dev/null | tail -30
    echo "$FAILS failure(s)"
    exit 1
fi
echo "all passed"

#!/bin/bash
# bench_fs.sh - ckptfs data-path throughput, next to the same work on the
# local filesystem (the disk the targets live on) and on nullfs, a FUSE
# filesystem that stores nothing (the FUSE ceiling), measured in one run.
#
#   (a) writer blocked time: 4 processes writing 1 GiB each (dd bs=1M), and
#       one process writing one 4 GiB file: from the first write until the
#       last writer's close() returned (ckptfs: the second checkpoint after
#       the mount; the first one is shown too)
#   (b) time until fsync() says it is all safe: (a), then fsync of every
#       file (local: fsync to the disk; ckptfs: every stripe acknowledged
#       and CHUNK_SYNCed on its targets, with the parity the disk also has
#       to absorb)
#   (c) restore read throughput, caches dropped (4 readers, and 1 reader),
#       with the mount's defaults (chunks of this host's nodes read from
#       their files, mount.ckptfs(8) -o local); the same reads through a
#       second mount with -o nolocal (every chunk through its node over
#       TCP, the path of chunks on other hosts) are shown below them
#   (d) degraded read throughput with one node killed -9, caches dropped
#   and the peak resident memory of the ckptfs client against dirty_limit.
#   For (c) and (d) also the CPU time the cluster's processes used per GiB
#   read: on this 2-core machine shared with other work, the local
#   filesystem's cold read swung between 1.2 and 2.9 GB/s from one run to
#   the next (2026-11-23, load 17-20), so wall-clock ratios need several
#   runs, while the CPU per GiB moved by a quarter at most.  The load
#   average is printed at the start and the end.
#
# Cluster: ckpt-cluster, 6 nodes on loopback, 4+2, 1 MiB chunks, every
# target on the same disk as the local-filesystem runs.  Each phase starts
# when the cluster is quiet (no ckpt-* CPU for a moment) after a sync.
#
# usage: tests/bench/bench_fs.sh            (BIN, TESTBIN from make bench)
#   BENCH_GIB=1      size of each of the 4 files (and a quarter of the big one)
#   BENCH_DIRTY=6G   dirty_limit of the mount
#   BENCH_OPTS=...   extra -o options for ckptfs (e.g. io=cached, nosplice)
# Prints a table; exits 0 unless something failed to run.  Not a test: the
# numbers are reported, not judged (the targets are shown beside them).
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}" "${TESTBIN:=build/tests}"
BIN=$(realpath "$BIN")
TESTBIN=$(realpath "$TESTBIN")
GIB=${BENCH_GIB:-1}
DIRTY=${BENCH_DIRTY:-6G}
EXTRA=${BENCH_OPTS:-}
CC="$BIN/ckpt-cluster"
T=$(mktemp -d /var/tmp/ckptfs-bench.XXXXXX) || exit 1
C=$T/cluster
NULL=$T/null
LOCAL=$T/local
RMT=$T/remote
NPID=
RPID=
MONPID=

mounted() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}
cleanup() {
    set +e
    [ -n "$MONPID" ] && kill "$MONPID" 2>/dev/null
    if mounted "$NULL"; then fusermount3 -u "$NULL" 2>/dev/null || umount -l "$NULL"; fi
    [ -n "$NPID" ] && { wait_for 10 gone "$NPID" || kill -9 "$NPID"; }
    if mounted "$RMT"; then fusermount3 -u "$RMT" 2>/dev/null || umount -l "$RMT"; fi
    [ -n "$RPID" ] && { wait_for 10 gone "$RPID" || kill -9 "$RPID"; }
    [ -d "$C" ] && "$CC" -q down "$C" >/dev/null 2>&1
    mounted "$NULL" || mounted "$C/mnt" || mounted "$RMT" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
mbs() { awk -v bytes="$1" -v s="$2" 'BEGIN { printf "%.0f", bytes / s / 1e6 }'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# quiet: wait (up to 120 s) until the cluster's processes use < 5% of a core.
cluster_ticks() {
    local p s=0 f
    for p in $(pgrep -f "$C" 2>/dev/null); do
        read -ra f <"/proc/$p/stat" 2>/dev/null || continue
        s=$((s + f[13] + f[14]))
    done
    echo "$s"
}
quiet() {
    local end=$((SECONDS + 120)) a b
    sync
    while [ $SECONDS -lt $end ]; do
        a=$(cluster_ticks); sleep 1; b=$(cluster_ticks)
        [ $((b - a)) -le 5 ] && return 0
    done
    echo "note: the cluster did not go quiet" >&2
}
fsync_files() { perl -e 'use IO::Handle; for (@ARGV) { open(my $f, "+<", $_) or die "$_: $!"; $f->sync or die "fsync $_: $!"; close($f) }' "$@"; }

# write_phase DIR: (a) and (b) for 4 x GIB and 1 x 4*GIB; sets globals.
write_phase() {
    local d=$1 t0 t1 t2 pids=() i
    rm -f "$d"/w* "$d"/big
    [ "$d" = "$C/mnt" ] && quiet
    sync
    t0=$(now)
    for i in 1 2 3 4; do
        dd if=/dev/zero of="$d/w$i" bs=1M count=$((GIB * 1024)) status=none &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    fsync_files "$d"/w1 "$d"/w2 "$d"/w3 "$d"/w4
    t2=$(now)
    W4=$(secs "$t0" "$t1"); S4=$(secs "$t0" "$t2")
    [ "$d" = "$C/mnt" ] && quiet
    sync
    t0=$(now)
    dd if=/dev/zero of="$d/big" bs=1M count=$((GIB * 4096)) status=none
    t1=$(now)
    fsync_files "$d/big"
    t2=$(now)
    W1=$(secs "$t0" "$t1"); S1=$(secs "$t0" "$t2")
}

# cpu_ms_per_gib TICKS: CPU time (ms) per GiB of a phase of 4 * GIB GiB.
cpu_ms_per_gib() { awk -v t="$1" -v g=$((GIB * 4)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t * 1000 / hz / g }'; }

# read_phase DIR: (c) MB/s with 4 readers, then 1 reader; sets globals,
# and (ckptfs only) U4/U1, the CPU ms per GiB its processes used: on a
# machine shared with other work the wall clock varies by 2x from run to
# run, the CPU a read costs much less.
read_phase() {
    local d=$1 t0 t1 c0 c1 pids=() i
    drop
    c0=$(cluster_ticks)
    t0=$(now)
    for i in 1 2 3 4; do dd if="$d/w$i" of=/dev/null bs=1M status=none & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    c1=$(cluster_ticks)
    R4=$(mbs $((GIB * 4 << 30)) "$(secs "$t0" "$t1")")
    U4=$(cpu_ms_per_gib $((c1 - c0)))
    drop
    c0=$(cluster_ticks)
    t0=$(now)
    dd if="$d/big" of=/dev/null bs=1M status=none
    t1=$(now)
    c1=$(cluster_ticks)
    R1=$(mbs $((GIB * 4 << 30)) "$(secs "$t0" "$t1")")
    U1=$(cpu_ms_per_gib $((c1 - c0)))
}

echo "ckptfs bench: 4 x ${GIB} GiB and 1 x $((4 * GIB)) GiB, dirty_limit=$DIRTY, $(nproc) cores, $(uname -r)"
echo "  temp dir $T (on $(df -P "$T" | awk 'NR == 2 { print $1 }')), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- local filesystem ----------------------------------------------------------
mkdir -p "$LOCAL"
write_phase "$LOCAL"
LW4=$W4 LS4=$S4 LW1=$W1 LS1=$S1
read_phase "$LOCAL"
LR4=$R4 LR1=$R1
rm -f "$LOCAL"/*

# ---- nullfs: the FUSE ceiling ------------------------------------------------------
mkdir -p "$NULL"
"$TESTBIN/nullfs" -f "$NULL" &
NPID=$!
wait_for 20 mounted "$NULL" || { echo "nullfs did not mount" >&2; exit 1; }
write_phase "$NULL"
NW4=$W4 NS4=$S4 NW1=$W1 NS1=$S1
read_phase "$NULL"
NR4=$R4 NR1=$R1
fusermount3 -u "$NULL"
wait_for 10 gone "$NPID"

# ---- ckptfs -------------------------------------------------------------------------
"$CC" -q up "$C" -o "dirty_limit=$DIRTY${EXTRA:+,$EXTRA}" --timeout 60 || { echo "cluster failed" >&2; exit 1; }
FSPID=$(sed -n 's/^proc=ckptfs \([0-9]*\) .*/\1/p' "$C/cluster.state" | tail -1)
(peak=0; while kill -0 "$FSPID" 2>/dev/null; do
    r=$(awk '/^VmRSS/ { print $2 }' "/proc/$FSPID/status" 2>/dev/null)
    [ -n "$r" ] && [ "$r" -gt "$peak" ] && { peak=$r; echo "$peak" >"$T/rss"; }
    sleep 0.1
done) &
MONPID=$!
# First checkpoint after the mount: write-back buffers are fresh memory the
# kernel must zero as the writer first touches it.  Then a second one, in
# the state a training job is in from its second checkpoint on (buffers
# recycled): the numbers compared against the targets.
write_phase "$C/mnt"
KW4=$W4 KS4=$S4 KW1=$W1 KS1=$S1
write_phase "$C/mnt"
CW4=$W4 CS4=$S4 CW1=$W1 CS1=$S1
quiet
read_phase "$C/mnt"
CR4=$R4 CR1=$R1 CU4=$U4 CU1=$U1
XR4=- XR1=- XU4=- XU1=-
mkdir -p "$RMT"
"$BIN/ckptfs" -f -o "conf=$C/ckptfs.conf,nolocal,log_file=$T/remote.log${EXTRA:+,$EXTRA}" "$RMT" &
RPID=$!
if wait_for 20 mounted "$RMT"; then
    read_phase "$RMT"
    XR4=$R4 XR1=$R1 XU4=$U4 XU1=$U1
    fusermount3 -u "$RMT"
else
    echo "the -o nolocal mount did not come up" >&2
fi
wait_for 10 gone "$RPID" || kill -9 "$RPID"
RPID=
"$CC" -q kill "$C" node3
read_phase "$C/mnt"
DR4=$R4 DR1=$R1 DU4=$U4 DU1=$U1
PEAK=$(($(cat "$T/rss" 2>/dev/null || echo 0) / 1024))

gib4=$((GIB * 4 << 30))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
printf '%-44s %10s %10s %10s %9s %9s\n' "" local nullfs ckptfs "vs null" "vs local"
printf '%-44s %9ss %9ss %9ss %9s %9s\n' "(a) writer blocked, 4 x ${GIB} GiB (4 procs)" "$LW4" "$NW4" "$CW4" "$(ratio "$CW4" "$NW4")" "$(ratio "$CW4" "$LW4")"
printf '%-44s %9ss %9ss %9ss %9s %9s\n' "(a) writer blocked, 1 x $((4 * GIB)) GiB (1 proc)" "$LW1" "$NW1" "$CW1" "$(ratio "$CW1" "$NW1")" "$(ratio "$CW1" "$LW1")"
printf '%-44s %10s %10s %9ss %9s %9s\n' "    first checkpoint after mount, 4 procs" "" "" "$KW4" "$(ratio "$KW4" "$NW4")" ""
printf '%-44s %10s %10s %9ss %9s %9s\n' "    first checkpoint after mount, 1 proc" "" "" "$KW1" "$(ratio "$KW1" "$NW1")" ""
printf '%-44s %9ss %9ss %9ss %9s %9s\n' "(b) until fsync safe, 4 x ${GIB} GiB" "$LS4" "$NS4" "$CS4" "" "$(ratio "$CS4" "$LS4")"
printf '%-44s %9ss %9ss %9ss %9s %9s\n' "(b) until fsync safe, 1 x $((4 * GIB)) GiB" "$LS1" "$NS1" "$CS1" "" "$(ratio "$CS1" "$LS1")"
printf '%-44s %7sMB/s %7sMB/s %7sMB/s %9s %9s\n' "(c) restore read, 4 readers" "$LR4" "$NR4" "$CR4" "$(ratio "$CR4" "$NR4")" "$(ratio "$CR4" "$LR4")"
printf '%-44s %7sMB/s %7sMB/s %7sMB/s %9s %9s\n' "(c) restore read, 1 reader" "$LR1" "$NR1" "$CR1" "$(ratio "$CR1" "$NR1")" "$(ratio "$CR1" "$LR1")"
printf '%-44s %7sMB/s %10s %7sMB/s %9s %9s\n' "    through the nodes (-o nolocal), 4 readers" "$LR4" "" "$XR4" "" "$(ratio "$XR4" "$LR4")"
printf '%-44s %7sMB/s %10s %7sMB/s %9s %9s\n' "    through the nodes (-o nolocal), 1 reader" "$LR1" "" "$XR1" "" "$(ratio "$XR1" "$LR1")"
printf '%-44s %10s %10s %7sMB/s %9s %9s\n' "(d) degraded read (1 node dead), 4 readers" "" "" "$DR4" "" "$(ratio "$DR4" "$CR4") of (c)"
printf '%-44s %10s %10s %7sMB/s %9s %9s\n' "(d) degraded read (1 node dead), 1 reader" "" "" "$DR1" "" "$(ratio "$DR1" "$CR1") of (c)"
printf '%-44s %10s %10s %8sMiB %9s\n' "ckptfs peak RSS (dirty_limit $DIRTY)" "" "" "$PEAK" ""
echo
echo "targets: (a) <= 1.2 x nullfs; (b) throughput >= 0.6 x local x 4/6, i.e. time <= 2.5 x local;"
echo "         (c) >= 0.7 x local; (d) >= 0.5 x (c); RSS <= dirty_limit + 256 MiB"
b4=$(mbs "$gib4" "$CS4"); l4=$(mbs "$gib4" "$LS4")
echo "(b) as throughput: ckptfs $b4 MB/s, local $l4 MB/s, target >= $(awk -v l="$l4" 'BEGIN { printf "%.0f", 0.6 * l * 4 / 6 }') MB/s"
echo "(c)/(d) CPU of the cluster's processes per GiB read (ms): (c) $CU4 (4 readers), $CU1 (1 reader);"
echo "        -o nolocal $XU4, $XU1;"
echo "        (d) $DU4, $DU1.  Load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"

#!/bin/bash
# bench_fsmeta.sh - metadata operations through the ckptfs mount, next to
# the same work on the local filesystem, in one run:
#   create   10,000 empty files (open O_CREAT|O_EXCL + close), one process
#   stat     stat() of each of them again (attribute cache cold: new names)
#   list     one readdir + stat of all (ls -l)
#   create8  the same 10,000 split over 8 processes in 8 directories
#   unlink   removing them
# Cluster: ckpt-cluster, 6 nodes on loopback, 4+2.  The figure to beat from
# the project's brief: GlusterFS (4+2 disperse over 6 bricks, same machine)
# needs 49 s to create+stat 10,000 files.
# usage: tests/bench/bench_fsmeta.sh   (BIN from make bench; BENCH_FILES=N)
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
N=${BENCH_FILES:-10000}
CC="$BIN/ckpt-cluster"
T=$(mktemp -d /var/tmp/ckptfs-bench-meta.XXXXXX) || exit 1
C=$T/cluster
cleanup() {
    "$CC" -q down "$C" >/dev/null 2>&1
    awk -v p="$T" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
scripts/deps.sh python3 >/dev/null || exit 1
"$CC" -q up "$C" --nodes 6 --ec 4+2 --timeout 60 || { echo "cluster did not start"; exit 1; }

# phases DIR: prints "create stat list create8 unlink" in seconds.
phases() {
    python3 - "$1" "$N" <<'EOF'
import os, sys, time
from multiprocessing import Process
d, n = sys.argv[1], int(sys.argv[2])
def t(f):
    t0 = time.monotonic(); f(); return time.monotonic() - t0
a = os.path.join(d, "a"); os.mkdir(a)
def create(dirn, lo, hi):
    for i in range(lo, hi):
        os.close(os.open(os.path.join(dirn, "f%06d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
def stat_all():
    for i in range(n):
        os.stat(os.path.join(a, "f%06d" % i))
def list_all():
    with os.scandir(a) as it:
        for e in it:
            e.stat()
def create8():
    ps = []
    for p in range(8):
        dd = os.path.join(d, "b%d" % p); os.mkdir(dd)
        ps.append(Process(target=create, args=(dd, p * n // 8, (p + 1) * n // 8)))
    for p in ps: p.start()
    for p in ps: p.join()
def unlink_all():
    for i in range(n):
        os.unlink(os.path.join(a, "f%06d" % i))
r = [t(lambda: create(a, 0, n)), t(stat_all), t(list_all), t(create8), t(unlink_all)]
print(" ".join("%.3f" % x for x in r))
EOF
}
mkdir -p "$T/local" "$C/mnt/bench" || exit 1
sync
read -r lc ls ll l8 lu < <(phases "$T/local") || exit 1
read -r cc cs cl c8 cu < <(phases "$C/mnt/bench") || exit 1
row() { # name local ckptfs
    awk -v n="$1" -v l="$2" -v c="$3" -v N="$N" 'BEGIN {
        printf "  %-10s %9.2f s %9.2f s %10.0f/s %8.2fx\n", n, l, c, N / c, c / l }'
}
printf '  %d files; local = %s\n' "$N" "$(df --output=fstype "$T" | tail -1)"
printf '  %-10s %11s %11s %12s %9s\n' phase local ckptfs "ckptfs rate" "ckpt/local"
row create "$lc" "$cc"
row stat "$ls" "$cs"
row "ls -l" "$ll" "$cl"
row "create x8" "$l8" "$c8"
row unlink "$lu" "$cu"
awk -v c="$cc" -v s="$cs" -v N="$N" 'BEGIN {
    printf "  create+stat of %d files: %.1f s (GlusterFS 4+2 on this machine: 49 s for 10,000; %.0fx)\n",
           N, c + s, 49 * N / 10000 / (c + s) }'

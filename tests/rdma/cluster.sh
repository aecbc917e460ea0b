#!/bin/bash
# cluster.sh - the whole cluster over RDMA, inside the soft-RoCE guest
# (tests/rdma/guest.sh runs it; it needs rxe0 on 10.77.0.x, root and FUSE).
#
# ckpt-meta and 6 ckpt-node processes on different 10.77.0.x addresses, a
# FUSE mount, all with transport=rdma: write 48 MiB of random data (one big
# file and 64 small ones), read back bit-exact, kill -9 two nodes, drop the
# page cache, read back bit-exact again (degraded reads), and check that the
# client's connections to the nodes really ran over RDMA.
#
# Exit 0 pass, 1 fail, 77 skipped because the programs cannot run a cluster
# over RDMA yet (the reason is printed).  Every wait has a deadline; every
# process is started by ckpt-cluster and stopped by `ckpt-cluster down`.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
ADDRS=10.77.0.1,10.77.0.2,10.77.0.3,10.77.0.4,10.77.0.5,10.77.0.6,10.77.0.7
skip() { echo "cluster-rdma: SKIPPED: $*"; exit 77; }
fail() { echo "cluster-rdma: FAIL: $*"; exit 1; }
say() { echo "cluster-rdma: $*"; }

# ---- can the programs do it yet?
[ -x "$CC" ] || skip "$CC is not built"
help=$("$CC" --help 2>&1)
grep -q -- '--transport' <<<"$help" || skip "ckpt-cluster has no --transport option"
# rxe cannot route over lo, so every process must bind a 10.77.0.x address.
grep -q -- '--addrs' <<<"$help" ||
    skip "ckpt-cluster cannot bind meta and the nodes to given addresses (it uses 127.0.0.1, which soft-RoCE cannot route): it needs an option like '--addrs A1,A2,...'"
[ -e /dev/fuse ] || skip "no /dev/fuse in this guest (fuse module not loaded)"

T=$(mktemp -d /tmp/ckptfs-rdma-cluster.XXXXXX) || exit 1
D=$T/c
cleanup() {
    local rc=$?
    "$CC" -q down "$D" --timeout 5 >/dev/null 2>&1
    grep -q " $T" /proc/self/mountinfo || rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "up: meta + 6 nodes on $ADDRS, transport rdma"
timeout -k 5 300 "$CC" up "$D" --nodes 6 --ec 4+2 --chunk 1M --transport rdma \
    --addrs "$ADDRS" -o nolocal --timeout 240 || fail "ckpt-cluster up failed (logs: ckpt-cluster logs $D)"
M="$D/mnt"

say "write 48 MiB (one 32 MiB file, 64 x 256 KiB)"
head -c $((32 << 20)) /dev/urandom >"$T/big" || fail "urandom"
mkdir -p "$T/small"
for i in $(seq 1 64); do head -c $((256 << 10)) /dev/urandom >"$T/small/f$i"; done
timeout 300 cp "$T/big" "$M/big" || fail "writing big failed"
mkdir -p "$M/small" && timeout 300 cp "$T"/small/* "$M/small/" || fail "writing small files failed"
timeout 120 sync || fail "sync timed out"

check_all() { # label
    timeout 300 cmp "$T/big" "$M/big" || fail "$1: big differs"
    for i in $(seq 1 64); do
        timeout 60 cmp "$T/small/f$i" "$M/small/f$i" || fail "$1: small/f$i differs"
    done
    say "$1: 48 MiB read back bit-exact"
}
echo 3 >/proc/sys/vm/drop_caches
check_all "healthy"

# The data path must have been RDMA: ckpt-cluster status --json reports the
# transport of the mount's node connections (user.ckptfs.connections).
timeout 60 "$CC" status "$D" --json >"$T/status.json" || fail "status --json failed"
nr=$(grep -o '"transport": *"rdma"' "$T/status.json" | wc -l)
[ "$nr" -ge 6 ] ||
    fail "status --json shows $nr of 6 node connections over rdma: $(head -c 900 "$T/status.json")"
say "the mount's connections to all 6 nodes run over rdma"
# ckpt-admin status reports the same for this machine's mount.
timeout 60 env CKPTFS_CONF="$D/ckptfs.conf" "$BIN/ckpt-admin" status >"$T/admin.txt" 2>&1 ||
    fail "ckpt-admin status failed: $(cat "$T/admin.txt")"
grep -q "^mount $M: 6 node connection(s): 6 rdma, 0 tcp" "$T/admin.txt" ||
    fail "ckpt-admin status does not show 6 rdma connections: $(grep '^mount' "$T/admin.txt")"
grep -q '"transport": *"tcp"' "$T/status.json" &&
    fail "some connections fell back to tcp: $(grep -o '"transport": *"tcp"' "$T/status.json" | wc -l)"

say "kill -9 node2 and node5"
"$CC" kill "$D" node2 || fail "kill node2"
"$CC" kill "$D" node5 || fail "kill node5"
echo 3 >/proc/sys/vm/drop_caches
check_all "two nodes dead"

timeout 120 "$CC" down "$D" --timeout 10 || fail "down failed"
say "pass"
exit 0

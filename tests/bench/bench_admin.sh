#!/bin/bash
# bench_admin.sh - data movement rates of ckpt-admin (issue 10; make bench
# via scripts/bench.sh): rebalance and drain throughput next to the
# cluster's write throughput, in one run.
#
# A 6-node loopback cluster (ec 4+2, 1 MiB chunks) gets FILES files of
# SIZE_MB MiB (write rate: cp + sync through the mount); 2 empty nodes are
# added (ckpt-cluster add) and `ckpt-admin rebalance` (threshold 10%, no
# rate cap) moves chunk slots onto them; then the fullest node is drained
# (`node drain --wait`).  Every file is compared with its source at the
# end.  Reported:
#   write      = file bytes / wall time of cp + sync
#   rebalance  = chunk bytes moved / time from the request to the last
#                layout swap (ckpt-admin's own figures: REBUILD_STATUS
#                move_bytes_done, polled every 100 ms)
#   drain      = chunk bytes the node held / time from the request until
#                no file uses it and its old chunks are deleted
# Environment: FILES (default 8), SIZE_MB (default 32), BIN.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}" "${FILES:=8}" "${SIZE_MB:=32}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
A="$BIN/ckpt-admin"
T=$(mktemp -d /tmp/ckptfs-bench-admin.XXXXXX) || exit 1
C="$T/c"
cleanup() {
    "$CC" -q down "$C" --timeout 5 >/dev/null 2>&1
    awk -v p="$T" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo || rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" -v e="$3" 'BEGIN { d = e - s; printf "%.1f", (d > 0) ? b / 1048576 / d : 0 }'; }

"$CC" -q up "$C" --nodes 6 --ec 4+2 --chunk 1M --timeout 60 || { echo "cluster did not start"; exit 1; }
export CKPTFS_CONF=$C/ckptfs.conf
for i in $(seq "$FILES"); do head -c $((SIZE_MB << 20)) /dev/urandom >"$T/src$i" || exit 1; done
t0=$(now)
for i in $(seq "$FILES"); do cp "$T/src$i" "$C/mnt/f$i" || exit 1; done
sync "$C"/mnt/f* || exit 1
t1=$(now)
bytes=$((FILES * (SIZE_MB << 20)))

"$CC" -q add "$C" 2 >/dev/null || { echo "add failed"; exit 1; }
end=$((SECONDS + 30))
until "$A" df --by target --json 2>/dev/null | python3 -c '
import json,sys; t=json.load(sys.stdin)["targets"]
sys.exit(0 if len(t)==8 and sum(x["used"]>0 for x in t)==6 else 1)'; do
    [ $SECONDS -ge $end ] && { echo "usage of the 8 targets not reported"; exit 1; }
    sleep 0.2
done
plan=$("$A" rebalance --dry-run --json) || { echo "rebalance --dry-run failed"; exit 1; }
out=$("$A" rebalance --threshold 10 --timeout 300 2>/dev/null) || { echo "rebalance failed: $out"; exit 1; }
line=$(grep "rebalance done" <<<"$out")
rb_bytes=$(sed -n 's/rebalance done: \([0-9]*\) bytes moved in .*/\1/p' <<<"$line")
rb_secs=$(sed -n 's/.* bytes moved in \([0-9.]*\) s .*/\1/p' <<<"$line")
[ -n "$rb_bytes" ] && [ -n "$rb_secs" ] || { echo "no rebalance figures: $out"; exit 1; }
# Wait for the usage the nodes report to settle (old chunks deleted).
end=$((SECONDS + 30))
until "$A" df --by target --json 2>/dev/null | python3 -c '
import json,sys; t=json.load(sys.stdin)["targets"]
u=[x["used"]/x["capacity"] for x in t]; m=sum(u)/len(u)
sys.exit(0 if max(u) <= m*1.10 and min(u) >= m*0.90 else 1)'; do
    [ $SECONDS -ge $end ] && { echo "not balanced within 10% after the rebalance"; break; }
    sleep 0.5
done
spread=$("$A" df --by target --json | python3 -c '
import json,sys; t=json.load(sys.stdin)["targets"]
u=[x["used"]/x["capacity"] for x in t]; m=sum(u)/len(u)
print("%.3f..%.3f" % (min(u)/m, max(u)/m))')

victim=$("$A" df --by target --json | python3 -c '
import json,sys; t=json.load(sys.stdin)["targets"]; print(max(t, key=lambda x: x["used"])["node"])')
dr_out=$("$A" node drain "$victim" --wait --timeout 300 2>/dev/null) || { echo "drain failed: $dr_out"; exit 1; }
dr_mib=$(sed -n 's/.* drained: \([0-9.]*\) MiB moved off it in .*/\1/p' <<<"$dr_out")
dr_secs=$(sed -n 's/.* moved off it in \([0-9.]*\) s.*/\1/p' <<<"$dr_out")
for i in $(seq "$FILES"); do
    cmp -s "$T/src$i" "$C/mnt/f$i" || { echo "f$i differs after the moves"; exit 1; }
done

printf '%-40s %12s %10s\n' "6+2 nodes, ec 4+2, 1 MiB chunks" "MiB" "MiB/s"
printf '%-40s %12.1f %10s\n' "write (cp + sync, 6 nodes)" "$(awk -v b=$bytes 'BEGIN{print b/1048576}')" "$(rate $bytes $t0 $t1)"
printf '%-40s %12.1f %10s\n' "rebalance onto 2 new nodes (moved)" "$(awk -v b="$rb_bytes" 'BEGIN{print b/1048576}')" \
    "$(awk -v b="$rb_bytes" -v s="$rb_secs" 'BEGIN { printf "%.1f", (s > 0) ? b / 1048576 / s : 0 }')"
printf '%-40s %12s %10s\n' "drain $victim (held, until empty)" "${dr_mib:-?}" \
    "$(awk -v b="${dr_mib:-0}" -v s="${dr_secs:-0}" 'BEGIN { printf "%.1f", (s > 0) ? b / s : 0 }')"
printf '  rebalance planned %s; usage/mean after: %s\n' \
    "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%d moves, %.1f MiB" % (d["files"], d["bytes"]/1048576))' "$plan")" "$spread"
printf '  rebalance / write rate: %s\n' "$(awk -v b="$rb_bytes" -v s="$rb_secs" -v r="$(rate $bytes $t0 $t1)" 'BEGIN { printf "%.2f", (s > 0 && r > 0) ? b / 1048576 / s / r : 0 }')"

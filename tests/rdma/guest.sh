#!/bin/sh
# guest.sh - runs INSIDE the soft-RoCE guest (started by tests/rdma/run.sh),
# from the repository root, as root; rxe0 sits on netdev rxenet with
# 10.77.0.1-8.  Every program is wrapped in a timeout.
#
# usage: guest.sh check|test|bench|cluster|all
#   check    tests/unit/check_net.c over rdma, over auto (must pick rdma),
#            and over tcp, all on 10.77.0.1
#   cluster  tests/rdma/cluster.sh (meta + 6 nodes + FUSE mount over RDMA);
#            its exit 77 (the programs cannot do it yet) counts as skipped
#   test     check + cluster;  all: check + cluster + bench
#   bench    bench_net over rdma and over tcp on 10.77.0.1, plus the verbs
#            ceilings (ib_write_bw, ib_read_bw) when perftest is installed
# env: TESTBIN (test programs, default build/tests), BIN (build/bin)
# Prints "rdma-guest: N passed, N failed, N skipped"; exits non-zero on a failure.
MODE=${1:-check}
ADDR=10.77.0.1
B=${TESTBIN:-build/tests}
export BIN=${BIN:-build/bin}
pass=0; fail=0; skipped=0; failed=""
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}

run() { # name, command...
    name=$1; shift
    echo "--- rdma-guest: $name"
    timeout -k 5 900 "$@"
    rc=$?
    if [ $rc = 0 ]; then pass=$((pass + 1)); echo "--- ok   $name"
    elif [ $rc = 77 ]; then skipped=$((skipped + 1)); echo "--- SKIPPED $name (reason above)"
    else fail=$((fail + 1)); failed="$failed|$name"; echo "--- FAIL $name (exit $rc)"; fi
}

echo "--- rdma-guest: $(uname -r), $(nproc) vCPU; RDMA devices:"
ibv_devinfo -l 2>/dev/null || echo "(ibv_devinfo missing)"
rdma link show 2>/dev/null

do_check() {
    run "net suite over rdma (rxe0, $ADDR)" env CKPT_TEST_NET_TRANSPORT=rdma \
        CKPT_TEST_NET_ADDR=$ADDR CKPT_TEST_NET_AUTO_EXPECT=rdma $B/check_unit net
    run "net suite over auto (must pick rdma)" env CKPT_TEST_NET_TRANSPORT=auto \
        CKPT_TEST_NET_ADDR=$ADDR CKPT_TEST_NET_AUTO_EXPECT=rdma $B/check_unit net
    run "net suite over tcp (same guest)" env CKPT_TEST_NET_TRANSPORT=tcp \
        CKPT_TEST_NET_ADDR=$ADDR CKPT_TEST_NET_AUTO_EXPECT=rdma $B/check_unit net
}

do_bench() {
    rm -f /tmp/bench-ceil.txt
    run "bench_net rdma" sh -c "$B/bench_net rdma $ADDR > /tmp/bench-rdma.txt"
    run "bench_net tcp" sh -c "$B/bench_net tcp $ADDR > /tmp/bench-tcp.txt"
    cat /tmp/bench-rdma.txt /tmp/bench-tcp.txt
    for t in write read; do
        command -v ib_${t}_bw >/dev/null 2>&1 || continue
        # The verbs ceiling of this soft-RoCE: 1 MiB RDMA WRITEs/READs, one QP.
        timeout 90 ib_${t}_bw -R -d rxe0 -s 1048576 -n 200 -F >/tmp/ib-s.txt 2>&1 &
        sleep 2
        timeout 90 ib_${t}_bw -R -d rxe0 -s 1048576 -n 200 -F $ADDR >/tmp/ib-c.txt 2>&1
        wait
        ceil=$(awk '$1 == 1048576 && $4 > 0 {print $4}' /tmp/ib-c.txt | tail -1)
        [ -n "$ceil" ] || { echo "ib_${t}_bw gave no figure:"; tail -5 /tmp/ib-c.txt /tmp/ib-s.txt; }
        echo "ib_${t}_bw 1 MiB MB/s (verbs ceiling, 1 QP): ${ceil:-?}" | tee -a /tmp/bench-ceil.txt
    done
    awk -v out=/tmp/bench-table.txt '
        FNR == 1 { f++ }
        $1 == "bench_net" { v[f, $2] = $3 }
        END {
            printf "%-42s %12s %12s %8s\n", "inside the soft-RoCE guest", "rdma", "tcp", "rdma/tcp"
            n = split("rpc_small_per_s rpc_latency_us rpc_bulk_mbs rpc_read_mbs", k, " ")
            split("round trips/s, 64 in flight|latency us, 1 in flight|1 MiB request bulk MB/s (8 in flight)|1 MiB response bulk MB/s (8 in flight)", lab, "|")
            for (i = 1; i <= n; i++) {
                a = v[1, k[i]]; b = v[2, k[i]]
                printf "%-42s %12s %12s %8.2f\n", lab[i], a, b, (b > 0 ? a / b : 0)
            }
        }' /tmp/bench-rdma.txt /tmp/bench-tcp.txt | tee /tmp/bench-table.txt
    cat /tmp/bench-ceil.txt 2>/dev/null | tee -a /tmp/bench-table.txt
    mkdir -p build/rdma-vm && cp /tmp/bench-table.txt build/rdma-vm/bench-table.txt
}

do_cluster() { run "cluster over rdma (meta + 6 nodes + FUSE)" bash tests/rdma/cluster.sh; }
case "$MODE" in
check) do_check ;;
cluster) do_cluster ;;
test) do_check; do_cluster ;;
bench) do_bench ;;
all) do_check; do_cluster; do_bench ;;
*) echo "guest.sh: unknown mode $MODE"; exit 2 ;;
esac
[ -n "$failed" ] && echo "rdma-guest: failed:$failed" | tr '|' '\n  '
echo "rdma-guest: $pass passed, $fail failed, $skipped skipped"
[ $fail = 0 ]

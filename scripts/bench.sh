#!/bin/bash
# bench.sh - run every benchmark (build/tests/bench_*) and print its table
# (make bench).  BIN (programs) and TESTBIN (benchmark binaries) come from
# the Makefile.  Benchmarks run in the order of the list below (add a line
# for yours, with its arguments if it takes any); any bench_* binary not
# listed runs afterwards without arguments.  Exit status: 1 if any
# benchmark failed (the others still run).
set -u
cd "$(dirname "$0")/.." || exit 1
: "${BIN:=build/bin}" "${TESTBIN:=build/tests}"
export BIN TESTBIN
status=0
ran=" "
run() { # name [args...]
    local name=$1 b="$TESTBIN/$1"
    shift
    ran="$ran$name "
    if [ ! -x "$b" ]; then echo "== $name: not built, skipped"; return; fi
    echo "== $name"
    "$b" "$@" || { echo "   $name FAILED"; status=1; }
    echo
}

run bench_ec
run bench_net
run bench_meta
# Shell benchmarks (a whole cluster through ckpt-cluster).
for sb in tests/bench/bench_*.sh; do
    [ -f "$sb" ] || continue
    echo "== $(basename "$sb" .sh)"
    bash "$sb" || { echo "   $(basename "$sb" .sh) FAILED"; status=1; }
    echo
done

for b in "$TESTBIN"/bench_*; do
    [ -x "$b" ] || continue
    case "$ran" in *" $(basename "$b") "*) continue ;; esac
    run "$(basename "$b")"
done
exit $status

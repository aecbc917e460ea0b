#!/bin/bash
# run-integration.sh - run every tests/integration/test_*.sh in order.
# Each script gets BIN (programs) and TESTBIN (test helpers) in its
# environment, runs in its own temp dir, and must clean up after itself.
# Prints "N passed, N failed" and exits non-zero if any failed.
set -u
cd "$(dirname "$0")/.." || exit 1
: "${BIN:=build/bin}" "${TESTBIN:=build/tests}"
export BIN=$(realpath "$BIN") TESTBIN=$(realpath "$TESTBIN")
pass=0; fail=0; failed=()
shopt -s nullglob
for t in tests/integration/test_*.sh; do
    [ -n "${ONLY:-}" ] && [[ "$t" != *"$ONLY"* ]] && continue
    start=$(date +%s.%N)
    log=$(mktemp /tmp/ckptfs-itest.XXXXXX)
    if timeout -k 10 "${ITEST_TIMEOUT:-600}" bash "$t" >"$log" 2>&1; then
        pass=$((pass + 1)); res=ok
    else
        fail=$((fail + 1)); res=FAIL; failed+=("$t")
    fi
    printf '  %-4s %-50s %6.1fs\n' "$res" "$t" "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{print e-s}')"
    if [ $res = FAIL ]; then sed 's/^/      | /' "$log" | tail -60; fi
    rm -f "$log"
done
echo "integration: $pass passed, $fail failed"
[ $fail = 0 ]

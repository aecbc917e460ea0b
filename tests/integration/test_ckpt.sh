#!/bin/bash
# test_ckpt.sh - checkpoints and the ckpt CLI on a real cluster (issue 7):
# --help of every subcommand and `ckpt plan` against numbers computed here
# (no cluster); then 8 writers + commit, latest, restore --verify --to,
# EROFS in a committed checkpoint, a writer killed before commit stays
# WRITING and latest keeps the previous one; prune: --dry-run removes
# nothing, --keep never removes the newest COMMITTED, abandoned WRITING
# checkpoints go only past --min-age and only when older than the newest
# COMMITTED one; `ckpt wait` flushes a file that is still open for writing;
# a flipped byte in a chunk file: verify passes and reports the stripe it
# decoded from parity; the cluster found from the mount alone (no -c, no
# CKPTFS_CONF); two nodes killed -> DEGRADED and verify still passes, a
# third -> LOST and latest has nothing (exit 3).
# (test_ckpt_health.sh: LOST falls back to an older PROTECTED checkpoint.)
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
T=$(mktemp -d /tmp/ckptfs-test-ckpt.XXXXXX) || exit 1
C=$T/c
FAILS=0
fail() { printf 'FAIL: %s\n' "$*" >&2; FAILS=$((FAILS + 1)); }
cleanup() {
    exec 5>&-
    "$BIN/ckpt-cluster" -q down "$C" >/dev/null 2>&1
    if awk -v p="$T" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        echo "cleanup: mounts left under $T; not removing it" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
CK="$BIN/ckpt"
# wait_for SECS CMD...: poll CMD every 0.2 s until it succeeds or SECS pass.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# ---- no cluster needed: help and plan ----
for sc in commit list latest status restore verify wait prune plan; do
    h1=$($CK "$sc" --help) || fail "ckpt $sc --help: exit $?"
    h2=$($CK help "$sc") || fail "ckpt help $sc: exit $?"
    [ "$h1" = "$h2" ] || fail "ckpt $sc --help differs from ckpt help $sc"
    [[ $h1 == "usage: ckpt [GLOBAL OPTIONS] $sc"* && $h1 == *"exit codes:"* ]] ||
        fail "ckpt $sc --help: no usage line or exit codes: $h1"
    $CK --help | grep -q "^  $sc " || fail "ckpt --help does not list $sc"
done
$CK prune --help | grep -q -- "--min-age S" || fail "prune --help lacks --min-age"
$CK commit --help | grep -q "^4 timed out\|; 4 timed out" || fail "commit --help lacks exit 4"
$CK help nosuch >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "ckpt help nosuch: exit $rc, want 2"

# Young/Daly by hand: 1e12 B over 100 nodes x 2 GB/s -> C = 5 s; MTBF
# 1000 h / 100 nodes -> M = 36000 s; Young sqrt(2CM) = 600 s; Daly
# 600 * (1 + sqrt(5/72000)/3 + 5/72000/9) - 5 = 596.67 s; overhead
# 5/601.67 + 601.67/72000 = 1.67 %.
out=$($CK plan --size 1e12 --nodes 100 --mtbf-hours 1000 --write-gbps 2) || fail "plan: exit $?"
want=$(python3 -c '
import math
C = 1e12 / (2e9 * 100); M = 1000 * 3600 / 100
y = math.sqrt(2 * C * M)
d = y * (1 + math.sqrt(C / (2 * M)) / 3 + C / (2 * M) / 9) - C
o = C / (d + C) + (d + C) / (2 * M)
print("%.2f %.0f %.0f %.0f %.2f" % (C, M, y, d, 100 * o))')
got=$(awk -F: '/write time C/ { split($2, a, " "); c = a[1] }
               /system MTBF M/ { split($2, a, " "); m = a[1] }
               /Young interval/ { split($2, a, " "); y = a[1] }
               /Daly interval/ { split($2, a, " "); d = a[1] }
               /expected overhead/ { split($2, a, " "); sub("%", "", a[1]); o = a[1] }
               END { print c, m, y, d, o }' <<<"$out")
[ "$got" = "$want" ] || fail "plan: got '$got', computed '$want'; output: $out"
[ "$want" = "5.00 36000 600 597 1.67" ] || fail "plan: the hand computation changed: $want"
$CK plan --size 1e12 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "plan without --nodes: exit $rc, want 2"

# ---- the cluster ----
"$BIN/ckpt-cluster" -q up "$C" >/dev/null || { echo "FAIL: cluster up" >&2; exit 1; }
export CKPTFS_CONF=$C/ckptfs.conf
M=$C/mnt

# 8 writers, then commit; latest picks it; restore verifies every byte.
mkdir -p "$M/job/step-1"
for i in 0 1 2 3 4 5 6 7; do head -c 2500000 /dev/urandom >"$M/job/step-1/rank-$i.bin" & done
wait
$CK commit "$M/job/step-1" --timeout 30 || fail "commit step-1"
[ "$($CK latest "$M/job")" = "$M/job/step-1" ] || fail "latest is not step-1"
$CK restore "$M/job" --latest --verify --to "$T/out" >/dev/null || fail "restore --verify"
for i in 0 1 2 3 4 5 6 7; do
    cmp -s "$M/job/step-1/rank-$i.bin" "$T/out/rank-$i.bin" || fail "restored rank-$i differs"
done
$CK list "$M/job" --json | python3 -c 'import json,sys; l=json.load(sys.stdin); assert l[0]["state"]=="COMMITTED" and l[0]["files"]==8' || fail "list --json"

# Immutable: writes, truncates, creates and renames fail with EROFS.
out=$(sh -c "echo x >>'$M/job/step-1/rank-0.bin'" 2>&1); [[ $out == *"Read-only"* ]] || fail "append: $out"
out=$(truncate -s 0 "$M/job/step-1/rank-0.bin" 2>&1); [[ $out == *"Read-only"* ]] || fail "truncate: $out"
out=$(touch "$M/job/step-1/new" 2>&1); [[ $out == *"Read-only"* ]] || fail "create: $out"
out=$(mv "$M/job/step-1/rank-1.bin" "$M/job/" 2>&1); [[ $out == *"Read-only"* ]] || fail "rename: $out"

# A writer killed before commit: WRITING, latest still step-1.
mkdir -p "$M/job/step-2"
head -c 1000000 /dev/urandom >"$M/job/step-2/rank-0.bin"
(exec 3>"$M/job/step-2/rank-1.bin"; echo partial >&3; kill -9 $BASHPID) 2>/dev/null
$CK status "$M/job/step-2" | grep -q 'WRITING' || fail "step-2 not WRITING"
[ "$($CK latest "$M/job")" = "$M/job/step-1" ] || fail "latest after a dead writer"

# Prune.  step-3 committed after step-2 (WRITING, abandoned) and step-1.
mkdir -p "$M/job/step-3"
head -c 1000000 /dev/urandom >"$M/job/step-3/r.bin"
$CK commit "$M/job/step-3" >/dev/null || fail "commit step-3"
names() { $CK list "$M/job" --json | python3 -c 'import json,sys; print(" ".join(sorted(x["name"] for x in json.load(sys.stdin))))'; }
out=$($CK prune "$M/job" --keep 1 --dry-run) || fail "prune --dry-run: exit $?"
grep -q '^would remove step-1 ' <<<"$out" || fail "prune dry-run does not name step-1: $out"
grep -q '^keep *step-2 ' <<<"$out" || fail "dry-run would remove young WRITING step-2: $out"
[ "$(names)" = "step-1 step-2 step-3" ] || fail "dry-run removed something: $(names)"
$CK prune "$M/job" --keep 2 >/dev/null || fail "prune --keep 2"
[ "$(names)" = "step-1 step-2 step-3" ] || fail "--keep 2 removed something: $(names)"
# --keep 0 counts as 1: the newest COMMITTED (step-3) stays; step-2 is
# WRITING but younger than --min-age (default 1 h): stays.
$CK prune "$M/job" --keep 0 >/dev/null || fail "prune --keep 0"
[ "$(names)" = "step-2 step-3" ] || fail "--keep 0: left $(names), want step-2 step-3"
[ -e "$M/job/step-1" ] && fail "step-1 still in the namespace after prune"
[ "$($CK latest "$M/job")" = "$M/job/step-3" ] || fail "latest after prune is not step-3"
# A WRITING checkpoint newer than the newest COMMITTED one is being
# written: never removed, even with --min-age 0; step-2 (older) goes.
mkdir -p "$M/job/step-4"
exec 5>"$M/job/step-4/rank-0.bin"
head -c 2500000 /dev/urandom >&5
$CK prune "$M/job" --keep 1 --min-age 0 >/dev/null || fail "prune --min-age 0"
[ "$(names)" = "step-3 step-4" ] || fail "--min-age 0: left $(names), want step-3 step-4"

# ckpt wait on a file still open for writing (a partial stripe: 2.5 MB of
# a 4 MiB stripe): afterwards all 6 chunks of its stripe are on the nodes
# and hold the data (read back through a fresh mount below).
ino=$(stat -c %i "$M/job/step-4/rank-0.bin")
$CK wait "$M/job/step-4" >/dev/null || fail "ckpt wait: exit $?"
n=$(find "$C"/node* -path "*/chunks/*/$(printf %016x "$ino")/*" -type f ! -name '*.tmp*' | wc -l)
[ "$n" -eq 6 ] || fail "after ckpt wait: $n chunk files of the open file, want 6"
exec 5>&-

# A flipped byte in a data chunk of step-3: verify decodes around it and
# says so.  A fresh mount first (nothing served from memory); a clean
# verify reports no decoded stripe.
"$BIN/ckpt-cluster" -q stop "$C" ckptfs && "$BIN/ckpt-cluster" -q start "$C" ckptfs || fail "remount"
out=$($CK verify "$M/job/step-3" --jobs 1 2>&1) || fail "clean verify: exit $?: $out"
grep -q '^decoded from parity: 0 stripe' <<<"$out" || fail "clean verify: $out"
ino=$(stat -c %i "$M/job/step-3/r.bin")
chunk=$(find "$C"/node* -path "*/chunks/*/$(printf %016x "$ino")/0000000000000000.0000" -type f | head -1)
[ -n "$chunk" ] || fail "no chunk file of step-3/r.bin"
# The data of a chunk file starts at 4096 (daemon/node_chunk.h); invert one byte.
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(5096); b = f.read(1); f.seek(5096); f.write(bytes([b[0] ^ 0xff]))' "$chunk" || fail "flip"
"$BIN/ckpt-cluster" -q stop "$C" ckptfs && "$BIN/ckpt-cluster" -q start "$C" ckptfs || fail "remount"
out=$($CK verify "$M/job/step-3" --jobs 1 2>&1) || fail "verify with a flipped byte: exit $?: $out"
grep -q '^decoded from parity: [1-9][0-9]* stripe' <<<"$out" || fail "verify did not report the decode: $out"
grep -q '^r.bin: [1-9][0-9]* stripe(s) decoded from parity' <<<"$out" || fail "verify did not name r.bin: $out"
grep -q 'crc32c ok' <<<"$out" || fail "verify: $out"
# The bad chunk is reported and rewritten in the background: wait for the
# repair, or the node kills below would leave that stripe 3 chunks short.
repaired() {
    "$BIN/ckpt-admin" status --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)["rebuild"]
sys.exit(0 if r["degraded_stripes"] == 0 and r["tasks_pending"] == 0 and r["tasks_done"] > 0 else 1)'
}
wait_for 60 repaired || fail "the flipped chunk was not repaired"

# The cluster from the mount alone: no -c, no CKPTFS_CONF, also relative,
# for ckpt and ckpt-admin.
grep -q " ckptfs:$(realpath "$C/ckptfs.conf") " /proc/self/mountinfo || fail "mount source lacks the config path"
out=$(env -u CKPTFS_CONF "$CK" latest "$M/job") || fail "latest without CKPTFS_CONF: exit $?"
[ "$out" = "$M/job/step-3" ] || fail "latest without CKPTFS_CONF: $out"
out=$(cd "$M/job" && env -u CKPTFS_CONF "$CK" status step-3) || fail "relative status without CKPTFS_CONF"
grep -q COMMITTED <<<"$out" || fail "status without CKPTFS_CONF: $out"
out=$(env -u CKPTFS_CONF "$BIN/ckpt-admin" layout get "$M/job") || fail "ckpt-admin layout get without CKPTFS_CONF"
grep -q '4+2' <<<"$out" || fail "ckpt-admin layout get without CKPTFS_CONF: $out"
out=$(cd "$M" && env -u CKPTFS_CONF "$BIN/ckpt-admin" nodes) || fail "ckpt-admin nodes in the mount without CKPTFS_CONF"
out=$(cd "$T" && env -u CKPTFS_CONF "$CK" -c "$T/none.conf" latest "$M/job" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *none.conf* ]] || fail "a missing -c file: exit $rc: $out"

# Two nodes killed (4+2): DEGRADED, still verifiable; a third: LOST.
"$BIN/ckpt-cluster" -q kill "$C" node1 && "$BIN/ckpt-cluster" -q kill "$C" node2
wait_for 30 sh -c "'$CK' status '$M/job/step-3' | grep -q DEGRADED" || fail "never DEGRADED"
out=$($CK verify "$M/job/step-3" 2>&1) || fail "verify DEGRADED step-3: $out"
"$BIN/ckpt-cluster" -q kill "$C" node3
wait_for 30 sh -c "'$CK' status '$M/job/step-3' | grep -q LOST" || fail "never LOST"
$CK latest "$M/job" >/dev/null 2>&1; rc=$?
[ $rc -eq 3 ] || fail "latest with every checkpoint LOST: exit $rc, want 3"

[ $FAILS -eq 0 ] && echo "test_ckpt: ok" || echo "test_ckpt: $FAILS failure(s)"
[ $FAILS -eq 0 ]

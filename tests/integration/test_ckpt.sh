#!/bin/bash
# test_ckpt.sh - checkpoints and the ckpt CLI on a real cluster (issue 7):
# 8 writers + commit, latest, restore --verify --to, EROFS in a committed
# checkpoint, a writer killed before commit stays WRITING and latest keeps
# the previous one, prune keeps the newest COMMITTED, two nodes killed ->
# DEGRADED and restore --verify still passes, a third -> LOST.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
T=$(mktemp -d /tmp/ckptfs-test-ckpt.XXXXXX) || exit 1
C=$T/c
FAILS=0
fail() { printf 'FAIL: %s\n' "$*" >&2; FAILS=$((FAILS + 1)); }
cleanup() { "$BIN/ckpt-cluster" -q down "$C" >/dev/null 2>&1; rm -rf "$T" 2>/dev/null; }
trap cleanup EXIT
"$BIN/ckpt-cluster" -q up "$C" >/dev/null || { echo "FAIL: cluster up" >&2; exit 1; }
export CKPTFS_CONF=$C/ckptfs.conf
M=$C/mnt
CK="$BIN/ckpt"

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

# Prune: a second committed checkpoint; --keep 1 removes step-1, never step-3.
mkdir -p "$M/job/step-3"
head -c 1000000 /dev/urandom >"$M/job/step-3/r.bin"
$CK commit "$M/job/step-3" >/dev/null || fail "commit step-3"
$CK prune "$M/job" --keep 1 --dry-run | grep -q 'would remove step-1' || fail "prune dry-run"
[ -d "$M/job/step-1" ] || fail "dry-run removed something"

# Two nodes killed (4+2): DEGRADED, still restorable; a third: LOST.
"$BIN/ckpt-cluster" -q kill "$C" node1 && "$BIN/ckpt-cluster" -q kill "$C" node2
end=$((SECONDS + 30))
until $CK status "$M/job/step-1" | grep -q DEGRADED; do
    [ $SECONDS -ge $end ] && { fail "never DEGRADED"; break; }
    sleep 0.5
done
$CK verify "$M/job/step-1" >/dev/null || fail "verify DEGRADED step-1"
"$BIN/ckpt-cluster" -q kill "$C" node3
end=$((SECONDS + 30))
until $CK status "$M/job/step-1" | grep -q LOST; do
    [ $SECONDS -ge $end ] && { fail "never LOST"; break; }
    sleep 0.5
done
$CK latest "$M/job" >/dev/null; rc=$?
[ $rc -eq 3 ] || fail "latest with every checkpoint LOST: exit $rc, want 3"

[ $FAILS -eq 0 ] && echo "test_ckpt: ok" || echo "test_ckpt: $FAILS failure(s)"
[ $FAILS -eq 0 ]

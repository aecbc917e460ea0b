#!/bin/bash
# test_admin.sh - ckpt-admin on a real cluster (issue 10): status, nodes,
# df --by node|target, checkpoints, all with --json; layout get|set;
# node out starts the rebuild at once (a 7th node gives it room), the data
# stays bit-exact, the hold survives a restart of ckpt-meta, node in
# brings the node back UP; usage errors and unknown nodes give their exit
# codes.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
T=$(mktemp -d /tmp/ckptfs-test-admin.XXXXXX) || exit 1
C=$T/c
FAILS=0
fail() { printf 'FAIL: %s\n' "$*" >&2; FAILS=$((FAILS + 1)); }
cleanup() { "$BIN/ckpt-cluster" -q down "$C" >/dev/null 2>&1; rm -rf "$T" 2>/dev/null; }
trap cleanup EXIT
"$BIN/ckpt-cluster" -q up "$C" >/dev/null || { echo "FAIL: cluster up" >&2; exit 1; }
export CKPTFS_CONF=$C/ckptfs.conf
M=$C/mnt
A="$BIN/ckpt-admin"
J() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# wait_for SECS CMD...: poll a condition (no fixed sleeps in the checks).
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.5; done
}

# Data: one committed checkpoint of 4 files, one WRITING directory.
mkdir -p "$M/job/step-1" "$M/job/step-2"
for i in 0 1 2 3; do head -c 3100000 /dev/urandom >"$M/job/step-1/r$i.bin"; done
cp "$M/job/step-1/r0.bin" "$T/ref0"
"$BIN/ckpt" commit "$M/job/step-1" --timeout 30 >/dev/null || fail "commit"
for i in 0 1 2 3; do cp "$M/job/step-1/r$i.bin" "$T/r$i"; done

# status: 6 UP nodes, 1 PROTECTED + 1 WRITING checkpoint, rebuild idle.
$A status --json | J 'assert d["node_states"]["UP"]==6, d["node_states"]
assert len(d["targets"])==6 and d["capacity"]>0
assert d["checkpoints"]["PROTECTED"]==1 and d["checkpoints"]["WRITING"]==1, d["checkpoints"]
assert d["rebuild"]["state"]=="idle"' || fail "status --json"
$A status | grep -q '^nodes: 6 (6 UP' || fail "status text"
$A status | grep -q 'checkpoints: 2 (1 PROTECTED' || fail "status checkpoints line"
# This machine's mount of the cluster: its 6 node connections, over tcp
# (the files above were written and read through all of them).
$A status --json | J 'ms=[m for m in d["mounts"] if m["path"]=="'"$M"'"]
assert len(ms)==1, d["mounts"]
assert len(ms[0]["connections"])==6 and all(c["transport"]=="tcp" for c in ms[0]["connections"]), ms' ||
    fail "status --json: the mount's connections"
$A status | grep -q "^mount $M: 6 node connection(s): 0 rdma, 6 tcp" || fail "status text: mount line"

# nodes / df / checkpoints.
$A nodes --json | J 'assert len(d)==6 and all(n["state"]=="UP" and n["transport"]=="tcp" for n in d)' \
    || fail "nodes --json"
[ "$($A nodes | wc -l)" = 7 ] || fail "nodes table"
wait_for 10 sh -c "'$A' df --by target --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert sum(t[\"chunks\"] for t in d[\"targets\"])>=24' 2>/dev/null" \
    || fail "df --by target: chunks not counted"
$A df --by node --json | J 'assert len(d["nodes"])==6 and d["used"]>=4*3100000' || fail "df --by node --json"
$A df | grep -q '^cluster' || fail "df text"
$A checkpoints --json | J 'c={x["name"]:x for x in d}
assert c["step-1"]["state"]=="COMMITTED" and c["step-1"]["health"]=="PROTECTED" and c["step-1"]["files"]==4
assert c["step-2"]["state"]=="WRITING" and c["step-1"]["job"]=="job"' || fail "checkpoints --json"
$A checkpoints | grep -q '^/job/step-1 .*COMMITTED *PROTECTED' || fail "checkpoints text"

# layout get (file, inherited) and set (directory).
$A layout get "$M/job/step-1/r0.bin" --json | J 'assert (d["k"],d["m"],d["width"],d["type"])==(4,2,6,"file") and len(d["targets"])==6' \
    || fail "layout get file"
$A layout set "$M/job/step-2" ec=2+1 chunk=64K >/dev/null || fail "layout set"
mkdir "$M/job/step-2/sub"
$A layout get "$M/job/step-2/sub" --json | J 'assert (d["k"],d["m"],d["chunk_size"],d["from"])==(2,1,65536,"a parent directory")' \
    || fail "layout get inherited"
head -c 200000 /dev/urandom >"$M/job/step-2/sub/f"
$A layout get "$M/job/step-2/sub/f" --json | J 'assert (d["k"],d["m"],d["chunk_size"])==(2,1,65536)' \
    || fail "new file did not get the directory layout"
$A layout set "$M/job/step-2" ec=99+1 2>/dev/null; [ $? = 2 ] || fail "bad layout: exit code"
$A layout set "$M/job/step-1/r0.bin" ec=2+1 2>/dev/null; [ $? = 1 ] || fail "layout set on a file"
$A layout get "$M/nosuch" 2>/dev/null; [ $? = 3 ] || fail "layout get missing path"

# Usage errors and unknown nodes.
$A frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown command"
$A df --by rack 2>/dev/null; [ $? = 2 ] || fail "df --by rack"
$A node out nosuchnode 2>/dev/null; [ $? = 3 ] || fail "unknown node"

# node out: with 6 nodes and width 6 there is no new failure domain, so
# add a 7th node; the files on the node taken out move there.
"$BIN/ckpt-cluster" -q add "$C" 1 >/dev/null || fail "add node7"
victim=$($A layout get "$M/job/step-1/r0.bin" --json | J 'print(d["targets"][0])')
vnode=$($A df --by target --json | J "print([t['node'] for t in d['targets'] if t['id']==$victim][0])")
$A node out "$vnode" >/dev/null || fail "node out $vnode"
$A nodes --json | J "assert [n['state'] for n in d if n['name']=='$vnode']==['OUT']" || fail "$vnode not OUT"
moved() { ! $A layout get "$M/job/step-1/r0.bin" --json | J "assert $victim in d['targets']" 2>/dev/null; }
wait_for 60 moved || fail "r0.bin still on target $victim after node out"
wait_for 60 sh -c "'$A' status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"rebuild\"][\"tasks_pending\"]==0 and d[\"rebuild\"][\"tasks_done\"]>=1' 2>/dev/null" \
    || fail "rebuild did not finish"
$A status | grep -q 'rebuild: idle, [1-9]' || fail "status text after rebuild"
for i in 0 1 2 3; do
    cmp -s "$T/r$i" "$M/job/step-1/r$i.bin" || fail "r$i.bin differs after node out"
done
$A checkpoints --json | J 'assert [x["health"] for x in d if x["name"]=="step-1"]==["PROTECTED"]' \
    || fail "step-1 not PROTECTED after the rebuild"

# The hold survives a restart of ckpt-meta (the held node is stopped so
# that ckpt-cluster does not wait for it to be UP).
"$BIN/ckpt-cluster" -q stop "$C" "$vnode" >/dev/null || fail "stop $vnode"
"$BIN/ckpt-cluster" -q restart-meta "$C" >/dev/null || fail "restart-meta"
$A nodes --json | J "assert [n['state'] for n in d if n['name']=='$vnode']==['OUT']" \
    || fail "$vnode not OUT after restart of ckpt-meta"
# node in: UP again once it heartbeats.
$A node in "$vnode" >/dev/null || fail "node in"
"$BIN/ckpt-cluster" -q start "$C" "$vnode" >/dev/null || fail "start $vnode"
wait_for 20 sh -c "'$A' nodes --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [n[\"state\"] for n in d if n[\"name\"]==\"$vnode\"]==[\"UP\"]' 2>/dev/null" \
    || fail "$vnode not UP after node in"
$A node in "$vnode" >/dev/null || fail "node in twice"
cmp -s "$T/ref0" "$M/job/step-1/r0.bin" || fail "r0.bin differs at the end"

[ $FAILS = 0 ] && echo "test_admin: ok" || { echo "test_admin: $FAILS failure(s)" >&2; exit 1; }

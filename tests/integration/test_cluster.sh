#!/bin/bash
# test_cluster.sh - ckpt-cluster itself (issue 6).
#
# Part 1 (no working daemons needed): the command line (usage errors, exit
# statuses), the config and key a new cluster gets, and how `up` fails when
# ckpt-meta cannot start, never becomes ready, or says something else than
# "ready PORT" - using small shell programs in place of ckpt-meta (via
# CKPTFS_BIN) that fail on purpose; afterwards nothing may be left running.
#
# Part 2 (the real ckpt-meta, ckpt-node and ckptfs): up/down 10 times
# (fresh and restarted clusters) leaves no recorded process and no mount;
# a node whose target is a regular file makes `up` fail with that node's log
# lines and leaves nothing running; `down` after kill -9 of ckpt-meta cleans
# up; kill/start of a node; restart-meta; add; status --json parses.
#
# Every wait polls an explicit condition with a deadline (no bare sleeps).
# The EXIT trap runs `ckpt-cluster down` on every cluster directory made
# here and removes the temp dir only when nothing is mounted under it.
# Only processes started here (by ckpt-cluster) are ever signalled, by the
# pids and start times ckpt-cluster recorded.
set -u
cd "$(dirname "$0")/../.." || exit 1
scripts/deps.sh attr python3 >/dev/null || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
T=$(mktemp -d /tmp/ckptfs-test-cluster.XXXXXX) || exit 1
DIRS=()
FAILS=0
STEP=""

say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; FAILS=$((FAILS + 1)); }
die() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; exit 1; }

# /proc/PID/stat: state (field 3) and starttime (field 22), or nothing.
proc_state() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    local -a f
    read -ra f <<<"${s##*) }"
    echo "${f[0]} ${f[19]}"
}
# alive PID [START]: running (not a zombie) and, if given, the same start time.
alive() {
    local st
    st=$(proc_state "$1") || return 1
    set -- "$1" "${2:-}" $st
    [ "$3" != Z ] && [ "$3" != X ] && { [ -z "$2" ] || [ "$2" = "$4" ]; }
}
dead() { ! alive "$@"; }
# recorded DIR: "name pid start" of every process cluster.state records.
recorded() { sed -n 's/^proc=//p' "$1/cluster.state" 2>/dev/null | awk '$2 > 0 { print $1, $2, $3 }'; }
# mounted PATH: PATH is a mount point (mountinfo; never touches the mount).
mounted() { awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; }
# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds or SECS pass.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
}
# none_left DIR "name pid start"...: none of them alive, no pid files, no mount.
none_left() {
    local dir=$1 ok=0; shift
    local line name pid start
    for line in "$@"; do
        read -r name pid start <<<"$line"
        if alive "$pid" "$start"; then fail "$name (pid $pid) of $dir still running"; ok=1; fi
    done
    if compgen -G "$dir/run/*.pid" >/dev/null; then fail "pid files left: $(ls "$dir/run")"; ok=1; fi
    if mounted "$dir/mnt"; then fail "$dir/mnt still mounted"; ok=1; fi
    return $ok
}
# procs_under DIR: pids of running processes whose command line names DIR
# (read-only check, for failures that leave no state file to read).
procs_under() {
    local p
    for p in /proc/[0-9]*; do
        [ -r "$p/cmdline" ] || continue
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1/"; then
            alive "${p#/proc/}" && echo "${p#/proc/}"
        fi
    done
}
json_get() { # JSON-FILE PYTHON-EXPR(d)
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

cleanup() {
    local rc=$? d left=0
    trap - EXIT INT TERM
    for d in "${DIRS[@]}"; do
        [ -d "$d" ] && "$CC" -q down "$d" --timeout 5 >/dev/null 2>&1
    done
    if awk -v t="$T/" 'index($5, t) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "cleanup: mounts left under $T; not removing it" >&2
        left=1
    else
        rm -rf "$T"
    fi
    [ $rc = 0 ] && [ $left = 1 ] && rc=1
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

newdir() { local d="$T/$1"; DIRS+=("$d"); echo "$d"; }

[ -x "$CC" ] || die "$CC not built"

# ---------------------------------------------------------------- part 1
STEP="usage"
say "$STEP"
"$CC" --version | grep -q '^ckpt-cluster [0-9]' || fail "--version"
"$CC" --help | grep -q 'restart-meta' || fail "--help lists the commands"
expect_rc() { # RC CMD...: run CMD, compare its exit status
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ $got = "$want" ] || fail "'$*' exited $got, expected $want: $(head -3 "$T/err")"
}
expect_rc 2 "$CC"
expect_rc 2 "$CC" up
expect_rc 2 "$CC" frobnicate "$T/x"
expect_rc 2 "$CC" up "$T/x" --nodes 0
expect_rc 2 "$CC" up "$T/x" --transport carrier-pigeon
expect_rc 2 "$CC" up "$T/x" --bogus-option
expect_rc 2 "$CC" status "$T/x" --nodes 3
expect_rc 2 "$CC" kill "$T/x"
expect_rc 2 "$CC" up "$T/x" --set node.target=/tmp
expect_rc 2 "$CC" up "$T/x" --ec 9+9
grep -q 'ec' "$T/err" || fail "--ec 9+9: message does not name the key"
expect_rc 2 "$CC" up "$T/x" --nodes 2 --ec 4+2
grep -q 'needs at least 6 targets' "$T/err" || fail "4+2 on 2 nodes: $(cat "$T/err")"
[ -e "$T/x/cluster.state" ] && fail "a refused up left a state file"
expect_rc 3 "$CC" status "$T/nonexistent"
expect_rc 3 "$CC" logs "$T/nonexistent"
expect_rc 0 "$CC" down "$T/nonexistent"
expect_rc 3 "$CC" status "$T/x"

# Stand-ins for ckpt-meta that fail on purpose (ckpt-node and ckptfs must
# never be reached).
FB="$T/fakebin"
mkdir -p "$FB"
for p in ckpt-node ckptfs; do
    printf '#!/bin/sh\necho "%s must not be started" >&2\nexit 1\n' "$p" >"$FB/$p"
done
fake_meta() { printf '#!/bin/sh\necho "$$" >"%s/fake-meta.pid"\n%s\n' "$T" "$1" >"$FB/ckpt-meta"; chmod +x "$FB"/*; }

STEP="meta exits at once"
say "$STEP"
fake_meta 'echo "fake-meta: cannot open data dir: Permission denied" >&2; exit 3'
D=$(newdir fail1)
CKPTFS_BIN="$FB" "$CC" up "$D" --nodes 3 --ec 2+1 --chunk 256K --set meta.down_after=2s >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 1 ] || fail "up exited $rc, expected 1"
grep -q 'ckpt-meta exited with status 3 before it was ready' "$T/err" || fail "no reason: $(cat "$T/err")"
grep -q 'fake-meta: cannot open data dir' "$T/err" || fail "the log lines of ckpt-meta are not shown"
[ -e "$D/cluster.state" ] && fail "a failed fresh up left cluster.state"
compgen -G "$D/run/*.pid" >/dev/null && fail "pid files left: $(ls "$D/run")"
# What a new cluster gets: a 0600 key of 64 hex digits, and a full config.
[ "$(stat -c %a "$D/cluster.key")" = 600 ] || fail "cluster.key mode $(stat -c %a "$D/cluster.key")"
grep -qE '^[0-9a-f]{64}$' "$D/cluster.key" || fail "cluster.key is not 64 hex digits"
grep -q "^key_file = $D/cluster.key\$" "$D/ckptfs.conf" || fail "config lacks key_file"
grep -q '^ec = 2+1$' "$D/ckptfs.conf" || fail "--ec did not reach [layout]"
grep -q '^chunk = 256K$' "$D/ckptfs.conf" || fail "--chunk did not reach [layout]"
grep -q '^down_after = 2s$' "$D/ckptfs.conf" || fail "--set did not reach the config"
grep -q "^data_dir = $D/meta\$" "$D/ckptfs.conf" || fail "config lacks [meta] data_dir"
grep -q '^transport = tcp$' "$D/ckptfs.conf" || fail "config lacks transport"
grep -q 'starting .*ckpt-meta -c '"$D"'/ckptfs.conf --listen 127.0.0.1:0 --data-dir '"$D"'/meta --ready-fd 3' \
    "$D/logs/meta.log" || fail "ckpt-meta's command line: $(head -1 "$D/logs/meta.log")"
# A second up on the same DIR starts afresh (the failed one left no state).
CKPTFS_BIN="$FB" "$CC" up "$D" --nodes 3 --ec 2+1 >"$T/out" 2>&1
[ $? = 1 ] || fail "second up did not fail the same way"

STEP="meta never ready"
say "$STEP"
fake_meta 'echo "fake-meta: waiting forever"; exec sleep 600'
D=$(newdir fail2)
t0=$SECONDS
CKPTFS_BIN="$FB" "$CC" up "$D" --nodes 3 --ec 2+1 --timeout 2 >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 1 ] || fail "up exited $rc, expected 1"
[ $((SECONDS - t0)) -le 20 ] || fail "the 2 s timeout took $((SECONDS - t0)) s"
grep -q 'not ready after 2 s' "$T/err" || fail "no timeout reason: $(cat "$T/err")"
grep -q 'fake-meta: waiting forever' "$T/err" || fail "log lines not shown"
pid=$(cat "$T/fake-meta.pid")
alive "$pid" && fail "the never-ready ckpt-meta (pid $pid) was left running"

STEP="meta says something else"
say "$STEP"
fake_meta 'echo "hello there" >&3; exec sleep 600'
D=$(newdir fail3)
CKPTFS_BIN="$FB" "$CC" up "$D" --nodes 3 --ec 2+1 --timeout 10 >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 1 ] || fail "up exited $rc, expected 1"
grep -q 'wrote "hello there" on its ready fd' "$T/err" || fail "no protocol reason: $(cat "$T/err")"
pid=$(cat "$T/fake-meta.pid")
alive "$pid" && fail "ckpt-meta (pid $pid) was left running"

STEP="interrupted up"
say "$STEP"
fake_meta 'exec sleep 600'
D=$(newdir fail4)
rm -f "$T/fake-meta.pid"
CKPTFS_BIN="$FB" "$CC" up "$D" --nodes 3 --ec 2+1 --timeout 60 >"$T/out" 2>"$T/err" &
upid=$!
wait_for 10 test -s "$T/fake-meta.pid" || fail "fake ckpt-meta never started"
kill -INT $upid
wait $upid
rc=$?
[ $rc = 130 ] || fail "interrupted up exited $rc, expected 130"
pid=$(cat "$T/fake-meta.pid" 2>/dev/null)
[ -n "$pid" ] && alive "$pid" && fail "interrupted up left ckpt-meta (pid $pid) running"

[ $FAILS = 0 ] || die "$FAILS check(s) of part 1 failed"

# ---------------------------------------------------------------- part 2
STEP="daemons"
for p in ckpt-meta ckpt-node ckptfs; do
    if "$BIN/$p" --help 2>&1 | grep -q 'not implemented yet'; then
        die "$BIN/$p is still the placeholder ('not implemented yet'): the cluster tests of" \
            "ckpt-cluster need the real ckpt-meta, ckpt-node and ckptfs"
    fi
done
MOUNT_ARGS=()
if [ ! -c /dev/fuse ] || { [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; }; then
    echo "NOTE: FUSE is not usable here (/dev/fuse, fusermount3): clusters start with --no-mount"
    MOUNT_ARGS=(--no-mount)
fi
UP_ARGS=(--nodes 3 --ec 2+1 --chunk 64K --set meta.down_after=2s --timeout 60 "${MOUNT_ARGS[@]}")

# up_ok DIR [ARGS]: up must succeed, everything recorded must run, and the
# mount must be a FUSE mount.
up_ok() {
    local d=$1; shift
    "$CC" -q up "$d" "$@" >"$T/out" 2>"$T/err" || {
        fail "up $d failed: $(cat "$T/err")"
        return 1
    }
    local line name pid start n=0
    while read -r name pid start; do
        n=$((n + 1))
        alive "$pid" "$start" || fail "$name (pid $pid) recorded but not running after up"
        [ "$(cat "$d/run/$name.pid" 2>/dev/null)" = "$pid" ] || fail "$d/run/$name.pid does not hold $pid"
    done < <(recorded "$d")
    [ $n -ge 2 ] || fail "cluster.state records $n processes"
    if [ ${#MOUNT_ARGS[@]} = 0 ]; then
        mounted "$d/mnt" || fail "$d/mnt is not mounted after up"
        [ "$(stat -f -c %t "$d/mnt")" = 65735546 ] || fail "$d/mnt is not a FUSE file system"
    fi
}
# down_ok DIR: down must succeed and leave nothing of what was recorded.
down_ok() {
    local d=$1 procs
    mapfile -t procs < <(recorded "$d")
    "$CC" -q down "$d" >"$T/out" 2>"$T/err" || fail "down $d: $(cat "$T/err")"
    none_left "$d" "${procs[@]}"
}
# status_json DIR FILE: status --json must parse.
status_json() {
    "$CC" status "$1" --json >"$2" 2>"$T/err" || fail "status --json exited $?: $(cat "$T/err")"
    python3 -m json.tool "$2" >/dev/null || fail "status --json is not JSON: $(head -c 400 "$2")"
}

STEP="up/down x10"
say "$STEP"
t0=$SECONDS
for i in 1 2 3 4 5 6 7 8 9 10; do
    # Odd rounds: a new cluster; even rounds: the stopped one started again.
    if [ $((i % 2)) = 1 ]; then D=$(newdir "loop$i"); fi
    up_ok "$D" "${UP_ARGS[@]}" || die "round $i: up failed"
    status_json "$D" "$T/st.json"
    [ "$(json_get "$T/st.json" 'd["healthy"]')" = True ] || fail "round $i: not healthy: $(cat "$T/st.json")"
    down_ok "$D"
    [ $FAILS = 0 ] || die "round $i failed"
done
echo "   10 rounds in $((SECONDS - t0)) s"
"$CC" -q down "$D" >/dev/null 2>&1 || fail "a second down is not idempotent"

STEP="addrs"
say "$STEP"
expect_rc 2 "$CC" up "$T/x" --addrs 127.0.0.1,,127.0.0.2
expect_rc 2 "$CC" up "$T/x" --addrs 'a;b'
D=$(newdir addrs)
up_ok "$D" "${UP_ARGS[@]}" --addrs 127.0.0.1,127.0.0.2,127.0.0.3 || die "up --addrs failed"
if [ ${#MOUNT_ARGS[@]} = 0 ]; then
    head -c 300000 /dev/urandom >"$T/addrs.src"
    cp "$T/addrs.src" "$D/mnt/f" && cmp -s "$T/addrs.src" "$D/mnt/f" || fail "I/O through the mount failed"
fi
status_json "$D" "$T/st.json"
# meta on the first address, nodes cycling over the others.
[ "$(json_get "$T/st.json" 'd["meta"]["address"].split(":")[0]')" = 127.0.0.1 ] ||
    fail "meta is not on 127.0.0.1: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '" ".join(n["address"].split(":")[0] for n in d["nodes"])')" = "127.0.0.2 127.0.0.3 127.0.0.2" ] ||
    fail "nodes are not on 127.0.0.2/3: $(cat "$T/st.json")"
if [ ${#MOUNT_ARGS[@]} = 0 ]; then
    # The mount's connections to the nodes (user.ckptfs.connections): tcp.
    [ "$(json_get "$T/st.json" '" ".join(sorted(set(c["transport"] for c in d["mount"]["connections"])))')" = tcp ] ||
        fail "the mount's connections are not all tcp: $(cat "$T/st.json")"
    [ "$(json_get "$T/st.json" 'len(d["mount"]["connections"])')" = 3 ] ||
        fail "status shows $(json_get "$T/st.json" 'len(d["mount"]["connections"])') connections, expected 3"
    getfattr --only-values -n user.ckptfs.connections "$D/mnt" 2>/dev/null | grep -q "^node .* 127.0.0.3:" ||
        fail "user.ckptfs.connections does not list a node on 127.0.0.3"
    setfattr -n user.ckptfs.connections -v x "$D/mnt" 2>/dev/null &&
        fail "user.ckptfs.connections could be written"
fi
down_ok "$D"
expect_rc 2 "$CC" -q up "$D" --addrs 127.0.0.5
up_ok "$D" --timeout 60 || fail "the stopped cluster did not start again with its addresses"
status_json "$D" "$T/st.json"
[ "$(json_get "$T/st.json" 'd["nodes"][1]["address"].split(":")[0]')" = 127.0.0.3 ] ||
    fail "restarted node2 is not on 127.0.0.3 again"
down_ok "$D"

STEP="node fails to start"
say "$STEP"
D=$(newdir badtarget)
mkdir -p "$D/node2"
echo "not a directory" >"$D/node2/t0"
"$CC" up "$D" "${UP_ARGS[@]}" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 1 ] || fail "up with a bad target exited $rc, expected 1"
grep -q 'node2 .* before it was' "$T/err" || fail "the failing node is not named: $(cat "$T/err")"
grep -q "last lines of $D/logs/node2.log" "$T/err" || fail "node2's log is not shown: $(cat "$T/err")"
grep -q -- '--target '"$D"'/node2/t0' "$T/err" || fail "node2's log lines missing from the report"
[ "$(grep -c '^    | ' "$T/err")" -ge 2 ] || fail "no output of ckpt-node shown: $(cat "$T/err")"
left=$(procs_under "$D")
[ -z "$left" ] && [ ! -e "$D/cluster.state" ] || fail "processes left after a failed up: $left"
mounted "$D/mnt" && fail "a failed up left $D/mnt mounted"

STEP="down after kill -9 of meta"
say "$STEP"
D=$(newdir killmeta)
up_ok "$D" "${UP_ARGS[@]}"
mapfile -t procs < <(recorded "$D")
read -r _ mpid mstart < <(recorded "$D" | grep '^meta ')
kill -9 "$mpid"
wait_for 10 dead "$mpid" "$mstart" || fail "ckpt-meta did not die"
"$CC" -q down "$D" >"$T/out" 2>"$T/err" || fail "down after kill -9 of meta: $(cat "$T/err")"
none_left "$D" "${procs[@]}"

STEP="kill/start a node, restart-meta, add"
say "$STEP"
D=$(newdir drills)
up_ok "$D" "${UP_ARGS[@]}"
read -r _ npid nstart < <(recorded "$D" | grep '^node2 ')
"$CC" -q kill "$D" node2 || fail "kill node2"
alive "$npid" "$nstart" && fail "node2 (pid $npid) still alive after kill"
expect_rc 4 "$CC" kill "$D" node2
expect_rc 3 "$CC" kill "$D" node9
node_state() { # DIR NODE -> STATE from status --json
    "$CC" status "$1" --json 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print([n["state"] for n in d["nodes"] if n["name"]==sys.argv[1]][0])' "$2"
}
node_is() { [ "$(node_state "$1" "$2")" = "$3" ]; }
wait_for 30 node_is "$D" node2 DOWN ||
    fail "node2 never became DOWN in the map (state $(node_state "$D" node2))"
status_json "$D" "$T/st.json"
[ "$(json_get "$T/st.json" 'd["healthy"]')" = False ] || fail "healthy with node2 down"
[ "$(json_get "$T/st.json" '[n["running"] for n in d["nodes"] if n["name"]=="node2"][0]')" = False ] ||
    fail "node2 shown running"
"$CC" -q start "$D" node2 >"$T/out" 2>"$T/err" || fail "start node2: $(cat "$T/err")"
read -r _ npid2 nstart2 < <(recorded "$D" | grep '^node2 ')
[ "$npid2" != "$npid" ] && alive "$npid2" "$nstart2" || fail "node2 not running after start"
[ "$(node_state "$D" node2)" = UP ] || fail "node2 not UP after start"
expect_rc 4 "$CC" start "$D" node2
"$CC" -q restart-meta "$D" >"$T/out" 2>"$T/err" || fail "restart-meta: $(cat "$T/err")"
"$CC" -q add "$D" 1 >"$T/out" 2>"$T/err" || fail "add: $(cat "$T/err")"
status_json "$D" "$T/st.json"
[ "$(json_get "$T/st.json" 'len(d["nodes"])')" = 4 ] || fail "add: not 4 nodes"
[ "$(json_get "$T/st.json" 'd["healthy"]')" = True ] || fail "not healthy after start/restart-meta/add: $(cat "$T/st.json")"
"$CC" status "$D" >"$T/out" || fail "status (text)"
grep -q '^  node4 .* UP' "$T/out" || fail "status does not show node4 UP: $(cat "$T/out")"
"$CC" logs "$D" node4 | grep -q 'ckpt-cluster .*: starting' || fail "logs node4"
[ "$("$CC" env "$D")" = "export CKPTFS_CONF=$D/ckptfs.conf" ] || fail "env: $("$CC" env "$D")"
expect_rc 4 "$CC" up "$D"
down_ok "$D"

[ $FAILS = 0 ] || die "$FAILS check(s) failed"
say "all ckpt-cluster checks passed"

#!/bin/bash
# test_node.sh - ckpt-node as a program (issue 4): command line and exit
# statuses, "ready PORT" on --ready-fd, pid file, SIGHUP reopens the log,
# SIGTERM exits 0; a restart keeps the node's identity and a new target
# joins it; targets of another node, of another cluster, or held by another
# process are refused with a clear message.  When ckpt-meta is implemented
# (its --help no longer says "not implemented"), also: the node registers,
# heartbeats, and registers again after ckpt-meta is killed -9 and
# restarted on the same port.
# Chunk I/O against a running node is covered by the node_svc unit suite.
set -u
: "${BIN:=build/bin}"
NODE=$BIN/ckpt-node
META=$BIN/ckpt-meta
T=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-tnode.XXXXXX")
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -25 "$f"; }; done
    exit 1
}
ok() { echo "ok   $*"; }

od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$T/key"
chmod 600 "$T/key"
COMMON=(--set "cluster.key_file=$T/key" --listen 127.0.0.1:0)

# wait_until SECONDS CMD... : poll an explicit condition
wait_until() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.05
    done
}

# start LOG ARGS... : start ckpt-node, wait for "ready PORT"; sets PID PORT
start() {
    local log=$1; shift
    rm -f "$T/rd"; mkfifo "$T/rd"
    "$NODE" "${COMMON[@]}" --log-file "$log" --ready-fd 3 "$@" 3>"$T/rd" 2>>"$log" &
    PID=$!
    PIDS+=("$PID")
    local line=""
    read -r -t 20 line < "$T/rd"
    case "$line" in
    "ready "[0-9]*) PORT=${line#ready } ;;
    *) fail "no ready line from ckpt-node $* (got '$line')" ;;
    esac
    [ "$PORT" -gt 0 ] || fail "ready port $PORT"
}

# stop: SIGTERM, expect exit status 0 within 10 s
stop() {
    kill -TERM "$PID"
    wait_until 10 bash -c "! kill -0 $PID 2>/dev/null" || fail "no exit 10 s after SIGTERM"
    wait "$PID"; local rc=$?
    [ $rc = 0 ] || fail "exit status $rc after SIGTERM"
}

# expect_fail STATUS PATTERN ARGS... : a start that must fail with a message
expect_fail() {
    local want=$1 pat=$2; shift 2
    local log="$T/fail.log"; : > "$log"
    "$NODE" "${COMMON[@]}" "$@" >"$log" 2>&1 </dev/null; local rc=$?
    [ $rc = "$want" ] || fail "ckpt-node $* exited $rc, expected $want"
    grep -q -- "$pat" "$log" || fail "ckpt-node $*: no '$pat' in its output"
}

uuid_of() { sed -n 's/^node_uuid //p' "$1/ckptfs-target"; }
field_of() { sed -n "s/^$2 //p" "$1/ckptfs-target"; }

# ---- command line ----------------------------------------------------------
"$NODE" --help | grep -q "^usage: ckpt-node" || fail "--help"
"$NODE" -V | grep -q "^ckpt-node [0-9]" || fail "-V"
"$NODE" --no-such-option >/dev/null 2>&1; [ $? = 2 ] || fail "bad option: want status 2"
"$NODE" extra-arg >/dev/null 2>&1; [ $? = 2 ] || fail "extra argument: want status 2"
expect_fail 1 "cannot read" -c "$T/missing.conf" --target "$T/t0"
expect_fail 1 "no target" -c /dev/null
expect_fail 1 "io_threads" -c /dev/null --target "$T/t0" --set node.io_threads=0
expect_fail 1 "listen" -c /dev/null --target "$T/t0" --listen nohost
CKPTFS_CONF=$T/missing.conf "$NODE" "${COMMON[@]}" --target "$T/t0" >/dev/null 2>&1
[ $? = 1 ] || fail "a missing \$CKPTFS_CONF must be an error"
ok "command line and exit statuses"

# ---- readiness, pid file, signals ------------------------------------------
start "$T/n1.log" -c /dev/null --meta 127.0.0.1:1 --target "$T/t0" --target "$T/t1" \
    --pid-file "$T/pid" --name n1
[ "$(cat "$T/pid")" = "$PID" ] || fail "pid file"
mv "$T/n1.log" "$T/n1.old.log"
kill -HUP "$PID"
kill -0 "$PID" || fail "SIGHUP killed the node"
stop
[ ! -e "$T/pid" ] || fail "pid file left behind"
grep -q "stopped" "$T/n1.log" || fail "no 'stopped' record in the reopened log"
grep -q "cannot reach\|connect failed" "$T/n1.old.log" "$T/n1.log" ||
    fail "unreachable ckpt-meta not reported"
ok "ready line, pid file, SIGHUP, SIGTERM -> 0"

# ---- identity across restarts ----------------------------------------------
U=$(uuid_of "$T/t0")
[ -n "$U" ] && [ "$U" = "$(uuid_of "$T/t1")" ] || fail "targets of one node share a uuid"
start "$T/n2.log" -c /dev/null --meta 127.0.0.1:1 --target "$T/t1" --target "$T/t0" \
    --target "$T/t2"
stop
[ "$(uuid_of "$T/t0")" = "$U" ] || fail "uuid changed across a restart"
[ "$(uuid_of "$T/t2")" = "$U" ] || fail "a new target did not get the node's uuid"
ok "restart keeps the uuid; a new target joins the node"

# ---- /metrics ([node] metrics_listen) ----------------------------------------
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start "$T/n3.log" -c /dev/null --meta 127.0.0.1:1 --target "$T/t0" \
    --set node.metrics_listen=127.0.0.1:$MPORT
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$T/metrics" || fail "no /metrics answer"
grep -q '^ckptfs_node_chunk_writes_total 0$' "$T/metrics" || fail "/metrics lacks the write counter"
grep -q '^# TYPE ckptfs_node_registered gauge$' "$T/metrics" || fail "/metrics lacks registration"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/nope" | grep -q 404 ||
    fail "/nope is not a 404"
stop
ok "/metrics serves counters in the Prometheus text format"

# ---- refusals ----------------------------------------------------------------
start "$T/other.log" -c /dev/null --meta 127.0.0.1:1 --target "$T/u0"
stop
[ "$(uuid_of "$T/u0")" != "$U" ] || fail "two nodes got one uuid"
expect_fail 1 "belong to different nodes" -c /dev/null --target "$T/t0" --target "$T/u0"
expect_fail 1 "belongs to cluster" -c /dev/null --target "$T/t0" --set cluster.name=other
expect_fail 1 "already listed" -c /dev/null --target "$T/t0" --target "$T/t0"
mkdir -p "$T/home" && echo precious > "$T/home/file"
expect_fail 1 "$T/home" -c /dev/null --target "$T/home"
start "$T/n3.log" -c /dev/null --meta 127.0.0.1:1 --target "$T/t0"
expect_fail 1 "$T/t0" -c /dev/null --target "$T/t0"       # held by the running node
stop
ok "foreign, other-cluster, duplicate, non-empty and busy targets refused"

# ---- registration with ckpt-meta ---------------------------------------------
if [ ! -x "$META" ] || "$META" --help 2>&1 | grep -q "not implemented"; then
    echo "skip registration: ckpt-meta is not implemented in this build"
    exit 0
fi
start_meta() { # PORT (0: any); sets MPID MPORT
    rm -f "$T/mrd"; mkfifo "$T/mrd"
    "$META" -c /dev/null --set "cluster.key_file=$T/key" --listen "127.0.0.1:$1" \
        --data-dir "$T/meta" --ready-fd 3 3>"$T/mrd" >>"$T/meta.log" 2>&1 &
    MPID=$!
    PIDS+=("$MPID")
    local line=""
    read -r -t 20 line < "$T/mrd"
    case "$line" in
    "ready "[0-9]*) MPORT=${line#ready } ;;
    *) fail "no ready line from ckpt-meta (got '$line')" ;;
    esac
}
registered() { [ "$(grep -c "registered with ckpt-meta" "$T/n4.log")" -ge "$1" ]; }
# ckpt-meta marks a node UP after its registration and first heartbeat.
node_up() { [ "$(grep -c "is UP" "$T/meta.log")" -ge "$1" ]; }
mkdir -p "$T/meta"
start_meta 0
start "$T/n4.log" -c /dev/null --meta "127.0.0.1:$MPORT" --target "$T/t0" --target "$T/t1" \
    --name n4 --log-level debug
wait_until 20 registered 1 || fail "the node did not register"
wait_until 20 node_up 1 || fail "ckpt-meta never saw a heartbeat (node not UP)"
[ "$(field_of "$T/t0" node_id)" != 0 ] || fail "node id not persisted"
[ "$(field_of "$T/t1" target_id)" != 0 ] || fail "target id not persisted"
NID=$(field_of "$T/t0" node_id)
kill -9 "$MPID"; wait "$MPID" 2>/dev/null
start_meta "$MPORT"
wait_until 30 registered 2 || fail "the node did not register again after meta restarted"
wait_until 20 node_up 2 || fail "no heartbeat to the restarted ckpt-meta (node not UP)"
[ "$(field_of "$T/t0" node_id)" = "$NID" ] || fail "node id changed across a meta restart"
stop
kill -TERM "$MPID"; wait "$MPID" 2>/dev/null
ok "registers, persists ids, re-registers after ckpt-meta kill -9 + restart"

#!/bin/bash
# test_meta.sh - ckpt-meta as a process (issue 3).
#
#  1. command line: -h/-V, exit status 2 for a missing -c file, a bad
#     --set or an unknown option, 1 for a missing cluster key;
#  2. readiness: "ready PORT" on --ready-fd, a pid file;
#  3. kill -9 during a stream of creates, three times: after each restart
#     every acknowledged file is there, and nothing else but the one create
#     that was in flight (tests/integration/meta_stream.c prints "try" and
#     "ok" for each name); fake storage nodes keep heartbeating through the
#     restarts and clients reconnect by themselves;
#  4. SIGHUP reopens the log file; SIGTERM shuts down cleanly (status 0,
#     pid file removed).
# Needs BIN (programs) and TESTBIN (helpers); see scripts/run-integration.sh.
set -u
: "${BIN:=build/bin}" "${TESTBIN:=build/tests}"
T=$(mktemp -d /tmp/ckpt-test-meta.XXXXXX)
META_PID=
NODES_PID=
cleanup() {
    [ -n "$META_PID" ] && kill -9 "$META_PID" 2>/dev/null
    [ -n "$NODES_PID" ] && kill -9 "$NODES_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    [ -f "$T/meta.log" ] && tail -30 "$T/meta.log"
    exit 1
}
ok() { echo "ok: $*"; }

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/key"
chmod 600 "$T/key"
cat > "$T/c.conf" <<EOF
[cluster]
name = itest
key_file = $T/key
[meta]
listen = 127.0.0.1:0
data_dir = $T/meta
EOF

# ---- 1. command line ----------------------------------------------------------
M="$BIN/ckpt-meta"
"$M" -h | grep -q -- '--ready-fd' || fail "-h does not list --ready-fd"
"$M" --version | grep -q '^ckpt-meta ' || fail "-V"
"$M" -c "$T/none.conf" 2>/dev/null; [ $? = 2 ] || fail "missing -c file is not status 2"
"$M" -c "$T/c.conf" --set meta.down_after=0s 2>/dev/null; [ $? = 2 ] || fail "bad --set is not 2"
"$M" -c "$T/c.conf" --frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown option is not 2"
"$M" -c "$T/c.conf" --set cluster.key_file=/nonexistent/key 2>/dev/null
[ $? = 1 ] || fail "missing key file is not status 1"
ok "command line"

# ---- 2. start, readiness --------------------------------------------------------
# start_meta [ARGS...]: start ckpt-meta and wait for its "ready PORT" line.
start_meta() {
    rm -f "$T/ready"
    mkfifo "$T/ready"
    "$M" -c "$T/c.conf" --log-file "$T/meta.log" --pid-file "$T/pid" --ready-fd 3 "$@" \
        3>"$T/ready" &
    META_PID=$!
    local line=
    read -r -t 30 line < "$T/ready" || true
    case "$line" in
    "ready "[0-9]*) PORT=${line#ready } ;;
    *) fail "no readiness line from ckpt-meta (got '$line')" ;;
    esac
}
start_meta
[ "$(cat "$T/pid")" = "$META_PID" ] || fail "pid file"
[ "$PORT" -gt 0 ] || fail "port"
LISTEN="--listen 127.0.0.1:$PORT"
ok "ready on port $PORT"

# Fake storage nodes, heartbeating through every restart.
"$TESTBIN/meta_stream" "$T/key" "$PORT" nodes 6 > "$T/nodes.out" &
NODES_PID=$!
for _ in $(seq 300); do grep -q '^up' "$T/nodes.out" && break; sleep 0.05; done
grep -q '^up' "$T/nodes.out" || fail "fake nodes did not come up"

# ---- 3. kill -9 during creates ------------------------------------------------------
# wait_oks FILE N: until FILE has N "ok" lines (or the writer died).
wait_oks() {
    for _ in $(seq 1200); do
        [ "$(grep -c '^ok ' "$1")" -ge "$2" ] && return 0
        grep -q '^err ' "$1" && return 1
        sleep 0.01
    done
    return 1
}
: > "$T/all_acked"
for round in 1 2 3; do
    out="$T/stream.$round"
    "$TESTBIN/meta_stream" "$T/key" "$PORT" create d "r$round" 0 > "$out" &
    sp=$!
    wait_oks "$out" $((20 + RANDOM % 60)) || fail "round $round: no progress: $(tail -2 "$out")"
    kill -9 "$META_PID"
    wait "$META_PID" 2>/dev/null
    wait "$sp"
    [ $? = 3 ] || fail "round $round: the stream did not notice the crash"
    start_meta $LISTEN
    "$TESTBIN/meta_stream" "$T/key" "$PORT" list d > "$T/list.$round" || fail "list after restart"
    grep '^ok ' "$out" | cut -d' ' -f2 | sort > "$T/acked"
    grep '^try ' "$out" | cut -d' ' -f2 | sort > "$T/tried"
    grep "^r$round-" "$T/list.$round" | sort > "$T/listed"
    cat "$T/acked" >> "$T/all_acked"
    lost=$(comm -23 "$T/acked" "$T/listed" | wc -l)
    extra=$(comm -23 "$T/listed" "$T/tried" | wc -l)
    inflight=$(comm -23 "$T/listed" "$T/acked" | wc -l)
    [ "$lost" = 0 ] || fail "round $round: $lost acknowledged file(s) lost"
    [ "$extra" = 0 ] || fail "round $round: $extra file(s) nobody created"
    [ "$inflight" -le 1 ] || fail "round $round: $inflight unacknowledged files"
    ok "round $round: $(wc -l < "$T/acked") acknowledged, all there ($inflight in flight kept)"
done
# Nothing of the earlier rounds went missing either.
sort "$T/all_acked" > "$T/all_sorted"
sort "$T/list.3" > "$T/final"
[ "$(comm -23 "$T/all_sorted" "$T/final" | wc -l)" = 0 ] || fail "files of earlier rounds lost"
# And the server is fully usable: a new stream runs to its end.
"$TESTBIN/meta_stream" "$T/key" "$PORT" create e final 50 > "$T/stream.final" ||
    fail "create after restarts: $(tail -1 "$T/stream.final")"
ok "kill -9 x3"

# ---- 4. signals ------------------------------------------------------------------------
mv "$T/meta.log" "$T/meta.log.1"
kill -HUP "$META_PID"
for _ in $(seq 200); do [ -f "$T/meta.log" ] && break; sleep 0.02; done
[ -f "$T/meta.log" ] || fail "SIGHUP did not reopen the log file"
kill -0 "$META_PID" || fail "SIGHUP killed ckpt-meta"
kill -TERM "$META_PID"
wait "$META_PID"
st=$?
META_PID=
[ $st = 0 ] || fail "SIGTERM: exit status $st"
[ ! -e "$T/pid" ] || fail "pid file left behind"
grep -q 'shutting down' "$T/meta.log" || fail "no shutdown line in the reopened log"
ok "signals"

# ---- 5. /metrics ([meta] metrics_listen) -------------------------------------------
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_meta $LISTEN --set meta.metrics_listen=127.0.0.1:$MPORT
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$T/metrics" || fail "no /metrics answer"
grep -q '^# TYPE ckptfs_meta_commit_batches_total counter$' "$T/metrics" || fail "/metrics lacks batches"
grep -q '^ckptfs_meta_map_epoch [0-9]' "$T/metrics" || fail "/metrics lacks the epoch"
kill -TERM "$META_PID"
wait "$META_PID" || fail "SIGTERM after /metrics: exit status $?"
META_PID=
ok "/metrics"
echo "test_meta: all passed"

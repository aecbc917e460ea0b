#!/bin/bash
# test_fs_mount.sh - mounting ckptfs (issue 5): the command line, bad
# options (a clear message, exit status 1 or 2, and never a half-mounted
# directory), an unreachable ckpt-meta or a wrong cluster key, the
# mount.ckptfs / mount -t fuse.ckptfs forms (daemonizing once the mount
# works), unmounting, and SIGTERM.  Against the real ckpt-meta and six
# ckpt-node (ckpt-cluster up --no-mount).
#
# Every wait polls a condition with a deadline (no bare sleeps).  The EXIT
# trap unmounts what is mounted here, stops the cluster, and removes the
# temp dir only when nothing is left mounted under it.  Only processes
# started here are signalled, by pid.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
T=$(mktemp -d /tmp/ckptfs-test-fs-mount.XXXXXX) || exit 1
C=$T/cluster
MNT=$T/m
FAILS=0
STEP=""

say() { STEP=$1; shift; printf '== %s: %s\n' "$STEP" "$*"; }
fail() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; FAILS=$((FAILS + 1)); }
die() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; exit 1; }
mounted() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
}
gone() { ! kill -0 "$1" 2>/dev/null; }
# mount_pid DIR: the ckptfs process serving DIR (it daemonized: find it).
mount_pid() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$BIN/ckptfs" ] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- " $1\( \|$\)" && { echo "${p#/proc/}"; return 0; }
    done
    return 1
}
unmount() {
    local pid
    mounted "$1" || return 0
    pid=$(mount_pid "$1")
    fusermount3 -u "$1" 2>/dev/null || umount -l "$1"
    [ -n "$pid" ] && { wait_for 10 gone "$pid" || kill -9 "$pid" 2>/dev/null; }
    return 0
}

cleanup() {
    set +e
    unmount "$MNT"
    [ -d "$C" ] && "$CC" -q down "$C" >/dev/null 2>&1
    mounted "$MNT" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$CC" -q up "$C" --no-mount --timeout 60 || die "ckpt-cluster up failed"
mkdir -p "$MNT"
CONF=$C/ckptfs.conf

# expect RC DESCRIPTION CMD...: CMD exits with RC, leaves nothing mounted.
expect() {
    local want=$1 what=$2 out rc
    shift 2
    out=$(timeout 60 "$@" 2>&1)
    rc=$?
    [ "$rc" = "$want" ] || fail "$what: exit $rc, want $want ($out)"
    mounted "$MNT" && { fail "$what left $MNT mounted"; unmount "$MNT"; }
    LAST=$out
}

say cli "help, version, usage"
expect 0 "-V" "$BIN/ckptfs" -V
case "$LAST" in "ckptfs "*) ;; *) fail "-V printed '$LAST'" ;; esac
expect 0 "--help" "$BIN/ckptfs" --help
case "$LAST" in *MOUNTPOINT*meta=HOST:PORT*) ;; *) fail "--help lacks the synopsis/options" ;; esac
expect 2 "no mountpoint" "$BIN/ckptfs" -o "conf=$CONF"
expect 2 "three positionals" "$BIN/ckptfs" -o "conf=$CONF" a b "$MNT"
expect 2 "unknown flag" "$BIN/ckptfs" --frobnicate "$MNT"

say badopts "bad options: a message, exit 1, nothing mounted"
expect 1 "unknown -o option" "$BIN/ckptfs" -o "conf=$CONF,no_such_option" "$MNT"
expect 1 "bad dirty_limit" "$BIN/ckptfs" -o "conf=$CONF,dirty_limit=1K" "$MNT"
case "$LAST" in *dirty_limit*) ;; *) fail "the dirty_limit message does not name it: $LAST" ;; esac
expect 1 "bad io mode" "$BIN/ckptfs" -o "conf=$CONF,io=sideways" "$MNT"
expect 1 "missing config" "$BIN/ckptfs" -o "conf=$T/none.conf" "$MNT"
expect 1 "missing mountpoint" "$BIN/ckptfs" -o "conf=$CONF" "$T/nowhere"
t0=$SECONDS
expect 1 "ckpt-meta unreachable" "$BIN/ckptfs" -o "conf=$CONF,meta=127.0.0.1:1" "$MNT"
case "$LAST" in *ckpt-meta*) ;; *) fail "unreachable meta message: $LAST" ;; esac
[ $((SECONDS - t0)) -lt 40 ] || fail "giving up on ckpt-meta took $((SECONDS - t0)) s"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/wrong.key"
chmod 600 "$T/wrong.key"
expect 1 "wrong cluster key" "$BIN/ckptfs" -o "conf=$CONF,key_file=$T/wrong.key" "$MNT"

say forms "mount.ckptfs form, daemonizing, unmount"
"$BIN/ckptfs" ckptfs "$MNT" -o "conf=$CONF,log_file=$T/m.log" || fail "mount.ckptfs form failed"
mounted "$MNT" || fail "not mounted when ckptfs returned"
echo hello >"$MNT/x" && [ "$(cat "$MNT/x")" = hello ] || fail "the daemonized mount does not work"
PID=$(mount_pid "$MNT") || fail "no ckptfs process serves the mount"
fusermount3 -u "$MNT" || fail "fusermount3 -u"
[ -n "${PID:-}" ] && { wait_for 20 gone "$PID" || fail "ckptfs did not exit after unmount"; }
# mount -t fuse.ckptfs runs "mount.fuse3 ckptfs MNT -t fuse.ckptfs -o ...",
# which runs "ckptfs ckptfs MNT -o ..." from PATH (mount(8) itself uses the
# system PATH, where `make install` puts ckptfs): call that helper here.
MF=$(command -v mount.fuse3 || echo /sbin/mount.fuse3)
if [ -x "$MF" ]; then
    PATH="$BIN:$PATH" "$MF" ckptfs "$MNT" -t fuse.ckptfs -o "conf=$CONF,log_file=$T/m.log" ||
        fail "mount.fuse3 -t fuse.ckptfs"
    [ "$(cat "$MNT/x" 2>/dev/null)" = hello ] || fail "mount -t fuse.ckptfs does not serve the data"
    unmount "$MNT"
else
    echo "note: no mount.fuse3; the mount -t fuse.ckptfs form was not tried"
fi

say signal "SIGTERM unmounts a foreground ckptfs"
"$BIN/ckptfs" -f -o "conf=$CONF,log_file=$T/m.log" "$MNT" &
FPID=$!
wait_for 20 mounted "$MNT" || fail "foreground mount did not appear"
wait_for 20 cat "$MNT/x" >/dev/null || fail "foreground mount does not answer"
head -c $((9 << 20)) /dev/urandom >"$T/d"
cp "$T/d" "$MNT/d" || fail "write before SIGTERM"
kill -TERM "$FPID"
if wait_for 30 gone "$FPID"; then
    wait "$FPID"
    rc=$?
    [ $rc = 0 ] || fail "exit status $rc after SIGTERM"
else
    fail "ckptfs ignored SIGTERM"
    kill -9 "$FPID"
    wait "$FPID"
    unmount "$MNT"
fi
mounted "$MNT" && fail "still mounted after SIGTERM"
"$BIN/ckptfs" -o "conf=$CONF,log_file=$T/m.log" "$MNT" || fail "remount"
cmp -s "$T/d" "$MNT/d" || fail "data written before SIGTERM does not read back"
unmount "$MNT"

if [ "$FAILS" -gt 0 ]; then
    echo "--- log"; tail -20 "$T/m.log" 2>/dev/null
    echo "$FAILS failure(s)"
    exit 1
fi
echo "all passed"

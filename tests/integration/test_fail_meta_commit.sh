#!/bin/bash
# test_fail_meta_commit.sh - issue 8: ckpt-meta killed with -9 while a
# `ckpt commit` is in progress.  6 nodes, ec 4+2, 256 KiB chunks.
#   A checkpoint directory gets 4 files; a fifth is still open for writing
#   (a shell holds its descriptor), so `ckpt commit` waits for it.  ckpt-meta
#   is killed while the commit waits, then started again.
#   - the pending commit survives it: ckpt sends it again to the new
#     ckpt-meta, which waits for the writer, and it completes once the
#     writer closes (exit 0);
#   - the nodes stay UP for the mount across the restart;
#   - after the restart the checkpoint is WRITING or COMMITTED, never in
#     between: when the killed commit did not finish, the files inside are
#     still writable (no half-applied immutability);
#   - once the writer closes its file, `ckpt commit` completes, the
#     checkpoint is COMMITTED, `ckpt verify` passes, writes into it fail
#     with EROFS, and every file reads back bit-exact.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-meta-commit.XXXXXX) || exit 1
C="$T/c"
fl_setup
CK="$BIN/ckpt"
export CKPTFS_CONF="$C/ckptfs.conf"

STEP=up
"$CC" -q up "$C" --nodes 6 --ec 4+2 --chunk 256K --set meta.down_after=2s \
    --set meta.out_after=5m --timeout 60 || die "cluster did not start"
J="$C/mnt/job"
mkdir -p "$J/step-1" "$T/src" || die "mkdir"

STEP=write
for i in 1 2 3 4; do
    head -c $((300000 * i)) /dev/urandom >"$T/src/f$i" || die "urandom"
    cp "$T/src/f$i" "$J/step-1/f$i" || die "cp f$i"
done
head -c 500000 /dev/urandom >"$T/src/open" || die "urandom"
# Commands started while fd 7 is open must not inherit it: a process
# holding a copy keeps the file open for writing (the commit would wait
# for itself), and each exiting copy is a close() of the file.
exec 7>"$J/step-1/open" || die "open for writing"
head -c 250000 "$T/src/open" >&7 || die "first half"

STEP=commit-waits
"$CK" commit "$J/step-1" --timeout 120 >"$T/commit1.out" 2>&1 7>&- &
cpid=$!
# The commit is parked at ckpt-meta waiting for the open file.
waiting() { kill -0 "$cpid" 2>/dev/null && "$CK" status "$J/step-1" 2>/dev/null 7>&- | grep -q WRITING; }
wait_for 20 waiting || die "ckpt commit did not wait for the open file: $(cat "$T/commit1.out")"

STEP=kill-meta
"$CC" -q kill "$C" meta 7>&- || die "kill meta failed"
off=$(log_lines "$C/logs/meta.log")
"$CC" -q start "$C" meta --timeout 60 7>&- || die "restarting ckpt-meta failed"
wait_for 30 ups_since "$C/logs/meta.log" "$off" 6 || fail "nodes not UP again after the restart"
# The restarted ckpt-meta keeps the nodes UP while they register again
# (they retry within a heartbeat): the mount never sees them DOWN.
grep "is DOWN" "$C/logs/ckptfs.log" | head -3 | grep . &&
    fail "the mount saw nodes DOWN across the ckpt-meta restart"

STEP=first-commit-ends
# It may retry against the new ckpt-meta and keep waiting for the writer,
# or fail with a clear error; it must not hang past the writer's close.
st=$("$CK" status "$J/step-1" 2>&1 7>&-)
case "$st" in
*COMMITTED*) fail "the checkpoint is COMMITTED while a file in it is still open: $st" ;;
*WRITING*) ;;
*) fail "ckpt status after the restart: $st" ;;
esac
# Not committed: the files are still writable (nothing half-immutable).
touch "$J/step-1/f1" 7>&- || fail "a file of the uncommitted checkpoint is not writable after the restart"
tail -c +250001 "$T/src/open" >&7 || fail "writing the rest of the open file failed after the restart"
exec 7>&- || fail "closing the open file failed"
gone_pid() { ! kill -0 "$1" 2>/dev/null; }
wait_for 60 gone_pid "$cpid" || { kill "$cpid"; fail "the commit begun before the kill still runs 60 s after the writer closed"; }
wait "$cpid"
rc1=$?
say "commit begun before the kill exited $rc1: $(tail -1 "$T/commit1.out")"
# ckpt sends the commit again to the restarted ckpt-meta (it is
# idempotent), which waits for the writer like the first one did.
[ $rc1 = 0 ] || fail "the commit begun before the kill did not complete across the restart: $(cat "$T/commit1.out")"

STEP=commit
"$CK" commit "$J/step-1" --timeout 60 >"$T/commit2.out" 2>&1 || fail "commit after the restart failed: $(cat "$T/commit2.out")"
"$CK" status "$J/step-1" 2>&1 | grep -q COMMITTED || fail "not COMMITTED: $("$CK" status "$J/step-1" 2>&1)"
[ "$("$CK" latest "$J" 2>&1)" = "$J/step-1" ] || fail "ckpt latest: $("$CK" latest "$J" 2>&1)"
"$CK" verify "$J/step-1" >"$T/verify.out" 2>&1 || fail "verify failed: $(cat "$T/verify.out")"
( echo x >>"$J/step-1/f2" ) 2>"$T/erofs.err" && fail "a write into the committed checkpoint succeeded"
grep -q "Read-only file system" "$T/erofs.err" || fail "write into the checkpoint: $(cat "$T/erofs.err"), expected EROFS"
for f in f1 f2 f3 f4 open; do
    cmp -s "$T/src/$f" "$J/step-1/$f" || fail "$f differs"
done

[ $FAILS = 0 ] && say "PASS test_fail_meta_commit" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

#!/bin/bash
# test_fail_client.sh - issue 8: the FUSE client is killed with -9 in the
# middle of a write.  Its session lease (10 s) runs out at ckpt-meta, which
# releases its open files and marks the file it was writing incomplete;
# nothing else is affected: after a remount the files written before read
# back bit-exact, the half-written file opens without hanging (the open is
# not held for a writer that is dead), its checkpoint stays WRITING and
# `ckpt commit` refuses it (exit 5, the file named in ckpt-meta's log), and
# new files can be written.
# 6 nodes, ec 4+2, 64 KiB chunks.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-client.XXXXXX) || exit 1
C="$T/c"
fl_setup

STEP=up
"$CC" -q up "$C" --nodes 6 --ec 4+2 --chunk 64K --timeout 60 || die "cluster did not start"
STEP=write
make_files 1200000 5000 || die "writing failed"

STEP=kill-client
mkdir -p "$C/mnt/job/step-1" || die "mkdir"
( exec dd if=/dev/urandom of="$C/mnt/job/step-1/half" bs=64K count=100000 status=none 2>/dev/null ) &
dd_pid=$!
wait_for 20 test -s "$C/mnt/job/step-1/half" || fail "the writer did not get going"
"$CC" -q kill "$C" ckptfs || die "kill ckptfs failed"
wait "$dd_pid" 2>/dev/null
wait_for 40 log_has "$C/logs/meta.log" "ended: [0-9]+ open file\(s\) released, [1-9][0-9]* marked incomplete" ||
    fail "ckpt-meta did not release the dead client's file (lease expiry)"

STEP=remount
"$CC" -q start "$C" ckptfs --timeout 60 || die "remount failed"
check_files || fail "files written before the client died differ"
timeout 30 cat "$C/mnt/job/step-1/half" >/dev/null || fail "reading the half-written file failed or hung"
# Its checkpoint is WRITING, and ckpt commit refuses it: a file in it is
# incomplete.
export CKPTFS_CONF="$C/ckptfs.conf"
"$BIN/ckpt" status "$C/mnt/job/step-1" 2>&1 | grep -q WRITING || fail "step-1 is not WRITING"
"$BIN/ckpt" commit "$C/mnt/job/step-1" --timeout 20 >"$T/commit.out" 2>&1
rc=$?
[ $rc = 5 ] || fail "commit of a checkpoint with an incomplete file exited $rc, expected 5: $(cat "$T/commit.out")"
grep -q "incomplete" "$T/commit.out" || fail "commit does not say why: $(cat "$T/commit.out")"
grep -q "half is incomplete" "$C/logs/meta.log" || fail "ckpt-meta's log does not name the incomplete file"
"$BIN/ckpt" latest "$C/mnt/job" >/dev/null 2>&1 && fail "ckpt latest found a checkpoint in job/"
make_files 333333 || fail "writing after the client's death failed"
check_files || fail "files differ after the remount"

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_client" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

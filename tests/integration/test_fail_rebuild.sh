#!/bin/bash
# test_fail_rebuild.sh - issue 8: kill one node; after out_after ckpt-meta
# plans the rebuild, the surviving nodes recreate every chunk the dead node
# held onto replacement targets in new failure domains, layouts swap, and
# full redundancy is back:
#   - every chunk key the dead node held exists again on a survivor,
#   - every stripe has k+m chunks on the survivors,
#   - "rebuild complete" in ckpt-meta's log (its rate is printed),
#   - all files read back bit-exact, also after two more nodes are killed
#     (which only works when the rebuilt chunks are real: 3 losses > m),
#     while the mount held every file open since before the first kill
#     (a new open must adopt the swapped layout of a cached inode).
# 8 nodes, ec 4+2 with 64 KiB chunks, down_after 1 s, out_after 3 s.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/fail_lib.sh
T=$(mktemp -d /tmp/ckptfs-test-fail-rebuild.XXXXXX) || exit 1
C="$T/c"
fl_setup
NODES="node1 node2 node3 node4 node5 node6 node7 node8"

STEP=up
"$CC" -q up "$C" --nodes 8 --ec 4+2 --chunk 64K --set meta.down_after=1s \
    --set meta.out_after=3s --timeout 60 || die "cluster did not start"

STEP=write
make_files 3000000 700000 262144 1 5000000 || die "writing the files failed"
check_files || die "files do not read back before any failure"
stripes_full 6 $NODES || die "not every stripe has 6 chunks after writing"
total=$(chunk_keys $NODES | wc -l)

STEP=kill
# Every file stays open on the mount through the rebuild (its inode and
# layout stay cached there): the reads after the rebuild open them again,
# and must adopt the swapped layout, or the 3 dead nodes below are > m.
HELD=()
for f in "$C"/mnt/f*; do exec {fd}<"$f" || die "open $f"; HELD+=("$fd"); done
victim=$(node_of_most_chunks $NODES)
survivors=$(echo $NODES | tr ' ' '\n' | grep -vx "$victim" | tr '\n' ' ')
chunk_keys "$victim" | sort >"$T/lost"
lost=$(wc -l <"$T/lost")
lost_bytes=$(du -sb --apparent-size "$C/$victim" | awk '{print $1}')
say "killing $victim ($lost of $total chunks)"
"$CC" -q kill "$C" "$victim" || die "kill $victim failed"
t0=$(date +%s.%N)

STEP=rebuild
wait_for 90 rebuild_settled ||
    die "no 'rebuild complete' in ckpt-meta's log within 90 s"
wait_for 30 stripes_full 6 $survivors || die "stripes without 6 chunks after the rebuild: $(per_stripe $survivors | awk '$1 != 6' | head -5)"
t1=$(date +%s.%N)
chunk_keys $survivors | sort -u >"$T/now"
missing=$(comm -23 "$T/lost" "$T/now" | wc -l)
[ "$missing" = 0 ] || fail "$missing chunk(s) of $victim were not recreated"
[ "$(chunk_keys $survivors | wc -l)" = "$total" ] || fail "chunk count $(chunk_keys $survivors | wc -l) != $total"
grep -h "rebuild complete" "$C/logs/meta.log" | tail -1 | sed 's/^.*INFO /  ckpt-meta: /'
awk -v b="$lost_bytes" -v s="$t0" -v e="$t1" 'BEGIN { printf "  rebuilt %d chunks (~%.1f MiB incl. headers) %.1f s after the kill (out_after 3 s)\n", 0, b / 1048576, e - s }' |
    sed "s/rebuilt 0 chunks/rebuilt $lost chunks/"

STEP=read
check_files || fail "files differ after the rebuild"

STEP=redundancy
# Two more failures: with the rebuild real, each stripe still has >= k.
read -r a b < <(echo $survivors | tr ' ' '\n' | head -2 | tr '\n' ' ')
"$CC" -q kill "$C" "$a" || die "kill $a failed"
"$CC" -q kill "$C" "$b" || die "kill $b failed"
check_files || fail "files differ with $victim, $a and $b dead (rebuilt chunks missing, or a cached layout not refreshed?)"
grep -q "layout targets changed by ckpt-meta" "$C/logs/ckptfs.log" ||
    fail "the mount never adopted a swapped layout for a file it held open"
for fd in "${HELD[@]}"; do exec {fd}<&-; done

STEP=done
[ $FAILS = 0 ] && say "PASS test_fail_rebuild" || say "$FAILS failure(s)"
[ $FAILS = 0 ]

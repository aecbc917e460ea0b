#!/bin/bash
# test_fs_posix.sh - ckptfs as a POSIX filesystem (issue 5), against the real
# ckpt-meta and six ckpt-node on loopback (started with ckpt-cluster, layout
# 4+2, 1 MiB chunks) and two mounts of the same cluster.
#
#   roundtrip   cp, dd (64 KiB writes + conv=fsync), tar and rsync round
#               trips checked with sha256 for 0 B, 1 B, chunk-1, chunk+1,
#               stripe-1, stripe+1 and 300 MiB, read back on both mounts
#               (the second mount sees each whole file once it was closed)
#   modify      truncate down/up, overwrite in place, sparse writes, append,
#               O_TRUNC rewrite, each applied to a local model too and
#               compared on both mounts
#   names       rename over a file, rename of directories, RENAME_NOREPLACE
#               and RENAME_EXCHANGE, hard links, symlinks, chmod/chown/utimes
#   listing     a 10,000-entry directory listed on both mounts, then removed
#   errno       the POSIX errors tools rely on (perl, checked by name)
#   xattr       user xattrs, and a directory layout xattr (ec=2+1) whose new
#               files are written and read back with that code
#   mmap        MAP_SHARED (model loaders) and MAP_PRIVATE reads bit-exact,
#               a MAP_SHARED write read back on both mounts
#
# Every wait polls a condition with a deadline (no bare sleeps).  The EXIT
# trap unmounts the second mount, stops the cluster and removes the temp dir
# only when nothing is left mounted under it.
set -u
cd "$(dirname "$0")/../.." || exit 1
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
scripts/deps.sh rsync attr python3 >/dev/null || exit 1
T=$(mktemp -d /tmp/ckptfs-test-fs-posix.XXXXXX) || exit 1
C=$T/cluster
M=$C/mnt
M2=$T/mnt2
M2PID=
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

cleanup() {
    set +e
    if mounted "$M2"; then fusermount3 -u "$M2" 2>/dev/null || umount -l "$M2"; fi
    if [ -n "$M2PID" ]; then
        wait_for 10 gone "$M2PID" || kill -9 "$M2PID" 2>/dev/null
        wait "$M2PID" 2>/dev/null
    fi
    [ -d "$C" ] && "$BIN/ckpt-cluster" -q down "$C" >/dev/null 2>&1
    if ! mounted "$M" && ! mounted "$M2"; then rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sha() { sha256sum <"$1" | cut -d' ' -f1; }
# same LOCAL PATH_ON_MOUNT: the file reads back identically on both mounts.
same() {
    local want got
    want=$(sha "$1")
    for m in "$M" "$M2"; do
        got=$(sha "$m/$2" 2>/dev/null) || { fail "$2 unreadable on $m"; continue; }
        [ "$got" = "$want" ] || fail "$2 differs on $m (size $(stat -c %s "$m/$2"), want $(stat -c %s "$1"))"
    done
}

say setup "cluster of 6 nodes and two mounts"
"$BIN/ckpt-cluster" -q up "$C" --timeout 60 || die "ckpt-cluster up failed"
mkdir -p "$M2"
"$BIN/ckptfs" -f -o "conf=$C/ckptfs.conf,log_file=$T/mnt2.log" "$M2" &
M2PID=$!
wait_for 20 mounted "$M2" || die "second mount did not appear"
wait_for 20 stat "$M2/." >/dev/null || die "second mount does not answer"

# ---- round trips ------------------------------------------------------------------
say roundtrip "cp, dd, tar, rsync for edge sizes and 300 MiB"
mkdir -p "$T/src"
CH=$((1 << 20)); ST=$((4 << 20))
SIZES="0 1 $((CH - 1)) $((CH + 1)) $((ST - 1)) $((ST + 1)) $((300 << 20))"
for s in $SIZES; do head -c "$s" /dev/urandom >"$T/src/f$s"; done
mkdir "$M/cp" "$M/dd" || fail "mkdir"
for s in $SIZES; do
    cp "$T/src/f$s" "$M/cp/f$s" || fail "cp f$s"
    same "$T/src/f$s" "cp/f$s"
done
for s in 0 1 $((CH + 1)) $((ST + 1)); do
    dd if="$T/src/f$s" of="$M/dd/f$s" bs=64K conv=fsync status=none || fail "dd write f$s"
    dd if="$M2/dd/f$s" of="$T/ddback" bs=1M status=none || fail "dd read f$s"
    cmp -s "$T/src/f$s" "$T/ddback" || fail "dd round trip f$s"
    same "$T/src/f$s" "dd/f$s"
done
# 1 MiB writes at chunk boundaries: their buffers become the chunks
# (fs_kio.h), no copy; the bytes must still be the writer's.
adopted() { getfattr --absolute-names --only-values -n user.ckptfs.writes "$M" | awk '$1 == "chunks_adopted" { print $2 }'; }
a0=$(adopted)
dd if="$T/src/f$((300 << 20))" of="$M/dd/big" bs=1M status=none || fail "dd write 300 MiB"
a1=$(adopted)
[ -n "$a0" ] && [ -n "$a1" ] && [ $((a1 - a0)) -ge 290 ] ||
    fail "1 MiB writes were copied, not adopted (user.ckptfs.writes chunks_adopted '$a0' -> '$a1')"
same "$T/src/f$((300 << 20))" "dd/big"
rm -f "$T/src/f$((300 << 20))" "$T/ddback" # keep tar/rsync quick
mkdir "$M/tar" "$T/tarout"
(tar cf - -C "$T/src" . | tar xf - -C "$M/tar") || fail "tar into the mount"
(tar cf - -C "$M2/tar" . | tar xf - -C "$T/tarout") || fail "tar out of the second mount"
diff -r "$T/src" "$T/tarout" >/dev/null || fail "tar round trip differs"
rsync -a "$T/src/" "$M/rs/" || fail "rsync into the mount"
rsync -a --checksum "$T/src/" "$M/rs/" || fail "rsync again"
head -c 123457 /dev/urandom >"$T/src/f1"
rsync -a "$T/src/" "$M/rs/" || fail "rsync of a changed file"
for s in $SIZES; do [ -f "$T/src/f$s" ] && same "$T/src/f$s" "rs/f$s"; done

# ---- modifications ---------------------------------------------------------------------
say modify "truncate, overwrite, sparse, append, O_TRUNC"
mkdir -p "$T/model"
L=$T/model/t
head -c $((10 << 20)) /dev/urandom >"$L"
cp "$L" "$M/t" || fail "cp t"
op() { # op DESCRIPTION CMD-with-@ (run on the model and on the mount)
    local d=$1; shift
    local c=$*
    eval "${c//@/$L}" || fail "$d on the model"
    eval "${c//@/$M/t}" || fail "$d on the mount"
    same "$L" t
}
op "truncate down mid-stripe" truncate -s 3000000 @
op "truncate up" truncate -s $((9 << 20)) @
op "overwrite across a stripe edge" dd if=/dev/zero of=@ bs=1000 seek=4190 count=20 conv=notrunc status=none
head -c 70000 /dev/urandom >"$T/patch"
op "overwrite inside a chunk" dd if="$T/patch" of=@ bs=1 seek=1234567 conv=notrunc status=none
op "sparse write far past the end" dd if="$T/patch" of=@ bs=1M seek=40 conv=notrunc status=none
op "append" "cat $T/patch >>@"
op "truncate to a stripe edge" truncate -s $((8 << 20)) @
op "truncate to zero" truncate -s 0 @
op "append to empty" "cat $T/patch >>@"
head -c 5000000 /dev/urandom >"$T/big"
op "O_TRUNC rewrite" "cp $T/big @"
head -c 1000 /dev/urandom >"$T/small"
op "O_TRUNC with a smaller file" "cp $T/small @"
op "extend after O_TRUNC" truncate -s $((6 << 20)) @
[ "$(stat -c %s "$M2/t")" = "$(stat -c %s "$L")" ] || fail "size differs on the second mount"
# Sparse from scratch: a hole of whole stripes before the only data.
printf 'tail' | dd of="$M/sparse" bs=1 seek=$((20 << 20)) status=none
printf 'tail' | dd of="$T/model/sparse" bs=1 seek=$((20 << 20)) status=none
same "$T/model/sparse" sparse
# Two appenders through O_APPEND on one mount.
: >"$M/app"; : >"$T/model/app"
for i in $(seq 1 50); do echo "line $i $(head -c 3000 /dev/zero | tr '\0' x)" >>"$M/app"; done
for i in $(seq 1 50); do echo "line $i $(head -c 3000 /dev/zero | tr '\0' x)" >>"$T/model/app"; done
same "$T/model/app" app

# ---- names -------------------------------------------------------------------------------
say names "rename, links, symlinks, attributes"
cd "$M" || die "cd"
echo one >r1 && echo two >r2 || fail "create r1 r2"
mv r1 r2 || fail "rename over"
[ ! -e r1 ] && [ "$(cat r2)" = one ] && [ "$(cat "$M2/r2")" = one ] || fail "rename over result"
mkdir -p dA/sub && echo x >dA/sub/f && mv dA dB || fail "rename a directory"
[ "$(cat dB/sub/f)" = x ] || fail "file under renamed directory"
mv dB/sub/f r3 && [ "$(cat "$M2/r3")" = x ] || fail "rename across directories"
echo a >xa; echo b >xb
exch=$(perl -e '
    use strict; my $SYS_renameat2 = 316; my $AT_FDCWD = -100; # x86_64
    my ($x, $y) = ("xa", "xb");
    my $r = syscall($SYS_renameat2, $AT_FDCWD, $x, $AT_FDCWD, $y, 1);
    print(($r == -1 && $!{EEXIST}) ? "noreplace-ok " : "noreplace-bad ");
    $r = syscall($SYS_renameat2, $AT_FDCWD, $x, $AT_FDCWD, $y, 2);
    print(($r == 0) ? "exchange-ok" : "exchange-bad:$!");')
[ "$exch" = "noreplace-ok exchange-ok" ] || fail "renameat2: $exch"
[ "$(cat xa)" = b ] && [ "$(cat xb)" = a ] || fail "RENAME_EXCHANGE contents"
head -c 3000000 /dev/urandom >"$T/lk"
cp "$T/lk" l1 && ln l1 l2 || fail "hard link"
[ "$(stat -c %i l1)" = "$(stat -c %i l2)" ] && [ "$(stat -c %h l2)" = 2 ] || fail "link count/inode"
rm l1 && same "$T/lk" l2
[ "$(stat -c %h l2)" = 1 ] || fail "link count after unlink"
ln -s l2 s1 && ln -s dB sd && ln -s /nonexistent/x dangling || fail "symlink"
[ "$(readlink s1)" = l2 ] && [ "$(readlink "$M2/sd")" = dB ] || fail "readlink"
same "$T/lk" s1
[ -d sd/sub ] || fail "symlink to a directory"
[ ! -e dangling ] && [ -L dangling ] || fail "dangling symlink"
# The other mount caches attributes for attr_timeout (1 s): poll it.
attr_is() { [ "$(stat -c "$1" "$2")" = "$3" ]; }
chmod 640 l2 && attr_is %a l2 640 && wait_for 5 attr_is %a "$M2/l2" 640 || fail "chmod"
chown 1234:5678 l2 && attr_is %u:%g l2 1234:5678 && wait_for 5 attr_is %u:%g "$M2/l2" 1234:5678 || fail "chown"
when=$(date -d '2001-02-03 04:05:06' +%s)
touch -d '2001-02-03 04:05:06.789' l2 && attr_is %Y l2 "$when" && wait_for 5 attr_is %Y "$M2/l2" "$when" || fail "utimes"
cd / || die "cd /"

# ---- a big directory ------------------------------------------------------------------
say listing "10,000 entries"
mkdir "$M/big" || fail "mkdir big"
(cd "$M/big" && seq -f 'entry-%05g' 1 10000 | xargs touch) || fail "create 10,000 files"
n1=$(ls -f "$M/big" | grep -c '^entry-')
n2=$(ls -f "$M2/big" | grep -c '^entry-')
[ "$n1" = 10000 ] && [ "$n2" = 10000 ] || fail "listing: $n1 / $n2 entries"
[ "$(ls "$M2/big" | sort | uniq -d | wc -l)" = 0 ] || fail "listing has duplicates"
[ "$(find "$M/big" -type f | wc -l)" = 10000 ] || fail "find count"
rm -rf "$M/big" && [ ! -e "$M2/big" ] || fail "rm -rf of the big directory"

# ---- errno ---------------------------------------------------------------------------------
say errno "POSIX errors"
mkdir -p "$M/e/d/sub"; echo x >"$M/e/f"
errs=$(cd "$M/e" && perl -e '
    use strict; use Fcntl; use POSIX;
    my @bad;
    sub want { my ($what, $ok, $err) = @_; push @bad, "$what: got " . ($ok ? "success" : "$!") . ", want $err" unless !$ok && $!{$err}; }
    want("open missing", sysopen(my $a, "missing", O_RDONLY), "ENOENT");
    want("mkdir existing", mkdir("d"), "EEXIST");
    want("create excl existing", sysopen(my $b, "f", O_CREAT|O_EXCL|O_WRONLY), "EEXIST");
    want("rmdir non-empty", rmdir("d"), "ENOTEMPTY");
    want("rmdir a file", rmdir("f"), "ENOTDIR");
    want("unlink a directory", unlink("d"), "EISDIR");
    want("path through a file", sysopen(my $c, "f/x", O_RDONLY), "ENOTDIR");
    want("name too long", sysopen(my $d, "n" x 256, O_CREAT|O_WRONLY), "ENAMETOOLONG");
    want("dir under itself", rename("d", "d/sub/d"), "EINVAL");
    want("link a directory", link("d", "d2"), "EPERM");
    want("rmdir missing", rmdir("nothere"), "ENOENT");
    want("write a directory", sysopen(my $e, "d", O_WRONLY), "EISDIR");
    want("mkdir under a file", mkdir("f/x"), "ENOTDIR");
    print join("\n", @bad);')
[ -z "$errs" ] || fail "$errs"
[ "$(getfattr --absolute-names -n user.none "$M/e/f" 2>&1 | grep -c 'No such attribute')" = 1 ] || fail "missing xattr is ENODATA"

# ---- xattrs and layouts ----------------------------------------------------------------
say xattr "user xattrs, directory layout ec=2+1"
setfattr -n user.k -v hello "$M/e/f" || fail "setfattr"
[ "$(getfattr --absolute-names --only-values -n user.k "$M2/e/f")" = hello ] || fail "getfattr on the second mount"
getfattr --absolute-names -d "$M/e/f" | grep -q '^user.k="hello"' || fail "listxattr"
setfattr -x user.k "$M/e/f" && ! getfattr --absolute-names -n user.k "$M/e/f" >/dev/null 2>&1 || fail "removexattr"
mkdir "$M/l21" && setfattr -n user.ckptfs.layout -v "ec=2+1 chunk=256K" "$M/l21" || fail "set a directory layout"
head -c $((5 << 20 | 4321)) /dev/urandom >"$T/l21"
cp "$T/l21" "$M/l21/f" || fail "write under ec=2+1"
same "$T/l21" l21/f
df -P "$M" | awk 'NR == 2 { exit !($2 > 0) }' || fail "statfs"

# ---- mmap ------------------------------------------------------------------------------
# Model loaders (safetensors, numpy mmap_mode='r') map files MAP_SHARED;
# files are opened with direct I/O, which the kernel maps shared only
# when the INIT reply carries FUSE_DIRECT_IO_ALLOW_MMAP (fs/fs_kio.c).
say mmap "MAP_SHARED and MAP_PRIVATE reads, MAP_SHARED writes"
head -c $((6 << 20 | 777)) /dev/urandom >"$T/mm"
cp "$T/mm" "$M/mm" || fail "cp mm"
head -c $((3 << 20 | 5)) /dev/urandom >"$T/mw"
mmres=$(python3 - "$M/mm" "$T/mm" "$M/mw" "$T/mw" <<'PY'
import mmap, sys
src, ref, dst, data = sys.argv[1], open(sys.argv[2], 'rb').read(), sys.argv[3], open(sys.argv[4], 'rb').read()
out = []
with open(src, 'rb') as f:
    for name, kw in (("shared", dict(access=mmap.ACCESS_READ)),
                     ("private", dict(flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ))):
        try:
            with mmap.mmap(f.fileno(), 0, **kw) as m:
                out.append(name + ("-ok" if m[:] == ref else "-differs"))
        except OSError as e:
            out.append("%s-%s" % (name, e.strerror))
with open(dst, 'wb') as f:
    f.truncate(len(data))
with open(dst, 'r+b') as f:
    try:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_WRITE) as m:
            m[:] = data
            m.flush()
        out.append("write-ok")
    except OSError as e:
        out.append("write-" + e.strerror)
print(" ".join(out))
PY
)
[ "$mmres" = "shared-ok private-ok write-ok" ] || fail "mmap: $mmres"
same "$T/mw" mw

if [ "$FAILS" -gt 0 ]; then
    echo "--- ckptfs logs"; tail -20 "$C/logs/ckptfs.log" "$T/mnt2.log" 2>/dev/null
    echo "$FAILS failure(s)"
    exit 1
fi
echo "all passed"

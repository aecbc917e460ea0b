#!/bin/bash
# demo.sh - `make demo` (and `make demo KEEP=1`): a whole ckptfs cluster on
# this machine, narrated step by step with timings and sizes.
#
#   1. start ckpt-meta + 6 storage nodes with 4+2 erasure coding, mount ckptfs
#   2. write a synthetic training checkpoint with 8 parallel writers: 8 "rank"
#      shards of 128 MiB of random bytes + a small metadata file; time how
#      long the writers were blocked and how long until it was safe
#      (`ckpt commit` when that CLI exists, else fsync of every file)
#   3. kill -9 two of the six storage nodes
#   4. read everything back through a freshly mounted client (cold caches)
#      (`ckpt restore --latest --verify` when that CLI exists) and prove it
#      bit-exact against the sha256 sums taken before writing
#   5. show the cluster status
#   6. tear down; with KEEP=1 leave it running and say how to use and stop it
#
# Everything lives in one temp dir (the cluster dir of ckpt-cluster(1)).  A
# missing part (e.g. the FUSE client not built yet) is reported as such:
# the demo never fakes a result.  Environment: BIN (programs, default
# build/bin), KEEP=1, DEMO_DIR (parent of the temp dir, default /tmp).
set -u
cd "$(dirname "$0")/.." || exit 1
: "${BIN:=build/bin}" "${KEEP:=}" "${DEMO_DIR:=/tmp}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
NODES=6 EC=4+2 RANKS=8 SHARD_MIB=128
T0=$(date +%s.%N)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
rate() { awk -v by="$1" -v a="$2" -v b="$3" 'BEGIN { d = b - a; if (d <= 0) d = 1e-9; printf "%.0f MB/s", by / d / 1e6 }'; }
human() { numfmt --to=iec-i --suffix=B --format='%.2f' --round=nearest "$1"; }
# random BYTES: that many random bytes on stdout (AES-CTR keystream with a
# random key when openssl is there - several times faster than urandom).
random() {
    if command -v openssl >/dev/null; then
        openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$(head -c 32 /dev/urandom | base64)" \
            </dev/zero 2>/dev/null | head -c "$1"
    else
        head -c "$1" /dev/urandom
    fi
}
stamp() { printf '[%6.1fs]' "$(awk -v a="$T0" -v b="$(now)" 'BEGIN { print b - a }')"; }
step() { printf '\n%s \033[1m%s\033[0m\n' "$(stamp)" "$*"; }
info() { printf '           %s\n' "$*"; }
die() {
    printf '\nmake demo: %s\n' "$*" >&2
    exit 1
}

# ---- what it needs --------------------------------------------------------
missing=()
for p in ckpt-cluster ckpt-meta ckpt-node ckptfs; do
    if [ ! -x "$BIN/$p" ]; then
        missing+=("$p (not built: run make)")
    elif "$BIN/$p" --help 2>&1 | grep -q 'not implemented yet'; then
        missing+=("$p ($("$BIN/$p" --help 2>&1 | tail -1))")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    die "not available yet: the demo needs the metadata server (ckpt-meta), the
  storage daemon (ckpt-node), the FUSE client (ckptfs) and the launcher
  (ckpt-cluster); in $BIN these are missing:
$(printf '    %s\n' "${missing[@]}")
  Nothing was started."
fi
[ -c /dev/fuse ] || die "/dev/fuse is missing: load the fuse module (modprobe fuse) and retry."
if [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; then
    die "fusermount3 is missing (Debian package fuse3): needed to mount as a user."
fi
need=$(((RANKS * SHARD_MIB * 5 / 2 + 512) * 1024 * 1024)) # sources + 1.5x stored + slack
avail=$(($(df -Pk "$DEMO_DIR" | awk 'NR == 2 { print $4 }') * 1024))
[ "$avail" -ge "$need" ] ||
    die "$DEMO_DIR has $(human "$avail") free; the demo needs about $(human "$need")."
HAVE_CKPT=0
"$BIN/ckpt" --help 2>&1 | grep -q 'not implemented yet' || HAVE_CKPT=1

D=$(mktemp -d "$DEMO_DIR/ckptfs-demo.XXXXXX") || die "cannot create a temp dir in $DEMO_DIR"
M="$D/mnt"
STEP_DIR="job/step-000100"
finish() {
    local rc=$?
    trap - EXIT INT TERM
    if [ $rc = 0 ] && [ -n "$KEEP" ]; then
        exit 0
    fi
    "$CC" -q down "$D" >/dev/null 2>&1 || "$CC" down "$D"
    if [ $rc = 0 ]; then
        rm -rf "$D"
    elif [ -d "$D" ]; then
        printf 'The cluster is stopped; its logs are in %s/logs (ckpt-cluster logs %s).\n' "$D" "$D" >&2
    fi
    exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

printf '\033[1mckptfs demo\033[0m: a checkpoint filesystem cluster on this machine (%s cores, %s RAM)\n' \
    "$(nproc)" "$(human $(($(awk '/MemTotal/ { print $2 }' /proc/meminfo) * 1024)))"
info "cluster directory: $D"

# ---- 1. the cluster -----------------------------------------------------------
step "1/6  Starting ckpt-meta, $NODES storage nodes ($EC erasure coding) and the FUSE mount"
t=$(now)
"$CC" up "$D" --nodes "$NODES" --ec "$EC" 2>&1 | sed 's/^/           /'
[ "${PIPESTATUS[0]}" = 0 ] || die "ckpt-cluster up failed (see above)."
info "cluster up in $(secs "$t" "$(now)") s: every node UP, mounted at $M"

# ---- 2. the checkpoint ------------------------------------------------------------
step "2/6  Writing a checkpoint: $RANKS rank shards x $SHARD_MIB MiB of random bytes + metadata, $RANKS parallel writers"
SRC="$D/src"
mkdir -p "$SRC"
t=$(now)
for r in $(seq 0 $((RANKS - 1))); do
    random $((SHARD_MIB << 20)) >"$SRC/rank$r.pt" &
    [ $(((r + 1) % $(nproc))) = 0 ] && wait
done
wait
cat >"$SRC/metadata.json" <<EOF
{"step": 100, "world_size": $RANKS, "shards": [$(seq -s, -f '"rank%g.pt"' 0 $((RANKS - 1)))],
 "optimizer": "adamw", "created": "$(date -u +%FT%TZ)"}
EOF
(cd "$SRC" && sha256sum -- *) >"$D/SHA256SUMS"
TOTAL=$(du -cb "$SRC"/* | awk 'END { print $1 }')
info "prepared $(human "$TOTAL") of shards in $(secs "$t" "$(now)") s (not timed); sha256 sums in $D/SHA256SUMS"

mkdir -p "$M/$STEP_DIR" || die "cannot create a directory in the mount $M"
t_start=$(now)
for r in $(seq 0 $((RANKS - 1))); do
    (
        s=$(now)
        dd if="$SRC/rank$r.pt" of="$M/$STEP_DIR/rank$r.pt" bs=4M status=none || exit 1
        echo "$s $(now)" >"$D/writer$r.time"
    ) &
done
cp "$SRC/metadata.json" "$M/$STEP_DIR/metadata.json" || die "writing metadata.json failed"
wfail=0
for job in $(jobs -p); do wait "$job" || wfail=1; done
t_written=$(now)
[ $wfail = 0 ] || die "a writer failed (see the error above): the checkpoint was not written."
read -r bmin bmax < <(cat "$D"/writer*.time | awk '{ d = $2 - $1; if (min == "" || d < min) min = d; if (d > max) max = d }
    END { printf "%.2f %.2f\n", min, max }')
info "writers done: $(human "$TOTAL") in $(secs "$t_start" "$t_written") s ($(rate "$TOTAL" "$t_start" "$t_written")); each writer was blocked ${bmin}-${bmax} s"
if [ $HAVE_CKPT = 1 ]; then
    how="ckpt commit"
    CKPTFS_CONF="$D/ckptfs.conf" "$BIN/ckpt" commit "$M/$STEP_DIR" 2>&1 | sed 's/^/           /'
    [ "${PIPESTATUS[0]}" = 0 ] || die "ckpt commit failed (see above)."
else
    how="fsync of every file; 'ckpt commit' is not built yet"
    sync -- "$M/$STEP_DIR"/* || die "fsync failed: the checkpoint is not safe."
fi
t_safe=$(now)
info "safe ($how) $(secs "$t_written" "$t_safe") s later: durable on the nodes $(secs "$t_start" "$t_safe") s after the first byte ($(rate "$TOTAL" "$t_start" "$t_safe"))"
stored=$(du -cb "$D"/node*/t* 2>/dev/null | awk 'END { print $1 }')
info "stored on the $NODES nodes: $(human "$stored") for $(human "$TOTAL") of data ($(awk -v s="$stored" -v t="$TOTAL" 'BEGIN { printf "%.2f", s / t }')x; $EC costs $(awk -v e="$EC" 'BEGIN { split(e, a, "+"); printf "%.2f", (a[1] + a[2]) / a[1] }')x)"

# ---- 3. failures ------------------------------------------------------------------
step "3/6  Two storage nodes fail: kill -9 of node2 and node5"
for n in node2 node5; do
    "$CC" kill "$D" "$n" 2>&1 | sed 's/^/           /'
done
info "with $EC, every stripe has lost 2 of its 6 chunks: exactly the parity it has"

# ---- 4. read back ---------------------------------------------------------------
step "4/6  Reading the whole checkpoint back through a new client (cold caches, as on another node)"
"$CC" -q stop "$D" ckptfs || die "could not unmount the client"
"$CC" -q start "$D" ckptfs || die "could not mount a new client"
t_rstart=$(now)
if [ $HAVE_CKPT = 1 ]; then
    # What a restarting job does: find the newest committed checkpoint, read
    # every byte of it back through the mount, check each file's size and
    # crc32c against the manifest recorded at commit, and copy it out.
    latest=$(CKPTFS_CONF="$D/ckptfs.conf" "$BIN/ckpt" latest "$M/job") ||
        die "ckpt latest found no committed checkpoint."
    info "ckpt latest $M/job -> $latest"
    CKPTFS_CONF="$D/ckptfs.conf" "$BIN/ckpt" restore "$M/job" --latest --verify \
        --to "$D/restored" --jobs "$RANKS" 2>&1 | sed 's/^/           /'
    [ "${PIPESTATUS[0]}" = 0 ] || die "ckpt restore --latest --verify failed (see above)."
    t_read=$(now)
    info "read back $(human "$TOTAL") in $(secs "$t_rstart" "$t_read") s ($(rate "$TOTAL" "$t_rstart" "$t_read")) with 2 of $NODES nodes down, every file's crc32c checked"
    # sha256 of the restored copies (local files; not part of the timing).
    for f in $(cd "$SRC" && ls); do
        (cd "$D/restored" && sha256sum -- "$f") >"$D/$f.sum" &
    done
else
    # One reader per file, all at once; each checksums what it reads.
    for f in $(cd "$SRC" && ls); do
        (cd "$M/$STEP_DIR" && sha256sum -- "$f") >"$D/$f.sum" &
    done
fi
rfail=0
for job in $(jobs -p); do wait "$job" || rfail=1; done
[ $rfail = 0 ] || die "reading the checkpoint back failed (see the error above)."
cat "$D"/*.sum | sort -k2 >"$D/SHA256SUMS.read"
if [ $HAVE_CKPT != 1 ]; then
    t_read=$(now)
    info "read and checksummed $(human "$TOTAL") in $(secs "$t_rstart" "$t_read") s ($(rate "$TOTAL" "$t_rstart" "$t_read")) with 2 of $NODES nodes down"
fi
if sort -k2 "$D/SHA256SUMS" | cmp -s - "$D/SHA256SUMS.read"; then
    info "sha256 of all $((RANKS + 1)) files equal to the sums taken before writing: bit-exact"
else
    sort -k2 "$D/SHA256SUMS" | diff - "$D/SHA256SUMS.read" | sed 's/^/           /'
    die "the checkpoint read back is NOT what was written."
fi

# ---- 5. status ----------------------------------------------------------------------
step "5/6  Cluster status"
is_down() {
    "$CC" status "$D" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if all(n["state"] in ("DOWN", "OUT") for n in d["nodes"] if n["name"] in ("node2", "node5")) else 1)'
}
end=$((SECONDS + 20))
until is_down || [ $SECONDS -ge $end ]; do sleep 0.2; done
"$CC" status "$D" | sed 's/^/           /'
if [ $HAVE_CKPT = 1 ]; then
    info "the checkpoint (ckpt status):"
    CKPTFS_CONF="$D/ckptfs.conf" "$BIN/ckpt" status "$M/$STEP_DIR" 2>&1 | sed 's/^/             /'
fi

# ---- 6. the end ------------------------------------------------------------------------
if [ -n "$KEEP" ]; then
    step "6/6  Leaving the cluster running (KEEP=1)"
    info "it runs with 4 of its $NODES nodes; bring the others back with:"
    info "    $CC start $D node2; $CC start $D node5"
    info "the checkpoint is in $M/$STEP_DIR; try, for example:"
    info "    eval \"\$($CC env $D)\""
    info "    ls -l $M/$STEP_DIR; $CC status $D; $CC logs $D node1"
    info "stop it and remove everything with:"
    info "    $CC down $D && rm -rf $D"
else
    step "6/6  Tearing the cluster down"
    t=$(now)
    "$CC" down "$D" 2>&1 | sed 's/^/           /'
    info "stopped in $(secs "$t" "$(now)") s; removing $D"
fi
printf '\n%s demo finished in %s s: %s written by %d writers in %s s (safe after %s s),\n' \
    "$(stamp)" "$(secs "$T0" "$(now)")" "$(human "$TOTAL")" "$RANKS" "$(secs "$t_start" "$t_written")" \
    "$(secs "$t_start" "$t_safe")"
printf '           2 of %d storage nodes killed, everything read back bit-exact in %s s.\n' \
    "$NODES" "$(secs "$t_rstart" "$t_read")"

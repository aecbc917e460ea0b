# fail_lib.sh - helpers of the failure scenarios (test_fail_*.sh, issue 8).
# Sourced, not run.  Each test sets T (its temp dir) and C (its cluster dir)
# and calls fl_setup; the EXIT trap runs `ckpt-cluster down` and removes T
# only when nothing is mounted under it; the logs are kept in $T.logs when
# a test fails (or FL_KEEP_LOGS is set).  Every wait polls an explicit
# condition with a deadline (no bare sleeps).
: "${BIN:=build/bin}"
BIN=$(realpath "$BIN")
CC="$BIN/ckpt-cluster"
FAILS=0
STEP=""

say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; FAILS=$((FAILS + 1)); }
die() { printf 'FAIL [%s]: %s\n' "$STEP" "$*" >&2; "$CC" -q logs "$C" -n 30 >&2 2>&1; exit 1; }

fl_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "${C:-}" ] && [ -f "$C/cluster.state" ] && "$CC" -q down "$C" --timeout 5 >/dev/null 2>&1
    if [ $rc != 0 ] || [ "$FAILS" != 0 ] || [ -n "${FL_KEEP_LOGS:-}" ]; then
        cp -r "$C/logs" "$T.logs" 2>/dev/null && echo "logs kept in $T.logs" >&2
    fi
    if awk -v p="$T" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        echo "cleanup: mounts left under $T; not removing it" >&2
    else
        rm -rf "$T"
    fi
    exit $rc
}

fl_setup() {
    trap fl_cleanup EXIT
    trap 'exit 130' INT TERM
}

# wait_for SECS CMD...: poll CMD every 0.2 s until it succeeds or SECS pass.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# chunk_keys NODE...: "ino/stripe.index" of every chunk file on the nodes.
chunk_keys() {
    local n
    for n in "$@"; do
        (cd "$C/$n" && find . -path '*/chunks/*' -type f ! -name '*.tmp*' 2>/dev/null) |
            awk -F/ 'NF >= 3 { print $(NF-1) "/" $NF }'
    done
}

# per_stripe NODE...: "count ino/stripe" for every stripe on the nodes.
per_stripe() { chunk_keys "$@" | sed 's/\.[0-9a-f]*$//' | sort | uniq -c | awk '{ print $1, $2 }'; }

# stripes_full K_PLUS_M NODE...: every stripe has exactly K_PLUS_M chunks.
stripes_full() {
    local want=$1; shift
    [ -n "$(per_stripe "$@")" ] && ! per_stripe "$@" | awk -v w="$want" '$1 != w { bad = 1 } END { exit !bad }'
}

# node_of_most_chunks NODE...: the node holding the most chunk files.
node_of_most_chunks() {
    local n best="" bc=-1 c
    for n in "$@"; do
        c=$(chunk_keys "$n" | wc -l)
        [ "$c" -gt "$bc" ] && { best=$n; bc=$c; }
    done
    echo "$best"
}

# log_has FILE PATTERN: FILE contains PATTERN (grep -E).
log_has() { grep -Eq -- "$2" "$1" 2>/dev/null; }
# rebuild_settled: ckpt-meta's last rebuild line says "rebuild complete"
# (planning and progress lines come before it while work is pending).
rebuild_settled() {
    grep -E "rebuild(:| complete)" "$C/logs/meta.log" 2>/dev/null | tail -1 | grep -q "rebuild complete"
}
# log_lines FILE: its line count (an offset for log_since).
log_lines() { wc -l <"$1" 2>/dev/null || echo 0; }
# log_since FILE LINE PATTERN: a line after LINE matches PATTERN.
log_since() { tail -n +"$(($2 + 1))" "$1" 2>/dev/null | grep -Eq -- "$3"; }
# ups_since FILE LINE N: at least N nodes UP ("is UP", or registered again
# unchanged: "it is UP") after LINE.
ups_since() { [ "$(tail -n +"$(($2 + 1))" "$1" 2>/dev/null | grep -cE '\) is UP|: it is UP')" -ge "$3" ]; }

# check_files: every file of $T/src reads back bit-exact through the mount.
check_files() {
    local f ok=0
    for f in "$T"/src/*; do
        cmp -s "$f" "$C/mnt/$(basename "$f")" || { echo "differs: $(basename "$f")" >&2; ok=1; }
    done
    return $ok
}

# make_files N SIZE...: write random files into $T/src and copy them in.
make_files() {
    local s i=0
    mkdir -p "$T/src"
    for s in "$@"; do
        i=$((i + 1))
        head -c "$s" /dev/urandom >"$T/src/f$i-$s" || return 1
        cp "$T/src/f$i-$s" "$C/mnt/" || return 1
        sync "$C/mnt/f$i-$s" || return 1
    done
}

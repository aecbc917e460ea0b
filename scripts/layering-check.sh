#!/bin/sh
# layering-check.sh - enforce the include rules of lib/README.md:
#   lib/ never includes meta/, daemon/, fs/ or tools/ headers;
#   meta/, daemon/, fs/ and tools/ include lib/ headers and their own only.
# Exit 1 with the offending lines when a rule is broken.
set -u
cd "$(dirname "$0")/.." || exit 1
bad=0
check() { # dir, pattern of forbidden header names
    out=$(grep -nE "^#[[:space:]]*include[[:space:]]*\"($2)" $1/*.c $1/*.h 2>/dev/null)
    if [ -n "$out" ]; then echo "layering violation in $1/:"; echo "$out"; bad=1; fi
}
check lib 'meta_|node_|fs_|\.\./'
check meta 'node_|fs_|\.\./(daemon|fs|tools)'
check daemon 'meta_|fs_|\.\./(meta|fs|tools)'
check fs 'meta_|node_|\.\./(meta|daemon|tools)'
check tools 'meta_|node_|fs_|\.\./(meta|daemon|fs)'
# lib/ base modules depend on nothing but each other's base set.
for f in lib/log.c lib/log.h lib/err.c lib/err.h lib/alloc.c lib/alloc.h lib/crc.c lib/crc.h; do
    [ -f "$f" ] || continue
    out=$(grep -nE '^#[[:space:]]*include[[:space:]]*"' "$f" | grep -vE '"(log|err|alloc|crc)\.h"')
    if [ -n "$out" ]; then echo "layering violation: $f includes beyond log/err/alloc/crc:"; echo "$out"; bad=1; fi
done
[ $bad = 0 ] && echo "  ok layering (lib -> daemons/tools, never back)"
exit $bad

#!/bin/sh
# deps.sh - install the Debian packages ckptfs needs to build, test and demo,
# if any are missing.  Prints what it installs; silent and fast (one
# dpkg-query) when everything is present.  Called by the Makefile before it
# evaluates pkg-config, so `make`, `make check` and `make demo` work as the
# very first command on a fresh Debian 12 machine.
#
# usage: scripts/deps.sh [extra-package ...]
set -eu
PKGS="build-essential pkg-config libfuse3-dev fuse3 libibverbs-dev librdmacm-dev
      libzstd-dev libisal-dev check liblmdb-dev libsodium-dev libinih-dev
      python3 curl rsync xxd procps attr $*"
missing=""
for p in $PKGS; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$s" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "ckptfs: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "ckptfs: not root and no sudo; install as root: apt-get install$missing" >&2
        exit 1
    fi
else
    SUDO=
fi
$SUDO apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >&2
echo "ckptfs: installed:$missing" >&2

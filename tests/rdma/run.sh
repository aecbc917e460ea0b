#!/bin/bash
# run.sh - run ckptfs's RDMA tests for real, on soft-RoCE (rdma_rxe) inside a
# throw-away qemu guest, on a machine that has no RDMA hardware.
#
# usage: tests/rdma/run.sh [check|test|bench|cluster|all|shell 'CMD']
#   check    the transport unit suite over rxe0 (rdma, auto) + TCP in the guest
#   cluster  tests/rdma/cluster.sh: meta + 6 nodes + FUSE mount over RDMA
#   test     check and cluster in one boot (what `make check` runs)
#   bench    RDMA vs TCP messages/s and MB/s inside the guest (bench_net)
#   all      check, cluster and bench in one boot (`make check-rdma`)
#   shell    run CMD in the guest (debugging), e.g. 'ibv_devices; rdma link'
#
# How: the guest boots Debian's stock kernel (linux-image-amd64, fetched with
# apt-get download) under qemu TCG with a busybox initramfs; the host's / is
# shared read-only over 9p with a tmpfs overlay, so the binaries built here
# run unchanged there; the repository's build/ is shared read-write.  In the
# guest, a dummy netdev "rxenet" carries 10.77.0.1-8/24 and rdma device rxe0
# (facts: crc32_generic must be loaded before `rdma link add`; rxe on lo fails
# route resolution; rxe is not namespace-aware, so one guest with several
# addresses stands for several nodes).  Traffic never leaves the guest.
#
# Installs, saying so, what it needs (qemu-system-x86 busybox-static kmod cpio
# iproute2 ibverbs-providers ibverbs-utils rdmacm-utils perftest; never
# Debian's rdma-core, which pulls udev and upgrades systemd on the host).
# Caches the guest kernel + initramfs in build/rdma-vm/ (never in the repo).
#
# Exit: the guest command's status; 77 = skipped (the reason is printed);
# 124 = timed out; 125 = the guest died.
# env: TESTBIN (default build/tests; must be under build/), BIN (build/bin),
#      RDMAVM_SMP (default 2), RDMAVM_MEM (MiB, default 2048),
#      RDMAVM_TIMEOUT (s, default 1500), CKPT_SKIP_RDMA=1 skips,
#      RDMAVM_KEEP_LOG=1 keeps the console log in build/rdma-vm/last-console.log
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
MODE=${1:-check}
CACHE=$ROOT/build/rdma-vm
SMP=${RDMAVM_SMP:-2}; MEM=${RDMAVM_MEM:-2048}; LIMIT=${RDMAVM_TIMEOUT:-1500}

skip() { echo "rdma: SKIPPED: $*"; exit 77; }
say() { echo "rdma: $*"; }

TESTBIN=${TESTBIN:-build/tests}; BIN=${BIN:-build/bin}
TESTBIN=$(realpath -m "$TESTBIN"); BIN=$(realpath -m "$BIN")
case "$TESTBIN/" in "$ROOT/build/"*) ;; *) echo "rdma: TESTBIN must be under build/" >&2; exit 2 ;; esac
case "$MODE" in
check|test|bench|cluster|all)
    GUESTCMD="TESTBIN='$TESTBIN' BIN='$BIN' /bin/sh $ROOT/tests/rdma/guest.sh $MODE" ;;
shell) [ $# -ge 2 ] || { echo "usage: $0 shell 'CMD'" >&2; exit 2; }; GUESTCMD=$2 ;;
-h|--help|help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "usage: $0 [check|test|bench|cluster|all|shell 'CMD']" >&2; exit 2 ;;
esac

# ---- 0. can we run here at all?
[ "${CKPT_SKIP_RDMA:-0}" = 1 ] && skip "CKPT_SKIP_RDMA=1 is set"
[ "$(uname -m)" = x86_64 ] || skip "the guest recipe is for x86_64 hosts (this is $(uname -m))"
[ "$(id -u)" = 0 ] || skip "needs root (apt-get for qemu and the guest kernel; 9p export of /); run as root or 'sudo make check-rdma'"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
    skip "not a Debian/Ubuntu host (needs apt-get for qemu and the guest kernel)"
need=""
case "$MODE" in
check|test) need="$TESTBIN/check_unit" ;;
bench) need="$TESTBIN/bench_net" ;;
all) need="$TESTBIN/check_unit $TESTBIN/bench_net" ;;
esac
for b in $need; do
    [ -x "$b" ] || skip "$b is not built (run 'make check-rdma', which builds it first)"
done

# ---- 1. host packages (the userspace tools run in the guest from the host root)
PKGS="qemu-system-x86 busybox-static kmod cpio iproute2 ibverbs-providers
      ibverbs-utils rdmacm-utils perftest"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
          grep -q '^install ok installed' || echo "$p"; done | xargs)
if [ -n "$missing" ]; then
    say "installing host packages for the soft-RoCE guest: $missing"
    apt-get update -q >/dev/null 2>&1 || true
    # --no-install-recommends and no rdma-core: it pulls udev and upgrades systemd
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            $missing >"$ROOT/build/rdma-apt.log" 2>&1; then
        tail -5 "$ROOT/build/rdma-apt.log"
        skip "could not install $missing (see build/rdma-apt.log)"
    fi
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found after install"
[ -x /bin/busybox ] || skip "/bin/busybox (busybox-static) not found after install"

# ---- 2. guest kernel + initramfs, built once into build/rdma-vm
MODS="crc32_generic virtio_pci 9pnet_virtio 9p overlay rdma_rxe ib_uverbs rdma_ucm dummy fuse"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"; flock 9          # one builder at a time
if [ ! -s "$CACHE/initrd.img" ] || [ ! -s "$CACHE/vmlinuz" ]; then
    say "building the guest kernel + initramfs in build/rdma-vm (once)"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -q >/dev/null 2>&1 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
              awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || skip "apt knows no linux-image-amd64 (no Debian kernel to boot)"
    kv=${pkg#linux-image-}
    rm -rf "$CACHE/kroot" "$CACHE/ird" "$CACHE/deb"; mkdir -p "$CACHE/ird/bin" "$CACHE/deb"
    say "downloading $pkg (apt-get download; unpacked under build/rdma-vm only)"
    (cd "$CACHE/deb" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
        skip "apt-get download $pkg failed"
    dpkg-deb -x "$CACHE"/deb/"$pkg"_*.deb "$CACHE/kroot" || skip "cannot unpack $pkg"
    depmod -b "$CACHE/kroot" "$kv" || skip "depmod failed for $kv"
    cp "$CACHE/kroot/boot/vmlinuz-$kv" "$CACHE/vmlinuz.tmp"
    cp /bin/busybox "$CACHE/ird/bin/busybox"
    modprobe -d "$CACHE/kroot" -S "$kv" -a --show-depends $MODS |
        awk '$1=="insmod" && !seen[$2]++ {print $2}' > "$CACHE/ird/mods.full"
    while read -r ko; do
        cp "$ko" "$CACHE/ird/"; echo "/${ko##*/}"; done \
        < "$CACHE/ird/mods.full" > "$CACHE/ird/modules"
    cp "$ROOT/tests/rdma/init.sh" "$CACHE/ird/init"; chmod +x "$CACHE/ird/init"
    (cd "$CACHE/ird" && find . | cpio -o -H newc --quiet) > "$CACHE/initrd.tmp"
    mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"; mv "$CACHE/initrd.tmp" "$CACHE/initrd.img"
    echo "$pkg" > "$CACHE/kernel"
    rm -rf "$CACHE/kroot" "$CACHE/deb" "$CACHE/ird"
fi
flock -u 9

# ---- 3. per-run stage-2 script, read by the guest through the 9p root
RUN=$(mktemp -d "$CACHE/run.XXXXXX"); LOG=$RUN/console.log
trap 'rm -rf "$RUN"' EXIT
printf '%s\n' "$GUESTCMD" > "$RUN/cmd"
cat > "$RUN/stage2" <<EOF
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm; cp '$RUN/cmd' /dev/shm/.rdmavm-cmd
mount -t tmpfs tmpfs /run; mkdir -p '$ROOT/build'
# No tmpfs on /tmp: / is already a writable overlay, and a fresh /tmp would
# hide a repository cloned under /tmp (as CI may do) from the guest.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share '$ROOT/build'
dmesg -n 1; hostname rdmavm; export HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up
ip link add rxenet type dummy
for i in 1 2 3 4 5 6 7 8; do ip addr add 10.77.0.\$i/24 dev rxenet; done
ip link set rxenet up; rdma link add rxe0 type rxe netdev rxenet
echo "=== rdma-vm: guest up after \$(cut -d' ' -f1 /proc/uptime)s ==="
cd '$ROOT' && /bin/sh /dev/shm/.rdmavm-cmd
echo "=== rdma-vm: exit \$? after \$(cut -d' ' -f1 /proc/uptime)s ==="
sync; exec /bin/busybox poweroff -f
EOF

# ---- 4. boot; console to stdout and the log (which carries the exit status)
say "booting the soft-RoCE guest ($SMP vCPU, ${MEM} MiB, TCG, limit ${LIMIT}s): $MODE"
timeout -k 10 "$LIMIT" qemu-system-x86_64 -accel tcg,thread=multi \
    -smp "$SMP" -m "$MEM" -cpu max -nodefaults -no-user-config -no-reboot \
    -display none -monitor none -serial stdio \
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 quiet loglevel=1 panic=-1 rdmavm_run=$RUN/stage2" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$ROOT/build",mount_tag=share,security_model=none,multidevs=remap \
    < /dev/null 2>&1 | tr -d '\r' | tee "$LOG"
qrc=${PIPESTATUS[0]}
[ "${RDMAVM_KEEP_LOG:-0}" = 1 ] && cp "$LOG" "$CACHE/last-console.log"
[ "$qrc" = 124 ] && { echo "rdma: guest timed out after ${LIMIT}s"; exit 124; }
rc=$(sed -n 's/^=== rdma-vm: exit \([0-9]*\) .*/\1/p' "$LOG" | tail -1)
[ -n "$rc" ] || { echo "rdma: the guest died (qemu rc $qrc)"; exit 125; }
exit "$rc"

#!/bin/busybox sh
# init.sh - /init of the soft-RoCE guest's initramfs (tests/rdma/run.sh).
# Loads the modules listed in /modules (crc32_generic first: rdma_rxe needs
# it before `rdma link add`), mounts the host's / read-only over 9p under a
# tmpfs overlay, and switches to it to run the stage-2 script named on the
# kernel command line (rdmavm_run=).
/bin/busybox --install -s /bin
mkdir -p /proc /dev /lower /upper /newroot
mount -t proc proc /proc; mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod $m || echo "rdma-vm: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 \
      hostroot /lower || echo "rdma-vm: 9p root mount failed"
mount -t tmpfs -o mode=755 tmpfs /upper; mkdir /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w \
      overlay /newroot || echo "rdma-vm: overlay mount failed"
umount /proc /dev
exec switch_root /newroot /bin/sh "$rdmavm_run"
echo "rdma-vm: switch_root failed"; poweroff -f

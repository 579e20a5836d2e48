#!/usr/bin/env bash
# Builds the systemd test guest of hack/vm.sh: a Debian 12 system from Debian's packages
# (mmdebstrap; apt's own sources, no other network) with systemd as PID 1, dbus, cgroup2 alone
# at /sys/fs/cgroup (systemd 252's default), Debian's kernel and initramfs, and the engines
# berth must serve there: containerd (+ runc shim), docker.io, podman + conmon, and CRIU.
#
# Usage: hack/systemd-vm/make-guest.sh OUTDIR
# Makes OUTDIR/{vmlinuz,initrd.img,root.img} (root.img: ext4, made with mkfs.ext4 -d, no loop
# device). The guest runs hack/systemd-vm/run-tests (installed as /usr/local/sbin/berth-vm-run)
# from berth-vm-tests.service once booted; see that script for what it reads from its
# second disk.
set -euo pipefail
out=${1:?usage: make-guest.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
command -v mmdebstrap >/dev/null || { echo "make-guest: mmdebstrap not found (apt-get install mmdebstrap)" >&2; exit 2; }
command -v mkfs.ext4 >/dev/null || { echo "make-guest: mkfs.ext4 not found (apt-get install e2fsprogs)" >&2; exit 2; }

pkgs=(
    systemd systemd-sysv dbus udev kmod iproute2 procps util-linux e2fsprogs
    linux-image-amd64 initramfs-tools
    containerd runc crun docker.io podman conmon
    busybox-static strace
    # hack/bench.sh --systemd-cgroup in the guest (hack/vm.sh --bench).
    hyperfine jq time
    # rootless containers under the user's systemd instance (--systemd-cgroup as an
    # ordinary user, rootless podman with its systemd cgroup manager): the user's session
    # bus, newuidmap/newgidmap, podman's pause process.
    dbus-user-session uidmap catatonit
    # checkpoint/restore (berth checkpoint/restore, podman container checkpoint, ctr task
    # checkpoint): Debian 12's CRIU works with Debian 12's kernel.
    criu
    # AppArmor on, as Debian and Ubuntu ship it: dockerd then loads its docker-default
    # profile (apparmor_parser) and passes it to the runtime.
    apparmor
)
tree=$out/tree
rm -rf "$tree" "$out/root.img" "$out/vmlinuz" "$out/initrd.img"
mkdir -p "$out"
include=$(IFS=,; echo "${pkgs[*]}")
# No docs, man pages or translations: a smaller image, faster to build and boot.
mmdebstrap --variant=minbase --include="$include" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='echo berth-systemd-vm >"$1/etc/hostname"' \
    --customize-hook='printf "/dev/vda / ext4 rw,relatime 0 1\n" >"$1/etc/fstab"' \
    --customize-hook='chroot "$1" passwd -d root' \
    --customize-hook="copy-in $here/run-tests /usr/local/sbin" \
    --customize-hook="copy-in $here/berth-vm-tests.service /etc/systemd/system" \
    --customize-hook='chmod 0755 "$1/usr/local/sbin/run-tests"' \
    --customize-hook='chroot "$1" systemctl enable berth-vm-tests.service' \
    --customize-hook='chroot "$1" systemctl mask serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer' \
    --customize-hook='chroot "$1" systemctl disable docker.service docker.socket containerd.service podman.socket 2>/dev/null || true' \
    bookworm "$tree"
cp -L "$tree"/boot/vmlinuz-* "$out/vmlinuz"
cp -L "$tree"/boot/initrd.img-* "$out/initrd.img"
mkfs.ext4 -q -F -L berth-root -d "$tree" "$out/root.img" 6G
rm -rf "$tree"

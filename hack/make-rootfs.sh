#!/bin/sh
# Builds a minimal busybox root filesystem from Debian's busybox-static: no registry, no
# network. Usage: hack/make-rootfs.sh DIR
set -eu
dest=${1:?usage: hack/make-rootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "make-rootfs: $busybox is not a busybox binary (apt-get install busybox-static)" >&2
    exit 1
fi
if ! LC_ALL=C ldd "$busybox" 2>&1 | grep -q "not a dynamic"; then
    echo "make-rootfs: $busybox is not statically linked (apt-get install busybox-static)" >&2
    exit 1
fi
mkdir -p "$dest"
cd "$dest"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home var/run
chmod 1777 tmp
cp "$busybox" bin/busybox
for applet in $(./bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > etc/group
echo berth > etc/hostname

#!/usr/bin/env bash
# Runs berth's cgroup integration tests on a pure cgroup v2 host: Debian's own kernel
# (linux-image-amd64) booted under qemu-system-x86 with KVM, with an initramfs built here.
#
# Why: this project's machines are cgroup v1 hybrids, so the v2 code paths (cgroup.procs in
# one tree, the freezer in cgroup.freeze, the eBPF device filter, CLONE_INTO_CGROUP,
# subtree_control delegation) would otherwise never run. In the VM cgroup2 is mounted alone
# at /sys/fs/cgroup (cgroup_no_v1=all) with every controller enabled for delegation.
#
# What goes into the initramfs (built under target/v2-vm/, no network, Debian packages only):
# busybox-static, hack/v2-vm/init as /init, the integration test binary that cargo builds and
# berth at the absolute paths they were built for (the tests run env!("CARGO_BIN_EXE_berth")),
# the harness's busybox template rootfs and hack/make-rootfs.sh at theirs, util-linux's
# setpriv and nsenter, procps' ps, strace (if installed), and every shared library these
# link (ldd). The kernel package is fetched with `apt-get download` once and only its boot/
# is unpacked (target/v2-vm/kernel/); nothing is installed on this host.
#
# The VM runs the tests whose libtest filters are in hack/v2-vm-tests.txt with
# --test-threads=2, prints their output and `BERTH-V2-VM: exit=N` on the serial console and
# powers off. This script's exit status is N; 1 when the VM never printed it (crash or
# timeout); 2 for bad input, with one line saying why.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: hack/v2-vm.sh [options] [-- LIBTEST-ARGS...]

Boots Debian's kernel under qemu (KVM) with cgroup2 alone at /sys/fs/cgroup and runs the
integration tests selected by hack/v2-vm-tests.txt there; exits with the tests' status.

  --tcg            allow software emulation when /dev/kvm is not usable (slow: minutes)
  --kernel FILE    boot this bzImage instead of Debian's linux-image-amd64 (fetched once
                   with apt-get download into target/v2-vm/kernel/)
  --tests FILE     libtest filters, one per line (default: hack/v2-vm-tests.txt)
  --timeout SECS   give up on the VM after SECS (default: 300 with KVM, 900 with TCG)
  --verbose        show the kernel's boot messages
  --probe-kvm      only check /dev/kvm: exit 0 if usable, else print why and exit 1
  --probe-accel    only check how the VM can run: print kvm (/dev/kvm usable) or tcg (qemu's
                   software emulation; why not KVM goes to stderr) and exit 0, or print why
                   neither works and exit 1
  -h, --help       this text
  -- ARGS          libtest filters/options to use instead of the tests file

Environment: V2VM_ACCEL=kvm|tcg (tcg = --tcg), V2VM_KERNEL, V2VM_TIMEOUT, CARGO.
Run as root or as a user who can open /dev/kvm. `make v2-test` builds and runs it.
EOF
}

die() {
    echo "v2-vm: $*" >&2
    exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
accel=${V2VM_ACCEL:-kvm}
kernel=${V2VM_KERNEL:-}
timeout_s=${V2VM_TIMEOUT:-}
tests_file=$here/v2-vm-tests.txt
verbose=0
probe=
cli_filters=()
while [ $# -gt 0 ]; do
    case $1 in
    --tcg) accel=tcg ;;
    --kernel) kernel=${2:?--kernel needs a FILE} && shift ;;
    --kernel=*) kernel=${1#*=} ;;
    --tests) tests_file=${2:?--tests needs a FILE} && shift ;;
    --tests=*) tests_file=${1#*=} ;;
    --timeout) timeout_s=${2:?--timeout needs SECS} && shift ;;
    --timeout=*) timeout_s=${1#*=} ;;
    --verbose) verbose=1 ;;
    --probe-kvm) probe=kvm ;;
    --probe-accel) probe=accel ;;
    -h | --help) usage && exit 0 ;;
    --) shift && cli_filters=("$@") && break ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

# Why /dev/kvm cannot be used, or nothing when it can (opened read-write, as qemu does).
kvm_problem() {
    if [ ! -e /dev/kvm ]; then
        echo "/dev/kvm is not usable here (it does not exist: no hardware virtualization, or kvm is not loaded)"
    elif ! (exec 3<>/dev/kvm) 2>/dev/null; then
        echo "/dev/kvm is not usable here (cannot open it read-write as $(id -un))"
    elif ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
        # Seen on these machines: a /dev/kvm whose guests hang before the kernel's first line.
        echo "/dev/kvm is not usable here (the CPU shows no vmx/svm flag: virtualization is not exposed to this machine)"
    fi
}

# Why qemu cannot emulate an x86 guest in software, or nothing when it can.
tcg_problem() {
    if ! command -v qemu-system-x86_64 >/dev/null; then
        echo "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    elif ! qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg; then
        echo "this qemu-system-x86_64 has no software emulation (tcg is not in its -accel help)"
    fi
}

case $probe in
kvm)
    why=$(kvm_problem)
    [ -z "$why" ] || { echo "$why" && exit 1; }
    exit 0
    ;;
accel)
    why_not_kvm=$(kvm_problem)
    [ -n "$why_not_kvm" ] || { echo kvm && exit 0; }
    why_not_tcg=$(tcg_problem)
    [ -z "$why_not_tcg" ] || { echo "neither KVM nor software emulation can run the VM: $why_not_kvm; $why_not_tcg" && exit 1; }
    echo "v2-vm: $why_not_kvm; software emulation (tcg) instead, much slower" >&2
    echo tcg
    exit 0
    ;;
esac

case $accel in
kvm)
    why=$(kvm_problem)
    [ -z "$why" ] || die "$why; pass --tcg (or V2VM_ACCEL=tcg) to use software emulation, much slower"
    cpu=host
    : "${timeout_s:=300}"
    ;;
tcg)
    cpu=max
    : "${timeout_s:=900}"
    ;;
*) die "V2VM_ACCEL=$accel: must be kvm or tcg" ;;
esac
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout $timeout_s: not a number of seconds"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
busybox=/bin/busybox
[[ -x $busybox && $(LC_ALL=C ldd "$busybox" 2>&1) == *"not a dynamic"* ]] ||
    die "$busybox is missing or not static (apt-get install busybox-static)"

if [ "${#cli_filters[@]}" -gt 0 ]; then
    filters=("${cli_filters[@]}")
else
    [ -f "$tests_file" ] || die "--tests $tests_file: no such file"
    mapfile -t filters < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$tests_file")
    [ "${#filters[@]}" -gt 0 ] || die "$tests_file selects no tests"
fi

# --- the kernel ---------------------------------------------------------------------------
# A kernel given by path, else Debian's linux-image-amd64 (the versioned package it depends
# on), fetched once into the cache. Without apt package lists a kernel fetched earlier is used.
cargo_target=${CARGO_TARGET_DIR:-$repo/target}
work=$cargo_target/v2-vm
mkdir -p "$work"
if [ -n "$kernel" ]; then
    [ -f "$kernel" ] || die "--kernel $kernel: no such file"
    [ -r "$kernel" ] || die "--kernel $kernel: not readable by $(id -un)"
    # The x86 boot protocol's header magic, at 0x202 of every bzImage.
    [ "$(dd if="$kernel" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ] ||
        die "--kernel $kernel: not a Linux x86 kernel image (bzImage)"
else
    pkg=$({ apt-cache depends linux-image-amd64 2>/dev/null || true; } |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
    if [ -n "$pkg" ]; then
        dir=$work/kernel/$pkg
        if ! compgen -G "$dir/boot/vmlinuz-*" >/dev/null; then
            echo "v2-vm: fetching $pkg (apt-get download; only its boot/ is unpacked)" >&2
            dl=$(mktemp -d "$work/download.XXXXXX")
            if ! (cd "$dl" && apt-get download -q "$pkg") >"$dl/log" 2>&1; then
                why=$(grep -m 1 '^E:' "$dl/log" || tail -n 1 "$dl/log")
                rm -rf "$dl"
                die "no kernel: apt-get download $pkg failed: $why (or pass --kernel FILE)"
            fi
            rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
            dpkg-deb --fsys-tarfile "$dl"/*.deb | tar -x -C "$dir.tmp" ./boot
            rm -rf "$dl" "$dir" && mv "$dir.tmp" "$dir"
        fi
        kernel=$(compgen -G "$dir/boot/vmlinuz-*" | head -n 1)
    else
        kernel=$(compgen -G "$work/kernel/linux-image-*/boot/vmlinuz-*" | sort -V | tail -n 1) ||
            true
        [ -n "$kernel" ] ||
            die "no kernel: apt does not know linux-image-amd64 (run apt-get update) and none was fetched before (or pass --kernel FILE)"
    fi
fi

# --- what the tests run -----------------------------------------------------------------
# cargo's JSON names the test binary and berth; berth's path is compiled into the tests.
cargo=${CARGO:-cargo}
json=$(cd "$repo" && "$cargo" test --test integration --no-run --message-format=json) ||
    die "cargo test --test integration --no-run failed"
artifact() { # artifact KIND NAME: the executable cargo built for that target
    printf '%s\n' "$json" | grep -F "\"kind\":[\"$1\"]" | grep -F "\"name\":\"$2\"" |
        grep -o '"executable":"[^"]*"' | cut -d '"' -f 4 | tail -n 1 || true
}
testbin=$(artifact test integration)
berth=$(artifact bin berth)
if [ ! -x "$testbin" ] || [ ! -x "$berth" ]; then
    die "cargo built no integration test binary or no berth"
fi

# The harness's template rootfs (env!("CARGO_TARGET_TMPDIR")/busybox-rootfs), made as the
# harness makes it, so that the VM needs no copy of the script's inputs.
template=$cargo_target/tmp/busybox-rootfs
if [ ! -e "$template/bin/busybox" ]; then
    rm -rf "$template.tmp$$"
    "$repo/hack/make-rootfs.sh" "$template.tmp$$"
    mv "$template.tmp$$" "$template" 2>/dev/null || rm -rf "$template.tmp$$"
fi

# --- the initramfs ------------------------------------------------------------------------
root=$work/root
initrd=$work/initramfs.cpio.gz
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,v2-vm}
trap 'rm -rf "$root"' EXIT

# put SRC [DEST]: SRC at DEST (default: the same path) in the initramfs, with its libraries
# and their dynamic loader at the paths ldd names. Debug info is left out of big binaries.
put() {
    local src=$1 dest=${2:-$1} lib
    mkdir -p "$root$(dirname "$dest")"
    if [ "$(stat -c %s "$src")" -gt 4000000 ] && command -v strip >/dev/null; then
        strip --strip-debug -o "$root$dest" "$src"
    else
        cp -L "$src" "$root$dest"
    fi
    chmod 0755 "$root$dest"
    for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/v2-vm/init" "$root/init"
chmod 0755 "$root/init"
# The real tools where the tests (or berth ps) expect their options; busybox otherwise.
for tool in setpriv nsenter ps strace; do
    if path=$(command -v "$tool") && [ "$(readlink -f "$path")" != "$(readlink -f "$busybox")" ]; then
        put "$path" "/usr/bin/$tool"
    fi
done
put "$berth"
put "$testbin"
put "$repo/hack/make-rootfs.sh"
mkdir -p "$root$(dirname "$template")"
cp -a "$template" "$root$template"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '%s\n' "$testbin" >"$root/v2-vm/testbin"
printf '%s\n' "${filters[@]}" >"$root/v2-vm/filters"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -1 >"$initrd.tmp"
mv "$initrd.tmp" "$initrd"
rm -rf "$root"
trap - EXIT

# --- the VM -------------------------------------------------------------------------------
cmdline="console=ttyS0 rdinit=/init cgroup_no_v1=all panic=-1"
[ "$verbose" = 1 ] || cmdline+=" quiet loglevel=3"
log=$work/console.log
echo "v2-vm: booting $(basename "$kernel") ($accel, 2 vCPUs, 2 GiB, timeout ${timeout_s}s);" \
    "initramfs $(du -h "$initrd" | cut -f 1); console also in $log" >&2
start=$SECONDS
set +e
timeout --foreground -k 10 "$timeout_s" \
    qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m 2048 -smp 2 \
    -nodefaults -no-user-config -display none -serial stdio -nic none -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" </dev/null | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
result=$(tr -d '\r' <"$log" | sed -n 's/^BERTH-V2-VM: exit=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
if [ -z "$result" ]; then
    if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
        echo "v2-vm: the VM timed out after ${timeout_s}s without reporting the tests' result (console: $log)" >&2
    else
        echo "v2-vm: the VM stopped without reporting the tests' result (qemu exit $qemu_rc; console: $log)" >&2
    fi
    exit 1
fi
echo "v2-vm: tests exited with $result in the cgroup v2 VM ($((SECONDS - start))s in the VM)" >&2
exit "$result"

#!/usr/bin/env bash
# Runs berth's integration tests on test hosts of another shape than this project's machines
# (cgroup v1 hybrids without systemd), as VMs booting Debian's kernel under qemu: with KVM where
# /dev/kvm is usable, else with qemu's software emulation (TCG). One harness, two guests:
#
# --guest v2 (default): a pure cgroup v2 host. Debian's kernel (linux-image-amd64, fetched with
#   `apt-get download`, only its boot/ unpacked into target/vm/kernel/) with an initramfs built
#   here: busybox-static, hack/v2-vm/init as /init (cgroup2 alone at /sys/fs/cgroup, every
#   controller delegated), util-linux's setpriv and nsenter, procps' ps, strace, and the
#   shared libraries these link. The v2 code paths (cgroup.procs in one tree, cgroup.freeze,
#   the eBPF device filter, CLONE_INTO_CGROUP, subtree_control) would otherwise never run.
#   Tests: hack/v2-vm-tests.txt.
# --guest systemd: the host most users have. A Debian 12 system that
#   hack/systemd-vm/make-guest.sh builds with mmdebstrap from Debian's packages (systemd as
#   PID 1, dbus, cgroup2 alone, containerd, docker.io, podman + conmon), cached in
#   target/vm/systemd-guest-HASH/ and rebuilt only when its recipe (hack/systemd-vm/) changes;
#   its own kernel and initramfs boot it, its disk is used read-only (snapshot). The tests run
#   from berth-vm-tests.service once it is up. Tests: hack/systemd-vm-tests.txt, ignored ones
#   included (those that need systemd are ignored on a plain `cargo test`).
# --guest systemd-v1: the same image booted with systemd.unified_cgroup_hierarchy=0, systemd's
#   cgroup v1 mode (hybrid: v1 controllers, systemd's own cgroup2 tree at /sys/fs/cgroup/unified),
#   as older distributions and some Kubernetes nodes run it. Tests: hack/systemd-v1-vm-tests.txt.
#
# Either way the integration test binary cargo builds and berth go in at the absolute paths they
# were built for (the tests run env!("CARGO_BIN_EXE_berth")), with the harness's busybox template
# rootfs and hack/'s scripts at theirs. The guest prints the tests' output and
# `BERTH-VM: exit=N` on the serial console and powers off. This script's exit status is N; 1
# when the VM never printed it (crash or timeout); 2 for bad input, with one line saying why.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: hack/vm.sh [options] [-- LIBTEST-ARGS...]

Boots a test guest under qemu (KVM) and runs the integration tests its tests file selects
there; exits with the tests' status.

  --guest KIND     v2 (default): busybox initramfs, cgroup2 alone, no init system;
                   systemd: Debian 12 with systemd as PID 1 and the engines;
                   systemd-v1: that guest in systemd's cgroup v1 (hybrid) mode
  --bench BERTH    systemd guest: run hack/bench.sh --systemd-cgroup BERTH (a release
                   binary; `make systemd-bench`) there instead of the tests
  --tcg            allow software emulation when /dev/kvm is not usable (slow: minutes)
  --kernel FILE    v2 guest: boot this bzImage instead of Debian's linux-image-amd64
                   (fetched once with apt-get download into target/vm/kernel/)
  --tests FILE     libtest filters, one per line (default: hack/KIND-vm-tests.txt)
  --timeout SECS   give up on the VM after SECS (default: 300 with KVM, 900 with TCG;
                   systemd guest: 600 and 1800)
  --verbose        show the kernel's boot messages
  --probe-kvm      only check /dev/kvm: exit 0 if usable, else print why and exit 1
  --probe-accel    only check how the VM can run: print kvm (/dev/kvm usable) or tcg (qemu's
                   software emulation; why not KVM goes to stderr) and exit 0, or print why
                   neither works and exit 1
  -h, --help       this text
  -- ARGS          libtest filters/options to use instead of the tests file

Environment: VM_ACCEL=kvm|tcg (tcg = --tcg), VM_KERNEL, VM_TIMEOUT, CARGO; RUNS and
ROUNDS for --bench (hack/bench.sh's).
Run as root (the systemd guest's image is built as root). `make v2-test` and
`make systemd-test` build and run it.
EOF
}

die() {
    echo "vm: $*" >&2
    exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
accel=${VM_ACCEL:-kvm}
kernel=${VM_KERNEL:-}
timeout_s=${VM_TIMEOUT:-}
guest=v2
bench=
tests_file=
verbose=0
probe=
cli_filters=()
while [ $# -gt 0 ]; do
    case $1 in
    --guest) guest=${2:?--guest needs KIND} && shift ;;
    --guest=*) guest=${1#*=} ;;
    --bench) bench=${2:?--bench needs the berth binary} && shift ;;
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
    echo "vm: $why_not_kvm; software emulation (tcg) instead, much slower" >&2
    echo tcg
    exit 0
    ;;
esac

# systemd-v1 is the systemd guest booted in systemd's cgroup v1 mode (hybrid: the v1
# controllers plus its own cgroup2 tree at /sys/fs/cgroup/unified), with its own tests file.
name=$guest
case $guest in
v2) kvm_timeout=300 tcg_timeout=1200 ;;
systemd) kvm_timeout=600 tcg_timeout=1800 ;;
systemd-v1) kvm_timeout=300 tcg_timeout=900 guest=systemd ;;
*) die "--guest $guest: must be v2, systemd or systemd-v1" ;;
esac
: "${tests_file:=$here/$name-vm-tests.txt}"
case $accel in
kvm)
    why=$(kvm_problem)
    [ -z "$why" ] || die "$why; pass --tcg (or VM_ACCEL=tcg) to use software emulation, much slower"
    cpu=host
    : "${timeout_s:=$kvm_timeout}"
    ;;
tcg)
    cpu=max
    : "${timeout_s:=$tcg_timeout}"
    ;;
*) die "VM_ACCEL=$accel: must be kvm or tcg" ;;
esac
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout $timeout_s: not a number of seconds"
# The tests get 7/8 of it, less 30 s for the boot: a hang is then reported from inside, with
# every process and (under systemd) its jobs, by hack/run-bounded.sh, while the VM still runs.
tests_limit=$((timeout_s * 7 / 8 - 30))
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
[ -z "$bench" ] || [ "$guest" = systemd ] || die "--bench: only in the systemd guest"
if [ "$guest" = v2 ]; then
    command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
    busybox=/bin/busybox
    [[ -x $busybox && $(LC_ALL=C ldd "$busybox" 2>&1) == *"not a dynamic"* ]] ||
        die "$busybox is missing or not static (apt-get install busybox-static)"
else
    [ -z "$kernel" ] || die "--kernel: the systemd guest boots its own kernel"
    [ -z "$bench" ] || [ -x "$bench" ] || die "--bench $bench: not an executable"
    command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
fi

if [ "${#cli_filters[@]}" -gt 0 ]; then
    filters=("${cli_filters[@]}")
else
    [ -f "$tests_file" ] || die "--tests $tests_file: no such file"
    mapfile -t filters < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$tests_file")
    [ "${#filters[@]}" -gt 0 ] || die "$tests_file selects no tests"
fi

cargo_target=${CARGO_TARGET_DIR:-$repo/target}
cache=$cargo_target/vm
work=$cache/$name
mkdir -p "$work"

# --- the kernel ---------------------------------------------------------------------------
# A kernel given by path, else Debian's linux-image-amd64 (the versioned package it depends
# on), fetched once into the cache. Without apt package lists a kernel fetched earlier is used.
if [ "$guest" = systemd ]; then
    : # the guest's own, from its image (below)
elif [ -n "$kernel" ]; then
    [ -f "$kernel" ] || die "--kernel $kernel: no such file"
    [ -r "$kernel" ] || die "--kernel $kernel: not readable by $(id -un)"
    # The x86 boot protocol's header magic, at 0x202 of every bzImage.
    [ "$(dd if="$kernel" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ] ||
        die "--kernel $kernel: not a Linux x86 kernel image (bzImage)"
else
    pkg=$({ apt-cache depends linux-image-amd64 2>/dev/null || true; } |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
    if [ -n "$pkg" ]; then
        dir=$cache/kernel/$pkg
        if ! compgen -G "$dir/boot/vmlinuz-*" >/dev/null; then
            echo "vm: fetching $pkg (apt-get download; only its boot/ is unpacked)" >&2
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
        kernel=$(compgen -G "$cache/kernel/linux-image-*/boot/vmlinuz-*" | sort -V | tail -n 1) ||
            true
        [ -n "$kernel" ] ||
            die "no kernel: apt does not know linux-image-amd64 (run apt-get update) and none was fetched before (or pass --kernel FILE)"
    fi
fi

# --- the systemd guest's image -------------------------------------------------------------
# Built once per recipe: the directory is named after a hash of hack/systemd-vm/, so a changed
# recipe builds a new image (and the old ones are removed). Each boot uses it read-only.
if [ "$guest" = systemd ]; then
    recipe=$(cd "$here/systemd-vm" && cat make-guest.sh run-tests berth-vm-tests.service | sha256sum | cut -c 1-12)
    image=$cache/systemd-guest-$recipe
    if [ ! -f "$image/root.img" ]; then
        for old in "$cache"/systemd-guest-*; do
            [ -e "$old" ] && rm -rf "$old"
        done
        echo "vm: building the systemd guest image (mmdebstrap; once per recipe) into $image" >&2
        "$here/systemd-vm/make-guest.sh" "$image.tmp" >"$cache/systemd-guest-build.log" 2>&1 || {
            tail -n 20 "$cache/systemd-guest-build.log" >&2
            rm -rf "$image.tmp"
            die "building the systemd guest failed (log: $cache/systemd-guest-build.log)"
        }
        mv "$image.tmp" "$image"
    fi
    kernel=$image/vmlinuz
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
if [ "$guest" = v2 ]; then
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
    cp "$here/run-bounded.sh" "$root/bin/run-bounded"
    chmod 0755 "$root/bin/run-bounded"
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
    echo "$tests_limit" >"$root/v2-vm/limit"

    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -1 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$root"
    trap - EXIT
fi

# --- the systemd guest's second disk ---------------------------------------------------------
# files/ (copied to / by the guest's run-tests) and `run`, the tests' command line.
if [ "$guest" = systemd ]; then
    root=$work/payload
    rm -rf "$root"
    mkdir -p "$root/files"
    trap 'rm -rf "$root"' EXIT
    copy_in() { # copy_in SRC [DEST]
        local dest=${2:-$1}
        mkdir -p "$root/files$(dirname "$dest")"
        if [ -f "$1" ] && [ "$(stat -c %s "$1")" -gt 4000000 ] && command -v strip >/dev/null; then
            strip --strip-debug -o "$root/files$dest" "$1"
        else
            cp -a "$1" "$root/files$dest"
        fi
    }
    copy_in "$berth"
    copy_in "$testbin"
    copy_in "$template"
    for f in "$repo"/hack/*.sh; do
        copy_in "$f"
    done
    if [ -n "$bench" ]; then
        bench=$(readlink -f "$bench")
        copy_in "$bench"
        printf 'export RUNS=%q ROUNDS=%q\nexec %q --systemd-cgroup %q\n' "${RUNS:-30}" "${ROUNDS:-5}" \
            "$repo/hack/bench.sh" "$bench" >"$root/run"
    else
        {
            printf 'cd /tmp || exit 125\n'
            printf 'exec %q %q %q --include-ignored --test-threads=2' \
                "$repo/hack/run-bounded.sh" "$tests_limit" "$testbin"
            printf ' %q' "${filters[@]}"
            printf '\n'
        } >"$root/run"
    fi
    payload=$work/payload.img
    mkfs.ext4 -q -F -L berth-payload -d "$root" "$payload" "$(($(du -sm "$root" | cut -f 1) * 3 / 2 + 64))M"
    rm -rf "$root"
    trap - EXIT
fi

# --- the VM -------------------------------------------------------------------------------
if [ "$guest" = v2 ]; then
    cmdline="console=ttyS0 rdinit=/init cgroup_no_v1=all panic=-1"
    mem=2048
    guest_args=(-initrd "$initrd")
    what="initramfs $(du -h "$initrd" | cut -f 1)"
else
    cmdline="console=ttyS0 root=/dev/vda rw panic=-1"
    [ "$name" = systemd-v1 ] && cmdline+=" systemd.unified_cgroup_hierarchy=0"
    mem=3072
    guest_args=(-initrd "$image/initrd.img"
        -drive "file=$image/root.img,format=raw,if=virtio,snapshot=on"
        -drive "file=$payload,format=raw,if=virtio,readonly=on")
    what="image $image"
fi
[ "$verbose" = 1 ] || cmdline+=" quiet loglevel=3"
log=$work/console.log
echo "vm: booting the $name guest ($accel, 2 vCPUs, $((mem / 1024)) GiB, timeout ${timeout_s}s);" \
    "$what; console also in $log" >&2
start=$SECONDS
set +e
timeout --foreground -k 10 "$timeout_s" \
    qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "$mem" -smp 2 \
    -nodefaults -no-user-config -display none -serial stdio -nic none -no-reboot \
    -kernel "$kernel" "${guest_args[@]}" -append "$cmdline" </dev/null | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
result=$(tr -d '\r' <"$log" | sed -n 's/^BERTH-VM: exit=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
if [ -z "$result" ]; then
    if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
        echo "vm: the VM timed out after ${timeout_s}s without reporting the tests' result (console: $log)" >&2
    else
        echo "vm: the VM stopped without reporting the tests' result (qemu exit $qemu_rc; console: $log)" >&2
    fi
    exit 1
fi
echo "vm: tests exited with $result in the $name guest ($((SECONDS - start))s in the VM)" >&2
exit "$result"

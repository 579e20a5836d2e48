#!/usr/bin/env bash
# Writes hack/berth.order: the functions of berth (and of the libraries linked into it) that
# the everyday commands run, for the linker to place side by side (`make build` passes it to
# LLD as --symbol-ordering-file). The code berth runs then sits in a few hundred KiB instead
# of being spread over the whole text, and the kernel, which maps 64 KiB around each page
# fault, maps far less of the binary: fewer faults and a smaller peak RSS. Names missing
# from a later build are skipped by the linker; regenerate after a dependency update or a
# large change (`sudo make order`, then commit the file).
#
# usage: hack/order-symbols.sh BERTH_BINARY   (as root, with perf; writes hack/berth.order)
#
# The commands (run, create, state, list, start, exec, exec -d, kill, delete) run in rounds
# under `perf record`: once sampled flat and often, once with call stacks (a sampled
# function's callers ran too). berth runs from a read-only overlay of a copy of itself: it
# then has no reason to re-execute from a sealed binary, and perf can name its functions.
# Nothing is left behind: the overlay, state root, bundles and containers are under a
# temporary directory, unmounted and removed at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
binary=$(readlink -f "${1:?usage: hack/order-symbols.sh BERTH_BINARY}")
command -v perf >/dev/null || { echo "order-symbols: needs perf (linux-perf)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "order-symbols: run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-order.XXXXXX)
root=$work/state
berth=$work/bin/berth
cleanup() {
    if [ -x "$berth" ]; then
        for id in $("$berth" --root "$root" list -q 2>/dev/null); do
            "$berth" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        done
    fi
    umount "$work/bin" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/lower" "$work/empty" "$work/bin"
cp "$binary" "$work/lower/berth"
mount -t overlay overlay -o "lowerdir=$work/lower:$work/empty" "$work/bin"

"$here/hack/make-rootfs.sh" "$work/rootfs" >/dev/null
write_bundle() { # NAME ARGS_JSON
    mkdir -p "$work/$1"
    ln -s ../rootfs "$work/$1/rootfs"
    python3 - "$here/config.json.example" "$work/$1/config.json" "$2" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["args"] = json.loads(sys.argv[3])
spec["process"]["terminal"] = False
json.dump(spec, open(sys.argv[2], "w"))
EOF
}
write_bundle short '["true"]'
write_bundle long '["sleep", "30"]'

cat >"$work/rounds" <<EOF
#!/bin/sh
set -e
b="$berth --root $root"
for i in \$(seq "\$1"); do
    \$b run --bundle $work/short "r\$i" </dev/null >/dev/null
    \$b create --bundle $work/long "c\$i" </dev/null >/dev/null
    \$b state "c\$i" >/dev/null
    \$b list >/dev/null
    \$b start "c\$i"
    \$b exec "c\$i" true
    \$b exec -d --pid-file $work/pid "c\$i" true
    \$b kill "c\$i" KILL
    \$b delete --force "c\$i"
done
EOF
chmod +x "$work/rounds"

perf record -q -e cpu-clock:u -F 50000 -o "$work/flat.data" -- "$work/rounds" 150 2>/dev/null
perf record -q -e cpu-clock:u -F 20000 --call-graph dwarf,16384 -o "$work/stacks.data" \
    -- "$work/rounds" 40 2>/dev/null

{
    perf report -i "$work/flat.data" --stdio --no-demangle --comm berth --dso berth \
        --sort sym 2>/dev/null | sed -n 's/^ *[0-9.]*% *\[\.\] //p'
    perf script -i "$work/stacks.data" --comm berth -F ip,sym,dso --no-demangle 2>/dev/null |
        awk -v dso="($berth)" '$3 == dso {print $2}'
} | sed 's/ *$//' | sort -u >"$work/ran"
nm --defined-only "$binary" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$work/defined"
comm -12 "$work/ran" "$work/defined" >"$here/hack/berth.order"
echo "order-symbols: $(wc -l <"$here/hack/berth.order") of the binary's $(wc -l <"$work/defined") functions in hack/berth.order"

#!/usr/bin/env bash
# Benchmarks berth beside crun and runc on the same busybox bundle, in one run, and prints a
# markdown table. Absolute times on a shared machine are noisy: the ratios are what count.
#
# usage: hack/bench.sh [BERTH_BINARY]      (as root; `make bench` builds and runs it)
#
# Everything runs inside a private mount and PID namespace: there an empty file hides
# /sys/fs/cgroup/unified/cgroup.controllers (crun 1.8.1 refuses hybrid hosts that list a
# controller there), the same for all runtimes, and PID 1 of the namespace reaps the inits
# that the runtimes orphan. Nothing is left behind: the namespace ends with the script, and
# the state roots, bundle and cgroups are removed and checked at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
berth=$(readlink -f "${1:-$here/target/$(rustc -vV | sed -n 's/^host: //p')/release/berth}")
runs=${RUNS:-30}
runtimes=${RUNTIMES:-berth crun runc}

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$berth" ] || die "no berth binary at $berth (run: cargo build --release)"
for tool in hyperfine strace crun runc jq unshare /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install hyperfine strace crun runc jq time)"
done

if [ "${BENCH_INNER:-}" != 1 ]; then
    exec unshare --mount --propagation private --pid --fork --mount-proc \
        env BENCH_INNER=1 RUNS="$runs" RUNTIMES="$runtimes" bash "$0" "$berth"
fi

# --- inside the private namespaces -------------------------------------------------------
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
    for rt in berth crun runc; do
        for id in $("$(rt_bin $rt)" --root "$work/root-$rt" list -q 2>/dev/null); do
            "$(rt_bin $rt)" --root "$work/root-$rt" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
rt_bin() { case $1 in berth) echo "$berth" ;; crun) command -v crun ;; runc) command -v runc ;; esac; }
trap cleanup EXIT

controllers=/sys/fs/cgroup/unified/cgroup.controllers
if [ -n "$(cat "$controllers" 2>/dev/null)" ]; then
    : > "$work/empty"
    mount --bind "$work/empty" "$controllers"
fi

bundle=$work/bundle
"$here/hack/make-rootfs.sh" "$bundle/rootfs"
"$berth" spec --bundle "$bundle"
jq '.process.terminal = false | .process.args = ["/bin/true"] | .linux.cgroupsPath = "/berth-bench"' \
    "$bundle/config.json" > "$bundle/config.tmp" && mv "$bundle/config.tmp" "$bundle/config.json"
# Throughput needs one cgroup per container: the same config without a fixed cgroupsPath.
mkdir -p "$work/tbundle"
jq --arg root "$bundle/rootfs" 'del(.linux.cgroupsPath) | .root.path = $root' "$bundle/config.json" > "$work/tbundle/config.json"

declare -A result
median() { jq -r '.results[0].median * 1000 | . * 100 | round / 100' "$1"; }
minimum() { jq -r '.results[0].min * 1000 | . * 100 | round / 100' "$1"; }

bench() { # name runtime command [prepare]
    local name=$1 rt=$2 cmd=$3 prep=${4:-true} json=$work/$1-$2.json
    hyperfine -N --style none --warmup 3 --runs "$runs" --prepare "$prep" --export-json "$json" "$cmd" >/dev/null 2>"$work/err" \
        || { cat "$work/err"; $cmd; die "$name failed for $rt"; }
    result[$name,$rt]="$(median "$json") (min $(minimum "$json"))"
    result[$name-median,$rt]=$(median "$json")
}

for rt in $runtimes; do
    bin=$(rt_bin "$rt")
    r="$bin --root $work/root-$rt"
    q="sh -c"
    bench run "$rt" "$r run --bundle $bundle b-run"
    bench create "$rt" "$r create --bundle $bundle b-one" "$q '$r delete --force b-one >/dev/null 2>&1 || true'"
    bench start "$rt" "$r start b-one" "$q '$r delete --force b-one >/dev/null 2>&1; $r create --bundle $bundle b-one'"
    bench delete "$rt" "$r delete --force b-one" "$q '$r delete --force b-one >/dev/null 2>&1; $r create --bundle $bundle b-one; $r start b-one'"
    $r delete --force b-one >/dev/null 2>&1 || true
    $r create --bundle "$bundle" b-state
    bench state "$rt" "$r state b-state"
    $r delete --force b-state

    # Peak RSS (KiB) of the runtime process itself, the worst of 10.
    for what in create run; do
        peak=0
        for _ in $(seq 10); do
            if [ $what = create ]; then
                /usr/bin/time -f %M -o "$work/rss" $r create --bundle "$bundle" b-rss
                $r delete --force b-rss
            else
                /usr/bin/time -f %M -o "$work/rss" $r run --bundle "$bundle" b-rss
            fi
            kb=$(tail -1 "$work/rss"); [ "$kb" -gt "$peak" ] && peak=$kb
        done
        result[rss-$what,$rt]="$(awk "BEGIN{printf \"%.1f\", $peak/1024}")"
        result[rss-$what-median,$rt]=$peak
    done

    # Syscalls over the whole process tree of one full cycle.
    strace -f -c -o "$work/strace-$rt" $r run --bundle "$bundle" b-strace >/dev/null 2>&1
    calls=$(awk '/^100.00/ {print $4}' "$work/strace-$rt")
    result[syscalls,$rt]=$calls
    result[syscalls-median,$rt]=$calls

    # Throughput: 50 containers create+start+delete at concurrency 2 and 8.
    for c in 2 8; do
        json=$work/tp$c-$rt.json
        cmd="seq 50 | xargs -P $c -I{} sh -c '$r create --bundle $work/tbundle tp{} && $r start tp{} && $r delete --force tp{}'"
        hyperfine --style none --warmup 1 --runs 5 --export-json "$json" "$cmd" >/dev/null 2>"$work/err" \
            || { sh -c "$cmd"; die "throughput at concurrency $c failed for $rt"; }
        secs=$(jq -r '.results[0].median' "$json")
        result[tp$c,$rt]=$(awk "BEGIN{printf \"%.0f\", 50/$secs}")
        result[tp$c-median,$rt]=$(awk "BEGIN{print 50/$secs}")
    done
done

floor_json=$work/floor.json
hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$floor_json" \
    "unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot $bundle/rootfs /bin/true" >/dev/null
floor="$(median "$floor_json") (min $(minimum "$floor_json"))"

ratio() { awk "BEGIN{ if ($2 == 0) print \"-\"; else printf \"%.2f\", $1/$2 }"; }
row() { # label key
    local b=${result[$2-median,berth]:-0} c=${result[$2-median,crun]:-0} u=${result[$2-median,runc]:-0}
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "${result[$2,berth]:-}" "${result[$2,crun]:-}" "${result[$2,runc]:-}" \
        "$(ratio "$b" "$c")" "$(ratio "$b" "$u")"
}
echo
echo "berth benchmark, $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r); $runs runs each; medians"
echo
echo "| metric | berth | crun | runc | berth/crun | berth/runc |"
echo "| --- | --- | --- | --- | --- | --- |"
row "full cycle: run /bin/true (ms)" run
row "create (ms)" create
row "start (ms)" start
row "delete (ms)" delete
row "state (ms)" state
row "peak RSS during create (MiB)" rss-create
row "peak RSS during run (MiB)" rss-run
row "syscalls per full cycle" syscalls
row "throughput, concurrency 2 (containers/s)" tp2
row "throughput, concurrency 8 (containers/s)" tp8
echo "| floor: unshare + chroot /bin/true (ms) | $floor | | | | |"
echo
echo "Higher is better for throughput, lower for everything else."

# Nothing may be left: state roots, cgroups named after the bench containers.
for rt in berth crun runc; do
    left=$("$(rt_bin $rt)" --root "$work/root-$rt" list -q 2>/dev/null || true)
    [ -z "$left" ] || die "$rt left containers: $left"
done
leaked=$(find /sys/fs/cgroup -maxdepth 3 \( -name 'berth-bench' -o -name 'tp[0-9]*' -o -name 'b-*' \) 2>/dev/null | head -5)
[ -z "$leaked" ] || die "cgroups left behind: $leaked"

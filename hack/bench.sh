#!/usr/bin/env bash
# Benchmarks berth beside crun and runc on the same busybox bundle, in one run, and prints a
# markdown table. Absolute times on a shared machine are noisy: the ratios are what count.
#
# usage: hack/bench.sh [--systemd-cgroup] [BERTH_BINARY]   (as root; `make bench` builds and
#        runs it; `hack/vm.sh --guest systemd --bench` runs it with --systemd-cgroup in the
#        systemd guest)
#
# --systemd-cgroup: every runtime gets the global --systemd-cgroup, so each container is a
# transient scope systemd makes (no cgroupsPath: each runtime's default unit name). Needs
# systemd as PID 1, which also reaps the orphaned inits: then no PID namespace is made
# (systemd takes the pids it is given as its own).
#
# Everything runs inside a private mount and PID namespace: there an empty file hides
# /sys/fs/cgroup/unified/cgroup.controllers (crun 1.8.1 refuses hybrid hosts that list a
# controller there), the same for all runtimes, and PID 1 of the namespace reaps the inits
# that the runtimes orphan. Nothing is left behind: the namespace ends with the script, and
# the state roots, bundle and cgroups are removed and checked at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
systemd=${BENCH_SYSTEMD:-0}
if [ "${1:-}" = --systemd-cgroup ]; then
    systemd=1
    shift
fi
berth=$(readlink -f "${1:-$here/target/$(rustc -vV | sed -n 's/^host: //p')/release/berth}")
runs=${RUNS:-30}
runtimes=${RUNTIMES:-berth crun runc}

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$berth" ] || die "no berth binary at $berth (run: cargo build --release)"
for tool in hyperfine strace crun runc jq unshare /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install hyperfine strace crun runc jq time)"
done

if [ "$systemd" = 1 ]; then
    [ -d /run/systemd/system ] || die "--systemd-cgroup: systemd is not PID 1 here"
elif [ "${BENCH_INNER:-}" != 1 ]; then
    exec unshare --mount --propagation private --pid --fork --mount-proc \
        env BENCH_INNER=1 RUNS="$runs" RUNTIMES="$runtimes" bash "$0" "$berth"
fi

# --- inside the private namespaces -------------------------------------------------------
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
    for rt in berth crun runc; do
        for id in $("$(rt_bin $rt)" --root "$work/root-$rt" list -q 2>/dev/null); do
            "$(rt_bin $rt)" --root "$work/root-$rt" ${global:-} delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
rt_bin() { case $1 in berth) echo "$berth" ;; crun) command -v crun ;; runc) command -v runc ;; esac; }
trap cleanup EXIT

controllers=/sys/fs/cgroup/unified/cgroup.controllers
if [ "$systemd" != 1 ] && [ -n "$(cat "$controllers" 2>/dev/null)" ]; then
    : > "$work/empty"
    mount --bind "$work/empty" "$controllers"
fi

bundle=$work/bundle
"$here/hack/make-rootfs.sh" "$bundle/rootfs"
"$berth" spec --bundle "$bundle"
# (With systemd each container needs a unit of its own: no fixed cgroupsPath then.)
cgroup='.linux.cgroupsPath = "/berth-bench"'
[ "$systemd" = 1 ] && cgroup='del(.linux.cgroupsPath)'
jq ".process.terminal = false | .process.args = [\"/bin/true\"] | $cgroup" \
    "$bundle/config.json" > "$bundle/config.tmp" && mv "$bundle/config.tmp" "$bundle/config.json"
# Throughput needs one cgroup per container: the same config without a fixed cgroupsPath.
mkdir -p "$work/tbundle"
jq --arg root "$bundle/rootfs" 'del(.linux.cgroupsPath) | .root.path = $root' "$bundle/config.json" > "$work/tbundle/config.json"
# exec needs a running container: the same rootfs, sleeping, in a cgroup of its own.
mkdir -p "$work/ebundle"
jq --arg root "$bundle/rootfs" 'del(.linux.cgroupsPath) | .root.path = $root | .process.args = ["sleep", "1000000"]' \
    "$bundle/config.json" > "$work/ebundle/config.json"

declare -A result
# A shared machine's speed drifts over minutes, so the timed metrics are taken in rounds: in
# each round every runtime gets its share of the runs, one after the other (the order turning
# each round), and the median and minimum are taken over all of a runtime's runs.
rounds=${ROUNDS:-5}
per_round=$(( (runs + rounds - 1) / rounds ))
timed() { # name runtime command [prepare]: this round's runs, appended to NAME-RT.times
    local name=$1 rt=$2 cmd=$3 prep=${4:-true} json=$work/round.json
    hyperfine -N --style none --warmup 1 --runs "$per_round" --prepare "$prep" --export-json "$json" "$cmd" >/dev/null 2>"$work/err" \
        || { cat "$work/err"; $cmd; die "$name failed for $rt"; }
    jq -r '.results[0].times[]' "$json" >> "$work/$name-$rt.times"
}
# Median and minimum of a file of seconds, in ms.
stats() { sort -g "$1" | awk '{t[NR] = $1} END {
    m = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
    printf "%.2f %.2f\n", m * 1000, t[1] * 1000 }'; }

global=
[ "$systemd" = 1 ] && global=--systemd-cgroup
rt_cmd() { echo "$(rt_bin "$1") --root $work/root-$1 $global"; }
read -r -a order <<< "$runtimes"
for _ in $(seq "$rounds"); do
    for rt in "${order[@]}"; do
        r=$(rt_cmd "$rt")
        q="sh -c"
        timed run "$rt" "$r run --bundle $bundle b-run"
        # The same 50 ms apart (the pause not timed), as containers usually start: a
        # cgroup.procs write waits for an RCU grace period unless another cgroup migration
        # happened just before, which back-to-back runs of a runtime that writes it provide.
        timed run-spaced "$rt" "$r run --bundle $bundle b-run" "sleep 0.05"
        timed create "$rt" "$r create --bundle $bundle b-one" "$q '$r delete --force b-one >/dev/null 2>&1 || true'"
        timed start "$rt" "$r start b-one" "$q '$r delete --force b-one >/dev/null 2>&1; $r create --bundle $bundle b-one'"
        timed delete "$rt" "$r delete --force b-one" "$q '$r delete --force b-one >/dev/null 2>&1; $r create --bundle $bundle b-one; $r start b-one'"
        $r delete --force b-one >/dev/null 2>&1 || true
        $r create --bundle "$bundle" b-state
        timed state "$rt" "$r state b-state"
        $r delete --force b-state
        # exec of /bin/true into a running container (berth re-executes itself from a
        # read-only overlayfs of its directory first: the cost of protecting its binary).
        $r run -d --bundle "$work/ebundle" b-exec </dev/null >/dev/null 2>&1
        timed exec "$rt" "$r exec b-exec /bin/true"
        $r delete --force b-exec
    done
    order=("${order[@]:1}" "${order[0]}")
done
for rt in $runtimes; do
    for name in run run-spaced create start delete state exec; do
        read -r med min < <(stats "$work/$name-$rt.times")
        result[$name,$rt]="$med (min $min)"
        result[$name-median,$rt]=$med
    done
done

for rt in $runtimes; do
    r=$(rt_cmd "$rt")

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
done

# Throughput: 50 containers create+start+delete at concurrency 2 and 8, one run per runtime
# per round, interleaved as above.
read -r -a order <<< "$runtimes"
for _ in $(seq "$rounds"); do
    for rt in "${order[@]}"; do
        r=$(rt_cmd "$rt")
        for c in 2 8; do
            cmd="seq 50 | xargs -P $c -I{} sh -c '$r create --bundle $work/tbundle tp{} && $r start tp{} && $r delete --force tp{}'"
            start=$(date +%s.%N)
            sh -c "$cmd" >/dev/null 2>"$work/err" || { cat "$work/err"; die "throughput at concurrency $c failed for $rt"; }
            awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}' >> "$work/tp$c-$rt.times"
        done
    done
    order=("${order[@]:1}" "${order[0]}")
done
for rt in $runtimes; do
    for c in 2 8; do
        read -r med _ < <(stats "$work/tp$c-$rt.times")
        result[tp$c,$rt]=$(awk "BEGIN{printf \"%.0f\", 50000/$med}")
        result[tp$c-median,$rt]=$(awk "BEGIN{print 50000/$med}")
    done
done

hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$work/floor.json" \
    "unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot $bundle/rootfs /bin/true" >/dev/null
jq -r '.results[0].times[]' "$work/floor.json" > "$work/floor.times"
read -r med min < <(stats "$work/floor.times")
floor="$med (min $min)"

ratio() { awk "BEGIN{ if ($2 == 0) print \"-\"; else printf \"%.2f\", $1/$2 }"; }
row() { # label key
    local b=${result[$2-median,berth]:-0} c=${result[$2-median,crun]:-0} u=${result[$2-median,runc]:-0}
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "${result[$2,berth]:-}" "${result[$2,crun]:-}" "${result[$2,runc]:-}" \
        "$(ratio "$b" "$c")" "$(ratio "$b" "$u")"
}
echo
driver="berth's own cgroupfs driver for each"
[ "$systemd" = 1 ] && driver="--systemd-cgroup for each (systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'))"
echo "berth benchmark, $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r), $driver; $((per_round * rounds)) runs each in $rounds interleaved rounds; medians"
echo
echo "| metric | berth | crun | runc | berth/crun | berth/runc |"
echo "| --- | --- | --- | --- | --- | --- |"
row "full cycle: run /bin/true, back to back (ms)" run
row "full cycle, 50 ms apart (ms)" run-spaced
row "create (ms)" create
row "start (ms)" start
row "delete (ms)" delete
row "state (ms)" state
row "exec /bin/true into a running container (ms)" exec
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
if [ "$systemd" = 1 ]; then
    units=$(systemctl list-units --all --plain --no-legend | grep -E -- '-(b-[a-z]+|tp[0-9]+)\.scope' | head -5 || true)
    [ -z "$units" ] || die "systemd units left behind: $units"
fi

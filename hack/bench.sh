#!/usr/bin/env bash
# Benchmarks berth beside crun and runc on the same busybox bundle, in one run, and prints a
# markdown table. Absolute times on a shared machine are noisy: the ratios are what count.
#
# usage: hack/bench.sh [--systemd-cgroup] [BERTH_BINARY]   (as root; `make bench` builds and
#        runs it; `hack/vm.sh --guest systemd --bench` runs it with --systemd-cgroup in the
#        systemd guest)
#
# Environment: RUNS (30) timed runs of each metric per runtime, taken in ROUNDS (5)
# interleaved rounds; SCALE (200, 50 with --systemd-cgroup) containers for the scale rows
# (0: none); ENGINES ("ctr podman docker", "" for none) for the end-to-end rows; RUNTIMES
# ("berth crun runc").
#
# --systemd-cgroup: every runtime gets the global --systemd-cgroup, so each container is a
# transient scope systemd makes (no cgroupsPath: each runtime's default unit name). Needs
# systemd as PID 1, which also reaps the orphaned inits: then no PID namespace is made
# (systemd takes the pids it is given as its own). The engine rows are not run then (they
# say so).
#
# Everything runs inside a private mount and PID namespace: there an empty file hides
# /sys/fs/cgroup/unified/cgroup.controllers (crun 1.8.1 refuses hybrid hosts that list a
# controller there), the same for all runtimes, and PID 1 of the namespace reaps the inits
# that the runtimes orphan. The engines (a containerd, a dockerd and podman of the bench's
# own: own root, state, sockets, cgroup parent, on a busybox image that hack/make-image.sh
# makes) find a tmpfs there on /run and /var/lib/containers, for the paths they hard-code.
# Berth is benchmarked from a copy of BERTH_BINARY (a rebuild during the run changes
# nothing). Nothing is left behind: the namespace ends with the script, and the state roots,
# bundle, engine directories and cgroups are removed and checked at the end.
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
# (Fewer with --systemd-cgroup: there every container is a unit of systemd's, in a guest
# that `make systemd-bench` may run under emulation.)
scale=${SCALE:-200}
[ "$systemd" = 1 ] && scale=${SCALE:-50}
engines=${ENGINES-ctr podman docker}

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for e in $engines; do
    case $e in ctr | podman | docker) ;; *) die "unknown engine $e (ENGINES: ctr podman docker)" ;; esac
done
[ -x "$berth" ] || die "no berth binary at $berth (run: cargo build --release)"
for tool in hyperfine strace crun runc jq unshare /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install hyperfine strace crun runc jq time)"
done

if [ "$systemd" = 1 ]; then
    [ -d /run/systemd/system ] || die "--systemd-cgroup: systemd is not PID 1 here"
elif [ "${BENCH_INNER:-}" != 1 ]; then
    exec unshare --mount --propagation private --pid --fork --mount-proc \
        env BENCH_INNER=1 RUNS="$runs" RUNTIMES="$runtimes" SCALE="$scale" ENGINES="$engines" \
        bash "$0" "$berth"
fi

# --- inside the private namespaces -------------------------------------------------------
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
made_var_lib_containers=0
# The engines' commands (set once each is up), their daemons, and whether /run is theirs.
ctr_c='' docker_c='' podman_c=''
engine_pids=()
engines_up=0
cleanup() {
    set +e
    stop_engines
    for rt in berth crun runc; do
        for root in "$work/root-$rt" "$work/tmpfs/root-$rt"; do
            for id in $("$(rt_bin $rt)" --root "$root" list -q 2>/dev/null); do
                "$(rt_bin $rt)" --root "$root" ${global:-} delete --force "$id" >/dev/null 2>&1 || true
            done
        done
    done
    ! mountpoint -q "$work/tmpfs" || umount "$work/tmpfs"
    rm -rf "$work"
    [ "$made_var_lib_containers" = 0 ] || rmdir /var/lib/containers 2>/dev/null || true
}
rt_bin() { case $1 in berth) echo "$work/bin/berth" ;; crun) command -v crun ;; runc) command -v runc ;; esac; }
# Processes of this namespace whose command line mentions DIR (the engines' daemons, shims
# and conmons all name their private directory).
pids_mentioning() {
    local p cmd
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" != $$ ] || continue
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        [[ $cmd == *"$1"* ]] && echo "${p#/proc/}"
    done
    return 0
}

stop_engines() {
    local id pid i left root tree h rt
    [ "$engines_up" = 1 ] || return 0
    engines_up=0
    if [ -n "$docker_c" ]; then
        for id in $($docker_c ps -aq 2>/dev/null); do $docker_c rm -f "$id" >/dev/null 2>&1 || true; done
    fi
    if [ -n "$ctr_c" ]; then
        for id in $($ctr_c task ls -q 2>/dev/null); do
            $ctr_c task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
            $ctr_c task delete --force "$id" >/dev/null 2>&1 || true
        done
        for id in $($ctr_c containers ls -q 2>/dev/null); do $ctr_c containers delete "$id" >/dev/null 2>&1 || true; done
    fi
    [ -z "$podman_c" ] || $podman_c rm --all --force --time 0 >/dev/null 2>&1 || true
    ctr_c='' docker_c='' podman_c=''
    # The daemons (dockerd stops its containerd), then whatever else mentions their
    # directories (shims, conmon): TERM, up to 15 s, then KILL.
    for pid in "${engine_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 150); do
        mapfile -t left < <(pids_mentioning "$work/")
        [ ${#left[@]} = 0 ] && break
        [ "$i" = 20 ] && { kill -TERM "${left[@]}" 2>/dev/null || true; }
        sleep 0.1
    done
    mapfile -t left < <(pids_mentioning "$work/")
    [ ${#left[@]} = 0 ] || kill -KILL "${left[@]}" 2>/dev/null || true
    for pid in "${engine_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    engine_pids=()
    # What a runtime may still hold in the engines' state roots (podman's are the default
    # ones, on the tmpfs /run), then the mounts under the engines' directory, deepest first.
    for rt in berth crun runc; do
        for root in "$work/engines/ctd/runc-$rt/berth-bench-ctr" "$work/engines/dk/exec/runtime-runc/berth-bench-dk" "/run/$rt"; do
            for id in $("$(rt_bin $rt)" --root "$root" list -q 2>/dev/null); do
                "$(rt_bin $rt)" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
            done
        done
    done
    awk -v w="$work/engines" 'index($5, w) == 1 {print length($5), $5}' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for tree in berth-bench-ctr berth-bench-podman berth-bench-docker; do
        for h in /sys/fs/cgroup/*/; do
            [ ! -d "$h$tree" ] || find "$h$tree" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    done
    umount /var/lib/containers 2>/dev/null || true
    umount /run 2>/dev/null || true
}
trap cleanup EXIT

mkdir "$work/bin"
cp "$berth" "$work/bin/berth"
# The copy's pages, just written, sit in the page cache as the write left them; crun's and
# runc's binaries are read in from disk when they first run. Dropped, so that berth's copy
# is read in the same way (the kernel maps a file's pages around each fault as they sit in
# the page cache: how they got there changes the peak RSS measured).
sync "$work/bin/berth"
dd if="$work/bin/berth" iflag=nocache count=0 status=none

controllers=/sys/fs/cgroup/unified/cgroup.controllers
if [ "$systemd" != 1 ] && [ -n "$(cat "$controllers" 2>/dev/null)" ]; then
    : > "$work/empty"
    mount --bind "$work/empty" "$controllers"
fi

bundle=$work/bundle
"$here/hack/make-rootfs.sh" "$bundle/rootfs"
"$work/bin/berth" spec --bundle "$bundle"
# (With systemd each container needs a unit of its own: no fixed cgroupsPath then.)
cgroup='.linux.cgroupsPath = "/berth-bench"'
[ "$systemd" = 1 ] && cgroup='del(.linux.cgroupsPath)'
jq ".process.terminal = false | .process.args = [\"/bin/true\"] | $cgroup" \
    "$bundle/config.json" > "$bundle/config.tmp" && mv "$bundle/config.tmp" "$bundle/config.json"
# Throughput needs one cgroup per container: the same config without a fixed cgroupsPath.
mkdir -p "$work/tbundle"
jq --arg root "$bundle/rootfs" 'del(.linux.cgroupsPath) | .root.path = $root' "$bundle/config.json" > "$work/tbundle/config.json"
# The state roots are on this machine's /tmp (ext4; /run is too); one row has them on a
# tmpfs, as /run is on systemd hosts, where a new inode costs less.
mkdir -p "$work/tmpfs"
mount -t tmpfs -o mode=0700,size=64m berth-bench-state "$work/tmpfs"
# exec needs a running container: the same rootfs, sleeping, in a cgroup of its own.
mkdir -p "$work/ebundle"
jq --arg root "$bundle/rootfs" 'del(.linux.cgroupsPath) | .root.path = $root | .process.args = ["sleep", "1000000"]' \
    "$bundle/config.json" > "$work/ebundle/config.json"
# The process of `exec --process`, as containerd's shim writes it: /bin/true.
jq '.process | .args = ["/bin/true"]' "$work/ebundle/config.json" > "$work/process.json"

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
# result[NAME,RT] = "median (min M)" and result[NAME-median,RT] from NAME-RT.times.
collect() { # name runtime...
    local name=$1 rt med min
    shift
    for rt in "$@"; do
        [ -s "$work/$name-$rt.times" ] || continue
        read -r med min < <(stats "$work/$name-$rt.times")
        result[$name,$rt]="$med (min $min)"
        result[$name-median,$rt]=$med
    done
}

global=
[ "$systemd" = 1 ] && global=--systemd-cgroup
rt_cmd() { echo "$(rt_bin "$1") --root $work/root-$1 $global"; }
# The floor: what any runtime's full cycle at least costs here (the namespaces, a chroot and
# the exec of /bin/true, no cgroup, no mounts), timed in the same rounds.
floor_cmd="unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot $bundle/rootfs /bin/true"
read -r -a rts <<< "$runtimes"
read -r -a order <<< "$runtimes floor"
for _ in $(seq "$rounds"); do
    for rt in "${order[@]}"; do
        if [ "$rt" = floor ]; then
            timed floor floor "$floor_cmd"
            continue
        fi
        r=$(rt_cmd "$rt")
        q="sh -c"
        timed run "$rt" "$r run --bundle $bundle b-run"
        # The same 50 ms apart (the pause not timed), as containers usually start: a
        # cgroup.procs write waits for an RCU grace period unless another cgroup migration
        # happened just before, which back-to-back runs of a runtime that writes it provide.
        timed run-spaced "$rt" "$r run --bundle $bundle b-run" "sleep 0.05"
        timed run-tmpfs "$rt" "$(rt_bin "$rt") --root $work/tmpfs/root-$rt $global run --bundle $bundle b-run"
        timed create "$rt" "$r create --bundle $bundle b-one" "$q '$r delete --force b-one >/dev/null 2>&1 || true'"
        timed start "$rt" "$r start b-one" "$q '$r delete --force b-one >/dev/null 2>&1; $r create --bundle $bundle b-one'"
        timed delete "$rt" "$r delete --force b-one" "$q '$r delete --force b-one >/dev/null 2>&1; $r create --bundle $bundle b-one; $r start b-one'"
        $r delete --force b-one >/dev/null 2>&1 || true
        $r create --bundle "$bundle" b-state
        timed state "$rt" "$r state b-state"
        $r delete --force b-state
        # exec of /bin/true into a running container (berth re-executes itself from a
        # read-only overlayfs of its directory first: the cost of protecting its binary);
        # then as containerd-shim-runc-v2 calls it: a process file, detached, a pid file and
        # a JSON log.
        $r run -d --bundle "$work/ebundle" b-exec </dev/null >/dev/null 2>&1
        timed exec "$rt" "$r exec b-exec /bin/true"
        timed exec-detached "$rt" "$r --log $work/exec-log-$rt.json --log-format json exec --process $work/process.json --detach --pid-file $work/exec-$rt.pid b-exec"
        $r delete --force b-exec
    done
    order=("${order[@]:1}" "${order[0]}")
done
for name in run run-spaced run-tmpfs create start delete state exec exec-detached; do
    collect "$name" "${rts[@]}"
done
collect floor floor

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

# --- scale: SCALE containers left running ------------------------------------------------
# state, list, exec, kill and delete of one container (b-s1) while it is the only one and
# while SCALE-1 others (b-s2...) run beside it, both in every round, for each runtime in turn:
# in a round a runtime's containers go up to SCALE and down to 1 again, so the ratio of the
# two compares times taken minutes apart at most. kill (SIGKILL) and delete (--force) each
# start b-s1 again before every run, untimed.
scale_ops="state list exec kill delete"
scale_phase() { # runtime count
    local rt=$1 n=$2 r q="sh -c" again
    r=$(rt_cmd "$rt")
    again="$q '$r delete --force b-s1 >/dev/null 2>&1; $r run -d --bundle $work/ebundle b-s1 </dev/null >/dev/null 2>&1'"
    timed "scale$n-state" "$rt" "$r state b-s1"
    timed "scale$n-list" "$rt" "$r list"
    timed "scale$n-exec" "$rt" "$r exec b-s1 /bin/true"
    timed "scale$n-kill" "$rt" "$r kill b-s1 KILL" "$again"
    timed "scale$n-delete" "$rt" "$r delete --force b-s1" "$again"
    $r run -d --bundle "$work/ebundle" b-s1 </dev/null >/dev/null 2>&1
}
if [ "$scale" -gt 1 ]; then
    read -r -a order <<< "$runtimes"
    for _ in $(seq "$rounds"); do
        for rt in "${order[@]}"; do
            r=$(rt_cmd "$rt")
            $r run -d --bundle "$work/ebundle" b-s1 </dev/null >/dev/null 2>&1
            scale_phase "$rt" 1
            seq 2 "$scale" | xargs -P 2 -I{} sh -c "$r run -d --bundle $work/ebundle b-s{} </dev/null >/dev/null 2>&1" \
                || die "starting $scale containers failed for $rt"
            running=$($r list -q | wc -l)
            [ "$running" = "$scale" ] || die "$rt: $running containers listed, not $scale"
            scale_phase "$rt" "$scale"
            seq 1 "$scale" | xargs -P 2 -I{} sh -c "$r delete --force b-s{}" || die "deleting $scale containers failed for $rt"
            [ -z "$($r list -q)" ] || die "$rt: containers left after the scale round"
        done
        order=("${order[@]:1}" "${order[0]}")
    done
    for op in $scale_ops; do
        collect "scale1-$op" "${rts[@]}"
        collect "scale$scale-$op" "${rts[@]}"
        for rt in $runtimes; do
            one=${result[scale1-$op-median,$rt]} many=${result[scale$scale-$op-median,$rt]}
            result[scale-$op,$rt]="$one → $many ($(awk "BEGIN{printf \"%.2fx\", $many/$one}"))"
            result[scale-$op-median,$rt]=$many
        done
    done
fi

# --- end to end through the engines ------------------------------------------------------
# `run --rm` of /bin/true through ctr (containerd 1.6's runc shim), podman (conmon) and
# docker (dockerd with a containerd of its own), with each runtime as the engine's runtime,
# on the same local busybox image. Each engine is private to the bench: own root, state,
# socket and cgroup parent; containerd and dockerd stay up for the whole section.
image=localhost/berth-busybox:latest
declare -A engine_down engine_label engine_failed
engine_label[ctr]="\`ctr run --rm\` /bin/true"
engine_label[podman]="\`podman run --rm\` /bin/true"
engine_label[docker]="\`docker run --rm\` /bin/true"
# With the engine's version, where it is installed.
v=$(containerd --version 2>/dev/null | awk '{print $3}' | sed 's/~.*//') || true
[ -z "$v" ] || engine_label[ctr]="containerd $v: ${engine_label[ctr]}"
v=$(podman --version 2>/dev/null | awk '{print $3}') || true
[ -z "$v" ] || engine_label[podman]="podman $v: ${engine_label[podman]}"
v=$(dockerd --version 2>/dev/null | awk '{print $3}' | sed 's/[+,].*//') || true
[ -z "$v" ] || engine_label[docker]="docker $v: ${engine_label[docker]}"

# Lines of a log worth showing when an engine did not come up.
log_tail() { tail -n 3 "$1" 2>/dev/null | cut -c1-300 | tr '\n' ' ' | sed 's/ *$//'; }

start_containerd() {
    local d=$work/engines/ctd i
    for b in containerd ctr containerd-shim-runc-v2; do
        command -v $b >/dev/null || { why="$b is not installed"; return 1; }
    done
    mkdir -p "$d"
    cat > "$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[metrics]
  address = ""
EOF
    containerd --config "$d/config.toml" </dev/null >"$d/log" 2>&1 &
    engine_pids+=($!)
    ctr_c="ctr --address $d/containerd.sock -n berth-bench-ctr"
    for i in $(seq 200); do
        $ctr_c version >/dev/null 2>&1 && break
        [ "$i" = 200 ] && { why="containerd did not answer in 20 s: $(log_tail "$d/log")"; return 1; }
        sleep 0.1
    done
    $ctr_c images import --snapshotter native "$work/image.tar" >"$d/import" 2>&1 \
        || { why="ctr images import failed: $(log_tail "$d/import")"; return 1; }
}

start_podman() {
    local d=$work/engines/pod
    for b in podman conmon; do
        command -v $b >/dev/null || { why="$b is not installed"; return 1; }
    done
    mkdir -p "$d"
    podman_c="podman --root $d/root --runroot $d/runroot --tmpdir $d/tmp --storage-driver vfs --events-backend file --cgroup-manager cgroupfs"
    $podman_c load -i "$work/image.tar" >"$d/load" 2>&1 || { why="podman load failed: $(log_tail "$d/load")"; return 1; }
}

start_dockerd() {
    local d=$work/engines/dk i client rt
    command -v dockerd >/dev/null || { why="dockerd is not installed"; return 1; }
    # The client shipped with dockerd (its API version), else any on PATH.
    for client in "$(dirname "$(command -v dockerd)")/docker" /usr/bin/docker "$(command -v docker || true)"; do
        [ -x "$client" ] && break
    done
    [ -x "$client" ] || { why="no docker client"; return 1; }
    mkdir -p "$d"
    # Its own config (a host's daemon.json must not clash), and its identity key in it (not
    # /etc/docker/key.json).
    echo "{\"deprecated-key-path\": \"$d/key.json\"}" > "$d/daemon.json"
    local add=()
    for rt in $runtimes; do
        add+=(--add-runtime "bench-$rt=$(rt_bin "$rt")")
    done
    dockerd --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/exec" \
        --pidfile "$d/dockerd.pid" -H "unix://$d/docker.sock" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --userland-proxy=false --storage-driver vfs --exec-opt native.cgroupdriver=cgroupfs \
        --cgroup-parent /berth-bench-docker "${add[@]}" \
        --containerd-namespace berth-bench-dk --containerd-plugins-namespace berth-bench-dk-plugins \
        </dev/null >"$d/log" 2>&1 &
    engine_pids+=($!)
    docker_c="$client -H unix://$d/docker.sock"
    for i in $(seq 600); do
        $docker_c version >/dev/null 2>&1 && break
        [ "$i" = 600 ] && { why="dockerd did not answer in 60 s: $(log_tail "$d/log")"; return 1; }
        sleep 0.1
    done
    $docker_c load -i "$work/image.tar" >"$d/load" 2>&1 || { why="docker load failed: $(log_tail "$d/load")"; return 1; }
}

engine_cmd() { # engine runtime: the timed command
    case $1 in
        ctr) echo "$ctr_c run --rm --snapshotter native --runc-binary $(rt_bin "$2") --runc-root $work/engines/ctd/runc-$2 --fifo-dir $work/engines/ctd/fifo $image e-$2 /bin/true" ;;
        # Podman asks, as root, for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576, which no
        # runtime can set on a machine whose bounding set lacks CAP_SYS_RESOURCE.
        podman) echo "$podman_c --runtime $(rt_bin "$2") run --rm --network none --cgroup-parent /berth-bench-podman --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 $image /bin/true" ;;
        docker) echo "$docker_c run --rm --network none --runtime bench-$2 $image /bin/true" ;;
    esac
}

read -r -a engine_list <<< "$engines"
if [ ${#engine_list[@]} -gt 0 ]; then
    if [ "$systemd" = 1 ]; then
        for e in "${engine_list[@]}"; do engine_down[$e]="not run under --systemd-cgroup (only in \`make bench\`)"; done
    else
        # Paths the engines hard-code (/run/containerd/s, /run/docker, /run/berth, /run/crun,
        # /run/runc for podman's runtimes, /var/lib/containers/cache) on tmpfs of their own.
        engines_up=1
        mount -t tmpfs -o mode=0755 berth-bench-run /run
        if [ ! -d /var/lib/containers ]; then
            mkdir /var/lib/containers
            made_var_lib_containers=1
        fi
        mount -t tmpfs -o mode=0700 berth-bench-containers /var/lib/containers
        # The engines' own directories on a tmpfs as well: the native and vfs storage drivers
        # copy the image's 290 files for each container, and on this machine's ext4, which
        # allocates new inodes past those freed in the last 30 s, that churn made each
        # engine's runs slower as they went on (ctr's from about 105 to 150 ms, against 75
        # on tmpfs), whatever the runtime.
        mkdir "$work/engines"
        mount -t tmpfs -o mode=0700 berth-bench-engines "$work/engines"
        "$here/hack/make-image.sh" "$work/image.tar" "$image"
        for e in "${engine_list[@]}"; do
            case $e in
                ctr) start_containerd || engine_down[$e]="not run: $why" ;;
                podman) start_podman || engine_down[$e]="not run: $why" ;;
                docker) start_dockerd || engine_down[$e]="not run: $why" ;;
            esac
        done
    fi
fi

# An engine's run takes 0.1-0.5 s and the engines' daemons share the machine with whatever
# else runs on it, so these are interleaved run by run: one untimed run of each engine with
# each runtime first (a runtime that fails there, or later, is not tried with that engine
# again; the table says so, and what it said is printed below the table), then RUNS rounds in
# which every engine runs /bin/true once with every runtime, the order turning each round.
engine_timed() { # engine runtime timed(0/1): appends to engine-E-RT.times, or notes the failure
    local e=$1 rt=$2 cmd
    cmd=$(engine_cmd "$e" "$rt")
    if [ "$3" = 0 ]; then
        $cmd </dev/null >/dev/null 2>"$work/err" && return
    elif hyperfine -N --style none --runs 1 --export-json "$work/round.json" "$cmd" >/dev/null 2>"$work/err"; then
        jq -r '.results[0].times[]' "$work/round.json" >> "$work/engine-$e-$rt.times"
        return
    else
        $cmd </dev/null >/dev/null 2>"$work/err" || true
    fi
    engine_failed[$e,$rt]=$(tail -n 3 "$work/err" | cut -c1-300 | tr '\n' ' ' | sed 's/ *$//')
    [ -n "${engine_failed[$e,$rt]}" ] || engine_failed[$e,$rt]="exit status not 0, nothing on stderr"
}
read -r -a order <<< "$runtimes"
for round in $(seq 0 $(( per_round * rounds ))); do
    for e in "${engine_list[@]}"; do
        [ -z "${engine_down[$e]:-}" ] || continue
        for rt in "${order[@]}"; do
            [ -z "${engine_failed[$e,$rt]:-}" ] || continue
            engine_timed "$e" "$rt" $(( round > 0 ))
        done
    done
    order=("${order[@]:1}" "${order[0]}")
done
for e in "${engine_list[@]}"; do
    collect "engine-$e" "${rts[@]}"
    for rt in $runtimes; do
        [ -z "${engine_failed[$e,$rt]:-}" ] || result[engine-$e,$rt]="failed (below)"
    done
done
stop_engines

# --- the report --------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == 0) print "-"; else printf "%.2f", a / b }'; }
row() { # label key
    local b=${result[$2-median,berth]:-0} c=${result[$2-median,crun]:-0} u=${result[$2-median,runc]:-0}
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "${result[$2,berth]:-}" "${result[$2,crun]:-}" "${result[$2,runc]:-}" \
        "$(ratio "$b" "$c")" "$(ratio "$b" "$u")"
}
# Each runtime's full cycle over the floor's time, and (in brackets) how much longer it
# takes; the ratio columns compare that time above the floor.
floor_med=${result[floor-median,floor]}
for rt in $runtimes; do
    for name in run run-tmpfs; do
        m=${result[$name-median,$rt]}
        result[$name-over-floor,$rt]=$(awk "BEGIN{printf \"%.2fx (+%.2f)\", $m/$floor_med, $m-$floor_med}")
        result[$name-over-floor-median,$rt]=$(awk "BEGIN{print $m-$floor_med}")
    done
done
echo
driver="berth's own cgroupfs driver for each"
[ "$systemd" = 1 ] && driver="--systemd-cgroup for each (systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'))"
echo "berth benchmark, $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r), $driver; $((per_round * rounds)) runs each in $rounds interleaved rounds; medians"
echo
echo "| metric | berth | crun | runc | berth/crun | berth/runc |"
echo "| --- | --- | --- | --- | --- | --- |"
row "full cycle: run /bin/true, back to back (ms)" run
row "full cycle, 50 ms apart (ms)" run-spaced
row "full cycle, state root on tmpfs (ms)" run-tmpfs
row "create (ms)" create
row "start (ms)" start
row "delete (ms)" delete
row "state (ms)" state
row "exec /bin/true into a running container (ms)" exec
row "exec --detach --pid-file, as containerd's shim calls it (ms)" exec-detached
row "peak RSS during create (MiB)" rss-create
row "peak RSS during run (MiB)" rss-run
row "syscalls per full cycle" syscalls
row "throughput, concurrency 2 (containers/s)" tp2
row "throughput, concurrency 8 (containers/s)" tp8
echo "| floor: unshare + chroot /bin/true (ms) | ${result[floor,floor]} | | | | |"
row "full cycle / floor (ms above the floor)" run-over-floor
row "full cycle, state on tmpfs / floor (ms above it)" run-tmpfs-over-floor
if [ "$scale" -gt 1 ]; then
    row "scale: state of one, 1 → $scale containers running (ms)" scale-state
    row "scale: list, 1 → $scale running (ms)" scale-list
    row "scale: exec /bin/true into one, 1 → $scale running (ms)" scale-exec
    row "scale: kill -9 of one, 1 → $scale running (ms)" scale-kill
    row "scale: delete --force of one, 1 → $scale running (ms)" scale-delete
fi
for e in "${engine_list[@]}"; do
    if [ -n "${engine_down[$e]:-}" ]; then
        echo "| ${engine_label[$e]} (ms) | ${engine_down[$e]} | | | | |"
    else
        row "${engine_label[$e]} (ms)" "engine-$e"
    fi
done
echo
echo "Higher is better for throughput, lower for everything else. Full cycle / floor: each"
echo "runtime's full cycle over the floor's time (ms above it); its ratio columns compare the"
echo "time above the floor."
if [ "$scale" -gt 1 ]; then
    echo "Scale: the medians with 1 and with $scale running (and the ratio of the two); the ratio"
    echo "columns compare the times with $scale running."
fi
for e in "${engine_list[@]}"; do
    for rt in $runtimes; do
        [ -z "${engine_failed[$e,$rt]:-}" ] || echo "- $e with $rt failed: ${engine_failed[$e,$rt]}"
    done
done

# Nothing may be left: state roots, cgroups named after the bench containers and engines.
for rt in berth crun runc; do
    for root in "$work/root-$rt" "$work/tmpfs/root-$rt"; do
        leftover=$("$(rt_bin $rt)" --root "$root" list -q 2>/dev/null || true)
        [ -z "$leftover" ] || die "$rt left containers: $leftover"
    done
done
umount "$work/tmpfs"
leaked=$(find /sys/fs/cgroup -maxdepth 3 \( -name 'berth-bench*' -o -name 'tp[0-9]*' -o -name 'b-*' \) 2>/dev/null | head -5)
[ -z "$leaked" ] || die "cgroups left behind: $leaked"
leftover=$(awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | head -5)
[ -z "$leftover" ] || die "mounts left behind: $leftover"
leftover=$(pids_mentioning "$work/")
[ -z "$leftover" ] || die "engine processes left behind: $leftover"
if [ "$systemd" = 1 ]; then
    units=$(systemctl list-units --all --plain --no-legend | grep -E -- '-(b-[a-z0-9]+|tp[0-9]+)\.scope' | head -5 || true)
    [ -z "$units" ] || die "systemd units left behind: $units"
fi

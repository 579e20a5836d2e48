#!/usr/bin/env bash
# Runs opencontainers/runc's own end-to-end bats suite (tests/integration/*.bats) against one
# or more OCI runtime binaries, one .bats file at a time, and prints a per-file table of
# ok / fail / skip counts (plus hangs) with one column per runtime.
#
# usage: hack/runc-suite.sh --runc-src DIR --helpers DIR [--runtime PATH]... [--out DIR]
#            [--cache DIR] [--timeout SECS] [--debian-mirror URL] [--debian-suite NAME]
#            [FILE.bats...]
#
#   --runc-src DIR   a checkout of runc (only tests/ and go.mod are used; nothing is written)
#   --helpers DIR    the already-built tests/cmd helpers (recvtty, seccompagent, ...), see below
#   --runtime PATH   runtime to test, repeatable; default: target/release/berth and runc from PATH
#   --out DIR        results (results.md, summary.tsv, raw TAP logs per runtime per file);
#                    default /tmp/berth-runc-suite-out
#   --cache DIR      where the busybox and Debian rootfs tarballs are made once and kept;
#                    default /var/cache/berth-runc-suite
#   --timeout SECS   limit for one .bats file (some hang); default 600
#   FILE.bats...     only these files (names as in tests/integration); default all of them
#
# Must run as root (the suite is run non-rootless only). Needs bats >= 1.5, jq, gawk, go (the
# suite's get-images.sh calls `go env GOARCH`), busybox-static and mmdebstrap; gcc and criu are
# used by some tests if present. The script fetches and builds nothing of runc's: the suite is
# run from a private temporary copy of tests/integration (helpers.bash finds its own directory
# with readlink -f, so a copy is needed to point it at our images and helpers), with
# tests/cmd/_bin linked to --helpers and the image tarballs get-images.sh would download
# already in place. The copy is removed at exit. Exit status is 0 once every file has run,
# whatever the tests' outcome; nonzero only on a usage or setup error.
#
# Building the helpers, by hand, outside this repo. runc main's go.mod needs Go >= 1.25 and
# its vendored x/sys needs Go >= 1.21, so with Debian 12's Go 1.19 build the same helpers from
# runc v1.2.0-rc.1 (go 1.20 in go.mod; vendored x/sys v0.18.0 builds with 1.19), whose
# contrib/cmd/* have the same flags as main's tests/cmd/*; key_label is not in that tag but
# only needs x/sys, so main's copy builds against the tag's vendor tree:
#
#   G=/path/to/runc.git                            # a clone of opencontainers/runc
#   mkdir -p /work/runc-src /work/runc-1.2rc1 /work/runc-helpers
#   git --git-dir=$G archive main        | tar -x -C /work/runc-src
#   git --git-dir=$G archive v1.2.0-rc.1 | tar -x -C /work/runc-1.2rc1
#   cp -r /work/runc-src/tests/cmd/key_label /work/runc-1.2rc1/contrib/cmd/
#   cd /work/runc-1.2rc1
#   for h in recvtty sd-helper seccompagent fs-idmap pidfd-kill remap-rootfs key_label; do
#       GOFLAGS=-mod=vendor GOPROXY=off go build -tags seccomp \
#           -o /work/runc-helpers/$h ./contrib/cmd/$h       # seccompagent: libseccomp-dev
#   done
#
# then, e.g.:
#   hack/runc-suite.sh --runc-src /work/runc-src --helpers /work/runc-helpers \
#       --runtime target/release/berth --runtime /usr/sbin/runc --out /tmp/runc-suite
#
# Not run here on purpose: RUNC_USE_SYSTEMD (no systemd assumed), rootless. spec.bats clones
# runtime-spec from the network: GIT_ALLOW_PROTOCOL=file and GOPROXY=off make it fail at once
# instead of fetching.
set -euo pipefail

usage() {
    sed -n 's/^# \{0,1\}//; /^usage:/,/^$/p' "$0" | sed '/^$/q' >&2
    exit 2
}

die() { echo "runc-suite: $*" >&2; exit 1; }
log() { echo "runc-suite: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runc_src= helpers= out=/tmp/berth-runc-suite-out cache=/var/cache/berth-runc-suite
timeout_secs=600 debian_mirror=http://deb.debian.org/debian debian_suite=bookworm
runtimes=() files=()
while [ $# -gt 0 ]; do
    case $1 in
    --runc-src) runc_src=${2:?}; shift 2 ;;
    --helpers) helpers=${2:?}; shift 2 ;;
    --runtime) runtimes+=("${2:?}"); shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --cache) cache=${2:?}; shift 2 ;;
    --timeout) timeout_secs=${2:?}; shift 2 ;;
    --debian-mirror) debian_mirror=${2:?}; shift 2 ;;
    --debian-suite) debian_suite=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "runc-suite: unknown option $1" >&2; usage ;;
    *) files+=("$1"); shift ;;
    esac
done
[ -n "$runc_src" ] && [ -n "$helpers" ] || usage
[ "$(id -u)" = 0 ] || die "must run as root"
for tool in bats jq gawk go timeout mmdebstrap; do
    command -v "$tool" >/dev/null || die "$tool not found in PATH"
done
runc_src=$(readlink -f "$runc_src")
helpers=$(readlink -f "$helpers")
integ=$runc_src/tests/integration
[ -f "$integ/helpers.bash" ] || die "$integ/helpers.bash not found: not a runc checkout"
for h in recvtty seccompagent; do
    [ -x "$helpers/$h" ] || log "warning: $helpers/$h missing: tests using it will fail"
done
if [ ${#runtimes[@]} -eq 0 ]; then
    runtimes=("$here/target/release/berth" "$(command -v runc || echo runc)")
fi
for i in "${!runtimes[@]}"; do
    rt=$(readlink -f "${runtimes[$i]}") || true
    [ -x "$rt" ] || die "runtime ${runtimes[$i]} is not an executable"
    runtimes[$i]=$rt
done
if [ ${#files[@]} -eq 0 ]; then
    for f in "$integ"/*.bats; do files+=("$(basename "$f")"); done
else
    for i in "${!files[@]}"; do
        files[$i]=$(basename "${files[$i]}")
        [ -f "$integ/${files[$i]}" ] || die "no such file: $integ/${files[$i]}"
    done
fi

# --- rootfs images, made locally once: get-images.sh only downloads a missing file ---------
mkdir -p "$cache"
if [ ! -s "$cache/busybox-noproc.tar" ]; then
    log "making busybox rootfs from /bin/busybox"
    tmp=$(mktemp -d)
    "$here/hack/make-rootfs.sh" "$tmp/rootfs"
    # Like the docker-library busybox tarball the suite downloads: no /proc or /sys (the
    # "prohibit symlink /proc" tests make the symlink with `ln -s`, which puts it inside an
    # existing directory instead).
    rmdir "$tmp/rootfs/proc" "$tmp/rootfs/sys"
    tar -C "$tmp/rootfs" -cf "$cache/busybox-noproc.tar.part" .
    rm -rf "$tmp"
    mv "$cache/busybox-noproc.tar.part" "$cache/busybox-noproc.tar"
fi
if [ ! -s "$cache/debian.tar" ]; then
    # The suite's Debian tests run bash, stat, findmnt, ionice and chrt.
    log "making Debian rootfs with mmdebstrap ($debian_suite from $debian_mirror)"
    mmdebstrap --quiet --format=tar --variant=minbase --include=bash,coreutils,util-linux \
        "$debian_suite" "$cache/debian.tar.part" "$debian_mirror" </dev/null
    mv "$cache/debian.tar.part" "$cache/debian.tar"
fi

# --- private copy of the suite ---------------------------------------------------------------
# Short path: unix socket paths under it (console, seccomp agent) are limited to 108 bytes.
work=$(mktemp -d /tmp/rs.XXXXXX)
chmod 755 "$work" # userns tests need the path searchable by other uids
cgroups_before=$work/cgroups.before
toplevel_before=$work/toplevel.before
mounts_before=$work/mounts.before

cleanup_work() {
    # Whatever is still mounted below $work (a killed test's leftovers) must go first.
    awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup_work EXIT

mkdir -p "$work/tests/cmd" "$work/t"
cp -a "$integ" "$work/tests/integration"
ln -s "$runc_src/go.mod" "$work/go.mod" # spec.bats reads the runtime-spec version from it
for d in "$runc_src"/tests/cmd/*/; do ln -s "$d" "$work/tests/cmd/$(basename "$d")"; done
ln -s "$helpers" "$work/tests/cmd/_bin"
arch=$(go env GOARCH)
ln -s "$cache/busybox-noproc.tar" "$work/tests/integration/testdata/busybox-$arch.tar.xz"
ln -s "$cache/debian.tar" "$work/tests/integration/testdata/debian-$arch.tar.xz"
suite=$work/tests/integration

# --- cleanup after each file -------------------------------------------------------------------
# Tests clean up in teardown, but not when a file is killed on timeout, so after each file:
# delete leftover containers, kill stray helper/runtime processes, remove the suite's cgroups
# (only new ones named like the suite's: other tests may run on this machine too), unmount
# and detach what was left below the file's TMPDIR.
cgroup_dirs() { find /sys/fs/cgroup -mindepth 2 -type d 2>/dev/null | sort; }
suite_cgroup() { # $1: cgroup dir; true if it looks like one made by the suite
    local rel=${1#/sys/fs/cgroup/*/}
    case ${rel%%/*} in
    runc-cgroups-integration-test* | test* | tst | ct[0-9]* | target_* | in_userns | attached_ctr) return 0 ;;
    esac
    return 1
}

cleanup_after() { # $1: runtime, $2: the file's TMPDIR
    local rt=$1 tmp=$2 st ct d pid exe cg
    while read -r st; do
        for ct in $("$rt" --root "$st" list -q 2>/dev/null); do
            log "cleanup: deleting leftover container $ct ($st)"
            timeout 30 "$rt" --root "$st" delete -f "$ct" >/dev/null 2>&1 || true
        done
    done < <(find "$tmp" -type d -name state 2>/dev/null)
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        exe=$(readlink "$d/exe" 2>/dev/null) || continue
        case $exe in
        "$helpers"/* | "$rt") log "cleanup: killing stray $pid $exe"; kill -9 "$pid" 2>/dev/null || true ;;
        esac
    done
    comm -13 "$cgroups_before" <(cgroup_dirs) | sort -r | while read -r cg; do
        suite_cgroup "$cg" || continue
        # A frozen task cannot die: thaw first.
        if [ -f "$cg/freezer.state" ]; then echo THAWED >"$cg/freezer.state" 2>/dev/null || true; fi
        if [ -f "$cg/cgroup.freeze" ]; then echo 0 >"$cg/cgroup.freeze" 2>/dev/null || true; fi
        for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do
            log "cleanup: killing $pid left in $cg"
            kill -9 "$pid" 2>/dev/null || true
        done
        for _ in 1 2 3 4 5; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
        if [ -d "$cg" ]; then log "cleanup: could not remove cgroup $cg"; fi
    done
    # The suite mkdir -p's paths of v1 controllers this host does not mount: plain directories
    # on /sys/fs/cgroup's tmpfs, where engines later write "tasks" files (and cannot rmdir).
    comm -13 "$toplevel_before" <(ls -1 /sys/fs/cgroup | sort) | while read -r d; do
        if ! mountpoint -q "/sys/fs/cgroup/$d"; then
            log "cleanup: removing /sys/fs/cgroup/$d (a directory, not a mount)"
            rm -rf "/sys/fs/cgroup/${d:?}"
        fi
    done
    awk -v w="$tmp/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do log "cleanup: unmounting $m"; umount -l "$m" 2>/dev/null || true; done
    losetup -ln -O NAME,BACK-FILE 2>/dev/null | awk -v w="$tmp/" 'index($2, w) == 1 { print $1 }' |
        while read -r dev; do log "cleanup: detaching $dev"; losetup -d "$dev" || true; done
    rm -rf "$tmp" 2>/dev/null || log "cleanup: could not remove $tmp"
}

# --- run ---------------------------------------------------------------------------------------
mkdir -p "$out"
# A FIFO held open read-write here: a stdin for script(1) that never ends (see below).
mkfifo "$work/stdin"
exec {stdin_fd}<>"$work/stdin"
cgroup_dirs >"$cgroups_before"
ls -1 /sys/fs/cgroup | sort >"$toplevel_before"
awk '{ print $5 }' /proc/self/mountinfo | sort >"$mounts_before"
summary=$out/summary.tsv
printf 'runtime\tfile\tok\tfail\tskip\tplanned\tstatus\n' >"$summary"
labels=() slugs=()
for rt in "${runtimes[@]}"; do
    # "runc version 1.1.5" -> "runc 1.1.5"
    label=$("$rt" --version 2>/dev/null | head -n1 | sed 's/ version / /') || true
    label=${label:-$(basename "$rt")}
    slug=$(basename "$rt")
    while printf '%s\n' "${slugs[@]}" | grep -qxF "$slug"; do slug=$slug-; done
    labels+=("$label") slugs+=("$slug")
done

for i in "${!runtimes[@]}"; do
    rt=${runtimes[$i]} slug=${slugs[$i]}
    mkdir -p "$out/$slug"
    log "=== ${labels[$i]} ($rt)"
    for f in "${files[@]}"; do
        tap=$out/$slug/${f%.bats}.tap
        tmp=$work/t/$slug-${f%.bats}
        mkdir -p "$tmp" && chmod 755 "$tmp"
        start=$(date +%s)
        rc=0
        # env -i: helpers.bash changes behaviour on RUNC_USE_SYSTEMD, ROOT, ROOTLESS_FEATURES,
        # CGROUP_V1/V2 and more if merely set, so only what the suite needs is passed.
        # script(1) gives the suite a controlling terminal, as runc's CI does (`script -e -c`):
        # spec's default terminal:true makes runc 1.1 open /dev/tty. timeout runs inside it so
        # that it kills bats' whole process group; the outer one is a backstop. Its stdin must
        # never reach EOF: script would then send an EOF byte into the terminal, and the first
        # test of each file would see a stray "^@" in its output. The terminal writes \r\n:
        # strip that \r only, so that one a test printed still shows in the log.
        (cd "$suite" && env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 TERM=dumb \
            TMPDIR="$tmp" RUNC="$rt" GOPROXY=off GIT_ALLOW_PROTOCOL=file \
            GOCACHE="$work/gocache" GOPATH="$work/gopath" \
            timeout -k 10 $((timeout_secs + 60)) script -e -q /dev/null -c \
            "timeout -k 10 $timeout_secs bats --tap $(printf %q "$f")" <&"$stdin_fd") 2>&1 |
            sed 's/\r$//' >"$tap" || rc=${PIPESTATUS[0]}
        n_ok=$(grep -cE '^ok [0-9]+ ' "$tap" || true)
        n_skip=$(grep -cE '^ok [0-9]+ .* # skip' "$tap" || true)
        n_fail=$(grep -cE '^not ok [0-9]+ ' "$tap" || true)
        n_ok=$((n_ok - n_skip))
        planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$tap" | head -n1)
        planned=${planned:-0}
        case $rc in
        0 | 1) status=done ;;
        124 | 137) status=hang ;;
        *) status=error ;;
        esac
        if [ "$status" = done ] && [ $((n_ok + n_skip + n_fail)) -lt "$planned" ]; then status=error; fi
        printf '%s\t%s\t%d\t%d\t%d\t%d\t%s\n' "$slug" "$f" "$n_ok" "$n_fail" "$n_skip" \
            "$planned" "$status" >>"$summary"
        log "$f: ok $n_ok fail $n_fail skip $n_skip of $planned, $status ($(($(date +%s) - start))s)"
        cleanup_after "$rt" "$tmp"
    done
done

# Mounts that appeared outside our tree are not ours to remove (other tests may run here).
new_mounts=$(comm -13 "$mounts_before" <(awk '{ print $5 }' /proc/self/mountinfo | sort))
[ -z "$new_mounts" ] || log "warning: new mounts since start (not touched): $new_mounts"

# --- table -------------------------------------------------------------------------------------
results=$out/results.md
awk -F'\t' -v labels="$(printf '%s\n' "${labels[@]}")" -v slugs="$(printf '%s\n' "${slugs[@]}")" '
    BEGIN { nr = split(labels, lab, "\n"); split(slugs, slg, "\n") }
    NR == 1 { next }
    !($2 in seen) { seen[$2] = 1; order[++nf] = $2 }
    {
        k = $1 SUBSEP $2
        cell[k] = $3 "/" $4 "/" $5
        if ($7 == "hang") cell[k] = cell[k] " HANG (" ($6 - $3 - $4 - $5) " not run)"
        if ($7 == "error") cell[k] = cell[k] " ERROR (" ($6 - $3 - $4 - $5) " not run)"
        ok[$1] += $3; fail[$1] += $4; skip[$1] += $5; if ($7 == "hang") hang[$1]++
        if ($7 == "error") err[$1]++
    }
    END {
        printf "| file |"; for (r = 1; r <= nr; r++) printf " %s ok/fail/skip |", lab[r]; print ""
        printf "|---|"; for (r = 1; r <= nr; r++) printf "---|"; print ""
        for (i = 1; i <= nf; i++) {
            printf "| %s |", order[i]
            for (r = 1; r <= nr; r++) { k = slg[r] SUBSEP order[i]; printf " %s |", (k in cell ? cell[k] : "-") }
            print ""
        }
        printf "| **total** |"
        for (r = 1; r <= nr; r++) {
            s = slg[r]; printf " **%d/%d/%d**", ok[s], fail[s], skip[s]
            if (hang[s]) printf " %d hang", hang[s]
            if (err[s]) printf " %d error", err[s]
            printf " |"
        }
        print ""
    }' "$summary" >"$results"
for i in "${!slugs[@]}"; do
    {
        echo "## ${labels[$i]}: failing tests"
        for f in "${files[@]}"; do
            tap=$out/${slugs[$i]}/${f%.bats}.tap
            grep -E '^not ok ' "$tap" | sed "s|^|$f: |" || true
        done
    } >"$out/${slugs[$i]}/failures.txt"
done
cat "$results"
log "table: $results; raw TAP logs: $out/<runtime>/<file>.tap; failures: $out/<runtime>/failures.txt"

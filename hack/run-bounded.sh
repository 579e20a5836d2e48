#!/bin/sh
# run-bounded.sh SECS CMD [ARGS...]: runs CMD, in a guest of hack/vm.sh, for at most SECS
# seconds. If it is still running then, every process (pid, parent, state, what it waits in,
# command line) and, under systemd, its jobs and the containers' units go to stdout before CMD
# is killed: a hung test then shows where it hangs, instead of the VM's timeout saying only
# that nothing was reported. Exits with CMD's status (137 when it was killed). POSIX sh: the
# v2 guest has busybox only.
limit=${1:?run-bounded.sh: SECS CMD...}
shift

"$@" &
cmd=$!
(
    # Killed (TERM) when CMD ends first: its sleep goes with it.
    trap 'kill "$timer" 2>/dev/null; exit 0' TERM
    sleep "$limit" &
    timer=$!
    wait "$timer"
    echo "run-bounded: still running after ${limit}s: $*"
    echo "run-bounded: pid ppid state wchan cmdline"
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        # "pid (comm) S ppid ...": the fields after the last ')'.
        stat=$(cat "$dir/stat" 2>/dev/null) || continue
        # shellcheck disable=SC2086 # split into fields on purpose
        set -- ${stat##*) }
        wchan=$(cat "$dir/wchan" 2>/dev/null)
        args=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null)
        echo "run-bounded: $pid $2 $1 ${wchan:--} ${args:-[kernel]}"
    done | grep -v '\[kernel\]$'
    if [ -d /run/systemd/system ]; then
        systemctl list-jobs --no-pager 2>&1 | sed 's/^/run-bounded: /'
        systemctl list-units --all --no-pager --plain '*.scope' 2>&1 |
            grep -v '^\(session\|init\)' | sed 's/^/run-bounded: /'
    fi
    kill -KILL "$cmd"
) &
watchdog=$!
wait "$cmd"
rc=$?
kill "$watchdog" 2>/dev/null
exit "$rc"

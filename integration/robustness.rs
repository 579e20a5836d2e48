//! Robustness: `create`, `start`, `exec` and `delete` SIGKILLed at random points, after
//! which `delete --force` must leave nothing; many containers at once; `kill --all`; racing
//! deletes; and a soak (`make soak`, ignored otherwise) of thousands of lifecycles.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::{self, alive, stderr, Bundle, Runtime};
use crate::harness::{assert_no_mount_under, assert_no_process_of, reap_failed_inits};

/// xorshift64*: a small seeded generator (no rand crate), so that the kill points of a
/// failing run can be drawn again from the seed it printed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1)) // the state must never be 0
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A fraction in [0, 1).
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// BERTH_FAULT_SEED if set, else one from the clock; printed either way.
fn fault_seed(test: &str) -> u64 {
    let seed = match std::env::var("BERTH_FAULT_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("BERTH_FAULT_SEED={s:?}: not a number")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("{test}: seed {seed} (BERTH_FAULT_SEED={seed} draws the same kill points)");
    seed
}

/// Polls `cond` every 5 ms for up to `secs` seconds; panics with `what` if it never holds.
fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps what a killed command left to us (the test process is a subreaper): its children
/// still in its process group. Fails if one of them does not exit by itself.
fn reap_group(group: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a process group we created; status is a valid out pointer.
        let r = unsafe { libc::waitpid(-group, &mut status, libc::WNOHANG) };
        if r > 0 {
            continue;
        }
        if r < 0 {
            return; // ECHILD: no child of ours is left in the group
        }
        assert!(
            Instant::now() < deadline,
            "{what}: a process of the killed command's group never exited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps `pid` if it is a zombie child of ours; never blocks.
fn reap_nohang(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on one pid with WNOHANG; status is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// The host pids in the cgroups of container `id`, every hierarchy together.
fn container_pids(id: &str) -> HashSet<i32> {
    harness::cgroup_dirs_named(id)
        .iter()
        .flat_map(|d| pids_in(&d.join("cgroup.procs")))
        .collect()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Runs a berth command in a process group of its own, with no pipes (a surviving init or
/// exec'd process would hold them), and SIGKILLs it at `kill_after` unless it is done.
/// Meanwhile reaps `reap` (and, with `watch`, the processes in container `id`'s cgroups) as
/// they die: the test process is their subreaper, and a PID 1 cannot finish exiting while a
/// zombie of its namespace waits to be reaped. Returns (exit status, whether it finished by
/// itself, its run time, its process group).
fn run_killed(
    rt: &Runtime,
    args: &[&str],
    id: &str,
    kill_after: Duration,
    reap: &HashSet<i32>,
    watch: bool,
) -> (std::process::ExitStatus, bool, Duration, i32) {
    let started = Instant::now();
    let mut child = rt
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id() as i32;
    let mut reap: HashSet<i32> = reap.clone();
    let kill_at = started + kill_after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, true, started.elapsed(), group);
        }
        let now = Instant::now();
        if now >= kill_at {
            break;
        }
        for p in &reap {
            reap_nohang(*p);
        }
        if watch {
            reap.extend(container_pids(id));
        }
        std::thread::sleep((kill_at - now).min(Duration::from_millis(1)));
    }
    // SIGKILL; harmless if it exited meanwhile (it is not reaped yet, so the pid is ours).
    let _ = child.kill();
    let status = child.wait().unwrap();
    // It may have exited between the last look and the kill.
    let finished = status.signal() != Some(libc::SIGKILL);
    (status, finished, started.elapsed(), group)
}

/// Longer than any berth command takes: one still running then has hung, and is killed.
const HANG: Duration = Duration::from_secs(30);

/// The berth commands whose SIGKILL at a random point `delete --force` must clean up after.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Killed {
    Create,
    Start,
    Exec,
    Delete,
}

/// How the kills of one command landed.
#[derive(Default)]
struct Tally {
    /// The command had exited before the kill (it must have succeeded).
    finished: u32,
    /// Killed before anything of its work could be seen.
    before: u32,
    /// Killed with part (or all) of its work done: the points that count.
    mid_way: u32,
    /// Finer points, by what was seen (e.g. state.json saying `creating`).
    seen: std::collections::BTreeMap<&'static str, u32>,
}

/// One container, one command killed at `kill_after` (HANG: let it finish, to time it), then
/// `delete --force` and the leak checks. Returns the command's run time.
fn kill_one(
    rt: &Runtime,
    b: &Bundle,
    cmd: Killed,
    kill_after: Duration,
    n: u32,
    tally: &mut Tally,
    what: &str,
) -> Duration {
    let id = harness::unique_id(&format!("kill{cmd:?}").to_lowercase());
    let what = format!("{what} ({id})");
    let pid_file = b.path().join("killed.pid");
    let _ = fs::remove_file(&pid_file);
    rt.track_bundle(&id, b.path());
    let state_dir = rt.root.path().join(&id);

    // The container as the command finds it.
    let mut init = 0;
    let mut reap = HashSet::new();
    if cmd != Killed::Create {
        let out = rt.create(b, &id, &[]);
        assert!(out.status.success(), "{what}: create: {}", stderr(&out));
        init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    }
    if matches!(cmd, Killed::Exec | Killed::Delete) {
        let out = rt.berth(&["start", &id]);
        assert!(out.status.success(), "{what}: start: {}", stderr(&out));
    }
    if cmd == Killed::Delete && n % 2 == 1 {
        // Half of the deletes also have an exec'd process to kill.
        let f = b.path().join("exec.pid");
        // No pipes: the exec'd process would hold them open.
        let st = rt
            .cmd()
            .args(["exec", "-d", "--pid-file", f.to_str().unwrap(), &id])
            .args(["sleep", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{what}: exec: {st:?}");
        reap.insert(fs::read_to_string(&f).unwrap().trim().parse().unwrap());
    }
    let comm_before = comm(init);
    let cgroups_before = harness::cgroup_dirs_named(&id);

    let pid_arg = pid_file.to_str().unwrap();
    let bundle_arg = b.path().to_str().unwrap();
    let args: Vec<&str> = match cmd {
        Killed::Create => vec!["create", "--pid-file", pid_arg, "--bundle", bundle_arg, &id],
        Killed::Start => vec!["start", &id],
        Killed::Exec => vec!["exec", "-d", "--pid-file", pid_arg, &id, "sleep", "100"],
        Killed::Delete => vec!["delete", "--force", &id],
    };
    let (status, finished, took, group) = run_killed(rt, &args, &id, kill_after, &reap, false);
    let what = format!("{what}, {:.2} ms in", took.as_secs_f64() * 1000.0);

    assert!(finished || kill_after < HANG, "{what}: berth {args:?} hung");
    if finished {
        // Done before the kill: it must have succeeded and left what it promises.
        assert!(
            status.success(),
            "{what}: berth {args:?} failed: {status:?}"
        );
        tally.finished += 1;
        match cmd {
            Killed::Create => {
                let pid: i32 = fs::read_to_string(&pid_file)
                    .unwrap_or_else(|e| panic!("{what}: no pid file after create: {e}"))
                    .trim()
                    .parse()
                    .unwrap();
                assert_eq!(rt.status(&id), "created", "{what}");
                assert!(
                    alive(pid),
                    "{what}: init {pid} of a created container is dead"
                );
                init = pid;
            }
            Killed::Start => {
                assert_eq!(rt.status(&id), "running", "{what}");
                assert_eq!(comm(init), "sleep", "{what}: init has not exec'd");
            }
            Killed::Exec => {
                let pid: i32 = fs::read_to_string(&pid_file)
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                assert!(
                    container_pids(&id).contains(&pid),
                    "{what}: {pid} not in the cgroup"
                );
            }
            Killed::Delete => {
                assert!(!state_dir.exists(), "{what}: delete left its state dir");
                assert!(!alive(init), "{what}: init {init} survived delete");
            }
        }
    } else {
        // What of the command's work can be seen from outside, now that it is dead.
        let mid_way = match cmd {
            Killed::Create => {
                let saved = fs::read(state_dir.join("state.json"))
                    .ok()
                    .and_then(|j| serde_json::from_slice::<Value>(&j).ok());
                match saved.as_ref().and_then(|s| s["status"].as_str()) {
                    Some("creating") => {
                        *tally.seen.entry("state.json says creating").or_default() += 1
                    }
                    Some("created") => {
                        *tally.seen.entry("state.json says created").or_default() += 1
                    }
                    _ if state_dir.exists() => {
                        *tally.seen.entry("state dir, no state.json").or_default() += 1
                    }
                    _ => {}
                }
                state_dir.exists()
            }
            Killed::Start => {
                // Once the gate is open init goes on without start; let it get there.
                std::thread::sleep(Duration::from_millis(20));
                let released = !alive(init) || comm(init) != comm_before;
                if released && alive(init) {
                    *tally.seen.entry("init exec'd").or_default() += 1;
                    // start takes the exec fifo's name away as it opens the gate: a
                    // killed start never leaves a running process that says created.
                    let status = rt.status(&id);
                    assert_eq!(
                        status, "running",
                        "{id}: init exec'd, yet state says {status}"
                    );
                } else if released {
                    *tally.seen.entry("init died at the gate").or_default() += 1;
                }
                released
            }
            Killed::Exec => {
                let others: Vec<i32> = container_pids(&id)
                    .into_iter()
                    .filter(|p| *p != init)
                    .collect();
                if pid_file.exists() {
                    *tally.seen.entry("pid file written").or_default() += 1;
                }
                !others.is_empty()
            }
            Killed::Delete => {
                let init_dead = !alive(init);
                let cgroups_gone = cgroups_before.iter().any(|d| !d.exists());
                if !state_dir.exists() {
                    *tally.seen.entry("state dir removed").or_default() += 1;
                } else if cgroups_gone {
                    *tally
                        .seen
                        .entry("cgroups removed, state dir left")
                        .or_default() += 1;
                } else if init_dead {
                    *tally.seen.entry("init killed, cgroups left").or_default() += 1;
                }
                init_dead || cgroups_gone || !state_dir.exists()
            }
        };
        if mid_way {
            tally.mid_way += 1;
        } else {
            tally.before += 1;
        }
        if cmd == Killed::Create {
            init = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .or_else(|| {
                    let out = rt.berth(&["state", &id]);
                    serde_json::from_slice::<Value>(&out.stdout)
                        .ok()
                        .and_then(|v| v["pid"].as_i64())
                        .map(|p| p as i32)
                })
                .unwrap_or(0);
        }
    }

    // Whatever was made, `delete --force` removes all of it.
    let mut reap_now = reap.clone();
    reap_now.extend(container_pids(&id).into_iter().filter(|p| *p != init));
    let (status, _, _, delete_group) =
        run_killed(rt, &["delete", "--force", &id], &id, HANG, &reap_now, true);
    assert!(
        status.success(),
        "{what}: delete --force failed: {status:?}"
    );
    for p in reap_now {
        harness::reap(p);
    }
    if init > 0 {
        harness::reap(init);
        assert!(!alive(init), "{what}: init {init} survived delete --force");
    }
    reap_group(group, &what);
    reap_group(delete_group, &what);
    reap_failed_inits();
    rt.assert_nothing_left(&id);
    assert_no_mount_under(b.path());
    assert_no_process_of(&id);
    let out = rt.berth(&["state", &id]);
    assert!(
        stderr(&out).contains("does not exist"),
        "{what}: state after delete --force: {}",
        stderr(&out)
    );
    took
}

/// Kills `cmd` at random points of its run, at least `min` times and until `want` kills have
/// landed mid-way (at most `max` times); asserts that at least one did, and prints the tally.
fn kill_at_random_points(rt: &Runtime, rng: &mut Rng, cmd: Killed, min: u32, want: u32, max: u32) {
    let b = Bundle::new(&["sleep", "100"]);
    // Its run time unkilled sets the range the kill points are drawn from: 0 to 110% of it,
    // so that the kills spread over the whole command whatever the machine's speed.
    let mut times: Vec<Duration> = (0..3)
        .map(|i| {
            kill_one(
                rt,
                &b,
                cmd,
                HANG,
                i,
                &mut Tally::default(),
                &format!("{cmd:?}: timing run {i}"),
            )
        })
        .collect();
    times.sort();
    let typical = times[1];
    let mut tally = Tally::default();
    let mut n = 0;
    while n < min || (tally.mid_way < want && n < max) {
        let f = rng.fraction() * 1.1;
        let at = typical.mul_f64(f);
        let what = format!(
            "{cmd:?} #{n}: kill at {:.2} ms ({:.0}% of {:.2} ms)",
            at.as_secs_f64() * 1000.0,
            f * 100.0,
            typical.as_secs_f64() * 1000.0
        );
        kill_one(rt, &b, cmd, at, n, &mut tally, &what);
        n += 1;
    }
    eprintln!(
        "{cmd:?} (unkilled {:.1} ms): {n} kill points, {} mid-way, {} before any effect, {} after it had finished; seen: {:?}",
        typical.as_secs_f64() * 1000.0,
        tally.mid_way,
        tally.before,
        tally.finished,
        tally.seen
    );
    assert!(
        tally.mid_way > 0,
        "{cmd:?}: none of {n} kills landed while it was working (the test proved nothing)"
    );
}

#[test]
fn create_killed_at_random_points_is_cleaned_by_delete_force() {
    let rt = Runtime::new();
    let mut rng = Rng::new(fault_seed("create_killed_at_random_points"));
    kill_at_random_points(&rt, &mut rng, Killed::Create, 25, 5, 60);
    assert_eq!(
        fs::read_dir(rt.root.path()).unwrap().count(),
        0,
        "state root not empty"
    );
}

#[test]
fn start_exec_and_delete_killed_at_random_points_are_cleaned_by_delete_force() {
    let rt = Runtime::new();
    let mut rng = Rng::new(fault_seed("start_exec_delete_killed_at_random_points"));
    for cmd in [Killed::Start, Killed::Exec, Killed::Delete] {
        kill_at_random_points(&rt, &mut rng, cmd, 16, 4, 50);
    }
    assert_eq!(
        fs::read_dir(rt.root.path()).unwrap().count(),
        0,
        "state root not empty"
    );
}

/// Whether `pid` is listed in cgroup.procs of every hierarchy's cgroup of container `id`.
fn in_container_cgroups(id: &str, pid: i32) -> bool {
    let dirs = harness::cgroup_dirs_named(id);
    !dirs.is_empty()
        && dirs.iter().all(|d| {
            fs::read_to_string(d.join("cgroup.procs"))
                .map(|p| p.lines().any(|l| l.trim() == pid.to_string()))
                .unwrap_or_else(|e| panic!("read {}: {e}", d.display()))
        })
}

/// One container's whole life, in one of three ways; returns init's pid.
fn lifecycle(rt: &Runtime, n: usize) -> i32 {
    let args: &[&str] = match n % 3 {
        0 => &["true"],
        1 => &["sh", "-c", "echo $$ > /dev/null; sleep 100"],
        _ => &["sleep", "100"],
    };
    let b = Bundle::new(args);
    let id = harness::unique_id(&format!("many{n}"));
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create {id}: {}", stderr(&out));
    assert_eq!(rt.status(&id), "created", "{id}");
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(alive(pid), "{id}: init {pid} not alive after create");
    assert!(
        in_container_cgroups(&id, pid),
        "{id}: init {pid} not in the container's cgroups"
    );

    let out = rt.berth(&["start", &id]);
    assert!(out.status.success(), "start {id}: {}", stderr(&out));
    let status = rt.status(&id);
    match n % 3 {
        0 => {
            // `true` may be done already.
            assert!(status == "running" || status == "stopped", "{id}: {status}");
            wait_until(10, &format!("{id} to stop"), || rt.status(&id) == "stopped");
        }
        1 => {
            assert_eq!(status, "running", "{id}");
            let out = rt.berth(&["kill", &id, "KILL"]);
            assert!(out.status.success(), "kill {id}: {}", stderr(&out));
            wait_until(10, &format!("{id} to stop"), || rt.status(&id) == "stopped");
        }
        _ => {
            assert_eq!(status, "running", "{id}");
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            assert_eq!(comm.trim(), "sleep", "{id}");
        }
    }
    if n % 3 == 2 {
        rt.delete_force(&id);
    } else {
        let out = rt.berth(&["delete", &id]);
        assert!(out.status.success(), "delete {id}: {}", stderr(&out));
        harness::reap(pid);
    }
    assert!(!alive(pid), "{id}: init {pid} alive after delete");
    rt.assert_nothing_left(&id);
    assert_no_mount_under(b.path());
    assert_no_process_of(&id);
    pid
}

#[test]
fn twenty_containers_concurrently() {
    let rt = Runtime::new();
    let pids: Vec<i32> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..20)
            .map(|n| {
                let rt = &rt;
                s.spawn(move || lifecycle(rt, n))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let unique: HashSet<i32> = pids.iter().copied().collect();
    assert_eq!(unique.len(), 20, "init pids not distinct: {pids:?}");
    assert_eq!(
        fs::read_dir(rt.root.path()).unwrap().count(),
        0,
        "state root not empty"
    );
}

/// cgroup.procs of every hierarchy's cgroup of container `id`.
fn procs_files(id: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = harness::cgroup_dirs_named(id)
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .collect();
    assert!(!files.is_empty(), "no cgroup of {id} found");
    files
}

fn pids_in(file: &Path) -> HashSet<i32> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `kill --all ID KILL` on a shell with two background children: every process of the
/// container is gone from the host and from every cgroup, and the container is stopped.
fn kill_all_empties_the_cgroup(name: &str, kill: &[&str], edit: impl FnOnce(&mut Value)) {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    b.edit(edit);
    let id = harness::unique_id(name);
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    assert!(rt.berth(&["start", &id]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let files = procs_files(&id);
    // Wait until the shell has started both children (3 processes in the cgroup).
    wait_until(5, "the shell's children", || pids_in(&files[0]).len() >= 3);
    let before = pids_in(&files[0]);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.contains(&init));
    for pid in &before {
        assert!(alive(*pid), "{pid} not alive");
    }

    let args: Vec<&str> = ["kill"]
        .iter()
        .chain(kill)
        .chain([&id.as_str(), &"KILL"])
        .copied()
        .collect();
    let out = rt.berth(&args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    wait_until(5, "an empty cgroup after kill --all", || {
        files.iter().all(|f| pids_in(f).is_empty())
    });
    for pid in &before {
        // Init and (without a PID namespace) its orphaned children are reparented to us.
        harness::reap(*pid);
        assert!(!alive(*pid), "{pid} survived kill --all");
    }
    assert_eq!(rt.status(&id), "stopped");
    let out = rt.berth(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_no_process_of(&id);
}

#[test]
fn kill_all_empties_the_cgroup_with_a_pid_namespace() {
    kill_all_empties_the_cgroup("killall", &["--all"], |_| {});
}

#[test]
fn kill_all_empties_the_cgroup_without_a_pid_namespace() {
    // Without a PID namespace killing init alone would leave the children running: only
    // --all reaches them.
    kill_all_empties_the_cgroup("killallnopidns", &["--all"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid")
    });
}

#[test]
fn kill_with_sigkill_reaches_every_process_without_a_pid_namespace() {
    // As runc: without a PID namespace of its own, SIGKILL alone (no --all) goes to the
    // whole cgroup, since killing init would leave the others running.
    kill_all_empties_the_cgroup("killnopidns", &[], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid")
    });
}

#[test]
fn kill_all_of_a_stopped_container_kills_what_init_left() {
    // Without a PID namespace, init may exit and leave children running in the container's
    // cgroup; the container is then stopped. runc's `kill --all` is not an error on a stopped
    // container (kill.go: ErrNotRunning is ignored with --all) and with KILL it signals every
    // process left in the cgroup; containerd's shim relies on this after init exits.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "sleep 100 & exit 0"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid")
    });
    let id = harness::unique_id("killallstopped");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    harness::reap(init);
    wait_until(5, "init to exit", || rt.status(&id) == "stopped");
    let files = procs_files(&id);
    let left = pids_in(&files[0]);
    assert_eq!(left.len(), 1, "the orphaned sleep: {left:?}");
    let orphan = *left.iter().next().unwrap();
    assert!(alive(orphan));

    // (SIGKILL without --all: the same there, as runc, where init is gone.)
    let out = rt.berth(&["kill", &id, "KILL"]);
    let killed = out.status.success();
    let err = stderr(&out);
    if !killed {
        // Let the leak check pass regardless; the assertion below reports the failure.
        rt.delete_force(&id);
        harness::reap(orphan);
    }
    assert!(
        killed,
        "kill --all KILL of a stopped container with processes left: {err}"
    );
    wait_until(5, "an empty cgroup after kill --all", || {
        files.iter().all(|f| pids_in(f).is_empty())
    });
    harness::reap(orphan);
    assert!(!alive(orphan), "{orphan} survived kill --all");
    // Nothing left to signal: still not an error.
    let out = rt.berth(&["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "second kill --all: {}", stderr(&out));
    assert_eq!(rt.status(&id), "stopped");
    let out = rt.berth(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_no_process_of(&id);
}

#[test]
fn racing_creates_of_one_id_make_one_container() {
    let rt = Runtime::new();
    for round in 0..5 {
        let (b1, b2) = (
            Bundle::new(&["sleep", "100"]),
            Bundle::new(&["sleep", "100"]),
        );
        let id = harness::unique_id("samecreate");
        let outs: Vec<_> = std::thread::scope(|s| {
            let a = s.spawn(|| rt.create(&b1, &id, &[]));
            let b = s.spawn(|| rt.create(&b2, &id, &[]));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        let won: Vec<usize> = (0..2).filter(|i| outs[*i].status.success()).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: {} creates succeeded: {:?}",
            won.len(),
            outs.iter().map(stderr).collect::<Vec<_>>()
        );
        let lost = &outs[1 - won[0]];
        harness::fails_with_one_line(lost, &format!("container \"{id}\" already exists"));
        // The winner is whole: created, its init alive and in its cgroup, its bundle recorded.
        let state = rt.state(&id);
        assert_eq!(state["status"], "created", "round {round}");
        let pid = state["pid"].as_i64().unwrap() as i32;
        assert!(alive(pid), "round {round}: init {pid} dead");
        assert!(in_container_cgroups(&id, pid), "round {round}");
        let winner = if won[0] == 0 { &b1 } else { &b2 };
        assert_eq!(
            state["bundle"],
            fs::canonicalize(winner.path()).unwrap().to_str().unwrap(),
            "round {round}"
        );
        assert!(rt.berth(&["start", &id]).status.success());
        assert_eq!(rt.status(&id), "running");
        rt.delete_force(&id);
        assert!(!alive(pid));
        assert_no_process_of(&id);
    }
}

#[test]
fn racing_deletes_and_kill_are_safe() {
    let rt = Runtime::new();
    for i in 0..5 {
        let b = Bundle::new(&["sleep", "100"]);
        let id = harness::unique_id("race");
        assert!(rt.create(&b, &id, &[]).status.success());
        assert!(rt.berth(&["start", &id]).status.success());
        let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
        // Two force-deletes and a kill at once: the lock serialises them, so every one either
        // does its work or finds the container already gone — never a half-removed state.
        let outs: Vec<_> = std::thread::scope(|s| {
            let a = s.spawn(|| rt.berth(&["delete", "--force", &id]));
            let b = s.spawn(|| rt.berth(&["delete", "--force", &id]));
            let k = s.spawn(|| rt.berth(&["kill", &id, "KILL"]));
            vec![a.join().unwrap(), b.join().unwrap(), k.join().unwrap()]
        });
        assert!(outs[0].status.success(), "round {i}: {}", stderr(&outs[0]));
        assert!(outs[1].status.success(), "round {i}: {}", stderr(&outs[1]));
        if !outs[2].status.success() {
            let e = stderr(&outs[2]);
            assert!(
                e.contains("does not exist") || e.contains("container not running"),
                "round {i}: {e}"
            );
        }
        harness::reap(pid);
        assert!(!alive(pid));
        rt.assert_nothing_left(&id);
        assert_no_process_of(&id);
    }
}

/// The soak's berth: SOAK_BERTH (`make soak` passes the static release build) or the test
/// build's, with the soak's private root.
struct Soak {
    bin: PathBuf,
    root: PathBuf,
    /// The highest peak RSS (KiB) seen for each command (its first argument).
    peak_by_command: std::sync::Mutex<std::collections::BTreeMap<String, i64>>,
}

/// One berth command that succeeded: its peak RSS (as GNU time reports it, which covers the
/// children berth reaped) and its stdout.
struct Ran {
    maxrss_kib: i64,
    stdout: Vec<u8>,
}

/// What one lifecycle measured.
#[derive(Clone, Copy, Default)]
struct Rec {
    took: Duration,
    maxrss_kib: i64,
    /// berth exec's open fds while it waits for its process (every fourth lifecycle).
    exec_fds: Option<usize>,
}

/// Waits for our child `pid`, reaping `reap` meanwhile (see run_killed).
fn wait_reaping(pid: i32, reap: &[i32]) -> std::process::ExitStatus {
    let mut status = 0;
    let flags = if reap.is_empty() { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: waitpid on our own child; status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return std::process::ExitStatus::from_raw(status);
        }
        let e = std::io::Error::last_os_error();
        assert!(
            r == 0 || e.raw_os_error() == Some(libc::EINTR),
            "waitpid {pid}: {e}"
        );
        for p in reap {
            reap_nohang(*p);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Waits (reaping) for a container's init, our child as the subreaper; false after 10 s.
fn reap_within(pid: i32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one pid with WNOHANG; status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid || (r < 0 && !alive(pid)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

impl Soak {
    fn note_peak(&self, command: &str, kib: i64) {
        let mut m = self.peak_by_command.lock().unwrap();
        let e = m.entry(command.to_string()).or_default();
        *e = (*e).max(kib);
    }

    /// berth under GNU time, which writes berth's peak RSS (%M, KiB) to `rss`. Measured there,
    /// not by our own wait4: a process forked from the test process starts with the test's
    /// high-water mark, which the kernel keeps in its peak RSS across execve.
    fn cmd(&self, args: &[&str], rss: &Path) -> std::process::Command {
        let mut c = std::process::Command::new("/usr/bin/time");
        c.args(["-f", "%M", "-o"]).arg(rss).arg(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// The peak RSS GNU time wrote (its last line; a line about the exit status may precede).
    fn peak_rss(rss: &Path) -> i64 {
        let text = fs::read_to_string(rss).unwrap_or_default();
        let last = text.lines().rev().find(|l| !l.trim().is_empty());
        last.and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time in {text:?}"))
    }

    /// Runs berth with `args`, stderr to `err` (a file: a create's init keeps it), stdout
    /// captured when `capture` (never for commands that leave processes behind).
    #[allow(clippy::zombie_processes)] // reaped by wait_reaping, which reaps others meanwhile
    fn run(&self, args: &[&str], err: &Path, capture: bool, reap: &[i32]) -> Result<Ran, String> {
        let rss = err.with_extension("rss");
        let mut c = self.cmd(args, &rss);
        c.stdin(Stdio::null())
            .stderr(fs::File::create(err).unwrap())
            .stdout(if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = c
            .spawn()
            .map_err(|e| format!("spawn {:?}: {e}", self.bin))?;
        let mut stdout = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            std::io::Read::read_to_end(&mut o, &mut stdout).unwrap();
        }
        let status = wait_reaping(child.id() as i32, reap);
        if !status.success() {
            return Err(format!(
                "berth {args:?}: {status:?}: {}",
                fs::read_to_string(err).unwrap_or_default().trim()
            ));
        }
        let maxrss_kib = Self::peak_rss(&rss);
        self.note_peak(args[0], maxrss_kib);
        Ok(Ran { maxrss_kib, stdout })
    }

    fn status(&self, id: &str, err: &Path, rss: &Cell<i64>) -> Result<String, String> {
        let ran = self.run(&["state", id], err, true, &[])?;
        rss.set(rss.get().max(ran.maxrss_kib));
        let v: Value = serde_json::from_slice(&ran.stdout).map_err(|e| format!("state: {e}"))?;
        Ok(v["status"].as_str().unwrap_or("").to_string())
    }

    /// A foreground `exec` of a process that waits on its stdin: once berth is blocked in
    /// poll(2) waiting for it, counts berth's open fds; then ends it by closing the pipe.
    #[allow(clippy::zombie_processes)] // reaped by wait_reaping
    fn exec_counting_fds(&self, id: &str, err: &Path) -> Result<(Ran, usize), String> {
        use std::io::BufRead;
        let rss = err.with_extension("rss");
        let mut child = self
            .cmd(&["exec", id, "sh", "-c", "echo ready; exec cat"], &rss)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(err).unwrap())
            .spawn()
            .unwrap();
        let time = child.id() as i32;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut fds = None;
        // berth: GNU time's child.
        let children = format!("/proc/{time}/task/{time}/children");
        let pid: i32 = fs::read_to_string(children)
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if line == "ready\n" && pid > 0 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                // The syscall it is blocked in: poll (7) or ppoll (271) on x86_64.
                let sc = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
                if matches!(sc.split(' ').next(), Some("7") | Some("271")) {
                    fds = Some(fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count());
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        drop(child.stdin.take());
        let status = wait_reaping(time, &[]);
        if !status.success() || fds.is_none() {
            return Err(format!(
                "exec: {status:?}, read {line:?}, fds {fds:?}: {}",
                fs::read_to_string(err).unwrap_or_default().trim()
            ));
        }
        let maxrss_kib = Self::peak_rss(&rss);
        self.note_peak("exec", maxrss_kib);
        let ran = Ran {
            maxrss_kib,
            stdout: Vec::new(),
        };
        Ok((ran, fds.unwrap()))
    }

    /// One container's life, in one of four ways by `i % 4`, with the leak checks after.
    fn lifecycle(&self, b: &Bundle, i: usize, id: &str) -> Result<Rec, String> {
        let started = Instant::now();
        let err = b.path().join("soak.err");
        let pid_file = b.path().join("init.pid");
        let exec_pid_file = b.path().join("exec.pid");
        let mut rec = Rec::default();
        let rss = Cell::new(0);
        let note = |r: Ran| rss.set(rss.get().max(r.maxrss_kib));
        let bundle = b.path().to_str().unwrap();
        let run = |args: &[&str], reap: &[i32]| self.run(args, &err, false, reap);
        note(run(
            &[
                "create",
                "--bundle",
                bundle,
                "--pid-file",
                pid_file.to_str().unwrap(),
                id,
            ],
            &[],
        )?);
        let init: i32 = fs::read_to_string(&pid_file)
            .map_err(|e| format!("pid file: {e}"))?
            .trim()
            .parse()
            .unwrap();
        let mut execd = 0;
        match i % 4 {
            0 => {
                note(run(&["start", id], &[])?);
                let (ran, fds) = self.exec_counting_fds(id, &err)?;
                note(ran);
                rec.exec_fds = Some(fds);
                note(run(&["kill", id, "TERM"], &[])?);
                if !reap_within(init, 10) {
                    return Err(format!("init {init} did not exit on TERM"));
                }
                note(run(&["delete", id], &[])?);
            }
            1 => {
                note(run(&["start", id], &[])?);
                note(run(&["pause", id], &[])?);
                let st = self.status(id, &err, &rss)?;
                if st != "paused" {
                    return Err(format!("after pause: {st}"));
                }
                note(run(&["resume", id], &[])?);
                let st = self.status(id, &err, &rss)?;
                if st != "running" {
                    return Err(format!("after resume: {st}"));
                }
                note(run(&["exec", id, "true"], &[])?);
                note(run(&["kill", "--all", id, "KILL"], &[])?);
                if !reap_within(init, 10) {
                    return Err(format!("init {init} survived kill --all"));
                }
                note(run(&["delete", id], &[])?);
            }
            2 => {
                note(run(&["start", id], &[])?);
                let limit = (50 + i % 50).to_string();
                note(run(&["update", "--pids-limit", &limit, id], &[])?);
                let dirs = harness::cgroup_dirs_named(id);
                let max = dirs
                    .iter()
                    .find_map(|d| fs::read_to_string(d.join("pids.max")).ok())
                    .unwrap_or_default();
                if max.trim() != limit {
                    return Err(format!("update --pids-limit {limit}: pids.max is {max:?}"));
                }
                note(run(&["update", "--memory", "96m", id], &[])?);
                let mem = dirs
                    .iter()
                    .find_map(|d| {
                        fs::read_to_string(d.join("memory.limit_in_bytes"))
                            .or_else(|_| fs::read_to_string(d.join("memory.max")))
                            .ok()
                    })
                    .unwrap_or_default();
                if mem.trim() != (96 << 20).to_string() {
                    return Err(format!("update --memory 96m: the limit is {mem:?}"));
                }
                let pf = exec_pid_file.to_str().unwrap();
                note(run(
                    &["exec", "-d", "--pid-file", pf, id, "sleep", "1000"],
                    &[],
                )?);
                execd = fs::read_to_string(&exec_pid_file)
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                note(run(&["delete", "--force", id], &[execd])?);
                harness::reap(execd);
            }
            _ => {
                // Never started: exec into the created container, then force-delete it.
                note(run(&["exec", id, "true"], &[])?);
                note(run(&["delete", "--force", id], &[])?);
            }
        }
        if !reap_within(init, 10) {
            return Err(format!("init {init} alive after delete"));
        }
        // Nothing left: state dir, cgroups, mounts, processes.
        if self.root.join(id).exists() {
            return Err("state dir left".into());
        }
        let cg = harness::cgroup_dirs_named(id);
        if !cg.is_empty() {
            return Err(format!("cgroups left: {cg:?}"));
        }
        let m = harness::mounts_of(id, &[fs::canonicalize(b.path()).unwrap()]);
        if !m.is_empty() {
            return Err(format!("mounts left: {m:?}"));
        }
        for p in [init, execd] {
            if p > 0 && alive(p) {
                return Err(format!("process {p} left"));
            }
        }
        rec.took = started.elapsed();
        rec.maxrss_kib = rss.get();
        Ok(rec)
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: not a number"))
    })
}

/// Figures of one window of lifecycles (the first or the last thousand).
struct Window {
    median_ms: f64,
    p90_ms: f64,
    rss_max: i64,
    rss_median: i64,
    fds: (usize, usize),
}

fn window(recs: &[Rec]) -> Window {
    let mut ms: Vec<f64> = recs.iter().map(|r| r.took.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mut rss: Vec<i64> = recs.iter().map(|r| r.maxrss_kib).collect();
    rss.sort();
    let fds: Vec<usize> = recs.iter().filter_map(|r| r.exec_fds).collect();
    Window {
        median_ms: ms[ms.len() / 2],
        p90_ms: ms[ms.len() * 9 / 10],
        rss_max: *rss.last().unwrap(),
        rss_median: rss[rss.len() / 2],
        fds: (
            fds.iter().copied().min().unwrap_or(0),
            fds.iter().copied().max().unwrap_or(0),
        ),
    }
}

/// `make soak`: SOAK_N (10,000) container lifecycles, SOAK_PARALLEL (8) at a time, mixing
/// start, exec (foreground, detached, into a created container), pause/resume, update, kill
/// (one process and --all) and delete (plain and forced). Zero failures, nothing left
/// (state dirs, cgroups, mounts, processes), and no growth from the first thousand to the
/// last in berth's peak RSS, its open fds or the time a lifecycle takes.
#[test]
#[ignore = "long: run by `make soak` (SOAK_N=... for fewer lifecycles)"]
fn soak() {
    harness::require_root();
    let n = env_number("SOAK_N", 10_000);
    let parallel = env_number("SOAK_PARALLEL", 8).max(1);
    assert!(
        Path::new("/usr/bin/time").exists(),
        "the soak measures berth's peak RSS with GNU time (apt-get install time)"
    );
    let bin = std::env::var("SOAK_BERTH").map_or(PathBuf::from(harness::BERTH), PathBuf::from);
    let root = tempfile::Builder::new()
        .prefix("berth-soak-")
        .tempdir()
        .unwrap();
    let soak = Soak {
        bin: fs::canonicalize(&bin).unwrap_or(bin),
        root: root.path().to_path_buf(),
        peak_by_command: Default::default(),
    };
    let prefix = format!("berth-test-soak-{}-", std::process::id());
    eprintln!(
        "soak: {n} lifecycles, {parallel} in parallel, berth {}",
        soak.bin.display()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let recs = std::sync::Mutex::new(vec![Rec::default(); n]);
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let bundles: Vec<Bundle> = (0..parallel)
        .map(|_| {
            let mut b = Bundle::new(&["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]);
            b.edit(|c| {
                c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 100});
                c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 64 << 20});
            });
            b
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for b in &bundles {
            let (soak, next, stop, recs, failures, prefix) =
                (&soak, &next, &stop, &recs, &failures, &prefix);
            s.spawn(move || loop {
                use std::sync::atomic::Ordering::SeqCst;
                let i = next.fetch_add(1, SeqCst);
                if i >= n || stop.load(SeqCst) {
                    return;
                }
                let id = format!("{prefix}{i}");
                match soak.lifecycle(b, i, &id) {
                    Ok(r) => recs.lock().unwrap()[i] = r,
                    Err(e) => {
                        stop.store(true, SeqCst);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("lifecycle {i} ({id}): {e}"));
                        let rss = b.path().join("cleanup.rss");
                        let _ = soak.cmd(&["delete", "--force", &id], &rss).output();
                    }
                }
                if i % 1000 == 999 {
                    eprintln!(
                        "soak: {} done, {:.0} s",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let elapsed = started.elapsed();
    reap_failed_inits();
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "soak failures: {failures:#?}");

    // Nothing of any lifecycle left anywhere.
    let left: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "state dirs left: {left:?}");
    let cg =
        harness::find_cgroups(&harness::cgroup_roots(), &|name| name.starts_with(&prefix)).unwrap();
    assert!(cg.is_empty(), "cgroups left: {cg:?}");
    let bundle_paths: Vec<PathBuf> = bundles
        .iter()
        .map(|b| fs::canonicalize(b.path()).unwrap())
        .collect();
    let mounts: Vec<PathBuf> = harness::my_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| {
            bundle_paths.iter().any(|b| p.starts_with(b))
                || p.starts_with(root.path())
                || p.to_string_lossy().contains(&prefix)
        })
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let procs = harness::live_processes(|p, cmdline| {
        String::from_utf8_lossy(cmdline).contains(&prefix)
            || p.cgroups()
                .is_ok_and(|c| c.into_iter().any(|g| g.pathname.contains(&prefix)))
    });
    assert!(procs.is_empty(), "processes left: {procs:?}");
    // Zombies berth left for its caller (the test process, as subreaper) to reap.
    let me = std::process::id() as i32;
    let zombies: Vec<String> = procfs::process::all_processes()
        .unwrap()
        .flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|st| st.state == 'Z' && st.ppid == me)
        .map(|st| format!("{} ({})", st.pid, st.comm))
        .collect();
    assert!(zombies.is_empty(), "unreaped children left: {zombies:?}");

    let recs = recs.into_inner().unwrap();
    let w = (n / 2).clamp(1, 1000);
    let (first, last) = (window(&recs[..w]), window(&recs[n - w..]));
    eprintln!(
        "soak: {n} lifecycles ({parallel} in parallel) in {:.1} s ({:.0}/s), 0 failures, nothing left",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    eprintln!("soak:                                 first {w:>5}   last {w:>5}");
    eprintln!(
        "soak: lifecycle time, median (ms)    {:>10.1}   {:>10.1}",
        first.median_ms, last.median_ms
    );
    eprintln!(
        "soak: lifecycle time, p90 (ms)       {:>10.1}   {:>10.1}",
        first.p90_ms, last.p90_ms
    );
    eprintln!(
        "soak: berth peak RSS, max (KiB)      {:>10}   {:>10}",
        first.rss_max, last.rss_max
    );
    eprintln!(
        "soak: berth peak RSS, median (KiB)   {:>10}   {:>10}",
        first.rss_median, last.rss_median
    );
    eprintln!(
        "soak: berth exec's open fds          {:>10}   {:>10}",
        format!("{}-{}", first.fds.0, first.fds.1),
        format!("{}-{}", last.fds.0, last.fds.1)
    );
    eprintln!(
        "soak: highest peak RSS by command (KiB): {:?}",
        soak.peak_by_command.lock().unwrap()
    );
    // Every thousand's medians, to tell a trend from a step.
    let per: Vec<Window> = recs.chunks(w).map(window).collect();
    let line = |f: &dyn Fn(&Window) -> String| per.iter().map(f).collect::<Vec<_>>().join(" ");
    eprintln!(
        "soak: median lifecycle ms by {w}: {}",
        line(&|x| format!("{:.0}", x.median_ms))
    );
    eprintln!(
        "soak: median peak RSS KiB by {w}: {}",
        line(&|x| x.rss_median.to_string())
    );
    // Growth beyond noise: a shared machine's speed drifts, so time gets a wide margin; a
    // leak that grows with the number of containers made would pass it within thousands.
    assert!(
        last.rss_max <= first.rss_max + first.rss_max / 10,
        "berth's peak RSS grew: {} KiB -> {} KiB",
        first.rss_max,
        last.rss_max
    );
    assert!(
        last.fds.1 <= first.fds.1,
        "berth exec's open fds grew: {:?} -> {:?}",
        first.fds,
        last.fds
    );
    assert!(
        last.median_ms <= first.median_ms * 2.0,
        "lifecycles got slower: median {:.1} ms -> {:.1} ms",
        first.median_ms,
        last.median_ms
    );
}

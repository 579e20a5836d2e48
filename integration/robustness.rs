//! Robustness: `create` killed at random points can always be cleaned up by
//! `delete --force`; many containers at once; `kill --all`; racing deletes.

use std::collections::HashSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::{self, alive, stderr, Bundle, Runtime};
use crate::harness::{assert_no_mount_under, assert_no_process_of, reap_failed_inits};

/// A cheap pseudo-random delay of 0..40 ms (no rand crate): time nanoseconds mixed with the
/// iteration number.
fn jitter(i: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let x = (nanos ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    Duration::from_micros((x >> 32) % 40_000)
}

/// Polls `cond` every 5 ms for up to `secs` seconds; panics with `what` if it never holds.
fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps what a killed `create` left to us (the test process is a subreaper): its setup
/// process, still in create's process group. Fails if one of them does not exit by itself.
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
            "{what}: a process of the killed create's group never exited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn create_killed_at_random_points_is_cleaned_by_delete_force() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let pid_file = b.path().join("init.pid");
    let (mut completed, mut interrupted) = (0, 0);
    for i in 0..25u64 {
        let id = harness::unique_id("killcreate");
        let _ = fs::remove_file(&pid_file);
        // Never pipes: a surviving init would hold them open.
        let mut create = rt
            .cmd()
            .args(["create", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let group = create.id() as i32;
        std::thread::sleep(jitter(i));
        let finished = create.try_wait().unwrap();
        // SIGKILL; harmless if create already exited (it is not reaped yet, so the pid is ours).
        let _ = create.kill();
        let status = create.wait().unwrap();
        let what = format!("iteration {i} ({id})");

        if finished.is_some() {
            // create had finished before the kill: it must have succeeded, and the container
            // is created, with its init alive and named in the pid file.
            assert!(status.success(), "{what}: create failed: {status:?}");
            completed += 1;
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
        } else {
            interrupted += 1;
        }
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .map(|p| p.trim().parse::<i32>().unwrap());

        let out = rt.berth(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "{what}: delete --force: {}",
            stderr(&out)
        );
        if let Some(pid) = pid {
            harness::reap(pid);
            assert!(!alive(pid), "{what}: init {pid} survived delete --force");
        }
        rt.assert_nothing_left(&id);
        assert_no_mount_under(b.path());
        assert_no_process_of(&id);
        reap_group(group, &what);
        reap_failed_inits();
        let out = rt.berth(&["state", &id]);
        assert!(
            stderr(&out).contains("does not exist"),
            "{what}: state after delete --force: {}",
            stderr(&out)
        );
    }
    eprintln!(
        "create finished before the kill {completed} times, was interrupted {interrupted} times"
    );
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
                .unwrap_or(true) // not a cgroup directory we can read: nothing to check
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
        .filter(|f| f.exists())
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
fn kill_all_empties_the_cgroup(name: &str, edit: impl FnOnce(&mut Value)) {
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

    let out = rt.berth(&["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "kill --all: {}", stderr(&out));
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
    kill_all_empties_the_cgroup("killall", |_| {});
}

#[test]
fn kill_all_empties_the_cgroup_without_a_pid_namespace() {
    // Without a PID namespace killing init alone would leave the children running: only
    // --all reaches them.
    kill_all_empties_the_cgroup("killallnopidns", |c| {
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

    let out = rt.berth(&["kill", "--all", &id, "KILL"]);
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

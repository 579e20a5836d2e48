//! Robustness: `create` killed at random points can always be cleaned up by
//! `delete --force`; many containers at once; `kill --all`.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::{self, alive, stderr, Bundle, Runtime};

/// A cheap pseudo-random number (no rand crate): time nanoseconds mixed with a counter.
fn jitter(i: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 40_000
}

#[test]
fn create_killed_at_random_points_is_cleaned_by_delete_force() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let pid_file = b.path().join("init.pid");
    for i in 0..25u64 {
        let id = harness::unique_id("killcreate");
        let _ = fs::remove_file(&pid_file);
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
        std::thread::sleep(Duration::from_micros(jitter(i)));
        let _ = create.kill();
        let _ = create.wait();

        let out = rt.berth(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "iteration {i}: delete --force: {}",
            stderr(&out)
        );
        if let Ok(pid) = fs::read_to_string(&pid_file).map(|p| p.trim().parse::<i32>().unwrap()) {
            harness::reap(pid);
            assert!(
                !alive(pid),
                "iteration {i}: init {pid} survived delete --force"
            );
        }
        rt.assert_nothing_left(&id);
        reap_orphans_of(group);
    }
}

/// Reaps what a killed `create` left to us (the test process is a subreaper): its setup
/// process, still in create's process group, and a failed init, which leads its own session.
fn reap_orphans_of(group: i32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a process group we created; status is a valid out pointer.
        if unsafe { libc::waitpid(-group, &mut status, 0) } <= 0 {
            break;
        }
    }
    let me = std::process::id().to_string();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (pid, rest) = (
            stat.split(' ').next().unwrap_or(""),
            stat.rsplit(") ").next().unwrap_or(""),
        );
        let fields: Vec<&str> = rest.split(' ').collect();
        let (state, ppid, sid) = (fields[0], fields[1], fields[3]);
        if state == "Z" && ppid == me && sid == pid && stat.contains("(berth)") {
            harness::reap(pid.parse().unwrap());
        }
    }
}

#[test]
fn twenty_containers_concurrently() {
    let rt = Runtime::new();
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let b = Bundle::new(&["sleep", "100"]);
            let id = harness::unique_id("many");
            (b, id)
        })
        .collect();
    let pids: Vec<i32> = std::thread::scope(|s| {
        let threads: Vec<_> = handles
            .iter()
            .map(|(b, id)| {
                let rt = &rt;
                s.spawn(move || {
                    let out = rt.create(b, id, &[]);
                    assert!(out.status.success(), "create {id}: {}", stderr(&out));
                    assert_eq!(rt.status(id), "created");
                    let out = rt.berth(&["start", id]);
                    assert!(out.status.success(), "start {id}: {}", stderr(&out));
                    assert_eq!(rt.status(id), "running");
                    let pid = rt.state(id)["pid"].as_i64().unwrap() as i32;
                    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
                    assert_eq!(comm.trim(), "sleep");
                    rt.delete_force(id);
                    assert!(!alive(pid));
                    pid
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut unique = pids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "init pids not distinct: {pids:?}");
    assert_eq!(fs::read_dir(rt.root.path()).unwrap().count(), 0);
}

#[test]
fn kill_all_empties_the_cgroup() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let id = harness::unique_id("killall");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let procs = harness::cgroup_dirs_named(&id)
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .expect("pids cgroup of the container")
        .join("cgroup.procs");
    // Wait until the shell has started both children (3 processes in the cgroup).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(&procs).unwrap().lines().count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "children never appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = rt.berth(&["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    harness::reap(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !fs::read_to_string(&procs).unwrap().trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "processes left after kill --all"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());
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
    }
}

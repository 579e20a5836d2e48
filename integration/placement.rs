//! Where the container's processes run, checked from the host's /proc: the CPU affinity of
//! init and of exec'd processes (reset from berth's own, `process.execCPUAffinity`), and the
//! NUMA memory policy (`linux.memoryPolicy`). Needs root (namespaces, cgroups) and at least
//! two CPUs for the affinity tests.

use std::fs::{self, File};
use std::path::Path;
use std::process::Stdio;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde_json::json;

use crate::exec::{finish, ReapOnPanic};
use crate::harness::{self, stderr, Bundle, Runtime};

/// Cpus_allowed_list of /proc/PID/status, read from the host, in the kernel's words ("0-1").
fn cpus_allowed_list(pid: i32) -> String {
    harness::status_of(pid)
        .cpus_allowed_list
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in /proc/{pid}/status"))
        .iter()
        .map(|&(first, last)| match first == last {
            true => first.to_string(),
            false => format!("{first}-{last}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The CPUs this machine has online ("0-1"), as Cpus_allowed_list shows an unrestricted
/// process's.
fn online_cpus() -> String {
    fs::read_to_string("/sys/devices/system/cpu/online")
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `f` with this test's thread (and so every process it spawns: berth) pinned to CPU 0,
/// as `taskset -c 0 berth ...` would; the thread's own affinity is put back after.
fn on_cpu0<T>(f: impl FnOnce() -> T) -> T {
    let me = Pid::from_raw(0);
    let before = sched_getaffinity(me).unwrap();
    let mut cpu0 = CpuSet::new();
    cpu0.set(0).unwrap();
    sched_setaffinity(me, &cpu0).unwrap();
    let out = f();
    sched_setaffinity(me, &before).unwrap();
    out
}

fn needs_two_cpus() -> bool {
    if online_cpus() == "0" {
        harness::skip_or_fail("CPU affinity: this machine has one CPU");
        return false;
    }
    true
}

/// Creates and starts `b` as `id` from a berth pinned to CPU 0; returns init's pid.
fn started_on_cpu0(rt: &Runtime, b: &Bundle, id: &str) -> i32 {
    on_cpu0(|| {
        let out = rt.create(b, id, &[]);
        assert!(out.status.success(), "create: {}", stderr(&out));
        let out = rt.berth(&["start", id]);
        assert!(out.status.success(), "start: {}", stderr(&out));
    });
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// `exec -d --pid-file` of `cmd` from a berth pinned to CPU 0, with `extra` flags; the pid.
fn exec_on_cpu0(rt: &Runtime, b: &Bundle, id: &str, extra: &[&str], cmd: &[&str]) -> i32 {
    let pid_file = b.path().join(harness::unique_id("exec-pid"));
    let err = b.path().join("exec.err");
    let st = on_cpu0(|| {
        rt.cmd()
            .args(["exec", "-d", "--pid-file"])
            .arg(&pid_file)
            .args(extra)
            .arg(id)
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err).unwrap())
            .status()
            .unwrap()
    });
    assert!(st.success(), "exec: {}", fs::read_to_string(&err).unwrap());
    fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn init_gets_every_cpu_not_the_affinity_berth_was_started_with() {
    if !needs_two_cpus() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("affinit");
    let pid = started_on_cpu0(&rt, &b, &id);
    assert_eq!(cpus_allowed_list(pid), online_cpus());
    rt.delete_force(&id);
}

#[test]
fn init_gets_the_cpus_of_its_cpuset_even_without_overlap_with_berths() {
    if !needs_two_cpus() {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["linux"]["resources"]["cpu"] = json!({"cpus": "1", "mems": "0"}));
    let id = harness::unique_id("affcpuset");
    let pid = started_on_cpu0(&rt, &b, &id);
    assert_eq!(cpus_allowed_list(pid), "1");
    rt.delete_force(&id);
}

#[test]
fn exec_resets_the_affinity_or_applies_exec_cpu_affinity() {
    if !needs_two_cpus() {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    // config.json's execCPUAffinity applies to every exec without --process.
    b.edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"}));
    let id = harness::unique_id("affexec");
    let init = started_on_cpu0(&rt, &b, &id);
    // (Detached exec'd processes are this test's to reap, as they would be a shim's.)
    let mut execd = ReapOnPanic(Vec::new());
    let pid = exec_on_cpu0(&rt, &b, &id, &[], &["sleep", "100"]);
    execd.0.push(pid);
    assert_eq!(cpus_allowed_list(pid), "1", "final from config.json");

    let process = |aff: serde_json::Value| {
        let path = b.path().join(harness::unique_id("process.json"));
        let mut p = json!({"args": ["sleep", "100"], "cwd": "/", "terminal": false});
        if !aff.is_null() {
            p["execCPUAffinity"] = aff;
        }
        fs::write(&path, p.to_string()).unwrap();
        path.to_string_lossy().into_owned()
    };
    // A process.json without it: every CPU, not berth's CPU 0 (runc's reset).
    let p = process(serde_json::Value::Null);
    let pid = exec_on_cpu0(&rt, &b, &id, &["--process", &p], &[]);
    execd.0.push(pid);
    assert_eq!(cpus_allowed_list(pid), online_cpus());
    // `initial` alone: berth leaves the affinity to the kernel once the process is in the
    // cgroup (runtime-spec), and does not reset it. Joining a v2 cpuset gives a task the
    // cpuset's CPUs; on this kernel's v1 hierarchy the task keeps its own.
    let kernel_gives = match Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        true => online_cpus(),
        false => "1".to_string(),
    };
    let p = process(json!({"initial": "1"}));
    let pid = exec_on_cpu0(&rt, &b, &id, &["--process", &p], &[]);
    execd.0.push(pid);
    assert_eq!(cpus_allowed_list(pid), kernel_gives, "initial alone");
    // An empty `final` is as if omitted (runtime-spec).
    let p = process(json!({"initial": "1", "final": ""}));
    let pid = exec_on_cpu0(&rt, &b, &id, &["--process", &p], &[]);
    execd.0.push(pid);
    assert_eq!(cpus_allowed_list(pid), kernel_gives);
    finish(&rt, &id, &execd.0, init);
}

/// The policy of the first mapping of /proc/PID/numa_maps ("bind=static:0", "default").
fn numa_policy(pid: i32) -> String {
    let maps = fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
    let first = maps.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn memory_policy_is_set_for_init_and_exec() {
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        harness::skip_or_fail("linux.memoryPolicy: this kernel has no NUMA support");
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})
    });
    let id = harness::unique_id("mpol");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    assert!(rt.berth(&["start", &id]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(numa_policy(init), "bind=static:0");
    let pid = exec_on_cpu0(&rt, &b, &id, &[], &["sleep", "100"]);
    let _reap = ReapOnPanic(vec![pid]);
    assert_eq!(numa_policy(pid), "bind=static:0", "exec'd process");
    // The host's own processes keep theirs.
    assert_eq!(numa_policy(std::process::id() as i32), "default");
    finish(&rt, &id, &[pid], init);

    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}));
    let id = harness::unique_id("mpol");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(numa_policy(init), "interleave:0");
    rt.delete_force(&id);
}

//! Cgroups seen from the host: every limit read back from the container's cgroup files,
//! limits enforced (OOM kill, pids.max, device rules), pause/resume, update, ps, events and
//! cleanup. The same tests run on this project's v1 hybrid hosts and, in the VM of
//! hack/vm.sh --guest v2, on a pure cgroup v2 host: expectations differ only in file names and the
//! values runc translates for v2.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use procfs::FromBufRead;
use serde_json::{json, Value};

use crate::harness::{self, stderr, stdout, Bundle, Runtime};

pub fn v2_host() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup file `name`, wherever the host keeps it (v1: the hierarchy of its
/// controller; v2: the one directory).
fn cgroup_file(id: &str, name: &str) -> PathBuf {
    harness::cgroup_dirs_named(id)
        .into_iter()
        .map(|d| d.join(name))
        .find(|f| f.exists())
        .unwrap_or_else(|| panic!("no cgroup file {name} for {id}"))
}

fn read_cgroup(id: &str, name: &str) -> String {
    std::fs::read_to_string(cgroup_file(id, name))
        .unwrap()
        .trim()
        .to_string()
}

/// Creates and starts `b` as `id`; returns init's host pid.
fn start(rt: &Runtime, b: &Bundle, id: &str) -> i32 {
    let out = rt.create(b, id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = rt.berth(&["start", id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

fn with_resources(args: &[&str], resources: Value) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|c| c["linux"]["resources"] = resources);
    b
}

#[test]
fn each_resource_is_written_to_its_cgroup_file() {
    let rt = Runtime::new();
    let b = with_resources(
        &["sleep", "100"],
        json!({
            "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
            "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 42},
            "devices": [{"allow": false, "access": "rwm"}]
        }),
    );
    let id = harness::unique_id("resources");
    start(&rt, &b, &id);
    let r = |f: &str| read_cgroup(&id, f);
    if v2_host() {
        assert_eq!(r("memory.max"), (64 << 20).to_string());
        assert_eq!(r("memory.swap.max"), (64 << 20).to_string()); // total minus memory
        assert_eq!(r("memory.low"), (32 << 20).to_string());
        assert_eq!(r("cpu.weight"), "39"); // runc's conversion of 1024 shares
        assert_eq!(r("cpu.max"), "20000 100000");
    } else {
        assert_eq!(r("memory.limit_in_bytes"), (64 << 20).to_string());
        assert_eq!(r("memory.memsw.limit_in_bytes"), (128 << 20).to_string());
        assert_eq!(r("memory.soft_limit_in_bytes"), (32 << 20).to_string());
        assert_eq!(r("cpu.shares"), "1024");
        assert_eq!(r("cpu.cfs_quota_us"), "20000");
        assert_eq!(r("cpu.cfs_period_us"), "100000");
        // Deny-all first, then runc's default allowlist.
        let list = r("devices.list");
        assert!(
            list.contains("c 1:3 rwm") && list.contains("c 136:* rwm"),
            "{list}"
        );
        assert!(!list.contains("a *:* rwm"), "{list}");
    }
    assert_eq!(r("cpuset.cpus"), "0");
    assert_eq!(r("pids.max"), "42");
    rt.delete_force(&id);
}

#[test]
fn a_memory_hog_is_oom_killed() {
    let rt = Runtime::new();
    // No swap to escape into: memory+swap equals memory.
    let b = with_resources(
        &["sh", "-c", "tail /dev/zero"],
        json!({"memory": {"limit": 32 << 20, "swap": 32 << 20}}),
    );
    let out = rt.run(&b, &harness::unique_id("oom"));
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
}

#[test]
fn pids_limit_zero_is_one_and_below_zero_is_none_as_runc() {
    // systemd refuses TasksMax=0, so runc makes 0 mean 1 with both drivers.
    let rt = Runtime::new();
    for (limit, want) in [(0, "1"), (-1, "max"), (5, "5")] {
        let b = with_resources(&["sleep", "100"], json!({"pids": {"limit": limit}}));
        let id = harness::unique_id("pidszero");
        start(&rt, &b, &id);
        assert_eq!(read_cgroup(&id, "pids.max"), want, "pids.limit {limit}");
        let out = rt.berth(&["update", "--pids-limit", "0", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(read_cgroup(&id, "pids.max"), "1", "update --pids-limit 0");
        rt.delete_force(&id);
    }
}

#[test]
fn update_cpu_idle_and_real_time_period_and_runtime_in_either_order() {
    let rt = Runtime::new();
    let b = with_resources(&["sleep", "100"], json!({}));
    let id = harness::unique_id("updrt");
    start(&rt, &b, &id);
    let update = |args: &[&str]| {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        all.push(&id);
        rt.berth(&all)
    };
    let has_idle = harness::cgroup_dirs_named(&id)
        .iter()
        .any(|d| d.join("cpu.idle").exists());
    if has_idle {
        for val in ["1", "0", "1"] {
            let out = update(&["--cpu-idle", val]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(read_cgroup(&id, "cpu.idle"), val);
        }
        // The kernel takes only 0 and 1.
        assert!(!update(&["--cpu-idle", "2"]).status.success());
        assert_eq!(read_cgroup(&id, "cpu.idle"), "1");
        // Another flag leaves it alone.
        assert!(update(&["--cpu-period", "10000"]).status.success());
        assert_eq!(read_cgroup(&id, "cpu.idle"), "1");
    }
    if !v2_host() {
        // A new period below the current runtime is refused by the kernel until the runtime
        // is lowered: berth writes them in whichever order works (runc issue 4094).
        for (period, runtime) in [("900001", "600001"), ("10000", "3000"), ("100000", "20000")] {
            let out = update(&["--cpu-rt-period", period, "--cpu-rt-runtime", runtime]);
            assert!(out.status.success(), "{period}/{runtime}: {}", stderr(&out));
            assert_eq!(read_cgroup(&id, "cpu.rt_period_us"), period);
            assert_eq!(read_cgroup(&id, "cpu.rt_runtime_us"), runtime);
        }
    }
    rt.delete_force(&id);
}

#[test]
fn a_fork_bomb_stops_at_pids_limit() {
    let rt = Runtime::new();
    // The inner shell forks until a fork fails (which ends it); the outer one keeps the
    // container alive waiting for its own sleep.
    let b = with_resources(
        &[
            "sh",
            "-c",
            "sleep 100 & sh -c 'while :; do sleep 100 & done'; wait",
        ],
        json!({"pids": {"limit": 10}}),
    );
    let id = harness::unique_id("pids");
    start(&rt, &b, &id);
    let refused = || {
        read_cgroup(&id, "pids.events")
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused() == 0 {
        assert!(Instant::now() < deadline, "no fork was ever refused");
        std::thread::sleep(Duration::from_millis(20));
    }
    let current: u64 = read_cgroup(&id, "pids.current").parse().unwrap();
    assert!((8..=10).contains(&current), "pids.current {current}");
    // The shell writes its complaint after the kernel has counted the refusal.
    let err = loop {
        let err = std::fs::read_to_string(b.path().join("stderr")).unwrap();
        if err.contains("can't fork") || Instant::now() > deadline {
            break err;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        err.contains("can't fork"),
        "the shell reports the failed fork: {err}"
    );
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id);
}

/// utime+stime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = harness::stat_of(pid);
    stat.utime + stat.stime
}

fn frozen_on_host(id: &str) -> bool {
    if v2_host() {
        read_cgroup(id, "cgroup.events").contains("frozen 1")
    } else {
        read_cgroup(id, "freezer.state") == "FROZEN"
    }
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "while :; do :; done"]);
    let id = harness::unique_id("pause");
    let pid = start(&rt, &b, &id);
    let out = rt.berth(&["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    assert!(frozen_on_host(&id));
    assert_eq!(rt.status(&id), "paused");
    let list = stdout(&rt.berth(&["list", "-q"]));
    assert!(list.contains(&id));
    let listed: Value =
        serde_json::from_str(&stdout(&rt.berth(&["list", "--format", "json"]))).unwrap();
    assert_eq!(listed[0]["status"], "paused");
    // A busy loop that gets no CPU time is frozen.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), before, "a paused process kept running");
    // Pausing twice, or resuming a running container, is refused.
    harness::assert_fails_with(&rt.berth(&["pause", &id]), "not running");
    let out = rt.berth(&["resume", &id]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    assert!(!frozen_on_host(&id));
    assert_eq!(rt.status(&id), "running");
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(pid) > before, "a resumed process did not run");
    harness::assert_fails_with(&rt.berth(&["resume", &id]), "not paused");
    rt.delete_force(&id);
}

#[test]
fn a_paused_container_can_be_killed_and_force_deleted() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("pausekill");
    let pid = start(&rt, &b, &id);
    assert!(rt.berth(&["pause", &id]).status.success());
    let out = rt.berth(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    harness::reap(pid);
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());

    let id = harness::unique_id("pausedelete");
    let pid = start(&rt, &b, &id);
    assert!(rt.berth(&["pause", &id]).status.success());
    let out = rt.berth(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    harness::reap(pid);
    assert!(!harness::alive(pid));
    harness::assert_no_process_of(&id);
    rt.assert_nothing_left(&id);
}

#[test]
fn update_changes_live_limits_and_keeps_the_rest() {
    let rt = Runtime::new();
    let b = with_resources(
        &["sleep", "100"],
        json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}, "cpu": {"shares": 512}}),
    );
    let id = harness::unique_id("update");
    start(&rt, &b, &id);
    let (mem, shares) = if v2_host() {
        ("memory.max", "cpu.weight")
    } else {
        ("memory.limit_in_bytes", "cpu.shares")
    };
    let out = rt.berth(&["update", "--memory", "48m", "--pids-limit", "7", &id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(read_cgroup(&id, mem), (48 << 20).to_string());
    assert_eq!(read_cgroup(&id, "pids.max"), "7");
    let shares_before = read_cgroup(&id, shares);

    // containerd sends LinuxResources JSON on stdin.
    let mut child = rt
        .cmd()
        .args(["update", "-r", "-", &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids":{"limit":9}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "update -r -: {}", stderr(&out));
    assert_eq!(read_cgroup(&id, "pids.max"), "9");
    // What was not given keeps its value, in the cgroup and in what the next update merges.
    assert_eq!(read_cgroup(&id, mem), (48 << 20).to_string());
    assert_eq!(read_cgroup(&id, shares), shares_before);

    // A bad field is named; a limit below current usage with checkBeforeUpdate is refused.
    let bad = b.path().join("bad.json");
    std::fs::write(&bad, r#"{"memory":{"limit":"lots"}}"#).unwrap();
    harness::fails_with_one_line(
        &rt.berth(&["update", "-r", bad.to_str().unwrap(), &id]),
        "memory.limit",
    );
    std::fs::write(
        &bad,
        r#"{"memory":{"limit":4096,"checkBeforeUpdate":true}}"#,
    )
    .unwrap();
    harness::fails_with_one_line(
        &rt.berth(&["update", "-r", bad.to_str().unwrap(), &id]),
        "below the current usage",
    );
    assert_eq!(read_cgroup(&id, mem), (48 << 20).to_string());
    rt.delete_force(&id);
}

/// As runc: `update` writes only what it is given (a pids.max changed behind berth's back
/// stays), and `--memory -1` without `--memory-swap` lifts the memory+swap limit too.
#[test]
fn update_writes_only_what_is_given_and_memory_minus_one_lifts_swap() {
    let rt = Runtime::new();
    let b = with_resources(
        &["sleep", "100"],
        json!({"memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 50}}),
    );
    let id = harness::unique_id("updonly");
    start(&rt, &b, &id);
    std::fs::write(cgroup_file(&id, "pids.max"), "33").unwrap();
    let out = rt.berth(&["update", "--cpu-share", "256", &id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(read_cgroup(&id, "pids.max"), "33");

    let out = rt.berth(&["update", "--memory", "-1", &id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    let (mem, swap, unlimited) = if v2_host() {
        ("memory.max", "memory.swap.max", "max".to_string())
    } else {
        (
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            // v1 shows "no limit" as the largest page-aligned value.
            (i64::MAX & !4095).to_string(),
        )
    };
    assert_eq!(read_cgroup(&id, mem), unlimited);
    if harness::cgroup_dirs_named(&id)
        .iter()
        .any(|d| d.join(swap).exists())
    {
        assert_eq!(read_cgroup(&id, swap), unlimited);
    }
    rt.delete_force(&id);
}

#[test]
fn ps_lists_exactly_the_containers_processes() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let id = harness::unique_id("ps");
    let pid = start(&rt, &b, &id);
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = loop {
        let mut procs: Vec<i64> = read_cgroup(&id, "cgroup.procs")
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        procs.sort_unstable();
        if procs.len() == 3 || Instant::now() > deadline {
            break procs;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(want.len(), 3, "sh and two sleeps: {want:?}");
    assert!(want.contains(&(pid as i64)));
    let out = rt.berth(&["ps", "--format", "json", &id]);
    assert!(out.status.success(), "ps: {}", stderr(&out));
    let mut got: Vec<i64> = serde_json::from_str(&stdout(&out)).unwrap();
    got.sort_unstable();
    assert_eq!(got, want);
    let table = stdout(&rt.berth(&["ps", &id]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("PID"), "{table}");
    assert_eq!(lines.len(), 4, "header and three rows: {table}");
    let sleeps = table.lines().filter(|l| l.ends_with("sleep 100")).count();
    assert_eq!(sleeps, 2, "{table}");
    rt.delete_force(&id);
}

#[test]
fn device_rules_are_enforced() {
    // /dev/kmsg (c 1:11) is outside runc's default allowlist and opens for writing for
    // anyone, so only the device cgroup can refuse it.
    let script = "mknod /mnt/w/kmsg c 1 11 && (exec 3>/mnt/w/kmsg) 2>/dev/null && echo kmsg-open || echo kmsg-denied; (exec 3>/dev/null) && echo null-open; (exec 3>/dev/kmsg) 2>/dev/null && echo listed-open || echo listed-denied";
    for (extra_rules, want) in [
        // /dev/kmsg listed in linux.devices is made, but that grants no access (runc).
        (json!([]), "kmsg-denied\nnull-open\nlisted-denied\n"),
        (
            json!([{"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]),
            "kmsg-open\nnull-open\nlisted-open\n",
        ),
    ] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&["sh", "-c", script]);
        b.edit(|c| {
            let mut rules = vec![json!({"allow": false, "access": "rwm"})];
            rules.extend(extra_rules.as_array().unwrap().iter().cloned());
            c["linux"]["resources"]["devices"] = json!(rules);
            c["linux"]["devices"] =
                json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_MKNOD"));
            }
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/mnt/w", "type": "tmpfs", "source": "tmpfs"}));
        });
        let out = rt.run(&b, &harness::unique_id("devices"));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), want, "rules {extra_rules}: {}", stderr(&out));
    }
}

#[test]
fn a_limit_the_host_cannot_take_names_the_resource_and_file() {
    let rt = Runtime::new();
    let b = with_resources(
        &["true"],
        json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1048576}]}),
    );
    let id = harness::unique_id("badlimit");
    let out = rt.create(&b, &id, &[]);
    // Named as the hierarchy hugetlb is bound to calls it: a v1 one, or cgroup2 (a v2 host,
    // or a hybrid one that keeps hugetlb on cgroup2, as this project's machines do).
    let v1_hugetlb = harness::my_mounts().iter().any(|m| {
        m.fs_type == "cgroup"
            && m.mount_source.as_deref() == Some("cgroup")
            && m.super_options.contains_key("hugetlb")
    });
    let file = match v1_hugetlb {
        true => "hugetlb.3MB.limit_in_bytes",
        false => "hugetlb.3MB.max",
    };
    harness::fails_with_one_line(
        &out,
        &format!("linux.resources.hugepageLimits[0] (3MB): this host has no {file}"),
    );
    harness::assert_no_process_of(&id);
    rt.assert_nothing_left(&id);
}

#[test]
fn sub_cgroups_the_container_made_are_removed_on_delete() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("subcg");
    start(&rt, &b, &id);
    // As a container with a writable cgroup mount would: a child cgroup holding a process.
    let pids_dir = cgroup_file(&id, "pids.max").parent().unwrap().to_path_buf();
    let sub = pids_dir.join("inner");
    std::fs::create_dir(&sub).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    std::fs::write(sub.join("cgroup.procs"), child.id().to_string()).unwrap();
    let out = rt.berth(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    assert!(!sub.exists() && !pids_dir.exists());
    let _ = child.wait();
    rt.assert_nothing_left(&id);
}

/// Runs berth as the unprivileged user 65534 on a rootless bundle (made by `berth spec
/// --rootless` as that user) with `resources`; returns berth's output. Root-owned temp dirs
/// are handed to the user first.
fn run_rootless(resources: Option<Value>) -> std::process::Output {
    let b = Bundle::new(&["true"]);
    let state = tempfile::Builder::new()
        .prefix("berth-rootless-")
        .tempdir()
        .unwrap();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    for dir in [b.path(), state.path()] {
        let st = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .arg(harness::BERTH)
            .arg("--root")
            .arg(state.path())
            .args(args)
            .current_dir(b.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_nobody(&["spec", "--rootless"]);
    assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
    let path = b.path().join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "cat /proc/self/uid_map"]);
    if let Some(r) = resources {
        config["linux"]["resources"] = r;
    }
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = as_nobody(&["run", &harness::unique_id("rootless")]);
    let left: Vec<_> = std::fs::read_dir(state.path()).unwrap().collect();
    assert!(left.is_empty(), "rootless run left state behind: {left:?}");
    out
}

#[test]
fn rootless_runs_without_a_cgroup_only_when_no_limit_is_asked_for() {
    harness::require_root();
    let out = run_rootless(None);
    assert!(out.status.success(), "{}", stderr(&out));
    let map: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert_eq!(map, ["0", "65534", "1"]);
    let out = run_rootless(Some(json!({"pids": {"limit": 5}})));
    harness::fails_with_one_line(
        &out,
        "linux.resources.pids: running rootless and the cgroup tree is not writable by this user",
    );
}

#[test]
fn the_systemd_driver_without_a_system_bus_fails_plainly_and_leaves_nothing() {
    // (The driver itself is tested where systemd is PID 1: systemd.rs, in the systemd guest.)
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = harness::unique_id("systemd");
    let out = rt
        .cmd()
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/system_bus_socket",
        )
        .args(["--systemd-cgroup", "create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    harness::fails_with_one_line(
        &out,
        "--systemd-cgroup: cannot reach systemd on the system bus",
    );
    rt.assert_nothing_left(&id);
}

#[test]
fn a_relative_cgroups_path_is_taken_from_berths_own_cgroup() {
    let rt = Runtime::new();
    let id = harness::unique_id("relcg");
    let mut b = Bundle::new(&["sleep", "100"]);
    let name = format!("{id}-nested/{id}");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(name));
    let pid = start(&rt, &b, &id);
    // The test process's own cgroup on each hierarchy, plus the relative path.
    let own = harness::cgroups_of_process(std::process::id() as i32);
    let init = harness::cgroups_of_process(pid);
    for (mine, theirs) in own.iter().zip(&init) {
        let mine = mine.pathname.trim_end_matches('/');
        assert_eq!(theirs.pathname, format!("{mine}/{name}"), "{init:?}");
    }
    rt.delete_force(&id);
    // The parent berth made on the way stays, as with runc; the container's own is gone.
    for parent in harness::cgroup_dirs_named(&format!("{id}-nested")) {
        std::fs::remove_dir(parent).unwrap();
    }
}

#[test]
fn events_stats_match_the_cgroup_files() {
    let rt = Runtime::new();
    let b = with_resources(
        &["sh", "-c", "sleep 100 & sleep 100 & wait"],
        json!({"pids": {"limit": 30}, "memory": {"limit": 64 << 20}}),
    );
    let id = harness::unique_id("stats");
    start(&rt, &b, &id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_cgroup(&id, "pids.current") != "3" {
        assert!(Instant::now() < deadline, "the two sleeps never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = rt.berth(&["events", "--stats", &id]);
    assert!(out.status.success(), "events: {}", stderr(&out));
    let ev: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], json!(id));
    let data = &ev["data"];
    assert_eq!(data["pids"], json!({"current": 3, "limit": 30}));
    let (usage, limit) = if v2_host() {
        ("memory.current", "memory.max")
    } else {
        ("memory.usage_in_bytes", "memory.limit_in_bytes")
    };
    assert_eq!(
        data["memory"]["usage"]["limit"].to_string(),
        read_cgroup(&id, limit)
    );
    // Usage of three sleeping processes moves little between the two reads, but the kernel
    // charges memory in per-CPU batches of 64 pages (256 KiB a CPU), so allow a few batches.
    let host: i64 = read_cgroup(&id, usage).parse().unwrap();
    let seen = data["memory"]["usage"]["usage"].as_i64().unwrap();
    assert!(
        seen > 0 && (host - seen).abs() <= 1 << 20,
        "events {seen}, cgroup {host}"
    );
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{data}"
    );
    rt.delete_force(&id);
}

/// The "data" of one `events --stats`.
fn stats_data(rt: &Runtime, id: &str) -> Value {
    let out = rt.berth(&["events", "--stats", id]);
    assert!(out.status.success(), "events: {}", stderr(&out));
    let ev: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(ev["type"], "stats");
    ev["data"].clone()
}

/// A kernel cpu list ("0-2,5") as numbers, for comparing with `cpuset.cpus` in the stats.
fn cpu_list(list: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in list.trim().split(',') {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        out.extend(from.parse::<u64>().unwrap()..=to.parse().unwrap());
    }
    out
}

#[test]
fn events_stats_cpuset_matches_the_cgroup_files() {
    let rt = Runtime::new();
    let b = with_resources(
        &["sleep", "100"],
        json!({"cpu": {"cpus": "0", "mems": "0"}}),
    );
    let id = harness::unique_id("statscpuset");
    start(&rt, &b, &id);
    let cpuset = &stats_data(&rt, &id)["cpuset"];
    if v2_host() {
        // runc's v2 driver reads no cpuset figures (cpuset.cpus is "0" here all the same).
        let zero = json!({"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
            "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
            "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0});
        assert_eq!(*cpuset, zero);
        rt.delete_force(&id);
        return;
    }
    assert_eq!(cpuset["cpus"], json!([0]));
    assert_eq!(cpuset["mems"], json!([0]));
    // Flags moved off their defaults from outside, in a pattern that tells each file apart.
    for (flag, value) in [
        ("mem_hardwall", "1"),
        ("memory_migrate", "1"),
        ("memory_spread_page", "1"),
        ("sched_load_balance", "0"),
        ("sched_relax_domain_level", "1"),
    ] {
        std::fs::write(cgroup_file(&id, &format!("cpuset.{flag}")), value).unwrap();
    }
    let cpuset = &stats_data(&rt, &id)["cpuset"];
    for flag in [
        "cpu_exclusive",
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
        "sched_relax_domain_level",
    ] {
        let host: i64 = read_cgroup(&id, &format!("cpuset.{flag}")).parse().unwrap();
        assert_eq!(cpuset[flag], json!(host), "{flag}: {cpuset}");
    }
    // Every cpu the parent has, a range such as "0-1" on the host: expanded in the stats.
    let parent = cgroup_file(&id, "cpuset.cpus")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let all = std::fs::read_to_string(parent.join("cpuset.cpus")).unwrap();
    let out = rt.berth(&["update", "--cpuset-cpus", all.trim(), &id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    let want = cpu_list(&read_cgroup(&id, "cpuset.cpus"));
    assert_eq!(want, cpu_list(&all));
    assert_eq!(stats_data(&rt, &id)["cpuset"]["cpus"], json!(want));
    rt.delete_force(&id);
}

/// The `some` and `full` totals of a pressure file (0 for a missing line).
fn pressure_totals(id: &str, file: &str) -> [u64; 2] {
    let mut totals = [0; 2];
    for line in read_cgroup(id, file).lines() {
        let half = usize::from(line.starts_with("full"));
        let total = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("total="));
        totals[half] = total.unwrap().parse().unwrap();
    }
    totals
}

#[test]
fn events_stats_psi_matches_the_pressure_files() {
    let rt = Runtime::new();
    // Two busy loops on one cpu: each waits for the other, so cpu.pressure's `some` grows.
    let b = with_resources(
        &[
            "sh",
            "-c",
            "while :; do :; done & while :; do :; done & wait",
        ],
        json!({"cpu": {"cpus": "0"}}),
    );
    let id = harness::unique_id("statspsi");
    start(&rt, &b, &id);
    let files = [
        ("cpu", "cpu.pressure"),
        ("memory", "memory.pressure"),
        ("blkio", "io.pressure"),
    ];
    let has_psi = harness::cgroup_dirs_named(&id)
        .iter()
        .any(|d| d.join("cpu.pressure").exists());
    if !v2_host() || !has_psi {
        // runc's v1 driver reads no PSI, not even from a hybrid host's cgroup2 directory
        // (which has pressure files here); a kernel without PSI has none to report.
        let data = stats_data(&rt, &id);
        for (key, _) in files {
            assert!(data[key].get("psi").is_none(), "{key}: {data}");
        }
        rt.delete_force(&id);
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pressure_totals(&id, "cpu.pressure")[0] == 0 {
        assert!(
            Instant::now() < deadline,
            "no cpu pressure from two busy loops"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = files.map(|(_, f)| pressure_totals(&id, f));
    let data = stats_data(&rt, &id);
    let after = files.map(|(_, f)| pressure_totals(&id, f));
    for (i, (key, file)) in files.iter().enumerate() {
        let psi = &data[key]["psi"];
        assert!(psi.is_object(), "{key}: no psi in {data}");
        for (h, half) in ["some", "full"].iter().enumerate() {
            // Go's omitzero: a half that is all zeros is left out.
            let seen = psi[half]["total"].as_u64().unwrap_or(0);
            assert!(
                before[i][h] <= seen && seen <= after[i][h],
                "{file} {half}: events {seen}, file {} then {}",
                before[i][h],
                after[i][h]
            );
            for avg in ["avg10", "avg60", "avg300"] {
                let v = psi[half][avg].as_f64().unwrap_or(0.0);
                assert!((0.0..=100.0).contains(&v), "{file} {half} {avg}: {psi}");
            }
        }
    }
    assert!(
        data["cpu"]["psi"]["some"]["total"].as_u64().unwrap() > 0,
        "{data}"
    );
    rt.delete_force(&id);
}

/// As runc: the `oom` line comes as soon as the kernel OOM-kills in the container (here the
/// stats interval is an hour), and the lines keep runc's key order.
#[test]
fn events_reports_an_oom_kill_at_once() {
    let rt = Runtime::new();
    // The hog starts once `events` is watching (told by a file the test makes); sh survives
    // it and keeps the container up.
    let b = with_resources(
        &[
            "sh",
            "-c",
            "while [ ! -e /dev/shm/go ]; do sleep 0.05; done; tail /dev/zero; sleep 100",
        ],
        json!({"memory": {"limit": 32 << 20, "swap": 32 << 20}}),
    );
    let id = harness::unique_id("oomevent");
    start(&rt, &b, &id);
    let mut events = rt
        .cmd()
        .args(["events", "--interval", "1h", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // (events has read the OOM count it compares with well within this.)
    std::thread::sleep(Duration::from_secs(2));
    let go = rt.berth(&["exec", &id, "touch", "/dev/shm/go"]);
    assert!(go.status.success(), "{}", stderr(&go));
    let reader = std::io::BufReader::new(events.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(reader) {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    let _ = events.kill();
    let _ = events.wait();
    assert_eq!(
        first.as_deref(),
        Ok(format!(r#"{{"type":"oom","id":"{id}"}}"#).as_str()),
        "no oom line within 20 s"
    );
    let out = rt.berth(&["events", "--stats", &id]);
    let stats = stdout(&out);
    assert!(
        stats.starts_with(&format!(r#"{{"type":"stats","id":"{id}","data":{{"#)),
        "{stats}"
    );
    rt.delete_force(&id);
}

#[test]
fn the_setup_process_joins_without_moving_a_thread_group() {
    // Writing a pid to cgroup.procs moves a whole thread group, which write-locks the
    // kernel's cgroup_threadgroup_rwsem and waits for an RCU grace period (milliseconds, on
    // every create). berth's setup process is instead born in the cgroup2 cgroup (v2 host,
    // or a hybrid host's unified hierarchy) with clone3(CLONE_INTO_CGROUP), and moves only
    // itself into v1 hierarchies by writing its `tasks` files.
    let rt = Runtime::new();
    let mut b = with_resources(
        &["cat", "/proc/self/cgroup"],
        json!({"pids": {"limit": 20}}),
    );
    // Without a cgroup namespace /proc/self/cgroup shows where the process really is.
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|ns| ns["type"] != "cgroup")
    });
    let id = harness::unique_id("clone3");
    let bundle = b.path().to_str().unwrap();
    let (out, log) = harness::strace_berth(
        &rt,
        &b,
        "clone,clone3,fork,vfork,openat,open",
        &["run", "--bundle", bundle, &id],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).is_empty(), "no cgroups listed");
    let listed = procfs::ProcessCGroups::from_buf_read(stdout(&out).as_bytes())
        .unwrap_or_else(|e| panic!("not /proc/self/cgroup ({e}): {}", stdout(&out)))
        .0;
    let has_cgroup2 = listed.iter().any(harness::is_cgroup2);
    let has_v1 = listed.iter().any(|g| !harness::is_cgroup2(g));
    if has_cgroup2 {
        assert!(
            log.lines()
                .any(|l| l.contains("clone3(") && l.contains("CLONE_INTO_CGROUP")),
            "no clone3(CLONE_INTO_CGROUP):\n{log}"
        );
    }
    if has_v1 {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("/{id}/tasks\"")) && l.contains("O_WRONLY")),
            "no v1 tasks file was written:\n{log}"
        );
    }
    // (Reading it is fine: `run` lists what is left in the cgroup before removing it.)
    assert!(
        !log.lines()
            .any(|l| l.contains("cgroup.procs") && l.contains("O_WRONLY")),
        "cgroup.procs was written:\n{log}"
    );
    // And the container's process is in its cgroup on every hierarchy.
    for g in &listed {
        assert!(
            g.pathname.ends_with(&format!("/{id}")),
            "not in its cgroup: {g:?}"
        );
    }
    rt.assert_nothing_left(&id);
}

#[test]
fn on_v2_kill_all_with_sigkill_uses_cgroup_kill() {
    // cgroup v2 only (runs in the VM of `make v2-test`): one write to cgroup.kill kills the
    // whole tree, with no window for a fork to escape a pid-by-pid kill.
    if !v2_host() {
        eprintln!("skipped: not a cgroup v2 host");
        return;
    }
    let rt = Runtime::new();
    let b = with_resources(
        &["sh", "-c", "sleep 100 & sleep 100 & wait"],
        json!({"pids": {"limit": 20}}),
    );
    let id = harness::unique_id("cgkill");
    start(&rt, &b, &id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_cgroup(&id, "pids.current") != "3" {
        assert!(Instant::now() < deadline, "the two sleeps never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (out, log) = harness::strace_berth(
        &rt,
        &b,
        "openat,kill,pidfd_send_signal",
        &["kill", "--all", &id, "KILL"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        log.lines()
            .any(|l| l.contains("/cgroup.kill\"") && l.contains("O_WRONLY")),
        "cgroup.kill was not written:\n{log}"
    );
    assert!(
        !log.contains("SIGKILL"),
        "processes were signalled one by one:\n{log}"
    );
    // Zombies stay charged to pids.current until reaped: look for live processes instead.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !harness::live_processes_of(&id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes survived cgroup.kill: {:?}",
            harness::live_processes_of(&id)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.delete_force(&id);
}

/// Where this host can freeze a cgroup: (hierarchy root, freeze file, frozen value). The v1
/// freezer and cgroup2: a pure v2 host's one tree, or a hybrid host's unified hierarchy (the
/// setup process is born into the container's cgroup there, CLONE_INTO_CGROUP).
fn freezers() -> Vec<(PathBuf, &'static str, &'static str)> {
    let mut found = Vec::new();
    if v2_host() {
        found.push((PathBuf::from("/sys/fs/cgroup"), "cgroup.freeze", "1"));
        return found;
    }
    let v1 = PathBuf::from("/sys/fs/cgroup/freezer");
    if v1.join("cgroup.procs").exists() {
        found.push((v1, "freezer.state", "FROZEN"));
    }
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    if unified.join("cgroup.controllers").exists() {
        found.push((unified, "cgroup.freeze", "1"));
    }
    assert!(!found.is_empty(), "this host has no cgroup freezer");
    found
}

/// Whether the cgroup at `dir` is frozen, read as the host sees it.
fn frozen_dir(dir: &std::path::Path) -> bool {
    match std::fs::read_to_string(dir.join("freezer.state")) {
        Ok(s) => s.trim() == "FROZEN",
        Err(_) => std::fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("frozen 1"),
    }
}

/// A cgroup the test makes and freezes itself, as a user would; thawed and removed on drop,
/// also when the test fails (killing whatever a regression let into it).
struct FrozenCgroup {
    dir: PathBuf,
    file: &'static str,
}

impl FrozenCgroup {
    fn new(dir: PathBuf, file: &'static str, value: &str) -> FrozenCgroup {
        std::fs::create_dir(&dir).unwrap();
        let cg = FrozenCgroup { dir, file };
        std::fs::write(cg.dir.join(file), value).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !frozen_dir(&cg.dir) {
            assert!(
                Instant::now() < deadline,
                "{} never froze",
                cg.dir.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        cg
    }

    fn thaw(&self) {
        let thawed = if self.file == "freezer.state" {
            "THAWED"
        } else {
            "0"
        };
        let _ = std::fs::write(self.dir.join(self.file), thawed);
    }
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        self.thaw();
        for attempt in 0..200 {
            for d in [self.dir.join("inner"), self.dir.clone()] {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                        // SAFETY: kill(2) of a process a regression left in the test's cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        harness::reap(pid);
                    }
                }
                let _ = std::fs::remove_dir(&d);
            }
            if !self.dir.exists() {
                return;
            }
            assert!(attempt < 199, "cannot remove {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs berth with `args` (the container's stdio in files, as init inherits it), and fails
/// the test instead of hanging the suite when it takes more than `secs`: `unstick` runs
/// first, so that what berth waits on can move and be cleaned up.
fn berth_within(
    rt: &Runtime,
    args: &[&str],
    secs: u64,
    unstick: impl FnOnce(),
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = rt
        .cmd()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            unstick();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "berth {args:?} still running after {secs}s (stderr: {:?})",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

#[test]
fn create_and_run_refuse_a_cgroup_that_is_already_frozen() {
    // runc (libcontainer's Create): "container's cgroup unexpectedly frozen", before anything
    // is made. Before berth checked, the setup process froze as it joined the cgroup and
    // `create` waited for it forever. The container's own cgroup frozen, and a frozen parent
    // of one that does not exist yet or that the user made too; on each freezer of the host.
    let rt = Runtime::new();
    for (root, file, value) in freezers() {
        for case in ["own", "new inner", "existing inner"] {
            let name = harness::unique_id("frozencg");
            let user_cg = FrozenCgroup::new(root.join(&name), file, value);
            let path = match case {
                "own" => format!("/{name}"),
                _ => format!("/{name}/inner"),
            };
            let inner = user_cg.dir.join("inner");
            if case == "existing inner" {
                std::fs::create_dir(&inner).unwrap();
                assert!(
                    frozen_dir(&inner),
                    "a new cgroup under a frozen one is frozen"
                );
            }
            let mut b = Bundle::new(&["true"]);
            b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
            for cmd in ["create", "run"] {
                let id = harness::unique_id("frozen");
                rt.track(&id);
                let bundle = b.path().to_str().unwrap().to_string();
                // (Bounded, so that a hang fails the test; no tighter bound on the time: the
                // refusal before anything is made is proven by its words and by what exists.)
                let out =
                    berth_within(&rt, &[cmd, "--bundle", &bundle, &id], 20, || user_cg.thaw());
                let what = format!("{cmd} into {path} ({case}) on {}", root.display());
                // Refused by the check before anything is made ("...frozen (FILE ...)"), not
                // by the watch while create waits for its processes ("...frozen while it
                // was being created (...)"), which would mean a setup process had joined.
                harness::fails_with_one_line(&out, "container's cgroup unexpectedly frozen (");
                let err = harness::stderr(&out);
                assert!(
                    err.contains(&format!("{}/", user_cg.dir.display()))
                        && (err.contains(file) || err.contains("cgroup.events says frozen 1")),
                    "{what}: names the file: {}",
                    harness::stderr(&out)
                );
                rt.assert_nothing_left(&id);
                harness::assert_no_process_of(&id);
                // The user's cgroup is as it was (there, frozen, empty), and berth made no
                // cgroup on any hierarchy.
                assert!(frozen_dir(&user_cg.dir), "{what}: thawed");
                assert_eq!(
                    std::fs::read_to_string(user_cg.dir.join("cgroup.procs")).unwrap(),
                    "",
                    "{what}"
                );
                assert_eq!(inner.exists(), case == "existing inner", "{what}");
                assert_eq!(
                    harness::cgroup_dirs_named(&name),
                    vec![user_cg.dir.clone()],
                    "{what}"
                );
            }
        }
    }
}

/// A bundle whose createRuntime hook (run by `create` on the host, once init exists) runs
/// `script` in the host's sh.
fn with_create_runtime_hook(script: &str) -> Bundle {
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]})
    });
    b
}

#[test]
fn create_fails_when_the_cgroup_is_frozen_while_it_waits_for_init() {
    // Frozen after the check, while `create` waits for init to report: before, `create`
    // waited forever; now it sees the frozen cgroup, fails and undoes everything (its own
    // cgroup included).
    let rt = Runtime::new();
    for (root, file, value) in freezers() {
        let id = harness::unique_id("frozenlater");
        let freeze = root.join(&id).join(file);
        let b = with_create_runtime_hook(&format!("echo {value} > {}", freeze.display()));
        rt.track(&id);
        let bundle = b.path().to_str().unwrap().to_string();
        let thawed = if file == "freezer.state" {
            "THAWED"
        } else {
            "0"
        };
        let out = berth_within(&rt, &["create", "--bundle", &bundle, &id], 20, || {
            let _ = std::fs::write(&freeze, thawed);
        });
        harness::fails_with_one_line(
            &out,
            "container's cgroup unexpectedly frozen while it was being created",
        );
        rt.assert_nothing_left(&id);
        harness::assert_no_process_of(&id);
        harness::reap_failed_inits();
    }
}

#[test]
fn create_gives_up_on_an_init_stopped_while_it_waits() {
    // A setup process or init that is stopped (SIGSTOP) and never continued would keep
    // `create` waiting forever: it gives up after 10 s, naming the stopped process.
    let rt = Runtime::new();
    let b = with_create_runtime_hook(
        r#"pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p'); kill -STOP "$pid""#,
    );
    let id = harness::unique_id("stopped");
    rt.track(&id);
    let bundle = b.path().to_str().unwrap().to_string();
    let started = Instant::now();
    let out = berth_within(&rt, &["create", "--bundle", &bundle, &id], 60, || {
        for (pid, _) in harness::live_processes_of(&id) {
            // SAFETY: kill(2) of the container's own stopped process, so it can finish.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    });
    harness::fails_with_one_line(&out, "has been stopped (SIGSTOP) for 10s during create");
    assert!(started.elapsed() >= Duration::from_secs(10));
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
    harness::reap_failed_inits();
}

#[test]
fn unified_is_written_on_a_pure_v2_host_and_refused_elsewhere_as_runc_refuses_it() {
    // On a hybrid host the cgroup2 hierarchy beside the v1 ones does not count (runc's rule).
    // This host is hybrid; the cgroup v2 VM (`make v2-test`) runs the other branch.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["linux"]["resources"]["unified"] = json!({"pids.max": "42"}));
    let id = harness::unique_id("unified");
    let out = rt.create(&b, &id, &[]);
    if v2_host() {
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(read_cgroup(&id, "pids.max"), "42");
        rt.delete_force(&id);
    } else {
        harness::fails_with_one_line(
            &out,
            "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1",
        );
        harness::assert_no_process_of(&id);
        rt.assert_nothing_left(&id);
    }
}

/// As runc, `spec` gives a cgroup namespace only where /sys/fs/cgroup is cgroup2 itself; on a
/// v1 or hybrid host the container sees the host's cgroup paths, as runc's would.
#[test]
fn spec_has_a_cgroup_namespace_only_on_a_pure_v2_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(harness::BERTH)
        .args(["spec", "-b"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let cgroupns = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup");
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .unwrap()
        .filesystem_type()
        == nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    assert_eq!(cgroupns, unified, "{}", config["linux"]["namespaces"]);
}

/// As runc (libcontainer's Create): a container is not created into a cgroup that already
/// holds processes, here another container's; that one keeps running in its cgroup.
#[test]
fn create_and_run_refuse_a_cgroup_that_holds_processes() {
    let rt = Runtime::new();
    let name = harness::unique_id("sharedcg");
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let first = harness::unique_id("firstcg");
    let pid = start(&rt, &b, &first);
    let dirs = harness::cgroup_dirs_named(&name);
    for cmd in ["create", "run"] {
        let id = harness::unique_id("secondcg");
        rt.track(&id);
        let bundle = b.path().to_str().unwrap().to_string();
        let out = rt.berth(&[cmd, "--bundle", &bundle, &id]);
        harness::fails_with_one_line(&out, "container's cgroup is not empty: 1 process(es) found");
        rt.assert_nothing_left(&id);
        harness::assert_no_process_of(&id);
        assert!(
            harness::alive(pid),
            "{cmd}: the first container's init was killed"
        );
        assert_eq!(harness::cgroup_dirs_named(&name), dirs, "{cmd}");
        assert_eq!(read_cgroup(&name, "cgroup.procs"), pid.to_string(), "{cmd}");
    }
    rt.delete_force(&first);
}

/// As runc, device rules go through the devices controller's emulator: access letters other
/// than r, w and m are dropped, and on v1 only the transition from what devices.list shows
/// is written, so a cgroup that already allows what the rules allow gets no write at all
/// (in particular no deny-all on the way).
#[test]
fn device_rules_drop_unknown_letters_and_v1_writes_only_the_transition() {
    let rt = Runtime::new();
    let with_tty1 = |b: &mut Bundle| {
        b.edit(|c| {
            c["linux"]["resources"]["devices"]
                .as_array_mut()
                .unwrap()
                .push(json!({"allow": true, "type": "c", "major": 4, "minor": 1, "access": "rwx"}));
        })
    };
    let mut a = Bundle::new(&["sleep", "100"]);
    with_tty1(&mut a);
    let first = harness::unique_id("devtrans");
    start(&rt, &a, &first);
    if v2_host() {
        // (cgroup2 has no devices.list; that create succeeded is the check.)
        rt.delete_force(&first);
        return;
    }
    let list = read_cgroup(&first, "devices.list");
    assert!(list.lines().any(|l| l == "c 4:1 rw"), "{list}");

    // A cgroup the user made with exactly those rules already in place.
    let name = harness::unique_id("devready");
    let ready = std::path::Path::new("/sys/fs/cgroup/devices").join(&name);
    std::fs::create_dir(&ready).unwrap();
    std::fs::write(ready.join("devices.deny"), "a").unwrap();
    for line in list.lines() {
        std::fs::write(ready.join("devices.allow"), line).unwrap();
    }
    let mut b = Bundle::new(&["sleep", "100"]);
    with_tty1(&mut b);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let second = harness::unique_id("devtrans2");
    rt.track(&second);
    let bundle = b.path().to_str().unwrap().to_string();
    // create writes the rules itself (strace without -f: init stays, and strace with it).
    let trace_file = b.path().join("strace.log");
    let st = std::process::Command::new("strace")
        .args(["-qq", "-e", "trace=openat", "-o"])
        .arg(&trace_file)
        .arg(harness::BERTH)
        .arg("--root")
        .arg(rt.root.path())
        .args(["create", "--bundle", &bundle, &second])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(b.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(b.path().join("stderr")).unwrap())
        .status()
        .expect("strace (apt-get install strace)");
    let err = std::fs::read_to_string(b.path().join("stderr")).unwrap();
    assert!(st.success(), "{err}");
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    assert!(trace.contains("devices.list"), "{trace}");
    let device_writes: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("devices.allow") || l.contains("devices.deny"))
        .collect();
    assert_eq!(device_writes, Vec::<&str>::new(), "{trace}");
    assert_eq!(
        std::fs::read_to_string(ready.join("devices.list"))
            .unwrap()
            .trim(),
        list
    );
    rt.delete_force(&second);
    rt.delete_force(&first);
    let _ = std::fs::remove_dir(&ready);
}

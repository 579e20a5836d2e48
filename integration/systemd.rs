//! The systemd cgroup driver (`--systemd-cgroup`) on a host with systemd as PID 1: the scope
//! unit systemd makes for the container, checked with systemctl and in the cgroup files, and
//! nothing of it left after delete or a failed create.
//!
//! These need systemd as PID 1 and its system bus, which this project's machines do not have:
//! they are ignored in a plain `cargo test` and run, with `--ignored`, in the systemd guest
//! that `make systemd-test` boots (hack/vm.sh --guest systemd), which `make test` and CI run.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use procfs::FromBufRead;
use serde_json::json;

use crate::harness::{self, fails_with_one_line, stderr, stdout, Bundle, Runtime};

/// `systemctl show -p NAME --value UNIT`.
fn unit_property(unit: &str, name: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", name, "--value", unit])
        .output()
        .expect("run systemctl");
    assert!(
        out.status.success(),
        "systemctl show {unit}: {}",
        stderr(&out)
    );
    stdout(&out).trim().to_string()
}

/// Cgroup directories anywhere under /sys/fs/cgroup whose name mentions `id`.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    harness::find_cgroups(&harness::cgroup_roots(), &|name: &str| name.contains(id))
        .unwrap_or_else(|e| panic!("looking for cgroups of {id}: {e}"))
}

/// Nothing of container `id` under systemd: no unit, no cgroup, no process.
fn assert_nothing_of(id: &str) {
    let units = harness::systemd_units_of(id);
    assert!(units.is_empty(), "units of {id} left: {units:?}");
    let cgroups = cgroups_of(id);
    assert!(cgroups.is_empty(), "cgroups of {id} left: {cgroups:?}");
    let procs = harness::live_processes(|p, cmdline| {
        let in_cgroup = p
            .cgroups()
            .is_ok_and(|c| c.into_iter().any(|g| g.pathname.contains(id)));
        in_cgroup || cmdline.split(|b| *b == 0).any(|a| a == id.as_bytes())
    });
    assert!(procs.is_empty(), "processes of {id} left: {procs:?}");
}

/// `berth --systemd-cgroup ARGS`, failing the test (instead of hanging it) after 60 s.
fn sd(rt: &Runtime, args: &[&str]) -> std::process::Output {
    let child = rt
        .cmd()
        .arg("--systemd-cgroup")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    harness::output_within(child, std::time::Duration::from_secs(60))
}

/// `--systemd-cgroup run` of `b` as `id` in the foreground, its output captured.
fn sd_run(rt: &Runtime, b: &Bundle, id: &str) -> std::process::Output {
    let child = rt
        .cmd()
        .args(["--systemd-cgroup", "run", "--bundle"])
        .arg(b.path())
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    harness::output_within(child, std::time::Duration::from_secs(60))
}

/// `delete --force` of `id` (init `pid`), then nothing of it under systemd.
fn delete_leaving_nothing(rt: &Runtime, id: &str, pid: i64) {
    let out = sd(rt, &["delete", "--force", id]);
    assert!(
        out.status.success(),
        "delete --force {id}: {}",
        stderr(&out)
    );
    harness::reap(pid as i32);
    assert_nothing_of(id);
}

/// `--systemd-cgroup create` of `b`, stdio to files in the bundle.
fn sd_create(rt: &Runtime, b: &Bundle, id: &str) -> std::process::Output {
    rt.create_with_globals(&["--systemd-cgroup"], b, id, &[])
}

/// Init's cgroup, from the host: its path on cgroup2, the only hierarchy under systemd here.
fn init_cgroup(pid: i64) -> String {
    match harness::cgroups_of_process(pid as i32).as_slice() {
        [g] if harness::is_cgroup2(g) => g.pathname.clone(),
        other => panic!("init {pid} is not in one cgroup2 cgroup: {other:?}"),
    }
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn a_container_is_a_scope_unit_in_its_slice_with_its_limits_until_deleted() {
    let rt = Runtime::new();
    let id = harness::unique_id("sd-scope");
    let unit = format!("berth-{id}.scope");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}"));
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
        c["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    });
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // systemd's view: an active scope of its own in system.slice, delegated, with the limits.
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    assert_eq!(unit_property(&unit, "Slice"), "system.slice");
    assert_eq!(unit_property(&unit, "Delegate"), "yes");
    assert_eq!(unit_property(&unit, "MemoryMax"), "67108864");
    assert_eq!(unit_property(&unit, "TasksMax"), "50");
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "500ms");
    // The kernel's view: init is in the scope's cgroup, whose files hold the limits.
    let dir = PathBuf::from("/sys/fs/cgroup/system.slice").join(&unit);
    assert_eq!(init_cgroup(pid), format!("/system.slice/{unit}"));
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    assert_eq!(read("memory.max"), "67108864");
    assert_eq!(read("pids.max"), "50");
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), "20");

    let out = sd(&rt, &["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    // exec joins the scope's cgroup.
    let out = sd(&rt, &["exec", &id, "cat", "/proc/self/cgroup"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0::/");
    // (Detached: its stdio must not be a pipe of ours, which it would hold open.)
    let child = rt
        .cmd()
        .args(["--systemd-cgroup", "exec", "-d", &id, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let st = harness::wait_within(child, harness::COMMAND_LIMIT).expect("exec -d hung");
    assert!(st.success(), "exec -d failed");
    let procs = read("cgroup.procs");
    assert_eq!(
        procs.lines().count(),
        2,
        "init and the exec'd sleep: {procs}"
    );
    let exec_pid: i32 = procs
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .find(|&p: &i32| i64::from(p) != pid)
        .unwrap();
    // ps lists them from the scope's cgroup.
    let out = sd(&rt, &["ps", "--format", "json", &id]);
    assert!(out.status.success(), "ps: {}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Vec<i64>>(&out.stdout)
            .unwrap()
            .len(),
        2
    );
    // pause/resume freeze the scope's cgroup.
    let out = sd(&rt, &["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    assert_eq!(read("cgroup.freeze"), "1");
    assert_eq!(rt.status(&id), "paused");
    let out = sd(&rt, &["resume", &id]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    assert_eq!(read("cgroup.freeze"), "0");
    // update reaches systemd's property and the file.
    let out = sd(
        &rt,
        &["update", "--memory", "134217728", "--pids-limit", "70", &id],
    );
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(unit_property(&unit, "MemoryMax"), "134217728");
    assert_eq!(unit_property(&unit, "TasksMax"), "70");
    assert_eq!(read("memory.max"), "134217728");
    assert_eq!(read("pids.max"), "70");
    // events reads the scope's statistics.
    let out = sd(&rt, &["events", "--stats", &id]);
    assert!(out.status.success(), "events --stats: {}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["data"]["pids"]["current"], 2, "{stats}");

    // kill --all, then delete: the unit is gone and so is its cgroup.
    let out = sd(&rt, &["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "kill --all: {}", stderr(&out));
    // The exec'd sleep was reparented to this test process (a subreaper): its zombie must
    // go first, or init, PID 1 of its namespace, never finishes exiting.
    harness::reap(exec_pid);
    harness::reap(pid as i32);
    let out = sd(&rt, &["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_nothing_of(&id);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn the_units_device_rules_are_the_containers_and_survive_a_daemon_reload() {
    let rt = Runtime::new();
    let id = harness::unique_id("sd-dev");
    let unit = format!("berth-{id}.scope");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}"));
        // (So that a device node the rules do not allow can be made, and be refused.)
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
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // systemd knows the rules, in its own words (as runc gives them).
    assert_eq!(unit_property(&unit, "DevicePolicy"), "strict");
    let allow = unit_property(&unit, "DeviceAllow");
    for entry in ["/dev/char/1:3 rwm", "/dev/char/1:9 rwm", "char-136 rwm"] {
        assert!(
            allow.contains(entry),
            "no {entry:?} in DeviceAllow: {allow}"
        );
    }
    assert!(
        !allow.contains("/dev/char/1:1 "),
        "/dev/mem allowed: {allow}"
    );
    let out = sd(&rt, &["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    // A reload makes systemd apply the unit's device rules again: the container keeps its
    // devices, and still has none it was not given.
    let out = Command::new("systemctl")
        .arg("daemon-reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "daemon-reload: {}", stderr(&out));
    // (/dev/kmsg, c 1:11, opens for writing for anyone: only the device rules refuse it.)
    let script = "echo x > /dev/null && head -c 4 /dev/urandom | wc -c && \
        mknod /mnt/w/kmsg c 1 11 && ((exec 3>/mnt/w/kmsg) 2>/dev/null && echo kmsg-open || echo kmsg-denied)";
    let out = sd(&rt, &["exec", &id, "sh", "-c", script]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["4", "kmsg-denied"],
        "{}",
        stderr(&out)
    );
    delete_leaving_nothing(&rt, &id, pid);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn delete_of_a_running_container_stops_its_unit_and_leaves_nothing() {
    let rt = Runtime::new();
    let id = harness::unique_id("sd-delete");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /sys/fs/cgroup/sub 2>/dev/null; sleep 1000",
    ]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}"));
        // A cgroup namespace and a writable cgroup mount: the container makes a sub-cgroup
        // of its own in the delegated scope.
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .filter(|m| m["type"] == "cgroup")
            .for_each(|m| m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]));
    });
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert!(sd(&rt, &["start", &id]).status.success());
    let sub = PathBuf::from(format!("/sys/fs/cgroup/system.slice/berth-{id}.scope/sub"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sub.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(sub.exists(), "the container made no sub-cgroup");
    delete_leaving_nothing(&rt, &id, pid);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn the_driver_works_the_same_whatever_the_cgroup_layout() {
    // Checked through the hierarchy each controller is bound to, so it holds in systemd's
    // cgroup v1 (hybrid) mode too, where systemd makes the unit's directories on the v1
    // hierarchies it manages and berth the rest (freezer, cpuset): make systemd-v1-test.
    use crate::engines::{
        assert_unit_shows, frozen, host_cgroup_dir, is_v1, memory_limit, pids_limit,
    };
    let rt = Runtime::new();
    let id = harness::unique_id("sd-layout");
    let unit = format!("berth-{id}.scope");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}"));
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let pid32 = pid as i32;
    // init is in the unit's cgroup on every hierarchy it is placed on.
    for controller in ["memory", "pids", "freezer"] {
        let dir = host_cgroup_dir(pid32, controller);
        assert!(
            dir.ends_with(format!("system.slice/{unit}")),
            "{controller}: {}",
            dir.display()
        );
    }
    let memory = if is_v1("memory") {
        "MemoryLimit"
    } else {
        "MemoryMax"
    };
    assert_unit_shows(pid32, &[(memory, "67108864"), ("TasksMax", "50")]);
    assert_eq!(memory_limit(pid32), "67108864");
    assert_eq!(pids_limit(pid32), "50");
    let out = sd(&rt, &["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let out = sd(&rt, &["exec", &id, "echo", "in"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "in");
    let out = sd(&rt, &["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    assert!(frozen(pid32), "the host's freezer does not show it frozen");
    let out = sd(&rt, &["resume", &id]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    assert!(!frozen(pid32));
    let out = sd(&rt, &["update", "--memory", "134217728", &id]);
    assert!(out.status.success(), "update: {}", stderr(&out));
    assert_eq!(memory_limit(pid32), "134217728");
    assert_unit_shows(pid32, &[(memory, "134217728")]);
    delete_leaving_nothing(&rt, &id, pid);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn org_systemd_property_annotations_set_the_units_properties() {
    let rt = Runtime::new();
    let id = harness::unique_id("sd-ann");
    let unit = format!("berth-{id}.scope");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}"));
        c["annotations"] = json!({
            "org.systemd.property.TimeoutStopSec": "7",
            "org.systemd.property.CollectMode": "'inactive-or-failed'",
            "org.systemd.property.SendSIGHUP": "true",
        });
    });
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(unit_property(&unit, "TimeoutStopUSec"), "7s");
    assert_eq!(unit_property(&unit, "CollectMode"), "inactive-or-failed");
    assert_eq!(unit_property(&unit, "SendSIGHUP"), "yes");
    delete_leaving_nothing(&rt, &id, pid);

    // A value berth cannot read, or one systemd refuses: one line naming the annotation, and
    // nothing left.
    for (name, value, want) in [
        ("TimeoutStopSec", "'soon'", "annotations.\"org.systemd.property.TimeoutStopSec\": \"'soon'\": a number of seconds is needed"),
        ("NoSuchPropertyAtAll", "true", "NoSuchPropertyAtAll"),
    ] {
        let id = harness::unique_id("sd-ann-bad");
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}"));
            c["annotations"] = json!({ format!("org.systemd.property.{name}"): value });
        });
        let out = sd_create(&rt, &b, &id);
        fails_with_one_line(&out, want);
        assert!(!rt.root.path().join(&id).exists());
        assert_nothing_of(&id);
    }
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn the_readmes_example_container_runs_with_the_systemd_driver() {
    let rt = Runtime::new();
    let id = harness::unique_id("sd-example");
    let mut b = Bundle::new(&["true"]);
    // config.json.example as it is in the repository (built in: the guest has no checkout).
    let example: serde_json::Value =
        serde_json::from_str(include_str!("../config.json.example")).unwrap();
    b.edit(|c| *c = example);
    let out = sd_run(&rt, &b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Hello from berth: I am PID 1 in ")
            && text.trim_end().ends_with("root is read-only: yes"),
        "{text}"
    );
    rt.track(&id);
    assert_nothing_of(&id);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn run_with_no_cgroups_path_uses_runcs_default_unit_and_nested_slices_expand() {
    let rt = Runtime::new();
    // No cgroupsPath: runc's ":runc:<id>", so runc-<id>.scope in system.slice, as the
    // host's /proc and systemd see it.
    let id = harness::unique_id("sd-default");
    let b = Bundle::new(&["sleep", "1000"]);
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(init_cgroup(pid), format!("/system.slice/runc-{id}.scope"));
    assert_eq!(
        unit_property(&format!("runc-{id}.scope"), "Slice"),
        "system.slice"
    );
    delete_leaving_nothing(&rt, &id, pid);

    // A foreground run: the container sees its own cgroup namespace's root.
    let id = harness::unique_id("sd-run");
    let b = Bundle::new(&["cat", "/proc/self/cgroup"]);
    let out = sd_run(&rt, &b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0::/");
    rt.track(&id);
    assert_nothing_of(&id);

    // A slice name with dashes is a slice inside a slice, as systemd names them.
    let id = harness::unique_id("sd-nested");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("berthtest-nested.slice:p:{id}")));
    let out = sd_create(&rt, &b, &id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        init_cgroup(pid),
        format!("/berthtest.slice/berthtest-nested.slice/p-{id}.scope")
    );
    assert_eq!(
        unit_property(&format!("p-{id}.scope"), "Slice"),
        "berthtest-nested.slice"
    );
    delete_leaving_nothing(&rt, &id, pid);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn the_container_does_not_inherit_the_d_bus_librarys_ignored_sigpipe() {
    // libdbus sets SIGPIPE to SIG_IGN in the process that connects, and an ignored signal
    // survives execve: `yes | head` would then end with EPIPE errors instead of the silent
    // SIGPIPE death every shell pipeline expects. (Here the tests run from a systemd service,
    // which ignores SIGPIPE too: berth is spawned with it reset, as Rust's Command does.)
    let rt = Runtime::new();
    let id = harness::unique_id("sd-sigpipe");
    let b = Bundle::new(&["cat", "/proc/self/status"]);
    let out = sd_run(&rt, &b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    rt.track(&id);
    let mask = procfs::process::Status::from_buf_read(stdout(&out).as_bytes())
        .unwrap_or_else(|e| panic!("not /proc/PID/status ({e}): {}", stdout(&out)))
        .sigign;
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE is ignored in the container: {}",
        stdout(&out)
    );
}

/// A create that must fail with `want` in its one error line, leaving nothing.
fn refused(rt: &Runtime, id: &str, b: &Bundle, global: &[&str], want: &str) {
    let mut args: Vec<&str> = global.to_vec();
    args.extend(["create", "--bundle", b.path().to_str().unwrap(), id]);
    let out = rt.berth(&args);
    fails_with_one_line(&out, want);
    assert!(!rt.root.path().join(id).exists(), "state dir of {id} left");
    assert_nothing_of(id);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn bad_systemd_input_names_the_field_and_leaves_nothing() {
    let rt = Runtime::new();
    let id = harness::unique_id("sd-bad");
    let mut b = Bundle::new(&["true"]);
    let sdflag: &[&str] = &["--systemd-cgroup"];

    b.edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice:only-two"));
    refused(&rt, &id, &b, sdflag, "linux.cgroupsPath: \"system.slice:only-two\": with --systemd-cgroup it must be \"slice:prefix:name\"");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("/a/plain/path"));
    refused(&rt, &id, &b, sdflag, "must be \"slice:prefix:name\"");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("a--b.slice:p:x"));
    refused(&rt, &id, &b, sdflag, "invalid slice name \"a--b.slice\"");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice:berth:"));
    refused(
        &rt,
        &id,
        &b,
        sdflag,
        "the name (after the second ':') must not be empty",
    );
    // Without the flag, a slice:prefix:name is no directory.
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{id}")));
    refused(&rt, &id, &b, &[], "needs --systemd-cgroup");

    // A property value systemd refuses: its own words, with the unit named. (cgroup v1 has no
    // linux.resources.unified: there, CPUShares out of systemd's range.)
    let (resources, property) = match fs::metadata("/sys/fs/cgroup/cgroup.controllers") {
        Ok(_) => (json!({"unified": {"cpu.weight": "20000"}}), "CPUWeight"),
        Err(_) => (json!({"cpu": {"shares": 1_000_000}}), "CPUShares"),
    };
    b.edit(|c| c["linux"]["resources"] = resources);
    refused(&rt, &id, &b, sdflag, "systemd refused unit \"berth-");
    let out = rt.berth(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert!(stderr(&out).contains(property), "{}", stderr(&out));
    assert_nothing_of(&id);
    b.edit(|c| c["linux"]["resources"] = json!({}));

    // No system bus.
    let out = rt
        .cmd()
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .args(["--systemd-cgroup", "create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = harness::output_within(out, harness::COMMAND_LIMIT);
    fails_with_one_line(
        &out,
        "--systemd-cgroup: cannot reach systemd on the system bus",
    );
    assert!(!rt.root.path().join(&id).exists());
    assert_nothing_of(&id);
}

#[test]
#[ignore = "needs systemd as PID 1: make systemd-test runs it in the systemd guest"]
fn a_unit_that_exists_already_is_refused_and_left_alone() {
    let rt = Runtime::new();
    let first = harness::unique_id("sd-first");
    let second = harness::unique_id("sd-second");
    let path = format!("system.slice:berth:{first}");
    let mut a = Bundle::new(&["sleep", "1000"]);
    a.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = sd_create(&rt, &a, &first);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&first)["pid"].as_i64().unwrap();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let out = rt.berth(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &second,
    ]);
    // As runc: the unit's cgroup already holds the first container's init, which is
    // refused before systemd is asked (systemd would refuse it too: UnitExists).
    fails_with_one_line(&out, "container's cgroup is not empty: 1 process(es) found");
    assert!(!rt.root.path().join(&second).exists());
    // The first container, its unit and cgroup are untouched.
    let unit = format!("berth-{first}.scope");
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    assert_eq!(init_cgroup(pid), format!("/system.slice/{unit}"));
    assert_eq!(rt.status(&first), "created");
    delete_leaving_nothing(&rt, &first, pid);
}

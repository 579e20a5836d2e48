//! `exec`, checked from the host: the new process is in every namespace and the cgroup of
//! the container, sees what the flags or process.json ask for, its exit status comes back,
//! and refused or failed execs leave nothing behind.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::json;

use crate::harness::{self, alive, ns_link, stderr, stdout, Bundle, Runtime};

/// Creates and starts `b` as `id`; returns init's pid.
fn started(rt: &Runtime, b: &Bundle, id: &str) -> i32 {
    let out = rt.create(b, id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = rt.berth(&["start", id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// `exec` in the foreground, capturing the process's output.
fn exec(rt: &Runtime, args: &[&str]) -> Output {
    rt.cmd()
        .arg("exec")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berth exec")
}

/// `exec -d --pid-file`, the process's stdout going to `out`; returns the pid from the file.
fn exec_detached(rt: &Runtime, b: &Bundle, extra: &[&str], id: &str, cmd: &[&str]) -> i32 {
    let pid_file = b
        .path()
        .join(format!("exec-{}.pid", harness::unique_id("p")));
    let out_file = File::create(b.path().join("exec.out")).unwrap();
    let st = rt
        .cmd()
        .args(["exec", "-d", "--pid-file"])
        .arg(&pid_file)
        .args(extra)
        .arg(id)
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(File::create(b.path().join("exec.err")).unwrap())
        .status()
        .unwrap();
    let err = fs::read_to_string(b.path().join("exec.err")).unwrap();
    assert!(st.success(), "exec -d: {err}");
    fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The NSpid of /proc/PID/status: the pid in each PID namespace, outermost first.
fn nspid(pid: i32) -> Vec<i32> {
    harness::status_of(pid)
        .nspid
        .unwrap_or_else(|| panic!("NSpid not in /proc/{pid}/status"))
}

/// The host pids in the container's cgroups (read from the host's cgroup files).
fn cgroup_pids(id: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = harness::cgroup_dirs_named(id)
        .iter()
        .flat_map(|d| {
            fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort();
    pids.dedup();
    pids
}

/// Kills and reaps the detached exec'd processes (children of the test process, a
/// subreaper, as they would be of containerd's shim): a PID 1 cannot finish exiting while a
/// process of its namespace is an unreaped zombie. Then deletes the container.
pub fn finish(rt: &Runtime, id: &str, execd: &[i32], init: i32) {
    for p in execd {
        // SAFETY: kill on a pid the test itself started (through berth exec) and not yet reaped.
        unsafe { libc::kill(*p, libc::SIGKILL) };
        harness::reap(*p);
    }
    rt.delete_force(id);
    harness::reap(init);
    rt.assert_nothing_left(id);
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_init() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execns");
    let init = started(&rt, &b, &id);
    let pid = exec_detached(&rt, &b, &[], &id, &["sleep", "100"]);
    assert!(alive(pid));
    for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user", "time"] {
        assert_eq!(
            ns_link(&pid.to_string(), ns),
            ns_link(&init.to_string(), ns),
            "{ns} namespace of the exec'd process"
        );
    }
    // Not the host's: the container has its own of these.
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_ne!(ns_link(&pid.to_string(), ns), ns_link("self", ns), "{ns}");
    }
    assert_eq!(proc_cgroup(pid), proc_cgroup(init));
    assert!(
        cgroup_pids(&id).contains(&pid),
        "{pid} not in the container's cgroup.procs"
    );
    // In the container's PID namespace (host pid, then the container's), and the same root.
    let nspid = nspid(pid);
    assert_eq!(nspid.len(), 2, "NSpid {nspid:?}");
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        fs::read_link(format!("/proc/{init}/root")).unwrap()
    );
    finish(&rt, &id, &[pid], init);
}

#[test]
fn exec_into_a_user_namespace_container() {
    let rt = Runtime::new();
    let b = crate::namespaces::userns_bundle(&["sleep", "100"], 200000, 65536);
    let id = harness::unique_id("execuserns");
    let init = started(&rt, &b, &id);
    let out = exec(&rt, &[&id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("0\n"), "{text}");
    assert!(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .ends_with(&["0", "200000", "65536"]),
        "{text}"
    );
    let pid = exec_detached(&rt, &b, &[], &id, &["sleep", "100"]);
    assert_eq!(
        ns_link(&pid.to_string(), "user"),
        ns_link(&init.to_string(), "user")
    );
    assert_ne!(ns_link(&pid.to_string(), "user"), ns_link("self", "user"));
    finish(&rt, &id, &[pid], init);
}

#[test]
fn exit_status_and_signals_propagate() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execstatus");
    let init = started(&rt, &b, &id);
    let out = exec(&rt, &[&id, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let out = exec(&rt, &[&id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    // A signal to berth exec reaches the process: sh dies of the relayed SIGTERM.
    let mut child = rt
        .cmd()
        .args(["exec", &id, "sh", "-c", "echo ready; sleep 100"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: kill on the pid of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(128 + libc::SIGTERM));
    finish(&rt, &id, &[], init);
}

#[test]
fn flags_change_what_the_process_sees() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "KEEP=1", "FOO=old"]);
    });
    let id = harness::unique_id("execflags");
    let init = started(&rt, &b, &id);
    let show = "echo $FOO $KEEP; pwd; id -u; id -g; id -G; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status";
    let plain = exec(&rt, &[&id, "sh", "-c", show]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let plain = stdout(&plain);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(&lines[..3], ["old 1", "/", "0"], "{plain}");
    assert!(plain.contains("NoNewPrivs:\t0"), "{plain}");

    let out = exec(
        &rt,
        &[
            "-e",
            "FOO=new",
            "--cwd",
            "/etc",
            "-u",
            "1000:1001",
            "-g",
            "4242",
            "--no-new-privs",
            &id,
            "sh",
            "-c",
            show,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..4], ["new 1", "/etc", "1000", "1001"], "{text}");
    assert!(lines[4].split_whitespace().any(|g| g == "4242"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    // A non-root user keeps no effective capabilities of the config's.
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");

    // --cap adds to the effective set: CAP_SYS_ADMIN is bit 21.
    let cap_eff = |out: &str| {
        let hex = out
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:\t"))
            .unwrap()
            .to_string();
        u64::from_str_radix(&hex, 16).unwrap()
    };
    let before = cap_eff(&plain);
    assert_eq!(
        before & (1 << 21),
        0,
        "the default config has no CAP_SYS_ADMIN"
    );
    let out = exec(&rt, &["--cap", "CAP_SYS_ADMIN", &id, "sh", "-c", show]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cap_eff(&stdout(&out)), before | (1 << 21));
    // The host's /dev/null was the stdio of the --user exec: never chowned.
    use std::os::unix::fs::MetadataExt;
    let null = fs::metadata("/dev/null").unwrap();
    assert_eq!((null.uid(), null.gid()), (0, 0));
    finish(&rt, &id, &[], init);
}

#[test]
fn process_json_as_containerd_sends_it() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execjson");
    let init = started(&rt, &b, &id);
    let mut process = b.config["process"].clone();
    process["args"] = json!(["sh", "-c", "echo $FROMJSON; pwd; sleep 100"]);
    process["env"] = json!(["PATH=/bin", "FROMJSON=yes"]);
    process["cwd"] = json!("/proc");
    let file = b.path().join("process.json");
    fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let pid = exec_detached(&rt, &b, &["--process", file.to_str().unwrap()], &id, &[]);
    assert!(alive(pid), "the pid file must name the live process");
    let nspid = nspid(pid);
    let in_container = *nspid.last().unwrap();
    assert!(in_container > 1, "NSpid {nspid:?}");
    assert_eq!(
        ns_link(&pid.to_string(), "pid"),
        ns_link(&init.to_string(), "pid")
    );
    // Output arrives once the shell has run its first commands.
    let out = b.path().join("exec.out");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fs::read_to_string(&out).unwrap().lines().count() < 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(fs::read_to_string(&out).unwrap(), "yes\n/proc\n");
    finish(&rt, &id, &[pid], init);
}

#[test]
fn exec_into_a_created_container() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execcreated");
    assert!(rt.create(&b, &id, &[]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = exec(&rt, &[&id, "sh", "-c", "echo in; hostname"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().next(), Some("in"));
    assert_eq!(rt.status(&id), "created");
    finish(&rt, &id, &[], init);
}

#[test]
fn missing_binary_paused_stopped_and_unknown_are_refused() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execrefused");
    let init = started(&rt, &b, &id);
    let before = cgroup_pids(&id);

    let out = exec(&rt, &[&id, "no-such-binary", "x"]);
    harness::fails_with_one_line(&out, "process.args[0]: exec \"no-such-binary\"");
    // As runc: every exec that fails exits 255, so it is told apart from the process's own
    // status (1 here would look like the process's).
    assert_eq!(out.status.code(), Some(255));
    let out = exec(&rt, &["-d", &id, "/bin/no-such-binary"]);
    harness::fails_with_one_line(&out, "process.args[0]");
    assert_eq!(cgroup_pids(&id), before, "a failed exec left a process");

    assert!(rt.berth(&["pause", &id]).status.success());
    let out = exec(&rt, &[&id, "true"]);
    harness::fails_with_one_line(&out, "cannot exec in a paused container");
    assert!(rt.berth(&["resume", &id]).status.success());
    assert_eq!(cgroup_pids(&id), before);

    let out = exec(&rt, &["no-such-container", "true"]);
    harness::fails_with_one_line(&out, "container \"no-such-container\" does not exist");
    let out = exec(&rt, &[&id]);
    harness::fails_with_one_line(&out, "no command given");
    // As runc: an unknown name is a warning, and the process runs without it.
    let out = exec(
        &rt,
        &["--cap", "CAP_BOGUS", "--cap", "CAP_CHOWN", &id, "true"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ignoring unknown or unavailable capabilities: [CAP_BOGUS]"),
        "{}",
        stderr(&out)
    );
    let out = exec(&rt, &["--process", "/nonexistent.json", &id]);
    harness::fails_with_one_line(&out, "--process /nonexistent.json");
    assert_eq!(out.status.code(), Some(255));
    let out = exec(&rt, &["no-such-container", "true"]);
    assert_eq!(out.status.code(), Some(255));

    assert!(rt.berth(&["kill", &id, "KILL"]).status.success());
    harness::reap(init);
    let out = exec(&rt, &[&id, "true"]);
    harness::fails_with_one_line(&out, "cannot exec in a stopped container");
    finish(&rt, &id, &[], 0);
}

#[test]
fn seccomp_and_fd_hygiene_apply_to_exec() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
    });
    let id = harness::unique_id("execseccomp");
    let init = started(&rt, &b, &id);
    let out = exec(&rt, &[&id, "sh", "-c", "mkdir /dev/shm/d; echo rc=$?"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("Function not implemented") && text.contains("rc=1"),
        "{text}"
    );
    // Only stdio (and ls's own directory fd) are open in the exec'd process.
    let extra = File::open("/dev/null").unwrap();
    let out = rt
        .cmd()
        .args(["exec", &id, "ls", "/proc/self/fd"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    drop(extra);
    let fds: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{}", stderr(&out));
    assert!(Path::new(&format!("/proc/{init}")).exists());
    finish(&rt, &id, &[], init);
}

#[test]
fn preserved_fds_reach_the_exec_process_and_nothing_else_does() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execfds");
    started(&rt, &b, &id);
    let fd3 = b.path().join("fd3");
    fs::write(&fd3, "from-the-host\n").unwrap();
    let show = "ls /proc/self/fd | sort -n | tr '\\n' ' '; cat <&3";
    let run = |extra: &[&str]| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"f=$1; shift; exec 3<"$f"; exec "$@""#)
            .arg("sh")
            .arg(&fd3)
            .arg(harness::BERTH)
            .arg("--root")
            .arg(rt.root.path())
            .arg("exec")
            .args(extra)
            .args([id.as_str(), "sh", "-c", show])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--preserve-fds", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 0-2, the preserved 3, and the fd ls opens to read the directory.
    assert_eq!(stdout(&out), "0 1 2 3 4 from-the-host\n");
    let out = run(&[]);
    assert_eq!(stdout(&out), "0 1 2 3 ", "{}", stderr(&out));
    rt.delete_force(&id);
}

#[test]
fn ignore_paused_lets_exec_into_a_paused_container_run_once_resumed() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execpaused");
    started(&rt, &b, &id);
    let out = rt.berth(&["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    // Joining the frozen cgroup freezes the new process too, until `resume`.
    let child = rt
        .cmd()
        .args(["exec", "--ignore-paused", &id, "echo", "ran"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = rt.berth(&["resume", &id]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    rt.delete_force(&id);
}

/// /proc/PID/cgroup read from the host: (controllers, path) per hierarchy, in the kernel's
/// order ("" for cgroup2).
fn proc_cgroup(pid: i32) -> Vec<(String, String)> {
    harness::cgroups_of_process(pid)
        .into_iter()
        .map(|g| (g.controllers.join(","), g.pathname))
        .collect()
}

/// The container's cgroup directory on the v1 hierarchy of `ctrl` (mounted, as on Debian,
/// at a directory named after its controllers, e.g. /sys/fs/cgroup/cpu,cpuacct).
fn v1_dir_of(id: &str, ctrl: &str) -> std::path::PathBuf {
    harness::cgroup_dirs_named(id)
        .into_iter()
        .find(|d| {
            d.parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n.to_string_lossy().split(',').any(|c| c == ctrl))
        })
        .unwrap_or_else(|| panic!("no {ctrl} cgroup of {id}"))
}

/// Makes the sub-cgroup `name` of cgroup `dir`, as a user would before `exec --cgroup`: a
/// new v1 cpuset cgroup has no cpus or mems, and no process could join it until given some.
fn make_sub_cgroup(dir: &std::path::Path, name: &str) {
    let sub = dir.join(name);
    fs::create_dir(&sub).unwrap();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if sub.join(file).exists() && !sub.join("cgroup.controllers").exists() {
            fs::write(sub.join(file), fs::read(dir.join(file)).unwrap()).unwrap();
        }
    }
}

/// Detached exec'd processes (children of the test process) to kill and reap if the test
/// fails before `finish`: the harness's `delete --force` would otherwise wait forever for an
/// init that cannot finish exiting while they are unreaped zombies of its namespace.
pub struct ReapOnPanic(pub Vec<i32>);

impl Drop for ReapOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.0 {
                // SAFETY: kill on a pid the test started and has not reaped, so not reused.
                unsafe { libc::kill(*p, libc::SIGKILL) };
                harness::reap(*p);
            }
        }
    }
}

#[test]
fn cgroup_flag_runs_the_process_in_sub_cgroups() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execcg");
    let init = started(&rt, &b, &id);
    let v2 = crate::cgroups::v2_host();
    let base = proc_cgroup(init);
    // `sub` below the container's cgroup on every hierarchy (cgroup2's on a hybrid host too).
    for d in harness::cgroup_dirs_named(&id) {
        make_sub_cgroup(&d, "sub");
    }

    // A plain path: every hierarchy's sub-cgroup.
    let mut execd = ReapOnPanic(Vec::new());
    let all = exec_detached(&rt, &b, &["--cgroup", "sub"], &id, &["sleep", "100"]);
    execd.0.push(all);
    let want: Vec<_> = base
        .iter()
        .map(|(c, p)| (c.clone(), format!("{p}/sub")))
        .collect();
    assert_eq!(proc_cgroup(all), want, "--cgroup sub");
    // A leading '/' is the container's cgroup, not the hierarchy's root.
    let top = exec_detached(&rt, &b, &["--cgroup", "/"], &id, &["sleep", "100"]);
    execd.0.push(top);
    assert_eq!(proc_cgroup(top), base, "--cgroup /");

    if v2 {
        // One hierarchy: a controller prefix has nothing to select (runc ignores it).
        let out = exec(&rt, &["--cgroup", "memory:sub", &id, "true"]);
        harness::fails_with_one_line(
            &out,
            "--cgroup memory:sub: a controller prefix selects a cgroup v1 hierarchy",
        );
    } else {
        make_sub_cgroup(&v1_dir_of(&id, "memory"), "m");
        for ctrl in ["pids", "cpu"] {
            let d = v1_dir_of(&id, ctrl);
            if !d.join("p").exists() {
                make_sub_cgroup(&d, "p"); // cpu may share cpuacct's hierarchy
            }
        }
        let pid = exec_detached(
            &rt,
            &b,
            &["--cgroup", "memory:m", "--cgroup", "pids,cpu:p"],
            &id,
            &["sleep", "100"],
        );
        execd.0.push(pid);
        // The named hierarchies moved; every other one stays in the container's cgroup.
        let want: Vec<_> = base
            .iter()
            .map(|(c, p)| {
                let named = |n: &str| c.split(',').any(|x| x == n);
                let sub = match () {
                    _ if named("memory") => "/m",
                    _ if named("pids") || named("cpu") => "/p",
                    _ => "",
                };
                (c.clone(), format!("{p}{sub}"))
            })
            .collect();
        assert_eq!(
            proc_cgroup(pid),
            want,
            "--cgroup memory:m --cgroup pids,cpu:p"
        );
        assert!(
            want.iter()
                .any(|(c, p)| c == "freezer" && !p.ends_with("/p")),
            "{want:?}"
        );
    }

    // Bad values: one line naming the value, and no process started.
    let before = harness::live_processes_of(&id);
    let missing = if v2 { "nosuch" } else { "memory:nosuch" };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec![missing], format!("--cgroup {missing}: ")),
        (
            vec!["../sub"],
            "--cgroup ../sub: bad sub cgroup path".into(),
        ),
        (
            vec!["/../.."],
            "--cgroup /../..: bad sub cgroup path".into(),
        ),
        (
            vec!["sub", "memory:sub"],
            "--cgroup sub: a path without CONTROLLER:".into(),
        ),
        (
            vec!["memory:sub", "pids,memory:sub"],
            "--cgroup pids,memory:sub: controller memory given more than once".into(),
        ),
        (
            vec!["memory,:sub"],
            "--cgroup memory,:sub: empty controller name".into(),
        ),
        (
            vec!["memory:a:b"],
            "--cgroup memory:a:b: more than one ':'".into(),
        ),
    ];
    for (values, want) in &cases {
        let mut args: Vec<&str> = values.iter().flat_map(|v| ["--cgroup", v]).collect();
        args.extend([id.as_str(), "sh", "-c", "echo ran"]);
        let out = exec(&rt, &args);
        harness::fails_with_one_line(&out, want);
        assert!(out.stdout.is_empty(), "{values:?} ran: {}", stdout(&out));
    }
    if !v2 {
        let out = exec(&rt, &["--cgroup", "whaaat:sub", &id, "true"]);
        harness::fails_with_one_line(&out, "--cgroup whaaat:sub: unknown controller whaaat");
        let out = exec(&rt, &["--cgroup", "memory:nosuch", &id, "true"]);
        let want = format!(
            "adding pid to {}: no such file or directory",
            v1_dir_of(&id, "memory").join("nosuch").display()
        );
        harness::fails_with_one_line(&out, &want);
    }
    assert_eq!(
        harness::live_processes_of(&id),
        before,
        "a refused exec left a process"
    );
    finish(&rt, &id, &std::mem::take(&mut execd.0), init);
}

#[test]
fn a_process_json_without_user_runs_as_root() {
    // runc takes a process with no `user` as 0:0 (containerd's CRI leaves it out at times).
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["process"]["user"] = json!({"uid": 65534, "gid": 65534}));
    let id = harness::unique_id("execnouser");
    let init = started(&rt, &b, &id);
    let file = b.path().join("process.json");
    fs::write(
        &file,
        r#"{"args":["id","-u"],"cwd":"/","env":["PATH=/bin"]}"#,
    )
    .unwrap();
    let out = exec(&rt, &["--process", file.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");
    assert!(rt.berth(&["kill", &id, "KILL"]).status.success());
    harness::reap(init);
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

/// As runc: a HOME that is unset or empty becomes the user's home from the container's
/// /etc/passwd ("/" for a user it does not list), for init and for exec; a set one stays.
#[test]
fn home_is_filled_in_from_passwd_when_unset_or_empty() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "echo \"home=$HOME\"; sleep 100"]);
    b.edit(|c| {
        let env = c["process"]["env"].as_array_mut().unwrap();
        env.retain(|e| !e.as_str().unwrap().starts_with("HOME="));
        env.push(json!("HOME="));
    });
    let id = harness::unique_id("home");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let init_out = loop {
        let text = std::fs::read_to_string(b.path().join("stdout")).unwrap();
        if text.contains('\n') || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(init_out, "home=/root\n");
    for (args, want) in [
        (vec!["exec", &id, "sh", "-c", "echo $HOME"], "/root\n"),
        (
            vec!["exec", "--user", "1000", &id, "sh", "-c", "echo $HOME"],
            "/\n",
        ),
        (
            vec!["exec", "--env", "HOME=/set", &id, "sh", "-c", "echo $HOME"],
            "/set\n",
        ),
        (
            vec!["exec", "--user", "65534", &id, "sh", "-c", "echo $HOME"],
            "/nonexistent\n",
        ),
    ] {
        let out = rt.berth(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "{args:?}");
    }
    rt.delete_force(&id);
}

#[test]
fn exec_pidfd_socket_receives_a_pidfd_of_the_exec_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execpidfd");
    started(&rt, &b, &id);
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let (sock, got) = crate::lifecycle::pidfd_listener(b.path());
    let pid = exec_detached(
        &rt,
        &b,
        &["--pidfd-socket", sock.to_str().unwrap()],
        &id,
        &["sleep", "100"],
    );
    let _reap = ReapOnPanic(vec![pid]);
    let (message, pidfd) = got.join().unwrap();
    assert_eq!(message, "setns", "runc's message for exec");
    assert_eq!(crate::lifecycle::pid_of_pidfd(&pidfd), pid);
    finish(&rt, &id, &[pid], init);
}

#[test]
fn exec_reads_a_process_file_given_as_a_shells_process_substitution() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execfd");
    let init = started(&rt, &b, &id);
    let process = json!({"args": ["echo", "from-fd"], "cwd": "/", "terminal": false});
    // What runc's tests and many scripts do, `exec --process <(echo '{...}')`, made here as a
    // shell makes it (the VMs have no bash): a pipe's read end as fd 63, /dev/fd/63 the path.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut write = File::from(write);
    std::io::Write::write_all(&mut write, process.to_string().as_bytes()).unwrap();
    drop(write);
    let read_fd = std::os::fd::AsRawFd::as_raw_fd(&read);
    // (/dev/fd is a link that udev or systemd makes; the v2 guest's minimal /dev lacks it,
    // and a shell there would name the fd through /proc.)
    let path = match Path::new("/dev/fd").exists() {
        true => "/dev/fd/63",
        false => "/proc/self/fd/63",
    };
    let mut cmd = rt.cmd();
    cmd.args(["exec", "--process", path, &id])
        .stdin(Stdio::null());
    // SAFETY: between fork and exec the closure only calls dup2, which is async-signal-safe;
    // the copy on fd 63 has no close-on-exec flag, so berth inherits it.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            match libc::dup2(read_fd, 63) {
                63 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let out = cmd.output().unwrap();
    drop(read);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "from-fd");
    finish(&rt, &id, &[], init);
}

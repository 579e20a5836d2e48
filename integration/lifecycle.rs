//! Every lifecycle transition, checked from the host: create → created (pid file, init alive
//! and blocked), start → running (the user process execs), stop → stopped, delete → gone.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use procfs::process::{MountInfo, MountOptFields};

use crate::harness::{self, alive, stderr, stdout, Bundle, Runtime};

#[test]
fn create_start_kill_delete() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("lifecycle");
    let pid_file = b.path().join("init.pid");
    let out = rt.create(&b, &id, &["--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.status.success(), "create: {}", stderr(&out));

    // The pid file exists when create returns, and names a live process blocked at the gate.
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], id.as_str());
    assert_eq!(
        state["bundle"],
        fs::canonicalize(b.path()).unwrap().to_str().unwrap()
    );
    assert!(state["created"].as_str().unwrap().ends_with('Z'));
    assert!(alive(pid));
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep", "init must not exec before start");

    let out = rt.berth(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert_eq!(rt.status(&id), "running");
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep", "start must exec process.args");

    let out = rt.berth(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    harness::reap(pid);
    assert_eq!(rt.status(&id), "stopped");
    assert_eq!(rt.state(&id)["pid"], 0);

    let out = rt.berth(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    let out = rt.berth(&["state", &id]);
    harness::assert_fails_with(&out, &format!("container \"{id}\" does not exist"));
}

#[test]
fn process_exits_by_itself_and_status_follows() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = harness::unique_id("exits");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    harness::reap(pid);
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());
}

#[test]
fn delete_of_a_created_container_needs_force() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("delcreated");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // The runtime-spec: deleting a container that is not stopped is an error with no effect.
    let out = rt.berth(&["delete", &id]);
    harness::assert_fails_with(&out, "that is not stopped: created");
    assert!(alive(pid));
    assert_eq!(rt.status(&id), "created");
    rt.delete_force(&id);
    assert!(!alive(pid));
}

#[test]
fn delete_force_kills_a_running_container() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("delforce");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = rt.berth(&["delete", &id]);
    harness::assert_fails_with(&out, "that is not stopped: running");
    assert!(alive(pid));
    rt.delete_force(&id);
    assert!(!alive(pid));
}

#[test]
fn run_returns_the_exit_status() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "echo out; exit 3"]);
    let id = harness::unique_id("runexit");
    let out = rt.run(&b, &id);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");

    // Without a PID namespace the shell is not an init, which would ignore SIGKILL from inside.
    b.edit(|c| {
        c["process"]["args"] = serde_json::json!(["sh", "-c", "kill -9 $$"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let id = harness::unique_id("runsig");
    let out = rt.run(&b, &id);
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = harness::unique_id("keep");
    let out = rt
        .cmd()
        .args(["run", "--keep", "-b"])
        .arg(b.path())
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());
}

#[test]
fn init_is_pid_1_and_hostname_is_set() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo $$; hostname; cat /proc/self/status | grep NoNewPrivs",
    ]);
    b.edit(|c| c["hostname"] = serde_json::json!("box-under-test"));
    let out = rt.run(&b, &harness::unique_id("pid1"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\nbox-under-test\nNoNewPrivs:\t1\n");
}

#[test]
fn process_user_cwd_env_and_rlimits() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "id -u; id -g; id -G; pwd; echo $GREETING; ulimit -n; umask",
    ]);
    b.edit(|c| {
        c["process"]["user"] =
            serde_json::json!({"uid": 1000, "gid": 1001, "additionalGids": [1002, 1003]});
        c["process"]["cwd"] = serde_json::json!("/tmp");
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("GREETING=hi"));
        c["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    });
    let out = rt.run(&b, &harness::unique_id("user"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1000\n1001\n1001 1002 1003\n/tmp\nhi\n256\n0022\n"
    );
}

/// A variable set twice in process.env reaches the process once, with its last value (at
/// the place of that last setting), as runc and Go's os/exec dedupe it.
#[test]
fn a_variable_set_twice_reaches_the_process_once_with_its_last_value() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["env"]);
    b.edit(|c| {
        c["process"]["env"] = serde_json::json!(["ONE=two", "PATH=/usr/bin:/bin", "ONE=three"]);
    });
    let out = rt.run(&b, &harness::unique_id("envonce"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["PATH=/usr/bin:/bin", "ONE=three", "HOME=/root"]);
}

#[test]
fn a_cwd_only_root_can_enter_is_entered_before_the_user_switch() {
    // As runc: process.cwd is entered while berth is still root, so a user who could not
    // enter it still starts there (a volume chowned to someone else, say); for exec too.
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "pwd; ls . >/dev/null 2>&1 || echo cannot-list; id -u",
    ]);
    std::fs::create_dir(b.path().join("rootfs/private")).unwrap();
    std::fs::set_permissions(
        b.path().join("rootfs/private"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    b.edit(|c| {
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        c["process"]["cwd"] = serde_json::json!("/private");
    });
    let out = rt.run(&b, &harness::unique_id("privcwd"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/private\ncannot-list\n1000\n");

    let mut b = Bundle::new(&["sleep", "100"]);
    std::fs::create_dir(b.path().join("rootfs/private")).unwrap();
    std::fs::set_permissions(
        b.path().join("rootfs/private"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    b.edit(|c| c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000}));
    let id = harness::unique_id("privcwdexec");
    assert!(rt.create(&b, &id, &[]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    let out = rt.berth(&["exec", "--cwd", "/private", &id, "pwd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/private\n");
    // A cwd that does not exist still fails, by name.
    let out = rt.berth(&["exec", "--cwd", "/nonexistent", &id, "pwd"]);
    assert!(
        stderr(&out).contains("process.cwd: chdir /nonexistent"),
        "{}",
        stderr(&out)
    );
    rt.delete_force(&id);
    harness::reap(init);
}

#[test]
fn readonly_root_and_masked_paths() {
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo rw || echo ro; cat /proc/kcore | wc -c; touch /proc/sys/x 2>/dev/null || echo sysro",
    ]);
    let out = rt.run(&b, &harness::unique_id("ro"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["ro", "0", "sysro"]
    );
}

#[test]
fn list_shows_containers() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("list");
    assert!(rt.create(&b, &id, &[]).status.success());
    // What is not a container's state dir is not listed: a directory without state.json (a
    // container being deleted) and a stray file.
    std::fs::create_dir(rt.root.path().join("half-gone")).unwrap();
    std::fs::write(rt.root.path().join("stray"), "").unwrap();
    let out = rt.berth(&["list"]);
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("created")),
        "{text}"
    );
    let out = rt.berth(&["list", "-q"]);
    assert_eq!(stdout(&out), format!("{id}\n"));
    let out = rt.berth(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["status"], "created");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    rt.delete_force(&id);
    std::fs::remove_dir(rt.root.path().join("half-gone")).unwrap();
    std::fs::remove_file(rt.root.path().join("stray")).unwrap();
}

#[test]
fn list_fails_for_a_missing_root_it_was_given_but_not_for_a_missing_default() {
    let out = std::process::Command::new(harness::BERTH)
        .args(["--root", "/non-existent-berth-root", "list"])
        .output()
        .unwrap();
    harness::fails_with_one_line(
        &out,
        "--root /non-existent-berth-root: No such file or directory",
    );
    // An unprivileged caller's default root is $XDG_RUNTIME_DIR/berth, missing here.
    let xdg = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(harness::BERTH)
        .args(["list", "-q"])
        .env("XDG_RUNTIME_DIR", xdg.path().join("none"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn an_execve_failure_is_one_line_in_runcs_words() {
    // A script whose #! interpreter is missing: execve's ENOENT, said once (not also by
    // init on the container's stderr, runc #4171), worded as the engines match it.
    let rt = Runtime::new();
    let b = Bundle::new(&["/run.sh"]);
    let script = b.path().join("rootfs/run.sh");
    std::fs::write(&script, "#!/mmnnttbb foo bar\nsh\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = rt.run(&b, &harness::unique_id("execve"));
    harness::fails_with_one_line(
        &out,
        "process.args[0]: exec /run.sh: no such file or directory",
    );
}

#[test]
fn json_log_has_runc_shape() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let out = rt
        .cmd()
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "no-such-container",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert_eq!(
        last["msg"],
        "container \"no-such-container\" does not exist"
    );
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

/// As runc: `--debug` logs what is being done as `level=debug` lines, to stderr or, with
/// `--log`, only to that file, in text or JSON.
#[test]
fn debug_logs_the_steps_to_stderr_or_the_log_file() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("debuglog");
    let out = rt.create_with_globals(&["--debug"], &b, &id, &[]);
    let err = fs::read_to_string(b.path().join("stderr")).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("time=\"")
            && l.contains(" level=debug msg=\"create ")
            && l.contains("waits at the start gate")),
        "{err}"
    );
    let out = rt.berth(&["--debug", "exec", &id, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("level=debug msg=\"exec in "),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    for format in ["text", "json"] {
        let log = dir.path().join(format!("log.{format}"));
        let log_arg = log.to_str().unwrap();
        let out = rt.berth(&[
            "--debug",
            "--log",
            log_arg,
            "--log-format",
            format,
            "exec",
            &id,
            "true",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("debug"),
            "{format}: {}",
            stderr(&out)
        );
        let text = fs::read_to_string(&log).unwrap();
        let debug_lines: Vec<&str> = text
            .lines()
            .filter(|l| match format {
                "json" => serde_json::from_str::<serde_json::Value>(l).unwrap()["level"] == "debug",
                _ => l.contains(" level=debug "),
            })
            .collect();
        assert!(debug_lines.len() >= 2, "{format}: {text}");
    }
    rt.delete_force(&id);
}

#[test]
fn version_has_three_lines() {
    let out = std::process::Command::new(harness::BERTH)
        .arg("--version")
        .output()
        .unwrap();
    let text = stdout(&out);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("berth version "));
    assert!(lines[1].starts_with("commit: "));
    assert!(lines[2].starts_with("spec: 1."));
}

#[test]
fn no_pivot_moves_the_root() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "head -1 /proc/self/mountinfo; ls /bin/busybox"]);
    let id = harness::unique_id("nopivot");
    let out = rt
        .cmd()
        .args(["run", "--no-pivot", "-b"])
        .arg(b.path())
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The root mount is the bundle's rootfs, moved (not pivoted) to /.
    let first = MountInfo::from_line(text.lines().next().unwrap()).unwrap();
    assert!(
        first.root.ends_with("/rootfs") && first.mount_point == Path::new("/"),
        "{first:?}"
    );
    assert!(text.contains("/bin/busybox"));
}

#[test]
fn default_devices_and_dev_symlinks() {
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done",
    ]);
    let out = rt.run(&b, &harness::unique_id("devices"));
    assert!(out.status.success(), "{}", stderr(&out));
    let want = "\
/dev/null character special file 1:3 666
/dev/zero character special file 1:5 666
/dev/full character special file 1:7 666
/dev/random character special file 1:8 666
/dev/urandom character special file 1:9 666
/dev/tty character special file 5:0 666
/dev/fd /proc/self/fd
/dev/stdin /proc/self/fd/0
/dev/stdout /proc/self/fd/1
/dev/stderr /proc/self/fd/2
/dev/ptmx pts/ptmx
";
    assert_eq!(stdout(&out), want);
}

#[test]
fn run_starts_init_over_the_sync_channel_and_create_through_the_exec_fifo() {
    // `run` starts the container itself: no exec fifo is made (nor removed), init waits for
    // `Start` on the sync channel. `create` makes the fifo, which a later `start` opens.
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let bundle = b.path().to_str().unwrap();
    let id = harness::unique_id("gate");
    rt.track(&id);
    let (out, log) =
        harness::strace_berth(&rt, &b, "mknod,mknodat", &["run", "--bundle", bundle, &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!log.contains("exec.fifo"), "run made an exec fifo:\n{log}");
    let id2 = harness::unique_id("gate");
    assert!(rt.create(&b, &id2, &[]).status.success());
    let fifo = rt.root.path().join(&id2).join("exec.fifo");
    assert!(fifo.exists(), "create made no exec fifo");
    assert!(rt.berth(&["start", &id2]).status.success());
    assert!(!fifo.exists(), "start left the exec fifo");
    rt.delete_force(&id2);
}

#[test]
fn an_exec_failure_past_the_start_gate_fails_start_and_run() {
    // The file is executable but no program: execve itself fails, after the gate. Both gates
    // carry init's error back (run: the channel; start: the fifo).
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/notelf"]);
    let notelf = b.path().join("rootfs/bin/notelf");
    fs::write(&notelf, "garbage\n").unwrap();
    fs::set_permissions(&notelf, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let want = "exec /bin/notelf: exec format error";
    let id = harness::unique_id("enoexec");
    let out = rt.run(&b, &id);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "berth: cannot start container \"{id}\": process.args[0]: {want}"
        )),
        "{err}"
    );
    rt.assert_nothing_left(&id);
    let id = harness::unique_id("enoexec");
    assert!(rt.create(&b, &id, &[]).status.success());
    let out = rt.berth(&["start", &id]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot start container \"{id}\": process.args[0]: {want}"
        )),
        "{err}"
    );
    rt.delete_force(&id);
}

#[test]
fn capabilities_oom_score_adj_and_domainname() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["process"]["oomScoreAdj"] = serde_json::json!(421);
        c["domainname"] = serde_json::json!("example.org");
        c["process"]["capabilities"] = serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "inheritable": ["CAP_CHOWN"],
            "ambient": ["CAP_CHOWN"],
        });
    });
    let id = harness::unique_id("caps");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(rt.berth(&["start", &id]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // Read from the host: the exec'd process, not berth's word.
    let status = harness::status_of(pid as i32);
    let (chown, kill, net_raw) = (1u64 << 0, 1u64 << 5, 1u64 << 13);
    assert_eq!(status.capbnd, Some(chown | kill | net_raw));
    assert_eq!(status.capprm, chown | kill);
    // For uid 0 the kernel raises effective to the whole permitted set at exec (runc alike).
    assert_eq!(status.capeff, chown | kill);
    assert_eq!(status.capinh, chown);
    assert_eq!(status.capamb, Some(chown));
    let oom_score_adj = procfs::process::Process::new(pid as i32).and_then(|p| p.oom_score_adj());
    assert_eq!(oom_score_adj.unwrap(), 421);
    let ns_domain = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-u",
            "cat",
            "/proc/sys/kernel/domainname",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&ns_domain).trim(), "example.org");
    rt.delete_force(&id);
}

#[test]
fn namespaced_sysctls_are_set_inside() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
    ]);
    b.edit(|c| {
        c["linux"]["sysctl"] =
            serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"})
    });
    let out = rt.run(&b, &harness::unique_id("sysctl"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n1234\n");
    // The host's values are untouched.
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );
}

#[test]
fn rootfs_propagation_shared_is_applied_after_pivot() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "head -1 /proc/self/mountinfo"]);
    b.edit(|c| c["linux"]["rootfsPropagation"] = serde_json::json!("shared"));
    let out = rt.run(&b, &harness::unique_id("propshared"));
    assert!(out.status.success(), "{}", stderr(&out));
    let root = MountInfo::from_line(stdout(&out).trim_end()).unwrap();
    assert!(
        root.mount_point == Path::new("/")
            && root
                .opt_fields
                .iter()
                .any(|f| matches!(f, MountOptFields::Shared(_))),
        "{root:?}"
    );
}

#[test]
fn without_a_mount_namespace_host_mounts_are_removed_on_delete() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        c.as_object_mut().unwrap().remove("hostname");
        c["linux"].as_object_mut().unwrap().remove("maskedPaths");
        c["linux"].as_object_mut().unwrap().remove("readonlyPaths");
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["type"] != "cgroup" && m["type"] != "sysfs");
    });
    let rootfs = fs::canonicalize(b.path().join("rootfs")).unwrap();
    let mounted = |p: &Path| {
        harness::my_mounts()
            .iter()
            .filter(|m| {
                m.mount_point
                    .as_os_str()
                    .as_bytes()
                    .starts_with(p.as_os_str().as_bytes())
            })
            .count()
    };
    assert_eq!(mounted(&rootfs), 0);
    let id = harness::unique_id("nomntns");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // Shares the host's mount namespace, chrooted into the rootfs, with its mounts on the host.
    assert_eq!(
        harness::ns_link(&pid.to_string(), "mnt"),
        harness::ns_link("self", "mnt")
    );
    assert_eq!(fs::read_link(format!("/proc/{pid}/root")).unwrap(), rootfs);
    assert!(
        mounted(&rootfs) >= 2,
        "rootfs bind and /proc expected on the host"
    );
    rt.delete_force(&id);
    assert_eq!(mounted(&rootfs), 0, "host mounts left after delete");
}

/// `create` and `start` with NOTIFY_SOCKET=`host` in berth's environment. Stderr goes to a
/// file: init inherits it, so a pipe would not reach end-of-file while the container runs.
fn notify_cmd(
    rt: &Runtime,
    b: &Bundle,
    host: &std::path::Path,
    args: &[&str],
) -> std::process::Command {
    let mut cmd = rt.cmd();
    let err = fs::File::create(b.path().join("stderr")).unwrap();
    cmd.env("NOTIFY_SOCKET", host)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err);
    cmd
}

fn bundle_stderr(b: &Bundle) -> String {
    fs::read_to_string(b.path().join("stderr")).unwrap_or_default()
}

#[test]
fn notify_socket_passes_the_containers_ready_on_with_its_pid() {
    use std::os::unix::net::UnixDatagram;
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let host_path = b.path().join("host-notify.sock");
    let host = UnixDatagram::bind(&host_path).unwrap();
    let id = harness::unique_id("notify");
    let bundle = b.path().to_str().unwrap();
    let st = notify_cmd(&rt, &b, &host_path, &["create", "--bundle", bundle, &id])
        .status()
        .unwrap();
    assert!(st.success(), "create: {}", bundle_stderr(&b));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let mut start = notify_cmd(&rt, &b, &host_path, &["start", &id])
        .spawn()
        .unwrap();
    // The container's socket, reached from the host through init's root.
    let inside = format!("/proc/{pid}/root/run/notify/notify.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::path::Path::new(&inside).exists() {
        assert!(Instant::now() < deadline, "no socket at {inside}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let container = UnixDatagram::unbound().unwrap();
    container.send_to(b"STATUS=warming up", &inside).unwrap();
    container
        .send_to(b"STATUS=done\nREADY=1\n", &inside)
        .unwrap();
    let status = start.wait().unwrap();
    assert!(status.success(), "start failed");
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 256];
    let mut got = vec![];
    for _ in 0..2 {
        let n = host.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got, ["READY=1\n".to_string(), format!("MAINPID={pid}\n")]);
    // The user process (exec'd by now) was told where its socket is.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|e| e == b"NOTIFY_SOCKET=/run/notify/notify.sock"),
        "{}",
        String::from_utf8_lossy(&environ)
    );
    rt.delete_force(&id);
}

#[test]
fn notify_socket_start_returns_when_the_container_exits_unready() {
    use std::os::unix::net::UnixDatagram;
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let host_path = b.path().join("host-notify.sock");
    let host = UnixDatagram::bind(&host_path).unwrap();
    let id = harness::unique_id("notifyexit");
    let bundle = b.path().to_str().unwrap();
    let st = notify_cmd(&rt, &b, &host_path, &["create", "--bundle", bundle, &id])
        .status()
        .unwrap();
    assert!(st.success(), "create: {}", bundle_stderr(&b));
    let st = notify_cmd(&rt, &b, &host_path, &["start", &id])
        .status()
        .unwrap();
    assert!(st.success(), "start: {}", bundle_stderr(&b));
    host.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(host.recv(&mut buf).is_err(), "nothing is passed on");
    rt.delete_force(&id);
}

/// create saves state.json twice (before the cgroup exists, and with init's pid). The second
/// save must not force the file to disk: ext4 writes out a file renamed over another at once,
/// which costs a block allocation and, on a disk mounted with discard, a synchronous discard
/// when delete unlinks it. Seen from outside with FIEMAP: the file's data is still delayed.
#[test]
fn state_json_is_replaced_without_forcing_it_to_disk() {
    let rt = Runtime::new();
    let fs_type = nix::sys::statfs::statfs(rt.root.path())
        .unwrap()
        .filesystem_type();
    if fs_type != nix::sys::statfs::EXT4_SUPER_MAGIC {
        eprintln!("skipped: the state root is not on ext4 ({fs_type:?})");
        return;
    }
    let b = Bundle::new(&["true"]);
    let id = harness::unique_id("statefile");
    assert!(rt.create(&b, &id, &[]).status.success());
    let state_json = rt.root.path().join(&id).join("state.json");
    let out = std::process::Command::new("filefrag")
        .arg("-v")
        .arg(&state_json)
        .output()
        .expect("run filefrag (e2fsprogs)");
    let extents = stdout(&out);
    assert!(out.status.success(), "filefrag: {}", stderr(&out));
    // The extent lines ("   0:  0..  0:  0..  0:  0:  last,unknown_loc,delalloc,eof") end
    // with the flags.
    let flags: Vec<&str> = extents
        .lines()
        .filter(|l| l.trim_start().starts_with("0:"))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(
        !flags.is_empty() && flags.iter().all(|f| f.contains("delalloc")),
        "state.json was written out at once:\n{extents}"
    );
    // Replaced atomically all the same: only state.json is in the dir, and it has the pid.
    assert!(rt.state(&id)["pid"].as_i64().unwrap() > 0);
    let mut names: Vec<_> = fs::read_dir(rt.root.path().join(&id))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["exec.fifo", "state.json"]);
    rt.delete_force(&id);
}

#[test]
fn kill_0_checks_that_init_is_alive() {
    // runc's clients send signal 0 as a liveness check: it succeeds while init lives (and
    // sends it nothing), and says "container not running" once it is gone; with --all it
    // is no error on a stopped container whose cgroup is still there, as runc.
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("kill0");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = rt.berth(&["kill", &id, "0"]);
    assert!(
        out.status.success(),
        "kill 0 of a created container: {}",
        stderr(&out)
    );
    assert_eq!(rt.status(&id), "created");
    assert!(alive(pid));
    assert_ne!(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep",
        "kill 0 started the container"
    );

    assert!(rt.berth(&["start", &id]).status.success());
    for args in [&["kill", &id, "0"][..], &["kill", "--all", &id, "0"]] {
        let out = rt.berth(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(rt.status(&id), "running");
        assert!(alive(pid));
    }

    assert!(rt.berth(&["kill", &id, "KILL"]).status.success());
    harness::reap(pid);
    assert_eq!(rt.status(&id), "stopped");
    harness::fails_with_one_line(&rt.berth(&["kill", &id, "0"]), "container not running");
    assert!(
        !harness::cgroup_dirs_named(&id).is_empty(),
        "the stopped container's cgroup is there until delete"
    );
    let out = rt.berth(&["kill", "-a", &id, "0"]);
    assert!(
        out.status.success(),
        "kill -a 0 of a stopped container: {}",
        stderr(&out)
    );
    assert!(rt.berth(&["delete", &id]).status.success());
}

/// How many times the container's process `name` caught the signal (a line per signal).
fn caught(b: &Bundle, name: &str) -> usize {
    fs::read_to_string(b.path().join("rootfs/got").join(name))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn wait_for_counts(b: &Bundle, want: &[(&str, usize)], after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<(&str, usize)> = want.iter().map(|(n, _)| (*n, caught(b, n))).collect();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {after}: signals caught {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_all_delivers_real_time_signals_to_every_process() {
    // Init (PID 1 of the container's PID namespace) and two child shells each trap signal 37
    // (SIGRTMIN+3 with glibc) and log every one they catch; the test reads the logs from the
    // host. `kill` reaches init alone, `kill --all` every process, by each name of it. (Before,
    // --all turned a real-time signal into signal 0 and sent nothing.)
    assert_eq!(libc::SIGRTMIN() + 3, 37);
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "/trap.sh", "init"]);
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false));
    fs::write(
        b.path().join("rootfs/trap.sh"),
        "trap 'echo caught >> /got/'$1 37\n\
         if [ \"$1\" = init ]; then sh /trap.sh child1 & sh /trap.sh child2 & fi\n\
         touch /got/$1.ready\n\
         while :; do sleep 0.05; done\n",
    )
    .unwrap();
    fs::create_dir(b.path().join("rootfs/got")).unwrap();
    let id = harness::unique_id("killrt");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    let names = ["init", "child1", "child2"];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names
        .iter()
        .all(|n| b.path().join(format!("rootfs/got/{n}.ready")).exists())
    {
        assert!(Instant::now() < deadline, "the shells never trapped");
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = rt.berth(&["kill", &id, "RTMIN+3"]);
    assert!(out.status.success(), "kill RTMIN+3: {}", stderr(&out));
    wait_for_counts(
        &b,
        &[("init", 1), ("child1", 0), ("child2", 0)],
        "kill RTMIN+3",
    );
    std::thread::sleep(Duration::from_millis(200));
    wait_for_counts(
        &b,
        &[("init", 1), ("child1", 0), ("child2", 0)],
        "kill RTMIN+3",
    );

    for (round, sig) in ["RTMIN+3", "SIGRTMIN+3", "37", "rtmax-27"]
        .iter()
        .enumerate()
    {
        let out = rt.berth(&["kill", "--all", &id, sig]);
        assert!(out.status.success(), "kill --all {sig}: {}", stderr(&out));
        let n = round + 1;
        wait_for_counts(
            &b,
            &[("init", n + 1), ("child1", n), ("child2", n)],
            &format!("kill --all {sig}"),
        );
    }
    assert_eq!(rt.status(&id), "running");
    assert!(alive(pid));
    rt.delete_force(&id);
}

/// Listens on a fresh unix socket in `dir`; a thread takes one connection and returns the
/// message and the fd it carried.
pub fn pidfd_listener(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    std::thread::JoinHandle<(String, std::os::fd::OwnedFd)>,
) {
    let path = dir.join(harness::unique_id("pidfd.sock"));
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let handle = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let (n, fd) = harness::recv_with_fd(&conn, &mut buf);
        (String::from_utf8_lossy(&buf[..n]).into_owned(), fd)
    });
    (path, handle)
}

/// The pid a pidfd refers to, from the kernel's fdinfo.
pub fn pid_of_pidfd(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .expect("a pidfd (fdinfo has Pid:)")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn pidfd_socket_receives_a_pidfd_of_init_that_can_kill_it() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("pidfdsock");
    let (sock, got) = pidfd_listener(b.path());
    let out = rt.create(&b, &id, &["--pidfd-socket", sock.to_str().unwrap()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (message, pidfd) = got.join().unwrap();
    assert_eq!(message, "standard", "runc's message for init");
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(pid_of_pidfd(&pidfd), init);
    // What a supervisor does with it: a signal through the pidfd stops the container.
    // SAFETY: pidfd_send_signal with a null siginfo, on a pidfd this test owns.
    let r = unsafe {
        use std::os::fd::AsRawFd;
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, 0, "pidfd_send_signal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.status(&id) != "stopped" {
        assert!(Instant::now() < deadline, "still {}", rt.status(&id));
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.delete_force(&id);
}

#[test]
fn pidfd_socket_nobody_listens_on_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("pidfdnone");
    let sock = b.path().join("nobody.sock");
    let out = rt.create(&b, &id, &["--pidfd-socket", sock.to_str().unwrap()]);
    harness::fails_with_one_line(
        &out,
        &format!(
            "--pidfd-socket {}: connect: No such file or directory",
            sock.display()
        ),
    );
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
}

#[test]
fn sigterm_to_a_created_container_stops_it_as_runc_does() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("termcreated");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = rt.berth(&["kill", &id, "TERM"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(init) {
        assert!(
            Instant::now() < deadline,
            "init at the start gate ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rt.status(&id), "stopped");
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

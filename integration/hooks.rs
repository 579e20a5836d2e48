//! OCI hooks seen from outside: each kind runs at its point of the lifecycle, in its
//! namespace, in the order listed, with the container's state on stdin; failures and
//! timeouts of the create-time and startContainer hooks fail the operation and leave nothing,
//! a poststart failure fails `start` and destroys the container (runtime-spec 1.3), poststop
//! failures are warnings.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{self, stderr, Bundle, Runtime};

/// A hook that appends "NAME MNTNS STATE-JSON" to `log` (a path as the hook resolves it).
fn logging_hook(name: &str, log: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$NAME $(readlink /proc/self/ns/mnt) $(cat)\" >> {}", log.display())],
        "env": [format!("NAME={name}")],
    })
}

/// Lines of a hook log: (name, mount namespace, state).
fn read_log(path: &Path) -> Vec<(String, String, Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let name = parts.next().unwrap().to_string();
            let ns = parts.next().unwrap().to_string();
            let state: Value = serde_json::from_str(parts.next().unwrap()).unwrap();
            (name, ns, state)
        })
        .collect()
}

fn host_mnt_ns() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn hooks_run_in_the_bundle_the_rootfs_or_the_processs_cwd_as_runc_runs_them() {
    // The host's hooks from the bundle directory (runc runs from there), createContainer
    // from the rootfs (runc's init has moved there), startContainer from process.cwd.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let log = b.path().join("cwd.log");
    let cwd_hook = |name: &str, log: &Path| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(pwd) >> {}", log.display())]});
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["cwd"] = json!("/tmp");
        c["hooks"] = json!({
            "createRuntime": [cwd_hook("createRuntime", &log)],
            "createContainer": [cwd_hook("createContainer", &log)],
            "startContainer": [cwd_hook("startContainer", Path::new("/start.log"))],
            "prestart": [cwd_hook("prestart", &log)],
            "poststart": [cwd_hook("poststart", &log)],
            "poststop": [cwd_hook("poststop", &log)],
        });
    });
    let id = harness::unique_id("hookcwd");
    // berth itself somewhere else entirely.
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        rt.cmd()
            .args(args)
            .current_dir(elsewhere.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            // A file: create's stdio goes on to init, which would hold a pipe open.
            .stderr(std::fs::File::create(b.path().join("stderr")).unwrap())
            .status()
            .unwrap()
    };
    let err = || std::fs::read_to_string(b.path().join("stderr")).unwrap();
    rt.track(&id);
    let out = run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.success(), "create: {}", err());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = run(&["start", &id]);
    assert!(out.success(), "start: {}", err());
    harness::reap(init);
    let out = run(&["delete", &id]);
    assert!(out.success(), "delete: {}", err());
    let (bundle, rootfs) = (b.path().display(), b.path().join("rootfs"));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "prestart {bundle}\ncreateRuntime {bundle}\ncreateContainer {}\npoststart {bundle}\npoststop {bundle}\n",
            rootfs.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("start.log")).unwrap(),
        "startContainer /tmp\n"
    );
}

#[test]
fn every_kind_runs_at_its_point_in_order_with_the_state() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "touch /ran; sleep 100"]);
    let log = b.path().join("hooks.log");
    // startContainer resolves its path and log inside the container, after pivot_root.
    let b_path = b.path().to_path_buf();
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["annotations"] = json!({"org.example/k": "v"});
        c["hooks"] = json!({
            "prestart": [logging_hook("prestart1", &log), logging_hook("prestart2", &log)],
            "createRuntime": [logging_hook("createRuntime", &log)],
            "createContainer": [logging_hook("createContainer", &log)],
            "startContainer": [logging_hook("startContainer", Path::new("/start.log"))],
            "poststart": [logging_hook("poststart", &log)],
            "poststop": [logging_hook("poststop", &log)],
        });
    });
    let id = harness::unique_id("hooks");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let container_ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let names = |log: &[(String, String, Value)]| -> Vec<String> {
        log.iter().map(|(n, _, _)| n.clone()).collect()
    };
    let created = read_log(&log);
    // prestart runs during create, before createRuntime (config.md since runtime-spec 1.1,
    // as runc; 1.0 had it at `start`).
    assert_eq!(
        names(&created),
        ["prestart1", "prestart2", "createRuntime", "createContainer"]
    );
    assert!(!b_path.join("rootfs/start.log").exists());

    let out = rt.berth(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let started = read_log(&log);
    assert_eq!(names(&started)[4..], ["poststart"]);
    let in_container = read_log(&b_path.join("rootfs/start.log"));
    assert_eq!(names(&in_container), ["startContainer"]);

    let out = rt.berth(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.status(&id) != "stopped" {
        assert!(Instant::now() < deadline, "never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = rt.berth(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    let all = read_log(&log);
    assert_eq!(names(&all)[5..], ["poststop"]);

    let host = host_mnt_ns();
    for (name, ns, state) in all.iter().chain(in_container.iter()) {
        let want_status = match name.as_str() {
            "startContainer" => "created",
            "poststart" => "running",
            "poststop" => "stopped",
            _ => "creating",
        };
        assert_eq!(state["status"], want_status, "{name}: {state}");
        assert_eq!(state["id"], json!(id), "{name}");
        assert_eq!(state["pid"], json!(pid), "{name}");
        assert_eq!(state["bundle"], json!(b_path), "{name}");
        assert_eq!(state["annotations"]["org.example/k"], "v", "{name}");
        // The runtime's namespace for prestart, createRuntime, poststart and poststop; the
        // container's for createContainer and startContainer.
        let want_ns =
            if name.starts_with("create") && name != "createRuntime" || name == "startContainer" {
                &container_ns
            } else {
                &host
            };
        assert_eq!(ns, want_ns, "{name} ran in the wrong mount namespace");
    }
    assert!(b_path.join("rootfs/ran").exists());
    rt.assert_nothing_left(&id);
}

#[test]
fn a_failing_prestart_hook_fails_create_runs_poststop_and_leaves_nothing() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["touch", "/ran"]);
    let log = b.path().join("hooks.log");
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["hooks"] = json!({
            "prestart": [
                {"path": "/bin/sh", "args": ["sh", "-c", "echo no good >&2; exit 7"]},
                logging_hook("never", &log),
            ],
            "poststop": [logging_hook("poststop", &log)],
        });
    });
    let id = harness::unique_id("prestartfail");
    // During create (runtime-spec 1.1+, as runc): create fails, and there is nothing to start.
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        "error running prestart hook #0: hooks.prestart[0] (/bin/sh): exit status 7; stderr: no good",
    );
    // The container is stopped and undone: `state` no longer knows it.
    assert!(!rt.berth(&["state", &id]).status.success());
    assert!(!rt.berth(&["start", &id]).status.success());
    harness::reap_failed_inits();
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
    let ran: Vec<String> = read_log(&log).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(ran, ["poststop"]);
    assert!(!b.path().join("rootfs/ran").exists());
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails_create() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["hooks"] = json!({"createContainer": [
            {"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}
        ]});
    });
    let id = harness::unique_id("hooktimeout");
    let started = Instant::now();
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        "hooks.createContainer[0] (/bin/sleep): timed out after 1s and was killed",
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    harness::reap_failed_inits();
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
}

#[test]
fn a_failing_start_container_hook_fails_start_and_the_process_never_runs() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["touch", "/ran"]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["hooks"] = json!({"startContainer": [{"path": "/bin/false", "args": ["false"]}]});
    });
    let id = harness::unique_id("startfail");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = rt.berth(&["start", &id]);
    harness::fails_with_one_line(&out, "hooks.startContainer[0] (/bin/false): exit status 1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.status(&id) != "stopped" {
        assert!(Instant::now() < deadline, "never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!b.path().join("rootfs/ran").exists());
    let out = rt.berth(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    rt.assert_nothing_left(&id);
}

#[test]
fn a_failing_poststart_hook_fails_start_and_the_container_is_destroyed() {
    // runtime-spec 1.3: an error, the container stopped and undone (the poststop hooks
    // still run), and the hooks after the failing one do not run.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    let log = b.path().join("hooks.log");
    b.edit(|c| {
        c["hooks"] = json!({
            "poststart": [logging_hook("poststart", &log), {"path": "/bin/false"},
                          logging_hook("poststart-after", &log)],
            "poststop": [logging_hook("poststop", &log)],
        });
    });
    let id = harness::unique_id("poststartfail");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let init: i32 = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = rt.berth(&["start", &id]);
    harness::fails_with_one_line(
        &out,
        "error running poststart hook #1: hooks.poststart[1] (/bin/false): exit status 1",
    );
    assert!(!rt.berth(&["state", &id]).status.success());
    harness::reap_failed_inits();
    assert!(!harness::alive(init), "init {init} still runs");
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
    let ran: Vec<String> = read_log(&log).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(ran, ["poststart", "poststop"]);

    // `run` the same: non-zero, nothing left.
    let id = harness::unique_id("poststartrun");
    let out = rt.run(&b, &id);
    harness::fails_with_one_line(&out, "hooks.poststart[1] (/bin/false): exit status 1");
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
}

#[test]
fn a_start_container_hook_without_env_gets_the_processs_environment() {
    // As runc has always done: a startContainer hook with no `env` of its own sees the
    // container process's (HOME filled in); one with `env` sees only that.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["env"] = json!(["PATH=/bin", "ONE=two"]);
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"$ONE $HOME\" > /inherited"]},
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"${ONE-unset} $MINE\" > /own"],
             "env": ["MINE=mine"]},
        ]});
    });
    let out = rt.run(&b, &harness::unique_id("starthookenv"));
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |f: &str| std::fs::read_to_string(b.path().join("rootfs").join(f)).unwrap();
    assert_eq!(read("inherited"), "two /root\n");
    assert_eq!(read("own"), "unset mine\n");
}

#[test]
fn poststop_failures_are_warnings() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let log = b.path().join("hooks.log");
    b.edit(|c| {
        c["hooks"] = json!({
            "poststop": [{"path": "/bin/false"}, logging_hook("poststop", &log)],
        });
    });
    let id = harness::unique_id("postfail");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("hooks.poststop[0] (/bin/false): exit status 1"),
        "{err}"
    );
    let ran: Vec<String> = read_log(&log).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(ran, ["poststop"]);
    rt.assert_nothing_left(&id);
}

#[test]
fn a_relative_hook_path_is_refused_by_name() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["hooks"] = json!({"poststop": [{"path": "bin/true"}]}));
    let id = harness::unique_id("relhook");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        "config.json: hooks.poststop[0].path: bin/true must be absolute",
    );
    rt.assert_nothing_left(&id);
}

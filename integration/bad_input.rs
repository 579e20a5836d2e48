//! Bad input: one clear line naming the field or path, a non-zero exit, and nothing left
//! behind (no state dir, no cgroup, no mount, no process).

use std::fs;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::harness::{self, alive, stderr, Bundle, Runtime};

/// Creates `id` from `b`, expects failure with `want` in the message and nothing left.
fn create_fails(rt: &Runtime, b: &Bundle, id: &str, want: &str) {
    let out = rt.create(b, id, &[]);
    assert!(!out.status.success(), "create of {id} succeeded");
    let err = stderr(&out);
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one error line expected: {err}"
    );
    rt.assert_nothing_left(id);
}

#[test]
fn missing_bundle_and_config() {
    let rt = Runtime::new();
    let id = harness::unique_id("nobundle");
    let out = rt.berth(&["create", "--bundle", "/nonexistent/bundle", &id]);
    harness::assert_fails_with(&out, "bundle /nonexistent/bundle: cannot open");
    rt.assert_nothing_left(&id);

    let b = Bundle::new(&["true"]);
    fs::remove_file(b.path().join("config.json")).unwrap();
    create_fails(
        &rt,
        &b,
        &harness::unique_id("noconfig"),
        "config.json: cannot read",
    );
}

/// A bundle running `args` whose config `edit` breaks; create must fail with `want`.
fn config_fails(
    rt: &Runtime,
    name: &str,
    args: &[&str],
    edit: impl FnOnce(&mut Value),
    want: &str,
) {
    let mut b = Bundle::new(args);
    b.edit(edit);
    create_fails(rt, &b, &harness::unique_id(name), want);
}

#[test]
fn invalid_json() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    fs::write(
        b.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}",
    )
    .unwrap();
    create_fails(&rt, &b, &harness::unique_id("badjson"), "line 3 column 3");
}

#[test]
fn bad_config_fields_are_named() {
    let rt = Runtime::new();
    let t = &["true"];
    config_fails(
        &rt,
        "badtype",
        t,
        |c| c["process"]["args"] = json!("true"),
        "config.json: process.args:",
    );
    config_fails(
        &rt,
        "version",
        t,
        |c| c["ociVersion"] = json!("2.0.0"),
        "ociVersion: \"2.0.0\" is not supported",
    );
    config_fails(
        &rt,
        "noargs",
        t,
        |c| c["process"]["args"] = json!([]),
        "config.json: process.args: must not be empty",
    );
    config_fails(
        &rt,
        "noroot",
        t,
        |c| c["root"]["path"] = json!("no-such-rootfs"),
        "config.json: root.path:",
    );
    config_fails(
        &rt,
        "sysctl",
        t,
        |c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}),
        "linux.sysctl: \"vm.swappiness\" is not namespaced",
    );
}

#[test]
fn executable_not_found_fails_create() {
    let rt = Runtime::new();
    config_fails(
        &rt,
        "noexe",
        &["/no/such/binary"],
        |_| {},
        "process.args[0]: exec \"/no/such/binary\"",
    );
    config_fails(
        &rt,
        "nocmd",
        &["no-such-cmd"],
        |_| {},
        "executable file not found in $PATH",
    );
}

#[test]
fn a_mount_failing_inside_init_names_the_entry() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}))
    });
    let index = b.config["mounts"].as_array().unwrap().len() - 1;
    create_fails(
        &rt,
        &b,
        &harness::unique_id("badmount"),
        &format!("mounts[{index}] (/mnt/x): mount nosuchfs"),
    );
}

#[test]
fn invalid_ids() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    for id in ["", "..", "a/b", "a b", "../escape"] {
        let out = rt
            .cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "id {id:?} accepted");
        assert!(
            stderr(&out).contains("invalid container ID"),
            "{id:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        fs::read_dir(rt.root.path()).map(|d| d.count()).unwrap_or(0),
        0
    );
    assert!(!b.path().parent().unwrap().join("escape").exists());
}

#[test]
fn duplicate_id_leaves_the_first_untouched() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("dup");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = rt.create(&b, &id, &[]);
    harness::assert_fails_with(&out, &format!("container \"{id}\" already exists"));
    assert_eq!(rt.status(&id), "created");
    assert_eq!(rt.state(&id)["pid"], pid);
    assert!(alive(pid));
    assert!(
        !harness::cgroup_dirs_named(&id).is_empty(),
        "the first container's cgroup was removed"
    );
    rt.delete_force(&id);
}

#[test]
fn start_of_a_container_that_is_not_created() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("startrunning");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let out = rt.berth(&["start", &id]);
    harness::assert_fails_with(&out, "it is running, not created");
    assert_eq!(rt.status(&id), "running");
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["kill", &id, "9"]).status.success());
    harness::reap(pid);
    let out = rt.berth(&["start", &id]);
    assert!(
        stderr(&out).contains("it is stopped, not created"),
        "{}",
        stderr(&out)
    );
    assert!(rt.berth(&["delete", &id]).status.success());
}

#[test]
fn start_fails_at_once_when_init_died() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("initdied");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) on the container's init pid, which the test just read from state.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    harness::reap(pid);
    let out = rt.berth(&["start", &id]);
    harness::assert_fails_with(&out, "it is stopped, not created");
    assert!(rt.berth(&["delete", &id]).status.success());
}

#[test]
fn kill_with_unknown_signal_and_of_stopped_container() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("killsig");
    assert!(rt.create(&b, &id, &[]).status.success());
    for sig in ["SIGBOGUS", "0", "99"] {
        let out = rt.berth(&["kill", &id, sig]);
        assert!(!out.status.success(), "signal {sig} accepted");
        assert!(stderr(&out).contains("unknown signal"), "{}", stderr(&out));
    }
    assert_eq!(rt.status(&id), "created");
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["kill", &id, "KILL"]).status.success());
    harness::reap(pid);
    let out = rt.berth(&["kill", &id, "KILL"]);
    harness::assert_fails_with(&out, "container not running");
    assert!(rt.berth(&["delete", &id]).status.success());
}

#[test]
fn unknown_container_wording() {
    let rt = Runtime::new();
    let id = "berth-test-never-created";
    for args in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id, "9"],
        vec!["delete", id],
    ] {
        let out = rt.berth(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains(&format!("container \"{id}\" does not exist")),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // runc: delete --force of a container that is already gone is not an error.
    assert!(rt.berth(&["delete", "--force", id]).status.success());
}

//! Bad input: one clear line naming the field or path, a non-zero exit, and nothing left
//! behind (no state dir, no cgroup, no mount, no process).

use std::fs;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::harness::{
    self, alive, assert_no_mount_under, assert_no_process_of, fails_with_one_line,
    reap_failed_inits, stderr, Bundle, Runtime,
};

/// Everything a failed create must not leave: state dir, cgroups, mounts (by id and under the
/// bundle), processes.
fn assert_nothing_left(rt: &Runtime, b: &Bundle, id: &str) {
    rt.assert_nothing_left(id);
    assert_no_mount_under(b.path());
    assert_no_process_of(id);
    reap_failed_inits();
}

/// Creates `id` from `b`, expects one error line with `want` and nothing left.
fn create_fails(rt: &Runtime, b: &Bundle, id: &str, want: &str) -> String {
    let out = rt.create(b, id, &[]);
    fails_with_one_line(&out, want);
    assert_nothing_left(rt, b, id);
    stderr(&out)
}

/// A bundle running `args` whose config `edit` breaks; create must fail with `want`.
fn config_fails(
    rt: &Runtime,
    name: &str,
    args: &[&str],
    edit: impl FnOnce(&mut Value),
    want: &str,
) -> String {
    let mut b = Bundle::new(args);
    b.edit(edit);
    create_fails(rt, &b, &harness::unique_id(name), want)
}

fn pid_of(rt: &Runtime, id: &str) -> i32 {
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

#[test]
fn missing_bundle_dir() {
    let rt = Runtime::new();
    let id = harness::unique_id("nobundle");
    let out = rt.berth(&["create", "--bundle", "/nonexistent/bundle", &id]);
    fails_with_one_line(&out, "bundle /nonexistent/bundle: cannot open");
    rt.assert_nothing_left(&id);
    assert_no_process_of(&id);

    // A file where the bundle directory should be.
    let b = Bundle::new(&["true"]);
    let file = b.path().join("config.json");
    let id = harness::unique_id("bundlefile");
    let out = rt
        .cmd()
        .args(["create", "--bundle"])
        .arg(&file)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fails_with_one_line(&out, &format!("bundle {}: not a directory", file.display()));
    rt.assert_nothing_left(&id);
    assert_no_process_of(&id);
}

#[test]
fn missing_config_json() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    fs::remove_file(b.path().join("config.json")).unwrap();
    let err = create_fails(
        &rt,
        &b,
        &harness::unique_id("noconfig"),
        "config.json: cannot read",
    );
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn invalid_json_has_line_and_column() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    fs::write(
        b.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}",
    )
    .unwrap();
    let err = create_fails(&rt, &b, &harness::unique_id("badjson"), "line 3 column 3");
    assert!(err.starts_with("berth: config.json: "), "{err}");

    // Truncated JSON: the error is at the end, and names the array it was in.
    fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [",
    )
    .unwrap();
    create_fails(
        &rt,
        &b,
        &harness::unique_id("truncjson"),
        "config.json: process.args: EOF while parsing a list at line 1 column 45",
    );
}

#[test]
fn json_syntax_errors_name_no_placeholder_path() {
    // serde_path_to_error reports "?" for a position it cannot name (a syntax error where a
    // key should be); "config.json: ?: ..." names no field, so it must not reach the user.
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    for (name, text, want) in [
        (
            "badkey",
            "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}",
            "line 3 column 3",
        ),
        (
            "truncobj",
            "{\"ociVersion\": \"1.0.2\",",
            "line 1 column 23",
        ),
    ] {
        fs::write(b.path().join("config.json"), text).unwrap();
        let err = create_fails(&rt, &b, &harness::unique_id(name), want);
        assert!(err.starts_with("berth: config.json: "), "{err}");
        assert!(!err.contains(": ?:"), "placeholder path in: {err}");
    }
}

#[test]
fn unreadable_config_json() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    // A directory named config.json cannot be read as a file, not even by root.
    fs::remove_file(b.path().join("config.json")).unwrap();
    fs::create_dir(b.path().join("config.json")).unwrap();
    create_fails(
        &rt,
        &b,
        &harness::unique_id("dirconfig"),
        "config.json: cannot read",
    );
}

#[test]
fn wrong_type_names_the_json_path() {
    let rt = Runtime::new();
    let t = &["true"];
    config_fails(
        &rt,
        "badtype",
        t,
        |c| c["process"]["args"] = json!("true"),
        "config.json: process.args: invalid type",
    );
    config_fails(
        &rt,
        "badelem",
        t,
        |c| c["process"]["args"] = json!(["true", 1]),
        "config.json: process.args[1]: invalid type",
    );
    config_fails(
        &rt,
        "baduid",
        t,
        |c| c["process"]["user"]["uid"] = json!("0"),
        "config.json: process.user.uid: invalid type",
    );
    config_fails(
        &rt,
        "badhost",
        t,
        |c| c["hostname"] = json!(5),
        "config.json: hostname: invalid type",
    );
    config_fails(
        &rt,
        "badns",
        t,
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "bogus"}))
        },
        "config.json: linux.namespaces[",
    );
}

#[test]
fn unsupported_oci_version() {
    let rt = Runtime::new();
    config_fails(
        &rt,
        "version",
        &["true"],
        |c| c["ociVersion"] = json!("2.0.0"),
        "config.json: ociVersion: \"2.0.0\" is not supported",
    );
}

#[test]
fn empty_process_args() {
    let rt = Runtime::new();
    let err = config_fails(
        &rt,
        "noargs",
        &["true"],
        |c| c["process"]["args"] = json!([]),
        "config.json: process.args: must not be empty",
    );
    assert_eq!(err, "berth: config.json: process.args: must not be empty\n");
}

#[test]
fn root_path_missing() {
    let rt = Runtime::new();
    let err = config_fails(
        &rt,
        "noroot",
        &["true"],
        |c| c["root"]["path"] = json!("no-such-rootfs"),
        "config.json: root.path:",
    );
    assert!(err.contains("no-such-rootfs"), "{err}");

    // The configured rootfs directory removed from the bundle.
    let b = Bundle::new(&["true"]);
    fs::remove_dir_all(b.path().join("rootfs")).unwrap();
    create_fails(
        &rt,
        &b,
        &harness::unique_id("rootgone"),
        "config.json: root.path:",
    );

    config_fails(
        &rt,
        "rootunset",
        &["true"],
        |c| {
            c.as_object_mut().unwrap().remove("root");
        },
        "config.json: root: must be set",
    );
}

#[test]
fn other_config_fields_are_named() {
    let rt = Runtime::new();
    let t = &["true"];
    config_fails(
        &rt,
        "relcwd",
        t,
        |c| c["process"]["cwd"] = json!("tmp"),
        "config.json: process.cwd:",
    );
    config_fails(
        &rt,
        "sysctl",
        t,
        |c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}),
        "linux.sysctl: \"vm.swappiness\" is not namespaced",
    );
    // Idmapped mounts: what runc refuses, and id maps the kernel would refuse, by field.
    let bind_with = |extra: Value| {
        move |c: &mut Value| {
            let mut m = json!({"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind"]});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c["mounts"].as_array_mut().unwrap().push(m)
        }
    };
    let one = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    config_fails(
        &rt,
        "idmapnons",
        t,
        bind_with(json!({"options": ["rbind", "ridmap"]})),
        "]: an idmapped mount without uidMappings and gidMappings of its own takes the container's user namespace's, and there is none",
    );
    config_fails(
        &rt,
        "idmaphalf",
        t,
        bind_with(json!({"uidMappings": one})),
        "].gidMappings: must be set with uidMappings",
    );
    config_fails(
        &rt,
        "idmaptmpfs",
        t,
        |c| {
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/mnt", "type": "tmpfs",
                "source": "tmpfs", "uidMappings": one, "gidMappings": one}))
        },
        "]: idmapped mounts are only supported for bind mounts",
    );
    let overlapping = json!([{"containerID": 0, "hostID": 1000, "size": 10},
                             {"containerID": 5, "hostID": 5000, "size": 10}]);
    config_fails(
        &rt,
        "idmapoverlap",
        t,
        bind_with(json!({"uidMappings": overlapping, "gidMappings": one})),
        "].uidMappings[1]: its containerID range overlaps",
    );
    config_fails(
        &rt,
        "idmapzero",
        t,
        bind_with(
            json!({"uidMappings": one, "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}]}),
        ),
        "].gidMappings[0].size: must not be 0",
    );
    config_fails(
        &rt,
        "usernsoverlap",
        t,
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536},
                                               {"containerID": 70000, "hostID": 165000, "size": 10}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
        "config.json: linux.uidMappings[1]: its hostID range overlaps linux.uidMappings[0]'s",
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
        "process.args[0]: exec \"no-such-cmd\": executable file not found in $PATH",
    );
}

#[test]
fn errors_from_inside_the_setup_processes_are_reported_with_backtraces_on() {
    // With RUST_BACKTRACE set, an error captures a backtrace where it is made: in create's
    // setup process and init too, which start on a stack of their own. The unwinder must
    // find the end of that stack there (it once read past it and faulted, and create said
    // only "container setup exited without reporting an error"). Where it read depends on
    // the layout, so under several environments, as cargo's own LD_LIBRARY_PATH did.
    let rt = Runtime::new();
    let cases: [(&[&str], &str); 3] = [
        (
            &["/proc/self/exe"],
            "process.args[0]: /proc/self/exe is the berth binary itself",
        ),
        (
            &["/no/such/binary"],
            "process.args[0]: exec \"/no/such/binary\"",
        ),
        (&["no-such-cmd"], "executable file not found in $PATH"),
    ];
    for (args, want) in cases {
        let b = Bundle::new(args);
        for pad in [0, 1, 100, 333, 4000] {
            let id = harness::unique_id("backtrace");
            rt.track_bundle(&id, b.path());
            // Output to files: an init that got through would hold pipes open.
            let stderr_file = b.path().join("stderr");
            let status = rt
                .cmd()
                .args(["create", "--bundle"])
                .arg(b.path())
                .arg(&id)
                .env("RUST_BACKTRACE", "1")
                .env("RUST_LIB_BACKTRACE", "1")
                .env(
                    "LD_LIBRARY_PATH",
                    format!("/nonexistent/{}", "x".repeat(pad)),
                )
                .stdin(Stdio::null())
                .stdout(fs::File::create(b.path().join("stdout")).unwrap())
                .stderr(fs::File::create(&stderr_file).unwrap())
                .status()
                .unwrap();
            let out = std::process::Output {
                status,
                stdout: vec![],
                stderr: fs::read(&stderr_file).unwrap(),
            };
            fails_with_one_line(&out, want);
            assert_nothing_left(&rt, &b, &id);
        }
    }
}

/// A mount entry that fails inside init, appended to the config's mounts; returns its index.
fn add_bad_mount(b: &mut Bundle) -> usize {
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}))
    });
    b.config["mounts"].as_array().unwrap().len() - 1
}

#[test]
fn a_mount_failing_inside_init_names_the_entry() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let index = add_bad_mount(&mut b);
    create_fails(
        &rt,
        &b,
        &harness::unique_id("badmount"),
        &format!("mounts[{index}] (/mnt/x): mount nosuchfs"),
    );
}

#[test]
fn a_dev_null_that_is_not_the_null_device_is_never_used_to_mask() {
    // A config can make /dev/null another device; masking a path with it would expose that
    // device where the masked file was. berth checks /dev/null before the first file it
    // masks, once per container.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 5, "fileMode": 438}
        ]);
        c["linux"]["maskedPaths"] = json!(["/proc/acpi", "/proc/keys", "/proc/timer_list"]);
    });
    create_fails(
        &rt,
        &b,
        &harness::unique_id("notnull"),
        "linux.maskedPaths[1] (/proc/keys): /dev/null is not the null device",
    );
}

#[test]
fn a_mount_failing_without_a_mount_namespace_leaves_no_host_mount() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    // Without a mount namespace the earlier entries (proc, dev, ...) are mounted on the host
    // before the bad one fails: create must take them down again.
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount")
    });
    let index = add_bad_mount(&mut b);
    assert!(index > 0);
    create_fails(
        &rt,
        &b,
        &harness::unique_id("badmounthost"),
        &format!("mounts[{index}] (/mnt/x): mount nosuchfs"),
    );
}

#[test]
fn unwritable_pid_file_fails_create() {
    // The pid file is written after init is ready: create must still undo everything.
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("pidfile");
    let out = rt.create(&b, &id, &["--pid-file", "/nonexistent/dir/init.pid"]);
    fails_with_one_line(&out, "/nonexistent/dir/init.pid");
    assert_nothing_left(&rt, &b, &id);
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
        fails_with_one_line(&out, "invalid container ID");
        // The same check guards every command that takes an ID.
        for cmd in [
            vec!["state", id],
            vec!["start", id],
            vec!["kill", id, "KILL"],
            vec!["delete", "--force", id],
        ] {
            fails_with_one_line(&rt.berth(&cmd), "invalid container ID");
        }
    }
    assert_eq!(
        fs::read_dir(rt.root.path()).map(|d| d.count()).unwrap_or(0),
        0,
        "something was created in the state root"
    );
    assert!(!rt.root.path().parent().unwrap().join("escape").exists());
    assert!(!b.path().parent().unwrap().join("escape").exists());
    assert_no_mount_under(b.path());
}

#[test]
fn duplicate_id_leaves_the_first_untouched() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("dup");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = pid_of(&rt, &id);
    let state_before = fs::read(rt.root.path().join(&id).join("state.json")).unwrap();

    let b2 = Bundle::new(&["true"]);
    let out = rt.create(&b2, &id, &[]);
    fails_with_one_line(&out, &format!("container \"{id}\" already exists"));
    assert_no_mount_under(b2.path());

    assert_eq!(rt.status(&id), "created");
    assert_eq!(pid_of(&rt, &id), pid);
    assert!(alive(pid), "the first container's init died");
    assert_eq!(
        fs::read(rt.root.path().join(&id).join("state.json")).unwrap(),
        state_before,
        "the first container's state changed"
    );
    let cgroups = harness::cgroup_dirs_named(&id);
    assert!(
        !cgroups.is_empty(),
        "the first container's cgroup was removed"
    );
    for dir in &cgroups {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            assert!(
                procs.lines().any(|p| p.trim() == pid.to_string()),
                "init {pid} no longer in {}: {procs:?}",
                dir.display()
            );
        }
    }
    // The leak detector used by these tests sees the container's init.
    assert!(
        harness::live_processes_of(&id)
            .iter()
            .any(|(p, _)| *p == pid),
        "init {pid} not found by live_processes_of"
    );
    // Still startable.
    assert!(rt.berth(&["start", &id]).status.success());
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id);
    assert!(!alive(pid));
    assert_no_process_of(&id);
}

#[test]
fn start_of_a_container_that_is_not_created() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("startrunning");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let pid = pid_of(&rt, &id);
    let out = rt.berth(&["start", &id]);
    fails_with_one_line(&out, "it is running, not created");
    assert_eq!(rt.status(&id), "running");
    assert!(alive(pid));

    assert!(rt.berth(&["kill", &id, "9"]).status.success());
    harness::reap(pid);
    assert_eq!(rt.status(&id), "stopped");
    let out = rt.berth(&["start", &id]);
    fails_with_one_line(&out, "it is stopped, not created");
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());
    assert_no_process_of(&id);
}

#[test]
fn start_fails_at_once_when_init_died() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("initdied");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = pid_of(&rt, &id);
    // SAFETY: kill(2) on the container's init pid, which the test just read from state.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    harness::reap(pid);
    let out = rt.berth(&["start", &id]);
    fails_with_one_line(&out, "it is stopped, not created");
    assert!(rt.berth(&["delete", &id]).status.success());
    assert_no_process_of(&id);
}

#[test]
fn kill_with_unknown_signal_and_of_stopped_container() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("killsig");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = pid_of(&rt, &id);
    // (0 is a signal: the liveness check, see lifecycle.rs.) Real-time signals past SIGRTMAX,
    // however far (RTMIN+2147483647 overflowed), are refused by name.
    let bad = [
        "SIGBOGUS",
        "65",
        "99",
        "4294967296",
        "RTMIN+31",
        "RTMIN+2147483647",
        "SIGRTMIN+99999999999",
        "RTMAX-31",
        "RTMAX-2147483647",
        "RTMIN+",
    ];
    for sig in bad {
        let out = rt.berth(&["kill", &id, sig]);
        fails_with_one_line(&out, &format!("unknown signal \"{sig}\""));
        assert_eq!(rt.status(&id), "created", "after kill {sig}");
        assert!(alive(pid), "init died after kill {sig}");
    }
    assert!(rt.berth(&["start", &id]).status.success());
    for sig in bad {
        let out = rt.berth(&["kill", "--all", &id, sig]);
        fails_with_one_line(&out, &format!("unknown signal \"{sig}\""));
        assert_eq!(rt.status(&id), "running");
        assert!(alive(pid));
    }

    assert!(rt.berth(&["kill", &id, "KILL"]).status.success());
    harness::reap(pid);
    assert_eq!(rt.status(&id), "stopped");
    let out = rt.berth(&["kill", &id, "KILL"]);
    fails_with_one_line(&out, "container not running");
    // (`kill --all` of a stopped container is not an error in runc: see robustness.rs.)
    assert!(rt.berth(&["delete", &id]).status.success());
    assert_no_process_of(&id);
}

/// The soft RLIMIT_NOFILE of the test process, which berth inherits.
fn open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into `lim`, a valid rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur
}

#[test]
fn preserve_fds_past_the_open_files_limit_are_refused() {
    // `3 + N` wrapped for a huge N, marking the container's stdio close-on-exec; now N, with
    // stdio and LISTEN_FDS, must fit in RLIMIT_NOFILE, checked before anything is made.
    let rt = Runtime::new();
    let soft = open_files_limit();
    let b = Bundle::new(&["echo", "stdio works"]);
    for n in [u64::from(u32::MAX), u64::from(u32::MAX) - 3, soft - 2] {
        let n = n.to_string();
        let want = format!(
            "--preserve-fds {n}: more than this process may have open (RLIMIT_NOFILE {soft}: with stdio, at most {})",
            soft - 3
        );
        let id = harness::unique_id("preservefds");
        fails_with_one_line(&rt.create(&b, &id, &["--preserve-fds", &n]), &want);
        assert_nothing_left(&rt, &b, &id);
        let id = harness::unique_id("preservefdsrun");
        rt.track(&id);
        let out = rt
            .cmd()
            .args(["run", "--preserve-fds", &n, "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        fails_with_one_line(&out, &want);
        assert_nothing_left(&rt, &b, &id);
    }
    // The most there can be is fine, and the container's stdio is intact.
    let id = harness::unique_id("preservefdsmax");
    rt.track(&id);
    let most = (soft - 3).to_string();
    let out = rt
        .cmd()
        .args(["run", "--preserve-fds", &most, "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run --preserve-fds {most}: {}",
        stderr(&out)
    );
    assert_eq!(harness::stdout(&out), "stdio works\n");

    // Socket-activation fds (LISTEN_FDS, when LISTEN_PID is berth's pid: sh's $$ before exec)
    // count too, and an absurd LISTEN_FDS is named.
    for (env, n, want) in [
        (
            "LISTEN_FDS=4294967295".to_string(),
            "0".to_string(),
            format!("LISTEN_FDS=4294967295: more than this process may have open (RLIMIT_NOFILE {soft})"),
        ),
        (
            "LISTEN_FDS=2".to_string(),
            (soft - 4).to_string(),
            format!("--preserve-fds {}: more than this process may have open (RLIMIT_NOFILE {soft}: with stdio and 2 LISTEN_FDS, at most {})", soft - 4, soft - 5),
        ),
    ] {
        let id = harness::unique_id("listenfds");
        rt.track(&id);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "LISTEN_PID=$$ {env} exec \"$0\" --root \"$1\" create --preserve-fds {n} --bundle \"$2\" {id} </dev/null >/dev/null",
            ))
            .arg(harness::BERTH)
            .arg(rt.root.path())
            .arg(b.path())
            .output()
            .unwrap();
        fails_with_one_line(&out, &want);
        assert_nothing_left(&rt, &b, &id);
    }

    // exec: refused before any process is made.
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("preservefdsexec");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let procs = || harness::live_processes_of(&id).len();
    let before = procs();
    let n = u32::MAX.to_string();
    let out = rt.berth(&["exec", "--preserve-fds", &n, &id, "echo", "ran"]);
    fails_with_one_line(
        &out,
        &format!("--preserve-fds {n}: more than this process may have open (RLIMIT_NOFILE {soft}"),
    );
    assert!(harness::stdout(&out).is_empty());
    assert_eq!(procs(), before, "exec left a process");
    rt.delete_force(&id);
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("delrunning");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let pid = pid_of(&rt, &id);
    let out = rt.berth(&["delete", &id]);
    fails_with_one_line(&out, "not stopped");
    assert_eq!(rt.status(&id), "running");
    assert!(alive(pid), "delete without --force killed init");
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    assert!(rt.root.path().join(&id).join("state.json").exists());
    assert!(!harness::cgroup_dirs_named(&id).is_empty());
    rt.delete_force(&id);
    assert!(!alive(pid));
    assert_no_process_of(&id);
}

#[test]
fn unknown_container_wording() {
    let rt = Runtime::new();
    let id = harness::unique_id("never-created");
    let want = format!("container \"{id}\" does not exist");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "9"],
        vec!["kill", "--all", &id, "9"],
        vec!["delete", &id],
    ] {
        let out = rt.berth(&args);
        fails_with_one_line(&out, &want);
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
    // runc: delete --force of a container that is already gone is not an error.
    let out = rt.berth(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    rt.assert_nothing_left(&id);
    assert_eq!(
        fs::read_dir(rt.root.path()).map(|d| d.count()).unwrap_or(0),
        0
    );
}

#[test]
fn process_security_entries_are_named() {
    let rt = Runtime::new();
    let t = &["true"];
    // (An unknown capability name is not an error: see security.rs.)
    config_fails(
        &rt,
        "badcap",
        t,
        |c| {
            c["process"]["capabilities"]["bounding"]
                .as_array_mut()
                .unwrap()
                .push(json!(7))
        },
        "config.json: process.capabilities.bounding[3]: invalid type: integer `7`",
    );
    config_fails(
        &rt,
        "notifywrite",
        t,
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "/run/no-agent.sock",
                "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}],
            })
        },
        "config.json: linux.seccomp.syscalls[0]: SCMP_ACT_NOTIFY cannot be used for the write syscall",
    );
    config_fails(
        &rt,
        "unkrlimit",
        t,
        |c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]),
        "config.json: process.rlimits[0].type: unknown variant `RLIMIT_BOGUS`",
    );
    config_fails(
        &rt,
        "unkprop",
        t,
        |c| c["linux"]["rootfsPropagation"] = json!("bogus"),
        "config.json: linux.rootfsPropagation: unknown value \"bogus\"",
    );
    config_fails(
        &rt,
        "unkaction",
        t,
        |c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"}),
        "config.json: linux.seccomp.defaultAction: unknown variant `SCMP_ACT_BOGUS`",
    );
    config_fails(
        &rt,
        "unkarch",
        t,
        |c| {
            c["linux"]["seccomp"] =
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_BOGUS"]})
        },
        "config.json: linux.seccomp.architectures[0]: unknown variant `SCMP_ARCH_BOGUS`",
    );
    let rule = |args: Value| {
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": args}]})
    };
    config_fails(
        &rt,
        "unkop",
        t,
        |c| c["linux"]["seccomp"] = rule(json!([{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}])),
        "config.json: linux.seccomp.syscalls[1].args[0].op: unknown variant `SCMP_CMP_BOGUS`",
    );
    config_fails(
        &rt,
        "argindex",
        t,
        |c| c["linux"]["seccomp"] = rule(json!([{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])),
        "config.json: linux.seccomp.syscalls[1].args[0].index: 6 is out of range (a syscall has arguments 0 to 5)",
    );
    config_fails(
        &rt,
        "nonames",
        t,
        |c| {
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]})
        },
        "config.json: linux.seccomp.syscalls[0]: missing field `names`",
    );
}

#[test]
fn a_bad_memory_policy_is_named_in_runcs_words() {
    let rt = Runtime::new();
    for (policy, want) in [
        (
            json!({}),
            "config.json: linux.memoryPolicy.mode: invalid memory policy mode: must be set",
        ),
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "config.json: linux.memoryPolicy.mode: invalid memory policy mode: unknown variant `INTERLEAVE`",
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]}),
            "config.json: linux.memoryPolicy.flags[1]: invalid memory policy flag: unknown variant `badflag`",
        ),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "config.json: linux.memoryPolicy.nodes: memory policy mode requires 0 nodes but got 8 (mode MPOL_DEFAULT)",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"}),
            "config.json: linux.memoryPolicy.nodes: invalid memory policy nodes \"0-9876543210\": 9876543210 is larger than 8191",
        ),
    ] {
        config_fails(
            &rt,
            "badmpol",
            &["true"],
            |c| c["linux"]["memoryPolicy"] = policy,
            want,
        );
    }
}

#[test]
fn a_bad_exec_cpu_affinity_is_refused_at_create_and_at_exec() {
    let rt = Runtime::new();
    config_fails(
        &rt,
        "badaff",
        &["true"],
        |c| c["process"]["execCPUAffinity"] = json!({"final": "3-1"}),
        "config.json: process.execCPUAffinity.final: \"3-1\": range \"3-1\" runs backwards",
    );
    // From exec's process.json: refused before anything runs; the container is untouched.
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("badaffexec");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let process = b.path().join("process.json");
    fs::write(
        &process,
        json!({"args": ["true"], "cwd": "/", "execCPUAffinity": {"initial": "9000"}}).to_string(),
    )
    .unwrap();
    let out = rt
        .cmd()
        .args(["exec", "--process"])
        .arg(&process)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fails_with_one_line(
        &out,
        &format!(
            "--process {}: process.execCPUAffinity.initial: \"9000\": 9000 is larger than 8191",
            process.display()
        ),
    );
    assert_eq!(rt.status(&id), "created");
    rt.delete_force(&id);
}

/// `linux.intelRdt` where resctrl is not mounted (this machine type): refused in runc's
/// words, never ignored. Where it is mounted, the container's init is in the group berth made
/// (its `tasks`, from the host), with the schemata, and delete removes the group.
#[test]
fn intel_rdt_is_placed_or_refused_by_name_never_ignored() {
    let rt = Runtime::new();
    let resctrl = harness::my_mounts()
        .into_iter()
        .find(|m| m.fs_type == "resctrl")
        .map(|m| m.mount_point);
    let Some(resctrl) = resctrl else {
        config_fails(
            &rt,
            "rdt",
            &["true"],
            |c| c["linux"]["intelRdt"] = json!({"closID": "berth", "l3CacheSchema": "L3:0=f"}),
            "config.json: linux.intelRdt: intelRdt is specified in config, but Intel RDT is not supported or enabled",
        );
        return;
    };
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["linux"]["intelRdt"] = json!({}));
    let id = harness::unique_id("rdt");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", harness::stderr(&out));
    let pid = pid_of(&rt, &id);
    let tasks = fs::read_to_string(resctrl.join(&id).join("tasks")).unwrap();
    assert!(tasks.lines().any(|t| t == pid.to_string()), "{tasks}");
    rt.delete_force(&id);
    assert!(!resctrl.join(&id).exists(), "the resctrl group was left");
}

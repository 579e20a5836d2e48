//! podman driving berth: `podman --runtime berth` through conmon, with private
//! `--root/--runroot/--tmpdir`, vfs storage, no network and a cgroup parent of the test's
//! own, which the `Podman` guard sets up and tears down. On a systemd host podman keeps its
//! default cgroup manager, systemd's.
//!
//! Terminals: podman `-it` runs with a pipe too, and `podman run -it` gets typed input
//! through util-linux's `script` (`under_pty`).
//!
//! Not covered: `podman attach`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use serde_json::Value;

use super::{
    assert_ok, assert_unit_shows, cgroup_tree_exists, engine_lock, find_binary, frozen, image_tar,
    memory_limit, out_text, pids_limit, processes_mentioning, remove_cgroup_tree, require_binaries,
    stop_processes_mentioning, stop_systemd_slice, under_pty, unmount_under, wait_for, CreatedDir,
    IMAGE,
};
use crate::harness::*;

struct Podman {
    dir: tempfile::TempDir,
    cgroup_parent: String,
    run_berth: CreatedDir,
    var_lib_containers: CreatedDir,
    _lock: MutexGuard<'static, ()>,
}

impl Podman {
    fn start() -> Podman {
        require_root();
        let lock = engine_lock();
        let p = Podman {
            dir: tempfile::Builder::new()
                .prefix("berth-podman-")
                .tempdir()
                .unwrap(),
            // On a systemd host podman's default cgroup manager is systemd's: the parent is
            // then a slice (without dashes, which would nest it) and each container a
            // libpod-<id>.scope in it, which berth asks systemd for (--systemd-cgroup).
            cgroup_parent: match systemd_is_init() {
                true => format!("{}.slice", unique_id("podman").replace('-', "")),
                false => format!("/{}", unique_id("podman")),
            },
            // podman passes no --root, so berth keeps its state in /run/berth; and podman
            // keeps a blob cache in /var/lib/containers whatever --root says.
            run_berth: CreatedDir::note("/run/berth"),
            var_lib_containers: CreatedDir::note("/var/lib/containers"),
            _lock: lock,
        };
        let out = p.podman(&["load", "-i", image_tar().to_str().unwrap()]);
        assert_ok(&out, "podman load");
        p
    }

    /// podman with berth as its runtime and this test's private roots, then `args`.
    fn podman_argv(&self, args: &[&str]) -> Vec<String> {
        let d = self.dir.path();
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut a = vec![
            path(find_binary("podman").unwrap()),
            "--runtime".into(),
            BERTH.into(),
            "--root".into(),
            path(d.join("root")),
            "--runroot".into(),
            path(d.join("runroot")),
            "--tmpdir".into(),
            path(d.join("tmp")),
        ];
        let manager: &[&str] = match systemd_is_init() {
            true => &[],
            false => &["--cgroup-manager", "cgroupfs"],
        };
        a.extend(
            ["--storage-driver", "vfs", "--events-backend", "file"]
                .iter()
                .chain(manager)
                .chain(args)
                .map(|s| s.to_string()),
        );
        a
    }

    fn podman(&self, args: &[&str]) -> Output {
        let argv = self.podman_argv(args);
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .expect("run podman")
    }

    /// `podman run` with no network, this test's cgroup parent and the extra `opts`.
    /// Podman asks, as root, for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576; this machine's
    /// bounding set lacks CAP_SYS_RESOURCE, so no runtime can raise a hard limit that far
    /// (runc fails the same way): the tests ask for lower limits.
    fn run(&self, opts: &[&str], args: &[&str]) -> Output {
        let a = self.run_args(opts, args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        self.podman(&a)
    }

    fn run_args(&self, opts: &[&str], args: &[&str]) -> Vec<String> {
        let mut a = vec![
            "run",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ];
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.extend_from_slice(args);
        a.into_iter().map(str::to_owned).collect()
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.podman(&["inspect", "--format", format, name]);
        assert_ok(&out, "podman inspect");
        stdout(&out).trim().to_string()
    }

    /// A detached container running `script`; returns its id and host pid.
    fn run_detached(&self, opts: &[&str], name: &str, script: &str) -> (String, i32) {
        let mut o = vec!["-d", "--name", name];
        o.extend_from_slice(opts);
        let out = self.run(&o, &["sh", "-c", script]);
        assert_ok(&out, "podman run -d");
        let id = stdout(&out).trim().to_string();
        let pid = self.inspect(name, "{{.State.Pid}}").parse().unwrap();
        (id, pid)
    }

    /// Nothing of container `id` left: berth state in /run/berth, cgroup, mount, process.
    fn assert_nothing_left(&self, id: &str) {
        assert!(
            !Path::new("/run/berth").join(id).exists(),
            "berth state /run/berth/{id} left"
        );
        super::assert_no_trace_of(id, &[format!("libpod-{id}")]);
    }

    fn rm(&self, name: &str) {
        assert_ok(&self.podman(&["rm", "--force", name]), "podman rm");
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = self.podman(&["ps", "--all", "--quiet", "--no-trunc"]);
        let ids: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        // conmon and podman's cleanup processes mention the private directories.
        let dir = self.dir.path().to_string_lossy().into_owned();
        stop_processes_mentioning(&dir, Duration::from_secs(5));
        for id in &ids {
            let _ = Command::new(BERTH).args(["delete", "--force", id]).output();
        }
        unmount_under(self.dir.path());
        if systemd_is_init() {
            stop_systemd_slice(&self.cgroup_parent);
        } else {
            remove_cgroup_tree(&self.cgroup_parent);
        }
        self.run_berth.clean(false);
        self.var_lib_containers.clean(true);
        if !std::thread::panicking() {
            let left = processes_mentioning(&dir);
            assert!(left.is_empty(), "engine processes left: {left:?}");
            let cg = cgroup_tree_exists(&self.cgroup_parent);
            assert!(cg.is_empty(), "cgroups left: {cg:?}");
            for id in &ids {
                assert!(!Path::new("/run/berth").join(id).exists());
            }
        }
    }
}

#[test]
fn podman_run_output_exit_status_and_rm() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    let cidfile = pod.dir.path().join("cid");
    let out = pod.run(
        &["--rm", "--cidfile", cidfile.to_str().unwrap()],
        &["sh", "-c", "echo hi; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", out_text(&out));
    assert_eq!(stdout(&out).trim(), "hi");
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_string();
    let all = pod.podman(&["ps", "--all", "--quiet"]);
    assert_eq!(stdout(&all).trim(), "", "--rm left a container");
    pod.assert_nothing_left(&id);

    // podman reads the reason from berth's error words: 127 for a missing command, 126 for
    // one that cannot be executed (as with runc).
    let out = pod.run(&["--rm"], &["/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{}", out_text(&out));
    assert!(
        stderr(&out).contains("no such file or directory in the container"),
        "{}",
        out_text(&out)
    );
    let out = pod.run(&["--rm"], &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", out_text(&out));
}

#[test]
fn podman_stop_and_kill() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    let (id, _) = pod.run_detached(
        &[],
        "stopme",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    );
    assert_ok(&pod.podman(&["stop", "--time", "20", "stopme"]), "stop");
    assert_eq!(pod.inspect("stopme", "{{.State.ExitCode}}"), "7");
    pod.rm("stopme");
    pod.assert_nothing_left(&id);

    let (id, pid) = pod.run_detached(
        &[],
        "killme",
        "trap '' TERM; while true; do sleep 0.1; done",
    );
    assert_ok(&pod.podman(&["kill", "--signal", "KILL", "killme"]), "kill");
    wait_for("the container to exit", Duration::from_secs(10), || {
        pod.inspect("killme", "{{.State.Status}}") == "exited"
    });
    assert_eq!(pod.inspect("killme", "{{.State.ExitCode}}"), "137");
    assert!(!alive(pid));
    pod.rm("killme");
    pod.assert_nothing_left(&id);
}

#[test]
fn podman_pause_unpause_and_limits() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    let (id, pid) = pod.run_detached(
        &["--memory", "64m", "--pids-limit", "50"],
        "limited",
        "while true; do sleep 0.1; done",
    );
    assert_eq!(memory_limit(pid), "67108864");
    assert_eq!(pids_limit(pid), "50");
    // With podman's default (systemd) cgroup manager, systemd knows the limits too.
    assert_unit_shows(pid, &[("MemoryMax", "67108864"), ("TasksMax", "50")]);

    assert_ok(&pod.podman(&["pause", "limited"]), "pause");
    assert_eq!(pod.inspect("limited", "{{.State.Status}}"), "paused");
    assert!(frozen(pid), "the host's freezer does not show it frozen");
    // berth's own view, from the root podman leaves to it.
    let state = Command::new(BERTH).args(["state", &id]).output().unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    assert_eq!(state["status"], "paused");
    assert_ok(&pod.podman(&["unpause", "limited"]), "unpause");
    assert_eq!(pod.inspect("limited", "{{.State.Status}}"), "running");
    assert!(!frozen(pid));

    pod.rm("limited");
    pod.assert_nothing_left(&id);
}

#[test]
fn podman_read_only_user_caps_hostname() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    // --read-only: the root refuses writes; podman's tmpfs on /tmp takes them.
    let out = pod.run(
        &["--rm", "--read-only"],
        &[
            "sh",
            "-c",
            "touch /x 2>&1; echo root=$?; touch /tmp/y && echo tmp=$?",
        ],
    );
    assert_ok(&out, "read-only run");
    let text = stdout(&out);
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.contains("root=1") && text.contains("tmp=0"), "{text}");

    let out = pod.run(
        &["--rm", "--user", "65534:65534"],
        &["sh", "-c", "id -u; id -g"],
    );
    assert_ok(&out, "--user run");
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["65534", "65534"]
    );

    let caps = "grep CapEff /proc/self/status";
    let out = pod.run(&["--rm"], &["sh", "-c", caps]);
    assert_ok(&out, "default caps run");
    assert!(
        !stdout(&out).contains("0000000000000000"),
        "{}",
        stdout(&out)
    );
    let out = pod.run(&["--rm", "--cap-drop", "ALL"], &["sh", "-c", caps]);
    assert_ok(&out, "--cap-drop ALL run");
    assert_eq!(stdout(&out).trim(), "CapEff:\t0000000000000000");

    let out = pod.run(&["--rm", "--hostname", "berth-host"], &["hostname"]);
    assert_ok(&out, "--hostname run");
    assert_eq!(stdout(&out).trim(), "berth-host");
}

#[test]
fn podman_volume() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    let vol = pod.dir.path().join("vol");
    fs::create_dir(&vol).unwrap();
    fs::write(vol.join("in"), "from host\n").unwrap();
    let spec = format!("{}:/data", vol.display());
    let out = pod.run(
        &["--rm", "-v", &spec],
        &["sh", "-c", "cat /data/in; echo from container > /data/out"],
    );
    assert_ok(&out, "volume run");
    assert_eq!(stdout(&out).trim(), "from host");
    assert_eq!(
        fs::read_to_string(vol.join("out")).unwrap(),
        "from container\n"
    );
    assert_no_mount_under(&vol);
}

#[test]
fn podman_seccomp_default_and_custom_profiles() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    let mode = "grep '^Seccomp:' /proc/self/status";
    // podman's default profile is loaded: the process runs in filter mode (2).
    let out = pod.run(&["--rm"], &["sh", "-c", mode]);
    assert_ok(&out, "default profile run");
    assert_eq!(stdout(&out).trim(), "Seccomp:\t2");
    let out = pod.run(
        &["--rm", "--security-opt", "seccomp=unconfined"],
        &["sh", "-c", mode],
    );
    assert_ok(&out, "unconfined run");
    assert_eq!(stdout(&out).trim(), "Seccomp:\t0");

    // A custom profile that refuses mkdir with EACCES (13).
    let profile = pod.dir.path().join("seccomp.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = pod.run(
        &["--rm", "--security-opt", &opt],
        &[
            "sh",
            "-c",
            "mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f && echo touched",
        ],
    );
    assert_ok(&out, "custom profile run");
    let text = stdout(&out);
    assert!(
        text.contains("Permission denied") && text.contains("rc=1"),
        "{text}"
    );
    assert!(text.contains("touched"), "{text}");
}

#[test]
fn podman_exec_output_status_user_workdir_env() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    // No process comes and goes inside (a loop of short sleeps would): `podman top` below
    // reads each listed process's /proc entry and fails on one that has just exited.
    let (id, pid) = pod.run_detached(&[], "execme", "trap 'exit 0' TERM; sleep 100000 & wait");

    let out = pod.podman(&[
        "exec",
        "execme",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", out_text(&out));
    assert_eq!(stdout(&out).trim(), "out");
    assert_eq!(stderr(&out).trim(), "err");

    let out = pod.podman(&[
        "exec",
        "--user",
        "65534:65534",
        "--workdir",
        "/tmp",
        "-e",
        "FOO=from-exec",
        "execme",
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $FOO; echo $$",
    ]);
    assert_ok(&out, "podman exec --user --workdir -e");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..4],
        ["65534", "65534", "/tmp", "from-exec"],
        "{text}"
    );
    // A new process in the container's pid namespace, not init.
    assert_ne!(lines[4], "1", "{text}");
    // Seen from the host while it runs: the exec'd process shares init's namespaces.
    let out = pod.podman(&["exec", "-d", "execme", "sleep", "1000"]);
    assert_ok(&out, "podman exec -d");
    let out = pod.podman(&["top", "execme", "hpid", "args"]);
    assert_ok(&out, "podman top");
    let hpid: String = stdout(&out)
        .lines()
        .find(|l| l.contains("sleep 1000"))
        .unwrap_or_else(|| panic!("no sleep in podman top: {}", stdout(&out)))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    for ns in ["pid", "mnt", "uts", "ipc"] {
        assert_eq!(ns_link(&hpid, ns), ns_link(&pid.to_string(), ns), "{ns}");
    }

    pod.rm("execme");
    assert!(!alive(hpid.parse().unwrap()));
    pod.assert_nothing_left(&id);
}

#[test]
fn podman_terminals_exec_it_and_run_it() {
    require_binaries!("podman", "conmon", "script");
    let pod = Podman::start();
    let (id, _) = pod.run_detached(&[], "ttyme", "while true; do sleep 0.1; done");
    // podman gives the process a pty even when podman's own stdin is not a terminal.
    let out = pod.podman(&["exec", "-it", "ttyme", "sh", "-c", "tty; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", out_text(&out));
    assert!(stdout(&out).starts_with("/dev/pts/"), "{}", out_text(&out));
    let out = pod.podman(&["exec", "ttyme", "tty"]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert!(stdout(&out).contains("not a tty"), "{}", out_text(&out));
    pod.rm("ttyme");
    pod.assert_nothing_left(&id);

    // `podman run -it` on a terminal: what is typed reaches the container's shell through
    // the pty berth handed to conmon, and the shell's answer and exit status come back.
    let cidfile = pod.dir.path().join("cid-it");
    let argv = pod.run_args(
        &["--rm", "-it", "--cidfile", cidfile.to_str().unwrap()],
        &["sh"],
    );
    let argv = pod.podman_argv(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = under_pty(&argv, b"tty; echo typed-$((6*7)); exit 9\n");
    assert_eq!(out.status.code(), Some(9), "{}", out_text(&out));
    let text = stdout(&out);
    // The answer, not the echo of the typed line (which has the unexpanded `$((6*7))`).
    assert!(text.contains("typed-42"), "{}", out_text(&out));
    assert!(text.contains("/dev/pts/"), "{}", out_text(&out));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_string();
    pod.assert_nothing_left(&id);
}

#[test]
fn podman_healthcheck_run() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    // No systemd here to run it on a timer: only `healthcheck run` runs it.
    let (id, _) = pod.run_detached(
        &[
            "--health-cmd",
            "test -e /tmp/healthy",
            "--health-interval",
            "disable",
        ],
        "checkme",
        "while true; do sleep 0.1; done",
    );
    let out = pod.podman(&["healthcheck", "run", "checkme"]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert!(stdout(&out).contains("unhealthy"), "{}", out_text(&out));
    assert_ok(
        &pod.podman(&["exec", "checkme", "touch", "/tmp/healthy"]),
        "podman exec touch",
    );
    let out = pod.podman(&["healthcheck", "run", "checkme"]);
    assert_ok(&out, "healthcheck run (healthy)");
    assert_eq!(
        pod.inspect("checkme", "{{.State.Health.Status}}"),
        "healthy"
    );
    pod.rm("checkme");
    pod.assert_nothing_left(&id);
}

#[test]
fn podman_hooks_dir_prestart_and_poststop() {
    require_binaries!("podman", "conmon");
    let pod = Podman::start();
    let d = pod.dir.path();
    let (hooks, out_dir) = (d.join("hooks"), d.join("hook-out"));
    fs::create_dir(&hooks).unwrap();
    fs::create_dir(&out_dir).unwrap();
    // The hook (on the host) saves the state it got on stdin and its mount namespace.
    let hook = d.join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat > {out}/$1.json\nreadlink /proc/self/ns/mnt > {out}/$1.mntns\n",
            out = out_dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for stage in ["prestart", "poststop"] {
        let json = serde_json::json!({
            "version": "1.0.0",
            "hook": {"path": hook, "args": ["hook.sh", stage]},
            "when": {"always": true},
            "stages": [stage],
        });
        fs::write(hooks.join(format!("{stage}.json")), json.to_string()).unwrap();
    }
    let mut argv = vec!["--hooks-dir", hooks.to_str().unwrap()];
    let run = pod.run_args(&["-d", "--name", "hooked"], &["sh", "-c", "sleep 1000"]);
    argv.extend(run.iter().map(String::as_str));
    let out = pod.podman(&argv);
    assert_ok(&out, "podman --hooks-dir run");
    let id = stdout(&out).trim().to_string();
    let pid: i64 = pod.inspect("hooked", "{{.State.Pid}}").parse().unwrap();

    // podman puts prestart in the spec for berth to run; berth ran it with its state.
    let state: Value =
        serde_json::from_slice(&fs::read(out_dir.join("prestart.json")).unwrap()).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["pid"], pid);
    assert_eq!(state["status"], "creating"); // prestart runs during create (config.md 1.1+)
    let bundle = PathBuf::from(state["bundle"].as_str().unwrap());
    let spec: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["hooks"]["prestart"][0]["path"], hook.to_str().unwrap());
    // prestart runs in the runtime's namespace: the host's, not the container's.
    let mntns = fs::read_to_string(out_dir.join("prestart.mntns")).unwrap();
    assert_eq!(mntns.trim(), ns_link("self", "mnt"));
    assert_ne!(mntns.trim(), ns_link(&pid.to_string(), "mnt"));
    assert!(!out_dir.join("poststop.json").exists());

    // podman runs poststop hooks itself once the container is gone (it leaves them out of
    // the spec); this shows the whole stop path through berth let it get there.
    assert_ok(&pod.podman(&["stop", "--time", "1", "hooked"]), "stop");
    wait_for("the poststop hook", Duration::from_secs(10), || {
        out_dir.join("poststop.mntns").exists()
    });
    let state: Value =
        serde_json::from_slice(&fs::read(out_dir.join("poststop.json")).unwrap()).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "stopped");
    pod.rm("hooked");
    pod.assert_nothing_left(&id);
}

/// `podman container checkpoint` and `restore` with berth as the runtime (podman checks that
/// `berth checkpoint --help` works, then drives `checkpoint` and, through conmon, `restore`).
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn podman_container_checkpoint_and_restore() {
    let p = Podman::start();
    let name = unique_id("podman-cr");
    let script =
        "i=0; while :; do i=$((i+1)); echo $i >/tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.05; done";
    let (id, pid) = p.run_detached(&[], &name, script);
    let count = |p: &Podman| -> u64 {
        stdout(&p.podman(&["exec", &name, "cat", "/tmp/n"]))
            .trim()
            .parse()
            .unwrap_or(0)
    };
    wait_for("the counter", Duration::from_secs(60), || count(&p) >= 5);
    let before = count(&p);
    let out = p.podman(&["container", "checkpoint", &name]);
    assert_ok(&out, "podman container checkpoint");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "exited");
    assert!(!alive(pid), "init {pid} runs on after the checkpoint");
    assert!(!Path::new("/run/berth").join(&id).exists());
    let out = p.podman(&["container", "restore", &name]);
    assert_ok(&out, "podman container restore");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    let restored: i32 = p.inspect(&name, "{{.State.Pid}}").parse().unwrap();
    assert!(alive(restored));
    let first = count(&p);
    // It counts on from the dump: never from 1 again.
    assert!(
        first >= before,
        "restored at {first}, was at {before} before the checkpoint"
    );
    wait_for("the counter to go on", Duration::from_secs(60), || {
        count(&p) > first
    });
    p.rm(&name);
    p.assert_nothing_left(&id);
}

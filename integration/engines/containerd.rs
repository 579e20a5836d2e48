//! containerd driving berth: `ctr run --runc-binary berth --runc-root ...` through
//! containerd-shim-runc-v2, with a containerd of the test's own (config, root, state, socket
//! and namespace) that the `Containerd` guard starts and tears down. On a systemd host the
//! shim runs with SystemdCgroup = true (berth gets --systemd-cgroup), as kubelet sets it up.
//!
//! Terminals: ctr refuses `--tty` unless its stdin is a terminal, so those tests run it on a
//! pty of its own from util-linux's `script` (`under_pty`).
//!
//! Not covered: hooks in a containerd spec (ctr has no flag to add them; hooks.rs covers
//! every kind directly).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use super::{
    assert_engine_left_nothing, assert_ok, assert_unit_shows, cgroup_tree_exists, engine_lock,
    find_binary, force_delete_all, frozen, image_tar, memory_limit, out_text, processes_mentioning,
    remove_cgroup_tree, require_binaries, stop_daemon, stop_processes_mentioning,
    stop_systemd_slice, under_pty, unmount_under, wait_for, CreatedDir, IMAGE,
};
use crate::harness::*;

struct Containerd {
    dir: tempfile::TempDir,
    sock: PathBuf,
    ns: String,
    daemon: Option<Child>,
    run_containerd: CreatedDir,
    _lock: MutexGuard<'static, ()>,
}

impl Containerd {
    fn start() -> Containerd {
        require_root();
        let lock = engine_lock();
        let run_containerd = CreatedDir::note("/run/containerd");
        let dir = tempfile::Builder::new()
            .prefix("berth-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let sock = d.join("containerd.sock");
        // Only what `ctr run` needs: no CRI (it wants CNI and a network), no snapshotters
        // that need special filesystems, no tracing or metrics endpoints.
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[metrics]
  address = ""
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = sock.display(),
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let log = fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new(find_binary("containerd").unwrap())
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let ns = format!("berth-test-{}-{}", std::process::id(), unique_id("ns"));
        let c = Containerd {
            dir,
            sock,
            ns,
            daemon: Some(daemon),
            run_containerd,
            _lock: lock,
        };
        wait_for("containerd to answer", Duration::from_secs(20), || {
            c.ctr(&["version"]).status.success()
        });
        let out = c.ctr(&[
            "images",
            "import",
            "--snapshotter",
            "native",
            image_tar().to_str().unwrap(),
        ]);
        assert_ok(&out, "ctr images import");
        c
    }

    /// `ctr` with this test's address and namespace, then `args`.
    fn ctr_argv(&self, args: &[&str]) -> Vec<String> {
        let mut a = vec![
            find_binary("ctr").unwrap().to_string_lossy().into_owned(),
            "--address".into(),
            self.sock.to_string_lossy().into_owned(),
            "-n".into(),
            self.ns.clone(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        a
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let argv = self.ctr_argv(args);
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    /// `ctr` on a pty of its own (ctr refuses `--tty` when its stdin is not a terminal).
    fn ctr_on_pty(&self, args: &[&str]) -> Output {
        let argv = self.ctr_argv(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        under_pty(&argv, b"")
    }

    /// `ctr task exec` into `id` with a private fifo dir (ctr's default is /run/containerd).
    fn exec(&self, opts: &[&str], id: &str, args: &[&str]) -> Output {
        let fifo = self.dir.path().join("fifo");
        let mut a = vec!["task", "exec", "--fifo-dir", fifo.to_str().unwrap()];
        a.extend_from_slice(opts);
        a.push(id);
        a.extend_from_slice(args);
        self.ctr(&a)
    }

    /// The shim's `--root` for berth: `<runc-root>/<namespace>`.
    fn berth_root(&self) -> PathBuf {
        self.dir.path().join("runc").join(&self.ns)
    }

    /// `ctr run` with berth as the shim's runc, everything private to this test.
    fn run(&self, opts: &[&str], id: &str, args: &[&str]) -> Output {
        let a = self.run_args(opts, id, args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        self.ctr(&a)
    }

    fn run_args(&self, opts: &[&str], id: &str, args: &[&str]) -> Vec<String> {
        let runc_root = self.dir.path().join("runc");
        let fifo = self.dir.path().join("fifo");
        let mut a: Vec<&str> = vec![
            "run",
            "--snapshotter",
            "native",
            "--runc-binary",
            BERTH,
            "--runc-root",
            runc_root.to_str().unwrap(),
            "--fifo-dir",
            fifo.to_str().unwrap(),
        ];
        // On a systemd host as kubelet sets containerd up there: the runc shim with
        // SystemdCgroup = true (berth gets --systemd-cgroup) and a slice:prefix:name
        // cgroupsPath, in a slice of this test's own (no dashes: they would nest it).
        let cgroup = format!("{}:ctr:{id}", self.systemd_slice());
        if systemd_is_init() {
            a.extend(["--runc-systemd-cgroup", "--cgroup", cgroup.as_str()]);
        }
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.push(id);
        a.extend_from_slice(args);
        a.into_iter().map(str::to_owned).collect()
    }

    /// The slice this test's containers go in with the systemd driver.
    fn systemd_slice(&self) -> String {
        format!("{}.slice", self.ns.replace('-', ""))
    }

    /// STATUS of task `id` in `ctr task ls`.
    fn task_status(&self, id: &str) -> String {
        let out = self.ctr(&["task", "ls"]);
        assert_ok(&out, "ctr task ls");
        stdout(&out)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f[2].to_string())
            })
            .unwrap_or_default()
    }

    fn task_pid(&self, id: &str) -> i32 {
        let out = self.ctr(&["task", "ls"]);
        stdout(&out)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f[1].parse().unwrap())
            })
            .unwrap()
    }

    /// A detached task running `script` under sh, with the given `ctr run` options.
    fn run_detached(&self, opts: &[&str], id: &str, script: &str) -> i32 {
        let mut o = vec!["-d"];
        o.extend_from_slice(opts);
        let out = self.run(&o, id, &["sh", "-c", script]);
        assert_ok(&out, "ctr run -d");
        wait_for("the task to run", Duration::from_secs(10), || {
            self.task_status(id) == "RUNNING"
        });
        self.task_pid(id)
    }

    /// Deletes task and container `id` and returns what `ctr task delete` said (it reports a
    /// non-zero exit code as a warning).
    fn delete(&self, id: &str) -> Output {
        wait_for("the task to stop", Duration::from_secs(10), || {
            self.task_status(id) == "STOPPED"
        });
        let out = self.ctr(&["task", "delete", id]);
        assert_ok(&out, "ctr task delete");
        assert_ok(
            &self.ctr(&["containers", "delete", id]),
            "ctr containers delete",
        );
        out
    }

    /// Nothing of container `id` left: berth state, cgroup, mount, process.
    fn assert_nothing_left(&self, id: &str) {
        assert_engine_left_nothing(&self.berth_root(), id);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks and containers first, while containerd and the shims are up.
        if let Some(out) = self
            .daemon
            .as_ref()
            .map(|_| self.ctr(&["task", "ls", "-q"]))
        {
            for id in stdout(&out).lines() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
                let _ = self.ctr(&["task", "delete", "--force", id]);
            }
            for id in stdout(&self.ctr(&["containers", "ls", "-q"])).lines() {
                let _ = self.ctr(&["containers", "delete", id]);
            }
        }
        stop_daemon(self.daemon.take(), Duration::from_secs(10));
        // Shims mention the private socket path in their arguments.
        let dir = self.dir.path().to_string_lossy().into_owned();
        stop_processes_mentioning(&dir, Duration::from_secs(5));
        // Whatever berth still holds (a failed test), then the namespace's parent cgroup
        // that containerd makes for `/<namespace>/<id>`.
        force_delete_all(&self.berth_root());
        unmount_under(self.dir.path());
        if systemd_is_init() {
            stop_systemd_slice(&self.systemd_slice());
        } else {
            remove_cgroup_tree(&self.ns);
        }
        // The shim's socket directory is hard-coded under /run/containerd.
        let _ = fs::remove_dir(Path::new("/run/containerd/s"));
        self.run_containerd.clean(false);
        if !std::thread::panicking() {
            let left = processes_mentioning(&dir);
            assert!(left.is_empty(), "engine processes left: {left:?}");
            let cg = cgroup_tree_exists(&self.ns);
            assert!(cg.is_empty(), "cgroups left: {cg:?}");
            let units = systemd_units_of(&self.systemd_slice());
            assert!(units.is_empty(), "systemd units left: {units:?}");
        }
    }
}

#[test]
fn containerd_runs_with_output_and_exit_status() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2");
    let ctd = Containerd::start();
    let id = unique_id("ctd-run");
    let out = ctd.run(&["--rm"], &id, &["sh", "-c", "echo hi; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", out_text(&out));
    assert_eq!(stdout(&out).trim(), "hi");
    ctd.assert_nothing_left(&id);
}

#[test]
fn containerd_kill_term_and_kill_with_exit_status() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2");
    let ctd = Containerd::start();
    // PID 1 has no default action for TERM: the trap shows it arrived.
    let id = unique_id("ctd-term");
    ctd.run_detached(
        &[],
        &id,
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    );
    assert_ok(&ctd.ctr(&["task", "kill", &id]), "ctr task kill");
    let out = ctd.delete(&id);
    assert!(stderr(&out).contains("exit code 7"), "{}", out_text(&out));
    ctd.assert_nothing_left(&id);

    let id = unique_id("ctd-kill");
    let pid = ctd.run_detached(&[], &id, "trap '' TERM; while true; do sleep 0.1; done");
    assert_ok(
        &ctd.ctr(&["task", "kill", "-s", "SIGKILL", &id]),
        "ctr task kill -s SIGKILL",
    );
    let out = ctd.delete(&id);
    assert!(stderr(&out).contains("exit code 137"), "{}", out_text(&out));
    assert!(!alive(pid));
    ctd.assert_nothing_left(&id);
}

#[test]
fn containerd_ps_pause_resume_and_metrics() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2");
    let ctd = Containerd::start();
    let id = unique_id("ctd-pause");
    let pid = ctd.run_detached(
        &["--memory-limit", "67108864"],
        &id,
        "sleep 1000 & while true; do sleep 0.1; done",
    );

    // ps: init and the backgrounded sleep, by host pid.
    let out = ctd.ctr(&["task", "ps", &id]);
    assert_ok(&out, "ctr task ps");
    let pids: Vec<i32> = stdout(&out)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(pids.contains(&pid), "init {pid} not in {pids:?}");
    assert!(pids.len() >= 2, "{pids:?}");

    assert_eq!(memory_limit(pid), "67108864");
    // SystemdCgroup = true: the shim's berth asked systemd for the scope, with the limit.
    assert_unit_shows(pid, &[("MemoryMax", "67108864")]);

    // metrics: containerd reads the cgroup itself; the pid count is the container's.
    let out = ctd.ctr(&["task", "metrics", &id]);
    assert_ok(&out, "ctr task metrics");
    let metrics = stdout(&out);
    let current: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pids.current"))
        .unwrap_or_else(|| panic!("no pids.current in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        (2..=3).contains(&current),
        "pids.current {current}: {metrics}"
    );
    assert!(
        metrics.contains("67108864"),
        "memory limit not in {metrics}"
    );

    assert_ok(&ctd.ctr(&["task", "pause", &id]), "ctr task pause");
    assert_eq!(ctd.task_status(&id), "PAUSED");
    assert!(frozen(pid), "the host's freezer does not show it frozen");
    assert_ok(&ctd.ctr(&["task", "resume", &id]), "ctr task resume");
    assert_eq!(ctd.task_status(&id), "RUNNING");
    assert!(!frozen(pid));

    assert_ok(
        &ctd.ctr(&["task", "kill", "-s", "SIGKILL", &id]),
        "ctr task kill",
    );
    ctd.delete(&id);
    ctd.assert_nothing_left(&id);
}

#[test]
fn containerd_read_only_rootfs() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2");
    let ctd = Containerd::start();
    let script = "touch /written && echo wrote; exit 0";
    let id = unique_id("ctd-rw");
    let out = ctd.run(&["--rm"], &id, &["sh", "-c", script]);
    assert_ok(&out, "writable run");
    assert_eq!(stdout(&out).trim(), "wrote");
    let id = unique_id("ctd-ro");
    let out = ctd.run(&["--rm", "--read-only"], &id, &["sh", "-c", script]);
    assert_ok(&out, "read-only run");
    assert!(
        stderr(&out).contains("Read-only file system") && !stdout(&out).contains("wrote"),
        "{}",
        out_text(&out)
    );
    ctd.assert_nothing_left(&id);
}

#[test]
fn containerd_shows_berths_error_when_a_container_cannot_start() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2");
    let ctd = Containerd::start();
    let id = unique_id("ctd-fail");
    let out = ctd.run(&["--rm"], &id, &["/nonexistent"]);
    assert!(!out.status.success());
    // berth's own error line, passed on through log.json by the shim.
    assert!(
        stderr(&out).contains(
            r#"process.args[0]: exec "/nonexistent": no such file or directory in the container"#
        ),
        "{}",
        out_text(&out)
    );
    ctd.assert_nothing_left(&id);
}

#[test]
fn containerd_task_exec_output_status_user_cwd_and_ps() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2");
    let ctd = Containerd::start();
    let id = unique_id("ctd-exec");
    let pid = ctd.run_detached(&[], &id, "while true; do sleep 0.1; done");

    // Both streams and the exit status come back through the shim.
    let script = "echo out; echo err >&2; exit 4";
    let out = ctd.exec(&["--exec-id", "e1"], &id, &["sh", "-c", script]);
    assert_eq!(out.status.code(), Some(4), "{}", out_text(&out));
    assert_eq!(stdout(&out).trim(), "out");
    assert!(stderr(&out).contains("err"), "{}", out_text(&out));

    let out = ctd.exec(
        &["--exec-id", "e2", "--user", "65534", "--cwd", "/tmp"],
        &id,
        &["sh", "-c", "id -u; pwd"],
    );
    assert_ok(&out, "ctr task exec --user --cwd");
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["65534", "/tmp"]
    );

    // Without --tty the process has no terminal (the --tty test below sees one).
    let out = ctd.exec(&["--exec-id", "e3"], &id, &["tty"]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    assert!(stdout(&out).contains("not a tty"), "{}", out_text(&out));

    // A detached exec shows in `task ps` under its exec id, and is a process in the
    // container's pid namespace.
    let out = ctd.exec(
        &["--detach", "--exec-id", "sleeper"],
        &id,
        &["sleep", "1000"],
    );
    assert_ok(&out, "ctr task exec --detach");
    let out = ctd.ctr(&["task", "ps", &id]);
    assert_ok(&out, "ctr task ps");
    let ps = stdout(&out);
    let exec_pid: i32 = ps
        .lines()
        .find(|l| l.contains("ExecID:sleeper"))
        .unwrap_or_else(|| panic!("exec sleeper not in task ps: {ps}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cmdline = fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x001000\x00");
    assert_eq!(
        ns_link(&exec_pid.to_string(), "pid"),
        ns_link(&pid.to_string(), "pid")
    );
    assert!(ps.contains(&format!("{pid} ")), "init {pid} not in {ps}");

    assert_ok(
        &ctd.ctr(&["task", "kill", "-s", "SIGKILL", &id]),
        "ctr task kill",
    );
    ctd.delete(&id);
    assert!(
        !alive(exec_pid),
        "the exec'd process outlived its container"
    );
    ctd.assert_nothing_left(&id);
}

#[test]
fn containerd_tty_exec_and_run() {
    require_binaries!("containerd", "ctr", "containerd-shim-runc-v2", "script");
    let ctd = Containerd::start();
    let id = unique_id("ctd-tty");
    ctd.run_detached(&[], &id, "while true; do sleep 0.1; done");
    let fifo = ctd.dir.path().join("fifo");
    let out = ctd.ctr_on_pty(&[
        "task",
        "exec",
        "--fifo-dir",
        fifo.to_str().unwrap(),
        "--tty",
        "--exec-id",
        "t1",
        &id,
        "sh",
        "-c",
        "tty; echo on-the-pty; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", out_text(&out));
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "{}", out_text(&out));
    // The container's pty turns LF into CR LF (and so does script's own).
    assert!(text.contains("on-the-pty\r"), "{}", out_text(&out));
    assert_ok(
        &ctd.ctr(&["task", "kill", "-s", "SIGKILL", &id]),
        "ctr task kill",
    );
    ctd.delete(&id);
    ctd.assert_nothing_left(&id);

    // `ctr run -t`: init itself on a terminal, relayed to ctr's.
    let id = unique_id("ctd-run-t");
    let argv = ctd.run_args(
        &["--rm", "-t"],
        &id,
        &["sh", "-c", "tty; echo hello; exit 6"],
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ctd.ctr_on_pty(&argv);
    assert_eq!(out.status.code(), Some(6), "{}", out_text(&out));
    let text = stdout(&out);
    assert!(text.contains("/dev/pts/"), "{}", out_text(&out));
    assert!(text.contains("hello\r"), "{}", out_text(&out));
    ctd.assert_nothing_left(&id);
}

/// A shell counter in the container's memory, written out to /tmp/n every 50 ms.
const COUNTER: &str =
    "i=0; while :; do i=$((i+1)); echo $i >/tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.05; done";

/// The counter `COUNTER` shows in task `id`, through `ctr task exec`.
fn ctr_count(c: &Containerd, id: &str) -> u64 {
    let out = c.exec(&["--exec-id", &unique_id("cat")], id, &["cat", "/tmp/n"]);
    stdout(&out).trim().parse().unwrap_or(0)
}

/// `ctr task checkpoint --exit`: the shim's runc checkpoint, the task gone with its berth
/// state; the CRIU images where `--image-path` said.
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn containerd_task_checkpoint_exit_writes_the_image_and_stops_the_task() {
    let c = Containerd::start();
    let id = unique_id("ctr-cr");
    c.run_detached(&[], &id, COUNTER);
    wait_for("the counter", Duration::from_secs(60), || {
        ctr_count(&c, &id) >= 5
    });
    let image = c.dir.path().join("checkpoint");
    let out = c.ctr(&[
        "task",
        "checkpoint",
        "--exit",
        "--image-path",
        image.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out, "ctr task checkpoint --exit");
    assert!(
        image.join("inventory.img").exists(),
        "no CRIU image in {image:?}"
    );
    assert!(
        !c.berth_root().join(&id).exists(),
        "berth's state of the checkpointed task is still there"
    );
    c.delete(&id);
    c.assert_nothing_left(&id);
}

/// The whole round trip through containerd: `ctr containers checkpoint --task` into a
/// checkpoint image (the task keeps running), then the container removed and brought back
/// with `ctr containers restore --live`, which has the shim run `berth restore`.
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn containerd_checkpoint_image_restores_the_task_live() {
    let c = Containerd::start();
    let id = unique_id("ctr-live");
    c.run_detached(&[], &id, COUNTER);
    wait_for("the counter", Duration::from_secs(60), || {
        ctr_count(&c, &id) >= 5
    });
    let reference = format!("berth.test/checkpoint/{id}:1");
    let before = ctr_count(&c, &id);
    let out = c.ctr(&[
        "containers",
        "checkpoint",
        "--task",
        "--rw",
        &id,
        &reference,
    ]);
    assert_ok(&out, "ctr containers checkpoint --task");
    assert_ok(
        &c.ctr(&["task", "kill", "-s", "KILL", &id]),
        "ctr task kill",
    );
    c.delete(&id);
    // (Foreground: ctr waits for the restored task; killed below.)
    let argv = c.ctr_argv(&["containers", "restore", "--live", "--rw", &id, &reference]);
    let restore = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the restored task", Duration::from_secs(120), || {
        c.task_status(&id) == "RUNNING"
    });
    // It counts on from the dump: never from 1 again.
    let first = ctr_count(&c, &id);
    assert!(
        first >= before,
        "restored at {first}, was at {before} before the checkpoint"
    );
    wait_for("the counter to go on", Duration::from_secs(60), || {
        ctr_count(&c, &id) > first
    });
    assert_ok(
        &c.ctr(&["task", "kill", "-s", "KILL", &id]),
        "ctr task kill",
    );
    let out = output_within(restore, COMMAND_LIMIT);
    assert!(
        !stderr(&out).contains("failed"),
        "ctr containers restore: {}",
        stderr(&out)
    );
    c.delete(&id);
    c.assert_nothing_left(&id);
}

//! `checkpoint` and `restore` with CRIU. Root. Debian 12's CRIU cannot dump on this project's
//! machines' kernel (6.18: "vdso: Unexpected rt vDSO area bounds"), so the tests that need a
//! working CRIU are ignored here and run in the systemd guest, which boots Debian 12's own
//! kernel (hack/systemd-vm-tests.txt). What must hold wherever CRIU cannot work (one line in
//! CRIU's words, the container untouched) and the bad input run here.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{
    self, fails_with_one_line, read_until, stderr, unique_id, Bundle, ConsoleSocket, Runtime,
    COMMAND_LIMIT,
};

/// A counter in the shell's memory, appended to `$FILE` every 50 ms as one line per count,
/// through a descriptor the shell keeps open (O_APPEND, which CRIU restores without checking
/// the file's size). The file is never renamed: a container left running after a dump (or a
/// pre-dump) may go on writing, and a file the image names must still be there at restore.
fn counter(file: &str) -> Vec<String> {
    let script =
        format!("exec 3>>{file}; i=0; while :; do i=$((i+1)); echo $i >&3; sleep 0.05; done");
    ["sh", "-c", &script].map(String::from).to_vec()
}

/// A bundle running `counter(file)`, its rootfs writable (the host reads the counter there).
fn counter_bundle(file: &str) -> Bundle {
    let args = counter(file);
    let mut b = Bundle::new(&args.iter().map(String::as_str).collect::<Vec<_>>());
    b.edit(|c| c["root"]["readonly"] = json!(false));
    b
}

/// The counter's last whole line in `file` (0 before there is one).
fn read_count(file: &Path) -> u64 {
    let text = fs::read_to_string(file).unwrap_or_default();
    let whole = text.rsplit_once('\n').map_or("", |(lines, _)| lines);
    whole
        .rsplit('\n')
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (up to a minute: the guest runs under software emulation) for the counter in `file`
/// to reach `min`; returns the value seen.
fn wait_count(file: &Path, min: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = read_count(file);
        if n >= min {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{} stayed at {n}, below {min}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every value `file` shows for `how_long` (to see that a restored counter never restarts).
fn sample_counts(file: &Path, how_long: Duration) -> Vec<u64> {
    let end = Instant::now() + how_long;
    let mut seen = Vec::new();
    while Instant::now() < end {
        let n = read_count(file);
        if seen.last() != Some(&n) {
            seen.push(n);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seen
}

/// The stdio a shim gives a detached container: pipes (CRIU saves them as the image's
/// external pipes, and a restore takes its own in their place). The ends kept here stay open
/// while the container runs.
struct Pipes {
    _stdin: File,
    _output: File,
}

fn pipes() -> (Pipes, [Stdio; 3]) {
    let (in_r, in_w) = nix::unistd::pipe().unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let out_w = File::from(out_w);
    let stdio = [
        Stdio::from(in_r),
        Stdio::from(out_w.try_clone().unwrap()),
        Stdio::from(out_w),
    ];
    (
        Pipes {
            _stdin: File::from(in_w),
            _output: File::from(out_r),
        },
        stdio,
    )
}

/// Runs `berth ARGS` with pipes for stdio (for `run -d` and `restore -d`, whose container
/// keeps them: a file of the host's would be one CRIU cannot save); returns the pipes' other
/// ends and berth's errors (from its `--log`).
fn berth_with_pipes(rt: &Runtime, args: &[&str]) -> (Pipes, std::process::ExitStatus, String) {
    let (pipes, [stdin, stdout, stderr]) = pipes();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = rt
        .cmd()
        .arg("--log")
        .arg(log.path())
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let status = harness::wait_within(child, COMMAND_LIMIT)
        .unwrap_or_else(|pid| panic!("berth {args:?} (pid {pid}) hung"));
    let err = fs::read_to_string(log.path()).unwrap();
    (pipes, status, err)
}

fn run_detached(rt: &Runtime, b: &Bundle, id: &str) -> Pipes {
    rt.track_bundle(id, b.path());
    let bundle = b.path().to_str().unwrap();
    let (pipes, status, err) = berth_with_pipes(rt, &["run", "-d", "--bundle", bundle, id]);
    assert!(status.success(), "run -d {id}: {err}");
    pipes
}

fn restore_detached(rt: &Runtime, b: &Bundle, id: &str, image: &Path, extra: &[&str]) -> Pipes {
    let bundle = b.path().to_str().unwrap();
    let image = image.to_str().unwrap();
    let mut args = vec!["restore", "-d", "--bundle", bundle, "--image-path", image];
    args.extend(extra);
    args.push(id);
    let (pipes, status, err) = berth_with_pipes(rt, &args);
    assert!(status.success(), "restore {id}: {err}");
    pipes
}

fn pid_of(rt: &Runtime, id: &str) -> i32 {
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// Kills and deletes a container, reaps its init (reparented to the test process) and checks
/// that nothing of it is left.
fn kill_and_delete(rt: &Runtime, id: &str) {
    let pid = pid_of(rt, id);
    let out = rt.berth(&["kill", id, "KILL"]);
    assert!(out.status.success(), "kill {id}: {}", stderr(&out));
    harness::reap(pid);
    let out = rt.berth(&["delete", id]);
    assert!(out.status.success(), "delete {id}: {}", stderr(&out));
    rt.assert_nothing_left(id);
}

/// After a checkpoint that stopped it: nothing of the container is left, and its init is gone.
fn assert_checkpointed_away(rt: &Runtime, id: &str, pid: i32) {
    harness::reap(pid);
    assert!(
        !harness::alive(pid),
        "init {pid} still runs after the checkpoint"
    );
    rt.assert_nothing_left(id);
    harness::assert_no_process_of(id);
}

fn image_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join(name);
    (dir, image)
}

/// Runs `b` detached as `id`, waits for its counter in `count` to reach `min`, checkpoints
/// it (which stops it) and checks it is gone; returns the image directory, in a temp dir
/// that lives as long as the first value.
fn run_and_checkpoint(
    rt: &Runtime,
    b: &Bundle,
    id: &str,
    count: &Path,
    min: u64,
) -> (tempfile::TempDir, PathBuf) {
    let _io = run_detached(rt, b, id);
    wait_count(count, min);
    let pid = pid_of(rt, id);
    let (tmp, image) = image_dir("image");
    let out = rt.berth(&["checkpoint", "--image-path", image.to_str().unwrap(), id]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    assert_checkpointed_away(rt, id, pid);
    (tmp, image)
}

#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn a_checkpointed_counter_is_restored_and_counts_on_from_where_it_was() {
    let rt = Runtime::new();
    let b = counter_bundle("/tmp/n");
    let id = unique_id("cr-counter");
    let count = b.path().join("rootfs/tmp/n");
    let (_tmp, image) = run_and_checkpoint(&rt, &b, &id, &count, 5);
    assert!(
        image.join("inventory.img").exists(),
        "no CRIU image written"
    );
    let at_dump = read_count(&count);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read_count(&count),
        at_dump,
        "something still counts after the checkpoint"
    );

    let _io = restore_detached(&rt, &b, &id, &image, &[]);
    assert_eq!(rt.status(&id), "running");
    let restored = pid_of(&rt, &id);
    assert!(harness::alive(restored));
    let seen = sample_counts(&count, Duration::from_secs(1));
    // From the value it had, never from 1 again.
    assert!(
        seen.iter().all(|&n| n >= at_dump),
        "{seen:?} (dumped at {at_dump})"
    );
    let later = wait_count(&count, at_dump + 3);
    assert!(later > at_dump);
    // The restored container is like any other: exec joins it, kill and delete end it.
    let out = rt.berth(&["exec", &id, "tail", "-n", "1", "/tmp/n"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let inside: u64 = harness::stdout(&out).trim().parse().unwrap();
    assert!(inside >= at_dump);
    kill_and_delete(&rt, &id);
}

#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn leave_running_keeps_the_container_and_its_image_restores_the_dumped_state() {
    let rt = Runtime::new();
    let b = counter_bundle("/tmp/n");
    let id = unique_id("cr-leave");
    let count = b.path().join("rootfs/tmp/n");
    let _io = run_detached(&rt, &b, &id);
    wait_count(&count, 5);
    let pid = pid_of(&rt, &id);
    let (_tmp, image) = image_dir("image");
    let out = rt.berth(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        image.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    let at_dump = read_count(&count);
    assert_eq!(rt.status(&id), "running");
    assert_eq!(pid_of(&rt, &id), pid);
    wait_count(&count, at_dump + 10);
    kill_and_delete(&rt, &id);

    // The image holds the counter as it was at the dump, below what the file says now.
    let _io = restore_detached(&rt, &b, &id, &image, &[]);
    let seen = sample_counts(&count, Duration::from_secs(2));
    assert!(
        seen.iter().any(|&n| n > at_dump && n <= at_dump + 5),
        "the restored counter did not go on from {at_dump}: {seen:?}"
    );
    kill_and_delete(&rt, &id);
}

#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn pre_dump_then_a_dump_on_top_of_it_restores() {
    let rt = Runtime::new();
    let b = counter_bundle("/tmp/n");
    let id = unique_id("cr-predump");
    let count = b.path().join("rootfs/tmp/n");
    let _io = run_detached(&rt, &b, &id);
    wait_count(&count, 3);
    let pid = pid_of(&rt, &id);
    let tmp = tempfile::tempdir().unwrap();
    let pre = tmp.path().join("pre");
    let out = rt.berth(&[
        "checkpoint",
        "--pre-dump",
        "--image-path",
        pre.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "pre-dump: {}", stderr(&out));
    assert_eq!(
        rt.status(&id),
        "running",
        "a pre-dump leaves the container running"
    );
    let final_dump = tmp.path().join("final");
    let out = rt.berth(&[
        "checkpoint",
        "--image-path",
        final_dump.to_str().unwrap(),
        "--parent-path",
        "../pre",
        &id,
    ]);
    assert!(
        out.status.success(),
        "dump on the pre-dump: {}",
        stderr(&out)
    );
    assert_checkpointed_away(&rt, &id, pid);
    let at_dump = read_count(&count);
    let _io = restore_detached(&rt, &b, &id, &final_dump, &[]);
    wait_count(&count, at_dump + 3);
    kill_and_delete(&rt, &id);
}

#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn a_container_with_a_bind_mount_is_restored_with_it() {
    let rt = Runtime::new();
    let id = unique_id("cr-bind");
    let (b, host_dir, image, _tmp) = checkpointed_with_a_bind_mount(&rt, &id);
    let count = host_dir.path().join("n");
    let at_dump = read_count(&count);
    let _io = restore_detached(&rt, &b, &id, &image, &[]);
    // Still writing through the bind mount, to the host's directory.
    wait_count(&count, at_dump + 3);
    kill_and_delete(&rt, &id);
}

#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn a_container_with_a_terminal_is_restored_with_a_new_master_sent_to_the_console_socket() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo tick:$i; sleep 0.1; done",
    ]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = unique_id("cr-tty");
    let sock = ConsoleSocket::new();
    let out = rt.create(&b, &id, &["--console-socket", &sock.path()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (_, mut master) = sock.receive();
    let out = rt.berth(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let text = read_until(&mut master, "tick:5");
    assert!(text.contains("tick:5"), "{text:?}");
    let pid = pid_of(&rt, &id);
    let (_tmp, image) = image_dir("image");
    let out = rt.berth(&["checkpoint", "--image-path", image.to_str().unwrap(), &id]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    assert_checkpointed_away(&rt, &id, pid);
    drop(master);

    let sock = ConsoleSocket::new();
    let bundle = b.path().to_str().unwrap();
    let child = rt
        .cmd()
        .args(["restore", "-d", "--bundle", bundle, "--image-path"])
        .arg(&image)
        .args(["--console-socket", &sock.path(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_, mut master) = sock.receive();
    let out = harness::output_within(child, COMMAND_LIMIT);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    // The same shell goes on counting on the new terminal.
    let text = read_until(&mut master, "\n");
    let text = text + &read_until(&mut master, "tick:");
    let ticks: Vec<u64> = text
        .split("tick:")
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    assert!(
        ticks.iter().any(|&t| t > 5),
        "no tick after the restore on the new master: {text:?}"
    );
    kill_and_delete(&rt, &id);
}

/// Where CRIU cannot work (this project's machines: its vDSO check fails on kernel 6.18),
/// `checkpoint` fails at once with CRIU's own words on one line and the container runs on;
/// where it can, the checkpoint succeeds and the container is gone.
#[test]
fn checkpoint_says_why_criu_failed_in_one_line_and_leaves_the_container_running() {
    if !criu_installed() {
        return harness::skip_or_fail("criu is not installed (apt-get install criu)");
    }
    let rt = Runtime::new();
    let b = counter_bundle("/tmp/n");
    let id = unique_id("cr-fails");
    let count = b.path().join("rootfs/tmp/n");
    let _io = run_detached(&rt, &b, &id);
    wait_count(&count, 2);
    let pid = pid_of(&rt, &id);
    let (_tmp, image) = image_dir("image");
    let out = rt.berth(&["checkpoint", "--image-path", image.to_str().unwrap(), &id]);
    if out.status.success() {
        // A kernel CRIU works with.
        assert_checkpointed_away(&rt, &id, pid);
        return;
    }
    fails_with_one_line(&out, &format!("checkpoint {id}: CRIU dump failed: Error ("));
    assert!(stderr(&out).contains("dump.log"), "{}", stderr(&out));
    assert_eq!(rt.status(&id), "running");
    assert_eq!(pid_of(&rt, &id), pid);
    let before = read_count(&count);
    wait_count(&count, before + 2);
    let out = rt.berth(&["exec", &id, "true"]);
    assert!(
        out.status.success(),
        "exec after the failed checkpoint: {}",
        stderr(&out)
    );
    kill_and_delete(&rt, &id);
}

fn criu_installed() -> bool {
    std::process::Command::new("criu")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn checkpoint_refuses_a_container_that_is_not_running_or_not_there() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("cr-created");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = rt.berth(&["checkpoint", &id]);
    fails_with_one_line(&out, "cannot be checkpointed in created state");
    assert_eq!(rt.status(&id), "created", "the refused container changed");
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
    let out = rt.berth(&["checkpoint", "nosuch-container"]);
    fails_with_one_line(&out, "container \"nosuch-container\" does not exist");
}

/// Bad checkpoint flags are refused by name before CRIU runs (CRIU is not even looked for:
/// the binary named here does not exist), and the container runs on.
#[test]
fn checkpoint_flags_are_checked_before_criu_runs() {
    let rt = Runtime::new();
    let b = counter_bundle("/tmp/n");
    let id = unique_id("cr-flags");
    let _io = run_detached(&rt, &b, &id);
    let tmp = tempfile::tempdir().unwrap();
    let image_dir = tmp.path().join("image");
    let image = image_dir.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--parent-path", "/abs"],
            "--parent-path /abs: must be relative",
        ),
        (
            &["--manage-cgroups-mode", "bogus"],
            "--manage-cgroups-mode \"bogus\": must be",
        ),
        (&["--empty-ns", "ipc"], "--empty-ns \"ipc\": not supported"),
        (
            &["--page-server", "nowhere"],
            "--page-server \"nowhere\": use ADDRESS:PORT",
        ),
    ];
    for (flags, want) in cases {
        let out = rt
            .cmd()
            .env("BERTH_CRIU", "/nonexistent/criu")
            .arg("checkpoint")
            .args(flags)
            .args(["--image-path", image, &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        fails_with_one_line(&out, want);
    }
    // CRIU missing altogether: said so, by name.
    let out = rt
        .cmd()
        .env("BERTH_CRIU", "/nonexistent/criu")
        .args(["checkpoint", "--image-path", image, &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fails_with_one_line(
        &out,
        "CRIU is not installed: \"/nonexistent/criu\" not found",
    );
    // Refused before anything was written: not even the image directory.
    assert!(
        !image_dir.exists(),
        "{image_dir:?} made by a refused checkpoint"
    );
    // A relative --parent-path is taken through the image directory once it is made, as
    // runc: "../pre" beside a new image directory is found (CRIU, a stand-in that exits at
    // once here, is what fails then).
    fs::create_dir(tmp.path().join("pre")).unwrap();
    let out = rt
        .cmd()
        .env("BERTH_CRIU", "/bin/true")
        .args([
            "checkpoint",
            "--parent-path",
            "../pre",
            "--image-path",
            image,
            &id,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fails_with_one_line(&out, &format!("checkpoint {id}: CRIU dump failed"));
    assert!(!stderr(&out).contains("--parent-path"), "{}", stderr(&out));
    assert_eq!(rt.status(&id), "running");
    kill_and_delete(&rt, &id);
}

/// A restore that cannot be done leaves nothing: no state dir, cgroup or mount, and a
/// container already there under that id is untouched.
#[test]
fn restore_refuses_a_missing_or_foreign_image_and_an_id_in_use() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let bundle = b.path().to_str().unwrap();
    let id = unique_id("cr-restore-bad");
    rt.track_bundle(&id, b.path());
    let missing = b.path().join("no-such-image");
    let out = rt.berth(&[
        "restore",
        "-d",
        "--bundle",
        bundle,
        "--image-path",
        missing.to_str().unwrap(),
        &id,
    ]);
    fails_with_one_line(&out, &format!("--image-path {}", missing.display()));
    rt.assert_nothing_left(&id);
    // A directory that is no checkpoint (no descriptors.json of a dump).
    let not_an_image = tempfile::tempdir().unwrap();
    let out = rt.berth(&[
        "restore",
        "-d",
        "--bundle",
        bundle,
        "--image-path",
        not_an_image.path().to_str().unwrap(),
        &id,
    ]);
    fails_with_one_line(&out, "not a container checkpoint (no descriptors.json)");
    rt.assert_nothing_left(&id);
    // An image, but CRIU cannot restore it (a foreign or broken one; or, here, no CRIU that
    // works): CRIU's words, nothing left.
    fs::write(
        not_an_image.path().join("descriptors.json"),
        "[\"/dev/null\",\"/dev/null\",\"/dev/null\"]",
    )
    .unwrap();
    let out = rt.berth(&[
        "restore",
        "-d",
        "--bundle",
        bundle,
        "--image-path",
        not_an_image.path().to_str().unwrap(),
        &id,
    ]);
    if criu_installed() {
        fails_with_one_line(&out, &format!("restore {id}: CRIU restore failed: "));
    } else {
        fails_with_one_line(&out, "CRIU is not installed");
    }
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
    // An id in use: refused, and that container runs on.
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = pid_of(&rt, &id);
    let out = rt.berth(&[
        "restore",
        "-d",
        "--bundle",
        bundle,
        "--image-path",
        not_an_image.path().to_str().unwrap(),
        &id,
    ]);
    fails_with_one_line(&out, &format!("container {id:?} already exists"));
    assert_eq!(rt.status(&id), "created");
    assert_eq!(pid_of(&rt, &id), pid);
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

/// `features` says checkpoint works (runc's annotation) only where CRIU is installed.
#[test]
fn features_report_checkpoint_where_criu_is_installed() {
    let rt = Runtime::new();
    let key = "org.opencontainers.runc.checkpoint.enabled";
    let out = rt
        .cmd()
        .env("BERTH_CRIU", "/nonexistent/criu")
        .arg("features")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["annotations"].get(key).is_none(), "{v}");
    let out = rt
        .cmd()
        .env("BERTH_CRIU", "/bin/true")
        .arg("features")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["annotations"][key], "true", "{v}");
}

/// As runc: the prestart and createRuntime hooks run on restore too, once CRIU has made the
/// namespaces, with the restored init's pid; poststop runs when it is deleted.
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn restore_runs_the_create_time_hooks_with_the_restored_pid() {
    let rt = Runtime::new();
    let mut b = counter_bundle("/tmp/n");
    let out_dir = tempfile::tempdir().unwrap();
    let hook = |name: &str| {
        let file = out_dir.path().join(name);
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat >{}", file.display())]})
    };
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "poststop": [hook("poststop")],
        })
    });
    let id = unique_id("cr-hooks");
    let count = b.path().join("rootfs/tmp/n");
    let (_tmp, image) = run_and_checkpoint(&rt, &b, &id, &count, 3);
    for name in ["prestart", "createRuntime", "poststop"] {
        fs::remove_file(out_dir.path().join(name)).unwrap();
    }
    let _io = restore_detached(&rt, &b, &id, &image, &[]);
    let restored = pid_of(&rt, &id);
    for name in ["prestart", "createRuntime"] {
        let state: serde_json::Value =
            serde_json::from_slice(&fs::read(out_dir.path().join(name)).unwrap()).unwrap();
        assert_eq!(state["pid"], restored, "{name}: {state}");
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
    }
    kill_and_delete(&rt, &id);
    assert!(
        out_dir.path().join("poststop").exists(),
        "poststop did not run on delete"
    );
}

/// A restore in the foreground waits for the restored process, exits with its status and
/// deletes the container, as `run` does.
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn a_foreground_restore_exits_with_the_restored_process_status() {
    let rt = Runtime::new();
    let mut b = counter_bundle("/tmp/n");
    b.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "exec 3>>/tmp/n; i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo $i >&3; sleep 0.05; done; exit 7"
        ])
    });
    let id = unique_id("cr-fg");
    let count = b.path().join("rootfs/tmp/n");
    let (_tmp, image) = run_and_checkpoint(&rt, &b, &id, &count, 3);
    let bundle = b.path().to_str().unwrap();
    let (_io, status, err) = berth_with_pipes(
        &rt,
        &[
            "restore",
            "--bundle",
            bundle,
            "--image-path",
            image.to_str().unwrap(),
            &id,
        ],
    );
    assert_eq!(status.code(), Some(7), "restore: {err}");
    assert_eq!(read_count(&count), 60);
    rt.assert_nothing_left(&id);
}

/// A checkpoint with a bind mount: the container, checkpointed, and the host directory it
/// writes to through `/data/deep`.
fn checkpointed_with_a_bind_mount(
    rt: &Runtime,
    id: &str,
) -> (Bundle, tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let mut b = counter_bundle("/data/deep/n");
    let host_dir = tempfile::tempdir().unwrap();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data/deep",
            "type": "bind",
            "source": host_dir.path(),
            "options": ["rbind", "rw"]
        }))
    });
    let (tmp, image) = run_and_checkpoint(rt, &b, id, &host_dir.path().join("n"), 3);
    (b, host_dir, image, tmp)
}

/// As runc: restore makes the bind mounts' mount points that the rootfs lacks (a copy of it
/// made elsewhere, say) before CRIU mounts on them.
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn restore_makes_the_mount_points_the_rootfs_lacks() {
    let rt = Runtime::new();
    let id = unique_id("cr-mountpoint");
    let (b, host_dir, image, _tmp) = checkpointed_with_a_bind_mount(&rt, &id);
    let count = host_dir.path().join("n");
    fs::remove_dir_all(b.path().join("rootfs/data")).unwrap();
    let at_dump = read_count(&count);
    let _io = restore_detached(&rt, &b, &id, &image, &[]);
    wait_count(&count, at_dump + 3);
    assert!(b.path().join("rootfs/data/deep").is_dir());
    kill_and_delete(&rt, &id);
}

/// An image restored into another container's bundle (here: one without the image's bind
/// mount) fails with CRIU's words and leaves nothing of the new container.
#[test]
#[ignore = "needs a kernel CRIU works with (Debian 12's): runs in the systemd guest (make systemd-test)"]
fn an_image_of_another_container_is_refused_and_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("cr-other");
    let (_b, _host_dir, image, _tmp) = checkpointed_with_a_bind_mount(&rt, &id);
    let other = counter_bundle("/tmp/n");
    let other_id = unique_id("cr-other-b");
    rt.track_bundle(&other_id, other.path());
    let bundle = other.path().to_str().unwrap();
    let (_io, status, err) = berth_with_pipes(
        &rt,
        &[
            "restore",
            "-d",
            "--bundle",
            bundle,
            "--image-path",
            image.to_str().unwrap(),
            &other_id,
        ],
    );
    assert!(
        !status.success(),
        "restored into another container's bundle"
    );
    assert!(
        err.contains(&format!("restore {other_id}: CRIU restore failed: ")),
        "{err}"
    );
    rt.assert_nothing_left(&other_id);
    harness::assert_no_process_of(&other_id);
}

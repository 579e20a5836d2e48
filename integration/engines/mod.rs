//! Real engines driving berth: containerd (`ctr` through containerd-shim-runc-v2,
//! containerd.rs) and podman (through conmon, podman.rs), each started privately per test
//! (own root, state, socket, storage, cgroup parent) on a busybox image made locally by
//! hack/make-image.sh, and torn down by a Drop guard even when the test fails. A test skips,
//! saying so, only when the engine's binaries are not installed, and in CI (`CI=true`) it
//! fails then instead. Docker: docker.rs.
//!
//! This file is what they share (and docker.rs uses too): the image, one engine test at a
//! time, finding the binaries, running a command on a pty of its own (`under_pty`), the
//! host's view of a container's cgroup, the pieces of an engine guard's teardown and the
//! check that an engine left nothing of a container; and `berth features`, which needs no
//! engine.

use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::*;

mod containerd;
mod podman;

/// One engine test at a time (containerd, podman and docker.rs alike): they share host paths
/// that the engines hard-code (/run/containerd/s for shim sockets, /run/berth for podman,
/// /var/lib/containers/cache, /run/docker), which each guard removes again when it created
/// them.
pub(crate) fn engine_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The installed binary `name`, or None.
pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Returns early from the test, saying why, when an engine binary is missing; fails
/// instead in CI (`CI=true`), where every engine must be installed.
macro_rules! require_binaries {
    ($($name:expr),+) => {
        for name in [$($name),+] {
            if $crate::engines::find_binary(name).is_none() {
                $crate::harness::skip_or_fail(&format!("{name} is not installed (apt-get install containerd podman conmon bsdutils)"));
                return;
            }
        }
    };
}
pub(crate) use require_binaries;

/// The busybox image as a docker-archive tarball, made once per test run.
pub(crate) fn image_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-busybox-image.tar");
        if !tar.exists() {
            let tmp = tar.with_extension(format!("tmp{}", std::process::id()));
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/make-image.sh");
            let st = Command::new(script)
                .arg(&tmp)
                .arg(IMAGE)
                .status()
                .expect("run hack/make-image.sh");
            assert!(st.success(), "hack/make-image.sh failed");
            fs::rename(&tmp, &tar).unwrap();
        }
        tar
    })
}

pub(crate) const IMAGE: &str = "localhost/berth-busybox:latest";

pub(crate) fn out_text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

pub(crate) fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", out_text(out));
}

/// Waits until `f` is true, or fails naming `what`.
pub(crate) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The directory of `pid`'s cgroup in the hierarchy holding `controller` (v1), else in the
/// cgroup2 hierarchy.
pub(crate) fn host_cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let cgroups = cgroups_of_process(pid);
    let mounts = my_mounts();
    let (cgroup, mount) = match cgroups
        .iter()
        .find(|g| g.controllers.iter().any(|c| c == controller))
    {
        Some(g) => (
            g,
            mounts
                .iter()
                .find(|m| m.fs_type == "cgroup" && m.super_options.contains_key(controller)),
        ),
        None => (
            cgroups.iter().find(|g| is_cgroup2(g)).unwrap(),
            mounts.iter().find(|m| m.fs_type == "cgroup2"),
        ),
    };
    let path = cgroup.pathname.trim_start_matches('/');
    mount.unwrap().mount_point.join(path)
}

pub(crate) fn is_v1(controller: &str) -> bool {
    cgroups_of_process(std::process::id() as i32)
        .iter()
        .any(|g| g.controllers.iter().any(|c| c == controller))
}

/// The host's view of the container's memory limit, pids limit and freezer state.
pub(crate) fn memory_limit(pid: i32) -> String {
    let dir = host_cgroup_dir(pid, "memory");
    let file = if is_v1("memory") {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

pub(crate) fn pids_limit(pid: i32) -> String {
    let dir = host_cgroup_dir(pid, "pids");
    fs::read_to_string(dir.join("pids.max"))
        .unwrap()
        .trim()
        .to_string()
}

/// Where systemd is PID 1 (the systemd guest): the scope unit `pid` runs in (from the host's
/// /proc/PID/cgroup), checked to be active with these properties in `systemctl show`'s words
/// (e.g. ("MemoryMax", "67108864"), ("TasksMax", "50")). Elsewhere nothing: the engines use
/// cgroupfs there.
pub(crate) fn assert_unit_shows(pid: i32, want: &[(&str, &str)]) {
    if !systemd_is_init() {
        return;
    }
    let cgroups = cgroups_of_process(pid);
    let unit = cgroups
        .iter()
        .find(|g| is_cgroup2(g))
        .and_then(|g| g.pathname.rsplit('/').find(|part| part.ends_with(".scope")))
        .unwrap_or_else(|| panic!("pid {pid} is in no scope unit: {cgroups:?}"))
        .to_string();
    let mut args = vec!["show".to_string(), unit.clone()];
    for (name, _) in want.iter().chain(&[("ActiveState", "active")]) {
        args.push(format!("--property={name}"));
    }
    let out = Command::new("systemctl").args(&args).output().unwrap();
    assert_ok(&out, "systemctl show");
    let text = stdout(&out);
    for (name, value) in want.iter().chain(&[("ActiveState", "active")]) {
        let line = format!("{name}={value}");
        assert!(
            text.lines().any(|l| l == line),
            "{unit}: no {line} in {text}"
        );
    }
}

pub(crate) fn frozen(pid: i32) -> bool {
    let dir = host_cgroup_dir(pid, "freezer");
    if is_v1("freezer") {
        fs::read_to_string(dir.join("freezer.state"))
            .unwrap()
            .trim()
            == "FROZEN"
    } else {
        fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("frozen 1")
    }
}

/// Live processes whose command line mentions `needle` (an engine's private directory).
pub(crate) fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let needle = needle.as_bytes();
    live_processes(|_, cmdline| cmdline.windows(needle.len()).any(|w| w == needle))
}

/// Reaps zombies of ours (engine daemons reparented to the test process, a subreaper) whose
/// command name is one of `names`.
pub(crate) fn reap_zombies_named(names: &[&str]) {
    let me = std::process::id() as i32;
    for p in procfs::process::all_processes().unwrap().flatten() {
        let Ok(stat) = p.stat() else {
            continue;
        };
        if stat.state == 'Z' && stat.ppid == me && names.contains(&stat.comm.as_str()) {
            reap(stat.pid);
        }
    }
}

/// The command names of the engine processes that can end up as children of the test.
const ENGINE_COMMANDS: &[&str] = &[
    "containerd",
    "containerd-shim",
    "conmon",
    "podman",
    "dockerd",
];

/// Stops every live process mentioning `needle`: TERM, a grace period, then KILL.
pub(crate) fn stop_processes_mentioning(needle: &str, grace: Duration) {
    let deadline = Instant::now() + grace;
    let mut signalled = false;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            // Engine daemons that exited were reparented to the test process (a subreaper):
            // collect them rather than leave zombies for the rest of the run.
            reap_zombies_named(ENGINE_COMMANDS);
            return;
        }
        let sig = if Instant::now() >= deadline {
            libc::SIGKILL
        } else if !signalled {
            libc::SIGTERM
        } else {
            0
        };
        if sig != 0 {
            for (pid, _) in &left {
                // SAFETY: kill(2) on a pid we just saw; at worst it is gone (ESRCH).
                unsafe { libc::kill(*pid, sig) };
            }
            signalled = true;
        }
        reap_zombies_named(ENGINE_COMMANDS);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nothing of container `id` left after an engine deleted it: nothing in berth's state root
/// `root` (the one the engine passes), no cgroup, mount or process of `id`.
pub(crate) fn assert_engine_left_nothing(root: &Path, id: &str) {
    let left: Vec<_> = fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "berth's root {root:?} still holds {left:?}"
    );
    assert_no_trace_of(id, &[]);
}

/// No cgroup of container `id` (berth's, or one an engine named `engine_cgroups`), no systemd
/// unit, mount or process of it.
pub(crate) fn assert_no_trace_of(id: &str, engine_cgroups: &[String]) {
    let mut cg = container_cgroups(id);
    for name in engine_cgroups {
        cg.extend(cgroup_dirs_named(name));
    }
    assert!(cg.is_empty(), "cgroups of {id} left: {cg:?}");
    let units = systemd_units_of(id);
    assert!(units.is_empty(), "systemd units of {id} left: {units:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let m: Vec<&str> = mounts.lines().filter(|l| l.contains(id)).collect();
    assert!(m.is_empty(), "mounts of {id} left: {m:?}");
    assert_no_process_of(id);
}

/// Stops a slice an engine made for a test's containers (the systemd driver's parent).
pub(crate) fn stop_systemd_slice(slice: &str) {
    let _ = Command::new("systemctl").args(["stop", slice]).output();
}

/// Stops an engine daemon this test started: SIGTERM, `grace` to exit, then SIGKILL.
pub(crate) fn stop_daemon(daemon: Option<Child>, grace: Duration) {
    let Some(mut d) = daemon else { return };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = d.kill();
    let _ = d.wait();
}

/// `berth delete --force` of every container still in the state root `root` (a failed test).
pub(crate) fn force_delete_all(root: &Path) {
    for e in fs::read_dir(root).into_iter().flatten().flatten() {
        let _ = Command::new(BERTH)
            .arg("--root")
            .arg(root)
            .args(["delete", "--force"])
            .arg(e.file_name())
            .output();
    }
}

/// Unmounts (lazily) whatever is still mounted under `dir`, deepest first.
pub(crate) fn unmount_under(dir: &Path) {
    let mut points: Vec<Vec<u8>> = my_mounts()
        .into_iter()
        .map(|m| m.mount_point.into_os_string().into_vec())
        .filter(|p| p.starts_with(dir.as_os_str().as_bytes()))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Removes cgroup directory `rel` (and what is under it) from every hierarchy.
pub(crate) fn remove_cgroup_tree(rel: &str) {
    fn rm(dir: &Path) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rm(&e.path());
                }
            }
        }
        let _ = fs::remove_dir(dir);
    }
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = h.path().join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            rm(&dir);
        }
    }
    // A pure cgroup2 host has the tree at the top.
    let top = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    if top.is_dir() {
        rm(&top);
    }
}

pub(crate) fn cgroup_tree_exists(rel: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = h.path().join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            found.push(dir);
        }
    }
    found
}

/// Removes `dir` at the end when it did not exist at the start (and is then empty, or holds
/// only what an engine put there for this test).
pub(crate) struct CreatedDir {
    dir: PathBuf,
    existed: bool,
}

impl CreatedDir {
    pub(crate) fn note(dir: &str) -> CreatedDir {
        CreatedDir {
            dir: PathBuf::from(dir),
            existed: Path::new(dir).exists(),
        }
    }

    pub(crate) fn clean(&self, whole: bool) {
        if self.existed {
            return;
        }
        if whole {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// `sh`-quotes `arg`.
fn sh_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Runs `argv` under `script -qec` from util-linux, which gives it a new pty as controlling
/// terminal, stdin and stdout, and types `input` into that terminal. Returns what appeared on
/// the terminal (with its CR LF line ends) and `argv`'s exit status; `timeout` ends a hang.
pub(crate) fn under_pty(argv: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let line: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", "60", "script", "-qec"])
        .arg(line.join(" "))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn features_prints_what_containerd_reads() {
    // As containerd calls it: no global flags at all.
    let out = Command::new(BERTH)
        .arg("features")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out, "berth features");
    let v: Value = serde_json::from_slice(&out.stdout).expect("features prints JSON");
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert!(v["ociVersionMax"].as_str().unwrap().starts_with("1."));
    let opts: Vec<&str> = v["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    // containerd's CRI checks for "rro" before asking for recursive read-only mounts.
    assert!(opts.contains(&"rro") && opts.contains(&"rbind"), "{opts:?}");
    assert!(v["hooks"].is_array());
    // What berth reads from annotations: the systemd driver's unit properties.
    assert_eq!(
        v["potentiallyUnsafeConfigAnnotations"],
        serde_json::json!(["org.systemd.property."])
    );
    let linux = &v["linux"];
    assert!(linux["namespaces"].as_array().unwrap().len() == 8);
    assert!(linux["capabilities"]
        .as_array()
        .unwrap()
        .contains(&Value::from("CAP_SYS_ADMIN")));
    assert_eq!(linux["seccomp"]["enabled"], true);
    assert!(linux["seccomp"]["supportedFlags"].is_array());
    assert!(linux["mountExtensions"]["idmap"]["enabled"].is_boolean());
    assert!(linux["cgroup"]["v2"].is_boolean());
}

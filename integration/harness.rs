//! The test harness: a private state root per test, busybox bundles built from Debian's
//! busybox-static, a runner for the real binary, and a leak check that fails any test which
//! leaves a state dir, a cgroup, a mount or a process behind.

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// Fails clearly when not root, instead of failing later in confusing ways.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("integration tests need root (namespaces, mounts, cgroups): run them as root");
    }
    static SUBREAPER: OnceLock<()> = OnceLock::new();
    SUBREAPER.get_or_init(|| {
        // Detached containers' inits are reparented to us instead of to a PID 1 that may not
        // reap (this machine's does not), so `reap` can collect them.
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only changes this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    });
}

/// A unique container ID with the test's name in it (and "berth-test", so leaks are traceable).
pub fn unique_id(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "berth-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The busybox rootfs, made once per test run by hack/make-rootfs.sh.
fn template_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox-rootfs");
        if !dir.join("bin/busybox").exists() {
            let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/make-rootfs.sh");
            let st = Command::new(script)
                .arg(&tmp)
                .status()
                .expect("run hack/make-rootfs.sh");
            assert!(st.success(), "hack/make-rootfs.sh failed");
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp); // another test process made it first
            }
        }
        dir
    })
}

/// A bundle directory with its own copy of the busybox rootfs and a config.json.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// runc's default config (from `berth spec`), no terminal, running `args`.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(template_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success(), "copy rootfs");
        let out = Command::new(BERTH)
            .args(["spec", "-b"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        let b = Bundle { dir, config };
        b.write();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `self.config` to config.json.
    pub fn write(&self) {
        fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Changes the config with `f` and writes it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.write();
    }
}

/// A private state root (`--root`) for one test, checked for leaks when dropped.
pub struct Runtime {
    pub root: tempfile::TempDir,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Runtime {
    pub fn new() -> Runtime {
        require_root();
        Runtime {
            root: tempfile::Builder::new()
                .prefix("berth-root-")
                .tempdir()
                .unwrap(),
            ids: Default::default(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs a berth command that does not leave processes holding its stdio.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    /// `create`, with the container's stdio going to files in the bundle (init inherits
    /// create's stdio, so pipes would never reach EOF).
    pub fn create(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.ids.lock().unwrap().push(id.to_string());
        let out = File::create(bundle.path().join("stdout")).unwrap();
        let err = File::create(bundle.path().join("stderr")).unwrap();
        let status = self
            .cmd()
            .arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .expect("run berth create");
        Output {
            status,
            stdout: fs::read(bundle.path().join("stdout")).unwrap(),
            stderr: fs::read(bundle.path().join("stderr")).unwrap(),
        }
    }

    /// `run` in the foreground, capturing the container's output.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.ids.lock().unwrap().push(id.to_string());
        self.cmd()
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Checks container `id` for leaks at the end of the test (and force-deletes it after a
    /// failure), for a container started with a command line of the test's own.
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.berth(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("state prints JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Deletes with --force and reaps init if it was reparented to the test process.
    pub fn delete_force(&self, id: &str) {
        let pid = self.berth(&["state", id]);
        let out = self.berth(&["delete", "--force", id]);
        assert!(
            out.status.success(),
            "delete --force {id}: {}",
            stderr(&out)
        );
        if let Ok(v) = serde_json::from_slice::<Value>(&pid.stdout) {
            reap(v["pid"].as_i64().unwrap_or(0) as i32);
        }
    }

    /// Asserts nothing of container `id` is left: state dir, cgroup dirs, processes, mounts.
    pub fn assert_nothing_left(&self, id: &str) {
        assert!(
            !self.root.path().join(id).exists(),
            "state dir of {id} left behind"
        );
        let cgroups = cgroup_dirs_named(id);
        assert!(
            cgroups.is_empty(),
            "cgroups of {id} left behind: {cgroups:?}"
        );
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(id), "mounts of {id} left behind");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Clean up after a failed test so one failure does not leak into others.
            for id in self.ids.lock().unwrap().iter() {
                let _ = self.cmd().args(["delete", "--force", id]).output();
            }
            return;
        }
        for id in self.ids.lock().unwrap().iter() {
            self.assert_nothing_left(id);
        }
        let left: Vec<_> = fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "state root not empty at the end of the test: {left:?}"
        );
    }
}

/// Directories named `id` anywhere in the first levels of every cgroup hierarchy.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    fn walk(dir: &Path, id: &str, depth: u32, found: &mut Vec<PathBuf>) {
        if depth > 4 {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if e.file_name().to_string_lossy() == id {
                    found.push(e.path());
                }
                walk(&e.path(), id, depth + 1, found);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut found);
    found
}

/// Reaps `pid` if it is our child (detached inits are reparented to the test process, which
/// is a subreaper). Called after delete, when init is already dead.
pub fn reap(pid: i32) {
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid; status is a valid out pointer. ECHILD (not our
        // child) returns at once.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

/// Asserts that a berth command failed and its error says `want`.
pub fn assert_fails_with(out: &Output, want: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "succeeded, but an error with {want:?} was expected"
    );
    assert!(err.contains(want), "expected {want:?} in: {err}");
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespace link (e.g. "net:[4026531992]") of `kind` for `pid` ("self" for the host).
pub fn ns_link(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !matches!(
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .chars()
                    .next(),
                Some('Z') | Some('X')
            )
        })
        .unwrap_or(false)
}

/// Asserts a non-zero exit and exactly one error line, `berth: ...`, containing `want`.
pub fn fails_with_one_line(out: &Output, want: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "succeeded, but an error with {want:?} was expected (stderr: {err:?})"
    );
    assert!(err.contains(want), "expected {want:?} in: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {err:?}");
    assert!(lines[0].starts_with("berth: "), "unprefixed error: {err:?}");
}

/// Live (non-zombie) processes that belong to container `id`: those with `id` as one of their
/// arguments (create's setup process and init run berth's binary with create's argv until init
/// execs the user process) and those in a cgroup with `id` as a path component.
pub fn live_processes_of(id: &str) -> Vec<(i32, String)> {
    live_processes(|dir, cmdline| {
        let in_argv = cmdline.split(|b| *b == 0).any(|a| a == id.as_bytes());
        let cgroup = fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
        let in_cgroup = cgroup.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p.split('/').any(|c| c == id))
        });
        in_argv || in_cgroup
    })
}

/// Live (non-zombie) processes other than this one for which `matches(/proc/PID, cmdline)`
/// holds, with their arguments joined by spaces.
pub fn live_processes(matches: impl Fn(&Path, &[u8]) -> bool) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        // Checked again: a process that exited while being looked at is not a leak.
        if matches(&entry.path(), &cmdline) && alive(pid) {
            let args = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, args));
        }
    }
    found
}

/// Receives one message with one fd attached (SCM_RIGHTS) on a connected unix socket:
/// (bytes of the message in `buf`, the fd).
pub fn recv_with_fd(
    conn: &impl std::os::fd::AsRawFd,
    buf: &mut [u8],
) -> (usize, std::os::fd::OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("an fd with the message");
    // SAFETY: SCM_RIGHTS just installed this fd in our table; nothing else owns it.
    (msg.bytes, unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Asserts that no process of container `id` is alive. A setup process whose `create` died may
/// still be on its way out (it exits on its own once it sees the channel closed), so allow it a
/// moment; one that is still there after that is a leak.
pub fn assert_no_process_of(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = live_processes_of(id);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of {id} left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reaps the zombies of failed inits that were reparented to the test process (a subreaper):
/// children of ours, still named berth (they never exec'd), leading their own session.
pub fn reap_failed_inits() {
    let me = std::process::id().to_string();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let pid = stat.split(' ').next().unwrap_or("");
        let rest = stat.rsplit(") ").next().unwrap_or("");
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.len() < 4 {
            continue;
        }
        let (state, ppid, sid) = (fields[0], fields[1], fields[3]);
        if state == "Z" && ppid == me && sid == pid && stat.contains("(berth)") {
            reap(pid.parse().unwrap());
        }
    }
}

/// Asserts that no mount mentions `path` (a bundle's rootfs mounted on the host).
pub fn assert_no_mount_under(path: &Path) {
    let path = fs::canonicalize(path).unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(path.to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "mounts left behind: {left:?}");
}

/// Runs berth with `args` under `strace -f -e trace=SYSCALLS`; returns its output and the
/// trace (written into the bundle). Its stdout and stderr go to files in the bundle, so that a
/// `create`, whose init keeps them, returns too.
pub fn strace_berth(
    rt: &Runtime,
    b: &Bundle,
    syscalls: &str,
    args: &[&str],
) -> (std::process::Output, String) {
    let trace = b.path().join("strace.log");
    let (out, err) = (b.path().join("strace.out"), b.path().join("strace.err"));
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={syscalls}"), "-o"])
        .arg(&trace)
        .arg(BERTH)
        .arg("--root")
        .arg(rt.root.path())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .status()
        .expect("strace (apt-get install strace)");
    let output = Output {
        status,
        stdout: fs::read(&out).unwrap(),
        stderr: fs::read(&err).unwrap(),
    };
    (output, fs::read_to_string(&trace).unwrap_or_default())
}

//! The test harness: a private state root per test, busybox bundles built from Debian's
//! busybox-static, a runner for the real binary, and a leak check that fails any test which
//! leaves a state dir, a cgroup, a mount or a process behind.

#![allow(dead_code)]

use std::fs::{self, File};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use std::time::{Duration, Instant};

use procfs::process::{MountInfo, MountInfos, Process, Stat, Status};
use procfs::{FromBufRead, ProcessCGroup};
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

/// Whether this is a CI run (`CI` set, as CI services do, to anything but `false` or `0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A test that cannot run here says why and returns (the caller returns right after). In CI
/// that is a failure instead: a CI run that passes must have run every test, not skipped
/// the ones whose tools were missing.
pub fn skip_or_fail(why: &str) {
    assert!(
        !in_ci(),
        "{why}; CI is set, where a test that cannot run fails instead of skipping"
    );
    eprintln!("SKIPPED: {why}");
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
        // Every test bundle has a cgroup namespace, as `spec` gives on a pure v2 host (not on
        // this hybrid one): the tests of the cgroup mount and namespace rely on it.
        let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
        if !namespaces.iter().any(|n| n["type"] == "cgroup") {
            namespaces.push(json!({"type": "cgroup"}));
        }
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
    /// The containers this test made, with the bundle each was made from when known (its
    /// rootfs is where a leaked mount of berth's would be).
    ids: std::sync::Mutex<Vec<(String, Option<PathBuf>)>>,
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
        let child = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run berth");
        output_within(child, COMMAND_LIMIT)
    }

    /// `create`, with the container's stdio going to files in the bundle (init inherits
    /// create's stdio, so pipes would never reach EOF).
    pub fn create(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.create_with_globals(&[], bundle, id, extra)
    }

    /// As `create`, with global options (e.g. `--systemd-cgroup`) before the command.
    pub fn create_with_globals(
        &self,
        globals: &[&str],
        bundle: &Bundle,
        id: &str,
        extra: &[&str],
    ) -> Output {
        self.track_bundle(id, bundle.path());
        let out = File::create(bundle.path().join("stdout")).unwrap();
        let err = File::create(bundle.path().join("stderr")).unwrap();
        let child = self
            .cmd()
            .args(globals)
            .arg("create")
            .args(extra)
            .arg("--bundle")
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("run berth create");
        let status = wait_within(child, COMMAND_LIMIT).unwrap_or_else(|pid| {
            panic!("berth create {id} (pid {pid}) did not end within {COMMAND_LIMIT:?}; killed it")
        });
        Output {
            status,
            stdout: fs::read(bundle.path().join("stdout")).unwrap(),
            stderr: fs::read(bundle.path().join("stderr")).unwrap(),
        }
    }

    /// `run` in the foreground, capturing the container's output.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.track_bundle(id, bundle.path());
        let child = self
            .cmd()
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        output_within(child, COMMAND_LIMIT)
    }

    /// Checks container `id` for leaks at the end of the test (and force-deletes it after a
    /// failure), for a container started with a command line of the test's own.
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push((id.to_string(), None));
    }

    /// As `track`, for a container made from `bundle`: no mount may be left under it either.
    pub fn track_bundle(&self, id: &str, bundle: &Path) {
        let bundle = fs::canonicalize(bundle).unwrap_or_else(|_| bundle.to_path_buf());
        self.ids
            .lock()
            .unwrap()
            .push((id.to_string(), Some(bundle)));
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

    /// Asserts nothing of container `id` is left: state dir, cgroups (at any depth of any
    /// hierarchy), mounts (at a path with `id` as a component, or under its bundle).
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
        let bundles: Vec<PathBuf> = self
            .ids
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| i == id)
            .filter_map(|(_, b)| b.clone())
            .collect();
        let mounts = mounts_of(id, &bundles);
        assert!(mounts.is_empty(), "mounts of {id} left behind: {mounts:?}");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Clean up after a failed test so one failure does not leak into others.
            for (id, _) in self.ids.lock().unwrap().iter() {
                // Bounded, and never a second panic (that would abort every test).
                if let Ok(child) = self
                    .cmd()
                    .args(["delete", "--force", id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                {
                    if let Err(pid) = wait_within(child, COMMAND_LIMIT) {
                        eprintln!("cleanup: berth delete --force {id} (pid {pid}) hung; killed it");
                    }
                }
            }
            return;
        }
        let ids: Vec<String> = self
            .ids
            .lock()
            .unwrap()
            .iter()
            .map(|(i, _)| i.clone())
            .collect();
        for id in &ids {
            self.assert_nothing_left(id);
            assert_no_process_of(id);
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

/// Whether systemd is PID 1 here (its own test: /run/systemd/system exists only then).
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The cgroup directories of container `id` on any hierarchy: named `id` (berth's cgroupfs
/// driver) or `<prefix>-<id>.scope` (the systemd driver's unit, e.g. docker-<id>.scope).
pub fn container_cgroups(id: &str) -> Vec<PathBuf> {
    let scope = format!("-{id}.scope");
    let roots = cgroup_roots();
    let mut found = find_cgroups_named(&roots, id).unwrap_or_default();
    found.extend(find_cgroups(&roots, &|name: &str| name.ends_with(&scope)).unwrap_or_default());
    found
}

/// The units systemd knows (loaded, active or not) whose name mentions `id`; none where
/// systemd is not PID 1.
pub fn systemd_units_of(id: &str) -> Vec<String> {
    if !systemd_is_init() {
        return Vec::new();
    }
    let out = Command::new("systemctl")
        .args(["list-units", "--all", "--plain", "--no-legend"])
        .output()
        .expect("run systemctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(id))
        .map(str::to_owned)
        .collect()
}

/// The cgroup directories named `id`, at any depth of every cgroup hierarchy mounted here.
/// A directory that cannot be read fails the test: what it holds is unknown, so it cannot
/// count as clean.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let roots = cgroup_roots();
    assert!(
        !roots.is_empty(),
        "no cgroup hierarchy is mounted: cannot look for cgroups of {id}"
    );
    find_cgroups_named(&roots, id).unwrap_or_else(|e| panic!("looking for cgroups of {id}: {e}"))
}

/// The mount point of each cgroup hierarchy (cgroup and cgroup2 mounts of a hierarchy's root,
/// one per hierarchy). Only these are walked: the tmpfs that holds them on a v1 host is not a
/// cgroup, and what others make in it is not berth's (podman's cgroupfs manager leaves plain
/// directories there for controllers that are not mounted).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut roots = Vec::new();
    for m in my_mounts() {
        if (m.fs_type == "cgroup" || m.fs_type == "cgroup2")
            && m.root == "/"
            && seen.insert(m.majmin.clone())
        {
            roots.push(m.mount_point);
        }
    }
    roots
}

/// Directories named `id` under `roots` at any depth. Err names a directory that could not
/// be read (one removed while walking is not an error: a concurrent test deleted it).
pub fn find_cgroups_named(roots: &[PathBuf], id: &str) -> Result<Vec<PathBuf>, String> {
    find_cgroups(roots, &|name| name == id)
}

/// Directories under `roots`, at any depth, whose name satisfies `matches`; errors as
/// `find_cgroups_named`.
pub fn find_cgroups(
    roots: &[PathBuf],
    matches: &dyn Fn(&str) -> bool,
) -> Result<Vec<PathBuf>, String> {
    type Matches<'a> = &'a dyn Fn(&str) -> bool;
    fn walk(dir: &Path, id: Matches, top: bool, found: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if !top && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
            };
            // d_type: cgroupfs reports it, so this costs no stat.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if id(&e.file_name().to_string_lossy()) {
                    found.push(e.path());
                }
                walk(&e.path(), id, false, found)?;
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    for root in roots {
        walk(root, matches, true, &mut found)?;
    }
    Ok(found)
}

/// This process's mounts (/proc/self/mountinfo), paths decoded.
pub fn my_mounts() -> Vec<MountInfo> {
    let infos = Process::myself()
        .and_then(|p| p.mountinfo())
        .expect("read /proc/self/mountinfo");
    decoded(infos)
}

/// Process `pid`'s mounts (/proc/PID/mountinfo), paths decoded; Err if it cannot be read
/// (the process is gone).
pub fn mounts_in(pid: i32) -> procfs::ProcResult<Vec<MountInfo>> {
    Ok(decoded(Process::new(pid)?.mountinfo()?))
}

/// Mountinfo text a container printed (`cat /proc/self/mountinfo`), paths decoded.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let infos = MountInfos::from_buf_read(text.as_bytes())
        .unwrap_or_else(|e| panic!("not mountinfo ({e}):\n{text}"));
    decoded(infos)
}

/// The mount at `point` on top of any others there (the last one listed).
pub fn mount_at(mounts: &[MountInfo], point: impl AsRef<Path>) -> Option<&MountInfo> {
    mounts.iter().rfind(|m| m.mount_point == point.as_ref())
}

/// procfs leaves mountinfo's octal escapes (`\040` for a space) in root and mount_point:
/// undone, so that they compare with real paths.
fn decoded(infos: MountInfos) -> Vec<MountInfo> {
    fn unescape(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let octal = b
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
            if let (b'\\', Some(d)) = (b[i], octal) {
                out.push(
                    d.iter()
                        .fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }
    infos
        .into_iter()
        .map(|mut m| {
            m.root = String::from_utf8_lossy(&unescape(m.root.as_bytes())).into_owned();
            let point = unescape(m.mount_point.as_os_str().as_bytes());
            m.mount_point = PathBuf::from(std::ffi::OsString::from_vec(point));
            m
        })
        .collect()
}

/// Process `pid`'s cgroups (/proc/PID/cgroup), in the kernel's order.
pub fn cgroups_of_process(pid: i32) -> Vec<ProcessCGroup> {
    Process::new(pid)
        .and_then(|p| p.cgroups())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"))
        .0
}

/// Whether a /proc/PID/cgroup entry is cgroup2's ("0::path").
pub fn is_cgroup2(g: &ProcessCGroup) -> bool {
    g.hierarchy == 0 && g.controllers.is_empty()
}

/// Process `pid`'s /proc/PID/status.
pub fn status_of(pid: i32) -> Status {
    Process::new(pid)
        .and_then(|p| p.status())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"))
}

/// Process `pid`'s /proc/PID/stat.
pub fn stat_of(pid: i32) -> Stat {
    Process::new(pid)
        .and_then(|p| p.stat())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"))
}

/// Mount points (of this mount namespace) that belong to container `id`: a path with `id` as
/// one whole component (its state dir, anything named after it), or at or under one of
/// `under` (its bundle). Whole components and paths, not substrings: `berth-test-x-1-1` must
/// not be blamed for a mount of `berth-test-x-1-10`.
pub fn mounts_of(id: &str, under: &[PathBuf]) -> Vec<PathBuf> {
    my_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| {
            p.components().any(|c| c.as_os_str() == id) || under.iter().any(|u| p.starts_with(u))
        })
        .collect()
}

/// Reaps `pid` if it is our child (detached inits are reparented to the test process, which
/// is a subreaper). Called after delete, when init is already dead.
pub fn reap(pid: i32) {
    // Bounded: a process that never ends fails its test instead of hanging the suite.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
    if pid <= 0 {
        return;
    }
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid; status is a valid out pointer. ECHILD (not our
        // child) returns at once.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != 0 {
            return;
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: kill and waitpid on our own child, which has not been reaped (pid kept).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("process {pid} did not end within {LIMIT:?}; killed it");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// How long one berth command of a test may take before it fails the test: far beyond any
/// normal run (even under a VM's software emulation), so only a hang reaches it.
pub const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `child.wait()`, bounded: after `limit` the child is killed and reaped, and its pid is the
/// error.
pub fn wait_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, u32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Ok(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `child.wait_with_output()`, bounded: a child (or something holding its pipes) that never
/// ends fails the test after `limit` instead of hanging the suite.
pub fn output_within(child: std::process::Child, limit: std::time::Duration) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) of the child spawned above, not yet reaped (its waiter blocks).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("process {pid} (or a holder of its output pipes) did not end within {limit:?}")
        }
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
    Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|s| !matches!(s.state, 'Z' | 'X'))
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
    live_processes(|p, cmdline| {
        let in_argv = cmdline.split(|b| *b == 0).any(|a| a == id.as_bytes());
        let in_cgroup = p.cgroups().is_ok_and(|c| {
            c.into_iter()
                .any(|g| g.pathname.split('/').any(|c| c == id))
        });
        in_argv || in_cgroup
    })
}

/// Live (non-zombie) processes other than this one for which `matches(process, cmdline)`
/// holds, with their arguments joined by spaces.
pub fn live_processes(matches: impl Fn(&Process, &[u8]) -> bool) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for p in procfs::process::all_processes().unwrap().flatten() {
        let pid = p.pid();
        if pid == me || !alive(pid) {
            continue;
        }
        let cmdline = cmdline_of(pid);
        // Checked again: a process that exited while being looked at is not a leak.
        if matches(&p, &cmdline) && alive(pid) {
            let args = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, args));
        }
    }
    found
}

/// The process's arguments. Right after an execve the kernel has woken the parent (a vfork
/// or posix_spawn returns) before it has set the new arguments up, and the file reads empty
/// for a moment: a user process (one with an executable; kernel threads have none) whose
/// arguments read empty is read again, for up to 100 ms.
fn cmdline_of(pid: i32) -> Vec<u8> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..100 {
        let cmdline = fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        if !cmdline.is_empty() || fs::read_link(proc_dir.join("exe")).is_err() {
            return cmdline;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Vec::new()
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
    let me = std::process::id() as i32;
    for p in procfs::process::all_processes().unwrap().flatten() {
        let Ok(stat) = p.stat() else {
            continue;
        };
        if stat.state == 'Z' && stat.ppid == me && stat.session == stat.pid && stat.comm == "berth"
        {
            reap(stat.pid);
        }
    }
}

/// Asserts that nothing is mounted at or under `path` (a bundle's rootfs mounted on the host).
pub fn assert_no_mount_under(path: &Path) {
    let path = fs::canonicalize(path).unwrap();
    let left: Vec<PathBuf> = my_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&path))
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
    strace_with(&["-f"], rt, b, syscalls, args)
}

/// `strace_berth` tracing only berth's first process, not the ones it starts: for a `create`,
/// whose init, stopped at the start gate, would keep `strace -f` waiting.
pub fn strace_berth_first_process(
    rt: &Runtime,
    b: &Bundle,
    syscalls: &str,
    args: &[&str],
) -> (std::process::Output, String) {
    strace_with(&[], rt, b, syscalls, args)
}

fn strace_with(
    options: &[&str],
    rt: &Runtime,
    b: &Bundle,
    syscalls: &str,
    args: &[&str],
) -> (std::process::Output, String) {
    let trace = b.path().join("strace.log");
    let (out, err) = (b.path().join("strace.out"), b.path().join("strace.err"));
    let status = std::process::Command::new("strace")
        .args(options)
        .args(["-qq", "-e", &format!("trace={syscalls}"), "-o"])
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

// The leak checks' own tests: each makes the leak a check must catch, or the thing it must
// not blame on berth, and looks at what the check says.

/// Removes directories (deepest first) and unmounts paths when a leak-check test ends.
struct Undo {
    mounts: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        for d in self.dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

#[test]
fn leak_check_finds_cgroups_at_any_depth_of_every_hierarchy() {
    require_root();
    let id = unique_id("nestedcg");
    let mut undo = Undo {
        mounts: vec![],
        dirs: vec![],
    };
    let mut made = Vec::new();
    for root in cgroup_roots() {
        // Seven levels down: deeper than any fixed limit a walk might have.
        let mut dir = root.join(format!("{id}-parent"));
        for level in ["a", "b", "c", "d", "e", "f", id.as_str()] {
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            undo.dirs.push(dir.clone());
            dir = dir.join(level);
        }
        fs::create_dir(&dir).unwrap();
        undo.dirs.push(dir.clone());
        made.push(dir);
    }
    assert!(!made.is_empty());
    let mut found = cgroup_dirs_named(&id);
    found.sort();
    made.sort();
    assert_eq!(found, made, "the nested cgroups named {id}");
    drop(undo);
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn leak_check_does_not_blame_berth_for_plain_directories_in_the_cgroup_tmpfs() {
    require_root();
    let base = Path::new("/sys/fs/cgroup");
    let fs_type = nix::sys::statfs::statfs(base).unwrap().filesystem_type();
    if fs_type != nix::sys::statfs::TMPFS_MAGIC {
        eprintln!("skipped: /sys/fs/cgroup is not a tmpfs here (a pure cgroup v2 host)");
        return;
    }
    let id = unique_id("plaindir");
    let mut undo = Undo {
        mounts: vec![],
        dirs: vec![],
    };
    // What podman's cgroupfs manager leaves for a controller that is not mounted: plain
    // directories in the tmpfs with a plain `tasks` file, named after the container.
    let plain = base.join(format!("{id}-hugetlb"));
    let leaf = plain.join("libpod_parent").join(&id);
    fs::create_dir_all(&leaf).unwrap();
    fs::write(leaf.join("tasks"), "").unwrap();
    // A real cgroup of that name next to it, which the check must still see.
    let real = cgroup_roots()[0].join(&id);
    fs::create_dir(&real).unwrap();
    undo.dirs.push(real.clone());
    let found = cgroup_dirs_named(&id);
    fs::remove_dir_all(&plain).unwrap();
    assert_eq!(
        found,
        vec![real],
        "only the real cgroup is berth's to answer for"
    );
}

#[test]
fn leak_check_fails_on_a_cgroup_directory_it_cannot_read() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let id = unique_id("unreadablecg");
    let dir = cgroup_roots()[0].join(&id);
    fs::create_dir(&dir).unwrap();
    let _undo = Undo {
        mounts: vec![],
        dirs: vec![dir.clone()],
    };
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any directory: a thread without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in
    // its effective set is refused, as a check running with less privilege would be.
    // Capabilities belong to the thread, so the rest of the test process keeps them.
    let (result, panicked) = std::thread::spawn(|| {
        for cap in [
            caps::Capability::CAP_DAC_OVERRIDE,
            caps::Capability::CAP_DAC_READ_SEARCH,
        ] {
            caps::drop(None, caps::CapSet::Effective, cap).unwrap();
        }
        let result = find_cgroups_named(&cgroup_roots(), "no-container-is-called-this");
        let panicked =
            std::panic::catch_unwind(|| cgroup_dirs_named("no-container-is-called-this")).is_err();
        (result, panicked)
    })
    .join()
    .unwrap();
    let err = result.expect_err("a cgroup directory that could not be read passed the check");
    assert!(err.contains(&id), "the error names the directory: {err}");
    assert!(
        panicked,
        "cgroup_dirs_named passed with a directory it could not read"
    );
}

#[test]
fn leak_check_matches_mounts_by_whole_path() {
    require_root();
    let id = unique_id("mountcheck");
    let tmp = tempfile::Builder::new()
        .prefix("berth-mountcheck-")
        .tempdir()
        .unwrap();
    let tmp = fs::canonicalize(tmp.path()).unwrap();
    let named = tmp.join(&id).join("sub"); // a path component is the id: berth's
    let longer = tmp.join(format!("{id}0")); // only a substring: another container's
    let bundle = tmp.join("bundle");
    let in_bundle = bundle.join("rootfs/mnt"); // under the bundle, the id nowhere in it
    let next_to_bundle = tmp.join("bundle0"); // not under it, though its path starts alike
    let mut undo = Undo {
        mounts: vec![],
        dirs: vec![],
    };
    for p in [&named, &longer, &in_bundle, &next_to_bundle] {
        fs::create_dir_all(p).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            p.as_path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        undo.mounts.push(p.clone());
    }
    let mut found = mounts_of(&id, std::slice::from_ref(&bundle));
    found.sort();
    let mut want = vec![named.clone(), in_bundle.clone()];
    want.sort();
    assert_eq!(found, want);
    let found = std::panic::catch_unwind(|| assert_no_mount_under(&bundle));
    assert!(found.is_err(), "assert_no_mount_under missed {in_bundle:?}");
    nix::mount::umount2(in_bundle.as_path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_no_mount_under(&bundle); // bundle0 is not under it
    drop(undo);
    assert!(mounts_of(&id, &[bundle]).is_empty());
}

#[test]
fn leak_check_at_the_end_of_a_test_finds_a_live_process() {
    require_root();
    let id = unique_id("procleak");
    // A process with the id in its argv, as create's setup process and init have until exec.
    // ("; :" keeps sh itself, with the id in its argv: dash would exec a lone command.)
    let mut child = Command::new("sh")
        .args(["-c", "sleep 100; :", &id])
        .spawn()
        .unwrap();
    let rt = Runtime::new();
    rt.track(&id);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(rt)));
    // Whether the process was still there when the check ran: if something else ended it,
    // the check had nothing to find, and that is what the failure must say.
    let ended = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        caught.is_err(),
        "a live process of {id} passed the end-of-test check (it had ended: {ended:?})"
    );
}

#[test]
fn the_live_process_scan_sees_a_process_the_moment_it_is_spawned() {
    // Just after spawn the kernel may not have set the new arguments up yet (the file reads
    // empty): a scan then must not miss the process, or a check run at that moment passes.
    require_root();
    for _ in 0..50 {
        let id = unique_id("justspawned");
        let mut child = Command::new("sh")
            .args(["-c", "sleep 100; :", &id])
            .spawn()
            .unwrap();
        let seen = live_processes_of(&id);
        let _ = child.kill();
        let _ = child.wait();
        let pid = child.id() as i32;
        assert!(
            seen.iter().any(|(p, _)| *p == pid),
            "pid {pid} of {id} was not seen: {seen:?}"
        );
    }
}

/// Run only by the test below, in a child test process.
#[test]
#[ignore = "run by skip_or_fail_fails_in_ci_and_skips_elsewhere"]
fn skip_or_fail_probe() {
    skip_or_fail("the probe's tool is not installed");
}

#[test]
fn skip_or_fail_fails_in_ci_and_skips_elsewhere() {
    let probe = |ci: Option<&str>| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "harness::skip_or_fail_probe",
            "--ignored",
            "--nocapture",
        ]);
        c.env_remove("CI");
        if let Some(v) = ci {
            c.env("CI", v);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };
    let (ok, text) = probe(Some("true"));
    assert!(!ok, "CI=true: a test that could not run passed: {text}");
    assert!(text.contains("CI is set"), "{text}");
    for ci in [None, Some("false")] {
        let (ok, text) = probe(ci);
        assert!(ok, "CI={ci:?}: {text}");
        assert!(
            text.contains("SKIPPED: the probe's tool is not installed"),
            "{text}"
        );
    }
}

/// A console socket in a temp dir, as a shim makes one.
pub struct ConsoleSocket {
    dir: tempfile::TempDir,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = tempfile::tempdir().unwrap();
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("console.sock")).unwrap();
        ConsoleSocket { dir, listener }
    }

    pub fn path(&self) -> String {
        self.dir
            .path()
            .join("console.sock")
            .to_str()
            .unwrap()
            .to_string()
    }

    /// Accepts the runtime's connection and receives the master: (name payload, master).
    pub fn receive(&self) -> (String, File) {
        let (conn, _) = self.listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let (n, master) = recv_with_fd(&conn, &mut buf);
        (
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            File::from(master),
        )
    }
}

/// Reads the master until `want` has appeared (or EOF/EIO, or 10 s); returns all read.
pub fn read_until(master: &mut File, want: &str) -> String {
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains(want) && std::time::Instant::now() < deadline {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap() == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match std::io::Read::read(master, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    text
}

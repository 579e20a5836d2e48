//! Real engines driving berth: containerd (`ctr` through containerd-shim-runc-v2) and podman
//! (through conmon), each started privately per test (own root, state, socket, storage,
//! cgroup parent) on a busybox image made locally by hack/make-image.sh, and torn down by a
//! Drop guard even when the test fails. A test skips, saying so, only when the engine's
//! binaries are not installed, and in CI (`CI=true`) it fails then instead.
//!
//! Terminals: ctr refuses `--tty` unless its stdin is a terminal, so those tests run it on a
//! pty of its own from util-linux's `script` (`under_pty`); podman `-it` runs with a pipe
//! too, and `podman run -it` gets typed input through `script`. Docker: docker.rs.
//!
//! Not covered: hooks in a containerd spec (ctr has no flag to add them; hooks.rs covers
//! every kind directly) and `podman attach`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::*;

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
            if find_binary(name).is_none() {
                skip_or_fail(&format!("{name} is not installed (apt-get install containerd podman conmon bsdutils)"));
                return;
            }
        }
    };
}

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
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount_of = |v2: bool| {
        mountinfo.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let post: Vec<&str> = post.split(' ').collect();
            let ok = if v2 {
                post[0] == "cgroup2"
            } else {
                post[0] == "cgroup" && post.get(2)?.split(',').any(|o| o == controller)
            };
            ok.then(|| PathBuf::from(pre.split(' ').nth(4).unwrap()))
        })
    };
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if ctrls.split(',').any(|c| c == controller) {
            return mount_of(false).unwrap().join(path.trim_start_matches('/'));
        }
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    mount_of(true).unwrap().join(path.trim_start_matches('/'))
}

pub(crate) fn is_v1(controller: &str) -> bool {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .any(|l| {
            l.split(':')
                .nth(1)
                .unwrap_or("")
                .split(',')
                .any(|c| c == controller)
        })
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
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let unit = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|path| path.rsplit('/').find(|part| part.ends_with(".scope")))
        .unwrap_or_else(|| panic!("pid {pid} is in no scope unit: {cgroups}"))
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
    let me = std::process::id().to_string();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let Some((pid, comm)) = head.split_once(" (") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me && names.contains(&comm) {
            reap(pid.parse().unwrap());
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

/// Unmounts (lazily) whatever is still mounted under `dir`, deepest first.
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
    let cg = container_cgroups(id);
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

pub(crate) fn unmount_under(dir: &Path) {
    let dir = dir.to_string_lossy().into_owned();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| p.starts_with(&dir))
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

// ---------------------------------------------------------------------------------------
// containerd

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

// ---------------------------------------------------------------------------------------
// podman

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
        let mut cg = cgroup_dirs_named(&format!("libpod-{id}"));
        cg.extend(container_cgroups(id));
        assert!(cg.is_empty(), "cgroups of {id} left: {cg:?}");
        let units = systemd_units_of(id);
        assert!(units.is_empty(), "systemd units of {id} left: {units:?}");
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let m: Vec<&str> = mounts.lines().filter(|l| l.contains(id)).collect();
        assert!(m.is_empty(), "mounts of {id} left: {m:?}");
        assert_no_process_of(id);
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

//! Docker driving berth: a private dockerd per test (`--add-runtime berth=... --default-runtime
//! berth`, its own data root, exec root, socket, containerd namespaces and cgroup parent; no
//! bridge, no iptables, cgroupfs driver, vfs storage), letting dockerd start its own containerd
//! under the exec root. The busybox image is `docker load`ed from the docker-archive that
//! hack/make-image.sh makes. A Drop guard removes the containers, stops dockerd, containerd and
//! the shims, deletes what berth still holds, unmounts and removes everything under the
//! temporary directory, the cgroup parent, and /run/docker and /run/containerd when the test
//! created them. A test skips, saying so, only when dockerd is not installed (and fails
//! then instead in CI, `CI=true`).
//!
//! dockerd passes berth `--root <exec-root>/runtime-runc/<containerd namespace>` (it names the
//! directory after the shim's runc options, whatever the runtime is called).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use super::engines::{
    assert_engine_left_nothing, assert_ok, assert_unit_shows, cgroup_tree_exists, engine_lock,
    find_binary, force_delete_all, frozen, image_tar, memory_limit, out_text, pids_limit,
    processes_mentioning, remove_cgroup_tree, stop_daemon, stop_processes_mentioning,
    stop_systemd_slice, unmount_under, CreatedDir, IMAGE,
};
use super::harness::*;

/// Returns early from the test, saying why, when dockerd is not installed; fails instead in
/// CI (`CI=true`).
macro_rules! require_dockerd {
    () => {
        if find_binary("dockerd").is_none() {
            skip_or_fail(
                "dockerd is not installed (apt-get install --no-install-recommends docker.io)",
            );
            return;
        }
    };
}

struct Docker {
    dir: tempfile::TempDir,
    sock: PathBuf,
    /// containerd namespace of this dockerd's containers (berth's root is named after it).
    ns: String,
    cgroup_parent: String,
    daemon: Option<Child>,
    run_containerd: CreatedDir,
    run_docker: CreatedDir,
    _lock: MutexGuard<'static, ()>,
}

impl Docker {
    fn start() -> Docker {
        require_root();
        let lock = engine_lock();
        let run_containerd = CreatedDir::note("/run/containerd");
        let run_docker = CreatedDir::note("/run/docker");
        let dir = tempfile::Builder::new()
            .prefix("berth-docker-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let sock = d.join("docker.sock");
        let ns = format!("berth-test-{}-{}", std::process::id(), unique_id("dk"));
        // On a systemd host, dockerd's default cgroup driver is systemd's: the parent is then
        // a slice (one without dashes, which would nest it) and each container a
        // docker-<id>.scope in it, which berth asks systemd for (--systemd-cgroup).
        let systemd = systemd_is_init();
        let cgroup_parent = match systemd {
            true => format!("{}.slice", unique_id("docker").replace('-', "")),
            false => format!("/{}", unique_id("docker")),
        };
        let driver: &[&str] = match systemd {
            true => &[],
            false => &["--exec-opt", "native.cgroupdriver=cgroupfs"],
        };
        let log = fs::File::create(d.join("dockerd.log")).unwrap();
        // Its own (empty) config file: a host's /etc/docker/daemon.json must not clash with
        // the flags below.
        fs::write(d.join("daemon.json"), "{}").unwrap();
        let daemon = Command::new(find_binary("dockerd").unwrap())
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--storage-driver",
                "vfs",
            ])
            .args(driver)
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .arg("--add-runtime")
            .arg(format!("berth={BERTH}"))
            .args(["--default-runtime", "berth"])
            .arg("--containerd-namespace")
            .arg(&ns)
            .arg("--containerd-plugins-namespace")
            .arg(format!("{ns}-plugins"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dk = Docker {
            dir,
            sock,
            ns,
            cgroup_parent,
            daemon: Some(daemon),
            run_containerd,
            run_docker,
            _lock: lock,
        };
        // (Minutes in a VM under software emulation.)
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        while !dk.docker(&["version"]).status.success() {
            if std::time::Instant::now() > deadline {
                let log = fs::read_to_string(dk.dir.path().join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "dockerd did not answer within 180 s; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let out = dk.docker(&["load", "-i", image_tar().to_str().unwrap()]);
        assert_ok(&out, "docker load");
        dk
    }

    /// The docker client shipped with dockerd (the same API version), else any on PATH.
    fn client() -> PathBuf {
        let dockerd = find_binary("dockerd").unwrap();
        let beside = dockerd.with_file_name("docker");
        if beside.is_file() {
            beside
        } else {
            find_binary("docker").expect("no docker client")
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(Self::client())
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// `docker run` with no network and the given options.
    fn run(&self, opts: &[&str], args: &[&str]) -> Output {
        let mut a = vec!["run", "--network", "none"];
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.extend_from_slice(args);
        self.docker(&a)
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.docker(&["inspect", "--format", format, name]);
        assert_ok(&out, "docker inspect");
        stdout(&out).trim().to_string()
    }

    /// A detached container running `script`; returns its full id and host pid.
    fn run_detached(&self, opts: &[&str], name: &str, script: &str) -> (String, i32) {
        let mut o = vec!["-d", "--name", name];
        o.extend_from_slice(opts);
        let out = self.run(&o, &["sh", "-c", script]);
        assert_ok(&out, "docker run -d");
        let id = stdout(&out).trim().to_string();
        let pid = self.inspect(name, "{{.State.Pid}}").parse().unwrap();
        (id, pid)
    }

    /// berth's state root as dockerd passes it (`--root`).
    fn berth_root(&self) -> PathBuf {
        self.dir.path().join("exec/runtime-runc").join(&self.ns)
    }

    /// Nothing of container `id` left: berth state, cgroup, mount, process.
    fn assert_nothing_left(&self, id: &str) {
        assert_engine_left_nothing(&self.berth_root(), id);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let out = self.docker(&["ps", "--all", "--quiet"]);
            let ids: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "--force"];
                a.extend(ids.iter().map(String::as_str));
                let _ = self.docker(&a);
            }
        }
        // dockerd stops the containerd it started on TERM.
        stop_daemon(self.daemon.take(), Duration::from_secs(15));
        // containerd (its config is under the exec root) and the shims (their -address is)
        // mention the private directory.
        let dir = self.dir.path().to_string_lossy().into_owned();
        stop_processes_mentioning(&dir, Duration::from_secs(5));
        force_delete_all(&self.berth_root());
        unmount_under(self.dir.path());
        if systemd_is_init() {
            stop_systemd_slice(&self.cgroup_parent);
        } else {
            remove_cgroup_tree(&self.cgroup_parent);
        }
        // Hard-coded host paths: shim sockets in /run/containerd/s, /run/docker/plugins.
        let _ = fs::remove_dir(Path::new("/run/containerd/s"));
        self.run_containerd.clean(false);
        let _ = fs::remove_dir(Path::new("/run/docker/plugins"));
        self.run_docker.clean(false);
        if !std::thread::panicking() {
            let left = processes_mentioning(&dir);
            assert!(left.is_empty(), "engine processes left: {left:?}");
            let cg = cgroup_tree_exists(&self.cgroup_parent);
            assert!(cg.is_empty(), "cgroups left: {cg:?}");
            let units = systemd_units_of(&self.cgroup_parent);
            assert!(units.is_empty(), "systemd units left: {units:?}");
            let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
            assert!(!mounts.contains(&dir), "mounts left under {dir}");
        }
    }
}

#[test]
fn docker_run_output_exit_status_and_berths_error() {
    require_dockerd!();
    let dk = Docker::start();
    let out = dk.run(
        &["--name", "hi"],
        &["sh", "-c", "echo hi; echo err >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", out_text(&out));
    assert_eq!(stdout(&out).trim(), "hi");
    assert_eq!(stderr(&out).trim(), "err");
    let id = dk.inspect("hi", "{{.Id}}");
    assert_eq!(dk.inspect("hi", "{{.State.ExitCode}}"), "3");
    assert_ok(&dk.docker(&["rm", "hi"]), "docker rm");
    dk.assert_nothing_left(&id);

    // A container that cannot start: docker passes on berth's error line (from log.json
    // through the shim) and, reading its words, exits 127 as for a command not found.
    let out = dk.run(&["--name", "broken"], &["/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{}", out_text(&out));
    assert!(
        stderr(&out).contains(
            r#"process.args[0]: exec "/nonexistent": no such file or directory in the container"#
        ),
        "{}",
        out_text(&out)
    );
    assert_eq!(dk.inspect("broken", "{{.State.ExitCode}}"), "127");
    let id = dk.inspect("broken", "{{.Id}}");
    assert_ok(&dk.docker(&["rm", "-f", "broken"]), "docker rm -f");
    dk.assert_nothing_left(&id);

    // A file that is not executable: 126, as docker gives for "permission denied".
    let out = dk.run(&["--name", "noexec"], &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", out_text(&out));
    assert!(
        stderr(&out).contains(r#"exec "/etc/passwd": permission denied"#),
        "{}",
        out_text(&out)
    );
    let id = dk.inspect("noexec", "{{.Id}}");
    assert_ok(&dk.docker(&["rm", "-f", "noexec"]), "docker rm -f");
    dk.assert_nothing_left(&id);
}

#[test]
fn docker_exec_stats_and_update() {
    require_dockerd!();
    let dk = Docker::start();
    let (id, pid) = dk.run_detached(&[], "busy", "while true; do sleep 0.1; done");

    let out = dk.docker(&["exec", "busy", "sh", "-c", "echo out; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", out_text(&out));
    assert_eq!(stdout(&out).trim(), "out");
    let out = dk.docker(&[
        "exec",
        "-u",
        "65534:65534",
        "-w",
        "/tmp",
        "-e",
        "FOO=bar",
        "busy",
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $FOO",
    ]);
    assert_ok(&out, "docker exec -u -w -e");
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["65534", "65534", "/tmp", "bar"]
    );
    // -t: the exec'd process gets a pty from berth (through the console socket).
    let out = dk.docker(&["exec", "-t", "busy", "tty"]);
    assert_ok(&out, "docker exec -t");
    assert!(stdout(&out).starts_with("/dev/pts/"), "{}", out_text(&out));
    let out = dk.docker(&["exec", "busy", "tty"]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));

    // stats: dockerd reads the container's cgroup; a running shell uses some memory.
    let out = dk.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        "busy",
    ]);
    assert_ok(&out, "docker stats");
    let text = stdout(&out);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"busy"), "{text}");
    assert!(
        f.len() >= 5 && f[1] != "0B" && f[1].ends_with('B') && f[2] == "/",
        "no memory usage in {text}"
    );
    assert_ne!(f[4], "0", "no pids in {text}");

    // update: the new limits reach the host's cgroup files and, with dockerd's systemd
    // driver, the container's unit.
    assert_ne!(memory_limit(pid), "67108864");
    let out = dk.docker(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--pids-limit",
        "60",
        "busy",
    ]);
    assert_ok(&out, "docker update --memory --pids-limit");
    assert_eq!(memory_limit(pid), "67108864");
    assert_eq!(pids_limit(pid), "60");
    assert_eq!(dk.inspect("busy", "{{.HostConfig.Memory}}"), "67108864");
    assert_unit_shows(pid, &[("MemoryMax", "67108864"), ("TasksMax", "60")]);

    assert_ok(&dk.docker(&["rm", "-f", "busy"]), "docker rm -f");
    assert!(!alive(pid));
    dk.assert_nothing_left(&id);
}

#[test]
fn docker_restart_pause_unpause_and_rm_force() {
    require_dockerd!();
    let dk = Docker::start();
    let (id, pid) = dk.run_detached(&[], "cycle", "while true; do sleep 0.1; done");
    // While it runs berth holds its state where dockerd said (so the checks below that it is
    // gone mean something).
    assert!(dk.berth_root().join(&id).join("state.json").is_file());
    assert!(!container_cgroups(&id).is_empty());
    if systemd_is_init() {
        // dockerd's systemd driver: berth asked systemd for the container's scope.
        let unit = format!("docker-{id}.scope");
        let out = Command::new("systemctl")
            .args(["show", "-p", "ActiveState", "-p", "Slice", "--value", &unit])
            .output()
            .unwrap();
        // (systemctl prints the properties in its own order.)
        let mut shown: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
        shown.sort();
        let mut want = vec!["active".to_string(), dk.cgroup_parent.clone()];
        want.sort();
        assert_eq!(shown, want, "{unit}");
    }

    // restart: the old init is gone, a new one runs in the same container.
    assert_ok(&dk.docker(&["restart", "--time", "1", "cycle"]), "restart");
    assert_eq!(dk.inspect("cycle", "{{.State.Status}}"), "running");
    let new_pid: i32 = dk.inspect("cycle", "{{.State.Pid}}").parse().unwrap();
    assert_ne!(new_pid, pid);
    assert!(alive(new_pid));
    assert!(!alive(pid), "the first init outlived the restart");
    let out = dk.docker(&["exec", "cycle", "echo", "after-restart"]);
    assert_ok(&out, "exec after restart");
    assert_eq!(stdout(&out).trim(), "after-restart");

    assert_ok(&dk.docker(&["pause", "cycle"]), "pause");
    assert_eq!(dk.inspect("cycle", "{{.State.Status}}"), "paused");
    assert!(
        frozen(new_pid),
        "the host's freezer does not show it frozen"
    );
    assert_ok(&dk.docker(&["unpause", "cycle"]), "unpause");
    assert_eq!(dk.inspect("cycle", "{{.State.Status}}"), "running");
    assert!(!frozen(new_pid));

    // rm -f of a running container: nothing of it left anywhere.
    assert_ok(&dk.docker(&["rm", "-f", "cycle"]), "docker rm -f");
    assert!(!alive(new_pid));
    let out = dk.docker(&["ps", "--all", "--quiet"]);
    assert_eq!(stdout(&out).trim(), "");
    dk.assert_nothing_left(&id);
}

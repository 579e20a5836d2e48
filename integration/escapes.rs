//! The 2025 escape class (CVE-2025-31133, -52565, -52881) and its neighbours, tried as an
//! attacker would with a config or an image: a console or a procfs write steered onto a host
//! file, a mount inside /proc, proc mounted through a symlink, the exec'd process visible
//! before it is in the container's root, another user starting a container. Root.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    self, assert_no_mount_under, assert_no_process_of, fails_with_one_line, reap_failed_inits,
    stderr, stdout, Bundle, Runtime,
};

fn assert_nothing_left(rt: &Runtime, b: &Bundle, id: &str) {
    rt.assert_nothing_left(id);
    assert_no_mount_under(b.path());
    assert_no_process_of(id);
    reap_failed_inits();
}

fn add_mount(c: &mut Value, m: Value) {
    c["mounts"].as_array_mut().unwrap().push(m);
}

#[test]
fn a_terminal_from_a_ptmx_that_is_not_the_containers_devpts_is_refused() {
    // /dev/pts a bind of the host's /dev: /dev/ptmx (-> pts/ptmx) is then the host's
    // multiplexer, and the container's terminal (and /dev/console) would be a pty of the
    // host's devpts. berth checks what it opened before it uses it; the console itself is
    // bound from the slave's fd (TIOCGPTPEER), never from a /dev/pts/N path.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        let mounts = c["mounts"].as_array_mut().unwrap();
        let pts = mounts
            .iter_mut()
            .find(|m| m["destination"] == "/dev/pts")
            .unwrap();
        *pts = json!({"destination": "/dev/pts", "type": "bind", "source": "/dev", "options": ["rbind"]});
    });
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("console.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let id = harness::unique_id("hostpts");
    let out = rt.create(&b, &id, &["--console-socket", sock.to_str().unwrap()]);
    fails_with_one_line(&out, "/dev/ptmx is not on a devpts filesystem");
    assert_nothing_left(&rt, &b, &id);
}

#[test]
fn mounts_inside_proc_are_refused_as_runc_refuses_them() {
    let rt = Runtime::new();
    let host_dir = tempfile::tempdir().unwrap();
    fs::write(host_dir.path().join("ip_forward"), "host file\n").unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        // A bind over /proc/sys would catch linux.sysctl's writes (they landed in this file).
        (
            "procsys",
            json!({"destination": "/proc/sys", "type": "bind", "source": host_dir.path(), "options": ["rbind"]}),
            "\"/proc/sys\" cannot be mounted because it is inside /proc",
        ),
        // A procfs file bound over a sysctl would get the value instead of the sysctl.
        (
            "procfile",
            json!({"destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind", "source": "/proc/sys/vm/overcommit_ratio", "options": ["bind"]}),
            "\"/proc/sys/net/ipv4/ip_forward\" cannot be mounted because it is inside /proc",
        ),
        // Any other filesystem on /proc itself.
        (
            "proctmpfs",
            json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}),
            "\"tmpfs\" cannot be mounted because it is not of type proc",
        ),
        // A bind of something that is not a procfs root on /proc.
        (
            "procbind",
            json!({"destination": "/proc", "type": "bind", "source": "/proc/sys", "options": ["rbind"]}),
            "\"/proc/sys\" cannot be mounted because it is not the root of procfs",
        ),
    ];
    for (name, mount, want) in cases {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            add_mount(c, mount);
        });
        let id = harness::unique_id(name);
        let out = rt.create(&b, &id, &[]);
        fails_with_one_line(&out, want);
        assert_nothing_left(&rt, &b, &id);
    }
    // A symlink in the image is no way round: the destination is checked where it lands.
    let mut b = Bundle::new(&["true"]);
    std::os::unix::fs::symlink("/proc/sys/net", b.path().join("rootfs/etc/net")).unwrap();
    b.edit(|c| {
        add_mount(c, json!({"destination": "/etc/net", "type": "bind", "source": host_dir.path(), "options": ["rbind"]}));
    });
    let id = harness::unique_id("procsymlink");
    fails_with_one_line(
        &rt.create(&b, &id, &[]),
        "\"/etc/net\" cannot be mounted because it is inside /proc",
    );
    assert_nothing_left(&rt, &b, &id);
    assert_eq!(
        fs::read_to_string(host_dir.path().join("ip_forward")).unwrap(),
        "host file\n"
    );
}

#[test]
fn files_lxcfs_emulates_may_still_be_bound_over_proc() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["cat", "/proc/uptime"]);
    let fake = b.path().join("uptime");
    fs::write(&fake, "12345.00 0.00\n").unwrap();
    b.edit(|c| {
        add_mount(c, json!({"destination": "/proc/uptime", "type": "bind", "source": fake, "options": ["bind"]}));
    });
    let id = harness::unique_id("lxcfs");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "12345.00 0.00\n");
    rt.assert_nothing_left(&id);
}

#[test]
fn proc_and_sysfs_only_on_ordinary_directories_also_in_a_foreground_run() {
    let rt = Runtime::new();
    // /proc a symlink to the root: mounting proc through it would put it on "/" (and a
    // foreground run used to hang with the container's shell).
    let b = Bundle::new(&["sh", "-c", "echo ran"]);
    let proc = b.path().join("rootfs/proc");
    fs::remove_dir(&proc).unwrap();
    std::os::unix::fs::symlink("/", &proc).unwrap();
    let id = harness::unique_id("procsym");
    fails_with_one_line(
        &rt.create(&b, &id, &[]),
        "filesystem \"proc\" must be mounted on ordinary directory",
    );
    assert_nothing_left(&rt, &b, &id);
    let id = harness::unique_id("procsymrun");
    let mut child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a foreground run with /proc a symlink hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    fails_with_one_line(
        &out,
        "filesystem \"proc\" must be mounted on ordinary directory",
    );
    assert!(!stdout(&out).contains("ran"), "{}", stdout(&out));
    assert_nothing_left(&rt, &b, &id);
    // sysfs on a file.
    let mut b = Bundle::new(&["true"]);
    fs::write(b.path().join("rootfs/etc/sysfile"), "").unwrap();
    b.edit(|c| {
        add_mount(
            c,
            json!({"destination": "/etc/sysfile", "type": "sysfs", "source": "sysfs"}),
        )
    });
    let id = harness::unique_id("sysfile");
    fails_with_one_line(
        &rt.create(&b, &id, &[]),
        "filesystem \"sysfs\" must be mounted on ordinary directory",
    );
    assert_nothing_left(&rt, &b, &id);
}

#[test]
fn sysctls_reach_the_container_and_not_the_host() {
    let rt = Runtime::new();
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let flipped = if host_before.trim() == "1" { "0" } else { "1" };
    let mut b = Bundle::new(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": flipped}));
    let id = harness::unique_id("sysctl");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), flipped);
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
    rt.assert_nothing_left(&id);
}

#[test]
fn the_exec_process_enters_the_pid_namespace_only_inside_the_containers_root() {
    // A container process with CAP_SYS_PTRACE could read the host through /proc/PID/root of
    // a process in its PID namespace whose root is still the host's. So the process that
    // joins the namespaces is in the mount namespace and chrooted before it forks the one
    // born in the PID namespace; berth itself never joins the PID namespace.
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("execorder");
    assert!(rt.create(&b, &id, &[]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    let (out, trace) = harness::strace_berth(
        &rt,
        &b,
        "setns,chroot,clone,clone3,fork,vfork,execve",
        &["exec", &id, "true"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Per pid, the syscalls in order.
    let mut by_pid: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for line in trace.lines() {
        if let Some((pid, call)) = line.split_once(' ') {
            by_pid.entry(pid).or_default().push(call.trim_start());
        }
    }
    let joiners: Vec<_> = by_pid
        .iter()
        .filter(|(_, calls)| {
            calls
                .iter()
                .any(|c| c.starts_with("setns(") && c.contains("CLONE_NEWPID"))
        })
        .collect();
    assert_eq!(
        joiners.len(),
        1,
        "one process joins the PID namespace:\n{trace}"
    );
    let (joiner, calls) = joiners[0];
    let setns = calls.iter().position(|c| c.starts_with("setns(")).unwrap();
    let chroot = calls
        .iter()
        .position(|c| c.starts_with("chroot("))
        .unwrap_or_else(|| panic!("pid {joiner} never chroots:\n{trace}"));
    let fork = calls
        .iter()
        .position(|c| c.starts_with("clone") || c.contains("fork("))
        .unwrap_or_else(|| panic!("pid {joiner} forks nothing:\n{trace}"));
    assert!(
        calls[setns].contains("CLONE_NEWNS") && setns < chroot && chroot < fork,
        "pid {joiner} must join the mount namespace and chroot before it forks:\n{trace}"
    );
    // And it is not berth's first process (which stays in the host's PID namespace).
    let first = by_pid.keys().next().unwrap();
    assert_ne!(
        first, joiner,
        "berth itself joined the PID namespace:\n{trace}"
    );
    harness::reap(init);
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

#[test]
fn no_pivot_leaves_no_full_host_procfs_for_a_user_namespace_to_mount_from() {
    // With --no-pivot the host's mounts stay in the container's mount namespace under the
    // chroot. The kernel lets a user namespace mount a fresh procfs where a full one is
    // visible in its mount namespace: the host's /proc would be one (and give a procfs with
    // no masks, sysrq-trigger and all). runc's test, without writing to sysrq-trigger.
    let rt = Runtime::new();
    let script = "mount -t proc none /proc && echo MOUNTED";
    let mut b = Bundle::new(&["unshare", "-mrpf", "sh", "-c", script]);
    b.edit(|c| {
        // Mapping root in a new user namespace needs CAP_SETFCAP (Linux 5.12).
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SETFCAP"));
        }
    });
    for pivot in [false, true] {
        let id = harness::unique_id("nopivot");
        rt.track_bundle(&id, b.path());
        let mut cmd = rt.cmd();
        cmd.arg("run");
        if !pivot {
            cmd.arg("--no-pivot");
        }
        let out = cmd
            .arg("-b")
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !out.status.success() && text.contains("mount: permission denied"),
            "pivot {pivot}: {text}"
        );
        assert!(!text.contains("MOUNTED"), "pivot {pivot}: {text}");
        rt.delete_force(&id);
        assert_no_mount_under(b.path());
    }
}

/// Watches, from inside a container with CAP_SYS_PTRACE, every other process in its PID
/// namespace: prints `berth PID` for one running berth's binary and `host-root PID COMM`
/// for one whose /proc/PID/root leads to host path `$1` (it is in no container's root).
const ROOT_WATCHER: &str = r#"
echo watching
while [ ! -e /stop ]; do
  for d in /proc/[0-9]*; do
    [ -e "$d/root$1" ] && echo "host-root ${d#/proc/} $(cat "$d/comm" 2>/dev/null)"
    case "$(readlink "$d/exe" 2>/dev/null)" in *berth*) echo "berth ${d#/proc/}" ;; esac
  done
done
"#;

#[test]
fn a_create_joining_a_pid_namespace_is_never_seen_there_with_the_hosts_root() {
    // Container A may ptrace (CAP_SYS_PTRACE, as CVE-2019-5736's attacker), and B joins A's
    // PID namespace, as pods share one. Whatever of B's A can see must already be inside
    // B's root: a process there whose /proc/PID/root is the host's gives A the host. B's
    // createContainer hook holds B's setup for a second before pivot_root, while A looks.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let host_only = b.path().to_str().unwrap().to_string();
    let mut a = Bundle::new(&["sh", "-c", ROOT_WATCHER, "sh", &host_only]);
    a.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_PTRACE"));
        }
    });
    let a_id = harness::unique_id("pidwatcher");
    assert!(
        rt.create(&a, &a_id, &[]).status.success(),
        "{}",
        stderr(&rt.create(&a, &a_id, &[]))
    );
    let a_init = rt.state(&a_id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &a_id]).status.success());
    let watched = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = fs::read_to_string(a.path().join("stdout")).unwrap_or_default();
            if out.lines().any(|l| l.starts_with(want)) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher never printed {want:?}: {out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    watched("watching");

    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{a_init}/ns/pid"));
            }
        }
        c["hooks"] = json!({"createContainer": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]});
    });
    let b_id = harness::unique_id("pidjoiner");
    let out = rt.create(&b, &b_id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let b_init = rt.state(&b_id)["pid"].as_i64().unwrap() as i32;
    // B's init waits at the start gate running berth's binary, in A's sight.
    watched("berth ");
    // B runs and ends first: A's init ending would kill B's (and wait for it to be reaped).
    assert!(rt.berth(&["start", &b_id]).status.success());
    harness::reap(b_init);
    fs::write(a.path().join("rootfs/stop"), "").unwrap();
    harness::reap(a_init);
    let out = fs::read_to_string(a.path().join("stdout")).unwrap();
    let leaks: std::collections::BTreeSet<&str> =
        out.lines().filter(|l| l.starts_with("host-root")).collect();
    assert!(
        leaks.is_empty(),
        "A reached the host through B's processes: {leaks:?}"
    );
    rt.delete_force(&b_id);
    rt.delete_force(&a_id);
    rt.assert_nothing_left(&b_id);
    rt.assert_nothing_left(&a_id);
}

#[test]
fn the_state_root_is_0700_and_another_user_cannot_reach_the_exec_fifo() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let root = rt.root.path().join("fresh/berth");
    let id = harness::unique_id("root0700");
    // stderr to a file: create's init keeps it open.
    let err_file = b.path().join("berth.err");
    let berth = |args: &[&str]| {
        let status = Command::new(harness::BERTH)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err_file).unwrap())
            .status()
            .unwrap();
        std::process::Output {
            status,
            stdout: vec![],
            stderr: fs::read(&err_file).unwrap(),
        }
    };
    let out = berth(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    // nobody opening the fifo (non-blocking, as a writer): refused, not "no reader yet".
    let fifo = root.join(&id).join("exec.fifo");
    let probe = format!(
        "import os\ntry:\n os.open({:?}, os.O_WRONLY | os.O_NONBLOCK)\n print('opened')\nexcept OSError as e:\n print(e.errno)",
        fifo.to_str().unwrap()
    );
    let nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &probe,
        ])
        .output()
        .expect("setpriv and python3");
    assert_eq!(
        String::from_utf8_lossy(&nobody.stdout).trim(),
        libc::EACCES.to_string(),
        "{}",
        String::from_utf8_lossy(&nobody.stderr)
    );
    // (state's stdout is captured; create's is not, since init keeps it.)
    let out = Command::new(harness::BERTH)
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["status"], "created");
    assert!(berth(&["delete", "--force", &id]).status.success());
    // A root others could enter (an older berth's 0711) is closed at the next create.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o711)).unwrap();
    let id = harness::unique_id("root0711");
    let out = berth(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    assert!(berth(&["delete", "--force", &id]).status.success());
    assert!(!root.join(&id).exists());
    assert_no_process_of(&id);
    fs::remove_dir_all(rt.root.path().join("fresh")).unwrap();
}

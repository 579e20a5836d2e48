//! Process security seen from outside: seccomp filters that make a syscall fail with the
//! configured errno or kill the process, with and without no_new_privs.

use procfs::FromBufRead;
use serde_json::json;

use crate::harness::{self, stderr, stdout, Bundle, Runtime};

fn errno_profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    })
}

/// Runs `mkdir` in a writable tmpfs under `profile`, with no_new_privs as given.
fn mkdir_under(profile: serde_json::Value, no_new_privs: bool) -> (Option<i32>, String) {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /mnt/w/dir && echo made; ls /mnt/w | wc -l",
    ]);
    b.edit(|c| {
        c["linux"]["seccomp"] = profile;
        c["process"]["noNewPrivileges"] = json!(no_new_privs);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt/w", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = rt.run(&b, &harness::unique_id("seccomp"));
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn seccomp_errno_rule_fails_the_syscall_with_the_configured_errno() {
    let (code, text) = mkdir_under(errno_profile(), true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Function not implemented"), "{text}");
    assert!(!text.contains("made") && text.contains('0'), "{text}");
}

#[test]
fn seccomp_is_loaded_without_no_new_privs_too() {
    let (code, text) = mkdir_under(errno_profile(), false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Function not implemented"), "{text}");
}

#[test]
fn a_profile_denying_faccessat2_still_finds_the_program_in_path() {
    // Without noNewPrivileges the filter is in before the PATH lookup; a profile written
    // before faccessat2 existed (the runtime-tools suite's) denies it with EPERM. As runc
    // (Go's LookPath), the mode bits then decide.
    let rt = Runtime::new();
    for no_new_privs in [false, true] {
        let mut b = Bundle::new(&["sh", "-c", "echo found"]);
        b.edit(|c| {
            c["process"]["noNewPrivileges"] = json!(no_new_privs);
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["faccessat2"], "action": "SCMP_ACT_ERRNO"}]});
        });
        let out = rt.run(&b, &harness::unique_id("faccessat2"));
        assert!(out.status.success(), "nnp {no_new_privs}: {}", stderr(&out));
        assert_eq!(stdout(&out), "found\n");
    }
}

#[test]
fn start_container_hooks_run_under_the_filter_with_no_new_privs_or_without() {
    // As runc: with noNewPrivileges the filter goes in before the start gate (not just
    // before execve), so a startContainer hook cannot do what the container cannot.
    let rt = Runtime::new();
    for no_new_privs in [true, false] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["root"]["readonly"] = json!(false);
            c["process"]["noNewPrivileges"] = json!(no_new_privs);
            c["linux"]["seccomp"] = errno_profile();
            c["hooks"] = json!({"startContainer": [
                {"path": "/bin/mkdir", "args": ["mkdir", "/made-by-the-hook"]}
            ]});
        });
        let id = harness::unique_id("hookseccomp");
        let out = rt.create(&b, &id, &[]);
        assert!(out.status.success(), "create: {}", stderr(&out));
        let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
        let out = rt.berth(&["start", &id]);
        assert!(
            !b.path().join("rootfs/made-by-the-hook").exists(),
            "no_new_privs {no_new_privs}: the hook ran without the filter"
        );
        assert!(
            !out.status.success() && stderr(&out).contains("startContainer"),
            "no_new_privs {no_new_privs}: {}",
            stderr(&out)
        );
        harness::reap(init);
        rt.delete_force(&id);
        rt.assert_nothing_left(&id);
    }
}

#[test]
fn seccomp_flags_as_runc_passes_them_spec_allow_by_default_tsync_never() {
    // As runc: no `flags` at all means SECCOMP_FILTER_FLAG_SPEC_ALLOW where the kernel has it
    // (no speculative store bypass mitigation forced by the filter); an empty list means none.
    let rt = Runtime::new();
    let loaded = |flags: Option<serde_json::Value>| {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["linux"]["seccomp"] = errno_profile();
            if let Some(f) = flags {
                c["linux"]["seccomp"]["flags"] = f;
            }
        });
        let id = harness::unique_id("seccompflags");
        rt.track(&id);
        let (out, trace) = harness::strace_berth(
            &rt,
            &b,
            "seccomp",
            &["run", "-b", b.path().to_str().unwrap(), &id],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        // The load itself: libseccomp's probes of a flag pass no filter and fail (EFAULT).
        let loads: Vec<String> = trace
            .lines()
            .filter(|l| l.contains("seccomp(SECCOMP_SET_MODE_FILTER") && l.ends_with("= 0"))
            .map(|l| l.split(", ").nth(1).unwrap_or("").to_string())
            .collect();
        assert_eq!(loads.len(), 1, "one filter loaded: {trace}");
        loads[0].clone()
    };
    let features: serde_json::Value =
        serde_json::from_slice(&rt.berth(&["features"]).stdout).unwrap();
    if features["linux"]["seccomp"]["supportedFlags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
    {
        assert_eq!(loaded(None), "SECCOMP_FILTER_FLAG_SPEC_ALLOW");
    }
    assert_eq!(loaded(Some(json!([]))), "0");
    // TSYNC is accepted and not passed, as runc: init has no other thread to synchronise.
    assert_eq!(
        loaded(Some(json!([
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_TSYNC"
        ]))),
        "SECCOMP_FILTER_FLAG_LOG"
    );
}

#[test]
fn an_ambient_capability_that_is_not_inheritable_is_a_warning_in_runcs_words() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["grep", "CapAmb", "/proc/self/status"]);
    b.edit(|c| {
        c["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
        c["process"]["capabilities"]["ambient"] = json!(["CAP_KILL", "CAP_CHOWN"]);
    });
    let out = rt.run(&b, &harness::unique_id("ambient"));
    assert!(out.status.success(), "{}", stderr(&out));
    // CAP_KILL (bit 5) raised, CAP_CHOWN (bit 0) refused by the kernel and said so.
    assert_eq!(stdout(&out).trim(), "CapAmb:\t0000000000000020");
    assert!(
        stderr(&out).contains("can't raise ambient capability CAP_CHOWN: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_a_profile_the_syscall_works() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "mkdir /mnt/w/dir && echo made"]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt/w", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = rt.run(&b, &harness::unique_id("noseccomp"));
    assert_eq!(stdout(&out), "made\n", "{}", stderr(&out));
}

#[test]
fn seccomp_kill_rule_kills_the_process() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["uname"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]
        });
    });
    let out = rt.run(&b, &harness::unique_id("seccompkill"));
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
}

/// runc's -ENOSYS stub: under a default-deny profile, a syscall newer than every one the
/// profile names fails with ENOSYS (so a libc falls back to an older one), an older one the
/// profile does not allow still gets the default action.
#[cfg(target_arch = "x86_64")]
#[test]
fn syscalls_newer_than_the_profile_get_enosys_older_ones_the_default() {
    // Every x86_64 syscall up to set_robust_list (273) but mkdir and mkdirat: busybox's
    // nsenter calls setns (308), past them.
    let names: Vec<String> = (0..=273)
        .filter(|nr| ![libc::SYS_mkdir, libc::SYS_mkdirat].contains(&i64::from(*nr)))
        .filter_map(|nr| libseccomp::ScmpSyscall::from(nr).get_name().ok())
        .collect();
    let rt = Runtime::new();
    for (no_new_privs, default_errno) in [(true, None), (false, None), (true, Some(38))] {
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "mkdir /tmp/d; nsenter --mount=/proc/self/ns/mnt true; echo done",
        ]);
        b.edit(|c| {
            c["process"]["noNewPrivileges"] = json!(no_new_privs);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
            });
            if let Some(errno) = default_errno {
                c["linux"]["seccomp"]["defaultErrnoRet"] = json!(errno);
            }
        });
        let out = rt.run(&b, &harness::unique_id("enosys"));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{text}");
        let (mkdir, setns) = match default_errno {
            None => ("Operation not permitted", "Function not implemented"),
            // The default already is ENOSYS: everything not allowed gets it.
            Some(_) => ("Function not implemented", "Function not implemented"),
        };
        assert!(
            text.contains(&format!("mkdir: can't create directory '/tmp/d': {mkdir}")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("nsenter:") && l.ends_with(setns)),
            "{text}"
        );
        assert_eq!(stdout(&out), "done\n", "{text}");
    }
}

#[test]
fn notify_without_a_listener_path_fails_create_cleanly() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = harness::unique_id("notify");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(&out, "linux.seccomp.listenerPath: must be set");
    rt.assert_nothing_left(&id);
}

#[test]
fn notify_with_no_agent_listening_fails_create_cleanly() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let sock = b.path().join("nobody.sock");
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = harness::unique_id("notifynone");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        "linux.seccomp.listenerPath: failed to connect with seccomp agent at",
    );
    harness::reap_failed_inits();
    harness::assert_no_process_of(&id);
    rt.assert_nothing_left(&id);
}

/// How long the agent waits for a connection, or for the next notification on one, before
/// giving up: a test that goes wrong fails instead of hanging.
const AGENT_WAIT_MS: i32 = 30_000;

/// What a seccomp agent got on one connection.
struct AgentConnection {
    /// The container process state sent with the fd.
    state: serde_json::Value,
    /// What the fd is, from /proc/self/fd: "anon_inode:seccomp notify" for a notify fd.
    fd_kind: String,
    /// The pids (in the host's PID namespace) of the callers whose syscalls it answered.
    callers: Vec<u32>,
}

/// A minimal seccomp agent on `sock`: it takes one connection per entry of `answers`, in
/// order, and answers every syscall notified on that connection's fd with the entry's errno,
/// or for 0 with success without running the syscall. Each fd is served on a thread of its
/// own (init's stays open while an exec'd process's syscalls come in on another). Returns the
/// connections once every process under their filters is gone; one that never came is
/// missing from the result.
fn seccomp_agent(
    sock: &std::path::Path,
    answers: &[i32],
) -> std::thread::JoinHandle<Vec<AgentConnection>> {
    use std::os::fd::AsRawFd;
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    let answers = answers.to_vec();
    std::thread::spawn(move || {
        let mut served = Vec::new();
        for errno in answers {
            if !readable_within(&listener, AGENT_WAIT_MS) {
                break;
            }
            let (conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            // The notify fd comes with the state.
            let (len, notify) = harness::recv_with_fd(&conn, &mut buf);
            let state: serde_json::Value = serde_json::from_slice(&buf[..len]).unwrap();
            let fd_kind = std::fs::read_link(format!("/proc/self/fd/{}", notify.as_raw_fd()))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            served.push((
                state,
                fd_kind,
                std::thread::spawn(move || answer_notifications(&notify, errno)),
            ));
        }
        served
            .into_iter()
            .map(|(state, fd_kind, callers)| AgentConnection {
                state,
                fd_kind,
                callers: callers.join().unwrap(),
            })
            .collect()
    })
}

/// Whether `fd` has something to read within `ms` milliseconds (a hang-up alone is not).
fn readable_within(fd: &impl std::os::fd::AsRawFd, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 && pfd.revents & libc::POLLIN != 0 }
}

/// Answers the syscalls notified on `notify` with `errno` (0: success, not run) until every
/// process under the filter is gone (POLLHUP without POLLIN); returns the callers' pids.
fn answer_notifications(notify: &std::os::fd::OwnedFd, errno: i32) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    let mut callers = Vec::new();
    while readable_within(notify, AGENT_WAIT_MS) {
        // SAFETY: plain C structs the kernel fills and reads; zeroed as the ABI requires.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: a valid notify fd and a seccomp_notif to fill.
        if unsafe { libc::ioctl(notify.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0
        {
            continue; // the caller went away before we read it
        }
        // SAFETY: as above.
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        resp.error = -errno;
        // SAFETY: a valid notify fd and a filled-in response.
        if unsafe {
            libc::ioctl(
                notify.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp,
            )
        } == 0
        {
            callers.push(req.pid);
        }
    }
    callers
}

/// A profile that sends mkdir to the agent at `sock`, with metadata for it.
fn notify_profile(sock: &std::path::Path) -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "answer=ok",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    })
}

/// Asserts what every connection carries, as runc sends it: a notify fd, named `seccompFd`
/// in `fds`, the profile's metadata, the container's id and bundle, and init's pid and
/// `status` in the state.
fn assert_agent_got(conn: &AgentConnection, id: &str, b: &Bundle, init: i64, status: &str) {
    let state = &conn.state;
    assert_eq!(conn.fd_kind, "anon_inode:seccomp notify", "{state}");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], json!("answer=ok"), "{state}");
    assert_eq!(state["state"]["id"], json!(id), "{state}");
    assert_eq!(state["state"]["pid"], json!(init), "{state}");
    assert_eq!(state["state"]["status"], json!(status), "{state}");
    assert_eq!(state["state"]["bundle"], json!(b.path()), "{state}");
}

#[test]
fn notify_hands_the_fd_and_state_to_the_agent_which_answers_the_syscall() {
    for no_new_privs in [true, false] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "mkdir /mnt/w/dir && echo mkdir-succeeded; ls /mnt/w | wc -l",
        ]);
        let sock = b.path().join("agent.sock");
        b.edit(|c| {
            c["linux"]["seccomp"] = notify_profile(&sock);
            c["process"]["noNewPrivileges"] = json!(no_new_privs);
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/mnt/w", "type": "tmpfs", "source": "tmpfs"}));
        });
        let agent = seccomp_agent(&sock, &[0]);
        let id = harness::unique_id("notify");
        let out = rt.create(&b, &id, &[]);
        assert!(out.status.success(), "create: {}", stderr(&out));
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        let out = rt.berth(&["start", &id]);
        assert!(out.status.success(), "start: {}", stderr(&out));
        harness::reap(pid as i32);
        let conns = agent.join().unwrap();
        let output = std::fs::read_to_string(b.path().join("stdout")).unwrap();
        // The agent answered mkdir with success, so the kernel never made the directory.
        assert_eq!(
            output, "mkdir-succeeded\n0\n",
            "nnp={no_new_privs}: {output}"
        );
        assert_eq!(conns.len(), 1, "nnp={no_new_privs}");
        assert!(!conns[0].callers.is_empty());
        assert_agent_got(&conns[0], &id, &b, pid, "creating");
        assert_eq!(conns[0].state["pid"], json!(pid), "{}", conns[0].state);
        let out = rt.berth(&["delete", &id]);
        assert!(out.status.success(), "delete: {}", stderr(&out));
    }
}

#[test]
fn exec_hands_its_own_notify_fd_to_the_agent_which_answers_the_syscall() {
    for no_new_privs in [true, false] {
        let rt = Runtime::new();
        // Init's mkdir goes to the agent through create's connection, then init stays up.
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "mkdir /by-init && echo init-made; exec sleep 1000",
        ]);
        let sock = b.path().join("agent.sock");
        b.edit(|c| {
            c["linux"]["seccomp"] = notify_profile(&sock);
            c["process"]["noNewPrivileges"] = json!(no_new_privs);
            // A writable root, so a mkdir the kernel really ran would show on the host.
            c["root"]["readonly"] = json!(false);
        });
        // Success for init (create's connection), ENOSPC for the exec'd process: an errno
        // that only an answer on exec's own connection can give it.
        let agent = seccomp_agent(&sock, &[0, libc::ENOSPC]);
        let id = harness::unique_id("execnotify");
        let out = rt.create(&b, &id, &[]);
        assert!(out.status.success(), "create: {}", stderr(&out));
        let init = rt.state(&id)["pid"].as_i64().unwrap();
        let out = rt.berth(&["start", &id]);
        assert!(out.status.success(), "start: {}", stderr(&out));
        let init_out = b.path().join("stdout");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(&init_out).unwrap() != "init-made\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "nnp={no_new_privs}: init's mkdir was not answered: {:?}",
                std::fs::read_to_string(b.path().join("stderr"))
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(rt.status(&id), "running");

        // mkdir itself is the exec'd process, so the caller the agent sees is the pid
        // exec writes. `timeout`: a notified syscall nobody answers would hang the test.
        let pid_file = b.path().join("exec.pid");
        let out = std::process::Command::new("timeout")
            .args(["-s", "KILL", "60", harness::BERTH, "--root"])
            .arg(rt.root.path())
            .arg("exec")
            .arg("--pid-file")
            .arg(&pid_file)
            .args([&id, "mkdir", "/by-exec"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), stderr(&out).trim()),
            (
                Some(1),
                "mkdir: can't create directory '/by-exec': No space left on device"
            ),
            "nnp={no_new_privs}: {}",
            stdout(&out)
        );
        let execd: i64 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Neither mkdir ran: the agent answered both.
        for dir in ["by-init", "by-exec"] {
            assert!(!b.path().join("rootfs").join(dir).exists(), "{dir} made");
        }
        // Init is untouched by the exec.
        assert_eq!(rt.status(&id), "running");
        assert!(harness::alive(init as i32));

        rt.delete_force(&id);
        let conns = agent.join().unwrap();
        assert_eq!(conns.len(), 2, "nnp={no_new_privs}: exec never connected");
        assert_agent_got(&conns[0], &id, &b, init, "creating");
        assert!(!conns[0].callers.is_empty());
        // As runc: the process's own pid, init's in the state, status running.
        let exec_conn = &conns[1];
        assert_agent_got(exec_conn, &id, &b, init, "running");
        assert_eq!(exec_conn.state["pid"], json!(execd), "{}", exec_conn.state);
        assert_eq!(exec_conn.callers, [execd as u32]);
    }
}

#[test]
fn a_profile_that_denies_close_range_still_starts_the_container() {
    // Without no_new_privs the filter is loaded early; berth's fd hygiene must not depend on
    // syscalls that common profiles deny.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "echo ok"]);
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let out = rt.run(&b, &harness::unique_id("closerange"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
}

#[test]
fn only_stdio_reaches_the_container_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"]);
    let out = rt.run(&b, &harness::unique_id("fds"));
    assert!(out.status.success(), "{}", stderr(&out));
    // 0, 1, 2, and the fd ls itself opens to read the directory.
    assert_eq!(stdout(&out), "0 1 2 3 ");
}

/// `berth run` started by sh with `fd3` open on a host file as fd 3 and `env` set, `$$`
/// standing for berth's own pid (LISTEN_PID must name the process it is meant for).
fn run_with_fd3(
    rt: &Runtime,
    b: &Bundle,
    id: &str,
    env: &str,
    extra: &[&str],
) -> std::process::Output {
    run_with_fd3_env(rt, b, id, env, &[], extra)
}

/// As run_with_fd3, with global options before `run`.
fn run_with_fd3_and(
    rt: &Runtime,
    b: &Bundle,
    id: &str,
    global: &[&str],
    extra: &[&str],
) -> std::process::Output {
    run_with_fd3_env(rt, b, id, "", global, extra)
}

fn run_with_fd3_env(
    rt: &Runtime,
    b: &Bundle,
    id: &str,
    env: &str,
    global: &[&str],
    extra: &[&str],
) -> std::process::Output {
    let fd3 = b.path().join("fd3");
    std::fs::write(&fd3, "from-the-host\n").unwrap();
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(r#"f=$1; shift; exec 3<"$f" 4<&-; {env} exec "$@""#))
        .arg("sh")
        .arg(&fd3)
        .arg(harness::BERTH)
        .arg("--root")
        .arg(rt.root.path())
        .args(global)
        .args(["run", "--bundle"])
        .arg(b.path())
        .args(extra)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

const SHOW_FD3: &str =
    "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo \"[$LISTEN_FDS $LISTEN_PID]\"; cat <&3";

#[test]
fn preserved_fds_reach_the_container_and_nothing_else_does() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", SHOW_FD3]);
    let out = run_with_fd3(
        &rt,
        &b,
        &harness::unique_id("preserve"),
        "",
        &["--preserve-fds", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // 0-2, the preserved 3, and the fd ls opens to read the directory.
    assert_eq!(stdout(&out), "0 1 2 3 4 [ ]\nfrom-the-host\n");
    let out = run_with_fd3(&rt, &b, &harness::unique_id("nopreserve"), "", &[]);
    assert_eq!(stdout(&out), "0 1 2 3 [ ]\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3"),
        "cat <&3 must fail: {}",
        stderr(&out)
    );
}

#[test]
fn a_gap_in_the_preserved_fds_stays_empty_and_no_berth_fd_fills_it() {
    // fd 3 is passed, fd 4 is not open: berth's own first fd (its --log file here) lands on
    // 4, and must not reach the container as a "preserved" fd.
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "readlink /proc/self/fd/4 || echo none"]);
    let log = b.path().join("berth.log");
    let log_arg = format!("--log={}", log.display());
    let out = run_with_fd3_and(
        &rt,
        &b,
        &harness::unique_id("fdgap"),
        &[&log_arg],
        &["--preserve-fds", "2"],
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{} {logged}", stderr(&out));
    assert_eq!(stdout(&out), "none\n", "{logged}");
}

#[test]
fn init_at_the_start_gate_holds_no_fd_of_berths_caller() {
    // runc's create.bats "detect fd leak": the caller's fd 7 (not preserved) and fd 3 (one
    // preserved fd) as `create` leaves init waiting: init holds stdio, fd 3 and its exec
    // fifo, nothing of the caller's past them, and no directory of berth's.
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("fdleak");
    let file = b.path().join("callers-file");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"f=$1; shift; exec 3<"$f" 7<"$f"; exec "$@""#)
        .arg("sh")
        .arg(&file)
        .arg(harness::BERTH)
        .arg("--root")
        .arg(rt.root.path())
        .args(["create", "--preserve-fds", "1", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        // (A file, not a pipe: the waiting init holds the container's stderr.)
        .stderr(std::fs::File::create(b.path().join("create.err")).unwrap())
        .status()
        .unwrap();
    let err = std::fs::read_to_string(b.path().join("create.err")).unwrap();
    assert!(out.success(), "{err}");
    rt.track(&id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let mut held: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            (
                e.file_name().to_str().unwrap().parse().unwrap(),
                target.display().to_string(),
            )
        })
        .collect();
    held.sort();
    let fds: Vec<u32> = held.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(fds[..4], [0, 1, 2, 3], "{held:?}");
    assert!(held[3].1.ends_with("callers-file"), "{held:?}");
    for (fd, target) in &held[4..] {
        assert!(
            target.ends_with("/exec.fifo"),
            "init holds fd {fd} -> {target}: {held:?}"
        );
    }
    rt.delete_force(&id);
}

#[test]
fn socket_activation_fds_are_passed_on_with_listen_fds() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", SHOW_FD3]);
    let env = "LISTEN_PID=$$ LISTEN_FDS=1";
    let out = run_with_fd3(&rt, &b, &harness::unique_id("listen"), env, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0 1 2 3 4 [1 1]\nfrom-the-host\n");
    // LISTEN_FDS meant for another process is not berth's to pass on.
    let env = "LISTEN_PID=1 LISTEN_FDS=1";
    let out = run_with_fd3(&rt, &b, &harness::unique_id("notlisten"), env, &[]);
    assert_eq!(stdout(&out), "0 1 2 3 [ ]\n", "{}", stderr(&out));
}

#[test]
fn init_is_not_dumpable_until_it_execs() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let id = harness::unique_id("dumpable");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let owner = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/environ"))
            .unwrap()
            .uid()
    };
    // Waiting at the start gate as uid 1000, yet its /proc files belong to root: not dumpable.
    assert_eq!(harness::status_of(pid as i32).ruid, 1000);
    assert_eq!(owner(), 0, "init at the start gate is dumpable");
    assert!(rt.berth(&["start", &id]).status.success());
    // After execve the user process is an ordinary, dumpable uid-1000 process.
    assert_eq!(owner(), 1000);
    rt.delete_force(&id);
}

#[test]
fn scheduler_io_priority_and_personality() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        // (The runtime-spec's flag name, which oci-spec spells otherwise.)
        c["process"]["scheduler"] =
            json!({"policy": "SCHED_BATCH", "nice": 7, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    let id = harness::unique_id("sched");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(rt.berth(&["start", &id]).status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    // From the host: /proc/PID/stat fields 19 (nice) and 41 (policy), ionice, personality.
    let stat = harness::stat_of(pid as i32);
    assert_eq!(
        (stat.nice, stat.policy),
        (7, Some(3)),
        "nice and SCHED_BATCH"
    );
    // Policy and flags as chrt(1) reads them from the host.
    let assert_batch_reset_on_fork = |pid: &str| {
        let chrt = std::process::Command::new("chrt")
            .args(["-p", pid])
            .output()
            .unwrap();
        let said = stdout(&chrt);
        assert!(said.contains("SCHED_BATCH|SCHED_RESET_ON_FORK"), "{said}");
    };
    assert_batch_reset_on_fork(&pid.to_string());
    let ionice = std::process::Command::new("ionice")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    assert_eq!(stdout(&ionice).trim(), "idle");
    let personality = std::fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(personality.trim(), "00000008", "PER_LINUX32");
    // `exec -p` with the runtime-spec's flag names (as runc's scheduler test sends them).
    let process = b.path().join("sched-process.json");
    let proc_json = json!({"terminal": false, "args": ["sleep", "100"], "cwd": "/",
        "scheduler": {"policy": "SCHED_BATCH", "nice": 3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}});
    std::fs::write(&process, proc_json.to_string()).unwrap();
    let pid_file = b.path().join("exec.pid");
    // (Its stdio to /dev/null: the detached process would hold output pipes open.)
    let st = rt
        .cmd()
        .args(["exec", "-d", "--pid-file"])
        .arg(&pid_file)
        .arg("-p")
        .arg(&process)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "exec -p with the runtime-spec's scheduler flags failed"
    );
    let exec_pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_batch_reset_on_fork(exec_pid.trim());
    // The detached process is the test's (the subreaper's) to reap once killed; until it is,
    // init's exit waits for it in the PID namespace.
    let exec_pid: i32 = exec_pid.trim().parse().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(exec_pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    harness::reap(exec_pid);
    rt.delete_force(&id);
}

/// SCHED_DEADLINE needs an affinity spanning every CPU: with `linux.resources.cpu.cpus` the
/// kernel refuses it, said in runc's words; a scheduler field runc refuses is refused by name;
/// nothing is left either way.
#[test]
fn scheduler_with_a_cpuset_and_bad_scheduler_fields_are_refused() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        harness::skip_or_fail("one CPU: the cpuset would span every CPU");
        return;
    }
    let rt = Runtime::new();
    let deadline = json!({"policy": "SCHED_DEADLINE", "nice": 19, "runtime": 42000,
                          "deadline": 1000000, "period": 1000000});
    for (cpus, scheduler, want) in [
        (
            Some("0"),
            deadline,
            "process scheduler can't be used together with AllowedCPUs",
        ),
        (
            None,
            json!({"policy": "SCHED_BATCH", "priority": 3}),
            "config.json: process.scheduler.priority: can only be given for SCHED_FIFO or SCHED_RR",
        ),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            c["process"]["scheduler"] = scheduler.clone();
            if let Some(cpus) = cpus {
                c["linux"]["resources"]["cpu"] = json!({"cpus": cpus});
            }
        });
        let id = harness::unique_id("schedcpus");
        let out = rt.create(&b, &id, &[]);
        harness::fails_with_one_line(&out, want);
        rt.assert_nothing_left(&id);
        harness::assert_no_process_of(&id);
    }
}

#[test]
fn lsm_settings_this_host_cannot_apply_are_refused() {
    let rt = Runtime::new();
    for (field, value, want) in [
        ("apparmorProfile", "berth-test", "AppArmor is not enabled"),
        (
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            "SELinux is disabled",
        ),
    ] {
        let enabled = match field {
            "apparmorProfile" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|s| s.starts_with('Y')),
            _ => std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        };
        if enabled {
            eprintln!("{field}: this host has the LSM, so the refusal cannot be shown here");
            continue;
        }
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| c["process"][field] = json!(value));
        let id = harness::unique_id("lsm");
        let out = rt.create(&b, &id, &[]);
        assert!(!out.status.success(), "{field} accepted");
        assert!(
            stderr(&out).contains(want) && stderr(&out).contains(field),
            "{}",
            stderr(&out)
        );
        rt.assert_nothing_left(&id);
    }
}

#[test]
fn cve_2019_5736_the_host_binary_is_never_the_container_process() {
    // Against a copy of the binary, so the real one is never at stake.
    // Sealed on an overlay, and (a directory with a comma takes no overlay) in a memfd.
    for prefix in ["berth-", "berth,"] {
        the_host_binary_is_never_the_container_process_from(prefix);
    }
}

fn the_host_binary_is_never_the_container_process_from(prefix: &str) {
    let rt = Runtime::new();
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let copy = dir.path().join("berth-copy");
    std::fs::copy(harness::BERTH, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let mut b = Bundle::new(&["/proc/self/exe"]);
    std::fs::write(b.path().join("rootfs/bin/evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        b.path().join("rootfs/bin/evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for args in [
        json!(["/proc/self/exe"]),
        json!(["/proc/1/exe", "--version"]),
        json!(["/bin/evil"]),
    ] {
        b.edit(|c| c["process"]["args"] = args.clone());
        let id = harness::unique_id("cve");
        let out = std::process::Command::new(&copy)
            .arg("--root")
            .arg(rt.root.path())
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(b.path().join("stderr")).unwrap())
            .status()
            .unwrap();
        let err = std::fs::read_to_string(b.path().join("stderr")).unwrap();
        // (A container that got through is deleted by `rt`.)
        rt.track(&id);
        assert!(
            !out.success(),
            "{prefix}: {args} was allowed to run berth's own binary"
        );
        assert!(
            err.contains("is the berth binary itself"),
            "{prefix}: {args}: {err}"
        );
        rt.assert_nothing_left(&id);
    }
    assert_eq!(std::fs::read(&copy).unwrap(), before, "the binary changed");
}

#[test]
fn capability_names_unknown_to_berth_are_ignored_with_runcs_warning() {
    // The runtime-spec: a capability that cannot be mapped is logged as a warning, and the
    // runtime should not fail; runc ignores it with this warning.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["grep", "^Cap", "/proc/self/status"]);
    b.edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_UNKNOWN", "CAP_KILL", "UNKNOWN_CAP"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_UNKNOWN"],
            "ambient": ["UNKNOWN_CAP"],
        })
    });
    let id = harness::unique_id("unkcaps");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&out);
    // CAP_KILL is bit 5, and nothing else is held.
    for line in [
        "CapBnd:\t0000000000000020",
        "CapPrm:\t0000000000000020",
        "CapAmb:\t0000000000000000",
    ] {
        assert!(status.contains(line), "{line:?} not in {status}");
    }
    assert!(
        stderr(&out)
            .contains("ignoring unknown or unavailable capabilities: [CAP_UNKNOWN UNKNOWN_CAP]"),
        "{}",
        stderr(&out)
    );
    rt.assert_nothing_left(&id);
}

#[test]
fn a_file_only_its_owner_may_run_runs_for_a_user_with_cap_dac_override() {
    // As execve decides, and runc: another user cannot run a 0744 root file, unless it
    // holds CAP_DAC_OVERRIDE.
    use std::os::unix::fs::PermissionsExt;
    let rt = Runtime::new();
    let mut b = Bundle::new(&["/opt/echo", "ran"]);
    let rootfs = b.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("opt")).unwrap();
    let busybox = std::fs::canonicalize(rootfs.join("bin/sh")).unwrap();
    std::fs::copy(&busybox, rootfs.join("opt/echo")).unwrap();
    std::fs::set_permissions(
        rootfs.join("opt/echo"),
        std::fs::Permissions::from_mode(0o744),
    )
    .unwrap();
    b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 100}));
    let out = rt.run(&b, &harness::unique_id("nodac"));
    harness::fails_with_one_line(
        &out,
        "process.args[0]: exec \"/opt/echo\": permission denied",
    );
    b.edit(|c| {
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            let caps = c["process"]["capabilities"][set].as_array_mut();
            match caps {
                Some(caps) => caps.push(json!("CAP_DAC_OVERRIDE")),
                None => c["process"]["capabilities"][set] = json!(["CAP_DAC_OVERRIDE"]),
            }
        }
    });
    let out = rt.run(&b, &harness::unique_id("dac"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
}

#[test]
fn a_capability_outside_berths_own_bounding_set_is_refused_by_name() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_KILL", "CAP_SYS_NICE"]);
        }
    });
    let id = harness::unique_id("capheld");
    // berth itself started without CAP_SYS_NICE in its bounding set, as on hosts that
    // withhold a capability from everything they run.
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-sys_nice", "--"])
        .arg(harness::BERTH)
        .arg("--root")
        .arg(rt.root.path())
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    harness::fails_with_one_line(
        &out,
        "process.capabilities.bounding: CAP_SYS_NICE is not in berth's own bounding set",
    );
    harness::reap_failed_inits();
    harness::assert_no_process_of(&id);
    rt.assert_nothing_left(&id);
}

/// The attacker of CVE-2019-5736 with CAP_SYS_PTRACE, as a container process: it waits for a
/// process running berth's binary to show in its PID namespace, takes hold of that process's
/// `/proc/PID/exe`, says what it holds (the link and an md5 of the contents), waits for the
/// host to create `/go` (once no berth runs any more, so the binary is not busy), then tries
/// to write to the binary through the fd it holds, and says whether that worked.
const EXE_ATTACKER: &str = r#"
while :; do
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/exe" 2>/dev/null)" in
      *berth*) command exec 3<"$d/exe" 2>/dev/null && break 2 ;;
    esac
  done
done
echo "got $(md5sum </proc/self/fd/3 | cut -c1-32) $(readlink /proc/self/fd/3)"
while [ ! -e /go ]; do sleep 0.05; done
if err=$( { echo PWNED >>/proc/self/fd/3; } 2>&1 ); then echo write-ok; else echo "write-failed: $err"; fi
"#;

/// A container running `EXE_ATTACKER` as root with CAP_SYS_PTRACE and no user namespace.
fn exe_attacker_bundle() -> Bundle {
    ptrace_bundle(&["sh", "-c", EXE_ATTACKER])
}

/// A container running `args` as root with CAP_SYS_PTRACE and no user namespace.
fn ptrace_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_PTRACE"));
        }
    });
    b
}

/// A copy of berth to attack, so the real binary is never at stake, with its md5.
struct BerthCopy {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    md5: String,
}

impl BerthCopy {
    fn new() -> BerthCopy {
        BerthCopy::in_dir("berth-")
    }

    /// In a new directory whose name starts with `prefix`.
    fn in_dir(prefix: &str) -> BerthCopy {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let path = dir.path().join("berth-copy");
        std::fs::copy(harness::BERTH, &path).unwrap();
        let md5 = md5(&path);
        BerthCopy {
            _dir: dir,
            path,
            md5,
        }
    }

    fn cmd(&self, rt: &Runtime) -> std::process::Command {
        let mut c = std::process::Command::new("timeout");
        c.args(["-s", "KILL", "60"]).arg(&self.path).arg("--root");
        c.arg(rt.root.path()).stdin(std::process::Stdio::null());
        c
    }

    /// `create` with the container's stdio going to files in the bundle.
    fn create(&self, rt: &Runtime, b: &Bundle, id: &str) {
        rt.track(id);
        let out = self
            .cmd(rt)
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(id)
            .stdout(std::fs::File::create(b.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(b.path().join("stderr")).unwrap())
            .status()
            .unwrap();
        let err = std::fs::read_to_string(b.path().join("stderr")).unwrap();
        assert!(out.success(), "create {id}: {err}");
    }
}

fn md5(path: &std::path::Path) -> String {
    let out = std::process::Command::new("md5sum")
        .arg(path)
        .output()
        .unwrap();
    stdout(&out)[..32].to_string()
}

/// Waits (up to 30 s) for the attacker in bundle `b` to have printed a line, and returns
/// everything it printed.
fn attacker_output(b: &Bundle, lines: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = std::fs::read_to_string(b.path().join("stdout")).unwrap_or_default();
        if out.lines().count() >= lines {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the attacker printed {out:?} (stderr {:?})",
            std::fs::read_to_string(b.path().join("stderr"))
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How berth's binary is sealed, as the attacker sees it: the link it holds, and the error
/// it gets writing through it.
#[derive(Clone, Copy)]
struct Seal {
    link: &'static str,
    error: &'static str,
}
/// The directory of the binary on a detached read-only overlayfs.
const OVERLAY: Seal = Seal {
    link: "/berth-copy",
    error: "Read-only file system",
};
/// A copy in a memfd sealed against writing.
const MEMFD: Seal = Seal {
    link: "/memfd:berth (deleted)",
    error: "Operation not permitted",
};

/// The attacker held berth's very binary (not some other file), sealed as `seal`, and could
/// not write it.
fn assert_held_but_not_written(b: &Bundle, copy: &BerthCopy, init: i64, seal: Seal) {
    let got = attacker_output(b, 1);
    let got = got.lines().next().unwrap();
    assert!(
        got.starts_with(&format!("got {} ", copy.md5)),
        "the attacker did not get hold of berth's binary: {got}"
    );
    // No berth runs any more: the binary is not busy (ETXTBSY would stop the write anyway).
    std::fs::write(b.path().join("rootfs/go"), "").unwrap();
    harness::reap(init as i32);
    let out = std::fs::read_to_string(b.path().join("stdout")).unwrap();
    let verdict = out.lines().nth(1).unwrap_or_default();
    assert!(
        verdict.starts_with("write-failed: ") && verdict.contains(seal.error),
        "{got} / {verdict}"
    );
    assert_eq!(md5(&copy.path), copy.md5, "the host's berth binary changed");
    assert_eq!(got, format!("got {} {}", copy.md5, seal.link));
}

#[test]
fn cve_2019_5736_a_cap_sys_ptrace_container_cannot_write_berth_through_an_exec() {
    exec_attacked(BerthCopy::new(), OVERLAY);
}

#[test]
fn cve_2019_5736_without_overlayfs_exec_runs_from_a_sealed_memfd_copy() {
    // berth takes no overlay of a directory with a comma in its path (kernels before 6.5
    // would split the option there), so it falls back to the memfd copy.
    exec_attacked(BerthCopy::in_dir("berth,"), MEMFD);
}

fn exec_attacked(copy: BerthCopy, seal: Seal) {
    let rt = Runtime::new();
    let mut b = exe_attacker_bundle();
    // A window: exec's process waits, running berth's binary in the container's PID
    // namespace, until berth has handed its seccomp notify fd to the agent. The agent's
    // socket takes one pending connection (backlog 0), and create's fills it, so exec's
    // connect blocks until the test accepts one.
    let sock = b.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_eq!(
        // SAFETY: listen(2) on our own listening socket, changing only its backlog.
        unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 0) },
        0
    );
    b.edit(|c| c["linux"]["seccomp"] = notify_profile(&sock));
    let id = harness::unique_id("cveexec");
    copy.create(&rt, &b, &id);
    let init = rt.state(&id)["pid"].as_i64().unwrap();
    let out = copy.cmd(&rt).args(["start", &id]).output().unwrap();
    assert!(out.status.success(), "start: {}", stderr(&out));

    let exec = copy
        .cmd(&rt)
        .args(["exec", &id, "true"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The attacker's first line, unless exec fails first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut exec = Some(exec);
    while std::fs::read_to_string(b.path().join("stdout"))
        .unwrap_or_default()
        .is_empty()
    {
        if let Some(status) = exec.as_mut().unwrap().try_wait().unwrap() {
            let out = exec.take().unwrap().wait_with_output().unwrap();
            panic!(
                "exec ended ({status}) before the attacker saw it: {}",
                stderr(&out)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the attacker never saw berth's process"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Let exec go on (its connect completes once create's connection is taken): its process
    // execs `true`, and exec exits (or `timeout` kills it).
    assert!(readable_within(&listener, AGENT_WAIT_MS));
    let (_create_conn, _) = listener.accept().unwrap();
    let out = harness::output_within(exec.unwrap(), std::time::Duration::from_secs(90));
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_held_but_not_written(&b, &copy, init, seal);
    rt.delete_force(&id);
}

#[test]
fn cve_2019_5736_a_cap_sys_ptrace_container_cannot_write_berth_through_a_joining_init() {
    let rt = Runtime::new();
    let copy = BerthCopy::new();
    let attacker = exe_attacker_bundle();
    let a = harness::unique_id("cveattacker");
    copy.create(&rt, &attacker, &a);
    let a_init = rt.state(&a)["pid"].as_i64().unwrap();
    let out = copy.cmd(&rt).args(["start", &a]).output().unwrap();
    assert!(out.status.success(), "start: {}", stderr(&out));

    // B's init waits at the start gate in A's PID namespace, running berth's binary.
    let mut joiner = Bundle::new(&["true"]);
    joiner.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{a_init}/ns/pid"));
            }
        }
    });
    let j = harness::unique_id("cvejoiner");
    copy.create(&rt, &joiner, &j);
    attacker_output(&attacker, 1);
    let j_init = rt.state(&j)["pid"].as_i64().unwrap();
    let out = copy.cmd(&rt).args(["start", &j]).output().unwrap();
    assert!(out.status.success(), "start: {}", stderr(&out));
    harness::reap(j_init as i32);
    assert_held_but_not_written(&attacker, &copy, a_init, OVERLAY);
    rt.delete_force(&j);
    rt.delete_force(&a);
}

#[test]
fn cve_2019_5736_a_sealed_exec_still_refuses_the_hosts_binary_as_its_process() {
    // Init of a created container is berth's own binary, at the start gate; exec runs from
    // a sealed one, which must still know the host's binary by device and inode.
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = harness::unique_id("cvesealed");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = rt.berth(&[
        "exec",
        "--cap",
        "CAP_SYS_PTRACE",
        &id,
        "/proc/1/exe",
        "--version",
    ]);
    harness::fails_with_one_line(
        &out,
        "process.args[0]: /proc/1/exe is the berth binary itself",
    );
    assert_eq!(rt.status(&id), "created");
    rt.delete_force(&id);
}

#[test]
fn cve_2019_5736_a_process_exec_d_into_a_created_container_cannot_write_berth_through_init() {
    // Init of a created container waits at the start gate running berth's binary, in sight
    // of anything exec'd into the container: `create` runs from a sealed binary too.
    let rt = Runtime::new();
    let copy = BerthCopy::new();
    let b = ptrace_bundle(&["sleep", "100"]);
    let id = harness::unique_id("cvecreated");
    copy.create(&rt, &b, &id);
    let init = rt.state(&id)["pid"].as_i64().unwrap();
    // The attacker, exec'd into the created container; its output goes to the bundle.
    let st = copy
        .cmd(&rt)
        .args(["exec", "-d", "--cap", "CAP_SYS_PTRACE", "--pid-file"])
        .arg(b.path().join("attacker.pid"))
        .args([&id, "sh", "-c", EXE_ATTACKER])
        .stdout(std::fs::File::create(b.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(b.path().join("stderr")).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "exec: {:?}",
        std::fs::read_to_string(b.path().join("stderr"))
    );
    attacker_output(&b, 1);
    // Started, init is `sleep`: no process runs berth's binary any more.
    let out = copy.cmd(&rt).args(["start", &id]).output().unwrap();
    assert!(out.status.success(), "start: {}", stderr(&out));
    let got = attacker_output(&b, 1);
    let got = got.lines().next().unwrap().to_string();
    assert!(
        got.starts_with(&format!("got {} ", copy.md5)),
        "the attacker did not get hold of berth's binary: {got}"
    );
    std::fs::write(b.path().join("rootfs/go"), "").unwrap();
    let verdict = attacker_output(&b, 2);
    let verdict = verdict.lines().nth(1).unwrap_or_default();
    assert!(
        verdict.starts_with("write-failed: ") && verdict.contains(OVERLAY.error),
        "{got} / {verdict}"
    );
    assert_eq!(md5(&copy.path), copy.md5, "the host's berth binary changed");
    assert!(copy
        .cmd(&rt)
        .args(["kill", &id, "KILL"])
        .status()
        .unwrap()
        .success());
    // The attacker (reparented to this test) first: init, as PID 1 of its namespace, goes
    // only once every process of the namespace is reaped. (By pid: other tests' children
    // are this process's too.)
    let attacker = std::fs::read_to_string(b.path().join("attacker.pid")).unwrap();
    harness::reap(attacker.trim().parse().unwrap());
    harness::reap(init as i32);
    rt.delete_force(&id);
}

/// The SigIgn mask of a process, from the /proc status text it printed.
fn ignored_signals(status: &str) -> u64 {
    procfs::process::Status::from_buf_read(status.as_bytes())
        .unwrap_or_else(|e| panic!("not /proc/PID/status ({e}): {status}"))
        .sigign
}

#[test]
fn the_container_process_starts_with_no_signal_ignored_that_berth_ignores() {
    // Rust's std sets SIGPIPE to SIG_IGN in berth at startup, and an ignored signal survives
    // execve: the container's `yes | head` would end in EPIPE errors instead of the silent
    // SIGPIPE every pipeline expects. berth is spawned here with SIGPIPE at its default (as
    // Rust's Command does), so the container and an exec'd process must have it too.
    let rt = Runtime::new();
    let id = harness::unique_id("sigign");
    let b = Bundle::new(&["cat", "/proc/self/status"]);
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let pipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(
        ignored_signals(&stdout(&out)) & pipe,
        0,
        "SIGPIPE ignored in the container"
    );

    let id = harness::unique_id("sigign-exec");
    let b = Bundle::new(&["sleep", "1000"]);
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        harness::status_of(pid as i32).sigign & pipe,
        0,
        "SIGPIPE ignored in created init"
    );
    let out = rt.berth(&["exec", &id, "cat", "/proc/self/status"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_eq!(
        ignored_signals(&stdout(&out)) & pipe,
        0,
        "SIGPIPE ignored in exec"
    );
    rt.delete_force(&id);
}

/// The syscalls of the first process in an strace log (`-f` or not) that are among `names`,
/// in order, with the execve that started it first.
fn first_process_calls(log: &str, names: &[&str]) -> Vec<String> {
    // Under -f each line starts with the pid.
    let first = log.split_whitespace().next().unwrap_or_default();
    let with_pids = first.chars().all(|c| c.is_ascii_digit());
    log.lines()
        .filter_map(|l| {
            let call = match l.split_once(' ') {
                _ if !with_pids => l,
                Some((pid, rest)) if pid == first => rest.trim_start(),
                _ => return None,
            };
            let name = call.split('(').next()?;
            names.contains(&name).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn cve_2019_5736_exec_and_create_reseal_before_the_c_library_starts() {
    // `exec` and `create` re-execute berth from the sealed overlay at the binary's entry
    // point, before glibc and Rust's runtime start (whose first calls here are rt_sigaction,
    // sigaltstack and poll): the re-execution comes first. An option that entry does not
    // know sends it the usual way, which still seals, after the runtime has started.
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let bundle = b.path().to_str().unwrap();
    let id = harness::unique_id("sealfirst");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let names = ["execve", "execveat", "rt_sigaction", "sigaltstack", "poll"];
    let traced = "execve,execveat,rt_sigaction,sigaltstack,poll";
    let (out, log) = harness::strace_berth(&rt, &b, traced, &["exec", &id, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = first_process_calls(&log, &names);
    assert_eq!(calls[..2], ["execve", "execveat"], "{log}");

    let (out, log) = harness::strace_berth(
        &rt,
        &b,
        traced,
        &["--debug", "--log-format", "json", "exec", &id, "true"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        first_process_calls(&log, &names)[..2],
        ["execve", "execveat"],
        "{log}"
    );

    // The usual way: sealed all the same, once the runtime has started.
    let (out, log) =
        harness::strace_berth(&rt, &b, traced, &["--rootless=false", "exec", &id, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = first_process_calls(&log, &names);
    let reexec = calls.iter().position(|c| c == "execveat");
    let runtime = calls.iter().position(|c| c == "rt_sigaction");
    assert!(
        matches!((runtime, reexec), (Some(r), Some(e)) if r < e),
        "{log}"
    );
    rt.delete_force(&id);

    // create, its first process only (its init stays, waiting to be started).
    let created = harness::unique_id("sealfirst");
    let (out, log) = harness::strace_berth_first_process(
        &rt,
        &b,
        traced,
        &["create", "--bundle", bundle, &created],
    );
    rt.track(&created);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        first_process_calls(&log, &names)[..2],
        ["execve", "execveat"],
        "{log}"
    );
    rt.delete_force(&created);
}

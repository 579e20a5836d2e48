//! Terminals: `process.terminal` with `--console-socket` for create and `exec -t`, received
//! here as containerd's shim receives them (a unix listener, the master over SCM_RIGHTS), and
//! a foreground `run` that relays the terminal itself.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use nix::sys::termios::{self, LocalFlags, Termios};
use serde_json::json;

use crate::harness::{self, read_until, stderr, stdout, Bundle, ConsoleSocket, Runtime};

const SCRIPT: &str = "tty; stty size; stat -c 'console %t,%T' /dev/console; stat -Lc 'console %t,%T' $(tty); echo ready; read line; echo got:$line";

#[test]
fn create_sends_the_master_and_the_slave_is_the_terminal() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", SCRIPT]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let id = harness::unique_id("tty");
    let sock = ConsoleSocket::new();
    let out = rt.create(&b, &id, &["--console-socket", &sock.path()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (name, mut master) = sock.receive();
    assert!(name.starts_with("/dev/pts/"), "payload {name:?}");
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    let text = read_until(&mut master, "ready");
    assert!(text.contains(&format!("{name}\r\n")), "{text:?}");
    assert!(text.contains("30 100\r\n"), "{text:?}");
    // /dev/console is the slave: same device numbers as the terminal.
    let consoles: Vec<&str> = text.lines().filter(|l| l.starts_with("console ")).collect();
    assert_eq!(consoles.len(), 2, "{text:?}");
    assert_eq!(consoles[0], consoles[1], "{text:?}");
    master.write_all(b"hello\n").unwrap();
    let text = read_until(&mut master, "got:hello");
    assert!(text.contains("got:hello"), "{text:?}");
    harness::reap(init);
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());
    rt.assert_nothing_left(&id);
}

#[test]
fn a_container_joining_a_pid_namespace_gets_the_terminal_as_its_controlling_one() {
    // Its init is forked into the PID namespace late (after pivot_root): it must still be
    // the session leader that owns the terminal (/dev/tty opens only with a controlling one).
    let rt = Runtime::new();
    let a = Bundle::new(&["sleep", "100"]);
    let a_id = harness::unique_id("ttypidns");
    assert!(rt.create(&a, &a_id, &[]).status.success());
    let a_init = rt.state(&a_id)["pid"].as_i64().unwrap() as i32;
    let script =
        "tty; : </dev/tty && echo ctty-ok; echo pid $$; echo ready; read line; echo got:$line";
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{a_init}/ns/pid"));
            }
        }
    });
    let id = harness::unique_id("ttyjoiner");
    let sock = ConsoleSocket::new();
    let out = rt.create(&b, &id, &["--console-socket", &sock.path()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (name, mut master) = sock.receive();
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // The state's pid is the process in A's PID namespace, not one that handed over.
    let nspid = harness::status_of(init)
        .nspid
        .expect("NSpid in /proc/PID/status");
    assert!(rt.berth(&["start", &id]).status.success());
    let text = read_until(&mut master, "ready");
    assert!(text.contains(&format!("{name}\r\n")), "{text:?}");
    assert!(text.contains("ctty-ok"), "{text:?}");
    let in_ns = nspid.last().unwrap();
    assert!(
        text.contains(&format!("pid {in_ns}\r\n")),
        "NSpid {nspid:?} / {text:?}"
    );
    master.write_all(b"hello\n").unwrap();
    let text = read_until(&mut master, "got:hello");
    assert!(text.contains("got:hello"), "{text:?}");
    harness::reap(init);
    assert_eq!(rt.status(&id), "stopped");
    assert!(rt.berth(&["delete", &id]).status.success());
    rt.assert_nothing_left(&id);
    rt.delete_force(&a_id);
    harness::reap(a_init);
    rt.assert_nothing_left(&a_id);
}

#[test]
fn the_pty_belongs_to_the_processs_user_and_stdio_berth_did_not_make_keeps_its_owner() {
    // As runc: the terminal berth makes is chowned to process.user.uid (the group stays
    // tty's), for init and for `exec -t`; stdio handed to berth is never chowned.
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c 'owner %u' $(tty); echo ready; read line",
    ]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let id = harness::unique_id("ttyowner");
    let sock = ConsoleSocket::new();
    let out = rt.create(&b, &id, &["--console-socket", &sock.path()]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (_, mut master) = sock.receive();
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    let text = read_until(&mut master, "ready");
    assert!(text.contains("owner 1000\r\n"), "{text:?}");

    let mut process = b.config["process"].clone();
    process["user"] = json!({"uid": 1001, "gid": 1001});
    process["args"] = json!(["sh", "-c", "stat -c 'owner %u' $(tty); echo ready"]);
    let file = b.path().join("process.json");
    std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let sock = ConsoleSocket::new();
    let out = rt
        .cmd()
        .args([
            "exec",
            "--process",
            file.to_str().unwrap(),
            "--console-socket",
        ])
        .args([&sock.path(), "--detach", "--pid-file"])
        .arg(b.path().join("exec.pid"))
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let (_, mut master) = sock.receive();
    let text = read_until(&mut master, "ready");
    assert!(text.contains("owner 1001\r\n"), "{text:?}");
    // Ours to reap (a subreaper): init's PID namespace cannot end while it is a zombie.
    let exec_pid = std::fs::read_to_string(b.path().join("exec.pid")).unwrap();
    harness::reap(exec_pid.trim().parse().unwrap());
    rt.delete_force(&id);
    harness::reap(init);

    // Without a terminal: the stdout file create was given stays root's.
    let mut b = Bundle::new(&["sh", "-c", "echo hi"]);
    b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let id = harness::unique_id("stdioowner");
    assert!(rt.create(&b, &id, &[]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(rt.berth(&["start", &id]).status.success());
    harness::reap(init);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(b.path().join("stdout")).unwrap();
    assert_eq!(
        (
            meta.uid(),
            std::fs::read_to_string(b.path().join("stdout")).unwrap()
        ),
        (0, "hi\n".to_string())
    );
    rt.delete_force(&id);
}

#[test]
fn terminal_without_a_console_socket_is_refused_and_socket_without_terminal_too() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = harness::unique_id("ttynosock");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(&out, "no --console-socket");
    rt.assert_nothing_left(&id);
    let out = rt.create(&b, &id, &["--console-socket", "/nonexistent/sock"]);
    harness::fails_with_one_line(&out, "--console-socket /nonexistent/sock: connect");
    rt.assert_nothing_left(&id);
    b.edit(|c| c["process"]["terminal"] = json!(false));
    let sock = ConsoleSocket::new();
    let out = rt.create(&b, &id, &["--console-socket", &sock.path()]);
    harness::fails_with_one_line(&out, "process.terminal is false");
    rt.assert_nothing_left(&id);
}

#[test]
fn exec_tty_sends_the_master_of_a_new_terminal() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("exectty");
    assert!(rt.create(&b, &id, &[]).status.success());
    assert!(rt.berth(&["start", &id]).status.success());
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let mut process = b.config["process"].clone();
    process["terminal"] = json!(true);
    process["consoleSize"] = json!({"height": 12, "width": 34});
    process["args"] = json!([
        "sh",
        "-c",
        "tty; stty size; echo ready; read line; echo got:$line"
    ]);
    let file = b.path().join("process.json");
    std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let sock = ConsoleSocket::new();
    let pid_file = b.path().join("exec.pid");
    let out = rt
        .cmd()
        .args([
            "exec",
            "--process",
            file.to_str().unwrap(),
            "--console-socket",
            &sock.path(),
        ])
        .args(["--detach", "--pid-file", pid_file.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (name, mut master) = sock.receive();
    let text = read_until(&mut master, "ready");
    assert!(
        text.contains(&format!("{name}\r\n")) && text.contains("12 34\r\n"),
        "{text:?}"
    );
    master.write_all(b"x y\n").unwrap();
    assert!(read_until(&mut master, "got:x y").contains("got:x y"));
    harness::reap(pid);
    // exec -t with flags: the terminal follows -t.
    let sock = ConsoleSocket::new();
    let out = rt
        .cmd()
        .args([
            "exec",
            "-t",
            "-d",
            "--console-socket",
            &sock.path(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            "tty; echo done",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "exec -t: {}", stderr(&out));
    let (name, mut master) = sock.receive();
    assert!(read_until(&mut master, "done").contains(&name));
    // Reaped here, as a shim would: init cannot finish exiting while it is a zombie.
    harness::reap(
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    rt.delete_force(&id);
    harness::reap(init);
    harness::reap_failed_inits();
    rt.assert_nothing_left(&id);
}

#[test]
fn foreground_run_relays_the_terminal() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "tty; stty size; echo out; exit 3"]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 20, "width": 70});
    });
    let id = harness::unique_id("ttyrun");
    let out = rt.run(&b, &id);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    // As runc, the container's terminal leaves "\n" alone (ONLCR cleared): a pipe gets the
    // output as written.
    assert!(text.contains("20 70\nout\n"), "{text:?}");
    rt.assert_nothing_left(&id);
}

/// The termios fields that make up a terminal's mode (Termios also carries the kernel's
/// copy, compared field by field here).
fn mode(t: &Termios) -> impl PartialEq + std::fmt::Debug {
    (
        t.input_flags,
        t.output_flags,
        t.control_flags,
        t.local_flags,
        t.control_chars,
    )
}

fn set_size(fd: BorrowedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a struct winsize from the pointer, valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

#[test]
fn foreground_run_on_a_real_terminal_is_raw_resized_and_restored() {
    let rt = Runtime::new();
    // The container reports its terminal's size at start, then waits (up to 5 s) for it to
    // change and reports it again.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stty size; echo ready; n=0; \
         while [ \"$(stty size)\" = '33 111' ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; \
         stty size; echo done; exit 5",
    ]);
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 20, "width": 70});
    });
    let id = harness::unique_id("ttyreal");
    // The test's own terminal for berth, as an interactive shell's would be.
    let size = libc::winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let before = termios::tcgetattr(&pty.slave).unwrap();
    assert!(
        before
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO),
        "a new pty starts in canonical mode with echo"
    );
    let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
    let mut cmd = rt.cmd();
    cmd.args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(stdio())
        .stdout(stdio())
        .stderr(stdio());
    // SAFETY: between fork and exec only async-signal-safe calls: setsid, and TIOCSCTTY on fd
    // 0 (the pty slave) with argument 0, which passes no memory.
    unsafe {
        cmd.pre_exec(|| {
            // Its own session, with the pty as controlling terminal: as run from a shell.
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    rt.track(&id);
    let mut berth = cmd.spawn().unwrap();
    let mut master = File::from(pty.master);

    // Output has come through the relay: berth has the outer terminal in raw mode.
    let text = read_until(&mut master, "ready");
    let during = termios::tcgetattr(&pty.slave).unwrap();
    let mut raw = before.clone();
    termios::cfmakeraw(&mut raw);
    // (Raw as runc makes it: output processing kept, so "\n" still ends a line on screen.)
    raw.output_flags.insert(termios::OutputFlags::OPOST);
    assert_eq!(mode(&during), mode(&raw), "the terminal is not in raw mode");
    // The container started with the outer terminal's size, not consoleSize (as runc); its
    // "\n" became "\r\n" on our side of the relay (ONLCR), not in the container's pty.
    assert!(text.contains("33 111\r\nready\r\n"), "{text:?}");

    // A resized outer terminal, and SIGWINCH for berth, resize the container's.
    set_size(master.as_fd(), 44, 122);
    // SAFETY: kill on the pid of our own child, not yet waited for.
    unsafe { libc::kill(berth.id() as i32, libc::SIGWINCH) };
    let text = read_until(&mut master, "done");
    assert!(text.contains("44 122\r\ndone"), "{text:?}");

    assert_eq!(berth.wait().unwrap().code(), Some(5));
    // Restored as it was.
    let after = termios::tcgetattr(&pty.slave).unwrap();
    assert_eq!(mode(&after), mode(&before), "the terminal was not restored");
    rt.assert_nothing_left(&id);
}

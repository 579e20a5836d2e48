//! OCI hooks: the six kinds, each run in the order listed, with `path`, `args`, `env`,
//! `timeout` and the container's state JSON on stdin.
//!
//! Where each kind runs is the caller's business (see process/ and container/): prestart and
//! createRuntime in `create` (the runtime's namespaces), createContainer in init before
//! pivot_root, startContainer in init after the start gate, poststart in `start`, poststop
//! when the container is destroyed.
//!
//! A hook's stdin, stdout and stderr are memfds, not pipes: the state is there to read in full
//! whenever the hook wants it, and output is kept (for the error message) without a reader
//! that has to keep up, so nothing can deadlock and no thread is needed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks};

use crate::sys;

/// The kinds of hook, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    /// The config.json key.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// The hooks of `kind` in `hooks`, none when there are no hooks.
pub fn of(hooks: Option<&Hooks>, kind: Kind) -> &[Hook] {
    hooks.map_or(&[], |h| kind.of(h))
}

/// Whether no hook of any kind is given.
pub fn is_empty(hooks: &Hooks) -> bool {
    Kind::ALL.iter().all(|k| k.of(hooks).is_empty())
}

/// Checks what the runtime-spec requires of every hook: an absolute path and a positive
/// timeout. Done before anything of the container exists.
pub fn validate(hooks: Option<&Hooks>) -> Result<()> {
    for kind in Kind::ALL {
        for (i, hook) in of(hooks, kind).iter().enumerate() {
            let at = format!("config.json: hooks.{}[{i}]", kind.name());
            if !hook.path().is_absolute() {
                bail!("{at}.path: {} must be absolute", hook.path().display());
            }
            if let Some(t) = hook.timeout() {
                if t <= 0 {
                    bail!("{at}.timeout: {t} must be greater than zero (seconds)");
                }
            }
        }
    }
    Ok(())
}

/// Runs the hooks of `kind` in order, in directory `dir` (None: this process's own); the
/// first that fails stops the rest and is the error. As runc: the bundle directory for the
/// hooks berth runs on the host, the rootfs for createContainer, the process's cwd for
/// startContainer.
pub fn run(hooks: Option<&Hooks>, kind: Kind, state_json: &str, dir: Option<&Path>) -> Result<()> {
    run_with_env(hooks, kind, state_json, dir, &[])
}

/// As `run`, with `env` for a hook that has no `env` of its own: the container process's
/// environment for startContainer hooks, which they have always had from runc.
pub fn run_with_env(
    hooks: Option<&Hooks>,
    kind: Kind,
    state_json: &str,
    dir: Option<&Path>,
    env: &[String],
) -> Result<()> {
    for (i, hook) in of(hooks, kind).iter().enumerate() {
        run_one(hook, state_json, dir, env).with_context(|| which(kind, i, hook))?;
    }
    Ok(())
}

/// Which hook failed: runc's words (engines and runc's tests look for them), then the field.
fn which(kind: Kind, i: usize, hook: &Hook) -> String {
    let name = kind.name();
    let path = hook.path().display();
    format!("error running {name} hook #{i}: hooks.{name}[{i}] ({path})")
}

/// Runs every hook of `kind`; a failure is logged as a warning and the rest still run (the
/// runtime-spec's rule for poststop).
pub fn run_warn(hooks: Option<&Hooks>, kind: Kind, state_json: &str, dir: Option<&Path>) {
    for (i, hook) in of(hooks, kind).iter().enumerate() {
        if let Err(e) = run_one(hook, state_json, dir, &[]) {
            log::warn!("{}: {e:#}", which(kind, i, hook));
        }
    }
}

/// Runs one hook to completion (or its timeout) and says how it failed.
fn run_one(hook: &Hook, state_json: &str, dir: Option<&Path>, env: &[String]) -> Result<()> {
    let stdin = memfd("berth-hook-stdin")?;
    let mut file = std::fs::File::from(stdin.try_clone().context("dup the hook's stdin")?);
    file.write_all(state_json.as_bytes())
        .and_then(|_| file.seek(SeekFrom::Start(0)).map(drop))
        .context("write the state for the hook's stdin")?;
    let stdout = memfd("berth-hook-stdout")?;
    let stderr = memfd("berth-hook-stderr")?;

    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or(&[]);
    // args[0] is argv[0], as execve takes it; without args argv[0] is the path.
    match args.split_first() {
        Some((argv0, rest)) => cmd.arg0(argv0).args(rest),
        None => cmd.arg0(hook.path()),
    };
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.env_clear();
    for entry in hook.env().as_deref().unwrap_or(env) {
        match entry.split_once('=') {
            Some((k, v)) => cmd.env(k, v),
            None => cmd.env(entry, ""),
        };
    }
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(
            stdout.try_clone().context("dup the hook's stdout")?,
        ))
        .stderr(Stdio::from(
            stderr.try_clone().context("dup the hook's stderr")?,
        ));
    let mut child = cmd.spawn().context("start")?;
    drop(cmd); // the parent's copies of the hook's stdio

    let timeout = hook.timeout().map(|t| Duration::from_secs(t as u64));
    if let Some(limit) = timeout {
        let pid = Pid::from_raw(child.id() as i32);
        let pidfd = sys::pidfd_open(pid).context("pidfd_open")?;
        if !exited_within(&pidfd, limit)? {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s and was killed", limit.as_secs());
        }
    }
    let status = child.wait().context("wait")?;
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        // With the signal's name, in runc's words too ("bad system call": a seccomp kill).
        (None, Some(sig)) => format!("killed by signal {sig} ({})", sys::signal_description(sig)),
        _ => status.to_string(),
    };
    let out = [("stdout", stdout), ("stderr", stderr)]
        .into_iter()
        .filter_map(|(name, fd)| {
            let text = tail(fd, 512);
            (!text.is_empty()).then(|| format!("{name}: {text}"))
        })
        .collect::<Vec<_>>();
    if out.is_empty() {
        bail!("{how}");
    }
    bail!("{how}; {}", out.join("; "))
}

fn memfd(name: &str) -> Result<OwnedFd> {
    let name = sys::cstring(name)?;
    memfd_create(&name, MemFdCreateFlag::MFD_CLOEXEC).context("memfd_create for a hook")
}

/// Waits up to `limit` for the process behind `pidfd` to exit.
fn exited_within(pidfd: &OwnedFd, limit: Duration) -> Result<bool> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("wait for the hook: {e}"),
        }
    }
}

/// The last `max` bytes a hook wrote to `fd`, trimmed, on one line.
fn tail(fd: OwnedFd, max: u64) -> String {
    let mut file = std::fs::File::from(fd);
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(json: serde_json::Value) -> Hooks {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn runs_in_order_with_args_env_and_state_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // argv[0] as the hook's own cmdline shows it, then $0 (the first word after the script).
        let script = format!(
            "echo \"$(tr '\\0' '\\n' < /proc/$$/cmdline | head -n1) $0 $GREETING $(cat)\" >> {}",
            out.display()
        );
        let h = hooks(serde_json::json!({"prestart": [
            {"path": "/bin/sh", "args": ["first", "-c", script.clone(), "a1"], "env": ["GREETING=hi"]},
            {"path": "/bin/sh", "args": ["second", "-c", script, "a2"], "env": ["GREETING=ho"]},
        ]}));
        run(Some(&h), Kind::Prestart, "{\"id\":\"x\"}", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "first a1 hi {\"id\":\"x\"}\nsecond a2 ho {\"id\":\"x\"}\n"
        );
    }

    #[test]
    fn the_environment_is_only_what_the_hook_lists() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let h = hooks(serde_json::json!({"poststop": [
            {"path": "/bin/sh", "args": ["sh", "-c", format!("env > {}", out.display())], "env": ["A=1"]},
        ]}));
        run(Some(&h), Kind::Poststop, "{}", None).unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.lines().any(|l| l == "A=1"), "{env}");
        assert!(!env.lines().any(|l| l.starts_with("HOME=")), "{env}");
    }

    #[test]
    fn a_failure_stops_the_rest_and_names_the_hook_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ran");
        let h = hooks(serde_json::json!({"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]},
            {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", out.display())]},
        ]}));
        let e = format!(
            "{:#}",
            run(Some(&h), Kind::CreateRuntime, "{}", None).unwrap_err()
        );
        assert_eq!(
            e,
            "error running createRuntime hook #0: hooks.createRuntime[0] (/bin/sh): exit status 3; stderr: broken"
        );
        assert!(!out.exists());
    }

    #[test]
    fn a_hook_killed_by_a_signal_is_said_with_the_signals_name() {
        let h = hooks(serde_json::json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "kill -SYS $$"]},
        ]}));
        let e = format!(
            "{:#}",
            run(Some(&h), Kind::StartContainer, "{}", None).unwrap_err()
        );
        assert!(
            e.contains("error running startContainer hook #0:")
                && e.contains("killed by signal 31 (bad system call)"),
            "{e}"
        );
    }

    #[test]
    fn warn_runs_every_hook_despite_failures() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ran");
        let h = hooks(serde_json::json!({"poststop": [
            {"path": "/bin/false"},
            {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", out.display())]},
        ]}));
        run_warn(Some(&h), Kind::Poststop, "{}", None);
        assert!(out.exists());
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_and_fails() {
        let h = hooks(serde_json::json!({"prestart": [
            {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1},
        ]}));
        let started = std::time::Instant::now();
        let e = format!(
            "{:#}",
            run(Some(&h), Kind::Prestart, "{}", None).unwrap_err()
        );
        assert_eq!(
            e,
            "error running prestart hook #0: hooks.prestart[0] (/bin/sleep): timed out after 1s and was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_large_state_does_not_block_a_hook_that_never_reads_it() {
        let h = hooks(serde_json::json!({"prestart": [{"path": "/bin/true", "timeout": 5}]}));
        let big = "x".repeat(1 << 20);
        run(Some(&h), Kind::Prestart, &big, None).unwrap();
    }

    #[test]
    fn validation_names_relative_paths_and_bad_timeouts() {
        let h = hooks(serde_json::json!({"poststop": [{"path": "true"}]}));
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "config.json: hooks.poststop[0].path: true must be absolute"
        );
        let h = hooks(serde_json::json!({"startContainer": [{"path": "/bin/true", "timeout": 0}]}));
        assert_eq!(
            validate(Some(&h)).unwrap_err().to_string(),
            "config.json: hooks.startContainer[0].timeout: 0 must be greater than zero (seconds)"
        );
        validate(None).unwrap();
    }
}

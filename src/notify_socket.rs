//! sd_notify passthrough, as runc does it: when berth itself is given NOTIFY_SOCKET (systemd,
//! conmon with --sdnotify=container), the container gets a socket of its own at
//! /run/notify/notify.sock and NOTIFY_SOCKET pointing there; `start` (and `run`) listen on
//! it and, once the container says READY=1, tell berth's NOTIFY_SOCKET READY=1 and
//! MAINPID=<init's host pid>.
//!
//! The socket lives in <state dir>/notify, and that directory (not the socket) is what is
//! bind-mounted into the container, so `start` can bind the socket after `create` exited.

use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::{MountBuilder, Spec};

/// Where the container finds its socket.
pub const CONTAINER_DIR: &str = "/run/notify";
const SOCKET_NAME: &str = "notify.sock";
const STATE_SUBDIR: &str = "notify";

/// berth's own NOTIFY_SOCKET, if it was given one.
pub fn host_socket() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

fn state_socket_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_SUBDIR)
}

/// At create, when berth has a NOTIFY_SOCKET: makes <state>/notify and adds to the
/// container's config its bind mount at /run/notify and NOTIFY_SOCKET for the process.
pub fn prepare(state_dir: &Path, spec: &mut Spec) -> Result<()> {
    let dir = state_socket_dir(state_dir);
    std::fs::create_dir(&dir)
        .with_context(|| format!("NOTIFY_SOCKET: create {}", dir.display()))?;
    let mount = MountBuilder::default()
        .destination(CONTAINER_DIR)
        .typ("bind")
        .source(&dir)
        .options(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .context("NOTIFY_SOCKET: build the mount")?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={CONTAINER_DIR}/{SOCKET_NAME}"));
        process.set_env(Some(env));
    }
    Ok(())
}

/// At start, before the container is released: binds the container's socket. None when
/// berth has no NOTIFY_SOCKET or the container was created without one.
pub fn listen(state_dir: &Path) -> Result<Option<UnixDatagram>> {
    let dir = state_socket_dir(state_dir);
    if host_socket().is_none() || !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join(SOCKET_NAME);
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path)
        .with_context(|| format!("NOTIFY_SOCKET: bind {}", path.display()))?;
    Ok(Some(sock))
}

/// Waits for the container's READY=1 (or for its init to exit, then nothing is sent), then
/// tells berth's NOTIFY_SOCKET `READY=1` and `MAINPID=pid`, as two datagrams as runc does.
pub fn forward_ready(sock: &UnixDatagram, init: &OwnedFd, pid: i32) -> Result<()> {
    let Some(host) = host_socket() else {
        return Ok(());
    };
    let mut buf = vec![0u8; 4096];
    let ready = loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(init.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("NOTIFY_SOCKET: wait for the container: {e}"),
            Ok(_) => {}
        }
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            let n = sock.recv(&mut buf).context("NOTIFY_SOCKET: receive")?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(line) = text.lines().find(|l| l.starts_with("READY=")) {
                break line.to_string();
            }
            continue; // STATUS=, EXTEND_TIMEOUT_USEC= ...: runc forwards only readiness
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            log::debug!("NOTIFY_SOCKET: the container exited without READY=1");
            return Ok(());
        }
    };
    let to = host_address(&host)?;
    let out = UnixDatagram::unbound().context("NOTIFY_SOCKET: socket")?;
    for msg in [format!("{ready}\n"), format!("MAINPID={pid}\n")] {
        out.send_to_addr(msg.as_bytes(), &to)
            .with_context(|| format!("NOTIFY_SOCKET: send to {host}"))?;
    }
    Ok(())
}

/// A path, or an abstract name written with a leading '@' (as systemd does).
fn host_address(host: &str) -> Result<SocketAddr> {
    match host.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(host),
    }
    .with_context(|| format!("NOTIFY_SOCKET: {host:?} is not a socket address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_adds_the_mount_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["true"], "cwd": "/", "env": ["NOTIFY_SOCKET=/old", "A=1"],
                        "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
        }))
        .unwrap();
        prepare(dir.path(), &mut spec).unwrap();
        assert!(dir.path().join("notify").is_dir());
        let m = spec.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(m.destination(), Path::new("/run/notify"));
        assert_eq!(
            m.source().as_deref(),
            Some(dir.path().join("notify").as_path())
        );
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, ["A=1", "NOTIFY_SOCKET=/run/notify/notify.sock"]);
    }

    #[test]
    fn abstract_and_path_addresses() {
        assert!(host_address("@abc").unwrap().as_abstract_name().is_some());
        assert_eq!(
            host_address("/run/x.sock").unwrap().as_pathname(),
            Some(Path::new("/run/x.sock"))
        );
    }
}

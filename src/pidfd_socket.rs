//! `--pidfd-socket` (runc 1.2, on `create`, `run` and `exec`): a pidfd of the container's
//! init, or of the exec'd process, sent to a unix socket the caller listens on, so that a
//! supervisor can signal and wait for the process with no pid-reuse race. As runc: the
//! socket is connected before anything is made, and the pidfd goes with the message
//! "standard" (init) or "setns" (exec).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};
use nix::unistd::Pid;

/// What the message says the pidfd is of, in runc's words.
#[derive(Clone, Copy)]
pub enum Of {
    Init,
    Exec,
}

/// Connects to the caller's socket; errors name the flag and the path.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let sock = UnixStream::connect(path)
        .with_context(|| format!("--pidfd-socket {}: connect", path.display()))?;
    Ok(sock.into())
}

/// Sends a pidfd of `pid` and closes the socket.
pub fn send(socket: OwnedFd, pid: Pid, of: Of) -> Result<()> {
    let pidfd = crate::sys::pidfd_open(pid).context("--pidfd-socket: pidfd_open")?;
    let message = match of {
        Of::Init => "standard",
        Of::Exec => "setns",
    };
    crate::sys::send_fd(socket.as_fd(), message.as_bytes(), pidfd.as_fd())
        .context("--pidfd-socket: send the pidfd")
}

//! Typed messages between `create` (the parent) and the container's joiner and init, over a
//! SOCK_SEQPACKET socketpair: one datagram a message, so there is no framing to get wrong,
//! and a closed peer reads as end-of-file instead of a hang.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    recv, recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

/// Every message either side sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Child → parent: the new user namespace exists; write its uid/gid maps.
    UsernsCreated,
    /// Parent → child: the maps are written.
    UsernsMapped,
    /// Child → parent: the new time namespace exists, in a new user namespace; write its
    /// offsets (the child's own capabilities there do not open /proc/self/timens_offsets).
    TimeNamespaceCreated,
    /// Parent → child: the offsets are written.
    TimeOffsetsWritten,
    /// Parent → child, with the systemd driver: systemd has moved the child into the
    /// container's scope; join the rest of its cgroups and go on.
    CgroupPlaced,
    /// Child → parent: init exists, with this pid in the parent's PID namespace.
    InitPid(i32),
    /// Init → parent, with the fd attached: the seccomp notify fd, for `listenerPath`.
    SeccompNotifyFd,
    /// Parent → init: the notify fd has reached the listener.
    SeccompNotifyFdSent,
    /// Init → parent, with init's mount namespace attached: clone the source of
    /// `mounts[i]` there, as root on the host, and send it (see `rootfs::idmap`).
    MountSourceWanted(usize),
    /// Parent → init (and the parent's cloning process → parent), with the detached mount
    /// attached: the source asked for.
    MountSource,
    /// Init → parent: the mounts are in place, before pivot_root: run the prestart and
    /// createRuntime hooks.
    HooksPoint,
    /// Parent → init: those hooks ran; the state JSON for init's own hooks (createContainer
    /// with status `creating`, startContainer with `created`).
    HookState { creating: String, created: String },
    /// Init → parent: the container is set up; init waits for `StateSaved`.
    Ready,
    /// Parent → init: state.json and the pid file are written; go and wait at the start gate.
    StateSaved,
    /// Parent → init, where the gate is the channel (`run`): exec the user process. The
    /// channel closing at execve (close-on-exec) tells the parent it happened; an `Error`
    /// says why it did not.
    Start,
    /// Any side: this process failed, and stops.
    Error(Failure),
}

/// Where in the making of a container (or of an exec'd process) a process of berth's failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The joiner: the cgroup and the namespaces.
    Join,
    /// Forking the next process: init, or the process `exec` starts.
    Fork,
    /// Init building the container: rootfs, hostname, sysctls, terminal, read-only paths.
    Container,
    /// The user process's settings: limits, seccomp, capabilities, user, cwd, the executable.
    Process,
    /// Init at the start gate and past it (a seccomp filter left for last, the gate itself,
    /// startContainer hooks, execve); exec's process at its execve.
    Exec,
    /// A process of `create`'s cloning a mount source for init.
    MountSource,
}

/// A failure that crossed the channel, as data: the step, the errno of the system call that
/// failed where one did, and berth's message, which is all it shows (`Display`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub step: Step,
    pub errno: Option<i32>,
    pub message: String,
}

impl Failure {
    pub fn new(step: Step, err: &anyhow::Error) -> Failure {
        Failure {
            step,
            errno: errno_of(err),
            message: format!("{err:#}"),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error in berth's own words that keeps the errno behind it, for `errno_of`.
#[derive(Debug)]
pub struct OsError {
    pub errno: Errno,
    pub message: String,
}

impl std::fmt::Display for OsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OsError {}

/// The errno behind `err`: the first system call error in its chain, whether nix's, std's,
/// berth's own (`OsError`) or one that crossed the channel (`Failure`). Callers classify
/// errors by it, never by their words.
pub fn errno_of(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<Errno>() {
            return Some(*e as i32);
        }
        if let Some(e) = c.downcast_ref::<OsError>() {
            return Some(e.errno as i32);
        }
        if let Some(f) = c.downcast_ref::<Failure>() {
            return f.errno;
        }
        c.downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
    })
}

/// One received datagram as a message.
pub fn decode(bytes: &[u8]) -> Result<Message> {
    serde_json::from_slice(bytes).context("sync channel: malformed message")
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end). Both are close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the sync channel")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl std::os::fd::FromRawFd for Channel {
    unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> Self {
        Channel {
            // SAFETY: the caller hands over an open fd of one end of a channel pair, which
            // this Channel now owns alone.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }
}

impl std::os::fd::AsRawFd for Channel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<()> {
        self.send_with(msg, &[])
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Message, fd: BorrowedFd) -> Result<()> {
        self.send_with(msg, &[fd.as_raw_fd()])
    }

    fn send_with(&self, msg: &Message, fds: &[RawFd]) -> Result<()> {
        let bytes = serde_json::to_vec(msg)?;
        let iov = [IoSlice::new(&bytes)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs = if fds.is_empty() { &[][..] } else { &rights[..] };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("sync channel: send {msg:?}: {e}")),
            }
        }
    }

    /// Whether a message (or the peer's close) is waiting, without waiting for one.
    pub fn has_message(&self) -> Result<bool> {
        match self.peek_len(MsgFlags::MSG_DONTWAIT) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN) => Ok(false),
            Err(e) => bail!("sync channel: receive: {e}"),
        }
    }

    /// The length of the next datagram (MSG_PEEK|MSG_TRUNC give it whole), 0 for the peer's
    /// close, leaving it queued.
    fn peek_len(&self, flags: MsgFlags) -> nix::Result<usize> {
        let flags = flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
        loop {
            match recv(self.fd.as_raw_fd(), &mut [], flags) {
                Err(Errno::EINTR) => continue,
                r => return r,
            }
        }
    }

    /// The next message, or `None` when the other side has closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// The next message and the fd attached to it, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Message, Option<OwnedFd>)>> {
        // The datagram's length first, so the buffer is just that big: a fixed 64 KiB one,
        // zeroed on every message, cost each forked process sixteen copy-on-write faults.
        let len = self
            .peek_len(MsgFlags::empty())
            .map_err(|e| anyhow!("sync channel: receive: {e}"))?;
        if len == 0 {
            return Ok(None); // every message has some JSON: this is the peer's close
        }
        let mut buf = vec![0u8; len];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    let fd = m.cmsgs()?.find_map(|c| match c {
                        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                        _ => None,
                    });
                    // SAFETY: SCM_RIGHTS just installed this fd in our table; nothing else owns it.
                    break (m.bytes, fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
                Err(Errno::EINTR) => continue,
                Err(e) => bail!("sync channel: receive: {e}"),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((decode(&buf[..n])?, fd)))
    }

    /// Waits for exactly `want`; an `Error` from the peer becomes this side's error.
    pub fn expect(&self, want: &Message) -> Result<()> {
        match self.recv()? {
            Some(m) if &m == want => Ok(()),
            Some(Message::Error(e)) => Err(anyhow::Error::new(e)),
            Some(m) => bail!("sync channel: expected {want:?}, got {m:?}"),
            None => bail!("sync channel: peer exited while berth waited for {want:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_eof_is_none() {
        let (a, b) = pair().unwrap();
        a.send(&Message::InitPid(7)).unwrap();
        let err = anyhow::Error::new(Errno::EPERM).context("mount proc");
        a.send(&Message::Error(Failure::new(Step::Container, &err)))
            .unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::InitPid(7)));
        let got = b.expect(&Message::Ready).unwrap_err();
        // The message reads as the sender's, and the errno and step arrive as data.
        assert_eq!(
            format!("{got:#}"),
            "mount proc: EPERM: Operation not permitted"
        );
        assert_eq!(errno_of(&got), Some(libc::EPERM));
        assert_eq!(got.downcast_ref::<Failure>().unwrap().step, Step::Container);
        assert_eq!(errno_of(&got.context("create")), Some(libc::EPERM));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
        assert!(b
            .expect(&Message::Ready)
            .unwrap_err()
            .to_string()
            .contains("peer exited"));
    }

    #[test]
    fn errno_of_finds_the_system_call_error_under_any_context() {
        let io = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(errno_of(&io.context("create cgroup")), Some(libc::EACCES));
        let own = anyhow::Error::new(OsError {
            errno: Errno::ENOENT,
            message: "exec \"x\": no such file or directory".into(),
        });
        assert_eq!(format!("{own:#}"), "exec \"x\": no such file or directory");
        assert_eq!(errno_of(&own), Some(libc::ENOENT));
        // Words alone carry no errno, whatever they say.
        assert_eq!(errno_of(&anyhow!("permission denied")), None);
    }

    #[test]
    fn a_message_of_any_size_arrives_whole() {
        // Hook state carries the annotations, which have no size limit.
        let (a, b) = pair().unwrap();
        for size in [1, 4096, 100_000] {
            let msg = Message::HookState {
                creating: "c".repeat(size),
                created: "d".into(),
            };
            a.send(&msg).unwrap();
            assert_eq!(b.recv().unwrap(), Some(msg));
        }
    }

    #[test]
    fn an_fd_travels_with_its_message() {
        use std::io::{Read, Write};
        let (a, b) = pair().unwrap();
        let (mut r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
        a.send_fd(&Message::SeccompNotifyFd, std::os::fd::AsFd::as_fd(&w))
            .unwrap();
        let (msg, fd) = b.recv_with_fd().unwrap().unwrap();
        assert_eq!(msg, Message::SeccompNotifyFd);
        let mut copy = std::os::unix::net::UnixStream::from(fd.expect("an fd"));
        copy.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        w.write_all(b"").unwrap();
    }
}

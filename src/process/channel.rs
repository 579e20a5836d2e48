//! Typed messages between `create` (the parent) and the container's setup processes, over a
//! SOCK_SEQPACKET socketpair: one datagram a message, so there is no framing to get wrong,
//! and a closed peer reads as end-of-file instead of a hang.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// Every message either side sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Child → parent: the new user namespace exists; write its uid/gid maps.
    UsernsCreated,
    /// Parent → child: the maps are written.
    UsernsMapped,
    /// Child → parent: init exists, with this pid in the parent's PID namespace.
    InitPid(i32),
    /// Init → parent: the container is set up; init waits for `StateSaved`.
    Ready,
    /// Parent → init: state.json and the pid file are written; go and wait at the start gate.
    StateSaved,
    /// Child → parent: setup failed; the text says what was being done.
    Error(String),
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

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<()> {
        let bytes = serde_json::to_vec(msg)?;
        loop {
            match send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(anyhow!("sync channel: send {msg:?}: {e}")),
            }
        }
    }

    /// The next message, or `None` when the other side has closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => break n,
                Err(Errno::EINTR) => continue,
                Err(e) => bail!("sync channel: receive: {e}"),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n]).context("sync channel: malformed message")?;
        Ok(Some(msg))
    }

    /// Waits for exactly `want`; an `Error` from the peer becomes this side's error.
    pub fn expect(&self, want: &Message) -> Result<()> {
        match self.recv()? {
            Some(m) if &m == want => Ok(()),
            Some(Message::Error(e)) => Err(anyhow!(e)),
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
        a.send(&Message::Error("mount proc: EPERM".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::InitPid(7)));
        assert_eq!(
            b.expect(&Message::Ready).unwrap_err().to_string(),
            "mount proc: EPERM"
        );
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
        assert!(b
            .expect(&Message::Ready)
            .unwrap_err()
            .to_string()
            .contains("peer exited"));
    }
}

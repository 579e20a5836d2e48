//! A foreground `run` or `exec`: waits for the container process, relaying signals to it
//! (and, with a terminal berth holds itself, the terminal), and gives its exit status.

use std::os::fd::AsFd;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::tty::Relay;

/// Signals relayed to the container process while berth waits.
const RELAYED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGTSTP,
];

/// Blocks SIGCHLD and the relayed signals and returns a signalfd for them. Called before
/// forking, so an early exit of the child cannot be missed; children reset their mask.
pub fn block_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in RELAYED {
        mask.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .context("block signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).context("signalfd")
}

/// Waits for `pid` (a child of berth's, or reparented to it as a subreaper) to exit,
/// relaying signals and the terminal; returns its exit code (128+N for signal N).
pub fn wait_for(pid: Pid, signals: &SignalFd, mut relay: Option<&mut Relay>) -> Result<i32> {
    loop {
        let (signal_ready, stdin_ready, master_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let (stdin, master) = relay.as_ref().map_or((None, None), |r| r.fds());
            let stdin_at = stdin.map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            });
            let master_at = master.map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            });
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(Some(0)), ready(stdin_at), ready(master_at))
        };
        if let Some(r) = relay.as_deref_mut() {
            r.pump(stdin_ready, master_ready)?;
        }
        if !signal_ready {
            continue;
        }
        let Some(info) = signals.read_signal().context("read signalfd")? else {
            continue;
        };
        let signo = info.ssi_signo as i32;
        if signo == libc::SIGWINCH {
            if let Some(r) = relay.as_deref() {
                // The kernel tells the terminal's foreground group itself.
                r.resize();
                continue;
            }
        }
        if signo != libc::SIGCHLD {
            if let Ok(sig) = Signal::try_from(signo) {
                let _ = kill(pid, sig);
            }
            continue;
        }
        // One SIGCHLD may stand for several exits: reap them all.
        loop {
            let code = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => code,
                Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(e) => return Err(e).context("waitpid"),
            };
            if let Some(r) = relay.as_deref_mut() {
                r.drain()?;
            }
            return Ok(code);
        }
    }
}

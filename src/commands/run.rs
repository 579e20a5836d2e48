//! `run`: create, start and, unless detached, wait for the container, relaying signals to it
//! and exiting with its status.

use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cli::RunArgs;
use crate::process;

/// Signals relayed to the container's init while `run` waits.
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

pub fn run(root: &Path, args: &RunArgs) -> Result<i32> {
    if args.detach {
        let c = process::create(root, &args.id, &args.opts)?;
        if let Err(e) = c.start() {
            let _ = c.destroy();
            return Err(e);
        }
        return Ok(0);
    }
    // Before forking: init becomes our child when its parent exits, and an early exit
    // cannot be missed because SIGCHLD is blocked (queued) from the start.
    nix::sys::prctl::set_child_subreaper(true).context("become a child subreaper")?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in RELAYED {
        mask.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .context("block signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).context("signalfd")?;

    let c = process::create(root, &args.id, &args.opts)?;
    let init = Pid::from_raw(c.state.pid);
    if let Err(e) = c.start() {
        let _ = c.destroy();
        return Err(e);
    }
    let code = wait_for(init, &signals)?;
    if !args.keep {
        c.destroy()?;
    }
    Ok(code)
}

/// Waits for `init` to exit, relaying signals; returns its exit code (128+N for signal N).
fn wait_for(init: Pid, signals: &SignalFd) -> Result<i32> {
    loop {
        let Some(info) = signals.read_signal().context("read signalfd")? else {
            continue;
        };
        let signo = info.ssi_signo as i32;
        if signo != libc::SIGCHLD {
            if let Ok(sig) = Signal::try_from(signo) {
                let _ = kill(init, sig);
            }
            continue;
        }
        // One SIGCHLD may stand for several exits: reap them all.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == init => return Ok(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(e) => return Err(e).context("waitpid"),
            }
        }
    }
}

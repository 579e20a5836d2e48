//! `run`: create, start and, unless detached, wait for the container, relaying signals (and
//! a terminal without a console socket) to it and exiting with its status.

use std::path::Path;

use anyhow::{Context, Result};
use nix::unistd::Pid;

use crate::cli::RunArgs;
use crate::container::Container;
use crate::process::StartGate;
use crate::{foreground, process, tty};

pub fn run(root: &Path, args: &RunArgs) -> Result<i32> {
    let bundle = process::load(&args.id, &args.opts)?;
    super::seal_if_joining_a_pid_namespace(&bundle)?;
    if args.detach {
        let c = process::create(root, &args.id, &args.opts, bundle, None, StartGate::Channel)?;
        let notify = start_or_destroy(&c)?;
        super::forward_ready(&c, notify)?;
        return Ok(0);
    }
    // A terminal and no console socket: berth holds the terminal and relays it.
    let relay_terminal = args.opts.console_socket.is_none()
        && bundle
            .spec
            .process()
            .as_ref()
            .is_some_and(|p| p.terminal() == Some(true));
    let (ours, theirs) = match relay_terminal {
        true => {
            let (a, b) = tty::socket_pair()?;
            (Some(a), Some(b))
        }
        false => (None, None),
    };
    // Before forking: init becomes our child when its parent exits, and an early exit
    // cannot be missed because SIGCHLD is blocked (queued) from the start.
    nix::sys::prctl::set_child_subreaper(true).context("become a child subreaper")?;
    let signals = foreground::block_signals()?;

    let c = process::create(
        root,
        &args.id,
        &args.opts,
        bundle,
        theirs,
        StartGate::Channel,
    )?;
    let init = Pid::from_raw(c.state.pid);
    let relay = match ours.as_ref().map(tty::recv_master) {
        Some(Ok(master)) => Some(tty::Relay::new(master)),
        Some(Err(e)) => Some(Err(e)),
        None => None,
    }
    .transpose();
    let mut relay = match relay {
        Ok(r) => r,
        Err(e) => {
            let _ = c.destroy();
            return Err(e);
        }
    };
    let notify = start_or_destroy(&c)?;
    super::forward_ready(&c, notify)?;
    let code = foreground::wait_for(init, &signals, relay.as_mut());
    drop(relay);
    let code = code?;
    if !args.keep {
        c.destroy()?;
    }
    Ok(code)
}

/// Starts the container `run` made, listening first for its READY=1 when there is a
/// NOTIFY_SOCKET; a container that cannot be started is destroyed.
fn start_or_destroy(c: &Container) -> Result<Option<std::os::unix::net::UnixDatagram>> {
    crate::notify_socket::listen(&c.dir)
        .and_then(|notify| c.start().map(|()| notify))
        .inspect_err(|_| {
            let _ = c.destroy();
        })
}

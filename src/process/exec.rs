//! `exec`: a new process in a created or running container, as runc runs it.
//!
//!   berth exec                        joiner                        process
//!   state.json, status, pidfd of init (pins it)
//!   config.json from the bundle, the Process
//!   fork (v2: clone3 into the cgroup) ▶ cloexec past stdio (+ --preserve-fds)
//!                                     join the cgroup (v1: tasks)
//!                                     setns(pidfd, every namespace)
//!                                     chroot to init's root
//!                                     fork as berth's child ──────▶ setsid, terminal,
//!   ◀──────────────────────────────── InitPid, exit                 limits, seccomp, caps,
//!                                                                   user, cwd (user_process.rs)
//!   ◀────────────────────────────────────────────────────────────── Error, or end-of-file
//!                                                                   at execve (CLOEXEC)
//!   --pid-file; -d: return; else wait, relaying signals (and the terminal), exit with its
//!   status
//!
//! The process is born in the container's PID namespace only once the joiner is in its
//! mount namespace and root: a container process that may ptrace never sees it with the
//! host's root (`/proc/PID/root`). It is born berth's child (CLONE_PARENT), so berth waits
//! for it directly.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{Process, Spec};

use super::exec_process::exec_process;
use super::user_process::{self, ProcessContext};
use crate::channel::{self, Channel, Message, Step};
use crate::cli::ExecArgs;
use crate::container::state::{write_atomic, Status};
use crate::container::Container;
use crate::{cgroups, foreground, namespaces, spec, sys, tty};

/// Runs `args` in container `args.id`; returns the exit code berth should exit with.
pub fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    // A malformed --cgroup or too many --preserve-fds fail before anything is looked at or
    // made.
    let subs = cgroups::exec_cgroup::parse_sub_cgroups(&args.cgroup)?;
    sys::check_inherited_fds(args.preserve_fds, 0)?;
    let (c, lock) = Container::load_locked(root, &args.id)?;
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        s => bail!("cannot exec in a {s} container"),
    }
    // From here the pidfd pins init: a reused pid cannot be mistaken for it.
    let pidfd = c.init_pidfd().context("container not running")?;
    let init = c.state.pid;
    let bundle = spec::load_bundle(&c.state.bundle)?;
    let process = exec_process(args, &bundle.spec)?;
    crate::process_attrs::check_lsm_process(&process)?;
    let affinity = crate::cpu_affinity::of(&process).map_err(|e| match &args.process {
        Some(path) => anyhow!("--process {}: {e}", path.display()),
        None => anyhow!("config.json: {e}"),
    })?;
    let terminal = process.terminal() == Some(true);
    // A foreground exec with a terminal and no console socket relays the terminal itself.
    let relay_pair = match terminal && !args.detach && args.console_socket.is_none() {
        true => Some(tty::socket_pair()?),
        false => None,
    };
    let (ours, theirs) = match relay_pair {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let console = super::console_socket(terminal, args.console_socket.as_deref(), theirs)?;
    let pidfd_socket = args
        .pidfd_socket
        .as_deref()
        .map(crate::pidfd_socket::connect)
        .transpose()?;
    let cgroup = cgroups::exec_cgroup::resolve(c.state.cgroup.as_ref(), &subs)?;
    let join = namespaces_to_join(init)?;
    // Init's root, reached from the host: the process chroots there after joining the mount
    // namespace (which alone would leave it at the namespace's root: wrong with --no-pivot
    // or without a mount namespace of the container's own).
    let init_root: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(format!("/proc/{init}/root"))
        .context("open the container's root (/proc/PID/root of its init)")?
        .into();
    // A paused container (--ignore-paused) would freeze the process as it joins the cgroup;
    // `resume` must not find the state dir locked then.
    drop(lock);

    let signals = match args.detach {
        false => Some(foreground::block_signals()?),
        true => None,
    };
    let ctx = ExecContext {
        spec: &bundle.spec,
        process: &process,
        pidfd: &pidfd,
        init,
        join,
        init_root,
        cgroup: cgroup.as_ref(),
        preserve_fds: args.preserve_fds,
        console,
        affinity: &affinity,
    };
    let (parent_end, child_end) = channel::pair()?;
    let initial = affinity.enter_initial()?;
    let (forked, born_in) = super::fork_joiner(cgroup.as_ref())?;
    let joiner = match forked {
        ForkResult::Child => {
            drop(parent_end);
            joiner_main(&ctx, child_end, born_in)
        }
        ForkResult::Parent { child } => child,
    };
    initial.restore();
    log::debug!(
        "exec in {}: joiner {joiner} started for {:?}",
        args.id,
        process.args().as_deref().unwrap_or_default()
    );
    drop(child_end);
    drop(ctx);
    let (child, waited) = wait_for_exec(&parent_end, joiner, &bundle.spec, &c);
    // The joiner has exited once it has forked the process (or failed).
    let _ = waitpid(joiner, None);
    if let Err(e) = waited {
        // The process never ran: reap it, so nothing is left.
        if let Some(child) = child {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(child, None);
        }
        return Err(e);
    }
    let child = child.context("exec: the process's pid was never reported")?;
    log::debug!("exec in {}: process {child} runs", args.id);
    if let Some(socket) = pidfd_socket {
        if let Err(e) = crate::pidfd_socket::send(socket, child, crate::pidfd_socket::Of::Exec) {
            // Unsupervised, the process would be left running: it goes, as one that failed.
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(e);
        }
    }
    if let Some(pid_file) = &args.pid_file {
        write_atomic(pid_file, child.to_string().as_bytes())?;
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    let mut relay = match ours.as_ref().map(tty::recv_master) {
        Some(master) => Some(tty::Relay::new(master?)?),
        None => None,
    };
    let code = foreground::wait_for(child, &signals, relay.as_mut());
    drop(relay);
    code
}

/// Serves the joiner's and the process's requests until the process has exec'd (the
/// channel closes: close-on-exec, and the joiner has exited) or an error is reported.
/// Returns the process's pid (as soon as the joiner told it, even with an error).
fn wait_for_exec(
    chan: &Channel,
    joiner: Pid,
    spec: &Spec,
    c: &Container,
) -> (Option<Pid>, Result<()>) {
    let mut child = None;
    // The two senders' messages may arrive in either order: an error or the notify fd of
    // the process may come before the joiner's report of its pid.
    let mut error = None;
    let mut notify_fd = None;
    loop {
        let msg = match chan.recv_with_fd() {
            Ok(m) => m,
            Err(e) => return (child, Err(e)),
        };
        match msg {
            None => break,
            Some((Message::InitPid(p), _)) => {
                // As runc: each exec'd process joins the container's resctrl groups.
                if let Some(group) = &c.state.intel_rdt {
                    if let Err(e) = group.add(p) {
                        error.get_or_insert(e);
                    }
                }
                child = Some(Pid::from_raw(p));
            }
            Some((Message::Error(e), _)) => {
                error.get_or_insert(anyhow::Error::new(e));
                // The joiner exits after reporting the pid (or its own error): then no
                // more will come that matters.
                if child.is_some() || waitpid(joiner, None).is_ok() && !peek(chan) {
                    break;
                }
            }
            Some((Message::SeccompNotifyFd, fd)) => match fd {
                Some(fd) => notify_fd = Some(fd),
                None => {
                    error.get_or_insert(anyhow!("sync channel: notify fd message without the fd"));
                    break;
                }
            },
            Some((m, _)) => {
                error.get_or_insert(anyhow!("sync channel: unexpected {m:?} during exec"));
                break;
            }
        }
        if let (Some(pid), Some(fd)) = (child, notify_fd.take()) {
            if let Err(e) = pass_notify_fd(chan, spec, c, pid, fd) {
                error = Some(e);
                break;
            }
        }
    }
    match error {
        Some(e) => (child, Err(e)),
        None if notify_fd.is_some() => (
            child,
            Err(anyhow!("exec: the process's pid was never reported")),
        ),
        None => (child, Ok(())),
    }
}

/// Whether a message is waiting on the channel.
fn peek(chan: &Channel) -> bool {
    chan.has_message().unwrap_or(false)
}

/// Gives the seccomp agent the exec'd process's own notify fd, with the container's state
/// as runc's setns path sends it (status `running`, the state's pid init's).
fn pass_notify_fd(chan: &Channel, spec: &Spec, c: &Container, pid: Pid, fd: OwnedFd) -> Result<()> {
    let profile = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .context("a notify fd without linux.seccomp")?;
    let state = c
        .state
        .to_oci(oci_spec::runtime::ContainerState::Running, c.state.pid)?;
    crate::seccomp::send_to_listener(profile, state, pid.as_raw(), fd.as_fd())?;
    chan.send(&Message::SeccompNotifyFdSent)
}

/// What the forked process needs.
struct ExecContext<'a> {
    spec: &'a Spec,
    process: &'a Process,
    pidfd: &'a OwnedFd,
    init: i32,
    /// Namespaces of init that differ from berth's own.
    join: CloneFlags,
    init_root: OwnedFd,
    /// The cgroup the process joins: the container's, or sub-cgroups of it (`--cgroup`).
    cgroup: Option<&'a cgroups::Placement>,
    preserve_fds: u32,
    console: Option<OwnedFd>,
    /// `execCPUAffinity`: applied once the joiner is in the cgroup.
    affinity: &'a crate::cpu_affinity::ExecAffinity,
}

/// The joiner: joins the container's cgroup, namespaces and root, then forks the process,
/// which is born in the container's PID namespace already inside its mount namespace and
/// root, and reports its pid.
fn joiner_main(ctx: &ExecContext, chan: Channel, born_in: Option<usize>) -> ! {
    if let Err(e) = join_container(ctx, born_in) {
        super::fail(&chan, Step::Join, e);
    }
    match sys::fork_sibling() {
        Ok(ForkResult::Child) => match prepare_process(ctx, &chan) {
            Ok(prepared) => super::fail(&chan, Step::Exec, user_process::exec(prepared)),
            Err(e) => super::fail(&chan, Step::Process, e),
        },
        Ok(ForkResult::Parent { child }) => {
            let code = i32::from(chan.send(&Message::InitPid(child.as_raw())).is_err());
            // SAFETY: ends the joiner once it has reported the process's pid.
            unsafe { libc::_exit(code) }
        }
        Err(e) => super::fail(
            &chan,
            Step::Fork,
            anyhow!(e).context("fork the exec'd process"),
        ),
    }
}

fn join_container(ctx: &ExecContext, born_in: Option<usize>) -> Result<()> {
    let first_not_passed = sys::first_fd_past(0, ctx.preserve_fds)?;
    let oom_score_adj = ctx.process.oom_score_adj();
    super::begin_joiner(
        first_not_passed,
        oom_score_adj,
        || Ok(()),
        ctx.cgroup,
        born_in,
    )?;
    ctx.affinity.after_joining()?;
    namespaces::join_process(ctx.pidfd, ctx.init, ctx.join)?;
    nix::unistd::fchdir(ctx.init_root.as_raw_fd()).context("chdir to the container's root")?;
    nix::unistd::chroot(".").context("chroot to the container's root")?;
    nix::unistd::chdir("/").context("chdir / in the container")
}

/// In the container's PID namespace: the session, the terminal and the process settings.
fn prepare_process(ctx: &ExecContext, chan: &Channel) -> Result<user_process::Prepared> {
    nix::unistd::setsid().context("setsid")?;
    if let Some(socket) = &ctx.console {
        tty::setup_console(socket, ctx.process, false)?;
        tty::take_controlling_terminal()?;
    }
    let pctx = ProcessContext {
        spec: ctx.spec,
        process: ctx.process,
        listen_fds: 0,
        own_binary: user_process::own_binary()?,
    };
    user_process::prepare(&pctx, chan)
}

/// The namespaces of `pid` that are not berth's own (a container without, say, a network
/// namespace of its own shares the host's, and joining one's own user namespace is EINVAL).
fn namespaces_to_join(pid: i32) -> Result<CloneFlags> {
    use std::os::unix::fs::MetadataExt;
    let mut flags = CloneFlags::empty();
    for (name, flag) in namespaces::PROC_NS {
        let theirs = match fs::metadata(format!("/proc/{pid}/ns/{name}")) {
            Ok(m) => m,
            // A namespace type this kernel does not have.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("read /proc/{pid}/ns/{name}"));
            }
        };
        let ours = fs::metadata(format!("/proc/self/ns/{name}"))
            .with_context(|| format!("read /proc/self/ns/{name}"))?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            flags |= flag;
        }
    }
    Ok(flags)
}

//! The container's init, from its namespaces to execve, in the order the runtime-spec and runc
//! use: rootfs, hostname, the terminal, masked/read-only paths, then the process settings
//! shared with `exec` (limits, seccomp, user and capabilities: user_process.rs), the report to
//! `create`, the start gate and exec. Runs in the forked child; never returns.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::stat::{umask, Mode};
use nix::unistd::setsid;
use oci_spec::runtime::LinuxNamespaceType;

use super::user_process::{self, Prepared, ProcessContext};
use super::CreateConfig;
use crate::channel::{Channel, Failure, Message, Step};
use crate::hooks;
use crate::rootfs::{self, RootfsContext};
use crate::sys;

/// Sets the container up, reports to `create`, waits at the start gate and execs the user
/// process. Errors before the report travel to `create`; later ones go to stderr.
pub fn run(cfg: &CreateConfig, chan: Channel, late_pid_ns: Option<OwnedFd>) -> ! {
    let start_hook_state = match build_container(cfg, &chan, late_pid_ns) {
        Ok(state) => state,
        Err(e) => super::fail(&chan, Step::Container, e),
    };
    let prepared = match prepare_process(cfg, &chan) {
        Ok(p) => p,
        Err(e) => super::fail(&chan, Step::Process, e),
    };
    if let Err(e) = chan
        .send(&Message::Ready)
        .and_then(|_| chan.expect(&Message::StateSaved))
    {
        // `create` is gone: nobody will ever start this container.
        super::fail(&chan, Step::Container, e);
    }
    let (err, reported) = wait_and_exec(cfg, chan, prepared, start_hook_state);
    // Once `start` has it, it is said once, there (runc #4171: one line, not two).
    if !reported {
        eprintln!("berth: container init: {err:#}");
    }
    std::process::exit(127);
}

/// Builds the container: returns the state for startContainer hooks when there are any.
/// With `late_pid_ns`, this process builds the container outside that PID namespace and
/// hands over to the init it forks into it (`enter_pid_namespace`).
fn build_container(
    cfg: &CreateConfig,
    chan: &Channel,
    late_pid_ns: Option<OwnedFd>,
) -> Result<Option<String>> {
    let spec = &cfg.bundle.spec;
    let process = spec.process().as_ref().context("process: must be set")?;
    setsid().context("setsid")?;
    // (berth's own fds are close-on-exec already: `begin_joiner`.)
    if !cfg.no_new_keyring {
        join_new_session_keyring();
    }
    // Devices and mount points get exactly the modes asked for.
    umask(Mode::empty());

    let ctx = RootfsContext {
        spec,
        rootfs: &cfg.bundle.rootfs,
        bundle: &cfg.bundle.dir,
        cgroup: cfg.cgroup.as_ref(),
        in_userns: cfg.namespaces.is_listed(LinuxNamespaceType::User) || cfg.in_user_namespace,
        new_mount_ns: cfg.namespaces.is_listed(LinuxNamespaceType::Mount),
        no_pivot: cfg.no_pivot,
        pid_ns: late_pid_ns.as_ref().map(|ns| ns.as_fd()),
        clone_source: &|i| ask_for_mount_source(chan, i),
    };
    let read_only_later = rootfs::prepare(&ctx)?;
    // Hooks see the mounts in place and the host's root still reachable: `create` runs
    // prestart and createRuntime now, then init runs createContainer in the container's namespaces
    // (runtime-spec: before pivot_root).
    let hook_state = if needs_hook_state(spec.hooks().as_ref()) {
        chan.send(&Message::HooksPoint)?;
        let Some(Message::HookState { creating, created }) = chan.recv()? else {
            bail!("sync channel: expected the hook state");
        };
        hooks::run(
            spec.hooks().as_ref(),
            hooks::Kind::CreateContainer,
            &creating,
            Some(&cfg.bundle.rootfs),
        )?;
        Some(created)
    } else {
        None
    };
    rootfs::enter(&ctx)?;
    if cfg.namespaces.is_listed(LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref() {
            nix::unistd::sethostname(h).with_context(|| format!("hostname: sethostname {h:?}"))?;
        }
        if let Some(d) = spec.domainname().as_deref() {
            set_domainname(d).with_context(|| format!("domainname: setdomainname {d:?}"))?;
        }
    }
    // Before finalize: /proc/sys is usually among the read-only paths.
    if let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        crate::sysctl::apply(sysctls)?;
    }
    // As runc: the terminal is set up once the rootfs is in place (the container's devpts
    // and /dev) and before it is made read-only.
    if let Some(socket) = &cfg.console_socket {
        crate::tty::setup_console(socket, process, true)?;
    }
    rootfs::finalize(spec, read_only_later)?;
    if let Some(pid_ns) = late_pid_ns {
        enter_pid_namespace(pid_ns, chan)?;
    }
    if cfg.console_socket.is_some() {
        crate::tty::take_controlling_terminal()?;
    }

    Ok(hook_state)
}

/// The user process's settings (user_process.rs), with the container in place.
fn prepare_process(cfg: &CreateConfig, chan: &Channel) -> Result<Prepared> {
    let spec = &cfg.bundle.spec;
    let ctx = ProcessContext {
        spec,
        process: spec.process().as_ref().context("process: must be set")?,
        listen_fds: cfg.listen_fds,
        own_binary: cfg.own_binary,
    };
    user_process::prepare(&ctx, chan)
}

/// Asks `create` for a clone of `mounts[i]`'s source made in this mount namespace.
fn ask_for_mount_source(chan: &Channel, i: usize) -> Result<OwnedFd> {
    let mount_ns =
        std::fs::File::open("/proc/thread-self/ns/mnt").context("open /proc/thread-self/ns/mnt")?;
    chan.send_fd(&Message::MountSourceWanted(i), mount_ns.as_fd())?;
    match chan.recv_with_fd()? {
        Some((Message::MountSource, Some(fd))) => Ok(fd),
        Some((Message::Error(e), _)) => Err(anyhow::Error::new(e)),
        Some((m, _)) => bail!("sync channel: expected the source of mounts[{i}], got {m:?}"),
        None => {
            bail!("sync channel: create exited while init waited for the source of mounts[{i}]")
        }
    }
}

/// Joins the container's PID namespace now that the rootfs is the container's, and forks
/// the container's init into it; this process reports the new init and exits.
fn enter_pid_namespace(pid_ns: OwnedFd, chan: &Channel) -> Result<()> {
    nix::sched::setns(&pid_ns, CloneFlags::CLONE_NEWPID).context("join the pid namespace")?;
    drop(pid_ns);
    super::hand_over(chan).context("fork the container's init into its pid namespace")?;
    // Its own session: it is the container's init, and takes the terminal.
    setsid().context("setsid")?;
    Ok(())
}

/// Whether init needs the container state for hooks of its own, or must stop for `create`'s.
fn needs_hook_state(h: Option<&oci_spec::runtime::Hooks>) -> bool {
    use hooks::Kind::*;
    [Prestart, CreateRuntime, CreateContainer, StartContainer]
        .into_iter()
        .any(|k| !hooks::of(h, k).is_empty())
}

/// The start gate: opening the exec fifo for writing blocks until `start` opens it for
/// reading; or, with no fifo, `Start` on the channel. Returns only on failure: the error,
/// and whether `start` was told it.
fn wait_and_exec(
    cfg: &CreateConfig,
    chan: Channel,
    mut p: Prepared,
    start_hook_state: Option<String>,
) -> (anyhow::Error, bool) {
    // A failure to load it is reported through the gate, to `start`.
    let seccomp = p.load_seccomp();
    if let Err(e) = crate::signals::exit_on_terminating_signals() {
        return (e, false);
    }
    let mut gate = match PassedGate::pass(cfg, chan) {
        Ok(gate) => gate,
        Err(e) => return (e, false),
    };
    // startContainer hooks run in the container, past the gate, before the user process.
    let hooks = cfg.bundle.spec.hooks().as_ref();
    let err = match seccomp {
        Err(e) => e,
        Ok(()) => {
            let run_hooks = |s: String| {
                let env = p.env();
                hooks::run_with_env(hooks, hooks::Kind::StartContainer, &s, None, &env)
            };
            match start_hook_state.map(run_hooks) {
                Some(Err(e)) => e,
                _ => user_process::exec(p),
            }
        }
    };
    let reported = gate.report(&err);
    (err, reported)
}

/// The gate init has passed. It stays open (close-on-exec): `start` sees it close when execve
/// succeeds or init dies, so it returns only once the user process runs.
enum PassedGate {
    Fifo(std::fs::File),
    Channel(Channel),
}

impl PassedGate {
    fn pass(cfg: &CreateConfig, chan: Channel) -> anyhow::Result<PassedGate> {
        let Some(fifo) = &cfg.exec_fifo else {
            chan.expect(&Message::Start)
                .map_err(|e| anyhow::anyhow!("wait for start: {e:#}"))?;
            return Ok(PassedGate::Channel(chan));
        };
        drop(chan);
        let gate = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(sys::fd_path(fifo));
        gate.and_then(|mut f| f.write_all(b"0").map(|_| f))
            .map(PassedGate::Fifo)
            .map_err(|e| anyhow::anyhow!("open the exec fifo: {e}"))
    }

    /// Tells `start` why the user process is not running; it fails with this. Whether that
    /// reached it.
    fn report(&mut self, err: &anyhow::Error) -> bool {
        let text = format!("{err:#}");
        match self {
            PassedGate::Fifo(f) => f.write_all(text.as_bytes()).is_ok(),
            PassedGate::Channel(chan) => {
                let failure = Failure::new(Step::Exec, err);
                chan.send(&Message::Error(failure)).is_ok()
            }
        }
    }
}

/// A fresh session keyring, so containers do not share the host's keys. Kernels or seccomp
/// policies without keyctl are tolerated, as runc does.
fn join_new_session_keyring() {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) creates an anonymous keyring; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0usize) };
    if r < 0 {
        log::debug!(
            "keyctl(JOIN_SESSION_KEYRING): {}",
            nix::errno::Errno::last()
        );
    }
}

fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::errno::Errno::result(r).map(drop)
}

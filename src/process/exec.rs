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
//!                                                                   user, cwd (setup.rs)
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
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use super::channel::{self, Channel, Message};
use super::setup::{self, ProcessContext};
use crate::cli::ExecArgs;
use crate::container::state::{write_atomic, Status};
use crate::container::Container;
use crate::{cgroups, foreground, namespaces, spec, sys, tty};

/// Runs `args` in container `args.id`; returns the exit code berth should exit with.
pub fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    // A malformed --cgroup or too many --preserve-fds fail before anything is looked at or
    // made.
    let subs = parse_sub_cgroups(&args.cgroup)?;
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
    let cgroup = exec_cgroup(c.state.cgroup.as_ref(), &subs)?;
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
    let (forked, born_in) = super::fork_setup_process(cgroup.as_ref())?;
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
                error.get_or_insert(anyhow!(e));
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
    let state = oci_spec::runtime::StateBuilder::default()
        .version(c.state.oci_version.clone())
        .id(c.state.id.clone())
        .status(oci_spec::runtime::ContainerState::Running)
        .pid(c.state.pid)
        .bundle(c.state.bundle.clone())
        .annotations(c.state.annotations.clone())
        .build()?;
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
        super::fail(&chan, e);
    }
    match sys::fork_sibling() {
        Ok(ForkResult::Child) => {
            let err = match prepare_process(ctx, &chan) {
                Ok(prepared) => setup::exec(prepared),
                Err(e) => e,
            };
            super::fail(&chan, err)
        }
        Ok(ForkResult::Parent { child }) => {
            let code = i32::from(chan.send(&Message::InitPid(child.as_raw())).is_err());
            // SAFETY: ends the joiner once it has reported the process's pid.
            unsafe { libc::_exit(code) }
        }
        Err(e) => super::fail(&chan, anyhow!("fork the exec'd process: {e}")),
    }
}

fn join_container(ctx: &ExecContext, born_in: Option<usize>) -> Result<()> {
    // No fd of berth's may reach the process (CVE-2024-21626): only stdio and the preserved
    // fds survive the exec.
    sys::cloexec_from(sys::first_fd_past(0, ctx.preserve_fds)?)?;
    // The foreground exec blocks signals to relay them; the process starts with none blocked.
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("reset the signal mask")?;
    crate::signals::reset_dispositions()?;
    // Berth's own binary until execve: nothing in the container may ptrace it or open its
    // /proc/PID/exe, fds or memory (CVE-2019-5736). Inherited by the process.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    if let Some(adj) = ctx.process.oom_score_adj() {
        crate::procfs::Procfs::open()
            .and_then(|proc| proc.write("self/oom_score_adj", &adj.to_string()))
            .context("process.oomScoreAdj")?;
    }
    if let Some(cgroup) = ctx.cgroup {
        cgroup.join_self(born_in)?;
    }
    ctx.affinity.after_joining()?;
    namespaces::join_process(ctx.pidfd, ctx.init, ctx.join)?;
    nix::unistd::fchdir(ctx.init_root.as_raw_fd()).context("chdir to the container's root")?;
    nix::unistd::chroot(".").context("chroot to the container's root")?;
    nix::unistd::chdir("/").context("chdir / in the container")
}

/// In the container's PID namespace: the session, the terminal and the process settings.
fn prepare_process(ctx: &ExecContext, chan: &Channel) -> Result<setup::Prepared> {
    nix::unistd::setsid().context("setsid")?;
    if let Some(socket) = &ctx.console {
        tty::setup_console(socket, ctx.process, false)?;
        tty::take_controlling_terminal()?;
    }
    let pctx = ProcessContext {
        spec: ctx.spec,
        process: ctx.process,
        listen_fds: 0,
        own_binary: setup::own_binary()?,
    };
    setup::prepare(&pctx, chan)
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

/// What `--cgroup` asked for, parsed as runc's exec parses it.
#[derive(Debug, PartialEq)]
pub enum SubCgroups {
    /// No --cgroup: the container's own cgroup on every hierarchy.
    None,
    /// `PATH`, the only --cgroup: that sub-cgroup on every hierarchy (the form for cgroup v2).
    All { arg: String, rel: PathBuf },
    /// `CONTROLLER[,CONTROLLER...]:PATH`, repeatable: one (controller, sub-path, the --cgroup
    /// value) per controller named. Hierarchies whose controllers are not named stay in the
    /// container's cgroup.
    PerController(Vec<(String, PathBuf, String)>),
}

/// Parses the `--cgroup` values; errors name the value.
pub fn parse_sub_cgroups(args: &[String]) -> Result<SubCgroups> {
    let mut per: Vec<(String, PathBuf, String)> = Vec::new();
    for arg in args {
        let (ctrls, path) = match arg.split_once(':') {
            None if args.len() == 1 => {
                let rel = sub_path(arg, arg)?;
                return Ok(SubCgroups::All {
                    arg: arg.clone(),
                    rel,
                });
            }
            None => bail!("--cgroup {arg}: a path without CONTROLLER: must be the only --cgroup"),
            Some((_, path)) if path.contains(':') => {
                bail!("--cgroup {arg}: more than one ':' (the form is [CONTROLLER[,CONTROLLER...]:]PATH)")
            }
            Some(split) => split,
        };
        let rel = sub_path(arg, path)?;
        for ctrl in ctrls.split(',') {
            if ctrl.is_empty() {
                bail!("--cgroup {arg}: empty controller name");
            }
            if per.iter().any(|(c, _, _)| c == ctrl) {
                bail!("--cgroup {arg}: controller {ctrl} given more than once");
            }
            per.push((ctrl.to_string(), rel.clone(), arg.clone()));
        }
    }
    Ok(match per.is_empty() {
        true => SubCgroups::None,
        false => SubCgroups::PerController(per),
    })
}

/// `path` relative to the container's cgroup. A leading '/' still means the container's
/// cgroup, not the hierarchy's root (runc joins it to the container's path), and '..' is
/// refused outright rather than resolved, so nothing can climb out.
pub fn sub_path(arg: &str, path: &str) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(name) => rel.push(name),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("--cgroup {arg}: bad sub cgroup path: it must be below the container's cgroup, without '..'"),
        }
    }
    Ok(rel)
}

/// The cgroup the exec'd process joins: the container's, with the sub-cgroups `subs` asks
/// for, each of which must exist. A per-controller `subs` picks hierarchies by the
/// controllers the placement records for them.
fn exec_cgroup(
    cgroup: Option<&cgroups::Placement>,
    subs: &SubCgroups,
) -> Result<Option<cgroups::Placement>> {
    let Some(cgroup) = cgroup else {
        return match subs {
            SubCgroups::None => Ok(None),
            SubCgroups::All { arg, .. } => bail!("--cgroup {arg}: the container has no cgroup"),
            SubCgroups::PerController(per) => {
                bail!("--cgroup {}: the container has no cgroup", per[0].2)
            }
        };
    };
    let dirs: Vec<PathBuf> = cgroup.paths().map(Path::to_path_buf).collect();
    let mut out = dirs.clone();
    // Which entries of `out` moved to a sub-cgroup, and for which --cgroup value.
    let mut moved: Vec<(usize, &str)> = Vec::new();
    match subs {
        SubCgroups::None => return Ok(Some(cgroup.clone())),
        SubCgroups::All { arg, rel } => {
            for (i, d) in out.iter_mut().enumerate() {
                *d = d.join(rel);
                moved.push((i, arg));
            }
        }
        SubCgroups::PerController(per) => {
            // runc takes the prefix on cgroup v2 and then ignores it (the process joins the
            // container's cgroup); refusing says what would not happen.
            if cgroup.is_v2() {
                bail!(
                    "--cgroup {}: a controller prefix selects a cgroup v1 hierarchy, but this container's cgroup is v2: give the path alone",
                    per[0].2
                );
            }
            // Per hierarchy: the sub-path given and the controller it was given for.
            let mut given: Vec<Option<(&Path, &str)>> = vec![None; dirs.len()];
            for (ctrl, rel, arg) in per {
                let Some(i) = cgroup
                    .dirs
                    .iter()
                    .position(|d| !d.v2 && d.controllers.iter().any(|c| c == ctrl))
                else {
                    bail!("--cgroup {arg}: unknown controller {ctrl}: the container has no cgroup v1 hierarchy with it");
                };
                // Co-mounted controllers (cpu,cpuacct) share one directory: one path for both.
                match given[i] {
                    Some((other, other_ctrl)) if other != rel.as_path() => bail!(
                        "--cgroup {arg}: {ctrl} shares its hierarchy with {other_ctrl}, which was given {}",
                        other.display()
                    ),
                    _ => given[i] = Some((rel, ctrl)),
                }
                out[i] = dirs[i].join(rel);
                moved.push((i, arg));
            }
        }
    }
    for (i, arg) in moved {
        if !out[i].is_dir() {
            // runc's words: its join is what finds the directory missing.
            bail!(
                "--cgroup {arg}: adding pid to {}: no such file or directory",
                out[i].display()
            );
        }
    }
    Ok(Some(cgroup.at(out)))
}

/// The process to run: `--process FILE` as is, or the container's process with the command
/// and the flags applied, as runc does.
pub fn exec_process(args: &ExecArgs, spec: &Spec) -> Result<Process> {
    if let Some(path) = &args.process {
        return read_process_file(path);
    }
    let mut p = spec
        .process()
        .clone()
        .context("config.json: process: must be set")?;
    if args.command.is_empty() {
        bail!(
            "exec: no command given: berth exec [OPTIONS] ID COMMAND [ARGS...], or --process FILE"
        );
    }
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    if !args.env.is_empty() {
        p.set_env(Some(merge_env(
            p.env().as_deref().unwrap_or(&[]),
            &args.env,
        )?));
    }
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd {}: must be an absolute path", cwd.display());
        }
        p.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
        // As runc (and the runtime-spec for the config's names): an unknown name is warned
        // about and left out, not an error.
        let unknown: Vec<&str> = args
            .cap
            .iter()
            .filter(|n| parse_capability(n).is_err())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            log::warn!(
                "ignoring unknown or unavailable capabilities: [{}]",
                unknown.join(" ")
            );
        }
        for cap in args.cap.iter().filter_map(|n| parse_capability(n).ok()) {
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // As runc: ambient only where the config has inheritable capabilities, since
            // the kernel refuses ambient ones that are not inheritable.
            if caps.inheritable().is_some() {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &args.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &args.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None);
    c.set_effective(None);
    c.set_inheritable(None);
    c.set_permitted(None);
    c.set_ambient(None);
    c
}

/// An OCI `Process` JSON file; errors name the file and the field.
fn read_process_file(path: &Path) -> Result<Process> {
    let what = format!("--process {}", path.display());
    let text = fs::read_to_string(path).with_context(|| format!("{what}: read"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{what}: {e}"))?;
    // As runc: a process without `user` runs as 0:0 (oci-spec would require the field).
    if let Some(obj) = value.as_object_mut() {
        obj.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    crate::cpu_affinity::without_empty_lists(&mut value);
    crate::spec::with_spec_scheduler_flags(&mut value);
    let p: Process = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        match field.as_str() {
            "" | "." | "?" => anyhow!("{what}: {}", e.into_inner()),
            _ => anyhow!("{what}: {field}: {}", e.into_inner()),
        }
    })?;
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("{what}: args: must not be empty");
    }
    if !p.cwd().is_absolute() {
        bail!("{what}: cwd: {} is not absolute", p.cwd().display());
    }
    Ok(p)
}

/// The config's environment with `--env K=V` entries replacing those of the same name.
fn merge_env(base: &[String], extra: &[String]) -> Result<Vec<String>> {
    let mut env = base.to_vec();
    for e in extra {
        let Some((key, _)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("--env {e:?}: must be KEY=VALUE");
        };
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    Ok(env)
}

/// `--user UID[:GID]`, numeric as runc takes it.
fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let bad = || anyhow!("--user {s:?}: must be UID or UID:GID (numbers in the container)");
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// `--cap NAME`: CAP_NET_ADMIN, or NET_ADMIN, in any case.
fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = match upper.starts_with("CAP_") {
        true => upper,
        false => format!("CAP_{upper}"),
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| anyhow!("--cap {name}: unknown capability"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::placement::test_support::placement;
    use crate::cgroups::Placement;

    #[test]
    fn env_flags_replace_by_name() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let env = merge_env(&base, &["A=2".into(), "B=x=y".into()]).unwrap();
        assert_eq!(env, ["PATH=/bin", "A=2", "B=x=y"]);
        assert!(merge_env(&base, &["NOEQUALS".into()]).is_err());
        assert!(merge_env(&base, &["=v".into()]).is_err());
    }

    #[test]
    fn users_and_capabilities() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:50").unwrap(), (1000, Some(50)));
        assert!(parse_user("bob").is_err() && parse_user("1:x").is_err());
        assert_eq!(
            parse_capability("CAP_NET_ADMIN").unwrap(),
            Capability::NetAdmin
        );
        assert_eq!(parse_capability("net_raw").unwrap(), Capability::NetRaw);
        let e = parse_capability("CAP_BOGUS").unwrap_err().to_string();
        assert_eq!(e, "--cap CAP_BOGUS: unknown capability");
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn parse_err(v: &[&str]) -> String {
        parse_sub_cgroups(&args(v)).unwrap_err().to_string()
    }

    #[test]
    fn cgroup_flag_forms() {
        assert_eq!(parse_sub_cgroups(&[]).unwrap(), SubCgroups::None);
        // A plain path: every hierarchy; a leading '/' is still below the container.
        for (arg, rel) in [
            ("sub", "sub"),
            ("/a/b", "a/b"),
            ("./a/./b/", "a/b"),
            ("/", ""),
        ] {
            assert_eq!(
                parse_sub_cgroups(&args(&[arg])).unwrap(),
                SubCgroups::All {
                    arg: arg.into(),
                    rel: rel.into()
                },
                "{arg}"
            );
        }
        let per = |v: &[(&str, &str, &str)]| {
            SubCgroups::PerController(
                v.iter()
                    .map(|(c, p, a)| (c.to_string(), PathBuf::from(p), a.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            parse_sub_cgroups(&args(&["memory:m", "cpu,cpuacct:/c/d"])).unwrap(),
            per(&[
                ("memory", "m", "memory:m"),
                ("cpu", "c/d", "cpu,cpuacct:/c/d"),
                ("cpuacct", "c/d", "cpu,cpuacct:/c/d"),
            ])
        );
        // An empty path after the prefix is the container's own cgroup, as in runc.
        assert_eq!(
            parse_sub_cgroups(&args(&["name=systemd:"])).unwrap(),
            per(&[("name=systemd", "", "name=systemd:")])
        );
    }

    #[test]
    fn bad_cgroup_flags_name_the_value() {
        assert_eq!(
            parse_err(&["a", "memory:b"]),
            "--cgroup a: a path without CONTROLLER: must be the only --cgroup"
        );
        assert_eq!(
            parse_err(&["memory:a", "b"]),
            "--cgroup b: a path without CONTROLLER: must be the only --cgroup"
        );
        assert_eq!(
            parse_err(&["memory:a", "pids,memory:b"]),
            "--cgroup pids,memory:b: controller memory given more than once"
        );
        assert_eq!(
            parse_err(&["cpu,cpu:a"]),
            "--cgroup cpu,cpu:a: controller cpu given more than once"
        );
        for bad in [":a", "cpu,:a", ",cpu:a"] {
            assert_eq!(
                parse_err(&[bad]),
                format!("--cgroup {bad}: empty controller name")
            );
        }
        assert!(parse_err(&["memory:a:b"]).starts_with("--cgroup memory:a:b: more than one ':'"));
        for bad in ["..", "../x", "a/../../x", "memory:../x", "/.."] {
            assert!(
                parse_err(&[bad]).starts_with(&format!("--cgroup {bad}: bad sub cgroup path")),
                "{bad}"
            );
        }
    }

    /// A fake hybrid host: a hierarchy per entry of `mounts` under a temp dir ("unified" is
    /// cgroup2), the container's cgroup `c1` in each, and `subs` made below it.
    fn fake_v1(mounts: &[&str], subs: &[&str]) -> (tempfile::TempDir, Placement, Vec<PathBuf>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        for m in mounts {
            let mount_point = tmp.path().join(m);
            fs::create_dir_all(mount_point.join("c1")).unwrap();
            for sub in subs {
                fs::create_dir_all(mount_point.join("c1").join(sub)).unwrap();
            }
            dirs.push(mount_point.join("c1"));
        }
        let named: Vec<(&Path, &str)> = dirs
            .iter()
            .zip(mounts)
            .map(|(d, m)| (d.as_path(), if *m == "unified" { "" } else { *m }))
            .collect();
        let p = placement(cgroups::Layout::Hybrid, &named);
        (tmp, p, dirs)
    }

    fn resolve(p: Option<&Placement>, v: &[&str]) -> Result<Vec<PathBuf>> {
        let got = exec_cgroup(p, &parse_sub_cgroups(&args(v)).unwrap())?;
        Ok(got.map_or(Vec::new(), |p| p.paths().map(Path::to_path_buf).collect()))
    }

    #[test]
    fn cgroup_flags_pick_hierarchies() {
        let (_tmp, p, dirs) = fake_v1(
            &["cpu,cpuacct", "memory", "pids", "name=systemd", "unified"],
            &["s", "t"],
        );
        let sub = |i: usize, s: &str| dirs[i].join(s);
        assert_eq!(resolve(Some(&p), &[]).unwrap(), dirs);
        // A plain path moves every hierarchy, the named one and cgroup2 included, as runc.
        assert_eq!(
            resolve(Some(&p), &["s"]).unwrap(),
            (0..5).map(|i| sub(i, "s")).collect::<Vec<_>>()
        );
        assert_eq!(resolve(Some(&p), &["/"]).unwrap(), dirs);
        // Named controllers move their hierarchies only; the rest stay in the container's.
        assert_eq!(
            resolve(Some(&p), &["memory:s", "cpuacct,pids:t"]).unwrap(),
            [
                sub(0, "t"),
                sub(1, "s"),
                sub(2, "t"),
                dirs[3].clone(),
                dirs[4].clone()
            ]
        );
        assert_eq!(
            resolve(Some(&p), &["name=systemd:s"]).unwrap()[3],
            sub(3, "s")
        );
        // Co-mounted controllers: the same path twice is fine, two paths are not.
        assert_eq!(
            resolve(Some(&p), &["cpu:s", "cpuacct:s"]).unwrap()[0],
            sub(0, "s")
        );
        let e = resolve(Some(&p), &["cpu:s", "cpuacct:t"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--cgroup cpuacct:t: cpuacct shares its hierarchy with cpu, which was given s"
        );
        let e = resolve(Some(&p), &["whaaat:s"]).unwrap_err().to_string();
        assert_eq!(e, "--cgroup whaaat:s: unknown controller whaaat: the container has no cgroup v1 hierarchy with it");
        let e = resolve(Some(&p), &["pids:missing"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "--cgroup pids:missing: adding pid to {}: no such file or directory",
                sub(2, "missing").display()
            )
        );
        // Missing on one hierarchy only is enough to refuse.
        fs::remove_dir(sub(4, "t")).unwrap();
        let e = resolve(Some(&p), &["t"]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--cgroup t: adding pid to {}: no such file or directory",
                sub(4, "t").display()
            )
        );
    }

    #[test]
    fn cgroup_v2_takes_a_plain_path_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c1");
        fs::create_dir_all(dir.join("s")).unwrap();
        fs::write(dir.join("cgroup.controllers"), "memory pids\n").unwrap();
        let p = placement(cgroups::Layout::V2, &[(&dir, "v2:memory,pids")]);
        assert_eq!(resolve(Some(&p), &["s"]).unwrap(), [dir.join("s")]);
        let e = resolve(Some(&p), &["memory:s"]).unwrap_err().to_string();
        assert!(
            e.starts_with("--cgroup memory:s: a controller prefix selects a cgroup v1 hierarchy"),
            "{e}"
        );
        let e = resolve(None, &["s"]).unwrap_err().to_string();
        assert_eq!(e, "--cgroup s: the container has no cgroup");
    }
}

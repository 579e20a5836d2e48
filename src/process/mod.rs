//! THE create sequence, parent side, top to bottom, then the joiner's side. `create` forks
//! (or vforks) the joiner, which joins the cgroup, enters the namespaces and (for a PID or
//! time namespace) forks init (init.rs).
//! Parent and children talk over a typed channel; nothing sleeps or polls.
//!
//!   parent (create)                 joiner                       init
//!   state dir, state.json(creating)
//!   cgroup dirs, exec fifo
//!   vfork or fork ──────────────▶   join cgroup
//!                                   unshare(user) ─ UsernsCreated
//!   write uid/gid maps ─ UsernsMapped
//!                                   setns/unshare the rest
//!                                   fork ───────────────────────▶ rootfs, hostname, limits,
//!   ◀──────────────────────────────  InitPid, exit                 user, caps, cwd, exe
//!   (SCMP_ACT_NOTIFY only:)
//!   ◀──────────────────────────────────────────────────── SeccompNotifyFd (+fd), after load
//!   fd + state to listenerPath ─ SeccompNotifyFdSent ─────────────▶
//!   ◀─────────────────────────────────────────────────────────── Ready
//!   state.json(created), pid file
//!   StateSaved ────────────────────────────────────────────────▶ block on exec fifo
//!   return                                                        ... `start` ... execve
//!
//! `run` without hooks keeps the channel as the start gate instead of an exec fifo: `start`
//! sends `Start`, and init's end closing at execve says the user process runs.

pub mod exec;
pub mod exec_process;
mod init;
pub mod restore;
mod user_process;

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};
use oci_spec::runtime::{ContainerState, LinuxIdMapping, LinuxNamespaceType};

use crate::channel::{self, Channel, Failure, Message, Step};
use crate::cli::CreateOpts;
use crate::container::state::{write_atomic, State, Status};
use crate::container::{self, Container, EXEC_FIFO};
use crate::namespaces::{self, Namespaces};
use crate::spec::{self, Bundle};
use crate::{cgroups, hooks, notify_socket, sys};

/// Where init waits to be started.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StartGate {
    /// The exec fifo in the state dir, for a `start` from another berth process (runc's way;
    /// its presence is what makes the container `created`).
    Fifo,
    /// The sync channel, which the returned Container keeps, for `run`, which starts the
    /// container itself: no fifo to make and remove. Only without hooks, which may ask for
    /// the container's state while it is created.
    Channel,
}

/// Everything the child and init need, resolved by the parent before the fork.
pub struct CreateConfig {
    pub bundle: Bundle,
    pub namespaces: Namespaces,
    /// Where the container's cgroup is; None when it has none of its own (rootless).
    pub cgroup: Option<cgroups::Placement>,
    /// O_PATH fd of the exec fifo; init reopens it for writing through /proc/self/fd. None
    /// when the sync channel is the start gate.
    pub exec_fifo: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Socket-activation fds handed to berth (LISTEN_FDS), passed on after stdio as runc does.
    pub listen_fds: u32,
    /// Device and inode of berth's own binary, which the container process must never be.
    pub own_binary: user_process::OwnBinary,
    /// With `process.terminal`: where init sends the master of the container's terminal.
    pub console_socket: Option<OwnedFd>,
    /// The systemd driver: the joiner waits for `CgroupPlaced` (systemd moving it into
    /// the scope) before joining `cgroup`, whose directories do not exist when it is forked.
    pub cgroup_placed_by_parent: bool,
    /// berth runs in a user namespace other than the host's (rootless podman's): devices are
    /// bound, not made, as in a user namespace of the container's own.
    pub in_user_namespace: bool,
}

/// Checks the id and options of a `create` and loads its bundle, before anything exists.
pub fn load(id: &str, opts: &CreateOpts) -> Result<Bundle> {
    container::id::validate(id)?;
    sys::check_inherited_fds(opts.preserve_fds, listen_fds())?;
    let bundle = spec::load_bundle(&opts.bundle)?;
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    if opts.systemd_cgroup {
        // (Its form only: rootless or not changes the default slice, not what is valid.)
        cgroups::systemd::Unit::from_cgroups_path(cgroups_path.as_deref(), id, false)?;
    } else if let Some(p) = cgroups_path
        .as_deref()
        .filter(|p| cgroups::systemd::looks_like_unit_path(p))
    {
        bail!("linux.cgroupsPath: {p:?} is a systemd slice:prefix:name; it needs --systemd-cgroup (without it, cgroupsPath is a directory)");
    }
    Ok(bundle)
}

/// Creates container `id` under `root` from `bundle` (checked by `load`), in this order:
/// 1. `make_container`: the state dir with state.json (`creating`), the cgroup with its
///    limits, the resctrl group;
/// 2. the start gate: the exec fifo, or with `StartGate::Channel` (and no hooks) the sync
///    channel, which the returned Container keeps;
/// 3. `start_joiner`: the joiner, which joins the cgroup and the namespaces and forks init
///    (`joiner_main`; with the systemd driver, once systemd has put it in the scope);
/// 4. `wait_for_ready`: serves the joiner and init (id maps, mount sources, hooks, the
///    seccomp agent) until init has set the container up;
/// 5. the pids limit, state.json (`created`, init's pid), the pid file, then `StateSaved`,
///    which sends init to wait at the gate.
///
/// On error nothing is left: no state dir, cgroup or process (`Cleanup`). `console` is a
/// socket already connected for the terminal's master (a foreground `run` that relays the
/// terminal itself); otherwise `--console-socket` is connected.
pub fn create(
    root: &Path,
    id: &str,
    opts: &CreateOpts,
    mut bundle: Bundle,
    console: Option<OwnedFd>,
    gate: StartGate,
) -> Result<Container> {
    let Made {
        dir,
        lock,
        mut guard,
        mut state,
        namespaces,
        in_user_namespace,
        cgroup,
        systemd,
        console_socket,
        pidfd_socket,
    } = make_container(root, id, opts, &mut bundle, console)?;
    let channel_gate =
        gate == StartGate::Channel && state.hooks.as_ref().is_none_or(hooks::is_empty);
    let exec_fifo = match channel_gate {
        true => None,
        false => Some(make_exec_fifo(&dir, &bundle)?),
    };

    let cfg = CreateConfig {
        bundle,
        namespaces,
        cgroup: match systemd {
            Some(_) => Some(cgroup),
            None => state.cgroup.clone(),
        },
        exec_fifo,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        listen_fds: listen_fds(),
        own_binary: user_process::own_binary()?,
        console_socket,
        cgroup_placed_by_parent: systemd.is_some(),
        in_user_namespace,
    };
    let (parent_end, child_end) = channel::pair()?;
    let child = start_joiner(&cfg, &parent_end, child_end, lock.as_raw_fd())?;
    log::debug!("create {id}: joiner {child} started");
    guard.pids.push(child);
    if let Some((systemd, unit)) = &systemd {
        let cgroup = cfg.cgroup.as_ref().context("the systemd driver's cgroup")?;
        place_in_systemd_scope(systemd, unit, child, &cfg.bundle.spec, cgroup, &mut guard)?;
        state.cgroup = cfg.cgroup.clone();
        state.save(&dir)?;
        parent_end.send(&Message::CgroupPlaced)?;
    }

    let init_pid = wait_for_ready(&parent_end, child, &cfg, &state, &mut guard)?;
    // The joiner, and any process that handed over to init: reaped.
    for &pid in guard.pids.iter().filter(|&&pid| pid != init_pid) {
        // (ECHILD: wait_for_ready reaped it already.)
        match waitpid(pid, None) {
            Ok(_) | Err(nix::errno::Errno::ECHILD) => {}
            Err(e) => return Err(e).context("reap the container's setup process"),
        }
    }
    // (Reaped pids could be anyone's by now.)
    guard.pids = vec![init_pid];
    if let Some(cgroup) = &cfg.cgroup {
        if let (Some((systemd, unit)), Some(pids)) =
            (&systemd, cgroups::pids_only(&cfg.bundle.spec))
        {
            let props = cgroups::systemd::resource_properties(&pids, cgroup.is_v2())?;
            systemd
                .set_properties(&unit.name, props)
                .context("--systemd-cgroup: linux.resources.pids")?;
        }
        cgroup.apply_pids_limit(&cfg.bundle.spec)?;
    }
    let stat = sys::proc_stat(init_pid.as_raw()).context("container init exited during create")?;
    state.pid = init_pid.as_raw();
    state.init_start_time = stat.start_time;
    if !channel_gate {
        // (Unreadable when berth is not root, as init is not dumpable: then the fifo alone
        // tells.)
        use std::os::unix::fs::MetadataExt;
        state.init_gate_exe = fs::metadata(format!("/proc/{init_pid}/exe"))
            .ok()
            .map(|exe| (exe.dev(), exe.ino()));
    }
    state.status = Status::Created;
    state.save(&dir)?;
    log::debug!("create {id}: init {init_pid} waits at the start gate");
    if let Some(socket) = pidfd_socket {
        crate::pidfd_socket::send(socket, init_pid, crate::pidfd_socket::Of::Init)?;
    }
    if let Some(pid_file) = &opts.pid_file {
        write_atomic(pid_file, init_pid.to_string().as_bytes())?;
    }
    parent_end.send(&Message::StateSaved)?;
    guard.armed = false;
    drop(lock);
    Ok(Container {
        dir,
        state,
        start_channel: channel_gate.then_some(parent_end),
    })
}

/// What `create` and `restore` have made before any process of the container exists: the
/// locked state dir with state.json (creating), the cgroup with its limits, the resctrl
/// group. Dropping `guard` (armed) undoes it all.
pub(crate) struct Made {
    pub dir: PathBuf,
    pub lock: nix::fcntl::Flock<fs::File>,
    pub guard: Cleanup,
    pub state: State,
    pub namespaces: Namespaces,
    pub in_user_namespace: bool,
    /// Where the container's cgroup goes (with systemd: the unit's, not made yet).
    pub cgroup: cgroups::Placement,
    pub systemd: Option<(cgroups::systemd::Systemd, cgroups::systemd::Unit)>,
    pub console_socket: Option<OwnedFd>,
    pub pidfd_socket: Option<OwnedFd>,
}

/// The first half of `create` (and of `restore`): checks what can be checked before anything
/// exists, then makes the state dir, the cgroup and the resctrl group.
pub(crate) fn make_container(
    root: &Path,
    id: &str,
    opts: &CreateOpts,
    bundle: &mut Bundle,
    console: Option<OwnedFd>,
) -> Result<Made> {
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    let console_socket = console_socket(terminal, opts.console_socket.as_deref(), console)?;
    let pidfd_socket = opts
        .pidfd_socket
        .as_deref()
        .map(crate::pidfd_socket::connect)
        .transpose()?;
    // As runc, an id in use is the first thing named (its cgroup is not empty, for one);
    // making the state dir below settles a race.
    if root.join(id).exists() {
        bail!("container {id:?} already exists");
    }
    crate::process_attrs::check_lsm(&bundle.spec)?;
    let namespaces = Namespaces::from_spec(&bundle.spec);
    // berth itself in a user namespace (rootless podman runs it as uid 0 of its own): what
    // it cannot do there is done as in a rootless container.
    let in_user_namespace = namespaces::in_user_namespace();
    let rootless = is_rootless(
        opts,
        || in_user_namespace,
        cgroups::systemd::session_bus_uid,
    );
    if let Some(sysctls) = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
    {
        crate::sysctl::validate(sysctls, &namespaces)?;
    }
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    // With --systemd-cgroup systemd makes the cgroup, a scope for the joiner once it
    // exists (`place_in_systemd_scope`); its directories are the unit's on each hierarchy.
    // Rootless, the user's own systemd instance makes it, below that instance's cgroup (the
    // subtree systemd delegates to the user), as runc's systemdUser.
    let systemd = match opts.systemd_cgroup {
        true => {
            let path = cgroups_path.as_deref().map(|p| p.to_string_lossy());
            let unit = cgroups::systemd::Unit::from_cgroups_path(path.as_deref(), id, rootless)?;
            Some((cgroups::systemd::Systemd::connect(rootless)?, unit))
        }
        false => None,
    };
    let cgroup = match &systemd {
        Some((systemd, unit)) => {
            let driver = cgroups::Driver::Systemd {
                unit: unit.name.clone(),
                user: rootless,
            };
            let path = match rootless {
                true => {
                    let base = systemd.manager_cgroup()?;
                    base.join(unit.cgroup().strip_prefix("/").unwrap_or(&unit.cgroup()))
                }
                false => unit.cgroup(),
            };
            cgroups::placement_for(Some(&path), id, driver)?
        }
        None => cgroups::placement_for(cgroups_path.as_deref(), id, cgroups::Driver::Cgroupfs)
            .map_err(|e| match root.join(id).exists() {
                // Another create of this id got there meanwhile (its init in the cgroup):
                // the id in use is what is wrong, as the check above would have said.
                true => anyhow!("container {id:?} already exists"),
                false => e,
            })?,
    };
    if let Some(unified) = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.unified().as_ref())
    {
        cgroups::resources::check_unified(&cgroup, unified)?;
    }
    log::debug!(
        "create {id}: bundle {}, cgroup {:?} ({:?}, {:?})",
        bundle.dir.display(),
        cgroup.paths().collect::<Vec<_>>(),
        cgroup.layout,
        cgroup.driver
    );
    // The filter is built and loaded in init, whose stderr is the container's: its flags are
    // said here, in runc's words.
    if let Some(profile) = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        if log::log_enabled!(log::Level::Debug) {
            log::debug!(
                "seccomp filter flags: {}",
                crate::seccomp::filter_flags(profile)
            );
        }
    }

    make_state_root(root)?;
    let dir = root.join(id);
    match fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container {id:?} already exists")
        }
        Err(e) => return Err(e).with_context(|| format!("create state dir {}", dir.display())),
    }
    let mut guard = Cleanup {
        dir: dir.clone(),
        // (With systemd, once its scope is started: `place_in_systemd_scope`.)
        cgroup: systemd.is_none().then(|| cgroup.clone()),
        pids: vec![],
        host_rootfs_mounts: None,
        intel_rdt: None,
        poststop: None,
        hooks: bundle.spec.hooks().clone(),
        bundle: bundle.dir.clone(),
        armed: true,
    };
    let lock = container::lock_dir(&dir)?;
    if notify_socket::host_socket().is_some() {
        notify_socket::prepare(&dir, &mut bundle.spec)?;
    }

    let mut state = State {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        pid: 0,
        status: Status::Creating,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: owner_name(),
        init_start_time: 0,
        init_gate_exe: None,
        // (With systemd, once it has started the unit: one of that name may be another's
        // till then.)
        cgroup: systemd.is_none().then(|| cgroup.clone()),
        own_pid_namespace: namespaces.is_new(LinuxNamespaceType::Pid),
        host_rootfs_mounts: None,
        intel_rdt: None,
        hooks: bundle.spec.hooks().clone(),
        resources: bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone()),
    };
    if !namespaces.is_listed(LinuxNamespaceType::Mount) {
        let before = crate::rootfs::mounts_at(&bundle.rootfs)?;
        state.host_rootfs_mounts = Some(before);
        guard.host_rootfs_mounts = Some((bundle.rootfs.clone(), before));
    }
    // Saved before anything else exists, so `delete --force` can always find what to undo.
    state.save(&dir)?;
    if systemd.is_some() {
        // Made once the joiner exists, for systemd to move it there.
    } else if let Err(e) = cgroup.create() {
        // Rootless, like runc: no writable cgroup tree is fine as long as nothing asks for
        // a limit; then the container simply has no cgroup of its own.
        if !rootless || !cgroups::is_permission_denied(&e) {
            return Err(e);
        }
        let _ = cgroup.remove_if_empty();
        if let Some(what) = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(cgroups::resources::first_limit)
        {
            bail!("linux.resources.{what}: running rootless and the cgroup tree is not writable by this user ({e:#}), so the limit cannot be applied");
        }
        log::debug!("rootless: no writable cgroup tree ({e:#}); the container gets no cgroup");
        guard.cgroup = None;
        state.cgroup = None;
        state.save(&dir)?;
    }
    if let (Some(cgroup), None) = (&state.cgroup, &systemd) {
        cgroup.apply_resources(&bundle.spec, rootless)?;
    }
    if let Some(rdt) = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.intel_rdt().as_ref())
    {
        let root = crate::intel_rdt::root().context("linux.intelRdt: resctrl is not mounted")?;
        let group = crate::intel_rdt::Group::make(rdt, &root, id)?;
        guard.intel_rdt = Some(group.clone());
        state.intel_rdt = Some(group);
        state.save(&dir)?;
    }
    Ok(Made {
        dir,
        lock,
        guard,
        state,
        namespaces,
        in_user_namespace,
        cgroup,
        systemd,
        console_socket,
        pidfd_socket,
    })
}

/// The socket init sends the terminal's master to, as runc decides it: a terminal needs a
/// console socket (or a foreground `run`, which passes its own), and a console socket
/// without a terminal is a mistake.
pub fn console_socket(
    terminal: bool,
    path: Option<&Path>,
    given: Option<OwnedFd>,
) -> Result<Option<OwnedFd>> {
    match (terminal, path, given) {
        (true, _, Some(fd)) => Ok(Some(fd)),
        (true, Some(path), None) => crate::tty::connect_socket(path).map(Some),
        (true, None, None) => bail!("process.terminal is true, but no --console-socket was given to receive the terminal (needed unless berth runs in the foreground)"),
        (false, Some(path), _) => bail!(
            "--console-socket {}: given, but process.terminal is false (there is no terminal to send)",
            path.display()
        ),
        (false, None, _) => Ok(None),
    }
}

/// `--rootless`: as runc, `auto` (the default) means running as a non-root user, or as uid 0
/// of a user namespace (rootless podman runs berth so): with the cgroupfs driver always,
/// with systemd's when the session bus says its caller is not root (runc's DetectUID; no
/// session bus: root).
fn is_rootless(
    opts: &CreateOpts,
    in_user_namespace: impl FnOnce() -> bool,
    session_bus_uid: impl FnOnce() -> Option<u32>,
) -> bool {
    match opts.rootless {
        Some(crate::cli::Rootless::True) => true,
        Some(crate::cli::Rootless::False) => false,
        Some(crate::cli::Rootless::Auto) | None => {
            if !nix::unistd::geteuid().is_root() {
                return true;
            }
            if !in_user_namespace() {
                return false;
            }
            !opts.systemd_cgroup || session_bus_uid().is_some_and(|uid| uid != 0)
        }
    }
}

/// The state root, 0700 as runc's: another local user must not reach a container's exec
/// fifo (which starts it) or anything else in its state dir. A root of berth's user that
/// others can enter, from an older berth or made by hand, is closed to them.
fn make_state_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("create state root {}", root.display()))?;
    let meta = fs::metadata(root).with_context(|| format!("stat state root {}", root.display()))?;
    if meta.mode() & 0o077 != 0 && meta.uid() == nix::unistd::geteuid().as_raw() {
        fs::set_permissions(root, fs::Permissions::from_mode(meta.mode() & 0o700))
            .with_context(|| format!("chmod 0700 state root {}", root.display()))?;
    }
    Ok(())
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return "root".to_string(); // spares an NSS lookup on every create
    }
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Undoes a failed create: kills what was forked, removes the cgroup and the state dir.
pub(crate) struct Cleanup {
    dir: PathBuf,
    /// The container's cgroup, once it is this create's to undo (with systemd: once the
    /// unit started).
    cgroup: Option<cgroups::Placement>,
    pids: Vec<Pid>,
    /// Rootfs and mount count before create, when mounting on the host's namespace.
    host_rootfs_mounts: Option<(PathBuf, usize)>,
    /// The resctrl groups made for `linux.intelRdt`.
    intel_rdt: Option<crate::intel_rdt::Group>,
    /// The poststop hooks and their state, once the create-time hooks have begun.
    poststop: Option<String>,
    hooks: Option<oci_spec::runtime::Hooks>,
    /// Where the hooks run.
    bundle: PathBuf,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for pid in &self.pids {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        // (A frozen v1 process would not die, and the waitpid below would not return.)
        if let Some(cgroup) = &self.cgroup {
            cgroups::freezer::thaw_all(cgroup);
        }
        for pid in &self.pids {
            // Reaps our own children; init (a grandchild) is waited for through the cgroup.
            let _ = waitpid(*pid, None);
        }
        if let Err(e) = self.cgroup.as_ref().map_or(Ok(()), |c| c.release()) {
            log::warn!("cleanup after failed create: {e:#}");
        }
        if let Some((rootfs, before)) = &self.host_rootfs_mounts {
            if let Err(e) = crate::rootfs::unmount_from_host(rootfs, *before) {
                log::warn!("cleanup after failed create: {e:#}");
            }
        }
        if let Err(e) = self.intel_rdt.as_ref().map_or(Ok(()), |g| g.remove()) {
            log::warn!("cleanup after failed create: {e:#}");
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(state) = &self.poststop {
            let bundle = Some(self.bundle.as_path());
            hooks::run_warn(self.hooks.as_ref(), hooks::Kind::Poststop, state, bundle);
        }
    }
}

/// The start gate. Writable by container root even when it maps to an unprivileged host user.
fn make_exec_fifo(dir: &Path, bundle: &Bundle) -> Result<OwnedFd> {
    let path = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622)).context("create the exec fifo")?;
    // Explicitly, since mkfifo's mode is filtered by the umask: a non-root container user
    // must be able to open the gate for writing.
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .context("chmod the exec fifo")?;
    let (uid, gid) = container_root_ids(bundle);
    nix::unistd::chown(&path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .context("chown the exec fifo")?;
    // Non-blocking O_PATH: no open of the fifo itself happens here.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(&path)
        .context("open the exec fifo")?;
    Ok(f.into())
}

/// The host uid and gid that container root maps to (0 without a user namespace).
fn container_root_ids(bundle: &Bundle) -> (u32, u32) {
    let host_of = |maps: Option<&Vec<LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
            .unwrap_or(0)
    };
    let linux = bundle.spec.linux().as_ref();
    (
        host_of(linux.and_then(|l| l.uid_mappings().as_ref())),
        host_of(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

/// How many socket-activation fds systemd gave this process: LISTEN_FDS, when LISTEN_PID is us.
pub fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(n) if ours => n,
        _ => 0,
    }
}

/// Starts the joiner, which joins the cgroups and namespaces and forks init (or
/// becomes init when there is no PID or time namespace). The channel's parent end and the
/// state lock stay with `create`.
fn start_joiner(
    cfg: &CreateConfig,
    parent_end: &Channel,
    child_end: Channel,
    lock: RawFd,
) -> Result<Pid> {
    // Both ways below need it: no other thread may change the memory a vfork child borrows,
    // or hold a lock a forked child would inherit taken.
    debug_assert_eq!(
        sys::thread_count(),
        Some(1),
        "berth starts the joiner from a single thread"
    );
    // A joiner that forks init and never waits for `create` (which a new user
    // namespace's id maps need) can borrow berth's memory instead of copying it.
    let ns = &cfg.namespaces;
    // (The systemd driver has `create` work while the joiner waits: no vfork then.)
    if ns.needs_fork() && !ns.is_listed(LinuxNamespaceType::User) && !cfg.cgroup_placed_by_parent {
        let born_dir = cfg.cgroup.as_ref().and_then(open_v2_dir);
        let born_in = born_dir.as_ref().map(|(i, _)| *i);
        let cgroup_dir_fd = born_dir.as_ref().map(|(_, dir)| dir.as_raw_fd());
        let mut joiner = || {
            // Its own fd table: these closes leave the parent's fds alone.
            let _ = nix::unistd::close(parent_end.as_raw_fd());
            let _ = nix::unistd::close(lock);
            // (The cgroup2 directory it was born in: no use to it, and it must not be seen
            // among init's fds.)
            if let Some(dir) = cgroup_dir_fd {
                let _ = nix::unistd::close(dir);
            }
            // SAFETY: the fd is this process's own copy (no CLONE_FILES); the parent's Channel
            // that also names it is neither used nor dropped here.
            let chan = unsafe { Channel::from_raw_fd(child_end.as_raw_fd()) };
            joiner_main(cfg, chan, born_in)
        };
        let cgroup = born_dir.as_ref().map(|(_, dir)| dir.as_raw_fd());
        // The dumpable flag belongs to the address space: the joiner clears it for
        // itself and init, and `create` gets its own back.
        let dumpable = nix::sys::prctl::get_dumpable().context("prctl(PR_GET_DUMPABLE)")?;
        // What the joiner relies on from `create`'s memory, which it runs on (heap,
        // statics, this frame) while `create` is suspended, until it exits:
        // - it reads, by shared reference, `cfg` (bundle and spec, namespaces, cgroup
        //   placement) and the fd numbers and `born_in` captured from this frame, all alive
        //   until `create` resumes; it takes no ownership of any of them: `chan` is a new
        //   Channel made from `child_end`'s number, and the fds it closes are closed in its
        //   own fd table (no CLONE_FILES), so no OwnedFd or Channel of `create`'s is dropped;
        // - it allocates and frees its own temporaries (paths, errors, encoded messages, log
        //   lines) through the shared allocator and logger, consistent because `create` is
        //   suspended and has no other thread (asserted above); what it still holds at
        //   `_exit` stays allocated in `create`, a few small blocks;
        // - it changes nothing `create` uses afterwards, except what belongs to the address
        //   space and not the task: the dumpable flag, restored just below (the signal mask
        //   and dispositions, namespaces, cgroups, CPU affinity and oom_score_adj it changes
        //   are its own);
        // - it never returns into `create`'s frames and runs no exit handler: `joiner_main` ends        //   in `vfork_entry`'s `_exit`, or `fail`'s; init and `hand_over`'s child are forked
        //   from it, copies that run on memory of their own.
        let spawned = sys::vfork_into_cgroup(cgroup, &mut joiner);
        nix::sys::prctl::set_dumpable(dumpable).context("prctl(PR_SET_DUMPABLE)")?;
        match spawned {
            Ok(child) => return Ok(child),
            Err(e) => log::debug!("clone3(CLONE_VM | CLONE_VFORK): {e}; forking instead"),
        }
    }
    let born_into = cfg.cgroup.as_ref().filter(|_| !cfg.cgroup_placed_by_parent);
    let (forked, born_in) = fork_joiner(born_into)?;
    match forked {
        ForkResult::Child => {
            let _ = nix::unistd::close(parent_end.as_raw_fd());
            // The state lock belongs to `create`; init must not keep it alive.
            let _ = nix::unistd::close(lock);
            let code = joiner_main(cfg, child_end, born_in);
            // SAFETY: ends the forked joiner once it has forked init.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// The container's cgroup2 directory (on a v2 host, or the unified hierarchy of a hybrid
/// one), opened for CLONE_INTO_CGROUP, with its index in the placement's directories.
fn open_v2_dir(cgroup: &cgroups::Placement) -> Option<(usize, fs::File)> {
    let i = cgroup.v2_index()?;
    let path = &cgroup.dirs[i].path;
    // O_PATH is enough for CLONE_INTO_CGROUP; O_CLOEXEC keeps it from any exec.
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| log::debug!("open {}: {e}", path.display()))
        .ok()
        .map(|dir| (i, dir))
}

/// Forks a joiner (of `create` or `exec`). Where the container has a cgroup2
/// directory the child is born in it (clone3 with CLONE_INTO_CGROUP), so nobody writes its
/// cgroup.procs; the child joins any v1 hierarchies itself (`Placement::join_self`). Without
/// one, or where the kernel lacks clone3, it is a plain fork and the child joins them all.
/// Returns the index of the directory the child was born in, if any.
fn fork_joiner(cgroup: Option<&cgroups::Placement>) -> Result<(ForkResult, Option<usize>)> {
    debug_assert_eq!(
        sys::thread_count(),
        Some(1),
        "berth forks a joiner from a single thread"
    );
    if let Some((i, dir)) = cgroup.and_then(open_v2_dir) {
        match sys::fork_into_cgroup(&dir) {
            Ok(forked) => return Ok((forked, Some(i))),
            Err(e) => log::debug!("clone3(CLONE_INTO_CGROUP): {e}; forking instead"),
        }
    }
    // SAFETY: berth is single-threaded (no threads, no async runtime), so the child may run
    // any code after fork.
    let forked = unsafe { fork() }.context("fork the container's setup process")?;
    Ok((forked, None))
}

/// The systemd driver's half of the cgroup: systemd starts the container's scope unit with
/// the (waiting) joiner in it and the resource properties it knows; then berth makes
/// the unit's directories on any hierarchy systemd left out (v1's cpuset, freezer, ...),
/// enables v2 controllers, and writes every limit and the device rules, as without systemd.
fn place_in_systemd_scope(
    systemd: &cgroups::systemd::Systemd,
    unit: &cgroups::systemd::Unit,
    setup_pid: Pid,
    spec: &oci_spec::runtime::Spec,
    cgroup: &cgroups::Placement,
    guard: &mut Cleanup,
) -> Result<()> {
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    // (TasksMax comes once init is at the gate: see `Placement::apply_pids_limit`.)
    let mut props = match resources {
        Some(r) => {
            let mut r = r.clone();
            r.set_pids(None);
            cgroups::systemd::resource_properties(&r, cgroup.is_v2())?
        }
        None => Vec::new(),
    };
    // (The user's instance can have no device policy: a rootless container cannot make
    // device nodes anyway, as runc has it.)
    let user = cgroup.systemd_user();
    if !user {
        let device_rules = cgroups::resources::device_rules(spec);
        props.extend(cgroups::systemd::device_properties(&device_rules)?);
    }
    if let Some(annotations) = spec.annotations() {
        props.extend(cgroups::systemd::annotation_properties(annotations)?);
    }
    systemd
        .start_scope(unit, setup_pid.as_raw(), props)
        .with_context(|| {
            format!(
                "--systemd-cgroup: linux.cgroupsPath {:?} in {}",
                unit.name, unit.slice
            )
        })?;
    // Only now are the unit and its cgroup this container's to undo: a unit of that name
    // that existed already (another container's) is refused above and left alone.
    guard.cgroup = Some(cgroup.clone());
    cgroup.create()?;
    cgroup.apply_resources(spec, user)
}

/// Serves the child's requests until init reports `Ready`; returns init's pid.
fn wait_for_ready(
    chan: &Channel,
    child: Pid,
    cfg: &CreateConfig,
    state: &State,
    guard: &mut Cleanup,
) -> Result<Pid> {
    let mut init_pid = None;
    // Ready (from init) may overtake InitPid (from the joiner that forked it): two
    // senders, and on a busy host the joiner may not run again before init is done.
    let mut ready = false;
    let mut hooks_due = false;
    // With a PID namespace, init's notify fd may in theory overtake the middle process's
    // InitPid: then it waits here for the pid the agent must be told.
    let mut notify_fd = None;
    let mut watch = cgroups::freezer::Watch::new(cfg.cgroup.as_ref());
    let mut usernses = crate::rootfs::idmap::UserNamespaces::default();
    loop {
        watch.wait_readable(chan, &[Some(child), init_pid])?;
        match chan.recv_with_fd()? {
            Some((Message::UsernsCreated, _)) => {
                write_id_maps(child, &cfg.bundle)?;
                chan.send(&Message::UsernsMapped)?;
            }
            Some((Message::TimeNamespaceCreated, _)) => {
                namespaces::write_time_offsets(&cfg.bundle.spec, &child.to_string())?;
                chan.send(&Message::TimeOffsetsWritten)?;
            }
            Some((Message::InitPid(p), _)) => {
                // Each init in turn (one handed over to forks the next): its threads and
                // children follow it into the group.
                if let Some(group) = &state.intel_rdt {
                    group.add(p)?;
                }
                // A later pid is the process the earlier one handed over to (and reaped
                // once create is done).
                match init_pid.replace(Pid::from_raw(p)) {
                    Some(earlier) => guard.pids.push(earlier),
                    // In its network namespace by now; before any hook, as runc.
                    None => crate::net_devices::move_into(&cfg.bundle.spec, Pid::from_raw(p))?,
                }
            }
            Some((Message::MountSourceWanted(i), mount_ns)) => {
                let mount_ns = mount_ns
                    .context("sync channel: a source asked for without the mount namespace")?;
                let source = clone_mount_source(cfg, i, &mount_ns, &mut usernses)?;
                chan.send_fd(&Message::MountSource, source.as_fd())?;
            }
            Some((Message::SeccompNotifyFd, fd)) => {
                notify_fd = Some(fd.context("sync channel: notify fd message without the fd")?)
            }
            Some((Message::HooksPoint, _)) => hooks_due = true,
            Some((Message::Ready, _)) => {
                ready = true;
                if init_pid.is_none() {
                    // The joiner sends InitPid just before it exits: once it has
                    // exited, the pid is in the channel or never will be (init, waiting
                    // for StateSaved, keeps the channel open).
                    waitpid(child, None).context("wait for the setup process")?;
                    if !chan.has_message()? {
                        bail!("the container's setup process exited without reporting init's pid");
                    }
                }
            }
            Some((Message::Error(e), _)) => return Err(anyhow::Error::new(e)),
            Some((m, _)) => bail!("sync channel: unexpected {m:?} during create"),
            None => bail!("container setup exited without reporting an error"),
        }
        if let (Some(pid), true) = (init_pid, hooks_due) {
            hooks_due = false;
            // From here the container exists as far as hooks can tell: undoing it runs the
            // poststop hooks (runtime-spec lifecycle, step 12 onwards).
            guard.poststop = Some(state.oci_json(ContainerState::Stopped, pid.as_raw())?);
            let creating = state.oci_json(ContainerState::Creating, pid.as_raw())?;
            // config.md (runtime-spec 1.1+, as runc): the deprecated prestart hooks run here,
            // during create and before createRuntime, in the runtime's namespaces.
            for kind in [hooks::Kind::Prestart, hooks::Kind::CreateRuntime] {
                hooks::run(state.hooks.as_ref(), kind, &creating, Some(&state.bundle))?;
            }
            let created = state.oci_json(ContainerState::Created, pid.as_raw())?;
            chan.send(&Message::HookState { creating, created })?;
        }
        if let (Some(pid), Some(_)) = (init_pid, &notify_fd) {
            let fd = notify_fd.take().expect("checked above");
            pass_notify_fd(cfg, state, pid, fd)?;
            chan.send(&Message::SeccompNotifyFdSent)?;
        }
        if let (Some(pid), true) = (init_pid, ready) {
            return Ok(pid);
        }
    }
}

fn write_id_maps(child: Pid, bundle: &Bundle) -> Result<()> {
    let linux = bundle.spec.linux().as_ref();
    namespaces::write_id_maps(
        child,
        linux
            .and_then(|l| l.uid_mappings().as_deref())
            .unwrap_or(&[]),
        linux
            .and_then(|l| l.gid_mappings().as_deref())
            .unwrap_or(&[]),
    )
}

/// The source of `mounts[index]`, cloned (and idmapped, when the entry asks) as root on the
/// host in the container's mount namespace, open at `mount_ns`, for init to mount: by a
/// process forked for it, since joining a mount namespace changes the joiner's root and cwd.
fn clone_mount_source(
    cfg: &CreateConfig,
    index: usize,
    mount_ns: &OwnedFd,
    usernses: &mut crate::rootfs::idmap::UserNamespaces,
) -> Result<OwnedFd> {
    use crate::rootfs::idmap;
    let bundle = &cfg.bundle;
    let destination = bundle
        .spec
        .mounts()
        .as_deref()
        .and_then(|ms| ms.get(index))
        .map(|m| m.destination().display().to_string())
        .unwrap_or_default();
    let context = || format!("mounts[{index}] ({destination})");
    let order = idmap::clone_order(&bundle.spec, &bundle.dir, &bundle.rootfs, index, usernses)
        .with_context(context)?;
    let (ours, theirs) = channel::pair()?;
    // SAFETY: berth is single-threaded, so the child may run any code after fork; it ends
    // with _exit.
    match unsafe { fork() }.context("fork to clone a mount source")? {
        ForkResult::Child => {
            drop(ours);
            let sent = match idmap::clone_in(mount_ns.as_fd(), &order) {
                Ok(clone) => theirs.send_fd(&Message::MountSource, clone.as_fd()),
                Err(e) => theirs.send(&Message::Error(Failure::new(Step::MountSource, &e))),
            };
            // SAFETY: ends the forked child at once, running nothing of the parent's.
            unsafe { libc::_exit(i32::from(sent.is_err())) }
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            let reply = ours.recv_with_fd();
            let _ = waitpid(child, None);
            match reply? {
                Some((Message::MountSource, Some(fd))) => Ok(fd),
                Some((Message::Error(e), _)) => Err(anyhow::Error::new(e)).with_context(context),
                _ => Err(anyhow!("the process cloning it exited without a word"))
                    .with_context(context),
            }
        }
    }
}

/// Gives a seccomp agent the notify fd, with the container's state as the agent expects it:
/// status `creating`, init's pid.
fn pass_notify_fd(cfg: &CreateConfig, state: &State, init_pid: Pid, fd: OwnedFd) -> Result<()> {
    let profile = cfg
        .bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .context("a notify fd without linux.seccomp")?;
    let oci_state = state.to_oci(ContainerState::Creating, init_pid.as_raw())?;
    crate::seccomp::send_to_listener(profile, oci_state, init_pid.as_raw(), fd.as_fd())
}

/// The joiner: cgroup, user namespace (mapped by the parent), the other namespaces,
/// then init. Returns the exit code when it has forked init.
fn joiner_main(cfg: &CreateConfig, chan: Channel, born_in: Option<usize>) -> i32 {
    let late_pid_ns =
        match join_cgroup(cfg, &chan, born_in).and_then(|()| enter_namespaces(cfg, &chan)) {
            Ok(entered) => entered,
            Err(e) => fail(&chan, Step::Join, e),
        };
    if !cfg.namespaces.needs_fork() {
        if let Err(e) = chan.send(&Message::InitPid(nix::unistd::getpid().as_raw())) {
            fail(&chan, Step::Fork, e);
        }
        init::run(cfg, chan, None)
    }
    if late_pid_ns.is_some() {
        // Init builds the container and then hands over to the one it forks into the PID
        // namespace: both report their pid, in order.
        if let Err(e) = hand_over(&chan) {
            fail(&chan, Step::Fork, e.context("fork the container's init"));
        }
        init::run(cfg, chan, late_pid_ns)
    }
    // SAFETY: single-threaded, as above. When this process borrows `create`'s memory, init
    // gets a copy of it, as fork makes one.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => init::run(cfg, chan, None),
        Ok(ForkResult::Parent { child }) => {
            i32::from(chan.send(&Message::InitPid(child.as_raw())).is_err())
        }
        Err(e) => fail(
            &chan,
            Step::Fork,
            anyhow!(e).context("fork the container's init"),
        ),
    }
}

/// `begin_joiner` with `create`'s settings, then the CPUs: init gets every CPU of its
/// cpuset, not berth's own affinity (runc does the same).
fn join_cgroup(cfg: &CreateConfig, chan: &Channel, born_in: Option<usize>) -> Result<()> {
    let oom_score_adj = cfg
        .bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.oom_score_adj());
    let wait_for_placement = || match cfg.cgroup_placed_by_parent {
        true => chan.expect(&Message::CgroupPlaced),
        false => Ok(()),
    };
    let first_not_passed = sys::first_fd_past(cfg.listen_fds, cfg.preserve_fds)?;
    let cgroup = cfg.cgroup.as_ref();
    begin_joiner(
        first_not_passed,
        oom_score_adj,
        wait_for_placement,
        cgroup,
        born_in,
    )?;
    crate::cpu_affinity::reset();
    Ok(())
}

/// The first steps of a joiner, `create`'s and `exec`'s alike, in this order:
/// - no fd of berth's past stdio and those passed on (from `first_not_passed`) may reach the
///   container (CVE-2024-21626); done first, before any seccomp profile (which may not allow
///   close_range) and before anything of the container is joined;
/// - no signal blocked or caught: `run` and a foreground `exec` block them to relay them;
/// - not dumpable: until the user process is exec'd this process runs berth's own binary,
///   and nothing in the container (a process of a shared PID namespace, say) may ptrace it
///   or open its /proc/PID/exe, fds or memory (CVE-2019-5736); execve makes the user process
///   dumpable again;
/// - `process.oomScoreAdj`, written as root on the host side: once non-dumpable (and in a
///   user namespace) the process could no longer write its own /proc files; inherited by
///   what it forks. (A joiner that borrows `create`'s memory still has its own: the kernel
///   keeps a vfork child's score apart);
/// - the cgroup, once `placed` returns (the systemd driver's wait for its scope), from the
///   cgroup2 directory it was `born_in` if any.
pub(super) fn begin_joiner(
    first_not_passed: u32,
    oom_score_adj: Option<i32>,
    placed: impl FnOnce() -> Result<()>,
    cgroup: Option<&cgroups::Placement>,
    born_in: Option<usize>,
) -> Result<()> {
    sys::cloexec_from(first_not_passed)?;
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("reset the signal mask")?;
    crate::signals::reset_dispositions()?;
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    if let Some(adj) = oom_score_adj {
        crate::procfs::Procfs::open()
            .and_then(|proc| proc.write("self/oom_score_adj", &adj.to_string()))
            .context("process.oomScoreAdj")?;
    }
    placed()?;
    if let Some(cgroup) = cgroup {
        cgroup.join_self(born_in)?;
    }
    Ok(())
}

/// Joins and creates the container's namespaces. Returns the PID namespace that init is to
/// join later, once the rootfs is the container's (see `init::enter_pid_namespace`).
fn enter_namespaces(cfg: &CreateConfig, chan: &Channel) -> Result<Option<OwnedFd>> {
    let ns = &cfg.namespaces;
    // As runc's nsexec: with a user namespace, the namespaces to join that the host's root
    // may join are joined first (one owned by another user namespace cannot be joined from
    // inside the container's), then the user namespace, then the rest (a rootless caller
    // may join those only from inside it). Mount and PID namespaces keep their places below.
    use LinuxNamespaceType::{Mount, Pid as PidNs, User};
    let joined_early = match ns.is_listed(User) {
        true => ns.try_join_paths(|t| !matches!(t, User | Mount | PidNs))?,
        false => Vec::new(),
    };
    ns.join_paths(|t| t == LinuxNamespaceType::User)?;
    if ns.is_new(LinuxNamespaceType::User) {
        Namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
        // A non-root parent can open our /proc/PID/uid_map only while we are dumpable (as
        // runc's nsexec does); nothing of the container exists yet to take advantage.
        let unprivileged = !nix::unistd::geteuid().is_root();
        if unprivileged {
            nix::sys::prctl::set_dumpable(true).context("prctl(PR_SET_DUMPABLE, 1)")?;
        }
        chan.send(&Message::UsernsCreated)?;
        chan.expect(&Message::UsernsMapped)?;
        if unprivileged {
            nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        }
    }
    // New or joined (another container's), as runc: the setup goes on as the namespace's
    // root, whose ids are mapped there (the host's are not: mkdir would fail EOVERFLOW).
    if ns.is_listed(LinuxNamespaceType::User) {
        let (root_uid, root_gid) = (Uid::from_raw(0), Gid::from_raw(0));
        nix::unistd::setresgid(root_gid, root_gid, root_gid)
            .context("become gid 0 in the user namespace")?;
        nix::unistd::setresuid(root_uid, root_uid, root_uid)
            .context("become uid 0 in the user namespace")?;
    }
    // A process born in a PID namespace that another container's processes see, while its
    // root is still the host's, is open to any of them that may ptrace (CAP_SYS_PTRACE):
    // /proc/PID/root leads to the host. So a PID namespace given by path is joined only
    // after pivot_root, where the kernel can mount that namespace's proc from outside it;
    // elsewhere it is joined here, as runc does.
    let late_pid_ns = match ns.join_path(LinuxNamespaceType::Pid) {
        Some(path) => Some(
            fs::File::open(path)
                .with_context(|| format!("open pid namespace {}", path.display()))?,
        ),
        None => None,
    }
    .map(OwnedFd::from)
    .filter(|fd| sys::proc_takes_pidns(fd.as_fd()));
    let join_late = |t| t == LinuxNamespaceType::Pid && late_pid_ns.is_some();
    ns.join_paths(|t| {
        t != LinuxNamespaceType::User && !join_late(t) && !joined_early.contains(&t)
    })?;
    Namespaces::unshare(ns.new - nix::sched::CloneFlags::CLONE_NEWUSER)?;
    if ns.is_new(LinuxNamespaceType::Time) {
        if ns.is_new(LinuxNamespaceType::User) {
            chan.send(&Message::TimeNamespaceCreated)?;
            chan.expect(&Message::TimeOffsetsWritten)?;
        } else {
            namespaces::write_time_offsets(&cfg.bundle.spec, "self")?;
        }
    }
    Ok(late_pid_ns)
}

/// Forks the process that carries on towards the container's init, born `create`'s child
/// (CLONE_PARENT, so `create` reaps this one), reports its pid and exits. Returns in the
/// child, once the report is out: `create` hears every pid before what the child sends.
fn hand_over(chan: &Channel) -> Result<()> {
    let (reported, report_done) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    match sys::fork_sibling()? {
        ForkResult::Parent { child } => {
            let code = i32::from(chan.send(&Message::InitPid(child.as_raw())).is_err());
            // SAFETY: ends this process once it has reported the child; closing
            // `report_done` lets the child go on.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Child => {
            drop(report_done);
            let mut byte = [0u8; 1];
            // End of file once the parent has reported (or died).
            while nix::unistd::read(reported.as_raw_fd(), &mut byte)
                .is_err_and(|e| e == nix::errno::Errno::EINTR)
            {}
            Ok(())
        }
    }
}

/// Reports `err` to the parent and exits; used by the joiners and init.
fn fail(chan: &Channel, step: Step, err: anyhow::Error) -> ! {
    let _ = chan.send(&Message::Error(Failure::new(step, &err)));
    // SAFETY: ends this process at once; nothing it holds needs flushing, and a joiner
    // that borrows `create`'s memory must not run exit handlers on it.
    unsafe { libc::_exit(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_is_decided_as_runc_decides_it() {
        let opts = |rootless, systemd_cgroup| CreateOpts {
            rootless,
            systemd_cgroup,
            ..Default::default()
        };
        let never = || -> Option<u32> { panic!("the session bus is asked only with systemd") };
        use crate::cli::Rootless;
        assert!(is_rootless(
            &opts(Some(Rootless::True), false),
            || false,
            never
        ));
        assert!(!is_rootless(
            &opts(Some(Rootless::False), false),
            || true,
            never
        ));
        if !nix::unistd::geteuid().is_root() {
            // Any non-root user is rootless, whatever else holds.
            assert!(is_rootless(&opts(None, true), || false, || Some(0)));
            return;
        }
        assert!(!is_rootless(&opts(None, false), || false, never));
        // uid 0 of a user namespace: rootless with cgroupfs; with systemd, when the session
        // bus knows the caller as someone else than root.
        assert!(is_rootless(&opts(None, false), || true, never));
        assert!(is_rootless(&opts(None, true), || true, || Some(1000)));
        assert!(!is_rootless(&opts(None, true), || true, || Some(0)));
        assert!(!is_rootless(&opts(None, true), || true, || None));
    }

    fn setup_config() -> CreateConfig {
        let spec = oci_spec::runtime::Spec::default();
        CreateConfig {
            namespaces: Namespaces::from_spec(&spec),
            bundle: Bundle {
                dir: "/b".into(),
                rootfs: "/b/rootfs".into(),
                spec,
            },
            cgroup: None,
            exec_fifo: Some(fs::File::open("/dev/null").unwrap().into()),
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
            listen_fds: 0,
            own_binary: user_process::OwnBinary::default(),
            console_socket: None,
            cgroup_placed_by_parent: false,
            in_user_namespace: false,
        }
    }

    fn state() -> State {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "id": "c", "pid": 0, "status": "creating",
            "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-11-27T00:00:00Z",
            "owner": "root"
        }))
        .unwrap()
    }

    /// What `create` makes of these messages from its children; a real child process (one
    /// that exits at once) stands in for the joiner.
    fn wait_for_ready_given(messages: &[Message]) -> Result<Pid> {
        let (cfg, state) = (setup_config(), state());
        let (parent, child) = channel::pair().unwrap();
        for m in messages {
            child.send(m).unwrap();
        }
        // Reaped by wait_for_ready or below, with waitpid (not Child::wait), as create does.
        #[allow(clippy::zombie_processes)]
        let setup = std::process::Command::new("true").spawn().unwrap();
        let setup = Pid::from_raw(setup.id() as i32);
        let mut guard = Cleanup {
            dir: "/nonexistent".into(),
            cgroup: None,
            pids: Vec::new(),
            host_rootfs_mounts: None,
            intel_rdt: None,
            poststop: None,
            hooks: None,
            bundle: "/nonexistent".into(),
            armed: false,
        };
        let result = wait_for_ready(&parent, setup, &cfg, &state, &mut guard);
        let _ = waitpid(setup, None); // when wait_for_ready did not
        drop(child); // (init's end stays open until here, as init keeps it)
        result
    }

    #[test]
    fn init_ready_may_come_before_the_joiner_sends_its_pid() {
        for order in [
            [Message::InitPid(42), Message::Ready],
            [Message::Ready, Message::InitPid(42)],
        ] {
            let pid = wait_for_ready_given(&order);
            assert_eq!(pid.unwrap(), Pid::from_raw(42), "{order:?}");
        }
        // A joiner gone without sending the pid is an error, not a wait forever.
        let e = wait_for_ready_given(&[Message::Ready]).unwrap_err();
        assert!(
            e.to_string().contains("without reporting init's pid"),
            "{e}"
        );
    }
}

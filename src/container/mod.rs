//! A created container: its state dir, its live status, and the operations on it.

pub mod id;
pub mod state;

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use crate::channel::{Channel, Message};
use crate::{cgroups, hooks, sys};
use oci_spec::runtime::ContainerState;
use state::{State, Status};

/// The start gate in the state dir: present from create until start.
pub const EXEC_FIFO: &str = "exec.fifo";

pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    /// The sync channel to init, when it (not the exec fifo) is the start gate: only in the
    /// `run` that created the container (see `process::StartGate`).
    pub start_channel: Option<Channel>,
}

/// Takes the exclusive lock of a state dir; released when the file is dropped.
pub fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let mut f = File::open(dir).with_context(|| format!("open state dir {}", dir.display()))?;
    loop {
        match Flock::lock(f, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((back, Errno::EINTR)) => f = back,
            Err((_, e)) => bail!("lock state dir {}: {e}", dir.display()),
        }
    }
}

/// No container of this id: the error callers tell apart (`delete --force` takes it as done).
#[derive(Debug)]
pub struct NotExist(pub String);

impl std::fmt::Display for NotExist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {:?} does not exist", self.0)
    }
}

impl std::error::Error for NotExist {}

fn not_exist(id: &str) -> anyhow::Error {
    NotExist(id.to_string()).into()
}

impl Container {
    /// Reads container `id` from `root`.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        id::validate(id)?;
        let dir = root.join(id);
        match State::load(&dir) {
            Ok(state) => Ok(Container {
                dir,
                state,
                start_channel: None,
            }),
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == ErrorKind::NotFound) =>
            {
                Err(not_exist(id))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads and locks; the lock is taken before reading so a racing delete is seen.
    pub fn load_locked(root: &Path, id: &str) -> Result<(Container, Flock<File>)> {
        id::validate(id)?;
        let dir = root.join(id);
        let lock = lock_dir(&dir).map_err(|_| not_exist(id))?;
        Ok((Container::load(root, id)?, lock))
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The live status, derived from init itself rather than trusted from the file.
    pub fn status(&self) -> Status {
        if self.state.pid == 0 {
            return self.state.status;
        }
        match sys::proc_stat(self.state.pid) {
            Some(st)
                if st.start_time == self.state.init_start_time
                    && !matches!(st.state, 'Z' | 'X') =>
            {
                if self.dir.join(EXEC_FIFO).exists() && self.init_at_gate() {
                    Status::Created
                } else if self.is_frozen() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    /// The container's cgroup, for the commands that need one.
    pub fn own_cgroup(&self) -> Result<&cgroups::Placement> {
        self.state.cgroup.as_ref().with_context(|| {
            format!(
                "container {:?} has no cgroup of its own (created rootless without a writable cgroup tree)",
                self.id()
            )
        })
    }

    fn is_frozen(&self) -> bool {
        self.state
            .cgroup
            .as_ref()
            .is_some_and(cgroups::freezer::is_frozen)
    }

    /// Whether init still runs the binary it waited at the start gate with: a `start` killed
    /// after it opened the gate but before it took the fifo's name away leaves the fifo
    /// behind a running container.
    fn init_at_gate(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(gate_exe) = self.state.init_gate_exe else {
            return true;
        };
        fs::metadata(format!("/proc/{}/exe", self.state.pid))
            .map_or(true, |m| (m.dev(), m.ino()) == gate_exe)
    }

    /// A pidfd for init if init is still the process that was created (not a reused pid).
    pub fn init_pidfd(&self) -> Option<OwnedFd> {
        if self.state.pid == 0 {
            return None;
        }
        let fd = sys::pidfd_open(Pid::from_raw(self.state.pid)).ok()?;
        // Checked after opening: from here on the pidfd pins the process it names.
        let st = sys::proc_stat(self.state.pid)?;
        (st.start_time == self.state.init_start_time && !matches!(st.state, 'Z' | 'X'))
            .then_some(fd)
    }

    /// Releases init from the start gate so it execs the user process.
    pub fn start(&self) -> Result<()> {
        log::debug!("start {}: releasing init {}", self.id(), self.state.pid);
        // The `run` that created the container holds the channel init waits on: sending on
        // it is the check that init is still there. (That gate is only used without hooks.)
        if let Some(chan) = &self.start_channel {
            return self.open_channel_gate(chan);
        }
        // Created: init is the process that was created and the exec fifo is still there.
        let Some(pidfd) = self
            .init_pidfd()
            .filter(|_| self.dir.join(EXEC_FIFO).exists() && self.init_at_gate())
        else {
            bail!(
                "cannot start container {:?}: it is {}, not created",
                self.id(),
                self.status()
            );
        };
        self.open_fifo_gate(&pidfd)?;
        // runtime-spec 1.3 (runtime.md, lifecycle step 9): a failing poststart hook is an
        // error that stops the container and continues at its destruction
        // (1.0 had it a warning; runc kills the container too).
        if hooks::of(self.state.hooks.as_ref(), hooks::Kind::Poststart).is_empty() {
            return Ok(());
        }
        let state = self
            .state
            .oci_json(ContainerState::Running, self.state.pid)?;
        if let Err(e) = hooks::run(
            self.state.hooks.as_ref(),
            hooks::Kind::Poststart,
            &state,
            Some(&self.state.bundle),
        ) {
            if let Err(d) = self.destroy() {
                log::warn!("undo container {:?}: {d:#}", self.id());
            }
            return Err(e.context(format!("cannot start container {:?}", self.id())));
        }
        Ok(())
    }

    /// Sends init `Start`; returns once its end of the channel has closed at execve, or with
    /// the error it sent instead.
    fn open_channel_gate(&self, chan: &Channel) -> Result<()> {
        let gone = || {
            anyhow::anyhow!(
                "cannot start container {:?}: its init process exited before start",
                self.id()
            )
        };
        chan.send(&Message::Start).map_err(|_| gone())?;
        match chan.recv() {
            Ok(None) => Ok(()),
            Ok(Some(Message::Error(e))) => {
                Err(anyhow::Error::new(e)
                    .context(format!("cannot start container {:?}", self.id())))
            }
            Ok(Some(m)) => bail!("sync channel: unexpected {m:?} at start"),
            Err(_) => Err(gone()),
        }
    }

    /// Opens the exec fifo, which releases init; returns once init has exec'd the user
    /// process, or with the error it wrote instead.
    fn open_fifo_gate(&self, pidfd: &OwnedFd) -> Result<()> {
        let mut fifo = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(self.dir.join(EXEC_FIFO))
            .context("open the exec fifo")?;
        // The fifo's name is what says "created": gone from here on, so a `start` killed past
        // this point leaves a running (or, if init finds no reader, stopped) container, never
        // one that says created while its process runs. The open fd keeps the gate working.
        fs::remove_file(self.dir.join(EXEC_FIFO)).context("remove the exec fifo")?;
        // Init writes one byte once it is through the gate; if it dies first, its pidfd says so.
        loop {
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => bail!("wait for container init: {e}"),
                Ok(_) => {}
            }
            let fifo_ready = fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
            let init_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
            if fifo_ready {
                break;
            }
            if init_gone {
                bail!(
                    "cannot start container {:?}: its init process exited before start",
                    self.id()
                );
            }
        }
        let mut byte = [0u8; 1];
        match fifo.read(&mut byte) {
            Ok(1) => {}
            Ok(_) => bail!(
                "cannot start container {:?}: init closed the start gate",
                self.id()
            ),
            Err(e) => bail!("read the exec fifo: {e}"),
        }
        // Init keeps its end open until execve closes it (close-on-exec): wait for that, so the
        // user process is running when `start` returns. Anything init writes before is why it
        // could not get there (a startContainer hook, execve itself).
        let mut failure = Vec::new();
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => bail!("wait for the container process to exec: {e}"),
                Ok(_) => {}
            }
            let mut buf = [0u8; 4096];
            match fifo.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => failure.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => bail!("read the exec fifo: {e}"),
            }
        }
        if !failure.is_empty() {
            bail!(
                "cannot start container {:?}: {}",
                self.id(),
                String::from_utf8_lossy(&failure)
            );
        }
        Ok(())
    }

    /// Freezes every process of a running container.
    pub fn pause(&self) -> Result<()> {
        match self.status() {
            Status::Running => cgroups::freezer::freeze(self.own_cgroup()?),
            s => bail!(
                "cannot pause container {:?}: it is {s}, not running",
                self.id()
            ),
        }
    }

    /// Thaws a paused container.
    pub fn resume(&self) -> Result<()> {
        match self.status() {
            Status::Paused => cgroups::freezer::thaw(self.own_cgroup()?),
            s => bail!(
                "cannot resume container {:?}: it is {s}, not paused",
                self.id()
            ),
        }
    }

    /// Sends `signal` to init, or with `all` to every process in the container's cgroup.
    /// Signal 0 sends nothing: it checks that init (or, with `all`, each process) is there.
    /// A SIGKILLed paused container is thawed so the kill takes effect at once (as runc).
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        self.signal(signal, all, status)?;
        if status == Status::Paused && signal == libc::SIGKILL {
            cgroups::freezer::thaw(self.own_cgroup()?)?;
        }
        Ok(())
    }

    fn signal(&self, signal: i32, all: bool, status: Status) -> Result<()> {
        // As runc: SIGKILL to a container without a PID namespace of its own goes to every
        // process in its cgroup, for init's death does not end the others there.
        let all = all
            || (signal == libc::SIGKILL
                && !self.state.own_pid_namespace
                && self.state.cgroup.is_some());
        // With --all, as runc: what init left behind in the cgroup (possible without a PID
        // namespace of its own) is still signalled after init has exited.
        if !all && matches!(status, Status::Stopped | Status::Creating) {
            bail!("container not running");
        }
        if let (true, Some(cgroup)) = (all, &self.state.cgroup) {
            if signal == libc::SIGKILL && cgroup.kill_via_cgroup_kill()? {
                return Ok(());
            }
            // By number: nix's Signal has no real-time signals (and 0 is no Signal at all).
            // Through a pidfd checked to be the container's: the pid may have been reused.
            for pid in cgroup.pids()? {
                let Some(pidfd) = cgroup.pidfd_of_member(pid) else {
                    continue;
                };
                match sys::pidfd_send_signal(&pidfd, signal) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => bail!("signal pid {pid}: {e}"),
                }
            }
            return Ok(());
        }
        let pidfd = self.init_pidfd().context("container not running")?;
        match sys::pidfd_send_signal(&pidfd, signal) {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => bail!("container not running"),
            Err(e) => bail!("signal container init: {e}"),
        }
    }

    /// Removes a stopped container; a created, running or paused one only with `force`
    /// (the runtime-spec: deleting a container that is not stopped MUST be an error; runc
    /// differs for created containers).
    pub fn delete(&self, force: bool) -> Result<()> {
        log::debug!(
            "delete {} (status {:?}, force {force})",
            self.id(),
            self.status()
        );
        match self.status() {
            Status::Created | Status::Running | Status::Paused if !force => {
                bail!(
                    "cannot delete container {} that is not stopped: {}",
                    self.id(),
                    self.status()
                )
            }
            _ => self.destroy(),
        }
    }

    /// Kills whatever is left, removes the cgroup and the state dir.
    pub fn destroy(&self) -> Result<()> {
        if let Some(pidfd) = self.init_pidfd() {
            match sys::pidfd_send_signal(&pidfd, libc::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => bail!("kill container init: {e}"),
            }
            if let Some(cgroup) = self.state.cgroup.as_ref().filter(|_| self.is_frozen()) {
                cgroups::freezer::thaw(cgroup)?;
            }
            sys::pidfd_wait_exit(&pidfd)?;
        }
        if let Some(cgroup) = &self.state.cgroup {
            cgroup.release()?;
        }
        if let Some(group) = &self.state.intel_rdt {
            group.remove()?;
        }
        if let Some(before) = self.state.host_rootfs_mounts {
            crate::rootfs::unmount_from_host(&self.state.rootfs, before)?;
        }
        fs::remove_dir_all(&self.dir)
            .with_context(|| format!("remove state dir {}", self.dir.display()))?;
        // runtime-spec: after the container is deleted, before delete returns; a failure is
        // a warning.
        if !hooks::of(self.state.hooks.as_ref(), hooks::Kind::Poststop).is_empty() {
            let state = self
                .state
                .oci_json(ContainerState::Stopped, self.state.pid)?;
            hooks::run_warn(
                self.state.hooks.as_ref(),
                hooks::Kind::Poststop,
                &state,
                Some(&self.state.bundle),
            );
        }
        Ok(())
    }
}

/// Removes `<root>/<id>` if it exists without a state.json: what a `create` killed before its
/// first save leaves. Holding the lock proves no `create` is still working in it.
pub fn remove_stateless_dir(root: &Path, id: &str) -> Result<()> {
    let dir = root.join(id);
    let Ok(_lock) = lock_dir(&dir) else {
        return Ok(());
    };
    if dir.join(state::STATE_FILE).exists() {
        bail!("container {id:?} appeared while being deleted; try again");
    }
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove state dir {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The names under `root`, sorted: each a container's state dir, but for anything without a
/// state.json in it (a container being deleted, a stray file), which `Container::load` then
/// reports as not existing. (Not checked here: `list` reads every state.json anyway.)
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

//! `pause` and `resume`: the v1 freezer (freezer.state) or v2's cgroup.freeze. Freezing is
//! asynchronous in the kernel; both wait until every task is frozen before returning.
//! Also what keeps `create` from hanging on a frozen cgroup: the check before anything is
//! made (`check_not_frozen`) and the watch while it waits for its processes (`Watch`).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

use super::placement::Placement;
use crate::sys::read_virtual;

/// How long a freeze may take before it is undone and reported.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `create` waits for a silent joiner or init before it looks at them.
const STALL_TICK_MS: u16 = 250;

/// How long a stopped (SIGSTOP) joiner or init may stay so before `create` gives up.
const STOPPED_LIMIT: Duration = Duration::from_secs(10);

/// runc's words, for a container cgroup that is frozen before anything joined it.
const UNEXPECTEDLY_FROZEN: &str = "container's cgroup unexpectedly frozen";

/// Refuses a container whose cgroup is frozen or being frozen: the joiner would
/// freeze the moment it joined, and `create` would wait for it forever (runc checks before
/// creating anything, with this text). `placements`: each cgroup directory with the mount
/// point of its hierarchy. A cgroup that does not exist yet inherits the state of its nearest
/// existing ancestor, so that one is looked at; the hierarchy's root cannot be frozen.
pub fn check_not_frozen<'a>(
    placements: impl IntoIterator<Item = (&'a Path, &'a Path)>,
) -> Result<()> {
    for (dir, mount_point) in placements {
        let existing = dir
            .ancestors()
            .take_while(|level| level.starts_with(mount_point) && *level != mount_point)
            .find(|level| level.is_dir());
        if let Some(why) = existing.and_then(frozen_because) {
            bail!("{UNEXPECTEDLY_FROZEN} ({why})");
        }
    }
    Ok(())
}

/// Why the cgroup at `dir` (which exists) is frozen or freezing, if it is.
fn frozen_because(dir: &Path) -> Option<String> {
    // v1: freezer.state is the effective state, a frozen ancestor's included.
    if let Ok(state) = read_virtual(dir.join("freezer.state")) {
        let state = state.trim();
        return matches!(state, "FROZEN" | "FREEZING")
            .then(|| format!("{}/freezer.state is {state}", dir.display()));
    }
    // v2: cgroup.freeze is its own request (which may not be complete yet); cgroup.events
    // says whether it is frozen, by itself or by an ancestor. (The root has neither file.)
    let freeze = read_virtual(dir.join("cgroup.freeze")).ok()?;
    if freeze.trim() == "1" {
        return Some(format!("{}/cgroup.freeze is 1", dir.display()));
    }
    read_virtual(dir.join("cgroup.events"))
        .is_ok_and(|e| e.lines().any(|l| l.trim() == "frozen 1"))
        .then(|| format!("{}/cgroup.events says frozen 1", dir.display()))
}

/// Thaws each of `dirs` that is frozen by its own setting, without waiting and ignoring
/// errors: for a failed `create`, whose processes must die of SIGKILL and be reaped (a frozen
/// v1 task does not die until thawed).
pub fn thaw_all(placement: &Placement) {
    for dir in placement.paths() {
        let v1 = dir.join("freezer.state");
        if read_virtual(&v1).is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING")) {
            let _ = crate::sys::write_file(&v1, "THAWED");
        }
        let v2 = dir.join("cgroup.freeze");
        if read_virtual(&v2).is_ok_and(|s| s.trim() == "1") {
            let _ = crate::sys::write_file(&v2, "0");
        }
    }
}

/// Keeps `create` from waiting forever on a joiner or init that cannot answer: while
/// the channel stays silent it looks, every STALL_TICK_MS, whether the container's cgroup got
/// frozen (fails at once) or one of them is stopped (fails once it has been for
/// STOPPED_LIMIT). A process that runs or sleeps (a slow hook, a slow mount) is waited for.
pub struct Watch<'a> {
    placement: Option<&'a Placement>,
    stopped_since: Option<(Pid, Instant)>,
}

impl<'a> Watch<'a> {
    pub fn new(placement: Option<&'a Placement>) -> Watch<'a> {
        Watch {
            placement,
            stopped_since: None,
        }
    }

    /// Returns once `fd` is readable or hung up; `pids` are the processes that should write.
    pub fn wait_readable(&mut self, fd: &impl AsRawFd, pids: &[Option<Pid>]) -> Result<()> {
        // SAFETY: `fd` is borrowed for the whole call, so the descriptor stays open.
        let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        loop {
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(STALL_TICK_MS)) {
                Ok(0) => self.check(pids)?,
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => bail!("wait for the container's setup process: {e}"),
            }
        }
    }

    fn check(&mut self, pids: &[Option<Pid>]) -> Result<()> {
        // Every hierarchy: a hybrid host's cgroup2 one can freeze its tasks too.
        for dir in self.placement.iter().flat_map(|p| p.paths()) {
            if let Some(why) = frozen_because(dir) {
                bail!("{UNEXPECTEDLY_FROZEN} while it was being created ({why})");
            }
        }
        // 'T' is a job-control stop; 't' (a debugger's stop) is left alone.
        let stopped = pids
            .iter()
            .flatten()
            .find(|p| crate::sys::proc_stat(p.as_raw()).is_some_and(|st| st.state == 'T'));
        self.stopped_since = match (stopped, self.stopped_since) {
            (None, _) => None,
            (Some(&pid), Some((was, since))) if was == pid => {
                if since.elapsed() >= STOPPED_LIMIT {
                    bail!(
                        "the container's process {pid} has been stopped (SIGSTOP) for {}s during create; gave up waiting for it",
                        STOPPED_LIMIT.as_secs()
                    );
                }
                Some((pid, since))
            }
            (Some(&pid), _) => Some((pid, Instant::now())),
        };
        Ok(())
    }
}

/// Whether the container's cgroup is frozen (or being frozen).
pub fn is_frozen(placement: &Placement) -> bool {
    match placement.freezer() {
        Some(d) if d.v2 => {
            read_virtual(d.path.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }
        Some(d) => read_virtual(d.path.join("freezer.state"))
            .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING")),
        None => false,
    }
}

pub fn freeze(placement: &Placement) -> Result<()> {
    set(placement, true)
}

pub fn thaw(placement: &Placement) -> Result<()> {
    set(placement, false)
}

fn set(placement: &Placement, frozen: bool) -> Result<()> {
    let result = match placement.freezer() {
        None => {
            bail!("this container's cgroup has no freezer (no v1 freezer hierarchy, no cgroup2)")
        }
        Some(d) if d.v2 => set_v2(&d.path, frozen),
        Some(d) => set_v1(&d.path, frozen),
    };
    if result.is_err() && frozen {
        // Never leave a container half frozen.
        let _ = set(placement, false);
    }
    result
}

/// v1 has no notification for the end of FREEZING: re-read, yielding between reads, and
/// write FROZEN again as the kernel documentation asks.
fn set_v1(dir: &Path, frozen: bool) -> Result<()> {
    let file = dir.join("freezer.state");
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        crate::sys::write_file(&file, want)?;
        let now = read_virtual(&file).with_context(|| format!("read {}", file.display()))?;
        if now.trim() == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} stayed {} instead of {want}", file.display(), now.trim());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// v2 reports the end of a freeze in cgroup.events, which can be polled for changes.
fn set_v2(dir: &Path, frozen: bool) -> Result<()> {
    crate::sys::write_file(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    let events_path = dir.join("cgroup.events");
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let mut events =
        fs::File::open(&events_path).with_context(|| format!("open {}", events_path.display()))?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        // Read through the polled fd: kernfs wakes a poller for changes after its last read.
        let mut text = String::new();
        events
            .seek(SeekFrom::Start(0))
            .and_then(|_| events.read_to_string(&mut text))
            .with_context(|| format!("read {}", events_path.display()))?;
        if text.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{} did not reach {want:?}", events_path.display());
        }
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLPRI)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("wait for {}: {e}", events_path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake hierarchy in a temporary directory: `files` (path, content) under its mount point.
    fn hierarchy(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let file = root.path().join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, text).unwrap();
        }
        root
    }

    fn check(root: &tempfile::TempDir, dir: &str) -> Result<()> {
        let dir = root.path().join(dir);
        check_not_frozen([(dir.as_path(), root.path())])
    }

    #[test]
    fn a_frozen_cgroup_or_nearest_existing_ancestor_is_refused_with_runcs_text() {
        for (state, frozen) in [
            ("FROZEN\n", true),
            ("FREEZING\n", true),
            ("THAWED\n", false),
        ] {
            let v1 = hierarchy(&[("a/freezer.state", state), ("a/b/freezer.state", state)]);
            for dir in ["a", "a/b", "a/new", "a/new/deeper"] {
                let r = check(&v1, dir);
                assert_eq!(r.is_err(), frozen, "{dir} with {state:?}: {r:?}");
                if let Err(e) = r {
                    let e = e.to_string();
                    assert!(
                        e.starts_with("container's cgroup unexpectedly frozen ("),
                        "{e}"
                    );
                    assert!(e.contains("freezer.state is FR"), "{e}");
                }
            }
        }
        // v2: the cgroup's own request, or the effective state an ancestor gave it.
        let v2 = hierarchy(&[
            ("a/cgroup.freeze", "1\n"),
            ("a/cgroup.events", "populated 0\nfrozen 1\n"),
            ("b/cgroup.freeze", "0\n"),
            ("b/cgroup.events", "populated 0\nfrozen 1\n"),
            ("c/cgroup.freeze", "0\n"),
            ("c/cgroup.events", "populated 1\nfrozen 0\n"),
        ]);
        let e = check(&v2, "a/new").unwrap_err().to_string();
        assert!(e.ends_with("a/cgroup.freeze is 1)"), "{e}");
        let e = check(&v2, "b").unwrap_err().to_string();
        assert!(e.ends_with("b/cgroup.events says frozen 1)"), "{e}");
        check(&v2, "c").unwrap();
        check(&v2, "c/new").unwrap();
    }

    #[test]
    fn only_below_the_mount_point_and_missing_files_are_no_freezer() {
        // A hierarchy's root has no freezer files: whatever is there is not looked at.
        let root = hierarchy(&[("freezer.state", "FROZEN"), ("cgroup.freeze", "1")]);
        check(&root, "new").unwrap();
        check(&root, "new/deeper").unwrap();
        // Another controller's hierarchy: no freezer files at all.
        let other = hierarchy(&[("a/cpu.shares", "1024")]);
        check(&other, "a").unwrap();
        check(&other, "a/new").unwrap();
    }
}

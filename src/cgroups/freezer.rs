//! `pause` and `resume`: the v1 freezer (freezer.state) or v2's cgroup.freeze. Freezing is
//! asynchronous in the kernel; both wait until every task is frozen before returning.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How long a freeze may take before it is undone and reported.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

enum Freezer {
    /// freezer.state: THAWED, FREEZING or FROZEN.
    V1(PathBuf),
    /// cgroup.freeze to ask, cgroup.events' "frozen" line to see it done.
    V2(PathBuf),
}

fn freezer(dirs: &[PathBuf]) -> Option<Freezer> {
    if let Some(d) = dirs.iter().find(|d| d.join("freezer.state").exists()) {
        return Some(Freezer::V1(d.clone()));
    }
    dirs.iter()
        .find(|d| d.join("cgroup.freeze").exists())
        .map(|d| Freezer::V2(d.clone()))
}

/// Whether the container's cgroup is frozen (or being frozen).
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    match freezer(dirs) {
        Some(Freezer::V1(d)) => crate::sys::read_virtual(d.join("freezer.state"))
            .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING")),
        Some(Freezer::V2(d)) => {
            crate::sys::read_virtual(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }
        None => false,
    }
}

pub fn freeze(dirs: &[PathBuf]) -> Result<()> {
    set(dirs, true)
}

pub fn thaw(dirs: &[PathBuf]) -> Result<()> {
    set(dirs, false)
}

fn set(dirs: &[PathBuf], frozen: bool) -> Result<()> {
    let result = match freezer(dirs) {
        None => bail!("this host has no cgroup freezer (neither freezer.state nor cgroup.freeze)"),
        Some(Freezer::V1(d)) => set_v1(&d, frozen),
        Some(Freezer::V2(d)) => set_v2(&d, frozen),
    };
    if result.is_err() && frozen {
        // Never leave a container half frozen.
        let _ = set(dirs, false);
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
        let now =
            crate::sys::read_virtual(&file).with_context(|| format!("read {}", file.display()))?;
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

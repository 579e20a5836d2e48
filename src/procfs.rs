//! Writes into procfs that a container's mounts cannot redirect (the CVE-2025-52881 class):
//! a procfs instance of berth's own (fsopen, detached, so no mount of the container's can
//! cover any part of it), or else the process's `/proc` checked to be the root of a procfs.
//! Every file is opened beneath that root without following symlinks or crossing a mount,
//! and checked to be on procfs before anything is written.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use crate::sys;

#[allow(clippy::unnecessary_cast)] // (not an i64 on every architecture)
const PROC_SUPER_MAGIC: i64 = libc::PROC_SUPER_MAGIC as i64;
/// The inode of procfs's root directory.
const PROC_ROOT_INO: u64 = 1;

/// A handle on a procfs root that nothing in the container can redirect.
pub struct Procfs {
    root: OwnedFd,
}

impl Procfs {
    /// A detached procfs instance of this process's PID namespace; where the kernel refuses
    /// one (no new mount API, or a user namespace that may not mount procfs), the process's
    /// own `/proc`, verified to be procfs's root.
    pub fn open() -> Result<Procfs> {
        match sys::new_detached_mount("proc", &[], 0) {
            Ok(root) => return Ok(Procfs { root }),
            Err(e) => log::debug!("a private procfs: {e:#}; using /proc, verified"),
        }
        let root: OwnedFd = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open("/proc")
            .context("open /proc")?
            .into();
        verify_procfs(&root, "/proc")?;
        let st = nix::sys::stat::fstat(root.as_raw_fd()).context("stat /proc")?;
        if st.st_ino != PROC_ROOT_INO {
            bail!("/proc is not the root of a procfs (a directory of one is mounted there)");
        }
        Ok(Procfs { root })
    }

    /// Opens `rel` (e.g. `sys/net/ipv4/ip_forward`, `self/attr/exec`) beneath the root: no
    /// symlink (`self` is taken as this process's pid), magic link or mount crossing on the
    /// way, and the file is on procfs.
    pub fn open_file(&self, rel: &str, flags: OFlag) -> Result<File> {
        let rel = match rel.strip_prefix("self/") {
            Some(rest) => format!("{}/{rest}", nix::unistd::getpid()),
            None => rel.to_string(),
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_XDEV
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_SYMLINKS,
            );
        let fd = openat2(self.root.as_raw_fd(), rel.as_str(), how)
            .with_context(|| format!("open /proc/{rel}"))?;
        // SAFETY: openat2 returned a fresh fd that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        verify_procfs(&file, &format!("/proc/{rel}"))?;
        Ok(file)
    }

    /// Writes `data` to procfs file `rel` in one write, naming the file in the error.
    pub fn write(&self, rel: &str, data: &str) -> Result<()> {
        let mut f = self.open_file(rel, OFlag::O_WRONLY)?;
        f.write_all(data.as_bytes())
            .with_context(|| format!("write {data:?} to /proc/{rel}"))
    }
}

fn verify_procfs(fd: &impl AsRawFd, what: &str) -> Result<()> {
    let t = sys::fs_type(fd).with_context(|| format!("statfs {what}"))?;
    if t != PROC_SUPER_MAGIC {
        bail!("{what} is not on procfs (filesystem type {t:#x}): refusing to write there");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_files_beneath_the_root_and_refuses_symlinks_and_escapes() {
        // Unprivileged: fsopen("proc") may be refused, and the verified /proc serves.
        let proc = Procfs::open().unwrap();
        let mut s = String::new();
        use std::io::Read;
        proc.open_file("self/status", OFlag::O_RDONLY)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert!(s.contains(&format!("Pid:\t{}", std::process::id())), "{s}");
        // A symlink on the way (here the last name) and a climb out are both refused.
        assert!(proc.open_file("mounts", OFlag::O_RDONLY).is_err());
        assert!(proc.open_file("../etc/passwd", OFlag::O_RDONLY).is_err());
    }
}

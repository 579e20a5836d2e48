//! CVE-2019-5736 by way of CAP_SYS_PTRACE: a process of berth's that is visible in a
//! container's PID namespace (the child of `exec`, or the init of a `create` that joins
//! another container's PID namespace) runs berth's own binary until it execs. Not being
//! dumpable keeps ordinary container processes out of its `/proc/PID/exe`, but not one with
//! CAP_SYS_PTRACE in the host's user namespace: that one can hold the link and, once berth
//! is gone, reopen it for writing and replace the host's berth.
//!
//! So on those paths berth first makes sure the binary it runs cannot be written through
//! any handle: unless it already is such a binary, it re-executes itself once (same argv,
//! environment and fds, same pid) from a detached overlayfs mount of its own directory with
//! no upper layer. Nothing is copied: a file on an overlay without an upper layer cannot be
//! opened for writing (EROFS, also through a clone of the mount with its read-only flag
//! cleared, as the superblock itself is read-only), and the mount, in no mount namespace,
//! goes away with the last process running from it. Where overlayfs cannot be used (no
//! CAP_SYS_ADMIN, no overlayfs, the binary in `/` or under `/dev`, a comma in its path),
//! berth copies itself into a memfd sealed
//! against any write instead (runc's fallback too; runc before 1.2 copied on every command).
//!
//! The re-executed berth sees from the kernel that its binary is on a read-only overlay (or
//! is a sealed memfd) and goes on. The variable berth adds to its environment for it only
//! carries the original binary's device and inode (which `exec` and `create` still refuse
//! as the container process) and stops a second re-exec; it never decides that a binary is
//! sealed. A binary on a read-only ext4 or bind mount is not taken as sealed: the host may
//! remount it read-write while a container holds the link. Filesystems that cannot be
//! written at all (squashfs, erofs) are, and cost nothing.
//!
//! `exec` and `create` usually re-execute before the C library even starts: the binary's
//! entry point makes the same overlay and execs from it (before_libc.rs), sparing that first
//! process glibc's start-up. `ensure` is the path for everything that one leaves alone.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod before_libc;

use std::ffi::{CStr, CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;

use crate::sys;

/// Set for the re-executed berth: device and inode of the binary it was re-executed from.
const SEALED_FROM: &str = "_BERTH_SEALED_FROM";

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const SQUASHFS_MAGIC: i64 = 0x7371_7368;
const EROFS_SUPER_MAGIC_V1: i64 = 0xe0f5_e1e2;
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
/// The seals that make a memfd's contents final.
const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// How the running binary is protected from being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// An overlayfs file without an upper layer: the one this module makes.
    Overlay,
    /// A memfd sealed against writes, shrinking and growing.
    Memfd,
    /// A filesystem that has no way to be written (squashfs, erofs).
    ReadOnlyFs,
}

static ORIGINAL: OnceLock<(u64, u64)> = OnceLock::new();

/// Makes sure berth runs from a binary that cannot be written, before it starts a process in
/// a container's PID namespace: returns at once when it already does, else re-executes berth
/// from a sealed binary (and returns only if that was impossible).
pub fn ensure() -> Result<()> {
    let exe = c"/proc/self/exe";
    if sealed(exe).is_some() {
        if let Some(v) = std::env::var_os(SEALED_FROM) {
            if let Some(id) = parse_id(&v) {
                let _ = ORIGINAL.set(id);
            }
            // Not for anything berth starts.
            std::env::remove_var(SEALED_FROM);
        }
        return Ok(());
    }
    if std::env::var_os(SEALED_FROM).is_some() {
        // Re-executed once already: never loop, whatever the kernel says of the copy.
        bail!("berth was re-executed from a sealed copy of its binary, but that copy does not look sealed (CVE-2019-5736)");
    }
    let binary = std::fs::File::open("/proc/self/exe").context("open /proc/self/exe")?;
    let meta = binary.metadata().context("stat /proc/self/exe")?;
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<Result<_, _>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != SEALED_FROM)
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()?;
    env.push(CString::new(format!(
        "{SEALED_FROM}={}:{}",
        meta.dev(),
        meta.ino()
    ))?);

    let overlay = match overlay_of_own_dir(&meta) {
        Ok((mount, name)) => {
            anyhow::anyhow!("execveat: {}", sys::execveat(&mount, &name, &argv, &env, 0))
        }
        Err(e) => e,
    };
    log::debug!(
        "re-exec from a read-only overlayfs failed ({overlay:#}); copying berth into a sealed memfd"
    );
    let memfd = match sealed_copy(binary) {
        Ok(fd) => sys::execveat(&fd, c"", &argv, &env, libc::AT_EMPTY_PATH),
        Err(e) => e,
    };
    bail!(
        "cannot protect berth's own binary from the container (CVE-2019-5736): re-exec from a read-only overlayfs: {overlay:#}; from a sealed memfd copy: {memfd}"
    )
}

/// Device and inode of the binary berth was started from, in a berth that `ensure`
/// re-executed (whose /proc/self/exe is the sealed one); else `None`.
pub fn original_binary() -> Option<(u64, u64)> {
    ORIGINAL.get().copied()
}

/// How the binary at `exe` is sealed, if it is.
pub fn sealed(exe: &CStr) -> Option<Sealed> {
    let (fs_type, flags) = sys::statfs_type_and_flags(exe).ok()?;
    match fs_type {
        OVERLAYFS_SUPER_MAGIC if flags & libc::ST_RDONLY != 0 => Some(Sealed::Overlay),
        SQUASHFS_MAGIC | EROFS_SUPER_MAGIC_V1 => Some(Sealed::ReadOnlyFs),
        TMPFS_MAGIC | HUGETLBFS_MAGIC => {
            let file = std::fs::File::open(std::ffi::OsStr::from_bytes(exe.to_bytes())).ok()?;
            let seals = sys::get_seals(&file).ok()?;
            (seals & SEALS == SEALS).then_some(Sealed::Memfd)
        }
        _ => None,
    }
}

/// A detached, read-only overlayfs mount whose top layer is the directory of the running
/// binary, and the binary's name in it.
fn overlay_of_own_dir(running: &std::fs::Metadata) -> Result<(std::os::fd::OwnedFd, CString)> {
    let path = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} has no directory", path.display());
    };
    let Some(dir) = dir.to_str().filter(|d| !d.contains(',')) else {
        // A comma would split the option string on kernels that parse it the legacy way.
        bail!("{} is not UTF-8 or has a comma", dir.display());
    };
    if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        bail!(
            "{} was replaced or removed since berth started",
            path.display()
        );
    }
    // Without an upper layer overlayfs wants two lower ones; the second, below the binary's
    // directory, only has to exist and not overlap it. Inode numbers stay the lower layer's
    // (checked below) with xino off, which also spares a dmesg notice when the layers are on
    // different filesystems.
    let lower = format!("{}:/dev", lowerdir_escape(dir));
    let mount = sys::new_detached_mount(
        "overlay",
        &[
            sys::FsParam::Str("lowerdir", &lower),
            sys::FsParam::Str("xino", "off"),
        ],
        libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
    )?;
    let name = CString::new(name.as_bytes())?;
    // The same file as the one running, not one put there since.
    let there = nix::sys::stat::fstatat(
        Some(mount.as_raw_fd()),
        name.as_c_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("stat {name:?} in the overlay"))?;
    if (
        there.st_ino,
        there.st_size,
        there.st_mtime,
        there.st_mtime_nsec,
    ) != (
        running.ino(),
        running.size() as i64,
        running.mtime(),
        running.mtime_nsec(),
    ) {
        bail!("{} is no longer the binary berth runs", path.display());
    }
    Ok((mount, name))
}

/// `\` and `:` are special in overlayfs's lowerdir list.
fn lowerdir_escape(dir: &str) -> String {
    dir.replace('\\', "\\\\").replace(':', "\\:")
}

/// A copy of `binary` in a memfd sealed against writes.
fn sealed_copy(mut binary: std::fs::File) -> Result<std::os::fd::OwnedFd, Errno> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) says the memfd is meant to be executed; older kernels refuse it.
    let memfd = sys::memfd_create(c"berth", flags | libc::MFD_EXEC)
        .or_else(|_| sys::memfd_create(c"berth", flags))?;
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(&mut binary, &mut copy)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    sys::add_seals(&copy, SEALS)?;
    Ok(copy.into())
}

fn parse_id(v: &OsString) -> Option<(u64, u64)> {
    let (dev, ino) = v.to_str()?.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_escapes_colons_and_backslashes() {
        assert_eq!(lowerdir_escape("/usr/bin"), "/usr/bin");
        assert_eq!(lowerdir_escape(r"/a:b\c"), r"/a\:b\\c");
    }

    #[test]
    fn an_ordinary_file_is_not_sealed_and_a_sealed_memfd_is() {
        assert_eq!(sealed(c"/proc/self/exe"), None, "cargo's test binary");
        let file = sys::memfd_create(c"t", libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING).unwrap();
        let path = CString::new(sys::fd_path(&file)).unwrap();
        assert_eq!(sealed(&path), None, "a memfd that can still be written");
        sys::add_seals(&file, SEALS).unwrap();
        assert_eq!(sealed(&path), Some(Sealed::Memfd));
    }

    #[test]
    fn the_original_binary_is_parsed_from_the_environment_value() {
        assert_eq!(parse_id(&OsString::from("2049:1234")), Some((2049, 1234)));
        assert_eq!(parse_id(&OsString::from("2049")), None);
    }
}

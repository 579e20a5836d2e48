//! Device nodes in the container's /dev: the defaults every container gets, the config's
//! `linux.devices`, and the standard symlinks.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::paths::{self, Kind};
use crate::sys::fd_path;

/// A device node to create: path inside the container, type, numbers, mode and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn char_dev(path: &str, major: u64, minor: u64) -> DeviceNode {
    DeviceNode {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// The devices runc gives every container.
pub fn default_devices() -> Vec<DeviceNode> {
    vec![
        char_dev("/dev/null", 1, 3),
        char_dev("/dev/zero", 1, 5),
        char_dev("/dev/full", 1, 7),
        char_dev("/dev/random", 1, 8),
        char_dev("/dev/urandom", 1, 9),
        char_dev("/dev/tty", 5, 0),
    ]
}

pub fn create_defaults(root: &impl std::os::fd::AsFd, in_userns: bool) -> Result<()> {
    for dev in default_devices() {
        create(root, &dev, in_userns).with_context(|| format!("default device {}", dev.path))?;
    }
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    let dev = paths::create_in_root(root, Path::new("/dev"), Kind::Dir)?;
    for (target, link) in links {
        let name = &link["/dev/".len()..];
        // An existing entry (e.g. from the image) is replaced, as runc does for ptmx.
        replace_existing(&dev, name.as_ref(), || {
            nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name)
        })
        .with_context(|| format!("symlink {link} -> {target}"))?;
    }
    Ok(())
}

pub fn create_configured(
    root: &impl std::os::fd::AsFd,
    spec: &Spec,
    in_userns: bool,
) -> Result<()> {
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for (i, d) in devices.iter().enumerate() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            other => bail!("linux.devices[{i}]: type {other:?} cannot be created"),
        };
        let path = d.path().to_string_lossy().into_owned();
        if !d.path().is_absolute() {
            bail!("linux.devices[{i}]: path {path:?} is not absolute");
        }
        // As runc: /dev/ptmx stays the symlink to the container's own devpts (pts/ptmx); a
        // node here would be the host's multiplexer, whose ptys the container cannot see.
        if lexically_clean(d.path()) == Path::new("/dev/ptmx") {
            continue;
        }
        let node = DeviceNode {
            path,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(root, &node, in_userns)
            .with_context(|| format!("linux.devices[{i}] ({})", node.path))?;
    }
    Ok(())
}

/// `path` with `.`, `..` and repeated slashes resolved as text, never through the
/// filesystem (runc's LexicallyCleanPath); `..` stops at the root.
fn lexically_clean(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Creates one node with mknod, or in a user namespace (where mknod is refused) bind-mounts
/// the host's node onto an empty file.
fn create(root: &impl std::os::fd::AsFd, dev: &DeviceNode, in_userns: bool) -> Result<()> {
    let path = Path::new(&dev.path);
    let parent = path.parent().context("device path has no parent")?;
    let name = path.file_name().context("device path has no name")?;
    if in_userns {
        let target = paths::create_in_root(root, path, Kind::File)?;
        return mount(
            Some(path),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind the host's {}", dev.path));
    }
    let dir: OwnedFd = paths::create_in_root(root, parent, Kind::Dir)?;
    let mode = Mode::from_bits_truncate(dev.mode);
    let devno = makedev(dev.major, dev.minor);
    replace_existing(&dir, name, || {
        mknodat(Some(dir.as_raw_fd()), name, dev.kind, mode, devno)
    })
    .context("mknod")?;
    fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .context("chown")?;
    Ok(())
}

/// Runs `create`; if the name is taken (an entry from the image), removes it and runs again.
fn replace_existing(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    create: impl Fn() -> nix::Result<()>,
) -> nix::Result<()> {
    match create() {
        Err(nix::errno::Errno::EEXIST) => {
            let flags = nix::unistd::UnlinkatFlags::NoRemoveDir;
            nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, flags)?;
            create()
        }
        r => r,
    }
}

/// Opens the container's /dev/null once and checks on that fd that it is char device 1:3,
/// so an image (or a racing process) cannot turn masking into a bind of something else: the
/// masks are bound from this fd, never from the path.
pub fn open_null(root: &impl std::os::fd::AsFd) -> Result<OwnedFd> {
    let null = paths::open_in_root(root, Path::new("/dev/null")).context("open /dev/null")?;
    let st = nix::sys::stat::fstat(null.as_raw_fd()).context("stat /dev/null")?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR;
    if !is_chr || st.st_rdev != makedev(1, 3) {
        bail!("/dev/null is not the null device");
    }
    Ok(null)
}

/// As runc, once inside the new root: stdio that is the host's /dev/null (an engine's
/// detached container gets it) is replaced by the container's /dev/null, so the container
/// holds no file of a mount outside its namespace (which CRIU cannot checkpoint). Nothing is
/// done where the container has no null device at /dev/null.
pub fn reopen_dev_null() -> Result<()> {
    use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
    let is_null = |st: &nix::sys::stat::FileStat| {
        SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR
            && st.st_rdev == makedev(1, 3)
    };
    // (Even the same device file bound from the host: its fd is of the host's mount.)
    let null_fds: Vec<i32> = (0..3)
        .filter(|&fd| nix::sys::stat::fstat(fd).is_ok_and(|st| is_null(&st)))
        .collect();
    // The usual case (an engine's pipes): nothing to open.
    if null_fds.is_empty() {
        return Ok(());
    }
    // (Non-blocking and no symlink: whatever the image put there cannot hold this up.)
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(raw) = open("/dev/null", flags, Mode::empty()) else {
        return Ok(());
    };
    // SAFETY: open just returned this fd, owned by nothing else.
    let null = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let ours = nix::sys::stat::fstat(null.as_raw_fd()).context("stat the container's /dev/null")?;
    if !is_null(&ours) {
        return Ok(());
    }
    fcntl(null.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_RDWR))
        .context("/dev/null: clear O_NONBLOCK")?;
    for fd in null_fds {
        nix::unistd::dup2(null.as_raw_fd(), fd)
            .with_context(|| format!("reopen fd {fd} as the container's /dev/null"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_text() {
        for p in [
            "/dev/ptmx",
            "/dev//ptmx",
            "/dev/./ptmx",
            "/dev/pts/../ptmx",
            "/../dev/ptmx",
        ] {
            assert_eq!(lexically_clean(Path::new(p)), Path::new("/dev/ptmx"), "{p}");
        }
        assert_eq!(
            lexically_clean(Path::new("/dev/pts/ptmx")),
            Path::new("/dev/pts/ptmx")
        );
    }
}

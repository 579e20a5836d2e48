//! Resolving paths inside the container's root so that a hostile image cannot redirect them:
//! every lookup goes through openat2(RESOLVE_IN_ROOT), so a symlink such as `/etc -> /host/etc`
//! or `/proc -> /` stays inside the root. Callers act on the returned O_PATH fd (through its
//! /proc/self/fd path), never on a re-resolved string.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::readlinkat;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};

/// What to create at a missing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// `path` made absolute and without `.`, `..` or repeated slashes, by its text alone (`..`
/// at the top stays at the top, as it would inside the container's root).
pub fn lexically_clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Where a host path that lies inside `rootfs` is, seen from the container's root, by its
/// text alone (it may not exist before the mounts above it are made); None outside it, or
/// when the rootfs is the host's `/`.
pub fn inside_rootfs(rootfs: &Path, path: &Path) -> Option<PathBuf> {
    if rootfs == Path::new("/") {
        return None;
    }
    let rest = lexically_clean(path)
        .strip_prefix(rootfs)
        .ok()?
        .to_path_buf();
    Some(Path::new("/").join(rest))
}

/// Opens `path` (absolute or relative, always taken inside `root`) as O_PATH.
pub fn open_in_root(root: &impl AsFd, path: &Path) -> nix::Result<OwnedFd> {
    open_path_in_root(root, path, OFlag::empty())
}

/// Opens `path` inside `root` as O_PATH without following a symlink in its last name (the
/// fd is then the symlink itself), for checks that must see what is really there.
pub fn open_in_root_no_follow(root: &impl AsFd, path: &Path) -> nix::Result<OwnedFd> {
    open_path_in_root(root, path, OFlag::O_NOFOLLOW)
}

fn open_path_in_root(root: &impl AsFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | flags)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_fd().as_raw_fd(), rel, how)?;
    // SAFETY: openat2 returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` inside `root`, creating it (and missing parent directories) as `kind`.
/// A dangling symlink on the way is followed inside the root and its target created, as
/// runc's MkdirAllInRoot does.
pub fn create_in_root(root: &impl AsFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    create_in_root_depth(root, path, kind, 0)
}

const MAX_SYMLINKS: u32 = 40;

fn create_in_root_depth(root: &impl AsFd, path: &Path, kind: Kind, depth: u32) -> Result<OwnedFd> {
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => bail!("open {} in the container's root: {e}", path.display()),
    }
    if depth > MAX_SYMLINKS {
        bail!(
            "create {} in the container: too many levels of symbolic links",
            path.display()
        );
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        bail!(
            "create {} in the container: no such directory",
            path.display()
        );
    };
    // Only what is missing is walked: the parent first (created as needed), then the name.
    let parent_fd = create_in_root_depth(root, parent, Kind::Dir, depth)?;
    // Created without following a symlink (mkdirat never does, O_NOFOLLOW); the name may
    // exist all the same: a dangling symlink (or a racing creator).
    let created = match kind {
        Kind::File => create_file_at(&parent_fd, name),
        Kind::Dir => mkdirat(
            Some(parent_fd.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        ),
    };
    match created {
        Ok(()) => {}
        Err(Errno::EEXIST | Errno::ELOOP) => {
            if let Ok(target) = readlinkat(Some(parent_fd.as_raw_fd()), name) {
                // A dangling symlink: create what it points to, still inside the root.
                return create_in_root_depth(root, &parent.join(target), kind, depth + 1);
            }
        }
        Err(e) => {
            let what = if kind == Kind::Dir {
                "directory"
            } else {
                "file"
            };
            bail!("create {what} {} in the container: {e}", path.display())
        }
    }
    open_in_root(root, path)
        .with_context(|| format!("open {} in the container after creating it", path.display()))
}

fn create_file_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<()> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    )?;
    // SAFETY: openat returned a fresh fd that nothing else owns; dropping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn lexically_clean_paths() {
        for (path, want) in [
            ("/testdir", "/testdir"),
            ("/testdir/", "/testdir"),
            ("//a/./b//", "/a/b"),
            ("a/../b", "/b"),
            ("/../../etc", "/etc"),
        ] {
            assert_eq!(lexically_clean(Path::new(path)), Path::new(want), "{path}");
        }
    }

    fn root_fd(dir: &Path) -> OwnedFd {
        fs::File::open(dir).unwrap().into()
    }

    fn real_path(fd: &OwnedFd) -> std::path::PathBuf {
        fs::read_link(crate::sys::fd_path(fd)).unwrap()
    }

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        symlink("/", root.path().join("slash")).unwrap();
        symlink("../../../../..", root.path().join("up")).unwrap();
        let r = root_fd(root.path());
        for link in ["escape/x/y", "slash/x/y", "up/x/y"] {
            let fd = create_in_root(&r, Path::new(link), Kind::Dir).unwrap();
            assert!(
                real_path(&fd).starts_with(root.path()),
                "{link} escaped to {:?}",
                real_path(&fd)
            );
        }
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "something was created outside"
        );
    }

    #[test]
    fn creates_files_and_dirs() {
        let root = tempfile::tempdir().unwrap();
        let r = root_fd(root.path());
        create_in_root(&r, Path::new("/a/b/file"), Kind::File).unwrap();
        assert!(root.path().join("a/b/file").is_file());
        create_in_root(&r, Path::new("/c/d"), Kind::Dir).unwrap();
        assert!(root.path().join("c/d").is_dir());
        // A dangling symlink as the last name: its target is created, inside the root.
        symlink("/made/here", root.path().join("dangling-file")).unwrap();
        create_in_root(&r, Path::new("/dangling-file"), Kind::File).unwrap();
        assert!(root.path().join("made/here").is_file());
        symlink("../made/dir", root.path().join("c/dangling-dir")).unwrap();
        create_in_root(&r, Path::new("/c/dangling-dir"), Kind::Dir).unwrap();
        assert!(root.path().join("made/dir").is_dir());
        // Existing paths are opened, not recreated.
        let fd = create_in_root(&r, Path::new("/a/b/file"), Kind::Dir).unwrap();
        assert_eq!(real_path(&fd), root.path().join("a/b/file"));
    }
}

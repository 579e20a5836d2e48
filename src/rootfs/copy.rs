//! `tmpcopyup`: copies a directory tree between two directory fds (never by path, so nothing
//! in the image can redirect the copy), keeping modes, owners and symlinks.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};

/// Copies everything in `src` into `dst` (both directory fds).
pub fn tree(src: &OwnedFd, dst: &OwnedFd) -> Result<()> {
    let src_stat = nix::sys::stat::fstat(src.as_raw_fd()).context("stat source directory")?;
    fchmod(dst.as_raw_fd(), Mode::from_bits_truncate(src_stat.st_mode)).context("chmod")?;
    fchown(
        dst.as_raw_fd(),
        Some(Uid::from_raw(src_stat.st_uid)),
        Some(Gid::from_raw(src_stat.st_gid)),
    )
    .context("chown")?;
    let mut dir = Dir::from_fd(nix::unistd::dup(src.as_raw_fd())?).context("read directory")?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let at = |flags| openat(Some(src.as_raw_fd()), name, flags, Mode::empty());
        let st = fstatat(
            Some(src.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        let mode = Mode::from_bits_truncate(st.st_mode);
        let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
        let show = name.to_string_lossy();
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => {
                mkdirat(Some(dst.as_raw_fd()), name, mode)
                    .with_context(|| format!("mkdir {show}"))?;
                let from = own(at(OFlag::O_RDONLY
                    | OFlag::O_DIRECTORY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC)?);
                let to = own(openat(
                    Some(dst.as_raw_fd()),
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?);
                tree(&from, &to).with_context(|| format!("copy {show}"))?;
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(Some(src.as_raw_fd()), name)?;
                symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name)?;
                fchownat(
                    Some(dst.as_raw_fd()),
                    name,
                    Some(uid),
                    Some(gid),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
            }
            SFlag::S_IFREG => {
                let mut from = File::from(own(at(OFlag::O_RDONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC)?));
                let mut to = File::from(own(openat(
                    Some(dst.as_raw_fd()),
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    mode,
                )?));
                io::copy(&mut from, &mut to).with_context(|| format!("copy {show}"))?;
                fchmod(to.as_raw_fd(), mode)?;
                fchown(to.as_raw_fd(), Some(uid), Some(gid))?;
            }
            // Devices, fifos and sockets are not copied, as runc's tmpcopyup does not.
            _ => {}
        }
    }
    Ok(())
}

fn own(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn dir_fd(p: &std::path::Path) -> OwnedFd {
        File::open(p).unwrap().into()
    }

    #[test]
    fn copies_files_dirs_links_and_modes() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::write(src.path().join("sub/file"), "hello").unwrap();
        fs::set_permissions(
            src.path().join("sub/file"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        symlink("/etc/passwd", src.path().join("link")).unwrap();
        tree(&dir_fd(src.path()), &dir_fd(dst.path())).unwrap();
        assert_eq!(
            fs::read_to_string(dst.path().join("sub/file")).unwrap(),
            "hello"
        );
        let mode = fs::metadata(dst.path().join("sub/file"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            fs::read_link(dst.path().join("link")).unwrap(),
            std::path::PathBuf::from("/etc/passwd")
        );
    }
}

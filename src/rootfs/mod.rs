//! The container's filesystem view, built inside its new mount namespace: the rootfs bind,
//! the config's mounts in order, /dev, pivot_root, then masked and read-only paths.

mod copy;
pub mod devices;
pub mod idmap;
pub mod options;
pub mod paths;

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::SFlag;
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{Mount, Spec};

use crate::sys::{self, fd_path};
use paths::Kind;
use std::os::unix::fs::OpenOptionsExt;

/// What the rootfs setup needs besides the spec.
pub struct RootfsContext<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// The container's cgroup directories on the host, for `cgroup` mounts.
    /// The container's cgroup, bound by a `cgroup` mount; None when it has none of its own.
    pub cgroup: Option<&'a crate::cgroups::Placement>,
    /// In a new user namespace device nodes cannot be created; they are bind-mounted instead.
    pub in_userns: bool,
    /// False when the container shares the host's mount namespace (no `mount` entry in
    /// linux.namespaces): then everything is mounted on the host and the root is a chroot.
    pub new_mount_ns: bool,
    pub no_pivot: bool,
    /// The PID namespace that `proc` mounts show, when it is not this process's own: a
    /// container joining one enters it only after the rootfs is built.
    pub pid_ns: Option<BorrowedFd<'a>>,
    /// Asks `create` for a clone of `mounts[i]`'s source, made as root on the host in this
    /// mount namespace (idmapped when the entry asks; see `idmap.rs`): for idmapped mounts,
    /// and for a bind source the user namespace's root cannot reach.
    pub clone_source: &'a dyn Fn(usize) -> Result<OwnedFd>,
}

/// A bind source as the host names it: relative ones are the bundle's.
fn bind_source_path(bundle: &Path, source: &Path) -> PathBuf {
    match source.is_absolute() {
        true => source.to_path_buf(),
        false => bundle.join(source),
    }
}

/// Mounts that are made read-only only in `finalize`, as runc: a read-only `/dev` or tmpfs is
/// mounted writable so that its sub-mounts, device nodes, symlinks and copied-up files can
/// go in first. Each is held by an fd of the mount itself, not its path.
#[derive(Default)]
pub struct ReadOnlyLater(Vec<(OwnedFd, PathBuf)>);

/// The rootfs bind, `mounts` in order and the device nodes, still seen from the host's root
/// (createContainer hooks run between this and `enter`). Runs in the new mount namespace.
pub fn prepare(ctx: &RootfsContext) -> Result<ReadOnlyLater> {
    if ctx.new_mount_ns {
        // As runc: `/` gets linux.rootfsPropagation (rslave by default) before anything is
        // mounted, so with rshared the host's shared mounts stay peers of their copies here
        // and a shared volume (Kubernetes' Bidirectional) propagates both ways.
        let configured = root_propagation(ctx.spec)?;
        let (flags, what) = match configured {
            Some((flags, name)) => (flags, format!("linux.rootfsPropagation: make / {name}")),
            None => (
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                "make / a slave mount in the new mount namespace".to_string(),
            ),
        };
        change_mount("/", flags).context(what)?;
        // A slave only when asked for: unset, it is private, as in runc.
        let slave = configured.is_some_and(|(f, _)| f.contains(MsFlags::MS_SLAVE));
        make_rootfs_parent_unshared(ctx.rootfs, slave)?;
    }
    mount(
        Some(ctx.rootfs),
        ctx.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount the rootfs {} onto itself", ctx.rootfs.display()))?;

    let root =
        File::open(ctx.rootfs).with_context(|| format!("open rootfs {}", ctx.rootfs.display()))?;
    let mounts = ctx.spec.mounts().clone().unwrap_or_default();
    let mut read_only_later = ReadOnlyLater::default();
    for (i, m) in mounts.iter().enumerate() {
        mount_entry(ctx, &root, i, m, &mut read_only_later)
            .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))?;
    }
    let dev_is_host_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && options::parse(m.options().as_deref().unwrap_or(&[])).is_bind()
    });
    if !dev_is_host_bind {
        devices::create_defaults(&root, ctx.in_userns)?;
    }
    devices::create_configured(&root, ctx.spec, ctx.in_userns)?;
    Ok(read_only_later)
}

/// Makes the prepared rootfs the process's root: pivot_root (or a move with --no-pivot, or a
/// chroot in the host's mount namespace), then `linux.rootfsPropagation`.
pub fn enter(ctx: &RootfsContext) -> Result<()> {
    if !ctx.new_mount_ns {
        // The host's mount namespace: pivot_root or a move would replace the host's root.
        chdir(ctx.rootfs).context("chdir to the rootfs")?;
        chroot(".").context("chroot into the rootfs")?;
        return chdir("/").context("chdir to the new root");
    }
    if ctx.no_pivot {
        move_root(ctx.rootfs)?;
    } else {
        switch_root(ctx.rootfs)?;
    }
    // And once more for the new root, which the rootfs bind made private: only for shared
    // or unbindable (as runc), a slave root having come as one from its parent mount.
    let kept = MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE;
    if let Some((flags, name)) = root_propagation(ctx.spec)?.filter(|(f, _)| !f.intersects(kept)) {
        change_mount("/", flags)
            .with_context(|| format!("linux.rootfsPropagation: make / {name}"))?;
    }
    devices::reopen_dev_null()
}

/// `linux.rootfsPropagation` as mount flags, with its name for messages.
fn root_propagation(spec: &oci_spec::runtime::Spec) -> Result<Option<(MsFlags, &str)>> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    else {
        return Ok(None);
    };
    let flags = options::propagation(p)
        .with_context(|| format!("config.json: linux.rootfsPropagation: unknown value {p:?}"))?;
    Ok(Some((flags, p)))
}

/// Makes the mount holding the rootfs private, or a slave for a slave rootfsPropagation
/// (that mount only), as runc: the rootfs bind then propagates nowhere, and pivot_root
/// accepts it even when `/` is shared; a slave still receives the host's mounts.
fn make_rootfs_parent_unshared(rootfs: &Path, slave: bool) -> Result<()> {
    let flags = match slave {
        true => MsFlags::MS_SLAVE,
        false => MsFlags::MS_PRIVATE,
    };
    let mut path = rootfs;
    loop {
        match change_mount(path, flags) {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point; the mount is further up.
            Err(Errno::EINVAL) if path != Path::new("/") => {
                path = path.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    let what = if slave { "a slave" } else { "private" };
                    format!(
                        "make the mount holding the rootfs {what} ({})",
                        path.display()
                    )
                })
            }
        }
    }
}

/// mount(2) without source, type or data: propagation changes and remounts of `target`.
fn change_mount<P: ?Sized + nix::NixPath>(target: &P, flags: MsFlags) -> nix::Result<()> {
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// How many mounts are stacked on `path` in this mount namespace.
pub fn mounts_at(path: &Path) -> Result<usize> {
    Ok(mount_infos()?
        .iter()
        .filter(|m| Path::new(&sys::unescape_mountinfo(&m.mount_point.to_string_lossy())) == path)
        .count())
}

/// This mount namespace's mounts, by procfs-core's parser. (It leaves mountinfo's octal
/// escapes, e.g. \040 for a space, in the paths: `sys::unescape_mountinfo`.)
fn mount_infos() -> Result<procfs_core::process::MountInfos> {
    use procfs_core::FromBufRead;
    let text = sys::read_virtual("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    procfs_core::process::MountInfos::from_buf_read(text.as_bytes())
        .context("parse /proc/self/mountinfo")
}

/// For a container that shared the host's mount namespace: detaches the mounts berth stacked
/// on its rootfs (each carrying everything mounted below it), leaving the ones that were
/// there before create (e.g. an overlay from the engine).
pub fn unmount_from_host(rootfs: &Path, before: usize) -> Result<()> {
    while mounts_at(rootfs)? > before {
        umount2(rootfs, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmount {} from the host", rootfs.display()))?;
    }
    Ok(())
}

/// After the switch: read-only and masked paths, then a read-only root if asked. Every path
/// is opened once inside the root and the mount lands on that fd (open_tree/move_mount), so
/// nothing that swaps a symlink or a mount in between can redirect it (CVE-2025-31133).
pub fn finalize(spec: &Spec, read_only_later: ReadOnlyLater) -> Result<()> {
    let linux = spec.linux().as_ref();
    let root: OwnedFd = File::open("/").context("open the container's root")?.into();
    for (mount, dest) in read_only_later.0 {
        sys::mount_setattr(&mount, libc::MOUNT_ATTR_RDONLY, 0, false)
            .with_context(|| format!("mounts ({}): make it read-only", dest.display()))?;
    }
    for (i, p) in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        make_readonly(&root, Path::new(p))
            .with_context(|| format!("linux.readonlyPaths[{i}] ({p})"))?;
    }
    let mut masks = Masks::default();
    // A path listed twice is masked once, as runc: a second mount over the first would
    // show twice in the container's mount table.
    let mut masked = HashSet::new();
    for (i, p) in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !masked.insert(paths::lexically_clean(Path::new(p))) {
            continue;
        }
        masks
            .mask(&root, Path::new(p))
            .with_context(|| format!("linux.maskedPaths[{i}] ({p})"))?;
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly().unwrap_or(false))
    {
        sys::mount_setattr(&root, libc::MOUNT_ATTR_RDONLY, 0, false)
            .context("root.readonly: make / read-only")?;
    }
    Ok(())
}

fn mount_entry(
    ctx: &RootfsContext,
    root: &File,
    index: usize,
    m: &Mount,
    read_only_later: &mut ReadOnlyLater,
) -> Result<()> {
    let mut opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let fstype = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if fstype == "cgroup" || fstype == "cgroup2" {
        return mount_cgroup(ctx, root, dest, &opts);
    }
    if opts.is_bind() || fstype == "bind" {
        bind_entry(ctx, root, index, m, &opts)?;
    } else {
        let read_only = opts.flags.contains(MsFlags::MS_RDONLY)
            && (fstype == "tmpfs" || dest.components().eq(Path::new("/dev").components()));
        if read_only {
            opts.flags.remove(MsFlags::MS_RDONLY);
        }
        let target = match fstype {
            "proc" | "sysfs" => ordinary_directory(root, dest, fstype)?,
            "tmpfs" => tmpfs_target(root, dest, &mut opts)?,
            _ => paths::create_in_root(root, dest, Kind::Dir)?,
        };
        check_proc_destination(root, &target, m, None)?;
        // tmpcopyup copies from what the tmpfs is about to cover: keep a real fd to it.
        let covered = match opts.tmpcopyup {
            true => Some(reopen_dir(&target).context("tmpcopyup: open the destination")?),
            false => None,
        };
        match ctx.pid_ns.filter(|_| fstype == "proc") {
            Some(pid_ns) => mount_proc_of(pid_ns, m, &target, &opts),
            None => mount_by_path(ctx, root, m, &opts, &fd_path(&target)),
        }?;
        if let Some(covered) = covered {
            let new = paths::open_in_root(root, dest).context("tmpcopyup: reopen the tmpfs")?;
            copy::tree(&covered, &reopen_dir(&new)?).context("tmpcopyup")?;
        }
        if read_only {
            let mounted = paths::open_in_root(root, dest).context("reopen the new mount")?;
            read_only_later.0.push((mounted, dest.to_path_buf()));
        }
    }
    if !opts.recursive.is_empty() {
        let target = paths::open_in_root(root, dest).context("reopen for recursive attributes")?;
        sys::mount_setattr(&target, opts.recursive.set, opts.recursive.clear, true)
            .context("mount_setattr for the recursive options")?;
    }
    apply_propagation(root, dest, &opts.propagation)
}

/// The destination of a tmpfs. One that exists already lends its mode (with setuid, setgid
/// and sticky bits) to the tmpfs, ahead of the entry's own options so that a `mode=` given
/// wins, as runc: a tmpfs over an image's 0700 directory stays 0700 rather than tmpfs's
/// 1777. A destination berth has to make keeps tmpfs's default.
fn tmpfs_target(root: &File, dest: &Path, opts: &mut options::MountOptions) -> Result<OwnedFd> {
    let existing = match paths::open_in_root(root, dest) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return paths::create_in_root(root, dest, Kind::Dir),
        Err(e) => return Err(e).context("open the destination"),
    };
    let st = nix::sys::stat::fstat(existing.as_raw_fd()).context("stat the destination")?;
    let mode = format!("mode={:04o}", st.st_mode & 0o7777);
    opts.data = match opts.data.is_empty() {
        true => mode,
        false => format!("{mode},{}", opts.data),
    };
    Ok(existing)
}

/// mount(2) of entry `m` (no bind, no cgroup) on `path`, the /proc/self/fd path of its
/// destination.
fn mount_by_path(
    ctx: &RootfsContext,
    root: &File,
    m: &Mount,
    opts: &options::MountOptions,
    path: &str,
) -> Result<()> {
    let fstype = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned());
    let source = source.unwrap_or_else(|| fstype.to_string());
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    match mount(Some(source.as_str()), path, Some(fstype), flags, data) {
        // A user namespace that does not own the network namespace may not mount sysfs:
        // bind the host's /sys instead, as runc does.
        Err(Errno::EPERM) if fstype == "sysfs" && ctx.in_userns => {
            let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some("/sys"), path, None::<&str>, rbind, None::<&str>).and_then(|_| {
                let bound = paths::open_in_root(root, dest)?;
                let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.remount_flags();
                let bound_path = fd_path(&bound);
                change_mount(bound_path.as_str(), remount | locked_flags(&bound_path))
            })
        }
        r => r,
    }
    .with_context(|| match data {
        Some(d) => format!("mount {fstype} with options {d:?}"),
        None => format!("mount {fstype}"),
    })
}

/// A new procfs showing the PID namespace open at `pid_ns` (proc's `pidns` option, Linux
/// 6.18), put on `target`: what a process in that namespace would mount there.
fn mount_proc_of(
    pid_ns: BorrowedFd,
    m: &Mount,
    target: &OwnedFd,
    opts: &options::MountOptions,
) -> Result<()> {
    let (attrs, sb_flags) = opts.fsmount_attrs();
    let source = m.source().as_ref().map(|s| s.to_string_lossy());
    let source = source.as_deref().unwrap_or("proc");
    let mut params = vec![
        sys::FsParam::Str("source", source),
        sys::FsParam::Fd("pidns", pid_ns),
    ];
    params.extend(sb_flags.into_iter().map(sys::FsParam::Flag));
    params.extend(sys::FsParam::from_data(&opts.data));
    let proc = sys::new_detached_mount("proc", &params, attrs).with_context(|| {
        match opts.data.as_str() {
            "" => "mount proc".to_string(),
            d => format!("mount proc with options {d:?}"),
        }
    })?;
    sys::move_mount_onto(&proc, target).context("mount proc: move_mount")
}

/// Where a bind comes from.
enum BindFrom {
    /// The source's host path, bound in this mount namespace: with a user namespace the
    /// kernel has locked the host's mounts here, so a read-only one stays read-only.
    Path,
    /// A source inside the rootfs, opened inside the root when its turn comes: it holds the
    /// mounts made before it, and an image's symlink on the way stays in the container.
    InRoot(OwnedFd),
    /// A clone `create` made (`RootfsContext::clone_source`).
    Clone(OwnedFd),
}

/// A bind of `mounts[index]`'s source.
fn bind_entry(
    ctx: &RootfsContext,
    root: &File,
    index: usize,
    m: &Mount,
    opts: &options::MountOptions,
) -> Result<()> {
    let dest = m.destination();
    let source = m.source().as_ref().context("bind mount without a source")?;
    let source = bind_source_path(ctx.bundle, source);
    let describe = || format!("bind source {}", source.display());
    let stat_dir = |fd: &OwnedFd| -> Result<bool> {
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).with_context(describe)?;
        Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR)
    };
    let (mut from, is_dir) = if idmap::requested(m) {
        let clone = (ctx.clone_source)(index)?;
        let is_dir = stat_dir(&clone)?;
        (BindFrom::Clone(clone), is_dir)
    } else if let Some(inner) = paths::inside_rootfs(ctx.rootfs, &source) {
        let fd = paths::open_in_root(root, &inner).with_context(describe)?;
        let is_dir = stat_dir(&fd)?;
        (BindFrom::InRoot(fd), is_dir)
    } else {
        match std::fs::metadata(&source) {
            Ok(md) => (BindFrom::Path, md.is_dir()),
            // A source the user namespace's root may not reach (runc opens it as the
            // host's root): `create` clones it.
            Err(e) if ctx.in_userns && e.kind() == std::io::ErrorKind::PermissionDenied => {
                let clone = (ctx.clone_source)(index)?;
                let is_dir = stat_dir(&clone)?;
                (BindFrom::Clone(clone), is_dir)
            }
            Err(e) => return Err(e).with_context(describe),
        }
    };
    let kind = if is_dir { Kind::Dir } else { Kind::File };
    let target = paths::create_in_root(root, dest, kind)?;
    check_proc_destination(root, &target, m, Some(&source))?;
    let bind_flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
    let bind_path = |from: &Path| {
        mount(
            Some(from),
            fd_path(&target).as_str(),
            None::<&str>,
            bind_flags,
            None::<&str>,
        )
    };
    if let BindFrom::Path = from {
        match bind_path(&source) {
            Ok(()) => {}
            // Reachable by stat but not bindable by the mapped root (EACCES on the way).
            Err(Errno::EACCES | Errno::EPERM) if ctx.in_userns => {
                from = BindFrom::Clone((ctx.clone_source)(index)?);
            }
            Err(e) => return Err(e).with_context(|| format!("bind mount {}", source.display())),
        }
    }
    match &from {
        BindFrom::Path => {}
        BindFrom::InRoot(fd) => bind_path(Path::new(&fd_path(fd)))
            .with_context(|| format!("bind mount {}", source.display()))?,
        BindFrom::Clone(clone) => sys::move_mount_onto(clone, &target)
            .with_context(|| format!("bind mount {} (cloned by create)", source.display()))?,
    }
    if opts.remount_flags().is_empty() && opts.cleared.is_empty() {
        return Ok(());
    }
    // Reopen: the bind covers the old dentry, the remount must act on the new mount.
    let target = paths::open_in_root(root, dest).context("reopen the bind mount")?;
    remount_bind(&fd_path(&target), opts).context("set the mount options on the bind mount")
}

/// The flags a mount can have locked (MNT_LOCK_* when a user namespace's mount namespace
/// copied it), as runc counts them; and the atime ones among them.
const ATIME_FLAGS: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME)
    .union(MsFlags::MS_NODIRATIME);
const LOCKABLE_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOSUID)
    .union(ATIME_FLAGS);

/// A bind's options, as runc: first what `mount --bind -o` means, only the flags asked for
/// (the others cleared, atime kept); where that fails (flags the kernel locked in a user
/// namespace), the source's lockable flags with the request on top, unless the request
/// clears or changes one of them, which is an error rather than a mount unlike the request.
fn remount_bind(path: &str, opts: &options::MountOptions) -> Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.remount_flags();
    let Err(first) = change_mount(path, flags) else {
        return Ok(());
    };
    let source = locked_flags(path);
    let cannot_clear = source & opts.cleared & LOCKABLE_FLAGS;
    if !cannot_clear.is_empty() {
        let names = options::names(cannot_clear);
        bail!("cannot clear locked flags {names}: {first}");
    }
    let atime = flags & ATIME_FLAGS;
    if !atime.is_empty() && atime != source & ATIME_FLAGS {
        let names = options::names(source & ATIME_FLAGS);
        bail!("cannot change locked atime flags {names}: {first}");
    }
    change_mount(path, flags | (source & LOCKABLE_FLAGS)).with_context(|| {
        let names = options::names(source & LOCKABLE_FLAGS);
        format!("remount with locked flags {names} re-applied")
    })
}

/// The destination of a `proc` or `sysfs` mount: a directory that is no symlink (made if
/// missing), opened without following one, so that the mount cannot be steered onto
/// another place (CVE-2019-16884, CVE-2023-28642).
fn ordinary_directory(root: &File, dest: &Path, fstype: &str) -> Result<OwnedFd> {
    let fd = match paths::open_in_root_no_follow(root, dest) {
        Err(Errno::ENOENT) => {
            drop(paths::create_in_root(root, dest, Kind::Dir)?);
            paths::open_in_root_no_follow(root, dest)?
        }
        r => r?,
    };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).context("stat the destination")?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
        bail!("filesystem {fstype:?} must be mounted on ordinary directory");
    }
    Ok(fd)
}

/// The files inside /proc that a mount may cover: what lxcfs emulates (runc's list).
const PROC_FILES_MOUNTABLE: [&str; 10] = [
    "cpuinfo",
    "diskstats",
    "meminfo",
    "stat",
    "swaps",
    "uptime",
    "loadavg",
    "slabinfo",
    "net/dev",
    "sys/kernel/ns_last_pid",
];

/// Where the fd `target` is relative to the container's /proc, if it is /proc or inside it.
fn proc_relative(root: &File, target: &OwnedFd) -> Result<Option<PathBuf>> {
    let root_path = std::fs::read_link(fd_path(root)).context("readlink the rootfs")?;
    let real = std::fs::read_link(fd_path(target)).context("readlink the destination")?;
    Ok(real
        .strip_prefix(root_path.join("proc"))
        .ok()
        .map(Path::to_path_buf))
}

/// runc's rule for mounts in /proc, checked on the fd that will be mounted on: /proc itself
/// takes only a procfs (new, or a bind of a procfs root), and inside it only the files lxcfs
/// emulates may be covered; so no mount can redirect berth's or the kernel's procfs files
/// (a bind over /proc/sys would catch sysctl writes).
fn check_proc_destination(
    root: &File,
    target: &OwnedFd,
    m: &Mount,
    bind_source: Option<&Path>,
) -> Result<()> {
    let Some(rel) = proc_relative(root, target)? else {
        return Ok(());
    };
    let dest = m.destination();
    if !rel.as_os_str().is_empty() {
        if PROC_FILES_MOUNTABLE.iter().any(|f| rel == Path::new(f)) {
            return Ok(());
        }
        bail!("{dest:?} cannot be mounted because it is inside /proc");
    }
    let Some(source) = bind_source else {
        if m.typ().as_deref() == Some("proc") {
            return Ok(());
        }
        let source = m.source().clone().unwrap_or_default();
        bail!("{source:?} cannot be mounted because it is not of type proc");
    };
    let src = File::open(source).with_context(|| format!("open {}", source.display()))?;
    let on_procfs = sys::fs_type(&src).is_ok_and(|t| t == libc::PROC_SUPER_MAGIC);
    if !on_procfs {
        bail!("{source:?} cannot be mounted because it is not of type proc");
    }
    let st = nix::sys::stat::fstat(src.as_raw_fd()).context("stat the source")?;
    if st.st_ino != 1 {
        bail!("{source:?} cannot be mounted because it is not the root of procfs");
    }
    Ok(())
}

/// An O_PATH fd reopened as a directory fd that can be read (for copying).
fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(fd_path(fd))?;
    Ok(f.into())
}

fn apply_propagation(root: &File, dest: &Path, propagation: &[MsFlags]) -> Result<()> {
    if propagation.is_empty() {
        return Ok(());
    }
    let target = paths::open_in_root(root, dest).context("reopen for propagation")?;
    for p in propagation {
        change_mount(fd_path(&target).as_str(), *p)
            .with_context(|| format!("set propagation {p:?}"))?;
    }
    Ok(())
}

/// A `cgroup` mount: the container's own cgroup directories bound under a tmpfs, one per v1
/// hierarchy named as on the host (the layout runc gives), or the single cgroup2 directory on
/// a v2 host.
fn mount_cgroup(
    ctx: &RootfsContext,
    root: &File,
    dest: &Path,
    opts: &options::MountOptions,
) -> Result<()> {
    let bind_flags = opts.flags
        & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let dirs = ctx.cgroup.map_or(&[][..], |p| &p.dirs);
    let target = paths::create_in_root(root, dest, Kind::Dir)?;
    if proc_relative(root, &target)?.is_some() {
        bail!("{:?} cannot be mounted because it is inside /proc", dest);
    }
    if let Some(cgroup) = ctx.cgroup.filter(|p| p.is_v2()) {
        return bind_cgroup_dir(root, &cgroup.dirs[0].path, dest, bind_flags);
    }
    let tmpfs_flags = opts.flags & !MsFlags::MS_RDONLY;
    mount(
        Some("tmpfs"),
        fd_path(&target).as_str(),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .context("mount tmpfs for the cgroup hierarchies")?;
    let mut binds = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let Some(name) = dir.mount_point.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let bind = dest.join(name);
        bind_cgroup_dir(root, &dir.path, &bind, MsFlags::empty())?;
        binds.push((&dir.path, bind));
        // Co-mounted controllers ("cpu,cpuacct") are also reachable by each name.
        if name.contains(',') {
            for single in name.split(',') {
                let link = paths::open_in_root(root, dest).context("open cgroup mount")?;
                let _ = nix::unistd::symlinkat(
                    name,
                    Some(std::os::fd::AsRawFd::as_raw_fd(&link)),
                    single,
                );
            }
        }
    }
    // The flags go on the tmpfs and every bind below it in one call (mount_setattr, Linux
    // 5.12) rather than a remount each: one syscall instead of a lookup and a remount per
    // hierarchy. The tmpfs already has all but read-only.
    let tmpfs = paths::open_in_root(root, dest).context("reopen cgroup tmpfs")?;
    match crate::sys::mount_setattr(&tmpfs, mount_attrs(bind_flags), 0, true) {
        Err(Errno::ENOSYS) => {}
        r => return r.context("set the cgroup mounts' flags"),
    }
    for (dir, bind) in &binds {
        bind_cgroup_dir_flags(root, dir, bind, bind_flags)?;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            fd_path(&tmpfs).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags,
            Some("mode=755"),
        )
        .context("remount the cgroup tmpfs read-only")?;
    }
    Ok(())
}

/// MOUNT_ATTR_* bits for the per-mount MS_* flags among RDONLY, NOSUID, NODEV and NOEXEC.
fn mount_attrs(flags: MsFlags) -> u64 {
    [
        (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(ms, _)| flags.contains(*ms))
    .fold(0, |attrs, (_, attr)| attrs | attr)
}

fn bind_cgroup_dir(root: &File, source: &Path, dest: &Path, flags: MsFlags) -> Result<()> {
    let target = paths::create_in_root(root, dest, Kind::Dir)?;
    mount(
        Some(source),
        fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind cgroup {}", source.display()))?;
    bind_cgroup_dir_flags(root, source, dest, flags)
}

/// Remounts the cgroup bind at `dest` with `flags`, if any.
fn bind_cgroup_dir_flags(root: &File, source: &Path, dest: &Path, flags: MsFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    // The bind covers the old dentry: remount through a fresh lookup.
    let target = paths::open_in_root(root, dest).context("reopen cgroup bind")?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    change_mount(fd_path(&target).as_str(), flags)
        .with_context(|| format!("remount cgroup {}", source.display()))
}

/// The flags of the mount at `path` that a bind remount must keep where the kernel locked
/// them (in a user namespace), as statfs shows them: strictatime where no other atime is.
fn locked_flags(path: &str) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    // MS_STRICTATIME is no flag of the mount's: it is what neither noatime nor relatime is.
    if !out.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        out |= MsFlags::MS_STRICTATIME;
    }
    out
}

/// pivot_root into the rootfs and detach the old root, as runc does: pivot onto itself and
/// unmount the old root from under the new one, so no directory for it is needed.
fn switch_root(rootfs: &Path) -> Result<()> {
    let old_root: OwnedFd = File::open("/").context("open old root")?.into();
    let new_root: OwnedFd = File::open(rootfs).context("open new root")?.into();
    fchdir(new_root.as_raw_fd()).context("chdir to the rootfs")?;
    pivot_root(".", ".").context("pivot_root")?;
    fchdir(old_root.as_raw_fd()).context("chdir to the old root")?;
    // The old root must not propagate its unmount to the host.
    change_mount(".", MsFlags::MS_SLAVE | MsFlags::MS_REC).context("make the old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    chdir("/").context("chdir to the new root")
}

/// `--no-pivot`: move the rootfs over / and chroot into it (for roots on ramfs).
fn move_root(rootfs: &Path) -> Result<()> {
    hide_host_proc_and_sys(rootfs)?;
    chdir(rootfs).context("chdir to the rootfs")?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .context("move the rootfs to /")?;
    chroot(".").context("chroot into the rootfs")?;
    chdir("/").context("chdir to the new root")
}

/// Before `--no-pivot`'s chroot, as runc: the host's mounts stay in this mount namespace
/// under the chroot, and a full procfs or sysfs among them lets a user namespace in the
/// container mount a fresh one (the kernel allows that only where one is fully visible),
/// e.g. a procfs with a writable `/proc/sysrq-trigger`. Each one outside the rootfs is
/// detached, or covered by an empty tmpfs where it cannot be.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    for m in mount_infos()?.iter() {
        let path = PathBuf::from(sys::unescape_mountinfo(&m.mount_point.to_string_lossy()));
        let full = m.root == "/" && (m.fs_type == "proc" || m.fs_type == "sysfs");
        if !full || path.starts_with(rootfs) {
            continue;
        }
        // Detaching it must not reach the host (the mount may be shared with it).
        match change_mount(&path, MsFlags::MS_SLAVE | MsFlags::MS_REC) {
            // Gone with a mount above it that was detached already.
            Err(Errno::ENOENT) => continue,
            r => r.with_context(|| format!("--no-pivot: make {} a slave", path.display()))?,
        }
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::EPERM) => mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .with_context(|| format!("--no-pivot: cover the host's {}", path.display()))?,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("--no-pivot: detach the host's {}", path.display()))
            }
        }
    }
    Ok(())
}

/// A read-only bind of `path` (and everything mounted below it) over itself, made on a
/// detached copy of the mount and moved onto the fd that was opened.
fn make_readonly(root: &OwnedFd, path: &Path) -> Result<()> {
    let target = match paths::open_in_root(root, path) {
        Err(Errno::ENOENT) => return Ok(()),
        r => r.context("open")?,
    };
    let copy = sys::clone_mount(&target, true).context("open_tree (clone the mount)")?;
    sys::mount_setattr(&copy, libc::MOUNT_ATTR_RDONLY, 0, true).context("make it read-only")?;
    sys::move_mount_onto(&copy, &target).context("move_mount onto the path")
}

/// What masking needs once per container: the null device (opened and checked once) and
/// the read-only tmpfs that covers masked directories (one, bound wherever it is needed).
#[derive(Default)]
struct Masks {
    null: Option<OwnedFd>,
    /// The tmpfs, and whether it is in place yet: the first directory gets the detached
    /// mount itself, the others a bind of it (older kernels clone only attached mounts).
    empty_dir: Option<(OwnedFd, bool)>,
}

impl Masks {
    /// Covers a directory with the empty read-only tmpfs, anything else with /dev/null.
    fn mask(&mut self, root: &OwnedFd, path: &Path) -> Result<()> {
        let target = match paths::open_in_root(root, path) {
            Err(Errno::ENOENT) => return Ok(()),
            r => r.context("open")?,
        };
        let st = nix::sys::stat::fstat(target.as_raw_fd()).context("stat")?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
            if self.null.is_none() {
                self.null = Some(devices::open_null(root)?);
            }
            let null = self.null.as_ref().expect("set above");
            let copy = sys::clone_mount(null, false).context("open_tree /dev/null")?;
            return sys::move_mount_onto(&copy, &target).context("mount /dev/null over it");
        }
        let (tmpfs, placed) = match self.empty_dir.take() {
            Some(t) => t,
            None => {
                let attrs = libc::MOUNT_ATTR_RDONLY
                    | libc::MOUNT_ATTR_NOSUID
                    | libc::MOUNT_ATTR_NODEV
                    | libc::MOUNT_ATTR_NOEXEC;
                let tmpfs =
                    sys::new_detached_mount("tmpfs", &[sys::FsParam::Str("mode", "755")], attrs)
                        .context("a read-only tmpfs for masked directories")?;
                (tmpfs, false)
            }
        };
        let moved = match placed {
            true => sys::clone_mount(&tmpfs, false)
                .context("open_tree the masking tmpfs")
                .and_then(|copy| Ok(sys::move_mount_onto(&copy, &target)?)),
            false => Ok(sys::move_mount_onto(&tmpfs, &target)?),
        };
        self.empty_dir = Some((tmpfs, placed || moved.is_ok()));
        moved.context("mount the read-only tmpfs over it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(sys::unescape_mountinfo("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(sys::unescape_mountinfo("/back\\134slash"), "/back\\slash");
        // Not an escape the kernel writes: left as it is.
        assert_eq!(
            sys::unescape_mountinfo("/x\\9y\\777\\04"),
            "/x\\9y\\777\\04"
        );
    }
}

//! Cgroup placement: where the container's cgroup lives on each mounted hierarchy, creating it,
//! joining it and removing it. Works on v1, v2 and hybrid hosts (v1 controllers plus a cgroup2
//! mount at /sys/fs/cgroup/unified, which runc treats as v1 for the bound controllers).
//! Resource limits are written by a later module on top of these directories.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

pub mod bpf_devices;
pub mod freezer;
pub mod resources;
pub mod stats;
pub mod systemd;

use anyhow::{bail, Context, Result};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mount_point: PathBuf,
    /// Which cgroup of the hierarchy is mounted there (not "/" inside a cgroup namespace).
    pub mount_root: PathBuf,
    /// The v1 controllers (e.g. "memory", "cpu,cpuacct", "name=systemd"), empty for cgroup2.
    pub controllers: String,
}

impl Hierarchy {
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// The mounted hierarchies, from the mountinfo text of the process.
pub fn parse_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next();
        if !matches!(fstype, Some("cgroup" | "cgroup2")) {
            continue;
        }
        let mut pre = pre.split(' ').skip(3);
        let (Some(root), Some(mnt)) = (pre.next(), pre.next()) else {
            continue;
        };
        let controllers = match fstype {
            Some("cgroup2") => String::new(),
            _ => post
                .nth(1)
                .map(|opts| {
                    opts.split(',')
                        .filter(|o| {
                            !matches!(*o, "rw" | "ro") && !o.contains("xattr") && *o != "noprefix"
                        })
                        .filter(|o| {
                            !o.starts_with("release_agent") && !o.starts_with("clone_children")
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        };
        let mount_point = PathBuf::from(unescape(mnt));
        // A hierarchy mounted twice (bind mounts) counts once.
        if out
            .iter()
            .any(|h| h.controllers == controllers && h.is_v2() == controllers.is_empty())
        {
            continue;
        }
        out.push(Hierarchy {
            mount_point,
            mount_root: PathBuf::from(unescape(root)),
            controllers,
        });
    }
    out
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The cgroup of this process on `h`, from /proc/self/cgroup text.
pub fn own_cgroup(proc_cgroup: &str, h: &Hierarchy) -> PathBuf {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        if (h.is_v2() && ctrls.is_empty()) || (!h.is_v2() && ctrls == h.controllers) {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

/// Rejects cgroup paths that would climb out of the hierarchy.
fn check_path(path: &Path) -> Result<()> {
    if path.components().any(|c| c == Component::ParentDir) {
        bail!(
            "linux.cgroupsPath: {} must not contain \"..\"",
            path.display()
        );
    }
    Ok(())
}

/// The container's cgroup directory on each hierarchy. `cgroups_path` absolute is taken from
/// the hierarchy root; relative is taken from berth's own cgroup (as runc); unset is `/<id>`.
pub fn resolve_dirs(
    cgroups_path: Option<&Path>,
    id: &str,
    hierarchies: &[Hierarchy],
    proc_cgroup: &str,
) -> Result<Vec<PathBuf>> {
    let default = PathBuf::from("/").join(id);
    let path = cgroups_path
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(&default);
    check_path(path)?;
    if hierarchies.is_empty() {
        bail!("no cgroup hierarchy is mounted (looked for cgroup and cgroup2 in /proc/self/mountinfo)");
    }
    Ok(placed(hierarchies)
        .map(|h| {
            let abs = if path.is_absolute() {
                path.to_path_buf()
            } else {
                own_cgroup(proc_cgroup, h).join(path)
            };
            let rel = abs.strip_prefix(&h.mount_root).unwrap_or(&abs);
            let rel = rel.strip_prefix("/").unwrap_or(rel);
            h.mount_point.join(rel)
        })
        .collect())
}

/// The hierarchies a container gets a directory on, in the order of `resolve_dirs`: every
/// one on a v1 or pure v2 host; on a hybrid one the v1 ones and the unified cgroup2 one.
fn placed(hierarchies: &[Hierarchy]) -> impl Iterator<Item = &Hierarchy> {
    let v2_only = hierarchies.len() == 1 && hierarchies[0].is_v2();
    hierarchies
        .iter()
        .filter(move |h| v2_only || !h.is_v2() || h.mount_point.ends_with("unified"))
}

/// The cgroup directories of a container about to be created on this host with this
/// config. A placement that is frozen is refused here (`freezer::check_not_frozen`): only
/// the hierarchies that can freeze are looked at (the v1 freezer, cgroup2), below their
/// mount points (a hierarchy's root cannot be frozen), so the usual new cgroup costs one
/// stat on each of them.
pub fn dirs_for(cgroups_path: Option<&Path>, id: &str) -> Result<Vec<PathBuf>> {
    let mountinfo =
        crate::sys::read_virtual("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let proc_cgroup =
        crate::sys::read_virtual("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let hierarchies = parse_hierarchies(&mountinfo);
    let dirs = resolve_dirs(cgroups_path, id, &hierarchies, &proc_cgroup)?;
    freezer::check_not_frozen(
        placed(&hierarchies)
            .zip(&dirs)
            .filter(|(h, _)| h.is_v2() || h.controllers.split(',').any(|c| c == "freezer"))
            .map(|(h, dir)| (dir.as_path(), h.mount_point.as_path())),
    )?;
    Ok(dirs)
}

/// Creates each directory (and missing parents).
pub fn create(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        fs::create_dir_all(d).with_context(|| format!("create cgroup {}", d.display()))?;
        fill_cpuset(d)?;
    }
    if is_v2(dirs) {
        enable_controllers(&dirs[0]);
    }
    Ok(())
}

/// On v2 a cgroup has a controller's files only if every ancestor delegates it: enable what
/// each level offers in its subtree_control, top-down, as runc does. A level that refuses
/// (it holds processes itself) is left as is; a limit that then lacks its file fails by name.
fn enable_controllers(dir: &Path) {
    let mut levels: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.join("cgroup.subtree_control").exists())
        .collect();
    levels.reverse();
    for level in levels {
        let offered =
            crate::sys::read_virtual(level.join("cgroup.controllers")).unwrap_or_default();
        let enabled =
            crate::sys::read_virtual(level.join("cgroup.subtree_control")).unwrap_or_default();
        for ctrl in offered.split_whitespace() {
            if enabled.split_whitespace().any(|e| e == ctrl) {
                continue;
            }
            let file = level.join("cgroup.subtree_control");
            if let Err(e) = crate::sys::write_file(&file, &format!("+{ctrl}")) {
                log::debug!("enable {ctrl} in {}: {e:#}", file.display());
            }
        }
    }
}

/// A new v1 cpuset cgroup starts with no cpus or mems, and no process can join it; inherit
/// them from the parent, top-down, as runc does. (A v2 cgroup with empty cpuset files uses its
/// parent's effective set, and the v2 root has no cpuset.cpus to copy.)
fn fill_cpuset(dir: &Path) -> Result<()> {
    // Read rather than stat first: a dir of another hierarchy costs one failed open.
    if fill_cpuset_file(dir, "cpuset.cpus")?.is_some() {
        fill_cpuset_file(dir, "cpuset.mems")?;
    }
    Ok(())
}

/// The value `dir/file` now has, copied from the parent (filled first) when empty; `None`
/// when `dir` is no v1 cpuset cgroup.
fn fill_cpuset_file(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    let current = match crate::sys::read_virtual(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    if !current.is_empty() {
        return Ok(Some(current));
    }
    if dir.join("cgroup.controllers").exists() {
        return Ok(None); // v2: empty means the parent's
    }
    let value = dir
        .parent()
        .map(|parent| fill_cpuset_file(parent, file))
        .transpose()?
        .flatten()
        .with_context(|| format!("{}: empty, and no parent to copy it from", path.display()))?;
    crate::sys::write_file(&path, &value)?;
    Ok(Some(value))
}

/// Whether creating a cgroup failed because this user may not write the tree.
pub fn is_permission_denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            )
        })
    })
}

/// Whether `dirs` is a pure cgroup v2 placement (one cgroup2 directory): the v2 file names
/// and conversions apply. A hybrid host's cgroup2 directory sits beside v1 ones.
pub fn is_v2(dirs: &[PathBuf]) -> bool {
    dirs.len() == 1 && v2_dir(dirs).is_some()
}

/// Whether `dirs` will be a pure cgroup v2 placement, also before the directory exists:
/// one directory, on a cgroup2 filesystem (as its nearest existing ancestor is).
pub fn is_v2_placement(dirs: &[PathBuf]) -> bool {
    let [dir] = dirs else {
        return false;
    };
    dir.ancestors().find(|a| a.exists()).is_some_and(|a| {
        nix::sys::statfs::statfs(a)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
    })
}

/// Writes `linux.resources` and the device rules of a new container. A rootless container in
/// a delegated v2 tree may not load an eBPF device filter; as runc, it then goes without one
/// (it cannot create device nodes anyway).
pub fn apply_resources(
    dirs: &[PathBuf],
    spec: &oci_spec::runtime::Spec,
    rootless: bool,
) -> Result<()> {
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        resources::apply(dirs, r, false)?;
    }
    match resources::apply_devices(dirs, &resources::device_rules(spec)) {
        Err(e) if rootless && is_permission_denied(&e) => {
            log::debug!("rootless: no device filter: {e:#}");
            Ok(())
        }
        other => other,
    }
}

/// SIGKILLs every process in the cgroup tree at once through cgroup v2's cgroup.kill (Linux
/// 5.14), which no fork can race. Returns false when this placement has no cgroup.kill.
pub fn kill_via_cgroup_kill(dirs: &[PathBuf]) -> Result<bool> {
    if !is_v2(dirs) {
        return Ok(false);
    }
    let file = dirs[0].join("cgroup.kill");
    if !file.exists() {
        return Ok(false);
    }
    match crate::sys::write_file(&file, "1") {
        // Gone since: systemd removed the scope's cgroup when its last process died.
        Err(e) if !dirs[0].exists() => log::debug!("{e:#}"),
        r => r?,
    }
    Ok(true)
}

/// Moves the calling process, which must be single-threaded (berth's are), into `dirs`;
/// `born_in`: the index of the cgroup2 directory it was cloned into already. Done before any
/// namespace is created, so the container's cgroup namespace is rooted at its own cgroup.
///
/// On v1 this writes "0" to `tasks`, moving the calling thread alone, rather than to
/// `cgroup.procs`: moving a whole thread group write-locks the kernel's global
/// cgroup_threadgroup_rwsem, which waits for an RCU grace period (several ms, on every
/// container), while moving the current thread needs no such lock. For a single-threaded
/// process the effect is the same. cgroup2 has no `tasks` file (and refuses to move a thread
/// alone to another domain); there it is `cgroup.procs`, or better clone3 (`v2_dir`).
pub fn join_self(dirs: &[PathBuf], born_in: Option<usize>) -> Result<()> {
    use std::io::Write;
    for (i, d) in dirs.iter().enumerate() {
        if Some(i) == born_in {
            continue;
        }
        let tasks = d.join("tasks");
        match fs::OpenOptions::new().write(true).open(&tasks) {
            Ok(mut f) => f
                .write_all(b"0")
                .with_context(|| format!("write \"0\" to {}", tasks.display()))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                crate::sys::write_file(&d.join("cgroup.procs"), "0")?
            }
            Err(e) => return Err(e).with_context(|| format!("open {}", tasks.display())),
        }
    }
    Ok(())
}

/// The cgroup2 directory among `dirs`: the only one on a v2 host, the unified hierarchy's
/// on a hybrid host (mounted last, so looked for from the end), none on a v1 host.
pub fn v2_dir(dirs: &[PathBuf]) -> Option<usize> {
    dirs.iter()
        .rposition(|d| d.join("cgroup.controllers").exists())
}

/// Host pids of every process in the container's cgroup and its sub-cgroups, on every
/// hierarchy (on v1 a process may have been moved on one hierarchy only).
pub fn pids(dirs: &[PathBuf]) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    for dir in dirs {
        collect_pids(dir, &mut out)?;
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match crate::sys::read_virtual(&procs) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", procs.display())),
    }
    if !has_subdirs(dir)? {
        return Ok(());
    }
    // A cgroup may go while it is listed: systemd removes a scope's cgroup once its last
    // process has died, and the container may remove its own sub-cgroups.
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_ok_and(|t| t.is_dir()) => {
                collect_pids(&entry.path(), out)?
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
        }
    }
    Ok(())
}

/// Whether a cgroup directory has sub-cgroups: cgroupfs (kernfs) keeps a directory's link
/// count at 2 + its subdirectories, so one stat spares listing every leaf.
fn has_subdirs(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(dir) {
        Ok(m) => Ok(m.nlink() > 2),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("stat {}", dir.display())),
    }
}

/// Removes each directory and any sub-cgroups the container made, deepest first. The caller
/// has made sure no process is left in them. A directory already gone is fine.
pub fn remove(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        remove_tree(d)?;
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<()> {
    // Most containers make no sub-cgroups: try the rmdir alone first (EBUSY when there are).
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read cgroup {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove cgroup {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2: &str = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    const SELF: &str = "4:memory:/process_api/abc\n1:cpu:/\n9:name=systemd:/\n0::/\n";

    #[test]
    fn parses_hybrid_layout() {
        let h = parse_hierarchies(HYBRID);
        let names: Vec<_> = h.iter().map(|h| h.controllers.as_str()).collect();
        assert_eq!(names, ["cpu", "memory", "name=systemd", ""]);
        assert_eq!(h[1].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn absolute_relative_and_default_paths() {
        let h = parse_hierarchies(HYBRID);
        let abs = resolve_dirs(Some(Path::new("/a/b")), "c1", &h, SELF).unwrap();
        assert_eq!(abs[1], PathBuf::from("/sys/fs/cgroup/memory/a/b"));
        assert_eq!(abs[3], PathBuf::from("/sys/fs/cgroup/unified/a/b"));
        let rel = resolve_dirs(Some(Path::new("a/b")), "c1", &h, SELF).unwrap();
        assert_eq!(rel[0], PathBuf::from("/sys/fs/cgroup/cpu/a/b"));
        assert_eq!(
            rel[1],
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/a/b")
        );
        let def = resolve_dirs(None, "c1", &h, SELF).unwrap();
        assert_eq!(def[2], PathBuf::from("/sys/fs/cgroup/systemd/c1"));
    }

    #[test]
    fn pure_v2() {
        let h = parse_hierarchies(V2);
        let d = resolve_dirs(Some(Path::new("/x")), "c", &h, "0::/user.slice\n").unwrap();
        assert_eq!(d, vec![PathBuf::from("/sys/fs/cgroup/x")]);
        let d = resolve_dirs(Some(Path::new("x")), "c", &h, "0::/user.slice\n").unwrap();
        assert_eq!(d, vec![PathBuf::from("/sys/fs/cgroup/user.slice/x")]);
    }

    #[test]
    fn mount_root_is_stripped_inside_a_cgroup_namespace() {
        let mi = "30 23 0:26 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = parse_hierarchies(mi);
        let d = resolve_dirs(Some(Path::new("in")), "c", &h, "0::/outer/me\n").unwrap();
        assert_eq!(d, vec![PathBuf::from("/sys/fs/cgroup/me/in")]);
    }

    #[test]
    fn dotdot_is_rejected() {
        let h = parse_hierarchies(V2);
        let e = resolve_dirs(Some(Path::new("/a/../../etc")), "c", &h, "").unwrap_err();
        assert!(e.to_string().contains("linux.cgroupsPath"), "{e}");
    }
}

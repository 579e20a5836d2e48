//! The container's cgroup: its `Placement` on the host's mounted hierarchies, worked out
//! once at create, and everything done to it as a whole (create, join, list, kill, release).
//! Works on v1, v2 and hybrid hosts (v1 controllers plus a cgroup2 mount at
//! /sys/fs/cgroup/unified, which runc treats as v1 for the bound controllers), made by berth
//! or by systemd. Resource limits, the freezer and statistics are its submodules.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

mod busctl;
pub mod devices;
pub mod exec_cgroup;
pub mod freezer;
pub mod placement;
pub mod resources;
pub mod stats;
pub mod systemd;

use anyhow::{bail, Context, Result};
pub use placement::{Dir, Driver, Layout, Placement};

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

/// The mounted hierarchies, from the mountinfo text of the process. Hand-written: create
/// reads mountinfo on every container, and procfs-core's parser (two maps a line, no
/// unescaping of paths) took 8x as long here, growing with the host's mounts.
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
        let mount_point = PathBuf::from(crate::sys::unescape_mountinfo(mnt));
        // A hierarchy mounted twice (bind mounts) counts once.
        if out
            .iter()
            .any(|h| h.controllers == controllers && h.is_v2() == controllers.is_empty())
        {
            continue;
        }
        out.push(Hierarchy {
            mount_point,
            mount_root: PathBuf::from(crate::sys::unescape_mountinfo(root)),
            controllers,
        });
    }
    out
}

/// The cgroups of a process, from its /proc/PID/cgroup text (procfs-core's parser); none
/// from text that does not parse.
fn process_cgroups(proc_cgroup: &str) -> Vec<procfs_core::ProcessCGroup> {
    use procfs_core::FromBufRead;
    procfs_core::ProcessCGroups::from_buf_read(proc_cgroup.as_bytes())
        .map(|c| c.0)
        .unwrap_or_default()
}

/// The cgroup of this process on `h`, from /proc/self/cgroup text.
pub fn own_cgroup(proc_cgroup: &str, h: &Hierarchy) -> PathBuf {
    process_cgroups(proc_cgroup)
        .into_iter()
        .find(|c| match h.is_v2() {
            true => c.hierarchy == 0 && c.controllers.is_empty(),
            false => c.controllers.join(",") == h.controllers,
        })
        .map_or_else(|| PathBuf::from("/"), |c| PathBuf::from(c.pathname))
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

/// The container's placement on this host's hierarchies, made by `driver`. `cgroups_path`
/// absolute is taken from the hierarchy root; relative is taken from berth's own cgroup (as
/// runc); unset is `/<id>`. The cgroup2 directory's controllers are left empty here
/// (`placement_for` reads them from the host).
pub fn resolve(
    cgroups_path: Option<&Path>,
    id: &str,
    hierarchies: &[Hierarchy],
    proc_cgroup: &str,
    driver: Driver,
) -> Result<Placement> {
    let default = PathBuf::from("/").join(id);
    let path = cgroups_path
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(&default);
    check_path(path)?;
    if hierarchies.is_empty() {
        bail!("no cgroup hierarchy is mounted (looked for cgroup and cgroup2 in /proc/self/mountinfo)");
    }
    let dirs: Vec<Dir> = placed(hierarchies)
        .map(|h| {
            let abs = if path.is_absolute() {
                path.to_path_buf()
            } else {
                own_cgroup(proc_cgroup, h).join(path)
            };
            let rel = abs.strip_prefix(&h.mount_root).unwrap_or(&abs);
            let rel = rel.strip_prefix("/").unwrap_or(rel);
            Dir {
                path: h.mount_point.join(rel),
                mount_point: h.mount_point.clone(),
                controllers: h
                    .controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
                v2: h.is_v2(),
            }
        })
        .collect();
    let layout = match (dirs.iter().any(|d| d.v2), dirs.iter().any(|d| !d.v2)) {
        (true, false) => Layout::V2,
        (true, true) => Layout::Hybrid,
        _ => Layout::V1,
    };
    Ok(Placement {
        layout,
        driver,
        dirs,
    })
}

/// Whether /sys/fs/cgroup is cgroup2 itself (a pure v2 host), as runc tells it.
pub fn host_is_unified() -> bool {
    std::fs::File::open("/sys/fs/cgroup")
        .is_ok_and(|f| crate::sys::fs_type(&f).is_ok_and(|t| t == libc::CGROUP2_SUPER_MAGIC))
}

/// The hierarchies a container gets a directory on, in the order of `resolve`: every one on
/// a v1 or pure v2 host; on a hybrid one the v1 ones and the unified cgroup2 one.
fn placed(hierarchies: &[Hierarchy]) -> impl Iterator<Item = &Hierarchy> {
    let v2_only = hierarchies.len() == 1 && hierarchies[0].is_v2();
    hierarchies
        .iter()
        .filter(move |h| v2_only || !h.is_v2() || h.mount_point.ends_with("unified"))
}

/// The placement of a container about to be created on this host with this config. One
/// that is frozen is refused here (`freezer::check_not_frozen`): only the hierarchies that
/// can freeze are looked at (the v1 freezer, cgroup2), below their mount points (a
/// hierarchy's root cannot be frozen), so the usual new cgroup costs one stat on each.
pub fn placement_for(cgroups_path: Option<&Path>, id: &str, driver: Driver) -> Result<Placement> {
    let mountinfo =
        crate::sys::read_virtual("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let proc_cgroup =
        crate::sys::read_virtual("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let hierarchies = parse_hierarchies(&mountinfo);
    let mut placement = resolve(cgroups_path, id, &hierarchies, &proc_cgroup, driver)?;
    for dir in placement.dirs.iter_mut().filter(|d| d.v2) {
        // (Unreadable: then no controller is known to be bound there, which only a hybrid
        // host's lookups consult.)
        let file = dir.mount_point.join("cgroup.controllers");
        let offered = crate::sys::read_virtual(&file)
            .map_err(|e| log::debug!("read {}: {e}", file.display()))
            .unwrap_or_default();
        dir.controllers = offered.split_whitespace().map(String::from).collect();
    }
    freezer::check_not_frozen(
        placement
            .dirs
            .iter()
            .filter(|d| d.v2 || d.controllers.iter().any(|c| c == "freezer"))
            .map(|d| (d.path.as_path(), d.mount_point.as_path())),
    )?;
    check_empty(&placement)?;
    Ok(placement)
}

/// As runc: a container may not be created into a cgroup that already holds processes
/// (another container's, say), which it would then share limits with and kill on delete.
/// Like runc, one hierarchy is looked at (the devices one on v1, else the first), with
/// everything below it; a cgroup that does not exist yet costs one failed open.
fn check_empty(placement: &Placement) -> Result<()> {
    let dir = placement
        .dir_of("devices")
        .filter(|d| !d.v2)
        .or(placement.dirs.first());
    let Some(dir) = dir else {
        return Ok(());
    };
    let mut pids = Vec::new();
    collect_pids(&dir.path, &mut pids)?;
    if !pids.is_empty() {
        bail!(
            "container's cgroup is not empty: {} process(es) found",
            pids.len()
        );
    }
    Ok(())
}

/// Whether creating a cgroup failed because this user may not write the tree.
pub fn is_permission_denied(e: &anyhow::Error) -> bool {
    matches!(
        crate::channel::errno_of(e),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    )
}

impl Placement {
    /// Creates each directory (and missing parents).
    pub fn create(&self) -> Result<()> {
        for d in &self.dirs {
            fs::create_dir_all(&d.path)
                .with_context(|| format!("create cgroup {}", d.path.display()))?;
            if !d.v2 && d.controllers.iter().any(|c| c == "cpuset") {
                fill_cpuset(&d.path)?;
            }
        }
        if self.is_v2() {
            enable_controllers(&self.dirs[0].path);
        }
        Ok(())
    }

    /// Writes `linux.resources` and the device rules of a new container. A rootless
    /// container in a delegated v2 tree may not load an eBPF device filter; as runc, it then
    /// goes without one (it cannot create device nodes anyway).
    pub fn apply_resources(&self, spec: &oci_spec::runtime::Spec, rootless: bool) -> Result<()> {
        if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            let mut r = r.clone();
            r.set_pids(None);
            resources::apply(self, &r, false)?;
        }
        match resources::apply_devices(self, &resources::device_rules(spec)) {
            Err(e) if rootless && is_permission_denied(&e) => {
                log::debug!("rootless: no device filter: {e:#}");
                Ok(())
            }
            other => other,
        }
    }

    /// `linux.resources.pids`, written by `create` once init waits at the start gate and the
    /// joiner is gone (as runc sets limits at procReady): while init is forked both
    /// are in the cgroup, so a limit of 1 (what 0 means) would refuse init itself. Nothing of
    /// the container's has run yet.
    pub fn apply_pids_limit(&self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        match pids_only(spec) {
            Some(r) => resources::apply(self, &r, false),
            None => Ok(()),
        }
    }

    /// Moves the calling process, which must be single-threaded (berth's are), into every
    /// directory; `born_in`: the index of the cgroup2 directory it was cloned into already.
    /// Done before any namespace is created, so the container's cgroup namespace is rooted
    /// at its own cgroup.
    ///
    /// On v1 this writes "0" to `tasks`, moving the calling thread alone, rather than to
    /// `cgroup.procs`: moving a whole thread group write-locks the kernel's global
    /// cgroup_threadgroup_rwsem, which waits for an RCU grace period (several ms, on every
    /// container), while moving the current thread needs no such lock. For a
    /// single-threaded process the effect is the same. cgroup2 has no `tasks` file (and
    /// refuses to move a thread alone to another domain); there it is `cgroup.procs`, or
    /// better clone3 (`v2_index`).
    pub fn join_self(&self, born_in: Option<usize>) -> Result<()> {
        use std::io::Write;
        for (i, d) in self.dirs.iter().enumerate() {
            if Some(i) == born_in {
                continue;
            }
            if d.v2 {
                crate::sys::write_file(&d.path.join("cgroup.procs"), "0")?;
                continue;
            }
            let tasks = d.path.join("tasks");
            fs::OpenOptions::new()
                .write(true)
                .open(&tasks)
                .and_then(|mut f| f.write_all(b"0"))
                .with_context(|| format!("write \"0\" to {}", tasks.display()))?;
        }
        Ok(())
    }

    /// Moves process `pid`, with all its threads, into every directory (CRIU, for it to
    /// restore the container's processes there).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        self.paths()
            .try_for_each(|d| crate::sys::write_file(&d.join("cgroup.procs"), &pid.to_string()))
    }

    /// Host pids of every process in the container's cgroup and its sub-cgroups, on every
    /// hierarchy (on v1 a process may have been moved on one hierarchy only).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        for dir in self.paths() {
            collect_pids(dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// A pidfd of `pid` if that process is in the container's cgroup tree. Opened first, then
    /// checked: a pid read from cgroup.procs may have exited and been taken by a host process
    /// since (pid_max is 32768 on small hosts), and the pidfd names the process the check saw.
    pub fn pidfd_of_member(&self, pid: i32) -> Option<std::os::fd::OwnedFd> {
        let fd = crate::sys::pidfd_open(nix::unistd::Pid::from_raw(pid)).ok()?;
        let text = crate::sys::read_virtual(format!("/proc/{pid}/cgroup")).ok()?;
        self.holds(&text).then_some(fd)
    }

    /// Whether a process with this /proc/PID/cgroup text is in one of the container's
    /// directories or below. Matched by the directory's path under its mount, at the end of
    /// the process's path or of one of its ancestors: where the hierarchy's mount is a
    /// subtree (a cgroup namespace, or a bind of one cgroup) the kernel's path is longer.
    fn holds(&self, proc_cgroup: &str) -> bool {
        let relative: Vec<&Path> = self
            .dirs
            .iter()
            .filter_map(|d| d.path.strip_prefix(&d.mount_point).ok())
            .filter(|r| !r.as_os_str().is_empty())
            .collect();
        process_cgroups(proc_cgroup).iter().any(|c| {
            Path::new(&c.pathname)
                .ancestors()
                .any(|a| relative.iter().any(|r| a.ends_with(r)))
        })
    }

    /// SIGKILLs every process in the cgroup tree at once through cgroup v2's cgroup.kill
    /// (Linux 5.14), which no fork can race. Returns false when this placement has no
    /// cgroup.kill.
    pub fn kill_via_cgroup_kill(&self) -> Result<bool> {
        if !self.is_v2() {
            return Ok(false);
        }
        let dir = &self.dirs[0].path;
        let file = dir.join("cgroup.kill");
        if !file.exists() {
            return Ok(false);
        }
        match fs::write(&file, "1") {
            // Gone since: systemd removed the scope's cgroup when its last process died.
            Err(e) if is_gone(&e) => log::debug!("write {}: {e}", file.display()),
            r => r.with_context(|| format!("write \"1\" to {}", file.display()))?,
        }
        Ok(true)
    }

    /// SIGKILLs every process in the cgroup and waits until each has exited. Repeats while
    /// new ones appear (a fork racing the kill), a bounded number of times.
    pub fn kill_all(&self) -> Result<()> {
        for _ in 0..100 {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            // On v2 one write kills the whole tree; the pidfds below then only wait.
            let killed_all = self.kill_via_cgroup_kill()?;
            let mut fds = Vec::new();
            for pid in pids {
                if let Some(fd) = self.pidfd_of_member(pid) {
                    if killed_all {
                        fds.push(fd);
                        continue;
                    }
                    match crate::sys::pidfd_send_signal(&fd, libc::SIGKILL) {
                        Ok(()) | Err(nix::errno::Errno::ESRCH) => fds.push(fd),
                        Err(e) => bail!("kill pid {pid} in the container's cgroup: {e}"),
                    }
                }
            }
            // Frozen processes die only once thawed.
            if freezer::is_frozen(self) {
                freezer::thaw(self)?;
            }
            for fd in &fds {
                crate::sys::pidfd_wait_exit(fd)?;
            }
        }
        bail!("processes in the container's cgroup keep appearing; gave up killing them")
    }

    /// Ends the container's cgroup: with the systemd driver its processes are killed and its
    /// unit stopped (systemd would give them SIGTERM and time), then the directories go.
    pub fn release(&self) -> Result<()> {
        if let Some(unit) = self.unit() {
            self.kill_all()?;
            systemd::Systemd::connect(self.systemd_user())?.stop(unit)?;
        }
        self.remove()
    }

    /// Removes the directories, only if no process is in them (EBUSY otherwise): for a
    /// cgroup that may be another's.
    pub fn remove_if_empty(&self) -> Result<()> {
        self.paths().try_for_each(remove_tree)
    }

    /// Empties and removes the container's directories and any sub-cgroups it made, deepest
    /// first; one already gone is fine. The rmdir comes first: a cgroup with a process in it
    /// refuses (EBUSY), and only then are its processes listed and killed, so the usual empty
    /// cgroup costs no listing. A joiner orphaned by a killed `create` may join
    /// between the kill and the rmdir: then kill and try again.
    pub fn remove(&self) -> Result<()> {
        const ATTEMPTS: u32 = 10;
        for attempt in 1..=ATTEMPTS {
            match self.paths().try_for_each(remove_tree) {
                Err(e) if attempt < ATTEMPTS && is_busy(&e) => self.kill_all()?,
                r => return r,
            }
        }
        unreachable!("the last attempt returns")
    }
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
    fill_cpuset_file(dir, "cpuset.cpus")?;
    fill_cpuset_file(dir, "cpuset.mems").map(drop)
}

/// The value `dir/file` of a v1 cpuset cgroup now has, copied from the parent (filled
/// first) when empty.
fn fill_cpuset_file(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    let current = crate::sys::read_virtual(&path)
        .with_context(|| format!("read {}", path.display()))?
        .trim()
        .to_string();
    if !current.is_empty() {
        return Ok(current);
    }
    let value = dir
        .parent()
        .map(|parent| fill_cpuset_file(parent, file))
        .transpose()?
        .with_context(|| format!("{}: empty, and no parent to copy it from", path.display()))?;
    crate::sys::write_file(&path, &value)?;
    Ok(value)
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EBUSY))
    })
}

/// Whether an error says the cgroup went away while it was used: ENOENT once it is removed,
/// ENODEV from a file of one being removed (kernfs deactivates its files first). systemd
/// removes a scope's cgroup once its last process has died.
fn is_gone(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match crate::sys::read_virtual(&procs) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", procs.display())),
    }
    if !has_subdirs(dir)? {
        return Ok(());
    }
    // A cgroup may go while it is listed: systemd removes a scope's cgroup once its last
    // process has died, and the container may remove its own sub-cgroups.
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_gone(&e) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_ok_and(|t| t.is_dir()) => {
                collect_pids(&entry.path(), out)?
            }
            Ok(_) => {}
            Err(e) if is_gone(&e) => return Ok(()),
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
        Err(e) if is_gone(&e) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("stat {}", dir.display())),
    }
}

fn remove_tree(dir: &Path) -> Result<()> {
    // Most containers make no sub-cgroups: try the rmdir alone first (EBUSY when there are).
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if is_gone(&e) => return Ok(()),
        Err(_) => {}
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_gone(&e) => return Ok(()),
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
        Err(e) if is_gone(&e) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove cgroup {}", dir.display())),
    }
}

/// `linux.resources` with its pids limit alone; None when it sets none.
pub fn pids_only(spec: &oci_spec::runtime::Spec) -> Option<oci_spec::runtime::LinuxResources> {
    let pids = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| *r.pids())?;
    let mut r = oci_spec::runtime::LinuxResources::default();
    r.set_pids(Some(pids));
    Some(r)
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

    /// The directories `resolve` gives with the cgroupfs driver.
    fn dirs(path: Option<&str>, h: &[Hierarchy], own: &str) -> Vec<PathBuf> {
        let p = resolve(path.map(Path::new), "c1", h, own, Driver::Cgroupfs).unwrap();
        p.dirs.into_iter().map(|d| d.path).collect()
    }

    #[test]
    fn a_process_is_the_containers_only_in_or_below_its_directories() {
        let h = parse_hierarchies(HYBRID);
        let p = resolve(Some(Path::new("/a/c1")), "c1", &h, SELF, Driver::Cgroupfs).unwrap();
        assert!(p.holds("4:memory:/a/c1\n0::/\n"));
        assert!(p.holds("1:cpu:/a/c1/sub\n"));
        // Seen through a mount of a subtree (a nested runtime), the kernel's path is longer.
        assert!(p.holds("0::/docker/x/a/c1\n"));
        // A pid reused by a host process, elsewhere; names that only share a prefix.
        assert!(!p.holds("4:memory:/process_api/abc\n1:cpu:/\n0::/\n"));
        assert!(!p.holds("4:memory:/a/c10\n0::/a\n"));
        assert!(!p.holds(""));
    }

    #[test]
    fn absolute_relative_and_default_paths() {
        let h = parse_hierarchies(HYBRID);
        let abs = dirs(Some("/a/b"), &h, SELF);
        assert_eq!(abs[1], PathBuf::from("/sys/fs/cgroup/memory/a/b"));
        assert_eq!(abs[3], PathBuf::from("/sys/fs/cgroup/unified/a/b"));
        let rel = dirs(Some("a/b"), &h, SELF);
        assert_eq!(rel[0], PathBuf::from("/sys/fs/cgroup/cpu/a/b"));
        assert_eq!(
            rel[1],
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/a/b")
        );
        let def = dirs(None, &h, SELF);
        assert_eq!(def[2], PathBuf::from("/sys/fs/cgroup/systemd/c1"));
    }

    #[test]
    fn the_layout_and_each_hierarchys_controllers_are_typed() {
        let p = resolve(
            None,
            "c1",
            &parse_hierarchies(HYBRID),
            SELF,
            Driver::Cgroupfs,
        )
        .unwrap();
        assert_eq!(p.layout, Layout::Hybrid);
        assert_eq!(p.dirs[2].controllers, ["name=systemd"]);
        assert_eq!(
            p.dirs[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/systemd")
        );
        assert!(p.dirs[3].v2 && !p.dirs[0].v2);
        assert_eq!(
            p.dir_of("memory").unwrap().path,
            PathBuf::from("/sys/fs/cgroup/memory/c1")
        );
        let v1 = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .collect::<Vec<_>>();
        let p = resolve(
            None,
            "c",
            &parse_hierarchies(&v1.join("\n")),
            SELF,
            Driver::Cgroupfs,
        );
        assert_eq!(p.unwrap().layout, Layout::V1);
        let unit = Driver::Systemd {
            unit: "berth-c.scope".into(),
            user: false,
        };
        let p = resolve(None, "c", &parse_hierarchies(V2), "0::/\n", unit).unwrap();
        assert_eq!((p.layout, p.unit()), (Layout::V2, Some("berth-c.scope")));
    }

    #[test]
    fn pure_v2() {
        let h = parse_hierarchies(V2);
        let d = dirs(Some("/x"), &h, "0::/user.slice\n");
        assert_eq!(d, vec![PathBuf::from("/sys/fs/cgroup/x")]);
        let d = dirs(Some("x"), &h, "0::/user.slice\n");
        assert_eq!(d, vec![PathBuf::from("/sys/fs/cgroup/user.slice/x")]);
    }

    #[test]
    fn mount_root_is_stripped_inside_a_cgroup_namespace() {
        let mi = "30 23 0:26 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = parse_hierarchies(mi);
        let d = dirs(Some("in"), &h, "0::/outer/me\n");
        assert_eq!(d, vec![PathBuf::from("/sys/fs/cgroup/me/in")]);
    }

    #[test]
    fn a_cgroup_removed_while_it_is_read_counts_as_gone() {
        use std::io::Error;
        assert!(is_gone(&Error::from_raw_os_error(libc::ENODEV)));
        assert!(is_gone(&Error::from_raw_os_error(libc::ENOENT)));
        assert!(!is_gone(&Error::from_raw_os_error(libc::EACCES)));
        // Listing one that is gone finds nothing, and is no error.
        let mut pids = Vec::new();
        collect_pids(Path::new("/nonexistent/cgroup"), &mut pids).unwrap();
        assert!(pids.is_empty());
    }

    #[test]
    fn dotdot_is_rejected() {
        let h = parse_hierarchies(V2);
        let path = Some(Path::new("/a/../../etc"));
        let e = resolve(path, "c", &h, "", Driver::Cgroupfs).unwrap_err();
        assert!(e.to_string().contains("linux.cgroupsPath"), "{e}");
    }
}

//! Linux namespaces from `linux.namespaces`: which are new, which are joined by path, and the
//! order in which the child enters them.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// Order of joining by path: the user namespace first (it decides what the others may do),
/// the mount namespace last (joining it changes how later paths resolve).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The namespace configuration of a container.
#[derive(Debug, Clone)]
pub struct Namespaces {
    /// Namespaces to create, as clone flags.
    pub new: CloneFlags,
    /// Namespaces to join: type and path, in `JOIN_ORDER`.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Namespaces {
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut ns = Namespaces {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        for t in JOIN_ORDER {
            let Some(entry) = list.iter().find(|n| n.typ() == t) else {
                continue;
            };
            match entry.path() {
                Some(p) => ns.join.push((t, p.clone())),
                None => ns.new |= flag(t),
            }
        }
        ns
    }

    pub fn is_new(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t))
    }

    pub fn is_listed(&self, t: LinuxNamespaceType) -> bool {
        self.is_new(t) || self.join.iter().any(|(j, _)| *j == t)
    }

    /// PID and time namespaces apply to children only: init must be forked after entering them.
    pub fn needs_fork(&self) -> bool {
        self.is_listed(LinuxNamespaceType::Pid) || self.is_listed(LinuxNamespaceType::Time)
    }

    /// Joins the namespaces given by path, filtered by `which`.
    /// The path of the namespace of type `t` to join, if the config gives one.
    pub fn join_path(&self, t: LinuxNamespaceType) -> Option<&std::path::Path> {
        self.join
            .iter()
            .find(|(j, _)| *j == t)
            .map(|(_, p)| p.as_path())
    }

    pub fn join_paths(&self, which: impl Fn(LinuxNamespaceType) -> bool) -> Result<()> {
        for (t, path) in self.join.iter().filter(|(t, _)| which(*t)) {
            let f = File::open(path)
                .with_context(|| format!("open {t} namespace {}", path.display()))?;
            setns(f.as_fd(), flag(*t))
                .with_context(|| format!("join {t} namespace {}", path.display()))?;
        }
        Ok(())
    }

    /// As `join_paths`, but a namespace berth may not join (EPERM) is left for later; returns
    /// those it joined.
    pub fn try_join_paths(
        &self,
        which: impl Fn(LinuxNamespaceType) -> bool,
    ) -> Result<Vec<LinuxNamespaceType>> {
        let mut joined = Vec::new();
        for (t, path) in self.join.iter().filter(|(t, _)| which(*t)) {
            let f = File::open(path)
                .with_context(|| format!("open {t} namespace {}", path.display()))?;
            match setns(f.as_fd(), flag(*t)) {
                Ok(()) => joined.push(*t),
                Err(nix::errno::Errno::EPERM) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("join {t} namespace {}", path.display()))
                }
            }
        }
        Ok(joined)
    }

    /// Creates the new namespaces in `flags` (a subset of `self.new`).
    pub fn unshare(flags: CloneFlags) -> Result<()> {
        if flags.is_empty() {
            return Ok(());
        }
        unshare(flags).with_context(|| format!("unshare namespaces {flags:?}"))
    }
}

/// The namespace files under /proc/PID/ns, user first: the order in which they are joined
/// one by one where setns cannot take a pidfd.
pub const PROC_NS: [(&str, CloneFlags); 8] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// setns(2) with a pidfd: joins the namespaces in `flags` of that process, all at once.
pub fn setns_pidfd(pidfd: &OwnedFd, flags: CloneFlags) -> nix::Result<()> {
    // SAFETY: setns takes an fd and flags; no memory is passed.
    let r = unsafe { libc::setns(pidfd.as_raw_fd(), flags.bits()) };
    nix::errno::Errno::result(r).map(drop)
}

/// Joins the namespaces in `flags` of process `pid`: through its pidfd in one step (Linux
/// 5.8), else one /proc/PID/ns file at a time, the user namespace first. The pidfd keeps the
/// process from being replaced by another with its pid while its files are opened.
pub fn join_process(pidfd: &OwnedFd, pid: i32, flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    match setns_pidfd(pidfd, flags) {
        Ok(()) => return Ok(()),
        // Older kernels take only namespace fds.
        Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => {
            return Err(e).with_context(|| format!("join the namespaces {flags:?} of pid {pid}"))
        }
    }
    for (name, flag) in PROC_NS.iter().filter(|(_, f)| flags.contains(*f)) {
        let path = format!("/proc/{pid}/ns/{name}");
        let f = File::open(&path).with_context(|| format!("open {path}"))?;
        setns(f.as_fd(), *flag).with_context(|| format!("join {path}"))?;
    }
    Ok(())
}

/// Writes `linux.timeOffsets` for the new time namespace of process `pid` ("self" for the
/// caller), before its first process is forked. In a new user namespace the parent writes
/// them, from the host's user namespace, as runc's nsexec does.
pub fn write_time_offsets(spec: &Spec, pid: &str) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let text: String = offsets
        .iter()
        .map(|(clock, off)| {
            format!(
                "{clock} {} {}\n",
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    crate::procfs::Procfs::open()
        .and_then(|proc| proc.write(&format!("{pid}/timens_offsets"), &text))
        .context("linux.timeOffsets")
}

/// Whether this process runs in a user namespace other than the host's: its uid_map is not
/// the initial namespace's identity map of every id (as runc's userns.RunningInUserNS).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_uid_map(&m))
}

fn is_initial_uid_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// The text of a uid_map or gid_map file for `maps`.
pub fn format_id_maps(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes the uid and gid maps of process `pid`'s new user namespace, from its parent. As
/// root, directly. As another user (rootless), a map of the caller's own id alone is written
/// directly, gids once setgroups is denied as the kernel requires; any other map is refused
/// there (EPERM) and goes through the setuid helpers newuidmap and newgidmap (Debian's
/// uidmap), which allow the ranges /etc/subuid and /etc/subgid give the user, as in runc.
pub fn write_id_maps(pid: Pid, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    let root = nix::unistd::geteuid().is_root();
    write_id_map(pid, IdKind::Uid, uid, root)?;
    if !root && is_only(gid, nix::unistd::getegid().as_raw()) {
        crate::sys::write_file(Path::new(&format!("/proc/{pid}/setgroups")), "deny")?;
    }
    write_id_map(pid, IdKind::Gid, gid, root)
}

#[derive(Clone, Copy)]
enum IdKind {
    Uid,
    Gid,
}

impl IdKind {
    fn name(self) -> &'static str {
        match self {
            IdKind::Uid => "uid",
            IdKind::Gid => "gid",
        }
    }
}

/// Whether `maps` maps exactly one id, `own`, which an unprivileged user may map itself.
fn is_only(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

fn write_id_map(pid: Pid, kind: IdKind, maps: &[LinuxIdMapping], root: bool) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let name = kind.name();
    let field = format!("linux.{name}Mappings");
    let text = format_id_maps(maps);
    let path = format!("/proc/{pid}/{name}_map");
    match std::fs::write(&path, &text) {
        Ok(()) => return Ok(()),
        Err(e) if root || e.raw_os_error() != Some(libc::EPERM) => {
            return Err(e).with_context(|| format!("{field}: write {text:?} to {path}"))
        }
        Err(_) => {}
    }
    let tool = format!("new{name}map");
    let args: Vec<String> = std::iter::once(pid.to_string())
        .chain(
            maps.iter()
                .flat_map(|m| [m.container_id(), m.host_id(), m.size()].map(|n| n.to_string())),
        )
        .collect();
    let out = std::process::Command::new(&tool)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "config.json: {field}: mapping more than your own {name} needs {tool} (Debian: apt install uidmap), which is not in PATH"
            ),
            _ => anyhow::anyhow!("config.json: {field}: run {tool}: {e}"),
        })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim().lines().last().unwrap_or("");
        bail!(
            "config.json: {field}: {tool} {} failed ({}): {said}",
            args.join(" "),
            out.status
        );
    }
    Ok(())
}

/// Checks an id mapping list as the kernel will when it is written, so that a bad one is
/// refused by its field before anything is made: each range non-empty and within 32 bits,
/// and no two overlapping, neither on the namespace's side nor on the host's. `field` is its
/// JSON path (`linux.uidMappings`, `mounts[2].gidMappings`).
pub fn check_id_maps(field: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            bail!("config.json: {field}[{i}].size: must not be 0");
        }
        if end(m.container_id(), m.size()) > 1 << 32 || end(m.host_id(), m.size()) > 1 << 32 {
            bail!("config.json: {field}[{i}]: the range runs past the last 32-bit id");
        }
        for (j, earlier) in maps[..i].iter().enumerate() {
            let overlap = |a: u32, b: u32| {
                u64::from(a) < end(b, earlier.size()) && u64::from(b) < end(a, m.size())
            };
            if overlap(m.container_id(), earlier.container_id()) {
                bail!("config.json: {field}[{i}]: its containerID range overlaps {field}[{j}]'s");
            }
            if overlap(m.host_id(), earlier.host_id()) {
                bail!("config.json: {field}[{i}]: its hostID range overlaps {field}[{j}]'s");
            }
        }
    }
    Ok(())
}

/// A new user namespace with these maps and no process left in it, held by its fd: what an
/// idmapped mount is given (MOUNT_ATTR_IDMAP takes the mappings of a user namespace). A child
/// is born in it, holds it while the maps are written and the fd opened, and exits.
pub fn new_user_namespace(
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
) -> Result<OwnedFd> {
    use nix::unistd::ForkResult;
    let (hold_read, hold_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let child = match crate::sys::fork_into_new_userns().context("clone a new user namespace")? {
        ForkResult::Child => {
            drop(hold_write);
            let mut byte = [0u8; 1];
            // Returns at end of file: once the parent has the namespace (or is gone).
            while nix::unistd::read(hold_read.as_raw_fd(), &mut byte)
                .is_err_and(|e| e == nix::errno::Errno::EINTR)
            {}
            // SAFETY: ends the forked child at once, running nothing of the parent's.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(hold_read);
    let proc = format!("/proc/{child}");
    let made = crate::sys::write_file(
        Path::new(&format!("{proc}/uid_map")),
        &format_id_maps(uid_maps),
    )
    .and_then(|_| {
        crate::sys::write_file(
            Path::new(&format!("{proc}/gid_map")),
            &format_id_maps(gid_maps),
        )
    })
    .and_then(|_| {
        File::open(format!("{proc}/ns/user"))
            .map(OwnedFd::from)
            .with_context(|| format!("open {proc}/ns/user"))
    });
    drop(hold_write);
    let _ = nix::sys::wait::waitpid(child, None);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        crate::spec::parse(&format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":{ns}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn new_and_joined() {
        let s = spec(
            r#"[{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"},{"type":"pid"},{"type":"user","path":"/u"}]"#,
        );
        let ns = Namespaces::from_spec(&s);
        assert_eq!(ns.new, CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID);
        let joined: Vec<_> = ns.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            joined,
            [LinuxNamespaceType::User, LinuxNamespaceType::Network]
        );
        assert!(ns.needs_fork());
        assert!(
            ns.is_listed(LinuxNamespaceType::Network) && !ns.is_new(LinuxNamespaceType::Network)
        );
    }

    fn id_maps(json: &str) -> Vec<LinuxIdMapping> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn id_maps_are_checked_as_the_kernel_will() {
        let ok = id_maps(
            r#"[{"containerID":0,"hostID":100000,"size":1000},{"containerID":1000,"hostID":1000,"size":1}]"#,
        );
        check_id_maps("linux.uidMappings", &ok).unwrap();
        assert_eq!(format_id_maps(&ok), "0 100000 1000\n1000 1000 1\n");
        let err = |json: &str| check_id_maps("m", &id_maps(json)).unwrap_err().to_string();
        assert!(
            err(r#"[{"containerID":0,"hostID":1,"size":0}]"#).contains("m[0].size: must not be 0")
        );
        let inside =
            r#"[{"containerID":0,"hostID":100,"size":10},{"containerID":9,"hostID":500,"size":2}]"#;
        assert!(err(inside).contains("m[1]: its containerID range overlaps m[0]'s"));
        let host = r#"[{"containerID":0,"hostID":100,"size":10},{"containerID":50,"hostID":90,"size":11}]"#;
        assert!(err(host).contains("m[1]: its hostID range overlaps m[0]'s"));
        // Touching ranges do not overlap.
        let touching = r#"[{"containerID":0,"hostID":100,"size":10},{"containerID":10,"hostID":110,"size":1}]"#;
        check_id_maps("m", &id_maps(touching)).unwrap();
        let past = r#"[{"containerID":4294967295,"hostID":0,"size":2}]"#;
        assert!(err(past).contains("past the last 32-bit id"));
    }

    #[test]
    fn the_initial_user_namespace_maps_every_id_to_itself() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1000          1\n"));
        assert!(!is_initial_uid_map("0 1000 1\n1 100000 65536\n"));
        assert!(!is_initial_uid_map(""));
    }

    #[test]
    fn no_pid_namespace_needs_no_fork() {
        let ns = Namespaces::from_spec(&spec(r#"[{"type":"mount"},{"type":"uts"}]"#));
        assert!(!ns.needs_fork());
        let ns = Namespaces::from_spec(&spec(r#"[{"type":"time"}]"#));
        assert!(ns.needs_fork());
    }
}

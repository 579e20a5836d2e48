//! Linux namespaces from `linux.namespaces`: which are new, which are joined by path, and the
//! order in which the child enters them.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

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

    #[test]
    fn no_pid_namespace_needs_no_fork() {
        let ns = Namespaces::from_spec(&spec(r#"[{"type":"mount"},{"type":"uts"}]"#));
        assert!(!ns.needs_fork());
        let ns = Namespaces::from_spec(&spec(r#"[{"type":"time"}]"#));
        assert!(ns.needs_fork());
    }
}

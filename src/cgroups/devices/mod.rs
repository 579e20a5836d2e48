//! The device controller, as runc drives it. The rule list is folded into the state a v1
//! devices cgroup would reach (an emulator). On v1 only the transition from the cgroup's
//! present state (devices.list) to that one is written (`v1_transition`); cgroup2 has no
//! devices.allow/deny, so there the state is compiled into a BPF_PROG_TYPE_CGROUP_DEVICE
//! program attached to the cgroup (BPF_F_ALLOW_MULTI) in place of the one attached before;
//! systemd gets it in its own form (`net_rules`).
//!
//! In layers, as runc's: `emulator` (the rules folded into a v1 devices cgroup's state, and
//! the v1 transition), `bpf_program` (that state compiled into the cgroup v2 program) and
//! `bpf` (the bpf(2) calls that load, attach and detach it, each behind a thin function).

mod bpf;
mod bpf_program;
mod emulator;

use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Result};
use nix::errno::Errno;
use oci_spec::runtime::LinuxDeviceCgroup;

pub use bpf_program::Insn;
use emulator::{access_str, Emulator};

const WHAT: &str = "linux.resources.devices";

/// Replaces the device filter on the cgroup v2 directory `dir` with one that allows what
/// `rules` allow, evaluated as the v1 devices controller would evaluate them applied in order
/// to a fresh cgroup (which starts allowing everything).
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = compile(rules)?;
    let cgroup = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| anyhow::anyhow!("{WHAT}: open the cgroup {}: {e}", dir.display()))?;
    let old = bpf::attached_programs(&cgroup).map_err(|e| {
        // EBADF is what a directory outside cgroup2 (e.g. a v1 hierarchy) gets.
        let hint = if e == Errno::EBADF {
            " (not a cgroup v2 directory?)"
        } else {
            ""
        };
        // The errno stays in the chain: a rootless caller tells EPERM apart (an unprivileged
        // user may not even query the filters of a cgroup delegated to it).
        anyhow::Error::from(std::io::Error::from(e)).context(format!(
            "{WHAT}: query the eBPF device filters of {}{hint}",
            dir.display()
        ))
    })?;
    let prog = bpf::load(&insns).map_err(|(e, log)| {
        let log = if log.is_empty() {
            String::new()
        } else {
            format!(" (verifier log: {log})")
        };
        // The errno stays in the chain: a rootless caller tells EPERM apart.
        anyhow::Error::from(std::io::Error::from(e)).context(format!(
            "{WHAT}: load the eBPF device filter for {}{log}",
            dir.display()
        ))
    })?;
    bpf::attach(&cgroup, prog.as_fd()).map_err(|e| {
        anyhow::Error::from(std::io::Error::from(e)).context(format!(
            "{WHAT}: attach the eBPF device filter to {}",
            dir.display()
        ))
    })?;
    // The new filter is in place; only now drop the old ones, so there is no unfiltered window.
    for id in old {
        let old_prog = match bpf::prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Gone meanwhile, or hidden from us by an LSM (runc skips those too: another
            // program can only restrict further).
            Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES) => {
                log::debug!(
                    "{WHAT}: skipping old device filter {id} on {}",
                    dir.display()
                );
                continue;
            }
            Err(e) => bail!(
                "{WHAT}: open the old eBPF device filter {id} of {}: {e}",
                dir.display()
            ),
        };
        match bpf::detach(&cgroup, old_prog.as_fd()) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => bail!(
                "{WHAT}: detach the old eBPF device filter {id} from {}: {e}",
                dir.display()
            ),
        }
    }
    Ok(())
}

/// The filter program for `rules`, built without touching the system (what `apply` loads).
/// A bad rule fails here, naming it.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    bpf_program::program(&Emulator::from_rules(rules)?)
}

/// The devices.allow (true) and devices.deny writes that take a v1 cgroup whose devices.list
/// reads `list` to what `rules` allow.
pub fn v1_transition(list: &str, rules: &[LinuxDeviceCgroup]) -> Result<Vec<(bool, String)>> {
    let target = Emulator::from_rules(rules)?;
    let current = Emulator::from_list(list).map_err(|e| anyhow::anyhow!("{WHAT}: {e}"))?;
    Ok(current.transition(&target))
}

/// One exception of `net_rules`: a device (type and numbers, None for any) and its access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    pub block: bool,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// A subset of "rwm".
    pub access: String,
}

/// What `rules` come to, as v1's devices controller keeps them: whether a device no
/// exception names is allowed, and the exceptions (allows on a default-deny cgroup, denies on
/// a default-allow one). For a service manager that takes rules in its own form.
pub fn net_rules(rules: &[LinuxDeviceCgroup]) -> Result<(bool, Vec<NetRule>)> {
    let emu = Emulator::from_rules(rules)?;
    let exceptions = emu
        .exceptions
        .iter()
        .map(|e| NetRule {
            block: e.meta.block,
            major: e.meta.major,
            minor: e.meta.minor,
            access: access_str(e.access),
        })
        .collect();
    Ok((emu.default_allow, exceptions))
}

#[cfg(test)]
mod tests {
    use super::emulator::test_support::{c, docker_defaults};
    use super::*;

    #[test]
    fn v1_transition_writes_only_the_difference() {
        let lines = |w: Vec<(bool, String)>| {
            w.into_iter()
                .map(|(allow, l)| format!("{} {l}", if allow { "allow" } else { "deny" }))
                .collect::<Vec<_>>()
        };
        // A fresh cgroup: the default switches, then each allowed device once.
        let w = v1_transition("a *:* rwm\n", &docker_defaults()).unwrap();
        assert_eq!(w.len(), 1 + 12, "{w:?}");
        assert_eq!(w[0], (false, "a *:* rwm".to_string()));
        assert!(w[1..].iter().all(|(allow, _)| *allow), "{w:?}");
        // Already there: nothing is written (no deny-all in between for running processes).
        let list = "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\nc 1:5 rwm\nc 1:9 rwm\nc 5:1 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm\n";
        assert_eq!(v1_transition(list, &docker_defaults()).unwrap(), []);
        // One device more and one access less: just those two writes.
        let mut rules = docker_defaults();
        rules.push(c(true, Some(4), Some(1), "rw"));
        rules.push(c(false, Some(1), Some(3), "w"));
        assert_eq!(
            lines(v1_transition(list, &rules).unwrap()),
            ["deny c 1:3 w", "allow c 4:1 rw"]
        );
    }
}

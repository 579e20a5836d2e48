//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA memory policy of the container's
//! processes, set with set_mempolicy(2) in init and in every `exec`'d process, as runc does.

use anyhow::{bail, Result};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Spec};

// <linux/mempolicy.h>; libc has none of them.
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;

/// The modes and flags berth knows, by the runtime-spec's names (`features`).
pub const MODES: [&str; 7] = [
    "MPOL_BIND",
    "MPOL_DEFAULT",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];
pub const FLAGS: [&str; 3] = [
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];

/// What set_mempolicy(2) is given: the mode with its flags, and the node mask.
#[derive(Debug, PartialEq, Eq)]
pub struct Policy {
    mode: i32,
    nodes: Vec<libc::c_ulong>,
}

fn mode_number(mode: MemoryPolicyModeType) -> i32 {
    match mode {
        MemoryPolicyModeType::MpolDefault => MPOL_DEFAULT,
        MemoryPolicyModeType::MpolPreferred => MPOL_PREFERRED,
        MemoryPolicyModeType::MpolBind => MPOL_BIND,
        MemoryPolicyModeType::MpolInterleave => MPOL_INTERLEAVE,
        MemoryPolicyModeType::MpolLocal => MPOL_LOCAL,
        MemoryPolicyModeType::MpolPreferredMany => MPOL_PREFERRED_MANY,
        MemoryPolicyModeType::MpolWeightedInterleave => MPOL_WEIGHTED_INTERLEAVE,
    }
}

fn flag_number(flag: MemoryPolicyFlagType) -> i32 {
    match flag {
        MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
        MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
        MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
    }
}

/// The config's policy, checked as runc checks it (the node count each mode needs); None
/// when there is none. Errors name the field and say "invalid memory policy", runc's words.
pub fn of(spec: &Spec) -> Result<Option<Policy>> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    else {
        return Ok(None);
    };
    policy(p).map(Some)
}

fn policy(p: &LinuxMemoryPolicy) -> Result<Policy> {
    let list = p.nodes().as_deref().unwrap_or("");
    let ids = match crate::cpu_list::parse(list) {
        Ok(ids) => ids,
        Err(e) => bail!(
            "config.json: linux.memoryPolicy.nodes: invalid memory policy nodes {list:?}: {e}"
        ),
    };
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let count = distinct.len();
    let mode = mode_number(p.mode());
    match mode {
        MPOL_DEFAULT | MPOL_LOCAL if count != 0 => bail!(
            "config.json: linux.memoryPolicy.nodes: memory policy mode requires 0 nodes but got {count} (mode {})",
            p.mode()
        ),
        MPOL_BIND | MPOL_INTERLEAVE | MPOL_PREFERRED_MANY | MPOL_WEIGHTED_INTERLEAVE
            if count == 0 =>
        {
            bail!(
                "config.json: linux.memoryPolicy.nodes: memory policy mode requires at least one node but got 0 (mode {})",
                p.mode()
            )
        }
        _ => {}
    }
    let flags = p
        .flags()
        .iter()
        .flatten()
        .fold(0, |all, &f| all | flag_number(f));
    Ok(Policy {
        mode: mode | flags,
        nodes: crate::cpu_list::word_mask(&ids),
    })
}

/// Sets the calling process's policy; its children and the program it execs keep it.
pub fn apply(policy: &Policy) -> Result<()> {
    // The kernel reads maxnode - 1 bits (a historic off-by-one every caller allows for).
    let maxnode = policy.nodes.len() * libc::c_ulong::BITS as usize + 1;
    let mask = if policy.nodes.is_empty() {
        std::ptr::null()
    } else {
        policy.nodes.as_ptr()
    };
    // SAFETY: set_mempolicy reads (maxnode - 1) bits from `mask`, which holds that many, or
    // nothing when it is null; it changes only this process's policy.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, policy.mode, mask, maxnode) };
    if let Err(e) = Errno::result(r) {
        bail!("linux.memoryPolicy: set_mempolicy: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of_json(json: &str) -> Result<Option<Policy>> {
        let spec: Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.2.0","linux":{{"memoryPolicy":{json}}}}}"#
        ))
        .unwrap();
        of(&spec)
    }

    #[test]
    fn modes_flags_and_nodes_become_the_syscalls_arguments() {
        let p = of_json(r#"{"mode":"MPOL_BIND","nodes":"0,2","flags":["MPOL_F_STATIC_NODES"]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            Policy {
                mode: MPOL_BIND | MPOL_F_STATIC_NODES,
                nodes: vec![0b101]
            }
        );
        let p = of_json(r#"{"mode":"MPOL_DEFAULT"}"#).unwrap().unwrap();
        assert_eq!(p.mode, MPOL_DEFAULT);
        assert!(p.nodes.is_empty());
        assert!(of_json("null").unwrap().is_none());
    }

    #[test]
    fn node_counts_are_checked_per_mode_as_runc() {
        let err = of_json(r#"{"mode":"MPOL_DEFAULT","nodes":"0-7"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("memory policy mode requires 0 nodes but got 8 (mode MPOL_DEFAULT)"),
            "{err}"
        );
        let err = of_json(r#"{"mode":"MPOL_INTERLEAVE"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("requires at least one node but got 0"),
            "{err}"
        );
        // MPOL_PREFERRED takes none or some.
        assert!(of_json(r#"{"mode":"MPOL_PREFERRED"}"#).is_ok());
        let err = of_json(r#"{"mode":"MPOL_BIND","nodes":"0-9876543210"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config.json: linux.memoryPolicy.nodes: invalid memory policy nodes"),
            "{err}"
        );
    }

    #[test]
    fn the_known_names_are_the_spec_types_names() {
        for name in MODES {
            serde_json::from_value::<MemoryPolicyModeType>(name.into()).unwrap();
        }
        for name in FLAGS {
            serde_json::from_value::<MemoryPolicyFlagType>(name.into()).unwrap();
        }
    }
}

//! `linux.sysctl`: only sysctls that belong to a namespace the container owns, so a config
//! can never change a host-wide kernel setting.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxNamespaceType;

use crate::namespaces::Namespaces;

const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace a sysctl belongs to, or `None` for host-wide ones.
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Refuses, before anything is created, sysctls outside the container's own namespaces.
pub fn validate(sysctls: &HashMap<String, String>, ns: &Namespaces) -> Result<()> {
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        // "net.//.kernel.x" would be /proc/sys/net/../kernel/x: a host-wide sysctl.
        let path = proc_path(key);
        let odd = |c: std::path::Component| !matches!(c, std::path::Component::Normal(_));
        if path.components().skip(1).any(odd) || key.ends_with(['.', '/']) || key.contains("..") {
            bail!("config.json: linux.sysctl: {key:?} is not a sysctl name");
        }
        match namespace_of(key) {
            None => bail!("config.json: linux.sysctl: {key:?} is not namespaced; setting it would change the host"),
            Some(t) if !ns.is_new(t) => {
                bail!("config.json: linux.sysctl: {key:?} needs a new {t} namespace in linux.namespaces")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The /proc/sys file of a key: dots are separators, slashes in the key are literal dots
/// (as sysctl(8) treats them), e.g. net.ipv4.conf.eth0/1.forwarding.
pub fn proc_path(key: &str) -> PathBuf {
    let rel: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect();
    PathBuf::from("/proc/sys").join(rel)
}

/// Writes the sysctls from inside the container's namespaces, through a procfs of berth's
/// own: a mount the config put on /proc/sys (or a symlink there) cannot catch the write.
pub fn apply(sysctls: &HashMap<String, String>) -> Result<()> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let proc = crate::procfs::Procfs::open().context("linux.sysctl")?;
    for (key, value) in sysctls {
        let path = proc_path(key);
        let rel = path
            .strip_prefix("/proc")
            .expect("proc_path is under /proc");
        proc.write(&rel.to_string_lossy(), value)
            .with_context(|| format!("linux.sysctl: {key}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: &str) -> Namespaces {
        let spec = crate::spec::parse(&format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":{json}}}}}"#
        ))
        .unwrap();
        Namespaces::from_spec(&spec)
    }

    fn one(k: &str) -> HashMap<String, String> {
        HashMap::from([(k.to_string(), "1".to_string())])
    }

    #[test]
    fn namespaced_sysctls_need_their_namespace() {
        let all = ns(r#"[{"type":"network"},{"type":"ipc"},{"type":"uts"}]"#);
        for k in [
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            validate(&one(k), &all).unwrap();
        }
        let none = ns("[]");
        let e = validate(&one("net.ipv4.ip_forward"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a new net namespace"), "{e}");
        let e = validate(&one("kernel.shmmax"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a new ipc namespace"), "{e}");
    }

    #[test]
    fn host_wide_sysctls_are_refused() {
        let all = ns(r#"[{"type":"network"},{"type":"ipc"},{"type":"uts"}]"#);
        for k in ["vm.swappiness", "kernel.pid_max", "fs.file-max"] {
            let e = validate(&one(k), &all).unwrap_err().to_string();
            assert!(e.contains("is not namespaced") && e.contains(k), "{e}");
        }
    }

    #[test]
    fn keys_that_climb_out_of_their_namespace_are_refused() {
        let all = ns(r#"[{"type":"network"},{"type":"ipc"},{"type":"uts"}]"#);
        for k in [
            "net.//.kernel.core_pattern",
            "net.ipv4..x",
            "net.",
            "net./.",
            "net.ipv4/",
        ] {
            let e = validate(&one(k), &all).unwrap_err().to_string();
            assert!(e.contains("is not a sysctl name"), "{k}: {e}");
        }
        validate(&one("net.ipv4.conf.eth0/1.forwarding"), &all).unwrap();
    }

    #[test]
    fn key_to_path() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            proc_path("net.ipv4.conf.eth0/1.forwarding"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
    }
}

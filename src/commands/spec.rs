//! `spec`: writes runc's default config.json (or its rootless variant) into a bundle.

use std::fs;
use std::io::ErrorKind;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::SpecArgs;

pub fn spec(args: &SpecArgs) -> Result<i32> {
    let path = args.bundle.join("config.json");
    let config = default_config(
        args.rootless,
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
        crate::cgroups::host_is_unified(),
    );
    let text = serde_json::to_string_pretty(&config)?;
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("{}: already exists; remove it first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
    };
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

/// runc's default configuration: busybox `sh` on a terminal, a read-only root, the usual
/// mounts and namespaces (a cgroup namespace only on a pure cgroup v2 host, as runc), masked
/// and read-only /proc paths.
pub fn default_config(rootless: bool, uid: u32, gid: u32, unified_cgroups: bool) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "berth",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if !unified_cgroups {
        config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces is an array")
            .retain(|n| n["type"] != "cgroup");
    }
    if rootless {
        make_rootless(&mut config, uid, gid);
    }
    config
}

/// runc's rootless changes: a user namespace mapping the caller, no network namespace or
/// cgroup mount, /sys bound from the host, no gid option for devpts, no resources.
fn make_rootless(config: &mut Value, uid: u32, gid: u32) {
    let linux = &mut config["linux"];
    linux.as_object_mut().map(|l| l.remove("resources"));
    let ns = linux["namespaces"]
        .as_array_mut()
        .expect("namespaces is an array");
    ns.retain(|n| n["type"] != "network");
    ns.push(json!({ "type": "user" }));
    linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
    linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    let mounts = config["mounts"].as_array_mut().expect("mounts is an array");
    mounts.retain(|m| m["type"] != "cgroup");
    for m in mounts.iter_mut() {
        if m["destination"] == "/sys" {
            *m = json!({ "destination": "/sys", "type": "none", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
        }
        if m["destination"] == "/dev/pts" {
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| o != "gid=5");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_namespace_only_on_a_unified_host() {
        let has_cgroupns = |unified| {
            default_config(false, 0, 0, unified)["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "cgroup")
        };
        assert!(has_cgroupns(true));
        assert!(!has_cgroupns(false));
    }

    #[test]
    fn default_config_is_a_valid_spec() {
        let text = serde_json::to_string(&default_config(false, 0, 0, true)).unwrap();
        let spec = crate::spec::parse(&text).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &["sh"]
        );
        assert_eq!(
            spec.linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .len(),
            6
        );
    }

    #[test]
    fn rootless_maps_the_caller() {
        let c = default_config(true, 1000, 1001, true);
        let text = serde_json::to_string(&c).unwrap();
        crate::spec::parse(&text).unwrap();
        assert_eq!(c["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(c["linux"]["gidMappings"][0]["hostID"], 1001);
        let types: Vec<_> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].clone())
            .collect();
        assert!(types.contains(&json!("user")) && !types.contains(&json!("network")));
        assert!(c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["type"] != "cgroup"));
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let args = SpecArgs {
            bundle: dir.path().to_path_buf(),
            rootless: false,
        };
        spec(&args).unwrap();
        let e = spec(&args).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
    }
}

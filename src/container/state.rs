//! state.json: runc's fields, plus what berth itself needs to find the container's resources
//! again after config.json has changed or gone.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// The stored state. The runc-visible fields come first and keep runc's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container's init; 0 until init exists.
    pub pid: i32,
    /// The status when the file was written; `Container::status` derives the live one.
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub owner: String,
    /// Start time of init (clock ticks since boot): tells init apart from a reused pid.
    #[serde(default)]
    pub init_start_time: u64,
    /// Device and inode of init's binary while it waits at the start gate (berth's own):
    /// once init runs anything else, it has passed the gate, whatever the fifo says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_gate_exe: Option<(u64, u64)>,
    /// The container's cgroup, as placed at create time; None while it has none of its own
    /// (a rootless container without a writable tree; with systemd, until its unit started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::cgroups::Placement>,
    /// Set when the container shares the host's mount namespace: how many mounts were stacked
    /// on the rootfs before create, so delete can take off exactly the ones berth added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rootfs_mounts: Option<usize>,
    /// linux.resources as applied at create and changed by `update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// Whether init is PID 1 of its own PID namespace (then its death ends every process).
    #[serde(default)]
    pub own_pid_namespace: bool,
    /// The container's resctrl groups (`linux.intelRdt`), as made at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<crate::intel_rdt::Group>,
    /// config.json's hooks as at create: `start` runs poststart, destroying runs poststop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// What `berth state` prints: exactly runc's fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub annotations: &'a HashMap<String, String>,
    pub owner: &'a str,
}

impl State {
    /// The container's state as the runtime-spec gives it to hooks and seccomp agents, with
    /// `status` and `pid` as the caller knows them.
    pub fn to_oci(
        &self,
        status: oci_spec::runtime::ContainerState,
        pid: i32,
    ) -> Result<oci_spec::runtime::State> {
        oci_spec::runtime::StateBuilder::default()
            .version(self.oci_version.clone())
            .id(self.id.clone())
            .status(status)
            .pid(pid)
            .bundle(self.bundle.clone())
            .annotations(self.annotations.clone())
            .build()
            .context("build the container's state")
    }

    /// `to_oci` as the JSON a hook reads on its stdin.
    pub fn oci_json(&self, status: oci_spec::runtime::ContainerState, pid: i32) -> Result<String> {
        serde_json::to_string(&self.to_oci(status, pid)?).context("serialize the container's state")
    }

    pub fn view(&self, status: Status) -> StateView<'_> {
        StateView {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: &self.owner,
        }
    }

    pub fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        // (Not `fs::read`, which stats the file for its size first: `list` reads every
        // container's.)
        let text =
            crate::sys::read_virtual(&path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Writes state.json atomically: a temp file in the same dir, then rename, so a reader
    /// sees the old or the new state, never half of one. No fsync: the state describes
    /// processes, which do not outlive a crash of the machine anyway (and the root is
    /// normally a tmpfs under /run), while an fsync on a disk costs about a millisecond.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(self)?)?;
            crate::sys::replace_file(&tmp, &path)
        };
        write()
            .with_context(|| format!("write {}", path.display()))
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
    }
}

/// Writes `contents` to `path` via a temp file and rename, so readers never see half a file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .context("pid file path has no file name")?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    fs::write(&tmp, contents)
        .and_then(|_| crate::sys::replace_file(&tmp, path))
        .with_context(|| format!("write {}", path.display()))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            pid: 42,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-11-22T14:00:00.123456789Z".into(),
            annotations: HashMap::from([("k".into(), "v".into())]),
            owner: "root".into(),
            init_start_time: 777,
            init_gate_exe: None,
            cgroup: Some(crate::cgroups::Placement {
                layout: crate::cgroups::Layout::V2,
                driver: crate::cgroups::Driver::Systemd {
                    unit: "berth-c1.scope".into(),
                    user: false,
                },
                dirs: vec![crate::cgroups::Dir {
                    path: "/sys/fs/cgroup/system.slice/berth-c1.scope".into(),
                    mount_point: "/sys/fs/cgroup".into(),
                    controllers: vec!["cpu".into(), "memory".into()],
                    v2: true,
                }],
            }),
            own_pid_namespace: true,
            host_rootfs_mounts: None,
            resources: None,
            intel_rdt: None,
            hooks: None,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), s);
        // No temp file is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)]);
    }

    #[test]
    fn view_has_runc_fields_and_zero_pid_when_stopped() {
        let s = sample();
        let v = serde_json::to_value(s.view(Status::Running)).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut want = vec![
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "annotations",
            "owner",
        ];
        want.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, want);
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 42);
        let v = serde_json::to_value(s.view(Status::Stopped)).unwrap();
        assert_eq!(v["pid"], 0);
        assert_eq!(v["status"], "stopped");
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("init.pid");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"123").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "123");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

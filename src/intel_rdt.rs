//! `linux.intelRdt`: the container's resctrl group (Intel RDT, AMD PQoS), as runc places it.
//! The control group is `<resctrl>/<closID>` (shared with whoever else names that class of
//! service), or `<resctrl>/<container id>`; the config's schemata are written to its
//! `schemata` file, and the container's processes (init, and each exec'd one) to its `tasks`.
//! With `enableMonitoring` (or the older `enableCMT`/`enableMBM`) the container also gets a
//! monitoring group of its own, `mon_groups/<container id>` inside the control group. Delete
//! removes what berth made, never a group a closID names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxIntelRdt;
use serde::{Deserialize, Serialize};

/// Where resctrl is mounted on this host, if it is (the first resctrl mount in mountinfo).
pub fn root() -> Option<PathBuf> {
    use procfs_core::FromBufRead;
    let text = crate::sys::read_virtual("/proc/self/mountinfo").ok()?;
    let mounts = procfs_core::process::MountInfos::from_buf_read(text.as_bytes()).ok()?;
    let found = mounts.iter().find(|m| m.fs_type == "resctrl");
    found.map(|m| m.mount_point.clone())
}

/// The checks made before anything exists: a resctrl filesystem to use (runc's words
/// without one), and a closID that names one directory of it.
pub fn validate(rdt: &LinuxIntelRdt, root: Option<&Path>) -> Result<()> {
    if root.is_none() {
        bail!("config.json: linux.intelRdt: intelRdt is specified in config, but Intel RDT is not supported or enabled (no resctrl filesystem is mounted)");
    }
    if let Some(clos) = rdt.clos_id() {
        if clos.is_empty() || clos == "." || clos == ".." || clos.contains('/') {
            bail!(
                "config.json: linux.intelRdt.closID: {clos:?} is not the name of a resctrl group"
            );
        }
    }
    Ok(())
}

/// The container's resctrl groups, as made at create; kept in its state for exec and delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The control group's directory.
    pub path: PathBuf,
    /// The container's monitoring group, inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<PathBuf>,
    /// Whether berth made the control group (and so removes it): never one a closID names,
    /// which others may share.
    pub made: bool,
}

impl Group {
    /// Makes (or, for a closID, finds) the control group, writes the schemata, and makes the
    /// monitoring group. A closID whose group does not exist must come with schemata to
    /// make it with, as in runc.
    pub fn make(rdt: &LinuxIntelRdt, root: &Path, id: &str) -> Result<Group> {
        let clos = rdt.clos_id().as_deref();
        let path = root.join(clos.unwrap_or(id));
        let mut lines: Vec<&str> = [rdt.l3_cache_schema(), rdt.mem_bw_schema()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        lines.extend(rdt.schemata().iter().flatten().map(String::as_str));
        lines.retain(|l| !l.is_empty());
        if clos.is_some() && lines.is_empty() && !path.is_dir() {
            bail!(
                "linux.intelRdt.closID: {} does not exist, and without schemata berth cannot make it (it must be made beforehand)",
                path.display()
            );
        }
        let made = match std::fs::create_dir(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(with_status(root, e.into()))
                    .with_context(|| format!("linux.intelRdt: mkdir {}", path.display()))
            }
        };
        let mut group = Group {
            path,
            monitoring: None,
            made,
        };
        if let Err(e) = group.configure(rdt, root, id, &lines) {
            // Undone as delete would: what berth made so far.
            let _ = group.remove();
            return Err(e);
        }
        Ok(group)
    }

    /// Writes the schemata (`lines`) and makes the monitoring group, if asked for.
    fn configure(
        &mut self,
        rdt: &LinuxIntelRdt,
        root: &Path,
        id: &str,
        lines: &[&str],
    ) -> Result<()> {
        if !lines.is_empty() {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            write(root, &self.path.join("schemata"), &text)
                .context("linux.intelRdt: write the schemata")?;
        }
        if wants_monitoring(rdt) {
            let mon = self.path.join("mon_groups").join(id);
            match std::fs::create_dir(&mon) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(with_status(root, e.into())).with_context(|| {
                        format!("linux.intelRdt.enableMonitoring: mkdir {}", mon.display())
                    })
                }
                _ => self.monitoring = Some(mon),
            }
        }
        Ok(())
    }

    /// Puts process `pid` (with the threads and children it makes from now on) in the
    /// control group and the monitoring group.
    pub fn add(&self, pid: i32) -> Result<()> {
        let root = self.path.parent().unwrap_or(Path::new("/"));
        for dir in std::iter::once(&self.path).chain(self.monitoring.as_ref()) {
            write(root, &dir.join("tasks"), &pid.to_string())
                .with_context(|| format!("linux.intelRdt: add pid {pid} to {}", dir.display()))?;
        }
        Ok(())
    }

    /// Removes what berth made: the control group it made (its monitoring groups go with
    /// it), or else only the container's monitoring group.
    pub fn remove(&self) -> Result<()> {
        let dir = match (&self.monitoring, self.made) {
            (_, true) => &self.path,
            (Some(mon), false) => mon,
            (None, false) => return Ok(()),
        };
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove resctrl group {}", dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Whether the container gets a monitoring group: `enableMonitoring` (runtime-spec 1.3), or
/// the `enableCMT`/`enableMBM` it replaces.
#[allow(deprecated)]
fn wants_monitoring(rdt: &LinuxIntelRdt) -> bool {
    [rdt.enable_monitoring(), rdt.enable_cmt(), rdt.enable_mbm()]
        .iter()
        .any(|f| f.unwrap_or(false))
}

/// Writes a resctrl file; the kernel's reason for a refusal is in `info/last_cmd_status`.
fn write(root: &Path, path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| with_status(root, e.into()))
        .with_context(|| format!("write {text:?} to {}", path.display()))
}

/// `err`, with resctrl's own account of the last command when it has one (as runc adds it).
fn with_status(root: &Path, err: anyhow::Error) -> anyhow::Error {
    match std::fs::read_to_string(root.join("info/last_cmd_status")) {
        Ok(status) if !status.trim().is_empty() && status.trim() != "ok" => {
            err.context(format!("last_cmd_status: {}", status.trim()))
        }
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdt(json: &str) -> LinuxIntelRdt {
        serde_json::from_str(json).unwrap()
    }

    /// A directory laid out as resctrl is, for the files berth touches.
    fn fake_resctrl() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("info")).unwrap();
        std::fs::write(dir.path().join("info/last_cmd_status"), "ok\n").unwrap();
        dir
    }

    #[test]
    fn a_group_of_its_own_gets_the_schemata_and_tasks_and_is_removed() {
        let root = fake_resctrl();
        let config = r#"{"l3CacheSchema":"L3:0=ff","schemata":["MB:0=50",""]}"#;
        let group = Group::make(&rdt(config), root.path(), "ctr").unwrap();
        assert!(group.made && group.monitoring.is_none());
        let schemata = std::fs::read_to_string(root.path().join("ctr/schemata")).unwrap();
        assert_eq!(schemata, "L3:0=ff\nMB:0=50\n");
        group.add(42).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("ctr/tasks")).unwrap(),
            "42"
        );
        std::fs::remove_file(root.path().join("ctr/tasks")).unwrap();
        std::fs::remove_file(root.path().join("ctr/schemata")).unwrap();
        group.remove().unwrap();
        assert!(!root.path().join("ctr").exists());
    }

    #[test]
    fn a_closid_group_is_shared_and_never_removed() {
        let root = fake_resctrl();
        let err = Group::make(&rdt(r#"{"closID":"gold"}"#), root.path(), "ctr").unwrap_err();
        assert!(err.to_string().contains("must be made beforehand"), "{err}");
        std::fs::create_dir_all(root.path().join("gold/mon_groups")).unwrap();
        let config = r#"{"closID":"gold","enableMonitoring":true}"#;
        let group = Group::make(&rdt(config), root.path(), "ctr").unwrap();
        assert!(!group.made);
        assert_eq!(
            group.monitoring,
            Some(root.path().join("gold/mon_groups/ctr"))
        );
        group.add(7).unwrap();
        let tasks = root.path().join("gold/mon_groups/ctr/tasks");
        assert_eq!(std::fs::read_to_string(&tasks).unwrap(), "7");
        std::fs::remove_file(tasks).unwrap();
        group.remove().unwrap();
        assert!(root.path().join("gold").is_dir());
        assert!(!root.path().join("gold/mon_groups/ctr").exists());
    }

    #[test]
    fn refusals_name_the_field() {
        let err =
            |json: &str, root: Option<&Path>| validate(&rdt(json), root).unwrap_err().to_string();
        assert!(err("{}", None).contains("Intel RDT is not supported or enabled"));
        let root = Path::new("/sys/fs/resctrl");
        assert!(err(r#"{"closID":"../x"}"#, Some(root)).contains("linux.intelRdt.closID"));
        validate(&rdt(r#"{"closID":"gold"}"#), Some(root)).unwrap();
    }
}

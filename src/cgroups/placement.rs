//! Where a container's cgroup is, as one typed value: which layout the host's hierarchies
//! have, which driver made the cgroup, and one directory per hierarchy with the controllers
//! it holds. `create` computes it once (`super::placement_for`) and saves it in the state;
//! every later command reads it from there instead of guessing from paths again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How the host's cgroup hierarchies are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// cgroup v1 hierarchies only.
    V1,
    /// v1 hierarchies plus a cgroup2 one (systemd's hybrid mode, /sys/fs/cgroup/unified),
    /// which runc treats as v1 for the controllers bound to v1.
    Hybrid,
    /// cgroup2 alone: v2 file names and value conversions apply.
    V2,
}

/// Who made the cgroup, and so who ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Driver {
    /// berth itself, with mkdir and rmdir.
    Cgroupfs,
    /// systemd, as this transient scope unit (`--systemd-cgroup`); stopped at delete. `user`:
    /// the unit is the user's systemd instance's (a rootless container), reached on the
    /// session bus.
    Systemd {
        unit: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        user: bool,
    },
}

/// The container's directory on one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    pub path: PathBuf,
    /// Where the hierarchy is mounted (its basename is the hierarchy's name in a container's
    /// own cgroup mount: "memory", "cpu,cpuacct", "unified").
    pub mount_point: PathBuf,
    /// v1: the hierarchy's controllers ("cpu", "cpuacct"; "name=systemd" for a named one).
    /// cgroup2: those its root offers (the root's cgroup.controllers when created).
    pub controllers: Vec<String>,
    /// Whether the hierarchy is cgroup2.
    pub v2: bool,
}

impl Dir {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub layout: Layout,
    pub driver: Driver,
    /// In the host's mount order; on a hybrid host the cgroup2 directory comes last.
    pub dirs: Vec<Dir>,
}

impl Placement {
    /// Every directory's path.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    pub fn is_v2(&self) -> bool {
        self.layout == Layout::V2
    }

    /// The systemd driver's unit.
    pub fn unit(&self) -> Option<&str> {
        match &self.driver {
            Driver::Systemd { unit, .. } => Some(unit),
            Driver::Cgroupfs => None,
        }
    }

    /// Whether systemd's user instance holds the unit (a rootless container's).
    pub fn systemd_user(&self) -> bool {
        matches!(self.driver, Driver::Systemd { user: true, .. })
    }

    /// The directory holding `controller`'s files: the only one on a v2 host; on v1 the
    /// hierarchy it is bound to; on a hybrid host that, or the cgroup2 one when it is bound
    /// there instead (a host may keep hugetlb on cgroup2 only, as this project's do).
    pub fn dir_of(&self, controller: &str) -> Option<&Dir> {
        if self.is_v2() {
            return self.dirs.first();
        }
        let v1 = self.dirs.iter().find(|d| !d.v2 && d.has(controller));
        v1.or_else(|| self.dirs.iter().find(|d| d.v2 && d.has(controller)))
    }

    /// Index of the cgroup2 directory in `dirs`: the only one on a v2 host, the unified one
    /// on a hybrid host, none on a v1 host.
    pub fn v2_index(&self) -> Option<usize> {
        self.dirs.iter().position(|d| d.v2)
    }

    /// The directory `pause` freezes, and whether it is cgroup2's (cgroup.freeze) rather
    /// than the v1 freezer's (freezer.state): the v1 freezer where there is one (as runc),
    /// else the cgroup2 directory, whose cgroup.freeze (Linux 5.2) is no controller.
    pub fn freezer(&self) -> Option<&Dir> {
        if self.is_v2() {
            return self.dirs.first();
        }
        let v1 = self.dirs.iter().find(|d| !d.v2 && d.has("freezer"));
        v1.or_else(|| self.dirs.iter().find(|d| d.v2))
    }

    /// The same placement with each directory at `paths` (the same hierarchies, in order):
    /// what an `exec --cgroup` process joins.
    pub fn at(&self, paths: Vec<PathBuf>) -> Placement {
        let dirs = self
            .dirs
            .iter()
            .zip(paths)
            .map(|(d, path)| Dir { path, ..d.clone() })
            .collect();
        Placement {
            dirs,
            ..self.clone()
        }
    }
}

#[cfg(test)]
pub mod test_support {
    use super::*;

    /// A placement on fake directories: `(path, controllers)`, cgroup2 where `controllers`
    /// is "" or starts with "v2:" (then the rest is what its root offers).
    pub fn placement(layout: Layout, dirs: &[(&Path, &str)]) -> Placement {
        let dirs = dirs
            .iter()
            .map(|(path, ctrls)| {
                let (v2, list) = match ctrls.strip_prefix("v2:") {
                    Some(rest) => (true, rest),
                    None => (ctrls.is_empty(), *ctrls),
                };
                Dir {
                    path: path.to_path_buf(),
                    mount_point: path.parent().unwrap_or(path).to_path_buf(),
                    controllers: list
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .collect(),
                    v2,
                }
            })
            .collect();
        Placement {
            layout,
            driver: Driver::Cgroupfs,
            dirs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::placement;
    use super::*;

    #[test]
    fn controllers_are_found_by_hierarchy_not_by_path() {
        let (cpu, mem, uni) = (
            Path::new("/h/cpu,cpuacct/c"),
            Path::new("/h/memory/c"),
            Path::new("/h/unified/c"),
        );
        let p = placement(
            Layout::Hybrid,
            &[(cpu, "cpu,cpuacct"), (mem, "memory"), (uni, "v2:hugetlb")],
        );
        assert_eq!(p.dir_of("cpuacct").unwrap().path, cpu);
        assert_eq!(p.dir_of("memory").unwrap().path, mem);
        // Bound to cgroup2 on this hybrid host: found there, v2 file names apply.
        assert!(p.dir_of("hugetlb").unwrap().v2);
        assert!(p.dir_of("pids").is_none());
        // No v1 freezer: the cgroup2 directory's cgroup.freeze.
        assert_eq!(p.freezer().unwrap().path, uni);
        assert_eq!(p.v2_index(), Some(2));
        let v2 = placement(Layout::V2, &[(Path::new("/h/c"), "")]);
        assert_eq!(v2.dir_of("pids").unwrap().path, Path::new("/h/c"));
        assert!(placement(Layout::V1, &[(mem, "memory")])
            .freezer()
            .is_none());
    }

    #[test]
    fn the_state_keeps_it_as_json() {
        let mut p = placement(Layout::V2, &[(Path::new("/sys/fs/cgroup/c"), "v2:cpu")]);
        p.driver = Driver::Systemd {
            unit: "berth-c.scope".into(),
            user: false,
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["layout"], "v2");
        assert_eq!(json["driver"]["kind"], "systemd");
        assert_eq!(json["driver"]["unit"], "berth-c.scope");
        let back: Placement = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.unit(), Some("berth-c.scope"));
    }
}

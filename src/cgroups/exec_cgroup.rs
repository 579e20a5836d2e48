//! `exec --cgroup [CTRL[,CTRL...]:]PATH`: the flags parsed as runc's exec parses them, and
//! resolved against the container's `Placement` into the cgroup the exec'd process joins.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

use super::Placement;

/// What `--cgroup` asked for, parsed as runc's exec parses it.
#[derive(Debug, PartialEq)]
pub enum SubCgroups {
    /// No --cgroup: the container's own cgroup on every hierarchy.
    None,
    /// `PATH`, the only --cgroup: that sub-cgroup on every hierarchy (the form for cgroup v2).
    All { arg: String, rel: PathBuf },
    /// `CONTROLLER[,CONTROLLER...]:PATH`, repeatable: one (controller, sub-path, the --cgroup
    /// value) per controller named. Hierarchies whose controllers are not named stay in the
    /// container's cgroup.
    PerController(Vec<(String, PathBuf, String)>),
}

/// Parses the `--cgroup` values; errors name the value.
pub fn parse_sub_cgroups(args: &[String]) -> Result<SubCgroups> {
    let mut per: Vec<(String, PathBuf, String)> = Vec::new();
    for arg in args {
        let (ctrls, path) = match arg.split_once(':') {
            None if args.len() == 1 => {
                let rel = sub_path(arg, arg)?;
                return Ok(SubCgroups::All {
                    arg: arg.clone(),
                    rel,
                });
            }
            None => bail!("--cgroup {arg}: a path without CONTROLLER: must be the only --cgroup"),
            Some((_, path)) if path.contains(':') => {
                bail!("--cgroup {arg}: more than one ':' (the form is [CONTROLLER[,CONTROLLER...]:]PATH)")
            }
            Some(split) => split,
        };
        let rel = sub_path(arg, path)?;
        for ctrl in ctrls.split(',') {
            if ctrl.is_empty() {
                bail!("--cgroup {arg}: empty controller name");
            }
            if per.iter().any(|(c, _, _)| c == ctrl) {
                bail!("--cgroup {arg}: controller {ctrl} given more than once");
            }
            per.push((ctrl.to_string(), rel.clone(), arg.clone()));
        }
    }
    Ok(match per.is_empty() {
        true => SubCgroups::None,
        false => SubCgroups::PerController(per),
    })
}

/// `path` relative to the container's cgroup. A leading '/' still means the container's
/// cgroup, not the hierarchy's root (runc joins it to the container's path), and '..' is
/// refused outright rather than resolved, so nothing can climb out.
pub fn sub_path(arg: &str, path: &str) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(name) => rel.push(name),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("--cgroup {arg}: bad sub cgroup path: it must be below the container's cgroup, without '..'"),
        }
    }
    Ok(rel)
}

/// The cgroup the exec'd process joins: the container's, with the sub-cgroups `subs` asks
/// for, each of which must exist. A per-controller `subs` picks hierarchies by the
/// controllers the placement records for them.
pub fn resolve(cgroup: Option<&Placement>, subs: &SubCgroups) -> Result<Option<Placement>> {
    let Some(cgroup) = cgroup else {
        return match subs {
            SubCgroups::None => Ok(None),
            SubCgroups::All { arg, .. } => bail!("--cgroup {arg}: the container has no cgroup"),
            SubCgroups::PerController(per) => {
                bail!("--cgroup {}: the container has no cgroup", per[0].2)
            }
        };
    };
    let dirs: Vec<PathBuf> = cgroup.paths().map(Path::to_path_buf).collect();
    let mut out = dirs.clone();
    // Which entries of `out` moved to a sub-cgroup, and for which --cgroup value.
    let mut moved: Vec<(usize, &str)> = Vec::new();
    match subs {
        SubCgroups::None => return Ok(Some(cgroup.clone())),
        SubCgroups::All { arg, rel } => {
            for (i, d) in out.iter_mut().enumerate() {
                *d = d.join(rel);
                moved.push((i, arg));
            }
        }
        SubCgroups::PerController(per) => {
            // runc takes the prefix on cgroup v2 and then ignores it (the process joins the
            // container's cgroup); refusing says what would not happen.
            if cgroup.is_v2() {
                bail!(
                    "--cgroup {}: a controller prefix selects a cgroup v1 hierarchy, but this container's cgroup is v2: give the path alone",
                    per[0].2
                );
            }
            // Per hierarchy: the sub-path given and the controller it was given for.
            let mut given: Vec<Option<(&Path, &str)>> = vec![None; dirs.len()];
            for (ctrl, rel, arg) in per {
                let Some(i) = cgroup
                    .dirs
                    .iter()
                    .position(|d| !d.v2 && d.controllers.iter().any(|c| c == ctrl))
                else {
                    bail!("--cgroup {arg}: unknown controller {ctrl}: the container has no cgroup v1 hierarchy with it");
                };
                // Co-mounted controllers (cpu,cpuacct) share one directory: one path for both.
                match given[i] {
                    Some((other, other_ctrl)) if other != rel.as_path() => bail!(
                        "--cgroup {arg}: {ctrl} shares its hierarchy with {other_ctrl}, which was given {}",
                        other.display()
                    ),
                    _ => given[i] = Some((rel, ctrl)),
                }
                out[i] = dirs[i].join(rel);
                moved.push((i, arg));
            }
        }
    }
    for (i, arg) in moved {
        if !out[i].is_dir() {
            // runc's words: its join is what finds the directory missing.
            bail!(
                "--cgroup {arg}: adding pid to {}: no such file or directory",
                out[i].display()
            );
        }
    }
    Ok(Some(cgroup.at(out)))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::cgroups::placement::test_support::placement;
    use crate::cgroups::Layout;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn parse_err(v: &[&str]) -> String {
        parse_sub_cgroups(&args(v)).unwrap_err().to_string()
    }

    #[test]
    fn cgroup_flag_forms() {
        assert_eq!(parse_sub_cgroups(&[]).unwrap(), SubCgroups::None);
        // A plain path: every hierarchy; a leading '/' is still below the container.
        for (arg, rel) in [
            ("sub", "sub"),
            ("/a/b", "a/b"),
            ("./a/./b/", "a/b"),
            ("/", ""),
        ] {
            assert_eq!(
                parse_sub_cgroups(&args(&[arg])).unwrap(),
                SubCgroups::All {
                    arg: arg.into(),
                    rel: rel.into()
                },
                "{arg}"
            );
        }
        let per = |v: &[(&str, &str, &str)]| {
            SubCgroups::PerController(
                v.iter()
                    .map(|(c, p, a)| (c.to_string(), PathBuf::from(p), a.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            parse_sub_cgroups(&args(&["memory:m", "cpu,cpuacct:/c/d"])).unwrap(),
            per(&[
                ("memory", "m", "memory:m"),
                ("cpu", "c/d", "cpu,cpuacct:/c/d"),
                ("cpuacct", "c/d", "cpu,cpuacct:/c/d"),
            ])
        );
        // An empty path after the prefix is the container's own cgroup, as in runc.
        assert_eq!(
            parse_sub_cgroups(&args(&["name=systemd:"])).unwrap(),
            per(&[("name=systemd", "", "name=systemd:")])
        );
    }

    #[test]
    fn bad_cgroup_flags_name_the_value() {
        assert_eq!(
            parse_err(&["a", "memory:b"]),
            "--cgroup a: a path without CONTROLLER: must be the only --cgroup"
        );
        assert_eq!(
            parse_err(&["memory:a", "b"]),
            "--cgroup b: a path without CONTROLLER: must be the only --cgroup"
        );
        assert_eq!(
            parse_err(&["memory:a", "pids,memory:b"]),
            "--cgroup pids,memory:b: controller memory given more than once"
        );
        assert_eq!(
            parse_err(&["cpu,cpu:a"]),
            "--cgroup cpu,cpu:a: controller cpu given more than once"
        );
        for bad in [":a", "cpu,:a", ",cpu:a"] {
            assert_eq!(
                parse_err(&[bad]),
                format!("--cgroup {bad}: empty controller name")
            );
        }
        assert!(parse_err(&["memory:a:b"]).starts_with("--cgroup memory:a:b: more than one ':'"));
        for bad in ["..", "../x", "a/../../x", "memory:../x", "/.."] {
            assert!(
                parse_err(&[bad]).starts_with(&format!("--cgroup {bad}: bad sub cgroup path")),
                "{bad}"
            );
        }
    }

    /// A fake hybrid host: a hierarchy per entry of `mounts` under a temp dir ("unified" is
    /// cgroup2), the container's cgroup `c1` in each, and `subs` made below it.
    fn fake_v1(mounts: &[&str], subs: &[&str]) -> (tempfile::TempDir, Placement, Vec<PathBuf>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        for m in mounts {
            let mount_point = tmp.path().join(m);
            fs::create_dir_all(mount_point.join("c1")).unwrap();
            for sub in subs {
                fs::create_dir_all(mount_point.join("c1").join(sub)).unwrap();
            }
            dirs.push(mount_point.join("c1"));
        }
        let named: Vec<(&Path, &str)> = dirs
            .iter()
            .zip(mounts)
            .map(|(d, m)| (d.as_path(), if *m == "unified" { "" } else { *m }))
            .collect();
        let p = placement(Layout::Hybrid, &named);
        (tmp, p, dirs)
    }

    fn resolved(p: Option<&Placement>, v: &[&str]) -> Result<Vec<PathBuf>> {
        let got = resolve(p, &parse_sub_cgroups(&args(v)).unwrap())?;
        Ok(got.map_or(Vec::new(), |p| p.paths().map(Path::to_path_buf).collect()))
    }

    #[test]
    fn cgroup_flags_pick_hierarchies() {
        let (_tmp, p, dirs) = fake_v1(
            &["cpu,cpuacct", "memory", "pids", "name=systemd", "unified"],
            &["s", "t"],
        );
        let sub = |i: usize, s: &str| dirs[i].join(s);
        assert_eq!(resolved(Some(&p), &[]).unwrap(), dirs);
        // A plain path moves every hierarchy, the named one and cgroup2 included, as runc.
        assert_eq!(
            resolved(Some(&p), &["s"]).unwrap(),
            (0..5).map(|i| sub(i, "s")).collect::<Vec<_>>()
        );
        assert_eq!(resolved(Some(&p), &["/"]).unwrap(), dirs);
        // Named controllers move their hierarchies only; the rest stay in the container's.
        assert_eq!(
            resolved(Some(&p), &["memory:s", "cpuacct,pids:t"]).unwrap(),
            [
                sub(0, "t"),
                sub(1, "s"),
                sub(2, "t"),
                dirs[3].clone(),
                dirs[4].clone()
            ]
        );
        assert_eq!(
            resolved(Some(&p), &["name=systemd:s"]).unwrap()[3],
            sub(3, "s")
        );
        // Co-mounted controllers: the same path twice is fine, two paths are not.
        assert_eq!(
            resolved(Some(&p), &["cpu:s", "cpuacct:s"]).unwrap()[0],
            sub(0, "s")
        );
        let e = resolved(Some(&p), &["cpu:s", "cpuacct:t"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--cgroup cpuacct:t: cpuacct shares its hierarchy with cpu, which was given s"
        );
        let e = resolved(Some(&p), &["whaaat:s"]).unwrap_err().to_string();
        assert_eq!(e, "--cgroup whaaat:s: unknown controller whaaat: the container has no cgroup v1 hierarchy with it");
        let e = resolved(Some(&p), &["pids:missing"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "--cgroup pids:missing: adding pid to {}: no such file or directory",
                sub(2, "missing").display()
            )
        );
        // Missing on one hierarchy only is enough to refuse.
        fs::remove_dir(sub(4, "t")).unwrap();
        let e = resolved(Some(&p), &["t"]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--cgroup t: adding pid to {}: no such file or directory",
                sub(4, "t").display()
            )
        );
    }

    #[test]
    fn cgroup_v2_takes_a_plain_path_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c1");
        fs::create_dir_all(dir.join("s")).unwrap();
        fs::write(dir.join("cgroup.controllers"), "memory pids\n").unwrap();
        let p = placement(Layout::V2, &[(&dir, "v2:memory,pids")]);
        assert_eq!(resolved(Some(&p), &["s"]).unwrap(), [dir.join("s")]);
        let e = resolved(Some(&p), &["memory:s"]).unwrap_err().to_string();
        assert!(
            e.starts_with("--cgroup memory:s: a controller prefix selects a cgroup v1 hierarchy"),
            "{e}"
        );
        let e = resolved(None, &["s"]).unwrap_err().to_string();
        assert_eq!(e, "--cgroup s: the container has no cgroup");
    }
}

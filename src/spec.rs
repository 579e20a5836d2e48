//! Loading config.json into oci-spec types and checking it before anything is created.
//! Every error names the file and the JSON path of the bad field.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

/// A bundle whose config.json has been read and checked.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads `<bundle>/config.json`, parses it and validates it.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = fs::canonicalize(bundle)
        .with_context(|| format!("bundle {}: cannot open", bundle.display()))?;
    if !dir.is_dir() {
        bail!("bundle {}: not a directory", bundle.display());
    }
    let config_path = dir.join("config.json");
    let text = fs::read_to_string(&config_path)
        .with_context(|| format!("config.json: cannot read {}", config_path.display()))?;
    let mut spec = parse(&text)?;
    without_empty_namespace_paths(&mut spec);
    relative_destinations_from_root(&mut spec);
    let rootfs = validate(&spec, &dir)?;
    strip_rootfs_from_destinations(&mut spec, &rootfs);
    Ok(Bundle { dir, rootfs, spec })
}

/// A namespace with `"path": ""` is a new one, as runc takes it (Go's zero value), not a
/// path to join.
fn without_empty_namespace_paths(spec: &mut Spec) {
    let namespaces = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut());
    for ns in namespaces.into_iter().flatten() {
        if ns.path().as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            ns.set_path(None);
        }
    }
}

/// A relative mount destination is taken from `/` (runtime-spec 1.1+: deprecated, and MUST
/// be so interpreted), with runc's warning.
fn relative_destinations_from_root(spec: &mut Spec) {
    for m in spec.mounts_mut().iter_mut().flatten() {
        if !m.destination().is_absolute() {
            log::warn!(
                "mount destination {} is not absolute. Support for non-absolute mount destinations will be removed in a future release.",
                m.destination().display()
            );
            m.set_destination(Path::new("/").join(m.destination()));
        }
    }
}

/// A mount destination written as the host's path of a place inside the rootfs
/// (`/bundle/rootfs/mnt`) means that place (`/mnt`), as runc takes it (it strips the rootfs
/// lexically): without this it would be made as `/bundle/rootfs/mnt` inside the rootfs.
fn strip_rootfs_from_destinations(spec: &mut Spec, rootfs: &Path) {
    for m in spec.mounts_mut().iter_mut().flatten() {
        if let Some(inside) = crate::rootfs::paths::inside_rootfs(rootfs, m.destination()) {
            m.set_destination(inside);
        }
    }
}

/// Parses config.json text; errors carry the JSON path, line and column.
pub fn parse(text: &str) -> Result<Spec> {
    // Parsed plainly first: tracking the path costs a wrapper per value, on every create,
    // and is only needed to say where a bad config is bad.
    if let Ok(spec) = serde_json::from_str(text) {
        return Ok(spec);
    }
    if let Some(spec) = leniently(text) {
        return Ok(spec);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let (path, inner) = in_runcs_words(
            err.path().to_string(),
            unknown_capability(&err.into_inner().to_string()),
        );
        // "?" is what serde_path_to_error reports when a syntax error has no field yet.
        if path.is_empty() || path == "." || path == "?" {
            anyhow::anyhow!("config.json: {inner}")
        } else {
            anyhow::anyhow!("config.json: {path}: {inner}")
        }
    })
}

/// The second try for a config oci-spec refused as written, for three things that are not
/// errors: the runtime-spec's names of two scheduler flags, which oci-spec 0.10 spells
/// otherwise (SCHED_RESET_ON_FORK, SCHED_FLAG_D_L_OVERRUN), capability names this build
/// does not know, which the runtime-spec says to log as a warning and not fail on (runc
/// ignores them with the same warning), and empty `execCPUAffinity` lists. None when the
/// config is bad for another reason.
fn leniently(text: &str) -> Option<Spec> {
    let mut config: serde_json::Value = serde_json::from_str(text).ok()?;
    let renamed = config
        .get_mut("process")
        .is_some_and(with_spec_scheduler_flags);
    let unknown = without_unknown_capabilities(&mut config);
    let emptied = config
        .get_mut("process")
        .is_some_and(crate::cpu_affinity::without_empty_lists);
    if !renamed && unknown.is_empty() && !emptied {
        return None;
    }
    let spec = serde_json::from_value(config).ok()?;
    if !unknown.is_empty() {
        log::warn!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        );
    }
    Some(spec)
}

/// Renames the runtime-spec's scheduler flags to oci-spec's in a `process` object (of
/// config.json, or `exec -p`); whether there were any.
pub fn with_spec_scheduler_flags(process: &mut serde_json::Value) -> bool {
    const RENAMES: [(&str, &str); 2] = [
        ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
        ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
    ];
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return false;
    };
    let mut renamed = false;
    for flag in flags.iter_mut() {
        if let Some((_, ours)) = RENAMES.iter().find(|(spec, _)| flag.as_str() == Some(spec)) {
            *flag = serde_json::Value::from(*ours);
            renamed = true;
        }
    }
    renamed
}

/// Removes the names oci-spec has no capability for from the five sets of
/// `process.capabilities`; returns them sorted, each once, as runc lists them.
fn without_unknown_capabilities(config: &mut serde_json::Value) -> Vec<String> {
    let mut unknown = std::collections::BTreeSet::new();
    let Some(sets) = config
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return Vec::new();
    };
    for set in sets.values_mut().filter_map(|s| s.as_array_mut()) {
        set.retain(|name| {
            let known =
                serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
            if !known {
                if let Some(n) = name.as_str() {
                    unknown.insert(n.to_string());
                }
            }
            // A non-string stays, so that oci-spec names it as the error it is.
            known || !name.is_string()
        });
    }
    unknown.into_iter().collect()
}

/// A memory policy oci-spec refused, said with runc's "invalid memory policy ..." before
/// oci-spec's own words; other errors unchanged.
fn in_runcs_words(path: String, inner: String) -> (String, String) {
    const POLICY: &str = "linux.memoryPolicy";
    if path == POLICY && inner.starts_with("missing field `mode`") {
        return (
            format!("{POLICY}.mode"),
            "invalid memory policy mode: must be set".to_string(),
        );
    }
    match path.strip_prefix(POLICY) {
        Some(field) if field.starts_with(".mode") => {
            (path.clone(), format!("invalid memory policy mode: {inner}"))
        }
        Some(field) if field.starts_with(".flags[") => {
            (path.clone(), format!("invalid memory policy flag: {inner}"))
        }
        _ => (path, inner),
    }
}

/// oci-spec's message for a capability name it does not know ("no variant for CAP_X
/// (converted to X) at line L column C"), said plainly; other messages unchanged.
fn unknown_capability(msg: &str) -> String {
    match msg.strip_prefix("no variant for ") {
        Some(rest) => {
            let name = rest.split_whitespace().next().unwrap_or(rest);
            let at = msg.find(" at line ").map_or("", |i| &msg[i..]);
            format!("unknown capability {name}{at}")
        }
        None => msg.to_string(),
    }
}

/// Checks what must hold before a container can be created; returns the absolute rootfs path.
pub fn validate(spec: &Spec, bundle_dir: &Path) -> Result<PathBuf> {
    check_version(spec.version())?;
    crate::hooks::validate(spec.hooks().as_ref())?;

    let process = spec
        .process()
        .as_ref()
        .context("config.json: process: must be set")?;
    check_process(process, "config.json: process.")?;
    if let Some(s) = process.scheduler() {
        crate::process_attrs::validate_scheduler(s)?;
    }
    crate::memory_policy::of(spec)?;
    crate::net_devices::check(spec)?;
    if let Some(rdt) = spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) {
        crate::intel_rdt::validate(rdt, crate::intel_rdt::root().as_deref())?;
    }
    crate::cpu_affinity::of(process).map_err(|e| anyhow::anyhow!("config.json: {e}"))?;

    let root = spec
        .root()
        .as_ref()
        .context("config.json: root: must be set")?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle_dir.join(root.path())
    };
    if !rootfs.is_dir() {
        bail!(
            "config.json: root.path: {} is not a directory",
            rootfs.display()
        );
    }
    // Canonical, so that "." or symlinks name the same mount point the kernel reports.
    let rootfs = std::fs::canonicalize(&rootfs)
        .with_context(|| format!("config.json: root.path: resolve {}", rootfs.display()))?;

    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    let mut seen = HashSet::new();
    for (i, ns) in namespaces.into_iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            bail!(
                "config.json: linux.namespaces[{i}]: duplicate namespace type {}",
                ns.typ()
            );
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                bail!(
                    "config.json: linux.namespaces[{i}].path: {} is not absolute",
                    path.display()
                );
            }
            if !path.exists() {
                bail!(
                    "config.json: linux.namespaces[{i}].path: {} does not exist",
                    path.display()
                );
            }
        }
    }
    let new_userns = namespaces
        .into_iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    let has_mappings = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    if new_userns && !has_mappings {
        bail!("config.json: linux.uidMappings: must be set when a new user namespace is created");
    }
    if has_mappings && !new_userns {
        bail!("config.json: linux.uidMappings: set, but no new user namespace is created");
    }
    if let Some(l) = linux {
        let maps = [
            ("uidMappings", l.uid_mappings()),
            ("gidMappings", l.gid_mappings()),
        ];
        for (name, m) in maps {
            crate::namespaces::check_id_maps(
                &format!("linux.{name}"),
                m.as_deref().unwrap_or(&[]),
            )?;
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&LinuxNamespaceType::Uts)
    {
        bail!("config.json: hostname: cannot be set without a UTS namespace in linux.namespaces");
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        crate::rootfs::idmap::validate(spec, i, m)?;
    }
    Ok(rootfs)
}

fn check_version(version: &str) -> Result<()> {
    let major = version.split('.').next().unwrap_or("");
    if major != "1" {
        bail!("config.json: ociVersion: {version:?} is not supported (berth supports 1.x)");
    }
    Ok(())
}

/// The checks of a process's args and cwd, for config.json's process and for an exec'd one;
/// `field` names where the process came from, e.g. "config.json: process.".
pub fn check_process(process: &Process, field: &str) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("{field}args: must not be empty");
    }
    if !process.cwd().is_absolute() {
        bail!("{field}cwd: {} is not absolute", process.cwd().display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_args_and_cwd_are_checked_under_the_name_given() {
        let p: Process =
            serde_json::from_str(r#"{"args":[],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap();
        let e = check_process(&p, "--process p.json: ")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--process p.json: args: must not be empty");
        let p: Process =
            serde_json::from_str(r#"{"args":["sh"],"cwd":"rel","user":{"uid":0,"gid":0}}"#)
                .unwrap();
        let e = check_process(&p, "config.json: process.")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "config.json: process.cwd: rel is not absolute");
        let p: Process =
            serde_json::from_str(r#"{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap();
        check_process(&p, "config.json: process.").unwrap();
    }

    fn minimal(extra: &str) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
                "process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}}{extra}}}"#
        )
    }

    #[test]
    fn an_empty_namespace_path_is_a_new_namespace() {
        let mut spec = parse(&minimal(
            r#","linux":{"namespaces":[{"type":"mount","path":""},{"type":"pid","path":"/proc/1/ns/pid"}]}"#,
        ))
        .unwrap();
        without_empty_namespace_paths(&mut spec);
        let paths: Vec<_> = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.path().clone())
            .collect();
        assert_eq!(paths, [None, Some("/proc/1/ns/pid".into())]);
    }

    #[test]
    fn a_destination_naming_the_rootfs_on_the_host_is_taken_inside_it() {
        let mut spec = parse(&minimal(
            r#","mounts":[
                {"destination":"/b/rootfs/mnt/x","type":"bind","source":"/s"},
                {"destination":"/b/rootfs/../rootfs/./y/","type":"bind","source":"/s"},
                {"destination":"/b/rootfs","type":"tmpfs","source":"t"},
                {"destination":"/b/rootfs2/z","type":"tmpfs","source":"t"},
                {"destination":"/mnt/b/rootfs","type":"tmpfs","source":"t"}]"#,
        ))
        .unwrap();
        strip_rootfs_from_destinations(&mut spec, Path::new("/b/rootfs"));
        let dests: Vec<_> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            ["/mnt/x", "/y", "/", "/b/rootfs2/z", "/mnt/b/rootfs"]
        );
    }

    #[test]
    fn scheduler_flags_by_the_runtime_specs_names() {
        use oci_spec::runtime::LinuxSchedulerFlag as F;
        let text = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
              "scheduler":{"policy":"SCHED_DEADLINE","runtime":1,"deadline":2,"period":3,
                "flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN","SCHED_FLAG_RECLAIM"]}}}"#;
        let spec = parse(text).unwrap();
        let flags = spec
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .as_ref()
            .unwrap()
            .flags()
            .clone();
        assert_eq!(
            flags.unwrap(),
            [
                F::SchedResetOnFork,
                F::SchedFlagDLOverrun,
                F::SchedFlagReclaim
            ]
        );
        let bad = text.replace("SCHED_FLAG_RECLAIM", "SCHED_FLAG_BOGUS");
        assert!(parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("process.scheduler.flags"));
    }

    #[test]
    fn unknown_capability_names_are_dropped_and_the_rest_kept() {
        use oci_spec::runtime::Capability as C;
        let text = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},
              "capabilities":{"bounding":["CAP_UNKNOWN","CAP_KILL","UNKNOWN_CAP"],
                "effective":["CAP_KILL"],"ambient":["CAP_UNKNOWN"]}}}"#;
        let spec = parse(text).unwrap();
        let caps = spec.process().as_ref().unwrap().capabilities().clone();
        let caps = caps.unwrap();
        let bounding: Vec<C> = caps.bounding().clone().unwrap().into_iter().collect();
        assert_eq!(bounding, [C::Kill]);
        assert!(caps.ambient().clone().unwrap().is_empty());

        let mut config: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            without_unknown_capabilities(&mut config),
            ["CAP_UNKNOWN", "UNKNOWN_CAP"]
        );
        // A capability that is not a string is still an error, named by its path.
        let bad = text.replace(r#""CAP_KILL","UNKNOWN_CAP""#, "7");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("process.capabilities.bounding"), "{e}");
    }

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    fn err_of(config: &str) -> String {
        let dir = bundle_with(config);
        format!("{:#}", load_bundle(dir.path()).unwrap_err())
    }

    #[test]
    fn loads_minimal_bundle() {
        let dir = bundle_with(&minimal(""));
        let b = load_bundle(dir.path()).unwrap();
        assert_eq!(
            b.rootfs,
            fs::canonicalize(dir.path()).unwrap().join("rootfs")
        );
        assert_eq!(
            b.spec.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "sh"
        );
    }

    #[test]
    fn rootfs_dot_is_the_canonical_bundle_dir() {
        let dir = bundle_with(&minimal("").replace("\"rootfs\"", "\".\""));
        let b = load_bundle(dir.path()).unwrap();
        assert_eq!(b.rootfs, fs::canonicalize(dir.path()).unwrap());
    }

    #[test]
    fn missing_bundle_names_it() {
        let e = format!(
            "{:#}",
            load_bundle(Path::new("/nonexistent/bundle")).unwrap_err()
        );
        assert!(
            e.starts_with("bundle /nonexistent/bundle: cannot open"),
            "{e}"
        );
    }

    #[test]
    fn missing_config_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", load_bundle(dir.path()).unwrap_err());
        assert!(
            e.contains("config.json: cannot read") && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn invalid_json_has_line_and_column() {
        let e = err_of("{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}");
        assert!(
            e.starts_with("config.json:") && e.contains("line 3 column 3"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_path() {
        let e = err_of(r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":"sh"}}"#);
        assert!(e.contains("process.args"), "{e}");
        let e = err_of(&minimal(r#","hostname":5"#));
        assert!(e.starts_with("config.json: hostname:"), "{e}");
    }

    #[test]
    fn a_bad_memory_policy_is_named_in_runcs_words() {
        let policy = |p: &str| {
            parse(&format!(
                r#"{{"ociVersion":"1.2.0","linux":{{"memoryPolicy":{p}}}}}"#
            ))
            .unwrap_err()
            .to_string()
        };
        let err = policy("{}");
        assert!(
            err.starts_with(
                "config.json: linux.memoryPolicy.mode: invalid memory policy mode: must be set"
            ),
            "{err}"
        );
        let err = policy(r#"{"mode":"INTERLEAVE"}"#);
        assert!(
            err.starts_with("config.json: linux.memoryPolicy.mode: invalid memory policy mode: unknown variant `INTERLEAVE`"),
            "{err}"
        );
        let err = policy(r#"{"mode":"MPOL_BIND","flags":["MPOL_F_STATIC_NODES","badflag"]}"#);
        assert!(
            err.starts_with("config.json: linux.memoryPolicy.flags[1]: invalid memory policy flag: unknown variant `badflag`"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_version() {
        let e = err_of(&minimal("").replace("1.0.2", "2.0.0"));
        assert!(e.contains("ociVersion: \"2.0.0\" is not supported"), "{e}");
    }

    #[test]
    fn empty_args() {
        let e = err_of(&minimal("").replace(r#"["sh"]"#, "[]"));
        assert_eq!(e, "config.json: process.args: must not be empty");
    }

    #[test]
    fn missing_root_path() {
        let e = err_of(&minimal("").replace("\"rootfs\"", "\"nope\""));
        assert!(
            e.starts_with("config.json: root.path:") && e.contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn missing_process() {
        let e = err_of(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#);
        assert_eq!(e, "config.json: process: must be set");
    }

    #[test]
    fn relative_cwd() {
        let e = err_of(&minimal("").replace(r#""cwd":"/""#, r#""cwd":"tmp""#));
        assert!(e.starts_with("config.json: process.cwd:"), "{e}");
    }

    #[test]
    fn namespace_rules() {
        let dup = r#","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}"#;
        assert!(err_of(&minimal(dup)).contains("linux.namespaces[1]: duplicate"));
        let nopath = r#","linux":{"namespaces":[{"type":"network","path":"/no/such/ns"}]}"#;
        assert!(err_of(&minimal(nopath))
            .contains("linux.namespaces[0].path: /no/such/ns does not exist"));
        let user = r#","linux":{"namespaces":[{"type":"user"}]}"#;
        assert!(err_of(&minimal(user)).contains("linux.uidMappings: must be set"));
        let maps = r#","linux":{"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#;
        assert!(err_of(&minimal(maps)).contains("no new user namespace"));
        let host = r#","hostname":"h""#;
        assert!(err_of(&minimal(host)).contains("hostname: cannot be set without a UTS namespace"));
        let bad = r#","linux":{"namespaces":[{"type":"bogus"}]}"#;
        assert!(err_of(&minimal(bad)).contains("linux.namespaces[0].type"));
    }

    #[test]
    fn relative_mount_destination_is_taken_from_the_root() {
        let m = r#","mounts":[{"destination":"tmp/x","type":"tmpfs","source":"tmpfs"}]"#;
        let dir = bundle_with(&minimal(m));
        let b = load_bundle(dir.path()).unwrap();
        let dest = b.spec.mounts().as_ref().unwrap()[0].destination().clone();
        assert_eq!(dest, Path::new("/tmp/x"));
    }
}

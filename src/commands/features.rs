//! `berth features`: runc's Features JSON (runtime-spec features.md), built from the tables
//! the rest of berth works from, so it says what this build on this host really does.

use std::collections::HashMap;

use anyhow::Result;
use oci_spec::runtime::{
    Apparmor, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, MemoryPolicy, MountExtensions,
    NetDevices, Seccomp, Selinux,
};
use serde_json::Value;

use crate::{hooks, namespaces, process_attrs, rootfs, seccomp};

/// The oldest config version berth takes (it accepts every 1.x; see spec::check_version).
const OCI_VERSION_MIN: &str = "1.0.0";

pub fn features() -> Result<i32> {
    let json = serde_json::to_string_pretty(&without_nulls(serde_json::to_value(build())?))?;
    println!("{json}");
    Ok(0)
}

fn names<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|i| seccomp::spec_name(&i)).collect()
}

pub fn build() -> Features {
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());

    let mut seccomp_f = Seccomp::default();
    seccomp_f
        .set_enabled(Some(true))
        .set_actions(Some(seccomp::ACTIONS.to_vec()))
        .set_operators(Some(names(seccomp::OPERATORS.iter())))
        .set_archs(Some(seccomp::known_archs()))
        .set_known_flags(Some(names(seccomp::FLAGS.iter())))
        .set_supported_flags(Some(names(seccomp::supported_flags())));

    let mut cgroup = Cgroup::default();
    cgroup
        .set_v1(Some(true))
        .set_v2(Some(true))
        .set_systemd(Some(true))
        .set_systemd_user(Some(true))
        .set_rdma(Some(true));

    let mut apparmor = Apparmor::default();
    apparmor.set_enabled(Some(process_attrs::apparmor_enabled()));
    let mut selinux = Selinux::default();
    selinux.set_enabled(Some(process_attrs::selinux_enabled()));
    let mut rdt = IntelRdt::default();
    // (As runc: enabled where resctrl is mounted; berth then places containers in it.)
    rdt.set_enabled(Some(crate::intel_rdt::root().is_some()));
    let mut idmap = IDMap::default();
    // Idmapped bind mounts: containerd offers Kubernetes' `hostUsers: false` only with this.
    idmap.set_enabled(Some(crate::rootfs::idmap::supported()));
    let mut mount_ext = MountExtensions::default();
    mount_ext.set_idmap(Some(idmap));
    let mut net_devices = NetDevices::default();
    net_devices.set_enabled(Some(true));

    let mut memory_policy = MemoryPolicy::default();
    let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    memory_policy
        .set_modes(Some(strings(&crate::memory_policy::MODES)))
        .set_flags(Some(strings(&crate::memory_policy::FLAGS)));

    let mut linux = LinuxFeature::default();
    linux
        .set_namespaces(Some(namespaces::JOIN_ORDER.to_vec()))
        .set_capabilities(Some(caps.iter().map(|c| c.to_string()).collect()))
        .set_cgroup(Some(cgroup))
        .set_seccomp(Some(seccomp_f))
        .set_apparmor(Some(apparmor))
        .set_selinux(Some(selinux))
        .set_intel_rdt(Some(rdt))
        .set_mount_extensions(Some(mount_ext))
        .set_memory_policy(Some(memory_policy))
        .set_net_devices(Some(net_devices));

    let mut annotations = HashMap::new();
    annotations.insert(
        "berth.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    annotations.insert(
        "berth.commit".to_string(),
        option_env!("BERTH_COMMIT").unwrap_or("unknown").to_string(),
    );
    // runc's key (engines read runc's features): checkpoint/restore work where CRIU does.
    if crate::criu::installed() {
        annotations.insert(
            "org.opencontainers.runc.checkpoint.enabled".to_string(),
            "true".to_string(),
        );
    }
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        annotations.insert(
            "io.github.seccomp.libseccomp.version".to_string(),
            format!("{}.{}.{}", v.major, v.minor, v.micro),
        );
    }

    let mut f = Features::default();
    f.set_oci_version_min(OCI_VERSION_MIN.to_string())
        .set_oci_version_max(crate::SPEC_VERSION.to_string())
        .set_hooks(Some(
            hooks::Kind::ALL
                .iter()
                .map(|k| k.name().to_string())
                .collect(),
        ))
        .set_mount_options(Some(
            rootfs::options::known()
                .into_iter()
                .map(String::from)
                .collect(),
        ))
        .set_linux(Some(linux))
        .set_annotations(Some(annotations))
        // The annotations that change what berth does (features.md: a key ending in "." is a
        // prefix): with --systemd-cgroup, each org.systemd.property.NAME becomes a property
        // of the container's unit, as runc.
        .set_potentially_unsafe_config_annotations(Some(vec![
            crate::cgroups::systemd::PROPERTY_ANNOTATION_PREFIX.to_string(),
        ]));
    f
}

/// runc omits unknown fields rather than printing null.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed() -> Value {
        without_nulls(serde_json::to_value(build()).unwrap())
    }

    #[test]
    fn parses_back_into_oci_spec_features_with_runc_keys() {
        let v = printed();
        let f: Features = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(f, build());
        for key in [
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "linux",
            "annotations",
        ] {
            assert!(v.get(key).is_some(), "no {key}");
        }
        assert_eq!(
            v["potentiallyUnsafeConfigAnnotations"],
            serde_json::json!(["org.systemd.property."])
        );
        let linux = &v["linux"];
        for key in [
            "namespaces",
            "capabilities",
            "cgroup",
            "seccomp",
            "apparmor",
            "selinux",
            "intelRdt",
            "mountExtensions",
        ] {
            assert!(linux.get(key).is_some(), "no linux.{key}");
        }
        assert_eq!(
            linux["mountExtensions"]["idmap"]["enabled"],
            crate::sys::has_mount_setattr()
        );
        let options = v["mountOptions"].as_array().unwrap();
        assert!(options.iter().any(|o| o == "idmap") && options.iter().any(|o| o == "ridmap"));
        assert_eq!(
            linux["memoryPolicy"]["modes"].as_array().map(Vec::len),
            Some(crate::memory_policy::MODES.len())
        );
        assert!(!v.to_string().contains("null"), "{v}");
    }

    #[test]
    fn version_range_is_what_the_config_check_accepts() {
        let f = build();
        for version in [f.oci_version_min(), f.oci_version_max()] {
            let text = format!(r#"{{"ociVersion":"{version}"}}"#);
            crate::spec::parse(&text).unwrap_or_else(|e| panic!("{version}: {e:#}"));
        }
    }

    #[test]
    fn mount_options_are_the_parsers_own() {
        let f = build();
        let listed = f.mount_options().as_ref().unwrap();
        assert_eq!(
            listed.len(),
            rootfs::options::known().len(),
            "every known option listed"
        );
        for name in listed {
            let o = rootfs::options::parse(std::slice::from_ref(name));
            assert_eq!(o.data, "", "{name} is listed but would be filesystem data");
        }
        assert!(!listed.iter().any(|o| o.contains('=')));
    }

    #[test]
    fn capabilities_are_names_berth_converts() {
        let f = build();
        let caps = f.linux().as_ref().unwrap().capabilities().as_ref().unwrap();
        assert!(caps.len() >= 41, "{caps:?}");
        for name in caps {
            // The path a config's capability takes: oci-spec's enum, then the caps crate.
            let spec: oci_spec::runtime::Capability =
                serde_json::from_value(Value::String(name.clone()))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = seccomp::spec_name(&spec);
            assert!(back.parse::<caps::Capability>().is_ok(), "{name}");
        }
    }

    #[test]
    fn namespaces_each_map_to_their_own_clone_flag() {
        let f = build();
        let ns = f.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        assert_eq!(ns.len(), 8);
        let mut flags: Vec<_> = ns.iter().map(|t| namespaces::flag(*t).bits()).collect();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(flags.len(), 8);
    }

    #[test]
    fn seccomp_lists_come_from_the_mapping() {
        let f = build();
        let s = f.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert_eq!(s.actions().as_ref().unwrap(), &seccomp::ACTIONS.to_vec());
        let ops = s.operators().as_ref().unwrap();
        assert!(ops.contains(&"SCMP_CMP_MASKED_EQ".to_string()) && ops.len() == 7);
        let known = s.known_flags().as_ref().unwrap();
        for flag in s.supported_flags().as_ref().unwrap() {
            assert!(known.contains(flag), "{flag} supported but not known");
        }
        assert!(s.archs().as_ref().unwrap().len() >= 2);
    }

    #[test]
    fn hooks_follow_what_create_does() {
        let f = build();
        let hooks = f.hooks().as_ref().unwrap();
        // All six, the names config.json uses (hooks.rs runs each of them).
        assert_eq!(
            hooks,
            &[
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop"
            ]
        );
    }
}

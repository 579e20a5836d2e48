//! config.json: everything `create` checks before anything exists, then the checks init
//! makes before it changes anything, on every input that parses. Limits are written into
//! fake cgroup trees in the scratch directory; nothing is mounted, loaded or forked.
#![no_main]

use berth::capabilities::CapabilitySets;
use berth::cgroups::{self, devices, resources};
use berth::namespaces::Namespaces;
use berth::rootfs::options;
use berth::{process_attrs, seccomp, spec, sysctl};
use berth_fuzz::{bundle, host_hierarchies, FakeCgroups, HOST_PROC_CGROUP};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = spec::parse(text) else {
        return;
    };
    // spec::load_bundle's checks: reads (stat, canonicalize) only.
    if spec::validate(&spec, bundle()).is_err() {
        return;
    }
    // process::create, in its order, up to the state dir.
    let _ = process_attrs::check_lsm(&spec);
    let namespaces = Namespaces::from_spec(&spec);
    let linux = spec.linux().as_ref();
    if let Some(sysctls) = linux.and_then(|l| l.sysctl().as_ref()) {
        let _ = sysctl::validate(sysctls, &namespaces);
        for key in sysctls.keys() {
            let _ = sysctl::proc_path(key);
        }
    }
    let cgroups_path = linux.and_then(|l| l.cgroups_path().clone());
    let _ = cgroups::resolve(
        cgroups_path.as_deref(),
        "fuzz",
        host_hierarchies(),
        HOST_PROC_CGROUP,
        cgroups::Driver::Cgroupfs,
    );
    let fake = FakeCgroups::get();
    if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
        let _ = resources::first_limit(r);
        let _ = resources::apply(&fake.v2, r, false);
    }
    let _ = fake.hybrid.apply_resources(&spec, false);
    let _ = devices::compile(&resources::device_rules(&spec));
    // Init: mount options, the seccomp filter (built, never loaded), capabilities.
    for m in spec.mounts().iter().flatten() {
        let o = options::parse(m.options().as_deref().unwrap_or(&[]));
        let _ = (o.is_bind(), o.remount_flags());
    }
    if let Some(profile) = linux.and_then(|l| l.seccomp().as_ref()) {
        let _ = seccomp::uses_notify(profile);
        let _ = seccomp::build(profile);
    }
    if let Some(process) = spec.process() {
        let _ = CapabilitySets::from_spec(process.capabilities().as_ref()).check_held();
    }
});

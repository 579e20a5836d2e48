//! `update -r`: a LinuxResources JSON merged into the stored resources and applied, with
//! checkBeforeUpdate, to fake cgroup trees (hybrid and pure v2) in the scratch directory.
#![no_main]

use std::sync::OnceLock;

use berth::cgroups::resources;
use berth::commands::{merge_resources, parse_resources};
use berth_fuzz::FakeCgroups;
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxResources;

/// What a container created with a few limits has stored.
fn stored() -> &'static LinuxResources {
    static R: OnceLock<LinuxResources> = OnceLock::new();
    R.get_or_init(|| {
        serde_json::from_str(
            r#"{"memory":{"limit":104857600,"swap":209715200},"cpu":{"shares":512,"quota":50000,"period":100000},"pids":{"limit":64}}"#,
        )
        .expect("stored resources")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(changes) = parse_resources(text, "fuzz.json") else {
        return;
    };
    let fake = FakeCgroups::get();
    for old in [None, Some(stored().clone())] {
        let Ok(r) = merge_resources(old, changes.clone()) else {
            continue;
        };
        let _ = resources::first_limit(&r);
        let _ = resources::apply(&fake.hybrid, &r, true);
        let _ = resources::apply(&fake.v2, &r, true);
    }
});

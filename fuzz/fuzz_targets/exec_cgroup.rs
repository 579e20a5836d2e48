//! `exec --cgroup` values (NUL-separated, one per flag): PATH or CONTROLLER[,...]:PATH.
#![no_main]

use std::path::{Component, Path};

use berth::cgroups::exec_cgroup::{parse_sub_cgroups, SubCgroups};
use libfuzzer_sys::fuzz_target;

fn below(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_)))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = match text.is_empty() {
        true => Vec::new(),
        false => text.split('\0').map(str::to_string).collect(),
    };
    match parse_sub_cgroups(&args) {
        Ok(SubCgroups::None) => assert!(args.is_empty()),
        Ok(SubCgroups::All { rel, .. }) => assert!(below(&rel), "{args:?}: {rel:?}"),
        Ok(SubCgroups::PerController(per)) => {
            for (ctrl, rel, _) in per {
                assert!(!ctrl.is_empty() && !ctrl.contains(','), "{args:?}");
                assert!(below(&rel), "{args:?}: {rel:?}");
            }
        }
        Err(_) => {}
    }
});

//! `linux.cgroupsPath` resolved against the host's hierarchies. Input: the path, then
//! optionally NUL, the container id, NUL, mountinfo text, NUL, /proc/self/cgroup text (the
//! host's own stand in when they are not given).
#![no_main]

use std::path::{Component, Path};

use berth::cgroups;
use berth_fuzz::{host_hierarchies, HOST_PROC_CGROUP};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let path = parts.next().unwrap_or("");
    let id = parts.next().unwrap_or("fuzz");
    let (mountinfo, proc_cgroup) = (parts.next(), parts.next());
    let parsed;
    let hierarchies = match mountinfo {
        Some(m) => {
            parsed = cgroups::parse_hierarchies(m);
            &parsed[..]
        }
        None => host_hierarchies(),
    };
    let own = proc_cgroup.unwrap_or(HOST_PROC_CGROUP);
    let driver = cgroups::Driver::Cgroupfs;
    let Ok(placement) = cgroups::resolve(Some(Path::new(path)), id, hierarchies, own, driver)
    else {
        return;
    };
    if mountinfo.is_some() || proc_cgroup.is_some() || id.contains("..") {
        return; // the host's own files are trusted; only the config's path is checked
    }
    for d in placement.paths() {
        assert!(
            hierarchies.iter().any(|h| d.starts_with(&h.mount_point)),
            "{path:?}: {} is outside every hierarchy",
            d.display()
        );
        assert!(
            !d.components().any(|c| c == Component::ParentDir),
            "{path:?}: {} climbs",
            d.display()
        );
    }
});

//! berth's integration tests. They need root (namespaces, mounts, cgroups), run the real
//! binary on real busybox bundles and check the effects from the host.

#![deny(clippy::undocumented_unsafe_blocks)]

mod harness;

mod bad_input;
mod cgroups;
mod checkpoint;
mod docker;
mod engines;
mod escapes;
mod exec;
mod filesystem;
mod hooks;
mod idmap;
mod install;
mod lifecycle;
mod namespaces;
mod placement;
mod races;
mod robustness;
mod rootless;
mod security;
mod systemd;
mod terminal;

//! berth as a library: one module per area of the OCI runtime spec. The `berth` binary
//! (main.rs) parses the command line and dispatches here; the fuzz targets call the parsers.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod capabilities;
pub mod cgroups;
pub mod channel;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod container;
pub mod cpu_affinity;
pub mod cpu_list;
pub mod criu;
pub mod foreground;
pub mod hooks;
pub mod intel_rdt;
pub mod logging;
pub mod memory_policy;
pub mod namespaces;
pub mod net_devices;
pub mod notify_socket;
pub mod pidfd_socket;
pub mod process;
pub mod process_attrs;
pub mod procfs;
pub mod rlimits;
pub mod rootfs;
pub mod sealed_exe;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod sys;
pub mod sysctl;
pub mod tty;

/// The runtime-spec version berth implements (`--version`, `features`).
pub const SPEC_VERSION: &str = "1.2.0";

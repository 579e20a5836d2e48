//! `exec`'s process: `-p FILE` (the JSON containerd writes) or the config's process with the
//! command-line flags merged in. Input: process JSON, then NUL-separated arguments of
//! `berth exec`. With `-p` the JSON is the file (written to the scratch directory, whatever
//! path the arguments name); without, it stands in for config.json's process.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use berth::capabilities::CapabilitySets;
use berth::cgroups::exec_cgroup::parse_sub_cgroups;
use berth::cli::ExecArgs;
use berth::process::exec_process::exec_process;
use berth::{process_attrs, spec};
use berth_fuzz::scratch;
use clap::{Args, FromArgMatches};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::{Process, Spec};

/// config.json as `berth spec` writes it.
fn base_spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        spec::parse(include_str!("../seeds/config_json/berth-spec.json")).expect("seed spec")
    })
}

/// `berth exec`'s arguments alone (as berth's command line defines them), built once:
/// building the whole command line and clap's debug checks of it would dominate each run.
fn exec_command() -> &'static clap::Command {
    static CMD: OnceLock<clap::Command> = OnceLock::new();
    CMD.get_or_init(|| {
        let mut cmd = ExecArgs::augment_args(clap::Command::new("exec")).no_binary_name(true);
        cmd.build();
        cmd
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let json = parts.next().unwrap_or_default();
    let Ok(matches) = exec_command()
        .clone()
        .try_get_matches_from(parts.map(OsStr::from_bytes))
    else {
        return;
    };
    let Ok(mut args) = ExecArgs::from_arg_matches(&matches) else {
        return;
    };
    // exec parses --cgroup before anything else.
    let _ = parse_sub_cgroups(&args.cgroup);
    let mut spec = base_spec().clone();
    if args.process.is_some() {
        let file = scratch().join("process.json");
        std::fs::write(&file, json).expect("write process.json");
        args.process = Some(file);
    } else if let Ok(p) = serde_json::from_slice::<Process>(json) {
        spec.set_process(Some(p));
    }
    let Ok(process) = exec_process(&args, &spec) else {
        return;
    };
    let _ = process_attrs::check_lsm_process(&process);
    let _ = CapabilitySets::from_spec(process.capabilities().as_ref()).check_held();
});

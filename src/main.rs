//! berth: parse the command line, set up logging, dispatch. Nothing else.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::path::PathBuf;

use clap::Parser;

use berth::cli::{Cli, Command, DEFAULT_ROOT};
use berth::{commands, logging, SPEC_VERSION};

fn main() {
    // go-runc passes `restore -no-subreaper` with one dash, as Go's flag packages take it.
    let args = std::env::args_os().map(|a| match a.to_str() {
        Some("-no-subreaper") => "--no-subreaper".into(),
        _ => a,
    });
    let cli = Cli::parse_from(args).with_globals_in_create_opts();
    if cli.global.version {
        println!("berth version {}", env!("CARGO_PKG_VERSION"));
        println!(
            "commit: {}",
            option_env!("BERTH_COMMIT").unwrap_or("unknown")
        );
        println!("spec: {SPEC_VERSION}");
        return;
    }
    let Some(command) = cli.command else {
        eprintln!("berth: no command given; see berth --help");
        std::process::exit(2);
    };
    if let Err(e) = commands::close_callers_fds(&command) {
        eprintln!("berth: {e:#}");
        std::process::exit(1);
    }
    if let Err(e) = logging::init(
        cli.global.log.as_deref(),
        cli.global.log_format,
        cli.global.debug,
    ) {
        eprintln!("berth: {e:#}");
        std::process::exit(1);
    }
    let root = state_root(cli.global.root.clone());
    let result = match &command {
        Command::Create(a) => commands::create(&root, a),
        Command::Start(a) => commands::start(&root, &a.id),
        Command::State(a) => commands::state(&root, &a.id),
        Command::Kill(a) => commands::kill(&root, a),
        Command::Delete(a) => commands::delete(&root, a),
        Command::Run(a) => commands::run(&root, a),
        Command::List(a) => commands::list(&root, cli.global.root.is_some(), a),
        Command::Spec(a) => commands::spec(a),
        Command::Pause(a) => commands::pause(&root, &a.id),
        Command::Resume(a) => commands::resume(&root, &a.id),
        Command::Ps(a) => commands::ps(&root, a),
        Command::Update(a) => commands::update(&root, a),
        Command::Events(a) => commands::events(&root, a),
        Command::Features => commands::features(),
        Command::Exec(a) => commands::exec(&root, a),
        Command::Checkpoint(a) => commands::checkpoint(&root, a),
        Command::Restore(a) => commands::restore(&root, a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            if cli.global.log.is_some() {
                log::error!("{msg}");
            }
            eprintln!("berth: {msg}");
            // As runc: a failed exec exits 255, apart from any status of the process's own.
            let code = if matches!(command, Command::Exec(_)) {
                255
            } else {
                1
            };
            std::process::exit(code);
        }
    }
}

/// `--root`, else /run/berth for root, else $XDG_RUNTIME_DIR/berth. As runc, "root" is the
/// host's: uid 0 in a user namespace (rootless podman runs berth so) uses $XDG_RUNTIME_DIR
/// too, unless $USER says root.
fn state_root(flag: Option<PathBuf>) -> PathBuf {
    if let Some(root) = flag {
        return root;
    }
    let host_root = nix::unistd::geteuid().is_root()
        && (!berth::namespaces::in_user_namespace()
            || std::env::var("USER").is_ok_and(|u| u == "root"));
    if !host_root {
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("berth");
        }
    }
    PathBuf::from(DEFAULT_ROOT)
}

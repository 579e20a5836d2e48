//! Writes berth's man pages and shell completions, generated from the clap definitions in
//! `berth::cli`, under the directory given (default target/docs):
//!
//!   man/berth.8, man/berth-SUBCOMMAND.8 (one per subcommand)
//!   completions/berth.bash, completions/_berth (zsh), completions/berth.fish
//!
//! An example rather than a subcommand or a second binary, so that the shipped binary carries
//! neither the generators nor their dependencies (`make docs` runs it).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

/// berth is run by root or by engines, as runc: section 8, as runc's own pages.
const SECTION: &str = "8";

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/docs"));
    let mut cmd = berth::cli::Cli::command()
        // berth(8)'s DESCRIPTION; the rule on global options is cli.rs's own (not clap's
        // `global`), so no generated part of a page says it.
        .long_about(
            "berth creates and runs containers from OCI bundles, with the command line of \
             runc: containerd, podman and docker drive it in place of runc.\n\n\
             As in runc, the global options come before the subcommand \
             (berth --root DIR state ID). Each subcommand has a page of its own, \
             berth-SUBCOMMAND(8).",
        );
    // `berth help SUBCOMMAND` prints what the pages say: no page of its own (the completions
    // keep it, as berth takes it).
    let mut pages = cmd.clone().disable_help_subcommand(true);
    // Built as a whole: a subcommand gets its page's name (berth-create) and synopsis
    // (berth create) from its parent only then, besides its deferred arguments (cli::Deferred).
    pages.build();
    write_man_pages(&pages, &out.join("man"))?;
    write_completions(&mut cmd, &out.join("completions"))
}

fn write_man_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let source = format!("berth {}", env!("CARGO_PKG_VERSION"));
    let page = |cmd: &clap::Command, see_also: &str| -> std::io::Result<()> {
        let man = Man::new(cmd.clone())
            .section(SECTION)
            .source(source.as_str())
            .manual("System Manager's Manual");
        let mut w = BufWriter::new(File::create(dir.join(man.get_filename()))?);
        man.render(&mut w)?;
        let mut roff = Roff::new();
        roff.control("SH", ["SEE ALSO"]).text([roman(see_also)]);
        roff.to_writer(&mut w)?;
        w.flush()
    };
    page(cmd, "runc(8)")?;
    for sub in cmd.get_subcommands() {
        page(sub, "berth(8)")?;
    }
    Ok(())
}

fn write_completions(cmd: &mut clap::Command, dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    // The names each shell loads them by from its completion directory.
    for (shell, file) in [
        (Shell::Bash, "berth.bash"),
        (Shell::Zsh, "_berth"),
        (Shell::Fish, "berth.fish"),
    ] {
        let mut w = BufWriter::new(File::create(dir.join(file))?);
        clap_complete::generate(shell, cmd, "berth", &mut w);
        w.flush()?;
    }
    Ok(())
}

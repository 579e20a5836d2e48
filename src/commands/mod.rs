//! One function per subcommand: look the container up, call the operation, print.

mod cgroup;
mod features;
mod run;
mod spec;

pub use cgroup::{events, merge_resources, parse_resources, pause, ps, resume, update};
pub use features::features;
pub use run::run;
pub use spec::spec;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{CreateArgs, DeleteArgs, ExecArgs, KillArgs, ListArgs, ListFormat};
use crate::container::{self, Container};
use crate::{process, signals};

/// Closes the fds berth's caller left open past stdio, LISTEN_FDS and `--preserve-fds`, for
/// the commands that start a process: berth forks the container's init and exec'd processes
/// from itself, so without this they would hold the caller's files until their execve (runc
/// passes its init only stdio and the fds it means to). Called first, before berth opens
/// anything of its own (its log file included); berth never uses the caller's fds, but for
/// an `exec --process /dev/fd/N` (a shell's `<(...)`), which is kept to be read.
pub fn close_callers_fds(command: &crate::cli::Command) -> Result<()> {
    use crate::cli::Command;
    // `exec --process <(...)`: the file is an fd of the caller's, read after this.
    let keep = match command {
        Command::Exec(a) => a.process.as_deref().and_then(crate::sys::fd_named_by),
        _ => None,
    };
    let first = match command {
        Command::Create(a) => crate::sys::first_fd_past(process::listen_fds(), a.opts.preserve_fds),
        Command::Run(a) => crate::sys::first_fd_past(process::listen_fds(), a.opts.preserve_fds),
        Command::Exec(a) => crate::sys::first_fd_past(0, a.preserve_fds),
        Command::Restore(_) => Ok(3),
        _ => return Ok(()),
    };
    // A count past any fd number is refused by the command itself, naming the flag.
    match first {
        Ok(first) => crate::sys::close_from(first, keep),
        Err(_) => Ok(()),
    }
}

pub fn create(root: &Path, args: &CreateArgs) -> Result<i32> {
    let bundle = process::load(&args.id, &args.opts)?;
    // Init waits at the start gate running berth's binary, in sight of anything exec'd into
    // the created container (and of a joined PID namespace's processes).
    crate::sealed_exe::ensure()?;
    process::create(
        root,
        &args.id,
        &args.opts,
        bundle,
        None,
        process::StartGate::Fifo,
    )?;
    Ok(0)
}

pub fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    // Its child runs berth's binary in the container's PID namespace until it execs.
    crate::sealed_exe::ensure()?;
    process::exec::exec(root, args)
}

/// A `run` whose init joins an existing PID namespace: init runs berth's binary in sight of
/// that namespace's processes (a new PID namespace has none until init execs, and `run`
/// starts it at once).
pub fn seal_if_joining_a_pid_namespace(bundle: &crate::spec::Bundle) -> Result<()> {
    let ns = crate::namespaces::Namespaces::from_spec(&bundle.spec);
    match ns
        .join
        .iter()
        .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::Pid)
    {
        true => crate::sealed_exe::ensure(),
        false => Ok(()),
    }
}

pub fn checkpoint(root: &Path, args: &crate::cli::CheckpointArgs) -> Result<i32> {
    crate::checkpoint::checkpoint(root, args)?;
    Ok(0)
}

pub fn restore(root: &Path, args: &crate::cli::RestoreArgs) -> Result<i32> {
    process::restore::restore(root, args)
}

pub fn start(root: &Path, id: &str) -> Result<i32> {
    let (c, lock) = Container::load_locked(root, id)?;
    let notify = crate::notify_socket::listen(&c.dir)?;
    c.start()?;
    // Waiting for the container's READY=1 must not keep `kill` or `delete` out.
    drop(lock);
    forward_ready(&c, notify)?;
    Ok(0)
}

/// With a NOTIFY_SOCKET: waits for the container's READY=1 and passes it on.
pub fn forward_ready(
    c: &Container,
    notify: Option<std::os::unix::net::UnixDatagram>,
) -> Result<()> {
    // (The pidfd only when there is a socket: most containers have none.)
    match notify.map(|sock| (sock, c.init_pidfd())) {
        Some((sock, Some(init))) => crate::notify_socket::forward_ready(&sock, &init, c.state.pid),
        _ => Ok(()),
    }
}

pub fn state(root: &Path, id: &str) -> Result<i32> {
    let c = Container::load(root, id)?;
    let json = serde_json::to_string_pretty(&c.state.view(c.status()))?;
    println!("{json}");
    Ok(0)
}

pub fn kill(root: &Path, args: &KillArgs) -> Result<i32> {
    let signal = signals::parse(&args.signal)?;
    let (c, _lock) = Container::load_locked(root, &args.id)?;
    c.kill(signal, args.all)?;
    Ok(0)
}

pub fn delete(root: &Path, args: &DeleteArgs) -> Result<i32> {
    let (c, _lock) = match Container::load_locked(root, &args.id) {
        // runc: `delete --force` of a container that is already gone is not an error; a
        // state dir that a killed `create` left without state.json is removed.
        Err(e) if args.force && e.is::<container::NotExist>() => {
            container::remove_stateless_dir(root, &args.id)?;
            return Ok(0);
        }
        r => r?,
    };
    c.delete(args.force)?;
    Ok(0)
}

/// `root_given`: whether `--root` named the root. As runc, a missing default root lists
/// nothing, while a missing root the caller named is an error (a typo lists no containers
/// silently otherwise).
pub fn list(root: &Path, root_given: bool, args: &ListArgs) -> Result<i32> {
    if root_given {
        std::fs::metadata(root).with_context(|| format!("--root {}", root.display()))?;
    }
    let mut containers = Vec::new();
    for id in container::list_ids(root)? {
        // A container deleted while listing is simply not listed.
        if let Ok(c) = Container::load(root, &id) {
            containers.push(c);
        }
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &containers {
            writeln!(out, "{}", c.id())?;
        }
        return Ok(0);
    }
    match args.format {
        ListFormat::Json => {
            let views: Vec<_> = containers
                .iter()
                .map(|c| c.state.view(c.status()))
                .collect();
            writeln!(out, "{}", serde_json::to_string(&views)?)?;
        }
        ListFormat::Table => {
            let mut rows =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for c in &containers {
                let v = c.state.view(c.status());
                rows.push([
                    v.id.to_string(),
                    v.pid.to_string(),
                    v.status.to_string(),
                    v.bundle.display().to_string(),
                    v.created.to_string(),
                    v.owner.to_string(),
                ]);
            }
            write!(out, "{}", format_table(&rows))?;
        }
    }
    Ok(0)
}

/// Columns padded to the widest cell plus three spaces, like runc's tabwriter output.
pub fn format_table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut s = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}", w = w + 3))
            .collect();
        s.push_str(line.concat().trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns() {
        let rows = [
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from),
            ["long-id", "42", "running", "/b", "t", "root"].map(String::from),
        ];
        let t = super::format_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find("PID"), lines[1].find("42"));
        assert_eq!(lines[0].find("OWNER"), lines[1].find("root"));
        assert!(lines[0].starts_with("ID        PID"), "{t}");
    }
}

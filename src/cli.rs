//! The command line, shaped like runc's so that containerd, podman and go-runc drive berth
//! unchanged.

use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

pub const DEFAULT_ROOT: &str = "/run/berth";

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    about = "A runc-compatible OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// As in runc, global options come before the subcommand (clap's `global` would also take
/// them after it, at the cost of copying each into every subcommand on every call).
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Root directory for container state (default /run/berth, or $XDG_RUNTIME_DIR/berth when
    /// not root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Write log lines to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Format of log lines.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log debug messages.
    #[arg(long)]
    pub debug: bool,

    /// Let systemd make the container's cgroup: a transient scope unit, with
    /// linux.cgroupsPath as "slice:prefix:name".
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,

    /// Rootless mode: auto, true or false.
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<Rootless>,

    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rootless {
    Auto,
    True,
    False,
}

impl Cli {
    /// Hands the global flags that shape `create` to the create options of create and run.
    pub fn with_globals_in_create_opts(mut self) -> Cli {
        let (systemd, rootless) = (self.global.systemd_cgroup, self.global.rootless);
        let opts = match &mut self.command {
            Some(
                Command::Create(Deferred(CreateArgs { opts, .. }))
                | Command::Run(Deferred(RunArgs { opts, .. })),
            ) => Some(opts),
            Some(Command::Restore(Deferred(args))) => Some(&mut args.opts),
            _ => None,
        };
        if let Some(opts) = opts {
            opts.systemd_cgroup = systemd;
            opts.rootless = rootless;
        }
        self
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; it waits at the start gate.
    Create(Deferred<CreateArgs>),
    /// Start a created container.
    Start(Deferred<IdArg>),
    /// Print the state of a container as JSON.
    State(Deferred<IdArg>),
    /// Send a signal to a container's init process (or to all its processes).
    Kill(Deferred<KillArgs>),
    /// Delete a container and the resources it holds.
    Delete(Deferred<DeleteArgs>),
    /// Create and start a container, wait for it and print nothing of its own.
    Run(Deferred<RunArgs>),
    /// List the containers under the root directory.
    List(Deferred<ListArgs>),
    /// Write a default config.json into a bundle.
    Spec(Deferred<SpecArgs>),
    /// Freeze every process of a running container.
    Pause(Deferred<IdArg>),
    /// Thaw a paused container.
    Resume(Deferred<IdArg>),
    /// List the processes of a container.
    Ps(Deferred<PsArgs>),
    /// Change the cgroup limits of a container.
    Update(Deferred<Box<UpdateArgs>>),
    /// Print the container's resource usage, and OOM events, as JSON lines.
    Events(Deferred<EventsArgs>),
    /// Print what this build of berth supports, as runc's Features JSON.
    Features,
    /// Run a new process in a running (or created) container.
    Exec(Deferred<Box<ExecArgs>>),
    /// Save a running container to disk with CRIU (and stop it, unless --leave-running).
    Checkpoint(Deferred<CheckpointArgs>),
    /// Bring a checkpointed container back from its CRIU images.
    Restore(Deferred<Box<RestoreArgs>>),
}

/// A subcommand's arguments, added to clap's command tree only when that subcommand is the
/// one given (clap's `Command::defer`): building every subcommand's arguments on each call
/// cost berth about a third of its start-up (heap pages and time) for one command it runs.
#[derive(Debug, Clone, Default)]
pub struct Deferred<T>(pub T);

impl<T: Args> Args for Deferred<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_args)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_args_for_update)
    }
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Deferred)
    }
    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl<T> std::ops::Deref for Deferred<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct ExecArgs {
    /// An OCI `Process` JSON file to run (as containerd sends it); the process flags below are
    /// then ignored, as in runc.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Allocate a terminal for the process.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket to receive the master of the process's pty.
    #[arg(long = "console-socket", value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket to receive a pidfd of the process.
    #[arg(long = "pidfd-socket", value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,
    /// Return once the process has started instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's host pid to this file.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Environment variable (K=V) to set; overrides the config's.
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// User to run as: UID[:GID] (numeric, in the container).
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group id (repeatable).
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Capability to add (repeatable), e.g. CAP_NET_ADMIN.
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile for the process.
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// SELinux label for the process.
    #[arg(long = "process-label", value_name = "LABEL")]
    pub process_label: Option<String>,
    /// Pass N extra file descriptors (from 3 on) to the process; stdio and the N fds must
    /// fit in RLIMIT_NOFILE.
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Existing sub-cgroup to run the process in, as runc: PATH (below the container's
    /// cgroup on every hierarchy; only as the sole --cgroup) or CONTROLLER[,CONTROLLER...]:PATH
    /// (those cgroup v1 controllers only; repeatable).
    #[arg(long, value_name = "[CONTROLLER[,CONTROLLER...]:]PATH")]
    pub cgroup: Vec<String>,
    /// Exec even when the container is paused.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// The container ID.
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Output format: a `ps` table, or a JSON array of host pids.
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// The container ID.
    pub id: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    /// LinuxResources JSON to apply, from FILE or `-` for standard input.
    #[arg(short = 'r', long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10..1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (µs).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (µs per period; -1 for none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst (µs).
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// SCHED_IDLE for the cgroup: 1 on, 0 off (cgroup v2, or v1 where the kernel has cpu.idle).
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// Real-time period (µs).
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Real-time runtime (µs per period).
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (e.g. 0-2,4).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Kernel memory limit (obsolete; ignored by the kernel, as in runc).
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (obsolete).
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of pids (0 or less for no limit).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported by berth).
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported by berth).
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// The container ID.
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct EventsArgs {
    /// Print the usage once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print usage (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// The container ID.
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct IdArg {
    /// The container ID.
    pub id: String,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CreateOpts {
    /// Path to the bundle directory (holding config.json).
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,

    /// Write the container's init pid to this file.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Unix socket to receive the master of the container's pty.
    #[arg(long = "console-socket", value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,

    /// Unix socket to receive a pidfd of the container's init.
    #[arg(long = "pidfd-socket", value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,

    /// Use move + chroot instead of pivot_root (for ramfs roots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,

    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,

    /// Pass N extra file descriptors (from 3 on, after any LISTEN_FDS) to the container
    /// process; stdio, LISTEN_FDS and the N fds must fit in RLIMIT_NOFILE.
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,

    /// From the global `--systemd-cgroup`.
    #[arg(skip)]
    pub systemd_cgroup: bool,

    /// From the global `--rootless`.
    #[arg(skip)]
    pub rootless: Option<Rootless>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// The container ID.
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Return once the container has started instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
    /// The container ID.
    pub id: String,
}

/// The CRIU options `checkpoint` and `restore` share (runc's flags).
#[derive(Args, Debug, Clone, Default)]
pub struct CriuArgs {
    /// Directory of the CRIU image files (default: ./checkpoint).
    #[arg(long = "image-path", value_name = "DIR")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's work files and log (default: the image directory).
    #[arg(long = "work-path", value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a process whose terminal is berth's caller's).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// What CRIU does with cgroups: soft, full, strict or ignore (default: soft).
    #[arg(long = "manage-cgroups-mode", value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// Create this namespace but do not restore its properties (only "network"; the
    /// network namespace is always restored empty, as runc does).
    #[arg(long = "empty-ns", value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images as they are used.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory pages lazily, with userfaultfd.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Images of a previous pre-dump, relative to --image-path.
    #[arg(long = "parent-path", value_name = "DIR")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Skip in-flight TCP connections.
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Link unlinked files back where possible.
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    /// Dump only the memory (for a later dump with --parent-path); the container keeps
    /// running.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// With --lazy-pages: CRIU writes a \0 to this fd once the page server is ready.
    #[arg(long = "status-fd", value_name = "FD", default_value_t = -1, allow_hyphen_values = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of a CRIU page server to send the memory to.
    #[arg(long = "page-server", value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// The container ID.
    pub id: String,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Return once the container is restored instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Do not become the subreaper of the restored process (go-runc sends it as
    /// `-no-subreaper`, which is taken too).
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// An LSM profile for the restored process (TYPE:NAME).
    #[arg(long = "lsm-profile", value_name = "PROFILE")]
    pub lsm_profile: Option<String>,
    /// An LSM mount context for the restored mounts.
    #[arg(long = "lsm-mount-context", value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    /// The container ID.
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// Signal every process of the container, not only its init.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The container ID.
    pub id: String,
    /// The signal: a number (9), a name (KILL) or a full name (SIGKILL).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container ID.
    pub id: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Print only the container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// The bundle directory to write config.json into.
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write a config for a rootless container.
    #[arg(long = "rootless", id = "spec_rootless")]
    pub rootless: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn global_flags_go_before_the_subcommand_as_in_runc() {
        let args = ["berth", "state", "--root", "/r", "c1"];
        assert!(Cli::try_parse_from(args).is_err());
        assert_eq!(
            parse(&["--root", "/r", "state", "c1"])
                .global
                .root
                .as_deref(),
            Some(std::path::Path::new("/r"))
        );
    }

    #[test]
    fn global_flags_as_containerd_sends_them() {
        let cli = parse(&[
            "--root",
            "/r",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "--debug",
            "--rootless",
            "auto",
            "start",
            "c1",
        ]);
        assert_eq!(cli.global.root.as_deref(), Some(std::path::Path::new("/r")));
        assert_eq!(
            cli.global.log.as_deref(),
            Some(std::path::Path::new("/b/log.json"))
        );
        assert_eq!(cli.global.log_format, LogFormat::Json);
        assert!(cli.global.systemd_cgroup && cli.global.debug);
        assert_eq!(cli.global.rootless, Some(Rootless::Auto));
        assert!(
            matches!(cli.command, Some(Command::Start(Deferred(IdArg { ref id }))) if id == "c1")
        );
    }

    #[test]
    fn cgroup_commands_as_containerd_sends_them() {
        let cli = parse(&["ps", "--format", "json", "c1"]);
        assert!(
            matches!(cli.command, Some(Command::Ps(Deferred(PsArgs { format: ListFormat::Json, ref id, .. }))) if id == "c1")
        );
        let cli = parse(&["ps", "c1", "-o", "pid,comm"]);
        assert!(
            matches!(cli.command, Some(Command::Ps(Deferred(PsArgs { ref ps_args, .. }))) if ps_args == &["-o", "pid,comm"])
        );
        let cli = parse(&["update", "--resources", "-", "c1"]);
        assert!(
            matches!(cli.command, Some(Command::Update(ref u)) if u.resources.as_deref() == Some(std::path::Path::new("-")))
        );
        let cli = parse(&[
            "update",
            "--memory",
            "64m",
            "--cpu-quota",
            "-1",
            "--pids-limit",
            "10",
            "c1",
        ]);
        assert!(matches!(
            cli.command,
            Some(Command::Update(ref u)) if u.cpu_quota == Some(-1) && u.pids_limit == Some(10)
        ));
        let cli = parse(&["events", "--stats", "c1"]);
        assert!(matches!(
            cli.command,
            Some(Command::Events(Deferred(EventsArgs { stats: true, .. })))
        ));
        let cli = parse(&["events", "--interval", "250ms", "c1"]);
        assert!(
            matches!(cli.command, Some(Command::Events(Deferred(EventsArgs { interval, .. }))) if interval == std::time::Duration::from_millis(250))
        );
    }

    #[test]
    fn rootless_with_equals_as_docker_sends_it() {
        let cli = parse(&["--rootless=false", "state", "x"]);
        assert_eq!(cli.global.rootless, Some(Rootless::False));
    }

    #[test]
    fn create_with_every_flag() {
        let cli = parse(&[
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "--console-socket",
            "/s",
            "--no-pivot",
            "--no-new-keyring",
            "--preserve-fds",
            "2",
            "c1",
        ]);
        let Some(Command::Create(c)) = cli.command else {
            panic!("not create")
        };
        assert_eq!(c.id, "c1");
        assert_eq!(c.opts.bundle, PathBuf::from("/b"));
        assert_eq!(c.opts.pid_file, Some(PathBuf::from("/b/init.pid")));
        assert_eq!(c.opts.console_socket, Some(PathBuf::from("/s")));
        assert!(c.opts.no_pivot && c.opts.no_new_keyring);
        assert_eq!(c.opts.preserve_fds, 2);
    }

    #[test]
    fn create_bundle_short_flag_and_default() {
        let Some(Command::Create(c)) = parse(&["create", "-b", "/x", "c"]).command else {
            panic!()
        };
        assert_eq!(c.opts.bundle, PathBuf::from("/x"));
        let Some(Command::Create(c)) = parse(&["create", "c"]).command else {
            panic!()
        };
        assert_eq!(c.opts.bundle, PathBuf::from("."));
    }

    #[test]
    fn kill_forms() {
        let Some(Command::Kill(k)) = parse(&["kill", "c"]).command else {
            panic!()
        };
        assert_eq!((k.all, k.signal.as_str()), (false, "SIGTERM"));
        let Some(Command::Kill(k)) = parse(&["kill", "--all", "c", "15"]).command else {
            panic!()
        };
        assert_eq!((k.all, k.id.as_str(), k.signal.as_str()), (true, "c", "15"));
        let Some(Command::Kill(k)) = parse(&["kill", "-a", "c", "KILL"]).command else {
            panic!()
        };
        assert!(k.all);
    }

    #[test]
    fn delete_run_list_spec() {
        let Some(Command::Delete(d)) = parse(&["delete", "-f", "c"]).command else {
            panic!()
        };
        assert!(d.force);
        let Some(Command::Delete(d)) = parse(&["delete", "--force", "c"]).command else {
            panic!()
        };
        assert!(d.force);
        let Some(Command::Run(r)) = parse(&["run", "-d", "--keep", "-b", "/b", "c"]).command else {
            panic!()
        };
        assert!(r.detach && r.keep);
        assert_eq!(r.opts.bundle, PathBuf::from("/b"));
        let Some(Command::List(l)) = parse(&["list", "-q", "-f", "json"]).command else {
            panic!()
        };
        assert!(l.quiet);
        assert_eq!(l.format, ListFormat::Json);
        let Some(Command::Spec(s)) = parse(&["spec", "-b", "/b", "--rootless"]).command else {
            panic!()
        };
        assert!(s.rootless);
        assert_eq!(s.bundle, PathBuf::from("/b"));
    }

    #[test]
    fn exec_as_containerd_sends_it_and_with_flags() {
        let Some(Command::Exec(e)) = parse(&[
            "exec",
            "--process",
            "/tmp/p.json",
            "--console-socket",
            "/s",
            "--detach",
            "--pid-file",
            "/b/e1.pid",
            "c1",
        ])
        .command
        else {
            panic!("not exec")
        };
        assert_eq!(e.process, Some(PathBuf::from("/tmp/p.json")));
        assert!(e.detach && !e.tty && e.command.is_empty());
        assert_eq!(e.pid_file, Some(PathBuf::from("/b/e1.pid")));
        let Some(Command::Exec(e)) = parse(&[
            "exec",
            "-t",
            "-e",
            "A=1",
            "-e",
            "B=2",
            "-u",
            "1000:1000",
            "-g",
            "10",
            "-c",
            "CAP_NET_ADMIN",
            "--cwd",
            "/tmp",
            "--no-new-privs",
            "--cgroup",
            "memory:m",
            "--cgroup",
            "cpu,cpuacct:c",
            "c1",
            "sh",
            "-c",
            "ls -l",
        ])
        .command
        else {
            panic!("not exec")
        };
        assert!(e.tty && e.no_new_privs);
        assert_eq!(e.env, ["A=1", "B=2"]);
        assert_eq!(e.user.as_deref(), Some("1000:1000"));
        assert_eq!(e.additional_gids, [10]);
        assert_eq!(e.cap, ["CAP_NET_ADMIN"]);
        // Repeatable, and a comma is part of the value (runc splits no slice flag on commas).
        assert_eq!(e.cgroup, ["memory:m", "cpu,cpuacct:c"]);
        assert_eq!(e.id, "c1");
        assert_eq!(e.command, ["sh", "-c", "ls -l"]);
    }

    #[test]
    fn version_flag() {
        assert!(parse(&["--version"]).global.version);
        assert!(parse(&["-v"]).global.version);
    }

    #[test]
    fn unknown_flag_is_rejected() {
        assert!(Cli::try_parse_from(["berth", "create", "--bogus", "c"]).is_err());
    }
}

//! `checkpoint`: a running container saved to disk by CRIU, as runc does it. What CRIU must be
//! told about the container (the mounts that come from outside it, the namespaces it joined,
//! the stdio pipes it was given) is worked out here for the dump and, from the same config,
//! for the restore (`process::restore`).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cli::{CheckpointArgs, CriuArgs};
use crate::container::state::Status;
use crate::container::Container;
use crate::criu::{self, CgMode, ExtMountMap, Opts, ReqType, Session};

/// The stdio of init at the dump, as runc writes it (JSON array of /proc/PID/fd/N links):
/// the pipes among them are given back by `restore` from its own stdio.
pub const DESCRIPTORS_FILE: &str = "descriptors.json";
/// CRIU's names for the namespaces a container joined rather than made.
const EXT_NET_NS: &str = "extRootNetNS";
const EXT_PID_NS: &str = "extRootPidNS";

pub fn checkpoint(root: &Path, args: &CheckpointArgs) -> Result<()> {
    let (c, _lock) = Container::load_locked(root, &args.id)?;
    let status = c.status();
    if !matches!(status, Status::Running | Status::Paused) {
        bail!(
            "container {:?} cannot be checkpointed in {status} state",
            args.id
        );
    }
    // The flags first, then CRIU's presence: nothing is written before both hold.
    let image_dir = image_path(&args.criu)?;
    args.parent_path
        .as_deref()
        .map(check_relative)
        .transpose()?;
    let cg_mode = CgMode::from_flag(args.criu.manage_cgroups_mode.as_deref())?;
    let empty_ns = empty_namespaces(&args.criu.empty_ns)?;
    let page_server = args.page_server.as_deref().map(page_server).transpose()?;
    let status_fd = match args.status_fd {
        -1 => None,
        fd => Some(writable_fd(fd)?),
    };
    criu::require()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&image_dir)
        .with_context(|| format!("--image-path {}", image_dir.display()))?;
    // (Through the image directory, which must exist for `..` to resolve, as runc has it.)
    if let Some(parent) = &args.parent_path {
        check_parent_path(&image_dir, parent)?;
    }
    let spec = crate::spec::load_bundle(&c.state.bundle)
        .context("checkpoint needs the container's config.json")?
        .spec;

    if args.pre_dump {
        criu::check_features(criu::Features {
            mem_track: Some(true),
            ..Default::default()
        })?;
    }
    if args.criu.lazy_pages {
        criu::check_features(criu::Features {
            lazy_pages: Some(true),
            ..Default::default()
        })?;
    }
    let images = open_dir(&image_dir, "--image-path")?;
    let work = work_dir(&args.criu)?;
    let log_dir = args.criu.work_path.clone().unwrap_or(image_dir.clone());
    let mut opts = Opts {
        images_dir_fd: images.as_raw_fd(),
        log_level: Some(4),
        log_file: Some("dump.log".into()),
        root: Some(c.state.rootfs.to_string_lossy().into_owned()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(cg_mode as i32),
        notify_scripts: Some(true),
        pid: Some(c.state.pid),
        shell_job: Some(args.criu.shell_job),
        leave_running: Some(args.leave_running),
        tcp_established: Some(args.criu.tcp_established),
        tcp_skip_in_flight: Some(args.tcp_skip_in_flight),
        link_remap: Some(args.link_remap),
        ext_unix_sk: Some(args.criu.ext_unix_sk),
        file_locks: Some(args.criu.file_locks),
        empty_ns: Some(empty_ns),
        orphan_pts_master: Some(true),
        auto_dedup: Some(args.criu.auto_dedup),
        lazy_pages: Some(args.criu.lazy_pages),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        config_file: config_file(&spec),
        ps: page_server,
        ..Default::default()
    };
    opts.external = external_namespaces(&spec)?;
    // CRIU freezes the container through its freezer cgroup (cgroup2 since CRIU 3.14), else
    // with ptrace.
    if let Some(cgroup) = &c.state.cgroup {
        let freezer = match cgroup.is_v2() {
            true => cgroup.dirs.first(),
            false => cgroup.dir_of("freezer"),
        };
        opts.freeze_cgroup = freezer.map(|d| d.path.to_string_lossy().into_owned());
    }
    if let Some(parent) = &args.parent_path {
        opts.parent_img = Some(parent.to_string_lossy().into_owned());
        opts.track_mem = Some(true);
    }
    if args.criu.lazy_pages {
        opts.status_fd = status_fd.as_ref().map(|fd| fd.as_raw_fd());
    }
    // (A pre-dump saves memory only.)
    if !args.pre_dump {
        opts.ext_mnt = dump_mounts(&spec, c.state.pid);
        opts.ext_mnt.extend(
            cgroup_binds(&spec, c.state.cgroup.as_ref())
                .into_iter()
                .map(|(dest, _)| ExtMountMap {
                    key: dest.clone(),
                    val: dest,
                }),
        );
        let descriptors = stdio_links(c.state.pid)?;
        let file = image_dir.join(DESCRIPTORS_FILE);
        fs::write(&file, serde_json::to_vec(&descriptors)?)
            .with_context(|| format!("write {}", file.display()))?;
    }
    let req = criu::Req {
        r#type: match args.pre_dump {
            true => ReqType::PreDump,
            false => ReqType::Dump,
        } as i32,
        opts: Some(opts),
        ..Default::default()
    };
    let mut pass: Vec<BorrowedFd> = vec![images.as_fd()];
    pass.extend(work.as_ref().map(|w| w.as_fd()));
    pass.extend(status_fd.as_ref().map(|fd| fd.as_fd()));
    log::debug!("checkpoint {}: criu dump of init {}", args.id, c.state.pid);
    let session = Session::start(&pass, std::process::Stdio::null())?;
    session
        .call(&req, |n| {
            // (CRIU 3.15+ says "status-ready" rather than writing the status fd itself.)
            if n.script == "status-ready" {
                if let Some(fd) = &status_fd {
                    let _ = nix::unistd::write(fd, b"\0");
                }
            }
            Ok(())
        })
        .map_err(|e| criu_error(e, "dump", &log_dir.join("dump.log")))
        .with_context(|| format!("checkpoint {}", args.id))?;
    if !args.leave_running && !args.pre_dump {
        // CRIU has killed the processes; what is left is berth's.
        c.destroy()?;
    }
    Ok(())
}

/// CRIU's failure, with the first error of its log when its answer had none of its own,
/// and where the whole log is.
pub fn criu_error(e: anyhow::Error, what: &str, log: &Path) -> anyhow::Error {
    let msg = format!("{e:#}");
    // CRIU's answer carries little more than "failed"; its log says why.
    let said = match msg.starts_with("Error (") {
        true => msg,
        false => criu::error_in_log(log).unwrap_or(msg),
    };
    match log.exists() {
        true => anyhow::anyhow!("CRIU {what} failed: {said} (log: {})", log.display()),
        false => anyhow::anyhow!("CRIU {what} failed: {said}"),
    }
}

/// `--image-path`, default `./checkpoint` (made by checkpoint if missing: a container can be
/// checkpointed again into it).
pub fn image_path(args: &CriuArgs) -> Result<PathBuf> {
    match &args.image_path {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_dir()
            .context("the current directory (for the default --image-path)")?
            .join("checkpoint")),
    }
}

/// `--work-path`, made if missing.
pub fn work_dir(args: &CriuArgs) -> Result<Option<OwnedFd>> {
    let Some(dir) = &args.work_path else {
        return Ok(None);
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("--work-path {}", dir.display()))?;
    open_dir(dir, "--work-path").map(Some)
}

/// A directory CRIU gets as an fd (it must be inherited: no close-on-exec).
pub fn open_dir(dir: &Path, flag: &str) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map(OwnedFd::from)
        .with_context(|| format!("{flag} {}", dir.display()))
}

fn check_relative(parent: &Path) -> Result<()> {
    if parent.is_absolute() {
        bail!(
            "--parent-path {}: must be relative (to --image-path)",
            parent.display()
        );
    }
    Ok(())
}

/// As runc: `--parent-path` is relative to the image directory and must be a directory there.
fn check_parent_path(image_dir: &Path, parent: &Path) -> Result<()> {
    check_relative(parent)?;
    let real = image_dir.join(parent);
    match fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "--parent-path {}: {} is not a directory",
            parent.display(),
            real.display()
        ),
        Err(e) => bail!(
            "--parent-path {}: {}: {e}",
            parent.display(),
            real.display()
        ),
    }
}

/// `--empty-ns`: the namespaces CRIU makes but does not fill. As runc, the network one always
/// (berth does not manage network devices; a CNI hook sets the namespace up again).
pub fn empty_namespaces(given: &[String]) -> Result<u32> {
    for ns in given {
        if ns != "network" {
            bail!("--empty-ns {ns:?}: not supported (only \"network\")");
        }
    }
    Ok(libc::CLONE_NEWNET as u32)
}

fn page_server(arg: &str) -> Result<criu::PageServerInfo> {
    let (address, port) = arg
        .rsplit_once(':')
        .filter(|(a, p)| !a.is_empty() && !p.is_empty())
        .with_context(|| format!("--page-server {arg:?}: use ADDRESS:PORT"))?;
    let port = port
        .parse::<u16>()
        .with_context(|| format!("--page-server {arg:?}: invalid port number"))?;
    Ok(criu::PageServerInfo {
        address: Some(address.trim_matches(['[', ']']).to_string()),
        port: Some(port.into()),
    })
}

/// `--status-fd`: an fd of the caller's, open for writing.
fn writable_fd(fd: i32) -> Result<OwnedFd> {
    // (An fd that is not open fails with EBADF.)
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
        .with_context(|| format!("invalid --status-fd argument {fd}"))?;
    let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
    if mode == OFlag::O_RDONLY {
        bail!("invalid --status-fd argument {fd}: not writable");
    }
    // SAFETY: the fd is open (checked above) and given to berth to use and close.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// CRIU's configuration file, as runc picks it: the `org.criu.config` annotation (empty for
/// none), else /etc/criu/runc.conf when it exists.
fn config_file(spec: &Spec) -> Option<String> {
    match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.criu.config"))
    {
        Some(path) if path.is_empty() => None,
        Some(path) => Some(path.clone()),
        None => Path::new("/etc/criu/runc.conf")
            .exists()
            .then(|| "/etc/criu/runc.conf".to_string()),
    }
}

/// The joined network and PID namespaces, saved as external (by inode), to be given back
/// on restore (`inherited_namespaces`).
fn external_namespaces(spec: &Spec) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for (t, path) in joined_namespaces(spec) {
        let (kind, name) = match t {
            LinuxNamespaceType::Network => ("net", EXT_NET_NS),
            LinuxNamespaceType::Pid => ("pid", EXT_PID_NS),
            _ => continue,
        };
        let ino = fs::metadata(&path)
            .with_context(|| format!("linux.namespaces: {}", path.display()))?
            .ino();
        out.push(format!("{kind}[{ino}]:{name}"));
    }
    Ok(out)
}

fn joined_namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ns| ns.path().clone().map(|p| (ns.typ(), p)))
        .collect()
}

/// Namespaces given to CRIU as open files, under its names for them.
pub type InheritedNamespaces = Vec<(String, OwnedFd)>;

/// For restore: the joined namespaces again, network and PID ones as inherited fds, the
/// others for CRIU to join by path.
pub fn inherited_namespaces(
    spec: &Spec,
) -> Result<(InheritedNamespaces, Vec<criu::JoinNamespace>)> {
    let mut inherit = Vec::new();
    let mut join = Vec::new();
    for (t, path) in joined_namespaces(spec) {
        let key = match t {
            LinuxNamespaceType::Network => EXT_NET_NS,
            LinuxNamespaceType::Pid => EXT_PID_NS,
            LinuxNamespaceType::Cgroup => {
                bail!(
                    "linux.namespaces: CRIU cannot restore into a joined cgroup namespace ({})",
                    path.display()
                )
            }
            other => {
                join.push(criu::JoinNamespace {
                    ns: criu_ns_name(other).to_string(),
                    ns_file: path.to_string_lossy().into_owned(),
                    extra_opt: None,
                });
                continue;
            }
        };
        let fd = fs::File::open(&path)
            .map(OwnedFd::from)
            .with_context(|| format!("linux.namespaces: open {}", path.display()))?;
        inherit.push((key.to_string(), fd));
    }
    Ok((inherit, join))
}

fn criu_ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default()).is_bind()
}

/// The destination as CRIU sees it: absolute and clean.
fn clean_destination(dest: &Path) -> String {
    let mut out = PathBuf::from("/");
    for c in dest.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// Mounts whose source is outside the container, each saved under a name (its destination;
/// "/dev/null" for masked files) for restore to bind again: bind mounts, masked files, and
/// devices (bound from the host in a user namespace).
fn dump_mounts(spec: &Spec, init: i32) -> Vec<ExtMountMap> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        let dest = clean_destination(m.destination());
        out.push(ExtMountMap {
            key: dest.clone(),
            val: dest,
        });
    }
    for path in masked_paths(spec) {
        // (Directories are masked with a tmpfs, which CRIU saves.)
        let seen = PathBuf::from(format!("/proc/{init}/root{path}"));
        if fs::metadata(&seen).is_ok_and(|m| !m.is_dir()) {
            out.push(ExtMountMap {
                key: path,
                val: "/dev/null".into(),
            });
        }
    }
    out.extend(device_mounts(spec));
    out
}

/// The binds of berth's `cgroup` mounts: the container's own cgroup directory at the
/// destination on cgroup2, or one per v1 hierarchy under a tmpfs there, as `(destination,
/// host directory)`. CRIU takes them as external mounts (they are slaves of the host's
/// cgroup mounts, whose sharing it cannot restore), bound again on restore from the restored
/// container's cgroup.
pub fn cgroup_binds(
    spec: &Spec,
    cgroup: Option<&crate::cgroups::Placement>,
) -> Vec<(String, PathBuf)> {
    let Some(cgroup) = cgroup else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")))
    {
        let dest = PathBuf::from(clean_destination(m.destination()));
        if cgroup.is_v2() {
            out.extend(
                cgroup
                    .dirs
                    .first()
                    .map(|d| (dest.to_string_lossy().into_owned(), d.path.clone())),
            );
            continue;
        }
        for dir in &cgroup.dirs {
            if let Some(name) = dir.mount_point.file_name() {
                out.push((
                    dest.join(name).to_string_lossy().into_owned(),
                    dir.path.clone(),
                ));
            }
        }
    }
    out
}

/// For restore: each external mount's name, and the host path to bind in its place.
pub fn restore_mounts(spec: &Spec, bundle_dir: &Path) -> Vec<ExtMountMap> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        let source = m.source().clone().unwrap_or_default();
        out.push(ExtMountMap {
            key: clean_destination(m.destination()),
            val: bundle_dir.join(source).to_string_lossy().into_owned(),
        });
    }
    if !masked_paths(spec).is_empty() {
        out.push(ExtMountMap {
            key: "/dev/null".into(),
            val: "/dev/null".into(),
        });
    }
    out.extend(device_mounts(spec));
    out
}

/// As runc before a restore: the bind mounts' mount points are made in the rootfs as
/// `create` would make them (CRIU mounts on them but does not make them), for an image
/// restored into a copy of the rootfs without them. Those under a tmpfs of the container's
/// are left to CRIU, which restores the tmpfs with its content.
pub fn make_mount_points(bundle: &crate::spec::Bundle) -> Result<()> {
    use crate::rootfs::paths::{self, Kind};
    use std::os::unix::fs::OpenOptionsExt;
    let mounts = bundle.spec.mounts().as_deref().unwrap_or_default();
    let tmpfs: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| PathBuf::from(clean_destination(m.destination())))
        .collect();
    let root = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&bundle.rootfs)
        .with_context(|| format!("open the rootfs {}", bundle.rootfs.display()))?;
    for m in mounts.iter().filter(|m| is_bind(m)) {
        let dest = PathBuf::from(clean_destination(m.destination()));
        if tmpfs.iter().any(|t| dest.starts_with(t) && &dest != t) {
            continue;
        }
        let source = bundle.dir.join(m.source().clone().unwrap_or_default());
        let kind = match fs::metadata(&source) {
            Ok(meta) if !meta.is_dir() => Kind::File,
            _ => Kind::Dir,
        };
        paths::create_in_root(&root, &dest, kind)
            .with_context(|| format!("mounts: make the mount point {}", dest.display()))?;
    }
    Ok(())
}

fn masked_paths(spec: &Spec) -> Vec<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
}

/// The configured devices, each saved under its own path and bound from the host's on
/// restore (in a user namespace they are binds; elsewhere CRIU finds no mount there).
fn device_mounts(spec: &Spec) -> Vec<ExtMountMap> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| {
            let path = clean_destination(d.path());
            ExtMountMap {
                key: path.clone(),
                val: path,
            }
        })
        .collect()
}

/// Where init's fds 0-2 point (`pipe:[N]`, `/dev/null`, ...), as runc records them.
fn stdio_links(pid: i32) -> Result<Vec<String>> {
    (0..3)
        .map(|n| {
            let link = format!("/proc/{pid}/fd/{n}");
            fs::read_link(&link)
                .map(|p| p.to_string_lossy().into_owned())
                .with_context(|| format!("read {link}"))
        })
        .collect()
}

/// For restore: the stdio the image's init had, from its descriptors.json.
pub fn read_descriptors(image_dir: &Path) -> Result<Vec<String>> {
    let file = image_dir.join(DESCRIPTORS_FILE);
    let text = fs::read(&file).with_context(|| {
        format!(
            "--image-path {}: not a container checkpoint (no {DESCRIPTORS_FILE})",
            image_dir.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("parse {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bind_mounts_masked_files_and_devices_are_external() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                      {"destination":"/data/","source":"vol","options":["rbind"]},
                      {"destination":"/etc/hosts","type":"bind","source":"/h"}],
            "linux":{"maskedPaths":["/proc/kcore"],"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}"#,
        );
        let keys: Vec<_> = restore_mounts(&s, Path::new("/b"))
            .into_iter()
            .map(|m| (m.key, m.val))
            .collect();
        assert_eq!(
            keys,
            [
                ("/data", "/b/vol"),
                ("/etc/hosts", "/h"),
                ("/dev/null", "/dev/null"),
                ("/dev/fuse", "/dev/fuse")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        // On dump a mount is saved under its own destination.
        let dump = dump_mounts(&s, std::process::id() as i32);
        assert!(dump.iter().any(|m| m.key == "/data" && m.val == "/data"));
    }

    #[test]
    fn cgroup_mounts_are_the_containers_cgroup_dirs() {
        use crate::cgroups::{Dir, Driver, Layout, Placement};
        let s = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup"}]}"#,
        );
        let dir = |mount_point: &str, path: &str, v2: bool| Dir {
            path: path.into(),
            mount_point: mount_point.into(),
            controllers: vec![],
            v2,
        };
        let v2 = Placement {
            layout: Layout::V2,
            driver: Driver::Cgroupfs,
            dirs: vec![dir("/sys/fs/cgroup", "/sys/fs/cgroup/berth/c1", true)],
        };
        assert_eq!(
            cgroup_binds(&s, Some(&v2)),
            [(
                "/sys/fs/cgroup".to_string(),
                PathBuf::from("/sys/fs/cgroup/berth/c1")
            )]
        );
        let v1 = Placement {
            layout: Layout::V1,
            driver: Driver::Cgroupfs,
            dirs: vec![
                dir(
                    "/sys/fs/cgroup/cpu,cpuacct",
                    "/sys/fs/cgroup/cpu,cpuacct/c1",
                    false,
                ),
                dir("/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/c1", false),
            ],
        };
        let binds: Vec<String> = cgroup_binds(&s, Some(&v1))
            .into_iter()
            .map(|b| b.0)
            .collect();
        assert_eq!(
            binds,
            ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory"]
        );
        assert!(cgroup_binds(&s, None).is_empty());
    }

    #[test]
    fn empty_ns_takes_network_only() {
        assert_eq!(empty_namespaces(&[]).unwrap(), libc::CLONE_NEWNET as u32);
        assert_eq!(
            empty_namespaces(&["network".into()]).unwrap(),
            libc::CLONE_NEWNET as u32
        );
        let e = empty_namespaces(&["ipc".into()]).unwrap_err().to_string();
        assert!(e.contains("--empty-ns \"ipc\""), "{e}");
    }

    #[test]
    fn parent_path_must_be_relative_and_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("pre")).unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        check_parent_path(dir.path(), Path::new("pre")).unwrap();
        let abs = check_parent_path(dir.path(), Path::new("/pre")).unwrap_err();
        assert!(abs.to_string().contains("must be relative"), "{abs}");
        let file = check_parent_path(dir.path(), Path::new("file")).unwrap_err();
        assert!(file.to_string().contains("not a directory"), "{file}");
        assert!(check_parent_path(dir.path(), Path::new("missing")).is_err());
    }

    #[test]
    fn page_server_address() {
        let ps = page_server("10.0.0.1:1234").unwrap();
        assert_eq!(ps.address.as_deref(), Some("10.0.0.1"));
        assert_eq!(ps.port, Some(1234));
        assert!(page_server("nope").is_err());
        assert!(page_server("h:port").is_err());
    }

    #[test]
    fn destinations_are_cleaned() {
        assert_eq!(clean_destination(Path::new("data/../x/")), "/x");
        assert_eq!(clean_destination(Path::new("/a//b")), "/a/b");
    }
}

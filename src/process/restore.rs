//! `restore`: a container brought back from CRIU's images, top to bottom. The first half is
//! `create`'s (`make_container`: state dir, cgroup, limits); then CRIU, not berth, makes the
//! processes, in the container's cgroup, and berth records the restored init as any other.
//!
//!   restore                              criu swrk
//!   state dir, cgroup (make_container)
//!   rootfs bound on <state>/criu-root
//!   spawn ─────────────────────────────▶ (waits for the request)
//!   criu into the cgroup, RESTORE ──────▶ namespaces, mounts
//!   ◀──────────────────────── setup-namespaces: prestart, createRuntime hooks
//!                                          processes, memory, files
//!   ◀──────────────────────── orphan-pts-master: to --console-socket
//!   ◀──────────────────────── post-restore (init's pid)
//!   ◀──────────────────────── RESTORE answer; criu exits, init (berth's child) runs on
//!   state.json (running), pid file
//!   wait for init unless --detach

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::Pid;
use oci_spec::runtime::ContainerState;

use super::{make_container, place_in_systemd_scope, Made};
use crate::checkpoint;
use crate::cli::RestoreArgs;
use crate::container::state::{write_atomic, Status};
use crate::container::Container;
use crate::criu::{self, CgMode, InheritFd, Opts, ReqType, Session};
use crate::{foreground, hooks, sys};

pub fn restore(root: &Path, args: &RestoreArgs) -> Result<i32> {
    // What can be checked is, before anything exists.
    let image_dir = checkpoint::image_path(&args.criu)?;
    let descriptors = checkpoint::read_descriptors(&image_dir)?;
    criu::require()?;
    let cg_mode = CgMode::from_flag(args.criu.manage_cgroups_mode.as_deref())?;
    let empty_ns = checkpoint::empty_namespaces(&args.criu.empty_ns)?;
    let mut bundle = super::load(&args.id, &args.opts)?;
    if args.criu.lazy_pages {
        criu::check_features(criu::Features {
            lazy_pages: Some(true),
            ..Default::default()
        })?;
    }
    let (inherited_ns, join_ns) = checkpoint::inherited_namespaces(&bundle.spec)?;
    let images = checkpoint::open_dir(&image_dir, "--image-path")?;
    let work = checkpoint::work_dir(&args.criu)?;
    let log = args
        .criu
        .work_path
        .as_deref()
        .unwrap_or(&image_dir)
        .join("restore.log");
    // Init will be our child (CRIU's sibling); a foreground restore waits for it as `run`
    // does, its signals queued from before it exists.
    let signals = match args.detach {
        true => None,
        false => {
            if !args.no_subreaper {
                nix::sys::prctl::set_child_subreaper(true).context("become a child subreaper")?;
            }
            Some(foreground::block_signals()?)
        }
    };

    let Made {
        dir,
        lock,
        mut guard,
        mut state,
        cgroup,
        systemd,
        console_socket,
        ..
    } = make_container(root, &args.id, &args.opts, &mut bundle, None)?;
    checkpoint::make_mount_points(&bundle)?;
    // CRIU's root must be a mount point whose parent is not overmounted: the rootfs, bound
    // in the state dir for the time of the restore.
    let criu_root = RootBind::new(&bundle.rootfs, dir.join("criu-root"))?;

    // The image's init had pipes for stdio: it gets this restore's stdio in their place,
    // as fds of CRIU's under numbers of their own.
    let mut passed: Vec<OwnedFd> = Vec::new();
    let mut inherit_fd = Vec::new();
    for (i, link) in descriptors.iter().enumerate().take(3) {
        if link.contains("pipe:") {
            // SAFETY: fd 0-2 of berth's, only borrowed for the dup.
            let fd = unsafe { BorrowedFd::borrow_raw(i as i32) };
            let dup = fd
                .try_clone_to_owned()
                .with_context(|| format!("restore: fd {i} (the image's {link}) is not open"))?;
            inherit_fd.push(InheritFd {
                key: link.clone(),
                fd: dup.as_raw_fd(),
            });
            passed.push(dup);
        }
    }
    for (key, fd) in inherited_ns {
        inherit_fd.push(InheritFd {
            key,
            fd: fd.as_raw_fd(),
        });
        passed.push(fd);
    }
    let mut opts = Opts {
        images_dir_fd: images.as_raw_fd(),
        evasive_devices: Some(true),
        log_level: Some(4),
        log_file: Some("restore.log".into()),
        rst_sibling: Some(true),
        root: Some(criu_root.path.to_string_lossy().into_owned()),
        manage_cgroups: Some(true),
        manage_cgroups_mode: Some(cg_mode as i32),
        notify_scripts: Some(true),
        shell_job: Some(args.criu.shell_job),
        ext_unix_sk: Some(args.criu.ext_unix_sk),
        tcp_established: Some(args.criu.tcp_established),
        file_locks: Some(args.criu.file_locks),
        empty_ns: Some(empty_ns),
        orphan_pts_master: Some(true),
        auto_dedup: Some(args.criu.auto_dedup),
        lazy_pages: Some(args.criu.lazy_pages),
        lsm_profile: args.lsm_profile.clone(),
        lsm_mount_context: args.lsm_mount_context.clone(),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        ext_mnt: checkpoint::restore_mounts(&bundle.spec, &bundle.dir),
        inherit_fd,
        join_ns,
        ..Default::default()
    };
    let mut pass: Vec<BorrowedFd> = vec![images.as_fd()];
    pass.extend(work.as_ref().map(|w| w.as_fd()));
    pass.extend(passed.iter().map(|fd| fd.as_fd()));
    let criu_stdin = match args.criu.shell_job {
        true => Stdio::inherit(),
        false => Stdio::null(),
    };
    let session = Session::start(&pass, criu_stdin)?;
    let criu_pid = Pid::from_raw(session.pid());
    guard.pids.push(criu_pid);

    // CRIU goes into the container's cgroup and restores the processes there.
    match &systemd {
        Some((systemd, unit)) => {
            place_in_systemd_scope(systemd, unit, criu_pid, &bundle.spec, &cgroup, &mut guard)?;
            state.cgroup = Some(cgroup.clone());
            state.save(&dir)?;
        }
        None => {
            if let Some(cgroup) = &state.cgroup {
                cgroup.add_process(criu_pid.as_raw())?;
            }
        }
    }
    if let Some(group) = &state.intel_rdt {
        group.add(criu_pid.as_raw())?;
    }
    if state.cgroup.is_some() {
        opts.cg_root = cgroup_roots(criu_pid.as_raw())?;
    }
    // The cgroup mount binds this container's (new) cgroup directories.
    opts.ext_mnt.extend(
        checkpoint::cgroup_binds(&bundle.spec, state.cgroup.as_ref())
            .into_iter()
            .map(|(dest, dir)| criu::ExtMountMap {
                key: dest,
                val: dir.to_string_lossy().into_owned(),
            }),
    );

    let req = criu::Req {
        r#type: ReqType::Restore as i32,
        opts: Some(opts),
        ..Default::default()
    };
    log::debug!(
        "restore {}: criu {criu_pid} restores from {}",
        args.id,
        image_dir.display()
    );
    let mut restored = None;
    let answer = session.call(&req, |n| {
        match (n.script.as_str(), n.pid) {
            ("setup-namespaces", Some(pid)) => {
                guard.poststop = Some(state.oci_json(ContainerState::Stopped, pid)?);
                let creating = state.oci_json(ContainerState::Creating, pid)?;
                for kind in [hooks::Kind::Prestart, hooks::Kind::CreateRuntime] {
                    hooks::run(state.hooks.as_ref(), kind, &creating, Some(&state.bundle))?;
                }
            }
            ("post-restore", Some(pid)) => restored = Some(pid),
            ("orphan-pts-master", _) => {
                let master = n.fd.context("criu: orphan-pts-master without the fd")?;
                let socket = console_socket.as_ref().context(
                    "the image has a terminal: restore needs --console-socket to send it to",
                )?;
                sys::send_fd(socket.as_fd(), b"orphan-pts-master", master.as_fd())
                    .context("--console-socket: send the restored terminal's master")?;
            }
            _ => {}
        }
        Ok(())
    });
    // CRIU is reaped by `call`, whatever the answer: its pid is no longer ours to kill.
    guard.pids.retain(|&p| p != criu_pid);
    let resp = answer
        .map_err(|e| checkpoint::criu_error(e, "restore", &log))
        .with_context(|| format!("restore {}", args.id))?;
    let init = resp
        .restore
        .map(|r| r.pid)
        .or(restored)
        .context("criu answered the restore without init's pid")?;
    guard.pids.push(Pid::from_raw(init));
    let stat = sys::proc_stat(init).context("the restored init exited at once")?;
    state.pid = init;
    state.init_start_time = stat.start_time;
    state.created = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    state.status = Status::Running;
    state.save(&dir)?;
    if let Some(pid_file) = &args.opts.pid_file {
        write_atomic(pid_file, init.to_string().as_bytes())?;
    }
    guard.armed = false;
    drop(lock);
    drop(criu_root);
    log::debug!("restore {}: init {init} runs", args.id);
    let Some(signals) = signals else {
        return Ok(0);
    };
    let code = foreground::wait_for(Pid::from_raw(init), &signals, None)?;
    Container {
        dir,
        state,
        start_channel: None,
    }
    .destroy()?;
    Ok(code)
}

/// The cgroup CRIU was put in, on each hierarchy, as the root to restore the processes'
/// cgroups under: cgroup2's for all controllers, a v1 hierarchy's for its own.
fn cgroup_roots(pid: i32) -> Result<Vec<criu::CgroupRoot>> {
    let file = format!("/proc/{pid}/cgroup");
    let text = sys::read_virtual(&file).with_context(|| format!("read {file}"))?;
    parse_cgroup_roots(&text).with_context(|| format!("parse {file}"))
}

fn parse_cgroup_roots(text: &str) -> Result<Vec<criu::CgroupRoot>> {
    use procfs_core::FromBufRead;
    let cgroups = procfs_core::ProcessCGroups::from_buf_read(text.as_bytes())?;
    let mut out = Vec::new();
    for cg in cgroups {
        if cg.controllers.is_empty() {
            out.push(criu::CgroupRoot {
                ctrl: None,
                path: cg.pathname,
            });
            continue;
        }
        out.extend(cg.controllers.into_iter().map(|c| criu::CgroupRoot {
            ctrl: Some(c),
            path: cg.pathname.clone(),
        }));
    }
    Ok(out)
}

/// The rootfs bound (recursively) on a directory of the state dir; unbound and removed when
/// dropped.
struct RootBind {
    path: PathBuf,
}

impl RootBind {
    fn new(rootfs: &Path, path: PathBuf) -> Result<RootBind> {
        fs::create_dir(&path).with_context(|| format!("create {}", path.display()))?;
        let bind = RootBind { path };
        mount(
            Some(rootfs),
            &bind.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind {} on {}", rootfs.display(), bind.path.display()))?;
        Ok(bind)
    }
}

impl Drop for RootBind {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cgroup_roots_per_hierarchy() {
        let roots = super::parse_cgroup_roots(
            "12:cpu,cpuacct:/berth/c1\n1:name=systemd:/berth/c1\n0::/berth/c1\n",
        )
        .unwrap();
        let got: Vec<_> = roots
            .iter()
            .map(|r| (r.ctrl.as_deref(), r.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("cpu"), "/berth/c1"),
                (Some("cpuacct"), "/berth/c1"),
                (Some("name=systemd"), "/berth/c1"),
                (None, "/berth/c1")
            ]
        );
    }
}

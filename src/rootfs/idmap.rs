//! Idmapped bind mounts (runtime-spec 1.1's `mounts[].uidMappings`/`gidMappings`, 1.2's
//! `idmap`/`ridmap` options): the source's files appear with their owners mapped through a
//! user namespace's id maps (MOUNT_ATTR_IDMAP), while the files on disk keep theirs.
//!
//! As in runc, init asks `create` for each such source when its mount is due: `create`, root
//! on the host, clones the source in the container's mount namespace (so the clone holds the
//! mounts made there before it, with the locks the kernel put on them), maps the clone, and
//! passes its fd back (`clone_source`). The same path serves a plain bind source that a user
//! namespace's root cannot reach.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::{bind_source_path, options, paths};
use crate::namespaces;
use crate::sys;

/// The id maps a mount is given: its own, or (`idmap` alone) the container's user namespace,
/// new with `linux.uidMappings`, or joined by path.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapping<'a> {
    Maps {
        uid: &'a [LinuxIdMapping],
        gid: &'a [LinuxIdMapping],
    },
    UserNamespace(&'a Path),
}

/// Whether `m` asks to be idmapped: the `idmap` or `ridmap` option, or mappings of its own
/// (which imply `idmap`, as in runc).
pub fn requested(m: &Mount) -> bool {
    options::parse(m.options().as_deref().unwrap_or(&[]))
        .idmap
        .is_some()
        || !own_maps(m.uid_mappings()).is_empty()
        || !own_maps(m.gid_mappings()).is_empty()
}

fn own_maps(maps: &Option<Vec<LinuxIdMapping>>) -> &[LinuxIdMapping] {
    maps.as_deref().unwrap_or(&[])
}

/// The mapping of idmapped mount `m` (`mounts[i]`), or why it has none. Checked by
/// `validate` before anything is made, so `create` meets no error here later.
pub fn mapping<'a>(spec: &'a Spec, i: usize, m: &'a Mount) -> Result<Mapping<'a>> {
    let (uid, gid) = (own_maps(m.uid_mappings()), own_maps(m.gid_mappings()));
    match (uid.is_empty(), gid.is_empty()) {
        (false, false) => return Ok(Mapping::Maps { uid, gid }),
        (false, true) => bail!(
            "config.json: mounts[{i}].gidMappings: must be set with uidMappings (an idmapped mount needs both)"
        ),
        (true, false) => bail!(
            "config.json: mounts[{i}].uidMappings: must be set with gidMappings (an idmapped mount needs both)"
        ),
        (true, true) => {}
    }
    let linux = spec.linux().as_ref();
    let joined = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .find(|ns| ns.typ() == LinuxNamespaceType::User)
        .and_then(|ns| ns.path().as_deref());
    if let Some(path) = joined {
        return Ok(Mapping::UserNamespace(path));
    }
    let uid = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gid = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    if uid.is_empty() || gid.is_empty() {
        bail!(
            "config.json: mounts[{i}]: an idmapped mount without uidMappings and gidMappings of its own takes the container's user namespace's, and there is none (linux.uidMappings and linux.gidMappings)"
        );
    }
    Ok(Mapping::Maps { uid, gid })
}

/// The checks runc makes of an idmapped mount, with the field named: a bind mount, not in a
/// rootless container, with both maps (its own or the container's), each well formed.
pub fn validate(spec: &Spec, i: usize, m: &Mount) -> Result<()> {
    if !requested(m) {
        return Ok(());
    }
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    if !(opts.is_bind() || m.typ().as_deref() == Some("bind")) {
        bail!("config.json: mounts[{i}]: idmapped mounts are only supported for bind mounts");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "config.json: mounts[{i}]: idmapped mounts are not supported for rootless containers"
        );
    }
    if let Mapping::Maps { uid, gid } = mapping(spec, i, m)? {
        namespaces::check_id_maps(&format!("mounts[{i}].uidMappings"), uid)?;
        namespaces::check_id_maps(&format!("mounts[{i}].gidMappings"), gid)?;
    }
    Ok(())
}

/// User namespaces made for idmapped mounts during one `create`, one per distinct mapping.
#[derive(Default)]
pub struct UserNamespaces(Vec<(String, OwnedFd)>);

impl UserNamespaces {
    /// The user namespace for `mapping`: opened, or made once for each set of maps.
    fn get(&mut self, mapping: &Mapping) -> Result<OwnedFd> {
        let (uid, gid) = match mapping {
            Mapping::UserNamespace(path) => {
                return File::open(path)
                    .map(OwnedFd::from)
                    .with_context(|| format!("open the user namespace {}", path.display()))
            }
            Mapping::Maps { uid, gid } => (uid, gid),
        };
        let key = format!(
            "{}/{}",
            namespaces::format_id_maps(uid),
            namespaces::format_id_maps(gid)
        );
        if let Some((_, fd)) = self.0.iter().find(|(k, _)| *k == key) {
            return fd.try_clone().context("dup the user namespace fd");
        }
        let fd = namespaces::new_user_namespace(uid, gid)
            .context("make a user namespace with the mount's id maps")?;
        let copy = fd.try_clone().context("dup the user namespace fd")?;
        self.0.push((key, fd));
        Ok(copy)
    }
}

/// What `create` needs to clone the source of `mounts[index]` for init.
pub struct CloneOrder {
    /// The source as the host names it, and the same inside the rootfs when it lies there
    /// (then looked up inside the root: the image's symlinks stay in the container).
    source: PathBuf,
    in_rootfs: Option<PathBuf>,
    rootfs: PathBuf,
    recursive: bool,
    /// The user namespace whose maps the clone gets, and whether its whole tree gets them
    /// (`ridmap`) or only its top mount.
    idmap: Option<(OwnedFd, bool)>,
}

/// `create`'s side, as root on the host: what cloning `mounts[index]`'s source takes, the
/// user namespace of an idmapped one included. Runs before the fork of `clone_in`.
pub fn clone_order(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    index: usize,
    usernses: &mut UserNamespaces,
) -> Result<CloneOrder> {
    let m = spec
        .mounts()
        .as_deref()
        .and_then(|ms| ms.get(index))
        .with_context(|| {
            format!("sync channel: a source asked for mounts[{index}], which does not exist")
        })?;
    let source = m
        .source()
        .as_deref()
        .with_context(|| format!("mounts[{index}]: bind mount without a source"))?;
    let source = bind_source_path(bundle, source);
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let idmap = match requested(m) {
        true => {
            let recursive = opts.idmap == Some(options::Idmap::Recursive);
            Some((usernses.get(&mapping(spec, index, m)?)?, recursive))
        }
        false => None,
    };
    Ok(CloneOrder {
        in_rootfs: paths::inside_rootfs(rootfs, &source),
        source,
        rootfs: rootfs.to_path_buf(),
        recursive: opts.flags.contains(MsFlags::MS_REC),
        idmap,
    })
}

/// In a process of `create`'s forked for this (it changes mount namespace): joins the
/// container's mount namespace, open at `mount_ns`, and clones the source there
/// (open_tree), idmapped when asked. Returns the detached mount.
pub fn clone_in(mount_ns: BorrowedFd, order: &CloneOrder) -> Result<OwnedFd> {
    let source = order.source.display();
    nix::sched::setns(mount_ns, CloneFlags::CLONE_NEWNS)
        .context("join the container's mount namespace")?;
    let opened = match &order.in_rootfs {
        Some(inner) => File::open(&order.rootfs)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            .and_then(|root| paths::open_in_root(&root, inner)),
        None => nix::fcntl::open(
            &order.source,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(|fd| {
            // SAFETY: open just returned this fd; nothing else owns it.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        }),
    };
    let opened = opened.with_context(|| format!("bind source {source}"))?;
    let clone = sys::clone_mount(&opened, order.recursive)
        .with_context(|| format!("open_tree(OPEN_TREE_CLONE) {source}"))?;
    if let Some((userns, recursive)) = &order.idmap {
        sys::mount_setattr_idmap(&clone, userns.as_fd(), *recursive).map_err(|e| {
            let hint = match e {
                Errno::EINVAL => " (the filesystem may not support idmapped mounts on this kernel)",
                _ => "",
            };
            anyhow::anyhow!("set MOUNT_ATTR_IDMAP on {source}: {e}{hint}")
        })?;
    }
    Ok(clone)
}

/// Whether idmapped mounts can be made here: the kernel has mount_setattr (Linux 5.12).
pub fn supported() -> bool {
    sys::has_mount_setattr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        crate::spec::parse(json).unwrap()
    }

    fn mount0(s: &Spec) -> &Mount {
        &s.mounts().as_ref().unwrap()[0]
    }

    const USERNS: &str = r#""linux":{"namespaces":[{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":200000,"size":65536}]}"#;

    #[test]
    fn own_maps_or_the_containers() {
        let s = spec(&format!(
            r#"{{"ociVersion":"1.2.0","mounts":[{{"destination":"/m","source":"/s","options":["bind","idmap"]}}],{USERNS}}}"#
        ));
        assert!(requested(mount0(&s)));
        match mapping(&s, 0, mount0(&s)).unwrap() {
            Mapping::Maps { uid, gid } => {
                assert_eq!(uid[0].host_id(), 100000);
                assert_eq!(gid[0].host_id(), 200000);
            }
            other => panic!("{other:?}"),
        }
        let own = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/m","source":"/s","options":["bind"],"uidMappings":[{"containerID":0,"hostID":7,"size":1}],"gidMappings":[{"containerID":0,"hostID":8,"size":1}]}]}"#,
        );
        assert!(requested(mount0(&own)));
        let Mapping::Maps { uid, .. } = mapping(&own, 0, mount0(&own)).unwrap() else {
            panic!("maps expected");
        };
        assert_eq!(uid[0].host_id(), 7);
        let joined = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/m","source":"/s","options":["rbind","ridmap"]}],"linux":{"namespaces":[{"type":"user","path":"/proc/9/ns/user"}]}}"#,
        );
        assert_eq!(
            mapping(&joined, 0, mount0(&joined)).unwrap(),
            Mapping::UserNamespace(Path::new("/proc/9/ns/user"))
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let plain = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/m","source":"/s","options":["bind"]}]}"#,
        );
        assert!(!requested(mount0(&plain)));
        let no_userns = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/m","source":"/s","options":["bind","idmap"]}]}"#,
        );
        let err = mapping(&no_userns, 0, mount0(&no_userns))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mounts[0]") && err.contains("linux.uidMappings"),
            "{err}"
        );
        let half = spec(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/m","source":"/s","options":["bind"],"uidMappings":[{"containerID":0,"hostID":7,"size":1}]}]}"#,
        );
        let err = mapping(&half, 0, mount0(&half)).unwrap_err().to_string();
        assert!(err.contains("mounts[0].gidMappings"), "{err}");
        let tmpfs = spec(&format!(
            r#"{{"ociVersion":"1.2.0","mounts":[{{"destination":"/m","type":"tmpfs","source":"tmpfs","options":["idmap"]}}],{USERNS}}}"#
        ));
        let err = validate(&tmpfs, 0, mount0(&tmpfs)).unwrap_err().to_string();
        assert!(err.contains("only supported for bind mounts"), "{err}");
    }
}

//! fstab-style mount options as runc reads them: flags to set, flags to clear, propagation
//! changes, and everything else passed to the filesystem as data.

use nix::mount::MsFlags;

/// A mount entry's options, split the way mount(2) needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags an option clears (`rw`, `dev`, `atime`, ...): a bind is remounted without them
    /// even when no flag is set, as runc.
    pub cleared: MsFlags,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// The recursive (`rro`, `rnosuid`, ...) attributes, applied with mount_setattr.
    pub recursive: RecursiveAttrs,
    /// `tmpcopyup`: a tmpfs starts with a copy of what was at its destination.
    pub tmpcopyup: bool,
    /// `idmap` or `ridmap` (the last one given): an idmapped bind (see `idmap.rs`).
    pub idmap: Option<Idmap>,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
}

/// Which mounts of an idmapped bind get the id maps: its top mount (`idmap`), or every mount
/// of its tree (`ridmap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    Top,
    Recursive,
}

const IDMAP: [(&str, Idmap); 2] = [("idmap", Idmap::Top), ("ridmap", Idmap::Recursive)];

/// MOUNT_ATTR_* bits to set and to clear on a whole mount tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

/// runc's recursive options: (name, MOUNT_ATTR bits to set, bits to clear). The atime ones
/// replace the whole atime field, as the kernel requires.
const RECURSIVE: &[(&str, u64, u64)] = {
    use libc::{
        MOUNT_ATTR_NOATIME as NOATIME, MOUNT_ATTR_NODEV as NODEV,
        MOUNT_ATTR_NODIRATIME as NODIRATIME, MOUNT_ATTR_NOEXEC as NOEXEC,
        MOUNT_ATTR_NOSUID as NOSUID, MOUNT_ATTR_NOSYMFOLLOW as NOSYMFOLLOW,
        MOUNT_ATTR_RDONLY as RDONLY, MOUNT_ATTR_RELATIME as RELATIME,
        MOUNT_ATTR_STRICTATIME as STRICTATIME, MOUNT_ATTR__ATIME as ATIME,
    };
    &[
        ("rro", RDONLY, 0),
        ("rrw", 0, RDONLY),
        ("rnosuid", NOSUID, 0),
        ("rsuid", 0, NOSUID),
        ("rnodev", NODEV, 0),
        ("rdev", 0, NODEV),
        ("rnoexec", NOEXEC, 0),
        ("rexec", 0, NOEXEC),
        ("rnodiratime", NODIRATIME, 0),
        ("rdiratime", 0, NODIRATIME),
        ("rnosymfollow", NOSYMFOLLOW, 0),
        ("rsymfollow", 0, NOSYMFOLLOW),
        ("rrelatime", RELATIME, ATIME),
        ("rnoatime", NOATIME, ATIME),
        ("rstrictatime", STRICTATIME, ATIME),
        ("ratime", RELATIME, ATIME),
        ("rnorelatime", RELATIME, ATIME),
        ("rnostrictatime", RELATIME, ATIME),
    ]
};

fn recursive(name: &str) -> Option<RecursiveAttrs> {
    RECURSIVE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, set, clear)| RecursiveAttrs { set, clear })
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Flags beyond the bind itself, which need a remount to take effect on a bind mount.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }

    /// The mount flags as fsmount(2) takes them: MOUNT_ATTR_* bits of the mount, and the
    /// superblock flags (`sync`, `dirsync`) as fsconfig flags.
    pub fn fsmount_attrs(&self) -> (u64, Vec<&'static str>) {
        const ATTRS: &[(MsFlags, u64)] = &[
            (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NOATIME, libc::MOUNT_ATTR_NOATIME),
            (MsFlags::MS_STRICTATIME, libc::MOUNT_ATTR_STRICTATIME),
            (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
            (MS_NOSYMFOLLOW, libc::MOUNT_ATTR_NOSYMFOLLOW),
        ];
        let attrs = ATTRS
            .iter()
            .filter(|(flag, _)| self.flags.contains(*flag))
            .fold(0, |attrs, (_, attr)| attrs | attr);
        let sb = [
            (MsFlags::MS_SYNCHRONOUS, "sync"),
            (MsFlags::MS_DIRSYNC, "dirsync"),
        ];
        let sb = sb
            .iter()
            .filter(|(f, _)| self.flags.contains(*f))
            .map(|(_, n)| *n);
        (attrs, sb.collect())
    }
}

const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// The options that set (`false`) or clear (`true`) a mount(2) flag.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("defaults", false, MsFlags::empty()),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("suid", true, MsFlags::MS_NOSUID),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("dev", true, MsFlags::MS_NODEV),
    ("nodev", false, MsFlags::MS_NODEV),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("atime", true, MsFlags::MS_NOATIME),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosymfollow", false, MS_NOSYMFOLLOW),
    ("symfollow", true, MS_NOSYMFOLLOW),
    ("bind", false, MsFlags::MS_BIND),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
];

/// `flags` by their option names (`ro,nodev`), for messages.
pub fn names(flags: MsFlags) -> String {
    let names: Vec<&str> = FLAGS
        .iter()
        .filter(|(_, clear, f)| !clear && !f.is_empty() && flags.contains(*f))
        .filter(|(n, _, _)| !["bind", "rbind", "remount"].contains(n))
        .map(|(n, _, _)| *n)
        .collect();
    names.join(",")
}

/// berth's own option (not a mount(2) flag): a tmpfs starts with a copy of its destination.
const TMPCOPYUP: &str = "tmpcopyup";

/// Every option name berth interprets itself (anything else is filesystem data), for
/// `berth features`.
pub fn known() -> Vec<&'static str> {
    let mut names: Vec<&str> = FLAGS.iter().map(|(n, _, _)| *n).collect();
    names.extend(PROPAGATION.iter().map(|(n, _)| *n));
    names.extend(RECURSIVE.iter().map(|(n, _, _)| *n));
    names.push(TMPCOPYUP);
    names.extend(IDMAP.iter().map(|(n, _)| *n));
    names
}

/// Parses `options`; `clear` options (rw, suid, ...) cancel flags set before them.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        recursive: RecursiveAttrs::default(),
        tmpcopyup: false,
        idmap: None,
        data: String::new(),
    };
    let mut data = Vec::new();
    for opt in options {
        if let Some(&(_, clear, flag)) = FLAGS.iter().find(|(n, _, _)| n == opt) {
            if clear {
                out.flags.remove(flag);
                out.cleared.insert(flag);
            } else {
                out.flags.insert(flag);
                out.cleared.remove(flag);
            }
        } else if opt == TMPCOPYUP {
            out.tmpcopyup = true;
        } else if let Some(&(_, idmap)) = IDMAP.iter().find(|(n, _)| n == opt) {
            out.idmap = Some(idmap);
        } else if let Some(p) = propagation(opt) {
            out.propagation.push(p);
        } else if let Some(r) = recursive(opt) {
            out.recursive.set = (out.recursive.set & !r.clear) | r.set;
            out.recursive.clear = (out.recursive.clear & !r.set) | r.clear;
        } else {
            data.push(opt.to_string());
        }
    }
    out.data = data.join(",");
    out
}

const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// The mount(2) flags of a propagation option (`rslave`, `private`, ...).
pub fn propagation(name: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, flags)| flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = p(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind());
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn flags_as_fsmount_attributes() {
        let o = p(&["nosuid", "noexec", "nodev", "ro", "sync", "hidepid=2"]);
        let (attrs, sb) = o.fsmount_attrs();
        let want = libc::MOUNT_ATTR_NOSUID
            | libc::MOUNT_ATTR_NOEXEC
            | libc::MOUNT_ATTR_NODEV
            | libc::MOUNT_ATTR_RDONLY;
        assert_eq!(attrs, want);
        assert_eq!(sb, vec!["sync"]);
        assert_eq!(p(&["relatime"]).fsmount_attrs(), (0, vec![]));
        assert_eq!(
            p(&["strictatime"]).fsmount_attrs().0,
            libc::MOUNT_ATTR_STRICTATIME
        );
    }

    #[test]
    fn recursive_attributes_and_tmpcopyup() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoatime", "tmpcopyup"]);
        assert_eq!(
            o.recursive.set,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.recursive.clear, libc::MOUNT_ATTR__ATIME);
        assert!(o.tmpcopyup);
        assert_eq!(o.data, "");
        let o = p(&["rro", "rrw"]);
        assert_eq!(
            (o.recursive.set, o.recursive.clear),
            (0, libc::MOUNT_ATTR_RDONLY)
        );
    }

    #[test]
    fn unknown_options_are_filesystem_data() {
        assert_eq!(p(&["size=1m", "bogus"]).data, "size=1m,bogus");
    }

    #[test]
    fn every_known_option_is_interpreted_not_passed_as_data() {
        let known = known();
        for name in &known {
            let o = p(&[name]);
            assert_eq!(o.data, "", "{name} fell through to filesystem data");
            let did_something = !o.flags.is_empty()
                || !o.propagation.is_empty()
                || !o.recursive.is_empty()
                || o.tmpcopyup
                || o.idmap.is_some()
                // options that clear a flag (and "defaults") show after one that sets it
                || p(&["ro", "nosuid", "nodev", "noexec", "sync", "mand", "noatime", "nodiratime",
                       "relatime", "strictatime", "nosymfollow", name]).flags
                    != p(&["ro", "nosuid", "nodev", "noexec", "sync", "mand", "noatime",
                           "nodiratime", "relatime", "strictatime", "nosymfollow"]).flags
                || *name == "defaults";
            assert!(did_something, "{name} is listed but changes nothing");
        }
        let mut sorted = known.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), known.len(), "an option is listed twice");
        assert!(
            known.contains(&"rro") && known.contains(&"rslave") && known.contains(&"tmpcopyup")
        );
    }

    #[test]
    fn idmap_and_ridmap_the_last_one_wins() {
        assert_eq!(p(&["rbind", "idmap"]).idmap, Some(Idmap::Top));
        assert_eq!(p(&["idmap", "ridmap"]).idmap, Some(Idmap::Recursive));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(Idmap::Top));
        assert_eq!(p(&["bind"]).idmap, None);
        assert_eq!(p(&["bind", "idmap"]).data, "");
    }

    #[test]
    fn flags_are_named_as_options() {
        let f = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_RELATIME;
        assert_eq!(names(f), "ro,nodev,relatime");
        assert_eq!(names(MsFlags::empty()), "");
    }

    #[test]
    fn cleared_flags_are_kept_apart() {
        let o = p(&["bind", "dev", "suid", "exec", "atime"]);
        assert_eq!(o.remount_flags(), MsFlags::empty());
        assert_eq!(
            o.cleared,
            MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME
        );
        // A later setting option takes its flag back out of the cleared ones.
        assert_eq!(p(&["rw", "ro"]).cleared, MsFlags::empty());
    }

    #[test]
    fn later_options_override_earlier() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
        assert_eq!(p(&["nosuid", "suid", "nodev"]).flags, MsFlags::MS_NODEV);
    }
}

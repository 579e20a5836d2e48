//! The container's filesystem: mount types and options as seen in its mountinfo, tmpcopyup,
//! propagation both ways, devices, masked and read-only paths, and a hostile rootfs whose
//! symlinks try to make mounts and device nodes land on the host.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::process::Command;

use procfs::process::{MountInfo, MountOptFields};
use serde_json::json;

use crate::harness::{self, stderr, stdout, Bundle, Runtime};

/// Detaches a mount the test made on the host, also when the test fails.
struct LazyUnmount(std::path::PathBuf);

impl Drop for LazyUnmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Runs mount(8) on the host with `args` and `path`; whether it succeeded.
fn mount(args: &[&str], path: &Path) -> bool {
    Command::new("mount")
        .args(args)
        .arg(path)
        .status()
        .unwrap()
        .success()
}

/// The mount at `dest` in `mounts` (the top one).
fn mount_at<'a>(mounts: &'a [MountInfo], dest: &str) -> &'a MountInfo {
    harness::mount_at(mounts, dest).unwrap_or_else(|| panic!("{dest} not mounted:\n{mounts:#?}"))
}

#[test]
fn mount_types_and_options_inside() {
    let rt = Runtime::new();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("file"), "content").unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    let mut b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(
            json!({"destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "noexec", "ro", "size=1m", "mode=700"]}),
        );
        m.push(
            json!({"destination": "/mnt/bind", "type": "bind", "source": src.path(),
                      "options": ["bind", "ro", "nosuid"]}),
        );
        m.push(
            json!({"destination": "/mnt/file", "type": "bind", "source": src.path().join("file"),
                      "options": ["bind"]}),
        );
        m.push(
            json!({"destination": "/mnt/atime", "type": "tmpfs", "source": "tmpfs",
                      "options": ["noatime", "nodiratime"]}),
        );
    });
    let out = rt.run(&b, &harness::unique_id("mountopts"));
    assert!(out.status.success(), "{}", stderr(&out));
    let mi = harness::parse_mountinfo(&stdout(&out));
    let tmp = mount_at(&mi, "/mnt/tmp");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            tmp.mount_options.contains_key(o),
            "/mnt/tmp lacks {o}: {tmp:?}"
        );
    }
    let super_option = |m: &MountInfo, k: &str| m.super_options.get(k).cloned().flatten();
    assert!(
        tmp.fs_type == "tmpfs"
            && super_option(tmp, "size").as_deref() == Some("1024k")
            && super_option(tmp, "mode").as_deref() == Some("700"),
        "{tmp:?}"
    );
    let bind = mount_at(&mi, "/mnt/bind");
    assert!(
        bind.mount_options.contains_key("ro") && bind.mount_options.contains_key("nosuid"),
        "{bind:?}"
    );
    mount_at(&mi, "/mnt/file");
    let atime = mount_at(&mi, "/mnt/atime");
    assert!(
        atime.mount_options.contains_key("noatime")
            && atime.mount_options.contains_key("nodiratime"),
        "{atime:?}"
    );
}

#[test]
fn bind_file_content_and_recursive_read_only() {
    let rt = Runtime::new();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("file"), "content").unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    // A submount in the source: `rro` must make it read-only too, plain `ro` would not.
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(src.path().join("sub"))
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /mnt/file; touch /mnt/r/sub/x 2>/dev/null && echo sub-rw || echo sub-ro",
    ]);
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/mnt/file", "type": "bind", "source": src.path().join("file"), "options": ["bind"]}));
        m.push(json!({"destination": "/mnt/r", "type": "bind", "source": src.path(), "options": ["rbind", "rro"]}));
    });
    let out = rt.run(&b, &harness::unique_id("rro"));
    let _ = Command::new("umount").arg(src.path().join("sub")).status();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "contentsub-ro\n");
}

/// The mounts of runc's "mount order" test: a tree of host binds, then binds whose source
/// and destination are written as host paths inside the rootfs, taken from the tree built
/// so far; and a source reached through an image's symlink, looked up inside the root.
fn binds_from_inside_the_rootfs(userns: bool) {
    let rt = Runtime::new();
    let src = tempfile::tempdir().unwrap();
    for sub in ["a/x", "b/y"] {
        fs::create_dir_all(src.path().join(sub)).unwrap();
        fs::write(src.path().join(sub).join("file"), sub).unwrap();
    }
    let args = [
        "sh",
        "-c",
        "cat /final/x/y/file /final/file; echo; ls /seen",
    ];
    let mut b = match userns {
        true => crate::namespaces::userns_bundle(&args, 100000, 65536),
        false => Bundle::new(&args),
    };
    let rootfs = b.path().join("rootfs");
    fs::write(src.path().join("a/file"), "a").unwrap();
    // The image's symlink names a host path; inside the container that path is the image's.
    let host_dir = src.path().join("host-only");
    fs::create_dir(&host_dir).unwrap();
    fs::write(host_dir.join("host-secret"), "").unwrap();
    let in_image = rootfs.join(host_dir.strip_prefix("/").unwrap());
    fs::create_dir_all(&in_image).unwrap();
    fs::write(in_image.join("image-file"), "").unwrap();
    std::os::unix::fs::symlink(&host_dir, rootfs.join("escape")).unwrap();
    if userns {
        let st = Command::new("chown")
            .args(["-R", "100000:100000"])
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success());
    }
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        let bind = |source: &std::path::Path, dest: &std::path::Path| {
            json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind"]})
        };
        m.push(bind(&src.path().join("a"), "/mnt".as_ref()));
        m.push(bind(&src.path().join("b"), "/mnt/x".as_ref()));
        m.push(bind(&rootfs.join("mnt"), &rootfs.join("final")));
        m.push(bind(&rootfs.join("escape"), "/seen".as_ref()));
    });
    let out = rt.run(&b, &harness::unique_id("bindorder"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "b/ya\nimage-file\n");
    // Nothing was made under the host path inside the rootfs.
    assert!(!rootfs.join(rootfs.strip_prefix("/").unwrap()).exists());
}

#[test]
fn binds_from_inside_the_rootfs_see_the_mounts_made_before_them() {
    binds_from_inside_the_rootfs(false);
}

#[test]
fn binds_from_inside_the_rootfs_see_the_mounts_made_before_them_in_a_user_namespace() {
    binds_from_inside_the_rootfs(true);
}

/// A read-only host mount bound into a user-namespaced container with other flags
/// (`nosuid,nodev`): as in runc it stays read-only, and the container's root, even with
/// CAP_SYS_ADMIN in its namespace, cannot remount it writable (the kernel's lock on the
/// host's mounts). Also through a parent the mapped root cannot enter (0700), where the
/// source is a clone `create` made: still read-only, and locked.
#[test]
fn a_read_only_host_mount_stays_read_only_in_a_user_namespace() {
    let host = tempfile::tempdir().unwrap();
    let open_dir = host.path().join("open");
    let closed = host.path().join("closed");
    let closed_dir = closed.join("ro");
    fs::create_dir_all(&open_dir).unwrap();
    fs::create_dir_all(&closed_dir).unwrap();
    fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for dir in [&open_dir, &closed_dir] {
        host_tmpfs_with_flags(dir, "ro");
    }
    let rt = Runtime::new();
    let script = "for m in /open /closed; do \
        awk -v m=$m '$5 == m { print m, $6 }' /proc/self/mountinfo; \
        mount -o remount,bind,rw $m 2>/dev/null && touch $m/x && echo $m written; done; true";
    let mut b = crate::namespaces::userns_bundle(&["sh", "-c", script], 100000, 65536);
    b.edit(|c| {
        for set in c["process"]["capabilities"]
            .as_object_mut()
            .unwrap()
            .values_mut()
        {
            set.as_array_mut().unwrap().push(json!("CAP_SYS_ADMIN"));
        }
        let m = c["mounts"].as_array_mut().unwrap();
        for (src, dest) in [(&open_dir, "/open"), (&closed_dir, "/closed")] {
            m.push(json!({"destination": dest, "type": "bind", "source": src,
                          "options": ["bind", "nosuid", "nodev"]}));
        }
    });
    let out = rt.run(&b, &harness::unique_id("rolock"));
    let _ = Command::new("umount").arg(&open_dir).status();
    let _ = Command::new("umount").arg(&closed_dir).status();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let opts = |m: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{m} ")))
            .unwrap_or("");
        line.split([' ', ',']).skip(1).map(str::to_string).collect()
    };
    for m in ["/open", "/closed"] {
        let o = opts(m);
        assert!(o.iter().any(|f| f == "ro"), "{m}: {text}");
        assert!(
            o.iter().any(|f| f == "nosuid") && o.iter().any(|f| f == "nodev"),
            "{m}: {text}"
        );
    }
    // The kernel's lock, on the mount bound by path and on the clone create made of the
    // unreachable source in the container's mount namespace, where the host's mounts are
    // locked (a clone made outside it, before the user namespace, had none).
    assert!(!text.contains("/open written"), "{text}");
    assert!(!text.contains("/closed written"), "{text}");
}

/// Mounts a tmpfs on the host at `dir` and sets the mount's `flags` (a bind remount, so that
/// they are the mount's, not the superblock's: a bind of it may clear them).
fn host_tmpfs_with_flags(dir: &Path, flags: &str) {
    let sh = format!(
        "mount -t tmpfs tmpfs {0} && mount --bind -o remount,{flags} {0}",
        dir.display()
    );
    assert!(Command::new("sh")
        .args(["-c", &sh])
        .status()
        .unwrap()
        .success());
}

/// runc's bind options: the options given are the bind's flags (`mount --bind -o` as it
/// should be: `bind,dev` clears the source's `ro` and `noexec` too, atime kept); with none
/// beyond `bind` the source's stay. In a user namespace, where the kernel locked the source's
/// flags, they stay under the options given, and an option that would clear one is refused
/// (runc's mounts_sshfs tests, with the tmpfs they fall back to).
#[test]
fn bind_options_replace_the_sources_flags_and_locked_ones_cannot_be_cleared() {
    let host = tempfile::tempdir().unwrap();
    let dir = host.path().join("src");
    fs::create_dir(&dir).unwrap();
    host_tmpfs_with_flags(&dir, "ro,noexec,nodiratime");
    let rt = Runtime::new();
    let flags_of = |userns: bool, options: &[&str]| {
        let args = [
            "sh",
            "-c",
            "awk '$5 == \"/mnt\" { print $6 }' /proc/self/mountinfo",
        ];
        let mut b = match userns {
            true => crate::namespaces::userns_bundle(&args, 100000, 65536),
            false => Bundle::new(&args),
        };
        b.edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(
                json!({"destination": "/mnt", "type": "bind", "source": dir, "options": options}),
            )
        });
        let id = harness::unique_id("bindflags");
        let out = rt.run(&b, &id);
        rt.assert_nothing_left(&id);
        out
    };
    let opts = |out: &std::process::Output| -> Vec<String> {
        assert!(out.status.success(), "{}", stderr(out));
        stdout(out).trim().split(',').map(str::to_string).collect()
    };
    let results = [
        opts(&flags_of(false, &["bind"])),
        opts(&flags_of(false, &["bind", "dev"])),
        opts(&flags_of(true, &["bind", "dev"])),
    ];
    let refused = flags_of(true, &["bind", "rw", "nosuid"]);
    let _ = Command::new("umount").arg(&dir).status();
    let has = |o: &[String], f: &str| o.iter().any(|x| x == f);
    // Only `bind`: the source's flags.
    assert!(
        has(&results[0], "ro") && has(&results[0], "noexec"),
        "{results:?}"
    );
    // `bind,dev`: just what was asked for; the atime flags are kept.
    assert!(
        has(&results[1], "rw") && !has(&results[1], "noexec"),
        "{results:?}"
    );
    assert!(has(&results[1], "nodiratime"), "{results:?}");
    // In a user namespace the locked flags stay.
    assert!(
        has(&results[2], "ro") && has(&results[2], "noexec"),
        "{results:?}"
    );
    harness::fails_with_one_line(&refused, "cannot clear locked flags ro: EPERM");
}

/// A relative destination is taken from `/` (runtime-spec 1.1+, deprecated), with runc's
/// warning, not refused.
#[test]
fn a_relative_mount_destination_is_taken_from_the_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "grep ' /tmp/rel ' /proc/self/mountinfo | cut -d' ' -f9",
    ]);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "tmp/rel", "type": "tmpfs", "source": "tmpfs"}));
    });
    let out = rt.run(&b, &harness::unique_id("relmount"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "tmpfs");
    assert!(
        stderr(&out).contains("mount destination tmp/rel is not absolute"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tmpcopyup_keeps_the_image_content() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "cat /etc/hostname; echo new > /etc/extra; cat /etc/extra; grep ' /etc ' /proc/self/mountinfo | cut -d' ' -f9"]);
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}));
    });
    let out = rt.run(&b, &harness::unique_id("copyup"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "berth\nnew\ntmpfs\n");
    // The image itself was not written to.
    assert!(!b.path().join("rootfs/etc/extra").exists());
}

#[test]
fn a_tmpfs_without_mode_takes_the_mode_of_the_directory_it_covers() {
    use std::os::unix::fs::PermissionsExt;
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "stat -c %a /private /private-given /fresh"]);
    let rootfs = b.path().join("rootfs");
    for dir in ["private", "private-given"] {
        fs::create_dir(rootfs.join(dir)).unwrap();
        fs::set_permissions(rootfs.join(dir), fs::Permissions::from_mode(0o2710)).unwrap();
    }
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        for (dest, opts) in [
            ("/private", json!(["nosuid"])),
            ("/private-given", json!(["mode=750"])),
            ("/fresh", json!([])),
        ] {
            mounts.push(
                json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
            );
        }
    });
    let out = rt.run(&b, &harness::unique_id("tmpfsmode"));
    assert!(out.status.success(), "{}", stderr(&out));
    // The covered directory's 2710; the mode given; tmpfs's own 1777 where berth made it.
    assert_eq!(stdout(&out), "2710\n750\n1777\n");
}

/// As runc: a read-only `/dev` or tmpfs is mounted writable and made read-only at the end, so
/// its device nodes, symlinks, sub-mounts and copied-up files are there, and then it is
/// read-only for the container.
#[test]
fn read_only_dev_and_tmpfs_are_filled_first_then_read_only() {
    let rt = Runtime::new();
    let script =
        "echo x > /dev/null && ls /dev/pts/ptmx /dev/ptmx /dev/shm >/dev/null && echo dev-ok; \
        cat /etc/hostname.copy; \
        touch /dev/new 2>&1; touch /etc/new 2>&1; \
        grep -E ' /(dev|etc) ' /proc/self/mountinfo | cut -d' ' -f5,6";
    let mut b = Bundle::new(&["sh", "-c", script]);
    fs::write(b.path().join("rootfs/etc/hostname.copy"), "copied\n").unwrap();
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        let dev = mounts.iter_mut().find(|m| m["destination"] == "/dev").unwrap();
        dev["options"].as_array_mut().unwrap().push(json!("ro"));
        mounts.push(json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "tmpcopyup"]}));
    });
    let out = rt.run(&b, &harness::unique_id("rodev"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "dev-ok", "{text}");
    assert_eq!(lines[1], "copied", "{text}");
    assert!(lines[2].ends_with("Read-only file system"), "{text}");
    assert!(lines[3].ends_with("Read-only file system"), "{text}");
    let mut flags: Vec<&str> = lines[4..].to_vec();
    flags.sort();
    assert_eq!(
        flags
            .iter()
            .map(|l| l.split(',').next().unwrap())
            .collect::<Vec<_>>(),
        ["/dev ro", "/etc ro"],
        "{text}"
    );
}

/// Kubernetes' `mountPropagation: Bidirectional`, as containerd sends it to runc:
/// `rootfsPropagation: rshared` and an `rshared` bind of a shared host directory. Mounts made
/// on either side appear on the other.
#[test]
fn propagation_both_ways_with_rshared_root_and_volume() {
    let rt = Runtime::new();
    let src = tempfile::tempdir().unwrap();
    for d in ["from-host", "from-container"] {
        fs::create_dir(src.path().join(d)).unwrap();
    }
    assert!(mount(&["--bind", src.path().to_str().unwrap()], src.path()));
    let _unmount_src = LazyUnmount(src.path().to_path_buf());
    assert!(mount(&["--make-shared"], src.path()));
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["linux"]["rootfsPropagation"] = json!("rshared");
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt/shared", "type": "bind", "source": src.path(), "options": ["rbind", "rshared"]}));
    });
    let id = harness::unique_id("propboth");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = rt.state(&id)["pid"].to_string();

    // Container → host.
    let st = Command::new("nsenter")
        .args(["-t", &pid, "-m", "mount", "-t", "tmpfs", "madeinside"])
        .arg("/proc/1/root/mnt/shared/from-container")
        .status()
        .unwrap();
    assert!(st.success());
    let from_container = src.path().join("from-container");
    let _unmount_inside = LazyUnmount(from_container.clone());
    let host = harness::my_mounts();
    assert!(
        host.iter()
            .any(|m| m.mount_point == from_container
                && m.mount_source.as_deref() == Some("madeinside")),
        "the container's mount did not reach the host:\n{host:#?}"
    );

    // Host → container.
    let from_host = src.path().join("from-host");
    assert!(mount(&["-t", "tmpfs", "madeonhost"], &from_host));
    let _unmount_host = LazyUnmount(from_host);
    let inside = harness::mounts_in(pid.parse().unwrap()).unwrap();
    assert!(
        inside
            .iter()
            .any(|m| m.mount_point == Path::new("/mnt/shared/from-host")
                && m.mount_source.as_deref() == Some("madeonhost")),
        "the host's mount did not reach the container:\n{inside:#?}"
    );
    rt.delete_force(&id);
}

/// `rootfsPropagation: slave`, as runc: the mount holding the rootfs is made a slave (not
/// private) before the rootfs is bound, so the container's root is a slave of the host's
/// mount and what the host mounts in the rootfs later appears inside.
#[test]
fn a_slave_root_receives_the_hosts_mounts() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| c["linux"]["rootfsPropagation"] = json!("slave"));
    let bundle = b.path().to_path_buf();
    fs::create_dir_all(bundle.join("rootfs/mnt/later")).unwrap();
    // The host's / may be private: the bundle becomes a shared mount of its own.
    assert!(mount(&["--bind", bundle.to_str().unwrap()], &bundle));
    let _unmount_bundle = LazyUnmount(bundle.clone());
    assert!(mount(&["--make-shared"], &bundle));
    let id = harness::unique_id("slaveroot");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let inside = harness::mounts_in(pid).unwrap();
    let root = mount_at(&inside, "/");
    let master = root
        .opt_fields
        .iter()
        .any(|f| matches!(f, MountOptFields::Master(_)));
    let shared = root
        .opt_fields
        .iter()
        .any(|f| matches!(f, MountOptFields::Shared(_)));
    assert!(master && !shared, "the root is not a slave: {root:?}");
    let later = bundle.join("rootfs/mnt/later");
    assert!(mount(&["-t", "tmpfs", "madeonhost"], &later));
    let _unmount_later = LazyUnmount(later);
    let inside = harness::mounts_in(pid).unwrap();
    assert!(
        mount_at(&inside, "/mnt/later").mount_source.as_deref() == Some("madeonhost"),
        "the host's mount did not reach the container:\n{inside:#?}"
    );
    rt.delete_force(&id);
}

#[test]
fn propagation_host_to_container_and_never_back() {
    let rt = Runtime::new();
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("later")).unwrap();
    // The host's / may be private: make the source a shared mount of its own.
    assert!(mount(&["--bind", src.path().to_str().unwrap()], src.path()));
    let _unmount_src = LazyUnmount(src.path().to_path_buf());
    assert!(mount(&["--make-shared"], src.path()));
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt/shared", "type": "bind", "source": src.path(), "options": ["rbind", "rslave"]}));
    });
    let id = harness::unique_id("prop");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].to_string();
    // Counted under the source only: other tests mount on the host meanwhile.
    let under_src = |mounts: &[MountInfo]| {
        mounts
            .iter()
            .filter(|m| m.mount_point.starts_with(src.path()))
            .count()
    };
    let host_mounts_before = under_src(&harness::my_mounts());

    // Host → container: a mount made on the host under the source shows up inside.
    let later = src.path().join("later");
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "hostmade"])
        .arg(&later)
        .status()
        .unwrap()
        .success());
    let _unmount_later = LazyUnmount(later.clone());
    let inside = harness::mounts_in(pid.parse().unwrap()).unwrap();
    assert!(
        harness::mount_at(&inside, "/mnt/shared/later").is_some(),
        "host mount did not propagate in"
    );

    // Container → host: a mount made inside never reaches the host.
    let st = Command::new("nsenter")
        .args([
            "-t",
            &pid,
            "-m",
            "mount",
            "-t",
            "tmpfs",
            "inside",
            "/proc/1/root/mnt/shared",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let host = harness::my_mounts();
    assert!(
        !host
            .iter()
            .any(|m| m.mount_source.as_deref() == Some("inside")),
        "container mount propagated to the host"
    );
    assert_eq!(
        under_src(&host),
        host_mounts_before + 1,
        "only the host's own mount is new"
    );
    rt.delete_force(&id);
}

#[test]
fn configured_devices_with_type_numbers_mode_and_owner() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1001},
            {"path": "/dev/sub/myloop", "type": "b", "major": 7, "minor": 200, "fileMode": 0o640},
            {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620},
        ]);
    });
    let id = harness::unique_id("devices");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = format!("/proc/{}/root", rt.state(&id)["pid"]);
    let meta = |p: &str| fs::symlink_metadata(format!("{root}{p}")).unwrap();
    let null = meta("/dev/mynull");
    assert_eq!(null.mode() & 0o170000, libc::S_IFCHR);
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777, null.uid(), null.gid()),
        (libc::makedev(1, 3), 0o600, 1000, 1001)
    );
    let lp = meta("/dev/sub/myloop");
    assert_eq!(lp.mode() & 0o170000, libc::S_IFBLK);
    assert_eq!(
        (lp.rdev(), lp.mode() & 0o7777),
        (libc::makedev(7, 200), 0o640)
    );
    let fifo = meta("/dev/myfifo");
    assert_eq!(
        (fifo.mode() & 0o170000, fifo.mode() & 0o7777),
        (libc::S_IFIFO, 0o620)
    );
    rt.delete_force(&id);
}

#[test]
fn masked_and_readonly_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "wc -c < /proc/version; ls /proc/acpi | wc -l; echo x > /proc/acpi/y 2>/dev/null || echo acpi-ro; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro; cat /proc/no-such >/dev/null 2>&1 || echo skipped",
    ]);
    b.edit(|c| {
        c["linux"]["maskedPaths"] = json!(["/proc/version", "/proc/acpi", "/proc/no-such"]);
        c["linux"]["readonlyPaths"] = json!(["/proc/sys", "/proc/no-such-either"]);
    });
    let out = rt.run(&b, &harness::unique_id("masked"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "acpi-ro", "sys-ro", "skipped"]
    );
}

#[test]
fn a_path_masked_twice_is_mounted_over_once() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "grep -c ' /proc/acpi ' /proc/self/mountinfo; grep -c ' /proc/version ' /proc/self/mountinfo",
    ]);
    b.edit(|c| {
        c["linux"]["maskedPaths"] = json!([
            "/proc/acpi",
            "/proc/version",
            "/proc/acpi/",
            "//proc/./version",
            "/proc/acpi"
        ]);
    });
    let out = rt.run(&b, &harness::unique_id("masktwice"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n1\n");
}

/// A rootfs whose symlinks point at a host directory, absolutely and by climbing.
fn hostile_bundle(host_dir: &Path) -> Bundle {
    let b = Bundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    symlink(host_dir, rootfs.join("abs")).unwrap();
    symlink(
        format!("../../../../../../../..{}", host_dir.display()),
        rootfs.join("climb"),
    )
    .unwrap();
    symlink("/", rootfs.join("slash")).unwrap();
    b
}

#[test]
fn hostile_symlinks_cannot_reach_the_host() {
    let rt = Runtime::new();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("keep"), "host file").unwrap();
    let mut b = hostile_bundle(host.path());
    let host_dest = host.path().display().to_string();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/abs/m1", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/climb/m2", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": format!("/slash{host_dest}/m3"), "type": "tmpfs", "source": "tmpfs"}));
        c["linux"]["devices"] = json!([
            {"path": "/abs/dev-null", "type": "c", "major": 1, "minor": 3},
            {"path": "/climb/dev-zero", "type": "c", "major": 1, "minor": 5},
        ]);
        c["linux"]["maskedPaths"] = json!(["/abs/keep"]);
        c["process"]["args"] = json!(["sh", "-c", "ls /abs/ /climb/ | sort -u | tr '\\n' ' '"]);
    });
    let mounts_before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let out = rt.run(&b, &harness::unique_id("hostile"));
    assert!(out.status.success(), "{}", stderr(&out));
    // Everything landed inside the rootfs …
    let inside = b
        .path()
        .join("rootfs")
        .join(host.path().strip_prefix("/").unwrap());
    for name in ["m1", "m2", "m3", "dev-null", "dev-zero"] {
        assert!(
            inside.join(name).exists(),
            "{name} not created inside the rootfs"
        );
    }
    // … and nothing on the host: no new entries, no mounts, no device nodes.
    let names: Vec<_> = fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep"], "the host directory was written to");
    assert_eq!(
        fs::read_to_string(host.path().join("keep")).unwrap(),
        "host file"
    );
    let mounts_after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts_before, mounts_after, "mounts changed on the host");
    assert!(!mounts_after.contains(&host_dest));
}

#[test]
fn bad_mount_entries_name_the_entry() {
    let rt = Runtime::new();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"destination": "/mnt/x", "type": "bind", "source": "/no/such/source", "options": ["bind"]}),
            "bind source /no/such/source",
        ),
        (
            json!({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs", "options": ["bogus-option"]}),
            "mount tmpfs with options \"bogus-option\"",
        ),
    ];
    for (entry, want) in cases {
        let mut b = Bundle::new(&["true"]);
        let index = b.config["mounts"].as_array().unwrap().len();
        b.edit(|c| c["mounts"].as_array_mut().unwrap().push(entry.clone()));
        let id = harness::unique_id("badmount");
        let out = rt.create(&b, &id, &[]);
        assert!(!out.status.success(), "{entry} accepted");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("mounts[{index}]")) && err.contains(want),
            "{entry}: {err}"
        );
        rt.assert_nothing_left(&id);
    }
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}])
    });
    let out = rt.create(&b, &harness::unique_id("baddev"), &[]);
    harness::assert_fails_with(&out, "linux.devices[0].type");
}

#[test]
fn a_configured_dev_ptmx_stays_the_link_to_the_containers_devpts() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    // runc's dev.bats: a redundant default /dev/ptmx in linux.devices.
    b.edit(|c| {
        c["linux"]["devices"] =
            serde_json::json!([{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2}])
    });
    let id = harness::unique_id("ptmx");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let ptmx = format!("/proc/{pid}/root/dev/ptmx");
    assert_eq!(
        std::fs::read_link(&ptmx).unwrap(),
        std::path::Path::new("pts/ptmx"),
        "a node was made instead of the link"
    );
    let m = std::fs::metadata(&ptmx).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.permissions().mode() & 0o777, 0o666, "devpts' ptmxmode");
    assert_eq!(m.rdev(), libc::makedev(5, 2));
    rt.delete_force(&id);
}

/// The `mnt_id` of fd `fd` of process `pid`, from its fdinfo.
fn fd_mount_id(pid: &str, fd: u32) -> u64 {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

/// As runc: stdio that is the host's /dev/null (what an engine gives a detached container)
/// is reopened inside as the container's own /dev/null, so the container holds no file of a
/// mount outside its namespace (CRIU refuses to checkpoint one: "Can't lookup mount").
#[test]
fn stdio_that_is_the_hosts_dev_null_becomes_the_containers() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = harness::unique_id("devnull");
    rt.track_bundle(&id, b.path());
    let status = rt
        .cmd()
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pid = rt.state(&id)["pid"].as_i64().unwrap().to_string();
    let host_null = fs::File::open("/dev/null").unwrap();
    let host_dev = fd_mount_id("self", std::os::fd::AsRawFd::as_raw_fd(&host_null) as u32);
    for fd in 0..3 {
        let link = fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(link, Path::new("/dev/null"), "fd {fd}");
        assert_ne!(
            fd_mount_id(&pid, fd),
            host_dev,
            "fd {fd} of init is still the host's /dev/null"
        );
    }
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

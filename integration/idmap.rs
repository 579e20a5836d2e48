//! Idmapped bind mounts (root: user namespaces, mounts): owners seen through the mount's id
//! maps inside the container, and written back through them, checked from the host's side
//! of the same directories. Kernel 5.12+ with a filesystem that supports idmapped mounts
//! (ext4 or tmpfs here).

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::harness::{self, stderr, stdout, Runtime};
use crate::namespaces::userns_bundle;

fn maps(container: u32, host: u32, size: u32) -> Value {
    json!([{"containerID": container, "hostID": host, "size": size}])
}

fn push_mount(c: &mut Value, m: Value) {
    c["mounts"].as_array_mut().unwrap().push(m);
}

/// A host directory with one file, both owned by `owner`.
fn owned_dir(parent: &Path, name: &str, owner: u32) -> std::path::PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("file"), "x").unwrap();
    chown(dir.join("file"), Some(owner), Some(owner)).unwrap();
    chown(&dir, Some(owner), Some(owner)).unwrap();
    dir
}

fn owner(path: &Path) -> (u32, u32) {
    let md = fs::metadata(path).unwrap();
    (md.uid(), md.gid())
}

/// The case: a host directory of uid 1000, in a container whose root is host uid
/// 100000, idmapped so that 1000 on disk is the container's root: the file shows as 0:0
/// inside, a file the container's root makes is 1000's on the host, and a plain bind of the
/// same directory in the same container keeps the host's ids (unmapped there: nobody).
#[test]
fn an_idmapped_bind_maps_owners_both_ways_beside_a_plain_one() {
    let host = tempfile::tempdir().unwrap();
    let dir = owned_dir(host.path(), "data", 1000);
    let rt = Runtime::new();
    let script = "stat -c 'mapped %u:%g' /mapped/file; stat -c 'plain %u:%g' /plain/file; \
                  echo hi > /mapped/made && stat -c 'made %u:%g' /mapped/made";
    let mut b = userns_bundle(&["sh", "-c", script], 100000, 65536);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/mapped", "type": "bind", "source": dir,
                   "options": ["rbind"], "uidMappings": maps(1000, 100000, 1),
                   "gidMappings": maps(1000, 100000, 1)}),
        );
        push_mount(
            c,
            json!({"destination": "/plain", "type": "bind", "source": dir, "options": ["rbind"]}),
        );
    });
    let id = harness::unique_id("idmap");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("mapped 0:0"), "{text}");
    assert!(text.contains("plain 65534:65534"), "{text}");
    assert!(text.contains("made 0:0"), "{text}");
    assert_eq!(owner(&dir.join("made")), (1000, 1000));
    assert_eq!(owner(&dir.join("file")), (1000, 1000));
    rt.assert_nothing_left(&id);
}

/// Without a user namespace in the container: on-disk root is seen as the mapping's host id.
#[test]
fn an_idmapped_bind_without_a_user_namespace() {
    let host = tempfile::tempdir().unwrap();
    let dir = owned_dir(host.path(), "data", 0);
    let rt = Runtime::new();
    let mut b = harness::Bundle::new(&["stat", "-c", "%u:%g", "/mapped/file"]);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/mapped", "type": "bind", "source": dir,
                   "options": ["bind"], "uidMappings": maps(0, 100000, 65536),
                   "gidMappings": maps(0, 200000, 65536)}),
        );
    });
    let out = rt.run(&b, &harness::unique_id("idmapnous"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "100000:200000");
}

/// `idmap` alone takes the container's own maps and maps the top mount only; `ridmap` maps
/// the mounts below it too. The submount is a tmpfs the host mounted inside the source.
#[test]
fn idmap_takes_the_containers_maps_and_ridmap_reaches_submounts() {
    let host = tempfile::tempdir().unwrap();
    let dir = owned_dir(host.path(), "tree", 0);
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap()
        .success());
    fs::write(sub.join("file"), "y").unwrap();
    let rt = Runtime::new();
    let script = "for m in /top /all; do stat -c \"$m %u\" $m/file; stat -c %u $m/sub/file; done";
    let mut b = userns_bundle(&["sh", "-c", script], 100000, 65536);
    b.edit(|c| {
        for (dest, opt) in [("/top", "idmap"), ("/all", "ridmap")] {
            push_mount(
                c,
                json!({"destination": dest, "type": "bind", "source": dir,
                       "options": ["rbind", opt]}),
            );
        }
    });
    let out = rt.run(&b, &harness::unique_id("ridmap"));
    let _ = Command::new("umount").arg(&sub).status();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    // /top: the file 0 (mapped), the submount's file unmapped (65534); /all: both 0.
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("/top 0"), "{lines:?}");
    assert_eq!(lines[1], "65534", "{lines:?}");
    assert!(lines[2].starts_with("/all 0"), "{lines:?}");
    assert_eq!(lines[3], "0", "{lines:?}");
}

/// What containerd's CRI writes for a Kubernetes pod with `hostUsers: false`: the pod's user
/// namespace, and its volumes and `/etc/hosts` bound with the pod's own maps, so the kubelet's
/// root-owned files are the container's root's. The container writes into the volume, and
/// the host sees the file as root's (on-disk ids, unshifted).
#[test]
fn a_kubernetes_user_namespace_pod_with_idmapped_volumes() {
    let host = tempfile::tempdir().unwrap();
    let volume = owned_dir(host.path(), "volume", 0);
    fs::set_permissions(&volume, fs::Permissions::from_mode(0o755)).unwrap();
    let hosts = host.path().join("etc-hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let rt = Runtime::new();
    let script = "stat -c '%u:%g %a' /data /etc/hosts; cat /etc/hosts; \
                  echo log > /data/log && stat -c '%u:%g' /data/log";
    let mut b = userns_bundle(&["sh", "-c", script], 165536, 65536);
    let pod_maps = maps(0, 165536, 65536);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/data", "type": "bind", "source": volume,
                   "options": ["rbind", "rprivate", "rw"],
                   "uidMappings": pod_maps, "gidMappings": pod_maps}),
        );
        push_mount(
            c,
            json!({"destination": "/etc/hosts", "type": "bind", "source": hosts,
                   "options": ["rbind", "rprivate", "rw"],
                   "uidMappings": pod_maps, "gidMappings": pod_maps}),
        );
    });
    let out = rt.run(&b, &harness::unique_id("k8suserns"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("0:0 755"), "{text}");
    assert!(text.contains("127.0.0.1 localhost"), "{text}");
    assert_eq!(text.lines().last(), Some("0:0"), "{text}");
    assert_eq!(owner(&volume.join("log")), (0, 0));
}

/// The source comes from the container's mount namespace when its mount is due (runc's
/// mount-order test): an idmapped bind of a directory inside the rootfs holds the binds made
/// there before it.
#[test]
fn an_idmapped_source_inside_the_rootfs_holds_the_earlier_mounts() {
    let host = tempfile::tempdir().unwrap();
    let dir = owned_dir(host.path(), "a", 0);
    let rt = Runtime::new();
    let mut b = userns_bundle(&["stat", "-c", "%u %n", "/final/file"], 100000, 65536);
    let rootfs = b.path().join("rootfs");
    fs::create_dir_all(rootfs.join("mnt")).unwrap();
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/mnt", "type": "bind", "source": dir, "options": ["rbind"]}),
        );
        push_mount(
            c,
            json!({"destination": "/final", "type": "bind", "source": rootfs.join("mnt"),
                   "options": ["rbind", "rprivate"], "uidMappings": maps(0, 100000, 65536),
                   "gidMappings": maps(0, 100000, 65536)}),
        );
    });
    let out = rt.run(&b, &harness::unique_id("idmaporder"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0 /final/file");
}

/// A filesystem that cannot be idmapped (procfs) is refused with the kernel's reason and
/// runc's hint, naming the mount, and nothing is left.
#[test]
fn a_source_that_cannot_be_idmapped_is_refused_by_name() {
    let rt = Runtime::new();
    let mut b = harness::Bundle::new(&["true"]);
    b.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/hostproc", "type": "bind", "source": "/proc/sys",
                   "options": ["rbind"], "uidMappings": maps(0, 100000, 65536),
                   "gidMappings": maps(0, 100000, 65536)}),
        );
    });
    let id = harness::unique_id("idmapproc");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(&out, "set MOUNT_ATTR_IDMAP on /proc/sys: EINVAL");
    let err = stderr(&out);
    assert!(
        err.contains("mounts[") && err.contains("(/hostproc)"),
        "{err}"
    );
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
}

/// `features` tells containerd that idmapped mounts work (what `hostUsers: false` needs).
#[test]
fn features_say_idmap_is_enabled() {
    let rt = Runtime::new();
    let out = rt.berth(&["features"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let options = v["mountOptions"].as_array().unwrap();
    assert!(options.contains(&json!("idmap")) && options.contains(&json!("ridmap")));
}

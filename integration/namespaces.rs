//! Namespaces new and joined, compared through /proc/PID/ns links on the host; user
//! namespace mappings seen from the host.

use std::fs;
use std::path::Path;

use procfs::process::MountInfo;
use procfs::Current;
use serde_json::json;

use crate::harness::{self, ns_link, stderr, stdout, Bundle, Runtime};

const KINDS: [&str; 6] = ["pid", "net", "ipc", "uts", "mnt", "cgroup"];

#[test]
fn new_namespaces_differ_from_the_host() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let id = harness::unique_id("nsnew");
    assert!(rt.create(&b, &id, &[]).status.success());
    let pid = rt.state(&id)["pid"].to_string();
    for kind in KINDS {
        assert_ne!(
            ns_link(&pid, kind),
            ns_link("self", kind),
            "{kind} namespace not new"
        );
    }
    // Namespaces not listed are shared with the host.
    assert_eq!(ns_link(&pid, "user"), ns_link("self", "user"));
    assert_eq!(ns_link(&pid, "time"), ns_link("self", "time"));
    rt.delete_force(&id);
}

#[test]
fn an_empty_namespace_path_makes_a_new_namespace_as_in_runc() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "100"]);
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            ns["path"] = json!("");
        }
    });
    let id = harness::unique_id("nsempty");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = rt.state(&id)["pid"].to_string();
    for kind in KINDS {
        assert_ne!(ns_link(&pid, kind), ns_link("self", kind), "{kind}");
    }
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

#[test]
fn namespaces_joined_by_path() {
    let rt = Runtime::new();
    let first = Bundle::new(&["sleep", "100"]);
    let a = harness::unique_id("nsa");
    assert!(rt.create(&first, &a, &[]).status.success());
    let a_pid = rt.state(&a)["pid"].to_string();

    let mut second = Bundle::new(&["sleep", "100"]);
    second.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            let kind = match ns["type"].as_str().unwrap() {
                "network" => "net",
                "ipc" => "ipc",
                "uts" => "uts",
                _ => continue,
            };
            ns["path"] = json!(format!("/proc/{a_pid}/ns/{kind}"));
        }
        c.as_object_mut().unwrap().remove("hostname");
    });
    let b = harness::unique_id("nsb");
    let out = rt.create(&second, &b, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b_pid = rt.state(&b)["pid"].to_string();
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_link(&b_pid, kind),
            ns_link(&a_pid, kind),
            "{kind} not joined"
        );
    }
    for kind in ["pid", "mnt", "cgroup"] {
        assert_ne!(
            ns_link(&b_pid, kind),
            ns_link(&a_pid, kind),
            "{kind} should be new"
        );
    }
    rt.delete_force(&b);
    rt.delete_force(&a);
}

#[test]
fn a_pid_namespace_joined_by_path_is_the_one_its_proc_shows() {
    // Joined late, after pivot_root: the container's /proc is still made for that
    // namespace, with the config's options, and init is a member of it.
    let rt = Runtime::new();
    let first = Bundle::new(&["sleep", "100"]);
    let a = harness::unique_id("pidnsa");
    assert!(rt.create(&first, &a, &[]).status.success());
    assert!(rt.berth(&["start", &a]).status.success());
    let a_pid = rt.state(&a)["pid"].to_string();
    let script = "tr '\\0' ' ' </proc/1/cmdline; echo; grep ' /proc ' /proc/self/mountinfo; echo self $$ $(cut -d' ' -f1 /proc/$$/stat)";
    let mut second = Bundle::new(&["sh", "-c", script]);
    second.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{a_pid}/ns/pid"));
            }
        }
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["type"] == "proc" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "hidepid=invisible"]);
            }
        }
    });
    let b = harness::unique_id("pidnsb");
    let out = rt.create(&second, &b, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b_pid = rt.state(&b)["pid"].to_string();
    assert_eq!(ns_link(&b_pid, "pid"), ns_link(&a_pid, "pid"));
    let nspid = harness::status_of(b_pid.parse().unwrap())
        .nspid
        .expect("NSpid in /proc/PID/status");
    let in_a = nspid.last().unwrap();
    assert!(rt.berth(&["start", &b]).status.success());
    harness::reap(b_pid.parse().unwrap());
    let out = std::fs::read_to_string(second.path().join("stdout")).unwrap();
    assert!(out.starts_with("sleep 100 \n"), "{out}");
    let proc = out
        .lines()
        .filter_map(|l| MountInfo::from_line(l).ok())
        .find(|m| m.mount_point == Path::new("/proc"));
    assert!(
        proc.is_some_and(|m| ["nosuid", "nodev", "noexec"]
            .iter()
            .all(|o| m.mount_options.contains_key(*o))
            && m.fs_type == "proc"
            && m.mount_source.as_deref() == Some("proc")
            && m.super_options.get("hidepid") == Some(&Some("invisible".to_string()))),
        "{out}"
    );
    assert!(
        out.contains(&format!("self {in_a} {in_a}\n")),
        "{nspid:?} / {out}"
    );
    rt.delete_force(&b);
    rt.delete_force(&a);
}

#[test]
fn joining_a_path_of_the_wrong_type_fails() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        let net = ns.iter_mut().find(|n| n["type"] == "network").unwrap();
        net["path"] = json!("/proc/self/ns/uts");
    });
    let id = harness::unique_id("nswrong");
    let out = rt.create(&b, &id, &[]);
    harness::assert_fails_with(&out, "join net namespace /proc/self/ns/uts");
    rt.assert_nothing_left(&id);
}

/// Gives `b` a new user namespace mapping container ids 0..size to host_id.., with the
/// rootfs handed to the mapped root.
fn add_user_namespace(b: &mut Bundle, host_id: u32, size: u32) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{host_id}:{host_id}"))
        .arg(b.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": host_id, "size": size}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": host_id, "size": size}]);
    });
}

/// A user-namespace bundle whose /sys is bound from the host and without a cgroup mount, as
/// runc's rootless spec has it.
pub fn userns_bundle(args: &[&str], host_id: u32, size: u32) -> Bundle {
    let mut b = Bundle::new(args);
    add_user_namespace(&mut b, host_id, size);
    b.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["type"] != "cgroup");
    });
    b
}

#[test]
fn user_namespace_binds_sources_its_mapped_root_cannot_reach() {
    // runc's userns.bats: a 0700 directory of the host's root is bound into a container
    // whose root is host uid 100000, because the source is opened before the user namespace
    // is entered; a file bound the same way too.
    use std::os::unix::fs::PermissionsExt;
    let rt = Runtime::new();
    let mut b = userns_bundle(
        &[
            "sh",
            "-c",
            "cat /mnt/one/foo.txt /mnt/two/foo.txt /mnt/file.txt",
        ],
        100000,
        65536,
    );
    let host = tempfile::tempdir().unwrap();
    for (dir, text) in [("one", "first\n"), ("two", "second\n")] {
        let closed = host.path().join(format!("closed-{dir}"));
        fs::create_dir_all(closed.join("dir")).unwrap();
        fs::write(closed.join("dir/foo.txt"), text).unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    }
    fs::write(host.path().join("closed-one/file.txt"), "a file\n").unwrap();
    // Readable to others once reached, as runc's test files are.
    for f in [
        "closed-one/dir/foo.txt",
        "closed-two/dir/foo.txt",
        "closed-one/file.txt",
    ] {
        fs::set_permissions(host.path().join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let h = host.path().display().to_string();
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/mnt/one", "source": format!("{h}/closed-one/dir"), "options": ["bind"]}));
        mounts.push(json!({"destination": "/mnt/two", "source": format!("{h}/closed-two/dir"), "options": ["rbind"]}));
        mounts.push(json!({"destination": "/mnt/file.txt", "source": format!("{h}/closed-one/file.txt"), "options": ["bind", "ro"]}));
    });
    let id = harness::unique_id("usernsbind");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "first\nsecond\na file\n");
    rt.assert_nothing_left(&id);
}

#[test]
fn user_namespace_with_mappings() {
    let rt = Runtime::new();
    let b = userns_bundle(&["sleep", "100"], 100000, 65536);
    let id = harness::unique_id("userns");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = rt.state(&id)["pid"].to_string();
    assert_ne!(ns_link(&pid, "user"), ns_link("self", "user"));
    let uid_map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let gid_map = fs::read_to_string(format!("/proc/{pid}/gid_map")).unwrap();
    assert_eq!(
        gid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    // From the host, container root is host uid 100000.
    let status = harness::status_of(pid.parse().unwrap());
    assert_eq!(status.ruid, 100000, "{status:?}");
    assert!(rt.berth(&["start", &id]).status.success());
    rt.delete_force(&id);
}

#[test]
fn user_namespace_process_sees_itself_as_root() {
    let rt = Runtime::new();
    let b = userns_bundle(&["sh", "-c", "id -u; cat /proc/self/uid_map"], 200000, 1000);
    let out = rt.run(&b, &harness::unique_id("usernsid"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"));
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "1000"]
    );
}

#[test]
fn time_namespace_with_offsets() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "cut -d. -f1 /proc/uptime"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 864000, "nanosecs": 0},
                                           "boottime": {"secs": 864000, "nanosecs": 0}});
    });
    let out = rt.run(&b, &harness::unique_id("timens"));
    assert!(out.status.success(), "{}", stderr(&out));
    let inside: u64 = stdout(&out).trim().parse().unwrap();
    // Whole seconds, as `cut -d. -f1` gives inside.
    let host = procfs::Uptime::current().unwrap().uptime as u64;
    assert!(
        inside >= host + 864000 - 5,
        "uptime inside {inside}, host {host}"
    );
}

#[test]
fn user_namespace_with_the_default_mounts_and_devices() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c '%t:%T' /dev/null /dev/zero; ls /sys/kernel >/dev/null && echo sys; ls /sys/fs/cgroup/pids/pids.max",
    ]);
    // Without its own network namespace the kernel refuses a sysfs mount here.
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    });
    add_user_namespace(&mut b, 300000, 65536);
    // runc's default mounts unchanged: sysfs falls back to a bind of /sys, devices are bound
    // from the host since mknod is refused in a user namespace.
    let out = rt.run(&b, &harness::unique_id("usernsdefault"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1:3\n1:5\nsys\n/sys/fs/cgroup/pids/pids.max\n"
    );
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup() {
    let rt = Runtime::new();
    // v1: the pids hierarchy has its own directory and line; v2: one tree, line "0::/".
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (file, line, root) = if v2 {
        ("/sys/fs/cgroup/pids.max", "^0::", "0::/")
    } else {
        ("/sys/fs/cgroup/pids/pids.max", "pids", ":pids:/")
    };
    let script = format!("cat {file}; grep {line} /proc/self/cgroup");
    let mut b = Bundle::new(&["sh", "-c", &script]);
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 77}));
    let out = rt.run(&b, &harness::unique_id("cgmount"));
    assert!(out.status.success(), "{}", stderr(&out));
    // The limit berth wrote, seen through the container's own cgroup mount, at its cgroup
    // namespace root.
    let text = stdout(&out);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "77");
    assert!(lines[1].ends_with(root), "{text}");
}

#[test]
fn cgroup_mounts_are_read_only_nosuid_nodev_noexec() {
    // The default cgroup mount asks for ro,nosuid,nodev,noexec: the tmpfs (v1) and every
    // hierarchy bound below it, or the one cgroup2 bind (v2), must carry them all.
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "grep ' /sys/fs/cgroup' /proc/self/mountinfo; echo 5 > /sys/fs/cgroup/pids/pids.max || echo refused; echo 5 > /sys/fs/cgroup/pids.max || echo refused",
    ]);
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 77}));
    let out = rt.run(&b, &harness::unique_id("cgro"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mounts: Vec<MountInfo> = text
        .lines()
        .filter(|l| l.contains(" - "))
        .map(|l| MountInfo::from_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert!(mounts.len() >= if v2 { 1 } else { 2 }, "{text}");
    for m in &mounts {
        for want in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(m.mount_options.contains_key(want), "{want} missing: {m:?}");
        }
    }
    // Both writes fail: the one that names an existing file by the file system being
    // read-only, the other because the path does not exist (v1 or v2 layout).
    assert_eq!(text.matches("refused").count(), 2, "{text}");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn raising_a_hard_rlimit_without_cap_sys_resource_fails_clearly() {
    // In a user namespace CAP_SYS_RESOURCE of the host is never held, on any machine.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let rt = Runtime::new();
    let mut b = userns_bundle(&["true"], 100000, 65536);
    b.edit(|c| {
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": lim.rlim_max + 1}]);
    });
    let id = harness::unique_id("rlimit");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        &format!("process.rlimits[0]: RLIMIT_NOFILE soft 64 hard {}: raising the hard limit above the current {} needs CAP_SYS_RESOURCE", lim.rlim_max + 1, lim.rlim_max),
    );
    harness::reap_failed_inits();
    rt.assert_nothing_left(&id);
}

/// The network namespace is made by the setup process while init mounts, and joined by init
/// before it mounts sysfs: sysfs shows the network namespace of whoever mounted it, so a
/// sysfs mounted before the join would list the host's interfaces. Also in a user namespace
/// (which must own the network namespace for the sysfs mount to be allowed).
#[test]
fn sysfs_and_proc_show_the_containers_own_network() {
    let host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        host.iter().any(|n| n != "lo"),
        "the host has no interface but lo: nothing to tell apart"
    );
    let show = "ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    for userns in [false, true] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&["sh", "-c", show]);
        if userns {
            // sysfs itself, not runc's rootless bind of the host's /sys.
            add_user_namespace(&mut b, 200000, 65536);
            b.edit(|c| {
                c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|m| m["type"] != "cgroup")
            });
        }
        let id = harness::unique_id("netsys");
        let out = rt.run(&b, &id);
        assert!(out.status.success(), "userns {userns}: {}", stderr(&out));
        assert_eq!(stdout(&out), "lo\nlo\n", "userns {userns}");
        rt.assert_nothing_left(&id);
    }
}

/// `ip ARGS...` on the host; its output, or a panic with its stderr.
fn ip(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip")
}

fn ip_ok(args: &[&str]) -> String {
    let out = ip(args);
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A veth pair made for one test (this machine's kernel has no `dummy` link type), with
/// short unique names; deleted when dropped if it is still on the host.
struct Veth {
    name: String,
    peer: String,
}

impl Veth {
    fn new() -> Veth {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let v = Veth {
            name: format!("btv{tag}"),
            peer: format!("btp{tag}"),
        };
        ip_ok(&[
            "link", "add", &v.name, "type", "veth", "peer", "name", &v.peer,
        ]);
        v
    }

    fn on_host(name: &str) -> bool {
        ip(&["link", "show", "dev", name]).status.success()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for name in [&self.name, &self.peer] {
            if Veth::on_host(name) {
                let _ = ip(&["link", "del", "dev", name]);
            }
        }
    }
}

#[test]
fn net_devices_move_into_the_container_renamed_with_mtu_mac_and_global_addresses() {
    let rt = Runtime::new();
    let veth = Veth::new();
    ip_ok(&["link", "set", "dev", &veth.name, "mtu", "1789"]);
    ip_ok(&[
        "link",
        "set",
        "dev",
        &veth.name,
        "address",
        "00:11:22:33:44:55",
    ]);
    ip_ok(&["address", "add", "169.254.169.77/32", "dev", &veth.name]);
    ip_ok(&[
        "address",
        "add",
        "127.0.0.33/8",
        "dev",
        &veth.name,
        "scope",
        "host",
    ]);
    let mut b = Bundle::new(&["ip", "address", "show", "dev", "ctr_veth0"]);
    b.edit(|c| c["linux"]["netDevices"] = json!({ veth.name.as_str(): {"name": "ctr_veth0"} }));
    let id = harness::unique_id("netdev");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let inside = stdout(&out);
    assert!(
        inside.contains(" 169.254.169.77/32 "),
        "global address: {inside}"
    );
    assert!(
        !inside.contains("127.0.0.33"),
        "host-scope address moved: {inside}"
    );
    assert!(inside.contains("ether 00:11:22:33:44:55 "), "{inside}");
    assert!(inside.contains("mtu 1789 "), "{inside}");
    assert!(inside.contains(",UP"), "set up inside: {inside}");
    // It left the host; a virtual device ends with the container's namespace.
    assert!(!Veth::on_host(&veth.name), "still on the host");
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

#[test]
fn net_devices_stay_in_a_precreated_network_namespace_after_the_container() {
    let rt = Runtime::new();
    let veth = Veth::new();
    let netns = format!("berth-test-{}", veth.name);
    ip_ok(&["netns", "add", &netns]);
    struct DelNetns(String);
    impl Drop for DelNetns {
        fn drop(&mut self) {
            let _ = ip(&["netns", "del", &self.0]);
        }
    }
    let _del = DelNetns(netns.clone());
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["netDevices"] = json!({ veth.name.as_str(): {} });
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(format!("/run/netns/{netns}"));
            }
        }
    });
    let id = harness::unique_id("netdevns");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "run: {}", stderr(&out));
    rt.delete_force(&id);
    let shown = ip_ok(&["-n", &netns, "link", "show", "dev", &veth.name]);
    assert!(shown.contains(&veth.name), "{shown}");
    assert!(!Veth::on_host(&veth.name));
}

#[test]
fn a_net_device_that_is_not_there_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["netDevices"] = json!({"btnosuch0": {}}));
    let id = harness::unique_id("netdevnone");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        "linux.netDevices: move btnosuch0 into the container: link not found for interface btnosuch0 on the host",
    );
    rt.assert_nothing_left(&id);
    harness::assert_no_process_of(&id);
    harness::reap_failed_inits();

    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["linux"]["netDevices"] = json!({"eth0": {"name": "a/b"}}));
    let id = harness::unique_id("netdevname");
    let out = rt.create(&b, &id, &[]);
    harness::fails_with_one_line(
        &out,
        "config.json: linux.netDevices.eth0.name: invalid network device name \"a/b\"",
    );
    rt.assert_nothing_left(&id);
}

#[test]
fn time_namespace_offsets_in_a_user_namespace() {
    // runc's timens.bats "simple timens + userns": berth, from the host's user namespace,
    // writes the offsets of the setup process's new time namespace (the setup process
    // itself may not, as the mapped root).
    let rt = Runtime::new();
    let mut b = userns_bundle(&["cat", "/proc/self/timens_offsets"], 100000, 65536);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 7881, "nanosecs": 2718281},
                                           "boottime": {"secs": 1337, "nanosecs": 3141519}});
    });
    let id = harness::unique_id("timensuserns");
    let out = rt.run(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    let offsets: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert!(
        offsets.contains(&vec!["monotonic".into(), "7881".into(), "2718281".into()]),
        "{offsets:?}"
    );
    assert!(
        offsets.contains(&vec!["boottime".into(), "1337".into(), "3141519".into()]),
        "{offsets:?}"
    );
    rt.delete_force(&id);
    rt.assert_nothing_left(&id);
}

#[test]
fn a_container_joins_another_containers_user_namespace_and_a_netns_that_it_does_not_own() {
    // runc's userns.bats "join other container userns" and "[wrong userns owner]": berth
    // becomes root of the joined user namespace (its mappings, not the host's ids) and joins
    // a network namespace owned by the host's user namespace before entering it.
    use std::os::unix::fs::MetadataExt;
    let rt = Runtime::new();
    let target = userns_bundle(&["sleep", "100"], 100000, 65536);
    let target_id = harness::unique_id("usernstarget");
    let out = rt.create(&target, &target_id, &[]);
    assert!(out.status.success(), "create target: {}", stderr(&out));
    let target_pid = rt.state(&target_id)["pid"].to_string();

    let netns = format!("berth-test-{}", std::process::id());
    let added = std::process::Command::new("ip")
        .args(["netns", "add", &netns])
        .status()
        .unwrap();
    assert!(added.success(), "ip netns add");
    struct DelNetns(String);
    impl Drop for DelNetns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let _del = DelNetns(netns.clone());
    let netns_path = format!("/run/netns/{netns}");

    let mut b = userns_bundle(&["sleep", "100"], 100000, 65536);
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            match ns["type"].as_str() {
                Some("user") => ns["path"] = json!(format!("/proc/{target_pid}/ns/user")),
                Some("network") => ns["path"] = json!(netns_path.clone()),
                _ => {}
            }
        }
        let linux = c["linux"].as_object_mut().unwrap();
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    });
    let id = harness::unique_id("usernsjoin");
    let out = rt.create(&b, &id, &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = rt.state(&id)["pid"].to_string();
    assert_eq!(ns_link(&pid, "user"), ns_link(&target_pid, "user"));
    let netns_ino = fs::metadata(&netns_path).unwrap().ino();
    assert_eq!(ns_link(&pid, "net"), format!("net:[{netns_ino}]"));
    let uid_map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    assert_eq!(fields, ["0", "100000", "65536"]);
    // Its init runs as the namespace's root: host uid 100000.
    let status = harness::status_of(pid.parse().unwrap());
    assert_eq!(status.ruid, 100000, "{status:?}");
    rt.delete_force(&id);
    rt.delete_force(&target_id);
    rt.assert_nothing_left(&id);
}

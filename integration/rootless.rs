//! Rootless berth: berth run by an unprivileged user (root is needed to make that user: the
//! tests add a system user of their own, `berth-rootless`, with subordinate id ranges in
//! /etc/subuid and /etc/subgid, then run berth as it with setpriv). Multi-range id maps go
//! through newuidmap/newgidmap (Debian's uidmap); the lifecycle, and the owners on the host
//! of what the container makes; bad maps refused by their field with nothing left.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::harness::{self, stderr, stdout, Bundle};

const USER: &str = "berth-rootless";
/// The user's subordinate ids (uids and gids alike).
const SUB_START: u32 = 400_000;
const SUB_SIZE: u32 = 65_536;

/// The test user's uid and gid, made (once) if missing, with its subordinate ranges.
fn test_user() -> (u32, u32) {
    static MADE: Mutex<Option<(u32, u32)>> = Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ids) = *made {
        return ids;
    }
    harness::require_root();
    if !Path::new("/usr/bin/newuidmap").exists() {
        // The tests below are about it: without it they cannot show anything.
        panic!("newuidmap is missing (apt-get install uidmap): the rootless tests need it");
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", USER])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {USER}");
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let line = format!("{USER}:{SUB_START}:{SUB_SIZE}\n");
            fs::write(file, text + &line).unwrap();
        }
    }
    let ids = (id("-u").unwrap(), id("-g").unwrap());
    *made = Some(ids);
    ids
}

/// A bundle and state root owned by the test user, with a config from `berth spec
/// --rootless` (made as that user) running `args`, edited by `edit`.
struct RootlessBundle {
    bundle: Bundle,
    state: tempfile::TempDir,
    uid: u32,
    gid: u32,
}

impl RootlessBundle {
    fn new(args: &[&str], edit: impl FnOnce(&mut Value, u32, u32)) -> RootlessBundle {
        let (uid, gid) = test_user();
        let bundle = Bundle::new(&["true"]);
        let state = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir()
            .unwrap();
        fs::remove_file(bundle.path().join("config.json")).unwrap();
        for dir in [bundle.path(), state.path()] {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(dir)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let b = RootlessBundle {
            bundle,
            state,
            uid,
            gid,
        };
        let out = b.berth(&["spec", "--rootless"], &[]);
        assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
        let path = b.bundle.path().join("config.json");
        let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        // runc's spec has a read-only root; these containers write to it.
        config["root"]["readonly"] = json!(false);
        edit(&mut config, uid, gid);
        fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        b
    }

    /// berth as the test user, in the bundle directory, with `env` added; bounded. Its
    /// output goes through files: after `create` the container's init holds its stdio.
    fn berth(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let (out, err) = (
            self.bundle.path().join("out"),
            self.bundle.path().join("err"),
        );
        let child = Command::new("/usr/bin/setpriv")
            .args([
                "--reuid",
                &self.uid.to_string(),
                "--regid",
                &self.gid.to_string(),
            ])
            .args(["--clear-groups", "--"])
            .arg(harness::BERTH)
            .arg("--root")
            .arg(self.state.path())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.bundle.path())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let status = harness::wait_within(child, std::time::Duration::from_secs(60))
            .unwrap_or_else(|pid| panic!("berth {args:?} (pid {pid}) did not end in 60 s"));
        Output {
            status,
            stdout: fs::read(&out).unwrap(),
            stderr: fs::read(&err).unwrap(),
        }
    }

    fn rootfs(&self) -> std::path::PathBuf {
        self.bundle.path().join("rootfs")
    }

    /// Nothing of `id` left: no state, no process.
    fn assert_nothing_left(&self, id: &str) {
        let left: Vec<_> = fs::read_dir(self.state.path()).unwrap().collect();
        assert!(left.is_empty(), "state left behind: {left:?}");
        harness::assert_no_process_of(id);
    }
}

/// The maps rootless podman gives: the user's own id as the container's root, and its
/// subordinate range from 1 up.
fn multi_range(c: &mut Value, uid: u32, gid: u32) {
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1},
                                      {"containerID": 1, "hostID": SUB_START, "size": SUB_SIZE}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1},
                                      {"containerID": 1, "hostID": SUB_START, "size": SUB_SIZE}]);
}

/// create, start, exec, kill and delete as the unprivileged user, with maps only newuidmap
/// and newgidmap may write: the container sees both ranges, and what it makes is owned on
/// the host by the user (the container's root) and by the subordinate ids (its uid 1000).
#[test]
fn rootless_lifecycle_with_subordinate_ranges_through_newuidmap() {
    let with_chown = |c: &mut Value, uid: u32, gid: u32| {
        multi_range(c, uid, gid);
        for set in ["bounding", "effective", "permitted"] {
            let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.push(json!("CAP_CHOWN"));
        }
    };
    let b = RootlessBundle::new(&["sleep", "1000"], with_chown);
    let id = harness::unique_id("rootless");
    let out = b.berth(&["create", &id], &[]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = b.berth(&["start", &id], &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; \
                  touch /tmp/by-root && touch /tmp/by-1000 && chown 1000:1001 /tmp/by-1000 && echo made";
    let out = b.berth(&["exec", &id, "sh", "-c", script], &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "exec: {} {text}", stderr(&out));
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let uid_row = vec!["0".to_string(), b.uid.to_string(), "1".to_string()];
    let sub_row = vec!["1".to_string(), SUB_START.to_string(), SUB_SIZE.to_string()];
    assert!(rows.contains(&uid_row) && rows.contains(&sub_row), "{text}");
    assert!(
        text.lines().any(|l| l == "0") && text.contains("made"),
        "{text}"
    );
    let owner = |name: &str| {
        let md = fs::metadata(b.rootfs().join("tmp").join(name)).unwrap();
        (md.uid(), md.gid())
    };
    assert_eq!(owner("by-root"), (b.uid, b.gid));
    assert_eq!(owner("by-1000"), (SUB_START + 999, SUB_START + 1000));
    let out = b.berth(&["kill", &id, "KILL"], &[]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = b.berth(&["state", &id], &[]);
        let state: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if state["status"] == "stopped" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not stopped after kill: {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = b.berth(&["delete", &id], &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    b.assert_nothing_left(&id);
}

/// `run` of the same maps, the container's output on stdout.
#[test]
fn rootless_run_with_subordinate_ranges() {
    let b = RootlessBundle::new(&["sh", "-c", "id -u; stat -c %u /bin/busybox"], multi_range);
    let id = harness::unique_id("rootlessrun");
    let out = b.berth(&["run", &id], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The rootfs is the user's: its files are the container root's.
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["0", "0"]
    );
    b.assert_nothing_left(&id);
}

/// A range the user was not given is refused, in newuidmap's words under the field's name;
/// so is a map that needs newuidmap where it cannot be found; nothing is left either way.
#[test]
fn rootless_maps_the_user_may_not_write_are_refused_by_field() {
    let outside = |c: &mut Value, uid: u32, gid: u32| {
        multi_range(c, uid, gid);
        c["linux"]["uidMappings"][1]["hostID"] = json!(SUB_START + SUB_SIZE + 1000);
    };
    let b = RootlessBundle::new(&["true"], outside);
    let id = harness::unique_id("rootlessbad");
    let out = b.berth(&["run", &id], &[]);
    harness::fails_with_one_line(&out, "config.json: linux.uidMappings: newuidmap ");
    assert!(stderr(&out).contains("not allowed"), "{}", stderr(&out));
    b.assert_nothing_left(&id);

    let b = RootlessBundle::new(&["true"], multi_range);
    let id = harness::unique_id("rootlessnotool");
    let out = b.berth(&["run", &id], &[("PATH", "/nonexistent")]);
    harness::fails_with_one_line(
        &out,
        "config.json: linux.uidMappings: mapping more than your own uid needs newuidmap",
    );
    b.assert_nothing_left(&id);
}

/// Idmapped mounts are refused for a rootless container, as in runc, by the mount's name.
#[test]
fn rootless_idmapped_mounts_are_refused_by_name() {
    let with_idmap = |c: &mut Value, uid: u32, gid: u32| {
        multi_range(c, uid, gid);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}));
    };
    let b = RootlessBundle::new(&["true"], with_idmap);
    let id = harness::unique_id("rootlessidmap");
    let out = b.berth(&["run", &id], &[]);
    harness::fails_with_one_line(
        &out,
        "]: idmapped mounts are not supported for rootless containers",
    );
    b.assert_nothing_left(&id);
}

/// A shell script run as the test user with podman's storage of its own under a temp dir:
/// `$P` in the script is podman with berth as its runtime and `MANAGER` as its cgroup
/// manager; `{image}`, `{volume}` and `{run}` are filled in. `env`: added to the user's.
struct RootlessPodman {
    top: tempfile::TempDir,
    uid: u32,
    gid: u32,
}

impl RootlessPodman {
    fn new() -> RootlessPodman {
        let (uid, gid) = test_user();
        let top = tempfile::Builder::new()
            .prefix("berth-rootless-podman-")
            .tempdir()
            .unwrap();
        for dir in ["home", "run", "vol"] {
            fs::create_dir(top.path().join(dir)).unwrap();
        }
        fs::copy(crate::engines::image_tar(), top.path().join("image.tar")).unwrap();
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(top.path())
            .status()
            .unwrap();
        assert!(st.success());
        fs::set_permissions(
            top.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        RootlessPodman { top, uid, gid }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.top.path().join(name)
    }

    fn run(&self, manager: &str, script: &str, env: &[(&str, String)]) -> Output {
        let (home, run) = (self.path("home"), self.path("run"));
        let script = format!(
            "set -e\nP=\"podman --root {home}/storage --runroot {run}/storage --storage-driver vfs --cgroup-manager {manager} --events-backend file --runtime {berth}\"\n$P load -i {top}/image.tar >/dev/null\n{script}",
            home = home.display(),
            run = run.display(),
            top = self.top.path().display(),
            berth = harness::BERTH,
        )
        .replace("{image}", crate::engines::IMAGE)
        .replace("{volume}", &self.path("vol").display().to_string())
        .replace("{run}", &run.display().to_string());
        let out = Command::new("/usr/bin/setpriv")
            .args([
                "--reuid",
                &self.uid.to_string(),
                "--regid",
                &self.gid.to_string(),
                "--clear-groups",
            ])
            .args(["--", "sh", "-c", &script])
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.top.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // podman's pause process holds the user namespace: ended, and the storage (files of
        // the subordinate ids) removed by root with the temp dir.
        for dir in [
            &run,
            &std::path::PathBuf::from(env_value(env, "XDG_RUNTIME_DIR")),
        ] {
            if let Ok(pid) = fs::read_to_string(dir.join("libpod/tmp/pause.pid")) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
        out
    }
}

fn env_value(env: &[(&str, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Rootless podman with berth as its runtime, run by the test user with storage of its own
/// (vfs, cgroupfs, no network): podman makes the user namespace (through newuidmap) and runs
/// berth in it as that namespace's root, which berth takes as rootless, as runc does. `run`,
/// `run -d` + `exec` + `stop` + `rm`, a volume (written as the user on the host), and
/// `--userns=keep-id`; nothing of berth's left in its state root afterwards.
#[test]
fn rootless_podman_drives_berth() {
    crate::engines::require_binaries!("podman", "conmon");
    let p = RootlessPodman::new();
    let (uid, gid) = (p.uid, p.gid);
    let script = r#"
echo "run: $($P run --rm --net none {image} sh -c 'id -u; cat /proc/self/uid_map' | tr '\n' ' ')"
$P run -d --net none --name c1 {image} sleep 100 >/dev/null
echo "exec: $($P exec c1 sh -c 'echo hello from exec')"
$P stop -t 1 c1 >/dev/null
$P rm c1 >/dev/null
$P run --rm --net none -v {volume}:/data {image} sh -c 'echo x > /data/made-inside'
echo "keep-id: $($P run --rm --net none --userns=keep-id {image} id -u)"
ls {run}/berth 2>/dev/null | sed 's/^/left: /'
"#;
    let out = p.run("cgroupfs", script, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    let uid_row = format!("0 {uid} 1");
    assert!(
        text.contains("run: 0 ")
            && text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&uid_row),
        "{text}"
    );
    assert!(text.contains("exec: hello from exec"), "{text}");
    assert!(text.contains(&format!("keep-id: {uid}")), "{text}");
    let made = fs::metadata(p.path("vol").join("made-inside")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (uid, gid),
        "the container's root is the user"
    );
    assert!(!text.contains("left: "), "berth state left behind: {text}");
}

/// The test user's own systemd instance (the user lingers, so it runs without a login) and
/// its session bus: the environment berth and podman reach it with.
fn user_manager(uid: u32) -> Vec<(&'static str, String)> {
    let st = Command::new("loginctl")
        .args(["enable-linger", USER])
        .status()
        .unwrap();
    assert!(st.success(), "loginctl enable-linger {USER}");
    let runtime_dir = format!("/run/user/{uid}");
    let bus = format!("{runtime_dir}/bus");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !Path::new(&bus).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{bus} did not appear: is dbus-user-session installed?"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    vec![
        ("XDG_RUNTIME_DIR", runtime_dir),
        ("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={bus}")),
    ]
}

/// Rootless with `--systemd-cgroup`, as runc's systemdUser: the user's own systemd makes
/// the container's scope in the subtree it was delegated (below user@UID.service), and berth
/// writes the limits there; delete stops the unit. Checked from the host's cgroup tree.
#[test]
#[ignore = "needs systemd as PID 1 with cgroup v2: runs in the systemd guest (make systemd-test)"]
fn rootless_systemd_cgroup_is_a_scope_of_the_users_systemd() {
    let (uid, _) = test_user();
    let env = user_manager(uid);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = RootlessBundle::new(&["sleep", "1000"], |c, _, _| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    });
    let id = harness::unique_id("rl-systemd");
    let out = b.berth(&["features"], &env);
    let features: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(features["linux"]["cgroup"]["systemdUser"], true);
    let out = b.berth(&["--systemd-cgroup", "run", "-d", &id], &env);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let out = b.berth(&["state", &id], &env);
    let pid = serde_json::from_slice::<Value>(&out.stdout).unwrap()["pid"].to_string();
    let scope = std::path::PathBuf::from(format!(
        "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/user.slice/runc-{id}.scope"
    ));
    let read = |f: &str| fs::read_to_string(scope.join(f)).unwrap_or_default();
    assert!(
        read("cgroup.procs").lines().any(|l| l == pid),
        "init {pid} is not in {scope:?}"
    );
    assert_eq!(read("memory.max").trim(), "67108864");
    assert_eq!(read("pids.max").trim(), "50");
    assert_eq!(
        fs::metadata(&scope).unwrap().uid(),
        uid,
        "the scope is delegated to the user"
    );
    let out = b.berth(&["delete", "--force", &id], &env);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    harness::reap(pid.parse().unwrap());
    assert!(!scope.exists(), "{scope:?} left after delete");
    b.assert_nothing_left(&id);
}

/// Rootless podman with its cgroup manager systemd's (the default on a systemd host): berth,
/// uid 0 of podman's user namespace, asks the session bus who it is (busctl, as runc), takes
/// itself as rootless and has the user's systemd make the scope, through busctl (libdbus
/// cannot log in to the user's bus from a user namespace); the memory limit holds inside.
#[test]
#[ignore = "needs systemd as PID 1 with cgroup v2: runs in the systemd guest (make systemd-test)"]
fn rootless_podman_with_the_systemd_cgroup_manager() {
    crate::engines::require_binaries!("podman", "conmon");
    let p = RootlessPodman::new();
    let env = user_manager(p.uid);
    let script = r#"
echo "memory.max: $($P run --rm --net none --memory 64m {image} cat /sys/fs/cgroup/memory.max)"
$P run -d --net none --name c1 {image} sleep 100 >/dev/null
echo "exec: $($P exec c1 sh -c 'echo hello from exec')"
echo "scope: $(cat /proc/$($P inspect --format '{{.State.Pid}}' c1)/cgroup)"
$P rm -f -t 0 c1 >/dev/null
ls /run/user/$(id -u)/berth 2>/dev/null | sed 's/^/left: /'
"#;
    let out = p.run("systemd", script, &env);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    assert!(text.contains("memory.max: 67108864"), "{text}");
    assert!(text.contains("exec: hello from exec"), "{text}");
    let scope = format!("/user.slice/user-{0}.slice/user@{0}.service/", p.uid);
    assert!(
        text.contains("scope: 0::") && text.contains(&scope) && text.contains("libpod-"),
        "the container is not in a scope of the user's systemd: {text}"
    );
    assert!(!text.contains("left: "), "berth state left behind: {text}");
}

//! The race suite: a process beside the container (a thread of this test, standing in for
//! another container or a process that shares the image's directory) swaps symlinks in for
//! `/dev/null`, `/dev/console`, `/proc` and a mount destination while `create` runs, over
//! and over within a bounded time. Whatever the interleaving, `create` either fails with an
//! error or makes a container in which every mask is the null device or the empty tmpfs,
//! procfs only on /proc, a pty only on /dev/console; no host file changes and no mount lands
//! on the host. Root. RACE_SECONDS sets the time (default 40).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{renameat2, RenameFlags};
use serde_json::json;

use crate::harness::{self, stderr, Bundle, Runtime};

/// Each name the racer swaps, with the symlink swapped in for it (relative to the rootfs).
const SWAPS: [(&str, &str); 5] = [
    // The mask source: a bind "of /dev/null" would be of core_pattern (CVE-2025-31133).
    ("dev/null", "/proc/sys/kernel/core_pattern"),
    // Climbing out of the rootfs, to the host's file beside it.
    ("dev/console", "../../host-canary"),
    ("proc", "/"),
    ("mnt/dest", "../../../tmp"),
    // Where the console could be steered.
    ("dev/pts", "/etc"),
];

fn host_mounts() -> usize {
    harness::my_mounts().len()
}

/// Swaps `name` with its symlink `link` (RENAME_EXCHANGE: atomic), as fast as it can, until
/// told to stop; counts the swaps that happened. A name berth removed or replaced is put
/// back, so the race goes on whatever berth did.
fn racer(rootfs: &Path, (name, link): (&str, &str), stop: &AtomicBool, swaps: &AtomicU64) {
    let path = rootfs.join(name);
    let alt = rootfs.join(format!("{name}.alt"));
    while !stop.load(Ordering::Relaxed) {
        if fs::symlink_metadata(&alt).is_err() {
            let _ = std::os::unix::fs::symlink(link, &alt);
        }
        if fs::symlink_metadata(&path).is_err() {
            // Gone: berth removed the image's entry to make its own. Putting one back at once
            // would win nearly every time on a fast machine (berth's mknod then meets EEXIST
            // and create refuses), and then what berth makes would never be checked.
            std::thread::sleep(Duration::from_micros(200));
        }
        if fs::symlink_metadata(&path).is_err() {
            let _ = match name.starts_with("dev/") && name != "dev/pts" {
                true => fs::write(&path, ""),
                false => fs::create_dir(&path),
            };
        }
        if renameat2(None, &path, None, &alt, RenameFlags::RENAME_EXCHANGE).is_ok() {
            swaps.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What is wrong in the created container `init`, if anything. Only what berth decides
/// counts: the racer itself may detach a mount berth made (renaming a directory that is a
/// mount point in another mount namespace detaches the mount), so a missing mount is no
/// violation, but a mount in the wrong place or of the wrong thing is.
fn violations(init: i32, host_canary: &Path, canary_text: &str) -> Vec<String> {
    let root = PathBuf::from(format!("/proc/{init}/root"));
    let mut bad = Vec::new();
    // The racer never touches the masked file itself, only /dev/null, the mask's source.
    match fs::symlink_metadata(root.join("etc/masked-file")) {
        Ok(m) if m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3) => {}
        Ok(m) => bad.push(format!(
            "the masked file is not the null device (mode {:o}, rdev {:x}, dev {:x})",
            m.mode(),
            m.rdev(),
            m.dev()
        )),
        // Not there (a mount landing on /etc, e.g. devpts through the /dev/pts symlink): a
        // path that is not there is not masked (runtime-spec).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bad.push(format!("the masked file: {e}")),
    }
    // Where each mount landed, in the container's own view.
    for m in harness::mounts_in(init).unwrap_or_default() {
        // A mount moves with its directory when the racer renames that (".alt"): where
        // berth put it is the name without the suffix.
        let (fs_root, point) = (&m.root, m.mount_point.to_string_lossy().replace(".alt", ""));
        let point = point.as_str();
        match m.fs_type.as_str() {
            "proc" if point != "/proc" && !point.starts_with("/proc/") => {
                bad.push(format!("a procfs ({fs_root}) is mounted at {point}"))
            }
            // A single pty bound somewhere: only /dev/console may be one.
            "devpts" if fs_root != "/" && point != "/dev/console" => {
                bad.push(format!("the pty {fs_root} is mounted at {point}"))
            }
            _ => {}
        }
    }
    if fs::read_to_string(host_canary).ok().as_deref() != Some(canary_text) {
        bad.push("the host's file beside the rootfs changed".into());
    }
    bad
}

#[test]
fn symlink_swaps_during_create_never_redirect_a_mount_or_a_write() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    let host_canary = b.path().join("host-canary");
    let canary_text = "the host's own file\n";
    fs::write(&host_canary, canary_text).unwrap();
    let volume = tempfile::tempdir().unwrap();
    fs::write(volume.path().join("marker"), "volume\n").unwrap();
    fs::create_dir_all(rootfs.join("etc/masked-dir")).unwrap();
    fs::write(rootfs.join("etc/masked-dir/secret"), "secret\n").unwrap();
    fs::write(rootfs.join("etc/masked-file"), "secret\n").unwrap();
    fs::create_dir_all(rootfs.join("mnt/dest")).unwrap();
    fs::create_dir_all(rootfs.join("dev/pts")).unwrap();
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        // The image's own /dev (no tmpfs on it), so the racer sees what berth makes there.
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/dev");
        mounts.push(json!({"destination": "/mnt/dest", "type": "bind", "source": volume.path(), "options": ["rbind"]}));
        c["linux"]["maskedPaths"] = json!(["/etc/masked-file", "/etc/masked-dir", "/proc/kcore"]);
        c["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    });

    // The console socket, served as a shim serves it: every master received and dropped.
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut masters = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = [0u8; 256];
                        // Kept until the end: a master closed early hangs the terminal up
                        // under init (a failed create sends none).
                        masters.extend(recv_fd(&conn, &mut buf));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };

    let mounts_before = host_mounts();
    let seconds: u64 = std::env::var("RACE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let (mut created, mut refused, mut bad) = (0u32, 0u32, Vec::new());
    let mut report = Vec::new();
    // One name at a time: a swap elsewhere would make most creates fail early and hide the
    // race on the others.
    for swap in SWAPS {
        let swaps = Arc::new(AtomicU64::new(0));
        let racer_stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (rootfs, stop, swaps) = (rootfs.clone(), racer_stop.clone(), swaps.clone());
            std::thread::spawn(move || racer(&rootfs, swap, &stop, &swaps))
        };
        let phase = Duration::from_secs(seconds / SWAPS.len() as u64);
        let (deadline, last_chance) = (Instant::now() + phase, Instant::now() + 4 * phase);
        let (mut made, mut failed) = (0u32, 0u32);
        let mut reasons = std::collections::BTreeMap::<String, u32>::new();
        // The phase's time, and on a loaded machine longer, up to 4x, until 20 creates have
        // raced the swaps: the test counts what was checked, not how fast.
        while (Instant::now() < deadline || made + failed < 20)
            && Instant::now() < last_chance
            && bad.len() <= 20
        {
            let id = harness::unique_id("race");
            let out = rt.create(&b, &id, &["--console-socket", sock.to_str().unwrap()]);
            if out.status.success() {
                made += 1;
                let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
                for v in violations(init, &host_canary, canary_text) {
                    bad.push(format!("{id} (racing {}): {v}", swap.0));
                }
            } else {
                failed += 1;
                // The kind of error, without the paths: what the race made berth refuse.
                let text = stderr(&out);
                let kind: String = text.split(": ").take(3).collect::<Vec<_>>().join(": ");
                *reasons.entry(kind.trim().to_string()).or_default() += 1;
            }
            rt.delete_force(&id);
            harness::reap_failed_inits();
            if host_mounts() != mounts_before {
                let what = swap.0;
                bad.push(format!(
                    "{id} (racing {what}): the host's mount table changed"
                ));
            }
        }
        racer_stop.store(true, Ordering::Relaxed);
        racer.join().unwrap();
        // The racer may stop with the symlink in place: swap the name back, or every later
        // phase would race a rootfs that is already broken there (and test nothing).
        let (path, alt) = (rootfs.join(swap.0), rootfs.join(format!("{}.alt", swap.0)));
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            renameat2(None, &path, None, &alt, RenameFlags::RENAME_EXCHANGE).unwrap();
        }
        let swaps = swaps.load(Ordering::Relaxed);
        report.push(format!(
            "{}: {} creates ({made} made, {failed} refused), {swaps} swaps; refusals {reasons:?}",
            swap.0,
            made + failed
        ));
        assert!(swaps > 1000, "racing {}: only {swaps} swaps", swap.0);
        // Some creates must get through, or nothing of what they made was checked.
        assert!(
            made >= 5,
            "racing {}: only {made} containers made; {}",
            swap.0,
            report.last().unwrap()
        );
        assert!(
            made + failed >= 20,
            "racing {}: only {} creates",
            swap.0,
            made + failed
        );
        created += made;
        refused += failed;
    }
    stop.store(true, Ordering::Relaxed);
    acceptor.join().unwrap();
    println!("race ({seconds}s):\n{}", report.join("\n"));
    assert!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // Both outcomes must have been seen, or the race never hit (or never missed) berth.
    assert!(
        created > 0 && refused > 0,
        "made {created}, refused {refused}"
    );
    assert_eq!(
        fs::read_to_string(volume.path().join("marker")).unwrap(),
        "volume\n"
    );
}

/// recvmsg with room for one fd: the fd that arrives, if any.
fn recv_fd(conn: &std::os::unix::net::UnixStream, buf: &mut [u8]) -> Option<std::os::fd::OwnedFd> {
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let fd = msg.cmsgs().ok()?.find_map(|c| match c {
        nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    })?;
    // SAFETY: SCM_RIGHTS just installed this fd; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

//! The user process's own settings, shared by init (`create`) and `exec`: limits, scheduler,
//! LSM labels, seccomp, capabilities, user, umask, working directory, environment and the
//! executable, in the order runc applies them, then the final execve.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, execve, faccessat, setresgid, setresuid, AccessFlags, Gid, Uid};
use oci_spec::runtime::{Process, Spec};

use crate::capabilities::CapabilitySets;
use crate::channel::{Channel, Message, OsError};
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the process setup needs: the container's config (seccomp, personality) and the
/// process to run (config.json's for init, the exec'd one for `exec`).
pub struct ProcessContext<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    /// Socket-activation fds passed on after stdio (init only; 0 for exec).
    pub listen_fds: u32,
    /// berth's own binary, which the container process must never be.
    pub own_binary: OwnBinary,
}

/// What setup resolved for the final exec.
pub struct Prepared {
    /// A seccomp filter still to be loaded (before init's start gate, or exec's execve).
    seccomp: Option<crate::seccomp::Filter>,
    exe: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

impl Prepared {
    /// The environment the process will get.
    pub fn env(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect()
    }
}

/// Applies everything of `ctx.process` short of the exec itself. Runs inside the container
/// (root, namespaces and cgroup already in place), as root of the container. With a
/// SCMP_ACT_NOTIFY profile the notify fd goes to the parent over `chan`.
pub fn prepare(ctx: &ProcessContext, chan: &Channel) -> Result<Prepared> {
    let (spec, process) = (ctx.spec, ctx.process);
    crate::rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    // While still privileged: real-time policies need CAP_SYS_NICE.
    if let Some(s) = process.scheduler() {
        let cpuset_limited = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.cpu().as_ref())
            .and_then(|c| c.cpus().as_deref())
            .is_some_and(|cpus| !cpus.is_empty());
        crate::process_attrs::set_scheduler(s, cpuset_limited)?;
    }
    if let Some(p) = process.io_priority() {
        crate::process_attrs::set_io_priority(p)?;
    }
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        crate::process_attrs::set_personality(p)?;
    }
    if let Some(policy) = crate::memory_policy::of(spec)? {
        crate::memory_policy::apply(&policy)?;
    }
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        crate::process_attrs::apparmor_exec_profile(profile)?;
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        crate::process_attrs::selinux_exec_label(label)?;
    }

    // Entered while still privileged, as runc: the process may then stay in a directory
    // its user could not enter (EPERM/EACCES means: try again as the user). Checked before a
    // seccomp profile can deny getcwd.
    let cwd = process.cwd();
    let entered = match chdir(cwd) {
        Ok(()) => true,
        Err(Errno::EPERM | Errno::EACCES) => false,
        Err(e) => return Err(e).with_context(|| format!("process.cwd: chdir {}", cwd.display())),
    };
    if entered {
        check_cwd_inside(cwd, nix::unistd::getcwd())?;
    }
    // The profile is built now so a bad one fails early. Loading it needs CAP_SYS_ADMIN
    // unless no_new_privs is set: then it goes in before the capabilities are dropped (as
    // runc), otherwise as late as possible, right before execve. A profile with
    // SCMP_ACT_NOTIFY is loaded here either way: its fd must reach the agent through the
    // parent, which may be gone by the time of the exec (`start`).
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let seccomp = profile.map(crate::seccomp::build).transpose()?;
    let notify = profile.is_some_and(crate::seccomp::uses_notify);
    if !no_new_privs {
        if let Some(filter) = &seccomp {
            let notify_fd = filter.load()?;
            if notify {
                hand_over_notify_fd(notify_fd, chan)?;
            }
        }
    }
    // Read while still root: the user may not be able to read /etc/passwd.
    let home = home_of(process.user().uid());
    let caps = CapabilitySets::from_spec(process.capabilities().as_ref());
    caps.check_held()?;
    caps.apply_bounding()?;
    switch_user(process)?;
    caps.apply_rest()?;
    umask(Mode::from_bits_truncate(
        process.user().umask().unwrap_or(0o022),
    ));
    if !entered {
        chdir(cwd).with_context(|| format!("process.cwd: chdir {}", cwd.display()))?;
        // (A seccomp profile may deny getcwd by now: only a path outside counts.)
        if let Ok(now) = nix::unistd::getcwd() {
            check_cwd_inside(cwd, Ok(now))?;
        }
    }

    let mut env = last_of_each_name(process.env().as_deref().unwrap_or_default());
    // As runc: a HOME that is unset or empty (the last one counts) becomes the user's home
    // from the container's /etc/passwd.
    let last_home = env.iter().rev().find_map(|e| e.strip_prefix("HOME="));
    if last_home.is_none_or(str::is_empty) {
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={home}"));
    }
    if ctx.listen_fds > 0 {
        // As runc: the activated sockets follow stdio, and the process is told so.
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={}", ctx.listen_fds));
        env.push("LISTEN_PID=1".to_string());
    }
    let args = process.args().clone().unwrap_or_default();
    let Some(arg0) = args.first() else {
        bail!("process.args: must not be empty");
    };
    let exe = lookup_executable(arg0, &env)?;
    refuse_own_binary(&exe, ctx.own_binary, 0)?;
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().context("process.noNewPrivileges: prctl")?;
        if let Some(filter) = seccomp.as_ref().filter(|_| notify) {
            hand_over_notify_fd(filter.load()?, chan)?;
        }
    }
    Ok(Prepared {
        seccomp: seccomp.filter(|_| no_new_privs && !notify),
        exe: sys::cstring(&exe.to_string_lossy())?,
        args: args
            .iter()
            .map(|a| sys::cstring(a))
            .collect::<Result<_>>()?,
        env: env.iter().map(|e| sys::cstring(e)).collect::<Result<_>>()?,
    })
}

impl Prepared {
    /// Loads the seccomp filter left for later (with noNewPrivileges) now: init does so
    /// before the start gate, as runc, so that startContainer hooks run under it.
    pub fn load_seccomp(&mut self) -> Result<()> {
        match self.seccomp.take() {
            Some(filter) => filter.load().map(drop),
            None => Ok(()),
        }
    }
}

/// Loads a seccomp filter left for last and execs; returns only on failure.
pub fn exec(p: Prepared) -> anyhow::Error {
    if let Some(filter) = &p.seccomp {
        if let Err(e) = filter.load() {
            return e;
        }
    }
    match execve(&p.exe, &p.args, &p.env) {
        // runc's words for a failed execve (Go's PathError: the path unquoted).
        Err(e) => OsError {
            errno: e,
            message: format!(
                "process.args[0]: exec {}: {}",
                p.exe.to_string_lossy(),
                errno_words(e)
            ),
        }
        .into(),
        Ok(never) => match never {},
    }
}

/// An errno as runc (Go) words it, which is what the engines match on: docker and podman
/// exit 127 for "no such file or directory" and 126 for "permission denied".
fn errno_words(e: nix::errno::Errno) -> String {
    let desc = e.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => e.to_string(),
    }
}

/// The home directory of `uid` in the container's /etc/passwd (its root is ours by now), or
/// "/" when it lists none, as runc.
fn home_of(uid: u32) -> String {
    use std::io::Read;
    let mut text = String::new();
    // (Bounded: the image controls the file.)
    let _ =
        std::fs::File::open("/etc/passwd").and_then(|f| f.take(1 << 20).read_to_string(&mut text));
    passwd_home(&text, uid).unwrap_or("/").to_string()
}

/// The home field of the first passwd(5) line for `uid`.
fn passwd_home(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[2].parse() == Ok(uid) && !fields[5].is_empty())
            .then(|| fields[5])
    })
}

/// CVE-2024-21626: a working directory reached through a leaked host fd lies outside the
/// container's root, and getcwd says so (ENOENT, or a path not starting with '/').
fn check_cwd_inside(cwd: &Path, now: nix::Result<PathBuf>) -> Result<()> {
    match now {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => bail!(
            "process.cwd: {} resolved outside the container ({})",
            cwd.display(),
            p.display()
        ),
        Err(e) => bail!(
            "process.cwd: {} is not reachable from the container's root: {e}",
            cwd.display()
        ),
    }
}

/// Gives the loaded filter's notify fd to the parent, which passes it on to the agent, and
/// waits until it has: from then on the agent answers the notified syscalls.
fn hand_over_notify_fd(fd: Option<std::os::fd::OwnedFd>, chan: &Channel) -> Result<()> {
    let fd = fd.context("linux.seccomp: the kernel gave no notify fd")?;
    chan.send_fd(&Message::SeccompNotifyFd, std::os::fd::AsFd::as_fd(&fd))?;
    chan.expect(&Message::SeccompNotifyFdSent)
}

/// setgroups, setresgid, setresuid, keeping the permitted capabilities across the switch so
/// the configured sets can be applied afterwards.
fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // Unprivileged user namespaces deny setgroups (their creator wrote "deny"): then there
    // are no supplementary groups to drop, only ones that cannot be added.
    let setgroups_denied =
        crate::sys::read_virtual("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !setgroups_denied {
        nix::unistd::setgroups(&groups).context("process.user.additionalGids: setgroups")?;
    } else if !groups.is_empty() {
        bail!("process.user.additionalGids: setgroups is denied in this user namespace (rootless), so supplementary groups cannot be set");
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).with_context(|| format!("process.user.gid: setresgid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).with_context(|| format!("process.user.uid: setresuid {uid}"))?;
    nix::sys::prctl::set_keepcaps(false).context("prctl(PR_CLEAR_KEEPCAPS)")?;
    Ok(())
}

/// Finds `name` as execvp would, using PATH from the container's environment.
/// `env` with each variable once, at the place of its last setting, which wins, as runc
/// (and Go's os/exec) dedupes it: `ONE=two ONE=` gives the process `ONE=` only.
fn last_of_each_name(env: &[String]) -> Vec<String> {
    let name = |e: &str| e.split_once('=').map_or(e, |(n, _)| n).to_string();
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = env
        .iter()
        .rev()
        .filter(|e| seen.insert(name(e)))
        .cloned()
        .collect();
    out.reverse();
    out
}

pub fn lookup_executable(name: &str, env: &[String]) -> Result<PathBuf> {
    // With the effective ids and capabilities, as execve checks (access(2) takes the real
    // ones and drops the capabilities of a non-root user, so a file only its owner may run
    // would be refused to a user with CAP_DAC_OVERRIDE that execve lets run it).
    // A seccomp profile loaded by now may deny faccessat2 (EPERM, or ENOSYS): then the mode
    // bits decide, as Go's LookPath does for runc, and execve says the rest.
    let is_executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(p) else {
            return false;
        };
        meta.is_file()
            && match faccessat(None, p, AccessFlags::X_OK, AtFlags::AT_EACCESS) {
                Ok(()) => true,
                Err(Errno::EPERM | Errno::ENOSYS) => meta.permissions().mode() & 0o111 != 0,
                Err(_) => false,
            }
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        if is_executable(&p) {
            return Ok(p);
        }
        // Engines read the reason from these words: docker and podman exit 127 for "no such
        // file or directory" and 126 for "permission denied", as with runc.
        let (errno, why) = match std::fs::metadata(&p) {
            Err(_) => (Errno::ENOENT, "no such file or directory in the container"),
            Ok(_) => (Errno::EACCES, "permission denied: not an executable file"),
        };
        let message = format!("process.args[0]: exec {name:?}: {why}");
        return Err(OsError { errno, message }.into());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            OsError {
                errno: Errno::ENOENT,
                message: format!(
                    "process.args[0]: exec {name:?}: executable file not found in $PATH ({path})"
                ),
            }
            .into()
        })
}

/// CVE-2019-5736: until it execs, this process *is* berth's binary, so `/proc/self/exe` (or
/// a `#!` line naming it) would make the container process the host's berth binary, which a
/// container could then overwrite once it exits. berth never re-executes itself into a
/// container, so this is the one way in: refuse it, following `#!` interpreters as the
/// kernel does (up to 4 levels).
fn refuse_own_binary(exe: &Path, own: OwnBinary, depth: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let target = match std::fs::metadata(exe) {
        Ok(m) => m,
        // A `#!` interpreter that is not there: execve fails on it, and says so for
        // args[0] (ENOENT, as runc reports `exec /run.sh: no such file or directory`).
        Err(_) if depth > 0 => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {}", exe.display())),
    };
    // A sealed copy (a created container's init runs one) is the same file seen through an
    // overlay of its own: another device, the same inode number, size and mtime.
    let sealed_copy = (target.ino(), target.size(), target.mtime())
        == (own.ino, own.size, own.mtime)
        && std::fs::File::open(exe)
            .ok()
            .and_then(|f| crate::sys::fs_type(&f).ok())
            == Some(OVERLAYFS_SUPER_MAGIC);
    // A memfd copy is berth's running binary, a file of its own.
    let running = (own.running_dev, own.running_ino) == (target.dev(), target.ino());
    if (own.dev, own.ino) == (target.dev(), target.ino()) || sealed_copy || running {
        bail!(
            "process.args[0]: {} is the berth binary itself; running it in a container would expose the host's berth binary",
            exe.display()
        );
    }
    if depth >= 4 {
        return Ok(());
    }
    let mut head = [0u8; 256];
    let n = std::fs::File::open(exe)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return Ok(());
    };
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next().unwrap_or_default())
        .into_owned();
    match line.split_whitespace().next() {
        Some(interpreter) => refuse_own_binary(Path::new(interpreter), own, depth + 1),
        None => Ok(()),
    }
}

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// What identifies berth's binary: the host file's device and inode (also when berth runs
/// from a sealed copy), and its inode number, size and mtime, which an overlay shows too;
/// and the device and inode of the file running (the sealed copy: overlay or memfd).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnBinary {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub running_dev: u64,
    pub running_ino: u64,
}

pub fn own_binary() -> Result<OwnBinary> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/exe").context("stat berth's own binary")?;
    let (dev, ino) = crate::sealed_exe::original_binary().unwrap_or((m.dev(), m.ino()));
    Ok(OwnBinary {
        dev,
        ino,
        size: m.size(),
        mtime: m.mtime(),
        running_dev: m.dev(),
        running_ino: m.ino(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_variable_once_with_its_last_value_where_that_was_set() {
        let env: Vec<String> = ["ONE=two", "PATH=/bin", "ONE=", "TWO=2", "PATH=/usr/bin"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            super::last_of_each_name(&env),
            ["ONE=", "TWO=2", "PATH=/usr/bin"]
        );
    }

    #[test]
    fn home_comes_from_the_users_passwd_line() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nbad line\nu:x:1000:1000::/home/u:/bin/sh\nnohome:x:7:7:::/bin/sh\n";
        assert_eq!(super::passwd_home(passwd, 0), Some("/root"));
        assert_eq!(super::passwd_home(passwd, 1000), Some("/home/u"));
        assert_eq!(super::passwd_home(passwd, 7), None);
        assert_eq!(super::passwd_home(passwd, 42), None);
    }

    use super::*;

    #[test]
    fn finds_executables_on_path_and_by_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        // The words engines read (126/127) and the errno as data, for each refusal.
        let refused = |name: &str| {
            let e = lookup_executable(name, &env).unwrap_err();
            (format!("{e:#}"), crate::channel::errno_of(&e))
        };
        let sh = lookup_executable("sh", &env).unwrap();
        assert!(sh.ends_with("sh") && sh.is_absolute());
        assert_eq!(
            lookup_executable("/bin/sh", &env).unwrap(),
            PathBuf::from("/bin/sh")
        );
        let (e, errno) = refused("no-such-program-x");
        assert!(e.contains("executable file not found in $PATH"), "{e}");
        assert_eq!(errno, Some(libc::ENOENT));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let (e, errno) = refused(plain.to_str().unwrap());
        assert!(e.contains("permission denied: not an executable"), "{e}");
        assert_eq!(errno, Some(libc::EACCES));
        let (e, errno) = refused(dir.path().to_str().unwrap());
        assert!(e.contains("permission denied"), "{e}");
        assert_eq!(errno, Some(libc::EACCES));
        let missing = dir.path().join("missing");
        let (e, errno) = refused(missing.to_str().unwrap());
        assert!(e.contains("no such file or directory"), "{e}");
        assert_eq!(errno, Some(libc::ENOENT));
    }

    #[test]
    fn a_working_directory_outside_the_root_is_refused() {
        let cwd = Path::new("/work");
        check_cwd_inside(cwd, Ok(PathBuf::from("/work"))).unwrap();
        let e = check_cwd_inside(cwd, Err(nix::errno::Errno::ENOENT)).unwrap_err();
        assert!(e.to_string().contains("not reachable"), "{e}");
        let e = check_cwd_inside(cwd, Ok(PathBuf::from("(unreachable)/host"))).unwrap_err();
        assert!(e.to_string().contains("outside the container"), "{e}");
    }
}

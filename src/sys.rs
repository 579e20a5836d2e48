//! Thin wrappers around the OS calls that nix does not cover (or covers awkwardly), each
//! returning an error that says what was attempted.

use std::ffi::{CStr, CString};
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;

/// Opens a pidfd for `pid`, so the process can be waited on or signalled without pid reuse.
pub fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Blocks until the process behind `pidfd` has exited (it may still be a zombie).
pub fn pidfd_wait_exit(pidfd: &OwnedFd) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(pidfd_borrow(pidfd), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(anyhow!("wait for process exit: {e}")),
        }
    }
}

fn pidfd_borrow(fd: &OwnedFd) -> std::os::fd::BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// Sends `payload` with `fd` attached (SCM_RIGHTS) on a connected unix socket, as the
/// console and pidfd sockets of runc's protocol carry them; retried on EINTR.
pub fn send_fd(socket: BorrowedFd, payload: &[u8], fd: BorrowedFd) -> nix::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &[std::io::IoSlice::new(payload)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            sent => return sent.map(drop),
        }
    }
}

/// Sends `signal` through a pidfd.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> nix::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo behaves like kill(2) on the pidfd's process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// mount_setattr(2) on the mount at `fd` and, with `recursive`, every mount below it.
pub fn mount_setattr(fd: &impl AsRawFd, set: u64, clear: u64, recursive: bool) -> nix::Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr_with(fd, &attr, recursive)
}

/// mount_setattr(2) with MOUNT_ATTR_IDMAP on the detached mount at `fd` (the top mount only,
/// or with `recursive` its whole tree): its files' owners are seen through the id mappings
/// of the user namespace open at `userns`.
pub fn mount_setattr_idmap(
    fd: &impl AsRawFd,
    userns: BorrowedFd,
    recursive: bool,
) -> nix::Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr_with(fd, &attr, recursive)
}

fn mount_setattr_with(
    fd: &impl AsRawFd,
    attr: &libc::mount_attr,
    recursive: bool,
) -> nix::Result<()> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: the path is an empty C string, `attr` is a valid mount_attr whose size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// Whether the kernel has mount_setattr(2) (Linux 5.12), which idmapped mounts need: asked
/// with a bad fd, it answers EBADF where it exists and ENOSYS where it does not.
pub fn has_mount_setattr() -> bool {
    // SAFETY: a null mount_attr of size 0 with fd -1: the kernel checks the fd and fails.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            std::ptr::null::<libc::mount_attr>(),
            0,
        )
    };
    !(r < 0 && Errno::last() == Errno::ENOSYS)
}

/// open_tree(2) with OPEN_TREE_CLONE on the file or directory open at `fd` (any fd, O_PATH
/// included): a detached bind mount of exactly that file, not of whatever a path names now.
/// With `recursive`, the mounts below it come along (AT_RECURSIVE).
pub fn clone_mount(fd: &impl AsRawFd, recursive: bool) -> nix::Result<OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE
        | libc::OPEN_TREE_CLOEXEC
        | libc::AT_EMPTY_PATH as libc::c_uint
        | if recursive {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    // SAFETY: open_tree takes an fd, an empty C string and flags; it returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    Errno::result(r).map(|fd| {
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    })
}

/// move_mount(2) of the detached mount `mount` onto the file or directory open at `target`:
/// the mount lands on that inode, whatever its path has become since it was opened.
pub fn move_mount_onto(mount: &impl AsRawFd, target: &impl AsRawFd) -> nix::Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: move_mount takes two fds with empty C strings and flags; no memory is kept.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    Errno::result(r).map(drop)
}

/// One fsconfig(2) parameter of a filesystem being made.
pub enum FsParam<'a> {
    /// `key=value`.
    Str(&'a str, &'a str),
    /// A bare `key`, as in a mount(2) data string.
    Flag(&'a str),
    /// `key` set to the object open at an fd (e.g. proc's `pidns`).
    Fd(&'a str, BorrowedFd<'a>),
}

impl FsParam<'_> {
    /// The parameters of a mount(2) data string (`hidepid=2,gid=5`).
    pub fn from_data(data: &str) -> Vec<FsParam<'_>> {
        data.split(',')
            .filter(|o| !o.is_empty())
            .map(|o| match o.split_once('=') {
                Some((k, v)) => FsParam::Str(k, v),
                None => FsParam::Flag(o),
            })
            .collect()
    }
}

impl std::fmt::Display for FsParam<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            FsParam::Str(k, v) => write!(f, "{k}={v}"),
            FsParam::Flag(k) => write!(f, "{k}"),
            FsParam::Fd(k, fd) => write!(f, "{k}=fd {}", fd.as_raw_fd()),
        }
    }
}

/// fsopen(2) of filesystem `fstype` with `params` set: a context to create it from.
pub fn fs_context(fstype: &str, params: &[FsParam]) -> Result<OwnedFd> {
    let name = cstring(fstype)?;
    // SAFETY: fsopen takes a C string and flags and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
    let fs = Errno::result(r).with_context(|| format!("fsopen({fstype})"))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    for param in params {
        let (cmd, key, value, aux): (u32, &str, Option<CString>, RawFd) = match param {
            FsParam::Str(k, v) => (libc::FSCONFIG_SET_STRING, k, Some(cstring(v)?), 0),
            FsParam::Flag(k) => (libc::FSCONFIG_SET_FLAG, k, None, 0),
            FsParam::Fd(k, fd) => (libc::FSCONFIG_SET_FD, k, None, fd.as_raw_fd()),
        };
        let key = cstring(key)?;
        let value = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: fsconfig reads the key and (for SET_STRING) the value, C strings that
        // outlive the call; SET_FD takes the fd in `aux`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                key.as_ptr(),
                value,
                aux,
            )
        };
        Errno::result(r).with_context(|| format!("{fstype}: option {param}"))?;
    }
    Ok(fs)
}

/// Whether a procfs can be made here for the PID namespace open at `pid_ns` (proc's
/// `pidns` option: Linux 6.18, and CAP_SYS_ADMIN over that namespace).
pub fn proc_takes_pidns(pid_ns: BorrowedFd) -> bool {
    fs_context("proc", &[FsParam::Fd("pidns", pid_ns)])
        .map_err(|e| log::debug!("{e:#}"))
        .is_ok()
}

/// A new, detached instance of filesystem `fstype` (fsopen, fsconfig, fsmount), with
/// `params` and the MOUNT_ATTR_* bits in `attrs`: nothing in any mount namespace can cover
/// or redirect it.
pub fn new_detached_mount(fstype: &str, params: &[FsParam], attrs: u64) -> Result<OwnedFd> {
    let fs = fs_context(fstype, params)?;
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(r).with_context(|| format!("create a {fstype} filesystem"))?;
    // SAFETY: fsmount takes the configured fd, flags and mount attributes; it returns a new fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    };
    let m = Errno::result(r).with_context(|| format!("fsmount({fstype})"))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// The filesystem type (statfs f_type) of the file open at `fd`.
pub fn fs_type(fd: &impl AsRawFd) -> nix::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs fills the struct the pointer points at, which is valid for writes.
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    Errno::result(r)?;
    // SAFETY: fstatfs succeeded, so it initialised the struct.
    let f_type = unsafe { st.assume_init() }.f_type;
    // (f_type is an i64 here, a u32 on some other architectures.)
    #[allow(clippy::unnecessary_cast)]
    Ok(f_type as i64)
}

/// struct clone_args, version 2 (88 bytes): the fields up to and including `cgroup`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2) with the child born in the cgroup v2 directory open at `cgroup`: clone3 with
/// CLONE_INTO_CGROUP (Linux 5.7), which spares writing cgroup.procs and the wait that write
/// costs. An error (ENOSYS, E2BIG or EINVAL on older kernels) means no child exists.
pub fn fork_into_cgroup(cgroup: &impl AsRawFd) -> nix::Result<nix::unistd::ForkResult> {
    clone3_fork(CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    })
}

/// fork(2) whose child is born a child of this process's parent (clone3 with CLONE_PARENT),
/// so that the caller's parent can wait for it while the caller exits.
pub fn fork_sibling() -> nix::Result<nix::unistd::ForkResult> {
    clone3_fork(CloneArgs {
        // (With CLONE_PARENT the child's exit signal is the caller's own: clone3 takes none.)
        flags: libc::CLONE_PARENT as u64,
        ..CloneArgs::default()
    })
}

/// fork(2) whose child is born in a new user namespace (clone3 with CLONE_NEWUSER), unmapped
/// until the caller writes its maps.
pub fn fork_into_new_userns() -> nix::Result<nix::unistd::ForkResult> {
    clone3_fork(CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    })
}

/// clone3 as a fork: `args` without a stack.
fn clone3_fork(args: CloneArgs) -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: with no stack given, clone3 duplicates the caller like fork(2) (the child runs
    // on a copy of this stack). The caller is single-threaded, so no lock is held by another
    // thread in the child; glibc's own atfork work is only needed for multi-threaded callers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(r)? {
        0 => Ok(nix::unistd::ForkResult::Child),
        pid => Ok(nix::unistd::ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}

/// Runs `child` in a new process that borrows this one's memory, as vfork(2) does, on a stack
/// of its own, and returns its pid once it has exited (or exec'd): until then this process is
/// suspended. With `cgroup` the process is born in that cgroup v2 directory
/// (clone3 with CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP). Nothing is copied, so there are
/// no page tables to copy, no copy-on-write faults on either side and no address space to
/// tear down at exit: the cost of fork that a short-lived helper process does not need.
///
/// `child` must not free or change anything the caller uses afterwards, must not wait for
/// the caller, and ends the process with its return value as the exit code (by _exit: no
/// atexit handlers or buffer flushes run on the shared memory). ENOSYS where this is not
/// built (other architectures) or the kernel lacks clone3: the caller then forks.
pub fn vfork_into_cgroup(
    cgroup: Option<RawFd>,
    child: &mut dyn FnMut() -> i32,
) -> nix::Result<Pid> {
    #[cfg(target_arch = "x86_64")]
    {
        vfork_x86_64(cgroup, child)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cgroup, child);
        Err(Errno::ENOSYS)
    }
}

#[cfg(target_arch = "x86_64")]
fn vfork_x86_64(cgroup: Option<RawFd>, child: &mut dyn FnMut() -> i32) -> nix::Result<Pid> {
    // Enough for the setup code; MAP_NORESERVE and lazy faulting make unused pages free.
    const STACK_SIZE: usize = 256 * 1024;
    const GUARD: usize = 4096;
    // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: the lowest page of the mapping made above: an overflow faults instead of
    // writing below the stack.
    let guarded = unsafe { libc::mprotect(stack, GUARD, libc::PROT_NONE) };
    let result = if guarded != 0 {
        Err(Errno::last())
    } else {
        let mut child_ref: &mut dyn FnMut() -> i32 = child;
        let args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64
                | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
            exit_signal: libc::SIGCHLD as u64,
            stack: stack as u64,
            stack_size: STACK_SIZE as u64,
            cgroup: cgroup.map_or(0, |fd| fd as u64),
            ..CloneArgs::default()
        };
        let ret: i64;
        // SAFETY: clone3 starts the child on the new stack (its top, 16-byte aligned, is the
        // stack pointer) with this thread's registers, so it runs the instructions after the
        // syscall: it jumps to `vfork_entry(&child_ref)`, which never returns. CLONE_VFORK
        // suspends this thread until the child has exited or exec'd, so `child_ref`, `args`
        // and the stack outlive the child's use of them, and nothing else runs on the shared
        // memory meanwhile (berth is single-threaded). The parent returns from the syscall
        // with only rax, rcx and r11 changed; the asm may have changed any memory (the
        // child wrote to it), which the default memory clobber tells the compiler.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                // The child's first frame returns to address 0 with no frame pointer:
                // the end of the stack to an unwinder. A `call` would leave a return
                // address into this function, whose unwind info then reads the
                // caller's frame from above the new stack: a backtrace taken in the
                // child (an error's, with RUST_BACKTRACE set) faulted there.
                "mov rdi, r12",
                "xor ebp, ebp",
                "push 0",
                "jmp r13",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") &args as *const CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") &mut child_ref as *mut &mut dyn FnMut() -> i32,
                in("r13") vfork_entry as extern "C" fn(*mut &mut dyn FnMut() -> i32) -> !,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        // (The raw syscall returns -errno itself; errno is not set.)
        match ret {
            0.. => Ok(Pid::from_raw(ret as i32)),
            _ => Err(Errno::from_raw(-ret as i32)),
        }
    };
    // SAFETY: the mapping made above; the child no longer runs on it (it has exited or
    // exec'd, CLONE_VFORK), or was never started.
    unsafe { libc::munmap(stack, STACK_SIZE) };
    result
}

/// The first frame on a `vfork_into_cgroup` child's stack.
#[cfg(target_arch = "x86_64")]
extern "C" fn vfork_entry(child: *mut &mut dyn FnMut() -> i32) -> ! {
    // SAFETY: `child` points at the closure reference on the suspended parent's stack, alive
    // until this process ends (see vfork_x86_64).
    let code = unsafe { (*child)() };
    // SAFETY: _exit ends this process at once; no atexit handler or flush runs on the memory
    // it shares with the parent.
    unsafe { libc::_exit(code) }
}

/// Reads a small file whole, into one buffer, without a stat first: the kernel's (/proc,
/// cgroupfs) report size 0, so `fs::read_to_string` would stat each and then read it in
/// 32-byte steps growing from there (several syscalls per file, on every create); state.json
/// too, which `list` reads for every container.
pub fn read_virtual(path: impl AsRef<Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// What /proc/PID/stat says about a process that berth needs: its state letter and the start
/// time (clock ticks since boot), which together with the pid identifies it across pid reuse;
/// and its number of threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
    pub threads: u32,
}

/// Reads /proc/PID/stat; `None` when the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = read_virtual(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text)
}

/// /proc/PID/stat's text as berth needs it (procfs-core's parser, which copes with a command
/// name holding spaces and parentheses).
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    use procfs_core::FromRead;
    let stat = procfs_core::process::Stat::from_read(text.as_bytes()).ok()?;
    Some(ProcStat {
        state: stat.state,
        start_time: stat.starttime,
        threads: u32::try_from(stat.num_threads).ok()?,
    })
}

/// How many threads this process runs (num_threads of /proc/self/stat); `None` when /proc
/// cannot be read. berth is single-threaded, and its forks rely on it: a forked child gets
/// only the calling thread (a lock another thread held would stay taken there), and a
/// `vfork_into_cgroup` child runs on memory another thread could change under it. Its
/// callers check that with `debug_assert_eq!(sys::thread_count(), Some(1))`, which release
/// builds leave out.
pub fn thread_count() -> Option<u32> {
    let text = read_virtual("/proc/self/stat").ok()?;
    parse_proc_stat(&text).map(|st| st.threads)
}

/// kill(2) by number, for what nix's `Signal` cannot name: real-time signals and 0 (which
/// only checks that `pid` exists).
pub fn kill(pid: i32, signal: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    Errno::result(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// The first fd past those the container process inherits: stdio, `listen_fds`
/// socket-activation fds, then `preserve_fds` (checked: a sum that wraps would mark stdio
/// itself close-on-exec).
pub fn first_fd_past(listen_fds: u32, preserve_fds: u32) -> Result<u32> {
    3u32.checked_add(listen_fds)
        .and_then(|n| n.checked_add(preserve_fds))
        .with_context(|| {
            format!("--preserve-fds {preserve_fds} with {listen_fds} LISTEN_FDS: more fds than there can be")
        })
}

/// Refuses `--preserve-fds N` (and LISTEN_FDS) asking for more fds than this process may have
/// open: the fds passed on are 0..3+listen+preserve, so their count must not exceed the soft
/// RLIMIT_NOFILE (an fd number is always below it).
pub fn check_inherited_fds(preserve_fds: u32, listen_fds: u32) -> Result<()> {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .context("getrlimit(RLIMIT_NOFILE)")?;
    check_fd_count(preserve_fds, listen_fds, soft)
}

fn check_fd_count(preserve_fds: u32, listen_fds: u32, soft_limit: u64) -> Result<()> {
    let with_stdio = 3 + u64::from(listen_fds);
    if with_stdio > soft_limit {
        anyhow::bail!("LISTEN_FDS={listen_fds}: more than this process may have open (RLIMIT_NOFILE {soft_limit})");
    }
    if with_stdio + u64::from(preserve_fds) > soft_limit {
        let listen = match listen_fds {
            0 => String::new(),
            n => format!(" and {n} LISTEN_FDS"),
        };
        anyhow::bail!(
            "--preserve-fds {preserve_fds}: more than this process may have open (RLIMIT_NOFILE {soft_limit}: with stdio{listen}, at most {})",
            soft_limit - with_stdio
        );
    }
    // (Only with an unlimited soft limit, which Linux does not grant for RLIMIT_NOFILE.)
    first_fd_past(listen_fds, preserve_fds).map(drop)
}

/// Closes every fd from `first` on, but `keep`. (Left as it is: berth may re-exec itself
/// sealed before reading it; exec's joiner marks every fd past stdio close-on-exec.)
pub fn close_from(first: u32, keep: Option<u32>) -> Result<()> {
    let close = |from: u32, to: u32| {
        // SAFETY: close_range closes only this process's own descriptors; the caller owns
        // none of them (they are what berth's caller left open).
        let r = unsafe { libc::close_range(from, to, 0) };
        Errno::result(r).map(drop).context("close_range")
    };
    match keep.filter(|&k| k >= first) {
        None => close(first, u32::MAX),
        Some(k) => {
            if k > first {
                close(first, k - 1)?;
            }
            match k {
                u32::MAX => Ok(()),
                _ => close(k + 1, u32::MAX),
            }
        }
    }
}

/// The fd a path such as `/dev/fd/63` or `/proc/self/fd/63` names (what a shell's process
/// substitution `<(...)` passes), if it is one.
pub fn fd_named_by(path: &Path) -> Option<u32> {
    let s = path.to_str()?;
    let n = s
        .strip_prefix("/dev/fd/")
        .or_else(|| s.strip_prefix("/proc/self/fd/"))?;
    n.parse().ok()
}

/// Marks every fd from `first` on close-on-exec, so none of berth's fds reach the container.
pub fn cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range only changes flags on this process's own descriptors.
    let r = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    Errno::result(r).map(drop).context("close_range(CLOEXEC)")
}

/// Puts the file at `tmp` in place of `path`, atomically: a reader sees the old file or the
/// new one, never neither. When `path` exists the two are exchanged and the old file (now
/// at `tmp`) is unlinked, rather than renamed over: ext4 writes a file renamed over another
/// out at once (auto_da_alloc), which on a disk with online discard costs a block now and
/// a synchronous discard when the container's state is deleted, about a millisecond each.
pub fn replace_file(tmp: &Path, path: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, tmp, None, path, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => fs::remove_file(tmp),
        // ENOENT: no file at `path` yet; EINVAL: a filesystem without exchange.
        Err(Errno::ENOENT | Errno::EINVAL) => fs::rename(tmp, path),
        Err(e) => Err(e.into()),
    }
}

/// Writes `data` to an existing file (procfs and cgroupfs files), naming it in the error.
pub fn write_file(path: &Path, data: &str) -> Result<()> {
    fs::write(path, data).with_context(|| format!("write {:?} to {}", data, path.display()))
}

/// The /proc/self/fd path of an fd, for calls that only take paths (mount, reopen).
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub fn cstring(s: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{s:?} contains a NUL byte"))
}

/// execveat(2) of `path` relative to `dir` (with AT_EMPTY_PATH in `flags` and an empty
/// path: `dir` itself). Returns only on failure.
pub fn execveat(
    dir: &impl AsRawFd,
    path: &CStr,
    argv: &[CString],
    env: &[CString],
    flags: i32,
) -> Errno {
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let env: Vec<*const libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: NUL-terminated strings in NULL-terminated arrays, all alive for the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            dir.as_raw_fd(),
            path.as_ptr(),
            argv.as_ptr(),
            env.as_ptr(),
            flags,
        )
    };
    Errno::last()
}

/// statfs(2) of `path` (following symlinks, also /proc magic links): the filesystem's magic
/// number and its ST_* mount flags.
pub fn statfs_type_and_flags(path: &CStr) -> nix::Result<(i64, u64)> {
    // SAFETY: zeroed is a valid statfs64, which the kernel fills.
    let mut st: libc::statfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs64 to fill.
    Errno::result(unsafe { libc::statfs64(path.as_ptr(), &mut st) })?;
    Ok((st.f_type as i64, st.f_flags as u64))
}

/// memfd_create(2) with `flags` (MFD_*).
pub fn memfd_create(name: &CStr, flags: u32) -> nix::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and flags; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    Errno::result(fd)?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// fcntl(F_ADD_SEALS) on a memfd.
pub fn add_seals(fd: &impl AsRawFd, seals: i32) -> nix::Result<()> {
    // SAFETY: fcntl on an fd we own with an int argument.
    Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// fcntl(F_GET_SEALS): the seals of a memfd (EINVAL for a file that cannot have any).
pub fn get_seals(fd: &impl AsRawFd) -> nix::Result<i32> {
    // SAFETY: fcntl on an fd we own, no argument.
    Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): installs a classic BPF filter on the calling
/// thread. With SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returns the notify fd.
pub fn seccomp_set_mode_filter(
    flags: libc::c_ulong,
    program: &[libc::sock_filter],
) -> nix::Result<Option<OwnedFd>> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    let r = Errno::result(r)?;
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the return value is a new fd that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
    }
    Ok(None)
}

/// The C library's description of a signal, lowercased as Go (and so runc) says it:
/// "bad system call" for SIGSYS.
pub fn signal_description(signal: i32) -> String {
    // SAFETY: strsignal returns a pointer to a NUL-terminated string (an unknown number gets
    // "Unknown signal N"); it is copied at once, before any other call could reuse the buffer.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) };
    text.to_string_lossy().to_lowercase()
}

/// A mountinfo path with its octal escapes (`\040`) decoded.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .and_then(|n| u8::try_from(n).ok());
        match (b[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_refused_clone3_is_an_error_not_a_pid() {
        // Docker's default seccomp profile (and a kernel before 5.3) answers clone3 ENOSYS:
        // vfork_into_cgroup must say so, for its caller to fork instead. Tried in a forked
        // child, whose filter goes with it.
        // SAFETY: the test process forks a child that only installs a filter, tries the
        // call and exits; its exit code carries the result.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
                let mut filter = ScmpFilterContext::new(ScmpAction::Allow).unwrap();
                let clone3 = ScmpSyscall::from_name("clone3").unwrap();
                filter
                    .add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
                    .unwrap();
                filter.load().unwrap();
                let code = match vfork_into_cgroup(None, &mut || 0) {
                    Err(Errno::ENOSYS) => 0,
                    Err(_) => 2,
                    Ok(_) => 3,
                };
                // SAFETY: ends the forked child at once.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "2: another error than ENOSYS, 3: a pid"
                );
            }
        }
    }

    #[test]
    fn process_substitution_paths_name_their_fd() {
        assert_eq!(fd_named_by(Path::new("/dev/fd/63")), Some(63));
        assert_eq!(fd_named_by(Path::new("/proc/self/fd/7")), Some(7));
        assert_eq!(fd_named_by(Path::new("/tmp/process.json")), None);
        assert_eq!(fd_named_by(Path::new("/dev/fd/x")), None);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_vfork_child_writes_the_callers_memory_and_exits_with_its_return_value() {
        let mut seen_by_child = 0u32;
        let parent_pid = std::process::id();
        let mut child = || {
            // The same memory: the caller sees this write, which a forked copy would keep.
            seen_by_child = 7;
            // Its own process all the same, and its return value is its exit code.
            if std::process::id() == parent_pid {
                return 1;
            }
            42
        };
        let pid = vfork_into_cgroup(None, &mut child).unwrap();
        assert_eq!(seen_by_child, 7);
        assert_eq!(
            nix::sys::wait::waitpid(pid, None).unwrap(),
            nix::sys::wait::WaitStatus::Exited(pid, 42)
        );
    }

    #[test]
    fn replace_file_puts_the_new_file_in_place_with_or_without_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join(".f.tmp"), dir.path().join("f"));
        for text in ["first", "second"] {
            fs::write(&tmp, text).unwrap();
            replace_file(&tmp, &path).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
            assert!(!tmp.exists(), "the old file (or the temp name) is left");
        }
        // A missing temp file is an error, and the file in place stays.
        assert!(replace_file(&tmp, &path).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
    }

    #[test]
    fn fd_counts_past_the_limit_are_refused_by_flag_and_never_wrap() {
        check_fd_count(0, 0, 3).unwrap();
        check_fd_count(1021, 0, 1024).unwrap();
        check_fd_count(1019, 2, 1024).unwrap();
        let e = check_fd_count(1022, 0, 1024).unwrap_err().to_string();
        assert_eq!(e, "--preserve-fds 1022: more than this process may have open (RLIMIT_NOFILE 1024: with stdio, at most 1021)");
        let e = check_fd_count(u32::MAX, 0, 1024).unwrap_err().to_string();
        assert!(e.starts_with("--preserve-fds 4294967295: more than this process may have open (RLIMIT_NOFILE 1024"), "{e}");
        let e = check_fd_count(1020, 2, 1024).unwrap_err().to_string();
        assert!(
            e.ends_with("with stdio and 2 LISTEN_FDS, at most 1019)"),
            "{e}"
        );
        let e = check_fd_count(0, u32::MAX, 1024).unwrap_err().to_string();
        assert!(e.starts_with("LISTEN_FDS=4294967295: more than"), "{e}");
        // Not even an unlimited soft limit (RLIM_INFINITY) lets the sum wrap.
        check_fd_count(u32::MAX - 3, 0, u64::MAX).unwrap();
        assert!(check_fd_count(u32::MAX, u32::MAX, u64::MAX).is_err());

        assert_eq!(first_fd_past(0, 0).unwrap(), 3);
        assert_eq!(first_fd_past(2, 5).unwrap(), 10);
        assert!(first_fd_past(0, u32::MAX - 3).is_ok());
        let e = first_fd_past(0, u32::MAX).unwrap_err().to_string();
        assert!(e.starts_with("--preserve-fds 4294967295"), "{e}");
        assert!(first_fd_past(u32::MAX, 0).is_err());
    }

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        // This process's own line, with a command name that has spaces and parentheses.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let rest = &own[own.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let line = format!("1234 (a b) c)) {rest}");
        assert_eq!(
            parse_proc_stat(&line),
            Some(ProcStat {
                state: fields[0].chars().next().unwrap(),
                start_time: fields[19].parse().unwrap(),
                threads: fields[17].parse().unwrap(),
            })
        );
        assert_eq!(parse_proc_stat("1234 (x) S 1"), None);
    }

    #[test]
    fn own_stat_is_readable_and_stable() {
        let me = std::process::id() as i32;
        let a = proc_stat(me).unwrap();
        assert_eq!(proc_stat(me).unwrap().start_time, a.start_time);
        assert!(proc_stat(i32::MAX).is_none());
    }

    #[test]
    fn thread_count_counts_the_threads_alive() {
        // Other tests' threads come and go meanwhile, so only a lower bound is certain: this
        // thread and the four parked below.
        let parked = std::sync::Barrier::new(5);
        let seen = std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| parked.wait());
            }
            let seen = thread_count();
            parked.wait();
            seen
        });
        assert!(seen.unwrap() >= 5, "{seen:?}");
        assert!(thread_count().unwrap() >= 1);
    }
}

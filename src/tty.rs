//! Terminals (`process.terminal: true`), as runc does them: the container side opens a new
//! pty in the container's devpts, makes the slave its controlling terminal and stdio, and
//! sends the master over the `--console-socket` (SCM_RIGHTS, the pty name as payload). A
//! foreground `run` or `exec` without a console socket receives the master itself and
//! relays it to its own stdio (`Relay`).

use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

/// statfs f_type of a devpts filesystem.
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Connects to the console socket as a stream client. The fd is close-on-exec: the container
/// side uses it before exec and nothing of it reaches the container process.
pub fn connect_socket(path: &Path) -> Result<OwnedFd> {
    let sock = UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}: connect", path.display()))?;
    Ok(sock.into())
}

/// A connected pair for a foreground `run`/`exec`: berth keeps one end to receive the master,
/// the container side gets the other as if it were a console socket.
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = UnixStream::pair().context("socketpair for the terminal")?;
    Ok((a.into(), b.into()))
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn set_winsize(fd: BorrowedFd, ws: &libc::winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads a struct winsize from the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) };
    Errno::result(r).map(drop)
}

fn get_winsize(fd: BorrowedFd) -> nix::Result<libc::winsize> {
    let mut ws = winsize(0, 0);
    // SAFETY: TIOCGWINSZ writes a struct winsize to the pointer, which is valid for the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    Errno::result(r).map(|_| ws)
}

/// Inside the container (its mount namespace and root): a new pty from /dev/ptmx, the slave
/// as stdin/stdout/stderr, owned by the process's uid, its consoleSize applied, the slave
/// bound on /dev/console when `mount_console` (init) and the container has a /dev, and the
/// master sent over `socket`.
/// The process that is to own it then takes it (`take_controlling_terminal`).
pub fn setup_console(
    socket: &OwnedFd,
    process: &oci_spec::runtime::Process,
    mount_console: bool,
) -> Result<()> {
    let size = process.console_size();
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("process.terminal: open /dev/ptmx in the container")?;
    // /dev/ptmx is a path in the image: check that what opened is a pty multiplexer of a
    // devpts (the container's), not some other device it was made to point at.
    let devpts = crate::sys::fs_type(&master).context("process.terminal: statfs /dev/ptmx")?;
    if devpts != DEVPTS_SUPER_MAGIC {
        bail!("process.terminal: /dev/ptmx is not on a devpts filesystem (type {devpts:#x})");
    }
    nix::pty::grantpt(&master).context("process.terminal: grantpt")?;
    nix::pty::unlockpt(&master).context("process.terminal: unlockpt")?;
    let name = nix::pty::ptsname_r(&master).context("process.terminal: ptsname")?;
    // The slave through the master (TIOCGPTPEER), not by path: it is the pty just made.
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd or -1.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = Errno::result(slave).context("process.terminal: open the pty slave")?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // The process's own terminal, as runc's is (only the pty berth made: stdio it was given
    // keeps its owner). The group stays devpts's (tty).
    let uid = process.user().uid();
    nix::unistd::fchown(
        slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        None,
    )
    .with_context(|| format!("process.terminal: chown the pty to process.user.uid {uid}"))?;
    if let Some(b) = size {
        let ws = winsize(b.height() as u16, b.width() as u16);
        set_winsize(slave.as_fd(), &ws).context("process.consoleSize: TIOCSWINSZ")?;
    }
    if mount_console && Path::new("/dev").is_dir() {
        mount_dev_console(&slave)?;
    }
    send_master(socket, master.as_fd(), &name)?;
    drop(master);
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target)
            .with_context(|| format!("process.terminal: make the pty stdio fd {target}"))?;
    }
    drop(slave);
    Ok(())
}

/// Makes the terminal on stdin (the pty `setup_console` made) the controlling terminal of
/// this session, whose leader the caller must be.
pub fn take_controlling_terminal() -> Result<()> {
    // SAFETY: TIOCSCTTY on fd 0 (the slave) with argument 0; no memory is passed.
    let r = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    Errno::result(r).context("process.terminal: make the pty the controlling terminal")?;
    Ok(())
}

/// Binds the pty slave on /dev/console from its fd (never by the /dev/pts/N path, which
/// the image could turn into something else: CVE-2025-52565), making an empty file to mount
/// on if needed; a symlink there, e.g. from the image, is replaced rather than followed.
fn mount_dev_console(slave: &OwnedFd) -> Result<()> {
    let root = File::open("/").context("open the container's root")?;
    let dev = crate::rootfs::paths::open_in_root(&root, Path::new("/dev"))
        .context("open /dev to mount the terminal on /dev/console")?;
    let name = c"console";
    let at = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    if nix::sys::stat::fstatat(Some(dev.as_raw_fd()), name, at)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    {
        nix::unistd::unlinkat(
            Some(dev.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .context("remove the /dev/console symlink")?;
    }
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    match nix::fcntl::openat(
        Some(dev.as_raw_fd()),
        name,
        flags,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    ) {
        // SAFETY: openat returned a fresh fd; dropping it closes it.
        Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
        // Already there (a file or a device node the config made): nothing is opened.
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).context("create /dev/console to mount the terminal on"),
    }
    // The name itself, never a symlink's target: the mount lands on what was checked.
    let fd = nix::fcntl::openat(
        Some(dev.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("open /dev/console")?;
    // SAFETY: openat returned a fresh fd that nothing else owns.
    let target = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(target.as_raw_fd()).context("stat /dev/console")?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK || st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        bail!("process.terminal: /dev/console is not a file to mount the terminal on");
    }
    let copy = crate::sys::clone_mount(slave, false)
        .context("process.terminal: open_tree the pty slave")?;
    crate::sys::move_mount_onto(&copy, &target)
        .context("process.terminal: mount the pty slave on /dev/console")
}

/// Sends the master with the pty name as payload, as runc does.
fn send_master(socket: &OwnedFd, master: BorrowedFd, name: &str) -> Result<()> {
    crate::sys::send_fd(socket.as_fd(), name.as_bytes(), master)
        .context("--console-socket: send the pty master")
}

/// Receives the master that `setup_console` sent (foreground `run`/`exec`).
pub fn recv_master(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(Errno::EINTR) => continue,
            Err(e) => bail!("receive the pty master: {e}"),
        }
    };
    let fd = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    });
    match fd {
        // SAFETY: SCM_RIGHTS just installed this fd in our table; nothing else owns it.
        Some(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        None => bail!("the container process exited before sending its terminal"),
    }
}

/// Berth's own stdio relayed to a container terminal, without threads: `Relay::pump` copies
/// whatever `poll` found ready. The caller's terminal (if stdin is one) is in raw mode until
/// the relay is dropped.
pub struct Relay {
    master: File,
    stdin_open: bool,
    master_open: bool,
    saved: Option<Termios>,
}

impl Relay {
    pub fn new(master: OwnedFd) -> Result<Relay> {
        // As runc: the container's terminal does not turn "\n" into "\r\n", so its output
        // reaches a pipe or file as written; our own terminal (raw, but with output
        // processing kept, as runc keeps it) adds the "\r" on screen.
        let mut pty = termios::tcgetattr(master.as_fd()).context("read the terminal's modes")?;
        pty.output_flags.remove(termios::OutputFlags::ONLCR);
        termios::tcsetattr(master.as_fd(), SetArg::TCSANOW, &pty)
            .context("clear ONLCR on the container's terminal")?;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            raw.output_flags.insert(termios::OutputFlags::OPOST);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
                .context("put the terminal in raw mode")?;
        }
        let relay = Relay {
            master: File::from(master),
            stdin_open: true,
            master_open: true,
            saved,
        };
        relay.resize();
        Ok(relay)
    }

    /// Gives the container's terminal the size of ours (on start and on SIGWINCH).
    pub fn resize(&self) {
        if let Ok(ws) = get_winsize(std::io::stdin().as_fd()) {
            let _ = set_winsize(self.master.as_fd(), &ws);
        }
    }

    /// The fds to poll for input: (stdin, master), either `None` once closed.
    pub fn fds(&self) -> (Option<BorrowedFd<'_>>, Option<BorrowedFd<'_>>) {
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        (
            self.stdin_open.then_some(stdin),
            self.master_open.then(|| self.master.as_fd()),
        )
    }

    /// Copies one chunk each way where `poll` reported the fd ready.
    pub fn pump(&mut self, stdin_ready: bool, master_ready: bool) -> Result<()> {
        let mut buf = [0u8; 8192];
        if stdin_ready {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => self.stdin_open = false,
                Ok(n) => {
                    let _ = self.master.write_all(&buf[..n]);
                }
            }
        }
        if master_ready {
            // EIO: every slave fd is closed (the container process is gone).
            match self.master.read(&mut buf) {
                Ok(0) | Err(_) => self.master_open = false,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&buf[..n])
                        .context("write the terminal output")?;
                    out.flush()?;
                }
            }
        }
        Ok(())
    }

    /// After the process exited: copies what is left in the pty to stdout.
    pub fn drain(&mut self) -> Result<()> {
        nix::fcntl::fcntl(
            self.master.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        )?;
        while self.master_open {
            self.pump(false, true)?;
        }
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

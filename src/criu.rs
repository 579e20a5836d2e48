//! CRIU's RPC interface, as runc and crun use it: `criu swrk FD` over a SOCK_SEQPACKET
//! socketpair, one protobuf message per packet (images/rpc.proto of CRIU, proto2). Only the
//! fields berth sends or reads are declared; their tags are CRIU's.
//!
//! A session is one CRIU process serving one request (plus the feature check before it):
//! while it works, CRIU sends notifications ("setup-namespaces", "post-restore",
//! "orphan-pts-master" with the pty master as SCM_RIGHTS, ...), each answered once handled.

use std::fs::File;
use std::io::{IoSliceMut, Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags};
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct PageServerInfo {
    #[prost(string, optional, tag = "1")]
    pub address: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub port: Option<i32>,
}

/// An external mount: on dump, `key` is the mount point and `val` the name it is saved under;
/// on restore, `key` is that name and `val` the host path to bind there.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub val: String,
}

/// A file CRIU takes from its own fd table instead of restoring it (a pipe, a namespace).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}

/// A namespace CRIU joins by path instead of restoring it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: String,
    #[prost(string, required, tag = "2")]
    pub ns_file: String,
    #[prost(string, optional, tag = "3")]
    pub extra_opt: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: Option<String>,
    #[prost(string, required, tag = "2")]
    pub path: String,
}

/// criu_cg_mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CgMode {
    Ignore = 0,
    CgNone = 1,
    Props = 2,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

impl CgMode {
    /// `--manage-cgroups-mode`, as runc takes it (empty: CRIU's default, soft).
    pub fn from_flag(mode: Option<&str>) -> Result<CgMode> {
        Ok(match mode.unwrap_or("") {
            "" => CgMode::Default,
            "soft" => CgMode::Soft,
            "full" => CgMode::Full,
            "strict" => CgMode::Strict,
            "ignore" => CgMode::Ignore,
            other => bail!("--manage-cgroups-mode {other:?}: must be soft, full, strict or ignore"),
        })
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Opts {
    #[prost(int32, required, tag = "1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(message, optional, tag = "11")]
    pub ps: Option<PageServerInfo>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(bool, optional, tag = "18")]
    pub link_remap: Option<bool>,
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: Vec<ExtMountMap>,
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: Vec<CgroupRoot>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: Vec<InheritFd>,
    #[prost(enumeration = "CgMode", optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: Option<u32>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: Vec<JoinNamespace>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: Option<String>,
    #[prost(bool, optional, tag = "46")]
    pub tcp_skip_in_flight: Option<bool>,
    #[prost(bool, optional, tag = "48")]
    pub lazy_pages: Option<bool>,
    #[prost(int32, optional, tag = "49")]
    pub status_fd: Option<i32>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: Option<bool>,
    #[prost(string, optional, tag = "51")]
    pub config_file: Option<String>,
    #[prost(string, optional, tag = "53")]
    pub lsm_profile: Option<String>,
    #[prost(string, optional, tag = "63")]
    pub lsm_mount_context: Option<String>,
}

/// criu_req_type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    CpuinfoDump = 7,
    CpuinfoCheck = 8,
    FeatureCheck = 9,
    Version = 10,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    #[prost(bool, optional, tag = "1")]
    pub mem_track: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    pub lazy_pages: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Req {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<Opts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
    #[prost(message, optional, tag = "5")]
    pub features: Option<Features>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Notify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resp {
    #[prost(enumeration = "ReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<RestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<Notify>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(message, optional, tag = "8")]
    pub features: Option<Features>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
}

/// What CRIU told along the way.
pub struct Notification {
    pub script: String,
    pub pid: Option<i32>,
    /// "orphan-pts-master": the master of the restored terminal.
    pub fd: Option<OwnedFd>,
}

/// Where CRIU's own stdio goes. Its log is in the work (or image) directory; what it says
/// before the log is open (a kernel it cannot work with, say) goes to stderr, kept in a
/// file to be quoted in the error.
pub struct Session {
    sock: OwnedFd,
    child: Child,
    stderr: File,
}

/// The criu binary: $BERTH_CRIU (tests point it elsewhere), else `criu` on PATH.
fn criu_binary() -> String {
    std::env::var("BERTH_CRIU").unwrap_or_else(|_| "criu".to_string())
}

/// Refuses at once, before anything is written, where no criu binary is installed.
pub fn require() -> Result<()> {
    match installed() {
        true => Ok(()),
        false => bail!(
            "CRIU is not installed: {:?} not found in PATH (Debian: apt-get install criu)",
            criu_binary()
        ),
    }
}

/// Whether a criu binary is installed (for `features`): looked up without running it.
pub fn installed() -> bool {
    let bin = criu_binary();
    if bin.contains('/') {
        return Path::new(&bin).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(&bin).is_file()))
}

impl Session {
    /// Starts `criu swrk`. `pass` are the fds CRIU must see under their own numbers
    /// (inherited namespaces, the process's stdio pipes, a status fd): they lose
    /// close-on-exec for the spawn. `stdin` is CRIU's stdin (a shell job's terminal).
    pub fn start(pass: &[BorrowedFd], stdin: Stdio) -> Result<Session> {
        let (client, server) = socket::socketpair(
            socket::AddressFamily::Unix,
            socket::SockType::SeqPacket,
            None,
            socket::SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for criu swrk")?;
        let stderr = tempfile_in_memory()?;
        for fd in std::iter::once(server.as_fd()).chain(pass.iter().copied()) {
            clear_cloexec(fd)?;
        }
        let bin = criu_binary();
        let child = Command::new(&bin)
            .arg("swrk")
            .arg(server.as_raw_fd().to_string())
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(stderr.try_clone().context("dup criu's stderr file")?)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow!(
                    "CRIU is not installed: {bin:?} not found in PATH (Debian: apt-get install criu)"
                ),
                _ => anyhow!("run {bin} swrk: {e}"),
            });
        // (Whatever happened, the passed fds are berth's own again.)
        for fd in pass {
            let _ = set_cloexec(*fd);
        }
        let child = child?;
        drop(server);
        Ok(Session {
            sock: client,
            child,
            stderr,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `req` and serves CRIU's notifications with `on_notify` until the answer to it.
    /// Then CRIU is waited for.
    pub fn call(
        mut self,
        req: &Req,
        mut on_notify: impl FnMut(Notification) -> Result<()>,
    ) -> Result<Resp> {
        let want = req.r#type;
        let result = (|| {
            self.send(req)?;
            loop {
                let (resp, fd) = self.recv()?;
                if !resp.success {
                    bail!("{}", self.failure(&resp));
                }
                if resp.r#type == ReqType::Notify as i32 {
                    let n = resp.notify.clone().unwrap_or_default();
                    on_notify(Notification {
                        script: n.script.unwrap_or_default(),
                        pid: n.pid,
                        fd,
                    })?;
                    self.send(&Req {
                        r#type: ReqType::Notify as i32,
                        notify_success: Some(true),
                        ..Default::default()
                    })?;
                    continue;
                }
                if resp.r#type != want {
                    bail!(
                        "criu answered a request of type {want} with one of type {}",
                        resp.r#type
                    );
                }
                return Ok(resp);
            }
        })();
        // Closing our end ends a CRIU that waits for more (pre-dump does).
        let _ = socket::shutdown(self.sock.as_raw_fd(), socket::Shutdown::Both);
        let status = self.child.wait();
        match result {
            Err(e) if e.is::<Closed>() => Err(anyhow!(
                "{}",
                self.said()
                    .unwrap_or_else(|| format!("criu exited ({})", describe(&status)))
            )),
            other => other,
        }
    }

    fn send(&self, req: &Req) -> Result<()> {
        let data = req.encode_to_vec();
        socket::send(self.sock.as_raw_fd(), &data, MsgFlags::empty()).context("send to criu")?;
        Ok(())
    }

    fn recv(&self) -> Result<(Resp, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 10 * 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = loop {
                match socket::recvmsg::<()>(
                    self.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.context("receive from criu")?,
                }
            };
            let mut fd = None;
            for c in msg.cmsgs().context("criu's control message")? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for raw in fds {
                        // SAFETY: SCM_RIGHTS just installed `raw` in our table; nothing
                        // else owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            (msg.bytes, fd)
        };
        if n == 0 {
            return Err(Closed.into());
        }
        if n == buf.len() {
            bail!("criu's answer does not fit in {} bytes", buf.len());
        }
        let resp = Resp::decode(&buf[..n]).context("decode criu's answer")?;
        Ok((resp, fd))
    }

    /// CRIU's failure in its own words: the error it returned, or the first error line it
    /// wrote to stderr.
    fn failure(&mut self, resp: &Resp) -> String {
        if let Some(msg) = resp.cr_errmsg.as_deref().filter(|m| !m.is_empty()) {
            return msg.trim().to_string();
        }
        if let Some(said) = self.said() {
            return said;
        }
        match resp.cr_errno.filter(|&e| e != 0) {
            Some(e) => format!("criu failed: {}", nix::errno::Errno::from_raw(e).desc()),
            None => "criu failed".to_string(),
        }
    }

    /// The first error line CRIU wrote to stderr, if any.
    fn said(&mut self) -> Option<String> {
        let mut text = String::new();
        self.stderr.rewind().ok()?;
        self.stderr.read_to_string(&mut text).ok()?;
        first_error_line(&text)
    }
}

/// CRIU closed the connection without answering: what it wrote to stderr says why.
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("criu closed the connection")
    }
}

impl std::error::Error for Closed {}

fn describe(status: &std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// The first "Error (file:line): ..." line of a CRIU log or stderr, else its last line.
pub fn first_error_line(text: &str) -> Option<String> {
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut last = None;
    for line in lines {
        if let Some(at) = line.find("Error (") {
            return Some(line[at..].to_string());
        }
        last = Some(line);
    }
    last.map(str::to_string)
}

/// The first error line of CRIU's log `file`, for when its answer says no more than that
/// it failed.
pub fn error_in_log(file: &Path) -> Option<String> {
    let text = std::fs::read(file).ok()?;
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .find_map(|l| l.find("Error (").map(|at| l[at..].trim().to_string()))
}

fn tempfile_in_memory() -> Result<File> {
    let fd = crate::sys::memfd_create(c"criu-stderr", libc::MFD_CLOEXEC)
        .context("memfd for criu's stderr")?;
    Ok(File::from(fd))
}

fn clear_cloexec(fd: BorrowedFd) -> Result<()> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .with_context(|| format!("pass fd {} to criu", fd.as_raw_fd()))?;
    Ok(())
}

fn set_cloexec(fd: BorrowedFd) -> Result<()> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(())
}

/// Asks CRIU whether it can do what `features` asks for (memory tracking for pre-dump,
/// userfaultfd for lazy pages); names what it lacks.
pub fn check_features(features: Features) -> Result<()> {
    let session = Session::start(&[], Stdio::null())?;
    let req = Req {
        r#type: ReqType::FeatureCheck as i32,
        features: Some(features.clone()),
        ..Default::default()
    };
    let resp = session.call(&req, |_| Ok(()))?;
    let got = resp.features.unwrap_or_default();
    if features.mem_track == Some(true) && got.mem_track != Some(true) {
        bail!("--pre-dump: CRIU cannot track memory changes on this kernel (its feature check says mem_track false)");
    }
    if features.lazy_pages == Some(true) && got.lazy_pages != Some(true) {
        bail!("--lazy-pages: CRIU cannot restore pages lazily on this kernel (its feature check says lazy_pages false)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encodes_with_criu_tags() {
        let req = Req {
            r#type: ReqType::Dump as i32,
            opts: Some(Opts {
                images_dir_fd: 5,
                pid: Some(42),
                ext_mnt: vec![ExtMountMap {
                    key: "/data".into(),
                    val: "/data".into(),
                }],
                manage_cgroups_mode: Some(CgMode::Soft as i32),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = req.encode_to_vec();
        // type = 1 (field 1, varint); opts (field 2, length-delimited) holding
        // images_dir_fd = 5 (field 1), pid = 42 (field 2), ext_mnt (field 23: key 0xba 0x01),
        // manage_cgroups_mode = 3 (field 34: key 0x90 0x02).
        assert_eq!(&bytes[..2], &[0x08, 0x01]);
        assert_eq!(bytes[2], 0x12);
        let opts = &bytes[4..];
        assert_eq!(&opts[..4], &[0x08, 0x05, 0x10, 42]);
        assert_eq!(&opts[4..6], &[0xba, 0x01]);
        assert!(opts.ends_with(&[0x90, 0x02, 0x03]), "{opts:x?}");
        assert_eq!(Req::decode(&bytes[..]).unwrap(), req);
    }

    #[test]
    fn response_with_notify_decodes() {
        // A notify answer as CRIU sends it: type NOTIFY, success, notify{script, pid}.
        let resp = Resp {
            r#type: ReqType::Notify as i32,
            success: true,
            notify: Some(Notify {
                script: Some("post-restore".into()),
                pid: Some(1234),
            }),
            ..Default::default()
        };
        let back = Resp::decode(&resp.encode_to_vec()[..]).unwrap();
        assert_eq!(back.notify.unwrap().script.as_deref(), Some("post-restore"));
    }

    #[test]
    fn error_lines_are_found() {
        let text = "Warn (criu/kerndat.c:1): x\nError (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\nError (criu/crtools.c:260): Could not initialize\n";
        assert_eq!(
            first_error_line(text).unwrap(),
            "Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable"
        );
        assert_eq!(first_error_line("only this\n").unwrap(), "only this");
        assert_eq!(first_error_line("\n"), None);
    }

    #[test]
    fn cgroup_modes_as_runc() {
        assert_eq!(CgMode::from_flag(None).unwrap(), CgMode::Default);
        assert_eq!(CgMode::from_flag(Some("full")).unwrap(), CgMode::Full);
        let e = CgMode::from_flag(Some("bogus")).unwrap_err().to_string();
        assert!(e.starts_with("--manage-cgroups-mode \"bogus\""), "{e}");
    }
}

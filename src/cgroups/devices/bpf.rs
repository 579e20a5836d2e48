//! bpf(2) for the cgroup v2 device filter, each command behind a thin function: load a
//! BPF_PROG_TYPE_CGROUP_DEVICE program, query, attach and detach a cgroup's programs.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::bpf_program::Insn;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct GetFdByIdAttr {
    prog_id: u32,
}

/// union bpf_attr. Larger than any kernel's so far (144 bytes in 6.x), zeroed beyond the part
/// in use: the kernel accepts a bigger attr whose tail is zero, and its output fields (e.g. a
/// query's revision) always land inside our buffer.
#[repr(C)]
union Attr {
    load: ProgLoadAttr,
    query: QueryAttr,
    attach: AttachAttr,
    get_fd: GetFdByIdAttr,
    raw: [u64; 32],
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable buffer of exactly the size passed; the kernel reads at
    // most that many bytes and writes only output fields inside it. Any pointers stored in it
    // point to buffers the caller keeps alive (and sized as stated) across this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    Errno::result(r)
}

fn owned_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads the program; on failure also returns the verifier's log (possibly empty).
pub(super) fn load(insns: &[Insn]) -> std::result::Result<OwnedFd, (Errno, String)> {
    static LICENSE: &[u8] = b"Apache\0";
    let try_load = |log: &mut [u8]| {
        let mut name = [0u8; 16];
        name[..13].copy_from_slice(b"berth_devices");
        let mut attr = Attr { raw: [0; 32] };
        attr.load = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
        };
        bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd)
    };
    let mut first = try_load(&mut []);
    if matches!(first, Err(Errno::EPERM)) {
        // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: retry with it lifted, as
        // runc does, and put it back so nothing else (e.g. a later exec) inherits the change.
        if let Ok((soft, hard)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
        {
            let inf = libc::RLIM_INFINITY;
            if nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK, inf, inf)
                .is_ok()
            {
                first = try_load(&mut []);
                let _ = nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_MEMLOCK,
                    soft,
                    hard,
                );
            }
        }
    }
    first.map_err(|e| {
        // Load again with a log only now: a log for a successful load is wasted work, and an
        // overflowing one would itself fail the load.
        let mut log = vec![0u8; 64 * 1024];
        let _ = try_load(&mut log);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        // The reason is at the end; keep the log short enough for an error line.
        let tail = lines[lines.len().saturating_sub(8)..].join("; ");
        (e, tail)
    })
}

pub(super) fn attached_programs(cgroup: &File) -> nix::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = Attr { raw: [0; 32] };
        attr.query = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
        };
        let r = bpf(BPF_PROG_QUERY, &mut attr);
        // SAFETY: `query` is the member we initialised; the kernel only updated its prog_cnt.
        let count = unsafe { attr.query.prog_cnt } as usize;
        match r {
            Ok(_) => {
                ids.truncate(count.min(ids.len()));
                return Ok(ids);
            }
            // The buffer was too small; the kernel said how many there are.
            Err(Errno::ENOSPC) if count > ids.len() => ids.resize(count, 0),
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn attach(cgroup: &File, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = Attr { raw: [0; 32] };
    attr.attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

pub(super) fn detach(cgroup: &File, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = Attr { raw: [0; 32] };
    attr.attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

pub(super) fn prog_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = Attr { raw: [0; 32] };
    attr.get_fd = GetFdByIdAttr { prog_id: id };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned_fd)
}

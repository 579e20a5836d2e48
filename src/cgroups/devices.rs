//! The device controller, as runc drives it. The rule list is folded into the state a v1
//! devices cgroup would reach (an emulator). On v1 only the transition from the cgroup's
//! present state (devices.list) to that one is written (`v1_transition`); cgroup2 has no
//! devices.allow/deny, so there the state is compiled into a BPF_PROG_TYPE_CGROUP_DEVICE
//! program attached to the cgroup (BPF_F_ALLOW_MULTI) in place of the one attached before;
//! systemd gets it in its own form (`net_rules`).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Result};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

const WHAT: &str = "linux.resources.devices";

/// Replaces the device filter on the cgroup v2 directory `dir` with one that allows what
/// `rules` allow, evaluated as the v1 devices controller would evaluate them applied in order
/// to a fresh cgroup (which starts allowing everything).
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = compile(rules)?;
    let cgroup = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| anyhow::anyhow!("{WHAT}: open the cgroup {}: {e}", dir.display()))?;
    let old = attached_programs(&cgroup).map_err(|e| {
        // EBADF is what a directory outside cgroup2 (e.g. a v1 hierarchy) gets.
        let hint = if e == Errno::EBADF {
            " (not a cgroup v2 directory?)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "{WHAT}: query the eBPF device filters of {}: {e}{hint}",
            dir.display()
        )
    })?;
    let prog = load(&insns).map_err(|(e, log)| {
        let log = if log.is_empty() {
            String::new()
        } else {
            format!(" (verifier log: {log})")
        };
        // The errno stays in the chain: a rootless caller tells EPERM apart.
        anyhow::Error::from(std::io::Error::from(e)).context(format!(
            "{WHAT}: load the eBPF device filter for {}{log}",
            dir.display()
        ))
    })?;
    attach(&cgroup, prog.as_fd()).map_err(|e| {
        anyhow::Error::from(std::io::Error::from(e)).context(format!(
            "{WHAT}: attach the eBPF device filter to {}",
            dir.display()
        ))
    })?;
    // The new filter is in place; only now drop the old ones, so there is no unfiltered window.
    for id in old {
        let old_prog = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Gone meanwhile, or hidden from us by an LSM (runc skips those too: another
            // program can only restrict further).
            Err(Errno::ENOENT | Errno::EPERM | Errno::EACCES) => {
                log::debug!(
                    "{WHAT}: skipping old device filter {id} on {}",
                    dir.display()
                );
                continue;
            }
            Err(e) => bail!(
                "{WHAT}: open the old eBPF device filter {id} of {}: {e}",
                dir.display()
            ),
        };
        match detach(&cgroup, old_prog.as_fd()) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => bail!(
                "{WHAT}: detach the old eBPF device filter {id} from {}: {e}",
                dir.display()
            ),
        }
    }
    Ok(())
}

/// The filter program for `rules`, built without touching the system (what `apply` loads).
/// A bad rule fails here, naming it.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    program(&Emulator::from_rules(rules)?)
}

/// The devices.allow (true) and devices.deny writes that take a v1 cgroup whose devices.list
/// reads `list` to what `rules` allow.
pub fn v1_transition(list: &str, rules: &[LinuxDeviceCgroup]) -> Result<Vec<(bool, String)>> {
    let target = Emulator::from_rules(rules)?;
    let current = Emulator::from_list(list).map_err(|e| anyhow::anyhow!("{WHAT}: {e}"))?;
    Ok(current.transition(&target))
}

/// One exception of `net_rules`: a device (type and numbers, None for any) and its access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    pub block: bool,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// A subset of "rwm".
    pub access: String,
}

/// What `rules` come to, as v1's devices controller keeps them: whether a device no
/// exception names is allowed, and the exceptions (allows on a default-deny cgroup, denies on
/// a default-allow one). For a service manager that takes rules in its own form.
pub fn net_rules(rules: &[LinuxDeviceCgroup]) -> Result<(bool, Vec<NetRule>)> {
    let emu = Emulator::from_rules(rules)?;
    let exceptions = emu
        .exceptions
        .iter()
        .map(|e| NetRule {
            block: e.meta.block,
            major: e.meta.major,
            minor: e.meta.minor,
            access: access_str(e.access),
        })
        .collect();
    Ok((emu.default_allow, exceptions))
}

// ---------------------------------------------------------------------------------------------
// Emulator: the v1 devices controller's state machine.

// Access bits, as the kernel passes them in the high half of bpf_cgroup_dev_ctx.access_type.
const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;
// Device types, the low half of access_type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    block: bool,
    major: Option<u32>, // None = any
    minor: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    meta: Meta,
    access: u8,
}

/// What a v1 devices cgroup holds: a default and the exceptions to it (allow exceptions on a
/// default-deny cgroup, deny exceptions on a default-allow one).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Emulator {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

/// The access bits of `s`; letters other than r, w and m are dropped, as runc drops them.
fn parse_access(s: Option<&str>) -> std::result::Result<u8, String> {
    let Some(s) = s else { return Ok(ACC_ALL) };
    if s.is_empty() {
        return Err("access is empty (use a subset of \"rwm\")".into());
    }
    Ok(s.chars().fold(0, |acc, c| match c {
        'r' => acc | ACC_READ,
        'w' => acc | ACC_WRITE,
        'm' => acc | ACC_MKNOD,
        _ => {
            log::debug!("{WHAT}: access {s:?}: {c:?} is not one of \"rwm\", dropped as runc does");
            acc
        }
    }))
}

fn access_str(a: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| a & b != 0)
        .map(|&(_, c)| c)
        .collect()
}

fn parse_number(n: Option<i64>, what: &str) -> std::result::Result<Option<u32>, String> {
    match n {
        // runc treats any negative number (-1 in its configs) as the wildcard.
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| format!("{what} {n} is out of range")),
    }
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let t = if self.meta.block { 'b' } else { 'c' };
        let (ma, mi) = (num(self.meta.major), num(self.meta.minor));
        write!(f, "{t} {ma}:{mi} {}", access_str(self.access))
    }
}

impl Emulator {
    fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<Self> {
        // A fresh v1 cgroup allows everything.
        let mut emu = Emulator {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for (i, r) in rules.iter().enumerate() {
            emu.apply(r)
                .map_err(|e| anyhow::anyhow!("{WHAT}[{i}]: {e}"))?;
        }
        Ok(emu)
    }

    fn apply(&mut self, r: &LinuxDeviceCgroup) -> std::result::Result<(), String> {
        let block = match r.typ() {
            // "a" resets the cgroup whatever the numbers and access say, as in the kernel.
            None | Some(LinuxDeviceType::A) => {
                self.default_allow = r.allow();
                self.exceptions.clear();
                return Ok(());
            }
            Some(LinuxDeviceType::B) => true,
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => false,
            // FIFOs are not subject to the device cgroup.
            Some(LinuxDeviceType::P) => return Ok(()),
        };
        let ex = Exception {
            meta: Meta {
                block,
                major: parse_number(r.major(), "major")?,
                minor: parse_number(r.minor(), "minor")?,
            },
            access: parse_access(r.access().as_deref())?,
        };
        if r.allow() != self.default_allow {
            self.add(ex);
            Ok(())
        } else {
            self.remove(ex)
        }
    }

    /// The state a v1 cgroup's devices.list shows: "a *:* rwm" for one that allows
    /// everything (the kernel lists no deny exceptions then), else the allowed devices.
    fn from_list(list: &str) -> std::result::Result<Self, String> {
        let mut emu = Emulator {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || format!("devices.list line {line:?}");
            let mut f = line.split_whitespace();
            let (typ, nums, access) = match (f.next(), f.next(), f.next()) {
                (Some(t), Some(n), Some(a)) => (t, n, a),
                _ => return Err(bad()),
            };
            if typ == "a" {
                return Ok(Emulator {
                    default_allow: true,
                    exceptions: Vec::new(),
                });
            }
            let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
            let num = |n: &str| match n {
                "*" => Ok(None),
                n => n.parse().map(Some).map_err(|_| bad()),
            };
            emu.add(Exception {
                meta: Meta {
                    block: match typ {
                        "b" => true,
                        "c" => false,
                        _ => return Err(bad()),
                    },
                    major: num(major)?,
                    minor: num(minor)?,
                },
                access: parse_access(Some(access))?,
            });
        }
        Ok(emu)
    }

    /// The fewest v1 writes that take a cgroup from `self` to `target`, as runc computes them
    /// (a switch of default first, then what each exception loses and gains), as (allow,
    /// line) pairs for devices.allow and devices.deny.
    fn transition(&self, target: &Emulator) -> Vec<(bool, String)> {
        let mut writes = Vec::new();
        let mut old: &[Exception] = &self.exceptions;
        if self.default_allow != target.default_allow {
            writes.push((target.default_allow, "a *:* rwm".to_string()));
            old = &[];
        }
        let access_of = |list: &[Exception], meta: Meta| {
            list.iter().find(|e| e.meta == meta).map_or(0, |e| e.access)
        };
        for e in old {
            let dropped = e.access & !access_of(&target.exceptions, e.meta);
            if dropped != 0 {
                let line = Exception {
                    access: dropped,
                    ..*e
                }
                .to_string();
                writes.push((target.default_allow, line));
            }
        }
        for e in &target.exceptions {
            let gained = e.access & !access_of(old, e.meta);
            if gained != 0 {
                let line = Exception {
                    access: gained,
                    ..*e
                }
                .to_string();
                writes.push((!target.default_allow, line));
            }
        }
        writes
    }

    /// An exception against the default: merged into the one with the same match, if any.
    fn add(&mut self, ex: Exception) {
        match self.exceptions.iter_mut().find(|e| e.meta == ex.meta) {
            Some(e) => e.access |= ex.access,
            None => self.exceptions.push(ex),
        }
    }

    /// A rule agreeing with the default trims the exception with exactly its match. v1 silently
    /// ignores a rule that would need to punch a hole into a wider wildcard exception; like runc
    /// we refuse it instead, so the container does not get more than the config seems to say.
    fn remove(&mut self, ex: Exception) -> std::result::Result<(), String> {
        let m = ex.meta;
        let wider = [
            Meta { major: None, ..m },
            Meta { minor: None, ..m },
            Meta {
                major: None,
                minor: None,
                ..m
            },
        ];
        for w in wider.iter().filter(|w| **w != m) {
            if let Some(e) = self
                .exceptions
                .iter()
                .find(|e| e.meta == *w && e.access & ex.access != 0)
            {
                let verb = if self.default_allow { "allow" } else { "deny" };
                return Err(format!(
                    "cannot {verb} {ex} inside the wider rule {e} (the devices cgroup cannot split wildcard rules)"
                ));
            }
        }
        if let Some(pos) = self.exceptions.iter().position(|e| e.meta == m) {
            self.exceptions[pos].access &= !ex.access;
            if self.exceptions[pos].access == 0 {
                self.exceptions.remove(pos);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Program generation.

/// struct bpf_insn.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst_reg:4, src_reg:4 (bitfield order follows the byte order)
    off: i16,
    imm: i32,
}

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_W (0): dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x04 | 0x50; // dst &= imm (32-bit, zero-extends)
const ALU32_RSH_K: u8 = 0x04 | 0x70;
const ALU32_MOV_K: u8 = 0x04 | 0xb0;
const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08;
const JMP_JEQ_K: u8 = 0x05 | 0x10;
const JMP_JNE_K: u8 = 0x05 | 0x50;
const JMP_JNE_X: u8 = 0x05 | 0x50 | 0x08;
const JMP_EXIT: u8 = 0x05 | 0x90;

// Registers: R1 = ctx (then scratch), R2 = type, R3 = access, R4 = major, R5 = minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    let regs = if cfg!(target_endian = "little") {
        dst | (src << 4)
    } else {
        (dst << 4) | src
    };
    Insn {
        code,
        regs,
        off,
        imm,
    }
}

/// Marks a jump whose target is the next block; fixed up once the block's length is known.
const TO_NEXT: i16 = i16::MIN;

/// Appends "goto next block unless reg == value", for the full u32 range.
fn jump_unless_eq(block: &mut Vec<Insn>, reg: u8, value: u32) {
    match i32::try_from(value) {
        // JNE compares 64 bits against the sign-extended imm; fine for values below 2^31.
        Ok(v) => block.push(insn(JMP_JNE_K, reg, 0, TO_NEXT, v)),
        Err(_) => {
            // MOV32 zero-extends, so the scratch register holds exactly `value`.
            block.push(insn(ALU32_MOV_K, R1, 0, 0, value as i32));
            block.push(insn(JMP_JNE_X, reg, R1, TO_NEXT, 0));
        }
    }
}

fn program(emu: &Emulator) -> Result<Vec<Insn>> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    let verdict = i32::from(!emu.default_allow);
    for ex in &emu.exceptions {
        let mut b = Vec::new();
        let typ = if ex.meta.block { DEV_BLOCK } else { DEV_CHAR };
        b.push(insn(JMP_JNE_K, R2, 0, TO_NEXT, typ));
        if ex.access != ACC_ALL {
            b.push(insn(ALU32_MOV_X, R1, R3, 0, 0));
            b.push(insn(ALU32_AND_K, R1, 0, 0, i32::from(ex.access)));
            if emu.default_allow {
                // A deny exception matches when any requested access is in it (v1's
                // match_exception_partial).
                b.push(insn(JMP_JEQ_K, R1, 0, TO_NEXT, 0));
            } else {
                // An allow exception must cover everything requested.
                b.push(insn(JMP_JNE_X, R1, R3, TO_NEXT, 0));
            }
        }
        if let Some(major) = ex.meta.major {
            jump_unless_eq(&mut b, R4, major);
        }
        if let Some(minor) = ex.meta.minor {
            jump_unless_eq(&mut b, R5, minor);
        }
        b.push(insn(ALU32_MOV_K, R0, 0, 0, verdict));
        b.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = b.len();
        for (i, ins) in b.iter_mut().enumerate() {
            if ins.off == TO_NEXT {
                // Relative to the instruction after the jump; the next block starts at `len`.
                ins.off = i16::try_from(len - i - 1)?;
            }
        }
        p.extend(b);
    }
    p.push(insn(ALU32_MOV_K, R0, 0, 0, i32::from(emu.default_allow)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// bpf(2).

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
fn load(insns: &[Insn]) -> std::result::Result<OwnedFd, (Errno, String)> {
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

fn attached_programs(cgroup: &File) -> nix::Result<Vec<u32>> {
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

fn attach(cgroup: &File, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = Attr { raw: [0; 32] };
    attr.attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

fn detach(cgroup: &File, prog: BorrowedFd<'_>) -> nix::Result<()> {
    let mut attr = Attr { raw: [0; 32] };
    attr.attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

fn prog_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = Attr { raw: [0; 32] };
    attr.get_fd = GetFdByIdAttr { prog_id: id };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned_fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(typ)
            .set_major(major)
            .set_minor(minor)
            .set_access(access.map(str::to_string));
        r
    }
    use LinuxDeviceType::{A, B, C, P, U};
    fn all(allow: bool) -> LinuxDeviceCgroup {
        rule(allow, Some(A), None, None, Some("rwm"))
    }
    fn c(allow: bool, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        rule(allow, Some(C), major, minor, Some(access))
    }
    fn ex(block: bool, major: Option<u32>, minor: Option<u32>, access: u8) -> Exception {
        Exception {
            meta: Meta {
                block,
                major,
                minor,
            },
            access,
        }
    }
    fn shown(e: &Emulator) -> Vec<String> {
        e.exceptions.iter().map(ToString::to_string).collect()
    }

    /// runc's defaults (as resources::default_device_rules lists them) after Docker's deny-all.
    fn docker_defaults() -> Vec<LinuxDeviceCgroup> {
        let mut v = vec![all(false)];
        v.push(c(true, None, None, "m"));
        v.push(rule(true, Some(B), None, None, Some("m")));
        for (ma, mi) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1)] {
            v.push(c(true, Some(ma), Some(mi), "rwm"));
        }
        v.push(c(true, Some(136), None, "rwm"));
        v.push(c(true, Some(5), Some(2), "rwm"));
        v.push(c(true, Some(10), Some(200), "rwm"));
        v
    }

    #[test]
    fn emulator_docker_defaults() {
        let e = Emulator::from_rules(&docker_defaults()).unwrap();
        assert!(!e.default_allow);
        assert_eq!(
            shown(&e),
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 5:1 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm"
            ]
        );
        assert_eq!(e.exceptions[9], ex(false, Some(136), None, ACC_ALL));
    }

    #[test]
    fn emulator_allow_all_resets() {
        // No rules: a fresh cgroup, which allows everything.
        let fresh = Emulator {
            default_allow: true,
            exceptions: vec![],
        };
        assert_eq!(Emulator::from_rules(&[]).unwrap(), fresh);
        let mut rules = docker_defaults();
        rules.push(all(true));
        assert_eq!(Emulator::from_rules(&rules).unwrap(), fresh);
        // A rule without a type is "a", whatever numbers/access it has (as in v1).
        rules.push(rule(false, None, Some(1), Some(3), Some("r")));
        assert_eq!(
            Emulator::from_rules(&rules).unwrap(),
            Emulator {
                default_allow: false,
                exceptions: vec![]
            }
        );
    }

    #[test]
    fn emulator_deny_one_under_allow_all() {
        let e = Emulator::from_rules(&[c(false, Some(1), Some(5), "rwm")]).unwrap();
        assert!(e.default_allow);
        assert_eq!(e.exceptions, [ex(false, Some(1), Some(5), ACC_ALL)]);
        // Allowing part of it back trims the deny exception; allowing the rest removes it.
        let mut rules = vec![
            all(true),
            c(false, Some(1), Some(5), "rwm"),
            c(true, Some(1), Some(5), "r"),
        ];
        assert_eq!(shown(&Emulator::from_rules(&rules).unwrap()), ["c 1:5 wm"]);
        rules.push(c(true, Some(1), Some(5), "mw"));
        assert_eq!(Emulator::from_rules(&rules).unwrap().exceptions, []);
        // Allowing a device that was never denied changes nothing.
        rules.push(c(true, Some(4), Some(4), "rwm"));
        assert_eq!(Emulator::from_rules(&rules).unwrap().exceptions, []);
    }

    #[test]
    fn emulator_partial_access() {
        let mut rules = vec![
            all(false),
            c(true, Some(1), Some(3), "r"),
            c(true, Some(1), Some(3), "w"),
        ];
        assert_eq!(shown(&Emulator::from_rules(&rules).unwrap()), ["c 1:3 rw"]);
        rules.push(c(false, Some(1), Some(3), "r"));
        assert_eq!(shown(&Emulator::from_rules(&rules).unwrap()), ["c 1:3 w"]);
        // Same match, other type: a separate exception.
        rules.push(rule(true, Some(B), Some(1), Some(3), Some("m")));
        // "u" is a character device.
        rules.push(rule(true, Some(U), Some(1), Some(3), Some("m")));
        assert_eq!(
            shown(&Emulator::from_rules(&rules).unwrap()),
            ["c 1:3 wm", "b 1:3 m"]
        );
        // FIFOs have no device cgroup rules; access None means rwm.
        rules.push(rule(true, Some(P), Some(1), Some(3), None));
        rules.push(rule(true, Some(C), Some(7), None, None));
        assert_eq!(
            shown(&Emulator::from_rules(&rules).unwrap()),
            ["c 1:3 wm", "b 1:3 m", "c 7:* rwm"]
        );
    }

    #[test]
    fn emulator_refuses_holes_in_wildcards() {
        let mut rules = docker_defaults();
        rules.push(c(false, Some(1), Some(3), "m"));
        let err = Emulator::from_rules(&rules).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "linux.resources.devices[13]: cannot deny c 1:3 m inside the wider rule c *:* m"
            ),
            "{err}"
        );
        // No overlap with the wildcard's access: fine.
        rules.pop();
        rules.push(c(false, Some(1), Some(3), "rw"));
        assert_eq!(
            Emulator::from_rules(&rules).unwrap().exceptions[2],
            ex(false, Some(1), Some(3), ACC_MKNOD)
        );
        // Under allow-all, too.
        let err = Emulator::from_rules(&[
            c(false, Some(136), None, "rwm"),
            c(true, Some(136), Some(1), "w"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot allow c 136:1 w inside the wider rule c 136:* rwm"),
            "{err}"
        );
    }

    #[test]
    fn emulator_bad_rules() {
        // As runc: letters other than r, w and m are dropped.
        let e = Emulator::from_rules(&[all(false), c(true, Some(1), Some(3), "rx")]).unwrap();
        assert_eq!(shown(&e), ["c 1:3 r"]);
        let err = Emulator::from_rules(&[c(true, Some(1), Some(3), "")]).unwrap_err();
        assert!(err.to_string().contains("access is empty"), "{err}");
        let err = Emulator::from_rules(&[c(true, Some(1 << 32), Some(3), "r")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.devices[0]: major 4294967296 is out of range"
        );
        // Negative numbers are runc's wildcard.
        let e = Emulator::from_rules(&[c(false, Some(-1), Some(3), "r")]).unwrap();
        assert_eq!(e.exceptions, [ex(false, None, Some(3), ACC_READ)]);
    }

    #[test]
    fn devices_list_is_read_as_the_kernel_keeps_it() {
        let e = Emulator::from_list("a *:* rwm\n").unwrap();
        assert_eq!(e, Emulator::from_rules(&[]).unwrap());
        let e = Emulator::from_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n").unwrap();
        assert!(!e.default_allow);
        assert_eq!(shown(&e), ["c 1:3 rwm", "c 136:* rw", "b *:* m"]);
        assert_eq!(Emulator::from_list("").unwrap().exceptions, []);
        assert!(Emulator::from_list("x 1:3 rwm").is_err());
        assert!(Emulator::from_list("c 1-3 rwm").is_err());
    }

    #[test]
    fn v1_transition_writes_only_the_difference() {
        let lines = |w: Vec<(bool, String)>| {
            w.into_iter()
                .map(|(allow, l)| format!("{} {l}", if allow { "allow" } else { "deny" }))
                .collect::<Vec<_>>()
        };
        // A fresh cgroup: the default switches, then each allowed device once.
        let w = v1_transition("a *:* rwm\n", &docker_defaults()).unwrap();
        assert_eq!(w.len(), 1 + 12, "{w:?}");
        assert_eq!(w[0], (false, "a *:* rwm".to_string()));
        assert!(w[1..].iter().all(|(allow, _)| *allow), "{w:?}");
        // Already there: nothing is written (no deny-all in between for running processes).
        let list = "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\nc 1:5 rwm\nc 1:9 rwm\nc 5:1 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm\n";
        assert_eq!(v1_transition(list, &docker_defaults()).unwrap(), []);
        // One device more and one access less: just those two writes.
        let mut rules = docker_defaults();
        rules.push(c(true, Some(4), Some(1), "rw"));
        rules.push(c(false, Some(1), Some(3), "w"));
        assert_eq!(
            lines(v1_transition(list, &rules).unwrap()),
            ["deny c 1:3 w", "allow c 4:1 rw"]
        );
    }

    // ---- program ----

    /// Runs the program on one context, interpreting exactly the opcodes `program` emits.
    fn run(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [typ | (access << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let regs = |i: &Insn| {
            if cfg!(target_endian = "little") {
                ((i.regs & 15) as usize, (i.regs >> 4) as usize)
            } else {
                ((i.regs >> 4) as usize, (i.regs & 15) as usize)
            }
        };
        loop {
            let i = p[pc];
            let (d, s) = regs(&i);
            let mut next = pc + 1;
            let jump = |cond: bool| {
                if cond {
                    (pc as i64 + 1 + i64::from(i.off)) as usize
                } else {
                    pc + 1
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, R1 as usize);
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU32_AND_K => r[d] = u64::from(r[d] as u32 & i.imm as u32),
                ALU32_RSH_K => r[d] = u64::from((r[d] as u32) >> i.imm),
                ALU32_MOV_K => r[d] = u64::from(i.imm as u32),
                ALU32_MOV_X => r[d] = u64::from(r[s] as u32),
                JMP_JEQ_K => next = jump(r[d] == i.imm as i64 as u64),
                JMP_JNE_K => next = jump(r[d] != i.imm as i64 as u64),
                JMP_JNE_X => next = jump(r[d] != r[s]),
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc = next;
        }
    }

    /// What v1 would answer, straight from the emulator's state.
    fn v1_allows(e: &Emulator, block: bool, access: u8, major: u32, minor: u32) -> bool {
        let matches = |x: &Exception| {
            x.meta.block == block
                && x.meta.major.is_none_or(|m| m == major)
                && x.meta.minor.is_none_or(|m| m == minor)
        };
        if e.default_allow {
            !e.exceptions
                .iter()
                .any(|x| matches(x) && x.access & access != 0)
        } else {
            e.exceptions
                .iter()
                .any(|x| matches(x) && x.access & access == access)
        }
    }

    fn check_structure(p: &[Insn]) {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(p.last().unwrap().code, JMP_EXIT);
        for (pc, i) in p.iter().enumerate() {
            if i.code & 0x07 == 0x05 && i.code != JMP_EXIT {
                let target = pc as i64 + 1 + i64::from(i.off);
                assert!(
                    i.off >= 0 && (target as usize) < p.len(),
                    "jump at {pc} to {target}"
                );
            }
        }
    }

    #[test]
    fn program_small_list() {
        let e = Emulator::from_rules(&[
            all(false),
            c(true, Some(1), Some(3), "rwm"),
            c(true, Some(136), None, "rw"),
        ])
        .unwrap();
        let p = program(&e).unwrap();
        check_structure(&p);
        // 6 loads + (type, major, minor, mov, exit) + (type, 3 access, major, mov, exit) + 2.
        assert_eq!(p.len(), 6 + 5 + 7 + 2);
        // Block 1: type != char -> next block (4 instructions on).
        assert_eq!(p[6], insn(JMP_JNE_K, R2, 0, 4, DEV_CHAR));
        assert_eq!(p[7], insn(JMP_JNE_K, R4, 0, 3, 1));
        assert_eq!(p[8], insn(JMP_JNE_K, R5, 0, 2, 3));
        assert_eq!(p[9], insn(ALU32_MOV_K, R0, 0, 0, 1));
        assert_eq!(p[14], insn(JMP_JNE_X, R1, R3, 3, 0));
        assert_eq!(
            &p[18..],
            &[insn(ALU32_MOV_K, R0, 0, 0, 0), insn(JMP_EXIT, 0, 0, 0, 0)]
        );
        // dst is the low nibble on little-endian hosts, as in struct bpf_insn.
        if cfg!(target_endian = "little") {
            assert_eq!(p[14].regs, 0x31);
        }
        let ok = |a, ma, mi| run(&p, DEV_CHAR as u32, a, ma, mi);
        assert_eq!(ok(u32::from(ACC_READ), 1, 3), 1);
        assert_eq!(ok(u32::from(ACC_READ), 1, 5), 0);
        assert_eq!(ok(u32::from(ACC_READ | ACC_WRITE), 136, 9), 1);
        assert_eq!(ok(u32::from(ACC_MKNOD), 136, 9), 0);
        assert_eq!(run(&p, DEV_BLOCK as u32, u32::from(ACC_READ), 1, 3), 0);
    }

    #[test]
    fn program_allow_all_is_trivial() {
        let p = program(&Emulator::from_rules(&[]).unwrap()).unwrap();
        check_structure(&p);
        assert_eq!(p.len(), 8);
        assert_eq!(run(&p, DEV_BLOCK as u32, 7, 8, 0), 1);
    }

    /// The program answers as v1 would, for every list below and a grid of requests.
    #[test]
    fn program_matches_emulator() {
        let big = u32::MAX as i64;
        let lists = vec![
            docker_defaults(),
            vec![c(false, Some(1), Some(5), "rwm")],
            vec![
                c(false, Some(1), None, "w"),
                rule(false, Some(B), None, Some(0), Some("rm")),
            ],
            vec![
                all(false),
                c(true, Some(1), Some(3), "r"),
                c(true, Some(1), Some(3), "w"),
                c(true, Some(big), Some(big), "m"),
            ],
            vec![
                c(false, Some(big), None, "rw"),
                c(false, None, Some(1 << 31), "m"),
            ],
        ];
        for rules in lists {
            let e = Emulator::from_rules(&rules).unwrap();
            let p = program(&e).unwrap();
            check_structure(&p);
            for block in [false, true] {
                for access in 1..=7u8 {
                    for major in [0, 1, 5, 10, 136, 1 << 31, u32::MAX] {
                        for minor in [0, 1, 3, 5, 9, 200, 1 << 31, u32::MAX] {
                            let typ = if block { DEV_BLOCK } else { DEV_CHAR } as u32;
                            let got = run(&p, typ, u32::from(access), major, minor) == 1;
                            let want = v1_allows(&e, block, access, major, minor);
                            assert_eq!(got, want, "{rules:?}: {block} {access} {major}:{minor}");
                        }
                    }
                }
            }
        }
    }
}

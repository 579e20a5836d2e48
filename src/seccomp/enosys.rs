//! runc's -ENOSYS stub, put in front of libseccomp's program. A syscall numbered above the
//! newest one the profile names (per architecture) fails with ENOSYS instead of getting the
//! default action: a libc trying a syscall the profile predates (clone3, say) then falls back
//! to the old one, as it would on an older kernel, instead of failing with EPERM.

use libc::sock_filter;
use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

// Classic BPF opcodes (linux/filter.h) and the fields of struct seccomp_data.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const NR: u32 = 0;
const ARCH: u32 = 4;
/// x32 shares x86_64's AUDIT_ARCH; its syscall numbers carry this bit.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
/// On s390 an unknown "large" syscall arrives as syscall 0 (setup, long gone): ENOSYS too.
const S390_MULTIPLEX_SYSCALL: u32 = 0;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Whether the profile gets the stub. As runc: not when the default action lets unknown
/// syscalls through anyway (allow, log, trace: a tracer handles new syscalls itself), nor
/// when the default already is ENOSYS.
pub fn wanted(seccomp: &LinuxSeccomp) -> bool {
    use LinuxSeccompAction::*;
    let permissive = matches!(
        seccomp.default_action(),
        ScmpActAllow | ScmpActLog | ScmpActTrace
    );
    !permissive && seccomp.default_errno_ret() != Some(libc::ENOSYS as u32)
}

/// The newest syscall the profile names on one kernel architecture (AUDIT_ARCH_*): for
/// x86_64, separately for its native ABI and for x32.
#[derive(Debug, PartialEq)]
struct Limit {
    audit_arch: u32,
    native: Option<u32>,
    x32: Option<u32>,
    s390: bool,
}

/// The kernel's AUDIT_ARCH_* value of a libseccomp architecture; libseccomp's own token is the
/// same number except for x32, which the kernel reports as x86_64.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    use libseccomp_sys::*;
    Some(match arch {
        ScmpArch::X86 => SCMP_ARCH_X86,
        ScmpArch::X8664 | ScmpArch::X32 => SCMP_ARCH_X86_64,
        ScmpArch::Arm => SCMP_ARCH_ARM,
        ScmpArch::Aarch64 => SCMP_ARCH_AARCH64,
        ScmpArch::Loongarch64 => SCMP_ARCH_LOONGARCH64,
        ScmpArch::M68k => SCMP_ARCH_M68K,
        ScmpArch::Mips => SCMP_ARCH_MIPS,
        ScmpArch::Mips64 => SCMP_ARCH_MIPS64,
        ScmpArch::Mips64N32 => SCMP_ARCH_MIPS64N32,
        ScmpArch::Mipsel => SCMP_ARCH_MIPSEL,
        ScmpArch::Mipsel64 => SCMP_ARCH_MIPSEL64,
        ScmpArch::Mipsel64N32 => SCMP_ARCH_MIPSEL64N32,
        ScmpArch::Ppc => SCMP_ARCH_PPC,
        ScmpArch::Ppc64 => SCMP_ARCH_PPC64,
        ScmpArch::Ppc64Le => SCMP_ARCH_PPC64LE,
        ScmpArch::S390 => SCMP_ARCH_S390,
        ScmpArch::S390X => SCMP_ARCH_S390X,
        ScmpArch::Parisc => SCMP_ARCH_PARISC,
        ScmpArch::Parisc64 => SCMP_ARCH_PARISC64,
        ScmpArch::Riscv64 => SCMP_ARCH_RISCV64,
        ScmpArch::Sheb => SCMP_ARCH_SHEB,
        ScmpArch::Sh => SCMP_ARCH_SH,
        _ => return None,
    })
}

/// The limits for the filter's architectures (the configured ones plus the native one, as
/// runc: some profiles forget it) and the syscall names of the profile.
fn limits(archs: &[ScmpArch], names: &[&str]) -> Vec<Limit> {
    let mut all = archs.to_vec();
    all.push(ScmpArch::native());
    let mut limits: Vec<Limit> = Vec::new();
    for arch in all {
        let Some(audit_arch) = audit_arch(arch) else {
            continue;
        };
        // Names unknown on this architecture resolve to an error or a negative pseudo number.
        let newest = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(i32::from)
            .filter(|&nr| nr > 0)
            .max()
            .map(|nr| nr as u32);
        let Some(newest) = newest else {
            continue;
        };
        let i = match limits.iter().position(|l| l.audit_arch == audit_arch) {
            Some(i) => i,
            None => {
                limits.push(Limit {
                    audit_arch,
                    native: None,
                    x32: None,
                    s390: matches!(arch, ScmpArch::S390 | ScmpArch::S390X),
                });
                limits.len() - 1
            }
        };
        match arch {
            ScmpArch::X32 => limits[i].x32 = Some(newest),
            _ => limits[i].native = Some(newest),
        }
    }
    limits
}

/// The checks of one architecture, entered with nothing loaded; the last instruction is the
/// jump into the filter (its offset set by the caller).
fn section(l: &Limit) -> Vec<sock_filter> {
    let mut s = vec![insn(LD_W_ABS, 0, 0, NR)];
    if l.s390 {
        s.push(insn(JEQ_K, 0, 1, S390_MULTIPLEX_SYSCALL));
        s.push(insn(RET_K, 0, 0, RET_ENOSYS));
    }
    let x86_64 = l.audit_arch == libseccomp_sys::SCMP_ARCH_X86_64;
    match (l.native, l.x32) {
        (Some(native), Some(x32)) => {
            s.push(insn(JSET_K, 1, 0, X32_SYSCALL_BIT));
            s.push(insn(JGT_K, 1, 2, native));
            s.push(insn(JGT_K, 0, 1, x32));
        }
        // Only one ABI of x86_64 is named: the other goes straight to the filter.
        (Some(native), None) if x86_64 => {
            s.push(insn(JSET_K, 2, 0, X32_SYSCALL_BIT));
            s.push(insn(JGT_K, 0, 1, native));
        }
        (None, Some(x32)) => {
            s.push(insn(JSET_K, 0, 2, X32_SYSCALL_BIT));
            s.push(insn(JGT_K, 0, 1, x32));
        }
        (Some(native), None) => s.push(insn(JGT_K, 0, 1, native)),
        (None, None) => unreachable!("a limit has at least one ABI"),
    }
    s.push(insn(RET_K, 0, 0, RET_ENOSYS));
    s.push(insn(JA, 0, 0, 0));
    s
}

/// The stub for a profile with these architectures and syscall names, to run before the
/// filter itself: it returns ENOSYS or falls through to the instruction after it.
pub fn stub(archs: &[ScmpArch], names: &[&str]) -> Vec<sock_filter> {
    let limits = limits(archs, names);
    if limits.is_empty() {
        return Vec::new();
    }
    let sections: Vec<Vec<sock_filter>> = limits.iter().map(section).collect();
    // ld arch; per architecture "jeq ARCH,0,1; ja SECTION"; ja FILTER; the sections.
    let dispatch_len = 1 + 2 * limits.len() + 1;
    let total = dispatch_len + sections.iter().map(Vec::len).sum::<usize>();
    let mut program = vec![insn(LD_W_ABS, 0, 0, ARCH)];
    let mut start = dispatch_len;
    for (l, s) in limits.iter().zip(&sections) {
        program.push(insn(JEQ_K, 0, 1, l.audit_arch));
        let at = program.len();
        program.push(insn(JA, 0, 0, (start - at - 1) as u32));
        start += s.len();
    }
    program.push(insn(JA, 0, 0, (total - program.len() - 1) as u32));
    for s in sections {
        program.extend(s);
        let at = program.len() - 1;
        program[at].k = (total - at - 1) as u32;
    }
    program
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A classic BPF interpreter for the opcodes seccomp filters use here, run on
    /// seccomp_data's `nr` and `arch`.
    pub fn run(program: &[sock_filter], nr: u32, arch: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = program[pc];
            pc += 1;
            let jump = |cond: bool| if cond { i.jt } else { i.jf } as usize;
            match i.code {
                LD_W_ABS => {
                    acc = match i.k {
                        NR => nr,
                        ARCH => arch,
                        k => panic!("load of seccomp_data offset {k}"),
                    }
                }
                JA => pc += i.k as usize,
                JEQ_K => pc += jump(acc == i.k),
                JGT_K => pc += jump(acc > i.k),
                JSET_K => pc += jump(acc & i.k != 0),
                RET_K => return i.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const AUDIT_X86_64: u32 = libseccomp_sys::SCMP_ARCH_X86_64;
    const AUDIT_X86: u32 = libseccomp_sys::SCMP_ARCH_X86;

    /// The stub followed by a stand-in filter that allows everything.
    fn with_filter(stub: Vec<sock_filter>) -> Vec<sock_filter> {
        let mut p = stub;
        p.push(insn(RET_K, 0, 0, ALLOW));
        p
    }

    fn nr(name: &str, arch: ScmpArch) -> u32 {
        i32::from(ScmpSyscall::from_name_by_arch(name, arch).unwrap()) as u32
    }

    #[test]
    fn newer_syscalls_get_enosys_per_architecture() {
        let archs = [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32];
        // On x86_64 openat2 is 437 and clone3 435; on i386 openat is 295, clone3 435.
        let p = with_filter(stub(&archs, &["read", "openat", "clone"]));
        let amd64 = |name| nr(name, ScmpArch::X8664);
        assert_eq!(run(&p, amd64("openat"), AUDIT_X86_64), ALLOW);
        assert_eq!(run(&p, amd64("read"), AUDIT_X86_64), ALLOW);
        assert_eq!(run(&p, amd64("clone3"), AUDIT_X86_64), RET_ENOSYS);
        assert_eq!(run(&p, 1000, AUDIT_X86_64), RET_ENOSYS);
        let i386 = |name| nr(name, ScmpArch::X86);
        assert_eq!(run(&p, i386("openat"), AUDIT_X86), ALLOW);
        assert_eq!(run(&p, i386("clone3"), AUDIT_X86), RET_ENOSYS);
        // x32: numbers carry the x32 bit and are checked against x32's own newest.
        let x32 = |name| nr(name, ScmpArch::X32);
        assert_ne!(x32("openat") & X32_SYSCALL_BIT, 0);
        assert_eq!(run(&p, x32("openat"), AUDIT_X86_64), ALLOW);
        assert_eq!(run(&p, x32("clone3"), AUDIT_X86_64), RET_ENOSYS);
        // An architecture the stub does not know goes to the filter (its bad-arch action).
        assert_eq!(run(&p, 1000, libseccomp_sys::SCMP_ARCH_AARCH64), ALLOW);
    }

    #[test]
    fn x86_64_without_x32_leaves_x32_numbers_to_the_filter() {
        let p = with_filter(stub(&[ScmpArch::X8664], &["openat"]));
        assert_eq!(
            run(&p, nr("clone3", ScmpArch::X8664), AUDIT_X86_64),
            RET_ENOSYS
        );
        assert_eq!(run(&p, X32_SYSCALL_BIT | 1000, AUDIT_X86_64), ALLOW);
        let p = with_filter(stub(&[ScmpArch::X32], &["openat"]));
        assert_eq!(
            run(&p, nr("clone3", ScmpArch::X32), AUDIT_X86_64),
            RET_ENOSYS
        );
        // The native arch is always in: openat's x86_64 number is its newest there.
        assert_eq!(run(&p, nr("openat", ScmpArch::X8664), AUDIT_X86_64), ALLOW);
        assert_eq!(
            run(&p, nr("clone3", ScmpArch::X8664), AUDIT_X86_64),
            RET_ENOSYS
        );
    }

    #[test]
    fn no_known_names_means_no_stub() {
        assert!(stub(&[ScmpArch::X8664], &["no_such_syscall"]).is_empty());
        assert!(stub(&[ScmpArch::X8664], &[]).is_empty());
    }

    #[test]
    fn permissive_defaults_and_enosys_defaults_get_no_stub() {
        let profile = |json: &str| serde_json::from_str::<LinuxSeccomp>(json).unwrap();
        assert!(wanted(&profile(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#)));
        assert!(wanted(&profile(
            r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS"}"#
        )));
        assert!(!wanted(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)));
        assert!(!wanted(&profile(r#"{"defaultAction":"SCMP_ACT_LOG"}"#)));
        assert!(!wanted(&profile(r#"{"defaultAction":"SCMP_ACT_TRACE"}"#)));
        assert!(!wanted(&profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38}"#
        )));
    }
}

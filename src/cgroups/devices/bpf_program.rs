//! The cgroup v2 device filter: an emulator state compiled into a
//! BPF_PROG_TYPE_CGROUP_DEVICE program that answers each access as the v1 controller would.

use anyhow::Result;

use super::emulator::{Emulator, ACC_ALL};

// Device types, the low half of access_type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

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

pub(super) fn program(emu: &Emulator) -> Result<Vec<Insn>> {
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

#[cfg(test)]
mod tests {
    use super::super::emulator::test_support::*;
    use super::super::emulator::{Exception, ACC_MKNOD, ACC_READ, ACC_WRITE};
    use super::*;
    use oci_spec::runtime::LinuxDeviceType::B;

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

//! The re-execution of `exec` and `create` (see the module above), done at the ELF entry
//! point, before the C library starts. A berth process that only re-executes itself does
//! nothing else, yet glibc's start-up alone costs it more than half a millisecond on a
//! virtual machine (its CPU feature and cache probes, CPUID instructions that trap to the
//! hypervisor: an empty static glibc program takes 0.9 ms here, 0.3 ms built with musl).
//! So `berth_entry`, the binary's entry point (build.rs), first sees whether the command is
//! `exec` or `create` run from an unsealed binary and, if so, re-executes berth from the
//! read-only overlay exactly as `ensure` does, with raw system calls; anything else (another
//! command, an option it does not know, an overlay that cannot be made) goes on to glibc's
//! `_start` and the usual path, where `ensure` seals as before (with the memfd fallback).
//!
//! Nothing of the C library or of Rust's runtime is ready here: no relocation of glibc's
//! IFUNCs (memcpy, memset), no thread-local storage, no allocator, no panic machinery. So
//! this code is inlined into one function that calls nothing (integration/install.rs checks
//! the release binary), copies nothing by value, indexes nothing that could panic, and makes
//! its system calls itself. Its byte loops read or write through volatile accesses, which the
//! compiler cannot turn into calls of memcpy, memset or memcmp.

use core::arch::asm;
use core::mem::MaybeUninit;

// The kernel (or the dynamic loader) enters with the stack pointer at argc, 16-byte
// aligned, and in rdx a function for atexit that `_start` must get back unchanged.
core::arch::global_asm!(
    ".globl berth_entry",
    ".type berth_entry,@function",
    "berth_entry:",
    "mov rdi, rsp",
    "push rdx",
    "sub rsp, 8",
    "call {before_libc}",
    "add rsp, 8",
    "pop rdx",
    "jmp _start",
    before_libc = sym before_libc,
);

/// The variable `ensure` reads in the re-executed berth (the same name as there).
const SEALED_FROM: &[u8] = b"_BERTH_SEALED_FROM=";
const MAX_ENV: usize = 1024;
const PATH_MAX: usize = 4096;

/// Returns only when it did not re-execute berth.
extern "C" fn before_libc(stack: *const usize) {
    // SAFETY: the process's initial stack as the ELF ABI lays it out: argc, then argc
    // pointers and a NULL (argv), then the environment's pointers and a NULL.
    unsafe {
        let argc = *stack;
        let argv = stack.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        reexec_sealed(argc, argv, envp);
    }
}

#[inline(always)]
unsafe fn reexec_sealed(argc: usize, argv: *const *const u8, envp: *const *const u8) {
    if !wants_sealed_binary(argc, argv) {
        return;
    }
    // Re-executed already (or asked not to be): the usual path decides.
    let mut envc = 0;
    loop {
        let e = *envp.add(envc);
        if e.is_null() {
            break;
        }
        if starts_with(e, SEALED_FROM) {
            return;
        }
        envc += 1;
    }
    if envc + 2 > MAX_ENV {
        return;
    }
    // A binary already sealed in any way: the usual path says which.
    let mut fs = MaybeUninit::<libc::statfs64>::uninit();
    if syscall(
        libc::SYS_statfs,
        c"/proc/self/exe".as_ptr() as usize,
        fs.as_mut_ptr() as usize,
        0,
        0,
        0,
    ) < 0
    {
        return;
    }
    let fs_type = (*fs.as_ptr()).f_type;
    use super::{
        EROFS_SUPER_MAGIC_V1, HUGETLBFS_MAGIC, OVERLAYFS_SUPER_MAGIC, SQUASHFS_MAGIC, TMPFS_MAGIC,
    };
    if matches!(
        fs_type,
        OVERLAYFS_SUPER_MAGIC
            | SQUASHFS_MAGIC
            | EROFS_SUPER_MAGIC_V1
            | TMPFS_MAGIC
            | HUGETLBFS_MAGIC
    ) {
        return;
    }

    let mut path = MaybeUninit::<[u8; PATH_MAX]>::uninit();
    let path = path.as_mut_ptr() as *mut u8;
    let len = syscall(
        libc::SYS_readlink,
        c"/proc/self/exe".as_ptr() as usize,
        path as usize,
        PATH_MAX - 1,
        0,
        0,
    );
    if len <= 0 || len as usize >= PATH_MAX - 1 {
        return;
    }
    let len = len as usize;
    if ends_with(path, len, b" (deleted)") {
        return;
    }
    // The directory and the name in it.
    let mut slash = len;
    while slash > 0 && *path.add(slash - 1) != b'/' {
        slash -= 1;
    }
    if slash <= 1 || slash == len {
        return;
    }
    let dir_len = slash - 1;
    let name = path.add(slash);
    core::ptr::write_volatile(path.add(len), 0);

    // lowerdir=DIR:/dev, `\` and `:` escaped; a comma would split the option on kernels
    // that parse it the legacy way.
    let mut lower = MaybeUninit::<[u8; 2 * PATH_MAX + 8]>::uninit();
    let lower = lower.as_mut_ptr() as *mut u8;
    let mut n = 0;
    for i in 0..dir_len {
        let c = *path.add(i);
        if c == b',' {
            return;
        }
        if c == b'\\' || c == b':' {
            core::ptr::write_volatile(lower.add(n), b'\\');
            n += 1;
        }
        core::ptr::write_volatile(lower.add(n), c);
        n += 1;
    }
    for &c in b":/dev\0" {
        core::ptr::write_volatile(lower.add(n), c);
        n += 1;
    }

    let context = syscall(
        libc::SYS_fsopen,
        c"overlay".as_ptr() as usize,
        libc::FSOPEN_CLOEXEC as usize,
        0,
        0,
        0,
    );
    if context < 0 {
        return;
    }
    let context = context as usize;
    let mount = if fsconfig_string(context, c"lowerdir", lower) < 0
        || fsconfig_string(context, c"xino", c"off".as_ptr() as *const u8) < 0
        || syscall(
            libc::SYS_fsconfig,
            context,
            libc::FSCONFIG_CMD_CREATE as usize,
            0,
            0,
            0,
        ) < 0
    {
        -1
    } else {
        let attrs = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
        syscall(
            libc::SYS_fsmount,
            context,
            libc::FSMOUNT_CLOEXEC as usize,
            attrs as usize,
            0,
            0,
        )
    };
    syscall(libc::SYS_close, context, 0, 0, 0, 0);
    if mount < 0 {
        return;
    }
    let mount = mount as usize;

    // The same file as the one running, not one put there since.
    let mut running = MaybeUninit::<libc::statx>::uninit();
    let mut there = MaybeUninit::<libc::statx>::uninit();
    let mask = libc::STATX_BASIC_STATS as usize;
    let same = syscall(
        libc::SYS_statx,
        libc::AT_FDCWD as usize,
        c"/proc/self/exe".as_ptr() as usize,
        0,
        mask,
        running.as_mut_ptr() as usize,
    ) == 0
        && syscall(
            libc::SYS_statx,
            mount,
            name as usize,
            libc::AT_SYMLINK_NOFOLLOW as usize,
            mask,
            there.as_mut_ptr() as usize,
        ) == 0
        && {
            let (a, b) = (&*running.as_ptr(), &*there.as_ptr());
            a.stx_ino == b.stx_ino
                && a.stx_size == b.stx_size
                && a.stx_mtime.tv_sec == b.stx_mtime.tv_sec
                && a.stx_mtime.tv_nsec == b.stx_mtime.tv_nsec
        };
    if !same {
        syscall(libc::SYS_close, mount, 0, 0, 0, 0);
        return;
    }

    // _BERTH_SEALED_FROM=DEV:INO, DEV encoded as glibc's makedev (what std's metadata gives).
    let stx = &*running.as_ptr();
    let (major, minor) = (stx.stx_dev_major as u64, stx.stx_dev_minor as u64);
    let dev = ((major & 0xffff_f000) << 32)
        | ((major & 0x0000_0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0x0000_00ff);
    let mut var = MaybeUninit::<[u8; 64]>::uninit();
    let var = var.as_mut_ptr() as *mut u8;
    let mut n = 0;
    for &c in SEALED_FROM {
        core::ptr::write_volatile(var.add(n), c);
        n += 1;
    }
    n = put_decimal(var, n, dev);
    core::ptr::write_volatile(var.add(n), b':');
    n = put_decimal(var, n + 1, stx.stx_ino);
    core::ptr::write_volatile(var.add(n), 0);

    let mut env = MaybeUninit::<[*const u8; MAX_ENV]>::uninit();
    let env = env.as_mut_ptr() as *mut *const u8;
    for i in 0..envc {
        core::ptr::write_volatile(env.add(i), *envp.add(i));
    }
    core::ptr::write_volatile(env.add(envc), var as *const u8);
    core::ptr::write_volatile(env.add(envc + 1), core::ptr::null());
    syscall(
        libc::SYS_execveat,
        mount,
        name as usize,
        argv as usize,
        env as usize,
        0,
    );
    // (Refused: the usual path tries again, and says why.)
    syscall(libc::SYS_close, mount, 0, 0, 0, 0);
}

#[inline(always)]
unsafe fn fsconfig_string(context: usize, key: &core::ffi::CStr, value: *const u8) -> isize {
    let set = libc::FSCONFIG_SET_STRING as usize;
    syscall(
        libc::SYS_fsconfig,
        context,
        set,
        key.as_ptr() as usize,
        value as usize,
        0,
    )
}

/// Whether argv is `berth [global options] exec|create ...`, with only the global options
/// this knows (any other form goes the usual way).
#[inline(always)]
unsafe fn wants_sealed_binary(argc: usize, argv: *const *const u8) -> bool {
    let mut i = 1;
    while i < argc {
        let a = *argv.add(i);
        if equals(a, b"exec\0") || equals(a, b"create\0") {
            return true;
        }
        if equals(a, b"--root\0") || equals(a, b"--log\0") || equals(a, b"--log-format\0") {
            i += 2;
        } else if equals(a, b"--debug\0")
            || equals(a, b"--systemd-cgroup\0")
            || starts_with(a, b"--root=")
            || starts_with(a, b"--log=")
            || starts_with(a, b"--log-format=")
        {
            i += 1;
        } else {
            return false;
        }
    }
    false
}

/// Whether the NUL-terminated `s` starts with `prefix` (which holds no NUL, or ends in the
/// one that makes it a whole-string comparison).
#[inline(always)]
unsafe fn starts_with(s: *const u8, prefix: &[u8]) -> bool {
    let mut i = 0;
    while i < prefix.len() {
        // (A shorter `s` stops at its NUL, which differs from any byte of `prefix` but its
        // own final NUL.)
        if core::ptr::read_volatile(s.add(i)) != *prefix.get_unchecked(i) {
            return false;
        }
        i += 1;
    }
    true
}

#[inline(always)]
unsafe fn equals(s: *const u8, word_and_nul: &[u8]) -> bool {
    starts_with(s, word_and_nul)
}

#[inline(always)]
unsafe fn ends_with(s: *const u8, len: usize, suffix: &[u8]) -> bool {
    if len < suffix.len() {
        return false;
    }
    let mut i = 0;
    while i < suffix.len() {
        if core::ptr::read_volatile(s.add(len - suffix.len() + i)) != *suffix.get_unchecked(i) {
            return false;
        }
        i += 1;
    }
    true
}

/// Writes `v` in decimal at `buf[at..]`; returns the index past it.
#[inline(always)]
unsafe fn put_decimal(buf: *mut u8, at: usize, mut v: u64) -> usize {
    let mut digits = 1;
    let mut rest = v / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    let mut i = at + digits;
    while i > at {
        i -= 1;
        core::ptr::write_volatile(buf.add(i), b'0' + (v % 10) as u8);
        v /= 10;
    }
    at + digits
}

/// A system call made directly (glibc's wrapper would set errno, in thread-local storage
/// that does not exist yet): returns the kernel's result, -errno on failure.
#[inline(always)]
unsafe fn syscall(
    nr: libc::c_long,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    asm!(
        "syscall",
        inlateout("rax") nr as isize => ret,
        in("rdi") a1,
        in("rsi") a2,
        in("rdx") a3,
        in("r10") a4,
        in("r8") a5,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    ret
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_variable_is_the_one_ensure_reads() {
        assert_eq!(
            super::SEALED_FROM,
            format!("{}=", super::super::SEALED_FROM).as_bytes()
        );
    }
}

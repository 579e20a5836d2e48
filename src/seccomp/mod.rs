//! `linux.seccomp`, built with libseccomp: the default action and errno, architectures,
//! flags, and per-syscall rules with argument comparisons. Syscall names this libseccomp
//! does not know are skipped, as runc does. The filter is built during setup (so a bad
//! profile fails `create`) and loaded as late as the config allows: libseccomp's program with
//! runc's -ENOSYS stub in front (enosys.rs), installed with seccomp(2).

mod enosys;

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

/// `const $name: [$ty; N]` with every variant of `$ty`, and a match that stops compiling when
/// the enum gains a variant the list lacks, so the lists `berth features` prints stay whole.
macro_rules! every_variant {
    ($name:ident, $check:ident, $ty:ident: $($v:ident),+ $(,)?) => {
        pub const $name: &[$ty] = &[$($ty::$v),+];
        #[allow(dead_code)]
        fn $check(x: $ty) {
            match x {
                $($ty::$v)|+ => {}
            }
        }
    };
}

every_variant!(ACTIONS, _all_actions, LinuxSeccompAction:
    ScmpActKill, ScmpActKillThread, ScmpActKillProcess, ScmpActTrap, ScmpActErrno,
    ScmpActNotify, ScmpActTrace, ScmpActLog, ScmpActAllow);
every_variant!(OPERATORS, _all_operators, LinuxSeccompOperator:
    ScmpCmpNe, ScmpCmpLt, ScmpCmpLe, ScmpCmpEq, ScmpCmpGe, ScmpCmpGt, ScmpCmpMaskedEq);
every_variant!(FLAGS, _all_flags, LinuxSeccompFilterFlag:
    SeccompFilterFlagLog, SeccompFilterFlagTsync, SeccompFilterFlagSpecAllow,
    SeccompFilterFlagWaitKillableRecv);
every_variant!(SPEC_ARCHS, _all_archs, Arch:
    ScmpArchNative, ScmpArchX86, ScmpArchX86_64, ScmpArchX32, ScmpArchArm, ScmpArchAarch64,
    ScmpArchMips, ScmpArchMips64, ScmpArchMips64n32, ScmpArchMipsel, ScmpArchMipsel64,
    ScmpArchMipsel64n32, ScmpArchPpc, ScmpArchPpc64, ScmpArchPpc64le, ScmpArchS390,
    ScmpArchS390x, ScmpArchParisc, ScmpArchParisc64, ScmpArchRiscv64, ScmpArchLoongarch64,
    ScmpArchM68k, ScmpArchSh, ScmpArchSheb);

/// The architectures of the spec that a filter built here can hold: known to the linked
/// libseccomp and of the native byte order (libseccomp refuses to mix them), each added to a
/// new filter as `create` adds it. The others fail `create`.
pub fn known_archs() -> Vec<Arch> {
    SPEC_ARCHS
        .iter()
        .copied()
        .filter(|a| {
            let Ok(arch) = ScmpArch::from_str(&spec_name(a)) else {
                return false;
            };
            ScmpFilterContext::new(ScmpAction::Allow)
                .is_ok_and(|mut ctx| ctx.add_arch(arch).is_ok())
        })
        .collect()
}

/// The filter flags that the linked libseccomp and this kernel accept: each one set on a new
/// filter the way `create` sets it (libseccomp probes the kernel for the flag).
pub fn supported_flags() -> Vec<LinuxSeccompFilterFlag> {
    FLAGS
        .iter()
        .copied()
        .filter(|f| {
            ScmpFilterContext::new(ScmpAction::Allow)
                .is_ok_and(|mut ctx| set_flag(&mut ctx, *f).is_ok())
        })
        .collect()
}

fn spec_allow_supported() -> bool {
    ScmpFilterContext::new(ScmpAction::Allow).is_ok_and(|mut ctx| {
        set_flag(&mut ctx, LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow).is_ok()
    })
}

fn set_flag(ctx: &mut ScmpFilterContext, flag: LinuxSeccompFilterFlag) -> Result<()> {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(drop),
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(drop),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(drop),
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            ctx.set_ctl_waitkill(true).map(drop)
        }
    }
    .map_err(|e| match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            anyhow::anyhow!("{e} (needs libseccomp 2.6, API level 7, and Linux 5.19)")
        }
        _ => e.into(),
    })
}

fn action(a: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    let errno = errno_ret.unwrap_or(libc::EPERM as u32);
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // As runc: `value` is the mask, `valueTwo` what the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

/// The spec's name for an enum value (e.g. "SCMP_ARCH_X86_64"), for lookups and messages.
pub fn spec_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A filter ready to install: the BPF program and the seccomp(2) flags the profile asks for.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "Filter({} instructions, flags {:#x})",
            self.program.len(),
            self.flags
        )
    }
}

/// Builds the filter described by `seccomp`: libseccomp's program, after the -ENOSYS stub
/// where runc would put one.
pub fn build(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let ctx = build_context(seccomp)?;
    let mut program = Vec::new();
    if enosys::wanted(seccomp) {
        let archs: Vec<ScmpArch> = seccomp
            .architectures()
            .iter()
            .flatten()
            .filter_map(|a| ScmpArch::from_str(&spec_name(a)).ok())
            .collect();
        let names: Vec<&str> = seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().iter().map(String::as_str))
            .collect();
        program = enosys::stub(&archs, &names);
    }
    program.extend(export(&ctx)?);
    if program.len() > libc::BPF_MAXINSNS as usize {
        bail!(
            "config.json: linux.seccomp: the filter takes {} BPF instructions, more than the kernel's {}",
            program.len(),
            libc::BPF_MAXINSNS
        );
    }
    Ok(Filter {
        program,
        flags: filter_flags(seccomp),
    })
}

/// The seccomp(2) flags: the profile's, and a listener for an agent when it uses one. A
/// profile with no `flags` at all (not an empty list) gets SPEC_ALLOW where the kernel has
/// it, as runc gives it: else a filter alone would turn on the kernel's speculative store
/// bypass mitigation for the container (with `spec_store_bypass_disable=seccomp`), a cost the
/// profile did not ask for.
pub fn filter_flags(seccomp: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    if seccomp.flags().is_none() && spec_allow_supported() {
        flags |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    }
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            // Accepted and not passed, as runc: init is single-threaded when it loads the
            // filter, so there is no other thread to synchronise.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    if uses_notify(seccomp) {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    flags
}

/// libseccomp's program for `ctx`, as the kernel takes it.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    use std::io::{Read, Seek};
    let fd = crate::sys::memfd_create(c"berth-seccomp", libc::MFD_CLOEXEC)
        .context("linux.seccomp: memfd_create for the filter")?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)
        .context("linux.seccomp: export the filter")?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("linux.seccomp: read the exported filter")?;
    let insn = std::mem::size_of::<libc::sock_filter>();
    Ok(bytes
        .chunks_exact(insn)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// The libseccomp filter described by `seccomp`.
fn build_context(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    check_notify(seccomp)?;
    let mut ctx = ScmpFilterContext::new(default).context("linux.seccomp: create the filter")?;
    // libseccomp would set no_new_privs itself; that is the config's decision.
    ctx.set_ctl_nnp(false)
        .context("linux.seccomp: keep no_new_privs as configured")?;
    for (i, arch) in seccomp.architectures().iter().flatten().enumerate() {
        let name = spec_name(arch);
        let arch = ScmpArch::from_str(&name).map_err(|_| {
            anyhow::anyhow!(
                "config.json: linux.seccomp.architectures[{i}]: unknown architecture {name}"
            )
        })?;
        ctx.add_arch(arch)
            .with_context(|| format!("linux.seccomp.architectures[{i}]: add {name}"))?;
    }
    for flag in seccomp.flags().iter().flatten() {
        set_flag(&mut ctx, *flag)
            .with_context(|| format!("config.json: linux.seccomp.flags: {}", spec_name(flag)))?;
    }
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        let args = rule.args().clone().unwrap_or_default();
        if let Some((j, a)) = args.iter().enumerate().find(|(_, a)| a.index() > 5) {
            bail!(
                "config.json: linux.seccomp.syscalls[{i}].args[{j}].index: {} is out of range (a syscall has arguments 0 to 5)",
                a.index()
            );
        }
        let conditions: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        // Comparisons on the same argument cannot share a rule: one rule each (runc alike).
        let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let groups: Vec<Vec<ScmpArgCompare>> = if indexes.len() < args.len() {
            conditions.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conditions]
        };
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                log::debug!("linux.seccomp.syscalls[{i}]: {name} is unknown here, skipped");
                continue;
            };
            for conds in &groups {
                ctx.add_rule_conditional(act, syscall, conds)
                    .with_context(|| {
                        format!("config.json: linux.seccomp.syscalls[{i}]: rule for {name}")
                    })?;
            }
        }
    }
    Ok(ctx)
}

/// Whether the profile sends any syscall to a seccomp agent.
pub fn uses_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == LinuxSeccompAction::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Init hands the notify fd to `create` with sendmsg after the filter is loaded, so that
/// syscall must not wait for an agent that has not got the fd yet; and init's own write of
/// the start gate (and of an error for `start`) must not be the agent's to answer, which is
/// why runc refuses `write` too, in the same words. And an agent needs somewhere to be
/// reached.
fn check_notify(seccomp: &LinuxSeccomp) -> Result<()> {
    if !uses_notify(seccomp) {
        return Ok(());
    }
    if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
        bail!("config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action (init's own syscalls would wait for the agent)");
    }
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        if rule.action() != LinuxSeccompAction::ScmpActNotify {
            continue;
        }
        if rule.names().iter().any(|n| n == "sendmsg") {
            bail!("config.json: linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for sendmsg (berth passes the notify fd with it)");
        }
        if rule.names().iter().any(|n| n == "write") {
            bail!("config.json: linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for the write syscall (init writes the start gate under the filter)");
        }
    }
    match seccomp.listener_path() {
        Some(p) if p.is_absolute() => Ok(()),
        Some(p) => bail!(
            "config.json: linux.seccomp.listenerPath: {} must be an absolute path",
            p.display()
        ),
        None => bail!(
            "config.json: linux.seccomp.listenerPath: must be set when SCMP_ACT_NOTIFY is used"
        ),
    }
}

/// Sends the container process state and the notify fd to the agent at `listenerPath`, as
/// the runtime-spec and runc do: one message, JSON body, the fd as SCM_RIGHTS.
pub fn send_to_listener(
    seccomp: &LinuxSeccomp,
    state: oci_spec::runtime::State,
    pid: i32,
    notify_fd: std::os::fd::BorrowedFd,
) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let path = seccomp
        .listener_path()
        .as_ref()
        .context("config.json: linux.seccomp.listenerPath: must be set")?;
    let body = oci_spec::runtime::ContainerProcessStateBuilder::default()
        .version(state.version().clone())
        .fds(vec![oci_spec::runtime::SECCOMP_FD_NAME.to_string()])
        .pid(pid)
        .metadata(seccomp.listener_metadata().clone().unwrap_or_default())
        .state(state)
        .build()?;
    let body = serde_json::to_vec(&body)?;
    let sock = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!(
            "config.json: linux.seccomp.listenerPath: failed to connect with seccomp agent at {}",
            path.display()
        )
    })?;
    let fds = [notify_fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(&body)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .with_context(|| {
        format!(
            "linux.seccomp.listenerPath: send the notify fd to {}",
            path.display()
        )
    })?;
    Ok(())
}

impl Filter {
    /// Installs the filter on the calling process; with an agent in the profile, returns the
    /// notify fd. Without no_new_privs this needs CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        crate::sys::seccomp_set_mode_filter(self.flags, &self.program)
            .context("linux.seccomp: load the filter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn builds_a_profile_with_every_operator() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls":[
                  {"names":["mkdir","mkdirat","no_such_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                  {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_NE"},{"index":1,"value":2,"op":"SCMP_CMP_LT"},
                    {"index":2,"value":3,"op":"SCMP_CMP_LE"},{"index":3,"value":4,"op":"SCMP_CMP_GE"},
                    {"index":4,"value":5,"op":"SCMP_CMP_GT"},{"index":5,"value":255,"valueTwo":8,"op":"SCMP_CMP_MASKED_EQ"}]},
                  {"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
                  {"names":["uname"],"action":"SCMP_ACT_KILL_PROCESS"},
                  {"names":["getcwd"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        build(&p).unwrap();
    }

    fn profile_with(arch: Option<Arch>, flag: Option<LinuxSeccompFilterFlag>) -> LinuxSeccomp {
        let mut p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        p.set_architectures(arch.map(|a| vec![a]));
        p.set_flags(flag.map(|f| vec![f]));
        p
    }

    #[test]
    fn listed_archs_and_flags_are_what_build_accepts() {
        let known = known_archs();
        assert!(known.contains(&Arch::ScmpArchX86_64) && known.contains(&Arch::ScmpArchX86));
        for a in SPEC_ARCHS {
            let built = build(&profile_with(Some(*a), None));
            assert_eq!(
                built.is_ok(),
                known.contains(a),
                "{a:?}: build says {:?}",
                built.err()
            );
        }
        let supported = supported_flags();
        assert!(supported.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagTsync));
        for f in FLAGS {
            let built = build(&profile_with(None, Some(*f)));
            assert_eq!(
                built.is_ok(),
                supported.contains(f),
                "{f:?}: build says {:?}",
                built.err()
            );
        }
    }

    #[test]
    fn every_listed_action_and_operator_builds() {
        for (i, a) in ACTIONS.iter().enumerate() {
            let rule = serde_json::json!({"names": ["mkdir"], "action": a, "errnoRet": 1});
            let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent",
                "syscalls": [rule]}))
            .unwrap();
            build(&p).unwrap_or_else(|e| panic!("ACTIONS[{i}] {a:?}: {e:#}"));
        }
        for op in OPERATORS {
            let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}]}))
            .unwrap();
            build(&p).unwrap_or_else(|e| panic!("{op:?}: {e:#}"));
        }
    }

    #[test]
    fn notify_needs_an_absolute_listener_path() {
        let rule = r#""syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]"#;
        let e = build(&profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",{rule}}}"#
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.seccomp.listenerPath: must be set"), "{e}");
        let e = build(&profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"agent.sock",{rule}}}"#
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be an absolute path"), "{e}");
        build(&profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",{rule}}}"#
        )))
        .unwrap();
    }

    #[test]
    fn notify_is_refused_where_init_would_wait_on_itself() {
        let e = build(&profile(
            r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/a"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.seccomp.defaultAction"), "{e}");
        let e = build(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","syscalls":[{"names":["sendmsg"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("linux.seccomp.syscalls[0]") && e.contains("sendmsg"),
            "{e}"
        );
        let e = build(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"},{"names":["close","write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "linux.seccomp.syscalls[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_profiles_fail_to_parse_with_the_field() {
        let e = crate::spec::parse(
            r#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_BOGUS"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.seccomp.defaultAction"), "{e}");
        let e = crate::spec::parse(
            r#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.seccomp.architectures[0]"), "{e}");
    }
}

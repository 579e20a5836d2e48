//! `linux.seccomp`, built with libseccomp: the default action and errno, architectures,
//! flags, and per-syscall rules with argument comparisons. Syscall names this libseccomp
//! does not know are skipped, as runc does. The filter is built during setup (so a bad
//! profile fails `create`) and loaded as late as the config allows.

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

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
fn spec_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Builds the filter described by `seccomp`.
pub fn build(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    if default == ScmpAction::Notify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
    {
        bail!("config.json: linux.seccomp: SCMP_ACT_NOTIFY (seccomp agents via listenerPath) is not supported by berth yet");
    }
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
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        }
        .with_context(|| format!("linux.seccomp.flags: {}", spec_name(flag)))?;
    }
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        let args = rule.args().clone().unwrap_or_default();
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

/// Installs the filter on the calling process.
pub fn load(ctx: &ScmpFilterContext) -> Result<()> {
    ctx.load().context("linux.seccomp: load the filter")
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

    #[test]
    fn notify_is_refused_by_name() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let e = build(&p).unwrap_err().to_string();
        assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
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

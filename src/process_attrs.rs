//! Per-process kernel attributes from the config: `process.scheduler` (sched_setattr),
//! `process.ioPriority` (ioprio_set), `linux.personality`, and the LSM settings, which are
//! refused where this host has no such LSM (as runc refuses a SELinux label then).

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler, Spec,
};

/// struct sched_attr (include/uapi/linux/sched/types.h), version 1 with utilization clamps.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

fn policy(p: LinuxSchedulerPolicy) -> u32 {
    match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

fn flag(f: &LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// runc's checks of `process.scheduler`, by field, before anything is made.
pub fn validate_scheduler(s: &Scheduler) -> Result<()> {
    use LinuxSchedulerPolicy::*;
    let policy = *s.policy();
    let nice = s.nice().unwrap_or(0);
    if matches!(policy, SchedOther | SchedBatch) && !(-20..=19).contains(&nice) {
        bail!("config.json: process.scheduler.nice: {nice} is not in -20..19 for {policy:?}");
    }
    if s.priority().unwrap_or(0) != 0 && !matches!(policy, SchedFifo | SchedRr) {
        bail!(
            "config.json: process.scheduler.priority: can only be given for SCHED_FIFO or SCHED_RR"
        );
    }
    let deadline_params = [s.runtime(), s.deadline(), s.period()];
    if policy != SchedDeadline && deadline_params.iter().any(|v| v.unwrap_or(0) != 0) {
        bail!("config.json: process.scheduler: runtime, deadline and period can only be given for SCHED_DEADLINE");
    }
    Ok(())
}

/// sched_setattr(2) of `s` for this process. `cpuset_limited`: the container's cgroup has
/// `linux.resources.cpu.cpus`, with which the kernel refuses some policies (EPERM: the
/// affinity does not span every CPU), said as runc says it.
pub fn set_scheduler(s: &Scheduler, cpuset_limited: bool) -> Result<()> {
    let mut attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy(*s.policy()),
        flags: s.flags().iter().flatten().map(flag).fold(0, |a, b| a | b),
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: sched_setattr reads `attr`, whose size field matches the struct we pass.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &mut attr as *mut SchedAttr, 0) };
    match Errno::result(r) {
        Ok(_) => Ok(()),
        Err(Errno::EPERM) if cpuset_limited => bail!(
            "process.scheduler: process scheduler can't be used together with AllowedCPUs (linux.resources.cpu.cpus)"
        ),
        Err(e) => Err(e).context("process.scheduler: sched_setattr"),
    }
}

pub fn set_io_priority(p: &LinuxIOPriority) -> Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        bail!(
            "config.json: process.ioPriority.priority: {} is not in 0..7",
            p.priority()
        );
    }
    let value = (class << 13) | p.priority() as i32;
    // SAFETY: ioprio_set takes three integers and changes only this process's I/O priority.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    Errno::result(r)
        .map(drop)
        .context("process.ioPriority: ioprio_set")
}

pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    if let Some(f) = p.flags().iter().flatten().next() {
        bail!("config.json: linux.personality.flags: {f:?} is not supported (runc supports none either)");
    }
    let domain = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality(2) takes a flag word; no memory is involved.
    let r = unsafe { libc::personality(domain) };
    Errno::result(r)
        .map(drop)
        .context("linux.personality: personality")
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok()
}

/// Refuses LSM settings this host cannot apply, before anything is created.
pub fn check_lsm(spec: &Spec) -> Result<()> {
    match spec.process().as_ref() {
        Some(p) => check_lsm_process(p),
        None => Ok(()),
    }
}

/// `check_lsm` for one process (also an exec'd one).
pub fn check_lsm_process(process: &oci_spec::runtime::Process) -> Result<()> {
    let process = Some(process);
    if let Some(profile) = process
        .and_then(|p| p.apparmor_profile().as_deref())
        .filter(|p| !p.is_empty())
    {
        if !apparmor_enabled() {
            bail!("config.json: process.apparmorProfile: {profile:?} is set, but AppArmor is not enabled on this host");
        }
    }
    if let Some(label) = process
        .and_then(|p| p.selinux_label().as_deref())
        .filter(|l| !l.is_empty())
    {
        if !selinux_enabled() {
            bail!("config.json: process.selinuxLabel: {label:?} is set, but SELinux is disabled or not supported on this host");
        }
    }
    Ok(())
}

/// Asks AppArmor to confine the next execve with `profile`.
pub fn apparmor_exec_profile(profile: &str) -> Result<()> {
    // Through berth's own procfs: the container's /proc could be anything by now.
    let proc = crate::procfs::Procfs::open().context("process.apparmorProfile")?;
    let data = format!("exec {profile}");
    match proc.write("self/attr/apparmor/exec", &data) {
        Err(_) => proc.write("self/attr/exec", &data),
        ok => ok,
    }
    .context("process.apparmorProfile")
}

/// Asks SELinux to label the next execve with `label`.
pub fn selinux_exec_label(label: &str) -> Result<()> {
    crate::procfs::Procfs::open()
        .and_then(|proc| proc.write("self/attr/exec", label))
        .context("process.selinuxLabel")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(json: &str) -> Scheduler {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scheduler_fields_are_checked_as_runc_does() {
        let ok = [
            r#"{"policy":"SCHED_BATCH","nice":19}"#,
            r#"{"policy":"SCHED_FIFO","priority":10}"#,
            r#"{"policy":"SCHED_DEADLINE","runtime":42000,"deadline":100000,"period":1000000}"#,
        ];
        for s in ok {
            validate_scheduler(&scheduler(s)).unwrap();
        }
        let err = |s: &str| validate_scheduler(&scheduler(s)).unwrap_err().to_string();
        assert!(err(r#"{"policy":"SCHED_OTHER","nice":20}"#).contains("process.scheduler.nice"));
        assert!(
            err(r#"{"policy":"SCHED_BATCH","priority":1}"#).contains("process.scheduler.priority")
        );
        assert!(err(r#"{"policy":"SCHED_RR","runtime":1}"#).contains("SCHED_DEADLINE"));
    }
}

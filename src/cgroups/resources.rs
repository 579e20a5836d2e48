//! `linux.resources` written to the container's cgroup files, on v1 (one directory per
//! hierarchy) and v2 (one directory; v1-style values translated the way runc does). Every
//! value goes to one file; a value this host cannot take is an error naming the resource and
//! the file, never silently dropped.

use std::fmt::Display;
use std::path::PathBuf;

use super::placement::{Dir, Placement};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};

/// The container's cgroup, as the files its resources are written to.
pub struct Cgroup<'a> {
    placement: &'a Placement,
    v2: bool,
}

impl<'a> Cgroup<'a> {
    pub fn new(placement: &'a Placement) -> Cgroup<'a> {
        Cgroup {
            placement,
            v2: placement.is_v2(),
        }
    }

    /// The directory holding `file`: its controller's (the name up to the first dot, e.g.
    /// memory for memory.max); the cgroup2 one for cgroup.* core files.
    fn dir_of(&self, file: &str) -> Option<&'a Dir> {
        match file.split('.').next().unwrap_or(file) {
            "cgroup" => self.placement.v2_index().map(|i| &self.placement.dirs[i]),
            controller => self.placement.dir_of(controller),
        }
    }

    pub fn path_of(&self, file: &str) -> Option<PathBuf> {
        self.dir_of(file).map(|d| d.path.join(file))
    }

    /// Whether this cgroup has `file` (a controller's optional file, e.g. io.bfq.weight).
    fn has(&self, file: &str) -> bool {
        self.path_of(file).is_some_and(|p| p.exists())
    }

    pub fn read(&self, file: &str) -> Option<String> {
        crate::sys::read_virtual(self.path_of(file)?)
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Writes `value` to `file`, or fails naming `what` (the config field) and the file.
    pub fn write(&self, what: &str, file: &str, value: impl Display) -> Result<()> {
        let value = value.to_string();
        let missing = || {
            anyhow!(
                "linux.resources.{what}: this host has no {file} (controller not mounted or not enabled{})",
                if self.v2 { " for this cgroup" } else { "" }
            )
        };
        let path = self.path_of(file).ok_or_else(missing)?;
        // Opened without O_CREAT: a file the kernel does not offer is no file to make.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
            r => r.with_context(|| {
                format!(
                    "linux.resources.{what}: write {value:?} to {}",
                    path.display()
                )
            }),
        }
    }
}

/// Applies every resource in `r`. `updating` is set by `berth update` (checkBeforeUpdate).
pub fn apply(placement: &Placement, r: &LinuxResources, updating: bool) -> Result<()> {
    let cg = Cgroup::new(placement);
    if let Some(m) = r.memory() {
        memory(&cg, m, updating)?;
    }
    if let Some(c) = r.cpu() {
        cpu(&cg, c)?;
    }
    if let Some(p) = r.pids() {
        // 0 is 1, as runc has it since systemd refuses TasksMax=0: a config means the same
        // with either driver (the pids cgroup behaves alike for both). Below 0 is no limit.
        let limit = match p.limit() {
            0 => "1".to_string(),
            l if l > 0 => l.to_string(),
            _ => "max".to_string(),
        };
        cg.write("pids.limit", "pids.max", limit)?;
    }
    if let Some(b) = r.block_io() {
        block_io(&cg, b)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let what = format!("hugepageLimits[{i}] ({})", h.page_size());
        // A hybrid host may keep hugetlb on its cgroup2 hierarchy only (as this project's do).
        let file = match cg.placement.dir_of("hugetlb").is_some_and(|d| d.v2) {
            true => format!("hugetlb.{}.max", h.page_size()),
            false => format!("hugetlb.{}.limit_in_bytes", h.page_size()),
        };
        cg.write(&what, &file, h.limit())?;
    }
    if let Some(n) = r.network() {
        if cg.v2 {
            bail!("linux.resources.network: net_cls and net_prio exist only on cgroup v1; this host is cgroup v2");
        }
        if let Some(id) = n.class_id() {
            cg.write("network.classID", "net_cls.classid", id)?;
        }
        for p in n.priorities().iter().flatten() {
            let line = format!("{} {}", p.name(), p.priority());
            cg.write("network.priorities", "net_prio.ifpriomap", line)?;
        }
    }
    for (device, limit) in r.rdma().iter().flatten() {
        let mut line = device.clone();
        if let Some(h) = limit.hca_handles() {
            line += &format!(" hca_handle={h}");
        }
        if let Some(o) = limit.hca_objects() {
            line += &format!(" hca_object={o}");
        }
        cg.write(&format!("rdma[{device}]"), "rdma.max", line)?;
    }
    if let Some(unified) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        unified_files(placement, unified)?;
    }
    Ok(())
}

/// Refuses `linux.resources.unified` unless the container's cgroup is a pure cgroup v2 one,
/// as runc (checked before anything is made).
pub fn check_unified(
    placement: &Placement,
    unified: &std::collections::HashMap<String, String>,
) -> Result<()> {
    if !unified.is_empty() && !placement.is_v2() {
        bail!("linux.resources.unified: invalid configuration: cannot use unified on cgroup v1");
    }
    Ok(())
}

/// The first resource `r` sets a limit for (device rules are not limits: runc's rootless
/// mode goes without them too).
pub fn first_limit(r: &LinuxResources) -> Option<&'static str> {
    let set = [
        ("memory", r.memory().is_some()),
        ("cpu", r.cpu().is_some()),
        ("pids", r.pids().is_some()),
        ("blockIO", r.block_io().is_some()),
        (
            "hugepageLimits",
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("network", r.network().is_some()),
        ("rdma", r.rdma().as_ref().is_some_and(|m| !m.is_empty())),
        (
            "unified",
            r.unified().as_ref().is_some_and(|m| !m.is_empty()),
        ),
    ];
    set.iter().find(|(_, on)| *on).map(|(name, _)| *name)
}

fn memory(cg: &Cgroup, m: &LinuxMemory, updating: bool) -> Result<()> {
    if updating && m.check_before_update() == Some(true) {
        if let Some(limit) = m.limit().filter(|l| *l > 0) {
            let usage_file = if cg.v2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            let usage: i64 = cg
                .read(usage_file)
                .and_then(|u| u.parse().ok())
                .unwrap_or(0);
            if limit < usage {
                bail!("linux.resources.memory.limit: {limit} is below the current usage {usage} ({usage_file}) and checkBeforeUpdate is set");
            }
        }
    }
    // As runc: no memory limit and no swap limit given means no memory+swap limit either,
    // where the kernel has one (swap accounting may be off).
    let implied_swap = m.limit() == Some(-1) && m.swap().is_none();
    if implied_swap {
        let file = if cg.v2 {
            "memory.swap.max"
        } else {
            "memory.memsw.limit_in_bytes"
        };
        if cg.has(file) {
            let mut m = *m;
            m.set_swap(Some(-1));
            return memory(cg, &m, updating);
        }
    }
    if cg.v2 {
        return memory_v2(cg, m);
    }
    // memsw must never be below the memory limit, so the order depends on which way the
    // limits move (as runc).
    match (m.limit(), m.swap()) {
        (Some(limit), Some(swap)) => {
            let current: i64 = cg
                .read("memory.limit_in_bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MAX);
            if swap == -1 || current < swap {
                cg.write("memory.swap", "memory.memsw.limit_in_bytes", swap)?;
                cg.write("memory.limit", "memory.limit_in_bytes", limit)?;
            } else {
                cg.write("memory.limit", "memory.limit_in_bytes", limit)?;
                cg.write("memory.swap", "memory.memsw.limit_in_bytes", swap)?;
            }
        }
        (Some(limit), None) => cg.write("memory.limit", "memory.limit_in_bytes", limit)?,
        (None, Some(swap)) => cg.write("memory.swap", "memory.memsw.limit_in_bytes", swap)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        cg.write("memory.reservation", "memory.soft_limit_in_bytes", r)?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            bail!("linux.resources.memory.swappiness: {s} is above 100");
        }
        cg.write("memory.swappiness", "memory.swappiness", s)?;
    }
    if m.disable_oom_killer() == Some(true) {
        cg.write("memory.disableOOMKiller", "memory.oom_control", 1)?;
    }
    if let Some(k) = m.kernel_tcp() {
        cg.write("memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", k)?;
    }
    if m.kernel().is_some() {
        log::warn!("linux.resources.memory.kernel: kernel memory limits are deprecated by the kernel and ignored, as runc does");
    }
    Ok(())
}

/// v2 has no memory+swap total: swap.max is what the total leaves above memory.max.
fn memory_v2(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(swap) = m.swap().filter(|s| *s != 0) {
        let value = match m.limit() {
            _ if swap == -1 => "max".to_string(),
            None | Some(0) | Some(-1) => {
                bail!("linux.resources.memory.swap: on cgroup v2 a swap limit needs a memory limit")
            }
            // As runc: below -1 is no limit at all (and swap - limit could overflow).
            Some(limit) if limit < 0 => {
                bail!("linux.resources.memory.limit: {limit} is not a limit (-1 means unlimited)")
            }
            Some(limit) if swap < limit => bail!(
                "linux.resources.memory.swap: {swap} (memory+swap) is below memory.limit {limit}"
            ),
            Some(limit) => (swap - limit).to_string(),
        };
        cg.write("memory.swap", "memory.swap.max", value)?;
    }
    if let Some(limit) = m.limit().filter(|l| *l != 0) {
        cg.write("memory.limit", "memory.max", max(limit))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        cg.write("memory.reservation", "memory.low", max(r))?;
    }
    if m.swappiness().is_some() {
        bail!(
            "linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness; remove it"
        );
    }
    if m.disable_oom_killer() == Some(true) {
        bail!("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer; remove it");
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        log::warn!("linux.resources.memory.kernel/kernelTCP: cgroup v2 accounts kernel memory in memory.max; ignored, as runc does");
    }
    Ok(())
}

/// A v1 period and the budget the kernel checks against it (CFS quota, real-time runtime),
/// each as (resource, file, value): the period first, and if the new period does not fit the
/// old budget, the budget first (as runc).
fn period_and_budget(
    cg: &Cgroup,
    period: Option<(&str, &str, String)>,
    budget: Option<(&str, &str, String)>,
) -> Result<()> {
    match (period, budget) {
        (Some((pw, pf, p)), Some((bw, bf, b))) => {
            if cg.write(pw, pf, &p).is_err() {
                cg.write(bw, bf, &b)?;
                cg.write(pw, pf, &p)
            } else {
                cg.write(bw, bf, &b)
            }
        }
        (Some((w, f, v)), None) | (None, Some((w, f, v))) => cg.write(w, f, v),
        (None, None) => Ok(()),
    }
}

fn cpu(cg: &Cgroup, c: &LinuxCpu) -> Result<()> {
    if cg.v2 {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            cg.write("cpu.shares", "cpu.weight", shares_to_weight(shares))?;
        }
        if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
            let mut value = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            if let Some(p) = c.period().filter(|p| *p != 0) {
                value += &format!(" {p}");
            }
            cg.write("cpu.quota", "cpu.max", value)?;
        }
        if let Some(b) = c.burst() {
            cg.write("cpu.burst", "cpu.max.burst", b)?;
        }
        if c.realtime_runtime().is_some_and(|r| r != 0)
            || c.realtime_period().is_some_and(|p| p != 0)
        {
            bail!("linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no real-time CPU bandwidth; remove them");
        }
    } else {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            cg.write("cpu.shares", "cpu.shares", shares)?;
        }
        period_and_budget(
            cg,
            c.period()
                .filter(|p| *p != 0)
                .map(|p| ("cpu.period", "cpu.cfs_period_us", p.to_string())),
            c.quota()
                .filter(|q| *q != 0)
                .map(|q| ("cpu.quota", "cpu.cfs_quota_us", q.to_string())),
        )?;
        if let Some(b) = c.burst() {
            cg.write("cpu.burst", "cpu.cfs_burst_us", b)?;
        }
        period_and_budget(
            cg,
            c.realtime_period()
                .filter(|p| *p != 0)
                .map(|p| ("cpu.realtimePeriod", "cpu.rt_period_us", p.to_string())),
            c.realtime_runtime()
                .filter(|r| *r != 0)
                .map(|r| ("cpu.realtimeRuntime", "cpu.rt_runtime_us", r.to_string())),
        )?;
    }
    if let Some(idle) = c.idle() {
        cg.write("cpu.idle", "cpu.idle", idle)?;
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        cg.write("cpu.cpus", "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        cg.write("cpu.mems", "cpuset.mems", mems)?;
    }
    Ok(())
}

/// runc's conversion of cpu.shares (2..262144) to cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// runc's conversion of blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

fn block_io(cg: &Cgroup, b: &LinuxBlockIo) -> Result<()> {
    if cg.v2 {
        // BFQ takes the v1 scale as is; io.weight its own.
        let bfq = cg.has("io.bfq.weight");
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            if bfq {
                cg.write("blockIO.weight", "io.bfq.weight", w)?;
            } else {
                cg.write(
                    "blockIO.weight",
                    "io.weight",
                    format!("default {}", blkio_weight_to_io_weight(w)),
                )?;
            }
        }
        if b.leaf_weight().is_some_and(|w| w != 0) {
            bail!("linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weight; remove it");
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let dev = format!("{}:{}", d.major(), d.minor());
                if bfq {
                    cg.write(
                        "blockIO.weightDevice",
                        "io.bfq.weight",
                        format!("{dev} {w}"),
                    )?;
                } else {
                    let w = blkio_weight_to_io_weight(w);
                    cg.write("blockIO.weightDevice", "io.weight", format!("{dev} {w}"))?;
                }
            }
        }
        let throttles = [
            (
                "throttleReadBpsDevice",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ];
        for (what, key, list) in throttles {
            for d in list.iter().flatten() {
                let line = format!("{}:{} {key}={}", d.major(), d.minor(), d.rate());
                cg.write(&format!("blockIO.{what}"), "io.max", line)?;
            }
        }
        return Ok(());
    }
    let bfq = cg.has("blkio.bfq.weight");
    let (weight_file, weight_device_file) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        cg.write("blockIO.weight", weight_file, w)?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        cg.write("blockIO.leafWeight", "blkio.leaf_weight", w)?;
    }
    for d in b.weight_device().iter().flatten() {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(w) = d.weight() {
            cg.write(
                "blockIO.weightDevice",
                weight_device_file,
                format!("{dev} {w}"),
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            cg.write(
                "blockIO.weightDevice",
                "blkio.leaf_weight_device",
                format!("{dev} {w}"),
            )?;
        }
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (what, file, list) in throttles {
        for d in list.iter().flatten() {
            let line = format!("{}:{} {}", d.major(), d.minor(), d.rate());
            cg.write(&format!("blockIO.{what}"), file, line)?;
        }
    }
    Ok(())
}

/// `unified`: cgroup v2 file names and values, written as given, on a pure cgroup v2 host
/// only (runc's rule: a hybrid host's cgroup2 hierarchy does not count).
fn unified_files(
    placement: &Placement,
    unified: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    // Names first: a path is refused as such, wherever it would be written.
    if let Some(key) = keys
        .iter()
        .find(|k| k.contains('/') || k.starts_with('.') || !k.contains('.'))
    {
        bail!("linux.resources.unified: {key:?} is not a cgroup file name");
    }
    check_unified(placement, unified)?;
    let cg = Cgroup::new(placement);
    for key in keys {
        cg.write(&format!("unified[{key}]"), key, &unified[key])?;
    }
    Ok(())
}

/// The device rules runc always adds after the config's own: /dev/null, zero, full, random,
/// urandom, tty, console, ptmx, the pts devices, tun, and mknod of anything.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true)
            .set_typ(Some(typ))
            .set_major(major)
            .set_minor(minor)
            .set_access(Some(access.to_string()));
        r
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// The full device list for the container, in the order it is applied: the config's rules,
/// then runc's defaults. A `linux.devices` entry only makes the node: as in runc, it grants
/// no access (a listed /dev/kmsg stays denied unless `linux.resources.devices` allows it).
pub fn device_rules(spec: &oci_spec::runtime::Spec) -> Vec<LinuxDeviceCgroup> {
    let mut rules: Vec<LinuxDeviceCgroup> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    rules.extend(default_device_rules());
    rules
}

/// The v1 devices.allow/deny line of a rule: "c 1:3 rwm", "a *:* rwm".
pub fn v1_device_line(r: &LinuxDeviceCgroup) -> String {
    let typ = match r.typ() {
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        _ => "a",
    };
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    format!(
        "{typ} {}:{} {}",
        num(r.major()),
        num(r.minor()),
        r.access().as_deref().unwrap_or("rwm")
    )
}

/// Applies the device rules: v1 devices.allow/deny in order, v2 an eBPF program.
pub fn apply_devices(placement: &Placement, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let cg = Cgroup::new(placement);
    if cg.v2 {
        return super::devices::apply(&placement.dirs[0].path, rules);
    }
    // As runc: only the transition from what devices.list shows to what the rules come to
    // is written, so a cgroup that already holds processes (systemd's, or an update) never
    // passes through deny-all. The kernel takes one rule per write(2); each file is opened
    // once.
    let Some(list_path) = cg.path_of("devices.list") else {
        bail!("linux.resources.devices: this host has no devices.list (controller not mounted or not enabled)");
    };
    let list = crate::sys::read_virtual(&list_path)
        .with_context(|| format!("linux.resources.devices: read {}", list_path.display()))?;
    let mut open: [Option<(PathBuf, std::fs::File)>; 2] = [None, None];
    for (allow, line) in super::devices::v1_transition(&list, rules)? {
        let (slot, file) = if allow {
            (0, "devices.allow")
        } else {
            (1, "devices.deny")
        };
        if open[slot].is_none() {
            let Some(path) = cg.path_of(file) else {
                bail!("linux.resources.devices: this host has no {file} (controller not mounted or not enabled)");
            };
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .with_context(|| format!("linux.resources.devices: open {}", path.display()))?;
            open[slot] = Some((path, f));
        }
        let (path, f) = open[slot].as_mut().expect("opened above");
        std::io::Write::write_all(f, line.as_bytes()).with_context(|| {
            format!(
                "linux.resources.devices: write {line:?} to {}",
                path.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::placement::test_support::placement;
    use super::super::Layout;
    use super::*;
    use std::path::Path;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
    }

    #[test]
    fn device_lines() {
        let rules = default_device_rules();
        assert_eq!(v1_device_line(&rules[0]), "c *:* m");
        assert_eq!(v1_device_line(&rules[2]), "c 1:3 rwm");
        assert_eq!(v1_device_line(&rules[9]), "c 136:* rwm");
        let all: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(v1_device_line(&all), "a *:* rwm");
    }

    fn fake_v1() -> (tempfile::TempDir, Vec<PathBuf>, Placement) {
        let t = tempfile::tempdir().unwrap();
        let mut dirs = vec![];
        for (ctrl, files) in [
            (
                "memory",
                &[
                    "memory.limit_in_bytes",
                    "memory.memsw.limit_in_bytes",
                    "memory.soft_limit_in_bytes",
                    "memory.swappiness",
                ][..],
            ),
            (
                "cpu",
                &["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"][..],
            ),
            ("pids", &["pids.max"][..]),
        ] {
            let d = t.path().join(ctrl).join("c1");
            std::fs::create_dir_all(&d).unwrap();
            for f in files {
                std::fs::write(d.join(f), "").unwrap();
            }
            dirs.push(d);
        }
        let p = placement(
            Layout::V1,
            &[(&dirs[0], "memory"), (&dirs[1], "cpu"), (&dirs[2], "pids")],
        );
        (t, dirs, p)
    }

    #[test]
    fn v2_swap_with_a_negative_memory_limit_is_an_error_not_an_overflow() {
        // Seen while writing the update_resources fuzz target: swap - limit overflowed.
        let t = tempfile::tempdir().unwrap();
        for f in ["cgroup.controllers", "memory.max", "memory.swap.max"] {
            std::fs::write(t.path().join(f), "").unwrap();
        }
        let p = placement(Layout::V2, &[(t.path(), "")]);
        let r: LinuxResources =
            serde_json::from_str(r#"{"memory":{"limit":-2,"swap":9223372036854775807}}"#).unwrap();
        let e = apply(&p, &r, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "linux.resources.memory.limit: -2 is not a limit (-1 means unlimited)"
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("memory.swap.max")).unwrap(),
            ""
        );
    }

    #[test]
    fn v1_values_land_in_their_files() {
        let (_t, dirs, p) = fake_v1();
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1000,"swap":2000,"reservation":500,"swappiness":10},
                "cpu":{"shares":512,"quota":50000,"period":100000},"pids":{"limit":7}}"#,
        )
        .unwrap();
        apply(&p, &r, false).unwrap();
        let read = |d: usize, f: &str| std::fs::read_to_string(dirs[d].join(f)).unwrap();
        assert_eq!(read(0, "memory.limit_in_bytes"), "1000");
        assert_eq!(read(0, "memory.memsw.limit_in_bytes"), "2000");
        assert_eq!(read(0, "memory.soft_limit_in_bytes"), "500");
        assert_eq!(read(1, "cpu.shares"), "512");
        assert_eq!(read(1, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(2, "pids.max"), "7");
    }

    #[test]
    fn a_resource_without_its_file_names_both() {
        let (_t, _, p) = fake_v1();
        let r: LinuxResources = serde_json::from_str(r#"{"blockIO":{"weight":300}}"#).unwrap();
        let e = apply(&p, &r, false).unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.blockIO.weight") && e.contains("blkio.weight"),
            "{e}"
        );
        // The controller's hierarchy is there but not the file: named too, and not made.
        let r: LinuxResources = serde_json::from_str(r#"{"memory":{"kernelTCP":1}}"#).unwrap();
        let e = apply(&p, &r, false).unwrap_err().to_string();
        assert!(
            e.contains("this host has no memory.kmem.tcp.limit_in_bytes"),
            "{e}"
        );
        assert!(!p.dirs[0]
            .path
            .join("memory.kmem.tcp.limit_in_bytes")
            .exists());
    }

    #[test]
    fn v2_translates_v1_style_values() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("c1");
        std::fs::create_dir(&d).unwrap();
        for f in [
            "cgroup.controllers",
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.weight",
            "cpu.max",
            "io.weight",
            "io.max",
        ] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let dirs = placement(Layout::V2, &[(&d, "")]);
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1000,"swap":3000,"reservation":-1},
                "cpu":{"shares":1024,"quota":20000,"period":100000},
                "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}"#,
        )
        .unwrap();
        apply(&dirs, &r, false).unwrap();
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read("memory.max"), "1000");
        assert_eq!(read("memory.swap.max"), "2000");
        assert_eq!(read("memory.low"), "max");
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "20000 100000");
        assert_eq!(read("io.weight"), "default 4950");
        assert_eq!(read("io.max"), "8:0 rbps=1048576");
        let bad: LinuxResources = serde_json::from_str(r#"{"memory":{"swappiness":10}}"#).unwrap();
        let e = apply(&dirs, &bad, false).unwrap_err().to_string();
        assert!(e.contains("linux.resources.memory.swappiness"), "{e}");
        let bad: LinuxResources =
            serde_json::from_str(r#"{"unified":{"../etc/passwd":"x"}}"#).unwrap();
        let e = apply(&dirs, &bad, false).unwrap_err().to_string();
        assert!(
            e.contains("\"../etc/passwd\" is not a cgroup file name"),
            "{e}"
        );
    }

    #[test]
    fn unified_only_on_a_pure_v2_placement() {
        let unified: std::collections::HashMap<String, String> =
            [("pids.max".to_string(), "42".to_string())].into();
        let (v1, uni) = (Path::new("/h/pids/c"), Path::new("/h/unified/c"));
        // A hybrid placement's cgroup2 directory does not count, as in runc.
        for p in [
            placement(Layout::Hybrid, &[(v1, "pids"), (uni, "")]),
            placement(Layout::V1, &[(v1, "pids")]),
        ] {
            let e = check_unified(&p, &unified).unwrap_err().to_string();
            assert_eq!(
                e,
                "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1"
            );
            assert!(check_unified(&p, &Default::default()).is_ok());
        }
        assert!(check_unified(&placement(Layout::V2, &[(uni, "")]), &unified).is_ok());
    }

    #[test]
    fn hugetlb_bound_to_a_hybrid_hosts_cgroup2_gets_v2_names() {
        let t = tempfile::tempdir().unwrap();
        let (v1, uni) = (t.path().join("memory"), t.path().join("unified"));
        for d in [&v1, &uni] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(uni.join("hugetlb.2MB.max"), "").unwrap();
        let p = placement(Layout::Hybrid, &[(&v1, "memory"), (&uni, "v2:hugetlb")]);
        let r: LinuxResources =
            serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#)
                .unwrap();
        apply(&p, &r, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(uni.join("hugetlb.2MB.max")).unwrap(),
            "4194304"
        );
    }
}

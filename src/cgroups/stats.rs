//! The data of `berth events --stats`: a container's cgroup statistics in the JSON shape of
//! runc's `events --stats` "data" object (runc types/events.go), read the way runc's cgroup
//! drivers read them (opencontainers/cgroups fs for v1, fs2 for v2), quirks included (v1
//! cache is memory.stat's own `cache`, v2 swap is reported as memory+swap, no pids limit is 0,
//! cpuset figures on v1 only, PSI on v2 only).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::{Serialize, Serializer};

use super::placement::Placement;

/// runc's `events --stats` "data" object.
#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: Cpu,
    /// Always there; all zeros on v2, whose driver in runc reads no cpuset figures.
    pub cpuset: Cpuset,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Always `{}`: berth does not manage Intel RDT.
    pub intel_rdt: IntelRdt,
    /// Always null, as runc's for a container it did not set network interfaces up for.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

/// For Go's `omitempty` / `omitzero`.
fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Serialize, Default, Debug)]
pub struct Cpu {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: CpuUsage,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttling: Throttling,
    /// cpu.pressure (v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// Nanoseconds.
#[derive(Serialize, Default, Debug, PartialEq)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// v1 cpuset.* files; the flags are 0 or 1.
#[derive(Serialize, Default, Debug, PartialEq)]
pub struct Cpuset {
    /// cpuset.cpus expanded: "0-2,8" is [0, 1, 2, 8].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    /// Memory nodes, expanded as `cpus`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    /// Stays 0 unless the hierarchy root's cpuset.memory_pressure_enabled is set (runc
    /// reports that flag nowhere).
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// A v2 pressure file. A half whose figures are all zero is left out (Go's `omitzero`): the
/// `full` line of cpu.pressure before Linux 5.13 is missing, and runc reports it so.
#[derive(Serialize, Default, Debug, PartialEq)]
pub struct Psi {
    #[serde(skip_serializing_if = "is_zero")]
    pub some: PsiData,
    #[serde(skip_serializing_if = "is_zero")]
    pub full: PsiData,
}

/// Percentages of the last 10, 60 and 300 seconds; `total` in microseconds.
#[derive(Serialize, Default, Debug, PartialEq)]
pub struct PsiData {
    #[serde(serialize_with = "go_float")]
    pub avg10: f64,
    #[serde(serialize_with = "go_float")]
    pub avg60: f64,
    #[serde(serialize_with = "go_float")]
    pub avg300: f64,
    pub total: u64,
}

/// Go's encoding/json writes a whole float64 without a fraction: `0`, where serde writes `0.0`.
fn go_float<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Serialize, Default, Debug)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: MemoryEntry,
    #[serde(skip_serializing_if = "is_zero")]
    pub swap: MemoryEntry,
    #[serde(skip_serializing_if = "is_zero")]
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP", skip_serializing_if = "is_zero")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as it is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// memory.pressure (v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// Bytes; `max` is the peak usage, not the limit.
#[derive(Serialize, Default, Debug, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when there is no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Blkio {
    /// runc's non-empty tables by their JSON names ("ioServiceBytesRecursive", ...).
    #[serde(flatten)]
    pub tables: BTreeMap<&'static str, Vec<BlkioEntry>>,
    /// io.pressure (v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Serialize, Default, Debug)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Bytes; `max` is the peak usage (v1 only), not the limit.
#[derive(Serialize, Default, Debug)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct IntelRdt {}

/// runc's `events --stats` "data" object for a container whose cgroup directories are `dirs`
/// (as berth stores them: on a cgroup v1 or hybrid host one directory per mounted hierarchy,
/// e.g. /sys/fs/cgroup/memory/<id>, /sys/fs/cgroup/cpu/<id>, ..., possibly plus
/// /sys/fs/cgroup/unified/<id>; on a pure v2 host exactly one directory).
pub fn collect(placement: &Placement) -> Result<Stats> {
    let src = Source::new(placement);
    let mut st = Stats::default();
    if src.v2 {
        let s = src.keyed("cpu.stat")?.unwrap_or_default();
        let us = |key| get(&s, key).saturating_mul(1000);
        st.cpu.usage.total = us("usage_usec");
        st.cpu.usage.user = us("user_usec");
        st.cpu.usage.kernel = us("system_usec");
        st.cpu.throttling.periods = get(&s, "nr_periods");
        st.cpu.throttling.throttled_periods = get(&s, "nr_throttled");
        st.cpu.throttling.throttled_time = us("throttled_usec");
        st.cpu.psi = src.psi("cpu.pressure")?;
        st.memory = memory_v2(&src)?;
        st.memory.psi = src.psi("memory.pressure")?;
        st.blkio = io_v2(&src)?;
        st.blkio.psi = src.psi("io.pressure")?;
    } else {
        st.cpu = cpu_v1(&src)?;
        st.cpuset = cpuset_v1(&src)?;
        st.memory = memory_v1(&src)?;
        st.blkio = blkio_v1(&src)?;
    }
    st.pids = pids(&src)?;
    st.hugetlb = hugetlb(&src)?;
    Ok(st)
}

/// How many times the kernel's OOM killer has killed in this cgroup so far: v1
/// memory.oom_control's `oom_kill` line, v2 memory.events' `oom_kill` line. None when the
/// memory controller is not there (or the file cannot be read).
pub fn oom_kills(placement: &Placement) -> Option<u64> {
    let src = Source::new(placement);
    let file = ["memory.oom_control", "memory.events"][usize::from(src.v2)];
    // Like runc, a kernel without the oom_kill line (before 4.13) counts as 0.
    src.keyed(file).ok()?.map(|m| get(&m, "oom_kill"))
}

/// What wakes `events` when the OOM killer strikes, so that it reports at once rather than
/// at its next tick (as runc): on v1 an eventfd registered on memory.oom_control through
/// cgroup.event_control, on v2 inotify on memory.events.
pub enum OomWatch {
    V1 {
        eventfd: nix::sys::eventfd::EventFd,
        oom_control: fs::File,
    },
    V2(nix::sys::inotify::Inotify),
}

/// What ended an [`OomWatch::wait`].
#[derive(Debug, PartialEq, Eq)]
pub enum OomWake {
    /// The timeout, or a signal.
    Nothing,
    /// v1's notification: the cgroup went under OOM. It comes before the kernel has counted
    /// the kill, so the caller reports it as it is (as runc) instead of reading oom_kill.
    UnderOom,
    /// memory.events changed (v2); the caller compares the oom_kill count.
    CountersChanged,
}

impl OomWatch {
    pub fn new(placement: &Placement) -> Result<OomWatch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        use std::os::fd::AsRawFd;
        if placement.is_v2() {
            let file = placement.dirs[0].path.join("memory.events");
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
                .context("inotify_init")?;
            inotify
                .add_watch(&file, AddWatchFlags::IN_MODIFY)
                .with_context(|| format!("watch {}", file.display()))?;
            return Ok(OomWatch::V2(inotify));
        }
        let dir = placement
            .dir_of("memory")
            .filter(|d| !d.v2)
            .context("no v1 memory hierarchy")?;
        let oom_control = fs::File::open(dir.path.join("memory.oom_control"))
            .with_context(|| format!("open {}/memory.oom_control", dir.path.display()))?;
        let eventfd = nix::sys::eventfd::EventFd::from_flags(
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
        )
        .context("eventfd")?;
        let control = dir.path.join("cgroup.event_control");
        let line = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
        crate::sys::write_file(&control, &line)
            .with_context(|| format!("register for OOM events in {}", control.display()))?;
        Ok(OomWatch::V1 {
            eventfd,
            oom_control,
        })
    }

    /// Waits up to `timeout` for a notification.
    pub fn wait(&self, timeout: std::time::Duration) -> Result<OomWake> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let fd = match self {
            OomWatch::V1 { eventfd, .. } => eventfd.as_fd(),
            OomWatch::V2(inotify) => inotify.as_fd(),
        };
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(OomWake::Nothing),
            Ok(_) => {}
            Err(e) => return Err(e).context("poll for OOM events"),
        }
        // Drained, so that the next wait blocks again.
        match self {
            OomWatch::V1 {
                eventfd,
                oom_control,
            } => {
                let _ = eventfd.read();
                // The eventfd is signalled too when the cgroup is removed; its files are
                // gone then (the open one reads ENODEV).
                let mut buf = [0u8; 64];
                match std::os::unix::fs::FileExt::read_at(oom_control, &mut buf, 0) {
                    Ok(_) => Ok(OomWake::UnderOom),
                    Err(_) => Ok(OomWake::Nothing),
                }
            }
            OomWatch::V2(inotify) => {
                drop(inotify.read_events());
                Ok(OomWake::CountersChanged)
            }
        }
    }
}

/// Where the statistics files are looked up: each file in the first directory that has it.
struct Source {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Source {
    fn new(placement: &Placement) -> Self {
        let v2 = placement.is_v2();
        // On a hybrid host the cgroup2 directory's v2-format cpu.stat must not shadow the v1
        // hierarchy's; runc reads no statistics from that directory either.
        let dirs = placement
            .dirs
            .iter()
            .filter(|d| v2 || !d.v2)
            .map(|d| d.path.clone())
            .collect();
        Source { dirs, v2 }
    }

    fn has(&self, name: &str) -> bool {
        self.dirs.iter().any(|d| d.join(name).exists())
    }

    /// The first copy of `name` and its path; None when no directory has it (the controller
    /// is not there).
    fn read(&self, name: &str) -> Result<Option<(PathBuf, String)>> {
        for dir in &self.dirs {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(text) => return Ok(Some((path, text))),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        Ok(None)
    }

    /// A one-number file; "max" (no limit) reads as u64::MAX, as in runc.
    fn uint(&self, name: &str) -> Result<Option<u64>> {
        let Some((path, text)) = self.read(name)? else {
            return Ok(None);
        };
        match text.trim() {
            "max" => Ok(Some(u64::MAX)),
            text => parse(&path, text).map(Some),
        }
    }

    fn uint0(&self, name: &str) -> Result<u64> {
        Ok(self.uint(name)?.unwrap_or(0))
    }

    /// A signed one-number file; "max" reads as i64::MAX, as in runc.
    fn int(&self, name: &str) -> Result<Option<i64>> {
        let Some((path, text)) = self.read(name)? else {
            return Ok(None);
        };
        match text.trim() {
            "max" => Ok(Some(i64::MAX)),
            word => word
                .parse()
                .map(Some)
                .map_err(|_| bad(&path, format!("{word:?} is not a number"))),
        }
    }

    /// A cpu or memory node list ("0-3,8"), expanded; empty when there is no such file. As in
    /// runc, an empty file is an error (a v1 cpuset without cpus or mems holds no process).
    fn id_list(&self, name: &str) -> Result<Vec<u16>> {
        let Some((path, text)) = self.read(name)? else {
            return Ok(Vec::new());
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad(&path, "empty file"));
        }
        let ids = crate::cpu_list::parse(text).map_err(|e| bad(&path, e))?;
        // (cpu_list caps numbers at 8191, well inside u16.)
        Ok(ids.into_iter().map(|id| id as u16).collect())
    }

    /// A pressure file: `some avg10=0.12 avg60=0.05 avg300=0.01 total=123456` and a `full`
    /// line. None, as in runc, when the kernel keeps PSI from this cgroup: no file (before
    /// Linux 4.20, CONFIG_PSI off, or cgroup.pressure set to 0) or EOPNOTSUPP on reading
    /// (kernels that want psi=1 on their command line).
    fn psi(&self, name: &str) -> Result<Option<Psi>> {
        let (path, text) = match self.read(name) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) if errno(&e) == Some(libc::EOPNOTSUPP) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut psi = Psi::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let half = match words.next() {
                Some("some") => &mut psi.some,
                Some("full") => &mut psi.full,
                _ => continue,
            };
            for word in words {
                let Some((key, value)) = word.split_once('=') else {
                    return Err(bad(&path, format!("{word:?} is not \"key=value\"")));
                };
                let not_number = || bad(&path, format!("{word:?}: not a number"));
                let avg = || match value.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(not_number()),
                };
                match key {
                    "avg10" => half.avg10 = avg()?,
                    "avg60" => half.avg60 = avg()?,
                    "avg300" => half.avg300 = avg()?,
                    "total" => half.total = value.parse().map_err(|_| not_number())?,
                    _ => {} // Keys a later kernel may add.
                }
            }
        }
        Ok(Some(psi))
    }

    /// Whitespace-separated numbers (cpuacct.usage_percpu).
    fn list(&self, name: &str) -> Result<Vec<u64>> {
        let Some((path, text)) = self.read(name)? else {
            return Ok(Vec::new());
        };
        text.split_whitespace().map(|w| parse(&path, w)).collect()
    }

    /// `key value` lines (memory.stat, cpu.stat, memory.events, ...).
    fn keyed(&self, name: &str) -> Result<Option<BTreeMap<String, u64>>> {
        let Some((path, text)) = self.read(name)? else {
            return Ok(None);
        };
        let mut map = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some((key, value)) = line.split_once(' ').filter(|(k, _)| !k.is_empty()) else {
                return Err(bad(&path, format!("{line:?} is not \"key value\"")));
            };
            map.insert(key.to_string(), parse(&path, value.trim())?);
        }
        Ok(Some(map))
    }
}

fn errno(e: &anyhow::Error) -> Option<i32> {
    e.root_cause()
        .downcast_ref::<std::io::Error>()?
        .raw_os_error()
}

fn bad(path: &Path, what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("unable to parse {}: {what}", path.display())
}

/// A counter as runc parses it: a negative value (which some kernels show for counters that
/// went below zero) reads as 0.
fn parse(path: &Path, word: &str) -> Result<u64> {
    if let Ok(n) = word.parse() {
        return Ok(n);
    }
    match word.strip_prefix('-') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => Ok(0),
        _ => Err(bad(path, format!("{word:?} is not a number"))),
    }
}

fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

fn cpu_v1(src: &Source) -> Result<Cpu> {
    // cpuacct.stat is in USER_HZ ticks, which runc takes to be 100 a second.
    const NS_PER_TICK: u64 = 1_000_000_000 / 100;
    let ticks = src.keyed("cpuacct.stat")?.unwrap_or_default();
    let s = src.keyed("cpu.stat")?.unwrap_or_default();
    Ok(Cpu {
        usage: CpuUsage {
            total: src.uint0("cpuacct.usage")?,
            percpu: src.list("cpuacct.usage_percpu")?,
            percpu_kernel: src.list("cpuacct.usage_percpu_sys")?,
            percpu_user: src.list("cpuacct.usage_percpu_user")?,
            kernel: get(&ticks, "system").saturating_mul(NS_PER_TICK),
            user: get(&ticks, "user").saturating_mul(NS_PER_TICK),
        },
        throttling: Throttling {
            periods: get(&s, "nr_periods"),
            throttled_periods: get(&s, "nr_throttled"),
            throttled_time: get(&s, "throttled_time"),
        },
        psi: None, // runc's v1 driver reads no PSI, not even from a hybrid's cgroup2 directory
    })
}

/// Only the prefixed file names: berth does not use cpuset hierarchies mounted `noprefix`.
fn cpuset_v1(src: &Source) -> Result<Cpuset> {
    let flag = |name: &str| src.uint0(&format!("cpuset.{name}"));
    Ok(Cpuset {
        cpus: src.id_list("cpuset.cpus")?,
        cpu_exclusive: flag("cpu_exclusive")?,
        mems: src.id_list("cpuset.mems")?,
        mem_hardwall: flag("mem_hardwall")?,
        mem_exclusive: flag("mem_exclusive")?,
        memory_migrate: flag("memory_migrate")?,
        memory_spread_page: flag("memory_spread_page")?,
        memory_spread_slab: flag("memory_spread_slab")?,
        memory_pressure: flag("memory_pressure")?,
        sched_load_balance: flag("sched_load_balance")?,
        sched_relax_domain_level: src.int("cpuset.sched_relax_domain_level")?.unwrap_or(0),
    })
}

fn memory_v1(src: &Source) -> Result<Memory> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        Ok(MemoryEntry {
            limit: src.uint0(&format!("{prefix}.limit_in_bytes"))?,
            usage: src.uint0(&format!("{prefix}.usage_in_bytes"))?,
            max: src.uint0(&format!("{prefix}.max_usage_in_bytes"))?,
            failcnt: src.uint0(&format!("{prefix}.failcnt"))?,
        })
    };
    let raw = src.keyed("memory.stat")?.unwrap_or_default();
    Ok(Memory {
        // runc takes this cgroup's own `cache`, not the hierarchical `total_cache`.
        cache: get(&raw, "cache"),
        usage: entry("memory")?,
        swap: entry("memory.memsw")?,
        kernel: entry("memory.kmem")?,
        kernel_tcp: entry("memory.kmem.tcp")?,
        raw,
        psi: None,
    })
}

fn memory_v2(src: &Source) -> Result<Memory> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        Ok(MemoryEntry {
            limit: src.uint0(&format!("{prefix}.max"))?,
            usage: src.uint0(&format!("{prefix}.current"))?,
            max: src.uint0(&format!("{prefix}.peak"))?, // Linux 5.19+ (swap: 6.5+)
            failcnt: 0,                                 // runc reports none on v2
        })
    };
    let raw = src.keyed("memory.stat")?.unwrap_or_default();
    let usage = entry("memory")?;
    // v2 swap counts swap alone; runc reports memory+swap like v1's memsw, without a peak.
    let mut swap = entry("memory.swap")?;
    swap.usage = swap.usage.saturating_add(usage.usage);
    if swap.limit != u64::MAX {
        swap.limit = swap.limit.saturating_add(usage.limit);
    }
    swap.max = 0;
    let cache = get(&raw, "file");
    Ok(Memory {
        cache,
        usage,
        swap,
        raw,
        ..Memory::default()
    })
}

fn pids(src: &Source) -> Result<Pids> {
    let mut current = src.uint0("pids.current")?;
    if src.v2 && !src.has("pids.current") {
        // As runc: without the pids controller, count the processes.
        current = src
            .read("cgroup.procs")?
            .map_or(0, |(_, t)| t.lines().count() as u64);
    }
    let limit = match src.uint("pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(n) => n,
    };
    Ok(Pids { current, limit })
}

/// v1 block I/O files and runc's names for them. The last two are all that bfq without
/// debug statistics and the throttle policy have.
const RECURSIVE: [(&str, &str); 8] = [
    ("sectors_recursive", "sectorsRecursive"),
    ("io_service_time_recursive", "ioServiceTimeRecursive"),
    ("io_wait_time_recursive", "ioWaitTimeRecursive"),
    ("io_merged_recursive", "ioMergedRecursive"),
    ("io_queued_recursive", "ioQueueRecursive"),
    ("time_recursive", "ioTimeRecursive"),
    ("io_serviced_recursive", "ioServicedRecursive"),
    ("io_service_bytes_recursive", "ioServiceBytesRecursive"),
];

/// As runc, the first of these groups whose first file has entries is reported: the bfq
/// scheduler's (with debug statistics, without), cfq's, then the throttle policy's
/// (recursive, else this cgroup's own on kernels without the recursive files).
fn blkio_v1(src: &Source) -> Result<Blkio> {
    const THROTTLE: [(&str, &str); 2] = [
        ("io_serviced", "ioServicedRecursive"),
        ("io_service_bytes", "ioServiceBytesRecursive"),
    ];
    let groups: [(&str, &[(&str, &'static str)]); 5] = [
        ("blkio.bfq.", &RECURSIVE),
        ("blkio.bfq.", &RECURSIVE[6..]),
        ("blkio.", &RECURSIVE),
        ("blkio.throttle.", &RECURSIVE[6..]),
        ("blkio.throttle.", &THROTTLE),
    ];
    let mut out = Blkio::default();
    for (prefix, files) in groups {
        for &(file, table) in files {
            let entries = blkio_file(src, &format!("{prefix}{file}"))?;
            if entries.is_empty() {
                break;
            }
            out.tables.insert(table, entries);
        }
        if !out.tables.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// Lines `8:0 Read 123` (`8:0 123` in sectors and time files) and a `Total 123` line.
fn blkio_file(src: &Source, name: &str) -> Result<Vec<BlkioEntry>> {
    let Some((path, text)) = src.read(name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split([' ', ':']).filter(|w| !w.is_empty()).collect();
        let (op, value) = match f.len() {
            0 => continue,
            2 if f[0] == "Total" => continue,
            3 => ("", f[2]),
            4 => (f[2], f[3]),
            _ => return Err(bad(&path, format!("malformed line {line:?}"))),
        };
        out.push(BlkioEntry {
            major: parse(&path, f[0])?,
            minor: parse(&path, f[1])?,
            op: op.to_string(),
            value: parse(&path, value)?,
        });
    }
    Ok(out)
}

/// io.stat lines `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`, mapped to v1's
/// tables as runc does (it drops the other keys).
fn io_v2(src: &Source) -> Result<Blkio> {
    let mut out = Blkio::default();
    let Some((path, text)) = src.read("io.stat")? else {
        return Ok(out);
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some((major, minor)) = words.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (major, minor) = (parse(&path, major)?, parse(&path, minor)?);
        for (key, value) in words.filter_map(|w| w.split_once('=')) {
            let (op, table) = match key {
                "rbytes" => ("Read", "ioServiceBytesRecursive"),
                "wbytes" => ("Write", "ioServiceBytesRecursive"),
                "rios" => ("Read", "ioServicedRecursive"),
                "wios" => ("Write", "ioServicedRecursive"),
                _ => continue,
            };
            let (op, value) = (op.to_string(), parse(&path, value)?);
            let entry = BlkioEntry {
                major,
                minor,
                op,
                value,
            };
            out.tables.entry(table).or_default().push(entry);
        }
    }
    Ok(out)
}

/// Per page size ("2MB", "1GB": those with hugetlb.<size>.* files). Like runc, from the
/// reservation counters (.rsvd, Linux 5.7+) when there are some: they also count pages that
/// mmap reserved but nothing touched yet.
fn hugetlb(src: &Source) -> Result<BTreeMap<String, Hugetlb>> {
    let mut sizes = BTreeSet::new();
    for dir in &src.dirs {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let size = name.to_str().and_then(|n| n.strip_prefix("hugetlb."));
            if let Some((size, _)) = size.and_then(|s| s.split_once('.')) {
                sizes.insert(size.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    for size in sizes {
        let p = format!("hugetlb.{size}");
        let usage_file = if src.v2 { "current" } else { "usage_in_bytes" };
        let rsvd = src.has(&format!("{p}.rsvd.{usage_file}"));
        let q = if rsvd { format!("{p}.rsvd") } else { p.clone() };
        let usage = src.uint0(&format!("{q}.{usage_file}"))?;
        let stats = if src.v2 {
            // No peak on v2 (hugetlb.<size>.max is the limit); failures are "max" events.
            let events = src.keyed(&format!("{p}.events"))?.unwrap_or_default();
            let failcnt = get(&events, "max");
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            }
        } else {
            let max = src.uint0(&format!("{q}.max_usage_in_bytes"))?;
            let failcnt = src.uint0(&format!("{q}.failcnt"))?;
            Hugetlb {
                usage,
                max,
                failcnt,
            }
        };
        out.insert(size, stats);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::placement::test_support::placement;
    use super::super::Layout;
    use super::*;
    use serde_json::json;

    /// Cgroup directories root/<name>/berth-test, from `[name]` lines each followed by
    /// `file=content` lines (`|` for a newline; `#` starts a comment line).
    fn fake(root: &Path, spec: &str) -> Placement {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for line in spec
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                dirs.push(root.join(name).join("berth-test"));
                fs::create_dir_all(&dirs[dirs.len() - 1]).unwrap();
            } else {
                let (file, text) = line.split_once('=').unwrap();
                let text = format!("{}\n", text.replace('|', "\n"));
                fs::write(dirs[dirs.len() - 1].join(file), text).unwrap();
            }
        }
        // Named after their hierarchy: "v2" or "unified" is cgroup2.
        let named: Vec<(&Path, &str)> = dirs
            .iter()
            .map(|d| {
                let name = d.parent().unwrap().file_name().unwrap().to_str().unwrap();
                (
                    d.as_path(),
                    if matches!(name, "v2" | "unified") {
                        ""
                    } else {
                        name
                    },
                )
            })
            .collect();
        let layout = match (named.iter().any(|d| d.1.is_empty()), named.len()) {
            (true, 1) => Layout::V2,
            (true, _) => Layout::Hybrid,
            (false, _) => Layout::V1,
        };
        placement(layout, &named)
    }

    /// A hybrid host's layout (formats as on a 5.x kernel): separate cpu and cpuacct
    /// hierarchies, and first a cgroup2 directory whose cpu.stat must not be taken for v1's.
    const V1: &str = "
        [unified]
        cgroup.controllers=
        cpu.stat=usage_usec 999|user_usec 1|system_usec 1
        cpu.pressure=some avg10=1.00 avg60=1.00 avg300=1.00 total=5
        [cpu]
        cpu.stat=nr_periods 12|nr_throttled 3|throttled_time 456789|nr_bursts 0|burst_time 0
        [cpuacct]
        cpuacct.usage=4282947700103
        cpuacct.usage_percpu=1657173459509 2625774240594\ncpuacct.usage_percpu_sys=5 6\ncpuacct.usage_percpu_user=7 8
        cpuacct.stat=user 305009|system 123284
        [memory]
        memory.stat=cache 9256960|rss 5255168|swap 0|total_cache 368582656
        memory.usage_in_bytes=14512128\nmemory.max_usage_in_bytes=20971520\nmemory.limit_in_bytes=9223372036854771712\nmemory.failcnt=3
        memory.memsw.usage_in_bytes=14512128\nmemory.memsw.max_usage_in_bytes=20971520\nmemory.memsw.limit_in_bytes=9223372036854771712\nmemory.memsw.failcnt=0
        memory.kmem.usage_in_bytes=1048576\nmemory.kmem.max_usage_in_bytes=2097152\nmemory.kmem.failcnt=0
        memory.kmem.tcp.usage_in_bytes=0\nmemory.kmem.tcp.max_usage_in_bytes=0\nmemory.kmem.tcp.limit_in_bytes=0\nmemory.kmem.tcp.failcnt=0
        memory.oom_control=oom_kill_disable 0|under_oom 0|oom_kill 2
        [pids]
        pids.current=5\npids.max=max
        [blkio]
        # bfq has no entries, so runc reports the throttle policy's recursive ones.
        blkio.bfq.io_serviced_recursive=Total 0
        blkio.bfq.io_service_bytes_recursive=Total 0
        blkio.throttle.io_service_bytes_recursive=8:0 Read 1282048|8:0 Write 0|Total 1282048
        blkio.throttle.io_serviced_recursive=8:0 Read 124|8:16 Write 104|8:0 Total 228|Total 228
        blkio.throttle.io_serviced=8:0 Read 1|Total 1\nblkio.throttle.io_service_bytes=8:0 Read 2
        [hugetlb]
        hugetlb.2MB.usage_in_bytes=4194304\nhugetlb.2MB.max_usage_in_bytes=6291456\nhugetlb.2MB.limit_in_bytes=9223372036854771712\nhugetlb.2MB.failcnt=1
        # 1GB has reservation counters, which runc prefers.
        hugetlb.1GB.usage_in_bytes=0\nhugetlb.1GB.failcnt=0
        hugetlb.1GB.rsvd.usage_in_bytes=1073741824\nhugetlb.1GB.rsvd.max_usage_in_bytes=1073741824\nhugetlb.1GB.rsvd.failcnt=0
        [cpuset]
        cpuset.cpus=0-3,8\ncpuset.mems=0-1\ncpuset.effective_cpus=0-3,8\ncpuset.effective_mems=0-1
        cpuset.cpu_exclusive=0\ncpuset.mem_hardwall=1\ncpuset.mem_exclusive=0\ncpuset.memory_migrate=1
        cpuset.memory_spread_page=0\ncpuset.memory_spread_slab=1\ncpuset.memory_pressure=7
        cpuset.sched_load_balance=1\ncpuset.sched_relax_domain_level=-1";

    const V2: &str = "
        [v2]
        cgroup.controllers=cpuset cpu io memory hugetlb pids rdma misc
        cpu.stat=usage_usec 1500|user_usec 1000|system_usec 500|nr_periods 10|nr_throttled 2
        memory.current=8388608\nmemory.max=max\nmemory.peak=10485760\nmemory.swap.current=4096\nmemory.swap.max=max
        memory.stat=anon 4194304|file 2097152|kernel 524288
        memory.events=low 0|high 0|max 4|oom 1|oom_kill 1|oom_group_kill 0
        pids.current=3\npids.max=100
        io.stat=8:0 rbytes=1048576 wbytes=4096 rios=20 wios=1 dbytes=0 dios=0|253:1 rbytes=512
        hugetlb.2MB.current=2097152\nhugetlb.2MB.max=max\nhugetlb.2MB.events=max 2\nhugetlb.2MB.events.local=max 2
        # As on kernels before 5.13: no `full` line.
        cpu.pressure=some avg10=0.00 avg60=0.00 avg300=0.00 total=8317
        memory.pressure=some avg10=1.50 avg60=0.25 avg300=0.00 total=123456|full avg10=0.50 avg60=0.10 avg300=0.00 total=65432
        io.pressure=some avg10=0.00 avg60=0.00 avg300=0.00 total=0|full avg10=0.00 avg60=0.00 avg300=0.00 total=0
        # runc's v2 driver reports no cpuset figures.
        cpuset.cpus=0-1\ncpuset.cpus.effective=0-1\ncpuset.mems=0\ncpuset.mems.effective=0";

    /// runc's "cpuset" without a v1 cpuset hierarchy, and always on v2.
    static ZERO_CPUSET: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
        json!({"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
            "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
            "sched_load_balance": 0, "sched_relax_domain_level": 0})
    });

    fn json_of(dirs: &Placement) -> serde_json::Value {
        serde_json::to_value(collect(dirs).unwrap()).unwrap()
    }

    #[test]
    fn v1_separate_hierarchies() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = fake(tmp.path(), V1);
        let limit = 9223372036854771712u64;
        let want = json!({
            "cpu": {
                "usage": {"total": 4282947700103u64, "percpu": [1657173459509u64, 2625774240594u64],
                    "percpu_kernel": [5, 6], "percpu_user": [7, 8],
                    "kernel": 1232840000000u64, "user": 3050090000000u64},
                "throttling": {"periods": 12, "throttledPeriods": 3, "throttledTime": 456789}},
            "cpuset": {"cpus": [0, 1, 2, 3, 8], "cpu_exclusive": 0, "mems": [0, 1],
                "mem_hardwall": 1, "mem_exclusive": 0, "memory_migrate": 1,
                "memory_spread_page": 0, "memory_spread_slab": 1, "memory_pressure": 7,
                "sched_load_balance": 1, "sched_relax_domain_level": -1},
            "memory": {
                "cache": 9256960,
                "usage": {"limit": limit, "usage": 14512128, "max": 20971520, "failcnt": 3},
                "swap": {"limit": limit, "usage": 14512128, "max": 20971520, "failcnt": 0},
                "kernel": {"limit": 0, "usage": 1048576, "max": 2097152, "failcnt": 0},
                "raw": {"cache": 9256960, "rss": 5255168, "swap": 0, "total_cache": 368582656}},
            "pids": {"current": 5},
            "blkio": {
                "ioServiceBytesRecursive": [
                    {"major": 8, "op": "Read", "value": 1282048}, {"major": 8, "op": "Write"}],
                "ioServicedRecursive": [
                    {"major": 8, "op": "Read", "value": 124},
                    {"major": 8, "minor": 16, "op": "Write", "value": 104},
                    {"major": 8, "op": "Total", "value": 228}]},
            "hugetlb": {
                "1GB": {"usage": 1073741824, "max": 1073741824, "failcnt": 0},
                "2MB": {"usage": 4194304, "max": 6291456, "failcnt": 1}},
            "intel_rdt": {},
            "network_interfaces": null,
        });
        assert_eq!(json_of(&dirs), want);
        assert_eq!(oom_kills(&dirs), Some(2));
    }

    #[test]
    fn v2_single_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = fake(tmp.path(), V2);
        let want = json!({
            "cpu": {
                "usage": {"total": 1500000, "kernel": 500000, "user": 1000000},
                "throttling": {"periods": 10, "throttledPeriods": 2},
                "psi": {"some": {"avg10": 0, "avg60": 0, "avg300": 0, "total": 8317}}},
            "cpuset": ZERO_CPUSET.clone(),
            "memory": {
                "cache": 2097152,
                "usage": {"limit": u64::MAX, "usage": 8388608, "max": 10485760, "failcnt": 0},
                "swap": {"limit": u64::MAX, "usage": 8392704, "failcnt": 0}, // memory+swap
                "raw": {"anon": 4194304, "file": 2097152, "kernel": 524288},
                "psi": {
                    "some": {"avg10": 1.5, "avg60": 0.25, "avg300": 0, "total": 123456},
                    "full": {"avg10": 0.5, "avg60": 0.1, "avg300": 0, "total": 65432}}},
            "pids": {"current": 3, "limit": 100},
            "blkio": {
                "ioServiceBytesRecursive": [
                    {"major": 8, "op": "Read", "value": 1048576},
                    {"major": 8, "op": "Write", "value": 4096},
                    {"major": 253, "minor": 1, "op": "Read", "value": 512}],
                "ioServicedRecursive": [
                    {"major": 8, "op": "Read", "value": 20}, {"major": 8, "op": "Write", "value": 1}],
                // Both halves all zero: Go's omitzero leaves an empty object.
                "psi": {}},
            "hugetlb": {"2MB": {"usage": 2097152, "failcnt": 2}},
            "intel_rdt": {},
            "network_interfaces": null,
        });
        assert_eq!(json_of(&dirs), want);
        assert_eq!(oom_kills(&dirs), Some(1));
        // Whole averages are written as Go writes them.
        let text = serde_json::to_string(&collect(&dirs).unwrap()).unwrap();
        assert!(
            text.contains(r#"{"avg10":0,"avg60":0,"avg300":0,"total":8317}"#),
            "{text}"
        );

        // A finite swap limit is reported as memory+swap too.
        fs::write(dirs.dirs[0].path.join("memory.max"), "16777216\n").unwrap();
        fs::write(dirs.dirs[0].path.join("memory.swap.max"), "1048576\n").unwrap();
        assert_eq!(
            json_of(&dirs)["memory"]["swap"]["limit"],
            16777216 + 1048576
        );
    }

    #[test]
    fn missing_controllers_are_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = json!({"cpu": {}, "cpuset": ZERO_CPUSET.clone(), "memory": {}, "pids": {},
            "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": null});
        let v1 = fake(tmp.path(), "[memory]\n[cpu]");
        assert_eq!(json_of(&v1), empty);
        assert_eq!(oom_kills(&v1), None);
        // A v2 cgroup without any controller delegated to it: only its member count.
        let v2 = fake(tmp.path(), "[v2]\ncgroup.controllers=\ncgroup.procs=1|2");
        let mut want = empty;
        want["pids"] = json!({"current": 2});
        assert_eq!(json_of(&v2), want);
        assert_eq!(oom_kills(&v2), None);
    }

    #[test]
    fn garbage_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = fake(tmp.path(), V1);
        fs::write(dirs.dirs[3].path.join("memory.usage_in_bytes"), "lots\n").unwrap();
        let err = format!("{:#}", collect(&dirs).unwrap_err());
        assert!(
            err.contains("memory/berth-test/memory.usage_in_bytes"),
            "{err}"
        );
        assert!(err.contains("lots"), "{err}");

        let v2 = fake(tmp.path(), "[v2]\ncgroup.controllers=");
        for garbage in ["usage_usec 12\nuser_usec\n", "usage_usec 1x\n"] {
            fs::write(v2.dirs[0].path.join("cpu.stat"), garbage).unwrap();
            let err = format!("{:#}", collect(&v2).unwrap_err());
            assert!(err.contains("v2/berth-test/cpu.stat"), "{err}");
        }
        fs::remove_file(v2.dirs[0].path.join("cpu.stat")).unwrap();
        for (garbage, word) in [
            ("some avg10=0.00 avg60=x avg300=0.00 total=1", "avg60=x"),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nfull avg10",
                "avg10",
            ),
            ("some total=-3", "total=-3"),
            ("some avg10=NaN", "NaN"),
        ] {
            fs::write(v2.dirs[0].path.join("io.pressure"), garbage).unwrap();
            let err = format!("{:#}", collect(&v2).unwrap_err());
            assert!(err.contains("v2/berth-test/io.pressure"), "{err}");
            assert!(err.contains(word), "{err}");
        }

        let v1 = fake(tmp.path(), "[cpuset]\ncpuset.cpus=0-1");
        for garbage in ["0-x", "", "3-1", "0,,2", "70000"] {
            fs::write(v1.dirs[0].path.join("cpuset.cpus"), garbage).unwrap();
            let err = format!("{:#}", collect(&v1).unwrap_err());
            assert!(err.contains("cpuset/berth-test/cpuset.cpus"), "{err}");
        }
        fs::write(v1.dirs[0].path.join("cpuset.cpus"), "0").unwrap();
        fs::write(
            v1.dirs[0].path.join("cpuset.sched_relax_domain_level"),
            "deep",
        )
        .unwrap();
        let err = format!("{:#}", collect(&v1).unwrap_err());
        assert!(err.contains("cpuset.sched_relax_domain_level"), "{err}");
    }

    #[test]
    fn cpuset_lists_are_expanded() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = fake(tmp.path(), "[cpuset]");
        let src = Source::new(&dirs);
        for (text, want) in [
            ("0\n", vec![0]),
            ("0-3,8\n", vec![0, 1, 2, 3, 8]),
            ("1,3-4,10-11", vec![1, 3, 4, 10, 11]),
            ("5-5", vec![5]),
            ("8191", vec![8191]),
        ] {
            fs::write(dirs.dirs[0].path.join("cpuset.cpus"), text).unwrap();
            assert_eq!(src.id_list("cpuset.cpus").unwrap(), want, "{text:?}");
        }
        // No file (no cpuset hierarchy): nothing, and "cpus" left out of the JSON.
        assert_eq!(src.id_list("cpuset.mems").unwrap(), Vec::<u16>::new());
    }
}

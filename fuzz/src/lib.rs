//! What the fuzz targets share: a scratch directory and fake cgroup trees in it, so code
//! that writes cgroup files or reads a bundle runs for real without touching the host.
//!
//! The scratch directory is `$BERTH_FUZZ_SCRATCH/<pid>` (the Makefile points it into
//! fuzz/target and removes it after each run), else `$TMPDIR/berth-fuzz-<pid>`; it is removed
//! when the fuzzer exits normally.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth::cgroups::{self, Dir, Driver, Hierarchy, Layout, Placement};

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_scratch() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// This fuzzer process's scratch directory, made on first use.
pub fn scratch() -> &'static Path {
    SCRATCH.get_or_init(|| {
        let pid = std::process::id();
        let dir = match std::env::var_os("BERTH_FUZZ_SCRATCH") {
            Some(base) => PathBuf::from(base).join(pid.to_string()),
            None => std::env::temp_dir().join(format!("berth-fuzz-{pid}")),
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fuzz scratch directory");
        // SAFETY: registers a function without arguments that only removes the directory;
        // libFuzzer ends a clean run with exit(), which runs it.
        unsafe { libc::atexit(remove_scratch) };
        dir
    })
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A bundle directory with an empty `rootfs` in it, for `spec::validate`.
pub fn bundle() -> &'static Path {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = scratch().join("bundle");
        std::fs::create_dir_all(dir.join("rootfs")).expect("create the fuzz bundle");
        dir
    })
}

/// The v1 hierarchies of a hybrid host and the files each has in a container's cgroup.
const V1: &[(&str, &[&str])] = &[
    (
        "memory",
        &[
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
            "memory.kmem.tcp.limit_in_bytes",
            "memory.usage_in_bytes",
        ],
    ),
    (
        "cpu,cpuacct",
        &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.cfs_burst_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
            "cpu.idle",
        ],
    ),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
    ("pids", &["pids.max"]),
    (
        "blkio",
        &[
            "blkio.weight",
            "blkio.leaf_weight",
            "blkio.weight_device",
            "blkio.leaf_weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ],
    ),
    (
        "hugetlb",
        &["hugetlb.2MB.limit_in_bytes", "hugetlb.1GB.limit_in_bytes"],
    ),
    (
        "net_cls,net_prio",
        &["net_cls.classid", "net_prio.ifpriomap"],
    ),
    ("rdma", &["rdma.max"]),
    ("devices", &["devices.allow", "devices.deny"]),
];

/// The files of a cgroup2 directory (also the hybrid host's unified one).
const V2: &[&str] = &[
    "cgroup.controllers",
    "memory.current",
    "memory.max",
    "memory.low",
    "memory.high",
    "memory.swap.max",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "rdma.max",
];

/// A container's cgroup directories on a fake hybrid host (v1 controllers and a unified
/// cgroup2 directory) and on a fake pure v2 host, every file a limit may go to present.
pub struct FakeCgroups {
    pub hybrid: Placement,
    pub v2: Placement,
}

fn fake_dir(path: PathBuf, controllers: &str, v2: bool) -> Dir {
    Dir {
        mount_point: path.parent().expect("below a mount point").to_path_buf(),
        path,
        controllers: controllers.split(',').map(String::from).collect(),
        v2,
    }
}

impl FakeCgroups {
    /// The trees, with the files berth reads back (usage, current limit) reset, so that each
    /// input sees the same state.
    pub fn get() -> &'static FakeCgroups {
        static FAKE: OnceLock<FakeCgroups> = OnceLock::new();
        let fake = FAKE.get_or_init(|| {
            let root = scratch().join("cgroup");
            let mut hybrid = Vec::new();
            for (hierarchy, files) in V1 {
                let dir = root.join("hybrid").join(hierarchy).join("c");
                std::fs::create_dir_all(&dir).expect("create a fake cgroup");
                for f in *files {
                    write(&dir.join(f), "");
                }
                hybrid.push(fake_dir(dir, hierarchy, false));
            }
            let mut v2 = Vec::new();
            for top in ["hybrid/unified", "v2"] {
                let dir = root.join(top).join("c");
                std::fs::create_dir_all(&dir).expect("create a fake cgroup");
                for f in V2 {
                    write(&dir.join(f), "");
                }
                v2.push(fake_dir(
                    dir,
                    "cpuset,cpu,io,memory,hugetlb,pids,rdma",
                    true,
                ));
            }
            hybrid.push(v2.remove(0));
            let placement = |layout, dirs| Placement {
                layout,
                driver: Driver::Cgroupfs,
                dirs,
            };
            FakeCgroups {
                hybrid: placement(Layout::Hybrid, hybrid),
                v2: placement(Layout::V2, v2),
            }
        });
        let memory = &fake.hybrid.dirs[0].path;
        write(
            &memory.join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(&memory.join("memory.usage_in_bytes"), "1048576\n");
        write(&fake.v2.dirs[0].path.join("memory.current"), "1048576\n");
        fake
    }
}

/// The cgroup mounts of a hybrid host like the one berth is tested on.
pub const HOST_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// berth's own cgroups on that host (one of them nested, as under a service manager).
pub const HOST_PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
5:devices:/
4:memory:/ci/job
3:cpuset:/
1:cpu,cpuacct:/
0::/
";

/// The hierarchies of `HOST_MOUNTINFO`.
pub fn host_hierarchies() -> &'static [Hierarchy] {
    static H: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    H.get_or_init(|| cgroups::parse_hierarchies(HOST_MOUNTINFO))
}

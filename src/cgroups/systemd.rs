//! The systemd cgroup driver (`--systemd-cgroup`), as runc has it: the container's cgroup is a
//! transient scope unit that systemd makes, over D-Bus, in the slice `linux.cgroupsPath` names
//! (`slice:prefix:name` gives `<prefix>-<name>.scope` in `<slice>`). systemd gets the resource
//! properties it understands; berth then writes every limit to the unit's cgroup files itself,
//! as it does without systemd (and as runc does), so the limits are the same either way.
//! `delete` stops the unit.
//!
//! The D-Bus client is the `dbus` crate (libdbus): synchronous, no threads or executor in the
//! process that forks the container.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dbus::arg::{RefArg, Variant};
use dbus::blocking::LocalConnection;
use dbus::message::MatchRule;
use oci_spec::runtime::LinuxResources;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long systemd may take to answer a call or finish a job (runc waits 30 s for a job).
const TIMEOUT: Duration = Duration::from_secs(30);

/// JobRemoved signals seen: (job, result).
type Jobs = Rc<RefCell<Vec<(dbus::Path<'static>, String)>>>;

/// A unit property as StartTransientUnit and SetUnitProperties take it: `(name, variant)`.
pub type Property = (String, Variant<Box<dyn RefArg>>);

fn prop<T: RefArg + 'static>(name: &str, value: T) -> Property {
    (name.to_string(), Variant(Box::new(value)))
}

/// The container's unit, from `linux.cgroupsPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// e.g. `docker-<id>.scope`; a name ending in `.slice` is a slice unit (runc's rule).
    pub name: String,
    /// The slice it goes in, e.g. `system.slice`.
    pub slice: String,
}

impl Unit {
    /// The unit for `linux.cgroupsPath` (`slice:prefix:name`) of container `id`, with runc's
    /// defaults: no path is `:runc:<id>`, an empty slice is `system.slice` (`user.slice`
    /// rootless), an empty name is an error.
    pub fn from_cgroups_path(path: Option<&str>, id: &str, rootless: bool) -> Result<Unit> {
        let path = path.filter(|p| !p.is_empty());
        let default = format!(":runc:{id}");
        let text = path.unwrap_or(&default);
        let parts: Vec<&str> = text.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!("linux.cgroupsPath: {text:?}: with --systemd-cgroup it must be \"slice:prefix:name\" (e.g. \"system.slice:docker:<id>\")");
        };
        let slice = match slice {
            "" if rootless => "user.slice",
            "" => "system.slice",
            s => s,
        };
        expand_slice(slice).with_context(|| format!("linux.cgroupsPath: {text:?}"))?;
        if name.is_empty() {
            bail!("linux.cgroupsPath: {text:?}: the name (after the second ':') must not be empty");
        }
        let name = match name.ends_with(".slice") {
            true => name.to_string(),
            false => format!("{prefix}-{name}.scope"),
        };
        check_unit_name(&name).with_context(|| format!("linux.cgroupsPath: {text:?}"))?;
        Ok(Unit {
            name,
            slice: slice.to_string(),
        })
    }

    /// The unit's cgroup from the root of the hierarchy, e.g.
    /// `/system.slice/docker-<id>.scope`.
    pub fn cgroup(&self) -> PathBuf {
        let slice = expand_slice(&self.slice).expect("checked in from_cgroups_path");
        let base = match self.name.ends_with(".slice") {
            // A slice unit's place is given by its own name, not by the parent's.
            true => expand_slice(&self.name).expect("checked in from_cgroups_path"),
            false => slice.join(&self.name),
        };
        Path::new("/").join(base)
    }
}

/// Whether a path given as `linux.cgroupsPath` is in the systemd driver's `slice:prefix:name`
/// form rather than a directory.
pub fn looks_like_unit_path(path: &str) -> bool {
    path.split(':').count() == 3 && !path.contains('/')
}

/// A slice's cgroup from the root, by systemd's naming: `a-b-c.slice` is
/// `a.slice/a-b.slice/a-b-c.slice`, `-.slice` the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("invalid slice name {slice:?}: a slice's name ends in \".slice\"");
    };
    if stem.is_empty() || slice.contains('/') {
        bail!("invalid slice name {slice:?}");
    }
    check_unit_name(slice)?;
    let mut path = PathBuf::new();
    if stem == "-" {
        return Ok(path);
    }
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            bail!("invalid slice name {slice:?}: no empty part between dashes, nor a leading or trailing dash");
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// systemd's rule for a unit name: at most 255 bytes of ASCII letters, digits and `:-_.\@`.
fn check_unit_name(name: &str) -> Result<()> {
    if name.len() > 255 {
        bail!("unit name {name:?} is longer than systemd's 255 bytes");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
    {
        bail!("unit name {name:?}: systemd does not allow {c:?} in a unit name");
    }
    Ok(())
}

/// A connection to systemd: the system instance on the system bus, or (`user`, for rootless
/// containers, as runc's systemdUser) the user's own instance on the session bus
/// ($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus).
pub struct Systemd {
    transport: Transport,
}

enum Transport {
    Dbus(Dbus),
    /// The user's bus from a user namespace (rootless podman's), through busctl: libdbus
    /// tells the bus it is uid 0 there, which the bus refuses; sd-bus lets the kernel say.
    Busctl(super::busctl::Busctl),
}

impl Systemd {
    pub fn connect(user: bool) -> Result<Systemd> {
        let transport = match user && crate::namespaces::in_user_namespace() {
            true => Transport::Busctl(super::busctl::Busctl),
            false => Transport::Dbus(Dbus::connect(user)?),
        };
        Ok(Systemd { transport })
    }

    /// The manager's own cgroup (`ControlGroup`): where a user instance's units are, e.g.
    /// `/user.slice/user-1000.slice/user@1000.service`; empty for the system instance.
    pub fn manager_cgroup(&self) -> Result<PathBuf> {
        match &self.transport {
            Transport::Dbus(d) => d.manager_cgroup(),
            Transport::Busctl(b) => b.manager_cgroup(),
        }
    }

    /// Starts `unit` as a transient scope holding `pid` (moved there by systemd), with
    /// `resources` as properties, and waits for the job.
    pub fn start_scope(&self, unit: &Unit, pid: i32, resources: Vec<Property>) -> Result<()> {
        match &self.transport {
            Transport::Dbus(d) => d.start_scope(unit, pid, resources),
            Transport::Busctl(b) => b.start_scope(unit, &scope_properties(unit, pid, &resources)),
        }
    }

    /// Sets properties of a running unit (`update`), for its runtime only.
    pub fn set_properties(&self, unit: &str, props: Vec<Property>) -> Result<()> {
        match &self.transport {
            Transport::Dbus(d) => d.set_properties(unit, props),
            Transport::Busctl(b) => b.set_properties(unit, &props),
        }
    }

    /// Stops `unit` and waits until systemd has.
    pub fn stop(&self, unit: &str) -> Result<()> {
        match &self.transport {
            Transport::Dbus(d) => d.stop(unit),
            Transport::Busctl(b) => b.stop(unit),
        }
    }
}

/// systemd over libdbus.
struct Dbus {
    conn: LocalConnection,
}

impl Dbus {
    fn connect(user: bool) -> Result<Dbus> {
        // (libdbus sets SIGPIPE to SIG_IGN here, as Rust's std did already: the setup
        // process gives the container the default back, `signals::reset_dispositions`.)
        let conn = match user {
            false => LocalConnection::new_system(),
            true => LocalConnection::new_session(),
        }
        .map_err(|e| {
            let bus = match user {
                false => "systemd on the system bus",
                true => "the user's systemd instance on the session bus (rootless; is DBUS_SESSION_BUS_ADDRESS or XDG_RUNTIME_DIR set, and the user's systemd running?)",
            };
            anyhow::anyhow!(
                "--systemd-cgroup: cannot reach {bus}: {}",
                e.message().unwrap_or("no message")
            )
        })?;
        Ok(Dbus { conn })
    }

    fn manager_cgroup(&self) -> Result<PathBuf> {
        use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;
        let cgroup: String = self
            .manager()
            .get(MANAGER, "ControlGroup")
            .map_err(|e| dbus_error("get the manager's ControlGroup", &e))?;
        Ok(PathBuf::from(cgroup))
    }

    fn manager(&self) -> dbus::blocking::Proxy<'_, &LocalConnection> {
        self.conn.with_proxy(SYSTEMD, MANAGER_PATH, TIMEOUT)
    }

    /// Starts `unit` as a transient scope holding `pid` (moved there by systemd), with
    /// `resources` as properties, and waits for the job. A failed unit of that name left
    /// from before is reset and the start tried once more, as runc does.
    pub fn start_scope(&self, unit: &Unit, pid: i32, resources: Vec<Property>) -> Result<()> {
        let jobs = self.watch_jobs()?;
        let job = match self.start_transient(unit, pid, &resources) {
            Err(e) if e.name() == Some("org.freedesktop.systemd1.UnitExists") => {
                let _ = self.reset_failed(&unit.name);
                self.start_transient(unit, pid, &resources)
            }
            other => other,
        }
        .map_err(|e| refused(&unit.name, &e))?;
        match self.wait_for_job(&jobs, &job)?.as_deref() {
            Some("done") => Ok(()),
            Some(result) => {
                let _ = self.reset_failed(&unit.name);
                bail!("systemd: the job starting unit {:?} ended {result:?} (journalctl -u {} tells why)", unit.name, unit.name)
            }
            None => {
                let _ = self.reset_failed(&unit.name);
                bail!(
                    "systemd: unit {:?} was not started within {} s",
                    unit.name,
                    TIMEOUT.as_secs()
                )
            }
        }
    }

    /// From here on, the (job, result) of every job systemd removes. Job signals go only to
    /// subscribers: subscribe before the job can end.
    fn watch_jobs(&self) -> Result<Jobs> {
        let _: () = self
            .manager()
            .method_call(MANAGER, "Subscribe", ())
            .map_err(|e| dbus_error("Subscribe", &e))?;
        let removed = Jobs::default();
        let sink = removed.clone();
        self.conn
            .add_match(
                MatchRule::new_signal(MANAGER, "JobRemoved"),
                move |(_id, job, _unit, result): (u32, dbus::Path<'static>, String, String),
                      _,
                      _| {
                    sink.borrow_mut().push((job, result));
                    true
                },
            )
            .map_err(|e| dbus_error("AddMatch", &e))?;
        Ok(removed)
    }

    /// The result of `job` once systemd has removed it; None after TIMEOUT.
    fn wait_for_job(&self, jobs: &Jobs, job: &dbus::Path<'static>) -> Result<Option<String>> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some((_, result)) = jobs.borrow().iter().find(|(j, _)| j == job) {
                return Ok(Some(result.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.conn
                .process(left)
                .map_err(|e| dbus_error("wait for the job", &e))?;
        }
    }

    fn start_transient(
        &self,
        unit: &Unit,
        pid: i32,
        resources: &[Property],
    ) -> std::result::Result<dbus::Path<'static>, dbus::Error> {
        let props = scope_properties(unit, pid, resources);
        let aux: Vec<(String, Vec<Property>)> = Vec::new();
        let (job,): (dbus::Path<'static>,) = self.manager().method_call(
            MANAGER,
            "StartTransientUnit",
            (unit.name.as_str(), "replace", props, aux),
        )?;
        Ok(job)
    }

    /// Sets properties of a running unit (`update`), for its runtime only.
    pub fn set_properties(&self, unit: &str, props: Vec<Property>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let _: () = self
            .manager()
            .method_call(MANAGER, "SetUnitProperties", (unit, true, props))
            .map_err(|e| refused(unit, &e))?;
        Ok(())
    }

    /// Stops `unit` and waits until systemd has, then lets systemd forget it if it failed. A
    /// unit systemd no longer knows (its processes all exited, so it was collected) is fine.
    pub fn stop(&self, unit: &str) -> Result<()> {
        let jobs = self.watch_jobs()?;
        let reply: std::result::Result<(dbus::Path<'static>,), _> =
            self.manager()
                .method_call(MANAGER, "StopUnit", (unit, "replace"));
        match reply {
            Ok((job,)) => {
                if self.wait_for_job(&jobs, &job)?.is_none() {
                    bail!(
                        "systemd: unit {unit:?} was not stopped within {} s",
                        TIMEOUT.as_secs()
                    );
                }
            }
            Err(e) if e.name() == Some("org.freedesktop.systemd1.NoSuchUnit") => return Ok(()),
            Err(e) => return Err(dbus_error(&format!("stop unit {unit:?}"), &e)),
        }
        let _ = self.reset_failed(unit);
        Ok(())
    }

    fn reset_failed(&self, unit: &str) -> std::result::Result<(), dbus::Error> {
        self.manager()
            .method_call(MANAGER, "ResetFailedUnit", (unit,))
    }
}

/// The uid the user's session bus knows its caller by (`OwnerUID` of `busctl --user
/// status`, as runc's DetectUID): berth as uid 0 of a user namespace (rootless podman runs it
/// so) is rootless when that is not 0. busctl, not libdbus: libdbus tells the bus it is uid 0
/// there, which the bus refuses, while sd-bus lets the kernel say who it is. None without
/// busctl or a session bus.
pub fn session_bus_uid() -> Option<u32> {
    let out = std::process::Command::new("busctl")
        .args(["--user", "--no-pager", "status"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    owner_uid(&String::from_utf8_lossy(&out.stdout))
}

fn owner_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("OwnerUID="))
        .and_then(|v| v.trim().parse().ok())
}

/// The properties of the container's transient unit: berth's own, then `resources`.
fn scope_properties(unit: &Unit, pid: i32, resources: &[Property]) -> Vec<Property> {
    let mut props: Vec<Property> = vec![
        prop("Description", format!("berth container {}", unit.name)),
        prop("PIDs", vec![pid as u32]),
        prop("DefaultDependencies", false),
        // Always account, as runc: the kernel has trouble joining memory later.
        prop("MemoryAccounting", true),
        prop("CPUAccounting", true),
        prop("IOAccounting", true),
        prop("TasksAccounting", true),
    ];
    if unit.name.ends_with(".slice") {
        props.push(prop("Wants", vec![unit.slice.clone()]));
    } else {
        props.push(prop("Slice", unit.slice.clone()));
        props.push(prop("Delegate", true));
    }
    props.extend(
        resources
            .iter()
            .map(|(name, value)| (name.clone(), Variant(value.0.box_clone()))),
    );
    props
}

fn dbus_error(what: &str, e: &dbus::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "systemd over D-Bus: {what}: {} ({})",
        e.message().unwrap_or("no message"),
        e.name().unwrap_or("no error name")
    )
}

fn refused(unit: &str, e: &dbus::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "systemd refused unit {unit:?}: {} ({})",
        e.message().unwrap_or("no message"),
        e.name().unwrap_or("no error name")
    )
}

/// The properties systemd has for `linux.resources` (runc's table, docs/systemd.md); berth
/// writes the cgroup files as well, and those it alone knows. `v2`: the unified hierarchy's
/// properties, else the v1 ones.
pub fn resource_properties(r: &LinuxResources, v2: bool) -> Result<Vec<Property>> {
    let mut props = Vec::new();
    let limit = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            props.push(prop(if v2 { "MemoryMax" } else { "MemoryLimit" }, limit(l)));
        }
        if v2 {
            if let Some(low) = m.reservation().filter(|r| *r != 0) {
                props.push(prop("MemoryLow", limit(low)));
            }
            match (m.swap().filter(|s| *s != 0), m.limit()) {
                (Some(-1), _) => props.push(prop("MemorySwapMax", u64::MAX)),
                (Some(swap), Some(l)) if l > 0 && swap >= l => {
                    props.push(prop("MemorySwapMax", (swap - l) as u64))
                }
                // Refused by name when the files are written.
                _ => {}
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            match v2 {
                true => props.push(prop(
                    "CPUWeight",
                    super::resources::shares_to_weight(shares),
                )),
                false => props.push(prop("CPUShares", shares)),
            }
        }
        let period = c.period().unwrap_or(0);
        if period != 0 {
            props.push(prop("CPUQuotaPeriodUSec", period));
        }
        let quota = c.quota().unwrap_or(0);
        if quota != 0 || period != 0 {
            // Microseconds per second of CPU time; systemd keeps whole percents, so round
            // up to 10 ms, as runc (berth's file write then sets the exact quota).
            let per_sec = match quota {
                q if q > 0 => {
                    let p = if period == 0 { 100_000 } else { period };
                    (q as u64 * 1_000_000 / p).div_ceil(10_000) * 10_000
                }
                _ => u64::MAX,
            };
            props.push(prop("CPUQuotaPerSecUSec", per_sec));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            props.push(prop("AllowedCPUs", cpu_list_bits("cpu.cpus", cpus)?));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            props.push(prop("AllowedMemoryNodes", cpu_list_bits("cpu.mems", mems)?));
        }
    }
    if let Some(p) = r.pids() {
        let max = match p.limit() {
            l if l < 0 => u64::MAX,
            0 => 1, // systemd refuses 0
            l => l as u64,
        };
        props.push(prop("TasksMax", max));
    }
    if v2 {
        for (key, value) in r.unified().iter().flatten() {
            let name = match key.as_str() {
                "memory.high" => "MemoryHigh",
                "memory.low" => "MemoryLow",
                "memory.min" => "MemoryMin",
                "memory.max" => "MemoryMax",
                "memory.swap.max" => "MemorySwapMax",
                "pids.max" => "TasksMax",
                "cpu.weight" => "CPUWeight",
                _ => continue,
            };
            let number = match value.trim() {
                "max" => u64::MAX,
                v => v.parse::<u64>().with_context(|| {
                    format!("linux.resources.unified.{key:?}: {value:?} is not a number or \"max\"")
                })?,
            };
            props.push(prop(name, number));
        }
    }
    Ok(props)
}

/// The device rules in systemd's words: `DevicePolicy=strict` and a `DeviceAllow` entry per
/// allowed device (`/dev/char/1:3`, `char-136` for any minor, `char-*`), as runc sends them.
/// berth's own eBPF filter, loaded once the unit exists, replaces systemd's; these keep a
/// `systemctl daemon-reload`, which makes systemd attach its filter again, from taking a
/// device away. What systemd cannot say (deny rules on an allow-all default, `*:N`) becomes
/// the wider rule that holds it, never a narrower one: berth's filter still enforces the rest.
pub fn device_properties(rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<Vec<Property>> {
    let (policy, allow) = device_allow(rules)?;
    Ok(vec![
        prop("DevicePolicy", policy.to_string()),
        prop("DeviceAllow", allow),
    ])
}

/// `DevicePolicy` and the `DeviceAllow` entries (path, access) for `rules`.
fn device_allow(
    rules: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<(&'static str, Vec<(String, String)>)> {
    let (default_allow, exceptions) = super::devices::net_rules(rules)?;
    if default_allow {
        if !exceptions.is_empty() {
            log::debug!("systemd has no deny rules; its unit allows every device, berth's filter denies {exceptions:?}");
        }
        return Ok(("auto", Vec::new()));
    }
    let allow = exceptions
        .into_iter()
        .map(|r| {
            let kind = if r.block { "block" } else { "char" };
            let path = match (r.major, r.minor) {
                (Some(major), Some(minor)) => format!("/dev/{kind}/{major}:{minor}"),
                (Some(major), None) => format!("{kind}-{major}"),
                (None, _) => format!("{kind}-*"),
            };
            (path, r.access)
        })
        .collect();
    Ok(("strict", allow))
}

/// The annotation prefix runc takes unit properties from.
pub const PROPERTY_ANNOTATION_PREFIX: &str = "org.systemd.property.";

/// Unit properties from the config's `org.systemd.property.NAME` annotations, as runc: the
/// value in GVariant text form (`uint64 30000000`, `true`, `'inactive-or-failed'`, `['a']`),
/// and a NAME ending in a lowercase letter and `Sec` given in seconds, sent as its `USec`
/// property (`TimeoutStopSec=5` is TimeoutStopUSec 5000000). Sorted by name, so a config
/// gives the same call every time.
pub fn annotation_properties(
    annotations: &std::collections::HashMap<String, String>,
) -> Result<Vec<Property>> {
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(PROPERTY_ANNOTATION_PREFIX))
        .collect();
    keys.sort();
    let mut props = Vec::new();
    for key in keys {
        let name = &key[PROPERTY_ANNOTATION_PREFIX.len()..];
        let text = &annotations[key];
        let field = || format!("annotations.{key:?}");
        if name.len() < 3 || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            bail!(
                "{}: {name:?} is no systemd property name (letters only)",
                field()
            );
        }
        let value = gvariant::parse(text).map_err(|e| anyhow!("{}: {text:?}: {e}", field()))?;
        let seconds_name = name
            .strip_suffix("Sec")
            .filter(|stem| stem.ends_with(|c: char| c.is_ascii_lowercase()));
        match seconds_name {
            Some(stem) => {
                let usec = value.as_usec().ok_or_else(|| {
                    anyhow!("{}: {text:?}: a number of seconds is needed", field())
                })?;
                props.push(prop(&format!("{stem}USec"), usec));
            }
            None => props.push((name.to_string(), Variant(value.into_ref_arg()))),
        }
    }
    Ok(props)
}

/// The part of GVariant's text format that unit properties need: booleans, numbers (typed
/// with `uint64`, `int32`, ... or untyped: int32, or double with a point), strings in single
/// or double quotes, and arrays of strings (`['a', 'b']`, `@as []`).
mod gvariant {
    use dbus::arg::RefArg;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Bool(bool),
        U8(u8),
        I16(i16),
        U16(u16),
        I32(i32),
        U32(u32),
        I64(i64),
        U64(u64),
        Double(f64),
        Str(String),
        Strings(Vec<String>),
    }

    impl Value {
        pub fn into_ref_arg(self) -> Box<dyn RefArg> {
            match self {
                Value::Bool(v) => Box::new(v),
                Value::U8(v) => Box::new(v),
                Value::I16(v) => Box::new(v),
                Value::U16(v) => Box::new(v),
                Value::I32(v) => Box::new(v),
                Value::U32(v) => Box::new(v),
                Value::I64(v) => Box::new(v),
                Value::U64(v) => Box::new(v),
                Value::Double(v) => Box::new(v),
                Value::Str(v) => Box::new(v),
                Value::Strings(v) => Box::new(v),
            }
        }

        /// Seconds as microseconds (runc's conversion for `...Sec` names).
        pub fn as_usec(&self) -> Option<u64> {
            let whole = |n: i128| u64::try_from(n.checked_mul(1_000_000)?).ok();
            match *self {
                Value::U8(v) => whole(v.into()),
                Value::I16(v) => whole(v.into()),
                Value::U16(v) => whole(v.into()),
                Value::I32(v) => whole(v.into()),
                Value::U32(v) => whole(v.into()),
                Value::I64(v) => whole(v.into()),
                Value::U64(v) => whole(v.into()),
                Value::Double(v) if v >= 0.0 && (v * 1e6) < u64::MAX as f64 => {
                    Some((v * 1e6) as u64)
                }
                _ => None,
            }
        }
    }

    const TAKES: &str = "not a value this takes (true/false, a number, optionally typed as in \"uint64 5\", a quoted string, or an array of strings)";

    pub fn parse(text: &str) -> Result<Value, String> {
        let text = text.trim();
        match text {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            _ => {}
        }
        if let Some(rest) = text.strip_prefix("@as") {
            return strings(rest.trim());
        }
        if text.starts_with('[') {
            return strings(text);
        }
        if text.starts_with(['\'', '"']) {
            let (s, rest) = string(text)?;
            return match rest.trim() {
                "" => Ok(Value::Str(s)),
                extra => Err(format!("unexpected {extra:?} after the string")),
            };
        }
        let (typ, number) = match text.split_once(char::is_whitespace) {
            Some((typ, number)) => (typ, number.trim()),
            None => ("", text),
        };
        let bad = |e: &dyn std::fmt::Display| format!("{number:?} is no {typ} number: {e}");
        Ok(match typ {
            "byte" => Value::U8(number.parse().map_err(|e| bad(&e))?),
            "int16" => Value::I16(number.parse().map_err(|e| bad(&e))?),
            "uint16" => Value::U16(number.parse().map_err(|e| bad(&e))?),
            "int32" => Value::I32(number.parse().map_err(|e| bad(&e))?),
            "uint32" => Value::U32(number.parse().map_err(|e| bad(&e))?),
            "int64" => Value::I64(number.parse().map_err(|e| bad(&e))?),
            "uint64" => Value::U64(number.parse().map_err(|e| bad(&e))?),
            "double" => Value::Double(number.parse().map_err(|e| bad(&e))?),
            "" if number.parse::<i32>().is_ok() => Value::I32(number.parse().expect("parsed")),
            "" if number.parse::<f64>().is_ok() && number.contains('.') => {
                Value::Double(number.parse().expect("parsed"))
            }
            _ => return Err(TAKES.to_string()),
        })
    }

    /// A quoted string at the start of `text`, and what follows it.
    fn string(text: &str) -> Result<(String, &str), String> {
        let mut chars = text.char_indices();
        let quote = chars.next().map(|(_, c)| c).ok_or("empty")?;
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                c if c == quote => return Ok((out, &text[i + 1..])),
                c => out.push(c),
            }
        }
        Err("a string without its closing quote".into())
    }

    fn strings(text: &str) -> Result<Value, String> {
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or("an array must be [...]")?;
        let mut out = Vec::new();
        let mut rest = inner.trim();
        while !rest.is_empty() {
            let (s, after) = string(rest)?;
            out.push(s);
            rest = after.trim_start();
            rest = match rest.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if rest.is_empty() => rest,
                None => return Err(format!("expected ',' before {rest:?}")),
            };
        }
        Ok(Value::Strings(out))
    }
}

/// A cpu or memory node list ("0-3,8") as systemd's AllowedCPUs bit mask: byte i holds
/// cpus 8i..8i+7, lowest bit first.
fn cpu_list_bits(field: &str, list: &str) -> Result<Vec<u8>> {
    let ids = crate::cpu_list::parse(list).map_err(|e| {
        anyhow::anyhow!("linux.resources.{field}: {list:?}: {e} (a list is like \"0-3,8\")")
    })?;
    Ok(crate::cpu_list::byte_mask(&ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_become_runcs_device_allow_entries() {
        let rules = |json: &str| -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
            serde_json::from_str(json).unwrap()
        };
        let mut default = rules(r#"[{"allow":false,"access":"rwm"}]"#);
        default.extend(super::super::resources::default_device_rules());
        let (policy, allow) = device_allow(&default).unwrap();
        assert_eq!(policy, "strict");
        let has =
            |path: &str, access: &str| allow.contains(&(path.to_string(), access.to_string()));
        assert!(has("/dev/char/1:3", "rwm"), "{allow:?}"); // /dev/null
        assert!(has("char-136", "rwm"), "{allow:?}"); // the pts devices
        assert!(has("char-*", "m"), "{allow:?}"); // mknod of any char device
        assert!(has("block-*", "m"), "{allow:?}");
        // A deny after an allow trims it, as the devices controller would.
        let trimmed = rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"}]"#,
        );
        let want = vec![("/dev/char/1:5".to_string(), "rm".to_string())];
        assert_eq!(device_allow(&trimmed).unwrap(), ("strict", want));
        // Allow-all, also with denies systemd cannot say: every device (berth's filter denies).
        for json in [
            r#"[{"allow":true,"access":"rwm"}]"#,
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3}]"#,
        ] {
            assert_eq!(device_allow(&rules(json)).unwrap(), ("auto", Vec::new()));
        }
        // *:N is no systemd pattern: the type's wildcard holds it.
        let any_major = rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","minor":0,"access":"r"}]"#,
        );
        let want = vec![("block-*".to_string(), "r".to_string())];
        assert_eq!(device_allow(&any_major).unwrap(), ("strict", want));
    }

    #[test]
    fn slices_expand_by_dashes() {
        assert_eq!(
            expand_slice("system.slice").unwrap(),
            Path::new("system.slice")
        );
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            Path::new("a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), Path::new(""));
        for bad in [
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.scope",
            ".slice",
            "a b.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn owner_uid_from_busctl_status() {
        let status = "Scope=user\nUnit=user@1000.service\nOwnerUID=1000\nSession=n/a\n";
        assert_eq!(super::owner_uid(status), Some(1000));
        assert_eq!(super::owner_uid("Scope=user\n"), None);
    }

    #[test]
    fn cgroups_paths_give_units_as_runc() {
        let u = Unit::from_cgroups_path(Some("system.slice:docker:abc"), "x", false).unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.slice, "system.slice");
        assert_eq!(u.cgroup(), Path::new("/system.slice/docker-abc.scope"));
        let k = Unit::from_cgroups_path(
            Some("kubepods-besteffort-pod1.slice:cri-containerd:c1"),
            "x",
            false,
        )
        .unwrap();
        assert_eq!(
            k.cgroup(),
            Path::new("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c1.scope")
        );
        let d = Unit::from_cgroups_path(None, "c1", false).unwrap();
        assert_eq!(
            (d.name.as_str(), d.slice.as_str()),
            ("runc-c1.scope", "system.slice")
        );
        let r = Unit::from_cgroups_path(Some("::n"), "c1", true).unwrap();
        assert_eq!(
            (r.name.as_str(), r.slice.as_str()),
            ("-n.scope", "user.slice")
        );
        let s =
            Unit::from_cgroups_path(Some("system.slice:p:my-thing.slice"), "c1", false).unwrap();
        assert_eq!(s.cgroup(), Path::new("/my.slice/my-thing.slice"));
    }

    #[test]
    fn bad_cgroups_paths_name_the_field() {
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "system.slice:p:",
            "nope:p:n",
            "system.slice:p:a b",
        ] {
            let e = Unit::from_cgroups_path(Some(bad), "c", false).unwrap_err();
            assert!(
                format!("{e:#}").starts_with("linux.cgroupsPath: "),
                "{bad}: {e:#}"
            );
        }
    }

    #[test]
    fn cpu_lists_become_bit_masks() {
        assert_eq!(cpu_list_bits("cpu.cpus", "0").unwrap(), [1]);
        assert_eq!(cpu_list_bits("cpu.cpus", "0-3,9").unwrap(), [0x0f, 0x02]);
        assert!(cpu_list_bits("cpu.cpus", "3-1").is_err());
        assert!(cpu_list_bits("cpu.cpus", "x").is_err());
    }

    #[test]
    fn annotations_become_properties_as_runc_takes_them() {
        let ann = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (format!("{PROPERTY_ANNOTATION_PREFIX}{k}"), v.to_string()))
                .chain([("other.annotation".to_string(), "x".to_string())])
                .collect()
        };
        let props = annotation_properties(&ann(&[
            ("TimeoutStopSec", "2"),
            ("RuntimeMaxSec", "uint64 1"),
            ("CollectMode", "'inactive-or-failed'"),
            ("SendSIGHUP", "true"),
            ("CPUWeight", "uint64 200"),
            ("Environment", "['A=1', \"B=it's\"]"),
            ("TimerSlackNSec", "uint64 50"),
        ]))
        .unwrap();
        let names: Vec<&str> = props.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "CPUWeight",
                "CollectMode",
                "Environment",
                "RuntimeMaxUSec",
                "SendSIGHUP",
                "TimeoutStopUSec",
                "TimerSlackNSec"
            ]
        );
        let get = |n: &str| &props.iter().find(|(name, _)| name == n).unwrap().1 .0;
        assert_eq!(get("TimeoutStopUSec").as_u64(), Some(2_000_000));
        assert_eq!(get("RuntimeMaxUSec").as_u64(), Some(1_000_000));
        assert_eq!(get("CPUWeight").as_u64(), Some(200));
        // (NSec: no lowercase letter right before "Sec", so no conversion, as runc.)
        assert_eq!(get("TimerSlackNSec").as_u64(), Some(50));
        assert_eq!(get("CollectMode").as_str(), Some("inactive-or-failed"));
        assert_eq!(get("SendSIGHUP").signature().to_string(), "b");
        assert_eq!(get("Environment").signature().to_string(), "as");
        let env: Vec<String> = get("Environment")
            .as_iter()
            .unwrap()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(env, ["A=1", "B=it's"]);
        for (k, v, want) in [
            ("Bad-Name", "1", "is no systemd property name"),
            ("TimeoutStopSec", "'soon'", "a number of seconds is needed"),
            ("CPUWeight", "uint64 -1", "is no uint64 number"),
            ("Description", "'open", "without its closing quote"),
            ("Description", "<1>", "not a value this takes"),
            ("Description", "uint128 1", "not a value this takes"),
        ] {
            let e = annotation_properties(&ann(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("annotations.\"org.systemd.property.{k}\": ")),
                "{e}"
            );
            assert!(e.contains(want), "{k}={v}: {e}");
        }
    }

    #[test]
    fn resources_become_properties() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576,"swap":2097152},"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0"},"pids":{"limit":0},"unified":{"memory.high":"max"}}"#,
        )
        .unwrap();
        let props = resource_properties(&r, true).unwrap();
        let get = |n: &str| {
            props
                .iter()
                .find(|(name, _)| name == n)
                .and_then(|(_, v)| v.0.as_u64())
        };
        assert_eq!(get("MemoryMax"), Some(1_048_576));
        assert_eq!(get("MemorySwapMax"), Some(1_048_576));
        assert_eq!(get("CPUWeight"), Some(39));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(500_000));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(100_000));
        assert_eq!(get("TasksMax"), Some(1));
        assert_eq!(get("MemoryHigh"), Some(u64::MAX));
        let v1 = resource_properties(&r, false).unwrap();
        assert!(v1.iter().any(|(n, _)| n == "MemoryLimit"));
        assert!(v1.iter().any(|(n, _)| n == "CPUShares"));
    }
}

//! The commands that work on a container's cgroup: pause, resume, ps, update, events.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cgroups;
use crate::cli::{EventsArgs, ListFormat, PsArgs, UpdateArgs};
use crate::container::state::Status;
use crate::container::Container;

pub fn pause(root: &Path, id: &str) -> Result<i32> {
    let (c, _lock) = Container::load_locked(root, id)?;
    c.pause()?;
    Ok(0)
}

pub fn resume(root: &Path, id: &str) -> Result<i32> {
    let (c, _lock) = Container::load_locked(root, id)?;
    c.resume()?;
    Ok(0)
}

/// As runc: JSON is the array of host pids in the container's cgroup (what containerd reads);
/// the table is ps(1)'s own output cut down to those pids.
pub fn ps(root: &Path, args: &PsArgs) -> Result<i32> {
    let c = Container::load(root, &args.id)?;
    let pids = match &c.state.cgroup {
        Some(cgroup) => cgroup.pids()?,
        None => Vec::new(),
    };
    if args.format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let ps_args: Vec<String> = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{}", filter_ps_table(&text, &pids)?);
    Ok(0)
}

/// The header and the rows of `table` whose PID column is one of `pids`.
fn filter_ps_table(table: &str, pids: &[i32]) -> Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column (ps options must keep it)")?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out += line;
            out.push('\n');
        }
    }
    Ok(out)
}

/// Applies new limits to a live container and keeps the stored resources in step. Only the
/// fields given change; the rest keep their stored values (as runc).
pub fn update(root: &Path, args: &UpdateArgs) -> Result<i32> {
    let (mut c, _lock) = Container::load_locked(root, &args.id)?;
    if matches!(c.status(), Status::Stopped) {
        bail!("cannot update container {:?}: it is stopped", args.id);
    }
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        bail!("update: --l3-cache-schema and --mem-bw-schema need Intel RDT, which berth does not support");
    }
    let changes = match &args.resources {
        Some(path) => read_resources(path)?,
        None => flags_to_json(args)?,
    };
    let stored = serde_json::to_value(c.state.resources.clone().unwrap_or_default())?;
    // Only what was given is written (a limit changed behind berth's back stays), with the
    // stored values the kernel needs beside it.
    let to_apply = merge_resources(None, with_partners(changes.clone(), &stored))?;
    let resources = merge_resources(c.state.resources.clone(), changes)?;
    let cgroup = c.own_cgroup()?;
    if let Some(unit) = cgroup.unit() {
        let props = cgroups::systemd::resource_properties(&to_apply, cgroup.is_v2())?;
        cgroups::systemd::Systemd::connect(cgroup.systemd_user())?.set_properties(unit, props)?;
    }
    cgroups::resources::apply(cgroup, &to_apply, true)?;
    c.state.resources = Some(resources);
    c.state.save(&c.dir)?;
    Ok(0)
}

fn read_resources(path: &Path) -> Result<Value> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("update: read resources from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("update: read {}", path.display()))?;
    }
    parse_resources(&text, &path.display().to_string())
}

/// `--resources` text (from `source`, for messages) as the JSON of the fields it sets. Parsed
/// as LinuxResources first so a bad field is named; merged as JSON.
pub fn parse_resources(text: &str, source: &str) -> Result<Value> {
    let parsed: LinuxResources =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| anyhow::anyhow!("update: {source}: {}: {}", e.path(), e.inner()))?;
    let mut v = serde_json::to_value(parsed)?;
    strip_nulls(&mut v);
    Ok(v)
}

/// The stored resources with `changes` (from `parse_resources` or the flags) merged in.
pub fn merge_resources(stored: Option<LinuxResources>, changes: Value) -> Result<LinuxResources> {
    let stored = serde_json::to_value(stored.unwrap_or_default())?;
    serde_path_to_error::deserialize(merge(stored, changes))
        .map_err(|e| anyhow::anyhow!("update: resources: {}: {}", e.path(), e.inner()))
}

/// `changes` with the stored values that must go with them: a swap limit is set against the
/// memory limit, and a CPU quota against its period (as runc keeps both).
fn with_partners(mut changes: Value, stored: &Value) -> Value {
    for (section, given, partner) in [
        ("memory", "swap", "limit"),
        ("cpu", "quota", "period"),
        ("cpu", "period", "quota"),
    ] {
        let Some(fields) = changes.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        if fields.contains_key(given) && !fields.contains_key(partner) {
            if let Some(v) = stored.get(section).and_then(|s| s.get(partner)) {
                if !v.is_null() {
                    fields.insert(partner.to_string(), v.clone());
                }
            }
        }
    }
    changes
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        m.values_mut().for_each(strip_nulls);
    }
}

/// Deep merge: objects key by key, anything else replaced by `new`.
fn merge(old: Value, new: Value) -> Value {
    match (old, new) {
        (Value::Object(mut o), Value::Object(n)) => {
            for (k, v) in n {
                let merged = match o.remove(&k) {
                    Some(prev) => merge(prev, v),
                    None => v,
                };
                o.insert(k, merged);
            }
            Value::Object(o)
        }
        (_, new) => new,
    }
}

/// runc's update flags as a LinuxResources JSON fragment.
fn flags_to_json(a: &UpdateArgs) -> Result<Value> {
    let mut memory = serde_json::Map::new();
    for (key, flag, value) in [
        ("limit", "--memory", &a.memory),
        ("reservation", "--memory-reservation", &a.memory_reservation),
        ("swap", "--memory-swap", &a.memory_swap),
        ("kernel", "--kernel-memory", &a.kernel_memory),
        ("kernelTCP", "--kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if let Some(v) = value {
            memory.insert(
                key.into(),
                json!(parse_bytes(v).with_context(|| format!("update: {flag}"))?),
            );
        }
    }
    let mut cpu = serde_json::Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(key.into(), v);
        }
    };
    put("shares", a.cpu_share.map(|v| json!(v)));
    put("quota", a.cpu_quota.map(|v| json!(v)));
    put("period", a.cpu_period.map(|v| json!(v)));
    put("burst", a.cpu_burst.map(|v| json!(v)));
    put("idle", a.cpu_idle.map(|v| json!(v)));
    put("realtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v)));
    put("realtimePeriod", a.cpu_rt_period.map(|v| json!(v)));
    put("cpus", a.cpuset_cpus.as_ref().map(|v| json!(v)));
    put("mems", a.cpuset_mems.as_ref().map(|v| json!(v)));
    let mut out = serde_json::Map::new();
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        out.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = a.blkio_weight {
        out.insert("blockIO".into(), json!({ "weight": w }));
    }
    if out.is_empty() {
        bail!("update: nothing to change: give --resources or at least one limit flag");
    }
    Ok(Value::Object(out))
}

/// Bytes as docker and runc take them: a number with an optional b/k/m/g/t/p suffix (powers
/// of 1024), or -1 for no limit.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        Some('p') => (&t[..t.len() - 1], 50),
        _ => (t, 0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| *n >= 0.0)
        .with_context(|| format!("{s:?} is not a size (e.g. 1048576, 512k, 64m, 1g, or -1)"))?;
    Ok((n * (1u64 << shift) as f64) as i64)
}

/// One line of `events`, with runc's key order.
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

/// `events --stats` prints one stats line; `events` prints one every interval, and an `oom`
/// line as soon as the OOM killer has struck, until the container stops (as runc).
pub fn events(root: &Path, args: &EventsArgs) -> Result<i32> {
    let c = Container::load(root, &args.id)?;
    if matches!(c.status(), Status::Stopped) {
        bail!("container {:?} is not running", args.id);
    }
    let cgroup = c.own_cgroup()?;
    let line = |kind, data| {
        serde_json::to_string(&Event {
            kind,
            id: &args.id,
            data,
        })
    };
    let stats_line = || -> Result<String> {
        let data = serde_json::to_value(cgroups::stats::collect(cgroup)?)?;
        Ok(line("stats", Some(data))?)
    };
    let mut stdout = std::io::stdout();
    if args.stats {
        writeln!(stdout, "{}", stats_line()?)?;
        return Ok(0);
    }
    // Without a watch (no memory controller) OOM kills are still seen at each tick.
    use cgroups::stats::OomWake;
    let watch = cgroups::stats::OomWatch::new(cgroup)
        .map_err(|e| log::debug!("events: no OOM notification, polling: {e:#}"))
        .ok();
    let mut ooms = cgroups::stats::oom_kills(cgroup).unwrap_or(0);
    // As runc, the first stats line comes after one interval.
    let mut next_tick = std::time::Instant::now() + args.interval;
    while !matches!(c.status(), Status::Stopped) {
        let left = next_tick.saturating_duration_since(std::time::Instant::now());
        let wake = match &watch {
            Some(w) => w.wait(left)?,
            None => {
                std::thread::sleep(left);
                OomWake::Nothing
            }
        };
        let now = cgroups::stats::oom_kills(cgroup).unwrap_or(0);
        let oom = match wake {
            // Counted as one kill ahead, so the count catching up later is not a second.
            OomWake::UnderOom => {
                ooms = now.max(ooms + 1);
                true
            }
            _ if now > ooms => {
                ooms = now;
                true
            }
            _ => false,
        };
        if oom {
            writeln!(stdout, "{}", line("oom", None)?)?;
            stdout.flush()?;
        }
        if std::time::Instant::now() >= next_tick {
            writeln!(stdout, "{}", stats_line()?)?;
            stdout.flush()?;
            next_tick += args.interval;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_runc_takes_them() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-5").is_err());
    }

    #[test]
    fn merge_changes_only_what_is_given() {
        let old = json!({"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5}});
        let new = json!({"memory": {"limit": 300}});
        assert_eq!(
            merge(old, new),
            json!({"memory": {"limit": 300, "swap": 200}, "pids": {"limit": 5}})
        );
    }

    #[test]
    fn flags_become_resources() {
        let a = UpdateArgs {
            memory: Some("64m".into()),
            cpu_quota: Some(-1),
            pids_limit: Some(10),
            ..Default::default()
        };
        assert_eq!(
            flags_to_json(&a).unwrap(),
            json!({"memory": {"limit": 64 << 20}, "cpu": {"quota": -1}, "pids": {"limit": 10}})
        );
        assert!(flags_to_json(&UpdateArgs::default()).is_err());
    }

    #[test]
    fn ps_table_keeps_the_header_and_the_containers_rows() {
        let table = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep\nroot 43 1 sh\n";
        assert_eq!(
            filter_ps_table(table, &[42]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sleep\n"
        );
        assert!(filter_ps_table("UID CMD\n", &[1]).is_err());
    }
}

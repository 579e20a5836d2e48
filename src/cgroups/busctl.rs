//! systemd's user instance through `busctl --user` (systemd's own D-Bus tool, on every host
//! with systemd), for berth run as uid 0 of a user namespace (rootless podman's): libdbus
//! logs in to a bus with the uid it sees (0 there), which the user's bus refuses, while
//! sd-bus lets the kernel tell the bus who the caller is. runc asks busctl the same way who
//! it is there (DetectUID). The calls are the ones `systemd::Systemd` makes over libdbus,
//! with the properties written out in busctl's argument syntax; a job is waited for by
//! watching it disappear.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dbus::arg::{ArgType, RefArg};

use super::systemd::{Property, Unit};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Busctl;

impl Busctl {
    pub fn manager_cgroup(&self) -> Result<PathBuf> {
        let out = busctl(&[
            "get-property",
            SYSTEMD,
            MANAGER_PATH,
            MANAGER,
            "ControlGroup",
        ])?;
        Ok(PathBuf::from(single_value(&out, "s")?))
    }

    /// StartTransientUnit with `props` (all of the unit's), then waits for its job.
    pub fn start_scope(&self, unit: &Unit, props: &[Property]) -> Result<()> {
        let mut args: Vec<String> = [
            "call",
            SYSTEMD,
            MANAGER_PATH,
            MANAGER,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            &unit.name,
            "replace",
        ]
        .map(String::from)
        .to_vec();
        push_properties(&mut args, props)?;
        args.push("0".into());
        let out = busctl(&args).with_context(|| format!("systemd refused unit {:?}", unit.name))?;
        let job = single_value(&out, "o")?;
        wait_for_job(&job)?;
        match unit_state(&unit.name)?.as_deref() {
            Some("active") => Ok(()),
            state => bail!(
                "systemd: the job starting unit {:?} ended with the unit {} (journalctl --user -u {} tells why)",
                unit.name,
                state.unwrap_or("gone"),
                unit.name
            ),
        }
    }

    pub fn set_properties(&self, unit: &str, props: &[Property]) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = [
            "call",
            SYSTEMD,
            MANAGER_PATH,
            MANAGER,
            "SetUnitProperties",
            "sba(sv)",
            unit,
            "true",
        ]
        .map(String::from)
        .to_vec();
        push_properties(&mut args, props)?;
        busctl(&args).with_context(|| format!("systemd refused unit {unit:?}"))?;
        Ok(())
    }

    /// Stops `unit` and waits for the job; a unit systemd no longer knows is fine.
    pub fn stop(&self, unit: &str) -> Result<()> {
        if unit_state(unit)?.is_none() {
            return Ok(());
        }
        let out = busctl(&[
            "call",
            SYSTEMD,
            MANAGER_PATH,
            MANAGER,
            "StopUnit",
            "ss",
            unit,
            "replace",
        ])
        .with_context(|| format!("stop unit {unit:?}"))?;
        wait_for_job(&single_value(&out, "o")?)?;
        let _ = busctl(&[
            "call",
            SYSTEMD,
            MANAGER_PATH,
            MANAGER,
            "ResetFailedUnit",
            "s",
            unit,
        ]);
        Ok(())
    }
}

/// `busctl --user ARGS`; its error message when it fails.
fn busctl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<String> {
    let out = Command::new("busctl")
        .args(["--user", "--no-pager", "--timeout", "30"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            anyhow!("--systemd-cgroup: run busctl (systemd's D-Bus tool, used from a user namespace): {e}")
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("busctl: {}", err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of busctl's one-value output `SIG "VALUE"`.
fn single_value(out: &str, sig: &str) -> Result<String> {
    let value = out
        .trim()
        .strip_prefix(sig)
        .map(str::trim)
        .with_context(|| format!("busctl: expected a value of type {sig}, got {out:?}"))?;
    Ok(value.trim_matches('"').to_string())
}

/// Waits until systemd has removed `job` (it is then done, whatever its result).
fn wait_for_job(job: &str) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let state = busctl(&[
            "get-property",
            SYSTEMD,
            job,
            "org.freedesktop.systemd1.Job",
            "State",
        ]);
        if state.is_err() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "systemd: job {job} did not end within {} s",
                TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The unit's ActiveState; None when systemd does not know it.
fn unit_state(unit: &str) -> Result<Option<String>> {
    let Ok(out) = busctl(&["call", SYSTEMD, MANAGER_PATH, MANAGER, "GetUnit", "s", unit]) else {
        return Ok(None);
    };
    let path = single_value(&out, "o")?;
    let out = busctl(&[
        "get-property",
        SYSTEMD,
        &path,
        "org.freedesktop.systemd1.Unit",
        "ActiveState",
    ])?;
    Ok(Some(single_value(&out, "s")?))
}

/// `a(sv)` in busctl's syntax: the count, then each name, its value's signature and value.
fn push_properties(args: &mut Vec<String>, props: &[Property]) -> Result<()> {
    args.push(props.len().to_string());
    for (name, value) in props {
        args.push(name.clone());
        args.push(value.0.signature().to_string());
        push_value(args, &*value.0).with_context(|| format!("unit property {name}"))?;
    }
    Ok(())
}

/// One value in busctl's syntax: arrays as their length then the items, structs as their
/// fields in order, variants as the signature then the value.
fn push_value(args: &mut Vec<String>, v: &dyn RefArg) -> Result<()> {
    match v.arg_type() {
        ArgType::Boolean => args.push((v.as_u64() == Some(1)).to_string()),
        ArgType::Byte | ArgType::UInt16 | ArgType::UInt32 | ArgType::UInt64 => {
            args.push(v.as_u64().context("an unsigned number")?.to_string())
        }
        ArgType::Int16 | ArgType::Int32 | ArgType::Int64 => {
            args.push(v.as_i64().context("a number")?.to_string())
        }
        ArgType::Double => args.push(v.as_f64().context("a double")?.to_string()),
        ArgType::String | ArgType::ObjectPath | ArgType::Signature => {
            args.push(v.as_str().context("a string")?.to_string())
        }
        ArgType::Array => {
            let items: Vec<&dyn RefArg> = v.as_iter().context("an array")?.collect();
            args.push(items.len().to_string());
            for item in items {
                push_value(args, item)?;
            }
        }
        ArgType::Struct => {
            for field in v.as_iter().context("a struct")? {
                push_value(args, field)?;
            }
        }
        ArgType::Variant => {
            let inner = v
                .as_iter()
                .and_then(|mut i| i.next())
                .context("a variant")?;
            args.push(inner.signature().to_string());
            push_value(args, inner)?;
        }
        other => bail!("busctl: no syntax for D-Bus type {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbus::arg::Variant;

    fn p<T: RefArg + 'static>(name: &str, v: T) -> Property {
        (name.to_string(), Variant(Box::new(v)))
    }

    #[test]
    fn properties_in_busctl_syntax() {
        let props = vec![
            p("Description", "berth container x".to_string()),
            p("PIDs", vec![42u32]),
            p("Delegate", true),
            p("MemoryMax", 67108864u64),
            p("AllowedCPUs", vec![3u8]),
            p(
                "DeviceAllow",
                vec![("/dev/null".to_string(), "rwm".to_string())],
            ),
        ];
        let mut args = Vec::new();
        push_properties(&mut args, &props).unwrap();
        assert_eq!(
            args,
            [
                "6",
                "Description",
                "s",
                "berth container x",
                "PIDs",
                "au",
                "1",
                "42",
                "Delegate",
                "b",
                "true",
                "MemoryMax",
                "t",
                "67108864",
                "AllowedCPUs",
                "ay",
                "1",
                "3",
                "DeviceAllow",
                "a(ss)",
                "1",
                "/dev/null",
                "rwm"
            ]
        );
    }

    #[test]
    fn single_values() {
        assert_eq!(
            single_value("o \"/org/freedesktop/systemd1/job/7\"\n", "o").unwrap(),
            "/org/freedesktop/systemd1/job/7"
        );
        assert_eq!(single_value("s \"active\"\n", "s").unwrap(), "active");
        assert!(single_value("u 3\n", "s").is_err());
    }
}

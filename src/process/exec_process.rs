//! `exec`'s process: `--process FILE` (the JSON containerd writes) as is, or the container's
//! process with the command and the flags (`--cwd`, `-e`, `-u`, `-g`, `--cap`,
//! `--no-new-privs`, `--apparmor`, `--process-label`, `-t`) applied, as runc does.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use crate::cli::ExecArgs;

/// The process to run: `--process FILE` as is, or the container's process with the command
/// and the flags applied, as runc does.
pub fn exec_process(args: &ExecArgs, spec: &Spec) -> Result<Process> {
    if let Some(path) = &args.process {
        return read_process_file(path);
    }
    let mut p = spec
        .process()
        .clone()
        .context("config.json: process: must be set")?;
    if args.command.is_empty() {
        bail!(
            "exec: no command given: berth exec [OPTIONS] ID COMMAND [ARGS...], or --process FILE"
        );
    }
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    if !args.env.is_empty() {
        p.set_env(Some(merge_env(
            p.env().as_deref().unwrap_or(&[]),
            &args.env,
        )?));
    }
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd {}: must be an absolute path", cwd.display());
        }
        p.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
        // As runc (and the runtime-spec for the config's names): an unknown name is warned
        // about and left out, not an error.
        let unknown: Vec<&str> = args
            .cap
            .iter()
            .filter(|n| parse_capability(n).is_err())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            log::warn!(
                "ignoring unknown or unavailable capabilities: [{}]",
                unknown.join(" ")
            );
        }
        for cap in args.cap.iter().filter_map(|n| parse_capability(n).ok()) {
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // As runc: ambient only where the config has inheritable capabilities, since
            // the kernel refuses ambient ones that are not inheritable.
            if caps.inheritable().is_some() {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &args.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &args.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None);
    c.set_effective(None);
    c.set_inheritable(None);
    c.set_permitted(None);
    c.set_ambient(None);
    c
}

/// An OCI `Process` JSON file; errors name the file and the field.
fn read_process_file(path: &Path) -> Result<Process> {
    let what = format!("--process {}", path.display());
    let text = fs::read_to_string(path).with_context(|| format!("{what}: read"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{what}: {e}"))?;
    // As runc: a process without `user` runs as 0:0 (oci-spec would require the field).
    if let Some(obj) = value.as_object_mut() {
        obj.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    crate::cpu_affinity::without_empty_lists(&mut value);
    crate::spec::with_spec_scheduler_flags(&mut value);
    let p: Process = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        match field.as_str() {
            "" | "." | "?" => anyhow!("{what}: {}", e.into_inner()),
            _ => anyhow!("{what}: {field}: {}", e.into_inner()),
        }
    })?;
    crate::spec::check_process(&p, &format!("{what}: "))?;
    Ok(p)
}

/// The config's environment with `--env K=V` entries replacing those of the same name.
fn merge_env(base: &[String], extra: &[String]) -> Result<Vec<String>> {
    let mut env = base.to_vec();
    for e in extra {
        let Some((key, _)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!("--env {e:?}: must be KEY=VALUE");
        };
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    Ok(env)
}

/// `--user UID[:GID]`, numeric as runc takes it.
fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let bad = || anyhow!("--user {s:?}: must be UID or UID:GID (numbers in the container)");
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// `--cap NAME`: CAP_NET_ADMIN, or NET_ADMIN, in any case.
fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = match upper.starts_with("CAP_") {
        true => upper,
        false => format!("CAP_{upper}"),
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| anyhow!("--cap {name}: unknown capability"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags_replace_by_name() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let env = merge_env(&base, &["A=2".into(), "B=x=y".into()]).unwrap();
        assert_eq!(env, ["PATH=/bin", "A=2", "B=x=y"]);
        assert!(merge_env(&base, &["NOEQUALS".into()]).is_err());
        assert!(merge_env(&base, &["=v".into()]).is_err());
    }

    #[test]
    fn users_and_capabilities() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:50").unwrap(), (1000, Some(50)));
        assert!(parse_user("bob").is_err() && parse_user("1:x").is_err());
        assert_eq!(
            parse_capability("CAP_NET_ADMIN").unwrap(),
            Capability::NetAdmin
        );
        assert_eq!(parse_capability("net_raw").unwrap(), Capability::NetRaw);
        let e = parse_capability("CAP_BOGUS").unwrap_err().to_string();
        assert_eq!(e, "--cap CAP_BOGUS: unknown capability");
    }
}

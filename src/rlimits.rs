//! `process.rlimits`, set in init before the user switch.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for (i, r) in rlimits.iter().enumerate() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", r.typ()));
        let what = format!(
            "process.rlimits[{i}]: {name} soft {} hard {}",
            r.soft(),
            r.hard()
        );
        if r.soft() > r.hard() {
            bail!("config.json: {what}: the soft limit is above the hard limit");
        }
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
        let rc = unsafe { libc::setrlimit(resource(r.typ()), &lim) };
        match Errno::result(rc) {
            Ok(_) => {}
            Err(Errno::EPERM) => bail!(
                "{what}: raising the hard limit above the current {} needs CAP_SYS_RESOURCE, which berth does not have here",
                current_hard(r.typ())
            ),
            Err(e) => return Err(e).with_context(|| what.clone()),
        }
    }
    Ok(())
}

/// This process's hard limit, for messages.
fn current_hard(t: PosixRlimitType) -> String {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    unsafe { libc::getrlimit(resource(t), &mut lim) };
    if lim.rlim_max == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        lim.rlim_max.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soft_limit_above_the_hard_one_names_the_entry() {
        let r: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_NOFILE","soft":20,"hard":10}"#).unwrap();
        let e = apply(&[r]).unwrap_err().to_string();
        assert!(
            e.contains("process.rlimits[0]: RLIMIT_NOFILE soft 20 hard 10")
                && e.contains("soft limit is above the hard limit"),
            "{e}"
        );
    }
}

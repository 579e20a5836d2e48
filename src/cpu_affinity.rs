//! The CPU affinity of the container's processes, as runc sets it: init and an `exec`'d
//! process get every CPU their cgroup's cpuset allows, not the one berth was started with
//! (a caller's `taskset`, systemd's CPUAffinity=), unless `process.execCPUAffinity`
//! (runtime-spec 1.2) says otherwise for an exec'd process: `initial` while berth sets it
//! up, until it is in the container's cgroup, and `final` from then on.

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use oci_spec::runtime::Process;

/// `process.execCPUAffinity`, parsed. An empty list is as if it were not given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecAffinity {
    initial: Option<Vec<libc::c_ulong>>,
    final_: Option<Vec<libc::c_ulong>>,
}

/// The affinity an exec'd `process` asks for; errors name the field.
pub fn of(process: &Process) -> Result<ExecAffinity> {
    let Some(aff) = process.exec_cpu_affinity() else {
        return Ok(ExecAffinity::default());
    };
    let mask = |field: &str, list: Option<&str>| -> Result<Option<Vec<libc::c_ulong>>> {
        let list = list.unwrap_or("");
        let ids = crate::cpu_list::parse(list)
            .map_err(|e| anyhow!("process.execCPUAffinity.{field}: {list:?}: {e}"))?;
        Ok((!ids.is_empty()).then(|| crate::cpu_list::word_mask(&ids)))
    };
    Ok(ExecAffinity {
        initial: mask("initial", aff.initial().as_deref())?,
        final_: mask("final", aff.cpu_affinity_final().as_deref())?,
    })
}

/// Drops `execCPUAffinity` lists that are empty strings from a process's JSON: the
/// runtime-spec says an empty one is as if omitted, and oci-spec refuses it. Whether any was.
pub fn without_empty_lists(process: &mut serde_json::Value) -> bool {
    let Some(aff) = process
        .get_mut("execCPUAffinity")
        .and_then(|a| a.as_object_mut())
    else {
        return false;
    };
    let before = aff.len();
    aff.retain(|_, v| v.as_str() != Some(""));
    aff.len() != before
}

fn set_own(mask: &[libc::c_ulong]) -> nix::Result<()> {
    // SAFETY: sched_setaffinity reads `len` bytes from `mask`, which holds them; pid 0 is
    // this thread (berth is single-threaded: this process).
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    Errno::result(r).map(drop)
}

fn own() -> nix::Result<Vec<libc::c_ulong>> {
    let mut mask = vec![0; ALL_WORDS];
    // SAFETY: sched_getaffinity writes at most `len` bytes into `mask`, which has them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            std::mem::size_of_val(mask.as_slice()),
            mask.as_mut_ptr(),
        )
    };
    Errno::result(r).map(|_| mask)
}

/// A mask past any kernel's NR_CPUS (8192): the kernel clamps it to its CPUs, and then to
/// the cgroup's cpuset, keeping CPUs that come online or into the cpuset later.
const ALL_WORDS: usize = (crate::cpu_list::MAX_ID + 1) / libc::c_ulong::BITS as usize;

/// Every CPU the calling process's cpuset allows, once it is in the container's cgroup. A
/// failure is only a warning, as in runc: the process keeps the affinity it had.
pub fn reset() {
    if let Err(e) = set_own(&[libc::c_ulong::MAX; ALL_WORDS]) {
        log::warn!("resetting the CPU affinity failed ({e}): the container process may inherit berth's CPU affinity");
    }
}

/// berth's own affinity, narrowed to `initial` for the exec'd process to inherit until it
/// has joined the cgroup; `restore` gives berth its own back once the process is forked.
pub struct Initial(Option<Vec<libc::c_ulong>>);

impl ExecAffinity {
    /// Before forking the exec'd process: berth runs on `initial`, if given.
    pub fn enter_initial(&self) -> Result<Initial> {
        let Some(initial) = &self.initial else {
            return Ok(Initial(None));
        };
        let before = own().context("sched_getaffinity")?;
        set_own(initial)
            .context("error setting initial CPU affinity (process.execCPUAffinity.initial)")?;
        Ok(Initial(Some(before)))
    }

    /// In the exec'd process, just after it has joined the container's cgroup: `final` if
    /// given; with neither, every CPU of the cpuset (runc's reset); with `initial` alone,
    /// the process keeps it.
    pub fn after_joining(&self) -> Result<()> {
        match (&self.initial, &self.final_) {
            (_, Some(final_)) => set_own(final_)
                .context("error setting final CPU affinity (process.execCPUAffinity.final)"),
            (None, None) => {
                reset();
                Ok(())
            }
            (Some(_), None) => Ok(()),
        }
    }
}

impl Initial {
    pub fn restore(self) {
        if let Some(before) = self.0 {
            let _ = set_own(&before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(aff: &str) -> Process {
        serde_json::from_str(&format!(
            r#"{{"cwd":"/","args":["true"],"user":{{"uid":0,"gid":0}},"execCPUAffinity":{aff}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn lists_become_masks_and_empty_ones_count_as_unset() {
        let mut json = serde_json::json!({"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0-1,3", "final": ""}});
        assert!(without_empty_lists(&mut json));
        let a = of(&serde_json::from_value(json).unwrap()).unwrap();
        assert_eq!(a.initial, Some(vec![0b1011]));
        assert_eq!(a.final_, None);
        let none: Process =
            serde_json::from_str(r#"{"cwd":"/","args":["true"],"user":{"uid":0,"gid":0}}"#)
                .unwrap();
        assert_eq!(of(&none).unwrap(), ExecAffinity::default());
    }

    #[test]
    fn a_number_past_the_limit_names_the_field() {
        let err = of(&process(r#"{"final":"9000"}"#)).unwrap_err().to_string();
        assert_eq!(
            err,
            "process.execCPUAffinity.final: \"9000\": 9000 is larger than 8191"
        );
    }

    #[test]
    fn the_reset_mask_is_what_sched_getaffinity_takes() {
        // (A buffer the kernel accepts: its length is a multiple of sizeof(long).)
        let mine = own().unwrap();
        assert!(mine.iter().any(|w| *w != 0));
        assert_eq!(mine.len(), ALL_WORDS);
    }
}

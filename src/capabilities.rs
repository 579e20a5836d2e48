//! The five capability sets of `process.capabilities`, applied with the caps crate.

use std::collections::HashSet;
use std::str::FromStr;

use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// The capabilities this kernel knows: one read of /proc/sys/kernel/cap_last_cap, or a probe
/// of each (a prctl per capability) where /proc is not mounted.
fn kernel_supported() -> CapsHashSet {
    caps::runtime::procfs_all_supported(None)
        .unwrap_or_else(|_| caps::runtime::thread_all_supported())
}

/// berth's own bounding set, from CapBnd in /proc/self/status (procfs-core's parser): one
/// read instead of a prctl(PR_CAPBSET_READ) per capability. None when /proc is not there to
/// ask.
fn own_bounding_set() -> Option<CapsHashSet> {
    use procfs_core::FromBufRead;
    let text = crate::sys::read_virtual("/proc/self/status").ok()?;
    let status = procfs_core::process::Status::from_buf_read(text.as_bytes()).ok()?;
    Some(bits_to_set(status.capbnd?))
}

fn bits_to_set(bits: u64) -> CapsHashSet {
    caps::all()
        .into_iter()
        .filter(|c| c.index() < 64 && bits & (1 << c.index()) != 0)
        .collect()
}

/// Converts oci-spec capability names to the caps crate's. Names this kernel does not know
/// are skipped with a warning, as runc does.
fn convert(set: Option<&Capabilities>, which: &str, supported: &CapsHashSet) -> CapsHashSet {
    let mut out = HashSet::new();
    for cap in set.into_iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(c) if supported.contains(&c) => {
                out.insert(c);
            }
            _ => log::warn!(
                "process.capabilities.{which}: {name} is not supported by this kernel, ignored"
            ),
        }
    }
    out
}

/// The first (set, capability) asked for that is not in `held`, in a stable order.
fn outside<'a>(
    sets: &[(&'a str, &CapsHashSet)],
    held: &CapsHashSet,
) -> Option<(&'a str, Capability)> {
    sets.iter().find_map(|(which, set)| {
        let mut missing: Vec<Capability> = set.difference(held).copied().collect();
        missing.sort_by_key(|c| c.index());
        missing.first().map(|c| (*which, *c))
    })
}

/// The sets to apply, resolved once before the user switch.
pub struct CapabilitySets {
    /// berth's own bounding set: no process it starts can hold anything outside it.
    held: CapsHashSet,
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapabilitySets {
    pub fn from_spec(caps: Option<&LinuxCapabilities>) -> CapabilitySets {
        let supported = kernel_supported();
        let set = |f: fn(&LinuxCapabilities) -> &Option<Capabilities>, which| {
            convert(caps.and_then(|c| f(c).as_ref()), which, &supported)
        };
        CapabilitySets {
            bounding: set(LinuxCapabilities::bounding, "bounding"),
            effective: set(LinuxCapabilities::effective, "effective"),
            permitted: set(LinuxCapabilities::permitted, "permitted"),
            inheritable: set(LinuxCapabilities::inheritable, "inheritable"),
            ambient: set(LinuxCapabilities::ambient, "ambient"),
            held: own_bounding_set().unwrap_or(supported),
        }
    }

    /// Fails, naming the set and the capability, when the config asks for one that berth
    /// itself cannot have (the kernel would refuse capset with a bare EPERM).
    pub fn check_held(&self) -> Result<()> {
        let sets = [
            ("bounding", &self.bounding),
            ("effective", &self.effective),
            ("permitted", &self.permitted),
            ("inheritable", &self.inheritable),
        ];
        match outside(&sets, &self.held) {
            Some((which, cap)) => anyhow::bail!(
                "process.capabilities.{which}: {cap} is not in berth's own bounding set on this host, so no process berth starts can hold it"
            ),
            None => Ok(()),
        }
    }

    /// Drops from the bounding set what the config does not list. Needs CAP_SETPCAP, so it
    /// runs before the user switch.
    pub fn apply_bounding(&self) -> Result<()> {
        // Only what is there to drop: a capability already outside the set needs no call.
        for cap in &self.held {
            if !self.bounding.contains(cap) {
                caps::drop(None, CapSet::Bounding, *cap)
                    .with_context(|| format!("drop {cap} from the bounding set"))?;
            }
        }
        Ok(())
    }

    /// Sets permitted, inheritable, effective and ambient, after the user switch.
    pub fn apply_rest(&self) -> Result<()> {
        // Inheritable while CAP_SETPCAP is still effective; effective before permitted, since
        // the kernel refuses a permitted set that the current effective set is not inside.
        caps::set(None, CapSet::Inheritable, &self.inheritable)
            .context("set inheritable capabilities")?;
        caps::set(None, CapSet::Effective, &self.effective)
            .context("set effective capabilities")?;
        caps::set(None, CapSet::Permitted, &self.permitted)
            .context("set permitted capabilities")?;
        caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
        for cap in &self.ambient {
            // The kernel refuses ambient capabilities not in permitted and inheritable; runc
            // ignores those too.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                log::warn!(
                    "process.capabilities.ambient: can't raise ambient capability {cap}: {e}"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounding_set_from_proc_matches_prctl() {
        assert_eq!(
            own_bounding_set().unwrap(),
            caps::read(None, CapSet::Bounding).unwrap()
        );
        assert_eq!(
            bits_to_set(0b101),
            [Capability::CAP_CHOWN, Capability::CAP_DAC_READ_SEARCH].into()
        );
    }

    #[test]
    fn names_the_first_capability_berth_does_not_hold() {
        let held: CapsHashSet = [Capability::CAP_CHOWN, Capability::CAP_KILL].into();
        let fine: CapsHashSet = [Capability::CAP_KILL].into();
        let wants: CapsHashSet = [
            Capability::CAP_SYS_RESOURCE,
            Capability::CAP_CHOWN,
            Capability::CAP_SYS_ADMIN,
        ]
        .into();
        assert_eq!(
            outside(&[("bounding", &fine), ("permitted", &fine)], &held),
            None
        );
        assert_eq!(
            outside(&[("bounding", &fine), ("permitted", &wants)], &held),
            Some(("permitted", Capability::CAP_SYS_ADMIN))
        );
    }
}

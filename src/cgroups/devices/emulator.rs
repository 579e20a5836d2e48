//! The v1 devices controller's state machine, as runc's emulator: the rule list folded into
//! the state a v1 devices cgroup would reach (a default and the exceptions to it), read back
//! from a devices.list, and the fewest writes from one state to another.

use anyhow::Result;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::WHAT;

// Access bits, as the kernel passes them in the high half of bpf_cgroup_dev_ctx.access_type.
pub(super) const ACC_MKNOD: u8 = 1;
pub(super) const ACC_READ: u8 = 2;
pub(super) const ACC_WRITE: u8 = 4;
pub(super) const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) block: bool,
    pub(super) major: Option<u32>, // None = any
    pub(super) minor: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Exception {
    pub(super) meta: Meta,
    pub(super) access: u8,
}

/// What a v1 devices cgroup holds: a default and the exceptions to it (allow exceptions on a
/// default-deny cgroup, deny exceptions on a default-allow one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Emulator {
    pub(super) default_allow: bool,
    pub(super) exceptions: Vec<Exception>,
}

/// The access bits of `s`; letters other than r, w and m are dropped, as runc drops them.
fn parse_access(s: Option<&str>) -> std::result::Result<u8, String> {
    let Some(s) = s else { return Ok(ACC_ALL) };
    if s.is_empty() {
        return Err("access is empty (use a subset of \"rwm\")".into());
    }
    Ok(s.chars().fold(0, |acc, c| match c {
        'r' => acc | ACC_READ,
        'w' => acc | ACC_WRITE,
        'm' => acc | ACC_MKNOD,
        _ => {
            log::debug!("{WHAT}: access {s:?}: {c:?} is not one of \"rwm\", dropped as runc does");
            acc
        }
    }))
}

pub(super) fn access_str(a: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| a & b != 0)
        .map(|&(_, c)| c)
        .collect()
}

fn parse_number(n: Option<i64>, what: &str) -> std::result::Result<Option<u32>, String> {
    match n {
        // runc treats any negative number (-1 in its configs) as the wildcard.
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| format!("{what} {n} is out of range")),
    }
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let t = if self.meta.block { 'b' } else { 'c' };
        let (ma, mi) = (num(self.meta.major), num(self.meta.minor));
        write!(f, "{t} {ma}:{mi} {}", access_str(self.access))
    }
}

impl Emulator {
    pub(super) fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<Self> {
        // A fresh v1 cgroup allows everything.
        let mut emu = Emulator {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for (i, r) in rules.iter().enumerate() {
            emu.apply(r)
                .map_err(|e| anyhow::anyhow!("{WHAT}[{i}]: {e}"))?;
        }
        Ok(emu)
    }

    fn apply(&mut self, r: &LinuxDeviceCgroup) -> std::result::Result<(), String> {
        let block = match r.typ() {
            // "a" resets the cgroup whatever the numbers and access say, as in the kernel.
            None | Some(LinuxDeviceType::A) => {
                self.default_allow = r.allow();
                self.exceptions.clear();
                return Ok(());
            }
            Some(LinuxDeviceType::B) => true,
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => false,
            // FIFOs are not subject to the device cgroup.
            Some(LinuxDeviceType::P) => return Ok(()),
        };
        let ex = Exception {
            meta: Meta {
                block,
                major: parse_number(r.major(), "major")?,
                minor: parse_number(r.minor(), "minor")?,
            },
            access: parse_access(r.access().as_deref())?,
        };
        if r.allow() != self.default_allow {
            self.add(ex);
            Ok(())
        } else {
            self.remove(ex)
        }
    }

    /// The state a v1 cgroup's devices.list shows: "a *:* rwm" for one that allows
    /// everything (the kernel lists no deny exceptions then), else the allowed devices.
    pub(super) fn from_list(list: &str) -> std::result::Result<Self, String> {
        let mut emu = Emulator {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || format!("devices.list line {line:?}");
            let mut f = line.split_whitespace();
            let (typ, nums, access) = match (f.next(), f.next(), f.next()) {
                (Some(t), Some(n), Some(a)) => (t, n, a),
                _ => return Err(bad()),
            };
            if typ == "a" {
                return Ok(Emulator {
                    default_allow: true,
                    exceptions: Vec::new(),
                });
            }
            let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
            let num = |n: &str| match n {
                "*" => Ok(None),
                n => n.parse().map(Some).map_err(|_| bad()),
            };
            emu.add(Exception {
                meta: Meta {
                    block: match typ {
                        "b" => true,
                        "c" => false,
                        _ => return Err(bad()),
                    },
                    major: num(major)?,
                    minor: num(minor)?,
                },
                access: parse_access(Some(access))?,
            });
        }
        Ok(emu)
    }

    /// The fewest v1 writes that take a cgroup from `self` to `target`, as runc computes them
    /// (a switch of default first, then what each exception loses and gains), as (allow,
    /// line) pairs for devices.allow and devices.deny.
    pub(super) fn transition(&self, target: &Emulator) -> Vec<(bool, String)> {
        let mut writes = Vec::new();
        let mut old: &[Exception] = &self.exceptions;
        if self.default_allow != target.default_allow {
            writes.push((target.default_allow, "a *:* rwm".to_string()));
            old = &[];
        }
        let access_of = |list: &[Exception], meta: Meta| {
            list.iter().find(|e| e.meta == meta).map_or(0, |e| e.access)
        };
        for e in old {
            let dropped = e.access & !access_of(&target.exceptions, e.meta);
            if dropped != 0 {
                let line = Exception {
                    access: dropped,
                    ..*e
                }
                .to_string();
                writes.push((target.default_allow, line));
            }
        }
        for e in &target.exceptions {
            let gained = e.access & !access_of(old, e.meta);
            if gained != 0 {
                let line = Exception {
                    access: gained,
                    ..*e
                }
                .to_string();
                writes.push((!target.default_allow, line));
            }
        }
        writes
    }

    /// An exception against the default: merged into the one with the same match, if any.
    fn add(&mut self, ex: Exception) {
        match self.exceptions.iter_mut().find(|e| e.meta == ex.meta) {
            Some(e) => e.access |= ex.access,
            None => self.exceptions.push(ex),
        }
    }

    /// A rule agreeing with the default trims the exception with exactly its match. v1 silently
    /// ignores a rule that would need to punch a hole into a wider wildcard exception; like runc
    /// we refuse it instead, so the container does not get more than the config seems to say.
    fn remove(&mut self, ex: Exception) -> std::result::Result<(), String> {
        let m = ex.meta;
        let wider = [
            Meta { major: None, ..m },
            Meta { minor: None, ..m },
            Meta {
                major: None,
                minor: None,
                ..m
            },
        ];
        for w in wider.iter().filter(|w| **w != m) {
            if let Some(e) = self
                .exceptions
                .iter()
                .find(|e| e.meta == *w && e.access & ex.access != 0)
            {
                let verb = if self.default_allow { "allow" } else { "deny" };
                return Err(format!(
                    "cannot {verb} {ex} inside the wider rule {e} (the devices cgroup cannot split wildcard rules)"
                ));
            }
        }
        if let Some(pos) = self.exceptions.iter().position(|e| e.meta == m) {
            self.exceptions[pos].access &= !ex.access;
            if self.exceptions[pos].access == 0 {
                self.exceptions.remove(pos);
            }
        }
        Ok(())
    }
}

/// Rules and states for the tests of each layer.
#[cfg(test)]
pub(super) mod test_support {
    use super::*;
    use LinuxDeviceType::{A, B, C};

    pub fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(typ)
            .set_major(major)
            .set_minor(minor)
            .set_access(access.map(str::to_string));
        r
    }

    pub fn all(allow: bool) -> LinuxDeviceCgroup {
        rule(allow, Some(A), None, None, Some("rwm"))
    }
    pub fn c(
        allow: bool,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        rule(allow, Some(C), major, minor, Some(access))
    }
    pub fn ex(block: bool, major: Option<u32>, minor: Option<u32>, access: u8) -> Exception {
        Exception {
            meta: Meta {
                block,
                major,
                minor,
            },
            access,
        }
    }
    pub fn shown(e: &Emulator) -> Vec<String> {
        e.exceptions.iter().map(ToString::to_string).collect()
    }

    /// runc's defaults (as resources::default_device_rules lists them) after Docker's deny-all.
    pub fn docker_defaults() -> Vec<LinuxDeviceCgroup> {
        let mut v = vec![all(false)];
        v.push(c(true, None, None, "m"));
        v.push(rule(true, Some(B), None, None, Some("m")));
        for (ma, mi) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1)] {
            v.push(c(true, Some(ma), Some(mi), "rwm"));
        }
        v.push(c(true, Some(136), None, "rwm"));
        v.push(c(true, Some(5), Some(2), "rwm"));
        v.push(c(true, Some(10), Some(200), "rwm"));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use LinuxDeviceType::{B, C, P, U};

    #[test]
    fn emulator_docker_defaults() {
        let e = Emulator::from_rules(&docker_defaults()).unwrap();
        assert!(!e.default_allow);
        assert_eq!(
            shown(&e),
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 5:1 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm"
            ]
        );
        assert_eq!(e.exceptions[9], ex(false, Some(136), None, ACC_ALL));
    }

    #[test]
    fn emulator_allow_all_resets() {
        // No rules: a fresh cgroup, which allows everything.
        let fresh = Emulator {
            default_allow: true,
            exceptions: vec![],
        };
        assert_eq!(Emulator::from_rules(&[]).unwrap(), fresh);
        let mut rules = docker_defaults();
        rules.push(all(true));
        assert_eq!(Emulator::from_rules(&rules).unwrap(), fresh);
        // A rule without a type is "a", whatever numbers/access it has (as in v1).
        rules.push(rule(false, None, Some(1), Some(3), Some("r")));
        assert_eq!(
            Emulator::from_rules(&rules).unwrap(),
            Emulator {
                default_allow: false,
                exceptions: vec![]
            }
        );
    }

    #[test]
    fn emulator_deny_one_under_allow_all() {
        let e = Emulator::from_rules(&[c(false, Some(1), Some(5), "rwm")]).unwrap();
        assert!(e.default_allow);
        assert_eq!(e.exceptions, [ex(false, Some(1), Some(5), ACC_ALL)]);
        // Allowing part of it back trims the deny exception; allowing the rest removes it.
        let mut rules = vec![
            all(true),
            c(false, Some(1), Some(5), "rwm"),
            c(true, Some(1), Some(5), "r"),
        ];
        assert_eq!(shown(&Emulator::from_rules(&rules).unwrap()), ["c 1:5 wm"]);
        rules.push(c(true, Some(1), Some(5), "mw"));
        assert_eq!(Emulator::from_rules(&rules).unwrap().exceptions, []);
        // Allowing a device that was never denied changes nothing.
        rules.push(c(true, Some(4), Some(4), "rwm"));
        assert_eq!(Emulator::from_rules(&rules).unwrap().exceptions, []);
    }

    #[test]
    fn emulator_partial_access() {
        let mut rules = vec![
            all(false),
            c(true, Some(1), Some(3), "r"),
            c(true, Some(1), Some(3), "w"),
        ];
        assert_eq!(shown(&Emulator::from_rules(&rules).unwrap()), ["c 1:3 rw"]);
        rules.push(c(false, Some(1), Some(3), "r"));
        assert_eq!(shown(&Emulator::from_rules(&rules).unwrap()), ["c 1:3 w"]);
        // Same match, other type: a separate exception.
        rules.push(rule(true, Some(B), Some(1), Some(3), Some("m")));
        // "u" is a character device.
        rules.push(rule(true, Some(U), Some(1), Some(3), Some("m")));
        assert_eq!(
            shown(&Emulator::from_rules(&rules).unwrap()),
            ["c 1:3 wm", "b 1:3 m"]
        );
        // FIFOs have no device cgroup rules; access None means rwm.
        rules.push(rule(true, Some(P), Some(1), Some(3), None));
        rules.push(rule(true, Some(C), Some(7), None, None));
        assert_eq!(
            shown(&Emulator::from_rules(&rules).unwrap()),
            ["c 1:3 wm", "b 1:3 m", "c 7:* rwm"]
        );
    }

    #[test]
    fn emulator_refuses_holes_in_wildcards() {
        let mut rules = docker_defaults();
        rules.push(c(false, Some(1), Some(3), "m"));
        let err = Emulator::from_rules(&rules).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "linux.resources.devices[13]: cannot deny c 1:3 m inside the wider rule c *:* m"
            ),
            "{err}"
        );
        // No overlap with the wildcard's access: fine.
        rules.pop();
        rules.push(c(false, Some(1), Some(3), "rw"));
        assert_eq!(
            Emulator::from_rules(&rules).unwrap().exceptions[2],
            ex(false, Some(1), Some(3), ACC_MKNOD)
        );
        // Under allow-all, too.
        let err = Emulator::from_rules(&[
            c(false, Some(136), None, "rwm"),
            c(true, Some(136), Some(1), "w"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot allow c 136:1 w inside the wider rule c 136:* rwm"),
            "{err}"
        );
    }

    #[test]
    fn emulator_bad_rules() {
        // As runc: letters other than r, w and m are dropped.
        let e = Emulator::from_rules(&[all(false), c(true, Some(1), Some(3), "rx")]).unwrap();
        assert_eq!(shown(&e), ["c 1:3 r"]);
        let err = Emulator::from_rules(&[c(true, Some(1), Some(3), "")]).unwrap_err();
        assert!(err.to_string().contains("access is empty"), "{err}");
        let err = Emulator::from_rules(&[c(true, Some(1 << 32), Some(3), "r")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.devices[0]: major 4294967296 is out of range"
        );
        // Negative numbers are runc's wildcard.
        let e = Emulator::from_rules(&[c(false, Some(-1), Some(3), "r")]).unwrap();
        assert_eq!(e.exceptions, [ex(false, None, Some(3), ACC_READ)]);
    }

    #[test]
    fn devices_list_is_read_as_the_kernel_keeps_it() {
        let e = Emulator::from_list("a *:* rwm\n").unwrap();
        assert_eq!(e, Emulator::from_rules(&[]).unwrap());
        let e = Emulator::from_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n").unwrap();
        assert!(!e.default_allow);
        assert_eq!(shown(&e), ["c 1:3 rwm", "c 136:* rw", "b *:* m"]);
        assert_eq!(Emulator::from_list("").unwrap().exceptions, []);
        assert!(Emulator::from_list("x 1:3 rwm").is_err());
        assert!(Emulator::from_list("c 1-3 rwm").is_err());
    }
}

//! Signal names and numbers as `kill` accepts them: `9`, `KILL`, `SIGKILL`, `SIGRTMIN+3`, and
//! `0` (no signal: runc's clients send it to ask whether the container is alive).

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

/// Gives the process about to become the container's every signal's default disposition, as
/// runc's does, but for SIGHUP and SIGINT, which keep an inherited SIG_IGN (`nohup`, and Go's
/// runtime in runc respects just those two). Without this, what berth's own runtime ignores
/// (Rust's std sets SIGPIPE to SIG_IGN at startup; so does libdbus) would survive execve into
/// the container, where `yes | head` would then end in EPIPE errors instead of SIGPIPE.
/// Handled signals need nothing (execve resets them), so only the ignored ones, from this
/// process's SigIgn mask, are reset: a read of /proc/self/status and usually one sigaction,
/// not one per signal.
pub fn reset_dispositions() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    use procfs_core::FromBufRead;
    let text = crate::sys::read_virtual("/proc/self/status")
        .map_err(|e| anyhow::anyhow!("read /proc/self/status: {e}"))?;
    let ignored = procfs_core::process::Status::from_buf_read(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("parse /proc/self/status: {e}"))?
        .sigign;
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        let is_ignored = ignored & (1 << (sig as i32 - 1)) != 0;
        if !is_ignored || matches!(sig, Signal::SIGHUP | Signal::SIGINT) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
        unsafe { sigaction(sig, &default) }
            .map_err(|e| anyhow::anyhow!("reset the disposition of {sig}: {e}"))?;
    }
    Ok(())
}

/// For init at the start gate: the signals that end a process by default end it here too,
/// with status 128+N. As the container's PID 1 it would otherwise ignore them (the kernel
/// drops a default-action signal to a namespace's init), and `kill ID` of a created container
/// would do nothing; runc's init, a Go program with handlers, dies of them. execve resets
/// caught signals to their default, so the user process gets none of this.
pub fn exit_on_terminating_signals() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    extern "C" fn exit_with(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and touches no state of this process.
        unsafe { libc::_exit(128 + sig) }
    }
    let handler = SigAction::new(
        SigHandler::Handler(exit_with),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ] {
        // SAFETY: the handler only calls _exit (async-signal-safe).
        unsafe { sigaction(sig, &handler) }
            .map_err(|e| anyhow::anyhow!("handle {sig} at the start gate: {e}"))?;
    }
    Ok(())
}

/// Parses a signal given as a decimal number (0 to SIGRTMAX) or a name with or without the
/// SIG prefix, in any case: a standard name, `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N`. Never
/// panics, whatever the text (a fuzz target calls it).
pub fn parse(text: &str) -> Result<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Some(n) = digits(text) {
        // (A number too long for u32 is out of range too.)
        return match n {
            Some(n) if n <= max as u32 => Ok(n as i32),
            _ => bail!("unknown signal {text:?}: signal numbers go from 0 to {max}"),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = parse_realtime(name, min, max) {
        return match rt {
            Some(n) => Ok(n),
            None => bail!(
                "unknown signal {text:?}: real-time signals go from RTMIN ({min}) to RTMAX ({max})"
            ),
        };
    }
    match format!("SIG{name}").parse::<Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("unknown signal {text:?}"),
    }
}

/// `Some(value)` when `text` is a non-empty run of ASCII digits (`Some(None)` when that
/// number does not fit in a u32); `None` when it is not a plain number at all.
fn digits(text: &str) -> Option<Option<u32>> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())
}

/// `None` when `name` is no real-time signal name; `Some(None)` when it is one, but outside
/// SIGRTMIN..=SIGRTMAX (or its offset overflows).
fn parse_realtime(name: &str, min: i32, max: i32) -> Option<Option<i32>> {
    let n = if name == "RTMIN" {
        Some(min)
    } else if name == "RTMAX" {
        Some(max)
    } else if let Some(off) = name.strip_prefix("RTMIN+") {
        offset(off).and_then(|o| min.checked_add(o))
    } else if let Some(off) = name.strip_prefix("RTMAX-") {
        offset(off).and_then(|o| max.checked_sub(o))
    } else {
        return None;
    };
    Some(n.filter(|n| (min..=max).contains(n)))
}

/// The N of `RTMIN+N` / `RTMAX-N`: digits only (no sign, no space).
fn offset(text: &str) -> Option<i32> {
    digits(text).flatten().and_then(|n| i32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("term").unwrap(), 15);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("HUP").unwrap(), 1);
        assert_eq!(parse("SIGRTMAX").unwrap(), libc::SIGRTMAX());
    }

    #[test]
    fn zero_is_the_liveness_check() {
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("00").unwrap(), 0);
    }

    #[test]
    fn real_time_signals_by_number_and_name() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        // glibc keeps 32 and 33 for itself: SIGRTMIN is 34 (and the kernel's last is 64).
        assert_eq!((min, max), (34, 64));
        for n in 34..=64 {
            assert_eq!(parse(&n.to_string()).unwrap(), n);
        }
        assert_eq!(parse("RTMIN").unwrap(), 34);
        assert_eq!(parse("RTMIN+3").unwrap(), 37);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(parse("sigrtmin+3").unwrap(), 37);
        assert_eq!(parse("RTMIN+30").unwrap(), 64);
        assert_eq!(parse("RTMAX-2").unwrap(), 62);
        assert_eq!(parse("SIGRTMAX-30").unwrap(), 34);
        assert_eq!(parse("RTMAX").unwrap(), 64);
    }

    #[test]
    fn realtime_offsets_out_of_i32_range_are_unknown_not_a_panic() {
        // Seen while writing fuzz/fuzz_targets/signal.rs: the offset overflowed the sum.
        for bad in [
            "RTMIN+2147483647",
            "SIGRTMAX--2147483648",
            "RTMAX--2147483600",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("unknown signal"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_signals() {
        for bad in [
            "-1", "65", "BOGUS", "SIG", "", "9x", "+9", " 9", "SIGKILL ", "RTMIN+", "RTMAX-",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("unknown signal {bad:?}")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn out_of_range_real_time_signals_are_refused_by_name() {
        for bad in [
            "RTMIN+31",
            "RTMIN+99",
            "RTMIN+2147483647",
            "SIGRTMIN+4294967296",
            "RTMIN+99999999999999999999",
            "RTMIN+-1",
            "RTMIN++1",
            "RTMAX-31",
            "RTMAX-2147483647",
            "RTMAX--2147483648",
            "RTMAX-+1",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("unknown signal {bad:?}")),
                "{bad}: {e}"
            );
            assert!(e.contains("RTMIN (34) to RTMAX (64)"), "{bad}: {e}");
        }
        for bad in ["65", "2147483648", "4294967296", "99999999999999999999999"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("from 0 to 64"), "{bad}: {e}");
        }
    }

    /// Many generated inputs, built from the pieces that matter (prefixes, signs, digits,
    /// multibyte characters): parse never panics, and what it accepts is a signal number.
    #[test]
    fn never_panics_and_accepts_only_signal_numbers() {
        let pieces = [
            "",
            "SIG",
            "sig",
            "RT",
            "MIN",
            "MAX",
            "RTMIN",
            "RTMAX",
            "+",
            "-",
            "0",
            "1",
            "9",
            "31",
            "64",
            "65",
            "2147483647",
            "2147483648",
            "4294967295",
            "4294967296",
            "99999999999999999999",
            "KILL",
            "TERM",
            "USR1",
            " ",
            "\0",
            "é",
            "ß",
            "\u{130}",
            "ǅ",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            // xorshift64: deterministic, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = next() % 6;
            let text: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            if let Ok(n) = parse(&text) {
                assert!((0..=64).contains(&n), "{text:?} gave {n}");
            }
        }
    }
}

//! Signal names and numbers as `kill` accepts them: `9`, `KILL`, `SIGKILL`, `SIGRTMIN+3`.

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

/// Parses a signal given as a decimal number or a name with or without the SIG prefix.
pub fn parse(text: &str) -> Result<i32> {
    let sigrtmax = libc::SIGRTMAX();
    if let Ok(n) = text.parse::<i32>() {
        if n >= 1 && n <= sigrtmax {
            return Ok(n);
        }
        bail!("unknown signal {text:?}");
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(n) = parse_realtime(name) {
        return Ok(n);
    }
    match format!("SIG{name}").parse::<Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("unknown signal {text:?}"),
    }
}

fn parse_realtime(name: &str) -> Option<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let n = if name == "RTMIN" {
        min
    } else if name == "RTMAX" {
        max
    } else if let Some(off) = name.strip_prefix("RTMIN+") {
        // Checked: any i32 parses as an offset, and most overflow.
        min.checked_add(off.parse::<i32>().ok()?)?
    } else if let Some(off) = name.strip_prefix("RTMAX-") {
        max.checked_sub(off.parse::<i32>().ok()?)?
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
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
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX").unwrap(), libc::SIGRTMAX());
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
        for bad in ["0", "-1", "65", "BOGUS", "SIG", "", "RTMIN+99", "9x"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("unknown signal"), "{bad}: {e}");
        }
    }
}

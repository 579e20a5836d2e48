//! The kernel's list format for CPUs and NUMA nodes ("0-3,8"), as `cpuset.cpus`,
//! `process.execCPUAffinity`, `linux.memoryPolicy.nodes` and systemd's AllowedCPUs use it.

/// The highest CPU or node number a list may name: the kernel's own limits are below it
/// (NR_CPUS at most 8192, MAX_NUMNODES at most 1024), so a larger one is a mistake, not a
/// machine berth does not know.
pub const MAX_ID: usize = 8191;

/// The numbers a list names, in the order given; an empty (or blank) list is empty.
/// The error says what is wrong in words, without the field (the caller names it).
pub fn parse(list: &str) -> Result<Vec<usize>, String> {
    let list = list.trim();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let number = |w: &str| -> Result<usize, String> {
        let w = w.trim();
        let n: usize = w.parse().map_err(|_| format!("{w:?} is not a number"))?;
        if n > MAX_ID {
            return Err(format!("{n} is larger than {MAX_ID}"));
        }
        Ok(n)
    };
    let mut ids = Vec::new();
    for part in list.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((from, to)) => (number(from)?, number(to)?),
            None => (number(part)?, number(part)?),
        };
        if from > to {
            return Err(format!("range {:?} runs backwards", part.trim()));
        }
        ids.extend(from..=to);
    }
    Ok(ids)
}

/// `ids` as a bit mask in bytes: byte i holds numbers 8i..8i+7, lowest bit first.
pub fn byte_mask(ids: &[usize]) -> Vec<u8> {
    let mut bits = Vec::new();
    for &id in ids {
        if bits.len() <= id / 8 {
            bits.resize(id / 8 + 1, 0);
        }
        bits[id / 8] |= 1 << (id % 8);
    }
    bits
}

/// `ids` as the kernel's unsigned-long bit mask (nodemask_t, cpumask_t).
pub fn word_mask(ids: &[usize]) -> Vec<libc::c_ulong> {
    const BITS: usize = libc::c_ulong::BITS as usize;
    let mut words = Vec::new();
    for &id in ids {
        if words.len() <= id / BITS {
            words.resize(id / BITS + 1, 0);
        }
        words[id / BITS] |= 1 << (id % BITS);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_numbers() {
        assert_eq!(parse("0-2,8").unwrap(), vec![0, 1, 2, 8]);
        assert_eq!(parse(" 3 ").unwrap(), vec![3]);
        assert_eq!(parse("1,0").unwrap(), vec![1, 0]);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        assert_eq!(parse("2-1").unwrap_err(), "range \"2-1\" runs backwards");
        assert_eq!(parse("0,x").unwrap_err(), "\"x\" is not a number");
        assert_eq!(parse("0-").unwrap_err(), "\"\" is not a number");
        assert_eq!(
            parse("0-9876543210").unwrap_err(),
            "9876543210 is larger than 8191"
        );
    }

    #[test]
    fn masks_set_one_bit_per_number() {
        assert_eq!(byte_mask(&[0, 1, 9]), vec![0b11, 0b10]);
        assert_eq!(word_mask(&[0, 65]), vec![1, 2]);
        assert!(word_mask(&[]).is_empty());
    }
}

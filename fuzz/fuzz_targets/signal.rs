//! `kill`'s signal argument: a number or a name, with or without SIG, SIGRTMIN+n, SIGRTMAX-n.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = berth::signals::parse(text) {
        // 0 is the liveness check (`kill ID 0`); the rest are real signals.
        assert!((0..=libc::SIGRTMAX()).contains(&n), "{text:?} gave {n}");
        assert_eq!(berth::signals::parse(&n.to_string()).unwrap(), n);
    }
});

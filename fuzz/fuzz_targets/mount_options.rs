//! A mount's `options`, as the comma-separated list fstab and `mount -o` write.
#![no_main]

use berth::rootfs::options;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts: Vec<String> = text.split(',').map(str::to_string).collect();
    let parsed = options::parse(&opts);
    // A bind mount's remount never carries the bind itself.
    let not_remounted = libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT;
    assert_eq!(parsed.remount_flags().bits() & not_remounted, 0);
    // What berth does not know goes to the filesystem unchanged, in order.
    if !parsed.data.is_empty() {
        let again: Vec<String> = parsed.data.split(',').map(str::to_string).collect();
        assert_eq!(options::parse(&again).data, parsed.data);
    }
});

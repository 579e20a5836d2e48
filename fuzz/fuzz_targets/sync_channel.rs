//! A datagram on the sync channel, as `create` and `exec` receive it from the setup process
//! and init: decoded alone, and through a real socketpair (`recv_with_fd`, the path berth
//! runs). A message that decodes must survive a send and receive unchanged.
#![no_main]

use std::os::fd::AsRawFd;

use berth::channel::{self, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data).ok();
    let (tx, rx) = channel::pair().expect("socketpair");
    // SAFETY: sends `data.len()` bytes from a live slice on a socket this closure owns.
    let sent = unsafe {
        libc::send(
            tx.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if sent == data.len() as isize {
        match rx.recv_with_fd() {
            // An empty datagram reads as the peer's close.
            Ok(None) => assert!(data.is_empty()),
            Ok(Some((msg, fd))) => {
                assert!(fd.is_none());
                assert_eq!(Some(&msg), decoded.as_ref());
            }
            Err(_) => assert!(decoded.is_none()),
        }
    }
    if let Some(msg) = decoded {
        tx.send(&msg).expect("send");
        assert_eq!(rx.recv().expect("receive"), Some(msg));
    }
});

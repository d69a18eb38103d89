//! A wake-up descriptor (eventfd) that stop requests use to interrupt a
//! thread blocked in `poll` on a fanotify or netlink descriptor.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::fd;

#[derive(Debug)]
pub struct Wake {
    fd: OwnedFd,
}

impl Wake {
    pub fn new() -> io::Result<Wake> {
        // SAFETY: eventfd takes no pointers; the result is checked by `owned`.
        let ret = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        Ok(Wake {
            fd: fd::owned(ret)?,
        })
    }

    /// Makes the descriptor readable (idempotent: it stays readable).
    pub fn wake(&self) {
        // An eventfd write of a u64 only fails when the counter would overflow,
        // which a handful of stop requests cannot reach.
        let _ = fd::write_all_once(self.fd.as_raw_fd(), &1u64.to_ne_bytes());
    }
}

impl AsRawFd for Wake {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

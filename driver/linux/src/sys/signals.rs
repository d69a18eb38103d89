//! Waiting for SIGINT/SIGTERM in the foreground thread.
//!
//! The signals are blocked in the calling thread before any other thread
//! exists (threads inherit the mask), so they stay pending until
//! [`TerminationSignals::wait`] takes them with `sigwait`: no handler runs
//! at an arbitrary point, and shutdown happens in ordinary code.
use std::io;

/// SIGINT and SIGTERM, blocked.
#[derive(Debug)]
pub struct TerminationSignals {
    set: libc::sigset_t,
}

impl TerminationSignals {
    /// Blocks SIGINT and SIGTERM in this thread (and so in every thread it
    /// starts afterwards). Call before starting the engine.
    pub fn block() -> io::Result<TerminationSignals> {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: `set` is a live, writable sigset_t.
        unsafe { libc::sigemptyset(set.as_mut_ptr()) };
        // SAFETY: `set` was initialized by sigemptyset.
        unsafe { libc::sigaddset(set.as_mut_ptr(), libc::SIGINT) };
        // SAFETY: as above.
        unsafe { libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM) };
        // SAFETY: initialized by sigemptyset/sigaddset above.
        let set = unsafe { set.assume_init() };
        // SAFETY: `set` is a valid signal set; a null old-set pointer is allowed.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(TerminationSignals { set })
    }

    /// Waits for SIGINT or SIGTERM; returns its number.
    pub fn wait(&self) -> io::Result<i32> {
        let mut sig: libc::c_int = 0;
        // SAFETY: `self.set` is a valid signal set and `sig` a live c_int.
        let ret = unsafe { libc::sigwait(&self.set, &mut sig) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(sig)
    }
}

//! An owned file descriptor (std's [`OwnedFd`]) plus the few raw calls on
//! descriptors the engine needs that std does not offer.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Takes ownership of the descriptor a system call returned, or the error.
pub fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ret` is a fresh descriptor just returned by the kernel to this
    // process and not yet owned by anything else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// `read(2)` into `buf`, retrying on EINTR. `Ok(0)` only at end of file;
/// `WouldBlock` when a non-blocking descriptor has nothing.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, exclusively borrowed buffer of `buf.len()`
        // bytes; the kernel writes at most that many.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `write(2)` of all of `buf` in one call (the writes this crate does are
/// small fixed-size records that the kernel takes whole or rejects).
pub fn write_all_once(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: `buf` is a live buffer of `buf.len()` readable bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n == buf.len() as isize {
            return Ok(());
        }
        if n >= 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes (-1: forever).
/// Returns which descriptors are readable (or hung up).
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a live, exclusively borrowed array of
        // `pfds.len()` pollfd structures.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(pfds
                .iter()
                .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
                .collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Where an open descriptor points, as `/proc/self/fd/N` says.
pub fn fd_path(fd: &impl AsRawFd, buf: &mut String) -> io::Result<()> {
    proc_fd_path(fd.as_raw_fd(), buf)
}

/// Like [`fd_path`] for a raw descriptor number this process holds.
pub fn proc_fd_path(fd: RawFd, buf: &mut String) -> io::Result<()> {
    use std::fmt::Write;
    let mut link = String::with_capacity(32);
    let _ = write!(link, "/proc/self/fd/{fd}");
    let target = std::fs::read_link(&link)?;
    buf.clear();
    buf.push_str(&target.to_string_lossy());
    Ok(())
}

/// Like [`proc_fd_path`], the link's bytes exactly as the kernel wrote
/// them (no UTF-8 conversion).
pub fn proc_fd_path_bytes(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    buf.clear();
    buf.extend_from_slice(target.as_os_str().as_bytes());
    Ok(())
}

/// Link count of the file behind `fd` (`fstat`), `None` when unknown.
pub fn link_count(fd: RawFd) -> Option<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a live, writable stat buffer.
    let ret = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if ret < 0 {
        return None;
    }
    // SAFETY: fstat succeeded and the buffer started zeroed: fully initialized.
    let st = unsafe { st.assume_init() };
    Some(st.st_nlink)
}

/// Size of the file behind `fd` (`fstat`), 0 when unknown.
pub fn file_size(fd: RawFd) -> u64 {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a live, writable stat buffer.
    let ret = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if ret < 0 {
        return 0;
    }
    // SAFETY: fstat succeeded and the buffer started zeroed: fully initialized.
    let st = unsafe { st.assume_init() };
    u64::try_from(st.st_size).unwrap_or(0)
}

//! The kernel's process-event connector (netlink `NETLINK_CONNECTOR`,
//! `CN_IDX_PROC`): tells the engine when a process forks, execs, exits or
//! changes its uid, so the process table ([`crate::procinfo`]) can capture
//! an image at exec time and keep it after the process exits, without a
//! `/proc` read per event.
//!
//! Ordering argument: the kernel sends the message while the process is
//! still inside that system call, before it can cause any later file event.
//! So after reading a batch of fanotify events, draining this socket yields
//! every change that happened before any event in the batch. If the socket
//! overflows (`ENOBUFS`), messages were lost and the caller must forget
//! every cached process.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::fd;

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_UID: u32 = 0x0000_0004;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
/// Receive buffer asked for (SO_RCVBUFFORCE, root only): large enough that
/// a fork storm between two fanotify batches does not overflow it.
const RCVBUF_BYTES: libc::c_int = 4 << 20;

/// What a message says about a process (all ids are thread-group ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `child` was forked by `parent` (new processes only, not threads).
    Fork { parent: u32, child: u32 },
    /// The process exec'd a new image.
    Exec(u32),
    /// The process changed its effective uid.
    Uid { pid: u32, euid: u32 },
    /// The process exited (its main thread did).
    Exit(u32),
    /// Messages were lost: forget everything.
    Overflow,
}

#[derive(Debug)]
pub struct ProcEvents {
    sock: OwnedFd,
    buf: Vec<u8>,
}

impl ProcEvents {
    /// Opens and subscribes a connector socket (needs CAP_NET_ADMIN and the
    /// initial network namespace; callers fall back to no caching).
    pub fn open() -> io::Result<ProcEvents> {
        // SAFETY: socket takes no pointers; the result is checked by `owned`.
        let ret = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_CONNECTOR,
            )
        };
        let sock = fd::owned(ret)?;
        let rcvbuf = RCVBUF_BYTES;
        // SAFETY: `rcvbuf` is a live c_int and its size is passed; failure is
        // harmless (the default buffer is used).
        let _ = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&rcvbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SAFETY: an all-zero sockaddr_nl is a valid value of the C struct.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = CN_IDX_PROC;
        // SAFETY: `addr` is a live sockaddr_nl and its exact size is passed.
        let ret = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // nlmsghdr + cn_msg + u32 op
        let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
        let mut msg = Vec::with_capacity(total);
        msg.extend_from_slice(&(total as u32).to_ne_bytes()); // nlmsg_len
        msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes()); // nlmsg_type
        msg.extend_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags
        msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq
        msg.extend_from_slice(&std::process::id().to_ne_bytes()); // nlmsg_pid
        msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
        msg.extend_from_slice(&4u16.to_ne_bytes()); // len
        msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
        msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        fd::write_all_once(sock.as_raw_fd(), &msg)?;
        Ok(ProcEvents {
            sock,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Drains every queued message, calling `f` for each change.
    pub fn drain(&mut self, mut f: impl FnMut(Change)) {
        loop {
            match fd::read(self.sock.as_raw_fd(), &mut self.buf) {
                Ok(0) => return,
                Ok(n) => parse(&self.buf[..n], &mut f),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => f(Change::Overflow),
                Err(_) => {
                    f(Change::Overflow);
                    return;
                }
            }
        }
    }
}

impl AsRawFd for ProcEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one datagram (one or more netlink messages).
fn parse(mut b: &[u8], f: &mut impl FnMut(Change)) {
    while b.len() >= NLMSG_HDRLEN {
        let Some(len) = u32_at(b, 0).map(|l| l as usize) else {
            return;
        };
        if len < NLMSG_HDRLEN || len > b.len() {
            return;
        }
        let msg = &b[NLMSG_HDRLEN..len];
        // cn_msg: id.idx, id.val, seq, ack, len(u16), flags(u16), then data.
        if u32_at(msg, 0) == Some(CN_IDX_PROC) && u32_at(msg, 4) == Some(CN_VAL_PROC) {
            let ev = &msg[CN_MSG_LEN.min(msg.len())..];
            // proc_event: what u32, cpu u32, timestamp u64, then event_data:
            // fork {parent_pid, parent_tgid, child_pid, child_tgid},
            // exec {pid, tgid}, uid {pid, tgid, ruid, euid},
            // exit {pid, tgid, ...}.
            let field = |i: usize| u32_at(ev, 16 + 4 * i);
            match (u32_at(ev, 0), field(0), field(1), field(2), field(3)) {
                (Some(PROC_EVENT_FORK), _, Some(parent), Some(cpid), Some(child))
                    if cpid == child =>
                {
                    f(Change::Fork { parent, child })
                }
                (Some(PROC_EVENT_EXEC), _, Some(tgid), _, _) => f(Change::Exec(tgid)),
                (Some(PROC_EVENT_UID), _, Some(tgid), _, Some(euid)) => {
                    f(Change::Uid { pid: tgid, euid })
                }
                (Some(PROC_EVENT_EXIT), Some(pid), Some(tgid), _, _) if pid == tgid => {
                    f(Change::Exit(tgid))
                }
                _ => {}
            }
        }
        // NLMSG_ALIGN(len)
        let next = (len + 3) & !3;
        if next >= b.len() {
            return;
        }
        b = &b[next..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exec_and_ignores_a_truncated_fork() {
        let mut m = Vec::new();
        let body_len = CN_MSG_LEN + 16 + 8;
        m.extend_from_slice(&((NLMSG_HDRLEN + body_len) as u32).to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&PROC_EVENT_EXEC.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&77u32.to_ne_bytes());
        m.extend_from_slice(&77u32.to_ne_bytes());
        let mut seen = Vec::new();
        parse(&m, &mut |c| seen.push(c));
        assert_eq!(seen, vec![Change::Exec(77)]);
        let mut fork = m.clone();
        fork[NLMSG_HDRLEN + CN_MSG_LEN..NLMSG_HDRLEN + CN_MSG_LEN + 4]
            .copy_from_slice(&1u32.to_ne_bytes());
        seen.clear();
        parse(&fork, &mut |c| seen.push(c));
        assert!(seen.is_empty());
        for cut in 0..m.len() {
            parse(&m[..cut], &mut |_| {});
        }
    }
}

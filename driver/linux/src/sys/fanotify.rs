//! fanotify: groups, marks, permission responses, and a safe parser for the
//! event buffer the kernel fills.
//!
//! Two kinds of group are used (see `docs/linux-engine.md`):
//! * a **notification** group reporting directory file handles and names
//!   (`FAN_REPORT_DFID_NAME`): no descriptor is opened per event, and
//!   create, delete and rename are only available this way;
//! * a **permission** group (`FAN_CLASS_CONTENT`), which the kernel does
//!   not allow to report file handles, so each event carries an open
//!   descriptor the engine must answer on and then close.
//!
//! The parser reads the buffer as bytes with explicit bounds checks: a
//! malformed or truncated buffer ends iteration, it never reads out of
//! bounds and never panics.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::fd;

/// `FANOTIFY_METADATA_VERSION` of the layout this parser understands.
pub const METADATA_VERSION: u8 = 3;
/// Size of `struct fanotify_event_metadata`.
pub const METADATA_LEN: usize = 24;

/// Event bits (from `linux/fanotify.h`; re-exported so callers need no libc).
pub mod mask {
    pub const ACCESS: u64 = libc::FAN_ACCESS;
    pub const MODIFY: u64 = libc::FAN_MODIFY;
    pub const CLOSE_WRITE: u64 = libc::FAN_CLOSE_WRITE;
    pub const CLOSE_NOWRITE: u64 = libc::FAN_CLOSE_NOWRITE;
    pub const OPEN: u64 = libc::FAN_OPEN;
    pub const MOVED_FROM: u64 = libc::FAN_MOVED_FROM;
    pub const MOVED_TO: u64 = libc::FAN_MOVED_TO;
    pub const CREATE: u64 = libc::FAN_CREATE;
    pub const DELETE: u64 = libc::FAN_DELETE;
    pub const DELETE_SELF: u64 = libc::FAN_DELETE_SELF;
    pub const MOVE_SELF: u64 = libc::FAN_MOVE_SELF;
    pub const OPEN_EXEC: u64 = libc::FAN_OPEN_EXEC;
    pub const Q_OVERFLOW: u64 = libc::FAN_Q_OVERFLOW;
    pub const OPEN_PERM: u64 = libc::FAN_OPEN_PERM;
    pub const ACCESS_PERM: u64 = libc::FAN_ACCESS_PERM;
    pub const OPEN_EXEC_PERM: u64 = libc::FAN_OPEN_EXEC_PERM;
    pub const RENAME: u64 = libc::FAN_RENAME;
    pub const ONDIR: u64 = libc::FAN_ONDIR;
    pub const PERM_EVENTS: u64 = OPEN_PERM | ACCESS_PERM | OPEN_EXEC_PERM;
}

/// Info record types (`FAN_EVENT_INFO_TYPE_*`).
pub mod info {
    pub const FID: u8 = libc::FAN_EVENT_INFO_TYPE_FID;
    pub const DFID_NAME: u8 = libc::FAN_EVENT_INFO_TYPE_DFID_NAME;
    pub const DFID: u8 = libc::FAN_EVENT_INFO_TYPE_DFID;
    pub const OLD_DFID_NAME: u8 = libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME;
    pub const NEW_DFID_NAME: u8 = libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME;
}

/// Which kind of group to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Notification events with directory handle + name, no descriptors.
    NotifyFid,
    /// Permission events (descriptor per event, answered with allow/deny).
    Permission,
}

/// An initialized fanotify group.
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
    kind: GroupKind,
    targets: bool,
}

impl Group {
    /// `fanotify_init` for `kind`, non-blocking and close-on-exec. The
    /// kernel's bounded queue is kept (no `FAN_UNLIMITED_QUEUE`): overflow is
    /// reported as `FAN_Q_OVERFLOW` and recorded, instead of letting a
    /// burst pin unbounded kernel memory.
    ///
    /// The notification group asks for `FAN_REPORT_DFID_NAME_TARGET`
    /// (Linux 5.17): besides the directory handle and name, every event
    /// names the object's own handle — for a directory create, rename or
    /// delete, the directory's — which keeps the engine's namespace mirror
    /// exact ([`crate::mirror`]); it also keeps the kernel from merging a
    /// create of a new file with an earlier one of the same name. On older
    /// kernels it falls back to `FAN_REPORT_DFID_NAME` ([`Group::targets`]
    /// is then false).
    pub fn init(kind: GroupKind) -> io::Result<Group> {
        if kind == GroupKind::NotifyFid {
            match Self::init_flags(
                kind,
                libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_DFID_NAME_TARGET,
            ) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                other => return other,
            }
            let mut g = Self::init_flags(kind, libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_DFID_NAME)?;
            g.targets = false;
            return Ok(g);
        }
        Self::init_flags(kind, libc::FAN_CLASS_CONTENT)
    }

    fn init_flags(kind: GroupKind, class: libc::c_uint) -> io::Result<Group> {
        let flags = class | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
        let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint;
        // SAFETY: fanotify_init takes no pointers; the result is checked by `owned`.
        let ret = unsafe { libc::fanotify_init(flags, event_flags) };
        Ok(Group {
            fd: fd::owned(ret)?,
            kind,
            targets: kind == GroupKind::NotifyFid,
        })
    }

    /// Whether events name their object's own handle (`Event::object`).
    pub fn targets(&self) -> bool {
        self.targets
    }

    pub fn kind(&self) -> GroupKind {
        self.kind
    }

    /// Adds a filesystem mark for `mask` on the filesystem holding `path`.
    pub fn mark_filesystem(&self, path: &std::path::Path, mask: u64) -> io::Result<()> {
        self.mark(libc::FAN_MARK_ADD, path, mask)
    }

    /// Removes `mask` bits from the filesystem mark on `path`'s filesystem.
    pub fn unmark_filesystem(&self, path: &std::path::Path, mask: u64) -> io::Result<()> {
        self.mark(libc::FAN_MARK_REMOVE, path, mask)
    }

    fn mark(&self, op: libc::c_uint, path: &std::path::Path, mask: u64) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: `c` is a NUL-terminated string that outlives the call; the
        // other arguments are plain integers.
        let ret = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                op | libc::FAN_MARK_FILESYSTEM,
                mask,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Tells the kernel to stop reporting `mask` (permission events) for
    /// the directory `dir` and the files directly in it: an evictable
    /// ignore mark (`FAN_MARK_IGNORE_SURV | FAN_MARK_EVICTABLE`, Linux 6.0),
    /// so it pins no inode and the kernel may drop it under memory
    /// pressure (events then come back, never the reverse).
    pub fn ignore_dir(&self, dir: &std::ffi::CStr, mask: u64) -> io::Result<()> {
        // SAFETY: `dir` is NUL-terminated and outlives the call.
        let ret = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORE_SURV | libc::FAN_MARK_EVICTABLE,
                mask | libc::FAN_EVENT_ON_CHILD | libc::FAN_ONDIR,
                libc::AT_FDCWD,
                dir.as_ptr(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Removes every inode mark of the group (the ignore marks); the
    /// filesystem marks stay.
    pub fn flush_inode_marks(&self) -> io::Result<()> {
        flush_inode_marks_of(self.fd.as_raw_fd())
    }

    /// Reads whatever events are queued into `buf` (`Ok(0)`: none now).
    pub fn read_events(&self, buf: &mut [u8]) -> io::Result<usize> {
        match fd::read(self.fd.as_raw_fd(), buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Answers a permission event. `event_fd` must still be open: the kernel
    /// matches the answer to the event by that descriptor.
    pub fn respond(&self, event_fd: RawFd, allow: bool) -> io::Result<()> {
        let response: u32 = if allow {
            libc::FAN_ALLOW
        } else {
            libc::FAN_DENY
        };
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&event_fd.to_ne_bytes());
        bytes[4..].copy_from_slice(&response.to_ne_bytes());
        fd::write_all_once(self.fd.as_raw_fd(), &bytes)
    }
}

/// [`Group::flush_inode_marks`] on a group's raw descriptor (another thread
/// than the group's owner may need it: the notification thread, when a
/// directory moves into a permission tree). A descriptor that is no longer
/// a fanotify group makes the call fail harmlessly.
pub fn flush_inode_marks_of(group_fd: RawFd) -> io::Result<()> {
    // SAFETY: FAN_MARK_FLUSH takes no path; a null pathname is allowed.
    let ret = unsafe {
        libc::fanotify_mark(
            group_fd,
            libc::FAN_MARK_FLUSH,
            0,
            libc::AT_FDCWD,
            std::ptr::null(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsRawFd for Group {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A file handle as reported in an info record: the filesystem id, the
/// handle type and the opaque handle bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fid<'a> {
    pub fsid: [i32; 2],
    pub handle_type: i32,
    pub handle: &'a [u8],
}

impl Fid<'_> {
    /// A key identifying the object: fsid, type and handle bytes.
    pub fn key_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.fsid[0].to_ne_bytes());
        out.extend_from_slice(&self.fsid[1].to_ne_bytes());
        out.extend_from_slice(&self.handle_type.to_ne_bytes());
        out.extend_from_slice(self.handle);
    }
}

/// A directory handle with the name of an entry in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    pub dir: Fid<'a>,
    /// Raw name bytes; `.` when the event is about the directory itself.
    pub name: &'a [u8],
}

/// One event from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub mask: u64,
    /// Descriptor the kernel opened for this event (permission and
    /// descriptor-mode groups), or `None` (`FAN_NOFD`).
    pub fd: Option<RawFd>,
    /// Thread-group id of the process that caused the event.
    pub pid: i32,
    /// `DFID_NAME` (or the old name of a `FAN_RENAME`).
    pub entry: Option<DirEntry<'a>>,
    /// The new name of a `FAN_RENAME`.
    pub new_entry: Option<DirEntry<'a>>,
    /// The object's own handle (`FAN_REPORT_FID` / `FAN_REPORT_TARGET_FID`).
    pub object: Option<Fid<'a>>,
}

/// Iterates over the events in a filled buffer.
#[derive(Debug)]
pub struct Events<'a> {
    buf: &'a [u8],
    /// Set when a record was malformed; iteration stopped there.
    pub malformed: bool,
}

impl<'a> Events<'a> {
    pub fn new(buf: &'a [u8]) -> Events<'a> {
        Events {
            buf,
            malformed: false,
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses one fid info record body (after the 4-byte header).
fn parse_fid(rec: &[u8], with_name: bool) -> Option<(Fid<'_>, &[u8])> {
    // fsid (2 x i32), then struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[] }.
    let fsid = [i32_at(rec, 0)?, i32_at(rec, 4)?];
    let handle_bytes = u32_at(rec, 8)? as usize;
    let handle_type = i32_at(rec, 12)?;
    let handle = rec.get(16..16usize.checked_add(handle_bytes)?)?;
    let rest = &rec[16 + handle_bytes..];
    let name = if with_name {
        let end = rest.iter().position(|&b| b == 0)?;
        &rest[..end]
    } else {
        &[][..]
    };
    Some((
        Fid {
            fsid,
            handle_type,
            handle,
        },
        name,
    ))
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        if self.buf.len() < METADATA_LEN {
            if !self.buf.is_empty() {
                self.malformed = true;
            }
            return None;
        }
        let event_len = u32_at(self.buf, 0)? as usize;
        let vers = self.buf[4];
        let metadata_len = u16_at(self.buf, 6)? as usize;
        if vers != METADATA_VERSION
            || event_len < METADATA_LEN
            || metadata_len < METADATA_LEN
            || metadata_len > event_len
            || event_len > self.buf.len()
        {
            self.malformed = true;
            self.buf = &[];
            return None;
        }
        let mask = u64_at(self.buf, 8)?;
        let fd = i32_at(self.buf, 16)?;
        let pid = i32_at(self.buf, 20)?;
        let mut ev = Event {
            mask,
            fd: (fd >= 0).then_some(fd),
            pid,
            entry: None,
            new_entry: None,
            object: None,
        };
        // Info records between metadata_len and event_len.
        let mut at = metadata_len;
        while at + 4 <= event_len {
            let ty = self.buf[at];
            let len = u16_at(self.buf, at + 2).unwrap_or(0) as usize;
            if len < 4 || at + len > event_len {
                self.malformed = true;
                break;
            }
            let body = &self.buf[at + 4..at + len];
            match ty {
                info::DFID_NAME | info::OLD_DFID_NAME | info::NEW_DFID_NAME => {
                    if let Some((dir, name)) = parse_fid(body, true) {
                        let entry = DirEntry { dir, name };
                        if ty == info::NEW_DFID_NAME {
                            ev.new_entry = Some(entry);
                        } else {
                            ev.entry = Some(entry);
                        }
                    } else {
                        self.malformed = true;
                    }
                }
                info::DFID => {
                    if let Some((dir, _)) = parse_fid(body, false) {
                        ev.entry.get_or_insert(DirEntry { dir, name: b"." });
                    } else {
                        self.malformed = true;
                    }
                }
                info::FID => {
                    if let Some((obj, _)) = parse_fid(body, false) {
                        ev.object = Some(obj);
                    } else {
                        self.malformed = true;
                    }
                }
                // pidfd, error and range records: not used by the engine.
                _ => {}
            }
            at += len;
        }
        self.buf = &self.buf[event_len..];
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(event_len: u32, mask: u64, fd: i32, pid: i32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&event_len.to_ne_bytes());
        v.push(METADATA_VERSION);
        v.push(0);
        v.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&fd.to_ne_bytes());
        v.extend_from_slice(&pid.to_ne_bytes());
        v
    }

    fn dfid_name(ty: u8, handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&7i32.to_ne_bytes());
        body.extend_from_slice(&9i32.to_ne_bytes());
        body.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        body.extend_from_slice(&1i32.to_ne_bytes());
        body.extend_from_slice(handle);
        body.extend_from_slice(name);
        body.push(0);
        while (body.len() + 4) % 4 != 0 {
            body.push(0);
        }
        let mut rec = vec![ty, 0];
        rec.extend_from_slice(&((body.len() + 4) as u16).to_ne_bytes());
        rec.extend_from_slice(&body);
        rec
    }

    #[test]
    fn parses_dfid_name_and_rename() {
        let a = dfid_name(info::DFID_NAME, &[1, 2, 3, 4, 5, 6, 7, 8], b"file.txt");
        let mut buf = metadata((METADATA_LEN + a.len()) as u32, mask::CREATE, -1, 42);
        buf.extend_from_slice(&a);
        let old = dfid_name(info::OLD_DFID_NAME, &[1; 8], b"old");
        let new = dfid_name(info::NEW_DFID_NAME, &[2; 8], b"new");
        let mut second = metadata(
            (METADATA_LEN + old.len() + new.len()) as u32,
            mask::RENAME,
            -1,
            7,
        );
        second.extend_from_slice(&old);
        second.extend_from_slice(&new);
        buf.extend_from_slice(&second);
        let mut it = Events::new(&buf);
        let e = it.next().unwrap();
        assert_eq!(e.mask, mask::CREATE);
        assert_eq!(e.pid, 42);
        assert_eq!(e.fd, None);
        let entry = e.entry.unwrap();
        assert_eq!(entry.name, b"file.txt");
        assert_eq!(entry.dir.fsid, [7, 9]);
        assert_eq!(entry.dir.handle, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let r = it.next().unwrap();
        assert_eq!(r.entry.unwrap().name, b"old");
        assert_eq!(r.new_entry.unwrap().name, b"new");
        assert!(it.next().is_none());
        assert!(!it.malformed);
    }

    #[test]
    fn malformed_buffers_end_iteration_without_panic() {
        // Every truncation and every single-byte corruption of a valid buffer.
        let a = dfid_name(info::DFID_NAME, &[1, 2, 3, 4, 5, 6, 7, 8], b"f");
        let mut buf = metadata((METADATA_LEN + a.len()) as u32, mask::DELETE, -1, 1);
        buf.extend_from_slice(&a);
        for cut in 0..buf.len() {
            let _ = Events::new(&buf[..cut]).count();
        }
        for i in 0..buf.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = buf.clone();
                b[i] = v;
                let _ = Events::new(&b).count();
            }
        }
        let mut it = Events::new(&buf[..10]);
        assert!(it.next().is_none());
        assert!(it.malformed);
    }
}

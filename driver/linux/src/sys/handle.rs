//! Turning a directory file handle back into a path: `open_by_handle_at`
//! with `O_PATH` (which generates no fanotify event of its own), then the
//! `/proc/self/fd` link of the result.
//!
//! `open_by_handle_at` needs a descriptor on the same filesystem (any file
//! on it, not opened `O_PATH`): [`MountFds`] keeps one per marked filesystem, keyed by fsid.
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::fanotify::Fid;
use super::fd;

/// Largest handle `open_by_handle_at` accepts (`MAX_HANDLE_SZ`).
pub const MAX_HANDLE_SZ: usize = 128;

/// One descriptor per marked filesystem, by fsid; for filesystems marked
/// only for exec events, just the mount point, opened when needed and
/// closed again (holding a descriptor on every local filesystem would keep
/// any of them from being unmounted while the engine runs).
#[derive(Debug, Default)]
pub struct MountFds {
    by_fsid: HashMap<[i32; 2], OwnedFd>,
    lazy: HashMap<[i32; 2], std::path::PathBuf>,
}

/// A mount descriptor: held by [`MountFds`] or opened for one use.
#[derive(Debug)]
pub enum MountRef<'a> {
    Held(&'a OwnedFd),
    Opened(OwnedFd),
}

impl AsRawFd for MountRef<'_> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            MountRef::Held(f) => f.as_raw_fd(),
            MountRef::Opened(f) => f.as_raw_fd(),
        }
    }
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

impl MountFds {
    /// Opens `path` and records it under its filesystem's fsid. Returns
    /// the fsid. (Not `O_PATH`: `open_by_handle_at` refuses `O_PATH`
    /// descriptors as its mount argument with EBADF.)
    pub fn add(&mut self, path: &Path) -> io::Result<[i32; 2]> {
        let owned = open_dir(path)?;
        let fsid = fsid_of(&owned)?;
        self.lazy.remove(&fsid);
        self.by_fsid.entry(fsid).or_insert(owned);
        Ok(fsid)
    }

    /// Records `path`'s filesystem without keeping a descriptor on it
    /// (see [`MountFds`]). Returns the fsid.
    pub fn add_lazy(&mut self, path: &Path) -> io::Result<[i32; 2]> {
        let fsid = fsid_of(&open_dir(path)?)?;
        if !self.by_fsid.contains_key(&fsid) {
            self.lazy.entry(fsid).or_insert_with(|| path.to_path_buf());
        }
        Ok(fsid)
    }

    /// Whether a descriptor is held for `fsid`.
    pub fn holds(&self, fsid: [i32; 2]) -> bool {
        self.by_fsid.contains_key(&fsid)
    }

    /// A descriptor on filesystem `fsid`, if it is marked. (For a lazily
    /// recorded one, the mount point is opened now; if it is no longer
    /// that filesystem, `None`.)
    pub fn get(&self, fsid: [i32; 2]) -> Option<MountRef<'_>> {
        if let Some(f) = self.by_fsid.get(&fsid) {
            return Some(MountRef::Held(f));
        }
        let path = self.lazy.get(&fsid)?;
        let fd = open_dir(path).ok()?;
        (fsid_of(&fd).ok()? == fsid).then_some(MountRef::Opened(fd))
    }
}

/// The fsid `fstatfs` reports, the one fanotify puts in its info records.
pub fn fsid_of(fd: &OwnedFd) -> io::Result<[i32; 2]> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is a live, writable statfs buffer; `fd` is open.
    let ret = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs succeeded, so the kernel initialized the structure
    // (and it started zeroed, so it is fully initialized either way).
    let st = unsafe { st.assume_init() };
    // `fsid_t` is `{ int __val[2]; }` with private fields in libc: read it
    // through its bytes.
    let raw: [u8; 8] = bytes_of_fsid(&st.f_fsid);
    Ok([
        i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]),
        i32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]),
    ])
}

fn bytes_of_fsid(f: &libc::fsid_t) -> [u8; 8] {
    const _: () = assert!(std::mem::size_of::<libc::fsid_t>() == 8);
    let p: *const libc::fsid_t = f;
    let mut out = [0u8; 8];
    // SAFETY: `fsid_t` is a plain 8-byte C struct of two ints (size checked
    // at compile time above), so reading its 8 bytes is reading initialized
    // memory; `out` is a distinct 8-byte buffer.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), out.as_mut_ptr(), 8) };
    out
}

/// Resolves `dir` to the path of the directory it names, into `out`.
pub fn resolve_dir(mounts: &MountFds, dir: &Fid<'_>, out: &mut String) -> io::Result<()> {
    let mount = mounts.get(dir.fsid).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "event from an unmarked filesystem")
    })?;
    if dir.handle.len() > MAX_HANDLE_SZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file handle too large",
        ));
    }
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[] },
    // built in a u32 array so that it is 4-byte aligned.
    let mut words = [0u32; 2 + MAX_HANDLE_SZ / 4];
    words[0] = dir.handle.len() as u32;
    words[1] = dir.handle_type as u32;
    for (i, chunk) in dir.handle.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        words[2 + i] = u32::from_ne_bytes(w);
    }
    let fh: *mut libc::file_handle = words.as_mut_ptr().cast();
    // SAFETY: `fh` points to a 4-byte aligned buffer laid out as a
    // file_handle whose `handle_bytes` (<= MAX_HANDLE_SZ) bytes of f_handle
    // fit in `words`; `mount` is an open descriptor on the filesystem.
    let ret =
        unsafe { libc::open_by_handle_at(mount.as_raw_fd(), fh, libc::O_PATH | libc::O_CLOEXEC) };
    let opened = fd::owned(ret)?;
    fd::fd_path(&opened, out)
}

/// `AT_HANDLE_FID` (Linux 6.5): the handle form fanotify reports, which
/// needs no export support for opening.
const AT_HANDLE_FID: libc::c_int = 0x200;

/// The fanotify-style key (fsid, handle type, handle bytes; see
/// [`super::fanotify::Fid::key_into`]) of the object at `path`, without
/// following a final symbolic link. `fsid` is the filesystem's, as
/// [`fsid_of`] reports it.
pub fn key_of_path(path: &std::ffi::CStr, fsid: [i32; 2], out: &mut Vec<u8>) -> io::Result<()> {
    let mut words = [0u32; 2 + MAX_HANDLE_SZ / 4];
    let mut mount_id: libc::c_int = 0;
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for flags in [AT_HANDLE_FID, 0] {
        words[0] = MAX_HANDLE_SZ as u32;
        let fh: *mut libc::file_handle = words.as_mut_ptr().cast();
        // SAFETY: `fh` points to a 4-byte aligned buffer of 8 + MAX_HANDLE_SZ
        // bytes whose `handle_bytes` field says MAX_HANDLE_SZ; `path` is a
        // NUL-terminated string; `mount_id` is a live int.
        let ret = unsafe {
            libc::name_to_handle_at(libc::AT_FDCWD, path.as_ptr(), fh, &mut mount_id, flags)
        };
        if ret == 0 {
            let len = (words[0] as usize).min(MAX_HANDLE_SZ);
            out.clear();
            out.extend_from_slice(&fsid[0].to_ne_bytes());
            out.extend_from_slice(&fsid[1].to_ne_bytes());
            out.extend_from_slice(&(words[1] as i32).to_ne_bytes());
            for w in &words[2..] {
                if out.len() >= 12 + len {
                    break;
                }
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.truncate(12 + len);
            return Ok(());
        }
        last = io::Error::last_os_error();
    }
    Err(last)
}

/// The fsid of the filesystem holding `path`.
pub fn fsid_of_path(path: &std::ffi::CStr) -> io::Result<[i32; 2]> {
    // SAFETY: `path` is NUL-terminated; the flags open no file for I/O.
    let ret = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_DIRECTORY,
        )
    };
    let fd = fd::owned(ret)?;
    fsid_of(&fd)
}

/// Resolves `dir` like [`resolve_dir`], and says whether the directory was
/// already removed (`st_nlink == 0`): only then is a trailing
/// ` (deleted)` in the link the kernel's marker rather than part of the
/// real name.
pub fn resolve_dir_checked(
    mounts: &MountFds,
    dir: &Fid<'_>,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let mount = mounts.get(dir.fsid).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "event from an unmarked filesystem")
    })?;
    if dir.handle.len() > MAX_HANDLE_SZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file handle too large",
        ));
    }
    let mut words = [0u32; 2 + MAX_HANDLE_SZ / 4];
    words[0] = dir.handle.len() as u32;
    words[1] = dir.handle_type as u32;
    for (i, chunk) in dir.handle.chunks(4).enumerate() {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        words[2 + i] = u32::from_ne_bytes(w);
    }
    let fh: *mut libc::file_handle = words.as_mut_ptr().cast();
    // SAFETY: as in `resolve_dir`: an aligned file_handle whose bytes fit.
    let ret =
        unsafe { libc::open_by_handle_at(mount.as_raw_fd(), fh, libc::O_PATH | libc::O_CLOEXEC) };
    let opened = fd::owned(ret)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `opened` is an open descriptor; `st` a writable stat buffer.
    let r = unsafe { libc::fstat(opened.as_raw_fd(), st.as_mut_ptr()) };
    // SAFETY: fstat succeeded (r == 0) or the zeroed buffer is read.
    let gone = r == 0 && unsafe { st.assume_init() }.st_nlink == 0;
    fd::proc_fd_path_bytes(opened.as_raw_fd(), out)?;
    Ok(gone)
}

/// The path of the open file `fd` as seen through the marked mount of its
/// filesystem (the one in `mounts`), into `out`: `name_to_handle_at` on
/// the descriptor, then `open_by_handle_at` on the marked mount. A file
/// opened through a bind mount, another mount namespace's mount or any
/// other spelling of the same filesystem gets the path the policy's trees
/// are written in. Fails for a filesystem not marked or without exportable
/// handles.
pub fn path_via_marked_mount(
    mounts: &MountFds,
    file: &OwnedFd,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let fsid = fsid_of(file)?;
    let mount = mounts
        .get(fsid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file on an unmarked filesystem"))?;
    let mut words = [0u32; 2 + MAX_HANDLE_SZ / 4];
    words[0] = MAX_HANDLE_SZ as u32;
    let fh: *mut libc::file_handle = words.as_mut_ptr().cast();
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `fh` points to an aligned buffer of 8 + MAX_HANDLE_SZ bytes
    // whose `handle_bytes` says MAX_HANDLE_SZ; the empty path is a valid
    // NUL-terminated string; AT_EMPTY_PATH makes `fd` itself the object.
    let ret = unsafe {
        libc::name_to_handle_at(fd, c"".as_ptr(), fh, &mut mount_id, libc::AT_EMPTY_PATH)
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the handle was just filled in by the kernel; `mount` is an
    // open descriptor on the same filesystem.
    let ret =
        unsafe { libc::open_by_handle_at(mount.as_raw_fd(), fh, libc::O_PATH | libc::O_CLOEXEC) };
    let opened = fd::owned(ret)?;
    fd::proc_fd_path_bytes(opened.as_raw_fd(), out)
}

/// The fanotify-style key of the open file `file` (like [`key_of_path`]).
pub fn key_of_fd(file: &OwnedFd, out: &mut Vec<u8>) -> io::Result<()> {
    let fsid = fsid_of(file)?;
    let mut words = [0u32; 2 + MAX_HANDLE_SZ / 4];
    let mut mount_id: libc::c_int = 0;
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for flags in [AT_HANDLE_FID | libc::AT_EMPTY_PATH, libc::AT_EMPTY_PATH] {
        words[0] = MAX_HANDLE_SZ as u32;
        let fh: *mut libc::file_handle = words.as_mut_ptr().cast();
        // SAFETY: as in `key_of_path`; the empty path with AT_EMPTY_PATH
        // names `file` itself, which is open.
        let ret = unsafe {
            libc::name_to_handle_at(file.as_raw_fd(), c"".as_ptr(), fh, &mut mount_id, flags)
        };
        if ret == 0 {
            let len = (words[0] as usize).min(MAX_HANDLE_SZ);
            out.clear();
            out.extend_from_slice(&fsid[0].to_ne_bytes());
            out.extend_from_slice(&fsid[1].to_ne_bytes());
            out.extend_from_slice(&(words[1] as i32).to_ne_bytes());
            for w in &words[2..] {
                if out.len() >= 12 + len {
                    break;
                }
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.truncate(12 + len);
            return Ok(());
        }
        last = io::Error::last_os_error();
    }
    Err(last)
}

//! The flush thread: the only code in the driver that does file I/O.
//!
//! A system thread at PASSIVE_LEVEL (kernel rule 2) waits on an event with
//! a timeout ([`FLUSH_INTERVAL_MS`]) — producers set the event when a ring
//! passes its high-water mark — and drains the queue through the shared
//! [`LogWriter`] (framing, chain, drop records, rotation) into a [`FltSink`]:
//! FltWriteFile on a FILE_OBJECT it opened itself with FltCreateFileEx2 and
//! this filter's instance on the log's volume (rule 3), found by volume name
//! (FltGetVolumeFromName + FltGetVolumeInstanceFromName, rule 4). I/O on
//! that file object goes below the filter, so the log is never evaluated
//! or logged.
//!
//! **Where the log lives.** The log's directory is opened (or created) with
//! an explicit security descriptor ([`LOG_SDDL`]: protected DACL, full
//! control for SYSTEM and Administrators only, inherited by what is created
//! inside) and kept open; every log file is then created *relative to that
//! directory handle* with the same descriptor, so a path component swapped
//! after the check cannot redirect the log. Every open passes
//! FILE_OPEN_REPARSE_POINT: a directory that turns out to be a reparse point
//! (a junction planted by a user) is refused, a file that is one is moved
//! aside like any other existing file. A directory or a file of the wrong
//! kind planted where the log must go is reported as *squatted* in
//! `status` ([`fltpolicy_core::control::LogState::Squatted`]); records wait
//! in the queue meanwhile, and what overflows reaches the log as drop
//! records once it can be opened.
//!
//! **Naming.** The first file of a session is the configured path; rotation
//! (at [`MAX_FILE_BYTES`]) continues in `<path>.1`, `<path>.2`, ... An
//! existing log at start-up is kept: it is renamed to
//! `<path>.<time>.old` first.
//!
//! **Switching files** (IOCTL_SET_LOG_PATH, the log's volume going away):
//! the current file gets one bounded drain and its `End` record, and the
//! next file continues the sequence ([`Carry`]): records still queued go to
//! the new file, losses not yet written travel as pending drop records, so
//! a switch under a steady producer completes and loses nothing silently.
//!
//! **Volume teardown.** When the log's volume is detached, dismounted or
//! removed, InstanceTeardownStart ([`release_instance`]) asks this thread
//! to end the log and drop its file, directory and instance references, and
//! waits until it has; the thread reopens the log when the volume (a new
//! instance) is back.
//!
//! **Memory.** Every buffer (paths, descriptor, the writer itself, the
//! 256 KiB batch buffer) is in non-paged pool allocated once at
//! DriverEntry ([`FlushMem`]); no function here keeps a path on its stack
//! (the image test bounds every frame).

use core::ffi::c_void;
use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use fltpolicy_core::control::LogState;
use fltpolicy_core::record::writer::{
    Carry, LogWriter, Sink, WriterConfig, MIN_FILE_BYTES, MIN_WRITER_BUFFER,
};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{PFLT_FILTER, PFLT_INSTANCE};
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};

use crate::globals::Globals;
use crate::kernel::{self, status::*, CreateMode, OwnFile};
use crate::sddl::SdBuf;

/// Wake-up period when producers are quiet: at most this much log delay.
pub const FLUSH_INTERVAL_MS: u32 = 1000;
/// Rotation threshold: 64 MiB keeps files quick to verify and view.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Batch buffer of the writer, in non-paged pool: 256 KiB per write.
pub const WRITE_BUFFER: usize = 256 << 10;
/// Longest NT path of a log file in UTF-16 units (`\??\` + the DOS path +
/// a rotation suffix).
pub const MAX_LOG_PATH_UNITS: usize = fltpolicy_core::control::MAX_LOG_PATH_LEN + 48;
/// Longest NT device name of a volume (`\Device\HarddiskVolume12`).
const MAX_DEVICE_UNITS: usize = 128;
/// Log used until IOCTL_SET_LOG_PATH names another: a directory of its
/// own under `C:\ProgramData`, created with [`LOG_SDDL`].
pub const DEFAULT_LOG_PATH: &str = r"C:\ProgramData\fltpolicy\audit.log";
/// Security of the log directory and of every log file: protected DACL,
/// full control for LocalSystem and Administrators, inherited by files
/// (OI) and subdirectories (CI). Users cannot read, create or delete
/// anything in it.
pub const LOG_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

const _: () = assert!(WRITE_BUFFER >= MIN_WRITER_BUFFER && MAX_FILE_BYTES >= MIN_FILE_BYTES);

/// `STATUS_NOT_A_DIRECTORY`: a file planted where the log directory goes.
pub const STATUS_NOT_A_DIRECTORY: NTSTATUS = 0xC000_0103_u32 as i32;
/// `STATUS_FILE_IS_A_DIRECTORY`: a directory planted with the log's name.
pub const STATUS_FILE_IS_A_DIRECTORY: NTSTATUS = 0xC000_00BA_u32 as i32;
/// `STATUS_REPARSE_POINT_ENCOUNTERED`: the log directory is a reparse point.
pub const STATUS_REPARSE_POINT_ENCOUNTERED: NTSTATUS = 0xC000_050B_u32 as i32;
/// `STATUS_FLT_DELETING_OBJECT`: the volume's instance is being torn down.
pub const STATUS_FLT_DELETING_OBJECT: NTSTATUS = 0xC01C_000B_u32 as i32;
/// `STATUS_FLT_INSTANCE_NOT_FOUND`: no instance of this filter there.
pub const STATUS_FLT_INSTANCE_NOT_FOUND: NTSTATUS = 0xC01C_0011_u32 as i32;
/// `STATUS_INVALID_OWNER`: the default log directory was made by someone
/// other than SYSTEM or Administrators.
pub const STATUS_INVALID_OWNER: NTSTATUS = 0xC000_005A_u32 as i32;
/// `STATUS_NOT_IMPLEMENTED` (a routine resolved by name is missing).
const STATUS_NOT_IMPLEMENTED: NTSTATUS = 0xC000_0002_u32 as i32;

/// Whether the owner of a self-relative descriptor (offset at bytes 4..8)
/// is LocalSystem or BUILTIN\Administrators.
fn owner_is_trusted(sd: &[u8]) -> bool {
    let Some(off) = sd
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    else {
        return false;
    };
    let Some(sid) = sd.get(off..) else {
        return false;
    };
    [
        crate::sddl::Principal::LocalSystem,
        crate::sddl::Principal::Administrators,
    ]
    .iter()
    .any(|p| off != 0 && sid.starts_with(p.sid()))
}

/// `FILE_ATTRIBUTE_REPARSE_POINT`.
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;

/// A log path handed from the control path to the flush thread, in
/// non-paged pool: the DOS path (`C:\logs\a.log`) as UTF-16.
#[derive(Debug)]
pub struct LogPath {
    len: usize,
    units: [u16; MAX_LOG_PATH_UNITS],
}

impl LogPath {
    /// Allocates a block holding `dos_path` (already validated by
    /// `control::parse_set_log_path`). PASSIVE_LEVEL.
    pub fn create(dos_path: &str) -> Option<*mut LogPath> {
        let p = kernel::alloc_nonpaged(core::mem::size_of::<LogPath>()).cast::<LogPath>();
        if p.is_null() {
            return None;
        }
        // SAFETY: fresh zeroed allocation of a LogPath; all-zero is a valid
        // LogPath (len 0).
        let lp = unsafe { &mut *p };
        match crate::utf::utf8_to_utf16(dos_path, &mut lp.units) {
            Some(n) => {
                lp.len = n;
                Some(p)
            }
            None => {
                // SAFETY: allocated above, not published.
                unsafe { kernel::free_pool(p.cast()) };
                None
            }
        }
    }

    /// Frees a block from [`LogPath::create`].
    ///
    /// # Safety
    /// `p` is owned by the caller.
    pub unsafe fn destroy(p: *mut LogPath) {
        // SAFETY: per the caller.
        unsafe { kernel::free_pool(p.cast()) };
    }

    fn dos(&self) -> &[u16] {
        &self.units[..self.len.min(MAX_LOG_PATH_UNITS)]
    }
}

/// The flush thread's path buffers and the log's security descriptor.
/// All-zero is a valid value (empty paths).
#[derive(Debug)]
pub struct Paths {
    /// The configured DOS path `C:\dir\name`.
    dos: [u16; MAX_LOG_PATH_UNITS],
    dos_len: usize,
    /// Scratch: NT paths (`\??\C:`, `\??\C:\dir`).
    nt: [u16; MAX_LOG_PATH_UNITS],
    /// Scratch: names relative to the log directory.
    name: [u16; MAX_LOG_PATH_UNITS],
    /// Scratch: the volume's device name.
    device: [u16; MAX_DEVICE_UNITS],
    /// Self-relative descriptor built from [`LOG_SDDL`] at DriverEntry.
    sd: SdBuf,
    /// Scratch: a descriptor read back (the default directory's owner).
    sd_scratch: SdBuf,
}

impl Paths {
    fn dos(&self) -> &[u16] {
        &self.dos[..self.dos_len.min(MAX_LOG_PATH_UNITS)]
    }

    /// Whether the directory part (`dos[..split]`) is the default log's
    /// directory (ASCII case-insensitive).
    fn is_default_dir(&self, split: usize) -> bool {
        let def = DEFAULT_LOG_PATH.as_bytes();
        let Some(end) = def.iter().rposition(|&c| c == b'\\') else {
            return false;
        };
        split == end
            && self.dos[..split]
                .iter()
                .zip(&def[..end])
                .all(|(&u, &c)| u < 0x80 && (u as u8).eq_ignore_ascii_case(&c))
    }

    /// Index of the last `\` of the DOS path (directory / name split).
    fn split(&self) -> Option<usize> {
        let d = self.dos();
        let i = d.iter().rposition(|&c| c == u16::from(b'\\'))?;
        // `C:\name` at least, and a non-empty name.
        (d.len() >= 4 && d[1] == u16::from(b':') && i >= 2 && i + 1 < d.len()).then_some(i)
    }

    /// `\??\<ascii parts...><dos[range]>` into `nt`; returns the length.
    fn nt_of(&mut self, end: usize, root_slash: bool) -> Option<usize> {
        let prefix = [b'\\', b'?', b'?', b'\\'];
        let total = prefix.len() + end + usize::from(root_slash);
        if total > self.nt.len() || end > self.dos_len {
            return None;
        }
        for (o, c) in self.nt.iter_mut().zip(prefix) {
            *o = u16::from(c);
        }
        self.nt[4..4 + end].copy_from_slice(&self.dos[..end]);
        if root_slash {
            self.nt[4 + end] = u16::from(b'\\');
        }
        Some(total)
    }

    /// `<name><suffix...>` into `name`; returns the length.
    fn name_with(&mut self, split: usize, suffix: &[&[u8]]) -> Option<usize> {
        let base = self.dos_len - split - 1;
        let extra: usize = suffix.iter().map(|s| s.len()).sum();
        if base + extra > self.name.len() {
            return None;
        }
        self.name[..base].copy_from_slice(&self.dos[split + 1..self.dos_len]);
        let mut k = base;
        for c in suffix.iter().flat_map(|s| s.iter()) {
            self.name[k] = u16::from(*c);
            k += 1;
        }
        Some(k)
    }
}

/// Decimal digits of `v` into `buf`; returns the used tail.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// Why the log could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError {
    pub status: NTSTATUS,
    pub state: LogState,
}

impl OpenError {
    fn failed(status: NTSTATUS) -> OpenError {
        let state = match status {
            STATUS_FLT_DELETING_OBJECT | STATUS_FLT_INSTANCE_NOT_FOUND => LogState::NoVolume,
            _ => LogState::OpenFailed,
        };
        OpenError { status, state }
    }
    fn squatted(status: NTSTATUS) -> OpenError {
        OpenError {
            status,
            state: LogState::Squatted,
        }
    }
}

/// The sink: the log directory (kept open) and a chain of files `<name>`,
/// `<name>.1`, ... in it, written with FltWriteFile through this filter's
/// instance.
#[derive(Debug)]
pub struct FltSink {
    filter: PFLT_FILTER,
    instance: PFLT_INSTANCE,
    dir: OwnFile,
    file: OwnFile,
    split: usize,
    paths: *mut Paths,
}

impl FltSink {
    /// Opens a fresh log at the path in `paths`. PASSIVE_LEVEL, flush
    /// thread; `avoid` is an instance being torn down (never used).
    ///
    /// # Safety
    /// `filter` is this driver's registered filter; `paths` is the flush
    /// thread's block, used by nothing else while the sink lives.
    #[inline(never)] // its own frame, bounded like every other (image test)
    pub unsafe fn open(
        filter: PFLT_FILTER,
        paths: *mut Paths,
        avoid: PFLT_INSTANCE,
    ) -> Result<FltSink, OpenError> {
        // SAFETY: per the caller.
        let p = unsafe { &mut *paths };
        let bad = OpenError::failed(STATUS_OBJECT_NAME_NOT_FOUND);
        let split = p.split().ok_or(bad)?;
        // The volume: `\??\C:` → `\Device\HarddiskVolumeN`.
        let n = p.nt_of(2, false).ok_or(bad)?;
        // SAFETY: PASSIVE_LEVEL (flush thread).
        let dn = unsafe { kernel::resolve_symbolic_link(&p.nt[..n], &mut p.device) }
            .map_err(OpenError::failed)?;
        // SAFETY: filter is registered; PASSIVE_LEVEL.
        let instance = unsafe { kernel::volume_instance_by_name(filter, &p.device[..dn]) }
            .map_err(OpenError::failed)?;
        let release = |e: OpenError| {
            // SAFETY: we own the instance reference.
            unsafe { kernel::object_dereference(instance as *mut c_void) };
            e
        };
        if instance == avoid {
            return Err(release(OpenError::failed(STATUS_FLT_DELETING_OBJECT)));
        }
        // The directory, with our descriptor if we create it.
        let n = p.nt_of(split, split == 2).ok_or(bad).map_err(release)?;
        // SAFETY: PASSIVE_LEVEL; instance referenced above; `sd` is an
        // aligned self-relative descriptor.
        let opened = match unsafe {
            kernel::create_file(
                filter,
                instance,
                core::ptr::null_mut(),
                &p.nt[..n],
                CreateMode::Directory,
                &p.sd,
            )
        } {
            Ok(d) => d,
            Err(STATUS_NOT_A_DIRECTORY) => {
                return Err(release(OpenError::squatted(STATUS_NOT_A_DIRECTORY)))
            }
            Err(st) => return Err(release(OpenError::failed(st))),
        };
        let dir = opened.file;
        // Opened with FILE_OPEN_REPARSE_POINT: a junction is opened itself,
        // not followed. Refuse it: whoever planted it chose its target.
        // SAFETY: our own file object; PASSIVE_LEVEL.
        let attrs = unsafe { kernel::query_attributes(instance, dir.file_object) };
        let mut refused = match attrs {
            Ok(a) if a & FILE_ATTRIBUTE_REPARSE_POINT != 0 => {
                Some(OpenError::squatted(STATUS_REPARSE_POINT_ENCOUNTERED))
            }
            Ok(_) => None,
            Err(st) => Some(OpenError::failed(st)),
        };
        // The default directory is the driver's own: if it was already
        // there, whoever made it must be SYSTEM or Administrators (Users may
        // create directories in ProgramData, and a creator keeps control of
        // what it created). A directory an administrator chose with
        // set-log-path is theirs to own.
        if refused.is_none() && !opened.created && p.is_default_dir(split) {
            // SAFETY: our own directory handle; PASSIVE_LEVEL.
            match unsafe { kernel::query_owner(dir.handle, &mut p.sd_scratch) } {
                Ok(n) if owner_is_trusted(&p.sd_scratch.0[..n.min(p.sd_scratch.0.len())]) => {}
                Ok(_) => refused = Some(OpenError::squatted(STATUS_INVALID_OWNER)),
                // The routine is missing (not on Windows): no owner check.
                Err(STATUS_NOT_IMPLEMENTED) => {}
                Err(st) => refused = Some(OpenError::failed(st)),
            }
        }
        if let Some(e) = refused {
            // SAFETY: we own `dir`.
            unsafe { kernel::close_file(dir) };
            return Err(release(e));
        }
        let mut sink = FltSink {
            filter,
            instance,
            dir,
            file: OwnFile {
                handle: core::ptr::null_mut(),
                file_object: core::ptr::null_mut(),
            },
            split,
            paths,
        };
        // SAFETY: PASSIVE_LEVEL; instance and directory held.
        match unsafe { sink.create_fresh(&[]) } {
            Ok(f) => {
                sink.file = f;
                Ok(sink)
            }
            Err(e) => {
                // SAFETY: we own the directory.
                unsafe { kernel::close_file(sink.dir) };
                Err(release(e))
            }
        }
    }

    /// The instance the log is written through.
    pub fn instance(&self) -> PFLT_INSTANCE {
        self.instance
    }

    /// Creates `<name><suffix>` in the log directory as a new empty file;
    /// an existing one is moved aside to `<name><suffix>.<time>.old` first.
    ///
    /// # Safety
    /// PASSIVE_LEVEL, flush thread; `self.paths` unborrowed.
    #[inline(never)]
    unsafe fn create_fresh(&mut self, suffix: &[u8]) -> Result<OwnFile, OpenError> {
        // SAFETY: per the caller, the flush thread's block.
        let p = unsafe { &mut *self.paths };
        let bad = OpenError::failed(STATUS_OBJECT_NAME_NOT_FOUND);
        let n = p.name_with(self.split, &[suffix]).ok_or(bad)?;
        let root = self.dir.handle;
        // SAFETY: per the caller; relative to our directory handle.
        match unsafe { self.create(root, n, CreateMode::New) } {
            Ok(f) => return Ok(f),
            Err(st) if st != kernel::STATUS_OBJECT_NAME_COLLISION => {
                return Err(OpenError::failed(st))
            }
            Err(_) => {}
        }
        // SAFETY: per the caller.
        let old = match unsafe { self.create(root, n, CreateMode::Existing) } {
            Ok(f) => f,
            // A directory planted with the log's name.
            Err(STATUS_FILE_IS_A_DIRECTORY) => {
                return Err(OpenError::squatted(STATUS_FILE_IS_A_DIRECTORY))
            }
            Err(st) => return Err(OpenError::failed(st)),
        };
        let mut digits = [0u8; 20];
        let d = decimal(kernel::system_time_ns(), &mut digits);
        let an = p
            .name_with(self.split, &[suffix, b".", d, b".old"])
            .ok_or(bad)?;
        // SAFETY: `old` is our own file object (a reparse point is opened
        // itself, so this renames the link, not its target); PASSIVE_LEVEL.
        let st =
            unsafe { kernel::rename_file(self.instance, old.file_object, root, &p.name[..an]) };
        // SAFETY: we own `old`.
        unsafe { kernel::close_file(old) };
        if !nt_success(st) {
            return Err(OpenError::failed(st));
        }
        let n = p.name_with(self.split, &[suffix]).ok_or(bad)?;
        // SAFETY: per the caller.
        unsafe { self.create(root, n, CreateMode::New) }.map_err(OpenError::failed)
    }

    /// # Safety
    /// PASSIVE_LEVEL, flush thread; `paths.name[..n]` holds the name.
    unsafe fn create(&self, root: HANDLE, n: usize, mode: CreateMode) -> Result<OwnFile, NTSTATUS> {
        // SAFETY: the flush thread's block (shared read here).
        let p = unsafe { &*self.paths };
        // SAFETY: per the caller; instance and directory held.
        unsafe { kernel::create_file(self.filter, self.instance, root, &p.name[..n], mode, &p.sd) }
            .map(|o| o.file)
    }

    /// Closes the file and the directory and releases the instance.
    /// PASSIVE_LEVEL.
    fn close(&self) {
        // SAFETY: we own the file, the directory and the instance
        // reference; PASSIVE_LEVEL. Called once, then the sink is dropped.
        unsafe { kernel::close_file(self.file) };
        // SAFETY: as above.
        unsafe { kernel::close_file(self.dir) };
        // SAFETY: as above.
        unsafe { kernel::object_dereference(self.instance as *mut c_void) };
    }
}

impl Sink for FltSink {
    type Error = NTSTATUS;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), NTSTATUS> {
        // SAFETY: own file object and instance; flush thread, PASSIVE_LEVEL.
        unsafe { kernel::write_file(self.instance, self.file.file_object, offset, bytes) }
    }
    fn truncate(&mut self, len: u64) -> Result<(), NTSTATUS> {
        // SAFETY: as above.
        let st = unsafe { kernel::set_file_size(self.instance, self.file.file_object, len) };
        if nt_success(st) {
            Ok(())
        } else {
            Err(st)
        }
    }
    fn sync(&mut self) -> Result<(), NTSTATUS> {
        // SAFETY: as above.
        let st = unsafe { kernel::flush_file(self.instance, self.file.file_object) };
        if nt_success(st) {
            Ok(())
        } else {
            Err(st)
        }
    }
    fn rotate(&mut self, index: u32) -> Result<(), NTSTATUS> {
        let mut digits = [0u8; 20];
        let d = decimal(u64::from(index), &mut digits);
        let mut sfx = [0u8; 21];
        sfx[0] = b'.';
        sfx[1..1 + d.len()].copy_from_slice(d);
        // SAFETY: flush thread, PASSIVE_LEVEL; the paths are ours.
        let next = unsafe { self.create_fresh(&sfx[..1 + d.len()]) }.map_err(|e| e.status)?;
        // SAFETY: we own the previous file.
        unsafe { kernel::close_file(self.file) };
        self.file = next;
        Ok(())
    }
}

/// The flush thread's state, in non-paged pool.
#[derive(Debug)]
struct FlushState {
    writer: Option<LogWriter<'static, FltSink>>,
    /// What the next log file continues from.
    carry: Carry,
    /// Events written by writers already ended.
    logged_before: u64,
    sessions: u64,
    /// The batch buffer (WRITE_BUFFER bytes), borrowed by the writer.
    buf: *mut u8,
}

/// Everything the flush thread needs, allocated once at DriverEntry and
/// freed at unload after the thread is joined.
#[derive(Debug)]
pub struct FlushMem {
    paths: Paths,
    state: FlushState,
}

impl FlushMem {
    /// Allocates and initialises the block (the default path, the log's
    /// descriptor, the batch buffer). PASSIVE_LEVEL (DriverEntry).
    #[inline(never)]
    pub fn create() -> Option<*mut FlushMem> {
        let dacl = crate::sddl::parse(LOG_SDDL).ok()?;
        let buf = kernel::alloc_nonpaged(WRITE_BUFFER);
        if buf.is_null() {
            return None;
        }
        let m = crate::pool::alloc_for::<FlushMem>();
        if m.is_null() {
            // SAFETY: allocated above, unused.
            unsafe { kernel::free_pool(buf) };
            return None;
        }
        // The zeroed block is a valid `Paths`; the state is written field
        // by field so that nothing this large is built on the stack.
        // SAFETY: `m` is a fresh, aligned, zeroed FlushMem-sized block.
        let pp = unsafe { addr_of_mut!((*m).paths) };
        // SAFETY: as above; all-zero is a valid Paths.
        let paths = unsafe { &mut *pp };
        paths.dos_len = crate::utf::utf8_to_utf16(DEFAULT_LOG_PATH, &mut paths.dos).unwrap_or(0);
        dacl.to_self_relative(&mut paths.sd);
        // SAFETY: as above.
        let st = unsafe { addr_of_mut!((*m).state) };
        // Not built on the stack (the writer slot is ~900 bytes even when
        // empty): every field but the writer is valid as zero; write the
        // writer in place, then the rest through a reference.
        // SAFETY: `st` points into the fresh block.
        let writer = unsafe { addr_of_mut!((*st).writer) };
        // SAFETY: as above; written once before anything reads it.
        unsafe { writer.write(None) };
        // SAFETY: now every field holds a valid value.
        let state = unsafe { &mut *st };
        state.carry.next_seq = 1;
        state.buf = buf;
        Some(m)
    }

    /// Frees a block from [`FlushMem::create`].
    ///
    /// # Safety
    /// The flush thread is gone (or never ran) and its writer is closed.
    pub unsafe fn destroy(m: *mut FlushMem) {
        if m.is_null() {
            return;
        }
        // SAFETY: per the caller, nothing uses the block.
        let buf = unsafe { (*m).state.buf };
        // SAFETY: allocated in create.
        unsafe { kernel::free_pool(buf) };
        // SAFETY: allocated in create with alloc_for; plain data.
        unsafe { crate::pool::free_for(m) };
    }
}

fn config(session: u64, max_file_bytes: u64, first_seq: u64) -> WriterConfig<'static> {
    let mut session_id = [0u8; 16];
    session_id[..8].copy_from_slice(&session.to_le_bytes());
    WriterConfig {
        host: "",
        boot_id: [0; 16],
        session_id,
        key: None,
        max_file_bytes: max_file_bytes.max(MIN_FILE_BYTES),
        first_seq,
    }
}

type Consumer<'q> = fltpolicy_core::queue::Consumer<
    'q,
    &'static [fltpolicy_core::sync::AtomicU64],
    { crate::audit::RINGS },
>;

impl FlushState {
    /// Ends the current file without draining the queue (bounded) and
    /// releases its file, directory and instance; what it could not write
    /// travels in `carry` to the next file.
    #[inline(never)]
    fn end(&mut self, g: &Globals) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let (stats, _error, carry) = w.end_in_place(kernel::system_time_ns());
        self.logged_before += stats.events_written;
        self.carry = carry;
        w.sink().close();
        // Dropped in place: the sink's handles are closed, nothing else owns
        // a resource.
        self.writer = None;
        g.flush.log_instance.store(0, Ordering::Release);
        g.counters
            .logged
            .store(self.logged_before, Ordering::Relaxed);
    }

    /// Opens the log at `paths` unless one is open. PASSIVE_LEVEL.
    #[inline(never)]
    fn open(&mut self, g: &Globals, paths: *mut Paths) {
        if self.writer.is_some() {
            return;
        }
        let filter = g.filter();
        if filter == 0 {
            return;
        }
        let avoid = g.flush.detach.load(Ordering::Acquire);
        // SAFETY: the filter stays registered until this thread is joined;
        // the paths are this thread's; PASSIVE_LEVEL.
        match unsafe { FltSink::open(filter, paths, avoid) } {
            Ok(sink) if g.flush.abandoned.load(Ordering::Acquire) => sink.close(),
            Ok(sink) => {
                self.sessions += 1;
                let instance = sink.instance();
                // SAFETY: the buffer is WRITE_BUFFER bytes of non-paged pool
                // owned by this block; the only borrower is the writer,
                // which is dropped before the next one is made and before
                // the block is freed.
                let b: &'static mut [u8] =
                    unsafe { core::slice::from_raw_parts_mut(self.buf, WRITE_BUFFER) };
                let session = kernel::system_time_ns() ^ self.sessions;
                let limit = g.flush.max_file_bytes.load(Ordering::Relaxed);
                let cfg = config(session, limit, self.carry.next_seq);
                // Cannot fail: WRITE_BUFFER and MAX_FILE_BYTES are above the
                // writer's minimums (checked at compile time).
                start_writer(&mut self.writer, sink, b, &cfg);
                if let Some(w) = self.writer.as_mut() {
                    w.continue_from(&self.carry);
                    g.flush.log_instance.store(instance, Ordering::Release);
                    g.flush.set_log_state(LogState::Writing, STATUS_SUCCESS);
                }
            }
            Err(e) => g.flush.set_log_state(e.state, e.status),
        }
    }
}

/// Starts a writer into `slot` (its own frame: the writer is ~900 bytes).
#[inline(never)]
fn start_writer(
    slot: &mut Option<LogWriter<'static, FltSink>>,
    sink: FltSink,
    buf: &'static mut [u8],
    cfg: &WriterConfig<'_>,
) {
    // Cannot fail: WRITE_BUFFER and MAX_FILE_BYTES are above the writer's
    // minimums (checked at compile time); on failure the slot stays empty
    // and the sink is closed.
    if let Err((_, sink)) = LogWriter::new_in(slot, sink, buf, cfg, kernel::system_time_ns()) {
        sink.close();
    }
}

crate::kernel_callback! {
/// Context handed to the thread: the globals.
///
/// # Safety
/// `ctx` is the driver's [`Globals`], which outlives the thread (unload
/// joins the thread before freeing it).
pub unsafe fn flush_thread(ctx: *mut c_void) {
    // SAFETY: per the contract above.
    let g: &Globals = unsafe { &*ctx.cast::<Globals>() };
    run(g);
    kernel::exit_system_thread();
}
}

/// Called by `kernel::start_system_thread` when the thread was created but
/// cannot be tracked (ObReferenceObjectByHandle failed): DriverEntry will
/// fail and free `Globals`, so the thread must return at once; the kernel
/// layer waits for it (on the thread handle) before returning. PASSIVE.
///
/// # Safety
/// `ctx` is the context the thread was started with (the [`Globals`]).
pub unsafe fn abandon_flush_thread(ctx: *mut c_void) {
    // SAFETY: per the caller; Globals is still allocated.
    let g: &Globals = unsafe { &*ctx.cast::<Globals>() };
    g.flush.abandoned.store(true, Ordering::Release);
    // SAFETY: the event lives in Globals; PASSIVE_LEVEL.
    unsafe { kernel::event_set(g.flush.wake.get()) };
}

fn run(g: &Globals) {
    let queue = &g.queue;
    let Some(mut consumer): Option<Consumer<'_>> = queue.consumer() else {
        return;
    };
    let mem = g.flush_mem;
    // SAFETY: `flush_mem` was allocated at DriverEntry and is freed only
    // after this thread is joined; only this thread uses it. The two
    // fields are borrowed disjointly: the sink reaches the paths through
    // this raw pointer, the state is borrowed once here.
    let paths: *mut Paths = unsafe { addr_of_mut!((*mem).paths) };
    // SAFETY: as above.
    let stp: *mut FlushState = unsafe { addr_of_mut!((*mem).state) };
    // SAFETY: as above; initialised by FlushMem::create.
    let st: &mut FlushState = unsafe { &mut *stp };
    loop {
        if g.flush.abandoned.load(Ordering::Acquire) {
            // DriverEntry is failing: close what is open, touch nothing more.
            st.end(g);
            return;
        }
        let stop = g.flush.stop.load(Ordering::Acquire);
        if !stop {
            // SAFETY: the event lives in Globals; PASSIVE_LEVEL, a bounded
            // wait on the flush thread.
            unsafe { kernel::event_wait(g.flush.wake.get(), FLUSH_INTERVAL_MS) };
        }
        // The log's volume is being torn down: let go of it now.
        let dying = g.flush.detach.load(Ordering::Acquire);
        if dying != 0
            && st
                .writer
                .as_ref()
                .is_some_and(|w| w.sink().instance() == dying)
        {
            st.end(g);
            g.flush
                .set_log_state(LogState::NoVolume, STATUS_FLT_DELETING_OBJECT);
        }
        let pending = g
            .flush
            .pending_path
            .swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !pending.is_null() {
            // One bounded drain into the old file, then its End record;
            // whatever producers add meanwhile goes to the new file.
            if let Some(w) = st.writer.as_mut() {
                w.drain(&mut consumer, kernel::system_time_ns());
            }
            st.end(g);
            // SAFETY: the control path handed ownership over with the swap.
            let lp = unsafe { &*pending };
            // SAFETY: no sink holds the paths any more (ended above).
            let p = unsafe { &mut *paths };
            p.dos_len = lp.dos().len();
            p.dos[..p.dos_len].copy_from_slice(lp.dos());
            // SAFETY: ours since the swap; not used afterwards.
            unsafe { LogPath::destroy(pending) };
            g.flush.set_log_state(LogState::Starting, STATUS_SUCCESS);
        }
        st.open(g, paths);
        let paused = g.flush.paused.load(Ordering::Acquire) && !stop;
        if let (Some(w), false) = (st.writer.as_mut(), paused) {
            w.drain(&mut consumer, kernel::system_time_ns());
            g.counters.logged.store(
                st.logged_before + w.stats().events_written,
                Ordering::Relaxed,
            );
        }
        if stop && (queue.is_empty() || st.writer.is_none()) {
            break;
        }
    }
    // Producers have stopped (unload waited for them): drain to the end.
    if let Some(w) = st.writer.as_mut() {
        while w.drain(&mut consumer, kernel::system_time_ns()) > 0 {}
    }
    st.end(g);
}

/// InstanceTeardownStart on `instance`: if the log is written through it,
/// have the flush thread end the log and release the file, the directory
/// and the instance reference, and wait (PASSIVE_LEVEL) until it has. Until
/// InstanceTeardownComplete ([`instance_gone`]) the thread does not reopen
/// on that instance.
pub fn release_instance(g: &Globals, instance: PFLT_INSTANCE) {
    g.flush.detach.store(instance, Ordering::Release);
    while g.flush.log_instance.load(Ordering::Acquire) == instance {
        // Re-asserted each round: another volume's teardown may have
        // replaced it in the meantime.
        g.flush.detach.store(instance, Ordering::Release);
        // SAFETY: the event lives in Globals; PASSIVE_LEVEL.
        unsafe { kernel::event_set(g.flush.wake.get()) };
        kernel::yield_passive();
    }
}

/// InstanceTeardownComplete on `instance`: the flush thread may open logs
/// again (on the volume's next instance).
pub fn instance_gone(g: &Globals, instance: PFLT_INSTANCE) {
    let _ = g
        .flush
        .detach
        .compare_exchange(instance, 0, Ordering::AcqRel, Ordering::Acquire);
}

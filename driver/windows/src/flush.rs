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
//! Naming: the first file of a session is the configured path; rotation
//! (at [`MAX_FILE_BYTES`]) continues in `<path>.1`, `<path>.2`, ... An
//! existing non-empty log at start-up is kept: it is renamed to
//! `<path>.<time>.old` first.
//!
//! While no log can be opened (volume not mounted yet, directory missing)
//! the queue is left alone: it fills, producers count drops, and the drop
//! records reach the log once it opens.

use core::ffi::c_void;
use core::sync::atomic::Ordering;

use fltpolicy_core::record::writer::{
    LogWriter, Sink, WriterConfig, MIN_FILE_BYTES, MIN_WRITER_BUFFER,
};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_INSTANCE;
use windows_sys::Win32::Foundation::NTSTATUS;

use crate::audit::AuditQueue;
use crate::globals::Globals;
use crate::kernel::{self, status::*, OwnFile};

/// Wake-up period when producers are quiet: at most this much log delay.
pub const FLUSH_INTERVAL_MS: u32 = 1000;
/// Rotation threshold: 64 MiB keeps files quick to verify and view.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Batch buffer of the writer, in non-paged pool: 256 KiB per write.
pub const WRITE_BUFFER: usize = 256 << 10;
/// Longest NT path of a log file in UTF-16 units (`\??\` + the DOS path +
/// a rotation suffix).
pub const MAX_LOG_PATH_UNITS: usize = fltpolicy_core::control::MAX_LOG_PATH_LEN + 48;
/// Log used until IOCTL_SET_LOG_PATH names another: a directory that
/// exists on every Windows installation.
pub const DEFAULT_LOG_PATH: &str = r"C:\ProgramData\fltpolicy-audit.log";

const _: () = assert!(WRITE_BUFFER >= MIN_WRITER_BUFFER && MAX_FILE_BYTES >= MIN_FILE_BYTES);

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
        &self.units[..self.len]
    }
}

/// Builds `\??\<dos><suffix>` into `out`; returns the length.
fn nt_path(dos: &[u16], suffix: &[u8], out: &mut [u16; MAX_LOG_PATH_UNITS]) -> Option<usize> {
    let prefix = [b'\\', b'?', b'?', b'\\'];
    let total = prefix.len() + dos.len() + suffix.len();
    if total > out.len() {
        return None;
    }
    for (o, c) in out.iter_mut().zip(prefix.iter()) {
        *o = u16::from(*c);
    }
    out[4..4 + dos.len()].copy_from_slice(dos);
    for (o, c) in out[4 + dos.len()..total].iter_mut().zip(suffix) {
        *o = u16::from(*c);
    }
    Some(total)
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

/// The sink: a chain of files `<path>`, `<path>.1`, ... written with
/// FltWriteFile through this filter's instance.
#[derive(Debug)]
pub struct FltSink {
    filter: windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_FILTER,
    instance: PFLT_INSTANCE,
    file: OwnFile,
    dos: [u16; MAX_LOG_PATH_UNITS],
    dos_len: usize,
}

impl FltSink {
    /// Opens a fresh log at `dos` (`C:\...`). PASSIVE_LEVEL, flush thread.
    ///
    /// # Safety
    /// `filter` is this driver's registered filter.
    pub unsafe fn open(
        filter: windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_FILTER,
        dos: &[u16],
    ) -> Result<FltSink, NTSTATUS> {
        if dos.len() < 3 || dos.len() > MAX_LOG_PATH_UNITS - 48 {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        // The volume: `\??\C:` → `\Device\HarddiskVolumeN`.
        let mut drive = [0u16; 6];
        let mut link = [0u16; MAX_LOG_PATH_UNITS];
        let n = nt_path(&dos[..2], b"", &mut link).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        drive[..n].copy_from_slice(&link[..n]);
        let mut device = [0u16; 128];
        // SAFETY: PASSIVE_LEVEL (flush thread).
        let dn = unsafe { kernel::resolve_symbolic_link(&drive[..n], &mut device) }?;
        // SAFETY: filter is registered; PASSIVE_LEVEL.
        let instance = unsafe { kernel::volume_instance_by_name(filter, &device[..dn]) }?;
        let mut sink = FltSink {
            filter,
            instance,
            file: OwnFile {
                handle: core::ptr::null_mut(),
                file_object: core::ptr::null_mut(),
            },
            dos: [0; MAX_LOG_PATH_UNITS],
            dos_len: dos.len(),
        };
        sink.dos[..dos.len()].copy_from_slice(dos);
        // SAFETY: PASSIVE_LEVEL; instance referenced above.
        match unsafe { sink.create_fresh(b"") } {
            Ok(f) => {
                sink.file = f;
                Ok(sink)
            }
            Err(st) => {
                // SAFETY: we own the instance reference.
                unsafe { kernel::object_dereference(instance as *mut c_void) };
                Err(st)
            }
        }
    }

    /// Creates `<path><suffix>` as a new empty file; an existing one is
    /// moved aside to `<path><suffix>.<time>.old` first.
    ///
    /// # Safety
    /// PASSIVE_LEVEL, flush thread.
    unsafe fn create_fresh(&self, suffix: &[u8]) -> Result<OwnFile, NTSTATUS> {
        let mut path = [0u16; MAX_LOG_PATH_UNITS];
        let n = nt_path(&self.dos[..self.dos_len], suffix, &mut path)
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        // SAFETY: per the caller.
        match unsafe {
            kernel::create_file(
                self.filter,
                self.instance,
                &path[..n],
                kernel::CreateMode::New,
            )
        } {
            Ok(f) => return Ok(f),
            Err(st) if st != kernel::STATUS_OBJECT_NAME_COLLISION => return Err(st),
            Err(_) => {}
        }
        // SAFETY: per the caller.
        let old = unsafe {
            kernel::create_file(
                self.filter,
                self.instance,
                &path[..n],
                kernel::CreateMode::Existing,
            )
        }?;
        let mut aside = [0u16; MAX_LOG_PATH_UNITS];
        let mut digits = [0u8; 20];
        let mut sfx = [0u8; 40];
        let d = decimal(kernel::system_time_ns(), &mut digits);
        let mut k = 0;
        for &c in suffix.iter().chain(b".").chain(d).chain(b".old") {
            if k < sfx.len() {
                sfx[k] = c;
                k += 1;
            }
        }
        let an = nt_path(&self.dos[..self.dos_len], &sfx[..k], &mut aside)
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        // SAFETY: `old` is our own file object; PASSIVE_LEVEL.
        let st = unsafe { kernel::rename_file(self.instance, old.file_object, &aside[..an]) };
        // SAFETY: we own `old`.
        unsafe { kernel::close_file(old) };
        if !nt_success(st) {
            return Err(st);
        }
        // SAFETY: per the caller.
        unsafe {
            kernel::create_file(
                self.filter,
                self.instance,
                &path[..n],
                kernel::CreateMode::New,
            )
        }
    }

    /// Closes the file and releases the instance. PASSIVE_LEVEL.
    pub fn close(self) {
        // SAFETY: we own the file and the instance reference; PASSIVE_LEVEL.
        unsafe { kernel::close_file(self.file) };
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
        // SAFETY: flush thread, PASSIVE_LEVEL.
        let next = unsafe { self.create_fresh(&sfx[..1 + d.len()]) }?;
        // SAFETY: we own the previous file.
        unsafe { kernel::close_file(self.file) };
        self.file = next;
        Ok(())
    }
}

/// Per-thread state: the batch buffer and the current writer.
struct Flusher<'b> {
    writer: Option<LogWriter<'b, FltSink>>,
    logged_before: u64,
}

fn config(session: u64, max_file_bytes: u64) -> WriterConfig<'static> {
    let mut session_id = [0u8; 16];
    session_id[..8].copy_from_slice(&session.to_le_bytes());
    WriterConfig {
        host: "",
        boot_id: [0; 16],
        session_id,
        key: None,
        max_file_bytes: max_file_bytes.max(MIN_FILE_BYTES),
        first_seq: 1,
    }
}

impl<'b> Flusher<'b> {
    /// Ends the current log (drained) and publishes its counters.
    fn close(&mut self, g: &Globals, consumer: &mut Consumer<'_>) {
        if let Some(w) = self.writer.take() {
            let now = kernel::system_time_ns();
            let (sink, stats) = match w.finish(consumer, now) {
                Ok((s, st)) => (s, st),
                Err((s, st, _)) => (s, st),
            };
            self.logged_before += stats.events_written;
            g.counters
                .logged
                .store(self.logged_before, Ordering::Relaxed);
            sink.close();
        }
    }
}

type Consumer<'q> = fltpolicy_core::queue::Consumer<
    'q,
    &'static [fltpolicy_core::sync::AtomicU64],
    { crate::audit::RINGS },
>;

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

fn run(g: &Globals) {
    let queue: &AuditQueue = &g.queue;
    let Some(mut consumer) = queue.consumer() else {
        return;
    };
    let raw = kernel::alloc_nonpaged(WRITE_BUFFER);
    if raw.is_null() {
        // Without a buffer nothing can be written; wait for stop so that
        // unload's join returns, while producers count drops.
        while !g.flush.stop.load(Ordering::Acquire) {
            // SAFETY: the event lives in Globals; PASSIVE_LEVEL.
            unsafe { kernel::event_wait(g.flush.wake.get(), FLUSH_INTERVAL_MS) };
        }
        return;
    }
    // SAFETY: fresh allocation of WRITE_BUFFER bytes, owned by this thread
    // until freed below.
    let buf: &mut [u8] = unsafe { core::slice::from_raw_parts_mut(raw, WRITE_BUFFER) };
    let mut path = [0u16; MAX_LOG_PATH_UNITS];
    let mut path_len = crate::utf::utf8_to_utf16(DEFAULT_LOG_PATH, &mut path).unwrap_or(0);
    let mut fl = Flusher {
        writer: None,
        logged_before: 0,
    };
    let mut buf_slot = Some(buf);
    let mut sessions = 0u64;
    loop {
        let stop = g.flush.stop.load(Ordering::Acquire);
        if !stop {
            // SAFETY: the event lives in Globals; PASSIVE_LEVEL, a bounded
            // wait on the flush thread.
            unsafe { kernel::event_wait(g.flush.wake.get(), FLUSH_INTERVAL_MS) };
        }
        let pending = g
            .flush
            .pending_path
            .swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !pending.is_null() {
            // SAFETY: the control path handed ownership over with the swap.
            let lp = unsafe { &*pending };
            path_len = lp.len.min(MAX_LOG_PATH_UNITS);
            path[..path_len].copy_from_slice(lp.dos());
            // SAFETY: we own `pending` now.
            unsafe { LogPath::destroy(pending) };
            // Ends the old log; the closed writer released the buffer.
            fl.close(g, &mut consumer);
        }
        if fl.writer.is_none() {
            let filter = g.filter();
            if filter != 0 {
                // SAFETY: the filter stays registered until this thread is
                // joined; PASSIVE_LEVEL.
                if let Ok(sink) = unsafe { FltSink::open(filter, &path[..path_len]) } {
                    sessions += 1;
                    let b = match buf_slot.take() {
                        Some(b) => b,
                        // SAFETY: the previous writer (the only borrower)
                        // is gone; the buffer is ours again.
                        None => unsafe { core::slice::from_raw_parts_mut(raw, WRITE_BUFFER) },
                    };
                    let session = kernel::system_time_ns() ^ sessions;
                    let limit = g.flush.max_file_bytes.load(Ordering::Relaxed);
                    // Cannot fail: WRITE_BUFFER and MAX_FILE_BYTES are above
                    // the writer's minimums (checked at compile time).
                    fl.writer =
                        LogWriter::new(sink, b, &config(session, limit), kernel::system_time_ns())
                            .ok();
                }
            }
        }
        let paused = g.flush.paused.load(Ordering::Acquire) && !stop;
        if let (Some(w), false) = (fl.writer.as_mut(), paused) {
            w.drain(&mut consumer, kernel::system_time_ns());
            g.counters.logged.store(
                fl.logged_before + w.stats().events_written,
                Ordering::Relaxed,
            );
        }
        if stop && (queue.is_empty() || fl.writer.is_none()) {
            break;
        }
    }
    fl.close(g, &mut consumer);
    // SAFETY: every writer (the buffer's only borrower) is gone.
    unsafe { kernel::free_pool(raw) };
}

//! Per-load driver state, in non-paged pool.
//!
//! Everything a callback can touch lives in one [`Globals`] block allocated
//! by DriverEntry and freed as the very last step of unload (after the
//! filter is unregistered, the notify routine removed and the flush thread
//! joined, so no code can reach it any more). A static pointer publishes it;
//! callbacks and dispatch routines read it with [`get`].
//!
//! Must never: be freed while a callback, a notify routine, the flush
//! thread or a control request can run.

use core::cell::UnsafeCell;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, Ordering,
};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, KEVENT};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_FILTER;

use crate::audit::AuditQueue;
use crate::flush::{FlushMem, LogPath};
use crate::kernel::ThreadObject;
use crate::policy::PolicySlot;
use crate::process::ProcessTable;
use fltpolicy_core::sync::AtomicU64 as QueueWord;

/// Counters reported by IOCTL_QUERY_STATUS. Relaxed atomics: each is an
/// independent monotonic count.
#[derive(Debug, Default)]
pub struct Counters {
    pub events_seen: AtomicU64,
    pub matched: AtomicU64,
    /// Records the flush thread wrote to the log.
    pub logged: AtomicU64,
    /// Records producers queued.
    pub logged_queued: AtomicU64,
    pub denied: AtomicU64,
    /// Records the flush thread could not write (I/O errors).
    pub write_failed: AtomicU64,
    /// Denials made because no name could be had while a deny rule could
    /// have applied (fail closed; recorded with rule none and tag
    /// [`crate::ops::UNNAMED_TAG`]).
    pub unnamed_denied: AtomicU64,
    /// Verdicts recorded in pre-op without the final status because no
    /// completion block was free ([`crate::completion`]).
    pub carried_fallback: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A minimal rundown reference: entries while not closing, and a wait for
/// the last one at teardown. Used by producers (any IRQL <= DISPATCH for
/// `enter`/`exit`) and the control path; `close_and_wait` is PASSIVE_LEVEL.
#[derive(Debug, Default)]
pub struct Rundown {
    /// Bit 31: closing. Bits 0..31: active entries.
    state: AtomicU32,
}

const CLOSING: u32 = 1 << 31;

impl Rundown {
    /// An open rundown with no entries (usable in a `static`).
    pub const fn new() -> Rundown {
        Rundown {
            state: AtomicU32::new(0),
        }
    }
    /// Enters unless teardown started.
    pub fn enter(&self) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSING != 0 {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }
    pub fn exit(&self) {
        self.state.fetch_sub(1, Ordering::AcqRel);
    }
    /// Refuses new entries and waits (PASSIVE_LEVEL) for the active ones.
    /// Idempotent.
    pub fn close_and_wait(&self) {
        self.state.fetch_or(CLOSING, Ordering::AcqRel);
        while self.state.load(Ordering::Acquire) & !CLOSING != 0 {
            crate::kernel::yield_passive();
        }
    }
    /// Accepts entries again after a `close_and_wait` that did not lead to
    /// teardown (a refused unload).
    pub fn reopen(&self) {
        self.state.fetch_and(!CLOSING, Ordering::AcqRel);
    }
    /// Whether `close_and_wait` was called (and not undone).
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSING != 0
    }
}

/// State shared between the producers, the control path and the flush
/// thread.
#[derive(Debug)]
pub struct FlushShared {
    /// Signalled by producers past the high-water mark and by unload.
    pub wake: UnsafeCell<KEVENT>,
    /// Unload asks the thread to drain, close and exit.
    pub stop: AtomicBool,
    /// A new log path handed over by IOCTL_SET_LOG_PATH; the thread takes
    /// it (swap with null) and re-opens the log.
    pub pending_path: AtomicPtr<LogPath>,
    /// Test hook for the host simulation only: while set, the thread does
    /// not drain (lets a test fill the queue deterministically).
    pub paused: AtomicBool,
    /// Rotation threshold of the next log session
    /// ([`crate::flush::MAX_FILE_BYTES`]; the simulation lowers it to test
    /// rotation).
    pub max_file_bytes: AtomicU64,
    /// The instance the open log is written through (0: no log open).
    /// Written by the flush thread, read by InstanceTeardownStart.
    pub log_instance: AtomicIsize,
    /// An instance being torn down (InstanceTeardownStart until
    /// InstanceTeardownComplete): the flush thread lets go of it.
    pub detach: AtomicIsize,
    /// DriverEntry could not keep track of the started thread: it must
    /// return at once without touching anything (see
    /// `kernel::start_system_thread`).
    pub abandoned: AtomicBool,
    /// [`fltpolicy_core::control::LogState`] for `status`.
    pub log_state: AtomicU32,
    /// NTSTATUS of the last failed log open (0 while writing).
    pub log_error: AtomicI32,
}

impl FlushShared {
    /// Publishes what the log writer is doing (flush thread).
    pub fn set_log_state(&self, state: fltpolicy_core::control::LogState, status: i32) {
        self.log_error.store(status, Ordering::Relaxed);
        self.log_state.store(state as u32, Ordering::Release);
    }
}

/// Which DriverEntry steps succeeded, so that the one cleanup path undoes
/// exactly those, in reverse order.
pub mod step {
    pub const FILTER_REGISTERED: u32 = 1 << 0;
    pub const CONTROL_DEVICE: u32 = 1 << 1;
    pub const PROCESS_NOTIFY: u32 = 1 << 2;
    pub const FLUSH_THREAD: u32 = 1 << 3;
    pub const FILTERING: u32 = 1 << 4;
}

/// The per-load state.
#[derive(Debug)]
pub struct Globals {
    /// The registered filter (0 until FltRegisterFilter succeeded); read by
    /// the flush thread to open the log.
    pub filter_handle: AtomicIsize,
    pub control_device: *mut DEVICE_OBJECT,
    pub flush_thread: ThreadObject,
    /// [`step`] bits; written only by DriverEntry and unload (PASSIVE,
    /// serialised by the I/O manager).
    pub steps: AtomicU32,
    /// Set first thing in unload: callbacks stop producing records and the
    /// control device refuses requests.
    pub stopping: AtomicBool,
    pub policy: PolicySlot,
    pub counters: Counters,
    pub queue: AuditQueue,
    /// The storage `queue` is built over (freed at unload).
    pub queue_storage: &'static [QueueWord],
    pub processes: &'static ProcessTable,
    pub flush: FlushShared,
    /// The flush thread's buffers and writer (non-paged, freed at unload
    /// after the thread is joined).
    pub flush_mem: *mut FlushMem,
    /// One policy load at a time; a second concurrent load gets
    /// STATUS_DEVICE_BUSY rather than waiting.
    pub loading: AtomicBool,
    /// Producers inside [`crate::audit::record`]; unload closes it and waits
    /// before the final drain so that no record is pushed after it.
    pub producers: Rundown,
}

impl Globals {
    pub fn filter(&self) -> PFLT_FILTER {
        self.filter_handle.load(Ordering::Acquire)
    }
}

// SAFETY: the raw pointers in Globals (filter, device, thread, KEVENT) name
// kernel objects that are valid for the life of the block and are used only
// through kernel calls that are themselves safe to call from any thread; all
// mutable state is atomic.
unsafe impl Sync for Globals {}
// SAFETY: as above; the block is not tied to the creating thread.
unsafe impl Send for Globals {}

static GLOBALS: AtomicPtr<Globals> = AtomicPtr::new(core::ptr::null_mut());

/// The state of the loaded driver, if any. Any IRQL.
pub fn get() -> Option<&'static Globals> {
    let p = GLOBALS.load(Ordering::Acquire);
    // SAFETY: a non-null pointer was published by `publish` and stays valid
    // until `retire`, which unload calls only after every path that calls
    // `get` (callbacks, notify routine, flush thread, control requests) has
    // been shut down and drained. The control device's dispatch routines
    // call `get` only inside `control::GATE`, which teardown closes and
    // drains first (the gate itself is an image static, so it outlives
    // this block).
    unsafe { p.as_ref() }
}

/// Publishes `g` (DriverEntry, before anything that may call [`get`]).
pub fn publish(g: *mut Globals) {
    GLOBALS.store(g, Ordering::Release);
}

/// Unpublishes and returns the block (unload, last step).
pub fn retire() -> *mut Globals {
    GLOBALS.swap(core::ptr::null_mut(), Ordering::AcqRel)
}

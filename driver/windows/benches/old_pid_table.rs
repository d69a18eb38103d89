//! The pid table as it was before issue 9 (main at 91b0fab,
//! `driver/windows/src/process.rs`, tests removed), kept verbatim so the
//! benchmark can measure old and new side by side: open addressing with
//! tombstones that never become empty again, 1,024 slots.
#![allow(dead_code, clippy::all)]

// pid → process image table, fed by the process-creation notify routine.
//
// The evaluator needs the image path of the process behind an operation at
// any IRQL, including DISPATCH_LEVEL paging I/O, where nothing can be
// looked up from the process object. The notify routine
// (`PsSetCreateProcessNotifyRoutineEx`, PASSIVE_LEVEL) converts the image
// name to UTF-8 once and stores it here, in non-paged pool; callbacks copy
// it out.
//
// The table is open addressing over a fixed array; each slot is a seqlock
// (odd sequence = being written). Writers (notify callbacks, possibly on
// several CPUs) claim a slot with a compare-exchange; readers never wait:
// a slot being written is skipped and a torn copy is detected by the
// sequence and retried a bounded number of times. All slot data are
// atomics, so a racing copy is never undefined behaviour, only discarded.
//
// Must never: allocate or wait on the read side.

use core::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// Processes tracked at once. A busy server runs a few hundred processes;
/// 1024 leaves room, and at ~560 bytes a slot the table costs 570 KiB of
/// non-paged pool. When full, new processes have an empty image (counted in
/// [`ProcessTable::overflow`]).
pub const MAX_PROCESSES: usize = 1024;
/// Longest image path kept, in UTF-8 bytes. Image paths live under a few
/// well-known directories; 512 bytes keeps every realistic one (longer ones
/// are cut at a character boundary).
pub const MAX_IMAGE: usize = 512;
const WORDS: usize = MAX_IMAGE / 8;
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = u64::MAX;
/// How often a reader retries a slot that changed under it before giving up
/// (reporting an unknown image rather than waiting).
const READ_RETRIES: usize = 4;

#[derive(Debug)]
struct Slot {
    seq: AtomicU32,
    pid: AtomicU64,
    ppid: AtomicU64,
    len: AtomicU32,
    words: [AtomicU64; WORDS],
}

/// The table. Lives in non-paged pool (see [`crate::globals`]).
#[derive(Debug)]
pub struct ProcessTable {
    slots: [Slot; MAX_PROCESSES],
    overflow: AtomicU64,
}

/// One process as copied out of the table.
#[derive(Debug)]
pub struct ProcessInfo {
    pub ppid: u64,
    len: usize,
    image: [u8; MAX_IMAGE],
}

impl ProcessInfo {
    pub const fn unknown() -> ProcessInfo {
        ProcessInfo {
            ppid: 0,
            len: 0,
            image: [0; MAX_IMAGE],
        }
    }
    /// The image path (`C:\Windows\System32\robocopy.exe`), or "" if unknown.
    pub fn image(&self) -> &str {
        core::str::from_utf8(&self.image[..self.len]).unwrap_or("")
    }
}

fn start(pid: u64) -> usize {
    // Fibonacci hashing: pids are multiples of 4, so spread the bits.
    (pid.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % MAX_PROCESSES
}

impl ProcessTable {
    /// An empty table on the host heap (tests, benches). The driver places
    /// the table in zeroed non-paged pool instead (`entry::create_globals`).
    pub fn new_boxed() -> std::boxed::Box<ProcessTable> {
        let layout = core::alloc::Layout::new::<ProcessTable>();
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<ProcessTable>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: allocated by the global allocator with ProcessTable's
        // layout; all-zero bytes are a valid empty table (every field is an
        // atomic integer, zero = empty).
        unsafe { std::boxed::Box::from_raw(p) }
    }

    /// Inserts that found no free slot (processes without an image).
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Relaxed)
    }

    /// Records `pid` with its parent and image. PASSIVE_LEVEL (notify).
    pub fn insert(&self, pid: u64, ppid: u64, image: &str) {
        if pid == EMPTY || pid == TOMBSTONE {
            return;
        }
        // A pid is unique while its process lives; a stale entry (a missed
        // exit) must not shadow the new one.
        self.remove(pid);
        let h = start(pid);
        for k in 0..MAX_PROCESSES {
            let slot = &self.slots[(h + k) % MAX_PROCESSES];
            let p = slot.pid.load(Acquire);
            if p != EMPTY && p != TOMBSTONE {
                continue;
            }
            let s = slot.seq.load(Acquire);
            if s & 1 == 1
                || slot
                    .seq
                    .compare_exchange(s, s + 1, Acquire, Relaxed)
                    .is_err()
            {
                continue;
            }
            let now = slot.pid.load(Relaxed);
            if now != p {
                slot.seq.store(s + 2, Release);
                continue;
            }
            slot.pid.store(pid, Relaxed);
            slot.ppid.store(ppid, Relaxed);
            let (kept, _) = fltpolicy_core_clamp(image, MAX_IMAGE);
            let bytes = kept.as_bytes();
            for (i, w) in slot.words.iter().enumerate() {
                let mut chunk = [0u8; 8];
                let lo = (i * 8).min(bytes.len());
                let hi = (i * 8 + 8).min(bytes.len());
                chunk[..hi - lo].copy_from_slice(&bytes[lo..hi]);
                w.store(u64::from_le_bytes(chunk), Relaxed);
            }
            slot.len.store(bytes.len() as u32, Relaxed);
            slot.seq.store(s + 2, Release);
            return;
        }
        self.overflow.fetch_add(1, Relaxed);
    }

    /// Forgets `pid` (process exit). PASSIVE_LEVEL.
    pub fn remove(&self, pid: u64) {
        let h = start(pid);
        for k in 0..MAX_PROCESSES {
            let slot = &self.slots[(h + k) % MAX_PROCESSES];
            let p = slot.pid.load(Acquire);
            if p == EMPTY {
                return;
            }
            if p != pid {
                continue;
            }
            loop {
                let s = slot.seq.load(Acquire);
                if s & 1 == 0
                    && slot
                        .seq
                        .compare_exchange(s, s + 1, Acquire, Relaxed)
                        .is_ok()
                {
                    if slot.pid.load(Relaxed) == pid {
                        slot.pid.store(TOMBSTONE, Relaxed);
                        slot.len.store(0, Relaxed);
                    }
                    slot.seq.store(s + 2, Release);
                    return;
                }
                core::hint::spin_loop();
            }
        }
    }

    /// Copies the entry of `pid` into `out`. Any IRQL ≤ DISPATCH_LEVEL;
    /// never waits. Returns false (and leaves `out` unknown) if the pid is
    /// not in the table or kept changing while being read.
    pub fn lookup(&self, pid: u64, out: &mut ProcessInfo) -> bool {
        if pid == EMPTY || pid == TOMBSTONE {
            return false;
        }
        let h = start(pid);
        for k in 0..MAX_PROCESSES {
            let slot = &self.slots[(h + k) % MAX_PROCESSES];
            for _ in 0..READ_RETRIES {
                let s1 = slot.seq.load(Acquire);
                let p = slot.pid.load(Relaxed);
                if p == EMPTY && s1 & 1 == 0 {
                    return false;
                }
                if p != pid {
                    break;
                }
                let len = (slot.len.load(Relaxed) as usize).min(MAX_IMAGE);
                for (i, w) in slot.words.iter().enumerate() {
                    out.image[i * 8..i * 8 + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
                }
                let ppid = slot.ppid.load(Relaxed);
                core::sync::atomic::fence(Acquire);
                if s1 & 1 == 0 && slot.seq.load(Relaxed) == s1 {
                    out.len = len;
                    out.ppid = ppid;
                    if core::str::from_utf8(&out.image[..len]).is_err() {
                        out.len = 0;
                    }
                    return true;
                }
            }
        }
        *out = ProcessInfo::unknown();
        false
    }
}

/// Cuts at a character boundary (same rule as the record format).
fn fltpolicy_core_clamp(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

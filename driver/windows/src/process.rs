//! pid → process image table, fed by the process-creation notify routine
//! and, at load, by the processes already running ([`fill_from_running`]).
//!
//! The evaluator needs the image path of the process behind an operation at
//! any IRQL, including DISPATCH_LEVEL paging I/O, where nothing can be
//! looked up from the process object. The notify routine
//! (`PsSetCreateProcessNotifyRoutineEx`, PASSIVE_LEVEL) converts the image
//! name to UTF-8 once and stores it here, in non-paged pool; callbacks copy
//! it out.
//!
//! # Shape
//!
//! An *index* of [`INDEX_SLOTS`] 64-bit words (`pid << 32 | image slot + 1`,
//! zero = empty) with linear probing, and [`MAX_PROCESSES`] *image slots*
//! (parent pid, length, 512 bytes of UTF-8) the index points into. The
//! index is at most half full, and no entry sits more than [`MAX_PROBE`]
//! slots past its home, so a lookup — hit or miss — reads at most
//! [`MAX_PROBE`] index words (8 per cache line) and one image slot.
//!
//! Deletion is *backward shift* (Knuth 6.4, Algorithm R): the entries after
//! the hole that may move into it do, and the run ends with a truly empty
//! slot. No tombstones, so a table that has seen a million process exits
//! probes exactly like a fresh one. (The table before issue 9 left a
//! tombstone per exit; after a few thousand process starts every miss —
//! pid 4's paging writes, every process started before load — scanned all
//! 1,024 slots at DISPATCH_LEVEL.)
//!
//! # Concurrency
//!
//! * Writers (the notify routine on any CPU, DriverEntry's fill) are
//!   serialised by a queued spin lock ([`kernel::with_spin_lock`]), which
//!   also raises them to DISPATCH_LEVEL: a writer cannot be preempted in
//!   the middle of a shift, so readers on other CPUs never wait for a
//!   descheduled thread. The critical section copies at most one image
//!   (512 bytes) and shifts at most one run of 8-byte index words; the
//!   UTF-16 conversion happens before the lock.
//! * Readers never take the lock. The table has one sequence counter
//!   (a seqlock): a writer makes it odd, changes the table, makes it even.
//!   A reader notes an even value, probes and copies, and accepts the
//!   result — a hit *or a miss* — only if the counter did not move. A
//!   backward shift can move the entry a reader is looking for behind it
//!   (so it would see the hole and report a miss); the counter catches
//!   that, and the reader probes again. Every field is an atomic, so a
//!   racing copy is never undefined behaviour, only discarded.
//! * A reader retries a bounded number of times ([`READ_ATTEMPTS`]) and
//!   then reports the process as unknown, counted in
//!   [`ProcessTable::read_conflicts`]. It never reports a definite miss
//!   for a pid that was present throughout its call.
//!
//! Must never: allocate, take a lock, or wait unboundedly on the read side.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

#[cfg(not(loom))]
use core::sync::atomic::{fence, AtomicU32, AtomicU64};
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU32, AtomicU64};

use crate::kernel::{self, SpinLock};

/// Processes tracked at once. A workstation runs 150–300 processes, a busy
/// server (a terminal server with a hundred sessions, a build farm node)
/// a few thousand; Windows has no fixed limit. 8,192 covers the busy
/// server with room. Each image slot costs 528 bytes, the index 16 and
/// the free list 4 bytes per process, so the table is 4.3 MiB (4,489,264
/// bytes, [`TABLE_BYTES`]) of non-paged pool. When full, new processes have an empty image
/// (counted in [`ProcessTable::overflow`]). (The loom model, `--cfg loom`,
/// runs the same code on a 4-process table.)
#[cfg(not(loom))]
pub const MAX_PROCESSES: usize = 8192;
#[cfg(loom)]
pub const MAX_PROCESSES: usize = 4;
/// Index words: twice [`MAX_PROCESSES`], so the index is at most half full
/// (expected probes at load ½: 1.5 for a hit, 2.5 for a miss). A power of
/// two so the home slot is a shift.
pub const INDEX_SLOTS: usize = 2 * MAX_PROCESSES;
const INDEX_BITS: u32 = INDEX_SLOTS.trailing_zeros();
const MASK: usize = INDEX_SLOTS - 1;
/// Longest distance from its home slot an entry may have; an insert that
/// finds no empty slot within it counts as overflow. At load ½ the chance
/// that a given insert needs more than 64 slots is below 10⁻¹⁰, so this
/// bounds the worst-case lookup (64 words, 8 cache lines) without ever
/// refusing a process in practice.
#[cfg(not(loom))]
pub const MAX_PROBE: usize = 64;
#[cfg(loom)]
pub const MAX_PROBE: usize = 4;
/// Longest image path kept, in UTF-8 bytes. Image paths live under a few
/// well-known directories; 512 bytes keeps every realistic one (longer ones
/// are cut at a character boundary).
#[cfg(not(loom))]
pub const MAX_IMAGE: usize = 512;
#[cfg(loom)]
pub const MAX_IMAGE: usize = 8;
const WORDS: usize = MAX_IMAGE / 8;
/// How often a reader probes again after the table changed under it before
/// it gives up and reports the process as unknown.
#[cfg(not(loom))]
pub const READ_ATTEMPTS: usize = 16;
#[cfg(loom)]
pub const READ_ATTEMPTS: usize = 3;
/// How long a reader that finds a writer inside the table spins (pause
/// instructions) before re-reading the counter. A writer holds the table
/// for well under a microsecond at DISPATCH_LEVEL.
#[cfg(not(loom))]
const SPINS_WHILE_WRITING: usize = 256;
#[cfg(loom)]
const SPINS_WHILE_WRITING: usize = 0;
/// Size of the table in bytes (allocated once at load).
pub const TABLE_BYTES: usize = core::mem::size_of::<ProcessTable>();

#[derive(Debug)]
struct Image {
    ppid: AtomicU64,
    len: AtomicU32,
    words: [AtomicU64; WORDS],
}

/// The table. Lives in non-paged pool (see [`crate::globals`]); all-zero
/// bytes are a valid empty table.
#[derive(Debug)]
pub struct ProcessTable {
    /// The seqlock: odd while a writer changes the table.
    seq: AtomicU64,
    /// Serialises writers (a KSPIN_LOCK).
    lock: SpinLock,
    /// Live processes (writers only).
    live: AtomicU32,
    /// Image slots never used yet: `fresh..MAX_PROCESSES` (writers only).
    fresh: AtomicU32,
    /// Number of freed image slots stacked in `free` (writers only).
    free_top: AtomicU32,
    overflow: AtomicU64,
    read_conflicts: AtomicU64,
    index: [AtomicU64; INDEX_SLOTS],
    free: [AtomicU32; MAX_PROCESSES],
    images: [Image; MAX_PROCESSES],
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
    /// Makes this the unknown process without rewriting the image buffer
    /// (only `image[..len]` is ever read).
    fn clear(&mut self) {
        self.ppid = 0;
        self.len = 0;
    }
    /// The image path (`C:\Windows\System32\robocopy.exe`), or "" if unknown.
    pub fn image(&self) -> &str {
        core::str::from_utf8(&self.image[..self.len]).unwrap_or("")
    }
}

/// What a lookup found ([`ProcessTable::lookup_detailed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The pid is in the table; the copy is consistent.
    Found,
    /// The pid was not in the table at one instant during the call.
    Absent,
    /// The table kept changing for [`READ_ATTEMPTS`] probes: unknown.
    Contended,
}

/// The pids the table can hold: non-zero (0 is the idle process and the
/// empty index word) and 32-bit (Windows process ids are; the filter API
/// hands them out as ULONG).
fn key_pid(pid: u64) -> Option<u32> {
    u32::try_from(pid).ok().filter(|&p| p != 0)
}

fn home(pid: u32) -> usize {
    // Fibonacci hashing: pids are multiples of 4, so spread the bits.
    (u64::from(pid).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - INDEX_BITS)) as usize
}

fn entry(pid: u32, image: u32) -> u64 {
    u64::from(pid) << 32 | u64::from(image + 1)
}

fn entry_pid(e: u64) -> u32 {
    (e >> 32) as u32
}

/// The image slot of a non-empty entry; `MAX_PROCESSES` (out of range, so
/// never read) if a racing reader saw a torn word.
fn entry_image(e: u64) -> usize {
    ((e as u32) as usize).wrapping_sub(1).min(MAX_PROCESSES)
}

impl ProcessTable {
    /// An empty table on the host heap (tests, benches). The driver places
    /// the table in zeroed non-paged pool instead (`entry::create_globals`).
    #[cfg(not(any(feature = "kernel", loom)))]
    pub fn new_boxed() -> std::boxed::Box<ProcessTable> {
        let layout = core::alloc::Layout::new::<ProcessTable>();
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<ProcessTable>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: allocated by the global allocator with ProcessTable's
        // layout; all-zero bytes are a valid empty table (every field is an
        // atomic integer or a released KSPIN_LOCK).
        unsafe { std::boxed::Box::from_raw(p) }
    }

    /// An empty table for the loom model (loom's atomics are not valid
    /// when zeroed).
    #[cfg(loom)]
    pub fn new_loom() -> ProcessTable {
        ProcessTable {
            seq: AtomicU64::new(0),
            lock: SpinLock::default(),
            live: AtomicU32::new(0),
            fresh: AtomicU32::new(0),
            free_top: AtomicU32::new(0),
            overflow: AtomicU64::new(0),
            read_conflicts: AtomicU64::new(0),
            index: core::array::from_fn(|_| AtomicU64::new(0)),
            free: core::array::from_fn(|_| AtomicU32::new(0)),
            images: core::array::from_fn(|_| Image {
                ppid: AtomicU64::new(0),
                len: AtomicU32::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }

    /// Inserts that found no room (processes without an image).
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Relaxed)
    }

    /// Lookups that gave up because the table kept changing under them.
    pub fn read_conflicts(&self) -> u64 {
        self.read_conflicts.load(Relaxed)
    }

    /// Processes in the table.
    pub fn len(&self) -> usize {
        self.live.load(Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `pid` with its parent and image, replacing any entry the pid
    /// had (a missed exit must not shadow the new process). PASSIVE_LEVEL
    /// (notify routine); raises to DISPATCH_LEVEL inside.
    pub fn insert(&self, pid: u64, ppid: u64, image: &str) {
        self.write(pid, ppid, image, true);
    }

    /// As [`insert`](Self::insert), but leaves an existing entry alone (the
    /// notify routine's record of a process is newer than a snapshot's).
    /// Returns whether it inserted.
    pub fn insert_if_absent(&self, pid: u64, ppid: u64, image: &str) -> bool {
        self.write(pid, ppid, image, false)
    }

    fn write(&self, pid: u64, ppid: u64, image: &str, replace: bool) -> bool {
        let Some(pid) = key_pid(pid) else {
            self.overflow.fetch_add(1, Relaxed);
            return false;
        };
        let (kept, _) = clamp(image, MAX_IMAGE);
        kernel::with_spin_lock(&self.lock, || {
            if let Some((_, e)) = self.find(pid).0 {
                if replace {
                    self.begin_write();
                    self.store_image(entry_image(e), ppid, kept.as_bytes());
                    self.end_write();
                }
                return replace;
            }
            let h = home(pid);
            let Some(pos) = (0..MAX_PROBE)
                .map(|d| (h + d) & MASK)
                .find(|&p| self.index[p].load(Relaxed) == 0)
            else {
                self.overflow.fetch_add(1, Relaxed);
                return false;
            };
            let Some(slot) = self.alloc_image() else {
                self.overflow.fetch_add(1, Relaxed);
                return false;
            };
            self.begin_write();
            self.store_image(slot, ppid, kept.as_bytes());
            self.index[pos].store(entry(pid, slot as u32), Relaxed);
            self.end_write();
            self.live.fetch_add(1, Relaxed);
            true
        })
    }

    /// Forgets `pid` (process exit). PASSIVE_LEVEL; raises to
    /// DISPATCH_LEVEL inside.
    pub fn remove(&self, pid: u64) {
        let Some(pid) = key_pid(pid) else {
            return;
        };
        kernel::with_spin_lock(&self.lock, || {
            let Some((pos, e)) = self.find(pid).0 else {
                return;
            };
            self.begin_write();
            self.shift_into(pos);
            self.end_write();
            self.free_image(entry_image(e));
            self.live.fetch_sub(1, Relaxed);
        })
    }

    /// Backward-shift deletion of the entry at `hole`. Writer, inside the
    /// write section.
    fn shift_into(&self, mut hole: usize) {
        let mut j = (hole + 1) & MASK;
        // Ends at the first empty word; the index is at most half full, so
        // there is one within MAX_PROCESSES + 1 steps.
        loop {
            let e = self.index[j].load(Relaxed);
            if e == 0 {
                break;
            }
            // The entry at j may fill the hole iff its home is not in
            // (hole, j] (cyclically): then it is still reachable from home.
            let dist_home = j.wrapping_sub(home(entry_pid(e))) & MASK;
            let dist_hole = j.wrapping_sub(hole) & MASK;
            if dist_home >= dist_hole {
                self.index[hole].store(e, Relaxed);
                hole = j;
            }
            j = (j + 1) & MASK;
        }
        self.index[hole].store(0, Relaxed);
    }

    fn begin_write(&self) {
        let s = self.seq.load(Relaxed);
        self.seq.store(s.wrapping_add(1), Relaxed);
        // Orders the odd counter before every table store that follows, for
        // any reader that observes one of those stores (pairs with the
        // reader's acquire fence).
        fence(Release);
    }

    fn end_write(&self) {
        let s = self.seq.load(Relaxed);
        self.seq.store(s.wrapping_add(1), Release);
    }

    fn alloc_image(&self) -> Option<usize> {
        let top = self.free_top.load(Relaxed);
        if top > 0 {
            self.free_top.store(top - 1, Relaxed);
            return Some(self.free[top as usize - 1].load(Relaxed) as usize);
        }
        let f = self.fresh.load(Relaxed);
        if (f as usize) < MAX_PROCESSES {
            self.fresh.store(f + 1, Relaxed);
            return Some(f as usize);
        }
        None
    }

    fn free_image(&self, slot: usize) {
        let top = self.free_top.load(Relaxed) as usize;
        if top < MAX_PROCESSES && slot < MAX_PROCESSES {
            self.free[top].store(slot as u32, Relaxed);
            self.free_top.store(top as u32 + 1, Relaxed);
        }
    }

    fn store_image(&self, slot: usize, ppid: u64, bytes: &[u8]) {
        let Some(img) = self.images.get(slot) else {
            return;
        };
        img.ppid.store(ppid, Relaxed);
        for (i, w) in img.words.iter().enumerate() {
            let mut chunk = [0u8; 8];
            let lo = (i * 8).min(bytes.len());
            let hi = (i * 8 + 8).min(bytes.len());
            chunk[..hi - lo].copy_from_slice(&bytes[lo..hi]);
            w.store(u64::from_le_bytes(chunk), Relaxed);
        }
        img.len.store(bytes.len() as u32, Relaxed);
    }

    /// Probes for `pid`: its position and entry if present, and the number
    /// of index words read. Readers must validate the result with the
    /// sequence counter; writers hold the lock.
    fn find(&self, pid: u32) -> (Option<(usize, u64)>, usize) {
        self.find_observed(pid, &mut |_| {})
    }

    /// [`find`](Self::find), calling `after_read(pos)` after each index
    /// word it reads (a no-op outside tests, where a hook plays a writer
    /// running on another CPU at that instant).
    fn find_observed(
        &self,
        pid: u32,
        after_read: &mut impl FnMut(usize),
    ) -> (Option<(usize, u64)>, usize) {
        let h = home(pid);
        for d in 0..MAX_PROBE {
            let pos = (h + d) & MASK;
            let e = self.index[pos].load(Relaxed);
            after_read(pos);
            if e == 0 {
                return (None, d + 1);
            }
            if entry_pid(e) == pid {
                return (Some((pos, e)), d + 1);
            }
        }
        (None, MAX_PROBE)
    }

    /// Index words a lookup of `pid` reads now (for tests and benchmarks;
    /// the same probe loop as [`lookup`](Self::lookup)).
    pub fn probe_len(&self, pid: u64) -> usize {
        key_pid(pid).map_or(0, |p| self.find(p).1)
    }

    /// Copies the entry of `pid` into `out`. Any IRQL ≤ DISPATCH_LEVEL;
    /// never takes a lock. Returns false (and leaves `out` unknown) if the
    /// pid is not in the table or the table kept changing.
    pub fn lookup(&self, pid: u64, out: &mut ProcessInfo) -> bool {
        self.lookup_detailed(pid, out) == Lookup::Found
    }

    /// [`lookup`](Self::lookup), telling a miss from a give-up.
    pub fn lookup_detailed(&self, pid: u64, out: &mut ProcessInfo) -> Lookup {
        self.lookup_observed(pid, out, &mut |_| {})
    }

    fn lookup_observed(
        &self,
        pid: u64,
        out: &mut ProcessInfo,
        after_read: &mut impl FnMut(usize),
    ) -> Lookup {
        let Some(pid) = key_pid(pid) else {
            out.clear();
            return Lookup::Absent;
        };
        for _ in 0..READ_ATTEMPTS {
            let mut s1 = self.seq.load(Acquire);
            let mut spins = 0;
            while s1 & 1 == 1 && spins < SPINS_WHILE_WRITING {
                core::hint::spin_loop();
                spins += 1;
                s1 = self.seq.load(Acquire);
            }
            if s1 & 1 == 1 {
                continue;
            }
            let (hit, _) = self.find_observed(pid, after_read);
            let mut len = 0;
            let mut ppid = 0;
            if let Some((_, e)) = hit {
                if let Some(img) = self.images.get(entry_image(e)) {
                    len = (img.len.load(Relaxed) as usize).min(MAX_IMAGE);
                    ppid = img.ppid.load(Relaxed);
                    // Only the words the image occupies (a torn length is
                    // caught by the sequence check like any other field).
                    let words = len.div_ceil(8);
                    for (i, w) in img.words.iter().take(words).enumerate() {
                        out.image[i * 8..i * 8 + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
                    }
                }
            }
            // Pairs with the writer's release fence: if anything read above
            // was written by a writer, this load sees its odd counter.
            fence(Acquire);
            if self.seq.load(Relaxed) != s1 {
                continue;
            }
            if hit.is_none() {
                out.clear();
                return Lookup::Absent;
            }
            out.len = len;
            out.ppid = ppid;
            if core::str::from_utf8(&out.image[..len]).is_err() {
                out.len = 0;
            }
            return Lookup::Found;
        }
        self.read_conflicts.fetch_add(1, Relaxed);
        out.clear();
        Lookup::Contended
    }
}

/// Cuts at a character boundary (same rule as the record format).
fn clamp(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// What [`fill_from_running`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FillStats {
    /// Processes the snapshot listed that the table took.
    pub inserted: usize,
    /// Listed processes already in the table (the notify routine saw them
    /// start after it was registered).
    pub present: usize,
    /// Listed processes that had exited by the time their entry was
    /// written, and were removed again.
    pub exited: usize,
}

/// Drive letters whose NT device names [`fill_from_running`] maps back to
/// `C:`-style prefixes, as the notify routine's `\??\C:\…` names are.
struct DriveMap {
    /// `targets[d]`: `\Device\HarddiskVolume3` for drive `A + d`, UTF-16.
    targets: [[u16; DRIVE_TARGET]; 26],
    lens: [usize; 26],
    /// Scratch for one converted image path (kept off the stack).
    utf8: [u8; MAX_IMAGE],
}

const DRIVE_TARGET: usize = 96;

impl DriveMap {
    /// # Safety
    /// PASSIVE_LEVEL, outside any filter callback.
    unsafe fn build(&mut self) {
        for d in 0..26u16 {
            let name = [
                u16::from(b'\\'),
                u16::from(b'?'),
                u16::from(b'?'),
                u16::from(b'\\'),
                u16::from(b'A') + d,
                u16::from(b':'),
            ];
            // SAFETY: PASSIVE_LEVEL, outside callbacks (the caller's contract).
            let r = unsafe { kernel::resolve_symbolic_link(&name, &mut self.targets[d as usize]) };
            self.lens[d as usize] = r.unwrap_or(0);
        }
    }

    /// `\Device\HarddiskVolume3\Windows\x.exe` → `C:\Windows\x.exe` in
    /// UTF-8 (the NT path unchanged if no drive maps to its device).
    fn convert(&mut self, nt: &[u16]) -> usize {
        for d in 0..26 {
            let t = &self.targets[d][..self.lens[d]];
            if t.is_empty() || nt.len() <= t.len() {
                continue;
            }
            if nt[t.len()] == u16::from(b'\\')
                && crate::utf::eq_ignore_ascii_case_utf16(&nt[..t.len()], t)
            {
                self.utf8[0] = b'A' + d as u8;
                self.utf8[1] = b':';
                let (n, _) = crate::utf::utf16_to_utf8(&nt[t.len()..], &mut self.utf8[2..]);
                return n + 2;
            }
        }
        crate::utf::utf16_to_utf8(nt, &mut self.utf8).0
    }
}

/// Puts the processes already running into `table`, with the image path
/// the kernel keeps for each (`PsLookupProcessByProcessId` +
/// `SeLocateProcessImageName`, device names mapped back to drive letters).
/// PASSIVE_LEVEL: DriverEntry, after the notify routine is registered, so
/// no process is missed: one that starts during the fill is recorded by
/// the notify routine (and kept: the fill never replaces), one that exits
/// during it is removed again (the kernel layer reports processes whose
/// exit status is set after their insert).
///
/// # Safety
/// PASSIVE_LEVEL, outside any filter callback.
pub unsafe fn fill_from_running(table: &ProcessTable) -> Result<FillStats, i32> {
    let raw = crate::pool::alloc_for::<DriveMap>();
    if raw.is_null() {
        return Err(kernel::status::STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: a fresh, zeroed (all-zero is a valid DriveMap), suitably
    // aligned block that only this function uses until it frees it.
    let map = unsafe { &mut *raw };
    // SAFETY: PASSIVE_LEVEL, outside callbacks (this function's contract).
    unsafe { map.build() };
    let inserted = core::cell::Cell::new(0usize);
    let present = core::cell::Cell::new(0usize);
    let exited = core::cell::Cell::new(0usize);
    // SAFETY: PASSIVE_LEVEL, outside callbacks (this function's contract).
    let r = unsafe {
        kernel::for_each_process(
            &mut |pid, ppid, image| {
                let n = map.convert(image);
                let image = core::str::from_utf8(&map.utf8[..n]).unwrap_or("");
                let c = if table.insert_if_absent(pid, ppid, image) {
                    &inserted
                } else {
                    &present
                };
                c.set(c.get() + 1);
            },
            &mut |pid| {
                table.remove(pid);
                exited.set(exited.get() + 1);
            },
        )
    };
    // SAFETY: allocated above; nothing refers to it any more.
    unsafe { crate::pool::free_for(raw) };
    r.map(|_| FillStats {
        inserted: inserted.get(),
        present: present.get(),
        exited: exited.get(),
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn table() -> Box<ProcessTable> {
        ProcessTable::new_boxed()
    }

    #[test]
    fn insert_lookup_remove() {
        let t = table();
        let mut info = ProcessInfo::unknown();
        assert!(!t.lookup(1234, &mut info));
        t.insert(1234, 4, r"C:\Tools\app.exe");
        assert!(t.lookup(1234, &mut info));
        assert_eq!(info.image(), r"C:\Tools\app.exe");
        assert_eq!(info.ppid, 4);
        t.remove(1234);
        assert!(!t.lookup(1234, &mut info));
        for pid in (8..8 + 4 * 300).step_by(4) {
            t.insert(pid, 1, "x");
        }
        for pid in (8..8 + 4 * 300).step_by(4) {
            assert!(t.lookup(pid, &mut info), "{pid}");
        }
        assert_eq!(t.overflow(), 0);
        assert_eq!(t.len(), 300);
    }

    #[test]
    fn table_size_is_as_documented() {
        // docs/windows-driver.md and ARCHITECTURE.md: 4.3 MiB.
        assert_eq!(TABLE_BYTES, 4_489_264);
    }

    #[test]
    fn replace_and_insert_if_absent() {
        let t = table();
        let mut info = ProcessInfo::unknown();
        t.insert(40, 4, "a");
        assert!(!t.insert_if_absent(40, 5, "b"));
        assert!(t.lookup(40, &mut info));
        assert_eq!((info.image(), info.ppid), ("a", 4));
        t.insert(40, 6, "c");
        assert!(t.lookup(40, &mut info));
        assert_eq!((info.image(), info.ppid), ("c", 6));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn pids_the_index_cannot_hold_are_refused_and_counted() {
        let t = table();
        let mut info = ProcessInfo::unknown();
        t.insert(0, 1, "idle");
        t.insert(1 << 40, 1, "huge");
        assert_eq!(t.overflow(), 2);
        assert_eq!(t.lookup_detailed(0, &mut info), Lookup::Absent);
        assert_eq!(t.lookup_detailed(1 << 40, &mut info), Lookup::Absent);
    }

    #[test]
    fn a_full_table_counts_overflow_and_recovers_after_exits() {
        let t = table();
        for i in 0..MAX_PROCESSES as u64 {
            t.insert(4 * (i + 1), 1, "p");
        }
        assert_eq!(t.len() as u64 + t.overflow(), MAX_PROCESSES as u64);
        let before = t.overflow();
        t.insert(4 * (MAX_PROCESSES as u64 + 10), 1, "one too many");
        assert_eq!(t.overflow(), before + 1);
        t.remove(4);
        t.remove(8);
        t.insert(4 * (MAX_PROCESSES as u64 + 10), 1, "fits again");
        let mut info = ProcessInfo::unknown();
        assert!(t.lookup(4 * (MAX_PROCESSES as u64 + 10), &mut info));
        assert_eq!(info.image(), "fits again");
    }

    #[test]
    fn long_images_are_cut_at_a_character_boundary() {
        let t = table();
        let long = "é".repeat(400); // 800 bytes
        t.insert(8, 1, &long);
        let mut info = ProcessInfo::unknown();
        assert!(t.lookup(8, &mut info));
        assert_eq!(info.image().len(), MAX_IMAGE);
        assert!(long.starts_with(info.image()));
    }

    /// Pids whose home slot is `h`, `n` of them.
    fn pids_at(h: usize, n: usize) -> Vec<u64> {
        (1..u64::from(u32::MAX / 4))
            .map(|i| 4 * i)
            .filter(|&p| home(p as u32) == h)
            .take(n)
            .collect()
    }

    /// Checks the linear-probing invariant directly on the index: every
    /// entry is within MAX_PROBE of its home and no empty word lies
    /// between its home and its position (else a lookup would stop early).
    fn check_index(t: &ProcessTable) {
        for pos in 0..INDEX_SLOTS {
            let e = t.index[pos].load(Relaxed);
            if e == 0 {
                continue;
            }
            let h = home(entry_pid(e));
            let d = pos.wrapping_sub(h) & MASK;
            assert!(d < MAX_PROBE, "entry {pos} is {d} from home");
            for k in 0..d {
                assert_ne!(t.index[(h + k) & MASK].load(Relaxed), 0, "gap before {pos}");
            }
        }
    }

    #[test]
    fn backward_shift_keeps_colliding_entries_reachable() {
        let t = table();
        let h = 77;
        // Two runs that meet: 30 pids at home h, 30 at h + 1, inserted
        // interleaved so each run's entries are displaced by the other's.
        let a = pids_at(h, 30);
        let b = pids_at(h + 1, 30);
        let mut all: Vec<u64> = a.iter().zip(&b).flat_map(|(x, y)| [*x, *y]).collect();
        for &p in &all {
            t.insert(p, 1, &format!("img{p}"));
        }
        check_index(&t);
        let mut info = ProcessInfo::unknown();
        // Remove in a scrambled order; after each removal everything else
        // is still found and the removed pid is not.
        let mut removed = Vec::new();
        let mut i = 7usize;
        while !all.is_empty() {
            i = (i * 31 + 11) % all.len();
            let p = all.swap_remove(i);
            t.remove(p);
            removed.push(p);
            check_index(&t);
            for &q in &all {
                assert_eq!(t.lookup_detailed(q, &mut info), Lookup::Found, "{q}");
                assert_eq!(info.image(), format!("img{q}"));
            }
            for &q in &removed {
                assert_eq!(t.lookup_detailed(q, &mut info), Lookup::Absent, "{q}");
            }
        }
        assert!(t.is_empty());
        // Every word is empty again: no tombstones.
        assert!(t.index.iter().all(|w| w.load(Relaxed) == 0));
        assert_eq!(t.probe_len(a[0]), 1);
    }

    #[test]
    fn a_shift_during_a_probe_is_retried_not_reported_as_a_miss() {
        // Blocker b and s share a home: b sits at home, s one further. A
        // reader looking for s reads b's word; at that instant a writer on
        // another CPU removes b, shifting s back into b's word and emptying
        // its own. The reader then reads an empty word: without the
        // sequence check it would report s absent although s never left.
        let t = table();
        let same = pids_at(900, 2);
        let (b, s) = (same[0], same[1]);
        t.insert(b, 1, "blocker");
        t.insert(s, 1, "stays");
        let mut info = ProcessInfo::unknown();
        let mut fired = false;
        let r = t.lookup_observed(s, &mut info, &mut |pos| {
            if !fired && pos == 900 {
                fired = true;
                t.remove(b);
            }
        });
        assert!(fired);
        assert_eq!(r, Lookup::Found);
        assert_eq!(info.image(), "stays");
    }

    #[test]
    fn runs_wrap_around_the_end_of_the_index() {
        let t = table();
        let last = pids_at(INDEX_SLOTS - 1, 6);
        let first = pids_at(0, 3);
        for &p in last.iter().chain(&first) {
            t.insert(p, 1, "w");
        }
        check_index(&t);
        t.remove(last[0]);
        t.remove(first[0]);
        check_index(&t);
        let mut info = ProcessInfo::unknown();
        for &p in last[1..].iter().chain(&first[1..]) {
            assert!(t.lookup(p, &mut info), "{p}");
        }
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        #[derive(Debug, Clone)]
        enum Op {
            Start(usize, u8),
            Exit(usize),
            Fill(usize, u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..48usize, any::<u8>()).prop_map(|(p, i)| Op::Start(p, i)),
                (0..48usize).prop_map(Op::Exit),
                (0..48usize, any::<u8>()).prop_map(|(p, i)| Op::Fill(p, i)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// Random starts, exits and fill inserts over 48 pids packed
            /// into four neighbouring home slots (so runs collide and
            /// shift), checked after every step against a HashMap.
            #[test]
            fn table_agrees_with_a_hashmap(ops in proptest::collection::vec(op(), 1..200)) {
                let pids: Vec<u64> = (0..4).flat_map(|k| pids_at(500 + k, 12)).collect();
                let t = table();
                let mut model: HashMap<u64, (u64, String)> = HashMap::new();
                let mut info = ProcessInfo::unknown();
                for op in ops {
                    match op {
                        Op::Start(i, tag) => {
                            let (p, img) = (pids[i], format!("s{tag}"));
                            t.insert(p, u64::from(tag), &img);
                            model.insert(p, (u64::from(tag), img));
                        }
                        Op::Exit(i) => {
                            t.remove(pids[i]);
                            model.remove(&pids[i]);
                        }
                        Op::Fill(i, tag) => {
                            let (p, img) = (pids[i], format!("f{tag}"));
                            let inserted = t.insert_if_absent(p, 9, &img);
                            prop_assert_eq!(inserted, !model.contains_key(&p));
                            model.entry(p).or_insert((9, img));
                        }
                    }
                    check_index(&t);
                    prop_assert_eq!(t.len(), model.len());
                    for &p in &pids {
                        match model.get(&p) {
                            Some((ppid, img)) => {
                                prop_assert_eq!(t.lookup_detailed(p, &mut info), Lookup::Found);
                                prop_assert_eq!(info.image(), img.as_str());
                                prop_assert_eq!(info.ppid, *ppid);
                            }
                            None => prop_assert_eq!(t.lookup_detailed(p, &mut info), Lookup::Absent),
                        }
                        prop_assert!(t.probe_len(p) <= MAX_PROBE);
                    }
                }
            }
        }
    }

    #[test]
    fn concurrent_readers_never_see_torn_images() {
        let t = std::sync::Arc::new(table());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let a = "A".repeat(300);
        let b = "B".repeat(200);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (t, stop, a, b) = (t.clone(), stop.clone(), a.clone(), b.clone());
                std::thread::spawn(move || {
                    let mut info = ProcessInfo::unknown();
                    while !stop.load(Relaxed) {
                        if t.lookup(1000, &mut info) {
                            assert!(
                                info.image() == a || info.image() == b,
                                "torn: {}",
                                info.image()
                            );
                        }
                    }
                })
            })
            .collect();
        for i in 0..20_000 {
            t.insert(1000, 1, if i % 2 == 0 { &a } else { &b });
            if i % 3 == 0 {
                t.remove(1000);
            }
        }
        stop.store(true, Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }
}

/// Model checks of the seqlock and the backward shift on the code above
/// (`RUSTFLAGS="--cfg loom" cargo test -p fltpolicy-driver --release --lib
/// pid_table_loom`; the table shrinks to 4 processes, 8 index words, one
/// image word): loom runs every interleaving of a reader with a writer
/// under the C11 memory model, so a missing fence or a miss trusted
/// without the sequence check shows up as a failing interleaving.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two pids with the same home slot.
    fn same_home_pair() -> (u64, u64) {
        let mut it = (1..).map(|i| 4 * i).filter(|&p| home(p as u32) == 2);
        (it.next().unwrap(), it.next().unwrap())
    }

    #[test]
    fn pid_table_loom_a_shift_never_hides_a_present_pid() {
        loom::model(|| {
            let t = Arc::new(ProcessTable::new_loom());
            let (b, s) = same_home_pair();
            t.insert(b, 1, "B");
            t.insert(s, 2, "S");
            // The reader on its own thread (a CPU at DISPATCH_LEVEL), the
            // exit on this one.
            let reader = {
                let t = t.clone();
                loom::thread::spawn(move || {
                    let mut info = ProcessInfo::unknown();
                    let r = t.lookup_detailed(s, &mut info);
                    (r, info.ppid, info.image() == "S")
                })
            };
            t.remove(b);
            let (r, ppid, image_ok) = reader.join().unwrap();
            assert_ne!(r, Lookup::Absent, "s was present throughout");
            if r == Lookup::Found {
                assert!(ppid == 2 && image_ok);
            }
            let mut info = ProcessInfo::unknown();
            assert_eq!(t.lookup_detailed(s, &mut info), Lookup::Found);
            assert_eq!(t.lookup_detailed(b, &mut info), Lookup::Absent);
        });
    }

    #[test]
    fn pid_table_loom_readers_never_see_a_torn_image() {
        loom::model(|| {
            let t = Arc::new(ProcessTable::new_loom());
            t.insert(8, 1, "AAAAAAAA");
            let w = {
                let t = t.clone();
                loom::thread::spawn(move || t.insert(8, 2, "BBBB"))
            };
            let mut info = ProcessInfo::unknown();
            match t.lookup_detailed(8, &mut info) {
                Lookup::Found => {
                    let got = (info.ppid, info.image());
                    assert!(
                        got == (1, "AAAAAAAA") || got == (2, "BBBB"),
                        "torn: {got:?}"
                    );
                }
                Lookup::Contended => {}
                Lookup::Absent => panic!("8 was present throughout"),
            }
            w.join().unwrap();
        });
    }
}

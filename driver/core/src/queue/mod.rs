//! The bounded audit queue: many producers, one consumer, no waiting.
//!
//! Producers are file-system callbacks on any CPU at up to DISPATCH_LEVEL
//! (kernel rule 1), so a producer must never wait for anything — not for
//! the consumer, not for another producer (rule 9). When there is no room
//! it counts a drop and returns; the flush thread turns the count into a
//! drop record, so nothing is lost without a trace.
//!
//! # Design: per-CPU single-producer rings
//!
//! The queue is `RINGS` byte rings (stored as 64-bit words) carved out of
//! one caller-provided buffer, each with a *claim flag*, a producer index
//! (`tail`) and a consumer index (`head`), each on its own cache line.
//!
//! * A producer claims a ring with one `compare_exchange(false, true)` on
//!   its claim flag, starting at its `hint` ring. If the claim fails (some
//!   other producer is writing that ring at this instant) or the claimed
//!   ring has no room for the entry, it tries the next ring, at most
//!   `RINGS` attempts in all, so a burst from a few producers can use the
//!   whole queue rather than only their own rings. Only when no ring
//!   takes the entry does it count a drop: [`DropReason::QueueFull`] if
//!   some ring was full, [`DropReason::QueueBusy`] if every ring was being
//!   written. It never retries a ring and never spins: the cost is bounded
//!   by `RINGS` claims (and `RINGS` encodings that stop at the first word
//!   that does not fit).
//! * Having claimed a ring, the producer is its only writer: it encodes the
//!   record (postcard, straight into the ring's words — no stack buffer,
//!   which matters on a 24 KiB kernel stack), publishes the new `tail` with
//!   `Release`, and releases the claim.
//! * The one consumer ([`Consumer`], obtainable once at a time) reads
//!   `tail` with `Acquire`, copies entries out, and publishes `head` with
//!   `Release` so producers can reuse the space.
//!
//! The Windows driver does not raise the IRQL to push: a producer runs at
//! whatever IRQL its callback has (PASSIVE_LEVEL to DISPATCH_LEVEL) and
//! passes the current processor number as the hint. A producer at
//! DISPATCH_LEVEL cannot be preempted, so its claim on its CPU's ring
//! succeeds at the first try unless another CPU spilled into it; a
//! producer below DISPATCH_LEVEL can be preempted (or moved to another
//! CPU) while holding the claim, and whoever then runs on that CPU finds
//! the ring claimed and moves on to the next one — a fall-over, never a
//! wait. The ring is then, most of the time, a plain SPSC ring (the design
//! of heapless' `spsc::Queue`, per CPU); a
//! spilling CPU that finds it claimed simply moves on. Linux user-mode producers
//! (threads that can be preempted or migrated mid-push) pass a per-thread
//! hint; the claim flag is what keeps them from ever sharing a ring, and
//! preemption of a claimer costs at most a fall-over to another ring.
//!
//! # Why not an MPMC array queue
//!
//! heapless deprecated its `mpmc::MpMcQueue` (the Vyukov bounded queue)
//! because it is not lock-free: a producer preempted between claiming a
//! slot and publishing it blocks every consumer at that slot, and on
//! wrap-around every producer behind it, so the queue can report full or
//! empty while space and data exist (heapless issue #583; deprecated by
//! PR #624). crossbeam's `ArrayQueue` has the same property and hides it
//! with exponential backoff, i.e. spinning, which a DISPATCH_LEVEL caller
//! must not do either. Either
//! would make one preempted producer stall the others, which rule 9
//! forbids. Per-ring claims cannot stall anyone: a preempted claimer holds
//! only its own ring.
//!
//! # Variable-length entries
//!
//! An entry is one header word (`len | ENTRY_TAG << 32`) and `ceil(len/8)`
//! payload words, wrapping around the ring freely (indices are monotonic
//! u64 word counts; the slot is `index & mask`). The payload is the
//! postcard encoding of an [`EventData`], at most [`MAX_ENTRY_BYTES`]
//! because [`EventData::clamped`] truncates (and flags) long strings.
//!
//! # Safety without `unsafe`
//!
//! Payload words are `AtomicU64` written and read with `Relaxed` ordering;
//! the `Release` store of `tail` (producer) and `head` (consumer) and the
//! matching `Acquire` loads order them. On x86_64 and ARM64 relaxed atomic
//! loads and stores of aligned words compile to plain moves, so the crate
//! keeps `forbid(unsafe_code)` at no cost. All atomics come from
//! [`crate::sync`], so the loom models below check the real code.
//!
//! This module must never allocate, block, or panic on a push or pop.

use crate::record::{DropReason, EventData, MAX_EVENT_DATA};
use crate::sync::{AtomicBool, AtomicU64, CachePadded, Ordering};

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

/// Largest payload a ring entry may carry: one maximal event record.
pub const MAX_ENTRY_BYTES: usize = MAX_EVENT_DATA;
/// Words a maximal entry occupies (header + payload).
pub const MAX_ENTRY_WORDS: usize = 1 + MAX_ENTRY_BYTES.div_ceil(8);
/// Smallest ring allowed: a power of two that holds one maximal entry, so
/// that every valid record can be queued when the ring is empty.
pub const MIN_RING_WORDS: usize = MAX_ENTRY_WORDS.next_power_of_two();
/// Upper 32 bits of every entry header: catches a consumer that lost its
/// place (which the index protocol rules out; checked anyway).
const ENTRY_TAG: u64 = 0xF17E_0000;
/// A ring more than this many 1/8ths full asks for an early flush (the
/// high-water signal): half-full leaves the flush thread half a ring of
/// time to wake before producers start dropping.
pub const HIGH_WATER_EIGHTHS: u64 = 4;

/// Per-ring control block. Each index sits on its own cache line: the
/// claim flag and the tail are written by the producer side, the head by
/// the consumer.
#[derive(Debug)]
struct RingMeta {
    claimed: CachePadded<AtomicBool>,
    tail: CachePadded<AtomicU64>,
    head: CachePadded<AtomicU64>,
    /// Drops counted against this ring: [full, busy].
    dropped: CachePadded<[AtomicU64; 2]>,
}

impl RingMeta {
    #[cfg(not(loom))]
    const fn new() -> RingMeta {
        RingMeta {
            claimed: CachePadded(AtomicBool::new(false)),
            tail: CachePadded(AtomicU64::new(0)),
            head: CachePadded(AtomicU64::new(0)),
            dropped: CachePadded([AtomicU64::new(0), AtomicU64::new(0)]),
        }
    }

    #[cfg(loom)]
    fn new() -> RingMeta {
        RingMeta {
            claimed: CachePadded(AtomicBool::new(false)),
            tail: CachePadded(AtomicU64::new(0)),
            head: CachePadded(AtomicU64::new(0)),
            dropped: CachePadded([AtomicU64::new(0), AtomicU64::new(0)]),
        }
    }
}

/// Why the storage handed to [`Queue::new`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// `RINGS` is zero.
    NoRings,
    /// The word count is not `RINGS` times a power of two of at least
    /// [`MIN_RING_WORDS`].
    BadLength { words: usize },
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StorageError::NoRings => f.write_str("a queue needs at least one ring"),
            StorageError::BadLength { words } => write!(
                f,
                "queue storage of {words} words is not the ring count times a power of two >= {MIN_RING_WORDS}"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StorageError {}

/// A successful push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The ring is past its high-water mark: the caller should wake the
    /// flush thread (KeSetEvent / unpark — neither waits).
    pub wake_flusher: bool,
}

/// The queue over caller-provided storage `W` (a slice of words in
/// non-paged pool in the driver, a boxed slice on the host).
#[derive(Debug)]
pub struct Queue<W: AsRef<[AtomicU64]>, const RINGS: usize> {
    words: W,
    ring_words: usize,
    rings: [RingMeta; RINGS],
    /// Drops reported by the event source itself, per [`DropReason`].
    external: CachePadded<[AtomicU64; DropReason::COUNT]>,
    consumer_taken: AtomicBool,
}

impl<W: AsRef<[AtomicU64]>, const RINGS: usize> Queue<W, RINGS> {
    /// Builds a queue over `words`, split into `RINGS` equal rings. The
    /// words' values are ignored (indices start at 0). Nothing is allocated.
    pub fn new(words: W) -> Result<Self, StorageError> {
        let per = Self::ring_size(&words)?;
        Ok(Self::new_unchecked_size(words, per))
    }

    /// Like [`Queue::new`] without the minimum ring size: for models and
    /// tests that push only small entries. Rings must still be a power of
    /// two of at least 2 words.
    pub fn with_small_rings(words: W) -> Result<Self, StorageError> {
        if RINGS == 0 {
            return Err(StorageError::NoRings);
        }
        let n = words.as_ref().len();
        let per = n / RINGS;
        if per * RINGS != n || !per.is_power_of_two() || per < 2 {
            return Err(StorageError::BadLength { words: n });
        }
        Ok(Self::new_unchecked_size(words, per))
    }

    fn new_unchecked_size(words: W, per: usize) -> Self {
        let mut q = Self::unattached(words);
        q.ring_words = per;
        q
    }

    /// Checks `words` the way [`Queue::new`] does; the ring size.
    fn ring_size(words: &W) -> Result<usize, StorageError> {
        if RINGS == 0 {
            return Err(StorageError::NoRings);
        }
        let n = words.as_ref().len();
        let per = n / RINGS;
        if per * RINGS != n || !per.is_power_of_two() || per < MIN_RING_WORDS {
            return Err(StorageError::BadLength { words: n });
        }
        Ok(per)
    }

    /// A queue without storage: every push is dropped as full, nothing can
    /// be popped, until [`Queue::attach`] gives it storage. `const`, so a
    /// caller can write it straight into place (`ptr.write(const { .. })`):
    /// the queue is several KiB of cache-padded counters, and the Windows
    /// driver must not build that on its kernel stack (1 KiB per frame,
    /// docs/windows-driver.md "Stack budget").
    #[cfg(not(loom))]
    pub const fn unattached(words: W) -> Self {
        Queue {
            words,
            ring_words: 0,
            rings: [const { RingMeta::new() }; RINGS],
            external: CachePadded([const { AtomicU64::new(0) }; DropReason::COUNT]),
            consumer_taken: AtomicBool::new(false),
        }
    }

    /// [`Queue::unattached`] under loom (whose atomics are not `const`).
    #[cfg(loom)]
    pub fn unattached(words: W) -> Self {
        Queue {
            words,
            ring_words: 0,
            rings: core::array::from_fn(|_| RingMeta::new()),
            external: CachePadded(core::array::from_fn(|_| AtomicU64::new(0))),
            consumer_taken: AtomicBool::new(false),
        }
    }

    /// Gives the queue its storage, checked as by [`Queue::new`], and
    /// empties it (indices and drop counters back to zero). With
    /// [`Queue::unattached`], builds a queue in place; `&mut self` means no
    /// producer or consumer can be using it.
    pub fn attach(&mut self, words: W) -> Result<(), StorageError> {
        let per = Self::ring_size(&words)?;
        self.words = words;
        self.ring_words = per;
        for r in &mut self.rings {
            r.claimed.store(false, Ordering::Relaxed);
            r.tail.store(0, Ordering::Relaxed);
            r.head.store(0, Ordering::Relaxed);
            r.dropped[0].store(0, Ordering::Relaxed);
            r.dropped[1].store(0, Ordering::Relaxed);
        }
        for c in self.external.0.iter() {
            c.store(0, Ordering::Relaxed);
        }
        self.consumer_taken.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Words per ring.
    pub fn ring_words(&self) -> usize {
        self.ring_words
    }

    /// Pushes one event. `hint` picks the first ring to try (the CPU number
    /// in the driver, a per-thread value in user mode). On `Err` the drop
    /// has already been counted. Never waits.
    pub fn push(&self, hint: usize, data: &EventData<'_>) -> Result<Pushed, DropReason> {
        self.push_with(hint, |w| postcard::serialize_with_flavor(data, w).ok())
    }

    /// Pushes pre-encoded payload bytes (already-encoded [`EventData`]).
    pub fn push_bytes(&self, hint: usize, bytes: &[u8]) -> Result<Pushed, DropReason> {
        self.push_with(hint, |mut w| {
            postcard::ser_flavors::Flavor::try_extend(&mut w, bytes).ok()?;
            postcard::ser_flavors::Flavor::finalize(w).ok()
        })
    }

    /// Whether ring `hint % RINGS` has room for an entry of `bytes` payload
    /// bytes right now. Only meaningful to a producer that is the ring's
    /// sole writer (a replay tool that prefers waiting to dropping); a
    /// callback never needs it — it pushes and counts the drop.
    pub fn has_room(&self, hint: usize, bytes: usize) -> bool {
        let meta = &self.rings[hint % RINGS];
        let used = meta
            .tail
            .load(Ordering::Relaxed)
            .wrapping_sub(meta.head.load(Ordering::Acquire));
        let need = 1 + bytes.div_ceil(8) as u64;
        (self.ring_words as u64).saturating_sub(used) >= need
    }

    /// Counts `n` events lost by the event source itself (fanotify queue
    /// overflow). Callable from any context; never waits.
    pub fn count_external_drop(&self, reason: DropReason, n: u64) {
        self.external[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn push_with(
        &self,
        hint: usize,
        encode: impl Fn(WordWriter<'_>) -> Option<usize>,
    ) -> Result<Pushed, DropReason> {
        let home = hint % RINGS;
        let mut full = false;
        for k in 0..RINGS {
            let i = (home + k) % RINGS;
            let meta = &self.rings[i];
            if meta
                .claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let result = self.push_claimed(i, &encode);
            meta.claimed.store(false, Ordering::Release);
            match result {
                // A spill means the home ring is full: drain it early.
                Ok(p) => {
                    return Ok(Pushed {
                        wake_flusher: p.wake_flusher || full,
                    })
                }
                // No room here: another ring may have some.
                Err(()) => full = true,
            }
        }
        // Every ring was full or being written: the drop counts against
        // the home ring, as full if any ring was full, else as busy.
        let slot = usize::from(!full);
        self.rings[home].dropped[slot].fetch_add(1, Ordering::Relaxed);
        Err(if full {
            DropReason::QueueFull
        } else {
            DropReason::QueueBusy
        })
    }

    /// Writes one entry into ring `i`, which the caller has claimed.
    fn push_claimed(
        &self,
        i: usize,
        encode: &impl Fn(WordWriter<'_>) -> Option<usize>,
    ) -> Result<Pushed, ()> {
        let meta = &self.rings[i];
        let ring = self.ring(i);
        let cap = self.ring_words as u64;
        // Only a claimer writes `tail`, and we acquired the claim from the
        // previous claimer's release: Relaxed sees its last store.
        let tail = meta.tail.load(Ordering::Relaxed);
        let head = meta.head.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        let free = cap.saturating_sub(used);
        if free < 2 {
            return Err(());
        }
        let budget_words = (free - 1).min(MAX_ENTRY_WORDS as u64 - 1) as usize;
        let writer = WordWriter {
            ring,
            mask: self.ring_words.wrapping_sub(1),
            next: tail.wrapping_add(1) as usize,
            stage: [0; STAGE_BYTES],
            staged: 0,
            len: 0,
            cap: budget_words * 8,
        };
        let len = encode(writer).ok_or(())?;
        let payload_words = len.div_ceil(8) as u64;
        ring[(tail as usize) & self.ring_words.wrapping_sub(1)]
            .store(len as u64 | ENTRY_TAG << 32, Ordering::Relaxed);
        let new_tail = tail.wrapping_add(1 + payload_words);
        meta.tail.store(new_tail, Ordering::Release);
        let fill = new_tail.wrapping_sub(head);
        Ok(Pushed {
            wake_flusher: fill * 8 > cap * HIGH_WATER_EIGHTHS,
        })
    }

    fn ring(&self, i: usize) -> &[AtomicU64] {
        let start = i * self.ring_words;
        &self.words.as_ref()[start..start + self.ring_words]
    }

    /// The consumer handle, if no other is alive. There is at most one at a
    /// time: that is what makes every ring single-consumer.
    pub fn consumer(&self) -> Option<Consumer<'_, W, RINGS>> {
        self.consumer_taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Consumer { queue: self })
    }

    /// Total drops so far per [`DropReason`] (monotonic counters).
    pub fn drop_totals(&self) -> [u64; DropReason::COUNT] {
        let mut t = [0u64; DropReason::COUNT];
        for (slot, c) in t.iter_mut().zip(self.external.iter()) {
            *slot = c.load(Ordering::Relaxed);
        }
        for r in &self.rings {
            t[DropReason::QueueFull as usize] += r.dropped[0].load(Ordering::Relaxed);
            t[DropReason::QueueBusy as usize] += r.dropped[1].load(Ordering::Relaxed);
        }
        t
    }

    /// Whether any ring holds entries (a hint: producers may be mid-push).
    pub fn is_empty(&self) -> bool {
        self.rings
            .iter()
            .all(|r| r.tail.load(Ordering::Acquire) == r.head.load(Ordering::Relaxed))
    }
}

/// The single consumer of a [`Queue`] (the flush thread).
#[derive(Debug)]
pub struct Consumer<'q, W: AsRef<[AtomicU64]>, const RINGS: usize> {
    queue: &'q Queue<W, RINGS>,
}

/// The consumer found an entry header that the protocol cannot produce.
/// The ring's remaining contents are discarded (and counted as dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCorrupt {
    pub ring: usize,
}

impl<W: AsRef<[AtomicU64]>, const RINGS: usize> Consumer<'_, W, RINGS> {
    /// Copies the oldest entry of ring `ring` into `out` (which must hold
    /// [`MAX_ENTRY_BYTES`] rounded up to 8) and frees its space. Returns the
    /// payload length, or `None` when the ring is empty.
    pub fn pop(&mut self, ring: usize, out: &mut [u8]) -> Option<Result<usize, RingCorrupt>> {
        let q = self.queue;
        let meta = q.rings.get(ring)?;
        let words = q.ring(ring);
        // wrapping: an unattached queue (0 words) has nothing to pop anyway.
        let mask = q.ring_words.wrapping_sub(1);
        let head = meta.head.load(Ordering::Relaxed);
        let tail = meta.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let hdr = words[(head as usize) & mask].load(Ordering::Relaxed);
        let len = (hdr & 0xffff_ffff) as usize;
        let n_words = len.div_ceil(8);
        let avail = tail.wrapping_sub(head);
        if hdr >> 32 != ENTRY_TAG
            || len > MAX_ENTRY_BYTES
            || 1 + n_words as u64 > avail
            || out.len() < n_words * 8
        {
            // Discard what is there; the producer side keeps working.
            meta.head.store(tail, Ordering::Release);
            meta.dropped[0].fetch_add(1, Ordering::Relaxed);
            return Some(Err(RingCorrupt { ring }));
        }
        for k in 0..n_words {
            let w = words[(head as usize).wrapping_add(1 + k) & mask].load(Ordering::Relaxed);
            out[k * 8..k * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        meta.head
            .store(head.wrapping_add(1 + n_words as u64), Ordering::Release);
        Some(Ok(len))
    }

    /// Number of rings.
    pub fn rings(&self) -> usize {
        RINGS
    }

    /// The queue this consumer drains.
    pub fn queue(&self) -> &Queue<W, RINGS> {
        self.queue
    }
}

impl<W: AsRef<[AtomicU64]>, const RINGS: usize> Drop for Consumer<'_, W, RINGS> {
    fn drop(&mut self) {
        self.queue.consumer_taken.store(false, Ordering::Release);
    }
}

/// Bytes staged on the stack before they are stored into the ring as
/// words: large enough that strings go in with one `memcpy` per 64 bytes,
/// small enough for any kernel stack.
const STAGE_BYTES: usize = 64;

/// A postcard output flavor that writes bytes straight into a claimed
/// ring's words, little-endian, wrapping at the ring's end. Bytes pass
/// through a 64-byte stage so postcard's many small writes cost a copy,
/// not an atomic store each.
struct WordWriter<'r> {
    ring: &'r [AtomicU64],
    mask: usize,
    /// Word index (unmasked) of the next payload word.
    next: usize,
    stage: [u8; STAGE_BYTES],
    staged: usize,
    len: usize,
    cap: usize,
}

impl WordWriter<'_> {
    /// Stores the staged bytes as words (the last one zero-padded).
    fn store_stage(&mut self) {
        let end = self.staged.div_ceil(8) * 8;
        self.stage[self.staged..end].fill(0);
        for chunk in self.stage[..end].chunks_exact(8) {
            let mut le = [0u8; 8];
            le.copy_from_slice(chunk);
            self.ring[self.next & self.mask].store(u64::from_le_bytes(le), Ordering::Relaxed);
            self.next = self.next.wrapping_add(1);
        }
        self.staged = 0;
    }
}

impl postcard::ser_flavors::Flavor for WordWriter<'_> {
    type Output = usize;

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        if self.len >= self.cap {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.stage[self.staged] = b;
        self.staged += 1;
        self.len += 1;
        if self.staged == STAGE_BYTES {
            self.store_stage();
        }
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() > self.cap - self.len {
            return Err(postcard::Error::SerializeBufferFull);
        }
        let mut rest = data;
        while !rest.is_empty() {
            let n = (STAGE_BYTES - self.staged).min(rest.len());
            self.stage[self.staged..self.staged + n].copy_from_slice(&rest[..n]);
            self.staged += n;
            self.len += n;
            rest = &rest[n..];
            if self.staged == STAGE_BYTES {
                self.store_stage();
            }
        }
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<usize> {
        if self.staged != 0 {
            self.store_stage();
        }
        Ok(self.len)
    }
}

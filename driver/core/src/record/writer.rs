//! The flush logic: queue → frames → batched writes, with drop accounting,
//! rotation and the chain. Sink-agnostic so the Windows driver (over
//! FltWriteFile on its own file object) and the host (over `std::fs::File`)
//! run the same code; only the thread and the file calls differ.
//!
//! Guarantees:
//!
//! * **Batching.** Frames accumulate in the caller's buffer and go to the
//!   sink in one write per buffer-full (or per drain).
//! * **Nothing lost without a trace.** Queue drops (per reason) become drop
//!   records. When a write fails, the whole batch is rolled back — the chain
//!   and the sequence numbers return to the last durable state, the sink is
//!   truncated back to the last durable offset — and its events are counted
//!   as [`DropReason::WriteFailed`]; the drop records it carried are counted
//!   again. The next batch that reaches the disk carries the drop records,
//!   so the log stays dense (no seq gaps) and chained.
//! * **Rotation.** When the next frame could push a file past its limit
//!   the file gets an `End(Rotated)` record and the sink opens the next
//!   file, whose header carries the chain value, so the chain continues.
//! * **Crash safety.** Writes go to explicit offsets after the last durable
//!   byte; a crash leaves at most one torn batch at the tail, which readers
//!   detect (every complete frame before it verifies).
//!
//! Must never allocate; it runs on the flush thread (PASSIVE_LEVEL in the
//! driver), the only place allowed to do I/O (kernel rule 2).

use super::chain::{Chain, KEY_BYTES};
use super::frame::{
    decode_body, decode_header, encode_event_frame, encode_frame, encode_header, parse_frame,
    FileHeader, FrameParse, FRAME_OVERHEAD, MAX_FRAME, MAX_HEADER, MAX_HOST_BYTES,
};
use super::{clamp_str, DropReason, DropRecord, EndReason, EndRecord, Record};
use crate::queue::{Consumer, MAX_ENTRY_WORDS};
use crate::sync::AtomicU64;

/// Where the bytes go: one file at a time.
pub trait Sink {
    type Error: Copy + core::fmt::Debug;
    /// Writes all of `bytes` at `offset` of the current file.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error>;
    /// Cuts the current file to `len` bytes (removes a failed batch).
    fn truncate(&mut self, len: u64) -> Result<(), Self::Error>;
    /// Makes written data durable.
    fn sync(&mut self) -> Result<(), Self::Error>;
    /// Closes the current file and makes an empty file number `index` current.
    fn rotate(&mut self, index: u32) -> Result<(), Self::Error>;
    /// Whether the current file is still the log's file: not deleted,
    /// renamed away or replaced by another file under its name (the host
    /// compares the open file's inode with the name's). Asked before each
    /// drain; `false` makes the writer continue the chain in a new file
    /// (`rotate(index + 1)`) that starts with a [`DropReason::LogLost`]
    /// record for the records the lost file held. Sinks that cannot tell
    /// keep the default.
    fn is_current(&mut self) -> bool {
        true
    }
    /// Records removed from disk by a retention limit since the last call,
    /// as `(first_removed, first_kept)`: the records from `first_removed`
    /// up to (not including) `first_kept` are gone with their files;
    /// `first_kept` is `None` when the oldest file left is the one just
    /// created (its first record is the writer's next). Asked after each
    /// rotation; the writer declares them in the new file
    /// ([`DropReason::Retention`]). Sinks without retention keep the
    /// default.
    fn take_retired(&mut self) -> Option<(u64, Option<u64>)> {
        None
    }
}

/// Where a writer continues an existing log (a restart): the file index
/// and chain value to start from, and records known lost at the tail of
/// the previous file (a torn record cut off on restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeAt {
    /// Index of the first file this writer creates (the previous file's + 1).
    pub file_index: u32,
    /// Chain value after the last record of the previous file.
    pub prev_chain: [u8; 32],
    /// `(after_seq, count)`: `count` records after seq `after_seq` were
    /// lost; written as a [`DropReason::LogLost`] record first.
    /// [`WriterConfig::first_seq`] must then be `after_seq + count + 1`.
    pub lost: Option<(u64, u64)>,
}

/// Largest non-event frame (drop or end record): 4 varints of 10 bytes,
/// 2 one-byte enums and the frame overhead, rounded up.
const SMALL_FRAME_MAX: usize = 64 + FRAME_OVERHEAD;
/// Buffer room always kept free for the drop records of every reason and
/// one end record, so accounting never needs an extra flush.
const RESERVE: usize = (DropReason::COUNT + 1) * SMALL_FRAME_MAX;
/// Scratch at the end of the caller's buffer that queue entries are popped
/// into before being framed.
const SCRATCH: usize = MAX_ENTRY_WORDS * 8;
/// After a failed batch write the batch is written again in pieces of
/// whole frames of about this size, then frame by frame, so a nearly full
/// disk keeps every record that fits.
const SALVAGE_PIECE: usize = 64 << 10;
/// Smallest buffer [`LogWriter::new`] accepts: scratch, a header, one
/// maximal frame and the reserve. Real writers use far more (1 MiB on the
/// host) so each write is large.
pub const MIN_WRITER_BUFFER: usize = SCRATCH + MAX_HEADER + MAX_FRAME + RESERVE;
/// Smallest file size limit: a header, a maximal frame and the reserve.
pub const MIN_FILE_BYTES: u64 = (MAX_HEADER + MAX_FRAME + RESERVE) as u64;

/// Settings of one writer session.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig<'a> {
    /// Cut to [`MAX_HOST_BYTES`].
    pub host: &'a str,
    pub boot_id: [u8; 16],
    pub session_id: [u8; 16],
    /// Sealing key (HMAC-SHA256 chain); `None` for a plain SHA-256 chain.
    pub key: Option<[u8; KEY_BYTES]>,
    /// Rotation threshold (at least [`MIN_FILE_BYTES`]).
    pub max_file_bytes: u64,
    /// Sequence number of the first record (1 for a new log).
    pub first_seq: u64,
}

/// Why a writer could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    BufferTooSmall { len: usize },
    FileLimitTooSmall { bytes: u64 },
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::BufferTooSmall { len } => {
                write!(
                    f,
                    "writer buffer of {len} bytes is below the minimum {MIN_WRITER_BUFFER}"
                )
            }
            ConfigError::FileLimitTooSmall { bytes } => {
                write!(
                    f,
                    "file size limit {bytes} is below the minimum {MIN_FILE_BYTES}"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// Counters of what reached the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Event records durably written.
    pub events_written: u64,
    /// Drops reported in durably written drop records, per reason.
    pub drops_recorded: [u64; DropReason::COUNT],
    /// Failed sink operations (writes, truncates, rotations).
    pub write_failures: u64,
    /// Files started (1 + rotations).
    pub files: u32,
    /// Bytes durably written.
    pub bytes_written: u64,
    /// Event records lost because a write failed (counted as
    /// [`DropReason::WriteFailed`], whether or not the drop record has
    /// reached the disk yet).
    pub write_failed_records: u64,
    /// Bytes of batches that could not be written.
    pub write_failed_bytes: u64,
    /// The log file was found deleted, renamed away or replaced while
    /// being written, and a new file was started.
    pub files_lost: u32,
}

/// What a log continued in another file needs from the writer that ended
/// the previous one ([`LogWriter::end`] → [`LogWriter::continue_from`]): where the
/// sequence continues, the losses not yet written as drop records, and the
/// queue drop totals already accounted (so they are not reported twice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carry {
    /// Sequence number of the next record (the new file's `first_seq`).
    pub next_seq: u64,
    /// Losses per reason not yet in a durable drop record.
    pub pending: [u64; DropReason::COUNT],
    /// When the oldest of each reason's pending losses happened.
    pub pending_since: [u64; DropReason::COUNT],
    /// The queue's drop totals already accounted, per reason.
    pub seen_queue_drops: [u64; DropReason::COUNT],
}

/// A writer's end ([`LogWriter::end`]).
#[derive(Debug)]
pub struct Ended<S: Sink> {
    pub sink: S,
    pub stats: WriterStats,
    /// The sink error that kept the end (or the last batch) from the disk.
    pub error: Option<S::Error>,
    pub carry: Carry,
}

/// What has reached the sink.
#[derive(Clone, Debug)]
struct Durable {
    chain: Chain,
    next_seq: u64,
}

/// The writer: owns the sink and borrows the batch buffer.
#[derive(Debug)]
pub struct LogWriter<'b, S: Sink> {
    sink: S,
    /// Frames being batched (`buf[..used]`).
    buf: &'b mut [u8],
    /// Entries are popped here.
    scratch: &'b mut [u8],
    used: usize,
    chain: Chain,
    next_seq: u64,
    durable: Durable,
    /// Durable length of the current file.
    file_offset: u64,
    /// A failed write may have left bytes past `file_offset`.
    dirty_tail: bool,
    file_index: u32,
    /// Header parameters of the current file (to rebuild it on rollback).
    file_prev_chain: [u8; 32],
    file_created_ns: u64,
    file_first_seq: u64,
    /// The current file ended with `End(Rotated)` but the next one could
    /// not be opened yet.
    rotate_pending: bool,
    /// Batch contents, for rollback accounting.
    batch_events: u64,
    batch_drops: [u64; DropReason::COUNT],
    pending: [u64; DropReason::COUNT],
    pending_since: [u64; DropReason::COUNT],
    /// `after_seq` of the pending [`DropReason::LogLost`] record.
    lost_after: u64,
    seen_queue_drops: [u64; DropReason::COUNT],
    host: heapless::String<MAX_HOST_BYTES>,
    boot_id: [u8; 16],
    session_id: [u8; 16],
    key: Option<[u8; KEY_BYTES]>,
    max_file_bytes: u64,
    stats: WriterStats,
    last_error: Option<S::Error>,
}

impl<'b, S: Sink> LogWriter<'b, S> {
    /// Checks a buffer length and configuration without starting anything.
    pub fn check(buf_len: usize, cfg: &WriterConfig<'_>) -> Result<(), ConfigError> {
        if buf_len < MIN_WRITER_BUFFER {
            return Err(ConfigError::BufferTooSmall { len: buf_len });
        }
        if cfg.max_file_bytes < MIN_FILE_BYTES {
            return Err(ConfigError::FileLimitTooSmall {
                bytes: cfg.max_file_bytes,
            });
        }
        Ok(())
    }

    /// Starts a log in `sink` (whose current file must be empty), writing
    /// the header of file 0 now. `buf` is the batch buffer. On a bad
    /// configuration the sink is handed back untouched.
    pub fn new(
        sink: S,
        buf: &'b mut [u8],
        cfg: &WriterConfig<'_>,
        now_ns: u64,
    ) -> Result<Self, (ConfigError, S)> {
        Self::start(sink, buf, cfg, None, now_ns)
    }

    /// Like [`LogWriter::new`], continuing an existing log: the sink's
    /// current (empty) file becomes file `at.file_index`, its header
    /// carries `at.prev_chain`, and a known loss at the previous file's
    /// tail is written first as a [`DropReason::LogLost`] record.
    pub fn resume(
        sink: S,
        buf: &'b mut [u8],
        cfg: &WriterConfig<'_>,
        at: ResumeAt,
        now_ns: u64,
    ) -> Result<Self, (ConfigError, S)> {
        Self::start(sink, buf, cfg, Some(at), now_ns)
    }

    fn start(
        sink: S,
        buf: &'b mut [u8],
        cfg: &WriterConfig<'_>,
        at: Option<ResumeAt>,
        now_ns: u64,
    ) -> Result<Self, (ConfigError, S)> {
        if let Err(e) = Self::check(buf.len(), cfg) {
            return Err((e, sink));
        }
        let mut w = Self::fresh(sink, buf, cfg, at, now_ns);
        w.first_file(at, now_ns);
        Ok(w)
    }

    /// [`LogWriter::new`] into `slot` (whatever it held is dropped). For
    /// callers with a small stack (a kernel thread): the writer is built
    /// once, in place, instead of being returned through the stack.
    pub fn new_in(
        slot: &mut Option<Self>,
        sink: S,
        buf: &'b mut [u8],
        cfg: &WriterConfig<'_>,
        now_ns: u64,
    ) -> Result<(), (ConfigError, S)> {
        if let Err(e) = Self::check(buf.len(), cfg) {
            return Err((e, sink));
        }
        Self::fresh_in(slot, sink, buf, cfg, now_ns);
        if let Some(w) = slot.as_mut() {
            w.first_file(None, now_ns);
        }
        Ok(())
    }

    /// Writes the first file's header (and a known loss before it).
    fn first_file(&mut self, at: Option<ResumeAt>, now_ns: u64) {
        self.begin_file(now_ns);
        if let Some((after, count)) = at.and_then(|a| a.lost) {
            self.lost_after = after;
            self.add_pending(DropReason::LogLost as usize, count, now_ns);
            self.emit_pending_drops(now_ns);
        }
        // A failure here is accounted like any other; the header is
        // rebuilt and retried with the next batch.
        let _ = self.flush(now_ns);
    }

    /// [`LogWriter::fresh`] written straight into `slot`.
    #[inline(never)]
    fn fresh_in(
        slot: &mut Option<Self>,
        sink: S,
        buf: &'b mut [u8],
        cfg: &WriterConfig<'_>,
        now_ns: u64,
    ) {
        *slot = Some(Self::fresh(sink, buf, cfg, None, now_ns));
    }

    /// The writer's initial state (checked configuration).
    #[inline(always)]
    fn fresh(
        sink: S,
        buf: &'b mut [u8],
        cfg: &WriterConfig<'_>,
        at: Option<ResumeAt>,
        now_ns: u64,
    ) -> Self {
        let split = buf.len() - SCRATCH;
        let (buf, scratch) = buf.split_at_mut(split);
        let mut host = heapless::String::new();
        // Cannot fail: clamped to the capacity.
        let _ = host.push_str(clamp_str(cfg.host, MAX_HOST_BYTES).0);
        let chain = Chain::start(&[], cfg.key.as_ref());
        LogWriter {
            sink,
            buf,
            scratch,
            used: 0,
            chain: chain.clone(),
            next_seq: cfg.first_seq,
            durable: Durable {
                chain,
                next_seq: cfg.first_seq,
            },
            file_offset: 0,
            dirty_tail: false,
            file_index: at.map_or(0, |a| a.file_index),
            file_prev_chain: at.map_or([0; 32], |a| a.prev_chain),
            file_created_ns: now_ns,
            file_first_seq: cfg.first_seq,
            rotate_pending: false,
            batch_events: 0,
            batch_drops: [0; DropReason::COUNT],
            pending: [0; DropReason::COUNT],
            pending_since: [0; DropReason::COUNT],
            lost_after: 0,
            seen_queue_drops: [0; DropReason::COUNT],
            host,
            boot_id: cfg.boot_id,
            session_id: cfg.session_id,
            key: cfg.key,
            max_file_bytes: cfg.max_file_bytes,
            stats: WriterStats {
                files: 1,
                ..WriterStats::default()
            },
            last_error: None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The most recent sink error, if the last flush failed.
    pub fn last_error(&self) -> Option<S::Error> {
        self.last_error
    }

    /// Drops not yet written as drop records (waiting for a working sink).
    pub fn pending_drops(&self) -> [u64; DropReason::COUNT] {
        self.pending
    }

    /// The sink (to inspect files in tests, or to close it).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The chain value over everything written so far (an anchor to store
    /// off the machine).
    pub fn chain_value(&self) -> [u8; 32] {
        self.durable.chain.value()
    }

    /// Writes the header of the current file into the (empty) buffer and
    /// restarts the chain from it.
    fn begin_file(&mut self, now_ns: u64) {
        debug_assert_eq!(self.used, 0);
        let header = FileHeader {
            host: &self.host,
            boot_id: self.boot_id,
            session_id: self.session_id,
            created_ns: self.file_created_ns,
            file_index: self.file_index,
            first_seq: self.file_first_seq,
            prev_chain: self.file_prev_chain,
            sealing: Chain::start(&[], self.key.as_ref()).sealing(),
        };
        // Cannot fail: the buffer holds MAX_HEADER and the host is clamped.
        let n = encode_header(&header, &mut self.buf[..MAX_HEADER]).unwrap_or(0);
        self.chain = Chain::start(&self.buf[..n], self.key.as_ref());
        self.used = n;
        // A lost file's record directly follows the header of the file
        // that replaces it.
        self.emit_drop(DropReason::LogLost, now_ns);
    }

    /// Drains every entry now in the queue into frames, accounts the
    /// queue's drop counters, writes drop records for pending losses and
    /// writes everything to the sink. Returns the events framed.
    pub fn drain<W: AsRef<[AtomicU64]>, const R: usize>(
        &mut self,
        consumer: &mut Consumer<'_, W, R>,
        now_ns: u64,
    ) -> u64 {
        let mut framed = 0;
        if self.used == 0 && self.file_offset > 0 && !self.rotate_pending && !self.sink.is_current()
        {
            self.file_lost(now_ns);
        }
        // Round-robin over rings until all are empty; a fixed number of
        // passes bounds the work when producers keep pushing.
        for _pass in 0..4 {
            let mut any = false;
            for ring in 0..R {
                // Bounded per ring per pass so one busy CPU cannot starve
                // the others' rings.
                for _ in 0..4096 {
                    let len = match consumer.pop(ring, self.scratch) {
                        None => break,
                        Some(Ok(len)) => len,
                        Some(Err(_)) => continue, // counted as a drop by the queue
                    };
                    any = true;
                    framed += 1;
                    self.append_event_payload(len, now_ns);
                }
            }
            if !any {
                break;
            }
        }
        let totals = consumer.queue().drop_totals();
        for (r, total) in totals.iter().enumerate() {
            let delta = total.wrapping_sub(self.seen_queue_drops[r]);
            self.seen_queue_drops[r] = *total;
            self.add_pending(r, delta, now_ns);
        }
        self.emit_pending_drops(now_ns);
        let _ = self.flush(now_ns);
        framed
    }

    /// The current file is gone (deleted, renamed away, replaced): what
    /// it held is lost to the log. Continue the chain in a new file whose
    /// first record says how many records went with the old one.
    fn file_lost(&mut self, now_ns: u64) {
        let lost = self.durable.next_seq - self.file_first_seq;
        self.stats.files_lost += 1;
        self.lost_after = self.file_first_seq.saturating_sub(1);
        if self.pending[DropReason::LogLost as usize] == 0 {
            self.pending_since[DropReason::LogLost as usize] = self.file_created_ns;
        }
        self.pending[DropReason::LogLost as usize] += lost;
        self.rotate_pending = true;
        // The new file's header is followed by the loss (or, if no file
        // can be created now, the first one that can).
        let _ = self.try_rotate(now_ns);
    }

    fn add_pending(&mut self, reason: usize, n: u64, now_ns: u64) {
        if n == 0 {
            return;
        }
        if self.pending[reason] == 0 {
            self.pending_since[reason] = now_ns;
        }
        self.pending[reason] += n;
    }

    /// Counts losses the caller knows of (an event source overflow seen on
    /// the flush thread); they are written as a drop record.
    pub fn note_drops(&mut self, reason: DropReason, n: u64, now_ns: u64) {
        self.add_pending(reason as usize, n, now_ns);
    }

    /// Frames one popped entry (`scratch[..len]`).
    fn append_event_payload(&mut self, len: usize, now_ns: u64) {
        if !self.make_room(FRAME_OVERHEAD + 11 + len, now_ns) {
            self.stats.write_failed_records += 1;
            self.add_pending(DropReason::WriteFailed as usize, 1, now_ns);
            return;
        }
        let limit = self.buf.len() - RESERVE;
        match encode_event_frame(
            self.next_seq,
            &self.scratch[..len],
            &mut self.chain,
            &mut self.buf[self.used..limit],
        ) {
            Ok(n) => {
                self.used += n;
                self.next_seq += 1;
                self.batch_events += 1;
            }
            // Only a corrupt entry can be too large: count it as lost.
            Err(_) => self.add_pending(DropReason::QueueFull as usize, 1, now_ns),
        }
    }

    /// Makes room for a frame of up to `need` bytes before the reserve:
    /// flushes a full buffer, rotates a full file. False if the sink is
    /// failing and the frame cannot be placed.
    fn make_room(&mut self, need: usize, now_ns: u64) -> bool {
        if self.rotate_pending && self.try_rotate(now_ns).is_err() {
            return false;
        }
        let projected = self.file_offset + (self.used + need + RESERVE) as u64;
        if projected > self.max_file_bytes && self.next_seq > self.file_first_seq {
            self.rotate(now_ns);
            if self.rotate_pending {
                return false;
            }
        }
        if self.used + need > self.buf.len() - RESERVE {
            // On failure the batch is rolled back and the buffer is empty
            // again (apart from a rebuilt header), so the frame still fits.
            let _ = self.flush(now_ns);
        }
        self.used + need <= self.buf.len() - RESERVE
    }

    /// Ends the current file and opens the next one.
    fn rotate(&mut self, now_ns: u64) {
        self.emit_pending_drops(now_ns);
        self.append_small(&Record::End(EndRecord {
            seq: self.next_seq,
            time_ns: now_ns,
            reason: EndReason::Rotated,
        }));
        self.next_seq += 1;
        if self.flush(now_ns).is_err() {
            // Rolled back, End record included: keep using this file.
            return;
        }
        self.rotate_pending = true;
        let _ = self.try_rotate(now_ns);
    }

    fn try_rotate(&mut self, now_ns: u64) -> Result<(), S::Error> {
        match self.sink.rotate(self.file_index + 1) {
            Ok(()) => {
                self.rotate_pending = false;
                self.file_index += 1;
                self.file_offset = 0;
                self.dirty_tail = false;
                self.file_prev_chain = self.durable.chain.value();
                self.file_created_ns = now_ns;
                self.file_first_seq = self.next_seq;
                self.stats.files += 1;
                self.begin_file(now_ns);
                if let Some((first, kept)) = self.sink.take_retired() {
                    let end = kept.unwrap_or(self.file_first_seq);
                    if end > first {
                        self.append_small(&Record::Dropped(DropRecord {
                            seq: self.next_seq,
                            time_ns: now_ns,
                            since_ns: now_ns,
                            after_seq: first.saturating_sub(1),
                            count: end - first,
                            reason: DropReason::Retention,
                        }));
                        self.next_seq += 1;
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.stats.write_failures += 1;
                self.last_error = Some(e);
                Err(e)
            }
        }
    }

    /// Appends a drop or end record into the reserve-backed space.
    fn append_small(&mut self, rec: &Record<'_>) {
        // Cannot fail: RESERVE keeps room for these small frames.
        if let Ok(n) = encode_frame(rec, &mut self.chain, &mut self.buf[self.used..]) {
            self.used += n;
        }
    }

    fn emit_pending_drops(&mut self, now_ns: u64) {
        if self.rotate_pending {
            return;
        }
        for reason in DropReason::ALL {
            self.emit_drop(reason, now_ns);
        }
    }

    /// Appends the drop record for `reason`'s pending losses, if any.
    fn emit_drop(&mut self, reason: DropReason, now_ns: u64) {
        let r = reason as usize;
        let count = self.pending[r];
        if count == 0 || self.rotate_pending {
            return;
        }
        let after_seq = if reason == DropReason::LogLost {
            self.lost_after
        } else {
            self.next_seq.saturating_sub(1)
        };
        self.append_small(&Record::Dropped(DropRecord {
            seq: self.next_seq,
            time_ns: now_ns,
            since_ns: self.pending_since[r],
            after_seq,
            count,
            reason,
        }));
        self.next_seq += 1;
        self.batch_drops[r] += count;
        self.pending[r] = 0;
    }

    /// Writes the batch. On failure rolls it back and accounts its
    /// contents as pending drops.
    pub fn flush(&mut self, now_ns: u64) -> Result<(), S::Error> {
        if self.used == 0 {
            return Ok(());
        }
        let result = self.write_batch();
        match result {
            Ok(()) => {
                self.file_offset += self.used as u64;
                self.stats.bytes_written += self.used as u64;
                self.stats.events_written += self.batch_events;
                for (r, n) in self.batch_drops.iter().enumerate() {
                    self.stats.drops_recorded[r] += n;
                }
                self.durable = Durable {
                    chain: self.chain.clone(),
                    next_seq: self.next_seq,
                };
                self.last_error = None;
            }
            Err(e) => {
                self.stats.write_failures += 1;
                self.last_error = Some(e);
                self.dirty_tail = true;
                // Keep what fits, whole frames only.
                let kept = self.salvage();
                if kept == self.used {
                    // Written after all, in pieces.
                    self.used = 0;
                    self.batch_events = 0;
                    self.batch_drops = [0; DropReason::COUNT];
                    return Ok(());
                }
                self.stats.write_failed_records += self.batch_events;
                self.stats.write_failed_bytes += (self.used - kept) as u64;
                // Count what the rest of the batch carried, then forget it.
                self.add_pending(DropReason::WriteFailed as usize, self.batch_events, now_ns);
                for r in 0..DropReason::COUNT {
                    let n = self.batch_drops[r];
                    self.add_pending(r, n, now_ns);
                }
                self.chain = self.durable.chain.clone();
                self.next_seq = self.durable.next_seq;
                self.used = 0;
                if self.file_offset == 0 {
                    self.begin_file(now_ns);
                }
            }
        }
        self.batch_events = 0;
        self.batch_drops = [0; DropReason::COUNT];
        if result.is_ok() {
            self.used = 0;
        }
        result
    }

    /// After a failed write of `buf[..used]`: writes it again in pieces
    /// of whole frames (the header whole and first), committing each piece
    /// that reaches the disk — chain, sequence, counters and durable length
    /// move past it — until one fails. Returns the bytes committed.
    fn salvage(&mut self) -> usize {
        if self.sink.truncate(self.file_offset).is_err() {
            return 0;
        }
        let mut pos = 0;
        if self.file_offset == 0 {
            let Ok((_, hlen)) = decode_header(&self.buf[..self.used]) else {
                return 0;
            };
            if self.sink.write_at(0, &self.buf[..hlen]).is_err() {
                return 0;
            }
            self.durable.chain = Chain::start(&self.buf[..hlen], self.key.as_ref());
            self.file_offset += hlen as u64;
            self.stats.bytes_written += hlen as u64;
            pos = hlen;
        }
        let mut piece = SALVAGE_PIECE;
        while pos < self.used {
            let (end, frames) = self.frames_end(pos, piece);
            if frames == 0 {
                break;
            }
            if self
                .sink
                .write_at(self.file_offset, &self.buf[pos..end])
                .is_ok()
            {
                self.commit_frames(pos, end);
                pos = end;
            } else if frames == 1 {
                break;
            } else {
                piece = 0;
            }
        }
        pos
    }

    /// End of the whole frames of `buf[pos..used]` that fit in `limit`
    /// bytes (at least one frame), and how many there are.
    fn frames_end(&self, pos: usize, limit: usize) -> (usize, usize) {
        let mut end = pos;
        let mut n = 0;
        while end < self.used {
            let FrameParse::Frame(f) = parse_frame(&self.buf[end..self.used]) else {
                break;
            };
            if n > 0 && end + f.total - pos > limit {
                break;
            }
            end += f.total;
            n += 1;
        }
        (end, n)
    }

    /// The frames of `buf[pos..end]` reached the disk: make them durable
    /// and move their counts from the batch to the stats.
    fn commit_frames(&mut self, mut pos: usize, end: usize) {
        while pos < end {
            let FrameParse::Frame(f) = parse_frame(&self.buf[pos..end]) else {
                break;
            };
            self.durable.chain.advance(&f.len_le, f.body);
            if let Ok(rec) = decode_body(f.body) {
                self.durable.next_seq = rec.seq() + 1;
                match rec {
                    Record::Event(_) => {
                        self.stats.events_written += 1;
                        self.batch_events = self.batch_events.saturating_sub(1);
                    }
                    Record::Dropped(d) => {
                        let r = d.reason as usize;
                        self.stats.drops_recorded[r] += d.count;
                        self.batch_drops[r] = self.batch_drops[r].saturating_sub(d.count);
                    }
                    Record::End(_) => {}
                }
            }
            self.file_offset += f.total as u64;
            self.stats.bytes_written += f.total as u64;
            pos += f.total;
        }
    }

    fn write_batch(&mut self) -> Result<(), S::Error> {
        if self.dirty_tail {
            self.sink.truncate(self.file_offset)?;
            self.dirty_tail = false;
        }
        self.sink.write_at(self.file_offset, &self.buf[..self.used])
    }

    /// Drains the queue until it is empty, ends the file with `End(Shutdown)`,
    /// flushes and syncs. Returns the sink and the final counters; on
    /// error the counters say what was lost.
    pub fn finish<W: AsRef<[AtomicU64]>, const R: usize>(
        mut self,
        consumer: &mut Consumer<'_, W, R>,
        now_ns: u64,
    ) -> Result<(S, WriterStats), (S, WriterStats, S::Error)> {
        // Until a drain finds nothing: producers have stopped, so this
        // ends, and nothing queued before the shutdown is left behind.
        while self.drain(consumer, now_ns) > 0 {}
        self.close(now_ns)
    }

    /// Ends the current file like [`LogWriter::close`] (pending drop
    /// records, `End(Shutdown)`, flush, sync) *without* draining the queue,
    /// and hands over what the next writer needs ([`Carry`]): whatever could
    /// not be written — the final batch on a failing sink included — is in
    /// `carry.pending`, never forgotten. Bounded work: used to switch files
    /// while producers keep producing.
    pub fn end(mut self, now_ns: u64) -> Ended<S> {
        let (stats, error, carry) = self.end_in_place(now_ns);
        Ended {
            sink: self.sink,
            stats,
            error,
            carry,
        }
    }

    /// [`LogWriter::end`] without giving up the writer (so a caller that
    /// keeps it in place need not move it); afterwards only
    /// [`LogWriter::sink`] and dropping it are meaningful.
    pub fn end_in_place(&mut self, now_ns: u64) -> (WriterStats, Option<S::Error>, Carry) {
        let mut error = None;
        if self.rotate_pending {
            if let Err(e) = self.try_rotate(now_ns) {
                error = Some(e);
            }
        }
        if error.is_none() {
            self.emit_pending_drops(now_ns);
            self.append_small(&Record::End(EndRecord {
                seq: self.next_seq,
                time_ns: now_ns,
                reason: EndReason::Shutdown,
            }));
            self.next_seq += 1;
            if let Err(e) = self.flush(now_ns).and_then(|()| self.sink.sync()) {
                error = Some(e);
            }
        }
        let carry = Carry {
            next_seq: self.next_seq,
            pending: self.pending,
            pending_since: self.pending_since,
            seen_queue_drops: self.seen_queue_drops,
        };
        (self.stats, error, carry)
    }

    /// Continues a log ended by [`LogWriter::end`]: takes over its pending
    /// losses (written as drop records with the next batch) and its queue
    /// drop accounting. Call right after [`LogWriter::new`] with
    /// `first_seq = carry.next_seq`.
    pub fn continue_from(&mut self, carry: &Carry) {
        for r in 0..DropReason::COUNT {
            if carry.pending[r] != 0 {
                if self.pending[r] == 0 {
                    self.pending_since[r] = carry.pending_since[r];
                }
                self.pending[r] += carry.pending[r];
            }
        }
        self.seen_queue_drops = carry.seen_queue_drops;
    }

    /// Like [`LogWriter::finish`] without a queue.
    pub fn close(mut self, now_ns: u64) -> Result<(S, WriterStats), (S, WriterStats, S::Error)> {
        if self.rotate_pending {
            if let Err(e) = self.try_rotate(now_ns) {
                return Err((self.sink, self.stats, e));
            }
        }
        self.emit_pending_drops(now_ns);
        self.append_small(&Record::End(EndRecord {
            seq: self.next_seq,
            time_ns: now_ns,
            reason: EndReason::Shutdown,
        }));
        self.next_seq += 1;
        let r = self.flush(now_ns).and_then(|()| self.sink.sync());
        match r {
            Ok(()) => Ok((self.sink, self.stats)),
            Err(e) => Err((self.sink, self.stats, e)),
        }
    }
}

//! The host side of the flush path: a [`Sink`] over `std::fs::File` and the
//! flush thread that drives [`fltpolicy_core::record::writer::LogWriter`].
//!
//! The Windows driver runs the same `LogWriter` over FltWriteFile on its own
//! file object from a system thread; this module is that thread and that
//! file for Linux and for `fltpolicy replay`.
//!
//! Producers call [`AuditQueue::push`], which never blocks: it writes into
//! the lock-free queue and, past the high-water mark, unparks the flush
//! thread (`Thread::unpark` never waits). The flush thread wakes on that
//! signal or on its timer, drains everything, and writes it in large
//! batches. [`FlushThread::shutdown`] stops it after a final drain.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool as StdBool, AtomicU64 as StdU64, Ordering as StdOrdering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use fltpolicy_core::queue::{Pushed, Queue, StorageError, MIN_RING_WORDS};
use fltpolicy_core::record::writer::{
    ConfigError, LogWriter, ResumeAt, Sink, WriterConfig, WriterStats, MIN_WRITER_BUFFER,
};
use fltpolicy_core::record::{DropReason, EventData};
use fltpolicy_core::sync::AtomicU64;

/// Rings of the host queue. Producers map to rings by thread; 16 covers
/// the producer threads of the Linux engine and of any test with room.
pub const HOST_RINGS: usize = 16;
/// Words per ring on the host: 64 Ki words = 512 KiB per ring, 8 MiB in
/// all — a few seconds of a busy machine's events between flushes.
pub const HOST_RING_WORDS: usize = 1 << 16;
/// Words per ring for a queue of `mib` MiB in all (the largest power of
/// two that fits, at least [`MIN_RING_WORDS`]).
pub fn ring_words_for_mib(mib: u32) -> usize {
    let words = (u64::from(mib) << 20) / 8 / HOST_RINGS as u64;
    let pow = if words == 0 {
        0
    } else {
        1u64 << (63 - words.leading_zeros())
    };
    (pow as usize).max(MIN_RING_WORDS)
}

/// Batch buffer of the flush thread: 1 MiB writes.
pub const BATCH_BYTES: usize = 1 << 20;
/// Default rotation size: 64 MiB files are quick to verify and copy.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;
/// Default flush interval: an event reaches the disk within 200 ms.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// The file of rotation `index` of the log whose first file is `base`:
/// `base` itself for 0, `base.N` after.
pub fn rotated_path(base: &Path, index: u32) -> PathBuf {
    if index == 0 {
        base.to_path_buf()
    } else {
        let mut s = base.as_os_str().to_owned();
        s.push(format!(".{index}"));
        PathBuf::from(s)
    }
}

/// Every existing file of the log whose first file is `base` (`base`,
/// `base.1`, `base.2`, ...), in index order. Gaps are allowed: after a
/// deleted file or retention, `base` itself may be gone while `base.7`
/// continues the chain.
pub fn rotated_files(base: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    if base.is_file() {
        found.push((0, base.to_path_buf()));
    }
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = base.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let Some(idx) = n
                .strip_prefix(name.as_str())
                .and_then(|r| r.strip_prefix('.'))
                .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|r| r.parse::<u32>().ok())
                .filter(|&i| i > 0)
            else {
                continue;
            };
            let p = rotated_path(base, idx);
            if p.is_file() {
                found.push((idx, p));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// A [`Sink`] writing the rotated files `base`, `base.1`, ...
#[derive(Debug)]
pub struct FileSink {
    base: PathBuf,
    /// The current file's path.
    path: PathBuf,
    file: File,
    /// fsync on every batch (durability against power loss at the cost of
    /// throughput); the default syncs only at rotation and shutdown.
    sync_each_batch: bool,
    retention: Option<Retention>,
    /// Files removed by retention so far.
    removed: Vec<PathBuf>,
    /// Records removed by retention not yet declared in the log:
    /// `(first removed, first kept)` ([`Sink::take_retired`]).
    retired: Option<(u64, Option<u64>)>,
}

/// How much of a log to keep: after each rotation the oldest files are
/// removed (never the one being written) while the log's files together
/// exceed `max_bytes`, or the oldest was last written more than `max_age`
/// ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: u64,
    pub max_age: Option<Duration>,
}

/// I/O failures as a `Copy` value (the core's sink errors must be `Copy`).
/// `Debug` prints the OS message, like `Display`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SinkError {
    pub kind: io::ErrorKind,
    pub os_code: Option<i32>,
}

impl From<io::Error> for SinkError {
    fn from(e: io::Error) -> Self {
        SinkError {
            kind: e.kind(),
            os_code: e.raw_os_error(),
        }
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.os_code {
            Some(c) => write!(f, "{}", io::Error::from_raw_os_error(c)),
            None => write!(f, "{}", io::Error::from(self.kind)),
        }
    }
}

impl std::error::Error for SinkError {}

impl std::fmt::Debug for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl FileSink {
    /// Creates the first file `base` (which must not exist: a log is never
    /// appended to by a new session, so chains never mix).
    pub fn create(base: impl AsRef<Path>) -> io::Result<FileSink> {
        let base = base.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&base)?;
        Ok(FileSink {
            path: base.clone(),
            base,
            file,
            sync_each_batch: false,
            retention: None,
            removed: Vec::new(),
            retired: None,
        })
    }

    /// Opens the log `base` for a writer that starts now: a new log when
    /// no file of it exists, otherwise a continuation (a restarted
    /// service). The existing tail is checked first: the last file is read
    /// (with `key` for a sealed log), a torn tail — a record a crash cut
    /// short — is truncated to the last whole record, and the new writer
    /// continues the chain in the next rotated file. See [`Continuation`].
    pub fn open_log(
        base: impl AsRef<Path>,
        key: Option<[u8; 32]>,
    ) -> Result<(FileSink, Option<Continuation>), OpenLogError> {
        let base = base.as_ref().to_path_buf();
        let mut files = rotated_files(&base);
        // Files created but never written (a writer stopped at once) hold
        // nothing: they are removed, and the log goes on from the one
        // before.
        while let Some(last) = files.last() {
            if std::fs::metadata(last).is_ok_and(|m| m.len() == 0) {
                std::fs::remove_file(last).map_err(|source| OpenLogError::Create {
                    path: last.clone(),
                    source,
                })?;
                files.pop();
            } else {
                break;
            }
        }
        let Some(last) = files.last() else {
            let sink = FileSink::create(&base).map_err(|source| OpenLogError::Create {
                path: base.clone(),
                source,
            })?;
            return Ok((sink, None));
        };
        let cont = continuation(last, key)?;
        let path = rotated_path(&base, cont.resume.file_index);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| OpenLogError::Create {
                path: path.clone(),
                source,
            })?;
        Ok((
            FileSink {
                base,
                path,
                file,
                sync_each_batch: false,
                retention: None,
                removed: Vec::new(),
                retired: None,
            },
            Some(cont),
        ))
    }

    /// Sets fsync after every batch.
    pub fn sync_each_batch(mut self, on: bool) -> FileSink {
        self.sync_each_batch = on;
        self
    }

    /// The first file's path.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The file being written now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the log within `r` (applied at each rotation).
    pub fn retain(mut self, r: Retention) -> FileSink {
        self.retention = Some(r);
        self
    }

    /// Files removed by retention so far, oldest first.
    pub fn removed(&self) -> &[PathBuf] {
        &self.removed
    }

    /// Removes the oldest files beyond the retention limits.
    fn apply_retention(&mut self) {
        let Some(r) = self.retention else {
            return;
        };
        let files = rotated_files(&self.base);
        let sizes: Vec<(PathBuf, u64, Option<std::time::SystemTime>)> = files
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                Some((p, m.len(), m.modified().ok()))
            })
            .collect();
        let mut total: u64 = sizes.iter().map(|(_, n, _)| n).sum();
        // First sequence number of each file (from its header), to declare
        // which records go with the files removed.
        let first_seqs: Vec<Option<u64>> = sizes.iter().map(|(p, _, _)| first_seq_of(p)).collect();
        for (i, (p, n, modified)) in sizes.into_iter().enumerate() {
            if p == self.path {
                break;
            }
            let too_old = match (r.max_age, modified) {
                (Some(age), Some(m)) => m.elapsed().is_ok_and(|e| e > age),
                _ => false,
            };
            if total <= r.max_bytes && !too_old {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                total -= n;
                self.removed.push(p);
                // The records from this file's first up to the next file's
                // first are gone (the next file may be the one just
                // created, whose first the writer knows). A file whose
                // header cannot be read (torn at creation) adds nothing
                // it cannot prove.
                if let Some(Some(from)) = first_seqs.get(i) {
                    let next = first_seqs.get(i + 1).copied().flatten();
                    self.retired = Some(match self.retired {
                        Some((first, _)) => (first, next),
                        None => (*from, next),
                    });
                }
            }
        }
    }
}

/// How a writer continues an existing log: where (for
/// [`LogWriter::resume`]) and what was found at the old tail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    pub resume: ResumeAt,
    /// Sequence number of the new writer's first record.
    pub first_seq: u64,
    /// The last file found.
    pub previous: PathBuf,
    /// How that file ended: `"shutdown"`, `"rotated"`, or `None` (the
    /// writer was killed or crashed).
    pub previous_end: Option<&'static str>,
    /// A torn tail cut off the previous file: (offset, bytes).
    pub truncated: Option<(u64, u64)>,
}

/// Why an existing log could not be continued or a new one created.
#[derive(Debug, thiserror::Error)]
pub enum OpenLogError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot continue the log: {0}")]
    Read(#[from] crate::reader::ReadError),
    #[error("cannot continue the log: {}: {problem}; move it away (or give its key) to start a new log", path.display())]
    Damaged { path: PathBuf, problem: String },
    #[error("cannot cut the torn tail of {}: {source}", path.display())]
    Truncate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Reads the last file of a log and works out where a new writer goes on.
fn continuation(last: &Path, key: Option<[u8; 32]>) -> Result<Continuation, OpenLogError> {
    use crate::reader::{LogReader, ReadError, ReadOptions};
    let mut reader = LogReader::open_with(&[last], ReadOptions { key, anchor: None })?;
    let mut torn = None;
    for item in reader.by_ref() {
        match item {
            Ok(_) => {}
            Err(ReadError::TornTail { offset, bytes, .. }) => torn = Some((offset, bytes)),
            Err(e) => {
                return Err(OpenLogError::Damaged {
                    path: last.to_path_buf(),
                    problem: e.to_string(),
                })
            }
        }
    }
    let info = &reader.files()[0];
    let damaged = |problem: &str| OpenLogError::Damaged {
        path: last.to_path_buf(),
        problem: problem.to_owned(),
    };
    let Some(header) = &info.header else {
        return Err(damaged("no readable header"));
    };
    let Some(chain) = info.summary.end_chain else {
        return Err(damaged(
            "its chain cannot be checked (a sealed log needs its key)",
        ));
    };
    let last_seq = info
        .summary
        .last_seq
        .unwrap_or(header.first_seq.saturating_sub(1));
    let truncated = match torn {
        Some((offset, bytes)) => {
            let f = OpenOptions::new()
                .write(true)
                .open(last)
                .and_then(|f| f.set_len(offset).and_then(|()| f.sync_all()))
                .map_err(|source| OpenLogError::Truncate {
                    path: last.to_path_buf(),
                    source,
                });
            f?;
            Some((offset, bytes))
        }
        None => None,
    };
    // The torn record is lost (it took the next seq).
    let lost = truncated.map(|_| (last_seq, 1));
    let first_seq = last_seq + 1 + lost.map_or(0, |(_, n)| n);
    Ok(Continuation {
        resume: ResumeAt {
            file_index: header.file_index + 1,
            prev_chain: chain,
            lost,
        },
        first_seq,
        previous: last.to_path_buf(),
        previous_end: info.summary.end.map(|e| match e {
            fltpolicy_core::record::EndReason::Rotated => "rotated",
            fltpolicy_core::record::EndReason::Shutdown => "shutdown",
        }),
        truncated,
    })
}

/// The first sequence number a log file's header declares, if readable.
fn first_seq_of(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut head = vec![0u8; fltpolicy_core::record::frame::MAX_HEADER];
    let mut f = File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    fltpolicy_core::record::frame::decode_header(&head[..n])
        .ok()
        .map(|(h, _)| h.first_seq)
}

impl Sink for FileSink {
    type Error = SinkError;

    fn take_retired(&mut self) -> Option<(u64, Option<u64>)> {
        self.retired.take()
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SinkError> {
        write_all_at(&self.file, bytes, offset)?;
        if self.sync_each_batch {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<(), SinkError> {
        Ok(self.file.set_len(len)?)
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        Ok(self.file.sync_data()?)
    }

    fn rotate(&mut self, index: u32) -> Result<(), SinkError> {
        // A file already gone (deleted, its file system unmounted) cannot
        // be synced; that must not keep the log from going on.
        let _ = self.file.sync_data();
        let path = rotated_path(&self.base, index);
        let next = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        self.file = next;
        self.path = path;
        self.apply_retention();
        Ok(())
    }

    #[cfg(unix)]
    fn is_current(&mut self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(open) = self.file.metadata() else {
            return true;
        };
        if open.nlink() == 0 {
            return false;
        }
        match std::fs::metadata(&self.path) {
            Ok(named) => named.ino() == open.ino() && named.dev() == open.dev(),
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        }
    }
}

/// Positional write of all of `bytes` (pwrite on Unix, an overlapped-offset
/// WriteFile on Windows): the writer never depends on the file cursor.
#[cfg(unix)]
fn write_all_at(f: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, bytes, offset)
}

#[cfg(windows)]
fn write_all_at(f: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(f, bytes, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Nanoseconds since the Unix epoch now.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The host queue type.
pub type HostQueue = Queue<Box<[AtomicU64]>, HOST_RINGS>;

/// Allocates a host queue with `ring_words` words per ring (a power of two
/// of at least [`MIN_RING_WORDS`]).
pub fn new_queue(ring_words: usize) -> Result<HostQueue, StorageError> {
    let words: Box<[AtomicU64]> = (0..ring_words * HOST_RINGS)
        .map(|_| AtomicU64::new(0))
        .collect();
    Queue::new(words)
}

thread_local! {
    /// This thread's ring hint: assigned round-robin at first use so that
    /// up to HOST_RINGS producer threads never share a ring.
    static HINT: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, StdOrdering::Relaxed)
    };
}

/// The producers' handle: the queue plus the flush thread to wake.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    queue: Arc<HostQueue>,
    flusher: Thread,
    wake_pending: Arc<StdBool>,
    live: Arc<LiveStats>,
}

/// The flush thread's counters, readable while it runs (`status`): what
/// reached the disk and what a failing disk or a lost file cost, at once,
/// not only at shutdown.
#[derive(Debug, Default)]
pub struct LiveStats {
    events_written: StdU64,
    write_failures: StdU64,
    write_failed_records: StdU64,
    write_failed_bytes: StdU64,
    files_lost: StdU64,
    failing: StdBool,
}

/// A snapshot of [`LiveStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterHealth {
    /// Event records durably written.
    pub events_written: u64,
    /// Failed writes (each batch or piece the disk refused).
    pub write_failures: u64,
    /// Event records lost because writing failed (`write_failed` drops).
    pub write_failed_records: u64,
    /// Bytes that could not be written.
    pub write_failed_bytes: u64,
    /// Log files found deleted, renamed away or replaced while written.
    pub files_lost: u64,
    /// The last write failed (and no write has succeeded since).
    pub failing: bool,
}

impl LiveStats {
    fn store(&self, st: &WriterStats, failing: bool) {
        let o = StdOrdering::Relaxed;
        self.events_written.store(st.events_written, o);
        self.write_failures.store(st.write_failures, o);
        self.write_failed_records.store(st.write_failed_records, o);
        self.write_failed_bytes.store(st.write_failed_bytes, o);
        self.files_lost.store(u64::from(st.files_lost), o);
        self.failing.store(failing, o);
    }

    /// The counters now.
    pub fn snapshot(&self) -> WriterHealth {
        let o = StdOrdering::Relaxed;
        WriterHealth {
            events_written: self.events_written.load(o),
            write_failures: self.write_failures.load(o),
            write_failed_records: self.write_failed_records.load(o),
            write_failed_bytes: self.write_failed_bytes.load(o),
            files_lost: self.files_lost.load(o),
            failing: self.failing.load(o),
        }
    }
}

impl AuditQueue {
    /// Pushes one event; never blocks. On `Err` the drop was counted and
    /// will appear in the log as a drop record.
    pub fn push(&self, data: &EventData<'_>) -> Result<(), DropReason> {
        let hint = HINT.with(|h| *h);
        let r = self.queue.push(hint, &data.clamped());
        match r {
            Ok(Pushed { wake_flusher: true }) | Err(DropReason::QueueFull) => self.wake(),
            _ => {}
        }
        r.map(|_| ())
    }

    /// Pushes one event, waiting for room instead of dropping. For tools
    /// that replay recorded events (`fltpolicy replay`) and must not lose
    /// any; an enforcement point's callbacks use [`AuditQueue::push`].
    /// Only valid while this thread is its ring's sole producer.
    pub fn push_waiting(&self, data: &EventData<'_>) -> Result<(), DropReason> {
        let hint = HINT.with(|h| *h);
        let data = data.clamped();
        while !self
            .queue
            .has_room(hint, fltpolicy_core::queue::MAX_ENTRY_BYTES)
        {
            self.wake();
            thread::sleep(Duration::from_micros(50));
        }
        let r = self.queue.push(hint, &data);
        if let Ok(Pushed { wake_flusher: true }) = r {
            self.wake();
        }
        r.map(|_| ())
    }

    /// Counts events lost by the event source (fanotify overflow).
    pub fn count_source_drop(&self, n: u64) {
        self.count_upstream_drop(DropReason::KernelOverflow, n);
    }

    /// Counts `n` events lost before they reached the queue, for `reason`
    /// (`KernelOverflow`: the event source lost them; `Unresolved`: the
    /// engine could not resolve their paths, so could not evaluate them).
    /// The flush thread turns the count into a drop record like any other.
    pub fn count_upstream_drop(&self, reason: DropReason, n: u64) {
        self.queue.count_external_drop(reason, n);
        self.wake();
    }

    /// Asks the flush thread to drain now (never blocks).
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, StdOrdering::AcqRel) {
            self.flusher.unpark();
        }
    }

    /// The queue itself.
    pub fn queue(&self) -> &HostQueue {
        &self.queue
    }

    /// The flush thread's counters now (write failures, lost files).
    pub fn writer_health(&self) -> WriterHealth {
        self.live.snapshot()
    }
}

/// Receives one line per writer incident, as it happens: a write failure
/// episode starts (at most one line per [`NOTICE_INTERVAL`]), writing
/// works again, the log file was lost and a new one started. `fltpolicy
/// run` prints them on stderr.
#[derive(Clone)]
pub struct Notifier(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

/// Shortest time between two "write failed" notices: a disk that keeps
/// failing and recovering does not flood the terminal (the counters in
/// `status` keep counting every failure).
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(10);

/// Settings of a flush thread.
#[derive(Clone, Debug)]
pub struct FlushConfig {
    pub host: String,
    pub boot_id: [u8; 16],
    pub session_id: [u8; 16],
    pub key: Option<[u8; 32]>,
    pub max_file_bytes: u64,
    pub interval: Duration,
    pub ring_words: usize,
    pub batch_bytes: usize,
    /// Where incident notices go (none: counted only).
    pub notify: Option<Notifier>,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            host: host_name(),
            boot_id: boot_id(),
            session_id: random_id(),
            key: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            interval: DEFAULT_FLUSH_INTERVAL,
            ring_words: HOST_RING_WORDS,
            batch_bytes: BATCH_BYTES,
            notify: None,
        }
    }
}

/// Why a flush thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("queue storage: {0}")]
    Storage(StorageError),
    #[error("writer: {0}")]
    Config(ConfigError),
    #[error("cannot spawn the flush thread: {0}")]
    Spawn(io::Error),
}

/// What the flush thread returns: the sink and the final counters, or
/// also the error that kept the last batch from the disk.
pub type FlushResult<S> = Result<(S, WriterStats), (S, WriterStats, <S as Sink>::Error)>;

/// The running flush thread.
#[derive(Debug)]
pub struct FlushThread<S: Sink + Send + 'static> {
    handle: JoinHandle<FlushResult<S>>,
    stop: Arc<StdBool>,
    producers: AuditQueue,
}

impl<S: Sink + Send + 'static> FlushThread<S>
where
    S::Error: Send,
{
    /// Starts a log in `sink` and the thread that feeds it.
    pub fn start(sink: S, cfg: FlushConfig) -> Result<FlushThread<S>, StartError> {
        Self::start_at(sink, cfg, None)
    }

    /// Like [`FlushThread::start`], continuing an existing log at `at`
    /// (from [`FileSink::open_log`]) when given.
    pub fn start_at(
        sink: S,
        cfg: FlushConfig,
        at: Option<&Continuation>,
    ) -> Result<FlushThread<S>, StartError> {
        let resume = at.map(|c| (c.resume, c.first_seq));
        LogWriter::<S>::check(
            cfg.batch_bytes.max(MIN_WRITER_BUFFER),
            &WriterConfig {
                host: &cfg.host,
                boot_id: cfg.boot_id,
                session_id: cfg.session_id,
                key: cfg.key,
                max_file_bytes: cfg.max_file_bytes,
                first_seq: 1,
            },
        )
        .map_err(StartError::Config)?;
        let queue =
            Arc::new(new_queue(cfg.ring_words.max(MIN_RING_WORDS)).map_err(StartError::Storage)?);
        let stop = Arc::new(StdBool::new(false));
        let wake_pending = Arc::new(StdBool::new(false));
        let live = Arc::new(LiveStats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ConfigError>>();
        let handle = {
            let queue = Arc::clone(&queue);
            let stop = Arc::clone(&stop);
            let wake_pending = Arc::clone(&wake_pending);
            let live = Arc::clone(&live);
            thread::Builder::new()
                .name("fltpolicy-flush".into())
                .spawn(move || {
                    let shared = Shared {
                        queue: &queue,
                        stop: &stop,
                        wake_pending: &wake_pending,
                        live: &live,
                    };
                    flush_loop(sink, cfg, resume, &shared, ready_tx)
                })
                .map_err(StartError::Spawn)?
        };
        let flusher = handle.thread().clone();
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Config(e)),
            Err(_) => {
                return Err(StartError::Spawn(io::Error::other(
                    "flush thread exited before starting",
                )))
            }
        }
        Ok(FlushThread {
            handle,
            stop,
            producers: AuditQueue {
                queue,
                flusher,
                wake_pending,
                live,
            },
        })
    }

    /// A producer handle (cheap to clone, one per producer thread).
    pub fn producer(&self) -> AuditQueue {
        self.producers.clone()
    }

    /// Stops the thread after draining everything; returns the sink and the
    /// final counters (or the error that kept the last records from disk).
    pub fn shutdown(self) -> Result<(S, WriterStats), (S, WriterStats, S::Error)> {
        self.stop.store(true, StdOrdering::Release);
        self.handle.thread().unpark();
        match self.handle.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// What the flush thread shares with the producers.
struct Shared<'a> {
    queue: &'a HostQueue,
    stop: &'a StdBool,
    wake_pending: &'a StdBool,
    live: &'a LiveStats,
}

/// Turns changes of the writer's counters into notices.
struct Incidents {
    notify: Option<Notifier>,
    failing: bool,
    last_notice: Option<std::time::Instant>,
    failed_at_start: u64,
    files_lost: u32,
    lost_recorded: u64,
}

impl Incidents {
    fn say(&self, msg: &str) {
        if let Some(n) = &self.notify {
            (n.0)(msg);
        }
    }

    fn after_drain<S: Sink>(&mut self, w: &LogWriter<'_, S>) {
        let st = w.stats();
        let lost_now = st.drops_recorded[DropReason::LogLost as usize]
            + w.pending_drops()[DropReason::LogLost as usize];
        if st.files_lost != self.files_lost {
            self.files_lost = st.files_lost;
            self.say(&format!(
                "audit log: the log file was deleted, renamed or replaced while being written; {} records it held are lost; the chain continues in a new file (file {}), which starts with a log_lost record",
                lost_now - self.lost_recorded,
                st.files
            ));
            self.lost_recorded = lost_now;
        }
        match (w.last_error(), self.failing) {
            (Some(e), false) => {
                self.failing = true;
                self.failed_at_start = st.write_failed_records;
                let now = std::time::Instant::now();
                if self
                    .last_notice
                    .is_none_or(|t| now.duration_since(t) >= NOTICE_INTERVAL)
                {
                    self.last_notice = Some(now);
                    self.say(&format!(
                        "audit log: write failed: {e:?}; records that do not fit are counted as write_failed (see `status`) until writing works again"
                    ));
                }
            }
            (None, true) => {
                self.failing = false;
                self.say(&format!(
                    "audit log: writing works again; {} records were lost while it failed, recorded in the log as a write_failed drop record",
                    st.write_failed_records - self.failed_at_start
                ));
            }
            _ => {}
        }
    }
}

fn flush_loop<S: Sink>(
    sink: S,
    cfg: FlushConfig,
    resume: Option<(ResumeAt, u64)>,
    sh: &Shared<'_>,
    ready: std::sync::mpsc::Sender<Result<(), ConfigError>>,
) -> Result<(S, WriterStats), (S, WriterStats, S::Error)> {
    let mut buf = vec![0u8; cfg.batch_bytes.max(MIN_WRITER_BUFFER)];
    let wcfg = WriterConfig {
        host: &cfg.host,
        boot_id: cfg.boot_id,
        session_id: cfg.session_id,
        key: cfg.key,
        max_file_bytes: cfg.max_file_bytes,
        first_seq: resume.map_or(1, |(_, seq)| seq),
    };
    let started = match resume {
        Some((at, _)) => LogWriter::resume(sink, &mut buf, &wcfg, at, now_ns()),
        None => LogWriter::new(sink, &mut buf, &wcfg, now_ns()),
    };
    let mut writer = match started {
        Ok(w) => w,
        Err((e, sink)) => {
            // start() checked the configuration already; report anyway.
            let _ = ready.send(Err(e));
            return Ok((sink, WriterStats::default()));
        }
    };
    let Some(mut consumer) = sh.queue.consumer() else {
        // Only this thread ever takes the consumer of its own queue; end
        // the (empty) log cleanly rather than guess.
        return writer.close(now_ns());
    };
    let _ = ready.send(Ok(()));
    let mut incidents = Incidents {
        notify: cfg.notify.clone(),
        failing: false,
        last_notice: None,
        failed_at_start: 0,
        files_lost: 0,
        lost_recorded: 0,
    };
    incidents.after_drain(&writer);
    sh.live
        .store(&writer.stats(), writer.last_error().is_some());
    loop {
        let stopping = sh.stop.load(StdOrdering::Acquire);
        sh.wake_pending.store(false, StdOrdering::Release);
        if stopping {
            return writer.finish(&mut consumer, now_ns());
        }
        writer.drain(&mut consumer, now_ns());
        incidents.after_drain(&writer);
        sh.live
            .store(&writer.stats(), writer.last_error().is_some());
        if !sh.wake_pending.load(StdOrdering::Acquire) {
            thread::park_timeout(cfg.interval);
        }
    }
}

/// This machine's host name (Linux), or "unknown".
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This boot's id (Linux `boot_id`), or zeros.
pub fn boot_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let hex: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            let s = std::str::from_utf8(pair).unwrap_or("0");
            id[i] = u8::from_str_radix(s, 16).unwrap_or(0);
        }
    }
    id
}

/// 16 random bytes (the session id), from the OS.
pub fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut id);
    }
    if id == [0; 16] {
        // No /dev/urandom: time and pid still distinguish sessions.
        id[..8].copy_from_slice(&now_ns().to_le_bytes());
        id[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    id
}

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
use std::sync::atomic::{AtomicBool as StdBool, Ordering as StdOrdering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use fltpolicy_core::queue::{Pushed, Queue, StorageError, MIN_RING_WORDS};
use fltpolicy_core::record::writer::{
    ConfigError, LogWriter, Sink, WriterConfig, WriterStats, MIN_WRITER_BUFFER,
};
use fltpolicy_core::record::{DropReason, EventData};
use fltpolicy_core::sync::AtomicU64;

/// Rings of the host queue. Producers map to rings by thread; 16 covers
/// the producer threads of the Linux engine and of any test with room.
pub const HOST_RINGS: usize = 16;
/// Words per ring on the host: 64 Ki words = 512 KiB per ring, 8 MiB in
/// all — a few seconds of a busy machine's events between flushes.
pub const HOST_RING_WORDS: usize = 1 << 16;
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

/// Every existing file of the log whose first file is `base`, in order.
pub fn rotated_files(base: &Path) -> Vec<PathBuf> {
    (0..)
        .map(|i| rotated_path(base, i))
        .take_while(|p| p.exists())
        .collect()
}

/// A [`Sink`] writing the rotated files `base`, `base.1`, ...
#[derive(Debug)]
pub struct FileSink {
    base: PathBuf,
    file: File,
    /// fsync on every batch (durability against power loss at the cost of
    /// throughput); the default syncs only at rotation and shutdown.
    sync_each_batch: bool,
}

/// I/O failures as a `Copy` value (the core's sink errors must be `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
            base,
            file,
            sync_each_batch: false,
        })
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
}

impl Sink for FileSink {
    type Error = SinkError;

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
        self.file.sync_data()?;
        let next = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(rotated_path(&self.base, index))?;
        self.file = next;
        Ok(())
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
}

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
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ConfigError>>();
        let handle = {
            let queue = Arc::clone(&queue);
            let stop = Arc::clone(&stop);
            let wake_pending = Arc::clone(&wake_pending);
            thread::Builder::new()
                .name("fltpolicy-flush".into())
                .spawn(move || flush_loop(sink, cfg, &queue, &stop, &wake_pending, ready_tx))
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

fn flush_loop<S: Sink>(
    sink: S,
    cfg: FlushConfig,
    queue: &HostQueue,
    stop: &StdBool,
    wake_pending: &StdBool,
    ready: std::sync::mpsc::Sender<Result<(), ConfigError>>,
) -> Result<(S, WriterStats), (S, WriterStats, S::Error)> {
    let mut buf = vec![0u8; cfg.batch_bytes.max(MIN_WRITER_BUFFER)];
    let wcfg = WriterConfig {
        host: &cfg.host,
        boot_id: cfg.boot_id,
        session_id: cfg.session_id,
        key: cfg.key,
        max_file_bytes: cfg.max_file_bytes,
        first_seq: 1,
    };
    let mut writer = match LogWriter::new(sink, &mut buf, &wcfg, now_ns()) {
        Ok(w) => w,
        Err((e, sink)) => {
            // start() checked the configuration already; report anyway.
            let _ = ready.send(Err(e));
            return Ok((sink, WriterStats::default()));
        }
    };
    let Some(mut consumer) = queue.consumer() else {
        // Only this thread ever takes the consumer of its own queue; end
        // the (empty) log cleanly rather than guess.
        return writer.close(now_ns());
    };
    let _ = ready.send(Ok(()));
    loop {
        let stopping = stop.load(StdOrdering::Acquire);
        wake_pending.store(false, StdOrdering::Release);
        if stopping {
            return writer.finish(&mut consumer, now_ns());
        }
        writer.drain(&mut consumer, now_ns());
        if !wake_pending.load(StdOrdering::Acquire) {
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

//! Reading audit logs: iterate the records of one or more files, verify the
//! chain as you go, and report damage precisely. `log export`, `log verify`,
//! `log stats` and the viewer all read through this module.
//!
//! ```no_run
//! use fltpolicy_audit::reader::{LogReader, RecordBody};
//! let reader = LogReader::open(&["audit.fplog", "audit.fplog.1"]).unwrap();
//! for item in reader {
//!     match item {
//!         Ok(rec) => match &rec.body {
//!             RecordBody::Event(e) => println!("{} {} {}", rec.seq, e.op_name(), e.path),
//!             RecordBody::Dropped(d) => println!("{} dropped {}", rec.seq, d.count),
//!             RecordBody::End(_) => {}
//!         },
//!         Err(err) => eprintln!("{err}"),
//!     }
//! }
//! ```
//!
//! Files are read in chain order whatever order they are given in: files
//! of one writer session (same `session_id`) are sorted by `file_index`;
//! sessions keep the order in which they first appear. Each item is one
//! record (owned, so it can be kept) or one error. After an error the
//! reader goes on where it safely can: a broken chain or a sequence gap
//! is reported once per file and the file's remaining (checksum-valid)
//! records are still returned; a damaged frame or a torn tail ends that
//! file (its length field can no longer be trusted) and reading goes on
//! with the next file.
//!
//! Never panics on any file content.

use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};

use std::path::{Path, PathBuf};

use fltpolicy_core::event::{EventView, Op};
use fltpolicy_core::record::chain::{Chain, Sealing, KEY_BYTES};
use fltpolicy_core::record::frame::{
    decode_body, decode_header, parse_frame, FileHeader, FrameError, FrameParse, HeaderError,
    MAX_HEADER,
};
use fltpolicy_core::record::{
    flags, ActionCode, DropReason, DropRecord, EndReason, EndRecord, EventData, PolicyId, Record,
};

/// An event record, owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventEntry {
    pub op: Option<Op>,
    pub action: ActionCode,
    /// [`fltpolicy_core::record::flags`] bits.
    pub flags: u8,
    pub pid: u64,
    pub ppid: u64,
    pub size: u64,
    /// 1-based rule index.
    pub rule: Option<u32>,
    pub line: u32,
    pub status: Option<i32>,
    pub policy: PolicyId,
    pub path: String,
    pub image: String,
    pub user: String,
    pub tag: String,
    /// A rename's (or link's) destination; empty for other operations.
    pub target_path: String,
}

impl EventEntry {
    fn from_data(d: &EventData<'_>) -> EventEntry {
        EventEntry {
            op: d.op,
            action: d.action,
            flags: d.flags,
            pid: d.pid,
            ppid: d.ppid,
            size: d.size,
            rule: d.rule,
            line: d.line,
            status: d.status,
            policy: d.policy,
            path: d.path.to_owned(),
            image: d.image.to_owned(),
            user: d.user.to_owned(),
            tag: d.tag.to_owned(),
            target_path: d.target_path.to_owned(),
        }
    }

    /// The operation's keyword (`"unknown"` if absent).
    pub fn op_name(&self) -> &'static str {
        self.op.map_or("unknown", Op::name)
    }

    /// The last component of the image path (what `process` means in the
    /// policy language).
    pub fn process(&self) -> &str {
        self.image.rsplit(['/', '\\']).next().unwrap_or(&self.image)
    }

    /// The event as the evaluator and filters see it.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            op: self.op,
            path: &self.path,
            pid: self.pid,
            ppid: self.ppid,
            image: &self.image,
            user: &self.user,
            size: self.size,
            paging: self.flags & flags::PAGING != 0,
        }
    }
}

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBody {
    Event(EventEntry),
    Dropped(DropRecord),
    End(EndRecord),
}

/// One record read from a log, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Index into [`LogReader::files`].
    pub file: usize,
    /// Byte offset of the frame in its file.
    pub offset: u64,
    pub seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub body: RecordBody,
}

impl DecodedRecord {
    fn from_record(file: usize, offset: u64, r: &Record<'_>) -> DecodedRecord {
        let body = match r {
            Record::Event(e) => RecordBody::Event(EventEntry::from_data(&e.data)),
            Record::Dropped(d) => RecordBody::Dropped(*d),
            Record::End(e) => RecordBody::End(*e),
        };
        DecodedRecord {
            file,
            offset,
            seq: r.seq(),
            time_ns: r.time_ns(),
            body,
        }
    }

    /// The event, if this is an event record.
    pub fn event(&self) -> Option<&EventEntry> {
        match &self.body {
            RecordBody::Event(e) => Some(e),
            _ => None,
        }
    }
}

/// A file header, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    pub host: String,
    pub boot_id: [u8; 16],
    pub session_id: [u8; 16],
    pub created_ns: u64,
    pub file_index: u32,
    pub first_seq: u64,
    pub prev_chain: [u8; 32],
    pub sealing: Sealing,
}

impl HeaderInfo {
    fn from_header(h: &FileHeader<'_>) -> HeaderInfo {
        HeaderInfo {
            host: h.host.to_owned(),
            boot_id: h.boot_id,
            session_id: h.session_id,
            created_ns: h.created_ns,
            file_index: h.file_index,
            first_seq: h.first_seq,
            prev_chain: h.prev_chain,
            sealing: h.sealing,
        }
    }
}

/// One input file and what reading it found.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub path: PathBuf,
    /// `None` if the header could not be read.
    pub header: Option<HeaderInfo>,
    /// Filled in as the file is read.
    pub summary: FileSummary,
}

/// What reading a file found (complete once the reader has moved past it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSummary {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// How the file ended, if it ended with an end record.
    pub end: Option<EndReason>,
    /// Byte offset and length of a torn tail.
    pub torn_tail: Option<(u64, u64)>,
    /// Errors reported for this file.
    pub errors: u64,
    /// The chain was checked (false for keyed logs read without the key).
    pub chain_checked: bool,
    /// The file's chain start was checked against its predecessor (true for
    /// a session's first file, which has none).
    pub anchored: bool,
    /// Chain value after the last good record (links to the next file).
    pub end_chain: Option<[u8; 32]>,
    pub bytes: u64,
    /// The file is empty (0 bytes): created, nothing written yet. Not
    /// damage: a writer that was stopped right after creating it, or one
    /// about to write its header.
    pub empty: bool,
    /// The file starts with a [`DropReason::LogLost`] record:
    /// `(after_seq, count)`.
    pub declared_loss: Option<(u64, u64)>,
}

/// Everything that can be wrong with a log.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {error}")]
    Header { path: PathBuf, error: HeaderError },
    #[error("{path}: damaged record at offset {offset}{}: {error}", after(*.after_seq))]
    Corrupt {
        path: PathBuf,
        offset: u64,
        /// Sequence number of the last good record before it.
        after_seq: Option<u64>,
        error: FrameError,
    },
    #[error("{path}: torn tail at offset {offset}: the last {bytes} bytes are an incomplete record{} (crash or power loss while writing)", after(*.after_seq))]
    TornTail {
        path: PathBuf,
        offset: u64,
        bytes: u64,
        after_seq: Option<u64>,
    },
    #[error("{path}: chain broken at offset {offset} (seq {seq}): the record was edited, inserted, reordered, or an earlier record removed")]
    ChainBroken {
        path: PathBuf,
        offset: u64,
        seq: u64,
    },
    #[error("{path}: sequence gap at offset {offset}: expected seq {expected}, found {found}")]
    SeqGap {
        path: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error("{path}: does not continue {prev}: {reason}")]
    NotLinked {
        path: PathBuf,
        prev: PathBuf,
        reason: &'static str,
    },
    #[error("{path}: chain value after seq {seq} (offset {offset}) differs from the anchor: the log was rewritten since the anchor was taken")]
    AnchorMismatch {
        path: PathBuf,
        offset: u64,
        seq: u64,
    },
    #[error("{path}: the anchor's seq {seq} is never reached with a verified chain: the log was cut short (or its chain broke earlier)")]
    AnchorNotReached { path: PathBuf, seq: u64 },
    #[error("{path}: log is sealed with HMAC-SHA256 (key id {key_id}) but {problem}")]
    Key {
        path: PathBuf,
        key_id: String,
        problem: &'static str,
    },
}

fn after(seq: Option<u64>) -> String {
    seq.map(|s| format!(" (after seq {s})")).unwrap_or_default()
}

impl ReadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::Header { path, .. }
            | ReadError::Corrupt { path, .. }
            | ReadError::TornTail { path, .. }
            | ReadError::ChainBroken { path, .. }
            | ReadError::SeqGap { path, .. }
            | ReadError::NotLinked { path, .. }
            | ReadError::AnchorMismatch { path, .. }
            | ReadError::AnchorNotReached { path, .. }
            | ReadError::Key { path, .. } => path,
        }
    }

    /// Byte offset of the problem, where there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            ReadError::Corrupt { offset, .. }
            | ReadError::TornTail { offset, .. }
            | ReadError::ChainBroken { offset, .. }
            | ReadError::SeqGap { offset, .. }
            | ReadError::AnchorMismatch { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// Whether this is a torn tail (the normal aftermath of a crash).
    pub fn is_torn_tail(&self) -> bool {
        matches!(self, ReadError::TornTail { .. })
    }
}

/// Options for reading.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Key for HMAC-sealed logs. Without it their chain is not checked.
    pub key: Option<[u8; KEY_BYTES]>,
    /// A chain value recorded earlier (off the machine): the log must
    /// still reach it at that sequence number. This is what catches a log
    /// cut at a frame boundary or rewritten wholesale by someone who could
    /// recompute an unkeyed chain.
    pub anchor: Option<Anchor>,
}

/// "After record `seq`, the chain value was `chain`": printed by
/// `log verify`, written as `SEQ:HEX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub chain: [u8; 32],
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, hex(&self.chain))
    }
}

impl std::str::FromStr for Anchor {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Anchor, &'static str> {
        const BAD: &str = "an anchor is SEQ:HEX (64 hex digits), as printed by `log verify`";
        let (seq, h) = s.trim().split_once(':').ok_or(BAD)?;
        let seq = seq.parse().map_err(|_| BAD)?;
        let h = h.as_bytes();
        if h.len() != 64 {
            return Err(BAD);
        }
        let mut chain = [0u8; 32];
        for (i, pair) in h.chunks(2).enumerate() {
            let txt = std::str::from_utf8(pair).map_err(|_| BAD)?;
            chain[i] = u8::from_str_radix(txt, 16).map_err(|_| BAD)?;
        }
        Ok(Anchor { seq, chain })
    }
}

/// Iterator over the records of a set of files. See the module docs.
#[derive(Debug)]
pub struct LogReader {
    files: Vec<FileInfo>,
    opts: ReadOptions,
    /// Index of the file being read (`files.len()` when done).
    current: usize,
    state: Option<FileState>,
    /// Pending items (errors found before a record is returned).
    queue: std::collections::VecDeque<Result<DecodedRecord, ReadError>>,
    /// Last file read per session: (session id, file index in `files`).
    last_of_session: Vec<([u8; 16], usize)>,
    /// Chain value after the last record whose chain verified.
    head: Option<Anchor>,
    /// The anchor asked for was reached (and checked).
    anchor_reached: bool,
    /// Live mode ([`LogReader::open_live`]): the last file may still grow.
    live: bool,
    /// Live mode: an incomplete frame at the end of the last file, waiting
    /// for the writer: (file index, offset, bytes).
    pending: Option<(usize, u64, u64)>,
}

/// Bytes read from a file at a time: memory stays bounded by this (plus
/// one frame) whatever the size of the log.
pub const READ_CHUNK: usize = 1 << 20;

#[derive(Debug)]
struct FileState {
    file: fs::File,
    /// Bytes of the file from offset `base`.
    buf: Vec<u8>,
    base: u64,
    /// Index in `buf` of the next frame.
    pos: usize,
    chain: Option<Chain>,
    chain_ok: bool,
    expect_seq: u64,
    seq_ok: bool,
    last_seq: Option<u64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LogReader {
    /// Opens `paths` (reading only their headers now).
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<LogReader, ReadError> {
        LogReader::open_with(paths, ReadOptions::default())
    }

    /// Opens `paths` with options.
    pub fn open_with<P: AsRef<Path>>(
        paths: &[P],
        opts: ReadOptions,
    ) -> Result<LogReader, ReadError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut seen = std::collections::HashSet::new();
        for p in paths {
            let path = p.as_ref().to_path_buf();
            // A file named twice (`log verify a a`, overlapping globs) is
            // read once.
            if !seen.insert(fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
                continue;
            }
            let mut f = fs::File::open(&path).map_err(|source| ReadError::Io {
                path: path.clone(),
                source,
            })?;
            let mut head = vec![0u8; MAX_HEADER];
            let n = read_up_to(&mut f, &mut head).map_err(|source| ReadError::Io {
                path: path.clone(),
                source,
            })?;
            let header = decode_header(&head[..n])
                .ok()
                .map(|(h, _)| HeaderInfo::from_header(&h));
            files.push(FileInfo {
                path,
                header,
                summary: FileSummary::default(),
            });
        }
        sort_chain_order(&mut files);
        Ok(LogReader {
            files,
            opts,
            current: 0,
            state: None,
            queue: Default::default(),
            last_of_session: Vec::new(),
            head: None,
            anchor_reached: false,
            live: false,
            pending: None,
        })
    }

    /// Opens `paths` to follow a log that is being written (the viewer's
    /// follow mode). Reading is the same, except at the end of the last
    /// file: an incomplete frame or header is left for a later call (the
    /// writer may be in the middle of it; [`LogReader::pending_tail`] says
    /// where), `next()` returns `None` until more is written, and after an
    /// `End(rotated)` record the file that continues the chain is looked
    /// up in the same directory by its header, whatever its name.
    pub fn open_live<P: AsRef<Path>>(
        paths: &[P],
        opts: ReadOptions,
    ) -> Result<LogReader, ReadError> {
        let mut r = LogReader::open_with(paths, opts)?;
        r.live = true;
        Ok(r)
    }

    /// Live mode: the incomplete frame (or header) at the end of the last
    /// file that the last call stopped at: (file index, offset, bytes). A
    /// torn tail if it never completes.
    pub fn pending_tail(&self) -> Option<(usize, u64, u64)> {
        self.pending
    }

    fn is_last_file(&self) -> bool {
        self.current + 1 >= self.files.len()
    }

    /// The chain value after the last record read whose chain verified:
    /// store it off the machine and pass it back as
    /// [`ReadOptions::anchor`] to prove the log still extends it.
    pub fn head(&self) -> Option<Anchor> {
        self.head
    }

    /// Whether [`ReadOptions::anchor`] was reached (and so checked).
    pub fn anchor_reached(&self) -> bool {
        self.anchor_reached
    }

    /// The input files in reading order, with what was found so far.
    pub fn files(&self) -> &[FileInfo] {
        &self.files
    }

    /// Starts reading file `self.current`. Returns false when there are no
    /// more files.
    fn start_file(&mut self) -> Start {
        let idx = self.current;
        let Some(info) = self.files.get(idx) else {
            return Start::Done;
        };
        let path = info.path.clone();
        let opened = fs::File::open(&path).and_then(|mut f| {
            let len = f.metadata()?.len();
            let mut buf = vec![0u8; READ_CHUNK.min(len as usize)];
            let n = read_up_to(&mut f, &mut buf)?;
            buf.truncate(n);
            Ok((f, buf, len))
        });
        let (file, bytes, len) = match opened {
            Ok(x) => x,
            Err(source) => {
                self.queue.push_back(Err(ReadError::Io { path, source }));
                self.files[idx].summary.errors += 1;
                self.current += 1;
                return Start::Started;
            }
        };
        self.files[idx].summary.bytes = len;
        let header_incomplete = matches!(decode_header(&bytes), Err(HeaderError::Truncated));
        if header_incomplete && self.live && self.is_last_file() {
            // The writer has created the file but not written its header
            // yet (or only part of it).
            self.pending = (!bytes.is_empty()).then_some((idx, 0, bytes.len() as u64));
            return Start::Pending;
        }
        self.pending = None;
        if bytes.is_empty() {
            self.files[idx].summary.empty = true;
            self.current += 1;
            return Start::Started;
        }
        let (header, hlen) = match decode_header(&bytes) {
            Ok((h, n)) => (HeaderInfo::from_header(&h), n),
            Err(HeaderError::Truncated) => {
                self.queue.push_back(Err(ReadError::TornTail {
                    path,
                    offset: 0,
                    bytes: bytes.len() as u64,
                    after_seq: None,
                }));
                let s = &mut self.files[idx].summary;
                s.errors += 1;
                s.torn_tail = Some((0, bytes.len() as u64));
                self.current += 1;
                return Start::Started;
            }
            Err(error) => {
                self.queue.push_back(Err(ReadError::Header { path, error }));
                self.files[idx].summary.errors += 1;
                self.current += 1;
                return Start::Started;
            }
        };
        if self.files[idx].header.is_none() {
            self.files[idx].header = Some(header.clone());
        }
        // Chain start.
        let chain = match (&header.sealing, &self.opts.key) {
            (Sealing::Sha256, _) => Some(Chain::start(&bytes[..hlen], None)),
            (Sealing::HmacSha256 { key_id }, Some(k)) => {
                if fltpolicy_core::record::chain::key_id(k) == *key_id {
                    Some(Chain::start(&bytes[..hlen], Some(k)))
                } else {
                    self.report(
                        idx,
                        ReadError::Key {
                            path: path.clone(),
                            key_id: hex(key_id),
                            problem: "the key given is a different one",
                        },
                    );
                    None
                }
            }
            (Sealing::HmacSha256 { .. }, None) => None,
        };
        self.files[idx].summary.chain_checked = chain.is_some();
        // A file that starts by declaring lost records (its predecessor
        // was deleted while being written, or its torn tail cut off on
        // restart): `after_seq` and the count say which seqs are gone.
        let declared = declared_loss(&bytes[hlen..]);
        self.files[idx].summary.declared_loss = declared;
        let follows = |ps: &FileSummary| {
            ps.last_seq.map(|s| s + 1) == Some(header.first_seq)
                || declared.is_some_and(|(after, n)| {
                    ps.last_seq == Some(after) && after + n + 1 == header.first_seq
                })
        };
        // Link to the previous file of the same session.
        let prev = self
            .last_of_session
            .iter()
            .find(|(s, _)| *s == header.session_id)
            .map(|(_, i)| *i);
        let mut anchored = header.file_index == 0;
        if let Some(p) = prev {
            let ps = &self.files[p].summary;
            let prev_path = self.files[p].path.clone();
            let prev_index = self.files[p].header.as_ref().map(|h| h.file_index);
            // Files between the two are missing; only a declared loss
            // explains that (the chain cannot be checked across it).
            let skipped = prev_index.map(|i| i + 1) != Some(header.file_index);
            let problem = if skipped && declared.is_none() {
                Some("file index does not follow (a file is missing)")
            } else if ps.end != Some(EndReason::Rotated) {
                Some("the previous file does not end with a rotation record (it was truncated)")
            } else if !follows(ps) {
                Some("first sequence number does not follow the previous file's last")
            } else if !skipped && chain.is_some() && ps.end_chain != Some(header.prev_chain) {
                Some("chain value differs from the previous file's final value")
            } else {
                anchored = !skipped;
                None
            };
            if let Some(reason) = problem {
                self.report(
                    idx,
                    ReadError::NotLinked {
                        path: path.clone(),
                        prev: prev_path,
                        reason,
                    },
                );
            }
        } else if header.prev_chain != [0; 32] {
            // A new session continuing an earlier one (a restarted
            // writer): its predecessor is the file read last whose
            // sequence numbers it continues; the chain value must match.
            anchored = false;
            let cand = (0..idx)
                .rev()
                .find(|&i| self.files[i].header.is_some() && self.files[i].summary.records > 0);
            if let Some(p) = cand {
                let ps = &self.files[p].summary;
                if follows(ps) {
                    let chain_ok = chain.is_none()
                        || ps.end_chain.is_none()
                        || ps.end_chain == Some(header.prev_chain);
                    if chain_ok {
                        anchored = ps.end_chain.is_some() || chain.is_none();
                    } else {
                        let prev_path = self.files[p].path.clone();
                        self.report(
                            idx,
                            ReadError::NotLinked {
                                path: path.clone(),
                                prev: prev_path,
                                reason: "continues the log after a restart, but its chain value differs from the previous file's final value",
                            },
                        );
                    }
                }
            }
        }
        self.files[idx].summary.anchored = anchored;
        match self
            .last_of_session
            .iter_mut()
            .find(|(s, _)| *s == header.session_id)
        {
            Some(slot) => slot.1 = idx,
            None => self.last_of_session.push((header.session_id, idx)),
        }
        self.state = Some(FileState {
            file,
            buf: bytes,
            base: 0,
            pos: hlen,
            chain,
            chain_ok: true,
            expect_seq: header.first_seq,
            seq_ok: true,
            last_seq: None,
        });
        Start::Started
    }

    fn report(&mut self, idx: usize, e: ReadError) {
        self.files[idx].summary.errors += 1;
        self.queue.push_back(Err(e));
    }

    /// Reads more of the current file into its buffer (dropping what was
    /// consumed). Returns the bytes added.
    fn refill(&mut self) -> io::Result<usize> {
        let Some(st) = self.state.as_mut() else {
            return Ok(0);
        };
        if st.pos > 0 {
            st.buf.drain(..st.pos);
            st.base += st.pos as u64;
            st.pos = 0;
        }
        let len = st.file.metadata()?.len();
        let have = st.base + st.buf.len() as u64;
        if len < have {
            return Err(io::Error::other(format!(
                "file shrank from {have} to {len} bytes while being read (truncated or replaced)"
            )));
        }
        let want = ((len - have) as usize).min(READ_CHUNK);
        if want == 0 {
            return Ok(0);
        }
        let start = st.buf.len();
        st.buf.resize(start + want, 0);
        let got = read_up_to(&mut st.file, &mut st.buf[start..]);
        let got = match got {
            Ok(n) => n,
            Err(e) => {
                st.buf.truncate(start);
                return Err(e);
            }
        };
        st.buf.truncate(start + got);
        self.files[self.current].summary.bytes = len;
        Ok(got)
    }

    /// Reads the next frame of the current file into the queue, or finishes
    /// the file. False when nothing can be read now (live mode, waiting
    /// for the writer).
    fn step(&mut self) -> bool {
        let idx = self.current;
        let Some(st) = self.state.as_ref() else {
            return true;
        };
        if matches!(
            parse_frame(&st.buf[st.pos..]),
            FrameParse::Incomplete { .. }
        ) {
            match self.refill() {
                Ok(n) if n > 0 => return true,
                Ok(_) => {}
                Err(source) => {
                    let path = self.files[idx].path.clone();
                    self.report(idx, ReadError::Io { path, source });
                    self.finish_file();
                    return true;
                }
            }
        }
        let Some(st) = self.state.as_mut() else {
            return true;
        };
        let path = &self.files[idx].path;
        let offset = st.base + st.pos as u64;
        let rest = &st.buf[st.pos..];
        let ended = self.files[idx].summary.end.is_some();
        let live_tail = self.live && self.current + 1 >= self.files.len() && !ended;
        if rest.is_empty() {
            if live_tail {
                self.pending = None;
                return false;
            }
            self.finish_file();
            return true;
        }
        match parse_frame(rest) {
            FrameParse::Incomplete { .. } if live_tail => {
                self.pending = Some((idx, offset, rest.len() as u64));
                false
            }
            FrameParse::Incomplete { .. } => {
                let e = ReadError::TornTail {
                    path: path.clone(),
                    offset,
                    bytes: rest.len() as u64,
                    after_seq: st.last_seq,
                };
                self.files[idx].summary.torn_tail = Some((offset, rest.len() as u64));
                self.report(idx, e);
                self.finish_file();
                true
            }
            FrameParse::Bad(error) => {
                let e = ReadError::Corrupt {
                    path: path.clone(),
                    offset,
                    after_seq: st.last_seq,
                    error,
                };
                self.report(idx, e);
                self.finish_file();
                true
            }
            FrameParse::Frame(f) => {
                let tag_ok = match st.chain.as_mut() {
                    Some(c) => c.advance(&f.len_le, f.body) == f.tag,
                    None => true,
                };
                let total = f.total;
                let rec = match decode_body(f.body) {
                    Ok(r) => r,
                    Err(error) => {
                        let e = ReadError::Corrupt {
                            path: path.clone(),
                            offset,
                            after_seq: st.last_seq,
                            error,
                        };
                        self.report(idx, e);
                        self.finish_file();
                        return true;
                    }
                };
                let seq = rec.seq();
                let mut errs = Vec::new();
                if !tag_ok && st.chain_ok {
                    st.chain_ok = false;
                    errs.push(ReadError::ChainBroken {
                        path: path.clone(),
                        offset,
                        seq,
                    });
                }
                if let (Some(c), true) = (st.chain.as_ref(), st.chain_ok) {
                    let here = Anchor {
                        seq,
                        chain: c.value(),
                    };
                    self.head = Some(here);
                    if let Some(a) = self.opts.anchor.filter(|a| a.seq == seq) {
                        self.anchor_reached = true;
                        if a.chain != here.chain {
                            errs.push(ReadError::AnchorMismatch {
                                path: path.clone(),
                                offset,
                                seq,
                            });
                        }
                    }
                }
                if seq != st.expect_seq && st.seq_ok {
                    st.seq_ok = false;
                    errs.push(ReadError::SeqGap {
                        path: path.clone(),
                        offset,
                        expected: st.expect_seq,
                        found: seq,
                    });
                }
                st.expect_seq = seq.wrapping_add(1);
                st.last_seq = Some(seq);
                st.pos += total;
                let decoded = DecodedRecord::from_record(idx, offset, &rec);
                let s = &mut self.files[idx].summary;
                s.records += 1;
                s.first_seq.get_or_insert(seq);
                s.last_seq = Some(seq);
                s.end = match &decoded.body {
                    RecordBody::End(e) => Some(e.reason),
                    _ => None,
                };
                for e in errs {
                    self.report(idx, e);
                }
                self.pending = None;
                self.queue.push_back(Ok(decoded));
                true
            }
        }
    }

    fn finish_file(&mut self) {
        if let Some(st) = self.state.take() {
            let s = &mut self.files[self.current].summary;
            s.end_chain = match (&st.chain, st.chain_ok) {
                (Some(c), true) => Some(c.value()),
                _ => None,
            };
        }
        self.current += 1;
    }
}

/// What starting the next file did.
enum Start {
    Started,
    /// No file left.
    Done,
    /// Live mode: the last file's header is not complete yet.
    Pending,
}

impl Iterator for LogReader {
    type Item = Result<DecodedRecord, ReadError>;

    /// The next record or problem. In live mode `None` means "nothing
    /// more yet": call again once the writer has written more.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.state.is_some() {
                if !self.step() {
                    return None;
                }
                continue;
            }
            match self.start_file() {
                Start::Started => {}
                Start::Pending => return None,
                Start::Done => {
                    if self.live && self.discover_next() {
                        continue;
                    }
                    return None;
                }
            }
        }
    }
}

impl LogReader {
    /// Live mode, after the last file ended: finds the file that continues
    /// it — after `End(rotated)` the same session's next index, after
    /// `End(shutdown)` a restarted writer's first file (next index, the
    /// previous chain value in its header) — among the files of its
    /// directory whose names start with the same stem, and adds it. True
    /// if one was found.
    fn discover_next(&mut self) -> bool {
        let Some(last) = self.files.last() else {
            return false;
        };
        let Some(lh) = last.header.clone() else {
            return false;
        };
        // After `End(rotated)` the session's next file; after
        // `End(shutdown)` a restarted writer's first file, which continues
        // the chain value and the sequence numbers.
        let restart = match last.summary.end {
            Some(EndReason::Rotated) => None,
            Some(EndReason::Shutdown) => match (last.summary.end_chain, last.summary.last_seq) {
                (Some(c), Some(q)) => Some((c, q)),
                _ => return false,
            },
            None => return false,
        };
        let dir = match last.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = last
            .path
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .split('.')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default();
        let Ok(entries) = fs::read_dir(&dir) else {
            return false;
        };
        let known: Vec<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| fs::canonicalize(&f.path).ok())
            .collect();
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(stem.as_str()) {
                continue;
            }
            let path = e.path();
            if !e.file_type().is_ok_and(|t| t.is_file())
                || fs::canonicalize(&path).is_ok_and(|c| known.contains(&c))
            {
                continue;
            }
            let Ok(mut f) = fs::File::open(&path) else {
                continue;
            };
            let mut head = vec![0u8; MAX_HEADER];
            let Ok(n) = read_up_to(&mut f, &mut head) else {
                continue;
            };
            let Ok((h, _)) = decode_header(&head[..n]) else {
                continue;
            };
            let continues = match restart {
                None => {
                    h.session_id == lh.session_id && h.file_index == lh.file_index.wrapping_add(1)
                }
                Some((chain, last_seq)) => {
                    h.session_id != lh.session_id
                        && h.prev_chain == chain
                        && h.first_seq > last_seq
                        && h.file_index == lh.file_index.wrapping_add(1)
                }
            };
            if continues {
                self.files.push(FileInfo {
                    path,
                    header: Some(HeaderInfo::from_header(&h)),
                    summary: FileSummary::default(),
                });
                return true;
            }
        }
        false
    }
}

/// Reads the one record whose frame starts at `offset` of `path` (an
/// offset a [`LogReader`] returned). Checks the frame's CRC, not the chain
/// (the reader that found the offset did). For the viewer, which keeps
/// offsets rather than records.
pub fn read_record_at(path: &Path, file: usize, offset: u64) -> Result<DecodedRecord, ReadError> {
    let f = fs::File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_record_in(&f, path, file, offset)
}

/// Like [`read_record_at`] on a file already open (`path` names it in
/// errors): a seek and a read, for readers that fetch many records.
pub fn read_record_in(
    f: &fs::File,
    path: &Path,
    file: usize,
    offset: u64,
) -> Result<DecodedRecord, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = f;
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = [0u8; fltpolicy_core::record::frame::MAX_FRAME];
    let n = read_up_to(&mut f, &mut buf).map_err(io)?;
    let corrupt = |error| ReadError::Corrupt {
        path: path.to_path_buf(),
        offset,
        after_seq: None,
        error,
    };
    match parse_frame(&buf[..n]) {
        FrameParse::Frame(fr) => {
            let rec = decode_body(fr.body).map_err(corrupt)?;
            Ok(DecodedRecord::from_record(file, offset, &rec))
        }
        FrameParse::Bad(e) => Err(corrupt(e)),
        FrameParse::Incomplete { .. } => Err(ReadError::TornTail {
            path: path.to_path_buf(),
            offset,
            bytes: n as u64,
            after_seq: None,
        }),
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Sorts files of one session by file index. Sessions go in the order of
/// their first sequence number (a restarted writer continues the seqs of
/// the one before), ties in the order of first appearance; unreadable
/// headers go last in given order.
fn sort_chain_order(files: &mut [FileInfo]) {
    // (session, lowest first_seq)
    let mut sessions: Vec<([u8; 16], u64)> = Vec::new();
    for f in files.iter() {
        if let Some(h) = &f.header {
            match sessions.iter_mut().find(|(s, _)| *s == h.session_id) {
                Some(slot) => slot.1 = slot.1.min(h.first_seq),
                None => sessions.push((h.session_id, h.first_seq)),
            }
        }
    }
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.sort_by_key(|&i| (sessions[i].1, i));
    files.sort_by_key(|f| match &f.header {
        Some(h) => (
            order
                .iter()
                .position(|&i| sessions[i].0 == h.session_id)
                .unwrap_or(usize::MAX),
            h.file_index,
        ),
        None => (usize::MAX, u32::MAX),
    });
}

/// `(after_seq, count)` if the first frame of `frames` is a
/// [`DropReason::LogLost`] record.
fn declared_loss(frames: &[u8]) -> Option<(u64, u64)> {
    let FrameParse::Frame(f) = parse_frame(frames) else {
        return None;
    };
    match decode_body(f.body) {
        Ok(Record::Dropped(d)) if d.reason == DropReason::LogLost => Some((d.after_seq, d.count)),
        _ => None,
    }
}

/// Follows a live log from its first file `base`: each
/// [`Follower::poll`] returns the records completed since the last one,
/// across rotations. A [`LogReader::open_live`] once `base` exists.
#[derive(Debug)]
pub struct Follower {
    base: PathBuf,
    opts: ReadOptions,
    reader: Option<LogReader>,
}

impl Follower {
    /// Follows the log whose first file is `base`, from its beginning.
    pub fn open(base: impl AsRef<Path>, opts: ReadOptions) -> Follower {
        Follower {
            base: base.as_ref().to_path_buf(),
            opts,
            reader: None,
        }
    }

    /// The file currently followed.
    pub fn path(&self) -> &Path {
        self.reader
            .as_ref()
            .and_then(|r| {
                r.files()
                    .get(r.current.min(r.files().len().saturating_sub(1)))
            })
            .map_or(&self.base, |f| &f.path)
    }

    /// The chain value after the last record whose chain verified (an
    /// anchor to send off the machine).
    pub fn head(&self) -> Option<Anchor> {
        self.reader.as_ref().and_then(LogReader::head)
    }

    /// Reads what was appended since the last call. Problems are returned
    /// in the vector, in order with the records; `Err` only when the log
    /// cannot be opened.
    pub fn poll(&mut self) -> Result<Vec<Result<DecodedRecord, ReadError>>, ReadError> {
        if self.reader.is_none() {
            if !self.base.exists() {
                return Ok(Vec::new());
            }
            self.reader = Some(LogReader::open_live(
                std::slice::from_ref(&self.base),
                self.opts.clone(),
            )?);
        }
        let Some(r) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        Ok(r.by_ref().collect())
    }
}

impl fmt::Display for HeaderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host {} session {} file {} first seq {} sealing {}",
            self.host,
            hex(&self.session_id),
            self.file_index,
            self.first_seq,
            self.sealing.name()
        )
    }
}

/// Lowercase hex of `bytes` (ids and hashes in exports).
pub fn to_hex(bytes: &[u8]) -> String {
    hex(bytes)
}

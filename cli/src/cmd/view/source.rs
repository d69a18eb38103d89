//! Reading log files incrementally, for the first load and for follow mode.
//!
//! A [`Source`] keeps, per file, the offset up to which every frame has been
//! decoded and the bytes read past it (at most one incomplete frame). Each
//! [`Source::poll`] reads what the files gained since, decodes the complete
//! frames, advances the hash chain over them, and leaves an incomplete tail
//! for the next poll: a writer that is mid-`write`, or a torn tail after a
//! crash, which is reported as such when it does not complete.
//!
//! Rotation: when a file ends with an `End(rotated)` record, the next file
//! of the chain is found by its header (same session id, file index + 1)
//! among the files of the same directory whose names start with the log's
//! stem, so the viewer follows whatever naming the writer uses, including a
//! rename of the active file (the open handle keeps reading the old file
//! to its end record).
//!
//! The frame layout, checksums and chain are the core's
//! (`fltpolicy_core::record`); this module only schedules reads and turns
//! records into rows. It never writes to a log and never panics on a
//! malformed one: damage stops reading that file and is shown in the status
//! line with its offset.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fltpolicy_core::record::chain::{key_id, Chain, Sealing, KEY_BYTES};
use fltpolicy_core::record::frame::{
    decode_body, decode_header, parse_frame, FrameParse, MAX_HEADER,
};
use fltpolicy_core::record::{flags, EndReason, Record};

use super::app::{ChainState, DropRow, EndRow, EventRow, Interner, Row, RowBody, SourceStatus};

/// Bytes read from one file per poll. Bounds the work between two frames
/// drawn while a large log loads (a few hundred thousand records per MiB
/// ... about 20k), so the screen stays responsive.
pub const READ_CHUNK: usize = 4 << 20;

/// One log file being read.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    file: File,
    /// File offset of `buf[0]`: everything before it has been decoded.
    consumed: u64,
    /// Bytes read but not yet decoded (an incomplete frame, or the header).
    buf: Vec<u8>,
    header: Option<HeaderInfo>,
    /// The file's end record, once read: nothing may follow it.
    end: Option<EndReason>,
    /// Damage was found: reading this file stopped at `consumed`.
    stopped: bool,
    /// Size of the incomplete tail at the previous poll (to tell a write in
    /// progress from a torn tail).
    pending_at_last_poll: Option<(u64, usize)>,
}

/// What the viewer keeps of a file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    pub host: String,
    pub session_id: [u8; 16],
    pub file_index: u32,
    pub first_seq: u64,
    pub created_ns: u64,
    pub prev_chain: [u8; 32],
    pub sealing: Sealing,
}

/// Reads an incremental stream of rows from one or more log files.
#[derive(Debug)]
pub struct Source {
    tails: Vec<Tail>,
    interner: Interner,
    key: Option<[u8; KEY_BYTES]>,
    /// The running chain over everything decoded so far, with the header
    /// of the file it belongs to; `None` when the chain cannot be checked
    /// (a keyed log without the key) or is broken.
    chain: Option<Chain>,
    chain_state: ChainState,
    /// The sequence number the next record must carry (every record,
    /// event, drop or end, takes the next number; a new session restarts
    /// from its header's `first_seq`).
    next_seq: Option<u64>,
    /// Directory and name stem searched for the next file after rotation.
    rotation_dir: Option<(PathBuf, String)>,
    errors: Vec<String>,
}

/// Display name of a path: the file name as given.
fn display(path: &Path) -> String {
    path.display().to_string()
}

fn read_header_prefix(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; MAX_HEADER];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    Ok(buf)
}

fn header_info(bytes: &[u8]) -> Option<(HeaderInfo, usize)> {
    let (h, len) = decode_header(bytes).ok()?;
    Some((
        HeaderInfo {
            host: h.host.to_owned(),
            session_id: h.session_id,
            file_index: h.file_index,
            first_seq: h.first_seq,
            created_ns: h.created_ns,
            prev_chain: h.prev_chain,
            sealing: h.sealing,
        },
        len,
    ))
}

impl Source {
    /// Opens `paths`. Files whose headers can be read are put in chain
    /// order (creation time, then file index), so `audit.*.log` works
    /// whatever order the shell's glob produces. `key` is the sealing key
    /// of an HMAC-sealed log; without it such a chain is not checked.
    pub fn open(paths: &[PathBuf], key: Option<[u8; KEY_BYTES]>) -> io::Result<Source> {
        // (creation time and file index from the header, position given, path)
        type Keyed<'p> = (Option<(u64, u32)>, usize, &'p PathBuf);
        let mut keyed: Vec<Keyed<'_>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, p) in paths.iter().enumerate() {
            let meta = fs::metadata(p)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            if !meta.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: not a regular file", p.display()),
                ));
            }
            // The same file named twice (`audit.fplog ./audit.fplog`, or a
            // glob and a name) is read once.
            if !seen.insert(fs::canonicalize(p).unwrap_or_else(|_| p.clone())) {
                continue;
            }
            let order = read_header_prefix(p)
                .ok()
                .and_then(|b| header_info(&b))
                .map(|(h, _)| (h.created_ns, h.file_index));
            keyed.push((order, i, p));
        }
        // Files with a header first, in chain order; the rest as given.
        keyed.sort_by_key(|(o, i, _)| (o.is_none(), *o, *i));
        let mut tails = Vec::new();
        for (_, _, p) in keyed {
            let file = File::open(p)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            tails.push(Tail {
                path: p.clone(),
                file,
                consumed: 0,
                buf: Vec::new(),
                header: None,
                end: None,
                stopped: false,
                pending_at_last_poll: None,
            });
        }
        let rotation_dir = tails.first().map(|t| {
            let dir = t
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let name = t
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name.split('.').next().unwrap_or("").to_owned();
            (dir, stem)
        });
        Ok(Source {
            tails,
            interner: Interner::default(),
            key,
            chain: None,
            chain_state: ChainState::Unknown,
            next_seq: None,
            rotation_dir,
            errors: Vec::new(),
        })
    }

    /// Reads what the files gained since the last poll (at most
    /// [`READ_CHUNK`] bytes per file) and returns the new rows, and whether
    /// more data is already waiting (poll again before sleeping).
    pub fn poll(&mut self) -> (Vec<Row>, bool) {
        let mut rows = Vec::new();
        let mut more = false;
        for i in 0..self.tails.len() {
            // A file is only read once the one before it is finished (its
            // end record read, or reading stopped): rows stay in chain order.
            if i > 0 && !self.finished(i - 1) {
                break;
            }
            match self.read_some(i) {
                Ok(m) => more |= m,
                Err(e) => {
                    self.errors
                        .push(format!("{}: {e}", display(&self.tails[i].path)));
                    self.tails[i].stopped = true;
                }
            }
            self.decode(i, &mut rows);
        }
        if self
            .tails
            .last()
            .is_some_and(|t| t.end == Some(EndReason::Rotated))
        {
            if let Some(next) = self.find_next_file() {
                self.tails.push(next);
                more = true;
            }
        }
        (rows, more)
    }

    fn finished(&self, i: usize) -> bool {
        let t = &self.tails[i];
        t.stopped || t.end.is_some()
    }

    /// Appends newly written bytes of file `i` to its buffer.
    fn read_some(&mut self, i: usize) -> io::Result<bool> {
        let t = &mut self.tails[i];
        if t.stopped || t.end.is_some() {
            return Ok(false);
        }
        let len = t.file.metadata()?.len();
        let read_to = t.consumed + t.buf.len() as u64;
        if len < read_to {
            t.stopped = true;
            return Err(io::Error::other(format!(
                "file shrank from {read_to} to {len} bytes while being read (truncated or replaced)"
            )));
        }
        let want = ((len - read_to) as usize).min(READ_CHUNK);
        if want == 0 {
            return Ok(false);
        }
        let start = t.buf.len();
        t.buf.resize(start + want, 0);
        let mut got = 0;
        while got < want {
            match t.file.read(&mut t.buf[start + got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    t.buf.truncate(start + got);
                    return Err(e);
                }
            }
        }
        t.buf.truncate(start + got);
        Ok(read_to + (got as u64) < len)
    }

    /// Decodes every complete frame in file `i`'s buffer.
    fn decode(&mut self, i: usize, rows: &mut Vec<Row>) {
        let mut pos = 0usize;
        if self.tails[i].header.is_none() && !self.tails[i].stopped {
            let parsed = decode_header(&self.tails[i].buf).map(|(_, len)| len);
            match parsed {
                Ok(len) => {
                    let header_bytes = self.tails[i].buf[..len].to_vec();
                    if let Some((info, _)) = header_info(&header_bytes) {
                        self.start_file_chain(i, &info, &header_bytes);
                        self.tails[i].header = Some(info);
                    }
                    pos = len;
                }
                // Not all of the header is there yet (a file being created).
                Err(fltpolicy_core::record::frame::HeaderError::Truncated) => return,
                Err(e) => {
                    let t = &mut self.tails[i];
                    self.errors.push(format!("{}: {e}", display(&t.path)));
                    t.stopped = true;
                    return;
                }
            }
        }
        // Work on the buffer outside the tail so the chain and the error
        // list can be updated while frames borrow from it.
        let buf = std::mem::take(&mut self.tails[i].buf);
        let consumed = self.tails[i].consumed;
        while !self.tails[i].stopped && self.tails[i].end.is_none() && pos < buf.len() {
            let offset = consumed + pos as u64;
            let f = match parse_frame(&buf[pos..]) {
                FrameParse::Incomplete { .. } => break,
                FrameParse::Bad(e) => {
                    self.damaged(i, offset, &e);
                    break;
                }
                FrameParse::Frame(f) => f,
            };
            let tag_ok = self
                .chain
                .as_mut()
                .map(|c| c.advance(&f.len_le, f.body) == f.tag);
            let rec = match decode_body(f.body) {
                Ok(rec) => rec,
                Err(e) => {
                    self.damaged(i, offset, &e);
                    break;
                }
            };
            if tag_ok == Some(false) {
                let reason = format!("chain tag mismatch at seq {}", rec.seq());
                self.break_chain(i, offset, Some(rec.seq()), reason);
            }
            if let Some(want) = self.next_seq {
                if rec.seq() != want {
                    let reason = format!("sequence gap: expected seq {want}, found {}", rec.seq());
                    self.break_chain(i, offset, Some(rec.seq()), reason);
                }
            }
            self.next_seq = Some(rec.seq().wrapping_add(1));
            if let Record::End(e) = &rec {
                self.tails[i].end = Some(e.reason);
            }
            rows.push(to_row(&rec, i, offset, &mut self.interner));
            pos += f.total;
        }
        let t = &mut self.tails[i];
        t.buf = buf;
        t.buf.drain(..pos);
        t.consumed += pos as u64;
        if t.end.is_some() && !t.buf.is_empty() {
            let msg = format!(
                "{}: {} bytes after the end record at {}",
                display(&t.path),
                t.buf.len(),
                t.consumed
            );
            t.buf.clear();
            self.errors.push(msg);
        }
    }

    /// Damage at `offset` of file `i`: reading it stops there.
    fn damaged(&mut self, i: usize, offset: u64, e: &dyn std::fmt::Display) {
        let msg = format!(
            "{} @ {offset}: {e}; reading stopped there",
            display(&self.tails[i].path)
        );
        self.break_chain(i, offset, None, e.to_string());
        self.errors.push(msg);
        self.tails[i].stopped = true;
    }

    /// Starts (or continues) the chain at file `i`'s header.
    fn start_file_chain(&mut self, i: usize, h: &HeaderInfo, header_bytes: &[u8]) {
        // Files of one session follow each other by index, and sequence
        // numbers run on across them; both are checked even when the chain
        // cannot be (a keyed log without its key).
        let prev = i.checked_sub(1).and_then(|p| self.tails[p].header.clone());
        let same_session = prev
            .as_ref()
            .is_some_and(|ph| ph.session_id == h.session_id);
        match (&prev, self.next_seq) {
            (Some(ph), _) if same_session && h.file_index != ph.file_index.wrapping_add(1) => {
                let reason = format!(
                    "file index {} follows {}: a file of the chain is missing",
                    h.file_index, ph.file_index
                );
                self.break_chain(i, 0, None, reason);
            }
            (_, Some(want)) if same_session && h.first_seq != want => {
                let reason = format!(
                    "file starts at seq {}, but the previous file ended before seq {want}",
                    h.first_seq
                );
                self.break_chain(i, 0, Some(h.first_seq), reason);
            }
            _ => {}
        }
        self.next_seq = Some(h.first_seq);
        let key = match h.sealing {
            Sealing::Sha256 => None,
            Sealing::HmacSha256 { key_id: want } => match self.key {
                Some(k) if key_id(&k) == want => Some(k),
                Some(_) => {
                    self.set_unchecked(format!(
                        "{}: sealed with another key",
                        display(&self.tails[i].path)
                    ));
                    return;
                }
                None => {
                    self.set_unchecked("keyed chain (pass --key-file to check it)".to_owned());
                    return;
                }
            },
        };
        // The link to the previous file of the same session.
        if let (true, Some(chain)) = (same_session, &self.chain) {
            if chain.value() != h.prev_chain {
                let reason = "header does not continue the previous file's chain".to_owned();
                self.break_chain(i, 0, None, reason);
            }
        }
        if matches!(self.chain_state, ChainState::Broken { .. }) {
            return;
        }
        self.chain = Some(Chain::start(header_bytes, key.as_ref()));
        if self.chain_state == ChainState::Unknown {
            self.chain_state = ChainState::Intact;
        }
    }

    fn set_unchecked(&mut self, why: String) {
        self.chain = None;
        if !matches!(self.chain_state, ChainState::Broken { .. }) {
            self.chain_state = ChainState::Unchecked(why);
        }
    }

    fn break_chain(&mut self, file: usize, offset: u64, seq: Option<u64>, reason: String) {
        self.chain = None;
        if !matches!(self.chain_state, ChainState::Broken { .. }) {
            let reason = format!("{} @ {offset}: {reason}", display(&self.tails[file].path));
            self.chain_state = ChainState::Broken {
                file,
                offset,
                seq,
                reason,
            };
        }
    }

    /// After an `End(rotated)`, the file that continues the chain.
    fn find_next_file(&self) -> Option<Tail> {
        let last = self.tails.last()?;
        let lh = last.header.as_ref()?;
        let (dir, stem) = self.rotation_dir.as_ref()?;
        let entries = fs::read_dir(dir).ok()?;
        let open: Vec<PathBuf> = self
            .tails
            .iter()
            .filter_map(|t| fs::canonicalize(&t.path).ok())
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem.as_str()) {
                continue;
            }
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file())
                || fs::canonicalize(&path).is_ok_and(|c| open.contains(&c))
            {
                continue;
            }
            let Some((h, _)) = read_header_prefix(&path).ok().and_then(|b| header_info(&b)) else {
                continue;
            };
            if h.session_id == lh.session_id && h.file_index == lh.file_index.wrapping_add(1) {
                let file = File::open(&path).ok()?;
                return Some(Tail {
                    path,
                    file,
                    consumed: 0,
                    buf: Vec::new(),
                    header: None,
                    end: None,
                    stopped: false,
                    pending_at_last_poll: None,
                });
            }
        }
        None
    }

    /// The state the status line shows. `follow`: an incomplete tail only
    /// counts as torn once it has not grown for a whole poll.
    pub fn status(&mut self, follow: bool) -> SourceStatus {
        let mut torn = None;
        for (i, t) in self.tails.iter_mut().enumerate() {
            let pending = (!t.buf.is_empty() && !t.stopped).then_some((t.consumed, t.buf.len()));
            let stale = pending.is_some() && (!follow || pending == t.pending_at_last_poll);
            t.pending_at_last_poll = pending;
            if stale && torn.is_none() {
                torn = Some((i, t.consumed));
            }
        }
        SourceStatus {
            files: self.tails.iter().map(|t| display(&t.path)).collect(),
            torn_tail: torn,
            chain: self.chain_state.clone(),
            error: self.errors.last().cloned(),
            host: self
                .tails
                .iter()
                .find_map(|t| t.header.as_ref().map(|h| h.host.clone())),
        }
    }
}

/// Turns one decoded record into a row.
pub fn to_row(rec: &Record<'_>, file: usize, offset: u64, interner: &mut Interner) -> Row {
    let body = match rec {
        Record::Event(e) => {
            let d = &e.data;
            RowBody::Event(EventRow {
                op: d.op,
                path: d.path.to_owned(),
                pid: d.pid,
                ppid: d.ppid,
                image: interner.intern(d.image),
                user: interner.intern(d.user),
                size: d.size,
                paging: d.flags & flags::PAGING != 0,
                action: d.action,
                rule: d.rule,
                line: d.line,
                tag: interner.intern(d.tag),
                policy_hash: d.policy.hash,
                generation: d.policy.generation,
                status: d.status,
                flags: d.flags,
            })
        }
        Record::Dropped(d) => RowBody::Dropped(DropRow {
            count: d.count,
            after_seq: d.after_seq,
            seq: d.seq,
            since_ns: d.since_ns,
            reason: d.reason.name(),
        }),
        Record::End(e) => RowBody::End(EndRow {
            reason: match e.reason {
                EndReason::Rotated => "rotated",
                EndReason::Shutdown => "shutdown",
            },
        }),
    };
    Row {
        seq: rec.seq(),
        time_ns: rec.time_ns(),
        file,
        offset,
        body,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fltpolicy_core::event::{Action, Op};
    use fltpolicy_core::record::frame::{encode_frame, encode_header, FileHeader, MAX_FRAME};
    use fltpolicy_core::record::{
        DropReason, DropRecord, EndRecord, EventData, EventRecord, PolicyId,
    };
    use std::io::Write;

    /// Writes log files frame by frame, the way the flush writer does.
    pub(crate) struct LogWriter {
        file: File,
        chain: Chain,
        pub seq: u64,
        session: [u8; 16],
        index: u32,
        key: Option<[u8; KEY_BYTES]>,
    }

    impl LogWriter {
        pub fn create(path: &Path, key: Option<[u8; KEY_BYTES]>) -> LogWriter {
            Self::create_file(path, key, [9; 16], 0, 1, [0; 32])
        }

        fn create_file(
            path: &Path,
            key: Option<[u8; KEY_BYTES]>,
            session: [u8; 16],
            index: u32,
            first_seq: u64,
            prev_chain: [u8; 32],
        ) -> LogWriter {
            let sealing = key.map_or(Sealing::Sha256, |k| Sealing::HmacSha256 {
                key_id: key_id(&k),
            });
            let h = FileHeader {
                host: "testhost",
                boot_id: [1; 16],
                session_id: session,
                created_ns: 1_000 + u64::from(index),
                file_index: index,
                first_seq,
                prev_chain,
                sealing,
            };
            let mut buf = [0u8; MAX_HEADER];
            let n = encode_header(&h, &mut buf).unwrap();
            let mut file = File::create(path).unwrap();
            file.write_all(&buf[..n]).unwrap();
            LogWriter {
                file,
                chain: Chain::start(&buf[..n], key.as_ref()),
                seq: first_seq,
                session,
                index,
                key,
            }
        }

        pub fn frame(&mut self, rec: &Record<'_>) -> Vec<u8> {
            let mut buf = vec![0u8; MAX_FRAME];
            let n = encode_frame(rec, &mut self.chain, &mut buf).unwrap();
            buf.truncate(n);
            buf
        }

        pub fn write_raw(&mut self, bytes: &[u8]) {
            self.file.write_all(bytes).unwrap();
        }

        pub fn event(&mut self, t_s: u64, image: &str, op: Op, path: &str) -> u64 {
            let seq = self.seq;
            self.seq += 1;
            let rec = Record::Event(EventRecord {
                seq,
                data: EventData {
                    time_ns: t_s * 1_000_000_000,
                    op: Some(op),
                    action: Action::Log.into(),
                    pid: 100 + seq,
                    ppid: 1,
                    rule: Some(1),
                    line: 2,
                    policy: PolicyId::new(&[0x5a; 32], 3),
                    path,
                    image,
                    user: "0",
                    tag: "T",
                    ..Default::default()
                },
            });
            let f = self.frame(&rec);
            self.write_raw(&f);
            seq
        }

        pub fn dropped(&mut self, t_s: u64, count: u64) {
            let seq = self.seq;
            self.seq += 1;
            let rec = Record::Dropped(DropRecord {
                seq,
                time_ns: t_s * 1_000_000_000,
                since_ns: 0,
                after_seq: seq - 1,
                count,
                reason: DropReason::QueueFull,
            });
            let f = self.frame(&rec);
            self.write_raw(&f);
        }

        pub fn end(&mut self, reason: EndReason) {
            let seq = self.seq;
            self.seq += 1;
            let rec = Record::End(EndRecord {
                seq,
                time_ns: 0,
                reason,
            });
            let f = self.frame(&rec);
            self.write_raw(&f);
        }

        /// Ends this file as rotated and starts the next one at `path`.
        pub fn rotate(mut self, path: &Path) -> LogWriter {
            self.end(EndReason::Rotated);
            let prev = self.chain.value();
            Self::create_file(path, self.key, self.session, self.index + 1, self.seq, prev)
        }
    }

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn tmp() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "fltpolicy-view-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn drain(src: &mut Source) -> Vec<Row> {
        let mut all = Vec::new();
        loop {
            let (rows, more) = src.poll();
            all.extend(rows);
            if !more {
                return all;
            }
        }
    }

    fn paths(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| match &r.body {
                RowBody::Event(e) => e.path.clone(),
                RowBody::Dropped(d) => format!("drop {}", d.count),
                RowBody::End(e) => format!("end {}", e.reason),
            })
            .collect()
    }

    #[test]
    fn reads_events_drops_and_end_with_intact_chain() {
        let d = tmp();
        let p = d.path().join("audit.log");
        let mut w = LogWriter::create(&p, None);
        w.event(10, "/usr/bin/cat", Op::Read, "/srv/a");
        w.dropped(11, 4);
        w.event(12, "/usr/bin/vim", Op::Write, "/srv/b");
        w.end(EndReason::Shutdown);
        let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
        let rows = drain(&mut s);
        assert_eq!(paths(&rows), ["/srv/a", "drop 4", "/srv/b", "end shutdown"]);
        let e = rows[0].event().unwrap();
        assert_eq!(
            (rows[0].seq, e.pid, &*e.image, e.generation),
            (1, 101, "/usr/bin/cat", 3)
        );
        assert_eq!(e.policy_hash, [0x5a; 16]);
        let st = s.status(false);
        assert_eq!(st.chain, ChainState::Intact);
        assert_eq!(st.torn_tail, None);
        assert_eq!(st.error, None);
        assert_eq!(st.host.as_deref(), Some("testhost"));
    }

    #[test]
    fn follow_picks_up_growth_and_a_torn_tail_that_completes() {
        let d = tmp();
        let p = d.path().join("audit.log");
        let mut w = LogWriter::create(&p, None);
        w.event(1, "/bin/a", Op::Open, "/x/1");
        let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
        assert_eq!(drain(&mut s).len(), 1);
        assert_eq!(drain(&mut s).len(), 0, "nothing new");
        // Half a frame: not a row yet.
        let rec = Record::Event(EventRecord {
            seq: 2,
            data: EventData {
                path: "/x/2",
                op: Some(Op::Read),
                ..Default::default()
            },
        });
        let frame = w.frame(&rec);
        w.write_raw(&frame[..frame.len() / 2]);
        assert!(drain(&mut s).is_empty());
        // First status after the tail appeared: maybe a write in progress.
        assert_eq!(s.status(true).torn_tail, None);
        // Unchanged for a whole poll: reported as torn.
        assert!(drain(&mut s).is_empty());
        let at = s.tails[0].consumed;
        assert_eq!(
            at + (frame.len() / 2) as u64,
            fs::metadata(&p).unwrap().len()
        );
        assert_eq!(s.status(true).torn_tail, Some((0, at)));
        // The rest arrives: the record appears and the warning goes away.
        w.write_raw(&frame[frame.len() / 2..]);
        w.seq = 3;
        w.event(3, "/bin/a", Op::Open, "/x/3");
        assert_eq!(paths(&drain(&mut s)), ["/x/2", "/x/3"]);
        let st = s.status(true);
        assert_eq!(st.torn_tail, None);
        assert_eq!(st.chain, ChainState::Intact);
    }

    #[test]
    fn torn_tail_reported_without_follow() {
        let d = tmp();
        let p = d.path().join("audit.log");
        let mut w = LogWriter::create(&p, None);
        w.event(1, "/bin/a", Op::Open, "/x/1");
        let at = fs::metadata(&p).unwrap().len();
        w.write_raw(&[7, 0, 0]);
        let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
        assert_eq!(
            drain(&mut s).len(),
            1,
            "every complete record before the tail is read"
        );
        assert_eq!(s.status(false).torn_tail, Some((0, at)));
    }

    #[test]
    fn rotation_is_followed_by_header_whatever_the_name() {
        let d = tmp();
        let p0 = d.path().join("audit.log");
        let mut w = LogWriter::create(&p0, None);
        w.event(1, "/bin/a", Op::Open, "/r/1");
        let mut s = Source::open(std::slice::from_ref(&p0), None).unwrap();
        assert_eq!(drain(&mut s).len(), 1);
        // The writer renames nothing and starts `audit-000001.log`.
        let mut w = w.rotate(&d.path().join("audit-000001.log"));
        w.event(2, "/bin/a", Op::Open, "/r/2");
        // An unrelated file with the same stem is ignored.
        LogWriter::create_file(&d.path().join("audit.other"), None, [1; 16], 1, 1, [0; 32]);
        let rows = drain(&mut s);
        assert_eq!(paths(&rows), ["end rotated", "/r/2"]);
        assert_eq!(rows[1].file, 1);
        let st = s.status(true);
        assert_eq!(st.files.len(), 2);
        assert!(st.files[1].ends_with("audit-000001.log"));
        assert_eq!(st.chain, ChainState::Intact);
    }

    #[test]
    fn files_given_out_of_order_are_read_in_chain_order() {
        let d = tmp();
        let p0 = d.path().join("a.2.log");
        let p1 = d.path().join("a.10.log");
        let mut w = LogWriter::create(&p0, None);
        w.event(1, "/bin/a", Op::Open, "/o/1");
        let mut w = w.rotate(&p1);
        w.event(2, "/bin/a", Op::Open, "/o/2");
        let mut s = Source::open(&[p1.clone(), p0.clone()], None).unwrap();
        let rows = drain(&mut s);
        assert_eq!(paths(&rows), ["/o/1", "end rotated", "/o/2"]);
        assert_eq!(s.status(false).chain, ChainState::Intact);
    }

    #[test]
    fn a_file_named_twice_is_read_once() {
        let d = tmp();
        let p = d.path().join("twice.log");
        let mut w = LogWriter::create(&p, None);
        w.event(1, "/bin/a", Op::Open, "/t/1");
        let again = d.path().join(".").join("twice.log");
        let mut s = Source::open(&[p.clone(), again], None).unwrap();
        assert_eq!(paths(&drain(&mut s)), ["/t/1"]);
        let st = s.status(false);
        assert_eq!((st.files.len(), st.chain), (1, ChainState::Intact));
    }

    #[test]
    fn missing_middle_file_breaks_the_chain() {
        let d = tmp();
        let p0 = d.path().join("m.0.log");
        let mut w = LogWriter::create(&p0, None);
        w.event(1, "/bin/a", Op::Open, "/m/1");
        let w = w.rotate(&d.path().join("m.1.log"));
        let mut w = w.rotate(&d.path().join("m.2.log"));
        w.event(2, "/bin/a", Op::Open, "/m/2");
        let mut s = Source::open(&[p0, d.path().join("m.2.log")], None).unwrap();
        drain(&mut s);
        match s.status(false).chain {
            ChainState::Broken { file, reason, .. } => {
                assert_eq!(file, 1);
                assert!(reason.contains("missing"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn edited_record_breaks_the_chain_and_damage_stops_reading() {
        let d = tmp();
        let p = d.path().join("audit.log");
        let mut w = LogWriter::create(&p, None);
        w.event(1, "/bin/a", Op::Open, "/e/1");
        w.event(2, "/bin/a", Op::Open, "/e/2");
        w.event(3, "/bin/a", Op::Open, "/e/3");
        let mut bytes = fs::read(&p).unwrap();
        // Re-encode record 2 with a valid CRC but a different path: a
        // tamperer who does not recompute the chain.
        let (_, hlen) = decode_header(&bytes).unwrap();
        let FrameParse::Frame(f1) = parse_frame(&bytes[hlen..]) else {
            panic!()
        };
        let at2 = hlen + f1.total;
        let FrameParse::Frame(f2) = parse_frame(&bytes[at2..]) else {
            panic!()
        };
        let total2 = f2.total;
        let body = f2.body.to_vec();
        let edited: Vec<u8> = {
            let mut b = body.clone();
            let pos = b.windows(4).position(|w| w == b"/e/2").unwrap();
            b[pos..pos + 4].copy_from_slice(b"/e/X");
            b
        };
        let mut frame = bytes[at2..at2 + total2].to_vec();
        frame[4..4 + edited.len()].copy_from_slice(&edited);
        let crc_at = frame.len() - 4;
        let crc = fltpolicy_core::record::frame::crc32c(&frame[..crc_at]);
        frame[crc_at..].copy_from_slice(&crc.to_le_bytes());
        bytes[at2..at2 + total2].copy_from_slice(&frame);
        fs::write(&p, &bytes).unwrap();
        let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
        assert_eq!(drain(&mut s).len(), 3, "an edited record still shows");
        match s.status(false).chain {
            ChainState::Broken { seq, offset, .. } => {
                assert_eq!((seq, offset), (Some(2), at2 as u64));
            }
            other => panic!("{other:?}"),
        }
        // A flipped bit without a CRC fix: damage, reading stops there.
        bytes[at2 + 6] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let mut s = Source::open(&[p], None).unwrap();
        assert_eq!(drain(&mut s).len(), 1);
        let st = s.status(false);
        assert!(st.error.unwrap().contains("checksum"));
        assert!(matches!(st.chain, ChainState::Broken { .. }));
    }

    #[test]
    fn keyed_chain_checked_only_with_the_key() {
        let d = tmp();
        let p = d.path().join("k.log");
        let key = [42u8; KEY_BYTES];
        let mut w = LogWriter::create(&p, Some(key));
        w.event(1, "/bin/a", Op::Open, "/k/1");
        let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
        assert_eq!(drain(&mut s).len(), 1);
        assert!(matches!(s.status(false).chain, ChainState::Unchecked(_)));
        let mut s = Source::open(std::slice::from_ref(&p), Some(key)).unwrap();
        drain(&mut s);
        assert_eq!(s.status(false).chain, ChainState::Intact);
        let mut s = Source::open(&[p], Some([1; KEY_BYTES])).unwrap();
        drain(&mut s);
        assert!(
            matches!(s.status(false).chain, ChainState::Unchecked(ref w) if w.contains("another key"))
        );
    }

    #[test]
    fn not_a_log_and_missing_file_are_clear_errors() {
        let d = tmp();
        let p = d.path().join("junk.log");
        fs::write(&p, b"hello world, definitely not a log").unwrap();
        let mut s = Source::open(&[p], None).unwrap();
        assert!(drain(&mut s).is_empty());
        assert!(s.status(false).error.unwrap().contains("bad magic"));
        let e = Source::open(&[d.path().join("nope.log")], None).unwrap_err();
        assert!(e.to_string().contains("nope.log"), "{e}");
        let e = Source::open(&[d.path().to_path_buf()], None).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn large_log_loads_in_slices() {
        let d = tmp();
        let p = d.path().join("big.log");
        let mut w = LogWriter::create(&p, None);
        let long = "/big/".repeat(200);
        let n = 2 * READ_CHUNK / 1000 + 10;
        for i in 0..n as u64 {
            w.event(i, "/bin/a", Op::Read, &long);
        }
        let mut s = Source::open(&[p], None).unwrap();
        let (first, more) = s.poll();
        assert!(more, "one poll reads at most READ_CHUNK");
        assert!(!first.is_empty() && first.len() < n);
        let rest = drain(&mut s);
        assert_eq!(first.len() + rest.len(), n);
        assert_eq!(s.status(false).chain, ChainState::Intact);
    }

    #[test]
    fn sequence_gap_is_reported_even_for_keyed_logs_without_the_key() {
        let d = tmp();
        let p = d.path().join("g.log");
        let mut w = LogWriter::create(&p, Some([3; KEY_BYTES]));
        w.event(1, "/bin/a", Op::Open, "/g/1");
        w.seq += 2; // two records vanish
        w.event(2, "/bin/a", Op::Open, "/g/4");
        let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
        assert_eq!(drain(&mut s).len(), 2);
        match s.status(false).chain {
            ChainState::Broken { seq, reason, .. } => {
                assert_eq!(seq, Some(4));
                assert!(reason.contains("expected seq 2, found 4"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The viewer's incremental source and the audit crate's reader agree
    /// record for record on a log written by the real flush thread (with
    /// rotation and a drop record).
    #[test]
    fn agrees_with_the_audit_reader_on_a_pipeline_log() {
        use fltpolicy_audit::reader::RecordBody as RB;
        use fltpolicy_audit::writer::{rotated_files, FileSink, FlushConfig, FlushThread};
        use fltpolicy_core::record::writer::MIN_FILE_BYTES;
        use std::time::Duration;

        let d = tmp();
        let base = d.path().join("p.fplog");
        let cfg = FlushConfig {
            interval: Duration::from_millis(5),
            ring_words: 1 << 14,
            max_file_bytes: MIN_FILE_BYTES.max(16 << 10),
            ..FlushConfig::default()
        };
        let flush = FlushThread::start(FileSink::create(&base).unwrap(), cfg).unwrap();
        let q = flush.producer();
        let paths: Vec<String> = (0..300)
            .map(|i| format!("/p/{i:04}/{}", "y".repeat(i % 90)))
            .collect();
        for (i, p) in paths.iter().enumerate() {
            let data = EventData {
                time_ns: 1_000 + i as u64,
                op: Some(Op::ALL[i % 8]),
                action: if i % 7 == 0 {
                    Action::Deny
                } else {
                    Action::Log
                }
                .into(),
                pid: i as u64,
                path: p,
                image: "/usr/bin/x",
                user: "u",
                tag: "t",
                ..Default::default()
            };
            q.push(&data).unwrap();
            if i == 150 {
                q.count_source_drop(3);
            }
        }
        let (_, stats) = flush.shutdown().unwrap();
        assert!(stats.files >= 2, "{stats:?}");
        let files = rotated_files(&base);

        let theirs: Vec<(u64, u64, usize, u64, String)> = fltpolicy_audit::LogReader::open(&files)
            .unwrap()
            .map(|r| r.unwrap())
            .map(|r| {
                let what = match &r.body {
                    RB::Event(e) => {
                        format!("{} {} {} {}", e.path, e.pid, e.action.name(), e.op_name())
                    }
                    RB::Dropped(d) => format!("drop {} after {}", d.count, d.after_seq),
                    RB::End(e) => format!("end {:?}", e.reason).to_lowercase(),
                };
                (r.seq, r.time_ns, r.file, r.offset, what)
            })
            .collect();
        // Given newest first: the source puts them in chain order.
        let mut given = files.clone();
        given.reverse();
        let mut s = Source::open(&given, None).unwrap();
        let ours: Vec<(u64, u64, usize, u64, String)> = drain(&mut s)
            .into_iter()
            .map(|r| {
                let what = match &r.body {
                    RowBody::Event(e) => format!(
                        "{} {} {} {}",
                        e.path,
                        e.pid,
                        e.action.name(),
                        e.op.map_or("unknown", |o| o.name())
                    ),
                    RowBody::Dropped(d) => format!("drop {} after {}", d.count, d.after_seq),
                    RowBody::End(e) => format!("end {}", e.reason),
                };
                (r.seq, r.time_ns, r.file, r.offset, what)
            })
            .collect();
        assert_eq!(ours.len(), 300 + 1 + stats.files as usize);
        assert_eq!(ours, theirs);
        let st = s.status(false);
        assert_eq!(
            (st.chain, st.torn_tail, st.error),
            (ChainState::Intact, None, None)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let d = tmp();
        let p = d.path().join("f.log");
        let mut w = LogWriter::create(&p, None);
        for i in 0..20 {
            w.event(i, "/bin/a", Op::Read, "/f");
        }
        let good = fs::read(&p).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200 {
            let mut b = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 32) as u8;
            }
            x ^= x << 13;
            b.truncate((x as usize) % (b.len() + 1));
            fs::write(&p, &b).unwrap();
            let mut s = Source::open(std::slice::from_ref(&p), None).unwrap();
            let rows = drain(&mut s);
            assert!(rows.len() <= 20);
            let _ = s.status(false);
        }
    }
}

//! The viewer's feed: records from [`fltpolicy_audit::reader`] turned into
//! rows, incrementally, for the first load (in slices, drawing between
//! them) and for follow mode.
//!
//! All reading — frames, checksums, the chain within and across files,
//! sequence numbers, links between files, rotation to the next file of a
//! live log (found by its header, whatever its name), incomplete tails —
//! is the audit reader's ([`LogReader::open_live`]); this module only
//! paces it, turns records into rows (interning repeated strings) and
//! turns the reader's findings into the status line's chain state. An
//! incomplete frame at the end counts as a torn tail only once it has not
//! grown for a whole poll (or at once, outside follow mode).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use std::cell::RefCell;
use std::rc::Rc;

use fltpolicy_audit::reader::{
    read_record_in, DecodedRecord, LogReader, ReadError, ReadOptions, RecordBody,
};
use fltpolicy_core::record::chain::{Sealing, KEY_BYTES};
use fltpolicy_core::record::{flags, EndReason};

use super::app::{
    ChainState, DropRow, EndRow, EventRow, Interner, Row, RowBody, RowLoader, SourceStatus,
};

/// Bytes of log decoded per poll at most: bounds the work between two
/// frames drawn while a large log loads (about 20k records per MiB... a
/// few tens of milliseconds), so the screen stays responsive.
pub const READ_CHUNK: usize = 4 << 20;

/// Reads an incremental stream of rows from one or more log files.
#[derive(Debug)]
pub struct Source {
    reader: LogReader,
    interner: Interner,
    key: Option<[u8; KEY_BYTES]>,
    chain_state: ChainState,
    /// A torn tail in a file that is not the last (found by the reader).
    torn: Option<(usize, u64)>,
    errors: Vec<String>,
    pending_at_last_poll: Option<(usize, u64, u64)>,
    /// Offset of the last record returned, per file (to count bytes).
    last_offset: Option<(usize, u64)>,
    /// The reader's files, in its order (shared with [`DiskRows`]).
    paths: Rc<RefCell<Vec<PathBuf>>>,
}

/// Reads rows back from the log files by file index and offset, for an
/// [`App`](super::app::App) that keeps only its compact index in memory.
#[derive(Debug)]
pub struct DiskRows {
    paths: Rc<RefCell<Vec<PathBuf>>>,
    open: RefCell<Vec<Option<fs::File>>>,
    interner: RefCell<Interner>,
}

impl RowLoader for DiskRows {
    fn load(&self, file: usize, offset: u64) -> Option<Row> {
        let path = self.paths.borrow().get(file)?.clone();
        let mut open = self.open.borrow_mut();
        if open.len() <= file {
            open.resize_with(file + 1, || None);
        }
        if open[file].is_none() {
            open[file] = fs::File::open(&path).ok();
        }
        let f = open[file].as_ref()?;
        let rec = read_record_in(f, &path, file, offset).ok()?;
        Some(to_row(rec, &mut self.interner.borrow_mut()))
    }
}

/// Display name of a path: the file name as given.
fn display(path: &Path) -> String {
    path.display().to_string()
}

impl Source {
    /// Opens `paths`. Files whose headers can be read are put in chain
    /// order, so `audit.*.log` works whatever order the shell's glob
    /// produces. `key` is the sealing key of an HMAC-sealed log; without
    /// it such a chain is not checked.
    pub fn open(paths: &[PathBuf], key: Option<[u8; KEY_BYTES]>) -> io::Result<Source> {
        for p in paths {
            let meta = fs::metadata(p)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            if !meta.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: not a regular file", p.display()),
                ));
            }
        }
        let reader = LogReader::open_live(paths, ReadOptions { key, anchor: None })
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Source {
            reader,
            interner: Interner::default(),
            key,
            chain_state: ChainState::Unknown,
            torn: None,
            errors: Vec::new(),
            pending_at_last_poll: None,
            last_offset: None,
            paths: Rc::default(),
        })
    }

    /// A loader that reads this source's rows back by offset.
    pub fn loader(&self) -> DiskRows {
        DiskRows {
            paths: Rc::clone(&self.paths),
            open: RefCell::default(),
            interner: RefCell::default(),
        }
    }

    fn share_paths(&self) {
        let files = self.reader.files();
        if self.paths.borrow().len() != files.len() {
            *self.paths.borrow_mut() = files.iter().map(|f| f.path.clone()).collect();
        }
    }

    /// Reads what the files gained since the last poll (about
    /// [`READ_CHUNK`] bytes at most) and returns the new rows, and whether
    /// more is already waiting (poll again before sleeping).
    pub fn poll(&mut self) -> (Vec<Row>, bool) {
        let mut rows = Vec::new();
        let mut bytes = 0u64;
        while bytes < READ_CHUNK as u64 {
            let Some(item) = self.reader.next() else {
                self.share_paths();
                return (rows, false);
            };
            match item {
                Ok(rec) => {
                    bytes += match self.last_offset {
                        Some((f, o)) if f == rec.file && rec.offset > o => rec.offset - o,
                        _ => rec.offset.max(1),
                    };
                    self.last_offset = Some((rec.file, rec.offset));
                    rows.push(to_row(rec, &mut self.interner));
                }
                Err(e) => self.finding(e),
            }
        }
        self.share_paths();
        (rows, true)
    }

    fn file_of(&self, path: &Path) -> usize {
        self.reader
            .files()
            .iter()
            .position(|f| f.path == path)
            .unwrap_or(0)
    }

    /// What the reader found wrong, as the status line shows it.
    fn finding(&mut self, e: ReadError) {
        let file = self.file_of(e.path());
        let offset = e.offset().unwrap_or(0);
        match &e {
            ReadError::ChainBroken { seq, .. } => {
                let reason = format!("{e}");
                self.break_chain(file, offset, Some(*seq), reason);
            }
            ReadError::SeqGap { found, .. } => {
                let reason = format!("{e}");
                self.break_chain(file, offset, Some(*found), reason);
            }
            ReadError::NotLinked { .. }
            | ReadError::AnchorMismatch { .. }
            | ReadError::AnchorNotReached { .. } => {
                let reason = format!("{e}");
                self.break_chain(file, offset, None, reason);
            }
            ReadError::Corrupt { .. } => {
                self.break_chain(file, offset, None, e.to_string());
                self.errors.push(format!("{e}; reading stopped there"));
            }
            ReadError::TornTail { .. } => {
                self.torn.get_or_insert((file, offset));
            }
            ReadError::Key { .. } => {
                if !matches!(self.chain_state, ChainState::Broken { .. }) {
                    self.chain_state = ChainState::Unchecked(format!(
                        "{}: sealed with another key",
                        display(e.path())
                    ));
                }
            }
            ReadError::Io { .. } | ReadError::Header { .. } => self.errors.push(e.to_string()),
        }
    }

    fn break_chain(&mut self, file: usize, offset: u64, seq: Option<u64>, reason: String) {
        if !matches!(self.chain_state, ChainState::Broken { .. }) {
            self.chain_state = ChainState::Broken {
                file,
                offset,
                seq,
                reason,
            };
        }
    }

    /// The state the status line shows. `follow`: an incomplete tail only
    /// counts as torn once it has not grown for a whole poll.
    pub fn status(&mut self, follow: bool) -> SourceStatus {
        let pending = self.reader.pending_tail();
        let stale = pending.is_some() && (!follow || pending == self.pending_at_last_poll);
        self.pending_at_last_poll = pending;
        let torn = self.torn.or(if stale {
            pending.map(|(f, o, _)| (f, o))
        } else {
            None
        });
        let files = self.reader.files();
        let read: Vec<_> = files
            .iter()
            .filter(|f| {
                f.header.is_some() && (f.summary.records > 0 || f.summary.end_chain.is_some())
            })
            .collect();
        if matches!(self.chain_state, ChainState::Unknown | ChainState::Intact) {
            let keyed_unchecked = files.iter().any(|f| {
                matches!(
                    f.header.as_ref().map(|h| h.sealing),
                    Some(Sealing::HmacSha256 { .. })
                ) && self.key.is_none()
            });
            if keyed_unchecked {
                self.chain_state =
                    ChainState::Unchecked("keyed chain (pass --key-file to check it)".to_owned());
            } else if !read.is_empty() || files.iter().any(|f| f.summary.records > 0) {
                self.chain_state = ChainState::Intact;
            }
        }
        SourceStatus {
            files: files.iter().map(|f| display(&f.path)).collect(),
            torn_tail: torn,
            chain: self.chain_state.clone(),
            error: self.errors.last().cloned(),
            host: files
                .iter()
                .find_map(|f| f.header.as_ref().map(|h| h.host.clone())),
        }
    }
}

/// Turns one record into a row.
pub fn to_row(rec: DecodedRecord, interner: &mut Interner) -> Row {
    let body = match rec.body {
        RecordBody::Event(d) => RowBody::Event(EventRow {
            op: d.op,
            path: d.path,
            pid: d.pid,
            ppid: d.ppid,
            image: interner.intern(&d.image),
            user: interner.intern(&d.user),
            size: d.size,
            paging: d.flags & flags::PAGING != 0,
            action: d.action,
            rule: d.rule,
            line: d.line,
            tag: interner.intern(&d.tag),
            target_path: d.target_path.clone(),
            policy_hash: d.policy.hash,
            generation: d.policy.generation,
            status: d.status,
            flags: d.flags,
        }),
        RecordBody::Dropped(d) => RowBody::Dropped(DropRow {
            count: d.count,
            after_seq: d.after_seq,
            seq: d.seq,
            since_ns: d.since_ns,
            reason: d.reason.name(),
        }),
        RecordBody::End(e) => RowBody::End(EndRow {
            reason: match e.reason {
                EndReason::Rotated => "rotated",
                EndReason::Shutdown => "shutdown",
            },
        }),
    };
    Row {
        seq: rec.seq,
        time_ns: rec.time_ns,
        file: rec.file,
        offset: rec.offset,
        body,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fltpolicy_core::event::{Action, Op};
    use fltpolicy_core::record::chain::{key_id, Chain};
    use fltpolicy_core::record::frame::{decode_header, parse_frame, FrameParse, MAX_HEADER};
    use fltpolicy_core::record::frame::{encode_frame, encode_header, FileHeader, MAX_FRAME};
    use fltpolicy_core::record::Record;
    use fltpolicy_core::record::{
        DropReason, DropRecord, EndRecord, EventData, EventRecord, PolicyId,
    };
    use std::fs::File;
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
        let at = s.reader.pending_tail().unwrap().1;
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

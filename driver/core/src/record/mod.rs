//! The audit log format: records, frames, the file header and the chain.
//!
//! A log file is a [`header`](frame::encode_header) followed by frames:
//!
//! ```text
//! +---------+---------------------+-------------------+--------------+
//! | len u32 | body (len bytes,    | chain tag         | crc32c u32   |
//! | LE      | postcard Record)    | (16 bytes)        | LE           |
//! +---------+---------------------+-------------------+--------------+
//! ```
//!
//! * `body` is a postcard-encoded [`Record`];
//! * the chain tag is the first 16 bytes of the running chain value
//!   `c_i = H(c_{i-1} || len || body)` (SHA-256, or HMAC-SHA256 under a key:
//!   see [`chain`]), so every frame commits to every frame before it, across
//!   rotated files;
//! * the CRC32C covers `len`, `body` and the tag, so damage (a torn write, a
//!   flipped bit) is told apart from tampering (a valid CRC over a wrong tag).
//!
//! Everything here is `no_std` and allocation-free: encoders write into a
//! caller's buffer, decoders borrow from the input. Decoders never panic on
//! any input (the `record_decode` fuzz target checks that) and never trust a
//! length before bounding it by [`MAX_RECORD_BODY`].
//!
//! This module must never allocate, block, or read a clock: times are
//! handed in by the caller (the driver's KeQuerySystemTimePrecise, the
//! host's SystemTime).

pub mod chain;
pub mod frame;
pub mod writer;

use serde::{Deserialize, Serialize};

use crate::event::{Action, EventView, Op, Verdict};

/// Longest path kept in a record, in UTF-8 bytes. Longer paths are cut at a
/// character boundary and [`flags::PATH_TRUNCATED`] is set. 4096 is Linux's
/// `PATH_MAX`; Windows paths can reach 32,767 UTF-16 units, but records that
/// large would let one event fill a CPU's ring, and the prefix that
/// identifies the file is kept.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest process image path kept ([`flags::IMAGE_TRUNCATED`] above it).
/// Images live in a few well-known directories; 1 KiB keeps every real one.
pub const MAX_IMAGE_BYTES: usize = 1024;
/// Longest user name / SID string kept ([`flags::USER_TRUNCATED`] above it).
/// A SID string is at most 184 characters.
pub const MAX_USER_BYTES: usize = 256;
/// Longest rule tag kept ([`flags::TAG_TRUNCATED`] above it).
pub const MAX_TAG_BYTES: usize = 256;

/// Upper bound of the postcard encoding of everything in [`EventData`]
/// except the five strings: 4 varint u64 fields (10 bytes each), the
/// operation (`Option<Op>`: 2), the action and flags bytes, rule (`Option<u32>`: 6), line (5), status
/// (`Option<i32>`: 6), policy hash (16) and generation (10), and a length
/// prefix per string (at most 3 bytes each below 2^21, 4 counted).
pub const EVENT_FIXED_MAX: usize = 4 * 10 + 2 + 1 + 1 + 6 + 5 + 6 + 16 + 10 + 5 * 4;

/// Upper bound of an encoded [`EventData`]: the fixed part plus the string
/// limits (the rename/link destination has the path's limit). The queue
/// reserves at most this much per event.
pub const MAX_EVENT_DATA: usize = EVENT_FIXED_MAX
    + MAX_PATH_BYTES
    + MAX_IMAGE_BYTES
    + MAX_USER_BYTES
    + MAX_TAG_BYTES
    + MAX_PATH_BYTES;

/// Upper bound of a frame body: the record variant (1 byte), the sequence
/// number (varint u64, 10 bytes) and the largest payload. Drop and end
/// records are far smaller. Decoders reject any frame claiming more.
pub const MAX_RECORD_BODY: usize = 1 + 10 + MAX_EVENT_DATA;

/// Bits of [`EventData::flags`]. Every truncation is flagged: nothing is
/// ever cut silently.
pub mod flags {
    /// `path` was longer than [`super::MAX_PATH_BYTES`] and was cut.
    pub const PATH_TRUNCATED: u8 = 1 << 0;
    /// `image` was longer than [`super::MAX_IMAGE_BYTES`] and was cut.
    pub const IMAGE_TRUNCATED: u8 = 1 << 1;
    /// `user` was longer than [`super::MAX_USER_BYTES`] and was cut.
    pub const USER_TRUNCATED: u8 = 1 << 2;
    /// `tag` was longer than [`super::MAX_TAG_BYTES`] and was cut.
    pub const TAG_TRUNCATED: u8 = 1 << 3;
    /// The operation was paging I/O.
    pub const PAGING: u8 = 1 << 4;
    /// `path` (or `target_path`) names a file whose real name is not UTF-8
    /// (Linux): both are then written in the escaped form — each byte of an
    /// invalid sequence as `\xNN`, each `\` doubled — from which the
    /// exact bytes are recovered; policies match that same form.
    pub const PATH_ESCAPED: u8 = 1 << 5;
    /// `target_path` was longer than [`super::MAX_PATH_BYTES`] and was cut.
    pub const TARGET_TRUNCATED: u8 = 1 << 6;
    /// A two-path operation (rename, link) was decided on its destination
    /// (`target_path`): the source matched no rule.
    pub const TARGET_MATCHED: u8 = 1 << 7;
    /// Every defined bit; decoders keep unknown bits (forward compatible).
    pub const ALL: u8 = 0xff;

    /// Names of the set bits, for exports.
    pub fn names(bits: u8) -> impl Iterator<Item = &'static str> {
        [
            (PATH_TRUNCATED, "path_truncated"),
            (IMAGE_TRUNCATED, "image_truncated"),
            (USER_TRUNCATED, "user_truncated"),
            (TAG_TRUNCATED, "tag_truncated"),
            (PAGING, "paging"),
            (PATH_ESCAPED, "path_escaped"),
            (TARGET_TRUNCATED, "target_truncated"),
            (TARGET_MATCHED, "target_matched"),
        ]
        .into_iter()
        .filter(move |(b, _)| bits & b != 0)
        .map(|(_, n)| n)
    }
}

/// Length of the policy hash prefix stored in every record: the first 16
/// bytes of the image's SHA-256 (128 bits identify a policy among any number
/// an organisation will ever deploy, at half the cost per record).
pub const POLICY_ID_BYTES: usize = 16;

/// Which policy decided: a hash prefix and the load generation (the
/// enforcement point counts loads, so two loads of the same image differ).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyId {
    pub hash: [u8; POLICY_ID_BYTES],
    pub generation: u64,
}

impl PolicyId {
    /// The id of a policy with full SHA-256 `hash`, loaded as `generation`.
    pub fn new(hash: &[u8; 32], generation: u64) -> PolicyId {
        let mut h = [0u8; POLICY_ID_BYTES];
        h.copy_from_slice(&hash[..POLICY_ID_BYTES]);
        PolicyId {
            hash: h,
            generation,
        }
    }
}

/// What an enforcement point records about one decided operation. This is
/// what producers push into the queue; the flush thread prefixes a sequence
/// number to make it an [`EventRecord`] (postcard encodes a struct as the
/// concatenation of its fields, so `seq ++ EventData` *is* the record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData<'a> {
    /// Event time, nanoseconds since the Unix epoch (UTC).
    pub time_ns: u64,
    pub op: Option<Op>,
    pub action: ActionCode,
    /// [`flags`] bits.
    pub flags: u8,
    pub pid: u64,
    pub ppid: u64,
    /// File size or transfer length.
    pub size: u64,
    /// 1-based index of the deciding rule.
    pub rule: Option<u32>,
    /// Source line of the deciding rule (0 when none).
    pub line: u32,
    /// Result status (NTSTATUS or negated errno) where the enforcement
    /// point knows it (post-operation), else `None`.
    pub status: Option<i32>,
    pub policy: PolicyId,
    pub path: &'a str,
    pub image: &'a str,
    pub user: &'a str,
    pub tag: &'a str,
    /// The other path of a two-path operation: a rename's (or link's)
    /// destination, `path` being its source. Empty for every other
    /// operation, and where the enforcement point does not know it.
    pub target_path: &'a str,
}

/// [`Action`] as stored: a plain wrapper so that records keep decoding if
/// later versions add actions (unknown codes are kept, not rejected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionCode(pub u8);

impl ActionCode {
    pub fn action(self) -> Option<Action> {
        Action::from_u8(self.0)
    }
    pub fn name(self) -> &'static str {
        self.action().map_or("unknown", Action::name)
    }
}

impl From<Action> for ActionCode {
    fn from(a: Action) -> Self {
        ActionCode(a as u8)
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary. Returns the kept
/// prefix and whether anything was cut.
pub fn clamp_str(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

impl<'a> EventData<'a> {
    /// Builds the record of `ev` decided by `verdict` under `policy`,
    /// truncating (and flagging) every string over its limit, so that the
    /// encoding never exceeds [`MAX_EVENT_DATA`].
    pub fn from_view(
        ev: &EventView<'a>,
        verdict: &Verdict<'a>,
        policy: PolicyId,
        time_ns: u64,
        status: Option<i32>,
    ) -> EventData<'a> {
        let (path, p) = clamp_str(ev.path, MAX_PATH_BYTES);
        let (image, i) = clamp_str(ev.image, MAX_IMAGE_BYTES);
        let (user, u) = clamp_str(ev.user, MAX_USER_BYTES);
        let (tag, t) = clamp_str(verdict.tag, MAX_TAG_BYTES);
        let mut f = 0;
        for (cut, bit) in [
            (p, flags::PATH_TRUNCATED),
            (i, flags::IMAGE_TRUNCATED),
            (u, flags::USER_TRUNCATED),
            (t, flags::TAG_TRUNCATED),
            (ev.paging, flags::PAGING),
        ] {
            if cut {
                f |= bit;
            }
        }
        EventData {
            time_ns,
            op: ev.op,
            action: verdict.action.into(),
            flags: f,
            pid: ev.pid,
            ppid: ev.ppid,
            size: ev.size,
            rule: verdict.rule,
            line: verdict.line,
            status,
            policy,
            path,
            image,
            user,
            tag,
            target_path: "",
        }
    }

    /// Sets the destination of a rename or link ([`EventData::target_path`]),
    /// cut to [`MAX_PATH_BYTES`] and flagged like `path`.
    pub fn with_target(mut self, target: &'a str) -> EventData<'a> {
        let (t, cut) = clamp_str(target, MAX_PATH_BYTES);
        self.target_path = t;
        if cut {
            self.flags |= flags::TARGET_TRUNCATED;
        }
        self
    }

    /// Re-applies the string limits (for data built by hand rather than by
    /// [`EventData::from_view`]), flagging what was cut.
    pub fn clamped(mut self) -> EventData<'a> {
        let (path, p) = clamp_str(self.path, MAX_PATH_BYTES);
        let (image, i) = clamp_str(self.image, MAX_IMAGE_BYTES);
        let (user, u) = clamp_str(self.user, MAX_USER_BYTES);
        let (tag, t) = clamp_str(self.tag, MAX_TAG_BYTES);
        let (target, tt) = clamp_str(self.target_path, MAX_PATH_BYTES);
        self.target_path = target;
        if tt {
            self.flags |= flags::TARGET_TRUNCATED;
        }
        self.path = path;
        self.image = image;
        self.user = user;
        self.tag = tag;
        for (cut, bit) in [
            (p, flags::PATH_TRUNCATED),
            (i, flags::IMAGE_TRUNCATED),
            (u, flags::USER_TRUNCATED),
            (t, flags::TAG_TRUNCATED),
        ] {
            if cut {
                self.flags |= bit;
            }
        }
        self
    }
}

/// An event with its place in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub data: EventData<'a>,
}

/// Why records were lost. Stable codes (they are stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum DropReason {
    /// The producer's ring had no room.
    QueueFull = 0,
    /// Every ring was being written by another producer at that instant
    /// (user-mode producers only; a driver producer owns its CPU's ring).
    QueueBusy = 1,
    /// Writing to the log failed (disk full, I/O error); the records of the
    /// failed batch are counted here.
    WriteFailed = 2,
    /// The event source itself lost events (fanotify `FAN_Q_OVERFLOW`).
    KernelOverflow = 3,
    /// The enforcement point could not resolve the event's path (e.g. a
    /// directory removed before its events were read), so it could not
    /// evaluate it against the policy.
    Unresolved = 4,
    /// Records already written were lost with their file: the log file was
    /// deleted, renamed away or replaced while being written (the count is
    /// the records the file held), or its tail was torn by a crash and cut
    /// back to the last whole record on restart (count 1: the torn record;
    /// records of the same batch that never reached the disk are not
    /// known). Always the first record of the file that continues the
    /// chain, with `after_seq` the last record before the lost ones, so
    /// readers can tell a declared gap from a removed file.
    LogLost = 5,
    /// Records deliberately removed from disk by the log's retention limit
    /// (by size or age, oldest files first): the records `after_seq + 1
    /// ..= after_seq + count` were in the files removed. Written by the
    /// writer right after the header of the file whose rotation removed
    /// them, so the chain itself says why the oldest records are gone. Not
    /// a loss of events that were never written: readers report it apart
    /// from the other reasons.
    Retention = 6,
    /// The process behind an event could not be identified (no image: it
    /// exited before the engine learnt it) while a recording rule tests
    /// the process (`image`, `process`, `user`, `ppid`), and the event
    /// matched no rule: the verdict may have been different with the
    /// identity, so the non-match is counted here instead of passing in
    /// silence.
    Unattributed = 7,
}

impl DropReason {
    /// Every reason, in code order.
    pub const ALL: [DropReason; 8] = [
        DropReason::QueueFull,
        DropReason::QueueBusy,
        DropReason::WriteFailed,
        DropReason::KernelOverflow,
        DropReason::Unresolved,
        DropReason::LogLost,
        DropReason::Retention,
        DropReason::Unattributed,
    ];
    /// Number of reasons (size of per-reason counter arrays).
    pub const COUNT: usize = Self::ALL.len();

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::QueueBusy => "queue_busy",
            DropReason::WriteFailed => "write_failed",
            DropReason::KernelOverflow => "kernel_overflow",
            DropReason::Unresolved => "unresolved",
            DropReason::LogLost => "log_lost",
            DropReason::Retention => "retention",
            DropReason::Unattributed => "unattributed",
        }
    }
}

/// "`count` records were lost between seq `after_seq` and this record's
/// `seq`, because of `reason`". The loss happened at or before `time_ns`
/// (when the flush thread noticed it) and after `since_ns` (when it last
/// accounted for losses of this reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropRecord {
    pub seq: u64,
    pub time_ns: u64,
    pub since_ns: u64,
    /// The last record durably written before the loss was noticed (0 when
    /// none was).
    pub after_seq: u64,
    pub count: u64,
    pub reason: DropReason,
}

/// Why a file ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum EndReason {
    /// The file reached its size limit; the chain continues in the next
    /// file (`file_index + 1`).
    Rotated = 0,
    /// The writer shut down cleanly.
    Shutdown = 1,
}

/// The last record of a cleanly closed file. A file without one was cut
/// short (crash, power loss, or a writer that is still running).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRecord {
    pub seq: u64,
    pub time_ns: u64,
    pub reason: EndReason,
}

/// One frame body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<'a> {
    #[serde(borrow)]
    Event(EventRecord<'a>),
    Dropped(DropRecord),
    End(EndRecord),
}

/// postcard's variant index of [`Record::Event`] (a one-byte varint).
pub const RECORD_EVENT_VARIANT: u8 = 0;

impl Record<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            Record::Event(e) => e.seq,
            Record::Dropped(d) => d.seq,
            Record::End(e) => e.seq,
        }
    }
    pub fn time_ns(&self) -> u64 {
        match self {
            Record::Event(e) => e.data.time_ns,
            Record::Dropped(d) => d.time_ns,
            Record::End(e) => e.time_ns,
        }
    }
}

/// Why an encode into a caller buffer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is too small for the frame.
    BufferFull,
    /// The body is larger than [`MAX_RECORD_BODY`] (only possible for data
    /// that skipped [`EventData::clamped`]).
    TooLarge,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::BufferFull => f.write_str("output buffer too small for the frame"),
            EncodeError::TooLarge => write!(f, "record body exceeds {MAX_RECORD_BODY} bytes"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Encodes `data` (what a producer pushes) into `out`; returns its length.
pub fn encode_event_data(data: &EventData<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    postcard::to_slice(data, out)
        .map(|s| s.len())
        .map_err(|_| EncodeError::BufferFull)
}

/// Writes `v` as a postcard varint into `out`; returns the bytes written.
pub(crate) fn put_varint(mut v: u64, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut i = 0;
    loop {
        let slot = out.get_mut(i).ok_or(EncodeError::BufferFull)?;
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            *slot = byte;
            return Ok(i + 1);
        }
        *slot = byte | 0x80;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(path: &'a str) -> EventData<'a> {
        EventData {
            time_ns: 1_700_000_000_123_456_789,
            op: Some(Op::Write),
            action: Action::Deny.into(),
            flags: 0,
            pid: u64::MAX,
            ppid: u64::MAX,
            size: u64::MAX,
            rule: Some(u32::MAX),
            line: u32::MAX,
            status: Some(i32::MIN),
            policy: PolicyId::new(&[0xab; 32], u64::MAX),
            path,
            image: "/usr/bin/cat",
            user: "root",
            tag: "T",
            target_path: "",
        }
    }

    #[test]
    fn event_record_is_seq_then_event_data() {
        let data = sample("/srv/a");
        let mut a = [0u8; 512];
        let mut b = [0u8; 512];
        let rec = Record::Event(EventRecord { seq: 300, data });
        let whole = postcard::to_slice(&rec, &mut a).unwrap();
        let n = encode_event_data(&data, &mut b).unwrap();
        let mut manual = [0u8; 512];
        manual[0] = RECORD_EVENT_VARIANT;
        let k = 1 + put_varint(300, &mut manual[1..]).unwrap();
        manual[k..k + n].copy_from_slice(&b[..n]);
        assert_eq!(whole, &manual[..k + n]);
    }

    #[test]
    fn maximal_event_fits_the_bound() {
        let long = "é".repeat(MAX_PATH_BYTES);
        let mut data = sample(&long);
        let img = "i".repeat(5000);
        let user = "u".repeat(5000);
        let tag = "t".repeat(5000);
        data.image = &img;
        data.user = &user;
        data.tag = &tag;
        let data = data.clamped();
        assert_eq!(
            data.flags,
            flags::PATH_TRUNCATED
                | flags::IMAGE_TRUNCATED
                | flags::USER_TRUNCATED
                | flags::TAG_TRUNCATED
        );
        assert!(data.path.len() <= MAX_PATH_BYTES && data.path.len() >= MAX_PATH_BYTES - 1);
        let mut buf = vec![0u8; MAX_EVENT_DATA * 2];
        let n = encode_event_data(&data, &mut buf).unwrap();
        assert!(n <= MAX_EVENT_DATA, "{n} > {MAX_EVENT_DATA}");
        let rec = Record::Event(EventRecord {
            seq: u64::MAX,
            data,
        });
        let body = postcard::to_slice(&rec, &mut buf).unwrap();
        assert!(body.len() <= MAX_RECORD_BODY);
    }

    #[test]
    fn drop_reasons_round_trip_and_unknown_codes_are_rejected() {
        let mut buf = [0u8; 64];
        for (code, reason) in DropReason::ALL.into_iter().enumerate() {
            // The stored code is the discriminant, and ALL is in code order.
            assert_eq!(reason as usize, code);
            let rec = Record::Dropped(DropRecord {
                seq: 12,
                time_ns: 3,
                since_ns: 2,
                after_seq: 11,
                count: 7,
                reason,
            });
            let body = postcard::to_slice(&rec, &mut buf).unwrap();
            // The reason is the body's last byte: its stored code.
            assert_eq!(body.last(), Some(&(code as u8)));
            assert_eq!(postcard::from_bytes::<Record<'_>>(body).unwrap(), rec);
        }
        let rec = Record::Dropped(DropRecord {
            seq: 12,
            time_ns: 3,
            since_ns: 2,
            after_seq: 11,
            count: 7,
            reason: DropReason::Unresolved,
        });
        let body = postcard::to_slice(&rec, &mut buf).unwrap();
        assert_eq!(body.last(), Some(&4));
        assert_eq!(DropReason::Unresolved.name(), "unresolved");
        let n = body.len();
        // A code past the last reason is a decode error, not a panic.
        for code in [DropReason::COUNT as u8, 0x7f] {
            buf[n - 1] = code;
            assert!(postcard::from_bytes::<Record<'_>>(&buf[..n]).is_err());
            assert!(crate::record::frame::decode_body(&buf[..n]).is_err());
        }
    }

    #[test]
    fn clamp_respects_char_boundaries() {
        assert_eq!(clamp_str("aé", 2), ("a", true));
        assert_eq!(clamp_str("aé", 3), ("aé", false));
        assert_eq!(clamp_str("", 0), ("", false));
    }
}

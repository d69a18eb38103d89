//! The control protocol between `fltpolicy` (user mode) and an enforcement
//! point: IOCTL codes for the Windows control device and the versioned
//! request/response layouts that travel in their buffers.
//!
//! Both sides use this module, so the layout exists exactly once. Every
//! buffer starts with a [`Header`] (magic, version, kind, payload length);
//! decoding checks each of those against the buffer it was handed and
//! returns a precise [`ControlError`] — it never panics and never reads past
//! the slice, whatever the bytes claim. All integers are little-endian.
//!
//! The driver maps each [`ControlError`] to an NTSTATUS with
//! [`ControlError::ntstatus`], so a malformed request from user mode gets a
//! distinct, documented status code.
//!
//! This module must never allocate: the driver calls it at PASSIVE_LEVEL
//! from its IRP_MJ_DEVICE_CONTROL handler on a non-paged copy of the input.

/// Device type of the control device (`FILE_DEVICE_*`): values from 0x8000
/// up are reserved for vendors.
pub const DEVICE_TYPE: u32 = 0x8F50;

/// Win32 path of the control device (`CreateFileW` / `DeviceIoControl`).
pub const DEVICE_WIN32_PATH: &str = r"\\.\FltPolicy";
/// NT name of the control device object.
pub const DEVICE_NT_NAME: &str = r"\Device\FltPolicy";
/// Symbolic link that makes [`DEVICE_WIN32_PATH`] resolve.
pub const DEVICE_DOS_LINK: &str = r"\??\FltPolicy";

const METHOD_BUFFERED: u32 = 0;
const FILE_READ_ACCESS: u32 = 1;
const FILE_WRITE_ACCESS: u32 = 2;

/// `CTL_CODE` from the WDK's `devioctl.h`.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Load a policy image. Input: [`Header`] (kind [`Kind::Load`]) + image
/// bytes. Output: a [`LoadReply`]. Needs write access to the device.
pub const IOCTL_LOAD_POLICY: u32 = ctl_code(DEVICE_TYPE, 0x801, METHOD_BUFFERED, FILE_WRITE_ACCESS);
/// Query counters. Input: [`Header`] (kind [`Kind::Status`], empty
/// payload). Output: a [`Status`]. Needs read access.
pub const IOCTL_QUERY_STATUS: u32 = ctl_code(DEVICE_TYPE, 0x802, METHOD_BUFFERED, FILE_READ_ACCESS);
/// Set the audit log path. Input: [`Header`] (kind [`Kind::SetLogPath`]) +
/// a UTF-8 absolute DOS path (`C:\ProgramData\fltpolicy\audit.log`). No
/// output. Needs write access. The flush thread re-opens the log.
pub const IOCTL_SET_LOG_PATH: u32 =
    ctl_code(DEVICE_TYPE, 0x803, METHOD_BUFFERED, FILE_WRITE_ACCESS);

/// First four bytes of every control buffer: `FPCT`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FPCT");
/// Layout version of this module. Bumped on any incompatible change;
/// a peer speaking another version is refused with
/// [`ControlError::UnsupportedVersion`].
pub const VERSION: u16 = 1;
/// Size of [`Header`] on the wire.
pub const HEADER_LEN: usize = 16;
/// Largest policy image a load request may carry: 1 MiB. The driver copies
/// the image into non-paged pool, a scarce resource, and real policies are a
/// few kilobytes.
pub const MAX_IMAGE_LEN: usize = 1 << 20;
/// Longest log path in bytes of UTF-8. NT paths are limited to 32767 UTF-16
/// units; 1024 bytes covers every realistic log location and bounds the
/// non-paged copy the driver keeps.
pub const MAX_LOG_PATH_LEN: usize = 1024;
/// Size of an encoded [`Status`].
pub const STATUS_LEN: usize = HEADER_LEN + 8 * 7 + 4 + 4 + 32 + 4 + 4;
/// Size of an encoded [`LoadReply`].
pub const LOAD_REPLY_LEN: usize = HEADER_LEN + 8 + 4 + 4 + 32;

/// What a buffer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    Load = 1,
    Status = 2,
    SetLogPath = 3,
    LoadReply = 0x81,
    StatusReply = 0x82,
}

impl Kind {
    fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::Load,
            2 => Kind::Status,
            3 => Kind::SetLogPath,
            0x81 => Kind::LoadReply,
            0x82 => Kind::StatusReply,
            _ => return None,
        })
    }
}

/// Why a control buffer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The buffer is shorter than the fixed part it must hold.
    TooShort { needed: usize, got: usize },
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
    /// The header's version is not [`VERSION`].
    UnsupportedVersion(u16),
    /// The header names another request than the IOCTL code implies.
    WrongKind { expected: u16, found: u16 },
    /// The header's payload length disagrees with the buffer length.
    LengthMismatch { claimed: u32, actual: usize },
    /// The payload exceeds the limit for its kind.
    TooLarge { limit: usize, got: usize },
    /// The payload is empty where content is required.
    Empty,
    /// A log path is not UTF-8, not an absolute `X:\...` path, or contains
    /// a NUL or a `..` component.
    BadPath,
    /// The output buffer cannot hold the reply.
    OutputTooSmall { needed: usize, got: usize },
    /// Reserved header bytes are not zero (a newer peer's extension).
    ReservedNotZero,
}

impl ControlError {
    /// The NTSTATUS the driver completes the IRP with.
    pub const fn ntstatus(self) -> i32 {
        match self {
            // STATUS_INFO_LENGTH_MISMATCH
            ControlError::TooShort { .. } | ControlError::LengthMismatch { .. } => {
                0xC000_0004_u32 as i32
            }
            // STATUS_INVALID_PARAMETER_1 / _2 / _3: which header field is wrong.
            ControlError::BadMagic => 0xC000_00EF_u32 as i32,
            // STATUS_REVISION_MISMATCH
            ControlError::UnsupportedVersion(_) => 0xC000_0059_u32 as i32,
            ControlError::WrongKind { .. } => 0xC000_00F0_u32 as i32,
            ControlError::ReservedNotZero => 0xC000_00F1_u32 as i32,
            // STATUS_INVALID_BUFFER_SIZE
            ControlError::TooLarge { .. } | ControlError::Empty => 0xC000_0206_u32 as i32,
            // STATUS_OBJECT_PATH_SYNTAX_BAD
            ControlError::BadPath => 0xC000_003B_u32 as i32,
            // STATUS_BUFFER_TOO_SMALL
            ControlError::OutputTooSmall { .. } => 0xC000_0023_u32 as i32,
        }
    }
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ControlError::TooShort { needed, got } => {
                write!(
                    f,
                    "control buffer too short: need {needed} bytes, got {got}"
                )
            }
            ControlError::BadMagic => write!(f, "control buffer does not start with FPCT"),
            ControlError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "control protocol version {v} is not supported (expected {VERSION})"
                )
            }
            ControlError::WrongKind { expected, found } => {
                write!(
                    f,
                    "control buffer kind {found:#x} where {expected:#x} was expected"
                )
            }
            ControlError::LengthMismatch { claimed, actual } => write!(
                f,
                "control header claims {claimed} payload bytes but {actual} follow it"
            ),
            ControlError::TooLarge { limit, got } => {
                write!(f, "payload of {got} bytes exceeds the limit of {limit}")
            }
            ControlError::Empty => write!(f, "payload is empty"),
            ControlError::BadPath => write!(
                f,
                "log path must be UTF-8, absolute (X:\\...), without NUL or '..' components"
            ),
            ControlError::OutputTooSmall { needed, got } => {
                write!(f, "output buffer too small: need {needed} bytes, got {got}")
            }
            ControlError::ReservedNotZero => write!(f, "reserved header bytes are not zero"),
        }
    }
}

#[cfg(any(test, feature = "std"))]
impl std::error::Error for ControlError {}

/// The fixed 16-byte prefix of every control buffer:
/// `magic u32 | version u16 | kind u16 | payload_len u32 | reserved u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub payload_len: u32,
}

impl Header {
    /// Writes the header into `out[..HEADER_LEN]`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&0u32.to_le_bytes());
    }

    /// Checks the header of `buf` against `expected` and returns the
    /// payload, which must be exactly as long as the header claims.
    pub fn split(buf: &[u8], expected: Kind) -> Result<&[u8], ControlError> {
        let Some((head, payload)) = buf.split_first_chunk::<HEADER_LEN>() else {
            return Err(ControlError::TooShort {
                needed: HEADER_LEN,
                got: buf.len(),
            });
        };
        if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != MAGIC {
            return Err(ControlError::BadMagic);
        }
        let version = u16::from_le_bytes([head[4], head[5]]);
        if version != VERSION {
            return Err(ControlError::UnsupportedVersion(version));
        }
        let kind = u16::from_le_bytes([head[6], head[7]]);
        if Kind::from_u16(kind) != Some(expected) {
            return Err(ControlError::WrongKind {
                expected: expected as u16,
                found: kind,
            });
        }
        let claimed = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if head[12..16] != [0; 4] {
            return Err(ControlError::ReservedNotZero);
        }
        if usize::try_from(claimed).ok() != Some(payload.len()) {
            return Err(ControlError::LengthMismatch {
                claimed,
                actual: payload.len(),
            });
        }
        Ok(payload)
    }
}

/// Decodes a load request: the returned slice is the (unverified) image.
pub fn parse_load(buf: &[u8]) -> Result<&[u8], ControlError> {
    let image = Header::split(buf, Kind::Load)?;
    if image.is_empty() {
        return Err(ControlError::Empty);
    }
    if image.len() > MAX_IMAGE_LEN {
        return Err(ControlError::TooLarge {
            limit: MAX_IMAGE_LEN,
            got: image.len(),
        });
    }
    Ok(image)
}

/// Decodes a status request (a bare header).
pub fn parse_status(buf: &[u8]) -> Result<(), ControlError> {
    match Header::split(buf, Kind::Status)? {
        [] => Ok(()),
        rest => Err(ControlError::LengthMismatch {
            claimed: 0,
            actual: rest.len(),
        }),
    }
}

/// Decodes a set-log-path request and checks the path's syntax: UTF-8, an
/// absolute drive path `X:\...`, no NUL, no `.`/`..` components, no empty
/// components.
pub fn parse_set_log_path(buf: &[u8]) -> Result<&str, ControlError> {
    let raw = Header::split(buf, Kind::SetLogPath)?;
    if raw.is_empty() {
        return Err(ControlError::Empty);
    }
    if raw.len() > MAX_LOG_PATH_LEN {
        return Err(ControlError::TooLarge {
            limit: MAX_LOG_PATH_LEN,
            got: raw.len(),
        });
    }
    let path = core::str::from_utf8(raw).map_err(|_| ControlError::BadPath)?;
    if !is_valid_log_path(path) {
        return Err(ControlError::BadPath);
    }
    Ok(path)
}

/// `X:\a\b.log`: a drive letter, a colon, then `\`-separated non-empty
/// components that are not `.` or `..` and contain no NUL, no `/`, no `:`.
pub fn is_valid_log_path(path: &str) -> bool {
    let b = path.as_bytes();
    if b.len() < 4 || !b[0].is_ascii_alphabetic() || b[1] != b':' || b[2] != b'\\' {
        return false;
    }
    path[3..].split('\\').all(|c| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && !c.contains(['\0', '/', ':', '*', '?', '"', '<', '>', '|'])
    })
}

/// Writes a request header + payload into `out`; returns the length used.
pub fn encode_request(kind: Kind, payload: &[u8], out: &mut [u8]) -> Result<usize, ControlError> {
    let total = HEADER_LEN + payload.len();
    let len = u32::try_from(payload.len()).map_err(|_| ControlError::TooLarge {
        limit: u32::MAX as usize,
        got: payload.len(),
    })?;
    let got = out.len();
    let Some((head, rest)) = out.split_first_chunk_mut::<HEADER_LEN>() else {
        return Err(ControlError::OutputTooSmall { needed: total, got });
    };
    if rest.len() < payload.len() {
        return Err(ControlError::OutputTooSmall { needed: total, got });
    }
    Header {
        kind,
        payload_len: len,
    }
    .encode(head);
    rest[..payload.len()].copy_from_slice(payload);
    Ok(total)
}

/// Host convenience: a request as an owned buffer.
#[cfg(any(test, feature = "std"))]
pub fn request(kind: Kind, payload: &[u8]) -> std::vec::Vec<u8> {
    let mut v = std::vec![0u8; HEADER_LEN + payload.len()];
    // The buffer is sized exactly; only a payload over 4 GiB could fail.
    let n = encode_request(kind, payload, &mut v).unwrap_or(0);
    v.truncate(n);
    v
}

/// Counters and the identity of the active policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Operations the callbacks saw (every evaluated event).
    pub events_seen: u64,
    /// Events a rule matched (any action other than none).
    pub matched: u64,
    /// Records written to the audit log by the flush thread.
    pub logged: u64,
    /// Operations failed with STATUS_ACCESS_DENIED.
    pub denied: u64,
    /// Records dropped because the queue was full.
    pub dropped: u64,
    /// Number of policies loaded since the driver started (0: none yet).
    pub generation: u64,
    /// Records waiting in the queue at the time of the query.
    pub queued: u64,
    /// Rules in the active policy.
    pub rule_count: u32,
    /// 1 when a policy is active.
    pub policy_loaded: u32,
    /// SHA-256 of the active image body (zero when none).
    pub policy_hash: [u8; 32],
    /// Whether the audit log is being written ([`LogState`] as a number).
    pub log_state: u32,
    /// The NTSTATUS (errno on Linux) of the last failed attempt to open the
    /// log; 0 while it is written.
    pub log_error: i32,
}

/// What the enforcement point's log writer is doing ([`Status::log_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LogState {
    /// Not opened yet (start-up, or a new path just set).
    Starting = 0,
    /// Records are being written.
    Writing = 1,
    /// Something a user could have planted occupies the log's path: a
    /// directory with the log file's name, a file with its directory's
    /// name, or a reparse point as its directory. Not used until removed;
    /// records wait in the queue (overflow is counted and recorded).
    Squatted = 2,
    /// The log's volume is gone (detached, dismounted, no instance).
    NoVolume = 3,
    /// Opening failed otherwise (see `log_error`).
    OpenFailed = 4,
}

impl LogState {
    /// The state a status reply carries, if known.
    pub fn from_u32(v: u32) -> Option<LogState> {
        Some(match v {
            0 => LogState::Starting,
            1 => LogState::Writing,
            2 => LogState::Squatted,
            3 => LogState::NoVolume,
            4 => LogState::OpenFailed,
            _ => return None,
        })
    }
    /// Lower-case name for humans and JSON.
    pub fn name(self) -> &'static str {
        match self {
            LogState::Starting => "starting",
            LogState::Writing => "writing",
            LogState::Squatted => "squatted",
            LogState::NoVolume => "no-volume",
            LogState::OpenFailed => "open-failed",
        }
    }
}

/// Little-endian cursor over a fixed-size reply.
struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn u64(&mut self) -> u64 {
        let (v, rest) = self
            .0
            .split_first_chunk::<8>()
            .map_or(([0; 8], &[][..]), |(a, r)| (*a, r));
        self.0 = rest;
        u64::from_le_bytes(v)
    }
    fn u32(&mut self) -> u32 {
        let (v, rest) = self
            .0
            .split_first_chunk::<4>()
            .map_or(([0; 4], &[][..]), |(a, r)| (*a, r));
        self.0 = rest;
        u32::from_le_bytes(v)
    }
    fn hash(&mut self) -> [u8; 32] {
        let (v, rest) = self
            .0
            .split_first_chunk::<32>()
            .map_or(([0; 32], &[][..]), |(a, r)| (*a, r));
        self.0 = rest;
        v
    }
}

fn put(out: &mut [u8], at: &mut usize, bytes: &[u8]) {
    out[*at..*at + bytes.len()].copy_from_slice(bytes);
    *at += bytes.len();
}

impl Status {
    /// Encodes into `out[..STATUS_LEN]`; returns [`STATUS_LEN`].
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ControlError> {
        if out.len() < STATUS_LEN {
            return Err(ControlError::OutputTooSmall {
                needed: STATUS_LEN,
                got: out.len(),
            });
        }
        let mut head = [0u8; HEADER_LEN];
        Header {
            kind: Kind::StatusReply,
            payload_len: (STATUS_LEN - HEADER_LEN) as u32,
        }
        .encode(&mut head);
        let mut at = 0;
        put(out, &mut at, &head);
        for v in [
            self.events_seen,
            self.matched,
            self.logged,
            self.denied,
            self.dropped,
            self.generation,
            self.queued,
        ] {
            put(out, &mut at, &v.to_le_bytes());
        }
        put(out, &mut at, &self.rule_count.to_le_bytes());
        put(out, &mut at, &self.policy_loaded.to_le_bytes());
        put(out, &mut at, &self.policy_hash);
        put(out, &mut at, &self.log_state.to_le_bytes());
        put(out, &mut at, &self.log_error.to_le_bytes());
        Ok(at)
    }

    /// Decodes a status reply, checking header and length.
    pub fn decode(buf: &[u8]) -> Result<Status, ControlError> {
        let body = Header::split(buf, Kind::StatusReply)?;
        if body.len() != STATUS_LEN - HEADER_LEN {
            return Err(ControlError::LengthMismatch {
                claimed: body.len() as u32,
                actual: STATUS_LEN - HEADER_LEN,
            });
        }
        let mut r = Reader(body);
        Ok(Status {
            events_seen: r.u64(),
            matched: r.u64(),
            logged: r.u64(),
            denied: r.u64(),
            dropped: r.u64(),
            generation: r.u64(),
            queued: r.u64(),
            rule_count: r.u32(),
            policy_loaded: r.u32(),
            policy_hash: r.hash(),
            log_state: r.u32(),
            log_error: r.u32() as i32,
        })
    }
}

/// What a successful load reports back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReply {
    /// Generation number of the policy now active.
    pub generation: u64,
    pub rule_count: u32,
    /// Platform the image targets ([`crate::event::Target`] discriminant).
    pub target: u32,
    pub policy_hash: [u8; 32],
}

impl LoadReply {
    /// Encodes into `out[..LOAD_REPLY_LEN]`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ControlError> {
        if out.len() < LOAD_REPLY_LEN {
            return Err(ControlError::OutputTooSmall {
                needed: LOAD_REPLY_LEN,
                got: out.len(),
            });
        }
        let mut head = [0u8; HEADER_LEN];
        Header {
            kind: Kind::LoadReply,
            payload_len: (LOAD_REPLY_LEN - HEADER_LEN) as u32,
        }
        .encode(&mut head);
        let mut at = 0;
        put(out, &mut at, &head);
        put(out, &mut at, &self.generation.to_le_bytes());
        put(out, &mut at, &self.rule_count.to_le_bytes());
        put(out, &mut at, &self.target.to_le_bytes());
        put(out, &mut at, &self.policy_hash);
        Ok(at)
    }

    /// Decodes a load reply.
    pub fn decode(buf: &[u8]) -> Result<LoadReply, ControlError> {
        let body = Header::split(buf, Kind::LoadReply)?;
        if body.len() != LOAD_REPLY_LEN - HEADER_LEN {
            return Err(ControlError::LengthMismatch {
                claimed: body.len() as u32,
                actual: LOAD_REPLY_LEN - HEADER_LEN,
            });
        }
        let mut r = Reader(body);
        Ok(LoadReply {
            generation: r.u64(),
            rule_count: r.u32(),
            target: r.u32(),
            policy_hash: r.hash(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_codes_are_buffered_and_distinct() {
        for code in [IOCTL_LOAD_POLICY, IOCTL_QUERY_STATUS, IOCTL_SET_LOG_PATH] {
            assert_eq!(code & 3, METHOD_BUFFERED);
            assert_eq!(code >> 16, DEVICE_TYPE);
        }
        assert_eq!(IOCTL_LOAD_POLICY, 0x8F50_A004);
        assert_eq!(IOCTL_QUERY_STATUS, 0x8F50_6008);
        assert_eq!(IOCTL_SET_LOG_PATH, 0x8F50_A00C);
    }

    #[test]
    fn load_round_trip_and_rejections() {
        let req = request(Kind::Load, b"image");
        assert_eq!(parse_load(&req), Ok(&b"image"[..]));
        assert_eq!(
            parse_load(&req[..10]),
            Err(ControlError::TooShort {
                needed: 16,
                got: 10
            })
        );
        let mut lying = req.clone();
        lying[8] = 200;
        assert_eq!(
            parse_load(&lying),
            Err(ControlError::LengthMismatch {
                claimed: 200,
                actual: 5
            })
        );
        let mut v2 = req.clone();
        v2[4] = 2;
        assert_eq!(parse_load(&v2), Err(ControlError::UnsupportedVersion(2)));
        let mut magic = req.clone();
        magic[0] = b'X';
        assert_eq!(parse_load(&magic), Err(ControlError::BadMagic));
        assert_eq!(
            parse_load(&request(Kind::Status, b"")),
            Err(ControlError::WrongKind {
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            parse_load(&request(Kind::Load, b"")),
            Err(ControlError::Empty)
        );
        let mut reserved = req;
        reserved[15] = 1;
        assert_eq!(parse_load(&reserved), Err(ControlError::ReservedNotZero));
    }

    #[test]
    fn status_and_reply_round_trip() {
        let s = Status {
            events_seen: 1,
            matched: 2,
            logged: 3,
            denied: 4,
            dropped: 5,
            generation: 6,
            queued: 7,
            rule_count: 8,
            policy_loaded: 1,
            policy_hash: [9; 32],
            log_state: LogState::Squatted as u32,
            log_error: 0xC000_00BA_u32 as i32,
        };
        let mut buf = [0u8; STATUS_LEN];
        assert_eq!(s.encode(&mut buf), Ok(STATUS_LEN));
        assert_eq!(Status::decode(&buf), Ok(s));
        assert!(Status::decode(&buf[..STATUS_LEN - 1]).is_err());
        let r = LoadReply {
            generation: 3,
            rule_count: 2,
            target: 0,
            policy_hash: [7; 32],
        };
        let mut buf = [0u8; LOAD_REPLY_LEN];
        assert_eq!(r.encode(&mut buf), Ok(LOAD_REPLY_LEN));
        assert_eq!(LoadReply::decode(&buf), Ok(r));
        assert!(r.encode(&mut [0u8; 8]).is_err());
    }

    #[test]
    fn log_paths() {
        assert!(is_valid_log_path(r"C:\ProgramData\fltpolicy\audit.log"));
        for bad in [
            r"C:",
            r"C:\",
            r"\\server\share\x",
            r"C:\a\..\b",
            r"C:\a\\b",
            "C:\\a\0",
            r"C:/a",
            r"1:\a",
        ] {
            assert!(!is_valid_log_path(bad), "{bad}");
        }
        assert_eq!(
            parse_set_log_path(&request(Kind::SetLogPath, &[0xff, 0xfe])),
            Err(ControlError::BadPath)
        );
        assert_eq!(
            parse_set_log_path(&request(Kind::SetLogPath, br"D:\logs\a.log")),
            Ok(r"D:\logs\a.log")
        );
    }
}

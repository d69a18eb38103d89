//! Byte layout of log files: the file header and the record frames.
//!
//! File header (all integers little-endian):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 8 | magic `FLTPLOG\0` |
//! | 8 | 2 | format version ([`FORMAT_VERSION`]) |
//! | 10 | 2 | `n`, length of the header body (at most [`MAX_HEADER_BODY`]) |
//! | 12 | n | postcard [`FileHeader`] |
//! | 12+n | 4 | CRC32C of bytes `0..12+n` |
//!
//! Frame:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0 | 4 | `len`, body length (at most [`MAX_RECORD_BODY`]) |
//! | 4 | len | postcard [`Record`] |
//! | 4+len | 16 | chain tag ([`super::chain`]) |
//! | 20+len | 4 | CRC32C of bytes `0..20+len` |
//!
//! Parsing never panics and never trusts a length before bounding it: an
//! over-long `len` is corruption, a frame running past the end of the input
//! is [`FrameParse::Incomplete`] (a torn tail if the file ends there).

use serde::{Deserialize, Serialize};

use super::chain::{Chain, Sealing, TAG_BYTES};
use super::{put_varint, EncodeError, Record, MAX_RECORD_BODY, RECORD_EVENT_VARIANT};

/// First bytes of every log file.
pub const MAGIC: [u8; 8] = *b"FLTPLOG\0";
/// Version of this layout. Readers reject other versions with a clear error.
pub const FORMAT_VERSION: u16 = 2;
/// Bytes before the header body.
pub const HEADER_PREFIX: usize = 12;
/// Longest header body: the host name (at most [`MAX_HOST_BYTES`]) plus the
/// fixed fields (about 110 bytes) with room to spare.
pub const MAX_HEADER_BODY: usize = 512;
/// Longest host name kept in a header (DNS names are at most 253 bytes).
pub const MAX_HOST_BYTES: usize = 255;
/// Longest possible header.
pub const MAX_HEADER: usize = HEADER_PREFIX + MAX_HEADER_BODY + 4;
/// Bytes of a frame around its body (len, tag, crc).
pub const FRAME_OVERHEAD: usize = 4 + TAG_BYTES + 4;
/// Longest possible frame.
pub const MAX_FRAME: usize = FRAME_OVERHEAD + MAX_RECORD_BODY;

/// CRC-32C (Castagnoli), as used by iSCSI, ext4 and SSE4.2's `crc32`.
const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// Identity and chain link of one log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHeader<'a> {
    /// Host name of the machine that wrote the log.
    pub host: &'a str,
    /// Boot id of that machine (Linux `/proc/sys/kernel/random/boot_id`;
    /// the driver's boot-time GUID).
    pub boot_id: [u8; 16],
    /// Random per writer start: all files of one session share it.
    pub session_id: [u8; 16],
    /// Creation time of this file, ns since the Unix epoch.
    pub created_ns: u64,
    /// 0 for a session's first file, +1 per rotation.
    pub file_index: u32,
    /// Sequence number of the first record in this file.
    pub first_seq: u64,
    /// Chain value at the end of the previous file (zeros for file 0).
    pub prev_chain: [u8; 32],
    pub sealing: Sealing,
}

/// Why a header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The input ends inside the header (a file torn while being created).
    Truncated,
    BadMagic,
    UnsupportedVersion(u16),
    TooLong(u16),
    BadChecksum,
    /// The body is not a valid [`FileHeader`].
    BadBody,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::Truncated => f.write_str("file ends inside its header"),
            HeaderError::BadMagic => f.write_str("not an fltpolicy audit log (bad magic)"),
            HeaderError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "log format version {v} is not supported (expected {FORMAT_VERSION})"
                )
            }
            HeaderError::TooLong(n) => {
                write!(f, "header body of {n} bytes exceeds {MAX_HEADER_BODY}")
            }
            HeaderError::BadChecksum => f.write_str("header checksum mismatch"),
            HeaderError::BadBody => f.write_str("header body is malformed"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HeaderError {}

/// Encodes `h` into `out`; returns the header length.
pub fn encode_header(h: &FileHeader<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    if out.len() < HEADER_PREFIX {
        return Err(EncodeError::BufferFull);
    }
    let out_len = out.len();
    let limit = out_len.min(HEADER_PREFIX + MAX_HEADER_BODY);
    let n = postcard::to_slice(h, &mut out[HEADER_PREFIX..limit])
        .map_err(|_| {
            if limit < out_len {
                EncodeError::TooLarge
            } else {
                EncodeError::BufferFull
            }
        })?
        .len();
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[10..12].copy_from_slice(&(n as u16).to_le_bytes());
    let end = HEADER_PREFIX + n;
    let crc = crc32c(&out[..end]);
    out.get_mut(end..end + 4)
        .ok_or(EncodeError::BufferFull)?
        .copy_from_slice(&crc.to_le_bytes());
    Ok(end + 4)
}

/// Decodes the header at the start of `bytes`; returns it and its length.
pub fn decode_header(bytes: &[u8]) -> Result<(FileHeader<'_>, usize), HeaderError> {
    let magic_len = bytes.len().min(8);
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(HeaderError::BadMagic);
    }
    if bytes.len() < HEADER_PREFIX {
        return Err(HeaderError::Truncated);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    let n16 = u16::from_le_bytes([bytes[10], bytes[11]]);
    let n = n16 as usize;
    if n > MAX_HEADER_BODY {
        return Err(HeaderError::TooLong(n16));
    }
    let end = HEADER_PREFIX + n;
    let Some(crc_bytes) = bytes.get(end..end + 4) else {
        return Err(HeaderError::Truncated);
    };
    let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if crc32c(&bytes[..end]) != stored {
        return Err(HeaderError::BadChecksum);
    }
    match postcard::take_from_bytes::<FileHeader<'_>>(&bytes[HEADER_PREFIX..end]) {
        Ok((h, [])) => Ok((h, end + 4)),
        _ => Err(HeaderError::BadBody),
    }
}

/// Why a frame was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// `len` exceeds [`MAX_RECORD_BODY`]: the length field is damaged.
    TooLong(u32),
    /// The CRC32C does not match: the frame is damaged.
    BadChecksum,
    /// The CRC matches but the body is not a valid [`Record`].
    BadBody,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooLong(n) => {
                write!(f, "frame length {n} exceeds the maximum {MAX_RECORD_BODY}")
            }
            FrameError::BadChecksum => f.write_str("frame checksum mismatch"),
            FrameError::BadBody => f.write_str("frame body is not a valid record"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// A frame whose checksum is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// The little-endian length field.
    pub len_le: [u8; 4],
    pub body: &'a [u8],
    pub tag: [u8; TAG_BYTES],
    /// Bytes the frame occupies.
    pub total: usize,
}

/// Result of looking for a frame at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameParse<'a> {
    Frame(RawFrame<'a>),
    /// The buffer ends inside the frame; `needed` bytes would complete it
    /// (as far as the length field, if present, says).
    Incomplete {
        needed: usize,
    },
    Bad(FrameError),
}

/// Looks for one frame at the start of `buf`. Never panics.
pub fn parse_frame(buf: &[u8]) -> FrameParse<'_> {
    let Some(len_bytes) = buf.get(..4) else {
        return FrameParse::Incomplete {
            needed: 4 - buf.len(),
        };
    };
    let len_le = [len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]];
    let len32 = u32::from_le_bytes(len_le);
    let len = len32 as usize;
    if len > MAX_RECORD_BODY {
        return FrameParse::Bad(FrameError::TooLong(len32));
    }
    let total = FRAME_OVERHEAD + len;
    if buf.len() < total {
        return FrameParse::Incomplete {
            needed: total - buf.len(),
        };
    }
    let crc_at = total - 4;
    let stored = u32::from_le_bytes([
        buf[crc_at],
        buf[crc_at + 1],
        buf[crc_at + 2],
        buf[crc_at + 3],
    ]);
    if crc32c(&buf[..crc_at]) != stored {
        return FrameParse::Bad(FrameError::BadChecksum);
    }
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&buf[4 + len..crc_at]);
    FrameParse::Frame(RawFrame {
        len_le,
        body: &buf[4..4 + len],
        tag,
        total,
    })
}

/// Decodes a frame body. The whole body must be one record.
pub fn decode_body(body: &[u8]) -> Result<Record<'_>, FrameError> {
    match postcard::take_from_bytes::<Record<'_>>(body) {
        Ok((r, [])) => Ok(r),
        _ => Err(FrameError::BadBody),
    }
}

/// Completes a frame whose body the caller already wrote at `out[4..4 +
/// body_len]`: writes the length, advances `chain`, writes tag and CRC.
/// Returns the frame length.
pub fn seal_frame(
    out: &mut [u8],
    body_len: usize,
    chain: &mut Chain,
) -> Result<usize, EncodeError> {
    if body_len > MAX_RECORD_BODY {
        return Err(EncodeError::TooLarge);
    }
    let total = FRAME_OVERHEAD + body_len;
    if out.len() < total {
        return Err(EncodeError::BufferFull);
    }
    let len_le = (body_len as u32).to_le_bytes();
    out[..4].copy_from_slice(&len_le);
    let tag = chain.advance(&len_le, &out[4..4 + body_len]);
    out[4 + body_len..4 + body_len + TAG_BYTES].copy_from_slice(&tag);
    let crc_at = total - 4;
    let crc = crc32c(&out[..crc_at]);
    out[crc_at..total].copy_from_slice(&crc.to_le_bytes());
    Ok(total)
}

/// Encodes `rec` as a frame into `out`, advancing `chain`. On error `chain`
/// is unchanged.
pub fn encode_frame(
    rec: &Record<'_>,
    chain: &mut Chain,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let avail = out.len().saturating_sub(FRAME_OVERHEAD);
    if avail == 0 {
        return Err(EncodeError::BufferFull);
    }
    let room = avail.min(MAX_RECORD_BODY);
    let n = match postcard::to_slice(rec, &mut out[4..4 + room]) {
        Ok(s) => s.len(),
        Err(_) if room == MAX_RECORD_BODY => return Err(EncodeError::TooLarge),
        Err(_) => return Err(EncodeError::BufferFull),
    };
    seal_frame(out, n, chain)
}

/// Encodes an event frame from a sequence number and the postcard bytes of
/// its [`super::EventData`] as a producer queued them (no re-encoding).
pub fn encode_event_frame(
    seq: u64,
    event_data: &[u8],
    chain: &mut Chain,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let body = out.get_mut(4..).ok_or(EncodeError::BufferFull)?;
    *body.first_mut().ok_or(EncodeError::BufferFull)? = RECORD_EVENT_VARIANT;
    let k = 1 + put_varint(seq, &mut body[1..])?;
    let n = k + event_data.len();
    if n > MAX_RECORD_BODY {
        return Err(EncodeError::TooLarge);
    }
    body.get_mut(k..n)
        .ok_or(EncodeError::BufferFull)?
        .copy_from_slice(event_data);
    seal_frame(out, n, chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DropReason, DropRecord, EndReason, EndRecord, EventData, EventRecord};

    fn header() -> FileHeader<'static> {
        FileHeader {
            host: "host-1",
            boot_id: [1; 16],
            session_id: [2; 16],
            created_ns: 5,
            file_index: 0,
            first_seq: 1,
            prev_chain: [0; 32],
            sealing: Sealing::Sha256,
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let mut buf = [0u8; MAX_HEADER];
        let n = encode_header(&header(), &mut buf).unwrap();
        let (h, m) = decode_header(&buf[..n]).unwrap();
        assert_eq!((h, m), (header(), n));
        for cut in 0..n {
            assert!(decode_header(&buf[..cut]).is_err());
        }
        for i in 0..n {
            let mut b = buf;
            b[i] ^= 0x10;
            assert!(decode_header(&b[..n]).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn frames_round_trip_and_chain() {
        let mut chain = Chain::start(b"hdr", None);
        let mut verify = chain.clone();
        let mut buf = [0u8; 4096];
        let mut at = 0;
        let data = EventData {
            path: "/a",
            ..Default::default()
        };
        let mut qd = [0u8; 256];
        let qn = crate::record::encode_event_data(&data, &mut qd).unwrap();
        at += encode_event_frame(7, &qd[..qn], &mut chain, &mut buf[at..]).unwrap();
        let drop = Record::Dropped(DropRecord {
            seq: 8,
            time_ns: 1,
            since_ns: 0,
            after_seq: 7,
            count: 3,
            reason: DropReason::QueueFull,
        });
        at += encode_frame(&drop, &mut chain, &mut buf[at..]).unwrap();
        let end = Record::End(EndRecord {
            seq: 9,
            time_ns: 2,
            reason: EndReason::Shutdown,
        });
        at += encode_frame(&end, &mut chain, &mut buf[at..]).unwrap();
        let mut pos = 0;
        let mut got = [None; 3];
        for slot in &mut got {
            let FrameParse::Frame(f) = parse_frame(&buf[pos..at]) else {
                panic!("frame expected")
            };
            assert_eq!(verify.advance(&f.len_le, f.body), f.tag);
            *slot = Some(decode_body(f.body).unwrap());
            pos += f.total;
        }
        assert_eq!(pos, at);
        assert_eq!(got[0], Some(Record::Event(EventRecord { seq: 7, data })));
        assert_eq!(got[1], Some(drop));
        assert_eq!(got[2], Some(end));
        for cut in 0..at {
            // Never panics on any prefix.
            let _ = parse_frame(&buf[cut..at]);
        }
        assert!(matches!(
            parse_frame(&buf[..5]),
            FrameParse::Incomplete { .. }
        ));
    }
}

#[cfg(test)]
mod robustness {
    //! A cheap in-CI complement to the `record_decode` fuzz target: random
    //! and mutated inputs never panic the decoders. Crashes found by the
    //! fuzzer are added here as named regression tests.
    use super::*;
    use crate::record::{EventData, EventRecord};

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    fn decode_all(bytes: &[u8]) {
        let start = decode_header(bytes).map_or(0, |(_, n)| n);
        let mut pos = start;
        while pos < bytes.len() {
            match parse_frame(&bytes[pos..]) {
                FrameParse::Frame(f) => {
                    let _ = decode_body(f.body);
                    pos += f.total;
                }
                _ => break,
            }
        }
        let _ = decode_body(bytes);
    }

    #[test]
    fn mutated_logs_never_panic_the_decoders() {
        let mut log = [0u8; 4096];
        let h = FileHeader {
            host: "h",
            boot_id: [3; 16],
            session_id: [4; 16],
            created_ns: 9,
            file_index: 0,
            first_seq: 1,
            prev_chain: [0; 32],
            sealing: Sealing::Sha256,
        };
        let mut n = encode_header(&h, &mut log).unwrap();
        let mut chain = Chain::start(&log[..n], None);
        for seq in 1..8 {
            let rec = Record::Event(EventRecord {
                seq,
                data: EventData {
                    path: "/a/b/c",
                    image: "/bin/x",
                    rule: Some(2),
                    status: Some(-13),
                    ..Default::default()
                },
            });
            n += encode_frame(&rec, &mut chain, &mut log[n..]).unwrap();
        }
        let mut s = 0x1234_5678_9abc_def0u64;
        let rounds = if cfg!(miri) { 50 } else { 20_000 };
        for _ in 0..rounds {
            let mut b = log[..n].to_vec();
            for _ in 0..1 + xorshift(&mut s) % 4 {
                let i = (xorshift(&mut s) as usize) % b.len();
                b[i] = xorshift(&mut s) as u8;
            }
            let cut = (xorshift(&mut s) as usize) % (b.len() + 1);
            decode_all(&b[..cut]);
            decode_all(&b[cut..]);
        }
        for _ in 0..rounds / 4 {
            let len = (xorshift(&mut s) % 300) as usize;
            let b: std::vec::Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
            decode_all(&b);
        }
    }
}

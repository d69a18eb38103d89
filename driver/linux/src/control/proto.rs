//! Wire format of the control socket.
//!
//! A message is a frame: a `u32` little-endian body length, then the body,
//! a postcard encoding of [`RequestFrame`] or [`ReplyFrame`]. Both start
//! with the protocol version; a peer with another version gets
//! [`ErrorKind::UnsupportedVersion`]. postcard (not JSON) because the
//! images are binary and the core already uses it; the schema is the serde
//! types below, in field order.
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::engine::EngineStatus;

/// Version of this protocol. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u16 = 1;

/// Longest frame body accepted: the largest image the verifier accepts
/// (16 MiB) plus room for the envelope. A longer length prefix is refused
/// before any allocation.
pub const MAX_FRAME_BODY: usize = fltpolicy_core::image::format::MAX_IMAGE_LEN + 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub version: u16,
    pub request: Request,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Verify and activate this image.
    Load { image: Vec<u8> },
    /// Report counters and the active policy.
    Status,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyFrame {
    pub version: u16,
    pub reply: Reply,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Loaded {
        generation: u64,
        rule_count: u32,
        policy_hash: [u8; 32],
    },
    Status(EngineStatus),
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// Classes of refusal, so clients can tell them apart without parsing text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The peer is not root.
    PermissionDenied,
    /// The frame length exceeds [`MAX_FRAME_BODY`].
    TooLarge,
    /// The body is not a valid request.
    Malformed,
    UnsupportedVersion,
    /// The image failed verification or targets another platform.
    BadPolicy,
    /// The image was loaded but the new marks could not be applied.
    Engine,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("control socket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BODY}")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Decode(#[from] postcard::Error),
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    let body = postcard::to_stdvec(msg)?;
    if body.len() > MAX_FRAME_BODY {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    w.write_all(&out)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame body. `Ok(None)` at a clean end of stream.
pub fn read_frame_body(r: &mut impl Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME_BODY {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Decodes a request body, checking the version first (the version is the
/// first field, so it decodes even when the rest is from another version).
pub fn decode_request(body: &[u8]) -> Result<Request, (ErrorKind, String)> {
    let (version, _) = postcard::take_from_bytes::<u16>(body)
        .map_err(|e| (ErrorKind::Malformed, format!("malformed request: {e}")))?;
    if version != PROTOCOL_VERSION {
        return Err((
            ErrorKind::UnsupportedVersion,
            format!("control protocol version {version} is not supported (this engine speaks {PROTOCOL_VERSION})"),
        ));
    }
    let frame: RequestFrame = postcard::from_bytes(body)
        .map_err(|e| (ErrorKind::Malformed, format!("malformed request: {e}")))?;
    Ok(frame.request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let req = RequestFrame {
            version: PROTOCOL_VERSION,
            request: Request::Load {
                image: vec![1, 2, 3],
            },
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let body = read_frame_body(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(decode_request(&body).unwrap(), req.request);
        assert_eq!(decode_request(&[]).unwrap_err().0, ErrorKind::Malformed);
        assert_eq!(
            decode_request(&[9, 0]).unwrap_err().0,
            ErrorKind::UnsupportedVersion
        );
        assert_eq!(
            decode_request(&[1, 77]).unwrap_err().0,
            ErrorKind::Malformed
        );
        let huge = (MAX_FRAME_BODY as u32 + 1).to_le_bytes();
        assert!(matches!(
            read_frame_body(&mut &huge[..]),
            Err(FrameError::TooLarge(_))
        ));
        // Every prefix and byte flip of a valid body decodes or errors, never panics.
        for cut in 0..body.len() {
            let _ = decode_request(&body[..cut]);
        }
        for i in 0..body.len() {
            let mut b = body.clone();
            b[i] ^= 0xff;
            let _ = decode_request(&b);
        }
    }
}

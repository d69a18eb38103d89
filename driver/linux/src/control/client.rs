//! The client side of the control socket (used by `fltpolicy load` and
//! `fltpolicy status`).
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::EngineStatus;

use super::proto::{
    self, ErrorKind, FrameError, Reply, ReplyFrame, Request, RequestFrame, PROTOCOL_VERSION,
};

/// Longest a client waits for the engine's reply. A load verifies the image
/// and adjusts marks: milliseconds, even for the largest image.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the engine's control socket {}: {source} (is `fltpolicy run ... --control {}` running?)", path.display(), path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the engine closed the connection without replying")]
    NoReply,
    #[error("the engine refused the request ({kind:?}): {message}")]
    Refused { kind: ErrorKind, message: String },
    #[error("the engine sent an unexpected reply")]
    Unexpected,
}

/// What the engine says after a successful load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub generation: u64,
    pub rule_count: u32,
    pub policy_hash: [u8; 32],
}

fn call(socket: &Path, request: Request) -> Result<Reply, ClientError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(FrameError::Io)?;
    let sent = proto::write_frame(
        &mut stream,
        &RequestFrame {
            version: PROTOCOL_VERSION,
            request,
        },
    );
    // The engine may refuse (e.g. a non-root peer) and close before the
    // request is fully written: its error reply is still there to read.
    let body = match (sent, proto::read_frame_body(&mut stream)) {
        (_, Ok(Some(body))) => body,
        (Err(e), _) => return Err(e.into()),
        (Ok(()), Ok(None)) => return Err(ClientError::NoReply),
        (Ok(()), Err(e)) => return Err(e.into()),
    };
    let frame: ReplyFrame = postcard::from_bytes(&body).map_err(FrameError::Decode)?;
    match frame.reply {
        Reply::Error { kind, message } => Err(ClientError::Refused { kind, message }),
        r => Ok(r),
    }
}

/// Sends `image` to the engine listening on `socket`.
pub fn load(socket: &Path, image: Vec<u8>) -> Result<Loaded, ClientError> {
    match call(socket, Request::Load { image })? {
        Reply::Loaded {
            generation,
            rule_count,
            policy_hash,
        } => Ok(Loaded {
            generation,
            rule_count,
            policy_hash,
        }),
        _ => Err(ClientError::Unexpected),
    }
}

/// Asks the engine listening on `socket` for its status.
pub fn status(socket: &Path) -> Result<EngineStatus, ClientError> {
    match call(socket, Request::Status)? {
        Reply::Status(s) => Ok(s),
        _ => Err(ClientError::Unexpected),
    }
}

//! The control socket's thread: accepts one client at a time, checks its
//! credentials, and serves requests until the client closes or misbehaves.
//! A client can delay other clients by at most [`CLIENT_TIMEOUT`] per
//! request; it can never delay the event threads (they do not wait on
//! this thread: a load only swaps the policy slot and adjusts marks).
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{Core, EngineError};
use crate::sys::{creds, fd, wake::Wake};

use super::proto::{self, ErrorKind, FrameError, Reply, ReplyFrame, Request, PROTOCOL_VERSION};

/// Longest the server waits for one request's bytes (or to write a reply).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another engine is already listening on {}", .0.display())]
    InUse(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot create the control socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A running control socket. Stopping removes the socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (mode 0600) and serves `core` on a thread.
    pub fn start(path: &Path, core: Arc<Core>) -> Result<ControlServer, ServerError> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ServerError::NotASocket(path.to_path_buf()));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            // A stale socket from an engine that did not exit cleanly.
            let _ = std::fs::remove_file(path);
        }
        let bind_err = |source| ServerError::Bind {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Wake::new().map_err(bind_err)?);
        let (s, w) = (Arc::clone(&stop), Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("fltpolicy-control".into())
            .spawn(move || serve(listener, core, s, w))
            .map_err(bind_err)?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            wake,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wake.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(listener: UnixListener, core: Arc<Core>, stop: Arc<AtomicBool>, wake: Arc<Wake>) {
    while !stop.load(Ordering::Acquire) {
        let _ = fd::poll_readable(&[listener.as_raw_fd(), wake.as_raw_fd()], -1);
        while let Ok((stream, _)) = listener.accept() {
            let _ = serve_client(stream, &core);
        }
    }
}

fn reply(stream: &mut UnixStream, reply: Reply) -> Result<(), FrameError> {
    proto::write_frame(
        stream,
        &ReplyFrame {
            version: PROTOCOL_VERSION,
            reply,
        },
    )
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
    Reply::Error {
        kind,
        message: message.into(),
    }
}

fn serve_client(mut stream: UnixStream, core: &Core) -> Result<(), FrameError> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let euid = creds::euid();
    match creds::peer_uid(&stream) {
        Ok(uid) if uid == 0 || uid == euid => {}
        Ok(uid) => {
            return reply(
                &mut stream,
                error(
                    ErrorKind::PermissionDenied,
                    format!("uid {uid} may not control the engine (root only)"),
                ),
            )
        }
        Err(e) => {
            return reply(
                &mut stream,
                error(
                    ErrorKind::PermissionDenied,
                    format!("peer credentials: {e}"),
                ),
            )
        }
    }
    loop {
        let body = match proto::read_frame_body(&mut stream) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(FrameError::TooLarge(n)) => {
                // The stream cannot be resynchronized: answer and close.
                return reply(
                    &mut stream,
                    error(
                        ErrorKind::TooLarge,
                        format!(
                            "frame of {n} bytes exceeds the limit of {}",
                            proto::MAX_FRAME_BODY
                        ),
                    ),
                );
            }
            Err(e) => return Err(e),
        };
        let answer = match proto::decode_request(&body) {
            Err((kind, message)) => error(kind, message),
            Ok(Request::Status) => Reply::Status(core.status()),
            Ok(Request::Load { image }) => match core.load(image) {
                Ok(p) => Reply::Loaded {
                    generation: p.generation,
                    rule_count: p.policy().rule_count(),
                    policy_hash: p.hash,
                },
                Err(EngineError::Load(e)) => error(ErrorKind::BadPolicy, e.to_string()),
                Err(e) => error(ErrorKind::Engine, e.to_string()),
            },
        };
        reply(&mut stream, answer)?;
    }
}

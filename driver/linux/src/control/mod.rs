//! The control socket: a Unix stream socket through which `fltpolicy load`
//! and `fltpolicy status` talk to a running engine.
//!
//! Trust boundary: the socket file is created mode 0600 (owner root), and
//! every connection's peer credentials (`SO_PEERCRED`) are checked: only
//! uid 0 (or the engine's own uid) is served. The file mode alone is not
//! relied on — between `bind` and `chmod` the file briefly has the default
//! mode — the credential check is what refuses others. Everything a client
//! sends is untrusted: lengths are bounded before allocation, bodies are
//! decoded without panicking, images go through the verifier, and a bad
//! message gets an error reply without touching the running policy.
pub mod client;
pub mod proto;
pub mod server;

//! The hash chain that makes a log tamper-evident.
//!
//! Every file starts the chain from its header: `c_0 = F(DOMAIN || header)`,
//! and the header carries the final chain value of the previous file
//! (`prev_chain`), so the chain runs unbroken across rotation. Each frame
//! advances it: `c_i = F(c_{i-1} || len_le32 || body)` and stores the first
//! [`TAG_BYTES`] of `c_i`. `F` is
//!
//! * [`Sealing::Sha256`]: plain SHA-256. Anyone can recompute it, so it
//!   proves the log is *internally consistent*: an edited, inserted, removed
//!   or reordered record breaks it unless the editor recomputes every later
//!   tag. It does not stop someone with write access to the file who does.
//! * [`Sealing::HmacSha256`]: HMAC-SHA256 under a 32-byte key held by the
//!   writer (the driver keeps it in non-paged memory, handed over at load
//!   time by the service that also keeps it for `verify`). Without the key
//!   no one can produce a valid tag, so recomputing the chain is caught too.
//!   The header stores only a key id (a hash of the key), never the key.
//!
//! Neither scheme, alone, detects *truncation at a frame boundary* or the
//! deletion of whole trailing files: a prefix of a valid chain is a valid
//! chain. The writer ends every file with an [`End`](super::Record::End)
//! record, so a missing end is visible, and the chain value at any point can
//! be exported off the machine (an anchor) so that a later verify proves the
//! log still extends it. Also out of scope: an attacker who holds the key
//! (kernel compromise) can rewrite everything.
//!
//! Allocation-free; never panics.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes of the chain value stored in each frame. 128 bits: forging a tag
/// by chance takes 2^128 tries; the full 256-bit value is carried forward.
pub const TAG_BYTES: usize = 16;

/// Length of a sealing key.
pub const KEY_BYTES: usize = 32;

/// Domain separation for the start of a file's chain.
const DOMAIN: &[u8] = b"fltpolicy audit chain v1\0";
/// Domain separation for key ids.
const KEY_ID_DOMAIN: &[u8] = b"fltpolicy audit key id v1\0";

/// How a log's chain is computed (stored in every file header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sealing {
    /// Unkeyed SHA-256 chain.
    Sha256,
    /// HMAC-SHA256 chain under the key whose [`key_id`] this is.
    HmacSha256 { key_id: [u8; 8] },
}

impl Sealing {
    pub fn name(&self) -> &'static str {
        match self {
            Sealing::Sha256 => "sha256",
            Sealing::HmacSha256 { .. } => "hmac-sha256",
        }
    }
}

/// Identifies a key without revealing it.
pub fn key_id(key: &[u8; KEY_BYTES]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(KEY_ID_DOMAIN);
    h.update(key);
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// The running chain value of a log.
#[derive(Clone, Debug)]
pub struct Chain {
    value: [u8; 32],
    key: Option<[u8; KEY_BYTES]>,
}

impl Chain {
    /// Starts a file's chain from its encoded header bytes.
    pub fn start(header: &[u8], key: Option<&[u8; KEY_BYTES]>) -> Chain {
        let mut c = Chain {
            value: [0; 32],
            key: key.copied(),
        };
        c.value = c.mix(&[DOMAIN, header]);
        c
    }

    /// The sealing this chain implements (for the header).
    pub fn sealing(&self) -> Sealing {
        match &self.key {
            None => Sealing::Sha256,
            Some(k) => Sealing::HmacSha256 { key_id: key_id(k) },
        }
    }

    /// The full current value (what the next file's header carries).
    pub fn value(&self) -> [u8; 32] {
        self.value
    }

    /// Advances over one frame (`len_le` and `body`), returning the tag to
    /// store in it.
    pub fn advance(&mut self, len_le: &[u8; 4], body: &[u8]) -> [u8; TAG_BYTES] {
        let prev = self.value;
        self.value = self.mix(&[&prev, len_le, body]);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&self.value[..TAG_BYTES]);
        tag
    }

    fn mix(&self, parts: &[&[u8]]) -> [u8; 32] {
        match &self.key {
            None => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            Some(k) => {
                // HMAC accepts keys of any length: new_from_slice cannot fail.
                let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(k) else {
                    return [0; 32];
                };
                for p in parts {
                    m.update(p);
                }
                m.finalize().into_bytes().into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_unkeyed_differ_and_depend_on_history() {
        let mut a = Chain::start(b"h", None);
        let mut b = Chain::start(b"h", Some(&[7; 32]));
        assert_ne!(a.value(), b.value());
        let t1 = a.advance(&[1, 0, 0, 0], b"x");
        let t2 = b.advance(&[1, 0, 0, 0], b"x");
        assert_ne!(t1, t2);
        let mut c = Chain::start(b"h2", None);
        assert_ne!(c.advance(&[1, 0, 0, 0], b"x"), t1);
        assert_eq!(a.sealing(), Sealing::Sha256);
        assert_eq!(
            b.sealing(),
            Sealing::HmacSha256 {
                key_id: key_id(&[7; 32])
            }
        );
    }
}

//! Helpers for tests that corrupt compiled images on purpose.
use fltpolicy_core::image::format::HEADER_LEN;
use sha2::{Digest, Sha256};

/// Rewrites the header's body length and SHA-256 so that a (mutated) body
/// passes those checks and the verifier's structural checks are what fire.
pub fn reseal(image: &mut [u8]) {
    let body_len = (image.len() - HEADER_LEN) as u32;
    image[16..20].copy_from_slice(&body_len.to_le_bytes());
    let digest: [u8; 32] = Sha256::digest(&image[HEADER_LEN..]).into();
    image[32..64].copy_from_slice(&digest);
}

//! Like `verify`, but the fuzzer's bytes become the *body* of an image whose
//! header is made consistent (magic, version, lengths, SHA-256), so inputs
//! get past the hash check and exercise the structural checks and the
//! evaluator. The first two bytes choose the target and the header's
//! declared rule count/worst case seeds.
#![no_main]
use fltpolicy_core::event::{EventView, Op};
use fltpolicy_core::image::format::{Header, FORMAT_VERSION, HEADER_LEN};
use fltpolicy_core::image::Policy;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (meta, body) = data.split_at(10);
    let header = Header {
        version: FORMAT_VERSION,
        target: meta[0] & 1,
        flags: meta[1] & 3,
        header_len: HEADER_LEN as u32,
        body_len: body.len() as u32,
        rule_count: u32::from_le_bytes([meta[2], meta[3], meta[4], meta[5]]) & 0xff,
        worst_case: u32::from_le_bytes([meta[6], meta[7], meta[8], meta[9]]) & 0xffff,
        reserved: 0,
        body_hash: Sha256::digest(body).into(),
    };
    let mut image = header.encode().to_vec();
    image.extend_from_slice(body);
    if let Ok(p) = Policy::from_bytes(&image) {
        let mut ev = EventView::new(Op::Write, "C:\\Data\\a\\b.txt");
        ev.image = "C:\\bin\\x.exe";
        let _ = p.evaluate(&ev);
        let ev = EventView::new(Op::Open, "/srv/data/x");
        let _ = p.evaluate(&ev);
    }
});

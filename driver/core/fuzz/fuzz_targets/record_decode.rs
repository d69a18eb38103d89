//! Arbitrary bytes as an audit log file: the header decoder, the frame
//! parser and the record decoder must return, never panic or hang, and
//! whatever frames they accept must re-encode to the same body.
#![no_main]
use fltpolicy_core::record::chain::Chain;
use fltpolicy_core::record::frame::{decode_body, decode_header, parse_frame, FrameParse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Either a whole file (header first) or a bare run of frames.
    let start = match decode_header(data) {
        Ok((_, n)) => n,
        Err(_) => 0,
    };
    let mut chain = Chain::start(&data[..start], None);
    let mut pos = start;
    let mut out = vec![0u8; fltpolicy_core::record::frame::MAX_FRAME];
    while pos < data.len() {
        match parse_frame(&data[pos..]) {
            FrameParse::Frame(f) => {
                let _ = chain.advance(&f.len_le, f.body);
                if let Ok(rec) = decode_body(f.body) {
                    // A decoded record re-encodes within the frame limit.
                    let mut c = Chain::start(b"", None);
                    let n = fltpolicy_core::record::frame::encode_frame(&rec, &mut c, &mut out)
                        .expect("a decoded record always re-encodes");
                    let _ = decode_body(&out[4..n - 20]).expect("re-encoded record decodes");
                }
                pos += f.total;
            }
            FrameParse::Incomplete { .. } | FrameParse::Bad(_) => break,
        }
    }
});

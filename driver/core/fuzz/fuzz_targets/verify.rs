//! Arbitrary bytes into the verifier: it must return, never panic or hang;
//! whatever it accepts must evaluate without panicking.
#![no_main]
use fltpolicy_core::event::{EventView, Op};
use fltpolicy_core::image::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Policy::from_bytes(data) {
        for (op, path) in [
            (Op::Write, "C:\\Data\\x.txt"),
            (Op::Delete, "/srv/data/a/b"),
            (Op::Read, ""),
        ] {
            let _ = p.evaluate(&EventView::new(op, path));
        }
    }
});

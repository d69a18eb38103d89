//! Fuzzes the whole front end (parse, check, fmt, compile, filters) with
//! the shared harness. Any crash becomes a named test in
//! `compiler/tests/parse_robustness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/parse_harness/mod.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    // The compiler takes text; invalid UTF-8 is the CLI's problem.
    if let Ok(src) = std::str::from_utf8(data) {
        harness::exercise(src);
    }
});

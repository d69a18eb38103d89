//! Differential fuzzing: whatever policy source compiles, the verified VM
//! and the reference interpreter must return the same verdict for every
//! event. Input: `SOURCE \0 EVENT-BYTES`; the event bytes pick an op, a
//! target and fields from small alphabets so that rules actually match.
#![no_main]

use fltpolicy_compiler::{compile, oracle};
use fltpolicy_core::event::{EventView, Op, Target};
use fltpolicy_core::image::Policy;
use libfuzzer_sys::fuzz_target;

const COMPS: &[&str] = &["C:", "Data", "data", "Finance", "x.txt", "a.KEY", "srv", "", "ß", "Users"];

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (src, ev) = (&data[..split], &data[split + 1..]);
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let target = if ev.first().is_some_and(|b| b & 1 == 1) {
        Target::Linux
    } else {
        Target::Windows
    };
    let Ok(compiled) = compile(src, "fuzz.pol", target) else {
        return;
    };
    let policy = Policy::from_bytes(&compiled.image).expect("compiler output verifies");
    let sep = if target == Target::Linux { "/" } else { "\\" };
    for chunk in ev.chunks(6).take(16) {
        let b = |i: usize| chunk.get(i).copied().unwrap_or(0);
        let comps: Vec<&str> = (1..4).map(|i| COMPS[b(i) as usize % COMPS.len()]).collect();
        let path = if b(0) & 2 == 0 {
            comps.join(sep)
        } else {
            format!("{sep}{}", comps.join(sep))
        };
        let image = format!("{sep}bin{sep}{}", COMPS[b(4) as usize % COMPS.len()]);
        let view = EventView {
            op: Op::from_u8(b(5) % 8),
            path: &path,
            pid: u64::from(b(4)),
            ppid: u64::from(b(3)),
            image: &image,
            user: COMPS[b(2) as usize % COMPS.len()],
            size: u64::from(b(1)),
            paging: b(0) & 4 != 0,
        };
        let v = policy.evaluate(&view);
        let o = oracle::evaluate(&compiled.policy, &view);
        assert_eq!(
            (v.action, v.rule, v.line, v.tag),
            (o.action, o.rule, o.line, o.tag.as_str()),
            "{view:?}"
        );
    }
});

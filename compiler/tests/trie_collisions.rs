//! The trie's edges are searched by a 32-bit label hash. Two siblings with
//! the same hash must still route exactly, and an event component that only
//! collides with a label must not match that label's rules.
use std::collections::HashMap;

use fltpolicy_compiler::compile;
use fltpolicy_core::event::{Action, EventView, Op, Target};
use fltpolicy_core::image::strmatch::label_hash_const;
use fltpolicy_core::image::Policy;

/// Two distinct uppercase ASCII labels with equal FNV-1a hashes (birthday
/// search; about 80,000 candidates).
fn colliding_pair() -> (String, String) {
    let mut seen: HashMap<u32, String> = HashMap::new();
    for n in 0u64.. {
        let s = format!("K{n:X}");
        if let Some(prev) = seen.insert(label_hash_const(&s), s.clone()) {
            return (prev, s);
        }
    }
    unreachable!()
}

#[test]
fn colliding_siblings_route_exactly_and_collisions_do_not_match() {
    let (a, b) = colliding_pair();
    assert_ne!(a, b);
    assert_eq!(label_hash_const(&a), label_hash_const(&b));
    for target in [Target::Windows, Target::Linux] {
        let (root, sep) = match target {
            Target::Windows => ("C:\\Data", "\\"),
            Target::Linux => ("/data", "/"),
        };
        // Siblings with equal hashes, different actions.
        let src = format!("log write under {root}{sep}{a}\ndeny write under {root}{sep}{b}\n");
        let c = compile(&src, "c.pol", target).expect("compiles");
        let p = Policy::from_bytes(&c.image).expect("verifies");
        let pa = format!("{root}{sep}{a}{sep}f");
        let pb = format!("{root}{sep}{b}{sep}f");
        assert_eq!(
            p.evaluate(&EventView::new(Op::Write, &pa)).action,
            Action::Log
        );
        assert_eq!(
            p.evaluate(&EventView::new(Op::Write, &pb)).action,
            Action::Deny
        );

        // Only `a` has a rule; an event under `b` walks into `a`'s node by
        // hash, and the exact UNDER test must reject it.
        let src = format!("deny write under {root}{sep}{a}\n");
        let c = compile(&src, "c.pol", target).expect("compiles");
        let p = Policy::from_bytes(&c.image).expect("verifies");
        assert_eq!(
            p.evaluate(&EventView::new(Op::Write, &pb)).action,
            Action::None
        );
        assert_eq!(
            p.evaluate(&EventView::new(Op::Write, &pa)).action,
            Action::Deny
        );
    }
}

//! Compiling any input stays linear in its size (issue 12): `let` lists
//! are shared and de-duplicated, and what the checker materializes is
//! capped (`check::MAX_EXPANDED_ITEMS`, `check::MAX_EXPANDED_BYTES`) with a
//! located error. The tests measure work counters, never wall-clock time.

use fltpolicy_compiler::check::{check_counted, Work, MAX_EXPANDED_BYTES, MAX_EXPANDED_ITEMS};
use fltpolicy_compiler::parse::parse;
use fltpolicy_core::event::Target;
use proptest::prelude::*;

fn work_of(src: &str) -> (Work, Vec<fltpolicy_compiler::Diagnostic>) {
    let file = parse(src).expect("parses");
    let (_, diags, work) = check_counted(&file, Target::Windows);
    (work, diags)
}

/// `let v0 = ["a","b"]` then `let vN = [$vN-1, $vN-1]`: 2^N items without
/// sharing and de-duplication (23 lines took 47.6 s and 4.35 GB).
fn doubling(lines: usize) -> String {
    let mut s = String::from("let v0 = [\"a\", \"b\"]\n");
    for i in 1..lines {
        s.push_str(&format!("let v{i} = [$v{}, $v{}]\n", i - 1, i - 1));
    }
    s.push_str(&format!("log write where name in $v{}\n", lines - 1));
    s
}

/// `let vi = [$vi-1, "x"]`: quadratic without de-duplication.
fn chain_same(lines: usize) -> String {
    let mut s = String::from("let v0 = [\"a\", \"b\"]\n");
    for i in 1..lines {
        s.push_str(&format!("let v{i} = [$v{}, \"x\"]\n", i - 1));
    }
    s.push_str(&format!("log write where name in $v{}\n", lines - 1));
    s
}

/// `let vi = [$vi-1, "xi"]`: every list one longer than the last, so
/// quadratic even with de-duplication; must hit the cap with a located error.
fn chain_distinct(lines: usize) -> String {
    let mut s = String::from("let v0 = [\"a\"]\n");
    for i in 1..lines {
        s.push_str(&format!("let v{i} = [$v{}, \"x{i}\"]\n", i - 1));
    }
    s
}

#[test]
fn doubling_lets_are_shared_and_deduplicated() {
    for lines in [24, 40, 5_000] {
        let src = doubling(lines);
        let (work, diags) = work_of(&src);
        assert!(
            !diags.iter().any(|d| d.is_error()),
            "{lines} lines: {diags:?}"
        );
        // Two distinct items per list: four copied per line at most, plus the use.
        assert!(
            work.items <= 4 * lines as u64 + 2,
            "{lines} lines: {work:?}"
        );
    }
}

#[test]
fn quadratic_chain_of_the_same_item_stays_linear() {
    let (work, diags) = work_of(&chain_same(5_000));
    assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");
    assert!(work.items <= 4 * 5_000 + 3, "{work:?}");
}

#[test]
fn work_grows_linearly_with_adversarial_input() {
    for make in [doubling as fn(usize) -> String, chain_same] {
        let small = work_of(&make(1_000)).0;
        let large = work_of(&make(8_000)).0;
        // 8x the input may cost at most 8x the work (plus a constant).
        assert!(
            large.items <= 8 * small.items + 16 && large.bytes <= 8 * small.bytes + 16,
            "{small:?} -> {large:?}"
        );
    }
}

#[test]
fn growing_lists_hit_the_cap_with_a_located_error() {
    // Items copied: 1 + 2 + ... + n = n²/2; 2,000 lines is ~2M > 2^20.
    let src = chain_distinct(2_000);
    let (work, diags) = work_of(&src);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0];
    assert_eq!(e.code, "pol::too-large");
    // Located at the `$v...` that crossed the line, on a `let` line.
    assert!(src[e.span.start..e.span.end].starts_with("$v"), "{e:?}");
    // The work stops right after the cap.
    assert!(work.items <= MAX_EXPANDED_ITEMS + 2_000, "{work:?}");
}

#[test]
fn long_strings_used_many_times_hit_the_byte_cap() {
    let long = "a".repeat(90_000);
    let mut src = format!("let s = \"C:\\{long}\"\n");
    for _ in 0..500 {
        src.push_str("log write where path == $s\n");
    }
    let (work, diags) = work_of(&src);
    assert!(diags.iter().any(|d| d.code == "pol::too-large"), "{work:?}");
    assert!(work.bytes <= MAX_EXPANDED_BYTES + 100_000, "{work:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random `let` graphs (each list splices random earlier lets and adds
    /// literals from a small pool, then random rules use them): every list
    /// holds at most the number of distinct literals, and the work is at
    /// most the sum over lines of what they splice, which the cap bounds.
    #[test]
    fn let_graphs_stay_within_the_size_bound(
        spec in proptest::collection::vec(
            (proptest::collection::vec(0usize..64, 0..6), proptest::collection::vec(0u8..16, 0..3)),
            1..64,
        ),
        uses in proptest::collection::vec(0usize..64, 0..16),
    ) {
        let mut src = String::new();
        for (i, (refs, lits)) in spec.iter().enumerate() {
            let mut items: Vec<String> = refs
                .iter()
                .filter(|_| i > 0)
                .map(|r| format!("$v{}", r % i))
                .collect();
            items.extend(lits.iter().map(|l| format!("\"s{l}\"")));
            src.push_str(&format!("let v{i} = [{}]\n", items.join(", ")));
        }
        for u in &uses {
            src.push_str(&format!("log write where name in $v{}\n", u % spec.len()));
        }
        let (work, diags) = work_of(&src);
        prop_assert!(!diags.iter().any(|d| d.is_error()), "{:?}", diags);
        // 16 distinct literals: no list is longer, so each line copies at
        // most 16 items per reference or literal, each use 16 more.
        let refs: usize = spec.iter().map(|(r, l)| r.len() + l.len()).sum();
        prop_assert!(work.items <= 16 * (refs + uses.len()) as u64, "{:?}", work);
    }
}

/// The same through the public entry point (on the old code this input
/// exhausted memory: 2^40 list items).
#[test]
fn forty_doubling_lets_compile() {
    let c = fltpolicy_compiler::compile(&doubling(40), "d.pol", Target::Windows).expect("compiles");
    assert_eq!(c.policy.rules.len(), 1);
}

/// Deep `under` paths: the unreachable / no-effect passes used to hash
/// every prefix of every path (a 60 KB path took 30 s; the 40 KB paths here take minutes). Now each
/// component is hashed once; on the old code this test runs for minutes.
#[test]
fn deep_under_paths_check_in_linear_time() {
    let deep = format!("C:{}", "\\a".repeat(20_000));
    let mut src = String::new();
    for i in 0..20 {
        src.push_str(&format!(
            "allow write under \"{deep}\\{i}\"\nlog write under \"{deep}\"\n"
        ));
    }
    let file = parse(&src).expect("parses");
    let (_, diags, _) = check_counted(&file, Target::Windows);
    assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");
    // Every rule after the first `log` is under its path: shadowed.
    assert_eq!(
        diags
            .iter()
            .filter(|d| d.code == "pol::unreachable")
            .count(),
        38
    );
}

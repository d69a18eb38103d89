//! The front end's robustness harness, shared by the test suite
//! (`tests/parse_robustness.rs`, `tests/fmt.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/front_end.rs`), so every fuzz finding replays as an
//! ordinary test.
//!
//! For any text it requires: no panic anywhere; a parse either succeeds or
//! reports at least one error whose span lies inside the source and renders;
//! a parsed file checks for both targets with `Some` policy exactly when no
//! error is reported; `fmt` round-trips and is idempotent; a file that
//! checks also compiles to an image the verifier accepts (only a documented
//! image limit may refuse it).
#![allow(dead_code)]

use fltpolicy_compiler::ast::File;
use fltpolicy_compiler::check::{check, check_condition};
use fltpolicy_compiler::diag::{Diagnostic, Diagnostics, Severity};
use fltpolicy_compiler::fmt::{format, format_condition};
use fltpolicy_compiler::parse::{parse, parse_condition};
use fltpolicy_compiler::{compile, CompileError};
use fltpolicy_core::event::Target;

/// The tree's Debug text with every span, line number and line table
/// blanked: what "equal modulo spans" compares.
pub fn shape(f: &File) -> String {
    let comments: Vec<&str> = f.comments.iter().map(|c| c.node.as_str()).collect();
    format!(
        "{}\n{comments:?}",
        blank_positions(&format!("{:?}", f.items))
    )
}

/// `text` with the numbers after `start: `, `end: ` and `line: ` replaced
/// by `_`.
pub fn blank_positions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(k) = rest.find(|c: char| c.is_ascii_digit()) {
        let (head, tail) = rest.split_at(k);
        out.push_str(head);
        let n = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        if head.ends_with("start: ") || head.ends_with("end: ") || head.ends_with("line: ") {
            out.push('_');
        } else {
            out.push_str(&tail[..n]);
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

fn assert_reportable(src: &str, items: &[Diagnostic]) {
    for d in items {
        assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "span {:?} outside the source ({} bytes): {d:?}",
            d.span,
            src.len()
        );
        assert!(
            src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end),
            "span {:?} splits a character: {d:?}",
            d.span
        );
        for (s, _) in &d.related {
            assert!(
                s.end <= src.len() && s.start <= s.end,
                "related span outside: {d:?}"
            );
        }
        assert!(!d.message.is_empty());
    }
    let rendered = Diagnostics::new("fuzz.pol", src, items.to_vec()).render();
    assert!(items.is_empty() || !rendered.is_empty());
    // No diagnostic echoes more than a bounded slice of the source: each
    // shows a few lines of at most `MAX_SHOWN_LINE` bytes, spans of at most
    // `MAX_SHOWN_SPAN` bytes, texts of at most `MAX_MESSAGE` bytes.
    let labels: usize = items.iter().map(|d| 1 + d.related.len()).sum();
    assert!(
        rendered.len() <= 24 * 1024 * labels.max(1),
        "{} bytes rendered for {} diagnostics",
        rendered.len(),
        items.len()
    );
}

/// Runs the whole front end over `src` and checks its promises.
pub fn exercise(src: &str) {
    match parse(src) {
        Ok(file) => {
            for target in [Target::Windows, Target::Linux] {
                let (policy, items) = check(&file, target);
                assert_reportable(src, &items);
                let has_errors = items.iter().any(|d| d.severity == Severity::Error);
                assert_eq!(
                    policy.is_some(),
                    !has_errors,
                    "policy iff no errors: {items:?}"
                );
                match compile(src, "fuzz.pol", target) {
                    Ok(_) => assert!(!has_errors),
                    Err(CompileError::Verify { error, .. }) => {
                        panic!("compiled image failed verification: {error}")
                    }
                    Err(_) => {}
                }
            }
            let once = format(&file);
            let again = parse(&once)
                .unwrap_or_else(|e| panic!("formatted text does not parse:\n{once}\n{e:?}"));
            assert_eq!(shape(&file), shape(&again), "fmt changed the tree:\n{once}");
            assert_eq!(format(&again), once, "fmt is not idempotent");
        }
        Err(items) => {
            assert!(!items.is_empty());
            assert!(items.iter().all(|d| d.severity == Severity::Error));
            assert_reportable(src, &items);
        }
    }
    match parse_condition(src) {
        Ok(expr) => {
            for target in [Target::Windows, Target::Linux] {
                if let Err(items) = check_condition(&expr, target) {
                    assert!(!items.is_empty());
                    assert_reportable(src, &items);
                }
            }
            let text = format_condition(&expr);
            let again = parse_condition(&text)
                .unwrap_or_else(|e| panic!("formatted condition does not parse:\n{text}\n{e:?}"));
            assert_eq!(
                blank_positions(&format!("{:?}", expr.node)),
                blank_positions(&format!("{:?}", again.node)),
                "fmt changed the condition: {text}"
            );
        }
        Err(items) => {
            assert!(!items.is_empty());
            assert_reportable(src, &items);
        }
    }
}

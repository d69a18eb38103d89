//! Issue 12, "Robustness": inputs a new user (or someone else's policy
//! handed to `load`) can produce. Each test failed on the code before the
//! fix it names.

use fltpolicy_compiler::diag::{Diagnostic, Diagnostics, MAX_MESSAGE};
use fltpolicy_compiler::ir::{Cond, Test};
use fltpolicy_compiler::parse::{parse, MAX_RULE_STATEMENTS, MAX_SOURCE_LEN};
use fltpolicy_compiler::{compile, CompileError};
use fltpolicy_core::event::Target;
use proptest::prelude::*;

fn errors(src: &str) -> Vec<Diagnostic> {
    match compile(src, "p.pol", Target::Windows) {
        Ok(c) => panic!("compiled: {:?}", c.policy),
        Err(CompileError::Source(d)) => d.items.into_iter().filter(|d| d.is_error()).collect(),
        Err(e) => panic!("not a located error: {e}"),
    }
}

fn rendered(src: &str) -> String {
    match compile(src, "p.pol", Target::Windows) {
        Err(CompileError::Source(d)) => d.render(),
        other => panic!("expected source errors, got {other:?}"),
    }
}

#[test]
fn byte_order_mark_is_skipped() {
    let c = compile(
        "\u{feff}log write under C:\\Data\n",
        "bom.pol",
        Target::Windows,
    )
    .expect("a BOM is not a syntax error");
    assert_eq!(c.policy.rules.len(), 1);
    assert_eq!(c.policy.rules[0].line, 1);
    // Only at the start: elsewhere it is text (and a syntax error here).
    assert!(compile("log read\n\u{feff}log write\n", "x.pol", Target::Windows).is_err());
}

#[test]
fn indented_clause_lines_continue_the_rule() {
    let src = "log write under C:\\Data\n  # only the backup tool\n  where pid == 4\n  unless process == x.exe\n  as \"t\"\nlog read\n";
    let c = compile(src, "c.pol", Target::Windows).expect("continues");
    assert_eq!(c.policy.rules.len(), 2);
    let r = &c.policy.rules[0];
    assert_eq!(r.tag, "t");
    assert!(
        matches!(&r.cond, Some(Cond::And(parts)) if parts.len() == 2),
        "{r:?}"
    );
    let src = "log write where pid == 4\n    or pid == 5\n";
    let c = compile(src, "c.pol", Target::Windows).expect("continues");
    assert!(matches!(&c.policy.rules[0].cond, Some(Cond::Or(v)) if v.len() == 2));
}

#[test]
fn unindented_continuation_gets_a_hint() {
    for word in ["and", "or", "unless", "as", "where"] {
        let src = format!("log write under C:\\Data\n{word} pid == 4\n");
        let e = errors(&src);
        assert_eq!(e.len(), 1, "{e:?}");
        let help = e[0].help.as_deref().unwrap_or("");
        assert!(help.contains("indent this line"), "{word}: {help}");
    }
}

#[test]
fn doubled_quote_is_a_quote_in_strings() {
    let c = compile(
        "log write where name == \"say \"\"hi\"\"\" as \"a\"\"b\"\n",
        "q.pol",
        Target::Linux,
    )
    .expect("`\"\"` is an escaped quote");
    let r = &c.policy.rules[0];
    assert_eq!(r.tag, "a\"b");
    assert!(
        matches!(&r.cond, Some(Cond::Test(Test::StrEq { value, .. })) if value == "say \"hi\""),
        "{r:?}"
    );
    // fmt writes it back the same way.
    let file = parse("log write where name == \"a\"\"b\"\n").unwrap();
    let out = fltpolicy_compiler::fmt::format(&file);
    assert!(out.contains("\"a\"\"b\""), "{out}");
    // An empty string stays an empty string; a `#` inside stays text.
    let c = compile(
        "log write where name == \"\"\"#\" or name == \"\"\n",
        "q.pol",
        Target::Linux,
    )
    .expect("compiles");
    assert_eq!(c.policy.rules.len(), 1);
}

#[test]
fn syntax_error_does_not_hide_other_statements_errors() {
    let src = "log write where nme == 1\nlog write (\nlog read where pid == \"x\"\n";
    let e = errors(src);
    let codes: Vec<&str> = e.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["pol::unknown-field", "pol::syntax", "pol::type"],
        "{e:?}"
    );
}

#[test]
fn uses_of_a_let_that_did_not_parse_are_not_reported_again() {
    let e = errors("let office = [\".docx\" \".xlsx\"]\nlog write where ext in $office\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, "pol::syntax");
}

#[test]
fn oversized_source_is_refused_before_parsing() {
    let line = "log write under C:\\Data\n";
    let src = line.repeat(MAX_SOURCE_LEN / line.len() + 1);
    let e = errors(&src);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, "pol::too-large");
    assert_eq!(e[0].span.start, MAX_SOURCE_LEN);
}

#[test]
fn rules_past_the_image_limit_are_a_located_error() {
    let src = "log write\n".repeat(MAX_RULE_STATEMENTS + 10);
    let e = errors(&src);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, "pol::too-large");
    let d = Diagnostics::new("p.pol", &src, e.clone());
    assert_eq!(d.location(&e[0]).line, MAX_RULE_STATEMENTS + 1);
}

#[test]
fn deep_nesting_error_echoes_a_bounded_slice() {
    // Printed 200 KB before: the whole line, twice.
    let src = format!(
        "log read where {}name == x{}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let out = rendered(&src);
    assert!(out.contains("nested more than 64"), "{out}");
    assert!(out.contains("[p.pol:1:"), "{out}");
    assert!(out.len() < 2_000, "{} bytes:\n{out}", out.len());
}

#[test]
fn long_values_are_not_echoed_whole() {
    let word = "x".repeat(1_000_000);
    let src = format!("log read where {word} == 1\nlet a = 1\nlog read where ext == \"{word}\"\n");
    let out = rendered(&src);
    assert!(out.contains("unknown field"), "{out}");
    assert!(out.len() < 6_000, "{} bytes", out.len());
    let e = errors(&src);
    assert!(e.iter().all(|d| d.message.len() <= MAX_MESSAGE + 3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any span on any text (long lines, multi-byte characters, CRLF)
    /// renders without panicking, within a bounded size.
    #[test]
    fn any_span_renders_bounded(
        parts in proptest::collection::vec((0usize..400, "[a-zé\\r\\n\\t ]{0,3}"), 1..8),
        spans in proptest::collection::vec((0usize..5000, 0usize..5000), 1..4),
    ) {
        let src: String = parts.iter().map(|(n, s)| format!("{}{s}", "ab".repeat(*n))).collect();
        let items: Vec<Diagnostic> = spans
            .iter()
            .map(|&(a, l)| {
                let mut a = a.min(src.len());
                while !src.is_char_boundary(a) { a -= 1; }
                let mut b = (a + l).min(src.len());
                while !src.is_char_boundary(b) { b -= 1; }
                Diagnostic::error("pol::syntax", fltpolicy_compiler::ast::Span::new(a, b), "m")
                    .with_label("here")
                    .with_related(fltpolicy_compiler::ast::Span::new(0, b), "there")
            })
            .collect();
        let out = Diagnostics::new("p.pol", &src, items.clone()).render();
        prop_assert!(out.len() <= 16_000 * items.len(), "{}", out.len());
        let _ = Diagnostics::new("p.pol", &src, items).render_short();
    }
}

fn warnings(src: &str) -> Vec<Diagnostic> {
    compile(src, "w.pol", Target::Windows)
        .expect("compiles")
        .warnings
        .items
        .into_iter()
        .filter(|d| d.code == "pol::confusable")
        .collect()
}

#[test]
fn invisible_and_bidi_characters_in_values_are_warned_with_code_points() {
    let src = "log write where name == \"pay\u{200B}roll.xlsx\"\n";
    let w = warnings(src);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.contains("invisible") && w[0].message.contains("U+200B"),
        "{w:?}"
    );
    assert_eq!(&src[w[0].span.start..w[0].span.end], "\u{200B}");
    // Trojan Source: an override that reverses what the editor shows.
    let src = "deny delete under \"C:\\Finance\\\u{202E}xslx.txt\"\n";
    let w = warnings(src);
    assert!(
        w.iter()
            .any(|d| d.message.contains("bidirectional") && d.message.contains("U+202E")),
        "{w:?}"
    );
    // Located exactly, also after a `""` escape.
    let src = "let a = \"x\"\"\u{2060}\"\nlog write where name == $a\n";
    let w = warnings(src);
    assert_eq!(&src[w[0].span.start..w[0].span.end], "\u{2060}");
    // In tags too.
    assert_eq!(warnings("log write as \"t\u{200D}\"\n").len(), 1);
}

#[test]
fn mixed_script_words_are_warned_but_single_script_words_are_not() {
    // Cyrillic а (U+0430) and е (U+0435) in a Latin word.
    let w = warnings("log write where process == \"p\u{0430}yroll-s\u{0435}rvice.exe\"\n");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("Cyrillic"), "{w:?}");
    assert!(w[0].message.contains("U+0430 U+0435"), "{w:?}");
    // A Greek omicron in `c\u{03BF}nfig`.
    assert_eq!(warnings("log read under C:\\c\u{03BF}nfig\n").len(), 1);
    // All-Cyrillic, all-Greek, Latin with accents, and CJK are fine.
    for ok in [
        "Документы",
        "αρχεία",
        "Müller-Lüdenscheidt",
        "資料data",
        "Документы\\data",
    ] {
        assert!(
            warnings(&format!("log read under \"C:\\{ok}\"\n")).is_empty(),
            "{ok}"
        );
    }
}

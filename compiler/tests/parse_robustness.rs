//! No input, however malformed, panics or hangs the front end.
//!
//! Every input that ever crashed the fuzzer (`compiler/fuzz`) is kept here
//! as a named test; the proptests below throw token soup and raw bytes at
//! the same harness the fuzzer uses.

mod parse_harness;

use fltpolicy_compiler::parse::{parse, parse_condition, MAX_CONDITION_TERMS, MAX_NESTING};
use parse_harness::exercise;
use proptest::prelude::*;

#[test]
fn empty_and_blank_inputs() {
    for src in [
        "",
        " ",
        "\n",
        "\n\n\t\n",
        "#",
        "# only a comment",
        "\r\n",
        "\u{feff}",
    ] {
        exercise(src);
    }
    assert_eq!(parse("").unwrap().items.len(), 0);
    assert!(parse_condition("").is_err());
    assert!(parse_condition("   # nothing\n").is_err());
}

#[test]
fn truncated_statements_report_errors() {
    let full = r#"log write, rename under "C:\Data" from image C:\x.exe where (name in [a, "b"] and size >= 10) unless paging as "t""#;
    for end in 0..=full.len() {
        if full.is_char_boundary(end) {
            exercise(&full[..end]);
        }
    }
}

#[test]
fn deep_parentheses_are_refused_not_overflowed() {
    let deep = format!(
        "log read where {}name == x{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let errors = parse(&deep).unwrap_err();
    assert!(errors[0].message.contains("nested more than"), "{errors:?}");
    let ok = format!(
        "log read where {}name == x{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    exercise(&ok);
    assert!(parse(&ok).is_ok());
}

#[test]
fn deep_not_and_lists_are_refused_not_overflowed() {
    let nots = format!("log read where {}paging", "not ".repeat(100_000));
    assert!(parse(&nots).is_err());
    let lists = format!("let a = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&lists).is_err());
    exercise(&"[".repeat(5_000));
    exercise(&"(".repeat(5_000));
}

#[test]
fn long_chains_are_bounded() {
    let chain = |n: usize| {
        let terms: Vec<String> = (0..n).map(|k| format!("pid == {k}")).collect();
        format!("log read where {}", terms.join(" or "))
    };
    assert!(parse(&chain(MAX_CONDITION_TERMS)).is_ok());
    let errors = parse(&chain(MAX_CONDITION_TERMS + 1)).unwrap_err();
    assert!(errors[0].message.contains("comparisons in one condition"));
    exercise(&chain(MAX_CONDITION_TERMS));
}

#[test]
fn huge_numbers_and_odd_characters() {
    exercise("log write from pid 18446744073709551615");
    exercise("log write from pid 18446744073709551616");
    exercise("log write where size > 99999999999999999999999999999999");
    exercise("log write under C:\\Données\\ß\\ǅ where name == \"ﬃ\"");
    exercise("log write under \u{0}\u{1}\u{7f}");
    exercise("log\u{a0}write");
    exercise("log write where name == \"a\u{2028}b\"");
    exercise("lét x = 1");
    exercise("log write where é == 1");
}

#[test]
fn many_errors_in_one_file() {
    let src = "frob\n".repeat(2_000);
    let errors = parse(&src).unwrap_err();
    assert_eq!(errors.len(), 2_000);
}

/// Fragments that mostly belong to the language, so random sequences get
/// deep into the grammar.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "let",
        "log",
        "deny",
        "allow",
        "any",
        "write",
        "writes",
        "read",
        ",",
        "under",
        "from",
        "where",
        "unless",
        "as",
        "pid",
        "image",
        "process",
        "path",
        "name",
        "ext",
        "size",
        "paging",
        "and",
        "or",
        "not",
        "in",
        "matches",
        "startswith",
        "==",
        "!=",
        "<",
        ">=",
        "=",
        "(",
        ")",
        "[",
        "]",
        "$",
        "$x",
        "x",
        "\"",
        "\"q\"",
        "#",
        "C:\\Data",
        "/srv",
        "1234",
        "true",
        " ",
        " ",
        " ",
        "\n",
        "\n  ",
        "é",
        "\t",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(token(), 0..40)) {
        exercise(&tokens.concat());
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        exercise(&src);
    }
}

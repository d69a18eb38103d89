//! `fmt`: canonical layout, comments kept in place, round trip and
//! idempotence (examples and proptest).

use fltpolicy_compiler::fmt::format;
use fltpolicy_compiler::parse::parse;
use proptest::prelude::*;

mod parse_harness;
use parse_harness::shape;

fn round_trip(src: &str) -> String {
    let f = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e:?}"));
    let once = format(&f);
    let g =
        parse(&once).unwrap_or_else(|e| panic!("formatted text does not parse: {once:?}: {e:?}"));
    assert_eq!(
        shape(&f),
        shape(&g),
        "round trip changed the tree:\n{src}\n---\n{once}"
    );
    let twice = format(&g);
    assert_eq!(once, twice, "format is not idempotent");
    once
}

#[test]
fn issue_example_layout() {
    let src = r#"# comment to the end of the line
let data   = C:\Data                       # named value
let office = [".docx",".xlsx" , ".pdf"]


log writes under C:\Data from pid 1234      # the mission's own sentence
LOG write,rename,  delete under $data where process == "backup.exe"
deny delete, rename under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe"
allow any under C:\Windows\Temp
log create as "app-docs" where ext in $office under "C:\Program Files\App"
log read where name startswith "secret" or (path matches "C:\Users\*\Documents\**\*.key" and not paging)
# the end
"#;
    let expected = r#"# comment to the end of the line
let data = C:\Data  # named value
let office = [".docx", ".xlsx", ".pdf"]

log write under C:\Data from pid 1234  # the mission's own sentence
log write, rename, delete under $data where process == "backup.exe"
deny delete, rename under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe"
allow any under C:\Windows\Temp
log create under "C:\Program Files\App" where ext in $office as "app-docs"
log read where name startswith "secret" or (path matches "C:\Users\*\Documents\**\*.key" and not paging)
# the end
"#;
    assert_eq!(round_trip(src), expected);
}

#[test]
fn multi_line_statements_join_and_keep_their_comments() {
    let src = "let office = [\n  \".docx\",   # word\n  \".xlsx\",\n]\nlog write where name == a and\n    size > 10\n";
    let expected =
        "# word\nlet office = [\".docx\", \".xlsx\"]\nlog write where name == a and size > 10\n";
    assert_eq!(round_trip(src), expected);
}

#[test]
fn blank_lines_collapse_and_edges_trim() {
    let src = "\n\n# a\n\n\n\nlog any\n\n\n";
    assert_eq!(round_trip(src), "# a\n\nlog any\n");
    assert_eq!(round_trip(""), "");
    assert_eq!(round_trip("# only\n"), "# only\n");
}

#[test]
fn comment_with_quote_and_hash_in_string() {
    let src = "log write under \"C:\\a#b\" # it's \"quoted\"\n";
    assert_eq!(
        round_trip(src),
        "log write under \"C:\\a#b\"  # it's \"quoted\"\n"
    );
}

// ---------------------------------------------------------------------------
// Property: random well-formed policies survive format, and format is
// idempotent.

fn bare() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z]:\\\\[A-Za-z0-9_.*?\\\\]{0,12}",
        "/[a-z0-9_./*-]{0,12}",
        "[a-zA-Z][a-zA-Z0-9_.-]{0,8}",
    ]
    // A continuation line that starts with a statement keyword starts a new
    // statement (by design), so list items must not look like one.
    .prop_filter("starts like a statement", |s| {
        let w: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        !["let", "log", "deny", "allow"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&w))
    })
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        bare(),
        "[ !#-~]{0,10}".prop_map(|s| format!("\"{s}\"")),
        any::<u32>().prop_map(|n| n.to_string()),
        Just("true".to_string()),
        Just("FALSE".to_string()),
        "[a-z][a-z0-9_]{0,5}".prop_map(|s| format!("${s}")),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => scalar(),
        1 => (prop::collection::vec(scalar(), 0..4), any::<bool>(), prop::sample::select(vec!["", " ", "\n  "])).prop_map(|(v, trailing, sp)| {
            let mut s = format!("[{sp}{}", v.join(&format!(",{sp}")));
            if trailing && !v.is_empty() {
                s.push(',');
            }
            s.push(']');
            s
        }),
    ]
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "path", "name", "ext", "dir", "pid", "ppid", "image", "process", "user", "size",
            "Path", "NAME"
        ])
        .prop_map(str::to_string),
        "[a-z]{1,6}".prop_filter("not a keyword", |s| ![
            "and", "or", "not", "under", "from", "where", "unless", "as", "in"
        ]
        .contains(&s.as_str())),
    ]
}

fn cmp() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "under",
        "startswith",
        "endswith",
        "contains",
        "in",
        "matches",
        "STARTSWITH",
        "not in",
        "NOT startswith",
    ])
}

fn condition() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => (field(), cmp(), value(), "[ ]{0,2}").prop_map(|(f, o, v, sp)| format!("{f}{sp} {o} {sp}{v}")),
        1 => Just("paging".to_string()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("( {a})")),
        ]
    })
}

fn ops() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec![
        "create", "open", "read", "write", "rename", "delete", "setinfo", "close", "writes",
        "Reads", "DELETE",
    ]);
    prop_oneof![
        1 => Just("any".to_string()),
        4 => prop::collection::vec(op, 1..4).prop_map(|v| v.join(" ,")),
    ]
}

fn rule() -> impl Strategy<Value = String> {
    let clause = prop_oneof![
        value().prop_map(|v| format!("under {v}")),
        (
            prop::sample::select(vec!["pid", "image", "process"]),
            value()
        )
            .prop_map(|(w, v)| format!("from {w} {v}")),
        condition().prop_map(|c| format!("where {c}")),
        condition().prop_map(|c| format!("unless {c}")),
        "[a-z-]{1,8}".prop_map(|t| format!("as \"{t}\"")),
    ];
    (
        prop::sample::select(vec!["log", "deny", "allow", "Log"]),
        ops(),
        prop::collection::vec(clause, 0..4),
    )
        .prop_map(|(a, o, cs)| {
            // Keep the first clause of each kind: duplicates are errors.
            let mut seen = Vec::new();
            let mut s = format!("{a} {o}");
            for c in cs {
                let kw = c.split(' ').next().unwrap_or("").to_string();
                if !seen.contains(&kw) {
                    s.push(' ');
                    s.push_str(&c);
                    seen.push(kw);
                }
            }
            s
        })
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => rule(),
        1 => ("[a-z][a-z0-9_]{0,5}", value()).prop_map(|(n, v)| format!("let {n} = {v}")),
        1 => "# [ -~]{0,10}",
        1 => Just(String::new()),
        1 => (rule(), "# [ -~]{0,10}").prop_map(|(r, c)| format!("{r}   {c}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn format_round_trips(lines in prop::collection::vec(line(), 0..8)) {
        let src = lines.join("\n");
        // The generator only writes valid text, so this must parse.
        let f = parse(&src).map_err(|e| TestCaseError::fail(format!("{src}\n{e:?}")))?;
        {
            let once = format(&f);
            let g = parse(&once);
            prop_assert!(g.is_ok(), "formatted text does not parse:\n{}\n---\n{}\n{:?}", src, once, g);
            let g = g.unwrap();
            prop_assert_eq!(shape(&f), shape(&g), "source:\n{}\nformatted:\n{}", src, once);
            prop_assert_eq!(format(&g), once);
        }
    }
}

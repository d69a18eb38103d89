//! Golden renderings of every class of diagnostic: each shows
//! `[file:line:col]`, the source line, a caret under the offending text,
//! the label and a help line.
//!
//! The renderings come from `Diagnostics::render` (miette's graphical
//! handler without colour), so a change in wording or placement shows up
//! here as a diff to review.

use fltpolicy_compiler::check::check;
use fltpolicy_compiler::diag::{Diagnostics, Location, Severity};
use fltpolicy_compiler::parse::parse;
use fltpolicy_core::event::Target;

/// Parses and checks `src` for Windows and renders every diagnostic.
fn diagnostics(src: &str) -> Diagnostics {
    let items = match parse(src) {
        Ok(file) => check(&file, Target::Windows).1,
        Err(items) => items,
    };
    Diagnostics::new("policy.pol", src, items)
}

fn render(src: &str) -> String {
    diagnostics(src).render()
}

#[track_caller]
fn golden(src: &str, expected: &str) {
    let got = render(src);
    assert_eq!(
        got, expected,
        "\n--- got ---\n{got}\n--- expected ---\n{expected}"
    );
}

#[test]
fn unknown_operation() {
    golden(
        r#"log wirte under C:\Data"#,
        r#"pol::syntax

  x expected an operation or `any`, found `wirte`
   ,-[policy.pol:1:5]
 1 | log wirte under C:\Data
   :     ^^|^^
   :       `-- expected an operation or `any`
   `----
  help: did you mean `write`?
"#,
    );
}

#[test]
fn unknown_clause_keyword() {
    golden(
        r#"log write undr C:\Data"#,
        r#"pol::syntax

  x expected `,`, `under`, `from`, `where`, `unless`, `as` or end of line, found `undr`
   ,-[policy.pol:1:11]
 1 | log write undr C:\Data
   :           ^^|^
   :             `-- expected `,`, `under`, `from`, `where`, `unless`, `as` or end of line
   `----
  help: did you mean `under`?
"#,
    );
}

#[test]
fn path_with_spaces() {
    golden(
        r#"log write under C:\Program Files\App"#,
        r#"pol::syntax

  x expected `from`, `where`, `unless`, `as` or end of line, found `Files\App`
   ,-[policy.pol:1:28]
 1 | log write under C:\Program Files\App
   :                            ^^^^|^^^^
   :                                `-- expected `from`, `where`, `unless`, `as` or end of line
   `----
  help: paths with spaces must be quoted: under "C:\Program Files\App"
"#,
    );
}

#[test]
fn misspelt_comparison() {
    golden(
        r#"log read where name startwith "secret""#,
        r#"pol::syntax

  x expected `and`, `or`, a comparison operator, `under`, `from`, `unless`, `as` or end of line, found `startwith`
   ,-[policy.pol:1:21]
 1 | log read where name startwith "secret"
   :                     ^^^^|^^^^
   :                         `-- expected `and`, `or`, a comparison operator, `under`, `from`, `unless`, `as` or end of line
   `----
  help: did you mean `startswith`?
"#,
    );
}

#[test]
fn unclosed_parenthesis() {
    golden(
        r#"log read where (name == a or name == b"#,
        r#"pol::syntax

  x expected `and`, `or` or `)`, found end of line
   ,-[policy.pol:1:38]
 1 | log read where (name == a or name == b
   :                |                     |
   :                |                     `-- expected `and`, `or` or `)` after this
   :                `-- this `(` is not closed
   `----
  help: close the parenthesis with `)`
"#,
    );
}

#[test]
fn unterminated_string() {
    golden(
        r#"deny delete under "C:\Finance unless image == x"#,
        r#"pol::syntax

  x unterminated string
   ,-[policy.pol:1:19]
 1 | deny delete under "C:\Finance unless image == x
   :                   ^^^^^^^^^^^^^^|^^^^^^^^^^^^^^
   :                                 `-- this string is never closed
   `----
  help: a string ends at the next `"` on the same line (write `""` for a `"` inside it); backslashes are literal
"#,
    );
}

#[test]
fn unknown_action() {
    golden(
        r#"frob write under C:\Data"#,
        r#"pol::syntax

  x expected `log`, `deny`, `allow` or `let`, found `frob`
   ,-[policy.pol:1:1]
 1 | frob write under C:\Data
   : ^^|^
   :   `-- expected `log`, `deny`, `allow` or `let`
   `----
  help: a statement starts with `log`, `deny`, `allow` or `let`
"#,
    );
}

#[test]
fn single_equals() {
    golden(
        r#"log write where name = x"#,
        r#"pol::syntax

  x `=` is not a comparison operator
   ,-[policy.pol:1:22]
 1 | log write where name = x
   :                      |
   :                      `-- use `==`
   `----
  help: compare with `==`: name == ...
"#,
    );
}

#[test]
fn duplicate_clause() {
    golden(
        r#"log write under C:\x under C:\y"#,
        r#"pol::syntax

  x `under` appears twice in this rule
   ,-[policy.pol:1:22]
 1 | log write under C:\x under C:\y
   :                      ^^|^^
   :                        `-- second `under`
   `----
  help: a rule has at most one `under` clause; join conditions with `and`/`or`
"#,
    );
}

#[test]
fn missing_condition() {
    golden(
        r#"log write where"#,
        r#"pol::syntax

  x expected a field, `not` or `(`, found end of line
   ,-[policy.pol:1:15]
 1 | log write where
   :               |
   :               `-- expected a field, `not` or `(` after this
   `----
  help: fields are: path, name, ext, dir, pid, ppid, image, process, user, size, paging
"#,
    );
}

#[test]
fn missing_operations() {
    golden(
        r#"log under C:\Data"#,
        r#"pol::syntax

  x expected an operation or `any`, found `under`
   ,-[policy.pol:1:5]
 1 | log under C:\Data
   :     ^^|^^
   :       `-- expected an operation or `any`
   `----
  help: operations are: create, open, read, write, rename, delete, setinfo, close; plurals (`writes`) and `any` are accepted, separated by commas
"#,
    );
}

#[test]
fn number_too_large() {
    golden(
        r#"log write from pid 99999999999999999999999"#,
        r#"pol::syntax

  x number too large
   ,-[policy.pol:1:20]
 1 | log write from pid 99999999999999999999999
   :                    ^^^^^^^^^^^|^^^^^^^^^^^
   :                               `-- does not fit in 64 bits
   `----
  help: numbers go up to 18446744073709551615
"#,
    );
}

#[test]
fn list_missing_comma() {
    golden(
        r#"let office = [".docx" ".pdf"]"#,
        r#"pol::syntax

  x expected `,` or `]`, found `"`
   ,-[policy.pol:1:23]
 1 | let office = [".docx" ".pdf"]
   :                       |
   :                       `-- expected `,` or `]`
   `----
  help: separate list items with commas; quote items that contain spaces
"#,
    );
}

#[test]
fn dollar_without_name() {
    golden(
        r#"log write under $"#,
        r#"pol::syntax

  x expected a name, found end of line
   ,-[policy.pol:1:17]
 1 | log write under $
   :                 |
   :                 `-- expected a name after this
   `----
  help: write `$` directly followed by the name of a `let`: $data
"#,
    );
}

#[test]
fn tag_not_string() {
    golden(
        r#"log write as 12"#,
        r#"pol::syntax

  x a tag must be a string
   ,-[policy.pol:1:14]
 1 | log write as 12
   :              ^|
   :               `-- not a string
   `----
  help: write the tag in quotes: as "my-tag"
"#,
    );
}

#[test]
fn undefined_name() {
    golden(
        r#"let data = C:\Data
log write under $dta"#,
        r#"pol::unused

  ! `data` is never used
   ,-[policy.pol:1:5]
 1 | let data = C:\Data
   :     ^^|^
   :       `-- defined here
 2 | log write under $dta
   `----
  help: refer to it as `$data`, or remove the `let`
pol::undefined

  x `$dta` is not defined
   ,-[policy.pol:2:17]
 1 | let data = C:\Data
 2 | log write under $dta
   :                 ^^|^
   :                   `-- not defined (a `let` must come before its use)
   `----
  help: did you mean `$data`?
"#,
    );
}

#[test]
fn undefined_name_no_lets() {
    golden(
        r#"log write under $data"#,
        r#"pol::undefined

  x `$data` is not defined
   ,-[policy.pol:1:17]
 1 | log write under $data
   :                 ^^|^^
   :                   `-- not defined (a `let` must come before its use)
   `----
  help: define it before its first use: let data = ...
"#,
    );
}

#[test]
fn redefined_name() {
    golden(
        r#"let data = C:\Data
let data = C:\Other
log write under $data"#,
        r#"pol::redefined

  x `data` is already defined
   ,-[policy.pol:2:5]
 1 | let data = C:\Data
   :     ^^|^
   :       `-- first defined here
 2 | let data = C:\Other
   :     ^^|^
   :       `-- defined again here
 3 | log write under $data
   `----
  help: each name is defined once; pick another name or remove one of the `let`s
"#,
    );
}

#[test]
fn unknown_field() {
    golden(
        r#"log write where nmae == "x""#,
        r#"pol::unknown-field

  x unknown field `nmae`
   ,-[policy.pol:1:17]
 1 | log write where nmae == "x"
   :                 ^^|^
   :                   `-- not a field
   `----
  help: did you mean `name`? fields are: path, name, ext, dir, pid, ppid, image, process, user, size, paging
"#,
    );
}

#[test]
fn pid_vs_string() {
    golden(
        r#"log write where pid == "twelve""#,
        r#"pol::type

  x `pid` is a number, found a string
   ,-[policy.pol:1:24]
 1 | log write where pid == "twelve"
   :                        ^^^^|^^^
   :                            `-- a string
   `----
  help: compare `pid` with digits, e.g. `pid == 1234`
"#,
    );
}

#[test]
fn less_than_on_string() {
    golden(
        r#"log write where name < 3"#,
        r#"pol::type

  x `<` compares numbers, but `name` is a string
   ,-[policy.pol:1:22]
 1 | log write where name < 3
   :                      |
   :                      `-- a number operator
   `----
  help: strings compare with == != under startswith endswith contains in matches
"#,
    );
}

#[test]
fn under_on_name() {
    golden(
        r#"log write where name under C:\Data"#,
        r#"pol::type

  x `under` compares paths, but `name` is not a path
   ,-[policy.pol:1:22]
 1 | log write where name under C:\Data
   :                      ^^|^^
   :                        `-- needs a path field
   `----
  help: use `under` with path, dir or image; use `==`, `startswith` or `matches` here
"#,
    );
}

#[test]
fn in_needs_list() {
    golden(
        r#"log write where ext in ".docx""#,
        r#"pol::type

  x `in` needs a list, found a string
   ,-[policy.pol:1:24]
 1 | log write where ext in ".docx"
   :                        ^^^|^^^
   :                           `-- a string
   `----
  help: write a list: ext in ["a", "b"], or compare with `==`
"#,
    );
}

#[test]
fn list_item_type() {
    golden(
        r#"log write where ext in [".docx", 3]"#,
        r#"pol::type

  x `ext` is a string, but this list item is a number
   ,-[policy.pol:1:34]
 1 | log write where ext in [".docx", 3]
   :                                  |
   :                                  `-- a number
   `----
  help: quote it to compare it as text
"#,
    );
}

#[test]
fn paging_not_bool() {
    golden(
        r#"log write where paging == 1"#,
        r#"pol::type

  x `paging` is a boolean, found a number
   ,-[policy.pol:1:27]
 1 | log write where paging == 1
   :                           |
   :                           `-- a number
   `----
  help: compare it with `true` or `false`
"#,
    );
}

#[test]
fn flag_not_bool() {
    golden(
        r#"log write where user"#,
        r#"pol::type

  x `user` is not a boolean field
   ,-[policy.pol:1:17]
 1 | log write where user
   :                 ^^|^
   :                   `-- needs a comparison
   `----
  help: only `paging` stands alone; compare this field, e.g. `user == ...`
"#,
    );
}

#[test]
fn from_pid_string() {
    golden(
        r#"log write from pid backup"#,
        r#"pol::type

  x `from pid` takes a number, found a string
   ,-[policy.pol:1:20]
 1 | log write from pid backup
   :                    ^^^|^^
   :                       `-- a string
   `----
  help: write the process id as digits: from pid 1234
"#,
    );
}

#[test]
fn unreachable_rule() {
    golden(
        r#"log any under C:\Data
log write under C:\Data\Reports"#,
        r#"pol::unreachable

  ! unreachable rule, shadowed by rule 1 at line 1
   ,-[policy.pol:2:1]
 1 | log any under C:\Data
   : ^^^^^^^^^^|^^^^^^^^^^
   :           `-- this earlier rule matches every event this one could
 2 | log write under C:\Data\Reports
   : ^^^^^^^^^^^^^^^|^^^^^^^^^^^^^^^
   :                `-- never decides anything
   `----
  help: rules are tried in order and the first match decides; move the more specific rule first
"#,
    );
}

#[test]
fn unused_let() {
    golden(
        r#"let office = [".docx"]
log write"#,
        r#"pol::unused

  ! `office` is never used
   ,-[policy.pol:1:5]
 1 | let office = [".docx"]
   :     ^^^|^^
   :        `-- defined here
 2 | log write
   `----
  help: refer to it as `$office`, or remove the `let`
"#,
    );
}

#[test]
fn relative_under() {
    golden(
        r#"log write under Data"#,
        r#"pol::relative-path

  ! `Data` is not an absolute windows path; events carry full paths, so this rule never matches
   ,-[policy.pol:1:17]
 1 | log write under Data
   :                 ^^|^
   :                   `-- relative path
   `----
  help: write the full path, e.g. `under C:\Data`
"#,
    );
}

#[test]
fn duplicate_operation() {
    golden(
        r#"log write, writes under C:\Data"#,
        r#"pol::duplicate-op

  ! `write` is listed twice
   ,-[policy.pol:1:12]
 1 | log write, writes under C:\Data
   :            ^^^|^^
   :               `-- repeated
   `----
  help: remove the repetition
"#,
    );
}

#[test]
fn empty_in_list() {
    golden(
        r#"log write where ext in []"#,
        r#"pol::always-false

  ! `in` an empty list is always false
   ,-[policy.pol:1:24]
 1 | log write where ext in []
   :                        ^|
   :                         `-- empty list
   `----
  help: add items to the list, or remove the comparison
"#,
    );
}

#[test]
fn several_errors() {
    golden(
        r#"log wirte under C:\Data
log write where nmae == x
log read where pid == "twelve"
log write under C:\Data
frob"#,
        r#"pol::syntax

  x expected an operation or `any`, found `wirte`
   ,-[policy.pol:1:5]
 1 | log wirte under C:\Data
   :     ^^|^^
   :       `-- expected an operation or `any`
 2 | log write where nmae == x
   `----
  help: did you mean `write`?
pol::syntax

  x expected `log`, `deny`, `allow` or `let`, found `frob`
   ,-[policy.pol:5:1]
 4 | log write under C:\Data
 5 | frob
   : ^^|^
   :   `-- expected `log`, `deny`, `allow` or `let`
   `----
  help: a statement starts with `log`, `deny`, `allow` or `let`
"#,
    );
}

#[test]
fn allow_without_effect() {
    golden(
        "log write under C:\\Data\nallow read under C:\\Temp\n",
        r#"pol::no-effect

  ! this `allow` has no effect: no later rule could match the same events
   ,-[policy.pol:2:1]
 1 | log write under C:\Data
 2 | allow read under C:\Temp
   : ^^^^^^^^^^^^|^^^^^^^^^^^
   :             `-- changes nothing
   `----
  help: events no rule matches are let through unrecorded anyway; `allow` matters only before a `log` or `deny` rule it should exempt events from
"#,
    );
}

#[test]
fn several_statements_report_one_error_each_in_one_pass() {
    // The open `(` on line 3 does not swallow the unindented line 4.
    let src = "log wirte under C:\\Data\nlog write under C:\\Data\nlog write where (a == 1\nfrob\nlet = 3\n";
    let d = diagnostics(src);
    let at: Vec<(usize, usize)> = d
        .items
        .iter()
        .map(|i| {
            let Location { line, column } = d.location(i);
            (line, column)
        })
        .collect();
    assert_eq!(at, [(1, 5), (3, 23), (4, 1), (5, 5)]);
    assert_eq!(d.error_count(), 4);
    assert!(d.has_errors());
}

#[test]
fn semantic_errors_are_all_reported_in_source_order() {
    let src =
        "log write where nmae == x\nlog read where pid == \"twelve\"\nlog any under $nowhere\n";
    let d = diagnostics(src);
    assert_eq!(
        d.render_short(),
        "policy.pol:1:17: error[pol::unknown-field]: unknown field `nmae`\n\
         policy.pol:2:23: error[pol::type]: `pid` is a number, found a string\n\
         policy.pol:3:15: error[pol::undefined]: `$nowhere` is not defined\n"
    );
}

#[test]
fn one_miette_report_shows_every_item() {
    let src = "log wirte under C:\\Data\nlog write undr C:\\Data\n";
    let d = diagnostics(src);
    assert_eq!(d.to_string(), "policy.pol: 2 errors");
    let report = format!("{:?}", miette::Report::new(d));
    assert!(report.contains("[policy.pol:1:5]"), "{report}");
    assert!(report.contains("[policy.pol:2:11]"), "{report}");
    assert!(report.contains("did you mean `write`?"), "{report}");
    assert!(report.contains("did you mean `under`?"), "{report}");
}

#[test]
fn warnings_alone_do_not_fail_the_check() {
    let src = "log any\nlog write under C:\\Data\n";
    let file = parse(src).unwrap();
    let (policy, items) = check(&file, Target::Windows);
    assert!(policy.is_some());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].severity, Severity::Warning);
    let d = Diagnostics::new("policy.pol", src, items);
    assert_eq!(d.to_string(), "policy.pol: 1 warning");
    assert!(!d.has_errors());
}

#[test]
fn columns_count_characters_after_non_ascii_text() {
    // "é" is two bytes; the caret must still land under `wirte`.
    let src = "log read under \"C:\\Données\" where name == x\nlog wirte\n";
    let d = diagnostics(src);
    assert_eq!(d.location(&d.items[0]), Location { line: 2, column: 5 });
    let src = "log read under \"C:\\Données\" where nmae == x\n";
    let d = diagnostics(src);
    assert_eq!(
        d.location(&d.items[0]),
        Location {
            line: 1,
            column: 35
        }
    );
}

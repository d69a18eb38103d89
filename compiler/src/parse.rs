//! The `.pol` parser: source text → [`ast::File`] with byte spans.
//!
//! Built on nom 8 with one error type, `PError`, that remembers where the
//! parse failed and which tokens would have been accepted there. Branches
//! commit with `cut` once their keyword has been seen (after `under` a path
//! *must* follow), and `context` names what was being parsed, so an error
//! points at the offending token and says what was expected.
//!
//! # Grammar
//!
//! ```text
//! file       = { statement } ;                    one statement per logical line
//! statement  = target | let | rule ;
//! target     = "target" ( "linux" | "windows" ) ;   first statement only
//! let        = "let" NAME "=" ( value | or ) ;      a lone value, else a named condition
//! rule       = ACTION ops { clause } ;            each clause at most once, any order
//! ACTION     = "log" | "deny" | "allow" ;
//! ops        = "any" | opitem { "," opitem } ;    opitem: op | "$" NAME (a let listing ops);
//!                                                 op: create open read write rename
//!                                                 delete setinfo close, or a plural
//! clause     = "under" value | "from" who | "where" or | "unless" or | "as" value
//!            | "disabled" ;                       checked, not compiled in
//! who        = "pid" value | "image" value | "process" value ;
//! or         = and { "or" and } ;
//! and        = not { "and" not } ;
//! not        = "not" not | primary ;
//! primary    = "(" or ")" | "$" NAME | FIELD [ CMPOP [ "any" ] value ] | FIELD "not" WORDOP [ "any" ] value ;
//!                                                 a list after a word operator
//!                                                 other than `in` means "any item";
//!                                                 a field alone is a flag;
//!                                                 `x not in v` is `not x in v`
//! CMPOP      = "==" | "!=" | "<=" | ">=" | "<" | ">" | WORDOP ;
//! WORDOP     = "under" | "startswith" | "endswith" | "contains" | "in" | "matches" ;
//! value      = '"' { chars-but-quote | '""' } '"' | "$" NAME | "[" [ value { "," value } [","] ] "]"
//!            | DIGITS | "true" | "false" | BARE ;
//! BARE       = one or more characters other than whitespace , [ ] ( ) " # ;
//! ```
//!
//! Lexical decisions:
//! * Keywords, operation names, `true`/`false` and field names are ASCII
//!   case-insensitive (`LOG Writes` works); values keep their case and the
//!   checker decides how they compare.
//! * `#` starts a comment anywhere outside a quoted string, so a path that
//!   contains `#`, a space, a comma, a bracket or a parenthesis must be quoted.
//! * Backslashes are literal everywhere; a quoted string ends at the next
//!   lone `"` (`""` inside it is one `"`) and may not span lines.
//! * A UTF-8 byte order mark at the very start is skipped.
//! * A statement is one line. It continues on the next line only while a
//!   `[` or `(` is open, or when the line ends with `,`, `and`, `or`, `not`,
//!   `where` or `unless` — and then only onto lines that are indented or
//!   start with `]` or `)` — and onto an indented line that starts with
//!   `and`, `or`, `where`, `unless`, `from`, `under` or `as`
//!   (comment-only lines in between are skipped). A
//!   blank line, an unindented line, or a line that starts with `let`,
//!   `log`, `deny` or `allow` always starts afresh. Each
//!   statement is parsed on its own, so one bad line does not hide errors on
//!   the next, and a forgotten `]` swallows nothing but indented lines.
//!
//! The parser never panics and never loops without consuming input; nesting
//! (parentheses, `not`, lists) is bounded by [`MAX_NESTING`] and the number
//! of comparisons in one condition by [`MAX_CONDITION_TERMS`], so recursion
//! depth is bounded for any input (`compiler/fuzz` checks this).

use std::cell::Cell;

use fltpolicy_core::event::Op;
use nom::error::{ContextError, ErrorKind, ParseError};
use nom::{IResult, Parser};

use crate::ast::{self, ActionKw, CmpOp, Expr, Item, Ops, Span, Spanned, Value, Who};
use crate::diag::{suggest, Diagnostic};

/// Deepest nesting of parentheses, `not` and lists in one statement.
///
/// Real policies nest two or three levels; the bound keeps the recursive
/// descent (and every later recursive pass over the tree) far from the
/// stack limit even on a 2 MiB test thread.
pub const MAX_NESTING: usize = 64;

/// Most comparisons in one condition.
///
/// `and`/`or` chains are stored as nested binary nodes, so a chain's length
/// is also the tree's depth; 512 is far beyond any hand-written condition
/// (use `in [list]` for long alternatives).
pub const MAX_CONDITION_TERMS: usize = 512;

/// Largest policy source, in bytes. 65,536 rules (the image limit) of a
/// hundred-odd bytes each fit with room to spare; a larger input is refused
/// before any of it is parsed, so a huge file costs neither time nor memory.
pub const MAX_SOURCE_LEN: usize = 8 << 20;

/// Most rule statements in one file: the image's limit
/// (`fltpolicy_core::image::format::MAX_RULES`). Parsing stops at the first
/// rule past it, with an error located there.
pub const MAX_RULE_STATEMENTS: usize = fltpolicy_core::image::format::MAX_RULES as usize;

/// Words that continue the rule of the previous line when they start an
/// indented line (`  where ...`, `  and ...`).
const CONTINUATION_WORDS: [&str; 7] = ["and", "or", "where", "unless", "as", "from", "under"];

/// The operation keywords, for help texts and suggestions.
pub const OP_WORDS: [&str; 8] = [
    "create", "open", "read", "write", "rename", "delete", "setinfo", "close",
];

/// The field names the checker accepts, for help texts and suggestions.
pub const FIELD_WORDS: [&str; 11] = [
    "path", "name", "ext", "dir", "pid", "ppid", "image", "process", "user", "size", "paging",
];

const CMP_WORDS: [&str; 6] = [
    "under",
    "startswith",
    "endswith",
    "contains",
    "in",
    "matches",
];
const STATEMENT_WORDS: [&str; 5] = ["let", "log", "deny", "allow", "target"];
const JOINER_WORDS: [&str; 5] = ["and", "or", "not", "where", "unless"];

/// Parses a whole policy file.
///
/// On failure returns every syntax error found (one per bad statement at
/// most), in source order.
pub fn parse(source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    let (file, errors) = parse_partial(source);
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// Parses a whole policy file, keeping every statement that parsed next to
/// the syntax errors of those that did not, so the checker can still report
/// the semantic errors of the good ones. The names of `let`s that failed to
/// parse are in [`ast::File::broken_lets`] (their uses are not errors).
///
/// A source over [`MAX_SOURCE_LEN`] is refused unread, and parsing stops at
/// the rule past [`MAX_RULE_STATEMENTS`]; both errors are located.
pub fn parse_partial(source: &str) -> (ast::File, Vec<Diagnostic>) {
    let mut file = ast::File::default();
    if source.len() > MAX_SOURCE_LEN {
        let mut at = MAX_SOURCE_LEN;
        while !source.is_char_boundary(at) {
            at -= 1;
        }
        let next = source[at..].chars().next().map_or(0, char::len_utf8);
        let d = Diagnostic::error(
            "pol::too-large",
            Span::new(at, at + next),
            format!(
                "the policy is {} bytes; a policy source holds at most {MAX_SOURCE_LEN} bytes",
                source.len()
            ),
        )
        .with_label("the limit is reached here")
        .with_help("split the policy, or move long lists into fewer, shared `let`s");
        return (file, vec![d]);
    }
    let p = P::new(source);
    file.comments = collect_comments(source);
    file.line_starts = p.line_starts.clone();
    let mut errors = Vec::new();
    let mut rules = 0usize;
    for (start, end) in logical_lines(source) {
        let text = &source[start..end];
        let first = first_word(ws(text));
        if ["log", "deny", "allow"]
            .iter()
            .any(|w| w.eq_ignore_ascii_case(first))
        {
            rules += 1;
            if rules > MAX_RULE_STATEMENTS {
                let at = p.off(ws(text));
                errors.push(
                    Diagnostic::error(
                        "pol::too-large",
                        Span::new(at, at + first.len()),
                        format!("more than {MAX_RULE_STATEMENTS} rules; an image holds at most {MAX_RULE_STATEMENTS}"),
                    )
                    .with_label("one rule too many")
                    .with_help("the rest of the file was not read; split the policy or merge rules with lists (`in [...]`)"),
                );
                break;
            }
        }
        match p.statement(text) {
            Ok(item) => file.items.push(item),
            Err(e) => {
                if first.eq_ignore_ascii_case("let") {
                    let after = ws(&ws(text)[first.len()..]);
                    if let Some((_, name)) = word(after) {
                        let at = p.off(after);
                        file.broken_lets.push(Spanned::new(
                            name.to_string(),
                            Span::new(at, at + name.len()),
                        ));
                    }
                }
                errors.push(p.diagnostic(e))
            }
        }
    }
    (file, errors)
}

/// Parses a lone condition (the syntax after `where`), as used by the
/// viewer's filter bar and `log export --filter`. Comments are allowed and
/// ignored; newlines are plain whitespace.
pub fn parse_condition(source: &str) -> Result<Spanned<Expr>, Vec<Diagnostic>> {
    let p = P::new(source);
    let run = || -> Result<Spanned<Expr>, PError<'_>> {
        let i = ws(source);
        if i.is_empty() {
            return Err(PError::expected(i, "a condition"));
        }
        p.terms.set(0);
        let (rest, e) = p.or_expr(i, 0).map_err(unwrap_err)?;
        let rest = ws(rest);
        if !rest.is_empty() {
            return Err(PError::expected_many(
                rest,
                &["`and`", "`or`", "end of condition"],
            ));
        }
        Ok(e)
    };
    run().map_err(|e| vec![p.diagnostic(e)])
}

// ---------------------------------------------------------------------------
// Lines and comments

/// Byte ranges of the comments of `source` (`#` outside a quoted string, to
/// the end of the line), with their text (including the `#`, without the
/// line break or trailing whitespace).
fn collect_comments(source: &str) -> Vec<Spanned<String>> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in source.split_inclusive('\n') {
        if let Some(hash) = comment_start(line) {
            let text = line[hash..].trim_end();
            let start = line_start + hash;
            out.push(Spanned::new(
                text.to_string(),
                Span::new(start, start + text.len()),
            ));
        }
        line_start += line.len();
    }
    out
}

/// Offset of the `#` that starts a comment in `line`, if any.
fn comment_start(line: &str) -> Option<usize> {
    let mut in_quote = false;
    for (i, b) in line.bytes().enumerate() {
        match b {
            b'"' => in_quote = !in_quote,
            b'#' if !in_quote => return Some(i),
            b'\n' => in_quote = false,
            _ => {}
        }
    }
    None
}

/// Splits `source` into statements: byte ranges, each starting at a line
/// with code and extended over following lines while the statement is
/// visibly unfinished (see the module doc).
fn logical_lines(source: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let lines: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        // A UTF-8 byte order mark (Notepad writes one) is not part of the text.
        let mut start = if source.starts_with('\u{feff}') { 3 } else { 0 };
        for l in source[start..].split_inclusive('\n') {
            let body = l.strip_suffix('\n').unwrap_or(l);
            v.push((start, start + body.len()));
            start += l.len();
        }
        v
    };
    let mut k = 0;
    while k < lines.len() {
        let (start, mut end) = lines[k];
        let code = code_of(&source[start..end]);
        k += 1;
        if code.trim().is_empty() {
            continue;
        }
        let mut depth = 0usize;
        let mut unfinished = scan_line(code, &mut depth);
        loop {
            // The next line with code (comment-only lines in between are
            // transparent).
            let mut m = k;
            while m < lines.len() {
                let raw = &source[lines[m].0..lines[m].1];
                if raw.trim().is_empty() || !code_of(raw).trim().is_empty() {
                    break;
                }
                m += 1;
            }
            let Some(&(ns, ne)) = lines.get(m) else { break };
            let raw = &source[ns..ne];
            let next = code_of(raw);
            let first = first_word(next.trim_start());
            let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(first));
            let indented = raw.starts_with([' ', '\t']);
            let closes = raw.starts_with([']', ')']);
            let continues = if raw.trim().is_empty() || is(&STATEMENT_WORDS) {
                false
            } else if unfinished {
                indented || closes
            } else {
                // A finished rule continues on an indented line that starts
                // with a clause or `and`/`or`.
                indented && is(&CONTINUATION_WORDS)
            };
            if !continues {
                break;
            }
            end = ne;
            k = m + 1;
            unfinished = scan_line(next, &mut depth);
        }
        out.push((start, end));
    }
    out
}

/// Byte offset of the start of every line of `source`.
fn line_starts(source: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The code part of a line: everything before its comment.
fn code_of(line: &str) -> &str {
    match comment_start(line) {
        Some(h) => &line[..h],
        None => line,
    }
}

/// Updates the bracket depth over `code` and says whether the statement
/// visibly continues on the next line.
fn scan_line(code: &str, depth: &mut usize) -> bool {
    let mut in_quote = false;
    for b in code.bytes() {
        match b {
            b'"' => in_quote = !in_quote,
            b'[' | b'(' if !in_quote => *depth = depth.saturating_add(1),
            b']' | b')' if !in_quote => *depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let trimmed = code.trim_end();
    let last = trimmed
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .next()
        .unwrap_or("");
    *depth > 0
        || trimmed.ends_with(',')
        || JOINER_WORDS.iter().any(|w| w.eq_ignore_ascii_case(last))
}

fn first_word(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

// ---------------------------------------------------------------------------
// Errors

/// The parser's error: where, what would have been accepted, and optionally
/// a precise message that replaces the "expected ..." sentence. Boxed so
/// that every `IResult` stays two words wide on the success path.
#[derive(Clone, Debug, PartialEq)]
struct PError<'a>(Box<ErrorInfo<'a>>);

#[derive(Clone, Debug, PartialEq)]
struct ErrorInfo<'a> {
    at: &'a str,
    expected: Vec<&'static str>,
    context: Option<&'static str>,
    message: Option<String>,
    help: Option<String>,
    /// The label under the caret for a custom message.
    label: Option<String>,
    /// Length of the offending text when it is not simply the next token.
    len: Option<usize>,
    /// Other places worth showing (the `(` that was never closed).
    related: Vec<(Span, String)>,
}

impl<'a> std::ops::Deref for PError<'a> {
    type Target = ErrorInfo<'a>;
    fn deref(&self) -> &ErrorInfo<'a> {
        &self.0
    }
}

impl std::ops::DerefMut for PError<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> PError<'a> {
    fn expected(at: &'a str, what: &'static str) -> Self {
        Self::expected_many(at, &[what])
    }

    fn expected_many(at: &'a str, what: &[&'static str]) -> Self {
        PError(Box::new(ErrorInfo {
            at,
            expected: what.to_vec(),
            context: None,
            message: None,
            help: None,
            label: None,
            len: None,
            related: Vec::new(),
        }))
    }

    fn custom(at: &'a str, len: usize, message: impl Into<String>) -> Self {
        PError(Box::new(ErrorInfo {
            at,
            expected: Vec::new(),
            context: None,
            message: Some(message.into()),
            help: None,
            label: None,
            len: Some(len),
            related: Vec::new(),
        }))
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

impl<'a> ParseError<&'a str> for PError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PError::expected_many(input, &[])
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }

    fn or(self, other: Self) -> Self {
        // The error that got further wins; at the same place, both sets of
        // expectations are merged.
        match self.at.len().cmp(&other.at.len()) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal => {
                let mut merged = if self.message.is_some() {
                    self
                } else {
                    other.clone()
                };
                for e in other.0.expected {
                    if !merged.expected.contains(&e) {
                        merged.expected.push(e);
                    }
                }
                merged
            }
        }
    }
}

impl<'a> ContextError<&'a str> for PError<'a> {
    fn add_context(_input: &'a str, ctx: &'static str, mut other: Self) -> Self {
        // Keep the innermost context: it names the construct being parsed
        // when the failure happened.
        if other.context.is_none() {
            other.context = Some(ctx);
        }
        other
    }
}

type PResult<'a, T> = IResult<&'a str, T, PError<'a>>;

fn unwrap_err(e: nom::Err<PError<'_>>) -> PError<'_> {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        // Complete input: nom never asks for more.
        nom::Err::Incomplete(_) => PError::expected_many("", &[]),
    }
}

fn err<T>(e: PError<'_>) -> PResult<'_, T> {
    Err(nom::Err::Error(e))
}

fn fail<T>(e: PError<'_>) -> PResult<'_, T> {
    Err(nom::Err::Failure(e))
}

// ---------------------------------------------------------------------------
// Lexical helpers

/// Skips whitespace (line breaks included: the statement splitter already
/// decided which line breaks belong to this statement) and comments.
fn ws(mut i: &str) -> &str {
    loop {
        let t = i.trim_start();
        if let Some(c) = t.strip_prefix('#') {
            i = c.find('\n').map_or("", |n| &c[n..]);
        } else {
            return t;
        }
    }
}

/// A word: ASCII letters, digits and `_`.
fn word(i: &str) -> Option<(&str, &str)> {
    let end = i
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(i.len());
    (end > 0).then(|| (&i[end..], &i[..end]))
}

/// Consumes keyword `k` (case-insensitive, whole word).
fn kw<'a>(k: &'static str, i: &'a str) -> Option<&'a str> {
    match word(i) {
        Some((rest, w)) if w.eq_ignore_ascii_case(k) => Some(rest),
        _ => None,
    }
}

fn is_bare_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, ',' | '[' | ']' | '(' | ')' | '"' | '#'))
}

/// The token at `i`, for "found ..." in messages: a word, a bare value, or
/// one character.
fn token(i: &str) -> &str {
    let end = i.find(|c: char| !is_bare_char(c)).unwrap_or(i.len());
    if end > 0 {
        return &i[..end];
    }
    i.chars().next().map_or("", |c| &i[..c.len_utf8()])
}

fn describe_token(tok: &str) -> String {
    if tok.is_empty() || tok == "\n" || tok == "\r" {
        "end of line".to_string()
    } else {
        format!("`{tok}`")
    }
}

// ---------------------------------------------------------------------------
// The parser

struct P<'s> {
    src: &'s str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// Comparisons seen in the condition being parsed.
    terms: Cell<usize>,
    /// `$name`s of the operation list just parsed, for the rule.
    op_refs: std::cell::RefCell<Vec<Spanned<String>>>,
}

impl<'s> P<'s> {
    fn new(src: &'s str) -> Self {
        P {
            src,
            line_starts: line_starts(src),
            terms: Cell::new(0),
            op_refs: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Byte offset of `i` (a suffix of some slice of the source).
    fn off(&self, i: &str) -> usize {
        (i.as_ptr() as usize)
            .saturating_sub(self.src.as_ptr() as usize)
            .min(self.src.len())
    }

    fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.off(from), self.off(to))
    }

    /// 1-based line of `offset` (binary search: large policies have
    /// thousands of rules).
    fn line_of(&self, offset: usize) -> u32 {
        let n = self.line_starts.partition_point(|&s| s <= offset);
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }

    /// Turns a parse error into a diagnostic: the span of the offending
    /// token, what was expected, and a hint.
    fn diagnostic(&self, e: PError<'_>) -> Diagnostic {
        let start = self.off(e.at);
        let tok = token(e.at);
        let len = e.len.unwrap_or(tok.len());
        let mut span = Span::new(start, (start + len).min(self.src.len()));
        let expected = join_expected(&e.expected);
        let (message, mut label) = match &e.message {
            Some(m) => (m.clone(), e.label.clone().unwrap_or_default()),
            None => (
                format!("expected {expected}, found {}", describe_token(tok)),
                format!("expected {expected}"),
            ),
        };
        if span.is_empty() {
            // Nothing to underline at the end of a line: point at the last
            // character before it, so the caret shows where text is missing.
            let before = self.src[..start.min(self.src.len())].trim_end();
            if let Some(c) = before.chars().next_back() {
                span = Span::new(before.len() - c.len_utf8(), before.len());
                if e.message.is_none() {
                    label = format!("expected {expected} after this");
                }
            }
        }
        let help = e.help.clone().or_else(|| self.hint(&e, tok));
        let mut d = Diagnostic::error("pol::syntax", span, message)
            .with_label(label)
            .with_help_opt(help);
        for (span, label) in e.0.related {
            d = d.with_related(span, label);
        }
        d
    }

    /// When a bare path is followed by stray words (`under C:\Program Files\App`),
    /// the quoted path the author probably meant: the path and everything up
    /// to the next clause keyword.
    fn quote_hint(&self, rule: &ast::Rule, stray: &str) -> Option<String> {
        let (kw, value) = match (&rule.from, &rule.under) {
            (Some(w), _) if w.span.end <= self.off(stray) && matches!(w.node, Who::Image(_)) => {
                let Who::Image(v) = &w.node else { return None };
                ("from image", v)
            }
            (_, Some(u)) => ("under", u),
            _ => return None,
        };
        if !matches!(value.node, Value::Bare(_)) || value.span.end > self.off(stray) {
            return None;
        }
        let mut k = stray;
        let mut end = self.off(stray);
        loop {
            let t = token(k);
            let is_clause = ["under", "from", "where", "unless", "as"]
                .iter()
                .any(|w| w.eq_ignore_ascii_case(t));
            if t.is_empty() || t.contains('\n') || t.contains('"') || t.contains('#') || is_clause {
                break;
            }
            k = &k[t.len()..];
            if !t.trim().is_empty() {
                end = self.off(k);
            }
        }
        let text = self.src.get(value.span.start..end)?;
        Some(format!("paths with spaces must be quoted: {kw} \"{text}\""))
    }

    /// A hint for an "expected ..." error: a likely typo, or the list of
    /// words that fit there.
    fn hint(&self, e: &PError<'_>, tok: &str) -> Option<String> {
        match tok {
            "&&" | "&" => return Some("write `and` instead of `&&`".to_string()),
            "||" | "|" => return Some("write `or` instead of `||`".to_string()),
            "," if e.expected.contains(&"`and`") => {
                return Some(
                    "to compare with several values, write a list: ext in [\".docx\", \".xlsx\"]"
                        .to_string(),
                )
            }
            _ if tok.starts_with('!') && !tok.starts_with("!=") => {
                return Some("write `not` instead of `!`".to_string())
            }
            _ => {}
        }
        let mut candidates: Vec<&'static str> = Vec::new();
        for x in &e.expected {
            if let Some(w) = x.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
                candidates.push(w);
            }
        }
        let ctx = e.context.unwrap_or("");
        match ctx {
            "operation" => candidates.extend(OP_WORDS.iter().chain(&["any"])),
            "field" => candidates.extend(FIELD_WORDS),
            "comparison" => candidates.extend(CMP_WORDS),
            _ => {}
        }
        if e.expected.contains(&"a comparison operator") {
            candidates.extend(CMP_WORDS);
        }
        if !tok.is_empty() && tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // A plural of an operation is fine; suggest on the singular.
            let singular = tok
                .strip_suffix('s')
                .filter(|s| !s.is_empty())
                .unwrap_or(tok);
            if let Some(s) = suggest(tok, candidates.iter().copied())
                .or_else(|| suggest(singular, candidates.iter().copied()))
            {
                return Some(format!("did you mean `{s}`?"));
            }
        }
        match ctx {
            "operation" => Some(format!(
                "operations are: {}; plurals (`writes`) and `any` are accepted, separated by commas",
                OP_WORDS.join(", ")
            )),
            "field" => Some(format!("fields are: {}", FIELD_WORDS.join(", "))),
            "comparison" => Some(
                "comparison operators are: == != < <= > >= under startswith endswith contains in matches"
                    .to_string(),
            ),
            "path" => Some("a path is written bare (C:\\Data, /srv/data), quoted (\"C:\\Program Files\"), or as $name".to_string()),
            "who" => Some("write `from pid 1234`, `from image C:\\Windows\\System32\\robocopy.exe` or `from process backup.exe`".to_string()),
            "action" => Some("a statement starts with `log`, `deny`, `allow` or `let`".to_string()),
            "tag" => Some("write the tag in quotes: as \"my-tag\"".to_string()),
            "value" => Some("a value is a bare word or path, a \"quoted string\", a number, true/false, a [list] or $name".to_string()),
            "after-path" if !tok.is_empty() => Some(
                "paths with spaces must be quoted: under \"C:\\Program Files\\App\"".to_string(),
            ),
            _ => None,
        }
    }

    /// One statement: `let ...` or a rule, then end of input.
    fn statement<'a>(&self, line: &'a str) -> Result<Item, PError<'a>> {
        let i = ws(line);
        let (rest, item) = if let Some(r) = kw("let", i) {
            let (rest, l) = self.let_(i, r).map_err(unwrap_err)?;
            (rest, Item::Let(l))
        } else if let Some(r) = kw("target", i) {
            let j = ws(r);
            let t = match word(j) {
                Some((rest, w)) if w.eq_ignore_ascii_case("linux") => {
                    Some((rest, fltpolicy_core::event::Target::Linux))
                }
                Some((rest, w)) if w.eq_ignore_ascii_case("windows") => {
                    Some((rest, fltpolicy_core::event::Target::Windows))
                }
                _ => None,
            };
            let Some((rest, t)) = t else {
                return Err(PError::expected_many(j, &["`linux`", "`windows`"])
                    .help("write `target linux` or `target windows` as the first statement"));
            };
            (
                rest,
                Item::Target(ast::TargetDecl {
                    target: Spanned::new(t, self.span(j, rest)),
                    span: self.span(i, rest),
                }),
            )
        } else {
            let (rest, r) = self.rule(i).map_err(unwrap_err)?;
            (rest, Item::Rule(r))
        };
        let rest = ws(rest);
        if !rest.is_empty() {
            return Err(PError::expected(rest, "end of line"));
        }
        Ok(item)
    }

    fn let_<'a>(&self, start: &'a str, i: &'a str) -> PResult<'a, ast::Let> {
        let i = ws(i);
        let Some((after_name, name)) = word(i) else {
            return fail(PError::expected(i, "a name").help("write `let NAME = VALUE`"));
        };
        let name = Spanned::new(name.to_string(), self.span(i, after_name));
        let i = ws(after_name);
        let Some(i) = i.strip_prefix('=') else {
            return fail(PError::expected(i, "`=`").help("write `let NAME = VALUE`"));
        };
        let i = ws(i);
        // A value, or else a condition (`let noisy = image under X or pid == 4`).
        let as_value = self.value(i, 0);
        if !matches!(&as_value, Ok((rest, _)) if ws(rest).is_empty()) {
            self.terms.set(0);
            if let Ok((rest, e)) = self.or_expr(i, 0) {
                if ws(rest).is_empty() && !matches!(e.node, Expr::Flag(_)) {
                    let span = self.span(start, rest);
                    let value = Spanned::new(Value::Cond(Box::new(e)), self.span(i, rest));
                    return Ok((rest, ast::Let { name, value, span }));
                }
            }
        }
        let (rest, value) = match as_value {
            Ok(v) => v,
            Err(nom::Err::Error(e)) => {
                let mut e = e;
                e.context = e.context.or(Some("value"));
                return fail(e);
            }
            Err(e) => return Err(e),
        };
        let rest_ws = ws(rest);
        if !rest_ws.is_empty() {
            let mut e = PError::expected(rest_ws, "end of line");
            if matches!(value.node, Value::Bare(_)) {
                e = e.help("values with spaces must be quoted: let dir = \"C:\\Program Files\"");
            }
            return fail(e);
        }
        let span = self.span(start, rest);
        Ok((rest, ast::Let { name, value, span }))
    }

    fn rule<'a>(&self, start: &'a str) -> PResult<'a, ast::Rule> {
        let i = start;
        let (i, action) = match word(i) {
            Some((rest, w)) => {
                let a = if w.eq_ignore_ascii_case("log") {
                    ActionKw::Log
                } else if w.eq_ignore_ascii_case("deny") {
                    ActionKw::Deny
                } else if w.eq_ignore_ascii_case("allow") {
                    ActionKw::Allow
                } else {
                    let mut e = PError::expected_many(i, &["`log`", "`deny`", "`allow`", "`let`"]);
                    e.context = Some("action");
                    if CONTINUATION_WORDS.iter().any(|c| c.eq_ignore_ascii_case(w)) {
                        e = e.help(format!(
                            "to continue the rule above, indent this line (`  {w} ...`) or end the line above with `and`, `or` or `,`; an unindented line starts a new statement"
                        ));
                    }
                    return fail(e);
                };
                (rest, Spanned::new(a, self.span(i, rest)))
            }
            None => {
                let mut e = PError::expected_many(i, &["`log`", "`deny`", "`allow`", "`let`"]);
                e.context = Some("action");
                return fail(e);
            }
        };
        let i = ws(i);
        let (mut i, ops) = nom::combinator::cut(|i| self.ops(i)).parse(i)?;
        let line = self.line_of(self.off(start));
        let mut rule = ast::Rule {
            action,
            ops,
            under: None,
            from: None,
            where_: None,
            unless: None,
            tag: None,
            op_refs: std::mem::take(&mut *self.op_refs.borrow_mut()),
            disabled: None,
            span: Span::default(),
            line,
        };
        // What the previous clause could still have been continued with.
        let mut after: &[&'static str] = &["`,`"];
        let mut after_ctx: Option<&'static str> = None;
        loop {
            let j = ws(i);
            let Some((k_rest, k)) = word(j) else {
                break;
            };
            let k = k.to_ascii_lowercase();
            let kspan = self.span(j, k_rest);
            let dup = |what: &str| {
                fail(
                    PError::custom(
                        j,
                        kspan.len(),
                        format!("`{what}` appears twice in this rule"),
                    )
                    .label("second `".to_string() + what + "`")
                    .help(format!(
                        "a rule has at most one `{what}` clause; join conditions with `and`/`or`"
                    )),
                )
            };
            let body = ws(k_rest);
            match k.as_str() {
                "under" => {
                    if rule.under.is_some() {
                        return dup("under");
                    }
                    let (r, v) =
                        nom::combinator::cut(nom::error::context("path", |i| self.value(i, 0)))
                            .parse(body)?;
                    // A bare path followed by stray words probably had a space.
                    after_ctx = matches!(v.node, Value::Bare(_)).then_some("after-path");
                    rule.under = Some(v);
                    i = r;
                    after = &[];
                }
                "from" => {
                    if rule.from.is_some() {
                        return dup("from");
                    }
                    let (r, w) = nom::combinator::cut(nom::error::context("who", |i| self.who(i)))
                        .parse(body)?;
                    after_ctx = match &w.node {
                        Who::Image(v) if matches!(v.node, Value::Bare(_)) => Some("after-path"),
                        _ => None,
                    };
                    rule.from = Some(w);
                    i = r;
                    after = &[];
                }
                "where" | "unless" => {
                    let slot_taken = if k == "where" {
                        rule.where_.is_some()
                    } else {
                        rule.unless.is_some()
                    };
                    if slot_taken {
                        return dup(if k == "where" { "where" } else { "unless" });
                    }
                    self.terms.set(0);
                    let (r, e) = nom::combinator::cut(nom::error::context("condition", |i| {
                        self.or_expr(i, 0)
                    }))
                    .parse(body)?;
                    after = if matches!(e.node, Expr::Flag(_)) {
                        &["`and`", "`or`", "a comparison operator"]
                    } else {
                        &["`and`", "`or`"]
                    };
                    after_ctx = None;
                    if k == "where" {
                        rule.where_ = Some(e);
                    } else {
                        rule.unless = Some(e);
                    }
                    i = r;
                }
                "disabled" => {
                    if rule.disabled.is_some() {
                        return dup("disabled");
                    }
                    rule.disabled = Some(kspan);
                    i = k_rest;
                    after = &[];
                    after_ctx = None;
                }
                "as" => {
                    if rule.tag.is_some() {
                        return dup("as");
                    }
                    let (r, t) = nom::combinator::cut(nom::error::context("tag", |i| self.tag(i)))
                        .parse(body)?;
                    rule.tag = Some(t);
                    i = r;
                    after = &[];
                    after_ctx = None;
                }
                _ => break,
            }
        }
        let j = ws(i);
        if !j.is_empty() {
            let mut expected: Vec<&'static str> = after.to_vec();
            for (w, taken) in [
                ("`under`", rule.under.is_some()),
                ("`from`", rule.from.is_some()),
                ("`where`", rule.where_.is_some()),
                ("`unless`", rule.unless.is_some()),
                ("`as`", rule.tag.is_some()),
            ] {
                if !taken {
                    expected.push(w);
                }
            }
            expected.push("end of line");
            let mut e = PError::expected_many(j, &expected);
            e.context = after_ctx;
            if let Some(help) = self.quote_hint(&rule, j) {
                e = e.help(help);
            }
            return fail(e);
        }
        rule.span = self.span(start, i);
        Ok((i, rule))
    }

    /// `any` or a comma-separated list of operations.
    fn ops<'a>(&self, i: &'a str) -> PResult<'a, Spanned<Ops>> {
        let start = i;
        if let Some(rest) = kw("any", i) {
            return Ok((rest, Spanned::new(Ops::Any, self.span(i, rest))));
        }
        let mut list = Vec::new();
        let mut refs = Vec::new();
        let mut i = i;
        loop {
            let j = ws(i);
            // `$name`: a named set of operations.
            if let Some(body) = j.strip_prefix('$') {
                let Some((rest, name)) = word(body) else {
                    return fail(PError::expected(body, "a name").help(
                        "write `$` directly followed by the name of a `let` that lists operations",
                    ));
                };
                refs.push(Spanned::new(name.to_string(), self.span(body, rest)));
                i = rest;
                match ws(i).strip_prefix(',') {
                    Some(after) => {
                        i = after;
                        continue;
                    }
                    None => break,
                }
            }
            // Lower-cased first: `Op::from_name` strips a lower-case plural `s`.
            let op = word(j)
                .and_then(|(rest, w)| Op::from_name(&w.to_ascii_lowercase()).map(|op| (rest, op)));
            let Some((rest, op)) = op else {
                let mut e = if list.is_empty() && refs.is_empty() {
                    PError::expected_many(j, &["an operation", "`any`"])
                } else {
                    PError::expected(j, "an operation")
                };
                e.context = Some("operation");
                if list.is_empty() && kw("any", j).is_none() && word(j).is_none() {
                    e = e.help(format!(
                        "a rule names the operations it covers after the action: `log write under C:\\Data`; operations are: {}, or `any`",
                        OP_WORDS.join(", ")
                    ));
                }
                return fail(e);
            };
            list.push(Spanned::new(op, self.span(j, rest)));
            i = rest;
            let k = ws(i);
            match k.strip_prefix(',') {
                Some(after) => i = after,
                None => break,
            }
        }
        *self.op_refs.borrow_mut() = refs;
        Ok((i, Spanned::new(Ops::List(list), self.span(start, i))))
    }

    /// `pid V` / `image V` / `process V`.
    fn who<'a>(&self, i: &'a str) -> PResult<'a, Spanned<Who>> {
        let start = i;
        let Some((rest, w)) = word(i) else {
            return err(PError::expected_many(i, &["`pid`", "`image`", "`process`"]));
        };
        let make: fn(Spanned<Value>) -> Who = if w.eq_ignore_ascii_case("pid") {
            Who::Pid
        } else if w.eq_ignore_ascii_case("image") {
            Who::Image
        } else if w.eq_ignore_ascii_case("process") {
            Who::Process
        } else {
            return err(PError::expected_many(i, &["`pid`", "`image`", "`process`"]));
        };
        let (rest, v) = nom::combinator::cut(|i| self.value(i, 0)).parse(ws(rest))?;
        Ok((rest, Spanned::new(make(v), self.span(start, rest))))
    }

    /// `"TAG"` (a bare word is accepted too).
    fn tag<'a>(&self, i: &'a str) -> PResult<'a, Spanned<String>> {
        let (rest, v) = self.value(i, 0)?;
        match v.node {
            Value::Quoted(s) | Value::Bare(s) => Ok((rest, Spanned::new(s, v.span))),
            _ => fail(
                PError::custom(i, v.span.len(), "a tag must be a string")
                    .label("not a string")
                    .help("write the tag in quotes: as \"my-tag\""),
            ),
        }
    }

    /// A value. `depth` counts enclosing lists, bounded by [`MAX_NESTING`].
    /// Lists are accepted everywhere a value is; the checker says where a
    /// list makes no sense, with a better message than a syntax error could.
    fn value<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Spanned<Value>> {
        let start = i;
        if let Some(body) = i.strip_prefix('"') {
            // `""` inside a string is one `"`; backslashes stay literal.
            let mut text = String::new();
            let mut from = 0;
            loop {
                match body[from..].find(['"', '\n']).map(|e| from + e) {
                    Some(e) if body.as_bytes()[e] == b'"' => {
                        text.push_str(&body[from..e]);
                        if body.as_bytes().get(e + 1) == Some(&b'"') {
                            text.push('"');
                            from = e + 2;
                            continue;
                        }
                        let rest = &body[e + 1..];
                        return Ok((
                            rest,
                            Spanned::new(Value::Quoted(text), self.span(start, rest)),
                        ));
                    }
                    _ => {
                        let line = body.split('\n').next().unwrap_or("").trim_end();
                        return fail(
                            PError::custom(i, 1 + line.len(), "unterminated string")
                                .label("this string is never closed")
                                .help("a string ends at the next `\"` on the same line (write `\"\"` for a `\"` inside it); backslashes are literal"),
                        );
                    }
                }
            }
        }
        if let Some(body) = i.strip_prefix('$') {
            return match word(body) {
                Some((rest, name)) => Ok((
                    rest,
                    Spanned::new(Value::Var(name.to_string()), self.span(start, rest)),
                )),
                None => fail(
                    PError::expected(body, "a name")
                        .help("write `$` directly followed by the name of a `let`: $data"),
                ),
            };
        }
        if let Some(body) = i.strip_prefix('[') {
            if depth >= MAX_NESTING {
                return fail(
                    PError::custom(i, 1, format!("lists nested more than {MAX_NESTING} deep"))
                        .label("too deep"),
                );
            }
            let mut items = Vec::new();
            let mut j = ws(body);
            loop {
                if let Some(rest) = j.strip_prefix(']') {
                    return Ok((
                        rest,
                        Spanned::new(Value::List(items), self.span(start, rest)),
                    ));
                }
                let (rest, v) = nom::combinator::cut(|i| self.value(i, depth + 1)).parse(j)?;
                items.push(v);
                j = ws(rest);
                if let Some(rest) = j.strip_prefix(',') {
                    j = ws(rest);
                } else if !j.starts_with(']') {
                    let mut e = PError::expected_many(j, &["`,`", "`]`"]);
                    if j.is_empty() {
                        e = e.help("close the list with `]`");
                    } else {
                        e = e.help(
                            "separate list items with commas; quote items that contain spaces",
                        );
                    }
                    return fail(e);
                }
            }
        }
        let end = i.find(|c: char| !is_bare_char(c)).unwrap_or(i.len());
        if end == 0 {
            return err(PError::expected(i, "a value"));
        }
        let text = &i[..end];
        let rest = &i[end..];
        let span = self.span(start, rest);
        let node = if text.bytes().all(|b| b.is_ascii_digit()) {
            match text.parse::<u64>() {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    return fail(
                        PError::custom(i, end, "number too large")
                            .label("does not fit in 64 bits")
                            .help(format!("numbers go up to {}", u64::MAX)),
                    )
                }
            }
        } else if text.eq_ignore_ascii_case("true") {
            Value::Bool(true)
        } else if text.eq_ignore_ascii_case("false") {
            Value::Bool(false)
        } else {
            Value::Bare(text.to_string())
        };
        Ok((rest, Spanned::new(node, span)))
    }

    // -- conditions ---------------------------------------------------------

    fn or_expr<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Spanned<Expr>> {
        let (mut i, mut lhs) = self.and_expr(i, depth)?;
        loop {
            let j = ws(i);
            let Some(r) = kw("or", j) else { break };
            let (r, rhs) = nom::combinator::cut(|i| self.and_expr(i, depth)).parse(ws(r))?;
            let span = lhs.span.join(rhs.span);
            lhs = Spanned::new(Expr::Or(Box::new(lhs), Box::new(rhs)), span);
            i = r;
        }
        Ok((i, lhs))
    }

    fn and_expr<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Spanned<Expr>> {
        let (mut i, mut lhs) = self.not_expr(i, depth)?;
        loop {
            let j = ws(i);
            let Some(r) = kw("and", j) else { break };
            let (r, rhs) = nom::combinator::cut(|i| self.not_expr(i, depth)).parse(ws(r))?;
            let span = lhs.span.join(rhs.span);
            lhs = Spanned::new(Expr::And(Box::new(lhs), Box::new(rhs)), span);
            i = r;
        }
        Ok((i, lhs))
    }

    fn not_expr<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Spanned<Expr>> {
        if let Some(r) = kw("not", i) {
            if depth >= MAX_NESTING {
                return fail(
                    PError::custom(
                        i,
                        3,
                        format!("condition nested more than {MAX_NESTING} deep"),
                    )
                    .label("too deep")
                    .help("simplify the condition"),
                );
            }
            let (r, inner) = nom::combinator::cut(|i| self.not_expr(i, depth + 1)).parse(ws(r))?;
            let span = self.span(i, i).join(inner.span);
            return Ok((r, Spanned::new(Expr::Not(Box::new(inner)), span)));
        }
        self.primary(i, depth)
    }

    fn primary<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Spanned<Expr>> {
        if let Some(body) = i.strip_prefix('$') {
            return match word(body) {
                Some((rest, name)) => Ok((
                    rest,
                    Spanned::new(
                        Expr::Ref(Spanned::new(name.to_string(), self.span(body, rest))),
                        self.span(i, rest),
                    ),
                )),
                None => fail(
                    PError::expected(body, "a name")
                        .help("write `$` directly followed by the name of a `let`: $noisy"),
                ),
            };
        }
        if let Some(body) = i.strip_prefix('(') {
            if depth >= MAX_NESTING {
                return fail(
                    PError::custom(
                        i,
                        1,
                        format!("condition nested more than {MAX_NESTING} deep"),
                    )
                    .label("too deep")
                    .help("simplify the condition"),
                );
            }
            let (r, inner) =
                nom::combinator::cut(|i| self.or_expr(i, depth + 1)).parse(ws(body))?;
            let j = ws(r);
            let Some(rest) = j.strip_prefix(')') else {
                let mut expected = vec!["`and`", "`or`", "`)`"];
                if matches!(inner.node, Expr::Flag(_)) {
                    expected.push("a comparison operator");
                }
                let mut e = PError::expected_many(j, &expected);
                e.related
                    .push((self.span(i, body), "this `(` is not closed".to_string()));
                if j.is_empty() {
                    e = e.help("close the parenthesis with `)`");
                }
                return fail(e);
            };
            return Ok((
                rest,
                Spanned::new(Expr::Paren(Box::new(inner)), self.span(i, rest)),
            ));
        }
        self.comparison(i)
    }

    fn comparison<'a>(&self, i: &'a str) -> PResult<'a, Spanned<Expr>> {
        let n = self.terms.get() + 1;
        self.terms.set(n);
        if n > MAX_CONDITION_TERMS {
            return fail(
                PError::custom(
                    i,
                    token(i).len(),
                    format!("more than {MAX_CONDITION_TERMS} comparisons in one condition"),
                )
                .label("one too many")
                .help("use `in [a, b, ...]` for long lists of alternatives"),
            );
        }
        let Some((after_field, name)) = word(i) else {
            let mut e = PError::expected_many(i, &["a field", "`not`", "`(`"]);
            e.context = Some("field");
            return err(e);
        };
        let field = Spanned::new(name.to_string(), self.span(i, after_field));
        let j = ws(after_field);
        // `FIELD not OP VALUE` (`ext not in $office`) is `not (FIELD OP VALUE)`
        // for the word operators.
        if let Some(r) = kw("not", j) {
            let k = ws(r);
            let Some((r, op)) = self
                .cmp_op(k)
                .filter(|(_, op)| op.node.keyword().starts_with(char::is_alphabetic))
            else {
                let mut e = PError::expected(k, "a word operator after `not`");
                e.context = Some("comparison");
                return fail(e.help("negate with `not` before a word operator: ext not in [...], name not startswith x; or write `!=`"));
            };
            let (rest, value) =
                nom::combinator::cut(nom::error::context("value", |i| self.value(i, 0)))
                    .parse(skip_any(&op, ws(r)))?;
            let span = field.span.join(value.span);
            let cmp = Spanned::new(Expr::Compare { field, op, value }, span);
            return Ok((rest, Spanned::new(Expr::Not(Box::new(cmp)), span)));
        }
        match self.cmp_op(j) {
            Some((r, op)) => {
                let v = skip_any(&op, ws(r));
                let (rest, value) =
                    nom::combinator::cut(nom::error::context("value", |i| self.value(i, 0)))
                        .parse(v)?;
                let span = field.span.join(value.span);
                Ok((rest, Spanned::new(Expr::Compare { field, op, value }, span)))
            }
            None => {
                if let Some(r) = j.strip_prefix('=') {
                    if !r.starts_with('=') {
                        return fail(
                            PError::custom(j, 1, "`=` is not a comparison operator")
                                .label("use `==`")
                                .help(format!("compare with `==`: {name} == ...")),
                        );
                    }
                }
                let span = field.span;
                Ok((after_field, Spanned::new(Expr::Flag(field), span)))
            }
        }
    }

    fn cmp_op<'a>(&self, i: &'a str) -> Option<(&'a str, Spanned<CmpOp>)> {
        const SYMBOLS: [(&str, CmpOp); 6] = [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ];
        for (s, op) in SYMBOLS {
            if let Some(r) = i.strip_prefix(s) {
                return Some((r, Spanned::new(op, self.span(i, r))));
            }
        }
        const WORDS: [(&str, CmpOp); 6] = [
            ("under", CmpOp::Under),
            ("startswith", CmpOp::StartsWith),
            ("endswith", CmpOp::EndsWith),
            ("contains", CmpOp::Contains),
            ("in", CmpOp::In),
            ("matches", CmpOp::Matches),
        ];
        let (r, w) = word(i)?;
        WORDS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(w))
            .map(|&(_, op)| (r, Spanned::new(op, self.span(i, r))))
    }
}

/// After a word operator other than `in`, an optional `any` before a list
/// (`name endswith any [".tmp", ".bak"]`): the list means "any of" with or
/// without it.
fn skip_any<'a>(op: &Spanned<CmpOp>, i: &'a str) -> &'a str {
    if op.node == CmpOp::In || !op.node.keyword().starts_with(char::is_alphabetic) {
        return i;
    }
    match kw("any", i) {
        Some(r) if matches!(ws(r).chars().next(), Some('[' | '$')) => ws(r),
        _ => i,
    }
}

fn join_expected(e: &[&'static str]) -> String {
    let mut v: Vec<&str> = Vec::new();
    for x in e {
        if !v.contains(x) {
            v.push(x);
        }
    }
    match v.len() {
        0 => "something else".to_string(),
        1 => v[0].to_string(),
        n => format!("{} or {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_on_lines_and_open_brackets() {
        let src = "let a = [1,\n# c\n  2\n]\nlog write\n\nlog read where a == 1 and\n b == 2\nlog x\nlog y where (\nz == 1)\n";
        let l = logical_lines(src);
        let texts: Vec<&str> = l.iter().map(|&(s, e)| &src[s..e]).collect();
        assert_eq!(
            texts,
            [
                "let a = [1,\n# c\n  2\n]",
                "log write",
                "log read where a == 1 and\n b == 2",
                "log x",
                "log y where (",
                "z == 1)",
            ]
        );
    }

    #[test]
    fn unclosed_bracket_stops_at_next_statement() {
        let src = "let a = [1,\nlog write\n";
        let texts: Vec<&str> = logical_lines(src)
            .iter()
            .map(|&(s, e)| &src[s..e])
            .collect();
        assert_eq!(texts, ["let a = [1,", "log write"]);
    }

    #[test]
    fn comments_outside_quotes_only() {
        let c = collect_comments("log write under \"a#b\" # real\n# whole line\n");
        let t: Vec<&str> = c.iter().map(|c| c.node.as_str()).collect();
        assert_eq!(t, ["# real", "# whole line"]);
        assert_eq!(c[0].span, Span::new(22, 28));
    }
}

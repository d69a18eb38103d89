//! Diagnostics of the front end: syntax errors, semantic errors, warnings.
//!
//! Each stage ([`crate::parse`], [`crate::check`]) reports problems as
//! [`Diagnostic`]s: a severity, a message, the primary span with a label,
//! an optional help line and optional related spans (the earlier definition,
//! the shadowing rule). A [`Diagnostic`] knows byte offsets only; a
//! [`Diagnostics`] report joins them with the file name and source text so
//! that miette renders `file:line:col`, the source line and a caret, and
//! several problems appear in one report.
//!
//! This module never decides *what* is wrong; it only carries and renders.
//!
//! # Codes
//!
//! | code | severity | meaning |
//! |---|---|---|
//! | `pol::syntax` | error | the text does not follow the grammar (see [`crate::parse`]) |
//! | `pol::undefined` | error | `$name` used before (or without) its `let` |
//! | `pol::redefined` | error | a second `let` of the same name |
//! | `pol::unknown-field` | error | a condition names a field that does not exist |
//! | `pol::type` | error | a comparison that makes no sense for the field (`pid == "twelve"`) |
//! | `pol::unreachable` | warning | an earlier unconditional rule covers this rule's operations and path |
//! | `pol::no-effect` | warning | an `allow` that no later rule could have overridden |
//! | `pol::unused` | warning | a `let` nothing refers to |
//! | `pol::relative-path` | warning | `under` a path that is not absolute for the target |
//! | `pol::never-matches` | warning | `ext` without its dot, a separator in `name`/`ext`/`process` |
//! | `pol::glob` | warning | `**` inside a component, a relative pattern for a full-path field |
//! | `pol::always-false` | warning | `in []` |
//! | `pol::duplicate-op` | warning | an operation listed twice |
//! | `pol::target` | error | a `target` statement that is not first, or disagrees with `--target` |
//! | `pol::too-large` | error | over an input limit: source size, rule count, `let` expansion (docs/policy-language.md, "Limits") |
//! | `pol::confusable` | warning | invisible, bidirectional-control or mixed-script look-alike characters in a value |

use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};

use crate::ast::Span;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The policy is rejected.
    Error,
    /// The policy compiles, but probably does not do what the author meant.
    Warning,
}

/// One problem found in a policy, located by byte offsets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable machine-readable class (`pol::syntax`, `pol::unknown-field`, ...).
    pub code: &'static str,
    /// One sentence: what is wrong.
    pub message: String,
    /// Where it is wrong.
    pub span: Span,
    /// The label drawn under the caret.
    pub label: String,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
    /// Other places that explain this one (an earlier definition, the
    /// shadowing rule), each with its label.
    pub related: Vec<(Span, String)>,
}

/// Longest message, label or help text, in bytes: longer ones (which can
/// only come from echoing a long source value) keep their start and end
/// around a `…`.
pub const MAX_MESSAGE: usize = 400;

/// Most bytes of one source line a rendered diagnostic shows: a longer line
/// is shown as a window around the caret.
pub const MAX_SHOWN_LINE: usize = 160;

/// Longest underlined span, in bytes; a longer one is underlined from its
/// start only.
pub const MAX_SHOWN_SPAN: usize = 80;

/// `s` cut to at most [`MAX_MESSAGE`] bytes (plus the `…`).
pub fn bounded(s: String) -> String {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let head = floor_boundary(&s, MAX_MESSAGE * 2 / 3);
    let tail = ceil_boundary(&s, s.len() - MAX_MESSAGE / 3);
    format!("{}…{}", &s[..head], &s[tail..])
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

impl Diagnostic {
    /// An error at `span` with `message`; the label repeats nothing.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: bounded(message.into()),
            span,
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    /// A warning at `span` with `message`.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the label drawn under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = bounded(label.into());
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(bounded(help.into()));
        self
    }

    /// Sets the help line if `help` is `Some`.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if let Some(h) = help {
            self.help = Some(bounded(h));
        }
        self
    }

    /// Adds a related span with its label.
    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, bounded(label.into())));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = |s: &String| (!s.is_empty()).then(|| s.clone());
        let primary = LabeledSpan::new_primary_with_span(label(&self.label), self.span);
        let related = self
            .related
            .iter()
            .map(move |(span, l)| LabeledSpan::new_with_span(label(l), *span));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Maps a byte offset of `source` to its 1-based line and column.
///
/// Offsets past the end (or inside a UTF-8 sequence) are clamped to the
/// nearest preceding character boundary, so this never panics.
pub fn location(source: &str, offset: usize) -> Location {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = source[line_start..offset].chars().count() + 1;
    Location { line, column }
}

/// Every diagnostic of one source file, ready to render.
///
/// This is the error type the compiler's stages hand to the CLI: it is an
/// `std::error::Error` and a `miette::Diagnostic` whose `related` items are
/// the individual problems, so one `miette::Report` shows them all.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.summary())]
pub struct Diagnostics {
    src: Source,
    pub items: Vec<Diagnostic>,
}

/// The source text as miette reads it: each read is a binary search over
/// the line starts (not a scan from the top of the file), and a line longer
/// than [`MAX_SHOWN_LINE`] is read as a window around the span, so no
/// diagnostic echoes more than a bounded slice of the source.
#[derive(Debug)]
struct Source {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl Source {
    fn new(name: &str, text: &str) -> Self {
        Source {
            name: name.to_string(),
            text: text.to_string(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        }
    }

    /// 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// Start of the line after `line` (or the end of the text).
    fn next_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// End of `line`'s text, without its line break.
    fn line_end(&self, line: usize) -> usize {
        let end = self.next_start(line);
        let body = &self.text[self.line_starts[line]..end];
        let body = body.strip_suffix('\n').unwrap_or(body);
        let body = body.strip_suffix('\r').unwrap_or(body);
        self.line_starts[line] + body.len()
    }

    fn location(&self, offset: usize) -> Location {
        let offset = floor_boundary(&self.text, offset);
        let line = self.line_of(offset);
        let start = self.line_starts[line];
        Location {
            line: line + 1,
            column: self.text[start..offset].chars().count() + 1,
        }
    }
}

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let len = self.text.len();
        let start = span.offset();
        if start > len {
            return Err(MietteError::OutOfBounds);
        }
        let start = floor_boundary(&self.text, start);
        let end = ceil_boundary(&self.text, start.saturating_add(span.len()));
        let l0 = self.line_of(start);
        let l1 = self.line_of(end.saturating_sub(1).max(start));
        let first = l0.saturating_sub(before);
        let last = (l1 + after).min(self.line_starts.len() - 1);
        let long = (first..=last).any(|l| self.line_end(l) - self.line_starts[l] > MAX_SHOWN_LINE);
        let (from, to, line, count) = if long {
            // A window of the span's first line around its start.
            let ls = self.line_starts[l0];
            let le = self.line_end(l0);
            let ws = floor_boundary(&self.text, start.saturating_sub(MAX_SHOWN_LINE / 2).max(ls));
            let we = floor_boundary(&self.text, (ws + MAX_SHOWN_LINE).min(le));
            (ws.min(start), we.max(start), l0, 0)
        } else {
            (
                self.line_starts[first],
                self.next_start(last),
                first,
                last - first,
            )
        };
        // Without context lines miette's own reader starts at the span and
        // reports the span's column; so does this one.
        let (from, column) = if before == 0 {
            (start, start - self.line_starts[l0])
        } else {
            (from, from - self.line_starts[line])
        };
        let to = to.max(from);
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[from..to],
            (from, to - from).into(),
            line,
            column,
            count,
        )))
    }
}

impl Diagnostics {
    /// Joins `items` with the file they refer to.
    pub fn new(file_name: &str, source: &str, items: Vec<Diagnostic>) -> Self {
        Diagnostics {
            src: Source::new(file_name, source),
            items,
        }
    }

    pub fn file_name(&self) -> &str {
        &self.src.name
    }

    pub fn source_text(&self) -> &str {
        &self.src.text
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// The 1-based line and column where `d` starts.
    pub fn location(&self, d: &Diagnostic) -> Location {
        self.src.location(d.span.start)
    }

    /// One line per diagnostic: `file:line:col: error[code]: message`.
    pub fn render_short(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            let loc = self.location(d);
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!(
                "{}:{}:{}: {sev}[{}]: {}\n",
                self.src.name, loc.line, loc.column, d.code, d.message
            ));
        }
        out
    }

    /// Renders every diagnostic with miette's graphical handler, without
    /// colour or Unicode box drawing, so tests can compare the text. Each
    /// item shows `[file:line:col]`, the source line, a caret under the span
    /// and the help line.
    pub fn render(&self) -> String {
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::none())
            .with_width(200)
            .with_links(false);
        let mut out = String::new();
        for d in &self.items {
            let one = Single {
                inner: d,
                source: &self.src,
            };
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, &one);
        }
        out
    }

    fn summary(&self) -> String {
        let (e, w) = (self.error_count(), self.warning_count());
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        match (e, w) {
            (0, w) => format!("{}: {}", self.file_name(), plural(w, "warning")),
            (e, 0) => format!("{}: {}", self.file_name(), plural(e, "error")),
            (e, w) => format!(
                "{}: {}, {}",
                self.file_name(),
                plural(e, "error"),
                plural(w, "warning")
            ),
        }
    }
}

impl miette::Diagnostic for Diagnostics {
    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.has_errors() {
            miette::Severity::Error
        } else {
            miette::Severity::Warning
        })
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.src)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(
            self.items.iter().map(|d| d as &dyn miette::Diagnostic),
        ))
    }
}

/// One diagnostic paired with its source, for rendering on its own.
#[derive(Debug)]
struct Single<'a> {
    inner: &'a Diagnostic,
    source: &'a Source,
}

impl fmt::Display for Single<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner, f)
    }
}

impl std::error::Error for Single<'_> {}

impl miette::Diagnostic for Single<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        miette::Diagnostic::severity(self.inner)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        miette::Diagnostic::help(self.inner)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        // Long spans are underlined from their start only.
        let text = &self.source.text;
        let labels = self.inner.labels()?.map(move |l| {
            let start = floor_boundary(text, l.offset());
            let len = l.len().min(MAX_SHOWN_SPAN);
            let end = floor_boundary(text, start + len).max(start);
            let (label, span) = (l.label().map(str::to_string), (start, end - start));
            if l.primary() {
                LabeledSpan::new_primary_with_span(label, span)
            } else {
                LabeledSpan::new_with_span(label, span)
            }
        });
        Some(Box::new(labels))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }
}

/// The edit distance under which a misspelt word gets a "did you mean".
///
/// Two edits catch a dropped, doubled or swapped letter (`startwith`,
/// `wirte`) without suggesting unrelated words for short inputs.
pub const SUGGESTION_DISTANCE: usize = 2;

/// The candidate closest to `word` (ASCII case-insensitive), if it is close
/// enough to be a plausible typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    if word.is_empty() {
        return None;
    }
    let word = word.to_ascii_lowercase();
    let n = word.chars().count();
    candidates
        .into_iter()
        // A length difference alone is that many edits: skipping those keeps
        // a long word from costing `len × candidates` of edit distance.
        .filter(|c| c.chars().count().abs_diff(n) <= SUGGESTION_DISTANCE)
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|&(d, c)| d > 0 && d <= SUGGESTION_DISTANCE && d < c.len().max(2))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters() {
        let src = "ab\ncdé f\n";
        assert_eq!(location(src, 0), Location { line: 1, column: 1 });
        assert_eq!(location(src, 3), Location { line: 2, column: 1 });
        // 'f' is at byte 8 (é is two bytes) but column 5.
        assert_eq!(location(src, 8), Location { line: 2, column: 5 });
        // inside the é and past the end: clamped, no panic
        assert_eq!(location(src, 6), Location { line: 2, column: 3 });
        assert_eq!(location(src, 999).line, 3);
    }

    #[test]
    fn suggests_close_keywords_only() {
        let ops = ["startswith", "endswith", "contains"];
        assert_eq!(suggest("startwith", ops), Some("startswith"));
        assert_eq!(suggest("STARTSWIHT", ops), Some("startswith"));
        assert_eq!(suggest("banana", ops), None);
        assert_eq!(suggest("contains", ops), None);
    }
}

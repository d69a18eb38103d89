//! Shows untrusted text (paths, images, users, tags from the log) so that
//! what is on the screen is what is in the record: control characters and
//! characters that reorder or hide text are written as escapes instead of
//! being sent to the terminal (where `\n` would end the line, `\x1b` start a
//! terminal command, U+202E reverse the rest of the line) or dropped (which
//! would show `new\nline` as `newline`, a different name).
//!
//! * `\n`, `\t`, `\r`, and `\xHH` for the other C0 controls and DEL;
//! * `<U+XXXX>` for C1 controls, bidirectional overrides and isolates,
//!   zero-width and other invisible format characters, line/paragraph
//!   separators, and the byte-order mark.
//!
//! Escapes are drawn in [`ESCAPE_STYLE`], so a file literally named with a
//! backslash and an `n` is told apart from one holding a newline.

use std::borrow::Cow;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

/// How an escape sequence is drawn: it is not part of the name.
pub const ESCAPE_STYLE: Style = Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD);

/// The escape for `c`, if it must not be shown as is.
fn escape_of(c: char) -> Option<String> {
    let u = c as u32;
    Some(match c {
        '\n' => "\\n".to_owned(),
        '\t' => "\\t".to_owned(),
        '\r' => "\\r".to_owned(),
        _ if u < 0x20 || u == 0x7f => format!("\\x{u:02x}"),
        _ if (0x80..0xa0).contains(&u) => format!("<U+{u:04X}>"),
        // Soft hyphen, zero-width and directional marks, bidi embeddings,
        // overrides and isolates, invisible operators, line/paragraph
        // separators, BOM, interlinear annotations.
        '\u{ad}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{061c}'
        | '\u{180e}' => format!("<U+{u:04X}>"),
        _ => return None,
    })
}

/// `s` with every character that must not reach the terminal escaped.
pub fn escaped(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| escape_of(c).is_some()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match escape_of(c) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` as spans: plain text in `base`, escapes in [`ESCAPE_STYLE`].
pub fn spans(s: &str, base: Style) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut plain = String::new();
    for c in s.chars() {
        match escape_of(c) {
            Some(e) => {
                if !plain.is_empty() {
                    out.push(Span::styled(std::mem::take(&mut plain), base));
                }
                out.push(Span::styled(e, base.patch(ESCAPE_STYLE)));
            }
            None => plain.push(c),
        }
    }
    if !plain.is_empty() || out.is_empty() {
        out.push(Span::styled(plain, base));
    }
    out
}

/// `s` as one line of spans (for a table cell).
pub fn line(s: &str) -> Line<'static> {
    Line::from(spans(s, Style::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_characters_are_escaped() {
        assert_eq!(escaped("/tmp/new\nline"), "/tmp/new\\nline");
        assert_eq!(escaped("tab\there"), "tab\\there");
        assert_eq!(escaped("a\rb\x1b[31mc\x7f"), "a\\rb\\x1b[31mc\\x7f");
        assert_eq!(escaped("\u{0085}"), "<U+0085>");
        assert_eq!(escaped("invoice\u{202e}fdp.exe"), "invoice<U+202E>fdp.exe");
        assert_eq!(escaped("zero\u{200b}width"), "zero<U+200B>width");
        assert_eq!(escaped("bom\u{feff}"), "bom<U+FEFF>");
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        for s in [
            "C:\\Data\\a b.txt",
            "/srv/Zürich/日本語.txt",
            "",
            "tab-free",
        ] {
            assert!(matches!(escaped(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn spans_mark_the_escapes() {
        let sp = spans("a\nb", Style::new());
        assert_eq!(sp.len(), 3);
        assert_eq!(sp[1].content, "\\n");
        assert_eq!(sp[1].style, ESCAPE_STYLE);
        assert_eq!(sp[0].content, "a");
        assert_eq!(spans("", Style::new()).len(), 1);
    }
}

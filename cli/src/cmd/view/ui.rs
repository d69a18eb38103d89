//! Drawing: turns an [`App`] into one frame.
//!
//! Layout, top to bottom: filter bar, record table, events-over-time
//! sparkline, detail pane for the selected record, status line; the help
//! screen is an overlay. Only the rows on screen are turned into widgets,
//! so a frame costs the same for ten records or ten million.
//!
//! This module never changes what the viewer shows (filter, selection)
//! beyond telling the model how many rows fit ([`App::set_page`]).

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, Clear, Paragraph, Row as TableRow, Sparkline, Table, TableState,
};
use ratatui::Frame;

use fltpolicy_core::event::Action;
use fltpolicy_core::record::flags;

use super::app::{App, ChainState, DropRow, EndRow, EventRow, Mode, Row, RowBody};
use super::escape::{self, escaped};
use super::timefmt::{fmt_clock, fmt_duration, fmt_rfc3339};

/// Style of drop rows: they must stand out from every event row.
pub const DROP_STYLE: Style = Style::new()
    .fg(Color::Black)
    .bg(Color::Yellow)
    .add_modifier(Modifier::BOLD);
/// Style of the selected row.
const SELECTED_STYLE: Style = Style::new().add_modifier(Modifier::REVERSED);
const DENY_STYLE: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const HEADER_STYLE: Style = Style::new()
    .add_modifier(Modifier::BOLD)
    .add_modifier(Modifier::UNDERLINED);
/// Style of end-of-file rows: present but quiet.
const END_STYLE: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::ITALIC);
const STATUS_STYLE: Style = Style::new().fg(Color::Black).bg(Color::Cyan);
const WARN_STYLE: Style = Style::new()
    .fg(Color::White)
    .bg(Color::Red)
    .add_modifier(Modifier::BOLD);

/// Height of the sparkline block (two lines of bars inside a border).
const SPARK_HEIGHT: u16 = 4;
/// Height of the detail pane including its border: an event's six lines
/// and one spare for a wrapped path.
const DETAIL_HEIGHT: u16 = 9;
/// The detail pane grows up to this height for long (wrapped) paths, as
/// long as the table keeps at least a third of the screen.
const MAX_DETAIL_HEIGHT: u16 = 18;
/// Below this many table rows the sparkline and detail pane give way.
const MIN_TABLE_ROWS: u16 = 5;

/// Table columns: title and width. The path takes what is left and is the
/// last column to shrink on a narrow screen.
const COLUMNS: [(&str, Constraint); 7] = [
    ("Time", Constraint::Length(12)),
    ("Process", Constraint::Length(16)),
    ("PID", Constraint::Length(7)),
    ("Operation", Constraint::Length(9)),
    ("Path", Constraint::Min(16)),
    ("Action", Constraint::Length(6)),
    ("Rule", Constraint::Length(14)),
];

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &mut App) {
    let area = frame.area();
    let (status_text, warning) = status_text(app);
    let status_h = if warning.is_some() { 2 } else { 1 };
    let filter_h = if app.filter_error().is_some() {
        5
    } else if app.jump_error().is_some() {
        4
    } else {
        3
    };
    // Give up the optional panes before squeezing the table.
    let fixed = filter_h + status_h + 3 + MIN_TABLE_ROWS;
    let show_spark = area.height >= fixed + SPARK_HEIGHT;
    let show_detail = app.show_detail() && area.height >= fixed + SPARK_HEIGHT + DETAIL_HEIGHT;
    let detail = detail_text(app, area.width.saturating_sub(2) as usize);
    let detail_h = (detail.len() as u16 + 2)
        .clamp(DETAIL_HEIGHT, MAX_DETAIL_HEIGHT)
        .min(DETAIL_HEIGHT.max(area.height / 3));
    let [filter_a, table_a, spark_a, detail_a, status_a] = Layout::vertical([
        Constraint::Length(filter_h),
        Constraint::Min(MIN_TABLE_ROWS + 3),
        Constraint::Length(if show_spark { SPARK_HEIGHT } else { 0 }),
        Constraint::Length(if show_detail { detail_h } else { 0 }),
        Constraint::Length(status_h),
    ])
    .areas(area);

    draw_filter(frame, app, filter_a);
    draw_table(frame, app, table_a);
    if show_spark {
        draw_sparkline(frame, app, spark_a);
    }
    if show_detail {
        draw_detail(frame, detail, detail_a);
    }
    draw_status(frame, status_text, warning, status_a);
    if app.mode() == Mode::Help {
        draw_help(frame, area);
    }
}

fn draw_filter(frame: &mut Frame<'_>, app: &App, area: Rect) {
    if app.mode() == Mode::Jump {
        let block = Block::bordered()
            .title(" Jump to time: HH:MM[:SS] (UTC) or RFC 3339, Enter go, Esc cancel ")
            .border_style(Style::new().fg(Color::Cyan));
        let inner = block.inner(area);
        let mut lines = vec![Line::from(format!("t {}", escaped(app.jump_text())))];
        if let Some(e) = app.jump_error() {
            lines.push(Line::from(format!("error: {e}")).red().bold());
        }
        let x = inner
            .x
            .saturating_add(2 + app.jump_text().chars().count() as u16);
        frame.render_widget(Paragraph::new(lines).block(block), area);
        frame.set_cursor_position(Position::new(
            x.min(inner.right().saturating_sub(1)),
            inner.y,
        ));
        return;
    }
    if app.mode() == Mode::Search {
        let block = Block::bordered()
            .title(" Search: type to find, Enter keep, Esc back, then n / N ")
            .border_style(Style::new().fg(Color::Cyan));
        let inner = block.inner(area);
        let text = format!("/{}", escaped(app.search_text()));
        let x = inner.x.saturating_add(text.chars().count() as u16);
        frame.render_widget(Paragraph::new(text).block(block), area);
        frame.set_cursor_position(Position::new(
            x.min(inner.right().saturating_sub(1)),
            inner.y,
        ));
        return;
    }
    let editing = app.mode() == Mode::FilterInput;
    let title = if editing {
        " Filter: Enter apply, Esc cancel, Ctrl-U clear ".to_owned()
    } else if app.search_text().is_empty() {
        " Filter (f to edit, / search) ".to_owned()
    } else {
        format!(
            " Filter (f to edit)  search: {} (n/N) ",
            escaped(app.search_text())
        )
    };
    let mut block = Block::bordered().title(title);
    if editing {
        block = block.border_style(Style::new().fg(Color::Yellow));
    }
    let mut lines = Vec::new();
    let text = if editing {
        app.filter_input()
    } else {
        app.filter_applied()
    };
    if text.is_empty() && !editing {
        lines.push(Line::from(
            r#"(none) e.g. process == "cat" and path under /srv"#.dark_gray(),
        ));
    } else {
        lines.push(Line::from(text.to_owned()));
    }
    if let Some(err) = app.filter_error() {
        let col = err
            .offset
            .map(|o| text.get(..o).map_or(o, |s| s.chars().count()));
        lines.push(
            Line::from(match col {
                Some(c) => format!("{}^", " ".repeat(c)),
                None => String::new(),
            })
            .red(),
        );
        let mut msg = format!("error: {}", err.message);
        if let Some(help) = &err.help {
            msg.push_str(&format!(" (help: {help})"));
        }
        lines.push(Line::from(msg).red().bold());
    }
    let inner = block.inner(area);
    frame.render_widget(Paragraph::new(lines).block(block), area);
    if editing {
        let x = inner
            .x
            .saturating_add(app.filter_input().chars().count() as u16);
        frame.set_cursor_position(Position::new(
            x.min(inner.right().saturating_sub(1)),
            inner.y,
        ));
    }
}

fn event_cells(e: &EventRow, time_ns: u64) -> (Vec<Cell<'static>>, Style) {
    let rule = match e.rule {
        Some(r) if e.tag.is_empty() => format!("{r}"),
        Some(r) => format!("{r} {}", escaped(&e.tag)),
        None => "-".to_owned(),
    };
    let action = Cell::from(e.action.name()).style(if e.action.action() == Some(Action::Deny) {
        DENY_STYLE
    } else {
        Style::new()
    });
    let op = e.op.map_or("?", |o| o.name());
    (
        vec![
            Cell::from(fmt_clock(time_ns)),
            Cell::from(escape::line(e.process())),
            Cell::from(e.pid.to_string()),
            Cell::from(op),
            Cell::from(escape::line(&e.path)),
            action,
            Cell::from(rule),
        ],
        Style::new(),
    )
}

fn drop_cells(d: &DropRow, time_ns: u64) -> (Vec<Cell<'static>>, Style) {
    (
        vec![
            Cell::from(fmt_clock(time_ns)),
            Cell::from("(dropped)"),
            Cell::from(""),
            Cell::from("DROPPED"),
            Cell::from(d.describe()),
            Cell::from(""),
            Cell::from(""),
        ],
        DROP_STYLE,
    )
}

fn end_cells(e: &EndRow, time_ns: u64) -> (Vec<Cell<'static>>, Style) {
    (
        vec![
            Cell::from(fmt_clock(time_ns)),
            Cell::from(""),
            Cell::from(""),
            Cell::from("END"),
            Cell::from(format!("end of file ({})", e.reason)),
            Cell::from(""),
            Cell::from(""),
        ],
        END_STYLE,
    )
}

fn draw_table(frame: &mut Frame<'_>, app: &mut App, area: Rect) {
    let title = format!(
        " Records {}/{}{} ",
        app.visible_len(),
        app.total(),
        if app.by_time() { " by time" } else { "" }
    );
    let block = Block::bordered().title(title);
    // One line for the header.
    let page = block.inner(area).height.saturating_sub(1) as usize;
    app.set_page(page);
    // Border, then the header line: records start two rows down.
    app.set_table_top(area.y.saturating_add(2));
    let start = app.offset();
    let end = (start + page).min(app.visible_len());
    let rows: Vec<TableRow<'static>> = (start..end)
        .filter_map(|i| app.visible_row(i))
        .map(|row| {
            let (cells, style) = match &row.body {
                RowBody::Event(e) => event_cells(e, row.time_ns),
                RowBody::Dropped(d) => drop_cells(d, row.time_ns),
                RowBody::End(e) => end_cells(e, row.time_ns),
            };
            TableRow::new(cells).style(style)
        })
        .collect();
    let header = TableRow::new(COLUMNS.iter().map(|(t, _)| Cell::from(*t))).style(HEADER_STYLE);
    let table = Table::new(rows, COLUMNS.iter().map(|(_, w)| *w))
        .header(header)
        .block(block)
        .row_highlight_style(SELECTED_STYLE)
        .highlight_symbol("▶")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = TableState::default().with_selected(app.selected().map(|s| s - start));
    frame.render_stateful_widget(table, area, &mut state);
    if app.visible_len() == 0 {
        let inner = Block::bordered().inner(area);
        let msg = if app.total() == 0 {
            if app.follow() {
                "no records yet (following; waiting for the log to grow)"
            } else {
                "the log holds no records"
            }
        } else {
            "no record matches the filter"
        };
        let r = Rect {
            y: inner.y + 1,
            height: 1,
            ..inner
        };
        frame.render_widget(Paragraph::new(msg).dark_gray().centered(), r);
    }
}

fn draw_sparkline(frame: &mut Frame<'_>, app: &mut App, area: Rect) {
    let inner = Block::bordered().inner(area);
    let hist = app.histogram(inner.width as usize);
    let title = match &hist {
        Some(h) => {
            let end = h
                .start_ns
                .saturating_add(h.bucket_ns.saturating_mul(h.counts.len() as u64));
            format!(
                " Events over time {} – {}, {}/column, max {} ",
                fmt_clock(h.start_ns),
                fmt_clock(end),
                fmt_duration(h.bucket_ns),
                h.max()
            )
        }
        None => " Events over time ".to_owned(),
    };
    let data: Vec<u64> = hist.map(|h| h.counts).unwrap_or_default();
    let spark = Sparkline::default()
        .block(Block::bordered().title(title))
        .data(&data)
        .style(Style::new().fg(Color::Green));
    frame.render_widget(spark, area);
}

fn kv(k: &'static str, v: String) -> Vec<Span<'static>> {
    vec![
        Span::from(k).bold(),
        Span::from(" "),
        Span::from(v),
        Span::from("   "),
    ]
}

/// [`kv_text`] in double quotes (a tag may be empty or end in spaces).
fn kv_quoted(k: &'static str, v: &str) -> Vec<Span<'static>> {
    let mut out = vec![Span::from(k).bold(), Span::from(" \"")];
    out.extend(escape::spans(v, Style::new()));
    out.push(Span::from("\"   "));
    out
}

/// Like [`kv`] for text from the log: control and invisible characters
/// are shown as escapes.
fn kv_text(k: &'static str, v: &str) -> Vec<Span<'static>> {
    let mut out = vec![Span::from(k).bold(), Span::from(" ")];
    out.extend(escape::spans(v, Style::new()));
    out.push(Span::from("   "));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines of the detail pane for one record.
pub fn detail_lines(app: &App, row: &Row) -> Vec<Line<'static>> {
    let file = app
        .status
        .files
        .get(row.file)
        .cloned()
        .unwrap_or_else(|| format!("#{}", row.file));
    let head = [
        kv("seq", row.seq.to_string()),
        kv("time", fmt_rfc3339(row.time_ns)),
        kv("at", format!("{} @ {}", escaped(&file), row.offset)),
    ]
    .concat();
    match &row.body {
        RowBody::Event(e) => {
            let mut names: Vec<String> = flags::names(e.flags).map(str::to_owned).collect();
            // Every bit is defined today (`flags::ALL` = 0xff); kept for
            // records of a future writer with a wider meaning.
            #[allow(clippy::bad_bit_mask)]
            if e.flags & !flags::ALL != 0 {
                names.push(format!("{:#04x}", e.flags & !flags::ALL));
            }
            let flags = if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            };
            let status = e.status.map_or("-".to_owned(), |s| {
                if s < 0 {
                    format!("{s}")
                } else {
                    format!("{s:#010x}")
                }
            });
            let mut lines = vec![
                Line::from(head),
                Line::from(
                    [
                        kv("op", e.op.map_or("?".to_owned(), |o| o.name().to_owned())),
                        kv(
                            "action",
                            match e.action.action() {
                                Some(a) => a.name().to_owned(),
                                None => format!("unknown ({})", e.action.0),
                            },
                        ),
                        kv("rule", e.rule.map_or("-".to_owned(), |r| r.to_string())),
                        kv("line", e.line.to_string()),
                        kv_quoted("tag", &e.tag),
                    ]
                    .concat(),
                ),
                Line::from(kv_text("path", &e.path)),
                Line::from(
                    [
                        kv_text("image", &e.image),
                        kv("pid", e.pid.to_string()),
                        kv("ppid", e.ppid.to_string()),
                        kv_text("user", &e.user),
                    ]
                    .concat(),
                ),
                Line::from(
                    [
                        kv("policy", hex(&e.policy_hash)),
                        kv("generation", e.generation.to_string()),
                    ]
                    .concat(),
                ),
                Line::from(
                    [
                        kv("status", status),
                        kv("size", e.size.to_string()),
                        kv("flags", flags),
                    ]
                    .concat(),
                ),
            ];
            // A rename's (or link's) destination, under its source.
            if !e.target_path.is_empty() {
                lines.insert(3, Line::from(kv_text("target", &e.target_path)));
            }
            lines
        }
        RowBody::Dropped(d) => vec![
            Line::from(head),
            Line::from(d.describe()).style(DROP_STYLE),
            Line::from(
                [
                    kv("count", d.count.to_string()),
                    kv("after seq", d.after_seq.to_string()),
                    kv("before seq", d.seq.to_string()),
                    kv("reason", d.reason.to_owned()),
                ]
                .concat(),
            ),
            Line::from(kv("lost since", fmt_rfc3339(d.since_ns))),
        ],
        RowBody::End(e) => vec![
            Line::from(head),
            Line::from(match e.reason {
                "rotated" => {
                    "end of file: rotated, the chain continues in the next file".to_owned()
                }
                "shutdown" => "end of file: the writer shut down cleanly".to_owned(),
                other => format!("end of file: {other}"),
            }),
        ],
    }
}

/// Cuts `line` into lines of at most `width` characters, keeping styles.
/// Paths have no spaces to wrap at, and the whole path must be readable,
/// so the detail pane wraps by character rather than by word.
fn hard_wrap(line: Line<'static>, width: usize) -> Vec<Line<'static>> {
    if width == 0 || line.width() <= width {
        return vec![line];
    }
    let mut out = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in line.spans {
        let mut chunk = String::new();
        for c in span.content.chars() {
            if used == width {
                if !chunk.is_empty() {
                    cur.push(Span::styled(std::mem::take(&mut chunk), span.style));
                }
                out.push(Line::from(std::mem::take(&mut cur)).style(line.style));
                used = 0;
            }
            chunk.push(c);
            used += 1;
        }
        if !chunk.is_empty() {
            cur.push(Span::styled(chunk, span.style));
        }
    }
    if !cur.is_empty() {
        out.push(Line::from(cur).style(line.style));
    }
    out
}

/// The detail pane's lines for the selection, wrapped to `width`.
fn detail_text(app: &App, width: usize) -> Vec<Line<'static>> {
    match app.selected_row() {
        Some(row) => detail_lines(app, &row)
            .into_iter()
            .flat_map(|l| hard_wrap(l, width))
            .collect(),
        None => vec![Line::from("no record selected".dark_gray())],
    }
}

fn draw_detail(frame: &mut Frame<'_>, lines: Vec<Line<'static>>, area: Rect) {
    let block = Block::bordered().title(" Detail (d to hide) ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Most file names listed in the status line; the rest are counted.
const STATUS_FILES: usize = 3;

/// File names (without directories) for the status line: the first, and
/// the last ones, where following happens.
fn file_list(files: &[String]) -> String {
    let name = |f: &String| {
        std::path::Path::new(f)
            .file_name()
            .map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned())
    };
    if files.len() <= STATUS_FILES {
        return files.iter().map(name).collect::<Vec<_>>().join(",");
    }
    let tail: Vec<String> = files[files.len() - (STATUS_FILES - 1)..]
        .iter()
        .map(name)
        .collect();
    format!(
        "{},(+{}),{}",
        name(&files[0]),
        files.len() - STATUS_FILES,
        tail.join(",")
    )
}

/// The status line's text pieces, most important first.
pub fn status_text(app: &App) -> (String, Option<String>) {
    let s = &app.status;
    let mut parts = vec![format!(
        "{} records, {} shown",
        app.total(),
        app.visible_len()
    )];
    if !app.filter_applied().is_empty() {
        parts.push("filtered".to_owned());
    }
    parts.push(format!(
        "drops {} ({} records)",
        app.drop_rows(),
        app.dropped()
    ));
    parts.push(format!(
        "follow {}",
        if app.follow() { "on" } else { "off" }
    ));
    parts.push(app.target().name().to_owned());
    parts.push(match &s.chain {
        ChainState::Unknown => "chain ?".to_owned(),
        ChainState::Intact => "chain ok".to_owned(),
        ChainState::Unchecked(_) => "chain unchecked".to_owned(),
        ChainState::Broken { seq, offset, .. } => match seq {
            Some(q) => format!("CHAIN BROKEN at seq {q}"),
            None => format!("CHAIN BROKEN at offset {offset}"),
        },
    });
    if let Some(h) = &s.host {
        parts.push(format!("host {h}"));
    }
    parts.push(file_list(&s.files));
    parts.push("? help".to_owned());
    let mut warn = Vec::new();
    if let Some((f, off)) = s.torn_tail {
        let name = s.files.get(f).map_or("?", String::as_str);
        warn.push(format!("torn tail in {name} at {off}"));
    }
    if let ChainState::Broken { reason, .. } = &s.chain {
        warn.push(reason.clone());
    }
    if let Some(e) = &s.error {
        warn.push(e.clone());
    }
    // Host and file names come from the log and the file system.
    (
        escaped(&parts.join(" | ")).into_owned(),
        (!warn.is_empty()).then(|| escaped(&warn.join("; ")).into_owned()),
    )
}

/// The status line, with a warning line above it when something is wrong
/// (torn tail, broken chain, read error).
fn draw_status(frame: &mut Frame<'_>, text: String, warning: Option<String>, area: Rect) {
    let mut lines = Vec::new();
    if let Some(w) = warning {
        lines.push(Line::from(format!(" ⚠ {w}")).style(WARN_STYLE));
    }
    lines.push(Line::from(format!(" {text}")).style(STATUS_STYLE));
    frame.render_widget(Paragraph::new(lines), area);
}

/// The help screen's lines: key and what it does.
pub const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move the selection"),
    ("PgUp PgDn", "page up / down"),
    ("Home End  g G", "first / last record"),
    ("f", "edit the filter (examples below)"),
    ("Enter", "in the filter bar: apply; empty clears it"),
    ("Esc", "in the filter bar: cancel"),
    ("/", "search as you type; Enter keeps, Esc goes back"),
    ("n  N", "next/previous match; no search: next drop"),
    ("t", "jump to a time (HH:MM[:SS] UTC, or RFC 3339)"),
    ("o", "order by file / by time of the operation"),
    ("mouse", "wheel scrolls, click selects"),
    ("F", "follow mode on/off (watch the log grow)"),
    ("d", "show/hide the detail pane"),
    ("?", "this help (any key closes it)"),
    ("q  Ctrl-C", "quit"),
];

/// Filter examples shown under the keys.
pub const HELP_EXAMPLES: &[&str] = &[
    r#"process == "cat" and path under /srv"#,
    r#"path under /srv and not user in ["0", "33"]"#,
    r#"ext == ".docx" or name matches "*.key""#,
    r#"pid == 4242 or image startswith /opt"#,
    r#"op in [write, delete] and action == deny and time >= "10:32""#,
    r#"rule == 3 and tag == "NO-ETC" and severity >= low"#,
];

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let w = 64.min(area.width);
    // The keys, a blank line, the examples title and the examples, in a border.
    let h = (HELP.len() + 2 + HELP_EXAMPLES.len() + 2) as u16;
    let h = h.min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line<'static>> = HELP
        .iter()
        .map(|(k, v)| Line::from(vec![Span::from(format!("{k:<16}")).bold(), Span::from(*v)]))
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from("Filter examples:").bold());
    lines.extend(HELP_EXAMPLES.iter().map(|e| Line::from(format!("  {e}"))));
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Help: fltpolicy log view ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::super::app::tests::{drop_row, ev, test_parse};
    use super::*;
    use fltpolicy_core::event::Op;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use ratatui::Terminal;

    fn render(app: &mut App, w: u16, h: u16) -> Buffer {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        t.backend().buffer().clone()
    }

    fn lines(b: &Buffer) -> Vec<String> {
        (0..b.area.height)
            .map(|y| {
                (0..b.area.width)
                    .map(|x| b[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect()
    }

    fn screen(b: &Buffer) -> String {
        lines(b).join("\n")
    }

    /// Column (in cells) of `needle` in line `y`.
    fn col(b: &Buffer, y: u16, needle: &str) -> u16 {
        let l = &lines(b)[y as usize];
        let byte = l
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {l}"));
        l[..byte].chars().count() as u16
    }

    fn row_of(b: &Buffer, needle: &str) -> Option<u16> {
        lines(b)
            .iter()
            .position(|l| l.contains(needle))
            .map(|y| y as u16)
    }

    fn sample_app() -> App {
        let mut a = App::new(test_parse, None, false);
        a.status.files = vec!["audit.log".into()];
        a.append(vec![
            ev(1, 10, "/usr/bin/cat", Op::Open, "/srv/a"),
            ev(2, 11, "/usr/bin/vim", Op::Write, "/srv/b"),
            drop_row(3, 12, 5),
            ev(9, 13, "/usr/bin/cat", Op::Read, "/etc/passwd"),
        ]);
        a
    }

    #[test]
    fn table_shows_columns_rows_and_status() {
        let mut a = sample_app();
        let b = render(&mut a, 140, 40);
        let s = screen(&b);
        for col in [
            "Time",
            "Process",
            "PID",
            "Operation",
            "Path",
            "Action",
            "Rule",
        ] {
            assert!(s.contains(col), "column {col}\n{s}");
        }
        let y = row_of(&b, "/srv/b").unwrap();
        let l = &lines(&b)[y as usize];
        assert!(
            l.contains("00:00:11.000")
                && l.contains("vim")
                && l.contains("1002")
                && l.contains("write"),
            "{l}"
        );
        assert!(l.contains("log") && l.contains("1 T"), "{l}");
        assert!(s.contains("Records 4/4"), "{s}");
        assert!(s.contains("4 records, 4 shown"), "{s}");
        assert!(
            s.contains("drops 1 (5 records)")
                && s.contains("follow off")
                && s.contains("audit.log")
        );
    }

    #[test]
    fn drop_rows_are_highlighted() {
        let mut a = sample_app();
        let b = render(&mut a, 140, 40);
        let y = row_of(&b, "5 records dropped between seq 2 and 3, queue_full").unwrap();
        let x = col(&b, y, "DROPPED");
        assert_eq!(b[(x, y)].bg, Color::Yellow);
        assert!(b[(x, y)].modifier.contains(Modifier::BOLD));
        let ey = row_of(&b, "/srv/b").unwrap();
        let ex = col(&b, ey, "/srv/b");
        assert_ne!(b[(ex, ey)].bg, Color::Yellow, "event rows are not");
    }

    #[test]
    fn selection_and_detail_pane() {
        let mut a = sample_app();
        a.down(1);
        let b = render(&mut a, 140, 40);
        let y = row_of(&b, "▶").unwrap();
        assert!(lines(&b)[y as usize].contains("/srv/b"));
        let x = col(&b, y, "/srv/b");
        assert!(b[(x, y)].modifier.contains(Modifier::REVERSED));
        let s = screen(&b);
        assert!(s.contains("Detail"));
        assert!(s.contains("path /srv/b"), "{s}");
        assert!(s.contains("time 1970-01-01T00:00:11.000000000Z"), "{s}");
        assert!(
            s.contains("image /usr/bin/vim") && s.contains("pid 1002") && s.contains("ppid 1"),
            "{s}"
        );
        assert!(
            s.contains("policy abababababababababababababababab") && s.contains("generation 1")
        );
        assert!(s.contains("rule 1") && s.contains("line 3") && s.contains(r#"tag "T""#));
        assert!(s.contains("at audit.log @ 200"), "{s}");
        // The drop row's detail.
        a.down(1);
        let s = screen(&render(&mut a, 140, 40));
        assert!(
            s.contains("count 5") && s.contains("after seq 2") && s.contains("reason queue_full"),
            "{s}"
        );
        // Hidden with d.
        a.toggle_detail();
        assert!(!screen(&render(&mut a, 140, 40)).contains("Detail"));
    }

    #[test]
    fn filter_bar_shows_expression_and_error_with_caret() {
        let mut a = sample_app();
        a.apply_filter(r#"process == "cat""#).unwrap();
        let s = screen(&render(&mut a, 140, 40));
        assert!(s.contains(r#"process == "cat""#));
        assert!(s.contains("Records 3/4"), "{s}");
        assert!(!s.contains("/srv/b"));
        a.open_filter();
        a.filter_clear();
        for c in "path under /srv and zz".chars() {
            a.filter_push(c);
        }
        a.filter_submit();
        let b = render(&mut a, 140, 40);
        let s = screen(&b);
        assert!(s.contains("Enter apply"), "{s}");
        let ey = row_of(&b, "error: unexpected `zz`").expect(&s);
        // The caret line sits under the expression, at the error's column.
        let caret = col(&b, ey - 1, "^");
        assert_eq!(col(&b, ey - 2, "zz"), caret, "{s}");
        assert_eq!(b[(caret, ey - 1)].fg, Color::Red);
    }

    #[test]
    fn help_overlay() {
        let mut a = sample_app();
        a.toggle_help();
        let s = screen(&render(&mut a, 140, 40));
        assert!(s.contains("Help: fltpolicy log view"));
        for (k, v) in HELP {
            assert!(s.contains(k) && s.contains(v), "{k} {v}\n{s}");
        }
        assert!(s.contains(HELP_EXAMPLES[0]));
    }

    #[test]
    fn sparkline_over_filtered_events() {
        let mut a = App::new(test_parse, None, false);
        // A burst at t=100 s and a trickle later.
        let mut rows: Vec<Row> = (0..50)
            .map(|i| ev(i, 100, "/bin/x", Op::Read, "/a"))
            .collect();
        rows.extend((50..60).map(|i| ev(i, 100 + (i - 49) * 10, "/bin/y", Op::Read, "/b")));
        a.append(rows);
        let b = render(&mut a, 100, 40);
        let s = screen(&b);
        let y = row_of(&b, "Events over time").unwrap();
        let title = &lines(&b)[y as usize];
        assert!(
            title.contains("00:01:40.000") && title.contains("max 50"),
            "{title}"
        );
        // The bar line: full block at the start, low bars after.
        let bars = &lines(&b)[y as usize + 1];
        assert!(bars.starts_with("│█"), "{bars}");
        assert!(s.contains("Events over time"));
        a.apply_filter(r#"process == "y""#).unwrap();
        let b = render(&mut a, 100, 40);
        let y = row_of(&b, "Events over time").unwrap();
        assert!(
            lines(&b)[y as usize].contains("max 1"),
            "{}",
            lines(&b)[y as usize]
        );
    }

    #[test]
    fn empty_states_and_warnings() {
        let mut a = App::new(test_parse, None, true);
        let s = screen(&render(&mut a, 120, 30));
        assert!(s.contains("no records yet (following"), "{s}");
        assert!(s.contains("follow on"));
        a.append(vec![ev(1, 1, "/bin/x", Op::Read, "/a")]);
        a.apply_filter(r#"process == "nothing""#).unwrap();
        a.status.files = vec!["a.log".into()];
        a.status.torn_tail = Some((0, 4096));
        a.status.chain = ChainState::Broken {
            file: 0,
            offset: 77,
            seq: Some(5),
            reason: "a.log @ 77: chain tag mismatch at seq 5".into(),
        };
        let b = render(&mut a, 160, 30);
        let s = screen(&b);
        assert!(s.contains("no record matches the filter"), "{s}");
        assert!(s.contains("torn tail in a.log at 4096"), "{s}");
        assert!(s.contains("CHAIN BROKEN at seq 5"), "{s}");
        let y = row_of(&b, "torn tail").unwrap();
        let x = col(&b, y, "torn");
        assert_eq!(b[(x, y)].bg, Color::Red);
    }

    #[test]
    fn small_terminals_keep_the_table() {
        let mut a = sample_app();
        let s = screen(&render(&mut a, 60, 12));
        assert!(s.contains("/srv/a"), "{s}");
        assert!(!s.contains("Detail"));
        // Nothing panics at absurd sizes.
        render(&mut a, 1, 1);
        render(&mut a, 10, 3);
        a.toggle_help();
        render(&mut a, 5, 5);
    }

    #[test]
    fn long_paths_wrap_in_the_detail_pane_and_files_are_short() {
        let long = format!("/srv/{}", "d/".repeat(100));
        let mut a = App::new(test_parse, None, false);
        a.append(vec![ev(1, 1, "/bin/x", Op::Read, &long)]);
        let b = render(&mut a, 80, 40);
        let detail: String = lines(&b)
            .iter()
            .skip_while(|l| !l.contains("Detail"))
            .skip(1)
            .take_while(|l| !l.starts_with('└'))
            .map(|l| {
                l.trim_start_matches('│')
                    .trim_end_matches('│')
                    .trim_end()
                    .to_owned()
            })
            .collect();
        assert!(detail.contains(&format!("path {long}")), "{detail}");
        // The pane grew to keep the lines after the wrapped path.
        assert!(detail.contains("status -"), "{detail}");
        assert_eq!(file_list(&["/a/x.log".into()]), "x.log");
        let many: Vec<String> = (0..6).map(|i| format!("/d/l.{i}")).collect();
        assert_eq!(file_list(&many), "l.0,(+3),l.4,l.5");
    }

    #[test]
    fn page_size_follows_the_screen() {
        let mut a = App::new(test_parse, None, false);
        a.append(
            (0..200)
                .map(|i| ev(i, i, "/bin/x", Op::Read, "/a"))
                .collect(),
        );
        render(&mut a, 120, 45);
        // 45 - filter 3 - spark 4 - detail 9 - status 1 = 28; minus borders and header.
        assert_eq!(a.page(), 25);
        a.end();
        let b = render(&mut a, 120, 45);
        assert!(screen(&b).contains("Records 200/200"));
        assert_eq!(a.offset(), 175);
    }
}

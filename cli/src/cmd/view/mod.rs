//! `fltpolicy log view`: the bundled audit log viewer, a terminal UI in the
//! spirit of Process Monitor.
//!
//! * [`app`] — the model (rows, filter, selection, follow); no terminal I/O;
//! * [`ui`] — draws the model with ratatui;
//! * [`input`] — turns key presses into model changes;
//! * [`source`] — paces `fltpolicy_audit::reader` (first load in slices,
//!   follow mode, rotation, torn tails) and turns its records into rows;
//! * [`timefmt`] — timestamps as text;
//! * [`escape`] — untrusted text (paths, names) shown with visible escapes.
//!
//! This module only wires them to a real terminal and a clock.

pub mod app;
pub mod escape;
pub mod fields;
pub mod input;
pub mod source;
pub mod timefmt;
pub mod ui;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use crossterm::event::{self, Event};
use fltpolicy_compiler::filter::Filter;
use fltpolicy_compiler::CompileError;
use fltpolicy_core::event::Target;

use app::{App, EventFilter, FilterError};
use source::Source;

/// How often follow mode looks at the files. Short enough that new records
/// appear without a noticeable lag, long enough to cost nothing when idle.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Longest time spent decoding before the screen is drawn again while a
/// large log loads.
const LOAD_SLICE: Duration = Duration::from_millis(100);

/// Target platform of the filter syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    Windows,
    Linux,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::Windows => Target::Windows,
            TargetArg::Linux => Target::Linux,
        }
    }
}

/// Browse audit logs in a terminal: filter, follow, inspect records.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Keys: arrows/PgUp/PgDn/Home/End move, f filter, / search (n/N next/previous; n alone: next drop), t jump to time, mouse wheel/click, F follow, d detail, ? help, q quit."
)]
pub struct ViewArgs {
    /// Log files to show, in any order (they are put in chain order).
    #[arg(required = true, value_name = "LOG")]
    pub logs: Vec<PathBuf>,
    /// Follow the log as it grows (and across rotation), like `tail -f`.
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// Initial filter, in the policy language's condition syntax, e.g.
    /// `process == "cat" and path under /srv`.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Path syntax of the filter; inferred from the log's paths when absent.
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,
    /// Key of an HMAC-sealed log, to check its chain: a file holding 32
    /// raw bytes or 64 hex digits (as for `log verify`).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// The viewer's filter: a policy condition (checked by the compiler) and
/// clauses on the record fields the policy language lacks (see
/// [`fields`]), all of which must hold.
struct ViewFilter {
    policy: Option<Filter>,
    clauses: Vec<fields::Clause>,
}

impl EventFilter for ViewFilter {
    fn matches(&self, event: &fltpolicy_core::event::EventView<'_>) -> bool {
        self.policy.as_ref().is_none_or(|f| f.matches(event))
    }

    fn matches_row(&self, row: &app::EventRow, time_ns: u64) -> bool {
        self.clauses.iter().all(|c| c.matches(row, time_ns)) && self.matches(&row.view())
    }
}

/// Parses the filter bar: top-level `and` parts naming `op`, `action`,
/// `rule`, `tag`, `severity` or `time` are the viewer's clauses; the rest
/// is the policy compiler's condition syntax (the syntax of `where`).
/// The first error becomes the bar's message, its span the caret.
pub fn parse_filter(expr: &str, target: Target) -> Result<Box<dyn EventFilter>, FilterError> {
    let mut clauses = Vec::new();
    let mut rest: Vec<(usize, &str)> = Vec::new();
    for (at, part) in fields::conjuncts(expr) {
        if fields::is_clause(part) {
            clauses.push(fields::parse_clause(part, at)?);
        } else {
            rest.push((at, part));
        }
    }
    let policy = match rest.as_slice() {
        [] => None,
        // One part: parse it in place so error offsets point into `expr`.
        [(at, part)] => Some(parse_condition(part, target).map_err(|mut e| {
            e.offset = e.offset.map(|o| o + at);
            e
        })?),
        _ => {
            let joined: Vec<&str> = rest.iter().map(|(_, p)| *p).collect();
            Some(parse_condition(&joined.join(" and "), target)?)
        }
    };
    Ok(Box::new(ViewFilter { policy, clauses }))
}

/// The policy compiler's condition parser as a filter.
fn parse_condition(expr: &str, target: Target) -> Result<Filter, FilterError> {
    match Filter::parse(expr, target) {
        Ok(f) => Ok(f),
        Err(CompileError::Source(diags)) => {
            let first = diags
                .items
                .iter()
                .find(|d| d.is_error())
                .or(diags.items.first());
            Err(match first {
                Some(d) => FilterError {
                    message: if d.label.is_empty() || d.message.contains(&d.label) {
                        d.message.clone()
                    } else {
                        format!("{}: {}", d.message, d.label)
                    },
                    offset: Some(d.span.start.min(expr.len())),
                    help: d.help.clone(),
                },
                None => FilterError {
                    message: "invalid filter".to_owned(),
                    offset: None,
                    help: None,
                },
            })
        }
        Err(other) => Err(FilterError {
            message: other.to_string(),
            offset: None,
            help: None,
        }),
    }
}

/// Runs the viewer until the user quits.
pub fn run(args: ViewArgs) -> anyhow::Result<()> {
    // Bad arguments are reported the same way with or without a terminal.
    let key = args
        .key_file
        .as_deref()
        .map(super::log::read_key)
        .transpose()?;
    let mut source = Source::open(&args.logs, key)?;
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        bail!("log view needs a terminal; use `fltpolicy log export` to read a log from a script");
    }
    let mut app = App::new(parse_filter, args.target.map(Target::from), args.follow);
    // Only a compact index stays in memory; rows are read back when shown.
    app.set_loader(Box::new(source.loader()));

    let mut terminal = ratatui::init();
    // Mouse: wheel and clicks (a terminal without mouse support ignores it).
    let _ = crossterm::execute!(io::stdout(), crossterm::event::EnableMouseCapture);
    let result = event_loop(&mut terminal, &mut app, &mut source, args.filter.as_deref());
    let _ = crossterm::execute!(io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    source: &mut Source,
    initial_filter: Option<&str>,
) -> anyhow::Result<()> {
    let mut pending_filter = initial_filter.map(str::to_owned);
    let mut next_poll = Instant::now();
    let mut loading = true;
    loop {
        // Read: everything on the first load (in slices, drawing between
        // them), then only in follow mode, every POLL_INTERVAL.
        if loading || (app.follow() && Instant::now() >= next_poll) {
            let started = Instant::now();
            loop {
                let (rows, more) = source.poll();
                app.append(rows);
                if !more {
                    loading = false;
                    break;
                }
                if started.elapsed() >= LOAD_SLICE {
                    break;
                }
            }
            app.status = source.status(app.follow());
            next_poll = Instant::now() + POLL_INTERVAL;
            // Apply --filter once the first rows have told the target.
            if let Some(f) = pending_filter.take() {
                app.open_filter();
                for c in f.chars() {
                    app.filter_push(c);
                }
                app.filter_submit();
            }
        }
        terminal.draw(|f| ui::draw(f, app))?;
        if app.should_quit() {
            return Ok(());
        }
        let timeout = if loading {
            Duration::ZERO
        } else if app.follow() {
            next_poll.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        };
        if event::poll(timeout)? {
            // Handle every queued event before drawing again.
            loop {
                // A resize needs nothing but the redraw that follows.
                match event::read()? {
                    Event::Key(k) => input::handle_key(app, k),
                    Event::Mouse(m) => input::handle_mouse(app, m),
                    _ => {}
                }
                if app.should_quit() || !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fltpolicy_core::event::{EventView, Op};

    #[test]
    fn real_filter_parses_and_matches() {
        let f = parse_filter(r#"process == "cat" and path under /srv"#, Target::Linux).unwrap();
        let mut ev = EventView::new(Op::Read, "/srv/data/a");
        ev.image = "/usr/bin/cat";
        assert!(f.matches(&ev));
        ev.image = "/usr/bin/vim";
        assert!(!f.matches(&ev));
        let f = parse_filter(r#"path under C:\Data"#, Target::Windows).unwrap();
        assert!(
            f.matches(&EventView::new(Op::Write, r"c:\data\X.TXT")),
            "Windows compares case-insensitively"
        );
    }

    #[test]
    fn real_filter_errors_point_into_the_expression() {
        let expr = r#"process == "cat" and bogus == 3"#;
        let e = parse_filter(expr, Target::Linux).err().unwrap();
        assert!(!e.message.is_empty());
        let off = e.offset.expect("a span");
        assert!(off <= expr.len());
        assert!(expr[off..].starts_with("bogus"), "{e:?}");
        let e = parse_filter(r#"process == "#, Target::Linux).err().unwrap();
        assert!(e.offset.is_some(), "{e:?}");
    }

    #[test]
    fn record_fields_combine_with_a_policy_condition() {
        use fltpolicy_core::record::ActionCode;
        let f = parse_filter(
            r#"op in [write, delete] and process == "cat" and action == deny and time >= "10:32""#,
            Target::Linux,
        )
        .unwrap();
        let mut r = app::tests::ev(1, 10 * 3600 + 40 * 60, "/usr/bin/cat", Op::Write, "/srv/a");
        let RowBodyMut(e) = RowBodyMut(match &mut r.body {
            app::RowBody::Event(e) => e,
            _ => unreachable!(),
        });
        e.action = ActionCode::from(fltpolicy_core::event::Action::Deny);
        assert!(f.matches_row(e, r.time_ns));
        e.image = "/usr/bin/vim".into();
        assert!(!f.matches_row(e, r.time_ns), "policy part applies");
        e.image = "/usr/bin/cat".into();
        e.op = Some(Op::Read);
        assert!(!f.matches_row(e, r.time_ns), "op part applies");
        e.op = Some(Op::Write);
        assert!(
            !f.matches_row(e, r.time_ns - 10 * 60 * 1_000_000_000),
            "time part applies"
        );
        // Errors point into the whole expression.
        let expr = r#"process == "cat" and op == bogus"#;
        let e = parse_filter(expr, Target::Linux).err().unwrap();
        assert_eq!(e.offset, Some(expr.find("bogus").unwrap()), "{e:?}");
        let expr = r#"op == write and bogus == 3"#;
        let e = parse_filter(expr, Target::Linux).err().unwrap();
        assert_eq!(e.offset, Some(expr.find("bogus").unwrap()), "{e:?}");
    }

    struct RowBodyMut<'a>(&'a mut app::EventRow);

    #[test]
    fn help_examples_are_valid_filters() {
        for ex in ui::HELP_EXAMPLES {
            parse_filter(ex, Target::Linux).unwrap_or_else(|e| panic!("{ex}: {e}"));
        }
    }
}

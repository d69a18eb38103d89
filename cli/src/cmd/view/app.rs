//! The viewer's model: every record read so far, the filter, the selection
//! and the scroll position.
//!
//! Nothing here touches the terminal or the file system, so every behaviour
//! (filtering, selection, follow-mode appending, drop rows, histogram
//! buckets) is unit-testable. `ui` draws an [`App`], `input` turns keys into
//! calls on it, `source` feeds it rows.
//!
//! Memory: one [`Row`] per record, with the process image, user and tag
//! interned (a busy host repeats a few dozen images millions of times). The
//! filtered view is a vector of indices, so a filter change costs one pass
//! and no copies.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use fltpolicy_core::event::{EventView, Op, Target};
use fltpolicy_core::record::{ActionCode, POLICY_ID_BYTES};

/// One record as the viewer shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The record's sequence number (for a drop row: the sequence number the
    /// writer gave the drop record itself).
    pub seq: u64,
    /// Nanoseconds since the Unix epoch, UTC.
    pub time_ns: u64,
    /// Index into the viewer's file list of the file the record came from.
    pub file: usize,
    /// Byte offset of the record's frame in that file.
    pub offset: u64,
    pub body: RowBody,
}

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowBody {
    Event(EventRow),
    Dropped(DropRow),
    End(EndRow),
}

/// An operation a rule logged or denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    /// `None` when the record carries an operation this build does not know.
    pub op: Option<Op>,
    pub path: String,
    pub pid: u64,
    pub ppid: u64,
    pub image: Arc<str>,
    pub user: Arc<str>,
    pub size: u64,
    pub paging: bool,
    /// The action as stored (codes from newer writers are kept).
    pub action: ActionCode,
    /// 1-based rule index in source order.
    pub rule: Option<u32>,
    /// Source line of the rule.
    pub line: u32,
    pub tag: Arc<str>,
    /// A rename's (or link's) destination; empty for other operations.
    pub target_path: String,
    /// The deciding policy's hash prefix (first bytes of its SHA-256).
    pub policy_hash: [u8; POLICY_ID_BYTES],
    /// The policy's load generation.
    pub generation: u64,
    /// The operation's result status (NTSTATUS or negated errno), when known.
    pub status: Option<i32>,
    /// The record's flag bits (`fltpolicy_core::record::flags`).
    pub flags: u8,
}

/// "N records dropped between seq A and B, reason": the records lost after
/// `after_seq` (the last one written before the loss) and before the drop
/// record itself (whose seq is the row's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropRow {
    pub count: u64,
    pub after_seq: u64,
    pub seq: u64,
    /// Losses of this kind were last accounted for at this time (ns).
    pub since_ns: u64,
    pub reason: &'static str,
}

/// The last record of a cleanly closed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndRow {
    /// `rotated` (the chain continues in the next file) or `shutdown`.
    pub reason: &'static str,
}

impl Row {
    pub fn event(&self) -> Option<&EventRow> {
        match &self.body {
            RowBody::Event(e) => Some(e),
            RowBody::Dropped(_) | RowBody::End(_) => None,
        }
    }

    #[cfg(test)]
    pub fn is_drop(&self) -> bool {
        matches!(self.body, RowBody::Dropped(_))
    }
}

impl EventRow {
    /// The record as the evaluator (and therefore the filter) sees it.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            op: self.op,
            path: &self.path,
            pid: self.pid,
            ppid: self.ppid,
            image: &self.image,
            user: &self.user,
            size: self.size,
            paging: self.paging,
        }
    }

    /// Last component of the image, the way the policy language's
    /// `process` field derives it.
    pub fn process(&self) -> &str {
        last_component(&self.image)
    }
}

/// The last component of a path in either syntax.
pub fn last_component(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

impl DropRow {
    pub fn describe(&self) -> String {
        format!(
            "{} records dropped between seq {} and {}, {}",
            self.count, self.after_seq, self.seq, self.reason
        )
    }
}

/// Reads a row back from the log by where it was read (file index in the
/// reader's order, byte offset of its frame).
pub trait RowLoader {
    fn load(&self, file: usize, offset: u64) -> Option<Row>;
}

/// What the index keeps per row: 24 bytes, whatever the row holds.
#[derive(Clone, Copy, Debug)]
struct Slot {
    time_ns: u64,
    /// File index << 48 | byte offset: increases in reading order.
    pos: u64,
    kind: u8,
}

const KIND_EVENT: u8 = 0;
const KIND_DROP: u8 = 1;
const KIND_END: u8 = 2;
/// Decoded rows kept for the screen (and the selection's neighbours).
const CACHE_ROWS: usize = 4096;

/// The rows: a compact index, and either every row in memory (no loader:
/// rows handed in directly, as in tests) or a bounded cache of rows read
/// back through a [`RowLoader`] (the viewer on real logs).
#[derive(Default)]
struct RowStore {
    slots: Vec<Slot>,
    mem: Vec<Rc<Row>>,
    loader: Option<Box<dyn RowLoader>>,
    cache: RefCell<HashMap<usize, Rc<Row>>>,
}

impl RowStore {
    fn set_loader(&mut self, loader: Box<dyn RowLoader>) {
        self.loader = Some(loader);
        self.mem.clear();
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn push(&mut self, row: Row) {
        let kind = match row.body {
            RowBody::Event(_) => KIND_EVENT,
            RowBody::Dropped(_) => KIND_DROP,
            RowBody::End(_) => KIND_END,
        };
        self.slots.push(Slot {
            time_ns: row.time_ns,
            pos: (row.file as u64) << 48 | (row.offset & ((1 << 48) - 1)),
            kind,
        });
        if self.loader.is_none() {
            self.mem.push(Rc::new(row));
        }
    }

    fn row(&self, i: usize) -> Option<Rc<Row>> {
        if self.loader.is_none() {
            return self.mem.get(i).cloned();
        }
        if let Some(r) = self.cache.borrow().get(&i) {
            return Some(Rc::clone(r));
        }
        let slot = self.slots.get(i)?;
        let loaded = self
            .loader
            .as_ref()?
            .load((slot.pos >> 48) as usize, slot.pos & ((1 << 48) - 1))?;
        let r = Rc::new(loaded);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_ROWS {
            cache.clear();
        }
        cache.insert(i, Rc::clone(&r));
        Some(r)
    }

    fn pos(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(u64::MAX, |s| s.pos)
    }
    fn time_ns(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.time_ns)
    }
    fn is_event(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.kind == KIND_EVENT)
    }
    fn is_drop(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.kind == KIND_DROP)
    }
}

/// What a search looks in: the row's shown text, lower case.
fn row_text(row: &Row) -> String {
    match &row.body {
        RowBody::Event(e) => format!(
            "{} {} {} {} {} {} {}",
            e.path,
            e.image,
            e.user,
            e.tag,
            e.op.map_or("?", Op::name),
            e.action.name(),
            e.pid
        )
        .to_lowercase(),
        RowBody::Dropped(d) => d.describe().to_lowercase(),
        RowBody::End(e) => format!("end of file ({})", e.reason),
    }
}

/// Shares repeated strings (images, users, tags) between rows.
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<str>>,
}

impl Interner {
    /// Strings above this length are not worth a hash lookup: they are
    /// rarely repeated and would only grow the set.
    const MAX_INTERNED_LEN: usize = 512;

    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if s.len() > Self::MAX_INTERNED_LEN {
            return Arc::from(s);
        }
        if let Some(found) = self.set.get(s) {
            return Arc::clone(found);
        }
        let new: Arc<str> = Arc::from(s);
        self.set.insert(Arc::clone(&new));
        new
    }
}

/// A compiled filter expression.
pub trait EventFilter {
    fn matches(&self, event: &EventView<'_>) -> bool;
    /// The whole record: filters on fields the policy language does not
    /// have (operation, action, rule, tag, severity, time) override this.
    fn matches_row(&self, row: &EventRow, _time_ns: u64) -> bool {
        self.matches(&row.view())
    }
}

/// Why an expression was rejected, in a form the filter bar can show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    /// Byte offset into the expression the error points at, when known.
    pub offset: Option<usize>,
    pub help: Option<String>,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(off) = self.offset {
            write!(f, " (at column {})", off + 1)?;
        }
        if let Some(help) = &self.help {
            write!(f, "; help: {help}")?;
        }
        Ok(())
    }
}

/// Turns an expression into a filter for the given target. The real one is
/// the policy compiler's condition parser; tests may pass their own.
pub type ParseFilter = fn(&str, Target) -> Result<Box<dyn EventFilter>, FilterError>;

/// What has keyboard focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The record list.
    List,
    /// The filter bar: keys edit the expression.
    FilterInput,
    /// The help overlay: any key closes it.
    Help,
    /// The search bar: keys edit the text, the selection jumps to the
    /// first match as it is typed.
    Search,
    /// The jump bar: a time to go to.
    Jump,
}

/// The chain verification state of what has been read so far.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ChainState {
    /// Nothing read yet, or the source cannot tell.
    #[default]
    Unknown,
    /// Every record read so far is intact and chained to its predecessor.
    Intact,
    /// The chain cannot be checked (a keyed log without its key): why.
    Unchecked(String),
    /// The first record that broke the chain.
    Broken {
        file: usize,
        offset: u64,
        seq: Option<u64>,
        reason: String,
    },
}

/// Facts about the files behind the rows, kept up to date by the source.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SourceStatus {
    /// Display names of the files read, in order (rotation appends).
    pub files: Vec<String>,
    /// An incomplete final record: file index and the offset it starts at.
    /// In follow mode it usually completes on a later poll.
    pub torn_tail: Option<(usize, u64)>,
    pub chain: ChainState,
    /// The last read error (I/O or a malformed file), shown in the status line.
    pub error: Option<String>,
    /// Host name from the first readable file header.
    pub host: Option<String>,
}

/// Counts of events per time bucket over the filtered rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    pub counts: Vec<u64>,
    /// Time of the first bucket's start (ns since the epoch).
    pub start_ns: u64,
    /// Width of one bucket in nanoseconds (at least 1).
    pub bucket_ns: u64,
}

impl Histogram {
    pub fn max(&self) -> u64 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
}

/// The filter bar's state.
struct FilterBar {
    /// The expression being edited.
    input: String,
    /// The expression in force (empty: no filter).
    applied: String,
    compiled: Option<Box<dyn EventFilter>>,
    /// The error for `input`, shown until the next edit.
    error: Option<FilterError>,
}

/// The whole viewer state.
pub struct App {
    rows: RowStore,
    /// Indices into `rows` of the rows that pass the filter, in order.
    visible: Vec<usize>,
    /// Index into `visible` of the selected row.
    selected: Option<usize>,
    /// Index into `visible` of the first row on screen.
    offset: usize,
    /// Rows that fit on screen; set by the UI on each draw.
    page: usize,
    mode: Mode,
    filter: FilterBar,
    parse: ParseFilter,
    target: Target,
    /// Whether `target` came from the command line (never re-inferred).
    target_forced: bool,
    /// Whether `target` has been inferred from an event yet.
    target_inferred: bool,
    follow: bool,
    show_detail: bool,
    /// Sum of the counts of all drop records.
    dropped: u64,
    drop_rows: usize,
    pub status: SourceStatus,
    quit: bool,
    /// Cache for [`App::histogram`]: (visible rows, buckets, filter epoch).
    hist_cache: Option<((usize, usize, u64), Histogram)>,
    /// Bumped whenever `visible` is rebuilt rather than appended to.
    filter_epoch: u64,
    /// The search text (kept after Enter for `n`/`N`).
    search: String,
    /// The selection when the search bar was opened (Esc returns to it).
    search_origin: Option<usize>,
    /// The time typed in the jump bar, and why it was refused.
    jump: String,
    jump_error: Option<String>,
    /// Screen row of the table's first record row (set when drawn).
    table_top: u16,
    /// Rows shown in the order their operations happened (record time),
    /// not in file order (`o` toggles). Records from different CPUs' rings
    /// reach the log in flush order, so the two can differ.
    by_time: bool,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("rows", &self.rows.len())
            .field("visible", &self.visible.len())
            .field("selected", &self.selected)
            .field("offset", &self.offset)
            .field("mode", &self.mode)
            .field("filter", &self.filter.applied)
            .field("target", &self.target)
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

/// The target a host would use when nothing else says.
const fn host_target() -> Target {
    if cfg!(windows) {
        Target::Windows
    } else {
        Target::Linux
    }
}

/// Infers the target from one event path: Windows paths contain `\` or
/// start with a drive letter.
pub fn infer_target(path: &str) -> Target {
    let b = path.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    if drive || path.contains('\\') {
        Target::Windows
    } else {
        Target::Linux
    }
}

impl App {
    /// A viewer with no rows yet. `target` forces the filter's target;
    /// `None` infers it from the first event record.
    pub fn new(parse: ParseFilter, target: Option<Target>, follow: bool) -> App {
        App {
            rows: RowStore::default(),
            visible: Vec::new(),
            selected: None,
            offset: 0,
            page: 1,
            mode: Mode::List,
            filter: FilterBar {
                input: String::new(),
                applied: String::new(),
                compiled: None,
                error: None,
            },
            parse,
            target: target.unwrap_or(host_target()),
            target_forced: target.is_some(),
            target_inferred: false,
            follow,
            show_detail: true,
            dropped: 0,
            drop_rows: 0,
            status: SourceStatus::default(),
            quit: false,
            hist_cache: None,
            filter_epoch: 0,
            search: String::new(),
            search_origin: None,
            jump: String::new(),
            jump_error: None,
            table_top: 0,
            by_time: false,
        }
    }

    // ---- queries -------------------------------------------------------

    pub fn total(&self) -> usize {
        self.rows.len()
    }
    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }
    /// The visible row at position `i` of the filtered list.
    pub fn visible_row(&self, i: usize) -> Option<Rc<Row>> {
        self.visible.get(i).and_then(|&r| self.rows.row(r))
    }
    pub fn selected(&self) -> Option<usize> {
        self.selected
    }
    pub fn selected_row(&self) -> Option<Rc<Row>> {
        self.selected.and_then(|i| self.visible_row(i))
    }

    /// Keeps only a compact index of the rows in memory and reads rows
    /// back through `loader` when they are shown, filtered or searched
    /// (the viewer on real logs: memory stays bounded whatever their size).
    pub fn set_loader(&mut self, loader: Box<dyn RowLoader>) {
        self.rows.set_loader(loader);
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    #[cfg(test)]
    pub fn page(&self) -> usize {
        self.page
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn follow(&self) -> bool {
        self.follow
    }
    pub fn show_detail(&self) -> bool {
        self.show_detail
    }
    pub fn target(&self) -> Target {
        self.target
    }
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    pub fn drop_rows(&self) -> usize {
        self.drop_rows
    }
    pub fn should_quit(&self) -> bool {
        self.quit
    }
    pub fn filter_input(&self) -> &str {
        &self.filter.input
    }
    pub fn filter_applied(&self) -> &str {
        &self.filter.applied
    }
    pub fn filter_error(&self) -> Option<&FilterError> {
        self.filter.error.as_ref()
    }
    pub fn search_text(&self) -> &str {
        &self.search
    }
    pub fn jump_text(&self) -> &str {
        &self.jump
    }
    pub fn jump_error(&self) -> Option<&str> {
        self.jump_error.as_deref()
    }

    // ---- feeding -------------------------------------------------------

    /// Appends rows read from the source. In follow mode a selection on the
    /// last row (or no selection) moves to the new last row, like `tail -f`;
    /// a selection further up stays where the reader put it.
    pub fn append(&mut self, new: Vec<Row>) {
        if new.is_empty() {
            return;
        }
        let at_end = match self.selected {
            None => true,
            Some(s) => s + 1 >= self.visible.len(),
        };
        let first_new = self.rows.len();
        for row in &new {
            if let RowBody::Dropped(d) = &row.body {
                self.dropped = self.dropped.saturating_add(d.count);
                self.drop_rows += 1;
            }
        }
        let retarget = self.maybe_infer_target(&new);
        if retarget {
            // The filter was compiled for the wrong syntax: start over.
            self.recompile_applied();
        }
        for (k, row) in new.into_iter().enumerate() {
            // Judged now, while the whole row is at hand.
            if !retarget && self.passes(&row) {
                self.visible.push(first_new + k);
            }
            self.rows.push(row);
        }
        if retarget {
            self.rebuild_visible();
        } else if self.by_time {
            // The new rows are mostly in time order already: the stable
            // sort merges the runs in about linear time.
            self.sort_visible_by_time();
        }
        if self.visible.is_empty() {
            self.selected = None;
        } else if self.selected.is_none() || (self.follow && at_end) {
            self.selected = Some(if self.follow {
                self.visible.len() - 1
            } else {
                0
            });
        }
        self.keep_selection_on_screen();
    }

    /// Infers the target from the first event among `new`, once.
    /// Returns whether the target changed.
    fn maybe_infer_target(&mut self, new: &[Row]) -> bool {
        if self.target_forced || self.target_inferred {
            return false;
        }
        let Some(ev) = new.iter().find_map(Row::event) else {
            return false;
        };
        self.target_inferred = true;
        let inferred = infer_target(&ev.path);
        let changed = inferred != self.target;
        self.target = inferred;
        changed
    }

    fn recompile_applied(&mut self) {
        if self.filter.applied.is_empty() {
            return;
        }
        match (self.parse)(&self.filter.applied, self.target) {
            Ok(f) => self.filter.compiled = Some(f),
            Err(e) => {
                // Valid for the provisional target, not for the real one:
                // show everything and say why.
                self.filter.compiled = None;
                self.filter.applied.clear();
                self.filter.error = Some(e);
            }
        }
    }

    /// Drop rows always pass: they mark gaps that may have held matching
    /// events, so hiding them would hide the loss. So do end-of-file rows
    /// (one per file): they tell where a file ends and why.
    fn passes(&self, row: &Row) -> bool {
        match (&row.body, &self.filter.compiled) {
            (RowBody::Dropped(_) | RowBody::End(_), _) | (_, None) => true,
            (RowBody::Event(e), Some(f)) => f.matches_row(e, row.time_ns),
        }
    }

    fn rebuild_visible(&mut self) {
        let keep = self
            .selected
            .and_then(|i| self.visible.get(i))
            .map(|&r| self.rows.pos(r));
        let visible: Vec<usize> = (0..self.rows.len())
            .filter(|&i| {
                // Drop and end rows always pass; without a filter, all do.
                if !self.rows.is_event(i) || self.filter.compiled.is_none() {
                    return true;
                }
                self.rows.row(i).is_some_and(|r| self.passes(&r))
            })
            .collect();
        self.visible = visible;
        self.filter_epoch += 1;
        // Keep the selected record if it survived, else the nearest one
        // after it (in file order), else the last.
        let keep_pos = keep.map(|key| self.visible.partition_point(|&i| self.rows.pos(i) < key));
        let keep_row = keep_pos.and_then(|p| self.visible.get(p).copied());
        if self.by_time {
            self.sort_visible_by_time();
        }
        self.selected = if self.visible.is_empty() {
            None
        } else if keep.is_some() {
            let pos = keep_row
                .and_then(|r| self.visible.iter().position(|&i| i == r))
                .unwrap_or(self.visible.len() - 1);
            Some(pos)
        } else {
            Some(0)
        };
        if self.follow && !self.visible.is_empty() {
            self.selected = Some(self.visible.len() - 1);
        }
        self.keep_selection_on_screen();
    }

    /// Whether rows are shown in time order.
    pub fn by_time(&self) -> bool {
        self.by_time
    }

    /// `o`: shows rows in the order their operations happened (record
    /// time, ties in file order) or back in file order; the selected
    /// record stays selected.
    pub fn toggle_order(&mut self) {
        self.by_time = !self.by_time;
        let keep = self.selected.and_then(|i| self.visible.get(i).copied());
        if self.by_time {
            self.sort_visible_by_time();
        } else {
            let rows = &self.rows;
            self.visible.sort_by_key(|&i| rows.pos(i));
        }
        self.filter_epoch += 1;
        if let Some(r) = keep {
            self.selected = self.visible.iter().position(|&i| i == r);
        }
        self.keep_selection_on_screen();
    }

    fn sort_visible_by_time(&mut self) {
        let rows = &self.rows;
        self.visible
            .sort_by_key(|&i| (rows.time_ns(i), rows.pos(i)));
    }

    // ---- filter --------------------------------------------------------

    /// Compiles `expr` and, when it is valid, applies it. An empty
    /// expression removes the filter. On error the previous filter stays in
    /// force and the error is kept for the bar to show.
    pub fn apply_filter(&mut self, expr: &str) -> Result<(), FilterError> {
        let expr = expr.trim();
        self.filter.input = expr.to_owned();
        if expr.is_empty() {
            self.filter.compiled = None;
            self.filter.applied.clear();
            self.filter.error = None;
        } else {
            match (self.parse)(expr, self.target) {
                Ok(f) => {
                    self.filter.compiled = Some(f);
                    self.filter.applied = expr.to_owned();
                    self.filter.error = None;
                }
                Err(e) => {
                    self.filter.error = Some(e.clone());
                    return Err(e);
                }
            }
        }
        self.rebuild_visible();
        Ok(())
    }

    /// Opens the filter bar for editing, starting from the applied filter.
    pub fn open_filter(&mut self) {
        self.mode = Mode::FilterInput;
        self.filter.input = self.filter.applied.clone();
        self.filter.error = None;
    }

    pub fn filter_push(&mut self, c: char) {
        self.filter.input.push(c);
        self.filter.error = None;
    }
    pub fn filter_backspace(&mut self) {
        self.filter.input.pop();
        self.filter.error = None;
    }
    /// Deletes the word before the cursor (Ctrl-W).
    pub fn filter_delete_word(&mut self) {
        let s = self.filter.input.trim_end();
        let cut = s
            .rfind(|c: char| c.is_whitespace())
            .map(|i| i + 1)
            .unwrap_or(0);
        self.filter.input.truncate(cut);
        self.filter.error = None;
    }
    pub fn filter_clear(&mut self) {
        self.filter.input.clear();
        self.filter.error = None;
    }

    /// Enter in the filter bar: apply, and return to the list on success.
    /// A bad expression keeps the bar open with the error.
    pub fn filter_submit(&mut self) {
        let expr = self.filter.input.clone();
        if self.apply_filter(&expr).is_ok() {
            self.mode = Mode::List;
        }
    }

    /// Esc in the filter bar: leave it, the applied filter unchanged.
    pub fn filter_cancel(&mut self) {
        self.filter.input = self.filter.applied.clone();
        self.filter.error = None;
        self.mode = Mode::List;
    }

    // ---- search --------------------------------------------------------

    /// `/`: opens the search bar with an empty text.
    pub fn open_search(&mut self) {
        self.mode = Mode::Search;
        self.search.clear();
        self.search_origin = self.selected;
    }

    pub fn search_push(&mut self, c: char) {
        self.search.push(c);
        self.search_from_origin();
    }

    pub fn search_backspace(&mut self) {
        self.search.pop();
        self.search_from_origin();
    }

    /// Enter: keep the match selected; `n`/`N` go on from it.
    pub fn search_submit(&mut self) {
        self.mode = Mode::List;
    }

    /// Esc: back to where the search started.
    pub fn search_cancel(&mut self) {
        self.mode = Mode::List;
        self.search.clear();
        if let Some(o) = self.search_origin {
            self.select(o);
        }
    }

    /// Incremental: the first match at or after where the search started.
    fn search_from_origin(&mut self) {
        if self.search.is_empty() {
            if let Some(o) = self.search_origin {
                self.select(o);
            }
            return;
        }
        let start = self.search_origin.unwrap_or(0);
        self.find(start, true);
    }

    /// `n` / `N`: the next (previous) row matching the search, wrapping;
    /// without a search, `n` goes to the next drop record.
    pub fn search_next(&mut self, forward: bool) {
        if self.search.is_empty() {
            if forward {
                self.next_drop();
            }
            return;
        }
        let n = self.visible.len();
        if n == 0 {
            return;
        }
        let cur = self.selected.unwrap_or(0);
        let start = if forward { cur + 1 } else { cur + n - 1 };
        self.find(start % n, forward);
    }

    /// Selects the first visible row from `start` (wrapping, in the given
    /// direction) whose shown text contains the search, ignoring case.
    fn find(&mut self, start: usize, forward: bool) -> bool {
        let n = self.visible.len();
        let needle = self.search.to_lowercase();
        for k in 0..n {
            let i = if forward {
                (start + k) % n
            } else {
                (start + n - k % n) % n
            };
            if self
                .rows
                .row(self.visible[i])
                .is_some_and(|r| row_text(&r).contains(&needle))
            {
                self.select(i);
                return true;
            }
        }
        false
    }

    // ---- jump to a time and the mouse ----------------------------------

    /// `t`: opens the jump bar.
    pub fn open_jump(&mut self) {
        self.mode = Mode::Jump;
        self.jump.clear();
        self.jump_error = None;
    }
    pub fn jump_push(&mut self, c: char) {
        self.jump.push(c);
        self.jump_error = None;
    }
    pub fn jump_backspace(&mut self) {
        self.jump.pop();
        self.jump_error = None;
    }
    pub fn jump_cancel(&mut self) {
        self.mode = Mode::List;
        self.jump_error = None;
    }

    /// Enter: selects the first shown record at or after the time
    /// (`HH:MM[:SS]` of the UTC day, or an RFC 3339 instant); the last
    /// record if none is that late.
    pub fn jump_submit(&mut self) {
        let Some((absolute, t)) = super::fields::parse_time(&self.jump) else {
            self.jump_error =
                Some("a time is HH:MM[:SS[.fff]] (UTC) or an RFC 3339 instant".to_owned());
            return;
        };
        const DAY_NS: u64 = 86_400 * 1_000_000_000;
        let rows = &self.rows;
        let key = |i: usize| {
            let ns = rows.time_ns(i);
            if absolute {
                ns
            } else {
                ns % DAY_NS
            }
        };
        let pos = self
            .visible
            .iter()
            .position(|&i| key(i) >= t)
            .unwrap_or(self.visible.len().saturating_sub(1));
        self.mode = Mode::List;
        self.select(pos);
    }

    /// The mouse wheel: `lines` down (negative: up).
    pub fn scroll(&mut self, lines: i32) {
        if lines < 0 {
            self.up(lines.unsigned_abs() as usize);
        } else {
            self.down(lines as usize);
        }
    }

    /// Where the table's first record row is on the screen (the UI sets it).
    pub fn set_table_top(&mut self, row: u16) {
        self.table_top = row;
    }

    /// A click on screen row `row`: selects the record drawn there.
    pub fn click(&mut self, row: u16) {
        if self.mode != Mode::List || row < self.table_top {
            return;
        }
        let k = (row - self.table_top) as usize;
        if k < self.page && self.offset + k < self.visible.len() {
            self.select(self.offset + k);
        }
    }

    // ---- modes and toggles ---------------------------------------------

    pub fn toggle_help(&mut self) {
        self.mode = if self.mode == Mode::Help {
            Mode::List
        } else {
            Mode::Help
        };
    }
    pub fn close_help(&mut self) {
        if self.mode == Mode::Help {
            self.mode = Mode::List;
        }
    }
    /// Follow mode: poll the files for growth and keep the newest row in
    /// view. Turning it on jumps to the end.
    pub fn toggle_follow(&mut self) {
        self.follow = !self.follow;
        if self.follow {
            self.end();
        }
    }
    pub fn toggle_detail(&mut self) {
        self.show_detail = !self.show_detail;
    }
    pub fn quit(&mut self) {
        self.quit = true;
    }

    // ---- navigation ----------------------------------------------------

    /// Sets how many rows fit on screen (the UI calls this on every draw).
    pub fn set_page(&mut self, rows: usize) {
        self.page = rows.max(1);
        self.keep_selection_on_screen();
    }

    fn select(&mut self, i: usize) {
        if self.visible.is_empty() {
            self.selected = None;
            return;
        }
        self.selected = Some(i.min(self.visible.len() - 1));
        self.keep_selection_on_screen();
    }

    pub fn down(&mut self, n: usize) {
        let cur = self.selected.unwrap_or(0);
        self.select(cur.saturating_add(n));
    }
    pub fn up(&mut self, n: usize) {
        let cur = self.selected.unwrap_or(0);
        self.select(cur.saturating_sub(n));
    }
    pub fn page_down(&mut self) {
        self.down(self.page.saturating_sub(1).max(1));
    }
    pub fn page_up(&mut self) {
        self.up(self.page.saturating_sub(1).max(1));
    }
    pub fn home(&mut self) {
        self.select(0);
    }
    pub fn end(&mut self) {
        self.select(self.visible.len().saturating_sub(1));
    }

    /// Selects the next drop row after the selection (wrapping).
    pub fn next_drop(&mut self) {
        let n = self.visible.len();
        if n == 0 {
            return;
        }
        let start = self.selected.map(|s| s + 1).unwrap_or(0);
        if let Some(k) = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.rows.is_drop(self.visible[i]))
        {
            self.select(k);
        }
    }

    fn keep_selection_on_screen(&mut self) {
        let n = self.visible.len();
        let max_offset = n.saturating_sub(self.page);
        if let Some(s) = self.selected {
            if s < self.offset {
                self.offset = s;
            } else if s >= self.offset + self.page {
                self.offset = s + 1 - self.page;
            }
        }
        self.offset = self.offset.min(max_offset);
    }

    // ---- histogram -----------------------------------------------------

    /// Events per time bucket over the filtered event rows, `buckets`
    /// buckets spanning first to last event. `None` when there are no
    /// events or no room.
    pub fn histogram(&mut self, buckets: usize) -> Option<Histogram> {
        if buckets == 0 {
            return None;
        }
        let key = (self.visible.len(), buckets, self.filter_epoch);
        if let Some((k, h)) = &self.hist_cache {
            // While a large log loads, the rows grow on every slice: a
            // full recount each time would cost O(rows) per frame, so the
            // cached one serves (above 65,536 rows) until the rows have
            // grown by an eighth.
            let grown = key.0.saturating_sub(k.0);
            if *k == key || (k.1 == key.1 && k.2 == key.2 && k.0 >= 1 << 16 && grown * 8 < k.0) {
                return Some(h.clone());
            }
        }
        let rows = &self.rows;
        let h = histogram(
            self.visible
                .iter()
                .filter(|&&i| rows.is_event(i))
                .map(|&i| rows.time_ns(i)),
            buckets,
        )?;
        self.hist_cache = Some((key, h.clone()));
        Some(h)
    }
}

/// Buckets `times` into `buckets` equal spans from the earliest to the
/// latest time. The last bucket ends at or after the latest time.
pub fn histogram(times: impl Iterator<Item = u64> + Clone, buckets: usize) -> Option<Histogram> {
    let mut min = u64::MAX;
    let mut max = 0u64;
    let mut any = false;
    for t in times.clone() {
        any = true;
        min = min.min(t);
        max = max.max(t);
    }
    if !any || buckets == 0 {
        return None;
    }
    let span = (max - min).saturating_add(1);
    let bucket_ns = span.div_ceil(buckets as u64).max(1);
    let mut counts = vec![0u64; buckets];
    for t in times {
        let b = ((t - min) / bucket_ns) as usize;
        counts[b.min(buckets - 1)] += 1;
    }
    Some(Histogram {
        counts,
        start_ns: min,
        bucket_ns,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fltpolicy_core::event::Action;

    /// A stand-in filter for model tests: `field == "value"` or
    /// `path under PREFIX`, joined by `and`. The real parser is tested in
    /// `mod.rs`'s tests and by the tmux test.
    pub(crate) struct TestFilter(Vec<(String, String)>);

    impl EventFilter for TestFilter {
        fn matches(&self, e: &EventView<'_>) -> bool {
            self.0.iter().all(|(k, v)| match k.as_str() {
                "process" => last_component(e.image) == v,
                "under" => e.path.starts_with(v.as_str()),
                "op" => e.op.map(|o| o.name()) == Some(v.as_str()),
                _ => false,
            })
        }
    }

    pub(crate) fn test_parse(expr: &str, _t: Target) -> Result<Box<dyn EventFilter>, FilterError> {
        let mut terms = Vec::new();
        for term in expr.split(" and ") {
            let w: Vec<&str> = term.split_whitespace().collect();
            match w.as_slice() {
                ["process", "==", v] => terms.push(("process".into(), v.trim_matches('"').into())),
                ["op", "==", v] => terms.push(("op".into(), v.trim_matches('"').into())),
                ["path", "under", v] => terms.push(("under".into(), (*v).into())),
                _ => {
                    return Err(FilterError {
                        message: format!("unexpected `{term}`"),
                        offset: expr.find(term),
                        help: None,
                    })
                }
            }
        }
        Ok(Box::new(TestFilter(terms)))
    }

    pub(crate) fn ev(seq: u64, t_s: u64, image: &str, op: Op, path: &str) -> Row {
        Row {
            seq,
            time_ns: t_s * 1_000_000_000,
            file: 0,
            offset: seq * 100,
            body: RowBody::Event(EventRow {
                op: Some(op),
                path: path.into(),
                pid: 1000 + seq,
                ppid: 1,
                image: image.into(),
                user: "0".into(),
                size: 0,
                paging: false,
                action: Action::Log.into(),
                rule: Some(1),
                line: 3,
                tag: "T".into(),
                target_path: String::new(),
                policy_hash: [0xab; POLICY_ID_BYTES],
                generation: 1,
                status: None,
                flags: 0,
            }),
        }
    }

    #[test]
    fn o_orders_rows_by_the_time_their_operations_happened() {
        let mut a = App::new(test_parse, None, false);
        // Flush order differs from time order (records of two rings).
        a.append(vec![
            ev(1, 10, "/usr/bin/a", Op::Write, "/d/1"),
            ev(2, 30, "/usr/bin/a", Op::Write, "/d/3"),
            ev(3, 20, "/usr/bin/b", Op::Write, "/d/2"),
        ]);
        let paths = |a: &App| -> Vec<String> {
            (0..a.visible_len())
                .map(|i| match &a.visible_row(i).unwrap().body {
                    RowBody::Event(e) => e.path.clone(),
                    _ => String::new(),
                })
                .collect()
        };
        assert_eq!(paths(&a), ["/d/1", "/d/3", "/d/2"], "file order first");
        a.select(1); // /d/3
        a.toggle_order();
        assert!(a.by_time());
        assert_eq!(paths(&a), ["/d/1", "/d/2", "/d/3"]);
        assert_eq!(a.selected(), Some(2), "the selected record stays selected");
        // New rows and a filter keep the order.
        a.append(vec![ev(4, 15, "/usr/bin/b", Op::Write, "/d/15")]);
        assert_eq!(paths(&a), ["/d/1", "/d/15", "/d/2", "/d/3"]);
        a.apply_filter("process == b").unwrap();
        assert_eq!(paths(&a), ["/d/15", "/d/2"]);
        a.apply_filter("").unwrap();
        a.toggle_order();
        assert_eq!(
            paths(&a),
            ["/d/1", "/d/3", "/d/2", "/d/15"],
            "file order again"
        );
    }

    pub(crate) fn drop_row(seq: u64, t_s: u64, count: u64) -> Row {
        Row {
            seq,
            time_ns: t_s * 1_000_000_000,
            file: 0,
            offset: seq * 100,
            body: RowBody::Dropped(DropRow {
                count,
                after_seq: seq - 1,
                seq,
                since_ns: 0,
                reason: "queue_full",
            }),
        }
    }

    fn sample() -> Vec<Row> {
        vec![
            ev(1, 10, "/usr/bin/cat", Op::Open, "/srv/a"),
            ev(2, 11, "/usr/bin/vim", Op::Write, "/srv/b"),
            drop_row(3, 12, 5),
            ev(9, 13, "/usr/bin/cat", Op::Read, "/etc/passwd"),
            ev(10, 14, "/usr/bin/cat", Op::Read, "/srv/c"),
        ]
    }

    fn app(follow: bool) -> App {
        App::new(test_parse, None, follow)
    }

    #[test]
    fn rows_append_and_first_row_selected() {
        let mut a = app(false);
        assert_eq!(a.selected(), None);
        a.append(sample());
        assert_eq!(a.total(), 5);
        assert_eq!(a.visible_len(), 5);
        assert_eq!(a.selected(), Some(0));
        assert_eq!(a.dropped(), 5);
        assert_eq!(a.drop_rows(), 1);
        assert_eq!(a.target(), Target::Linux);
    }

    #[test]
    fn filter_narrows_and_keeps_drops() {
        let mut a = app(false);
        a.append(sample());
        a.apply_filter(r#"process == "cat" and path under /srv"#)
            .unwrap();
        let seqs: Vec<u64> = (0..a.visible_len())
            .map(|i| a.visible_row(i).unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![1, 3, 10], "cat under /srv plus the drop row");
        // New rows are filtered as they arrive.
        a.append(vec![
            ev(11, 15, "/usr/bin/cat", Op::Read, "/srv/d"),
            ev(12, 15, "/usr/bin/vim", Op::Read, "/srv/e"),
        ]);
        assert_eq!(a.visible_len(), 4);
        assert_eq!(a.visible_row(3).unwrap().seq, 11);
        // Removing the filter shows everything again.
        a.apply_filter("").unwrap();
        assert_eq!(a.visible_len(), 7);
    }

    #[test]
    fn bad_filter_keeps_previous_and_reports() {
        let mut a = app(false);
        a.append(sample());
        a.apply_filter(r#"process == "vim""#).unwrap();
        assert_eq!(a.visible_len(), 2);
        a.open_filter();
        assert_eq!(a.mode(), Mode::FilterInput);
        a.filter_clear();
        for c in "process ~~ 3".chars() {
            a.filter_push(c);
        }
        a.filter_submit();
        assert_eq!(a.mode(), Mode::FilterInput, "bar stays open on error");
        assert!(a.filter_error().unwrap().message.contains("unexpected"));
        assert_eq!(a.filter_applied(), r#"process == "vim""#);
        assert_eq!(a.visible_len(), 2, "previous filter still in force");
        a.filter_backspace();
        assert!(a.filter_error().is_none(), "editing clears the error");
        a.filter_cancel();
        assert_eq!(a.mode(), Mode::List);
        assert_eq!(a.filter_input(), r#"process == "vim""#);
    }

    #[test]
    fn filter_keeps_selected_record() {
        let mut a = app(false);
        a.append(sample());
        a.end(); // seq 10, cat, /srv/c
        a.apply_filter(r#"process == "cat""#).unwrap();
        assert_eq!(a.selected_row().unwrap().seq, 10);
        a.home();
        a.down(1); // the drop row
        assert!(a.selected_row().unwrap().is_drop());
        a.apply_filter(r#"op == "read""#).unwrap();
        assert!(a.selected_row().unwrap().is_drop());
    }

    #[test]
    fn navigation_and_scrolling() {
        let mut a = app(false);
        a.append(
            (1..=100)
                .map(|i| ev(i, i, "/bin/x", Op::Read, "/a"))
                .collect(),
        );
        a.set_page(10);
        assert_eq!((a.selected(), a.offset()), (Some(0), 0));
        a.down(1);
        assert_eq!((a.selected(), a.offset()), (Some(1), 0));
        a.page_down();
        assert_eq!((a.selected(), a.offset()), (Some(10), 1));
        a.page_down();
        assert_eq!((a.selected(), a.offset()), (Some(19), 10));
        a.up(5);
        assert_eq!((a.selected(), a.offset()), (Some(14), 10));
        a.page_up();
        assert_eq!((a.selected(), a.offset()), (Some(5), 5));
        a.end();
        assert_eq!((a.selected(), a.offset()), (Some(99), 90));
        a.down(7);
        assert_eq!(a.selected(), Some(99), "clamped at the end");
        a.home();
        assert_eq!((a.selected(), a.offset()), (Some(0), 0));
        a.up(3);
        assert_eq!(a.selected(), Some(0));
        // A taller screen pulls the offset back so no space is wasted.
        a.end();
        a.set_page(40);
        assert_eq!(a.offset(), 60);
    }

    #[test]
    fn follow_sticks_to_the_end_only_when_at_the_end() {
        let mut a = app(true);
        a.set_page(3);
        a.append(sample());
        assert_eq!(a.selected(), Some(4), "follow starts at the newest row");
        a.append(vec![ev(11, 15, "/bin/x", Op::Read, "/a")]);
        assert_eq!(a.selected(), Some(5));
        assert_eq!(a.offset(), 3);
        a.up(2);
        a.append(vec![ev(12, 16, "/bin/x", Op::Read, "/a")]);
        assert_eq!(a.selected(), Some(3), "reader scrolled up: stay put");
        a.toggle_follow();
        assert!(!a.follow());
        a.toggle_follow();
        assert_eq!(a.selected(), Some(6), "turning follow on jumps to the end");
        // Without follow, appends never move the selection.
        let mut b = app(false);
        b.append(sample());
        b.end();
        b.append(vec![ev(11, 15, "/bin/x", Op::Read, "/a")]);
        assert_eq!(b.selected(), Some(4));
    }

    #[test]
    fn search_finds_as_you_type_and_n_goes_on() {
        let mut a = app(false);
        a.append(vec![
            ev(1, 1, "/usr/bin/cat", Op::Open, "/srv/alpha"),
            ev(2, 2, "/usr/bin/vim", Op::Write, "/srv/beta"),
            ev(3, 3, "/usr/bin/cat", Op::Read, "/srv/ALPHA2"),
            ev(4, 4, "/usr/bin/ls", Op::Open, "/srv/gamma"),
        ]);
        a.select(1);
        a.open_search();
        for c in "alp".chars() {
            a.search_push(c);
        }
        assert_eq!(
            a.selected(),
            Some(2),
            "first match at or after the start, any case"
        );
        a.search_submit();
        a.search_next(true);
        assert_eq!(a.selected(), Some(0), "wraps");
        a.search_next(false);
        assert_eq!(a.selected(), Some(2), "N goes back");
        a.open_search();
        a.search_push('v');
        a.search_push('i');
        assert_eq!(a.selected(), Some(1), "matches the process image");
        a.search_cancel();
        assert_eq!(a.selected(), Some(2), "Esc goes back");
        assert!(a.search_text().is_empty());
        // Without a search, n is still "next drop".
        a.search_next(true);
        assert_eq!(a.selected(), Some(2), "no drop rows: stays");
    }

    #[test]
    fn jump_to_a_time_and_the_mouse() {
        let mut a = app(false);
        // 10:00, 10:30, 11:00 UTC on 1 Jan 1970.
        a.append(vec![
            ev(1, 36_000, "/usr/bin/cat", Op::Open, "/a"),
            ev(2, 37_800, "/usr/bin/cat", Op::Open, "/b"),
            ev(3, 39_600, "/usr/bin/cat", Op::Open, "/c"),
        ]);
        a.set_page(10);
        a.open_jump();
        for c in "10:15".chars() {
            a.jump_push(c);
        }
        a.jump_submit();
        assert_eq!(a.mode(), Mode::List);
        assert_eq!(a.selected(), Some(1));
        a.open_jump();
        for c in "1970-01-01T10:45:00Z".chars() {
            a.jump_push(c);
        }
        a.jump_submit();
        assert_eq!(a.selected(), Some(2));
        a.open_jump();
        a.jump_push('x');
        a.jump_submit();
        assert_eq!(a.mode(), Mode::Jump, "a bad time keeps the bar open");
        assert!(a.jump_error().is_some());
        a.jump_cancel();
        // Mouse: the table's rows start at screen row 5.
        a.set_table_top(5);
        a.click(5);
        assert_eq!(a.selected(), Some(0));
        a.click(7);
        assert_eq!(a.selected(), Some(2));
        a.click(4);
        a.click(30);
        assert_eq!(a.selected(), Some(2), "outside the rows: nothing");
        a.scroll(-1);
        assert_eq!(a.selected(), Some(1));
        a.scroll(3);
        assert_eq!(a.selected(), Some(2));
    }

    #[test]
    fn next_drop_wraps() {
        let mut a = app(false);
        a.append(sample());
        a.append(vec![drop_row(20, 20, 2)]);
        a.next_drop();
        assert_eq!(a.selected_row().unwrap().seq, 3);
        a.next_drop();
        assert_eq!(a.selected_row().unwrap().seq, 20);
        a.next_drop();
        assert_eq!(a.selected_row().unwrap().seq, 3);
        assert_eq!(a.dropped(), 7);
    }

    #[test]
    fn target_inferred_from_windows_paths_and_forced_flag_wins() {
        let mut a = app(false);
        a.append(vec![drop_row(1, 1, 1)]);
        a.append(vec![ev(
            2,
            2,
            r"C:\Windows\notepad.exe",
            Op::Open,
            r"C:\Data\a.txt",
        )]);
        assert_eq!(a.target(), Target::Windows);
        let mut b = App::new(test_parse, Some(Target::Linux), false);
        b.append(vec![ev(2, 2, r"C:\x.exe", Op::Open, r"C:\Data\a.txt")]);
        assert_eq!(b.target(), Target::Linux);
        assert_eq!(infer_target("/srv/a"), Target::Linux);
        assert_eq!(infer_target(r"\Device\HarddiskVolume2\x"), Target::Windows);
        assert_eq!(infer_target("D:"), Target::Windows);
    }

    #[test]
    fn histogram_buckets() {
        // Events at 10..=14 s, one each; drop row excluded.
        let mut a = app(false);
        a.append(sample());
        let h = a.histogram(5).unwrap();
        assert_eq!(h.start_ns, 10_000_000_000);
        assert_eq!(h.counts.iter().sum::<u64>(), 4);
        // span is 4 s + 1 ns over 5 buckets: 0.8 s + 1 ns each.
        assert_eq!(h.bucket_ns, 800_000_001);
        assert_eq!(h.counts, vec![1, 1, 0, 1, 1]);
        // Over the filtered set only.
        a.apply_filter(r#"process == "cat""#).unwrap();
        let h = a.histogram(2).unwrap();
        assert_eq!(h.counts, vec![1, 2]);
        assert_eq!(h.max(), 2);
        // Single instant: everything in the first bucket.
        let h = histogram([7u64, 7, 7].into_iter(), 4).unwrap();
        assert_eq!((h.counts, h.bucket_ns), (vec![3, 0, 0, 0], 1));
        assert!(histogram(std::iter::empty(), 4).is_none());
        assert!(histogram([1u64].into_iter(), 0).is_none());
    }

    #[test]
    fn histogram_extremes_do_not_overflow() {
        let h = histogram([0u64, u64::MAX - 1].into_iter(), 3).unwrap();
        assert_eq!(h.counts, vec![1, 0, 1]);
        let h = histogram([0u64, u64::MAX].into_iter(), 3).unwrap();
        assert_eq!(h.counts, vec![1, 0, 1]);
    }

    #[test]
    fn interner_shares() {
        let mut i = Interner::default();
        let a = i.intern("/usr/bin/cat");
        let b = i.intern("/usr/bin/cat");
        assert!(Arc::ptr_eq(&a, &b));
        let long = "x".repeat(Interner::MAX_INTERNED_LEN + 1);
        assert!(!Arc::ptr_eq(&i.intern(&long), &i.intern(&long)));
    }
}

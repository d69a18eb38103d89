//! Event JSON: the input of `eval`, `bench`, `test` and `replay`.
//!
//! One object per line (`.jsonl`), fields `op, path, pid, ppid, image,
//! user, size, paging`; every field but `op` is optional and takes a
//! neutral value (empty string, 0, false) when missing.
use std::path::Path;

use anyhow::{bail, Context, Result};
use fltpolicy_core::event::{EventView, Op};
use serde::Deserialize;

/// One event as read from JSON (owned; borrow it with [`Event::view`]).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub pid: u64,
    #[serde(default)]
    pub ppid: u64,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub paging: bool,
    /// Parsed `op`, filled by [`Event::parse`].
    #[serde(skip)]
    pub parsed_op: Option<Op>,
}

impl Event {
    /// Parses one JSON object and its operation name.
    pub fn parse(json: &str) -> Result<Event> {
        let mut ev: Event = serde_json::from_str(json)?;
        if ev.op.is_empty() {
            return Ok(ev);
        }
        ev.parsed_op = Some(Op::from_name(&ev.op).with_context(|| {
            format!(
                "unknown operation {:?} (expected one of: create open read write rename delete setinfo close)",
                ev.op
            )
        })?);
        Ok(ev)
    }

    /// The borrowed view the evaluators read.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            op: self.parsed_op,
            path: &self.path,
            pid: self.pid,
            ppid: self.ppid,
            image: &self.image,
            user: &self.user,
            size: self.size,
            paging: self.paging,
        }
    }
}

/// Reads a `.jsonl` file: blank lines and lines starting with `#` are
/// skipped; a bad line is an error naming the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read events from {}", path.display()))?;
    parse_jsonl(&text, &path.display().to_string())
}

pub fn parse_jsonl(text: &str, name: &str) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match Event::parse(line) {
            Ok(ev) => out.push(ev),
            Err(e) => bail!("{name}:{}: bad event: {e:#}", i + 1),
        }
    }
    Ok(out)
}

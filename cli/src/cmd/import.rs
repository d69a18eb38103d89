//! `fltpolicy import sysmon CONFIG.xml [-o OUT.pol]`: converts a Sysmon
//! configuration's file-system rule groups into a `.pol`.
//!
//! Sysmon's semantics, per event type (Microsoft's Sysmon documentation,
//! "Event filtering entries"): an event is logged when it matches an
//! `onmatch="include"` filter and no `onmatch="exclude"` filter (an exclude
//! always wins); a type with exclude filters only logs everything they do
//! not match; an empty include logs nothing. Filters directly inside an
//! event element are alternatives when the `RuleGroup`'s `groupRelation`
//! is `or` and all required when it is `and`; a `<Rule groupRelation=...>`
//! combines its own conditions. Comparisons are case-insensitive, as on
//! the Windows target.
//!
//! The `.pol` keeps that with first-match rules: per operation, the include
//! rules of types that have no exclusions come first (`log`), then the
//! exclusions of the one type that has them (`allow`, which records
//! nothing), then its inclusions (`log`) or, for an exclude-only type, a
//! catch-all `log`. A second type with exclusions on the same operation
//! gets them as `unless` on each of its rules.
//!
//! Event types and operations: FileCreate (11) and FileCreateStreamHash
//! (15) → `create`; FileDelete (23) and FileDeleteDetected (26) →
//! `delete`. Fields: `TargetFilename` → `path`, `Image` → `image` (or
//! `process` for a bare file name under `condition="image"`), `ProcessId` →
//! `pid`. Every filter element becomes exactly one of: exact, approximate
//! (translated, with a comment saying how it differs) or skipped (with the
//! reason); the summary counts them.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

/// Convert other tools' configurations into policies.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ImportCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ImportCommand {
    /// Sysmon XML: FileCreate, FileDelete, FileDeleteDetected and
    /// FileCreateStreamHash rule groups.
    Sysmon(SysmonArgs),
}

#[derive(Debug, clap::Args)]
struct SysmonArgs {
    /// The Sysmon configuration (XML).
    config: PathBuf,
    /// Where to write the policy; default: standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        ImportCommand::Sysmon(a) => {
            let bytes = crate::policy_input::read_bounded(&a.config, 64 << 20)?;
            let xml = String::from_utf8(bytes)
                .with_context(|| format!("{}: not UTF-8 text", a.config.display()))?;
            let name = a
                .config
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let conv = convert_sysmon(&xml, &name)
                .with_context(|| format!("{}: not a Sysmon configuration", a.config.display()))?;
            match &a.output {
                Some(out) => {
                    if out.exists() && out.canonicalize().ok() == a.config.canonicalize().ok() {
                        bail!("refusing to overwrite the input {}", a.config.display());
                    }
                    std::fs::write(out, &conv.policy)
                        .with_context(|| format!("cannot write {}", out.display()))?
                }
                None => print!("{}", conv.policy),
            }
            eprint!("{}", conv.summary.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How faithfully a filter element was translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fidelity {
    Exact,
    Approximate,
}

/// Counts of what happened to the filter elements, with reasons.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub exact: usize,
    pub approximate: usize,
    pub skipped: usize,
    /// Reason → number of elements, for approximations and skips.
    pub reasons: BTreeMap<String, usize>,
    /// Event types present in the configuration that are not file events.
    pub other_types: usize,
}

impl Summary {
    pub fn render(&self) -> String {
        let mut s = format!(
            "sysmon import: {} exact, {} approximate, {} skipped ({} filter elements)\n",
            self.exact,
            self.approximate,
            self.skipped,
            self.exact + self.approximate + self.skipped
        );
        for (r, n) in &self.reasons {
            let _ = writeln!(s, "  {n:>5}  {r}");
        }
        if self.other_types > 0 {
            let _ = writeln!(
                s,
                "  ({} rule groups of other event types were ignored: not file-system events)",
                self.other_types
            );
        }
        s
    }
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Conversion {
    pub policy: String,
    pub summary: Summary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
// The variants are named as Sysmon names the XML elements.
#[allow(clippy::enum_variant_names)]
enum FileType {
    FileCreate,
    FileCreateStreamHash,
    FileDelete,
    FileDeleteDetected,
}

impl FileType {
    fn from_tag(t: &str) -> Option<Self> {
        Some(match t {
            "FileCreate" => FileType::FileCreate,
            "FileCreateStreamHash" => FileType::FileCreateStreamHash,
            "FileDelete" => FileType::FileDelete,
            "FileDeleteDetected" => FileType::FileDeleteDetected,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            FileType::FileCreate => "FileCreate (event 11)",
            FileType::FileCreateStreamHash => "FileCreateStreamHash (event 15)",
            FileType::FileDelete => "FileDelete (event 23)",
            FileType::FileDeleteDetected => "FileDeleteDetected (event 26)",
        }
    }
    fn op(self) -> &'static str {
        match self {
            FileType::FileCreate | FileType::FileCreateStreamHash => "create",
            FileType::FileDelete | FileType::FileDeleteDetected => "delete",
        }
    }
    /// Why every rule of this type is at best approximate, if it is.
    fn caveat(self) -> Option<&'static str> {
        match self {
            FileType::FileCreateStreamHash => Some(
                "FileCreateStreamHash: translated as file creates; fltpolicy events do not tell a stream creation from a file creation, and Sysmon's Hash/Contents are not available",
            ),
            _ => None,
        }
    }
}

/// One translated alternative (a filter element).
#[derive(Clone, Debug)]
struct Alt {
    cond: String,
    tag: Option<String>,
    fidelity: Fidelity,
    notes: Vec<String>,
    line: u32,
    terms: usize,
}

#[derive(Default)]
struct TypeRules {
    /// Whether an include (even an empty one) was seen.
    has_include: bool,
    /// Whether an exclude (even an empty one) was seen.
    has_exclude: bool,
    includes: Vec<Alt>,
    excludes: Vec<Alt>,
}

/// Converts a Sysmon configuration. Errors only when the text is not XML
/// or has no `Sysmon` root; everything inside is converted, approximated or
/// skipped with a reason.
pub fn convert_sysmon(xml: &str, source_name: &str) -> Result<Conversion> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .context("invalid XML")?;
    let root = doc.root_element();
    if !root.has_tag_name("Sysmon") {
        bail!(
            "the root element is <{}>, not <Sysmon>",
            root.tag_name().name()
        );
    }
    let schema = root.attribute("schemaversion").unwrap_or("?").to_string();
    let mut summary = Summary::default();
    let mut types: BTreeMap<FileType, TypeRules> = BTreeMap::new();
    let line_of = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row;
    for filtering in root.children().filter(|n| n.has_tag_name("EventFiltering")) {
        for group in filtering.children().filter(|n| n.is_element()) {
            // Event elements sit in RuleGroups or directly in EventFiltering.
            let (relation, events): (&str, Vec<roxmltree::Node>) =
                if group.has_tag_name("RuleGroup") {
                    (
                        group.attribute("groupRelation").unwrap_or("or"),
                        group.children().filter(|n| n.is_element()).collect(),
                    )
                } else {
                    ("or", vec![group])
                };
            for ev in events {
                let Some(ft) = FileType::from_tag(ev.tag_name().name()) else {
                    summary.other_types += 1;
                    continue;
                };
                let include = ev.attribute("onmatch").unwrap_or("include") != "exclude";
                let entry = types.entry(ft).or_default();
                if include {
                    entry.has_include = true;
                } else {
                    entry.has_exclude = true;
                }
                let children: Vec<roxmltree::Node> =
                    ev.children().filter(|n| n.is_element()).collect();
                let mut alts: Vec<Result<Alt, String>> = Vec::new();
                if relation.eq_ignore_ascii_case("and") && !children.is_empty() {
                    // One alternative: every filter element must match.
                    alts.push(conjunction(&children, ft, line_of(ev)).map(|mut a| {
                        a.notes.push("RuleGroup groupRelation=\"and\"".into());
                        a
                    }));
                } else {
                    for c in &children {
                        alts.push(element(*c, ft, line_of(*c)));
                    }
                }
                for a in alts {
                    match a {
                        Ok(mut a) => {
                            if let Some(c) = ft.caveat() {
                                a.fidelity = Fidelity::Approximate;
                                a.notes.push(c.to_string());
                            }
                            if a.fidelity == Fidelity::Exact {
                                summary.exact += 1;
                            } else {
                                summary.approximate += 1;
                                for n in a.notes.iter().filter(|n| !n.starts_with("RuleGroup")) {
                                    *summary
                                        .reasons
                                        .entry(format!("approximate: {n}"))
                                        .or_default() += 1;
                                }
                            }
                            let entry = types.entry(ft).or_default();
                            if include {
                                entry.includes.push(a);
                            } else {
                                entry.excludes.push(a);
                            }
                        }
                        Err(reason) => {
                            summary.skipped += 1;
                            *summary
                                .reasons
                                .entry(format!("skipped: {reason}"))
                                .or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    let policy = render(&types, &summary, &schema, source_name);
    Ok(Conversion { policy, summary })
}

/// `<Rule groupRelation=..>` or a single condition element.
fn element(n: roxmltree::Node, ft: FileType, line: u32) -> Result<Alt, String> {
    if n.has_tag_name("Rule") {
        let children: Vec<roxmltree::Node> = n.children().filter(|c| c.is_element()).collect();
        if children.is_empty() {
            return Err("an empty <Rule>".into());
        }
        let mut alt = if n
            .attribute("groupRelation")
            .unwrap_or("or")
            .eq_ignore_ascii_case("and")
        {
            conjunction(&children, ft, line)?
        } else {
            disjunction(&children, ft, line)?
        };
        if let Some(name) = n.attribute("name").filter(|s| !s.is_empty()) {
            alt.tag = Some(name.to_string());
        }
        return Ok(alt);
    }
    let (cond, fidelity, note, terms) = condition(n)?;
    Ok(Alt {
        cond,
        tag: n
            .attribute("name")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        fidelity,
        notes: note.into_iter().collect(),
        line,
        terms,
    })
}

fn combine(
    children: &[roxmltree::Node],
    ft: FileType,
    line: u32,
    joiner: &str,
) -> Result<Alt, String> {
    let mut parts = Vec::new();
    let mut fidelity = Fidelity::Exact;
    let mut notes = Vec::new();
    let mut tag = None;
    let mut terms = 0;
    for c in children {
        let a = element(*c, ft, line)?;
        fidelity = fidelity.max(a.fidelity);
        notes.extend(a.notes);
        tag = tag.or(a.tag);
        terms += a.terms;
        parts.push(format!("({})", a.cond));
    }
    Ok(Alt {
        cond: parts.join(joiner),
        tag,
        fidelity,
        notes,
        line,
        terms,
    })
}

fn conjunction(children: &[roxmltree::Node], ft: FileType, line: u32) -> Result<Alt, String> {
    combine(children, ft, line, " and ")
}

fn disjunction(children: &[roxmltree::Node], ft: FileType, line: u32) -> Result<Alt, String> {
    combine(children, ft, line, " or ")
}

/// A quoted `.pol` string (`""` escapes a quote).
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn qlist(vs: &[&str]) -> String {
    format!(
        "[{}]",
        vs.iter().map(|v| q(v)).collect::<Vec<_>>().join(", ")
    )
}

/// One condition element (`<TargetFilename condition="end with">.exe</...>`)
/// → (condition, fidelity, note, comparisons), or why it was skipped.
fn condition(n: roxmltree::Node) -> Result<(String, Fidelity, Option<String>, usize), String> {
    let field = n.tag_name().name();
    let op = n
        .attribute("condition")
        .unwrap_or("is")
        .to_ascii_lowercase();
    let value = n.text().unwrap_or("");
    let values: Vec<&str> = value.split(';').collect();
    let k = values.len();
    let f = match field {
        "TargetFilename" => "path",
        "Image" => "image",
        "ProcessId" => {
            let nums: Result<Vec<u64>, _> =
                values.iter().map(|v| v.trim().parse::<u64>()).collect();
            let Ok(nums) = nums else {
                return Err(format!("ProcessId compared with a non-number ({value:?})"));
            };
            let list = || {
                format!(
                    "[{}]",
                    nums.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let first = nums.first().copied().unwrap_or(0);
            let c = match op.as_str() {
                "is" => format!("pid == {first}"),
                "is not" => format!("pid != {first}"),
                "is any" => format!("pid in {}", list()),
                "less than" => format!("pid < {first}"),
                "more than" => format!("pid > {first}"),
                other => return Err(format!("condition \"{other}\" on ProcessId")),
            };
            return Ok((c, Fidelity::Exact, None, 1));
        }
        "User" => {
            return Err(
                "field User: the Windows driver does not capture the requestor's account".into(),
            )
        }
        other => return Err(format!("field {other}: not in fltpolicy's file events")),
    };
    let v = value;
    let c = match op.as_str() {
        "is" => (format!("{f} == {}", q(v)), 1),
        "is not" => (format!("{f} != {}", q(v)), 1),
        "is any" => (format!("{f} in {}", qlist(&values)), 1),
        "contains" => (format!("{f} contains {}", q(v)), 1),
        "contains any" => (format!("{f} contains any {}", qlist(&values)), k),
        "contains all" => (
            values
                .iter()
                .map(|x| format!("{f} contains {}", q(x)))
                .collect::<Vec<_>>()
                .join(" and "),
            k,
        ),
        "excludes" => (format!("{f} not contains {}", q(v)), 1),
        // "does not contain one or more of the values"
        "excludes any" => (
            format!(
                "not ({})",
                values
                    .iter()
                    .map(|x| format!("{f} contains {}", q(x)))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            k,
        ),
        // "does not contain any of the values"
        "excludes all" => (format!("{f} not contains any {}", qlist(&values)), k),
        "begin with" => (format!("{f} startswith {}", q(v)), 1),
        "not begin with" => (format!("{f} not startswith {}", q(v)), 1),
        "end with" => (format!("{f} endswith {}", q(v)), 1),
        "not end with" => (format!("{f} not endswith {}", q(v)), 1),
        "image" => {
            // A full path compares with the whole image (or path); a bare
            // name with its last component.
            let name_field = if f == "image" { "process" } else { "name" };
            if v.contains('\\') || v.contains('/') {
                (format!("{f} == {}", q(v)), 1)
            } else {
                (format!("{name_field} == {}", q(v)), 1)
            }
        }
        "less than" | "more than" => {
            return Err(format!(
                "condition \"{op}\" on a string: lexical order is not supported"
            ))
        }
        other => return Err(format!("unknown condition \"{other}\"")),
    };
    Ok((c.0, Fidelity::Exact, None, c.1))
}

/// Comparisons one `where`/`unless` may hold (`parse::MAX_CONDITION_TERMS`).
const MAX_TERMS: usize = fltpolicy_compiler::parse::MAX_CONDITION_TERMS;

fn render(
    types: &BTreeMap<FileType, TypeRules>,
    s: &Summary,
    schema: &str,
    source: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported by `fltpolicy import sysmon` from {source} (Sysmon schema {schema})."
    );
    out.push_str(
        "# Sysmon logs an event that matches an include filter and no exclude filter\n\
         # (exclude wins); a type with only exclude filters logs everything else.\n\
         # Here exclusions are `allow` rules (record nothing) placed before the\n\
         # `log` rules of the same operation. FileCreate/FileCreateStreamHash ->\n\
         # create, FileDelete/FileDeleteDetected -> delete. fltpolicy's `create`\n\
         # also covers opens that may create (FILE_OPEN_IF) of existing files.\n",
    );
    let _ = writeln!(
        out,
        "# Summary: {} exact, {} approximate, {} skipped.",
        s.exact, s.approximate, s.skipped
    );
    for (r, n) in &s.reasons {
        let _ = writeln!(out, "#   {n} {r}");
    }
    out.push_str("target windows\n");
    for op in ["create", "delete"] {
        let of_op: Vec<(&FileType, &TypeRules)> =
            types.iter().filter(|(t, _)| t.op() == op).collect();
        if of_op.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n# ---- {op} ----");
        // Which type keeps its exclusions as `allow` rules: the one with
        // the most of them.
        let primary = of_op
            .iter()
            .filter(|(_, r)| !r.excludes.is_empty())
            .max_by_key(|(_, r)| r.excludes.len())
            .map(|(t, _)| **t);
        // 1. Types without exclusions (and not the primary): their includes.
        for (t, r) in &of_op {
            if Some(**t) == primary || !r.excludes.is_empty() {
                continue;
            }
            emit_type_header(&mut out, **t, r);
            if r.has_include {
                for a in &r.includes {
                    emit(&mut out, "log", op, a, None);
                }
            } else if r.has_exclude {
                let _ = writeln!(
                    out,
                    "log {op}  # {}: exclude filter with no conditions: everything is logged",
                    t.name()
                );
            }
        }
        // 2. Secondary types with exclusions: `unless` on each rule.
        for (t, r) in &of_op {
            if Some(**t) == primary || r.excludes.is_empty() {
                continue;
            }
            emit_type_header(&mut out, **t, r);
            let terms: usize = r.excludes.iter().map(|a| a.terms).sum();
            let unless = (terms <= MAX_TERMS).then(|| {
                r.excludes
                    .iter()
                    .map(|a| format!("({})", a.cond))
                    .collect::<Vec<_>>()
                    .join(" or ")
            });
            if unless.is_none() {
                let _ = writeln!(out, "# APPROXIMATE: this type's {} exclusions are too many to attach to each rule; they are dropped", r.excludes.len());
            }
            if r.has_include {
                for a in &r.includes {
                    emit(&mut out, "log", op, a, unless.as_deref());
                }
            } else {
                match &unless {
                    Some(u) => {
                        let _ = writeln!(out, "log {op} unless {u}");
                    }
                    None => {
                        let _ = writeln!(out, "log {op}");
                    }
                }
            }
        }
        // 3. The primary type: allows, then logs (or everything).
        if let Some(t) = primary {
            let r = &types[&t];
            emit_type_header(&mut out, t, r);
            let logs_something = !r.has_include || !r.includes.is_empty();
            if logs_something {
                for a in &r.excludes {
                    emit(&mut out, "allow", op, a, None);
                }
            }
            if r.has_include {
                for a in &r.includes {
                    emit(&mut out, "log", op, a, None);
                }
            } else {
                let _ = writeln!(
                    out,
                    "log {op}  # {}: everything not excluded above",
                    t.name()
                );
            }
        }
    }
    out
}

fn emit_type_header(out: &mut String, t: FileType, r: &TypeRules) {
    let what = match (r.has_include, r.has_exclude) {
        (true, true) => "include and exclude filters",
        (true, false) => "include filters",
        (false, true) => "exclude filters only",
        (false, false) => "no filters",
    };
    let _ = writeln!(out, "# {}: {what}", t.name());
    if let Some(c) = t.caveat() {
        let _ = writeln!(out, "# APPROXIMATE (every rule of this type): {c}");
    }
    if r.has_include && r.includes.is_empty() {
        let _ = writeln!(
            out,
            "# (an include filter with no conditions: Sysmon logs nothing of this type)"
        );
    }
}

fn emit(out: &mut String, action: &str, op: &str, a: &Alt, unless: Option<&str>) {
    if a.fidelity == Fidelity::Approximate {
        let caveats: Vec<&str> = [FileType::FileCreateStreamHash]
            .iter()
            .filter_map(|t| t.caveat())
            .collect();
        for n in a
            .notes
            .iter()
            .filter(|n| !n.starts_with("RuleGroup") && !caveats.contains(&n.as_str()))
        {
            let _ = writeln!(out, "# APPROXIMATE (line {}): {n}", a.line);
        }
    }
    let _ = write!(out, "{action} {op} where {}", a.cond);
    if let Some(u) = unless {
        let _ = write!(out, " unless {u}");
    }
    if let Some(t) = &a.tag {
        // Tags are at most 256 bytes in records.
        let mut end = t.len().min(200);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        let _ = write!(out, " as {}", q(&t[..end]));
    }
    out.push('\n');
}

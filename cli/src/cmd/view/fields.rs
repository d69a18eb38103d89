//! Filter clauses on the record fields the policy language does not have:
//! `op`, `action`, `rule`, `tag`, `severity`, `time`.
//!
//! The viewer's filter is a policy condition (`process == "cat" and path
//! under /srv`, checked by the compiler) joined with `and` to any number of
//! these clauses:
//!
//! ```text
//! op == write            op in [write, delete]      op != read
//! action == deny         severity >= low            (info < low < high)
//! rule == 3              rule == 3@5a5a             (index @ policy hash prefix)
//! tag == "NO-ETC"        tag != ""
//! time >= "10:32"        time < "10:40:30"          (UTC time of day)
//! time >= "2026-12-03T10:32:00Z"                    (an instant)
//! ```
//!
//! They combine with `and` only (at the top level); `or`/`not` apply to
//! the policy condition. Severity: `deny` is high, `log` low, anything
//! else info.
use std::cmp::Ordering;

use fltpolicy_core::event::{Action, Op};

use super::app::{EventRow, FilterError};

/// One clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    field: Field,
    cmp: Cmp,
    values: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Op,
    Action,
    Rule,
    Tag,
    Severity,
    Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    In,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Op(Op),
    Action(Action),
    Rule(u32, Option<Vec<u8>>),
    Text(String),
    Severity(u8),
    /// Nanoseconds into the UTC day.
    TimeOfDay(u64),
    /// Nanoseconds since the epoch.
    Instant(u64),
}

const FIELDS: [(&str, Field); 6] = [
    ("op", Field::Op),
    ("action", Field::Action),
    ("rule", Field::Rule),
    ("tag", Field::Tag),
    ("severity", Field::Severity),
    ("time", Field::Time),
];

/// Splits `expr` at top-level ` and ` (outside quotes, brackets and
/// parentheses). Returns each part with its byte offset.
pub fn conjuncts(expr: &str) -> Vec<(usize, &str)> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => quoted = !quoted,
            b'\\' if quoted => i += 1,
            b'(' | b'[' if !quoted => depth += 1,
            b')' | b']' if !quoted => depth -= 1,
            _ if !quoted && depth == 0 && expr[i..].starts_with(" and ") => {
                out.push((start, &expr[start..i]));
                i += 5;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push((start, &expr[start..]));
    out
}

/// Whether `part` is a clause on one of these fields (its first word).
pub fn is_clause(part: &str) -> bool {
    let w = part
        .trim_start()
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("");
    FIELDS.iter().any(|(n, _)| *n == w)
}

fn err(msg: String, at: usize, help: &str) -> FilterError {
    FilterError {
        message: msg,
        offset: Some(at),
        help: Some(help.to_owned()),
    }
}

const HELP: &str = "op|action|rule|tag|severity|time, then == != in [..] (< <= > >= for rule, severity, time); combine with `and`";

/// Parses one clause; `at` is its offset in the whole expression.
pub fn parse_clause(part: &str, at: usize) -> Result<Clause, FilterError> {
    let lead = part.len() - part.trim_start().len();
    let text = part.trim();
    let at = at + lead;
    let name_len = text
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(text.len());
    let field = FIELDS
        .iter()
        .find(|(n, _)| *n == &text[..name_len])
        .map(|(_, f)| *f)
        .ok_or_else(|| err("unknown field".into(), at, HELP))?;
    let rest = text[name_len..].trim_start();
    let rest_at = at + (text.len() - rest.len());
    let (cmp, rest) = [
        ("==", Cmp::Eq),
        ("!=", Cmp::Ne),
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("in ", Cmp::In),
    ]
    .iter()
    .find_map(|(t, c)| rest.strip_prefix(t).map(|r| (*c, r.trim_start())))
    .ok_or_else(|| err("expected ==, !=, in, <, <=, > or >=".into(), rest_at, HELP))?;
    let value_at = at + (text.len() - rest.len());
    let rest = rest.trim_end();
    let ordered = matches!(field, Field::Rule | Field::Severity | Field::Time);
    if matches!(cmp, Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge) && !ordered {
        return Err(err(
            "this field is compared with ==, != or in only".into(),
            rest_at,
            HELP,
        ));
    }
    let raw: Vec<&str> = if cmp == Cmp::In {
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| err("`in` takes a list: [a, b]".into(), value_at, HELP))?;
        inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        if rest.split_whitespace().count() > 1 && !rest.starts_with('"') {
            return Err(err(
                "these fields combine with `and` only (or/not apply to the policy condition)"
                    .into(),
                value_at,
                HELP,
            ));
        }
        vec![rest]
    };
    if raw.is_empty() {
        return Err(err("a value is missing".into(), value_at, HELP));
    }
    let values = raw
        .iter()
        .map(|v| value(field, v.trim_matches('"')).map_err(|m| err(m, value_at, HELP)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Clause { field, cmp, values })
}

fn value(field: Field, v: &str) -> Result<Value, String> {
    Ok(match field {
        Field::Op => Value::Op(
            Op::ALL
                .into_iter()
                .find(|o| o.name() == v)
                .ok_or_else(|| format!("unknown operation `{v}`"))?,
        ),
        Field::Action => Value::Action(match v {
            "log" => Action::Log,
            "deny" => Action::Deny,
            "allow" => Action::Allow,
            "none" => Action::None,
            _ => return Err(format!("unknown action `{v}` (log, deny, allow)")),
        }),
        Field::Rule => {
            let (n, hash) = match v.split_once('@') {
                Some((n, h)) => (n, Some(h)),
                None => (v, None),
            };
            let n = n
                .parse()
                .map_err(|_| format!("`{v}`: a rule is N or N@HASH"))?;
            let hash = match hash {
                None => None,
                Some(h) => Some(hex_prefix(h).ok_or_else(|| format!("`{h}`: hex digits"))?),
            };
            Value::Rule(n, hash)
        }
        Field::Tag => Value::Text(v.to_owned()),
        Field::Severity => Value::Severity(match v {
            "info" => 0,
            "low" => 1,
            "high" => 2,
            _ => return Err(format!("unknown severity `{v}` (info, low, high)")),
        }),
        Field::Time => time_value(v).ok_or_else(|| {
            format!("`{v}`: a time is HH:MM[:SS[.fff]] (UTC) or an RFC 3339 instant")
        })?,
    })
}

fn hex_prefix(h: &str) -> Option<Vec<u8>> {
    if h.is_empty() || h.len() % 2 != 0 || h.len() > 32 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// A jump target: nanoseconds into the UTC day (`Ok(false, ns)`) or
/// since the epoch (`Ok(true, ns)`), from `HH:MM[:SS[.fff]]` or RFC 3339.
pub fn parse_time(v: &str) -> Option<(bool, u64)> {
    match time_value(v.trim().trim_matches('"'))? {
        Value::TimeOfDay(t) => Some((false, t)),
        Value::Instant(t) => Some((true, t)),
        _ => None,
    }
}

fn time_value(v: &str) -> Option<Value> {
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        return Some(Value::Instant(d.as_nanos() as u64));
    }
    let mut parts = v.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let s: f64 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0.0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || !(0.0..60.0).contains(&s) {
        return None;
    }
    Some(Value::TimeOfDay(
        (h * 3600 + m * 60) * 1_000_000_000 + (s * 1e9) as u64,
    ))
}

fn severity(e: &EventRow) -> u8 {
    match e.action.action() {
        Some(Action::Deny) => 2,
        Some(Action::Log) => 1,
        _ => 0,
    }
}

impl Clause {
    /// Whether the record satisfies the clause.
    pub fn matches(&self, e: &EventRow, time_ns: u64) -> bool {
        let ord = |v: &Value| -> Option<Ordering> {
            match (self.field, v) {
                (Field::Op, Value::Op(o)) => Some(if e.op == Some(*o) {
                    Ordering::Equal
                } else {
                    Ordering::Less
                }),
                (Field::Action, Value::Action(a)) => Some(if e.action.action() == Some(*a) {
                    Ordering::Equal
                } else {
                    Ordering::Less
                }),
                (Field::Rule, Value::Rule(n, hash)) => {
                    let r = e.rule?;
                    if hash.as_ref().is_some_and(|h| !e.policy_hash.starts_with(h)) {
                        return None;
                    }
                    Some(r.cmp(n))
                }
                (Field::Tag, Value::Text(t)) => Some(if *e.tag == **t {
                    Ordering::Equal
                } else {
                    Ordering::Less
                }),
                (Field::Severity, Value::Severity(s)) => Some(severity(e).cmp(s)),
                (Field::Time, Value::TimeOfDay(t)) => Some((time_ns % DAY_NS).cmp(t)),
                (Field::Time, Value::Instant(t)) => Some(time_ns.cmp(t)),
                _ => None,
            }
        };
        let is = |v: &Value, want: fn(Ordering) -> bool| ord(v).is_some_and(want);
        match self.cmp {
            Cmp::Eq | Cmp::In => self.values.iter().any(|v| is(v, Ordering::is_eq)),
            Cmp::Ne => !self.values.iter().any(|v| is(v, Ordering::is_eq)),
            Cmp::Lt => self.values.iter().all(|v| is(v, Ordering::is_lt)),
            Cmp::Le => self.values.iter().all(|v| is(v, Ordering::is_le)),
            Cmp::Gt => self.values.iter().all(|v| is(v, Ordering::is_gt)),
            Cmp::Ge => self.values.iter().all(|v| is(v, Ordering::is_ge)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::app::tests::ev;
    use super::*;
    use fltpolicy_core::record::ActionCode;

    fn row(op: Op, action: Action, rule: u32, tag: &str) -> (EventRow, u64) {
        let r = ev(1, 10 * 3600 + 35 * 60, "/bin/cat", op, "/srv/a");
        let mut e = r.event().unwrap().clone();
        e.action = ActionCode::from(action);
        e.rule = Some(rule);
        e.tag = tag.into();
        e.policy_hash = [0x5a; 16];
        (e, r.time_ns)
    }

    fn m(expr: &str, r: &(EventRow, u64)) -> bool {
        parse_clause(expr, 0)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .matches(&r.0, r.1)
    }

    #[test]
    fn clauses_select_by_record_fields() {
        let deny = row(Op::Open, Action::Deny, 3, "NO-ETC");
        let log = row(Op::Write, Action::Log, 1, "");
        assert!(m("op == open", &deny) && !m("op == open", &log));
        assert!(m("op in [write, delete]", &log) && !m("op in [write, delete]", &deny));
        assert!(m("op != open", &log));
        assert!(m("action == deny", &deny) && !m("action == deny", &log));
        assert!(m("rule == 3", &deny) && m("rule == 3@5a5a", &deny));
        assert!(!m("rule == 3@ffff", &deny), "another policy's rule 3");
        assert!(m("rule >= 2", &deny) && !m("rule >= 2", &log));
        assert!(m(r#"tag == "NO-ETC""#, &deny) && m(r#"tag == """#, &log));
        assert!(m("severity >= low", &deny) && m("severity >= low", &log));
        assert!(m("severity == high", &deny) && !m("severity == high", &log));
        // The rows are at 10:35 UTC.
        assert!(m(r#"time >= "10:32""#, &deny) && !m(r#"time < "10:32""#, &deny));
        assert!(m(r#"time < "10:35:01""#, &deny));
        assert!(m(r#"time >= "1970-01-01T10:00:00Z""#, &deny));
        assert!(!m(r#"time >= "2026-01-01T00:00:00Z""#, &deny));
    }

    #[test]
    fn bad_clauses_are_located_errors() {
        for (expr, at) in [
            ("op == bogus", 6),
            ("action >= deny", 7),
            ("time >= \"25:00\"", 8),
            ("op == write or op == read", 6),
            ("rule == x", 8),
        ] {
            let e = parse_clause(expr, 10).unwrap_err();
            assert_eq!(e.offset, Some(10 + at), "{expr}: {e}");
        }
    }

    #[test]
    fn conjuncts_split_at_top_level_and_only() {
        let parts: Vec<&str> =
            conjuncts(r#"path under "/a and b" and (x or y and z) and op == write"#)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
        assert_eq!(
            parts,
            [r#"path under "/a and b""#, "(x or y and z)", "op == write"]
        );
        assert!(is_clause(" op == write") && !is_clause("process == \"op\""));
    }
}

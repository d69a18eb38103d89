//! The reference interpreter: evaluates the checked IR directly.
//!
//! It is the test oracle for the bytecode VM, so it is written to be
//! obviously right rather than fast: it allocates (folded copies of the
//! event's strings), tries every rule in order without any index, and
//! matches globs by plain recursive backtracking. It shares only the
//! definition of case folding (`fltpolicy_core::text::fold`) with the VM.
use fltpolicy_core::event::{Action, EventView, Target};
use fltpolicy_core::text::fold;

use crate::ir::{Cond, NumField, NumOp, Policy, StrField, Test};

/// The oracle's verdict (owned, so it can outlive the policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleVerdict {
    pub action: Action,
    pub rule: Option<u32>,
    pub line: u32,
    pub tag: String,
}

impl OracleVerdict {
    fn none() -> Self {
        OracleVerdict {
            action: Action::None,
            rule: None,
            line: 0,
            tag: String::new(),
        }
    }
}

/// Evaluates `ev` against `policy`: the first rule (source order) whose ops
/// include the event's op, whose `under` holds and whose condition holds.
pub fn evaluate(policy: &Policy, ev: &EventView<'_>) -> OracleVerdict {
    let Some(op) = ev.op else {
        return OracleVerdict::none();
    };
    let ctx = Ctx::new(policy.target, ev);
    for rule in &policy.rules {
        if !rule.ops.contains(op) {
            continue;
        }
        if let Some(u) = &rule.under {
            if !ctx.under(&ctx.field(StrField::Path), u) {
                continue;
            }
        }
        if rule.cond.as_ref().is_none_or(|c| ctx.cond(c)) {
            return OracleVerdict {
                action: rule.action,
                rule: Some(rule.index),
                line: rule.line,
                tag: rule.tag.clone(),
            };
        }
    }
    OracleVerdict::none()
}

/// Evaluates a single condition (used by filters).
pub fn eval_cond(target: Target, cond: &Cond, ev: &EventView<'_>) -> bool {
    Ctx::new(target, ev).cond(cond)
}

struct Ctx<'e> {
    target: Target,
    ev: &'e EventView<'e>,
    sep: char,
}

impl<'e> Ctx<'e> {
    fn new(target: Target, ev: &'e EventView<'e>) -> Self {
        Ctx {
            target,
            ev,
            sep: target.separator() as char,
        }
    }

    /// The field's value, folded on Windows.
    fn field(&self, f: StrField) -> String {
        let sep = self.sep;
        let path = self.ev.path;
        let name = path.rsplit(sep).next().unwrap_or("");
        let raw: String = match f {
            StrField::Path => path.to_owned(),
            StrField::Name => name.to_owned(),
            StrField::Ext => match name.rfind('.') {
                Some(i) => name[i..].to_owned(),
                None => String::new(),
            },
            StrField::Dir => match path.rfind(sep) {
                None => String::new(),
                Some(i) => {
                    let head = &path[..i];
                    let drive = head.len() == 2 && head.ends_with(':');
                    if head.is_empty() || drive {
                        format!("{head}{sep}")
                    } else {
                        head.to_owned()
                    }
                }
            },
            StrField::Image => self.ev.image.to_owned(),
            StrField::Process => self.ev.image.rsplit(sep).next().unwrap_or("").to_owned(),
            StrField::User => self.ev.user.to_owned(),
        };
        if self.target.case_insensitive() {
            fold(&raw)
        } else {
            raw
        }
    }

    fn num(&self, f: NumField) -> u64 {
        match f {
            NumField::Pid => self.ev.pid,
            NumField::Ppid => self.ev.ppid,
            NumField::Size => self.ev.size,
        }
    }

    fn under(&self, s: &str, c: &str) -> bool {
        s == c
            || s.starts_with(&format!("{c}{}", self.sep))
            || (c.ends_with(self.sep) && s.starts_with(c))
    }

    fn cond(&self, c: &Cond) -> bool {
        match c {
            Cond::And(cs) => cs.iter().all(|c| self.cond(c)),
            Cond::Or(cs) => cs.iter().any(|c| self.cond(c)),
            Cond::Not(c) => !self.cond(c),
            Cond::Test(t) => self.test(t),
        }
    }

    fn test(&self, t: &Test) -> bool {
        match t {
            Test::StrEq {
                field,
                value,
                negate,
            } => (self.field(*field) == *value) != *negate,
            Test::Under { field, value } => self.under(&self.field(*field), value),
            Test::StartsWith { field, value } => self.field(*field).starts_with(value.as_str()),
            Test::EndsWith { field, value } => self.field(*field).ends_with(value.as_str()),
            Test::Contains { field, value } => self.field(*field).contains(value.as_str()),
            Test::Matches { field, pattern } => {
                let s = self.field(*field);
                let sc: Vec<&str> = s.split(self.sep).collect();
                let pc: Vec<&str> = pattern.split(self.sep).collect();
                glob_components(&sc, &pc)
            }
            Test::StrIn { field, values } => {
                let s = self.field(*field);
                values.contains(&s)
            }
            Test::Num { field, op, value } => {
                let v = self.num(*field);
                match op {
                    NumOp::Eq => v == *value,
                    NumOp::Ne => v != *value,
                    NumOp::Lt => v < *value,
                    NumOp::Le => v <= *value,
                    NumOp::Gt => v > *value,
                    NumOp::Ge => v >= *value,
                }
            }
            Test::NumIn { field, values } => values.contains(&self.num(*field)),
            Test::Paging { value } => self.ev.paging == *value,
        }
    }
}

fn glob_components(s: &[&str], p: &[&str]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((&"**", rest)) => (0..=s.len()).any(|k| glob_components(&s[k..], rest)),
        Some((pc, rest)) => match s.split_first() {
            Some((sc, srest)) => {
                let sv: Vec<char> = sc.chars().collect();
                let pv: Vec<char> = pc.chars().collect();
                glob_chars(&sv, &pv) && glob_components(srest, rest)
            }
            None => false,
        },
    }
}

fn glob_chars(s: &[char], p: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|k| glob_chars(&s[k..], rest)),
        Some(('?', rest)) => !s.is_empty() && glob_chars(&s[1..], rest),
        Some((c, rest)) => s.first() == Some(c) && glob_chars(&s[1..], rest),
    }
}

//! The event view: what the evaluator may read about one file-system operation.
//!
//! An [`EventView`] only borrows. The driver fills it from non-paged memory
//! (the name cached in the stream-handle context at post-create, the image
//! path from the pid table), the Linux engine from fanotify and `/proc`. The
//! evaluator derives `name`, `ext`, `dir` and `process` from `path` and
//! `image` by slicing, so nothing is copied or allocated per event.

use serde::{Deserialize, Serialize};

/// A file-system operation, as the policy language names it.
///
/// The discriminants are stable: they appear in images (as bits of an
/// [`OpSet`]) and in audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Op {
    Create = 0,
    Open = 1,
    Read = 2,
    Write = 3,
    Rename = 4,
    Delete = 5,
    SetInfo = 6,
    Close = 7,
}

impl Op {
    /// Every operation, in discriminant order.
    pub const ALL: [Op; 8] = [
        Op::Create,
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Rename,
        Op::Delete,
        Op::SetInfo,
        Op::Close,
    ];

    /// The keyword used in policies and in exported logs.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Rename => "rename",
            Op::Delete => "delete",
            Op::SetInfo => "setinfo",
            Op::Close => "close",
        }
    }

    /// Parses a keyword (singular or plural, ASCII case-insensitive).
    pub fn from_name(s: &str) -> Option<Op> {
        let singular = match s.as_bytes().last() {
            Some(b's' | b'S') if s.len() > 1 => s.get(..s.len() - 1).unwrap_or(s),
            _ => s,
        };
        Op::ALL.into_iter().find(|op| {
            op.name().eq_ignore_ascii_case(s) || op.name().eq_ignore_ascii_case(singular)
        })
    }

    /// Decodes a stable discriminant.
    pub const fn from_u8(v: u8) -> Option<Op> {
        if (v as usize) < Op::ALL.len() {
            Some(Op::ALL[v as usize])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_singular_plural_any_case() {
        assert_eq!(Op::from_name("writes"), Some(Op::Write));
        assert_eq!(Op::from_name("WRITES"), Some(Op::Write));
        assert_eq!(Op::from_name("Close"), Some(Op::Close));
        assert_eq!(Op::from_name("setinfos"), Some(Op::SetInfo));
        assert_eq!(Op::from_name("s"), None);
        assert_eq!(Op::from_name("explode"), None);
    }
}

/// A set of operations, one bit per [`Op`] discriminant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpSet(pub u8);

impl OpSet {
    pub const EMPTY: OpSet = OpSet(0);
    pub const ALL: OpSet = OpSet(0xff);

    pub const fn single(op: Op) -> OpSet {
        OpSet(1 << op as u8)
    }
    pub const fn with(self, op: Op) -> OpSet {
        OpSet(self.0 | 1 << op as u8)
    }
    pub const fn contains(self, op: Op) -> bool {
        self.0 & (1 << op as u8) != 0
    }
    pub const fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Op> {
        Op::ALL.into_iter().filter(move |op| self.contains(*op))
    }
}

/// What a rule decides.
///
/// `None` means no rule matched: the operation proceeds and nothing is
/// recorded. The discriminants are stable (images and audit records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Action {
    None = 0,
    Allow = 1,
    Log = 2,
    Deny = 3,
}

impl Action {
    pub const fn name(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Allow => "allow",
            Action::Log => "log",
            Action::Deny => "deny",
        }
    }
    pub const fn from_u8(v: u8) -> Option<Action> {
        match v {
            0 => Some(Action::None),
            1 => Some(Action::Allow),
            2 => Some(Action::Log),
            3 => Some(Action::Deny),
            _ => None,
        }
    }
    /// Whether the decision produces an audit record.
    pub const fn records(self) -> bool {
        matches!(self, Action::Log | Action::Deny)
    }
}

/// The platform a policy was compiled for. It fixes path syntax and
/// comparison rules: Windows compares paths and process names
/// case-insensitively with `\` as separator; Linux is byte-exact with `/`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Target {
    #[default]
    Windows = 0,
    Linux = 1,
}

impl Target {
    pub const fn name(self) -> &'static str {
        match self {
            Target::Windows => "windows",
            Target::Linux => "linux",
        }
    }
    pub const fn from_u8(v: u8) -> Option<Target> {
        match v {
            0 => Some(Target::Windows),
            1 => Some(Target::Linux),
            _ => None,
        }
    }
    /// The path separator of the platform.
    pub const fn separator(self) -> u8 {
        match self {
            Target::Windows => b'\\',
            Target::Linux => b'/',
        }
    }
    /// Whether string comparisons on paths and names ignore case.
    pub const fn case_insensitive(self) -> bool {
        matches!(self, Target::Windows)
    }
}

/// One operation as the evaluator sees it. Every field borrows; missing
/// facts take neutral values (empty strings, zero).
///
/// `path` and `image` are UTF-8 full paths in the target's syntax
/// (`C:\Data\a.txt`, `/srv/data/a.txt`); a Windows driver converts the
/// normalized UTF-16 name once, at post-create, and caches the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventView<'a> {
    pub op: Option<Op>,
    pub path: &'a str,
    pub pid: u64,
    pub ppid: u64,
    /// Full path of the process image (`C:\Windows\System32\robocopy.exe`).
    pub image: &'a str,
    /// The account: a user name, a SID string, or a numeric uid as text.
    pub user: &'a str,
    /// File size, or the transfer length for reads and writes.
    pub size: u64,
    /// True for paging I/O (Windows) — never true on Linux.
    pub paging: bool,
}

impl<'a> EventView<'a> {
    /// An event for `op` on `path` with every other field neutral.
    pub fn new(op: Op, path: &'a str) -> Self {
        EventView {
            op: Some(op),
            path,
            ..Default::default()
        }
    }
}

/// The result of evaluating one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict<'p> {
    pub action: Action,
    /// 1-based index of the deciding rule in source order, `None` when no
    /// rule matched.
    pub rule: Option<u32>,
    /// Source line of the deciding rule (0 when none matched).
    pub line: u32,
    /// The rule's `as "TAG"`, or the empty string.
    pub tag: &'p str,
}

impl Verdict<'_> {
    /// The verdict when no rule matches.
    pub const NO_MATCH: Verdict<'static> = Verdict {
        action: Action::None,
        rule: None,
        line: 0,
        tag: "",
    };
}

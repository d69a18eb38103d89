//! Which filesystems to mark and with which event bits, derived from the
//! policy's facts (or `--watch`), and the translation between fanotify bits
//! and policy operations.
//!
//! | policy op | notification bit(s) | permission bit (deny) |
//! |-----------|---------------------|-----------------------|
//! | create    | `FAN_CREATE`        | — (logged only) |
//! | delete    | `FAN_DELETE`        | — (logged only) |
//! | rename    | `FAN_RENAME` (5.17+; else `FAN_MOVED_FROM`) | — (logged only) |
//! | write     | `FAN_MODIFY`        | — (logged only) |
//! | setinfo   | `FAN_ATTRIB`        | — (logged only) |
//! | close     | `FAN_CLOSE_WRITE`, `FAN_CLOSE_NOWRITE` | — (logged only) |
//! | open      | `FAN_OPEN`          | `FAN_OPEN_PERM` (also `FAN_OPEN_EXEC_PERM` when seen) |
//! | read      | `FAN_ACCESS`        | `FAN_ACCESS_PERM` |
//!
//! When an operation can be denied, it is taken from the permission group
//! only (its notification bit is not requested), so it is recorded once.
use std::path::{Path, PathBuf};

use fltpolicy_core::event::{Op, OpSet};

use crate::sys::fanotify::mask;

/// Notification bits for `ops`. `FAN_CREATE | FAN_DELETE | FAN_RENAME |
/// FAN_ONDIR` are always included: directory creates, renames and deletes
/// keep the namespace mirror ([`crate::mirror`]) current. (The kernel has
/// no "directories only" bit, so this also reports file creates and
/// deletes; they are filtered before any lookup.)
pub fn notify_mask(ops: OpSet, rename_bit: u64) -> u64 {
    let mut m = rename_bit | mask::ONDIR | mask::CREATE | mask::DELETE;
    for op in ops.iter() {
        m |= match op {
            Op::Create => mask::CREATE,
            Op::Delete => mask::DELETE,
            Op::Rename => rename_bit,
            Op::Write => mask::MODIFY,
            Op::SetInfo => libc::FAN_ATTRIB,
            Op::Close => mask::CLOSE_WRITE | mask::CLOSE_NOWRITE,
            Op::Open => mask::OPEN,
            Op::Read => mask::ACCESS,
        };
    }
    m
}

/// Permission bits for the deny-able operations in `deny_ops`.
pub fn permission_mask(deny_ops: OpSet) -> u64 {
    let mut m = 0;
    if deny_ops.contains(Op::Open) {
        m |= mask::OPEN_PERM;
    }
    if deny_ops.contains(Op::Read) {
        m |= mask::ACCESS_PERM;
    }
    m
}

/// Operations the permission group takes over for `perm_mask`.
pub fn permission_ops(perm_mask: u64) -> OpSet {
    let mut s = OpSet::EMPTY;
    if perm_mask & mask::OPEN_PERM != 0 {
        s = s.with(Op::Open);
    }
    if perm_mask & mask::ACCESS_PERM != 0 {
        s = s.with(Op::Read);
    }
    s
}

/// The operations one notification event carries, in the order they
/// happened for one file (merged events OR their bits together).
pub fn ops_of_notification(m: u64) -> impl Iterator<Item = Op> {
    [
        (mask::CREATE, Op::Create),
        (mask::OPEN, Op::Open),
        (mask::ACCESS, Op::Read),
        (mask::MODIFY, Op::Write),
        (libc::FAN_ATTRIB, Op::SetInfo),
        (mask::CLOSE_WRITE | mask::CLOSE_NOWRITE, Op::Close),
        (mask::RENAME | mask::MOVED_FROM, Op::Rename),
        (mask::DELETE, Op::Delete),
    ]
    .into_iter()
    .filter(move |(bit, _)| m & bit != 0)
    .map(|(_, op)| op)
}

/// The operation of a permission event.
pub fn op_of_permission(m: u64) -> Option<Op> {
    if m & (mask::OPEN_PERM | mask::OPEN_EXEC_PERM) != 0 {
        Some(Op::Open)
    } else if m & mask::ACCESS_PERM != 0 {
        Some(Op::Read)
    } else {
        None
    }
}

/// The existing directory to mark for `root`: the path itself or its
/// nearest existing ancestor (a policy may name a directory that does not
/// exist yet; it will be on the filesystem of its ancestor).
pub fn mark_point(root: &Path) -> PathBuf {
    let mut p = root.to_path_buf();
    loop {
        if p.exists() {
            return p;
        }
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
}

/// Whether `path` is `root` or below it at a `/` boundary.
pub fn is_under(path: &str, root: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_ops() {
        let m = notify_mask(OpSet::single(Op::Write), mask::RENAME);
        assert_eq!(
            m,
            mask::MODIFY | mask::RENAME | mask::ONDIR | mask::CREATE | mask::DELETE
        );
        assert_eq!(
            permission_mask(OpSet::single(Op::Open).with(Op::Delete)),
            mask::OPEN_PERM
        );
        assert_eq!(
            permission_ops(mask::OPEN_PERM | mask::ACCESS_PERM),
            OpSet::single(Op::Open).with(Op::Read)
        );
        let ops: Vec<Op> =
            ops_of_notification(mask::CLOSE_WRITE | mask::MODIFY | mask::OPEN).collect();
        assert_eq!(ops, vec![Op::Open, Op::Write, Op::Close]);
        assert_eq!(op_of_permission(mask::OPEN_EXEC_PERM), Some(Op::Open));
    }

    #[test]
    fn under_is_component_bounded() {
        assert!(is_under("/srv/data/a", "/srv/data"));
        assert!(is_under("/srv/data", "/srv/data"));
        assert!(!is_under("/srv/database", "/srv/data"));
        assert!(is_under("/x", "/"));
        assert_eq!(
            mark_point(Path::new("/definitely/not/here")),
            PathBuf::from("/")
        );
    }
}

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
///
/// `FAN_OPEN_EXEC` is always included too: it tells which image a process
/// executes, in order with its file events ([`crate::procinfo`]).
pub fn notify_mask(ops: OpSet, rename_bit: u64) -> u64 {
    let mut m = rename_bit | mask::ONDIR | mask::CREATE | mask::DELETE | mask::OPEN_EXEC;
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

/// Local filesystem types whose executables the engine watches for
/// `FAN_OPEN_EXEC` (exec-time process images), besides the policy's own.
/// Network and pseudo filesystems are left alone (a mark there could stall
/// or is refused).
const EXEC_FS_TYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "f2fs", "vfat", "exfat", "zfs",
    "squashfs", "erofs", "jfs", "reiserfs",
];

/// Mount points of the local filesystems executables may live on, from
/// `/proc/self/mountinfo` text.
pub fn exec_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options ... - fstype source super-options
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let Some(fstype) = right.split(' ').next() else {
            continue;
        };
        if EXEC_FS_TYPES.contains(&fstype) && !point.contains('\\') {
            out.push(PathBuf::from(point));
        }
    }
    out
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
            mask::MODIFY
                | mask::RENAME
                | mask::ONDIR
                | mask::CREATE
                | mask::DELETE
                | mask::OPEN_EXEC
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
    fn exec_mounts_are_local_filesystems() {
        let mi = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                  23 22 0:5 / /proc rw - proc proc rw\n\
                  24 22 0:30 / /tmp/x rw - tmpfs tmpfs rw\n\
                  25 22 0:31 / /mnt/n rw - nfs4 srv:/e rw\n";
        assert_eq!(
            exec_mount_points(mi),
            vec![PathBuf::from("/"), PathBuf::from("/tmp/x")]
        );
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

//! The namespace mirror: directory identity (fanotify file handle) →
//! (parent directory, name), kept by the notification thread in the order
//! the kernel queued the events.
//!
//! Each directory create, rename and delete updates the mirror *when the
//! thread processes that event*, after the events queued before it were
//! resolved, so every event is resolved against the namespace as it was
//! when the kernel queued it — not as it is when the engine reads it
//! (a directory renamed or removed since). A directory rename changes one
//! node; every path below it follows, and nothing is cleared.
//!
//! The trees a policy names are scanned at start (`name_to_handle_at` per
//! directory), so `open_by_handle_at` — which can only say where a
//! directory is *now*, and nothing once it is gone — is needed only for a
//! directory first seen outside those trees (it is then anchored at the
//! path the kernel gives). Directories created after the start are learnt
//! from their create events (`FAN_REPORT_TARGET_FID` names the new
//! directory's handle), wherever they are on the filesystem, so a tree
//! moved into a policy's scope is known too.
//!
//! Whether an unresolvable event could have been in the policy's scope is
//! decided by [`Mirror::complete`]: after a successful scan and with no
//! queue overflow since, every directory under the policy's roots is in
//! the mirror, so an unknown directory is outside them.
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::handle;

/// Most directories mirrored. Beyond it new directories are not added and
/// the mirror stops claiming completeness (unresolvable events become drop
/// records again), instead of growing without bound.
pub const MAX_NODES: usize = 1 << 20;
/// Most directories one scan of the policy's trees visits.
pub const MAX_SCAN: usize = 250_000;
/// Removed directories kept resolvable ([`Mirror::unlink`]).
pub const GRAVEYARD: usize = 16_384;

#[derive(Debug, Clone)]
struct Node {
    /// `None`: an anchor; `name` is then its full path.
    parent: Option<u64>,
    name: Box<[u8]>,
}

/// Directory handle key → node, node id → (parent id, name).
#[derive(Debug, Default)]
pub struct Mirror {
    ids: HashMap<Box<[u8]>, u64>,
    nodes: HashMap<u64, Node>,
    next: u64,
    /// Anchored nodes: id → key (to forget them when an ancestor moves).
    anchors: HashMap<u64, Box<[u8]>>,
    /// Removed directories, oldest first: kept resolvable for a while
    /// (see [`Mirror::unlink`]).
    graveyard: std::collections::VecDeque<Box<[u8]>>,
    /// Every directory under the scanned roots is known.
    complete: bool,
    roots: Vec<Vec<u8>>,
}

impl Mirror {
    pub fn new() -> Mirror {
        Mirror::default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether an unknown directory is certainly outside the scanned roots.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Drops everything (queue overflow: events that moved directories may
    /// have been lost); [`Mirror::scan`] again to become complete.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.nodes.clear();
        self.anchors.clear();
        self.graveyard.clear();
        self.complete = false;
    }

    fn add(&mut self, key: &[u8], node: Node) -> Option<u64> {
        if let Some(&id) = self.ids.get(key) {
            if node.parent.is_none() {
                self.anchors.insert(id, key.into());
            } else {
                self.anchors.remove(&id);
            }
            self.nodes.insert(id, node);
            return Some(id);
        }
        if self.nodes.len() >= MAX_NODES {
            self.complete = false;
            return None;
        }
        self.next += 1;
        let id = self.next;
        self.ids.insert(key.into(), id);
        if node.parent.is_none() {
            self.anchors.insert(id, key.into());
        }
        self.nodes.insert(id, node);
        Some(id)
    }

    /// A directory at `old` moved: anchors below it (directories first
    /// seen outside the scanned trees, placed by their path then) are
    /// stale; forget them so they are placed again when next seen.
    pub fn forget_anchors_under(&mut self, old: &[u8]) {
        let stale: Vec<u64> = self
            .anchors
            .iter()
            .filter(|(id, _)| {
                self.nodes.get(id).is_some_and(|n| {
                    n.name.starts_with(old) && n.name.get(old.len()) == Some(&b'/')
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(key) = self.anchors.remove(&id) {
                self.ids.remove(&key);
                self.nodes.remove(&id);
            }
        }
    }

    /// Reads the tree below directory `key` (one the mirror had not seen,
    /// just moved into a known directory). Clears [`Mirror::complete`]
    /// when it cannot be read entirely.
    pub fn scan_subtree(&mut self, key: &[u8]) {
        let mut path = Vec::new();
        if !self.path_of(key, &mut path) {
            self.complete = false;
            return;
        }
        let mut budget = MAX_SCAN;
        let p = Path::new(std::ffi::OsStr::from_bytes(&path)).to_path_buf();
        if !self.scan_below(&p, key, &mut budget) {
            self.complete = false;
        }
    }

    /// Records the directory at absolute `path` (an anchor) under `key`.
    pub fn anchor(&mut self, key: &[u8], path: &[u8]) {
        self.add(
            key,
            Node {
                parent: None,
                name: path.into(),
            },
        );
    }

    /// A directory `name` was created (or moved) into `parent`: it is `key`.
    /// `false` when the parent is unknown (nothing recorded).
    pub fn link(&mut self, parent: &[u8], name: &[u8], key: &[u8]) -> bool {
        let Some(&pid) = self.ids.get(parent) else {
            return false;
        };
        self.add(
            key,
            Node {
                parent: Some(pid),
                name: name.into(),
            },
        )
        .is_some()
    }

    /// The directory `key` was removed. It stays resolvable for the next
    /// [`GRAVEYARD`] removals: the kernel merges a directory's create and
    /// delete into one event at the create's place in the queue (same
    /// parent, name and handle), *ahead* of the events of the files made
    /// and removed inside it meanwhile, which must still be placed. A
    /// removed directory's handle never names another one (handles carry
    /// a generation), so keeping it is harmless.
    pub fn unlink(&mut self, key: &[u8]) {
        if !self.ids.contains_key(key) {
            return;
        }
        self.graveyard.push_back(key.into());
        while self.graveyard.len() > GRAVEYARD {
            if let Some(old) = self.graveyard.pop_front() {
                self.forget(&old);
            }
        }
    }

    /// Drops `key` at once (a rename to an unknown place).
    pub fn forget(&mut self, key: &[u8]) {
        if let Some(id) = self.ids.remove(key) {
            self.nodes.remove(&id);
            self.anchors.remove(&id);
        }
    }

    pub fn knows(&self, key: &[u8]) -> bool {
        self.ids.contains_key(key)
    }

    /// The path of directory `key` now (as of the events processed so far),
    /// into `out`. `false` when unknown (or an ancestor was removed).
    pub fn path_of(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let Some(&id) = self.ids.get(key) else {
            return false;
        };
        // Walk up to an anchor, collecting names (depth bounded by the node
        // count, so a corrupt cycle cannot loop forever).
        let mut chain: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        for _ in 0..=self.nodes.len() {
            let Some(n) = self.nodes.get(&cur) else {
                return false;
            };
            match n.parent {
                None => {
                    out.extend_from_slice(&n.name);
                    for c in chain.iter().rev() {
                        if out.last() != Some(&b'/') {
                            out.push(b'/');
                        }
                        out.extend_from_slice(c);
                    }
                    return true;
                }
                Some(p) => {
                    chain.push(&n.name);
                    cur = p;
                }
            }
        }
        false
    }

    /// Scans the directories under each of `roots` (and the roots' own
    /// ancestors up to their filesystem's root), recording each by its
    /// handle. Stops at other filesystems. Sets [`Mirror::complete`] when
    /// every tree was read within [`MAX_SCAN`] directories.
    pub fn scan(&mut self, roots: &[String]) {
        self.roots = roots.iter().map(|r| r.as_bytes().to_vec()).collect();
        let mut ok = true;
        let mut budget = MAX_SCAN;
        let mut key = Vec::new();
        for root in roots {
            let root = Path::new(root);
            // The nearest existing ancestor (a root may not exist yet).
            let mut start = root.to_path_buf();
            while !start.is_dir() {
                match start.parent() {
                    Some(p) => start = p.to_path_buf(),
                    None => break,
                }
            }
            let Ok(c) = CString::new(start.as_os_str().as_bytes()) else {
                ok = false;
                continue;
            };
            let Ok(fsid) = handle::fsid_of_path(&c) else {
                ok = false;
                continue;
            };
            // Ancestors first: anchor the topmost directory on the same
            // filesystem, link the rest under it.
            let mut chain: Vec<&Path> = start.ancestors().collect();
            chain.reverse();
            let mut parent_key: Option<Vec<u8>> = None;
            for dir in chain {
                let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
                    parent_key = None;
                    continue;
                };
                let same_fs = handle::fsid_of_path(&c).is_ok_and(|f| f == fsid);
                if !same_fs || handle::key_of_path(&c, fsid, &mut key).is_err() {
                    parent_key = None;
                    continue;
                }
                let linked = match (&parent_key, dir.file_name()) {
                    (Some(p), Some(name)) => self.link(p, name.as_bytes(), &key),
                    _ => false,
                };
                if !linked {
                    self.anchor(&key, dir.as_os_str().as_bytes());
                }
                parent_key = Some(key.clone());
            }
            // Then the tree below.
            if let Some(top) = parent_key {
                ok &= self.scan_below(&start, &top, &mut budget);
            } else {
                ok = false;
            }
        }
        self.complete = ok;
    }

    fn scan_below(&mut self, dir: &Path, dir_key: &[u8], budget: &mut usize) -> bool {
        let mut stack: Vec<(std::path::PathBuf, Vec<u8>)> =
            vec![(dir.to_path_buf(), dir_key.to_vec())];
        let mut key = Vec::new();
        let mut ok = true;
        while let Some((d, dkey)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                let p = e.path();
                let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                    continue;
                };
                // Another filesystem mounted here (the engine marks those
                // under a policy tree too): its directories carry their
                // own fsid in their keys.
                let Ok(here) = handle::fsid_of_path(&c) else {
                    continue;
                };
                if handle::key_of_path(&c, here, &mut key).is_err() {
                    ok = false;
                    continue;
                }
                if !self.link(&dkey, e.file_name().as_bytes(), &key) {
                    ok = false;
                    continue;
                }
                stack.push((p, key.clone()));
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: &Mirror, k: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        m.path_of(k, &mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn renames_move_subtrees_and_deletes_forget() {
        let mut m = Mirror::new();
        m.anchor(b"R", b"/r");
        assert!(m.link(b"R", b"a", b"A"));
        assert!(m.link(b"A", b"b", b"B"));
        assert_eq!(p(&m, b"B").as_deref(), Some("/r/a/b"));
        // mv /r/a /r/z: one node changes, the child follows.
        assert!(m.link(b"R", b"z", b"A"));
        assert_eq!(p(&m, b"B").as_deref(), Some("/r/z/b"));
        // A removed directory stays resolvable for events queued before
        // its removal was processed (merged create+delete), then goes.
        m.unlink(b"B");
        assert_eq!(p(&m, b"B").as_deref(), Some("/r/z/b"));
        for i in 0..GRAVEYARD as u32 {
            let k = i.to_ne_bytes();
            assert!(m.link(b"R", b"t", &k));
            m.unlink(&k);
        }
        assert_eq!(p(&m, b"B"), None);
        assert!(!m.link(b"unknown", b"x", b"X"));
        m.anchor(b"ROOT", b"/");
        assert!(m.link(b"ROOT", b"etc", b"E"));
        assert_eq!(p(&m, b"E").as_deref(), Some("/etc"));
    }

    #[test]
    fn scan_records_the_tree_by_handle() {
        let dir = std::env::temp_dir().join(format!("fltpolicy-mirror-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let mut m = Mirror::new();
        m.scan(&[dir.display().to_string()]);
        let c = CString::new(dir.join("a/b").as_os_str().as_bytes()).unwrap();
        let fsid = handle::fsid_of_path(&c).unwrap();
        let mut key = Vec::new();
        handle::key_of_path(&c, fsid, &mut key).unwrap();
        assert_eq!(p(&m, &key), Some(format!("{}/a/b", dir.display())));
        assert!(m.complete());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

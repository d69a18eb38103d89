//! Shared helpers for the end-to-end tests (this crate's `tests/` and the
//! Linux engine's in-process tests).
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory with a private tmpfs mounted on it, so that a
/// filesystem-wide fanotify mark sees only the test's own activity. Falls
/// back to a plain directory when mounting is not possible. Unmounted and
/// removed on drop.
#[derive(Debug)]
pub struct Scratch {
    pub dir: PathBuf,
    pub mounted: bool,
}

impl Scratch {
    /// `/tmp/fltpolicy-{prefix}-{name}-{pid}-{n}`, with a tmpfs on it.
    pub fn new(prefix: &str, name: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fltpolicy-{prefix}-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        Scratch { dir, mounted }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
pub mod groundtruth;

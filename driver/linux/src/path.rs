//! Path normalization, the same rules the compiler applies to Linux
//! constants (`compiler::ir`): runs of `/` collapse to one and a trailing `/`
//! is dropped (except for the root itself). Nothing is case-folded. The
//! kernel's `/proc/self/fd` links are already canonical; joining a directory
//! and an entry name is where doubled or trailing separators could appear.

/// Suffix the kernel appends to `/proc/self/fd` links of unlinked objects.
const DELETED_SUFFIX: &str = " (deleted)";

/// Normalizes `s` in place.
pub fn normalize(s: &mut String) {
    if !(s.contains("//") || s.len() > 1 && s.ends_with('/')) {
        return;
    }
    let mut out = String::with_capacity(s.len());
    let mut prev_slash = false;
    for c in s.chars() {
        if c == '/' {
            if prev_slash {
                continue;
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    *s = out;
}

/// Drops the kernel's ` (deleted)` marker from a resolved link.
pub fn strip_deleted(s: &mut String) {
    if s.ends_with(DELETED_SUFFIX) {
        s.truncate(s.len() - DELETED_SUFFIX.len());
    }
}

/// `dir` + `/` + `name`, normalized, into `out`. A name of `.` (an event
/// about the directory itself) yields `dir`.
pub fn join(dir: &str, name: &[u8], out: &mut String) {
    out.clear();
    out.push_str(dir);
    if name != b"." && !name.is_empty() {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(name));
    }
    normalize(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        let mut s = s.to_string();
        normalize(&mut s);
        s
    }

    #[test]
    fn collapses_and_trims_like_the_compiler() {
        assert_eq!(n("/srv//data///a.txt"), "/srv/data/a.txt");
        assert_eq!(n("/srv/data/"), "/srv/data");
        assert_eq!(n("/"), "/");
        assert_eq!(n("//"), "/");
        assert_eq!(n("/a"), "/a");
    }

    #[test]
    fn joins_dir_and_name() {
        let mut out = String::new();
        join("/", b"etc", &mut out);
        assert_eq!(out, "/etc");
        join("/srv/data", b"f.txt", &mut out);
        assert_eq!(out, "/srv/data/f.txt");
        join("/srv/data", b".", &mut out);
        assert_eq!(out, "/srv/data");
        let mut d = "/tmp/x (deleted)".to_string();
        strip_deleted(&mut d);
        assert_eq!(d, "/tmp/x");
    }
}

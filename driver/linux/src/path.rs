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

/// Drops the kernel's ` (deleted)` marker from a resolved link. Only for
/// links of objects known to be unlinked (`st_nlink == 0`): a live file may
/// really be named `x (deleted)` (see [`strip_deleted_bytes`]).
pub fn strip_deleted(s: &mut String) {
    if s.ends_with(DELETED_SUFFIX) {
        s.truncate(s.len() - DELETED_SUFFIX.len());
    }
}

/// [`strip_deleted`] on raw bytes.
pub fn strip_deleted_bytes(s: &mut Vec<u8>) {
    if s.ends_with(DELETED_SUFFIX.as_bytes()) {
        s.truncate(s.len() - DELETED_SUFFIX.len());
    }
}

/// Writes `bytes` (a path exactly as the kernel has it) into `out` as the
/// engine records and matches paths: valid UTF-8 as is; otherwise the
/// escaped form — each byte of an invalid sequence as `\xNN`, each `\`
/// doubled — and `true` is returned (the record's `path_escaped` flag).
/// The escaped form is lossless: [`unescape`] gives the bytes back.
pub fn from_bytes(bytes: &[u8], out: &mut String) -> bool {
    out.clear();
    if let Ok(s) = std::str::from_utf8(bytes) {
        out.push_str(s);
        return false;
    }
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_doubling_backslashes(out, s);
                return true;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                // `ok` is valid UTF-8 by `valid_up_to`.
                push_doubling_backslashes(out, std::str::from_utf8(ok).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    use std::fmt::Write;
                    let _ = write!(out, "\\x{b:02x}");
                }
                rest = &bad[n..];
            }
        }
    }
}

/// The escaped form of `bytes` even when they are valid UTF-8 (the other
/// path of a record whose first path needed escaping: one flag covers both).
pub fn escaped_always(bytes: &[u8], out: &mut String) {
    if from_bytes(bytes, out) {
        return;
    }
    out.clear();
    push_doubling_backslashes(out, std::str::from_utf8(bytes).unwrap_or_default());
}

fn push_doubling_backslashes(out: &mut String, s: &str) {
    for c in s.chars() {
        if c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The bytes of an escaped path ([`from_bytes`] returned `true`).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'x') {
                if let Some(v) = s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Lexical normalization of a byte path, like [`normalize`].
pub fn normalize_bytes(s: &mut Vec<u8>) {
    let mut out = Vec::with_capacity(s.len());
    let mut prev_slash = false;
    for &c in s.iter() {
        if c == b'/' {
            if prev_slash {
                continue;
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with(b"/") {
        out.pop();
    }
    *s = out;
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

    #[test]
    fn non_utf8_paths_are_escaped_losslessly_and_flagged() {
        let mut out = String::new();
        assert!(!from_bytes(b"/a/b\\c", &mut out));
        assert_eq!(out, "/a/b\\c");
        for raw in [
            &b"/a/\xff\xfe"[..],
            b"/x\\y/\xc3",
            b"\xe2\x82",
            b"/ok/\xffz\\x41",
        ] {
            assert!(from_bytes(raw, &mut out));
            assert!(out.is_ascii() || std::str::from_utf8(out.as_bytes()).is_ok());
            assert_eq!(unescape(&out), raw, "{out}");
        }
        from_bytes(b"/a/\xff\\", &mut out);
        assert_eq!(out, "/a/\\xff\\\\");
    }
}

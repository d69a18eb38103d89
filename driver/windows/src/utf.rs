//! UTF-16 → UTF-8 conversion into fixed buffers, without allocating.
//!
//! Kernel names are UTF-16 (`UNICODE_STRING`); the evaluator reads UTF-8.
//! Conversion happens once per name, at PASSIVE_LEVEL (post-create, process
//! notify), into non-paged memory. Unpaired surrogates become U+FFFD, as
//! `String::from_utf16_lossy` would do.

/// Converts `src` into `out`; returns the number of bytes written and
/// whether the input was cut because `out` was full (always at a character
/// boundary).
pub fn utf16_to_utf8(src: &[u16], out: &mut [u8]) -> (usize, bool) {
    let mut at = 0;
    for c in char::decode_utf16(src.iter().copied()) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        let n = c.len_utf8();
        if at + n > out.len() {
            return (at, true);
        }
        c.encode_utf8(&mut out[at..at + n]);
        at += n;
    }
    (at, false)
}

/// Number of UTF-8 bytes `src` converts to.
pub fn utf8_len(src: &[u16]) -> usize {
    char::decode_utf16(src.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER).len_utf8())
        .sum()
}

/// Encodes `s` as UTF-16 into `out`; `None` if it does not fit.
pub fn utf8_to_utf16(s: &str, out: &mut [u16]) -> Option<usize> {
    let mut at = 0;
    for u in s.encode_utf16() {
        *out.get_mut(at)? = u;
        at += 1;
    }
    Some(at)
}

/// Whether `a` and `b` are equal ignoring ASCII case (volume and prefix
/// names are ASCII in practice; this is only used for those).
pub fn eq_ignore_ascii_case_utf16(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(&x, &y)| {
            let f = |c: u16| {
                if (b'a' as u16..=b'z' as u16).contains(&c) {
                    c - 32
                } else {
                    c
                }
            };
            f(x) == f(y)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_truncates_at_char_boundary() {
        let w: Vec<u16> = "C:\\Dätä\\€".encode_utf16().collect();
        let mut out = [0u8; 64];
        let (n, cut) = utf16_to_utf8(&w, &mut out);
        assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), "C:\\Dätä\\€");
        assert!(!cut);
        assert_eq!(utf8_len(&w), n);
        let mut small = [0u8; 10];
        let (n, cut) = utf16_to_utf8(&w, &mut small);
        assert!(cut);
        assert_eq!(core::str::from_utf8(&small[..n]).unwrap(), "C:\\Dätä\\");
        let (n, _) = utf16_to_utf8(&[0xD800, b'a' as u16], &mut out);
        assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), "\u{FFFD}a");
    }
}

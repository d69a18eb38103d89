//! String predicates of the evaluator, with the target's case rule.
//!
//! Constants in an image are already folded (Windows) by the compiler; the
//! event side is folded here, one character at a time, as it is compared.
//! Nothing allocates, nothing recurses, and every loop is bounded by the
//! lengths of its two inputs (glob matching is O(|subject| * |pattern|) with
//! the classic single-backtrack-point algorithm, applied once over path
//! components for `**` and once over characters within a component).
use core::cmp::Ordering;

use crate::text::fold_char;

/// How strings compare for one policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Fold event characters before comparing (Windows).
    pub fold: bool,
    /// Path separator.
    pub sep: char,
}

impl Rules {
    #[inline]
    fn f(self, c: char) -> char {
        if self.fold {
            fold_char(c)
        } else {
            c
        }
    }

    /// Orders `s` (folded) against the folded constant `c` by UTF-8 bytes,
    /// the order the compiler sorts lists and trie labels in.
    pub fn cmp(self, s: &str, c: &str) -> Ordering {
        if !self.fold {
            return s.as_bytes().cmp(c.as_bytes());
        }
        // ASCII fast path: most paths are ASCII; fold byte by byte until the
        // first non-ASCII byte on either side, then continue char by char
        // from there (both sides are at a char boundary: all before was ASCII).
        let (a, b) = (s.as_bytes(), c.as_bytes());
        let n = a.len().min(b.len());
        let mut i = 0;
        // Eight ASCII bytes at a time (SWAR upcase), then byte by byte.
        while let (Some(x), Some(y)) = (chunk8(a, i), chunk8(b, i)) {
            if (x | y) & HIGH_BITS != 0 {
                break;
            }
            let ux = upper8(x);
            if ux != y {
                let k = ((ux ^ y).trailing_zeros() / 8) as usize;
                let (bx, by) = (ux.to_le_bytes(), y.to_le_bytes());
                return bx.get(k).cmp(&by.get(k));
            }
            i += 8;
        }
        while i < n {
            let (x, y) = match (a.get(i), b.get(i)) {
                (Some(&x), Some(&y)) => (x, y),
                _ => break,
            };
            if x >= 0x80 || y >= 0x80 {
                return Self::cmp_chars(s.get(i..).unwrap_or(s), c.get(i..).unwrap_or(c));
            }
            let x = x.to_ascii_uppercase();
            if x != y {
                return x.cmp(&y);
            }
            i += 1;
        }
        a.len().cmp(&b.len())
    }

    /// Folded comparison, one character at a time. Comparing chars in
    /// scalar order is comparing their UTF-8 bytes.
    fn cmp_chars(s: &str, c: &str) -> Ordering {
        let mut a = s.chars().map(fold_char);
        let mut b = c.chars();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match x.cmp(&y) {
                    Ordering::Equal => {}
                    o => return o,
                },
            }
        }
    }

    pub fn eq(self, s: &str, c: &str) -> bool {
        if !self.fold {
            return s == c;
        }
        self.cmp(s, c) == Ordering::Equal
    }

    /// If `s` starts with `c`, the number of bytes of `s` that matched.
    pub fn prefix_len(self, s: &str, c: &str) -> Option<usize> {
        if !self.fold {
            return s.as_bytes().starts_with(c.as_bytes()).then_some(c.len());
        }
        // ASCII fast paths, as in `cmp`.
        let (a, b) = (s.as_bytes(), c.as_bytes());
        let mut i = 0;
        while let (Some(x), Some(y)) = (chunk8(a, i), chunk8(b, i)) {
            if (x | y) & HIGH_BITS != 0 {
                break;
            }
            if upper8(x) != y {
                return None;
            }
            i += 8;
        }
        loop {
            let Some(&y) = b.get(i) else {
                return Some(i); // all of `c` matched
            };
            let x = *a.get(i)?;
            if x >= 0x80 || y >= 0x80 {
                let (s_rest, c_rest) = (s.get(i..)?, c.get(i..)?);
                return Self::prefix_len_chars(s_rest, c_rest).map(|n| n + i);
            }
            if x.to_ascii_uppercase() != y {
                return None;
            }
            i += 1;
        }
    }

    fn prefix_len_chars(s: &str, c: &str) -> Option<usize> {
        let mut it = s.char_indices();
        for want in c.chars() {
            match it.next() {
                Some((_, got)) if fold_char(got) == want => {}
                _ => return None,
            }
        }
        Some(it.next().map_or(s.len(), |(i, _)| i))
    }

    pub fn starts_with(self, s: &str, c: &str) -> bool {
        self.prefix_len(s, c).is_some()
    }

    pub fn ends_with(self, s: &str, c: &str) -> bool {
        if !self.fold {
            return s.as_bytes().ends_with(c.as_bytes());
        }
        let mut it = s.chars().rev();
        c.chars()
            .rev()
            .all(|want| matches!(it.next(), Some(got) if fold_char(got) == want))
    }

    pub fn contains(self, s: &str, c: &str) -> bool {
        if c.is_empty() {
            return true;
        }
        if !self.fold {
            return s.as_bytes().windows(c.len()).any(|w| w == c.as_bytes());
        }
        s.char_indices()
            .any(|(i, _)| s.get(i..).is_some_and(|t| self.starts_with(t, c)))
    }

    /// `s` is `c` or lies below it: `c` followed by a separator, or `c`
    /// itself ends with a separator (a root such as `C:\` or `/`).
    pub fn under(self, s: &str, c: &str) -> bool {
        match self.prefix_len(s, c) {
            None => false,
            Some(n) if n == s.len() => true,
            Some(n) => c.ends_with(self.sep) || s.get(n..).is_some_and(|t| t.starts_with(self.sep)),
        }
    }

    /// Glob match over path components: `**` (a whole component) matches
    /// zero or more components; otherwise components match one to one,
    /// with `*` any run of characters and `?` exactly one character.
    pub fn glob(self, s: &str, pat: &str) -> bool {
        let sep = self.sep;
        let mut si = Comps::new(s, sep);
        let mut pi = Comps::new(pat, sep);
        // Backtrack point: pattern after the last `**`, subject where it
        // started matching.
        let mut star: Option<(Comps<'_>, Comps<'_>)> = None;
        loop {
            let s_here = si;
            let Some(sc) = si.next() else { break };
            match pi.next() {
                Some("**") => {
                    star = Some((pi, s_here));
                    si = s_here;
                    continue;
                }
                Some(pc) if self.glob_component(sc, pc) => continue,
                _ => {}
            }
            match star {
                Some((p_after, mut s_from)) => {
                    // Let the `**` swallow one more component and retry.
                    s_from.next();
                    star = Some((p_after, s_from));
                    pi = p_after;
                    si = s_from;
                }
                None => return false,
            }
        }
        // Subject consumed: what is left of the pattern must be `**` only.
        for pc in pi {
            if pc != "**" {
                return false;
            }
        }
        true
    }

    /// Glob match within one component: `*` any run, `?` one character.
    fn glob_component(self, s: &str, pat: &str) -> bool {
        let mut si = s.chars();
        let mut pi = pat.chars();
        let mut star: Option<(core::str::Chars<'_>, core::str::Chars<'_>)> = None;
        loop {
            let s_here = si.clone();
            let Some(sc) = si.next() else { break };
            match pi.next() {
                Some('*') => {
                    si = s_here.clone();
                    star = Some((pi.clone(), s_here));
                    continue;
                }
                Some('?') => continue,
                Some(pc) if self.f(sc) == pc => continue,
                _ => {}
            }
            match star.as_mut() {
                Some((p_after, s_from)) => {
                    s_from.next();
                    pi = p_after.clone();
                    si = s_from.clone();
                }
                None => return false,
            }
        }
        pi.all(|c| c == '*')
    }
}

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Eight bytes of `b` at `i`, little-endian, if that many remain.
#[inline]
fn chunk8(b: &[u8], i: usize) -> Option<u64> {
    let end = i.checked_add(8)?;
    b.get(i..end)?.try_into().ok().map(u64::from_le_bytes)
}

/// ASCII uppercase of eight bytes at once. Every byte must be below 0x80
/// (checked by the caller), so the additions never carry between bytes.
#[inline]
fn upper8(x: u64) -> u64 {
    let ge_a = x.wrapping_add(0x1f1f_1f1f_1f1f_1f1f); // high bit: byte >= b'a'
    let gt_z = x.wrapping_add(0x0505_0505_0505_0505); // high bit: byte > b'z'
    let lower = ge_a & !gt_z & HIGH_BITS;
    x.wrapping_sub(lower >> 2) // 0x80 >> 2 == 0x20, the case bit
}

/// FNV-1a of a constant's bytes (already folded by the compiler): the hash
/// trie edges are sorted by, so a walk compares integers, not strings.
pub fn label_hash_const(s: &str) -> u32 {
    s.bytes().fold(FNV_OFFSET, fnv_step)
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

#[inline]
fn fnv_step(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
}

impl Rules {
    /// FNV-1a of the folded UTF-8 bytes of an event's path component; equal
    /// to [`label_hash_const`] of the folded constant when they match.
    pub fn label_hash(self, comp: &str) -> u32 {
        if !self.fold {
            return label_hash_const(comp);
        }
        let bytes = comp.as_bytes();
        let mut h = FNV_OFFSET;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b >= 0x80 {
                return Self::label_hash_slow(h, comp.get(i..).unwrap_or(""));
            }
            h = fnv_step(h, b.to_ascii_uppercase());
            i += 1;
        }
        h
    }

    /// Continues the hash over folded non-ASCII text.
    fn label_hash_slow(mut h: u32, rest: &str) -> u32 {
        let mut buf = [0u8; 4];
        for ch in rest.chars() {
            for &x in fold_char(ch).encode_utf8(&mut buf).as_bytes() {
                h = fnv_step(h, x);
            }
        }
        h
    }
}

/// Iterator over the components of a path split on a separator; the empty
/// string has one empty component, as `str::split` has.
#[derive(Clone, Copy, Debug)]
struct Comps<'a> {
    rest: Option<&'a str>,
    sep: char,
}

impl<'a> Comps<'a> {
    fn new(s: &'a str, sep: char) -> Self {
        Comps { rest: Some(s), sep }
    }
}

impl<'a> Iterator for Comps<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.split_once(self.sep) {
            Some((head, tail)) => {
                self.rest = Some(tail);
                Some(head)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIN: Rules = Rules {
        fold: true,
        sep: '\\',
    };
    const LIN: Rules = Rules {
        fold: false,
        sep: '/',
    };

    #[test]
    fn under_respects_separator_boundaries() {
        assert!(WIN.under("c:\\data\\x", "C:\\DATA"));
        assert!(WIN.under("C:\\Data", "C:\\DATA"));
        assert!(!WIN.under("C:\\Database\\x", "C:\\DATA"));
        assert!(WIN.under("C:\\x", "C:\\"));
        assert!(LIN.under("/srv/data/x", "/srv/data"));
        assert!(!LIN.under("/srv/database", "/srv/data"));
        assert!(!LIN.under("/SRV/data/x", "/srv/data"));
        assert!(LIN.under("/x", "/"));
    }

    #[test]
    fn glob_components_and_double_star() {
        let p = "C:\\USERS\\*\\DOCUMENTS\\**\\*.KEY";
        assert!(WIN.glob("C:\\Users\\bob\\Documents\\a.key", p));
        assert!(WIN.glob("C:\\Users\\bob\\Documents\\x\\y\\a.key", p));
        assert!(!WIN.glob("C:\\Users\\bob\\x\\Documents\\a.key", p));
        assert!(!WIN.glob("C:\\Users\\bob\\Documents\\a.txt", p));
        assert!(LIN.glob("/a/b/c", "/**"));
        assert!(LIN.glob("/a", "/a/**"));
        assert!(LIN.glob("abc", "a?c"));
        assert!(!LIN.glob("abbc", "a?c"));
        assert!(LIN.glob("aXbYc", "a*b*c"));
        assert!(!LIN.glob("a/c", "a*c"));
        assert!(LIN.glob("", ""));
        assert!(LIN.glob("x.tar.gz", "*.gz"));
        assert!(LIN.glob("/a/b/x/y/b/z", "/**/b/**/z"));
    }

    #[test]
    fn folded_order_matches_byte_order_of_folded_strings() {
        let cases = ["a", "B", "ä", "Z", "", "ab", "AA", "ß"];
        for x in cases {
            for y in cases {
                let fy = crate::text::fold(y);
                assert_eq!(
                    WIN.cmp(x, &fy),
                    crate::text::fold(x).as_bytes().cmp(fy.as_bytes()),
                    "{x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn swar_upcase_matches_ascii_upcase() {
        for b in 0u8..0x80 {
            let x = u64::from_le_bytes([b, b'a', b'z', b'{', b'@', b'`', b'Z', b'0']);
            let want = u64::from_le_bytes(x.to_le_bytes().map(|c| c.to_ascii_uppercase()));
            assert_eq!(upper8(x), want, "byte {b:#x}");
        }
    }

    #[test]
    fn label_hash_of_event_equals_hash_of_folded_constant() {
        for s in ["Data", "daTA", "ünïcödé", "C:", "", "ßx", "Program Files"] {
            assert_eq!(
                WIN.label_hash(s),
                label_hash_const(&crate::text::fold(s)),
                "{s}"
            );
            assert_eq!(LIN.label_hash(s), label_hash_const(s));
        }
    }

    #[test]
    fn long_ascii_and_mixed_comparisons() {
        let c = r"C:\PROGRAM FILES\SOME VENDOR\APP\BIN";
        assert!(WIN.eq(r"c:\Program Files\Some Vendor\App\bin", c));
        assert!(WIN.under(r"c:\Program Files\Some Vendor\App\bin\x.exe", c));
        assert!(!WIN.under(r"c:\Program Files\Some Vendor\App\binx", c));
        assert!(WIN.eq(
            r"c:\programme\größe\ÄÖÜ-long-name",
            r"C:\PROGRAMME\GRÖßE\ÄÖÜ-LONG-NAME"
        ));
        assert_eq!(
            WIN.cmp("abcdefghij", "ABCDEFGHIK"),
            core::cmp::Ordering::Less
        );
        assert_eq!(
            WIN.cmp("abcdefgh{", "ABCDEFGHZ"),
            core::cmp::Ordering::Greater
        );
    }

    #[test]
    fn contains_and_suffix() {
        assert!(WIN.contains("C:\\Secret\\x", "SECRET"));
        assert!(WIN.ends_with("report.DOCX", ".DOCX"));
        assert!(!LIN.ends_with("report.DOCX", ".docx"));
        assert!(LIN.contains("abc", ""));
    }
}

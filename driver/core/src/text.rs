//! Comparison rules for strings in events and policies.
//!
//! Windows compares file and process names case-insensitively. The kernel
//! upcases with a table (RtlUpcaseUnicodeChar); we use Unicode's simple
//! uppercase mapping, one character to one character, taken from `core`, and
//! leave characters whose uppercase form is longer than one character alone.
//! The compiler folds constants with [`fold_char`] at compile time; the
//! evaluator folds event characters with the same function as it compares,
//! so neither side allocates and both agree exactly.

/// Simple (1:1) uppercase of `c`; `c` itself when the mapping is not 1:1.
#[inline]
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Folds a whole string (host-side convenience for the compiler and tests).
#[cfg(any(test, feature = "std"))]
pub fn fold(s: &str) -> std::string::String {
    s.chars().map(fold_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_ascii_and_simple_unicode() {
        assert_eq!(fold("c:\\Data\\ä.txt"), "C:\\DATA\\Ä.TXT");
        // ß uppercases to "SS" (two chars): left alone, as Windows does.
        assert_eq!(fold_char('ß'), 'ß');
    }
}

//! Record timestamps (nanoseconds since the Unix epoch, UTC) as text.
//!
//! The full form is the audit crate's RFC 3339 rendering (the one `log
//! export` writes), so a time copied from the viewer matches the export.

/// Nanoseconds per second.
const NS_PER_S: u64 = 1_000_000_000;

/// `2026-11-21T12:01:37.123456789Z`: RFC 3339, UTC, nanosecond precision.
pub fn fmt_rfc3339(ns: u64) -> String {
    fltpolicy_audit::rfc3339(ns)
}

/// `12:01:37.123`: time of day (UTC) to the millisecond, for the table.
pub fn fmt_clock(ns: u64) -> String {
    let secs = ns / NS_PER_S;
    let sod = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ns % NS_PER_S / 1_000_000
    )
}

/// A short human duration: `250ns`, `1.5ms`, `2s`, `3.2min`, `5h`.
pub fn fmt_duration(ns: u64) -> String {
    let f = ns as f64;
    let (v, unit) = if ns < 1_000 {
        return format!("{ns}ns");
    } else if ns < 1_000_000 {
        (f / 1e3, "µs")
    } else if ns < NS_PER_S {
        (f / 1e6, "ms")
    } else if ns < 60 * NS_PER_S {
        (f / 1e9, "s")
    } else if ns < 3600 * NS_PER_S {
        (f / 60e9, "min")
    } else if ns < 86_400 * NS_PER_S {
        (f / 3600e9, "h")
    } else {
        (f / 86_400e9, "d")
    };
    if v < 10.0 && v.fract() >= 0.05 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(fmt_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (leap day in a /400 year) 12:34:56.000000007
        assert_eq!(
            fmt_rfc3339(951_827_696 * NS_PER_S + 7),
            "2000-02-29T12:34:56.000000007Z"
        );
        // 2026-11-21T12:01:37Z
        assert_eq!(
            fmt_rfc3339(1_795_262_497 * NS_PER_S + 123_456_789),
            "2026-11-21T12:01:37.123456789Z"
        );
        // 2100-03-01 (2100 is not a leap year)
        assert_eq!(
            fmt_rfc3339(4_107_542_400 * NS_PER_S),
            "2100-03-01T00:00:00.000000000Z"
        );
        // The largest instant still formats.
        assert_eq!(fmt_rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn clock_and_duration() {
        assert_eq!(
            fmt_clock(1_795_262_497 * NS_PER_S + 123_456_789),
            "12:01:37.123"
        );
        assert_eq!(fmt_duration(250), "250ns");
        assert_eq!(fmt_duration(1_500_000), "1.5ms");
        assert_eq!(fmt_duration(2 * NS_PER_S), "2s");
        assert_eq!(fmt_duration(90 * NS_PER_S), "1.5min");
        assert_eq!(fmt_duration(5 * 3600 * NS_PER_S), "5h");
        assert_eq!(fmt_duration(45_000), "45µs");
    }
}

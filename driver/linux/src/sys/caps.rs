//! Capability checks, so that a missing privilege is reported by name before
//! any fanotify call fails with a bare errno.
//!
//! Read from `/proc/self/status` (`CapEff:`), which needs no system call
//! beyond reading a file and is exactly what the kernel will check.

/// Linux capability numbers the engine needs (from `linux/capability.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// `CAP_SYS_ADMIN` (21): fanotify_init, filesystem marks, permission events.
    SysAdmin,
    /// `CAP_DAC_READ_SEARCH` (2): open_by_handle_at, to turn the directory
    /// handles of create/delete/rename events back into paths.
    DacReadSearch,
}

impl Capability {
    pub const fn bit(self) -> u32 {
        match self {
            Capability::SysAdmin => 21,
            Capability::DacReadSearch => 2,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Capability::SysAdmin => "CAP_SYS_ADMIN",
            Capability::DacReadSearch => "CAP_DAC_READ_SEARCH",
        }
    }
}

/// Whether this process holds `cap` in its effective set. `None` when
/// `/proc/self/status` cannot be read or parsed (then the caller lets the
/// kernel decide and maps EPERM to the capability).
pub fn has(cap: Capability) -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let eff = parse_cap_eff(&status)?;
    Some(eff & (1u64 << cap.bit()) != 0)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let eff = parse_cap_eff(s).unwrap();
        assert_ne!(eff & (1 << Capability::SysAdmin.bit()), 0);
        assert_eq!(parse_cap_eff("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(parse_cap_eff("nothing"), None);
    }
}

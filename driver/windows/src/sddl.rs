//! The small SDDL subset the control device's security descriptor uses.
//!
//! `IoCreateDeviceSecure` (which takes SDDL) lives in the static library
//! `wdmsec.lib`, not in any kernel export, so a `raw-dylib` driver cannot
//! call it. Instead the driver parses its SDDL constant with this module and
//! builds the same protected DACL byte by byte. Only what the driver needs
//! is accepted: `D:P` followed by access-allowed ACEs granting GA/GR/GW/GX/FA
//! to SY (LocalSystem) or BA (Administrators), with no inheritance flags or
//! `OICI` (inherited by files and subdirectories, for the log directory);
//! anything else is an error, so a typo cannot silently widen access.

/// A principal an ACE can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// `SY`: S-1-5-18.
    LocalSystem,
    /// `BA`: S-1-5-32-544.
    Administrators,
}

impl Principal {
    /// The SID in binary form (revision, sub-authority count, authority,
    /// sub-authorities little-endian).
    pub const fn sid(self) -> &'static [u8] {
        match self {
            Principal::LocalSystem => &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0],
            Principal::Administrators => &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0],
        }
    }
}

/// One access-allowed ACE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ace {
    pub mask: u32,
    pub who: Principal,
    /// ACE flags: `OBJECT_INHERIT_ACE` (1) | `CONTAINER_INHERIT_ACE` (2).
    pub flags: u8,
}

/// A buffer for a self-relative security descriptor. The kernel reads
/// `SECURITY_DESCRIPTOR_RELATIVE`, the ACL and the SIDs as 32-bit fields,
/// so the buffer must be at least 4-byte aligned; a `[u8; N]` on the stack
/// is only 1-byte aligned (issue 9, item 11).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdBuf(pub [u8; MAX_DESCRIPTOR]);

impl SdBuf {
    pub const fn new() -> SdBuf {
        SdBuf([0; MAX_DESCRIPTOR])
    }
}

impl Default for SdBuf {
    fn default() -> Self {
        SdBuf::new()
    }
}

/// Most ACEs a descriptor may hold (the driver's has two).
pub const MAX_ACES: usize = 4;

/// A parsed protected DACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dacl {
    pub aces: [Option<Ace>; MAX_ACES],
}

impl Dacl {
    /// Whether a caller who is `who` gets any access.
    pub fn allows(&self, who: Principal) -> bool {
        self.aces
            .iter()
            .flatten()
            .any(|a| a.who == who && a.mask != 0)
    }
}

/// Size of a self-relative descriptor with up to [`MAX_ACES`] ACEs:
/// header (20) + ACL header (8) + per ACE (8 + SID of at most 16 bytes).
pub const MAX_DESCRIPTOR: usize = 20 + 8 + MAX_ACES * (8 + 16);

impl Dacl {
    /// Writes the self-relative security descriptor
    /// (`SECURITY_DESCRIPTOR_RELATIVE`) holding only this protected DACL
    /// into `out`; returns its length.
    ///
    /// Layout (little-endian): revision 1, sbz1, control (SE_SELF_RELATIVE |
    /// SE_DACL_PROTECTED | SE_DACL_PRESENT), owner, group and SACL offsets
    /// 0, DACL offset 20; then the ACL (revision 2, size, ACE count) and one
    /// ACCESS_ALLOWED_ACE (type 0) per entry. Built by hand because the Rtl*
    /// builders are declared by windows-sys against ntdll.dll, which a
    /// driver must not import (see `kernel/ffi.rs`).
    pub fn to_self_relative(&self, out: &mut SdBuf) -> usize {
        const SE_DACL_PRESENT: u16 = 0x0004;
        const SE_DACL_PROTECTED: u16 = 0x1000;
        const SE_SELF_RELATIVE: u16 = 0x8000;
        let out = &mut out.0;
        *out = [0; MAX_DESCRIPTOR];
        out[0] = 1;
        out[2..4].copy_from_slice(
            &(SE_SELF_RELATIVE | SE_DACL_PROTECTED | SE_DACL_PRESENT).to_le_bytes(),
        );
        out[16..20].copy_from_slice(&20u32.to_le_bytes());
        let mut at = 28;
        let mut count = 0u16;
        for ace in self.aces.iter().flatten() {
            let sid = ace.who.sid();
            let size = 8 + sid.len();
            out[at] = 0; // ACCESS_ALLOWED_ACE_TYPE
            out[at + 1] = ace.flags; // inheritance
            out[at + 2..at + 4].copy_from_slice(&(size as u16).to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&ace.mask.to_le_bytes());
            out[at + 8..at + size].copy_from_slice(sid);
            at += size;
            count += 1;
        }
        out[20] = 2; // ACL_REVISION
        out[22..24].copy_from_slice(&((at - 20) as u16).to_le_bytes());
        out[24..26].copy_from_slice(&count.to_le_bytes());
        at
    }
}

/// Why an SDDL string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SddlError;

const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_READ: u32 = 0x8000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const GENERIC_EXECUTE: u32 = 0x2000_0000;
const FILE_ALL_ACCESS: u32 = 0x001F_01FF;

/// Parses `D:P(A;;<rights>;;;<sid>)...`.
pub fn parse(sddl: &str) -> Result<Dacl, SddlError> {
    let mut rest = sddl.strip_prefix("D:P").ok_or(SddlError)?;
    let mut dacl = Dacl {
        aces: [None; MAX_ACES],
    };
    let mut n = 0;
    while !rest.is_empty() {
        let body = rest.strip_prefix('(').ok_or(SddlError)?;
        let end = body.find(')').ok_or(SddlError)?;
        let mut f = body[..end].split(';');
        let (Some("A"), Some(flags), Some(rights), Some(""), Some(""), Some(sid), None) = (
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
        ) else {
            return Err(SddlError);
        };
        let flags = match flags {
            "" => 0,
            "OI" => 1,
            "CI" => 2,
            "OICI" | "CIOI" => 3,
            _ => return Err(SddlError),
        };
        let mask = match rights {
            "GA" => GENERIC_ALL,
            "GR" => GENERIC_READ,
            "GW" => GENERIC_WRITE,
            "GX" => GENERIC_EXECUTE,
            "FA" => FILE_ALL_ACCESS,
            _ => return Err(SddlError),
        };
        let who = match sid {
            "SY" => Principal::LocalSystem,
            "BA" => Principal::Administrators,
            _ => return Err(SddlError),
        };
        *dacl.aces.get_mut(n).ok_or(SddlError)? = Some(Ace { mask, who, flags });
        n += 1;
        rest = &body[end + 1..];
    }
    if n == 0 {
        return Err(SddlError);
    }
    Ok(dacl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_buffers_are_aligned_for_the_kernels_32_bit_reads() {
        assert!(core::mem::align_of::<SdBuf>() >= 4);
        // Wherever it lands (stack, static, inside another struct), the
        // descriptor and its ACL (offset 20) and ACEs (4-byte multiples)
        // are 4-byte aligned.
        #[repr(C)]
        struct Odd {
            _b: u8,
            sd: SdBuf,
        }
        let o = Odd {
            _b: 0,
            sd: SdBuf::new(),
        };
        assert_eq!(o.sd.0.as_ptr() as usize % 4, 0);
        let d = parse(crate::flush::LOG_SDDL).unwrap();
        let mut b = SdBuf::new();
        let n = d.to_self_relative(&mut b);
        assert_eq!(n % 4, 0);
        // The log directory's ACEs are inherited by files and directories.
        assert_eq!(b.0[28 + 1], 3);
    }

    #[test]
    fn parses_the_control_device_sddl_and_rejects_others() {
        let d = parse(crate::control::CONTROL_SDDL).unwrap();
        assert!(d.allows(Principal::LocalSystem));
        assert!(d.allows(Principal::Administrators));
        let mut buf = SdBuf::new();
        let n = d.to_self_relative(&mut buf);
        let sd = buf.0;
        // Header, ACL header, then SY (12-byte SID) and BA (16-byte SID) ACEs.
        assert_eq!(n, 20 + 8 + (8 + 12) + (8 + 16));
        assert_eq!(&sd[..4], &[1, 0, 0x04, 0x90]);
        assert_eq!(&sd[20..26], &[2, 0, 52, 0, 2, 0]);
        assert_eq!(&sd[28..32], &[0, 0, 20, 0]);
        assert_eq!(&sd[32..36], &0x1000_0000u32.to_le_bytes());
        assert_eq!(&sd[36..48], Principal::LocalSystem.sid());
        for bad in [
            "",
            "D:P",
            "D:(A;;GA;;;SY)",
            "D:P(A;;GA;;;WD)",
            "D:P(D;;GA;;;SY)",
            "D:P(A;;GA;;;SY",
            "D:P(A;;XX;;;SY)",
            "D:P(A;ID;GA;;;SY)",
        ] {
            assert_eq!(parse(bad), Err(SddlError), "{bad}");
        }
    }
}

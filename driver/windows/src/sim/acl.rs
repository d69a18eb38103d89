//! Reads the self-relative security descriptors the driver hands to the
//! kernel (control device, log directory, log files), the way the object
//! manager would: written from the `SECURITY_DESCRIPTOR_RELATIVE`, `ACL`,
//! `ACE_HEADER` and `SID` layouts of [MS-DTYP] 2.4, not from the driver's
//! encoder (`crate::sddl`), so a wrong byte in the encoder shows up here.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

/// One ACE as the simulation understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AceInfo {
    /// 0 = ACCESS_ALLOWED_ACE_TYPE, 1 = ACCESS_DENIED_ACE_TYPE, ...
    pub ace_type: u8,
    pub flags: u8,
    pub mask: u32,
    /// `S-1-5-18` form.
    pub sid: String,
}

/// A decoded descriptor (DACL only: the driver sets nothing else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityInfo {
    /// SE_DACL_PROTECTED: nothing inherited from the parent.
    pub protected: bool,
    /// None: no DACL (everyone gets access).
    pub dacl: Option<Vec<AceInfo>>,
    /// The descriptor's bytes as stored.
    pub bytes: Vec<u8>,
}

impl SecurityInfo {
    /// SIDs the DACL grants anything to.
    pub fn granted(&self) -> Vec<String> {
        self.dacl
            .iter()
            .flatten()
            .filter(|a| a.ace_type == 0 && a.mask != 0)
            .map(|a| a.sid.clone())
            .collect()
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("descriptor truncated at {at}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("descriptor truncated at {at}"))
}

fn sid_string(b: &[u8]) -> Result<(String, usize), String> {
    let rev = *b.first().ok_or("empty SID")?;
    let n = *b.get(1).ok_or("SID truncated")? as usize;
    if rev != 1 || n > 15 {
        return Err(format!("bad SID revision {rev} / count {n}"));
    }
    let auth = b.get(2..8).ok_or("SID truncated")?;
    let mut a = 0u64;
    for x in auth {
        a = (a << 8) | u64::from(*x);
    }
    let mut s = format!("S-1-{a}");
    for i in 0..n {
        s += &format!("-{}", u32_at(b, 8 + 4 * i)?);
    }
    Ok((s, 8 + 4 * n))
}

/// Decodes the descriptor at `p` (which must be 4-byte aligned, as the
/// kernel's 32-bit reads require).
///
/// # Safety
/// `p` points to a self-relative descriptor the driver built (at least its
/// header, and the ACL its header points to).
pub unsafe fn read(p: *const u8) -> Result<SecurityInfo, String> {
    if p as usize % 4 != 0 {
        return Err(format!(
            "security descriptor at {p:p} is not 4-byte aligned (the kernel reads it as 32-bit fields)"
        ));
    }
    // SAFETY: per the caller, at least the 20-byte header.
    let head = unsafe { std::slice::from_raw_parts(p, 20) };
    if head[0] != 1 {
        return Err(format!("descriptor revision {} (expected 1)", head[0]));
    }
    let control = u16_at(head, 2)?;
    if control & 0x8000 == 0 {
        return Err("descriptor not self-relative".into());
    }
    let dacl_off = u32_at(head, 16)? as usize;
    if control & 0x0004 == 0 || dacl_off == 0 {
        return Ok(SecurityInfo {
            protected: false,
            dacl: None,
            bytes: head.to_vec(),
        });
    }
    if dacl_off % 4 != 0 {
        return Err(format!("DACL offset {dacl_off} not 4-byte aligned"));
    }
    let acl_at = p.wrapping_add(dacl_off);
    // SAFETY: per the caller, the ACL header the descriptor points to.
    let acl_head = unsafe { std::slice::from_raw_parts(acl_at, 8) };
    let acl_size = u16_at(acl_head, 2)? as usize;
    let count = u16_at(acl_head, 4)? as usize;
    // SAFETY: per the caller, the whole ACL.
    let all = unsafe { std::slice::from_raw_parts(p, dacl_off + acl_size) };
    let acl = &all[dacl_off..];
    if acl[0] != 2 && acl[0] != 4 {
        return Err(format!("ACL revision {}", acl[0]));
    }
    let mut aces = Vec::new();
    let mut at = 8;
    for _ in 0..count {
        let t = *acl.get(at).ok_or("ACE truncated")?;
        let flags = *acl.get(at + 1).ok_or("ACE truncated")?;
        let size = u16_at(acl, at + 2)? as usize;
        if size < 8 || size % 4 != 0 || at + size > acl.len() {
            return Err(format!("ACE size {size} at {at}"));
        }
        let mask = u32_at(acl, at + 4)?;
        let (sid, sid_len) = sid_string(&acl[at + 8..at + size])?;
        if 8 + sid_len != size {
            return Err(format!(
                "ACE size {size} does not match its SID ({sid_len})"
            ));
        }
        aces.push(AceInfo {
            ace_type: t,
            flags,
            mask,
            sid,
        });
        at += size;
    }
    Ok(SecurityInfo {
        protected: control & 0x1000 != 0,
        dacl: Some(aces),
        bytes: all.to_vec(),
    })
}

/// LocalSystem.
pub const SYSTEM: &str = "S-1-5-18";
/// BUILTIN\Administrators.
pub const ADMINISTRATORS: &str = "S-1-5-32-544";
/// BUILTIN\Users.
pub const USERS: &str = "S-1-5-32-545";

/// The binary SID of `S-1-<auth>-<sub>...`.
pub fn sid_bytes(sid: &str) -> Vec<u8> {
    let parts: Vec<u64> = sid
        .strip_prefix("S-1-")
        .unwrap_or_else(|| std::panic::panic_any(format!("not a SID: {sid}")))
        .split('-')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| std::panic::panic_any(format!("not a SID: {sid}")))
        })
        .collect();
    let mut b = vec![1u8, (parts.len() - 1) as u8];
    b.extend_from_slice(&parts[0].to_be_bytes()[2..]);
    for sub in &parts[1..] {
        b.extend_from_slice(&(*sub as u32).to_le_bytes());
    }
    b
}

/// A self-relative descriptor holding only `owner` (what
/// ZwQuerySecurityObject returns for OWNER_SECURITY_INFORMATION).
pub fn owner_only(owner: &str) -> Vec<u8> {
    let mut b = vec![1u8, 0, 0x00, 0x80]; // revision, sbz1, SE_SELF_RELATIVE
    b.extend_from_slice(&20u32.to_le_bytes()); // owner at 20
    b.extend_from_slice(&[0; 12]); // group, SACL, DACL: none
    b.extend_from_slice(&sid_bytes(owner));
    b
}

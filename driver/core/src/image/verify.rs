//! The verifier: the only way from bytes to a [`Policy`].
//!
//! Checks, in order: header (magic, version, target, flags, lengths, body
//! hash), postcard body (no trailing bytes), table sizes, the string pool
//! (UTF-8, every string on character boundaries), lists (in bounds, strictly
//! ascending so that binary search is exact), rules (actions, ops, code
//! ranges that tile the code table in rule order, tags, anchors), every
//! instruction (opcode, field, reserved bits, operand in bounds, jumps
//! forward and inside their rule, exactly one `RET` at the end), the
//! worst-case cost against the header and [`MAX_WORST_CASE`], and the path
//! trie (parent/depth consistency, children after parents, labels strictly
//! ascending, every rule listed exactly once, at its anchor).
//!
//! It never allocates, never panics (all reads are `get`), and its running
//! time is linear in the image size (plus the byte length of string lists
//! and labels for the sortedness checks).
use core::cmp::Ordering;

use sha2::{Digest, Sha256};

use super::error::{Table, VerifyError as E};
use super::format::*;
use super::strmatch::label_hash_const;
use super::Policy;
use crate::event::Target;

/// Record `i` (of `N` bytes) of a table, if in bounds.
pub(super) fn rec<const N: usize>(table: &[u8], i: u32) -> Option<[u8; N]> {
    let start = (i as usize).checked_mul(N)?;
    table.get(start..start.checked_add(N)?)?.try_into().ok()
}

pub(super) fn u32_rec(table: &[u8], i: u32) -> Option<u32> {
    rec::<4>(table, i).map(u32::from_le_bytes)
}

pub(super) fn u64_rec(table: &[u8], i: u32) -> Option<u64> {
    rec::<8>(table, i).map(u64::from_le_bytes)
}

/// `(hash, label, child)` of a trie edge.
pub(super) fn edge_rec(table: &[u8], i: u32) -> Option<(u32, u32, u32)> {
    let r = rec::<EDGE_LEN>(table, i)?;
    Some((
        u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
        u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
        u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
    ))
}

/// `(first, count)` of a list record.
pub(super) fn pair_rec(table: &[u8], i: u32) -> Option<(u32, u32)> {
    let r = rec::<8>(table, i)?;
    Some((
        u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
        u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
    ))
}

fn count(table: &[u8], rec_len: usize, which: Table) -> Result<u32, E> {
    if table.len() % rec_len != 0 {
        return Err(E::TableSize {
            table: which,
            len: table.len(),
        });
    }
    u32::try_from(table.len() / rec_len).map_err(|_| E::TableSize {
        table: which,
        len: table.len(),
    })
}

struct Counts {
    strs: u32,
    nums: u32,
    str_lists: u32,
    list_items: u32,
    num_lists: u32,
    insns: u32,
    rules: u32,
    nodes: u32,
    edges: u32,
    rule_lists: u32,
}

// Not inlined (nor are the verify_* passes it calls): each keeps its own
// stack frame, so the kernel driver's load path never holds all of their
// locals at once (docs/windows-driver.md, "Stack budget": at most 1 KiB
// per frame).
#[inline(never)]
pub(super) fn verify(bytes: &[u8]) -> Result<Policy<'_>, E> {
    if bytes.len() < HEADER_LEN {
        return Err(E::TooShort { len: bytes.len() });
    }
    if bytes.len() > MAX_IMAGE_LEN {
        return Err(E::TooLarge { len: bytes.len() });
    }
    let (head, body_bytes) = bytes.split_at(HEADER_LEN);
    let header = parse_header(head)?;
    if header.body_len as usize != body_bytes.len() {
        return Err(E::BodyLength {
            header: header.body_len,
            actual: body_bytes.len(),
        });
    }
    let digest: [u8; 32] = Sha256::digest(body_bytes).into();
    if digest != header.body_hash {
        return Err(E::HashMismatch);
    }
    let (body, rest): (Body<'_>, &[u8]) =
        postcard::take_from_bytes(body_bytes).map_err(|_| E::BodyEncoding)?;
    if !rest.is_empty() {
        return Err(E::TrailingBytes { count: rest.len() });
    }
    let target = Target::from_u8(header.target).ok_or(E::UnknownTarget {
        found: header.target,
    })?;
    let strings = core::str::from_utf8(body.strings).map_err(|e| E::StringsNotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let n = Counts {
        strs: count(body.strs, STR_LEN, Table::Strs)?,
        nums: count(body.nums, NUM_LEN, Table::Nums)?,
        str_lists: count(body.str_lists, LIST_LEN, Table::StrLists)?,
        list_items: count(body.list_items, LIST_ITEM_LEN, Table::ListItems)?,
        num_lists: count(body.num_lists, LIST_LEN, Table::NumLists)?,
        insns: count(body.code, INSN_LEN, Table::Code)?,
        rules: count(body.rules, RULE_LEN, Table::Rules)?,
        nodes: count(body.nodes, NODE_LEN, Table::Nodes)?,
        edges: count(body.edges, EDGE_LEN, Table::Edges)?,
        rule_lists: count(body.rule_lists, RULE_LIST_ITEM_LEN, Table::RuleLists)?,
    };
    let policy = Policy {
        header,
        body,
        strings,
        target,
    };
    verify_strings(&policy, &n)?;
    verify_lists(&policy, &n)?;
    let cost = verify_rules_and_code(&policy, &n)?;
    if cost > u64::from(MAX_WORST_CASE) {
        return Err(E::TooCostly { cost });
    }
    if cost != u64::from(header.worst_case) {
        return Err(E::WorstCase {
            header: header.worst_case,
            actual: cost,
        });
    }
    verify_trie(&policy, &n)?;
    Ok(policy)
}

fn parse_header(h: &[u8]) -> Result<Header, E> {
    let u16_at = |o: usize| {
        h.get(o..o + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        h.get(o..o + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if h.get(0..8) != Some(&MAGIC[..]) {
        return Err(E::BadMagic);
    }
    let version = u16_at(8);
    if version != FORMAT_VERSION {
        return Err(E::UnsupportedVersion { found: version });
    }
    let target = h.get(10).copied().unwrap_or(0xff);
    if Target::from_u8(target).is_none() {
        return Err(E::UnknownTarget { found: target });
    }
    let flags = h.get(11).copied().unwrap_or(0xff);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(E::UnknownFlags { found: flags });
    }
    let header_len = u32_at(12);
    if header_len as usize != HEADER_LEN {
        return Err(E::HeaderLength { found: header_len });
    }
    let reserved = u32_at(28);
    if reserved != 0 {
        return Err(E::ReservedNotZero);
    }
    let mut body_hash = [0u8; 32];
    if let Some(b) = h.get(32..64) {
        body_hash.copy_from_slice(b);
    }
    Ok(Header {
        version,
        target,
        flags,
        header_len,
        body_len: u32_at(16),
        rule_count: u32_at(20),
        worst_case: u32_at(24),
        reserved,
        body_hash,
    })
}

#[inline(never)]
fn verify_strings(p: &Policy<'_>, n: &Counts) -> Result<(), E> {
    for i in 0..n.strs {
        let (off, len) = pair_rec(p.body.strs, i).ok_or(E::StringBounds { index: i })?;
        if len > MAX_STRING_LEN {
            return Err(E::StringBounds { index: i });
        }
        let end = (off as usize).checked_add(len as usize);
        if end
            .and_then(|end| p.strings.get(off as usize..end))
            .is_none()
        {
            return Err(E::StringBounds { index: i });
        }
    }
    Ok(())
}

#[inline(never)]
fn verify_lists(p: &Policy<'_>, n: &Counts) -> Result<(), E> {
    for l in 0..n.str_lists {
        let (first, cnt) = pair_rec(p.body.str_lists, l).ok_or(E::ListBounds { index: l })?;
        if first.checked_add(cnt).is_none_or(|end| end > n.list_items) {
            return Err(E::ListBounds { index: l });
        }
        let mut prev: Option<&str> = None;
        for k in first..first + cnt {
            let id = u32_rec(p.body.list_items, k).ok_or(E::ListBounds { index: l })?;
            let s = p.string(id).ok_or(E::ListBounds { index: l })?;
            if prev.is_some_and(|q| q.as_bytes().cmp(s.as_bytes()) != Ordering::Less) {
                return Err(E::ListNotSorted { index: l });
            }
            prev = Some(s);
        }
    }
    for l in 0..n.num_lists {
        let (first, cnt) = pair_rec(p.body.num_lists, l).ok_or(E::ListBounds { index: l })?;
        if first.checked_add(cnt).is_none_or(|end| end > n.nums) {
            return Err(E::ListBounds { index: l });
        }
        let mut prev: Option<u64> = None;
        for k in first..first + cnt {
            let v = u64_rec(p.body.nums, k).ok_or(E::ListBounds { index: l })?;
            if prev.is_some_and(|q| q >= v) {
                return Err(E::ListNotSorted { index: l });
            }
            prev = Some(v);
        }
    }
    Ok(())
}

/// Checks rules and their programs; returns the worst-case cost.
#[inline(never)]
fn verify_rules_and_code(p: &Policy<'_>, n: &Counts) -> Result<u64, E> {
    if n.rules > MAX_RULES {
        return Err(E::TooManyRules { count: n.rules });
    }
    if n.rules != p.header.rule_count {
        return Err(E::RuleCount {
            header: p.header.rule_count,
            actual: n.rules,
        });
    }
    let mut expect_start: u32 = 0;
    let mut cost: u64 = 0;
    let mut has_deny = false;
    let mut has_recording = false;
    for r in 0..n.rules {
        let raw = rec::<RULE_LEN>(p.body.rules, r).ok_or(E::CodeRange { rule: r })?;
        let rule = RuleRec::decode(&raw);
        match crate::event::Action::from_u8(rule.action) {
            Some(crate::event::Action::None) | None => {
                return Err(E::UnknownAction {
                    rule: r,
                    found: rule.action,
                })
            }
            Some(a) => {
                has_deny |= a == crate::event::Action::Deny;
                has_recording |= a.records();
            }
        }
        if rule.ops == 0 {
            return Err(E::EmptyOps { rule: r });
        }
        if rule.flags != 0 {
            return Err(E::RuleFlags { rule: r });
        }
        if rule.code_start != expect_start {
            return Err(E::CodeLayout { rule: r });
        }
        let end = rule
            .code_start
            .checked_add(rule.code_len)
            .filter(|&e| rule.code_len > 0 && e <= n.insns)
            .ok_or(E::CodeRange { rule: r })?;
        if rule.tag != NO_STRING && rule.tag >= n.strs {
            return Err(E::TagBounds { rule: r });
        }
        if rule.anchor >= n.nodes {
            return Err(E::Anchor { rule: r });
        }
        verify_program(p, n, rule.code_start, end)?;
        cost += u64::from(rule.code_len);
        expect_start = end;
    }
    if expect_start != n.insns {
        return Err(E::CodeLayout { rule: n.rules });
    }
    let want_flags = if has_deny { FLAG_HAS_DENY } else { 0 }
        | if has_recording { FLAG_HAS_RECORDING } else { 0 };
    if p.header.flags != want_flags {
        return Err(E::UnknownFlags {
            found: p.header.flags,
        });
    }
    Ok(cost)
}

fn verify_program(p: &Policy<'_>, n: &Counts, start: u32, end: u32) -> Result<(), E> {
    let last = end - 1; // end > start, checked by the caller
    for pc in start..end {
        let insn = Insn::decode(rec::<INSN_LEN>(p.body.code, pc).ok_or(E::CodeRange { rule: 0 })?);
        if insn.reserved != 0 {
            return Err(E::ReservedBits { insn: pc });
        }
        let operand_ok = |limit: u32| {
            if insn.operand < limit {
                Ok(())
            } else {
                Err(E::OperandBounds { insn: pc })
            }
        };
        let field_ok = |limit: u8| {
            if insn.field < limit {
                Ok(())
            } else {
                Err(E::BadField {
                    insn: pc,
                    found: insn.field,
                })
            }
        };
        let no_field = || {
            if insn.field == 0 {
                Ok(())
            } else {
                Err(E::BadField {
                    insn: pc,
                    found: insn.field,
                })
            }
        };
        match insn.opcode {
            op::STREQ | op::PREFIX | op::SUFFIX | op::CONTAINS | op::UNDER | op::GLOB => {
                field_ok(sfield::COUNT)?;
                operand_ok(n.strs)?;
            }
            op::STRIN => {
                field_ok(sfield::COUNT)?;
                operand_ok(n.str_lists)?;
            }
            op::EQ | op::NE | op::LT | op::LE | op::GT | op::GE => {
                field_ok(nfield::COUNT)?;
                operand_ok(n.nums)?;
            }
            op::NUMIN => {
                field_ok(nfield::COUNT)?;
                operand_ok(n.num_lists)?;
            }
            op::PAGING | op::SET => {
                no_field()?;
                operand_ok(2)?;
            }
            op::NOT => {
                no_field()?;
                operand_ok(1)?;
            }
            op::JT | op::JF => {
                no_field()?;
                // Target pc + 1 + k must be inside the program; at most the
                // final RET.
                let target = pc
                    .checked_add(1)
                    .and_then(|t| t.checked_add(insn.operand))
                    .ok_or(E::JumpOutOfRange { insn: pc })?;
                if target > last {
                    return Err(E::JumpOutOfRange { insn: pc });
                }
            }
            op::RET => {
                no_field()?;
                operand_ok(1)?;
                if pc != last {
                    return Err(E::Return { insn: pc });
                }
            }
            other => {
                return Err(E::UnknownOpcode {
                    insn: pc,
                    found: other,
                })
            }
        }
        if pc == last && insn.opcode != op::RET {
            return Err(E::Return { insn: pc });
        }
    }
    Ok(())
}

fn node(p: &Policy<'_>, i: u32) -> Option<NodeRec> {
    rec::<NODE_LEN>(p.body.nodes, i).map(|b| NodeRec::decode(&b))
}

#[inline(never)]
fn verify_trie(p: &Policy<'_>, n: &Counts) -> Result<(), E> {
    if n.nodes == 0 {
        return Err(E::Node { node: 0 });
    }
    let mut listed: u64 = 0;
    for i in 0..n.nodes {
        let nd = node(p, i).ok_or(E::Node { node: i })?;
        if i == 0 {
            if nd.parent != 0 || nd.depth != 0 {
                return Err(E::Node { node: 0 });
            }
        } else {
            if nd.parent >= i {
                return Err(E::Node { node: i });
            }
            let parent = node(p, nd.parent).ok_or(E::Node { node: i })?;
            if parent.depth.checked_add(1) != Some(nd.depth) {
                return Err(E::Node { node: i });
            }
        }
        if nd.depth > MAX_TRIE_DEPTH {
            return Err(E::TrieTooDeep { node: i });
        }
        if nd
            .first_edge
            .checked_add(nd.edge_count)
            .is_none_or(|e| e > n.edges)
            || nd
                .first_rule
                .checked_add(nd.rule_count)
                .is_none_or(|e| e > n.rule_lists)
        {
            return Err(E::Node { node: i });
        }
        let mut prev: Option<(u32, &str)> = None;
        for e in nd.first_edge..nd.first_edge + nd.edge_count {
            let (hash, label, child) = edge_rec(p.body.edges, e).ok_or(E::Edge { edge: e })?;
            let label = p.string(label).ok_or(E::Edge { edge: e })?;
            if hash != label_hash_const(label) {
                return Err(E::Edge { edge: e });
            }
            if child <= i || child >= n.nodes {
                return Err(E::Edge { edge: e });
            }
            if node(p, child).is_none_or(|c| c.parent != i) {
                return Err(E::Edge { edge: e });
            }
            if prev.is_some_and(|(ph, q)| {
                (ph, q.as_bytes()).cmp(&(hash, label.as_bytes())) != Ordering::Less
            }) {
                return Err(E::EdgesNotSorted { node: i });
            }
            prev = Some((hash, label));
        }
        let mut prev_rule: Option<u32> = None;
        for k in nd.first_rule..nd.first_rule + nd.rule_count {
            let r = u32_rec(p.body.rule_lists, k).ok_or(E::RuleList { node: i })?;
            if r >= n.rules || prev_rule.is_some_and(|q| q >= r) {
                return Err(E::RuleList { node: i });
            }
            let raw = rec::<RULE_LEN>(p.body.rules, r).ok_or(E::RuleList { node: i })?;
            if RuleRec::decode(&raw).anchor != i {
                return Err(E::RuleList { node: i });
            }
            prev_rule = Some(r);
        }
        listed += u64::from(nd.rule_count);
    }
    if listed != u64::from(n.rules) || n.rule_lists != n.rules {
        return Err(E::RuleListTotal {
            listed,
            rules: n.rules,
        });
    }
    Ok(())
}

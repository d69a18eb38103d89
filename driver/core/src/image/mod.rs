//! Policy images: format, verifier and evaluator.
//!
//! [`Policy::from_bytes`] is the only constructor of [`Policy`], and the
//! evaluator only runs on a `Policy`, so every program it executes has been
//! verified: every index, offset and length in bounds, jumps only forward
//! (termination by construction), the worst-case cost bounded and recorded.
//!
//! Cost model of [`Policy::evaluate`], per event, with `L` the path length,
//! `D` its number of components, `F` the fan-out of a trie node, `C` the
//! rules a path reaches (the unanchored rules plus the rules anchored at one
//! of the path's `D` prefixes) and `I` a rule's instruction count:
//!
//! * trie walk: `O(L + D log F)` — independent of the number of rules;
//! * candidate merge: `O(C * D)` in rule order, stopping at the first match;
//! * each candidate: `O(I)` instructions, each `O(L)` for string tests
//!   (`O(L * |s|)` for `contains` and `matches`, `O(L log N)` for `in`
//!   with `N` list entries) and `O(1)` for numbers.
//!
//! So many rules anchored under distinct directories cost about what one
//! rule costs; only rules without `under` (or anchored at a prefix of the
//! event's path) are tried one by one.
mod error;
mod eval;
pub mod format;
pub mod strmatch;
mod verify;

pub use error::{Table, VerifyError};

use crate::event::Target;
use format::{Body, Header};

/// A verified policy image borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    header: Header,
    body: Body<'a>,
    /// The body's string pool, checked to be UTF-8 by the verifier.
    strings: &'a str,
    target: Target,
}

impl<'a> Policy<'a> {
    /// Verifies `bytes` and returns the policy. Never panics, never loops
    /// more than a constant times the input length.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Policy<'a>, VerifyError> {
        verify::verify(bytes)
    }

    /// SHA-256 of the image body; identifies the policy in audit records.
    pub fn hash(&self) -> [u8; 32] {
        self.header.body_hash
    }

    /// Platform the policy was compiled for.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Number of rules.
    pub fn rule_count(&self) -> u32 {
        self.header.rule_count
    }

    /// Worst-case instructions executed for one event (from the header,
    /// checked by the verifier).
    pub fn worst_case(&self) -> u32 {
        self.header.worst_case
    }

    /// Whether any rule denies (the enforcement point needs blocking hooks).
    pub fn has_deny(&self) -> bool {
        self.header.flags & format::FLAG_HAS_DENY != 0
    }

    /// Whether any rule logs or denies.
    pub fn has_recording(&self) -> bool {
        self.header.flags & format::FLAG_HAS_RECORDING != 0
    }

    /// The header fields.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The body tables (for disassembly and tests).
    pub fn body(&self) -> &Body<'a> {
        &self.body
    }

    /// Rule record `i` (0-based), or `None` when out of range.
    pub fn rule(&self, i: u32) -> Option<format::RuleRec> {
        verify::rec::<{ format::RULE_LEN }>(self.body.rules, i).map(|b| format::RuleRec::decode(&b))
    }

    /// Instruction at absolute position `pc`.
    pub fn insn(&self, pc: u32) -> Option<format::Insn> {
        verify::rec::<{ format::INSN_LEN }>(self.body.code, pc).map(format::Insn::decode)
    }

    /// Path-trie node `i` (0 is the root).
    pub fn node(&self, i: u32) -> Option<format::NodeRec> {
        verify::rec::<{ format::NODE_LEN }>(self.body.nodes, i).map(|b| format::NodeRec::decode(&b))
    }

    /// Path-trie edge `i`: `(label hash, label string id, child node)`.
    pub fn edge(&self, i: u32) -> Option<(u32, u32, u32)> {
        verify::edge_rec(self.body.edges, i)
    }

    /// Entry `k` of the concatenated per-node rule lists (a 0-based rule index).
    pub fn rule_list_entry(&self, k: u32) -> Option<u32> {
        verify::u32_rec(self.body.rule_lists, k)
    }

    /// Number constant `i`.
    pub fn number(&self, i: u32) -> Option<u64> {
        verify::u64_rec(self.body.nums, i)
    }

    /// The string ids of string list `l`.
    pub fn string_list(&self, l: u32) -> impl Iterator<Item = u32> + '_ {
        let (first, count) = verify::pair_rec(self.body.str_lists, l).unwrap_or((0, 0));
        (first..first.saturating_add(count))
            .filter_map(|k| verify::u32_rec(self.body.list_items, k))
    }

    /// The values of number list `l`.
    pub fn number_list(&self, l: u32) -> impl Iterator<Item = u64> + '_ {
        let (first, count) = verify::pair_rec(self.body.num_lists, l).unwrap_or((0, 0));
        (first..first.saturating_add(count)).filter_map(|k| self.number(k))
    }

    /// String constant `id`, or `None` when out of range.
    pub fn string(&self, id: u32) -> Option<&'a str> {
        let i = usize::try_from(id).ok()?;
        let rec = self
            .body
            .strs
            .get(i.checked_mul(8)?..i.checked_mul(8)?.checked_add(8)?)?;
        let off = u32::from_le_bytes(rec.get(0..4)?.try_into().ok()?) as usize;
        let len = u32::from_le_bytes(rec.get(4..8)?.try_into().ok()?) as usize;
        self.strings.get(off..off.checked_add(len)?)
    }
}

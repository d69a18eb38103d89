//! The policy image format: header, body tables and instruction encoding.
//!
//! ```text
//! image  = header (64 bytes, little-endian) ++ body (postcard)
//! ```
//!
//! ## Header
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8  | magic `FLTPOLIM` |
//! | 8  | 2  | format version ([`FORMAT_VERSION`]) |
//! | 10 | 1  | target (0 windows, 1 linux) |
//! | 11 | 1  | flags ([`FLAG_HAS_DENY`], [`FLAG_HAS_RECORDING`]) |
//! | 12 | 4  | header length (64) |
//! | 16 | 4  | body length |
//! | 20 | 4  | rule count |
//! | 24 | 4  | worst-case instruction count per event |
//! | 28 | 4  | reserved, zero |
//! | 32 | 32 | SHA-256 of the body |
//!
//! ## Body
//!
//! A postcard-encoded [`Body`]: every table is a borrowed byte string of
//! fixed-size little-endian records, so the evaluator reads the image in
//! place without allocating or copying.
//!
//! | table | record | fields |
//! |-------|-------:|--------|
//! | `strings` | — | UTF-8 pool; all string constants, labels and tags |
//! | `strs` | 8 | `offset u32, len u32` into `strings` |
//! | `nums` | 8 | `u64` constants (single values and number-list items) |
//! | `str_lists` | 8 | `first u32, count u32` into `list_items` |
//! | `list_items` | 4 | string ids (`u32`); each string list strictly ascending by bytes |
//! | `num_lists` | 8 | `first u32, count u32` into `nums`; each strictly ascending |
//! | `code` | 8 | instructions (below) |
//! | `rules` | 24 | `action u8, ops u8, flags u16, code_start u32, code_len u32, line u32, tag u32, anchor u32` |
//! | `nodes` | 24 | path trie: `parent u32, depth u32, first_edge u32, edge_count u32, first_rule u32, rule_count u32` |
//! | `edges` | 12 | `hash u32` ([`label_hash`](super::strmatch::label_hash) of the label), `label u32` (string id, one path component), `child u32`; per node strictly ascending by `(hash, label bytes)` |
//! | `rule_lists` | 4 | rule indices (0-based), ascending per node |
//!
//! `tag` is a string id or [`NO_STRING`]. `anchor` is the trie node the rule
//! is listed at (node 0, the root, for rules without `under`).
//!
//! ## Instructions
//!
//! Each instruction is 8 bytes:
//!
//! ```text
//!  byte 0   byte 1   byte 2-3   bytes 4-7
//! +--------+--------+----------+-------------------+
//! | opcode | field  | reserved | operand (u32, LE) |
//! +--------+--------+----------+-------------------+
//! ```
//!
//! The machine has one boolean register, the *flag*, true when a rule's
//! program starts. Tests overwrite it; `NOT` inverts it; `JT`/`JF` skip
//! forward by `operand` instructions when it is true/false; `RET` ends the
//! program and the rule matches iff the flag is true. `a and b` lowers to
//! `a; JF end; b; end:` and `a or b` to `a; JT end; b; end:`: short-circuit
//! evaluation with no stack.
//!
//! | opcode | mnemonic | field | operand | flag becomes |
//! |-------:|----------|-------|---------|--------------|
//! | 0x01 | `STREQ`    | str field | string id | field == s |
//! | 0x02 | `PREFIX`   | str field | string id | field starts with s |
//! | 0x03 | `SUFFIX`   | str field | string id | field ends with s |
//! | 0x04 | `CONTAINS` | str field | string id | s occurs in field |
//! | 0x05 | `UNDER`    | str field | string id | field == s, or below s at a separator |
//! | 0x06 | `GLOB`     | str field | string id | field matches glob s |
//! | 0x07 | `STRIN`    | str field | str_lists id | field is in the sorted list |
//! | 0x10–0x15 | `EQ NE LT LE GT GE` | num field | number id | field OP n |
//! | 0x16 | `NUMIN`    | num field | num_lists id | field is in the sorted list |
//! | 0x18 | `PAGING`   | 0 | 0 or 1 | paging == operand |
//! | 0x20 | `NOT`      | 0 | 0 | !flag |
//! | 0x23 | `SET`      | 0 | 0 or 1 | operand != 0 |
//! | 0x21 | `JT`       | 0 | k | (unchanged) skip k instructions if flag |
//! | 0x22 | `JF`       | 0 | k | (unchanged) skip k instructions if !flag |
//! | 0x30 | `RET`      | 0 | 0 | — ends the program |
//!
//! String fields: 0 `path`, 1 `name`, 2 `ext`, 3 `dir`, 4 `image`,
//! 5 `process`, 6 `user`. Number fields: 0 `pid`, 1 `ppid`, 2 `size`.
//! Reserved bytes must be zero.
//!
//! Jumps only go forward and every program ends with `RET`, so a rule costs
//! at most its length in instructions; the header's worst case is the sum
//! over all rules, checked by the verifier.
use serde::{Deserialize, Serialize};

/// First eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"FLTPOLIM";
/// The only format version this build reads. Bumped on any change to the
/// header, body tables or instruction set.
pub const FORMAT_VERSION: u16 = 1;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Header flag: at least one rule denies (the engine needs blocking hooks).
pub const FLAG_HAS_DENY: u8 = 1 << 0;
/// Header flag: at least one rule logs or denies (the engine needs a log).
pub const FLAG_HAS_RECORDING: u8 = 1 << 1;
/// All defined header flags.
pub const KNOWN_FLAGS: u8 = FLAG_HAS_DENY | FLAG_HAS_RECORDING;
/// "No string" in a string-id slot (a rule without a tag).
pub const NO_STRING: u32 = u32::MAX;

/// Largest image accepted: 16 MiB is ~100x a 10,000-rule policy and keeps a
/// driver's non-paged copy of the image bounded.
pub const MAX_IMAGE_LEN: usize = 16 << 20;
/// Most rules in one image; rule indices must fit comfortably in audit
/// records and the evaluator's candidate merge.
pub const MAX_RULES: u32 = 65_536;
/// Largest worst-case instruction count per event. One instruction is a few
/// nanoseconds to a few hundred (string scans), so this bounds the time a
/// kernel callback can spend in the evaluator even for a hostile image.
pub const MAX_WORST_CASE: u32 = 1 << 20;
/// Deepest path-trie node. Windows paths have at most 32,767 characters, but
/// rules anchored deeper than 64 components do not occur in practice; the
/// evaluator keeps one cursor per level on its stack, so the bound fixes
/// its stack use.
pub const MAX_TRIE_DEPTH: u32 = 64;
/// Longest string constant: a maximal Windows path in UTF-8 (32,767 UTF-16
/// units, up to 3 bytes each).
pub const MAX_STRING_LEN: u32 = 3 * 32_767;

/// Size of one record in each table.
pub const INSN_LEN: usize = 8;
pub const STR_LEN: usize = 8;
pub const NUM_LEN: usize = 8;
pub const LIST_LEN: usize = 8; // str_lists and num_lists
pub const LIST_ITEM_LEN: usize = 4;
pub const RULE_LEN: usize = 24;
pub const NODE_LEN: usize = 24;
pub const EDGE_LEN: usize = 12;
pub const RULE_LIST_ITEM_LEN: usize = 4;

/// Opcodes (see the module table).
pub mod op {
    pub const STREQ: u8 = 0x01;
    pub const PREFIX: u8 = 0x02;
    pub const SUFFIX: u8 = 0x03;
    pub const CONTAINS: u8 = 0x04;
    pub const UNDER: u8 = 0x05;
    pub const GLOB: u8 = 0x06;
    pub const STRIN: u8 = 0x07;
    pub const EQ: u8 = 0x10;
    pub const NE: u8 = 0x11;
    pub const LT: u8 = 0x12;
    pub const LE: u8 = 0x13;
    pub const GT: u8 = 0x14;
    pub const GE: u8 = 0x15;
    pub const NUMIN: u8 = 0x16;
    pub const PAGING: u8 = 0x18;
    pub const NOT: u8 = 0x20;
    pub const JT: u8 = 0x21;
    pub const JF: u8 = 0x22;
    pub const SET: u8 = 0x23;
    pub const RET: u8 = 0x30;
}

/// String fields.
pub mod sfield {
    pub const PATH: u8 = 0;
    pub const NAME: u8 = 1;
    pub const EXT: u8 = 2;
    pub const DIR: u8 = 3;
    pub const IMAGE: u8 = 4;
    pub const PROCESS: u8 = 5;
    pub const USER: u8 = 6;
    /// Number of string fields.
    pub const COUNT: u8 = 7;
    pub const NAMES: [&str; COUNT as usize] =
        ["path", "name", "ext", "dir", "image", "process", "user"];
}

/// Number fields.
pub mod nfield {
    pub const PID: u8 = 0;
    pub const PPID: u8 = 1;
    pub const SIZE: u8 = 2;
    pub const COUNT: u8 = 3;
    pub const NAMES: [&str; COUNT as usize] = ["pid", "ppid", "size"];
}

/// The postcard body. Every field borrows from the image bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body<'a> {
    #[serde(borrow)]
    pub strings: &'a [u8],
    pub strs: &'a [u8],
    pub nums: &'a [u8],
    pub str_lists: &'a [u8],
    pub list_items: &'a [u8],
    pub num_lists: &'a [u8],
    pub code: &'a [u8],
    pub rules: &'a [u8],
    pub nodes: &'a [u8],
    pub edges: &'a [u8],
    pub rule_lists: &'a [u8],
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub opcode: u8,
    pub field: u8,
    pub reserved: u16,
    pub operand: u32,
}

impl Insn {
    pub const fn new(opcode: u8, field: u8, operand: u32) -> Insn {
        Insn {
            opcode,
            field,
            reserved: 0,
            operand,
        }
    }
    pub fn encode(self) -> [u8; INSN_LEN] {
        let o = self.operand.to_le_bytes();
        let r = self.reserved.to_le_bytes();
        [self.opcode, self.field, r[0], r[1], o[0], o[1], o[2], o[3]]
    }
    pub fn decode(b: [u8; INSN_LEN]) -> Insn {
        Insn {
            opcode: b[0],
            field: b[1],
            reserved: u16::from_le_bytes([b[2], b[3]]),
            operand: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// One decoded rule record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRec {
    pub action: u8,
    pub ops: u8,
    pub flags: u16,
    pub code_start: u32,
    pub code_len: u32,
    pub line: u32,
    pub tag: u32,
    pub anchor: u32,
}

impl RuleRec {
    pub fn encode(self) -> [u8; RULE_LEN] {
        let mut out = [0u8; RULE_LEN];
        out[0] = self.action;
        out[1] = self.ops;
        out[2..4].copy_from_slice(&self.flags.to_le_bytes());
        out[4..8].copy_from_slice(&self.code_start.to_le_bytes());
        out[8..12].copy_from_slice(&self.code_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.line.to_le_bytes());
        out[16..20].copy_from_slice(&self.tag.to_le_bytes());
        out[20..24].copy_from_slice(&self.anchor.to_le_bytes());
        out
    }
    pub fn decode(b: &[u8; RULE_LEN]) -> RuleRec {
        RuleRec {
            action: b[0],
            ops: b[1],
            flags: u16::from_le_bytes([b[2], b[3]]),
            code_start: u32_at(b, 4),
            code_len: u32_at(b, 8),
            line: u32_at(b, 12),
            tag: u32_at(b, 16),
            anchor: u32_at(b, 20),
        }
    }
}

/// One decoded trie node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRec {
    pub parent: u32,
    pub depth: u32,
    pub first_edge: u32,
    pub edge_count: u32,
    pub first_rule: u32,
    pub rule_count: u32,
}

impl NodeRec {
    pub fn encode(self) -> [u8; NODE_LEN] {
        let mut out = [0u8; NODE_LEN];
        for (i, v) in [
            self.parent,
            self.depth,
            self.first_edge,
            self.edge_count,
            self.first_rule,
            self.rule_count,
        ]
        .into_iter()
        .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
    pub fn decode(b: &[u8; NODE_LEN]) -> NodeRec {
        NodeRec {
            parent: u32_at(b, 0),
            depth: u32_at(b, 4),
            first_edge: u32_at(b, 8),
            edge_count: u32_at(b, 12),
            first_rule: u32_at(b, 16),
            rule_count: u32_at(b, 20),
        }
    }
}

/// Reads a little-endian u32 at `at`; callers pass in-bounds offsets of
/// fixed-size arrays, so the slice pattern below always matches.
fn u32_at<const N: usize>(b: &[u8; N], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b1, c, d]) => u32::from_le_bytes([a, b1, c, d]),
        _ => 0,
    }
}

/// Fixed header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub target: u8,
    pub flags: u8,
    pub header_len: u32,
    pub body_len: u32,
    pub rule_count: u32,
    pub worst_case: u32,
    pub reserved: u32,
    pub body_hash: [u8; 32],
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10] = self.target;
        out[11] = self.flags;
        out[12..16].copy_from_slice(&self.header_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.body_len.to_le_bytes());
        out[20..24].copy_from_slice(&self.rule_count.to_le_bytes());
        out[24..28].copy_from_slice(&self.worst_case.to_le_bytes());
        out[28..32].copy_from_slice(&self.reserved.to_le_bytes());
        out[32..64].copy_from_slice(&self.body_hash);
        out
    }
}

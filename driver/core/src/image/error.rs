//! Why the verifier rejected an image: `Copy`, allocation-free, precise.

use core::fmt;

/// A table of the image body, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Strings,
    Strs,
    Nums,
    StrLists,
    ListItems,
    NumLists,
    Code,
    Rules,
    Nodes,
    Edges,
    RuleLists,
}

impl Table {
    pub const fn name(self) -> &'static str {
        match self {
            Table::Strings => "strings",
            Table::Strs => "strs",
            Table::Nums => "nums",
            Table::StrLists => "str_lists",
            Table::ListItems => "list_items",
            Table::NumLists => "num_lists",
            Table::Code => "code",
            Table::Rules => "rules",
            Table::Nodes => "nodes",
            Table::Edges => "edges",
            Table::RuleLists => "rule_lists",
        }
    }
}

/// What exactly is wrong. Indices are 0-based entries of the named table
/// (instruction indices are absolute positions in `code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Fewer bytes than the fixed header.
    TooShort {
        len: usize,
    },
    /// Larger than [`super::format::MAX_IMAGE_LEN`].
    TooLarge {
        len: usize,
    },
    BadMagic,
    UnsupportedVersion {
        found: u16,
    },
    UnknownTarget {
        found: u8,
    },
    UnknownFlags {
        found: u8,
    },
    HeaderLength {
        found: u32,
    },
    ReservedNotZero,
    /// Header body length disagrees with the bytes present.
    BodyLength {
        header: u32,
        actual: usize,
    },
    /// SHA-256 of the body does not match the header.
    HashMismatch,
    /// The body is not a valid postcard `Body`.
    BodyEncoding,
    /// Bytes left after the postcard body.
    TrailingBytes {
        count: usize,
    },
    /// A table's length is not a multiple of its record size.
    TableSize {
        table: Table,
        len: usize,
    },
    /// The string pool is not UTF-8.
    StringsNotUtf8 {
        offset: usize,
    },
    /// String `index` is out of the pool, not on a char boundary, or too long.
    StringBounds {
        index: u32,
    },
    /// Number/list reference out of range.
    ListBounds {
        index: u32,
    },
    /// A string list is not strictly ascending (binary search would lie).
    ListNotSorted {
        index: u32,
    },
    RuleCount {
        header: u32,
        actual: u32,
    },
    TooManyRules {
        count: u32,
    },
    UnknownAction {
        rule: u32,
        found: u8,
    },
    EmptyOps {
        rule: u32,
    },
    RuleFlags {
        rule: u32,
    },
    /// A rule's code range is outside `code` or empty.
    CodeRange {
        rule: u32,
    },
    /// Rules' code ranges must tile `code` in order.
    CodeLayout {
        rule: u32,
    },
    TagBounds {
        rule: u32,
    },
    UnknownOpcode {
        insn: u32,
        found: u8,
    },
    BadField {
        insn: u32,
        found: u8,
    },
    ReservedBits {
        insn: u32,
    },
    /// An operand references a constant that does not exist.
    OperandBounds {
        insn: u32,
    },
    /// A jump leaves the rule's program (or would not move forward).
    JumpOutOfRange {
        insn: u32,
    },
    /// A `RET` before the end, or no `RET` at the end, of a rule's program.
    Return {
        insn: u32,
    },
    WorstCase {
        header: u32,
        actual: u64,
    },
    TooCostly {
        cost: u64,
    },
    /// Rule `rule`'s anchor node does not exist or does not list it.
    Anchor {
        rule: u32,
    },
    /// A trie node is malformed (parent/depth/ranges).
    Node {
        node: u32,
    },
    /// A trie edge points to a missing or non-child node, or a bad label.
    Edge {
        edge: u32,
    },
    /// A node's edges are not strictly ascending by label.
    EdgesNotSorted {
        node: u32,
    },
    /// A node's rule list is not strictly ascending or has a bad index.
    RuleList {
        node: u32,
    },
    /// The rule lists do not list every rule exactly once.
    RuleListTotal {
        listed: u64,
        rules: u32,
    },
    TrieTooDeep {
        node: u32,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::format::*;
        use VerifyError::*;
        match *self {
            TooShort { len } => write!(
                f,
                "image is {len} bytes, shorter than the {HEADER_LEN}-byte header"
            ),
            TooLarge { len } => write!(
                f,
                "image is {len} bytes, over the {MAX_IMAGE_LEN}-byte limit"
            ),
            BadMagic => write!(f, "not a policy image: magic is not FLTPOLIM"),
            UnsupportedVersion { found } => write!(
                f,
                "image format version {found}, this build reads only version {FORMAT_VERSION}"
            ),
            UnknownTarget { found } => {
                write!(f, "unknown target {found} in header (0 windows, 1 linux)")
            }
            UnknownFlags { found } => write!(f, "unknown header flags {found:#04x}"),
            HeaderLength { found } => write!(f, "header length {found}, expected {HEADER_LEN}"),
            ReservedNotZero => write!(f, "reserved header field is not zero"),
            BodyLength { header, actual } => write!(
                f,
                "header says the body is {header} bytes, {actual} bytes follow"
            ),
            HashMismatch => write!(
                f,
                "body SHA-256 does not match the header (corrupted or edited image)"
            ),
            BodyEncoding => write!(f, "body is not a valid postcard image body"),
            TrailingBytes { count } => write!(f, "{count} bytes follow the body"),
            TableSize { table, len } => write!(
                f,
                "table `{}` is {len} bytes, not a whole number of records",
                table.name()
            ),
            StringsNotUtf8 { offset } => write!(f, "string pool is not UTF-8 at byte {offset}"),
            StringBounds { index } => write!(
                f,
                "string {index} is out of the pool, splits a character, or is too long"
            ),
            ListBounds { index } => write!(f, "constant or list {index} is out of range"),
            ListNotSorted { index } => write!(f, "list {index} is not strictly ascending"),
            RuleCount { header, actual } => {
                write!(f, "header says {header} rules, the rule table has {actual}")
            }
            TooManyRules { count } => write!(f, "{count} rules, over the limit of {MAX_RULES}"),
            UnknownAction { rule, found } => write!(f, "rule {rule}: unknown action {found}"),
            EmptyOps { rule } => write!(f, "rule {rule}: covers no operation"),
            RuleFlags { rule } => write!(f, "rule {rule}: reserved flags set"),
            CodeRange { rule } => write!(
                f,
                "rule {rule}: code range is empty or outside the code table"
            ),
            CodeLayout { rule } => write!(
                f,
                "rule {rule}: code ranges do not follow each other in rule order"
            ),
            TagBounds { rule } => write!(f, "rule {rule}: tag is not a valid string"),
            UnknownOpcode { insn, found } => {
                write!(f, "instruction {insn}: unknown opcode {found:#04x}")
            }
            BadField { insn, found } => write!(
                f,
                "instruction {insn}: field {found} is not valid for this opcode"
            ),
            ReservedBits { insn } => write!(f, "instruction {insn}: reserved bits set"),
            OperandBounds { insn } => write!(
                f,
                "instruction {insn}: operand refers to a missing constant"
            ),
            JumpOutOfRange { insn } => {
                write!(f, "instruction {insn}: jump leaves its rule's program")
            }
            Return { insn } => write!(
                f,
                "instruction {insn}: a program must end with its only RET"
            ),
            WorstCase { header, actual } => write!(
                f,
                "header worst case is {header} instructions, the code needs {actual}"
            ),
            TooCostly { cost } => write!(
                f,
                "worst case {cost} instructions per event, over the limit of {MAX_WORST_CASE}"
            ),
            Anchor { rule } => write!(f, "rule {rule}: anchor node missing"),
            Node { node } => write!(f, "trie node {node}: bad parent, depth or range"),
            Edge { edge } => write!(f, "trie edge {edge}: bad label or child"),
            EdgesNotSorted { node } => {
                write!(f, "trie node {node}: edges not strictly ascending by label")
            }
            RuleList { node } => write!(
                f,
                "trie node {node}: rule list not ascending or names a rule anchored elsewhere"
            ),
            RuleListTotal { listed, rules } => {
                write!(f, "rule lists name {listed} rules, the image has {rules}")
            }
            TrieTooDeep { node } => write!(f, "trie node {node}: deeper than {MAX_TRIE_DEPTH}"),
        }
    }
}

#[cfg(any(test, feature = "std"))]
impl std::error::Error for VerifyError {}

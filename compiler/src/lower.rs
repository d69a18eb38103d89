//! Lowering: checked IR → bytecode image.
//!
//! * Conditions become short-circuit code over one flag register (see
//!   `fltpolicy_core::image::format`): `and` jumps to its end when the flag
//!   is false, `or` when it is true, so every jump goes forward.
//! * Every rule's `under` becomes an anchor in a trie of path components
//!   shared by all rules, so the evaluator finds the rules that can apply to
//!   a path by walking the path once, instead of trying every rule. The
//!   rule's program still starts with an exact `UNDER path` test: the trie
//!   is an index that over-approximates, the test decides.
//! * Strings are pooled and deduplicated; lists are sorted and
//!   deduplicated for binary search; the worst-case instruction count (the
//!   sum of all programs' lengths: jumps only go forward) goes in the header.
use std::collections::{BTreeMap, HashMap};

use fltpolicy_core::event::{Action, Target};
use fltpolicy_core::image::format::*;
use fltpolicy_core::image::strmatch::label_hash_const;
use sha2::{Digest, Sha256};

use crate::ir::{Cond, NumField, NumOp, Policy, Rule, StrField, Test};

/// Why a checked policy could not become an image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LowerError {
    #[error("the policy has {count} rules; an image holds at most {MAX_RULES}")]
    TooManyRules { count: usize },
    #[error("rule {rule} (line {line}): a string constant is {len} bytes, over the {MAX_STRING_LEN}-byte limit")]
    StringTooLong { rule: u32, line: u32, len: usize },
    #[error(
        "the policy needs up to {cost} instructions per event, over the limit of {MAX_WORST_CASE}"
    )]
    TooCostly { cost: u64 },
    #[error("the image would be {len} bytes, over the {MAX_IMAGE_LEN}-byte limit")]
    TooLarge { len: usize },
    #[error("a table outgrew 32-bit indices")]
    Overflow,
}

/// Lowers a checked policy to image bytes. The result is accepted by
/// `Policy::from_bytes` (the compiler checks that before returning it).
pub fn lower(policy: &Policy) -> Result<Vec<u8>, LowerError> {
    if policy.rules.len() > MAX_RULES as usize {
        return Err(LowerError::TooManyRules {
            count: policy.rules.len(),
        });
    }
    let mut b = Builder::new(policy.target);
    for rule in &policy.rules {
        b.rule(rule)?;
    }
    b.finish(policy)
}

struct TrieNode {
    parent: u32,
    depth: u32,
    children: BTreeMap<String, u32>,
    rules: Vec<u32>,
}

struct Builder {
    target: Target,
    strings: String,
    str_ids: HashMap<String, u32>,
    strs: Vec<u8>,
    nums: Vec<u64>,
    str_lists: Vec<(u32, u32)>,
    list_items: Vec<u32>,
    num_lists: Vec<(u32, u32)>,
    code: Vec<Insn>,
    rules: Vec<RuleRec>,
    trie: Vec<TrieNode>,
    /// Rule being lowered, for error messages.
    cur: (u32, u32),
}

fn idx(n: usize) -> Result<u32, LowerError> {
    u32::try_from(n).map_err(|_| LowerError::Overflow)
}

impl Builder {
    fn new(target: Target) -> Self {
        Builder {
            target,
            strings: String::new(),
            str_ids: HashMap::new(),
            strs: Vec::new(),
            nums: Vec::new(),
            str_lists: Vec::new(),
            list_items: Vec::new(),
            num_lists: Vec::new(),
            code: Vec::new(),
            rules: Vec::new(),
            trie: vec![TrieNode {
                parent: 0,
                depth: 0,
                children: BTreeMap::new(),
                rules: Vec::new(),
            }],
            cur: (0, 0),
        }
    }

    fn string(&mut self, s: &str) -> Result<u32, LowerError> {
        if let Some(&id) = self.str_ids.get(s) {
            return Ok(id);
        }
        if s.len() > MAX_STRING_LEN as usize {
            return Err(LowerError::StringTooLong {
                rule: self.cur.0,
                line: self.cur.1,
                len: s.len(),
            });
        }
        let id = idx(self.strs.len() / STR_LEN)?;
        let off = idx(self.strings.len())?;
        self.strings.push_str(s);
        self.strs.extend_from_slice(&off.to_le_bytes());
        self.strs.extend_from_slice(&idx(s.len())?.to_le_bytes());
        self.str_ids.insert(s.to_owned(), id);
        Ok(id)
    }

    fn num(&mut self, v: u64) -> Result<u32, LowerError> {
        let id = idx(self.nums.len())?;
        self.nums.push(v);
        Ok(id)
    }

    fn emit(&mut self, insn: Insn) -> usize {
        self.code.push(insn);
        self.code.len() - 1
    }

    /// Points the jump at `at` to the next instruction to be emitted.
    fn patch(&mut self, at: usize) -> Result<(), LowerError> {
        let skip = idx(self.code.len() - at - 1)?;
        self.code[at].operand = skip;
        Ok(())
    }

    /// The trie node for `under`, created as needed; `None` when the path
    /// is too deep to anchor (the rule is then tried for every path, and its
    /// `UNDER` test still decides).
    fn anchor(&mut self, under: &str) -> Option<u32> {
        if under.is_empty() {
            return None;
        }
        let sep = self.target.separator() as char;
        let trimmed = under.strip_suffix(sep).unwrap_or(under);
        let comps: Vec<&str> = trimmed.split(sep).collect();
        if comps.len() > MAX_TRIE_DEPTH as usize {
            return None;
        }
        let mut cur = 0u32;
        for c in comps {
            let next = self.trie.len() as u32;
            let node = &mut self.trie[cur as usize];
            cur = match node.children.get(c) {
                Some(&child) => child,
                None => {
                    node.children.insert(c.to_owned(), next);
                    let depth = node.depth + 1;
                    self.trie.push(TrieNode {
                        parent: cur,
                        depth,
                        children: BTreeMap::new(),
                        rules: Vec::new(),
                    });
                    next
                }
            };
        }
        Some(cur)
    }

    fn rule(&mut self, rule: &Rule) -> Result<(), LowerError> {
        let r = idx(self.rules.len())?;
        self.cur = (rule.index, rule.line);
        let code_start = idx(self.code.len())?;
        let mut conjuncts = Vec::new();
        let mut anchor = 0;
        if let Some(under) = &rule.under {
            anchor = self.anchor(under).unwrap_or(0);
            conjuncts.push(Cond::Test(Test::Under {
                field: StrField::Path,
                value: under.clone(),
            }));
        }
        if let Some(c) = &rule.cond {
            conjuncts.push(c.clone());
        }
        match conjuncts.len() {
            0 => {}
            1 => self.cond(&conjuncts[0])?,
            _ => self.cond(&Cond::And(conjuncts))?,
        }
        self.emit(Insn::new(op::RET, 0, 0));
        let code_len = idx(self.code.len())? - code_start;
        let tag = if rule.tag.is_empty() {
            NO_STRING
        } else {
            self.string(&rule.tag)?
        };
        self.trie[anchor as usize].rules.push(r);
        self.rules.push(RuleRec {
            action: rule.action as u8,
            ops: rule.ops.0,
            flags: 0,
            code_start,
            code_len,
            line: rule.line,
            tag,
            anchor,
        });
        Ok(())
    }

    fn cond(&mut self, c: &Cond) -> Result<(), LowerError> {
        match c {
            Cond::Test(t) => self.test(t),
            Cond::Not(inner) => {
                self.cond(inner)?;
                self.emit(Insn::new(op::NOT, 0, 0));
                Ok(())
            }
            Cond::And(cs) | Cond::Or(cs) if cs.is_empty() => {
                // and() is true, or() is false.
                let v = matches!(c, Cond::And(_)) as u32;
                self.emit(Insn::new(op::SET, 0, v));
                Ok(())
            }
            Cond::And(cs) | Cond::Or(cs) => {
                let jump = if matches!(c, Cond::And(_)) {
                    op::JF
                } else {
                    op::JT
                };
                let mut jumps = Vec::new();
                for (i, sub) in cs.iter().enumerate() {
                    self.cond(sub)?;
                    if i + 1 < cs.len() {
                        jumps.push(self.emit(Insn::new(jump, 0, 0)));
                    }
                }
                for j in jumps {
                    self.patch(j)?;
                }
                Ok(())
            }
        }
    }

    fn test(&mut self, t: &Test) -> Result<(), LowerError> {
        let sf = |f: &StrField| match f {
            StrField::Path => sfield::PATH,
            StrField::Name => sfield::NAME,
            StrField::Ext => sfield::EXT,
            StrField::Dir => sfield::DIR,
            StrField::Image => sfield::IMAGE,
            StrField::Process => sfield::PROCESS,
            StrField::User => sfield::USER,
        };
        let nf = |f: &NumField| match f {
            NumField::Pid => nfield::PID,
            NumField::Ppid => nfield::PPID,
            NumField::Size => nfield::SIZE,
        };
        match t {
            Test::StrEq {
                field,
                value,
                negate,
            } => {
                let s = self.string(value)?;
                self.emit(Insn::new(op::STREQ, sf(field), s));
                if *negate {
                    self.emit(Insn::new(op::NOT, 0, 0));
                }
            }
            Test::Under { field, value }
            | Test::StartsWith { field, value }
            | Test::EndsWith { field, value }
            | Test::Contains { field, value }
            | Test::Matches {
                field,
                pattern: value,
            } => {
                let opcode = match t {
                    Test::Under { .. } => op::UNDER,
                    Test::StartsWith { .. } => op::PREFIX,
                    Test::EndsWith { .. } => op::SUFFIX,
                    Test::Contains { .. } => op::CONTAINS,
                    _ => op::GLOB,
                };
                let s = self.string(value)?;
                self.emit(Insn::new(opcode, sf(field), s));
            }
            Test::StrIn { field, values } => {
                let mut sorted: Vec<&String> = values.iter().collect();
                sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                sorted.dedup();
                let first = idx(self.list_items.len())?;
                for v in &sorted {
                    let id = self.string(v)?;
                    self.list_items.push(id);
                }
                let list = idx(self.str_lists.len())?;
                self.str_lists.push((first, idx(sorted.len())?));
                self.emit(Insn::new(op::STRIN, sf(field), list));
            }
            Test::Num {
                field,
                op: o,
                value,
            } => {
                let n = self.num(*value)?;
                let opcode = match o {
                    NumOp::Eq => op::EQ,
                    NumOp::Ne => op::NE,
                    NumOp::Lt => op::LT,
                    NumOp::Le => op::LE,
                    NumOp::Gt => op::GT,
                    NumOp::Ge => op::GE,
                };
                self.emit(Insn::new(opcode, nf(field), n));
            }
            Test::NumIn { field, values } => {
                let mut sorted = values.clone();
                sorted.sort_unstable();
                sorted.dedup();
                let first = idx(self.nums.len())?;
                self.nums.extend_from_slice(&sorted);
                let list = idx(self.num_lists.len())?;
                self.num_lists.push((first, idx(sorted.len())?));
                self.emit(Insn::new(op::NUMIN, nf(field), list));
            }
            Test::Paging { value } => {
                self.emit(Insn::new(op::PAGING, 0, *value as u32));
            }
        }
        Ok(())
    }

    fn finish(mut self, policy: &Policy) -> Result<Vec<u8>, LowerError> {
        // Trie tables: node i's edges and rule list are contiguous.
        let mut nodes = Vec::with_capacity(self.trie.len() * NODE_LEN);
        let mut edges = Vec::new();
        let mut rule_lists = Vec::new();
        let trie = std::mem::take(&mut self.trie);
        let mut labelled = Vec::with_capacity(trie.len());
        for n in &trie {
            // Edges sorted by (hash, label bytes): the evaluator binary
            // searches the hash and compares strings only on a hash match.
            let mut es = Vec::with_capacity(n.children.len());
            for (label, &child) in &n.children {
                es.push((
                    label_hash_const(label),
                    label.as_str(),
                    self.string(label)?,
                    child,
                ));
            }
            es.sort_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
            labelled.push(es);
        }
        for (n, es) in trie.iter().zip(labelled) {
            let rec = NodeRec {
                parent: n.parent,
                depth: n.depth,
                first_edge: idx(edges.len() / EDGE_LEN)?,
                edge_count: idx(es.len())?,
                first_rule: idx(rule_lists.len() / RULE_LIST_ITEM_LEN)?,
                rule_count: idx(n.rules.len())?,
            };
            nodes.extend_from_slice(&rec.encode());
            for (hash, _, label, child) in es {
                edges.extend_from_slice(&hash.to_le_bytes());
                edges.extend_from_slice(&label.to_le_bytes());
                edges.extend_from_slice(&child.to_le_bytes());
            }
            for r in &n.rules {
                rule_lists.extend_from_slice(&r.to_le_bytes());
            }
        }
        let cost = self.code.len() as u64;
        if cost > u64::from(MAX_WORST_CASE) {
            return Err(LowerError::TooCostly { cost });
        }
        let code: Vec<u8> = self.code.iter().flat_map(|i| i.encode()).collect();
        let rules: Vec<u8> = self.rules.iter().flat_map(|r| r.encode()).collect();
        let nums: Vec<u8> = self.nums.iter().flat_map(|n| n.to_le_bytes()).collect();
        let pairs = |v: &[(u32, u32)]| -> Vec<u8> {
            v.iter()
                .flat_map(|(a, b)| a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
                .collect()
        };
        let str_lists = pairs(&self.str_lists);
        let num_lists = pairs(&self.num_lists);
        let list_items: Vec<u8> = self
            .list_items
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect();
        let body = Body {
            strings: self.strings.as_bytes(),
            strs: &self.strs,
            nums: &nums,
            str_lists: &str_lists,
            list_items: &list_items,
            num_lists: &num_lists,
            code: &code,
            rules: &rules,
            nodes: &nodes,
            edges: &edges,
            rule_lists: &rule_lists,
        };
        let body = postcard::to_allocvec(&body).map_err(|_| LowerError::Overflow)?;
        let len = HEADER_LEN + body.len();
        if len > MAX_IMAGE_LEN {
            return Err(LowerError::TooLarge { len });
        }
        let mut flags = 0;
        for r in &policy.rules {
            if r.action == Action::Deny {
                flags |= FLAG_HAS_DENY;
            }
            if r.action.records() {
                flags |= FLAG_HAS_RECORDING;
            }
        }
        let header = Header {
            version: FORMAT_VERSION,
            target: policy.target as u8,
            flags,
            header_len: HEADER_LEN as u32,
            body_len: idx(body.len())?,
            rule_count: idx(policy.rules.len())?,
            worst_case: cost as u32,
            reserved: 0,
            body_hash: Sha256::digest(&body).into(),
        };
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

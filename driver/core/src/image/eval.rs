//! The evaluator: first matching rule decides.
//!
//! Runs at any IRQL: it reads only the borrowed [`EventView`] and the
//! verified image, allocates nothing, does not recurse, and every loop is
//! bounded (the trie walk by the path's components and
//! [`MAX_TRIE_DEPTH`], the candidate merge by the rule count, each program
//! by its length because jumps only go forward). Reads use `get` with a
//! neutral fallback, so even an impossible inconsistency cannot panic; the
//! verifier guarantees the fallbacks are never taken.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use core::cmp::Ordering;

use super::format::*;
use super::strmatch::Rules;
use super::verify::{edge_rec, pair_rec, rec, u32_rec, u64_rec};
use super::Policy;
use crate::event::{Action, EventView, Op, Verdict};

/// Trie levels a walk can visit: the root plus [`MAX_TRIE_DEPTH`].
const LEVELS: usize = MAX_TRIE_DEPTH as usize + 1;

impl<'a> Policy<'a> {
    /// Evaluates one event. The first rule, in source order, whose
    /// operations include the event's and whose condition holds decides;
    /// with no such rule the verdict is [`Verdict::NO_MATCH`].
    pub fn evaluate(&self, ev: &EventView<'_>) -> Verdict<'a> {
        let Some(op) = ev.op else {
            return Verdict::NO_MATCH;
        };
        let rules = self.string_rules();
        // Walk the path trie; per visited node (root first), the cursor into
        // its ascending rule list and the list's end. heapless keeps this on
        // the stack without initializing the unused capacity.
        let mut levels: heapless::Vec<(u32, u32), LEVELS> = heapless::Vec::new();
        self.walk(ev.path, rules, &mut levels);
        // Merge the levels' lists, lowest rule index first. Each round
        // advances one cursor, so at most `rule_count` rounds.
        loop {
            let mut best: Option<(usize, u32)> = None;
            for (l, &(c, e)) in levels.iter().enumerate() {
                if c >= e {
                    continue;
                }
                let r = u32_rec(self.body.rule_lists, c).unwrap_or(u32::MAX);
                if best.is_none_or(|(_, b)| r < b) {
                    best = Some((l, r));
                }
            }
            let Some((l, r)) = best else {
                return Verdict::NO_MATCH;
            };
            if let Some((c, _)) = levels.get_mut(l) {
                *c = c.saturating_add(1);
            }
            if let Some(v) = self.try_rule(r, op, ev, rules) {
                return v;
            }
        }
    }

    fn string_rules(&self) -> Rules {
        Rules {
            fold: self.target.case_insensitive(),
            sep: self.target.separator() as char,
        }
    }

    /// Node `i`, or an empty node (no edges, no rules) when out of range,
    /// which the verifier rules out.
    fn node_or_empty(&self, i: u32) -> NodeRec {
        self.node(i).unwrap_or(NodeRec {
            parent: 0,
            depth: 0,
            first_edge: 0,
            edge_count: 0,
            first_rule: 0,
            rule_count: 0,
        })
    }

    /// Pushes the rule-list range of every trie node on `path`'s prefixes,
    /// root first.
    fn walk(&self, path: &str, rules: Rules, levels: &mut heapless::Vec<(u32, u32), LEVELS>) {
        let push = |levels: &mut heapless::Vec<(u32, u32), LEVELS>, nd: NodeRec| {
            // Capacity is MAX_TRIE_DEPTH + 1 and the verifier bounds node
            // depth by MAX_TRIE_DEPTH, so this cannot fail; if it did, the
            // deeper rules would simply not be candidates.
            let _ = levels.push((nd.first_rule, nd.first_rule.saturating_add(nd.rule_count)));
        };
        let root = self.node_or_empty(0);
        push(levels, root);
        if path.is_empty() {
            return;
        }
        // One trailing separator does not make a new component ("C:" is
        // the component "C:").
        let path = path.strip_suffix(rules.sep).unwrap_or(path);
        let bytes = path.as_bytes();
        // The separator is ASCII, so splitting at its bytes keeps every
        // component on char boundaries.
        let sep = rules.sep as u8;
        let mut node = root;
        let mut start = 0usize;
        loop {
            if node.edge_count == 0 || levels.is_full() {
                return;
            }
            let rest = bytes.get(start..).unwrap_or(&[]);
            let end = rest
                .iter()
                .position(|&b| b == sep)
                .map_or(bytes.len(), |k| start.saturating_add(k));
            let comp = path.get(start..end).unwrap_or("");
            let Some(child) = self.child(node, comp, rules) else {
                return;
            };
            node = self.node_or_empty(child);
            push(levels, node);
            if end >= bytes.len() {
                return;
            }
            start = end.saturating_add(1);
        }
    }

    /// The child of `node` labelled `comp`: binary search on the label hash.
    ///
    /// When exactly one edge has the hash, it is taken without comparing the
    /// strings: the trie is only an index, and a rule reached through a hash
    /// collision is still decided by the exact `UNDER` test at the start of
    /// its program. Only when several siblings share a hash are the strings
    /// compared, so that the walk never misses the right branch.
    fn child(&self, node: NodeRec, comp: &str, rules: Rules) -> Option<u32> {
        let hash = rules.label_hash(comp);
        let (mut lo, mut hi) = (0u32, node.edge_count);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            let (h, _, _) = edge_rec(self.body.edges, node.first_edge.saturating_add(mid))?;
            if h < hash {
                lo = mid.saturating_add(1);
            } else {
                hi = mid;
            }
        }
        let (h, label, child) = edge_rec(self.body.edges, node.first_edge.saturating_add(lo))
            .filter(|_| lo < node.edge_count)?;
        if h != hash {
            return None;
        }
        let next = lo.saturating_add(1);
        let shared = next < node.edge_count
            && edge_rec(self.body.edges, node.first_edge.saturating_add(next))
                .is_some_and(|(h2, _, _)| h2 == hash);
        if !shared {
            return Some(child);
        }
        // Several siblings share the hash: find the one that is equal.
        if rules.eq(comp, self.string(label)?) {
            return Some(child);
        }
        let mut k = next;
        while k < node.edge_count {
            let (h, label, child) = edge_rec(self.body.edges, node.first_edge.saturating_add(k))?;
            if h != hash {
                return None;
            }
            if rules.eq(comp, self.string(label)?) {
                return Some(child);
            }
            k = k.saturating_add(1);
        }
        None
    }

    // Not inlined: its locals then do not share `evaluate`'s frame, which
    // already holds the trie cursors (a kernel stack frame stays under
    // 1 KiB; docs/windows-driver.md, "Stack budget").
    #[inline(never)]
    fn try_rule(&self, r: u32, op: Op, ev: &EventView<'_>, rules: Rules) -> Option<Verdict<'a>> {
        let rule = RuleRec::decode(&rec::<RULE_LEN>(self.body.rules, r)?);
        if rule.ops & (1u8 << (op as u8)) == 0 {
            return None;
        }
        if !self.run(rule.code_start, rule.code_len, ev, rules) {
            return None;
        }
        Some(Verdict {
            action: Action::from_u8(rule.action).unwrap_or(Action::None),
            rule: Some(r.saturating_add(1)),
            line: rule.line,
            tag: if rule.tag == NO_STRING {
                ""
            } else {
                self.string(rule.tag).unwrap_or("")
            },
        })
    }

    /// Runs one rule's program. `pc` only increases, so the loop runs at
    /// most `len` times.
    fn run(&self, start: u32, len: u32, ev: &EventView<'_>, rules: Rules) -> bool {
        let end = start.saturating_add(len);
        let mut flag = true;
        let mut pc = start;
        while pc < end {
            let Some(raw) = rec::<INSN_LEN>(self.body.code, pc) else {
                return false;
            };
            let insn = Insn::decode(raw);
            pc = pc.saturating_add(1);
            match insn.opcode {
                op::STREQ | op::PREFIX | op::SUFFIX | op::CONTAINS | op::UNDER | op::GLOB => {
                    let s = str_field(ev, insn.field, rules.sep);
                    let c = self.string(insn.operand).unwrap_or("");
                    flag = match insn.opcode {
                        op::STREQ => rules.eq(s, c),
                        op::PREFIX => rules.starts_with(s, c),
                        op::SUFFIX => rules.ends_with(s, c),
                        op::CONTAINS => rules.contains(s, c),
                        op::UNDER => rules.under(s, c),
                        _ => rules.glob(s, c),
                    };
                }
                op::STRIN => {
                    let s = str_field(ev, insn.field, rules.sep);
                    flag = self.str_in(insn.operand, s, rules);
                }
                op::EQ | op::NE | op::LT | op::LE | op::GT | op::GE => {
                    let v = num_field(ev, insn.field);
                    let c = u64_rec(self.body.nums, insn.operand).unwrap_or(0);
                    flag = match insn.opcode {
                        op::EQ => v == c,
                        op::NE => v != c,
                        op::LT => v < c,
                        op::LE => v <= c,
                        op::GT => v > c,
                        _ => v >= c,
                    };
                }
                op::NUMIN => {
                    let v = num_field(ev, insn.field);
                    flag = self.num_in(insn.operand, v);
                }
                op::PAGING => flag = ev.paging == (insn.operand != 0),
                op::NOT => flag = !flag,
                op::SET => flag = insn.operand != 0,
                op::JT => {
                    if flag {
                        pc = pc.saturating_add(insn.operand);
                    }
                }
                op::JF => {
                    if !flag {
                        pc = pc.saturating_add(insn.operand);
                    }
                }
                _ => return flag, // RET (the verifier admits no other opcode)
            }
        }
        flag
    }

    fn str_in(&self, list: u32, s: &str, rules: Rules) -> bool {
        let Some((first, count)) = pair_rec(self.body.str_lists, list) else {
            return false;
        };
        let (mut lo, mut hi) = (0u32, count);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            let Some(c) = u32_rec(self.body.list_items, first.saturating_add(mid))
                .and_then(|id| self.string(id))
            else {
                return false;
            };
            match rules.cmp(s, c) {
                Ordering::Equal => return true,
                Ordering::Less => hi = mid,
                Ordering::Greater => lo = mid.saturating_add(1),
            }
        }
        false
    }

    fn num_in(&self, list: u32, v: u64) -> bool {
        let Some((first, count)) = pair_rec(self.body.num_lists, list) else {
            return false;
        };
        let (mut lo, mut hi) = (0u32, count);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            let Some(c) = u64_rec(self.body.nums, first.saturating_add(mid)) else {
                return false;
            };
            match v.cmp(&c) {
                Ordering::Equal => return true,
                Ordering::Less => hi = mid,
                Ordering::Greater => lo = mid.saturating_add(1),
            }
        }
        false
    }
}

/// Derived and direct string fields of an event.
pub fn str_field<'e>(ev: &EventView<'e>, field: u8, sep: char) -> &'e str {
    match field {
        sfield::PATH => ev.path,
        sfield::NAME => last_component(ev.path, sep),
        sfield::EXT => {
            let name = last_component(ev.path, sep);
            name.rfind('.').and_then(|i| name.get(i..)).unwrap_or("")
        }
        sfield::DIR => parent_dir(ev.path, sep),
        sfield::IMAGE => ev.image,
        sfield::PROCESS => last_component(ev.image, sep),
        sfield::USER => ev.user,
        _ => "",
    }
}

fn num_field(ev: &EventView<'_>, field: u8) -> u64 {
    match field {
        nfield::PID => ev.pid,
        nfield::PPID => ev.ppid,
        nfield::SIZE => ev.size,
        _ => 0,
    }
}

/// Text after the last separator (the whole string when there is none).
pub fn last_component(s: &str, sep: char) -> &str {
    s.rfind(sep)
        .and_then(|i| s.get(i.saturating_add(sep.len_utf8())..))
        .unwrap_or(s)
}

/// Text before the last separator; the separator is kept when the parent is
/// a root (`/x` → `/`, `C:\x` → `C:\`). Empty when there is no separator.
pub fn parent_dir(s: &str, sep: char) -> &str {
    let Some(i) = s.rfind(sep) else { return "" };
    let head = s.get(..i).unwrap_or("");
    let is_root = head.is_empty() || (head.len() == 2 && head.ends_with(':'));
    if is_root {
        s.get(..i.saturating_add(sep.len_utf8())).unwrap_or(head)
    } else {
        head
    }
}

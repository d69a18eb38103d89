//! What the engine must subscribe to for a policy: which operations a
//! recording (log/deny) rule can match, which a deny rule can match, and
//! under which directories — read from the verified image's rule table and
//! path trie, so a bare image (no source) gets the same treatment as a
//! `.pol`. The evaluator still decides every event; these facts only let the
//! engine ask the kernel for fewer events (the overhead of the log-only
//! policy depends on it) and request permission events only when a rule can
//! deny (each one is a user-space round trip for every process on that
//! filesystem).
use fltpolicy_core::event::{Action, Op, OpSet};
use fltpolicy_core::image::format::{NodeRec, RuleRec, EDGE_LEN, NODE_LEN, RULE_LEN};
use fltpolicy_core::image::Policy;

/// Offsets of the label and child fields in an edge record.
const EDGE_LABEL: usize = 4;
const EDGE_CHILD: usize = 8;
const _: () = assert!(
    EDGE_CHILD + 4 == EDGE_LEN,
    "edge record layout changed: update facts.rs"
);

/// Subscriptions a policy needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFacts {
    /// Operations some log or deny rule can match.
    pub recording_ops: OpSet,
    /// Operations some deny rule can match.
    pub deny_ops: OpSet,
    /// Directories recording rules are anchored under (`under` clauses),
    /// normalized; `None` when some recording rule has no `under` (any path).
    pub roots: Option<Vec<String>>,
    /// Roots of the recording rules that can match `open` or `read` — the
    /// operations the permission group serves once a rule can deny them.
    /// Outside these trees no permission event can change an answer or a
    /// record, so the engine tells the kernel to stop asking (ignore
    /// marks). `None`: some such rule has no `under`.
    pub perm_roots: Option<Vec<String>>,
    /// Some recording rule tests the process (`image`, `process`, `user`
    /// or `ppid`): an event whose process could not be identified may then
    /// have been decided wrongly, and a non-match is reported as an
    /// `unattributed` drop rather than passing in silence.
    pub process_fields: bool,
}

impl PolicyFacts {
    /// The safe over-approximation when the rule tables cannot be read as
    /// expected: every operation, any path, and permission events only if
    /// the header says some rule denies.
    pub fn everything(policy: &Policy<'_>) -> PolicyFacts {
        PolicyFacts {
            recording_ops: OpSet::ALL,
            deny_ops: if policy.has_deny() {
                OpSet::ALL
            } else {
                OpSet::EMPTY
            },
            roots: None,
            perm_roots: None,
            process_fields: true,
        }
    }

    /// Reads the facts from a verified policy.
    pub fn of(policy: &Policy<'_>) -> PolicyFacts {
        Self::try_of(policy).unwrap_or_else(|| PolicyFacts::everything(policy))
    }

    fn try_of(policy: &Policy<'_>) -> Option<PolicyFacts> {
        let body = policy.body();
        let mut facts = PolicyFacts {
            recording_ops: OpSet::EMPTY,
            deny_ops: OpSet::EMPTY,
            roots: Some(Vec::new()),
            perm_roots: Some(Vec::new()),
            process_fields: false,
        };
        for chunk in body.rules.chunks_exact(RULE_LEN) {
            let rule = RuleRec::decode(chunk.try_into().ok()?);
            let action = Action::from_u8(rule.action)?;
            if !action.records() {
                continue;
            }
            let ops = OpSet(rule.ops);
            facts.recording_ops = facts.recording_ops.union(ops);
            if !facts.process_fields {
                facts.process_fields = reads_process(policy, &rule)?;
            }
            if action == Action::Deny {
                facts.deny_ops = facts.deny_ops.union(ops);
            }
            let perm_op = ops.contains(Op::Open) || ops.contains(Op::Read);
            if rule.anchor == 0 {
                facts.roots = None;
                if perm_op {
                    facts.perm_roots = None;
                }
            } else {
                let path = anchor_path(policy, rule.anchor)?;
                if let Some(roots) = facts.roots.as_mut() {
                    if !roots.contains(&path) {
                        roots.push(path.clone());
                    }
                }
                if let (true, Some(roots)) = (perm_op, facts.perm_roots.as_mut()) {
                    if !roots.contains(&path) {
                        roots.push(path);
                    }
                }
            }
        }
        Some(facts)
    }

    /// Whether any permission events are needed.
    pub fn needs_permission_events(&self) -> bool {
        self.deny_ops.contains(Op::Open) || self.deny_ops.contains(Op::Read)
    }
}

/// Whether `rule`'s program reads a field of the process: a string test
/// (opcodes below 0x10) of `image`, `process` or `user`, or a number test
/// of `ppid`.
fn reads_process(policy: &Policy<'_>, rule: &RuleRec) -> Option<bool> {
    use fltpolicy_core::image::format::{nfield, op, sfield};
    for pc in rule.code_start..rule.code_start.checked_add(rule.code_len)? {
        let insn = policy.insn(pc)?;
        let string_test = (op::STREQ..op::EQ).contains(&insn.opcode);
        let number_test = (op::EQ..=op::NUMIN).contains(&insn.opcode);
        if (string_test && matches!(insn.field, sfield::IMAGE | sfield::PROCESS | sfield::USER))
            || (number_test && insn.field == nfield::PPID)
        {
            return Some(true);
        }
    }
    Some(false)
}

fn node(policy: &Policy<'_>, id: u32) -> Option<NodeRec> {
    let at = (id as usize).checked_mul(NODE_LEN)?;
    let b = policy.body().nodes.get(at..at.checked_add(NODE_LEN)?)?;
    Some(NodeRec::decode(b.try_into().ok()?))
}

/// The path of trie node `id`: its edge labels from the root, joined by `/`.
fn anchor_path(policy: &Policy<'_>, mut id: u32) -> Option<String> {
    let edges = policy.body().edges;
    let mut labels: Vec<&str> = Vec::new();
    // Bounded by the trie depth the verifier checked; guard anyway.
    for _ in 0..=fltpolicy_core::image::format::MAX_TRIE_DEPTH {
        if id == 0 {
            break;
        }
        let n = node(policy, id)?;
        let parent = node(policy, n.parent)?;
        let first = parent.first_edge as usize;
        let mut label = None;
        for e in 0..parent.edge_count as usize {
            let at = first.checked_add(e)?.checked_mul(EDGE_LEN)?;
            let rec = edges.get(at..at.checked_add(EDGE_LEN)?)?;
            // `hash u32, label u32, child u32` (format v1 as documented in
            // `image::format`); the unit tests below fail if it drifts.
            let l = u32::from_le_bytes(rec.get(EDGE_LABEL..EDGE_LABEL + 4)?.try_into().ok()?);
            let child = u32::from_le_bytes(rec.get(EDGE_CHILD..EDGE_CHILD + 4)?.try_into().ok()?);
            if child == id {
                label = Some(policy.string(l)?);
                break;
            }
        }
        labels.push(label?);
        id = n.parent;
    }
    if id != 0 {
        return None;
    }
    labels.reverse();
    let mut path = String::from("/");
    path.push_str(&labels.join("/"));
    crate::path::normalize(&mut path);
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fltpolicy_core::event::Target;

    fn facts(src: &str) -> PolicyFacts {
        let image = fltpolicy_compiler::compile(src, "t.pol", Target::Linux)
            .unwrap()
            .image;
        PolicyFacts::of(&Policy::from_bytes(&image).unwrap())
    }

    #[test]
    fn recording_rules_that_test_the_process_are_known() {
        for (src, want) in [
            ("log write under /d\n", false),
            ("log write under /d where size > 10 and pid == 4\n", false),
            ("log write under /d where image == \"/usr/bin/x\"\n", true),
            ("log write under /d where process == \"x\"\n", true),
            ("log write under /d where user == \"root\"\n", true),
            ("log write under /d where ppid == 1\n", true),
            (
                "deny open under /d unless image startswith \"/usr\"\n",
                true,
            ),
            // An allow rule's test does not make a non-match silent: a
            // later recording rule still decides (and records).
            (
                "allow write under /d where process == \"x\"\nlog write under /d\n",
                false,
            ),
        ] {
            assert_eq!(facts(src).process_fields, want, "{src}");
        }
    }

    #[test]
    fn log_only_policy_needs_no_permission_events() {
        let f = facts("log create under /tmp/a-b/d as \"x\"\n");
        assert_eq!(f.recording_ops, OpSet::single(Op::Create));
        assert_eq!(f.deny_ops, OpSet::EMPTY);
        assert_eq!(f.roots, Some(vec!["/tmp/a-b/d".to_string()]));
        assert!(!f.needs_permission_events());
    }

    #[test]
    fn deny_and_unanchored_rules() {
        let f = facts(
            "deny open under /srv/x where process == \"cat\"\nlog write where name == \"a\"\n",
        );
        assert_eq!(f.deny_ops, OpSet::single(Op::Open));
        assert_eq!(f.recording_ops, OpSet::single(Op::Open).with(Op::Write));
        assert_eq!(f.roots, None);
        assert_eq!(f.perm_roots, Some(vec!["/srv/x".to_string()]));
    }

    #[test]
    fn perm_roots_are_those_of_open_and_read_rules() {
        let f = facts(
            "deny open under /srv/secret where process == \"cat\"\nlog create, write under /srv/data as \"d\"\nlog read under /srv/r as \"r\"\n",
        );
        assert_eq!(
            f.perm_roots,
            Some(vec!["/srv/secret".to_string(), "/srv/r".to_string()])
        );
        let g = facts("deny open where process == \"cat\"\n");
        assert_eq!(g.perm_roots, None);
    }
}

//! Human-readable listing of a verified image, in the spirit of
//! `tcpdump -d`: the header, the path trie, then each rule's program with
//! resolved constants and absolute jump targets.
use std::fmt::Write;

use fltpolicy_core::event::{Action, OpSet};
use fltpolicy_core::image::format::*;
use fltpolicy_core::image::Policy;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders the whole image.
pub fn disassemble(p: &Policy<'_>) -> String {
    let mut out = String::new();
    let h = p.header();
    let b = p.body();
    let _ = writeln!(
        out,
        "; fltpolicy image v{} target={} rules={} worst-case={} insns flags={}{} size={} bytes",
        h.version,
        p.target().name(),
        h.rule_count,
        h.worst_case,
        if p.has_deny() { "deny," } else { "" },
        if p.has_recording() { "record" } else { "" },
        HEADER_LEN + h.body_len as usize,
    );
    let _ = writeln!(out, "; sha256 {}", hex(&h.body_hash));
    let nodes = (b.nodes.len() / NODE_LEN) as u32;
    let _ = writeln!(
        out,
        "; path trie: {nodes} nodes, {} edges",
        b.edges.len() / EDGE_LEN
    );
    for n in 0..nodes {
        let Some(nd) = p.node(n) else {
            continue;
        };
        let rules: Vec<String> = (nd.first_rule..nd.first_rule + nd.rule_count)
            .filter_map(|k| p.rule_list_entry(k))
            .map(|r| (r + 1).to_string())
            .collect();
        let _ = writeln!(
            out,
            ";   node {n} {} depth {} rules [{}]",
            node_path(p, n),
            nd.depth,
            rules.join(",")
        );
    }
    for r in 0..h.rule_count {
        let Some(rule) = p.rule(r) else {
            continue;
        };
        let ops: Vec<&str> = OpSet(rule.ops).iter().map(|o| o.name()).collect();
        let tag = if rule.tag == NO_STRING {
            String::new()
        } else {
            format!(" as {:?}", p.string(rule.tag).unwrap_or(""))
        };
        let _ = writeln!(
            out,
            "\nrule {} (line {}): {} {}{}{}",
            r + 1,
            rule.line,
            Action::from_u8(rule.action).map_or("?", |a| a.name()),
            ops.join(","),
            if rule.anchor != 0 {
                format!(" anchor={}", node_path(p, rule.anchor))
            } else {
                String::new()
            },
            tag
        );
        for pc in rule.code_start..rule.code_start + rule.code_len {
            let Some(i) = p.insn(pc) else {
                continue;
            };
            let _ = writeln!(out, "({pc:03}) {}", insn_text(p, pc, i));
        }
    }
    out
}

fn node_path(p: &Policy<'_>, mut n: u32) -> String {
    let sep = p.target().separator() as char;
    let mut parts = Vec::new();
    let mut guard = 0;
    while n != 0 && guard <= MAX_TRIE_DEPTH {
        guard += 1;
        let Some(nd) = p.node(n) else {
            break;
        };
        let parent = nd.parent;
        let pn = p.node(parent);
        if let Some(pn) = pn {
            for e in pn.first_edge..pn.first_edge + pn.edge_count {
                let (_, label, child) = p.edge(e).unwrap_or((0, 0, 0));
                if child == n {
                    parts.push(p.string(label).unwrap_or("?").to_owned());
                }
            }
        }
        n = parent;
    }
    parts.reverse();
    if parts.is_empty() {
        "<root>".into()
    } else {
        parts.join(&sep.to_string())
    }
}

fn insn_text(p: &Policy<'_>, pc: u32, i: Insn) -> String {
    let sname = |f: u8| sfield::NAMES.get(f as usize).copied().unwrap_or("?");
    let nname = |f: u8| nfield::NAMES.get(f as usize).copied().unwrap_or("?");
    let s = |id: u32| format!("{:?}", p.string(id).unwrap_or("?"));
    let num = |id: u32| p.number(id).unwrap_or(0);
    let mn = match i.opcode {
        op::STREQ => "streq",
        op::PREFIX => "prefix",
        op::SUFFIX => "suffix",
        op::CONTAINS => "contains",
        op::UNDER => "under",
        op::GLOB => "glob",
        op::STRIN => "strin",
        op::EQ => "eq",
        op::NE => "ne",
        op::LT => "lt",
        op::LE => "le",
        op::GT => "gt",
        op::GE => "ge",
        op::NUMIN => "numin",
        op::PAGING => "paging",
        op::NOT => "not",
        op::SET => "set",
        op::JT => "jt",
        op::JF => "jf",
        op::RET => "ret",
        _ => "?",
    };
    match i.opcode {
        op::STREQ | op::PREFIX | op::SUFFIX | op::CONTAINS | op::UNDER | op::GLOB => {
            format!("{mn:<8} {}, {}", sname(i.field), s(i.operand))
        }
        op::STRIN => {
            let items: Vec<String> = p.string_list(i.operand).map(s).collect();
            format!("{mn:<8} {}, [{}]", sname(i.field), items.join(", "))
        }
        op::EQ | op::NE | op::LT | op::LE | op::GT | op::GE => {
            format!("{mn:<8} {}, #{}", nname(i.field), num(i.operand))
        }
        op::NUMIN => {
            let items: Vec<String> = p.number_list(i.operand).map(|v| v.to_string()).collect();
            format!("{mn:<8} {}, [{}]", nname(i.field), items.join(", "))
        }
        op::PAGING | op::SET => format!("{mn:<8} #{}", i.operand),
        op::JT | op::JF => format!(
            "{mn:<8} +{:<10} ; -> ({:03})",
            i.operand,
            pc + 1 + i.operand
        ),
        _ => mn.to_string(),
    }
}

//! Differential properties: the bytecode VM and the reference interpreter
//! must agree on every generated policy and event, for both targets; and
//! the verifier must reject or accept, never panic, on mutated images (with
//! the header re-sealed so mutations reach the deep checks, not just the
//! hash check).
mod image_support;
use fltpolicy_compiler::ir::{Cond, NumField, NumOp, Policy, Rule, StrField, Test};
use fltpolicy_compiler::{ast::Span, lower::lower, oracle};
use fltpolicy_core::event::{Action, EventView, Op, OpSet, Target};
use fltpolicy_core::image::format::HEADER_LEN;
use fltpolicy_core::image::Policy as Image;
use fltpolicy_core::text::fold;
use image_support::reseal;
use proptest::prelude::*;

const COMPS: &[&str] = &["a", "B", "data", "Data2", "x.txt", "y.KEY", "ß", "é", "Ab"];
const GLOBS: &[&str] = &["*", "?", "**", "a*", "*.txt", "*.key", "d?ta", "D*"];
const IMAGES: &[&str] = &["backup.exe", "cat", "Robocopy.EXE"];
const USERS: &[&str] = &["alice", "BOB", ""];

fn sep(t: Target) -> &'static str {
    match t {
        Target::Windows => "\\",
        Target::Linux => "/",
    }
}

fn root(t: Target) -> &'static str {
    match t {
        Target::Windows => "C:",
        Target::Linux => "",
    }
}

fn join(t: Target, comps: &[&str]) -> String {
    let mut s = root(t).to_string();
    for c in comps {
        s.push_str(sep(t));
        s.push_str(c);
    }
    if comps.is_empty() {
        s.push_str(sep(t));
    }
    s
}

/// Normalizes a constant the way the checker does for the target.
fn norm(t: Target, s: &str) -> String {
    if t.case_insensitive() {
        fold(s)
    } else {
        s.to_string()
    }
}

fn arb_comps(max: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(COMPS), 0..=max)
}

fn arb_case_flip(s: String) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), s.chars().count()).prop_map(move |flips| {
        s.chars()
            .zip(flips)
            .map(|(c, f)| {
                if f {
                    c.to_uppercase().next().unwrap_or(c)
                } else {
                    c.to_lowercase().next().unwrap_or(c)
                }
            })
            .collect()
    })
}

fn arb_str_field() -> impl Strategy<Value = StrField> {
    prop::sample::select(vec![
        StrField::Path,
        StrField::Name,
        StrField::Ext,
        StrField::Dir,
        StrField::Image,
        StrField::Process,
        StrField::User,
    ])
}

fn arb_num_field() -> impl Strategy<Value = NumField> {
    prop::sample::select(vec![NumField::Pid, NumField::Ppid, NumField::Size])
}

fn arb_value(t: Target) -> impl Strategy<Value = String> {
    prop_oneof![
        arb_comps(3).prop_map(move |c| join(t, &c)),
        prop::sample::select(COMPS).prop_map(|s| s.to_string()),
        prop::sample::select(vec![".txt", ".KEY", "", "x", "a"]).prop_map(|s| s.to_string()),
        prop::sample::select(IMAGES).prop_map(|s| s.to_string()),
        prop::sample::select(USERS).prop_map(|s| s.to_string()),
    ]
    .prop_map(move |s| norm(t, &s))
}

fn arb_glob(t: Target) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![prop::sample::select(GLOBS), prop::sample::select(COMPS)],
        0..4,
    )
    .prop_map(move |parts| {
        let mut s = root(t).to_string();
        for p in parts {
            s.push_str(sep(t));
            s.push_str(p);
        }
        norm(t, &s)
    })
}

fn arb_num_op() -> impl Strategy<Value = NumOp> {
    prop::sample::select(vec![
        NumOp::Eq,
        NumOp::Ne,
        NumOp::Lt,
        NumOp::Le,
        NumOp::Gt,
        NumOp::Ge,
    ])
}

const NUMS: &[u64] = &[0, 1, 2, 1234, u64::MAX];

fn arb_test(t: Target) -> impl Strategy<Value = Test> {
    prop_oneof![
        (arb_str_field(), arb_value(t), any::<bool>()).prop_map(|(field, value, negate)| {
            Test::StrEq {
                field,
                value,
                negate,
            }
        }),
        (arb_str_field(), arb_value(t)).prop_map(|(field, value)| Test::Under { field, value }),
        (arb_str_field(), arb_value(t))
            .prop_map(|(field, value)| Test::StartsWith { field, value }),
        (arb_str_field(), arb_value(t)).prop_map(|(field, value)| Test::EndsWith { field, value }),
        (arb_str_field(), arb_value(t)).prop_map(|(field, value)| Test::Contains { field, value }),
        (arb_str_field(), arb_glob(t))
            .prop_map(|(field, pattern)| Test::Matches { field, pattern }),
        (arb_str_field(), prop::collection::vec(arb_value(t), 0..4))
            .prop_map(|(field, values)| Test::StrIn { field, values }),
        (arb_num_field(), arb_num_op(), prop::sample::select(NUMS))
            .prop_map(|(field, op, value)| Test::Num { field, op, value }),
        (
            arb_num_field(),
            prop::collection::vec(prop::sample::select(NUMS), 0..4)
        )
            .prop_map(|(field, values)| Test::NumIn { field, values }),
        any::<bool>().prop_map(|value| Test::Paging { value }),
    ]
}

fn arb_cond(t: Target) -> impl Strategy<Value = Cond> {
    arb_test(t)
        .prop_map(Cond::Test)
        .prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Cond::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Cond::Or),
                inner.prop_map(|c| Cond::Not(Box::new(c))),
            ]
        })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Target::Windows), Just(Target::Linux)].prop_flat_map(|t| {
        let rule = (
            prop::sample::select(vec![Action::Allow, Action::Log, Action::Deny]),
            1u8..=255,
            prop::option::of(arb_comps(3).prop_map(move |c| norm(t, &join(t, &c)))),
            prop::option::of(arb_cond(t)),
            prop::sample::select(vec!["", "t1", "tag two"]),
        );
        prop::collection::vec(rule, 1..8).prop_map(move |rules| Policy {
            target: t,
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (action, ops, under, cond, tag))| Rule {
                    index: i as u32 + 1,
                    line: i as u32 + 10,
                    span: Span::default(),
                    action,
                    ops: OpSet(ops),
                    under,
                    cond,
                    tag: tag.to_string(),
                })
                .collect(),
        })
    })
}

#[derive(Debug, Clone)]
struct Ev {
    op: Op,
    path: String,
    pid: u64,
    ppid: u64,
    image: String,
    user: String,
    size: u64,
    paging: bool,
}

fn arb_event(t: Target) -> impl Strategy<Value = Ev> {
    (
        prop::sample::select(Op::ALL.to_vec()),
        prop_oneof![
            arb_comps(5).prop_map(move |c| join(t, &c)),
            Just(String::new()),
            arb_comps(3).prop_map(move |c| format!("{}{}", join(t, &c), sep(t))),
        ]
        .prop_flat_map(arb_case_flip),
        prop::sample::select(NUMS),
        prop::sample::select(NUMS),
        prop::sample::select(IMAGES)
            .prop_map(move |i| format!("{}{}", join(t, &["bin"]), format_args!("{}{i}", sep(t))))
            .prop_flat_map(arb_case_flip),
        prop::sample::select(USERS).prop_flat_map(|u| arb_case_flip(u.to_string())),
        prop::sample::select(NUMS),
        any::<bool>(),
    )
        .prop_map(|(op, path, pid, ppid, image, user, size, paging)| Ev {
            op,
            path,
            pid,
            ppid,
            image,
            user,
            size,
            paging,
        })
}

fn view(e: &Ev) -> EventView<'_> {
    EventView {
        op: Some(e.op),
        path: &e.path,
        pid: e.pid,
        ppid: e.ppid,
        image: &e.image,
        user: &e.user,
        size: e.size,
        paging: e.paging,
    }
}

fn policy_and_events() -> impl Strategy<Value = (Policy, Vec<Ev>)> {
    arb_policy().prop_flat_map(|p| {
        let t = p.target;
        (Just(p), prop::collection::vec(arb_event(t), 1..24))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn vm_agrees_with_reference_interpreter((policy, events) in policy_and_events()) {
        let bytes = lower(&policy).expect("lowering generated policy");
        let image = Image::from_bytes(&bytes).expect("compiler output verifies");
        for e in &events {
            let v = image.evaluate(&view(e));
            let o = oracle::evaluate(&policy, &view(e));
            prop_assert_eq!(
                (v.action, v.rule, v.line, v.tag),
                (o.action, o.rule, o.line, o.tag.as_str()),
                "event {:?}", e
            );
        }
    }

    #[test]
    fn verifier_never_panics_on_mutated_images(
        (policy, events) in policy_and_events(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = lower(&policy).expect("lowering generated policy");
        for (at, val) in flips {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] ^= val | 1;
        }
        if truncate {
            let keep = HEADER_LEN + cut.index(bytes.len() - HEADER_LEN + 1);
            bytes.truncate(keep);
        }
        reseal(&mut bytes);
        if let Ok(image) = Image::from_bytes(&bytes) {
            // Whatever it accepted must evaluate without panicking.
            for e in &events {
                let _ = image.evaluate(&view(e));
            }
        }
    }
}

//! The verifier rejects each kind of malformed image with its own precise
//! error. Images are compiled, then one table or header field is corrupted
//! and the header re-sealed (length and SHA-256 recomputed) so that the
//! check under test, not the hash check, is what fires.
mod image_support;
use fltpolicy_compiler::compile;
use fltpolicy_core::event::Target;
use fltpolicy_core::image::format::{op, Body, Insn, HEADER_LEN, INSN_LEN, MAGIC};
use fltpolicy_core::image::{Policy, Table, VerifyError};
use image_support::reseal;

const SRC: &str = r#"
let office = [".docx", ".xlsx", ".pdf"]
log writes under C:\Data from pid 1234
deny delete, rename under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe"
log create under "C:\Program Files\App" where ext in $office and pid in [3, 1, 2] as "app-docs"
"#;

fn image() -> Vec<u8> {
    compile(SRC, "v.pol", Target::Windows)
        .expect("compiles")
        .image
}

#[derive(Clone, Default)]
struct Tables {
    strings: Vec<u8>,
    strs: Vec<u8>,
    nums: Vec<u8>,
    str_lists: Vec<u8>,
    list_items: Vec<u8>,
    num_lists: Vec<u8>,
    code: Vec<u8>,
    rules: Vec<u8>,
    nodes: Vec<u8>,
    edges: Vec<u8>,
    rule_lists: Vec<u8>,
}

/// Decodes the body, lets `f` edit the tables, re-encodes and re-seals.
fn edit(img: &[u8], f: impl FnOnce(&mut Tables)) -> Vec<u8> {
    let body: Body<'_> = postcard::from_bytes(&img[HEADER_LEN..]).expect("body decodes");
    let mut t = Tables {
        strings: body.strings.to_vec(),
        strs: body.strs.to_vec(),
        nums: body.nums.to_vec(),
        str_lists: body.str_lists.to_vec(),
        list_items: body.list_items.to_vec(),
        num_lists: body.num_lists.to_vec(),
        code: body.code.to_vec(),
        rules: body.rules.to_vec(),
        nodes: body.nodes.to_vec(),
        edges: body.edges.to_vec(),
        rule_lists: body.rule_lists.to_vec(),
    };
    f(&mut t);
    let body = Body {
        strings: &t.strings,
        strs: &t.strs,
        nums: &t.nums,
        str_lists: &t.str_lists,
        list_items: &t.list_items,
        num_lists: &t.num_lists,
        code: &t.code,
        rules: &t.rules,
        nodes: &t.nodes,
        edges: &t.edges,
        rule_lists: &t.rule_lists,
    };
    let mut out = img[..HEADER_LEN].to_vec();
    out.extend_from_slice(&postcard::to_allocvec(&body).unwrap());
    reseal(&mut out);
    out
}

fn insn(t: &Tables, pc: usize) -> Insn {
    Insn::decode(
        t.code[pc * INSN_LEN..(pc + 1) * INSN_LEN]
            .try_into()
            .unwrap(),
    )
}

fn set_insn(t: &mut Tables, pc: usize, i: Insn) {
    t.code[pc * INSN_LEN..(pc + 1) * INSN_LEN].copy_from_slice(&i.encode());
}

fn find(t: &Tables, opcode: u8) -> usize {
    (0..t.code.len() / INSN_LEN)
        .find(|&pc| insn(t, pc).opcode == opcode)
        .expect("opcode present")
}

fn err(img: &[u8]) -> VerifyError {
    Policy::from_bytes(img).expect_err("image must be rejected")
}

#[test]
fn the_unmodified_image_verifies() {
    let img = image();
    assert!(Policy::from_bytes(&img).is_ok());
    // Re-encoding without changes is accepted too (the harness is sound).
    assert!(Policy::from_bytes(&edit(&img, |_| {})).is_ok());
}

#[test]
fn header_errors() {
    let img = image();
    assert_eq!(err(&img[..10]), VerifyError::TooShort { len: 10 });
    let mut m = img.clone();
    m[0] = b'X';
    assert_eq!(err(&m), VerifyError::BadMagic);
    let mut m = img.clone();
    m[8] = 9;
    assert_eq!(err(&m), VerifyError::UnsupportedVersion { found: 9 });
    let mut m = img.clone();
    m[10] = 7;
    assert_eq!(err(&m), VerifyError::UnknownTarget { found: 7 });
    let mut m = img.clone();
    m[11] = 0x80;
    assert_eq!(err(&m), VerifyError::UnknownFlags { found: 0x80 });
    let mut m = img.clone();
    m[12] = 65;
    assert_eq!(err(&m), VerifyError::HeaderLength { found: 65 });
    let mut m = img.clone();
    m[28] = 1;
    assert_eq!(err(&m), VerifyError::ReservedNotZero);
    let m = &img[..img.len() - 1];
    assert!(matches!(err(m), VerifyError::BodyLength { .. }));
    let mut m = img.clone();
    *m.last_mut().unwrap() ^= 1;
    assert_eq!(err(&m), VerifyError::HashMismatch);
    let mut m = img.clone();
    m.push(0);
    reseal(&mut m);
    assert_eq!(err(&m), VerifyError::TrailingBytes { count: 1 });
    let mut m = MAGIC.to_vec();
    m.resize(HEADER_LEN, 0);
    m[8] = 1;
    m[12] = HEADER_LEN as u8;
    m.push(0xff); // not a postcard body
    reseal(&mut m);
    assert_eq!(err(&m), VerifyError::BodyEncoding);
}

#[test]
fn table_and_string_errors() {
    let img = image();
    let m = edit(&img, |t| t.code.push(0));
    assert_eq!(
        err(&m),
        VerifyError::TableSize {
            table: Table::Code,
            len: img_code_len(&img) + 1
        }
    );
    let m = edit(&img, |t| t.strings.push(0xff));
    assert!(matches!(err(&m), VerifyError::StringsNotUtf8 { .. }));
    let m = edit(&img, |t| {
        t.strs[4..8].copy_from_slice(&u32::MAX.to_le_bytes())
    });
    assert_eq!(err(&m), VerifyError::StringBounds { index: 0 });
}

fn img_code_len(img: &[u8]) -> usize {
    let body: Body<'_> = postcard::from_bytes(&img[HEADER_LEN..]).unwrap();
    body.code.len()
}

#[test]
fn program_errors_name_the_instruction() {
    let img = image();
    // A jump past its program's RET.
    let m = edit(&img, |t| {
        let pc = find(t, op::JF);
        let mut i = insn(t, pc);
        i.operand = 1000;
        set_insn(t, pc, i);
    });
    assert!(matches!(err(&m), VerifyError::JumpOutOfRange { .. }));
    // A program without its final RET.
    let m = edit(&img, |t| {
        let pc = find(t, op::RET);
        set_insn(t, pc, Insn::new(op::NOT, 0, 0));
    });
    assert!(matches!(err(&m), VerifyError::Return { .. }));
    // An unknown opcode.
    let m = edit(&img, |t| set_insn(t, 0, Insn::new(0x7f, 0, 0)));
    assert_eq!(
        err(&m),
        VerifyError::UnknownOpcode {
            insn: 0,
            found: 0x7f
        }
    );
    // A string operand out of range.
    let m = edit(&img, |t| {
        let pc = find(t, op::UNDER);
        set_insn(t, pc, Insn::new(op::UNDER, 0, 99_999));
    });
    assert!(matches!(err(&m), VerifyError::OperandBounds { .. }));
    // A bad field.
    let m = edit(&img, |t| {
        let pc = find(t, op::UNDER);
        let i = insn(t, pc);
        set_insn(t, pc, Insn::new(op::UNDER, 42, i.operand));
    });
    assert!(matches!(err(&m), VerifyError::BadField { found: 42, .. }));
    // Reserved bits.
    let m = edit(&img, |t| t.code[2] = 1);
    assert_eq!(err(&m), VerifyError::ReservedBits { insn: 0 });
}

/// The RET that ends the program holding `pc` (programs are contiguous and
/// each ends with its only RET).
fn ret_after(t: &Tables, pc: usize) -> usize {
    (pc..t.code.len() / INSN_LEN)
        .find(|&i| insn(t, i).opcode == op::RET)
        .expect("program ends with RET")
}

#[test]
fn a_jump_one_past_the_rules_ret_is_rejected() {
    let img = image();
    let mut at = 0;
    let m = edit(&img, |t| {
        let pc = find(t, op::JF);
        let ret = ret_after(t, pc);
        at = pc;
        let mut i = insn(t, pc);
        // Target = pc + 1 + operand = ret + 1: exactly one past the RET.
        i.operand = u32::try_from(ret - pc).unwrap();
        set_insn(t, pc, i);
    });
    assert_eq!(
        err(&m),
        VerifyError::JumpOutOfRange {
            insn: u32::try_from(at).unwrap()
        }
    );
    // The same jump landing exactly on the RET is legal.
    let ok = edit(&img, |t| {
        let pc = find(t, op::JF);
        let ret = ret_after(t, pc);
        let mut i = insn(t, pc);
        i.operand = u32::try_from(ret - pc - 1).unwrap();
        set_insn(t, pc, i);
    });
    Policy::from_bytes(&ok).expect("a jump onto the RET verifies");
}

#[test]
fn a_ret_before_the_end_of_the_rule_is_rejected() {
    let img = image();
    let mut at = 0;
    let m = edit(&img, |t| {
        let pc = find(t, op::JF);
        let ret = ret_after(t, pc);
        at = ret - 1;
        set_insn(t, ret - 1, Insn::new(op::RET, 0, 0));
    });
    assert_eq!(
        err(&m),
        VerifyError::Return {
            insn: u32::try_from(at).unwrap()
        }
    );
}

#[test]
fn cost_and_list_errors() {
    let img = image();
    let mut m = img.clone();
    let wc = u32::from_le_bytes(m[24..28].try_into().unwrap());
    m[24..28].copy_from_slice(&(wc + 1).to_le_bytes());
    assert!(matches!(err(&m), VerifyError::WorstCase { .. }));
    // A number list out of order breaks binary search: rejected.
    let m = edit(&img, |t| {
        let (a, b) = (t.nums[0..8].to_vec(), t.nums[8..16].to_vec());
        t.nums[0..8].copy_from_slice(&b);
        t.nums[8..16].copy_from_slice(&a);
    });
    assert!(matches!(err(&m), VerifyError::ListNotSorted { .. }));
    let m = edit(&img, |t| {
        let (a, b) = (t.list_items[0..4].to_vec(), t.list_items[4..8].to_vec());
        t.list_items[0..4].copy_from_slice(&b);
        t.list_items[4..8].copy_from_slice(&a);
    });
    assert!(matches!(err(&m), VerifyError::ListNotSorted { .. }));
}

#[test]
fn trie_errors() {
    let img = image();
    // An edge whose hash does not match its label.
    let m = edit(&img, |t| t.edges[0] ^= 1);
    assert_eq!(err(&m), VerifyError::Edge { edge: 0 });
    // A rule listed twice / rule lists that do not cover every rule.
    let m = edit(&img, |t| {
        let first = t.rule_lists[0..4].to_vec();
        t.rule_lists.extend_from_slice(&first);
    });
    assert!(matches!(err(&m), VerifyError::RuleListTotal { .. }));
    // A node whose parent field disagrees with the edge that leads to it:
    // caught at the root's edge, before node 1 itself is checked.
    let m = edit(&img, |t| {
        t.nodes[24..28].copy_from_slice(&5u32.to_le_bytes())
    });
    assert_eq!(err(&m), VerifyError::Edge { edge: 0 });
    // A root with a parent or depth.
    let m = edit(&img, |t| t.nodes[4..8].copy_from_slice(&1u32.to_le_bytes()));
    assert_eq!(err(&m), VerifyError::Node { node: 0 });
    // A rule anchored at a node that does not list it.
    let m = edit(&img, |t| {
        t.rules[20..24].copy_from_slice(&1u32.to_le_bytes())
    });
    assert!(matches!(
        err(&m),
        VerifyError::RuleList { .. } | VerifyError::Anchor { .. }
    ));
}

#[test]
fn errors_render_precisely() {
    let img = image();
    let m = edit(&img, |t| set_insn(t, 0, Insn::new(0x7f, 0, 0)));
    assert_eq!(err(&m).to_string(), "instruction 0: unknown opcode 0x7f");
}

//! Stack budget of the built kernel image (`cargo xtask driver` →
//! `target/driver/fltpolicy.sys`, with its link map `fltpolicy.map`).
//!
//! A filter's callbacks run on whatever kernel stack the requester had:
//! 24 KiB on x64 (KERNEL_STACK_SIZE), shared with the I/O manager, Filter
//! Manager, every filter above and below us, the file system and the cache
//! manager — and a paging write may arrive on a stack already deep in a
//! page fault. A kernel stack overflow is bugcheck 0x7F
//! (UNEXPECTED_KERNEL_MODE_TRAP, double fault). The budgets are stated and
//! justified in docs/windows-driver.md ("Stack budget").
//!
//! How the numbers are computed, without symbols in the image:
//! * function bounds and frames come from `.pdata`/`.xdata`: every
//!   function that touches the stack has a RUNTIME_FUNCTION whose
//!   UNWIND_INFO lists the prologue's pushes and allocations exactly (the
//!   kernel's own unwinder relies on them); a function without one is a
//!   leaf that only uses its return address;
//! * calls come from decoding `.text` (iced-x86): direct calls, tail jumps
//!   out of the function, and calls through the import address table
//!   (kernel routines: their stack is theirs, not ours, and is not counted);
//! * entry points are DriverEntry plus every function whose address the
//!   image takes — stored in data (base relocations: the FLT_REGISTRATION
//!   tables) or loaded with a RIP-relative `lea` (dispatch routines, the
//!   thread start routine, the notify routine) — named from the link map;
//! * a call through a register (a function pointer) cannot be followed: each
//!   is listed with its function; the driver's are the kernel routines
//!   resolved by name in `kernel::ffi::init` (kernel code, not counted) —
//!   the test fails if any other function makes one.
//!
//! A missing image or map is a failure, not a skip.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, OpAccess,
    OpKind, Register,
};
use object::pe::{IMAGE_DIRECTORY_ENTRY_EXCEPTION, IMAGE_REL_BASED_DIR64};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, ImageThunkData, Import, PeFile64};
use object::LittleEndian as LE;

/// Function pointers the driver calls that point into the kernel (their
/// stack is the kernel's): the ntoskrnl routines `kernel::ffi::init`
/// resolves with MmGetSystemRoutineAddress (`ZW`), and the routines newer
/// than Windows 10 1607 it resolves by name with MmGetSystemRoutineAddress
/// or FltGetRoutineAddress (`LATER`: ExAllocatePool2, FltFlushBuffers2,
/// ZwQuerySystemInformation, SeLocateProcessImageName,
/// PsGetProcessExitStatus).
const KERNEL_POINTERS: &[&str] = &["kernel::ffi::ZW", "kernel::ffi::LATER"];

/// Recursion the analysis accepts: core's string-slice error formatting,
/// entered only on a panic, which ends in KeBugCheckEx; it recurses once
/// (const-eval / runtime split), not unboundedly.
const ACCEPTED_CYCLES: &[&str] = &["core::str::slice_error_fail"];

/// Functions still over budget while their fix is in progress elsewhere,
/// with the reason. Exempt from the frame and probe checks, and entry
/// points whose worst chain runs through them from the chain check; the
/// report still prints their figures. TEMPORARY: empty once the fixes land.
const PENDING: &[(&str, &str)] = &[];

fn pending(name: &str) -> bool {
    PENDING.iter().any(|(p, _)| name.starts_with(p))
}

/// Largest frame any one function may reserve (prologue pushes plus
/// allocation).
const FRAME_BUDGET: u64 = 1024;
/// Deepest chain of our own frames from any entry point (return addresses
/// included, kernel routines excluded).
const PATH_BUDGET: u64 = 4096;

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/driver")
}

fn read(name: &str) -> Vec<u8> {
    let p = out_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Build it first with `cargo xtask driver` (scripts/test.sh does this before `cargo test`).",
            p.display()
        )
    })
}

/// Frame size (bytes the prologue moves rsp, return address excluded) from
/// an UNWIND_INFO; `Err` for what this analysis does not handle.
pub fn unwind_frame(info: &[u8]) -> Result<u64, String> {
    let (Some(&vf), Some(&count)) = (info.first(), info.get(2)) else {
        return Err("truncated UNWIND_INFO".into());
    };
    let (version, flags) = (vf & 7, vf >> 3);
    if version != 1 && version != 2 {
        return Err(format!("UNWIND_INFO version {version}"));
    }
    if flags & 4 != 0 {
        return Err("chained unwind info (UNW_FLAG_CHAININFO) is not handled".into());
    }
    let slot = |i: usize| -> Result<u16, String> {
        info.get(4 + 2 * i..6 + 2 * i)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated unwind codes".to_string())
    };
    let mut frame = 0u64;
    let mut i = 0usize;
    while i < count as usize {
        let code = slot(i)?;
        let (op, opinfo) = ((code >> 8) & 0xF, (code >> 12) & 0xF);
        match op {
            0 => frame += 8, // UWOP_PUSH_NONVOL
            1 => {
                // UWOP_ALLOC_LARGE
                if opinfo == 0 {
                    frame += u64::from(slot(i + 1)?) * 8;
                    i += 1;
                } else {
                    frame += u64::from(slot(i + 1)?) | (u64::from(slot(i + 2)?) << 16);
                    i += 2;
                }
            }
            2 => frame += u64::from(opinfo) * 8 + 8, // UWOP_ALLOC_SMALL
            3 => {}                                  // UWOP_SET_FPREG
            4 | 8 => i += 1,                         // SAVE_NONVOL, SAVE_XMM128
            5 | 9 => i += 2,                         // *_FAR
            6 if version == 2 => i += 1,             // UWOP_EPILOG (v2)
            10 => frame += if opinfo == 0 { 40 } else { 48 }, // PUSH_MACHFRAME
            other => return Err(format!("unwind op {other}")),
        }
        i += 1;
    }
    Ok(frame)
}

#[derive(Debug, Default, Clone)]
struct Func {
    start: u32,
    end: u32,
    frame: u64,
    /// Direct calls (callee RVA).
    calls: BTreeSet<u32>,
    /// Tail jumps out of the function (callee RVA).
    tails: BTreeSet<u32>,
    /// Kernel routines called (through the IAT or an import thunk).
    imports: BTreeSet<String>,
    /// Calls through a register or a non-IAT memory operand: (address,
    /// where the pointer was loaded from, if found).
    indirect: Vec<(u64, Option<u32>)>,
    /// Function starts whose address this function loads.
    address_taken: BTreeSet<u32>,
}

struct Image {
    base: u64,
    funcs: BTreeMap<u32, Func>,
    /// Import thunk RVA or IAT slot RVA → import name.
    imports: HashMap<u32, String>,
    names: HashMap<u32, String>,
    /// Data symbols (non-code sections of the map), for naming pointers.
    data_syms: BTreeMap<u32, String>,
    entry: u32,
    /// Address-taken functions (relocations into .text, RIP-relative lea).
    roots: BTreeSet<u32>,
}

impl Image {
    /// The symbol a data address lies in (`name+offset`).
    fn data_name(&self, rva: u32) -> String {
        match self.data_syms.range(..=rva).next_back() {
            Some((s, n)) => {
                let d = format!("{:#}", rustc_demangle::demangle(n));
                let d = d
                    .strip_prefix("fltpolicy_driver::")
                    .unwrap_or(&d)
                    .to_string();
                if *s == rva {
                    d
                } else {
                    format!("{d}+{:#x}", rva - s)
                }
            }
            None => format!("{rva:#x}"),
        }
    }

    fn name(&self, rva: u32) -> String {
        match self.names.get(&rva) {
            Some(n) => {
                let d = format!("{:#}", rustc_demangle::demangle(n));
                d.strip_prefix("fltpolicy_driver::")
                    .unwrap_or(&d)
                    .to_string()
            }
            None => format!("sub_{rva:x}"),
        }
    }
}

/// Function addresses from the link map ("Publics by Value" and "Static
/// symbols": `0001:00003bc0  name  00000001800051a0  lib:object`).
fn parse_map(map: &str, base: u64) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in map.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || !f[0].starts_with("0001:") {
            continue;
        }
        let Ok(va) = u64::from_str_radix(f[2], 16) else {
            continue;
        };
        if va >= base {
            names
                .entry((va - base) as u32)
                .or_insert_with(|| f[1].to_string());
        }
    }
    names
}

/// Data symbols of the link map (sections other than 0001, the code).
fn parse_data_map(map: &str, base: u64) -> BTreeMap<u32, String> {
    let mut syms = BTreeMap::new();
    for line in map.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4
            || !f[0].starts_with("000")
            || f[0].starts_with("0001:")
            || !f[0].contains(':')
        {
            continue;
        }
        let Ok(va) = u64::from_str_radix(f[2], 16) else {
            continue;
        };
        if va >= base {
            syms.insert((va - base) as u32, f[1].to_string());
        }
    }
    syms
}

fn decode_at(bytes: &[u8], base: u64, rva: u32) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, bytes, base + u64::from(rva), DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

fn load() -> Image {
    let data = read("fltpolicy.sys");
    let map = String::from_utf8(read("fltpolicy.map")).expect("the map is text");
    let pe = PeFile64::parse(&*data).expect("a PE32+ image");
    let base = pe.nt_headers().optional_header().image_base();
    let sections = pe.section_table();
    let at = |rva: u32, len: usize| -> &[u8] {
        let d = sections.pe_data_at(&*data, rva).unwrap_or(&[]);
        &d[..d.len().min(len)]
    };
    let names = parse_map(&map, base);
    assert!(
        names.values().any(|n| n == "DriverEntry"),
        "the link map names DriverEntry"
    );

    // Imports: IAT slot → name.
    let mut imports = HashMap::new();
    let table = pe.import_table().unwrap().expect("import table");
    let mut descs = table.descriptors().unwrap();
    while let Some(desc) = descs.next().unwrap() {
        let iat = desc.first_thunk.get(LE);
        let lookup = match desc.original_first_thunk.get(LE) {
            0 => iat,
            o => o,
        };
        let mut thunks = table.thunks(lookup).unwrap();
        let mut i = 0u32;
        while let Some(t) = thunks.next::<object::pe::ImageNtHeaders64>().unwrap() {
            let name = match table.import::<object::pe::ImageNtHeaders64>(t).unwrap() {
                Import::Name(_, n) => String::from_utf8_lossy(n).into_owned(),
                Import::Ordinal(o) => format!("#{o}"),
            };
            let _ = t.raw();
            imports.insert(iat + 8 * i, name);
            i += 1;
        }
    }

    // Functions from .pdata.
    let ex = pe
        .data_directory(IMAGE_DIRECTORY_ENTRY_EXCEPTION)
        .expect("an exception directory (.pdata)");
    let (ex_rva, ex_size) = (ex.virtual_address.get(LE), ex.size.get(LE));
    let pdata = at(ex_rva, ex_size as usize);
    let mut funcs = BTreeMap::new();
    for e in pdata.chunks_exact(12) {
        let w = |i: usize| u32::from_le_bytes(e[i..i + 4].try_into().unwrap());
        let (start, end, unwind) = (w(0), w(4), w(8));
        let frame = unwind_frame(at(unwind, 4 + 2 * 256)).unwrap_or_else(|err| {
            panic!("{}: {err}", names.get(&start).cloned().unwrap_or_default())
        });
        funcs.insert(
            start,
            Func {
                start,
                end,
                frame,
                ..Func::default()
            },
        );
    }
    assert!(
        funcs.len() > 20,
        "the image has unwind info for its functions"
    );

    // Decode each function; targets without unwind info become leaf
    // functions (frame 0), decoded up to the next known start.
    let text_end = {
        let s = sections
            .iter()
            .find(|s| s.name == *b".text\0\0\0")
            .expect(".text");
        s.virtual_address.get(LE) + s.virtual_size.get(LE)
    };
    let mut queue: Vec<u32> = funcs.keys().copied().collect();
    let mut thunk_imports: HashMap<u32, String> = HashMap::new();
    while let Some(start) = queue.pop() {
        let end = funcs.get(&start).map(|f| f.end).unwrap_or_else(|| {
            funcs
                .range(start + 1..)
                .next()
                .map_or(text_end, |(s, _)| *s)
        });
        let code = at(start, (end - start) as usize);
        let mut f = funcs.remove(&start).unwrap_or(Func {
            start,
            end,
            ..Func::default()
        });
        let inside = |t: u64| t >= base + u64::from(start) && t < base + u64::from(end);
        let mut new_targets = Vec::new();
        let decoded = decode_at(code, base, start);
        let mut info = InstructionInfoFactory::new();
        for (idx, ins) in decoded.iter().enumerate() {
            let ins = *ins;
            let fc = ins.flow_control();
            let mem_slot = (ins.op_count() == 1
                && ins.op0_kind() == OpKind::Memory
                && ins.is_ip_rel_memory_operand())
            .then(|| (ins.ip_rel_memory_address() - base) as u32);
            match fc {
                FlowControl::Call => {
                    let t = (ins.near_branch_target() - base) as u32;
                    f.calls.insert(t);
                    new_targets.push(t);
                }
                FlowControl::UnconditionalBranch
                    if ins.op0_kind() == OpKind::NearBranch64
                        && !inside(ins.near_branch_target()) =>
                {
                    let t = (ins.near_branch_target() - base) as u32;
                    f.tails.insert(t);
                    new_targets.push(t);
                }
                FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                    match mem_slot.and_then(|s| imports.get(&s)) {
                        Some(name) => {
                            f.imports.insert(name.clone());
                            if fc == FlowControl::IndirectBranch
                                && ins.len() == 6
                                && start == f.start
                            {
                                // `jmp [rip+iat]`: an import thunk.
                                thunk_imports.insert(start, name.clone());
                            }
                        }
                        // A jump through a register inside a function is a
                        // switch table; a call is a function pointer: find
                        // where the register was last loaded from.
                        None if fc == FlowControl::IndirectCall => {
                            let src = mem_slot.or_else(|| {
                                (ins.op0_kind() == OpKind::Register)
                                    .then(|| {
                                        loaded_from(
                                            &decoded[..idx],
                                            ins.op0_register(),
                                            base,
                                            &mut info,
                                        )
                                    })
                                    .flatten()
                            });
                            match src.and_then(|s| imports.get(&s)) {
                                Some(name) => {
                                    f.imports.insert(name.clone());
                                }
                                None => f.indirect.push((ins.ip(), src)),
                            }
                        }
                        None => {}
                    }
                }
                _ => {}
            }
            if ins.code() == Code::Lea_r64_m
                && ins.memory_base() == Register::RIP
                && text_range(&sections, ins.ip_rel_memory_address() - base)
            {
                f.address_taken
                    .insert((ins.ip_rel_memory_address() - base) as u32);
            }
        }
        funcs.insert(start, f);
        for t in new_targets {
            if !funcs.contains_key(&t) && !queue.contains(&t) && t < text_end {
                queue.push(t);
            }
        }
    }
    for (rva, name) in &thunk_imports {
        imports.insert(*rva, name.clone());
    }

    // Address-taken functions: stored in data (DIR64 relocations) or
    // loaded with lea.
    let mut roots = BTreeSet::new();
    let mut blocks = pe
        .data_directories()
        .relocation_blocks(&*data, &sections)
        .unwrap()
        .expect("base relocations");
    while let Some(block) = blocks.next().unwrap() {
        for r in block {
            if r.typ != IMAGE_REL_BASED_DIR64 {
                continue;
            }
            let v = at(r.virtual_address, 8);
            if v.len() == 8 {
                let va = u64::from_le_bytes(v.try_into().unwrap());
                let rva = va.wrapping_sub(base) as u32;
                if funcs.contains_key(&rva) {
                    roots.insert(rva);
                }
            }
        }
    }
    for f in funcs.values() {
        roots.extend(f.address_taken.iter().filter(|t| funcs.contains_key(t)));
    }
    let entry = pe.nt_headers().optional_header().address_of_entry_point();
    roots.insert(entry);
    Image {
        base,
        funcs,
        imports,
        data_syms: parse_data_map(&map, base),
        names,
        entry,
        roots,
    }
}

/// The RIP-relative slot `reg` was last loaded from (`mov reg, [rip+X]`)
/// before the end of `before`, scanning backwards to the last write of
/// `reg`. Straight-line approximation: good for the hoisted import
/// addresses and static function pointers the compiler emits.
fn loaded_from(
    before: &[Instruction],
    reg: Register,
    base: u64,
    info: &mut InstructionInfoFactory,
) -> Option<u32> {
    let full = reg.full_register();
    for ins in before.iter().rev() {
        let writes = info.info(ins).used_registers().iter().any(|u| {
            u.register().full_register() == full
                && matches!(
                    u.access(),
                    OpAccess::Write
                        | OpAccess::ReadWrite
                        | OpAccess::CondWrite
                        | OpAccess::ReadCondWrite
                )
        });
        if writes {
            return (ins.code() == Code::Mov_r64_rm64
                && ins.op1_kind() == OpKind::Memory
                && ins.is_ip_rel_memory_operand())
            .then(|| (ins.ip_rel_memory_address() - base) as u32);
        }
    }
    None
}

fn text_range(sections: &object::read::pe::SectionTable<'_>, rva: u64) -> bool {
    sections.iter().any(|s| {
        s.name == *b".text\0\0\0"
            && rva >= u64::from(s.virtual_address.get(LE))
            && rva < u64::from(s.virtual_address.get(LE) + s.virtual_size.get(LE))
    })
}

/// Deepest stack (our frames and return addresses) below `f`'s caller,
/// with the path.
fn worst(
    img: &Image,
    f: u32,
    memo: &mut HashMap<u32, (u64, Vec<u32>)>,
    active: &mut Vec<u32>,
    cycles: &mut BTreeSet<String>,
) -> (u64, Vec<u32>) {
    if let Some(r) = memo.get(&f) {
        return r.clone();
    }
    if img.imports.contains_key(&f) {
        return (0, vec![]); // an import thunk: kernel code
    }
    if active.contains(&f) {
        cycles.insert(
            active
                .iter()
                .chain([&f])
                .map(|r| img.name(*r))
                .collect::<Vec<_>>()
                .join(" -> "),
        );
        return (0, vec![]);
    }
    let Some(func) = img.funcs.get(&f) else {
        return (8, vec![f]);
    };
    active.push(f);
    let mut best = (func.frame + 8, vec![f]);
    for &c in &func.calls {
        let (d, p) = worst(img, c, memo, active, cycles);
        if func.frame + 8 + d > best.0 {
            best = (func.frame + 8 + d, [vec![f], p].concat());
        }
    }
    for &t in &func.tails {
        // A tail jump reuses our return address after popping our frame.
        let (d, p) = worst(img, t, memo, active, cycles);
        if d > best.0 {
            best = (d, [vec![f], p].concat());
        }
    }
    active.pop();
    memo.insert(f, best.clone());
    best
}

/// Functions whose address is taken but that are not callbacks: they are
/// reached from other entry points or are thunks (listed for the report).
fn is_import_thunk(img: &Image, f: u32) -> bool {
    img.imports.contains_key(&f)
}

struct Report {
    text: String,
    worst_frame: (u64, String),
    over_frame: Vec<(u64, String)>,
    chkstk_callers: Vec<String>,
    over_path: Vec<(u64, String)>,
    unknown_indirect: Vec<String>,
    cycles: BTreeSet<String>,
    entries: BTreeMap<String, u64>,
}

fn analyse(img: &Image) -> Report {
    let mut text = String::new();
    let mut frames: Vec<(u64, String)> = img
        .funcs
        .values()
        .map(|f| (f.frame, img.name(f.start)))
        .collect();
    frames.sort_by(|a, b| b.cmp(a));
    text.push_str(&format!(
        "{} functions; largest frames (bytes reserved by the prologue):\n",
        img.funcs.len()
    ));
    for (fr, n) in frames.iter().take(12) {
        text.push_str(&format!("  {fr:>6}  {n}\n"));
    }
    let chkstk: Vec<u32> = img
        .imports
        .iter()
        .filter(|(_, n)| *n == "__chkstk")
        .map(|(r, _)| *r)
        .collect();
    let chkstk_callers: Vec<String> = img
        .funcs
        .values()
        .filter(|f| !img.imports.contains_key(&f.start) && !pending(&img.name(f.start)))
        .filter(|f| f.imports.contains("__chkstk") || f.calls.iter().any(|c| chkstk.contains(c)))
        .map(|f| format!("{} ({} bytes)", img.name(f.start), f.frame))
        .collect();
    let mut memo = HashMap::new();
    let mut cycles = BTreeSet::new();
    let mut over_path = Vec::new();
    let mut entries = BTreeMap::new();
    text.push_str("\nentry points (worst chain of our own stack, kernel routines excluded):\n");
    for &r in &img.roots {
        if is_import_thunk(img, r) {
            continue;
        }
        let (d, path) = worst(img, r, &mut memo, &mut Vec::new(), &mut cycles);
        let name = img.name(r);
        let mark = if r == img.entry { " (image entry)" } else { "" };
        text.push_str(&format!("  {d:>6}  {name}{mark}\n"));
        let chain: Vec<String> = path
            .iter()
            .map(|p| {
                let fr = img.funcs.get(p).map_or(0, |f| f.frame);
                format!("{} [{}]", img.name(*p), fr + 8)
            })
            .collect();
        text.push_str(&format!("          via {}\n", chain.join(" -> ")));
        if d > PATH_BUDGET && !path.iter().any(|p| pending(&img.name(*p))) {
            over_path.push((d, name.clone()));
        }
        entries.insert(name, d);
    }
    let mut unknown_indirect = Vec::new();
    text.push_str("\ncalls through a function pointer (not followed):\n");
    for f in img.funcs.values() {
        for (ip, src) in &f.indirect {
            let n = img.name(f.start);
            let from = src.map_or("an unknown place".to_string(), |s| img.data_name(s));
            text.push_str(&format!(
                "  {n} at {:#x}: pointer loaded from {from}\n",
                ip - img.base
            ));
            if !KERNEL_POINTERS.iter().any(|k| from.starts_with(k)) {
                unknown_indirect.push(format!("{n} at {:#x} ({from})", ip - img.base));
            }
        }
    }
    Report {
        text,
        worst_frame: frames[0].clone(),
        over_frame: frames
            .iter()
            .filter(|(f, n)| *f > FRAME_BUDGET && !pending(n))
            .cloned()
            .collect(),
        chkstk_callers,
        over_path,
        unknown_indirect,
        cycles,
        entries,
    }
}

#[test]
fn unwind_codes_give_exact_frames() {
    // push rbp; push rsi; sub rsp, 0x3828 (ALLOC_LARGE, 16-bit slot count):
    // codes are listed in reverse prologue order.
    let info = [
        0x01, 0x0B, 0x04, 0x00, // v1, prolog 11 bytes, 4 slots
        0x0B, 0x01, 0x07, 0x07, // ALLOC_LARGE info 0 ... slot
        0x04, 0x60, 0x02, 0x50, // PUSH_NONVOL rsi, PUSH_NONVOL rbp
    ];
    // ALLOC_LARGE with info 0: size/8 in the next slot (0x0707 * 8).
    assert_eq!(unwind_frame(&info).unwrap(), 0x0707 * 8 + 16);
    // ALLOC_SMALL 0x28 (info 4) and one push.
    let small = [0x01, 0x05, 0x02, 0x00, 0x05, 0x42, 0x01, 0x30];
    assert_eq!(unwind_frame(&small).unwrap(), 0x28 + 8);
    // ALLOC_LARGE info 1: a 32-bit size in two slots.
    let large = [0x01, 0x07, 0x03, 0x00, 0x07, 0x11, 0x00, 0x00, 0x01, 0x00];
    assert_eq!(unwind_frame(&large).unwrap(), 0x1_0000);
    // Chained info is refused rather than under-counted.
    assert!(unwind_frame(&[0x21, 0, 0, 0]).is_err());
}

#[test]
fn chains_add_frames_and_tail_jumps_reuse_the_return_address() {
    // a (frame 100) calls b (frame 200), which tail-jumps to c (frame 300);
    // a also calls an import thunk k (kernel: not counted). Worst chain
    // from a: a's frame + return address, then c's frame + the return
    // address b pushed (b's frame is gone at the jump) = 108 + 308.
    let f = |start, frame, calls: &[u32], tails: &[u32]| Func {
        start,
        end: start + 16,
        frame,
        calls: calls.iter().copied().collect(),
        tails: tails.iter().copied().collect(),
        ..Func::default()
    };
    let mut funcs = BTreeMap::new();
    funcs.insert(0x10, f(0x10, 100, &[0x20, 0x90], &[]));
    funcs.insert(0x20, f(0x20, 200, &[], &[0x30]));
    funcs.insert(0x30, f(0x30, 300, &[], &[]));
    funcs.insert(0x90, f(0x90, 0, &[], &[]));
    let img = Image {
        base: 0,
        funcs,
        imports: HashMap::from([(0x90, "KeSetEvent".to_string())]),
        names: HashMap::new(),
        data_syms: BTreeMap::new(),
        entry: 0x10,
        roots: BTreeSet::from([0x10]),
    };
    let (d, path) = worst(
        &img,
        0x10,
        &mut HashMap::new(),
        &mut Vec::new(),
        &mut BTreeSet::new(),
    );
    assert_eq!(d, 108 + 308);
    assert_eq!(path, vec![0x10, 0x20, 0x30]);
    // Recursion is reported, not looped on.
    let mut img = img;
    img.funcs.get_mut(&0x30).unwrap().calls.insert(0x10);
    let mut cycles = BTreeSet::new();
    worst(
        &img,
        0x10,
        &mut HashMap::new(),
        &mut Vec::new(),
        &mut cycles,
    );
    assert_eq!(cycles.len(), 1, "{cycles:?}");
}

#[test]
fn driver_stack_budget() {
    let img = load();
    let r = analyse(&img);
    println!("{}", r.text);
    for cb in [
        "DriverEntry",
        "ops::pre_create",
        "ops::post_create",
        "ops::pre_io",
        "ops::post_io",
        "instance::instance_setup",
        "entry::filter_unload",
        "entry::process_notify",
        "control::dispatch_open_close",
        "control::dispatch_device_control",
        "flush::flush_thread",
    ] {
        assert!(
            r.entries.keys().any(|k| k == cb),
            "entry point {cb} not found among the address-taken functions: {:?}",
            r.entries.keys().collect::<Vec<_>>()
        );
    }
    let cycles: Vec<&String> = r
        .cycles
        .iter()
        .filter(|c| {
            let names: Vec<&str> = c.split(" -> ").collect();
            let last = names[names.len() - 1];
            let first = names.iter().position(|n| *n == last).unwrap_or(0);
            !names[first..]
                .iter()
                .all(|n| ACCEPTED_CYCLES.iter().any(|a| n.starts_with(a)))
        })
        .collect();
    assert!(cycles.is_empty(), "recursion: {cycles:?}");
    assert!(
        r.unknown_indirect.is_empty(),
        "calls through function pointers the analysis cannot follow: {:?}",
        r.unknown_indirect
    );
    assert!(
        r.chkstk_callers.is_empty(),
        "functions with stack probes (frames over a page): {:?}",
        r.chkstk_callers
    );
    assert!(
        r.over_frame.is_empty(),
        "frames over {FRAME_BUDGET} bytes: {:?} (largest: {:?})",
        r.over_frame,
        r.worst_frame
    );
    assert!(
        r.over_path.is_empty(),
        "entry points whose worst chain exceeds {PATH_BUDGET} bytes: {:?}",
        r.over_path
    );
}

#[test]
fn driver_image_does_not_import_chkstk() {
    let img = load();
    assert!(
        !img.imports.values().any(|n| n == "__chkstk"),
        "__chkstk imported: some function needs a stack probe, or the import is dead weight"
    );
}

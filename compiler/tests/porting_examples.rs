//! Every policy example in docs/porting.md (a code block that starts with
//! `target`) compiles without errors or warnings for its target.
use fltpolicy_compiler::check::declared_target;
use fltpolicy_compiler::compile;

#[test]
fn porting_guide_examples_compile_clean() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/porting.md"))
        .expect("docs/porting.md");
    let mut n = 0;
    for block in doc.split("```").skip(1).step_by(2) {
        let src = block
            .trim_start_matches(|c: char| c.is_alphanumeric())
            .trim_start();
        let Some(target) = declared_target(src) else {
            continue;
        };
        let c = compile(src, "porting.md", target).unwrap_or_else(|e| panic!("{src}\n{e:?}"));
        assert!(
            c.warnings.items.is_empty(),
            "{src}\n{}",
            c.warnings.render()
        );
        n += 1;
    }
    assert!(n >= 2, "examples found: {n}");
}

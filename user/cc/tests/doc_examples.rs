//! Every example in `docs/language.md` compiles. A ```c fence holds a complete program
//! and must compile at -O0 and -O1; fragments and templates go in ```text fences,
//! so that nothing in a ```c fence escapes this test.

use sagrada_cc::{OptLevel, compile};

const DOC: &str = include_str!("../../../docs/language.md");

/// The ```c fences: (line of the fence, its contents).
fn programs() -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = DOC.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim() != "```c" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        out.push((n + 1, body.join("\n")));
    }
    out
}

#[test]
fn the_doc_has_examples() {
    assert!(programs().len() >= 5, "{}", programs().len());
}

#[test]
fn every_example_in_the_doc_compiles() {
    for (line, src) in programs() {
        for level in [OptLevel::O0, OptLevel::O1] {
            if let Err(e) = compile(&src, "example.sgc", level) {
                panic!("the example at docs/language.md:{line} at {level:?}:\n{e}");
            }
        }
    }
}

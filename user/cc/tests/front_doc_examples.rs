//! Every complete program in `docs/language.md` passes the front end: a ```c fence
//! whose first line starts with `kernel`, `fn`, `const` or a comment.

const DOC: &str = include_str!("../../../docs/language.md");

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
        let first = body.first().map_or("", |l| l.trim_start());
        if ["kernel", "fn", "const", "//", "/*"]
            .iter()
            .any(|p| first.starts_with(p))
        {
            out.push((n + 1, body.join("\n")));
        }
    }
    out
}

#[test]
fn doc_examples_are_found() {
    assert!(programs().len() >= 5, "{}", programs().len());
}

#[test]
fn doc_examples_check() {
    for (line, src) in programs() {
        if let Err(d) = sagrada_cc::front::check(&src) {
            panic!(
                "the example at docs/language.md:{line}:\n{}",
                d.render(&src, "example")
            );
        }
    }
}

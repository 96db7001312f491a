//! The front end never panics and every error points inside the source: random
//! bytes, random token soups, and mutations of the demo kernels.

use proptest::prelude::*;

const DEMOS: &[&str] = &[
    include_str!("../../../kernels/vadd.sgc"),
    include_str!("../../../kernels/saxpy.sgc"),
    include_str!("../../../kernels/row_sum.sgc"),
    include_str!("../../../kernels/softmax.sgc"),
    include_str!("../../../kernels/gemm.sgc"),
    include_str!("../../../kernels/layernorm.sgc"),
    include_str!("../../../kernels/gemm_bf16.sgc"),
];

const TOKENS: &[&str] = &[
    "kernel",
    "fn",
    "const",
    "k",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ";",
    ",",
    "=",
    "+=",
    "++",
    "int",
    "f32",
    "f32x64",
    "mask",
    "int4",
    "tensor<f32>",
    "a",
    "x",
    "1",
    "0x10",
    "2.5",
    "where",
    "unroll",
    "for",
    "if",
    "else",
    "while",
    "return",
    "break",
    "load",
    "store",
    "lanes",
    "index",
    "<",
    ">",
    "&&",
    "?",
    ":",
    "-",
    "!",
    "~",
    "*",
    "/",
    "%",
    "<<",
    "local",
    "true",
];

/// Checks `src`; every error's span must lie inside it, and rendering must work.
fn no_panic(src: &str) {
    if let Err(d) = sagrada_cc::front::check(src) {
        assert!(!d.0.is_empty());
        for e in &d.0 {
            assert!(
                e.span.start <= e.span.end && e.span.end as usize <= src.len(),
                "{e:?}"
            );
        }
        let _ = d.render(src, "p.sgc");
    } else if let Ok(p) = sagrada_cc::front::check(src) {
        let _ = sagrada_cc::lower::lower(&p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        no_panic(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soups_never_panic(picks in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let src: Vec<&str> = picks.iter().map(|&i| TOKENS[i]).collect();
        no_panic(&src.join(" "));
    }

    #[test]
    fn mutated_demos_never_panic(
        demo in 0..DEMOS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..4u8, 0..TOKENS.len()), 1..4),
    ) {
        let mut src = DEMOS[demo].to_string();
        for (at, kind, tok) in edits {
            let mut i = at.index(src.len() + 1);
            while !src.is_char_boundary(i) {
                i -= 1;
            }
            match kind {
                0 => src.insert_str(i, TOKENS[tok]),
                1 => {
                    let mut j = (i + 1 + tok % 8).min(src.len());
                    while !src.is_char_boundary(j) {
                        j -= 1;
                    }
                    src.replace_range(i..j, "");
                }
                2 => src.insert_str(i, " 99999999999 "),
                _ => src.insert(i, '('),
            }
        }
        no_panic(&src);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for open in ["(", "-", "{", "!"] {
        let src = format!("kernel k() {{ int x = {}1; }}", open.repeat(5000));
        no_panic(&src);
    }
    let blocks = format!("kernel k() {{ {} }}", "if (true) {".repeat(3000));
    no_panic(&blocks);
}

#[test]
fn long_operator_chains_are_bounded_and_accepted_up_to_the_limit() {
    let ok = format!(
        "kernel k(tensor<i32> t) {{ t[int4(0)] = {}1; }}",
        "1 + ".repeat(100)
    );
    let p = sagrada_cc::front::check(&ok);
    assert!(p.is_ok());
    if let Ok(p) = p {
        let _ = sagrada_cc::lower::lower(&p);
    }
    for chain in ["1 + ", "x[0]", "1 << "] {
        let src = format!("kernel k() {{ int x = {}1; }}", chain.repeat(20000));
        no_panic(&src);
        assert!(sagrada_cc::front::check(&src).is_err());
    }
}

#[test]
fn long_call_chains_are_bounded() {
    let mut src = String::new();
    for i in 0..300 {
        src.push_str(&format!(
            "fn h{i}(i32 x) -> i32 {{ return h{}(x) + 1; }}\n",
            i + 1
        ));
    }
    src.push_str(
        "fn h300(i32 x) -> i32 { return x; }\nkernel k(tensor<i32> t) { t[int4(0)] = h0(1); }\n",
    );
    let e = sagrada_cc::front::check(&src)
        .err()
        .map(|d| d.0[0].message.clone())
        .unwrap_or_default();
    assert!(e.contains("nests too deeply"), "{e}");
    let mut wide = String::new();
    for i in 0..40 {
        wide.push_str(&format!(
            "fn g{i}(i32 x) -> i32 {{ return g{}(x) + g{}(x); }}\n",
            i + 1,
            i + 1
        ));
    }
    wide.push_str(
        "fn g40(i32 x) -> i32 { return x; }\nkernel k(tensor<i32> t) { t[int4(0)] = g0(1); }\n",
    );
    let e = sagrada_cc::front::check(&wide)
        .err()
        .map(|d| d.0[0].message.clone())
        .unwrap_or_default();
    assert!(e.contains("too large"), "{e}");
}

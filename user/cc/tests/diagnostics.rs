//! One test per class of error: the exact message and where it points.

use sagrada_cc::front::check;

/// Every error of `src` as `line:column: message`.
fn errors(src: &str) -> Vec<String> {
    match check(src) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(d) => {
            d.0.iter()
                .map(|e| {
                    let (l, c, _) = sagrada_cc::diag::line_col(src, e.span.start);
                    format!("{l}:{c}: {}", e.message)
                })
                .collect()
        }
    }
}

fn one(src: &str) -> String {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap_or_default()
}

/// Wraps statements in a kernel; they start on line 2, column 5.
fn body(stmts: &str) -> String {
    format!("kernel k(tensor<f32> a, tensor<i32> t, f32 s, i32 n) {{\n    {stmts}\n}}\n")
}

#[test]
fn lexical_bad_character() {
    assert_eq!(
        one(&body("int x = 1 @ 2;")),
        "2:15: unexpected character `@`"
    );
}

#[test]
fn lexical_unterminated_comment() {
    assert_eq!(
        one(&body("/* never closed")),
        "2:5: unterminated comment: this `/*` has no matching `*/`"
    );
}

#[test]
fn lexical_integer_too_large() {
    assert_eq!(
        one(&body("int x = 4294967296;")),
        "2:13: integer literal `4294967296` does not fit in 32 bits"
    );
}

#[test]
fn lexical_bad_float() {
    assert_eq!(
        one(&body("f32 x = 1e+;")),
        "2:13: malformed float literal `1e+`: the exponent has no digits"
    );
    assert_eq!(
        one(&body("f32 x = 1e39;")),
        "2:13: float literal `1e39` is too large for an f32"
    );
}

#[test]
fn parse_missing_paren_after_call_arguments() {
    let src = "kernel k(tensor<f32> a) {\n    int4 at = int4(0);\n    f32x64 x = load(a, at;\n}\n";
    assert_eq!(
        one(src),
        "3:26: expected `)` after the arguments of `load`, found `;`"
    );
    let rendered = check(src)
        .err()
        .map(|d| d.render(src, "add.sgc"))
        .unwrap_or_default();
    assert_eq!(
        rendered,
        "add.sgc:3:26: expected `)` after the arguments of `load`, found `;`\n    f32x64 x = load(a, at;\n                         ^\n"
    );
}

#[test]
fn parse_missing_semicolon() {
    assert_eq!(
        one(&body("int x = 1\n    x = 2;")),
        "3:5: expected `;` after the declaration of `x`, found `x`"
    );
}

#[test]
fn parse_expected_expression() {
    assert_eq!(
        one(&body("int x = (1 + );")),
        "2:18: expected an expression, found `)`"
    );
}

#[test]
fn parse_unclosed_block() {
    assert_eq!(
        one("kernel k() {\n    if (true) {\n"),
        "3:1: expected `}` to close the block opened at 2:15, found the end of the file"
    );
}

#[test]
fn parse_bad_top_level() {
    assert_eq!(
        one("int x = 1;\nkernel k() {}"),
        "1:1: expected `kernel`, `fn` or `const` at the top level, found `int`"
    );
}

#[test]
fn parse_reports_several_errors_without_cascading() {
    let e = errors(&body("int x = ;\n    int y = 1 +;\n    x = y;"));
    assert_eq!(
        e,
        vec![
            "2:13: expected an expression, found `;`".to_string(),
            "3:16: expected an expression, found `;`".to_string()
        ]
    );
}

#[test]
fn parse_nesting_limit() {
    let deep = format!("int x = {}1{};", "(".repeat(200), ")".repeat(200));
    let e = one(&body(&deep));
    assert!(e.starts_with("2:") && e.contains("nesting too deep"), "{e}");
}

#[test]
fn type_mismatch_in_declaration() {
    assert_eq!(
        one(&body("f32x64 v = 0;")),
        "2:16: expected `f32x64` for the value of `v`, found `i32`"
    );
}

#[test]
fn type_mismatch_in_binary_operator() {
    assert_eq!(
        one(&body("f32 x = s + n;")),
        "2:15: `+` needs operands of one type, found `f32` and `i32`"
    );
}

#[test]
fn operator_does_not_apply() {
    assert_eq!(
        one(&body("i32x64 v = iota() / 2;")),
        "2:23: `/` does not apply to `i32x64` operands"
    );
}

#[test]
fn builtin_argument_type() {
    assert_eq!(
        one(&body("mask m = lanes(s);")),
        "2:20: expected `i32` for the 1st argument of `lanes`, found `f32`"
    );
}

#[test]
fn builtin_argument_count() {
    assert_eq!(
        one(&body("f32x64 v = load(a);")),
        "2:16: `load` takes 2 arguments, found 1"
    );
}

#[test]
fn dimension_must_be_constant_in_range() {
    assert_eq!(
        one(&body("int i = index(4);")),
        "2:19: the dimension of `index` is 4, outside 0..4"
    );
    assert_eq!(
        one(&body("int i = size(n);")),
        "2:18: the dimension of `size` must be a compile-time constant (after unrolling), and `n` is not"
    );
}

#[test]
fn int4_component_must_be_constant() {
    assert_eq!(
        one(&body("int4 c; int x = c[n];")),
        "2:23: the component index of an `int4` must be a compile-time constant (after unrolling), and `n` is not"
    );
}

#[test]
fn condition_must_be_bool() {
    assert_eq!(
        one(&body("if (n) { }")),
        "2:9: the condition of `if` must be a `bool`, found `i32`; compare it with 0"
    );
}

#[test]
fn where_mask_must_be_mask() {
    assert_eq!(
        one(&body("where (n > 0) { }")),
        "2:12: the mask of `where` must be a `mask` (a vector comparison, `lanes(n)`, ...), found `bool`"
    );
}

#[test]
fn assignment_to_non_place() {
    assert_eq!(
        one(&body("n + 1 = 2;")),
        "2:5: cannot assign to this expression: a place is a variable, an array or tensor element, an `int4` component or a vector lane"
    );
}

#[test]
fn assignment_to_constant() {
    assert_eq!(
        one("const N = 4;\nkernel k() {\n    N = 5;\n}"),
        "3:5: cannot assign to constant `N`"
    );
}

#[test]
fn break_outside_loop() {
    assert_eq!(one(&body("break;")), "2:5: `break` outside of a loop");
}

#[test]
fn missing_return_value_on_some_path() {
    assert_eq!(
        one("fn f(i32 x) -> i32 {\n    if (x > 0) { return 1; }\n}\nkernel k() { }"),
        "3:1: `f` returns `i32`, but this path reaches the end of its body without `return` (loops are taken to finish)"
    );
}

#[test]
fn return_value_in_kernel() {
    assert_eq!(
        one(&body("return 1;")),
        "2:12: `k` is a kernel that returns nothing: `return` takes no value here"
    );
}

#[test]
fn recursion_is_an_error() {
    assert_eq!(
        one(
            "fn f(i32 x) -> i32 { return g(x); }\nfn g(i32 x) -> i32 { return f(x); }\nkernel k() { }"
        ),
        "2:29: recursion: `g` calls `f`, which calls `g` back; calls are inlined, so no function may call itself, directly or through others"
    );
}

#[test]
fn unroll_needs_constant_bounds() {
    assert_eq!(
        one(&body("unroll for (int i = 0; i < n; i++) { }")),
        "2:32: the bound of `unroll for` must be a compile-time constant, and `n` is not"
    );
}

#[test]
fn unroll_copy_limit() {
    assert_eq!(
        one(&body("unroll for (int i = 0; i < 2000; i++) { }")),
        "2:5: `unroll for` would make more than 1024 copies of its body"
    );
}

#[test]
fn unroll_shape() {
    let e = one(&body("unroll for (int i = 0; i < 8; i += 2) { }"));
    assert!(
        e.starts_with("2:35: `unroll for` must have the shape"),
        "{e}"
    );
    assert!(e.ends_with("this step does not add or subtract one"), "{e}");
}

#[test]
fn register_array_index_must_be_constant_and_in_range() {
    assert_eq!(
        one(&body(
            "f32 r[4]; for (int i = 0; i < 4; i++) { r[i] = 1.0; }"
        )),
        "2:47: the index of register array `r` must be a compile-time constant (after unrolling), and `i` is not"
    );
    assert_eq!(
        one(&body(
            "f32 r[4]; unroll for (int i = 0; i <= 4; i++) { r[i] = 1.0; }"
        )),
        "2:55: the index of register array `r` is 4 (when i = 4), outside 0..4"
    );
}

#[test]
fn unroll_counter_is_not_assignable() {
    assert_eq!(
        one(&body("unroll for (int i = 0; i < 4; i++) { i = 2; }")),
        "2:42: cannot assign to `i`: the counter of an `unroll for` is a constant in each copy"
    );
}

#[test]
fn where_forbids_lane_extraction_rotate_and_shuffle() {
    assert_eq!(
        one(&body("f32x64 v; where (v > 0.0) { f32 x = v[0]; }")),
        "2:41: a vector lane cannot be read inside `where`: the lanes outside the mask are unspecified"
    );
    assert_eq!(
        one(&body("f32x64 v; where (v > 0.0) { v = rotate(v, 1); }")),
        "2:37: `rotate` cannot be used inside `where`: it moves the lanes outside the mask, which are unspecified"
    );
}

#[test]
fn a_vector_is_not_returned_from_inside_where() {
    assert_eq!(
        one("fn f(f32x64 x) -> f32x64 { where (x > 0.0) { return x; } return x; }\nkernel k() { }"),
        "1:46: `f` cannot return its `f32x64` from inside `where`: the lanes outside the mask would leave it unspecified"
    );
}

#[test]
fn where_forbids_counting_and_bf16_packing() {
    assert_eq!(
        one(&body(
            "f32x64 v; i32 c; where (v > 0.0) { c = count(v > 1.0); }"
        )),
        "2:44: `count` cannot be used inside `where`: it counts every lane, and the lanes outside the mask are unspecified"
    );
    assert_eq!(
        one(&body(
            "f32x64 v; where (v > 0.0) { v = unpack_lo(pack_bf16(v, v)); }"
        )),
        "2:37: `unpack_lo` cannot be used inside `where`: it moves elements between lanes, and the lanes outside the mask are unspecified"
    );
}

#[test]
fn where_forbids_calls_that_extract_lanes() {
    assert_eq!(
        one(
            "fn first(f32x64 v) -> f32 { return v[0]; }\nkernel k() {\n    f32x64 v; where (v > 0.0) { f32 x = first(v); }\n}"
        ),
        "3:41: `first` cannot be called inside `where`: it reads a vector lane or moves or counts lanes (at 1:36), and inside `where` the inactive lanes are unspecified"
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        one(&body("int x; f32 x;")),
        "2:16: `x` is already declared in this block, at 2:9"
    );
    assert_eq!(
        one("fn f() { }\nfn f() { }\nkernel k() { }"),
        "2:4: `f` is already declared, at 1:4"
    );
}

#[test]
fn shadowing_in_inner_block_is_allowed() {
    assert!(check(&body("int x = 1; { f32 x = 2.0; } x = 3;")).is_ok());
}

#[test]
fn unknown_name_with_suggestion() {
    assert_eq!(
        one(&body("int count = 1; int y = cuont;")),
        "2:28: unknown name `cuont`; did you mean `count`?"
    );
    assert_eq!(
        one(&body("f32x64 v = lod(a, int4(0));")),
        "2:16: unknown function `lod`; did you mean `load`?"
    );
}

#[test]
fn exactly_one_kernel() {
    assert_eq!(
        one("fn f() { }"),
        "1:11: no kernel: a source file must declare exactly one `kernel`"
    );
    assert_eq!(
        one("kernel a() { }\nkernel b() { }"),
        "2:8: a second kernel `b`: a source file holds exactly one kernel, and `a` is declared at 1:8"
    );
}

#[test]
fn kernel_parameter_kinds() {
    assert_eq!(
        one("kernel k(f32x64 v) { }"),
        "1:10: a kernel parameter is a tensor or an `i32`, `u32` or `f32` scalar, and `v` is a `f32x64`"
    );
}

#[test]
fn const_must_be_constant() {
    assert_eq!(
        one("const N = index(0);\nkernel k() { }"),
        "1:11: the value of `N` must be a compile-time constant, and `index(0)` is not"
    );
    assert_eq!(
        one("const N = 1 / 0;\nkernel k() { }"),
        "1:11: the value of `N` divides by zero"
    );
}

#[test]
fn integer_literal_not_exact_as_f32() {
    assert_eq!(
        one(&body("f32 x = 16777217;")),
        "2:13: integer 16777217 is not exactly an `f32`; write it as a float literal"
    );
}

#[test]
fn local_arrays_must_fit_the_scratchpad() {
    assert_eq!(
        one(&body("local f32x64 p[1025];")),
        "2:20: `local` array `p` does not fit: the `local` arrays would take 262400 bytes of the scratchpad's 262144"
    );
}

#[test]
fn bf16_tensor_elements_are_not_scalars() {
    assert_eq!(
        one("kernel k(tensor<bf16> b) {\n    f32 x = b[int4(0)];\n}"),
        "2:13: the elements of bf16 tensor `b` cannot be accessed one by one; `load` and `store` vectors"
    );
}

#[test]
fn unused_expression_statement() {
    assert_eq!(
        one(&body("n + 1;")),
        "2:5: this expression's value is unused: only calls can stand alone as statements"
    );
}

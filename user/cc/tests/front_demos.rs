//! The demo kernels (`kernels/*.sgc`) pass the front end.

fn check(name: &str, src: &str) -> sagrada_cc::front::Program {
    match sagrada_cc::front::check(src) {
        Ok(p) => p,
        Err(d) => panic!("{}", d.render(src, name)),
    }
}

macro_rules! demo {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            check($file, include_str!(concat!("../../../kernels/", $file)));
        }
    };
}

demo!(demo_vadd_checks, "vadd.sgc");
demo!(demo_saxpy_checks, "saxpy.sgc");
demo!(demo_row_sum_checks, "row_sum.sgc");
demo!(demo_softmax_checks, "softmax.sgc");
demo!(demo_gemm_checks, "gemm.sgc");
demo!(demo_layernorm_checks, "layernorm.sgc");
demo!(demo_bf16_gemm_checks, "gemm_bf16.sgc");

#[test]
fn gemm_kernel_params_and_scratch() {
    let p = check("gemm.sgc", include_str!("../../../kernels/gemm.sgc"));
    assert_eq!(p.params.len(), 3);
    assert_eq!(p.scratch_bytes, 1024 * 256);
}

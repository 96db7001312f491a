//! `sagrada run`, run as a user runs it: kernels from source and from binaries, the
//! ways tensors start out, what is printed and written, and the errors.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

mod common;

use common::{Scratch, fails, ok};

fn kernel(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../kernels")
        .join(name)
}

/// `run KERNEL` followed by `rest`, as strings.
fn run_args(kernel: &Path, rest: &[&str]) -> Vec<String> {
    let mut v = vec!["run".to_owned(), kernel.display().to_string()];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The values printed on the first row of tensor `name`.
fn first_row(stdout: &str, name: &str) -> Vec<String> {
    let mut lines = stdout.lines();
    lines
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no tensor {name} in:\n{stdout}"));
    let row = lines.next().unwrap();
    row.split_whitespace()
        .skip(1) // the row's label
        .take_while(|w| *w != "...")
        .map(str::to_owned)
        .collect()
}

/// The counter table's core rows (cells split on whitespace) and its total row.
fn counter_rows(stdout: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut lines = stdout.lines();
    let header = lines
        .find(|l| l.starts_with("core "))
        .unwrap_or_else(|| panic!("no counter table in:\n{stdout}"));
    for column in [
        "invocations",
        "instructions",
        "lane-ops",
        "global bytes",
        "scratch bytes",
        "device µs",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let split = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let mut cores = Vec::new();
    for line in lines.by_ref() {
        if line.starts_with("total") {
            return (cores, split(line));
        }
        cores.push(split(line));
    }
    panic!("no total row in:\n{stdout}");
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

const VADD_200: &[&str] = &[
    "--index-space",
    "4",
    "--arg",
    "a=200:iota",
    "--arg",
    "b=200:fill=2",
    "--arg",
    "c=200:zeros",
];

#[test]
fn vadd_from_source_prints_its_sums_and_the_counters() {
    let mut args = run_args(&kernel("vadd.s"), VADD_200);
    args.extend(["--print".into(), "c".into()]);
    let stdout = ok(&args);
    assert!(
        stdout.starts_with("kernel vadd on SG1 0: index space 4 (4 points), 8 compute cores\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nc: f32 200 (200 elements)\n"), "{stdout}");
    assert!(!stdout.contains("\na: "), "only c is printed: {stdout}");
    let row = first_row(&stdout, "c");
    let want: Vec<String> = (0..16).map(|i| format!("{:?}", i as f32 + 2.0)).collect();
    assert_eq!(row, want, "{stdout}");
    assert!(stdout.contains(" ... (200 per row)\n"), "{stdout}");

    let (cores, total) = counter_rows(&stdout);
    assert_eq!(cores.len(), 8, "{stdout}");
    for (i, row) in cores.iter().enumerate() {
        assert_eq!(row[0], i.to_string(), "{stdout}");
    }
    // One invocation per point; each reads a and b and writes c: 200 elements of 4
    // bytes, three times.
    assert_eq!(total[1], "4", "{stdout}");
    assert_eq!(total[4], "2400", "{stdout}");
    assert_eq!(total[3], "800", "four vector ops over 200 lanes: {stdout}");
    assert!(
        stdout.contains("\nlaunch: ") && stdout.contains(" µs of device time"),
        "{stdout}"
    );

    // The model computes its times: a second run prints the same.
    assert_eq!(ok(&args), stdout);
}

#[test]
fn vadd_from_a_binary_writes_its_output_with_out() {
    let dir = Scratch::new("run-sgb");
    let sgb = dir.path("vadd.sgb");
    ok(&[
        OsStr::new("asm"),
        kernel("vadd.s").as_os_str(),
        OsStr::new("-o"),
        sgb.as_os_str(),
    ]);
    let c = dir.path("c.bin");
    let mut args = run_args(&sgb, VADD_200);
    args.extend(["--out".into(), format!("c={}", c.display())]);
    let stdout = ok(&args);
    // With no --print, every tensor is printed.
    for name in ["a", "b", "c"] {
        assert!(stdout.contains(&format!("\n{name}: f32 200 ")), "{stdout}");
    }
    assert_eq!(first_row(&stdout, "b")[0], "2.0");
    assert_eq!(
        std::fs::read(&c).unwrap(),
        f32_bytes((0..200).map(|i| i as f32 + 2.0))
    );
}

#[test]
fn a_tensor_starts_from_a_file() {
    let dir = Scratch::new("run-file");
    let x = dir.path("x.bin");
    let y = dir.path("y.bin");
    let xs: Vec<f32> = (0..100).map(|i| i as f32 * 0.5 - 20.0).collect();
    std::fs::write(&x, f32_bytes(xs.iter().copied())).unwrap();
    let args = run_args(
        &kernel("saxpy.s"),
        &[
            "--index-space",
            "2",
            "--arg",
            "alpha=2",
            "--arg",
            &format!("x=100:file={}", x.display()),
            "--arg",
            "y=100:ones",
            "--print",
            "y",
            "--out",
            &format!("y={}", y.display()),
        ],
    );
    let stdout = ok(&args);
    let want: Vec<f32> = xs.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_eq!(std::fs::read(&y).unwrap(), f32_bytes(want.iter().copied()));
    let row = first_row(&stdout, "y");
    assert_eq!(row[0], format!("{:?}", want[0]), "{stdout}");
}

#[test]
fn matrices_print_by_rows_and_bf16_prints_as_f32() {
    let dir = Scratch::new("run-bf16");
    let src = dir.path("keep.s");
    std::fs::write(
        &src,
        ".kernel keep\n.arg tensor h bf16\n.arg tensor n i32\n.arg u32 k\n        halt\n",
    )
    .unwrap();
    let stdout = ok(&run_args(
        &src,
        &[
            "--index-space",
            "1",
            "--arg",
            "h=3x20:fill=0.1",
            "--arg",
            "n=20x10:iota",
            "--arg",
            "k=0x10",
        ],
    ));
    // 0.1 rounded to bf16 (0x3dcd), printed as the f32 it is.
    let tenth = format!("{:?}", f32::from_bits(0x3dcd_0000));
    assert!(
        stdout.contains("\nh: bf16 3x20 (60 elements)\n"),
        "{stdout}"
    );
    assert_eq!(first_row(&stdout, "h"), vec![tenth; 3], "{stdout}");
    assert!(stdout.contains("\n  [*,7] 0.1"), "{stdout}");
    assert!(stdout.contains("\n  ... (12 more rows)\n"), "{stdout}");
    // 10 rows of 20: 8 shown, 16 elements each.
    assert!(
        stdout.contains("\nn: i32 20x10 (200 elements)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n  [*,7] 140 141 142 143 144 145 146 147 148 149 150 151 152 153 154 155 ... (20 per row)\n  ... (2 more rows)\n"),
        "{stdout}"
    );
}

#[test]
fn two_cores_on_one_thread() {
    let mut args = run_args(&kernel("vadd.s"), VADD_200);
    args.extend(
        ["--cores", "2", "--threads", "1", "--print", "c"]
            .iter()
            .map(|s| s.to_string()),
    );
    let stdout = ok(&args);
    assert!(stdout.contains(", 2 compute cores\n"), "{stdout}");
    let (cores, total) = counter_rows(&stdout);
    assert_eq!(cores.len(), 2, "{stdout}");
    assert_eq!(total[1], "4", "{stdout}");
    assert_eq!(first_row(&stdout, "c")[15], "17.0");
}

#[test]
fn every_argument_is_needed_and_none_unknown() {
    let vadd = kernel("vadd.s");
    let e = fails(&run_args(
        &vadd,
        &["--index-space", "4", "--arg", "a=200:iota"],
    ));
    assert!(
        e.contains(
            "kernel vadd needs --arg for b, c; its arguments are a: tensor f32, b: tensor f32, \
             c: tensor f32"
        ),
        "{e}"
    );
    let mut args = run_args(&vadd, VADD_200);
    args.extend(["--arg".into(), "d=4:zeros".into()]);
    let e = fails(&args);
    assert!(
        e.contains("--arg d=4:zeros: kernel vadd has no argument named \"d\"; its arguments are a: tensor f32"),
        "{e}"
    );
    let mut args = run_args(&vadd, VADD_200);
    args.extend(["--print".into(), "z".into()]);
    let e = fails(&args);
    assert!(
        e.contains("--print z: kernel vadd has no argument named \"z\""),
        "{e}"
    );
}

#[test]
fn bad_specs_name_the_offending_text() {
    let vadd = kernel("vadd.s");
    let with = |a: &str| {
        run_args(
            &vadd,
            &[
                "--index-space",
                "4",
                "--arg",
                a,
                "--arg",
                "b=200:ones",
                "--arg",
                "c=200:zeros",
            ],
        )
    };
    let e = fails(&with("a=64x"));
    assert!(
        e.contains("--arg a=64x: bad shape \"64x\": \"\" is not a size"),
        "{e}"
    );
    let e = fails(&with("a=64x:zeros"));
    assert!(
        e.contains("--arg a=64x:zeros: bad shape \"64x\": \"\" is not a size"),
        "{e}"
    );
    let e = fails(&with("a=64x0:zeros"));
    assert!(e.contains("dimension 1 is 0"), "{e}");
    let e = fails(&with("a=64:twos"));
    assert!(
        e.contains("--arg a=64:twos: bad initial value \"twos\""),
        "{e}"
    );
    let e = fails(&with("a=bf16:64:zeros"));
    assert!(e.contains("a is a tensor of f32, not of bf16"), "{e}");
    let e = fails(&run_args(
        &vadd,
        &["--index-space", "4,x", "--arg", "a=1:ones"],
    ));
    assert!(e.contains("--index-space 4,x: \"x\" is not a size"), "{e}");

    let e = fails(&run_args(
        &kernel("saxpy.s"),
        &[
            "--index-space",
            "1",
            "--arg",
            "alpha=two",
            "--arg",
            "x=8:ones",
            "--arg",
            "y=8:ones",
        ],
    ));
    assert!(
        e.contains("--arg alpha=two: alpha is an f32 scalar, and \"two\" is not an f32"),
        "{e}"
    );
}

#[test]
fn a_file_of_the_wrong_size_is_refused() {
    let dir = Scratch::new("run-file-size");
    let x = dir.path("x.bin");
    std::fs::write(&x, [0u8; 100]).unwrap();
    let e = fails(&run_args(
        &kernel("vadd.s"),
        &[
            "--index-space",
            "1",
            "--arg",
            &format!("a=64:file={}", x.display()),
            "--arg",
            "b=64:ones",
            "--arg",
            "c=64:zeros",
        ],
    ));
    assert!(
        e.contains(&format!(
            "{} holds 100 bytes; shape 64 of f32 takes 256 bytes",
            x.display()
        )),
        "{e}"
    );
}

const OUT_OF_RANGE: &str = "\
.kernel out_of_range
.arg tensor data f32
        idx     s1, 0
        li      s2, 5
        bne     s1, s2, done
        li      s4, 1000
        ldt.b32 v0, data, s4
done:
        halt
";

#[test]
fn a_fault_names_the_core_the_pc_and_the_cause() {
    let dir = Scratch::new("run-fault");
    let src = dir.path("out_of_range.s");
    // Point 5 of 16 reads coordinate 1000 of a 100-element tensor: with two points per
    // core of 8, that is core 2, at pc 4.
    std::fs::write(&src, OUT_OF_RANGE).unwrap();
    let e = fails(&run_args(
        &src,
        &["--index-space", "16", "--arg", "data=100:zeros"],
    ));
    assert!(
        e.contains(
            "kernel out_of_range: core 2 faulted at pc 4: coordinate 1000 along dimension 0 \
             is outside tensor t0 (data)"
        ),
        "{e}"
    );
    // And a bad index space is the runtime's to judge.
    let e = fails(&run_args(
        &src,
        &["--index-space", "4,0", "--arg", "data=100:zeros"],
    ));
    assert!(
        e.contains("index space [4, 0]: every dimension must be at least 1"),
        "{e}"
    );
}

#[test]
fn assembly_errors_name_the_place() {
    let dir = Scratch::new("run-asm-error");
    let src = dir.path("bad.s");
    std::fs::write(&src, ".kernel bad\n    vadd.f32 v1, s3, v2\n    halt\n").unwrap();
    let e = fails(&run_args(&src, &["--index-space", "1"]));
    assert!(
        e.contains(&format!(
            "{}:2:18: error: expected a vector register (v0-v31), found `s3`",
            src.display()
        )),
        "{e}"
    );
}

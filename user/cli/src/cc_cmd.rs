//! `sagrada cc`: SGC kernels (`docs/language.md`) to kernel binaries (`.sgb`), or
//! their IR or assembly listing.
//!
//! Compile errors are printed as the compiler renders them (file:line:column, the
//! line, a marker under the offending text), all of them, and nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use sagrada_cc::OptLevel;

/// What `sagrada cc` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The kernel binary (.sgb).
    Bin,
    /// The IR after optimisation, as text.
    Ir,
    /// The assembly listing.
    Asm,
}

#[derive(clap::Args, Debug)]
pub struct CcArgs {
    /// The SGC source.
    file: PathBuf,
    /// Where to write the output (default: for --emit bin, FILE with the extension
    /// .sgb; for --emit ir and asm, standard output).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = Emit::Bin)]
    emit: Emit,
    /// Optimisation level: -O0 (none) or -O1 (the passes and peepholes).
    #[arg(short = 'O', value_name = "LEVEL", default_value = "1", value_parser = parse_level)]
    opt: OptLevel,
}

fn parse_level(s: &str) -> Result<OptLevel, String> {
    match s {
        "0" => Ok(OptLevel::O0),
        "1" => Ok(OptLevel::O1),
        _ => Err(format!("-O{s}: the levels are -O0 and -O1")),
    }
}

/// Compiles `args.file` and writes what `args.emit` asks for.
pub fn cc(args: &CcArgs) -> Result<()> {
    let input = &args.file;
    let source = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let name = input.display().to_string();
    let compiled = match sagrada_cc::compile(&source, &name, args.opt) {
        Ok(c) => c,
        Err(e) => {
            let rendered = e.rendered.trim_end();
            if !rendered.is_empty() {
                eprintln!("{rendered}\n");
            }
            let n = e.diagnostics.0.len().max(1);
            bail!(
                "{name}: {n} error{}; nothing written",
                if n == 1 { "" } else { "s" }
            );
        }
    };
    let text = match args.emit {
        Emit::Bin => {
            let output = args
                .output
                .clone()
                .unwrap_or_else(|| input.with_extension("sgb"));
            return write(&output, &compiled.binary.to_bytes());
        }
        Emit::Ir => compiled.ir(),
        Emit::Asm => compiled.asm,
    };
    match &args.output {
        Some(path) => write(path, text.as_bytes()),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

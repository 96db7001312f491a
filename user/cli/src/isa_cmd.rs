//! `sagrada asm` and `sagrada disasm`: SG1 assembly to kernel binaries (`.sgb`) and
//! back.
//!
//! Assembly errors are printed as the assembler renders them (file:line:column, the
//! line, a caret), all of them, before the command fails. Nothing here runs a
//! kernel: that is the runtime's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sagrada_isa::asm::assemble_all_errors;
use sagrada_isa::binary::KernelBinary;
use sagrada_isa::disasm::disassemble;

/// Assembles `input` into `output` (default: `input` with the extension `.sgb`).
pub fn asm(input: &Path, output: Option<&Path>) -> Result<()> {
    let source = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let name = input.display().to_string();
    let binary = match assemble_all_errors(&source, &name) {
        Ok(b) => b,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}\n");
            }
            bail!(
                "{name}: {} error{}; no binary written",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
        }
    };
    let output = output.map_or_else(|| input.with_extension("sgb"), PathBuf::from);
    std::fs::write(&output, binary.to_bytes())
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(())
}

/// Disassembles `input` to `output` (default: standard output).
pub fn disasm(input: &Path, output: Option<&Path>) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let binary =
        KernelBinary::from_bytes(&bytes).with_context(|| format!("{}", input.display()))?;
    let text = disassemble(&binary);
    match output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

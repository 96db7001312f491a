//! The assembler never panics, and what it assembles disassembles to source that
//! assembles to the same binary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sagrada_isa::asm::assemble;
use sagrada_isa::disasm::disassemble;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = assemble(src, "fuzz.s") {
        let text = disassemble(&k);
        assert_eq!(assemble(&text, "fuzz.s"), Ok(k), "{text}");
    }
});

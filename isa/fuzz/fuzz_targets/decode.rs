//! Every 8-byte word either is refused by the decoder or decodes to an instruction
//! that encodes back to the same word.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sagrada_isa::Inst;

fuzz_target!(|data: &[u8]| {
    for chunk in data.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let word = u64::from_le_bytes(b);
        if let Ok(inst) = Inst::decode(word) {
            assert_eq!(inst.encode(), word, "{inst}");
        }
    }
});

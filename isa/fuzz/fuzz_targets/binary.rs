//! The kernel binary reader never panics, and what it accepts writes back to bytes
//! that read as the same binary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sagrada_isa::binary::KernelBinary;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = KernelBinary::from_bytes(data) {
        assert_eq!(KernelBinary::from_bytes(&k.to_bytes()), Ok(k));
    }
});

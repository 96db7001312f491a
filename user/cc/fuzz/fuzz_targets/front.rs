//! The front end never panics, every error's span lies inside the source, rendering
//! works, and a program it accepts lowers without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match sagrada_cc::front::check(src) {
        Ok(p) => {
            let _ = sagrada_cc::lower::lower(&p);
        }
        Err(d) => {
            assert!(!d.0.is_empty());
            for e in &d.0 {
                assert!(e.span.start <= e.span.end && e.span.end as usize <= src.len());
            }
            let _ = d.render(src, "fuzz.sgc");
        }
    }
});

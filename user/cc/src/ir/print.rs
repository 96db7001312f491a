//! The IR's textual form. (Being written.)

use super::Function;

/// The function in the textual form.
pub fn print(f: &Function) -> String {
    format!("kernel {} (textual form not written yet)\n", f.name)
}

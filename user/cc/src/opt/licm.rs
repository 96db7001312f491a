//! (being written)
use crate::ir::Function;
/// Not written yet.
pub fn run(_f: &mut Function) -> bool { false }

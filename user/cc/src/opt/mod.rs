//! The optimisation passes. (Being written.)

use crate::OptLevel;
use crate::ir::Function;

/// Runs the passes of `level` over `f`.
pub fn optimize(_f: &mut Function, _level: OptLevel) {}

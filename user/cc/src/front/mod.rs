//! The front end: lexer, parser, name resolution and type checking. (Being written.)

use crate::diag::Diagnostics;

/// A checked program, ready to lower.
#[derive(Debug, Clone)]
pub struct Program {}

/// Parses and checks `source`.
pub fn check(_source: &str) -> Result<Program, Diagnostics> {
    Err(Diagnostics(Vec::new()))
}

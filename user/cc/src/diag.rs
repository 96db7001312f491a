//! Diagnostics. (Being written.)

use crate::span::Span;

/// One error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The offending source.
    pub span: Span,
    /// What was wrong, in a sentence.
    pub message: String,
}

/// Every error found, in source order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Each as `file:line:column: message`, the line, and a marker under the span.
    pub fn render(&self, _source: &str, file: &str) -> String {
        self.0
            .iter()
            .map(|d| format!("{file}: {}\n", d.message))
            .collect()
    }
}

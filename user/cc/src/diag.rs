//! Diagnostics: an error's span and message, and their rendering as
//! `file:line:column: message`, the source line, and a `^~~~` marker under the span.
//!
//! Lines and columns are 1-based; columns count characters, not bytes. A marker is
//! drawn on the first line of its span only (a span running past the end of its line
//! is cut there). Tabs before the span are copied into the marker line so that the
//! marker stays under the text whatever the tab width.

use crate::span::Span;

/// One error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The offending source.
    pub span: Span,
    /// What was wrong, in a sentence.
    pub message: String,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            message: message.into(),
        }
    }
}

/// Every error found, in source order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// The 1-based line and column (in characters) of byte `offset` of `source`, with the
/// byte range of that line. An offset past the end, or inside a character, is moved
/// back to a character boundary.
pub fn line_col(source: &str, offset: u32) -> (usize, usize, std::ops::Range<usize>) {
    let mut at = (offset as usize).min(source.len());
    while at > 0 && !source.is_char_boundary(at) {
        at -= 1;
    }
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[at..].find('\n').map_or(source.len(), |i| at + i);
    let line = source[..line_start].matches('\n').count() + 1;
    let col = source[line_start..at].chars().count() + 1;
    (line, col, line_start..line_end)
}

impl Diagnostics {
    /// Each as `file:line:column: message`, the line, and a marker under the span.
    pub fn render(&self, source: &str, file: &str) -> String {
        let mut out = String::new();
        for d in &self.0 {
            let (line, col, range) = line_col(source, d.span.start);
            let text = source[range.clone()].trim_end_matches('\r');
            out.push_str(&format!("{file}:{line}:{col}: {}\n", d.message));
            out.push_str(text);
            out.push('\n');
            let mut marker: String = text
                .chars()
                .take(col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            marker.push('^');
            // The rest of the span on this line, in characters.
            let start = (d.span.start as usize).clamp(range.start, range.end);
            let end = (d.span.end as usize).clamp(start, range.start + text.len());
            let width = source
                .get(start..end)
                .map_or(0, |s| s.chars().count())
                .max(1);
            marker.extend(std::iter::repeat_n('~', width - 1));
            out.push_str(&marker);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_line_and_column() {
        let src = "kernel k() {\n    f32x64 x = load(a, at;\n}\n";
        let at = src.find(";").unwrap_or(0);
        let d = Diagnostics(vec![Diagnostic::new(Span::new(at, at + 1), "boom")]);
        assert_eq!(
            d.render(src, "add.sgc"),
            "add.sgc:2:26: boom\n    f32x64 x = load(a, at;\n                         ^\n"
        );
    }

    #[test]
    fn render_underlines_a_span_and_clips_at_end_of_line() {
        let src = "ab\tcdef\nxy";
        let d = Diagnostics(vec![
            Diagnostic::new(Span::new(3, 6), "m"),
            Diagnostic::new(Span::new(5, 100), "n"),
            Diagnostic::new(Span::new(100, 100), "eof"),
        ]);
        assert_eq!(
            d.render(src, "f"),
            "f:1:4: m\nab\tcdef\n  \t^~~\nf:1:6: n\nab\tcdef\n  \t  ^~\nf:2:3: eof\nxy\n  ^\n"
        );
    }
}

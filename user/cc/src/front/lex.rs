//! The lexer: source text to tokens with spans, and a diagnostic for every bad
//! character, unterminated comment and out-of-range or malformed number.
//!
//! It never stops at an error: it skips the offending text and goes on, so that one
//! run reports every lexical error. The parser only runs on error-free token streams.

use crate::diag::Diagnostic;
use crate::span::Span;

/// The reserved words (keywords and type names).
pub const KEYWORDS: &[&str] = &[
    "kernel", "fn", "return", "if", "else", "while", "for", "unroll", "break", "continue", "where",
    "local", "const", "true", "false", "tensor", "bool", "i32", "int", "u32", "f32", "float",
    "f32x64", "i32x64", "bf16x128", "mask", "int4",
];

/// The operators and punctuation, longest first (the lexer takes the longest match).
const PUNCTS: &[&str] = &[
    "<<=", ">>=", "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "+=", "-=", "*=", "/=", "%=",
    "&=", "|=", "^=", "++", "--", "->", "+", "-", "*", "/", "%", "&", "|", "^", "~", "!", "<", ">",
    "=", "?", ":", ",", ";", "(", ")", "[", "]", "{", "}",
];

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier that is not reserved.
    Ident(String),
    /// A keyword or type name.
    Kw(&'static str),
    /// An integer literal: its value (below 2^32) and whether it has the `u` suffix.
    Int { value: u64, unsigned: bool },
    /// A float literal, already rounded to f32.
    Float(f32),
    /// An operator or punctuation.
    P(&'static str),
    /// The end of the input.
    Eof,
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Where it is.
    pub span: Span,
}

/// The tokens of `src` (ending in [`Tok::Eof`]) and the lexical errors.
pub fn lex(src: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut errs = Vec::new();
    let mut i = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        if src[i..].starts_with("/*") {
            match src[i + 2..].find("*/") {
                Some(n) => i = i + 2 + n + 2,
                None => {
                    errs.push(Diagnostic::new(
                        Span::new(i, i + 2),
                        "unterminated comment: this `/*` has no matching `*/`",
                    ));
                    i = bytes.len();
                }
            }
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            let tok = match KEYWORDS.iter().find(|k| **k == word) {
                Some(k) => Tok::Kw(k),
                None => Tok::Ident(word.to_string()),
            };
            toks.push(Token {
                tok,
                span: Span::new(start, i),
            });
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, end) = number(src, start, &mut errs);
            i = end;
            if let Some(tok) = tok {
                toks.push(Token {
                    tok,
                    span: Span::new(start, end),
                });
            }
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            i += p.len();
            toks.push(Token {
                tok: Tok::P(p),
                span: Span::new(start, i),
            });
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
        i += ch.len_utf8().max(1);
        errs.push(Diagnostic::new(
            Span::new(start, i),
            format!("unexpected character `{}`", ch.escape_default()),
        ));
    }
    toks.push(Token {
        tok: Tok::Eof,
        span: Span::new(src.len(), src.len()),
    });
    (toks, errs)
}

/// Lexes the number at `start`; returns the token (none after an error) and its end.
fn number(src: &str, start: usize, errs: &mut Vec<Diagnostic>) -> (Option<Tok>, usize) {
    let bytes = src.as_bytes();
    let word_end = |mut i: usize| {
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        i
    };
    let prefix = src
        .get(start..(start + 2).min(src.len()))
        .unwrap_or("")
        .to_ascii_lowercase();
    if prefix == "0x" || prefix == "0b" {
        let (radix, name) = if prefix == "0x" {
            (16, "hexadecimal")
        } else {
            (2, "binary")
        };
        let end = word_end(start + 2);
        let text = &src[start..end];
        let mut digits = &src[start + 2..end];
        let unsigned = digits.ends_with('u');
        if unsigned {
            digits = &digits[..digits.len() - 1];
        }
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            errs.push(Diagnostic::new(
                Span::new(start, end),
                format!("malformed {name} literal `{text}`"),
            ));
            return (None, end);
        }
        return int_token(
            u64::from_str_radix(digits, radix).ok(),
            unsigned,
            text,
            start,
            end,
            errs,
        );
    }
    let mut i = start;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut is_float = false;
    if i < bytes.len() && bytes[i] == b'.' {
        is_float = true;
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        is_float = true;
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let digits = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits {
            let end = word_end(i);
            errs.push(Diagnostic::new(
                Span::new(start, end),
                format!(
                    "malformed float literal `{}`: the exponent has no digits",
                    &src[start..end]
                ),
            ));
            return (None, end);
        }
    }
    let end = word_end(i);
    let text = &src[start..end];
    let suffix = &src[i..end];
    if is_float {
        if !suffix.is_empty() {
            errs.push(Diagnostic::new(
                Span::new(start, end),
                format!("malformed float literal `{text}`: unexpected `{suffix}` after it"),
            ));
            return (None, end);
        }
        return match text.parse::<f32>() {
            Ok(v) if v.is_finite() => (Some(Tok::Float(v)), end),
            _ => {
                errs.push(Diagnostic::new(
                    Span::new(start, end),
                    format!("float literal `{text}` is too large for an f32"),
                ));
                (None, end)
            }
        };
    }
    let unsigned = match suffix {
        "" => false,
        "u" => true,
        _ => {
            errs.push(Diagnostic::new(
                Span::new(start, end),
                format!("malformed integer literal `{text}`: unexpected `{suffix}` after it"),
            ));
            return (None, end);
        }
    };
    int_token(
        src[start..i].parse::<u64>().ok(),
        unsigned,
        text,
        start,
        end,
        errs,
    )
}

fn int_token(
    value: Option<u64>,
    unsigned: bool,
    text: &str,
    start: usize,
    end: usize,
    errs: &mut Vec<Diagnostic>,
) -> (Option<Tok>, usize) {
    match value {
        Some(value) if value <= u64::from(u32::MAX) => (Some(Tok::Int { value, unsigned }), end),
        _ => {
            errs.push(Diagnostic::new(
                Span::new(start, end),
                format!("integer literal `{text}` does not fit in 32 bits"),
            ));
            (None, end)
        }
    }
}

impl Tok {
    /// The token as the messages quote it.
    pub fn describe(&self, src: &str, span: Span) -> String {
        match self {
            Tok::Eof => "the end of the file".to_string(),
            _ => format!(
                "`{}`",
                src.get(span.start as usize..span.end as usize)
                    .unwrap_or("?")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let (t, e) = lex(src);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lex_numbers_in_every_form() {
        assert_eq!(
            toks("42 0x2a 0b101010 42u 0xffffffffu 1.5 .5 2. 1e-3"),
            vec![
                Tok::Int {
                    value: 42,
                    unsigned: false
                },
                Tok::Int {
                    value: 42,
                    unsigned: false
                },
                Tok::Int {
                    value: 42,
                    unsigned: false
                },
                Tok::Int {
                    value: 42,
                    unsigned: true
                },
                Tok::Int {
                    value: 0xffff_ffff,
                    unsigned: true
                },
                Tok::Float(1.5),
                Tok::Float(0.5),
                Tok::Float(2.0),
                Tok::Float(1e-3),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn lex_takes_longest_operator_and_skips_comments() {
        assert_eq!(
            toks("a<<=b /* x */ >>// c\n->"),
            vec![
                Tok::Ident("a".into()),
                Tok::P("<<="),
                Tok::Ident("b".into()),
                Tok::P(">>"),
                Tok::P("->"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn lex_reports_every_error_and_goes_on() {
        let (t, e) = lex("a @ 4294967296 1e x");
        assert_eq!(e.len(), 3);
        assert_eq!(t.len(), 3);
    }
}

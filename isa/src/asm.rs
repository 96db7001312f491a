//! The assembler: SG1 assembly source to a [`KernelBinary`].
//!
//! # Syntax
//!
//! One statement per line; `#`, `;` and `//` start a comment.
//!
//! ```text
//! .kernel saxpy                 # the kernel's name (default: the file's stem)
//! .arg tensor x f32             # tensor arguments: slots t0, t1, ... in order;
//! .arg tensor y                 #   element kind f32|b32|i32|u32|bf16|f16, or none
//! .arg f32 a                    # scalar arguments (i32|u32|f32): ldarg 0, 1, ...
//! .scratch 4096                 # scratchpad bytes the kernel uses (default 0)
//! .equ ROW, 64                  # a named constant, usable from this line on
//! .entry start                  # the first instruction to run (default: the first)
//!
//! start:
//!     ldarg s1, a               # a scalar argument's name stands for its index
//!     ldt.b32 v0, x, s4         # a tensor argument's name stands for its slot
//! .rept 4 i                     # repeat 4 times, i = 0..3 (nestable)
//!     vmadl.f32 v2, v0, v1, i * 2 + 1
//! .endr
//!     @!p1 vadd.f32 v3, v3, v2  # a guard, on predicable instructions only
//!     li s2, -2.5e-3            # li also takes float literals (inf, nan too)
//!     bne s1, s0, start         # branch targets: a label, or pc+N / pc-N
//!     .word 0x1                 # a raw 64-bit word
//!     halt
//! ```
//!
//! Expressions: integers (decimal, `0x` hex, `0b` binary, `_` separators), `.equ`
//! names, `.rept` variables, unary `-` `+` `~`, and `* / %`, `+ -`, `<< >>`, `&`, `^`,
//! `|` (C precedence), with parentheses. They are evaluated exactly (128-bit, every
//! overflow reported) and then checked against the operand's range.
//!
//! Mnemonics, operand lists and operand kinds all come from the instruction table
//! ([`crate::for_each_op!`]); so does building the instruction from its operands.
//!
//! Left out: macros, include files, sections, data directives other than `.word`,
//! and expressions over labels (labels are only branch targets and `.entry`).

use std::collections::HashMap;
use std::fmt;

use crate::binary::{
    ArgDecl, ArgKind, ElemKind, KernelBinary, MAX_SCALAR_ARGS, MAX_TENSOR_ARGS, is_register_like,
    is_valid_name,
};
use crate::inst::{Inst, Op, Opcode};
#[allow(unused_imports)] // the table names all of them
use crate::operand::{Bits, CReg, Dim, Guard, Imm, Lane, Off, OperandKind, PReg, SReg, TReg, VReg};

/// The most lines `.rept` blocks may expand to, in all.
pub const MAX_EXPANDED_LINES: usize = 1 << 16;
/// How deeply `.rept` blocks may nest.
pub const MAX_REPT_DEPTH: usize = 16;
/// How deeply parentheses and unary operators may nest in an expression.
const MAX_EXPR_DEPTH: usize = 64;
/// The assembler stops after this many errors.
const MAX_ERRORS: usize = 100;

/// An assembly error: where, the line with a caret under the offending text, and
/// what was expected against what was found.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub struct AsmError {
    /// The file name given to [`assemble`].
    pub file: String,
    /// The line, from 1; 0 for an error about the whole file.
    pub line: usize,
    /// The column, in characters from 1.
    pub column: usize,
    /// The offending line's text.
    pub source_line: String,
    /// How many characters the offending text spans (at least 1 caret is drawn).
    pub width: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for AsmError {
    /// `file:line:column: error: message`, then the line and a caret under the
    /// offending text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: error: {}", self.file, self.message);
        }
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.column, self.message
        )?;
        let number = self.line.to_string();
        writeln!(f, "{number} | {}", self.source_line)?;
        let lead: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(
            f,
            "{} | {lead}{}",
            " ".repeat(number.len()),
            "^".repeat(self.width.max(1))
        )
    }
}

/// Assembles `source`; `file_name` names it in errors. On failure, the first error.
pub fn assemble(source: &str, file_name: &str) -> Result<KernelBinary, AsmError> {
    assemble_all_errors(source, file_name).map_err(|mut errors| errors.swap_remove(0))
}

/// Assembles `source`, reporting every error found (in line order, at most one per
/// position and at most 100), never none on failure.
pub fn assemble_all_errors(source: &str, file_name: &str) -> Result<KernelBinary, Vec<AsmError>> {
    let src = Source::new(source);
    let mut asm = Asm::new(&src, file_name);
    asm.run();
    let result = asm.finish();
    result.map_err(|mut errors| {
        if errors.is_empty() {
            // Not expected: every failure reports. Never an empty list, though.
            errors.push(AsmError {
                file: file_name.to_owned(),
                line: 0,
                column: 0,
                source_line: String::new(),
                width: 0,
                message: "assembly failed".to_owned(),
            });
        }
        errors.sort_by_key(|e| (e.line, e.column));
        errors
    })
}

// ---- operand values, and building instructions from them (generated) ----

/// Something an operand's value can be converted from and to.
pub(crate) trait FromValue: Sized {
    fn from_value(v: Value) -> Option<Self>;
    fn into_value(self) -> Value;
}

macro_rules! value_kinds {
    ($($kind:ident),*) => {
        /// An operand's value, of any kind.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub(crate) enum Value {
            $($kind($kind)),*
        }

        $(impl FromValue for $kind {
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::$kind(x) => Some(x),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$kind(self)
            }
        })*

        impl fmt::Display for Value {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Value::$kind(x) => x.fmt(f)),*
                }
            }
        }
    };
}

value_kinds!(SReg, VReg, PReg, TReg, CReg, Imm, Bits, Lane, Dim, Off);

macro_rules! define_build {
    ($(
        $(#[doc = $doc:literal])*
        $code:literal $name:ident $mnemonic:literal $pred:literal { $($field:ident : $kind:ident),* };
    )*) => {
        /// The operation `opcode` with operands `values`, in table order; `None` if
        /// one is missing, extra or of the wrong kind.
        pub(crate) fn build(opcode: Opcode, values: &[Value]) -> Option<Op> {
            let mut it = values.iter().copied();
            let op = match opcode {
                $(Opcode::$name => Op::$name {
                    $($field: <$kind as FromValue>::from_value(it.next()?)?),*
                },)*
            };
            it.next().is_none().then_some(op)
        }

        /// The operands of `op`, in table order.
        pub(crate) fn values(op: &Op) -> Vec<Value> {
            match *op {
                $(Op::$name { $($field),* } => vec![$(FromValue::into_value($field)),*],)*
            }
        }
    };
}

crate::for_each_op!(define_build);

/// An operand kind as error messages name it: the documentation's words without
/// the markdown.
fn describe(kind: OperandKind) -> String {
    match kind {
        OperandKind::CReg => "coordinate register (s0-s28, standing for sN..sN+3)".to_owned(),
        OperandKind::Off => "branch target (a label, or pc+N / pc-N)".to_owned(),
        OperandKind::Bits => "32-bit immediate (an integer, or a float literal)".to_owned(),
        _ => kind.describe().replace('`', "").replace('–', "-"),
    }
}

// ---- lexing ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum P {
    Comma,
    Colon,
    LParen,
    RParen,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Shl,
    Shr,
    Amp,
    Pipe,
    Caret,
    Tilde,
    At,
    Bang,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum T {
    Ident,
    Directive,
    Int(u128),
    Float,
    P(P),
}

/// A token: its type and its byte range in the line.
#[derive(Clone, Copy, Debug)]
struct Tok {
    t: T,
    start: usize,
    end: usize,
}

struct SrcLine<'s> {
    text: &'s str,
    toks: Vec<Tok>,
    /// A lexical error, reported once; the line is then skipped.
    lex_error: Option<(usize, usize, String)>,
}

struct Source<'s> {
    lines: Vec<SrcLine<'s>>,
}

impl<'s> Source<'s> {
    fn new(source: &'s str) -> Source<'s> {
        Source {
            lines: source
                .lines()
                .map(|text| {
                    let (toks, lex_error) = lex(text);
                    SrcLine {
                        text,
                        toks,
                        lex_error,
                    }
                })
                .collect(),
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn scan_while(text: &str, mut i: usize, f: impl Fn(char) -> bool) -> usize {
    while let Some(c) = text[i..].chars().next() {
        if !f(c) {
            break;
        }
        i += c.len_utf8();
    }
    i
}

type LexError = (usize, usize, String);

fn lex(text: &str) -> (Vec<Tok>, Option<LexError>) {
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let start = i;
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' || c == ';' || text[i..].starts_with("//") {
            break;
        }
        let t = if c.is_ascii_alphabetic() || c == '_' {
            i = scan_while(text, i + 1, is_ident_char);
            T::Ident
        } else if c == '.' {
            match text[i + 1..].chars().next() {
                Some(n) if n.is_ascii_alphabetic() || n == '_' => {
                    i = scan_while(text, i + 1, is_ident_char);
                    T::Directive
                }
                _ => return (toks, Some((start, start + 1, "unexpected `.`".into()))),
            }
        } else if c.is_ascii_digit() {
            let radix_prefix =
                c == '0' && matches!(text[i + 1..].chars().next(), Some('x' | 'X' | 'b' | 'B'));
            i += 1;
            while let Some(n) = text[i..].chars().next() {
                if !is_ident_char(n) {
                    break;
                }
                i += 1;
                if !radix_prefix
                    && (n == 'e' || n == 'E')
                    && matches!(text[i..].chars().next(), Some('+' | '-'))
                {
                    i += 1;
                }
            }
            match number(&text[start..i]) {
                Ok(t) => t,
                Err(msg) => return (toks, Some((start, i, msg))),
            }
        } else {
            let two = |s: &str| text[i..].starts_with(s);
            let (p, len) = if two("<<") {
                (P::Shl, 2)
            } else if two(">>") {
                (P::Shr, 2)
            } else {
                let p = match c {
                    ',' => P::Comma,
                    ':' => P::Colon,
                    '(' => P::LParen,
                    ')' => P::RParen,
                    '+' => P::Plus,
                    '-' => P::Minus,
                    '*' => P::Star,
                    '/' => P::Slash,
                    '%' => P::Percent,
                    '&' => P::Amp,
                    '|' => P::Pipe,
                    '^' => P::Caret,
                    '~' => P::Tilde,
                    '@' => P::At,
                    '!' => P::Bang,
                    _ => {
                        let end = start + c.len_utf8();
                        return (
                            toks,
                            Some((start, end, format!("unexpected character `{c}`"))),
                        );
                    }
                };
                (p, 1)
            };
            i += len;
            T::P(p)
        };
        toks.push(Tok { t, start, end: i });
    }
    (toks, None)
}

/// Classifies a number's text.
fn number(text: &str) -> Result<T, String> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    let lower = digits.to_ascii_lowercase();
    let int = |rest: &str, radix: u32, what: &str| {
        if rest.is_empty() || !rest.chars().all(|c| c.is_digit(radix)) {
            return Err(format!("invalid {what} integer `{text}`"));
        }
        u128::from_str_radix(rest, radix)
            .map(T::Int)
            .map_err(|_| format!("integer `{text}` is too large"))
    };
    if let Some(rest) = lower.strip_prefix("0x") {
        int(rest, 16, "hexadecimal")
    } else if let Some(rest) = lower.strip_prefix("0b") {
        int(rest, 2, "binary")
    } else if lower.contains(['.', 'e']) {
        match digits.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(T::Float),
            Ok(_) => Err(format!(
                "float literal `{text}` is out of the f32 range (write `inf` for infinity)"
            )),
            Err(_) => Err(format!("invalid float literal `{text}`")),
        }
    } else {
        int(&lower, 10, "decimal")
    }
}

// ---- the assembler proper ----

/// Where something is: a line (index into the source) and a byte range in it.
#[derive(Clone, Copy, Debug)]
struct Loc {
    line: usize,
    start: usize,
    end: usize,
}

type E = (Loc, String);

#[derive(Clone, Copy, Debug)]
enum SymKind {
    Equ(i128),
    Tensor(u8),
    Scalar(u32),
}

#[derive(Clone, Copy, Debug)]
struct Sym {
    kind: SymKind,
    /// Line number where defined.
    line: usize,
}

struct Var {
    name: Option<String>,
    value: i128,
    rept_line: usize,
}

/// A label reference to resolve once every label is known.
struct Fixup {
    operand: usize,
    label: String,
    loc: Loc,
}

enum Item {
    Word(u64),
    Inst {
        opcode: Opcode,
        guard: Guard,
        values: Vec<Value>,
        fixups: Vec<Fixup>,
        loc: Loc,
    },
}

struct Asm<'a, 's> {
    src: &'a Source<'s>,
    file: &'a str,
    mnemonics: HashMap<&'static str, Opcode>,
    /// For each `.rept` line, the index of its `.endr` line.
    rept_end: HashMap<usize, usize>,
    errors: Vec<AsmError>,
    fatal: bool,
    kernel: Option<(String, usize)>,
    scratch: Option<(u32, usize)>,
    entry: Option<(String, Loc)>,
    args: Vec<ArgDecl>,
    symbols: HashMap<String, Sym>,
    vars: Vec<Var>,
    labels: HashMap<String, (u32, usize)>,
    items: Vec<Item>,
    expanded: usize,
}

fn text_of(text: &str, toks: &[Tok]) -> String {
    match (toks.first(), toks.last()) {
        (Some(a), Some(b)) => text[a.start..b.end].to_owned(),
        _ => String::new(),
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses `s12`-style register names: the prefix, then a decimal number without
/// leading zeros.
fn reg_number(text: &str, prefix: char) -> Option<u32> {
    let digits = text.strip_prefix(prefix)?;
    if digits.is_empty()
        || digits.len() > 3
        || !digits.chars().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

impl<'a, 's> Asm<'a, 's> {
    fn new(src: &'a Source<'s>, file: &'a str) -> Self {
        Asm {
            src,
            file,
            mnemonics: Opcode::ALL.iter().map(|&o| (o.mnemonic(), o)).collect(),
            rept_end: HashMap::new(),
            errors: Vec::new(),
            fatal: false,
            kernel: None,
            scratch: None,
            entry: None,
            args: Vec::new(),
            symbols: HashMap::new(),
            vars: Vec::new(),
            labels: HashMap::new(),
            items: Vec::new(),
            expanded: 0,
        }
    }

    fn line_text(&self, line: usize) -> &'s str {
        self.src.lines[line].text
    }

    fn loc(&self, line: usize, toks: &[Tok]) -> Loc {
        match (toks.first(), toks.last()) {
            (Some(a), Some(b)) => Loc {
                line,
                start: a.start,
                end: b.end,
            },
            _ => self.eol(line),
        }
    }

    /// The end of a line's code (before any comment).
    fn eol(&self, line: usize) -> Loc {
        let l = &self.src.lines[line];
        let end = l.toks.last().map_or(l.text.trim_end().len(), |t| t.end);
        Loc {
            line,
            start: end,
            end,
        }
    }

    fn error(&mut self, loc: Loc, message: impl Into<String>) {
        if self.reported_at(loc) {
            return;
        }
        let mut message = message.into();
        if !self.vars.is_empty() {
            let frames: Vec<String> = self
                .vars
                .iter()
                .map(|v| match &v.name {
                    Some(n) => format!("`{n}` = {} in the .rept at line {}", v.value, v.rept_line),
                    None => format!("iteration {} of the .rept at line {}", v.value, v.rept_line),
                })
                .collect();
            message = format!("{message} (with {})", frames.join(", "));
        }
        self.push_error(loc, message);
    }

    /// The line (from 1, 0 for the whole file) and column (from 1) of `loc`.
    fn position(&self, loc: Loc) -> (usize, usize) {
        if loc.line == usize::MAX {
            return (0, 0);
        }
        let text = self.line_text(loc.line);
        let start = loc.start.min(text.len());
        (
            loc.line + 1,
            text.get(..start).map_or(0, |s| s.chars().count()) + 1,
        )
    }

    /// Whether an error at `loc` has been reported already.
    fn reported_at(&self, loc: Loc) -> bool {
        let (line, column) = self.position(loc);
        line != 0
            && self
                .errors
                .iter()
                .any(|e| e.line == line && e.column == column)
    }

    fn push_error(&mut self, loc: Loc, message: String) {
        // One error per place: a mistake inside a .rept would otherwise be reported
        // once per iteration.
        if self.reported_at(loc) {
            return;
        }
        let (line, column) = self.position(loc);
        let (width, source_line) = if line == 0 {
            (0, String::new())
        } else {
            let text = self.line_text(loc.line);
            let start = loc.start.min(text.len());
            let end = loc.end.clamp(start, text.len());
            (
                text.get(start..end).map_or(0, |s| s.chars().count()),
                text.to_owned(),
            )
        };
        self.errors.push(AsmError {
            file: self.file.to_owned(),
            line,
            column,
            source_line,
            width,
            message,
        });
        if self.errors.len() >= MAX_ERRORS {
            self.fatal = true;
        }
    }

    fn file_error(&mut self, message: impl Into<String>) {
        self.push_error(
            Loc {
                line: usize::MAX,
                start: 0,
                end: 0,
            },
            message.into(),
        );
    }

    /// The statement's tokens after its labels.
    fn after_labels(toks: &[Tok]) -> &[Tok] {
        let mut rest = toks;
        while rest.len() >= 2 && rest[0].t == T::Ident && rest[1].t == T::P(P::Colon) {
            rest = &rest[2..];
        }
        rest
    }

    fn directive_of(&self, line: usize) -> Option<&'s str> {
        let l = &self.src.lines[line];
        let rest = Self::after_labels(&l.toks);
        match rest.first() {
            Some(t) if t.t == T::Directive => Some(&l.text[t.start..t.end]),
            _ => None,
        }
    }

    /// Matches `.rept` with `.endr` lines, before anything is expanded.
    fn match_repts(&mut self) {
        let mut stack: Vec<usize> = Vec::new();
        for line in 0..self.src.lines.len() {
            match self.directive_of(line) {
                Some(".rept") => {
                    stack.push(line);
                    if stack.len() > MAX_REPT_DEPTH {
                        let loc = self.loc(line, &self.src.lines[line].toks);
                        self.error(
                            loc,
                            format!("`.rept` nested more than {MAX_REPT_DEPTH} deep"),
                        );
                        self.fatal = true;
                        return;
                    }
                }
                Some(".endr") => {
                    let src = self.src;
                    let toks = &src.lines[line].toks;
                    let rest = Self::after_labels(toks);
                    if rest.len() != toks.len() {
                        let loc = self.loc(line, &toks[..toks.len() - rest.len()]);
                        self.error(loc, "a label cannot stand on a `.endr` line");
                    }
                    if rest.len() > 1 {
                        let loc = self.loc(line, &rest[1..]);
                        self.error(loc, "`.endr` takes no operands");
                    }
                    match stack.pop() {
                        Some(open) => {
                            self.rept_end.insert(open, line);
                        }
                        None => {
                            let loc = self.loc(line, &rest[..1]);
                            self.error(loc, "`.endr` without a `.rept`");
                        }
                    }
                }
                _ => {}
            }
        }
        for open in stack {
            let toks = Self::after_labels(&self.src.lines[open].toks);
            let loc = self.loc(open, &toks[..1]);
            self.error(loc, "`.rept` without a matching `.endr`");
        }
    }

    fn run(&mut self) {
        for (i, l) in self.src.lines.iter().enumerate() {
            if let Some((start, end, msg)) = &l.lex_error {
                let loc = Loc {
                    line: i,
                    start: *start,
                    end: *end,
                };
                // Not through `error`: lexing knows no .rept iteration.
                self.push_error(loc, msg.clone());
            }
        }
        self.match_repts();
        if !self.fatal {
            self.block(0, self.src.lines.len(), 0);
        }
    }

    /// Charges `n` expanded lines; false (after reporting) when over the limit.
    fn charge(&mut self, n: usize, depth: usize, line: usize) -> bool {
        if depth == 0 {
            return true;
        }
        self.expanded = self.expanded.saturating_add(n);
        if self.expanded > MAX_EXPANDED_LINES {
            let loc = self.loc(line, Self::after_labels(&self.src.lines[line].toks));
            self.error(
                loc,
                format!(".rept blocks expand to more than {MAX_EXPANDED_LINES} lines"),
            );
            self.fatal = true;
            return false;
        }
        true
    }

    fn block(&mut self, start: usize, end: usize, depth: usize) {
        let mut line = start;
        while line < end && !self.fatal {
            if self.directive_of(line) == Some(".rept") {
                let Some(&close) = self.rept_end.get(&line) else {
                    return; // reported: unterminated
                };
                if !self.charge(2, depth, line) {
                    return;
                }
                self.rept(line, close, depth);
                line = close + 1;
            } else {
                if !self.charge(1, depth, line) {
                    return;
                }
                if self.directive_of(line) != Some(".endr")
                    && self.src.lines[line].lex_error.is_none()
                {
                    self.statement(line);
                }
                line += 1;
            }
        }
    }

    fn rept(&mut self, line: usize, close: usize, depth: usize) {
        let src = self.src;
        let l = &src.lines[line];
        if l.lex_error.is_some() {
            return;
        }
        let rest = self.labels_of(line);
        let dir = rest[0];
        let mut operands = &rest[1..];
        let mut var: Option<(String, Loc)> = None;
        if operands.len() >= 2 {
            let last = operands[operands.len() - 1];
            let before = operands[operands.len() - 2];
            let separates = matches!(before.t, T::Int(_) | T::Ident | T::P(P::RParen | P::Comma));
            if last.t == T::Ident && separates {
                var = Some((
                    l.text[last.start..last.end].to_owned(),
                    self.loc(line, &[last]),
                ));
                operands =
                    &operands[..operands.len() - if before.t == T::P(P::Comma) { 2 } else { 1 }];
            }
        }
        if operands.is_empty() {
            let loc = self.loc(line, &[dir]);
            self.error(loc, "`.rept` needs a count: `.rept COUNT [VARIABLE]`");
            return;
        }
        let count = match self.eval(line, operands, "a repeat count") {
            Ok(v) => v,
            Err((loc, msg)) => return self.error(loc, msg),
        };
        let loc = self.loc(line, operands);
        if count < 0 {
            return self.error(
                loc,
                format!("the `.rept` count is {count}; it cannot be negative"),
            );
        }
        let body = (close - line - 1).max(1);
        let cost = u128::try_from(count)
            .unwrap_or(u128::MAX)
            .saturating_mul(body as u128);
        let room = MAX_EXPANDED_LINES.saturating_sub(self.expanded);
        if cost > room as u128 {
            let so_far = if self.expanded == 0 {
                String::new()
            } else {
                format!(" in all ({} so far)", self.expanded)
            };
            self.error(
                loc,
                format!(
                    "`.rept {count}` of {} would expand to {cost} lines, over the limit of \
                     {MAX_EXPANDED_LINES} expanded lines{so_far}",
                    plural(close - line - 1, "line")
                ),
            );
            self.fatal = true;
            return;
        }
        if let Some((name, vloc)) = &var
            && let Err(msg) = self.check_new_symbol(name, "a .rept variable")
        {
            return self.error(*vloc, msg);
        }
        for k in 0..count {
            self.vars.push(Var {
                name: var.as_ref().map(|v| v.0.clone()),
                value: k,
                rept_line: line + 1,
            });
            if close == line + 1 {
                self.charge(1, depth + 1, line);
            }
            self.block(line + 1, close, depth + 1);
            self.vars.pop();
            if self.fatal {
                return;
            }
        }
    }

    /// Defines the line's labels; returns the rest of its tokens.
    fn labels_of(&mut self, line: usize) -> &'a [Tok] {
        let src = self.src;
        let l = &src.lines[line];
        let mut rest: &'a [Tok] = &l.toks;
        while rest.len() >= 2 && rest[0].t == T::Ident && rest[1].t == T::P(P::Colon) {
            let name = &l.text[rest[0].start..rest[0].end];
            let loc = self.loc(line, &rest[..1]);
            if name == "pc" {
                self.error(loc, "`pc` cannot be a label: `pc+N` is a branch target");
            } else if let Some(&(_, first)) = self.labels.get(name) {
                self.error(
                    loc,
                    format!("label `{name}` is already defined at line {first}"),
                );
            } else {
                let pc = u32::try_from(self.items.len()).unwrap_or(u32::MAX);
                self.labels.insert(name.to_owned(), (pc, line + 1));
            }
            rest = &rest[2..];
        }
        rest
    }

    fn statement(&mut self, line: usize) {
        let rest = self.labels_of(line);
        let Some(first) = rest.first() else {
            return;
        };
        let result = match first.t {
            T::Directive => self.directive(line, rest),
            T::Ident | T::P(P::At) => self.instruction(line, rest),
            _ => Err((
                self.loc(line, &rest[..1]),
                format!(
                    "expected an instruction, a directive or a label, found `{}`",
                    text_of(self.line_text(line), &rest[..1])
                ),
            )),
        };
        if let Err((loc, msg)) = result {
            self.error(loc, msg);
        }
    }

    // ---- names ----

    fn check_new_symbol(&self, name: &str, what: &str) -> Result<(), String> {
        // `inf` and `nan` are float literals where an operand takes one: a constant
        // of that name would be shadowed there. Arguments are never numbers.
        let number = what != "an argument";
        if !is_valid_name(name) || number && (name == "inf" || name == "nan") {
            return Err(format!(
                "`{name}` cannot name {what}: names are identifiers (letters, digits, `_`), \
                 not register names or `pc`{}",
                if number { ", `inf` or `nan`" } else { "" }
            ));
        }
        if let Some(sym) = self.symbols.get(name) {
            let was = match sym.kind {
                SymKind::Equ(_) => "an .equ",
                SymKind::Tensor(_) => "a tensor argument",
                SymKind::Scalar(_) => "a scalar argument",
            };
            return Err(format!(
                "`{name}` is already defined as {was} at line {}",
                sym.line
            ));
        }
        if let Some(v) = self.vars.iter().find(|v| v.name.as_deref() == Some(name)) {
            return Err(format!(
                "`{name}` is already the variable of the .rept at line {}",
                v.rept_line
            ));
        }
        Ok(())
    }

    // ---- directives ----

    fn directive(&mut self, line: usize, toks: &'a [Tok]) -> Result<(), E> {
        let text = self.line_text(line);
        let dir = &text[toks[0].start..toks[0].end];
        let ops = &toks[1..];
        let dloc = self.loc(line, &toks[..1]);
        let one_ident = |asm: &Self, what: &str| -> Result<(&'s str, Loc), E> {
            match ops {
                [t] if t.t == T::Ident => Ok((&text[t.start..t.end], asm.loc(line, ops))),
                [] => Err((asm.eol(line), format!("`{dir}` needs {what}"))),
                [t, ..] if t.t == T::Ident => Err((
                    asm.loc(line, &ops[1..]),
                    format!("unexpected `{}` after {what}", text_of(text, &ops[1..])),
                )),
                _ => Err((
                    asm.loc(line, ops),
                    format!("expected {what}, found `{}`", text_of(text, ops)),
                )),
            }
        };
        match dir {
            ".kernel" => {
                let (name, loc) = one_ident(self, "the kernel's name")?;
                if let Some((_, first)) = &self.kernel {
                    return Err((
                        dloc,
                        format!("`.kernel` given twice (first at line {first})"),
                    ));
                }
                if !is_valid_name(name) {
                    return Err((
                        loc,
                        format!(
                            "`{name}` cannot name a kernel: names are identifiers (letters, \
                             digits, `_`), not register names or `pc`"
                        ),
                    ));
                }
                self.kernel = Some((name.to_owned(), line + 1));
            }
            ".arg" => self.arg(line, ops, dloc)?,
            ".scratch" => {
                if let Some((_, first)) = &self.scratch {
                    return Err((
                        dloc,
                        format!("`.scratch` given twice (first at line {first})"),
                    ));
                }
                if ops.is_empty() {
                    return Err((self.eol(line), "`.scratch` needs a size in bytes".into()));
                }
                let what = format!("a scratchpad size (0-{})", crate::SCRATCH_BYTES);
                let v = self.eval_range(line, ops, &what, 0, crate::SCRATCH_BYTES as i128)?;
                self.scratch = Some((v as u32, line + 1));
            }
            ".equ" => {
                let Some(comma) = ops.iter().position(|t| t.t == T::P(P::Comma)) else {
                    return Err((
                        self.loc(line, ops),
                        "`.equ` takes a name and a value: `.equ NAME, EXPR`".into(),
                    ));
                };
                let (name_toks, value) = (&ops[..comma], &ops[comma + 1..]);
                let [nt] = name_toks else {
                    return Err((
                        self.loc(line, name_toks),
                        format!(
                            "expected a name before the comma, found `{}`",
                            text_of(text, name_toks)
                        ),
                    ));
                };
                let name = &text[nt.start..nt.end];
                let nloc = self.loc(line, name_toks);
                if nt.t != T::Ident {
                    return Err((nloc, format!("expected a name, found `{name}`")));
                }
                self.check_new_symbol(name, "an .equ")
                    .map_err(|m| (nloc, m))?;
                if value.is_empty() {
                    return Err((
                        self.eol(line),
                        "`.equ` needs a value after the comma".into(),
                    ));
                }
                let v = self.eval(line, value, "a value")?;
                self.symbols.insert(
                    name.to_owned(),
                    Sym {
                        kind: SymKind::Equ(v),
                        line: line + 1,
                    },
                );
            }
            ".entry" => {
                let (name, loc) = one_ident(self, "a label")?;
                if let Some((_, first)) = &self.entry {
                    return Err((
                        dloc,
                        format!("`.entry` given twice (first at line {})", first.line + 1),
                    ));
                }
                self.entry = Some((name.to_owned(), loc));
            }
            ".word" => {
                if ops.is_empty() {
                    return Err((self.eol(line), "`.word` needs a value".into()));
                }
                for part in ops.split(|t| t.t == T::P(P::Comma)) {
                    let v = self.eval_range(
                        line,
                        part,
                        "a 64-bit word",
                        i128::from(i64::MIN),
                        i128::from(u64::MAX),
                    )?;
                    self.items.push(Item::Word(v as u64));
                }
            }
            ".endr" | ".rept" => {
                // Matched before expansion; reaching here means a broken block
                // (reported already).
            }
            _ => {
                return Err((
                    dloc,
                    format!(
                        "unknown directive `{dir}`; the directives are .kernel, .arg, \
                         .scratch, .equ, .entry, .rept, .endr and .word"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn arg(&mut self, line: usize, ops: &'a [Tok], dloc: Loc) -> Result<(), E> {
        const USAGE: &str = "`.arg tensor NAME [f32|i32|u32|bf16|f16]` or `.arg i32|u32|f32 NAME`";
        let text = self.line_text(line);
        let word = |i: usize| -> Option<&'s str> {
            ops.get(i)
                .filter(|t| t.t == T::Ident)
                .map(|t| &text[t.start..t.end])
        };
        let Some(kind_word) = word(0) else {
            let found = if ops.is_empty() {
                "nothing".to_owned()
            } else {
                format!("`{}`", text_of(text, &ops[..1]))
            };
            return Err((
                self.loc(line, ops.get(..1).unwrap_or(&[])),
                format!(
                    "expected an argument kind (tensor, i32, u32, f32), found {found}; {USAGE}"
                ),
            ));
        };
        let kloc = self.loc(line, &ops[..1]);
        let scalar = match kind_word {
            "tensor" => None,
            "i32" => Some(ArgKind::I32),
            "u32" => Some(ArgKind::U32),
            "f32" => Some(ArgKind::F32),
            _ => {
                return Err((
                    kloc,
                    format!(
                        "expected an argument kind (tensor, i32, u32, f32), found `{kind_word}`"
                    ),
                ));
            }
        };
        let Some(name) = word(1) else {
            let found = ops.get(1..).filter(|s| !s.is_empty());
            return Err(match found {
                Some(f) => (
                    self.loc(line, &f[..1]),
                    format!(
                        "expected the argument's name, found `{}`",
                        text_of(text, &f[..1])
                    ),
                ),
                None => (self.eol(line), format!("`.arg` needs a name; {USAGE}")),
            });
        };
        let nloc = self.loc(line, &ops[1..2]);
        let mut used = 2;
        let kind = match scalar {
            Some(k) => k,
            None => {
                match word(2) {
                    None if ops.len() == 2 => ArgKind::Tensor(ElemKind::Any),
                    Some(e) => {
                        used = 3;
                        let elem = match e {
                            "b32" => Some(ElemKind::F32),
                            _ => ElemKind::ALL
                                .iter()
                                .copied()
                                .find(|k| *k != ElemKind::Any && k.name() == e),
                        };
                        ArgKind::Tensor(elem.ok_or((
                        self.loc(line, &ops[2..3]),
                        format!("expected an element kind (f32, b32, i32, u32, bf16, f16), found `{e}`"),
                    ))?)
                    }
                    None => {
                        return Err((
                            self.loc(line, &ops[2..3]),
                            format!(
                                "expected an element kind (f32, b32, i32, u32, bf16, f16), found `{}`",
                                text_of(text, &ops[2..3])
                            ),
                        ));
                    }
                }
            }
        };
        if ops.len() > used {
            return Err((
                self.loc(line, &ops[used..]),
                format!(
                    "unexpected `{}` after the argument; {USAGE}",
                    text_of(text, &ops[used..])
                ),
            ));
        }
        self.check_new_symbol(name, "an argument")
            .map_err(|m| (nloc, m))?;
        let tensors = self.args.iter().filter(|a| a.kind.is_tensor()).count();
        let scalars = self.args.len() - tensors;
        let sym = if kind.is_tensor() {
            if tensors >= MAX_TENSOR_ARGS {
                return Err((
                    dloc,
                    format!("too many tensor arguments: at most {MAX_TENSOR_ARGS} (t0-t15)"),
                ));
            }
            SymKind::Tensor(tensors as u8)
        } else {
            if scalars >= MAX_SCALAR_ARGS {
                return Err((
                    dloc,
                    format!("too many scalar arguments: at most {MAX_SCALAR_ARGS}"),
                ));
            }
            SymKind::Scalar(scalars as u32)
        };
        self.symbols.insert(
            name.to_owned(),
            Sym {
                kind: sym,
                line: line + 1,
            },
        );
        self.args.push(ArgDecl {
            name: name.to_owned(),
            kind,
        });
        Ok(())
    }

    // ---- instructions ----

    fn instruction(&mut self, line: usize, toks: &'a [Tok]) -> Result<(), E> {
        let text = self.line_text(line);
        let mut rest = toks;
        let mut guard: Option<(Guard, Loc)> = None;
        if rest[0].t == T::P(P::At) {
            let negate = rest.get(1).is_some_and(|t| t.t == T::P(P::Bang));
            let reg_at = if negate { 2 } else { 1 };
            let reg = rest.get(reg_at).filter(|t| t.t == T::Ident);
            let p = reg
                .and_then(|t| reg_number(&text[t.start..t.end], 'p'))
                .filter(|&n| n <= u32::from(PReg::MAX));
            let gloc = self.loc(line, &rest[..(reg_at + 1).min(rest.len())]);
            let Some(p) = p else {
                let found = rest.get(reg_at).map_or("nothing".to_owned(), |t| {
                    format!("`{}`", &text[t.start..t.end])
                });
                let at = if negate { "@!" } else { "@" };
                return Err((
                    gloc,
                    format!("expected a predicate register (p0-p7) after `{at}`, found {found}"),
                ));
            };
            guard = Some((
                Guard {
                    p: PReg(p as u8),
                    negate,
                },
                gloc,
            ));
            rest = &rest[reg_at + 1..];
        }
        let Some(mt) = rest.first().filter(|t| t.t == T::Ident) else {
            let loc = self.loc(line, rest.get(..1).unwrap_or(&[]));
            let found = rest.first().map_or("the end of the line".to_owned(), |t| {
                format!("`{}`", &text[t.start..t.end])
            });
            return Err((
                loc,
                format!("expected an instruction after the guard, found {found}"),
            ));
        };
        let mnemonic = &text[mt.start..mt.end];
        let mloc = self.loc(line, &rest[..1]);
        let Some(&opcode) = self.mnemonics.get(mnemonic) else {
            // Suggestions cost a comparison with every mnemonic: not again for each
            // iteration of a .rept, whose repeats are not reported anyway.
            if self.reported_at(mloc) {
                return Err((mloc, String::new()));
            }
            return Err((mloc, self.unknown_mnemonic(mnemonic)));
        };
        if let Some((_, gloc)) = guard
            && !opcode.predicable()
        {
            return Err((
                gloc,
                format!("`{mnemonic}` takes no guard: only predicable (vector) instructions do"),
            ));
        }
        let infos = opcode.operands();
        let operand_toks = &rest[1..];
        let parts: Vec<&'a [Tok]> = if operand_toks.is_empty() {
            Vec::new()
        } else {
            operand_toks.split(|t| t.t == T::P(P::Comma)).collect()
        };
        if parts.len() != infos.len() {
            let expected = if infos.is_empty() {
                "no operands".to_owned()
            } else {
                let names: Vec<&str> = infos.iter().map(|o| o.name).collect();
                format!("{} ({})", plural(infos.len(), "operand"), names.join(", "))
            };
            let loc = if parts.len() > infos.len() {
                // Point at the first operand too many.
                let skip: usize = parts[..infos.len()].iter().map(|p| p.len() + 1).sum();
                self.loc(line, &operand_toks[skip.min(operand_toks.len())..])
            } else {
                self.eol(line)
            };
            return Err((
                loc,
                format!("`{mnemonic}` takes {expected}, found {}", parts.len()),
            ));
        }
        let mut values = Vec::with_capacity(infos.len());
        let mut fixups = Vec::new();
        let mut operand_start = mt.end;
        for (i, (info, part)) in infos.iter().zip(&parts).enumerate() {
            let loc = if part.is_empty() {
                Loc {
                    line,
                    start: operand_start,
                    end: operand_start + 1,
                }
            } else {
                self.loc(line, part)
            };
            operand_start = part.last().map_or(operand_start, |t| t.end);
            if part.is_empty() {
                return Err((
                    loc,
                    format!(
                        "expected {} for `{}`, found nothing",
                        article(&describe(info.kind)),
                        info.name
                    ),
                ));
            }
            match self.operand(line, opcode, info.kind, part, loc)? {
                Parsed::Value(v) => values.push(v),
                Parsed::Label(label) => {
                    values.push(Value::Off(Off(0)));
                    fixups.push(Fixup {
                        operand: i,
                        label,
                        loc,
                    });
                }
            }
        }
        self.items.push(Item::Inst {
            opcode,
            guard: guard.map_or(Guard::ALWAYS, |g| g.0),
            values,
            fixups,
            loc: mloc,
        });
        Ok(())
    }

    fn unknown_mnemonic(&self, mnemonic: &str) -> String {
        let mut close: Vec<(usize, &'static str)> = Opcode::ALL
            .iter()
            .map(|o| o.mnemonic())
            .filter(|_| mnemonic.len() <= 32)
            .filter_map(|m| {
                let d = distance(mnemonic, m);
                let family = m.split('.').next() == Some(mnemonic);
                (family || d <= 2).then_some((if family { 0 } else { d }, m))
            })
            .collect();
        close.sort();
        close.truncate(4);
        let mut msg = format!("unknown instruction `{mnemonic}`");
        if let Some(((_, last), rest)) = close.split_last() {
            let rest: Vec<String> = rest.iter().map(|(_, m)| format!("`{m}`")).collect();
            let or = if rest.is_empty() { "" } else { " or " };
            msg.push_str(&format!("; did you mean {}{or}`{last}`?", rest.join(", ")));
        }
        msg
    }

    fn operand(
        &self,
        line: usize,
        opcode: Opcode,
        kind: OperandKind,
        toks: &[Tok],
        loc: Loc,
    ) -> Result<Parsed, E> {
        let text = self.line_text(line);
        let found = text_of(text, toks);
        let what = article(&describe(kind));
        let single_ident = match toks {
            [t] if t.t == T::Ident => Some(&text[t.start..t.end]),
            _ => None,
        };
        let reg = |prefix: char, max: u8| -> Result<u8, E> {
            single_ident
                .and_then(|s| reg_number(s, prefix))
                .filter(|&n| n <= u32::from(max))
                .map(|n| n as u8)
                .ok_or_else(|| (loc, format!("expected {what}, found `{found}`")))
        };
        let value = match kind {
            OperandKind::SReg => Value::SReg(SReg(reg('s', SReg::MAX)?)),
            OperandKind::VReg => Value::VReg(VReg(reg('v', VReg::MAX)?)),
            OperandKind::PReg => Value::PReg(PReg(reg('p', PReg::MAX)?)),
            OperandKind::CReg => {
                let n = single_ident.and_then(|s| reg_number(s, 's'));
                match n {
                    Some(n) if n <= u32::from(CReg::MAX) => Value::CReg(CReg(n as u8)),
                    Some(n) if n <= u32::from(SReg::MAX) => {
                        return Err((
                            loc,
                            format!(
                                "expected {what}, found `{found}`: s{n}..s{} would run past s31",
                                n + 3
                            ),
                        ));
                    }
                    _ => return Err((loc, format!("expected {what}, found `{found}`"))),
                }
            }
            OperandKind::TReg => {
                if let Some(sym) = single_ident.and_then(|s| self.symbols.get(s)) {
                    match sym.kind {
                        SymKind::Tensor(slot) => Value::TReg(TReg(slot)),
                        SymKind::Scalar(_) => {
                            return Err((
                                loc,
                                format!(
                                    "expected {what} or a tensor argument, found `{found}`, a \
                                     scalar argument"
                                ),
                            ));
                        }
                        SymKind::Equ(_) => {
                            return Err((
                                loc,
                                format!(
                                    "expected {what} or a tensor argument, found `{found}`, an .equ"
                                ),
                            ));
                        }
                    }
                } else {
                    match reg('t', TReg::MAX) {
                        Ok(n) => Value::TReg(TReg(n)),
                        Err((loc, _)) => {
                            return Err((
                                loc,
                                format!(
                                    "expected {what} or a tensor argument's name, found `{found}`"
                                ),
                            ));
                        }
                    }
                }
            }
            OperandKind::Imm => {
                if let Some(sym) = single_ident.and_then(|s| self.symbols.get(s)) {
                    match sym.kind {
                        SymKind::Scalar(i) if opcode == Opcode::Ldarg => {
                            return Ok(Parsed::Value(Value::Imm(Imm(i as i32))));
                        }
                        SymKind::Tensor(_) if opcode == Opcode::Ldarg => {
                            return Err((
                                loc,
                                format!(
                                    "`{found}` is a tensor argument; ldarg takes a scalar \
                                     argument (its name or index)"
                                ),
                            ));
                        }
                        _ => {}
                    }
                }
                let v = self.eval_range(
                    line,
                    toks,
                    &format!("{what} (-2147483648 to 4294967295)"),
                    i128::from(i32::MIN),
                    i128::from(u32::MAX),
                )?;
                Value::Imm(Imm(v as u32 as i32))
            }
            OperandKind::Bits => match self.float_literal(text, toks) {
                Some(bits) => Value::Bits(Bits(bits)),
                None => {
                    let v = self.eval_range(
                        line,
                        toks,
                        &what,
                        i128::from(i32::MIN),
                        i128::from(u32::MAX),
                    )?;
                    Value::Bits(Bits(v as u32))
                }
            },
            OperandKind::Lane => {
                let v = self.eval_range(line, toks, &what, 0, crate::LANES as i128 - 1)?;
                Value::Lane(Lane(v as u8))
            }
            OperandKind::Dim => {
                let v = self.eval_range(line, toks, &what, 0, crate::DIMS as i128 - 1)?;
                Value::Dim(Dim(v as u8))
            }
            OperandKind::Off => {
                let head = toks.first().map_or("", |t| &text[t.start..t.end]);
                if toks.first().is_some_and(|t| t.t == T::Ident) && head == "pc" {
                    let offset = match toks.get(1).map(|t| t.t) {
                        None => 0,
                        Some(T::P(sign @ (P::Plus | P::Minus))) => {
                            if toks.len() < 3 {
                                return Err((
                                    self.loc(line, &toks[1..]),
                                    format!(
                                        "expected a number after `pc{}`",
                                        if sign == P::Plus { '+' } else { '-' }
                                    ),
                                ));
                            }
                            let n = self.eval(line, &toks[2..], "an instruction count")?;
                            if sign == P::Minus {
                                n.checked_neg().ok_or((
                                    loc,
                                    "arithmetic overflow in the expression".to_owned(),
                                ))?
                            } else {
                                n
                            }
                        }
                        Some(_) => {
                            return Err((
                                self.loc(line, &toks[1..]),
                                format!(
                                    "expected `+` or `-` after `pc`, found `{}`",
                                    text_of(text, &toks[1..])
                                ),
                            ));
                        }
                    };
                    let off = i32::try_from(offset).map_err(|_| {
                        (
                            loc,
                            format!("branch offset {offset} (`{found}`) does not fit in 32 bits"),
                        )
                    })?;
                    Value::Off(Off(off))
                } else if let Some(label) = single_ident {
                    return Ok(Parsed::Label(label.to_owned()));
                } else {
                    return Err((loc, format!("expected {what}, found `{found}`")));
                }
            }
        };
        Ok(Parsed::Value(value))
    }

    /// A float literal operand (`1.5`, `-2e-3`, `inf`, `-nan`): its f32 bits.
    fn float_literal(&self, text: &str, toks: &[Tok]) -> Option<u32> {
        let (negative, rest) = match toks.first()?.t {
            T::P(P::Minus) => (true, &toks[1..]),
            T::P(P::Plus) => (false, &toks[1..]),
            _ => (false, toks),
        };
        let [t] = rest else { return None };
        let s = &text[t.start..t.end];
        let v: f32 = match t.t {
            T::Float => s.replace('_', "").parse().ok()?,
            T::Ident if s == "inf" => f32::INFINITY,
            T::Ident if s == "nan" => f32::NAN,
            _ => return None,
        };
        Some(if negative { -v } else { v }.to_bits())
    }

    // ---- expressions ----

    fn eval(&self, line: usize, toks: &[Tok], what: &str) -> Result<i128, E> {
        let mut ev = Eval {
            asm: self,
            line,
            text: self.line_text(line),
            toks,
            pos: 0,
            depth: 0,
            what,
        };
        let v = ev.or()?;
        if let Some(t) = toks.get(ev.pos) {
            let text = ev.text;
            return Err((
                self.loc(line, &toks[ev.pos..]),
                format!(
                    "expected an operator or the end of the operand, found `{}`",
                    &text[t.start..t.end]
                ),
            ));
        }
        Ok(v)
    }

    fn eval_range(
        &self,
        line: usize,
        toks: &[Tok],
        what: &str,
        lo: i128,
        hi: i128,
    ) -> Result<i128, E> {
        let v = self.eval(line, toks, what)?;
        if v < lo || v > hi {
            let text = text_of(self.line_text(line), toks);
            let shown = if text == v.to_string() {
                format!("{v}")
            } else {
                format!("`{text}` = {v}")
            };
            return Err((
                self.loc(line, toks),
                format!("value out of range: expected {what}, found {shown}"),
            ));
        }
        Ok(v)
    }

    fn finish(mut self) -> Result<KernelBinary, Vec<AsmError>> {
        if self.fatal {
            return Err(self.errors);
        }
        let mut code = Vec::with_capacity(self.items.len());
        let items = std::mem::take(&mut self.items);
        for (pc, item) in items.into_iter().enumerate() {
            match item {
                Item::Word(w) => code.push(w),
                Item::Inst {
                    opcode,
                    guard,
                    mut values,
                    fixups,
                    loc,
                } => {
                    for f in fixups {
                        match self.labels.get(&f.label) {
                            Some(&(target, _)) => {
                                let off = i64::from(target) - pc as i64;
                                match i32::try_from(off) {
                                    Ok(off) => values[f.operand] = Value::Off(Off(off)),
                                    Err(_) => self.push_error(
                                        f.loc,
                                        format!("branch to `{}` is too far", f.label),
                                    ),
                                }
                            }
                            None => {
                                let msg = format!("undefined label `{}`", f.label);
                                self.push_error(f.loc, msg);
                            }
                        }
                    }
                    match build(opcode, &values) {
                        Some(op) => code.push(Inst::guarded(guard, op).encode()),
                        None => {
                            // Unreachable: operands were parsed by the table's kinds.
                            self.push_error(
                                loc,
                                format!("internal error: cannot build `{}`", opcode.mnemonic()),
                            );
                        }
                    }
                }
            }
        }
        let entry = match self.entry.take() {
            None => 0,
            Some((label, loc)) => match self.labels.get(&label) {
                Some(&(target, _)) if (target as usize) < code.len() => target,
                Some(_) => {
                    self.push_error(
                        loc,
                        format!("entry label `{label}` is after the last instruction"),
                    );
                    0
                }
                None => {
                    self.push_error(loc, format!("undefined label `{label}`"));
                    0
                }
            },
        };
        if code.is_empty() && self.errors.is_empty() {
            self.file_error("no instructions: a kernel needs at least one");
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let name = match self.kernel.take() {
            Some((n, _)) => n,
            None => std::path::Path::new(self.file)
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| is_valid_name(s))
                .unwrap_or("kernel")
                .to_owned(),
        };
        let binary = KernelBinary {
            name,
            entry,
            code,
            args: std::mem::take(&mut self.args),
            scratch_bytes: self.scratch.map_or(0, |s| s.0),
        };
        if let Err(e) = binary.validate() {
            // Unreachable by construction; reported rather than trusted.
            self.file_error(format!("the binary would be invalid: {e}"));
            return Err(self.errors);
        }
        Ok(binary)
    }
}

/// "a thing", for messages.
fn article(what: &str) -> String {
    format!("a {what}")
}

enum Parsed {
    Value(Value),
    Label(String),
}

/// An expression evaluator over one operand's tokens.
struct Eval<'e, 'a, 's> {
    asm: &'e Asm<'a, 's>,
    line: usize,
    text: &'s str,
    toks: &'e [Tok],
    pos: usize,
    depth: usize,
    what: &'e str,
}

impl Eval<'_, '_, '_> {
    fn peek(&self) -> Option<T> {
        self.toks.get(self.pos).map(|t| t.t)
    }

    fn here(&self) -> Loc {
        match self.toks.get(self.pos) {
            Some(t) => Loc {
                line: self.line,
                start: t.start,
                end: t.end,
            },
            None => {
                let end = self.toks.last().map_or(0, |t| t.end);
                Loc {
                    line: self.line,
                    start: end,
                    end,
                }
            }
        }
    }

    fn overflow(&self, at: Loc) -> E {
        (at, "arithmetic overflow in the expression".to_owned())
    }

    fn binary(
        &mut self,
        ops: &[P],
        next: fn(&mut Self) -> Result<i128, E>,
        apply: fn(&Self, P, i128, i128, Loc) -> Result<i128, E>,
    ) -> Result<i128, E> {
        let mut v = next(self)?;
        while let Some(T::P(p)) = self.peek() {
            if !ops.contains(&p) {
                break;
            }
            let at = self.here();
            self.pos += 1;
            let r = next(self)?;
            v = apply(self, p, v, r, at)?;
        }
        Ok(v)
    }

    fn or(&mut self) -> Result<i128, E> {
        self.binary(&[P::Pipe], Self::xor, |_, _, a, b, _| Ok(a | b))
    }

    fn xor(&mut self) -> Result<i128, E> {
        self.binary(&[P::Caret], Self::and, |_, _, a, b, _| Ok(a ^ b))
    }

    fn and(&mut self) -> Result<i128, E> {
        self.binary(&[P::Amp], Self::shift, |_, _, a, b, _| Ok(a & b))
    }

    fn shift(&mut self) -> Result<i128, E> {
        self.binary(&[P::Shl, P::Shr], Self::add, |s, p, a, b, at| {
            if b < 0 {
                return Err((at, format!("negative shift amount {b}")));
            }
            if p == P::Shr {
                return Ok(a >> b.min(127));
            }
            if a == 0 {
                return Ok(0);
            }
            u32::try_from(b)
                .ok()
                .and_then(|b| 2i128.checked_pow(b))
                .and_then(|m| a.checked_mul(m))
                .ok_or_else(|| s.overflow(at))
        })
    }

    fn add(&mut self) -> Result<i128, E> {
        self.binary(&[P::Plus, P::Minus], Self::mul, |s, p, a, b, at| {
            let r = if p == P::Plus {
                a.checked_add(b)
            } else {
                a.checked_sub(b)
            };
            r.ok_or_else(|| s.overflow(at))
        })
    }

    fn mul(&mut self) -> Result<i128, E> {
        self.binary(
            &[P::Star, P::Slash, P::Percent],
            Self::unary,
            |s, p, a, b, at| {
                if p != P::Star && b == 0 {
                    return Err((at, "division by zero in the expression".to_owned()));
                }
                let r = match p {
                    P::Star => a.checked_mul(b),
                    P::Slash => a.checked_div(b),
                    _ => a.checked_rem(b),
                };
                r.ok_or_else(|| s.overflow(at))
            },
        )
    }

    fn unary(&mut self) -> Result<i128, E> {
        let Some(T::P(p @ (P::Minus | P::Plus | P::Tilde))) = self.peek() else {
            return self.primary();
        };
        let at = self.here();
        self.enter(at)?;
        self.pos += 1;
        let v = self.unary()?;
        self.depth -= 1;
        match p {
            P::Minus => v.checked_neg().ok_or_else(|| self.overflow(at)),
            P::Tilde => Ok(!v),
            _ => Ok(v),
        }
    }

    fn enter(&mut self, at: Loc) -> Result<(), E> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return Err((
                at,
                format!("expression nested more than {MAX_EXPR_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<i128, E> {
        let at = self.here();
        let Some(tok) = self.toks.get(self.pos).copied() else {
            return Err((
                at,
                format!("expected {}, found the end of the operand", self.what),
            ));
        };
        let s = &self.text[tok.start..tok.end];
        self.pos += 1;
        match tok.t {
            T::Int(v) => i128::try_from(v).map_err(|_| self.overflow(at)),
            T::P(P::LParen) => {
                self.enter(at)?;
                let v = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(T::P(P::RParen)) {
                    let here = self.here();
                    return Err((here, "expected `)` to close the `(`".to_owned()));
                }
                self.pos += 1;
                Ok(v)
            }
            T::Float => {
                let why = if self.what.contains("float") {
                    "a float literal must be the whole operand"
                } else {
                    "only `li` takes float literals"
                };
                Err((
                    at,
                    format!(
                        "expected {}, found the float literal `{s}`: {why}",
                        self.what
                    ),
                ))
            }
            T::Ident => {
                if let Some(v) = self
                    .asm
                    .vars
                    .iter()
                    .rev()
                    .find(|v| v.name.as_deref() == Some(s))
                {
                    return Ok(v.value);
                }
                match self.asm.symbols.get(s).map(|sym| sym.kind) {
                    Some(SymKind::Equ(v)) => Ok(v),
                    Some(SymKind::Tensor(_)) => Err((
                        at,
                        format!("expected {}, found `{s}`, a tensor argument", self.what),
                    )),
                    Some(SymKind::Scalar(_)) => Err((
                        at,
                        format!(
                            "expected {}, found `{s}`, a scalar argument (only ldarg takes its name)",
                            self.what
                        ),
                    )),
                    None if is_register_like(s) => {
                        Err((at, format!("expected {}, found `{s}`", self.what)))
                    }
                    None => Err((at, format!("undefined symbol `{s}` in {}", self.what))),
                }
            }
            _ => Err((at, format!("expected {}, found `{s}`", self.what))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Inst {
        let k = assemble(src, "t.s").unwrap_or_else(|e| panic!("{e}"));
        Inst::decode(k.code[0]).unwrap()
    }

    fn err(src: &str) -> String {
        assemble(src, "t.s").unwrap_err().to_string()
    }

    #[test]
    fn assembles_an_instruction() {
        assert_eq!(
            one("@!p3 vmadl.f32 v1, v31, v7, 63").to_string(),
            "@!p3 vmadl.f32 v1, v31, v7, 63"
        );
        assert_eq!(one("li s1, 1.5").to_string(), "li s1, 0x3fc00000");
        assert_eq!(one("li s1, -1").to_string(), "li s1, 0xffffffff");
        assert_eq!(one("li s1, -nan").to_string(), "li s1, 0xffc00000");
        assert_eq!(
            one("addi s1, s2, 0xffffffff").to_string(),
            "addi s1, s2, -1"
        );
        assert_eq!(
            one("addi s1, s2, (1 << 4) * 3 - ~0").to_string(),
            "addi s1, s2, 49"
        );
    }

    #[test]
    fn errors_have_a_caret() {
        let e = err(".kernel k\n  vadd.f32 v1, s3, v2\n");
        assert_eq!(
            e,
            "t.s:2:16: error: expected a vector register (v0-v31), found `s3`\n\
             2 |   vadd.f32 v1, s3, v2\n  |                ^^"
        );
    }

    #[test]
    fn build_and_values_invert() {
        let op = Op::Tdim {
            sd: SReg(3),
            t: TReg(2),
            dim: Dim(1),
        };
        assert_eq!(build(op.opcode(), &values(&op)), Some(op));
        assert_eq!(build(Opcode::Nop, &values(&op)), None);
        assert_eq!(build(Opcode::Tdim, &values(&op)[..2]), None);
    }
}

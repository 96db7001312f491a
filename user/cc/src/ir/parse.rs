//! A reader for the IR's textual form ([`super::print`]), so that tests can be written
//! as text: `parse(&print(f))` prints identically to `print(f)`.
//!
//! The reader takes one statement a line (`;` or `//` starts a comment), names values
//! and blocks by whatever numbers the text uses, and allows uses before definitions (a
//! loop's back edge). It checks the syntax, the immediates' ranges and that every
//! name is defined once; everything else (types, dominance) is the verifier's, so a
//! parsed function should be verified before use. It never panics. Spans are all
//! [`Span::default`].
//!
//! Beyond what `print` writes it accepts an f32 constant written as a plain float
//! (`const 1.5`) and an integer constant in hexadecimal.

use std::collections::HashMap;

use super::print::{CONDS, SIMPLE};
use super::{Block, Function, Guard, Op, Param, ParamKind, Target, Terminator, Type, Value};
use crate::span::Span;

/// Why a text is not a function in the textual form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The line (from 1) at fault.
    pub line: usize,
    /// What was wrong, in a sentence.
    pub message: String,
}

#[derive(Clone, PartialEq, Debug)]
enum Tok {
    Word(String),
    Punct(char),
}

fn tokenize(line: &str) -> Vec<Tok> {
    let line = line.split(';').next().unwrap_or("");
    let line = line.split("//").next().unwrap_or("");
    let mut toks = Vec::new();
    let mut word = String::new();
    for c in line.chars() {
        if c.is_alphanumeric() || "_.%?-+".contains(c) {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            toks.push(Tok::Word(std::mem::take(&mut word)));
        }
        if !c.is_whitespace() {
            toks.push(Tok::Punct(c));
        }
    }
    if !word.is_empty() {
        toks.push(Tok::Word(word));
    }
    toks
}

struct Line {
    no: usize,
    toks: Vec<Tok>,
    at: usize,
}

impl Line {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.no,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Punct(c)) => format!("`{c}`"),
            None => "the end of the line".to_string(),
        }
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn eat(&mut self, c: char) -> bool {
        if self.is_punct(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(format!("expected `{c}`, found {}", self.found()))
        }
    }

    fn word(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => self.fail(format!("expected {what}, found {}", self.found())),
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        if self.at < self.toks.len() {
            self.fail(format!(
                "expected the end of the line, found {}",
                self.found()
            ))
        } else {
            Ok(())
        }
    }

    fn value(&mut self) -> Result<u32, ParseError> {
        let w = self.word("a value (`%N`)")?;
        match w.strip_prefix('%').and_then(|n| n.parse().ok()) {
            Some(n) => Ok(n),
            None => self.fail(format!("expected a value (`%N`), found `{w}`")),
        }
    }

    fn block(&mut self) -> Result<u32, ParseError> {
        let w = self.word("a block (`bN`)")?;
        match w.strip_prefix('b').and_then(|n| n.parse().ok()) {
            Some(n) => Ok(n),
            None => self.fail(format!("expected a block (`bN`), found `{w}`")),
        }
    }

    fn ty(&mut self) -> Result<Type, ParseError> {
        let w = self.word("a type")?;
        match TYPES.iter().find(|t| t.name() == w) {
            Some(&t) => Ok(t),
            None => self.fail(format!("`{w}` is not a type")),
        }
    }

    fn target(&mut self) -> Result<PTarget, ParseError> {
        let block = self.block()?;
        let mut args = Vec::new();
        if self.eat('(') && !self.eat(')') {
            loop {
                args.push(self.value()?);
                if self.eat(')') {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(PTarget { block, args })
    }
}

const TYPES: [Type; 7] = [
    Type::I32,
    Type::F32,
    Type::VF32,
    Type::VI32,
    Type::VBF16,
    Type::Mask,
    Type::Int4,
];

struct PTarget {
    block: u32,
    args: Vec<u32>,
}

enum PTerm {
    Halt,
    Jump(PTarget),
    Branch(u32, PTarget, PTarget),
}

struct PInst {
    line: usize,
    result: Option<(u32, Type)>,
    op: Op,
    args: Vec<u32>,
    guard: Option<(u32, bool)>,
    passthru: Option<u32>,
}

struct PBlock {
    line: usize,
    name: u32,
    params: Vec<(u32, Type)>,
    insts: Vec<PInst>,
    term: Option<(usize, PTerm)>,
}

fn parse_int(w: &str) -> Option<i64> {
    let (neg, digits) = match w.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, w.strip_prefix('+').unwrap_or(w)),
    };
    let x = if let Some(h) = digits.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -x } else { x })
}

/// The bits of an f32 constant: `0xBITS [(value)]` or a float.
fn const_f32(l: &mut Line, w: &str) -> Result<u32, ParseError> {
    let bits = if let Some(hex) = w.strip_prefix("0x") {
        match u32::from_str_radix(hex, 16) {
            Ok(b) => b,
            Err(_) => return l.fail(format!("`{w}` is not 32 bits in hexadecimal")),
        }
    } else {
        match w.parse::<f32>() {
            Ok(x) => return Ok(x.to_bits()),
            Err(_) => return l.fail(format!("`{w}` is not an f32")),
        }
    };
    if l.eat('(') {
        let shown = l.word("the constant's value")?;
        l.expect(')')?;
        let x = f32::from_bits(bits);
        match shown.parse::<f32>() {
            Ok(y) if y.to_bits() == bits || (y.is_nan() && x.is_nan()) => {}
            _ => {
                return l.fail(format!(
                    "the constant {w} is {x:?}, not the value `{shown}` written beside it"
                ));
            }
        }
    }
    Ok(bits)
}

fn op_of(l: &Line, name: &str, imms: &[Tok]) -> Result<Op, ParseError> {
    let num = |k: usize| -> Option<i64> {
        match imms.get(k) {
            Some(Tok::Word(w)) => parse_int(w),
            _ => None,
        }
    };
    let slot = |k: usize| -> Option<u8> {
        match imms.get(k) {
            Some(Tok::Word(w)) => w.strip_prefix('t')?.parse().ok(),
            _ => None,
        }
    };
    let small = |k: usize, max: i64| num(k).filter(|&x| (0..=max).contains(&x)).map(|x| x as u8);
    let offset = |k: usize| num(k).and_then(|x| i32::try_from(x).ok());
    let want = |n: usize| imms.len() == n;
    if let Some((_, op)) = SIMPLE.iter().find(|(n, _)| *n == name) {
        return if want(0) {
            Ok(*op)
        } else {
            l.fail(format!("`{name}` takes no immediates"))
        };
    }
    if let Some((kind, c)) = name.split_once('.')
        && let Some(&cond) = CONDS.iter().find(|c2| c2.name() == c)
    {
        let op = match kind {
            "icmp" => Some(Op::Icmp(cond)),
            "fcmp" => Some(Op::Fcmp(cond)),
            _ => None,
        };
        if let Some(op) = op {
            return if want(0) {
                Ok(op)
            } else {
                l.fail(format!("`{name}` takes no immediates"))
            };
        }
    }
    let op = match name {
        "int4_get" if want(1) => small(0, 255).map(Op::Int4Get),
        "int4_set" if want(1) => small(0, 255).map(Op::Int4Set),
        "idx" if want(1) => small(0, 255).map(Op::Idx),
        "idxn" if want(1) => small(0, 255).map(Op::Idxn),
        "arg" if want(1) => num(0).and_then(|x| u32::try_from(x).ok()).map(Op::Arg),
        "tdim" if want(2) => match (slot(0), small(1, 255)) {
            (Some(slot), Some(dim)) => Some(Op::Tdim { slot, dim }),
            _ => None,
        },
        "load_tensor" if want(1) => slot(0).map(|slot| Op::LoadTensor { slot }),
        "store_tensor" if want(1) => slot(0).map(|slot| Op::StoreTensor { slot }),
        "load_tensor_scalar" if want(1) => slot(0).map(|slot| Op::LoadTensorScalar { slot }),
        "store_tensor_scalar" if want(1) => slot(0).map(|slot| Op::StoreTensorScalar { slot }),
        "load_scratch" if want(1) => offset(0).map(|offset| Op::LoadScratch { offset }),
        "store_scratch" if want(1) => offset(0).map(|offset| Op::StoreScratch { offset }),
        "load_scratch_vec" if want(1) => offset(0).map(|offset| Op::LoadScratchVec { offset }),
        "store_scratch_vec" if want(1) => offset(0).map(|offset| Op::StoreScratchVec { offset }),
        "int4_get"
        | "int4_set"
        | "idx"
        | "idxn"
        | "arg"
        | "tdim"
        | "load_tensor"
        | "store_tensor"
        | "load_tensor_scalar"
        | "store_tensor_scalar"
        | "load_scratch"
        | "store_scratch"
        | "load_scratch_vec"
        | "store_scratch_vec" => {
            return l.fail(format!(
                "`{name}` takes a different number of immediates than {}",
                imms.len()
            ));
        }
        _ => return l.fail(format!("`{name}` is not an operation")),
    };
    match op {
        Some(op) => Ok(op),
        None => l.fail(format!(
            "an immediate of `{name}` is malformed or out of range"
        )),
    }
}

fn parse_inst(l: &mut Line) -> Result<PInst, ParseError> {
    let mut result = None;
    if matches!(l.peek(), Some(Tok::Word(w)) if w.starts_with('%')) {
        let v = l.value()?;
        l.expect(':')?;
        let t = l.ty()?;
        l.expect('=')?;
        result = Some((v, t));
    }
    let name = l.word("an operation")?;
    let (op, args) = if name == "const" {
        let w = l.word("a constant")?;
        let bits = match result.map(|r| r.1) {
            Some(Type::Mask) if w == "all" => 0,
            Some(Type::F32) => const_f32(l, &w)?,
            Some(Type::I32) => match parse_int(&w) {
                Some(x) if (-(1i64 << 31)..(1i64 << 32)).contains(&x) => x as u32,
                _ => return l.fail(format!("`{w}` is not a 32-bit integer")),
            },
            _ => return l.fail("a constant is an i32, an f32 or the mask `all`"),
        };
        (Op::Const(bits), Vec::new())
    } else {
        let mut imms = Vec::new();
        let mut args = Vec::new();
        if matches!(l.peek(), Some(Tok::Word(w)) if w != "else") {
            loop {
                match l.peek() {
                    Some(Tok::Word(w)) if w.starts_with('%') => args.push(l.value()?),
                    Some(t @ Tok::Word(_)) if args.is_empty() => {
                        imms.push(t.clone());
                        l.at += 1;
                    }
                    _ => return l.fail(format!("expected an operand, found {}", l.found())),
                }
                if !l.eat(',') {
                    break;
                }
            }
        }
        (op_of(l, &name, &imms)?, args)
    };
    let mut guard = None;
    if l.eat('@') {
        let negated = l.eat('!');
        guard = Some((l.value()?, negated));
    }
    let mut passthru = None;
    if l.peek() == Some(&Tok::Word("else".into())) {
        l.at += 1;
        passthru = Some(l.value()?);
    }
    l.end()?;
    Ok(PInst {
        line: l.no,
        result,
        op,
        args,
        guard,
        passthru,
    })
}

fn parse_header(l: &mut Line) -> Result<(String, Vec<Param>, u32), ParseError> {
    if l.word("`kernel`")? != "kernel" {
        return l.fail("a function starts with `kernel NAME(...)`");
    }
    let name = l.word("the kernel's name")?;
    l.expect('(')?;
    let mut params = Vec::new();
    if !l.eat(')') {
        loop {
            let k = l.word("a parameter kind")?;
            let kind = if k == "tensor" {
                l.expect('<')?;
                let e = l.word("an element type")?;
                l.expect('>')?;
                match e.as_str() {
                    "f32" => ParamKind::TensorF32,
                    "i32" => ParamKind::TensorI32,
                    "u32" => ParamKind::TensorU32,
                    "bf16" => ParamKind::TensorBf16,
                    _ => return l.fail(format!("`{e}` is not a tensor element type")),
                }
            } else {
                match k.as_str() {
                    "f32" => ParamKind::F32,
                    "i32" => ParamKind::I32,
                    "u32" => ParamKind::U32,
                    _ => return l.fail(format!("`{k}` is not a parameter kind")),
                }
            };
            let name = l.word("the parameter's name")?;
            params.push(Param { name, kind });
            if l.eat(')') {
                break;
            }
            l.expect(',')?;
        }
    }
    if l.word("`scratch`")? != "scratch" {
        return l.fail("expected `scratch BYTES` after the parameters");
    }
    let w = l.word("the scratchpad size")?;
    let Ok(scratch) = w.parse::<u32>() else {
        return l.fail(format!("`{w}` is not a scratchpad size"));
    };
    l.expect('{')?;
    l.end()?;
    Ok((name, params, scratch))
}

/// Reads a function in the textual form.
pub fn parse(text: &str) -> Result<Function, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(k, s)| Line {
            no: k + 1,
            toks: tokenize(s),
            at: 0,
        })
        .filter(|l| !l.toks.is_empty());
    let Some(mut first) = lines.next() else {
        return Err(ParseError {
            line: 1,
            message: "the text is empty".into(),
        });
    };
    let (name, params, scratch) = parse_header(&mut first)?;
    let mut blocks: Vec<PBlock> = Vec::new();
    let mut closed = false;
    let mut last = first.no;
    for mut l in lines {
        last = l.no;
        if closed {
            return l.fail("text after the closing `}`");
        }
        if l.eat('}') {
            l.end()?;
            closed = true;
            continue;
        }
        let is_label = matches!(l.peek(), Some(Tok::Word(w)) if w.starts_with('b') && w[1..].parse::<u32>().is_ok());
        if is_label {
            let name = l.block()?;
            let mut ps = Vec::new();
            if l.eat('(') && !l.eat(')') {
                loop {
                    let v = l.value()?;
                    l.expect(':')?;
                    ps.push((v, l.ty()?));
                    if l.eat(')') {
                        break;
                    }
                    l.expect(',')?;
                }
            }
            l.expect(':')?;
            l.end()?;
            blocks.push(PBlock {
                line: l.no,
                name,
                params: ps,
                insts: Vec::new(),
                term: None,
            });
            continue;
        }
        let no = l.no;
        let Some(b) = blocks.last_mut() else {
            return l.fail("an instruction before the first block label");
        };
        if b.term.is_some() {
            return l.fail("an instruction after the block's terminator");
        }
        let term = match l.peek() {
            Some(Tok::Word(w)) if w == "halt" => {
                l.at += 1;
                Some(PTerm::Halt)
            }
            Some(Tok::Word(w)) if w == "jump" => {
                l.at += 1;
                Some(PTerm::Jump(l.target()?))
            }
            Some(Tok::Word(w)) if w == "br" => {
                l.at += 1;
                let c = l.value()?;
                l.expect(',')?;
                let t = l.target()?;
                l.expect(',')?;
                Some(PTerm::Branch(c, t, l.target()?))
            }
            _ => None,
        };
        match term {
            Some(t) => {
                l.end()?;
                b.term = Some((no, t));
            }
            None => b.insts.push(parse_inst(&mut l)?),
        }
    }
    if !closed {
        return Err(ParseError {
            line: last,
            message: "the function does not end with `}`".into(),
        });
    }
    build(name, params, scratch, blocks)
}

fn build(
    name: String,
    params: Vec<Param>,
    scratch: u32,
    blocks: Vec<PBlock>,
) -> Result<Function, ParseError> {
    let fail = |line: usize, message: String| Err(ParseError { line, message });
    if blocks.is_empty() {
        return fail(1, "the function has no blocks".into());
    }
    let mut f = Function::new(name, params);
    f.scratch_bytes = scratch;
    let mut bmap: HashMap<u32, Block> = HashMap::new();
    for (k, pb) in blocks.iter().enumerate() {
        let b = if k == 0 { f.entry } else { f.add_block() };
        if bmap.insert(pb.name, b).is_some() {
            return fail(pb.line, format!("block b{} is defined twice", pb.name));
        }
    }
    let mut vmap: HashMap<u32, Value> = HashMap::new();
    let mut placed = Vec::new();
    for pb in &blocks {
        let b = bmap[&pb.name];
        for &(v, t) in &pb.params {
            let val = f.add_block_param(b, t);
            if vmap.insert(v, val).is_some() {
                return fail(pb.line, format!("value %{v} is defined twice"));
            }
        }
        for pi in &pb.insts {
            let i = f.create_inst(
                pi.op,
                Vec::new(),
                pi.result.map(|r| r.1),
                None,
                None,
                Span::default(),
            );
            f.block_mut(b).insts.push(i);
            placed.push(i);
            if let (Some((v, _)), Some(val)) = (pi.result, f.inst(i).result)
                && vmap.insert(v, val).is_some()
            {
                return fail(pi.line, format!("value %{v} is defined twice"));
            }
        }
    }
    let val = |line: usize, v: u32| match vmap.get(&v) {
        Some(&x) => Ok(x),
        None => Err(ParseError {
            line,
            message: format!("value %{v} is not defined"),
        }),
    };
    let target = |line: usize, t: &PTarget| -> Result<Target, ParseError> {
        let Some(&block) = bmap.get(&t.block) else {
            return Err(ParseError {
                line,
                message: format!("block b{} is not defined", t.block),
            });
        };
        let args = t
            .args
            .iter()
            .map(|&a| val(line, a))
            .collect::<Result<_, _>>()?;
        Ok(Target { block, args })
    };
    let mut k = 0;
    for pb in &blocks {
        let b = bmap[&pb.name];
        for pi in &pb.insts {
            let i = placed[k];
            k += 1;
            let args = pi
                .args
                .iter()
                .map(|&a| val(pi.line, a))
                .collect::<Result<_, _>>()?;
            let guard = match pi.guard {
                Some((m, negated)) => Some(Guard {
                    mask: val(pi.line, m)?,
                    negated,
                }),
                None => None,
            };
            let passthru = match pi.passthru {
                Some(p) => Some(val(pi.line, p)?),
                None => None,
            };
            let d = f.inst_mut(i);
            d.args = args;
            d.guard = guard;
            d.passthru = passthru;
        }
        let term = match &pb.term {
            None => return fail(pb.line, format!("block b{} has no terminator", pb.name)),
            Some((_, PTerm::Halt)) => Terminator::Halt,
            Some((line, PTerm::Jump(t))) => Terminator::Jump(target(*line, t)?),
            Some((line, PTerm::Branch(c, t, e))) => Terminator::Branch {
                cond: val(*line, *c)?,
                then: target(*line, t)?,
                otherwise: target(*line, e)?,
            },
        };
        f.block_mut(b).term = term;
    }
    Ok(f)
}

//! The parser: recursive descent over the grammar of `docs/language.md`, from tokens
//! to the syntax tree of `ast`.
//!
//! Errors say what was expected and what was found. After an error the parser skips
//! to the end of the statement (a `;` or the `}` of its block, brackets balanced) or,
//! outside functions, to the next `kernel`/`fn`/`const`, and goes on; it reports at
//! most one error per statement so that one mistake does not cascade. Nesting deeper
//! than [`MAX_DEPTH`] (blocks, parentheses, unary operators) is an error, which bounds
//! the recursion of every later stage.

use super::ast::*;
use super::lex::{Tok, Token};
use crate::diag::Diagnostic;
use crate::span::Span;

/// The deepest nesting of statements and expressions the parser accepts.
pub const MAX_DEPTH: u32 = 128;

/// Past this many errors the parser stops (the rest would be noise).
const MAX_ERRORS: usize = 50;

/// Marks an error already reported.
#[derive(Debug)]
pub struct Reported;

type P<T> = Result<T, Reported>;

/// The parser's state.
#[derive(Debug)]
pub struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: u32,
    /// The errors so far.
    pub errs: Vec<Diagnostic>,
}

/// Parses a whole source file.
pub fn parse(src: &str, toks: Vec<Token>) -> (Vec<Item>, Vec<Diagnostic>) {
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
        errs: Vec::new(),
    };
    let items = p.program();
    (items, p.errs)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.toks.get(self.pos + n).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or_else(Span::default, |t| t.span)
    }

    /// The span of the token before the current one.
    fn prev_span(&self) -> Span {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or_else(|| self.span(), |t| t.span)
    }

    fn bump(&mut self) -> Span {
        let s = self.span();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        s
    }

    fn is_p(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::P(q) if *q == p)
    }

    fn is_kw(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Kw(q) if *q == k)
    }

    fn eat_p(&mut self, p: &str) -> bool {
        if self.is_p(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn found(&self) -> String {
        let s = self.span();
        self.peek().describe(self.src, s)
    }

    fn error<T>(&mut self, span: Span, message: String) -> P<T> {
        if self.errs.len() < MAX_ERRORS {
            self.errs.push(Diagnostic::new(span, message));
        }
        Err(Reported)
    }

    /// An error at the current token: "expected WHAT, found TOKEN".
    fn expected<T>(&mut self, what: &str) -> P<T> {
        let msg = format!("expected {what}, found {}", self.found());
        let s = self.span();
        self.error(s, msg)
    }

    fn expect_p(&mut self, p: &str, context: &str) -> P<Span> {
        if self.is_p(p) {
            Ok(self.bump())
        } else {
            self.expected(&format!("`{p}` {context}"))
        }
    }

    fn ident(&mut self, what: &str) -> P<(String, Span)> {
        match self.peek().clone() {
            Tok::Ident(name) => Ok((name, self.bump())),
            Tok::Kw(k) => {
                let msg = format!("expected {what}, found the reserved word `{k}`");
                let s = self.span();
                self.error(s, msg)
            }
            _ => self.expected(what),
        }
    }

    fn enter(&mut self) -> P<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            let s = self.span();
            return self.error(
                s,
                format!("nesting too deep: more than {MAX_DEPTH} levels of blocks, parentheses or operators"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn give_up(&self) -> bool {
        self.errs.len() >= MAX_ERRORS
    }

    // ---- items ----

    fn program(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        while !matches!(self.peek(), Tok::Eof) && !self.give_up() {
            match self.item() {
                Ok(item) => items.push(item),
                Err(Reported) => self.sync_item(),
            }
        }
        items
    }

    /// Skips to the next token that can start an item, outside braces.
    fn sync_item(&mut self) {
        let mut depth = 0i32;
        loop {
            match self.peek() {
                Tok::Eof => return,
                Tok::Kw("kernel" | "fn" | "const") if depth <= 0 => return,
                Tok::P("{") => depth += 1,
                Tok::P("}") => depth -= 1,
                _ => {}
            }
            self.bump();
        }
    }

    fn item(&mut self) -> P<Item> {
        if self.is_kw("kernel") {
            self.bump();
            return Ok(Item::Kernel(self.fn_rest("kernel")?));
        }
        if self.is_kw("fn") {
            self.bump();
            return Ok(Item::Fn(self.fn_rest("function")?));
        }
        if self.is_kw("const") {
            self.bump();
            let (name, name_span) = self.ident("a name after `const`")?;
            self.expect_p("=", &format!("after `const {name}`"))?;
            let value = self.expr()?;
            self.expect_p(";", &format!("after the value of `{name}`"))?;
            return Ok(Item::Const {
                name,
                name_span,
                value,
            });
        }
        self.expected("`kernel`, `fn` or `const` at the top level")
    }

    fn fn_rest(&mut self, what: &str) -> P<FnDecl> {
        let (name, name_span) = self.ident(&format!("the {what}'s name"))?;
        self.expect_p("(", &format!("after the name of `{name}`"))?;
        let mut params = Vec::new();
        if !self.is_p(")") {
            loop {
                let (ty, ty_span) = self.type_name(&format!("a parameter type of `{name}`"))?;
                let (pname, pspan) = self.ident("a parameter name")?;
                params.push(ParamDecl {
                    ty,
                    ty_span,
                    name: pname,
                    name_span: pspan,
                });
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        self.expect_p(")", &format!("after the parameters of `{name}`"))?;
        let ret = if self.eat_p("->") {
            Some(self.type_name(&format!("the result type of `{name}`"))?)
        } else {
            None
        };
        if !self.is_p("{") {
            return self.expected(&format!("`{{` to start the body of `{name}`"));
        }
        let (body, end) = self.block()?;
        Ok(FnDecl {
            name,
            name_span,
            params,
            ret,
            body,
            end,
        })
    }

    /// A type: a type keyword or `tensor<E>`.
    fn type_name(&mut self, what: &str) -> P<(TypeName, Span)> {
        if let Tok::Kw(k) = *self.peek() {
            if let Some(t) = TypeName::from_keyword(k) {
                return Ok((t, self.bump()));
            }
            if k == "tensor" {
                let start = self.bump();
                self.expect_p("<", "after `tensor`")?;
                let elem = match self.peek() {
                    Tok::Kw("f32" | "float") => Elem::F32,
                    Tok::Kw("i32" | "int") => Elem::I32,
                    Tok::Kw("u32") => Elem::U32,
                    Tok::Ident(n) if n == "bf16" => Elem::Bf16,
                    _ => {
                        return self
                            .expected("a tensor element type (`f32`, `i32`, `u32` or `bf16`)");
                    }
                };
                self.bump();
                let end = self.expect_p(">", "after the tensor's element type")?;
                return Ok((TypeName::Tensor(elem), start.to(end)));
            }
        }
        self.expected(what)
    }

    // ---- statements ----

    /// `{ stmt* }`; returns the statements and the closing brace's span.
    fn block(&mut self) -> P<(Vec<Stmt>, Span)> {
        let open = self.expect_p("{", "to open a block")?;
        self.enter()?;
        let mut stmts = Vec::new();
        let result = loop {
            if self.is_p("}") {
                break Ok(self.bump());
            }
            if matches!(self.peek(), Tok::Eof) || self.give_up() {
                // An inner block already said the file ended too early.
                let at_end = self.span();
                if self.give_up() || self.errs.last().is_some_and(|e| e.span == at_end) {
                    break Err(Reported);
                }
                let (line, col, _) = crate::diag::line_col(self.src, open.start);
                break self.expected(&format!("`}}` to close the block opened at {line}:{col}"));
            }
            match self.stmt() {
                Ok(s) => stmts.push(s),
                Err(Reported) => self.sync_stmt(),
            }
        };
        self.leave();
        result.map(|end| (stmts, end))
    }

    /// Skips to the end of the broken statement: past a `;`, or up to the `}` that
    /// closes its block, brackets balanced.
    fn sync_stmt(&mut self) {
        let mut depth = 0i32;
        loop {
            match self.peek() {
                Tok::Eof => return,
                Tok::P(";") if depth <= 0 => {
                    self.bump();
                    return;
                }
                Tok::P("}") if depth <= 0 => return,
                Tok::P("(" | "[" | "{") => depth += 1,
                Tok::P(")" | "]" | "}") => depth -= 1,
                _ => {}
            }
            self.bump();
        }
    }

    fn stmt(&mut self) -> P<Stmt> {
        self.enter()?;
        let depth = self.depth;
        let r = self.stmt_inner();
        self.depth = depth;
        self.leave();
        r
    }

    fn stmt_inner(&mut self) -> P<Stmt> {
        let start = self.span();
        let kind = match self.peek().clone() {
            Tok::P("{") => StmtKind::Block(self.block()?.0),
            Tok::P(";") => {
                self.bump();
                StmtKind::Empty
            }
            Tok::Kw("if") => {
                self.bump();
                let cond = self.paren_cond("if")?;
                let then = Box::new(self.stmt()?);
                let otherwise = if self.is_kw("else") {
                    self.bump();
                    Some(Box::new(self.stmt()?))
                } else {
                    None
                };
                StmtKind::If {
                    cond,
                    then,
                    otherwise,
                }
            }
            Tok::Kw("where") => {
                self.bump();
                let mask = self.paren_cond("where")?;
                let then = Box::new(self.stmt()?);
                let otherwise = if self.is_kw("else") {
                    self.bump();
                    Some(Box::new(self.stmt()?))
                } else {
                    None
                };
                StmtKind::Where {
                    mask,
                    then,
                    otherwise,
                }
            }
            Tok::Kw("while") => {
                self.bump();
                let cond = self.paren_cond("while")?;
                let body = Box::new(self.stmt()?);
                StmtKind::While { cond, body }
            }
            Tok::Kw("for") => {
                self.bump();
                self.for_rest(false)?
            }
            Tok::Kw("unroll") => {
                self.bump();
                if !self.is_kw("for") {
                    return self.expected("`for` after `unroll`");
                }
                self.bump();
                self.for_rest(true)?
            }
            Tok::Kw("break") => {
                self.bump();
                self.expect_p(";", "after `break`")?;
                StmtKind::Break
            }
            Tok::Kw("continue") => {
                self.bump();
                self.expect_p(";", "after `continue`")?;
                StmtKind::Continue
            }
            Tok::Kw("return") => {
                self.bump();
                let value = if self.is_p(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect_p(";", "after the `return` statement")?;
                StmtKind::Return(value)
            }
            _ => {
                let kind = self.simple()?;
                let what = match &kind {
                    StmtKind::Decl { name, .. } => format!("after the declaration of `{name}`"),
                    StmtKind::Assign { .. } | StmtKind::IncDec { .. } => {
                        "after the assignment".to_string()
                    }
                    _ => "after the expression".to_string(),
                };
                self.expect_p(";", &what)?;
                kind
            }
        };
        Ok(Stmt {
            kind,
            span: start.to(self.prev_span()),
        })
    }

    fn paren_cond(&mut self, kw: &str) -> P<Expr> {
        self.expect_p("(", &format!("after `{kw}`"))?;
        let e = self.expr()?;
        let what = if kw == "where" { "mask" } else { "condition" };
        self.expect_p(")", &format!("after the {what} of `{kw}`"))?;
        Ok(e)
    }

    fn for_rest(&mut self, unroll: bool) -> P<StmtKind> {
        let kw = if unroll { "unroll for" } else { "for" };
        self.expect_p("(", &format!("after `{kw}`"))?;
        let init = if self.is_p(";") {
            None
        } else {
            let s = self.span();
            let kind = self.simple()?;
            Some(Box::new(Stmt {
                kind,
                span: s.to(self.prev_span()),
            }))
        };
        self.expect_p(";", &format!("after the initialisation of `{kw}`"))?;
        let cond = if self.is_p(";") {
            None
        } else {
            Some(self.expr()?)
        };
        self.expect_p(";", &format!("after the condition of `{kw}`"))?;
        let step = if self.is_p(")") {
            None
        } else {
            let s = self.span();
            let kind = self.simple()?;
            Some(Box::new(Stmt {
                kind,
                span: s.to(self.prev_span()),
            }))
        };
        self.expect_p(")", &format!("after the step of `{kw}`"))?;
        let body = Box::new(self.stmt()?);
        Ok(StmtKind::For {
            unroll,
            init,
            cond,
            step,
            body,
        })
    }

    /// A declaration, assignment, increment or expression, without its `;`.
    fn simple(&mut self) -> P<StmtKind> {
        let local = self.is_kw("local");
        let starts_type = match self.peek() {
            Tok::Kw("tensor") => true,
            Tok::Kw(k) => {
                TypeName::from_keyword(k).is_some() && !matches!(self.peek_at(1), Tok::P("("))
            }
            _ => false,
        };
        if local || starts_type {
            if local {
                self.bump();
            }
            let (ty, ty_span) = self.type_name("a type after `local`")?;
            let (name, name_span) = self.ident("a name for the variable")?;
            let len = if self.eat_p("[") {
                let n = self.expr()?;
                self.expect_p("]", &format!("after the length of `{name}`"))?;
                Some(n)
            } else {
                None
            };
            let init = if self.eat_p("=") {
                Some(self.expr()?)
            } else {
                None
            };
            return Ok(StmtKind::Decl {
                local,
                ty,
                ty_span,
                name,
                name_span,
                len,
                init,
            });
        }
        if self.is_p("++") || self.is_p("--") {
            let inc = self.is_p("++");
            self.bump();
            let place = self.unary()?;
            return Ok(StmtKind::IncDec { place, inc });
        }
        let e = self.expr()?;
        let op = match self.peek() {
            Tok::P("=") => Some(None),
            Tok::P("+=") => Some(Some(BinOp::Add)),
            Tok::P("-=") => Some(Some(BinOp::Sub)),
            Tok::P("*=") => Some(Some(BinOp::Mul)),
            Tok::P("/=") => Some(Some(BinOp::Div)),
            Tok::P("%=") => Some(Some(BinOp::Rem)),
            Tok::P("&=") => Some(Some(BinOp::And)),
            Tok::P("|=") => Some(Some(BinOp::Or)),
            Tok::P("^=") => Some(Some(BinOp::Xor)),
            Tok::P("<<=") => Some(Some(BinOp::Shl)),
            Tok::P(">>=") => Some(Some(BinOp::Shr)),
            Tok::P("++") | Tok::P("--") => {
                let inc = self.is_p("++");
                self.bump();
                return Ok(StmtKind::IncDec { place: e, inc });
            }
            _ => None,
        };
        match op {
            Some(op) => {
                let op_span = self.bump();
                let value = self.expr()?;
                Ok(StmtKind::Assign {
                    place: e,
                    op,
                    op_span,
                    value,
                })
            }
            None => Ok(StmtKind::Expr(e)),
        }
    }

    // ---- expressions ----

    /// An expression (`?:` and everything tighter).
    pub fn expr(&mut self) -> P<Expr> {
        self.enter()?;
        let depth = self.depth;
        let r = self.ternary();
        self.depth = depth;
        self.leave();
        r
    }

    fn ternary(&mut self) -> P<Expr> {
        let cond = self.binary(1)?;
        if !self.eat_p("?") {
            return Ok(cond);
        }
        let a = self.expr()?;
        self.expect_p(":", "after the first alternative of `?`")?;
        let b = self.expr()?;
        let span = cond.span.to(b.span);
        Ok(Expr {
            kind: ExprKind::Cond(Box::new(cond), Box::new(a), Box::new(b)),
            span,
        })
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let Tok::P(p) = self.peek() else {
            return None;
        };
        Some(match *p {
            "||" => (BinOp::LogOr, 1),
            "&&" => (BinOp::LogAnd, 2),
            "|" => (BinOp::Or, 3),
            "^" => (BinOp::Xor, 4),
            "&" => (BinOp::And, 5),
            "==" => (BinOp::Eq, 6),
            "!=" => (BinOp::Ne, 6),
            "<" => (BinOp::Lt, 7),
            "<=" => (BinOp::Le, 7),
            ">" => (BinOp::Gt, 7),
            ">=" => (BinOp::Ge, 7),
            "<<" => (BinOp::Shl, 8),
            ">>" => (BinOp::Shr, 8),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            "%" => (BinOp::Rem, 10),
            _ => return None,
        })
    }

    /// Precedence climbing: operators of level `min` and tighter, left-associative.
    /// Each operator of a chain nests the tree one level deeper, so it counts
    /// towards [`MAX_DEPTH`] like a parenthesis.
    fn binary(&mut self, min: u8) -> P<Expr> {
        let depth = self.depth;
        let r = self.binary_chain(min);
        self.depth = depth;
        r
    }

    fn binary_chain(&mut self, min: u8) -> P<Expr> {
        let mut lhs = self.unary()?;
        while let Some((op, level)) = self.binop() {
            if level < min {
                break;
            }
            self.enter()?;
            self.bump();
            let rhs = if level >= 10 {
                self.unary()?
            } else {
                self.binary(level + 1)?
            };
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> P<Expr> {
        let op = match self.peek() {
            Tok::P("-") => Some(UnOp::Neg),
            Tok::P("!") => Some(UnOp::Not),
            Tok::P("~") => Some(UnOp::BitNot),
            _ => None,
        };
        let Some(op) = op else {
            return self.postfix();
        };
        let start = self.bump();
        self.enter()?;
        let r = self.unary();
        self.leave();
        let e = r?;
        let span = start.to(e.span);
        Ok(Expr {
            kind: ExprKind::Unary(op, Box::new(e)),
            span,
        })
    }

    fn postfix(&mut self) -> P<Expr> {
        let depth = self.depth;
        let r = self.postfix_chain();
        self.depth = depth;
        r
    }

    fn postfix_chain(&mut self) -> P<Expr> {
        let mut e = self.primary()?;
        while self.eat_p("[") {
            self.enter()?;
            let idx = self.expr()?;
            let end = self.expect_p("]", "after the index")?;
            let span = e.span.to(end);
            e = Expr {
                kind: ExprKind::Index(Box::new(e), Box::new(idx)),
                span,
            };
        }
        Ok(e)
    }

    fn args(&mut self, callee: &str) -> P<(Vec<Expr>, Span)> {
        self.expect_p("(", &format!("after `{callee}`"))?;
        let mut args = Vec::new();
        if !self.is_p(")") {
            loop {
                args.push(self.expr()?);
                if !self.eat_p(",") {
                    break;
                }
            }
        }
        let end = self.expect_p(")", &format!("after the arguments of `{callee}`"))?;
        Ok((args, end))
    }

    fn primary(&mut self) -> P<Expr> {
        let start = self.span();
        let kind = match self.peek().clone() {
            Tok::Int { value, unsigned } => {
                self.bump();
                ExprKind::Int { value, unsigned }
            }
            Tok::Float(v) => {
                self.bump();
                ExprKind::Float(v)
            }
            Tok::Kw("true") => {
                self.bump();
                ExprKind::Bool(true)
            }
            Tok::Kw("false") => {
                self.bump();
                ExprKind::Bool(false)
            }
            Tok::Ident(name) => {
                self.bump();
                if self.is_p("(") {
                    let (args, end) = self.args(&name)?;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            name,
                            name_span: start,
                            args,
                        },
                        span: start.to(end),
                    });
                }
                ExprKind::Name(name)
            }
            Tok::Kw(k) if TypeName::from_keyword(k).is_some() => {
                let ty = TypeName::from_keyword(k).unwrap_or(TypeName::I32);
                self.bump();
                let (args, end) = self.args(k)?;
                return Ok(Expr {
                    kind: ExprKind::TypeCall { ty, args },
                    span: start.to(end),
                });
            }
            Tok::P("(") => {
                self.bump();
                let e = self.expr()?;
                let end = self.expect_p(")", "to close the parenthesis")?;
                return Ok(Expr {
                    kind: e.kind,
                    span: start.to(end),
                });
            }
            _ => return self.expected("an expression"),
        };
        Ok(Expr { kind, span: start })
    }
}

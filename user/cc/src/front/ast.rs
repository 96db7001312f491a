//! The syntax tree the parser builds: items, statements and expressions as written,
//! each with its span. Names are not resolved and nothing is typed yet (see `sema`).

use crate::span::Span;

/// A type as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    Bool,
    I32,
    U32,
    F32,
    F32x64,
    I32x64,
    Bf16x128,
    Mask,
    Int4,
    /// `tensor<E>`.
    Tensor(Elem),
}

/// A tensor's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    I32,
    U32,
    Bf16,
}

impl TypeName {
    /// The type name of the keyword `kw`, if it names a value type.
    pub fn from_keyword(kw: &str) -> Option<TypeName> {
        Some(match kw {
            "bool" => TypeName::Bool,
            "i32" | "int" => TypeName::I32,
            "u32" => TypeName::U32,
            "f32" | "float" => TypeName::F32,
            "f32x64" => TypeName::F32x64,
            "i32x64" => TypeName::I32x64,
            "bf16x128" => TypeName::Bf16x128,
            "mask" => TypeName::Mask,
            "int4" => TypeName::Int4,
            _ => return None,
        })
    }
}

/// A top-level declaration.
#[derive(Debug, Clone)]
pub enum Item {
    /// `kernel NAME(...) { ... }`.
    Kernel(FnDecl),
    /// `fn NAME(...) [-> TYPE] { ... }`.
    Fn(FnDecl),
    /// `const NAME = EXPR;`.
    Const {
        name: String,
        name_span: Span,
        value: Expr,
    },
}

/// A kernel or function.
#[derive(Debug, Clone)]
pub struct FnDecl {
    pub name: String,
    pub name_span: Span,
    pub params: Vec<ParamDecl>,
    /// The result type (`None`: returns nothing).
    pub ret: Option<(TypeName, Span)>,
    pub body: Vec<Stmt>,
    /// The closing brace of the body (where "missing return" points).
    pub end: Span,
}

/// One parameter.
#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub ty: TypeName,
    pub ty_span: Span,
    pub name: String,
    pub name_span: Span,
}

/// An assignment operator: `=` (`None`) or the binary operator of `op=`.
pub type AssignOp = Option<BinOp>;

/// A statement.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum StmtKind {
    /// `[local] TYPE NAME [ '[' N ']' ] [= EXPR];`
    Decl {
        local: bool,
        ty: TypeName,
        ty_span: Span,
        name: String,
        name_span: Span,
        len: Option<Expr>,
        init: Option<Expr>,
    },
    /// `PLACE op= EXPR;`
    Assign {
        place: Expr,
        op: AssignOp,
        op_span: Span,
        value: Expr,
    },
    /// `PLACE++;` / `PLACE--;` (also prefix).
    IncDec {
        place: Expr,
        inc: bool,
    },
    If {
        cond: Expr,
        then: Box<Stmt>,
        otherwise: Option<Box<Stmt>>,
    },
    While {
        cond: Expr,
        body: Box<Stmt>,
    },
    For {
        unroll: bool,
        init: Option<Box<Stmt>>,
        cond: Option<Expr>,
        step: Option<Box<Stmt>>,
        body: Box<Stmt>,
    },
    Where {
        mask: Expr,
        then: Box<Stmt>,
        otherwise: Option<Box<Stmt>>,
    },
    Break,
    Continue,
    Return(Option<Expr>),
    /// `EXPR;`
    Expr(Expr),
    Block(Vec<Stmt>),
    /// `;`
    Empty,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    LogAnd,
    LogOr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    /// The operator as written.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::And => "&",
            BinOp::Or => "|",
            BinOp::Xor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::LogAnd => "&&",
            BinOp::LogOr => "||",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }

    /// Whether it compares.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    BitNot,
}

/// An expression.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Int {
        value: u64,
        unsigned: bool,
    },
    Float(f32),
    Bool(bool),
    Name(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `NAME(ARGS)`: a function or built-in.
    Call {
        name: String,
        name_span: Span,
        args: Vec<Expr>,
    },
    /// `TYPE(ARGS)`: a conversion, broadcast or `int4(...)`.
    TypeCall {
        ty: TypeName,
        args: Vec<Expr>,
    },
    /// `BASE[INDEX]`.
    Index(Box<Expr>, Box<Expr>),
}

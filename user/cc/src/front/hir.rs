//! The checked program: every name resolved to a variable or function, every
//! expression typed, literals given their types, broadcasts and desugarings (compound
//! assignments, unary operators) made explicit, and each operator already chosen as
//! the IR operation that computes it. `lower` turns it into the IR without further
//! checks.

use super::ast::Elem;
use crate::ir;
use crate::span::Span;

/// A value type of the language (plus the non-values `Tensor` and `Void`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    Bool,
    I32,
    U32,
    F32,
    VF32,
    VI32,
    VBF16,
    Mask,
    Int4,
    /// A tensor argument (never a value: only `load`, `store`, `dim`, `t[c]` and
    /// function arguments use it).
    Tensor(Elem),
    /// What a call of something that returns nothing has.
    Void,
    /// The type of an expression that had an error (no further errors follow from it).
    Error,
}

impl Ty {
    /// The IR type of a value of this type (`I32` for the non-values).
    pub fn ir(self) -> ir::Type {
        match self {
            Ty::F32 => ir::Type::F32,
            Ty::VF32 => ir::Type::VF32,
            Ty::VI32 => ir::Type::VI32,
            Ty::VBF16 => ir::Type::VBF16,
            Ty::Mask => ir::Type::Mask,
            Ty::Int4 => ir::Type::Int4,
            _ => ir::Type::I32,
        }
    }

    /// The name the messages use.
    pub fn name(self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::I32 => "i32".into(),
            Ty::U32 => "u32".into(),
            Ty::F32 => "f32".into(),
            Ty::VF32 => "f32x64".into(),
            Ty::VI32 => "i32x64".into(),
            Ty::VBF16 => "bf16x128".into(),
            Ty::Mask => "mask".into(),
            Ty::Int4 => "int4".into(),
            Ty::Tensor(e) => format!(
                "tensor<{}>",
                match e {
                    Elem::F32 => "f32",
                    Elem::I32 => "i32",
                    Elem::U32 => "u32",
                    Elem::Bf16 => "bf16",
                }
            ),
            Ty::Void => "nothing".into(),
            Ty::Error => "{error}".into(),
        }
    }

    /// Whether values of this type live in vector registers.
    pub fn is_vector(self) -> bool {
        matches!(self, Ty::VF32 | Ty::VI32 | Ty::VBF16)
    }

    /// The lane type of `f32x64`/`i32x64`.
    pub fn lane(self) -> Option<Ty> {
        match self {
            Ty::VF32 => Some(Ty::F32),
            Ty::VI32 => Some(Ty::I32),
            _ => None,
        }
    }

    /// Whether a variable can hold it.
    pub fn is_value(self) -> bool {
        !matches!(self, Ty::Tensor(_) | Ty::Void | Ty::Error)
    }
}

/// A variable (or parameter, array, tensor or unroll counter), by index into
/// [`super::Program::vars`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

/// A function, by index into [`super::Program::fns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FnId(pub u32);

/// What a variable is.
#[derive(Debug, Clone, PartialEq)]
pub enum VarKind {
    /// A plain variable or parameter.
    Value,
    /// A register array of `len` elements.
    RegArray { len: u32 },
    /// A scratchpad array of `len` elements at byte `offset`.
    LocalArray { len: u32, offset: u32 },
    /// A tensor parameter.
    Tensor,
    /// The counter of an `unroll for`, with its value in each copy.
    Unroll { values: Vec<i32> },
}

/// A variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub name: String,
    /// Its type (the element type for arrays).
    pub ty: Ty,
    pub kind: VarKind,
    pub span: Span,
}

/// A typed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Ty,
    pub span: Span,
}

/// A compile-time index: an expression that is constant once `unroll` loops are
/// unrolled (checked to be in range for every copy).
pub type ConstIndex = Box<Expr>;

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// The bits of an `I32`/`U32`/`Bool` (0 or 1) or `F32`, or the all-lanes mask.
    Const(u32),
    /// A variable's value (an unroll counter reads as its constant).
    Var(VarId),
    /// An element of a register array.
    RegElem(VarId, ConstIndex),
    /// An element of a scratchpad array.
    LocalElem(VarId, Box<Expr>),
    /// One element of a 4-byte tensor at coordinates.
    TensorElem(VarId, Box<Expr>),
    /// Component `k` of an `int4`.
    Component(Box<Expr>, ConstIndex),
    /// A vector lane (`Extract`).
    Lane(Box<Expr>, Box<Expr>),
    /// An IR operation on the operands, with this expression's type as its result.
    Op(ir::Op, Vec<Expr>),
    /// `a && b` (short-circuit, `bool`).
    LogAnd(Box<Expr>, Box<Expr>),
    /// `a || b`.
    LogOr(Box<Expr>, Box<Expr>),
    /// `c ? a : b`, evaluating one side only.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `index(d)` or `size(d)` (`size` when the flag is set).
    Launch { size: bool, dim: ConstIndex },
    /// `dim(t, d)`.
    Dim(VarId, ConstIndex),
    /// `load(t, c)`.
    Load(VarId, Box<Expr>),
    /// `store(t, c, v)` (type `Void`).
    Store(VarId, Box<Expr>, Box<Expr>),
    /// Scalar `u32` to `f32` (the SG1 converts only signed scalars).
    U32ToF32(Box<Expr>),
    /// Scalar `f32` to `u32`, truncating and saturating, NaN giving 0.
    F32ToU32(Box<Expr>),
    /// Scalar unsigned minimum (`false`) or maximum (`true`).
    UMinMax(bool, Box<Expr>, Box<Expr>),
    /// A call of a function (inlined by `lower`). A tensor argument is a `Var`.
    Call(FnId, Vec<Expr>),
    /// Inside the value of a compound assignment: the place's value before it.
    PlaceValue,
}

/// What an assignment writes.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceRoot {
    Var(VarId),
    RegElem(VarId, ConstIndex),
    LocalElem(VarId, Box<Expr>),
    TensorElem(VarId, Box<Expr>),
}

/// A part of the root that an assignment writes.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceSub {
    /// An `int4` component.
    Component(ConstIndex),
    /// A vector lane.
    Lane(Box<Expr>),
}

/// An assignable place.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub root: PlaceRoot,
    /// The root's type.
    pub root_ty: Ty,
    pub sub: Option<PlaceSub>,
}

/// A checked statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// A variable, starting at `init` or zero.
    Decl {
        var: VarId,
        init: Option<Expr>,
    },
    /// A register array, all zero.
    RegArray {
        var: VarId,
    },
    /// `place = value` (`value` may read [`ExprKind::PlaceValue`]).
    Assign {
        place: Place,
        value: Expr,
    },
    /// An expression evaluated for its effect.
    Expr(Expr),
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    /// `for`/`while`: `cond` (none: forever), `body`, then `step`.
    Loop {
        cond: Option<Expr>,
        body: Vec<Stmt>,
        step: Vec<Stmt>,
    },
    /// A fully unrolled loop: `body` once per value of `var`.
    Unroll {
        var: VarId,
        body: Vec<Stmt>,
    },
    Where {
        mask: Expr,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
    },
    Break,
    Continue,
    Return(Option<Expr>),
    /// A nested scope.
    Block(Vec<Stmt>),
}

/// A checked function.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    pub params: Vec<VarId>,
    pub ret: Ty,
    pub body: Vec<Stmt>,
    pub span: Span,
}

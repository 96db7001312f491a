//! The SSA intermediate representation between the front end and the back end.
//!
//! A [`Function`] is one kernel: its arguments, the scratchpad bytes its `local` arrays
//! take, and a control-flow graph of basic blocks. Values are in SSA form with block
//! parameters instead of phi nodes (as Cranelift and MLIR do): a jump passes one value
//! per parameter of its target. Every value has one [`Type`], fixed when it is made.
//!
//! Instructions and values live in arenas owned by the function; a block lists its
//! instructions in order and ends in a [`Terminator`]. Passes edit the lists (an
//! instruction that is no longer in any block is dead and ignored; [`Function::compact`]
//! is not needed for correctness).
//!
//! Vector instructions may be *guarded* by a mask, the way the SG1 guards them with a
//! predicate register: the instruction acts on the lanes whose mask bit is set. The
//! lanes outside the guard of a guarded result take the lanes of its `passthru` value
//! if it has one, and are unspecified otherwise (a language rule keeps them from being
//! observed). A guarded store writes only the active lanes, a guarded load reads and
//! checks only those, a guarded reduction counts the others as its identity.
//!
//! The operations are the machine's, typed: each has one meaning for scalars and, where
//! the SG1 has it, one for vectors (the same [`Op`] on [`Type::VF32`] operands is the
//! lane-wise operation). Vector–scalar forms are written with an explicit
//! [`Op::Broadcast`]; instruction selection folds it into `vadds`/`vmuls`/`vmads`.
//! Each [`Op`]'s documentation gives its operands and result types; `verify` checks
//! them.
//!
//! The textual form (`print`) and the verifier (`verify`) are in submodules.

use std::fmt;

use crate::span::Span;

pub mod interp;
pub mod parse;
pub mod print;
pub mod verify;

/// The type of a value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Type {
    /// A 32-bit integer (signed or unsigned: the operation says). Also the type of
    /// scalar truth values: 0 is false, anything else true; comparisons give 0 or 1.
    I32,
    /// An IEEE binary32 float in a scalar register.
    F32,
    /// 64 lanes of f32.
    VF32,
    /// 64 lanes of i32.
    VI32,
    /// 128 bf16 elements packed two per lane (element `2i` in the low half of lane `i`).
    VBF16,
    /// One bit per lane: a predicate register.
    Mask,
    /// Four i32 tensor coordinates, held in four consecutive scalar registers.
    Int4,
}

impl Type {
    /// Whether values of this type live in vector registers.
    pub fn is_vector(self) -> bool {
        matches!(self, Type::VF32 | Type::VI32 | Type::VBF16)
    }

    /// Whether values of this type live in one scalar register.
    pub fn is_scalar(self) -> bool {
        matches!(self, Type::I32 | Type::F32)
    }

    /// The name in the textual form.
    pub fn name(self) -> &'static str {
        match self {
            Type::I32 => "i32",
            Type::F32 => "f32",
            Type::VF32 => "f32x64",
            Type::VI32 => "i32x64",
            Type::VBF16 => "bf16x128",
            Type::Mask => "mask",
            Type::Int4 => "int4",
        }
    }

    /// The lane type of a vector, the vector of a scalar lane type.
    pub fn lane(self) -> Option<Type> {
        match self {
            Type::VF32 => Some(Type::F32),
            Type::VI32 => Some(Type::I32),
            _ => None,
        }
    }

    /// The vector whose lanes are `self`.
    pub fn splat(self) -> Option<Type> {
        match self {
            Type::F32 => Some(Type::VF32),
            Type::I32 => Some(Type::VI32),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A comparison. Integer compares take [`Cond::Lt`]..[`Cond::Ge`] as signed and the
/// `u` forms as unsigned; float compares are ordered (false on NaN) except
/// [`Cond::Ne`], which is true on NaN, as `vcmp.ne.f32` is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cond {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Ltu,
    Leu,
    Gtu,
    Geu,
}

impl Cond {
    /// The name in the textual form.
    pub fn name(self) -> &'static str {
        match self {
            Cond::Eq => "eq",
            Cond::Ne => "ne",
            Cond::Lt => "lt",
            Cond::Le => "le",
            Cond::Gt => "gt",
            Cond::Ge => "ge",
            Cond::Ltu => "ltu",
            Cond::Leu => "leu",
            Cond::Gtu => "gtu",
            Cond::Geu => "geu",
        }
    }

    /// Whether the comparison is unsigned (integers only).
    pub fn is_unsigned(self) -> bool {
        matches!(self, Cond::Ltu | Cond::Leu | Cond::Gtu | Cond::Geu)
    }
}

/// An operation. Operands are the instruction's `args`, in the order given here;
/// immediates are fields. "int" means [`Type::I32`] or [`Type::VI32`] operands (all of
/// one type, the result's), "float" [`Type::F32`] or [`Type::VF32`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    /// A constant: the 32 bits of an `I32` or `F32` (the result type says which), or a
    /// [`Type::Mask`] with every lane set (`bits` ignored; the SG1's `p0`).
    Const(u32),
    /// A copy of `args[0]`. Guarded with a passthru it is a masked merge.
    Copy,

    // ---- integer (scalar or vector, wrapping) ----
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`, low 32 bits.
    Mul,
    /// Signed `a / b` (scalar only); faults on a zero divisor.
    Div,
    /// Unsigned `a / b` (scalar only); faults on a zero divisor.
    Divu,
    /// Signed remainder (scalar only); faults on a zero divisor.
    Rem,
    /// Unsigned remainder (scalar only); faults on a zero divisor.
    Remu,
    /// `a & b`.
    And,
    /// `a | b`.
    Or,
    /// `a ^ b`.
    Xor,
    /// `a << (b & 31)`.
    Shl,
    /// `a >> (b & 31)`, zeros shifted in.
    Shr,
    /// `a >> (b & 31)`, sign shifted in.
    Sra,
    /// Signed minimum.
    Min,
    /// Signed maximum.
    Max,
    /// Unsigned minimum (vector only).
    Minu,
    /// Unsigned maximum (vector only).
    Maxu,
    /// Integer compare: scalars give an `I32` 0 or 1, vectors a `Mask`.
    Icmp(Cond),

    // ---- float (scalar or vector) ----
    /// `a + b`.
    Fadd,
    /// `a - b`.
    Fsub,
    /// `a * b`.
    Fmul,
    /// `a / b`.
    Fdiv,
    /// Minimum, NaN-ignoring, `-0 < +0` (the SG1's `fmin`).
    Fmin,
    /// Maximum, as [`Op::Fmin`].
    Fmax,
    /// `a * b + c`, the product rounded before the add (not fused).
    Fmad,
    /// `-a` (sign flip).
    Fneg,
    /// `|a|` (sign clear).
    Fabs,
    /// Square root, correctly rounded.
    Fsqrt,
    /// The SG1's `exp`.
    Fexp,
    /// The SG1's `rsqrt`.
    Frsqrt,
    /// `1 / a`, correctly rounded.
    Frcp,
    /// Float compare: scalars give an `I32` 0 or 1, vectors a `Mask`.
    Fcmp(Cond),

    // ---- conversions ----
    /// Signed integer to f32 (`I32 → F32`, `VI32 → VF32`), round to nearest even.
    CvtF32I32,
    /// f32 to signed integer, truncating and saturating, NaN → 0.
    CvtI32F32,
    /// Unsigned integer to f32 (vector only).
    CvtF32U32,
    /// f32 to unsigned integer, truncating and saturating, NaN → 0 (vector only).
    CvtU32F32,
    /// The same bits as another type of the same register class (`I32 ↔ F32`,
    /// `VI32 ↔ VF32 ↔ VBF16`); the result type says which.
    Bitcast,

    // ---- selection and lanes ----
    /// `c ? a : b`. With an `I32` condition the operands are scalars; with a `Mask`
    /// they are vectors, chosen lane by lane.
    Select,
    /// A vector with every lane `a` (`I32 → VI32`, `F32 → VF32`).
    Broadcast,
    /// `VI32` with lane `i` = `i`.
    Iota,
    /// Lane `b & 63` of vector `a` (a scalar of the lane type).
    Extract,
    /// Vector `a` with lane `c & 63` replaced by scalar `b`.
    Insert,
    /// Lane `i` = `a[(i + b) & 63]`: rotation toward lane 0 by scalar `b`.
    Rotate,
    /// Lane `i` = `a[b[i] & 63]`, `b` a `VI32`.
    Permute,
    /// The sum of the lanes of an f32 or i32 vector, in the SG1's fixed tree order
    /// (guarded: inactive lanes count as the identity).
    RedAdd,
    /// The largest lane (as `vredmax`).
    RedMax,
    /// The smallest lane (as `vredmin`).
    RedMin,

    // ---- masks ----
    /// The first `a` lanes (unsigned; all 64 from 64 on): `pfirst`.
    Lanes,
    /// `a & b` of masks.
    MaskAnd,
    /// `a | b`.
    MaskOr,
    /// `a ^ b`.
    MaskXor,
    /// `!a`.
    MaskNot,
    /// The number of lanes set, an `I32`.
    MaskCount,

    // ---- packed 16-bit ----
    /// bf16 elements 0..=63 of a `VBF16`, widened to a `VF32`.
    UnpackLo,
    /// bf16 elements 64..=127.
    UnpackHi,
    /// Two `VF32` packed into a `VBF16` (`a` gives elements 0..=63), rounded.
    Pack,

    // ---- coordinates ----
    /// `Int4` from four `I32`.
    MakeInt4,
    /// Component `k` of an `Int4`.
    Int4Get(u8),
    /// `Int4` `a` with component `k` replaced by `I32` `b`.
    Int4Set(u8),

    // ---- the launch ----
    /// The invocation's coordinate along index-space dimension `d`.
    Idx(u8),
    /// The index space's size along dimension `d`.
    Idxn(u8),
    /// The number of the core running the invocation.
    CoreId,
    /// Scalar argument `i` (an `I32` or `F32` by the result type).
    Arg(u32),
    /// Size of the tensor in `slot` along dimension `dim`.
    Tdim { slot: u8, dim: u8 },

    // ---- memory ----
    /// A vector from tensor `slot` at `Int4` coordinates `a`: `VF32`/`VI32` from a
    /// 4-byte tensor (`ldt.b32`), `VBF16` from a 2-byte one (`ldt.b16`).
    LoadTensor { slot: u8 },
    /// Stores vector `b` to tensor `slot` at coordinates `a`. No result.
    StoreTensor { slot: u8 },
    /// One 4-byte element of tensor `slot` at coordinates `a` (`ldts.b32`).
    LoadTensorScalar { slot: u8 },
    /// Stores scalar `b` as the element at `a` (`stts.b32`). No result.
    StoreTensorScalar { slot: u8 },
    /// A scalar from scratchpad byte address `a + offset`.
    LoadScratch { offset: i32 },
    /// Stores scalar `b` at scratchpad byte address `a + offset`. No result.
    StoreScratch { offset: i32 },
    /// A vector from scratchpad bytes `a + offset + 4i` (lane `i`).
    LoadScratchVec { offset: i32 },
    /// Stores vector `b` at scratchpad bytes `a + offset + 4i`. No result.
    StoreScratchVec { offset: i32 },
}

impl Op {
    /// Whether the operation writes memory (and so has no result and is never removed,
    /// moved across another memory operation or merged with another).
    pub fn is_store(self) -> bool {
        matches!(
            self,
            Op::StoreTensor { .. }
                | Op::StoreTensorScalar { .. }
                | Op::StoreScratch { .. }
                | Op::StoreScratchVec { .. }
        )
    }

    /// Whether the operation reads memory (its result depends on the stores before it).
    pub fn is_load(self) -> bool {
        matches!(
            self,
            Op::LoadTensor { .. }
                | Op::LoadTensorScalar { .. }
                | Op::LoadScratch { .. }
                | Op::LoadScratchVec { .. }
        )
    }

    /// Whether executing the operation can fault (a zero divisor, a memory access out
    /// of range). Such an operation is never executed where the program would not
    /// execute it (no speculation), but one whose result is unused may be removed: the
    /// language documents that the fault goes with it.
    pub fn can_fault(self) -> bool {
        matches!(self, Op::Div | Op::Divu | Op::Rem | Op::Remu) || self.is_load() || self.is_store()
    }

    /// Whether the operation may take a guard (it acts on vector lanes, or writes a
    /// mask lane by lane, or reads lanes as a reduction does). The SG1 guards every
    /// vector instruction except lane extraction and insertion.
    pub fn is_guardable(self) -> bool {
        matches!(
            self,
            Op::LoadTensor { .. }
                | Op::StoreTensor { .. }
                | Op::LoadScratchVec { .. }
                | Op::StoreScratchVec { .. }
                | Op::RedAdd
                | Op::RedMax
                | Op::RedMin
        ) || self.is_lanewise()
    }

    /// Whether the operation can act lane by lane on vectors (and then be guarded).
    fn is_lanewise(self) -> bool {
        matches!(
            self,
            Op::Copy
                | Op::Add
                | Op::Sub
                | Op::Mul
                | Op::And
                | Op::Or
                | Op::Xor
                | Op::Shl
                | Op::Shr
                | Op::Sra
                | Op::Min
                | Op::Max
                | Op::Minu
                | Op::Maxu
                | Op::Icmp(_)
                | Op::Fadd
                | Op::Fsub
                | Op::Fmul
                | Op::Fdiv
                | Op::Fmin
                | Op::Fmax
                | Op::Fmad
                | Op::Fneg
                | Op::Fabs
                | Op::Fsqrt
                | Op::Fexp
                | Op::Frsqrt
                | Op::Frcp
                | Op::Fcmp(_)
                | Op::CvtF32I32
                | Op::CvtI32F32
                | Op::CvtF32U32
                | Op::CvtU32F32
                | Op::Select
                | Op::Broadcast
                | Op::Iota
                | Op::Rotate
                | Op::Permute
                | Op::UnpackLo
                | Op::UnpackHi
                | Op::Pack
        )
    }
}

/// A value: the result of an instruction or a block parameter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Value(pub u32);

/// A basic block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Block(pub u32);

/// An instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Inst(pub u32);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Where a value comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueDef {
    /// The result of an instruction.
    Inst(Inst),
    /// Parameter `index` of a block.
    Param(Block, u32),
}

/// A value's type and origin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ValueData {
    /// Its type.
    pub ty: Type,
    /// Where it is defined.
    pub def: ValueDef,
}

/// A guard: the lanes an instruction acts on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Guard {
    /// A [`Type::Mask`] value.
    pub mask: Value,
    /// Act on the lanes whose bit is clear instead.
    pub negated: bool,
}

/// One instruction.
#[derive(Clone, PartialEq, Debug)]
pub struct InstData {
    /// The operation.
    pub op: Op,
    /// The operands, in the order [`Op`] documents.
    pub args: Vec<Value>,
    /// The result, for every operation but stores.
    pub result: Option<Value>,
    /// The lanes it acts on (guardable operations only).
    pub guard: Option<Guard>,
    /// For a guarded instruction with a vector or mask result: the value whose lanes
    /// the inactive lanes of the result take. Without it they are unspecified.
    pub passthru: Option<Value>,
    /// The source it was compiled from, for diagnostics and listings.
    pub span: Span,
}

/// The end of a block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Terminator {
    /// Go to `0`, passing the values to its parameters.
    Jump(Target),
    /// Go to `then` if the `I32` `cond` is nonzero, else to `otherwise`.
    Branch {
        cond: Value,
        then: Target,
        otherwise: Target,
    },
    /// End the invocation.
    Halt,
}

/// A jump target with the values for its parameters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Target {
    /// The block.
    pub block: Block,
    /// One value per parameter of `block`.
    pub args: Vec<Value>,
}

impl Target {
    /// `block` with `args`.
    pub fn new(block: Block, args: Vec<Value>) -> Target {
        Target { block, args }
    }
}

/// A basic block: parameters, instructions, terminator.
#[derive(Clone, PartialEq, Debug)]
pub struct BlockData {
    /// Its parameters (SSA phis).
    pub params: Vec<Value>,
    /// Its instructions, in order.
    pub insts: Vec<Inst>,
    /// How it ends. A block under construction ends in [`Terminator::Halt`].
    pub term: Terminator,
}

/// The kind of a kernel argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParamKind {
    /// A tensor of 4-byte f32 elements.
    TensorF32,
    /// A tensor of 4-byte i32 elements.
    TensorI32,
    /// A tensor of 4-byte u32 elements.
    TensorU32,
    /// A tensor of bf16 elements.
    TensorBf16,
    /// A scalar i32.
    I32,
    /// A scalar u32.
    U32,
    /// A scalar f32.
    F32,
}

impl ParamKind {
    /// Whether this is a tensor.
    pub fn is_tensor(self) -> bool {
        matches!(
            self,
            ParamKind::TensorF32
                | ParamKind::TensorI32
                | ParamKind::TensorU32
                | ParamKind::TensorBf16
        )
    }
}

/// A kernel argument: tensors take slots `t0, t1, ...` and scalars `ldarg` indices
/// `0, 1, ...`, each in declaration order among their kind.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: ParamKind,
}

/// One kernel.
#[derive(Clone, PartialEq, Debug)]
pub struct Function {
    /// The kernel's name.
    pub name: String,
    /// Its arguments, in declaration order.
    pub params: Vec<Param>,
    /// Scratchpad bytes the kernel's `local` arrays take, from address 0. The back end
    /// puts its spill slots after them.
    pub scratch_bytes: u32,
    /// Blocks, by [`Block`] index.
    pub blocks: Vec<BlockData>,
    /// Instructions, by [`Inst`] index.
    pub insts: Vec<InstData>,
    /// Values, by [`Value`] index.
    pub values: Vec<ValueData>,
    /// Where invocations start (it has no parameters).
    pub entry: Block,
}

impl Function {
    /// An empty kernel with an entry block that halts.
    pub fn new(name: impl Into<String>, params: Vec<Param>) -> Function {
        let mut f = Function {
            name: name.into(),
            params,
            scratch_bytes: 0,
            blocks: Vec::new(),
            insts: Vec::new(),
            values: Vec::new(),
            entry: Block(0),
        };
        f.entry = f.add_block();
        f
    }

    /// Adds an empty block that halts.
    pub fn add_block(&mut self) -> Block {
        self.blocks.push(BlockData {
            params: Vec::new(),
            insts: Vec::new(),
            term: Terminator::Halt,
        });
        Block(self.blocks.len() as u32 - 1)
    }

    /// Adds a parameter of type `ty` to `block`.
    pub fn add_block_param(&mut self, block: Block, ty: Type) -> Value {
        let index = self.blocks[block.0 as usize].params.len() as u32;
        let v = self.new_value(ty, ValueDef::Param(block, index));
        self.blocks[block.0 as usize].params.push(v);
        v
    }

    fn new_value(&mut self, ty: Type, def: ValueDef) -> Value {
        self.values.push(ValueData { ty, def });
        Value(self.values.len() as u32 - 1)
    }

    /// Creates an instruction (not yet in any block) with a result of type `ty` if
    /// given. Use [`Function::append`] or [`Function::insert`] to place it.
    pub fn create_inst(
        &mut self,
        op: Op,
        args: Vec<Value>,
        ty: Option<Type>,
        guard: Option<Guard>,
        passthru: Option<Value>,
        span: Span,
    ) -> Inst {
        let inst = Inst(self.insts.len() as u32);
        let result = ty.map(|ty| self.new_value(ty, ValueDef::Inst(inst)));
        self.insts.push(InstData {
            op,
            args,
            result,
            guard,
            passthru,
            span,
        });
        inst
    }

    /// Appends a new instruction to `block` and returns its result (if any).
    pub fn append(
        &mut self,
        block: Block,
        op: Op,
        args: Vec<Value>,
        ty: Option<Type>,
        span: Span,
    ) -> Option<Value> {
        let inst = self.create_inst(op, args, ty, None, None, span);
        self.blocks[block.0 as usize].insts.push(inst);
        self.insts[inst.0 as usize].result
    }

    /// Appends a guarded instruction to `block`.
    #[allow(clippy::too_many_arguments)]
    pub fn append_guarded(
        &mut self,
        block: Block,
        op: Op,
        args: Vec<Value>,
        ty: Option<Type>,
        guard: Option<Guard>,
        passthru: Option<Value>,
        span: Span,
    ) -> Option<Value> {
        let inst = self.create_inst(op, args, ty, guard, passthru, span);
        self.blocks[block.0 as usize].insts.push(inst);
        self.insts[inst.0 as usize].result
    }

    /// Inserts an existing (unplaced) instruction at position `at` of `block`.
    pub fn insert(&mut self, block: Block, at: usize, inst: Inst) {
        self.blocks[block.0 as usize].insts.insert(at, inst);
    }

    /// The block's data.
    pub fn block(&self, b: Block) -> &BlockData {
        &self.blocks[b.0 as usize]
    }

    /// The block's data, to edit.
    pub fn block_mut(&mut self, b: Block) -> &mut BlockData {
        &mut self.blocks[b.0 as usize]
    }

    /// The instruction's data.
    pub fn inst(&self, i: Inst) -> &InstData {
        &self.insts[i.0 as usize]
    }

    /// The instruction's data, to edit.
    pub fn inst_mut(&mut self, i: Inst) -> &mut InstData {
        &mut self.insts[i.0 as usize]
    }

    /// A value's type.
    pub fn ty(&self, v: Value) -> Type {
        self.values[v.0 as usize].ty
    }

    /// Where a value is defined.
    pub fn def(&self, v: Value) -> ValueDef {
        self.values[v.0 as usize].def
    }

    /// The instruction defining `v`, if it is not a block parameter.
    pub fn def_inst(&self, v: Value) -> Option<Inst> {
        match self.def(v) {
            ValueDef::Inst(i) => Some(i),
            ValueDef::Param(..) => None,
        }
    }

    /// The constant bits of `v`, if an [`Op::Const`] defines it.
    pub fn as_const(&self, v: Value) -> Option<u32> {
        let i = self.def_inst(v)?;
        match self.inst(i).op {
            Op::Const(bits) => Some(bits),
            _ => None,
        }
    }

    /// The blocks `b` can jump to.
    pub fn successors(&self, b: Block) -> Vec<Block> {
        match &self.block(b).term {
            Terminator::Jump(t) => vec![t.block],
            Terminator::Branch {
                then, otherwise, ..
            } => vec![then.block, otherwise.block],
            Terminator::Halt => Vec::new(),
        }
    }

    /// Every value an instruction reads: its args, its guard's mask and its passthru.
    pub fn inst_uses(&self, i: Inst) -> Vec<Value> {
        let d = self.inst(i);
        let mut uses = d.args.clone();
        if let Some(g) = d.guard {
            uses.push(g.mask);
        }
        if let Some(p) = d.passthru {
            uses.push(p);
        }
        uses
    }

    /// Every value a terminator reads.
    pub fn term_uses(&self, b: Block) -> Vec<Value> {
        match &self.block(b).term {
            Terminator::Jump(t) => t.args.clone(),
            Terminator::Branch {
                cond,
                then,
                otherwise,
            } => std::iter::once(*cond)
                .chain(then.args.iter().copied())
                .chain(otherwise.args.iter().copied())
                .collect(),
            Terminator::Halt => Vec::new(),
        }
    }

    /// Replaces every use of `from` (in instructions, guards, passthrus and
    /// terminators of the blocks) by `to`.
    pub fn replace_uses(&mut self, from: Value, to: Value) {
        self.map_uses(|v| {
            if *v == from {
                *v = to;
            }
        });
    }

    /// Calls `edit` on every use of a value by the placed instructions (operands,
    /// guards, passthrus) and by the terminators.
    pub fn map_uses(&mut self, mut edit: impl FnMut(&mut Value)) {
        for b in 0..self.blocks.len() {
            for k in 0..self.blocks[b].insts.len() {
                let i = self.blocks[b].insts[k].0 as usize;
                let Some(d) = self.insts.get_mut(i) else {
                    continue;
                };
                d.args.iter_mut().for_each(&mut edit);
                if let Some(g) = &mut d.guard {
                    edit(&mut g.mask);
                }
                if let Some(p) = &mut d.passthru {
                    edit(p);
                }
            }
            match &mut self.blocks[b].term {
                Terminator::Jump(t) => t.args.iter_mut().for_each(&mut edit),
                Terminator::Branch {
                    cond,
                    then,
                    otherwise,
                } => {
                    edit(cond);
                    then.args.iter_mut().for_each(&mut edit);
                    otherwise.args.iter_mut().for_each(&mut edit);
                }
                Terminator::Halt => {}
            }
        }
    }

    /// The blocks reachable from the entry, in reverse post-order (a block before its
    /// successors, loops aside).
    pub fn reverse_postorder(&self) -> Vec<Block> {
        let mut seen = vec![false; self.blocks.len()];
        let mut post = Vec::with_capacity(self.blocks.len());
        // Iterative DFS: (block, next successor index).
        let mut stack = vec![(self.entry, 0usize)];
        seen[self.entry.0 as usize] = true;
        while let Some(&mut (b, ref mut next)) = stack.last_mut() {
            let succs = self.successors(b);
            if let Some(&s) = succs.get(*next) {
                *next += 1;
                if !seen[s.0 as usize] {
                    seen[s.0 as usize] = true;
                    stack.push((s, 0));
                }
            } else {
                post.push(b);
                stack.pop();
            }
        }
        post.reverse();
        post
    }
}

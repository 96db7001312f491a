//! Operand kinds: what an instruction's operands can be, and how each one sits in the
//! instruction word.
//!
//! Register-like operands (`SReg`, `VReg`, `PReg`, `TReg`, `CReg`) take the next free
//! 5-bit register slot, in the order the table lists them; immediate-like operands
//! (`Imm`, `Bits`, `Lane`, `Dim`, `Off`) take the 32-bit immediate field. No
//! instruction has more than four register slots or more than one immediate (a unit
//! test checks the table).

use std::fmt;

/// Where an operand is encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Field {
    /// The next 5-bit register slot.
    Slot,
    /// The 32-bit immediate.
    Imm,
}

/// An operand kind: its field, its range, and its assembly form.
pub trait Operand: Copy + Eq + fmt::Debug + fmt::Display {
    /// The kind, as the documentation and assembler messages name it.
    const KIND: OperandKind;
    /// The raw field value.
    fn to_field(self) -> u32;
    /// The operand a raw field value encodes, or `None` if the value is out of range.
    fn from_field(raw: u32) -> Option<Self>;
}

/// The kinds, as values (for tables, documentation and the assembler).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OperandKind {
    /// A scalar register `s0`..`s31`.
    SReg,
    /// A vector register `v0`..`v31`.
    VReg,
    /// A predicate register `p0`..`p7`.
    PReg,
    /// A tensor slot `t0`..`t15`.
    TReg,
    /// The first of four consecutive scalar registers holding tensor coordinates,
    /// `s0`..`s28`.
    CReg,
    /// A signed 32-bit integer.
    Imm,
    /// 32 raw bits: an integer, or an `f32` written as a float literal.
    Bits,
    /// A lane number, 0..=63.
    Lane,
    /// An index-space or tensor dimension, 0..=3.
    Dim,
    /// A branch target: a signed offset in instructions from the branch itself.
    Off,
}

impl OperandKind {
    /// Where the kind is encoded.
    pub const fn field(self) -> Field {
        match self {
            Self::SReg | Self::VReg | Self::PReg | Self::TReg | Self::CReg => Field::Slot,
            Self::Imm | Self::Bits | Self::Lane | Self::Dim | Self::Off => Field::Imm,
        }
    }

    /// What the documentation calls the kind.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SReg => "scalar register (`s0`–`s31`)",
            Self::VReg => "vector register (`v0`–`v31`)",
            Self::PReg => "predicate register (`p0`–`p7`)",
            Self::TReg => "tensor slot (`t0`–`t15`)",
            Self::CReg => "coordinate registers: `sN` stands for `sN`..`sN+3` (`s0`–`s28`)",
            Self::Imm => "signed 32-bit immediate",
            Self::Bits => "32-bit immediate (an integer, or an f32 written as a float)",
            Self::Lane => "lane number (0–63)",
            Self::Dim => "dimension (0–3)",
            Self::Off => "branch target (a label)",
        }
    }
}

macro_rules! register_operand {
    ($(#[$doc:meta])* $name:ident, $kind:ident, $prefix:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
        pub struct $name(pub u8);

        impl $name {
            /// The largest register number.
            pub const MAX: u8 = $max;
            /// The assembly prefix letter.
            pub const PREFIX: char = $prefix;
        }

        impl Operand for $name {
            const KIND: OperandKind = OperandKind::$kind;
            fn to_field(self) -> u32 {
                u32::from(self.0)
            }
            fn from_field(raw: u32) -> Option<Self> {
                (raw <= $max).then_some(Self(raw as u8))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

register_operand!(
    /// A scalar register. `s0` reads as zero; writes to it are discarded.
    SReg, SReg, 's', 31
);
register_operand!(
    /// A vector register of 64 lanes of 32 bits.
    VReg, VReg, 'v', 31
);
register_operand!(
    /// A predicate register of 64 bits, one per lane. `p0` reads as all ones; writes
    /// to it are discarded.
    PReg, PReg, 'p', 7
);
register_operand!(
    /// A tensor slot: the n-th tensor argument of the launch.
    TReg, TReg, 't', 15
);
register_operand!(
    /// Four consecutive scalar registers `sN`..`sN+3` holding the coordinates of a
    /// tensor element (dimension 0 first).
    CReg, CReg, 's', 28
);

/// A signed 32-bit immediate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Imm(pub i32);

impl Operand for Imm {
    const KIND: OperandKind = OperandKind::Imm;
    fn to_field(self) -> u32 {
        self.0 as u32
    }
    fn from_field(raw: u32) -> Option<Self> {
        Some(Self(raw as i32))
    }
}

impl fmt::Display for Imm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// 32 raw bits, as `li` loads them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Bits(pub u32);

impl Operand for Bits {
    const KIND: OperandKind = OperandKind::Bits;
    fn to_field(self) -> u32 {
        self.0
    }
    fn from_field(raw: u32) -> Option<Self> {
        Some(Self(raw))
    }
}

impl fmt::Display for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hexadecimal above the small integers, so a float's bits read as bits.
        if self.0 < 0x1_0000 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:#010x}", self.0)
        }
    }
}

/// A lane number, 0..=63.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Lane(pub u8);

impl Operand for Lane {
    const KIND: OperandKind = OperandKind::Lane;
    fn to_field(self) -> u32 {
        u32::from(self.0)
    }
    fn from_field(raw: u32) -> Option<Self> {
        (raw < crate::LANES as u32).then_some(Self(raw as u8))
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A dimension, 0..=3.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Dim(pub u8);

impl Operand for Dim {
    const KIND: OperandKind = OperandKind::Dim;
    fn to_field(self) -> u32 {
        u32::from(self.0)
    }
    fn from_field(raw: u32) -> Option<Self> {
        (raw < crate::DIMS as u32).then_some(Self(raw as u8))
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A branch offset in instructions, relative to the branch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Off(pub i32);

impl Operand for Off {
    const KIND: OperandKind = OperandKind::Off;
    fn to_field(self) -> u32 {
        self.0 as u32
    }
    fn from_field(raw: u32) -> Option<Self> {
        Some(Self(raw as i32))
    }
}

impl fmt::Display for Off {
    /// Without a label table: `pc+N` / `pc-N`, which the assembler also reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "pc-{}", self.0.unsigned_abs())
        } else {
            write!(f, "pc+{}", self.0)
        }
    }
}

/// The guard of a predicable instruction: the lanes it acts on are those where the
/// predicate register is set (or clear, when negated). `@p0`, the default, is every
/// lane.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Guard {
    /// The predicate register.
    pub p: PReg,
    /// Act where the predicate is clear.
    pub negate: bool,
}

impl Guard {
    /// Every lane.
    pub const ALWAYS: Guard = Guard {
        p: PReg(0),
        negate: false,
    };

    /// Whether this is the default guard (every lane), written without `@`.
    pub fn is_always(self) -> bool {
        self == Self::ALWAYS
    }

    /// The 4-bit guard field.
    pub fn to_field(self) -> u32 {
        u32::from(self.p.0) | (u32::from(self.negate) << 3)
    }

    /// The guard a 4-bit field encodes.
    pub fn from_field(raw: u32) -> Guard {
        Guard {
            p: PReg((raw & 7) as u8),
            negate: raw & 8 != 0,
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}{}", if self.negate { "!" } else { "" }, self.p)
    }
}

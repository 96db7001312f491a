//! Instructions: the enum, the opcode list and the 64-bit encoding, all generated from
//! [`for_each_op!`](crate::for_each_op).
//!
//! # Encoding
//!
//! Every instruction is one little-endian 64-bit word:
//!
//! | bits  | field                                                          |
//! |-------|----------------------------------------------------------------|
//! | 7:0   | opcode                                                         |
//! | 10:8  | guard predicate register (predicable instructions, else 0)     |
//! | 11    | guard negation (predicable instructions, else 0)               |
//! | 16:12 | register slot 0                                                |
//! | 21:17 | register slot 1                                                |
//! | 26:22 | register slot 2                                                |
//! | 31:27 | register slot 3                                                |
//! | 63:32 | immediate                                                      |
//!
//! Register operands fill the slots in operand order; the immediate operand, if any,
//! fills bits 63:32. Every field an instruction does not use must be zero, and every
//! field it uses must be in its operand's range: anything else is an illegal
//! encoding. So each legal word decodes to exactly one instruction and encodes back
//! to the same word.

use std::fmt;

#[allow(unused_imports)] // the table names all of them
use crate::operand::{Bits, CReg, Dim, Imm, Lane, Off, PReg, SReg, TReg, VReg};
use crate::operand::{Field, Guard, Operand, OperandKind};

/// One operand of an instruction, as the table declares it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OperandInfo {
    /// Its name in the table (`sd`, `va`, `imm`, ...).
    pub name: &'static str,
    /// Its kind.
    pub kind: OperandKind,
}

impl OperandInfo {
    /// Whether the instruction writes it (its name ends in `d`).
    pub fn is_written(&self) -> bool {
        self.name.ends_with('d')
    }
}

/// Why a word is not an instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    /// No instruction has the opcode.
    #[error("unknown opcode {opcode:#04x} in {word:#018x}")]
    UnknownOpcode {
        /// The opcode byte.
        opcode: u8,
        /// The whole word.
        word: u64,
    },
    /// A field the instruction does not use is not zero.
    #[error("{mnemonic} has nonzero unused bits {bits:#018x} in {word:#018x}")]
    UnusedBits {
        /// The instruction.
        mnemonic: &'static str,
        /// The offending bits.
        bits: u64,
        /// The whole word.
        word: u64,
    },
    /// An operand's field is outside its range.
    #[error("{mnemonic} operand {operand} has out-of-range value {value} in {word:#018x}")]
    OperandRange {
        /// The instruction.
        mnemonic: &'static str,
        /// The operand's name.
        operand: &'static str,
        /// The field's value.
        value: u32,
        /// The whole word.
        word: u64,
    },
}

const GUARD_SHIFT: u32 = 8;
const SLOT_SHIFT: [u32; 4] = [12, 17, 22, 27];
const SLOT_MASK: u64 = 0x1f;
const IMM_SHIFT: u32 = 32;

/// Packs operands into a word, in table order.
struct Packer {
    word: u64,
    slot: usize,
}

impl Packer {
    fn new(opcode: u8, guard: Guard) -> Self {
        Packer {
            word: u64::from(opcode) | (u64::from(guard.to_field()) << GUARD_SHIFT),
            slot: 0,
        }
    }

    fn put<T: Operand>(&mut self, v: T) {
        let raw = u64::from(v.to_field());
        match T::KIND.field() {
            Field::Slot => {
                self.word |= raw << SLOT_SHIFT[self.slot];
                self.slot += 1;
            }
            Field::Imm => self.word |= raw << IMM_SHIFT,
        }
    }
}

/// Unpacks operands from a word, in table order, remembering which bits it used.
struct Unpacker {
    word: u64,
    used: u64,
    slot: usize,
    mnemonic: &'static str,
}

impl Unpacker {
    fn take<T: Operand>(&mut self, name: &'static str) -> Result<T, DecodeError> {
        let raw = match T::KIND.field() {
            Field::Slot => {
                let shift = SLOT_SHIFT[self.slot];
                self.slot += 1;
                self.used |= SLOT_MASK << shift;
                ((self.word >> shift) & SLOT_MASK) as u32
            }
            Field::Imm => {
                self.used |= 0xffff_ffff << IMM_SHIFT;
                (self.word >> IMM_SHIFT) as u32
            }
        };
        T::from_field(raw).ok_or(DecodeError::OperandRange {
            mnemonic: self.mnemonic,
            operand: name,
            value: raw,
            word: self.word,
        })
    }
}

macro_rules! define_insts {
    ($(
        $(#[doc = $doc:literal])*
        $code:literal $name:ident $mnemonic:literal $pred:literal { $($field:ident : $kind:ident),* };
    )*) => {
        /// An instruction without its guard: the operation and its operands.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum Op {
            $(
                $(#[doc = $doc])*
                $name { $(
                    #[allow(missing_docs)]
                    $field: $kind
                ),* },
            )*
        }

        /// The opcodes, one per instruction.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        #[repr(u8)]
        pub enum Opcode {
            $(
                $(#[doc = $doc])*
                $name = $code,
            )*
        }

        impl Opcode {
            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name),*];

            /// The opcode with this byte, if any.
            pub fn from_u8(byte: u8) -> Option<Opcode> {
                match byte {
                    $($code => Some(Opcode::$name),)*
                    _ => None,
                }
            }

            /// The assembly mnemonic.
            pub fn mnemonic(self) -> &'static str {
                match self {
                    $(Opcode::$name => $mnemonic,)*
                }
            }

            /// Whether the instruction takes a guard.
            pub fn predicable(self) -> bool {
                match self {
                    $(Opcode::$name => $pred,)*
                }
            }

            /// The operands, in assembly order.
            pub fn operands(self) -> &'static [OperandInfo] {
                match self {
                    $(Opcode::$name => &[$(OperandInfo {
                        name: stringify!($field),
                        kind: <$kind as Operand>::KIND,
                    }),*],)*
                }
            }

            /// The table's documentation: a summary line, then the semantics.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Opcode::$name => concat!($($doc, "\n"),*),)*
                }
            }
        }

        impl Op {
            /// The instruction's opcode.
            pub fn opcode(&self) -> Opcode {
                match self {
                    $(Op::$name { .. } => Opcode::$name,)*
                }
            }

            /// The operands' assembly forms, in order (branch targets as `pc+N`).
            pub fn operand_texts(&self) -> Vec<String> {
                match *self {
                    $(Op::$name { $($field),* } => vec![$($field.to_string()),*],)*
                }
            }

            fn pack(&self, guard: Guard) -> u64 {
                match *self {
                    $(Op::$name { $($field),* } => {
                        #[allow(unused_mut)]
                        let mut p = Packer::new($code, guard);
                        $(p.put($field);)*
                        p.word
                    })*
                }
            }

            fn unpack(opcode: Opcode, u: &mut Unpacker) -> Result<Op, DecodeError> {
                Ok(match opcode {
                    $(Opcode::$name => Op::$name {
                        $($field: u.take::<$kind>(stringify!($field))?),*
                    },)*
                })
            }
        }
    };
}

crate::for_each_op!(define_insts);

/// An instruction: an operation and, for predicable ones, its guard.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Inst {
    /// The lanes it acts on; [`Guard::ALWAYS`] for instructions that take none.
    pub guard: Guard,
    /// The operation.
    pub op: Op,
}

impl From<Op> for Inst {
    fn from(op: Op) -> Inst {
        Inst {
            guard: Guard::ALWAYS,
            op,
        }
    }
}

impl Inst {
    /// A guarded instruction. The guard of one that takes none must be
    /// [`Guard::ALWAYS`]; [`Inst::encode`] would otherwise produce an illegal word.
    pub fn guarded(guard: Guard, op: Op) -> Inst {
        Inst { guard, op }
    }

    /// The instruction word.
    pub fn encode(&self) -> u64 {
        self.op.pack(self.guard)
    }

    /// The instruction a word encodes.
    pub fn decode(word: u64) -> Result<Inst, DecodeError> {
        let byte = word as u8;
        let opcode =
            Opcode::from_u8(byte).ok_or(DecodeError::UnknownOpcode { opcode: byte, word })?;
        let mnemonic = opcode.mnemonic();
        let mut u = Unpacker {
            word,
            used: 0xff,
            slot: 0,
            mnemonic,
        };
        let guard_field = 0xf << GUARD_SHIFT;
        if opcode.predicable() {
            u.used |= guard_field;
        }
        let op = Op::unpack(opcode, &mut u)?;
        let unused = word & !u.used;
        if unused != 0 {
            return Err(DecodeError::UnusedBits {
                mnemonic,
                bits: unused,
                word,
            });
        }
        Ok(Inst {
            guard: Guard::from_field(((word >> GUARD_SHIFT) & 0xf) as u32),
            op,
        })
    }

    /// Whether encoding it gives a legal word: a guard only on a predicable
    /// instruction.
    pub fn is_legal(&self) -> bool {
        self.guard.is_always() || self.op.opcode().predicable()
    }
}

impl fmt::Display for Inst {
    /// The assembly form, with branch targets as `pc+N` / `pc-N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.guard.is_always() {
            write!(f, "{} ", self.guard)?;
        }
        f.write_str(self.op.opcode().mnemonic())?;
        for (i, text) in self.op.operand_texts().iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            f.write_str(text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_fits_the_word() {
        for &op in Opcode::ALL {
            let slots = op
                .operands()
                .iter()
                .filter(|o| o.kind.field() == Field::Slot)
                .count();
            let imms = op
                .operands()
                .iter()
                .filter(|o| o.kind.field() == Field::Imm)
                .count();
            assert!(slots <= 4 && imms <= 1, "{}", op.mnemonic());
        }
    }

    #[test]
    fn mnemonics_and_opcodes_are_unique() {
        let mut names: Vec<_> = Opcode::ALL.iter().map(|o| o.mnemonic()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Opcode::ALL.len());
        for &op in Opcode::ALL {
            assert_eq!(Opcode::from_u8(op as u8), Some(op));
            assert!(
                !op.doc().is_empty(),
                "{} has no documentation",
                op.mnemonic()
            );
        }
    }

    #[test]
    fn a_word_round_trips() {
        let i = Inst::guarded(
            Guard {
                p: PReg(3),
                negate: true,
            },
            Op::VmadlF32 {
                vd: VReg(1),
                va: VReg(31),
                vb: VReg(7),
                lane: Lane(63),
            },
        );
        let w = i.encode();
        assert_eq!(w & 0xff, 0x50);
        assert_eq!(Inst::decode(w), Ok(i));
        assert_eq!(i.to_string(), "@!p3 vmadl.f32 v1, v31, v7, 63");
    }

    #[test]
    fn illegal_words_are_refused() {
        assert!(matches!(
            Inst::decode(0xff),
            Err(DecodeError::UnknownOpcode { opcode: 0xff, .. })
        ));
        // A guard on a scalar instruction.
        let add = Inst::from(Op::Add {
            sd: SReg(1),
            sa: SReg(2),
            sb: SReg(3),
        })
        .encode();
        assert!(matches!(
            Inst::decode(add | 0x100),
            Err(DecodeError::UnusedBits { .. })
        ));
        // An immediate on an instruction without one.
        assert!(matches!(
            Inst::decode(add | 1 << 40),
            Err(DecodeError::UnusedBits { .. })
        ));
        // Coordinates from s29 would run past s31.
        let ld = Inst::from(Op::LdtB32 {
            vd: VReg(0),
            t: TReg(0),
            c: CReg(28),
        })
        .encode();
        assert!(Inst::decode(ld).is_ok());
        assert!(matches!(
            Inst::decode(ld + (1 << 22)),
            Err(DecodeError::OperandRange {
                operand: "c",
                value: 29,
                ..
            })
        ));
    }
}

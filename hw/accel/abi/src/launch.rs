//! What a `LAUNCH` packet points at, and how the compute cores report a fault.
//!
//! # The argument buffer
//!
//! `LAUNCH` names an argument buffer in the entry's address space (`args_va`,
//! `args_size`): the tensors and scalars every invocation of the kernel sees. Little
//! endian:
//!
//! ```text
//!   0  u32 num_tensors     at most 16 (tensor slots t0..t15)
//!   4  u32 num_scalars     at most 64 (ldarg 0..63)
//!   8  8 bytes             zero
//!  16  num_tensors descriptors of 64 bytes:
//!        0  u64 base       device virtual address of element (0, 0, 0, 0)
//!        8  u32 elem_size  2 or 4
//!       12  u32            zero
//!       16  u32 dims[4]    elements along each dimension, dimension 0 first, each >= 1
//!       32  u32 strides[4] distance in elements between neighbours along each dimension
//!       48  16 bytes       zero
//!   then num_scalars u32 words
//! ```
//!
//! `args_size` must be exactly `16 + 64 * num_tensors + 4 * num_scalars`; a launch
//! without arguments may instead give `args_size` 0 (`args_va` is then not read). A
//! buffer that breaks any rule fails the entry with `BadPacket` at the `LAUNCH`
//! packet, before any core runs.
//!
//! # Faults
//!
//! A core stops at its first fault. The entry fails with
//! [`CqStatus::CoreFault`](crate::entry::CqStatus::CoreFault), whose `info` is a
//! [`CoreFault`], and the faulting core's `CORE.FAULT_*` registers hold a
//! [`FaultRecord`]: the [`FaultCode`], the `pc`, and a detail word whose meaning
//! depends on the code (see [`FaultRecord::info`]).

use sagrada_isa::DecodeError;
use sagrada_isa::exec::{FaultKind, TensorDesc};

/// Bytes of the argument buffer's header.
pub const ARGS_HEADER_SIZE: usize = 16;
/// Bytes of one tensor descriptor.
pub const TENSOR_DESC_SIZE: usize = 64;
/// Most tensors a launch may pass (one per tensor slot), as many as a kernel binary
/// may declare.
pub const MAX_TENSORS: usize = sagrada_isa::binary::MAX_TENSOR_ARGS;
/// Most scalar words a launch may pass, as many as a kernel binary may declare.
pub const MAX_SCALARS: usize = sagrada_isa::binary::MAX_SCALAR_ARGS;
/// The largest argument buffer: every tensor slot and every scalar used.
pub const MAX_ARGS_SIZE: u32 =
    (ARGS_HEADER_SIZE + MAX_TENSORS * TENSOR_DESC_SIZE + MAX_SCALARS * 4) as u32;

/// The arguments of a launch: what the argument buffer holds.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LaunchArgs {
    /// Tensor slots `t0`.. in order.
    pub tensors: Vec<TensorDesc>,
    /// Scalar words, `ldarg 0`.. in order.
    pub scalars: Vec<u32>,
}

/// Why bytes are not a valid argument buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ArgsError {
    /// Shorter than the header.
    #[error("the argument buffer is {size} bytes, shorter than its 16-byte header")]
    Short {
        /// The buffer's size.
        size: usize,
    },
    /// More tensors than slots.
    #[error(
        "the argument buffer declares {count} tensors; at most {MAX_TENSORS} fit the tensor slots"
    )]
    TooManyTensors {
        /// `num_tensors`.
        count: u32,
    },
    /// More scalars than allowed.
    #[error("the argument buffer declares {count} scalars; at most {MAX_SCALARS} are allowed")]
    TooManyScalars {
        /// `num_scalars`.
        count: u32,
    },
    /// The size does not match the counts.
    #[error(
        "the argument buffer is {size} bytes, but {tensors} tensors and {scalars} scalars \
         take {expected}"
    )]
    Size {
        /// The buffer's size.
        size: usize,
        /// `num_tensors`.
        tensors: u32,
        /// `num_scalars`.
        scalars: u32,
        /// The size they take.
        expected: usize,
    },
    /// A reserved field is not zero.
    #[error("the argument buffer has nonzero reserved bytes at offset {offset}")]
    Reserved {
        /// Byte offset of the reserved field.
        offset: usize,
    },
    /// A tensor's element size is not 2 or 4.
    #[error("tensor {index} of the argument buffer has element size {value}; it must be 2 or 4")]
    ElemSize {
        /// The tensor's slot.
        index: usize,
        /// Its `elem_size`.
        value: u32,
    },
    /// A tensor has an empty dimension.
    #[error("tensor {index} of the argument buffer has size 0 along dimension {dim}")]
    EmptyDim {
        /// The tensor's slot.
        index: usize,
        /// The dimension.
        dim: usize,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

impl LaunchArgs {
    /// Bytes the encoding takes.
    pub fn size(&self) -> usize {
        ARGS_HEADER_SIZE + self.tensors.len() * TENSOR_DESC_SIZE + self.scalars.len() * 4
    }

    /// The argument buffer. It encodes what it is given; [`LaunchArgs::decode`] (and the
    /// device) judge it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.scalars.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        for t in &self.tensors {
            out.extend_from_slice(&t.base.to_le_bytes());
            out.extend_from_slice(&t.elem_size.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            for d in t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            for s in t.strides {
                out.extend_from_slice(&s.to_le_bytes());
            }
            out.extend_from_slice(&[0; 16]);
        }
        for s in &self.scalars {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Decodes and validates an argument buffer. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<LaunchArgs, ArgsError> {
        let size = bytes.len();
        if size < ARGS_HEADER_SIZE {
            return Err(ArgsError::Short { size });
        }
        let (tensors, scalars) = (u32_at(bytes, 0), u32_at(bytes, 4));
        if tensors as usize > MAX_TENSORS {
            return Err(ArgsError::TooManyTensors { count: tensors });
        }
        if scalars as usize > MAX_SCALARS {
            return Err(ArgsError::TooManyScalars { count: scalars });
        }
        let expected =
            ARGS_HEADER_SIZE + tensors as usize * TENSOR_DESC_SIZE + scalars as usize * 4;
        if size != expected {
            return Err(ArgsError::Size {
                size,
                tensors,
                scalars,
                expected,
            });
        }
        if u64_at(bytes, 8) != 0 {
            return Err(ArgsError::Reserved { offset: 8 });
        }
        let mut out = LaunchArgs::default();
        for index in 0..tensors as usize {
            let at = ARGS_HEADER_SIZE + index * TENSOR_DESC_SIZE;
            let d = &bytes[at..at + TENSOR_DESC_SIZE];
            if u32_at(d, 12) != 0 {
                return Err(ArgsError::Reserved { offset: at + 12 });
            }
            if let Some(i) = d[48..].iter().position(|&b| b != 0) {
                return Err(ArgsError::Reserved {
                    offset: at + 48 + i,
                });
            }
            let desc = TensorDesc {
                base: u64_at(d, 0),
                elem_size: u32_at(d, 8),
                dims: std::array::from_fn(|i| u32_at(d, 16 + 4 * i)),
                strides: std::array::from_fn(|i| u32_at(d, 32 + 4 * i)),
            };
            if !matches!(desc.elem_size, 2 | 4) {
                return Err(ArgsError::ElemSize {
                    index,
                    value: desc.elem_size,
                });
            }
            if let Some(dim) = desc.dims.iter().position(|&n| n == 0) {
                return Err(ArgsError::EmptyDim { index, dim });
            }
            out.tensors.push(desc);
        }
        let at = ARGS_HEADER_SIZE + tensors as usize * TENSOR_DESC_SIZE;
        out.scalars = (0..scalars as usize)
            .map(|i| u32_at(bytes, at + 4 * i))
            .collect();
        Ok(out)
    }
}

/// What a core's fault was: the code in `CORE.FAULT_CAUSE.CODE` and in a `CoreFault`
/// completion.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum FaultCode {
    /// The word at `pc` is not an instruction.
    IllegalInstruction = 1,
    /// Execution left the program (a branch, or running past the last instruction).
    PcRange = 2,
    /// A scratchpad address not 4-byte aligned.
    Misaligned = 3,
    /// A scratchpad access outside the scratchpad.
    ScratchRange = 4,
    /// `ldarg` beyond the launch's scalars.
    ArgRange = 5,
    /// A tensor slot the launch has no tensor for.
    TensorSlot = 6,
    /// A tensor whose element size the instruction cannot access.
    TensorType = 7,
    /// A coordinate outside a tensor.
    TensorRange = 8,
    /// The MMU refused a global-memory access (also recorded in `MMU.FAULT_*`).
    Mmu = 9,
    /// Integer division or remainder by zero.
    DivideByZero = 10,
}

impl FaultCode {
    /// Every code, in numeric order.
    pub const ALL: [FaultCode; 10] = [
        Self::IllegalInstruction,
        Self::PcRange,
        Self::Misaligned,
        Self::ScratchRange,
        Self::ArgRange,
        Self::TensorSlot,
        Self::TensorType,
        Self::TensorRange,
        Self::Mmu,
        Self::DivideByZero,
    ];

    /// Decodes a code (0 is "no fault": `None`).
    pub fn from_raw(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v).checked_sub(1)?).copied()
    }

    /// The code of a fault of the reference semantics ([`FaultKind::code`], which
    /// defines the numbers; this enum names them).
    pub fn of(kind: &FaultKind) -> Self {
        Self::from_raw(kind.code()).expect("every fault kind has an ABI code")
    }
}

/// A core's fault as its `CORE.FAULT_*` registers hold it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultRecord {
    /// `FAULT_CAUSE.CODE`.
    pub code: FaultCode,
    /// `FAULT_CAUSE.WRITE`: an `Mmu` fault of a store.
    pub write: bool,
    /// `FAULT_PC`: the faulting instruction's index.
    pub pc: u32,
    /// `FAULT_INFO_LO/HI`, by code:
    /// - `IllegalInstruction`: the instruction word;
    /// - `PcRange`: the instruction index execution would have gone to (signed);
    /// - `Misaligned`, `ScratchRange`: the scratchpad byte address (signed);
    /// - `ArgRange`: the argument index (signed);
    /// - `TensorSlot`: the slot;
    /// - `TensorType`: the slot in bits 7:0, the tensor's element size in bits 63:16;
    /// - `TensorRange`: the slot in bits 7:0, the dimension in bits 15:8, the
    ///   coordinate in bits 63:16;
    /// - `Mmu`: the virtual address refused;
    /// - `DivideByZero`: 0.
    ///
    /// Signed values are sign-extended to 64 bits.
    pub info: u64,
}

impl FaultRecord {
    /// The record of a fault of the reference semantics at `pc`.
    pub fn of(pc: u32, kind: &FaultKind) -> Self {
        let mut write = false;
        let info = match *kind {
            FaultKind::IllegalInstruction(e) => match e {
                DecodeError::UnknownOpcode { word, .. }
                | DecodeError::UnusedBits { word, .. }
                | DecodeError::OperandRange { word, .. } => word,
            },
            FaultKind::PcRange { target } => target as u64,
            FaultKind::Misaligned { addr } | FaultKind::ScratchRange { addr } => addr as u64,
            FaultKind::ArgRange { index } => i64::from(index) as u64,
            FaultKind::TensorSlot { slot } => u64::from(slot),
            FaultKind::TensorType { slot, elem_size } => {
                u64::from(slot) | u64::from(elem_size) << 16
            }
            FaultKind::TensorRange { slot, dim, coord } => {
                u64::from(slot) | u64::from(dim) << 8 | coord << 16
            }
            FaultKind::Mmu { va, write: w } => {
                write = w;
                va
            }
            FaultKind::DivideByZero => 0,
        };
        Self {
            code: FaultCode::of(kind),
            write,
            pc,
            info,
        }
    }
}

/// The `info` of a `CoreFault` completion: which core faulted first, where and why.
///
/// ```text
/// bits 31:0   pc    the faulting instruction's index
/// bits 39:32  core  the core (the lowest-numbered one, if several faulted)
/// bits 47:40  code  the FaultCode
/// bits 63:48  zero
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CoreFault {
    /// The fault code (a [`FaultCode`] value; kept raw so any `info` decodes).
    pub code: u8,
    /// The core.
    pub core: u8,
    /// The faulting instruction's index.
    pub pc: u32,
}

impl CoreFault {
    /// The completion's `info` word.
    pub fn to_info(self) -> u64 {
        u64::from(self.code) << 40 | u64::from(self.core) << 32 | u64::from(self.pc)
    }

    /// Splits a completion's `info` word.
    pub fn from_info(info: u64) -> Self {
        Self {
            code: (info >> 40) as u8,
            core: (info >> 32) as u8,
            pc: info as u32,
        }
    }

    /// The fault code, if it is one.
    pub fn fault_code(&self) -> Option<FaultCode> {
        FaultCode::from_raw(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn desc() -> impl Strategy<Value = TensorDesc> {
        (
            any::<u64>(),
            prop_oneof![Just(2u32), Just(4u32)],
            [1u32..1000, 1u32..1000, 1u32..1000, 1u32..1000],
            any::<[u32; 4]>(),
        )
            .prop_map(|(base, elem_size, dims, strides)| TensorDesc {
                base,
                elem_size,
                dims,
                strides,
            })
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(
            tensors in proptest::collection::vec(desc(), 0..=MAX_TENSORS),
            scalars in proptest::collection::vec(any::<u32>(), 0..=MAX_SCALARS),
        ) {
            let args = LaunchArgs { tensors, scalars };
            let bytes = args.encode();
            prop_assert_eq!(bytes.len(), args.size());
            prop_assert!(bytes.len() <= MAX_ARGS_SIZE as usize);
            prop_assert_eq!(LaunchArgs::decode(&bytes), Ok(args));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = LaunchArgs::decode(&bytes);
        }

        #[test]
        fn core_fault_info_round_trips(code in any::<u8>(), core in any::<u8>(), pc in any::<u32>()) {
            let f = CoreFault { code, core, pc };
            prop_assert_eq!(CoreFault::from_info(f.to_info()), f);
        }
    }

    fn one_tensor() -> LaunchArgs {
        LaunchArgs {
            tensors: vec![TensorDesc {
                base: 0x1000,
                elem_size: 4,
                dims: [100, 1, 1, 1],
                strides: [1, 100, 100, 100],
            }],
            scalars: vec![7, 8],
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let b = one_tensor().encode();
        assert_eq!(b.len(), 16 + 64 + 8);
        assert_eq!(&b[..8], &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&b[16..24], &0x1000u64.to_le_bytes());
        assert_eq!(&b[24..28], &4u32.to_le_bytes());
        assert_eq!(&b[32..36], &100u32.to_le_bytes());
        assert_eq!(&b[52..56], &100u32.to_le_bytes(), "strides[1]");
        assert_eq!(&b[80..88], &[7, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(MAX_ARGS_SIZE, 1296);
    }

    #[test]
    fn every_rule_is_checked_and_named() {
        let good = one_tensor().encode();
        let with = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            LaunchArgs::decode(&b)
        };
        assert_eq!(
            LaunchArgs::decode(&good[..12]),
            Err(ArgsError::Short { size: 12 })
        );
        assert_eq!(with(0, 17), Err(ArgsError::TooManyTensors { count: 17 }));
        assert_eq!(with(4, 65), Err(ArgsError::TooManyScalars { count: 65 }));
        assert_eq!(
            with(4, 3),
            Err(ArgsError::Size {
                size: 88,
                tensors: 1,
                scalars: 3,
                expected: 92
            })
        );
        assert_eq!(with(12, 1), Err(ArgsError::Reserved { offset: 8 }));
        assert_eq!(with(28, 1), Err(ArgsError::Reserved { offset: 28 }));
        assert_eq!(with(72, 0x100), Err(ArgsError::Reserved { offset: 73 }));
        assert_eq!(with(24, 8), Err(ArgsError::ElemSize { index: 0, value: 8 }));
        assert_eq!(with(40, 0), Err(ArgsError::EmptyDim { index: 0, dim: 2 }));
        assert!(LaunchArgs::decode(&LaunchArgs::default().encode()).is_ok());
        let e = with(24, 3).unwrap_err().to_string();
        assert!(
            e.contains("tensor 0") && e.contains("element size 3"),
            "{e}"
        );
    }

    #[test]
    fn fault_codes_round_trip_and_records_carry_their_detail() {
        for (i, c) in FaultCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i + 1);
            assert_eq!(FaultCode::from_raw(*c as u8), Some(*c));
        }
        assert_eq!(FaultCode::from_raw(0), None);
        let every_kind = [
            FaultKind::IllegalInstruction(DecodeError::UnknownOpcode {
                opcode: 0xff,
                word: 0xff,
            }),
            FaultKind::PcRange { target: 9 },
            FaultKind::Misaligned { addr: 2 },
            FaultKind::ScratchRange { addr: -4 },
            FaultKind::ArgRange { index: 70 },
            FaultKind::TensorSlot { slot: 3 },
            FaultKind::TensorType {
                slot: 0,
                elem_size: 2,
            },
            FaultKind::TensorRange {
                slot: 0,
                dim: 0,
                coord: 5,
            },
            FaultKind::Mmu {
                va: 0,
                write: false,
            },
            FaultKind::DivideByZero,
        ];
        for (kind, code) in every_kind.iter().zip(FaultCode::ALL) {
            assert_eq!(FaultCode::of(kind), code, "{kind:?}");
        }
        assert_eq!(FaultCode::from_raw(11), None);
        let r = FaultRecord::of(
            9,
            &FaultKind::TensorRange {
                slot: 3,
                dim: 1,
                coord: 0x1_0000_0005,
            },
        );
        assert_eq!(r.code, FaultCode::TensorRange);
        assert_eq!(r.info, 3 | 1 << 8 | 0x1_0000_0005 << 16);
        let r = FaultRecord::of(
            2,
            &FaultKind::Mmu {
                va: 0xdead_0000,
                write: true,
            },
        );
        assert_eq!(
            (r.code, r.write, r.pc, r.info),
            (FaultCode::Mmu, true, 2, 0xdead_0000)
        );
        let r = FaultRecord::of(0, &FaultKind::PcRange { target: -1 });
        assert_eq!(r.info, u64::MAX);
        let f = CoreFault {
            code: FaultCode::Mmu as u8,
            core: 5,
            pc: 17,
        };
        assert_eq!(f.to_info(), 9 << 40 | 5 << 32 | 17);
        assert_eq!(f.fault_code(), Some(FaultCode::Mmu));
    }
}

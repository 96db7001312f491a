//! Packets: what a command buffer holds. Each packet starts with a header dword
//! (`opcode` in bits 7:0, bits 15:8 zero, the packet's length in dwords, header
//! included, in bits 31:16), followed by little-endian dword arguments. The encoder and
//! the decoder below are the only description of the format.

use std::fmt;

use crate::launch::MAX_ARGS_SIZE;
use crate::{MAX_CODE_INSTS, NUM_CORES};

/// Dimensions of a launch's index space.
pub const LAUNCH_DIMS: usize = sagrada_isa::DIMS;

/// Opcode of `NOP`.
pub const OP_NOP: u8 = 0x00;
/// Opcode of `WREG32`.
pub const OP_WREG32: u8 = 0x01;
/// Opcode of `LIN_DMA`.
pub const OP_LIN_DMA: u8 = 0x02;
/// Opcode of `MSG`.
pub const OP_MSG: u8 = 0x03;
/// Opcode of `WAIT`.
pub const OP_WAIT: u8 = 0x04;
/// Opcode of `FENCE`.
pub const OP_FENCE: u8 = 0x05;
/// Opcode of `LAUNCH`.
pub const OP_LAUNCH: u8 = 0x10;

/// Which way a `LIN_DMA` moves data; the engine checks it against where the addresses
/// translate to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DmaDir {
    /// Host memory to HBM.
    HostToDevice = 0,
    /// HBM to host memory.
    DeviceToHost = 1,
    /// HBM to HBM.
    DeviceToDevice = 2,
    /// Host memory to host memory.
    HostToHost = 3,
}

impl DmaDir {
    fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::HostToDevice,
            1 => Self::DeviceToHost,
            2 => Self::DeviceToDevice,
            3 => Self::HostToHost,
            _ => return None,
        })
    }
}

/// What a `MSG` does to its sync object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MsgOp {
    /// Store the value.
    Set = 0,
    /// Add the value (wrapping).
    Add = 1,
}

/// A decoded packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Packet {
    /// Does nothing.
    Nop,
    /// Writes a BAR0 register (privileged: kernel entries only).
    Wreg32 {
        /// BAR0 offset.
        reg: u32,
        /// Value.
        value: u32,
    },
    /// Copies `size` bytes from `src` to `dst` (addresses of the entry's address space).
    LinDma {
        /// Source address.
        src: u64,
        /// Destination address.
        dst: u64,
        /// Bytes.
        size: u64,
        /// Direction, checked against the translations.
        dir: DmaDir,
    },
    /// Sets or adds to a sync object.
    Msg {
        /// Sync object.
        sob: u32,
        /// Set or add.
        op: MsgOp,
        /// Operand.
        value: u32,
    },
    /// Blocks the queue until a sync object is at least `target`.
    Wait {
        /// Sync object.
        sob: u32,
        /// Value to reach.
        target: u32,
    },
    /// Writes a completion entry carrying `tag` (privileged).
    Fence {
        /// Echoed in the completion entry.
        tag: u64,
    },
    /// Runs a kernel on the compute cores (COMPUTE queue only): one invocation per
    /// point of the index space `dims`, the points split over the cores of
    /// `core_mask`. The command buffer goes on when every core has finished.
    Launch {
        /// Address of the code: `code_count` little-endian 64-bit instruction words.
        code_va: u64,
        /// Instructions (1 to [`MAX_CODE_INSTS`]).
        code_count: u32,
        /// The instruction each invocation starts at (below `code_count`).
        entry: u32,
        /// Address of the argument buffer ([`crate::launch`]).
        args_va: u64,
        /// Bytes of the argument buffer (at most [`MAX_ARGS_SIZE`]; 0: no arguments).
        args_size: u32,
        /// The index space's size along each dimension (each at least 1).
        dims: [u32; LAUNCH_DIMS],
        /// Bit `i`: core `i` takes part; 0: every core of the device.
        core_mask: u32,
    },
}

/// Why bytes are not a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header or than the length the header claims.
    #[error("packet at byte {offset} is truncated: {need} bytes needed, {have} left")]
    Truncated {
        /// Byte offset of the packet.
        offset: usize,
        /// Bytes the packet needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// An opcode no packet has.
    #[error("packet at byte {offset} has unknown opcode {opcode:#04x}")]
    UnknownOpcode {
        /// Byte offset of the packet.
        offset: usize,
        /// The opcode.
        opcode: u8,
    },
    /// The header's length or reserved bits do not match the opcode's format.
    #[error("packet at byte {offset} (opcode {opcode:#04x}) has a malformed header {header:#010x}")]
    BadHeader {
        /// Byte offset of the packet.
        offset: usize,
        /// The opcode.
        opcode: u8,
        /// The header dword.
        header: u32,
    },
    /// An argument outside its allowed values.
    #[error("packet at byte {offset} (opcode {opcode:#04x}) has an invalid field: {what}")]
    BadField {
        /// Byte offset of the packet.
        offset: usize,
        /// The opcode.
        opcode: u8,
        /// Which field.
        what: &'static str,
    },
}

impl DecodeError {
    /// Byte offset of the offending packet.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Truncated { offset, .. }
            | Self::UnknownOpcode { offset, .. }
            | Self::BadHeader { offset, .. }
            | Self::BadField { offset, .. } => offset,
        }
    }
}

const fn header(opcode: u8, len_dw: u16) -> u32 {
    opcode as u32 | (len_dw as u32) << 16
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

impl Packet {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        match self {
            Packet::Nop => OP_NOP,
            Packet::Wreg32 { .. } => OP_WREG32,
            Packet::LinDma { .. } => OP_LIN_DMA,
            Packet::Msg { .. } => OP_MSG,
            Packet::Wait { .. } => OP_WAIT,
            Packet::Fence { .. } => OP_FENCE,
            Packet::Launch { .. } => OP_LAUNCH,
        }
    }

    /// Whether only privileged (kernel) entries may execute it.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Packet::Wreg32 { .. } | Packet::Fence { .. })
    }

    fn dwords(&self) -> Vec<u32> {
        let body = match *self {
            Packet::Nop => vec![],
            Packet::Wreg32 { reg, value } => vec![reg, value],
            Packet::LinDma {
                src,
                dst,
                size,
                dir,
            } => vec![
                lo(src),
                hi(src),
                lo(dst),
                hi(dst),
                lo(size),
                hi(size),
                dir as u32,
            ],
            Packet::Msg { sob, op, value } => vec![sob, op as u32, value],
            Packet::Wait { sob, target } => vec![sob, target],
            Packet::Fence { tag } => vec![lo(tag), hi(tag)],
            Packet::Launch {
                code_va,
                code_count,
                entry,
                args_va,
                args_size,
                dims,
                core_mask,
            } => {
                let mut v = vec![
                    lo(code_va),
                    hi(code_va),
                    code_count,
                    entry,
                    lo(args_va),
                    hi(args_va),
                    args_size,
                ];
                v.extend(dims);
                v.push(core_mask);
                v
            }
        };
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(header(self.opcode(), body.len() as u16 + 1));
        out.extend(body);
        out
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> usize {
        Self::len_dw(self.opcode()).unwrap_or(1) * 4
    }

    fn len_dw(opcode: u8) -> Option<usize> {
        Some(match opcode {
            OP_NOP => 1,
            OP_WREG32 => 3,
            OP_LIN_DMA => 8,
            OP_MSG => 4,
            OP_WAIT => 3,
            OP_FENCE => 3,
            OP_LAUNCH => 13,
            _ => return None,
        })
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for d in self.dwords() {
            out.extend_from_slice(&d.to_le_bytes());
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes the packet at byte `offset` of `bytes`, returning it and its length.
    pub fn decode(bytes: &[u8], offset: usize) -> Result<(Packet, usize), DecodeError> {
        let have = bytes.len().saturating_sub(offset);
        let dw = |i: usize| {
            let at = offset + 4 * i;
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if have < 4 {
            return Err(DecodeError::Truncated {
                offset,
                need: 4,
                have,
            });
        }
        let h = dw(0);
        let opcode = h as u8;
        let len = Self::len_dw(opcode).ok_or(DecodeError::UnknownOpcode { offset, opcode })?;
        if h != header(opcode, len as u16) {
            return Err(DecodeError::BadHeader {
                offset,
                opcode,
                header: h,
            });
        }
        if have < len * 4 {
            return Err(DecodeError::Truncated {
                offset,
                need: len * 4,
                have,
            });
        }
        let wide = |i: usize| u64::from(dw(i)) | u64::from(dw(i + 1)) << 32;
        let field = |what| DecodeError::BadField {
            offset,
            opcode,
            what,
        };
        let packet = match opcode {
            OP_NOP => Packet::Nop,
            OP_WREG32 => Packet::Wreg32 {
                reg: dw(1),
                value: dw(2),
            },
            OP_LIN_DMA => Packet::LinDma {
                src: wide(1),
                dst: wide(3),
                size: wide(5),
                dir: DmaDir::from_raw(dw(7)).ok_or(field("direction"))?,
            },
            OP_MSG => Packet::Msg {
                sob: dw(1),
                op: match dw(2) {
                    0 => MsgOp::Set,
                    1 => MsgOp::Add,
                    _ => return Err(field("operation")),
                },
                value: dw(3),
            },
            OP_WAIT => Packet::Wait {
                sob: dw(1),
                target: dw(2),
            },
            OP_FENCE => Packet::Fence { tag: wide(1) },
            OP_LAUNCH => {
                let (code_count, entry, args_size) = (dw(3), dw(4), dw(7));
                let dims: [u32; LAUNCH_DIMS] = std::array::from_fn(|i| dw(8 + i));
                let core_mask = dw(12);
                if !(1..=MAX_CODE_INSTS).contains(&code_count) {
                    return Err(field("code_count"));
                }
                if entry >= code_count {
                    return Err(field("entry"));
                }
                if args_size > MAX_ARGS_SIZE {
                    return Err(field("args_size"));
                }
                if dims.contains(&0) {
                    return Err(field("dims"));
                }
                if dims
                    .iter()
                    .try_fold(1u64, |n, &d| n.checked_mul(u64::from(d)))
                    .is_none()
                {
                    return Err(field("dims (more than 2^64 - 1 points)"));
                }
                if u64::from(core_mask) >> NUM_CORES != 0 {
                    return Err(field("core_mask"));
                }
                Packet::Launch {
                    code_va: wide(1),
                    code_count,
                    entry,
                    args_va: wide(5),
                    args_size,
                    dims,
                    core_mask,
                }
            }
            _ => unreachable!("len_dw accepted only known opcodes"),
        };
        Ok((packet, len * 4))
    }

    /// Decodes a whole command buffer.
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<Packet>, DecodeError> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (p, n) = Self::decode(bytes, at)?;
            out.push(p);
            at += n;
        }
        Ok(out)
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Packet::Nop => write!(f, "NOP"),
            Packet::Wreg32 { reg, value } => write!(f, "WREG32 {reg:#x}, {value:#x}"),
            Packet::LinDma {
                src,
                dst,
                size,
                dir,
            } => write!(f, "LIN_DMA {dir:?} {src:#x} -> {dst:#x}, {size} bytes"),
            Packet::Msg { sob, op, value } => write!(f, "MSG sob {sob} {op:?} {value}"),
            Packet::Wait { sob, target } => write!(f, "WAIT sob {sob} >= {target}"),
            Packet::Fence { tag } => write!(f, "FENCE {tag:#x}"),
            Packet::Launch {
                code_va,
                code_count,
                entry,
                args_va,
                args_size,
                dims,
                core_mask,
            } => write!(
                f,
                "LAUNCH code {code_va:#x} ({code_count} instructions, entry {entry}), \
                 args {args_va:#x} ({args_size} bytes), dims {dims:?}, cores {core_mask:#x}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_packet() -> impl Strategy<Value = Packet> {
        prop_oneof![
            Just(Packet::Nop),
            (any::<u32>(), any::<u32>()).prop_map(|(reg, value)| Packet::Wreg32 { reg, value }),
            (any::<u64>(), any::<u64>(), any::<u64>(), 0u32..4).prop_map(|(src, dst, size, d)| {
                Packet::LinDma {
                    src,
                    dst,
                    size,
                    dir: DmaDir::from_raw(d).unwrap(),
                }
            }),
            (any::<u32>(), any::<bool>(), any::<u32>()).prop_map(|(sob, add, value)| Packet::Msg {
                sob,
                op: if add { MsgOp::Add } else { MsgOp::Set },
                value
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(sob, target)| Packet::Wait { sob, target }),
            any::<u64>().prop_map(|tag| Packet::Fence { tag }),
            any_launch(),
        ]
    }

    fn any_launch() -> impl Strategy<Value = Packet> {
        (
            (any::<u64>(), 1..=MAX_CODE_INSTS, any::<u32>()),
            (any::<u64>(), 0..=MAX_ARGS_SIZE),
            [1u32..=0xffff, 1u32..=0xffff, 1u32..=0xffff, 1u32..=0xffff],
            0u32..1 << NUM_CORES,
        )
            .prop_map(
                |((code_va, code_count, entry), (args_va, args_size), dims, core_mask)| {
                    Packet::Launch {
                        code_va,
                        code_count,
                        entry: entry % code_count,
                        args_va,
                        args_size,
                        dims,
                        core_mask,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(packets in proptest::collection::vec(any_packet(), 0..20)) {
            let mut bytes = Vec::new();
            for p in &packets {
                p.encode_into(&mut bytes);
            }
            prop_assert_eq!(Packet::decode_all(&bytes).unwrap(), packets);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Packet::decode_all(&bytes);
        }
    }

    #[test]
    fn headers_carry_opcode_and_length() {
        let p = Packet::LinDma {
            src: 1,
            dst: 2,
            size: 3,
            dir: DmaDir::DeviceToHost,
        };
        assert_eq!(&p.encode()[..4], &0x0008_0002u32.to_le_bytes());
        assert_eq!(p.len_bytes(), 32);
        assert_eq!(Packet::Nop.encode(), vec![0, 0, 1, 0]);
    }

    #[test]
    fn malformed_packets_are_named_with_their_offset() {
        let mut cb = Packet::Nop.encode();
        cb.extend_from_slice(&header(0x11, 1).to_le_bytes());
        assert_eq!(
            Packet::decode_all(&cb),
            Err(DecodeError::UnknownOpcode {
                offset: 4,
                opcode: 0x11
            })
        );
        let mut cb = Packet::Nop.encode();
        cb.extend_from_slice(&header(OP_LAUNCH, 1).to_le_bytes());
        assert_eq!(
            Packet::decode_all(&cb),
            Err(DecodeError::BadHeader {
                offset: 4,
                opcode: OP_LAUNCH,
                header: header(OP_LAUNCH, 1)
            }),
            "LAUNCH is 13 dwords"
        );
        let bad_len = header(OP_MSG, 3).to_le_bytes();
        assert!(matches!(
            Packet::decode(&bad_len, 0),
            Err(DecodeError::BadHeader { .. })
        ));
        let short = &Packet::Fence { tag: 9 }.encode()[..8];
        assert_eq!(
            Packet::decode(short, 0),
            Err(DecodeError::Truncated {
                offset: 0,
                need: 12,
                have: 8
            })
        );
        let mut msg = Packet::Msg {
            sob: 1,
            op: MsgOp::Set,
            value: 2,
        }
        .encode();
        msg[8] = 7;
        assert!(matches!(
            Packet::decode(&msg, 0),
            Err(DecodeError::BadField {
                what: "operation",
                ..
            })
        ));
        assert_eq!(Packet::decode(&[1, 2], 0).unwrap_err().offset(), 0);
    }

    fn launch() -> Packet {
        Packet::Launch {
            code_va: 0x1_0000,
            code_count: 4,
            entry: 1,
            args_va: 0x2_0000,
            args_size: 16,
            dims: [100, 2, 1, 1],
            core_mask: 0,
        }
    }

    #[test]
    fn launch_has_the_documented_layout() {
        let b = launch().encode();
        assert_eq!(b.len(), 52);
        assert_eq!(&b[..4], &0x000d_0010u32.to_le_bytes());
        let dw = |i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(
            (1..13).map(dw).collect::<Vec<_>>(),
            [0x1_0000, 0, 4, 1, 0x2_0000, 0, 16, 100, 2, 1, 1, 0]
        );
        assert_eq!(Packet::decode(&b, 0), Ok((launch(), 52)));
    }

    #[test]
    fn launch_fields_are_validated() {
        let good = launch().encode();
        let with = |i: usize, v: u32| {
            let mut b = good.clone();
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
            match Packet::decode(&b, 0) {
                Err(DecodeError::BadField { what, .. }) => what,
                other => panic!("dword {i} = {v:#x} decoded as {other:?}"),
            }
        };
        assert_eq!(with(3, 0), "code_count");
        assert_eq!(with(3, MAX_CODE_INSTS + 1), "code_count");
        assert_eq!(with(4, 4), "entry");
        assert_eq!(with(7, MAX_ARGS_SIZE + 1), "args_size");
        for d in 8..12 {
            assert_eq!(with(d, 0), "dims");
        }
        assert_eq!(with(12, 1 << NUM_CORES), "core_mask");
        let mut huge = good.clone();
        for d in 8..12 {
            huge[4 * d..4 * d + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert!(matches!(
            Packet::decode(&huge, 0),
            Err(DecodeError::BadField { .. })
        ));
        let mut max = good.clone();
        max[12..16].copy_from_slice(&MAX_CODE_INSTS.to_le_bytes());
        max[48..52].copy_from_slice(&((1u32 << NUM_CORES) - 1).to_le_bytes());
        assert!(Packet::decode(&max, 0).is_ok());
    }

    #[test]
    fn only_wreg32_and_fence_are_privileged() {
        assert!(!launch().is_privileged());
        assert!(Packet::Fence { tag: 0 }.is_privileged());
        assert!(Packet::Wreg32 { reg: 0, value: 0 }.is_privileged());
        assert!(
            !Packet::Msg {
                sob: 0,
                op: MsgOp::Add,
                value: 1
            }
            .is_privileged()
        );
    }
}

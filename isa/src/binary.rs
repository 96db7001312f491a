//! Kernel binaries (`.sgb`): the file the assembler and the compiler write and the
//! runtime loads: the code, its entry point, the kernel's name, its declared
//! arguments and the scratchpad it uses.
//!
//! # Layout
//!
//! All little-endian. A 64-byte header:
//!
//! | byte | field                                                                |
//! |------|----------------------------------------------------------------------|
//! | 0    | magic `b"SGKB"`                                                      |
//! | 4    | u16 format version, [`FORMAT_VERSION`]                               |
//! | 6    | u8 ISA major version, u8 ISA minor version                           |
//! | 8    | u32 entry: index of the first instruction to run, `< code_count`     |
//! | 12   | u32 code_count: instructions                                         |
//! | 16   | u32 code_offset: byte offset of the code, 8-aligned                  |
//! | 20   | u32 arg_count                                                        |
//! | 24   | u32 args_offset: byte offset of the argument table, 4-aligned        |
//! | 28   | u32 strings_offset, u32 strings_size at 32: the UTF-8 names          |
//! | 36   | u32 name_offset, u32 name_len at 40: the kernel's name, in strings   |
//! | 44   | u32 scratch_bytes: scratchpad the kernel uses, `≤` [`SCRATCH_BYTES`] |
//! | 48   | 16 bytes, zero                                                       |
//!
//! The argument table has `arg_count` entries of 16 bytes: u8 kind (0 tensor, 1 i32,
//! 2 u32, 3 f32), u8 element kind (tensors only; see [`ElemKind`]), u16 zero, u32
//! name_offset and u32 name_len (into strings), u32 zero.
//!
//! The code, the argument table and the strings lie after the header, inside the
//! file, and do not overlap; bytes outside them are ignored. [`KernelBinary::to_bytes`]
//! writes them in that order with no gaps.
//!
//! Tensor arguments take slots `t0`.. in declaration order among tensors; scalar
//! arguments take `ldarg` indexes 0.. in declaration order among scalars.
//!
//! Left out: relocations, symbols, debug information, and any check of the code
//! itself: a word that is not an instruction is legal in a binary and faults only if
//! it runs.

use crate::operand::TReg;
use crate::{ISA_VERSION_MAJOR, ISA_VERSION_MINOR, NUM_TENSORS, SCRATCH_BYTES};

/// The first four bytes of every kernel binary.
pub const MAGIC: [u8; 4] = *b"SGKB";
/// The version of the file layout this module reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_BYTES: usize = 64;
/// Bytes of one argument table entry.
pub const ARG_ENTRY_BYTES: usize = 16;
/// Tensor arguments a kernel may declare: one per tensor slot.
pub const MAX_TENSOR_ARGS: usize = NUM_TENSORS;
/// Scalar arguments a kernel may declare.
pub const MAX_SCALAR_ARGS: usize = 64;
/// The longest kernel or argument name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// What a tensor argument's elements are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ElemKind {
    /// Not declared.
    #[default]
    Any = 0,
    /// 32-bit elements: f32, or 32 untyped bits.
    F32 = 1,
    /// Signed 32-bit integers.
    I32 = 2,
    /// Unsigned 32-bit integers.
    U32 = 3,
    /// bfloat16.
    Bf16 = 4,
    /// IEEE half precision.
    F16 = 5,
}

impl ElemKind {
    /// Every element kind, in code order.
    pub const ALL: [ElemKind; 6] = [
        ElemKind::Any,
        ElemKind::F32,
        ElemKind::I32,
        ElemKind::U32,
        ElemKind::Bf16,
        ElemKind::F16,
    ];

    /// The byte that encodes it.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The element kind a byte encodes.
    pub fn from_code(code: u8) -> Option<ElemKind> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Its assembly name (`f32`, `bf16`, ...); `any` for [`ElemKind::Any`], which
    /// the assembler writes by leaving the kind out.
    pub fn name(self) -> &'static str {
        match self {
            ElemKind::Any => "any",
            ElemKind::F32 => "f32",
            ElemKind::I32 => "i32",
            ElemKind::U32 => "u32",
            ElemKind::Bf16 => "bf16",
            ElemKind::F16 => "f16",
        }
    }

    /// Bytes per element, if declared.
    pub fn elem_size(self) -> Option<u32> {
        match self {
            ElemKind::Any => None,
            ElemKind::F32 | ElemKind::I32 | ElemKind::U32 => Some(4),
            ElemKind::Bf16 | ElemKind::F16 => Some(2),
        }
    }
}

/// What an argument is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ArgKind {
    /// A tensor, with the kind of its elements.
    Tensor(ElemKind),
    /// A signed 32-bit scalar.
    I32,
    /// An unsigned 32-bit scalar.
    U32,
    /// An f32 scalar.
    F32,
}

impl ArgKind {
    /// The kind byte of the argument table.
    pub fn code(self) -> u8 {
        match self {
            ArgKind::Tensor(_) => 0,
            ArgKind::I32 => 1,
            ArgKind::U32 => 2,
            ArgKind::F32 => 3,
        }
    }

    /// The element kind byte of the argument table (0 for scalars).
    pub fn elem_code(self) -> u8 {
        match self {
            ArgKind::Tensor(e) => e.code(),
            _ => 0,
        }
    }

    /// Whether it is a tensor.
    pub fn is_tensor(self) -> bool {
        matches!(self, ArgKind::Tensor(_))
    }
}

/// A declared argument.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ArgDecl {
    /// Its name (see [`is_valid_name`]).
    pub name: String,
    /// What it is.
    pub kind: ArgKind,
}

impl ArgDecl {
    /// A tensor argument.
    pub fn tensor(name: impl Into<String>, elem: ElemKind) -> ArgDecl {
        ArgDecl {
            name: name.into(),
            kind: ArgKind::Tensor(elem),
        }
    }

    /// A scalar argument of kind `kind`.
    pub fn scalar(name: impl Into<String>, kind: ArgKind) -> ArgDecl {
        ArgDecl {
            name: name.into(),
            kind,
        }
    }
}

/// A kernel binary, decoded.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct KernelBinary {
    /// The kernel's name (see [`is_valid_name`]).
    pub name: String,
    /// Index of the first instruction to run.
    pub entry: u32,
    /// The instruction words.
    pub code: Vec<u64>,
    /// The declared arguments, in declaration order.
    pub args: Vec<ArgDecl>,
    /// Bytes of scratchpad the kernel uses.
    pub scratch_bytes: u32,
}

/// Whether `name` may name a kernel, an argument or an assembler symbol: an
/// identifier (`[A-Za-z_][A-Za-z0-9_]*`) of at most [`MAX_NAME_LEN`] bytes that is
/// not a register name (`s7`, `v12`, `p1`, `t3`, also out of range like `s99`) nor
/// `pc`, so that a disassembly always reads back as the same binary.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_LEN
        && !is_register_like(name)
        && name != "pc"
}

/// `s`, `v`, `p` or `t` followed by decimal digits only.
pub(crate) fn is_register_like(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('s' | 'v' | 'p' | 't'))
        && !chars.as_str().is_empty()
        && chars.all(|c| c.is_ascii_digit())
}

/// Why bytes are not a kernel binary. Every message names the field, its value and
/// its byte offset in the file.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BinaryError {
    /// Shorter than the header.
    #[error("the file is {len} bytes long, shorter than the {HEADER_BYTES}-byte header")]
    Truncated {
        /// The file's length.
        len: usize,
    },
    /// Not a kernel binary.
    #[error("magic at byte 0 is {found:02x?}, not \"SGKB\" ({MAGIC:02x?}): not a kernel binary")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A layout version this module does not know.
    #[error("format version at byte 4 is {found}; this reader knows only version {FORMAT_VERSION}")]
    FormatVersion {
        /// The version in the file.
        found: u16,
    },
    /// Built for another ISA major version.
    #[error(
        "ISA major version at byte 6 is {found}: the kernel was built for ISA {found}.x, \
         and this is ISA {ISA_VERSION_MAJOR}.{ISA_VERSION_MINOR}, which cannot run it"
    )]
    IsaMajor {
        /// The major version in the file.
        found: u8,
    },
    /// A reserved byte is not zero.
    #[error("reserved byte at offset {offset} ({field}) is {value:#04x}, must be zero")]
    Reserved {
        /// Which reserved field.
        field: String,
        /// Its offset.
        offset: usize,
        /// The byte.
        value: u8,
    },
    /// An offset field is not aligned.
    #[error("{field} at byte {offset} is {value}, not a multiple of {align}")]
    Misaligned {
        /// The field.
        field: &'static str,
        /// The field's offset.
        offset: usize,
        /// Its value.
        value: u32,
        /// The alignment required.
        align: u32,
    },
    /// A region starts inside the header.
    #[error("{field} at byte {offset} is {value}, inside the {HEADER_BYTES}-byte header")]
    InHeader {
        /// The field.
        field: &'static str,
        /// The field's offset.
        offset: usize,
        /// Its value.
        value: u32,
    },
    /// A region runs past the end of the file.
    #[error(
        "{field} at byte {offset} places {size} bytes at offset {start}, past the end of \
         the {len}-byte file"
    )]
    OutOfBounds {
        /// The field.
        field: &'static str,
        /// The field's offset.
        offset: usize,
        /// Where the region starts.
        start: u64,
        /// Its size in bytes.
        size: u64,
        /// The file's length.
        len: usize,
    },
    /// Two regions overlap.
    #[error("the {a} (bytes {a_start}..{a_end}) and the {b} (bytes {b_start}..{b_end}) overlap")]
    Overlap {
        /// One region.
        a: &'static str,
        /// Its start.
        a_start: u64,
        /// Its end.
        a_end: u64,
        /// The other region.
        b: &'static str,
        /// Its start.
        b_start: u64,
        /// Its end.
        b_end: u64,
    },
    /// The entry point is not an instruction.
    #[error("entry at byte 8 is {entry}, not below the code_count of {code_count} (byte 12)")]
    Entry {
        /// The entry.
        entry: u32,
        /// The number of instructions.
        code_count: u32,
    },
    /// The declared scratchpad is larger than a core's.
    #[error(
        "scratch_bytes at byte 44 is {value}, more than the {SCRATCH_BYTES} bytes of a core's \
         scratchpad"
    )]
    Scratch {
        /// The value.
        value: u32,
    },
    /// An unknown argument kind.
    #[error(
        "argument {index}: kind at byte {offset} is {value}, not 0 (tensor), 1 (i32), 2 (u32) or 3 (f32)"
    )]
    ArgKind {
        /// The argument's index.
        index: usize,
        /// The byte's offset.
        offset: usize,
        /// The byte.
        value: u8,
    },
    /// An unknown element kind, or one on a scalar.
    #[error("argument {index}: element kind at byte {offset} is {value}, {reason}")]
    ElemKind {
        /// The argument's index.
        index: usize,
        /// The byte's offset.
        offset: usize,
        /// The byte.
        value: u8,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More tensor or scalar arguments than a launch can pass.
    #[error(
        "{count} {what} arguments (arg_count at byte 20 is {arg_count}); at most {max} are allowed"
    )]
    TooManyArgs {
        /// `tensor` or `scalar`.
        what: &'static str,
        /// How many the file declares.
        count: usize,
        /// The limit.
        max: usize,
        /// All arguments.
        arg_count: u32,
    },
    /// A name lies outside the strings.
    #[error(
        "{what}: name at offset {name_offset} (field at byte {offset}) with length {name_len} \
         runs past the {strings_size} bytes of strings"
    )]
    NameBounds {
        /// Whose name.
        what: String,
        /// The offset of the name_offset field.
        offset: usize,
        /// The name's offset in the strings.
        name_offset: u32,
        /// Its length.
        name_len: u32,
        /// The strings' size.
        strings_size: u32,
    },
    /// A name is not UTF-8.
    #[error("{what}: the name at byte {offset} is not UTF-8: {error}")]
    NameUtf8 {
        /// Whose name.
        what: String,
        /// The name's offset in the file.
        offset: usize,
        /// The decoder's complaint.
        error: std::str::Utf8Error,
    },
    /// A name is not an identifier.
    #[error(
        "{what}: the name {name:?} at byte {offset} is not an identifier of at most \
         {MAX_NAME_LEN} bytes (letters, digits, `_`; not a register name or `pc`)"
    )]
    NameSyntax {
        /// Whose name.
        what: String,
        /// The name's offset in the file.
        offset: usize,
        /// The name.
        name: String,
    },
    /// Two arguments have the same name.
    #[error("argument {index}: the name {name:?} at byte {offset} is also argument {first}'s")]
    DuplicateArg {
        /// The second argument's index.
        index: usize,
        /// The first's.
        first: usize,
        /// The name.
        name: String,
        /// The second name's offset in the file.
        offset: usize,
    },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn len_u32(n: usize) -> u32 {
    // Only a binary far beyond every limit has a length past u32; it is then written
    // so that reading it back fails.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A region of the file a header field places.
struct Region {
    what: &'static str,
    start: u64,
    end: u64,
}

/// Checks that the region `start..start+size` placed by the field at `offset` lies
/// after the header, inside the file, and is aligned.
fn region(
    bytes: &[u8],
    what: &'static str,
    field: &'static str,
    offset: usize,
    start: u32,
    size: u64,
    align: u32,
) -> Result<Region, BinaryError> {
    if !start.is_multiple_of(align) {
        return Err(BinaryError::Misaligned {
            field,
            offset,
            value: start,
            align,
        });
    }
    if (start as usize) < HEADER_BYTES {
        return Err(BinaryError::InHeader {
            field,
            offset,
            value: start,
        });
    }
    let end = u64::from(start) + size;
    if end > bytes.len() as u64 {
        return Err(BinaryError::OutOfBounds {
            field,
            offset,
            start: u64::from(start),
            size,
            len: bytes.len(),
        });
    }
    Ok(Region {
        what,
        start: u64::from(start),
        end,
    })
}

impl KernelBinary {
    /// The file's bytes: the header, then the code, the argument table and the
    /// strings (the kernel's name, then the arguments' names), without gaps.
    ///
    /// Writes whatever `self` holds; a binary that [`KernelBinary::validate`] refuses
    /// is written as it is, and [`KernelBinary::from_bytes`] refuses it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let code_offset = HEADER_BYTES;
        let args_offset = code_offset + 8 * self.code.len();
        let strings_offset = args_offset + ARG_ENTRY_BYTES * self.args.len();
        let mut strings = Vec::new();
        strings.extend_from_slice(self.name.as_bytes());
        let mut arg_names = Vec::with_capacity(self.args.len());
        for a in &self.args {
            arg_names.push((strings.len(), a.name.len()));
            strings.extend_from_slice(a.name.as_bytes());
        }

        let mut out = Vec::with_capacity(strings_offset + strings.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(ISA_VERSION_MAJOR);
        out.push(ISA_VERSION_MINOR);
        for v in [
            self.entry,
            len_u32(self.code.len()),
            len_u32(code_offset),
            len_u32(self.args.len()),
            len_u32(args_offset),
            len_u32(strings_offset),
            len_u32(strings.len()),
            0,
            len_u32(self.name.len()),
            self.scratch_bytes,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(HEADER_BYTES, 0);
        for w in &self.code {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for (a, &(off, len)) in self.args.iter().zip(&arg_names) {
            out.push(a.kind.code());
            out.push(a.kind.elem_code());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&len_u32(off).to_le_bytes());
            out.extend_from_slice(&len_u32(len).to_le_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        out.extend_from_slice(&strings);
        out
    }

    /// Reads a kernel binary, checking every field: the magic, the format and ISA
    /// versions, that the regions lie after the header, inside the file, aligned
    /// and apart, the entry point, the arguments (kinds, counts, names: UTF-8
    /// identifiers, distinct), the scratchpad size, and that reserved fields are
    /// zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<KernelBinary, BinaryError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BinaryError::Truncated { len: bytes.len() });
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(BinaryError::BadMagic { found: magic });
        }
        let version = u16_at(bytes, 4);
        if version != FORMAT_VERSION {
            return Err(BinaryError::FormatVersion { found: version });
        }
        if bytes[6] != ISA_VERSION_MAJOR {
            return Err(BinaryError::IsaMajor { found: bytes[6] });
        }
        // A newer minor version adds instructions; words this ISA does not know
        // fault when they run, so the binary itself is still readable.
        for (offset, &value) in bytes.iter().enumerate().take(HEADER_BYTES).skip(48) {
            if value != 0 {
                return Err(BinaryError::Reserved {
                    field: "header".into(),
                    offset,
                    value,
                });
            }
        }
        let entry = u32_at(bytes, 8);
        let code_count = u32_at(bytes, 12);
        let code_offset = u32_at(bytes, 16);
        let arg_count = u32_at(bytes, 20);
        let args_offset = u32_at(bytes, 24);
        let strings_offset = u32_at(bytes, 28);
        let strings_size = u32_at(bytes, 32);
        let name_offset = u32_at(bytes, 36);
        let name_len = u32_at(bytes, 40);
        let scratch_bytes = u32_at(bytes, 44);

        let code = region(
            bytes,
            "code",
            "code_offset",
            16,
            code_offset,
            8 * u64::from(code_count),
            8,
        )?;
        let args = region(
            bytes,
            "argument table",
            "args_offset",
            24,
            args_offset,
            ARG_ENTRY_BYTES as u64 * u64::from(arg_count),
            4,
        )?;
        let strings = region(
            bytes,
            "strings",
            "strings_offset",
            28,
            strings_offset,
            u64::from(strings_size),
            1,
        )?;
        let regions = [&code, &args, &strings];
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                if a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end {
                    return Err(BinaryError::Overlap {
                        a: a.what,
                        a_start: a.start,
                        a_end: a.end,
                        b: b.what,
                        b_start: b.start,
                        b_end: b.end,
                    });
                }
            }
        }
        if entry >= code_count {
            return Err(BinaryError::Entry { entry, code_count });
        }
        if scratch_bytes as usize > SCRATCH_BYTES {
            return Err(BinaryError::Scratch {
                value: scratch_bytes,
            });
        }

        let strings_bytes = &bytes[strings.start as usize..strings.end as usize];
        let name = |what: &dyn Fn() -> String, field_at: usize, off: u32, len: u32| {
            let end = u64::from(off) + u64::from(len);
            if end > u64::from(strings_size) {
                return Err(BinaryError::NameBounds {
                    what: what(),
                    offset: field_at,
                    name_offset: off,
                    name_len: len,
                    strings_size,
                });
            }
            let at = strings.start as usize + off as usize;
            let raw = &strings_bytes[off as usize..end as usize];
            let s = std::str::from_utf8(raw).map_err(|error| BinaryError::NameUtf8 {
                what: what(),
                offset: at,
                error,
            })?;
            if !is_valid_name(s) {
                return Err(BinaryError::NameSyntax {
                    what: what(),
                    offset: at,
                    name: s.to_owned(),
                });
            }
            Ok((s.to_owned(), at))
        };
        let (kernel_name, _) = name(&|| "kernel".to_owned(), 36, name_offset, name_len)?;

        let mut decls: Vec<ArgDecl> = Vec::with_capacity(arg_count as usize);
        let (mut tensors, mut scalars) = (0usize, 0usize);
        for index in 0..arg_count as usize {
            let at = args.start as usize + index * ARG_ENTRY_BYTES;
            let e = &bytes[at..at + ARG_ENTRY_BYTES];
            let what = || format!("argument {index}");
            for (i, &value) in e.iter().enumerate() {
                if ((2..4).contains(&i) || (12..16).contains(&i)) && value != 0 {
                    return Err(BinaryError::Reserved {
                        field: what(),
                        offset: at + i,
                        value,
                    });
                }
            }
            let elem_code = e[1];
            let kind = match e[0] {
                0 => ArgKind::Tensor(ElemKind::from_code(elem_code).ok_or(
                    BinaryError::ElemKind {
                        index,
                        offset: at + 1,
                        value: elem_code,
                        reason: "not 0 (any), 1 (f32), 2 (i32), 3 (u32), 4 (bf16) or 5 (f16)",
                    },
                )?),
                1 => ArgKind::I32,
                2 => ArgKind::U32,
                3 => ArgKind::F32,
                value => {
                    return Err(BinaryError::ArgKind {
                        index,
                        offset: at,
                        value,
                    });
                }
            };
            if !kind.is_tensor() && elem_code != 0 {
                return Err(BinaryError::ElemKind {
                    index,
                    offset: at + 1,
                    value: elem_code,
                    reason: "must be 0 for a scalar",
                });
            }
            if kind.is_tensor() {
                tensors += 1;
            } else {
                scalars += 1;
            }
            for (what, count, max) in [
                ("tensor", tensors, MAX_TENSOR_ARGS),
                ("scalar", scalars, MAX_SCALAR_ARGS),
            ] {
                if count > max {
                    return Err(BinaryError::TooManyArgs {
                        what,
                        count,
                        max,
                        arg_count,
                    });
                }
            }
            let (arg_name, name_at) = name(&what, at + 4, u32_at(e, 4), u32_at(e, 8))?;
            if let Some(first) = decls.iter().position(|d| d.name == arg_name) {
                return Err(BinaryError::DuplicateArg {
                    index,
                    first,
                    name: arg_name,
                    offset: name_at,
                });
            }
            decls.push(ArgDecl {
                name: arg_name,
                kind,
            });
        }

        Ok(KernelBinary {
            name: kernel_name,
            entry,
            code: code_words(&bytes[code.start as usize..code.end as usize]),
            args: decls,
            scratch_bytes,
        })
    }

    /// Checks what [`KernelBinary::from_bytes`] checks, on a binary built in memory;
    /// offsets in the error are those of [`KernelBinary::to_bytes`]'s layout.
    pub fn validate(&self) -> Result<(), BinaryError> {
        KernelBinary::from_bytes(&self.to_bytes()).map(drop)
    }

    /// The tensor slot of argument `arg` (an index into [`KernelBinary::args`]), if it
    /// is a tensor.
    pub fn tensor_slot(&self, arg: usize) -> Option<TReg> {
        if !self.args.get(arg)?.kind.is_tensor() {
            return None;
        }
        let n = self.args[..arg]
            .iter()
            .filter(|a| a.kind.is_tensor())
            .count();
        Some(TReg(u8::try_from(n).ok()?))
    }

    /// The `ldarg` index of argument `arg` (an index into [`KernelBinary::args`]), if
    /// it is a scalar.
    pub fn scalar_index(&self, arg: usize) -> Option<u32> {
        if self.args.get(arg)?.kind.is_tensor() {
            return None;
        }
        let n = self.args[..arg]
            .iter()
            .filter(|a| !a.kind.is_tensor())
            .count();
        u32::try_from(n).ok()
    }

    /// The index of the argument called `name`.
    pub fn arg_index(&self, name: &str) -> Option<usize> {
        self.args.iter().position(|a| a.name == name)
    }

    /// The tensor arguments, in slot order.
    pub fn tensor_args(&self) -> impl Iterator<Item = &ArgDecl> {
        self.args.iter().filter(|a| a.kind.is_tensor())
    }

    /// The scalar arguments, in `ldarg` order.
    pub fn scalar_args(&self) -> impl Iterator<Item = &ArgDecl> {
        self.args.iter().filter(|a| !a.kind.is_tensor())
    }
}

fn code_words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KernelBinary {
        KernelBinary {
            name: "saxpy".into(),
            entry: 1,
            code: vec![0, 1, 0x0000_0005_0000_1002],
            args: vec![
                ArgDecl::tensor("x", ElemKind::F32),
                ArgDecl::scalar("n", ArgKind::I32),
                ArgDecl::tensor("y", ElemKind::Any),
                ArgDecl::scalar("a", ArgKind::F32),
            ],
            scratch_bytes: 1024,
        }
    }

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn err(b: &[u8]) -> String {
        KernelBinary::from_bytes(b).unwrap_err().to_string()
    }

    #[test]
    fn round_trips() {
        let k = sample();
        let b = k.to_bytes();
        assert_eq!(&b[0..4], b"SGKB");
        assert_eq!(b.len(), 64 + 24 + 64 + 5 + 4);
        assert_eq!(KernelBinary::from_bytes(&b), Ok(k.clone()));
        assert_eq!(k.validate(), Ok(()));
    }

    #[test]
    fn slots_and_indexes_follow_declaration_order() {
        let k = sample();
        assert_eq!(k.tensor_slot(0), Some(TReg(0)));
        assert_eq!(k.tensor_slot(2), Some(TReg(1)));
        assert_eq!(k.tensor_slot(1), None);
        assert_eq!(k.scalar_index(1), Some(0));
        assert_eq!(k.scalar_index(3), Some(1));
        assert_eq!(k.scalar_index(0), None);
        assert_eq!(k.scalar_index(9), None);
        assert_eq!(k.arg_index("y"), Some(2));
        assert_eq!(k.tensor_args().count(), 2);
    }

    #[test]
    fn header_errors_name_the_field() {
        let good = sample().to_bytes();
        assert!(err(&good[..10]).contains("10 bytes long"));

        let mut b = good.clone();
        b[0] = b'X';
        assert!(err(&b).contains("magic at byte 0"));

        let mut b = good.clone();
        b[4] = 2;
        assert!(err(&b).contains("format version at byte 4 is 2"));

        let mut b = good.clone();
        b[6] = 2;
        let e = err(&b);
        assert!(e.contains("ISA major version at byte 6 is 2"), "{e}");
        assert!(e.contains("cannot run it"), "{e}");

        let mut b = good.clone();
        b[50] = 7;
        assert!(err(&b).contains("reserved byte at offset 50 (header) is 0x07"));

        let mut b = good.clone();
        put32(&mut b, 8, 3);
        assert!(err(&b).contains("entry at byte 8 is 3, not below the code_count of 3"));

        let mut b = good.clone();
        put32(&mut b, 44, 1 << 20);
        assert!(err(&b).contains("scratch_bytes at byte 44 is 1048576"));

        let mut b = good.clone();
        put32(&mut b, 16, 60);
        assert!(err(&b).contains("code_offset at byte 16 is 60, not a multiple of 8"));

        let mut b = good.clone();
        put32(&mut b, 16, 56);
        assert!(err(&b).contains("code_offset at byte 16 is 56, inside the 64-byte header"));

        let mut b = good.clone();
        put32(&mut b, 12, u32::MAX);
        assert!(err(&b).contains("past the end of the"), "{}", err(&b));

        let mut b = good.clone();
        put32(&mut b, 24, 64);
        assert!(err(&b).contains("overlap"));
    }

    #[test]
    fn argument_errors_name_the_argument() {
        let good = sample().to_bytes();
        let args = 64 + 24;

        let mut b = good.clone();
        b[args + 16] = 9;
        assert_eq!(
            err(&b),
            "argument 1: kind at byte 104 is 9, not 0 (tensor), 1 (i32), 2 (u32) or 3 (f32)"
        );

        let mut b = good.clone();
        b[args + 17] = 1;
        assert!(err(&b).contains("must be 0 for a scalar"));

        let mut b = good.clone();
        b[args + 1] = 6;
        assert!(err(&b).contains("argument 0: element kind at byte 89 is 6"));

        let mut b = good.clone();
        b[args + 14] = 1;
        assert!(err(&b).contains("reserved byte at offset 102 (argument 0)"));

        let mut b = good.clone();
        put32(&mut b, args + 8, 100);
        assert!(err(&b).contains("runs past the"));

        let strings = args + 64;
        let mut b = good.clone();
        b[strings + 5] = 0xff; // the name "x"
        assert!(err(&b).contains("argument 0: the name at byte"));
        b[strings + 5] = b'7';
        assert!(err(&b).contains("is not an identifier"));
        b[strings + 5] = b'y';
        assert!(err(&b).contains("is also argument 0's"), "{}", err(&b));
    }

    #[test]
    fn argument_counts_are_limited() {
        let mut k = sample();
        k.args = (0..17)
            .map(|i| ArgDecl::tensor(format!("t_{i}"), ElemKind::Any))
            .collect();
        assert!(
            k.validate()
                .unwrap_err()
                .to_string()
                .contains("17 tensor arguments")
        );
        k.args = (0..65)
            .map(|i| ArgDecl::scalar(format!("n{i}"), ArgKind::U32))
            .collect();
        assert!(
            k.validate()
                .unwrap_err()
                .to_string()
                .contains("65 scalar arguments")
        );
    }

    #[test]
    fn names_are_identifiers() {
        for good in ["x", "_a1", "saxpy_f32", "s", "pcx", "s1x"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "s3", "v31", "p99", "t0", "pc", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(!is_valid_name(&"a".repeat(256)));
    }
}

//! The register-table machinery: one declaration per block gives the offsets and bit
//! fields code uses and the tables `docs/hw/sg1-registers.md` is generated from.

use std::fmt::Write as _;

/// How software may access a register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Read only; writes are ignored.
    Ro,
    /// Read and write.
    Rw,
    /// Write only; reads return 0.
    Wo,
    /// Read; writing 1 to a bit clears it.
    W1c,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Ro => "RO",
            Access::Rw => "RW",
            Access::Wo => "WO",
            Access::W1c => "W1C",
        }
    }
}

/// A bit field `lo..=hi` of a 32-bit register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bits {
    /// Lowest bit.
    pub lo: u8,
    /// Highest bit.
    pub hi: u8,
}

impl Bits {
    /// The field's mask in place.
    pub const fn mask(self) -> u32 {
        let width = self.hi - self.lo + 1;
        let ones = if width >= 32 {
            u32::MAX
        } else {
            (1u32 << width) - 1
        };
        ones << self.lo
    }

    /// The field's value in `reg`.
    pub const fn get(self, reg: u32) -> u32 {
        (reg & self.mask()) >> self.lo
    }

    /// `reg` with the field set to `value` (truncated to the field's width).
    pub const fn set(self, reg: u32, value: u32) -> u32 {
        (reg & !self.mask()) | ((value << self.lo) & self.mask())
    }

    /// Whether a one-bit field is set in `reg`.
    pub const fn is_set(self, reg: u32) -> bool {
        self.get(reg) != 0
    }
}

/// A field's documentation entry.
#[derive(Debug)]
pub struct FieldInfo {
    /// Name.
    pub name: &'static str,
    /// Bits.
    pub bits: Bits,
    /// What it means.
    pub doc: &'static str,
}

/// A register's documentation entry.
#[derive(Debug)]
pub struct RegInfo {
    /// Name.
    pub name: &'static str,
    /// Offset from the start of its block (instance).
    pub offset: u32,
    /// Access type.
    pub access: Access,
    /// Value after reset.
    pub reset: u32,
    /// What it does.
    pub doc: &'static str,
    /// Its fields, if it has named ones.
    pub fields: &'static [FieldInfo],
}

/// A block of registers, possibly repeated (queues, MSI-X entries, sync objects).
#[derive(Debug)]
pub struct BlockInfo {
    /// Name.
    pub name: &'static str,
    /// Offset of the first instance in BAR0.
    pub base: u32,
    /// Number of instances.
    pub count: u32,
    /// Distance between instances.
    pub stride: u32,
    /// What the block is.
    pub doc: &'static str,
    /// Its registers.
    pub regs: &'static [RegInfo],
}

impl BlockInfo {
    /// BAR0 offset of instance `i` (0 for a single block).
    pub const fn instance(&self, i: u32) -> u32 {
        self.base + i * self.stride
    }
}

/// Declares a register block: offsets relative to the block, field constants, and the
/// documentation entry.
macro_rules! block {
    (
        $(#[doc = $bdoc:literal])*
        $module:ident: $name:literal @ $base:literal $(, $count:literal x $stride:literal)? {
            $(
                $(#[doc = $rdoc:literal])*
                $reg:ident @ $off:literal : $access:ident = $reset:literal
                $({
                    $(
                        $(#[doc = $fdoc:literal])*
                        $field:ident : $lo:literal ..= $hi:literal
                    ),* $(,)?
                })?;
            )*
        }
    ) => {
        $(#[doc = $bdoc])*
        pub mod $module {
            #[allow(unused_imports)]
            use $crate::reg::{Access, BlockInfo, Bits, FieldInfo, RegInfo};

            /// BAR0 offset of the (first instance of the) block.
            pub const BASE: u32 = $base;

            $(
                $(#[doc = $rdoc])*
                pub const $reg: u32 = $off;
            )*

            /// Bit fields, one module per register that has them.
            pub mod fields {
                $($(
                    #[allow(non_snake_case, missing_docs)]
                    pub mod $reg {
                        use $crate::reg::Bits;
                        $(
                            $(#[doc = $fdoc])*
                            pub const $field: Bits = Bits { lo: $lo, hi: $hi };
                        )*
                    }
                )?)*
            }

            /// The block's documentation entry.
            pub static BLOCK: BlockInfo = BlockInfo {
                name: $name,
                base: $base,
                count: $crate::reg::block!(@count $($count)?),
                stride: $crate::reg::block!(@stride $($stride)?),
                doc: concat!($($bdoc, "\n"),*),
                regs: &[
                    $(
                        RegInfo {
                            name: stringify!($reg),
                            offset: $off,
                            access: Access::$access,
                            reset: $reset,
                            doc: concat!($($rdoc, "\n"),*),
                            fields: &[
                                $($(
                                    FieldInfo {
                                        name: stringify!($field),
                                        bits: Bits { lo: $lo, hi: $hi },
                                        doc: concat!($($fdoc, " "),*),
                                    },
                                )*)?
                            ],
                        },
                    )*
                ],
            };

            /// BAR0 offset of instance `i`.
            pub const fn instance(i: u32) -> u32 {
                BASE + i * BLOCK.stride
            }
        }
    };
    (@count $count:literal) => { $count };
    (@count) => { 1 };
    (@stride $stride:literal) => { $stride };
    (@stride) => { 0 };
}

pub(crate) use block;

fn trim_doc(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The markdown register reference for `blocks`: one table per block.
pub fn render_markdown(blocks: &[&BlockInfo]) -> String {
    let mut out = String::new();
    for b in blocks {
        let _ = writeln!(out, "## {} (BAR0 `{:#07x}`)\n", b.name, b.base);
        let _ = writeln!(out, "{}\n", trim_doc(b.doc));
        if b.count > 1 {
            let _ = writeln!(
                out,
                "{} instances, {:#x} bytes apart: instance *i* is at `{:#07x} + i × {:#x}`.\n",
                b.count, b.stride, b.base, b.stride
            );
        }
        out.push_str(
            "| Offset | Register | Access | Reset | Description |\n|---|---|---|---|---|\n",
        );
        for r in b.regs {
            let mut desc = trim_doc(r.doc);
            for f in r.fields {
                let bits = if f.bits.lo == f.bits.hi {
                    format!("{}", f.bits.lo)
                } else {
                    format!("{}:{}", f.bits.hi, f.bits.lo)
                };
                let _ = write!(desc, "<br>`[{bits}]` **{}**: {}", f.name, trim_doc(f.doc));
            }
            let _ = writeln!(
                out,
                "| `{:#05x}` | `{}` | {} | `{:#x}` | {} |",
                r.offset,
                r.name,
                r.access.name(),
                r.reset,
                desc
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_get_and_set_in_place() {
        let f = Bits { lo: 4, hi: 7 };
        assert_eq!(f.mask(), 0xf0);
        assert_eq!(f.get(0xabcd), 0xc);
        assert_eq!(f.set(0xabcd, 0x3), 0xab3d);
        assert_eq!(f.set(0, 0x1ff), 0xf0, "values are truncated to the field");
        assert_eq!(Bits { lo: 0, hi: 31 }.mask(), u32::MAX);
        assert!(Bits { lo: 2, hi: 2 }.is_set(4));
    }
}

//! The SG1's hardware interface, defined once: what the device model (`hw/accel`) and
//! the driver (`kernel/accel`) agree on, and nothing else.
//!
//! - [`regs`]: the BAR0 registers, block by block, with their bit fields. The same
//!   declarations generate `docs/hw/sg1-registers.md`.
//! - [`packet`]: the command-buffer packets and their encoding.
//! - [`entry`]: queue ring entries and completion entries in host memory.
//! - [`launch`]: what a `LAUNCH` packet points at (the argument buffer) and how the
//!   compute cores report a fault.
//! - [`mmu`]: the page-table format and device physical addresses.
//! - [`firmware`]: the mailbox protocol, a stable ABI.
//!
//! The driver depends on this crate and never on the device model, so it can only
//! reach the device the way a real driver does: registers, DMA and interrupts.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod entry;
pub mod firmware;
pub mod launch;
pub mod mmu;
pub mod packet;
pub mod reg;
pub mod regs;

/// Size of BAR0 (the register file).
pub const BAR0_SIZE: u64 = 1 << 20;
/// Index of the HBM BAR.
pub const HBM_BAR: u8 = 2;
/// Index of the register BAR.
pub const REG_BAR: u8 = 0;

/// Queues (and engines): DMA0, DMA1, COMPUTE.
pub const NUM_QUEUES: u32 = 3;
/// The first DMA engine's queue.
pub const QUEUE_DMA0: u32 = 0;
/// The second DMA engine's queue.
pub const QUEUE_DMA1: u32 = 1;
/// The compute queue: the only one whose engine runs `LAUNCH` packets.
pub const QUEUE_COMPUTE: u32 = 2;
/// Compute cores the register map and the `LAUNCH` core mask have room for; a device
/// has `GLOBAL.NUM_CORES` of them (cores 0 to `NUM_CORES - 1`).
pub const NUM_CORES: u32 = 16;
/// The compute cores' clock, MHz: they retire one instruction per cycle
/// (`GLOBAL.CORE_CLOCK_MHZ`).
pub const CORE_CLOCK_MHZ: u32 = 1500;
/// Most instructions a `LAUNCH` may run (`code_count`).
pub const MAX_CODE_INSTS: u32 = 1 << 16;
/// Address spaces; ASID 0 is the kernel's.
pub const NUM_ASIDS: u32 = 64;
/// Sync objects.
pub const NUM_SOBS: u32 = 2048;
/// Sync monitors.
pub const NUM_MONITORS: u32 = 256;
/// MSI-X vectors.
pub const NUM_MSIX: u32 = 8;
/// Largest command buffer an entry may point to.
pub const MAX_CB_SIZE: u32 = 2 << 20;

/// MSI-X vector of the completion queue.
pub const VECTOR_CQ: u32 = 0;
/// MSI-X vector of MMU faults.
pub const VECTOR_MMU: u32 = 1;
/// MSI-X vector of firmware responses.
pub const VECTOR_FIRMWARE: u32 = 2;
/// MSI-X vector of sync monitors.
pub const VECTOR_MONITOR: u32 = 3;

/// The markdown register reference, as `docs/hw/sg1-registers.md` holds it.
pub fn register_reference() -> String {
    let mut out = String::from(
        "# SG1 register reference\n\n\
         Generated from `hw/accel/abi/src/regs.rs` (the one declaration of the registers); \
         do not edit by hand. Every register is 32 bits; offsets are relative to the \
         block instance.\n\n",
    );
    out.push_str(&reg::render_markdown(&regs::blocks()));
    out
}

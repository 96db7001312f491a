//! The SG1's BAR0 registers. Offsets inside a block are relative to the block's
//! instance (`block::instance(i)`); every register is 32 bits, little endian.

use crate::reg::block;

block! {
    /// Identification, status, reset and sizes.
    global: "GLOBAL" @ 0x00000 {
        /// Chip identification: `0x5347_0001` (vendor "SG", device 1).
        ID @ 0x000 : Ro = 0x5347_0001;
        /// Silicon revision.
        REVISION @ 0x004 : Ro = 0x1;
        /// Device state.
        STATUS @ 0x008 : Ro = 0x0 {
            /// The firmware has booted and answers its mailbox.
            FW_READY: 0..=0,
            /// A reset is in progress.
            IN_RESET: 1..=1,
        };
        /// Free for software; cleared by a hard reset.
        SCRATCH @ 0x00c : Rw = 0x0;
        /// Writing a 1 resets the device; the reset has completed when the write has (a
        /// read of `STATUS` after it never sees `IN_RESET`).
        RESET @ 0x010 : Wo = 0x0 {
            /// Soft reset: queues, completion queue, sync manager and MMU fault state.
            SOFT: 0..=0,
            /// Hard reset: everything, HBM scrubbed to zero, MSI-X table and MMU cleared,
            /// firmware rebooted.
            HARD: 1..=1,
        };
        /// Soft resets since power-on.
        SOFT_RESETS @ 0x014 : Ro = 0x0;
        /// Hard resets since power-on.
        HARD_RESETS @ 0x018 : Ro = 0x0;
        /// HBM size in bytes, low half.
        HBM_SIZE_LO @ 0x020 : Ro = 0x0;
        /// HBM size in bytes, high half.
        HBM_SIZE_HI @ 0x024 : Ro = 0x0;
        /// Counts of the device's resources.
        CAPS @ 0x028 : Ro = 0x0040_0803 {
            /// Queues (DMA0, DMA1, COMPUTE).
            QUEUES: 0..=7,
            /// MSI-X vectors.
            MSIX: 8..=15,
            /// Address spaces (ASIDs), 0 being the kernel's.
            ASIDS: 16..=23,
        };
        /// Sync objects.
        NUM_SOBS @ 0x02c : Ro = 0x800;
        /// Sync monitors.
        NUM_MONITORS @ 0x030 : Ro = 0x100;
        /// Compute cores: cores 0 to `NUM_CORES - 1` exist (the `CORE` block has room
        /// for 16). 8 unless the device was built with another count.
        NUM_CORES @ 0x034 : Ro = 0x8;
        /// The compute cores' clock in MHz; a core retires one instruction per cycle.
        CORE_CLOCK_MHZ @ 0x038 : Ro = 0x5dc;
        /// The instruction set the cores run (`docs/isa/`): kernels built for another
        /// major version must not be launched.
        ISA_VERSION @ 0x03c : Ro = 0x100 {
            /// Minor version: instructions added compatibly.
            MINOR: 0..=7,
            /// Major version.
            MAJOR: 8..=15,
        };
        /// MSI-X pending bits: a vector raised while masked, sent when unmasked.
        MSIX_PENDING @ 0x040 : Ro = 0x0;
    }
}

block! {
    /// The MSI-X table: how to raise each interrupt vector (an address and a dword the
    /// device writes). Vectors: 0 completion queue, 1 MMU fault, 2 firmware mailbox, 3
    /// sync monitor.
    msix: "MSIX" @ 0x01000, 8 x 0x10 {
        /// Message address, low half.
        ADDR_LO @ 0x0 : Rw = 0x0;
        /// Message address, high half.
        ADDR_HI @ 0x4 : Rw = 0x0;
        /// Message data.
        DATA @ 0x8 : Rw = 0x0;
        /// Vector control.
        CTRL @ 0xc : Rw = 0x1 {
            /// The vector is masked: its interrupts wait in `MSIX_PENDING`.
            MASKED: 0..=0,
        };
    }
}

block! {
    /// The firmware mailbox: write a request to `MBOX_REQ`, ring `DOORBELL`; the answer
    /// appears in `MBOX_RESP` with `RESP_VALID` set and the firmware vector raised. See
    /// `docs/hw/firmware.md`.
    mbox: "MBOX" @ 0x02000 {
        /// Writing any value submits the request in `MBOX_REQ`.
        DOORBELL @ 0x000 : Wo = 0x0;
        /// Mailbox state.
        STATUS @ 0x004 : W1c = 0x0 {
            /// The firmware is processing a request.
            BUSY: 0..=0,
            /// A response is in `MBOX_RESP` (write 1 to clear).
            RESP_VALID: 1..=1,
        };
    }
}

block! {
    /// The request buffer of the mailbox, 16 dwords.
    mbox_req: "MBOX_REQ" @ 0x02100, 16 x 0x4 {
        /// One dword of the request.
        DATA @ 0x0 : Rw = 0x0;
    }
}

block! {
    /// The response buffer of the mailbox, 16 dwords.
    mbox_resp: "MBOX_RESP" @ 0x02200, 16 x 0x4 {
        /// One dword of the response.
        DATA @ 0x0 : Ro = 0x0;
    }
}

block! {
    /// The device MMU: translates the virtual addresses of each address space (ASID)
    /// through 4-level page tables in HBM. ASID 0 is the kernel's and is not translated
    /// (physical addressing).
    mmu: "MMU" @ 0x03000 {
        /// Writing an ASID (or `0xffff_ffff` for all) drops cached translations. The
        /// engines cache none; the compute cores' caches are dropped (all of them,
        /// whatever the ASID), and the write completes only once every core access
        /// that used an old translation has: after it, no access of a running launch
        /// reaches a page through a mapping that was removed before it.
        INVALIDATE @ 0x000 : Wo = 0x0;
        /// Fault record state.
        FAULT_STATUS @ 0x004 : W1c = 0x0 {
            /// A fault is recorded in the `FAULT_*` registers (write 1 to clear).
            VALID: 0..=0,
            /// More faults happened while one was recorded.
            OVERFLOW: 1..=1,
        };
        /// ASID of the recorded fault.
        FAULT_ASID @ 0x008 : Ro = 0x0;
        /// Faulting virtual address, low half.
        FAULT_VA_LO @ 0x00c : Ro = 0x0;
        /// Faulting virtual address, high half.
        FAULT_VA_HI @ 0x010 : Ro = 0x0;
        /// Why: 1 not present, 2 write to a read-only page, 3 no page table, 4 address
        /// beyond 48 bits, 5 the host side refused the access (IOMMU).
        FAULT_CAUSE @ 0x014 : Ro = 0x0 {
            /// The cause code.
            CODE: 0..=7,
            /// The access was a write.
            WRITE: 8..=8,
        };
        /// Faults since reset.
        FAULT_COUNT @ 0x018 : Ro = 0x0;
    }
}

block! {
    /// Per-ASID page-table roots: the HBM address of each address space's hop-0 table
    /// (0: the address space has no table, every access faults).
    mmu_hop0: "MMU_HOP0" @ 0x03400, 64 x 0x8 {
        /// HBM address of the hop-0 table, low half.
        LO @ 0x0 : Rw = 0x0;
        /// HBM address of the hop-0 table, high half.
        HI @ 0x4 : Rw = 0x0;
    }
}

block! {
    /// Queues: rings of job entries in host memory, one engine each (0 DMA0, 1 DMA1, 2
    /// COMPUTE). The driver writes entries, then the new producer index to `PI` (the
    /// doorbell); the engine fetches entries by DMA and advances `CI`.
    queue: "QUEUE" @ 0x04000, 3 x 0x100 {
        /// DMA address of the ring, low half (16-byte aligned).
        BASE_LO @ 0x00 : Rw = 0x0;
        /// DMA address of the ring, high half.
        BASE_HI @ 0x04 : Rw = 0x0;
        /// log2 of the number of 32-byte entries (1 to 16).
        SIZE_LOG2 @ 0x08 : Rw = 0x0;
        /// Producer index (free running, the ring slot is `PI mod size`); writing it
        /// rings the doorbell.
        PI @ 0x0c : Rw = 0x0;
        /// Consumer index: entries finished (free running).
        CI @ 0x10 : Ro = 0x0;
        /// Control.
        CTRL @ 0x14 : Rw = 0x0 {
            /// The engine fetches entries.
            ENABLE: 0..=0,
        };
        /// Engine state.
        STATUS @ 0x18 : Ro = 0x1 {
            /// Nothing to do.
            IDLE: 0..=0,
            /// Blocked on a `WAIT` packet.
            WAITING: 1..=1,
        };
        /// Device time the engine has been busy, ns, low half.
        BUSY_NS_LO @ 0x20 : Ro = 0x0;
        /// Device time the engine has been busy, ns, high half.
        BUSY_NS_HI @ 0x24 : Ro = 0x0;
        /// Entries that ended with an error.
        ERRORS @ 0x28 : Ro = 0x0;
    }
}

block! {
    /// The completion queue: a ring in host memory where engines write 32-byte
    /// completion entries (a `FENCE` packet, or an error ending a job entry) and raise
    /// MSI-X vector 0.
    cq: "CQ" @ 0x05000 {
        /// DMA address of the ring, low half.
        BASE_LO @ 0x00 : Rw = 0x0;
        /// DMA address of the ring, high half.
        BASE_HI @ 0x04 : Rw = 0x0;
        /// log2 of the number of entries (1 to 16).
        SIZE_LOG2 @ 0x08 : Rw = 0x0;
        /// Producer index: entries written (free running).
        PI @ 0x0c : Ro = 0x0;
        /// Consumer index: the driver writes how far it has read; an engine with a
        /// completion to write waits while the ring is full.
        CI @ 0x10 : Rw = 0x0;
        /// Control.
        CTRL @ 0x14 : Rw = 0x0 {
            /// Completions are written.
            ENABLE: 0..=0,
        };
    }
}

block! {
    /// The HBM scrubber: zeroes a range of HBM (page granular), used to clear memory
    /// before it changes owner.
    scrub: "SCRUB" @ 0x06000 {
        /// HBM address, low half (4 KiB aligned).
        ADDR_LO @ 0x00 : Rw = 0x0;
        /// HBM address, high half.
        ADDR_HI @ 0x04 : Rw = 0x0;
        /// Bytes, low half (a multiple of 4 KiB).
        SIZE_LO @ 0x08 : Rw = 0x0;
        /// Bytes, high half.
        SIZE_HI @ 0x0c : Rw = 0x0;
        /// Writing `GO` scrubs the range; it has completed when the write has.
        CTRL @ 0x10 : Wo = 0x0 {
            /// Start.
            GO: 0..=0,
        };
        /// Outcome of the last scrub.
        STATUS @ 0x14 : Ro = 0x0 {
            /// Done.
            DONE: 0..=0,
            /// The range was not aligned or not inside HBM; nothing was scrubbed.
            ERROR: 1..=1,
        };
    }
}

block! {
    /// Sync objects: 32-bit counters that `MSG` packets set or add to and `WAIT`
    /// packets and monitors compare against. Software may read and write them.
    sob: "SOB" @ 0x10000, 2048 x 0x4 {
        /// The value.
        VALUE @ 0x0 : Rw = 0x0;
    }
}

block! {
    /// Sync object ownership: the ASID whose job entries may use each sync object
    /// (0: only the kernel's privileged entries).
    sob_owner: "SOB_OWNER" @ 0x18000, 2048 x 0x4 {
        /// Owner ASID.
        ASID @ 0x0 : Rw = 0x0;
    }
}

block! {
    /// Sync monitors: armed on "sync object ≥ target", a monitor fires once: it writes a
    /// payload dword to an address and/or raises MSI-X vector 3.
    monitor: "MONITOR" @ 0x20000, 256 x 0x20 {
        /// The sync object watched.
        SOB @ 0x00 : Rw = 0x0;
        /// The value to reach.
        TARGET @ 0x04 : Rw = 0x0;
        /// Payload address, low half (device physical: bit 63 set is a host DMA address,
        /// otherwise HBM).
        PAYLOAD_ADDR_LO @ 0x08 : Rw = 0x0;
        /// Payload address, high half.
        PAYLOAD_ADDR_HI @ 0x0c : Rw = 0x0;
        /// Payload dword.
        PAYLOAD_DATA @ 0x10 : Rw = 0x0;
        /// Writing `ARM` arms the monitor (it fires at once if the condition holds).
        ARM @ 0x14 : Wo = 0x0 {
            /// Arm.
            ARM: 0..=0,
            /// Write the payload when firing.
            WRITE: 1..=1,
            /// Raise the monitor vector when firing.
            IRQ: 2..=2,
        };
        /// Monitor state.
        STATUS @ 0x18 : W1c = 0x0 {
            /// Armed, waiting.
            ARMED: 0..=0,
            /// Has fired since last cleared (write 1 to clear).
            FIRED: 1..=1,
        };
    }
}

block! {
    /// The compute cores, one instance per core (`GLOBAL.NUM_CORES` of them exist; the
    /// registers of the others read 0). Counters accumulate when a `LAUNCH` ends, over
    /// every launch since the last reset (soft or hard, which zero them). The fault
    /// record holds the fault that ended the core's part of a launch, when that fault
    /// was the one reported (the lowest-numbered faulting core's); a record stays
    /// until software clears it, later faults only set `OVERFLOW`. Resets clear it.
    cores: "CORE" @ 0x07000, 16 x 0x40 {
        /// Instructions retired, low half.
        INSTRUCTIONS_LO @ 0x00 : Ro = 0x0;
        /// Instructions retired, high half.
        INSTRUCTIONS_HI @ 0x04 : Ro = 0x0;
        /// Vector lane operations (the active lanes of each vector instruction), low
        /// half.
        LANE_OPS_LO @ 0x08 : Ro = 0x0;
        /// Vector lane operations, high half.
        LANE_OPS_HI @ 0x0c : Ro = 0x0;
        /// Bytes of global memory read and written, low half.
        GLOBAL_BYTES_LO @ 0x10 : Ro = 0x0;
        /// Bytes of global memory read and written, high half.
        GLOBAL_BYTES_HI @ 0x14 : Ro = 0x0;
        /// Invocations run to `halt`, low half.
        INVOCATIONS_LO @ 0x18 : Ro = 0x0;
        /// Invocations run to `halt`, high half.
        INVOCATIONS_HI @ 0x1c : Ro = 0x0;
        /// Bytes of scratchpad read and written, low half.
        SCRATCH_BYTES_LO @ 0x20 : Ro = 0x0;
        /// Bytes of scratchpad read and written, high half.
        SCRATCH_BYTES_HI @ 0x24 : Ro = 0x0;
        /// Device time the core has been busy, ns, low half.
        BUSY_NS_LO @ 0x28 : Ro = 0x0;
        /// Device time the core has been busy, ns, high half.
        BUSY_NS_HI @ 0x2c : Ro = 0x0;
        /// The recorded fault. Writing a value with any `CODE` bit set clears the
        /// record (`CODE`, `WRITE`, `FAULT_PC`, `FAULT_INFO`); writing 1 to `OVERFLOW`
        /// clears it. Writing back the value read clears both.
        FAULT_CAUSE @ 0x30 : W1c = 0x0 {
            /// The fault code, 0 for none: 1 illegal instruction, 2 pc out of the
            /// program, 3 misaligned scratchpad address, 4 scratchpad range, 5 scalar
            /// argument index, 6 tensor slot, 7 tensor element type, 8 tensor
            /// coordinate, 9 MMU (also recorded in `MMU.FAULT_*`), 10 division by zero.
            CODE: 0..=7,
            /// An MMU fault of a store.
            WRITE: 8..=8,
            /// Another fault of this core was reported while the record was held.
            OVERFLOW: 9..=9,
        };
        /// Index of the faulting instruction.
        FAULT_PC @ 0x34 : Ro = 0x0;
        /// Detail of the fault, low half: by code, the instruction word (1), the
        /// target index (2), the scratchpad address (3, 4), the argument index (5),
        /// the slot (6), the slot in bits 7:0 and the element size in bits 63:16 (7),
        /// the slot in bits 7:0, the dimension in bits 15:8 and the coordinate in bits
        /// 63:16 (8), the virtual address (9), 0 (10). Signed values are
        /// sign-extended.
        FAULT_INFO_LO @ 0x38 : Ro = 0x0;
        /// Detail of the fault, high half.
        FAULT_INFO_HI @ 0x3c : Ro = 0x0;
    }
}

/// Every block, in address order (what the generated reference lists).
pub fn blocks() -> [&'static crate::reg::BlockInfo; 14] {
    [
        &global::BLOCK,
        &msix::BLOCK,
        &mbox::BLOCK,
        &mbox_req::BLOCK,
        &mbox_resp::BLOCK,
        &mmu::BLOCK,
        &mmu_hop0::BLOCK,
        &queue::BLOCK,
        &cq::BLOCK,
        &scrub::BLOCK,
        &cores::BLOCK,
        &sob::BLOCK,
        &sob_owner::BLOCK,
        &monitor::BLOCK,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_ordered_and_disjoint_and_fit_in_bar0() {
        let blocks = blocks();
        let mut end = 0;
        for b in blocks {
            let last = b.regs.iter().map(|r| r.offset + 4).max().unwrap_or(0);
            let span = if b.count > 1 {
                b.stride * (b.count - 1) + last
            } else {
                last
            };
            assert!(b.base >= end, "{} overlaps the block before it", b.name);
            if b.count > 1 {
                assert!(last <= b.stride, "{} registers overflow the stride", b.name);
            }
            end = b.base + span;
        }
        assert!(end <= crate::BAR0_SIZE as u32);
    }

    #[test]
    fn offsets_are_dword_aligned_and_unique_in_a_block() {
        for b in blocks() {
            let mut seen = std::collections::HashSet::new();
            for r in b.regs {
                assert_eq!(r.offset % 4, 0, "{}.{}", b.name, r.name);
                assert!(
                    seen.insert(r.offset),
                    "{}.{} repeats an offset",
                    b.name,
                    r.name
                );
            }
        }
    }

    #[test]
    fn caps_reset_value_matches_the_constants() {
        use crate::reg::Bits;
        let caps = global::BLOCK
            .regs
            .iter()
            .find(|r| r.name == "CAPS")
            .unwrap()
            .reset;
        let get = |b: Bits| b.get(caps);
        assert_eq!(get(global::fields::CAPS::QUEUES), crate::NUM_QUEUES);
        assert_eq!(get(global::fields::CAPS::MSIX), crate::NUM_MSIX);
        assert_eq!(get(global::fields::CAPS::ASIDS), crate::NUM_ASIDS);
        assert_eq!(sob::BLOCK.count, crate::NUM_SOBS);
        assert_eq!(monitor::BLOCK.count, crate::NUM_MONITORS);
        assert_eq!(msix::BLOCK.count, crate::NUM_MSIX);
        assert_eq!(queue::BLOCK.count, crate::NUM_QUEUES);
        assert_eq!(mmu_hop0::BLOCK.count, crate::NUM_ASIDS);
        assert_eq!(cores::BLOCK.count, crate::NUM_CORES);
        let reset = |name| {
            global::BLOCK
                .regs
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .reset
        };
        assert_eq!(reset("CORE_CLOCK_MHZ"), crate::CORE_CLOCK_MHZ);
        let isa = reset("ISA_VERSION");
        assert_eq!(
            global::fields::ISA_VERSION::MAJOR.get(isa),
            u32::from(sagrada_isa::ISA_VERSION_MAJOR)
        );
        assert_eq!(
            global::fields::ISA_VERSION::MINOR.get(isa),
            u32::from(sagrada_isa::ISA_VERSION_MINOR)
        );
        let fault_code = cores::fields::FAULT_CAUSE::CODE;
        for c in crate::launch::FaultCode::ALL {
            assert_eq!(fault_code.get(c as u32), c as u32, "codes fit CODE");
        }
    }
}

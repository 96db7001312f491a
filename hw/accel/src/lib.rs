//! The SG1 accelerator, emulated: the device behind an SG1 endpoint of the fabric.
//!
//! The model is driven only through its BAR0 registers (`sagrada-hw-accel-abi` is the
//! contract, `docs/hw/sg1-registers.md` its reference), reaches host memory only by
//! DMA through the fabric with the SG1 as initiator (so the IOMMU checks, the link
//! counters and the link timing are the fabric's), and signals the host only by MSI-X
//! messages. Its HBM is the memory behind BAR2, which it accesses directly.
//!
//! What is modelled:
//! - **Registers**: identification, status, scratch, soft and hard reset (synchronous:
//!   the reset has completed when the `RESET` write has), sizes and capabilities.
//! - **MSI-X**: the 8-vector table with masking and pending bits.
//! - **Firmware**: the mailbox protocol of `abi::firmware`, answered by a firmware
//!   thread; it boots at attach and after a hard reset.
//! - **MMU**: ASID 0 physical (HBM below its size, host DMA addresses with bit 63), the
//!   other ASIDs through 4-level page tables in HBM with 4 KiB and 2 MiB leaves and
//!   host leaves; faults recorded in the `MMU.FAULT_*` registers with an interrupt. The
//!   engines cache nothing (every access walks the tables); the compute cores cache
//!   translations per 4 KiB page for a launch, and `INVALIDATE` drops them, waiting
//!   for the accesses in progress, so that a running launch never reaches a page
//!   unmapped before the write returned.
//! - **Queues and engines**: DMA0, DMA1 and COMPUTE each run job entries from a ring in
//!   host memory: the command buffer is read through the MMU and its packets executed
//!   in order (`NOP`, `WREG32`, `LIN_DMA` in all four directions, `MSG`, `WAIT`,
//!   `FENCE`, and on COMPUTE `LAUNCH`), with privilege checks for unprivileged address
//!   spaces. Errors end an entry with an error completion; the engine goes on with the
//!   next entry.
//! - **Compute cores** (8 by default, [`Sg1Config::cores`]): `LAUNCH` runs a kernel of
//!   the `sagrada-isa` instruction set over a 4-dimensional index space, split in
//!   blocks over the cores of its core mask. Each core is the ISA's reference semantics
//!   (`sagrada_isa::exec`), with its state kept across launches; its global memory is
//!   the launch's address space through the MMU (HBM directly, host memory by fabric
//!   DMA). The first fault (the lowest-numbered faulting core's) fails the entry with
//!   `CoreFault` and lands in that core's `CORE.FAULT_*` registers (and in `MMU.FAULT_*`
//!   for an MMU fault); per-core counters accumulate in `CORE.*`. The cores run on a
//!   pool of host threads ([`Sg1Config::core_threads`]); results do not depend on how
//!   many.
//! - **Completion queue** shared by the engines, with back-pressure when it is full.
//! - **Sync manager**: 2048 sync objects with owners, 256 monitors that write a payload
//!   and/or raise an interrupt once their condition holds.
//! - **Scrubber**: synchronous zeroing of page-aligned HBM ranges.
//! - **Device time**: each engine keeps a clock of the time the hardware would have
//!   spent (fabric transfer times, HBM copies at the configured bandwidth, a small
//!   decode cost per packet), reported in `BUSY_NS` and in completion entries. A core
//!   retires one instruction per cycle at `CORE_CLOCK_MHZ` (1.5 GHz) and adds its HBM
//!   bytes at the HBM bandwidth and the fabric's time for its host accesses, one after
//!   the other; a launch takes as long as its slowest core.
//!
//! Behaviour the ABI leaves open, as this model defines it:
//! - A queue or the completion queue whose `SIZE_LOG2` is outside 1..=16 is treated as
//!   disabled (the engine fetches nothing; completions are dropped).
//! - A ring entry the fabric refuses to deliver, a completion entry or monitor payload
//!   the fabric refuses to take, are bus errors: recorded as an MMU fault of ASID 0
//!   (cause `HostRefused`, the device physical address `host_phys(addr)`) with the MMU
//!   vector raised. An entry that could not be fetched is skipped with an error
//!   completion (`MmuFault`, tag 0, `info` the device physical address of the slot).
//! - Device physical addresses below bit 63 but beyond the HBM (ASID 0, a page-table
//!   leaf, a monitor payload) fault with cause `BadAddress`. Page tables must live in
//!   HBM: a table pointer outside it, or with `HOST` set, is `NotPresent`. `LARGE` is
//!   honoured at hop 2 only, and its address is taken 2 MiB aligned.
//! - `WREG32` to an offset that is not a dword inside BAR0 is a `BadPacket`.
//! - A monitor watching a sync object ≥ `NUM_SOBS` never fires; writing `ARM` with the
//!   `ARM` bit clear does nothing; writing 1 to `STATUS.ARMED` (the register is W1C)
//!   disarms the monitor.
//! - A hard reset drops a mailbox request still in flight (the driver resends it); it
//!   keeps the last response, so the response of a `RESET` request stays readable.
//! - The engine clock counts busy time only: time blocked on `WAIT` or on a full
//!   completion queue adds nothing, so an engine's clock is its `BUSY_NS`.
//! - Misaligned accesses, or accesses whose length is not a multiple of 4 bytes, are
//!   dropped (reads return all-ones).
//! - `LAUNCH` on a DMA queue, or with a core-mask bit for a core the device does not
//!   have, is a `BadPacket`. Registers of `CORE` instances beyond `NUM_CORES` read 0.
//! - Page-table changes made while a launch runs may or may not be seen by its cores
//!   (they cache translations for the launch); the driver must not change mappings a
//!   running launch uses. An address a core computes beyond 64 bits is an MMU fault
//!   with cause `BadAddress`.
//! - Once a core has faulted, the higher-numbered cores stop at their next check (every
//!   64 Ki instructions or so, and between invocations); lower-numbered ones run on,
//!   so the fault reported does not depend on timing. Memory written by cores of a
//!   failed launch is left as it is.
//! - Cores that share a host thread run one after the other, not interleaved: a core
//!   that never halts keeps the later cores of its thread from starting. The ISA has
//!   no way for cores to wait for each other, so no kernel can tell (but a reset is
//!   then the only way out, as it is for any kernel that never halts).
//!
//! What is left out: a TLB and its invalidation timing, contention between engines
//! and cores for HBM or links (each core sees the whole HBM bandwidth), instruction
//! latencies and pipelining in the cores, power and thermal behaviour (the firmware
//! reports a constant 45 °C), firmware updates, and error injection.
//!
//! # Threads
//!
//! Each queue gets an engine thread on its first doorbell (a write of its `PI`), and
//! the firmware a thread on the first mailbox doorbell, so an unused device costs no
//! threads. The first `LAUNCH` starts the compute workers: `core_threads - 1` of them
//! (at most `cores - 1`), the COMPUTE engine's own thread being the first; they park
//! between launches. A reset or shutdown stops running kernels at their next check. An engine out of work spins for about 50 µs before it parks (the latency
//! target is a median of 10 µs from doorbell to completion interrupt); the doorbell
//! wakes it. [`Sg1::shutdown`] (also run on drop) stops and joins every thread. No
//! device lock is held while an interrupt is raised (the driver's handler runs inside
//! the MSI write and reads registers) or during a copy.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compute;
mod device;
mod engine;
mod firmware;
mod mmu;

use std::fmt;
use std::sync::Arc;

use sagrada_hw_fabric::{DeviceId, EndpointKind, Fabric, FunctionKind};

use crate::device::Core;

/// How one SG1 is built.
#[derive(Clone, Debug, PartialEq)]
pub struct Sg1Config {
    /// Firmware version reported by `GET_VERSION` (major, minor, patch); the major
    /// version is the mailbox protocol version.
    pub firmware_version: (u32, u32, u32),
    /// Serial number reported by `GET_INFO`.
    pub serial: u32,
    /// HBM bandwidth in bytes per second, for the device time of HBM-to-HBM copies
    /// and of the compute cores' HBM accesses.
    pub hbm_bandwidth: f64,
    /// Compute cores (1 to [`NUM_CORES`](sagrada_hw_accel_abi::NUM_CORES)), reported
    /// in `GLOBAL.NUM_CORES`.
    pub cores: u32,
    /// Host threads that run the compute cores (at least 1): core `i` runs on thread
    /// `i % core_threads`. More threads than cores are not started. Results do not
    /// depend on it.
    pub core_threads: usize,
}

impl Default for Sg1Config {
    fn default() -> Self {
        Self {
            firmware_version: (1, 2, 0),
            serial: 0,
            hbm_bandwidth: 800e9,
            cores: 8,
            core_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Why an SG1 model cannot be attached.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Sg1Error {
    /// The device is not an SG1 endpoint of the fabric.
    #[error("{0:?} is not an SG1 endpoint of this fabric")]
    NotAnSg1(DeviceId),
    /// The SG1 endpoint has no memory behind its HBM BAR.
    #[error("{0:?} has no HBM behind BAR2")]
    NoHbm(DeviceId),
    /// BAR0 already has a device model.
    #[error("cannot attach the SG1 model: {0}")]
    Bar0Taken(String),
    /// The configuration has a value the model cannot use.
    #[error(
        "invalid SG1 configuration: hbm_bandwidth must be a positive number of bytes per second, not {0}"
    )]
    BadBandwidth(f64),
    /// The configuration asks for a number of cores the SG1 cannot have.
    #[error(
        "invalid SG1 configuration: cores must be 1 to {max}, not {0}",
        max = sagrada_hw_accel_abi::NUM_CORES
    )]
    BadCores(u32),
    /// The configuration gives the cores no thread to run on.
    #[error("invalid SG1 configuration: core_threads must be at least 1")]
    NoCoreThreads,
}

/// The model of one SG1. Dropping it shuts it down.
pub struct Sg1 {
    core: Arc<Core>,
}

impl fmt::Debug for Sg1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sg1")
            .field("dev", &self.core.dev)
            .field("threads", &self.running_threads())
            .finish_non_exhaustive()
    }
}

impl Sg1 {
    /// Builds the model of SG1 endpoint `dev` of `fabric`: BAR0 becomes its register
    /// file, BAR2's memory its HBM. The firmware boots before this returns.
    ///
    /// # Errors
    ///
    /// If `dev` is not an SG1 endpoint, has no HBM, BAR0 already has a handler, or the
    /// configuration is invalid.
    pub fn attach(
        fabric: &Arc<Fabric>,
        dev: DeviceId,
        config: Sg1Config,
    ) -> Result<Arc<Sg1>, Sg1Error> {
        match fabric.try_function(dev).map(|f| f.kind) {
            Some(FunctionKind::Endpoint(EndpointKind::Sg1)) => {}
            _ => return Err(Sg1Error::NotAnSg1(dev)),
        }
        if !(config.hbm_bandwidth.is_finite() && config.hbm_bandwidth > 0.0) {
            return Err(Sg1Error::BadBandwidth(config.hbm_bandwidth));
        }
        if !(1..=sagrada_hw_accel_abi::NUM_CORES).contains(&config.cores) {
            return Err(Sg1Error::BadCores(config.cores));
        }
        if config.core_threads == 0 {
            return Err(Sg1Error::NoCoreThreads);
        }
        let hbm = fabric
            .bar_memory(dev, sagrada_hw_accel_abi::HBM_BAR)
            .ok_or(Sg1Error::NoHbm(dev))?
            .clone();
        let core = Core::new(fabric.clone(), dev, hbm, config);
        fabric
            .set_mmio_handler(
                dev,
                sagrada_hw_accel_abi::REG_BAR,
                device::bar0_handler(&core),
            )
            .map_err(Sg1Error::Bar0Taken)?;
        Ok(Arc::new(Sg1 { core }))
    }

    /// Stops every thread of the device and joins them. Idempotent; also run on drop.
    /// Afterwards MMIO writes are ignored and reads return all-ones.
    pub fn shutdown(&self) {
        self.core.shutdown();
    }

    /// The SG1's PCI function.
    pub fn device(&self) -> DeviceId {
        self.core.dev
    }

    /// Threads of the device running now (engines and firmware): a diagnostic, and what
    /// tests use to check that [`Sg1::shutdown`] leaves none behind.
    pub fn running_threads(&self) -> usize {
        self.core.running_threads()
    }
}

impl Drop for Sg1 {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

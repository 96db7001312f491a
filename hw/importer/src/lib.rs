//! The DMA test importer: a tiny copy engine behind a 4 KiB register BAR.
//!
//! The default machine has two of them (`imp0` under the switch, `imp1` on a root
//! port). They stand in for a NIC in tests, the way Habana's dma-buf tests use a fake
//! importer device: a driver imports a dma-buf, maps it for the importer, and has the
//! importer copy to or from it, so every p2p rule and IOMMU check of the fabric is
//! exercised by a device other than the exporter.
//!
//! What it models: the registers of [`regs`], and one synchronous copy per `CTRL.GO`
//! through [`Fabric::dma_copy`] with the importer as initiator (so routing, IOMMU
//! checks, link counters and device time are the fabric's), with the refused address
//! recorded when the fabric refuses part of a copy.
//!
//! What it leaves out: interrupts (a copy has completed when the `GO` write has, so
//! there is nothing to signal), queues, scatter lists, and any notion of time passing
//! on the host while a copy runs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use sagrada_hw_fabric::{
    Access, DeviceId, DmaError, EndpointKind, Fabric, FunctionKind, Iova, MmioHandler,
};

pub mod regs {
    //! The importer's BAR0 registers: the contract its driver uses. Every register is
    //! 32 bits, little endian, at a dword-aligned offset; 64-bit quantities are LO/HI
    //! pairs (an 8-byte access to a pair is split into its two dwords, LO first).
    //! Unknown offsets read 0 and ignore writes.

    /// Identification, RO: [`ID_VALUE`].
    pub const ID: u32 = 0x00;
    /// The value of `ID`: vendor "SG" (0x5347), device 0x0f01.
    pub const ID_VALUE: u32 = 0x5347_0f01;
    /// Source DMA address (an address in the importer's IOMMU domain, or a peer's bus
    /// address under the same switch), low half, RW.
    pub const SRC_LO: u32 = 0x08;
    /// Source DMA address, high half, RW.
    pub const SRC_HI: u32 = 0x0c;
    /// Destination DMA address, low half, RW.
    pub const DST_LO: u32 = 0x10;
    /// Destination DMA address, high half, RW.
    pub const DST_HI: u32 = 0x14;
    /// Bytes to copy, low half, RW.
    pub const LEN_LO: u32 = 0x18;
    /// Bytes to copy, high half, RW.
    pub const LEN_HI: u32 = 0x1c;
    /// Control, WO (reads 0).
    pub const CTRL: u32 = 0x20;
    /// `CTRL` bit 0: copy `LEN` bytes from `SRC` to `DST`. The copy has completed (or
    /// failed) when the write has.
    pub const CTRL_GO: u32 = 1 << 0;
    /// Outcome of the last copy, RO. Cleared by `GO`.
    pub const STATUS: u32 = 0x24;
    /// `STATUS` bit 0: the last copy completed.
    pub const STATUS_DONE: u32 = 1 << 0;
    /// `STATUS` bit 1: the fabric refused part of the last copy; the bytes before the
    /// refused chunk were copied.
    pub const STATUS_ERROR: u32 = 1 << 1;
    /// The DMA address the fabric refused in the last failed copy, low half, RO.
    pub const ERR_ADDR_LO: u32 = 0x28;
    /// The refused DMA address, high half, RO.
    pub const ERR_ADDR_HI: u32 = 0x2c;
    /// Total bytes moved since the importer was attached (failed copies count the
    /// bytes they moved before the refusal), low half, RO.
    pub const BYTES_LO: u32 = 0x30;
    /// Total bytes moved, high half, RO.
    pub const BYTES_HI: u32 = 0x34;
    /// Modelled device time of the last copy in ns (0 for a failed one), low half, RO.
    pub const LAST_TIME_NS_LO: u32 = 0x38;
    /// Device time of the last copy, high half, RO.
    pub const LAST_TIME_NS_HI: u32 = 0x3c;
}

/// Why the importer cannot be attached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImporterError {
    /// The device is not an importer endpoint of the fabric.
    #[error("{0:?} is not a DMA test importer endpoint of this fabric")]
    NotAnImporter(DeviceId),
    /// BAR0 already has a device model.
    #[error("cannot attach the importer model: {0}")]
    Bar0Taken(String),
}

#[derive(Default)]
struct Regs {
    src: u64,
    dst: u64,
    len: u64,
    status: u32,
    err_addr: u64,
    bytes: u64,
    last_time_ns: u64,
}

/// The model of one DMA test importer; its BAR0 is served by it once attached.
pub struct Importer {
    // Weak: the fabric holds the importer as BAR0's handler, so a strong reference
    // would keep both alive forever.
    fabric: Weak<Fabric>,
    dev: DeviceId,
    regs: Mutex<Regs>,
}

impl fmt::Debug for Importer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Importer")
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

fn set_lo(v: &mut u64, x: u32) {
    *v = (*v & !0xffff_ffff) | u64::from(x);
}

fn set_hi(v: &mut u64, x: u32) {
    *v = (*v & 0xffff_ffff) | u64::from(x) << 32;
}

impl Importer {
    /// Builds the model of importer endpoint `dev` of `fabric`: BAR0 becomes its
    /// register file.
    ///
    /// # Errors
    ///
    /// [`ImporterError::NotAnImporter`] if `dev` is not an importer endpoint,
    /// [`ImporterError::Bar0Taken`] if BAR0 already has a device model.
    pub fn attach(fabric: &Arc<Fabric>, dev: DeviceId) -> Result<Arc<Importer>, ImporterError> {
        match fabric.try_function(dev).map(|f| f.kind) {
            Some(FunctionKind::Endpoint(EndpointKind::Importer)) => {}
            _ => return Err(ImporterError::NotAnImporter(dev)),
        }
        let importer = Arc::new(Importer {
            fabric: Arc::downgrade(fabric),
            dev,
            regs: Mutex::new(Regs::default()),
        });
        fabric
            .set_mmio_handler(dev, 0, importer.clone())
            .map_err(ImporterError::Bar0Taken)?;
        Ok(importer)
    }

    /// The importer's PCI function.
    pub fn device(&self) -> DeviceId {
        self.dev
    }

    fn regs(&self) -> std::sync::MutexGuard<'_, Regs> {
        self.regs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_reg(&self, off: u32) -> u32 {
        let r = self.regs();
        let lo = |v: u64| v as u32;
        let hi = |v: u64| (v >> 32) as u32;
        match off {
            regs::ID => regs::ID_VALUE,
            regs::SRC_LO => lo(r.src),
            regs::SRC_HI => hi(r.src),
            regs::DST_LO => lo(r.dst),
            regs::DST_HI => hi(r.dst),
            regs::LEN_LO => lo(r.len),
            regs::LEN_HI => hi(r.len),
            regs::STATUS => r.status,
            regs::ERR_ADDR_LO => lo(r.err_addr),
            regs::ERR_ADDR_HI => hi(r.err_addr),
            regs::BYTES_LO => lo(r.bytes),
            regs::BYTES_HI => hi(r.bytes),
            regs::LAST_TIME_NS_LO => lo(r.last_time_ns),
            regs::LAST_TIME_NS_HI => hi(r.last_time_ns),
            _ => 0,
        }
    }

    fn write_reg(&self, off: u32, value: u32) {
        let (src, dst, len) = {
            let mut r = self.regs();
            match off {
                regs::SRC_LO => set_lo(&mut r.src, value),
                regs::SRC_HI => set_hi(&mut r.src, value),
                regs::DST_LO => set_lo(&mut r.dst, value),
                regs::DST_HI => set_hi(&mut r.dst, value),
                regs::LEN_LO => set_lo(&mut r.len, value),
                regs::LEN_HI => set_hi(&mut r.len, value),
                regs::CTRL if value & regs::CTRL_GO != 0 => {}
                _ => return,
            }
            if off != regs::CTRL {
                return;
            }
            r.status = 0;
            (r.src, r.dst, r.len)
        };
        // No lock across the copy: a copy that reaches this importer's own registers
        // (refused by the fabric today, but a peer's registers are served the same
        // way) must not deadlock.
        let Some(fabric) = self.fabric.upgrade() else {
            return;
        };
        let result = fabric.dma_copy(self.dev, Iova(src), Iova(dst), len);
        let mut r = self.regs();
        match result {
            Ok(report) => {
                r.bytes = r.bytes.wrapping_add(report.bytes);
                r.last_time_ns = report.device_time_ns;
                r.status = regs::STATUS_DONE;
            }
            Err(err) => {
                let (addr, moved) = match err {
                    // The fabric copies chunk by chunk, reading then writing each, so
                    // the refused address tells how far the copy got.
                    DmaError::Fault(f) => {
                        let start = if f.access == Access::Read { src } else { dst };
                        (f.addr.raw(), f.addr.raw().wrapping_sub(start))
                    }
                    DmaError::Wraps { addr, .. } => (addr, 0),
                    _ => (src, 0),
                };
                r.err_addr = addr;
                r.bytes = r.bytes.wrapping_add(moved);
                r.last_time_ns = 0;
                r.status = regs::STATUS_ERROR;
            }
        }
    }
}

/// Splits an access into aligned dwords; `None` for one that is not (such an access
/// is dropped, and a read of it returns all-ones, as a bus error would).
fn dwords(offset: u64, len: usize) -> Option<impl Iterator<Item = (usize, u32)>> {
    (offset.is_multiple_of(4) && len.is_multiple_of(4) && len > 0 && offset < u64::from(u32::MAX))
        .then(|| (0..len / 4).map(move |i| (4 * i, offset as u32 + 4 * i as u32)))
}

impl MmioHandler for Importer {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let Some(parts) = dwords(offset, data.len()) else {
            data.fill(0xff);
            return;
        };
        for (at, off) in parts {
            data[at..at + 4].copy_from_slice(&self.read_reg(off).to_le_bytes());
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let Some(parts) = dwords(offset, data.len()) else {
            return;
        };
        for (at, off) in parts {
            let d = &data[at..at + 4];
            self.write_reg(off, u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
        }
    }
}

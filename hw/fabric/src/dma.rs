//! Moving data: device DMA routed through the tree, CPU access, counters and timing.

use crate::{Fault, DeviceId, Fabric, Iova, LinkId, Memory, PhysAddr};

/// A device model's registers behind an MMIO BAR.
pub trait MmioHandler: Send + Sync {
    /// Serves a read of `data.len()` bytes at `offset` into the BAR.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Serves a write of `data` at `offset` into the BAR.
    fn write(&self, offset: u64, data: &[u8]);
}

/// Why a transfer failed. Bytes before the failing chunk were transferred.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DmaError {
    /// The request was refused (also recorded in the initiator's fault log).
    #[error(transparent)]
    Fault(#[from] Fault),
    /// The range wraps the 64-bit address space.
    #[error("transfer of {len:#x} bytes at {addr:#x} wraps the address space")]
    Wraps {
        /// Start address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// The initiator is a bridge.
    #[error("{0:?} is not an endpoint and cannot master DMA")]
    NotAnEndpoint(DeviceId),
    /// A device-local memory range is out of bounds.
    #[error(transparent)]
    Local(#[from] crate::OutOfBounds),
}

/// What a transfer did and how long the hardware would have taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DmaReport {
    /// Bytes moved.
    pub bytes: u64,
    /// Modelled device time in nanoseconds: path latency plus bytes over the
    /// bottleneck bandwidth of the path (links, host DRAM, root-complex forwarding).
    pub device_time_ns: u64,
    /// Links the data crossed.
    pub links: Vec<LinkId>,
    /// The data went through a root complex (translation, DRAM or p2p forwarding).
    pub through_root_complex: bool,
    /// The data was read from or written to host DRAM.
    pub host_dram: bool,
}

/// Bytes that crossed one link, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// The link.
    pub link: LinkId,
    /// Bytes towards the root.
    pub up_bytes: u64,
    /// Bytes away from the root.
    pub down_bytes: u64,
}

/// A snapshot of every counter of the fabric (DMA and CPU traffic on links; DMA
/// traffic at host DRAM and through root complexes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// One entry per link, by link id.
    pub links: Vec<LinkCounters>,
    /// Bytes devices read from host DRAM.
    pub host_dram_read_bytes: u64,
    /// Bytes devices wrote to host DRAM.
    pub host_dram_write_bytes: u64,
    /// Bytes forwarded peer-to-peer by root complexes.
    pub root_complex_p2p_bytes: u64,
}

impl Counters {
    /// The counters of one link.
    pub fn link(&self, id: LinkId) -> LinkCounters {
        self.links.iter().copied().find(|l| l.link == id).unwrap_or(LinkCounters { link: id, ..Default::default() })
    }

    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let _ = earlier;
        todo!()
    }
}

impl Fabric {
    /// Device `initiator` writes `src` at DMA address `dst`.
    pub fn dma_write(&self, initiator: DeviceId, dst: Iova, src: &[u8]) -> Result<DmaReport, DmaError> {
        let _ = (initiator, dst, src);
        todo!()
    }

    /// Device `initiator` reads `dst.len()` bytes from DMA address `src`.
    pub fn dma_read(&self, initiator: DeviceId, src: Iova, dst: &mut [u8]) -> Result<DmaReport, DmaError> {
        let _ = (initiator, src, dst);
        todo!()
    }

    /// Device `initiator` writes `len` bytes of its own memory (`src` at `src_offset`,
    /// e.g. its HBM) to DMA address `dst`; the local side crosses no link.
    pub fn dma_write_from(
        &self,
        initiator: DeviceId,
        dst: Iova,
        src: &Memory,
        src_offset: u64,
        len: u64,
    ) -> Result<DmaReport, DmaError> {
        let _ = (initiator, dst, src, src_offset, len);
        todo!()
    }

    /// Device `initiator` reads `len` bytes at DMA address `src` into its own memory.
    pub fn dma_read_into(
        &self,
        initiator: DeviceId,
        src: Iova,
        dst: &Memory,
        dst_offset: u64,
        len: u64,
    ) -> Result<DmaReport, DmaError> {
        let _ = (initiator, src, dst, dst_offset, len);
        todo!()
    }

    /// Device `initiator` copies `len` bytes from DMA address `src` to DMA address
    /// `dst` (a DMA engine doing memory-to-memory over the bus), once.
    pub fn dma_copy(&self, initiator: DeviceId, src: Iova, dst: Iova, len: u64) -> Result<DmaReport, DmaError> {
        let _ = (initiator, src, dst, len);
        todo!()
    }

    /// The CPU reads physical memory: host DRAM directly, BARs through the root
    /// complex and down the tree (counted on links).
    pub fn cpu_read(&self, addr: PhysAddr, dst: &mut [u8]) -> Result<(), DmaError> {
        let _ = (addr, dst);
        todo!()
    }

    /// The CPU writes physical memory (see [`Fabric::cpu_read`]).
    pub fn cpu_write(&self, addr: PhysAddr, src: &[u8]) -> Result<(), DmaError> {
        let _ = (addr, src);
        todo!()
    }

    /// Attaches the device model that serves an MMIO BAR (once per BAR).
    pub fn set_mmio_handler(
        &self,
        dev: DeviceId,
        bar: u8,
        handler: std::sync::Arc<dyn MmioHandler>,
    ) -> Result<(), String> {
        let _ = (dev, bar, handler);
        todo!()
    }

    /// A snapshot of all counters.
    pub fn counters(&self) -> Counters {
        todo!()
    }
}

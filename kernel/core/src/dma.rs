//! The DMA API for drivers: coherent buffers a device and the CPU share, pinned user
//! pages, and per-device DMA parameters.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use sagrada_hw_fabric::{DeviceId, DmaDirection, Iova, PhysRange};

use crate::errno::{Errno, KResult};
use crate::file::Prot;
use crate::kernel::Kernel;
use crate::task::Task;
use crate::vm::UserPtr;
use crate::wait::lock;

/// What `dma_get_max_seg_size` returns for a device that never set it (Linux: 64 KiB).
pub const DEFAULT_MAX_SEG_SIZE: u64 = 64 * 1024;

/// Per-device DMA parameters (`struct device_dma_parameters`).
#[derive(Debug, Default)]
pub(crate) struct DmaParams(std::sync::Mutex<HashMap<DeviceId, u64>>);

/// Host memory that a device and the CPU share (`dma_alloc_coherent`): physically
/// contiguous, zeroed, mapped bidirectionally in the device's IOMMU domain. Freed (and
/// unmapped) when dropped.
pub struct DmaCoherent {
    kernel: Weak<Kernel>,
    dev: DeviceId,
    phys: PhysRange,
    iova: Iova,
}

impl fmt::Debug for DmaCoherent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaCoherent")
            .field("dev", &self.dev)
            .field("phys", &self.phys)
            .field("iova", &self.iova)
            .finish()
    }
}

impl DmaCoherent {
    /// The address the device uses.
    pub fn iova(&self) -> Iova {
        self.iova
    }

    /// The host memory.
    pub fn phys(&self) -> PhysRange {
        self.phys
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.phys.len
    }

    /// Whether the buffer is empty (never: allocations are at least a page).
    pub fn is_empty(&self) -> bool {
        self.phys.len == 0
    }

    fn check(&self, offset: u64, len: usize) -> KResult<sagrada_hw_fabric::PhysAddr> {
        let end = offset.checked_add(len as u64).ok_or(Errno::EINVAL)?;
        if end > self.phys.len {
            return Err(Errno::EINVAL);
        }
        self.phys.start.checked_add(offset).ok_or(Errno::EINVAL)
    }

    fn fabric(&self) -> KResult<Arc<sagrada_hw_fabric::Fabric>> {
        Ok(self.kernel.upgrade().ok_or(Errno::ENODEV)?.fabric().clone())
    }

    /// CPU read at `offset`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> KResult<()> {
        let at = self.check(offset, buf.len())?;
        self.fabric()?.cpu_read(at, buf).map_err(|_| Errno::EFAULT)
    }

    /// CPU write at `offset`.
    pub fn write(&self, offset: u64, buf: &[u8]) -> KResult<()> {
        let at = self.check(offset, buf.len())?;
        self.fabric()?.cpu_write(at, buf).map_err(|_| Errno::EFAULT)
    }

    /// Little-endian `u32` at `offset`.
    pub fn read_u32(&self, offset: u64) -> KResult<u32> {
        let mut b = [0u8; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Little-endian `u64` at `offset`.
    pub fn read_u64(&self, offset: u64) -> KResult<u64> {
        let mut b = [0u8; 8];
        self.read(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl Drop for DmaCoherent {
    fn drop(&mut self) {
        if let Some(kernel) = self.kernel.upgrade() {
            if let Err(e) = kernel
                .fabric()
                .dma_unmap(self.dev, self.iova, self.phys.len)
            {
                tracing::error!("dma_free_coherent: {e}");
            }
            kernel.frames().free(&[self.phys]);
        }
    }
}

/// User pages pinned for DMA (`pin_user_pages`): they stay allocated, even if the
/// process unmaps them or exits, until this is dropped.
pub struct PinnedPages {
    kernel: Weak<Kernel>,
    extents: Vec<PhysRange>,
}

impl fmt::Debug for PinnedPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedPages")
            .field("extents", &self.extents.len())
            .finish()
    }
}

impl PinnedPages {
    /// The pinned memory, in user-address order (partial first and last pages are
    /// trimmed to the range asked for).
    pub fn extents(&self) -> &[PhysRange] {
        &self.extents
    }

    /// Bytes pinned.
    pub fn len(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.extents.is_empty()
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        if let Some(kernel) = self.kernel.upgrade() {
            kernel.frames().unpin(&self.extents);
        }
    }
}

impl Task<'_> {
    /// `pin_user_pages`: the memory behind `ptr..ptr + len`, which must be mapped
    /// readable (and writable if `write`), pinned until the result is dropped.
    pub fn pin_user_pages(&self, ptr: UserPtr, len: u64, write: bool) -> KResult<PinnedPages> {
        let need = if write { Prot::READ_WRITE } else { Prot::READ };
        let extents = self.user_extents(ptr, len, need)?;
        self.kernel().frames().pin(&extents);
        Ok(PinnedPages {
            kernel: self.kernel().downgrade(),
            extents,
        })
    }
}

impl Kernel {
    /// `dma_alloc_coherent(dev, size)`: `size` rounded up to pages.
    pub fn dma_alloc_coherent(&self, dev: DeviceId, size: u64) -> KResult<DmaCoherent> {
        let extents = self.frames().alloc(size, true)?;
        let phys = extents[0];
        let iova = match self
            .fabric()
            .dma_map_extents(dev, &extents, DmaDirection::Bidirectional)
        {
            Ok(iova) => iova,
            Err(e) => {
                self.frames().free(&extents);
                tracing::error!("dma_alloc_coherent: {e}");
                return Err(Errno::ENOMEM);
            }
        };
        Ok(DmaCoherent {
            kernel: self.downgrade(),
            dev,
            phys,
            iova,
        })
    }

    /// `dma_set_max_seg_size`: the largest contiguous segment the device's DMA handles.
    pub fn dma_set_max_seg_size(&self, dev: DeviceId, size: u64) {
        lock(&self.dma_params.0).insert(dev, size);
    }

    /// `dma_get_max_seg_size`, 64 KiB unless the driver set it.
    pub fn dma_get_max_seg_size(&self, dev: DeviceId) -> u64 {
        lock(&self.dma_params.0)
            .get(&dev)
            .copied()
            .unwrap_or(DEFAULT_MAX_SEG_SIZE)
    }
}

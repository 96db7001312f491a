//! Register access: the CPU's loads and stores to the SG1's BAR0, through the fabric.

use std::sync::Arc;

use sagrada_hw_fabric::{Fabric, PhysAddr};
use sagrada_kernel_core::{Errno, KResult};

/// BAR0 of one device, as `ioremap` would give it.
#[derive(Debug, Clone)]
pub(crate) struct Mmio {
    fabric: Arc<Fabric>,
    base: PhysAddr,
}

impl Mmio {
    pub fn new(fabric: Arc<Fabric>, base: PhysAddr) -> Self {
        Self { fabric, base }
    }

    fn at(&self, off: u32) -> PhysAddr {
        PhysAddr(self.base.raw() + u64::from(off))
    }

    /// `readl`: `EIO` if the device does not answer.
    pub fn read(&self, off: u32) -> KResult<u32> {
        let mut b = [0u8; 4];
        self.fabric
            .cpu_read(self.at(off), &mut b)
            .map_err(|_| Errno::EIO)?;
        Ok(u32::from_le_bytes(b))
    }

    /// `writel`.
    pub fn write(&self, off: u32, value: u32) -> KResult<()> {
        self.fabric
            .cpu_write(self.at(off), &value.to_le_bytes())
            .map_err(|_| Errno::EIO)
    }

    /// A 64-bit value in a LO/HI register pair (low half first).
    pub fn write64(&self, lo: u32, value: u64) -> KResult<()> {
        self.write(lo, value as u32)?;
        self.write(lo + 4, (value >> 32) as u32)
    }

    /// A 64-bit value from a LO/HI register pair.
    pub fn read64(&self, lo: u32) -> KResult<u64> {
        Ok(u64::from(self.read(lo)?) | u64::from(self.read(lo + 4)?) << 32)
    }
}

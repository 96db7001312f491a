//! Exporting device memory as a dma-buf, with the semantics of the merged habanalabs
//! exporter (`reference/habanalabs-dmabuf-p2p.md` §2–3, with the later fixes: the
//! offset is honoured, sizes and offsets are multiples of 4 KiB, the fd is installed
//! last, release is safe after a failed `dma_buf_fd`).
//!
//! - The exporter is static (no pin ops): the memory never moves.
//! - `attach` never fails; it clears the attachment's peer-to-peer flag when the
//!   kernel's p2pdma rules refuse the SG1/importer pair.
//! - `map_dma_buf` refuses an attachment without peer-to-peer with `EPERM`, then builds
//!   an sg table for the importer's device: the exported HBM range as BAR addresses,
//!   merged across physically contiguous pages and split by the importer's maximum
//!   segment size, each entry mapped with `dma_map_resource` into the importer's IOMMU
//!   domain. The table has no CPU pages. (With `DriverParams::p2p_bus_addr`, a peer
//!   that shares a switch gets the BAR's bus address instead, as the p2pdma API does,
//!   so the traffic stays in the switch.)
//! - No mmap, vmap or CPU access: `mmap` of the fd fails with `EINVAL`.
//! - The export holds a reference on the context, so the memory outlives the fd that
//!   allocated it; `FREE` and `UNMAP` of exported memory fail with `EINVAL`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sagrada_hw_fabric::{DmaDirection, Iova, P2pMapType, PAGE_SIZE, PhysAddr};
use sagrada_kernel_core::{Errno, Fd, KResult, OpenFlags, Task};
use sagrada_kernel_dmabuf::{Attachment, DmaBufOps, ExportInfo, SgEntry, SgTable};

use crate::context::{Allocation, ContextInner};
use crate::memory::DRAM_PAGE_SIZE;

/// How an attachment's entries were mapped (decided at attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapMode {
    /// `dma_map_resource` into the importer's IOMMU domain.
    Iommu,
    /// The BAR's bus address, for a peer under the same switch.
    BusAddr,
}

/// The exporter of one dma-buf.
#[derive(Debug)]
pub(crate) struct Sg1Export {
    ctx: Arc<ContextInner>,
    alloc: Arc<Allocation>,
    offset: u64,
    size: u64,
}

/// `EXPORT_DMABUF_FD {addr, size, offset, flags}`.
pub(crate) fn export(
    task: &Task<'_>,
    ctx: &Arc<ContextInner>,
    addr: u64,
    size: u64,
    offset: u64,
    flags: u32,
) -> KResult<Fd> {
    if !addr.is_multiple_of(PAGE_SIZE)
        || size == 0
        || !size.is_multiple_of(PAGE_SIZE)
        || !offset.is_multiple_of(PAGE_SIZE)
    {
        return Err(Errno::EINVAL);
    }
    let alloc = ctx.dram_mapping(addr)?;
    let end = offset.checked_add(size).ok_or(Errno::EINVAL)?;
    if end > alloc.size {
        return Err(Errno::EINVAL);
    }
    let dev = ctx.dev();
    alloc.exports.fetch_add(1, Ordering::AcqRel);
    dev.exports.fetch_add(1, Ordering::AcqRel);
    let ops = Sg1Export {
        ctx: ctx.clone(),
        alloc: alloc.clone(),
        offset,
        size,
    };
    // Once the buffer exists, dropping it runs `release`, which undoes the counts: a
    // failure to install the fd cannot free anything twice. Before, they are undone
    // here.
    let buf = dev
        .registry
        .export(ExportInfo {
            exp_name: "sg1".to_owned(),
            ops: Box::new(ops),
            size,
            flags: OpenFlags(flags),
            resv: None,
        })
        .inspect_err(|_| {
            alloc.exports.fetch_sub(1, Ordering::AcqRel);
            dev.exports.fetch_sub(1, Ordering::AcqRel);
        })?;
    buf.fd(task, OpenFlags(flags))
}

impl Sg1Export {
    /// The exported HBM as physically contiguous runs `(hbm address, length)`.
    fn runs(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut at = self.offset;
        let end = self.offset + self.size;
        while at < end {
            let page = (at / DRAM_PAGE_SIZE) as usize;
            let within = at % DRAM_PAGE_SIZE;
            let len = (DRAM_PAGE_SIZE - within).min(end - at);
            let pa = self.alloc.pages[page] + within;
            match runs.last_mut() {
                Some((start, run)) if *start + *run == pa => *run += len,
                _ => runs.push((pa, len)),
            }
            at += len;
        }
        runs
    }

    fn unmap_entries(&self, attach: &Attachment, entries: &[SgEntry]) {
        if self.mode(attach) == MapMode::BusAddr {
            return;
        }
        for e in entries {
            if let Err(err) = self
                .ctx
                .dev()
                .fabric
                .dma_unmap(attach.dev(), e.dma_addr, e.len)
            {
                tracing::error!("{}: unmapping a dma-buf entry: {err}", self.ctx.dev().name);
            }
        }
    }

    fn mode(&self, attach: &Attachment) -> MapMode {
        attach
            .with_exporter_priv(|p| p.and_then(|p| p.downcast_ref::<MapMode>().copied()))
            .unwrap_or(MapMode::Iommu)
    }
}

impl DmaBufOps for Sg1Export {
    /// Never fails: refuses peer-to-peer (clearing the flag) when the topology does.
    fn attach(&self, attach: &Attachment) -> KResult<()> {
        let dev = self.ctx.dev();
        let distance = dev.fabric.p2pdma_distance(dev.dev, attach.dev());
        if distance.map_type == P2pMapType::NotSupported {
            tracing::debug!(
                "{}: p2p refused for {:?}: {}",
                dev.name,
                attach.dev(),
                distance.reason
            );
            attach.set_peer2peer(false);
        }
        let mode = if dev.params.p2p_bus_addr && distance.map_type == P2pMapType::BusAddr {
            MapMode::BusAddr
        } else {
            MapMode::Iommu
        };
        attach.set_exporter_priv(Box::new(mode));
        Ok(())
    }

    fn map_dma_buf(&self, attach: &Attachment, dir: DmaDirection) -> KResult<SgTable> {
        let dev = self.ctx.dev();
        if !attach.peer2peer() {
            tracing::debug!("{}: p2p is disabled for this importer", dev.name);
            return Err(Errno::EPERM);
        }
        let kernel = dev.kernel.upgrade().ok_or(Errno::ENODEV)?;
        let max_seg = kernel.dma_get_max_seg_size(attach.dev()) / PAGE_SIZE * PAGE_SIZE;
        if max_seg < PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        let mode = self.mode(attach);
        let mut entries = Vec::new();
        for (pa, len) in self.runs() {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(max_seg);
                let bar = PhysAddr(dev.hbm.bar.raw() + pa + done);
                let dma_addr = match mode {
                    MapMode::BusAddr => Iova(dev.fabric.phys_to_bus(bar).raw()),
                    MapMode::Iommu => {
                        match dev.fabric.dma_map_resource(attach.dev(), bar, n, dir) {
                            Ok(iova) => iova,
                            Err(e) => {
                                tracing::debug!("{}: dma_map_resource: {e}", dev.name);
                                self.unmap_entries(attach, &entries);
                                return Err(Errno::ENOMEM);
                            }
                        }
                    }
                };
                entries.push(SgEntry { dma_addr, len: n });
                done += n;
            }
        }
        Ok(SgTable::new(entries))
    }

    fn unmap_dma_buf(&self, attach: &Attachment, sgt: SgTable, _dir: DmaDirection) {
        self.unmap_entries(attach, sgt.entries());
    }

    fn release(&self) {
        self.alloc.exports.fetch_sub(1, Ordering::AcqRel);
        self.ctx.dev().exports.fetch_sub(1, Ordering::AcqRel);
    }
}

//! The system dma-heap (`/dev/dma_heap/system`): allocates zeroed host DRAM and exports
//! it as a dma-buf that any device can import. Importers get an IOVA in their own IOMMU
//! domain (one contiguous range over the scattered pages); user space can mmap it.
//! It is a static exporter (its pages never move) with coherent CPU access.

use std::sync::{Arc, Weak};

use sagrada_hw_fabric::{DmaDirection, IommuError, PhysRange};
use sagrada_kernel_core::ioctl::{IOC_READ, IOC_WRITE, ioc_dir, ioc_nr, ioc_size, ioc_type};
use sagrada_kernel_core::{
    CharDevice, Errno, File, FileOps, KResult, Kernel, OpenFlags, Prot, Task, UserPtr, page_align,
    slice_extents,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::dmabuf::{
    Attachment, CpuAccessOps, DmaBufOps, DmaBufRegistry, ExportInfo, MmapOps, SgEntry, SgTable,
    VMap, VmapOps,
};
use crate::uapi::{DMA_HEAP_IOC_MAGIC, DMA_HEAP_IOCTL_ALLOC, DmaHeapAllocationData};

/// `O_ACCMODE | O_CLOEXEC`: the fd flags an allocation may ask for.
const VALID_FD_FLAGS: u32 = OpenFlags::ACCMODE.0 | OpenFlags::CLOEXEC.0;
/// No heap flags are defined.
const VALID_HEAP_FLAGS: u64 = 0;

/// The exporter of one system-heap buffer.
#[derive(Debug)]
pub struct SystemHeapBuffer {
    kernel: Weak<Kernel>,
    extents: Vec<PhysRange>,
}

impl SystemHeapBuffer {
    /// The host memory behind the buffer.
    pub fn extents(&self) -> &[PhysRange] {
        &self.extents
    }
}

fn dma_errno(err: IommuError) -> Errno {
    match err {
        IommuError::NoSpace { .. } => Errno::ENOMEM,
        _ => Errno::EINVAL,
    }
}

impl DmaBufOps for SystemHeapBuffer {
    fn map_dma_buf(&self, attach: &Attachment, dir: DmaDirection) -> KResult<SgTable> {
        let kernel = self.kernel.upgrade().ok_or(Errno::ENODEV)?;
        let iova = kernel
            .fabric()
            .dma_map_extents(attach.dev(), &self.extents, dir)
            .map_err(dma_errno)?;
        let len = self.extents.iter().map(|e| e.len).sum();
        Ok(SgTable::new(vec![SgEntry {
            dma_addr: iova,
            len,
        }]))
    }

    fn unmap_dma_buf(&self, attach: &Attachment, sgt: SgTable, _dir: DmaDirection) {
        let Some(kernel) = self.kernel.upgrade() else {
            return;
        };
        for e in sgt.entries() {
            if let Err(err) = kernel.fabric().dma_unmap(attach.dev(), e.dma_addr, e.len) {
                tracing::error!("system heap unmap: {err}");
            }
        }
    }

    fn release(&self) {
        if let Some(kernel) = self.kernel.upgrade() {
            kernel.frames().free(&self.extents);
        }
    }

    fn cpu_access_ops(&self) -> Option<&dyn CpuAccessOps> {
        Some(self)
    }

    fn mmap_ops(&self) -> Option<&dyn MmapOps> {
        Some(self)
    }

    fn vmap_ops(&self) -> Option<&dyn VmapOps> {
        Some(self)
    }
}

impl CpuAccessOps for SystemHeapBuffer {
    // Host DRAM is coherent with device DMA in this model (no CPU caches are modelled).
    fn begin_cpu_access(&self, _dir: DmaDirection) -> KResult<()> {
        Ok(())
    }

    fn end_cpu_access(&self, _dir: DmaDirection) -> KResult<()> {
        Ok(())
    }
}

impl MmapOps for SystemHeapBuffer {
    fn mmap(&self, pgoff: u64, len: u64, _prot: Prot) -> KResult<Vec<PhysRange>> {
        Ok(slice_extents(
            &self.extents,
            pgoff * sagrada_hw_fabric::PAGE_SIZE,
            len,
        ))
    }
}

impl VmapOps for SystemHeapBuffer {
    fn vmap(&self) -> KResult<VMap> {
        Ok(VMap {
            extents: self.extents.clone(),
        })
    }

    fn vunmap(&self, _map: &VMap) {}
}

/// The heap device.
#[derive(Debug)]
pub struct SystemHeap {
    registry: Arc<DmaBufRegistry>,
}

impl SystemHeap {
    /// A heap exporting through `registry`.
    pub fn new(registry: Arc<DmaBufRegistry>) -> Self {
        Self { registry }
    }
}

/// An open `/dev/dma_heap/system`.
struct HeapFile {
    registry: Arc<DmaBufRegistry>,
}

impl HeapFile {
    /// `dma_heap_buffer_alloc`: `len` rounded up to pages, then a dma-buf fd.
    fn alloc(&self, task: &Task<'_>, req: &DmaHeapAllocationData) -> KResult<i32> {
        if req.fd != 0
            || req.fd_flags & !VALID_FD_FLAGS != 0
            || req.heap_flags & !VALID_HEAP_FLAGS != 0
        {
            return Err(Errno::EINVAL);
        }
        let len = page_align(req.len)
            .filter(|&l| l > 0)
            .ok_or(Errno::EINVAL)?;
        let kernel = task.kernel();
        let extents = kernel.frames().alloc(len, false)?;
        let ops = SystemHeapBuffer {
            kernel: kernel.downgrade(),
            extents,
        };
        let flags = OpenFlags(req.fd_flags);
        let buf = self.registry.export(ExportInfo {
            exp_name: "system".to_owned(),
            ops: Box::new(ops),
            size: len,
            flags,
            resv: None,
        })?;
        buf.fd(task, flags)
    }
}

impl FileOps for HeapFile {
    fn name(&self, _file: &File) -> String {
        "/dev/dma_heap/system".to_owned()
    }

    /// Accepts older (shorter) and newer (longer) argument structures: the kernel
    /// zero-extends what user space did not pass and copies back as much as it passed.
    fn ioctl(&self, task: &Task<'_>, _file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        if ioc_type(cmd) != DMA_HEAP_IOC_MAGIC {
            return Err(Errno::ENOTTY);
        }
        if ioc_nr(cmd) != ioc_nr(DMA_HEAP_IOCTL_ALLOC) {
            return Err(Errno::EINVAL);
        }
        let user_size = ioc_size(cmd);
        let in_size = if ioc_dir(cmd) & IOC_WRITE != 0 {
            user_size
        } else {
            0
        };
        let out_size = if ioc_dir(cmd) & IOC_READ != 0 {
            user_size
        } else {
            0
        };
        let ksize = size_of::<DmaHeapAllocationData>();
        let mut kdata = vec![0u8; ksize.max(in_size)];
        task.copy_from_user(UserPtr(arg), &mut kdata[..in_size])?;
        let (mut req, _) =
            DmaHeapAllocationData::read_from_prefix(&kdata).map_err(|_| Errno::EINVAL)?;
        let fd = self.alloc(task, &req)?;
        req.fd = fd as u32;
        kdata[..ksize].copy_from_slice(req.as_bytes());
        task.copy_to_user(UserPtr(arg), &kdata[..out_size])
            .inspect_err(|_| {
                let _ = task.kernel().close(task.pid(), fd);
            })?;
        Ok(0)
    }
}

impl CharDevice for SystemHeap {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        Ok(File::new(
            Arc::new(HeapFile {
                registry: self.registry.clone(),
            }),
            flags,
        ))
    }
}

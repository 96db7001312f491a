//! The driver of the DMA test importer: the stand-in for a NIC that imports a dma-buf,
//! maps it for its own device, and moves data between it and a process's memory with
//! its DMA engine, through the fabric. It follows Habana's test importer (`/dev/hli`)
//! and the RDMA core's dma-buf memory registration: a dynamic attachment that accepts
//! peer memory, with a `move_notify` that invalidates the region's mapping until its
//! next use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod uapi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use sagrada_hw_fabric::{
    DeviceId, DmaDirection, EndpointKind, Fabric, FunctionKind, Iova, PhysAddr,
};
use sagrada_hw_importer::regs;
use sagrada_kernel_core::{
    CharDevice, Errno, File, FileOps, KResult, Kernel, OpenFlags, Task, UserPtr, lock,
};
use sagrada_kernel_dmabuf::{Attachment, DmaBuf, ImporterOps, ResvGuard, SgTable};

use uapi::*;

/// One importer device bound by the driver.
#[derive(Debug)]
struct Importer {
    fabric: Arc<Fabric>,
    dev: DeviceId,
    bar0: PhysAddr,
    name: String,
    /// One DMA at a time through the engine's registers.
    engine: Mutex<()>,
}

impl Importer {
    fn write(&self, off: u32, v: u32) -> KResult<()> {
        self.fabric
            .cpu_write(PhysAddr(self.bar0.raw() + u64::from(off)), &v.to_le_bytes())
            .map_err(|_| Errno::EIO)
    }

    fn read(&self, off: u32) -> KResult<u32> {
        let mut b = [0u8; 4];
        self.fabric
            .cpu_read(PhysAddr(self.bar0.raw() + u64::from(off)), &mut b)
            .map_err(|_| Errno::EIO)?;
        Ok(u32::from_le_bytes(b))
    }

    fn write64(&self, lo: u32, v: u64) -> KResult<()> {
        self.write(lo, v as u32)?;
        self.write(lo + 4, (v >> 32) as u32)
    }

    /// One copy by the engine; returns its device time. `EIO` if the fabric refused it.
    fn dma(&self, src: u64, dst: u64, len: u64) -> KResult<u64> {
        let _engine = lock(&self.engine);
        self.write64(regs::SRC_LO, src)?;
        self.write64(regs::DST_LO, dst)?;
        self.write64(regs::LEN_LO, len)?;
        self.write(regs::CTRL, regs::CTRL_GO)?;
        let status = self.read(regs::STATUS)?;
        if status & regs::STATUS_ERROR != 0 {
            tracing::debug!(
                "{}: DMA of {len:#x} bytes {src:#x} -> {dst:#x} refused",
                self.name
            );
            return Err(Errno::EIO);
        }
        let lo = u64::from(self.read(regs::LAST_TIME_NS_LO)?);
        let hi = u64::from(self.read(regs::LAST_TIME_NS_HI)?);
        Ok(lo | hi << 32)
    }
}

/// A registered region.
struct Mr {
    mapped: Arc<Mapped>,
    attach: Attachment,
    offset: u64,
    length: u64,
}

/// A region's buffer and its mapping for the importer.
struct Mapped {
    buf: DmaBuf,
    /// `None` after a move notification until the next use re-maps. Taken under the
    /// buffer's reservation lock (which `move_notify` is called with), then this one.
    sgt: Mutex<Option<SgTable>>,
}

/// Invalidates a region's mapping when the exporter moves the buffer.
struct Invalidate {
    mapped: Weak<Mapped>,
    allow_p2p: bool,
}

impl ImporterOps for Invalidate {
    fn allow_peer2peer(&self) -> bool {
        self.allow_p2p
    }

    fn move_notify(&self, attach: &Attachment, guard: &ResvGuard<'_>) {
        // The exporter holds the buffer's lock: unmap now (giving the exporter its
        // mapping back, as RDMA's dma-buf regions do), re-map at the next use.
        let Some(mapped) = self.mapped.upgrade() else {
            return;
        };
        let table = lock(&mapped.sgt).take();
        if let Some(table) = table
            && let Err(e) =
                mapped
                    .buf
                    .unmap_attachment(guard, attach, table, DmaDirection::Bidirectional)
        {
            tracing::warn!("importer: unmapping a moved buffer: {e}");
        }
    }
}

/// An open `/dev/hliN`.
struct ImporterFile {
    importer: Arc<Importer>,
    mrs: Mutex<HashMap<u64, Mr>>,
    next: Mutex<u64>,
}

impl ImporterFile {
    fn reg(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: RegDmabufMr = task.read_obj(arg)?;
        if req.access & !(ACCESS_STATIC | ACCESS_NO_P2P) != 0 || req.length == 0 {
            return Err(Errno::EINVAL);
        }
        if req.iova % 4096 != req.offset % 4096 {
            return Err(Errno::EINVAL);
        }
        let buf = DmaBuf::get(task, req.fd)?;
        let end = req.offset.checked_add(req.length).ok_or(Errno::EINVAL)?;
        if end > buf.size() {
            return Err(Errno::EINVAL);
        }
        let mapped = Arc::new(Mapped {
            buf: buf.clone(),
            sgt: Mutex::new(None),
        });
        let attach = if req.access & ACCESS_STATIC != 0 {
            buf.attach(self.importer.dev)?
        } else {
            let ops = Invalidate {
                mapped: Arc::downgrade(&mapped),
                allow_p2p: req.access & ACCESS_NO_P2P == 0,
            };
            buf.dynamic_attach(self.importer.dev, Arc::new(ops))?
        };
        match buf.map_attachment_unlocked(&attach, DmaDirection::Bidirectional) {
            Ok(table) => *lock(&mapped.sgt) = Some(table),
            Err(e) => {
                let _ = buf.detach(attach);
                return Err(e);
            }
        }
        let handle = {
            let mut next = lock(&self.next);
            *next += 1;
            *next
        };
        lock(&self.mrs).insert(
            handle,
            Mr {
                mapped,
                attach,
                offset: req.offset,
                length: req.length,
            },
        );
        req.mr_handle = handle;
        task.write_obj(arg, &req)?;
        Ok(0)
    }

    fn dereg(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: DeregMr = task.read_obj(arg)?;
        let mr = lock(&self.mrs)
            .remove(&req.mr_handle)
            .ok_or(Errno::EINVAL)?;
        Self::release(mr);
        Ok(0)
    }

    fn release(mr: Mr) {
        let buf = &mr.mapped.buf;
        let table = lock(&mr.mapped.sgt).take();
        if let Some(table) = table {
            let _ = buf.unmap_attachment_unlocked(&mr.attach, table, DmaDirection::Bidirectional);
        }
        let _ = buf.detach(mr.attach);
    }

    /// The pieces `(dma address, length)` of `offset..offset + size` of the region,
    /// re-mapping it first if the exporter moved it.
    fn pieces(&self, mr: &Mr, offset: u64, size: u64) -> KResult<Vec<(u64, u64)>> {
        let buf = &mr.mapped.buf;
        let guard = buf.resv().lock(None)?;
        let mut sgt = lock(&mr.mapped.sgt);
        if sgt.is_none() {
            *sgt = Some(buf.map_attachment(&guard, &mr.attach, DmaDirection::Bidirectional)?);
        }
        let table = sgt.as_ref().ok_or(Errno::EIO)?;
        let mut out = Vec::new();
        let (mut skip, mut left) = (mr.offset + offset, size);
        for e in table.entries() {
            if left == 0 {
                break;
            }
            if skip >= e.len {
                skip -= e.len;
                continue;
            }
            let n = (e.len - skip).min(left);
            out.push((e.dma_addr.raw() + skip, n));
            left -= n;
            skip = 0;
        }
        if left != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(out)
    }

    fn access(&self, task: &Task<'_>, arg: UserPtr, to_mr: bool) -> KResult<i64> {
        let mut req: MrAccess = task.read_obj(arg)?;
        let mrs = lock(&self.mrs);
        let mr = mrs.get(&req.mr_handle).ok_or(Errno::EINVAL)?;
        let end = req.offset.checked_add(req.size).ok_or(Errno::EINVAL)?;
        if req.size == 0 || end > mr.length {
            return Err(Errno::EINVAL);
        }
        let pieces = self.pieces(mr, req.offset, req.size)?;
        let page = req.userptr % 4096;
        let len = (page + req.size).div_ceil(4096) * 4096;
        let pinned = task.pin_user_pages(UserPtr(req.userptr - page), len, !to_mr)?;
        let dir = if to_mr {
            DmaDirection::ToDevice
        } else {
            DmaDirection::FromDevice
        };
        let fabric = &self.importer.fabric;
        let user: Iova = fabric
            .dma_map_extents(self.importer.dev, pinned.extents(), dir)
            .map_err(|_| Errno::ENOMEM)?;
        let mut done = 0;
        let mut time = 0;
        let mut result = Ok(0);
        for (addr, n) in pieces {
            let at = user.raw() + page + done;
            let (src, dst) = if to_mr { (at, addr) } else { (addr, at) };
            match self.importer.dma(src, dst, n) {
                Ok(t) => time += t,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            done += n;
        }
        let _ = fabric.dma_unmap(self.importer.dev, user, len);
        drop(mrs);
        req.device_time_ns = time;
        task.write_obj(arg, &req)?;
        result
    }
}

impl FileOps for ImporterFile {
    fn name(&self, _file: &File) -> String {
        format!("/dev/{}", self.importer.name)
    }

    fn ioctl(&self, task: &Task<'_>, _file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let arg = UserPtr(arg);
        match cmd {
            IMP_IOCTL_REG_DMABUF_MR => self.reg(task, arg),
            IMP_IOCTL_DEREG_MR => self.dereg(task, arg),
            IMP_IOCTL_WRITE_TO_MR => self.access(task, arg, true),
            IMP_IOCTL_READ_FROM_MR => self.access(task, arg, false),
            _ => Err(Errno::ENOTTY),
        }
    }

    fn release(&self, _file: &File) {
        let mrs: Vec<Mr> = lock(&self.mrs).drain().map(|(_, mr)| mr).collect();
        for mr in mrs {
            Self::release(mr);
        }
    }
}

struct Node(Arc<Importer>);

impl CharDevice for Node {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        let file = ImporterFile {
            importer: self.0.clone(),
            mrs: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        };
        Ok(File::new(Arc::new(file), flags))
    }
}

/// Binds every DMA test importer of the fabric: `/dev/hli0`, `/dev/hli1`, ... in PCI
/// order. Returns the paths created. The importers keep the kernel's default maximum
/// DMA segment (64 KiB), which Habana's tests assume.
pub fn probe(kernel: &Arc<Kernel>) -> KResult<Vec<String>> {
    let fabric = kernel.fabric().clone();
    let devices: Vec<_> = fabric
        .endpoints()
        .filter(|f| f.kind == FunctionKind::Endpoint(EndpointKind::Importer))
        .map(|f| (f.id, f.bars.first().map(|b| b.phys)))
        .collect();
    let mut paths = Vec::new();
    for (index, (dev, bar0)) in devices.into_iter().enumerate() {
        let bar0 = bar0.ok_or(Errno::ENODEV)?;
        let importer = Arc::new(Importer {
            fabric: fabric.clone(),
            dev,
            bar0,
            name: format!("hli{index}"),
            engine: Mutex::new(()),
        });
        if importer.read(regs::ID)? != regs::ID_VALUE {
            tracing::error!("{}: not a DMA test importer", importer.name);
            continue;
        }
        let path = format!("/dev/{}", importer.name);
        kernel.register_device(&path, Arc::new(Node(importer)))?;
        paths.push(path);
    }
    Ok(paths)
}

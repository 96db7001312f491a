//! The DMA test importer from user space (`/dev/hliN`): register a dma-buf region and
//! move data between it and the process's memory with the importer's DMA engine.

use sagrada_kernel_importer::uapi::*;
use sagrada_sys::{Errno, Fd, OpenFlags, Process, UserPtr};

/// An open importer.
#[derive(Debug)]
pub struct Importer<'p> {
    p: &'p Process,
    fd: Fd,
}

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Attach {
    /// Dynamic, accepting peer memory (what an RDMA NIC does).
    #[default]
    PeerToPeer,
    /// Dynamic, without `allow_peer2peer`.
    NoPeerToPeer,
    /// Static (no move notification).
    Static,
}

impl<'p> Importer<'p> {
    /// Opens `/dev/hli{index}`.
    pub fn open(p: &'p Process, index: u32) -> Result<Self, Errno> {
        Ok(Self {
            p,
            fd: p.open(
                &format!("/dev/hli{index}"),
                OpenFlags::RDWR.union(OpenFlags::CLOEXEC),
            )?,
        })
    }

    /// `REG_DMABUF_MR`: a region of `length` bytes at `offset` in the dma-buf `fd`.
    pub fn reg_dmabuf_mr(
        &self,
        fd: Fd,
        offset: u64,
        length: u64,
        iova: u64,
        attach: Attach,
    ) -> Result<u64, Errno> {
        let access = match attach {
            Attach::PeerToPeer => 0,
            Attach::NoPeerToPeer => ACCESS_NO_P2P,
            Attach::Static => ACCESS_STATIC,
        };
        let mut req = RegDmabufMr {
            offset,
            length,
            iova,
            fd,
            access,
            mr_handle: 0,
        };
        self.p
            .ioctl_with(self.fd, IMP_IOCTL_REG_DMABUF_MR, &mut req)?;
        Ok(req.mr_handle)
    }

    /// `DEREG_MR`.
    pub fn dereg_mr(&self, mr: u64) -> Result<(), Errno> {
        self.p
            .ioctl_with(self.fd, IMP_IOCTL_DEREG_MR, &mut DeregMr { mr_handle: mr })
            .map(drop)
    }

    /// `WRITE_TO_MR`: `size` bytes at `src` in the process's memory into the region at
    /// `offset`; returns the importer's device time.
    pub fn write_to_mr(&self, mr: u64, src: UserPtr, size: u64, offset: u64) -> Result<u64, Errno> {
        let mut req = MrAccess {
            mr_handle: mr,
            userptr: src.0,
            size,
            offset,
            device_time_ns: 0,
        };
        self.p
            .ioctl_with(self.fd, IMP_IOCTL_WRITE_TO_MR, &mut req)?;
        Ok(req.device_time_ns)
    }

    /// `READ_FROM_MR`: the region at `offset` into the process's memory at `dst`;
    /// returns the importer's device time.
    pub fn read_from_mr(
        &self,
        mr: u64,
        dst: UserPtr,
        size: u64,
        offset: u64,
    ) -> Result<u64, Errno> {
        let mut req = MrAccess {
            mr_handle: mr,
            userptr: dst.0,
            size,
            offset,
            device_time_ns: 0,
        };
        self.p
            .ioctl_with(self.fd, IMP_IOCTL_READ_FROM_MR, &mut req)?;
        Ok(req.device_time_ns)
    }

    /// Closes the importer (deregistering its regions).
    pub fn close(self) -> Result<(), Errno> {
        self.p.close(self.fd)
    }
}

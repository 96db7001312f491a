//! The command mailbox: how the driver creates and changes the NIC's objects.
//!
//! One command at a time: the input (a [`CmdIn`] header and the command's structure)
//! and the output sit in one DMA-coherent page whose addresses are programmed into
//! `CMD_IN`/`CMD_OUT` once at probe. Writing `CMD_GO` runs the command; when the write
//! returns the command has completed and `CMD_STATUS` holds its outcome, which maps to
//! an errno ([`status_errno`]).
//!
//! Callers never hold a lock the interrupt handler takes while they run a command: the
//! NIC may raise an event (and so run the handler) on the thread that rings the
//! doorbell.

use std::sync::Mutex;

use sagrada_hw_rnic_abi::cmd::{
    self, CmdIn, CmdOut, CmdStatus, CreateCq, CreateMkey, CreateQp, DeviceCaps, Handle,
    MAILBOX_SIZE, MkeyOut, ModifyQp, PdOut, PortAttr, QpAttr, UpdateMkey,
};
use sagrada_hw_rnic_abi::regs;
use sagrada_kernel_core::{DmaCoherent, Errno, KResult, lock};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::device::Mmio;

/// Offset of the command output in the mailbox page.
const OUT_OFFSET: u64 = 2048;
const _: () = assert!(MAILBOX_SIZE as u64 <= OUT_OFFSET);

/// The errno a command outcome becomes.
pub(crate) fn status_errno(status: CmdStatus) -> KResult<()> {
    match status {
        CmdStatus::Ok => Ok(()),
        CmdStatus::BadParam | CmdStatus::BadResource | CmdStatus::BadState => Err(Errno::EINVAL),
        CmdStatus::NoResources => Err(Errno::ENOMEM),
        CmdStatus::Busy => Err(Errno::EBUSY),
        CmdStatus::DmaError => Err(Errno::EIO),
        CmdStatus::BadOpcode => Err(Errno::EOPNOTSUPP),
    }
}

/// The mailbox page and the lock that makes commands one at a time.
#[derive(Debug)]
pub(crate) struct Mailbox {
    mem: Mutex<DmaCoherent>,
}

impl Mailbox {
    /// A mailbox in `mem` (one page, coherent for the NIC); programs its addresses.
    pub fn new(mem: DmaCoherent, mmio: &Mmio) -> KResult<Self> {
        let base = mem.iova().raw();
        mmio.write64(regs::CMD_IN_LO, base)?;
        mmio.write64(regs::CMD_OUT_LO, base + OUT_OFFSET)?;
        Ok(Self {
            mem: Mutex::new(mem),
        })
    }

    /// Runs command `opcode` with `input`; returns the answer's first `out_len` bytes
    /// (`EIO` if the NIC answered with fewer).
    pub fn run(&self, mmio: &Mmio, opcode: u32, input: &[u8], out_len: usize) -> KResult<Vec<u8>> {
        let header_len = size_of::<CmdIn>();
        if header_len + input.len() > MAILBOX_SIZE || size_of::<CmdOut>() + out_len > MAILBOX_SIZE {
            return Err(Errno::EINVAL);
        }
        let mem = lock(&self.mem);
        let header = CmdIn {
            opcode,
            len: input.len() as u32,
        };
        mem.write(0, header.as_bytes())?;
        mem.write(header_len as u64, input)?;
        mem.write(OUT_OFFSET, CmdOut::default().as_bytes())?;
        mmio.write(regs::CMD_DOORBELL, regs::CMD_GO)?;
        let raw = mmio.read(regs::CMD_STATUS)?;
        let Some(status) = CmdStatus::from_raw(raw) else {
            tracing::error!("rdma: command {opcode:#x} ended with unknown status {raw:#x}");
            return Err(Errno::EIO);
        };
        if let Err(e) = status_errno(status) {
            tracing::debug!("rdma: command {opcode:#x} failed: {status:?}");
            return Err(e);
        }
        let mut head = [0u8; size_of::<CmdOut>()];
        mem.read(OUT_OFFSET, &mut head)?;
        let out = CmdOut::read_from_bytes(&head).map_err(|_| Errno::EIO)?;
        if (out.len as usize) < out_len {
            tracing::error!(
                "rdma: command {opcode:#x} answered {} bytes, {out_len} expected",
                out.len
            );
            return Err(Errno::EIO);
        }
        let mut answer = vec![0u8; out_len];
        mem.read(OUT_OFFSET + size_of::<CmdOut>() as u64, &mut answer)?;
        Ok(answer)
    }

    /// A command without an answer.
    pub fn call<I: IntoBytes + Immutable>(
        &self,
        mmio: &Mmio,
        opcode: u32,
        input: &I,
    ) -> KResult<()> {
        self.run(mmio, opcode, input.as_bytes(), 0).map(drop)
    }

    /// A command answering with a `O`.
    pub fn query<I: IntoBytes + Immutable, O: FromBytes>(
        &self,
        mmio: &Mmio,
        opcode: u32,
        input: &I,
    ) -> KResult<O> {
        let bytes = self.run(mmio, opcode, input.as_bytes(), size_of::<O>())?;
        O::read_from_bytes(&bytes).map_err(|_| Errno::EIO)
    }
}

/// The typed commands, on a mailbox and the registers that ring it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Commands<'a> {
    pub mailbox: &'a Mailbox,
    pub mmio: &'a Mmio,
}

fn handle(id: u32) -> Handle {
    Handle { id, pad: 0 }
}

impl Commands<'_> {
    /// `CMD_QUERY_DEVICE`.
    pub fn query_device(self) -> KResult<DeviceCaps> {
        self.mailbox.query(self.mmio, cmd::CMD_QUERY_DEVICE, &())
    }

    /// `CMD_QUERY_PORT`.
    pub fn query_port(self) -> KResult<PortAttr> {
        self.mailbox.query(self.mmio, cmd::CMD_QUERY_PORT, &())
    }

    /// `CMD_ALLOC_PD` for the context using `uar`; returns the PDN.
    pub fn alloc_pd(self, uar: u32) -> KResult<u32> {
        let input = cmd::AllocPd { uar, pad: 0 };
        let out: PdOut = self.mailbox.query(self.mmio, cmd::CMD_ALLOC_PD, &input)?;
        Ok(out.pdn)
    }

    /// `CMD_DEALLOC_PD`.
    pub fn dealloc_pd(self, pdn: u32) -> KResult<()> {
        self.mailbox
            .call(self.mmio, cmd::CMD_DEALLOC_PD, &handle(pdn))
    }

    /// `CMD_CREATE_MKEY`; returns the key.
    pub fn create_mkey(self, input: &CreateMkey) -> KResult<u32> {
        let out: MkeyOut = self.mailbox.query(self.mmio, cmd::CMD_CREATE_MKEY, input)?;
        Ok(out.key)
    }

    /// `CMD_DESTROY_MKEY`.
    pub fn destroy_mkey(self, key: u32) -> KResult<()> {
        self.mailbox
            .call(self.mmio, cmd::CMD_DESTROY_MKEY, &handle(key))
    }

    /// `CMD_INVALIDATE_MKEY`.
    pub fn invalidate_mkey(self, key: u32) -> KResult<()> {
        self.mailbox
            .call(self.mmio, cmd::CMD_INVALIDATE_MKEY, &handle(key))
    }

    /// `CMD_UPDATE_MKEY`.
    pub fn update_mkey(self, input: &UpdateMkey) -> KResult<()> {
        self.mailbox.call(self.mmio, cmd::CMD_UPDATE_MKEY, input)
    }

    /// `CMD_CREATE_CQ`; returns the CQN.
    pub fn create_cq(self, input: &CreateCq) -> KResult<u32> {
        let out: Handle = self.mailbox.query(self.mmio, cmd::CMD_CREATE_CQ, input)?;
        Ok(out.id)
    }

    /// `CMD_DESTROY_CQ`.
    pub fn destroy_cq(self, cqn: u32) -> KResult<()> {
        self.mailbox
            .call(self.mmio, cmd::CMD_DESTROY_CQ, &handle(cqn))
    }

    /// `CMD_CREATE_QP`; returns the QPN.
    pub fn create_qp(self, input: &CreateQp) -> KResult<u32> {
        let out: Handle = self.mailbox.query(self.mmio, cmd::CMD_CREATE_QP, input)?;
        Ok(out.id)
    }

    /// `CMD_MODIFY_QP`.
    pub fn modify_qp(self, input: &ModifyQp) -> KResult<()> {
        self.mailbox.call(self.mmio, cmd::CMD_MODIFY_QP, input)
    }

    /// `CMD_QUERY_QP`.
    pub fn query_qp(self, qpn: u32) -> KResult<QpAttr> {
        self.mailbox
            .query(self.mmio, cmd::CMD_QUERY_QP, &handle(qpn))
    }

    /// `CMD_DESTROY_QP`.
    pub fn destroy_qp(self, qpn: u32) -> KResult<()> {
        self.mailbox
            .call(self.mmio, cmd::CMD_DESTROY_QP, &handle(qpn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_the_errno_the_driver_contract_names() {
        let cases = [
            (CmdStatus::Ok, None),
            (CmdStatus::BadOpcode, Some(Errno::EOPNOTSUPP)),
            (CmdStatus::BadParam, Some(Errno::EINVAL)),
            (CmdStatus::BadResource, Some(Errno::EINVAL)),
            (CmdStatus::NoResources, Some(Errno::ENOMEM)),
            (CmdStatus::BadState, Some(Errno::EINVAL)),
            (CmdStatus::Busy, Some(Errno::EBUSY)),
            (CmdStatus::DmaError, Some(Errno::EIO)),
        ];
        for (status, errno) in cases {
            assert_eq!(status_errno(status).err(), errno, "{status:?}");
        }
    }
}

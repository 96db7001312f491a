//! `/dev/infiniband/uverbsN`: each open is a verbs context with its doorbell page, its
//! objects and its asynchronous events; the ioctls of [`crate::uapi`].
//!
//! Objects are named by per-context handles, small integers from one counter that are
//! never reused while the file is open, so a stale handle is `EINVAL`, never another
//! object. Reserved fields of the uAPI structures are ignored.
//!
//! mmap offsets: page offset 0 ([`UAR_MMAP_OFFSET`]) is the context's UAR page (one
//! page of BAR0, `regs::uar(index)`); every CQ ring (with its doorbell record) and
//! every QP work queue gets its own range of page offsets, handed out upwards from 1,
//! and must be mapped whole from its start (as `rdma_user_mmap_entry` requires).
//! Memory a process has mapped stays allocated until the file is released (which
//! happens only after every mapping of it is gone), even if its object is destroyed
//! before: the process can never reach memory given back to the kernel.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sagrada_hw_fabric::{PAGE_SIZE, PhysRange};
use sagrada_hw_rnic_abi::cmd;
use sagrada_hw_rnic_abi::queue::{CQE_SIZE, RECV_WQE_SIZE, SEND_WQE_SIZE};
use sagrada_hw_rnic_abi::regs;
use sagrada_hw_rnic_abi::verbs::{QpState, QpType};
use sagrada_kernel_core::{
    CharDevice, DmaCoherent, Errno, File, FileOps, KResult, OpenFlags, PollMask, PollTable, Prot,
    Task, UserPtr, lock,
};

use crate::channel::{CompChannel, EventQueue};
use crate::device::{CqHw, Device, QpHw, object_id};
use crate::mr::{Mr, RegArgs, check_dmabuf_args, check_mr_access, get_dmabuf, rkey};
use crate::qp::{Limits, check_mask_bits, check_modify, queue_entries};
use crate::uapi::*;

/// The device node.
pub(crate) struct UverbsNode(pub Arc<Device>);

impl CharDevice for UverbsNode {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        let dev = self.0.clone();
        let uar = dev.alloc_uar()?;
        let ctx = Arc::new_cyclic(|me| Context {
            me: me.clone(),
            dev: dev.clone(),
            uar,
            objs: Mutex::new(Objects::default()),
            events: EventQueue::default(),
        });
        lock(&dev.contexts).push(Arc::downgrade(&ctx));
        Ok(File::new(Arc::new(UverbsFile { ctx }), flags))
    }
}

#[derive(Debug)]
struct Pd {
    pdn: u32,
    /// Regions and QPs using it.
    users: u32,
}

#[derive(Debug)]
struct Cq {
    cqn: u32,
    hw: Arc<CqHw>,
    /// QPs using it (once per queue).
    users: u32,
    pgoff: u64,
}

#[derive(Debug)]
struct Qp {
    qpn: u32,
    ty: QpType,
    hw: Arc<QpHw>,
    pd: u32,
    send_cq: u32,
    recv_cq: u32,
    cap: QpCap,
    sq_pgoff: u64,
    rq_pgoff: u64,
}

/// Memory a process may map.
#[derive(Debug)]
struct Region {
    mem: Arc<DmaCoherent>,
    mapped: bool,
}

#[derive(Debug)]
struct Objects {
    next_handle: u32,
    next_pgoff: u64,
    pds: HashMap<u32, Pd>,
    mrs: HashMap<u32, Mr>,
    cqs: HashMap<u32, Cq>,
    qps: HashMap<u32, Qp>,
    regions: BTreeMap<u64, Region>,
    /// Memory of destroyed objects that a process had mapped.
    graveyard: Vec<Arc<DmaCoherent>>,
}

impl Default for Objects {
    fn default() -> Self {
        Self {
            next_handle: 0,
            next_pgoff: 1,
            pds: HashMap::new(),
            mrs: HashMap::new(),
            cqs: HashMap::new(),
            qps: HashMap::new(),
            regions: BTreeMap::new(),
            graveyard: Vec::new(),
        }
    }
}

impl Objects {
    fn handle(&mut self) -> u32 {
        let h = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        h
    }

    /// Makes `mem` mappable; returns its page offset.
    fn add_region(&mut self, mem: Arc<DmaCoherent>) -> u64 {
        let pgoff = self.next_pgoff;
        self.next_pgoff += mem.len().div_ceil(PAGE_SIZE);
        self.regions.insert(pgoff, Region { mem, mapped: false });
        pgoff
    }

    fn remove_region(&mut self, pgoff: u64) {
        if let Some(region) = self.regions.remove(&pgoff)
            && region.mapped
        {
            self.graveyard.push(region.mem);
        }
    }

    fn pd(&mut self, handle: u32) -> KResult<&mut Pd> {
        self.pds.get_mut(&handle).ok_or(Errno::EINVAL)
    }

    fn cq(&mut self, handle: u32) -> KResult<&mut Cq> {
        self.cqs.get_mut(&handle).ok_or(Errno::EINVAL)
    }

    fn unuse_pd(&mut self, handle: u32) {
        if let Some(pd) = self.pds.get_mut(&handle) {
            pd.users = pd.users.saturating_sub(1);
        }
    }
}

/// A verbs context: one open of the device node.
#[derive(Debug)]
pub(crate) struct Context {
    me: Weak<Context>,
    dev: Arc<Device>,
    uar: u32,
    objs: Mutex<Objects>,
    events: EventQueue<AsyncEvent>,
}

impl Context {
    /// Queues an asynchronous event about object `id` (0: the port).
    pub fn post_event(&self, id: u64, event: AsyncEvent) {
        self.events.push(id, event);
    }

    fn limits(&self) -> Limits {
        Limits {
            max_rd_atomic: self.dev.caps.max_qp_init_rd_atom,
            max_dest_rd_atomic: self.dev.caps.max_qp_rd_atom,
            max_mtu: self.dev.port.max_mtu,
            gid_tbl_len: self.dev.port.gid_tbl_len,
        }
    }

    fn coherent(&self, bytes: u64) -> KResult<Arc<DmaCoherent>> {
        Ok(Arc::new(
            self.dev.kernel()?.dma_alloc_coherent(self.dev.dev, bytes)?,
        ))
    }

    fn query_device(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        task.write_obj(
            arg,
            &QueryDevice {
                attr: self.dev.caps,
            },
        )?;
        Ok(0)
    }

    fn query_port(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: QueryPort = task.read_obj(arg)?;
        if req.port_num != 1 {
            return Err(Errno::EINVAL);
        }
        req.attr = self.dev.cmd().query_port()?;
        task.write_obj(arg, &req)?;
        Ok(0)
    }

    fn alloc_pd(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut objs = lock(&self.objs);
        let pdn = self.dev.cmd().alloc_pd(self.uar)?;
        let handle = objs.handle();
        objs.pds.insert(handle, Pd { pdn, users: 0 });
        let out = AllocPd {
            pd_handle: handle,
            pad: 0,
        };
        if let Err(e) = task.write_obj(arg, &out) {
            objs.pds.remove(&handle);
            let _ = self.dev.cmd().dealloc_pd(pdn);
            return Err(e);
        }
        Ok(0)
    }

    fn dealloc_pd(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: Destroy = task.read_obj(arg)?;
        let mut objs = lock(&self.objs);
        let pd = objs.pd(req.handle)?;
        if pd.users != 0 {
            return Err(Errno::EBUSY);
        }
        self.dev.cmd().dealloc_pd(pd.pdn)?;
        objs.pds.remove(&req.handle);
        Ok(0)
    }

    /// Takes a use of a PD for an object being created without the objects' lock.
    fn hold_pd(&self, handle: u32) -> KResult<u32> {
        let mut objs = lock(&self.objs);
        let pd = objs.pd(handle)?;
        pd.users += 1;
        Ok(pd.pdn)
    }

    /// Adds a registered region; writes its handle and keys to user space (undoing
    /// the registration if that fails).
    fn add_mr(
        &self,
        mr: Mr,
        flags: u32,
        out: impl FnOnce(u32, u32, u32) -> KResult<()>,
    ) -> KResult<i64> {
        let key = mr.key;
        let pd_handle = mr.pd_handle;
        let handle = {
            let mut objs = lock(&self.objs);
            let handle = objs.handle();
            objs.mrs.insert(handle, mr);
            handle
        };
        if let Err(e) = out(handle, key, rkey(key, flags)) {
            let mr = lock(&self.objs).mrs.remove(&handle);
            if let Some(mr) = mr {
                let _ = mr.dereg(&self.dev);
                lock(&self.objs).unuse_pd(pd_handle);
            }
            return Err(e);
        }
        Ok(0)
    }

    fn reg_mr(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: RegMr = task.read_obj(arg)?;
        if req.addr % PAGE_SIZE != req.iova % PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        check_mr_access(req.access, self.dev.odp())?;
        let pdn = self.hold_pd(req.pd_handle)?;
        let args = RegArgs {
            pd_handle: req.pd_handle,
            pdn,
            start: req.addr,
            length: req.length,
            iova: req.iova,
            flags: req.access,
        };
        let mr = Mr::reg_user(&self.dev, task, args)
            .inspect_err(|_| lock(&self.objs).unuse_pd(req.pd_handle))?;
        self.add_mr(mr, req.access, |handle, lkey, rkey| {
            req.mr_handle = handle;
            req.lkey = lkey;
            req.rkey = rkey;
            task.write_obj(arg, &req)
        })
    }

    fn reg_dmabuf_mr(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: RegDmabufMr = task.read_obj(arg)?;
        // The PD is resolved first, as the ioctl framework does with its attributes.
        let pdn = self.hold_pd(req.pd_handle)?;
        let registered = check_dmabuf_args(
            self.dev.params.reg_dmabuf_mr,
            req.offset,
            req.length,
            req.iova,
            req.access,
        )
        .and_then(|end| get_dmabuf(task, req.fd, end, req.length))
        .and_then(|buf| {
            let args = RegArgs {
                pd_handle: req.pd_handle,
                pdn,
                start: req.offset,
                length: req.length,
                iova: req.iova,
                flags: req.access,
            };
            Mr::reg_dmabuf(&self.dev, buf, args)
        });
        let mr = registered.inspect_err(|_| lock(&self.objs).unuse_pd(req.pd_handle))?;
        self.add_mr(mr, req.access, |handle, lkey, rkey| {
            req.mr_handle = handle;
            req.lkey = lkey;
            req.rkey = rkey;
            task.write_obj(arg, &req)
        })
    }

    fn dereg_mr(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: Destroy = task.read_obj(arg)?;
        let mr = lock(&self.objs)
            .mrs
            .remove(&req.handle)
            .ok_or(Errno::EINVAL)?;
        let pd_handle = mr.pd_handle;
        let result = mr.dereg(&self.dev);
        lock(&self.objs).unuse_pd(pd_handle);
        result.map(|()| 0)
    }

    fn create_comp_channel(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let reservation = task.reserve_fd(true)?;
        let file = CompChannel::create();
        let out = CreateCompChannel {
            fd: reservation.fd(),
            pad: 0,
        };
        task.write_obj(arg, &out)?;
        reservation.install(file);
        Ok(0)
    }

    fn create_cq(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: CreateCq = task.read_obj(arg)?;
        // As `create_cq`: a negative fd means no channel, and the channel is resolved
        // before the driver looks at the size.
        let channel = if req.comp_channel < 0 {
            None
        } else {
            let file = task.fget(req.comp_channel)?;
            Some(file.ops_arc::<CompChannel>().ok_or(Errno::EINVAL)?)
        };
        if req.cqe == 0 || req.cqe > self.dev.caps.max_cqe {
            return Err(Errno::EINVAL);
        }
        let entries = req.cqe.next_power_of_two().max(2);
        let ring_bytes = u64::from(entries) * CQE_SIZE as u64;
        let mem = self.coherent(ring_bytes + 64)?;
        let mut objs = lock(&self.objs);
        let cqn = self.dev.cmd().create_cq(&cmd::CreateCq {
            ring: mem.iova().raw(),
            dbrec: mem.iova().raw() + ring_bytes,
            log_size: entries.trailing_zeros(),
            uar: self.uar,
        })?;
        let handle = objs.handle();
        let hw = Arc::new(CqHw {
            id: object_id(),
            ctx: self.me.clone(),
            handle,
            cq_context: req.cq_context,
            channel,
        });
        lock(&self.dev.cqs).insert(cqn, hw.clone());
        let mmap_len = mem.len();
        let pgoff = objs.add_region(mem);
        objs.cqs.insert(
            handle,
            Cq {
                cqn,
                hw,
                users: 0,
                pgoff,
            },
        );
        req.cq_handle = handle;
        req.cqn = cqn;
        req.cqe_out = entries;
        req.log_size = entries.trailing_zeros();
        req.mmap_offset = pgoff * PAGE_SIZE;
        req.mmap_len = mmap_len;
        req.dbrec_offset = ring_bytes;
        if let Err(e) = task.write_obj(arg, &req) {
            let _ = self.destroy_cq_locked(&mut objs, handle);
            return Err(e);
        }
        Ok(0)
    }

    fn destroy_cq_locked(&self, objs: &mut Objects, handle: u32) -> KResult<()> {
        let cq = objs.cq(handle)?;
        if cq.users != 0 {
            return Err(Errno::EBUSY);
        }
        self.dev.cmd().destroy_cq(cq.cqn)?;
        let cq = objs.cqs.remove(&handle).ok_or(Errno::EINVAL)?;
        self.forget_cq(&cq);
        objs.remove_region(cq.pgoff);
        Ok(())
    }

    /// Drops what refers to a destroyed CQ: the NIC's number and pending events.
    fn forget_cq(&self, cq: &Cq) {
        lock(&self.dev.cqs).remove(&cq.cqn);
        if let Some(channel) = &cq.hw.channel {
            channel.forget(cq.hw.id);
        }
        self.events.forget(cq.hw.id);
    }

    fn destroy_cq(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: Destroy = task.read_obj(arg)?;
        self.destroy_cq_locked(&mut lock(&self.objs), req.handle)?;
        Ok(0)
    }

    fn create_qp(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: CreateQp = task.read_obj(arg)?;
        let caps = self.dev.caps;
        let mut objs = lock(&self.objs);
        let pdn = objs.pd(req.pd_handle)?.pdn;
        let send_cqn = objs.cq(req.send_cq_handle)?.cqn;
        let recv_cqn = objs.cq(req.recv_cq_handle)?.cqn;
        let ty = QpType::from_raw(req.qp_type).ok_or(Errno::EOPNOTSUPP)?;
        let sq = queue_entries(req.cap.max_send_wr, caps.max_qp_wr)?;
        let rq = queue_entries(req.cap.max_recv_wr, caps.max_qp_wr)?;
        if req.cap.max_send_sge > caps.max_sge
            || req.cap.max_recv_sge > caps.max_sge
            || req.cap.max_inline_data > caps.max_inline_data
        {
            return Err(Errno::EINVAL);
        }
        let sq_mem = self.coherent(u64::from(sq) * SEND_WQE_SIZE as u64)?;
        let rq_mem = self.coherent(u64::from(rq) * RECV_WQE_SIZE as u64)?;
        let qpn = self.dev.cmd().create_qp(&cmd::CreateQp {
            sq: sq_mem.iova().raw(),
            rq: rq_mem.iova().raw(),
            log_sq_size: sq.trailing_zeros(),
            log_rq_size: rq.trailing_zeros(),
            pdn,
            send_cqn,
            recv_cqn,
            uar: self.uar,
            qp_type: ty as u8,
            sq_sig_all: u8::from(req.sq_sig_all != 0),
            pad: [0; 6],
        })?;
        let handle = objs.handle();
        let hw = Arc::new(QpHw {
            id: object_id(),
            ctx: self.me.clone(),
            handle,
            send_cqn,
            recv_cqn,
            state: AtomicU8::new(QpState::Reset as u8),
        });
        lock(&self.dev.qps).insert(qpn, hw.clone());
        objs.pd(req.pd_handle)?.users += 1;
        objs.cq(req.send_cq_handle)?.users += 1;
        objs.cq(req.recv_cq_handle)?.users += 1;
        let cap = QpCap {
            max_send_wr: sq,
            max_recv_wr: rq,
            max_send_sge: caps.max_sge,
            max_recv_sge: caps.max_sge,
            max_inline_data: caps.max_inline_data,
            pad: 0,
        };
        let sq_pgoff = objs.add_region(sq_mem);
        let rq_pgoff = objs.add_region(rq_mem);
        objs.qps.insert(
            handle,
            Qp {
                qpn,
                ty,
                hw,
                pd: req.pd_handle,
                send_cq: req.send_cq_handle,
                recv_cq: req.recv_cq_handle,
                cap,
                sq_pgoff,
                rq_pgoff,
            },
        );
        req.cap = cap;
        req.qp_handle = handle;
        req.qpn = qpn;
        req.log_sq_size = sq.trailing_zeros();
        req.log_rq_size = rq.trailing_zeros();
        req.sq_mmap_offset = sq_pgoff * PAGE_SIZE;
        req.rq_mmap_offset = rq_pgoff * PAGE_SIZE;
        if let Err(e) = task.write_obj(arg, &req) {
            let _ = self.destroy_qp_locked(&mut objs, handle);
            return Err(e);
        }
        Ok(0)
    }

    fn modify_qp(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: ModifyQp = task.read_obj(arg)?;
        check_mask_bits(req.attr_mask)?;
        let objs = lock(&self.objs);
        let qp = objs.qps.get(&req.qp_handle).ok_or(Errno::EINVAL)?;
        let raw = qp.hw.state.load(Ordering::Acquire);
        let mut known = QpState::from_raw(raw).ok_or(Errno::EIO)?;
        if req.attr_mask & verbs::attr_mask::CUR_STATE != 0 && req.attr.cur_qp_state != raw {
            // The NIC may have moved the QP (to ERR) before its event arrived.
            let nic = self.dev.cmd().query_qp(qp.qpn)?;
            known = QpState::from_raw(nic.qp_state).ok_or(Errno::EIO)?;
            qp.hw.state.store(known as u8, Ordering::Release);
        }
        let checked = check_modify(qp.ty, known, &req.attr, req.attr_mask, &self.limits())?;
        self.dev.cmd().modify_qp(&cmd::ModifyQp {
            qpn: qp.qpn,
            attr_mask: checked.mask,
            attr: checked.attr,
        })?;
        if matches!(checked.next, QpState::Reset | QpState::Err) {
            qp.hw.state.store(checked.next as u8, Ordering::Release);
        } else {
            // Unless an error event moved it meanwhile.
            let _ = qp.hw.state.compare_exchange(
                known as u8,
                checked.next as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        Ok(0)
    }

    fn query_qp(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: QueryQp = task.read_obj(arg)?;
        let objs = lock(&self.objs);
        let qp = objs.qps.get(&req.qp_handle).ok_or(Errno::EINVAL)?;
        let mut attr = self.dev.cmd().query_qp(qp.qpn)?;
        if QpState::from_raw(attr.qp_state).is_some() {
            qp.hw.state.store(attr.qp_state, Ordering::Release);
        }
        attr.cur_qp_state = attr.qp_state;
        req.attr = attr;
        req.cap = qp.cap;
        drop(objs);
        task.write_obj(arg, &req)?;
        Ok(0)
    }

    fn destroy_qp_locked(&self, objs: &mut Objects, handle: u32) -> KResult<()> {
        let qp = objs.qps.get(&handle).ok_or(Errno::EINVAL)?;
        self.dev.cmd().destroy_qp(qp.qpn)?;
        let qp = objs.qps.remove(&handle).ok_or(Errno::EINVAL)?;
        self.forget_qp(objs, &qp);
        Ok(())
    }

    /// Drops what refers to a destroyed QP.
    fn forget_qp(&self, objs: &mut Objects, qp: &Qp) {
        lock(&self.dev.qps).remove(&qp.qpn);
        self.events.forget(qp.hw.id);
        objs.unuse_pd(qp.pd);
        for handle in [qp.send_cq, qp.recv_cq] {
            if let Some(cq) = objs.cqs.get_mut(&handle) {
                cq.users = cq.users.saturating_sub(1);
            }
        }
        objs.remove_region(qp.sq_pgoff);
        objs.remove_region(qp.rq_pgoff);
    }

    fn destroy_qp(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: Destroy = task.read_obj(arg)?;
        self.destroy_qp_locked(&mut lock(&self.objs), req.handle)?;
        Ok(0)
    }

    /// The mmap of page offset `pgoff`: the UAR page, or a ring mapped whole.
    fn mmap(&self, pgoff: u64, len: u64) -> KResult<Vec<PhysRange>> {
        if pgoff == UAR_MMAP_OFFSET / PAGE_SIZE {
            if len != u64::from(regs::UAR_SIZE) {
                return Err(Errno::EINVAL);
            }
            return Ok(vec![PhysRange {
                start: self.dev.mmio.phys(regs::uar(self.uar)),
                len,
            }]);
        }
        let mut objs = lock(&self.objs);
        let region = objs.regions.get_mut(&pgoff).ok_or(Errno::EINVAL)?;
        if len != region.mem.len() {
            return Err(Errno::EINVAL);
        }
        region.mapped = true;
        Ok(vec![region.mem.phys()])
    }

    /// The last close: every object is destroyed (QPs, CQs, regions, PDs), then the
    /// UAR is given back. A NIC that fails to destroy an object keeps its memory.
    fn close(&self) {
        let mut objs = std::mem::take(&mut *lock(&self.objs));
        let dev = &self.dev;
        for (_, qp) in std::mem::take(&mut objs.qps) {
            if let Err(e) = dev.cmd().destroy_qp(qp.qpn) {
                tracing::error!("{}: destroying QPN {}: {e}", dev.name, qp.qpn);
                for pgoff in [qp.sq_pgoff, qp.rq_pgoff] {
                    if let Some(region) = objs.regions.remove(&pgoff) {
                        dev.quarantine(Box::new(region.mem));
                    }
                }
            }
            self.forget_qp(&mut objs, &qp);
        }
        for (_, cq) in std::mem::take(&mut objs.cqs) {
            if let Err(e) = dev.cmd().destroy_cq(cq.cqn) {
                tracing::error!("{}: destroying CQN {}: {e}", dev.name, cq.cqn);
                if let Some(region) = objs.regions.remove(&cq.pgoff) {
                    dev.quarantine(Box::new(region.mem));
                }
            }
            self.forget_cq(&cq);
        }
        for (_, mr) in std::mem::take(&mut objs.mrs) {
            let _ = mr.dereg(dev);
        }
        for (_, pd) in std::mem::take(&mut objs.pds) {
            if let Err(e) = dev.cmd().dealloc_pd(pd.pdn) {
                tracing::error!("{}: freeing PDN {}: {e}", dev.name, pd.pdn);
            }
        }
        dev.free_uar(self.uar);
        lock(&dev.contexts).retain(|c| c.strong_count() > 0 && !c.ptr_eq(&self.me));
        drop(objs);
    }
}

/// An open uverbs file.
struct UverbsFile {
    ctx: Arc<Context>,
}

impl FileOps for UverbsFile {
    fn name(&self, _file: &File) -> String {
        format!("/dev/infiniband/{}", self.ctx.dev.name)
    }

    fn ioctl(&self, task: &Task<'_>, _file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let ctx = &self.ctx;
        let arg = UserPtr(arg);
        match cmd {
            RDMA_QUERY_DEVICE => ctx.query_device(task, arg),
            RDMA_QUERY_PORT => ctx.query_port(task, arg),
            RDMA_ALLOC_PD => ctx.alloc_pd(task, arg),
            RDMA_DEALLOC_PD => ctx.dealloc_pd(task, arg),
            RDMA_REG_MR => ctx.reg_mr(task, arg),
            RDMA_REG_DMABUF_MR => ctx.reg_dmabuf_mr(task, arg),
            RDMA_DEREG_MR => ctx.dereg_mr(task, arg),
            RDMA_CREATE_COMP_CHANNEL => ctx.create_comp_channel(task, arg),
            RDMA_CREATE_CQ => ctx.create_cq(task, arg),
            RDMA_DESTROY_CQ => ctx.destroy_cq(task, arg),
            RDMA_CREATE_QP => ctx.create_qp(task, arg),
            RDMA_MODIFY_QP => ctx.modify_qp(task, arg),
            RDMA_QUERY_QP => ctx.query_qp(task, arg),
            RDMA_DESTROY_QP => ctx.destroy_qp(task, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    fn read(
        &self,
        _task: &Task<'_>,
        file: &Arc<File>,
        len: usize,
        _pos: &mut u64,
    ) -> KResult<Vec<u8>> {
        self.ctx.events.read(file, len)
    }

    fn poll(
        &self,
        _file: &Arc<File>,
        table: Option<&PollTable<'_>>,
        _events: PollMask,
    ) -> PollMask {
        self.ctx.events.poll(table)
    }

    fn mmap(
        &self,
        _file: &Arc<File>,
        pgoff: u64,
        len: u64,
        _prot: Prot,
    ) -> KResult<Vec<PhysRange>> {
        self.ctx.mmap(pgoff, len)
    }

    fn fdinfo(&self, _file: &Arc<File>) -> String {
        format!("uar:\t{}\n", self.ctx.uar)
    }

    fn release(&self, _file: &File) {
        self.ctx.close();
    }
}

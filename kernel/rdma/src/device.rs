//! One NIC: probe, registers, the event queue and its interrupt, and the page-fault
//! worker.
//!
//! The event queue is a ring of [`Eqe`] in DMA-coherent memory that the NIC writes
//! (body first, `owner` last) and signals with an MSI; the driver consumes entries by
//! the owner-bit rule and reports its consumer index in `EQ_CI`. The interrupt handler
//! may run on a NIC thread, even on the thread that is in the middle of an MMIO write
//! to the NIC: it never blocks on anything but short driver locks that are never held
//! across MMIO, never runs a command and never takes a reservation lock. Page faults
//! go to a worker thread, which may do all of that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use sagrada_hw_fabric::{DeviceId, Fabric, PhysAddr};
use sagrada_hw_rnic_abi::cmd::{
    DeviceCaps, EVENT_COMPLETION, EVENT_CQ_ERR, EVENT_PAGE_FAULT, EVENT_PORT_CHANGE,
    EVENT_QP_FATAL, PortAttr,
};
use sagrada_hw_rnic_abi::queue::{EQE_SIZE, Eqe, owner_for};
use sagrada_hw_rnic_abi::verbs::QpState;
use sagrada_hw_rnic_abi::{ABI_VERSION, ID_VALUE, NUM_UARS, REG_BAR, regs};
use sagrada_kernel_core::{DmaCoherent, Errno, KResult, Kernel, MsiMessage, lock};
use zerocopy::FromBytes;

use crate::RdmaParams;
use crate::channel::CompChannel;
use crate::cmd::{Commands, Mailbox};
use crate::file::Context;
use crate::mr::DmabufMr;
use crate::uapi::{
    AsyncEvent, CqEvent, EVENT_CQ_ERR as UEVENT_CQ_ERR, EVENT_PORT_ACTIVE, EVENT_PORT_ERR,
    EVENT_QP_FATAL as UEVENT_QP_FATAL,
};

/// log2 of the event queue's entries.
const EQ_LOG_SIZE: u32 = 12;
/// The largest DMA segment the NIC handles (`dma_set_max_seg_size`), as RDMA drivers
/// set it: a dma-buf exporter may then hand out large contiguous entries.
const MAX_SEG_SIZE: u64 = 2 << 30;
/// Page sizes a memory key may use: 4 KiB to 1 GiB (`page_shift` 12 to 30).
const KEY_PAGE_SIZES: u64 = ((1 << 31) - 1) & !((1 << 12) - 1);

/// BAR0 as `ioremap` gives it: 32-bit register accesses through the fabric.
#[derive(Debug, Clone)]
pub(crate) struct Mmio {
    fabric: Arc<Fabric>,
    base: PhysAddr,
}

impl Mmio {
    fn at(&self, off: u32) -> PhysAddr {
        PhysAddr(self.base.raw() + u64::from(off))
    }

    /// `readl`: `EIO` if nothing answers.
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

    /// A 64-bit value in a LO/HI register pair, low half first.
    pub fn write64(&self, lo: u32, value: u64) -> KResult<()> {
        self.write(lo, value as u32)?;
        self.write(lo + 4, (value >> 32) as u32)
    }

    /// The CPU physical address of a BAR0 offset (for mapping a UAR page).
    pub fn phys(&self, off: u32) -> PhysAddr {
        self.at(off)
    }
}

/// A number no other CQ or QP of this kernel gets: what queued events are filed under,
/// so that a destroyed object's pending events can be dropped.
pub(crate) fn object_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What the interrupt handler needs of a CQ: whose it is and where its events go.
#[derive(Debug)]
pub(crate) struct CqHw {
    pub id: u64,
    pub ctx: Weak<Context>,
    pub handle: u32,
    pub cq_context: u64,
    pub channel: Option<Arc<CompChannel>>,
}

/// What the interrupt handler needs of a QP.
#[derive(Debug)]
pub(crate) struct QpHw {
    pub id: u64,
    pub ctx: Weak<Context>,
    pub handle: u32,
    pub send_cqn: u32,
    pub recv_cqn: u32,
    /// The state as the driver knows it (a [`QpState`] value): set by modifies, and to
    /// ERR when the NIC reports that it moved the QP there.
    pub state: AtomicU8,
}

/// A page fault for the worker: an access found key `key` without translation.
#[derive(Clone, Copy, Debug)]
struct Fault {
    key: u32,
    qpn: u32,
}

struct EventQueue {
    ring: DmaCoherent,
    ci: u32,
}

/// The driver's state for one NIC.
pub(crate) struct Device {
    pub kernel: Weak<Kernel>,
    pub fabric: Arc<Fabric>,
    pub dev: DeviceId,
    /// "uverbs0".
    pub name: String,
    pub params: RdmaParams,
    pub mmio: Mmio,
    mailbox: Mailbox,
    /// `QUERY_DEVICE` at probe.
    pub caps: DeviceCaps,
    /// The `CAPS` register.
    pub hw_caps: u32,
    /// `QUERY_PORT` at probe (for the fields that do not change: MTU, GID table).
    pub port: PortAttr,
    eq: Mutex<EventQueue>,
    eq_pending: AtomicBool,
    msi: OnceLock<MsiMessage>,
    uars: Mutex<Vec<bool>>,
    /// CQN → CQ, for completion and CQ error events.
    pub cqs: Mutex<HashMap<u32, Arc<CqHw>>>,
    /// QPN → QP, for QP events.
    pub qps: Mutex<HashMap<u32, Arc<QpHw>>>,
    /// key → on-demand-paging dma-buf region, for page faults.
    pub odp_mrs: Mutex<HashMap<u32, Arc<DmabufMr>>>,
    /// Open contexts, for port events.
    pub contexts: Mutex<Vec<Weak<Context>>>,
    faults: Mutex<Sender<Fault>>,
    variant: AtomicU32,
    /// Host resources of objects the NIC failed to destroy: never freed, so the NIC can
    /// never reach memory that was given back.
    quarantine: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdmaDevice")
            .field("name", &self.name)
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Binds the driver to NIC `dev` as `name`. The error says why it was refused.
    pub fn probe(
        kernel: &Arc<Kernel>,
        dev: DeviceId,
        name: &str,
        params: RdmaParams,
    ) -> Result<Arc<Self>, String> {
        let fabric = kernel.fabric().clone();
        fn io(what: &str) -> impl Fn(Errno) -> String + '_ {
            move |e| format!("{what}: {e}")
        }
        let bar0 = fabric
            .function(dev)
            .bars
            .iter()
            .find(|b| b.index == REG_BAR)
            .map(|b| b.phys)
            .ok_or("BAR0 is missing")?;
        let mmio = Mmio {
            fabric: fabric.clone(),
            base: bar0,
        };
        let id = mmio.read(regs::ID).map_err(io("reading the ID register"))?;
        if id != ID_VALUE {
            return Err(format!(
                "ID register reads {id:#010x}, not an SG RDMA NIC ({ID_VALUE:#010x})"
            ));
        }
        let version = mmio.read(regs::VERSION).map_err(io("reading VERSION"))?;
        if version >> 16 != ABI_VERSION >> 16 {
            return Err(format!(
                "the NIC speaks ABI {}.{}, this driver speaks major {}; refusing the device",
                version >> 16,
                version & 0xffff,
                ABI_VERSION >> 16
            ));
        }
        let hw_caps = mmio.read(regs::CAPS).map_err(io("reading CAPS"))?;
        kernel.dma_set_max_seg_size(dev, MAX_SEG_SIZE);

        let alloc = |bytes: u64, what: &str| {
            kernel
                .dma_alloc_coherent(dev, bytes)
                .map_err(|e| format!("allocating the {what}: {e}"))
        };
        let mailbox = Mailbox::new(alloc(4096, "command mailbox")?, &mmio)
            .map_err(io("programming the mailbox"))?;
        let cmds = Commands {
            mailbox: &mailbox,
            mmio: &mmio,
        };
        let caps = cmds.query_device().map_err(io("QUERY_DEVICE"))?;
        let port = cmds.query_port().map_err(io("QUERY_PORT"))?;
        let eq_ring = alloc((EQE_SIZE as u64) << EQ_LOG_SIZE, "event queue")?;

        let (faults_tx, faults_rx) = channel();
        let device = Arc::new(Device {
            kernel: kernel.downgrade(),
            fabric,
            dev,
            name: name.to_owned(),
            params,
            mmio,
            mailbox,
            caps,
            hw_caps,
            port,
            eq: Mutex::new(EventQueue {
                ring: eq_ring,
                ci: 0,
            }),
            eq_pending: AtomicBool::new(false),
            msi: OnceLock::new(),
            uars: Mutex::new(vec![false; NUM_UARS as usize]),
            cqs: Mutex::new(HashMap::new()),
            qps: Mutex::new(HashMap::new()),
            odp_mrs: Mutex::new(HashMap::new()),
            contexts: Mutex::new(Vec::new()),
            faults: Mutex::new(faults_tx),
            variant: AtomicU32::new(dev.0.wrapping_mul(0x9e37_79b9)),
            quarantine: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&device);
        std::thread::Builder::new()
            .name(format!("{name}-pagefault"))
            .spawn(move || fault_worker(weak, faults_rx))
            .map_err(|e| format!("starting the page-fault worker: {e}"))?;
        device
            .start_eq(kernel)
            .map_err(io("setting up the event queue"))?;
        tracing::info!(
            "{name}: RDMA NIC bound (ABI {}.{}, caps {hw_caps:#x}, fw {:#x})",
            version >> 16,
            version & 0xffff,
            caps.fw_ver
        );
        Ok(device)
    }

    /// Requests the interrupt and points the NIC at the event queue.
    fn start_eq(self: &Arc<Self>, kernel: &Kernel) -> KResult<()> {
        let weak = Arc::downgrade(self);
        let msg = kernel.request_irq(
            &format!("{}-eq", self.name),
            Arc::new(move || {
                if let Some(device) = weak.upgrade() {
                    device.on_interrupt();
                }
            }),
        )?;
        let _ = self.msi.set(msg);
        let base = lock(&self.eq).ring.iova().raw();
        self.mmio.write(regs::EQ_CTRL, 0)?;
        self.mmio.write64(regs::EQ_BASE_LO, base)?;
        self.mmio.write(regs::EQ_LOG_SIZE, EQ_LOG_SIZE)?;
        self.mmio.write(regs::EQ_CI, 0)?;
        self.mmio.write64(regs::EQ_MSI_ADDR_LO, msg.address)?;
        self.mmio.write(regs::EQ_MSI_DATA, msg.data)?;
        self.mmio.write(regs::EQ_CTRL, regs::EQ_CTRL_ENABLE)
    }

    /// The NIC's commands (one at a time).
    pub fn cmd(&self) -> Commands<'_> {
        Commands {
            mailbox: &self.mailbox,
            mmio: &self.mmio,
        }
    }

    /// The kernel, `ENODEV` once it is gone.
    pub fn kernel(&self) -> KResult<Arc<Kernel>> {
        self.kernel.upgrade().ok_or(Errno::ENODEV)
    }

    /// Whether the NIC can invalidate keys and fault on them (`CAP_ODP`).
    pub fn odp(&self) -> bool {
        self.hw_caps & regs::CAP_ODP != 0
    }

    /// The page sizes a key may use (bit n: 2^n bytes), never empty.
    pub fn page_sizes(&self) -> u64 {
        let sizes = self.caps.page_size_cap & KEY_PAGE_SIZES;
        if sizes == 0 { 1 << 12 } else { sizes }
    }

    /// The low 8 bits of the next key: deterministic but varying, so that a stale key
    /// whose index is reused does not match the new one.
    pub fn next_variant(&self) -> u8 {
        let n = self.variant.fetch_add(0x9e37_79b9, Ordering::Relaxed);
        (n >> 24) as u8 ^ (n >> 8) as u8
    }

    /// A free doorbell page for a new context, `ENOMEM` when none is left.
    pub fn alloc_uar(&self) -> KResult<u32> {
        let mut uars = lock(&self.uars);
        let free = uars.iter().position(|used| !used).ok_or(Errno::ENOMEM)?;
        uars[free] = true;
        Ok(free as u32)
    }

    /// Gives a doorbell page back.
    pub fn free_uar(&self, uar: u32) {
        if let Some(used) = lock(&self.uars).get_mut(uar as usize) {
            *used = false;
        }
    }

    /// Keeps host resources the NIC may still use (a failed destroy) for ever.
    pub fn quarantine(&self, what: Box<dyn std::any::Any + Send>) {
        lock(&self.quarantine).push(what);
    }

    /// The interrupt: drains the event queue. Safe to enter concurrently and
    /// re-entrantly (from an MMIO write the handler itself makes): whoever holds the
    /// queue drains again until no interrupt is pending.
    fn on_interrupt(&self) {
        self.eq_pending.store(true, Ordering::Release);
        loop {
            let mut eq = match self.eq.try_lock() {
                Ok(eq) => eq,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            while self.eq_pending.swap(false, Ordering::AcqRel) {
                self.drain(&mut eq);
            }
            drop(eq);
            if !self.eq_pending.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Consumes every valid entry, then reports the consumer index.
    fn drain(&self, eq: &mut EventQueue) {
        let size = 1u32 << EQ_LOG_SIZE;
        let mut consumed = 0;
        loop {
            let at = u64::from(eq.ci % size) * EQE_SIZE as u64;
            let mut owner = [0u8];
            if eq.ring.read(at + EQE_SIZE as u64 - 1, &mut owner).is_err()
                || owner[0] != owner_for(eq.ci, EQ_LOG_SIZE)
            {
                break;
            }
            let mut raw = [0u8; EQE_SIZE];
            let entry = eq
                .ring
                .read(at, &mut raw)
                .ok()
                .and_then(|()| Eqe::read_from_bytes(&raw).ok());
            eq.ci = eq.ci.wrapping_add(1);
            consumed += 1;
            if let Some(entry) = entry {
                self.dispatch(&entry);
            }
            if consumed % (size / 2) == 0 {
                let _ = self.mmio.write(regs::EQ_CI, eq.ci);
            }
        }
        if consumed != 0 {
            let _ = self.mmio.write(regs::EQ_CI, eq.ci);
        }
    }

    fn dispatch(&self, e: &Eqe) {
        match e.kind {
            EVENT_COMPLETION => {
                let cq = lock(&self.cqs).get(&e.obj).cloned();
                match cq {
                    Some(cq) => {
                        if let Some(channel) = &cq.channel {
                            channel.push(
                                cq.id,
                                CqEvent {
                                    cq_context: cq.cq_context,
                                    cq_handle: cq.handle,
                                    pad: 0,
                                },
                            );
                        }
                    }
                    None => tracing::debug!("{}: completion event for CQN {}", self.name, e.obj),
                }
            }
            EVENT_QP_FATAL => {
                let qp = lock(&self.qps).get(&e.obj).cloned();
                if let Some(qp) = qp {
                    qp.state.store(QpState::Err as u8, Ordering::Release);
                    if let Some(ctx) = qp.ctx.upgrade() {
                        ctx.post_event(
                            qp.id,
                            AsyncEvent {
                                element: qp.handle,
                                event_type: UEVENT_QP_FATAL,
                            },
                        );
                    }
                }
            }
            EVENT_CQ_ERR => {
                let cq = lock(&self.cqs).get(&e.obj).cloned();
                if let Some(cq) = cq {
                    for qp in lock(&self.qps).values() {
                        if qp.send_cqn == e.obj || qp.recv_cqn == e.obj {
                            qp.state.store(QpState::Err as u8, Ordering::Release);
                        }
                    }
                    if let Some(ctx) = cq.ctx.upgrade() {
                        ctx.post_event(
                            cq.id,
                            AsyncEvent {
                                element: cq.handle,
                                event_type: UEVENT_CQ_ERR,
                            },
                        );
                    }
                }
            }
            EVENT_PORT_CHANGE => {
                let event_type = if e.data != 0 {
                    EVENT_PORT_ACTIVE
                } else {
                    EVENT_PORT_ERR
                };
                let contexts: Vec<Arc<Context>> = lock(&self.contexts)
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                for ctx in contexts {
                    ctx.post_event(
                        0,
                        AsyncEvent {
                            element: 1,
                            event_type,
                        },
                    );
                }
            }
            EVENT_PAGE_FAULT => {
                let fault = Fault {
                    key: e.obj,
                    qpn: e.data,
                };
                if lock(&self.faults).send(fault).is_err() {
                    tracing::error!("{}: page fault on key {:#x} lost", self.name, e.obj);
                }
            }
            other => tracing::warn!(
                "{}: event of unknown type {other} (object {:#x})",
                self.name,
                e.obj
            ),
        }
    }
}

/// Serves page faults: resolves each on-demand-paging key under its buffer's
/// reservation lock. Ends when the device goes away.
fn fault_worker(device: Weak<Device>, faults: Receiver<Fault>) {
    while let Ok(fault) = faults.recv() {
        let Some(device) = device.upgrade() else {
            return;
        };
        let mr = lock(&device.odp_mrs).get(&fault.key).cloned();
        match mr {
            Some(mr) => mr.page_fault(&device),
            None => tracing::debug!(
                "{}: page fault of QPN {} on key {:#x}, which is no on-demand region",
                device.name,
                fault.qpn,
                fault.key
            ),
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.mmio.write(regs::EQ_CTRL, 0);
        if let (Some(kernel), Some(msg)) = (self.kernel.upgrade(), self.msi.get()) {
            let _ = kernel.free_irq(msg.vector);
        }
    }
}

//! The SG1 from user space: device memory, pinned host memory, copies through the DMA
//! engines, streams and events, dma-buf export, and the compute cores' counters, over
//! the driver's uAPI. Kernels (loading, arguments, launches, faults) are in
//! [`crate::kernel`].
//!
//! Command buffers are built here and live in a pool of host memory mapped into the
//! device (a user pointer mapping), as habanalabs user space does with its CBs. A
//! command buffer's slot can also carry a little data after its packets, which a
//! packet of the same buffer copies to the device (what a launch's arguments take).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, Packet};
use sagrada_hw_accel_abi::{QUEUE_COMPUTE, QUEUE_DMA0, QUEUE_DMA1};
use sagrada_kernel_accel::uapi::*;
use sagrada_kernel_core::lock;
use sagrada_sys::{Errno, Fd, OpenFlags, Process, UserPtr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The first DMA engine.
pub const DMA0: u32 = QUEUE_DMA0;
/// The second DMA engine.
pub const DMA1: u32 = QUEUE_DMA1;
/// The compute queue: the one that runs kernels (`LAUNCH`).
pub const COMPUTE: u32 = QUEUE_COMPUTE;

/// Bytes of one command-buffer slot.
const CB_SLOT: u64 = 4096;
/// Where a slot's data starts (its packets come before).
const CB_DATA: u64 = 2048;
/// Slots in the pool.
const CB_SLOTS: u64 = 256;
/// Bytes of the area that carries a submission's chunk array to the kernel (larger
/// arrays get memory of their own for the call).
const CHUNK_AREA: u64 = 4096;
/// Bytes of the area that INFO answers into (larger answers get memory of their own).
const INFO_AREA: u64 = 4096;

/// Device memory: an allocation mapped at `va`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// The allocation's handle.
    pub handle: u64,
    /// Its device VA.
    pub va: u64,
    /// Bytes (rounded up to the device page).
    pub size: u64,
}

/// Host memory pinned and mapped for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    /// Where the process sees it.
    pub ptr: UserPtr,
    /// Where the device sees it.
    pub va: u64,
    /// Bytes.
    pub size: u64,
}

/// One compute core's counters (INFO_CORES): the work of every launch of every
/// context since the device's last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreCounters {
    /// Instructions retired.
    pub instructions: u64,
    /// Vector lane operations: the active lanes of each vector instruction.
    pub lane_ops: u64,
    /// Bytes of global memory read and written.
    pub global_bytes: u64,
    /// Bytes of scratchpad read and written.
    pub scratch_bytes: u64,
    /// Invocations run to `halt`.
    pub invocations: u64,
    /// Device time busy, ns.
    pub busy_ns: u64,
}

impl CoreCounters {
    /// What was counted since `earlier` (a reading of the same core).
    pub fn since(&self, earlier: &CoreCounters) -> CoreCounters {
        CoreCounters {
            instructions: self.instructions.wrapping_sub(earlier.instructions),
            lane_ops: self.lane_ops.wrapping_sub(earlier.lane_ops),
            global_bytes: self.global_bytes.wrapping_sub(earlier.global_bytes),
            scratch_bytes: self.scratch_bytes.wrapping_sub(earlier.scratch_bytes),
            invocations: self.invocations.wrapping_sub(earlier.invocations),
            busy_ns: self.busy_ns.wrapping_sub(earlier.busy_ns),
        }
    }
}

impl std::ops::Add for CoreCounters {
    type Output = CoreCounters;

    /// Both counts together (of two cores, say), each wrapping as the registers do.
    fn add(self, o: CoreCounters) -> CoreCounters {
        CoreCounters {
            instructions: self.instructions.wrapping_add(o.instructions),
            lane_ops: self.lane_ops.wrapping_add(o.lane_ops),
            global_bytes: self.global_bytes.wrapping_add(o.global_bytes),
            scratch_bytes: self.scratch_bytes.wrapping_add(o.scratch_bytes),
            invocations: self.invocations.wrapping_add(o.invocations),
            busy_ns: self.busy_ns.wrapping_add(o.busy_ns),
        }
    }
}

impl std::iter::Sum for CoreCounters {
    fn sum<I: Iterator<Item = CoreCounters>>(iter: I) -> CoreCounters {
        iter.fold(CoreCounters::default(), |a, b| a + b)
    }
}

impl From<&CoreInfo> for CoreCounters {
    fn from(c: &CoreInfo) -> Self {
        CoreCounters {
            instructions: c.instructions,
            lane_ops: c.lane_ops,
            global_bytes: c.global_bytes,
            scratch_bytes: c.scratch_bytes,
            invocations: c.invocations,
            busy_ns: c.busy_ns,
        }
    }
}

/// The outcome of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsOutcome {
    /// Done; device time of completion in ns.
    Completed {
        /// Device time, ns.
        device_time_ns: u64,
    },
    /// Aborted: the negative errno of the cause and its address or packet offset.
    Aborted {
        /// `-EFAULT`, `-EINVAL`, `-EPERM`, `-EIO` (a compute core faulted),
        /// `-ECANCELED` (a reset) or `-ETIMEDOUT` (the driver found it locked up).
        error: i32,
        /// Faulting VA, packet offset, or a core fault
        /// (`sagrada_hw_accel_abi::launch::CoreFault::from_info`).
        info: u64,
    },
    /// Still running when the timeout expired.
    Busy,
    /// Ended so long ago that the driver no longer keeps its outcome.
    Gone,
}

impl CsOutcome {
    /// `Ok` for a completed submission, else the errno of its failure (`ETIMEDOUT`
    /// while still busy).
    pub fn ok(self) -> Result<u64, Errno> {
        match self {
            CsOutcome::Completed { device_time_ns } => Ok(device_time_ns),
            CsOutcome::Aborted { error, .. } => Err(Errno::new(-error).unwrap_or(Errno::EIO)),
            CsOutcome::Busy => Err(Errno::ETIMEDOUT),
            // Whether it failed is not known any more; it did end.
            CsOutcome::Gone => Ok(0),
        }
    }
}

#[derive(Debug)]
struct CbPool {
    base: HostMemory,
    free: Vec<u64>,
    /// Slots in flight, by the submission that uses them, oldest first.
    busy: VecDeque<(u64, Vec<u64>)>,
}

/// An open SG1 (one context).
#[derive(Debug)]
pub struct Device<'p> {
    p: &'p Process,
    fd: Fd,
    info: HwIpInfo,
    ctx: ContextInfo,
    cbs: Mutex<Option<CbPool>>,
    /// Where chunk arrays are written for `CS`, allocated at the first submission and
    /// held for the length of each call (mapping memory per call would cost more than
    /// the submission itself).
    chunk_area: Mutex<Option<UserPtr>>,
    /// Where INFO answers, allocated at the first query and held for the length of
    /// each call: events query the reset count at every record and wait.
    info_area: Mutex<Option<UserPtr>>,
    sobs: Mutex<Vec<u32>>,
}

fn mem_args(op: u32) -> MemArgs {
    MemArgs {
        op,
        ..Default::default()
    }
}

impl<'p> Device<'p> {
    /// Opens `/dev/accel/accel{index}`.
    pub fn open(p: &'p Process, index: u32) -> Result<Self, Errno> {
        let fd = p.open(
            &format!("/dev/accel/accel{index}"),
            OpenFlags::RDWR.union(OpenFlags::CLOEXEC),
        )?;
        let mut dev = Self {
            p,
            fd,
            info: HwIpInfo::default(),
            ctx: ContextInfo::default(),
            cbs: Mutex::new(None),
            chunk_area: Mutex::new(None),
            info_area: Mutex::new(None),
            sobs: Mutex::new(Vec::new()),
        };
        dev.info = dev.query(INFO_HW_IP)?;
        dev.ctx = dev.query(INFO_CONTEXT)?;
        *lock(&dev.sobs) = (dev.ctx.sob_base..dev.ctx.sob_base + dev.ctx.sob_count)
            .rev()
            .collect();
        Ok(dev)
    }

    /// The device fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The process.
    pub fn process(&self) -> &'p Process {
        self.p
    }

    /// The device's properties.
    pub fn info(&self) -> &HwIpInfo {
        &self.info
    }

    /// This context's address space and sync objects.
    pub fn context(&self) -> &ContextInfo {
        &self.ctx
    }

    /// INFO of type `T` for operation `op`.
    pub fn query<T: FromBytes + IntoBytes + Immutable>(&self, op: u32) -> Result<T, Errno> {
        let size = size_of::<T>() as u64;
        let mut area = lock(&self.info_area);
        let (buf, own) = match *area {
            _ if size > INFO_AREA => (self.p.mmap_anon(size)?, true),
            Some(ptr) => (ptr, false),
            None => (*area.insert(self.p.mmap_anon(INFO_AREA)?), false),
        };
        let mut value = T::new_zeroed();
        let result = (|| {
            // Fresh memory reads as zero; the reused area must too, in case the kernel
            // answers with fewer bytes than asked.
            self.p.write_mem(buf, value.as_bytes())?;
            let mut args = InfoArgs {
                return_pointer: buf.0,
                return_size: size as u32,
                op,
            };
            self.p.ioctl_with(self.fd, SG1_IOCTL_INFO, &mut args)?;
            self.p.read_mem(buf, value.as_mut_bytes())
        })();
        if own {
            self.p.munmap(buf, size)?;
        }
        result.map(|()| value)
    }

    /// INFO_CORES: every compute core's record (counters, and this context's last fault
    /// on it), `HwIpInfo::num_cores` of them.
    pub fn cores_info(&self) -> Result<Vec<CoreInfo>, Errno> {
        let info: CoresInfo = self.query(INFO_CORES)?;
        let n = (info.num_cores as usize).min(info.cores.len());
        Ok(info.cores[..n].to_vec())
    }

    /// Every compute core's counters.
    pub fn core_counters(&self) -> Result<Vec<CoreCounters>, Errno> {
        Ok(self.cores_info()?.iter().map(CoreCounters::from).collect())
    }

    /// How many times the device was reset so far (soft and hard, by any context), from
    /// `INFO_COUNTERS`. Each reset zeroes every sync object and ends all work in flight
    /// (completed or cancelled): what [`Event`]s re-base on.
    pub fn resets(&self) -> Result<u64, Errno> {
        let c: Counters = self.query(INFO_COUNTERS)?;
        Ok(u64::from(c.soft_resets) + u64::from(c.hard_resets))
    }

    fn memory(&self, args: &mut MemArgs) -> Result<(), Errno> {
        self.p.ioctl_with(self.fd, SG1_IOCTL_MEMORY, args).map(drop)
    }

    /// Allocates device memory and maps it.
    pub fn alloc(&self, size: u64, contiguous: bool) -> Result<DeviceMemory, Errno> {
        let mut a = MemArgs {
            size,
            flags: if contiguous { MEM_CONTIGUOUS } else { 0 },
            ..mem_args(MEM_OP_ALLOC)
        };
        self.memory(&mut a)?;
        let handle = a.out_handle;
        let mut m = MemArgs {
            handle,
            ..mem_args(MEM_OP_MAP)
        };
        if let Err(e) = self.memory(&mut m) {
            let _ = self.memory(&mut MemArgs {
                handle,
                ..mem_args(MEM_OP_FREE)
            });
            return Err(e);
        }
        let size = size.div_ceil(self.info.dram_page_size) * self.info.dram_page_size;
        Ok(DeviceMemory {
            handle,
            va: m.out_addr,
            size,
        })
    }

    /// Unmaps and frees device memory (`EINVAL` while it is exported).
    pub fn free(&self, mem: DeviceMemory) -> Result<(), Errno> {
        self.memory(&mut MemArgs {
            addr: mem.va,
            ..mem_args(MEM_OP_UNMAP)
        })?;
        self.memory(&mut MemArgs {
            handle: mem.handle,
            ..mem_args(MEM_OP_FREE)
        })
    }

    /// Maps `size` bytes of the process's memory at `ptr` for the device.
    pub fn map_host(&self, ptr: UserPtr, size: u64) -> Result<u64, Errno> {
        let mut a = MemArgs {
            addr: ptr.0,
            size,
            ..mem_args(MEM_OP_MAP_USERPTR)
        };
        self.memory(&mut a)?;
        Ok(a.out_addr)
    }

    /// Unmaps a device VA.
    pub fn unmap(&self, va: u64) -> Result<(), Errno> {
        self.memory(&mut MemArgs {
            addr: va,
            ..mem_args(MEM_OP_UNMAP)
        })
    }

    /// Allocates host memory and maps it for the device ("pinned host memory").
    pub fn host_alloc(&self, size: u64) -> Result<HostMemory, Errno> {
        let ptr = self.p.mmap_anon(size)?;
        match self.map_host(ptr, size) {
            Ok(va) => Ok(HostMemory { ptr, va, size }),
            Err(e) => {
                let _ = self.p.munmap(ptr, size);
                Err(e)
            }
        }
    }

    /// Unmaps and frees pinned host memory.
    pub fn host_free(&self, mem: HostMemory) -> Result<(), Errno> {
        self.unmap(mem.va)?;
        self.p.munmap(mem.ptr, mem.size)
    }

    /// Writes `bytes` at device VA `va` (device memory): through pinned host memory
    /// and a copy on DMA0, waited for.
    pub fn upload(&self, va: u64, bytes: &[u8]) -> Result<(), Errno> {
        if bytes.is_empty() {
            return Ok(());
        }
        let staging = self.host_alloc(bytes.len() as u64)?;
        let result = self.p.write_mem(staging.ptr, bytes).and_then(|()| {
            self.copy(va, staging.va, bytes.len() as u64, DmaDir::HostToDevice)
                .map(drop)
        });
        self.host_free(staging)?;
        result
    }

    /// Reads `buf.len()` bytes at device VA `va` (device memory), the way
    /// [`Device::upload`] writes.
    pub fn download(&self, va: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        let staging = self.host_alloc(buf.len() as u64)?;
        let result = self
            .copy(staging.va, va, buf.len() as u64, DmaDir::DeviceToHost)
            .and_then(|_| self.p.read_mem(staging.ptr, buf));
        self.host_free(staging)?;
        result
    }

    /// `EXPORT_DMABUF_FD`: a dma-buf of `size` bytes at `offset` into `mem`.
    pub fn export_dmabuf(&self, mem: &DeviceMemory, offset: u64, size: u64) -> Result<Fd, Errno> {
        let flags = OpenFlags::RDWR.union(OpenFlags::CLOEXEC).0;
        let mut a = MemArgs {
            addr: mem.va,
            size,
            offset,
            flags,
            ..mem_args(MEM_OP_EXPORT_DMABUF_FD)
        };
        self.memory(&mut a)?;
        Ok(a.out_fd)
    }

    fn cb_slot(&self) -> Result<u64, Errno> {
        let mut cbs = lock(&self.cbs);
        if cbs.is_none() {
            let base = self.host_alloc(CB_SLOT * CB_SLOTS)?;
            let free = (0..CB_SLOTS).rev().map(|i| base.va + i * CB_SLOT).collect();
            *cbs = Some(CbPool {
                base,
                free,
                busy: VecDeque::new(),
            });
        }
        loop {
            let pool = cbs.as_mut().ok_or(Errno::EIO)?;
            if let Some(slot) = pool.free.pop() {
                return Ok(slot);
            }
            // Every slot is in flight: the oldest submission gives its slots back.
            let (seq, slots) = pool.busy.pop_front().ok_or(Errno::ENOMEM)?;
            drop(cbs);
            self.wait(seq, Duration::MAX)?;
            cbs = lock(&self.cbs);
            cbs.as_mut().ok_or(Errno::EIO)?.free.extend(slots);
        }
    }

    /// Submits one job per `(queue, packets)` as one submission; returns its sequence
    /// number and, if asked, a sync_file fd signalled at completion.
    pub fn submit(
        &self,
        jobs: &[(u32, &[Packet])],
        out_fence: bool,
    ) -> Result<(u64, Option<Fd>), Errno> {
        let mut chunks = Vec::with_capacity(jobs.len());
        let mut slots = Vec::new();
        for (queue, packets) in jobs {
            let mut bytes = Vec::new();
            for p in *packets {
                p.encode_into(&mut bytes);
            }
            if bytes.len() as u64 > CB_SLOT {
                return Err(Errno::E2BIG);
            }
            let slot = self.cb_slot()?;
            slots.push(slot);
            let ptr = self.cb_ptr(slot)?;
            self.p.write_mem(ptr, &bytes)?;
            chunks.push(CsChunk {
                queue: *queue,
                cb_size: bytes.len() as u32,
                cb_addr: slot,
            });
        }
        let mut args = CsArgs {
            num_chunks: chunks.len() as u32,
            flags: if out_fence { CS_FLAG_OUT_FENCE } else { 0 },
            ..Default::default()
        };
        let result = self.call_cs(chunks.as_bytes(), &mut args);
        let mut cbs = lock(&self.cbs);
        let pool = cbs.as_mut().ok_or(Errno::EIO)?;
        if let Err(e) = result {
            pool.free.extend(slots);
            return Err(e);
        }
        pool.busy.push_back((args.seq, slots));
        Ok((args.seq, (args.fence_fd >= 0).then_some(args.fence_fd)))
    }

    /// Submits one job on `queue` whose command-buffer slot also carries `data` (at
    /// most 2 KiB): `build` gets the device VA of the data and returns the packets,
    /// which may read it (a `LIN_DMA` from it, say). The slot stays untouched until the
    /// submission has ended, like any command buffer.
    pub(crate) fn submit_with_data(
        &self,
        queue: u32,
        data: &[u8],
        build: impl FnOnce(u64) -> Vec<Packet>,
    ) -> Result<u64, Errno> {
        if data.len() as u64 > CB_SLOT - CB_DATA {
            return Err(Errno::E2BIG);
        }
        let slot = self.cb_slot()?;
        let give_back = |e| {
            if let Some(pool) = lock(&self.cbs).as_mut() {
                pool.free.push(slot);
            }
            e
        };
        let mut bytes = Vec::new();
        for p in build(slot + CB_DATA) {
            p.encode_into(&mut bytes);
        }
        if bytes.len() as u64 > CB_DATA {
            return Err(give_back(Errno::E2BIG));
        }
        let ptr = self.cb_ptr(slot).map_err(give_back)?;
        let written = self.p.write_mem(ptr, &bytes).and_then(|()| {
            let data_ptr = ptr.checked_add(CB_DATA).ok_or(Errno::EFAULT)?;
            self.p.write_mem(data_ptr, data)
        });
        written.map_err(give_back)?;
        let chunks = [CsChunk {
            queue,
            cb_size: bytes.len() as u32,
            cb_addr: slot,
        }];
        let mut args = CsArgs {
            num_chunks: 1,
            ..Default::default()
        };
        self.call_cs(chunks.as_bytes(), &mut args)
            .map_err(give_back)?;
        lock(&self.cbs)
            .as_mut()
            .ok_or(Errno::EIO)?
            .busy
            .push_back((args.seq, vec![slot]));
        Ok(args.seq)
    }

    /// `CS` with the chunk array `bytes` placed in this process's memory.
    fn call_cs(&self, bytes: &[u8], args: &mut CsArgs) -> Result<(), Errno> {
        let len = bytes.len() as u64;
        let mut area = lock(&self.chunk_area);
        let (ptr, own) = match *area {
            _ if len > CHUNK_AREA => (self.p.mmap_anon(len)?, true),
            Some(ptr) => (ptr, false),
            None => (*area.insert(self.p.mmap_anon(CHUNK_AREA)?), false),
        };
        let result = self.p.write_mem(ptr, bytes).and_then(|()| {
            args.chunks = ptr.0;
            self.p.ioctl_with(self.fd, SG1_IOCTL_CS, args).map(drop)
        });
        if own {
            self.p.munmap(ptr, len)?;
        }
        result
    }

    fn cb_ptr(&self, slot_va: u64) -> Result<UserPtr, Errno> {
        let cbs = lock(&self.cbs);
        let base = cbs.as_ref().ok_or(Errno::EIO)?.base;
        UserPtr(base.ptr.0)
            .checked_add(slot_va - base.va)
            .ok_or(Errno::EFAULT)
    }

    /// `WAIT_CS` (a timeout of `Duration::MAX` waits for ever).
    pub fn wait(&self, seq: u64, timeout: Duration) -> Result<CsOutcome, Errno> {
        let timeout_us = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        let mut args = WaitCsArgs {
            seq,
            timeout_us,
            ..Default::default()
        };
        self.p.ioctl_with(self.fd, SG1_IOCTL_WAIT_CS, &mut args)?;
        let outcome = match args.status {
            CS_STATUS_COMPLETED => CsOutcome::Completed {
                device_time_ns: args.device_time_ns,
            },
            CS_STATUS_ABORTED => CsOutcome::Aborted {
                error: args.error,
                info: args.error_info,
            },
            CS_STATUS_GONE => CsOutcome::Gone,
            _ => CsOutcome::Busy,
        };
        if outcome != CsOutcome::Busy {
            let mut cbs = lock(&self.cbs);
            if let Some(pool) = cbs.as_mut()
                && let Some(i) = pool.busy.iter().position(|(s, _)| *s == seq)
                && let Some((_, slots)) = pool.busy.remove(i)
            {
                pool.free.extend(slots);
            }
        }
        Ok(outcome)
    }

    /// Runs packets on a queue and waits for them.
    pub fn run(&self, queue: u32, packets: &[Packet]) -> Result<CsOutcome, Errno> {
        let (seq, _) = self.submit(&[(queue, packets)], false)?;
        self.wait(seq, Duration::MAX)
    }

    /// Copies `size` bytes between device VAs (device or host memory) on DMA0 and
    /// waits; returns the device time of completion.
    pub fn copy(&self, dst: u64, src: u64, size: u64, dir: DmaDir) -> Result<u64, Errno> {
        self.run(
            DMA0,
            &[Packet::LinDma {
                src,
                dst,
                size,
                dir,
            }],
        )?
        .ok()
    }

    /// A stream of work on one queue: a DMA engine, or [`COMPUTE`] for kernels.
    pub fn stream(&self, queue: u32) -> Stream<'_, 'p> {
        Stream {
            dev: self,
            queue,
            last: Mutex::new(0),
        }
    }

    /// A sync object of this context for an event.
    pub fn event(&self) -> Result<Event, Errno> {
        let sob = lock(&self.sobs).pop().ok_or(Errno::ENOSPC)?;
        Ok(Event {
            sob,
            state: Mutex::new(EventState::default()),
        })
    }

    /// `SG1_IOCTL_RESET`.
    pub fn reset(&self, hard: bool) -> Result<(), Errno> {
        let kind = if hard { RESET_HARD } else { RESET_SOFT };
        self.p
            .ioctl_with(self.fd, SG1_IOCTL_RESET, &mut ResetArgs { kind, pad: 0 })
            .map(drop)
    }

    /// Closes the device (the context goes with the last reference to it).
    pub fn close(self) -> Result<(), Errno> {
        self.p.close(self.fd)
    }
}

/// Work queued in order on one engine.
#[derive(Debug)]
pub struct Stream<'d, 'p> {
    dev: &'d Device<'p>,
    queue: u32,
    last: Mutex<u64>,
}

impl<'p> Stream<'_, 'p> {
    /// The device.
    pub fn device(&self) -> &Device<'p> {
        self.dev
    }

    /// The queue.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Records `seq`, a submission of the stream's queue made elsewhere, as the
    /// stream's last.
    pub(crate) fn note(&self, seq: u64) {
        *lock(&self.last) = seq;
    }

    /// Queues packets without waiting.
    pub fn enqueue(&self, packets: &[Packet]) -> Result<u64, Errno> {
        let (seq, _) = self.dev.submit(&[(self.queue, packets)], false)?;
        *lock(&self.last) = seq;
        Ok(seq)
    }

    /// Queues a copy.
    pub fn copy(&self, dst: u64, src: u64, size: u64, dir: DmaDir) -> Result<u64, Errno> {
        self.enqueue(&[Packet::LinDma {
            src,
            dst,
            size,
            dir,
        }])
    }

    /// Queues the recording of `event`: it fires when the stream gets there. Records
    /// made before a reset of the device no longer count (see [`Event`]).
    pub fn record(&self, event: &Event) -> Result<(), Errno> {
        let resets = self.dev.resets()?;
        let seq = self.enqueue(&[Packet::Msg {
            sob: event.sob,
            op: MsgOp::Add,
            value: 1,
        }])?;
        let mut st = lock(&event.state);
        st.rebase(resets);
        st.target = st.target.wrapping_add(1);
        st.seq = seq;
        Ok(())
    }

    /// Makes the stream wait (on the device) until `event` fires. An event not recorded
    /// since the device's last reset has nothing to wait for: no `WAIT` is queued.
    pub fn wait_event(&self, event: &Event) -> Result<(), Errno> {
        let resets = self.dev.resets()?;
        let target = {
            let mut st = lock(&event.state);
            st.rebase(resets);
            st.target
        };
        if target == 0 {
            return Ok(());
        }
        self.enqueue(&[Packet::Wait {
            sob: event.sob,
            target,
        }])
        .map(drop)
    }

    /// Waits on the host for everything queued so far.
    pub fn synchronize(&self) -> Result<(), Errno> {
        let last = *lock(&self.last);
        if last == 0 {
            return Ok(());
        }
        self.dev.wait(last, Duration::MAX)?.ok().map(drop)
    }
}

/// A point in a stream, on a sync object of the context.
///
/// The event counts its records on the host; each record adds 1 to the sync object on
/// the device, and a wait is for the sync object to reach the count. A reset of the
/// device (soft or hard, by any context) zeroes every sync object and ends all work in
/// flight, so it settles every record made before it: recording and waiting first read
/// the device's reset count ([`Device::resets`], one INFO call), and if it moved since
/// the last record the event starts again from 0: a wait needs no device `WAIT` until
/// the next record, and [`Event::synchronize`] returns at once.
///
/// What this cannot see is a reset that lands between reading the count and queuing
/// the packet. A record queued just after such a reset still counts on top of the old
/// records, so the event waits for a value the sync object reaches only after that
/// many more records. A `WAIT` queued just after such a reset waits for the old count
/// from 0 in the same way. Either one blocks its stream like any `WAIT` whose sync
/// object never reaches its target, until a later reset cancels it (the driver's
/// lockup watchdog makes one after `timeout_locked`). Whoever resets a device while
/// its streams are recording or waiting must expect that work to be lost.
#[derive(Debug)]
pub struct Event {
    sob: u32,
    state: Mutex<EventState>,
}

#[derive(Debug, Default)]
struct EventState {
    /// Records since the device's reset number `resets`: the value the sync object
    /// reaches when the last of them fires.
    target: u32,
    /// The submission of the last record (0: none since `resets`).
    seq: u64,
    /// The device's reset count when the event was last recorded or re-based.
    resets: u64,
}

impl EventState {
    /// Forgets the records that a reset since the last one settled. The count only
    /// grows; an older reading (from a thread that raced a newer one) changes nothing.
    fn rebase(&mut self, resets: u64) {
        if resets > self.resets {
            *self = Self {
                target: 0,
                seq: 0,
                resets,
            };
        }
    }
}

impl Event {
    /// Waits on the host for the event (the submission that records it). After a reset
    /// of the device there is nothing to wait for: the reset settled the last record.
    pub fn synchronize(&self, dev: &Device<'_>) -> Result<(), Errno> {
        let resets = dev.resets()?;
        let seq = {
            let mut st = lock(&self.state);
            st.rebase(resets);
            st.seq
        };
        if seq == 0 {
            return Ok(());
        }
        dev.wait(seq, Duration::MAX)?.ok().map(drop)
    }
}

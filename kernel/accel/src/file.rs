//! `/dev/accel/accelN`: opening creates a context; the ioctls of `uapi`.

use std::sync::Arc;
use std::time::Duration;

use sagrada_hw_accel_abi::regs::{cores, global, mmu, queue};
use sagrada_hw_accel_abi::{MAX_CB_SIZE, NUM_QUEUES};
use sagrada_kernel_core::{CharDevice, Errno, File, FileOps, KResult, OpenFlags, Task, UserPtr};
use sagrada_kernel_dmabuf::SyncFile;
use zerocopy::{Immutable, IntoBytes};

use crate::context::ContextInner;
use crate::device::{DMA_QUEUES, DeviceInner};
use crate::memory::{DRAM_PAGE_SIZE, DRAM_VA_BASE, HOST_VA_BASE};
use crate::uapi::*;

/// The device node.
pub(crate) struct AccelNode(pub Arc<DeviceInner>);

impl CharDevice for AccelNode {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        let ctx = ContextInner::create(&self.0)?;
        Ok(File::new(Arc::new(AccelFile { ctx }), flags))
    }
}

/// An open device: one context.
pub(crate) struct AccelFile {
    ctx: Arc<ContextInner>,
}

fn answer<T: IntoBytes + Immutable>(task: &Task<'_>, args: &InfoArgs, value: &T) -> KResult<i64> {
    let bytes = value.as_bytes();
    let n = bytes.len().min(args.return_size as usize);
    task.copy_to_user(UserPtr(args.return_pointer), &bytes[..n])?;
    Ok(0)
}

impl AccelFile {
    /// INFO_CORES: every core's counters from its `CORE` registers, and the context's
    /// last fault on it.
    fn cores_info(&self) -> KResult<CoresInfo> {
        let dev = self.ctx.dev();
        let faults = self.ctx.core_faults().get();
        let mut info = CoresInfo {
            num_cores: dev.compute.cores,
            record_size: size_of::<CoreInfo>() as u32,
            ..Default::default()
        };
        for (i, rec) in info
            .cores
            .iter_mut()
            .enumerate()
            .take(dev.compute.cores as usize)
        {
            let base = cores::instance(i as u32);
            let r = |lo| dev.mmio.read64(base + lo);
            *rec = CoreInfo {
                instructions: r(cores::INSTRUCTIONS_LO)?,
                lane_ops: r(cores::LANE_OPS_LO)?,
                global_bytes: r(cores::GLOBAL_BYTES_LO)?,
                scratch_bytes: r(cores::SCRATCH_BYTES_LO)?,
                invocations: r(cores::INVOCATIONS_LO)?,
                busy_ns: r(cores::BUSY_NS_LO)?,
                ..Default::default()
            };
            if let Some(f) = faults[i] {
                rec.fault_seq = f.seq;
                rec.fault_code = f.code;
                rec.fault_pc = f.pc;
                rec.fault_info = f.info;
                rec.fault_flags = if f.write { CORE_FAULT_WRITE } else { 0 };
            }
        }
        Ok(info)
    }

    fn info(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let args: InfoArgs = task.read_obj(arg)?;
        let dev = self.ctx.dev();
        match args.op {
            INFO_HW_IP => {
                let f = dev.fabric.function(dev.dev);
                let link = f.link.and_then(|l| dev.fabric.link(l)).map(|l| l.spec);
                let hbm = sagrada_kernel_core::lock(&dev.hbm_alloc).total_bytes();
                let mut bus_id = [0u8; 16];
                let bdf = f.bdf.to_string();
                bus_id[..bdf.len().min(15)].copy_from_slice(&bdf.as_bytes()[..bdf.len().min(15)]);
                let info = HwIpInfo {
                    device_id: u32::from(f.device_id),
                    revision: dev.mmio.read(global::REVISION)?,
                    hbm_size: dev.hbm_size,
                    dram_user_size: hbm,
                    dram_page_size: DRAM_PAGE_SIZE,
                    dram_va_base: DRAM_VA_BASE,
                    host_va_base: HOST_VA_BASE,
                    num_queues: NUM_QUEUES,
                    num_dma_engines: DMA_QUEUES,
                    fw_major: dev.fw_version.0,
                    fw_minor: dev.fw_version.1,
                    fw_patch: dev.fw_version.2,
                    serial: dev.serial,
                    bus_id,
                    link_gen: link.map_or(0, |l| u32::from(l.generation)),
                    link_width: link.map_or(0, |l| u32::from(l.width)),
                    num_cores: dev.compute.cores,
                    core_clock_mhz: dev.compute.clock_mhz,
                    isa_major: dev.compute.isa.0,
                    isa_minor: dev.compute.isa.1,
                };
                answer(task, &args, &info)
            }
            INFO_CORES => answer(task, &args, &self.cores_info()?),
            INFO_DRAM_USAGE => {
                let alloc = sagrada_kernel_core::lock(&dev.hbm_alloc);
                let usage = DramUsage {
                    free: alloc.free_bytes(),
                    total: alloc.total_bytes(),
                    ctx_used: self.ctx.used_bytes(),
                };
                drop(alloc);
                answer(task, &args, &usage)
            }
            INFO_DEVICE_STATUS => answer(
                task,
                &args,
                &DeviceStatus {
                    status: dev.status(),
                    pad: 0,
                },
            ),
            INFO_COUNTERS => {
                let q = |i, lo| dev.queue_counter(i, lo);
                let c = Counters {
                    busy_ns: [0, 1, 2].map(|i| q(i, queue::BUSY_NS_LO)),
                    errors: [0, 1, 2].map(|i| {
                        dev.mmio
                            .read(queue::instance(i) + queue::ERRORS)
                            .unwrap_or(0)
                    }),
                    mmu_faults: dev.mmio.read(mmu::BASE + mmu::FAULT_COUNT)?,
                    cs_completed: dev
                        .counters
                        .cs_completed
                        .load(std::sync::atomic::Ordering::Relaxed),
                    cs_aborted: dev
                        .counters
                        .cs_aborted
                        .load(std::sync::atomic::Ordering::Relaxed),
                    soft_resets: dev.mmio.read(global::SOFT_RESETS)?,
                    hard_resets: dev.mmio.read(global::HARD_RESETS)?,
                    lockups: dev
                        .counters
                        .lockups
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .try_into()
                        .unwrap_or(u32::MAX),
                    pad: 0,
                };
                answer(task, &args, &c)
            }
            INFO_FIRMWARE => answer(task, &args, &dev.firmware_status()?),
            INFO_CONTEXT => {
                let (sob_base, sob_count) = DeviceInner::sob_range(self.ctx.asid());
                answer(
                    task,
                    &args,
                    &ContextInfo {
                        asid: u32::from(self.ctx.asid()),
                        sob_base,
                        sob_count,
                        pad: 0,
                    },
                )
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn memory(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut args: MemArgs = task.read_obj(arg)?;
        let result = self.memory_op(task, &mut args);
        if args.op == MEM_OP_EXPORT_DMABUF_FD && result.is_err() {
            args.out_fd = Errno::EBADF.negated();
        }
        // Like habanalabs, the arguments go back whatever the outcome.
        task.write_obj(arg, &args)?;
        result
    }

    fn memory_op(&self, task: &Task<'_>, args: &mut MemArgs) -> KResult<i64> {
        // Reserved and flag bits must be clear, so that they can be given a meaning
        // later without old binaries turning it on by accident.
        let takes_flags = matches!(args.op, MEM_OP_ALLOC | MEM_OP_EXPORT_DMABUF_FD);
        if args.pad != 0 || (!takes_flags && args.flags != 0) {
            return Err(Errno::EINVAL);
        }
        let dev = self.ctx.dev();
        dev.check_operational()?;
        self.ctx.check_usable()?;
        match args.op {
            MEM_OP_ALLOC => {
                if args.flags & !MEM_CONTIGUOUS != 0 {
                    return Err(Errno::EINVAL);
                }
                args.out_handle = self
                    .ctx
                    .alloc(args.size, args.flags & MEM_CONTIGUOUS != 0)?;
            }
            MEM_OP_FREE => self.ctx.free(args.handle)?,
            MEM_OP_MAP => args.out_addr = self.ctx.map(args.handle)?,
            MEM_OP_MAP_USERPTR => {
                args.out_addr = self.ctx.map_userptr(task, args.addr, args.size)?
            }
            MEM_OP_UNMAP => self.ctx.unmap(args.addr)?,
            MEM_OP_EXPORT_DMABUF_FD => {
                // Upper 32 bits of the handle field would have been truncated before
                // habanalabs v7; this interface takes a VA in `addr` instead and
                // leaves `handle` unused.
                if args.handle != 0 {
                    return Err(Errno::EINVAL);
                }
                args.out_fd = crate::export::export(
                    task,
                    &self.ctx,
                    args.addr,
                    args.size,
                    args.offset,
                    args.flags,
                )?;
            }
            _ => return Err(Errno::EINVAL),
        }
        Ok(0)
    }

    fn cs(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut args: CsArgs = task.read_obj(arg)?;
        if args.num_chunks == 0
            || args.num_chunks > MAX_CS_CHUNKS
            || args.flags & !CS_FLAG_OUT_FENCE != 0
            || args.pad != 0
        {
            return Err(Errno::EINVAL);
        }
        let mut chunks = vec![CsChunk::default(); args.num_chunks as usize];
        task.copy_from_user(UserPtr(args.chunks), chunks.as_mut_bytes())?;
        for c in &chunks {
            if c.queue >= NUM_QUEUES
                || c.cb_size == 0
                || c.cb_size % 4 != 0
                || c.cb_size > MAX_CB_SIZE
            {
                return Err(Errno::EINVAL);
            }
        }
        // The out-fence's fd is reserved first: once the jobs are queued the call must
        // not fail, or user space would lose the sequence number of running work.
        let fence_fd = if args.flags & CS_FLAG_OUT_FENCE != 0 {
            Some(task.reserve_fd(true)?)
        } else {
            None
        };
        let (seq, fence) = self.ctx.submit(&chunks)?;
        args.seq = seq;
        args.fence_fd = fence_fd.map_or(-1, |fd| fd.install(SyncFile::create(fence, None)));
        task.write_obj(arg, &args)?;
        Ok(0)
    }

    fn wait_cs(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut args: WaitCsArgs = task.read_obj(arg)?;
        let outcome = self
            .ctx
            .wait(args.seq, Duration::from_micros(args.timeout_us))?;
        args.status = outcome.status;
        args.error = outcome.error;
        args.error_info = outcome.info;
        args.device_time_ns = outcome.device_time_ns;
        task.write_obj(arg, &args)?;
        Ok(0)
    }

    fn reset(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let args: ResetArgs = task.read_obj(arg)?;
        if args.pad != 0 {
            return Err(Errno::EINVAL);
        }
        match args.kind {
            RESET_SOFT => self.ctx.dev().reset(false)?,
            RESET_HARD => self.ctx.dev().reset(true)?,
            _ => return Err(Errno::EINVAL),
        }
        Ok(0)
    }
}

impl FileOps for AccelFile {
    fn name(&self, _file: &File) -> String {
        format!("/dev/accel/{}", self.ctx.dev().name)
    }

    fn ioctl(&self, task: &Task<'_>, _file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let arg = UserPtr(arg);
        match cmd {
            SG1_IOCTL_INFO => self.info(task, arg),
            SG1_IOCTL_MEMORY => self.memory(task, arg),
            SG1_IOCTL_CS => self.cs(task, arg),
            SG1_IOCTL_WAIT_CS => self.wait_cs(task, arg),
            SG1_IOCTL_RESET => self.reset(task, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    fn release(&self, _file: &File) {
        self.ctx.close();
    }
}

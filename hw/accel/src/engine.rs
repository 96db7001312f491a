//! An engine: the thread that runs one queue's job entries.
//!
//! For each entry between `CI` and `PI` it fetches the 32-byte ring entry by DMA,
//! reads the command buffer through the MMU, decodes and executes its packets in
//! order, and advances `CI`. An error ends the entry's command buffer with an error
//! completion; the next entry runs as usual. A reset or shutdown abandons the entry
//! without a completion and without advancing `CI` (the reset zeroed it anyway).
//!
//! The COMPUTE queue's engine also runs `LAUNCH` packets: it reads the code and the
//! argument buffer, hands the launch to the cores ([`crate::compute`]) and waits for
//! them, then accounts for their work and reports the first fault.

use std::sync::Arc;

use sagrada_hw_accel_abi::entry::{CQ_ENTRY_SIZE, CqEntry, CqStatus, RingEntry};
use sagrada_hw_accel_abi::launch::{CoreFault, FaultRecord, LaunchArgs};
use sagrada_hw_accel_abi::mmu::{FaultCause, host_phys};
use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, Packet};
use sagrada_hw_accel_abi::{BAR0_SIZE, MAX_CB_SIZE, NUM_SOBS, QUEUE_COMPUTE, VECTOR_CQ};
use sagrada_hw_fabric::{Access, DmaError, DmaReport, Iova, Memory};
use sagrada_isa::exec::{FaultKind, Program};
use zerocopy::{FromBytes, IntoBytes};

use crate::compute::{CoreEnd, LaunchJob};
use crate::device::{Aborted, After, Core, Job, MmuFault, ring_size};
use crate::mmu::{Run, Target};

/// Device time to decode and dispatch one packet, ns.
const PACKET_NS: u64 = 10;

/// Why an entry's command buffer ended early.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    /// A reset or shutdown: no completion.
    Aborted,
    /// An error: a completion with this status and info.
    Error(CqStatus, u64),
}

impl From<Aborted> for Stop {
    fn from(_: Aborted) -> Self {
        Stop::Aborted
    }
}

pub(crate) fn engine_main(core: &Arc<Core>, q: usize) {
    core.engine_started(q);
    while let Some(job) = core.next_job(q) {
        let mut e = Exec {
            core,
            q,
            epoch: job.epoch,
            asid: 0,
            tag: 0,
            clock: job.clock,
        };
        let failed = e.run_entry(&job);
        core.finish_job(q, &job, e.clock, failed);
    }
    core.engine_exited(q);
}

/// One entry being executed.
struct Exec<'a> {
    core: &'a Arc<Core>,
    q: usize,
    epoch: u64,
    asid: u16,
    tag: u64,
    /// The engine's clock, ns of device time.
    clock: u64,
}

impl Exec<'_> {
    /// Runs one entry; whether it ended with an error.
    fn run_entry(&mut self, job: &Job) -> bool {
        let mut raw = [0u8; size_of::<RingEntry>()];
        let fetched = self
            .core
            .fabric
            .dma_read(self.core.dev, Iova(job.entry_addr), &mut raw);
        let result = match fetched {
            Ok(report) => {
                self.clock += report.device_time_ns;
                let entry = RingEntry::read_from_bytes(&raw).expect("32 bytes make an entry");
                self.asid = entry.asid;
                self.tag = entry.tag;
                self.run_cb(&entry)
            }
            Err(e) => {
                tracing::debug!(
                    "SG1 {:?} queue {}: ring fetch refused: {e}",
                    self.core.dev,
                    self.q
                );
                let phys = host_phys(job.entry_addr);
                self.core.bus_fault(phys, FaultCause::HostRefused, false);
                Err(Stop::Error(CqStatus::MmuFault, phys))
            }
        };
        match result {
            Ok(()) => false,
            Err(Stop::Aborted) => false,
            Err(Stop::Error(status, info)) => {
                tracing::debug!(
                    "SG1 {:?} queue {}: entry tag {:#x} failed: {status:?}, info {info:#x}",
                    self.core.dev,
                    self.q,
                    self.tag
                );
                // An abort while writing the completion leaves nothing to report.
                let _ = self.complete(status, self.tag, info);
                true
            }
        }
    }

    fn mmu_error(&self, va: u64, cause: FaultCause, write: bool) -> Stop {
        self.core.mmu_fault(MmuFault {
            asid: u32::from(self.asid),
            va,
            cause,
            write,
        });
        Stop::Error(CqStatus::MmuFault, va)
    }

    fn translate(&self, va: u64, len: u64, write: bool) -> Result<Run, Stop> {
        self.core
            .translate(self.asid, va, len, write)
            .map_err(|cause| self.mmu_error(va, cause, write))
    }

    fn hbm_ns(&self, bytes: u64) -> u64 {
        (bytes as f64 / self.core.config.hbm_bandwidth * 1e9).round() as u64
    }

    fn run_cb(&mut self, entry: &RingEntry) -> Result<(), Stop> {
        let size = entry.cb_size;
        if !size.is_multiple_of(4) || size > MAX_CB_SIZE {
            return Err(Stop::Error(CqStatus::BadPacket, 0));
        }
        let cb = self.read_va(entry.cb_addr, u64::from(size))?;
        let mut at = 0;
        while at < cb.len() {
            if self.core.aborted(self.epoch) {
                return Err(Stop::Aborted);
            }
            let (packet, len) = Packet::decode(&cb, at)
                .map_err(|e| Stop::Error(CqStatus::BadPacket, e.offset() as u64))?;
            self.clock += PACKET_NS;
            if self.asid != 0 && packet.is_privileged() {
                return Err(Stop::Error(CqStatus::PrivilegeViolation, at as u64));
            }
            self.execute(packet, at as u64)?;
            at += len;
        }
        Ok(())
    }

    /// Reads `size` bytes at `addr` of the entry's address space (a command buffer,
    /// code, an argument buffer), one transfer per contiguous run.
    fn read_va(&mut self, addr: u64, size: u64) -> Result<Vec<u8>, Stop> {
        let mut cb = vec![0u8; size as usize];
        let mut done = 0;
        while done < size {
            let va = addr.wrapping_add(done);
            let run = self.translate(va, size - done, false)?;
            let buf = &mut cb[done as usize..(done + run.len) as usize];
            match run.target {
                Target::Hbm(pa) => {
                    self.core
                        .hbm
                        .read(pa, buf)
                        .expect("translation keeps HBM runs inside the HBM");
                    self.clock += self.hbm_ns(run.len);
                }
                Target::Host(iova) => {
                    match self.core.fabric.dma_read(self.core.dev, Iova(iova), buf) {
                        Ok(report) => self.clock += report.device_time_ns,
                        Err(e) => return Err(self.host_refused(&run, None, &e, false)),
                    }
                }
            }
            done += run.len;
        }
        Ok(cb)
    }

    /// The fault of a host run the fabric refused: at the refused address when the
    /// fabric says which, else at the run's start.
    fn host_refused(&self, run: &Run, other: Option<&Run>, err: &DmaError, write: bool) -> Stop {
        let (run, write) = match (err, other) {
            // A host-to-host copy: the access tells which side was refused.
            (DmaError::Fault(f), Some(dst)) if f.access == Access::Write => (dst, true),
            _ => (run, write),
        };
        let va = match (err, run.target) {
            (DmaError::Fault(f), Target::Host(iova)) => run
                .va
                .wrapping_add(f.addr.raw().wrapping_sub(iova).min(run.len - 1)),
            _ => run.va,
        };
        self.mmu_error(va, FaultCause::HostRefused, write)
    }

    fn execute(&mut self, packet: Packet, at: u64) -> Result<(), Stop> {
        match packet {
            Packet::Nop => Ok(()),
            Packet::Wreg32 { reg, value } => {
                if reg % 4 != 0 || u64::from(reg) >= BAR0_SIZE {
                    return Err(Stop::Error(CqStatus::BadPacket, at));
                }
                self.core.write_reg(reg, value);
                Ok(())
            }
            Packet::LinDma {
                src,
                dst,
                size,
                dir,
            } => self.lin_dma(src, dst, size, dir, at),
            Packet::Msg { sob, op, value } => self.msg(sob, op, value, at),
            Packet::Wait { sob, target } => self.wait(sob, target, at),
            Packet::Fence { tag } => self.complete(CqStatus::Fence, tag, 0).map_err(Stop::from),
            // DMA engines do not run kernels.
            Packet::Launch { .. } if self.q != QUEUE_COMPUTE as usize => {
                Err(Stop::Error(CqStatus::BadPacket, at))
            }
            Packet::Launch { .. } => self.launch(packet, at),
        }
    }

    /// Runs a `LAUNCH` (its fields checked by the decoder) to the end.
    fn launch(&mut self, packet: Packet, at: u64) -> Result<(), Stop> {
        let Packet::Launch {
            code_va,
            code_count,
            entry,
            args_va,
            args_size,
            dims,
            core_mask,
        } = packet
        else {
            unreachable!("only LAUNCH packets are launched")
        };
        let core = self.core;
        let present = (1u32 << core.config.cores) - 1;
        let mask = if core_mask == 0 { present } else { core_mask };
        if mask & !present != 0 {
            return Err(Stop::Error(CqStatus::BadPacket, at));
        }
        let bytes = self.read_va(code_va, u64::from(code_count) * 8)?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8-byte chunks")))
            .collect();
        let args = if args_size == 0 {
            LaunchArgs::default()
        } else {
            let bytes = self.read_va(args_va, u64::from(args_size))?;
            LaunchArgs::decode(&bytes).map_err(|e| {
                tracing::debug!("SG1 {:?}: LAUNCH at byte {at}: {e}", core.dev);
                Stop::Error(CqStatus::BadPacket, at)
            })?
        };
        let cores: Vec<u32> = (0..core.config.cores)
            .filter(|c| mask & 1 << c != 0)
            .collect();
        let job = Arc::new(LaunchJob::new(
            self.epoch,
            self.asid,
            Program::decode(&words, entry),
            dims,
            args.tensors,
            args.scalars,
            &cores,
        ));
        core.compute.launch(core, &job)?;
        if core.aborted(self.epoch) {
            return Err(Stop::Aborted);
        }
        // The launch takes as long as its slowest core; the first fault is the
        // lowest-numbered core's.
        let mut launch_ns = 0;
        let mut fault = None;
        {
            let mut st = core.lock();
            if core.aborted(self.epoch) {
                return Err(Stop::Aborted);
            }
            for (c, result) in job.results() {
                let Some(r) = result else {
                    tracing::error!("SG1 {:?}: core {c} left its launch unfinished", core.dev);
                    continue;
                };
                launch_ns = launch_ns.max(r.busy_ns);
                st.cores[c as usize].add(&r.counters, r.busy_ns);
                match r.end {
                    CoreEnd::Fault(f, cause) if fault.is_none() => {
                        st.cores[c as usize].record(&FaultRecord::of(f.pc, &f.kind));
                        fault = Some((c, f, cause));
                    }
                    CoreEnd::Aborted => return Err(Stop::Aborted),
                    _ => {}
                }
            }
        }
        self.clock += launch_ns;
        let Some((c, f, cause)) = fault else {
            return Ok(());
        };
        tracing::debug!(
            "SG1 {:?}: core {c} faulted at pc {}: {:?}",
            core.dev,
            f.pc,
            f.kind
        );
        if let (FaultKind::Mmu { va, write }, Some(cause)) = (f.kind, cause) {
            core.mmu_fault(MmuFault {
                asid: u32::from(self.asid),
                va,
                cause,
                write,
            });
        }
        let info = CoreFault {
            code: f.kind.code(),
            core: c as u8,
            pc: f.pc,
        }
        .to_info();
        Err(Stop::Error(CqStatus::CoreFault, info))
    }

    fn lin_dma(&mut self, src: u64, dst: u64, size: u64, dir: DmaDir, at: u64) -> Result<(), Stop> {
        let (src_host, dst_host) = match dir {
            DmaDir::HostToDevice => (true, false),
            DmaDir::DeviceToHost => (false, true),
            DmaDir::DeviceToDevice => (false, false),
            DmaDir::HostToHost => (true, true),
        };
        let mut done = 0u64;
        let (mut s, mut d): (Option<Run>, Option<Run>) = (None, None);
        while done < size {
            if self.core.aborted(self.epoch) {
                return Err(Stop::Aborted);
            }
            let sr = match s {
                Some(r) => r,
                None => self.run_at(src, done, size, false)?,
            };
            if sr.target.is_host() != src_host {
                return Err(Stop::Error(CqStatus::BadPacket, at));
            }
            let dr = match d {
                Some(r) => r,
                None => self.run_at(dst, done, size, true)?,
            };
            if dr.target.is_host() != dst_host {
                return Err(Stop::Error(CqStatus::BadPacket, at));
            }
            let n = sr.len.min(dr.len);
            self.copy(&Run { len: n, ..sr }, &Run { len: n, ..dr })?;
            done += n;
            s = sr.advance(n);
            d = dr.advance(n);
        }
        Ok(())
    }

    /// The run at `base + done` of a transfer of `size` bytes.
    fn run_at(&self, base: u64, done: u64, size: u64, write: bool) -> Result<Run, Stop> {
        match base.checked_add(done) {
            Some(va) => self.translate(va, size - done, write),
            None => Err(self.mmu_error(base.wrapping_add(done), FaultCause::BadAddress, write)),
        }
    }

    /// Copies one pair of equally long runs, once.
    fn copy(&mut self, src: &Run, dst: &Run) -> Result<(), Stop> {
        let core = self.core;
        let (fabric, dev, hbm, n) = (&core.fabric, core.dev, &core.hbm, src.len);
        let report: Result<DmaReport, (DmaError, bool)> = match (src.target, dst.target) {
            (Target::Hbm(a), Target::Hbm(b)) => {
                Memory::copy(hbm, a, hbm, b, n).expect("translation keeps HBM runs inside the HBM");
                self.clock += self.hbm_ns(n);
                return Ok(());
            }
            (Target::Host(a), Target::Hbm(b)) => fabric
                .dma_read_into(dev, Iova(a), hbm, b, n)
                .map_err(|e| (e, false)),
            (Target::Hbm(a), Target::Host(b)) => fabric
                .dma_write_from(dev, Iova(b), hbm, a, n)
                .map_err(|e| (e, true)),
            (Target::Host(a), Target::Host(b)) => fabric
                .dma_copy(dev, Iova(a), Iova(b), n)
                .map_err(|e| (e, false)),
        };
        match report {
            Ok(r) => {
                self.clock += r.device_time_ns;
                Ok(())
            }
            Err((e, true)) => Err(self.host_refused(dst, None, &e, true)),
            Err((e, false)) => {
                let other = (src.target.is_host() && dst.target.is_host()).then_some(dst);
                Err(self.host_refused(src, other, &e, false))
            }
        }
    }

    /// Kernel entries may use any sync object; others only those their ASID owns.
    fn check_owner(&self, owner: u32, at: u64) -> Result<(), Stop> {
        if self.asid != 0 && owner != u32::from(self.asid) {
            return Err(Stop::Error(CqStatus::PrivilegeViolation, at));
        }
        Ok(())
    }

    fn msg(&mut self, sob: u32, op: MsgOp, value: u32, at: u64) -> Result<(), Stop> {
        if sob >= NUM_SOBS {
            return Err(Stop::Error(CqStatus::BadPacket, at));
        }
        let mut after = After::default();
        {
            let mut st = self.core.lock();
            self.check_owner(st.sob_owners[sob as usize], at)?;
            let v = &mut st.sobs[sob as usize];
            *v = match op {
                MsgOp::Set => value,
                MsgOp::Add => v.wrapping_add(value),
            };
            self.core.sob_changed(&mut st, sob, &mut after);
        }
        self.core.run_after(after);
        Ok(())
    }

    fn wait(&mut self, sob: u32, target: u32, at: u64) -> Result<(), Stop> {
        if sob >= NUM_SOBS {
            return Err(Stop::Error(CqStatus::BadPacket, at));
        }
        let (core, q) = (self.core, self.q);
        let st = core.lock();
        self.check_owner(st.sob_owners[sob as usize], at)?;
        let result = core.engine_wait(st, q, self.epoch, |st| {
            let reached = st.sobs[sob as usize] >= target;
            st.queues[q].waiting = !reached;
            reached
        });
        match result {
            Ok(mut st) => {
                st.queues[q].waiting = false;
                Ok(())
            }
            Err(Aborted) => {
                let mut st = core.lock();
                if !core.aborted(self.epoch) {
                    st.queues[q].waiting = false;
                }
                // A reset already cleared the queue's registers; shutdown needs nothing.
                drop(st);
                Err(Stop::Aborted)
            }
        }
    }

    /// Writes a completion entry (waiting while the completion queue is full) and
    /// raises the completion vector. Dropped when the completion queue is disabled.
    fn complete(&mut self, status: CqStatus, tag: u64, info: u64) -> Result<(), Aborted> {
        let (core, q) = (self.core, self.q);
        let st = core.lock();
        let mut st = core.engine_wait(st, q, self.epoch, |st| {
            let Some(size) = ring_size(st.cq.size_log2).filter(|_| st.cq.enable) else {
                return true;
            };
            !st.cq_writing && st.cq.pi.wrapping_sub(st.cq.ci) < size
        })?;
        let Some(size) = ring_size(st.cq.size_log2).filter(|_| st.cq.enable) else {
            return Ok(());
        };
        st.cq_writing = true;
        let addr = st
            .cq
            .base
            .wrapping_add(u64::from(st.cq.pi & (size - 1)) * CQ_ENTRY_SIZE);
        drop(st);
        let entry = CqEntry {
            tag,
            queue: q as u16,
            status: status as u16,
            reserved: 0,
            info,
            device_time_ns: self.clock,
        };
        let written = core
            .fabric
            .dma_write(core.dev, Iova(addr), entry.as_bytes());
        let mut st = core.lock();
        st.cq_writing = false;
        core.wake_engines(&st);
        if core.aborted(self.epoch) {
            return Err(Aborted);
        }
        match written {
            Ok(report) => {
                self.clock += report.device_time_ns;
                st.cq.pi = st.cq.pi.wrapping_add(1);
                st.queues[q].busy_ns = self.clock;
                drop(st);
                core.raise(VECTOR_CQ);
            }
            Err(e) => {
                drop(st);
                tracing::debug!("SG1 {:?}: completion entry refused: {e}", core.dev);
                core.bus_fault(host_phys(addr), FaultCause::HostRefused, true);
            }
        }
        Ok(())
    }
}

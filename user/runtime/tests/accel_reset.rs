//! Device resets through `SG1_IOCTL_RESET`: a soft reset aborts the submissions in
//! flight with `-ECANCELED` and keeps device memory; a hard reset also scrubs the HBM
//! and leaves every context open before it unusable (`ENODEV`); both are counted.

mod common;

use std::sync::mpsc;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use common::*;
use sagrada::Machine;
use sagrada::accel::{CsOutcome, DMA0, DMA1, Device, HostMemory};
use sagrada::sync::SyncFile;
use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, Packet};
use sagrada_kernel_accel::uapi::*;
use sagrada_sys::{Errno, Process};

fn cancelled() -> CsOutcome {
    aborted(Errno::ECANCELED, 0)
}

/// Device memory holding a pattern, and a host buffer to read it back through.
struct Filled {
    data: Vec<u8>,
    mem_va: u64,
    host: HostMemory,
}

impl Filled {
    const LEN: usize = 1 << 20;

    fn new(dev: &Device<'_>, seed: u8) -> Self {
        let data = pattern(Self::LEN, seed);
        let host = dev.host_alloc(Self::LEN as u64).unwrap();
        let mem = dev.alloc(2 * MB, false).unwrap();
        dev.process().write_mem(host.ptr, &data).unwrap();
        dev.copy(mem.va, host.va, Self::LEN as u64, DmaDir::HostToDevice)
            .unwrap();
        Self {
            data,
            mem_va: mem.va,
            host,
        }
    }

    /// Reads the device memory back (clearing the host buffer first).
    fn read_back(&self, dev: &Device<'_>) -> Vec<u8> {
        let p = dev.process();
        p.write_mem(self.host.ptr, &vec![0u8; Self::LEN]).unwrap();
        dev.copy(
            self.host.va,
            self.mem_va,
            Self::LEN as u64,
            DmaDir::DeviceToHost,
        )
        .unwrap();
        read_host(p, self.host.ptr, Self::LEN)
    }
}

/// A submission that blocks its queue on a sync object nobody signals.
fn blocked(dev: &Device<'_>, queue: u32, out_fence: bool) -> (u64, Option<i32>) {
    let wait = [Packet::Wait {
        sob: spare_sob(dev),
        target: 1,
    }];
    let (seq, fd) = dev.submit(&[(queue, &wait)], out_fence).unwrap();
    assert_eq!(dev.wait(seq, Duration::ZERO).unwrap(), CsOutcome::Busy);
    (seq, fd)
}

#[test]
fn a_soft_reset_cancels_work_in_flight_keeps_memory_and_the_device_works_after() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let a_mem = Filled::new(&a, 0x10);
    let b_mem = Filled::new(&b, 0x20);
    // In flight: A's stream blocked on DMA0 with a copy queued behind the wait, B's
    // wait on DMA1 (a reset cancels every context's work, not only the caller's).
    let (a_wait, fence) = blocked(&a, DMA0, true);
    let a_copy = a
        .stream(DMA0)
        .copy(
            a_mem.host.va,
            a_mem.mem_va,
            Filled::LEN as u64,
            DmaDir::DeviceToHost,
        )
        .unwrap();
    let (b_wait, _) = blocked(&b, DMA1, false);
    pa.write_mem(a_mem.host.ptr, &vec![0u8; Filled::LEN])
        .unwrap();
    let before = counters(&b);

    a.reset(false).unwrap();

    for (dev, seq) in [(&a, a_wait), (&a, a_copy), (&b, b_wait)] {
        assert_eq!(wait(dev, seq), cancelled(), "seq {seq}");
    }
    assert!(
        read_host(&pa, a_mem.host.ptr, Filled::LEN)
            .iter()
            .all(|&x| x == 0),
        "the copy behind the wait never ran"
    );
    let fence = SyncFile::from_fd(&pa, fence.unwrap());
    assert!(fence.wait(-1).unwrap());
    assert_eq!(fence.info().unwrap().1, -Errno::ECANCELED.raw());
    let after = counters(&b);
    assert_eq!(after.soft_resets, before.soft_resets + 1);
    assert_eq!(after.hard_resets, before.hard_resets);
    assert_eq!(after.cs_aborted, before.cs_aborted + 3);
    let status: DeviceStatus = a.query(INFO_DEVICE_STATUS).unwrap();
    assert_eq!(status.status, STATUS_OPERATIONAL);

    // Device memory survived; both contexts work, sync objects included (zeroed by
    // the reset and owned again by their contexts).
    assert!(a_mem.read_back(&a) == a_mem.data, "A's memory was kept");
    assert!(b_mem.read_back(&b) == b_mem.data, "B's memory was kept");
    for dev in [&a, &b] {
        let sob = spare_sob(dev);
        let sync = [
            Packet::Msg {
                sob,
                op: MsgOp::Add,
                value: 1,
            },
            Packet::Wait { sob, target: 1 },
        ];
        assert!(completed(dev.run(DMA0, &sync).unwrap()));
        assert!(completed(dev.run(DMA1, &[Packet::Nop]).unwrap()));
    }
    // Streams and events work across the queues again.
    let (s0, s1) = (b.stream(DMA0), b.stream(DMA1));
    let event = b.event().unwrap();
    s0.copy(
        b_mem.host.va,
        b_mem.mem_va,
        Filled::LEN as u64,
        DmaDir::DeviceToHost,
    )
    .unwrap();
    s0.record(&event).unwrap();
    s1.wait_event(&event).unwrap();
    s1.enqueue(&[Packet::Nop]).unwrap();
    s1.synchronize().unwrap();
    s0.synchronize().unwrap();
    assert!(read_host(&pb, b_mem.host.ptr, Filled::LEN) == b_mem.data);
}

#[test]
fn a_hard_reset_zeroes_hbm_and_only_contexts_opened_after_it_work() {
    let m = small_hbm_machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let a_mem = Filled::new(&a, 0x30);
    let _b_mem = Filled::new(&b, 0x40);
    let (a_wait, _) = blocked(&a, DMA0, false);
    let a_spare = a.alloc(2 * MB, false).unwrap();
    let b_chunk = b.host_alloc(4096).unwrap();
    let before = counters(&a);

    b.reset(true).unwrap();

    assert_eq!(wait(&a, a_wait), cancelled());
    // Every context open before the reset: ENODEV on MEMORY and CS.
    for (p, dev) in [(&pa, &a), (&pb, &b)] {
        assert_eq!(dev.alloc(2 * MB, false), Err(Errno::ENODEV));
        assert_eq!(dev.host_alloc(4096), Err(Errno::ENODEV));
        assert_eq!(
            dev.submit(&[(DMA0, &[Packet::Nop])], false),
            Err(Errno::ENODEV)
        );
        for op in [
            MEM_OP_FREE,
            MEM_OP_MAP,
            MEM_OP_UNMAP,
            MEM_OP_EXPORT_DMABUF_FD,
        ] {
            let mut args = MemArgs {
                op,
                handle: 1,
                addr: a_mem.mem_va,
                size: 4096,
                ..Default::default()
            };
            if op == MEM_OP_EXPORT_DMABUF_FD {
                args.handle = 0;
            }
            assert_eq!(
                p.ioctl_with(dev.fd(), SG1_IOCTL_MEMORY, &mut args),
                Err(Errno::ENODEV),
                "op {op}"
            );
        }
        // Raw CS too, with a chunk that would otherwise be valid.
        let chunk = CsChunk {
            queue: DMA1,
            cb_size: 4,
            cb_addr: b_chunk.va,
        };
        assert_eq!(cs_raw(dev, &[chunk], 1, 0).0, Err(Errno::ENODEV));
    }
    assert_eq!(a.free(a_spare), Err(Errno::ENODEV));
    // INFO, WAIT_CS (above) and RESET still answer.
    let status: DeviceStatus = a.query(INFO_DEVICE_STATUS).unwrap();
    assert_eq!(status.status, STATUS_OPERATIONAL);
    assert_eq!(a.query::<ContextInfo>(INFO_CONTEXT).unwrap(), *a.context());
    let mut bad = ResetArgs { kind: 7, pad: 0 };
    assert_eq!(
        pa.ioctl_with(a.fd(), SG1_IOCTL_RESET, &mut bad),
        Err(Errno::EINVAL)
    );

    // A context opened after the reset works, and finds the HBM zeroed: all of it is
    // free again, and every byte it can allocate reads back as zero.
    let pc = m.process("c");
    let c = Device::open(&pc, 0).unwrap();
    let after = counters(&c);
    assert_eq!(after.hard_resets, before.hard_resets + 1);
    assert_eq!(after.soft_resets, before.soft_resets);
    let usage: DramUsage = c.query(INFO_DRAM_USAGE).unwrap();
    assert_eq!((usage.free, usage.total), (48 * MB, 48 * MB));
    let all = c.alloc(usage.free, false).unwrap();
    let host = c.host_alloc(all.size).unwrap();
    pc.write_mem(host.ptr, &vec![0xffu8; all.size as usize])
        .unwrap();
    c.copy(host.va, all.va, all.size, DmaDir::DeviceToHost)
        .unwrap();
    assert!(
        read_host(&pc, host.ptr, all.size as usize)
            .iter()
            .all(|&x| x == 0),
        "the hard reset scrubbed the HBM"
    );
    // C fills its memory; closing the dead contexts must not free or scrub it (their
    // allocations went with the reset, and the pages are C's now).
    let data = pattern(all.size as usize, 0x50);
    pc.write_mem(host.ptr, &data).unwrap();
    c.copy(all.va, host.va, all.size, DmaDir::HostToDevice)
        .unwrap();
    a.close().unwrap();
    b.close().unwrap();
    let usage: DramUsage = c.query(INFO_DRAM_USAGE).unwrap();
    assert_eq!(
        (usage.free, usage.ctx_used),
        (0, 48 * MB),
        "nothing was given back twice"
    );
    pc.write_mem(host.ptr, &vec![0u8; all.size as usize])
        .unwrap();
    c.copy(host.va, all.va, all.size, DmaDir::DeviceToHost)
        .unwrap();
    assert!(
        read_host(&pc, host.ptr, all.size as usize) == data,
        "C's memory is intact"
    );
    // And the dead contexts' address spaces are free again: a new one opens and works.
    let d = Device::open(&pa, 0).unwrap();
    assert!(completed(d.run(DMA1, &[Packet::Nop]).unwrap()));
}

#[test]
fn info_counters_count_soft_and_hard_resets() {
    let m = machine();
    let p = m.process("resets");
    let dev = Device::open(&p, 0).unwrap();
    let start = counters(&dev);
    assert_eq!((start.soft_resets, start.hard_resets), (0, 0));
    dev.reset(false).unwrap();
    dev.reset(false).unwrap();
    let soft = counters(&dev);
    assert_eq!((soft.soft_resets, soft.hard_resets), (2, 0));
    dev.reset(true).unwrap();
    let fresh = Device::open(&p, 0).unwrap();
    let hard = counters(&fresh);
    assert_eq!((hard.soft_resets, hard.hard_resets), (2, 1));
    // Other devices count their own.
    let other: Counters = Device::open(&p, 2).unwrap().query(INFO_COUNTERS).unwrap();
    assert_eq!((other.soft_resets, other.hard_resets), (0, 0));
    // The firmware rebooted with the hard reset and answers.
    let fw: FirmwareInfo = fresh.query(INFO_FIRMWARE).unwrap();
    assert_eq!((fw.boot_status, fw.heartbeat_ok), (1, 1));
}

#[test]
fn a_reset_of_an_unknown_kind_is_einval() {
    let m = machine();
    let p = m.process("resets");
    let dev = Device::open(&p, 0).unwrap();
    let mem = Filled::new(&dev, 0x60);
    for (kind, pad) in [(7, 0), (0, 0), (3, 0), (u32::MAX, 0), (RESET_SOFT, 1)] {
        let mut args = ResetArgs { kind, pad };
        assert_eq!(
            p.ioctl_with(dev.fd(), SG1_IOCTL_RESET, &mut args),
            Err(Errno::EINVAL),
            "kind {kind}, pad {pad}"
        );
    }
    let c = counters(&dev);
    assert_eq!((c.soft_resets, c.hard_resets), (0, 0), "nothing was reset");
    assert!(mem.read_back(&dev) == mem.data);
    assert!(completed(dev.run(DMA0, &[Packet::Nop]).unwrap()));
}

/// Resets while both engines complete work, round after round; after each reset, every
/// submission made so far must end (completed, or cancelled by the reset). Returns the
/// number of each.
fn reset_under_load(dev: &Device<'_>, rounds: usize) -> (usize, usize) {
    let paused = RwLock::new(());
    let seqs = Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut done, mut cancelled_count) = (0, 0);
    std::thread::scope(|s| {
        for queue in [DMA0, DMA1] {
            let (paused, seqs, stop) = (&paused, &seqs, &stop);
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _running = paused.read().unwrap();
                    // EBUSY while a reset is in progress.
                    if let Ok((seq, _)) = dev.submit(&[(queue, &[Packet::Nop])], false) {
                        seqs.lock().unwrap().push(seq);
                    }
                }
            });
        }
        for _ in 0..rounds {
            // Work on both queues before each reset: some done, some in flight.
            while seqs.lock().unwrap().len() < 8 {
                std::thread::yield_now();
            }
            dev.reset(false).unwrap();
            let _pause = paused.write().unwrap();
            for seq in std::mem::take(&mut *seqs.lock().unwrap()) {
                match wait(dev, seq) {
                    CsOutcome::Completed { .. } => done += 1,
                    outcome => {
                        assert_eq!(outcome, cancelled(), "seq {seq}");
                        cancelled_count += 1;
                    }
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Submitted after the last reset: nothing cancels these.
    for seq in std::mem::take(&mut *seqs.lock().unwrap()) {
        assert!(completed(wait(dev, seq)), "seq {seq}");
        done += 1;
    }
    (done, cancelled_count)
}

/// Regression: a reset held the completion-queue lock while the device waited for an
/// engine whose completion interrupt (run on the engine's thread) wanted that lock; and
/// a submission that had checked the device state before a reset could fill the rings
/// after it, to be forgotten when the rings were reprogrammed. The first hangs a reset,
/// the second a wait: a watchdog turns either into a failure.
#[test]
fn resets_while_both_queues_complete_work_never_deadlock_or_lose_a_submission() {
    // Leaked, so that the watchdog can give up on threads that hang.
    let m: &'static Machine = Box::leak(Box::new(machine()));
    let p: &'static Process = Box::leak(Box::new(m.process("load")));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let dev = Device::open(p, 0).unwrap();
        let counts = reset_under_load(&dev, 300);
        let c = counters(&dev);
        dev.close().unwrap();
        tx.send((counts, c)).unwrap();
    });
    let ((done, cancelled_count), c) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a reset or a submission hung");
    assert_eq!(c.soft_resets, 300);
    assert!(
        done + cancelled_count >= 8 * 300,
        "work was submitted before every reset"
    );
    assert_eq!(c.cs_completed as usize, done);
    assert_eq!(c.cs_aborted as usize, cancelled_count);
}

/// Waits for `seq` up to a bound that no working device needs (not a timing check); a
/// submission still busy after it is cancelled by a reset, so that the machine shuts
/// down at once, and reported.
fn bounded_wait(dev: &Device<'_>, seq: u64) -> CsOutcome {
    let outcome = dev.wait(seq, Duration::from_secs(10)).unwrap();
    if outcome == CsOutcome::Busy {
        dev.reset(false).unwrap();
    }
    outcome
}

/// A runtime `Event` counts its records on the host, while a soft reset zeroes its sync
/// object on the device (as documented). Regression: after the reset, a stream waited
/// for a count the sync object no longer reached; the event now re-bases on the
/// device's reset count.
#[test]
fn an_event_recorded_before_a_soft_reset_still_orders_streams_after_it() {
    let m = machine();
    let p = m.process("event");
    let dev = Device::open(&p, 0).unwrap();
    let (s0, s1) = (dev.stream(DMA0), dev.stream(DMA1));
    let event = dev.event().unwrap();
    s0.record(&event).unwrap();
    s1.wait_event(&event).unwrap();
    s1.synchronize().unwrap();
    dev.reset(false).unwrap();
    s0.record(&event).unwrap();
    s1.wait_event(&event).unwrap();
    let after = s1.enqueue(&[Packet::Nop]).unwrap();
    // The NOP needs microseconds once the event fires.
    let outcome = bounded_wait(&dev, after);
    assert!(completed(outcome), "{outcome:?}");
    s0.synchronize().unwrap();
}

/// A record that a soft reset cancels (rather than one that ran before it) is settled
/// too: after the reset, waiting for the event on the host returns at once, a stream's
/// wait queues nothing to block on, and the next record counts from zero again.
#[test]
fn an_event_whose_record_a_soft_reset_cancelled_is_settled_by_it() {
    let m = machine();
    let p = m.process("event");
    let dev = Device::open(&p, 0).unwrap();
    let (s0, s1) = (dev.stream(DMA0), dev.stream(DMA1));
    let event = dev.event().unwrap();
    // The record waits behind a WAIT nothing signals; DMA1 waits for the record.
    let gate = s0
        .enqueue(&[Packet::Wait {
            sob: spare_sob(&dev),
            target: 1,
        }])
        .unwrap();
    s0.record(&event).unwrap();
    s1.wait_event(&event).unwrap();
    let behind = s1.enqueue(&[Packet::Nop]).unwrap();
    assert_eq!(dev.wait(behind, Duration::ZERO).unwrap(), CsOutcome::Busy);

    dev.reset(false).unwrap();

    for seq in [gate, behind] {
        assert_eq!(wait(&dev, seq), cancelled(), "seq {seq}");
    }
    event.synchronize(&dev).unwrap();
    s1.wait_event(&event).unwrap();
    let after = s1.enqueue(&[Packet::Nop]).unwrap();
    let outcome = bounded_wait(&dev, after);
    assert!(completed(outcome), "{outcome:?}");
    // Recorded again: one record, and the stream waits for exactly that one.
    s0.record(&event).unwrap();
    s1.wait_event(&event).unwrap();
    let ordered = s1.enqueue(&[Packet::Nop]).unwrap();
    let outcome = bounded_wait(&dev, ordered);
    assert!(completed(outcome), "{outcome:?}");
    event.synchronize(&dev).unwrap();
    s0.synchronize().unwrap();
}

/// The driver's lockup check: a submission still running `timeout_locked` after it
/// was queued (1 s here) fails with `-ETIMEDOUT`, and the soft reset that follows
/// cancels what was queued behind it, of any context; memory survives and the device
/// works on.
#[test]
fn a_submission_still_running_after_timeout_locked_fails_with_etimedout_and_resets() {
    let m = machine_with_timeout_locked(Duration::from_secs(1));
    let (pa, pb) = (m.process("a"), m.process("b"));
    let (a, b) = (Device::open(&pa, 0).unwrap(), Device::open(&pb, 0).unwrap());
    let kept = Filled::new(&a, 0x5a);
    let before = counters(&a);

    let (hung, fence) = blocked(&a, DMA0, true);
    let behind = b.submit(&[(DMA0, &[Packet::Nop])], false).unwrap().0;

    assert_eq!(wait(&a, hung), aborted(Errno::ETIMEDOUT, 0));
    assert_eq!(wait(&b, behind), cancelled(), "queued behind it, cancelled");
    let fence = SyncFile::from_fd(&pa, fence.unwrap());
    assert_eq!(fence.info().unwrap().1, -Errno::ETIMEDOUT.raw());

    let after = counters(&a);
    assert_eq!(after.lockups, before.lockups + 1);
    assert_eq!(after.soft_resets, before.soft_resets + 1);
    assert_eq!(after.hard_resets, before.hard_resets);
    assert_eq!(kept.read_back(&a), kept.data, "a soft reset keeps memory");
    assert!(completed(a.run(DMA0, &[Packet::Nop]).unwrap()));
    assert!(completed(b.run(DMA0, &[Packet::Nop]).unwrap()));
}

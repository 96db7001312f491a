//! Isolation between contexts of one SG1: "MMU faults, bad packets and a closed context
//! never harm another context, and freed memory reads back as zeros to the next owner".
//!
//! Each test opens two contexts on `accel0`, A (the one that misbehaves) and B (the
//! bystander), from two processes. Where B's work must be queued around A's on the same
//! queue, B first blocks that queue with a `WAIT` on one of its own sync objects, queues
//! everything, and releases it with a `MSG` from the other queue: the interleaving is
//! then fixed, whatever the host's timing.

mod common;

use std::time::Duration;

use common::*;
use sagrada::accel::{DMA0, DMA1, Device, HostMemory};
use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, Packet};
use sagrada_sys::Errno;

/// A `LAUNCH` header with a one-dword length (a launch has 13): no engine accepts it.
const LAUNCH_HEADER: u32 = 0x0001_0010;

/// Submits a command buffer of raw bytes on `queue` through the CS ioctl itself (the
/// runtime's `submit` only encodes valid `Packet`s). Returns the sequence number.
fn submit_raw(dev: &Device<'_>, queue: u32, cb: &[u8]) -> u64 {
    let (_buf, chunk) = chunk(dev, queue, cb);
    let (r, args) = cs_raw(dev, &[chunk], 1, 0);
    r.unwrap();
    args.seq
}

fn raw_cb(packets: &[Packet], raw_dwords: &[u32]) -> Vec<u8> {
    let mut cb = encode(packets);
    for d in raw_dwords {
        cb.extend_from_slice(&d.to_le_bytes());
    }
    cb
}

/// B's part of a "queued around A" scenario: a gate that blocks DMA0, then a copy of a
/// pattern into B's device memory before A's job and a copy back after it.
struct Bystander<'d, 'p> {
    dev: &'d Device<'p>,
    data: Vec<u8>,
    src: HostMemory,
    dst: HostMemory,
    mem_va: u64,
    gate: u32,
}

impl<'d, 'p> Bystander<'d, 'p> {
    const LEN: usize = 256 * 1024;

    fn new(dev: &'d Device<'p>, seed: u8) -> Self {
        let data = pattern(Self::LEN, seed);
        let src = dev.host_alloc(Self::LEN as u64).unwrap();
        let dst = dev.host_alloc(Self::LEN as u64).unwrap();
        dev.process().write_mem(src.ptr, &data).unwrap();
        let mem = dev.alloc(2 * MB, false).unwrap();
        Self {
            dev,
            data,
            src,
            dst,
            mem_va: mem.va,
            gate: spare_sob(dev),
        }
    }

    /// Blocks DMA0 and queues the copy in; returns the sequence numbers.
    fn before(&self) -> (u64, u64) {
        let gate = self.dev.run_async(
            DMA0,
            &[Packet::Wait {
                sob: self.gate,
                target: 1,
            }],
        );
        let copy_in = self.dev.run_async(
            DMA0,
            &[Packet::LinDma {
                src: self.src.va,
                dst: self.mem_va,
                size: Self::LEN as u64,
                dir: DmaDir::HostToDevice,
            }],
        );
        (gate, copy_in)
    }

    /// Queues the copy out, checks nothing ran yet, and opens the gate from DMA1.
    fn after(&self, queued: &[u64]) -> u64 {
        let copy_out = self.dev.run_async(
            DMA0,
            &[Packet::LinDma {
                src: self.mem_va,
                dst: self.dst.va,
                size: Self::LEN as u64,
                dir: DmaDir::DeviceToHost,
            }],
        );
        assert!(is_busy(self.dev, copy_out), "DMA0 is held by B's gate");
        for &seq in queued {
            assert!(is_busy(self.dev, seq), "nothing behind the gate has run");
        }
        signal(self.dev, self.gate);
        copy_out
    }

    /// B's work all completed and its data made the round trip.
    fn check(&self, seqs: &[u64]) {
        for &seq in seqs {
            assert!(completed(wait(self.dev, seq)), "B's submission {seq}");
        }
        assert!(
            read_host(self.dev.process(), self.dst.ptr, Self::LEN) == self.data,
            "B's data came back intact"
        );
    }
}

/// `submit` without waiting, for one job.
trait RunAsync {
    fn run_async(&self, queue: u32, packets: &[Packet]) -> u64;
}

impl RunAsync for Device<'_> {
    fn run_async(&self, queue: u32, packets: &[Packet]) -> u64 {
        self.submit(&[(queue, packets)], false).unwrap().0
    }
}

#[test]
fn an_mmu_fault_aborts_only_the_faulting_submission_with_efault_and_its_va() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let a_mem = a.alloc(2 * MB, false).unwrap();
    let a_host = a.host_alloc(4096).unwrap();
    let bystander = Bystander::new(&b, 0x11);
    let before = counters(&b);

    let (gate, copy_in) = bystander.before();
    // One byte past A's only device mapping: nothing is mapped there.
    let unmapped = a_mem.va + a_mem.size;
    let faulty = a.run_async(
        DMA0,
        &[Packet::LinDma {
            src: unmapped,
            dst: a_host.va,
            size: 4096,
            dir: DmaDir::DeviceToHost,
        }],
    );
    let copy_out = bystander.after(&[gate, copy_in, faulty]);

    assert_eq!(wait(&a, faulty), aborted(Errno::EFAULT, unmapped));
    bystander.check(&[gate, copy_in, copy_out]);
    let after = counters(&b);
    assert_eq!(after.mmu_faults, before.mmu_faults + 1);
    assert_eq!(
        after.errors[0],
        before.errors[0] + 1,
        "one failed entry on DMA0"
    );
    assert_eq!(after.cs_aborted, before.cs_aborted + 1);
    // A's context is still usable after its fault.
    assert!(completed(a.run(DMA0, &[Packet::Nop]).unwrap()));
}

#[test]
fn a_bad_packet_aborts_with_einval_at_its_offset_and_spares_the_other_context() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let bystander = Bystander::new(&b, 0x22);

    let (gate, copy_in) = bystander.before();
    // NOP, NOP, then the malformed LAUNCH header at byte 8.
    let bad = submit_raw(
        &a,
        DMA0,
        &raw_cb(&[Packet::Nop, Packet::Nop], &[LAUNCH_HEADER]),
    );
    let copy_out = bystander.after(&[gate, copy_in, bad]);

    assert_eq!(wait(&a, bad), aborted(Errno::EINVAL, 8));
    bystander.check(&[gate, copy_in, copy_out]);
    assert!(completed(a.run(DMA0, &[Packet::Nop]).unwrap()));
}

#[test]
fn privileged_packets_from_a_user_command_buffer_abort_with_eperm() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let bystander = Bystander::new(&b, 0x33);
    let before = counters(&b);

    let (gate, copy_in) = bystander.before();
    // A FENCE would fake a completion; a WREG32 to GLOBAL.RESET (bit 1: hard) would
    // wipe B's memory. Each comes after a NOP, at byte 4.
    let fence = a.run_async(DMA0, &[Packet::Nop, Packet::Fence { tag: 1 }]);
    let wreg = a.run_async(
        DMA0,
        &[
            Packet::Nop,
            Packet::Wreg32 {
                reg: 0x010,
                value: 2,
            },
        ],
    );
    let copy_out = bystander.after(&[gate, copy_in, fence, wreg]);

    assert_eq!(wait(&a, fence), aborted(Errno::EPERM, 4));
    assert_eq!(wait(&a, wreg), aborted(Errno::EPERM, 4));
    bystander.check(&[gate, copy_in, copy_out]);
    let after = counters(&b);
    assert_eq!(
        (after.soft_resets, after.hard_resets),
        (before.soft_resets, before.hard_resets),
        "no reset happened"
    );
    assert_eq!(after.cs_aborted, before.cs_aborted + 2);
}

#[test]
fn msg_and_wait_on_another_contexts_sync_object_abort_with_eperm_and_leave_it_unchanged() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let (ca, cb) = (*a.context(), *b.context());
    assert_ne!(ca.asid, cb.asid);
    assert!(
        ca.sob_base + ca.sob_count <= cb.sob_base || cb.sob_base + cb.sob_count <= ca.sob_base,
        "disjoint sync objects"
    );
    let sob = spare_sob(&b);

    // B gives its sync object a known value.
    assert!(completed(
        b.run(
            DMA0,
            &[Packet::Msg {
                sob,
                op: MsgOp::Set,
                value: 5
            }]
        )
        .unwrap()
    ));
    // A may neither change it nor wait on it (a target of 0 would pass at once), and
    // the kernel's sync objects (below the contexts' ranges) are just as out of reach.
    for packets in [
        [Packet::Msg {
            sob,
            op: MsgOp::Set,
            value: 77,
        }],
        [Packet::Msg {
            sob,
            op: MsgOp::Add,
            value: 1,
        }],
        [Packet::Wait { sob, target: 0 }],
        [Packet::Msg {
            sob: 0,
            op: MsgOp::Add,
            value: 1,
        }],
        [Packet::Wait { sob: 0, target: 0 }],
    ] {
        assert_eq!(
            a.run(DMA0, &packets).unwrap(),
            aborted(Errno::EPERM, 0),
            "{packets:?}"
        );
    }
    // A sync object past the last one is a bad packet, not a privilege question.
    assert_eq!(
        a.run(
            DMA0,
            &[Packet::Wait {
                sob: 2048,
                target: 0
            }]
        )
        .unwrap(),
        aborted(Errno::EINVAL, 0)
    );

    // B adds 2^32 - 1 - 5 and waits for u32::MAX: reached only if the value was
    // exactly 5 (anything larger wraps below the target; anything smaller stays
    // below it).
    let check = b.run_async(
        DMA1,
        &[
            Packet::Msg {
                sob,
                op: MsgOp::Add,
                value: u32::MAX - 5,
            },
            Packet::Wait {
                sob,
                target: u32::MAX,
            },
        ],
    );
    let outcome = b.wait(check, Duration::from_secs(30)).unwrap();
    assert!(completed(outcome), "B's sync object changed: {outcome:?}");
}

#[test]
fn a_context_cannot_read_another_contexts_device_memory_through_its_va() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let secret = pattern(64 * 1024, 0x5e);
    let b_mem = b.alloc(2 * MB, false).unwrap();
    let b_host = b.host_alloc(secret.len() as u64).unwrap();
    pb.write_mem(b_host.ptr, &secret).unwrap();
    b.copy(
        b_mem.va,
        b_host.va,
        secret.len() as u64,
        DmaDir::HostToDevice,
    )
    .unwrap();

    let a_host = a.host_alloc(secret.len() as u64).unwrap();
    let len = secret.len() as u64;
    // A has nothing mapped at B's VA: the MMU faults.
    assert_eq!(
        a.run(
            DMA0,
            &[Packet::LinDma {
                src: b_mem.va,
                dst: a_host.va,
                size: len,
                dir: DmaDir::DeviceToHost
            }]
        )
        .unwrap(),
        aborted(Errno::EFAULT, b_mem.va)
    );
    assert!(
        read_host(&pa, a_host.ptr, secret.len())
            .iter()
            .all(|&x| x == 0),
        "nothing reached A's buffer"
    );
    // A's own allocation gets the same VA in A's address space, and other memory.
    let a_mem = a.alloc(2 * MB, false).unwrap();
    assert_eq!(
        a_mem.va, b_mem.va,
        "both address spaces start their device memory at the same VA"
    );
    a.copy(a_host.va, a_mem.va, len, DmaDir::DeviceToHost)
        .unwrap();
    assert!(
        read_host(&pa, a_host.ptr, secret.len())
            .iter()
            .all(|&x| x == 0),
        "A reads its own (zeroed) memory"
    );
    // Host memory likewise. Host VAs also start at the same base in every context, so
    // the VA used is past all that A has mapped (its 1 MiB command-buffer pool and
    // a_host): 2 MiB into a buffer that B maps after its own pool and b_host.
    let b_only = b.host_alloc(4 * MB).unwrap();
    pb.write_mem(b_only.ptr.checked_add(2 * MB).unwrap(), &secret)
        .unwrap();
    let far = b_only.va + 2 * MB;
    assert_eq!(
        a.run(
            DMA0,
            &[Packet::LinDma {
                src: far,
                dst: a_host.va,
                size: 4096,
                dir: DmaDir::HostToHost
            }]
        )
        .unwrap(),
        aborted(Errno::EFAULT, far)
    );
    // And B still reads its secret.
    b.copy(b_host.va, b_mem.va, len, DmaDir::DeviceToHost)
        .unwrap();
    assert!(read_host(&pb, b_host.ptr, secret.len()) == secret);
}

#[test]
fn closing_a_context_with_copies_in_flight_spares_the_other_and_frees_its_memory() {
    let m = machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let b = Device::open(&pb, 0).unwrap();
    let idle = dram_usage(&b);
    assert_eq!(idle.free, idle.total);
    let b_mem = b.alloc(4 * MB, false).unwrap();
    let b_in = b.host_alloc(4 * MB).unwrap();
    let b_out = b.host_alloc(4 * MB).unwrap();
    let b_data = pattern(4 * MB as usize, 0x42);
    pb.write_mem(b_in.ptr, &b_data).unwrap();
    let with_b = dram_usage(&b).free;

    // A's work: DMA0 waits for an event that DMA1 records after a 16 MiB copy, then
    // copies again; all of it is still queued or running when A closes.
    {
        let a = Device::open(&pa, 0).unwrap();
        let a_mem = a.alloc(32 * MB, false).unwrap();
        let a_host = a.host_alloc(16 * MB).unwrap();
        assert_eq!(dram_usage(&b).free, with_b - 32 * MB);
        let a_sob = spare_sob(&a);
        let s0 = a.stream(DMA0);
        let s1 = a.stream(DMA1);
        s0.enqueue(&[Packet::Wait {
            sob: a_sob,
            target: 1,
        }])
        .unwrap();
        s0.copy(
            a_mem.va + 16 * MB,
            a_mem.va,
            16 * MB,
            DmaDir::DeviceToDevice,
        )
        .unwrap();
        s1.copy(a_mem.va, a_host.va, 16 * MB, DmaDir::HostToDevice)
            .unwrap();
        s1.enqueue(&[Packet::Msg {
            sob: a_sob,
            op: MsgOp::Add,
            value: 1,
        }])
        .unwrap();
    }
    // B's work queued behind A's on both queues.
    let b0 = b
        .stream(DMA0)
        .copy(b_mem.va, b_in.va, 4 * MB, DmaDir::HostToDevice)
        .unwrap();
    let b1 = b
        .stream(DMA1)
        .copy(b_mem.va, b_in.va, 4 * MB, DmaDir::HostToDevice)
        .unwrap();
    let before = counters(&b);

    // The process holding A exits: its fd closes, the close waits for A's work.
    pa.exit().unwrap();

    assert!(completed(wait(&b, b0)));
    assert!(completed(wait(&b, b1)));
    b.copy(b_out.va, b_mem.va, 4 * MB, DmaDir::DeviceToHost)
        .unwrap();
    assert!(
        read_host(&pb, b_out.ptr, b_data.len()) == b_data,
        "B's data is intact"
    );
    let after = counters(&b);
    assert_eq!(
        (after.soft_resets, after.hard_resets),
        (before.soft_resets, before.hard_resets),
        "A's close needed no reset"
    );
    assert_eq!(after.cs_aborted, before.cs_aborted, "nothing was aborted");
    assert_eq!(
        dram_usage(&b).free,
        with_b,
        "A's device memory went back to the pool"
    );
    b.free(b_mem).unwrap();
    assert_eq!(dram_usage(&b).free, idle.total);
}

/// A context closing with a submission that can never finish: the close waits, and
/// the submission is aborted when `timeout_locked` runs out (2 s here instead of 30,
/// long enough that the steps before the close never reach it), by a soft reset.
#[test]
fn closing_a_context_with_a_hung_submission_soft_resets_and_spares_the_other() {
    let m = machine_with_timeout_locked(Duration::from_secs(2));
    let (pa, pb) = (m.process("a"), m.process("b"));
    let b = Device::open(&pb, 0).unwrap();
    let b_mem = b.alloc(2 * MB, false).unwrap();
    let b_host = b.host_alloc(64 * 1024).unwrap();
    let data = pattern(64 * 1024, 0x77);
    pb.write_mem(b_host.ptr, &data).unwrap();
    b.copy(b_mem.va, b_host.va, 64 * 1024, DmaDir::HostToDevice)
        .unwrap();
    let with_b = dram_usage(&b).free;
    let before = counters(&b);

    let a = Device::open(&pa, 0).unwrap();
    a.alloc(8 * MB, false).unwrap();
    let hung = a.run_async(
        DMA0,
        &[Packet::Wait {
            sob: spare_sob(&a),
            target: 1,
        }],
    );
    assert!(is_busy(&a, hung));
    // B's job queued behind A's hung one cannot run before it; B's job on DMA1 can.
    let behind = b.run_async(DMA0, &[Packet::Nop]);
    assert!(completed(b.run(DMA1, &[Packet::Nop]).unwrap()));
    assert!(is_busy(&b, behind));
    a.close().unwrap();

    // The reset that ended A's submission cancelled the one queued behind it too (a
    // reset cancels every context's work in flight, as documented).
    assert_eq!(wait(&b, behind), aborted(Errno::ECANCELED, 0));
    let after = counters(&b);
    assert_eq!(
        after.soft_resets,
        before.soft_resets + 1,
        "the close soft-reset the device"
    );
    assert_eq!(after.hard_resets, before.hard_resets);
    assert_eq!(dram_usage(&b).free, with_b, "A's memory was freed");
    // B's memory survived the soft reset, and B works.
    pb.write_mem(b_host.ptr, &[0u8; 64 * 1024]).unwrap();
    b.copy(b_host.va, b_mem.va, 64 * 1024, DmaDir::DeviceToHost)
        .unwrap();
    assert!(read_host(&pb, b_host.ptr, data.len()) == data);
    assert!(completed(b.run(DMA0, &[Packet::Nop]).unwrap()));
}

/// Reads `mem` back through a host buffer and says whether every byte is zero.
fn device_memory_is_zero(dev: &Device<'_>, va: u64, size: u64) -> bool {
    const CHUNK: u64 = 16 * MB;
    let p = dev.process();
    let host = dev.host_alloc(CHUNK).unwrap();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut zero = true;
    let mut at = 0;
    while at < size {
        let n = CHUNK.min(size - at);
        dev.copy(host.va, va + at, n, DmaDir::DeviceToHost).unwrap();
        p.read_mem(host.ptr, &mut buf[..n as usize]).unwrap();
        zero &= buf[..n as usize].iter().all(|&x| x == 0);
        at += n;
    }
    dev.host_free(host).unwrap();
    zero
}

/// A fills device memory with a pattern and gives it up (`release`); B then allocates
/// the whole free HBM, which includes every page A used, and reads it all back.
fn next_owner_reads_zeros(release: impl FnOnce(Device<'_>, sagrada::accel::DeviceMemory)) {
    let m = small_hbm_machine();
    let (pa, pb) = (m.process("a"), m.process("b"));
    let b = Device::open(&pb, 0).unwrap();
    let a = Device::open(&pa, 0).unwrap();
    let a_mem = a.alloc(8 * MB, false).unwrap();
    let a_host = a.host_alloc(8 * MB).unwrap();
    pa.write_mem(a_host.ptr, &pattern(8 * MB as usize, 0xa5))
        .unwrap();
    a.copy(a_mem.va, a_host.va, 8 * MB, DmaDir::HostToDevice)
        .unwrap();
    assert!(
        !device_memory_is_zero(&a, a_mem.va, a_mem.size),
        "A's pattern is in HBM"
    );
    release(a, a_mem);

    let usage = dram_usage(&b);
    assert_eq!(usage.total, 48 * MB);
    assert_eq!(usage.free, usage.total, "A's pages are back in the pool");
    let all = b.alloc(usage.free, false).unwrap();
    assert!(
        device_memory_is_zero(&b, all.va, all.size),
        "B found A's data in memory it was given"
    );
}

#[test]
fn freed_device_memory_reads_back_as_zeros_to_the_next_owner() {
    next_owner_reads_zeros(|a, mem| a.free(mem).unwrap());
}

#[test]
fn device_memory_of_a_closed_context_reads_back_as_zeros_to_the_next_owner() {
    next_owner_reads_zeros(|a, _| a.close().unwrap());
}

#[test]
fn host_memory_unmapped_from_the_device_can_no_longer_be_reached() {
    let m = machine();
    let p = m.process("a");
    let a = Device::open(&p, 0).unwrap();
    let mem = a.alloc(2 * MB, false).unwrap();
    let staging = a.host_alloc(64 * 1024).unwrap();
    let data = pattern(64 * 1024, 0x3c);
    p.write_mem(staging.ptr, &data).unwrap();
    a.copy(mem.va, staging.va, 64 * 1024, DmaDir::HostToDevice)
        .unwrap();

    let ptr = p.mmap_anon(64 * 1024).unwrap();
    let va = a.map_host(ptr, 64 * 1024).unwrap();
    a.copy(va, mem.va, 64 * 1024, DmaDir::DeviceToHost).unwrap();
    let mut back = vec![0u8; data.len()];
    p.read_mem(ptr, &mut back).unwrap();
    assert!(back == data, "mapped, the device reaches the buffer");

    a.unmap(va).unwrap();
    p.write_mem(ptr, &vec![0u8; data.len()]).unwrap();
    for (packet, fault) in [
        (
            Packet::LinDma {
                src: mem.va,
                dst: va,
                size: 4096,
                dir: DmaDir::DeviceToHost,
            },
            va,
        ),
        (
            Packet::LinDma {
                src: va + 8192,
                dst: mem.va,
                size: 4096,
                dir: DmaDir::HostToDevice,
            },
            va + 8192,
        ),
        (
            Packet::LinDma {
                src: staging.va,
                dst: va + 4096,
                size: 4096,
                dir: DmaDir::HostToHost,
            },
            va + 4096,
        ),
    ] {
        assert_eq!(
            a.run(DMA0, &[packet]).unwrap(),
            aborted(Errno::EFAULT, fault),
            "{packet:?}"
        );
    }
    p.read_mem(ptr, &mut back).unwrap();
    assert!(
        back.iter().all(|&x| x == 0),
        "the unmapped buffer was not written"
    );
    assert_eq!(a.unmap(va), Err(Errno::EINVAL), "already unmapped");
}

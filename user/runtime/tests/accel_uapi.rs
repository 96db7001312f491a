//! The SG1 driver's uAPI, ioctl by ioctl (`kernel/accel/src/uapi.rs`, `docs/uapi.md`):
//! INFO, MEMORY, CS, WAIT_CS, the out-fence, the copies of the DMA engines, streams
//! and events, running out of address spaces, and a firmware the driver refuses.
//! Argument errors go through the raw ioctls, since the runtime never builds them.

mod common;

use std::time::Duration;

use common::*;
use sagrada::Machine;
use sagrada::accel::{CsOutcome, DMA0, DMA1, Device};
use sagrada::sync::SyncFile;
use sagrada_hw_accel_abi::MAX_CB_SIZE;
use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, Packet};
use sagrada_kernel_accel::uapi::*;
use sagrada_kernel_core::ioctl::iowr;
use sagrada_sys::{Errno, Fd, MapFlags, PollFd, PollMask, Process, Prot, UserPtr};
use zerocopy::IntoBytes;

// ---- INFO ----

/// INFO into a buffer of `buf_len` bytes filled with 0xee, telling the kernel it has
/// `return_size`; returns the result and the buffer.
fn info_raw(
    dev: &Device<'_>,
    op: u32,
    return_size: u32,
    buf_len: usize,
) -> (Result<i64, Errno>, Vec<u8>) {
    let p = dev.process();
    let buf = p.mmap_anon(buf_len as u64).unwrap();
    p.write_mem(buf, &vec![0xee; buf_len]).unwrap();
    let mut args = InfoArgs {
        return_pointer: buf.0,
        return_size,
        op,
    };
    let r = p.ioctl_with(dev.fd(), SG1_IOCTL_INFO, &mut args);
    let out = read_host(p, buf, buf_len);
    p.munmap(buf, buf_len as u64).unwrap();
    (r, out)
}

fn bdf_of(m: &Machine, name: &str) -> String {
    m.fabric()
        .endpoints()
        .find(|f| f.name == name)
        .unwrap()
        .bdf
        .to_string()
}

fn field_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap()
}

#[test]
fn info_hw_ip_describes_the_device() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let hw: HwIpInfo = dev.query(INFO_HW_IP).unwrap();
    assert_eq!((hw.device_id, hw.revision), (1, 1));
    assert_eq!((hw.fw_major, hw.fw_minor, hw.fw_patch), (1, 2, 0));
    assert_eq!(hw.hbm_size, GB);
    assert_eq!(hw.dram_page_size, 2 * MB);
    assert_eq!(
        hw.dram_user_size,
        GB - 32 * MB,
        "1/32 of the HBM holds page tables"
    );
    assert_eq!(
        (hw.dram_va_base, hw.host_va_base),
        (0x1000_0000_0000, 0x1000_0000)
    );
    assert_eq!((hw.num_queues, hw.num_dma_engines), (3, 2));
    assert_eq!((hw.link_gen, hw.link_width), (4, 16));
    let bdf = bdf_of(&m, "accel0");
    assert_eq!(field_str(&hw.bus_id), bdf);
    assert_eq!(bdf.len(), "0000:00:00.0".len(), "{bdf}");
    assert!(
        hw.bus_id[bdf.len()..].iter().all(|&b| b == 0),
        "NUL terminated and padded"
    );
    assert_eq!(dev.info(), &hw, "what Device::open read");
    // Another device has its own bus id.
    let other: HwIpInfo = Device::open(&p, 2).unwrap().query(INFO_HW_IP).unwrap();
    assert_eq!(field_str(&other.bus_id), bdf_of(&m, "accel2"));
    assert_ne!(other.bus_id, hw.bus_id);
}

#[test]
fn info_hw_ip_of_the_old_size_is_the_first_96_bytes() {
    // Callers built before the compute fields were added ask for 96 bytes: they get
    // exactly the fields they know.
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let old: [u8; 96] = dev.query(INFO_HW_IP).unwrap();
    let new: HwIpInfo = dev.query(INFO_HW_IP).unwrap();
    assert_eq!(&old[..], &new.as_bytes()[..96]);
    assert_eq!((new.num_cores, new.core_clock_mhz), (8, 1500));
}

#[test]
fn info_dram_usage_follows_allocations() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let other = Device::open(&p, 0).unwrap();
    let idle = dram_usage(&dev);
    assert_eq!(
        idle,
        DramUsage {
            free: GB - 32 * MB,
            total: GB - 32 * MB,
            ctx_used: 0
        }
    );
    let a = dev.alloc(5 * MB, false).unwrap();
    assert_eq!(a.size, 6 * MB, "rounded up to 2 MiB pages");
    assert_eq!(
        dram_usage(&dev),
        DramUsage {
            free: idle.free - 6 * MB,
            total: idle.total,
            ctx_used: 6 * MB
        }
    );
    let b = other.alloc(2 * MB, true).unwrap();
    assert_eq!(
        dram_usage(&other),
        DramUsage {
            free: idle.free - 8 * MB,
            total: idle.total,
            ctx_used: 2 * MB
        }
    );
    assert_eq!(
        dram_usage(&dev).ctx_used,
        6 * MB,
        "each context sees its own share"
    );
    dev.free(a).unwrap();
    assert_eq!(
        dram_usage(&dev),
        DramUsage {
            free: idle.free - 2 * MB,
            total: idle.total,
            ctx_used: 0
        }
    );
    other.close().unwrap();
    let _ = b;
    assert_eq!(
        dram_usage(&dev),
        idle,
        "closing a context gives its memory back"
    );
}

#[test]
fn info_device_status_is_operational() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let s: DeviceStatus = dev.query(INFO_DEVICE_STATUS).unwrap();
    assert_eq!(
        s,
        DeviceStatus {
            status: STATUS_OPERATIONAL,
            pad: 0
        }
    );
}

#[test]
fn info_counters_move_with_work() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    assert_eq!(
        counters(&dev),
        Counters::default(),
        "a fresh device has done nothing"
    );
    let host = dev.host_alloc(MB).unwrap();
    let mem = dev.alloc(2 * MB, false).unwrap();
    assert!(completed(
        dev.run(
            DMA0,
            &[Packet::LinDma {
                src: host.va,
                dst: mem.va,
                size: MB,
                dir: DmaDir::HostToDevice
            }]
        )
        .unwrap()
    ));
    assert!(completed(
        dev.run(
            DMA1,
            &[Packet::LinDma {
                src: mem.va,
                dst: host.va,
                size: MB,
                dir: DmaDir::DeviceToHost
            }]
        )
        .unwrap()
    ));
    let c = counters(&dev);
    assert!(c.busy_ns[0] > 0 && c.busy_ns[1] > 0, "{c:?}");
    assert_eq!(c.busy_ns[2], 0, "nothing ran on the compute queue");
    assert_eq!(
        (c.cs_completed, c.cs_aborted, c.errors, c.mmu_faults),
        (2, 0, [0; 3], 0)
    );
    // A fault on DMA1.
    let far = mem.va + mem.size;
    let out = dev
        .run(
            DMA1,
            &[Packet::LinDma {
                src: far,
                dst: host.va,
                size: 4096,
                dir: DmaDir::DeviceToHost,
            }],
        )
        .unwrap();
    assert_eq!(out, aborted(Errno::EFAULT, far));
    let after = counters(&dev);
    assert_eq!(
        (
            after.cs_completed,
            after.cs_aborted,
            after.errors,
            after.mmu_faults
        ),
        (2, 1, [0, 1, 0], 1)
    );
    assert!(after.busy_ns[1] >= c.busy_ns[1]);
    assert_eq!((after.soft_resets, after.hard_resets), (0, 0));
}

#[test]
fn info_context_gives_an_asid_and_sixteen_sync_objects() {
    let m = machine();
    let p = m.process("info");
    let a = Device::open(&p, 0).unwrap();
    let b = Device::open(&p, 0).unwrap();
    let (ca, cb): (ContextInfo, ContextInfo) = (
        a.query(INFO_CONTEXT).unwrap(),
        b.query(INFO_CONTEXT).unwrap(),
    );
    for c in [ca, cb] {
        assert!((1..64).contains(&c.asid), "{c:?}");
        assert_eq!(c.sob_count, 16);
        assert_eq!(
            c.sob_base,
            1024 + (c.asid - 1) * 16,
            "blocks of 16 above the kernel's 1024"
        );
    }
    assert_ne!(ca.asid, cb.asid);
    assert_eq!(a.context(), &ca);
    // Each context can use every one of its sync objects, and only those.
    let all: Vec<Packet> = (ca.sob_base..ca.sob_base + ca.sob_count)
        .flat_map(|sob| {
            [
                Packet::Msg {
                    sob,
                    op: MsgOp::Add,
                    value: 1,
                },
                Packet::Wait { sob, target: 1 },
            ]
        })
        .collect();
    assert!(completed(a.run(DMA0, &all).unwrap()));
    let next = ca.sob_base + ca.sob_count;
    assert!(
        matches!(a.run(DMA0, &[Packet::Wait { sob: next, target: 0 }]).unwrap(), CsOutcome::Aborted { error, .. } if error == -Errno::EPERM.raw())
    );
}

#[test]
fn info_firmware_reports_boot_status_temperature_and_heartbeat() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let fw: FirmwareInfo = dev.query(INFO_FIRMWARE).unwrap();
    assert_eq!(
        (fw.boot_status, fw.temperature_mc, fw.heartbeat_ok, fw.pad),
        (1, 45_000, 1, 0)
    );
}

#[test]
fn info_cores_gives_one_record_per_core() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let c: CoresInfo = dev.query(INFO_CORES).unwrap();
    assert_eq!((c.num_cores, c.record_size), (8, 80));
    assert!(
        c.cores.iter().all(|r| *r == CoreInfo::default()),
        "a fresh device has run nothing and faulted nowhere"
    );
    // Cut short like any INFO answer: the counts alone.
    let (r, buf) = info_raw(&dev, INFO_CORES, 8, 16);
    assert_eq!(r, Ok(0));
    assert_eq!(&buf[..8], &[8, 0, 0, 0, 80, 0, 0, 0]);
    assert!(buf[8..].iter().all(|&b| b == 0xee));
}

#[test]
fn info_with_an_unknown_op_is_einval() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    for op in [7, 8, 0xffff_ffff] {
        let (r, buf) = info_raw(&dev, op, 64, 64);
        assert_eq!(r, Err(Errno::EINVAL), "op {op}");
        assert!(buf.iter().all(|&b| b == 0xee), "nothing written");
    }
}

#[test]
fn info_with_a_short_return_size_copies_only_that_much() {
    let m = machine();
    let p = m.process("info");
    let dev = Device::open(&p, 0).unwrap();
    let full = dev.info().as_bytes().to_vec();
    for size in [0usize, 1, 4, 13, 95, 111] {
        let (r, buf) = info_raw(&dev, INFO_HW_IP, size as u32, 128);
        assert_eq!(r, Ok(0));
        assert_eq!(&buf[..size], &full[..size], "return_size {size}");
        assert!(
            buf[size..].iter().all(|&b| b == 0xee),
            "return_size {size}: nothing past it"
        );
    }
    // A larger buffer gets the structure and nothing more.
    let (_, buf) = info_raw(&dev, INFO_HW_IP, 128, 128);
    assert_eq!(&buf[..112], &full[..]);
    assert!(buf[112..].iter().all(|&b| b == 0xee));
    // A bad return pointer is EFAULT.
    let mut args = InfoArgs {
        return_pointer: 8,
        return_size: 16,
        op: INFO_DEVICE_STATUS,
    };
    assert_eq!(
        p.ioctl_with(dev.fd(), SG1_IOCTL_INFO, &mut args),
        Err(Errno::EFAULT)
    );
}

// ---- MEMORY ----

fn mem_raw(dev: &Device<'_>, args: MemArgs) -> (Result<i64, Errno>, MemArgs) {
    let mut a = args;
    let r = dev.process().ioctl_with(dev.fd(), SG1_IOCTL_MEMORY, &mut a);
    (r, a)
}

fn mem_err(dev: &Device<'_>, args: MemArgs) -> Errno {
    mem_raw(dev, args).0.unwrap_err()
}

fn op(op: u32) -> MemArgs {
    MemArgs {
        op,
        ..Default::default()
    }
}

fn alloc_args(size: u64, flags: u32) -> MemArgs {
    MemArgs {
        size,
        flags,
        ..op(MEM_OP_ALLOC)
    }
}

fn free_args(handle: u64) -> MemArgs {
    MemArgs {
        handle,
        ..op(MEM_OP_FREE)
    }
}

fn map_args(handle: u64) -> MemArgs {
    MemArgs {
        handle,
        ..op(MEM_OP_MAP)
    }
}

fn unmap_args(addr: u64) -> MemArgs {
    MemArgs {
        addr,
        ..op(MEM_OP_UNMAP)
    }
}

fn userptr_args(addr: u64, size: u64) -> MemArgs {
    MemArgs {
        addr,
        size,
        ..op(MEM_OP_MAP_USERPTR)
    }
}

#[test]
fn memory_alloc_of_zero_bytes_is_einval() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    assert_eq!(mem_err(&dev, alloc_args(0, 0)), Errno::EINVAL);
    assert_eq!(mem_err(&dev, alloc_args(0, MEM_CONTIGUOUS)), Errno::EINVAL);
    assert_eq!(
        mem_err(&dev, alloc_args(2 * MB, 2)),
        Errno::EINVAL,
        "unknown flag"
    );
}

#[test]
fn memory_alloc_beyond_the_hbm_is_enomem() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    let usage = dram_usage(&dev);
    for size in [usage.total + 1, usage.total + 2 * MB, 2 * GB, u64::MAX] {
        assert_eq!(
            mem_err(&dev, alloc_args(size, 0)),
            Errno::ENOMEM,
            "{size:#x}"
        );
    }
    let all = dev
        .alloc(usage.total, false)
        .expect("exactly all of it fits");
    assert_eq!(
        mem_err(&dev, alloc_args(1, 0)),
        Errno::ENOMEM,
        "nothing left"
    );
    dev.free(all).unwrap();
    assert_eq!(dram_usage(&dev), usage, "a failed ALLOC takes nothing");
}

#[test]
fn memory_contiguous_alloc_needs_a_run_of_free_pages() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    let usage = dram_usage(&dev);
    let page = 2 * MB;
    // Take every page, one allocation each, then give back every other one.
    let mut handles = Vec::new();
    while let (Ok(_), a) = mem_raw(&dev, alloc_args(page, 0)) {
        handles.push(a.out_handle);
    }
    assert_eq!(handles.len() as u64, usage.total / page);
    for h in handles.iter().step_by(2) {
        mem_raw(&dev, free_args(*h)).0.unwrap();
    }
    let free = dram_usage(&dev).free;
    assert_eq!(free, usage.total / 2);
    let contiguous = |size| mem_raw(&dev, alloc_args(size, MEM_CONTIGUOUS));
    assert_eq!(
        contiguous(2 * page).0,
        Err(Errno::ENOMEM),
        "no two free pages are adjacent"
    );
    let one = contiguous(page);
    assert_eq!(one.0, Ok(0), "one page is always contiguous");
    let scattered = mem_raw(&dev, alloc_args(2 * page, 0));
    assert_eq!(
        scattered.0,
        Ok(0),
        "without the flag the pages may be scattered"
    );
    // With everything given back, all of HBM is one run.
    for h in handles
        .iter()
        .skip(1)
        .step_by(2)
        .chain([&one.1.out_handle, &scattered.1.out_handle])
    {
        mem_raw(&dev, free_args(*h)).0.unwrap();
    }
    let all = dev
        .alloc(usage.total, true)
        .expect("the whole HBM in one run");
    // A contiguous allocation works like any other.
    let host = dev.host_alloc(4096).unwrap();
    p.write_mem(host.ptr, b"contiguous").unwrap();
    let last = all.va + all.size - 4096;
    dev.copy(last, host.va, 4096, DmaDir::HostToDevice).unwrap();
    p.write_mem(host.ptr, &[0u8; 10]).unwrap();
    dev.copy(host.va, last, 4096, DmaDir::DeviceToHost).unwrap();
    assert_eq!(&read_host(&p, host.ptr, 10), b"contiguous");
}

#[test]
fn memory_ops_on_an_unknown_handle_or_va_are_einval() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    let mem = dev.alloc(4 * MB, false).unwrap();
    let host = dev.host_alloc(8192).unwrap();
    for handle in [0, mem.handle + 1, u64::MAX] {
        assert_eq!(
            mem_err(&dev, free_args(handle)),
            Errno::EINVAL,
            "FREE {handle}"
        );
        assert_eq!(
            mem_err(&dev, map_args(handle)),
            Errno::EINVAL,
            "MAP {handle}"
        );
    }
    for addr in [
        0,
        mem.va + mem.size,
        mem.va + 4096,
        mem.va + 2 * MB,
        host.va + 4096,
        0x4000_0000_0000,
        u64::MAX,
    ] {
        assert_eq!(
            mem_err(&dev, unmap_args(addr)),
            Errno::EINVAL,
            "UNMAP {addr:#x}"
        );
    }
    // Another context's handle and VA mean nothing here.
    let other = Device::open(&p, 0).unwrap();
    assert_eq!(mem_err(&other, free_args(mem.handle)), Errno::EINVAL);
    assert_eq!(mem_err(&other, map_args(mem.handle)), Errno::EINVAL);
    assert_eq!(mem_err(&other, unmap_args(mem.va)), Errno::EINVAL);
    // The failures changed nothing.
    dev.free(mem).unwrap();
    dev.host_free(host).unwrap();
}

#[test]
fn memory_free_of_a_mapped_handle_is_einval() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    let mem = dev.alloc(2 * MB, false).unwrap();
    assert_eq!(mem_err(&dev, free_args(mem.handle)), Errno::EINVAL);
    // Mapped twice: both mappings must go first.
    let (r, second) = mem_raw(&dev, map_args(mem.handle));
    assert_eq!(r, Ok(0));
    assert_ne!(second.out_addr, mem.va);
    dev.unmap(mem.va).unwrap();
    assert_eq!(mem_err(&dev, free_args(mem.handle)), Errno::EINVAL);
    dev.unmap(second.out_addr).unwrap();
    mem_raw(&dev, free_args(mem.handle)).0.unwrap();
    assert_eq!(
        mem_err(&dev, free_args(mem.handle)),
        Errno::EINVAL,
        "freed twice"
    );
    assert_eq!(
        mem_err(&dev, map_args(mem.handle)),
        Errno::EINVAL,
        "mapped after free"
    );
}

#[test]
fn memory_map_userptr_of_unmapped_or_read_only_memory_is_efault() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    let gone = p.mmap_anon(16384).unwrap();
    p.munmap(gone, 16384).unwrap();
    assert_eq!(dev.map_host(gone, 16384), Err(Errno::EFAULT), "unmapped");
    let ro = p
        .mmap(
            -1,
            16384,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS,
            0,
        )
        .unwrap();
    assert_eq!(
        dev.map_host(ro, 16384),
        Err(Errno::EFAULT),
        "read-only: the device could write it"
    );
    // Partly mapped is as bad as unmapped.
    let rw = p.mmap_anon(8192).unwrap();
    assert_eq!(dev.map_host(rw, 8192 + 4096), Err(Errno::EFAULT));
    assert_eq!(dev.map_host(UserPtr::NULL, 4096), Err(Errno::EFAULT));
    assert_eq!(
        mem_err(&dev, userptr_args(rw.0, 0)),
        Errno::EINVAL,
        "0 bytes"
    );
    // The same memory, read-write and whole, maps; at an offset into its first page.
    let va = dev.map_host(UserPtr(rw.0 + 100), 8000).unwrap();
    assert_eq!(va % 4096, 100);
    dev.unmap(va).unwrap();
}

#[test]
fn memory_with_an_unknown_op_is_einval_and_an_unknown_ioctl_is_enotty() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    for o in [6, 7, 0x100, u32::MAX] {
        assert_eq!(
            mem_err(
                &dev,
                MemArgs {
                    size: 2 * MB,
                    ..op(o)
                }
            ),
            Errno::EINVAL,
            "op {o}"
        );
    }
    assert_eq!(dram_usage(&dev).ctx_used, 0);
    let unknown = [
        iowr::<InfoArgs>(SG1_IOC_MAGIC, 0x02),
        iowr::<InfoArgs>(SG1_IOC_MAGIC, 0x06),
        iowr::<InfoArgs>(SG1_IOC_MAGIC, 0x08),
        iowr::<MemArgs>(b'T', 0x05),
        0,
    ];
    let arg = p.mmap_anon(4096).unwrap();
    for cmd in unknown {
        assert_eq!(
            p.ioctl(dev.fd(), cmd, arg.0),
            Err(Errno::ENOTTY),
            "cmd {cmd:#x}"
        );
    }
}

// ---- CS ----

#[test]
fn cs_argument_errors_are_refused_before_anything_runs() {
    let m = machine();
    let p = m.process("cs");
    let dev = Device::open(&p, 0).unwrap();
    let (_buf, nop) = chunk(&dev, DMA0, &encode(&[Packet::Nop, Packet::Nop]));
    let einval = |chunks: &[CsChunk], n: u32, flags: u32, what: &str| {
        assert_eq!(
            cs_raw(&dev, chunks, n, flags).0,
            Err(Errno::EINVAL),
            "{what}"
        );
    };
    einval(&[nop], 0, 0, "no chunks");
    einval(&[nop; 17], MAX_CS_CHUNKS + 1, 0, "more than MAX_CS_CHUNKS");
    einval(&[nop], u32::MAX, 0, "a huge chunk count");
    einval(&[nop], 1, 2, "unknown flag");
    einval(
        &[nop],
        1,
        CS_FLAG_OUT_FENCE | 0x8000_0000,
        "unknown flag with a known one",
    );
    for queue in [3, 7, u32::MAX] {
        einval(&[CsChunk { queue, ..nop }], 1, 0, &format!("queue {queue}"));
        einval(
            &[nop, CsChunk { queue, ..nop }],
            2,
            0,
            &format!("queue {queue} as a second chunk"),
        );
    }
    for cb_size in [0, 2, 6, MAX_CB_SIZE + 4, 0xffff_fffc] {
        einval(
            &[CsChunk { cb_size, ..nop }],
            1,
            0,
            &format!("cb_size {cb_size}"),
        );
    }
    // The chunk array is read from the process: a bad pointer is EFAULT.
    let cs_at = |chunks: u64, num_chunks: u32, pad: u32| {
        let mut args = CsArgs {
            chunks,
            num_chunks,
            pad,
            ..Default::default()
        };
        p.ioctl_with(dev.fd(), SG1_IOCTL_CS, &mut args)
    };
    assert_eq!(cs_at(0, 1, 0), Err(Errno::EFAULT));
    let gone = p.mmap_anon(4096).unwrap();
    p.munmap(gone, 4096).unwrap();
    assert_eq!(cs_at(gone.0, 2, 0), Err(Errno::EFAULT));
    assert_eq!(cs_at(gone.0, 1, 1), Err(Errno::EINVAL), "reserved field");

    // None of them took a sequence number; MAX_CS_CHUNKS chunks over both queues is fine.
    let (r, args) = cs_raw(&dev, &[nop], 1, 0);
    assert_eq!((r, args.seq, args.fence_fd), (Ok(0), 1, -1));
    let mixed: Vec<CsChunk> = (0..MAX_CS_CHUNKS)
        .map(|i| CsChunk {
            queue: i % 2,
            ..nop
        })
        .collect();
    let (r, args) = cs_raw(&dev, &mixed, MAX_CS_CHUNKS, 0);
    assert_eq!((r, args.seq), (Ok(0), 2));
    assert!(completed(wait(&dev, 1)));
    assert!(completed(wait(&dev, 2)));
    let c = counters(&dev);
    assert_eq!((c.cs_completed, c.cs_aborted), (2, 0));
}

#[test]
fn a_command_buffer_the_mmu_cannot_translate_aborts_with_efault() {
    let m = machine();
    let p = m.process("cs");
    let dev = Device::open(&p, 0).unwrap();
    // Nothing mapped at the address: the engine's fetch of the buffer faults there.
    let far = 0x4000_0000_0000;
    let (r, args) = cs_raw(
        &dev,
        &[CsChunk {
            queue: DMA0,
            cb_size: 16,
            cb_addr: far,
        }],
        1,
        0,
    );
    assert_eq!(
        r,
        Ok(0),
        "the address is the device's to check, not the ioctl's"
    );
    assert_eq!(wait(&dev, args.seq), aborted(Errno::EFAULT, far));
    // A buffer that runs off the end of its mapping faults at the first unmapped byte.
    let (buf, nop) = chunk(&dev, DMA1, &encode(&[Packet::Nop]));
    let end = buf.va - buf.va % 4096 + 4096;
    let chunk = CsChunk {
        cb_addr: end - 8,
        cb_size: 16,
        ..nop
    };
    let (r, args) = cs_raw(&dev, &[chunk], 1, 0);
    assert_eq!(r, Ok(0));
    assert_eq!(wait(&dev, args.seq), aborted(Errno::EFAULT, end));
    let c = counters(&dev);
    assert_eq!((c.mmu_faults, c.errors, c.cs_aborted), (2, [1, 1, 0], 2));
}

#[test]
fn a_queue_holds_512_jobs_and_then_cs_is_eagain_until_it_drains() {
    let m = machine();
    let p = m.process("cs");
    let dev = Device::open(&p, 0).unwrap();
    let sob = spare_sob(&dev);
    let (_wait_buf, wait_chunk) = chunk(&dev, DMA0, &encode(&[Packet::Wait { sob, target: 1 }]));
    let (_nop_buf, nop) = chunk(&dev, DMA0, &encode(&[Packet::Nop]));
    let (r, first) = cs_raw(&dev, &[wait_chunk], 1, 0);
    assert_eq!(r, Ok(0));
    // Each job takes two of the ring's 1024 entries (the user's and the kernel's).
    let mut last = first.seq;
    for _ in 1..512 {
        let (r, args) = cs_raw(&dev, &[nop], 1, 0);
        assert_eq!(r, Ok(0));
        last = args.seq;
    }
    assert_eq!(last, 512);
    assert_eq!(
        cs_raw(&dev, &[nop], 1, 0).0,
        Err(Errno::EAGAIN),
        "DMA0's ring is full"
    );
    let two = [nop, CsChunk { queue: DMA1, ..nop }];
    assert_eq!(
        cs_raw(&dev, &two, 2, 0).0,
        Err(Errno::EAGAIN),
        "nothing is queued on DMA1 either"
    );
    // The other queue has its own ring.
    let (r, other) = cs_raw(&dev, &[CsChunk { queue: DMA1, ..nop }], 1, 0);
    assert_eq!(
        (r, other.seq),
        (Ok(0), 513),
        "failed submissions took no sequence number"
    );
    assert!(completed(wait(&dev, other.seq)));
    assert!(is_busy(&dev, last));
    // Release the wait: everything drains and DMA0 takes work again.
    signal(&dev, sob);
    for seq in 1..=512 {
        assert!(completed(wait(&dev, seq)), "seq {seq}");
    }
    let (r, args) = cs_raw(&dev, &[nop], 1, 0);
    assert_eq!(r, Ok(0));
    assert!(completed(wait(&dev, args.seq)));
}

#[test]
fn the_device_fd_has_no_read_and_no_mmap() {
    let m = machine();
    let p = m.process("cs");
    let dev = Device::open(&p, 0).unwrap();
    assert_eq!(p.read(dev.fd(), 16), Err(Errno::EINVAL));
    assert_eq!(
        p.mmap(dev.fd(), 4096, Prot::READ_WRITE, MapFlags::SHARED, 0),
        Err(Errno::ENODEV)
    );
}

// ---- WAIT_CS ----

/// The WAIT_CS ioctl itself, to see every field of the answer.
fn wait_cs_raw(dev: &Device<'_>, seq: u64, timeout_us: u64) -> WaitCsArgs {
    let mut args = WaitCsArgs {
        seq,
        timeout_us,
        ..Default::default()
    };
    dev.process()
        .ioctl_with(dev.fd(), SG1_IOCTL_WAIT_CS, &mut args)
        .unwrap();
    args
}

#[test]
fn wait_cs_of_seq_zero_or_a_future_seq_is_einval() {
    let m = machine();
    let p = m.process("wait");
    let dev = Device::open(&p, 0).unwrap();
    assert_eq!(dev.wait(0, Duration::ZERO), Err(Errno::EINVAL));
    assert_eq!(
        dev.wait(1, Duration::ZERO),
        Err(Errno::EINVAL),
        "nothing submitted yet"
    );
    let (seq, _) = dev.submit(&[(DMA0, &[Packet::Nop])], false).unwrap();
    assert_eq!(seq, 1);
    assert_eq!(dev.wait(2, Duration::MAX), Err(Errno::EINVAL));
    assert_eq!(dev.wait(u64::MAX, Duration::ZERO), Err(Errno::EINVAL));
    assert!(completed(wait(&dev, 1)));
    assert!(completed(wait(&dev, 1)), "waiting again reports it again");
    // Sequence numbers are per context.
    let other = Device::open(&p, 0).unwrap();
    assert_eq!(other.wait(1, Duration::ZERO), Err(Errno::EINVAL));
}

#[test]
fn wait_cs_reports_busy_until_another_queue_releases_the_wait() {
    let m = machine();
    let p = m.process("wait");
    let dev = Device::open(&p, 0).unwrap();
    let sob = spare_sob(&dev);
    let (blocked, _) = dev
        .submit(&[(DMA0, &[Packet::Wait { sob, target: 2 }])], false)
        .unwrap();
    assert!(is_busy(&dev, blocked));
    // Raw, to see every field of a busy answer.
    let args = wait_cs_raw(&dev, blocked, 1000);
    assert_eq!(
        (args.status, args.error, args.error_info),
        (CS_STATUS_BUSY, 0, 0)
    );
    // One MSG is not enough for a target of 2.
    signal(&dev, sob);
    assert!(is_busy(&dev, blocked));
    signal(&dev, sob);
    let args = wait_cs_raw(&dev, blocked, u64::MAX);
    assert_eq!(
        (args.status, args.error, args.error_info),
        (CS_STATUS_COMPLETED, 0, 0)
    );
    assert!(args.device_time_ns > 0);
}

#[test]
fn a_cs_with_chunks_on_both_dma_queues_completes_when_both_have() {
    let m = machine();
    let p = m.process("wait");
    let dev = Device::open(&p, 0).unwrap();
    let sob = spare_sob(&dev);
    let src = dev.host_alloc(64 * 1024).unwrap();
    let dst = dev.host_alloc(64 * 1024).unwrap();
    let data = pattern(64 * 1024, 9);
    p.write_mem(src.ptr, &data).unwrap();
    let wait_on_dma0 = [Packet::Wait { sob, target: 1 }];
    let copy_on_dma1 = [Packet::LinDma {
        src: src.va,
        dst: dst.va,
        size: 64 * 1024,
        dir: DmaDir::HostToHost,
    }];
    let (both, _) = dev
        .submit(&[(DMA0, &wait_on_dma0), (DMA1, &copy_on_dma1)], false)
        .unwrap();
    // A later job on DMA1 completing means the CS's DMA1 chunk has run.
    assert!(completed(dev.run(DMA1, &[Packet::Nop]).unwrap()));
    assert!(
        read_host(&p, dst.ptr, data.len()) == data,
        "the DMA1 chunk is done"
    );
    assert!(is_busy(&dev, both), "the DMA0 chunk is not");
    signal(&dev, sob);
    assert!(completed(wait(&dev, both)));
    // And a failure in one chunk aborts the whole submission.
    let far = 0x1000_0000_0000 + GB;
    let (failed, _) = dev
        .submit(
            &[
                (DMA0, &[Packet::Nop]),
                (
                    DMA1,
                    &[Packet::LinDma {
                        src: far,
                        dst: dst.va,
                        size: 4096,
                        dir: DmaDir::DeviceToHost,
                    }],
                ),
            ],
            false,
        )
        .unwrap();
    assert_eq!(wait(&dev, failed), aborted(Errno::EFAULT, far));
}

// ---- out-fence ----

fn poll_in(p: &Process, fd: Fd, timeout_ms: i32) -> PollMask {
    let mut fds = [PollFd::new(fd, PollMask::IN)];
    p.poll(&mut fds, timeout_ms).unwrap();
    fds[0].revents
}

#[test]
fn the_out_fence_polls_ready_when_the_cs_completes() {
    let m = machine();
    let p = m.process("fence");
    let dev = Device::open(&p, 0).unwrap();
    let sob = spare_sob(&dev);
    let (seq, fd) = dev
        .submit(&[(DMA0, &[Packet::Wait { sob, target: 1 }])], true)
        .unwrap();
    let fd = fd.expect("CS_FLAG_OUT_FENCE gives a sync_file");
    assert_eq!(
        poll_in(&p, fd, 0),
        PollMask::empty(),
        "not ready while the CS runs"
    );
    let file = SyncFile::from_fd(&p, fd);
    let (_, status, fences) = file.info().unwrap();
    assert_eq!(status, 0, "active");
    assert_eq!(fences.len(), 1);
    assert_eq!(fences[0].driver, "sg1");
    assert_eq!(
        fences[0].timeline,
        format!("accel0-ctx{}", dev.context().asid)
    );
    assert!(!file.wait(0).unwrap());

    signal(&dev, sob);
    assert_eq!(poll_in(&p, fd, -1), PollMask::IN);
    assert!(completed(wait(&dev, seq)));
    let (_, status, fences) = file.info().unwrap();
    assert_eq!(
        (status, fences[0].status),
        (1, 1),
        "signalled without error"
    );
    assert!(fences[0].timestamp_ns > 0);
    file.close().unwrap();
    // Without the flag there is no fd.
    let (nop, none) = dev.submit(&[(DMA0, &[Packet::Nop])], false).unwrap();
    assert_eq!(none, None);
    assert!(completed(wait(&dev, nop)));
}

#[test]
fn the_out_fence_of_an_aborted_cs_carries_its_error() {
    let m = machine();
    let p = m.process("fence");
    let dev = Device::open(&p, 0).unwrap();
    let host = dev.host_alloc(4096).unwrap();
    let far = 0x1000_0000_0000 + 4 * MB;
    let faulty = [Packet::LinDma {
        src: far,
        dst: host.va,
        size: 4096,
        dir: DmaDir::DeviceToHost,
    }];
    let (seq, fd) = dev.submit(&[(DMA0, &faulty)], true).unwrap();
    let file = SyncFile::from_fd(&p, fd.unwrap());
    assert!(file.wait(-1).unwrap());
    let (_, status, fences) = file.info().unwrap();
    assert_eq!(
        (status, fences[0].status),
        (-Errno::EFAULT.raw(), -Errno::EFAULT.raw())
    );
    assert_eq!(wait(&dev, seq), aborted(Errno::EFAULT, far));
    // A privilege violation, likewise.
    let (_, fd) = dev
        .submit(&[(DMA1, &[Packet::Fence { tag: 7 }])], true)
        .unwrap();
    let file = SyncFile::from_fd(&p, fd.unwrap());
    assert!(file.wait(-1).unwrap());
    assert_eq!(file.info().unwrap().1, -Errno::EPERM.raw());
}

// ---- copies ----

#[test]
fn lin_dma_copies_in_all_four_directions() {
    let m = machine();
    let p = m.process("copy");
    let dev = Device::open(&p, 0).unwrap();
    const LEN: usize = 3 * 65536 + 4100;
    let data = pattern(LEN, 0x61);
    let h1 = dev.host_alloc(LEN as u64 + 8192).unwrap();
    let h2 = dev.host_alloc(LEN as u64 + 8192).unwrap();
    let d1 = dev.alloc(4 * MB, false).unwrap();
    let d2 = dev.alloc(4 * MB, false).unwrap();
    p.write_mem(h1.ptr, &data).unwrap();
    let len = LEN as u64;
    // Odd offsets: runs that start and end inside pages (and cross the 2 MiB page).
    dev.copy(d1.va + 2 * MB - 1001, h1.va, len, DmaDir::HostToDevice)
        .unwrap();
    dev.copy(
        d2.va + 3,
        d1.va + 2 * MB - 1001,
        len,
        DmaDir::DeviceToDevice,
    )
    .unwrap();
    dev.copy(h2.va + 5, d2.va + 3, len, DmaDir::DeviceToHost)
        .unwrap();
    let mut back = vec![0u8; LEN + 10];
    p.read_mem(h2.ptr, &mut back).unwrap();
    assert!(
        back[5..5 + LEN] == data[..],
        "host -> device -> device -> host"
    );
    assert!(
        back[..5].iter().all(|&b| b == 0) && back[5 + LEN..].iter().all(|&b| b == 0),
        "nothing outside"
    );
    dev.copy(h1.va + 7, h2.va + 5, len, DmaDir::HostToHost)
        .unwrap();
    assert!(
        read_host(&p, UserPtr(h1.ptr.0 + 7), LEN) == data,
        "host -> host"
    );
    // A direction that does not match where the addresses lead is a bad packet.
    for (src, dst, dir) in [
        (d1.va, d2.va, DmaDir::HostToDevice),
        (h1.va, d1.va, DmaDir::DeviceToHost),
        (h1.va, h2.va, DmaDir::DeviceToDevice),
        (d1.va, h1.va, DmaDir::HostToHost),
    ] {
        assert_eq!(
            dev.run(
                DMA0,
                &[
                    Packet::Nop,
                    Packet::LinDma {
                        src,
                        dst,
                        size: 4096,
                        dir
                    }
                ]
            )
            .unwrap(),
            aborted(Errno::EINVAL, 4),
            "{dir:?}"
        );
    }
    // A zero-byte copy does nothing, successfully.
    dev.copy(h1.va, d1.va, 0, DmaDir::DeviceToHost).unwrap();
}

#[test]
fn a_64_mib_host_to_device_to_host_round_trip_keeps_every_byte() {
    let m = machine();
    let p = m.process("copy");
    let dev = Device::open(&p, 0).unwrap();
    let len = 64 * MB;
    let data = pattern(len as usize, 0x3b);
    let src = dev.host_alloc(len).unwrap();
    let dst = dev.host_alloc(len).unwrap();
    let mem = dev.alloc(len, false).unwrap();
    p.write_mem(src.ptr, &data).unwrap();
    let t1 = dev.copy(mem.va, src.va, len, DmaDir::HostToDevice).unwrap();
    let t2 = dev.copy(dst.va, mem.va, len, DmaDir::DeviceToHost).unwrap();
    assert!(t2 > t1 && t1 > 0, "device time moves on ({t1}, {t2})");
    assert!(read_host(&p, dst.ptr, len as usize) == data);
}

// ---- streams and events ----

#[test]
fn a_stream_that_waits_on_an_event_sees_the_data_copied_before_it() {
    let m = machine();
    let p = m.process("stream");
    let dev = Device::open(&p, 0).unwrap();
    let len = 16 * MB;
    let data = pattern(len as usize, 0x5a);
    let src = dev.host_alloc(len).unwrap();
    let dst = dev.host_alloc(len).unwrap();
    let mem = dev.alloc(len, false).unwrap();
    p.write_mem(src.ptr, &data).unwrap();
    let (s0, s1) = (dev.stream(DMA0), dev.stream(DMA1));
    let copied = dev.event().unwrap();
    // DMA1 reads the device memory only once DMA0 has written it.
    s0.copy(mem.va, src.va, len, DmaDir::HostToDevice).unwrap();
    s0.record(&copied).unwrap();
    s1.wait_event(&copied).unwrap();
    s1.copy(dst.va, mem.va, len, DmaDir::DeviceToHost).unwrap();
    s1.synchronize().unwrap();
    copied.synchronize(&dev).unwrap();
    assert!(read_host(&p, dst.ptr, len as usize) == data);
    // The event can be recorded again: the second wait is for the second record.
    let more = pattern(4096, 0xc3);
    p.write_mem(src.ptr, &more).unwrap();
    s0.copy(mem.va, src.va, 4096, DmaDir::HostToDevice).unwrap();
    s0.record(&copied).unwrap();
    s1.wait_event(&copied).unwrap();
    s1.copy(dst.va, mem.va, 4096, DmaDir::DeviceToHost).unwrap();
    s1.synchronize().unwrap();
    s0.synchronize().unwrap();
    assert!(read_host(&p, dst.ptr, 4096) == more);
}

#[test]
fn a_stream_waiting_on_an_event_not_yet_recorded_holds_its_copy_back() {
    let m = machine();
    let p = m.process("stream");
    let dev = Device::open(&p, 0).unwrap();
    let sob = spare_sob(&dev);
    let data = pattern(65536, 0x17);
    let src = dev.host_alloc(65536).unwrap();
    let dst = dev.host_alloc(65536).unwrap();
    let mem = dev.alloc(2 * MB, false).unwrap();
    p.write_mem(src.ptr, &data).unwrap();
    let (s0, s1) = (dev.stream(DMA0), dev.stream(DMA1));
    // DMA1's wait and copy are queued before DMA0 has anything to do.
    s1.enqueue(&[Packet::Wait { sob, target: 1 }]).unwrap();
    let out = s1
        .copy(dst.va, mem.va, 65536, DmaDir::DeviceToHost)
        .unwrap();
    assert!(completed(dev.run(DMA0, &[Packet::Nop]).unwrap()));
    assert!(is_busy(&dev, out), "held back by the wait");
    assert!(
        read_host(&p, dst.ptr, 65536).iter().all(|&b| b == 0),
        "the copy has not run"
    );
    s0.copy(mem.va, src.va, 65536, DmaDir::HostToDevice)
        .unwrap();
    s0.enqueue(&[Packet::Msg {
        sob,
        op: MsgOp::Add,
        value: 1,
    }])
    .unwrap();
    s1.synchronize().unwrap();
    s0.synchronize().unwrap();
    assert!(read_host(&p, dst.ptr, 65536) == data);
}

// ---- address spaces ----

#[test]
fn sixty_three_contexts_open_and_the_sixty_fourth_is_ebusy_until_one_closes() {
    let m = machine();
    let p = m.process("asids");
    let devs: Vec<Device<'_>> = (0..63)
        .map(|i| Device::open(&p, 0).unwrap_or_else(|e| panic!("context {i}: {e:?}")))
        .collect();
    let mut asids: Vec<u32> = devs.iter().map(|d| d.context().asid).collect();
    asids.sort_unstable();
    assert_eq!(
        asids,
        (1..64).collect::<Vec<u32>>(),
        "every ASID but the kernel's 0"
    );
    assert_eq!(Device::open(&p, 0).unwrap_err(), Errno::EBUSY);
    assert_eq!(
        p.open("/dev/accel/accel0", sagrada_sys::OpenFlags::RDWR),
        Err(Errno::EBUSY)
    );
    // Other devices have their own address spaces.
    Device::open(&p, 2).unwrap().close().unwrap();
    // The last context still works.
    assert!(completed(devs[62].run(DMA0, &[Packet::Nop]).unwrap()));
    let mut devs = devs;
    let freed = devs.remove(17);
    let asid = freed.context().asid;
    freed.close().unwrap();
    let again = Device::open(&p, 0).expect("a closed context gives its ASID back");
    assert_eq!(again.context().asid, asid);
    assert_eq!(Device::open(&p, 0).unwrap_err(), Errno::EBUSY);
    assert!(completed(again.run(DMA1, &[Packet::Nop]).unwrap()));
}

// ---- probe ----

#[test]
fn a_device_with_firmware_of_another_protocol_is_not_bound() {
    let m = Machine::builder(&sagrada_hw_fabric::TopologyConfig::default_machine())
        .firmware("accel1", (2, 0, 0))
        .build()
        .unwrap();
    let bound: Vec<&str> = m.accels().iter().map(|d| d.name()).collect();
    assert_eq!(bound, ["accel0", "accel2", "accel3"]);
    let errors = m.probe_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].device, "accel1");
    assert_eq!(errors[0].bdf, bdf_of(&m, "accel1"));
    let message = errors[0].to_string();
    for part in ["firmware 2.0.0", "protocol 2", "protocol 1"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    let p = m.process("probe");
    assert_eq!(
        Device::open(&p, 1).unwrap_err(),
        Errno::ENOENT,
        "no node for accel1"
    );
    for index in [0, 2] {
        let dev = Device::open(&p, index).unwrap();
        assert_eq!(
            (
                dev.info().fw_major,
                dev.info().fw_minor,
                dev.info().fw_patch
            ),
            (1, 2, 0)
        );
        assert!(completed(dev.run(DMA0, &[Packet::Nop]).unwrap()));
    }
}

// ---- reserved fields, wrapping ranges, fd exhaustion, forgotten submissions ----

#[test]
fn memory_map_userptr_of_a_range_that_wraps_around_is_einval() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    for (addr, size) in [(u64::MAX - 4095, 8192), (4096, u64::MAX), (1, u64::MAX)] {
        assert_eq!(
            mem_err(&dev, userptr_args(addr, size)),
            Errno::EINVAL,
            "{addr:#x} + {size:#x}"
        );
    }
}

#[test]
fn memory_with_a_reserved_field_or_an_unused_flag_set_is_einval() {
    let m = machine();
    let p = m.process("mem");
    let dev = Device::open(&p, 0).unwrap();
    let alloc = alloc_args(2 * MB, 0);
    assert_eq!(mem_err(&dev, MemArgs { pad: 1, ..alloc }), Errno::EINVAL);
    let mem = dev.alloc(2 * MB, false).unwrap();
    let host = p.mmap_anon(4096).unwrap();
    for args in [
        free_args(mem.handle),
        map_args(mem.handle),
        unmap_args(mem.va),
        userptr_args(host.0, 4096),
    ] {
        assert_eq!(
            mem_err(&dev, MemArgs { flags: 1, ..args }),
            Errno::EINVAL,
            "op {} with flags",
            args.op
        );
        assert_eq!(
            mem_err(&dev, MemArgs { pad: 1, ..args }),
            Errno::EINVAL,
            "op {} with pad",
            args.op
        );
    }
    // Nothing of that happened: the allocation is still mapped and in use.
    assert_eq!(dram_usage(&dev).ctx_used, 2 * MB);
    dev.free(mem).unwrap();
}

#[test]
fn cs_with_an_out_fence_and_a_full_fd_table_is_emfile_and_queues_nothing() {
    let m = machine();
    let p = m.process("cs");
    let dev = Device::open(&p, 0).unwrap();
    let (_cb_mem, chunk) = chunk(&dev, DMA0, &encode(&[Packet::Nop]));
    let mut spare = Vec::new();
    while let Ok(fd) = p.dup(dev.fd()) {
        spare.push(fd);
    }
    let before = counters(&dev);
    // The chunk array needs memory, not an fd: the table stays full.
    let (r, args) = cs_raw(&dev, &[chunk], 1, CS_FLAG_OUT_FENCE);
    assert_eq!(r, Err(Errno::EMFILE));
    assert_eq!(args.seq, 0, "no sequence number handed out");
    p.close(spare.pop().unwrap()).unwrap();
    let (r, args) = cs_raw(&dev, &[chunk], 1, CS_FLAG_OUT_FENCE);
    r.unwrap();
    assert_eq!(args.seq, 1, "the refused submission used no number");
    assert!(args.fence_fd >= 0);
    assert!(completed(wait(&dev, 1)));
    let after = counters(&dev);
    assert_eq!(
        after.cs_completed,
        before.cs_completed + 1,
        "one ran, not two"
    );
}

#[test]
fn wait_cs_of_a_submission_older_than_the_context_remembers_is_gone() {
    let m = machine();
    let p = m.process("wait");
    let dev = Device::open(&p, 0).unwrap();
    let last = RETAINED_CS as u64 + 1;
    for seq in 1..=last {
        let (got, _) = dev.submit(&[(DMA0, &[Packet::Nop])], false).unwrap();
        assert_eq!(got, seq);
        assert!(completed(wait(&dev, seq)));
    }
    let raw = |seq| wait_cs_raw(&dev, seq, 0).status;
    assert_eq!(raw(1), CS_STATUS_GONE, "forgotten: not claimed completed");
    assert_eq!(raw(2), CS_STATUS_COMPLETED);
    assert_eq!(raw(last), CS_STATUS_COMPLETED);
}

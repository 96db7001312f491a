//! Address spaces: page tables with 2 MiB, 4 KiB and host leaves, and every fault
//! cause with its record, its interrupt and its error completion.

mod common;

use common::{Dev, PageTables, machine, pattern};
use sagrada_hw_accel_abi::entry::{CqEntry, CqStatus, RingEntry};
use sagrada_hw_accel_abi::mmu::{FaultCause, PTE_WRITABLE};
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};
use sagrada_hw_accel_abi::regs::{mmu, queue};
use sagrada_hw_accel_abi::{QUEUE_DMA0, VECTOR_MMU};
use sagrada_hw_fabric::{DmaDirection, FaultReason};

const MIB: u64 = 1 << 20;
/// Where the tests put page tables in HBM.
const POOL: u64 = 900 * MIB;
/// Where command buffers are mapped in each address space.
const CB_VA: u64 = 0x7fff_0000_0000;

fn lin(src: u64, dst: u64, size: u64, dir: DmaDir) -> Packet {
    Packet::LinDma {
        src,
        dst,
        size,
        dir,
    }
}

/// Submits a privileged fence after whatever is queued and returns the completions up
/// to it: the unprivileged entries before it report only errors.
fn fence_after(d: &Dev, n_before: u32, tag: u64) -> Vec<CqEntry> {
    let (cb_addr, cb_size) = d.cb(&[Packet::Fence { tag }]);
    d.submit(
        QUEUE_DMA0,
        &[RingEntry {
            cb_addr,
            cb_size,
            ..Default::default()
        }],
    );
    let out = d.completions(n_before + 1);
    assert_eq!(out.last().unwrap().tag, tag);
    assert_eq!(out.last().unwrap().status, CqStatus::Fence as u16);
    out
}

#[test]
fn two_mib_four_kib_and_host_leaves_translate() {
    let d = machine();
    d.setup();
    let mut pt = PageTables::new(&d, POOL);
    // VA 0x20_0000_0000: 2 MiB page at HBM 4 MiB. VA 0x30_0000_0000: three 4 KiB pages
    // scattered in HBM, in reverse order. VA 0x40_0000_0000: a host buffer.
    let big = 0x20_0000_0000u64;
    pt.map_2m(big, 4 * MIB, PTE_WRITABLE);
    let small = 0x30_0000_0000u64;
    for i in 0..3u64 {
        pt.map_4k(small + i * 4096, 64 * MIB - i * 8192, PTE_WRITABLE);
    }
    let host = d.host(3 * 4096);
    let data = pattern(3 * 4096, 5);
    d.host_write(host.phys, &data);
    let host_va = 0x40_0000_0000u64;
    pt.map_host(host_va, &host, 0);
    pt.install(1);
    d.user_job(
        QUEUE_DMA0,
        1,
        1,
        &mut pt,
        CB_VA,
        &[
            lin(host_va, small, 3 * 4096, DmaDir::HostToDevice),
            lin(
                small + 100,
                big + 2 * MIB - 3 * 4096,
                3 * 4096 - 100,
                DmaDir::DeviceToDevice,
            ),
        ],
    );
    fence_after(&d, 0, 2);
    for i in 0..3u64 {
        let page = &data[(i * 4096) as usize..((i + 1) * 4096) as usize];
        assert_eq!(
            d.hbm_read(64 * MIB - i * 8192, 4096),
            page,
            "4 KiB page {i}"
        );
    }
    assert_eq!(
        d.hbm_read(6 * MIB - 3 * 4096, 3 * 4096 - 100),
        data[100..],
        "the end of the 2 MiB page"
    );
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_COUNT), 0);
}

/// Runs one unprivileged LIN_DMA (or, with `packets`, a command buffer) that faults,
/// and checks the record, the interrupt and the completion.
fn expect_fault(
    d: &Dev,
    pt: &mut PageTables<'_>,
    asid: u16,
    cb_va: u64,
    packets: &[Packet],
    (va, cause, write): (u64, FaultCause, bool),
) {
    let irqs = d.irq_count(VECTOR_MMU);
    let faults = d.rd(mmu::BASE + mmu::FAULT_COUNT);
    d.user_job(QUEUE_DMA0, asid, 0xbad, pt, cb_va, packets);
    let out = fence_after(d, 1, 0x900d);
    assert_eq!(out[0].tag, 0xbad);
    assert_eq!(out[0].status, CqStatus::MmuFault as u16, "{cause:?}");
    assert_eq!(out[0].info, va, "{cause:?}: the faulting address");
    d.wait_irq(VECTOR_MMU, irqs + 1);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_STATUS), 1, "VALID, no overflow");
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_ASID), u32::from(asid));
    assert_eq!(d.rd64(mmu::BASE + mmu::FAULT_VA_LO), va);
    let c = d.rd(mmu::BASE + mmu::FAULT_CAUSE);
    assert_eq!(mmu::fields::FAULT_CAUSE::CODE.get(c), cause as u32);
    assert_eq!(
        mmu::fields::FAULT_CAUSE::WRITE.is_set(c),
        write,
        "{cause:?}"
    );
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_COUNT), faults + 1);
    d.wr(mmu::BASE + mmu::FAULT_STATUS, 1);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_STATUS), 0, "W1C");
}

#[test]
fn every_fault_cause_is_recorded_interrupts_and_ends_only_its_entry() {
    let d = machine();
    d.setup();
    let mut pt = PageTables::new(&d, POOL);
    let ro = 0x10_0000_0000u64;
    pt.map_2m(ro, 8 * MIB, 0);
    let rw = 0x11_0000_0000u64;
    pt.map_4k(rw, 16 * MIB, PTE_WRITABLE);
    // A host leaf whose DMA address the IOMMU does not map, and one mapped to-device
    // only (the SG1 may read it, not write it).
    let unmapped = 0x12_0000_0000u64;
    pt.map_4k(
        unmapped,
        0x7_0000_0000,
        sagrada_hw_accel_abi::mmu::PTE_HOST | PTE_WRITABLE,
    );
    let to_dev = d.host_dir(4096, DmaDirection::ToDevice);
    let readonly_host = 0x13_0000_0000u64;
    pt.map_host(readonly_host, &to_dev, PTE_WRITABLE);
    pt.install(1);
    let cb = |i: u64| CB_VA + i * 4096;

    expect_fault(
        &d,
        &mut pt,
        1,
        cb(0),
        &[lin(rw + 4096 + 8, rw, 16, DmaDir::DeviceToDevice)],
        (rw + 4096 + 8, FaultCause::NotPresent, false),
    );
    expect_fault(
        &d,
        &mut pt,
        1,
        cb(1),
        &[lin(rw, ro + 0x1234, 16, DmaDir::DeviceToDevice)],
        (ro + 0x1234, FaultCause::ReadOnly, true),
    );
    expect_fault(
        &d,
        &mut pt,
        1,
        cb(2),
        &[lin(1 << 48, rw, 16, DmaDir::DeviceToDevice)],
        (1 << 48, FaultCause::BadAddress, false),
    );
    expect_fault(
        &d,
        &mut pt,
        1,
        cb(3),
        &[lin(unmapped + 64, rw, 16, DmaDir::HostToDevice)],
        (unmapped + 64, FaultCause::HostRefused, false),
    );
    expect_fault(
        &d,
        &mut pt,
        1,
        cb(4),
        &[lin(rw, readonly_host + 32, 16, DmaDir::DeviceToHost)],
        (readonly_host + 32, FaultCause::HostRefused, true),
    );
    let refused = d.fabric.faults(d.dev);
    assert_eq!(
        refused.len(),
        2,
        "the fabric logged both refusals: {refused:?}"
    );
    assert_eq!(refused[0].reason, FaultReason::Unmapped);
    assert_eq!(refused[1].reason, FaultReason::Permission);

    // An address space without tables: the command buffer itself cannot be read.
    expect_fault(
        &d,
        &mut pt,
        2,
        cb(5),
        &[Packet::Nop],
        (cb(5), FaultCause::NoPageTable, false),
    );
    assert_eq!(d.rd(queue::instance(QUEUE_DMA0) + queue::ERRORS), 6);
}

#[test]
fn a_physical_address_beyond_the_hbm_faults_for_the_kernel_too() {
    let d = machine();
    d.setup();
    let (cb_addr, cb_size) = d.cb(&[lin(1 << 30, 0, 4, DmaDir::DeviceToDevice)]);
    d.submit(
        QUEUE_DMA0,
        &[RingEntry {
            cb_addr,
            cb_size,
            tag: 3,
            ..Default::default()
        }],
    );
    let out = fence_after(&d, 1, 4);
    assert_eq!(
        (out[0].tag, out[0].status, out[0].info),
        (3, CqStatus::MmuFault as u16, 1 << 30)
    );
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_ASID), 0);
    assert_eq!(
        mmu::fields::FAULT_CAUSE::CODE.get(d.rd(mmu::BASE + mmu::FAULT_CAUSE)),
        FaultCause::BadAddress as u32
    );
}

#[test]
fn a_second_fault_while_one_is_recorded_sets_overflow() {
    let d = machine();
    d.setup();
    let mut pt = PageTables::new(&d, POOL);
    pt.install(1);
    d.user_job(
        QUEUE_DMA0,
        1,
        1,
        &mut pt,
        CB_VA,
        &[lin(0x1000, 0x2000, 4, DmaDir::DeviceToDevice)],
    );
    d.user_job(
        QUEUE_DMA0,
        1,
        2,
        &mut pt,
        CB_VA + 4096,
        &[lin(0x3000, 0x2000, 4, DmaDir::DeviceToDevice)],
    );
    let out = fence_after(&d, 2, 3);
    assert_eq!((out[0].info, out[1].info), (0x1000, 0x3000));
    use mmu::fields::FAULT_STATUS;
    let s = d.rd(mmu::BASE + mmu::FAULT_STATUS);
    assert!(FAULT_STATUS::VALID.is_set(s) && FAULT_STATUS::OVERFLOW.is_set(s));
    assert_eq!(
        d.rd64(mmu::BASE + mmu::FAULT_VA_LO),
        0x1000,
        "the first fault is kept"
    );
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_COUNT), 2);
    d.wait_irq(VECTOR_MMU, 2);
}

#[test]
fn a_page_walk_reads_the_tables_on_every_access() {
    // No TLB: changing a leaf takes effect for the next entry (after INVALIDATE, which
    // the protocol asks for and which completes at once).
    let d = machine();
    d.setup();
    let mut pt = PageTables::new(&d, POOL);
    let va = 0x5000_0000u64;
    pt.map_4k(va, 0, PTE_WRITABLE);
    pt.map_4k(va + 4096, 4096, PTE_WRITABLE);
    pt.install(4);
    d.hbm_write(0, b"first...");
    d.user_job(
        QUEUE_DMA0,
        4,
        1,
        &mut pt,
        CB_VA,
        &[lin(va, va + 4096, 8, DmaDir::DeviceToDevice)],
    );
    fence_after(&d, 0, 1);
    assert_eq!(d.hbm_read(4096, 8), b"first...");
    d.hbm_write(8192, b"second..");
    pt.map_4k(va, 8192, PTE_WRITABLE);
    pt.install(4);
    d.user_job(
        QUEUE_DMA0,
        4,
        2,
        &mut pt,
        CB_VA + 4096,
        &[lin(va, va + 4096, 8, DmaDir::DeviceToDevice)],
    );
    fence_after(&d, 0, 2);
    assert_eq!(d.hbm_read(4096, 8), b"second..");
}

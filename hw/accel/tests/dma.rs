//! LIN_DMA in all four directions, a 64 MiB transfer through an address space with
//! 2 MiB pages, device time, and the link counters.

mod common;

use common::{PageTables, machine, pattern};
use sagrada_hw_accel_abi::entry::{CqStatus, RingEntry};
use sagrada_hw_accel_abi::mmu::PTE_WRITABLE;
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};
use sagrada_hw_accel_abi::regs::queue;
use sagrada_hw_accel_abi::{QUEUE_DMA0, QUEUE_DMA1};

fn lin(src: u64, dst: u64, size: u64, dir: DmaDir) -> Packet {
    Packet::LinDma {
        src,
        dst,
        size,
        dir,
    }
}

#[test]
fn lin_dma_moves_data_in_all_four_directions() {
    let d = machine();
    d.setup();
    let n = 3 * 4096 + 100;
    let data = pattern(n, 1);
    let a = d.host(n as u64);
    let b = d.host(n as u64);
    d.host_write(a.phys, &data);
    let (h1, h2) = (0x10_0000u64, 0x20_0123u64);
    let e = d.run(
        QUEUE_DMA0,
        0,
        1,
        &[
            lin(a.dev(0), h1, n as u64, DmaDir::HostToDevice),
            lin(h1, h2, n as u64, DmaDir::DeviceToDevice),
            lin(h2, b.dev(0), n as u64, DmaDir::DeviceToHost),
            Packet::Fence { tag: 1 },
        ],
        1,
    );
    assert_eq!(e[0].status, CqStatus::Fence as u16);
    assert_eq!(d.hbm_read(h1, n), data);
    assert_eq!(d.hbm_read(h2, n), data);
    assert_eq!(d.host_read(b.phys, n), data);

    let c = d.host(n as u64);
    d.run(
        QUEUE_DMA1,
        0,
        2,
        &[
            lin(b.dev(7), c.dev(0), n as u64 - 7, DmaDir::HostToHost),
            Packet::Fence { tag: 2 },
        ],
        1,
    );
    assert_eq!(d.host_read(c.phys, n - 7), data[7..]);
    assert_eq!(
        d.rd(queue::instance(QUEUE_DMA0) + queue::ERRORS)
            + d.rd(queue::instance(QUEUE_DMA1) + queue::ERRORS),
        0
    );
}

#[test]
fn a_zero_size_lin_dma_is_a_no_op() {
    let d = machine();
    d.setup();
    let e = d.run(
        QUEUE_DMA0,
        0,
        1,
        // Even with addresses that would fault.
        &[
            lin(u64::MAX, 1 << 62, 0, DmaDir::HostToDevice),
            Packet::Fence { tag: 1 },
        ],
        1,
    );
    assert_eq!(e[0].status, CqStatus::Fence as u16);
}

#[test]
fn device_time_follows_the_size_of_the_copy() {
    let d = machine();
    d.setup();
    let fence_only = d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 0 }], 1)[0].device_time_ns;
    let t0 = d.run(QUEUE_DMA1, 0, 0, &[Packet::Fence { tag: 0 }], 1)[0].device_time_ns;
    let mb = 8 << 20;
    let e = d.run(
        QUEUE_DMA1,
        0,
        0,
        &[
            lin(0, mb, mb, DmaDir::DeviceToDevice),
            Packet::Fence { tag: 1 },
        ],
        1,
    )[0];
    // 8 MiB at 800 GB/s: about 10.5 µs on top of fetch, command buffer and fences.
    let copy = e.device_time_ns - t0;
    assert!(
        copy > 10_000 && copy < 10_000 + 2 * fence_only + 1000,
        "{copy} ns"
    );
    let host = d.host(mb);
    let e2 = d.run(
        QUEUE_DMA1,
        0,
        0,
        &[
            lin(host.dev(0), 0, mb, DmaDir::HostToDevice),
            Packet::Fence { tag: 2 },
        ],
        1,
    )[0];
    // Over a gen4 x16 link (28.8 GB/s): about 290 µs.
    let pcie = e2.device_time_ns - e.device_time_ns;
    assert!(pcie > 250_000 && pcie < 350_000, "{pcie} ns");
}

#[test]
fn sixty_four_mib_through_two_mib_pages() {
    const MIB: u64 = 1 << 20;
    let d = machine();
    d.setup();
    let asid = 3;
    let mut pt = PageTables::new(&d, 512 * MIB);
    let len = 64 * MIB;
    let data = pattern(len as usize, 7);
    let src = d.host(len);
    let back = d.host(len);
    d.host_write(src.phys, &data);
    let (host_va, back_va, hbm_va, hbm_pa) = (
        0x40_0000_0000u64,
        0x50_0000_0000u64,
        0x1_0000_0000u64,
        128 * MIB,
    );
    pt.map_host(host_va, &src, 0);
    pt.map_host(back_va, &back, PTE_WRITABLE);
    for off in (0..len).step_by((2 * MIB) as usize) {
        pt.map_2m(hbm_va + off, hbm_pa + off, PTE_WRITABLE);
    }
    pt.install(asid.into());
    d.user_job(
        QUEUE_DMA0,
        asid,
        9,
        &mut pt,
        0x7000_0000,
        &[
            lin(host_va, hbm_va, len, DmaDir::HostToDevice),
            lin(hbm_va, back_va, len, DmaDir::DeviceToHost),
        ],
    );
    let (cb_addr, cb_size) = d.cb(&[Packet::Fence { tag: 10 }]);
    d.submit(
        QUEUE_DMA0,
        &[RingEntry {
            cb_addr,
            cb_size,
            ..Default::default()
        }],
    );
    let e = d.completions(1)[0];
    assert_eq!((e.tag, e.status), (10, CqStatus::Fence as u16));
    assert_eq!(d.rd(queue::instance(QUEUE_DMA0) + queue::ERRORS), 0);
    let mut hbm = vec![0u8; len as usize];
    d.hbm().read(hbm_pa, &mut hbm).unwrap();
    assert!(hbm == data, "HBM holds the data");
    assert!(
        d.host_read(back.phys, len as usize) == data,
        "and so does the host again"
    );
    // Two copies of 64 MiB over PCIe at 28.8 GB/s: about 4.7 ms of device time.
    let busy = d.rd64(queue::instance(QUEUE_DMA0) + queue::BUSY_NS_LO);
    assert!(busy > 4_500_000 && busy < 5_000_000, "{busy} ns");
}

#[test]
fn a_host_to_hbm_copy_crosses_the_device_link_and_host_dram() {
    let d = machine();
    d.setup();
    let n = 1u64 << 20;
    let src = d.host(n);
    d.host_write(src.phys, &pattern(n as usize, 3));
    let (cb_addr, cb_size) = d.cb(&[lin(src.dev(0), 0, n, DmaDir::HostToDevice)]);
    let before = d.fabric.counters();
    d.submit(
        QUEUE_DMA0,
        &[RingEntry {
            cb_addr,
            cb_size,
            ..Default::default()
        }],
    );
    d.wait_idle(QUEUE_DMA0);
    let delta = d.fabric.counters().since(&before);
    let links = d.fabric.links_to_root(d.dev);
    assert_eq!(links.len(), 2, "accel0 sits under the switch");
    let small = 4096; // the ring entry and the command buffer
    for &l in links {
        let c = delta.link(l);
        assert!(
            c.down_bytes >= n && c.down_bytes < n + small,
            "{}: {} bytes down",
            d.fabric.link_name(l),
            c.down_bytes
        );
    }
    assert!(delta.host_dram_read_bytes >= n && delta.host_dram_read_bytes < n + small);
    assert_eq!(delta.host_dram_write_bytes, 0, "no completion was written");
    assert_eq!(d.hbm_read(0, n as usize), pattern(n as usize, 3));
    // An HBM-to-HBM copy crosses no link at all.
    let before = d.fabric.counters();
    let (cb_addr, cb_size) = d.cb(&[lin(0, n, n, DmaDir::DeviceToDevice)]);
    d.submit(
        QUEUE_DMA0,
        &[RingEntry {
            cb_addr,
            cb_size,
            ..Default::default()
        }],
    );
    d.wait_idle(QUEUE_DMA0);
    let delta = d.fabric.counters().since(&before);
    assert!(delta.total_link_bytes() < 2 * small);
}

//! The kernel services drivers use: interrupts, coherent DMA buffers, pinned user
//! pages and DMA parameters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sagrada_hw_fabric::{DmaDirection, Fabric, Iova};
use sagrada_kernel_core::{DEFAULT_MAX_SEG_SIZE, Errno, Kernel};
use sagrada_sys::Process;

fn kernel() -> Arc<Kernel> {
    Kernel::new(Fabric::default_machine().unwrap())
}

#[test]
fn a_device_message_runs_the_requested_handler() {
    let kernel = kernel();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let msg = kernel
        .request_irq(
            "test",
            Arc::new(move || {
                h.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    let accel0 = kernel.fabric().find("accel0").unwrap();
    kernel
        .fabric()
        .dma_write(accel0, Iova(msg.address), &msg.data.to_le_bytes())
        .unwrap();
    kernel
        .fabric()
        .dma_write(accel0, Iova(msg.address), &msg.data.to_le_bytes())
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(kernel.interrupts()[0].count, 2);
    assert_eq!(kernel.interrupts()[0].name, "test");

    kernel.free_irq(msg.vector).unwrap();
    assert_eq!(kernel.free_irq(msg.vector), Err(Errno::EINVAL));
    kernel
        .fabric()
        .dma_write(accel0, Iova(msg.address), &msg.data.to_le_bytes())
        .unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a freed vector no longer runs"
    );
    assert_eq!(kernel.spurious_interrupts(), 1);
}

#[test]
fn vectors_are_distinct_and_run_out() {
    let kernel = kernel();
    let a = kernel.request_irq("a", Arc::new(|| {})).unwrap();
    let b = kernel.request_irq("b", Arc::new(|| {})).unwrap();
    assert_ne!(a.data, b.data);
    let mut n = 2;
    while kernel.request_irq("more", Arc::new(|| {})).is_ok() {
        n += 1;
    }
    assert_eq!(n, 256 - 32);
    assert_eq!(kernel.request_irq("x", Arc::new(|| {})), Err(Errno::ENOSPC));
}

#[test]
fn a_coherent_buffer_is_shared_by_the_cpu_and_the_device() {
    let kernel = kernel();
    let free = kernel.frames().free_bytes();
    let nic0 = kernel.fabric().find("nic0").unwrap();
    let buf = kernel.dma_alloc_coherent(nic0, 6000).unwrap();
    assert_eq!(buf.len(), 8192);
    buf.write(4090, b"cpu wrote").unwrap();
    let mut seen = [0u8; 9];
    kernel
        .fabric()
        .dma_read(nic0, Iova(buf.iova().raw() + 4090), &mut seen)
        .unwrap();
    assert_eq!(&seen, b"cpu wrote");
    kernel
        .fabric()
        .dma_write(nic0, buf.iova(), &7u64.to_le_bytes())
        .unwrap();
    assert_eq!(buf.read_u64(0), Ok(7));
    assert_eq!(buf.write(8190, b"xyz"), Err(Errno::EINVAL), "past the end");
    let iova = buf.iova();
    drop(buf);
    assert!(
        kernel.fabric().dma_read(nic0, iova, &mut seen).is_err(),
        "unmapped when freed"
    );
    assert_eq!(kernel.frames().free_bytes(), free);
}

#[test]
fn pinned_user_pages_survive_munmap_until_unpinned() {
    let kernel = kernel();
    let p = Process::spawn(&kernel, "t");
    let len = 3 * 4096;
    let mem = p.mmap_anon(len).unwrap();
    p.write_mem(mem, b"pinned data").unwrap();
    let free_before = kernel.frames().free_bytes();
    let pinned = kernel
        .with_task(p.pid(), |t| t.pin_user_pages(mem, len, true))
        .unwrap();
    assert_eq!(pinned.len(), len);
    let accel0 = kernel.fabric().find("accel0").unwrap();
    let iova = kernel
        .fabric()
        .dma_map_extents(accel0, pinned.extents(), DmaDirection::Bidirectional)
        .unwrap();

    p.munmap(mem, len).unwrap();
    assert_eq!(
        kernel.frames().free_bytes(),
        free_before,
        "the pages stay with the device"
    );
    let mut seen = [0u8; 11];
    kernel.fabric().dma_read(accel0, iova, &mut seen).unwrap();
    assert_eq!(&seen, b"pinned data");

    kernel.fabric().dma_unmap(accel0, iova, len).unwrap();
    drop(pinned);
    assert_eq!(kernel.frames().free_bytes(), free_before + len);
    assert_eq!(kernel.frames().pinned_pages(), 0);
}

#[test]
fn pinning_checks_the_mapping_and_its_permission() {
    let kernel = kernel();
    let p = Process::spawn(&kernel, "t");
    let ro = kernel
        .mmap(
            p.pid(),
            4096,
            sagrada_kernel_core::Prot::READ,
            sagrada_kernel_core::MapFlags::PRIVATE | sagrada_kernel_core::MapFlags::ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    kernel
        .with_task(p.pid(), |t| t.pin_user_pages(ro, 4096, false))
        .unwrap();
    let err = kernel
        .with_task(p.pid(), |t| t.pin_user_pages(ro, 4096, true))
        .unwrap_err();
    assert_eq!(err, Errno::EFAULT);
}

#[test]
fn the_max_segment_size_defaults_to_64_kib() {
    let kernel = kernel();
    let nic0 = kernel.fabric().find("nic0").unwrap();
    assert_eq!(kernel.dma_get_max_seg_size(nic0), DEFAULT_MAX_SEG_SIZE);
    kernel.dma_set_max_seg_size(nic0, 1 << 30);
    assert_eq!(kernel.dma_get_max_seg_size(nic0), 1 << 30);
}

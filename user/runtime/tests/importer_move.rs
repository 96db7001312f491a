//! A dynamic importer follows a buffer that moves: the test importer's regions drop
//! their mapping at `move_notify`, giving it back to the exporter, and map the buffer
//! again at their next use, as RDMA's dma-buf memory regions do. No exporter of the
//! stack moves its buffers, so the test plays one: host memory that can relocate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sagrada::Machine;
use sagrada::importer::{Attach, Importer};
use sagrada_hw_fabric::{DmaDirection, Fabric, PhysRange};
use sagrada_kernel_core::{KResult, OpenFlags, lock};
use sagrada_kernel_dmabuf::{Attachment, DmaBufOps, ExportInfo, PinOps, SgEntry, SgTable};

const SIZE: u64 = 64 << 10;

#[derive(Default)]
struct Counts {
    maps: AtomicUsize,
    unmaps: AtomicUsize,
}

/// A buffer in host DRAM that the test can move to other pages.
struct Mover {
    fabric: Arc<Fabric>,
    /// Where the buffer is now (contiguous); the test moves it.
    at: Arc<Mutex<PhysRange>>,
    counts: Arc<Counts>,
}

impl DmaBufOps for Mover {
    fn map_dma_buf(&self, attach: &Attachment, dir: DmaDirection) -> KResult<SgTable> {
        let at = *lock(&self.at);
        let iova = self
            .fabric
            .dma_map_extents(attach.dev(), &[at], dir)
            .map_err(|_| sagrada_kernel_core::Errno::ENOMEM)?;
        self.counts.maps.fetch_add(1, Ordering::SeqCst);
        Ok(SgTable::new(vec![SgEntry {
            dma_addr: iova,
            len: SIZE,
        }]))
    }

    fn unmap_dma_buf(&self, attach: &Attachment, sgt: SgTable, _dir: DmaDirection) {
        for e in sgt.entries() {
            self.fabric
                .dma_unmap(attach.dev(), e.dma_addr, e.len)
                .unwrap();
        }
        self.counts.unmaps.fetch_add(1, Ordering::SeqCst);
    }

    fn release(&self) {}

    fn pin_ops(&self) -> Option<&dyn PinOps> {
        Some(self)
    }
}

impl PinOps for Mover {
    fn pin(&self, _attach: &Attachment) -> KResult<()> {
        Ok(())
    }
    fn unpin(&self, _attach: &Attachment) {}
}

#[test]
fn a_region_unmaps_at_move_notify_and_maps_the_new_place_at_its_next_use() {
    let machine = Machine::default_machine().unwrap();
    let (kernel, fabric) = (machine.kernel().clone(), machine.fabric().clone());
    let host = fabric.host_memory().clone();
    let first = kernel.frames().alloc(SIZE, true).unwrap()[0];
    let second = kernel.frames().alloc(SIZE, true).unwrap()[0];
    let at = Arc::new(Mutex::new(first));
    let counts = Arc::new(Counts::default());
    let buf = machine
        .dmabuf()
        .export(ExportInfo {
            exp_name: "mover".to_owned(),
            ops: Box::new(Mover {
                fabric: fabric.clone(),
                at: at.clone(),
                counts: counts.clone(),
            }),
            size: SIZE,
            flags: OpenFlags::RDWR,
            resv: None,
        })
        .unwrap();
    let maps = || counts.maps.load(Ordering::SeqCst);
    let unmaps = || counts.unmaps.load(Ordering::SeqCst);

    let p = machine.process("mover-test");
    let fd = kernel
        .with_task(p.pid(), |t| buf.fd(t, OpenFlags::RDWR))
        .unwrap();
    let imp = Importer::open(&p, 0).unwrap();
    let mr = imp
        .reg_dmabuf_mr(fd, 0, SIZE, 0, Attach::PeerToPeer)
        .unwrap();
    assert_eq!((maps(), unmaps()), (1, 0), "mapped at registration");

    let user = p.mmap_anon(4096).unwrap();
    p.write_mem(user, b"before the move").unwrap();
    imp.write_to_mr(mr, user, 15, 0).unwrap();
    let mut seen = [0u8; 15];
    host.read(first.start.raw(), &mut seen).unwrap();
    assert_eq!(&seen, b"before the move");

    // The exporter moves the buffer: copies it to new pages and tells its importers,
    // under the buffer's lock; the old pages are scribbled over.
    {
        let guard = buf.resv().lock(None).unwrap();
        let mut bytes = vec![0u8; SIZE as usize];
        host.read(first.start.raw(), &mut bytes).unwrap();
        host.write(second.start.raw(), &bytes).unwrap();
        *lock(&at) = second;
        buf.move_notify(&guard).unwrap();
        host.fill(first.start.raw(), SIZE, 0xee).unwrap();
    }
    assert_eq!(
        (maps(), unmaps()),
        (1, 1),
        "the importer gave its mapping back at move_notify"
    );

    p.write_mem(user, b"after").unwrap();
    imp.write_to_mr(mr, user, 5, 4096).unwrap();
    assert_eq!((maps(), unmaps()), (2, 1), "mapped again at the next use");
    let mut seen = [0u8; 5];
    host.read(second.start.raw() + 4096, &mut seen).unwrap();
    assert_eq!(&seen, b"after", "the write went to the new place");

    let back = p.mmap_anon(4096).unwrap();
    imp.read_from_mr(mr, back, 15, 0).unwrap();
    let mut seen = [0u8; 15];
    p.read_mem(back, &mut seen).unwrap();
    assert_eq!(&seen, b"before the move", "the moved contents read back");

    imp.dereg_mr(mr).unwrap();
    assert_eq!((maps(), unmaps()), (2, 2), "deregistration unmapped");
    assert!(buf.attached_devices().is_empty());
}

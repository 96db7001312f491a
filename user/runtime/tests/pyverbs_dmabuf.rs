//! Port of rdma-core's dma-buf memory-region tests (`tests/test_mr.py`: `DmaBufMRTest`
//! and `DmaBufTestCase`) with dma-bufs exported from SG1 HBM by the SG1 driver
//! (habanalabs semantics) instead of DRM GEM objects, and of the `reg_dmabuf_mr` error
//! contract (`reference/rdma-verbs-and-roce.md` §1.2), one test per error.
//!
//! As in pyverbs, client and server are two contexts on one device (`nic0`, whose
//! loopback carries the traffic); `nic0` shares switch `sw0` with `accel0` and
//! `accel1`, so it imports their HBM peer-to-peer. The client's buffers are in
//! `accel0`'s HBM, the server's in `accel1`'s. A region is registered as `DmaBufMR`
//! does: `iova = offset`. Exported HBM is not CPU-mappable, so buffers are filled and
//! checked through the SG1's DMA, where pyverbs writes through a DRM mapping.
//!
//! Differences: the access combinations include the empty set and all five flags
//! (pyverbs takes subsets of 1 to 4 flags); lengths and flags come from a seeded
//! generator; every test also checks that a registration, once refused or
//! deregistered, leaves no attachment behind and lets the export be closed and the
//! memory freed. Tests ending in `_pinned` run on a NIC without on-demand paging
//! (dma-bufs pinned at registration), the others on the default NIC (dynamic import).

mod common_rdma;

use common_rdma::{
    Flavour, HbmDmaBuf, Rand, Side, assert_cq_empty, assert_flavour, assert_hbm_all_free, machine,
    machine_builder, rc_pair,
};

use sagrada::Machine;
use sagrada::accel::Device;
use sagrada::fabric::TopologyConfig;
use sagrada::verbs::{
    ConnectAttr, Context, MemoryRegion, Mtu, RecvWr, SendWr, WcOpcode, WcStatus, WorkCompletion,
    access,
};
use sagrada_kernel_rdma::uapi::{Destroy, RDMA_DEREG_MR};
use sagrada_sys::{Errno, Fd, OpenFlags};

const LW: u32 = access::LOCAL_WRITE;
const RW: u32 = access::REMOTE_WRITE;
const RR: u32 = access::REMOTE_READ;
const RA: u32 = access::REMOTE_ATOMIC;
const RO: u32 = access::RELAXED_ORDERING;

/// pyverbs' `MAX_MR_SIZE`: region lengths are drawn below it.
const MAX_MR_SIZE: u64 = 4 << 20;

/// pyverbs' `get_dmabuf_access_flags`: every subset of the dma-buf flags in which
/// remote write and remote atomic come with local write.
fn legal_access_flags() -> Vec<u32> {
    let bits = [LW, RW, RR, RA, RO];
    (0u32..1 << bits.len())
        .map(|m| {
            bits.iter()
                .enumerate()
                .filter(|&(i, _)| m >> i & 1 == 1)
                .fold(0, |acc, (_, &b)| acc | b)
        })
        .filter(|f| f & (RW | RA) == 0 || f & LW != 0)
        .collect()
}

/// pyverbs' `get_mr_length`, never zero.
fn mr_length(rand: &mut Rand) -> u64 {
    rand.range(1, MAX_MR_SIZE)
}

// ---------------------------------------------------------------- DmaBufMRTest

/// `test_dmabuf_reg_mr`: each legal access combination at offsets 0, len/2 and len of
/// a dma-buf of 2·len bytes registers, with the keys and address libibverbs reports.
fn dmabuf_reg_mr(flavour: Flavour) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let dev = Device::open(&p, 0).unwrap();
    let ctx = Context::open(&p, 0u32).unwrap();
    assert_flavour(&ctx, flavour);
    let mut rand = Rand(0xd3ab_0f00_0001);
    let flags = legal_access_flags();
    assert_eq!(flags.len(), 20);
    for f in flags {
        let len = mr_length(&mut rand);
        let buf = HbmDmaBuf::new(&dev, 2 * len);
        for offset in [0, len / 2, len] {
            let what = format!("access {f:#x}, offset {offset:#x}, length {len:#x}");
            let pd = ctx.alloc_pd().unwrap();
            let mr = pd
                .reg_dmabuf_mr(offset, len, offset, buf.fd, f)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_ne!(mr.lkey(), 0, "{what}");
            if f & access::REMOTE == 0 {
                assert_eq!(mr.rkey(), 0, "{what}: no remote access, no rkey");
            } else {
                // The key is both (rxe's rule, the NIC's programming manual).
                assert_eq!(mr.rkey(), mr.lkey(), "{what}");
            }
            assert_eq!((mr.addr(), mr.length()), (offset, len), "{what}");
            assert_eq!(buf.attachments(), 1, "{what}");
            mr.dereg().unwrap();
            pd.dealloc().unwrap();
            assert_eq!(buf.attachments(), 0, "{what}: deregistered");
        }
        buf.release().unwrap();
    }
    assert_hbm_all_free(&dev);
}

#[test]
fn test_dmabuf_reg_mr() {
    dmabuf_reg_mr(Flavour::Odp);
}

#[test]
fn test_dmabuf_reg_mr_pinned() {
    dmabuf_reg_mr(Flavour::Pinned);
}

/// `test_dmabuf_dereg_mr` (and `_twice`): registers each legal combination at offsets
/// 0 and len/2 and closes the region (`twice`: closes it again, a no-op).
fn dmabuf_dereg_mr(flavour: Flavour, twice: bool) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let dev = Device::open(&p, 0).unwrap();
    let ctx = Context::open(&p, 0u32).unwrap();
    assert_flavour(&ctx, flavour);
    let mut rand = Rand(0xd3ab_0f00_0002);
    for f in legal_access_flags() {
        let len = mr_length(&mut rand);
        let buf = HbmDmaBuf::new(&dev, len + len / 2);
        for offset in [0, len / 2] {
            let what = format!("access {f:#x}, offset {offset:#x}, length {len:#x}");
            let mut pd = ctx.alloc_pd().unwrap();
            let mut mr = pd.reg_dmabuf_mr(offset, len, offset, buf.fd, f).unwrap();
            let handle = mr.handle();
            mr.close().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(buf.attachments(), 0, "{what}: deregistered");
            if twice {
                mr.close()
                    .unwrap_or_else(|e| panic!("{what}: second close: {e}"));
                // The library knows the region is gone; the kernel refuses the stale
                // handle.
                assert_eq!(
                    raw_dereg(&ctx, handle),
                    Err(Errno::EINVAL),
                    "{what}: DEREG_MR of a deregistered handle"
                );
            }
            pd.close().unwrap();
        }
        buf.release().unwrap();
    }
    assert_hbm_all_free(&dev);
}

/// `RDMA_DEREG_MR` of `handle`, straight through the uAPI.
fn raw_dereg(ctx: &Context<'_>, handle: u32) -> Result<(), Errno> {
    let mut d = Destroy { handle, pad: 0 };
    ctx.process()
        .ioctl_with(ctx.fd(), RDMA_DEREG_MR, &mut d)
        .map(drop)
}

#[test]
fn test_dmabuf_dereg_mr() {
    dmabuf_dereg_mr(Flavour::Odp, false);
}

#[test]
fn test_dmabuf_dereg_mr_pinned() {
    dmabuf_dereg_mr(Flavour::Pinned, false);
}

#[test]
fn test_dmabuf_dereg_mr_twice() {
    dmabuf_dereg_mr(Flavour::Odp, true);
}

#[test]
fn test_dmabuf_dereg_mr_twice_pinned() {
    dmabuf_dereg_mr(Flavour::Pinned, true);
}

/// Beyond pyverbs: a region keeps its dma-buf alive after the fd is closed (the SG1
/// driver still refuses to free exported memory), and its deregistration lets the
/// buffer go, so the memory can be freed.
fn dmabuf_dereg_mr_after_close(flavour: Flavour) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let dev = Device::open(&p, 0).unwrap();
    let ctx = Context::open(&p, 0u32).unwrap();
    let pd = ctx.alloc_pd().unwrap();
    let buf = HbmDmaBuf::new(&dev, 1 << 20);
    let mr = pd.reg_dmabuf_mr(0, 1 << 20, 0, buf.fd, LW | RW).unwrap();
    p.close(buf.fd).unwrap();
    assert_eq!(dev.free(buf.mem), Err(Errno::EINVAL), "exported memory");
    mr.dereg().unwrap();
    dev.free(buf.mem)
        .expect("the last reference to the dma-buf went with the region");
    assert_hbm_all_free(&dev);
}

#[test]
fn test_dmabuf_dereg_mr_after_the_fd_is_closed_releases_the_buffer() {
    dmabuf_dereg_mr_after_close(Flavour::Odp);
}

#[test]
fn test_dmabuf_dereg_mr_after_the_fd_is_closed_releases_the_buffer_pinned() {
    dmabuf_dereg_mr_after_close(Flavour::Pinned);
}

// ---------------------------------------------------------------- the error contract

/// The arguments of one `ibv_reg_dmabuf_mr`.
#[derive(Clone, Copy, Debug)]
struct Reg {
    offset: u64,
    length: u64,
    iova: u64,
    fd: Fd,
    access: u32,
}

impl Reg {
    /// `length` bytes at `offset` of `fd`, as pyverbs registers them (iova = offset).
    fn at(fd: Fd, offset: u64, length: u64, access: u32) -> Self {
        Reg {
            offset,
            length,
            iova: offset,
            fd,
            access,
        }
    }
}

/// Registers `r` in a fresh PD and expects `errno`; then checks that the refusal held
/// on to nothing: `buf` (if any) has no attachment and the PD can go.
fn assert_refused(ctx: &Context<'_>, r: Reg, errno: Errno, buf: Option<&HbmDmaBuf<'_, '_>>) {
    let mut pd = ctx.alloc_pd().unwrap();
    let got = pd.reg_dmabuf_mr(r.offset, r.length, r.iova, r.fd, r.access);
    assert_eq!(
        got.map(|mr| mr.handle()).map_err(|e| e.errno),
        Err(errno),
        "{r:x?}"
    );
    if let Some(buf) = buf {
        assert_eq!(buf.attachments(), 0, "{r:x?}: refused, yet attached");
    }
    pd.close()
        .unwrap_or_else(|e| panic!("{r:x?}: the refused registration kept the PD: {e}"));
}

/// Registers `r` in a fresh PD, expecting success; deregisters it.
fn assert_registers(ctx: &Context<'_>, r: Reg) {
    let pd = ctx.alloc_pd().unwrap();
    let mr = pd
        .reg_dmabuf_mr(r.offset, r.length, r.iova, r.fd, r.access)
        .unwrap_or_else(|e| panic!("{r:x?}: {e}"));
    mr.dereg().unwrap();
    pd.dealloc().unwrap();
}

/// Bytes of the dma-buf the error cases register in.
const BUF: u64 = 64 << 10;

/// Runs `check` with a context on `nic0` and a [`BUF`]-byte export of `accel0` HBM, then
/// checks that the export can be closed and its memory freed.
fn with_export(m: &Machine, check: impl FnOnce(&Context<'_>, &HbmDmaBuf<'_, '_>)) {
    let p = m.process("pyverbs");
    let dev = Device::open(&p, 0).unwrap();
    let ctx = Context::open(&p, 0u32).unwrap();
    let buf = HbmDmaBuf::new(&dev, BUF);
    check(&ctx, &buf);
    assert_eq!(buf.attachments(), 0);
    buf.release().unwrap();
    assert_hbm_all_free(&dev);
}

#[test]
fn test_dmabuf_reg_mr_without_driver_support_is_eopnotsupp() {
    let m = Machine::builder(&TopologyConfig::default_machine())
        .rdma_dmabuf_mr(false)
        .build()
        .unwrap();
    with_export(&m, |ctx, buf| {
        // pyverbs skips on this errno ("Reg dma-buf MR is not supported").
        assert_refused(
            ctx,
            Reg::at(buf.fd, 0, BUF, LW),
            Errno::EOPNOTSUPP,
            Some(buf),
        );
        // Before any other check.
        assert_refused(ctx, Reg::at(-1, 0, 0, RW), Errno::EOPNOTSUPP, Some(buf));
    });
}

#[test]
fn test_dmabuf_reg_mr_page_offset_of_iova_differing_from_offset_is_einval() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        for (offset, iova) in [(0, 0x800), (0x1010, 0x2020), (0x1000, 0x1001), (0x10, 0)] {
            let r = Reg {
                iova,
                ..Reg::at(buf.fd, offset, 0x1000, LW)
            };
            assert_refused(ctx, r, Errno::EINVAL, Some(buf));
        }
        // Only the offset in the page has to agree.
        let r = Reg {
            iova: 0x7_0010,
            ..Reg::at(buf.fd, 0x1010, 0x1000, LW)
        };
        assert_registers(ctx, r);
    });
}

#[test]
fn test_dmabuf_reg_mr_access_outside_the_dmabuf_flags_is_einval() {
    // The default NIC has on-demand paging, and still ON_DEMAND is no dma-buf flag.
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        for bad in [
            access::MW_BIND,
            access::ON_DEMAND,
            access::ZERO_BASED,
            access::HUGETLB,
            1 << 8,
            1 << 21,
            1 << 31,
        ] {
            assert_refused(
                ctx,
                Reg::at(buf.fd, 0, BUF, LW | bad),
                Errno::EINVAL,
                Some(buf),
            );
        }
    });
}

#[test]
fn test_dmabuf_reg_mr_remote_write_without_local_write_is_einval() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        for f in [RW, RW | RR, RW | RO, RA, RA | RR | RW] {
            assert_refused(ctx, Reg::at(buf.fd, 0, BUF, f), Errno::EINVAL, Some(buf));
        }
    });
}

#[test]
fn test_dmabuf_reg_mr_zero_length_is_einval() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        for offset in [0, 0x1000, BUF] {
            assert_refused(
                ctx,
                Reg::at(buf.fd, offset, 0, LW),
                Errno::EINVAL,
                Some(buf),
            );
        }
    });
}

#[test]
fn test_dmabuf_reg_mr_beyond_the_end_of_the_buffer_is_einval() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        for (offset, length) in [(0, BUF + 1), (0x1000, BUF), (BUF, 1), (BUF - 1, 2)] {
            let r = Reg::at(buf.fd, offset, length, LW);
            assert_refused(ctx, r, Errno::EINVAL, Some(buf));
        }
        // The last byte is in.
        assert_registers(ctx, Reg::at(buf.fd, 0, BUF, LW));
        assert_registers(ctx, Reg::at(buf.fd, BUF - 1, 1, LW));
    });
}

#[test]
fn test_dmabuf_reg_mr_offset_plus_length_overflowing_is_einval() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        // The first wraps to 0x1000, which the buffer would hold.
        for (offset, length) in [(!0xfffu64, 0x2000), (1 << 63, 1 << 63), (u64::MAX, 1)] {
            let r = Reg::at(buf.fd, offset, length, LW);
            assert_refused(ctx, r, Errno::EINVAL, Some(buf));
        }
    });
}

#[test]
fn test_dmabuf_reg_mr_fd_minus_one_is_ebadf() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        assert_refused(ctx, Reg::at(-1, 0, BUF, LW), Errno::EBADF, Some(buf));
        // A number that is no open fd either.
        let p = ctx.process();
        let closed = p.dup(buf.fd).unwrap();
        p.close(closed).unwrap();
        assert_refused(ctx, Reg::at(closed, 0, BUF, LW), Errno::EBADF, Some(buf));
    });
}

/// NCCL's probe for dma-buf support: `ibv_reg_dmabuf_mr(pd, 0, 0, 0, -1, 0)` fails with
/// `EBADF` where the driver has it (`EOPNOTSUPP` where not).
#[test]
fn test_dmabuf_reg_mr_nccl_probe_is_ebadf() {
    with_export(&machine(Flavour::Odp), |ctx, _| {
        assert_refused(ctx, Reg::at(-1, 0, 0, 0), Errno::EBADF, None);
    });
}

#[test]
fn test_dmabuf_reg_mr_fd_that_is_not_a_dmabuf_is_einval() {
    with_export(&machine(Flavour::Odp), |ctx, buf| {
        let p = ctx.process();
        let accel = Device::open(p, 1).unwrap();
        let sw_sync = p
            .open(
                sagrada_kernel_dmabuf::uapi::SW_SYNC_DEV_PATH,
                OpenFlags::RDWR,
            )
            .unwrap();
        for fd in [ctx.fd(), accel.fd(), sw_sync] {
            assert_refused(ctx, Reg::at(fd, 0, BUF, LW), Errno::EINVAL, Some(buf));
        }
        p.close(sw_sync).unwrap();
    });
}

/// `nic1` sits on a root port of its own: the exporter refuses it peer-to-peer
/// (`EPERM` from `map_dma_buf`) when the host bridge is not whitelisted. The failed
/// registration detaches, unpins (pinned NIC) and lets the export go.
fn p2p_across_the_root_complex_refused(flavour: Flavour) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let nic1 = Context::open(&p, 1u32).unwrap();
    assert_flavour(&nic1, flavour);
    for accel in [0, 1] {
        let dev = Device::open(&p, accel).unwrap();
        let buf = HbmDmaBuf::new(&dev, BUF);
        for f in [0, LW, LW | RW | RR | RA] {
            let r = Reg::at(buf.fd, 0, BUF, f);
            assert_refused(&nic1, r, Errno::EPERM, Some(&buf));
        }
        buf.release()
            .unwrap_or_else(|e| panic!("accel{accel}: the export cannot go: {e}"));
        assert_hbm_all_free(&dev);
    }
    // nic0, under the switch, takes the same buffers.
    let nic0 = Context::open(&p, 0u32).unwrap();
    let dev = Device::open(&p, 0).unwrap();
    let buf = HbmDmaBuf::new(&dev, BUF);
    assert_registers(&nic0, Reg::at(buf.fd, 0, BUF, LW | RW));
}

#[test]
fn test_dmabuf_reg_mr_p2p_refused_by_the_exporter_is_eperm() {
    p2p_across_the_root_complex_refused(Flavour::Odp);
}

#[test]
fn test_dmabuf_reg_mr_p2p_refused_by_the_exporter_is_eperm_pinned() {
    p2p_across_the_root_complex_refused(Flavour::Pinned);
}

/// With the host bridge on the p2pdma whitelist, `nic1` imports `accel0` and `accel1`
/// HBM through the root complex, and an RDMA WRITE on `nic1` lands in it.
#[test]
fn test_dmabuf_reg_mr_p2p_through_a_whitelisted_host_bridge() {
    let mut config = TopologyConfig::default_machine();
    config.set_p2p_whitelist("hb0", true).unwrap();
    let m = Machine::new(&config).unwrap();
    let p = m.process("pyverbs");
    let attr = ConnectAttr {
        access: LW | RW,
        ..ConnectAttr::default()
    };
    let (client, server) = rc_pair(&p, 1, &attr);
    let (acc0, acc1) = (Device::open(&p, 0).unwrap(), Device::open(&p, 1).unwrap());
    let cbuf = HbmDmaBuf::new(&acc0, BUF);
    let sbuf = HbmDmaBuf::new(&acc1, BUF);
    let cmr = client.pd.reg_dmabuf_mr(0, BUF, 0, cbuf.fd, LW).unwrap();
    let smr = server
        .pd
        .reg_dmabuf_mr(0, BUF, 0, sbuf.fd, LW | RW)
        .unwrap();
    let data: Vec<u8> = (0..BUF).map(|i| (i * 13 + 1) as u8).collect();
    cbuf.write(0, &data);
    let wr = SendWr::write(1, &[cmr.sge(0, BUF as u32)], smr.iova(), smr.rkey()).signaled();
    client.qp.post_send(&[wr]).unwrap();
    expect(client.poll_one(), 1, WcOpcode::RdmaWrite, BUF as u32);
    assert_same(
        &sbuf.read(0, BUF as usize),
        &data,
        "accel1 HBM after the WRITE",
    );
    for (mr, buf) in [(cmr, cbuf), (smr, sbuf)] {
        mr.dereg().unwrap();
        assert_eq!(buf.attachments(), 0);
        buf.release().unwrap();
    }
}

/// `test_dmabuf_reg_mr_bad_flags`: 5 random non-empty subsets of {REMOTE_WRITE,
/// REMOTE_ATOMIC} without local write, random lengths ("Failed to register a dma-buf
/// MR").
#[test]
fn test_dmabuf_reg_mr_bad_flags() {
    let m = machine(Flavour::Odp);
    let p = m.process("pyverbs");
    let dev = Device::open(&p, 0).unwrap();
    let ctx = Context::open(&p, 0u32).unwrap();
    let mut rand = Rand(0xd3ab_0f00_0003);
    for _ in 0..5 {
        let f = [RW, RA, RW | RA][rand.range(0, 3) as usize];
        let len = mr_length(&mut rand);
        let buf = HbmDmaBuf::new(&dev, len);
        assert_refused(&ctx, Reg::at(buf.fd, 0, len, f), Errno::EINVAL, Some(&buf));
        buf.release().unwrap();
    }
    assert_hbm_all_free(&dev);
}

/// Beyond pyverbs, which only registers: a region at an offset inside a page of the
/// dma-buf, crossing pages, with an iova in another page (same offset in the page),
/// takes an RDMA WRITE of its whole length at exactly its bytes of HBM; a WRITE one
/// byte past its end is a remote access error and lands nowhere.
fn dmabuf_mr_at_an_offset(flavour: Flavour) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let dev = Device::open(&p, 0).unwrap();
    let attr = ConnectAttr {
        access: LW | RW,
        ..ConnectAttr::default()
    };
    let (client, server) = rc_pair(&p, 0, &attr);
    assert_flavour(&client.ctx, flavour);
    let buf = HbmDmaBuf::new(&dev, 8 * 4096);
    let (offset, len, iova) = (0x2234u64, 0x3010u64, 0x7_0234u64);
    let before = vec![0xeeu8; buf.size as usize];
    buf.write(0, &before);
    let smr = server
        .pd
        .reg_dmabuf_mr(offset, len, iova, buf.fd, LW | RW)
        .unwrap();
    assert_eq!((smr.addr(), smr.iova()), (offset, iova));
    let src = sagrada::verbs::HostBuffer::new(&p, len + 1).unwrap();
    let data: Vec<u8> = (0..=len).map(|i| (i * 7 + 1) as u8 | 1).collect();
    src.write(0, &data).unwrap();
    let cmr = client.pd.reg_mr(src.ptr(), len + 1, LW).unwrap();

    let wr = SendWr::write(1, &[cmr.sge(0, len as u32)], iova, smr.rkey());
    client.qp.post_send(&[wr.signaled()]).unwrap();
    expect(client.poll_one(), 1, WcOpcode::RdmaWrite, len as u32);
    let mut want = before.clone();
    want[offset as usize..(offset + len) as usize].copy_from_slice(&data[..len as usize]);
    assert_same(
        &buf.read(0, buf.size as usize),
        &want,
        "HBM after the WRITE",
    );

    let wr = SendWr::write(2, &[cmr.sge(len, 1)], iova + len, smr.rkey());
    client.qp.post_send(&[wr.signaled()]).unwrap();
    let wc = client.poll_one();
    assert_eq!((wc.wr_id, wc.status), (2, WcStatus::RemAccessErr), "{wc:?}");
    assert_same(
        &buf.read(0, buf.size as usize),
        &want,
        "HBM after the WRITE past the end",
    );
}

#[test]
fn test_dmabuf_mr_at_an_offset_writes_its_own_bytes() {
    dmabuf_mr_at_an_offset(Flavour::Odp);
}

#[test]
fn test_dmabuf_mr_at_an_offset_writes_its_own_bytes_pinned() {
    dmabuf_mr_at_an_offset(Flavour::Pinned);
}

// ---------------------------------------------------------------- DmaBufTestCase

/// Asserts a successful completion of work request `wr_id`.
fn expect(wc: WorkCompletion, wr_id: u64, opcode: WcOpcode, byte_len: u32) {
    assert_eq!(
        (wc.wr_id, wc.status, wc.opcode, wc.byte_len),
        (wr_id, WcStatus::Success, opcode, byte_len),
        "{wc:?}"
    );
}

/// Asserts `got == want`, naming the first byte that differs.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: byte {i} is {:#04x}, not {:#04x}", got[i], want[i]);
    }
}

/// pyverbs' `DmaBufRC` players: client and server on `nic0` (QP access LW|RW), each
/// with a `msg_size` region (LW|RW, offset 0, iova 0) on a dma-buf of its own SG1's
/// HBM: the client's on `accel0`, the server's on `accel1`.
struct DmaBufPlayers<'d, 'p> {
    client: Side<'p>,
    server: Side<'p>,
    cmr: MemoryRegion<'p>,
    smr: MemoryRegion<'p>,
    cbuf: HbmDmaBuf<'d, 'p>,
    sbuf: HbmDmaBuf<'d, 'p>,
}

fn dmabuf_players<'d, 'p>(
    p: &'p sagrada_sys::Process,
    flavour: Flavour,
    acc0: &'d Device<'p>,
    acc1: &'d Device<'p>,
    msg_size: u64,
    mtu: Mtu,
) -> DmaBufPlayers<'d, 'p> {
    let attr = ConnectAttr {
        access: LW | RW,
        path_mtu: mtu,
        ..ConnectAttr::default()
    };
    let (client, server) = rc_pair(p, 0, &attr);
    assert_flavour(&client.ctx, flavour);
    let cbuf = HbmDmaBuf::new(acc0, msg_size);
    let sbuf = HbmDmaBuf::new(acc1, msg_size);
    let cmr = client
        .pd
        .reg_dmabuf_mr(0, msg_size, 0, cbuf.fd, LW | RW)
        .unwrap();
    let smr = server
        .pd
        .reg_dmabuf_mr(0, msg_size, 0, sbuf.fd, LW | RW)
        .unwrap();
    DmaBufPlayers {
        client,
        server,
        cmr,
        smr,
        cbuf,
        sbuf,
    }
}

/// `test_dmabuf_rc_traffic` (`u.traffic`): per iteration the client SENDs `'c' *
/// msg_size` into the server's posted receive, then the server SENDs `'s' *
/// msg_size` back; each side's buffer is checked after it received.
fn dmabuf_rc_traffic(flavour: Flavour, msg_size: u64, mtu: Mtu, iters: u64) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let (acc0, acc1) = (Device::open(&p, 0).unwrap(), Device::open(&p, 1).unwrap());
    let t = dmabuf_players(&p, flavour, &acc0, &acc1, msg_size, mtu);
    let len = msg_size as u32;
    let (c_msg, s_msg) = (vec![b'c'; len as usize], vec![b's'; len as usize]);
    let recv = |side: &Side<'_>, mr: &MemoryRegion<'_>, id| {
        side.qp
            .post_recv(&[RecvWr::new(id, &[mr.sge(0, len)])])
            .unwrap();
    };
    recv(&t.client, &t.cmr, 0);
    recv(&t.server, &t.smr, 0);
    for i in 0..iters {
        t.cbuf.write(0, &c_msg);
        t.client
            .qp
            .post_send(&[SendWr::send(i, &[t.cmr.sge(0, len)]).signaled()])
            .unwrap();
        expect(t.client.poll_one(), i, WcOpcode::Send, len);
        expect(t.server.poll_one(), i, WcOpcode::Recv, len);
        recv(&t.server, &t.smr, i + 1);
        assert_same(
            &t.sbuf.read(0, len as usize),
            &c_msg,
            &format!("server, iteration {i}"),
        );

        t.sbuf.write(0, &s_msg);
        t.server
            .qp
            .post_send(&[SendWr::send(i, &[t.smr.sge(0, len)]).signaled()])
            .unwrap();
        expect(t.server.poll_one(), i, WcOpcode::Send, len);
        expect(t.client.poll_one(), i, WcOpcode::Recv, len);
        recv(&t.client, &t.cmr, i + 1);
        assert_same(
            &t.cbuf.read(0, len as usize),
            &s_msg,
            &format!("client, iteration {i}"),
        );
    }
    assert_cq_empty(&t.client.cq);
    assert_cq_empty(&t.server.cq);
}

#[test]
fn test_dmabuf_rc_traffic() {
    dmabuf_rc_traffic(Flavour::Odp, 1024, Mtu::Mtu1024, 100);
}

#[test]
fn test_dmabuf_rc_traffic_pinned() {
    dmabuf_rc_traffic(Flavour::Pinned, 1024, Mtu::Mtu1024, 100);
}

/// A message of ten MTUs: FIRST, MIDDLE and LAST packets into HBM.
#[test]
fn test_dmabuf_rc_traffic_multi_packet_message() {
    dmabuf_rc_traffic(Flavour::Odp, 10_000, Mtu::Mtu1024, 100);
}

#[test]
fn test_dmabuf_rc_traffic_multi_packet_message_pinned() {
    dmabuf_rc_traffic(Flavour::Pinned, 10_000, Mtu::Mtu1024, 100);
}

/// `test_dmabuf_rdma_traffic` (`u.rdma_traffic` with RDMA WRITE): per iteration the
/// client WRITEs `'c' * msg_size` into the server's region, checked at the server,
/// then the server WRITEs `'s' * msg_size` into the client's, checked at the client.
fn dmabuf_rdma_traffic(flavour: Flavour, msg_size: u64, mtu: Mtu, iters: u64) {
    let m = machine(flavour);
    let p = m.process("pyverbs");
    let (acc0, acc1) = (Device::open(&p, 0).unwrap(), Device::open(&p, 1).unwrap());
    let t = dmabuf_players(&p, flavour, &acc0, &acc1, msg_size, mtu);
    let len = msg_size as u32;
    let (c_msg, s_msg) = (vec![b'c'; len as usize], vec![b's'; len as usize]);
    for i in 0..iters {
        t.cbuf.write(0, &c_msg);
        let wr = SendWr::write(i, &[t.cmr.sge(0, len)], t.smr.iova(), t.smr.rkey());
        t.client.qp.post_send(&[wr.signaled()]).unwrap();
        expect(t.client.poll_one(), i, WcOpcode::RdmaWrite, len);
        assert_same(
            &t.sbuf.read(0, len as usize),
            &c_msg,
            &format!("server, iteration {i}"),
        );

        t.sbuf.write(0, &s_msg);
        let wr = SendWr::write(i, &[t.smr.sge(0, len)], t.cmr.iova(), t.cmr.rkey());
        t.server.qp.post_send(&[wr.signaled()]).unwrap();
        expect(t.server.poll_one(), i, WcOpcode::RdmaWrite, len);
        assert_same(
            &t.cbuf.read(0, len as usize),
            &s_msg,
            &format!("client, iteration {i}"),
        );
    }
    // A WRITE consumes no receive and completes nothing at the target.
    assert_cq_empty(&t.client.cq);
    assert_cq_empty(&t.server.cq);
}

/// Beyond pyverbs, the peer-to-peer path: the payload of a WRITE from `accel0` HBM to
/// `accel1` HBM never touches host DRAM (only the work request and the completion do:
/// a few hundred bytes, whatever the message size). The exporter maps HBM into the
/// NIC's IOMMU domain (`dma_map_resource`, as habanalabs does), so the translated
/// requests go up to the root complex and back down; with the driver's option to map
/// peers under the same switch by bus address, they stay under the switch.
fn dmabuf_write_path(flavour: Flavour, bus_addr: bool) {
    let m = machine_builder(flavour)
        .p2p_bus_addr(bus_addr)
        .build()
        .unwrap();
    let p = m.process("pyverbs");
    let (acc0, acc1) = (Device::open(&p, 0).unwrap(), Device::open(&p, 1).unwrap());
    let len = 64 << 10;
    let t = dmabuf_players(&p, flavour, &acc0, &acc1, len, Mtu::Mtu4096);
    let data: Vec<u8> = (0..len).map(|i| (i * 11 + 5) as u8).collect();
    t.cbuf.write(0, &data);
    let before = m.fabric().counters();
    let wr = SendWr::write(1, &[t.cmr.sge(0, len as u32)], t.smr.iova(), t.smr.rkey());
    t.client.qp.post_send(&[wr.signaled()]).unwrap();
    expect(t.client.poll_one(), 1, WcOpcode::RdmaWrite, len as u32);
    let c = m.fabric().counters().since(&before);
    assert!(
        c.host_dram_read_bytes + c.host_dram_write_bytes < 1024,
        "{c:?}"
    );
    let through_root = if bus_addr { 0 } else { 2 * len };
    assert_eq!(c.root_complex_p2p_bytes, through_root, "{c:?}");
    assert_same(&t.sbuf.read(0, len as usize), &data, "accel1 HBM");
}

#[test]
fn test_dmabuf_rdma_write_payload_never_touches_host_dram() {
    dmabuf_write_path(Flavour::Odp, false);
}

#[test]
fn test_dmabuf_rdma_write_payload_never_touches_host_dram_pinned() {
    dmabuf_write_path(Flavour::Pinned, false);
}

#[test]
fn test_dmabuf_rdma_write_payload_stays_under_the_switch_with_bus_addresses() {
    dmabuf_write_path(Flavour::Odp, true);
}

#[test]
fn test_dmabuf_rdma_traffic() {
    dmabuf_rdma_traffic(Flavour::Odp, 1024, Mtu::Mtu1024, 100);
}

#[test]
fn test_dmabuf_rdma_traffic_pinned() {
    dmabuf_rdma_traffic(Flavour::Pinned, 1024, Mtu::Mtu1024, 100);
}

#[test]
fn test_dmabuf_rdma_traffic_multi_packet_message() {
    dmabuf_rdma_traffic(Flavour::Odp, 10_000, Mtu::Mtu1024, 100);
}

#[test]
fn test_dmabuf_rdma_traffic_multi_packet_message_pinned() {
    dmabuf_rdma_traffic(Flavour::Pinned, 10_000, Mtu::Mtu1024, 100);
}

//! One test per error path of `MEM_OP_EXPORT_DMABUF_FD` and of importing the buffer
//! (the derived negative tests NEG-1 to NEG-11 of `reference/habanalabs-dmabuf-p2p.md`
//! §6.2, for the 6.x uAPI with the 2023 alignment rules). Each failure returns the errno
//! and writes `out_fd = -EBADF`.

mod common;

use common::{MB, machine};
use sagrada::Machine;
use sagrada::accel::{Device, DeviceMemory};
use sagrada::importer::{Attach, Importer};
use sagrada_kernel_accel::uapi::*;
use sagrada_kernel_core::{MapFlags, NOFILE, Prot};
use sagrada_sys::{Errno, OpenFlags, Process};

/// The raw ioctl, to see `out_fd`.
fn export_raw(
    p: &Process,
    dev: &Device<'_>,
    addr: u64,
    size: u64,
    offset: u64,
) -> (Result<i64, Errno>, i32) {
    let mut a = MemArgs {
        op: MEM_OP_EXPORT_DMABUF_FD,
        flags: OpenFlags::RDWR.union(OpenFlags::CLOEXEC).0,
        addr,
        size,
        offset,
        ..Default::default()
    };
    let r = p.ioctl_with(dev.fd(), SG1_IOCTL_MEMORY, &mut a);
    (r, a.out_fd)
}

fn refused(p: &Process, dev: &Device<'_>, addr: u64, size: u64, offset: u64) -> Errno {
    let (r, fd) = export_raw(p, dev, addr, size, offset);
    assert_eq!(fd, -Errno::EBADF.raw(), "out_fd on failure");
    r.unwrap_err()
}

fn with_device(f: impl FnOnce(&Machine, &Process, &Device<'_>, DeviceMemory)) {
    let m = machine();
    let p = m.process("neg");
    let dev = Device::open(&p, 0).unwrap();
    let mem = dev.alloc(4 * MB, false).unwrap();
    f(&m, &p, &dev, mem);
}

#[test]
fn an_unaligned_address_is_einval() {
    with_device(|_, p, dev, mem| assert_eq!(refused(p, dev, mem.va + 8, 4096, 0), Errno::EINVAL));
}

#[test]
fn a_zero_or_partial_page_size_is_einval() {
    with_device(|_, p, dev, mem| {
        assert_eq!(refused(p, dev, mem.va, 0, 0), Errno::EINVAL);
        assert_eq!(refused(p, dev, mem.va, 4095, 0), Errno::EINVAL);
        assert_eq!(refused(p, dev, mem.va, 4096 + 1, 0), Errno::EINVAL);
    });
}

#[test]
fn an_unaligned_offset_is_einval() {
    with_device(|_, p, dev, mem| assert_eq!(refused(p, dev, mem.va, 4096, 100), Errno::EINVAL));
}

#[test]
fn a_range_beyond_the_allocation_or_wrapping_is_einval() {
    with_device(|_, p, dev, mem| {
        assert_eq!(refused(p, dev, mem.va, mem.size + 4096, 0), Errno::EINVAL);
        assert_eq!(
            refused(p, dev, mem.va, 8192, mem.size - 4096),
            Errno::EINVAL
        );
        assert_eq!(
            refused(p, dev, mem.va, 4096, u64::MAX - 4095),
            Errno::EINVAL
        );
    });
}

#[test]
fn an_address_that_is_not_the_start_of_a_device_mapping_is_einval() {
    with_device(|_, p, dev, mem| {
        assert_eq!(
            refused(p, dev, mem.va + 2 * MB, 4096, 0),
            Errno::EINVAL,
            "inside, not the start"
        );
        assert_eq!(
            refused(p, dev, 0x4000_0000_0000, 4096, 0),
            Errno::EINVAL,
            "nothing mapped there"
        );
        let host = dev.host_alloc(8192).unwrap();
        assert_eq!(
            refused(p, dev, host.va, 4096, 0),
            Errno::EINVAL,
            "host memory cannot be exported"
        );
    });
}

#[test]
fn another_contexts_address_is_einval() {
    with_device(|_, p, _dev, mem| {
        let other = Device::open(p, 0).unwrap();
        assert_eq!(refused(p, &other, mem.va, 4096, 0), Errno::EINVAL);
    });
}

#[test]
fn a_nonzero_handle_field_is_einval() {
    with_device(|_, p, dev, mem| {
        let mut a = MemArgs {
            op: MEM_OP_EXPORT_DMABUF_FD,
            addr: mem.va,
            size: 4096,
            handle: 1 << 32,
            ..Default::default()
        };
        assert_eq!(
            p.ioctl_with(dev.fd(), SG1_IOCTL_MEMORY, &mut a),
            Err(Errno::EINVAL)
        );
        assert_eq!(a.out_fd, -Errno::EBADF.raw());
    });
}

#[test]
fn unmap_and_free_are_refused_while_exported() {
    with_device(|m, p, dev, mem| {
        let fd = dev.export_dmabuf(&mem, 0, mem.size).unwrap();
        let importer = Importer::open(p, 0).unwrap();
        let mr = importer
            .reg_dmabuf_mr(fd, 0, mem.size, 0, Attach::PeerToPeer)
            .unwrap();
        assert_eq!(dev.unmap(mem.va), Err(Errno::EINVAL));
        let mut free = MemArgs {
            op: MEM_OP_FREE,
            handle: mem.handle,
            ..Default::default()
        };
        assert_eq!(
            p.ioctl_with(dev.fd(), SG1_IOCTL_MEMORY, &mut free),
            Err(Errno::EINVAL)
        );
        p.close(fd).unwrap();
        assert_eq!(
            dev.unmap(mem.va),
            Err(Errno::EINVAL),
            "the importer's region still holds the buffer"
        );
        importer.dereg_mr(mr).unwrap();
        dev.free(mem)
            .expect("free succeeds once the dma-buf is released");
        let _ = m;
    });
}

#[test]
fn mmap_of_an_exported_dmabuf_fails() {
    with_device(|_, p, dev, mem| {
        let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
        assert_eq!(
            p.mmap(fd, 4096, Prot::READ, MapFlags::SHARED, 0),
            Err(Errno::EINVAL)
        );
    });
}

#[test]
fn a_static_importer_gets_eperm() {
    with_device(|_, p, dev, mem| {
        let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
        let importer = Importer::open(p, 0).unwrap();
        assert_eq!(
            importer.reg_dmabuf_mr(fd, 0, 4096, 0, Attach::Static),
            Err(Errno::EPERM)
        );
    });
}

#[test]
fn an_importer_without_allow_peer2peer_gets_eperm() {
    with_device(|_, p, dev, mem| {
        let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
        let importer = Importer::open(p, 0).unwrap();
        assert_eq!(
            importer.reg_dmabuf_mr(fd, 0, 4096, 0, Attach::NoPeerToPeer),
            Err(Errno::EPERM)
        );
    });
}

#[test]
fn an_importer_behind_a_non_whitelisted_root_complex_gets_eperm() {
    with_device(|_, p, dev, mem| {
        let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
        let far = Importer::open(p, 1).unwrap();
        assert_eq!(
            far.reg_dmabuf_mr(fd, 0, 4096, 0, Attach::PeerToPeer),
            Err(Errno::EPERM)
        );
    });
}

#[test]
fn an_importer_behind_a_whitelisted_root_complex_is_accepted() {
    let mut config = sagrada_hw_fabric::TopologyConfig::default_machine();
    config.set_p2p_whitelist("hb0", true).unwrap();
    let m = Machine::new(&config).unwrap();
    let p = m.process("neg");
    let dev = Device::open(&p, 0).unwrap();
    let mem = dev.alloc(2 * MB, false).unwrap();
    let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
    let far = Importer::open(&p, 1).unwrap();
    far.reg_dmabuf_mr(fd, 0, 4096, 0, Attach::PeerToPeer)
        .unwrap();
}

#[test]
fn closing_the_device_keeps_exported_memory_until_the_dmabuf_is_released() {
    let m = machine();
    let owner = m.process("owner");
    let dev = Device::open(&owner, 0).unwrap();
    let mem = dev.alloc(4 * MB, false).unwrap();
    let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
    let usage = |d: &Device<'_>| d.query::<DramUsage>(INFO_DRAM_USAGE).unwrap();
    let before = usage(&dev);
    let user = m.process("user");
    let theirs = owner.send_fd(fd, &user).unwrap();
    owner.close(fd).unwrap();
    dev.close().unwrap();
    let probe = Device::open(&user, 0).unwrap();
    assert_eq!(
        usage(&probe).free,
        before.free,
        "the exported memory is still held"
    );
    let importer = Importer::open(&user, 0).unwrap();
    let mr = importer
        .reg_dmabuf_mr(theirs, 0, 4096, 0, Attach::PeerToPeer)
        .expect("the buffer still imports");
    importer.dereg_mr(mr).unwrap();
    user.close(theirs).unwrap();
    assert_eq!(
        usage(&probe).free,
        before.free + mem.size,
        "released with the last reference"
    );
}

#[test]
fn a_full_fd_table_fails_the_export_without_leaking_it() {
    with_device(|_, p, dev, mem| {
        let mut fds = Vec::new();
        while let Ok(fd) = p.dup(dev.fd()) {
            fds.push(fd);
        }
        assert_eq!(
            fds.len() + 1,
            NOFILE,
            "the device fd and its duplicates fill the table"
        );
        let (r, out) = export_raw(p, dev, mem.va, 4096, 0);
        assert_eq!((r, out), (Err(Errno::EMFILE), -Errno::EBADF.raw()));
        for fd in fds {
            p.close(fd).unwrap();
        }
        dev.free(mem).expect("no export is left behind");
    });
}

#[test]
fn hard_reset_is_refused_while_memory_is_exported() {
    with_device(|_, _p, dev, mem| {
        let fd = dev.export_dmabuf(&mem, 0, 4096).unwrap();
        assert_eq!(dev.reset(true), Err(Errno::EBUSY));
        dev.process().close(fd).unwrap();
        dev.reset(true)
            .expect("allowed once the export is released");
    });
}

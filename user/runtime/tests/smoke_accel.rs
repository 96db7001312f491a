use sagrada::Machine;
use sagrada::accel::{DMA0, Device};
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};

#[test]
fn probe_binds_every_sg1_and_a_nop_completes() {
    let m = Machine::default_machine().unwrap();
    assert_eq!(m.probe_errors().len(), 0, "{:?}", m.probe_errors());
    assert_eq!(m.accels().len(), 4);
    let p = m.process("smoke");
    let dev = Device::open(&p, 0).unwrap();
    assert_eq!(dev.info().fw_major, 1);
    let out = dev.run(DMA0, &[Packet::Nop]).unwrap();
    println!("{out:?}");
    out.ok().unwrap();
    let host = dev.host_alloc(1 << 20).unwrap();
    let mem = dev.alloc(4 << 20, false).unwrap();
    p.write_mem(host.ptr, b"hello hbm").unwrap();
    dev.copy(mem.va, host.va, 4096, DmaDir::HostToDevice)
        .unwrap();
    dev.copy(host.va + 8192, mem.va, 4096, DmaDir::DeviceToHost)
        .unwrap();
    let mut back = [0u8; 9];
    p.read_mem(host.ptr.checked_add(8192).unwrap(), &mut back)
        .unwrap();
    assert_eq!(&back, b"hello hbm");
}

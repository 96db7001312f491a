//! The demo's RDMA section: the system of the seed thread, whole. accel0 computes a
//! result in its HBM, exports it as a dma-buf, and nic0 (on accel0's switch) registers
//! it; accel3's HBM is registered the same way on nic1 (on accel3's switch); one RDMA
//! WRITE moves the result over the cable between the NICs, from HBM to HBM, and accel3
//! holds it. The fabric's counters show that no payload byte went through host DRAM;
//! then the same transfer along the bounce path, side by side.

use anyhow::{Context as _, Result, bail};
use sagrada::accel::{Device, DeviceMemory};
use sagrada::kernel::{Args, ElemKind, Kernel, Tensor};
use sagrada::verbs::{ConnectAttr, Context, Mtu, QpInitAttr, SendWr, access, qp_cap, rc_connect};
use sagrada::{Machine, Process};
use sagrada_hw_fabric::Fabric;
use sagrada_hw_rnic::Counter;

use crate::rdma_pair::{DST_ACCEL, SRC_ACCEL, compare_paths, print_paths, wait};

const SAXPY: &str = include_str!("../../../kernels/saxpy.s");

/// Elements computed and moved: 4 MiB of f32.
const N: usize = 1 << 20;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn name(fabric: &Fabric, dev: sagrada_hw_fabric::DeviceId) -> String {
    fabric.function(dev).name.clone()
}

/// Runs the section on a machine of `config` whose SG1 driver maps peers under the
/// same switch by bus address (the p2pdma way), so the payload stays in the switches.
pub fn run(config: &sagrada_hw_fabric::TopologyConfig) -> Result<()> {
    let machine = &Machine::builder(config).p2p_bus_addr(true).build()?;
    let p: Process = machine.process("rdma-demo");
    let fabric = machine.fabric();
    let dev0 = Device::open(&p, SRC_ACCEL).context("cannot open /dev/accel/accel0")?;
    let dev3 = Device::open(&p, DST_ACCEL).context("cannot open /dev/accel/accel3")?;

    // 1. Compute on accel0.
    let kernel = Kernel::assemble(&dev0, SAXPY, "kernels/saxpy.s")?;
    let alpha = 0.5f32;
    let x: Vec<f32> = (0..N).map(|i| (i % 4096) as f32).collect();
    let y: Vec<f32> = (0..N).map(|i| (i / 4096) as f32).collect();
    let upload = |v: &[f32]| -> Result<(DeviceMemory, Tensor)> {
        let mem = dev0.alloc((v.len() * 4) as u64, false)?;
        dev0.upload(mem.va, &f32_bytes(v))?;
        let t = Tensor::new(&mem, ElemKind::F32, &[v.len() as u32])?;
        Ok((mem, t))
    };
    let ((_, tx), (src, ty)) = (upload(&x)?, upload(&y)?);
    let size = (N * 4) as u64;
    dev0.run_kernel(
        &kernel,
        &[N.div_ceil(64) as u32],
        &Args::new().arg(alpha).arg(tx).arg(ty),
    )?;
    println!(
        "[user]   accel0: y = {alpha} * x + y over {N} f32 on the compute cores (kernels/saxpy.s): 4 MiB result in HBM at VA {:#x}",
        ty.va
    );

    // 2. Export it and register it on nic0; registers accel3's HBM on nic1.
    let fd0 = dev0.export_dmabuf(&src, 0, size)?;
    let dst = dev3.alloc(size, false)?;
    let fd3 = dev3.export_dmabuf(&dst, 0, size)?;
    let c0 = Context::open(&p, 0u32).context("cannot open /dev/infiniband/uverbs0")?;
    let c1 = Context::open(&p, 1u32).context("cannot open /dev/infiniband/uverbs1")?;
    let (pd0, pd1) = (c0.alloc_pd()?, c1.alloc_pd()?);
    let mr0 = pd0.reg_dmabuf_mr(0, size, 0, fd0, access::LOCAL_WRITE)?;
    let mr1 = pd1.reg_dmabuf_mr(0, size, 0, fd3, access::LOCAL_WRITE | access::REMOTE_WRITE)?;
    let (nic0, nic1) = (machine.rnics()[0].device(), machine.rnics()[1].device());
    let (a0, a3) = (
        fabric.find("accel0").context("accel0")?,
        fabric.find("accel3").context("accel3")?,
    );
    println!(
        "[user]   accel0: EXPORT_DMABUF_FD -> fd {fd0}; uverbs0 ({}): ibv_reg_dmabuf_mr(fd {fd0}) -> lkey {:#x}",
        name(fabric, nic0),
        mr0.lkey()
    );
    println!(
        "[user]   accel3: ALLOC 4 MiB, EXPORT_DMABUF_FD -> fd {fd3}; uverbs1 ({}): ibv_reg_dmabuf_mr(fd {fd3}, REMOTE_WRITE) -> rkey {:#x}",
        name(fabric, nic1),
        mr1.rkey()
    );
    for (exp, imp) in [(a0, nic0), (a3, nic1)] {
        let d = fabric.p2pdma_distance(exp, imp);
        println!(
            "[kernel] {} attaches {}'s dma-buf: pci_p2pdma_distance = {:?}, {}; the sg table holds {}'s BAR pages mapped for {}, no CPU pages; the NIC's page list is built from it",
            name(fabric, imp),
            name(fabric, exp),
            d.map_type,
            d.reason,
            name(fabric, exp),
            name(fabric, imp)
        );
    }
    // The regions hold their dma-bufs: the fds can go.
    p.close(fd0)?;
    p.close(fd3)?;

    // 3. Connect and write.
    let (ch0, cq0) = {
        let ch = c0.create_comp_channel()?;
        let cq = c0.create_cq(16, Some(&ch), 0)?;
        (ch, cq)
    };
    let cq1 = c1.create_cq(16, None, 0)?;
    let cap = qp_cap(4, 4, 1, 1, 0);
    let qp0 = pd0.create_qp(&QpInitAttr::rc(&cq0, &cq0, cap))?;
    let qp1 = pd1.create_qp(&QpInitAttr::rc(&cq1, &cq1, cap))?;
    let attr = ConnectAttr {
        path_mtu: Mtu::Mtu4096,
        ..ConnectAttr::default()
    };
    rc_connect(&qp0, &qp1, &attr)?;
    println!(
        "[user]   RC QP {:#x} on nic0 and {:#x} on nic1: RESET -> INIT -> RTR -> RTS, path MTU 4096",
        qp0.qp_num(),
        qp1.qp_num()
    );
    let before = fabric.counters();
    let nic_before: Vec<(u64, u64)> = machine
        .rnics()
        .iter()
        .map(|n| {
            (
                n.counter(Counter::TxPackets),
                n.counter(Counter::DmaWriteBytes),
            )
        })
        .collect();
    qp0.post_send(&[
        SendWr::write(1, &[mr0.sge(0, size as u32)], mr1.iova(), mr1.rkey()).signaled(),
    ])
    .map_err(|e| anyhow::anyhow!("ibv_post_send: {e}"))?;
    wait(&cq0, &ch0, 1, std::time::Duration::from_secs(60))?;
    let delta = fabric.counters().since(&before);
    let n0 = &machine.rnics()[0];
    let n1 = &machine.rnics()[1];
    println!(
        "[user]   ibv_post_send(RDMA WRITE 4 MiB, lkey {:#x} -> rkey {:#x}) ... ibv_poll_cq: success",
        mr0.lkey(),
        mr1.rkey()
    );
    println!(
        "[hw]     nic0 read accel0's HBM through sw0 and sent {} RoCEv2 packets; nic1 wrote {} payload bytes straight into accel3's HBM through sw1",
        n0.counter(Counter::TxPackets) - nic_before[0].0,
        n1.counter(Counter::DmaWriteBytes) - nic_before[1].1
    );
    for l in delta.links.iter().filter(|l| l.up_bytes + l.down_bytes > 0) {
        println!(
            "           link {:<28} {:>9} B up, {:>9} B down",
            fabric.link_name(l.link),
            l.up_bytes,
            l.down_bytes
        );
    }
    println!(
        "           host DRAM: {} B read, {} B written by devices (the work request and its completion); root complex p2p: {} B",
        delta.host_dram_read_bytes, delta.host_dram_write_bytes, delta.root_complex_p2p_bytes
    );
    if delta.host_dram_read_bytes + delta.host_dram_write_bytes >= size {
        bail!("the p2p transfer went through host DRAM");
    }

    // 4. Check on accel3.
    let mut bytes = vec![0u8; size as usize];
    dev3.download(dst.va, &mut bytes)?;
    for (i, b) in bytes.chunks_exact(4).enumerate() {
        let got = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let want = alpha * x[i] + y[i];
        if got.to_bits() != want.to_bits() {
            bail!("accel3 holds {got} at element {i}; accel0 computed {want}");
        }
    }
    println!("[user]   accel3: DMA to host and compare: the {N} results are accel0's, bit for bit");
    drop((qp0, qp1));

    // 5. Against the bounce path.
    println!();
    let pattern = bytes;
    let rows = compare_paths(machine, &p, &dev0, &dev3, &pattern)?;
    print_paths(size, &rows);
    Ok(())
}

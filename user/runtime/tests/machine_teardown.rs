//! Tearing a [`Machine`] down: every process of its kernel exits first, so the SG1
//! driver closes each context while the devices still run (its submissions complete),
//! and only then do the device models stop. In the other order a context closes on a
//! stopped device: the driver waits out its close timeout for a completion that cannot
//! come, then resets a dead device.
//!
//! The submissions left in flight carry an out-fence, which the test keeps (as kernel
//! code would, with `fget`) to read after the machine is gone: signalled without error
//! means the work ran to completion during teardown; a close that timed out would have
//! left it unsignalled, or cancelled it with the reset.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{MB, machine};
use sagrada::Machine;
use sagrada::accel::{CsOutcome, DMA0, DMA1, Device};
use sagrada::sync::SyncFile;
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};
use sagrada_kernel_core::{File, Kernel};
use sagrada_sys::{Errno, OpenFlags, Process};

/// Bytes of each copy, and copies per queue: device work that takes the engines long
/// enough (tens of ms of host time) to still be running when the machine drops right
/// after it was submitted.
const COPY: u64 = 64 * MB;
const COPIES: usize = 4;

/// Opens `accel0` in `p`, submits copies on both DMA engines without waiting, and
/// returns the submission's out-fence (the kernel's file, not an fd of `p`).
fn submit_in_flight_work(m: &Machine, p: &Process) -> Arc<File> {
    let dev = Device::open(p, 0).unwrap();
    let src = dev.alloc(COPY, false).unwrap();
    let dst = dev.alloc(COPY, false).unwrap();
    let copies = vec![
        Packet::LinDma {
            src: src.va,
            dst: dst.va,
            size: COPY,
            dir: DmaDir::DeviceToDevice,
        };
        COPIES
    ];
    let (seq, fence) = dev
        .submit(&[(DMA0, &copies), (DMA1, &copies)], true)
        .unwrap();
    assert_eq!(
        dev.wait(seq, Duration::ZERO).unwrap(),
        CsOutcome::Busy,
        "the work is still running when the machine drops"
    );
    // The Device is dropped without closing its fd: the process still holds it.
    m.kernel().fget(p.pid(), fence.unwrap()).unwrap()
}

/// The fence's status as SYNC_IOC_FILE_INFO reports it (1 signalled, 0 active, a
/// negative errno for an error), read through a process started on the kernel that
/// outlives its machine.
fn fence_status(kernel: &Arc<Kernel>, fence: Arc<File>) -> i32 {
    let observer = Process::spawn(kernel, "observer");
    let fd = kernel
        .with_task(observer.pid(), |task| task.fd_install(fence, false))
        .unwrap();
    let (_, status, _) = SyncFile::from_fd(&observer, fd).info().unwrap();
    status
}

#[test]
fn dropping_a_machine_lets_work_in_flight_complete_before_the_devices_stop() {
    let m = machine();
    let kernel = m.kernel().clone();
    let p = m.process("app");
    let fence = submit_in_flight_work(&m, &p);
    drop(p);

    drop(m);

    assert_eq!(kernel.pids(), Vec::<u32>::new(), "every process exited");
    assert_eq!(
        fence_status(&kernel, fence),
        1,
        "the work completed: no close timed out and no reset cancelled it"
    );
}

#[test]
fn a_process_handle_that_outlives_its_machine_finds_its_process_exited() {
    let m = machine();
    let kernel = m.kernel().clone();
    let p = m.process("app");
    let child = p.fork().unwrap();
    let fence = submit_in_flight_work(&m, &p);

    drop(m);

    assert_eq!(kernel.pids(), Vec::<u32>::new(), "the fork exited too");
    assert_eq!(fence_status(&kernel, fence), 1);
    for handle in [&p, &child] {
        assert_eq!(handle.mmap_anon(4096), Err(Errno::ESRCH));
        assert_eq!(
            handle.open("/dev/accel/accel0", OpenFlags::RDWR),
            Err(Errno::ESRCH)
        );
    }
    assert_eq!(p.exit(), Err(Errno::ESRCH));
}

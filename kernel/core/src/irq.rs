//! Interrupts: the host's interrupt controller.
//!
//! Devices raise interrupts as messages (MSI): a dword written into the fabric's
//! interrupt window. A driver asks for a vector with [`Kernel::request_irq`], programs
//! the returned address and data into its device, and its handler runs when the device
//! writes them. Handlers run on the thread of the device that raised the interrupt, like
//! a hard-IRQ handler: they must be short and must not block (wake a waiter, signal a
//! fence, queue work).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sagrada_hw_fabric::{InterruptSink, MSI_BASE};

use crate::errno::{Errno, KResult};
use crate::kernel::Kernel;
use crate::wait::lock;

/// A registered interrupt handler.
pub type IrqHandler = Arc<dyn Fn() + Send + Sync>;

/// Vectors below this are reserved (x86 exceptions).
const FIRST_VECTOR: u32 = 32;
/// One past the last vector.
const LAST_VECTOR: u32 = 256;

/// What a device must write to raise an interrupt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MsiMessage {
    /// The vector.
    pub vector: u32,
    /// The address the device writes (inside the fabric's interrupt window).
    pub address: u64,
    /// The dword it writes there.
    pub data: u32,
}

struct Vector {
    name: String,
    handler: IrqHandler,
    count: AtomicU64,
}

/// One line of `/proc/interrupts`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IrqStat {
    /// Vector number.
    pub vector: u32,
    /// The name the driver gave.
    pub name: String,
    /// Interrupts delivered.
    pub count: u64,
}

/// The interrupt controller's state.
#[derive(Default)]
pub(crate) struct Irqs {
    vectors: std::sync::Mutex<BTreeMap<u32, Arc<Vector>>>,
    spurious: AtomicU64,
}

impl fmt::Debug for Irqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Irqs")
            .field("vectors", &lock(&self.vectors).len())
            .finish()
    }
}

impl Irqs {
    fn dispatch(&self, addr: u64, data: u32) {
        let vector = (addr == MSI_BASE)
            .then(|| lock(&self.vectors).get(&data).cloned())
            .flatten();
        match vector {
            Some(v) => {
                v.count.fetch_add(1, Ordering::Relaxed);
                (v.handler)();
            }
            None => {
                self.spurious.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("spurious interrupt: {data:#x} written to {addr:#x}");
            }
        }
    }
}

/// The kernel side of the fabric's interrupt window.
pub(crate) struct Controller(pub(crate) std::sync::Weak<Kernel>);

impl InterruptSink for Controller {
    fn msi(&self, addr: u64, data: u32) {
        if let Some(kernel) = self.0.upgrade() {
            kernel.irqs.dispatch(addr, data);
        }
    }
}

impl Kernel {
    /// `request_irq`: allocates a vector whose interrupts run `handler`. `ENOSPC` when
    /// every vector is taken.
    pub fn request_irq(&self, name: &str, handler: IrqHandler) -> KResult<MsiMessage> {
        let mut vectors = lock(&self.irqs.vectors);
        let vector = (FIRST_VECTOR..LAST_VECTOR)
            .find(|v| !vectors.contains_key(v))
            .ok_or(Errno::ENOSPC)?;
        vectors.insert(
            vector,
            Arc::new(Vector {
                name: name.to_owned(),
                handler,
                count: AtomicU64::new(0),
            }),
        );
        Ok(MsiMessage {
            vector,
            address: MSI_BASE,
            data: vector,
        })
    }

    /// `free_irq`: later messages for the vector count as spurious.
    pub fn free_irq(&self, vector: u32) -> KResult<()> {
        lock(&self.irqs.vectors)
            .remove(&vector)
            .map(drop)
            .ok_or(Errno::EINVAL)
    }

    /// `/proc/interrupts`: every vector with its count.
    pub fn interrupts(&self) -> Vec<IrqStat> {
        lock(&self.irqs.vectors)
            .iter()
            .map(|(&vector, v)| IrqStat {
                vector,
                name: v.name.clone(),
                count: v.count.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Interrupt messages no vector claimed.
    pub fn spurious_interrupts(&self) -> u64 {
        self.irqs.spurious.load(Ordering::Relaxed)
    }
}

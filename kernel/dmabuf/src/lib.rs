//! The Linux dma-buf framework, modelled: dma-buf, attachments and sg tables,
//! dma-fence (with arrays, chains and unwrap/merge), dma-resv, sync_file, sw_sync, the
//! system dma-heap, and debugfs `bufinfo`.
//!
//! Baseline: Linux 7.0 as specified in `shared/reference/dmabuf-framework.md` §1–5 and
//! §7. Where behaviour changed across versions, this model takes:
//! - `dma_fence_signal` returns nothing; `check_and_signal` reports "already signalled";
//!   fence names read "detached-driver"/"signaled-timeline" after signalling; contexts
//!   start at 1 (0 is the stubs').
//! - Waits use the default wait (a zero timeout only tests); there are no signals, so
//!   interruptible waits are never interrupted.
//! - sg tables are never cached (v6.15+); a static importer of a dynamic exporter pins
//!   at map time; the map/unmap locking convention of v6.2+; `move_notify` is the
//!   (mandatory) dynamic importer callback of ≤ v7.0.
//! - `IMPORT_SYNC_FILE` adds each leaf fence; `FILE_INFO` with `num_fences == 0`
//!   reports `dma_fence_get_status`; closing a sw_sync timeline signals its pending
//!   fences with `-ENOENT`; `SET_NAME` is allowed while attached.
//! - `dma_resv_add_fence` replaces an entry the new fence is later than *or equal to*
//!   (newer kernels), and reservations do not survive an unlock (as with
//!   `CONFIG_DEBUG_MUTEXES`).
//!
//! Deliberately left out: sysfs statistics (removed in 7.0), tracepoints, deadlines
//! beyond recording them, the v7.1 revoke API, and the `CONFIG_DMABUF_DEBUG` sg-table
//! copy (an [`SgTable`] never carries CPU pages in the first place). Locking is the
//! model's own where Linux uses spinlocks and RCU; see [`fence`] for the one visible
//! consequence (callbacks run without the fence lock).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dmabuf;
pub mod fence;
pub mod fence_array;
pub mod fence_chain;
pub mod fence_unwrap;
pub mod heap;
pub mod resv;
pub mod sw_sync;
mod sync;
pub mod sync_file;
pub mod uapi;
pub mod ww_mutex;

use std::sync::Arc;

pub use dmabuf::{
    Attachment, CpuAccessOps, DmaBuf, DmaBufOps, DmaBufRegistry, ExportInfo, ImporterOps, MmapOps,
    PinOps, SgEntry, SgTable, VMap, VmapOps,
};
pub use fence::{
    CallbackId, DmaFence, Fence, FenceOps, MAX_SCHEDULE_TIMEOUT, NamedOps, Wait, WeakFence,
    context_alloc,
};
pub use fence_array::FenceArray;
pub use fence_chain::FenceChain;
pub use resv::{DmaResv, ResvGuard, Usage};
pub use sync_file::SyncFile;
pub use ww_mutex::WwAcquireCtx;

use sagrada_kernel_core::{CharDevice, Errno, File, FileOps, KResult, Kernel, OpenFlags, Task};

/// `<debugfs>/dma_buf/bufinfo`: a read-only file listing every buffer.
struct BufInfo(Arc<DmaBufRegistry>);

impl CharDevice for BufInfo {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        if flags.access_mode() != OpenFlags::RDONLY {
            return Err(Errno::EACCES);
        }
        Ok(File::new(Arc::new(BufInfoFile(self.0.clone())), flags))
    }
}

struct BufInfoFile(Arc<DmaBufRegistry>);

impl FileOps for BufInfoFile {
    fn name(&self, _file: &File) -> String {
        uapi::BUFINFO_PATH.to_owned()
    }

    fn read(
        &self,
        _task: &Task<'_>,
        _file: &Arc<File>,
        len: usize,
        pos: &mut u64,
    ) -> KResult<Vec<u8>> {
        let text = self.0.bufinfo().into_bytes();
        let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(text.len());
        let end = start.saturating_add(len).min(text.len());
        *pos = end as u64;
        Ok(text[start..end].to_vec())
    }
}

/// Installs the framework in a kernel: the system heap, the sw_sync device (at its
/// debugfs path and at `/dev/sw_sync`) and `bufinfo`. Returns the registry exporters
/// use.
pub fn install(kernel: &Kernel) -> KResult<Arc<DmaBufRegistry>> {
    let registry = DmaBufRegistry::new(kernel);
    kernel.register_device(
        uapi::DMA_HEAP_SYSTEM_PATH,
        Arc::new(heap::SystemHeap::new(registry.clone())),
    )?;
    kernel.register_device(uapi::SW_SYNC_PATH, Arc::new(sw_sync::SwSyncDevice))?;
    kernel.register_device(uapi::SW_SYNC_DEV_PATH, Arc::new(sw_sync::SwSyncDevice))?;
    kernel.register_device(uapi::BUFINFO_PATH, Arc::new(BufInfo(registry.clone())))?;
    Ok(registry)
}

//! The Linux dma-buf framework, modelled (baseline: Linux 7.0).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fence;
pub mod fence_array;
pub mod fence_chain;
pub mod fence_unwrap;
mod sync;

pub use fence::{CallbackId, DmaFence, Fence, FenceOps, MAX_SCHEDULE_TIMEOUT, Wait, context_alloc};
pub use fence_array::FenceArray;
pub use fence_chain::FenceChain;

//! The emulated RDMA NIC (placeholder while the model is written).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod wire;

//! The RDMA core and NIC driver (placeholder while it is written).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod uapi;

//! Ports of the kernel's in-tree dma-buf KUnit suites, one module per suite; test names
//! are `suite::case` (with `-` as `_`).

mod dma_buf_resv;

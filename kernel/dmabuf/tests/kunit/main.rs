//! The dma-buf KUnit suites (`CONFIG_DMABUF_KUNIT_TEST`), ported: one module per
//! suite, one test per case, so a test is named `suite::case` as KUnit reports it
//! (`dma-buf-fence.test_signaling` is `dma_buf_fence::test_signaling`; the
//! `dma-buf-resv` cases run once per usage class, `dma_buf_resv::test_signaling::read`).

mod common;
mod dma_buf_fence;
mod dma_buf_fence_chain;
mod dma_buf_fence_unwrap;
mod dma_buf_resv;

//! The kernel's monotonic clock (`ktime_get`).

use std::sync::OnceLock;
use std::time::Instant;

fn boot() -> Instant {
    static BOOT: OnceLock<Instant> = OnceLock::new();
    *BOOT.get_or_init(Instant::now)
}

/// Nanoseconds since the model booted (`CLOCK_MONOTONIC` of the model).
pub fn ktime_get_ns() -> u64 {
    u64::try_from(boot().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The [`Instant`] at which [`ktime_get_ns`] reads `ns`.
pub fn ktime_to_instant(ns: u64) -> Instant {
    boot() + std::time::Duration::from_nanos(ns)
}

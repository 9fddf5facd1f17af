//! Quantiles, units and memory.

/// The `p` quantile (0 to 1) of `sorted`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Nanoseconds as milliseconds.
pub fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// This process's resident set size, in KiB.
pub fn vm_rss_kib() -> u64 {
    registry_notify_testkit::process::proc_status_kib("self", "VmRSS").unwrap_or(0)
}

//! Bounded memory: events queued on disk behind a dead endpoint do not grow the process.
//!
//! The measurement runs in a child process (this test binary, re-run with
//! `DURABLE_MEMORY_CHILD` set) so that its peak RSS (`VmHWM`) is its own. The child builds a
//! real endpoint (filter → durable queue → retry → HTTP) whose URL refuses connections, pushes
//! realistic push events through its sink, checks that all of them are queued, and prints its
//! peak RSS. The queue uses `fsync: always`, so that each call waits for its write: pushed as
//! fast as a loop can, `fsync: interval` would outrun the disk and (by design) drop what does not
//! fit its 8 MiB write buffer, counted. By default 200 000 events (about 130 MB of disk) are queued and the bound is checked
//! both on the peak and on its linear extrapolation to 1 000 000 events; the full 1 000 000 run is
//! `durable_memory_one_million` (`cargo test --release --test durable_memory -- --ignored`).
#![cfg(all(feature = "durable", target_os = "linux"))]

mod support;

use std::time::Duration;

use registry_notify::endpoint::Endpoint;
use registry_notify::queue::{DurableConfig, Fsync, QueueConfig};
use registry_notify::{Batch, Event};
use support::process::proc_status_kib;
use tower::ServiceExt;

const BOUND: u64 = 64 << 20;
const CHILD: &str = "DURABLE_MEMORY_CHILD";

/// `VmHWM` (peak RSS) and `VmRSS` of this process, in bytes.
fn rss() -> (u64, u64) {
    let field = |name: &str| proc_status_kib("self", name).expect("/proc/self/status") * 1024;
    (field("VmHWM"), field("VmRSS"))
}

fn event(i: usize) -> Event {
    support::events::blob_push(i, "library/memory-test")
}

/// The child: queue `n` events, print `hwm baseline_hwm disk_bytes`.
fn child(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (sink, handle) = Endpoint::builder("memory", format!("http://{dead}/events"))
            .max_events(100)
            .queue(QueueConfig {
                capacity: usize::MAX,
                ..QueueConfig::default()
            })
            .durable_queue(
                DurableConfig::new(dir.path())
                    .max_bytes(4 << 30)
                    .fsync(Fsync::Always),
            )
            .build()
            .unwrap()
            .try_spawn()
            .unwrap();
        let (baseline, _) = rss();
        const BATCH: usize = 100;
        for start in (0..n).step_by(BATCH) {
            let batch: Batch = (start..(start + BATCH).min(n)).map(event).collect();
            sink.clone().oneshot(batch).await.unwrap();
        }
        let m = handle.metrics();
        assert_eq!((m.events, m.dropped), (n as u64, 0), "all queued, none dropped");
        assert!(handle.queued() >= n - 100, "queued {} of {n}", handle.queued());
        let disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        let (hwm, now) = rss();
        println!("MEASURE {hwm} {baseline} {now} {disk}");
        handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
    });
}

/// Runs the child for `n` events; returns `(peak, baseline peak, disk bytes)`.
fn measure(n: usize) -> (u64, u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "child_entry_point", "--nocapture", "--test-threads=1"])
        .env(CHILD, n.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("MEASURE ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no measurement in {stdout}"));
    let v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[3])
}

fn check(n: usize) {
    let (peak, baseline, disk) = measure(n);
    let per_event = (peak.saturating_sub(baseline)) as f64 / n as f64;
    let extrapolated = baseline as f64 + per_event * 1_000_000.0;
    eprintln!(
        "{n} events queued: peak RSS {:.1} MiB (baseline {:.1} MiB, {per_event:.2} B/event of RSS), \
         {:.0} B/event on disk; extrapolated to 1M events: {:.1} MiB",
        peak as f64 / 1048576.0,
        baseline as f64 / 1048576.0,
        disk as f64 / n as f64,
        extrapolated / 1048576.0
    );
    assert!(peak < BOUND, "peak RSS {peak} over {BOUND}");
    assert!(
        extrapolated < BOUND as f64,
        "1M events would need {extrapolated} bytes"
    );
}

/// Only does something when re-run by [`measure`].
#[test]
fn child_entry_point() {
    if let Ok(n) = std::env::var(CHILD) {
        child(n.parse().unwrap());
    }
}

#[test]
fn durable_memory_is_bounded() {
    check(200_000);
}

#[test]
#[ignore = "1M events: about 650 MB of disk; run with --ignored (release recommended)"]
fn durable_memory_one_million() {
    check(1_000_000);
}

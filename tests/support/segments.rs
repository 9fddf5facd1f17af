//! Durable queue directories written by the real queue or crafted by hand with the documented
//! format (module docs of `queue::durable`), for the damage and recovery tests.
#![cfg(feature = "durable")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, QueueConfig};
use registry_notify::Batch;
use registry_notify_testkit::events::events;

pub const HANG_GUARD: Duration = Duration::from_secs(60);

pub fn open(dir: &Path) -> DurableQueue {
    DurableQueue::open(&DurableConfig::new(dir), &QueueConfig::default()).unwrap()
}

pub async fn drain(q: &DurableQueue) -> Vec<usize> {
    let mut out = Vec::new();
    while !q.is_empty() {
        let b = tokio::time::timeout(HANG_GUARD, q.next(100))
            .await
            .expect("next hung")
            .expect("queue ended");
        out.extend(b.iter().map(|e| e.id["event-".len()..].parse::<usize>().unwrap()));
        q.ack(b.len());
    }
    out
}

/// Writes events `0..n` with the real queue, in segments of `segment_bytes`.
pub fn write_log(dir: &Path, n: usize, segment_bytes: u64) {
    let q = DurableQueue::open(
        &DurableConfig::new(dir).segment_bytes(segment_bytes),
        &QueueConfig::default(),
    )
    .unwrap();
    for e in events(0, n) {
        q.push(Batch::from(e)).unwrap();
    }
}

pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

pub fn first_of(p: &Path) -> u64 {
    p.file_name().unwrap().to_str().unwrap()[..20].parse().unwrap()
}

pub fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

pub fn header_v2(first: u64) -> Vec<u8> {
    let mut h = b"RNQSEG\x00\x02".to_vec();
    h.extend_from_slice(&first.to_le_bytes());
    let c = crc(&[&h]);
    h.extend_from_slice(&c.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

pub fn record_v2(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut r = vec![0xFF, b'R', b'N', b'Q', b'r', b'e', b'c', 0xFE];
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&crc(&[&len.to_le_bytes(), &seq.to_le_bytes(), payload]).to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(payload);
    r
}

pub fn record_v1(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut r = len.to_le_bytes().to_vec();
    r.extend_from_slice(&crc(&[&len.to_le_bytes(), &seq.to_le_bytes(), payload]).to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(payload);
    r
}

pub fn ack_slot(counter: u64, head: u64) -> Vec<u8> {
    let mut s = b"RNQACK\x00\x01".to_vec();
    s.extend_from_slice(&counter.to_le_bytes());
    s.extend_from_slice(&head.to_le_bytes());
    let c = crc(&[&s]);
    s.extend_from_slice(&c.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s
}

pub fn json(i: usize) -> Vec<u8> {
    serde_json::to_vec(&events(i, i + 1)[0]).unwrap()
}

/// A gap frame: the events `from..to` were never written.
pub fn gap_v2(from: u64, to: u64) -> Vec<u8> {
    let mut gap = vec![0xFF, b'R', b'N', b'Q', b'g', b'a', b'p', 0xFE];
    gap.extend_from_slice(&from.to_le_bytes());
    gap.extend_from_slice(&to.to_le_bytes());
    let c = crc(&[&gap[8..24]]);
    gap.extend_from_slice(&c.to_le_bytes());
    gap.extend_from_slice(&0u32.to_le_bytes());
    gap
}

//! Property tests of the durable queue's recovery against outside input: arbitrary bytes as
//! segment and ack files, random damage among records written by the real writer.
//!
//! Properties: opening never fails or panics; draining `len()` events never hangs (a generous
//! hang guard, never a measure of speed) and yields exactly `len()` events; every record the
//! bytes of the damage do not touch is delivered, in order; every touched record is counted
//! (`corrupt_events`) unless it is the torn tail of the last segment.
//!
//! Seeded and bounded (a few hundred cases, a few seconds). A long run:
//! `PROPTEST_CASES=100000 cargo test --release --all-features --test durable_props`
//! (another seed: `PROPTEST_RNG_SEED=<u64>`).
#![cfg(feature = "durable")]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, QueueConfig};
use registry_notify::Batch;

const HANG_GUARD: Duration = Duration::from_secs(60);
/// Events in the pristine log.
const N: usize = 60;
const MARKER: [u8; 8] = [0xFF, b'R', b'N', b'Q', b'r', b'e', b'c', 0xFE];

/// `cases` cases from a fixed seed (see `support::props::config`).
fn config(cases: u32) -> ProptestConfig {
    support::props::config(cases, 0x0D15_EA5E)
}

/// One segment of the pristine log: its name, bytes, and `(start, end, seq)` of each record.
struct Segment {
    name: String,
    bytes: Vec<u8>,
    records: Vec<(usize, usize, u64)>,
}

/// Events `0..N` written by the real queue in 4 KiB segments, read back into memory.
fn pristine() -> &'static [Segment] {
    static LOG: OnceLock<Vec<Segment>> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = DurableQueue::open(
                &DurableConfig::new(dir.path()).segment_bytes(4 << 10),
                &QueueConfig::default(),
            )
            .unwrap();
            for e in support::events::events(0, N) {
                q.push(Batch::from(e)).unwrap();
            }
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        names.sort();
        let segs: Vec<Segment> = names
            .into_iter()
            .map(|name| {
                let bytes = std::fs::read(dir.path().join(&name)).unwrap();
                let mut records = Vec::new();
                let mut at = 24;
                while at < bytes.len() {
                    assert_eq!(bytes[at..at + 8], MARKER);
                    let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
                    let seq = u64::from_le_bytes(bytes[at + 16..at + 24].try_into().unwrap());
                    records.push((at, at + 24 + len, seq));
                    at += 24 + len;
                }
                Segment { name, bytes, records }
            })
            .collect();
        assert!(segs.len() >= 4, "several segments");
        segs
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Opens the queue in `dir`, drains `len()` events; returns their numbers and the corrupt count.
fn open_and_drain(dir: &Path) -> (Vec<u64>, u64) {
    let rt = runtime();
    let q = DurableQueue::open(&DurableConfig::new(dir), &QueueConfig::default()).expect("opens");
    let n = q.len();
    let got = rt.block_on(async {
        let mut got = Vec::new();
        while got.len() < n {
            let b = tokio::time::timeout(HANG_GUARD, q.next(100))
                .await
                .expect("next hung")
                .expect("queue ended");
            got.extend(b.iter().map(|e| e.id["event-".len()..].parse::<u64>().unwrap()));
            q.ack(b.len());
        }
        got
    });
    assert_eq!(got.len(), n, "exactly the pending count");
    assert!(q.is_empty());
    // Still a working queue.
    q.push(Batch::from(support::events::events(1000, 1001))).unwrap();
    let last = rt.block_on(async {
        tokio::time::timeout(HANG_GUARD, q.next(10))
            .await
            .unwrap()
            .unwrap()
    });
    assert_eq!(last[0].id, "event-1000");
    let corrupt = q.stats().corrupt_events;
    (got, corrupt)
}

fn ack_slot(counter: u64, head: u64) -> Vec<u8> {
    let mut s = b"RNQACK\x00\x01".to_vec();
    s.extend_from_slice(&counter.to_le_bytes());
    s.extend_from_slice(&head.to_le_bytes());
    let c = crc32fast::hash(&s);
    s.extend_from_slice(&c.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s
}

/// A file name: a segment name with an interesting number, or something else.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(7),
            Just(20),
            Just(59),
            Just(60),
            Just(1 << 40),
            Just(i64::MAX as u64),
            Just(u64::MAX),
            any::<u64>()
        ]
        .prop_map(|n| format!("{n:020}.seg")),
        Just("ack".to_owned()),
        Just("42.seg".to_owned()),
        Just("notes.txt".to_owned()),
    ]
}

/// File contents: random bytes, a pristine segment mutated, or a valid header then garbage.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (
            0..4usize,
            proptest::collection::vec((any::<u16>(), 1..=255u8), 0..6),
            any::<u16>()
        )
            .prop_map(|(k, flips, cut)| {
                let segs = pristine();
                let mut b = segs[k % segs.len()].bytes.clone();
                for (at, x) in flips {
                    let i = at as usize % b.len();
                    b[i] ^= x;
                }
                let cut = cut as usize % (b.len() + 1);
                b.truncate(cut.max(b.len() / 2));
                b
            }),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(first, tail)| {
            let mut h = b"RNQSEG\x00\x02".to_vec();
            h.extend_from_slice(&first.to_le_bytes());
            let c = crc32fast::hash(&h);
            h.extend_from_slice(&c.to_le_bytes());
            h.extend_from_slice(&[0; 4]);
            h.extend(tail);
            h
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(c, h)| ack_slot(c, h)),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary files as a queue directory: opening and draining never panic or hang.
    #[test]
    fn arbitrary_files_never_panic_or_hang(files in proptest::collection::vec((name(), contents()), 0..5)) {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let (got, _) = open_and_drain(dir.path());
        let distinct: BTreeSet<u64> = got.iter().copied().collect();
        prop_assert_eq!(distinct.len(), got.len(), "no event twice");
    }

    /// Flipped bytes in the segments of a real log, and stray files beside it: every record no
    /// flipped byte touches is delivered, in order; every touched record is counted as corrupt,
    /// but for the torn tail of the last segment.
    #[test]
    fn damage_costs_only_the_records_it_touches(
        flips in proptest::collection::vec((any::<u16>(), any::<u16>(), 1..=255u8), 0..8),
        strays in proptest::collection::vec((name(), proptest::collection::vec(any::<u8>(), 0..200)), 0..3),
        ack in prop_oneof![Just(None), (0..=N as u64).prop_map(Some), Just(Some(N as u64 + 1000))],
    ) {
        let segs = pristine();
        let dir = tempfile::tempdir().unwrap();
        let mut touched: BTreeSet<u64> = BTreeSet::new();
        let mut data: Vec<Vec<u8>> = segs.iter().map(|s| s.bytes.clone()).collect();
        for &(k, at, x) in &flips {
            let k = k as usize % segs.len();
            let at = at as usize % data[k].len();
            data[k][at] ^= x;
            if let Some(&(_, _, seq)) = segs[k].records.iter().find(|(a, b, _)| *a <= at && at < *b) {
                touched.insert(seq);
            }
        }
        for (s, bytes) in segs.iter().zip(&data) {
            std::fs::write(dir.path().join(&s.name), bytes).unwrap();
        }
        for (name, bytes) in &strays {
            if segs.iter().all(|s| &s.name != name) && name != "ack" {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
        }
        // An ack head within the log is trusted; one far beyond it is not (all delivered again).
        let head = ack.filter(|&h| h <= N as u64).unwrap_or(0);
        if let Some(h) = ack {
            std::fs::write(dir.path().join("ack"), ack_slot(5, h)).unwrap();
        }
        // The torn tail: touched records of the last segment after its last intact one.
        let last = segs.last().unwrap();
        let torn: BTreeSet<u64> = last
            .records
            .iter()
            .rev()
            .map(|r| r.2)
            .take_while(|s| touched.contains(s))
            .collect();

        // A last segment damaged beyond recognition (header and every record) is moved aside:
        // nothing is known of its tail, so an ack head in it is not trusted.
        let header_hit = flips.iter().any(|&(k, at, _)| {
            let k = k as usize % segs.len();
            k + 1 == segs.len() && (at as usize % data[k].len()) < 24
        });
        prop_assume!(!(ack.is_some() && header_hit && torn.len() == last.records.len()));

        let (got, corrupt) = open_and_drain(dir.path());
        prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {:?}", got);
        let got_set: BTreeSet<u64> = got.iter().copied().collect();
        let intact: BTreeSet<u64> = (head..N as u64).filter(|s| !touched.contains(s)).collect();
        prop_assert_eq!(&got_set, &intact, "touched {:?}", touched);
        let counted = touched.iter().filter(|&&s| s >= head && !torn.contains(&s)).count() as u64;
        prop_assert_eq!(corrupt, counted, "touched {:?}, torn {:?}", touched, torn);
    }
}

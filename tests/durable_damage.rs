//! Recovery of damaged and crafted queue directories: a damaged record costs that record only
//! (counted exactly), a damaged segment header costs nothing, files the queue did not write are
//! moved aside as `.corrupt`, a crafted ack file loses nothing, version 1 segments are migrated.
//! Files are built with the documented format (module docs of `queue::durable`).
#![cfg(feature = "durable")]

mod support;

use std::sync::Arc;

use registry_notify::metrics::EndpointMetrics;
use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, QueueConfig};
use registry_notify::{Batch, Event};
use support::events::events;
use support::segments::*;

/// One flipped byte inside a record of the active (last) segment: that record is lost and
/// counted, every later intact record of the segment is delivered.
#[tokio::test]
async fn a_flipped_byte_in_the_active_segment_costs_one_record() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300, 64 << 20);
    let seg = files(dir.path(), ".seg").pop().unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    let at = data.windows(10).position(|w| w == b"\"event-52\"").unwrap();
    data[at + 3] ^= 0x20;
    std::fs::write(&seg, data).unwrap();

    let metrics = Arc::new(EndpointMetrics::new("q", "http://receiver/"));
    let q = open(dir.path()).metrics(metrics.clone());
    assert_eq!(q.len(), 299, "the pending count is exact at open");
    let got = drain(&q).await;
    let want: Vec<usize> = (0..300).filter(|&i| i != 52).collect();
    assert_eq!(got, want);
    let s = q.stats();
    assert_eq!(
        (s.corrupt_events, s.events_lost.corrupt, s.corrupt_tails),
        (1, 1, 0)
    );
    let m = metrics.snapshot();
    assert_eq!((m.events, m.dropped, m.events_lost.corrupt), (300, 1, 1));
    eprintln!(
        "flipped byte in the active segment: {} of 300 delivered, corrupt_events {}",
        got.len(),
        s.corrupt_events
    );
}

/// Damage at the end of a sealed segment is counted exactly (the next segment tells where it
/// starts); a damaged segment header costs no record.
#[tokio::test]
async fn sealed_segments_lose_only_what_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 100, 4 << 10);
    let segs = files(dir.path(), ".seg");
    assert!(segs.len() >= 4);
    // Segment 1: its last record damaged. Segment 2: its header damaged.
    let mut data = std::fs::read(&segs[1]).unwrap();
    let n = data.len();
    data[n - 10] ^= 0x01;
    std::fs::write(&segs[1], data).unwrap();
    let mut data = std::fs::read(&segs[2]).unwrap();
    data[3] ^= 0xFF;
    data[10] ^= 0xFF;
    std::fs::write(&segs[2], data).unwrap();
    let lost = (first_of(&segs[2]) - 1) as usize;

    let q = open(dir.path());
    assert_eq!(q.len(), 99);
    let got = drain(&q).await;
    assert_eq!(got, (0..100).filter(|&i| i != lost).collect::<Vec<_>>());
    assert_eq!(q.stats().corrupt_events, 1);
    assert!(files(dir.path(), ".corrupt").is_empty());
}

/// Stray files named like segments — garbage, or a copy of a real segment under another name —
/// are moved aside; nothing intact is skipped.
#[tokio::test]
async fn stray_files_are_moved_aside_and_skip_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300, 32 << 10);
    let segs = files(dir.path(), ".seg");
    let second = first_of(&segs[1]);
    let strays = [
        format!("{:020}.seg", second + 5),
        format!("{:020}.seg", 400),
        format!("{:020}.seg", 100_000),
        "18446744073709551615.seg".to_owned(),
        "42.seg".to_owned(),
    ];
    std::fs::write(dir.path().join(&strays[0]), vec![0x5A; 1000]).unwrap();
    std::fs::write(dir.path().join(&strays[1]), b"hello, not a segment").unwrap();
    std::fs::copy(&segs[0], dir.path().join(&strays[2])).unwrap(); // header names 0
    std::fs::write(dir.path().join(&strays[3]), header_v2(u64::MAX)).unwrap();
    std::fs::write(dir.path().join(&strays[4]), b"").unwrap();

    let q = open(dir.path());
    assert_eq!(q.len(), 300);
    assert_eq!(drain(&q).await, (0..300).collect::<Vec<_>>());
    assert_eq!(q.stats().corrupt_events, 0);
    let aside: Vec<String> = files(dir.path(), ".corrupt")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = strays.iter().map(|s| format!("{s}.corrupt")).collect();
    want.sort();
    assert_eq!(aside, want);
}

/// A segment torn while it was created (the start of its header, nothing more) is removed,
/// not moved aside: nothing was lost with it.
#[tokio::test]
async fn a_segment_torn_at_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, 32 << 10);
    let torn = dir.path().join(format!("{:020}.seg", 10));
    std::fs::write(&torn, &header_v2(10)[..5]).unwrap();
    let q = open(dir.path());
    assert_eq!(drain(&q).await, (0..10).collect::<Vec<_>>());
    assert!(files(dir.path(), ".corrupt").is_empty(), "nothing set aside");
    assert_eq!(q.stats().corrupt_events, 0);
    drop(q);
    // The queue goes on past it: a new event gets number 10.
    let q = open(dir.path());
    q.push(registry_notify::Batch::from(support::events::event(10, "r")))
        .unwrap();
    assert_eq!(q.len(), 1);
}

/// Files not named like segments (an operator's notes, a backup) are left alone, not moved.
#[tokio::test]
async fn files_not_named_like_segments_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, 32 << 10);
    for name in ["NOTES.txt", "00000000000000000000.seg.bak"] {
        std::fs::write(dir.path().join(name), b"mine").unwrap();
    }
    let q = open(dir.path());
    assert_eq!(drain(&q).await, (0..10).collect::<Vec<_>>());
    for name in ["NOTES.txt", "00000000000000000000.seg.bak"] {
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"mine", "{name}");
    }
    assert!(files(dir.path(), ".corrupt").is_empty());
}

/// Crafted sequence numbers: backwards, contradicting the file name, near `u64::MAX`, absurd
/// lengths. No panic (debug build: no overflow), the crafted file is not trusted.
#[tokio::test]
async fn crafted_sequence_numbers_are_not_trusted() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "backwards",
            [header_v2(20), record_v2(21, &json(1)), record_v2(20, &json(2))].concat(),
        ),
        ("below the name", [header_v2(20), record_v2(3, &json(3))].concat()),
        (
            "header contradicts",
            [header_v2(7), record_v2(20, &json(4))].concat(),
        ),
        (
            "near u64::MAX",
            [
                header_v2(20),
                record_v2(u64::MAX, &json(5)),
                record_v2(u64::MAX - 1, &json(6)),
            ]
            .concat(),
        ),
        ("absurd length", {
            let mut r = [header_v2(20), record_v2(20, &json(7))].concat();
            r[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
            r
        }),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10, 64 << 20);
        std::fs::write(dir.path().join(format!("{:020}.seg", 20)), &bytes).unwrap();
        let q = open(dir.path());
        let got = drain(&q).await;
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "{what}");
        assert_eq!(q.stats().corrupt_events, 0, "{what}: no phantom events");
        // A valid header followed by nothing valid reads as one of ours, damaged: its tail is
        // cut off like a torn write. Anything contradicting the file name is moved aside.
        let aside = usize::from(what != "absurd length");
        assert_eq!(files(dir.path(), ".corrupt").len(), aside, "{what}");
        drop(q);
    }
}

/// A crafted ack file never loses intact records: garbage, a head beyond everything (valid
/// checksum), `u64::MAX`. Once acknowledged again, progress is kept across restarts.
#[tokio::test]
async fn a_crafted_ack_file_loses_nothing() {
    for ack in [
        b"not an ack file at all".to_vec(),
        ack_slot(3, 5000),
        [ack_slot(u64::MAX, u64::MAX), ack_slot(1, 2)].concat(),
        [ack_slot(9, 1 << 62), ack_slot(8, 4)].concat(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10, 64 << 20);
        std::fs::write(dir.path().join("ack"), &ack).unwrap();
        let q = open(dir.path());
        assert_eq!(q.len(), 10, "{ack:?}");
        let b = tokio::time::timeout(HANG_GUARD, q.next(4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.len(), 4);
        q.ack(4);
        q.flush().await;
        drop(q);
        let q = open(dir.path());
        assert_eq!(drain(&q).await, (4..10).collect::<Vec<_>>(), "{ack:?}");
    }
}

/// Version 1 segments (before the markers) are read: an upgraded queue keeps its backlog, in
/// order, and appends new events to a new version 2 segment.
#[tokio::test]
async fn version_1_segments_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    for (first, end) in [(0u64, 5u64), (5, 9)] {
        let mut data = b"RNQSEG\x00\x01".to_vec();
        data.extend_from_slice(&first.to_le_bytes());
        for seq in first..end {
            data.extend(record_v1(seq, &json(seq as usize)));
        }
        std::fs::write(dir.path().join(format!("{first:020}.seg")), data).unwrap();
    }
    std::fs::write(dir.path().join("ack"), [ack_slot(1, 2), ack_slot(0, 0)].concat()).unwrap();
    let q = open(dir.path());
    assert_eq!(q.len(), 7, "events 2..9 of version 1");
    q.push(Batch::from(events(9, 12))).unwrap();
    let b = tokio::time::timeout(HANG_GUARD, q.next(3))
        .await
        .unwrap()
        .unwrap();
    q.ack(b.len());
    q.flush().await;
    drop(q);
    let q = open(dir.path());
    assert_eq!(drain(&q).await, (5..12).collect::<Vec<_>>());
    q.flush().await;
    let left = files(dir.path(), ".seg");
    assert_eq!(
        left.len(),
        1,
        "version 1 segments deleted once delivered: {left:?}"
    );
    assert_eq!(&std::fs::read(&left[0]).unwrap()[..8], b"RNQSEG\x00\x02");
}

/// A segment that was never fsynced and lost its last records in a machine crash is a torn
/// tail: cut off, not counted as lost; a gap frame keeps a write failure from counting as
/// corruption.
#[tokio::test]
async fn gaps_are_declared_and_tails_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = header_v2(0);
    for seq in 0..3 {
        data.extend(record_v2(seq, &json(seq as usize)));
    }
    // Events 3..6 failed to be written; 6 and 7 were written after the gap frame.
    data.extend(gap_v2(3, 6));
    for seq in 6..8 {
        data.extend(record_v2(seq, &json(seq as usize)));
    }
    let torn = record_v2(8, &json(8));
    data.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(dir.path().join(format!("{:020}.seg", 0)), &data).unwrap();
    let q = open(dir.path());
    let s = q.stats();
    assert_eq!((s.corrupt_events, s.corrupt_tails, q.len()), (0, 1, 5));
    q.push(Batch::from(events(100, 101))).unwrap();
    assert_eq!(drain(&q).await, [0, 1, 2, 6, 7, 100]);
}

/// Many pushes and restarts with damage in between never leave the pending count wrong.
#[tokio::test]
async fn pending_stays_exact_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = DurableConfig::new(dir.path()).segment_bytes(4 << 10);
    let mut expected: Vec<usize> = Vec::new();
    for round in 0..5usize {
        let q = DurableQueue::open(&config, &QueueConfig::default()).unwrap();
        assert_eq!(q.len(), expected.len(), "round {round}");
        q.push(Batch::from(events(round * 40, round * 40 + 40))).unwrap();
        expected.extend(round * 40..round * 40 + 40);
        let b: Vec<Event> = tokio::time::timeout(HANG_GUARD, q.next(7))
            .await
            .unwrap()
            .unwrap()
            .iter()
            .cloned()
            .collect();
        q.ack(b.len());
        expected.drain(..b.len());
        q.flush().await;
        drop(q);
        // Damage one record of the oldest segment still there.
        let segs = files(dir.path(), ".seg");
        let mut data = std::fs::read(&segs[0]).unwrap();
        let at = data.len() / 2;
        data[at] ^= 0x10;
        std::fs::write(&segs[0], &data).unwrap();
        let q = DurableQueue::open(&config, &QueueConfig::default()).unwrap();
        let lost = q.stats().corrupt_events as usize;
        assert!(lost <= 1);
        assert_eq!(q.len() + lost, expected.len(), "round {round}");
        let got = drain(&q).await;
        expected.retain(|e| got.contains(e));
        assert_eq!(got, expected);
        drop(q);
        expected.clear();
    }
}

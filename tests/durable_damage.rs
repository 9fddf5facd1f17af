//! Recovery of damaged and crafted queue directories: a damaged record costs that record only
//! (counted exactly), a damaged segment header costs nothing, files the queue did not write are
//! moved aside as `.corrupt`, a crafted ack file loses nothing, version 1 segments are migrated.
//! Files are built with the documented format (module docs of `queue::durable`).
#![cfg(feature = "durable")]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use registry_notify::metrics::EndpointMetrics;
use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, QueueConfig};
use registry_notify::{Batch, Event};
use support::events::events;

const HANG_GUARD: Duration = Duration::from_secs(60);

fn open(dir: &Path) -> DurableQueue {
    DurableQueue::open(&DurableConfig::new(dir), &QueueConfig::default()).unwrap()
}

async fn drain(q: &DurableQueue) -> Vec<usize> {
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
fn write_log(dir: &Path, n: usize, segment_bytes: u64) {
    let q = DurableQueue::open(
        &DurableConfig::new(dir).segment_bytes(segment_bytes),
        &QueueConfig::default(),
    )
    .unwrap();
    for e in events(0, n) {
        q.push(Batch::from(e)).unwrap();
    }
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

fn first_of(p: &Path) -> u64 {
    p.file_name().unwrap().to_str().unwrap()[..20].parse().unwrap()
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn header_v2(first: u64) -> Vec<u8> {
    let mut h = b"RNQSEG\x00\x02".to_vec();
    h.extend_from_slice(&first.to_le_bytes());
    let c = crc(&[&h]);
    h.extend_from_slice(&c.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

fn record_v2(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut r = vec![0xFF, b'R', b'N', b'Q', b'r', b'e', b'c', 0xFE];
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&crc(&[&len.to_le_bytes(), &seq.to_le_bytes(), payload]).to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(payload);
    r
}

fn record_v1(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut r = len.to_le_bytes().to_vec();
    r.extend_from_slice(&crc(&[&len.to_le_bytes(), &seq.to_le_bytes(), payload]).to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(payload);
    r
}

fn ack_slot(counter: u64, head: u64) -> Vec<u8> {
    let mut s = b"RNQACK\x00\x01".to_vec();
    s.extend_from_slice(&counter.to_le_bytes());
    s.extend_from_slice(&head.to_le_bytes());
    let c = crc(&[&s]);
    s.extend_from_slice(&c.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s
}

fn json(i: usize) -> Vec<u8> {
    serde_json::to_vec(&events(i, i + 1)[0]).unwrap()
}

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
    let mut gap = vec![0xFF, b'R', b'N', b'Q', b'g', b'a', b'p', 0xFE];
    gap.extend_from_slice(&3u64.to_le_bytes());
    gap.extend_from_slice(&6u64.to_le_bytes());
    let c = crc(&[&gap[8..24]]);
    gap.extend_from_slice(&c.to_le_bytes());
    gap.extend_from_slice(&0u32.to_le_bytes());
    data.extend(gap);
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

/// What recovery says, and only when there is something to say: the queue's own files (ack,
/// lock, files set aside, the endpoint's dead letters) are not strangers; a stranger is named;
/// an ack file is reported only when it is there and not valid; damage only when records were
/// lost.
#[tokio::test]
async fn recovery_logs_what_it_finds_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, 32 << 10);
    for name in ["old.seg.corrupt", "dead-letters.jsonl", "dead-letters.jsonl.tmp"] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    // Another lane's queue (`concurrency`).
    std::fs::create_dir(dir.path().join("lane-1")).unwrap();
    // A valid ack file is left as it is (the queue writes it when it acknowledges, not at open).
    std::fs::write(dir.path().join("ack"), [ack_slot(5, 2), ack_slot(4, 1)].concat()).unwrap();
    {
        let (logs, _guard) = support::logs::Logs::capture();
        let q = open(dir.path());
        assert_eq!(q.len(), 8);
        let text = logs.text();
        assert_eq!(logs.lines("WARN", "durable queue"), 0, "{text}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("ack")).unwrap(),
        [ack_slot(5, 2), ack_slot(4, 1)].concat()
    );
    // A fresh directory: no ack yet, nothing to report, nothing written.
    let fresh = tempfile::tempdir().unwrap();
    {
        let (logs, _guard) = support::logs::Logs::capture();
        open(fresh.path());
        assert_eq!(logs.lines("WARN", "durable queue"), 0, "{}", logs.text());
    }
    assert_eq!(std::fs::read(fresh.path().join("ack")).unwrap(), b"");
    std::fs::write(dir.path().join("NOTES.txt"), b"mine").unwrap();
    // A file named like a lane is not one.
    std::fs::write(dir.path().join("lane-notes"), b"mine").unwrap();
    std::fs::write(dir.path().join("ack"), b"not an ack file").unwrap();
    let mut data = std::fs::read(files(dir.path(), ".seg").pop().unwrap()).unwrap();
    let at = data.windows(9).position(|w| w == b"\"event-4\"").unwrap();
    data[at + 2] ^= 0x20;
    std::fs::write(files(dir.path(), ".seg").pop().unwrap(), data).unwrap();
    let (logs, _guard) = support::logs::Logs::capture();
    let q = open(dir.path());
    assert_eq!(q.len(), 9, "the ack file is not valid: every intact event again");
    assert_eq!(logs.lines("WARN", "file not ours, ignored"), 2, "{}", logs.text());
    assert_eq!(logs.lines("WARN", "NOTES.txt"), 1);
    assert_eq!(logs.lines("WARN", "lane-notes"), 1);
    assert_eq!(logs.lines("WARN", "ack file not valid"), 1);
    assert_eq!(logs.lines("WARN", "damaged records skipped"), 1);
}

/// A directory named like a segment is moved aside like any file the queue did not write; the
/// queue opens and loses nothing.
#[tokio::test]
async fn a_directory_named_like_a_segment_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, 32 << 10);
    let named = dir.path().join(format!("{:020}.seg", 10));
    std::fs::create_dir(&named).unwrap();
    let q = open(dir.path());
    assert_eq!(drain(&q).await, (0..10).collect::<Vec<_>>());
    assert!(dir.path().join(format!("{:020}.seg.corrupt", 10)).is_dir());
}

/// The ack file's numbers are bounded like sequence numbers (below 2^63): at the bound it is
/// not valid, and every event on disk is delivered again.
#[tokio::test]
async fn an_ack_file_at_the_bound_is_not_valid() {
    let bound = i64::MAX as u64;
    for ack in [ack_slot(bound, 2), ack_slot(3, bound)] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10, 64 << 20);
        std::fs::write(dir.path().join("ack"), &ack).unwrap();
        let (logs, _guard) = support::logs::Logs::capture();
        let q = open(dir.path());
        assert_eq!(q.len(), 10, "{ack:?}");
        assert_eq!(logs.lines("WARN", "ack file not valid"), 1, "{}", logs.text());
    }
}

/// A machine crash can leave the ack file ahead of the records it acknowledges, which were cut
/// off as a torn tail: an ack head within what the cut bytes could have held is trusted (those
/// events were delivered); one beyond is not, and everything on disk is delivered again.
#[tokio::test]
async fn an_ack_head_in_a_torn_tail_is_trusted_within_reach() {
    // Records 0..5, then 480 bytes of torn tail: room for 20 record headers.
    let mut data = header_v2(0);
    for seq in 0..5 {
        data.extend(record_v2(seq, &json(seq as usize)));
    }
    data.extend(vec![0u8; 480]);
    for (head, trusted) in [(8u64, true), (25, true), (26, false)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{:020}.seg", 0)), &data).unwrap();
        std::fs::write(
            dir.path().join("ack"),
            [ack_slot(7, head), ack_slot(6, 0)].concat(),
        )
        .unwrap();
        let (logs, _guard) = support::logs::Logs::capture();
        let q = open(dir.path());
        let beyond = logs.lines("WARN", "names events beyond the last one on disk");
        if trusted {
            assert_eq!((q.len(), beyond), (0, 0), "head {head}: {}", logs.text());
            // The queue goes on after the acknowledged events.
            q.push(Batch::from(events(head as usize, head as usize + 1)))
                .unwrap();
            assert_eq!(drain(&q).await, [head as usize]);
        } else {
            assert_eq!((q.len(), beyond), (5, 1), "head {head}: {}", logs.text());
            assert_eq!(drain(&q).await, (0..5).collect::<Vec<_>>());
        }
    }
}

fn gap_v2(from: u64, to: u64) -> Vec<u8> {
    let mut gap = vec![0xFF, b'R', b'N', b'Q', b'g', b'a', b'p', 0xFE];
    gap.extend_from_slice(&from.to_le_bytes());
    gap.extend_from_slice(&to.to_le_bytes());
    let c = crc(&[&gap[8..24]]);
    gap.extend_from_slice(&c.to_le_bytes());
    gap.extend_from_slice(&0u32.to_le_bytes());
    gap
}

/// Crafted segments after a real log of events 0..10, one case each: jumps and gap frames that
/// are consistent are kept (a hole, not damage), ones that contradict the file are moved aside,
/// a segment with only its header is removed; what the queue then delivers says which.
#[tokio::test]
async fn crafted_jumps_and_gap_frames() {
    let seg = |frames: &[Vec<u8>]| [vec![header_v2(20)], frames.to_vec()].concat().concat();
    let rec = |seq: u64| record_v2(seq, &json(seq as usize));
    let mut bad_header = header_v2(20);
    bad_header[10] ^= 0xFF;
    // (case, the segment named 20, what is delivered after 0..10, set aside)
    let cases: Vec<(&str, Vec<u8>, Vec<usize>, bool)> = vec![
        (
            "a jump, no damage",
            seg(&[rec(20), rec(21), rec(25)]),
            vec![20, 21, 25],
            false,
        ),
        (
            "a record inside a gap",
            seg(&[gap_v2(20, 25), rec(23)]),
            vec![],
            true,
        ),
        (
            "a gap before the name",
            seg(&[gap_v2(3, 7), rec(20)]),
            vec![],
            true,
        ),
        (
            "a gap up to the name",
            seg(&[gap_v2(10, 20), rec(20)]),
            vec![20],
            false,
        ),
        (
            "a hole, then a gap",
            seg(&[rec(20), rec(21), gap_v2(25, 28), rec(28)]),
            vec![20, 21, 28],
            false,
        ),
        (
            "a gap alone, header damaged",
            [bad_header, gap_v2(20, 25)].concat(),
            vec![],
            false,
        ),
    ];
    for (what, bytes, after, aside) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10, 64 << 20);
        std::fs::write(dir.path().join(format!("{:020}.seg", 20)), &bytes).unwrap();
        let q = open(dir.path());
        let want: Vec<usize> = (0..10).chain(after).collect();
        assert_eq!(q.len(), want.len(), "{what}");
        assert_eq!(drain(&q).await, want, "{what}");
        assert_eq!(q.stats().corrupt_events, 0, "{what}: no damage counted");
        assert_eq!(files(dir.path(), ".corrupt").len(), usize::from(aside), "{what}");
    }

    // A segment with its header and nothing else is removed; with damage after the header it
    // is ours, and the damage a torn tail.
    for (what, bytes, kept) in [
        ("header only", header_v2(20), false),
        (
            "header and damage",
            [header_v2(20), vec![0x11; 40]].concat(),
            true,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10, 64 << 20);
        let path = dir.path().join(format!("{:020}.seg", 20));
        std::fs::write(&path, &bytes).unwrap();
        let q = open(dir.path());
        assert_eq!(q.len(), 10, "{what}");
        assert_eq!(path.exists(), kept, "{what}");
        assert_eq!(q.stats().corrupt_tails, u64::from(kept), "{what}");
        assert!(files(dir.path(), ".corrupt").is_empty(), "{what}");
        // New events go on after the segment's name (never below it, where the next start
        // would not trust them): nothing is lost across the restart.
        q.push(Batch::from(events(100, 102))).unwrap();
        q.flush().await;
        drop(q);
        let q = open(dir.path());
        assert_eq!(
            drain(&q).await,
            (0..10).chain(100..102).collect::<Vec<_>>(),
            "{what}"
        );
        assert!(files(dir.path(), ".corrupt").is_empty(), "{what}");
    }
}

//! Durable queue recovery against crafted directories: what it logs (and does not), the ack
//! file's bounds and an ack head in a torn tail, directories and files named like the queue's
//! own, and crafted jumps and gap frames (kept as holes, moved aside, or removed).
#![cfg(feature = "durable")]

mod support;

use registry_notify::queue::EventQueue;
use registry_notify::Batch;
use support::events::events;
use support::segments::*;

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

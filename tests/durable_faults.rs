//! The durable queue on a full disk: a real tmpfs of 512 KiB (mounted here; root only — without
//! the privilege the tmpfs tests are skipped loudly, or fail with `REGISTRY_NOTIFY_REQUIRE_TOOLS`).
//!
//! With `fsync: always` a push resolves `Ok` only if every event of it is on disk, `Err`
//! otherwise, and then none of them is kept; no failed write leaves an empty or partial segment
//! behind; after a restart the pending count equals the records on disk; once space is free,
//! pushes succeed again. With `fsync: interval` nothing fails a push, but every lost event is
//! counted (by reason) and logged once per burst. Dead letters that no longer fit on the disk
//! are kept in memory and can still be sent again.
#![cfg(all(feature = "durable", target_os = "linux"))]

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use registry_notify::metrics::EndpointMetrics;
use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, Fsync, Overflow, QueueConfig};
use registry_notify::{Batch, Event};
use support::events::blob_push;
use support::tmpfs::Tmpfs;

/// A realistic push event (`support::events::blob_push`) with id `event-<i, 6 digits>`.
fn event(i: usize) -> Event {
    let mut e = blob_push(i, "library/full");
    e.id = format!("event-{i:06}").into();
    e
}

fn unbounded() -> QueueConfig {
    QueueConfig {
        capacity: usize::MAX,
        overflow: Overflow::DropOldest,
    }
}

/// Opens a queue; a reopen waits (hang guard) while a process another test thread is
/// spawning (`mount`) still holds a copy of the directory lock's descriptor between its fork
/// and its exec.
async fn open(config: &DurableConfig, bounds: &QueueConfig) -> DurableQueue {
    let deadline = std::time::Instant::now() + support::HANG_GUARD;
    loop {
        match DurableQueue::open(config, bounds) {
            Ok(q) => return q,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Takes and acks everything queued; a hang guard, never a measure of speed.
async fn drain(q: &DurableQueue) -> Vec<String> {
    let mut out = Vec::new();
    while !q.is_empty() {
        let b = tokio::time::timeout(support::HANG_GUARD, q.next(100))
            .await
            .expect("next hung")
            .expect("queue ended");
        out.extend(b.iter().map(|e| e.id.to_string()));
        q.ack(b.len());
    }
    out
}

fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    v.sort();
    v
}

/// Fills what is left of the file system at `path` with one file, until `ENOSPC`.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x42u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Pushes one event with `push_persisted` and waits for its outcome.
async fn push_one(q: &DurableQueue, e: Event) -> Result<(), String> {
    let (dropped, wait) = q.push_persisted(Batch::from(e)).unwrap();
    let wait = wait.expect("fsync: always always answers");
    let r = tokio::time::timeout(support::HANG_GUARD, wait)
        .await
        .expect("persisted hung");
    match r {
        Ok(()) if dropped == 0 => Ok(()),
        Ok(()) => Err(format!("Ok with {dropped} dropped")),
        Err(e) => Err(e.to_string()),
    }
}

/// 1,600 one-event pushes on a 512 KiB tmpfs, endpoint down (nothing acknowledged).
#[tokio::test]
async fn fsync_always_on_a_full_disk_tells_the_truth() {
    for segment_bytes in [None, Some(16 << 10)] {
        let Some(fs) = Tmpfs::mount("512k") else {
            return;
        };
        let ballast = fs.path().join("ballast");
        std::fs::write(&ballast, vec![1u8; 64 << 10]).unwrap();
        let dir = fs.path().join("queue");
        let mut config = DurableConfig::new(&dir).fsync(Fsync::Always);
        if let Some(b) = segment_bytes {
            config = config.segment_bytes(b);
        }
        let metrics = Arc::new(EndpointMetrics::new("full", "http://receiver/"));
        let (mut ok, mut err) = (BTreeSet::new(), BTreeSet::new());
        {
            let q = open(&config, &unbounded()).await.metrics(metrics.clone());
            for i in 0..1600 {
                let e = event(i);
                let id = e.id.to_string();
                match push_one(&q, e).await {
                    Ok(()) => ok.insert(id),
                    Err(why) => {
                        assert!(why.contains("not kept"), "{why}");
                        err.insert(id)
                    }
                };
            }
            assert_eq!(q.len(), ok.len(), "pending = pushes that succeeded");
            let s = q.stats();
            assert_eq!(s.refused as usize, err.len());
            assert_eq!(s.events_lost.total(), 0, "nothing lost silently: {s:?}");
        }
        let m = metrics.snapshot();
        assert_eq!(m.refused as usize, err.len());
        assert_eq!(m.dropped, m.refused + m.events_lost.total());
        let files = segment_files(&dir);
        let empty = files.iter().filter(|(_, len)| *len <= 24).count();
        assert_eq!(empty, 0, "no empty segment left: {files:?}");

        let q = open(&config, &unbounded()).await;
        let pending = q.len();
        let s = q.stats();
        assert_eq!(
            (s.corrupt_tails, s.corrupt_bytes, s.corrupt_events),
            (0, 0, 0),
            "{s:?}"
        );
        let got = drain(&q).await;
        let on_disk: BTreeSet<String> = got.iter().cloned().collect();
        eprintln!(
            "fsync always, 512 KiB tmpfs, segments {segment_bytes:?}: {} pushes Ok, {} Err; \
             {} segment files, {empty} empty; after reopen: pending {pending}, on disk {}",
            ok.len(),
            err.len(),
            files.len(),
            got.len()
        );
        assert!(!ok.is_empty() && !err.is_empty(), "the disk filled up");
        assert_eq!(pending, got.len(), "pending after a restart = records on disk");
        assert_eq!(on_disk, ok, "Ok ⇔ on disk; Err ⇒ not kept");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");

        // Space again: new pushes succeed and are there.
        std::fs::remove_file(&ballast).unwrap();
        q.flush().await;
        for i in 2000..2020 {
            push_one(&q, event(i)).await.expect("space is free again");
        }
        let got = drain(&q).await;
        assert_eq!(
            got,
            (2000..2020).map(|i| event(i).id.to_string()).collect::<Vec<_>>()
        );
    }
}

#[cfg(feature = "test-util")]
/// Pushes held in one write round are committed or failed together: a small push that would
/// fit alone fails with the big one it shares its round with, and neither is kept; a push
/// resolved earlier stays on disk.
#[tokio::test]
async fn a_failed_round_fails_every_push_in_it() {
    let Some(fs) = Tmpfs::mount("256k") else {
        return;
    };
    let dir = fs.path().join("queue");
    let config = DurableConfig::new(&dir).fsync(Fsync::Always);
    {
        let q = open(&config, &unbounded()).await;
        push_one(&q, event(0)).await.unwrap();
        // The disk is full now; the segment's first page still has room for one event.
        fill(&fs.path().join("ballast"));
        let pause = q.pause_writer();
        let (_, small) = q.push_persisted(Batch::from(event(1))).unwrap();
        let big: Batch = (2..40).map(event).collect();
        let (_, big) = q.push_persisted(big).unwrap();
        assert_eq!(q.len(), 40);
        drop(pause);
        for wait in [small.unwrap(), big.unwrap()] {
            let r = tokio::time::timeout(support::HANG_GUARD, wait).await.unwrap();
            assert!(r.is_err(), "the round did not fit");
        }
        assert_eq!(q.len(), 1, "failed pushes are not kept");
        assert_eq!(q.stats().refused, 39);
    }
    let q = open(&config, &unbounded()).await;
    assert_eq!(q.stats().corrupt_bytes, 0);
    assert_eq!(drain(&q).await, ["event-000000"]);
}

/// Bounds refuse an `fsync: always` push whole, before dropping anything of it.
#[tokio::test]
async fn fsync_always_refuses_a_push_that_does_not_fit_whole() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(EndpointMetrics::new("bounds", "http://receiver/"));
    let bounds = QueueConfig {
        capacity: 5,
        overflow: Overflow::DropNewest,
    };
    let config = DurableConfig::new(dir.path()).fsync(Fsync::Always);
    let q = open(&config, &bounds).await.metrics(metrics.clone());
    let (dropped, wait) = q.push_persisted((0..3).map(event).collect()).unwrap();
    assert_eq!(dropped, 0);
    wait.unwrap().await.unwrap();
    // Three more do not fit a capacity of 5: refused whole, none kept.
    let (dropped, wait) = q.push_persisted((3..6).map(event).collect()).unwrap();
    assert_eq!(dropped, 3);
    let err = wait.expect("a refusal is an answer").await.unwrap_err();
    assert!(err.to_string().contains("capacity"), "{err}");
    assert_eq!(q.len(), 3);
    // Two still fit.
    let (dropped, wait) = q.push_persisted((6..8).map(event).collect()).unwrap();
    assert_eq!(dropped, 0);
    wait.unwrap().await.unwrap();
    assert_eq!(q.stats().refused, 3);
    assert_eq!(metrics.snapshot().refused, 3);
    drop(q);

    // maxbytes: pushes of 10 events until one does not fit; it is refused whole.
    let dir = tempfile::tempdir().unwrap();
    let config = DurableConfig::new(dir.path())
        .fsync(Fsync::Always)
        .max_bytes(64 << 10)
        .segment_bytes(8 << 10);
    let mut kept = Vec::new();
    {
        let bounds = QueueConfig {
            capacity: usize::MAX,
            overflow: Overflow::DropNewest,
        };
        let q = open(&config, &bounds).await;
        for round in 0..40 {
            let batch: Batch = (round * 10..round * 10 + 10).map(event).collect();
            let before = q.len();
            let (dropped, wait) = q.push_persisted(batch.clone()).unwrap();
            match wait.unwrap().await {
                Ok(()) => {
                    assert_eq!(dropped, 0);
                    kept.extend(batch.iter().map(|e| e.id.to_string()));
                }
                Err(e) => {
                    assert!(e.to_string().contains("maxbytes"), "{e}");
                    assert_eq!((dropped, q.len()), (10, before), "refused whole");
                }
            }
            assert!(q.stats().bytes <= 64 << 10);
        }
        assert!(kept.len() < 400);
    }
    let q = open(&config, &QueueConfig::default()).await;
    assert_eq!(drain(&q).await, kept);
}

/// Captured log lines (a global subscriber for this test binary).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                logs().lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_writer(|| W)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .try_init();
        Mutex::new(Vec::new())
    })
}

fn log_lines(containing: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs().lock().unwrap())
        .lines()
        .filter(|l| l.contains(containing))
        .map(str::to_owned)
        .collect()
}

/// `fsync: interval` on a full disk: pushes never fail, every lost event is counted (reason
/// `no_space`) and the burst is logged once; writing resumes by itself once space is free.
#[tokio::test]
async fn fsync_interval_counts_lost_events_and_resumes() {
    let Some(fs) = Tmpfs::mount("512k") else {
        return;
    };
    logs();
    let dir = fs.path().join("queue");
    let config = DurableConfig::new(&dir);
    let metrics = Arc::new(EndpointMetrics::new("interval", "http://receiver/"));
    let q = open(&config, &unbounded()).await.metrics(metrics.clone());
    q.push(Batch::from(event(0))).unwrap();
    q.flush().await;
    let started = std::time::Instant::now();
    let ballast = fs.path().join("ballast");
    fill(&ballast);
    for i in 1..400 {
        let (dropped, wait) = q.push_persisted(Batch::from(event(i))).unwrap();
        assert!(
            dropped == 0 && wait.is_none(),
            "fsync: interval never fails a push"
        );
    }
    q.flush().await;
    let s = q.stats();
    let lost = s.events_lost.no_space;
    assert!(lost > 0, "{s:?}");
    assert_eq!(s.written + lost, 400, "every event written or counted: {s:?}");
    assert_eq!(q.len() as u64, 400 - lost);
    let m = metrics.snapshot();
    assert_eq!((m.events_lost.no_space, m.dropped), (lost, lost));
    std::fs::remove_file(&ballast).unwrap();
    for i in 400..450 {
        q.push(Batch::from(event(i))).unwrap();
    }
    q.flush().await;
    assert_eq!(q.stats().events_lost.no_space, lost, "no more losses");
    // Logged once per burst: at most one line per 10 s about losses (near a full disk small
    // writes may still fit, so failures and successes alternate), never one per event.
    let lines = log_lines(&dir.display().to_string());
    let allowed = 1 + started.elapsed().as_secs() / 10;
    assert!(lines.iter().any(|l| l.contains("write failed")), "{lines:#?}");
    assert!(lines.len() as u64 <= allowed, "{lines:#?}");
    let got = drain(&q).await;
    assert_eq!(got.len() as u64, 450 - lost);
    assert_eq!(
        &got[got.len() - 50..],
        (400..450).map(|i| event(i).id.to_string()).collect::<Vec<_>>()
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    eprintln!("fsync interval, full tmpfs: 400 pushed, {lost} lost (no_space), 50 more after freeing space, {} delivered", got.len());
    drop(q);
    // What is on disk reads back without any damage.
    let q = open(&config, &unbounded()).await;
    assert_eq!((q.stats().corrupt_bytes, q.stats().corrupt_events), (0, 0));
}

/// Dead letters on a full disk: the endpoint cannot write them to `dead-letters.jsonl`, so it
/// keeps them in memory (none lost); once there is space again they are sent once more with
/// their ids, and the file holds only whole lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_on_a_full_disk_are_kept_and_redelivered() {
    use registry_notify::endpoint::{Endpoint, Redeliver};
    use std::sync::atomic::{AtomicU16, Ordering};
    use support::receiver::{gate, response, Receiver};
    use tower::ServiceExt;

    let Some(fs) = Tmpfs::mount("512k") else {
        return;
    };
    let (open, closed) = gate();
    let status = Arc::new(AtomicU16::new(400));
    let answer = status.clone();
    let receiver = Receiver::start(Arc::new(move |_, _| {
        let mut closed = closed.clone();
        let answer = answer.clone();
        Box::pin(async move {
            let _ = closed.wait_for(|o| *o).await;
            response(answer.load(Ordering::SeqCst))
        })
    }))
    .await;
    let (sink, handle) = Endpoint::builder("full", receiver.url())
        .durable_queue(DurableConfig::new(fs.path().join("queue")))
        .max_events(10)
        .build()
        .unwrap()
        .spawn();
    let sent: Vec<Event> = (0..3).map(event).collect();
    sink.oneshot(Batch::from(sent.clone())).await.unwrap();
    // The envelope of all three is held by the receiver: they were read back from the disk.
    receiver.wait_requests(1).await;
    assert_eq!(receiver.events().len(), 3);
    let ballast = fs.path().join("ballast");
    fill(&ballast);
    // Refused (400, permanent): dead letters, which no longer fit on the disk.
    open.send(true).unwrap();
    support::wait_until("three dead letters", || handle.metrics().dead_lettered == 3).await;
    let kept = handle.dead_letters();
    assert_eq!(
        kept.iter().map(|d| d.event.id.to_string()).collect::<Vec<_>>(),
        sent.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        "kept in memory"
    );
    let on_disk = fs.path().join("queue").join("dead-letters.jsonl");
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().len(),
        0,
        "the disk took none of them"
    );

    std::fs::remove_file(&ballast).unwrap();
    status.store(200, Ordering::SeqCst);
    assert_eq!(handle.redeliver(&Redeliver::All).await, Ok(3));
    support::wait_until("redelivered", || handle.metrics().delivered == 3).await;
    let again: Vec<String> = receiver.events()[3..].iter().map(|e| e.id.to_string()).collect();
    assert_eq!(again, sent.iter().map(|e| e.id.to_string()).collect::<Vec<_>>());
    assert!(handle.dead_letters().is_empty());
    let file = std::fs::read_to_string(&on_disk).unwrap();
    for line in file.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    handle
        .shutdown(tokio::time::Instant::now() + std::time::Duration::from_secs(5))
        .await;
}

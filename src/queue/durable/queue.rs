//! [`DurableQueue`]: opens a queue directory and starts its parts — the shared [`Inner`] (the
//! logical state under one mutex, [`State`]), a writer thread that owns every write, fsync and
//! deletion ([`Writer`]), and a reader that decodes events from disk ahead of the endpoint's
//! worker ([`Reader`]) — and serves the endpoint through them.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use tokio::sync::{watch, Notify};

use super::format;
use super::inner::{lock, Inner, Stats};
use super::push::Pushed;
use super::readahead::{Reader, READAHEAD_EVENTS};
use super::reader::Take;
use super::recovery;
use super::state::State;
use super::writer::Writer;
use super::{DurableConfig, Fsync};
use crate::event::Batch;
use crate::metrics::{EndpointMetrics, LossReason, LostEvents};
use crate::queue::{EventQueue, Persisted, QueueConfig, QueueError};
use crate::sink::BoxError;

/// Directories opened by this process (canonical paths).
fn open_dirs() -> &'static Mutex<HashSet<PathBuf>> {
    static OPEN: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// Takes the exclusive lock of queue directory `dir`, or says which error kept it.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(format::LOCK_FILE))?;
    // std's advisory lock: flock(2) on Unix, LockFileEx on Windows.
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "durable queue {} is in use by another process (it holds {})",
                dir.display(),
                dir.join(format::LOCK_FILE).display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Counters of a [`DurableQueue`] since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableStats {
    /// Events written to segment files.
    pub written: u64,
    /// Write rounds of the writer thread (each one write of everything pending).
    pub writes: u64,
    /// fsyncs of segment files (with `fsync: always`, one per write round: group commit).
    pub fsyncs: u64,
    /// Bytes in segment files (logical: includes what the writer has not written yet).
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Events dropped by the overflow policy (`capacity`, `maxbytes`, or a full write buffer);
    /// the same as `events_lost.overflow`.
    pub overflow_dropped: u64,
    /// Corrupt or truncated tails cut off when the queue was opened.
    pub corrupt_tails: u64,
    /// Bytes cut off or skipped as corrupt.
    pub corrupt_bytes: u64,
    /// Events lost to damaged records, found when the queue opened or while reading (counted
    /// exactly); the same as `events_lost.corrupt`.
    pub corrupt_events: u64,
    /// Writes and fsyncs that failed.
    pub write_errors: u64,
    /// Events lost, by reason (none of them was reported durable to a push waiting for the disk).
    pub events_lost: LostEvents,
    /// Events of `fsync: always` pushes that failed (refused by the bounds, or not written): the
    /// caller was told, and the events were not kept.
    pub refused: u64,
}

/// A disk-backed, bounded FIFO of events: see the [module docs](super).
///
/// Opening recovers what a previous run left (cutting off a torn tail, skipping and counting
/// damaged records) and starts the writer thread; dropping the queue flushes, fsyncs and stops it.
///
/// ```
/// use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, QueueConfig};
/// use registry_notify::{Action, Batch, Event, Target};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("rn-doc-{}", std::process::id()));
/// let event = Event::new(Action::Push, Target::default());
/// {
///     let queue = DurableQueue::open(&DurableConfig::new(&dir), &QueueConfig::default())?;
///     queue.push(Batch::from(event.clone())).unwrap();
/// } // dropped: flushed and closed, like a restart
/// let queue = DurableQueue::open(&DurableConfig::new(&dir), &QueueConfig::default())?;
/// assert_eq!(queue.len(), 1);
/// let batch = queue.next(10).await.unwrap();
/// assert_eq!(batch[0].id, event.id); // the same event, same id
/// queue.ack(1);
/// assert!(queue.is_empty());
/// # drop(queue); std::fs::remove_dir_all(&dir)?; Ok(()) }
/// ```
pub struct DurableQueue {
    inner: Arc<Inner>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    canonical: PathBuf,
    /// Events lost to damage found when the queue opened (reported with the metrics).
    corrupt_at_open: u64,
    /// Holds the directory's exclusive lock against other processes until dropped.
    _lock: File,
}

impl DurableQueue {
    /// Opens (or creates) the queue in `config`'s directory, bounded by `bounds` (events and
    /// overflow policy) and `config.max_bytes`, and starts its writer thread.
    ///
    /// Fails if the directory cannot be created or read, if this process or another one
    /// already has it open (an exclusive `flock` on its `lock` file, released when the queue
    /// is dropped or the process dies), or if the configuration is invalid. Damage is not an
    /// error: a torn tail is cut off, damaged records are skipped and counted, files the queue
    /// did not write are moved aside (`<name>.corrupt`); each is logged.
    pub fn open(config: &DurableConfig, bounds: &QueueConfig) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        std::fs::create_dir_all(&config.path)?;
        let canonical = config.path.canonicalize()?;
        if !lock(open_dirs()).insert(canonical.clone()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("durable queue {} is already open", config.path.display()),
            ));
        }
        match lock_dir(&canonical).and_then(|dir_lock| Self::start(config, bounds, &canonical, dir_lock)) {
            Ok(q) => Ok(q),
            Err(e) => {
                lock(open_dirs()).remove(&canonical);
                Err(e)
            }
        }
    }

    fn start(config: &DurableConfig, bounds: &QueueConfig, dir: &Path, dir_lock: File) -> io::Result<Self> {
        let r = recovery::recover(dir)?;
        let mut state = State::new(r.head, r.tail);
        state.segments = r.segments;
        state.holes = r.holes;
        state.live = r.live;
        state.used_bytes = r.used_bytes;
        state.rotate = r.rotate;
        state.collect_dead();
        if state.live > 0 || r.corrupt_events > 0 || r.corrupt_tails > 0 {
            tracing::info!(
                queue = %dir.display(), events = state.live, segments = state.segments.len(),
                corrupt = r.corrupt_events, "durable queue: recovered backlog"
            );
        }
        let stats = Stats::default();
        stats.corrupt_tails.store(r.corrupt_tails, Ordering::Relaxed);
        stats.corrupt_bytes.store(r.corrupt_bytes, Ordering::Relaxed);
        stats
            .lost_to(LossReason::Corrupt)
            .store(r.corrupt_events, Ordering::Relaxed);
        let head = state.head;
        let inner = Arc::new(Inner {
            dir: dir.to_owned(),
            config: config.clone(),
            capacity: bounds.capacity.max(1) as u64,
            overflow: bounds.overflow,
            segment_bytes: config.segment_size(),
            state: Mutex::new(state),
            wake_writer: Condvar::new(),
            reader: Mutex::new(Reader::new(head)),
            readable: Notify::new(),
            flushed: watch::channel(0).0,
            stats,
            metrics: OnceLock::new(),
        });
        let writer = Writer::new(
            inner.clone(),
            r.ack_file,
            r.ack_counter,
            r.resume,
            head,
            r.next_seq,
        );
        let thread = std::thread::Builder::new()
            .name("registry-notify-durable".into())
            .spawn(move || writer.run())?;
        Ok(Self {
            inner,
            writer: Mutex::new(Some(thread)),
            canonical: dir.to_owned(),
            corrupt_at_open: r.corrupt_events,
            _lock: dir_lock,
        })
    }

    /// Records drops, losses, refusals and the recovered backlog in `metrics`; call once, before
    /// the queue is used. The backlog found at open counts as `events` (and `pending`); events
    /// lost to damage found at open count as `events` and `dropped` (reason corrupt) too.
    pub fn metrics(self, metrics: Arc<EndpointMetrics>) -> Self {
        let recovered = self.len();
        if self.inner.metrics.set(metrics.clone()).is_ok() {
            let corrupt = usize::try_from(self.corrupt_at_open).unwrap_or(usize::MAX);
            let seen = recovered.saturating_add(corrupt);
            if seen > 0 {
                metrics.record_ingress(seen);
            }
            if corrupt > 0 {
                metrics.record_dropped(corrupt);
                metrics.record_egress(corrupt);
                metrics.record_events_lost(LossReason::Corrupt, self.corrupt_at_open);
            }
        }
        self
    }

    /// The queue's directory and settings.
    pub fn config(&self) -> &DurableConfig {
        &self.inner.config
    }

    /// The counters since the queue was opened.
    pub fn stats(&self) -> DurableStats {
        let s = &self.inner.stats;
        let st = lock(&self.inner.state);
        let lost = |r: LossReason| s.lost_to(r).load(Ordering::Relaxed);
        let events_lost = LostEvents {
            no_space: lost(LossReason::NoSpace),
            write_error: lost(LossReason::WriteError),
            corrupt: lost(LossReason::Corrupt),
            overflow: lost(LossReason::Overflow),
        };
        DurableStats {
            written: s.written.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes: st.used_bytes,
            segments: st.segments.len() as u64,
            overflow_dropped: events_lost.overflow,
            corrupt_tails: s.corrupt_tails.load(Ordering::Relaxed),
            corrupt_bytes: s.corrupt_bytes.load(Ordering::Relaxed),
            corrupt_events: events_lost.corrupt,
            write_errors: s.write_errors.load(Ordering::Relaxed),
            events_lost,
            refused: s.refused.load(Ordering::Relaxed),
        }
    }

    /// Holds the writer thread before its next write until the returned guard is dropped, so
    /// that a test can queue several pushes and observe that one write and one fsync commit
    /// them all. Not for production use.
    #[cfg(any(test, feature = "test-util"))]
    pub fn pause_writer(&self) -> WriterPause {
        lock(&self.inner.state).paused = true;
        WriterPause {
            inner: self.inner.clone(),
        }
    }
}

/// Resumes the writer thread when dropped; see [`DurableQueue::pause_writer`].
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub struct WriterPause {
    inner: Arc<Inner>,
}

#[cfg(any(test, feature = "test-util"))]
impl fmt::Debug for WriterPause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterPause")
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Drop for WriterPause {
    fn drop(&mut self) {
        lock(&self.inner.state).paused = false;
        self.inner.wake_writer.notify_one();
    }
}

impl fmt::Debug for DurableQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("DurableQueue")
            .field("dir", &self.inner.dir)
            .field("fsync", &self.inner.config.fsync)
            .field("max_bytes", &self.inner.config.max_bytes)
            .field("len", &st.live)
            .field("bytes", &st.used_bytes)
            .field("closed", &st.closed)
            .finish()
    }
}

impl Drop for DurableQueue {
    fn drop(&mut self) {
        lock(&self.inner.state).stop = true;
        self.inner.wake_writer.notify_one();
        if let Some(thread) = lock(&self.writer).take() {
            let _ = thread.join();
        }
        lock(open_dirs()).remove(&self.canonical);
    }
}

impl EventQueue for DurableQueue {
    fn push(&self, batch: Batch) -> Result<usize, QueueError> {
        self.inner.push(&batch, false).map(|(dropped, _)| dropped)
    }

    /// With `fsync: always`, a push is kept whole or not at all: the returned wait resolves
    /// `Ok` only once every event of the batch is on disk (written and fsynced), and `Err` if any
    /// of them is not (refused by the bounds, a write or fsync error, no space, dropped by the
    /// overflow policy before it was durable), in which case none of them is kept.
    fn push_persisted(&self, batch: Batch) -> Result<(usize, Option<Persisted>), QueueError> {
        let whole = self.inner.config.fsync == Fsync::Always && !batch.is_empty();
        let (dropped, pushed) = self.inner.push(&batch, whole)?;
        let wait: Persisted = match pushed {
            Pushed::Kept => return Ok((dropped, None)),
            Pushed::Refused(why) => Box::pin(std::future::ready(Err(BoxError::from(why)))),
            Pushed::Waiting(rx) => Box::pin(async move {
                match rx.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(why)) => Err(BoxError::from(why)),
                    Err(_) => Err(BoxError::from(
                        "durable queue: stopped before the events were written",
                    )),
                }
            }),
        };
        Ok((dropped, Some(wait)))
    }

    fn next(&self, max_events: usize) -> Pin<Box<dyn Future<Output = Option<Batch>> + Send + '_>> {
        let max_events = max_events.max(1);
        Box::pin(async move {
            loop {
                let notified = self.inner.readable.notified();
                match self.inner.take(max_events) {
                    Take::Batch(batch) => return Some(batch),
                    Take::Done => return None,
                    Take::Wait => {
                        notified.await;
                        continue;
                    }
                    Take::Read => {}
                }
                let inner = self.inner.clone();
                let want = READAHEAD_EVENTS.max(max_events);
                match tokio::task::spawn_blocking(move || inner.fill(want)).await {
                    Ok(true) => {}
                    // No progress: wait for the writer rather than spin.
                    Ok(false) => notified.await,
                    Err(e) => {
                        tracing::error!(error = %e, "durable queue: reader failed");
                        notified.await;
                    }
                }
            }
        })
    }

    fn ack(&self, n: usize) {
        self.inner.ack(n);
    }

    fn len(&self) -> usize {
        usize::try_from(lock(&self.inner.state).live).unwrap_or(usize::MAX)
    }

    fn close(&self) -> Result<(), QueueError> {
        let mut st = lock(&self.inner.state);
        if st.closed {
            return Err(QueueError::AlreadyClosed);
        }
        st.closed = true;
        drop(st);
        self.inner.readable.notify_one();
        Ok(())
    }

    fn is_closed(&self) -> bool {
        lock(&self.inner.state).closed
    }

    fn bytes(&self) -> Option<u64> {
        Some(lock(&self.inner.state).used_bytes)
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn fails_closed(&self) -> bool {
        self.inner.config.fsync == Fsync::Always
    }

    fn flush(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut flushed = self.inner.flushed.subscribe();
        let request = {
            let mut st = lock(&self.inner.state);
            st.flush_wanted += 1;
            st.flush_wanted
        };
        self.inner.wake_writer.notify_one();
        Box::pin(async move {
            let _ = flushed.wait_for(|done| *done >= request).await;
        })
    }
}

//! The segment log behind [`DurableQueue`]: logical state under one mutex, a writer thread that
//! owns every write, fsync and deletion, and a reader that decodes events from disk ahead of the
//! endpoint's worker.
//!
//! Sequence numbers: every event gets the next `u64` when pushed. The live events are
//! `[head, inflight_end)` (handed to the worker, not yet acknowledged) and
//! `[max(inflight_end, skip_before), tail)` (waiting); `skip_before` moves forward when the overflow
//! policy or a corrupt segment drops waiting events.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::format::{self, Read1};
use super::{DurableConfig, Fsync};
use crate::event::{Batch, Event};
use crate::metrics::EndpointMetrics;
use crate::queue::{EventQueue, Overflow, Persisted, QueueConfig, QueueError};
use crate::sink::BoxError;

/// Encoded events waiting for the writer thread, at most (beyond, new events are dropped and counted).
const PENDING_LIMIT: usize = 8 << 20;
/// Events decoded ahead of the worker, at most.
const READAHEAD_EVENTS: usize = 256;
/// Bytes of records decoded ahead of the worker, at most (roughly).
const READAHEAD_BYTES: u64 = 1 << 20;

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
    // Through the trait: `File::try_lock` of std (Rust 1.89+) would shadow it.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "durable queue {} is in use by another process (it holds {})",
                dir.display(),
                dir.join(format::LOCK_FILE).display()
            ),
        )),
        Err(fs4::TryLockError::Error(e)) => Err(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    /// Events dropped by the overflow policy (`capacity`, `maxbytes`, or a full write buffer).
    pub overflow_dropped: u64,
    /// Corrupt or truncated tails cut off when the queue was opened.
    pub corrupt_tails: u64,
    /// Bytes cut off or skipped as corrupt.
    pub corrupt_bytes: u64,
    /// Events lost to corrupt records found while reading (counted exactly).
    pub corrupt_events: u64,
    /// Writes that failed (the events are reported as not durable, and dropped).
    pub write_errors: u64,
}

#[derive(Default)]
struct Stats {
    written: AtomicU64,
    writes: AtomicU64,
    fsyncs: AtomicU64,
    overflow_dropped: AtomicU64,
    corrupt_tails: AtomicU64,
    corrupt_bytes: AtomicU64,
    corrupt_events: AtomicU64,
    write_errors: AtomicU64,
}

/// One segment file: the events `[first, end)`, `bytes` long (header included).
#[derive(Clone, Copy, Debug)]
struct Seg {
    first: u64,
    end: u64,
    bytes: u64,
}

/// Encoded records of one segment, waiting for the writer.
struct Chunk {
    segment: u64,
    bytes: Vec<u8>,
    end: u64,
}

struct State {
    /// Oldest first; the last one receives appends.
    segments: VecDeque<Seg>,
    head: u64,
    inflight_end: u64,
    skip_before: u64,
    tail: u64,
    used_bytes: u64,
    pending: VecDeque<Chunk>,
    pending_bytes: usize,
    /// Events `< written_end` are in the files.
    written_end: u64,
    /// The segment being written and how many of its bytes are in the file.
    open_written: (u64, u64),
    /// Segments to delete (first sequence numbers).
    to_delete: Vec<u64>,
    /// Start a new segment with the next push.
    rotate: bool,
    closed: bool,
    stop: bool,
    /// Flush requests so far; the writer answers through `Inner::flushed`.
    flush_wanted: u64,
    paused: bool,
    /// The writer waits for work: a push must wake it (otherwise it will look before waiting).
    writer_idle: bool,
}

impl State {
    fn waiting_start(&self) -> u64 {
        self.inflight_end.max(self.skip_before)
    }

    fn len(&self) -> u64 {
        (self.inflight_end - self.head) + self.tail.saturating_sub(self.waiting_start())
    }

    /// Whether segment `s` holds no live event.
    fn is_dead(&self, s: &Seg) -> bool {
        let overlaps = |a: u64, b: u64| a < b && s.first < b && a < s.end;
        !(overlaps(self.head, self.inflight_end) || overlaps(self.waiting_start(), self.tail))
    }

    /// Removes dead segments (never the last one) and schedules their deletion.
    fn collect_dead(&mut self) {
        let mut i = 0;
        while i + 1 < self.segments.len() {
            if self.is_dead(&self.segments[i]) {
                let s = self.segments.remove(i).expect("index in range");
                self.used_bytes -= s.bytes;
                self.to_delete.push(s.first);
            } else {
                i += 1;
            }
        }
    }

    /// Drops waiting events until `waiting_start` reaches `to`; returns how many were dropped.
    fn skip_to(&mut self, to: u64) -> u64 {
        let from = self.waiting_start();
        let to = to.min(self.tail);
        if to <= from {
            return 0;
        }
        self.skip_before = to;
        to - from
    }
}

/// What the reader holds: its position, decoded events, and the batch handed out.
struct Reader {
    /// The segment file being read, and its first sequence number.
    file: Option<(u64, BufReader<File>)>,
    /// Sequence number of the record at the file position.
    next_seq: u64,
    /// Decoded events `(seq, event, record size)`, contiguous.
    cache: VecDeque<(u64, Event, u64)>,
    cache_bytes: u64,
    /// The batch handed out by `next` and its first sequence number.
    inflight: Option<(u64, Batch)>,
    payload: Vec<u8>,
}

struct Inner {
    dir: PathBuf,
    config: DurableConfig,
    capacity: u64,
    overflow: Overflow,
    segment_bytes: u64,
    state: Mutex<State>,
    wake_writer: Condvar,
    reader: Mutex<Reader>,
    readable: Notify,
    /// Events `< durable` are on disk (fsynced).
    durable: watch::Sender<u64>,
    /// The last flush request the writer completed (written, synced, deletions done).
    flushed: watch::Sender<u64>,
    /// Events `< error_end` may have been lost to a write error.
    error_end: Arc<AtomicU64>,
    stats: Stats,
    metrics: OnceLock<Arc<EndpointMetrics>>,
}

/// A disk-backed, bounded FIFO of events: see the [module docs](super).
///
/// Opening recovers what a previous run left (cutting off a torn tail) and starts the writer
/// thread; dropping the queue flushes, fsyncs and stops it.
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
    /// Holds the directory's exclusive lock against other processes until dropped.
    _lock: File,
}

impl DurableQueue {
    /// Opens (or creates) the queue in `config`'s directory, bounded by `bounds` (events and
    /// overflow policy) and `config.max_bytes`, and starts its writer thread.
    ///
    /// Fails if the directory cannot be created or read, if this process or another one
    /// already has it open (an exclusive `flock` on its `lock` file, released when the queue
    /// is dropped or the process dies), or if the configuration is invalid. Damage (a torn tail, a bad segment) is not an error:
    /// it is cut off or skipped, logged and counted.
    pub fn open(config: &DurableConfig, bounds: &QueueConfig) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        std::fs::create_dir_all(&config.path)?;
        let canonical = config.path.canonicalize()?;
        if !lock(open_dirs()).insert(canonical.clone()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("durable queue {} is already open", config.path.display()),
            ));
        }
        match lock_dir(&canonical).and_then(|dir_lock| Self::recover(config, bounds, &canonical, dir_lock)) {
            Ok(q) => Ok(q),
            Err(e) => {
                lock(open_dirs()).remove(&canonical);
                Err(e)
            }
        }
    }

    fn recover(config: &DurableConfig, bounds: &QueueConfig, dir: &Path, dir_lock: File) -> io::Result<Self> {
        let stats = Stats::default();
        let mut firsts: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(first) = entry.file_name().to_str().and_then(format::parse_segment_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let acked = match std::fs::read(dir.join(format::ACK_FILE)) {
            Ok(data) => format::decode_ack_file(&data).map(|(_, head)| head),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };

        // The last segment may end with a torn write: keep its valid prefix. A last segment
        // without a valid header (torn at creation) goes, and the one before is checked instead.
        let mut last: Option<Seg> = None;
        while let Some(&first) = firsts.last() {
            let path = dir.join(format::segment_name(first));
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let len = file.metadata()?.len();
            let scan = format::scan_segment(&mut BufReader::new(&file), len)?;
            if scan.trailing > 0 {
                stats.corrupt_tails.fetch_add(1, Ordering::Relaxed);
                stats.corrupt_bytes.fetch_add(scan.trailing, Ordering::Relaxed);
                tracing::warn!(
                    queue = %dir.display(), segment = %path.display(), bytes = scan.trailing,
                    records = scan.records, problem = scan.problem.unwrap_or("?"),
                    "durable queue: corrupt or truncated tail cut off"
                );
            }
            if scan.first != Some(first) {
                drop(file);
                std::fs::remove_file(&path)?;
                firsts.pop();
                continue;
            }
            if scan.trailing > 0 {
                file.set_len(scan.valid_len)?;
                file.sync_all()?;
            }
            firsts.pop();
            last = Some(Seg {
                first,
                end: first + scan.records,
                bytes: scan.valid_len,
            });
            break;
        }
        // Sealed segments were fsynced when the next one started; the reader checks each record
        // and skips (and counts) what is damaged.
        let mut segments: VecDeque<Seg> = VecDeque::new();
        for (i, &first) in firsts.iter().enumerate() {
            let end = firsts
                .get(i + 1)
                .copied()
                .or(last.map(|l| l.first))
                .unwrap_or(first);
            let bytes = std::fs::metadata(dir.join(format::segment_name(first)))?.len();
            segments.push_back(Seg { first, end, bytes });
        }
        segments.extend(last);

        let oldest = segments.front().map_or(0, |s| s.first);
        let mut tail = segments.back().map_or(0, |s| s.end);
        let head = acked.unwrap_or(oldest).max(oldest);
        let mut rotate = false;
        if head > tail {
            // Acknowledged beyond what survived (a machine crash after an ack was synced): the
            // sequence numbers go on from there, in a new segment.
            tail = head;
            rotate = true;
        }
        let used_bytes = segments.iter().map(|s| s.bytes).sum();
        let open_written = segments.back().map_or((tail, 0), |s| (s.first, s.bytes));
        let resume = if rotate {
            None
        } else {
            segments.back().map(|s| (s.first, s.bytes))
        };
        let mut state = State {
            segments,
            head,
            inflight_end: head,
            skip_before: head,
            tail,
            used_bytes,
            pending: VecDeque::new(),
            pending_bytes: 0,
            written_end: tail,
            open_written,
            to_delete: Vec::new(),
            rotate,
            closed: false,
            stop: false,
            flush_wanted: 0,
            paused: false,
            writer_idle: false,
        };
        state.collect_dead();
        let recovered = state.len();
        if recovered > 0 || stats.corrupt_tails.load(Ordering::Relaxed) > 0 {
            tracing::info!(
                queue = %dir.display(), events = recovered, segments = state.segments.len(),
                "durable queue: recovered backlog"
            );
        }
        let (durable, _) = watch::channel(tail);
        let inner = Arc::new(Inner {
            dir: dir.to_owned(),
            config: config.clone(),
            capacity: bounds.capacity.max(1) as u64,
            overflow: bounds.overflow,
            segment_bytes: config.segment_size(),
            state: Mutex::new(state),
            wake_writer: Condvar::new(),
            reader: Mutex::new(Reader {
                file: None,
                next_seq: head,
                cache: VecDeque::new(),
                cache_bytes: 0,
                inflight: None,
                payload: Vec::new(),
            }),
            readable: Notify::new(),
            durable,
            flushed: watch::channel(0).0,
            error_end: Arc::new(AtomicU64::new(0)),
            stats,
            metrics: OnceLock::new(),
        });
        let ack_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(format::ACK_FILE))?;
        let writer = Writer::new(inner.clone(), ack_file, resume, head);
        let thread = std::thread::Builder::new()
            .name("registry-notify-durable".into())
            .spawn(move || writer.run())?;
        Ok(Self {
            inner,
            writer: Mutex::new(Some(thread)),
            canonical: dir.to_owned(),
            _lock: dir_lock,
        })
    }

    /// Records drops, corruption and the recovered backlog (as `events` and `pending`) in
    /// `metrics`; call once, before the queue is used.
    pub fn metrics(self, metrics: Arc<EndpointMetrics>) -> Self {
        let recovered = self.len();
        if self.inner.metrics.set(metrics.clone()).is_ok() && recovered > 0 {
            metrics.record_ingress(recovered);
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
        DurableStats {
            written: s.written.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes: st.used_bytes,
            segments: st.segments.len() as u64,
            overflow_dropped: s.overflow_dropped.load(Ordering::Relaxed),
            corrupt_tails: s.corrupt_tails.load(Ordering::Relaxed),
            corrupt_bytes: s.corrupt_bytes.load(Ordering::Relaxed),
            corrupt_events: s.corrupt_events.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
        }
    }

    /// Holds the writer thread before its next write until the returned guard is dropped, so
    /// that a test can queue several pushes and observe that one write and one fsync commit
    /// them all. Not for production use.
    #[doc(hidden)]
    pub fn pause_writer(&self) -> WriterPause {
        lock(&self.inner.state).paused = true;
        WriterPause {
            inner: self.inner.clone(),
        }
    }
}

/// Resumes the writer thread when dropped; see [`DurableQueue::pause_writer`].
#[doc(hidden)]
pub struct WriterPause {
    inner: Arc<Inner>,
}

impl fmt::Debug for WriterPause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterPause")
    }
}

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
            .field("len", &st.len())
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

impl Inner {
    fn record_lost(&self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(m) = self.metrics.get() {
            m.record_dropped(n as usize);
            m.record_egress(n as usize);
        }
    }

    /// Appends `batch`; returns how many events were dropped and the end sequence number of
    /// the kept ones (`None` if none was kept).
    fn push(&self, batch: &Batch) -> Result<(usize, Option<(u64, u64)>), QueueError> {
        // Encoding is the expensive part: do it before taking the lock.
        let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
        let mut unencodable = 0;
        for event in batch.iter() {
            match serde_json::to_vec(event) {
                Ok(p) if p.len() <= format::MAX_PAYLOAD => payloads.push(p),
                _ => unencodable += 1,
            }
        }
        if unencodable > 0 {
            tracing::warn!(
                events = unencodable,
                "durable queue: event too large to store, dropped"
            );
        }
        let mut st = lock(&self.state);
        if st.closed {
            return Err(QueueError::Closed);
        }
        let n = payloads.len() as u64;
        let waiting = st.tail - st.waiting_start();
        let mut dropped = unencodable as u64;
        // The event bound, like the memory queue's.
        let mut keep = 0..payloads.len();
        match self.overflow {
            Overflow::DropNewest => {
                let take = self.capacity.saturating_sub(waiting).min(n);
                keep.end = take as usize;
                dropped += n - take;
            }
            _ => {
                if n >= self.capacity {
                    let t = st.tail;
                    dropped += st.skip_to(t);
                    keep.start = (n - self.capacity) as usize;
                    dropped += n - self.capacity;
                } else {
                    let evict = (waiting + n).saturating_sub(self.capacity);
                    let to = st.waiting_start() + evict;
                    dropped += st.skip_to(to);
                }
            }
        }
        // The byte bound.
        let need: u64 = payloads[keep.clone()]
            .iter()
            .map(|p| format::record_size(p.len()))
            .sum::<u64>()
            + format::SEGMENT_HEADER;
        let max = self.config.max_bytes;
        if st.used_bytes + need > max && self.overflow == Overflow::DropOldest {
            let need = st.used_bytes + need - max;
            dropped += self.free_oldest(&mut st, need);
            st.collect_dead();
        }
        // What does not fit the disk or the write buffer is refused.
        let mut used = st.used_bytes + format::SEGMENT_HEADER;
        let mut buffered = st.pending_bytes;
        let mut fit = keep.start;
        while fit < keep.end {
            let size = format::record_size(payloads[fit].len());
            if used + size > max || buffered + size as usize > PENDING_LIMIT {
                break;
            }
            used += size;
            buffered += size as usize;
            fit += 1;
        }
        if fit < keep.end {
            dropped += (keep.end - fit) as u64;
            keep.end = fit;
        }
        let first = st.tail;
        for payload in &payloads[keep] {
            self.append(&mut st, payload);
        }
        let end = st.tail;
        if dropped > 0 {
            self.stats.overflow_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        st.collect_dead();
        // Only an idle writer needs a wake-up (a syscall): a busy one takes everything pending
        // before it waits again.
        let wake = (end > first || !st.to_delete.is_empty()) && std::mem::take(&mut st.writer_idle);
        drop(st);
        if wake {
            self.wake_writer.notify_one();
        }
        Ok((dropped as usize, (end > first).then_some((first, end))))
    }

    /// Drops waiting events, oldest sealed segments first, until `need` bytes will be freed or
    /// nothing more can be; returns how many events were dropped.
    fn free_oldest(&self, st: &mut State, need: u64) -> u64 {
        let mut dropped = 0;
        let mut freed = 0;
        let sealed = st.segments.len().saturating_sub(1);
        for i in 0..sealed {
            if freed >= need {
                break;
            }
            let s = st.segments[i];
            if s.end > st.waiting_start() {
                dropped += st.skip_to(s.end);
            }
            if st.is_dead(&s) {
                freed += s.bytes;
            }
        }
        dropped
    }

    /// Frames one record at the tail, starting a new segment when the last one is full.
    fn append(&self, st: &mut State, payload: &[u8]) {
        let size = format::record_size(payload.len());
        let seq = st.tail;
        let start_new = match st.segments.back() {
            None => true,
            Some(last) => st.rotate || (last.end > last.first && last.bytes + size > self.segment_bytes),
        };
        if start_new {
            st.rotate = false;
            st.segments.push_back(Seg {
                first: seq,
                end: seq,
                bytes: format::SEGMENT_HEADER,
            });
            st.used_bytes += format::SEGMENT_HEADER;
        }
        let last = st.segments.back_mut().expect("a segment");
        last.end = seq + 1;
        last.bytes += size;
        let segment = last.first;
        st.used_bytes += size;
        st.tail = seq + 1;
        st.pending_bytes += size as usize;
        match st.pending.back_mut() {
            Some(chunk) if chunk.segment == segment => {
                format::encode_record(&mut chunk.bytes, seq, payload);
                chunk.end = seq + 1;
            }
            _ => {
                let mut bytes = Vec::with_capacity(4 << 10);
                format::encode_record(&mut bytes, seq, payload);
                st.pending.push_back(Chunk {
                    segment,
                    bytes,
                    end: seq + 1,
                });
            }
        }
    }

    /// Reads ahead: decodes up to `want` more events into the cache. Returns whether it made
    /// progress (read, or skipped damage); runs on a blocking thread.
    fn fill(&self, want: usize) -> bool {
        let mut rd = lock(&self.reader);
        let rd = &mut *rd;
        let mut progress = false;
        loop {
            if rd.cache.len() >= want || rd.cache_bytes >= READAHEAD_BYTES {
                return progress;
            }
            let (written_end, open_written, seg, next_seg) = {
                let st = lock(&self.state);
                if rd.cache.is_empty() && rd.next_seq < st.skip_before {
                    rd.next_seq = st.skip_before;
                }
                let seg = st
                    .segments
                    .iter()
                    .find(|s| s.first <= rd.next_seq && rd.next_seq < s.end)
                    .copied();
                let next_seg = st
                    .segments
                    .iter()
                    .find(|s| s.first > rd.next_seq)
                    .map(|s| s.first);
                (st.written_end, st.open_written, seg, next_seg)
            };
            if rd.next_seq >= written_end {
                return progress;
            }
            let Some(seg) = seg else {
                // A gap (a deleted segment): its events are gone already; go on at the next one.
                if !rd.cache.is_empty() {
                    return progress;
                }
                rd.file = None;
                rd.next_seq = next_seg
                    .unwrap_or(written_end)
                    .min(written_end)
                    .max(rd.next_seq + 1);
                progress = true;
                continue;
            };
            if rd.file.as_ref().map(|(f, _)| *f) != Some(seg.first) {
                match self.open_at(seg.first, rd.next_seq, &mut rd.payload) {
                    Ok(r) => rd.file = Some((seg.first, r)),
                    Err(why) => {
                        if !rd.cache.is_empty() {
                            return progress;
                        }
                        self.skip_damage(rd, seg, written_end, open_written, why);
                        progress = true;
                        continue;
                    }
                }
            }
            // Read the run of records this snapshot allows without taking the state lock again.
            let limit = seg.end.min(written_end);
            while rd.next_seq < limit && rd.cache.len() < want && rd.cache_bytes < READAHEAD_BYTES {
                let (_, file) = rd.file.as_mut().expect("opened above");
                let result = format::read_record(file, rd.next_seq, &mut rd.payload);
                let (seq, size) = match result {
                    Ok(Read1::Record { seq, size }) => (seq, size),
                    other => {
                        if !rd.cache.is_empty() {
                            rd.file = None;
                            return progress;
                        }
                        let why = match other {
                            Ok(Read1::Corrupt(why)) => why.to_owned(),
                            Ok(_) => "truncated record".to_owned(),
                            Err(e) => e.to_string(),
                        };
                        self.skip_damage(rd, seg, written_end, open_written, why);
                        progress = true;
                        break;
                    }
                };
                rd.next_seq = seq + 1;
                progress = true;
                match serde_json::from_slice::<Event>(&rd.payload) {
                    Ok(event) => {
                        rd.cache.push_back((seq, event, size));
                        rd.cache_bytes += size;
                    }
                    Err(e) => {
                        // Intact framing, undecodable content: only this event is lost.
                        if !rd.cache.is_empty() {
                            // Keep the cache contiguous: hand out what is there first.
                            rd.next_seq = seq;
                            rd.file = None;
                            return progress;
                        }
                        self.stats.corrupt_events.fetch_add(1, Ordering::Relaxed);
                        self.stats.corrupt_bytes.fetch_add(size, Ordering::Relaxed);
                        tracing::warn!(queue = %self.dir.display(), seq, error = %e,
                            "durable queue: undecodable event skipped");
                        let lost = lock(&self.state).skip_to(seq + 1);
                        self.record_lost(lost);
                    }
                }
            }
        }
    }

    /// Opens segment `first` positioned at the record `seq`.
    fn open_at(&self, first: u64, seq: u64, payload: &mut Vec<u8>) -> Result<BufReader<File>, String> {
        let path = self.dir.join(format::segment_name(first));
        let file = File::open(&path).map_err(|e| format!("cannot open segment: {e}"))?;
        let mut r = BufReader::with_capacity(64 << 10, file);
        let mut h = [0u8; format::SEGMENT_HEADER as usize];
        let got = format::read_full(&mut r, &mut h).map_err(|e| e.to_string())?;
        if format::parse_segment_header(&h[..got]) != Some(first) {
            return Err("invalid segment header".into());
        }
        let mut at = first;
        while at < seq {
            match format::read_record(&mut r, at, payload) {
                Ok(Read1::Record { .. }) => at += 1,
                Ok(Read1::Corrupt(why)) => return Err(why.into()),
                Ok(_) => return Err("truncated record".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(r)
    }

    /// The record at the reader's position is damaged (the cache is empty): skips the rest of
    /// its segment or, in the segment being written, up to what is written (and makes the writer
    /// start a new segment); counts the events skipped.
    fn skip_damage(
        &self,
        rd: &mut Reader,
        seg: Seg,
        written_end: u64,
        open_written: (u64, u64),
        why: String,
    ) {
        let at = rd.next_seq;
        rd.file = None;
        let to = if open_written.0 == seg.first {
            // Go on where the writer is: the file position of `written_end`.
            let path = self.dir.join(format::segment_name(seg.first));
            if let Ok(mut f) = File::open(&path) {
                if f.seek(SeekFrom::Start(open_written.1)).is_ok() {
                    rd.file = Some((seg.first, BufReader::with_capacity(64 << 10, f)));
                }
            }
            written_end
        } else {
            seg.end.min(written_end)
        };
        rd.next_seq = to.max(at + 1);
        let mut st = lock(&self.state);
        if open_written.0 == seg.first {
            st.rotate = true;
        }
        let lost = st.skip_to(rd.next_seq);
        st.collect_dead();
        let wake = !st.to_delete.is_empty();
        drop(st);
        if wake {
            self.wake_writer.notify_one();
        }
        self.stats.corrupt_events.fetch_add(lost, Ordering::Relaxed);
        self.record_lost(lost);
        tracing::warn!(
            queue = %self.dir.display(), segment = seg.first, seq = at, events = lost, problem = %why,
            "durable queue: corrupt segment data skipped"
        );
    }
}

/// What [`Inner::take`] found.
enum Take {
    Batch(Batch),
    /// Closed and empty.
    Done,
    /// Nothing written to read yet.
    Wait,
    /// Records are written but not read yet.
    Read,
}

impl Inner {
    /// Hands out up to `max_events` decoded events (or the batch still in flight).
    fn take(&self, max_events: usize) -> Take {
        let mut rd = lock(&self.reader);
        if let Some((_, batch)) = &rd.inflight {
            return Take::Batch(batch.clone());
        }
        let mut st = lock(&self.state);
        let skip_before = st.skip_before;
        while rd.cache.front().is_some_and(|(seq, _, _)| *seq < skip_before) {
            let (_, _, size) = rd.cache.pop_front().expect("front exists");
            rd.cache_bytes -= size;
        }
        if !rd.cache.is_empty() {
            let n = max_events.min(rd.cache.len());
            let first = rd.cache[0].0;
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                let (_, event, size) = rd.cache.pop_front().expect("n <= len");
                rd.cache_bytes -= size;
                events.push(event);
            }
            // Events before `first` are gone (skipped): the head moves past them.
            st.head = st.head.max(first);
            st.inflight_end = first + n as u64;
            let batch = Batch::from(events);
            rd.inflight = Some((first, batch.clone()));
            return Take::Batch(batch);
        }
        if rd.next_seq < st.written_end {
            Take::Read
        } else if st.closed && st.len() == 0 {
            Take::Done
        } else {
            Take::Wait
        }
    }
}

impl EventQueue for DurableQueue {
    fn push(&self, batch: Batch) -> Result<usize, QueueError> {
        self.inner.push(&batch).map(|(dropped, _)| dropped)
    }

    fn push_persisted(&self, batch: Batch) -> Result<(usize, Option<Persisted>), QueueError> {
        let (dropped, kept) = self.inner.push(&batch)?;
        let Some((first, end)) = kept.filter(|_| self.inner.config.fsync == Fsync::Always) else {
            return Ok((dropped, None));
        };
        let errors = self.inner.error_end.clone();
        let mut durable = self.inner.durable.subscribe();
        let wait: Persisted = Box::pin(async move {
            if durable.wait_for(|d| *d >= end).await.is_err() {
                return Err(BoxError::from(
                    "durable queue: stopped before the events were written",
                ));
            }
            if errors.load(Ordering::Relaxed) > first {
                return Err(BoxError::from("durable queue: write failed, events not durable"));
            }
            Ok(())
        });
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
        let mut rd = lock(&self.inner.reader);
        let Some((first, batch)) = rd.inflight.take() else {
            return;
        };
        let n = n.min(batch.len());
        let mut st = lock(&self.inner.state);
        st.head = first + n as u64;
        if n < batch.len() {
            // Not acknowledged: back to the front of the read-ahead, in order.
            for (i, event) in batch.iter().enumerate().skip(n).rev() {
                rd.cache.push_front((first + i as u64, event.clone(), 0));
            }
            st.inflight_end = st.head;
        } else {
            st.inflight_end = st.inflight_end.max(st.head);
        }
        st.collect_dead();
        let wake = !st.to_delete.is_empty();
        drop(st);
        drop(rd);
        if wake {
            self.inner.wake_writer.notify_one();
        }
    }

    fn len(&self) -> usize {
        lock(&self.inner.state).len() as usize
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

    fn is_persistent(&self) -> bool {
        true
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

/// The writer thread: the only one that writes, syncs and deletes files.
struct Writer {
    inner: Arc<Inner>,
    ack_file: File,
    ack_counter: u64,
    persisted_head: u64,
    /// The segment being appended to, and the length of its file.
    open: Option<(u64, File, u64)>,
    /// A segment whose file continues (the last one found at recovery), and its length.
    resume: Option<(u64, u64)>,
    /// A segment whose write failed: the rest of its records are not written.
    failed: Option<u64>,
    dirty_data: bool,
    dirty_ack: bool,
    dirty_dir: bool,
    last_sync: Instant,
}

impl Writer {
    fn new(inner: Arc<Inner>, ack_file: File, resume: Option<(u64, u64)>, head: u64) -> Self {
        Self {
            inner,
            ack_file,
            ack_counter: 0,
            persisted_head: head,
            open: None,
            resume,
            failed: None,
            dirty_data: false,
            dirty_ack: false,
            dirty_dir: false,
            last_sync: Instant::now(),
        }
    }

    fn every(&self) -> Duration {
        match self.inner.config.fsync {
            Fsync::Interval(d) => d,
            _ => DurableConfig::DEFAULT_FSYNC_INTERVAL,
        }
    }

    fn run(mut self) {
        let always = self.inner.config.fsync == Fsync::Always;
        loop {
            let every = self.every();
            let (chunks, deletes, head, stop, flush, round_end) = {
                let mut st = lock(&self.inner.state);
                loop {
                    if st.stop {
                        break;
                    }
                    let has_data = !st.pending.is_empty() && !st.paused;
                    let flush_wanted = st.flush_wanted > *self.inner.flushed.borrow();
                    if has_data || !st.to_delete.is_empty() || flush_wanted {
                        break;
                    }
                    let dirty = self.dirty_data || self.dirty_ack || st.head != self.persisted_head;
                    if dirty {
                        let left = every.saturating_sub(self.last_sync.elapsed());
                        if left.is_zero() {
                            break;
                        }
                        st.writer_idle = true;
                        st = self
                            .inner
                            .wake_writer
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    } else {
                        st.writer_idle = true;
                        st = self.inner.wake_writer.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.writer_idle = false;
                }
                let chunks: Vec<Chunk> = if st.paused && !st.stop {
                    Vec::new()
                } else {
                    st.pending_bytes = 0;
                    st.pending.drain(..).collect()
                };
                let round_end = chunks.last().map(|c| c.end);
                let live: Vec<Chunk> = chunks
                    .into_iter()
                    .filter(|c| st.segments.iter().any(|s| s.first == c.segment))
                    .collect();
                let deletes = std::mem::take(&mut st.to_delete);
                let flush = (st.flush_wanted > *self.inner.flushed.borrow()).then_some(st.flush_wanted);
                (live, deletes, st.head, st.stop, flush, round_end)
            };

            let wrote = !chunks.is_empty();
            if wrote {
                self.write(chunks);
            }
            if let Some(end) = round_end {
                let mut st = lock(&self.inner.state);
                st.written_end = st.written_end.max(end);
                if let Some((segment, _, len)) = &self.open {
                    st.open_written = (*segment, *len);
                }
                drop(st);
                self.inner.readable.notify_one();
            }
            if head != self.persisted_head {
                self.write_ack(head);
            }
            let due = self.last_sync.elapsed() >= every;
            if (always && round_end.is_some()) || due || flush.is_some() || stop {
                self.sync(due || flush.is_some() || stop);
            }
            for first in deletes {
                if self.open.as_ref().is_some_and(|(f, _, _)| *f == first) {
                    self.open = None;
                }
                let path = self.inner.dir.join(format::segment_name(first));
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(segment = %path.display(), error = %e,
                        "durable queue: cannot delete segment"),
                }
            }
            if let Some(request) = flush {
                self.inner.flushed.send_replace(request);
            }
            if stop {
                let st = lock(&self.inner.state);
                if st.pending.is_empty() && st.to_delete.is_empty() {
                    return;
                }
            }
        }
    }

    /// Writes the chunks, each to its segment file (created on first use).
    fn write(&mut self, chunks: Vec<Chunk>) {
        let stats = &self.inner.stats;
        stats.writes.fetch_add(1, Ordering::Relaxed);
        for chunk in chunks {
            if self.failed == Some(chunk.segment) {
                continue;
            }
            let records = count_records(&chunk.bytes);
            let result = self.file_for(chunk.segment).and_then(|(f, len)| {
                f.write_all(&chunk.bytes)?;
                *len += chunk.bytes.len() as u64;
                Ok(())
            });
            match result {
                Ok(()) => {
                    self.inner.stats.written.fetch_add(records, Ordering::Relaxed);
                    self.dirty_data = true;
                }
                Err(e) => {
                    self.inner.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.inner.error_end.fetch_max(chunk.end, Ordering::Relaxed);
                    tracing::error!(queue = %self.inner.dir.display(), events = records, error = %e,
                        "durable queue: write failed, the events are lost");
                    // The reader finds the damage and counts what it skips; new events go to a
                    // new segment.
                    self.failed = Some(chunk.segment);
                    self.open = None;
                    lock(&self.inner.state).rotate = true;
                }
            }
        }
    }

    /// The open file of `segment` and its length, creating it (with its header) if it is new.
    fn file_for(&mut self, segment: u64) -> io::Result<(&mut File, &mut u64)> {
        if self.open.as_ref().map(|(s, _, _)| *s) != Some(segment) {
            if let Some((_, old, _)) = self.open.take() {
                // A sealed segment is complete on disk before the next one gets data.
                if self.dirty_data {
                    old.sync_data()?;
                    self.inner.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            let path = self.inner.dir.join(format::segment_name(segment));
            let (file, len) = match self.resume {
                Some((s, len)) if s == segment => (OpenOptions::new().append(true).open(&path)?, len),
                _ => {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)?;
                    f.write_all(&format::segment_header(segment))?;
                    self.dirty_dir = true;
                    (f, format::SEGMENT_HEADER)
                }
            };
            self.resume = None;
            self.open = Some((segment, file, len));
        }
        let (_, file, len) = self.open.as_mut().expect("opened above");
        Ok((file, len))
    }

    fn write_ack(&mut self, head: u64) {
        self.ack_counter += 1;
        let slot = format::encode_ack(self.ack_counter, head);
        let offset = (self.ack_counter % 2) * format::ACK_SLOT as u64;
        let result = self
            .ack_file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.ack_file.write_all(&slot));
        match result {
            Ok(()) => {
                self.persisted_head = head;
                self.dirty_ack = true;
            }
            Err(e) => tracing::warn!(queue = %self.inner.dir.display(), error = %e,
                "durable queue: cannot record acknowledgements (they will be redelivered)"),
        }
    }

    /// Forces data (and, when `all`, the ack file) to disk, then publishes what is durable.
    fn sync(&mut self, all: bool) {
        let end = lock(&self.inner.state).written_end;
        let mut ok = true;
        if self.dirty_data {
            if let Some((_, f, _)) = &self.open {
                if let Err(e) = f.sync_data() {
                    ok = false;
                    tracing::error!(queue = %self.inner.dir.display(), error = %e, "durable queue: fsync failed");
                }
                self.inner.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            self.dirty_data = false;
        }
        if self.dirty_dir {
            if let Err(e) = File::open(&self.inner.dir).and_then(|d| d.sync_all()) {
                tracing::warn!(queue = %self.inner.dir.display(), error = %e, "durable queue: directory fsync failed");
            }
            self.dirty_dir = false;
        }
        if all {
            if self.dirty_ack {
                let _ = self.ack_file.sync_data();
                self.dirty_ack = false;
            }
            self.last_sync = Instant::now();
        }
        if !ok {
            self.inner.error_end.fetch_max(end, Ordering::Relaxed);
        }
        self.inner.durable.send_if_modified(|d| {
            let changed = end > *d;
            *d = (*d).max(end);
            changed
        });
    }
}

/// How many records `bytes` (whole records) holds.
fn count_records(mut bytes: &[u8]) -> u64 {
    let mut n = 0;
    while bytes.len() >= format::RECORD_HEADER {
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        bytes = bytes.get(format::RECORD_HEADER + len..).unwrap_or(&[]);
        n += 1;
    }
    n
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

//! A disk-backed [`EventQueue`](super::EventQueue): the endpoint's backlog survives a restart,
//! a crash and `kill -9`, with memory bounded whatever its size.
//!
//! Selected per endpoint with [`EndpointBuilder::durable_queue`](crate::endpoint::EndpointBuilder::durable_queue)
//! or, in the YAML, with `path` in the endpoint's `queue:` (see [`config`](crate::config)):
//!
//! ```yaml
//! queue:
//!   path: /var/lib/registry/notify/audit   # one directory per endpoint
//!   maxbytes: 1GiB                          # disk bound (default 1 GiB)
//!   fsync: always                           # or interval (default), with fsyncinterval: 1s
//!   overflow: dropoldest                    # when full (capacity events, or maxbytes)
//! ```
//!
//! # Guarantees
//!
//! - **`fsync: always`**: a request's response is released only once its events are on disk.
//!   Concurrent requests share one fsync (group commit): the writer thread writes everything that
//!   arrived while the previous fsync ran, then syncs once. Every success a client saw implies a
//!   durable event. Every request that yields events for the endpoint waits, pulls included (drop
//!   them with `ignore: {actions: [pull]}` if they do not matter); events that need a lookup wait
//!   for it too, and a pull emitted at the end of its body (`pull_on_body_end`) cannot hold its
//!   response.
//! - **`fsync: interval`** (default, every `fsyncinterval`, default 1 s): the request path never
//!   waits on the disk. The writer thread hands events to the operating system as they come
//!   (within microseconds), so a crash of the process (`kill -9`) loses nothing it had written;
//!   a crash of the machine (power loss, kernel panic) loses at most the last interval.
//! - An event is removed only after the endpoint acknowledged it (or it was dead-lettered).
//!   After a restart, delivery resumes in order with the same event ids; events delivered just
//!   before a crash may be delivered again (at-least-once, same id).
//! - Memory is bounded whatever the backlog: a few MiB per queue (an 8 MiB write buffer, a read-ahead
//!   of at most 256 events or 1 MiB, and the segment list). Events are read back from disk.
//! - Disk is bounded by `maxbytes` (and the backlog by `capacity` events): the `overflow` policy
//!   drops the oldest waiting events (whole segments) or refuses the newest, and every dropped
//!   event is counted in the endpoint's `dropped` metric.
//! - A corrupt or truncated tail (a torn write at a crash) is detected when the queue opens, cut
//!   off, logged and counted (`DurableStats::corrupt_bytes`); a record that fails its checksum
//!   later is skipped with the rest of its segment, counted exactly. Never a panic or a stuck queue.
//! - Graceful shutdown flushes and fsyncs, and returns at once: the backlog waits on disk for the
//!   next start.
//!
//! One directory holds one queue: a process refuses to open a directory twice, and a second
//! process refuses one that another has open — the queue holds an exclusive `flock` on
//! `DIR/lock`, which the kernel releases when the queue is dropped or its process dies
//! (`kill -9` included), so a restarted registry opens it again at once.
//!
//! # Files
//!
//! ```text
//! DIR/00000000000000000000.seg   segment: a header, then records; named by its first sequence number
//!     header  (16 bytes)  "RNQSEG" 0x00 0x01 | first sequence number u64
//!     record  (16 + len)  len u32 | crc32(len ‖ seq ‖ payload) u32 | seq u64 | payload (the event's JSON)
//! DIR/ack                        two 32-byte slots, written alternately: every event before `head`
//!     slot    (32 bytes)  "RNQACK" 0x00 0x01 | counter u64 | head u64 | crc32 u32 | 0u32   was acknowledged
//! DIR/lock                       empty; locked (flock, exclusive) while a process has the queue open
//! ```
//!
//! Integers are little-endian. Records carry consecutive sequence numbers, so a segment holds the
//! events from its first sequence number to the next segment's, and what a damaged segment loses is
//! known exactly. Segments are appended to by one writer thread, fsynced when the next one starts,
//! and deleted once every event in them is acknowledged or dropped. The event ids are in the
//! payload, so a redelivered event has the same id.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "durable")]
mod format;
#[cfg(feature = "durable")]
mod log;

#[cfg(feature = "durable")]
#[doc(inline)]
pub use log::{DurableQueue, DurableStats, WriterPause};

/// When the durable queue forces its writes to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fsync {
    /// After every write, before the requests whose events it holds are answered (group commit).
    ///
    /// [`Notifications::builder`](crate::notifications::Notifications::builder) makes the layer
    /// wait when an endpoint has it; a dispatcher built by hand needs
    /// [`wait_for_sinks(true)`](crate::dispatcher::Dispatcher::wait_for_sinks).
    Always,
    /// Every interval (when something changed): the request path never waits on the disk.
    Interval(Duration),
}

impl Default for Fsync {
    fn default() -> Self {
        Fsync::Interval(DurableConfig::DEFAULT_FSYNC_INTERVAL)
    }
}

/// Where and how an endpoint's durable queue keeps its events.
///
/// ```
/// use std::time::Duration;
/// use registry_notify::queue::{DurableConfig, Fsync};
///
/// let config = DurableConfig::new("/var/lib/registry/notify/audit")
///     .max_bytes(256 << 20)
///     .fsync(Fsync::Always);
/// assert_eq!(config.segment_size(), 32 << 20);
/// assert_eq!(DurableConfig::new("q").fsync, Fsync::Interval(Duration::from_secs(1)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableConfig {
    /// The queue's directory (created if missing); one per endpoint.
    pub path: PathBuf,
    /// Most bytes on disk (default 1 GiB); at least 64 KiB.
    pub max_bytes: u64,
    /// When writes are forced to disk (default every second).
    pub fsync: Fsync,
    /// Size of one segment file; default `max_bytes / 8`, between 4 KiB and 64 MiB. The
    /// overflow policy frees space a segment at a time.
    pub segment_bytes: Option<u64>,
}

impl DurableConfig {
    /// The default `max_bytes`: 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    /// The smallest `max_bytes` accepted: 64 KiB.
    pub const MIN_MAX_BYTES: u64 = 64 << 10;
    /// The default fsync interval: 1 s.
    pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

    /// A queue in directory `path`, with the defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            fsync: Fsync::default(),
            segment_bytes: None,
        }
    }

    /// Sets the disk bound.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets the fsync policy.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// Sets the segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = Some(bytes);
        self
    }

    /// The segment size in effect.
    pub fn segment_size(&self) -> u64 {
        self.segment_bytes
            .unwrap_or(self.max_bytes / 8)
            .clamp(4 << 10, 64 << 20)
            .min(self.max_bytes.max(4 << 10))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Whether responses wait for the disk (`fsync: always`).
    pub fn is_always(&self) -> bool {
        self.fsync == Fsync::Always
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("queue path must not be empty".into());
        }
        if self.max_bytes < Self::MIN_MAX_BYTES {
            return Err(format!(
                "queue maxbytes must be at least {} (64 KiB)",
                Self::MIN_MAX_BYTES
            ));
        }
        if let Fsync::Interval(d) = self.fsync {
            if d.is_zero() {
                return Err("queue fsync interval must be > 0".into());
            }
        }
        Ok(())
    }
}

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
//! - **`fsync: always`**: every successful `push_persisted` wait implies that its events are on
//!   disk (written and fsynced, directory entry included); a failure resolves `Err` and the
//!   events are not kept (never delivered). A push is all or nothing: it fails if any of its
//!   events cannot be kept — refused by the bounds (`capacity` with `dropnewest`, `maxbytes`, the
//!   8 MiB write buffer, an event too large), a write or fsync error, no space left on the device
//!   (`ENOSPC`), or dropped by the `dropoldest` policy before it was durable. Concurrent requests
//!   share one fsync (group commit): the writer thread writes everything that arrived while the
//!   previous fsync ran, then syncs once; such a write round is all or nothing too, so a failure
//!   is rolled back (truncated) and fails every push of the round. The `Queue` service's call
//!   resolves with the error, so that the request fails closed, and the endpoint counts the
//!   events as `refused`. Every
//!   request that yields events for the endpoint waits, pulls included (drop them with
//!   `ignore: {actions: [pull]}` if they do not matter); events that need a lookup wait for it
//!   too, and a pull emitted at the end of its body (`pull_on_body_end`) cannot hold its response.
//! - **`fsync: interval`** (default, every `fsyncinterval`, default 1 s): the request path never
//!   waits on the disk and a push never fails for it. The writer thread hands events to the
//!   operating system as they come (within microseconds), so a crash of the process (`kill -9`)
//!   loses nothing it had written; a crash of the machine (power loss, kernel panic) loses at
//!   most the last interval. A write that fails (no space, I/O error) loses its events: each one
//!   is counted (`events_lost` by reason `no_space` or `write_error`, and `dropped`) and logged
//!   once per burst, never once per event; writing resumes by itself once space is free. An
//!   fsync that fails is logged and counted in [`DurableStats::write_errors`]: what it did not
//!   persist is only lost if the machine crashes, and cannot be known.
//! - A failed write never leaves anything behind: a partial record is truncated back to the
//!   last good length, a segment whose header could not be written is removed, and the next
//!   record written declares the missing sequence numbers with a gap frame, so they are not taken
//!   for damage later.
//! - An event is removed only after the endpoint acknowledged it (or it was dead-lettered).
//!   After a restart, delivery resumes in order with the same event ids; events delivered just
//!   before a crash may be delivered again (at-least-once, same id).
//! - Memory is bounded whatever the backlog: a few MiB per queue (an 8 MiB write buffer, a read-ahead
//!   of at most 256 events or 1 MiB, the segment list, and one range per run of missing events).
//!   Events are read back from disk.
//! - Disk is bounded by `maxbytes` (and the backlog by `capacity` events): the `overflow` policy
//!   drops the oldest waiting events (whole segments) or refuses the newest, and every dropped
//!   event is counted in the endpoint's `dropped` metric (and `events_lost`, reason `overflow`).
//!
//! # Recovery
//!
//! Opening the queue scans every segment file, streaming (memory stays bounded; the time is that
//! of reading the backlog once), so that the pending count is exact: it equals the intact records
//! on disk after the acknowledged head, whatever failed writes or damage left. Then:
//!
//! - A torn tail of the last segment (a crash in the middle of a write) is cut off, logged and
//!   counted in [`DurableStats::corrupt_tails`] and `corrupt_bytes`. That is not the loss of a
//!   record that was reported durable; damage at the very end of the last segment is
//!   indistinguishable from it and treated the same way.
//! - A damaged record costs that record only: the reader resynchronises on the next frame marker
//!   whose frame validates, and sequence numbers tell exactly how many records were skipped (a
//!   gap frame tells which missing ones were never written). Every skipped record is counted in
//!   `corrupt_events` (and `events_lost`, reason `corrupt`): a jump in sequence numbers counts as
//!   damage when damaged bytes lie right before it (in its segment, or at the end of the segment
//!   before); a jump that no gap frame declares and no damage explains is not counted (a crafted
//!   file, or a version 1 segment). A damaged segment header costs no record: the file name and
//!   the records' own sequence numbers are enough; a segment whose header is valid but whose
//!   every record is damaged is kept, so that its loss is counted.
//! - Files the queue did not write or cannot trust — a `.seg` name that is not ours, a header or
//!   a record naming a sequence number that contradicts the file name or the segment before,
//!   sequence numbers going backwards, values beyond 2⁶³ − 1, nothing valid at all — are moved
//!   aside as `<name>.corrupt`, with one log line each, and never read. A file shorter than a
//!   header and equal to the start of one (torn while it was created), or a header alone, is
//!   removed. Other file names are left alone (logged).
//! - An ack file that is not valid, or whose head lies beyond the last record on disk (farther
//!   than the torn tail just cut off could have held — a machine crash may persist the ack before
//!   the records), is not trusted: every event on disk is delivered again (at-least-once), never
//!   lost, and the ack file is rewritten at once.
//! - Version 1 segments (no markers; written by earlier releases) are read: an upgraded
//!   queue keeps its backlog. They are never appended to (new events go to a new version 2
//!   segment) and are deleted once delivered. In them, the first damaged record ends what can be
//!   read of the segment (the records after it are counted as corrupt, or cut off as a torn
//!   tail in the last segment).
//!
//! Never a panic, a wrapped number or a stuck queue on any file content: every number read from
//! disk is range-checked, and arithmetic on it is checked or saturating.
//!
//! One directory holds one queue: a process refuses to open a directory twice, and a second
//! process refuses one that another has open — the queue holds an exclusive `flock` on
//! `DIR/lock`, which the kernel releases when the queue is dropped or its process dies
//! (`kill -9` included), so a restarted registry opens it again at once.
//!
//! # Files (format version 2)
//!
//! ```text
//! DIR/00000000000000000000.seg   segment, named by the first sequence number it was created for
//!     header  (24 bytes)  "RNQSEG" 0x00 0x02 | first u64 | crc32(first 16 bytes) u32 | 0u32
//!     record  (24 + len)  FF "RNQrec" FE | len u32 | crc32(len ‖ seq ‖ payload) u32 | seq u64 | payload
//!     gap     (32 bytes)  FF "RNQgap" FE | from u64 | to u64 | crc32(from ‖ to) u32 | 0u32
//! DIR/ack                        two 32-byte slots, written alternately: every event before `head`
//!     slot    (32 bytes)  "RNQACK" 0x00 0x01 | counter u64 | head u64 | crc32 u32 | 0u32   was acknowledged
//! DIR/lock                       empty; locked (flock, exclusive) while a process has the queue open
//! DIR/<name>.corrupt             a file moved aside at open (never read again; remove at will)
//! ```
//!
//! Integers are little-endian. The payload is the event's JSON (its id included, so a redelivered
//! event has the same id); being UTF-8, it never contains the marker bytes `FF` and `FE`. Records
//! carry rising sequence numbers; a gap frame, written just before the next record after a failed
//! write, declares the events `[from, to)` that were never written. Segments are appended to by
//! one writer thread, fsynced when the next one starts, and deleted once every event in them is
//! acknowledged, dropped or missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;

#[cfg(feature = "durable")]
pub(crate) mod format;
#[cfg(feature = "durable")]
mod frames;
#[cfg(feature = "durable")]
mod inner;
#[cfg(feature = "durable")]
mod push;
#[cfg(feature = "durable")]
mod queue;
#[cfg(feature = "durable")]
mod readahead;
#[cfg(feature = "durable")]
mod reader;
#[cfg(feature = "durable")]
mod recovery;
#[cfg(feature = "durable")]
mod state;
#[cfg(feature = "durable")]
mod writer;

#[cfg(all(feature = "durable", any(test, feature = "test-util")))]
pub use queue::WriterPause;
#[cfg(feature = "durable")]
#[doc(inline)]
pub use queue::{DurableQueue, DurableStats};

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

    /// Checks the values: the one check of them, for the builder and the YAML alike. The
    /// error's path is the YAML key, relative to the endpoint (`queue.maxbytes`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::field("queue.path", "must not be empty"));
        }
        if self.max_bytes < Self::MIN_MAX_BYTES {
            return Err(ConfigError::field(
                "queue.maxbytes",
                format!("must be at least {} (64KiB)", Self::MIN_MAX_BYTES),
            ));
        }
        if let Fsync::Interval(d) = self.fsync {
            if d.is_zero() {
                return Err(ConfigError::field("queue.fsyncinterval", "must be > 0"));
            }
        }
        Ok(())
    }
}

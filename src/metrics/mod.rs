//! Per-endpoint delivery metrics, shared by every stage of an endpoint's stack.
//!
//! One [`EndpointMetrics`] is created per endpoint and handed (as an `Arc`) to its
//! filter, queue, retry and HTTP stages; [`EndpointMetrics::snapshot`] reads it as an
//! [`EndpointSnapshot`]. The counters follow Distribution's `notifications/metrics.go`:
//!
//! * `events` counts events entering the endpoint queue (ingress), `pending` is
//!   ingress minus egress (delivered, dead-lettered or dropped);
//! * `successes`, `failures` and `errors` count HTTP **attempts**, not events, so retries
//!   inflate them; `statuses` is keyed like Distribution, `"200 OK"`;
//! * our additions: `delivered` and `dead_lettered` (events), `dropped` (events lost
//!   to queue overflow or a failing sink), `filtered` (events dropped by the filter,
//!   which are *not* counted in `events`), `retries` (attempts after a failed one) and
//!   `breaker_open`;
//! * `events_lost` breaks lost events down by [`LossReason`] where the queue knows it (the
//!   durable queue: no space, write error, corrupt record, overflow; every one of them is in
//!   `dropped` too), and `refused` counts the events of requests failed closed because a durable
//!   `fsync: always` queue could not keep them (refused by its bounds, or not written: the
//!   client was told; also in `dropped`, not in `events_lost`).
//!
//! With the `metrics` feature every update is also exported through the
//! [`metrics`](https://docs.rs/metrics) facade under Distribution 3's Prometheus names:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `registry_notifications_events_total` | counter | `type` ∈ `Events`, `Successes`, `Failures`, `Errors`; `endpoint` |
//! | `registry_notifications_pending_total` | gauge | `endpoint` |
//! | `registry_notifications_status_total` | counter | `code` (`"200 OK"`), `endpoint` |
//!
//! and, beyond Distribution, `registry_notifications_delivered_total`,
//! `registry_notifications_dropped_total`, `registry_notifications_filtered_total`,
//! `registry_notifications_dead_lettered_total`, `registry_notifications_retries_total`
//! `registry_notifications_events_lost_total` (label `reason`: `no_space`, `write_error`,
//! `corrupt`, `overflow`), `registry_notifications_refused_total` (counters),
//! `registry_notifications_breaker_open` (gauge, 0 or 1) and
//! `registry_notifications_delivery_duration_seconds` (histogram: each HTTP attempt, from
//! sending the request to its response status or its error), all labelled with `endpoint`.
//!
//! Each name is described (its `# HELP` text) and each handle registered once, when the
//! endpoint is built, with the recorder installed at that time: install the recorder first.
//!
//! ```
//! use registry_notify::endpoint::Endpoint;
//! use registry_notify::{Action, Batch, Event, Target};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let endpoint = Endpoint::builder("listener", "https://user:secret@hooks.example/x?token=t")
//!     .build()
//!     .unwrap();
//! let (sink, handle) = endpoint.spawn();
//! let events: Batch = (0..3).map(|_| Event::new(Action::Push, Target::default())).collect();
//! sink.oneshot(events).await.unwrap();
//! let snap = handle.metrics();
//! assert_eq!((snap.events, snap.pending + snap.delivered + snap.dropped), (3, 3));
//! assert_eq!(snap.url, "https://***@hooks.example/x?***");
//! # handle.shutdown(tokio::time::Instant::now()).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use http::StatusCode;

use crate::event::Timestamp;

mod export;
mod recent;

pub use recent::{RecentDelivery, MAX_IDS, RECENT_DELIVERIES};

use export::{Counter, Exported};

/// The live counters of one endpoint; cheap atomics shared (in an `Arc`) by its stages.
pub struct EndpointMetrics {
    name: String,
    url: String,
    events: AtomicU64,
    pending: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    filtered: AtomicU64,
    dead_lettered: AtomicU64,
    retries: AtomicU64,
    breaker_open: AtomicBool,
    /// Events lost, by [`LossReason`] (in its declaration order).
    lost: [AtomicU64; 4],
    refused: AtomicU64,
    in_flight: AtomicU64,
    /// Unix time of the last success, in nanoseconds; 0 before the first.
    last_success: AtomicU64,
    last_error: Mutex<Option<LastError>>,
    recent: recent::Recent,
    /// Responses per status code (keyed `"200 OK"` in snapshots), with the exported counter.
    statuses: Mutex<BTreeMap<u16, (u64, Counter)>>,
    exported: Exported,
}

/// A point-in-time copy of an endpoint's counters (see the [module docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointSnapshot {
    /// Endpoint name.
    pub name: String,
    /// Endpoint URL with credentials (userinfo and query values) redacted.
    pub url: String,
    /// Events that entered the endpoint queue (Distribution's `Events`).
    pub events: u64,
    /// Events queued or in flight: ingress minus egress (Distribution's `Pending`).
    pub pending: u64,
    /// Attempts answered with a success status (Distribution's `Successes`).
    pub successes: u64,
    /// Attempts answered with a failure status (Distribution's `Failures`).
    pub failures: u64,
    /// Attempts that got no response: transport errors and timeouts (Distribution's `Errors`).
    pub errors: u64,
    /// Responses per status, keyed `"200 OK"` like Distribution (`Statuses`).
    pub statuses: BTreeMap<String, u64>,
    /// Events delivered (acknowledged by a success status).
    pub delivered: u64,
    /// Events lost: queue overflow, or an inner sink that failed without retry.
    pub dropped: u64,
    /// Events the endpoint's filter dropped; not counted in `events`.
    pub filtered: u64,
    /// Events handed to the dead-letter hook (permanent failure, `max_attempts`, `max_age`).
    pub dead_lettered: u64,
    /// Attempts that followed a failed attempt.
    pub retries: u64,
    /// Whether the endpoint is currently failing (breaker open / backing off).
    pub breaker_open: bool,
    /// Events lost, by reason, where the queue knows it (a part of `dropped`).
    pub events_lost: LostEvents,
    /// Events of requests failed closed: a durable `fsync: always` queue could not keep them
    /// (refused by its bounds, not written, or the queue closed), and the request was
    /// answered `503 Service Unavailable`. Never delivered, never claimed as delivered.
    pub refused: u64,
    /// Events in an HTTP attempt under way (part of `pending`).
    pub in_flight: u64,
    /// When an attempt last succeeded; `None` before the first success.
    pub last_success: Option<Timestamp>,
    /// The last attempt that failed, and why (secrets redacted); kept after a later success.
    pub last_error: Option<LastError>,
}

/// An attempt that failed: when, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LastError {
    /// When it failed.
    pub at: Timestamp,
    /// Why, as the delivery error says it, with credentials redacted (e.g. `endpoint
    /// answered 503 Service Unavailable`, or a transport error).
    pub error: String,
}

/// Why events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LossReason {
    /// A write to the durable queue failed for lack of space (`ENOSPC`).
    NoSpace,
    /// A write or fsync of the durable queue failed otherwise.
    WriteError,
    /// A damaged record of the durable queue (checksum, framing, or undecodable event).
    Corrupt,
    /// The queue's bounds (capacity, `maxbytes`, write buffer) and its overflow policy.
    Overflow,
}

impl LossReason {
    /// The label value: `no_space`, `write_error`, `corrupt`, `overflow`.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::NoSpace => "no_space",
            LossReason::WriteError => "write_error",
            LossReason::Corrupt => "corrupt",
            LossReason::Overflow => "overflow",
        }
    }

    fn index(self) -> usize {
        match self {
            LossReason::NoSpace => 0,
            LossReason::WriteError => 1,
            LossReason::Corrupt => 2,
            LossReason::Overflow => 3,
        }
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Events lost, by [`LossReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LostEvents {
    /// Writes that failed for lack of space.
    pub no_space: u64,
    /// Writes or fsyncs that failed otherwise.
    pub write_error: u64,
    /// Damaged records.
    pub corrupt: u64,
    /// The queue's bounds and overflow policy.
    pub overflow: u64,
}

impl LostEvents {
    /// The count for `reason`.
    pub fn get(&self, reason: LossReason) -> u64 {
        match reason {
            LossReason::NoSpace => self.no_space,
            LossReason::WriteError => self.write_error,
            LossReason::Corrupt => self.corrupt,
            LossReason::Overflow => self.overflow,
        }
    }

    /// All reasons together.
    pub fn total(&self) -> u64 {
        self.no_space
            .saturating_add(self.write_error)
            .saturating_add(self.corrupt)
            .saturating_add(self.overflow)
    }
}

/// `"<code> <canonical reason>"`, like Go's `fmt.Sprintf("%d %s", code, http.StatusText(code))`.
pub(crate) fn status_key(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""))
}

impl EndpointMetrics {
    /// New zeroed metrics for endpoint `name`; credentials in `url` are redacted on the way in.
    pub fn new(name: impl Into<String>, url: &str) -> Self {
        let name = name.into();
        Self {
            exported: Exported::new(&name),
            name,
            url: crate::secret::redact_url(url),
            events: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            breaker_open: AtomicBool::new(false),
            lost: Default::default(),
            refused: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            last_error: Mutex::new(None),
            recent: recent::Recent::default(),
            statuses: Mutex::new(BTreeMap::new()),
        }
    }

    /// The endpoint name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A consistent-enough copy of the counters (each counter is read atomically).
    pub fn snapshot(&self) -> EndpointSnapshot {
        let statuses = self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(&code, (n, _))| Some((status_key(StatusCode::from_u16(code).ok()?), *n)))
            .collect();
        EndpointSnapshot {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            statuses,
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            breaker_open: self.breaker_open.load(Ordering::Relaxed),
            events_lost: LostEvents {
                no_space: self.lost[LossReason::NoSpace.index()].load(Ordering::Relaxed),
                write_error: self.lost[LossReason::WriteError.index()].load(Ordering::Relaxed),
                corrupt: self.lost[LossReason::Corrupt.index()].load(Ordering::Relaxed),
                overflow: self.lost[LossReason::Overflow.index()].load(Ordering::Relaxed),
            },
            refused: self.refused.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            last_success: match self.last_success.load(Ordering::Relaxed) {
                0 => None,
                ns => Some(Timestamp::from_unix(
                    (ns / 1_000_000_000) as i64,
                    (ns % 1_000_000_000) as u32,
                )),
            },
            last_error: self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// An HTTP attempt carrying `n` events starts; they count as in flight until the returned
    /// guard is dropped (when the attempt ends, or is abandoned).
    pub(crate) fn attempt_started(&self, n: usize) -> InFlight<'_> {
        self.in_flight.fetch_add(n as u64, Ordering::Relaxed);
        InFlight {
            metrics: self,
            n: n as u64,
        }
    }

    /// Keeps one attempt among the endpoint's recent deliveries (the oldest goes beyond
    /// [`RECENT_DELIVERIES`]).
    pub(crate) fn record_recent(&self, entry: RecentDelivery) {
        self.recent.push(entry);
    }

    /// The endpoint's last attempts (at most [`RECENT_DELIVERIES`]), oldest first.
    pub fn recent_deliveries(&self) -> Vec<RecentDelivery> {
        self.recent.list()
    }

    /// An attempt failed with `error` (already free of secrets).
    pub(crate) fn set_last_error(&self, error: String) {
        let at = Timestamp::now();
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastError { at, error });
    }

    /// `n` events entered the queue: `events += n`, `pending += n`.
    pub(crate) fn record_ingress(&self, n: usize) {
        let n = n as u64;
        self.events.fetch_add(n, Ordering::Relaxed);
        let pending = self.pending.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        self.exported.events.increment(n);
        self.exported.pending.set(pending as f64);
    }

    /// `n` events left the queue (delivered, dead-lettered or dropped): `pending -= n`.
    pub(crate) fn record_egress(&self, n: usize) {
        let n = n as u64;
        let prev = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(n))
            })
            .unwrap_or(0);
        self.exported.pending.set(prev.saturating_sub(n) as f64);
    }

    /// One attempt carrying `events` events was answered with the success `status` (2xx,
    /// or 3xx when redirects count as success): `successes += 1`, `delivered += events`.
    pub(crate) fn record_success(&self, status: StatusCode, events: usize) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(events as u64, Ordering::Relaxed);
        let now = Timestamp::now().unix_nanos();
        // 0 stands for "never": an instant at or before 1970 is stored as 1 ns after it.
        self.last_success
            .store(u64::try_from(now).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
        self.exported.successes.increment(1);
        self.exported.delivered.increment(events as u64);
        self.add_status(status);
    }

    /// One attempt was answered with a status that is not a success.
    pub(crate) fn record_failure(&self, status: StatusCode) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.exported.failures.increment(1);
        self.add_status(status);
    }

    /// One attempt got no response (transport error or timeout); adds no status.
    pub(crate) fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.exported.errors.increment(1);
    }

    /// One HTTP attempt took `duration`, to its response status or its error (exported as a
    /// histogram only).
    pub(crate) fn record_attempt_duration(&self, duration: std::time::Duration) {
        self.exported.duration.record(duration.as_secs_f64());
    }

    /// `n` events were lost (queue overflow or a failing sink).
    pub(crate) fn record_dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        self.exported.dropped.increment(n as u64);
    }

    /// `n` events were lost for `reason`: the breakdown of `dropped` (which this does not
    /// change; record the events there too with [`record_dropped`](Self::record_dropped)).
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn record_events_lost(&self, reason: LossReason, n: u64) {
        self.lost[reason.index()].fetch_add(n, Ordering::Relaxed);
        self.exported.lost[reason.index()].increment(n);
    }

    /// `n` events of a request failed closed were refused (a durable `fsync: always` queue could
    /// not keep them); does not change `dropped`.
    pub(crate) fn record_refused(&self, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
        self.exported.refused.increment(n);
    }

    /// `n` events were dropped by the endpoint's filter.
    pub(crate) fn record_filtered(&self, n: usize) {
        self.filtered.fetch_add(n as u64, Ordering::Relaxed);
        self.exported.filtered.increment(n as u64);
    }

    /// `n` events were handed to the dead-letter hook.
    pub(crate) fn record_dead_lettered(&self, n: usize) {
        self.dead_lettered.fetch_add(n as u64, Ordering::Relaxed);
        self.exported.dead_lettered.increment(n as u64);
    }

    /// One attempt is about to repeat a failed one.
    pub(crate) fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.exported.retries.increment(1);
    }

    /// The endpoint started (`true`) or stopped (`false`) failing.
    pub(crate) fn set_breaker_open(&self, open: bool) {
        self.breaker_open.store(open, Ordering::Relaxed);
        self.exported.breaker_open.set(if open { 1.0 } else { 0.0 });
    }

    fn add_status(&self, status: StatusCode) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        let (n, counter) = statuses
            .entry(status.as_u16())
            .or_insert_with(|| (0, self.exported.status(status_key(status))));
        *n += 1;
        counter.increment(1);
    }
}

/// Events of an attempt under way, counted in `in_flight` until dropped.
pub(crate) struct InFlight<'a> {
    metrics: &'a EndpointMetrics,
    n: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let n = self.n;
        let _ = self
            .metrics
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

impl fmt::Debug for EndpointMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EndpointMetrics").field(&self.snapshot()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keys_match_go() {
        assert_eq!(status_key(StatusCode::OK), "200 OK");
        assert_eq!(
            status_key(StatusCode::TEMPORARY_REDIRECT),
            "307 Temporary Redirect"
        );
        assert_eq!(status_key(StatusCode::BAD_REQUEST), "400 Bad Request");
        assert_eq!(status_key(StatusCode::from_u16(599).unwrap()), "599 ");
    }

    #[test]
    fn pending_is_ingress_minus_egress() {
        let m = EndpointMetrics::new("x", "http://h/");
        m.record_ingress(5);
        m.record_egress(2);
        m.record_failure(StatusCode::BAD_GATEWAY);
        m.record_error();
        m.record_dropped(1);
        m.record_egress(1);
        let s = m.snapshot();
        assert_eq!(
            (s.events, s.pending, s.failures, s.errors, s.dropped),
            (5, 2, 1, 1, 1)
        );
        assert_eq!(s.statuses.get("502 Bad Gateway"), Some(&1));
        m.record_events_lost(LossReason::NoSpace, 2);
        m.record_events_lost(LossReason::Corrupt, 1);
        m.record_refused(4);
        let s = m.snapshot();
        assert_eq!(
            (
                s.events_lost.no_space,
                s.events_lost.corrupt,
                s.events_lost.total()
            ),
            (2, 1, 3)
        );
        assert_eq!(s.events_lost.get(LossReason::Overflow), 0);
        assert_eq!(s.refused, 4);
        assert_eq!(LossReason::NoSpace.to_string(), "no_space");
        // Egress never underflows.
        m.record_egress(100);
        assert_eq!(m.snapshot().pending, 0);
    }

    #[test]
    fn in_flight_last_success_and_last_error() {
        let m = EndpointMetrics::new("x", "http://h/");
        let s = m.snapshot();
        assert_eq!((s.in_flight, s.last_success, s.last_error), (0, None, None));
        let first = m.attempt_started(3);
        let second = m.attempt_started(2);
        assert_eq!(m.snapshot().in_flight, 5);
        drop(first);
        assert_eq!(m.snapshot().in_flight, 2);
        drop(second);
        assert_eq!(m.snapshot().in_flight, 0);

        let before = Timestamp::now();
        m.set_last_error("endpoint answered 503 Service Unavailable".into());
        m.record_success(StatusCode::OK, 1);
        let after = Timestamp::now();
        let s = m.snapshot();
        let success = s.last_success.expect("a success");
        assert!(
            before <= success && success <= after,
            "{before} {success} {after}"
        );
        let error = s.last_error.expect("kept after a success");
        assert_eq!(error.error, "endpoint answered 503 Service Unavailable");
        assert!(before <= error.at && error.at <= success);
    }
}

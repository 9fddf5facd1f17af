//! The export of one endpoint's counters through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): every handle is registered once, when the endpoint is built, so an
//! update is an atomic add on a handle, with no label allocation or registry lookup. Without
//! the feature the handles are no-ops.
//!
//! Handles belong to the recorder installed when they are made: install the recorder (e.g.
//! `metrics_exporter_prometheus::PrometheusBuilder::install_recorder`) before building the
//! notifications. The names' `# HELP` texts are described to that recorder at the same time.

#[cfg(feature = "metrics")]
pub(super) use metrics::{Counter, Gauge, Histogram};
#[cfg(not(feature = "metrics"))]
pub(super) use noop::{Counter, Gauge, Histogram};

#[cfg(feature = "metrics")]
use super::LossReason;

/// Each name exported, its kind, and its `# HELP` text.
#[cfg(feature = "metrics")]
pub(super) const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "registry_notifications_events_total",
        Kind::Counter,
        "Notification attempts and events by type: Events (entered the queue), Successes, Failures, Errors (attempts)",
    ),
    (
        "registry_notifications_pending_total",
        Kind::Gauge,
        "Events queued or in flight",
    ),
    (
        "registry_notifications_status_total",
        Kind::Counter,
        "Endpoint responses by status code",
    ),
    (
        "registry_notifications_delivered_total",
        Kind::Counter,
        "Events delivered (acknowledged by a success status)",
    ),
    (
        "registry_notifications_dropped_total",
        Kind::Counter,
        "Events lost: queue overflow, a damaged or unwritable durable queue, or a failing sink",
    ),
    (
        "registry_notifications_events_lost_total",
        Kind::Counter,
        "Events lost, by reason: no_space, write_error, corrupt, overflow",
    ),
    (
        "registry_notifications_refused_total",
        Kind::Counter,
        "Events of requests failed closed because a durable fsync: always queue could not keep them",
    ),
    (
        "registry_notifications_filtered_total",
        Kind::Counter,
        "Events dropped by the endpoint's filter",
    ),
    (
        "registry_notifications_dead_lettered_total",
        Kind::Counter,
        "Events handed to the dead-letter hook",
    ),
    (
        "registry_notifications_retries_total",
        Kind::Counter,
        "Attempts that repeated a failed one",
    ),
    (
        "registry_notifications_breaker_open",
        Kind::Gauge,
        "1 while the endpoint is failing (breaker open or backing off), else 0",
    ),
    (
        "registry_notifications_delivery_duration_seconds",
        Kind::Histogram,
        "Duration of a delivery attempt, from sending the request to the response status",
    ),
];

/// The kind of an exported name.
#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The handles of one endpoint.
pub(super) struct Exported {
    #[cfg(feature = "metrics")]
    endpoint: metrics::SharedString,
    pub(super) events: Counter,
    pub(super) successes: Counter,
    pub(super) failures: Counter,
    pub(super) errors: Counter,
    pub(super) pending: Gauge,
    pub(super) delivered: Counter,
    pub(super) dropped: Counter,
    pub(super) lost: [Counter; 4],
    pub(super) refused: Counter,
    pub(super) filtered: Counter,
    pub(super) dead_lettered: Counter,
    pub(super) retries: Counter,
    pub(super) breaker_open: Gauge,
    pub(super) duration: Histogram,
}

#[cfg(feature = "metrics")]
impl Exported {
    /// Registers the handles of endpoint `name` with the installed recorder, after describing
    /// every name to it.
    pub(super) fn new(name: &str) -> Self {
        describe();
        let endpoint = metrics::SharedString::from(name.to_owned());
        let ep = || endpoint.clone();
        let events = |kind: &'static str| metrics::counter!("registry_notifications_events_total", "type" => kind, "endpoint" => ep());
        let lost = |reason: LossReason| {
            metrics::counter!(
                "registry_notifications_events_lost_total",
                "reason" => reason.as_str(),
                "endpoint" => ep()
            )
        };
        Self {
            events: events("Events"),
            successes: events("Successes"),
            failures: events("Failures"),
            errors: events("Errors"),
            pending: metrics::gauge!("registry_notifications_pending_total", "endpoint" => ep()),
            delivered: metrics::counter!("registry_notifications_delivered_total", "endpoint" => ep()),
            dropped: metrics::counter!("registry_notifications_dropped_total", "endpoint" => ep()),
            lost: [
                lost(LossReason::NoSpace),
                lost(LossReason::WriteError),
                lost(LossReason::Corrupt),
                lost(LossReason::Overflow),
            ],
            refused: metrics::counter!("registry_notifications_refused_total", "endpoint" => ep()),
            filtered: metrics::counter!("registry_notifications_filtered_total", "endpoint" => ep()),
            dead_lettered: metrics::counter!("registry_notifications_dead_lettered_total", "endpoint" => ep()),
            retries: metrics::counter!("registry_notifications_retries_total", "endpoint" => ep()),
            breaker_open: metrics::gauge!("registry_notifications_breaker_open", "endpoint" => ep()),
            duration: metrics::histogram!(
                "registry_notifications_delivery_duration_seconds",
                "endpoint" => ep()
            ),
            endpoint,
        }
    }

    /// The counter of responses with status `key` (`"200 OK"`), made when a code is first seen.
    pub(super) fn status(&self, key: String) -> Counter {
        metrics::counter!(
            "registry_notifications_status_total",
            "code" => key,
            "endpoint" => self.endpoint.clone()
        )
    }
}

/// Describes every exported name (its unit and `# HELP` text) to the installed recorder.
#[cfg(feature = "metrics")]
fn describe() {
    for &(name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
}

#[cfg(not(feature = "metrics"))]
impl Exported {
    pub(super) fn new(_name: &str) -> Self {
        Self {
            events: Counter,
            successes: Counter,
            failures: Counter,
            errors: Counter,
            pending: Gauge,
            delivered: Counter,
            dropped: Counter,
            lost: [Counter, Counter, Counter, Counter],
            refused: Counter,
            filtered: Counter,
            dead_lettered: Counter,
            retries: Counter,
            breaker_open: Gauge,
            duration: Histogram,
        }
    }

    pub(super) fn status(&self, _key: String) -> Counter {
        Counter
    }
}

/// Handles that do nothing, for builds without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
mod noop {
    pub(crate) struct Counter;
    pub(crate) struct Gauge;
    pub(crate) struct Histogram;

    impl Counter {
        pub(crate) fn increment(&self, _n: u64) {}
    }

    impl Gauge {
        pub(crate) fn set(&self, _v: f64) {}
    }

    impl Histogram {
        pub(crate) fn record(&self, _v: f64) {}
    }
}

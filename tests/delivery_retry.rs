//! Retry stage in paused time: go-events' TestRetryingSink / breaker, exponential backoff
//! bounds, Retry-After, max_attempts, max_age, permanent failures.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registry_notify::metrics::EndpointMetrics;
use registry_notify::retry::{
    Breaker, DeadLetter, DeadLetterHandler, DeliveryRetry, DeliveryRetryLayer, Exponential, RetryPolicy,
};
use registry_notify::sink::{BoxError, BoxSink, DeliveryError};
use registry_notify::Batch;
use support::events::{events, ids};
use support::sinks::Collector;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const MS: Duration = Duration::from_millis(1);

fn status(code: u16, retry_after: Option<Duration>) -> BoxError {
    DeliveryError::Status {
        status: http::StatusCode::from_u16(code).unwrap(),
        retry_after,
    }
    .into()
}

/// A sink whose n-th call (0-based) returns `outcome(n)`; records when each call happened.
#[derive(Clone)]
struct Scripted {
    calls: Arc<Mutex<Vec<Instant>>>,
    delivered: Collector,
}

impl Scripted {
    fn new() -> Self {
        Self {
            calls: Arc::default(),
            delivered: Collector::new(),
        }
    }

    fn sink(&self, outcome: impl Fn(usize) -> Result<(), BoxError> + Send + Sync + 'static) -> BoxSink {
        let calls = self.calls.clone();
        let delivered = self.delivered.batches.clone();
        let outcome = Arc::new(outcome);
        BoxSink::new(tower::service_fn(move |batch: Batch| {
            let n = {
                let mut calls = calls.lock().unwrap();
                calls.push(Instant::now());
                calls.len() - 1
            };
            let result = outcome(n);
            if result.is_ok() {
                delivered.lock().unwrap().push(batch);
            }
            std::future::ready(result)
        }))
    }

    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

fn collect_dead_letters() -> (DeadLetterHandler, Arc<Mutex<Vec<DeadLetter>>>) {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let l = letters.clone();
    (Arc::new(move |d| l.lock().unwrap().push(d)), letters)
}

fn retry(
    config: impl RetryPolicy,
    sink: BoxSink,
) -> (
    DeliveryRetry<BoxSink>,
    Arc<EndpointMetrics>,
    Arc<Mutex<Vec<DeadLetter>>>,
) {
    let metrics = Arc::new(EndpointMetrics::new("r", "http://receiver/"));
    let (handler, letters) = collect_dead_letters();
    let layer = DeliveryRetryLayer::new(config)
        .name("r")
        .metrics(metrics.clone())
        .dead_letter(handler);
    (layer.layer(sink), metrics, letters)
}

/// Distribution 2.8's TestRetryingSink: a flaky sink that always fails at first, then
/// fails 90% of the time; threshold 3, backoff 10 ms; 10 concurrent blocks of 10 events.
#[tokio::test(start_paused = true)]
async fn test_retrying_sink_flaky() {
    let collector = Collector::new();
    let rate = Arc::new(Mutex::new(1.0f64));
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(7)));
    let (r, b) = (rate.clone(), collector.batches.clone());
    let flaky = BoxSink::new(tower::service_fn(move |batch: Batch| {
        let fail = rng.lock().unwrap().random::<f64>() < *r.lock().unwrap();
        if !fail {
            b.lock().unwrap().push(batch);
        }
        std::future::ready(if fail {
            Err(BoxError::from(DeliveryError::Transport("flaky".into())))
        } else {
            Ok(())
        })
    }));
    let (sink, metrics, letters) = retry(Breaker::new(3, Duration::from_millis(10)).max_age(None), flaky);
    let mut writers = tokio::task::JoinSet::new();
    for i in 1..=10 {
        let block = Batch::from(events((i - 1) * 10, i * 10));
        writers.spawn(sink.clone().oneshot(block));
        if i == 5 {
            tokio::task::yield_now().await;
            *rate.lock().unwrap() = 0.9;
        }
    }
    while let Some(result) = writers.join_next().await {
        result.unwrap().unwrap();
    }
    let mut got = collector.ids();
    got.sort();
    let mut want = ids(0, 100);
    want.sort();
    assert_eq!(got, want, "all 100 delivered exactly once");
    assert!(letters.lock().unwrap().is_empty());
    assert!(!sink.is_failing());
    assert!(!metrics.snapshot().breaker_open);
}

/// go-events' breaker: `threshold` failures retried at once, then one attempt per backoff.
#[tokio::test(start_paused = true)]
async fn breaker_retries_threshold_at_once_then_per_backoff() {
    let scripted = Scripted::new();
    let sink = scripted.sink(|n| if n < 6 { Err(status(503, None)) } else { Ok(()) });
    let (sink, metrics, _) = retry(Breaker::new(3, Duration::from_millis(100)), sink);
    sink.oneshot(Batch::from(events(0, 1))).await.unwrap();
    assert_eq!(scripted.calls(), 7);
    let gaps = scripted.gaps();
    // Failures 1 and 2 are retried at once; from the 3rd on, one attempt per 100 ms.
    assert_eq!(&gaps[..2], [Duration::ZERO, Duration::ZERO]);
    for g in &gaps[2..] {
        assert!(*g >= 100 * MS && *g <= 101 * MS, "{gaps:?}");
    }
    let m = metrics.snapshot();
    assert_eq!((m.retries, m.dead_lettered, m.breaker_open), (6, 0, false));
}

/// A custom policy with only the required methods: never failing as far as logs and metrics
/// go, no wait before attempts, its own delays and its own dead letters.
#[tokio::test(start_paused = true)]
async fn a_custom_policy_with_the_trait_defaults() {
    use registry_notify::retry::{Decision, Failure, GiveUp};
    #[derive(Debug)]
    struct ThreeTimes;
    impl RetryPolicy for ThreeTimes {
        fn on_failure(&self, failure: &Failure<'_>) -> Decision {
            if failure.attempts >= 3 {
                Decision::GiveUp(GiveUp::MaxAttempts)
            } else {
                Decision::Retry { after: 7 * MS }
            }
        }
        fn fresh(&self) -> Arc<dyn RetryPolicy> {
            Arc::new(ThreeTimes)
        }
    }
    let scripted = Scripted::new();
    let sink = scripted.sink(|_| Err(status(503, None)));
    let (sink, metrics, letters) = retry(ThreeTimes, sink);
    let started = Instant::now();
    sink.clone().oneshot(Batch::from(events(0, 1))).await.unwrap();
    assert_eq!(scripted.calls(), 3);
    assert_eq!(scripted.gaps(), [7 * MS, 7 * MS]);
    assert_eq!(started.elapsed(), 14 * MS, "no wait before the first attempt");
    assert!(!sink.is_failing());
    let m = metrics.snapshot();
    assert_eq!((m.retries, m.dead_lettered, m.breaker_open), (2, 1, false));
    assert_eq!(letters.lock().unwrap().len(), 1);
}

/// The breaker state is shared across batches: once open, the next batch waits too.
#[tokio::test(start_paused = true)]
async fn breaker_state_spans_batches() {
    let scripted = Scripted::new();
    let fail = Arc::new(AtomicBool::new(true));
    let f = fail.clone();
    let sink = scripted.sink(move |_| {
        if f.load(Ordering::SeqCst) {
            Err(status(500, None))
        } else {
            Ok(())
        }
    });
    let config = Breaker::new(2, Duration::from_secs(1)).max_attempts(4);
    let (sink, metrics, letters) = retry(config, sink);
    sink.clone().oneshot(Batch::from(events(0, 1))).await.unwrap();
    assert_eq!(letters.lock().unwrap().len(), 1);
    assert!(sink.is_failing() && metrics.snapshot().breaker_open);
    fail.store(false, Ordering::SeqCst);
    let before = Instant::now();
    sink.clone().oneshot(Batch::from(events(1, 2))).await.unwrap();
    assert!(
        Instant::now() - before >= Duration::from_secs(1) - MS,
        "waited for the open breaker"
    );
    assert!(!sink.is_failing() && !metrics.snapshot().breaker_open);
}

/// go-events' TestExponentialBackoff, in paused time: the delay after the n-th failure lies
/// in `[b·(1−jitter), b]`, `b = min(max, initial·multiplier^(n−1))`.
#[tokio::test(start_paused = true)]
async fn exponential_backoff_bounds() {
    let policy = Exponential::default()
        .backoff(100 * MS, Duration::from_secs(2))
        .jitter(0.5);
    let scripted = Scripted::new();
    let sink = scripted.sink(|n| if n < 10 { Err(status(502, None)) } else { Ok(()) });
    let config = policy.clone().max_age(None);
    let (sink, metrics, _) = retry(config, sink);
    sink.oneshot(Batch::from(events(0, 1))).await.unwrap();
    let gaps = scripted.gaps();
    assert_eq!(gaps.len(), 10);
    for (i, gap) in gaps.iter().enumerate() {
        let (lo, hi) = policy.delay_bounds(i as u32 + 1);
        assert!(
            *gap >= lo && *gap <= hi + MS,
            "gap {i}: {gap:?} not in {lo:?}..={hi:?}"
        );
    }
    // Capped: the last gaps are at most `max`.
    assert_eq!(policy.delay_bounds(10).1, Duration::from_secs(2));
    assert_eq!(metrics.snapshot().retries, 10);
}

/// Retry-After is honoured, within [initial, max].
#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_within_bounds() {
    let scripted = Scripted::new();
    let sink = scripted.sink(|n| match n {
        0 => Err(status(429, Some(Duration::from_secs(5)))),
        1 => Err(status(503, Some(Duration::from_secs(3600)))),
        2 => Err(status(503, Some(Duration::ZERO))),
        _ => Ok(()),
    });
    let config = Exponential::default()
        .backoff(Duration::from_secs(1), Duration::from_secs(60))
        .jitter(0.0);
    let (sink, _, _) = retry(config, sink);
    sink.oneshot(Batch::from(events(0, 1))).await.unwrap();
    let gaps = scripted.gaps();
    let near = |g: Duration, want: Duration| g >= want && g <= want + MS;
    assert!(near(gaps[0], Duration::from_secs(5)), "{gaps:?}");
    assert!(near(gaps[1], Duration::from_secs(60)), "{gaps:?}");
    assert!(near(gaps[2], Duration::from_secs(1)), "{gaps:?}");
}

/// Permanent failures (4xx other than 408/429, 3xx) are dead-lettered at once; 408 and
/// 429 are retried.
#[tokio::test(start_paused = true)]
async fn classification() {
    for (code, retried) in [
        (400, false),
        (401, false),
        (404, false),
        (415, false),
        (307, false),
        (408, true),
        (429, true),
        (500, true),
        (503, true),
    ] {
        let scripted = Scripted::new();
        let sink = scripted.sink(move |n| if n == 0 { Err(status(code, None)) } else { Ok(()) });
        let (sink, metrics, letters) = retry(Exponential::default(), sink);
        sink.oneshot(Batch::from(events(0, 2))).await.unwrap();
        let letters = letters.lock().unwrap();
        if retried {
            assert_eq!(scripted.calls(), 2, "{code}");
            assert!(letters.is_empty(), "{code}");
        } else {
            assert_eq!(scripted.calls(), 1, "{code}");
            assert_eq!(letters.len(), 1, "{code}");
            assert_eq!(letters[0].attempts, 1);
            assert_eq!(letters[0].endpoint, "r");
            assert_eq!(letters[0].batch.len(), 2);
            assert!(
                letters[0].reason.contains(&code.to_string()),
                "{}",
                letters[0].reason
            );
            assert_eq!(metrics.snapshot().dead_lettered, 2);
        }
    }
}

/// Timeouts, transport errors and errors of custom sinks are retried.
#[tokio::test(start_paused = true)]
async fn transport_timeout_and_foreign_errors_are_retried() {
    let scripted = Scripted::new();
    let sink = scripted.sink(|n| match n {
        0 => Err(DeliveryError::Timeout(Duration::from_secs(1)).into()),
        1 => Err(DeliveryError::Transport("refused".into()).into()),
        2 => Err("some custom sink error".into()),
        _ => Ok(()),
    });
    let (sink, _, letters) = retry(Exponential::default(), sink);
    sink.oneshot(Batch::from(events(0, 1))).await.unwrap();
    assert_eq!(scripted.calls(), 4);
    assert!(letters.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn max_attempts_dead_letters() {
    let scripted = Scripted::new();
    let sink = scripted.sink(|_| Err(status(500, None)));
    let config = Exponential::default().max_attempts(3);
    let (sink, metrics, letters) = retry(config, sink);
    sink.oneshot(Batch::from(events(0, 1))).await.unwrap();
    assert_eq!(scripted.calls(), 3);
    let letters = letters.lock().unwrap();
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].reason.starts_with("gave up after 3 attempts"),
        "{}",
        letters[0].reason
    );
    let m = metrics.snapshot();
    assert_eq!((m.retries, m.dead_lettered), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn max_age_dead_letters_without_sleeping_past_it() {
    let scripted = Scripted::new();
    let sink = scripted.sink(|_| Err(status(500, None)));
    let config = Exponential::default()
        .backoff(Duration::from_secs(1), Duration::from_secs(4))
        .jitter(0.0)
        .max_age(Some(Duration::from_secs(10)));
    let (sink, _, letters) = retry(config, sink);
    let start = Instant::now();
    sink.oneshot(Batch::from(events(0, 1))).await.unwrap();
    // Attempts at 0, 1, 3, 7 s; the next (11 s) would be past max_age.
    assert_eq!(scripted.calls(), 4);
    assert!(Instant::now() - start < Duration::from_secs(10));
    assert!(letters.lock().unwrap()[0].reason.starts_with("max_age exceeded"));
}

/// DeliveryError::Closed is passed up at once, not retried.
#[tokio::test(start_paused = true)]
async fn closed_is_not_retried() {
    let scripted = Scripted::new();
    let sink = scripted.sink(|_| Err(DeliveryError::Closed.into()));
    let (sink, _, letters) = retry(Exponential::default(), sink);
    let err = sink.oneshot(Batch::from(events(0, 1))).await.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<DeliveryError>(),
        Some(DeliveryError::Closed)
    ));
    assert_eq!(scripted.calls(), 1);
    assert!(letters.lock().unwrap().is_empty());
}

#[test]
fn invalid_retry_settings_are_config_errors() {
    let err = registry_notify::endpoint::Endpoint::builder("x", "http://h/")
        .retry(Breaker::new(0, MS))
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "endpoint \"x\".threshold must be > 0");
}

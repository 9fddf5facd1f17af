//! The OCI distribution-spec conformance suite (`oci-conformance`, every
//! workflow: pull, push, content discovery, content management) drives real
//! registries wrapped by the layer, and every event the traffic produces is
//! checked and delivered.
//!
//! - The example registry (`example_registry::oci`) wrapped by the layer,
//!   delivering `events.v2` to a loopback receiver: no test fails, every event
//!   is well formed, and every event enqueued is delivered.
//! - CNCF Distribution 3.0.0 (`distribution-registry`), once directly and once
//!   (fresh storage) behind the proxy example: each testcase name has the same
//!   outcomes both ways, the proxy's events are well formed and all delivered,
//!   the proxy adds upstream requests only by its lookups (counted from
//!   Distribution's access log), and its events equal Distribution's own for the
//!   same traffic, except where (printed each time):
//!   - Distribution emits an event for a failed request: it stores a manifest
//!     `PUT` by the tag `sha256:baddigeststring`, reports the push, and
//!     answers `500`;
//!
//!   No size may be lost: a size the layer looked up after the response could be gone by
//!   the time it asks (the client deletes the blob at once), so it must come from what
//!   passed by (the bytes of the upload, the size remembered under the digest the client
//!   committed it with).
//!
//! Needs `oci-conformance` and `distribution-registry` on PATH (`.ci/run`
//! unpacks them from `../shared/tools`); without them the tests skip loudly, or
//! fail under `REGISTRY_NOTIFY_REQUIRE_TOOLS=1`. Everything listens on
//! 127.0.0.1; every child process is killed when its handle drops.

mod support;
/// This test's own modules (tests/conformance/).
mod conformance {
    pub mod events;
    pub mod suite;
}

use std::path::Path;
use std::time::Duration;

use conformance::events::{by_action, check_events, compare_events, count, reference_faults};
use conformance::suite::{self as suite, Access, SuiteRun};
use example_registry::oci;
use registry_notify::endpoint::Endpoint;
use registry_notify::notifications::Notifications;
use registry_notify::SourceRecord;
use serde_json::Value;
use support::receiver::always;
use support::{Http, Receiver};

const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";
const LOOKUP_AGENT_PREFIX: &str = "registry-notify-proxy/";
const BARRIER_REPO: &str = "barrier/blob";

/// Every event a receiver got, as JSON, after checking each POST is an
/// `events.v2` envelope the crate's own model reads.
fn raw_events(r: &Receiver) -> Vec<Value> {
    let mut events = Vec::new();
    for request in r.requests() {
        let ct = request.headers.get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(ct, Some(EVENTS_V2), "envelope media type");
        serde_json::from_slice::<registry_notify::Envelope>(&request.body).unwrap_or_else(|e| {
            panic!(
                "envelope does not decode ({e}): {}",
                String::from_utf8_lossy(&request.body)
            )
        });
        let list = request.json_events();
        assert!(!list.is_empty(), "an empty envelope");
        events.extend(list);
    }
    events
}

fn useragent(e: &Value) -> &str {
    e["request"]["useragent"].as_str().unwrap_or("")
}

fn is_lookup(e: &Value) -> bool {
    useragent(e).starts_with(LOOKUP_AGENT_PREFIX)
}

fn is_barrier(e: &Value) -> bool {
    e["target"]["repository"] == BARRIER_REPO
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_registry_passes_and_delivers_every_event() {
    let Some(suite) = support::require_tool("oci-conformance") else {
        return;
    };
    let receiver = Receiver::start(always(200)).await;
    let (layer, handle) = Notifications::builder()
        .source(SourceRecord::local("127.0.0.1:5000"))
        .endpoint(Endpoint::builder("conformance", receiver.url()).build().unwrap())
        .build()
        .unwrap();
    let registry = oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true });
    let addr = support::serve_router(oci::router(registry).layer(layer)).await;
    let dir = tempfile::tempdir().unwrap();

    let run = suite::run_suite(&suite, addr, dir.path()).await;
    eprintln!("example registry + layer: {}", run.summary());
    assert!(
        run.failed().is_empty(),
        "failed: {:#?}\n{}",
        run.failed(),
        run.log
    );

    // Every event enqueued is delivered.
    let metrics = tokio::time::timeout(support::HANG_GUARD, async {
        loop {
            let m = handle.metrics().remove(0);
            if m.pending == 0 && receiver.events().len() as u64 >= m.events {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("events not delivered");
    let events = raw_events(&receiver);
    eprintln!(
        "example registry: {} events enqueued, {} delivered in {} POSTs, by action {:?}",
        metrics.events,
        metrics.delivered,
        receiver.request_count(),
        by_action(&events)
    );
    assert!(metrics.events > 0);
    assert_eq!(metrics.pending, 0);
    assert_eq!(metrics.delivered, metrics.events, "{metrics:?}");
    assert_eq!(events.len() as u64, metrics.events, "{metrics:?}");
    assert_eq!(
        (metrics.dropped, metrics.dead_lettered, metrics.refused),
        (0, 0, 0),
        "{metrics:?}"
    );

    let bad = check_events("example registry", &events, &run);
    assert!(
        bad.is_empty(),
        "{} malformed events:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Pushes a blob into [`BARRIER_REPO`] and waits until its push event reached
/// every receiver: each endpoint delivers in order, so all earlier events have too.
async fn barrier(http: &Http, n: usize, receivers: &[&Receiver]) {
    let data = format!("barrier {n}\n");
    let digest = support::sha256(data.as_bytes());
    let ua = format!("barrier/{n}");
    let headers = [("user-agent", ua.as_str())];
    let r = http
        .send(
            "POST",
            &format!("/v2/{BARRIER_REPO}/blobs/uploads/"),
            &headers,
            "",
        )
        .await;
    assert_eq!(r.status, 202, "barrier POST: {:?}", r.body);
    let loc = support::with_digest(r.header("location").expect("upload location"), &digest);
    let r = http.send("PUT", &loc, &headers, data).await;
    assert_eq!(r.status, 201, "barrier PUT: {:?}", r.body);
    let arrived = |r: &Receiver| {
        raw_events(r)
            .iter()
            .any(|e| is_barrier(e) && e["action"] == "push" && useragent(e) == ua)
    };
    tokio::time::timeout(support::HANG_GUARD, async {
        while !receivers.iter().all(|r| arrived(r)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("barrier {n} did not arrive at every receiver"));
}

/// `METHOD kind` of an upstream request (`manifests`, `blobs`, `uploads`, `tags`, …).
fn request_kind(a: &Access) -> String {
    let path = a.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    let kind = ["uploads", "manifests", "blobs", "tags", "referrers"]
        .into_iter()
        .find(|k| segments.contains(k))
        .unwrap_or("other");
    format!("{} {kind} → {}", a.method, a.status)
}

/// The suite run directly against a fresh Distribution delivering to receiver A.
struct DirectRun {
    run: SuiteRun,
    /// A's events (barrier aside).
    events: Vec<Value>,
    /// Distribution's access log.
    requests: Vec<Access>,
}

async fn direct_run(suite: &Path, distribution: &Path) -> DirectRun {
    let a = Receiver::start(always(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = support::registries::start_distribution(distribution, dir.path(), &a.url()).await;
    let run = suite::run_suite(suite, upstream.addr, dir.path()).await;
    barrier(&Http::new(upstream.addr), 1, &[&a]).await;
    DirectRun {
        run,
        events: raw_events(&a).into_iter().filter(|e| !is_barrier(e)).collect(),
        requests: suite::access_log(&upstream.log),
    }
}

/// The suite run through the proxy (delivering to receiver B) in front of a
/// fresh Distribution delivering to receiver A.
struct ProxiedRun {
    run: SuiteRun,
    /// A's events for the client's requests, and for the proxy's lookups.
    a_client: Vec<Value>,
    a_lookups: Vec<Value>,
    /// B's events.
    b: Vec<Value>,
    /// Distribution's access log.
    requests: Vec<Access>,
}

async fn proxied_run(suite: &Path, distribution: &Path) -> ProxiedRun {
    let a = Receiver::start(always(200)).await;
    let b = Receiver::start(always(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = support::registries::start_distribution(distribution, dir.path(), &a.url()).await;
    let notify = format!(
        "notifications:\n  endpoints:\n    - name: proxy\n      url: {}\n",
        b.url()
    );
    let mut proxy = support::registries::start_proxy(dir.path(), upstream.addr, &notify).await;
    let run = suite::run_suite(suite, proxy.addr, dir.path()).await;
    barrier(&Http::new(proxy.addr), 2, &[&a, &b]).await;
    // A graceful stop drains the proxy's queue: nothing may be left undelivered.
    let exit = support::process::terminate(&mut proxy.child).await;
    assert!(exit.success(), "proxy exit {exit:?}\n{}", proxy.log_tail());
    assert!(!proxy.log_tail().contains("undelivered"), "{}", proxy.log_tail());
    let (a_lookups, a_client) = raw_events(&a)
        .into_iter()
        .filter(|e| !is_barrier(e))
        .partition(is_lookup);
    ProxiedRun {
        run,
        a_client,
        a_lookups,
        b: raw_events(&b).into_iter().filter(|e| !is_barrier(e)).collect(),
        requests: suite::access_log(&upstream.log),
    }
}

/// The testcase names whose outcomes differ between two runs, each with both.
fn outcome_differences(x: &SuiteRun, y: &SuiteRun) -> Vec<String> {
    let (d, p) = (x.outcomes(), y.outcomes());
    let show = |o: Option<&Vec<suite::Outcome>>| {
        o.map_or("absent".to_string(), |o| {
            o.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        })
    };
    d.keys()
        .chain(p.keys().filter(|k| !d.contains_key(*k)))
        .filter(|name| d.get(*name) != p.get(*name))
        .map(|name| {
            format!(
                "{name}: direct {} / proxied {}",
                show(d.get(name)),
                show(p.get(name))
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_direct_and_through_the_proxy_agree_test_by_test() {
    let Some(suite) = support::require_tool("oci-conformance") else {
        return;
    };
    let Some(distribution) = support::require_tool("distribution-registry") else {
        return;
    };
    let direct = direct_run(&suite, &distribution).await;
    let proxied = proxied_run(&suite, &distribution).await;

    // Outcomes, test by test.
    eprintln!("Distribution 3.0.0 direct: {}", direct.run.summary());
    eprintln!("Distribution 3.0.0 through the proxy: {}", proxied.run.summary());
    let differences = outcome_differences(&direct.run, &proxied.run);
    eprintln!(
        "per-test comparison: {} testcases under {} names, {} names differ",
        direct.run.cases.len(),
        direct.run.outcomes().len(),
        differences.len()
    );

    // Events.
    eprintln!(
        "events at A, direct run: {} {:?}",
        direct.events.len(),
        by_action(&direct.events)
    );
    eprintln!(
        "events at A, proxied run: {} from the client {:?}, {} from the proxy's lookups {:?}",
        proxied.a_client.len(),
        by_action(&proxied.a_client),
        proxied.a_lookups.len(),
        by_action(&proxied.a_lookups)
    );
    eprintln!(
        "events at B (the proxy): {} {:?}",
        proxied.b.len(),
        by_action(&proxied.b)
    );

    // Upstream requests: the proxied run's beyond the direct run's are the lookups.
    let lookups: Vec<&Access> = proxied
        .requests
        .iter()
        .filter(|r| r.useragent.starts_with(LOOKUP_AGENT_PREFIX))
        .collect();
    eprintln!(
        "upstream requests: direct {}, proxied {} of which {} lookups {:?}",
        direct.requests.len(),
        proxied.requests.len(),
        lookups.len(),
        count(lookups.iter().map(|r| request_kind(r)))
    );

    // The reference's events for the proxied traffic against the proxy's.
    let diff = compare_events(&proxied.a_client, &proxied.b, &proxied.run);
    let (known, unexplained) = reference_faults(&diff.only_a);
    eprintln!("known faults of the reference among them: {known:#?}");
    // A size the layer would look up after the response may be gone by then (the client
    // deletes the blob at once): the layer must know it from what passed by.
    assert!(
        diff.size_lost.is_empty(),
        "{} proxy event(s) with size 0 where the registry reported the size: {:#?}",
        diff.size_lost.len(),
        diff.size_lost
    );

    let bad = check_events("proxy (B)", &proxied.b, &proxied.run);
    let reference_bad = check_events("Distribution (A, direct)", &direct.events, &direct.run);
    eprintln!("Distribution's own malformed events: {reference_bad:#?}");
    assert!(
        differences.is_empty(),
        "{} testcase names differ between Distribution and the proxy in front of it:\n{}",
        differences.len(),
        differences.join("\n")
    );
    assert!(
        bad.is_empty(),
        "{} malformed events:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // The proxy forwards exactly the client's requests, plus its lookups.
    assert_eq!(
        proxied.requests.len(),
        direct.requests.len() + lookups.len(),
        "upstream requests: the proxied run's are the direct run's plus the lookups"
    );
    // The same traffic: the reference emits the same events for the client's requests.
    assert_eq!(
        by_action(&proxied.a_client),
        by_action(&direct.events),
        "A's events, proxied vs direct"
    );
    // The proxy emits nothing the reference does not (lost sizes aside), and misses
    // only the reference's event for a failed request.
    assert!(
        diff.only_b.is_empty(),
        "events only at the proxy: {:#?}",
        diff.only_b
    );
    assert!(
        unexplained.is_empty(),
        "events only at the reference, unexplained: {unexplained:#?}"
    );
}

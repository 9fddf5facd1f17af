//! The golden capture's scenario (tests/fixtures/golden) replayed against any registry served
//! on loopback: skopeo pushes, a second tag, a copy between repositories, pulls, inspect, a
//! delete by digest, curl-level requests (HEADs, ranges, chunked and monolithic uploads,
//! mounts, deletes), a multi-arch index push and pull, and the `includereferences` steps
//! ([`run`]). Each step's events are collected from a real webhook receiver and normalised as
//! the capture was, together with the requests that reached the registry when they are
//! counted ([`Counter`]). `golden_skopeo.rs` runs it against the example registry,
//! `third_party_ferro.rs` against ferro-oci-server.

mod counter;
mod steps;

use std::time::Duration;

use registry_notify::notifications::NotificationsHandle;
use serde_json::Value;

use super::skopeo::{self, Driver};
use super::{Http, Receiver, HANG_GUARD};

pub use counter::{kind, Counter, Counts};
pub use steps::{build_images, run, Images};

/// Steps whose events come in no fixed order (concurrent requests).
pub const UNORDERED: [&str; 5] = [
    "c-copy-other-app",
    "d1-pull",
    "g3-push-index",
    "g4-pull-index",
    "r3-push-index-refs",
];

/// The golden capture: the events Distribution 2.8 emitted, normalised, by step.
pub fn capture() -> std::collections::BTreeMap<String, Vec<Value>> {
    serde_json::from_str(include_str!("../../fixtures/golden/normalized-events.json")).unwrap()
}

/// One wrapped registry on loopback, with the handle of its notifications.
pub struct App {
    pub http: Http,
    pub handle: NotificationsHandle,
}

/// One step's outcome.
pub struct Step {
    pub name: String,
    /// Events received, normalised (see [`Env::normalise`]).
    pub events: Vec<Value>,
    /// Requests that reached the registry during the step (when counted).
    pub counts: Counts,
}

/// The registries under test (`apps[0]` for every step, the last one for the `r*` steps,
/// with references), the receiver their endpoints POST to, and the steps done so far.
/// Derefs to the [`Driver`] of the registry the current step talks to.
pub struct Env {
    pub apps: Vec<App>,
    drivers: Vec<Driver>,
    current: usize,
    pub receiver: Receiver,
    counter: Option<Counter>,
    /// The endpoints send `events.v2` (the capture has `events.v1`).
    v2: bool,
    on_references: Option<Box<dyn FnOnce() + Send>>,
    seen: usize,
    pub steps: Vec<Step>,
}

impl std::ops::Deref for Env {
    type Target = Driver;

    fn deref(&self) -> &Driver {
        &self.drivers[self.current]
    }
}

impl Env {
    /// The scenario against `apps` delivering to `receiver`, its images built in `work`.
    pub fn new(apps: Vec<App>, receiver: Receiver, work: std::path::PathBuf) -> Self {
        let drivers = apps
            .iter()
            .map(|app| Driver {
                http: app.http.clone(),
                work: work.clone(),
            })
            .collect();
        Self {
            apps,
            drivers,
            current: 0,
            receiver,
            counter: None,
            v2: false,
            on_references: None,
            seen: 0,
            steps: Vec::new(),
        }
    }

    /// Counts the requests reaching the registries with `counter` (which wraps them), and
    /// waits for the lookups it sees to finish before a step ends.
    pub fn counted(mut self, counter: Counter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// The endpoints send `events.v2` envelopes: their descriptors are written as the capture's
    /// `events.v1` ones before comparing (see [`Env::normalise`]).
    pub fn events_v2(mut self) -> Self {
        self.v2 = true;
        self
    }

    /// Runs `f` when the `r*` steps begin, before their first request (e.g. to switch the
    /// layer serving one address, as the reference restarted with `includereferences: true`).
    pub fn on_references(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_references = Some(Box::new(f));
        self
    }

    /// The registry the `r*` steps talk to from now on.
    pub(super) fn references(&mut self) {
        self.current = self.apps.len() - 1;
        if let Some(f) = self.on_references.take() {
            f();
        }
    }

    /// Everything the endpoints were given was delivered, and no lookup is under way.
    fn settled(&self) -> bool {
        let (mut events, mut pending) = (0, 0);
        for app in &self.apps {
            for m in app.handle.metrics() {
                events += m.events;
                pending += m.pending;
            }
        }
        let lookups = self.counter.as_ref().map_or(0, Counter::lookups_in_flight);
        pending == 0 && self.receiver.events().len() as u64 >= events && lookups == 0
    }

    /// Waits until the step's events were delivered, then records them with the step's
    /// request counts. An event a lookup completes after the response is dispatched right
    /// after the lookup's answer, so "settled" must hold on two polls in a row.
    async fn take(&mut self, name: &str) {
        tokio::time::timeout(HANG_GUARD, async {
            let mut quiet = 0;
            while quiet < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                quiet = if self.settled() { quiet + 1 } else { 0 };
            }
        })
        .await
        .expect("events not delivered");
        let requests = self.receiver.requests();
        let mut events = Vec::new();
        for r in &requests[self.seen..] {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            let list = v["events"].as_array().unwrap();
            assert_eq!(list.len(), 1, "one event per envelope, as Distribution");
            events.push(self.normalise(list[0].clone()));
        }
        self.seen = requests.len();
        self.steps.push(Step {
            name: name.to_string(),
            events,
            counts: self.counter.as_ref().map(Counter::take).unwrap_or_default(),
        });
    }

    /// The golden capture's normalisation (ids, timestamps, ports, host names: see
    /// [`skopeo::normalise`]); with [`Env::events_v2`], the `events.v2` descriptors also
    /// written as `events.v1` ones, the capture's: empty `mediaType`/`digest` and zero `size`
    /// omitted, no `platform` (nor `data`, `artifactType`, which 2.x never writes).
    pub fn normalise(&self, e: Value) -> Value {
        let ours: Vec<&str> = self
            .apps
            .iter()
            .map(|app| app.http.base.trim_start_matches("http://"))
            .collect();
        let mut e = skopeo::normalise(e, &ours);
        if self.v2 {
            v1_descriptor(&mut e["target"]);
            if let Some(refs) = e["target"].get_mut("references").and_then(Value::as_array_mut) {
                refs.iter_mut().for_each(v1_descriptor);
            }
        }
        e
    }
}

fn v1_descriptor(d: &mut Value) {
    let Some(m) = d.as_object_mut() else { return };
    m.retain(|k, v| match k.as_str() {
        "mediaType" | "digest" => v.as_str() != Some(""),
        "size" => v.as_i64() != Some(0),
        "platform" | "data" | "artifactType" => false,
        _ => true,
    });
}

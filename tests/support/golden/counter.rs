//! A counter of the requests that reach a registry during a step: the client's, and the
//! notification layer's own lookups.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// What reached the registry during one step, by request kind (see [`kind`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests the client sent (they carry axum's `ConnectInfo`).
    pub client: BTreeMap<String, u64>,
    /// Requests the layer made itself (no `ConnectInfo`: built by the layer, not served).
    pub lookups: BTreeMap<String, u64>,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        for (k, n) in &other.client {
            *self.client.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.lookups {
            *self.lookups.entry(k.clone()).or_default() += n;
        }
    }

    /// Lookups in all.
    pub fn lookup_total(&self) -> u64 {
        self.lookups.values().sum()
    }

    /// Client requests of `kind`.
    pub fn client_of(&self, kind: &str) -> u64 {
        self.client.get(kind).copied().unwrap_or(0)
    }

    /// Lookups of `kind`.
    pub fn lookups_of(&self, kind: &str) -> u64 {
        self.lookups.get(kind).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Inner {
    counts: Counts,
    in_flight: u64,
}

/// Counts the requests reaching the service it is layered on (see [`Counter::wrap`]).
#[derive(Clone, Default)]
pub struct Counter(Arc<Mutex<Inner>>);

impl Counter {
    /// `router` with a counting middleware around it (inside the notification layer, which
    /// wraps what this returns).
    pub fn wrap(&self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), count))
    }

    /// Removes and returns what was counted so far.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut self.0.lock().unwrap().counts)
    }

    /// Lookups sent to the registry and not answered yet.
    pub fn lookups_in_flight(&self) -> u64 {
        self.0.lock().unwrap().in_flight
    }
}

async fn count(State(counter): State<Counter>, req: Request, next: Next) -> Response {
    let lookup = req.extensions().get::<ConnectInfo<SocketAddr>>().is_none();
    let k = kind(req.method().as_str(), req.uri().path());
    {
        let mut c = counter.0.lock().unwrap();
        let map = if lookup {
            c.in_flight += 1;
            &mut c.counts.lookups
        } else {
            &mut c.counts.client
        };
        *map.entry(k).or_default() += 1;
    }
    let resp = next.run(req).await;
    if lookup {
        counter.0.lock().unwrap().in_flight -= 1;
    }
    resp
}

/// A request's kind: its method and what its path names, e.g. `HEAD manifest(tag)`,
/// `PATCH upload`, `GET tags/list`.
pub fn kind(method: &str, path: &str) -> String {
    let what = if path == "/v2/" || path == "/v2" {
        "base".to_string()
    } else if path == "/v2/_catalog" {
        "catalog".to_string()
    } else if path.ends_with("/tags/list") {
        "tags/list".to_string()
    } else if let Some((_, r)) = path.rsplit_once("/manifests/") {
        if r.contains(':') {
            "manifest(digest)".to_string()
        } else {
            "manifest(tag)".to_string()
        }
    } else if let Some((_, id)) = path.rsplit_once("/blobs/uploads/") {
        if id.is_empty() {
            "uploads/".to_string()
        } else {
            "upload".to_string()
        }
    } else if path.contains("/blobs/") {
        "blob".to_string()
    } else {
        "other".to_string()
    };
    format!("{method} {what}")
}

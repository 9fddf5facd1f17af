//! Distribution's debug listener (`http.debug.addr`) for the example servers (`registry`,
//! `proxy`, `worker`), on its own address so that it can stay on loopback while the registry
//! faces clients:
//!
//! - `/metrics` (or `http.debug.prometheus.path`), when `http.debug.prometheus.enabled`: the
//!   endpoint metrics in Prometheus text format through `metrics-exporter-prometheus`, with
//!   Distribution 3's `registry_notifications_*` names, `# HELP` and `# TYPE` lines, and
//!   `registry_notifications_queue_bytes` (durable queues) read at each scrape;
//! - `/debug/health`: `200 {}` while every check passes, else `503` with a JSON object naming
//!   each failing check (as Distribution's health handler does): `notifications_queue_<endpoint>`
//!   when a durable queue's directory is not writable, `notifications_nats` when the NATS server
//!   does not accept connections;
//! - `/notifications/status`: JSON per endpoint (see [`EndpointStatus`]);
//! - `/notifications/endpoints/{name}/deliveries`: the endpoint's last attempts, oldest first
//!   (`RecentDelivery`: when, message id, the first event ids, attempt, status or error,
//!   duration, outcome); 404 for an unknown endpoint.
//!
//! No secret appears in any of them: URLs are redacted, errors scrubbed by the sink.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use registry_notify::config::Config;
use registry_notify::endpoint::EndpointHandle;
use registry_notify::metrics::LastError;
use registry_notify::Timestamp;
use serde::Serialize;

use crate::common::listen_addr;

/// The buckets of the delivery-duration histogram, in seconds: from a loopback POST to the
/// default 1 s timeout and beyond.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One endpoint as `/notifications/status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointStatus {
    /// The endpoint's name.
    pub name: String,
    /// Its URL, credentials (user info, query values) redacted.
    pub url: String,
    /// `ok`, or `failing` while the breaker is open (or the endpoint backs off).
    pub state: &'static str,
    /// Events queued or in flight.
    pub pending: u64,
    /// Events in an HTTP attempt under way.
    pub in_flight: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Attempts that failed: answered with a failure status, or no answer (transport error,
    /// timeout).
    pub failed: u64,
    /// Events given up on and handed to the dead-letter file.
    pub dead_lettered: u64,
    /// Events lost (queue overflow, a damaged or unwritable durable queue).
    pub dropped: u64,
    /// When an attempt last succeeded (`null` before the first).
    pub last_success: Option<Timestamp>,
    /// The last failed attempt: `{"at": …, "error": …}` (`null` if none failed).
    pub last_error: Option<LastError>,
    /// `open` while the endpoint is failing, else `closed`.
    pub breaker: &'static str,
    /// Bytes of a durable queue's segment files (`null` for an in-memory queue).
    pub queue_bytes: Option<u64>,
}

/// A check of `/debug/health`.
#[derive(Clone, Debug)]
pub enum Check {
    /// The durable queue directory of an endpoint accepts a new file.
    QueueDir {
        /// The endpoint's name.
        endpoint: String,
        /// Its queue directory.
        dir: PathBuf,
    },
    /// The NATS server accepts TCP connections at `addr` (`host:port`).
    Nats {
        /// `host:port` of the server.
        addr: String,
    },
}

impl Check {
    /// The name under which `/debug/health` reports this check.
    pub fn name(&self) -> String {
        match self {
            Check::QueueDir { endpoint, .. } => format!("notifications_queue_{endpoint}"),
            Check::Nats { .. } => "notifications_nats".to_owned(),
        }
    }

    /// `Err(why)` when the check fails.
    pub async fn run(&self) -> Result<(), String> {
        match self {
            Check::QueueDir { dir, .. } => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || probe_dir(&dir))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Check::Nats { addr } => {
                match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("NATS server {addr} unreachable: {e}")),
                    Err(_) => Err(format!("NATS server {addr} unreachable: no answer within 2s")),
                }
            }
        }
    }

    /// The checks a config asks for: each enabled endpoint's durable queue directory, and
    /// the NATS server when `notifications.nats` is set.
    pub fn from_config(config: &Config) -> Vec<Check> {
        let Some(n) = &config.notifications else {
            return Vec::new();
        };
        let mut checks: Vec<Check> = n
            .enabled_endpoints()
            .filter_map(|e| {
                Some(Check::QueueDir {
                    endpoint: e.name.clone(),
                    dir: e.queue.path.clone()?,
                })
            })
            .collect();
        if let Some(nats) = &n.nats {
            if let Some(addr) = nats_addr(&nats.url) {
                checks.push(Check::Nats { addr });
            }
        }
        checks
    }
}

/// Creates and removes a probe file in `dir`.
fn probe_dir(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(".health-probe");
    let not_writable =
        |e: std::io::Error| format!("durable queue directory {} is not writable: {e}", dir.display());
    std::fs::write(&probe, b"").map_err(not_writable)?;
    std::fs::remove_file(&probe).map_err(not_writable)
}

/// `host:port` of the first server of a NATS URL list (`nats://user:pass@host:4222,…`); the
/// port defaults to 4222.
fn nats_addr(urls: &str) -> Option<String> {
    let first = urls.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return None;
    }
    let has_port = match host_port.rsplit_once(':') {
        Some((host, port)) => !port.is_empty() && !host.ends_with(':') && !port.contains(']'),
        None => false,
    };
    Some(if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:4222")
    })
}

/// What the debug listener serves.
#[derive(Clone)]
pub struct Debug {
    prometheus: Option<(PrometheusHandle, String)>,
    endpoints: Arc<Vec<EndpointHandle>>,
    checks: Arc<Vec<Check>>,
}

impl Debug {
    /// The debug listener `config` asks for (`None` without `http.debug.addr`): installs the
    /// Prometheus recorder when `http.debug.prometheus.enabled` (call this before building the
    /// notifications, whose metric handles belong to the recorder installed then).
    pub fn install(config: &Config) -> Result<Option<(String, Debug)>, Box<dyn std::error::Error>> {
        let Some(addr) = config.http.debug_addr.clone() else {
            return Ok(None);
        };
        let prometheus = if config.http.debug_prometheus {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("registry_notifications_delivery_duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .map_err(|e| format!("http.debug.prometheus: {e}"))?
                .install_recorder()
                .map_err(|e| format!("http.debug.prometheus: {e}"))?;
            Some((handle, config.http.debug_prometheus_path.clone()))
        } else {
            None
        };
        Ok(Some((
            addr,
            Debug {
                prometheus,
                endpoints: Arc::default(),
                checks: Arc::new(Check::from_config(config)),
            },
        )))
    }

    /// The listener's routes.
    pub fn router(self) -> axum::Router {
        let mut router = axum::Router::new()
            .route("/debug/health", get(health))
            .route("/notifications/status", get(status))
            .route("/notifications/endpoints/{name}/deliveries", get(deliveries));
        if let Some((_, path)) = &self.prometheus {
            router = router.route(path, get(prometheus));
        }
        router.with_state(self)
    }

    /// Binds `addr` (`:5001` means every interface) and serves `endpoints` until the process
    /// exits (so that the drain after a shutdown can be watched); says on stderr where it
    /// listens, and returns the bound address.
    pub async fn start(
        mut self,
        addr: &str,
        endpoints: &[EndpointHandle],
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        self.endpoints = Arc::new(endpoints.to_vec());
        let addr = listen_addr(addr);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("listen http.debug.addr {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "debug listener stopped");
            }
        });
        eprintln!("debug listening on http://{local}");
        Ok(local)
    }

    /// Each endpoint's status.
    pub fn status(&self) -> Vec<EndpointStatus> {
        self.endpoints
            .iter()
            .map(|e| {
                let m = e.metrics();
                let breaker = if m.breaker_open { "open" } else { "closed" };
                EndpointStatus {
                    state: if m.breaker_open { "failing" } else { "ok" },
                    breaker,
                    failed: m.failures.saturating_add(m.errors),
                    queue_bytes: e.queue_bytes(),
                    name: m.name,
                    url: m.url,
                    pending: m.pending,
                    in_flight: m.in_flight,
                    delivered: m.delivered,
                    dead_lettered: m.dead_lettered,
                    dropped: m.dropped,
                    last_success: m.last_success,
                    last_error: m.last_error,
                }
            })
            .collect()
    }
}

async fn health(axum::extract::State(debug): axum::extract::State<Debug>) -> Response {
    let mut failing = serde_json::Map::new();
    for check in debug.checks.iter() {
        if let Err(why) = check.run().await {
            failing.insert(check.name(), why.into());
        }
    }
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(failing)).into_response()
}

async fn status(axum::extract::State(debug): axum::extract::State<Debug>) -> Response {
    axum::Json(serde_json::json!({ "endpoints": debug.status() })).into_response()
}

async fn deliveries(
    axum::extract::State(debug): axum::extract::State<Debug>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match debug.endpoints.iter().find(|e| e.name() == name) {
        Some(e) => axum::Json(serde_json::json!({ "deliveries": e.recent_deliveries() })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such endpoint" })),
        )
            .into_response(),
    }
}

async fn prometheus(axum::extract::State(debug): axum::extract::State<Debug>) -> Response {
    let Some((handle, _)) = &debug.prometheus else {
        return StatusCode::NOT_FOUND.into_response();
    };
    metrics::describe_gauge!(
        "registry_notifications_queue_bytes",
        metrics::Unit::Bytes,
        "Bytes of an endpoint's durable queue segment files"
    );
    for e in debug.endpoints.iter() {
        if let Some(bytes) = e.queue_bytes() {
            metrics::gauge!("registry_notifications_queue_bytes", "endpoint" => e.name().to_owned())
                .set(bytes as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_addresses() {
        for (url, addr) in [
            ("nats://127.0.0.1:4222", Some("127.0.0.1:4222")),
            ("nats://u:p@nats.example:5222/x", Some("nats.example:5222")),
            ("nats.example", Some("nats.example:4222")),
            ("tls://[::1]:4443,nats://b:1", Some("[::1]:4443")),
            ("nats://[::1]", Some("[::1]:4222")),
            ("nats://", None),
        ] {
            assert_eq!(nats_addr(url).as_deref(), addr, "{url}");
        }
    }

    #[test]
    fn a_directory_that_refuses_files_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(probe_dir(dir.path()), Ok(()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "probe removed");
        let gone = dir.path().join("gone");
        let err = probe_dir(&gone).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "durable queue directory {} is not writable",
                gone.display()
            )),
            "{err}"
        );
    }
}

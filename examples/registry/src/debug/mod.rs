//! Distribution's debug listener (`http.debug.addr`) for the example servers (`registry`,
//! `proxy`, `worker`), on its own address so that it can stay on loopback while the registry
//! faces clients. `:PORT` binds to loopback (127.0.0.1); give a host (`0.0.0.0:5001`) to listen
//! elsewhere.
//!
//! - `/metrics` (or `http.debug.prometheus.path`), when `http.debug.prometheus.enabled`: the
//!   endpoint metrics in Prometheus text format through `metrics-exporter-prometheus`, with
//!   Distribution 3's `registry_notifications_*` names, `# HELP` and `# TYPE` lines, and
//!   `registry_notifications_queue_bytes` (durable queues) read at each scrape;
//! - `/debug/health` ([`health`]): `200 {}` while every check passes, else `503` with a JSON
//!   object naming each failing check;
//! - `/notifications/…` ([`admin`]): each endpoint's status, recent deliveries and dead letters,
//!   redelivery and ping. With `http.debug.token` they require `Authorization: Bearer <token>`.
//!
//! No secret appears in any of them: URLs are redacted, errors scrubbed by the sink.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use registry_notify::config::{Config, DebugToken};
use registry_notify::endpoint::EndpointHandle;

pub mod admin;
pub mod health;

pub use admin::EndpointStatus;
pub use health::Check;

/// `:PORT` as `127.0.0.1:PORT`: the debug listener stays on loopback unless a host is given.
fn loopback_unless_told(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_owned()
    }
}

/// The buckets of the delivery-duration histogram, in seconds: from a loopback POST to the
/// default 1 s timeout and beyond.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the debug listener serves.
#[derive(Clone)]
pub struct Debug {
    prometheus: Option<(PrometheusHandle, String)>,
    endpoints: Arc<Vec<EndpointHandle>>,
    checks: Arc<Vec<Check>>,
    token: Option<DebugToken>,
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
                token: config.http.debug_token.clone(),
            },
        )))
    }

    /// The listener's routes.
    pub fn router(self) -> axum::Router {
        let mut router = axum::Router::new()
            .route("/debug/health", get(health::health))
            .merge(admin::routes(&self));
        if let Some((_, path)) = &self.prometheus {
            router = router.route(path, get(prometheus));
        }
        router.with_state(self)
    }

    /// The endpoint named `name`.
    fn endpoint(&self, name: &str) -> Option<&EndpointHandle> {
        self.endpoints.iter().find(|e| e.name() == name)
    }

    /// Binds `addr` (`:5001` means loopback, `0.0.0.0:5001` every interface) and serves
    /// `endpoints` until the process exits (so that the drain after a shutdown can be
    /// watched); says on stderr where it listens, and returns the bound address.
    pub async fn start(
        mut self,
        addr: &str,
        endpoints: &[EndpointHandle],
    ) -> Result<SocketAddr, Box<dyn std::error::Error>> {
        self.endpoints = Arc::new(endpoints.to_vec());
        let addr = loopback_unless_told(addr);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("listen http.debug.addr {addr}: {e}"))?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() && self.token.is_none() {
            tracing::warn!(addr = %local,
                "debug listener: not on loopback and no http.debug.token: anyone who reaches it can redeliver and ping");
        }
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "debug listener stopped");
            }
        });
        eprintln!("debug listening on http://{local}");
        Ok(local)
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

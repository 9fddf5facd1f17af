//! A real OCI distribution-spec registry on axum, wrapped by the notification layer.
//!
//! ```text
//! cargo run --example registry                          # 127.0.0.1:5000, in memory, prints every envelope
//! cargo run --example registry -- serve config.yml      # Distribution's own config format
//! ```
//!
//! With no arguments the registry serves from memory on 127.0.0.1:5000 and
//! prints each envelope it would send (`events.v2`), one per event, to stdout.
//! With `serve config.yml` it reads `http.addr`, `storage` (`filesystem.rootdirectory`
//! or `inmemory`, `delete.enabled`) and `notifications` — endpoints with headers,
//! timeout, threshold, backoff, ignore rules and our extension keys — and delivers to
//! them. Without a `notifications` section the layer is not installed at all.
//! Endpoint metrics are served at `/metrics` (Prometheus text, Distribution's names).
//! Dead letters are appended as JSON lines to `dead-letters.jsonl` beside the config.

mod oci;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use registry_notify::config::{Config, StorageDriver};
use registry_notify::layer::PeerAddr;
use registry_notify::notifications::{Notifications, NotificationsHandle};
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Format, SourceRecord};
use tower_http::trace::TraceLayer;

fn usage() -> ! {
    eprintln!("usage: registry              serve 127.0.0.1:5000 from memory, printing envelopes");
    eprintln!("       registry serve FILE   serve as configured by a Distribution config file");
    std::process::exit(2)
}

/// Binds like Distribution: `:5000` means every interface.
fn listen_addr(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    }
}

/// The embedded default: a sink printing each event's envelope to stdout.
fn stdout_sink() -> BoxSink {
    BoxSink::new(tower::service_fn(|batch: Batch| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for event in batch.iter() {
            let _ = out.write_all(&Format::EventsV2.encode(std::slice::from_ref(event)));
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
        async { Ok::<(), BoxError>(()) }
    }))
}

/// Endpoint metrics in Prometheus text format, with Distribution 3's names.
fn render_metrics(handle: &NotificationsHandle) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let snaps = handle.metrics();
    s.push_str("# TYPE registry_notifications_events_total counter\n");
    for m in &snaps {
        for (kind, v) in [
            ("Events", m.events),
            ("Successes", m.successes),
            ("Failures", m.failures),
            ("Errors", m.errors),
        ] {
            let _ = writeln!(
                s,
                "registry_notifications_events_total{{endpoint={:?},type=\"{kind}\"}} {v}",
                m.name
            );
        }
    }
    s.push_str("# TYPE registry_notifications_pending_total gauge\n");
    for m in &snaps {
        let _ = writeln!(
            s,
            "registry_notifications_pending_total{{endpoint={:?}}} {}",
            m.name, m.pending
        );
    }
    s.push_str("# TYPE registry_notifications_status_total counter\n");
    for m in &snaps {
        for (code, v) in &m.statuses {
            let _ = writeln!(
                s,
                "registry_notifications_status_total{{code={code:?},endpoint={:?}}} {v}",
                m.name
            );
        }
    }
    s.push_str("# TYPE registry_notify_endpoint_events counter\n");
    for m in &snaps {
        for (kind, v) in [
            ("delivered", m.delivered),
            ("dropped", m.dropped),
            ("filtered", m.filtered),
            ("dead_lettered", m.dead_lettered),
            ("retries", m.retries),
        ] {
            let _ = writeln!(
                s,
                "registry_notify_endpoint_events{{endpoint={:?},kind=\"{kind}\"}} {v}",
                m.name
            );
        }
        let _ = writeln!(
            s,
            "registry_notify_breaker_open{{endpoint={:?}}} {}",
            m.name,
            u8::from(m.breaker_open)
        );
    }
    s
}

struct Setup {
    addr: String,
    registry: oci::Registry,
    notifications: Option<(registry_notify::NotificationLayer, NotificationsHandle)>,
}

fn from_config(path: &Path) -> Result<Setup, Box<dyn std::error::Error>> {
    let config = Config::from_path(path)?;
    let opts = oci::RegistryOptions {
        delete_enabled: config.storage.delete_enabled,
    };
    let registry = match &config.storage.driver {
        Some(StorageDriver::Filesystem { root_directory }) => {
            oci::Registry::filesystem(root_directory.clone(), opts)?
        }
        Some(StorageDriver::InMemory) | None => oci::Registry::in_memory(opts),
        Some(other) => {
            return Err(format!(
                "storage driver {:?} is not supported by this example",
                other.name()
            )
            .into())
        }
    };
    let notifications = match &config.notifications {
        None => None,
        Some(n) => {
            let dead_letters: PathBuf = path.with_file_name("dead-letters.jsonl");
            let endpoints = n.endpoints()?;
            let mut builder = Notifications::builder()
                .source(SourceRecord::local(&config.http.addr))
                .include_references(n.events.include_references);
            if let Some(host) = &config.http.host {
                builder = builder.base_url(host.clone());
            }
            for endpoint in endpoints {
                let file = dead_letters.clone();
                builder =
                    builder.endpoint(endpoint.with_dead_letter(move |dl| append_dead_letter(&file, dl)));
            }
            if let Some(nats) = &n.nats {
                // Scale-out: publish to NATS JetStream as well (needs the `nats` feature).
                builder = builder.nats(nats)?;
            }
            Some(builder.build()?)
        }
    };
    Ok(Setup {
        addr: config.http.addr.clone(),
        registry,
        notifications,
    })
}

fn append_dead_letter(file: &Path, dl: registry_notify::endpoint::DeadLetter) {
    use std::io::Write;
    let line = serde_json::json!({
        "endpoint": dl.endpoint,
        "reason": dl.reason,
        "attempts": dl.attempts,
        "events": dl.batch.iter().collect::<Vec<_>>(),
    });
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{line}");
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let setup = match args.as_slice() {
        [] => {
            let (layer, handle) = Notifications::builder()
                .source(SourceRecord::local("127.0.0.1:5000"))
                .sink(stdout_sink())
                .build()
                .expect("the embedded default is valid");
            Setup {
                addr: "127.0.0.1:5000".into(),
                registry: oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true }),
                notifications: Some((layer, handle)),
            }
        }
        [cmd, file] if cmd == "serve" => match from_config(Path::new(file)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{file}: {e}");
                std::process::exit(1);
            }
        },
        _ => usage(),
    };

    let mut app = oci::router(setup.registry);
    let handle = match setup.notifications {
        Some((layer, handle)) => {
            app = app.layer(layer);
            let h = handle.clone();
            app = app.route(
                "/metrics",
                get(move || {
                    let h = h.clone();
                    async move { render_metrics(&h) }
                }),
            );
            Some(handle)
        }
        None => None,
    };
    // Outside the layer: the peer address for `request.addr`, then request logs.
    let app = app
        .layer(axum::middleware::map_request(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>, mut req: Request| async move {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ))
        .layer(TraceLayer::new_for_http());

    let addr = listen_addr(&setup.addr);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "registry listening on http://{} ({})",
        listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
        if handle.is_some() {
            "notifications on"
        } else {
            "notifications off"
        }
    );
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await;
    if let Err(e) = served {
        eprintln!("serve: {e}");
    }
    if let Some(handle) = handle {
        let report = handle.shutdown(Duration::from_secs(5)).await;
        if report.total() > 0 {
            eprintln!(
                "shutdown: undelivered events per endpoint: {:?}",
                report.undelivered
            );
        }
    }
}

//! A real OCI distribution-spec registry on axum, wrapped by the notification layer.
//!
//! ```text
//! cargo run --example registry                          # 127.0.0.1:5000 → receiver on 127.0.0.1:5055
//! cargo run --example registry -- serve config.yml      # Distribution's own config format
//! ```
//!
//! With no arguments the registry serves from memory on 127.0.0.1:5000, and a webhook
//! receiver started beside it on 127.0.0.1:5055 gets every event over HTTP (one
//! `events.v2` envelope per POST, through the whole delivery stack: queue, retry, HTTP
//! sink) and prints each envelope it receives to stdout. `--addr A` and `--receiver A`
//! choose other addresses (`127.0.0.1:0` for any free port; both are printed on stderr).
//! With `serve config.yml` it reads `http.addr`, `storage` (`filesystem.rootdirectory`
//! or `inmemory`, `delete.enabled`) and `notifications` — endpoints with headers,
//! timeout, threshold, backoff, ignore rules and our extension keys — and delivers to
//! them. Without a `notifications` section the layer is not installed at all.
//! Endpoint metrics are served at `/metrics` (Prometheus text, Distribution's names).
//! Dead letters are appended as JSON lines to `dead-letters.jsonl` beside the config.

mod oci;

#[path = "../common/mod.rs"]
mod common;

use common::{listen_addr, shutdown_signal};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::routing::get;
use registry_notify::config::{Config, StorageDriver};
use registry_notify::endpoint::Endpoint;
use registry_notify::layer::PeerAddr;
use registry_notify::notifications::{Notifications, NotificationsHandle};
use registry_notify::SourceRecord;
use tower_http::trace::TraceLayer;

fn usage() -> ! {
    eprintln!("usage: registry [--addr A] [--receiver A]");
    eprintln!("           serve from memory on A (127.0.0.1:5000), delivering to a receiver on");
    eprintln!("           127.0.0.1:5055 started beside it, which prints what it receives");
    eprintln!("       registry serve FILE");
    eprintln!("           serve as configured by a Distribution config file");
    std::process::exit(2)
}

/// The local webhook receiver of the no-argument mode: prints each envelope it receives
/// (with the request line and content type) to stdout and answers 200.
async fn start_local_receiver(addr: &str) -> std::io::Result<SocketAddr> {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        use std::io::Write;
                        let line = format!(
                            "receiver: {} {} ({})",
                            req.method(),
                            req.uri(),
                            req.headers()
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("no content type")
                        );
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{line}");
                        let _ = out.write_all(&body);
                        let _ = writeln!(out);
                        let _ = out.flush();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

/// The no-argument mode: in memory on `addr`, one endpoint delivering to a local receiver.
async fn local_setup(addr: &str, receiver: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    // The registry's address is known before the layer is built only if it is fixed.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let registry_addr = listener.local_addr()?;
    let receiver_addr = start_local_receiver(receiver).await?;
    eprintln!("receiver listening on http://{receiver_addr}/events");
    let endpoint = Endpoint::builder("local", format!("http://{receiver_addr}/events"))
        .timeout(Duration::from_secs(2))
        .build()?;
    let (layer, handle) = Notifications::builder()
        .source(SourceRecord::local(&registry_addr.to_string()))
        .endpoint(endpoint)
        .build()?;
    Ok(Setup {
        addr: registry_addr.to_string(),
        listener: Some(listener),
        registry: oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true }),
        notifications: Some((layer, handle)),
    })
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
    /// Already bound (the no-argument mode binds first to learn a `:0` port).
    listener: Option<tokio::net::TcpListener>,
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
    // Everything the file says (source, http.host, includereferences, endpoints, NATS), with
    // dead letters next to the config file.
    let notifications = match &config.notifications {
        None => None,
        Some(_) => Some(
            Notifications::from_config(&config)?
                .dead_letter_file(path.with_file_name("dead-letters.jsonl"))
                .build()?,
        ),
    };
    Ok(Setup {
        addr: config.http.addr.clone(),
        listener: None,
        registry,
        notifications,
    })
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
    let setup = match args.first().map(String::as_str) {
        None | Some("--addr" | "--receiver") => {
            let mut addr = "127.0.0.1:5000".to_owned();
            let mut receiver = "127.0.0.1:5055".to_owned();
            let mut rest = args.iter();
            while let Some(flag) = rest.next() {
                match (flag.as_str(), rest.next()) {
                    ("--addr", Some(v)) => addr = v.clone(),
                    ("--receiver", Some(v)) => receiver = v.clone(),
                    _ => usage(),
                }
            }
            match local_setup(&addr, &receiver).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("registry on {addr}, receiver on {receiver}: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some("serve") if args.len() == 2 => match from_config(Path::new(&args[1])) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", args[1]);
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
    let listener = match setup.listener {
        Some(l) => l,
        None => match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("listen {addr}: {e}");
                std::process::exit(1);
            }
        },
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

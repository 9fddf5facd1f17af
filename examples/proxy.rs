//! Notifications for any registry: a reverse proxy with the notification layer
//! in front of a registry that is not written in Rust (Distribution, zot, Harbor's core).
//!
//! ```text
//! cargo run --example proxy -- serve config.yml
//! ```
//!
//! The config is Distribution's own format plus one top-level key:
//!
//! ```yaml
//! upstream: http://127.0.0.1:5001   # the registry behind the proxy
//! http:
//!   addr: 127.0.0.1:5000            # where the proxy listens
//! notifications:
//!   endpoints:
//!     - name: audit
//!       url: http://127.0.0.1:5055/events
//! ```
//!
//! Every request is forwarded to the upstream with its method, path, query,
//! headers and body; the response comes back with its status, headers and body.
//! Bodies stream in both directions with backpressure (a multi-GB layer is never
//! held in memory). Along the way the proxy
//!
//! - removes hop-by-hop fields (RFC 9110 §7.6.1): `Connection` and the fields it
//!   names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`, and `Proxy-Authorization`/`Proxy-Authenticate` (meant for this hop);
//!   `Expect: 100-continue` is answered by this hop;
//! - keeps the client's `Host` (so the upstream builds its `Location`s and event URLs
//!   for the proxy's address, as behind nginx with `proxy_set_header Host $http_host`),
//!   appends the client's IP to `X-Forwarded-For`, and sets `X-Forwarded-Proto`
//!   and `X-Forwarded-Host` unless the client already sent them;
//! - rewrites a `Location` that points at the upstream's own origin to the
//!   client-facing origin;
//! - passes `Authorization`, `WWW-Authenticate`, `Range`/`Content-Range` and every
//!   status code through unchanged; an unreachable upstream gives `502`.
//!
//! The notification layer derives the events from what passes through. Fields the
//! exchange lacks (the size of a blob committed by a chunked upload or mounted, the
//! tags a delete by digest removes) are fetched from the upstream through the
//! layer's lookup fallback, with this same proxy service as the lookup: those
//! requests carry `User-Agent: registry-notify-proxy/<version> (lookup)`.
//!
//! Only `http://` upstreams are supported by this example.

use example_registry::cli::{load_config, Cli};
use example_registry::common::{
    default_dead_letters, drain, init_tracing, listen_addr, log_endpoints, notifications_from,
    notifications_state, shutdown_signal, DEFAULT_DRAIN,
};
use example_registry::debug::Debug;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use registry_notify::layer::PeerAddr;
use registry_notify::notifications::NotificationsHandle;
use registry_notify::sink::BoxError;
use registry_notify::NotificationLayer;

/// The `User-Agent` of the layer's lookups through the proxy.
const LOOKUP_AGENT: &str = concat!("registry-notify-proxy/", env!("CARGO_PKG_VERSION"), " (lookup)");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Connection-specific fields, never forwarded (RFC 9110 §7.6.1), plus the
/// proxy-authentication fields of this hop and `Expect`, which this hop answers.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

const CLI: Cli = Cli::new(
    "proxy",
    "\
usage: proxy serve [--dead-letters PATH] FILE
           forward to `upstream:` as configured by a Distribution config file, with
           Distribution's REGISTRY_* environment overrides applied on top
           (REGISTRY_HTTP_ADDR, REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL, ...); events given
           up on are appended as JSON lines to PATH (default: dead-letters.jsonl beside FILE)
       proxy -h | --help | -V | --version

environment: RUST_LOG sets the log filter (default info)
",
    &["--dead-letters"],
);

/// The registry behind the proxy.
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// `http://host:port`, to recognise `Location`s pointing at it.
    origin: String,
}

impl Upstream {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.trim().parse().map_err(|e| format!("upstream {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "upstream {url:?}: scheme {other:?} is not supported (http only)"
                ))
            }
            None => return Err(format!("upstream {url:?}: an absolute http:// URL is required")),
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("upstream {url:?}: no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("upstream {url:?}: a path prefix is not supported"));
        }
        Ok(Self {
            scheme: Scheme::HTTP,
            origin: format!("http://{authority}"),
            authority,
        })
    }
}

/// The request body sent upstream: the client's, streamed.
type UpBody = UnsyncBoxBody<Bytes, BoxError>;
/// The response body: the upstream's, streamed, or a short error of the proxy.
type DownBody = Either<Incoming, Full<Bytes>>;

/// The forwarding service: any request in, the upstream's response out.
#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, UpBody>,
    upstream: Arc<Upstream>,
}

impl Proxy {
    fn new(upstream: Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            upstream: Arc::new(upstream),
        }
    }

    async fn forward<B>(self, req: Request<B>) -> Response<DownBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let (mut parts, body) = req.into_parts();
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        strip_hop_by_hop(&mut parts.headers);
        if let Some(h) = &host {
            parts.headers.insert(header::HOST, h.clone());
        }
        if let Some(peer) = peer {
            append_forwarded_for(&mut parts.headers, peer);
        }
        if !parts.headers.contains_key(X_FORWARDED_PROTO) {
            parts
                .headers
                .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if let (false, Some(h)) = (parts.headers.contains_key(X_FORWARDED_HOST), &host) {
            parts.headers.insert(X_FORWARDED_HOST, h.clone());
        }
        // The origin the client sees, for `Location` rewriting.
        let client_origin = client_origin(&parts.headers);
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        parts.uri = match Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path)
            .build()
        {
            Ok(u) => u,
            Err(_) => return error(StatusCode::BAD_REQUEST, "bad request target"),
        };
        parts.version = Version::HTTP_11;
        let method = parts.method.clone();
        let req = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
        match self.client.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                if let Some(origin) = &client_origin {
                    rewrite_location(&mut parts.headers, &self.upstream.origin, origin);
                }
                Response::from_parts(parts, Either::Left(body))
            }
            Err(e) => {
                tracing::warn!(%method, upstream = %self.upstream.origin, error = %e, "upstream request failed");
                error(StatusCode::BAD_GATEWAY, "upstream unavailable")
            }
        }
    }
}

impl<B> tower::Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<DownBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<DownBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move { Ok(proxy.forward(req).await) })
    }
}

fn error(status: StatusCode, msg: &'static str) -> Response<DownBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(msg.as_bytes()))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Removes `Connection`, the fields it names, and the other hop-by-hop fields.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `X-Forwarded-For: <what the client sent>, <client ip>`.
fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_canonical().to_string();
    let prior: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let value = if prior.is_empty() {
        ip
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

/// `proto://host` as the client addressed the proxy (first forwarded values).
fn client_origin(headers: &HeaderMap) -> Option<String> {
    let first = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = first(&X_FORWARDED_PROTO).unwrap_or("http");
    let host = first(&X_FORWARDED_HOST)?;
    Some(format!("{proto}://{host}"))
}

/// A `Location` pointing at the upstream's origin points at the proxy instead.
fn rewrite_location(headers: &mut HeaderMap, upstream_origin: &str, client_origin: &str) {
    let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(rest) = loc.strip_prefix(upstream_origin) else {
        return;
    };
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return; // `http://host:50` must not match `http://host:5000`
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{client_origin}{rest}")) {
        headers.insert(header::LOCATION, v);
    }
}

struct Setup {
    addr: String,
    upstream: Upstream,
    notifications: Option<(NotificationLayer, NotificationsHandle)>,
    debug: Option<(String, Debug)>,
    drain: Duration,
}

fn upstream_of(yaml: &str) -> Result<Upstream, String> {
    let value: yaml_serde::Value = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
    match value.get("upstream") {
        Some(yaml_serde::Value::String(url)) => Upstream::parse(url),
        Some(_) => Err("upstream: a URL string is required (upstream: http://host:port)".into()),
        None => Err("missing key upstream: http://host:port (the registry behind the proxy)".into()),
    }
}

fn from_config(path: &Path, dead_letters: &Path) -> Result<Setup, Box<dyn std::error::Error>> {
    let config = load_config(path)?;
    let yaml = std::fs::read_to_string(path)?;
    // Before the endpoints: their metric handles belong to the recorder installed then.
    let debug = Debug::install(&config)?;
    Ok(Setup {
        addr: config.http.addr.clone(),
        upstream: upstream_of(&yaml)?,
        notifications: notifications_from(&config, dead_letters)?,
        debug,
        drain: config.http.drain_timeout.unwrap_or(DEFAULT_DRAIN),
    })
}

#[tokio::main]
async fn main() {
    let args = CLI.parse();
    init_tracing("info");

    let setup = match args.positional.as_slice() {
        [cmd, file] if cmd == "serve" => {
            let dead_letters = match args.flags.last() {
                Some((_, to)) => to.into(),
                None => default_dead_letters(Path::new(file)),
            };
            match from_config(Path::new(file), &dead_letters) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{file}: {e}");
                    std::process::exit(1);
                }
            }
        }
        [cmd, ..] if cmd == "serve" => CLI.fail("serve takes one FILE"),
        [other, ..] => CLI.fail(&format!("unknown command {other}")),
        [] => CLI.fail("a command is required"),
    };

    let proxy = Proxy::new(setup.upstream);
    let upstream = proxy.upstream.origin.clone();
    let (layer, handle) = match setup.notifications {
        Some((layer, handle)) => {
            // The layer's fallback for fields the exchange lacks asks the upstream, through the proxy.
            let lookup = tower::ServiceExt::map_request(proxy.clone(), |mut r: Request<_>| {
                r.headers_mut()
                    .insert(header::USER_AGENT, HeaderValue::from_static(LOOKUP_AGENT));
                r
            });
            (layer.lookup(lookup), Some(handle))
        }
        None => (NotificationLayer::default(), None),
    };
    let app = tower::ServiceBuilder::new().layer(layer).service(proxy);
    let endpoints = handle.as_ref().map(|h| h.endpoints()).unwrap_or_default();
    log_endpoints(endpoints);
    if let Some((addr, debug)) = setup.debug {
        if let Err(e) = debug.start(&addr, endpoints).await {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let addr = listen_addr(&setup.addr);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "proxy listening on http://{} for {upstream} ({})",
        listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
        notifications_state(handle.as_ref())
    );

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = tower::ServiceExt::map_request(app.clone(), move |mut r: Request<Incoming>| {
            r.extensions_mut().insert(PeerAddr(peer));
            r
        });
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(svc),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(setup.drain) => {
            eprintln!("shutdown: connections still open after {:?}, closing", setup.drain);
        }
    }
    if let Some(handle) = handle {
        drain(handle, setup.drain).await;
    }
}

//! Loopback servers: one accept loop (hyper, HTTP/1.1 with keep-alive) for every server the
//! tests start, and addresses where nothing, or something hostile, listens.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use registry_notify::layer::PeerAddr;
use registry_notify::sink::BoxError;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves every connection `listener` accepts with the service `make(n, peer)` returns for
/// the `n`-th connection (0-based) from `peer`. Dropping (aborting) the returned task stops
/// listening and drops every open connection.
pub fn spawn_server<M, S, B>(listener: TcpListener, make: M) -> JoinHandle<()>
where
    M: Fn(usize, SocketAddr) -> S + Send + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        let mut accepted = 0;
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            while connections.try_join_next().is_some() {}
            let service = hyper_util::service::TowerToHyperService::new(make(accepted, peer));
            accepted += 1;
            connections.spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Serves `svc` on 127.0.0.1:0 with hyper, inserting `PeerAddr` into each request.
pub async fn serve<S, B>(svc: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_server(listener, move |_, peer| {
        tower::ServiceExt::map_request(svc.clone(), move |mut r: Request<Incoming>| {
            r.extensions_mut().insert(PeerAddr(peer));
            r
        })
    });
    addr
}

/// Serves an axum router (any body) on 127.0.0.1:0.
pub async fn serve_router(router: axum::Router) -> SocketAddr {
    let svc = tower::ServiceExt::map_request(router, |r: Request<Incoming>| r.map(axum::body::Body::new));
    serve(svc).await
}

/// A listener that accepts connections and closes them at once; returns its address.
pub async fn closing_listener() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    (addr, task)
}

/// An address on 127.0.0.1 where nothing listens (bound, then released), on a port outside the
/// kernel's ephemeral range: no outgoing connection can take it meanwhile, and a process
/// retrying a connection to it cannot connect to itself (TCP simultaneous open), either of
/// which would make a later bind of the same port fail.
pub async fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A port on 127.0.0.1 where nothing listens now (bound, then released), outside the kernel's
/// ephemeral range (see [`dead_addr`]).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    let (low, _) = ephemeral_range();
    // Below the ephemeral range, from a per-process starting point so that concurrent test
    // binaries rarely try the same ports; a port in use is skipped.
    let floor = 10_000u16.min(low.saturating_sub(1000));
    let span = low.saturating_sub(floor).max(1);
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let offset = (start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % span;
        let port = floor + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {floor} and {low}");
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), Linux's default if
/// unreadable.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

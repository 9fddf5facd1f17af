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

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A port on 127.0.0.1 where nothing listens now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

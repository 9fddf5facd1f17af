//! A loopback webhook receiver for the delivery tests: records every request and
//! answers according to a behaviour closure. Only ever binds 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use registry_notify::{Envelope, Event};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Hang guard for every wait: generous, never an assertion about speed.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: Method,
    pub uri: http::Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Index of the accepted connection it came on.
    pub connection: usize,
    /// When the request (head and body) had arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn envelope(&self) -> Envelope {
        serde_json::from_slice(&self.body).expect("body decodes as an Envelope")
    }

    pub fn events(&self) -> Vec<Event> {
        self.envelope().events
    }

    pub fn ids(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.id.to_string()).collect()
    }
}

pub type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
/// Decides the answer to the `n`-th request (0-based).
pub type Behaviour = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

pub fn response(status: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// Always answers `status`.
pub fn always(status: u16) -> Behaviour {
    Arc::new(move |_, _| Box::pin(std::future::ready(response(status))))
}

/// A gate: requests wait until it is opened.
pub fn gate() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::watch::Receiver<bool>,
) {
    tokio::sync::watch::channel(false)
}

/// Answers `status` once the gate is open (requests that find it closed wait).
pub fn gated(open: tokio::sync::watch::Receiver<bool>, status: u16) -> Behaviour {
    Arc::new(move |_, _| {
        let mut open = open.clone();
        Box::pin(async move {
            let _ = open.wait_for(|o| *o).await;
            response(status)
        })
    })
}

/// Never answers.
pub fn stall() -> Behaviour {
    Arc::new(|_, _| Box::pin(std::future::pending()))
}

/// Answers the status `f` picks for the `n`-th request.
pub fn by_index(f: impl Fn(usize, &Received) -> u16 + Send + Sync + 'static) -> Behaviour {
    Arc::new(move |n, r| {
        let status = f(n, r);
        Box::pin(std::future::ready(response(status)))
    })
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Received>>,
    connections: AtomicUsize,
}

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), behaviour).await
    }

    /// Listens on `addr` (to come back on the same port after a stop).
    pub async fn start_on(addr: SocketAddr, behaviour: Behaviour) -> Self {
        assert!(addr.ip().is_loopback());
        let listener = TcpListener::bind(addr).await.expect("bind loopback");
        Self::serve(listener, behaviour)
    }

    pub fn serve(listener: TcpListener, behaviour: Behaviour) -> Self {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let connection = s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                let behaviour = behaviour.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let s = s.clone();
                        let behaviour = behaviour.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let received = Received {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                                connection,
                                at: std::time::Instant::now(),
                            };
                            let index = {
                                let mut requests = s.requests.lock().unwrap();
                                requests.push(received.clone());
                                requests.len() - 1
                            };
                            Ok::<_, Infallible>(behaviour(index, &received).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Ids of all events received, in arrival order (duplicates included).
    pub fn ids(&self) -> Vec<String> {
        self.requests().iter().flat_map(|r| r.ids()).collect()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection.
    pub fn stop(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }

    /// Waits until `n` requests arrived.
    pub async fn wait_requests(&self, n: usize) {
        wait_until(&format!("{n} requests"), || self.request_count() >= n).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `cond` until it holds; panics after [`HANG_GUARD`] (a hang guard only).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

/// A test event with a recognisable id and repository.
pub fn event(i: usize, repository: &str) -> Event {
    let mut e = Event::new(registry_notify::Action::Push, registry_notify::Target::default());
    e.id = format!("event-{i}").into();
    e.target.repository = repository.to_owned().into();
    e.target.descriptor.media_type = "application/vnd.oci.image.manifest.v1+json".into();
    e.request.method = "PUT".into();
    e
}

//! A loopback webhook receiver: records every request and answers according to a
//! behaviour ([`always`], [`by_index`], [`gated`], [`stall`] or any closure). Only ever binds
//! 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use registry_notify::{Action, Envelope, Event};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::serve::spawn_server;
use crate::{wait_until, HANG_GUARD};

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request method.
    pub method: Method,
    /// The request target.
    pub uri: http::Uri,
    /// The header fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Index of the accepted connection it came on.
    pub connection: usize,
    /// When the request (head and body) had arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// The body as an envelope; panics if it is not one.
    pub fn envelope(&self) -> Envelope {
        serde_json::from_slice(&self.body).expect("body decodes as an Envelope")
    }

    /// The envelope's events.
    pub fn events(&self) -> Vec<Event> {
        self.envelope().events
    }

    /// The body's `events`, as JSON (for fields the crate's model does not keep as sent).
    pub fn json_events(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("body is JSON");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// The ids of the envelope's events.
    pub fn ids(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.id.to_string()).collect()
    }
}

/// The answer to a request, once it is ready.
pub type Answer = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
/// Decides the answer to the `n`-th request (0-based).
pub type Behaviour = Arc<dyn Fn(usize, &Received) -> Answer + Send + Sync>;

/// An empty response with `status`.
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
    /// Notified whenever a request arrived.
    arrived: Notify,
}

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
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

    /// Serves on `listener`.
    pub fn serve(listener: TcpListener, behaviour: Behaviour) -> Self {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = spawn_server(listener, move |connection, _| {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            let behaviour = behaviour.clone();
            tower::service_fn(move |req: Request<Incoming>| {
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
                    s.arrived.notify_waiters();
                    Ok::<_, Infallible>(behaviour(index, &received).await)
                }
            })
        });
        Self { addr, shared, task }
    }

    /// `http://<addr>/events`, the URL to give an endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Ids of all events received, in arrival order (duplicates included).
    pub fn ids(&self) -> Vec<String> {
        self.requests().iter().flat_map(|r| r.ids()).collect()
    }

    /// How many connections it accepted so far.
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

    /// Events of every request received so far (each body an envelope), in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.requests().iter().flat_map(Received::events).collect()
    }

    /// The ids of the `push` events received so far, by the digest they name (one id per
    /// digest unless the same push was delivered under different ids).
    pub fn push_ids_by_digest(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_digest: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in self.events() {
            if e.action == Action::Push {
                by_digest
                    .entry(e.target.descriptor.digest.to_string())
                    .or_default()
                    .insert(e.id.to_string());
            }
        }
        by_digest
    }

    /// [`Received::json_events`] of every request received so far, in arrival order.
    pub fn json_events(&self) -> Vec<serde_json::Value> {
        self.requests().iter().flat_map(Received::json_events).collect()
    }

    /// Waits until at least `n` events arrived; returns all of them.
    pub async fn wait_events(&self, n: usize) -> Vec<Event> {
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let arrived = self.shared.arrived.notified();
                if self.events().len() >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("expected {n} events, got {:?}", self.events()));
        self.events()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

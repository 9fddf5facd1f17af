//! Helpers shared by the integration tests: a loopback server, an HTTP client,
//! an in-process probe sink, a webhook receiver, and tool discovery.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use registry_notify::layer::PeerAddr;
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Event};
use tokio::sync::Notify;

/// Generous guard against hangs; never an assertion about speed.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Serves `svc` on 127.0.0.1:0 with hyper, inserting `PeerAddr` into each request.
pub async fn serve<S, B>(svc: S) -> SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let svc =
                    tower::ServiceExt::map_request(svc, move |mut r: Request<hyper::body::Incoming>| {
                        r.extensions_mut().insert(PeerAddr(peer));
                        r
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(
                        TokioIo::new(stream),
                        hyper_util::service::TowerToHyperService::new(svc),
                    )
                    .await;
            });
        }
    });
    addr
}

/// Serves an axum router (any body) on 127.0.0.1:0.
pub async fn serve_router(router: axum::Router) -> SocketAddr {
    let svc = tower::ServiceExt::map_request(router, |r: Request<hyper::body::Incoming>| {
        r.map(axum::body::Body::new)
    });
    serve(svc).await
}

/// A plain HTTP/1 client.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    pub base: String,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let uri = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = tokio::time::timeout(
            HANG_GUARD,
            self.client.request(b.body(Full::new(body.into())).unwrap()),
        )
        .await
        .expect("request hung")
        .expect("request failed");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Bytes::new()).await
    }

    /// Starts an upload session in `repo`; returns its `Location`.
    pub async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Bytes::new())
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        r.header("location").expect("upload location").to_string()
    }

    /// Pushes a blob with POST then PUT (whole body); returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha256(data);
        let loc = self.start_upload(repo).await;
        let headers = [("content-type", "application/octet-stream")];
        let r = self
            .send("PUT", &with_digest(&loc, &d), &headers, data.to_vec())
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        d
    }

    /// Pushes a blob with POST, one PATCH per chunk, and an empty final PUT; returns its digest.
    pub async fn chunked_upload(&self, repo: &str, chunks: &[&str]) -> String {
        let mut loc = self.start_upload(repo).await;
        for chunk in chunks {
            let r = self.send("PATCH", &loc, &[], chunk.to_string()).await;
            assert_eq!(r.status, 202, "{:?}", r.body);
            loc = r.header("location").expect("upload location").to_string();
        }
        let d = sha256(chunks.concat().as_bytes());
        assert_eq!(
            self.send("PUT", &with_digest(&loc, &d), &[], Bytes::new())
                .await
                .status,
            201
        );
        d
    }

    /// PUTs a manifest and expects 201.
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .send("PUT", &path, &[("content-type", media_type)], body.to_vec())
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
}

/// An upload `Location` with `digest=` appended, as curl scripts do.
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// An in-process sink that records every event it is given.
#[derive(Clone, Default)]
pub struct Probe {
    events: Arc<Mutex<Vec<Event>>>,
    notify: Arc<Notify>,
}

impl Probe {
    pub fn sink(&self) -> BoxSink {
        let p = self.clone();
        BoxSink::new(tower::service_fn(move |b: Batch| {
            p.events.lock().unwrap().extend(b.iter().cloned());
            p.notify.notify_waiters();
            async { Ok::<(), BoxError>(()) }
        }))
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Removes and returns what arrived so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    /// Waits until at least `n` events arrived, then returns and clears them.
    pub async fn wait_take(&self, n: usize) -> Vec<Event> {
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let notified = self.notify.notified();
                if self.events.lock().unwrap().len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("expected {n} events, got {:?}", self.events()));
        self.take()
    }
}

/// A webhook receiver on 127.0.0.1:0 recording each POST (headers, body).
#[derive(Clone, Default)]
pub struct Receiver {
    pub posts: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    notify: Arc<Notify>,
    pub status: Arc<Mutex<HashMap<(), u16>>>,
}

impl Receiver {
    pub async fn start() -> (Self, SocketAddr) {
        let r = Receiver::default();
        let rc = r.clone();
        let svc = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
            let rc = rc.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                rc.posts.lock().unwrap().push((parts.headers, body));
                rc.notify.notify_waiters();
                let code = rc.status.lock().unwrap().get(&()).copied().unwrap_or(200);
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::from_u16(code).unwrap();
                Ok::<_, Infallible>(resp)
            }
        });
        let addr = serve(svc).await;
        (r, addr)
    }

    /// Events of every POST received so far, in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, b)| {
                serde_json::from_slice::<registry_notify::Envelope>(b)
                    .unwrap()
                    .events
            })
            .collect()
    }

    pub async fn wait_events(&self, n: usize) -> Vec<Event> {
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let notified = self.notify.notified();
                if self.events().len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("expected {n} events, got {:?}", self.events()));
        self.events()
    }
}

/// Finds an outside program on PATH. Without it the test is skipped loudly,
/// or fails when `REGISTRY_NOTIFY_REQUIRE_TOOLS` is set (as in CI).
pub fn require_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("REGISTRY_NOTIFY_REQUIRE_TOOLS").is_some() {
            panic!("{name} is not on PATH and REGISTRY_NOTIFY_REQUIRE_TOOLS is set");
        }
        eprintln!("\n*** SKIPPED: {name} is not on PATH (apt-get install {name}) ***\n");
    }
    found
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

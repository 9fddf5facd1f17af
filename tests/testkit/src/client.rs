//! An HTTP/1 client for registries on loopback, with the upload steps tests repeat.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::{sha256, HANG_GUARD};

/// A plain HTTP/1 client with kept-alive connections.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// The server's address.
    pub addr: SocketAddr,
    /// `http://<addr>`, prefixed to the paths given to [`Http::send`].
    pub base: String,
}

/// A response, its body read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The header fields.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The value of header field `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Http {
    /// A client of the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
            base: format!("http://{addr}"),
        }
    }

    /// The absolute URL of `path` (relative to [`Http::base`], or already an `http` URL).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Sends `method` to `path` (see [`Http::url`]) with `headers` and `body`; panics if it
    /// fails or hangs.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(self.url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.request(b.body(Full::new(body.into())).unwrap()).await
    }

    /// Sends `request` (its URI absolute) and reads the whole response; panics if it fails or
    /// hangs.
    pub async fn request(&self, request: Request<Full<Bytes>>) -> Reply {
        let resp = tokio::time::timeout(HANG_GUARD, self.client.request(request))
            .await
            .expect("request hung")
            .expect("request failed");
        read(resp).await
    }

    /// [`Http::request`] for a request the server may refuse by dropping the connection: `None`
    /// if it fails (or hangs).
    pub async fn try_request(&self, request: Request<Full<Bytes>>) -> Option<Reply> {
        match tokio::time::timeout(HANG_GUARD, self.client.request(request)).await {
            Ok(Ok(resp)) => Some(read(resp).await),
            _ => None,
        }
    }

    /// Pushes `data` to `repo` in one request (monolithic `POST ?digest=`): its digest if the
    /// registry answered 201 (so that it emitted `push`); `None` for any other answer, a failed
    /// request (the registry was killed), or no answer within `patience`.
    pub async fn try_monolithic_push(&self, repo: &str, data: &[u8], patience: Duration) -> Option<String> {
        let digest = sha256(data);
        let request = Request::post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::copy_from_slice(data)))
            .unwrap();
        match tokio::time::timeout(patience, self.client.request(request)).await {
            Ok(Ok(r)) if r.status() == StatusCode::CREATED => Some(digest),
            _ => None,
        }
    }

    /// `GET path`.
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

/// Reads a whole response (bounded by [`HANG_GUARD`]).
async fn read(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(HANG_GUARD, body.collect())
        .await
        .expect("response body hung")
        .expect("response body")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// An upload `Location` with `digest=` appended, as curl scripts do.
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

//! The HTTP sink's own connections: HTTP/1.1 `SendRequest` handles kept alive per endpoint.
//!
//! An endpoint talks to one origin and, behind its queue, has one batch in flight, so the
//! pool is a short stack of idle connections: an attempt takes the most recently used one
//! (or connects), sends, reads the response, and puts the connection back when it is ready
//! for another request. No task is spawned per request and nothing is shared with other
//! endpoints; a connection that the server closed while idle is noticed and replaced, and a
//! request that it could not even start on a reused connection is sent again on a new one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tower_service::Service;

use crate::sink::BoxError;

/// How long an idle connection is kept (the legacy client's default was 90 s too).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many idle connections an endpoint keeps (more only exist while requests overlap).
const MAX_IDLE: usize = 4;

/// One kept-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    reused: bool,
}

/// Idle connections to one endpoint, most recently used last.
pub(crate) struct Pool<C> {
    connector: C,
    idle: Mutex<Vec<(http1::SendRequest<Full<Bytes>>, Instant)>>,
}

impl<C> Pool<C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send,
{
    pub(crate) fn new(connector: C) -> Self {
        Self {
            connector,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection that is still open, or a new one.
    async fn checkout(&self, uri: &Uri) -> Result<Conn, BoxError> {
        if let Some(sender) = self.take_idle() {
            return Ok(Conn { sender, reused: true });
        }
        self.connect(uri).await
    }

    fn take_idle(&self) -> Option<http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self, uri: &Uri) -> Result<Conn, BoxError> {
        let io = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(Into::into)?;
        let (sender, connection) = http1::Builder::new().handshake(io).await?;
        // The connection task ends when either side closes; its error (a reset while idle,
        // say) surfaces on the next request through `SendRequest`, so it is not logged here.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            reused: false,
        })
    }

    /// Sends the request `build` makes. On a reused connection, a request that could not
    /// be started, or whose connection was closed before any byte of a response came back
    /// (the server closed the idle connection as the request went out: the keep-alive
    /// race), is sent once more on a fresh connection — built again from the same body,
    /// so with the same event ids, which webhook receivers already see on any retry.
    /// `build` runs once in the common case, so no request is copied just in case.
    /// Returns the response and the connection, to be given back with
    /// [`Pool::put_back`] once the body is read.
    pub(crate) async fn send(
        &self,
        uri: &Uri,
        build: impl Fn() -> Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Conn), BoxError> {
        let mut conn = self.checkout(uri).await?;
        let mut request = build();
        loop {
            // `ready()` waits for the handshake to finish or the connection to be idle.
            if conn.sender.ready().await.is_ok() {
                match conn.sender.try_send_request(request).await {
                    Ok(response) => return Ok((response, conn)),
                    Err(mut error) => match error.take_message() {
                        Some(unsent) if conn.reused => request = unsent,
                        None if conn.reused && error.error().is_incomplete_message() => {
                            request = build();
                        }
                        _ => return Err(error.into_error().into()),
                    },
                }
            } else if conn.reused {
                request = build();
            } else {
                return Err("connection closed before the request was sent".into());
            }
            // Only a reused connection gets here, and at most once: the next is fresh.
            conn = self.connect(uri).await?;
        }
    }

    /// Keeps `conn` for the next attempt unless it is closed; call it only once the whole
    /// response body was read, so that the connection is (or is about to be) idle.
    pub(crate) fn put_back(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push((conn.sender, Instant::now()));
    }
}

//! The lookup service as the layer sees it: [`Lookup`], an object-safe view of any tower
//! service — the one given to [`NotificationLayer::lookup`](super::NotificationLayer::lookup),
//! or the wrapped service itself (`wrapped.rs`) — whose answers are read whole, up to a bound.
//! What the layer asks of it is `lookup.rs`'s.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Limited};
use tower::{Service, ServiceExt};

use super::manifest::MAX_MANIFEST;

/// Largest lookup response body read (manifests, tag lists).
const MAX_BODY: usize = MAX_MANIFEST;

pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

type FetchFuture = Pin<Box<dyn Future<Output = Option<Fetched>> + Send>>;

/// Object-safe view of a lookup service.
pub(crate) trait Lookup: Send + Sync + 'static {
    fn fetch(&self, req: Request<Empty<Bytes>>) -> FetchFuture;
}

pub(crate) struct ServiceLookup<S>(pub(crate) S);

impl<S, B> Lookup for ServiceLookup<S>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::sink::BoxError>,
{
    fn fetch(&self, req: Request<Empty<Bytes>>) -> FetchFuture {
        let svc = self.0.clone();
        Box::pin(async move {
            let resp = svc.oneshot(req).await.ok()?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY).collect().await.ok()?.to_bytes();
            Some(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
    }
}

impl std::fmt::Debug for dyn Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

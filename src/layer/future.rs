//! The response future of [`Notification`](super::Notification).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::derive::Pending;
use super::finish::{finish, finish_waiting, Finished, Hold};
use super::shared::Shared;

type Deferred<O> = Pin<Box<dyn Future<Output = (Box<Pending>, O)> + Send>>;

pin_project! {
    #[project = StateProj]
    enum State<F: Future> {
        // Not a registry request, or events disabled.
        Passthrough { #[pin] fut: F },
        // A registry request whose response will be turned into events.
        Tracked { #[pin] fut: F, pending: Option<Box<Pending>> },
        // A delete by digest that first looks up the tags it will remove.
        Deferred { fut: Deferred<F::Output> },
        // `fsync: always`: the response waits until its events are on disk.
        Persisting { wait: Hold, result: Option<F::Output> },
    }
}

pin_project! {
    /// Response future of [`Notification`](super::Notification): the inner
    /// future's result, with events derived from the response on the way out.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        state: State<F>,
        shared: Option<Arc<Shared>>,
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn passthrough(fut: F) -> Self {
        Self {
            state: State::Passthrough { fut },
            shared: None,
        }
    }

    pub(crate) fn tracked(fut: F, pending: Box<Pending>, shared: Arc<Shared>) -> Self {
        Self {
            state: State::Tracked {
                fut,
                pending: Some(pending),
            },
            shared: Some(shared),
        }
    }

    pub(crate) fn deferred(fut: Deferred<F::Output>, shared: Arc<Shared>) -> Self {
        Self {
            state: State::Deferred { fut },
            shared: Some(shared),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (pending, result) = match this.state.as_mut().project() {
            StateProj::Passthrough { fut } => {
                return Poll::Ready(ready!(fut.poll(cx)).map(|r| r.map(ResponseBody::new)));
            }
            StateProj::Tracked { fut, pending } => {
                let result = ready!(fut.poll(cx));
                (pending.take(), result)
            }
            StateProj::Deferred { fut } => {
                let (pending, result) = ready!(fut.as_mut().poll(cx));
                (Some(pending), result)
            }
            StateProj::Persisting { wait, result } => {
                let persisted = ready!(wait.as_mut().poll(cx));
                let response = result.take().expect("polled after completion")?;
                return Poll::Ready(Ok(fail_closed(response, persisted)));
            }
        };
        let response = result?;
        if let Some(shared) = this.shared.as_ref().filter(|s| s.dispatcher.waits_for_sinks()) {
            let Some(p) = pending else {
                return Poll::Ready(Ok(response.map(ResponseBody::new)));
            };
            return match finish_waiting(p, shared, &response) {
                Finished::Now(delivery) => {
                    Poll::Ready(Ok(response.map(|body| ResponseBody::delivering(body, delivery))))
                }
                Finished::Hold(mut wait) => match wait.as_mut().poll(cx) {
                    Poll::Ready(persisted) => Poll::Ready(Ok(fail_closed(response, persisted))),
                    Poll::Pending => {
                        this.state.set(State::Persisting {
                            wait,
                            result: Some(Ok(response)),
                        });
                        Poll::Pending
                    }
                },
            };
        }
        Poll::Ready(Ok(match (pending, this.shared.as_ref()) {
            (Some(p), Some(shared)) => {
                let delivery = finish(p, shared, &response);
                response.map(|body| ResponseBody::delivering(body, delivery))
            }
            _ => response.map(ResponseBody::new),
        }))
    }
}

/// The OCI error body of a request failed closed (Distribution's `UNAVAILABLE` error code).
const UNAVAILABLE_BODY: &str = concat!(
    r#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable","#,
    r#""detail":"registry notifications: the events of this request could not be stored durably; retry later"}]}"#
);

/// Seconds a client is asked to wait before retrying a request failed closed.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

/// The response once its events' hand-off resolved: unchanged when they are durable (or the
/// response is an error already); otherwise, for an endpoint that fails closed
/// (`fsync: always`), `503 Service Unavailable` with `Retry-After` and an OCI error body,
/// so that every success a client sees implies its events are on disk.
fn fail_closed<B: http_body::Body>(
    response: Response<B>,
    persisted: Result<(), crate::sink::BoxError>,
) -> Response<ResponseBody<B>> {
    let Err(error) = persisted else {
        return response.map(ResponseBody::new);
    };
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        tracing::warn!(%status, %error, "response kept: it is an error already, its events are not durable");
        return response.map(ResponseBody::new);
    }
    tracing::warn!(
        %status, %error,
        "events not durable: the response is replaced by 503 Service Unavailable"
    );
    let version = response.headers().get("docker-distribution-api-version").cloned();
    let mut out = Response::new(ResponseBody::own(Bytes::from_static(UNAVAILABLE_BODY.as_bytes())));
    *out.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    *out.version_mut() = response.version();
    let headers = out.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(UNAVAILABLE_BODY.len()));
    headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    if let Some(v) = version {
        headers.insert("docker-distribution-api-version", v);
    }
    out
}

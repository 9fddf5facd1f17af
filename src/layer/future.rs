//! The response future of [`Notification`](super::Notification).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::derive::Pending;
use super::service::{finish, finish_waiting, Finished, Hold};
use super::Shared;

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

    pub(crate) fn tracked(fut: F, pending: Pending, shared: Arc<Shared>) -> Self {
        Self {
            state: State::Tracked {
                fut,
                pending: Some(Box::new(pending)),
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
                ready!(wait.as_mut().poll(cx));
                let response = result.take().expect("polled after completion")?;
                return Poll::Ready(Ok(response.map(ResponseBody::new)));
            }
        };
        let response = result?;
        if let Some(shared) = this.shared.as_ref().filter(|s| s.dispatcher.waits_for_sinks()) {
            let Some(p) = pending else {
                return Poll::Ready(Ok(response.map(ResponseBody::new)));
            };
            return match finish_waiting(p, shared, response) {
                Finished::Now(response) => Poll::Ready(Ok(response)),
                Finished::Hold(response, mut wait) => match wait.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Ok(response.map(ResponseBody::new))),
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
            (Some(p), Some(shared)) => finish(p, shared, response),
            _ => response.map(ResponseBody::new),
        }))
    }
}

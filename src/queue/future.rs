//! The response future of the [`Queue`](super::Queue) service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::sink::BoxError;

/// Resolves once events pushed with [`EventQueue::push_persisted`](super::EventQueue::push_persisted)
/// are on disk (or with an error if they could not be written).
pub type Persisted = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// The future of [`Queue`](super::Queue)'s `call`: ready at once, except with a durable
/// `fsync: always` queue, where it resolves once the events are on disk.
pub struct QueueFuture {
    state: State,
}

enum State {
    Ready(Option<Result<(), BoxError>>),
    Persisting(Persisted),
}

impl QueueFuture {
    pub(crate) fn ready(result: Result<(), BoxError>) -> Self {
        Self {
            state: State::Ready(Some(result)),
        }
    }

    pub(crate) fn persisting(wait: Persisted) -> Self {
        Self {
            state: State::Persisting(wait),
        }
    }

    /// Resolves once every one of `futures` has (the pushes of a batch split across
    /// [lanes](super::Lanes)); the first error, if any.
    pub(crate) fn all(futures: Vec<QueueFuture>) -> Self {
        let mut error: Option<BoxError> = None;
        let mut waiting = Vec::new();
        for f in futures {
            match f.state {
                State::Ready(Some(Err(e))) => {
                    error.get_or_insert(e);
                }
                State::Ready(_) => {}
                State::Persisting(wait) => waiting.push(wait),
            }
        }
        if waiting.is_empty() {
            return Self::ready(error.map_or(Ok(()), Err));
        }
        Self::persisting(Box::pin(async move {
            for wait in waiting {
                if let Err(e) = wait.await {
                    error.get_or_insert(e);
                }
            }
            error.map_or(Ok(()), Err)
        }))
    }
}

impl fmt::Debug for QueueFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Persisting(_) => "persisting",
        };
        f.debug_struct("QueueFuture").field("state", &state).finish()
    }
}

impl Future for QueueFuture {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(result) => Poll::Ready(result.take().expect("QueueFuture polled after completion")),
            State::Persisting(wait) => wait.as_mut().poll(cx),
        }
    }
}

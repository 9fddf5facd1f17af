//! The response body wrapper that reports when a pull was fully sent.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::service::Ready;

pin_project! {
    /// The response body of [`Notification`](super::Notification).
    ///
    /// It forwards every frame, `is_end_stream` and `size_hint` unchanged. When
    /// the layer is configured to emit pulls only for fully sent bodies
    /// ([`NotificationLayer::pull_on_body_end`](super::NotificationLayer::pull_on_body_end)),
    /// it holds the pull event until the end of the body is reached — the last
    /// frame, a trailers frame, or `is_end_stream()` turning true, since hyper
    /// stops polling a body of known length before it returns `None` — and
    /// drops it if the body is dropped first (the client went away). "Sent"
    /// means handed in full to the server, which is all a body can observe.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        on_end: Option<Ready>,
        // Bytes still to send when the length is known (Content-Length).
        remaining: Option<u64>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(ready) = this.project().on_end.take() {
                ready.abort();
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("pending_events", &self.on_end.is_some())
            .finish()
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            on_end: None,
            remaining: None,
        }
    }

    /// Delivers `ready` once the body has been sent to its end.
    ///
    /// `length` is the response's `Content-Length`: hyper stops polling once
    /// that many bytes were written, so reaching it is the end too.
    pub(crate) fn on_end(inner: B, ready: Ready, length: Option<u64>) -> Self {
        let remaining = length.or_else(|| inner.size_hint().exact());
        if inner.is_end_stream() || remaining == Some(0) {
            ready.deliver();
            return Self::new(inner);
        }
        Self {
            inner,
            on_end: Some(ready),
            remaining,
        }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if this.on_end.is_some() {
            let ended = match &frame {
                None => true,
                Some(Ok(f)) => {
                    if let (Some(rem), Some(data)) = (this.remaining.as_mut(), f.data_ref()) {
                        *rem = rem.saturating_sub(data.remaining() as u64);
                    }
                    f.is_trailers() || *this.remaining == Some(0) || this.inner.is_end_stream()
                }
                Some(Err(_)) => {
                    if let Some(r) = this.on_end.take() {
                        r.abort();
                    }
                    false
                }
            };
            if ended {
                if let Some(r) = this.on_end.take() {
                    r.deliver();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

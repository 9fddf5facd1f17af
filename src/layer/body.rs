//! The response body wrapper that reports when a pull was fully sent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::finish::{Delivery, Ready};
use super::request_body::{Tap, MANIFEST_LIMIT};

pin_project! {
    /// The response body of [`Notification`](super::Notification).
    ///
    /// It forwards every frame, `is_end_stream` and `size_hint` unchanged (data frames as
    /// [`Bytes`], which for the usual `Bytes`-based bodies is the same buffer). When
    /// the layer is configured to emit pulls only for fully sent bodies
    /// ([`NotificationLayer::pull_on_body_end`](super::NotificationLayer::pull_on_body_end)),
    /// it holds the pull event until the end of the body is reached — the last
    /// frame, a trailers frame, or `is_end_stream()` turning true, since hyper
    /// stops polling a body of known length before it returns `None` — and
    /// drops it if the body is dropped first (the client went away). "Sent"
    /// means handed in full to the server, which is all a body can observe.
    ///
    /// The one response the layer writes itself is the `503 Service Unavailable` of a
    /// request whose events could not be made durable (an endpoint with `fsync: always`):
    /// its body is an OCI error document.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Option<B>,
        // The body of a response the layer wrote itself (the fail-closed 503).
        own: Option<Bytes>,
        on_end: Option<Ready>,
        // A copy of the body as it passes (a manifest whose references the events need).
        tap: Option<Arc<Tap>>,
        // Whether events held for the end are still delivered if the body is dropped first
        // (they wait only to read the body, not to learn that it was sent).
        deliver_on_drop: bool,
        // Bytes still to send when the length is known (Content-Length).
        remaining: Option<u64>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ready) = this.on_end.take() {
                if *this.deliver_on_drop {
                    ready.deliver_with_body(None);
                } else {
                    ready.abort();
                }
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("pending_events", &self.on_end.is_some())
            .field("own", &self.inner.is_none())
            .finish()
    }
}

impl<B> ResponseBody<B> {
    /// A body the layer wrote itself, in place of the wrapped service's.
    pub(crate) fn own(bytes: Bytes) -> Self {
        Self {
            inner: None,
            own: Some(bytes),
            on_end: None,
            tap: None,
            deliver_on_drop: false,
            remaining: None,
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner: Some(inner),
            own: None,
            on_end: None,
            tap: None,
            deliver_on_drop: false,
            remaining: None,
        }
    }

    /// The body of a response whose events go as `delivery` says.
    pub(crate) fn delivering(inner: B, delivery: Delivery) -> Self {
        match delivery {
            Delivery::Done => Self::new(inner),
            Delivery::AtEnd { ready, length } => Self::on_end(inner, ready, length),
            Delivery::Reading {
                ready,
                length,
                sent_only,
            } => Self::on_end_reading(inner, ready, length, sent_only),
        }
    }

    /// Delivers `ready` once the body has been sent to its end.
    ///
    /// `length` is the response's `Content-Length`: hyper stops polling once
    /// that many bytes were written, so reaching it is the end too.
    fn on_end(inner: B, ready: Ready, length: Option<u64>) -> Self {
        let remaining = length.or_else(|| inner.size_hint().exact());
        if inner.is_end_stream() || remaining == Some(0) {
            ready.deliver();
            return Self::new(inner);
        }
        Self {
            inner: Some(inner),
            own: None,
            on_end: Some(ready),
            tap: None,
            deliver_on_drop: false,
            remaining,
        }
    }

    /// Delivers `ready` once the body has been sent to its end, with the fields a
    /// manifest body gives (references) read from a copy kept as it passes. Dropped
    /// early, the events still go (without those fields; a lookup may find them), unless
    /// `sent_only` asks for pulls of fully sent bodies only.
    fn on_end_reading(inner: B, ready: Ready, length: Option<u64>, sent_only: bool) -> Self {
        let remaining = length.or_else(|| inner.size_hint().exact());
        if inner.is_end_stream() || remaining == Some(0) {
            ready.deliver_with_body(Some(Bytes::new()));
            return Self::new(inner);
        }
        Self {
            inner: Some(inner),
            own: None,
            on_end: Some(ready),
            tap: Some(Tap::new(MANIFEST_LIMIT)),
            deliver_on_drop: !sent_only,
            remaining,
        }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(mut inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(this.own.take().map(|b| Ok(Frame::data(b))));
        };
        let frame = ready!(inner.as_mut().poll_frame(cx));
        if this.on_end.is_some() {
            let ended = match &frame {
                None => true,
                Some(Ok(f)) => {
                    if let (Some(rem), Some(data)) = (this.remaining.as_mut(), f.data_ref()) {
                        *rem = rem.saturating_sub(data.remaining() as u64);
                    }
                    f.is_trailers() || *this.remaining == Some(0) || inner.is_end_stream()
                }
                Some(Err(_)) => {
                    if let Some(tap) = this.tap.as_ref() {
                        tap.fail();
                    }
                    if let Some(r) = this.on_end.take() {
                        if *this.deliver_on_drop {
                            r.deliver_with_body(None);
                        } else {
                            r.abort();
                        }
                    }
                    false
                }
            };
            if let (Some(tap), Some(Ok(f))) = (this.tap.as_ref(), &frame) {
                if let Some(data) = f.data_ref() {
                    tap.data(data.chunk(), data.remaining());
                }
            }
            if ended {
                if let Some(r) = this.on_end.take() {
                    match this.tap.take() {
                        Some(tap) => {
                            tap.end();
                            r.deliver_with_body(tap.complete());
                        }
                        None => r.deliver(),
                    }
                }
            }
        }
        Poll::Ready(frame.map(|f| f.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.own.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.own.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

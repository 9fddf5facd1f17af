//! The request body wrapper: the client's body, unchanged, observed on its way to the
//! wrapped service.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The most bytes of a body the layer keeps to read a manifest from: Distribution's limit
/// on the size of a manifest (4 MiB). A larger body is not kept (and yields no references).
pub(crate) const MANIFEST_LIMIT: usize = 4 << 20;

pin_project! {
    /// The request body the wrapped service sees: the client's body with every frame,
    /// `is_end_stream` and `size_hint` unchanged.
    ///
    /// For the few requests whose body an event needs — a manifest `PUT` when
    /// `includereferences` is on — the layer keeps a copy of up to 4 MiB (Distribution's
    /// manifest limit) as it passes, so that it never has to ask the registry for what the
    /// client already sent. Every other body passes untouched.
    pub struct RequestBody<B> {
        // `None`: an empty body (a request of the layer's own, see `lookup`).
        #[pin]
        inner: Option<B>,
        tap: Option<Arc<Tap>>,
    }
}

impl<B> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("observed", &self.tap.is_some())
            .finish()
    }
}

impl<B> RequestBody<B> {
    /// `inner`, passed through untouched.
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner: Some(inner),
            tap: None,
        }
    }

    /// An empty body: the body of a request the layer sends to the wrapped service itself
    /// (a lookup of a field the exchange did not show).
    pub(crate) fn empty() -> Self {
        Self {
            inner: None,
            tap: None,
        }
    }

    /// `inner`, with a copy of its bytes (up to `tap`'s limit) kept in `tap`.
    pub(crate) fn tapped(inner: B, tap: Arc<Tap>) -> Self {
        Self {
            inner: Some(inner),
            tap: Some(tap),
        }
    }

    /// The client's body; `None` for a request the layer sent itself (a lookup), whose
    /// body is empty.
    pub fn into_inner(self) -> Option<B> {
        self.inner
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let Some(mut inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(inner.as_mut().poll_frame(cx));
        if let Some(tap) = this.tap {
            match &frame {
                Some(Ok(f)) => {
                    if let Some(data) = f.data_ref() {
                        tap.data(data.chunk(), data.remaining());
                    }
                    if inner.is_end_stream() {
                        tap.end();
                    }
                }
                Some(Err(_)) => tap.fail(),
                None => tap.end(),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// A copy of a body, kept as it passes (bounded); readable once the body has ended.
#[derive(Debug)]
pub(crate) struct Tap {
    limit: usize,
    state: Mutex<TapState>,
}

#[derive(Debug, Default)]
struct TapState {
    /// Bytes that passed, kept or not.
    seen: u64,
    bytes: BytesMut,
    /// More than `limit` bytes passed, or a frame's bytes were not all visible in one chunk.
    over: bool,
    ended: bool,
    failed: bool,
}

impl Tap {
    /// A tap keeping at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            state: Mutex::new(TapState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A data frame whose first chunk is `chunk` and which holds `len` bytes in all.
    pub(crate) fn data(&self, chunk: &[u8], len: usize) {
        let mut st = self.lock();
        st.seen = st.seen.saturating_add(len as u64);
        if st.over || st.ended {
            return;
        }
        // A frame of several chunks (rare: a Buf chain) is not copied piecemeal.
        let fits = st
            .bytes
            .len()
            .checked_add(len)
            .is_some_and(|total| total <= self.limit);
        if chunk.len() != len || !fits {
            st.over = true;
            st.bytes = BytesMut::new();
            return;
        }
        st.bytes.extend_from_slice(chunk);
    }

    /// The body ended (its last frame passed).
    pub(crate) fn end(&self) {
        self.lock().ended = true;
    }

    /// The body failed: what was kept is not the whole body.
    pub(crate) fn fail(&self) {
        let mut st = self.lock();
        st.failed = true;
        st.seen = 0;
        st.bytes = BytesMut::new();
    }

    /// How many bytes the body had, if it ended and did not fail (a tap of limit 0 only
    /// counts).
    pub(crate) fn counted(&self) -> Option<u64> {
        let st = self.lock();
        (st.ended && !st.failed).then_some(st.seen)
    }

    /// The whole body, if it ended, did not fail and fit the limit.
    pub(crate) fn complete(&self) -> Option<Bytes> {
        let st = self.lock();
        (st.ended && !st.over && !st.failed).then(|| st.bytes.clone().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn keeps_a_whole_body_and_passes_it_unchanged() {
        let tap = Tap::new(16);
        let body = RequestBody::tapped(Full::new(Bytes::from_static(b"{\"a\":1}")), tap.clone());
        assert_eq!(body.size_hint().exact(), Some(7));
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"{\"a\":1}");
        assert_eq!(tap.complete().as_deref(), Some(&b"{\"a\":1}"[..]));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_or_unfinished_is_not_kept() {
        let frames = |parts: Vec<&'static [u8]>| {
            StreamBody::new(futures_util::stream::iter(parts.into_iter().map(|p| {
                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(p)))
            })))
        };
        let tap = Tap::new(8);
        let body = RequestBody::tapped(frames(vec![b"12345", b"6789"]), tap.clone());
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"123456789", "passes unchanged");
        assert_eq!(tap.complete(), None, "9 bytes > 8");
        assert_eq!(tap.counted(), Some(9), "counted all the same");

        let tap = Tap::new(8);
        let body = RequestBody::tapped(frames(vec![b"1234", b"5678"]), tap.clone());
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"12345678");
        assert_eq!(
            tap.complete().as_deref(),
            Some(&b"12345678"[..]),
            "exactly the limit"
        );

        let tap = Tap::new(8);
        let mut body = RequestBody::tapped(frames(vec![b"1234", b"5678"]), tap.clone());
        let _ = body.frame().await;
        assert_eq!(tap.complete(), None, "not ended");
        assert_eq!(tap.counted(), None, "not ended");
    }
}

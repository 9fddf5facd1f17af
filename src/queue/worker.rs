//! The worker: delivers a queue's events to the inner sink, one envelope at a time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tower_service::Service;

use super::handle::Shared;
use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::sink::BoxError;

/// The worker of a [`Queue`](super::Queue): a future that takes envelopes from the head of the
/// queue, hands them to the inner sink, and acknowledges them once the sink's call resolved
/// (delivered, or given up on by the retry stage). It ends once the queue is closed and
/// empty, or when [`QueueHandle::shutdown`](super::QueueHandle::shutdown) stops it. Spawn it
/// (`tokio::spawn(worker)`).
#[must_use = "the worker delivers nothing unless it is spawned or awaited"]
pub struct QueueWorker<S> {
    run: Pin<Box<dyn Future<Output = ()> + Send>>,
    _inner: std::marker::PhantomData<fn(S)>,
}

impl<S> QueueWorker<S> {
    pub(super) fn new(shared: Arc<Shared>, inner: S, done: watch::Sender<bool>) -> Self
    where
        S: Service<Batch> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let run = async move {
            tokio::select! {
                biased;
                () = shared.stop.notified() => {}
                () = run(&shared, inner) => {}
            }
            let _ = done.send(true);
        };
        Self {
            run: Box::pin(run),
            _inner: std::marker::PhantomData,
        }
    }
}

impl<S> fmt::Debug for QueueWorker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWorker").finish_non_exhaustive()
    }
}

impl<S> Future for QueueWorker<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.run.as_mut().poll(cx)
    }
}

async fn run<S>(shared: &Shared, mut inner: S)
where
    S: Service<Batch>,
    S::Error: Into<BoxError>,
{
    let queue = &*shared.queue;
    let batching = &shared.batching;
    let metrics = shared.metrics.as_deref();
    let errors_log = LogLimiter::new(std::time::Duration::from_secs(10));
    let max_events = batching.max_events;
    let mut last = 0;
    loop {
        if batching.lingers_after(last, queue.len()) && !queue.is_closed() {
            batching.linger(queue).await;
        }
        let Some(batch) = queue.next(max_events).await else {
            break;
        };
        let n = batch.len();
        last = n;
        let ready: Result<(), BoxError> =
            std::future::poll_fn(|cx| inner.poll_ready(cx).map_err(Into::into)).await;
        let result = match ready {
            Ok(()) => inner.call(batch).await.map(drop).map_err(Into::into),
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            if let Some(suppressed) = errors_log.check() {
                tracing::warn!(
                    endpoint = %shared.endpoint(), events = n, %error, suppressed,
                    "eventqueue: error writing events, these events will be lost"
                );
            }
            if let Some(m) = metrics {
                m.record_dropped(n);
            }
        }
        queue.ack(n);
        if let Some(m) = metrics {
            m.record_egress(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tower::{service_fn, Service, ServiceExt};

    use super::super::{Queue, QueueConfig};
    use crate::event::Batch;
    use crate::event::{Action, Event, Target};
    use crate::sink::BoxError;
    use std::sync::Arc;

    /// A worker whose sink reports `(events, when)` per envelope and takes `rtt` to answer.
    fn worker(
        max_events: usize,
        linger: Duration,
        rtt: Duration,
    ) -> (Queue, mpsc::UnboundedReceiver<(usize, Duration)>) {
        let start = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let tx = Arc::new(Mutex::new(tx));
        let sink = service_fn(move |batch: Batch| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(rtt).await;
                let _ = tx.lock().unwrap().send((batch.len(), start.elapsed()));
                Ok::<_, BoxError>(())
            }
        });
        let (queue, worker) = Queue::builder(QueueConfig::default())
            .max_events(max_events)
            .linger(linger)
            .pair(sink);
        tokio::spawn(worker);
        (queue, rx)
    }

    async fn push(queue: &mut Queue, n: usize) {
        let batch: Batch = (0..n)
            .map(|_| Event::new(Action::Pull, Target::default()))
            .collect();
        queue.ready().await.unwrap().call(batch).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_endpoint_never_lingers() {
        let (mut queue, mut rx) = worker(100, Duration::from_millis(5), Duration::ZERO);
        for i in 0..3u64 {
            push(&mut queue, 1).await;
            let (n, at) = rx.recv().await.unwrap();
            assert_eq!((n, at), (1, Duration::from_millis(10 * i)), "event {i}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_partly_filled_envelope_makes_the_next_one_wait() {
        let linger = Duration::from_millis(5);
        let (mut queue, mut rx) = worker(100, linger, Duration::ZERO);
        push(&mut queue, 3).await;
        assert_eq!(rx.recv().await.unwrap(), (3, Duration::ZERO));
        // Events arriving during the linger go out together when it ends.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            push(&mut queue, 1).await;
        }
        assert_eq!(rx.recv().await.unwrap(), (4, linger));
        // The last envelope had more than one event: the next waits as well.
        push(&mut queue, 1).await;
        assert_eq!(rx.recv().await.unwrap(), (1, linger * 2));
        // After a single event the worker is idle again and answers at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
        push(&mut queue, 1).await;
        assert_eq!(rx.recv().await.unwrap(), (1, Duration::from_millis(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn full_envelopes_and_a_zero_linger_never_wait() {
        let rtt = Duration::from_millis(2);
        let (mut queue, mut rx) = worker(10, Duration::from_millis(5), rtt);
        push(&mut queue, 25).await;
        // 10 and 10 are full; the third takes the rest without waiting.
        let got: Vec<_> = [rx.recv().await, rx.recv().await, rx.recv().await]
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(got, [(10, rtt), (10, rtt * 2), (5, rtt * 3)]);

        let (mut queue, mut rx) = worker(10, Duration::ZERO, rtt);
        push(&mut queue, 3).await;
        assert_eq!(rx.recv().await.unwrap(), (3, rtt));
        push(&mut queue, 2).await;
        assert_eq!(rx.recv().await.unwrap(), (2, rtt * 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closing_queue_is_drained_without_lingering_on() {
        let (mut queue, mut rx) = worker(100, Duration::from_secs(60), Duration::ZERO);
        push(&mut queue, 2).await;
        assert_eq!(rx.recv().await.unwrap(), (2, Duration::ZERO));
        push(&mut queue, 2).await;
        let handle = queue.handle();
        let left = handle.shutdown(Instant::now() + Duration::from_secs(120)).await;
        assert_eq!(left, 0);
        assert_eq!(rx.recv().await.unwrap(), (2, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_envelope_ends_the_linger() {
        let (mut queue, mut rx) = worker(10, Duration::from_secs(60), Duration::ZERO);
        push(&mut queue, 2).await;
        assert_eq!(rx.recv().await.unwrap(), (2, Duration::ZERO));
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            push(&mut queue, 3).await;
        }
        assert_eq!(rx.recv().await.unwrap(), (10, Duration::from_millis(4)));
    }
}

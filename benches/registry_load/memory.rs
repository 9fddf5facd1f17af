//! Phase 1 (first, while the heap is fresh): memory per queued event, with the endpoint down.

use std::time::Duration;

use example_registry::oci;
use http_body_util::BodyExt;
use registry_notify::endpoint::Endpoint;
use registry_notify::notifications::Notifications;
use registry_notify::queue::{Overflow, QueueConfig};
use registry_notify::retry::Exponential;
use registry_notify::Event;

use crate::content::{call, derived_events, event_heap, request, seed, source};
use crate::opts::Opts;
use crate::stats::vm_rss_kib;

/// What the memory phase measured.
#[derive(Default)]
pub struct MemoryReport {
    /// Requests made (each derives one event).
    pub events: usize,
    /// Events queued at the end.
    pub queued: usize,
    /// Events the queue dropped.
    pub dropped: u64,
    /// VmRSS before the requests.
    pub rss_before_kib: u64,
    /// VmRSS after them.
    pub rss_after_kib: u64,
    /// `size_of::<Event>()`.
    pub event_size: usize,
    /// The text of one event's strings (see `content::event_heap`).
    pub event_heap: usize,
}

impl MemoryReport {
    /// Resident bytes per queued event.
    pub fn bytes_per_event(&self) -> f64 {
        (self.rss_after_kib.saturating_sub(self.rss_before_kib) * 1024) as f64 / self.events as f64
    }
}

/// Phase 1: the registry with one endpoint that is down (`maxevents: max_events`) takes
/// `opts.mem_events` requests in-process; VmRSS before and after.
pub fn memory_phase(opts: &Opts, max_events: usize) -> MemoryReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let endpoint = Endpoint::builder("down", format!("http://{closed}/events"))
            .retry(Exponential::default().max_age(None))
            .max_events(max_events)
            .queue(QueueConfig {
                capacity: opts.mem_events + 10_000,
                overflow: Overflow::DropNewest,
            })
            .build()
            .expect("endpoint");
        let (layer, handle) = Notifications::builder()
            .source(source())
            .endpoint(endpoint)
            .build()
            .expect("layer");
        let registry = oci::Registry::in_memory(oci::RegistryOptions::default());
        let content = seed(&oci::router(registry.clone())).await;
        let app = oci::router(registry).layer(layer);
        // Warm up the allocator and the registry with a few requests (their events stay queued).
        let warm = 2_000;
        for i in 0..warm {
            let (m, p) = &content.mix[i % content.mix.len()];
            let _ = call(&app, request(m, p)).await.into_body().collect().await;
        }
        // An outage, not a hiccup: the queue packs its backlog once its worker has taken
        // nothing for a second (here: the first event, retried). One more request makes it
        // pack what the warm-up left, so that only the measured requests' events count.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let (m, p) = &content.mix[0];
        let _ = call(&app, request(m, p)).await.into_body().collect().await;
        let rss_before_kib = vm_rss_kib();
        for i in 0..opts.mem_events {
            let (m, p) = &content.mix[i % content.mix.len()];
            let _ = call(&app, request(m, p)).await.into_body().collect().await;
        }
        let rss_after_kib = vm_rss_kib();
        let queued = handle.endpoints()[0].queued();
        let dropped = handle.metrics()[0].dropped;

        // One representative event, for the arithmetic.
        let registry2 = oci::Registry::in_memory(oci::RegistryOptions::default());
        let content2 = seed(&oci::router(registry2.clone())).await;
        let events = derived_events(&registry2, &content2.mix, content2.mix.len()).await;
        let event_heap_avg = events.iter().map(event_heap).sum::<usize>() / events.len().max(1);
        let _ = handle.shutdown(Duration::ZERO).await;
        MemoryReport {
            events: opts.mem_events,
            queued,
            dropped,
            rss_before_kib,
            rss_after_kib,
            event_size: std::mem::size_of::<Event>(),
            event_heap: event_heap_avg,
        }
    })
}

//! Load benchmark of the notification layer: one command, one process, one report.
//!
//! ```text
//! cargo bench --bench registry_load              # full run, about 75 s
//! cargo bench --bench registry_load -- --quick   # short run, about 15 s
//! ```
//!
//! Everything runs in this process on 127.0.0.1, on three kinds of threads:
//!
//! * the **server** runtime (multi-thread, 2 workers, like `#[tokio::main]` on the
//!   2-core benchmark machine) serves the example registry (`example_registry::oci`)
//!   on one port per variant — without the layer, with the
//!   layer and an in-process counting sink, with the layer and one live HTTP endpoint
//!   (unbatched, Distribution's default), with the layer and `maxevents: 100` (default
//!   `linger` of 1 ms) — all
//!   sharing one in-memory storage. The endpoint workers and the raw POST loop run there
//!   too, as they would in a registry process;
//! * the **receiver** runtime (one thread) is a hyper HTTP/1.1 webhook receiver
//!   answering 200, which timestamps arrivals during the latency phase;
//! * the **client** runtime (one thread, the main one) generates load with hyper
//!   HTTP/1.1 client connections kept alive.
//!
//! Phases, each one interleaving its variants in short rounds (A, B, C, A, B, C, …) so
//! that machine noise falls on all of them alike:
//!
//! 1. **memory** (first, while the heap is fresh): an endpoint pointing at a closed
//!    port, retrying forever, queue capacity above 100k; 100k requests go through the
//!    layer in-process and VmRSS is read before and after;
//! 2. **registry**: a pull mix (HEAD/GET manifest by tag and by digest, GET blob) at
//!    concurrency 32, closed loop; throughput and p50/p99 latency per variant. Between
//!    rounds the endpoint queues are drained, so no round pays for another's backlog;
//! 3. **delivery**: the same one-event envelopes POSTed by the endpoint (queue → retry →
//!    HTTP sink) and by a raw hyper loop over one kept-alive connection; and with
//!    `maxevents: 100`;
//! 4. **lanes**: an endpoint with one lane and one with `concurrency: 4`, unbatched, to a
//!    receiver that answers after 1 ms, the same events of 16 repositories, alternating;
//! 5. **latency**: HEAD manifest requests paced at 1000/s against the registry with one
//!    endpoint, unbatched and then with `maxevents: 100` (whose worker lingers only when
//!    envelopes hold several events); receiver arrival time minus the event's `timestamp`
//!    (same clock).
//!
//! Options: `--quick`, `--lanes` (phase 4 only), `--stages` (two more registry variants: the
//! batched endpoint's queue to a counting sink, and to an encoding sink), `--concurrency N` (default 32), `--rounds N` (registry rounds per
//! variant, default 10; the variants' order rotates from round to round), `--round-ms N`
//! (length of a registry round).

mod content;
mod delivery;
mod lanes;
mod latency;
mod memory;
mod opts;
mod receiver;
mod registry;
mod report;
mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use example_registry::oci;
use http::Method;

use crate::registry::Variant;

fn main() {
    let opts = opts::opts();
    let started = Instant::now();
    receiver::base();
    println!(
        "registry_load: {} run, {} CPUs, concurrency {}",
        if opts.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        opts.concurrency
    );

    // 1. memory, first, while no other phase has grown the heap (skipped by --lanes).
    let mem = if opts.lanes_only {
        memory::MemoryReport::default()
    } else {
        memory::memory_phase(&opts, opts.memory_only.unwrap_or(1))
    };
    if let Some(max_events) = opts.memory_only {
        println!(
            "memory, endpoint down, maxevents {max_events}: {} events queued ({} dropped), VmRSS +{} KiB = {:.0} bytes per queued event",
            mem.queued,
            mem.dropped,
            mem.rss_after_kib.saturating_sub(mem.rss_before_kib),
            mem.bytes_per_event()
        );
        return;
    }
    if !opts.lanes_only {
        println!(
            "memory: {} events queued (endpoint down), VmRSS {} → {} KiB",
            mem.queued, mem.rss_before_kib, mem.rss_after_kib
        );
    }

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    if opts.lanes_only {
        lanes::print(&lanes::lanes_phase(&server_rt, &opts));
        server_rt.shutdown_background();
        return;
    }
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let receiver = receiver::start();

    let registry = oci::Registry::in_memory(oci::RegistryOptions::default());
    let content = client_rt.block_on(content::seed(&oci::router(registry.clone())));
    let mix = Arc::new(content.mix.clone());

    // 2. registry with and without the layer.
    let sink_count = Arc::new(AtomicU64::new(0));
    let mut servers = registry::start_servers(&server_rt, &registry, &receiver, &sink_count, opts.stages);
    registry::registry_phase(&client_rt, &mut servers, &mix, &opts);

    // 3. delivery rate.
    let delivery = delivery::delivery_phase(&server_rt, &client_rt, &registry, &mix, &receiver, &opts);

    // 4. ordered lanes: one lane against four, to a receiver that takes 1 ms.
    let lanes = lanes::lanes_phase(&server_rt, &opts);

    // 5. event latency at a steady 1000 events/s, unbatched and batched (lingering).
    let digest_path = mix
        .iter()
        .find(|(m, p)| m == Method::HEAD && p.contains("/manifests/sha256:"))
        .map(|(_, p)| p.clone())
        .expect("a HEAD by digest");
    let measure = |variant| latency::measure(&client_rt, &servers, &receiver, &digest_path, &opts, variant);
    let (unbatched, events) = measure(Variant::Endpoint);
    let (batched, _) = measure(Variant::Batched);
    let latency = report::Latency {
        unbatched,
        batched,
        events,
    };

    report::print(
        &opts,
        started,
        &mem,
        &servers,
        &delivery,
        &latency,
        &receiver,
        sink_count.load(Ordering::Relaxed),
    );
    lanes::print(&lanes);
    drop(delivery);
    server_rt.shutdown_background();
}

//! The report: Markdown tables of every phase, and the targets.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::delivery::DeliveryReport;
use crate::memory::MemoryReport;
use crate::opts::Opts;
use crate::receiver::Receiver;
use crate::registry::{Server, Variant};
use crate::stats::{ms, percentile};

/// What the latency phase measured: sorted latencies, unbatched and batched, and the requests
/// recorded for each.
pub struct Latency {
    /// With the unbatched endpoint.
    pub unbatched: Vec<u64>,
    /// With `maxevents: 100`.
    pub batched: Vec<u64>,
    /// Requests recorded per measurement.
    pub events: u64,
}

/// Prints every table and the targets.
#[allow(clippy::too_many_arguments)]
pub fn print(
    opts: &Opts,
    started: Instant,
    mem: &MemoryReport,
    servers: &[Server],
    delivery: &DeliveryReport,
    latency: &Latency,
    receiver: &Receiver,
    sink_events: u64,
) {
    let (lat, lat_batched, latency_events) = (&latency.unbatched, &latency.batched, latency.events);
    let DeliveryReport {
        raw_rate,
        ep_rate,
        b_rate,
        ub_median,
        bb_median,
        ..
    } = *delivery;
    let bare = &servers[0];
    let bare_rps = bare.requests as f64 / bare.elapsed.as_secs_f64();
    let bare_p50 = percentile(&bare.latencies, 0.50);
    let bare_p99 = percentile(&bare.latencies, 0.99);
    println!();
    println!("## Registry, pull mix, concurrency {}", opts.concurrency);
    println!();
    println!(
        "| variant | req/s | p50 ms | p99 ms | throughput ratio | p50 ratio | p99 ratio | \
         max backlog | drain/round | ratio incl. drain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in servers {
        let rps = s.requests as f64 / s.elapsed.as_secs_f64();
        let p50 = percentile(&s.latencies, 0.50);
        let p99 = percentile(&s.latencies, 0.99);
        // Requests per second of round time plus the time the endpoint then needed to
        // deliver the round's backlog: the sustainable rate.
        let sustained = s.requests as f64 / (s.elapsed + s.drain).as_secs_f64();
        let bare_sustained = bare.requests as f64 / (bare.elapsed + bare.drain).as_secs_f64();
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.0} ms | {:.3} |",
            s.variant.label(),
            rps,
            ms(p50),
            ms(p99),
            rps / bare_rps,
            p50 as f64 / bare_p50 as f64,
            p99 as f64 / bare_p99 as f64,
            s.backlog_max,
            s.drain.as_secs_f64() * 1000.0 / opts.rounds as f64,
            sustained / bare_sustained,
        );
    }
    println!();
    println!("## Delivery to one endpoint");
    println!();
    println!(
        "| sender | events/s (pooled) | ratio (pooled) | ratio (median of {} rounds) |",
        opts.delivery_rounds
    );
    println!("|---|---|---|---|");
    println!("| raw hyper POST loop, one event per POST | {raw_rate:.0} | 1.000 | 1.000 |");
    println!(
        "| endpoint, unbatched | {ep_rate:.0} | {:.3} × raw | {ub_median:.3} × raw |",
        ep_rate / raw_rate
    );
    println!(
        "| endpoint, maxevents 100 | {b_rate:.0} | {:.1} × unbatched | {bb_median:.1} × unbatched |",
        b_rate / ep_rate
    );
    println!();
    println!("## Event latency at 1000 events/s (registry response → receiver arrival)");
    println!();
    for (label, lat) in [
        ("unbatched endpoint", lat),
        ("endpoint with maxevents 100", lat_batched),
    ] {
        println!(
            "{label}: {} of {} events: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            lat.len(),
            latency_events,
            ms(percentile(lat, 0.50)),
            ms(percentile(lat, 0.99)),
            ms(lat.last().copied().unwrap_or(0))
        );
    }
    println!();
    println!("## Memory, endpoint down");
    println!();
    println!(
        "{} events queued ({} dropped): VmRSS +{} KiB = {:.0} bytes per queued event \
         (size_of::<Event>() = {}, string text ≈ {} bytes per event)",
        mem.queued,
        mem.dropped,
        mem.rss_after_kib.saturating_sub(mem.rss_before_kib),
        mem.bytes_per_event(),
        mem.event_size,
        mem.event_heap
    );

    // The registry targets are checked with the endpoint that keeps up with the load: one
    // event per POST cannot (serial delivery tops out below the registry's request rate
    // here, so its queue only grows), and its in-round figure defers the POSTs to the drain.
    let sustained = |v: Variant| {
        let s = servers.iter().find(|s| s.variant == v).unwrap();
        let rps = s.requests as f64 / (s.elapsed + s.drain).as_secs_f64();
        let bare = servers.iter().find(|s| s.variant == Variant::Bare).unwrap();
        rps / (bare.requests as f64 / (bare.elapsed + bare.drain).as_secs_f64())
    };
    let layer = servers.iter().find(|s| s.variant == Variant::Batched).unwrap();
    let unbatched = servers.iter().find(|s| s.variant == Variant::Endpoint).unwrap();
    let layer_rps = layer.requests as f64 / layer.elapsed.as_secs_f64();
    let ok = |b: bool| if b { "met" } else { "MISSED" };
    let thr = layer_rps / bare_rps;
    let p99r = percentile(&layer.latencies, 0.99) as f64 / bare_p99 as f64;
    let u_thr = unbatched.requests as f64 / unbatched.elapsed.as_secs_f64() / bare_rps;
    let u_p99r = percentile(&unbatched.latencies, 0.99) as f64 / bare_p99 as f64;
    let ub = ub_median;
    let bb = bb_median;
    let lp50 = ms(percentile(lat, 0.50));
    let lp99 = ms(percentile(lat, 0.99));
    let bp50 = ms(percentile(lat_batched, 0.50));
    let bp99 = ms(percentile(lat_batched, 0.99));
    println!();
    println!("## Targets (layer with one live endpoint, `maxevents: 100`, vs without)");
    println!();
    println!("| target | figure | |");
    println!("|---|---|---|");
    println!(
        "| throughput ≥ 0.98 × without | {thr:.3} (incl. drain {:.3}) | {} |",
        sustained(Variant::Batched),
        ok(thr >= 0.98)
    );
    println!("| p99 ≤ 1.05 × without | {p99r:.3} | {} |", ok(p99r <= 1.05));
    println!(
        "| the same with an unbatched endpoint | throughput {u_thr:.3} (incl. drain {:.3}), p99 {u_p99r:.3} | cannot keep up |",
        sustained(Variant::Endpoint)
    );
    println!(
        "| unbatched delivery ≥ 0.90 × raw loop | {ub:.3} | {} |",
        ok(ub >= 0.90)
    );
    println!(
        "| batched (100) ≥ 20 × unbatched | {bb:.1} | {} |",
        ok(bb >= 20.0)
    );
    println!(
        "| event latency p50 ≤ 0.5 ms | {lp50:.3} ms unbatched, {bp50:.3} ms maxevents 100 | {} |",
        ok(lp50.max(bp50) <= 0.5)
    );
    println!(
        "| event latency p99 ≤ 2 ms | {lp99:.3} ms unbatched, {bp99:.3} ms maxevents 100 | {} |",
        ok(lp99.max(bp99) <= 2.0)
    );
    println!(
        "| memory per queued event | {:.0} bytes | bounded by the queue capacity |",
        mem.bytes_per_event()
    );
    println!();
    println!(
        "total {:.0} s; receiver saw {} POSTs; in-process sink counted {} events",
        started.elapsed().as_secs_f64(),
        receiver.posts.load(Ordering::Relaxed),
        sink_events
    );
}

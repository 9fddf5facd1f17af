//! Phase 4: event latency at a steady 1000 events/s (registry response → receiver arrival),
//! unbatched and with `maxevents: 100` (whose worker lingers only when envelopes hold several
//! events).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::opts::Opts;
use crate::receiver::Receiver;
use crate::registry::{Server, Variant};

/// HEADs of `digest_path` paced at 1000/s against the server of `variant` for
/// `opts.latency_secs` (after 300 not recorded); returns the sorted latencies of the events
/// the receiver got, and how many requests were recorded.
pub fn measure(
    client_rt: &tokio::runtime::Runtime,
    servers: &[Server],
    receiver: &Receiver,
    digest_path: &str,
    opts: &Opts,
    variant: Variant,
) -> (Vec<u64>, u64) {
    let server = servers.iter().find(|s| s.variant == variant).expect("variant");
    receiver.samples.lock().unwrap().clear();
    let sent = client_rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let total = opts.latency_secs * 1000;
        let warm = 300;
        for i in 0..total + warm {
            if i == warm {
                receiver.record.store(true, Ordering::SeqCst);
            }
            tick.tick().await;
            let req = Request::head(digest_path)
                .header(header::HOST, "127.0.0.1:5000")
                .header(header::USER_AGENT, "loadgen/1.0")
                .body(Empty::new())
                .unwrap();
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.into_body().collect().await.unwrap();
        }
        let h = server.handle.as_ref().unwrap();
        let t = Instant::now();
        while h.endpoints()[0].queued() > 0 && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        receiver.record.store(false, Ordering::SeqCst);
        total
    });
    let mut lat: Vec<u64> = receiver
        .samples
        .lock()
        .unwrap()
        .iter()
        .map(|&n| n.max(0) as u64)
        .collect();
    lat.sort_unstable();
    (lat, sent)
}

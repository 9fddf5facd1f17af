//! The webhook receiver: on its own thread and runtime, answering 200 to every POST, counting
//! them, and timestamping arrivals while recording (the latency phase).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use registry_notify::Timestamp;

/// A running receiver.
pub struct Receiver {
    /// Where it listens.
    addr: std::sync::OnceLock<SocketAddr>,
    /// POSTs received.
    pub posts: AtomicU64,
    /// Whether arrivals are timestamped into `samples`.
    pub record: AtomicBool,
    /// Arrival minus event timestamp, nanoseconds, while `record` is set.
    pub samples: Mutex<Vec<i64>>,
    /// When the last POST arrived, in nanoseconds since [`base`].
    pub last_arrival: AtomicU64,
}

/// A fixed instant that arrival times are counted from.
pub fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The `timestamp` of the first event of an envelope.
fn first_timestamp(body: &[u8]) -> Option<Timestamp> {
    const KEY: &[u8] = b"\"timestamp\": \"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = body[at..].iter().position(|&c| c == b'"')? + at;
    std::str::from_utf8(&body[at..end]).ok()?.parse().ok()
}

/// Starts the receiver on a thread of its own, with a one-thread runtime (the example
/// registry's webhook serving loop).
pub fn start() -> Arc<Receiver> {
    let receiver = Arc::new(Receiver {
        addr: std::sync::OnceLock::new(),
        posts: AtomicU64::new(0),
        record: AtomicBool::new(false),
        samples: Mutex::new(Vec::new()),
        last_arrival: AtomicU64::new(0),
    });
    let r = receiver.clone();
    let addr = example_registry::receiver::serve_on_thread(move |_, body| {
        let r = r.clone();
        async move {
            let arrived = now_nanos();
            r.posts.fetch_add(1, Ordering::Relaxed);
            r.last_arrival
                .store(base().elapsed().as_nanos() as u64, Ordering::Relaxed);
            if r.record.load(Ordering::Relaxed) {
                if let Some(ts) = first_timestamp(&body) {
                    let lat = (arrived - ts.unix_nanos()) as i64;
                    r.samples.lock().unwrap().push(lat);
                }
            }
            http::Response::new(Full::new(Bytes::new()))
        }
    })
    .expect("receiver");
    let _ = receiver.addr.set(addr);
    receiver
}

impl Receiver {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.get().expect("started")
    }
}

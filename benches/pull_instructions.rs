//! The instructions a pull event costs, stage by stage: exactly `N` pulls (manifest by tag)
//! through the layer, counted by callgrind, which does not depend on machine noise.
//!
//! ```sh
//! cargo bench --bench pull_instructions -- --stages      # the table (needs valgrind on PATH)
//! valgrind --tool=callgrind target/release/deps/pull_instructions-* <case> <N>   # one case
//! ```
//!
//! Each case adds one stage to the one before; a case's figure is
//! `(Ir(N = 4000) − Ir(N = 2000)) / 2000`, so start-up cancels out, and a stage's cost is the
//! difference between its case and the one before:
//!
//! * `none`: the registry's side alone: the request, a service answering it, no layer;
//! * `pass`: + the layer with nowhere to send (`NotificationLayer::default()`): the wrapping
//!   of request, response and body that every request pays;
//! * `layer`: + the layer's derivation and dispatcher, events handed to a sink of your own that counts
//!   them (`Dispatcher::new`): what the request path pays;
//! * `queue`: + an endpoint's stack as `Notifications` builds it (filter → queue → worker →
//!   retry) batching 100 events per delivery, its innermost stage a counting sink;
//! * `encode`: + each batch written as Distribution's `{"events":[…]}` envelope;
//! * `http`: + the HTTP sink POSTing each envelope over a kept-alive connection to a
//!   receiver in a child process (which callgrind does not count): the whole delivery.
//!
//! `http − none` is the all-in cost of a pull event.

use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::endpoint::Endpoint;
use registry_notify::notifications::{Notifications, NotificationsHandle};
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Format, NotificationLayer, SourceRecord};
use tower::{Service, ServiceBuilder, ServiceExt};

const DIGEST: &str = "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05";
const CASES: [&str; 6] = ["none", "pass", "layer", "queue", "encode", "http"];
/// Events per delivery (`maxevents`) on the endpoint cases.
const BATCH: usize = 100;

fn counting_sink(count: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |b: Batch| {
        count.fetch_add(b.len(), Ordering::Relaxed);
        std::future::ready(Ok::<(), BoxError>(()))
    }))
}

fn encoding_sink(count: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |b: Batch| {
        std::hint::black_box(Format::EventsV2.encode(&b));
        count.fetch_add(b.len(), Ordering::Relaxed);
        std::future::ready(Ok::<(), BoxError>(()))
    }))
}

/// The registry's side: a service answering every request as a manifest GET.
fn registry<B>(
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    tower::service_fn(|_req: Request<B>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(200)
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .header("content-length", "555")
                .header("docker-content-digest", DIGEST)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    })
}

fn request() -> Request<Full<Bytes>> {
    Request::builder()
        .method("GET")
        .uri("/v2/library/test/manifests/latest")
        .header("host", "127.0.0.1:5000")
        .header("user-agent", "skopeo/1.9.3")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--stages") {
        return stages();
    }
    let mut plain = args.iter().filter(|a| !a.starts_with("--"));
    let case = plain.next().cloned().unwrap_or_else(|| "queue".into());
    if case == "receiver" {
        return receiver();
    }
    let n: usize = plain.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    if !CASES.contains(&case.as_str()) {
        eprintln!("unknown case {case:?}: one of {CASES:?}, or --stages");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&case, n));
}

async fn run(case: &str, n: usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let mut child = None;
    let (layer, handle): (Option<NotificationLayer>, Option<NotificationsHandle>) = match case {
        "none" => (None, None),
        "pass" => (Some(NotificationLayer::default()), None),
        "layer" => (
            Some(NotificationLayer::new(Dispatcher::new(counting_sink(
                count.clone(),
            )))),
            None,
        ),
        _ => {
            let builder = match case {
                "queue" => {
                    Endpoint::builder_for_sink("bench", "bench://counter", counting_sink(count.clone()))
                }
                "encode" => {
                    Endpoint::builder_for_sink("bench", "bench://encoder", encoding_sink(count.clone()))
                }
                _ => {
                    let (proc, url) = spawn_receiver();
                    child = Some(proc);
                    Endpoint::builder("bench", url)
                }
            };
            let endpoint = builder.max_events(BATCH).build().unwrap();
            let (layer, handle) = Notifications::builder().endpoint(endpoint).build().unwrap();
            (Some(layer), Some(handle))
        }
    };
    match layer {
        Some(layer) => {
            let layer = layer.source(SourceRecord::local("127.0.0.1:5000"));
            pulls(ServiceBuilder::new().layer(layer).service(registry()), n).await;
            if case == "pass" {
                count.store(n, Ordering::Relaxed);
            }
        }
        None => {
            pulls(registry(), n).await;
            count.store(n, Ordering::Relaxed);
        }
    }
    if let Some(handle) = &handle {
        if case == "http" {
            handle.shutdown(Duration::from_secs(60)).await;
            let delivered: u64 = handle.metrics().iter().map(|m| m.delivered).sum();
            count.store(delivered as usize, Ordering::Relaxed);
        }
    }
    while count.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
    }
    if let Some(handle) = handle {
        handle.shutdown(Duration::from_secs(5)).await;
    }
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    println!("{case}: {n} pulls, {} events", count.load(Ordering::Relaxed));
}

/// `n` pulls, one after the other, yielding now and then so that the delivery side runs.
async fn pulls<S, B>(svc: S, n: usize)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    for i in 0..n {
        let _ = svc.clone().oneshot(request()).await.unwrap();
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
    }
}

/// The receiver in a child process (not counted): this program with the argument `receiver`.
fn spawn_receiver() -> (std::process::Child, String) {
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .arg("receiver")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, format!("http://{}/hook", line.trim()))
}

/// A webhook receiver on 127.0.0.1: answers every POST `200` once its body is read; prints
/// its address, then serves until killed.
fn receiver() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt;
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Runs every case under callgrind at two sizes and prints the instructions per pull, and
/// per stage.
fn stages() {
    let exe = std::env::current_exe().unwrap();
    let (small, large) = (2000u64, 4000u64);
    let count = |case: &str, n: u64| -> u64 {
        let out = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&exe)
            .args([case, &n.to_string()])
            .output()
            .expect("valgrind on PATH (Debian's package valgrind)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case} {n}: {stderr}");
        stderr
            .lines()
            .find_map(|l| l.split_once("Collected :").map(|(_, v)| v.trim().to_owned()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no instruction count from callgrind:\n{stderr}"))
    };
    println!("| case | instructions per pull | the stage it adds |");
    println!("|---|---|---|");
    let mut figures = Vec::new();
    for case in CASES {
        let per_pull = (count(case, large) - count(case, small)) / (large - small);
        let stage = match figures.last() {
            None => "(the registry's side: the baseline)".to_owned(),
            Some(&(_, before)) => format!("{:+}", per_pull as i64 - before as i64),
        };
        println!("| `{case}` | {per_pull} | {stage} |");
        figures.push((case, per_pull));
    }
    if let (Some((_, first)), Some((_, last))) = (figures.first(), figures.last()) {
        println!(
            "\nall-in per pull event (`http` − `none`): {}",
            *last as i64 - *first as i64
        );
    }
}

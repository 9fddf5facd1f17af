//! Proxy overhead: a pull-heavy load against Debian's `docker-registry`, directly and
//! through the proxy example (with the notification layer and one live endpoint),
//! in interleaved rounds of one run.
//!
//! ```text
//! cargo build --release --example proxy && cargo bench --bench proxy_load
//! cargo bench --bench proxy_load -- --rounds 4 --round-ms 2000 --concurrency 16
//! ```
//!
//! Two mixes, 8 rounds each per target by default, alternating direct/proxy:
//! - `pull`: what `docker pull` does for a small image: GET the manifest by tag,
//!   then GET the config (≈0.5 KiB) and two layers (64 KiB and 1 MiB);
//! - `metadata`: HEAD of the manifest by tag and HEAD of a layer (existence checks).
//!
//! Prints requests/s, MiB/s, p50/p99 latency per target and the proxy/direct ratios.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use registry_notify_testkit::process::{cpu_time, example_binary, logged, Process};
use registry_notify_testkit::{free_port, require_tool, sha256};

const OCI_M: &str = "application/vnd.oci.image.manifest.v1+json";

struct Opts {
    rounds: usize,
    round: Duration,
    concurrency: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        rounds: 8,
        round: Duration::from_millis(1500),
        concurrency: 16,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match args[i].as_str() {
            "--rounds" => o.rounds = val().expect("--rounds N") as usize,
            "--round-ms" => o.round = Duration::from_millis(val().expect("--round-ms N")),
            "--concurrency" => o.concurrency = val().expect("--concurrency N") as usize,
            _ => {} // `--bench` and friends from cargo
        }
        i += 1;
    }
    o
}

/// CPU seconds (user + system) process `pid` used so far.
fn cpu_secs(pid: u32) -> f64 {
    cpu_time(&pid.to_string()).as_secs_f64()
}

type C = Client<HttpConnector, Full<Bytes>>;

async fn send(
    c: &C,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (StatusCode, http::HeaderMap, usize) {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = c
        .request(b.body(Full::new(body)).unwrap())
        .await
        .expect("request");
    let (parts, mut body) = resp.into_parts();
    let mut n = 0;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.expect("body").into_data() {
            n += d.len();
        }
    }
    (parts.status, parts.headers, n)
}

async fn push_blob(c: &C, base: &str, repo: &str, data: Bytes) -> String {
    let d = sha256(&data);
    let (s, h, _) = send(
        c,
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(s, 202);
    let loc = h["location"].to_str().unwrap();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let (s, _, _) = send(c, "PUT", &format!("{loc}{sep}digest={d}"), &[], data).await;
    assert_eq!(s, 201);
    d
}

#[derive(Clone, Copy, PartialEq)]
enum Mix {
    Pull,
    Metadata,
}

struct Image {
    config: String,
    layers: [String; 2],
}

#[derive(Default, Clone)]
struct Tally {
    requests: u64,
    bytes: u64,
    lat_us: Vec<u32>,
    secs: f64,
    /// CPU seconds of the registry process and of the proxy process during the rounds.
    registry_cpu: f64,
    proxy_cpu: f64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.requests += o.requests;
        self.bytes += o.bytes;
        self.lat_us.extend(o.lat_us);
        self.secs += o.secs;
        self.registry_cpu += o.registry_cpu;
        self.proxy_cpu += o.proxy_cpu;
    }
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    fn mibps(&self) -> f64 {
        self.bytes as f64 / self.secs / (1 << 20) as f64
    }
    fn pct(&mut self, p: f64) -> f64 {
        self.lat_us.sort_unstable();
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
}

async fn round(c: &C, base: &str, img: &Arc<Image>, mix: Mix, opts: &Opts, pids: (u32, u32)) -> Tally {
    let cpu0 = (cpu_secs(pids.0), cpu_secs(pids.1));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..opts.concurrency {
        let (c, base, img, stop) = (c.clone(), base.to_string(), img.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let repo = format!("bench/r{}", w % 4);
            let accept = [("accept", OCI_M)];
            while !stop.load(Ordering::Relaxed) {
                let reqs: Vec<(&str, String)> = match mix {
                    Mix::Pull => vec![
                        ("GET", format!("{base}/v2/{repo}/manifests/latest")),
                        ("GET", format!("{base}/v2/{repo}/blobs/{}", img.config)),
                        ("GET", format!("{base}/v2/{repo}/blobs/{}", img.layers[0])),
                        ("GET", format!("{base}/v2/{repo}/blobs/{}", img.layers[1])),
                    ],
                    Mix::Metadata => vec![
                        ("HEAD", format!("{base}/v2/{repo}/manifests/latest")),
                        ("HEAD", format!("{base}/v2/{repo}/blobs/{}", img.layers[1])),
                    ],
                };
                for (m, u) in reqs {
                    let t0 = Instant::now();
                    let (s, _, n) = send(&c, m, &u, &accept, Bytes::new()).await;
                    assert_eq!(s, 200, "{m} {u}");
                    t.lat_us
                        .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    t.requests += 1;
                    t.bytes += n as u64;
                }
            }
            t
        }));
    }
    tokio::time::sleep(opts.round).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for task in tasks {
        total.add(task.await.unwrap());
    }
    total.secs = start.elapsed().as_secs_f64();
    total.registry_cpu = cpu_secs(pids.0) - cpu0.0;
    total.proxy_cpu = cpu_secs(pids.1) - cpu0.1;
    total
}

/// A webhook receiver answering 200 to every POST, counting them.
async fn receiver() -> (SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = count.clone();
    tokio::spawn(example_registry::receiver::serve(listener, move |_, _| {
        c.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Response::new(Full::new(Bytes::new())))
    }));
    (addr, count)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let opts = opts();
    let bin = example_binary("proxy");
    let tmp = tempfile::tempdir().unwrap();
    let (raddr, received) = receiver().await;

    let reg_port = free_port();
    let reg_cfg = tmp.path().join("registry.yml");
    std::fs::write(
        &reg_cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{reg_port}\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let reg: SocketAddr = format!("127.0.0.1:{reg_port}").parse().unwrap();
    let Some(docker_registry) = require_tool("docker-registry") else {
        return;
    };
    let log = tmp.path().join("registry.log");
    let mut command = logged(&docker_registry, &log);
    command.arg("serve").arg(&reg_cfg);
    let registry = Process::start(command, reg, &log, "docker-registry").await;

    let proxy_port = free_port();
    let proxy_cfg = tmp.path().join("proxy.yml");
    std::fs::write(
        &proxy_cfg,
        format!(
            "version: 0.1\nupstream: http://{reg}\nhttp:\n  addr: 127.0.0.1:{proxy_port}\nnotifications:\n  endpoints:\n    - name: bench\n      url: http://{raddr}/events\n"
        ),
    )
    .unwrap();
    let prx: SocketAddr = format!("127.0.0.1:{proxy_port}").parse().unwrap();
    let log = tmp.path().join("proxy.log");
    let mut command = logged(&bin, &log);
    command.arg("serve").arg(&proxy_cfg).env("RUST_LOG", "warn");
    let proxy = Process::start(command, prx, &log, "proxy").await;

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let c: C = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(opts.concurrency * 2)
        .build(connector);
    let pids = (registry.pid(), proxy.pid());
    let direct = format!("http://{reg}");
    let proxied = format!("http://{prx}");

    // One image (config, 64 KiB and 1 MiB layers) in 4 repositories, pushed directly.
    let layer = |n: usize, seed: u8| {
        Bytes::from(
            (0..n)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect::<Vec<u8>>(),
        )
    };
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let mut img = None;
    for r in 0..4 {
        let repo = format!("bench/r{r}");
        let cd = push_blob(&c, &direct, &repo, config.clone()).await;
        let l0 = push_blob(&c, &direct, &repo, layer(64 << 10, 1)).await;
        let l1 = push_blob(&c, &direct, &repo, layer(1 << 20, 2)).await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_M}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l0}","size":{}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l1}","size":{}}}]}}"#,
            config.len(),
            64 << 10,
            1 << 20
        );
        let (s, _, _) = send(
            &c,
            "PUT",
            &format!("{direct}/v2/{repo}/manifests/latest"),
            &[("content-type", OCI_M)],
            Bytes::from(manifest),
        )
        .await;
        assert_eq!(s, 201);
        img = Some(Image {
            config: cd,
            layers: [l0, l1],
        });
    }
    let img = Arc::new(img.unwrap());

    println!(
        "proxy overhead: {} rounds x {:?} per target and mix, {} connections, interleaved",
        opts.rounds, opts.round, opts.concurrency
    );
    for (mix, name) in [(Mix::Pull, "pull"), (Mix::Metadata, "metadata")] {
        // Warm-up of both paths (connections, page cache).
        let warm = Opts {
            round: Duration::from_millis(300),
            ..opts
        };
        for base in [&direct, &proxied] {
            round(&c, base, &img, mix, &warm, pids).await;
        }
        let (mut d, mut p) = (Tally::default(), Tally::default());
        let mut ratios = Vec::new();
        for i in 0..opts.rounds {
            // Alternate which goes first, so neither always follows the other.
            let (rd, rp) = if i % 2 == 0 {
                let rd = round(&c, &direct, &img, mix, &opts, pids).await;
                (rd, round(&c, &proxied, &img, mix, &opts, pids).await)
            } else {
                let rp = round(&c, &proxied, &img, mix, &opts, pids).await;
                (round(&c, &direct, &img, mix, &opts, pids).await, rp)
            };
            ratios.push(rp.rps() / rd.rps());
            d.add(rd);
            p.add(rp);
        }
        ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = ratios[ratios.len() / 2];
        println!("\nmix {name}");
        println!("| target | requests/s | MiB/s | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        for (label, t) in [("direct", &mut d), ("proxy", &mut p)] {
            println!(
                "| {label} | {:.0} | {:.1} | {:.3} | {:.3} |",
                t.rps(),
                t.mibps(),
                t.pct(0.5),
                t.pct(0.99)
            );
        }
        println!(
            "proxy/direct throughput: {:.3} overall, median of rounds {:.3}; p50 latency x{:.2}, p99 x{:.2}",
            p.rps() / d.rps(),
            median,
            p.pct(0.5) / d.pct(0.5),
            p.pct(0.99) / d.pct(0.99)
        );
        let per_req = |cpu: f64, t: &Tally| cpu / t.requests as f64 * 1e6;
        println!(
            "CPU per request: registry {:.0} us (direct rounds), {:.0} us (proxy rounds); proxy process {:.0} us = {:.2}x the registry's",
            per_req(d.registry_cpu, &d),
            per_req(p.registry_cpu, &p),
            per_req(p.proxy_cpu, &p),
            p.proxy_cpu / p.registry_cpu
        );
    }
    // Let the endpoint catch up before reporting what it received.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "\nenvelopes received from the proxy's endpoint: {}",
        received.load(Ordering::Relaxed)
    );
    drop(proxy);
    drop(registry);
}

//! Scale-out end to end, every part a real process: two replicas of the example registry
//! publish to Debian's `nats-server` (JetStream), two `examples/worker` processes deliver to a
//! webhook receiver. Pushes come in three waves; during the first, one worker is killed with
//! SIGKILL; during the second, the NATS server restarts. Every push acknowledged with a 201
//! arrives — counted by digest, exactly one event id per digest, every copy of an id with the
//! same content.
#![cfg(all(feature = "nats", unix))]

mod nats_common;
#[path = "support/delivery_receiver.rs"]
mod receiver;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nats_common::{free_port, NatsServer};
use registry_notify::{Action, Event};
use support::sha256;

/// Concurrent clients per wave (half on each replica).
const CLIENTS: usize = 4;
/// Pushes per client per wave: 3 waves × 4 clients × 25 = 300 pushes.
const PER_CLIENT: usize = 25;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built (cargo test --features nats builds examples)",
        bin.display()
    );
    bin
}

fn spawn(bin: &Path, args: &[&Path], log: &Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    tokio::process::Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn start_registry(dir: &Path, name: &str, nats: &str) -> (tokio::process::Child, u16) {
    let port = free_port();
    let config = format!(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\nstorage:\n  inmemory: {{}}\n\
         notifications:\n  nats:\n    url: {nats}\n    maxevents: 10\n"
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).unwrap();
    let child = spawn(
        &example("registry"),
        &[Path::new("serve"), &path],
        &dir.join(format!("{name}.log")),
    );
    tokio::time::timeout(receiver::HANG_GUARD, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("registry did not start");
    (child, port)
}

fn start_worker(dir: &Path, name: &str, nats: &str, hook: &str) -> tokio::process::Child {
    let config = format!(
        "notifications:\n  nats:\n    url: {nats}\n    ackwait: 5s\n    maxinflight: 32\n  endpoints:\n\
         \x20   - name: hook\n      url: {hook}\n      maxevents: 10\n      timeout: 5s\n"
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).unwrap();
    spawn(&example("worker"), &[&path], &dir.join(format!("{name}.log")))
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// One blob per request (monolithic upload): 201 means the registry emitted `push`.
async fn push_one(client: &Client, port: u16, data: String) -> Option<String> {
    let digest = sha256(data.as_bytes());
    let uri = format!("http://127.0.0.1:{port}/v2/scale/out/blobs/uploads/?digest={digest}");
    let request = http::Request::post(uri)
        .header("content-type", "application/octet-stream")
        .body(http_body_util::Full::new(bytes::Bytes::from(data)))
        .unwrap();
    let reply = tokio::time::timeout(receiver::HANG_GUARD, client.request(request)).await;
    match reply {
        Ok(Ok(r)) if r.status() == 201 => Some(digest),
        _ => None,
    }
}

/// One wave of concurrent pushes, half to each replica; returns the acknowledged digests.
async fn wave(wave: usize, ports: [u16; 2]) -> Vec<String> {
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let acked = acked.clone();
        let port = ports[c % 2];
        clients.spawn(async move {
            let client: Client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            for i in 0..PER_CLIENT {
                if let Some(d) = push_one(&client, port, format!("wave {wave} client {c} blob {i}")).await {
                    acked.lock().unwrap().push(d);
                }
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let acked = acked.lock().unwrap().clone();
    acked
}

/// Push events received, by digest: the ids seen, and every copy of each event by id.
fn received(rx: &receiver::Receiver) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, Vec<Event>>) {
    let mut by_digest: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for r in rx.requests() {
        for e in r.events() {
            if e.action == Action::Push {
                by_digest
                    .entry(e.target.descriptor.digest.to_string())
                    .or_default()
                    .insert(e.id.to_string());
            }
            by_id.entry(e.id.to_string()).or_default().push(e);
        }
    }
    (by_digest, by_id)
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["a", "b", "w1", "w2"] {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        out.push_str(&format!("--- {name}.log\n{log}\n"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_publish_workers_deliver_through_a_worker_kill_and_a_nats_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut server) = NatsServer::start(&dir.path().join("nats")) else {
        return;
    };
    let nats = server.url();
    let rx = receiver::Receiver::start(receiver::always(200)).await;
    let hook = rx.url();
    let (_a, port_a) = start_registry(dir.path(), "a", &nats).await;
    let (_b, port_b) = start_registry(dir.path(), "b", &nats).await;
    let mut w1 = start_worker(dir.path(), "w1", &nats, &hook);
    let mut w2 = start_worker(dir.path(), "w2", &nats, &hook);
    let ports = [port_a, port_b];
    let mut acked: BTreeSet<String> = BTreeSet::new();

    // Wave 1; a worker is killed once a quarter of it was delivered, while pushes go on.
    let first = tokio::spawn(wave(0, ports));
    let quarter = CLIENTS * PER_CLIENT / 4;
    receiver::wait_until("a quarter of wave 1 delivered", || {
        received(&rx).0.len() >= quarter
    })
    .await;
    w1.start_kill().unwrap(); // SIGKILL
    let status = w1.wait().await.unwrap();
    eprintln!(
        "worker w1 killed ({status:?}) with {} delivered",
        received(&rx).0.len()
    );
    acked.extend(first.await.unwrap());

    // Wave 2; NATS restarts (graceful: its store survives) once a quarter of it was delivered.
    let second = tokio::spawn(wave(1, ports));
    let target = acked.len() + quarter;
    receiver::wait_until("a quarter of wave 2 delivered", || {
        received(&rx).0.len() >= target
    })
    .await;
    tokio::task::block_in_place(|| server.restart());
    eprintln!("nats restarted with {} delivered", received(&rx).0.len());
    acked.extend(second.await.unwrap());
    // Wave 3, after the restart.
    acked.extend(wave(2, ports).await);
    assert_eq!(
        acked.len(),
        3 * CLIENTS * PER_CLIENT,
        "every push was acknowledged"
    );

    let start = std::time::Instant::now();
    loop {
        let (by_digest, _) = received(&rx);
        let missing: Vec<&String> = acked.iter().filter(|d| !by_digest.contains_key(*d)).collect();
        if missing.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(180) {
            panic!(
                "{} of {} pushes never arrived, e.g. {:?}\n{}\n--- nats\n{}",
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(3)],
                logs(dir.path()),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (by_digest, by_id) = received(&rx);
    for (digest, ids) in &by_digest {
        assert_eq!(
            ids.len(),
            1,
            "{digest}: duplicates only with the same id, got {ids:?}"
        );
    }
    for (id, copies) in &by_id {
        assert!(
            copies.iter().all(|c| c == &copies[0]),
            "{id}: same id, same content"
        );
    }
    let deliveries: usize = by_id.values().map(Vec::len).sum();
    eprintln!(
        "{} pushes, {} events, {} deliveries ({} duplicates)",
        acked.len(),
        by_id.len(),
        deliveries,
        deliveries - by_id.len()
    );

    // The surviving worker stops gracefully.
    let pid = w2.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = tokio::time::timeout(receiver::HANG_GUARD, w2.wait())
        .await
        .expect("worker did not exit")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

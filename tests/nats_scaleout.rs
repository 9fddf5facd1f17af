//! Scale-out end to end: two replicas of the example registry (in this process, each with its
//! own listener, notifications and NATS connection, as `registry serve config.yml` sets them up)
//! publish to Debian's `nats-server` (JetStream, a real process), two `examples/worker`
//! processes deliver to a webhook receiver. Pushes come in three waves; during the first, one worker is killed with
//! SIGKILL; during the second, the NATS server restarts. Every push acknowledged with a 201
//! arrives — counted by digest, exactly one event id per digest, every copy of an id with the
//! same content.
#![cfg(all(feature = "nats", unix))]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_registry::app::App;
use registry_notify::Event;
use support::nats::NatsServer;
use support::process::{example_binary, logged, terminate};
use support::{Http, HANG_GUARD};

/// Concurrent clients per wave (half on each replica).
const CLIENTS: usize = 4;
/// Pushes per client per wave: 3 waves × 4 clients × 25 = 300 pushes.
const PER_CLIENT: usize = 25;

/// A replica: the example registry as `registry serve <dir>/<name>.yml` sets it up, publishing
/// to NATS, served on a task of this test; returns its port.
async fn start_registry(dir: &Path, name: &str, nats: &str) -> u16 {
    let port = support::free_port();
    let config = format!(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\nstorage:\n  inmemory: {{}}\n\
         notifications:\n  nats:\n    url: {nats}\n    maxevents: 10\n"
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).unwrap();
    let config = registry_notify::config::Config::from_path(&path).unwrap();
    let dead_letters = example_registry::common::default_dead_letters(&path);
    let mut app = App::from_config(config, &dead_letters).unwrap_or_else(|e| panic!("{name}: {e}"));
    app.listener = Some(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    tokio::spawn(async move { app.run(std::future::pending()).await.unwrap() });
    port
}

fn start_worker(dir: &Path, name: &str, nats: &str, hook: &str) -> tokio::process::Child {
    let config = format!(
        "notifications:\n  nats:\n    url: {nats}\n    ackwait: 5s\n    maxinflight: 32\n  endpoints:\n\
         \x20   - name: hook\n      url: {hook}\n      maxevents: 10\n      timeout: 5s\n"
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).unwrap();
    let log = dir.join(format!("{name}.log"));
    let mut command = logged(&example_binary("worker"), &log);
    command.arg(&path).env("RUST_LOG", "warn");
    command.spawn().expect("spawn the worker")
}

/// One wave of concurrent pushes, half to each replica; returns the acknowledged digests.
async fn wave(wave: usize, ports: [u16; 2]) -> Vec<String> {
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let acked = acked.clone();
        let port = ports[c % 2];
        clients.spawn(async move {
            let client = Http::new(([127, 0, 0, 1], port).into());
            for i in 0..PER_CLIENT {
                let data = format!("wave {wave} client {c} blob {i}");
                // 201 means the registry emitted `push`.
                let pushed = client.try_monolithic_push("scale/out", data.as_bytes(), HANG_GUARD);
                if let Some(d) = pushed.await {
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
fn received(
    rx: &support::receiver::Receiver,
) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, Vec<Event>>) {
    let mut by_id: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in rx.events() {
        by_id.entry(e.id.to_string()).or_default().push(e);
    }
    (rx.push_ids_by_digest(), by_id)
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["w1", "w2"] {
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
    let rx = support::receiver::Receiver::start(support::receiver::always(200)).await;
    let hook = rx.url();
    let port_a = start_registry(dir.path(), "a", &nats).await;
    let port_b = start_registry(dir.path(), "b", &nats).await;
    let mut w1 = start_worker(dir.path(), "w1", &nats, &hook);
    let mut w2 = start_worker(dir.path(), "w2", &nats, &hook);
    let ports = [port_a, port_b];
    let mut acked: BTreeSet<String> = BTreeSet::new();

    // Wave 1; a worker is killed once a quarter of it was delivered, while pushes go on.
    let first = tokio::spawn(wave(0, ports));
    let quarter = CLIENTS * PER_CLIENT / 4;
    support::wait_until("a quarter of wave 1 delivered", || {
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
    support::wait_until("a quarter of wave 2 delivered", || {
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
    let exit = terminate(&mut w2).await;
    assert!(exit.success(), "{exit:?}");
}

//! Zero loss under `kill -9`: the example registry (its `registry` binary, a real process) with a durable
//! `fsync: always` endpoint takes a push storm while its endpoint is down, is killed with SIGKILL
//! at random moments, restarts; once the endpoint is up, the push event of every blob whose
//! upload got a 201 before a kill arrives — counted by digest, duplicates only with the same id.
#![cfg(all(feature = "durable", unix))]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::receiver::always;
use support::{free_port, Http, Receiver};

/// Kills before the final run.
const KILLS: usize = 4;
/// Concurrent clients in the storm.
const CLIENTS: usize = 8;

fn write_config(dir: &Path, port: u16, endpoint: SocketAddr) -> PathBuf {
    let config = format!(
        r#"version: 0.1
http:
  addr: 127.0.0.1:{port}
storage:
  inmemory: {{}}
notifications:
  endpoints:
    - name: durable
      url: http://{endpoint}/events
      timeout: 2s
      maxevents: 100
      retry:
        initial: 20ms
        max: 200ms
      queue:
        path: {queue}
        fsync: always
"#,
        queue = dir.join("queue").display()
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn start(config: &Path, port: u16, log: &Path) -> tokio::process::Child {
    let mut child = support::registry_serve(config, log)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn the registry");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    support::process::wait_listening(&mut child, addr, "registry").await;
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_acknowledged_to_a_client_is_lost_to_sigkill() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = support::dead_addr().await;
    let config = write_config(dir.path(), port, endpoint);
    let log = dir.path().join("registry.log");
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));

    for round in 0..KILLS {
        let mut child = start(&config, port, &log).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let (acked, counter, stop) = (acked.clone(), counter.clone(), stop.clone());
            clients.spawn(async move {
                let client = Http::new(([127, 0, 0, 1], port).into());
                // Bounded: a client stops at the kill (its requests fail) or after 100 000 pushes.
                for _ in 0..100_000 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // 201 means the registry answered `push`.
                    let data = format!("blob {n}");
                    let pushed =
                        client.try_monolithic_push("crash/test", data.as_bytes(), Duration::from_secs(10));
                    if let Some(digest) = pushed.await {
                        acked.lock().unwrap().insert(digest);
                    }
                }
            });
        }
        // A random moment into the storm.
        let before = acked.lock().unwrap().len();
        let wait = rng.random_range(100..800);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.start_kill().unwrap(); // SIGKILL
        let status = child.wait().await.unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        while clients.join_next().await.is_some() {}
        let during = acked.lock().unwrap().len() - before;
        eprintln!("round {round}: killed after {wait} ms ({status:?}), {during} pushes acknowledged");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "the storm reached the registry");

    // Restart, then bring the endpoint up: everything acknowledged arrives.
    let mut child = start(&config, port, &log).await;
    let rx = Receiver::start_on(endpoint, always(200)).await;
    let start = std::time::Instant::now();
    loop {
        let got = rx.push_ids_by_digest();
        let missing = acked.iter().filter(|d| !got.contains_key(*d)).count();
        if missing == 0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "{missing} of {} acknowledged pushes never arrived (seed {seed})\nregistry log:\n{log}",
                acked.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rx.push_ids_by_digest();
    for (digest, ids) in &got {
        assert_eq!(
            ids.len(),
            1,
            "{digest}: duplicates only with the same id, got {ids:?}"
        );
    }
    let delivered = rx.ids();
    eprintln!(
        "{} acknowledged pushes, {} push events delivered ({} deliveries in all, duplicates included)",
        acked.len(),
        got.len(),
        delivered.len()
    );

    // Graceful shutdown: exits 0 at once.
    let exit = support::process::terminate(&mut child).await;
    assert!(exit.success(), "{exit:?}");
}

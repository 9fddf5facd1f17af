//! A NATS JetStream worker: delivers what registry replicas published to the endpoints of its
//! config file (the scale-out mode of `registry_notify::nats`).
//!
//! ```text
//! cargo run --features nats --example worker -- worker.yml
//! ```
//!
//! `worker.yml` uses Distribution's `notifications` section, with our `nats` key saying where
//! to consume from:
//!
//! ```yaml
//! notifications:
//!   nats:
//!     url: nats://127.0.0.1:4222
//!     consumer: registry-notify      # shared by every worker
//!     ackwait: 30s
//!   endpoints:
//!     - name: audit
//!       url: http://127.0.0.1:5055/events
//!       timeout: 2s
//! ```
//!
//! Run as many as you like; they share the consumer. SIGTERM or Ctrl-C stops pulling, lets the
//! messages in flight finish (at most `http.draintimeout`, default 10 s) and exits; what is
//! left is redelivered by the server. Dead letters are appended as JSON lines to
//! `dead-letters.jsonl` beside the config (or `--dead-letters PATH`). With `http.debug.addr`,
//! the debug listener serves metrics, health (NATS reachable) and endpoint status.

use example_registry::cli::{load_config, Cli};
use example_registry::common::{
    append_dead_letter, default_dead_letters, init_tracing, log_endpoints, shutdown_signal,
};
use example_registry::debug::Debug;
use std::path::Path;
use std::time::Duration;

use registry_notify::nats::Worker;

const CLI: Cli = Cli::new(
    "worker",
    "\
usage: worker [--dead-letters PATH] FILE
           deliver from NATS JetStream as configured by FILE (notifications.nats and
           notifications.endpoints), with Distribution's REGISTRY_* environment overrides
           applied on top (REGISTRY_NOTIFICATIONS_NATS_URL, ...); events given up on are
           appended as JSON lines to PATH (default: dead-letters.jsonl beside FILE)
       worker -h | --help | -V | --version

environment: RUST_LOG sets the log filter (default info)
",
    &["--dead-letters"],
);

#[tokio::main]
async fn main() {
    let args = CLI.parse();
    init_tracing("info");

    let [file] = args.positional.as_slice() else {
        CLI.fail("one FILE is required")
    };
    let path = Path::new(file);
    let dead_letters = match args.flags.last() {
        Some((_, to)) => to.into(),
        None => default_dead_letters(path),
    };
    let mut debug = None;
    let mut drain_bound = Duration::from_secs(10);
    let worker = load_config(path).and_then(|config| {
        // Before the endpoints: their metric handles belong to the recorder installed then.
        debug =
            Debug::install(&config).map_err(|e| registry_notify::config::ConfigError::new(e.to_string()))?;
        drain_bound = config.http.drain_timeout.unwrap_or(drain_bound);
        let Some(n) = config.notifications else {
            return Err(registry_notify::config::ConfigError::new(
                "notifications: required (with nats and endpoints)",
            ));
        };
        let mut worker = Worker::new(n.nats.clone().ok_or_else(|| {
            registry_notify::config::ConfigError::new("notifications.nats: required for a worker")
        })?);
        for endpoint in n.endpoints()? {
            let file = dead_letters.clone();
            worker = worker.endpoint(endpoint.with_dead_letter(move |dl| append_dead_letter(&file, dl)));
        }
        if n.enabled_endpoints().next().is_none() {
            return Err(registry_notify::config::ConfigError::new(
                "notifications.endpoints: a worker needs at least one enabled endpoint",
            ));
        }
        Ok(worker)
    });
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{file}: {e}");
            std::process::exit(1);
        }
    };
    let handle = worker.start();
    log_endpoints(handle.endpoints());
    if let Some((addr, debug)) = debug {
        if let Err(e) = debug.start(&addr, handle.endpoints()).await {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    eprintln!("worker started");
    shutdown_signal().await;
    let left = handle.shutdown(drain_bound).await;
    eprintln!("worker stopped ({left} messages left for redelivery)");
}

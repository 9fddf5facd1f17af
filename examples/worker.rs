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
//! messages in flight finish (at most 10 s) and exits; what is left is redelivered by the
//! server. Dead letters are appended as JSON lines to `dead-letters.jsonl` beside the config.

use example_registry::cli::{load_config, Cli};
use example_registry::common::{append_dead_letter, init_tracing, shutdown_signal};
use std::path::Path;
use std::time::Duration;

use registry_notify::nats::Worker;

const CLI: Cli = Cli::new(
    "worker",
    "\
usage: worker FILE
           deliver from NATS JetStream as configured by FILE (notifications.nats and
           notifications.endpoints), with Distribution's REGISTRY_* environment overrides
           applied on top (REGISTRY_NOTIFICATIONS_NATS_URL, ...)
       worker -h | --help | -V | --version

environment: RUST_LOG sets the log filter (default info)
",
    &[],
);

#[tokio::main]
async fn main() {
    let args = CLI.parse();
    init_tracing("info");

    let [file] = args.positional.as_slice() else {
        CLI.fail("one FILE is required")
    };
    let path = Path::new(file);
    let worker = load_config(path).and_then(|config| {
        let Some(n) = config.notifications else {
            return Err(registry_notify::config::ConfigError::new(
                "notifications: required (with nats and endpoints)",
            ));
        };
        let dead_letters = path.with_file_name("dead-letters.jsonl");
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
    eprintln!("worker started");
    shutdown_signal().await;
    let left = handle.shutdown(Duration::from_secs(10)).await;
    eprintln!("worker stopped ({left} messages left for redelivery)");
}

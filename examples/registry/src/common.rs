//! What the example programs share: the `registry` binary of this package and the root
//! crate's `proxy` and `worker` examples.

use std::path::Path;
use std::time::Duration;

use registry_notify::notifications::NotificationsHandle;

/// Logs to stderr, filtered by `RUST_LOG` (else by `default_filter`, e.g. `"info"`); colours
/// only on a terminal.
pub fn init_tracing(default_filter: &str) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Binds like Distribution: `:5000` means every interface.
pub fn listen_addr(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    }
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// How long a server lets its endpoints deliver what is queued once told to stop, unless
/// `http.draintimeout` says otherwise.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Shuts the notifications down (at most `bound` to deliver what is queued) and says on
/// stderr what was left undelivered, if anything.
pub async fn drain(handle: NotificationsHandle, bound: Duration) {
    eprintln!("shutdown: delivering what is queued, for at most {bound:?}");
    let report = handle.shutdown(bound).await;
    if report.total() > 0 {
        eprintln!(
            "shutdown: undelivered events per endpoint: {:?}",
            report.undelivered
        );
    }
}

/// `"notifications on"` or `"notifications off"`, for the line a server prints once listening.
pub fn notifications_state<T>(handle: Option<&T>) -> &'static str {
    if handle.is_some() {
        "notifications on"
    } else {
        "notifications off"
    }
}

/// Logs one line per endpoint: its name, URL (redacted), and queue.
pub fn log_endpoints(endpoints: &[registry_notify::endpoint::EndpointHandle]) {
    for e in endpoints {
        let m = e.metrics();
        let queue = if e.queue_bytes().is_some() {
            "durable"
        } else {
            "memory"
        };
        tracing::info!(endpoint = %m.name, url = %m.url, queue, "notifications: endpoint ready");
    }
}

/// Appends a dead-lettered batch, whole (for replay), as one JSON line to `file`.
pub fn append_dead_letter(file: &Path, dl: registry_notify::retry::DeadLetter) {
    use std::io::Write;
    let line = serde_json::json!({
        "endpoint": dl.endpoint,
        "reason": dl.reason,
        "attempts": dl.attempts,
        "events": dl.batch.iter().collect::<Vec<_>>(),
    });
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{line}");
    }
}

/// Where dead letters go unless `--dead-letters` says: `dead-letters.jsonl` beside the config
/// file at `config`.
pub fn default_dead_letters(config: &Path) -> std::path::PathBuf {
    config.with_file_name("dead-letters.jsonl")
}

/// The notifications a config file asks for (`None` without a `notifications` section): everything
/// the file says (source, `http.host`, `includereferences`, endpoints, NATS), with dead letters
/// appended as JSON lines to `dead_letters`.
pub fn notifications_from(
    config: &registry_notify::config::Config,
    dead_letters: &Path,
) -> Result<Option<(registry_notify::NotificationLayer, NotificationsHandle)>, Box<dyn std::error::Error>> {
    if config.notifications.is_none() {
        return Ok(None);
    }
    let built = registry_notify::notifications::Notifications::from_config(config)?
        .dead_letter_file(dead_letters)
        .build()?;
    Ok(Some(built))
}

//! What the example binaries (`registry`, `proxy`, `worker`) share. Not an example itself:
//! each includes it with `#[path]`.
#![allow(dead_code)]

use std::path::Path;

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

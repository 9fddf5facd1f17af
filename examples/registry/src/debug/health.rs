//! `/debug/health`: Distribution's health handler, with the checks of the notifications.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use registry_notify::config::Config;

use super::Debug;

/// A check of `/debug/health`.
#[derive(Clone, Debug)]
pub enum Check {
    /// The durable queue directory of an endpoint accepts a new file.
    QueueDir {
        /// The endpoint's name.
        endpoint: String,
        /// Its queue directory.
        dir: PathBuf,
    },
    /// The NATS server accepts TCP connections at `addr` (`host:port`).
    Nats {
        /// `host:port` of the server.
        addr: String,
    },
}

impl Check {
    /// The name under which `/debug/health` reports this check.
    pub fn name(&self) -> String {
        match self {
            Check::QueueDir { endpoint, .. } => format!("notifications_queue_{endpoint}"),
            Check::Nats { .. } => "notifications_nats".to_owned(),
        }
    }

    /// `Err(why)` when the check fails.
    pub async fn run(&self) -> Result<(), String> {
        match self {
            Check::QueueDir { dir, .. } => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || probe_dir(&dir))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Check::Nats { addr } => {
                match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("NATS server {addr} unreachable: {e}")),
                    Err(_) => Err(format!("NATS server {addr} unreachable: no answer within 2s")),
                }
            }
        }
    }

    /// The checks a config asks for: each enabled endpoint's durable queue directory, and
    /// the NATS server when `notifications.nats` is set.
    pub fn from_config(config: &Config) -> Vec<Check> {
        let Some(n) = &config.notifications else {
            return Vec::new();
        };
        let mut checks: Vec<Check> = n
            .enabled_endpoints()
            .filter_map(|e| {
                Some(Check::QueueDir {
                    endpoint: e.name.clone(),
                    dir: e.queue.path.clone()?,
                })
            })
            .collect();
        if let Some(nats) = &n.nats {
            if let Some(addr) = nats_addr(&nats.url) {
                checks.push(Check::Nats { addr });
            }
        }
        checks
    }
}

/// Creates and removes a probe file in `dir`.
fn probe_dir(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(".health-probe");
    let not_writable =
        |e: std::io::Error| format!("durable queue directory {} is not writable: {e}", dir.display());
    std::fs::write(&probe, b"").map_err(not_writable)?;
    std::fs::remove_file(&probe).map_err(not_writable)
}

/// `host:port` of the first server of a NATS URL list (`nats://user:pass@host:4222,…`); the
/// port defaults to 4222.
fn nats_addr(urls: &str) -> Option<String> {
    let first = urls.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return None;
    }
    let has_port = match host_port.rsplit_once(':') {
        Some((host, port)) => !port.is_empty() && !host.ends_with(':') && !port.contains(']'),
        None => false,
    };
    Some(if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:4222")
    })
}

pub(super) async fn health(axum::extract::State(debug): axum::extract::State<Debug>) -> Response {
    let mut failing = serde_json::Map::new();
    for check in debug.checks.iter() {
        if let Err(why) = check.run().await {
            failing.insert(check.name(), why.into());
        }
    }
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(failing)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_addresses() {
        for (url, addr) in [
            ("nats://127.0.0.1:4222", Some("127.0.0.1:4222")),
            ("nats://u:p@nats.example:5222/x", Some("nats.example:5222")),
            ("nats.example", Some("nats.example:4222")),
            ("tls://[::1]:4443,nats://b:1", Some("[::1]:4443")),
            ("nats://[::1]", Some("[::1]:4222")),
            ("nats://", None),
        ] {
            assert_eq!(nats_addr(url).as_deref(), addr, "{url}");
        }
    }

    #[test]
    fn a_directory_that_refuses_files_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(probe_dir(dir.path()), Ok(()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "probe removed");
        let gone = dir.path().join("gone");
        let err = probe_dir(&gone).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "durable queue directory {} is not writable",
                gone.display()
            )),
            "{err}"
        );
    }
}

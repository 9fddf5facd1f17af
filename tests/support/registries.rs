//! Registries started as real processes on 127.0.0.1 at a free port, each with its own
//! directory: Debian's Go registry (`docker-registry`, Distribution 2.8), CNCF Distribution
//! 3.0.0 (`distribution-registry`), and the proxy example in front of either.

use std::net::SocketAddr;
use std::path::Path;

use registry_notify_testkit::process::{example_binary, logged, Process};
use registry_notify_testkit::{free_port, require_tool};

/// A Go registry (`bin serve <dir>/<name>.yml`) with filesystem storage in `<dir>/<name>-data`,
/// deletes enabled, logs at `level` in text with the access log on (in `<dir>/<name>.log`),
/// and `rest` (YAML: `notifications`, `auth`, …) appended to its config.
async fn go_registry(bin: &Path, dir: &Path, name: &str, level: &str, rest: &str) -> Process {
    let port = free_port();
    let config = format!(
        r#"version: 0.1
log:
  level: {level}
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{rest}"#,
        root = dir.join(format!("{name}-data")).display()
    );
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, config).unwrap();
    let log = dir.join(format!("{name}.log"));
    let mut command = logged(bin, &log);
    command.arg("serve").arg(&cfg);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Process::start(command, addr, &log, name).await
}

/// A `notifications` section with one endpoint named `reference` to `url`, given `options`
/// (more YAML lines of the endpoint, each indented by six spaces).
fn reference_endpoint(url: &str, options: &str) -> String {
    format!("notifications:\n  endpoints:\n    - name: reference\n      url: {url}\n{options}")
}

/// Debian's Go registry (`docker-registry serve cfg.yml`) with its own storage,
/// deletes enabled, and optionally its own notifications to `notify_url`.
pub async fn start_docker_registry(dir: &Path, notify_url: Option<&str>) -> Process {
    start_docker_registry_with(dir, notify_url, "").await
}

/// [`start_docker_registry`] with more top-level config (e.g. an `auth:` section).
pub async fn start_docker_registry_with(dir: &Path, notify_url: Option<&str>, extra: &str) -> Process {
    let bin = require_tool("docker-registry").expect("docker-registry on PATH");
    let notifications = notify_url.map_or(String::new(), |url| {
        reference_endpoint(
            url,
            "      headers:\n        Authorization: [Bearer test]\n      timeout: 2s\n      threshold: 5\n      backoff: 1s\n",
        )
    });
    go_registry(
        &bin,
        dir,
        "docker-registry",
        "info",
        &format!("{notifications}{extra}"),
    )
    .await
}

/// CNCF Distribution 3.0.0 (`distribution-registry serve config.yml`) at `bin`, with
/// filesystem storage in `dir`, deletes enabled, its access log on, and its own
/// notifications (`events.v2`) to `notify_url`.
pub async fn start_distribution(bin: &Path, dir: &Path, notify_url: &str) -> Process {
    let notifications = reference_endpoint(
        notify_url,
        "      timeout: 5s\n      threshold: 5\n      backoff: 1s\n",
    );
    go_registry(bin, dir, "distribution-registry", "warn", &notifications).await
}

/// The proxy example (`proxy serve cfg.yml`) in front of `upstream`, with
/// `notifications` (a YAML block, possibly empty) appended to its config.
pub async fn start_proxy(dir: &Path, upstream: SocketAddr, notifications: &str) -> Process {
    let port = free_port();
    let config = format!(
        r#"version: 0.1
log:
  level: info
upstream: http://{upstream}
http:
  addr: 127.0.0.1:{port}
{notifications}"#
    );
    let cfg = dir.join("proxy.yml");
    std::fs::write(&cfg, config).unwrap();
    let log = dir.join("proxy.log");
    let mut command = logged(&example_binary("proxy"), &log);
    command.arg("serve").arg(&cfg);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Process::start(command, addr, &log, "proxy").await
}

//! Helpers of the proxy tests: Debian's `docker-registry` and the proxy example,
//! each started as a real process on 127.0.0.1 with a random port and its own temp dir.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::support::HANG_GUARD;

/// An example binary that `cargo test` built beside this test.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `addr` accepts connections (or the child died).
pub async fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str) {
    tokio::time::timeout(HANG_GUARD, async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited before listening: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not start listening on {addr}"));
}

/// A running process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("process running")
    }

    /// The process's log so far (for failure messages).
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = s.len().saturating_sub(4000);
        s.get(start..).unwrap_or(&s).to_string()
    }
}

fn spawn(bin: &Path, args: &[&Path], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
}

/// Debian's Go registry (`docker-registry serve cfg.yml`) with its own storage,
/// deletes enabled, and optionally its own notifications to `notify_url`.
pub async fn start_docker_registry(dir: &Path, notify_url: Option<&str>) -> Process {
    start_docker_registry_with(dir, notify_url, "").await
}

/// [`start_docker_registry`] with more top-level config (e.g. an `auth:` section).
pub async fn start_docker_registry_with(dir: &Path, notify_url: Option<&str>, extra: &str) -> Process {
    let bin = crate::support::require_tool("docker-registry").expect("docker-registry on PATH");
    let port = free_port();
    let notifications = match notify_url {
        Some(url) => format!(
            r#"notifications:
  endpoints:
    - name: reference
      url: {url}
      headers:
        Authorization: [Bearer test]
      timeout: 2s
      threshold: 5
      backoff: 1s
"#
        ),
        None => String::new(),
    };
    let config = format!(
        r#"version: 0.1
log:
  level: info
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
{notifications}{extra}"#,
        root = dir.join("registry-data").display()
    );
    let cfg = dir.join("registry.yml");
    std::fs::write(&cfg, config).unwrap();
    let log = dir.join("registry.log");
    let mut child = spawn(&bin, &[Path::new("serve"), &cfg], &log);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(&mut child, addr, "docker-registry").await;
    Process { child, addr, log }
}

/// The proxy example (`proxy serve cfg.yml`) in front of `upstream`, with
/// `notifications` (a YAML block, possibly empty) appended to its config.
pub async fn start_proxy(dir: &Path, upstream: SocketAddr, notifications: &str) -> Process {
    let bin = example_binary("proxy");
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
    let mut child = spawn(&bin, &[Path::new("serve"), &cfg], &log);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(&mut child, addr, "proxy").await;
    Process { child, addr, log }
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`: peak resident set size).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

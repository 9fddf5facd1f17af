//! The `registry` binary's debug listener (`http.debug.addr`), run as a real process:
//! `/metrics` parsed as Prometheus text with the documented names and HELP lines,
//! `/notifications/status` following an endpoint that goes down and recovers, `/debug/health`
//! turning 503 when a durable queue's directory stops taking files, and no secret in any of
//! them.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::receiver::by_index;
use support::{free_port, Http, Receiver};

const SECRET: &str = "s3cret-debug-token";

struct Running {
    registry: support::process::Process,
    client: Http,
    debug: Http,
    queue_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A registry with two endpoints: `hook` (credentials in its URL and a secret header,
/// delivering to `receiver`) and `durable` (a durable queue, the same receiver).
async fn start(receiver: &Receiver) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (port, debug_port) = (free_port(), free_port());
    let queue_dir = dir.path().join("queue");
    let url = receiver
        .url()
        .replacen("http://", &format!("http://user:{SECRET}@"), 1);
    let config = format!(
        r#"version: 0.1
http:
  addr: 127.0.0.1:{port}
  debug:
    addr: 127.0.0.1:{debug_port}
    prometheus:
      enabled: true
storage:
  inmemory: {{}}
notifications:
  endpoints:
    - name: hook
      url: {url}?token={SECRET}
      headers:
        Authorization: [Bearer {SECRET}]
      timeout: 2s
      threshold: 1
      backoff: 50ms
    - name: durable
      url: {plain}
      timeout: 2s
      backoff: 50ms
      queue:
        path: {queue}
"#,
        plain = receiver.url(),
        queue = queue_dir.display(),
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("registry.log");
    let mut command = support::registry_serve(&path, &log);
    command.env("RUST_LOG", "info");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut registry = support::process::Process::start(command, addr, &log, "registry").await;
    let debug_addr = format!("127.0.0.1:{debug_port}").parse().unwrap();
    support::process::wait_listening(&mut registry.child, debug_addr, "debug listener").await;
    Running {
        client: Http::new(addr),
        debug: Http::new(debug_addr),
        registry,
        queue_dir,
        _dir: dir,
    }
}

/// Polls the status of endpoint `name` until `want` holds; panics after the hang guard.
async fn status_until(debug: &Http, name: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + support::HANG_GUARD;
    loop {
        let (_, status) = json(debug, "/notifications/status").await;
        let e = endpoint(&status, name).clone();
        if want(&e) {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn json(c: &Http, path: &str) -> (u16, Value) {
    let r = c.get(path).await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(!text.contains(SECRET), "{path} shows a secret: {text}");
    (
        r.status.as_u16(),
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

fn endpoint<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_a_down_endpoint_and_its_recovery() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let receiver = Receiver::start(by_index(
        move |_, _| {
            if flag.load(Ordering::SeqCst) {
                200
            } else {
                503
            }
        },
    ))
    .await;
    let r = start(&receiver).await;

    let (code, status) = json(&r.debug, "/notifications/status").await;
    assert_eq!(code, 200);
    let hook = endpoint(&status, "hook");
    assert_eq!(hook["state"], "ok");
    assert_eq!(hook["lanes"], 1);
    // (The user info became an Authorization header when the config was read.)
    assert_eq!(hook["url"], format!("http://{}/events?***", receiver.addr));
    assert_eq!(hook["last_success"], Value::Null);
    assert_eq!(
        hook["queue_bytes"],
        Value::Null,
        "a memory queue does not measure bytes"
    );
    assert!(endpoint(&status, "durable")["queue_bytes"].as_u64().is_some());

    // Down: the push stays pending, the breaker opens, the error is shown.
    r.client.push_blob("debug/app", b"while down").await;
    let down = status_until(&r.debug, "hook", "hook shown failing", |h| {
        h["state"] == "failing"
    })
    .await;
    assert_eq!(down["breaker"], "open");
    assert_eq!(down["pending"], 1);
    assert_eq!(down["delivered"], 0);
    assert!(down["failed"].as_u64().unwrap() >= 1);
    let error = down["last_error"]["error"].as_str().unwrap();
    assert!(error.contains("503"), "{error}");
    assert!(down["last_error"]["at"].as_str().unwrap().ends_with('Z'));

    // Up again: delivered, breaker closed, the last success set, the last error kept.
    up.store(true, Ordering::SeqCst);
    let recovered = status_until(&r.debug, "hook", "hook recovered", |h| {
        h["delivered"] == 1 && h["state"] == "ok"
    })
    .await;
    assert_eq!(recovered["breaker"], "closed");
    assert_eq!(recovered["pending"], 0);
    assert_eq!(recovered["in_flight"], 0);
    assert!(recovered["last_success"].as_str().unwrap().ends_with('Z'));
    assert_eq!(recovered["last_error"], down["last_error"]);

    // The deliveries: the failures, then the success, of the one event.
    let (code, list) = json(&r.debug, "/notifications/endpoints/hook/deliveries").await;
    assert_eq!(code, 200);
    let list = list["deliveries"].as_array().unwrap().clone();
    let (last, failures) = list.split_last().unwrap();
    assert!(!failures.is_empty(), "{list:?}");
    for (i, f) in failures.iter().enumerate() {
        assert_eq!(
            (f["attempt"].as_u64(), f["status"].as_u64()),
            (Some(i as u64 + 1), Some(503))
        );
        assert_eq!(f["outcome"], "retrying");
        assert!(f["error"].as_str().unwrap().contains("503"));
    }
    assert_eq!(last["outcome"], "delivered");
    assert_eq!(
        (last["status"].as_u64(), last["error"].is_null()),
        (Some(200), true)
    );
    assert_eq!(
        last["event_ids"], failures[0]["event_ids"],
        "the same event each time"
    );
    assert_eq!(last["events"], 1);
    let (code, _) = json(&r.debug, "/notifications/endpoints/nope/deliveries").await;
    assert_eq!(code, 404);

    // Metrics: the documented names, each with HELP and TYPE, and no secret.
    let metrics = String::from_utf8(r.debug.get("/metrics").await.body.to_vec()).unwrap();
    assert!(!metrics.contains(SECRET));
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    for name in [
        "registry_notifications_events_total",
        "registry_notifications_pending_total",
        "registry_notifications_status_total",
        "registry_notifications_delivered_total",
        "registry_notifications_breaker_open",
        "registry_notifications_delivery_duration_seconds",
        "registry_notifications_queue_bytes",
    ] {
        assert!(scrape.docs.contains_key(name), "no HELP for {name}:\n{metrics}");
        assert!(metrics.contains(&format!("# TYPE {name} ")), "no TYPE for {name}");
    }
    assert!(
        metrics.contains("# TYPE registry_notifications_delivery_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains("registry_notifications_delivery_duration_seconds_bucket{"),
        "{metrics}"
    );
    let hook = [("endpoint", "hook")];
    assert_eq!(
        support::prom_sample(&metrics, "registry_notifications_delivered_total", &hook),
        Some(1.0)
    );
    assert_eq!(
        support::prom_sample(
            &metrics,
            "registry_notifications_status_total",
            &[("code", "503 Service Unavailable"), ("endpoint", "hook")]
        ),
        down["failed"].as_u64().map(|n| n as f64),
        "{metrics}"
    );
    assert!(
        support::prom_sample(
            &metrics,
            "registry_notifications_queue_bytes",
            &[("endpoint", "durable")]
        )
        .unwrap()
            > 0.0
    );

    // One line per endpoint at start, without secrets.
    let log = r.registry.log_tail();
    assert!(!log.contains(SECRET), "{log}");
    for name in ["hook", "durable"] {
        assert!(
            log.contains(&format!("endpoint={name}")) && log.contains("endpoint ready"),
            "{log}"
        );
    }
}

/// `/debug/health` is 200 `{}` while the durable queue's directory takes files, 503 naming
/// the check once it does not (immutable as root, read-only otherwise), and 200 again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_a_durable_queue_that_cannot_be_written() {
    let receiver = Receiver::start(by_index(|_, _| 200)).await;
    let r = start(&receiver).await;
    let (code, body) = json(&r.debug, "/debug/health").await;
    assert_eq!((code, body), (200, serde_json::json!({})));

    let Some(lock) = ReadOnly::set(&r.queue_dir) else {
        return;
    };
    let (code, body) = json(&r.debug, "/debug/health").await;
    assert_eq!(code, 503, "{body}");
    let why = body["notifications_queue_durable"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(why.contains("is not writable"), "{why}");
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only the durable queue fails: {body}"
    );
    drop(lock);
    let (code, body) = json(&r.debug, "/debug/health").await;
    assert_eq!((code, body), (200, serde_json::json!({})));
}

/// A directory that refuses new files until dropped: `chattr +i` as root (whom permission
/// bits do not stop), `chmod 0555` otherwise.
struct ReadOnly(std::path::PathBuf, bool);

impl ReadOnly {
    fn set(dir: &std::path::Path) -> Option<Self> {
        use std::os::unix::fs::PermissionsExt;
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if root {
            support::require_tool("chattr")?;
            let ok = std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                support::skip("chattr +i failed (a file system without immutable files)");
                return None;
            }
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        Some(Self(dir.to_owned(), root))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.1 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.0)
                .status();
        } else {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
}

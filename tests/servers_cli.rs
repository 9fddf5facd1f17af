//! The `proxy` and `worker` examples' command lines, run as real processes: `--help` and
//! `--version` exit 0, a bad command line exits 2 with the usage, and Distribution's
//! `REGISTRY_*` environment overrides change the proxy's listen address and an endpoint's URL.
//! (The `registry` binary's own are in `examples/registry/tests/cli.rs`.)

mod support;

use std::process::Output;

use example_registry::oci;
use support::process::{example_binary, logged, terminate, Process};
use support::receiver::always;
use support::{dead_addr, free_port, Http, Receiver};

fn run(example: &str, args: &[&str]) -> Output {
    std::process::Command::new(example_binary(example))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {example}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn examples() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![("proxy", "usage: proxy serve [--dead-letters PATH] FILE")];
    if cfg!(feature = "nats") {
        all.push(("worker", "usage: worker [--dead-letters PATH] FILE"));
    }
    all
}

#[test]
fn help_and_version_exit_zero() {
    for (example, usage) in examples() {
        for flag in ["-h", "--help"] {
            let out = run(example, &[flag]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{example} {flag}: {}",
                text(&out.stderr)
            );
            let stdout = text(&out.stdout);
            assert!(stdout.starts_with(usage), "{example} {flag}: {stdout}");
            assert!(stdout.contains("REGISTRY_"), "{example} {flag}: {stdout}");
        }
        let out = run(example, &["--version"]);
        assert_eq!(out.status.code(), Some(0), "{example}");
        assert_eq!(
            text(&out.stdout),
            format!("{example} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn a_bad_command_line_exits_two_with_the_usage() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("proxy", &["--bogus"], "proxy: unknown flag --bogus"),
        ("proxy", &[], "proxy: a command is required"),
        ("proxy", &["serve"], "proxy: serve takes one FILE"),
        ("proxy", &["run", "a.yml"], "proxy: unknown command run"),
        ("worker", &["--bogus"], "worker: unknown flag --bogus"),
        ("worker", &[], "worker: one FILE is required"),
        ("worker", &["a.yml", "b.yml"], "worker: one FILE is required"),
    ];
    for (example, args, problem) in cases {
        if !examples().iter().any(|(e, _)| e == example) {
            continue;
        }
        let out = run(example, args);
        assert_eq!(out.status.code(), Some(2), "{example} {args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with(problem), "{example} {args:?}: {stderr}");
        assert!(stderr.contains(&format!("usage: {example}")), "{stderr}");
    }
}

/// The proxy's file says one address and a dead endpoint; `REGISTRY_HTTP_ADDR` and
/// `REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL` say others, and win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_environment_overrides_the_listen_address_and_an_endpoint_url() {
    let upstream = support::serve_router(oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    })))
    .await;
    let receiver = Receiver::start(always(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    let config = format!(
        "version: 0.1\nupstream: http://{upstream}\nhttp:\n  addr: 127.0.0.1:{file_port}\n\
         notifications:\n  endpoints:\n    - name: hook\n      url: http://{dead}/events\n      \
         timeout: 2s\n",
        dead = dead_addr().await,
    );
    let path = dir.path().join("proxy.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("proxy.log");
    let mut command = logged(&example_binary("proxy"), &log);
    command
        .arg("serve")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{env_port}"))
        .env("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL", receiver.url());
    let addr = format!("127.0.0.1:{env_port}").parse().unwrap();
    let mut proxy = Process::start(command, addr, &log, "proxy").await;

    let digest = Http::new(addr)
        .push_blob("env/proxied", b"through the proxy")
        .await;
    let events = receiver.wait_events(1).await;
    assert_eq!(events[0].target.descriptor.digest, digest);
    assert_eq!(events[0].target.repository, "env/proxied");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err(),
        "the file's address is not used"
    );
    let exit = terminate(&mut proxy.child).await;
    assert!(exit.success(), "{exit:?}: {}", proxy.log_tail());
}

/// The proxy's debug listener: metrics (parsed), endpoint status and health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_debug_listener_serves_metrics_status_and_health() {
    let upstream = support::serve_router(oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    })))
    .await;
    let receiver = Receiver::start(always(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, debug_port) = (free_port(), free_port());
    let config = format!(
        "version: 0.1\nupstream: http://{upstream}\nhttp:\n  addr: 127.0.0.1:{port}\n  debug:\n    \
         addr: 127.0.0.1:{debug_port}\n    prometheus:\n      enabled: true\n      path: /prom\n\
         notifications:\n  endpoints:\n    - name: hook\n      url: {}\n",
        receiver.url()
    );
    let path = dir.path().join("proxy.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("proxy.log");
    let mut command = logged(&example_binary("proxy"), &log);
    command.arg("serve").arg(&path).env("RUST_LOG", "warn");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut proxy = Process::start(command, addr, &log, "proxy").await;
    let debug_addr = format!("127.0.0.1:{debug_port}").parse().unwrap();
    support::process::wait_listening(&mut proxy.child, debug_addr, "debug listener").await;
    let debug = Http::new(debug_addr);

    Http::new(addr).push_blob("debug/proxied", b"seen").await;
    receiver.wait_events(1).await;
    let deadline = tokio::time::Instant::now() + support::HANG_GUARD;
    let status = loop {
        let body = debug.get("/notifications/status").await.body;
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if status["endpoints"][0]["delivered"] == 1 {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let hook = &status["endpoints"][0];
    assert_eq!(
        (hook["name"].as_str(), hook["state"].as_str()),
        (Some("hook"), Some("ok"))
    );
    assert!(hook["last_success"].is_string(), "{hook}");

    let text = String::from_utf8(debug.get("/prom").await.body.to_vec()).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(
        scrape.docs.contains_key("registry_notifications_delivered_total"),
        "{text}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "registry_notifications_delivered_total"
                && s.labels.get("endpoint") == Some("hook")
                && matches!(s.value, prometheus_parse::Value::Counter(v) if v == 1.0)),
        "{text}"
    );
    assert_eq!(
        debug.get("/metrics").await.status,
        404,
        "metrics at the configured path only"
    );

    let health = debug.get("/debug/health").await;
    assert_eq!((health.status.as_u16(), &health.body[..]), (200, &b"{}"[..]));
    let exit = terminate(&mut proxy.child).await;
    assert!(exit.success(), "{exit:?}: {}", proxy.log_tail());
}

/// The worker's health names the NATS server when it cannot be reached.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_health_names_an_unreachable_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let debug_port = free_port();
    let nats = dead_addr().await;
    let receiver = Receiver::start(always(200)).await;
    let config = format!(
        "version: 0.1\nhttp:\n  debug:\n    addr: 127.0.0.1:{debug_port}\n\
         notifications:\n  nats:\n    url: nats://{nats}\n  endpoints:\n    - name: hook\n      url: {}\n",
        receiver.url()
    );
    let path = dir.path().join("worker.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("worker.log");
    let mut command = logged(&example_binary("worker"), &log);
    command.arg(&path).env("RUST_LOG", "warn");
    let debug_addr = format!("127.0.0.1:{debug_port}").parse().unwrap();
    let mut worker = Process::start(command, debug_addr, &log, "worker").await;
    let health = Http::new(debug_addr).get("/debug/health").await;
    assert_eq!(health.status.as_u16(), 503);
    let body: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    let why = body["notifications_nats"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(why.contains(&format!("NATS server {nats} unreachable")), "{why}");
    let _ = terminate(&mut worker.child).await;
}

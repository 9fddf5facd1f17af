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
    let mut all = vec![("proxy", "usage: proxy serve FILE")];
    if cfg!(feature = "nats") {
        all.push(("worker", "usage: worker FILE"));
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

//! The `registry` binary's command line, run as a real process: `--help` and `--version` exit 0,
//! a bad command line exits 2 with the usage, and Distribution's `REGISTRY_*` environment
//! overrides change the listen address and an endpoint's URL of the config file.

mod support;

use std::process::Output;

use support::receiver::always;
use support::{dead_addr, free_port, process, Http, Receiver};

fn registry(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        .output()
        .expect("run the registry")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["-h", "--help"] {
        let out = registry(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("usage: registry [--addr A]"), "{stdout}");
        assert!(
            stdout.contains("registry serve [--dead-letters PATH] FILE"),
            "{stdout}"
        );
        assert!(stdout.contains("REGISTRY_HTTP_ADDR"), "{stdout}");
    }
    let out = registry(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("registry {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_bad_command_line_exits_two_with_the_usage() {
    for (args, problem) in [
        (&["--bogus"][..], "registry: unknown flag --bogus"),
        (&["--addr"], "registry: --addr needs a value"),
        (
            &["serve"],
            "registry: serve takes one FILE, and no flag but --dead-letters",
        ),
        (
            &["serve", "a.yml", "b.yml"],
            "registry: serve takes one FILE, and no flag but --dead-letters",
        ),
        (
            &["serve", "a.yml", "--addr", "x"],
            "registry: serve takes one FILE, and no flag but --dead-letters",
        ),
        (&["start"], "registry: unknown command start"),
        (
            &["--dead-letters", "x"],
            "registry: --dead-letters goes with serve",
        ),
    ] {
        let out = registry(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with(problem), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: registry"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_config_file_that_cannot_be_read_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yml");
    let out = registry(&["serve", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.yml"), "{}", text(&out.stderr));
}

/// The file says one address and a dead endpoint; `REGISTRY_HTTP_ADDR` and
/// `REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL` say others, and win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_overrides_the_listen_address_and_an_endpoint_url() {
    let receiver = Receiver::start(always(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    let config = format!(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:{file_port}\nstorage:\n  inmemory: {{}}\n\
         notifications:\n  endpoints:\n    - name: hook\n      url: http://{dead}/events\n      \
         timeout: 2s\n",
        dead = dead_addr().await,
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("registry.log");
    let mut command = support::registry_serve(&path, &log);
    command
        .env("RUST_LOG", "warn")
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{env_port}"))
        .env("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL", receiver.url());
    let addr = format!("127.0.0.1:{env_port}").parse().unwrap();
    let mut registry = process::Process::start(command, addr, &log, "registry").await;

    let digest = Http::new(addr).push_blob("env/app", b"overridden").await;
    let events = receiver.wait_events(1).await;
    assert_eq!(events[0].target.descriptor.digest, digest);
    assert_eq!(events[0].target.repository, "env/app");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err(),
        "the file's address is not used"
    );
    let exit = process::terminate(&mut registry.child).await;
    assert!(exit.success(), "{exit:?}: {}", registry.log_tail());
}

/// A bad override is refused at start with the variable's name, like a bad file.
#[test]
fn a_bad_override_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(
        &path,
        "version: 0.1\nstorage:\n  inmemory: {}\nnotifications:\n  endpoints:\n    - name: a\n      url: http://127.0.0.1:9/\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_registry"))
        .arg("serve")
        .arg(&path)
        .env("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT"),
        "{stderr}"
    );
}

/// `--dead-letters PATH`: what an endpoint gives up on (a 400) is appended there, not beside
/// the config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_where_the_flag_says() {
    let refusing = Receiver::start(always(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\nstorage:\n  inmemory: {{}}\n\
         notifications:\n  endpoints:\n    - name: refusing\n      url: {}\n",
        refusing.url()
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let chosen = dir.path().join("elsewhere").join("dl.jsonl");
    std::fs::create_dir(chosen.parent().unwrap()).unwrap();
    let log = dir.path().join("registry.log");
    let mut command = process::logged(std::path::Path::new(env!("CARGO_BIN_EXE_registry")), &log);
    command
        .arg("serve")
        .arg("--dead-letters")
        .arg(&chosen)
        .arg(&path)
        .env("RUST_LOG", "warn");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut registry = process::Process::start(command, addr, &log, "registry").await;
    let digest = Http::new(addr).push_blob("dl/app", b"refused").await;
    support::wait_until("the dead letter", || {
        std::fs::read_to_string(&chosen).is_ok_and(|t| t.ends_with('\n'))
    })
    .await;
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&chosen).unwrap().trim()).unwrap();
    assert_eq!(line["endpoint"], "refusing");
    assert_eq!(line["events"][0]["target"]["digest"], digest);
    assert!(!dir.path().join("dead-letters.jsonl").exists());
    let exit = process::terminate(&mut registry.child).await;
    assert!(exit.success(), "{exit:?}");
}

/// SIGTERM with an endpoint that never answers: the registry stops within `http.draintimeout`
/// (the bound it announces), says what it left undelivered, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_within_the_configured_bound() {
    let stalled = Receiver::start(support::receiver::stall()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\n  draintimeout: 300ms\nstorage:\n  inmemory: {{}}\n\
         notifications:\n  endpoints:\n    - name: stalled\n      url: {}\n      timeout: 1h\n",
        stalled.url()
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("registry.log");
    let command = support::registry_serve(&path, &log);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut registry = process::Process::start(command, addr, &log, "registry").await;
    Http::new(addr).push_blob("drain/app", b"never delivered").await;
    stalled.wait_requests(1).await;
    let exit = process::terminate(&mut registry.child).await;
    assert!(exit.success(), "{exit:?}");
    let log = registry.log_tail();
    assert!(
        log.contains("shutdown: delivering what is queued, for at most 300ms"),
        "{log}"
    );
    assert!(
        log.contains("undelivered events per endpoint") && log.contains("stalled"),
        "{log}"
    );
}

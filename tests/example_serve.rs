//! `examples/registry -- serve config.yml`: the example binary, started as a
//! real process with Distribution's config format, delivers to two endpoints
//! with their own formats and filters, serves `/metrics`, and drains on SIGTERM.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{sha256, Http, Receiver};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The example binary that `cargo test` built beside this test.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.join("examples")
        .join(format!("registry{}", std::env::consts::EXE_SUFFIX))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_config_delivers_to_both_endpoints() {
    let bin = example_binary();
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    let (first, first_addr) = Receiver::start().await;
    let (second, second_addr) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"version: 0.1
log:
  level: info
http:
  addr: 127.0.0.1:{port}
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
notifications:
  endpoints:
    - name: first
      url: http://{first_addr}/events
      headers:
        Authorization: [Bearer secret-token]
        X-Multi: [one, two]
      timeout: 2s
      threshold: 5
      backoff: 1s
    - name: second
      url: http://{second_addr}/events
      format: events.v1
      maxevents: 10
      ignore:
        actions: [pull]
"#,
        root = dir.path().join("data").display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .arg("serve")
        .arg(&config_path)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    tokio::time::timeout(support::HANG_GUARD, async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("registry did not start");

    let c = Http::new(addr);
    let config_blob = c
        .push_blob("library/test", br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let layer = c
        .chunked_upload("library/test", &["0123456789", "abcdefghij"])
        .await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_blob}","size":37}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":20}}]}}"#
    );
    let digest = sha256(manifest.as_bytes());
    c.put_manifest("library/test", "latest", OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(c.get("/v2/library/test/manifests/latest").await.status, 200);
    assert_eq!(
        c.send("DELETE", &format!("/v2/library/test/manifests/{digest}"), &[], "")
            .await
            .status,
        202
    );

    // first: 3 pushes, 1 pull, 1 manifest delete + 1 tag delete, one per POST, events.v2.
    let got = first.wait_events(6).await;
    let actions: Vec<String> = got.iter().map(|e| format!("{}", e.action)).collect();
    assert_eq!(actions, ["push", "push", "push", "pull", "delete", "delete"]);
    assert_eq!(
        got[1].target.descriptor.size, 20,
        "chunked upload size from the registry's hint"
    );
    assert_eq!(got[5].target.tag, "latest");
    {
        let posts = first.posts.lock().unwrap();
        assert_eq!(posts.len(), 6);
        let (headers, _) = &posts[0];
        assert_eq!(
            headers["content-type"],
            "application/vnd.docker.distribution.events.v2+json"
        );
        assert_eq!(headers["authorization"], "Bearer secret-token");
        let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
    }
    // second: the pull is ignored, the rest arrives as events.v1.
    let got = second.wait_events(5).await;
    assert!(got.iter().all(|e| e.action != registry_notify::Action::Pull));
    for (headers, body) in second.posts.lock().unwrap().iter() {
        assert_eq!(
            headers["content-type"],
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert!(
            !String::from_utf8_lossy(body).contains("\"size\": 0"),
            "v1 omits empty fields"
        );
    }

    // The receiver has the last POST before the registry has its answer: the counters
    // follow a moment later, so they are read until they agree (bounded by the hang guard).
    let lines = [
        r#"registry_notifications_events_total{endpoint="first",type="Events"} 6"#,
        r#"registry_notifications_events_total{endpoint="second",type="Events"} 5"#,
        r#"registry_notifications_pending_total{endpoint="first"} 0"#,
        r#"registry_notifications_status_total{code="200 OK",endpoint="first"} 6"#,
    ];
    let deadline = tokio::time::Instant::now() + support::HANG_GUARD;
    let metrics = loop {
        let metrics = String::from_utf8(c.get("/metrics").await.body.to_vec()).unwrap();
        if lines.iter().all(|line| metrics.contains(line)) {
            break metrics;
        }
        let missing: Vec<_> = lines.iter().filter(|l| !metrics.contains(*l)).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing:?} missing from\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!metrics.contains("secret-token"));

    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(support::HANG_GUARD, child.wait())
        .await
        .expect("no exit")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// The main job (`cargo run --example registry`, no arguments): the registry from memory
/// and a receiver beside it; a push arrives at the receiver over HTTP and is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_arguments_delivers_to_the_local_receiver() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let bin = example_binary();
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    let mut child = tokio::process::Command::new(&bin)
        .args(["--addr", "127.0.0.1:0", "--receiver", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = tokio::time::timeout(support::HANG_GUARD, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("registry listening on http://") {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("the registry exited before listening");
    })
    .await
    .expect("registry did not start");

    let digest = Http::new(addr).push_blob("demo/app", b"hello").await;

    // stdout: the receiver's request line, then the envelope it got.
    let printed = tokio::time::timeout(support::HANG_GUARD, async {
        let mut text = String::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
            if line == "}" {
                return text;
            }
        }
        panic!("the registry exited: {text}");
    })
    .await
    .expect("nothing received");
    let (request_line, envelope) = printed.split_once('\n').unwrap();
    assert_eq!(
        request_line,
        "receiver: POST /events (application/vnd.docker.distribution.events.v2+json)"
    );
    let envelope: registry_notify::Envelope = serde_json::from_str(envelope).unwrap();
    assert_eq!(envelope.events.len(), 1);
    let event = &envelope.events[0];
    assert_eq!(event.action.to_string(), "push");
    assert_eq!(event.target.repository, "demo/app");
    assert_eq!(event.target.descriptor.digest, digest);
    assert_eq!(event.target.descriptor.size, 5);
    child.kill().await.unwrap();
}

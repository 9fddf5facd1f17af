//! The `registry` binary, started as a real process: with Distribution's config format
//! (`registry serve config.yml`) it delivers to two endpoints with their own formats and
//! filters, serves `/metrics`, drains on SIGTERM, signs CloudEvents and writes dead letters;
//! with no arguments (the main job) it delivers to the receiver it starts beside it.

mod support;

use std::time::Duration;

use support::receiver::always;
use support::{free_port, sha256, wait_until, Http, Receiver, HANG_GUARD, OCI_MANIFEST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_config_delivers_to_both_endpoints() {
    let first = Receiver::start(always(200)).await;
    let second = Receiver::start(always(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let debug_port = free_port();
    let config = format!(
        r#"version: 0.1
log:
  level: info
http:
  addr: 127.0.0.1:{port}
  debug:
    addr: 127.0.0.1:{debug_port}
    prometheus:
      enabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
notifications:
  endpoints:
    - name: first
      url: {first}
      headers:
        Authorization: [Bearer secret-token]
        X-Multi: [one, two]
      timeout: 2s
      threshold: 5
      backoff: 1s
    - name: second
      url: {second}
      format: events.v1
      maxevents: 10
      ignore:
        actions: [pull]
"#,
        root = dir.path().join("data").display(),
        first = first.url(),
        second = second.url(),
    );
    let mut child = support::serve_config(dir.path(), port, &config).await;
    let c = Http::new(format!("127.0.0.1:{port}").parse().unwrap());
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
    // The client's own address, from the connection (the layer is in front of the router).
    for e in &got {
        assert!(e.request.addr.starts_with("127.0.0.1:"), "{:?}", e.request.addr);
        assert_ne!(e.request.addr, format!("127.0.0.1:{port}"));
        assert_eq!(e.request.host, format!("127.0.0.1:{port}"));
    }
    {
        let posts = first.requests();
        assert_eq!(posts.len(), 6);
        let headers = &posts[0].headers;
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
    for post in second.requests() {
        assert_eq!(
            post.headers["content-type"],
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert!(
            !String::from_utf8_lossy(&post.body).contains("\"size\": 0"),
            "v1 omits empty fields"
        );
    }

    // The receiver has the last POST before the registry has its answer: the counters
    // follow a moment later, so they are read until they agree (bounded by the hang guard).
    // On the debug listener, parsed as Prometheus text.
    let debug = Http::new(format!("127.0.0.1:{debug_port}").parse().unwrap());
    type Sample<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
    let want: [Sample; 4] = [
        (
            "registry_notifications_events_total",
            &[("endpoint", "first"), ("type", "Events")],
            6.0,
        ),
        (
            "registry_notifications_events_total",
            &[("endpoint", "second"), ("type", "Events")],
            5.0,
        ),
        (
            "registry_notifications_pending_total",
            &[("endpoint", "first")],
            0.0,
        ),
        (
            "registry_notifications_status_total",
            &[("code", "200 OK"), ("endpoint", "first")],
            6.0,
        ),
    ];
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    let metrics = loop {
        let metrics = String::from_utf8(debug.get("/metrics").await.body.to_vec()).unwrap();
        let missing: Vec<_> = want
            .iter()
            .filter(|(name, labels, v)| support::prom_sample(&metrics, name, labels) != Some(*v))
            .collect();
        if missing.is_empty() {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing:?} missing from\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!metrics.contains("secret-token"));

    // SIGTERM: graceful shutdown, exit 0.
    let exit = support::process::terminate(&mut child).await;
    assert!(exit.success(), "{exit:?}");
}

/// The main job (`cargo run -p example-registry`, no arguments): the registry from memory
/// and a receiver beside it; a push arrives at the receiver over HTTP and is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_arguments_delivers_to_the_local_receiver() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(["--addr", "127.0.0.1:0", "--receiver", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = tokio::time::timeout(HANG_GUARD, async {
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
    let printed = tokio::time::timeout(HANG_GUARD, async {
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

/// `registry serve config.yml`: a signed CloudEvents endpoint from YAML delivers verifiable
/// requests; an endpoint answering 400 dead-letters into `dead-letters.jsonl`; the signing
/// secret appears nowhere in the registry's logs.
#[cfg(feature = "signing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_registry_signs_cloudevents_and_writes_dead_letters() {
    use registry_notify::signing::Verifier;
    use serde_json::Value;

    let good = Receiver::start(always(200)).await;
    let bad = Receiver::start(always(400)).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"version: 0.1
http:
  addr: 127.0.0.1:{port}
storage:
  filesystem:
    rootdirectory: {root}
notifications:
  endpoints:
    - name: signed
      url: {good}
      format: cloudevents
      signing:
        secrets: [{secret}]
    - name: rejecting
      url: {bad}
"#,
        root = dir.path().join("data").display(),
        good = good.url(),
        bad = bad.url(),
    );
    let mut child = support::serve_config(dir.path(), port, &config).await;

    // One blob push through a real upload: POST, then PUT with the digest.
    let digest = Http::new(format!("127.0.0.1:{port}").parse().unwrap())
        .push_blob("library/test", b"delivery log")
        .await;

    good.wait_requests(1).await;
    let r = &good.requests()[0];
    assert_eq!(r.headers["content-type"], "application/cloudevents+json");
    Verifier::new([secret])
        .unwrap()
        .verify(&r.headers, &r.body)
        .unwrap();
    let ce: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(ce["type"], "io.distribution.push");
    assert_eq!(ce["subject"], format!("library/test@{digest}"));
    assert_eq!(r.headers["webhook-id"], ce["id"].as_str().unwrap());

    let dead_letters = dir.path().join("dead-letters.jsonl");
    wait_until("dead-letters.jsonl", || {
        std::fs::read_to_string(&dead_letters).is_ok_and(|t| t.ends_with('\n'))
    })
    .await;
    let text = std::fs::read_to_string(&dead_letters).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["endpoint"], "rejecting");
    assert_eq!(lines[0]["attempts"], 1);
    assert!(lines[0]["reason"].as_str().unwrap().contains("400"), "{text}");
    assert_eq!(lines[0]["events"][0]["target"]["digest"], digest.as_str());
    assert_eq!(lines[0]["events"][0]["id"], ce["id"]);

    let _ = child.start_kill();
    let _ = child.wait().await;
    let logs = std::fs::read_to_string(dir.path().join("registry.log")).unwrap();
    assert!(
        !logs.contains("MfKQ9r8G"),
        "the signing secret is logged:\n{logs}"
    );
}

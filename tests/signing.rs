//! Standard Webhooks signing, checked by an independent implementation (the
//! `standardwebhooks` package from PyPI in a Python receiver), by our own `Verifier`,
//! and by `examples/receiver --signing-secret`; the id is stable across retries and
//! across a restart that re-reads the batch from a durable queue.

#![cfg(feature = "signing")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use registry_notify::endpoint::Endpoint;
use registry_notify::queue::{DurableConfig, Fsync};
use registry_notify::retry::DeadLetter;
use registry_notify::retry::Exponential;
use registry_notify::signing::Verifier;
use registry_notify::Batch;
use serde_json::Value;
use support::events::event;
use support::receiver::{always, Receiver};
use support::retry::retries;
use support::{wait_until, HANG_GUARD};
use tokio::time::Instant;
use tower::ServiceExt;

const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER: &str = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Retries at once (a few milliseconds apart), a bounded number of times.
fn quick_retry(max_attempts: u32) -> Exponential {
    retries(1, 5, Some(max_attempts))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A Python receiver verifying each request with `standardwebhooks.Webhook(secret)`:
/// writes one JSON line per request to `out` and answers 401 when verification fails,
/// 503 to the first `fail_first` verified requests, then 204.
const PY_RECEIVER: &str = r#"
import http.server, json, sys
from standardwebhooks.webhooks import Webhook

secret, out, fail_first = sys.argv[1], sys.argv[2], int(sys.argv[3])
webhook = Webhook(secret)
count = 0

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            webhook.verify(body, headers)
            verified, error = True, ""
        except Exception as e:
            verified, error = False, repr(e)
        count += 1
        status = 401 if not verified else (503 if count <= fail_first else 204)
        record = {"verified": verified, "error": error, "status": status,
                  "id": headers.get("webhook-id"), "timestamp": headers.get("webhook-timestamp"),
                  "signature": headers.get("webhook-signature"), "body": body.decode()}
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct PyReceiver {
    child: Child,
    url: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyReceiver {
    fn start(python: &Path, secret: &str, fail_first: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("receiver.py");
        std::fs::write(&script, PY_RECEIVER).unwrap();
        let out = dir.path().join("requests.jsonl");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(secret)
            .arg(&out)
            .arg(fail_first.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("python receiver prints its port");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/hook"),
            out,
            _dir: dir,
        }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rotation: signed with two secrets; a receiver that knows only the new one verifies every
/// attempt; the id is the same on every attempt, the timestamp is the attempt's.
#[tokio::test]
async fn python_standardwebhooks_verifies_every_attempt() {
    let Some(python) = support::python::require_python(&["standardwebhooks"]) else {
        return;
    };
    let py = PyReceiver::start(&python, NEW, 2);
    let before = unix_now();
    let (sink, handle) = Endpoint::builder("signed", &py.url)
        .signing_secret(OLD)
        .signing_secret(NEW)
        .retry(quick_retry(10))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn();
    sink.oneshot(Batch::from(event(7, "library/alpine")))
        .await
        .unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let after = unix_now();

    let requests = py.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for r in &requests {
        assert_eq!(r["verified"], true, "standardwebhooks rejected: {r}");
        assert_eq!(r["id"], "event-7", "the id is the event id on every attempt");
        let ts: i64 = r["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(
            (before..=after).contains(&ts),
            "timestamp {ts} not of the attempt"
        );
        assert_eq!(r["signature"].as_str().unwrap().split(' ').count(), 2);
    }
    let statuses: Vec<_> = requests.iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [503, 503, 204]);
    let m = handle.metrics();
    assert_eq!((m.successes, m.failures), (1, 2));
}

/// A receiver with a secret the endpoint does not sign with rejects (401), which is a
/// permanent failure: the batch is dead-lettered.
#[tokio::test]
async fn python_standardwebhooks_rejects_another_secret() {
    let Some(python) = support::python::require_python(&["standardwebhooks"]) else {
        return;
    };
    let py = PyReceiver::start(&python, OTHER, 0);
    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let l = letters.clone();
    let (sink, handle) = Endpoint::builder("signed", &py.url)
        .signing_secret(NEW)
        .retry(quick_retry(3))
        .timeout(Duration::from_secs(30))
        .dead_letter(move |d| l.lock().unwrap().push(d))
        .build()
        .unwrap()
        .spawn();
    sink.oneshot(Batch::from(event(1, "r"))).await.unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let requests = py.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["verified"], false);
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("401"), "{}", letters[0].reason);
}

/// Our `Verifier` on what a real receiver got: a batch of three signed with two secrets,
/// id `<first>+2`; unsigned endpoints send no `webhook-*` headers.
#[tokio::test]
async fn verifier_checks_batches_and_unsigned_endpoints_send_no_headers() {
    let server = Receiver::start(always(200)).await;
    let endpoint = Endpoint::builder("signed", server.url())
        .signing_secret(OLD)
        .signing_secret(NEW)
        .max_events(3)
        .build()
        .unwrap();
    let http = registry_notify::http_sink::HttpSink::new(endpoint.http().expect("a webhook endpoint"));
    let batch: Batch = (0..3).map(|i| event(i, "r")).collect();
    http.clone().oneshot(batch).await.unwrap();
    let unsigned = Endpoint::builder("plain", server.url()).build().unwrap();
    registry_notify::http_sink::HttpSink::new(unsigned.http().expect("a webhook endpoint"))
        .oneshot(Batch::from(event(9, "r")))
        .await
        .unwrap();

    let requests = server.requests();
    let signed = &requests[0];
    assert_eq!(signed.headers["webhook-id"], "event-0+2");
    for secret in [OLD, NEW] {
        Verifier::new([secret])
            .unwrap()
            .verify(&signed.headers, &signed.body)
            .unwrap();
    }
    let verifier = Verifier::new([OTHER]).unwrap();
    assert!(verifier.verify(&signed.headers, &signed.body).is_err());
    let mut tampered = signed.body.to_vec();
    tampered.push(b' ');
    assert!(Verifier::new([NEW])
        .unwrap()
        .verify(&signed.headers, &tampered)
        .is_err());
    let plain = &requests[1];
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(
            !plain.headers.contains_key(name),
            "{name} on an unsigned endpoint"
        );
    }
}

/// A batch re-read from a durable queue after a restart carries the same `webhook-id`.
#[tokio::test]
async fn the_id_survives_a_restart_through_the_durable_queue() {
    let dir = tempfile::tempdir().unwrap();
    let durable = || DurableConfig::new(dir.path()).fsync(Fsync::Always);
    let failing = Receiver::start(always(503)).await;
    let (sink, handle) = Endpoint::builder("durable", failing.url())
        .signing_secret(NEW)
        .max_events(3)
        .durable_queue(durable())
        .retry(quick_retry(1_000_000))
        .build()
        .unwrap()
        .spawn();
    let batch: Batch = (0..3).map(|i| event(i, "r")).collect();
    sink.clone().oneshot(batch).await.unwrap();
    failing.wait_requests(2).await;
    assert_eq!(
        handle.shutdown(Instant::now()).await,
        3,
        "the batch waits on disk"
    );
    let first = failing.requests()[0].clone();
    drop((sink, handle, failing));

    let ok = Receiver::start(always(200)).await;
    let endpoint = Endpoint::builder("durable", ok.url())
        .signing_secret(NEW)
        .max_events(3)
        .durable_queue(durable())
        .build()
        .unwrap();
    // The stopped worker lets go of the queue directory once its task has ended.
    let mut spawned = None;
    wait_until("the queue to be released", || {
        spawned = endpoint.clone().try_spawn().ok();
        spawned.is_some()
    })
    .await;
    let (_sink, handle) = spawned.unwrap();
    ok.wait_requests(1).await;
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let again = &ok.requests()[0];
    assert_eq!(again.ids(), first.ids());
    assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"]);
    assert_eq!(again.headers["webhook-id"], "event-0+2");
    Verifier::new([NEW])
        .unwrap()
        .verify(&again.headers, &again.body)
        .unwrap();
}

/// `examples/receiver --signing-secret`: signed requests are written out, unsigned ones
/// answered 401 (a permanent failure, dead-lettered).
#[tokio::test]
async fn example_receiver_verifies_with_a_secret() {
    let bin = support::process::example_binary("receiver");
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut child = Command::new(&bin)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--out")
        .arg(&out)
        .env("RECEIVER_SIGNING_SECRET", NEW)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It reports the address once it listens.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    let url = format!("http://127.0.0.1:{port}/events");

    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let l = letters.clone();
    let (signed, signed_handle) = Endpoint::builder("signed", &url)
        .signing_secret(NEW)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn();
    let (unsigned, unsigned_handle) = Endpoint::builder("unsigned", &url)
        .timeout(Duration::from_secs(30))
        .dead_letter(move |d| l.lock().unwrap().push(d))
        .build()
        .unwrap()
        .spawn();
    signed.oneshot(Batch::from(event(1, "signed"))).await.unwrap();
    unsigned.oneshot(Batch::from(event(2, "unsigned"))).await.unwrap();
    assert_eq!(signed_handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    assert_eq!(unsigned_handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    wait_until("dead letter", || !letters.lock().unwrap().is_empty()).await;
    assert!(letters.lock().unwrap()[0].reason.contains("401"));
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(rest.contains("signature: missing header webhook-id"), "{rest}");

    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.contains("event-1") && !written.contains("event-2"));
    assert_eq!(signed_handle.metrics().successes, 1);
    assert_eq!(unsigned_handle.metrics().failures, 1);
}

/// A config error names the bad secret by position, never shows it.
#[test]
fn bad_secret_is_a_named_config_error() {
    let err = Endpoint::builder("x", "http://127.0.0.1:9/")
        .signing_secret(NEW)
        .signing_secret("whsec_!!!not-base64-s3cr3t")
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "endpoint \"x\".signing: secrets[1]: secret is not base64 (expected whsec_<base64>)"
    );
}

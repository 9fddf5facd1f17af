//! The debug listener's admin routes on the `registry` binary, run as a real process, against a
//! real receiver: dead letters (memory and durable queues) sent again with the same ids and the
//! same bytes, the deliveries listing failures then success, dead letters on disk across a
//! restart, ping to a receiver and to a refusing address, and the bearer token refusing a
//! missing or wrong one. No secret in any answer.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use support::receiver::by_index;
use support::{free_port, Http, Receiver};

const TOKEN: &str = "adm1n-t0ken";
const SECRET: &str = "s3cret-hook-header";

/// Starts `registry serve` on `config` (which uses `port` and `debug_port`) in `dir`.
async fn start(dir: &std::path::Path, config: &str, port: u16, debug_port: u16) -> support::WithDebug {
    support::start_with_debug(dir, config, port, debug_port).await
}

/// A config with endpoints `memory` and `durable` (its queue in `dir/queue`), both to
/// `receiver`, each event in its own POST; the debug listener on `:debug_port` (loopback) with
/// the token.
fn config(dir: &std::path::Path, receiver: &Receiver, port: u16, debug_port: u16) -> String {
    let endpoints = format!(
        r#"    - name: memory
      url: {url}?ep=memory
      headers:
        X-Hook-Secret: [{SECRET}]
      timeout: 2s
      backoff: 50ms
    - name: durable
      url: {url}?ep=durable
      timeout: 2s
      backoff: 50ms
      queue:
        path: {queue}
"#,
        url = receiver.url(),
        queue = dir.join("queue").display(),
    );
    support::config_with_debug(port, &format!(":{debug_port}"), TOKEN, &endpoints)
}

/// `method path` on the debug listener with `token` (if any); the status and the JSON answer,
/// checked for secrets.
async fn call(debug: &Http, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let r = debug.send(method, path, &headers, Bytes::new()).await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        !text.contains(SECRET) && !text.contains(TOKEN),
        "{path} shows a secret: {text}"
    );
    if r.status == 401 {
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"notifications\"")
        );
    }
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    (r.status.as_u16(), value)
}

async fn admin(debug: &Http, method: &str, path: &str) -> (u16, Value) {
    call(debug, method, path, Some(TOKEN)).await
}

/// Polls `/notifications/status` until endpoint `name`'s `field` is `want`.
async fn wait_field(debug: &Http, name: &str, field: &str, want: u64) -> Value {
    let deadline = tokio::time::Instant::now() + support::HANG_GUARD;
    loop {
        let (_, status) = admin(debug, "GET", "/notifications/status").await;
        let e = status["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone();
        if e[field] == want {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name}.{field} = {want}: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bodies the receiver got for endpoint `ep` (by the query it is sent to), in order.
fn bodies(receiver: &Receiver, ep: &str) -> Vec<Bytes> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| r.uri.query() == Some(&format!("ep={ep}")))
        .map(|r| r.body)
        .collect()
}

/// A receiver that refuses (400, permanent: dead-lettered at once) until `up` is set.
fn refusing_until(up: &Arc<AtomicBool>) -> support::receiver::Behaviour {
    let up = up.clone();
    by_index(move |_, _| if up.load(Ordering::SeqCst) { 200 } else { 400 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_redelivered_with_the_same_ids_and_bytes() {
    let up = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start(refusing_until(&up)).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, debug_port) = (free_port(), free_port());
    let r = start(
        dir.path(),
        &config(dir.path(), &receiver, port, debug_port),
        port,
        debug_port,
    )
    .await;

    // Three pushes, refused: three dead letters per endpoint.
    for blob in [&b"one"[..], b"two", b"three"] {
        r.client.push_blob("admin/app", blob).await;
    }
    for ep in ["memory", "durable"] {
        let status = wait_field(&r.debug, ep, "dead_lettered", 3).await;
        assert_eq!(status["dead_letters_kept"], 3, "{status}");
    }
    let failed = [bodies(&receiver, "memory"), bodies(&receiver, "durable")];
    assert_eq!((failed[0].len(), failed[1].len()), (3, 3));

    // The kept dead letters: the events, the reason, oldest first.
    let (code, kept) = admin(&r.debug, "GET", "/notifications/endpoints/memory/deadletters").await;
    assert_eq!(code, 200);
    let kept = kept["deadletters"].as_array().unwrap().clone();
    assert_eq!(kept.len(), 3);
    for (letter, body) in kept.iter().zip(&failed[0]) {
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(letter["event"], sent["events"][0]);
        assert!(letter["reason"].as_str().unwrap().contains("400"), "{letter}");
        assert_eq!(letter["attempts"], 1);
    }

    // The admin routes refuse a missing or wrong token.
    for token in [None, Some("wrong"), Some("adm1n-t0keN")] {
        for (method, path) in [
            ("POST", "/notifications/endpoints/memory/redeliver"),
            ("POST", "/notifications/endpoints/memory/ping"),
            ("GET", "/notifications/status"),
            ("GET", "/notifications/endpoints/memory/deadletters"),
        ] {
            let (code, _) = call(&r.debug, method, path, token).await;
            assert_eq!(code, 401, "{method} {path} with {token:?}");
        }
    }
    assert_eq!(bodies(&receiver, "memory").len(), 3, "nothing was sent");

    // One event by id, then the rest: each arrives once more, with the same bytes.
    up.store(true, Ordering::SeqCst);
    let id = kept[1]["event"]["id"].as_str().unwrap().to_owned();
    let (code, answer) = admin(
        &r.debug,
        "POST",
        &format!("/notifications/endpoints/memory/redeliver?id={id}"),
    )
    .await;
    assert_eq!((code, answer["redelivered"].as_u64()), (200, Some(1)));
    receiver.wait_requests(7).await;
    assert_eq!(bodies(&receiver, "memory")[3], failed[0][1]);
    for ep in ["memory", "durable"] {
        let (code, answer) = admin(
            &r.debug,
            "POST",
            &format!("/notifications/endpoints/{ep}/redeliver"),
        )
        .await;
        assert_eq!(
            (code, &answer),
            (
                200,
                &serde_json::json!({ "redelivered": if ep == "memory" { 2 } else { 3 } })
            )
        );
    }
    wait_field(&r.debug, "memory", "delivered", 3).await;
    wait_field(&r.debug, "durable", "delivered", 3).await;
    for (i, ep) in ["memory", "durable"].into_iter().enumerate() {
        let again = &bodies(&receiver, ep)[3..];
        let mut want = failed[i].clone();
        let mut got = again.to_vec();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{ep}: every dead letter once more, byte for byte");
        let (_, kept) = admin(
            &r.debug,
            "GET",
            &format!("/notifications/endpoints/{ep}/deadletters"),
        )
        .await;
        assert_eq!(kept["deadletters"], Value::Array(vec![]), "{ep}");
    }
    let (code, answer) = admin(&r.debug, "POST", "/notifications/endpoints/memory/redeliver").await;
    assert_eq!(
        (code, answer["redelivered"].as_u64()),
        (200, Some(0)),
        "nothing left"
    );

    // The deliveries: the failure (given up), then the redelivery (delivered), of one event.
    let (_, list) = admin(&r.debug, "GET", "/notifications/endpoints/memory/deliveries").await;
    let of_id: Vec<&Value> = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event_ids"][0] == id.as_str())
        .collect();
    assert_eq!(of_id.len(), 2, "{list}");
    assert_eq!(
        (of_id[0]["outcome"].as_str(), of_id[0]["status"].as_u64()),
        (Some("giving_up"), Some(400))
    );
    assert_eq!(
        (of_id[1]["outcome"].as_str(), of_id[1]["status"].as_u64()),
        (Some("delivered"), Some(200))
    );

    // Bad requests.
    for (path, code) in [
        ("/notifications/endpoints/nope/redeliver", 404),
        ("/notifications/endpoints/memory/redeliver?since=yesterday", 400),
        (
            "/notifications/endpoints/memory/redeliver?id=a&since=2026-01-01T00:00:00Z",
            400,
        ),
        ("/notifications/endpoints/memory/redeliver?color=red", 400),
    ] {
        assert_eq!(admin(&r.debug, "POST", path).await.0, code, "{path}");
    }
    assert_eq!(
        admin(&r.debug, "GET", "/notifications/endpoints/memory/redeliver")
            .await
            .0,
        405
    );
    let log = r.process.log_tail();
    assert!(!log.contains(SECRET) && !log.contains(TOKEN), "{log}");
}

/// Dead letters of an endpoint with a durable queue are on disk: a restart keeps them, and
/// they can be sent after it. `?since=` selects by the time they were given up on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_dead_letters_survive_a_restart() {
    let up = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start(refusing_until(&up)).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, debug_port) = (free_port(), free_port());
    let config = config(dir.path(), &receiver, port, debug_port);
    let mut r = start(dir.path(), &config, port, debug_port).await;
    r.client.push_blob("admin/keep", b"kept across a restart").await;
    wait_field(&r.debug, "durable", "dead_lettered", 1).await;
    wait_field(&r.debug, "memory", "dead_lettered", 1).await;
    let (_, before) = admin(&r.debug, "GET", "/notifications/endpoints/durable/deadletters").await;
    let status = support::process::terminate(&mut r.process.child).await;
    assert!(status.success(), "{status:?}");
    drop(r);

    let r = start(dir.path(), &config, port, debug_port).await;
    let (_, after) = admin(&r.debug, "GET", "/notifications/endpoints/durable/deadletters").await;
    assert_eq!(after, before, "the durable endpoint's dead letters are back");
    let (_, memory) = admin(&r.debug, "GET", "/notifications/endpoints/memory/deadletters").await;
    assert_eq!(
        memory["deadletters"],
        Value::Array(vec![]),
        "a memory queue's are gone"
    );
    up.store(true, Ordering::SeqCst);
    let at = before["deadletters"][0]["at"].as_str().unwrap().to_owned();
    let (code, answer) = admin(
        &r.debug,
        "POST",
        &format!(
            "/notifications/endpoints/durable/redeliver?since={}",
            at.replace(':', "%3A")
        ),
    )
    .await;
    assert_eq!((code, answer["redelivered"].as_u64()), (200, Some(1)));
    wait_field(&r.debug, "durable", "delivered", 1).await;
    let sent = bodies(&receiver, "durable");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1], sent[0], "the same bytes after the restart");
}

/// Ping: a receiver that accepts gets one `ping` event (signed and with the endpoint's headers
/// like any delivery) and the answer says 200; an address that refuses connections gives 502
/// with the error; both are listed among the deliveries. The debug listener given as `:PORT`
/// is on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_reports_the_outcome() {
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let refused = {
        let closed = Receiver::start(support::receiver::always(200)).await;
        closed.stop()
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, debug_port) = (free_port(), free_port());
    let endpoints = format!(
        r#"    - name: up
      url: {url}
      headers:
        X-Hook-Secret: [{SECRET}]
      signing:
        secrets: [whsec_MDEyMzQ1Njc4OWFiY2RlZg==]
      timeout: 2s
    - name: refusing
      url: http://{refused}/events?token={SECRET}
      timeout: 2s
"#,
        url = receiver.url(),
    );
    let config = support::config_with_debug(port, &format!(":{debug_port}"), TOKEN, &endpoints);
    let r = start(dir.path(), &config, port, debug_port).await;
    let log = r.process.log_tail();
    assert!(
        log.contains(&format!("debug listening on http://127.0.0.1:{}", r.debug_port)),
        "{log}"
    );

    let (code, outcome) = admin(&r.debug, "POST", "/notifications/endpoints/up/ping").await;
    assert_eq!(code, 200, "{outcome}");
    assert_eq!(
        (outcome["ok"].as_bool(), outcome["status"].as_u64()),
        (Some(true), Some(200))
    );
    assert!(outcome["error"].is_null());
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    let event = &got[0].json_events()[0];
    assert_eq!(event["action"], "ping");
    assert_eq!(event["id"], outcome["event_id"]);
    assert_eq!(got[0].headers["x-hook-secret"], SECRET);
    assert!(
        got[0].headers.contains_key("webhook-signature"),
        "signed like a delivery"
    );

    let (code, outcome) = admin(&r.debug, "POST", "/notifications/endpoints/refusing/ping").await;
    assert_eq!(code, 502, "{outcome}");
    assert_eq!(
        (outcome["ok"].as_bool(), outcome["status"].as_u64()),
        (Some(false), None)
    );
    let error = outcome["error"].as_str().unwrap();
    assert!(error.contains("refused") || error.contains("connect"), "{error}");

    for ep in ["up", "refusing"] {
        let (_, list) = admin(
            &r.debug,
            "GET",
            &format!("/notifications/endpoints/{ep}/deliveries"),
        )
        .await;
        let list = list["deliveries"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{ep}: {list:?}");
        assert_eq!(list[0]["outcome"], "ping");
    }
    let (_, status) = admin(&r.debug, "GET", "/notifications/status").await;
    for e in status["endpoints"].as_array().unwrap() {
        assert_eq!(
            (e["delivered"].as_u64(), e["failed"].as_u64()),
            (Some(0), Some(0)),
            "a ping is not a delivery: {e}"
        );
    }
    assert_eq!(
        admin(&r.debug, "POST", "/notifications/endpoints/nope/ping")
            .await
            .0,
        404
    );
    assert_eq!(
        call(&r.debug, "POST", "/notifications/endpoints/up/ping", None)
            .await
            .0,
        401
    );
    assert_eq!(receiver.requests().len(), 1, "a refused ping sends nothing");
    // Health and metrics stay open to probes.
    assert_eq!(r.debug.get("/debug/health").await.status, 200);
}

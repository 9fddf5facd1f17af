//! The harness of `proxy_e2e.rs`: the two event streams (A, the registry's own; B, the
//! proxy's), compared step by step after a barrier, and what sets events apart (barriers, the
//! proxy's lookups).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::skopeo::{self, sorted, Driver};
use crate::support::{Http, Receiver, HANG_GUARD};

pub const LOOKUP_AGENT_PREFIX: &str = "registry-notify-proxy/";

pub fn useragent(e: &Value) -> &str {
    e["request"]["useragent"].as_str().unwrap_or("")
}

pub fn is_barrier(e: &Value) -> bool {
    useragent(e).starts_with("barrier/")
}

pub fn is_lookup(e: &Value) -> bool {
    useragent(e).starts_with(LOOKUP_AGENT_PREFIX)
}

/// Drops what differs by nature (ids, timestamps, `source`); `request.addr` becomes an IP.
pub fn normalise(mut e: Value) -> Value {
    let obj = e.as_object_mut().unwrap();
    obj.remove("id");
    obj.remove("timestamp");
    obj.remove("source");
    let request = obj.get_mut("request").and_then(Value::as_object_mut).unwrap();
    request.remove("id");
    let addr = request.get("addr").and_then(Value::as_str).unwrap_or("");
    let ip = addr
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| addr.parse::<IpAddr>())
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_else(|_| format!("unparsable:{addr}"));
    request.insert("addr".into(), ip.into());
    e
}

/// Derefs to the [`Driver`] of the proxy.
pub struct Env {
    driver: Driver,
    pub a: Receiver,
    pub b: Receiver,
    a_pos: usize,
    pub b_pos: usize,
    barrier: usize,
    barrier_digest: String,
    pub lookups: Vec<(String, Value)>,
    pub failures: Vec<String>,
    pub compared: usize,
    /// `Authorization` sent with the barrier (registries with auth).
    auth: Option<String>,
}

impl std::ops::Deref for Env {
    type Target = Driver;

    fn deref(&self) -> &Driver {
        &self.driver
    }
}

impl Env {
    /// Steps through the proxy at `http` (images built in `work`), A the registry's receiver
    /// and B the proxy's; the barrier is a HEAD of the blob `barrier_digest` in `barrier/blob`
    /// (with `auth`, if given).
    pub fn new(
        http: Http,
        work: PathBuf,
        [a, b]: [Receiver; 2],
        barrier_digest: String,
        auth: Option<&str>,
    ) -> Self {
        Self {
            driver: Driver { http, work },
            a,
            b,
            a_pos: 0,
            b_pos: 0,
            barrier: 0,
            barrier_digest,
            lookups: Vec::new(),
            failures: Vec::new(),
            compared: 0,
            auth: auth.map(str::to_owned),
        }
    }

    /// Ends a step: sends the barrier, waits for it at A and B, and returns A's
    /// events of the step (without barriers and lookups, which are set aside).
    pub async fn end_step(&mut self, name: &str) -> Vec<Value> {
        self.barrier += 1;
        let ua = format!("barrier/{}", self.barrier);
        let path = format!("/v2/barrier/blob/blobs/{}", self.barrier_digest);
        let mut headers = vec![("user-agent", ua.as_str())];
        if let Some(auth) = &self.auth {
            headers.push(("authorization", auth.as_str()));
        }
        let r = self.http.send("HEAD", &path, &headers, "").await;
        assert_eq!(r.status, 200, "barrier HEAD");
        let found = |events: &[Value]| events.iter().position(|e| useragent(e) == ua);
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                if found(&self.a.json_events()).is_some() && found(&self.b.json_events()).is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("step {name}: barrier {ua} did not arrive at both receivers"));
        let all = self.a.json_events();
        let end = found(&all).unwrap();
        let mut step = Vec::new();
        for e in &all[self.a_pos..end] {
            if is_lookup(e) {
                self.lookups.push((name.to_string(), normalise(e.clone())));
            } else if !is_barrier(e) {
                step.push(normalise(e.clone()));
            }
        }
        self.a_pos = end + 1;
        step
    }

    /// B's next `n` events (barriers aside), waiting for late ones (lookups).
    pub async fn b_events(&mut self, n: usize) -> Vec<Value> {
        let ours =
            |r: &Receiver| -> Vec<Value> { r.json_events().into_iter().filter(|e| !is_barrier(e)).collect() };
        let _ = tokio::time::timeout(HANG_GUARD, async {
            while ours(&self.b).len() < self.b_pos + n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let all = ours(&self.b);
        let end = all.len().min(self.b_pos + n);
        let got: Vec<Value> = all[self.b_pos..end].iter().cloned().map(normalise).collect();
        self.b_pos = end;
        got
    }

    /// Compares a step's events at A (after `expect` took out the reference's
    /// known faults) with B's.
    pub async fn compare(&mut self, name: &str, expect: impl FnOnce(Vec<Value>) -> Vec<Value>) -> Vec<Value> {
        let a = self.end_step(name).await;
        let want = expect(a.clone());
        let got = self.b_events(want.len()).await;
        self.compared += want.len();
        let (got, want) = (sorted(got), sorted(want));
        if got != want {
            self.failures.push(format!(
                "step {name}:\n  proxy (B) {}\n  registry (A) {}",
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&want).unwrap()
            ));
        }
        a
    }
}

/// The status of a request sent as curl sends it, its body read as far as it goes: 2.8's
/// 416 declares the blob's length as its `Content-Length` and sends a shorter error text.
pub async fn status_only(base: &str, method: &str, path: &str, header: (&str, &str)) -> u16 {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("user-agent", skopeo::CURL)
        .header(header.0, header.1)
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(HANG_GUARD, client.request(req))
        .await
        .expect("request hung")
        .expect("request failed");
    let status = resp.status().as_u16();
    let _ = tokio::time::timeout(HANG_GUARD, resp.into_body().collect()).await;
    status
}

pub fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_string())
        .collect()
}

//! End to end against the reference: Debian's `skopeo` and curl-level requests
//! drive the example registry wrapped by the layer, with a real HTTP endpoint,
//! and every step's events must equal the envelopes captured from Debian's
//! `docker-registry` 2.8 (tests/fixtures/golden/normalized-events.json), field
//! by field, after normalising ids, timestamps, ports and host names.
//!
//! Deviations are allowed only where README lists them (the reference is
//! wrong or lacks the feature): f13, f22 and g2.

#[allow(unreachable_pub)]
#[path = "support/skopeo.rs"]
mod skopeo;
mod support;

use example_registry::oci;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use registry_notify::endpoint::Endpoint;
use registry_notify::notifications::{Notifications, NotificationsHandle};
use registry_notify::{Format, SourceRecord};
use serde_json::Value;
use skopeo::{build_image, sorted};
use support::{Http, Receiver};

const OCI_M: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

struct Env {
    http: Http,
    port: u16,
    receiver: Receiver,
    handle: NotificationsHandle,
    seen: usize,
    work: PathBuf,
    reg: String,
}

impl Env {
    /// Waits until every event enqueued so far was delivered, then returns
    /// the events that arrived since the last call, normalised.
    async fn take(&mut self) -> Vec<Value> {
        tokio::time::timeout(support::HANG_GUARD, async {
            loop {
                let m = &self.handle.metrics()[0];
                if m.pending == 0 && self.receiver.events().len() as u64 >= m.events {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("events not delivered");
        let posts = self.receiver.posts.lock().unwrap().clone();
        let mut out = Vec::new();
        for (_, body) in &posts[self.seen..] {
            let v: Value = serde_json::from_slice(body).unwrap();
            let events = v["events"].as_array().unwrap();
            assert_eq!(events.len(), 1, "one event per envelope, as Distribution");
            out.push(self.normalise(events[0].clone()));
        }
        self.seen = posts.len();
        out
    }

    fn normalise(&self, e: Value) -> Value {
        skopeo::normalise(e, &[&format!("127.0.0.1:{}", self.port)])
    }

    async fn skopeo(&self, args: &[&str]) {
        skopeo::skopeo(args).await;
    }

    async fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> support::Reply {
        skopeo::curl(&self.http, method, path, headers, body).await
    }

    fn oci(&self, dir: &str, tag: &str) -> String {
        skopeo::oci(&self.work, dir, tag)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_curl_match_distribution_golden_events() {
    let Some(scenario) = skopeo::scenario(&[]).await else {
        return;
    };
    let golden: BTreeMap<String, Vec<Value>> =
        serde_json::from_str(include_str!("fixtures/golden/normalized-events.json")).unwrap();
    let work = scenario.work();
    let img = build_image(&work, "img", &["--tag", "latest"]);
    build_image(&work, "img-index", &["--tag", "multi", "--index"]);
    build_image(&work, "img-refs", &["--variant", "3", "--tag", "latest"]);
    let digest = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap().to_string();
    let (m, cfg, l1, l2) = (
        digest(&img, "/manifest/digest"),
        digest(&img, "/config/digest"),
        digest(&img, "/layers/0/digest"),
        digest(&img, "/layers/1/digest"),
    );

    // One registry storage; two layers over it (the r* steps turn on references,
    // as the reference run restarts with includereferences: true).
    let registry = oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true });
    let (receiver, raddr) = Receiver::start().await;
    let build = |refs: bool| {
        Notifications::builder()
            .source(SourceRecord::local(":5000"))
            .include_references(refs)
            .endpoint(
                Endpoint::builder("golden", format!("http://{raddr}/events"))
                    .header("Authorization", "Bearer test")
                    .format(Format::EventsV1)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let (layer, handle) = build(false);
    let (refs_layer, refs_handle) = build(true);
    // One address, as skopeo's blob-info cache is keyed by it: a switch picks
    // which layer serves, like the reference restarting with another config.
    let with_refs = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (plain, refs) = (
        oci::router(registry.clone()).layer(layer),
        oci::router(registry).layer(refs_layer),
    );
    let switch = with_refs.clone();
    let app = tower::service_fn(move |req: http::Request<axum::body::Body>| {
        let app = if switch.load(std::sync::atomic::Ordering::SeqCst) {
            refs.clone()
        } else {
            plain.clone()
        };
        tower::ServiceExt::oneshot(app, req)
    });
    let addr = support::serve(tower::ServiceExt::map_request(
        app,
        |r: http::Request<hyper::body::Incoming>| r.map(axum::body::Body::new),
    ))
    .await;
    let mut env = Env {
        http: Http::new(addr),
        port: addr.port(),
        receiver,
        handle,
        seen: 0,
        work: work.clone(),
        reg: addr.to_string(),
    };
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");

    let mut results: Vec<(String, Vec<Value>)> = Vec::new();
    macro_rules! step {
        ($name:expr, $body:expr) => {{
            $body;
            let got = env.take().await;
            results.push(($name.to_string(), got));
        }};
    }
    let reg = env.reg.clone();
    let dest = |r: &str| format!("docker://{reg}/{r}");
    let tls = "--dest-tls-verify=false";

    step!("00-ping", env.curl("GET", "/v2/", &[], vec![]).await);
    step!(
        "a-push-latest",
        env.skopeo(&[
            "copy",
            tls,
            &env.oci("img", "latest"),
            &dest("library/test:latest")
        ])
        .await
    );
    step!(
        "b-push-v2",
        env.skopeo(&["copy", tls, &env.oci("img", "latest"), &dest("library/test:v2")])
            .await
    );
    step!(
        "b2-repush-latest",
        env.skopeo(&[
            "copy",
            tls,
            &env.oci("img", "latest"),
            &dest("library/test:latest")
        ])
        .await
    );
    step!(
        "c-copy-other-app",
        env.skopeo(&[
            "copy",
            "--src-tls-verify=false",
            tls,
            &dest("library/test:latest"),
            &dest("other/app:1")
        ])
        .await
    );
    step!(
        "d1-pull",
        env.skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &dest("library/test:latest"),
            &env.oci("pulled", "x")
        ])
        .await
    );
    step!(
        "d2-inspect",
        env.skopeo(&["inspect", "--tls-verify=false", &dest("library/test:latest")])
            .await
    );
    step!(
        "e-delete-by-digest",
        env.skopeo(&[
            "delete",
            "--tls-verify=false",
            &dest(&format!("library/test@{m}"))
        ])
        .await
    );

    let acc = [("accept", ACCEPT_ALL)];
    step!(
        "f01-head-manifest-tag",
        env.curl("HEAD", "/v2/other/app/manifests/1", &acc, vec![]).await
    );
    step!(
        "f02-get-manifest-tag",
        env.curl("GET", "/v2/other/app/manifests/1", &acc, vec![]).await
    );
    step!(
        "f03-head-manifest-digest",
        env.curl("HEAD", &format!("/v2/other/app/manifests/{m}"), &acc, vec![])
            .await
    );
    step!(
        "f04-get-manifest-digest",
        env.curl("GET", &format!("/v2/other/app/manifests/{m}"), &acc, vec![])
            .await
    );
    step!(
        "f05-get-manifest-tag-no-accept",
        env.curl("GET", "/v2/other/app/manifests/1", &[], vec![]).await
    );
    step!(
        "f06-get-manifest-digest-no-accept",
        env.curl("GET", &format!("/v2/other/app/manifests/{m}"), &[], vec![])
            .await
    );
    step!(
        "f07-head-blob",
        env.curl("HEAD", &format!("/v2/other/app/blobs/{l1}"), &[], vec![])
            .await
    );
    step!(
        "f08-get-blob",
        env.curl("GET", &format!("/v2/other/app/blobs/{l1}"), &[], vec![])
            .await
    );
    step!(
        "f09-get-blob-range",
        env.curl(
            "GET",
            &format!("/v2/other/app/blobs/{l1}"),
            &[("range", "bytes=0-9")],
            vec![]
        )
        .await
    );
    step!(
        "f10-get-manifest-missing",
        env.curl("GET", "/v2/other/app/manifests/nope", &acc, vec![])
            .await
    );
    step!(
        "f11-head-blob-missing",
        env.curl(
            "HEAD",
            &format!("/v2/other/app/blobs/sha256:{}", "0".repeat(64)),
            &[],
            vec![]
        )
        .await
    );
    step!("f12-get-deleted-manifest", {
        for r in ["latest", "v2", m.as_str()] {
            assert_eq!(
                env.curl("GET", &format!("/v2/library/test/manifests/{r}"), &acc, vec![])
                    .await
                    .status,
                404
            );
        }
        env.curl("GET", "/v2/library/test/tags/list", &[], vec![]).await;
    });
    let mono = b"monolithic blob\n".to_vec();
    let mono_d = support::sha256(&mono);
    step!(
        "f13-monolithic-upload",
        env.curl(
            "POST",
            &format!("/v2/library/test/blobs/uploads/?digest={mono_d}"),
            &[("content-type", "application/octet-stream")],
            mono.clone()
        )
        .await
    );
    let chunked_d = support::sha256(b"chunk-one|chunk-two\n");
    step!("f14-chunked-upload", {
        let r = env
            .curl("POST", "/v2/library/test/blobs/uploads/", &[], vec![])
            .await;
        let mut u = r.header("location").unwrap().to_string();
        for (range, chunk) in [("0-9", "chunk-one|"), ("10-19", "chunk-two\n")] {
            let r = env
                .curl(
                    "PATCH",
                    &u,
                    &[
                        ("content-type", "application/octet-stream"),
                        ("content-range", range),
                    ],
                    chunk.into(),
                )
                .await;
            u = r.header("location").unwrap().to_string();
        }
        assert_eq!(
            env.curl("PUT", &support::with_digest(&u, &chunked_d), &[], vec![])
                .await
                .status,
            201
        );
    });
    step!("f15-post-then-put-upload", {
        let body = b"post-then-put blob\n".to_vec();
        let d = support::sha256(&body);
        let r = env
            .curl("POST", "/v2/library/test/blobs/uploads/", &[], vec![])
            .await;
        let u = r.header("location").unwrap().to_string();
        env.curl(
            "PUT",
            &support::with_digest(&u, &d),
            &[("content-type", "application/octet-stream")],
            body,
        )
        .await;
    });
    step!(
        "f16-mount-curl",
        env.curl(
            "POST",
            &format!("/v2/curl/repo/blobs/uploads/?mount={l1}&from=other/app"),
            &[],
            vec![]
        )
        .await
    );
    step!("f17-mount-missing-from", {
        let missing = support::sha256(b"never pushed anywhere");
        let r = env
            .curl(
                "POST",
                &format!("/v2/curl/repo/blobs/uploads/?mount={missing}&from=no/such-repo"),
                &[],
                vec![],
            )
            .await;
        let u = r.header("location").unwrap().to_string();
        env.curl("DELETE", &u, &[], vec![]).await;
    });
    step!("f18-mount-rest", {
        env.curl(
            "POST",
            &format!("/v2/curl/repo/blobs/uploads/?mount={l2}&from=other/app"),
            &[],
            vec![],
        )
        .await;
        env.curl(
            "POST",
            &format!("/v2/curl/repo/blobs/uploads/?mount={cfg}&from=other/app"),
            &[],
            vec![],
        )
        .await;
    });
    let manifest = std::fs::read(
        work.join("img/blobs/sha256")
            .join(m.trim_start_matches("sha256:")),
    )
    .unwrap();
    step!(
        "f19-put-manifest-tag",
        env.curl(
            "PUT",
            "/v2/curl/repo/manifests/t1",
            &[("content-type", OCI_M)],
            manifest.clone()
        )
        .await
    );
    step!(
        "f20-put-manifest-digest",
        env.curl(
            "PUT",
            &format!("/v2/curl/repo/manifests/{m}"),
            &[("content-type", OCI_M)],
            manifest.clone()
        )
        .await
    );
    step!("f21-delete-blob-then-head", {
        env.curl(
            "DELETE",
            &format!("/v2/library/test/blobs/{chunked_d}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(
            env.curl(
                "HEAD",
                &format!("/v2/library/test/blobs/{chunked_d}"),
                &[],
                vec![]
            )
            .await
            .status,
            404
        );
    });
    step!(
        "f22-delete-manifest-by-tag",
        env.curl("DELETE", "/v2/other/app/manifests/1", &[], vec![]).await
    );
    step!("f23-catalog-tags", {
        env.curl("GET", "/v2/_catalog", &[], vec![]).await;
        env.curl("GET", "/v2/other/app/tags/list", &[], vec![]).await;
    });
    step!(
        "f24-delete-manifest-curl",
        env.curl("DELETE", &format!("/v2/curl/repo/manifests/{m}"), &[], vec![])
            .await
    );
    step!(
        "g1-push-v2s2",
        env.skopeo(&[
            "copy",
            "--format",
            "v2s2",
            tls,
            &env.oci("img", "latest"),
            &dest("library/dockerfmt:latest")
        ])
        .await
    );
    step!(
        "g2-get-v2s2-no-accept",
        env.curl("GET", "/v2/library/dockerfmt/manifests/latest", &[], vec![])
            .await
    );
    step!(
        "g3-push-index",
        env.skopeo(&[
            "copy",
            "--all",
            tls,
            &env.oci("img-index", "multi"),
            &dest("library/multi:1")
        ])
        .await
    );
    step!(
        "g4-pull-index",
        env.skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &dest("library/multi:1"),
            &env.oci("pulled-multi", "x")
        ])
        .await
    );

    // With references: the second layer over the same storage.
    with_refs.store(true, std::sync::atomic::Ordering::SeqCst);
    env.handle = refs_handle;
    let rdest = dest;
    step!(
        "r1-push-refs",
        env.skopeo(&["copy", tls, &env.oci("img-refs", "latest"), &rdest("refs/img:1")])
            .await
    );
    step!(
        "r2-pull-refs",
        env.curl("GET", "/v2/refs/img/manifests/1", &acc, vec![]).await
    );
    step!(
        "r3-push-index-refs",
        env.skopeo(&[
            "copy",
            "--all",
            tls,
            &env.oci("img-index", "multi"),
            &rdest("refs/multi:1")
        ])
        .await
    );

    // Compare.
    let unordered = [
        "c-copy-other-app",
        "d1-pull",
        "g3-push-index",
        "g4-pull-index",
        "r3-push-index-refs",
    ];
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, got) in results {
        let mut want = golden
            .get(&name)
            .cloned()
            .unwrap_or_else(|| panic!("no golden step {name}"));
        match name.as_str() {
            // README deviations: the reference lacks monolithic POST uploads and
            // DELETE by tag, and down-converts v2s2 to schema1 with an extra blob pull.
            "f13-monolithic-upload" => {
                assert_eq!(got.len(), 1, "f13: one push");
                assert_eq!(got[0]["action"], "push");
                assert_eq!(got[0]["target"]["size"], 16);
                continue;
            }
            "f22-delete-manifest-by-tag" => {
                assert_eq!(got.len(), 1, "f22: one tag delete");
                assert_eq!(
                    got[0]["target"],
                    serde_json::json!({"repository": "other/app", "tag": "1"})
                );
                continue;
            }
            "g2-get-v2s2-no-accept" => want.truncate(1),
            _ => {}
        }
        let (got, want) = if unordered.contains(&name.as_str()) {
            (sorted(got), sorted(want))
        } else {
            (got, want)
        };
        compared += want.len();
        if got != want {
            failures.push(format!(
                "step {name}:\n  got  {}\n  want {}",
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&want).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} step(s) differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared > 60, "compared {compared} events");
}

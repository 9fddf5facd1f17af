//! The proxy example in front of Debian's `docker-registry` 2.8: the events the
//! proxy derives from the traffic passing through equal, field by field, the
//! events the Go registry emits itself.
//!
//! Two real processes on 127.0.0.1: `docker-registry` (own storage, deletes
//! enabled) delivering its own notifications to receiver A, and the proxy
//! example (`proxy serve cfg.yml`) in front of it delivering to receiver B, both
//! in the `events.v1` envelope. Debian's `skopeo` and curl-level requests go
//! through the proxy. Per step, A's and B's events are compared after dropping
//! event ids, request ids, timestamps and `source`, with `request.addr` compared
//! as an IP (the Go registry reports the first `X-Forwarded-For` entry the proxy
//! adds, without a port; the layer reports the client's `ip:port`).
//!
//! Two kinds of A events are set apart, as README explains:
//! - the reference's known faults (a `pull` on a 404, step f05);
//! - pulls caused by the layer's own lookups through the proxy
//!   (`User-Agent: registry-notify-proxy/… (lookup)`). Only the tag scan before
//!   a delete by digest remains (a `HEAD` of each tag); sizes of committed and
//!   mounted blobs come from what the layer saw pass by.
//!
//! Steps are separated by a barrier: a HEAD of a known blob with a
//! step-specific `User-Agent`, whose pull event marks the end of the step in
//! both streams (each endpoint delivers in order).

mod support;
/// This test's own modules (tests/proxy_e2e/).
mod proxy_e2e {
    pub mod env;
}

use proxy_e2e::env::{actions, is_barrier, is_lookup, status_only, Env};
use serde_json::Value;
use support::receiver::always;
use support::registries::{start_docker_registry, start_docker_registry_with, start_proxy};
use support::skopeo::{self, build_image};
use support::{Http, Receiver};

const OCI_M: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_events_equal_docker_registry_events() {
    let Some(scenario) = skopeo::scenario(&["docker-registry"]).await else {
        return;
    };
    let work = scenario.work();
    let img = build_image(&work, "img", &["--tag", "latest"]);
    build_image(&work, "img-index", &["--tag", "multi", "--index"]);
    let digest = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap().to_string();
    let (m, cfg, l1, l2) = (
        digest(&img, "/manifest/digest"),
        digest(&img, "/config/digest"),
        digest(&img, "/layers/0/digest"),
        digest(&img, "/layers/1/digest"),
    );

    let (a, b) = (
        Receiver::start(always(200)).await,
        Receiver::start(always(200)).await,
    );
    let b_url = b.url();
    let registry = start_docker_registry(&work, Some(&a.url())).await;
    let proxy = start_proxy(
        &work,
        registry.addr,
        &format!(
            r#"notifications:
  endpoints:
    - name: proxy
      url: {b_url}
      format: events.v1
      headers:
        Authorization: [Bearer test]
      timeout: 2s
"#
        ),
    )
    .await;

    let http = Http::new(proxy.addr);
    let barrier_digest = http.push_blob("barrier/blob", b"barrier blob\n").await;
    let mut env = Env::new(http, work.clone(), [a, b], barrier_digest, None);
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
    let same = |a: Vec<Value>| a;
    let tls = "--dest-tls-verify=false";

    let got = env.compare("setup-barrier-blob", same).await;
    assert_eq!(actions(&got), ["push"], "the barrier blob push");

    env.skopeo(&[
        "copy",
        tls,
        &env.oci("img", "latest"),
        &env.docker("library/test:latest"),
    ])
    .await;
    let got = env.compare("a-push-latest", same).await;
    assert_eq!(actions(&got), ["push"; 4]);

    env.skopeo(&[
        "copy",
        tls,
        &env.oci("img", "latest"),
        &env.docker("library/test:v2"),
    ])
    .await;
    env.compare("b-push-v2", same).await;

    env.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        tls,
        &env.docker("library/test:latest"),
        &env.docker("other/app:1"),
    ])
    .await;
    let got = env.compare("c-copy-other-app", same).await;
    assert!(
        actions(&got).iter().any(|a| a == "mount"),
        "c: skopeo mounted across repositories: {got:?}"
    );

    env.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &env.docker("library/test:latest"),
        &env.oci("pulled", "x"),
    ])
    .await;
    env.compare("d1-pull", same).await;

    env.skopeo(&[
        "inspect",
        "--tls-verify=false",
        &env.docker("library/test:latest"),
    ])
    .await;
    env.compare("d2-inspect", same).await;

    env.skopeo(&[
        "delete",
        "--tls-verify=false",
        &env.docker(&format!("library/test@{m}")),
    ])
    .await;
    let got = env.compare("e-delete-by-digest", same).await;
    assert_eq!(
        actions(&got),
        ["pull", "delete", "delete", "delete"],
        "e: the manifest and its two tags"
    );

    let acc = [("accept", ACCEPT_ALL)];
    env.curl("HEAD", "/v2/other/app/manifests/1", &acc, vec![]).await;
    env.compare("f01-head-manifest-tag", same).await;

    // Known fault of the reference: a pull event for a 404 (OCI manifest, Accept without OCI types).
    let r = env.curl("GET", "/v2/other/app/manifests/1", &[], vec![]).await;
    assert_eq!(r.status, 404);
    env.compare("f05-get-manifest-tag-no-accept", |a| {
        assert_eq!(actions(&a), ["pull"], "f05: the reference's pull on a 404");
        Vec::new()
    })
    .await;

    let r = env
        .curl(
            "GET",
            &format!("/v2/other/app/blobs/{l1}"),
            &[("range", "bytes=0-9")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 10);
    env.compare("f09-get-blob-range", same).await;

    // Edge statuses of blob reads: Distribution emits a pull, with the blob's full size, for
    // an unsatisfiable range (416, GET and HEAD), a malformed one (416 without Content-Range),
    // several ranges (206 multipart, no Content-Range) and a matching If-None-Match (304).
    let blob = format!("/v2/other/app/blobs/{l1}");
    for (step, method, header, status) in [
        (
            "f09b-get-blob-416",
            "GET",
            ("range", "bytes=100000-200000".to_string()),
            416,
        ),
        (
            "f09c-head-blob-416",
            "HEAD",
            ("range", "bytes=100000-200000".to_string()),
            416,
        ),
        (
            "f09d-get-blob-bad-range",
            "GET",
            ("range", "bytes=abc".to_string()),
            416,
        ),
        (
            "f09e-get-blob-ranges",
            "GET",
            ("range", "bytes=0-1,3-4".to_string()),
            206,
        ),
        (
            "f09f-get-blob-304",
            "GET",
            ("if-none-match", format!("\"{l1}\"")),
            304,
        ),
    ] {
        let got = status_only(&env.http.base, method, &blob, (header.0, &header.1)).await;
        assert_eq!(got, status, "{step}");
        let got = env.compare(step, same).await;
        assert_eq!(actions(&got), ["pull"], "{step}");
    }

    let chunked = support::sha256(b"chunk-one|chunk-two\n");
    {
        let r = env
            .curl("POST", "/v2/library/test/blobs/uploads/", &[], vec![])
            .await;
        assert_eq!(r.status, 202);
        let mut u = r.header("location").unwrap().to_string();
        assert!(
            u.starts_with(&format!("{}/", env.http.base)),
            "Location points at the proxy: {u}"
        );
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
            assert_eq!(r.status, 202);
            u = r.header("location").unwrap().to_string();
        }
        let r = env
            .curl("PUT", &support::with_digest(&u, &chunked), &[], vec![])
            .await;
        assert_eq!(r.status, 201);
    }
    let got = env.compare("f14-chunked-upload", same).await;
    assert_eq!(got[0]["target"]["size"], 20);

    env.curl(
        "POST",
        &format!("/v2/curl/repo/blobs/uploads/?mount={l1}&from=other/app"),
        &[],
        vec![],
    )
    .await;
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
    let got = env.compare("f16-mount-curl", same).await;
    assert_eq!(actions(&got), ["mount"; 3]);

    let manifest = std::fs::read(
        work.join("img/blobs/sha256")
            .join(m.trim_start_matches("sha256:")),
    )
    .unwrap();
    env.curl(
        "PUT",
        "/v2/curl/repo/manifests/t1",
        &[("content-type", OCI_M)],
        manifest,
    )
    .await;
    env.compare("f19-put-manifest-tag", same).await;

    env.curl(
        "DELETE",
        &format!("/v2/library/test/blobs/{chunked}"),
        &[],
        vec![],
    )
    .await;
    env.compare("f21-delete-blob", same).await;

    // 2.8 answers 400 to a delete by tag: no event on either side.
    let r = env.curl("DELETE", "/v2/other/app/manifests/1", &[], vec![]).await;
    assert_eq!(r.status, 400);
    env.compare("f22-delete-manifest-by-tag", same).await;

    env.skopeo(&[
        "copy",
        "--all",
        tls,
        &env.oci("img-index", "multi"),
        &env.docker("library/multi:1"),
    ])
    .await;
    let got = env.compare("g3-push-index", same).await;
    assert!(
        got.iter()
            .any(|e| e["target"]["mediaType"] == "application/vnd.oci.image.index.v1+json"),
        "g3: the index push"
    );

    env.skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &env.docker("library/multi:1"),
        &env.oci("pulled-multi", "x"),
    ])
    .await;
    env.compare("g4-pull-index", same).await;

    // `request.addr`: the reference takes the first X-Forwarded-For entry (an IP,
    // no port); the layer reports the client's ip:port.
    for e in env.a.json_events().iter().filter(|e| !is_lookup(e)) {
        assert_eq!(e["request"]["addr"], "127.0.0.1", "{e}");
    }
    for e in env.b.json_events() {
        let addr = e["request"]["addr"].as_str().unwrap_or("");
        assert!(addr.parse::<std::net::SocketAddr>().is_ok(), "{addr}");
    }

    // Nothing arrives at B beyond what was compared.
    env.end_step("final").await;
    let extra: Vec<Value> = env
        .b
        .json_events()
        .into_iter()
        .filter(|e| !is_barrier(e))
        .skip(env.b_pos)
        .collect();
    assert!(extra.is_empty(), "B got events A did not: {extra:#?}");

    // The layer's lookups through the proxy reach A, which reports them: only
    // the tag scan before the delete by digest is left (HEAD of each tag), since
    // blob sizes and upload progress are remembered from the traffic.
    let lookups: Vec<String> = env
        .lookups
        .iter()
        .map(|(step, e)| {
            format!(
                "{step}: {} {} {}:{}",
                e["action"].as_str().unwrap_or(""),
                e["request"]["method"].as_str().unwrap_or(""),
                e["target"]["repository"].as_str().unwrap_or(""),
                e["target"]["tag"].as_str().unwrap_or("")
            )
        })
        .collect();
    eprintln!(
        "compared {} events; lookups reported by the reference: {lookups:?}",
        env.compared
    );
    let mut lookups = lookups;
    lookups.sort();
    assert_eq!(
        lookups,
        [
            "e-delete-by-digest: pull HEAD library/test:latest",
            "e-delete-by-digest: pull HEAD library/test:v2"
        ],
        "the only lookups: the tags of the deleted manifest"
    );
    assert!(
        env.failures.is_empty(),
        "{} step(s) differ between the proxy and docker-registry:\n{}\n--- proxy log ---\n{}",
        env.failures.len(),
        env.failures.join("\n"),
        proxy.log_tail()
    );
    assert!(env.compared > 40, "compared {} events", env.compared);
    drop(registry);
}

/// One upload's requests split over two proxy instances (as a load balancer may
/// do): the commit's size comes from the session's status at the registry, not
/// from what the committing instance happened to see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_split_across_two_proxies_reports_the_full_size() {
    if support::require_tool("docker-registry").is_none() {
        return;
    }
    let (a, b) = (
        Receiver::start(always(200)).await,
        Receiver::start(always(200)).await,
    );
    let b_url = b.url();
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let registry = start_docker_registry(dirs[0].path(), Some(&a.url())).await;
    let notify = format!(
        "notifications:\n  endpoints:\n    - name: proxy\n      url: {b_url}\n      format: events.v1\n"
    );
    let one = start_proxy(dirs[1].path(), registry.addr, &notify).await;
    let two = start_proxy(dirs[2].path(), registry.addr, &notify).await;
    let (c1, c2) = (Http::new(one.addr), Http::new(two.addr));

    // POST and the final PUT through the first proxy, the PATCH through the second.
    let r = c1.send("POST", "/v2/split/repo/blobs/uploads/", &[], "").await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();
    let path = loc
        .split_once(&one.addr.to_string())
        .map(|(_, p)| p.to_string())
        .unwrap();
    let r = c2
        .send(
            "PATCH",
            &path,
            &[("content-type", "application/octet-stream")],
            "0123456789abcdefghij",
        )
        .await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();
    let path = loc
        .split_once(&two.addr.to_string())
        .map(|(_, p)| p.to_string())
        .unwrap();
    let digest = support::sha256(b"0123456789abcdefghij");
    let r = c1
        .send("PUT", &support::with_digest(&path, &digest), &[], "")
        .await;
    assert_eq!(r.status, 201);

    let got = b.wait_events(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].action, got[0].target.descriptor.size),
        (registry_notify::Action::Push, 20)
    );
    let reference = a.wait_events(1).await;
    assert_eq!(reference[0].target.descriptor.size, 20);
    // The status lookup is no event at the registry: it reported only the push.
    assert_eq!(a.events().len(), 1, "{:?}", a.events());
}

/// `alice` / `s3cret` (bcrypt, cost 4), for the registry's htpasswd auth.
const HTPASSWD: &str = "alice:$2b$04$9sUD9cZ8Ap8hRgtQCihjeefe19gvkTrzEYTGGVaA9R9ze1Azjvtgq\n";

/// With htpasswd auth at the registry: the challenge reaches the client through
/// the proxy, skopeo authenticates through it, the lookups pass the auth with
/// the client's credentials, and both sides name the same actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_registry_auth_challenges_pass_and_actors_match() {
    let Some(scenario) = skopeo::scenario(&["docker-registry"]).await else {
        return;
    };
    let work = scenario.work();
    let img = build_image(&work, "img", &["--variant", "5", "--tag", "latest"]);
    let m = img
        .pointer("/manifest/digest")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    std::fs::write(work.join("htpasswd"), HTPASSWD).unwrap();
    let (a, b) = (
        Receiver::start(always(200)).await,
        Receiver::start(always(200)).await,
    );
    let b_url = b.url();
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
        work.join("htpasswd").display()
    );
    let registry = start_docker_registry_with(&work, Some(&a.url()), &auth).await;
    let proxy = start_proxy(
        &work,
        registry.addr,
        &format!(
            "notifications:\n  endpoints:\n    - name: proxy\n      url: {b_url}\n      format: events.v1\n"
        ),
    )
    .await;
    let http = Http::new(proxy.addr);

    // The challenge passes through unchanged.
    let r = http.get("/v2/").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(r#"Basic realm="test-realm""#));
    let basic = "Basic YWxpY2U6czNjcmV0"; // alice:s3cret
    assert_eq!(
        http.send("GET", "/v2/", &[("authorization", basic)], "")
            .await
            .status,
        200
    );

    // The barrier blob, with credentials.
    let data = b"barrier blob\n".to_vec();
    let barrier_digest = support::sha256(&data);
    let r = http
        .send(
            "POST",
            "/v2/barrier/blob/blobs/uploads/",
            &[("authorization", basic)],
            "",
        )
        .await;
    assert_eq!(r.status, 202);
    let loc = support::with_digest(r.header("location").unwrap(), &barrier_digest);
    let r = http.send("PUT", &loc, &[("authorization", basic)], data).await;
    assert_eq!(r.status, 201);

    let mut env = Env::new(http, work.clone(), [a, b], barrier_digest, Some(basic));
    let same = |a: Vec<Value>| a;
    env.compare("setup-barrier-blob", same).await;

    env.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &env.oci("img", "latest"),
        &env.docker("auth/test:latest"),
    ])
    .await;
    let got = env.compare("push-with-creds", same).await;
    assert_eq!(actions(&got), ["push"; 4]);
    assert!(
        got.iter().all(|e| e["actor"]["name"] == "alice"),
        "the reference names the user: {got:?}"
    );

    env.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "alice:s3cret",
        &env.docker("auth/test:latest"),
        &env.oci("pulled", "x"),
    ])
    .await;
    env.compare("pull-with-creds", same).await;

    env.skopeo(&[
        "delete",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        &env.docker(&format!("auth/test@{m}")),
    ])
    .await;
    let got = env.compare("delete-with-creds", same).await;
    assert_eq!(
        actions(&got),
        ["pull", "delete", "delete"],
        "the manifest and its tag, found by a lookup with the client's credentials"
    );

    assert!(
        env.failures.is_empty(),
        "{} step(s) differ between the proxy and docker-registry:\n{}",
        env.failures.len(),
        env.failures.join("\n")
    );
    drop(registry);
}

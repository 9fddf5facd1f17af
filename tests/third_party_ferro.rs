//! Drop-in on a registry nobody here wrote: ferro-oci-server 1.0 (an axum OCI registry on
//! crates.io, in-memory storage), wrapped exactly as README.md's "With axum" snippet shows
//! (`readme_main`, held equal to README by `readme_snippet_is_what_the_test_runs`), replays
//! the golden skopeo scenario (`support::golden::run`; needs skopeo and python3 on PATH).
//! Each step's events, delivered to a real webhook receiver, must equal those Distribution 2.8
//! emitted (tests/fixtures/golden/normalized-events.json) field by field, except where ferro
//! behaves differently as a registry: `DEVIATIONS` lists each such event and why.
//!
//! A counting middleware around ferro's router (inside the layer) tells the client's requests
//! from the layer's own lookups (those carry no `ConnectInfo`); `check_lookups` prints them
//! per step and holds them to what README promises.
#![cfg(feature = "axum")]

mod support;
/// This test's own modules (tests/third_party_ferro/).
mod third_party_ferro {
    pub mod golden_diff;
}

use std::collections::BTreeMap;
use std::{net::SocketAddr, time::Duration};

use axum::{body::Body, extract::Request, response::Response, ServiceExt};
use registry_notify::layer::ResponseBody;
use registry_notify::notifications::NotificationsHandle;
use registry_notify::{endpoint::Endpoint, notifications::Notifications, SourceRecord};
use support::golden::{self, App, Counter, Env};
use support::{skopeo, Http, Receiver};
use third_party_ferro::golden_diff::{self, Deviation};
use tokio::sync::oneshot;

/// ferro-oci-server's own application over in-memory storage, exactly what its binary serves
/// without `FERRO_OCI_STORAGE_DIR` (`/v2/**`, health probes, `/metrics`).
fn ferro_registry() -> axum::Router {
    let store = ferro_oci_server::Config::from_raw(None, None)
        .blob_store()
        .expect("in-memory blob store");
    ferro_oci_server::build_app(store)
}

/// README.md's "With axum" `main`, line for line between the markers
/// (`readme_snippet_is_what_the_test_runs` holds them equal): serves `registry` with its
/// endpoint posting to `events_url`, and tells `ready` its address and handle. Lines marked
/// `(test)` are the test's own.
async fn readme_main(
    registry: axum::Router,
    events_url: String,
    refs: bool,
    ready: oneshot::Sender<(SocketAddr, NotificationsHandle)>,
) -> Result<(), Box<dyn std::error::Error>> {
    // README:begin
    let (notify, handle) = Notifications::builder()
        .source(SourceRecord::local("127.0.0.1:5000"))
        .endpoint(
            Endpoint::builder("audit", events_url)
                .header("Authorization", "Bearer s3cret")
                .timeout(Duration::from_secs(2))
                .build()?,
        )
        .build()?;
    let notify = notify.include_references(refs); // (test)

    // The whole registry is wrapped, as one service in front of its router: the layer can ask
    // it for what an exchange does not show, and a request costs the least.
    let app = tower::ServiceBuilder::new()
        .map_response(|r: Response<ResponseBody<Body>>| r.map(Body::new))
        .layer(notify)
        .service(registry);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let _ = ready.send((listener.local_addr()?, handle.clone())); // (test)
    let app = ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
    axum::serve(listener, app).await?;
    handle.shutdown(Duration::from_secs(5)).await;
    Ok(())
    // README:end
}

/// Starts [`readme_main`] on its own task; its address and handle.
async fn readme_app(
    registry: axum::Router,
    events_url: &str,
    refs: bool,
) -> (SocketAddr, NotificationsHandle) {
    let (tx, rx) = oneshot::channel();
    let url = events_url.to_string();
    tokio::spawn(async move {
        if let Err(e) = readme_main(registry, url, refs, tx).await {
            panic!("README's app failed: {e}");
        }
    });
    rx.await.expect("README's app did not start")
}

/// Where ferro, as a registry, differs from Distribution 2.8 in a way that changes the events
/// (each listed event written as by `golden_diff::key`). Differences that leave the events
/// alone: ferro answers a DELETE of a manifest by tag with 405 (2.8: 400; neither emits an
/// event, f22), and serves a manifest whatever the `Accept` (f05/f06: 2.8 answers 404 yet
/// emits the pull, so the events agree).
const DEVIATIONS: &[Deviation] = &[
    Deviation {
        step: "c-copy-other-app",
        golden_only: &[
            "mount POST other/app l1 from library/test",
            "mount POST other/app l2 from library/test",
            "pull HEAD library/test l1",
            "pull HEAD library/test l2",
            "push PUT other/app cfg",
        ],
        ours_only: &[
            "pull HEAD other/app cfg",
            "pull HEAD other/app l1",
            "pull HEAD other/app l2",
        ],
        reason: GLOBAL_BLOBS,
    },
    Deviation {
        step: "f13-monolithic-upload",
        golden_only: &[],
        ours_only: &["push POST library/test mono"],
        reason: "Distribution 2.8 ignores a monolithic POST's body (202, no event: README deviation f13); \
                 ferro stores the blob (201) and the layer emits its push",
    },
    Deviation {
        step: "f16-mount-curl",
        golden_only: &["mount POST curl/repo l1 from other/app"],
        ours_only: &[],
        reason: NO_MOUNT,
    },
    Deviation {
        step: "f18-mount-rest",
        golden_only: &[
            "mount POST curl/repo cfg from other/app",
            "mount POST curl/repo l2 from other/app",
        ],
        ours_only: &[],
        reason: NO_MOUNT,
    },
    Deviation {
        step: "g1-push-v2s2",
        golden_only: &[
            "mount POST library/dockerfmt l1 from library/test",
            "mount POST library/dockerfmt l2 from library/test",
            "pull HEAD library/test l1",
            "pull HEAD library/test l2",
            "push PUT library/dockerfmt cfg",
        ],
        ours_only: &[
            "pull HEAD library/dockerfmt cfg",
            "pull HEAD library/dockerfmt l1",
            "pull HEAD library/dockerfmt l2",
        ],
        reason: GLOBAL_BLOBS,
    },
    Deviation {
        step: "g2-get-v2s2-no-accept",
        golden_only: &["pull GET library/dockerfmt cfg"],
        ours_only: &[],
        reason: "Distribution 2.8 down-converts the manifest to schema1 for a client without Accept and \
                 reads the config blob as it does (an extra pull: README deviation g2); ferro serves the \
                 stored manifest",
    },
    Deviation {
        step: "g3-push-index",
        golden_only: &[
            "mount POST library/multi l1 from library/dockerfmt",
            "mount POST library/multi l2 from library/dockerfmt",
            "pull HEAD library/dockerfmt l1",
            "pull HEAD library/dockerfmt l2",
            "push PUT library/multi cfg",
        ],
        ours_only: &[
            "pull HEAD library/multi cfg",
            "pull HEAD library/multi l1",
            "pull HEAD library/multi l2",
        ],
        reason: GLOBAL_BLOBS,
    },
    Deviation {
        step: "r3-push-index-refs",
        golden_only: &[
            "mount POST refs/multi l1 from library/multi",
            "mount POST refs/multi l2 from library/multi",
            "pull HEAD library/multi l1",
            "pull HEAD library/multi l2",
            "push PUT refs/multi cfg",
        ],
        ours_only: &[
            "pull HEAD refs/multi cfg",
            "pull HEAD refs/multi l1",
            "pull HEAD refs/multi l2",
        ],
        reason: GLOBAL_BLOBS,
    },
];

const GLOBAL_BLOBS: &str = "ferro keeps one content-addressed blob store for all repositories (no \
    per-repository links): a HEAD of a blob in a repository that never received it answers 200, so \
    skopeo reuses the blob there (a pull by HEAD in the destination), where Distribution answers 404 \
    and skopeo mounts the blob from the source repository (after a HEAD there) or pushes it";

const NO_MOUNT: &str = "ferro has no cross-repository mount: POST ?mount=&from= answers 202 with a new \
    upload session (the spec's fallback), which is no event; Distribution answers 201 and emits a mount";

/// README lines the test writes differently: (the test's, README's).
const README_SUBSTITUTIONS: [(&str, &str); 2] = [
    (
        r#"Endpoint::builder("audit", events_url)"#,
        r#"Endpoint::builder("audit", "http://127.0.0.1:5055/events")"#,
    ),
    (
        r#"TcpListener::bind("127.0.0.1:0")"#,
        r#"TcpListener::bind("127.0.0.1:5000")"#,
    ),
];

/// `readme_main` is README.md's "With axum" `main`: from `Notifications::builder()` to
/// `Ok(())`, the same lines in the same order, but for the receiver's URL, the port, the
/// registry (the function's argument), and the lines marked `(test)`.
#[test]
fn readme_snippet_is_what_the_test_runs() {
    let lines = |text: &'static str| text.lines().map(str::trim).filter(|l| !l.is_empty());
    let readme: Vec<&str> = lines(include_str!("../README.md"))
        .skip_while(|l| *l != "## With axum")
        .skip_while(|l| !l.starts_with("let (notify, handle) = Notifications::builder()"))
        .take_while(|l| *l != "}")
        .filter(|l| *l != "let registry = axum::Router::new(); // your registry's routes")
        .collect();
    assert_eq!(readme.last(), Some(&"Ok(())"), "{readme:#?}");
    let ours: Vec<String> = lines(include_str!("third_party_ferro.rs"))
        .skip_while(|l| *l != "// README:begin")
        .skip(1)
        .take_while(|l| *l != "// README:end")
        .filter(|l| !l.ends_with("// (test)"))
        .map(|l| {
            README_SUBSTITUTIONS
                .iter()
                .fold(l.to_string(), |l, (test, readme)| l.replace(test, readme))
        })
        .collect();
    assert_eq!(
        ours, readme,
        "README's axum snippet and the app this test runs drifted apart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferro_wrapped_as_readme_shows_matches_distribution_golden_events() {
    let Some(scenario) = skopeo::scenario(&[]).await else {
        return;
    };
    let golden = golden::capture();
    let work = scenario.work();
    let img = golden::build_images(&work);
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let url = receiver.url();
    let counter = Counter::default();
    // One ferro storage behind two apps: the second turns on references for the r* steps,
    // as the reference was restarted with `includereferences: true`.
    let registry = ferro_registry();
    let mut apps = Vec::new();
    for refs in [false, true] {
        let (addr, handle) = readme_app(counter.wrap(registry.clone()), &url, refs).await;
        apps.push(App {
            http: Http::new(addr),
            handle,
        });
    }
    let mut env = Env::new(apps, receiver, work).counted(counter).events_v2();
    golden::run(&mut env, &img).await;

    // The envelopes are those of README's endpoint.
    for request in env.receiver.requests() {
        assert_eq!(request.headers["authorization"], "Bearer s3cret");
        assert_eq!(
            request.headers["content-type"],
            registry_notify::event::EVENTS_V2_MEDIA_TYPE
        );
    }
    let delivered: u64 = env
        .apps
        .iter()
        .flat_map(|a| a.handle.metrics())
        .map(|m| m.delivered)
        .sum();

    // Events, field by field.
    let names = digest_names(&img);
    let outcome = golden_diff::compare(&env.steps, &golden, DEVIATIONS, &names);
    eprintln!(
        "ferro behind the layer: {} of {} golden events matched field by field; {} events emitted, {} delivered",
        outcome.matched, outcome.golden_total, outcome.ours_total, delivered
    );
    for d in DEVIATIONS {
        eprintln!(
            "  deviation {}: only Distribution {:?}, only ferro {:?}: {}",
            d.step, d.golden_only, d.ours_only, d.reason
        );
    }
    assert!(
        outcome.unexpected.is_empty(),
        "{} step(s) differ from the reference beyond the listed deviations:\n{}",
        outcome.unexpected.len(),
        outcome.unexpected.join("\n")
    );
    assert_eq!(delivered as usize, outcome.ours_total);
    // Every event of the reference is matched or listed as ferro's doing, and so is ours.
    let listed = |f: fn(&Deviation) -> usize| DEVIATIONS.iter().map(f).sum::<usize>();
    assert_eq!(
        outcome.matched + listed(|d| d.golden_only.len()),
        outcome.golden_total
    );
    assert_eq!(
        outcome.matched + listed(|d| d.ours_only.len()),
        outcome.ours_total
    );
    assert!(outcome.matched > 50, "{outcome:?}");
    // The one event whose digest the reference never names: f13's monolithic upload.
    assert_eq!(
        outcome.unchecked,
        ["f13-monolithic-upload: push POST library/test mono"]
    );
    let f13 = &env
        .steps
        .iter()
        .find(|s| s.name == "f13-monolithic-upload")
        .unwrap()
        .events[0];
    let mono = support::sha256(b"monolithic blob\n");
    assert_eq!(
        f13["target"],
        serde_json::json!({
            "mediaType": "application/octet-stream", "size": 16, "length": 16, "digest": mono,
            "repository": "library/test",
            "url": format!("http://127.0.0.1:5000/v2/library/test/blobs/{mono}"),
        })
    );

    check_lookups(&env.steps);
}

/// Reports the requests that reached ferro (the client's and the layer's lookups) and holds
/// the lookups to what README promises: none for pulls, pushes of manifests, blob deletes or
/// mounts; the tag scan before a delete by digest (`GET tags/list`, then a `HEAD` of each tag);
/// the status of an upload session before its final `PUT` (`GET` of the session).
fn check_lookups(steps: &[golden::Step]) {
    let mut total = golden::Counts::default();
    for step in steps {
        let c = &step.counts;
        total.add(c);
        if c.lookup_total() > 0 {
            eprintln!(
                "  lookups in {}: {:?} (client: {:?})",
                step.name, c.lookups, c.client
            );
        }
        let deletes = c.client_of("DELETE manifest(digest)");
        assert_eq!(
            c.lookups_of("GET tags/list"),
            deletes,
            "{}: one tag scan per delete by digest",
            step.name
        );
        // Here every tag of the repository points at the manifest deleted: one HEAD per tag
        // deleted.
        let tag_deletes = step
            .events
            .iter()
            .filter(|e| e["action"] == "delete" && e["target"]["tag"].is_string())
            .count() as u64;
        assert_eq!(c.lookups_of("HEAD manifest(tag)"), tag_deletes, "{}", step.name);
        assert!(
            c.lookups_of("GET upload") <= c.client_of("PUT upload"),
            "{}: {c:?}",
            step.name
        );
        let known =
            c.lookups_of("GET tags/list") + c.lookups_of("HEAD manifest(tag)") + c.lookups_of("GET upload");
        assert_eq!(
            c.lookup_total(),
            known,
            "{}: unexpected lookups {:?}",
            step.name,
            c.lookups
        );
    }
    let client: u64 = total.client.values().sum();
    eprintln!(
        "requests reaching ferro: {client} from clients, {} lookups {:?}",
        total.lookup_total(),
        total.lookups
    );
    eprintln!("  client requests by kind: {:?}", total.client);
    let (deletes, puts) = (
        total.client_of("DELETE manifest(digest)"),
        total.client_of("PUT upload"),
    );
    let pulls: u64 = ["GET manifest(tag)", "GET manifest(digest)", "GET blob"]
        .iter()
        .map(|k| total.client_of(k))
        .sum();
    eprintln!(
        "  lookups per client request kind: DELETE manifest(digest) x{deletes} -> {} GET tags/list + {} \
         HEAD manifest(tag) (the tag scan); PUT upload x{puts} -> {} GET upload (the session's status); \
         the other {} requests (among them {pulls} pulls by GET) -> none",
        total.lookups_of("GET tags/list"),
        total.lookups_of("HEAD manifest(tag)"),
        total.lookups_of("GET upload"),
        client - deletes - puts,
    );
    assert!(pulls > 0 && deletes > 0 && puts > 0, "{total:?}");
}

/// The scenario's digests by name, for the deviation table.
fn digest_names(img: &golden::Images) -> BTreeMap<String, String> {
    let mono = support::sha256(b"monolithic blob\n");
    [
        (&img.m, "m"),
        (&img.cfg, "cfg"),
        (&img.l1, "l1"),
        (&img.l2, "l2"),
        (&mono, "mono"),
    ]
    .into_iter()
    .map(|(d, n)| (d.clone(), n.to_string()))
    .collect()
}

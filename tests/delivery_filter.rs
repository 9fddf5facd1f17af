//! The endpoint filter: Distribution's TestIgnoredSink plus repository and method rules.

mod support;

use std::sync::Arc;
use std::time::Duration;

use registry_notify::endpoint::Endpoint;
use registry_notify::filter::{EventFilterLayer, FilterRules};
use registry_notify::metrics::EndpointMetrics;
use registry_notify::{Action, Batch, Event, Target};
use support::sinks::Collector;
use tower::{Layer, ServiceExt};

fn test_event(action: Action, repository: &str, media_type: &str) -> Event {
    let mut e = Event::new(action, Target::default());
    e.id = format!("{action}-{media_type}").into();
    e.target.repository = repository.into();
    e.target.descriptor.media_type = media_type.into();
    e
}

/// Writes each event separately through `filter`; returns the ids that got through and
/// the `filtered` count.
async fn run(filter: FilterRules, events: &[Event]) -> (Vec<String>, u64) {
    let collector = Collector::new();
    let metrics = Arc::new(EndpointMetrics::new("f", "http://x/"));
    let sink = EventFilterLayer::new(filter)
        .metrics(metrics.clone())
        .layer(collector.sink(Duration::ZERO));
    for e in events {
        sink.clone().oneshot(Batch::from(e.clone())).await.unwrap();
    }
    (collector.ids(), metrics.snapshot().filtered)
}

/// Distribution's TestIgnoredSink (v3.1, with the #4730 action-only cases): a blob push
/// and a manifest pull; each passes unless its media type or its action is ignored.
#[tokio::test]
async fn test_ignored_sink() {
    let blob = test_event(Action::Push, "library/test", "blob");
    let manifest = test_event(Action::Pull, "library/test", "manifest");
    let both = [blob.clone(), manifest.clone()];
    use Action::*;
    let cases: Vec<(Vec<&str>, Vec<Action>, Vec<&Event>)> = vec![
        (vec![], vec![], vec![&blob, &manifest]),
        (vec!["other"], vec![Mount], vec![&blob, &manifest]),
        (vec!["blob"], vec![Mount], vec![&manifest]),
        (vec!["blob", "manifest"], vec![Mount], vec![]),
        (vec!["other"], vec![Push], vec![&manifest]),
        (vec!["other"], vec![Pull], vec![&blob]),
        (vec!["other"], vec![Pull, Push], vec![]),
        // Action-only filters: ignored by Distribution 2.x/3.0, honoured since 3.1 and here.
        (vec![], vec![Push], vec![&manifest]),
        (vec![], vec![Pull], vec![&blob]),
        (vec![], vec![Mount, Delete], vec![&blob, &manifest]),
        (vec![], vec![Pull, Push], vec![]),
        // Media-type-only filters.
        (vec!["blob"], vec![], vec![&manifest]),
        (vec!["manifest"], vec![], vec![&blob]),
        (vec!["blob"], vec![Pull], vec![]),
    ];
    for (media_types, actions, expected) in cases {
        let filter = FilterRules::new()
            .ignore_media_types(media_types.clone())
            .ignore_actions(actions.clone());
        let (got, filtered) = run(filter, &both).await;
        let want: Vec<String> = expected.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(got, want, "mediatypes {media_types:?}, actions {actions:?}");
        assert_eq!(filtered as usize, 2 - want.len());
    }
}

#[tokio::test]
async fn ignoredmediatypes_and_ignore_mediatypes_are_merged() {
    let blob = test_event(Action::Push, "r", "blob");
    let manifest = test_event(Action::Push, "r", "manifest");
    let config = test_event(Action::Push, "r", "config");
    // Distribution: `ignoredmediatypes` ∪ `ignore.mediatypes`, exact match only.
    let filter = FilterRules::new()
        .ignore_media_types(["blob"])
        .ignore_media_types(vec!["manifest".to_string()]);
    let (got, _) = run(filter, &[blob, manifest, config.clone()]).await;
    assert_eq!(got, [config.id.as_str()]);
    let prefix = FilterRules::new().ignore_media_types(["conf"]);
    assert!(prefix.allows(&config), "no prefix matching");
}

#[tokio::test]
async fn repository_globs() {
    let repos = [
        "library/alpine",
        "library/deep/name",
        "team/a",
        "team/a/b",
        "team",
        "other/x",
    ];
    let events: Vec<Event> = repos.iter().map(|r| test_event(Action::Push, r, "m")).collect();
    let repos_of = |got: Vec<String>, events: &[Event]| -> Vec<String> {
        got.iter()
            .map(|id| {
                events
                    .iter()
                    .find(|e| &e.id == id)
                    .unwrap()
                    .target
                    .repository
                    .to_string()
            })
            .collect()
    };
    // Ids must be unique for the mapping above.
    let events: Vec<Event> = events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.id = format!("e{i}").into();
            e
        })
        .collect();

    let include = FilterRules::new()
        .include_repositories(["library/*", "team/**"])
        .unwrap();
    let (got, filtered) = run(include, &events).await;
    assert_eq!(
        repos_of(got, &events),
        ["library/alpine", "team/a", "team/a/b", "team"]
    );
    assert_eq!(filtered, 2);

    let exclude = FilterRules::new()
        .exclude_repositories(["**/b", "other/*"])
        .unwrap();
    let (got, _) = run(exclude, &events).await;
    assert_eq!(
        repos_of(got, &events),
        ["library/alpine", "library/deep/name", "team/a", "team"]
    );

    // Exclusion wins over inclusion.
    let both = FilterRules::new()
        .include_repositories(["team/**"])
        .unwrap()
        .exclude_repositories(["team/a/*"])
        .unwrap();
    let (got, _) = run(both, &events).await;
    assert_eq!(repos_of(got, &events), ["team/a", "team"]);

    let err = FilterRules::new()
        .include_repositories(["ok/*", "bad**"])
        .unwrap_err();
    assert!(err.to_string().contains("\"bad**\""), "{err}");
}

#[tokio::test]
async fn head_pulls_are_dropped_by_method() {
    let mut get = test_event(Action::Pull, "r", "m");
    get.id = "get".into();
    get.request.method = "GET".into();
    let mut head = test_event(Action::Pull, "r", "m");
    head.id = "head".into();
    head.request.method = "HEAD".into();
    let (got, filtered) = run(FilterRules::new().ignore_methods(["HEAD"]), &[get, head]).await;
    assert_eq!((got, filtered), (vec!["get".to_string()], 1));
}

/// A batch is trimmed, not dropped whole; an empty remainder is not forwarded.
#[tokio::test]
async fn batches_are_trimmed_and_empty_ones_not_forwarded() {
    let collector = Collector::new();
    let sink = EventFilterLayer::new(FilterRules::new().ignore_actions([Action::Pull]))
        .layer(collector.sink(Duration::ZERO));
    let batch: Batch = vec![
        test_event(Action::Push, "r", "a"),
        test_event(Action::Pull, "r", "b"),
        test_event(Action::Push, "r", "c"),
    ]
    .into();
    sink.clone().oneshot(batch).await.unwrap();
    sink.clone()
        .oneshot(Batch::from(test_event(Action::Pull, "r", "d")))
        .await
        .unwrap();
    let sizes: Vec<usize> = collector.batches().iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [2]);
}

/// Through a whole endpoint: filtered events are counted in `filtered`, not in `events`,
/// and never reach the receiver.
#[tokio::test]
async fn endpoint_counts_filtered_apart_from_events() {
    let server = support::receiver::Receiver::start(support::receiver::always(200)).await;
    let endpoint = Endpoint::builder("f", server.url())
        .filter(
            FilterRules::new()
                .ignore_actions([Action::Pull])
                .ignore_methods(["HEAD"]),
        )
        .build()
        .unwrap();
    let (sink, handle) = endpoint.spawn();
    let mut pull = test_event(Action::Pull, "r", "m");
    pull.id = "pull".into();
    let mut head_push = test_event(Action::Push, "r", "m");
    head_push.id = "head".into();
    head_push.request.method = "HEAD".into();
    let mut push = test_event(Action::Push, "r", "m");
    push.id = "push".into();
    sink.oneshot(Batch::from(vec![pull, head_push, push]))
        .await
        .unwrap();
    assert_eq!(
        handle
            .shutdown(tokio::time::Instant::now() + support::HANG_GUARD)
            .await,
        0
    );
    assert_eq!(server.ids(), ["push"]);
    let m = handle.metrics();
    assert_eq!((m.events, m.filtered, m.delivered, m.pending), (1, 2, 1, 0));
}

/// Tag and repository filters from YAML, against the example registry: images pushed under
/// several tags into two repositories reach each endpoint as its rules say. `releases` takes
/// `v*` tags but no release candidates, and (an include rule) no event without a tag: no
/// blob, nothing by digest. `team` takes one repository's events, tagged or not, except for
/// `latest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_repository_filters_on_a_push_of_several_tags() {
    use example_registry::oci;
    use support::receiver::always;
    use support::{Http, Receiver};

    let releases = Receiver::start(always(200)).await;
    let team = Receiver::start(always(200)).await;
    let yaml = format!(
        r#"
notifications:
  endpoints:
    - name: releases
      url: {}
      filter:
        tags:
          include: ["v*"]
          exclude: ["*-rc*"]
    - name: team
      url: {}
      filter:
        repositories:
          include: ["team-a/**"]
        tags:
          exclude: [latest]
"#,
        releases.url(),
        team.url()
    );
    let config = registry_notify::Config::from_yaml_str(&yaml).unwrap();
    let (layer, handle) = registry_notify::Notifications::from_config(&config)
        .unwrap()
        .build()
        .unwrap();
    let registry = oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }));
    let c = Http::new(support::serve_router(registry.layer(layer)).await);

    let mut expected_team = 0;
    for repo in ["team-a/app", "other/app"] {
        let config_blob = c.push_blob(repo, b"{}").await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_blob}","size":2}},"layers":[]}}"#
        );
        for tag in ["v1.0", "v1.1-rc1", "latest", "dev", "v2.0"] {
            c.put_manifest(
                repo,
                tag,
                "application/vnd.oci.image.manifest.v1+json",
                manifest.as_bytes(),
            )
            .await;
        }
        if repo == "team-a/app" {
            // The blob push and the four tags other than `latest`.
            expected_team = 1 + 4;
        }
    }
    let got: Vec<(String, String)> = releases
        .wait_events(4)
        .await
        .iter()
        .map(|e| (e.target.repository.to_string(), e.target.tag.to_string()))
        .collect();
    let want: Vec<(String, String)> = ["team-a/app", "other/app"]
        .iter()
        .flat_map(|r| ["v1.0", "v2.0"].map(|t| (r.to_string(), t.to_string())))
        .collect();
    assert_eq!(got, want);
    let got = team.wait_events(expected_team).await;
    assert!(got.iter().all(|e| e.target.repository == "team-a/app"));
    let tags: Vec<&str> = got.iter().map(|e| e.target.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["", "v1.0", "v1.1-rc1", "dev", "v2.0"],
        "the blob has no tag"
    );

    // Nothing more was sent, and the filtered events are counted.
    handle.shutdown(support::HANG_GUARD).await;
    assert_eq!((releases.events().len(), team.events().len()), (4, 5));
    let filtered: Vec<u64> = handle.metrics().iter().map(|m| m.filtered).collect();
    assert_eq!(filtered, [12 - 4, 12 - 5]);
}

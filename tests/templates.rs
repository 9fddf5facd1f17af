//! Payload templates through the layer and the HTTP sink, against a real registry and a real
//! receiver: the Slack, Teams and Discord presets give bodies with the fields each service's
//! public documentation requires (written down below), a template of one's own renders the fields
//! of a push, and a template that fails while rendering dead-letters its events (kept for
//! redelivery) instead of blocking the endpoint.
#![cfg(feature = "templates")]

mod support;

use std::time::Duration;

use example_registry::oci;
use registry_notify::endpoint::Endpoint;
use registry_notify::http_sink::{PayloadTemplate, Preset};
use registry_notify::Notifications;
use serde_json::Value;
use sha2::Digest;
use support::receiver::always;
use support::{Http, Receiver};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn registry(endpoints: Vec<Endpoint>) -> (Http, registry_notify::NotificationsHandle) {
    let mut builder = Notifications::builder();
    for e in endpoints {
        builder = builder.endpoint(e);
    }
    let (layer, handle) = builder.build().unwrap();
    let registry = oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }));
    let addr = support::serve_router(registry.layer(layer)).await;
    (Http::new(addr), handle)
}

/// Pushes an image (config, one layer, the manifest by `tag`) to `repo`; the manifest's digest.
async fn push_image(c: &Http, repo: &str, tag: &str) -> String {
    let config = c.push_blob(repo, b"{}").await;
    let layer = c
        .push_blob(repo, format!("layer of {repo}:{tag}").as_bytes())
        .await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                    "size": format!("layer of {repo}:{tag}").len()}],
    })
    .to_string();
    c.put_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes()).await;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(manifest.as_bytes()))
    )
}

fn templated(name: &str, receiver: &Receiver, template: PayloadTemplate) -> Endpoint {
    Endpoint::builder(name, format!("{}?to={name}", receiver.url()))
        .template(template)
        .max_events(10)
        .linger(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// The bodies the receiver got for endpoint `name`, as JSON, with their content type.
fn bodies(receiver: &Receiver, name: &str) -> Vec<(String, Value)> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| r.uri.query() == Some(&format!("to={name}")))
        .map(|r| {
            let ct = r.headers["content-type"].to_str().unwrap().to_owned();
            let v = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&r.body)));
            (ct, v)
        })
        .collect()
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Slack, "Sending messages using incoming webhooks" and the Block Kit reference: a JSON body;
/// `text` is required as the notification fallback when `blocks` are sent; a section block has
/// `type: "section"` and a text object whose `type` is `plain_text` or `mrkdwn` and whose `text`
/// has 1 to 3000 characters; at most 50 blocks.
fn check_slack(body: &Value) {
    assert!(chars(&body["text"]) > 0, "text required: {body}");
    let blocks = body["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for b in blocks {
        assert_eq!(b["type"], "section");
        assert!(["plain_text", "mrkdwn"].contains(&b["text"]["type"].as_str().unwrap()));
        assert!((1..=3000).contains(&chars(&b["text"]["text"])), "{b}");
    }
}

/// Microsoft Teams, "Create and send messages" (incoming webhooks / Workflows) and the Adaptive
/// Cards schema: `type: "message"`, an `attachments` array whose items have
/// `contentType: "application/vnd.microsoft.card.adaptive"` and a `content` card with
/// `type: "AdaptiveCard"`, a `version` and a `body` of elements, each with a `type`; a
/// `TextBlock` has `text`, a `FactSet` has `facts` of `title`/`value` strings.
fn check_teams(body: &Value) {
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().expect("attachments");
    assert!(!attachments.is_empty());
    for a in attachments {
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &a["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert!(card["version"].is_string());
        for element in card["body"].as_array().expect("body") {
            match element["type"].as_str().expect("element type") {
                "TextBlock" => assert!(chars(&element["text"]) > 0),
                "FactSet" => {
                    for f in element["facts"].as_array().unwrap() {
                        assert!(f["title"].is_string() && f["value"].is_string(), "{f}");
                    }
                }
                other => panic!("unexpected element {other}"),
            }
        }
    }
}

/// Discord, "Execute Webhook" and the embed limits: one of `content`, `embeds` (or files,
/// components, poll) is required; `content` at most 2000 characters; at most 10 embeds; an embed
/// title at most 256 characters, description at most 4096, `timestamp` ISO 8601; at most 6000
/// characters in all embeds.
fn check_discord(body: &Value) {
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    assert!(chars(&body["content"]) > 0 || !embeds.is_empty());
    assert!(chars(&body["content"]) <= 2000);
    assert!(embeds.len() <= 10);
    let mut total = 0;
    for e in &embeds {
        assert!(
            chars(&e["title"]) <= 256 && chars(&e["description"]) <= 4096,
            "{e}"
        );
        let ts = e["timestamp"].as_str().unwrap();
        assert!(ts.parse::<registry_notify::Timestamp>().is_ok(), "{ts}");
        total += chars(&e["title"]) + chars(&e["description"]);
    }
    assert!(total <= 6000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_give_what_each_service_requires() {
    let receiver = Receiver::start(always(200)).await;
    let (c, handle) = registry(vec![
        templated("slack", &receiver, PayloadTemplate::preset(Preset::Slack)),
        templated("teams", &receiver, PayloadTemplate::preset(Preset::Teams)),
        templated("discord", &receiver, PayloadTemplate::preset(Preset::Discord)),
    ])
    .await;
    let digest = push_image(&c, "team/app", "v1.2").await;
    // Then more events than a message shows in full.
    for i in 0..12 {
        c.get(&format!("/v2/team/app/manifests/v1.2?{i}")).await;
    }
    support::wait_until("every event delivered to each preset", || {
        handle.endpoints().iter().all(|e| e.metrics().delivered == 3 + 12)
    })
    .await;
    for (name, check) in [
        ("slack", check_slack as fn(&Value)),
        ("teams", check_teams),
        ("discord", check_discord),
    ] {
        let got = bodies(&receiver, name);
        assert!(!got.is_empty());
        let mut text = String::new();
        for (ct, body) in &got {
            assert_eq!(ct, "application/json");
            check(body);
            text.push_str(&body.to_string());
        }
        assert!(text.contains("team/app:v1.2"), "{name}: {text}");
        assert!(text.contains("push"), "{name}: {text}");
        if name == "discord" {
            assert!(text.contains(&digest), "{name}: {text}");
        }
    }
}

/// A template of one's own, from a file: every field of the push it names is rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_template_renders_the_fields_of_a_push() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push.json.j2");
    std::fs::write(
        &file,
        r#"[{% for e in events if e.action == "push" and e.target.tag %}
  {"what": {{ e.action | tojson }}, "repo": {{ e.target.repository | tojson }}, "tag": {{ e.target.tag | tojson }},
   "digest": {{ e.target.digest | tojson }}, "type": {{ e.target.mediaType | tojson }}, "size": {{ e.target.size }},
   "url": {{ e.target.url | tojson }}, "id": {{ e.id | tojson }}, "host": {{ e.request.host | tojson }}}{% if not loop.last %},{% endif %}
{%- endfor %}]"#,
    )
    .unwrap();
    let receiver = Receiver::start(always(200)).await;
    let template = PayloadTemplate::from_file(&file)
        .unwrap()
        .with_content_type("application/vnd.example.push+json")
        .unwrap();
    let endpoint = Endpoint::builder("mine", format!("{}?to=mine", receiver.url()))
        .template(template)
        .build()
        .unwrap();
    let (c, handle) = registry(vec![endpoint]).await;
    let digest = push_image(&c, "custom/app", "stable").await;
    support::wait_until("the push delivered", || {
        handle.endpoints()[0].metrics().delivered == 3
    })
    .await;
    let got = bodies(&receiver, "mine");
    assert!(got
        .iter()
        .all(|(ct, _)| ct == "application/vnd.example.push+json"));
    let pushes: Vec<&Value> = got.iter().flat_map(|(_, b)| b.as_array().unwrap()).collect();
    assert_eq!(pushes.len(), 1, "{got:?}");
    let p = pushes[0];
    assert_eq!(
        (
            p["what"].as_str(),
            p["repo"].as_str(),
            p["tag"].as_str(),
            p["digest"].as_str()
        ),
        (
            Some("push"),
            Some("custom/app"),
            Some("stable"),
            Some(digest.as_str())
        )
    );
    assert_eq!(p["type"], OCI_MANIFEST);
    assert!(p["size"].as_u64().unwrap() > 0);
    assert!(p["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v2/custom/app/manifests/{digest}")));
    assert!(p["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        p["host"].as_str(),
        Some(c.url("").trim_start_matches("http://").trim_end_matches('/'))
    );
}

/// A template that fails while rendering fails its POST permanently: the events are
/// dead-lettered and kept for redelivery, and the endpoint goes on with the next ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_failing_at_render_dead_letters_its_events() {
    let receiver = Receiver::start(always(200)).await;
    // Fails for a blob push (no tag), renders otherwise.
    let template = PayloadTemplate::new(
        "picky",
        r#"{"tag": {{ events[0].target.tag | tojson }}{% if not events[0].target.tag %}{{ 1 / 0 }}{% endif %}}"#,
    )
    .unwrap();
    let endpoint = Endpoint::builder("picky", receiver.url())
        .template(template)
        .build()
        .unwrap();
    let (c, handle) = registry(vec![endpoint]).await;
    push_image(&c, "picky/app", "ok").await;
    let ep = handle.endpoints()[0].clone();
    support::wait_until("two dead letters and one delivery", || {
        let m = ep.metrics();
        m.dead_lettered == 2 && m.delivered == 1
    })
    .await;
    let kept = ep.dead_letters();
    assert_eq!(kept.len(), 2);
    assert!(
        kept[0].reason.contains("cannot make the body"),
        "{}",
        kept[0].reason
    );
    assert!(kept.iter().all(|k| k.event.target.tag.is_empty()));
    assert_eq!(receiver.request_count(), 1, "only the tagged push was sent");
}

//! Checks that an event is well formed, written apart from the crate's own parsers
//! (Distribution's grammar, restated): the layer's fault tests and the conformance runs.

use registry_notify::{Event, Format};
use serde_json::Value;

/// go-digest's grammar: `algorithm:encoded`, algorithm `[a-z0-9]+([+._-][a-z0-9]+)*`,
/// encoded `[a-zA-Z0-9=_-]+`; sha256, sha384 and sha512 need 64, 96 and 128 lowercase hex digits.
pub fn digest_ok(d: &str) -> bool {
    let Some((alg, enc)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg
            .split(['+', '.', '_', '-'])
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let enc_ok = !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    let hex = |n: usize| enc.len() == n && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    alg_ok
        && enc_ok
        && match alg {
            "sha256" => hex(64),
            "sha384" => hex(96),
            "sha512" => hex(128),
            _ => true,
        }
}

/// Panics with `context` unless `e` is well formed: sizes never negative (`length` equal to
/// `size`), every digest (target and references) syntactically valid or absent, and the
/// event encodes in both Distribution formats with the same numbers.
pub fn assert_well_formed(e: &Event, context: &str) {
    let t = &e.target;
    assert!(t.descriptor.size >= 0, "{context}: negative size in {e:?}");
    assert_eq!(t.length, t.descriptor.size, "{context}: length != size in {e:?}");
    let d = t.descriptor.digest.as_str();
    assert!(d.is_empty() || digest_ok(d), "{context}: bad digest {d:?}");
    for r in &t.references {
        assert!(r.size >= 0, "{context}: negative reference size in {e:?}");
        assert!(
            digest_ok(&r.digest),
            "{context}: bad reference digest {:?}",
            r.digest
        );
    }
    for format in [Format::EventsV1, Format::EventsV2] {
        let body = format.encode(std::slice::from_ref(e));
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|err| panic!("{context}: {err}"));
        assert_raw_well_formed(&v["events"][0], context);
        // Go escapes these wherever they are: a string copied without its escapes (text taken
        // for plain that is not) would show them raw.
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
            "{context}: unescaped text in {text}"
        );
    }
    // What `events.v2` writes reads back as the event (all but `traceparent`, never written).
    let body = Format::EventsV2.encode(std::slice::from_ref(e));
    let back: registry_notify::Envelope =
        serde_json::from_slice(&body).unwrap_or_else(|err| panic!("{context}: {err}"));
    let mut want = e.clone();
    want.request.traceparent = Default::default();
    assert_eq!(back.events, [want], "{context}: read back");
}

/// [`assert_well_formed`] on an event as received (JSON).
pub fn assert_raw_well_formed(e: &Value, context: &str) {
    let t = &e["target"];
    for key in ["size", "length"] {
        if let Some(n) = t.get(key) {
            assert!(n.as_i64().is_some_and(|n| n >= 0), "{context}: {key} {n} in {e}");
        }
    }
    if let Some(d) = t.get("digest").and_then(Value::as_str) {
        assert!(d.is_empty() || digest_ok(d), "{context}: bad digest {d:?}");
    }
    for r in t["references"].as_array().into_iter().flatten() {
        assert!(
            r["size"].as_i64().is_some_and(|n| n >= 0),
            "{context}: reference {r}"
        );
        assert!(
            digest_ok(r["digest"].as_str().unwrap_or("")),
            "{context}: reference {r}"
        );
    }
    let action = e["action"].as_str().unwrap_or("");
    assert!(
        ["push", "pull", "mount", "delete"].contains(&action),
        "{context}: action {action:?}"
    );
}

//! [CloudEvents 1.0] JSON encoding of registry events (formats `cloudevents` and
//! `cloudevents-batch`).
//!
//! Each registry event becomes one CloudEvent:
//!
//! | attribute | value |
//! |---|---|
//! | `specversion` | `1.0` |
//! | `id` | the event id (stable across attempts) |
//! | `source` | `//<source.addr>` — the registry instance (`hostname:port`) that saw the request, as a URI reference; `/registry-notify` when the event has no source address |
//! | `type` | `io.distribution.<action>`: `io.distribution.push`, `.pull`, `.mount`, `.delete` |
//! | `time` | the event timestamp (RFC 3339) |
//! | `subject` | `repository:tag`, else `repository@digest`, else `repository` (omitted when there is no repository) |
//! | `datacontenttype` | `application/json` |
//! | `data` | the Distribution event as JSON, in its `events.v2` form |
//!
//! Structured mode (`application/cloudevents+json`) carries one event per request, so an
//! endpoint with this format must have `max_events` 1; batch mode
//! (`application/cloudevents-batch+json`) carries a JSON array of events. The same batch
//! always encodes to the same bytes, so retries are byte-identical.
//!
//! [CloudEvents 1.0]: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Action, Event};

/// Media type of a structured-mode CloudEvent (format `cloudevents`).
pub const CLOUDEVENTS_MEDIA_TYPE: &str = "application/cloudevents+json";
/// Media type of a batch of CloudEvents (format `cloudevents-batch`).
pub const CLOUDEVENTS_BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";

/// The CloudEvents `type` of an action: `io.distribution.push` and so on (`io.distribution.ping`
/// for a test notification).
pub fn event_type(action: Action) -> &'static str {
    match action {
        Action::Push => "io.distribution.push",
        Action::Pull => "io.distribution.pull",
        Action::Mount => "io.distribution.mount",
        Action::Delete => "io.distribution.delete",
        Action::Ping => "io.distribution.ping",
    }
}

/// Writes one CloudEvent per event: a single object when `batch` is false and there is
/// exactly one event, else a JSON array.
pub(super) fn encode_into(events: &[Event], batch: bool, out: &mut Vec<u8>) {
    // Serialising our own types into a Vec cannot fail.
    if !batch && events.len() == 1 {
        let _ = serde_json::to_writer(&mut *out, &CloudEvent(&events[0]));
    } else {
        let _ = serde_json::to_writer(&mut *out, &Array(events));
    }
}

struct Array<'a>(&'a [Event]);

impl Serialize for Array<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(CloudEvent))
    }
}

struct CloudEvent<'a>(&'a Event);

impl Serialize for CloudEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("specversion", "1.0")?;
        m.serialize_entry("id", &e.id)?;
        m.serialize_entry("source", &source(e))?;
        m.serialize_entry("type", event_type(e.action))?;
        m.serialize_entry("time", &e.timestamp.to_string())?;
        if let Some(subject) = subject(e) {
            m.serialize_entry("subject", &subject)?;
        }
        m.serialize_entry("datacontenttype", "application/json")?;
        // `Event`'s own serialisation is the events.v2 form.
        m.serialize_entry("data", e)?;
        m.end()
    }
}

/// `//addr` with anything outside a URI authority's characters percent-encoded.
fn source(e: &Event) -> String {
    let addr = &e.source.addr;
    if addr.is_empty() {
        return "/registry-notify".to_owned();
    }
    let mut out = String::with_capacity(addr.len() + 2);
    out.push_str("//");
    for b in addr.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn subject(e: &Event) -> Option<String> {
    let t = &e.target;
    if t.repository.is_empty() {
        return None;
    }
    Some(if !t.tag.is_empty() {
        format!("{}:{}", t.repository, t.tag)
    } else if !t.descriptor.digest.is_empty() {
        format!("{}@{}", t.repository, t.descriptor.digest)
    } else {
        t.repository.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    fn push() -> Event {
        let mut e = Event::new(Action::Push, Target::default());
        e.id = "id-1".into();
        e.target.repository = "library/alpine".into();
        e.target.tag = "3.20".into();
        e.target.descriptor.digest = "sha256:abc".into();
        e.source.addr = "registry-1:5000".into();
        e
    }

    #[test]
    fn attributes() {
        let mut out = Vec::new();
        encode_into(&[push()], false, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "id-1");
        assert_eq!(v["type"], "io.distribution.push");
        assert_eq!(v["source"], "//registry-1:5000");
        assert_eq!(v["subject"], "library/alpine:3.20");
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(v["data"]["target"]["repository"], "library/alpine");
        assert_eq!(v["data"]["id"], "id-1");

        let mut e = push();
        e.target.tag = Default::default();
        e.source.addr = "host with space".into();
        let mut out = Vec::new();
        encode_into(&[e.clone(), e], true, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[0]["subject"], "library/alpine@sha256:abc");
        assert_eq!(v[0]["source"], "//host%20with%20space");
    }

    #[test]
    fn empty_fields() {
        let mut e = Event::new(Action::Delete, Target::default());
        e.id = "x".into();
        let mut out = Vec::new();
        encode_into(&[e], false, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("subject").is_none());
        assert_eq!(v["source"], "/registry-notify");
        assert_eq!(v["type"], "io.distribution.delete");
        let mut out = Vec::new();
        encode_into(&[], false, &mut out);
        assert_eq!(out, b"[]");
    }
}

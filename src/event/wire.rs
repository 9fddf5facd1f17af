//! The reference encoder, through serde: every field of an event, in either Distribution
//! format, as `json.MarshalIndent(envelope, "", "   ")` writes it. The direct writer
//! (`writer.rs`) must write the same bytes for the events it handles.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::go_json::GoFormatter;
use super::{Descriptor, Envelope, Event, Format, Target};

/// Writes `{"events":[…]}` for `events` in `format`; handles every field.
pub(super) fn encode_envelope(events: &[Event], format: Format, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter::new());
    // Serialising our own types into a Vec cannot fail.
    let _ = WireEnvelope { events, format }.serialize(&mut ser);
}

/// Writes one event (not an envelope) in `format`, indented like the envelope.
pub(super) fn encode_event(event: &Event, format: Format, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::with_formatter(out, GoFormatter::new());
    let _ = Wire { v: event, format }.serialize(&mut ser);
}

struct Wire<'a, T: ?Sized> {
    v: &'a T,
    format: Format,
}

struct WireEnvelope<'a> {
    events: &'a [Event],
    format: Format,
}

impl Serialize for WireEnvelope<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if !self.events.is_empty() {
            m.serialize_entry(
                "events",
                &WireSeq {
                    items: self.events,
                    format: self.format,
                },
            )?;
        }
        m.end()
    }
}

struct WireSeq<'a, T> {
    items: &'a [T],
    format: Format,
}

impl<'a, T> Serialize for WireSeq<'a, T>
where
    Wire<'a, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for v in self.items {
            seq.serialize_element(&Wire {
                v,
                format: self.format,
            })?;
        }
        seq.end()
    }
}

impl Serialize for Wire<'_, Event> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.v;
        let mut m = s.serialize_map(None)?;
        if !e.id.is_empty() {
            m.serialize_entry("id", &e.id)?;
        }
        m.serialize_entry("timestamp", &e.timestamp)?;
        m.serialize_entry("action", &e.action)?;
        m.serialize_entry(
            "target",
            &Wire {
                v: &e.target,
                format: self.format,
            },
        )?;
        m.serialize_entry("request", &e.request)?;
        m.serialize_entry("actor", &e.actor)?;
        m.serialize_entry("source", &e.source)?;
        m.end()
    }
}

/// Writes the descriptor's fields into an open map.
fn descriptor_fields<M: SerializeMap>(
    m: &mut M,
    d: &Descriptor,
    format: Format,
    reference: bool,
) -> Result<(), M::Error> {
    match format {
        Format::EventsV1 => {
            if !d.media_type.is_empty() {
                m.serialize_entry("mediaType", &d.media_type)?;
            }
            if d.size != 0 {
                m.serialize_entry("size", &d.size)?;
            }
            if !d.digest.is_empty() {
                m.serialize_entry("digest", &d.digest)?;
            }
            if !d.urls.is_empty() {
                m.serialize_entry("urls", &d.urls)?;
            }
            if !d.annotations.is_empty() {
                m.serialize_entry("annotations", &d.annotations)?;
            }
            // Distribution 2.x never fills the platform of a reference or target.
            let _ = reference;
        }
        Format::EventsV2 | Format::CloudEvents | Format::CloudEventsBatch => {
            m.serialize_entry("mediaType", &d.media_type)?;
            m.serialize_entry("digest", &d.digest)?;
            m.serialize_entry("size", &d.size)?;
            if !d.urls.is_empty() {
                m.serialize_entry("urls", &d.urls)?;
            }
            if !d.annotations.is_empty() {
                m.serialize_entry("annotations", &d.annotations)?;
            }
            if let Some(data) = d.data.as_deref().filter(|s| !s.is_empty()) {
                m.serialize_entry("data", data)?;
            }
            if let Some(p) = &d.platform {
                m.serialize_entry("platform", p)?;
            }
            if let Some(a) = d.artifact_type.as_deref().filter(|s| !s.is_empty()) {
                m.serialize_entry("artifactType", a)?;
            }
        }
    }
    Ok(())
}

impl Serialize for Wire<'_, Descriptor> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        descriptor_fields(&mut m, self.v, self.format, true)?;
        m.end()
    }
}

impl Serialize for Wire<'_, Target> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.v;
        let mut m = s.serialize_map(None)?;
        descriptor_fields(&mut m, &t.descriptor, self.format, false)?;
        if t.length != 0 {
            m.serialize_entry("length", &t.length)?;
        }
        for (k, v) in [
            ("repository", &t.repository),
            ("fromRepository", &t.from_repository),
            ("url", &t.url),
            ("tag", &t.tag),
        ] {
            if !v.is_empty() {
                m.serialize_entry(k, v)?;
            }
        }
        if !t.references.is_empty() {
            m.serialize_entry(
                "references",
                &WireSeq {
                    items: &t.references,
                    format: self.format,
                },
            )?;
        }
        m.end()
    }
}

impl Serialize for Event {
    /// Serialises in the default format, [`Format::EventsV2`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            v: self,
            format: Format::EventsV2,
        }
        .serialize(s)
    }
}

impl Serialize for Target {
    /// Serialises in the default format, [`Format::EventsV2`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            v: self,
            format: Format::EventsV2,
        }
        .serialize(s)
    }
}

impl Serialize for Descriptor {
    /// Serialises in the default format, [`Format::EventsV2`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            v: self,
            format: Format::EventsV2,
        }
        .serialize(s)
    }
}

impl Serialize for Envelope {
    /// Serialises in the default format, [`Format::EventsV2`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireEnvelope {
            events: &self.events,
            format: Format::EventsV2,
        }
        .serialize(s)
    }
}

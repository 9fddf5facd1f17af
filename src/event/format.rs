//! Wire formats: Distribution 2.x (`events.v1`) and 3.x (`events.v2`), byte-exact.

use std::fmt;
use std::io;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

use super::cloudevents::{CLOUDEVENTS_BATCH_MEDIA_TYPE, CLOUDEVENTS_MEDIA_TYPE};
use super::{Descriptor, Envelope, Event, Target};

/// How an envelope is written on the wire; chosen per endpoint.
///
/// Both formats are Go's `json.MarshalIndent(envelope, "", "   ")`: three-space
/// indent, no trailing newline, and `<`, `>`, `&`, U+2028 and U+2029 escaped.
/// They differ only in the target:
///
/// | | `events.v1` (Distribution 2.x) | `events.v2` (Distribution 3.x, default) |
/// |---|---|---|
/// | media type | `application/vnd.docker.distribution.events.v1+json` | `application/vnd.docker.distribution.events.v2+json` |
/// | descriptor keys | `mediaType`, `size`, `digest`, all omitted when empty | `mediaType`, `digest`, `size`, always present |
/// | `platform` of references | omitted | written |
///
/// ```
/// use registry_notify::{Action, Descriptor, Event, Format, Target};
/// let mut event = Event::new(Action::Delete, Target::default());
/// event.target.repository = "library/test".into();
/// event.target.descriptor.digest = "sha256:abc".into();
/// let v1 = String::from_utf8(Format::EventsV1.encode(std::slice::from_ref(&event))).unwrap();
/// assert!(!v1.contains("\"size\""));
/// let v2 = String::from_utf8(Format::EventsV2.encode(std::slice::from_ref(&event))).unwrap();
/// assert!(v2.contains("\"mediaType\": \"\""));
/// assert!(v2.contains("\"size\": 0"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Distribution 2.x: `application/vnd.docker.distribution.events.v1+json`.
    EventsV1,
    /// Distribution 3.x: `application/vnd.docker.distribution.events.v2+json`.
    #[default]
    EventsV2,
    /// CloudEvents 1.0 structured mode, `application/cloudevents+json`: one event per
    /// request (the endpoint's `max_events` must be 1; a larger batch handed to an
    /// the HTTP sink directly is sent in batch mode). See
    /// [`cloudevents`](crate::event::cloudevents).
    CloudEvents,
    /// CloudEvents 1.0 batch mode, `application/cloudevents-batch+json`: a JSON array of
    /// events. See [`cloudevents`](crate::event::cloudevents).
    CloudEventsBatch,
}

/// Media type of Distribution 2.x envelopes.
pub const EVENTS_V1_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// Media type of Distribution 3.x envelopes.
pub const EVENTS_V2_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";

impl Format {
    /// The `Content-Type` of an envelope in this format.
    pub fn media_type(&self) -> &'static str {
        match self {
            Format::EventsV1 => EVENTS_V1_MEDIA_TYPE,
            Format::EventsV2 => EVENTS_V2_MEDIA_TYPE,
            Format::CloudEvents => CLOUDEVENTS_MEDIA_TYPE,
            Format::CloudEventsBatch => CLOUDEVENTS_BATCH_MEDIA_TYPE,
        }
    }

    /// The `Content-Type` of `events` encoded in this format: the [`media_type`](Self::media_type),
    /// except that [`Format::CloudEvents`] sends anything but exactly one event in batch mode.
    pub fn media_type_for(&self, events: usize) -> &'static str {
        match self {
            Format::CloudEvents if events != 1 => CLOUDEVENTS_BATCH_MEDIA_TYPE,
            _ => self.media_type(),
        }
    }

    /// Whether the format carries one event per request ([`Format::CloudEvents`]).
    pub fn is_single_event(&self) -> bool {
        matches!(self, Format::CloudEvents)
    }

    /// The name used in configuration: `events.v1`, `events.v2`, `cloudevents` or
    /// `cloudevents-batch`.
    pub fn name(&self) -> &'static str {
        match self {
            Format::EventsV1 => "events.v1",
            Format::EventsV2 => "events.v2",
            Format::CloudEvents => "cloudevents",
            Format::CloudEventsBatch => "cloudevents-batch",
        }
    }

    /// Writes `{"events":[…]}` exactly as Distribution's HTTP sink does (or, for the
    /// CloudEvents formats, the event or the array of events).
    pub fn encode(&self, events: &[Event]) -> Vec<u8> {
        let mut out = Vec::with_capacity(640 * events.len().max(1));
        self.encode_into(events, &mut out);
        out
    }

    /// Like [`encode`](Self::encode), appending to `out`.
    pub fn encode_into(&self, events: &[Event], out: &mut Vec<u8>) {
        if let Format::CloudEvents | Format::CloudEventsBatch = self {
            super::cloudevents::encode_into(events, *self == Format::CloudEventsBatch, out);
        } else if events.iter().all(|e| super::writer::handles(e, *self)) {
            super::writer::write_envelope(events, *self, out);
        } else {
            self.encode_serde(events, out);
        }
    }

    /// The reference encoder, through serde; handles every field.
    fn encode_serde(&self, events: &[Event], out: &mut Vec<u8>) {
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter::new());
        // Serialising our own types into a Vec cannot fail.
        let _ = WireEnvelope {
            events,
            format: *self,
        }
        .serialize(&mut ser);
    }

    /// Writes one event (not an envelope) in this format, indented like the envelope; for
    /// the CloudEvents formats, one structured CloudEvent.
    pub fn encode_event(&self, event: &Event) -> Vec<u8> {
        let mut out = Vec::with_capacity(640);
        if let Format::CloudEvents | Format::CloudEventsBatch = self {
            super::cloudevents::encode_into(std::slice::from_ref(event), false, &mut out);
            return out;
        }
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::new());
        let _ = Wire {
            v: event,
            format: *self,
        }
        .serialize(&mut ser);
        out
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "events.v1" | "v1" | EVENTS_V1_MEDIA_TYPE => Ok(Format::EventsV1),
            "events.v2" | "v2" | EVENTS_V2_MEDIA_TYPE => Ok(Format::EventsV2),
            "cloudevents" | CLOUDEVENTS_MEDIA_TYPE => Ok(Format::CloudEvents),
            "cloudevents-batch" | CLOUDEVENTS_BATCH_MEDIA_TYPE => Ok(Format::CloudEventsBatch),
            other => Err(format!(
                "unknown format {other:?} (expected events.v1, events.v2, cloudevents or cloudevents-batch)"
            )),
        }
    }
}

/// Bytes that may start an escape Go adds to JSON's: `<`, `>`, `&`, and the lead
/// byte of U+2028/U+2029.
static GO_ESCAPE_LEAD: [bool; 256] = {
    let mut t = [false; 256];
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
};

/// serde_json's pretty printer with Go's indent and Go's string escaping.
pub(super) struct GoFormatter {
    pretty: PrettyFormatter<'static>,
}

impl GoFormatter {
    pub(super) fn new() -> Self {
        Self {
            pretty: PrettyFormatter::with_indent(b"   "),
        }
    }
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[inline]
            fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
                self.pretty.$name(w $(, $arg)*)
            }
        )*
    };
}

impl Formatter for GoFormatter {
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        // Almost every fragment (digests, names, URLs) needs no escape: one fast scan.
        if !bytes.iter().any(|&b| GO_ESCAPE_LEAD[b as usize]) {
            return w.write_all(bytes);
        }
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let (esc, len): (&[u8], usize) = match bytes[i] {
                b'<' => (b"\\u003c", 1),
                b'>' => (b"\\u003e", 1),
                b'&' => (b"\\u0026", 1),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => {
                    if bytes[i + 2] == 0xA8 {
                        (b"\\u2028", 3)
                    } else {
                        (b"\\u2029", 3)
                    }
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            w.write_all(&bytes[start..i])?;
            w.write_all(esc)?;
            i += len;
            start = i;
        }
        w.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        // Go (as built into Distribution 2.8) writes \b and \f as \u0008 and \u000c.
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::Solidus => b"/",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let buf = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xF) as usize],
                ];
                return w.write_all(&buf);
            }
        };
        w.write_all(s)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, ActorRecord, RequestRecord, SourceRecord};

    /// Distribution's `TestEventEnvelopeJSONFormat`, for both versions.
    fn fixture_events(first_media_type: &str) -> Vec<Event> {
        let proto = |i: usize, media_type: &str, digest: &str, size: i64| Event {
            id: format!("asdf-asdf-asdf-asdf-{i}").into(),
            timestamp: "2006-01-02T15:04:05Z".parse().unwrap(),
            action: Action::Push,
            target: Target {
                descriptor: Descriptor::new(media_type, digest, size),
                length: size,
                repository: "library/test".into(),
                url: "http://example.com/v2/library/test/manifests/latest".into(),
                ..Target::default()
            },
            request: RequestRecord {
                id: "asdfasdf".into(),
                addr: "client.local".into(),
                host: "registrycluster.local".into(),
                method: "PUT".into(),
                useragent: "test/0.1".into(),
            },
            actor: ActorRecord {
                name: "test-actor".into(),
            },
            source: SourceRecord {
                addr: "hostname.local:port".into(),
                instance_id: Default::default(),
            },
        };
        let layer = "application/vnd.docker.container.image.rootfs.diff+x-gtar";
        vec![
            proto(0, first_media_type, "sha256:0123456789abcdef0", 1),
            proto(
                1,
                layer,
                "sha256:3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5",
                2,
            ),
            proto(
                2,
                layer,
                "sha256:3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d6",
                3,
            ),
        ]
    }

    #[test]
    fn distribution_v3_envelope_format() {
        let expected = include_str!("../../tests/fixtures/envelope-format-distribution-v3.json");
        let got = Format::EventsV2.encode(&fixture_events(
            "application/vnd.docker.distribution.manifest.v2+json",
        ));
        assert_eq!(String::from_utf8(got).unwrap(), expected.trim());
    }

    #[test]
    fn distribution_v28_envelope_format() {
        let expected = include_str!("../../tests/fixtures/envelope-format-distribution-v2.8.json");
        let got = Format::EventsV1.encode(&fixture_events(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ));
        assert_eq!(String::from_utf8(got).unwrap(), expected.trim());
    }

    #[test]
    fn go_escaping() {
        let mut e = fixture_events("a<b>&c\u{2028}\u{2029}\u{8}\u{c}\u{1}\"\\/é").remove(0);
        e.target.references.push(Descriptor::new("x", "y", 0));
        let s = String::from_utf8(Format::EventsV2.encode_event(&e)).unwrap();
        assert!(
            s.contains(r#""mediaType": "a\u003cb\u003e\u0026c\u2028\u2029\u0008\u000c\u0001\"\\/é""#),
            "{s}"
        );
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    /// The direct writer and the serde path write the same bytes.
    #[test]
    fn writer_matches_serde() {
        let mut events = fixture_events("application/vnd.oci.image.manifest.v1+json");
        let mut odd = events[0].clone();
        odd.id = Default::default();
        odd.target.descriptor = Descriptor::new("", "", 0);
        odd.target.length = 0;
        odd.target.tag = "v1<2>&\"q\"\\\n\t\u{1}\u{8}\u{c}\u{7f}é€\u{2028}\u{2029}".into();
        odd.target.from_repository = "from/repo".into();
        odd.request = RequestRecord::default();
        odd.actor = ActorRecord::default();
        odd.source = SourceRecord::default();
        odd.timestamp = "2024-02-29T23:59:59.000000001Z".parse().unwrap();
        events.push(odd);
        let mut far = events[1].clone();
        far.target.descriptor.size = -7;
        far.target.length = i64::MIN;
        far.timestamp = crate::Timestamp::from_unix(-62_200_000_000, 120_000_000);
        events.push(far);
        let mut future = events[1].clone();
        future.timestamp = crate::Timestamp::from_unix(300_000_000_000, 5);
        future.target.descriptor.size = i64::MAX;
        events.push(future);
        for f in [Format::EventsV1, Format::EventsV2] {
            for n in [0, 1, events.len()] {
                let mut reference = Vec::new();
                f.encode_serde(&events[..n], &mut reference);
                assert!(events[..n].iter().all(|e| crate::event::writer::handles(e, f)));
                let got = f.encode(&events[..n]);
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(reference).unwrap(),
                    "{f} with {n} events"
                );
            }
        }
        // Events the writer leaves to serde.
        let mut with_refs = events[0].clone();
        with_refs.target.references.push(Descriptor::new("x", "y", 1));
        assert!(!crate::event::writer::handles(&with_refs, Format::EventsV2));
        let mut with_data = events[0].clone();
        with_data.target.descriptor.data = Some("AA==".into());
        assert!(!crate::event::writer::handles(&with_data, Format::EventsV2));
        assert!(crate::event::writer::handles(&with_data, Format::EventsV1));
    }

    #[test]
    fn roundtrip_both_formats() {
        for f in [Format::EventsV1, Format::EventsV2] {
            let events = fixture_events("m");
            let bytes = f.encode(&events);
            let env: Envelope = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(env.events, events);
            assert!(!bytes.ends_with(b"\n"));
        }
        assert_eq!(Format::EventsV2.encode(&[]), b"{}");
    }
}

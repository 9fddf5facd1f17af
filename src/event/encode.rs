//! Writing events in a [`Format`]: the direct writer (`writer.rs`) for the events it handles,
//! the serde reference (`wire.rs`) for any other, CloudEvents (`cloudevents.rs`) apart.

use super::{cloudevents, wire, writer, Event, Format};

impl Format {
    /// Writes `{"events":[…]}` exactly as Distribution's HTTP sink does (or, for the
    /// CloudEvents formats, the event or the array of events).
    pub fn encode(&self, events: &[Event]) -> Vec<u8> {
        // Sized in `encode_into` (the writer's own estimate; a capacity given here would be
        // reallocated, and copied, when that estimate is larger).
        let mut out = Vec::new();
        self.encode_into(events, &mut out);
        out
    }

    /// Like [`encode`](Self::encode), appending to `out`.
    pub fn encode_into(&self, events: &[Event], out: &mut Vec<u8>) {
        if !matches!(self, Format::CloudEvents | Format::CloudEventsBatch)
            && events.iter().all(|e| writer::handles(e, *self))
        {
            // It sizes `out` itself.
            return writer::write_envelope(events, *self, out);
        }
        out.reserve(640_usize.saturating_mul(events.len().max(1)));
        if let Format::CloudEvents | Format::CloudEventsBatch = self {
            cloudevents::encode_into(events, *self == Format::CloudEventsBatch, out);
        } else {
            wire::encode_envelope(events, *self, out);
        }
    }

    /// Writes one event (not an envelope) in this format, indented like the envelope; for
    /// the CloudEvents formats, one structured CloudEvent.
    pub fn encode_event(&self, event: &Event) -> Vec<u8> {
        let mut out = Vec::with_capacity(640);
        if let Format::CloudEvents | Format::CloudEventsBatch = self {
            cloudevents::encode_into(std::slice::from_ref(event), false, &mut out);
            return out;
        }
        wire::encode_event(event, *self, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, ActorRecord, Descriptor, Envelope, RequestRecord, SourceRecord, Target};

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
                ..RequestRecord::default()
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
                wire::encode_envelope(&events[..n], f, &mut reference);
                assert!(events[..n].iter().all(|e| writer::handles(e, f)));
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
        assert!(!writer::handles(&with_refs, Format::EventsV2));
        let mut with_data = events[0].clone();
        with_data.target.descriptor.data = Some("AA==".into());
        assert!(!writer::handles(&with_data, Format::EventsV2));
        assert!(writer::handles(&with_data, Format::EventsV1));
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

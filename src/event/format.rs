//! The wire formats an endpoint can choose — Distribution 2.x (`events.v1`) and 3.x
//! (`events.v2`), byte-exact, and CloudEvents — with their names and media types
//! (`encode.rs` writes events in them).

use std::fmt;

use super::cloudevents::{CLOUDEVENTS_BATCH_MEDIA_TYPE, CLOUDEVENTS_MEDIA_TYPE};

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
#[non_exhaustive]
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

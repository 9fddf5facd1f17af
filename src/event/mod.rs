//! The event model and its wire formats.
//!
//! [`Event`] mirrors Distribution's `notifications.Event` field for field (its strings are
//! [`SharedStr`]s: the strings of one request's events share one buffer);
//! [`Format`] writes envelopes byte-exact in Distribution 2.x (`events.v1`) or
//! 3.x (`events.v2`, the default) form, or as [CloudEvents](cloudevents).

pub mod cloudevents;
mod encode;
mod format;
mod go_json;
mod message_id;
mod model;
mod shared_str;
mod timestamp;
mod wire;
mod writer;

pub use format::{Format, EVENTS_V1_MEDIA_TYPE, EVENTS_V2_MEDIA_TYPE};
pub use message_id::message_id;
pub use model::{
    instance_id, Action, ActorRecord, Batch, Descriptor, Envelope, Event, Platform, RequestRecord,
    SourceRecord, Target,
};
pub(crate) use model::{reserve_stamps, write_id};
pub use shared_str::SharedStr;
pub(crate) use shared_str::{build as build_strings, Frozen, PlainTable, Span, StrBuf};
pub use timestamp::{ParseTimestampError, Timestamp};
pub(crate) use writer::any_special;
pub(crate) use writer::decimal;

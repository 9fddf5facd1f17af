#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_code)]

pub mod event;

pub use event::{Action, ActorRecord, Batch, Descriptor, Envelope, Event, Format, Platform, RequestRecord, SourceRecord, Target, Timestamp};

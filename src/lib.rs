#![doc = include_str!("../README.md")]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod log_limit;
mod percent;
mod secret;
mod url;

pub mod event;
pub mod hint;
pub mod sink;

// The pipeline, in the order events travel:
// layer → dispatcher → broadcast → endpoint (filter → queue → retry → http_sink).
pub mod broadcast;
pub mod dispatcher;
pub mod endpoint;
pub mod filter;
pub mod http_sink;
pub mod layer;
pub mod queue;
pub mod retry;

pub mod config;
pub mod metrics;
pub mod notifications;
#[cfg(feature = "signing")]
#[cfg_attr(docsrs, doc(cfg(feature = "signing")))]
pub mod signing;

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;

pub use config::Config;
pub use endpoint::Endpoint;
pub use error::ConfigError;
pub use event::{
    Action, Batch, Descriptor, Envelope, Event, Format, Platform, RequestRecord, SourceRecord, Target,
    Timestamp,
};
pub use hint::{AuthenticatedUser, EventHint, RequestId};
pub use layer::NotificationLayer;
pub use notifications::{Notifications, NotificationsHandle};

//! Helpers of the integration tests, included by each as `mod support;`: the testkit
//! (`registry-notify-testkit`, shared with the example registry's tests and the benches: loopback
//! servers, an HTTP client, a webhook receiver, processes, test events) re-exported, and what only
//! these tests use. Each test uses part of it.
#![allow(dead_code, unused_imports, unreachable_pub)]

pub use registry_notify_testkit::*;

pub mod checks;
pub mod example;
pub mod golden;
pub mod logs;
#[cfg(feature = "nats")]
pub mod nats;
pub mod python;
pub mod registries;
pub mod retry;
pub mod segments;
pub mod sinks;
pub mod skopeo;
pub mod tls;
pub mod tmpfs;

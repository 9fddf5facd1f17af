//! The example registry of `registry-notify`: a real OCI distribution-spec registry on axum
//! ([`oci`]) wrapped by the notification layer, and the glue its `registry` binary, the root
//! crate's examples (`proxy`, `worker`, `receiver`), tests and benches share.
//!
//! ```text
//! cargo run -p example-registry                          # 127.0.0.1:5000 → receiver on 127.0.0.1:5055
//! cargo run -p example-registry -- serve config.yml      # Distribution's own config format
//! ```
//!
//! With no arguments the registry serves from memory on 127.0.0.1:5000, and a webhook
//! receiver started beside it on 127.0.0.1:5055 gets every event over HTTP (one
//! `events.v2` envelope per POST, through the whole delivery stack: queue, retry, HTTP
//! sink) and prints each envelope it receives to stdout. `--addr A` and `--receiver A`
//! choose other addresses (`127.0.0.1:0` for any free port; both are printed on stderr).
//! With `serve config.yml` it reads `http.addr`, `storage` (`filesystem.rootdirectory`
//! or `inmemory`, `delete.enabled`) and `notifications` — endpoints with headers,
//! timeout, threshold, backoff, ignore rules and our extension keys — and delivers to
//! them. Without a `notifications` section the layer is not installed at all.
//! With `http.debug.addr` a debug listener serves `/metrics` (when
//! `http.debug.prometheus.enabled`), `/debug/health`, and the `/notifications/` routes: status,
//! recent deliveries, dead letters, redelivery and ping ([`debug`]).
//! Dead letters are appended as JSON lines to `dead-letters.jsonl` beside the config.
//!
//! The root crate dev-depends on this package: its tests and benches wrap [`oci::router`]
//! with the layer in-process, and its examples use [`common`].
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod common;
pub mod debug;
pub mod oci;
pub mod receiver;

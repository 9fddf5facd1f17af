//! What the tests and benches of `registry-notify` and of its example registry share: a
//! loopback server ([`serve`](mod@serve)), an HTTP client for registries ([`client`]), a webhook receiver
//! ([`receiver`]), outside programs started as processes ([`process`]), test events
//! ([`events`]), property-test settings ([`props`]), and the discovery of outside tools ([`require_tool`]).
//!
//! Everything binds 127.0.0.1 only. Waits are bounded by [`HANG_GUARD`], a guard against
//! hangs, never an assertion about speed. The root crate's tests reach all of this as
//! `support::…` (`tests/support/mod.rs` re-exports it beside their own helpers).
#![warn(missing_docs)]

pub mod client;
pub mod events;
pub mod process;
pub mod props;
pub mod receiver;
pub mod serve;

use std::time::Duration;

pub use self::client::{with_digest, Http, Reply};
pub use self::receiver::Receiver;
pub use self::serve::{closing_listener, dead_addr, free_port, serve, serve_router};

/// Generous guard against hangs; never an assertion about speed.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// The `sha256:<hex>` digest of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Whether `REGISTRY_NOTIFY_REQUIRE_TOOLS` is set (as in CI): then a test that lacks an
/// outside program or a privilege fails instead of skipping.
pub fn tools_required() -> bool {
    std::env::var_os("REGISTRY_NOTIFY_REQUIRE_TOOLS").is_some()
}

/// Says loudly that a test is skipped because `why`; panics instead when
/// [`tools_required`].
pub fn skip(why: &str) {
    if tools_required() {
        panic!("{why}, and REGISTRY_NOTIFY_REQUIRE_TOOLS is set");
    }
    eprintln!("\n*** SKIPPED: {why} ***\n");
}

/// Finds an outside program on PATH. Without it the test is skipped loudly,
/// or fails when `REGISTRY_NOTIFY_REQUIRE_TOOLS` is set (as in CI).
pub fn require_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(&format!("{name} is not on PATH (apt-get install {name})"));
    }
    found
}

/// Polls `cond` until it holds; panics after [`HANG_GUARD`] (a hang guard only).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

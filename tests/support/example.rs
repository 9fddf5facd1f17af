//! The example registry (`example_registry::oci`) in this process, as the layer's tests wrap
//! it: in memory with deletes enabled, with or without its event hints.

use axum::response::Response;
use example_registry::oci;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::{EventHint, NotificationLayer};

use super::sinks::Probe;
use super::{serve_router, Http};

/// The example registry in memory, deletes enabled.
pub fn registry() -> axum::Router {
    oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }))
}

/// [`registry`] with every `EventHint` removed from its responses, as a registry that knows
/// nothing of this crate answers.
pub fn hintless() -> axum::Router {
    registry().layer(axum::middleware::map_response(|mut r: Response| async move {
        r.extensions_mut().remove::<EventHint>();
        r
    }))
}

/// `router` wrapped by the layer `configure` makes of one dispatching to a fresh probe, served
/// on loopback: a client of it and the probe.
pub async fn start_with(
    router: axum::Router,
    configure: impl FnOnce(NotificationLayer) -> NotificationLayer,
) -> (Http, Probe) {
    let probe = Probe::default();
    let layer = configure(NotificationLayer::new(Dispatcher::new(probe.sink())));
    let addr = serve_router(router.layer(layer)).await;
    (Http::new(addr), probe)
}

//! The registry as the `registry` binary serves it: set up from a Distribution config file or
//! for the main job (from memory, delivering to a local receiver), wrapped by the
//! notification layer, with the debug listener (`http.debug.addr`: metrics, health, endpoint
//! status), the peer address for `request.addr`, and request logs.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::ServiceExt as _;
use registry_notify::config::{Config, StorageDriver};
use registry_notify::endpoint::Endpoint;
use registry_notify::layer::{PeerAddr, ResponseBody};
use registry_notify::notifications::{Notifications, NotificationsHandle};
use registry_notify::{NotificationLayer, SourceRecord};
use tower::util::Either;
use tower_http::trace::TraceLayer;

use crate::common::{
    drain, listen_addr, log_endpoints, notifications_from, notifications_state, DEFAULT_DRAIN,
};
use crate::debug::Debug;
use crate::oci;

/// A registry ready to serve: where it listens, what it stores, and its notifications (none
/// when a config file has no `notifications` section: the layer is not installed at all).
pub struct App {
    /// The listening address as configured (`:5000` means every interface).
    pub addr: String,
    /// Already bound (the main job binds first, to learn a `:0` port).
    pub listener: Option<tokio::net::TcpListener>,
    /// The registry.
    pub registry: oci::Registry,
    /// The notification layer and its handle.
    pub notifications: Option<(NotificationLayer, NotificationsHandle)>,
    /// The debug listener (`http.debug.addr`) and what it serves.
    pub debug: Option<(String, Debug)>,
    /// How long the endpoints may deliver what is queued once told to stop.
    pub drain: Duration,
}

impl App {
    /// The main job: in memory on `addr`, one endpoint delivering to a receiver started on
    /// `receiver` that prints what it gets (see [`crate::receiver::start_printing`]).
    pub async fn local(addr: &str, receiver: &str) -> Result<Self, Box<dyn Error>> {
        // The registry's address is known before the layer is built only if it is fixed.
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let registry_addr = listener.local_addr()?;
        let receiver_addr = crate::receiver::start_printing(receiver).await?;
        eprintln!("receiver listening on http://{receiver_addr}/events");
        let endpoint = Endpoint::builder("local", format!("http://{receiver_addr}/events"))
            .timeout(Duration::from_secs(2))
            .build()?;
        let (layer, handle) = Notifications::builder()
            .source(SourceRecord::local(&registry_addr.to_string()))
            .endpoint(endpoint)
            .build()?;
        Ok(Self {
            addr: registry_addr.to_string(),
            listener: Some(listener),
            registry: oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true }),
            notifications: Some((layer, handle)),
            debug: None,
            drain: DEFAULT_DRAIN,
        })
    }

    /// As `config` says: `http.addr`, `http.debug`, `http.draintimeout`, `storage`
    /// (`filesystem.rootdirectory` or `inmemory`, `delete.enabled`) and `notifications`, with
    /// dead letters appended as JSON lines to `dead_letters`. The debug listener, when
    /// `http.debug.addr` is set, is installed first (its metrics recorder must be in place
    /// before the endpoints are built).
    pub fn from_config(config: Config, dead_letters: &Path) -> Result<Self, Box<dyn Error>> {
        let debug = Debug::install(&config)?;
        let opts = oci::RegistryOptions {
            delete_enabled: config.storage.delete_enabled,
        };
        let registry = match &config.storage.driver {
            Some(StorageDriver::Filesystem { root_directory }) => {
                oci::Registry::filesystem(root_directory.clone(), opts)?
            }
            Some(StorageDriver::InMemory) | None => oci::Registry::in_memory(opts),
            Some(other) => {
                return Err(format!(
                    "storage driver {:?} is not supported by this example",
                    other.name()
                )
                .into())
            }
        };
        Ok(Self {
            addr: config.http.addr.clone(),
            listener: None,
            registry,
            notifications: notifications_from(&config, dead_letters)?,
            debug,
            drain: config.http.drain_timeout.unwrap_or(DEFAULT_DRAIN),
        })
    }

    /// Serves until `shutdown` resolves, then lets the endpoints deliver what is queued (at
    /// most [`App::drain`]). Says on stderr where it listens once it does; fails only if it cannot listen.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn Error>> {
        let handle = self.notifications.as_ref().map(|(_, handle)| handle.clone());
        if let Some(handle) = &handle {
            log_endpoints(handle.endpoints());
        }
        if let Some((addr, debug)) = self.debug {
            let endpoints = handle.as_ref().map(|h| h.endpoints()).unwrap_or_default();
            debug.start(&addr, endpoints).await?;
        }
        let addr = listen_addr(&self.addr);
        let listener = match self.listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("listen {addr}: {e}"))?,
        };
        eprintln!(
            "registry listening on http://{} ({})",
            listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
            notifications_state(handle.as_ref())
        );
        let routes = oci::router(self.registry).layer(TraceLayer::new_for_http());
        let layer = self.notifications.map(|(layer, _)| layer);
        let served = axum::serve(
            listener,
            service(routes, layer).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        if let Err(e) = served {
            eprintln!("serve: {e}");
        }
        if let Some(handle) = handle {
            drain(handle, self.drain).await;
        }
        Ok(())
    }
}

/// What the registry binary serves: `routes` wrapped by `layer` (when given) as a whole, as
/// README shows, with the peer address inserted outside the layer for `request.addr`. Serve it
/// with `into_make_service_with_connect_info::<SocketAddr>` (axum's `ServiceExt`).
///
/// The layer is one service in front of the router, not a layer of each route
/// (`routes.layer(layer)`, which axum boxes and clones for every request) nor the fallback of
/// another router (which routes twice). The layer's wrapping then costs about 1 300
/// instructions a request here, against 3 000 and 5 300 (`benches/registry_instructions.sh`,
/// BENCHMARKS.md).
pub fn service(
    routes: axum::Router,
    layer: Option<NotificationLayer>,
) -> impl tower::Service<Request, Response = axum::response::Response, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    use tower::ServiceBuilder;
    let peer = ServiceBuilder::new().map_request(insert_peer_addr);
    match layer {
        Some(layer) => Either::Left(
            peer.map_response(|r: http::Response<ResponseBody<Body>>| r.map(Body::new))
                .layer(layer)
                .service(routes),
        ),
        None => Either::Right(peer.service(routes)),
    }
}

/// Inserts the client's address (axum's `ConnectInfo`) as [`PeerAddr`].
fn insert_peer_addr(mut req: Request) -> Request {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(PeerAddr(peer));
    }
    req
}

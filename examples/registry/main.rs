//! Example: an OCI registry (see `oci/`).
//!
//! ```text
//! cargo run --example registry [LISTEN_ADDR] [ROOT_DIR]
//! ```
//!
//! Listens on `127.0.0.1:5000` by default and keeps everything in memory;
//! with `ROOT_DIR` it stores under that directory instead. Deletes are enabled.

mod oci;

use std::net::SocketAddr;
use std::path::PathBuf;

use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=debug")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5000").parse()?;
    let options = oci::RegistryOptions { delete_enabled: true };
    let registry = match args.next() {
        Some(root) => oci::Registry::filesystem(PathBuf::from(root), options)?,
        None => oci::Registry::in_memory(options),
    };
    let app = oci::router(registry).layer(TraceLayer::new_for_http());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("registry listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
